-- omniq_claim_limited streams the ready limited tasks instead of sorting them all: for
-- one queue it walks tasks_limited_ready in order (a cursor that stops at the first
-- rows it needs), and the lapsed limited tasks (few) are merged in by priority. When a
-- key turns out full, the walk restarts without that key's rows (for the first eight
-- full keys), so the backlog of a capped key is skipped inside the index scan rather
-- than row by row while the key's lock is held.

CREATE OR REPLACE FUNCTION omniq_claim_limited(
    p_qs text[], p_now float8, p_n int, p_worker text, p_until float8, p_scan int
)
RETURNS TABLE(o_id text, o_queue text, o_priority int, o_attempt int, o_token text,
              o_eta float8, o_envelope bytea, o_key text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    rp record;
    rl record;
    have_p boolean;
    have_l boolean;
    cp refcursor;
    cl refcursor;
    reopen boolean := true;
    seen int := 0;
    got int := 0;
    full_keys text[] := '{}';
    locked text[] := '{}';
    skipped text[] := '{}';
    v_q text := p_qs[1];
    v_one boolean := cardinality(p_qs) = 1;
    v_running int;
    v_starts int;
    v_recent int;
    v_burst int;
    v_id text;
    v_at float8;
    v_wait float8[] := '{}';
    -- The window is checked at the server's clock when the claim begins, and the
    -- starts are stamped when it ends (re-stamped below): the tasks start just after
    -- the stamp, however long the claim took.
    v_t float8 := extract(epoch FROM clock_timestamp());
BEGIN
    OPEN cl FOR
        SELECT t.id, t.priority, t.limit_key, t.limit_cap, t.limit_rate, t.limit_per
        FROM tasks t
        WHERE t.status = 'running' AND t.lease_expires_at < p_now
          AND t.limit_key IS NOT NULL AND t.queue = ANY(p_qs)
          AND t.queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
        ORDER BY t.priority DESC, t.id;
    FETCH cl INTO rl;
    have_l := FOUND;
    LOOP
        EXIT WHEN got >= p_n OR seen >= p_scan;
        IF reopen THEN
            -- Every row taken so far is excluded by the filters: claimed (running now),
            -- of a full key, or skipped as another claim's.
            IF cp IS NOT NULL THEN
                CLOSE cp;
            END IF;
            IF v_one THEN
                OPEN cp FOR
                    SELECT t.id, t.priority, t.limit_key, t.limit_cap, t.limit_rate,
                        t.limit_per
                    FROM tasks t
                    WHERE t.queue = v_q AND t.status = 'pending' AND t.waiting = 0
                      AND t.limit_key IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = v_q)
                      AND (t.eta IS NULL OR t.eta <= p_now)
                      AND (t.expires_at IS NULL OR t.expires_at > p_now)
                      AND t.limit_key <> ALL(full_keys) AND t.id <> ALL(skipped)
                    ORDER BY t.priority DESC, t.id;
            ELSE
                OPEN cp FOR
                    SELECT t.id, t.priority, t.limit_key, t.limit_cap, t.limit_rate,
                        t.limit_per
                    FROM tasks t
                    WHERE t.queue = ANY(p_qs) AND t.status = 'pending' AND t.waiting = 0
                      AND t.limit_key IS NOT NULL
                      AND t.queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
                      AND (t.eta IS NULL OR t.eta <= p_now)
                      AND (t.expires_at IS NULL OR t.expires_at > p_now)
                      AND t.limit_key <> ALL(full_keys) AND t.id <> ALL(skipped)
                    ORDER BY t.priority DESC, t.id;
            END IF;
            FETCH cp INTO rp;
            have_p := FOUND;
            reopen := false;
        END IF;
        IF have_l AND (NOT have_p OR rl.priority > rp.priority
                       OR (rl.priority = rp.priority AND rl.id < rp.id)) THEN
            r := rl;
            FETCH cl INTO rl;
            have_l := FOUND;
        ELSIF have_p THEN
            r := rp;
            FETCH cp INTO rp;
            have_p := FOUND;
        ELSE
            EXIT;
        END IF;
        seen := seen + 1;
        CONTINUE WHEN r.limit_key = ANY(full_keys);
        IF NOT r.limit_key = ANY(locked) THEN
            PERFORM pg_advisory_xact_lock(
                hashtextextended(current_schema() || ':omniq-limit:' || r.limit_key, 0));
            locked := locked || r.limit_key;
        END IF;
        IF r.limit_cap IS NOT NULL THEN
            SELECT count(*) INTO v_running FROM tasks t
            WHERE t.limit_key = r.limit_key AND t.status = 'running'
              AND t.lease_expires_at >= p_now;
            IF v_running >= r.limit_cap THEN
                full_keys := full_keys || r.limit_key;
                v_wait := v_wait || NULL::float8;
                reopen := cardinality(full_keys) <= 8;
                CONTINUE;
            END IF;
        END IF;
        IF r.limit_rate IS NOT NULL THEN
            v_burst := greatest(least(r.limit_rate, 10), ceil(r.limit_rate / 5.0)::int);
            SELECT count(*), count(*) FILTER (
                       WHERE s.at > v_t - 0.8 * r.limit_per * v_burst / r.limit_rate)
            INTO v_starts, v_recent FROM limit_starts s
            WHERE s.key = r.limit_key AND s.at > v_t - r.limit_per;
            IF v_starts >= r.limit_rate OR v_recent >= v_burst THEN
                -- Budget again when the window's (starts - rate + 1)-th oldest start
                -- ages out of it, and the burst's burst-th newest out of the burst's.
                v_at := v_t;
                IF v_starts >= r.limit_rate THEN
                    SELECT s.at + r.limit_per INTO v_at FROM limit_starts s
                    WHERE s.key = r.limit_key AND s.at > v_t - r.limit_per
                    ORDER BY s.at OFFSET v_starts - r.limit_rate LIMIT 1;
                END IF;
                IF v_recent >= v_burst THEN
                    SELECT greatest(v_at, s.at + 0.8 * r.limit_per * v_burst / r.limit_rate)
                    INTO v_at FROM limit_starts s
                    WHERE s.key = r.limit_key AND s.at > v_t - r.limit_per
                    ORDER BY s.at DESC OFFSET v_burst - 1 LIMIT 1;
                END IF;
                full_keys := full_keys || r.limit_key;
                v_wait := v_wait || greatest(0, coalesce(v_at, v_t) - v_t);
                reopen := cardinality(full_keys) <= 8;
                CONTINUE;
            END IF;
        END IF;
        -- Taken by another claim since the scan: skip it (it is no longer ours).
        SELECT t.id INTO v_id FROM tasks t
        WHERE t.id = r.id AND (t.status = 'pending'
              OR (t.status = 'running' AND t.lease_expires_at < p_now))
        FOR UPDATE SKIP LOCKED;
        IF v_id IS NULL THEN
            skipped := skipped || r.id;
            CONTINUE;
        END IF;
        IF r.limit_rate IS NOT NULL THEN
            INSERT INTO limit_starts VALUES (r.limit_key, v_t);
            DELETE FROM limit_starts s WHERE s.key = r.limit_key AND s.at <= v_t - r.limit_per;
        END IF;
        got := got + 1;
        RETURN QUERY
        UPDATE tasks t SET status = 'running', attempt = t.attempt + 1,
            token = gen_random_uuid()::text, worker_id = p_worker, lease_expires_at = p_until
        WHERE t.id = v_id
        RETURNING t.id, t.queue, t.priority, t.attempt, t.token, t.eta, t.envelope,
                  t.limit_key;
    END LOOP;
    CLOSE cl;
    CLOSE cp;
    UPDATE limit_starts s SET at = extract(epoch FROM clock_timestamp())
    WHERE s.key = ANY(locked) AND s.at = v_t;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::int, NULL::int, NULL::text,
        w, NULL::bytea, k FROM unnest(full_keys, v_wait) AS u(k, w);
