-- The schema: tasks, dependency edges, results, events, schedules, and the PL/pgSQL
-- functions that change task state in one statement.

CREATE TABLE tasks (
    id text PRIMARY KEY,
    queue text NOT NULL,
    status text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    eta double precision,
    expires_at double precision,
    lease_expires_at double precision,
    token text,
    worker_id text,
    attempt integer NOT NULL DEFAULT 0,
    key text,
    waiting integer NOT NULL DEFAULT 0,
    finished_at double precision,
    envelope bytea NOT NULL
);
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, id)
    WHERE status = 'pending' AND waiting = 0;
CREATE INDEX tasks_ready_eta ON tasks (queue, eta) WHERE status = 'pending' AND waiting = 0;
CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
CREATE INDEX tasks_expiring ON tasks (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_live_key ON tasks (key)
    WHERE key IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX tasks_status ON tasks (status, queue, id);
CREATE INDEX tasks_queue ON tasks (queue, id);
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE task_deps (
    depends_on text NOT NULL,
    task_id text NOT NULL,
    PRIMARY KEY (depends_on, task_id)
);

CREATE TABLE results (
    task_id text PRIMARY KEY,
    status text NOT NULL,
    expires_at double precision,
    envelope bytea NOT NULL
);
CREATE INDEX results_expiry ON results (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE events (
    id text PRIMARY KEY,
    task_id text NOT NULL,
    type text NOT NULL,
    ts double precision NOT NULL,
    worker_id text,
    queue text,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_ts ON events (ts, id);
CREATE INDEX events_task ON events (task_id, ts, id);

CREATE TABLE schedules (
    id text PRIMARY KEY,
    state text NOT NULL,
    next_run_at double precision,
    envelope bytea NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE state = 'active';

-- Resolve the dependents of finished tasks: successes (and, under 'release',
-- failures) count down ``waiting``; under 'cancel' failures cancel transitively.
CREATE FUNCTION omniq_resolve(p_ok text[], p_failed text[], p_policy text, p_now float8,
    p_chan text, OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
DECLARE
    frontier text[];
    nxt text[];
    nn bigint;
BEGIN
    released := '{}';
    cancelled := '{}';
    IF p_policy = 'release' THEN
        p_ok := p_ok || p_failed;
        p_failed := '{}';
    END IF;
    IF cardinality(p_ok) > 0 THEN
        WITH dec AS (
            SELECT d.task_id, count(*) AS n FROM task_deps d
            WHERE d.depends_on = ANY(p_ok) GROUP BY d.task_id
        ), upd AS (
            UPDATE tasks t SET waiting = t.waiting - dec.n FROM dec
            WHERE t.id = dec.task_id AND t.status = 'pending' AND t.waiting > 0
            RETURNING t.id, t.waiting, t.queue
        ), rel AS (
            SELECT u.id, u.queue FROM upd u WHERE u.waiting <= 0
        ), note AS (
            SELECT pg_notify(p_chan, q.queue) FROM (SELECT DISTINCT queue FROM rel) q
        )
        SELECT coalesce(array_agg(rel.id ORDER BY rel.id), '{}'), (SELECT count(*) FROM note)
        INTO released, nn FROM rel;
        DELETE FROM task_deps WHERE depends_on = ANY(p_ok);
    END IF;
    frontier := p_failed;
    WHILE cardinality(frontier) > 0 LOOP
        WITH c AS (
            UPDATE tasks t SET status = 'cancelled', finished_at = p_now, token = NULL
            WHERE t.id IN (SELECT d.task_id FROM task_deps d WHERE d.depends_on = ANY(frontier))
              AND t.status = 'pending'
            RETURNING t.id
        )
        SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}') INTO nxt FROM c;
        DELETE FROM task_deps WHERE depends_on = ANY(frontier);
        cancelled := cancelled || nxt;
        frontier := nxt;
    END LOOP;
END $$;

CREATE FUNCTION omniq_enqueue(p_ids text[], p_queues text[], p_prios int[], p_etas float8[],
    p_exps float8[], p_keys text[], p_envs bytea[], p_dep_idx int[], p_dep_on text[],
    p_policy text, p_now float8, p_chan text)
RETURNS TABLE(o_id text, o_existing boolean, o_status text, o_attempt int, o_eta float8,
    o_envelope bytea)
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    ex record;
    deps text[];
    nwait int;
    nfail int;
    st text;
    ins text;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
        SELECT t.id, t.status, t.attempt, t.eta, t.envelope INTO ex FROM tasks t
        WHERE t.id = p_ids[i];
        IF NOT FOUND AND p_keys[i] IS NOT NULL THEN
            SELECT t.id, t.status, t.attempt, t.eta, t.envelope INTO ex FROM tasks t
            WHERE t.key = p_keys[i] AND t.status IN ('pending', 'running');
        END IF;
        IF FOUND THEN
            RETURN QUERY SELECT ex.id, true, ex.status, ex.attempt, ex.eta, ex.envelope;
            CONTINUE;
        END IF;
        deps := ARRAY(SELECT p_dep_on[k] FROM generate_subscripts(p_dep_idx, 1) k
                      WHERE p_dep_idx[k] = i);
        nwait := 0;
        nfail := 0;
        IF cardinality(deps) > 0 THEN
            -- Lock the dependencies so a concurrent completion cannot slip between
            -- reading their status and registering the edges.
            PERFORM 1 FROM tasks t WHERE t.id = ANY(deps) ORDER BY t.id FOR SHARE;
            SELECT count(*) FILTER (WHERE t.status IS NULL OR t.status IN ('pending', 'running')),
                   count(*) FILTER (WHERE t.status IN ('error', 'cancelled', 'expired'))
            INTO nwait, nfail
            FROM unnest(deps) d(dep) LEFT JOIN tasks t ON t.id = d.dep;
        END IF;
        st := CASE WHEN nfail > 0 AND p_policy = 'cancel' THEN 'cancelled' ELSE 'pending' END;
        INSERT INTO tasks (id, queue, status, priority, eta, expires_at, key, waiting,
                           finished_at, envelope)
        VALUES (p_ids[i], p_queues[i], st, p_prios[i], p_etas[i], p_exps[i], p_keys[i],
                CASE WHEN st = 'pending' THEN nwait ELSE 0 END,
                CASE WHEN st = 'pending' THEN NULL ELSE p_now END, p_envs[i])
        ON CONFLICT DO NOTHING
        RETURNING tasks.id INTO ins;
        IF ins IS NULL THEN
            SELECT t.id, t.status, t.attempt, t.eta, t.envelope INTO ex FROM tasks t
            WHERE t.id = p_ids[i]
               OR (t.key = p_keys[i] AND t.status IN ('pending', 'running'))
            LIMIT 1;
            RETURN QUERY SELECT ex.id, true, ex.status, ex.attempt, ex.eta, ex.envelope;
            CONTINUE;
        END IF;
        IF st = 'pending' AND nwait > 0 THEN
            INSERT INTO task_deps (depends_on, task_id)
            SELECT d.dep, p_ids[i] FROM unnest(deps) d(dep) LEFT JOIN tasks t ON t.id = d.dep
            WHERE t.status IS NULL OR t.status IN ('pending', 'running')
            ON CONFLICT DO NOTHING;
        ELSIF st = 'pending' THEN
            PERFORM pg_notify(p_chan, p_queues[i]);
        END IF;
        RETURN QUERY SELECT p_ids[i], false, st, 0, p_etas[i], NULL::bytea;
    END LOOP;
END $$;

CREATE FUNCTION omniq_complete(p_ids text[], p_tokens text[], p_status text[], p_policy text,
    p_now float8, p_chan text,
    OUT done text[], OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
DECLARE
    ok text[];
    bad text[];
BEGIN
    WITH upd AS (
        UPDATE tasks t SET status = i.st, finished_at = p_now, token = NULL,
                           lease_expires_at = NULL
        FROM unnest(p_ids, p_tokens, p_status) AS i(tid, tok, st)
        WHERE t.id = i.tid AND t.token = i.tok AND t.status = 'running'
        RETURNING t.id, t.status
    )
    SELECT coalesce(array_agg(u.id), '{}'),
           coalesce(array_agg(u.id) FILTER (WHERE u.status = 'success'), '{}'),
           coalesce(array_agg(u.id) FILTER (WHERE u.status <> 'success'), '{}')
    INTO done, ok, bad FROM upd u;
    SELECT r.released, r.cancelled INTO released, cancelled
    FROM omniq_resolve(ok, bad, p_policy, p_now, p_chan) r;
END $$;

CREATE FUNCTION omniq_cancel(p_ids text[], p_policy text, p_now float8, p_chan text,
    OUT done text[], OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
BEGIN
    WITH c AS (
        UPDATE tasks t SET status = 'cancelled', finished_at = p_now, token = NULL,
                           lease_expires_at = NULL
        WHERE t.id = ANY(p_ids) AND t.status IN ('pending', 'running')
        RETURNING t.id
    )
    SELECT coalesce(array_agg(c.id), '{}') INTO done FROM c;
    SELECT r.released, r.cancelled INTO released, cancelled
    FROM omniq_resolve('{}', done, p_policy, p_now, p_chan) r;
END $$;

CREATE FUNCTION omniq_expire(p_policy text, p_now float8, p_chan text,
    OUT done text[], OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
BEGIN
    WITH c AS (
        UPDATE tasks t SET status = 'expired', finished_at = p_now
        WHERE t.status = 'pending' AND t.expires_at IS NOT NULL AND t.expires_at <= p_now
        RETURNING t.id
    )
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}') INTO done FROM c;
    SELECT r.released, r.cancelled INTO released, cancelled
    FROM omniq_resolve('{}', done, p_policy, p_now, p_chan) r;
END $$;

-- Back to pending: a retry (new eta) or a release (attempt given back).
CREATE FUNCTION omniq_requeue(p_ids text[], p_tokens text[], p_etas float8[],
    p_giveback boolean, p_chan text)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH u AS (
        UPDATE tasks t SET status = 'pending', token = NULL, lease_expires_at = NULL,
            worker_id = NULL,
            eta = CASE WHEN p_giveback THEN t.eta ELSE i.eta END,
            attempt = CASE WHEN p_giveback THEN greatest(t.attempt - 1, 0) ELSE t.attempt END
        FROM unnest(p_ids, p_tokens, p_etas) AS i(tid, tok, eta)
        WHERE t.id = i.tid AND t.token = i.tok AND t.status = 'running'
        RETURNING t.id, t.queue
    ), note AS (
        SELECT pg_notify(p_chan, q.queue) FROM (SELECT DISTINCT queue FROM u) q
    )
    SELECT u.id FROM u WHERE (SELECT count(*) FROM note) >= 0;
END $$;

CREATE FUNCTION omniq_reclaim(p_now float8, p_chan text)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH u AS (
        UPDATE tasks t SET status = 'pending', token = NULL, lease_expires_at = NULL,
            worker_id = NULL
        WHERE t.status = 'running' AND t.lease_expires_at < p_now
        RETURNING t.id, t.queue
    ), note AS (
        SELECT pg_notify(p_chan, q.queue) FROM (SELECT DISTINCT queue FROM u) q
    )
    SELECT u.id FROM u WHERE (SELECT count(*) FROM note) >= 0;
END $$;
