-- Standbys: a task claimed ahead to run in the slot of a running capped task of the
-- same worker once that run ends (omniq_claim_standby). Its row is running under its
-- own token with standby_of set to the token of the claim it stands by; while that
-- claim is running too, the two take one slot of the key (the running counts below).
-- A standby whose lease lapses gets the claim's attempt back, once per task (spared):
-- a worker that died holding a task it had not started costs that task no attempt,
-- while a task that brings its worker down on each run still runs out of attempts.

ALTER TABLE tasks ADD COLUMN standby_of text, ADD COLUMN spared boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION omniq_reclaim(p_now float8, p_chan text)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH u AS (
        UPDATE tasks t SET status = 'pending', token = NULL, lease_expires_at = NULL,
            worker_id = NULL,
            attempt = CASE WHEN t.standby_of IS NOT NULL AND NOT t.spared
                THEN greatest(0, t.attempt - 1) ELSE t.attempt END,
            spared = t.spared OR t.standby_of IS NOT NULL,
            standby_of = NULL
        WHERE t.status = 'running' AND t.lease_expires_at < p_now
        RETURNING t.id, t.queue
    ), note AS (
        SELECT pg_notify(p_chan, q.queue) FROM (SELECT DISTINCT queue FROM u) q
    )
    SELECT u.id FROM u WHERE (SELECT count(*) FROM note) >= 0;
END $$;

-- omniq_claim_limited of 0013_limited_claim_scan.sql, its running count leaving out
-- the standbys of running claims, and a lapsed standby's attempt given back once.
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
            WITH live AS (
                SELECT t.token, t.standby_of FROM tasks t
                WHERE t.limit_key = r.limit_key AND t.status = 'running'
                  AND t.lease_expires_at >= p_now
            )
            SELECT count(*) INTO v_running FROM live
            WHERE live.standby_of IS NULL
               OR live.standby_of NOT IN (SELECT l.token FROM live l);
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
        UPDATE tasks t SET status = 'running',
            attempt = t.attempt + CASE WHEN t.status = 'running'
                AND t.standby_of IS NOT NULL AND NOT t.spared THEN 0 ELSE 1 END,
            spared = t.spared OR (t.status = 'running' AND t.standby_of IS NOT NULL),
            standby_of = NULL,
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

-- A task of the key of p_behind (a cap without a rate), claimed to run in its slot
-- once its run ended: p_behind must be running under p_token with a live lease and
-- have no standby yet. The key's lock orders it with the other claims of the key.
CREATE FUNCTION omniq_claim_standby(
    p_qs text[], p_now float8, p_behind text, p_token text, p_worker text, p_until float8
)
RETURNS TABLE(o_id text, o_queue text, o_priority int, o_attempt int, o_token text,
              o_eta float8, o_envelope bytea, o_key text)
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
    v_id text;
BEGIN
    SELECT t.limit_key INTO v_key FROM tasks t
    WHERE t.id = p_behind AND t.token = p_token AND t.status = 'running'
      AND t.lease_expires_at >= p_now AND t.limit_cap IS NOT NULL AND t.limit_rate IS NULL;
    IF v_key IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(
        hashtextextended(current_schema() || ':omniq-limit:' || v_key, 0));
    IF EXISTS (SELECT 1 FROM tasks t
               WHERE t.limit_key = v_key AND t.status = 'running'
                 AND t.standby_of = p_token AND t.lease_expires_at >= p_now) THEN
        RETURN;
    END IF;
    SELECT t.id INTO v_id FROM tasks t
    WHERE t.limit_key = v_key AND t.queue = ANY(p_qs) AND t.status = 'pending'
      AND t.waiting = 0
      AND t.queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
      AND (t.eta IS NULL OR t.eta <= p_now)
      AND (t.expires_at IS NULL OR t.expires_at > p_now)
    ORDER BY t.priority DESC, t.id LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF v_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE tasks t SET status = 'running', attempt = t.attempt + 1,
        token = gen_random_uuid()::text, worker_id = p_worker, lease_expires_at = p_until,
        standby_of = p_token
    WHERE t.id = v_id
    RETURNING t.id, t.queue, t.priority, t.attempt, t.token, t.eta, t.envelope, t.limit_key;
END $$;
