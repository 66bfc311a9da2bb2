-- Conditional dependents (Task.run_if): a task released once every dependency has
-- ended, whatever each ended in and whatever the dependency policy. Such a task waits
-- with a negative ``waiting`` (minus the dependencies still live): every ending counts
-- it up, nothing cancels it, and it becomes ready at 0.

-- Count up the conditional dependents of tasks that ended (before their edges go).
CREATE FUNCTION omniq_resolve_any(p_ids text[], p_chan text)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    rel_ids text[];
    nn bigint;
BEGIN
    IF cardinality(p_ids) = 0 THEN
        RETURN '{}';
    END IF;
    WITH inc AS (
        SELECT d.task_id, count(*) AS n FROM task_deps d
        WHERE d.depends_on = ANY(p_ids) GROUP BY d.task_id
    ), upd AS (
        UPDATE tasks t SET waiting = t.waiting + inc.n FROM inc
        WHERE t.id = inc.task_id AND t.status = 'pending' AND t.waiting < 0
        RETURNING t.id, t.waiting, t.queue
    ), rel AS (
        SELECT u.id, u.queue FROM upd u WHERE u.waiting >= 0
    ), note AS (
        SELECT pg_notify(p_chan, q.queue) FROM (SELECT DISTINCT queue FROM rel) q
    )
    SELECT coalesce(array_agg(rel.id ORDER BY rel.id), '{}'), (SELECT count(*) FROM note)
    INTO rel_ids, nn FROM rel;
    RETURN rel_ids;
END $$;

CREATE OR REPLACE FUNCTION omniq_resolve_deps(p_ok text[], p_failed text[], p_policy text,
    p_now float8, p_chan text, OUT released text[], OUT cancelled text[])
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
        released := omniq_resolve_any(p_ok, p_chan);
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
        SELECT released || coalesce(array_agg(rel.id ORDER BY rel.id), '{}'),
               (SELECT count(*) FROM note)
        INTO released, nn FROM rel;
        DELETE FROM task_deps WHERE depends_on = ANY(p_ok);
    END IF;
    frontier := p_failed;
    WHILE cardinality(frontier) > 0 LOOP
        released := released || omniq_resolve_any(frontier, p_chan);
        WITH c AS (
            UPDATE tasks t SET status = 'cancelled', finished_at = p_now, token = NULL
            WHERE t.id IN (SELECT d.task_id FROM task_deps d WHERE d.depends_on = ANY(frontier))
              AND t.status = 'pending' AND t.waiting >= 0 AND t.id <> ALL(released)
            RETURNING t.id
        )
        SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}') INTO nxt FROM c;
        DELETE FROM task_deps WHERE depends_on = ANY(frontier);
        cancelled := cancelled || nxt;
        frontier := nxt;
    END LOOP;
END $$;

-- omniq_enqueue, then the conditional tasks it stored (p_cond) wait for the dependencies
-- still live (none cancelled at enqueue for a dependency that failed before).
CREATE FUNCTION omniq_enqueue_cond(p_ids text[], p_queues text[], p_prios int[],
    p_etas float8[], p_exps float8[], p_keys text[], p_envs bytea[], p_dep_idx int[],
    p_dep_on text[], p_policy text, p_now float8, p_chan text, p_cond boolean[])
RETURNS TABLE(o_id text, o_existing boolean, o_status text, o_attempt int, o_eta float8,
    o_envelope bytea)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    i int := 0;
    deps text[];
    nwait int;
BEGIN
    FOR r IN SELECT * FROM omniq_enqueue(p_ids, p_queues, p_prios, p_etas, p_exps, p_keys,
        p_envs, p_dep_idx, p_dep_on, p_policy, p_now, p_chan) LOOP
        i := i + 1;
        IF NOT r.o_existing AND p_cond[i] THEN
            deps := ARRAY(SELECT p_dep_on[k] FROM generate_subscripts(p_dep_idx, 1) k
                          WHERE p_dep_idx[k] = i);
            SELECT count(*) INTO nwait FROM unnest(deps) d(dep)
                LEFT JOIN tasks t ON t.id = d.dep
                WHERE t.status IS NULL OR t.status IN ('pending', 'running');
            UPDATE tasks SET status = 'pending', finished_at = NULL, waiting = -nwait
            WHERE id = p_ids[i];
            DELETE FROM task_deps WHERE task_id = p_ids[i];
            INSERT INTO task_deps (depends_on, task_id)
            SELECT d.dep, p_ids[i] FROM unnest(deps) d(dep) LEFT JOIN tasks t ON t.id = d.dep
            WHERE t.status IS NULL OR t.status IN ('pending', 'running')
            ON CONFLICT DO NOTHING;
            IF nwait = 0 THEN
                PERFORM pg_notify(p_chan, p_queues[i]);
            END IF;
            r.o_status := 'pending';
        END IF;
        o_id := r.o_id; o_existing := r.o_existing; o_status := r.o_status;
        o_attempt := r.o_attempt; o_eta := r.o_eta; o_envelope := r.o_envelope;
        RETURN NEXT;
    END LOOP;
END $$;
