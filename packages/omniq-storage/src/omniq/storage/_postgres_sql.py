"""Schema migrations and statements of the PostgreSQL backend.

Migrations run in order inside one transaction holding ``pg_advisory_xact_lock`` on
the schema's name, and are recorded in ``omniq_migrations``; so startup is idempotent
and two processes starting at once do not race. Everything lives in one schema (the
``schema`` option), found through the pool's ``search_path``.
"""

from __future__ import annotations

V1 = r"""
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
"""

# V2: resolution returns at once when none of the finished tasks has a dependent (the
# common case), instead of running its aggregate/UPDATE/DELETE statements for nothing.
V2 = r"""
CREATE OR REPLACE FUNCTION omniq_resolve(p_ok text[], p_failed text[], p_policy text,
    p_now float8, p_chan text, OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
DECLARE
    frontier text[];
    nxt text[];
    nn bigint;
BEGIN
    released := '{}';
    cancelled := '{}';
    IF NOT EXISTS (SELECT 1 FROM task_deps d WHERE d.depends_on = ANY(p_ok || p_failed)) THEN
        RETURN;
    END IF;
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
"""

MIGRATIONS: list[tuple[int, str]] = [(1, V1), (2, V2)]

CLAIM_ANY = """
WITH ready AS (
    SELECT id, priority FROM tasks
    WHERE queue = ANY($1::text[]) AND status = 'pending' AND waiting = 0
      AND (eta IS NULL OR eta <= $2) AND (expires_at IS NULL OR expires_at > $2)
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id, priority FROM tasks
    WHERE status = 'running' AND lease_expires_at < $2 AND queue = ANY($1::text[])
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT c.id FROM (SELECT * FROM ready UNION ALL SELECT * FROM lapsed) c
    ORDER BY c.priority DESC, c.id LIMIT $3
)
UPDATE tasks t SET status = 'running', attempt = t.attempt + 1,
    token = gen_random_uuid()::text, worker_id = $4, lease_expires_at = $5
FROM pick WHERE t.id = pick.id
RETURNING t.id, t.priority, t.attempt, t.token, t.eta, t.envelope
"""

# Enqueue fast path (no task in the batch has dependencies): one set-based INSERT and
# one NOTIFY per queue instead of the per-row PL/pgSQL loop. Rows that hit an existing
# id or live key are left out of RETURNING; the caller resolves those through
# omniq_enqueue, which returns the stored task.
ENQUEUE_PLAIN = """
WITH ins AS (
    INSERT INTO tasks (id, queue, status, priority, eta, expires_at, key, waiting, envelope)
    SELECT i.id, i.queue, 'pending', i.priority, i.eta, i.expires_at, i.key, 0, i.envelope
    FROM unnest($1::text[], $2::text[], $3::int[], $4::float8[], $5::float8[], $6::text[],
                $7::bytea[]) WITH ORDINALITY AS i(id, queue, priority, eta, expires_at, key,
                                                  envelope, ord)
    ORDER BY i.ord
    ON CONFLICT DO NOTHING
    RETURNING id, queue
), note AS (
    SELECT pg_notify($8, q.queue) FROM (SELECT DISTINCT queue FROM ins) q
)
SELECT ins.id FROM ins WHERE (SELECT count(*) FROM note) >= 0
"""

RENEW = """
UPDATE tasks t SET lease_expires_at = $3
FROM unnest($1::text[], $2::text[]) AS i(tid, tok)
WHERE t.id = i.tid AND t.token = i.tok AND t.status = 'running'
RETURNING t.id
"""

WAIT_PROBE = """
SELECT
    EXISTS (SELECT 1 FROM tasks WHERE queue = ANY($1::text[]) AND status = 'pending'
            AND waiting = 0 AND eta IS NULL) AS ready_now,
    (SELECT min(eta) FROM tasks WHERE queue = ANY($1::text[]) AND status = 'pending'
            AND waiting = 0 AND eta IS NOT NULL) AS next_eta,
    (SELECT min(lease_expires_at) FROM tasks WHERE status = 'running'
            AND queue = ANY($1::text[])) AS next_lease
"""

RESULT_PUT = """
WITH ins AS (
    INSERT INTO results (task_id, status, expires_at, envelope)
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bytea[])
    ON CONFLICT (task_id) DO UPDATE
        SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            envelope = EXCLUDED.envelope
    RETURNING task_id
)
SELECT count(pg_notify($5, ins.task_id)) FROM ins
"""

EVENT_APPEND = """
INSERT INTO events (id, task_id, type, ts, worker_id, queue, metadata)
SELECT i.id, i.task_id, i.type, i.ts, i.worker_id, i.queue, i.metadata::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[],
            $7::text[]) AS i(id, task_id, type, ts, worker_id, queue, metadata)
ON CONFLICT (id) DO NOTHING
"""

# One queue (the common case): equality lets the planner walk tasks_ready in order
# instead of sorting every ready row.
CLAIM_ONE = CLAIM_ANY.replace("queue = ANY($1::text[])", "queue = ($1::text[])[1]")
