-- Small completion batches without planning: omniq_complete planned its UPDATE at every
-- call (a custom plan, see 0011_finish_plans.sql), which for the few tasks a worker
-- ends at a time under light load cost the server more than the updates themselves.
-- A batch of up to 8 tasks ends row by row, each UPDATE a primary-key lookup whose
-- generic plan the function keeps; a larger batch still plans one UPDATE for all its
-- rows (omniq_complete_batch, the former function).

-- The former function, its per-call plan setting with it, under its new name.
ALTER FUNCTION omniq_complete(text[], text[], text[], text, float8, text)
    RENAME TO omniq_complete_batch;

-- No plan_cache_mode setting here: the row-by-row path wants the cached plans.
CREATE FUNCTION omniq_complete(p_ids text[], p_tokens text[], p_status text[],
    p_policy text, p_now float8, p_chan text,
    OUT done text[], OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
DECLARE
    ok text[] := '{}';
    bad text[] := '{}';
    v_st text;
BEGIN
    IF coalesce(cardinality(p_ids), 0) > 8 THEN
        SELECT c.done, c.released, c.cancelled INTO done, released, cancelled
        FROM omniq_complete_batch(p_ids, p_tokens, p_status, p_policy, p_now, p_chan) c;
        RETURN;
    END IF;
    done := '{}';
    FOR i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
        UPDATE tasks t SET status = p_status[i], finished_at = p_now, token = NULL,
                           lease_expires_at = NULL
        WHERE t.id = p_ids[i] AND t.token = p_tokens[i] AND t.status = 'running'
        RETURNING t.status INTO v_st;
        IF FOUND THEN
            done := done || p_ids[i];
            IF v_st = 'success' THEN
                ok := ok || p_ids[i];
            ELSE
                bad := bad || p_ids[i];
            END IF;
        END IF;
    END LOOP;
    SELECT r.released, r.cancelled INTO released, cancelled
    FROM omniq_resolve(ok, bad, p_policy, p_now, p_chan) r;
END $$;
