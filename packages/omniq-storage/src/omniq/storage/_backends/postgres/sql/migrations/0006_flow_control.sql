-- Flow limits (Task.rate_limit / Task.max_concurrency per limit key). A limited task
-- carries its key and limits in its row; the plain claim statements take only rows
-- whose limit_key is NULL, and omniq_claim_limited claims the others within their
-- limits. A key's running count is its rows running under a lease that has not
-- lapsed; its starts are rows of limit_starts inside the rate window.

ALTER TABLE tasks ADD COLUMN limit_key text;
ALTER TABLE tasks ADD COLUMN limit_cap int;
ALTER TABLE tasks ADD COLUMN limit_rate int;
ALTER TABLE tasks ADD COLUMN limit_per float8;

CREATE INDEX tasks_limited_ready ON tasks (queue, priority DESC, id)
    WHERE status = 'pending' AND waiting = 0 AND limit_key IS NOT NULL;
CREATE INDEX tasks_limited_running ON tasks (limit_key, lease_expires_at)
    WHERE status = 'running' AND limit_key IS NOT NULL;
CREATE INDEX tasks_limited_key ON tasks (limit_key) WHERE limit_key IS NOT NULL;

CREATE TABLE limit_starts (
    key text NOT NULL,
    at float8 NOT NULL
);
CREATE INDEX limit_starts_key ON limit_starts (key, at);

-- Claim up to p_n limited tasks of the queues p_qs. Each key is serialized by a
-- transaction-scoped advisory lock (schema-qualified), taken before its usage is
-- read, so concurrent claims of one key see each other's committed starts. Rows
-- with o_id NULL name a key that held tasks back (o_key).
CREATE FUNCTION omniq_claim_limited(
    p_qs text[], p_now float8, p_n int, p_worker text, p_until float8, p_scan int
)
RETURNS TABLE(o_id text, o_queue text, o_priority int, o_attempt int, o_token text,
              o_eta float8, o_envelope bytea, o_key text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    got int := 0;
    full_keys text[] := '{}';
    locked text[] := '{}';
    v_running int;
    v_starts int;
    v_id text;
    -- The window is checked at the server's clock when the claim begins, and the
    -- starts are stamped when it ends (re-stamped below): the tasks start just after
    -- the stamp, however long the claim took.
    v_t float8 := extract(epoch FROM clock_timestamp());
BEGIN
    FOR r IN
        SELECT c.id, c.limit_key, c.limit_cap, c.limit_rate, c.limit_per FROM (
            SELECT t.id, t.priority, t.limit_key, t.limit_cap, t.limit_rate, t.limit_per
            FROM tasks t
            WHERE t.queue = ANY(p_qs) AND t.status = 'pending' AND t.waiting = 0
              AND t.limit_key IS NOT NULL
              AND t.queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
              AND (t.eta IS NULL OR t.eta <= p_now)
              AND (t.expires_at IS NULL OR t.expires_at > p_now)
            UNION ALL
            SELECT t.id, t.priority, t.limit_key, t.limit_cap, t.limit_rate, t.limit_per
            FROM tasks t
            WHERE t.status = 'running' AND t.lease_expires_at < p_now
              AND t.limit_key IS NOT NULL AND t.queue = ANY(p_qs)
              AND t.queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
        ) c ORDER BY c.priority DESC, c.id LIMIT p_scan
    LOOP
        EXIT WHEN got >= p_n;
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
                CONTINUE;
            END IF;
        END IF;
        IF r.limit_rate IS NOT NULL THEN
            SELECT count(*) INTO v_starts FROM limit_starts s
            WHERE s.key = r.limit_key AND s.at > v_t - r.limit_per;
            IF v_starts >= r.limit_rate THEN
                full_keys := full_keys || r.limit_key;
                CONTINUE;
            END IF;
        END IF;
        -- Taken by another claim since the scan: skip it (it is no longer ours).
        SELECT t.id INTO v_id FROM tasks t
        WHERE t.id = r.id AND (t.status = 'pending'
              OR (t.status = 'running' AND t.lease_expires_at < p_now))
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN v_id IS NULL;
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
    UPDATE limit_starts s SET at = extract(epoch FROM clock_timestamp())
    WHERE s.key = ANY(locked) AND s.at = v_t;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::int, NULL::int, NULL::text,
        NULL::float8, NULL::bytea, k FROM unnest(full_keys) AS k;
END $$;

-- Requeue with the attempt given back now also takes an eta when one is given (a
-- circuit-breaker deferral: pending again later, no attempt consumed); a release
-- passes NULL and keeps the task's eta.
CREATE OR REPLACE FUNCTION omniq_requeue(p_ids text[], p_tokens text[], p_etas float8[],
    p_giveback boolean, p_chan text)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH u AS (
        UPDATE tasks t SET status = 'pending', token = NULL, lease_expires_at = NULL,
            worker_id = NULL,
            eta = CASE WHEN p_giveback THEN coalesce(i.eta, t.eta) ELSE i.eta END,
            attempt = CASE WHEN p_giveback THEN greatest(t.attempt - 1, 0) ELSE t.attempt END
        FROM unnest(p_ids, p_tokens, p_etas) AS i(tid, tok, eta)
        WHERE t.id = i.tid AND t.token = i.tok AND t.status = 'running'
        RETURNING t.id, t.queue
    ), note AS (
        SELECT pg_notify(p_chan, q.queue) FROM (SELECT DISTINCT queue FROM u) q
    )
    SELECT u.id FROM u WHERE (SELECT count(*) FROM note) >= 0;
END $$;