END $$;

-- The finish statement (completions and their results) and then omniq_claim_limited
-- for the slots it freed, in one call: one round trip and one transaction for a
-- worker ending capped tasks. The first row is the finish's report (f_done set, the
-- claim's columns NULL); the others are omniq_claim_limited's rows.
CREATE FUNCTION omniq_finish_claim(
    p_ids text[], p_tokens text[], p_status text[], p_policy text, p_now float8,
    p_chan text, p_rids text[], p_rstatus text[], p_rexp float8[], p_renv bytea[],
    p_rchan text, p_qs text[], p_n int, p_worker text, p_until float8, p_scan int
)
RETURNS TABLE(f_done text[], f_released text[], f_cancelled text[], o_id text,
              o_queue text, o_priority int, o_attempt int, o_token text, o_eta float8,
              o_envelope bytea, o_key text)
LANGUAGE plpgsql AS $$
DECLARE
    v_done text[];
    v_released text[];
    v_cancelled text[];
    v_stored bigint;
BEGIN
    WITH fin AS (
        SELECT * FROM omniq_complete(p_ids, p_tokens, p_status, p_policy, p_now, p_chan)
    ), ins AS (
        INSERT INTO results (task_id, status, expires_at, envelope)
        SELECT i.tid, i.st, i.exp, i.env
        FROM unnest(p_rids, p_rstatus, p_rexp, p_renv) AS i(tid, st, exp, env)
        WHERE i.tid IN (SELECT unnest(fin.done) FROM fin)
        ON CONFLICT (task_id) DO UPDATE
            SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
                envelope = EXCLUDED.envelope
        RETURNING task_id
    )
    SELECT fin.done, fin.released, fin.cancelled,
        (SELECT count(pg_notify(p_rchan, ins.task_id)) FROM ins)
    INTO v_done, v_released, v_cancelled, v_stored
    FROM fin;
    RETURN QUERY SELECT v_done, v_released, v_cancelled, NULL::text, NULL::text,
        NULL::int, NULL::int, NULL::text, NULL::float8, NULL::bytea, NULL::text;
    RETURN QUERY SELECT NULL::text[], NULL::text[], NULL::text[], c.o_id, c.o_queue,
        c.o_priority, c.o_attempt, c.o_token, c.o_eta, c.o_envelope, c.o_key
    FROM omniq_claim_limited(p_qs, p_now, p_n, p_worker, p_until, p_scan) c;
END $$;
