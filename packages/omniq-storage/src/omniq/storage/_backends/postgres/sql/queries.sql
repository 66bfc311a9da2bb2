-- Statements of the PostgreSQL backend, one per "-- name: <name>" header; the
-- comment lines after a header describe the statement. Loaded by ``_sql.query``.

-- name: claim_any
-- Lease up to $3 ready (or, when $6, lapsed) tasks of the queues $1 that are not
-- paused, highest priority first. The paused queues are read once (an InitPlan) and
-- filter rows, so the planner still sees the queues $1 in the index condition. $6 is
-- a one-time filter: the lapsed scan walks the dead index entries of every task run
-- since the last vacuum, so the caller asks for it only now and then. When fewer than
-- $3 rows were leased, a last row with every column NULL and ``limited`` true says that
-- flow-limited tasks (which these statements leave alone) may be claimable: only then
-- does the caller run claim_limited (two probes of the small limited-task indexes).
WITH ready AS (
    SELECT id, priority FROM tasks
    WHERE queue = ANY($1::text[]) AND status = 'pending' AND waiting = 0
      AND queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
      AND (eta IS NULL OR eta <= $2) AND (expires_at IS NULL OR expires_at > $2) AND limit_key IS NULL
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id, priority FROM tasks
    WHERE $6::boolean AND status = 'running' AND lease_expires_at < $2
      AND queue = ANY($1::text[]) AND queue <> ALL(ARRAY(SELECT queue FROM paused_queues))
      AND limit_key IS NULL
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT c.id FROM (SELECT * FROM ready UNION ALL SELECT * FROM lapsed) c
    ORDER BY c.priority DESC, c.id LIMIT $3
), got AS (
    UPDATE tasks t SET status = 'running', attempt = t.attempt + 1,
        token = gen_random_uuid()::text, worker_id = $4, lease_expires_at = $5
    FROM pick WHERE t.id = pick.id
    RETURNING t.id, t.queue, t.priority, t.attempt, t.token, t.eta, t.envelope
)
SELECT got.*, false AS limited FROM got
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, true
WHERE (SELECT count(*) FROM got) < $3 AND (
    EXISTS (SELECT 1 FROM tasks l WHERE l.queue = ANY($1::text[]) AND l.status = 'pending'
            AND l.waiting = 0 AND l.limit_key IS NOT NULL AND (l.eta IS NULL OR l.eta <= $2))
    OR EXISTS (SELECT 1 FROM tasks l WHERE l.status = 'running' AND l.limit_key IS NOT NULL
               AND l.lease_expires_at < $2 AND l.queue = ANY($1::text[])));

-- name: claim_one
-- claim_any for one queue: equality lets the planner walk tasks_ready in order
-- instead of sorting every ready row; the paused test is a one-time filter. The same
-- last row flags limited tasks.
WITH ready AS (
    SELECT id, priority FROM tasks
    WHERE queue = ($1::text[])[1] AND status = 'pending' AND waiting = 0
      AND (eta IS NULL OR eta <= $2) AND (expires_at IS NULL OR expires_at > $2) AND limit_key IS NULL
      AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = ($1::text[])[1])
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id, priority FROM tasks
    WHERE $6::boolean AND status = 'running' AND lease_expires_at < $2
      AND queue = ($1::text[])[1]
      AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = ($1::text[])[1])
      AND limit_key IS NULL
    ORDER BY priority DESC, id LIMIT $3 FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT c.id FROM (SELECT * FROM ready UNION ALL SELECT * FROM lapsed) c
    ORDER BY c.priority DESC, c.id LIMIT $3
), got AS (
    UPDATE tasks t SET status = 'running', attempt = t.attempt + 1,
        token = gen_random_uuid()::text, worker_id = $4, lease_expires_at = $5
    FROM pick WHERE t.id = pick.id
    RETURNING t.id, t.queue, t.priority, t.attempt, t.token, t.eta, t.envelope
)
SELECT got.*, false AS limited FROM got
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, true
WHERE (SELECT count(*) FROM got) < $3 AND (
    EXISTS (SELECT 1 FROM tasks l WHERE l.queue = ANY($1::text[]) AND l.status = 'pending'
            AND l.waiting = 0 AND l.limit_key IS NOT NULL AND (l.eta IS NULL OR l.eta <= $2))
    OR EXISTS (SELECT 1 FROM tasks l WHERE l.status = 'running' AND l.limit_key IS NOT NULL
               AND l.lease_expires_at < $2 AND l.queue = ANY($1::text[])));

-- name: claim_limited
-- The limited tasks (limit_key set) within their limits; see 0006_flow_control.sql.
SELECT * FROM omniq_claim_limited($1, $2, $3, $4, $5, $6);

-- name: claim_standby
-- A task claimed to run in the slot of the running claim ($3 id, $4 token) once its
-- run ended; see 0016_limit_standby.sql.
SELECT * FROM omniq_claim_standby($1, $2, $3, $4, $5, $6);

-- name: finish_claim
-- finish, then claim_limited for the slots it freed, in one call (see
-- 0013_limited_claim_scan.sql): the first row is the finish's report.
SELECT * FROM omniq_finish_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
    $14, $15, $16);

-- name: set_limits
-- The limits of freshly stored tasks, in the transaction that stored them.
UPDATE tasks t SET limit_key = i.k, limit_cap = i.cap, limit_rate = i.rate,
    limit_per = i.per
FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::float8[])
    AS i(tid, k, cap, rate, per)
WHERE t.id = i.tid;

-- name: limit_usage
-- Every limit key's newest limits, running count (a standby of a running claim takes
-- no slot of its own) and starts in its rate window.
SELECT k.limit_key, k.limit_cap, k.limit_rate, k.limit_per,
    (SELECT count(*) FROM tasks r WHERE r.limit_key = k.limit_key AND r.status = 'running'
        AND r.lease_expires_at >= $1
        AND (r.standby_of IS NULL OR NOT EXISTS (
            SELECT 1 FROM tasks p WHERE p.limit_key = k.limit_key AND p.status = 'running'
              AND p.lease_expires_at >= $1 AND p.token = r.standby_of))) AS running,
    (SELECT count(*) FROM limit_starts s WHERE s.key = k.limit_key
        AND s.at > $1 - coalesce(k.limit_per, 0)) AS starts
FROM (
    SELECT DISTINCT ON (limit_key) limit_key, limit_cap, limit_rate, limit_per FROM tasks
    WHERE limit_key IS NOT NULL
    ORDER BY limit_key, (status IN ('pending', 'running')) DESC, id DESC
) k ORDER BY k.limit_key;

-- name: notify_many
-- One NOTIFY on channel $1 per payload $2 (flow limits: slots freed on a queue).
SELECT pg_notify($1, x) FROM unnest($2::text[]) x;

-- name: unique_lock
-- Unique jobs: the transaction-scoped advisory lock of each key $1 (schema-qualified,
-- in key order), taken before the keys' windows are read.
SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':unique:' || k, 0))
FROM (SELECT k FROM unnest($1::text[]) k ORDER BY k) s;

-- name: unique_holders
-- The tasks whose unique_for window (ending after $2) holds one of the keys $1.
SELECT u.key AS o_key, t.id AS o_id, t.queue AS o_queue, t.status AS o_status,
       t.attempt AS o_attempt, t.eta AS o_eta, t.envelope AS o_envelope
FROM task_unique u JOIN tasks t ON t.id = u.task_id
WHERE u.key = ANY($1::text[]) AND u.until > $2;

-- name: unique_reserve
-- Keys $1 taken by tasks $2 until the ends of their windows $3.
INSERT INTO task_unique (key, task_id, until)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])
ON CONFLICT (key) DO UPDATE SET task_id = EXCLUDED.task_id, until = EXCLUDED.until;

-- name: unique_replace
-- on_conflict="replace": the pending holder $1 takes envelope $2 and eta $3; its queue
-- is notified on channel $4. No row when it is no longer pending.
WITH up AS (
    UPDATE tasks SET envelope = $2, eta = $3 WHERE id = $1 AND status = 'pending'
    RETURNING id, queue
)
SELECT up.id, pg_notify($4, up.queue) FROM up;

-- name: unique_current
-- A holder as it is now (after a replace found it no longer pending).
SELECT t.id AS o_id, t.status AS o_status, t.attempt AS o_attempt, t.eta AS o_eta,
       t.envelope AS o_envelope
FROM tasks t WHERE t.id = $1;

-- name: unique_prune
-- Windows that ended before $1 (they hold nothing any more), at most $2 of them.
DELETE FROM task_unique WHERE key IN (
    SELECT key FROM task_unique WHERE until <= $1 LIMIT $2
);

-- name: enqueue_plain
-- Enqueue fast path (no task in the batch has dependencies): one set-based INSERT and
-- one NOTIFY per queue. Rows that hit an existing id or live key are left out of
-- RETURNING; the caller resolves those through omniq_enqueue.
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
SELECT ins.id FROM ins WHERE (SELECT count(*) FROM note) >= 0;

-- name: enqueue_one
-- enqueue_plain for one task, without arrays: the single enqueue of a web handler.
-- Handover: a task ready now ($4 NULL or due by $9) whose envelope fits a NOTIFY
-- payload, into a queue that is not paused and has nothing ready, goes to the worker
-- that registered idle on that queue last (idle_workers, registration still valid at
-- $9): stored running, attempt 1, leased to it for at most $10 seconds, and sent on its
-- channel as worker, token, lease end and base64 envelope, unit-separated. The other
-- tasks are stored pending and wake the queue's waiters on the work channel $8. The
-- idle and paused tests are correlated with the registration row, so an enqueue that
-- finds nobody idle pays one probe of the small registration table.
WITH pick AS (
    SELECT w.queue, w.worker_id, w.channel, w.lease FROM idle_workers w
    WHERE w.queue = $2 AND w.until > $9 AND ($4::float8 IS NULL OR $4 <= $9)
      AND octet_length($7::bytea) <= 5000
      AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = w.queue)
      AND NOT EXISTS (SELECT 1 FROM tasks r WHERE r.queue = w.queue AND r.status = 'pending'
                      AND r.waiting = 0 AND (r.eta IS NULL OR r.eta <= $9))
    ORDER BY w.until DESC LIMIT 1 FOR UPDATE SKIP LOCKED
), idle AS (
    DELETE FROM idle_workers d USING pick
    WHERE d.queue = pick.queue AND d.worker_id = pick.worker_id
    RETURNING pick.worker_id, pick.channel, $9 + least($10::float8, pick.lease) AS lease_end,
              gen_random_uuid()::text AS token
), ins AS (
    INSERT INTO tasks (id, queue, status, priority, eta, expires_at, key, waiting, envelope,
                       attempt, token, worker_id, lease_expires_at, pushed)
    SELECT $1, $2, CASE WHEN i.token IS NULL THEN 'pending' ELSE 'running' END, $3, $4, $5,
           $6, 0, $7, CASE WHEN i.token IS NULL THEN 0 ELSE 1 END, i.token, i.worker_id,
           i.lease_end, i.token
    FROM (SELECT 1) one LEFT JOIN idle i ON true
    ON CONFLICT DO NOTHING
    RETURNING id, queue, token, worker_id, lease_expires_at
)
SELECT ins.id, CASE
    WHEN ins.token IS NULL THEN pg_notify($8, ins.queue)
    ELSE pg_notify(i.channel, concat_ws(chr(31), ins.worker_id, ins.token,
                                        ins.lease_expires_at::text, encode($7, 'base64')))
    END AS woke, ins.token IS NOT NULL AS handed
FROM ins LEFT JOIN idle i ON true;

-- name: enqueue_lean
-- enqueue_one without the handover, for a queue no worker was found waiting on lately:
-- the task is stored pending and wakes the queue's waiters on the work channel $8,
-- unless it could be handed over (ready now, $4 NULL or due by $9; an envelope that
-- fits a NOTIFY payload; a queue that is not paused, with a worker registered idle on
-- it, valid at $9). Then nothing is stored and ``idle`` is true: the caller sends
-- enqueue_one. ``stored`` is 0 for an id already stored. Without the handover's row
-- lock, DELETE and joins the statement costs the server little more than the INSERT.
WITH idle AS (
    SELECT ($4::float8 IS NULL OR $4 <= $9::float8) AND octet_length($7::bytea) <= 5000
           AND EXISTS (SELECT 1 FROM idle_workers w WHERE w.queue = $2 AND w.until > $9)
           AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = $2)
           AS found
), ins AS (
    INSERT INTO tasks (id, queue, status, priority, eta, expires_at, key, waiting, envelope,
                       attempt)
    SELECT $1, $2, 'pending', $3, $4, $5, $6, 0, $7, 0 FROM idle WHERE NOT idle.found
    ON CONFLICT DO NOTHING
    RETURNING id, queue
)
SELECT idle.found AS idle, (SELECT count(pg_notify($8, ins.queue)) FROM ins) AS stored
FROM idle;

-- name: close_inbox
-- No more handovers to worker $1; the tasks handed over to it that it never confirmed
-- (renew clears ``pushed``) go back to pending with their attempt given back, and their
-- queues' waiters are woken on channel $2.
WITH gone AS (
    DELETE FROM idle_workers WHERE worker_id = $1
), back AS (
    UPDATE tasks SET status = 'pending', attempt = attempt - 1, token = NULL,
        worker_id = NULL, lease_expires_at = NULL, pushed = NULL
    WHERE status = 'running' AND worker_id = $1 AND pushed = token
    RETURNING id, queue
), n AS (
    SELECT pg_notify($2, q.queue) FROM (SELECT DISTINCT queue FROM back) q
)
SELECT back.id FROM back LEFT JOIN (SELECT count(*) FROM n) x ON true ORDER BY back.id;

-- name: enqueue_full
-- Enqueue with dependencies (or colliding ids/keys), row by row.
SELECT * FROM omniq_enqueue($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12);

-- name: enqueue_cond
-- enqueue_full for a batch holding conditional dependents (Task.run_if; $13 marks them).
SELECT * FROM omniq_enqueue_cond($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13);

-- name: enqueue_full_recorded
-- enqueue_full that also stores, in the same statement, the results given ($14 ids, $15
-- expiries, $16 envelopes: the batch's dependents, built as cancelled) of the tasks it
-- stored cancelled (new rows only), notifying the result channel $13 per result.
WITH e AS MATERIALIZED (
    SELECT * FROM omniq_enqueue($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) WITH ORDINALITY
), r AS (
    INSERT INTO results (task_id, status, expires_at, envelope)
    SELECT x.id, 'cancelled', x.exp, x.env
    FROM unnest($14::text[], $15::float8[], $16::bytea[]) AS x(id, exp, env)
    WHERE x.id IN (SELECT o_id FROM e WHERE NOT o_existing AND o_status = 'cancelled')
    ON CONFLICT (task_id) DO UPDATE
        SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            envelope = EXCLUDED.envelope
    RETURNING task_id
)
SELECT e.*, (SELECT count(pg_notify($13, r.task_id)) FROM r) AS o_results
FROM e ORDER BY e.ordinality;

-- name: enqueue_cond_recorded
-- enqueue_full_recorded for a batch holding conditional dependents ($17 marks them).
WITH e AS MATERIALIZED (
    SELECT * FROM omniq_enqueue_cond($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$17)
        WITH ORDINALITY
), r AS (
    INSERT INTO results (task_id, status, expires_at, envelope)
    SELECT x.id, 'cancelled', x.exp, x.env
    FROM unnest($14::text[], $15::float8[], $16::bytea[]) AS x(id, exp, env)
    WHERE x.id IN (SELECT o_id FROM e WHERE NOT o_existing AND o_status = 'cancelled')
    ON CONFLICT (task_id) DO UPDATE
        SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            envelope = EXCLUDED.envelope
    RETURNING task_id
)
SELECT e.*, (SELECT count(pg_notify($13, r.task_id)) FROM r) AS o_results
FROM e ORDER BY e.ordinality;

-- name: renew
-- Extend the leases still held by the given tokens (a handed-over lease renewed is
-- the worker's own: close_inbox no longer gives it back).
UPDATE tasks t SET lease_expires_at = $3, pushed = NULL
FROM unnest($1::text[], $2::text[]) AS i(tid, tok)
WHERE t.id = i.tid AND t.token = i.tok AND t.status = 'running'
RETURNING t.id;

-- name: wait_probe
-- Ready work now, and the next eta / lease end of the queues $1 that are not paused.
-- A worker taking handovers ($2 its id, $3 its backend's channel, $4 its lease; NULL
-- for a plain wait) is registered as idle on each queue $1 until $5 in the same
-- statement (see enqueue_one), and the registrations on those queues that lapsed over
-- a minute ago (workers that died or stopped without close_inbox) are deleted.
WITH gone AS (
    DELETE FROM idle_workers
    WHERE $2::text IS NOT NULL AND queue = ANY($1::text[]) AND until < $5::float8 - 60
), reg AS (
    INSERT INTO idle_workers (queue, worker_id, channel, lease, until)
    SELECT q, $2, $3, $4, $5 FROM unnest($1::text[]) q WHERE $2::text IS NOT NULL
    ON CONFLICT (queue, worker_id) DO UPDATE
    SET channel = EXCLUDED.channel, lease = EXCLUDED.lease, until = EXCLUDED.until
)
SELECT
    EXISTS (SELECT 1 FROM tasks WHERE queue = ANY($1::text[]) AND status = 'pending'
            AND waiting = 0 AND eta IS NULL AND queue <> ALL(p.qs)) AS ready_now,
    (SELECT min(eta) FROM tasks WHERE queue = ANY($1::text[]) AND status = 'pending'
            AND waiting = 0 AND eta IS NOT NULL AND queue <> ALL(p.qs)) AS next_eta,
    (SELECT min(lease_expires_at) FROM tasks WHERE status = 'running'
            AND queue = ANY($1::text[]) AND queue <> ALL(p.qs)) AS next_lease
FROM (SELECT ARRAY(SELECT queue FROM paused_queues) AS qs) p;

-- name: complete
-- Finish leased tasks and resolve their dependents.
SELECT * FROM omniq_complete($1,$2,$3,$4,$5,$6);

-- name: finish
-- complete, and in the same statement store the results ($7-$10) of the tasks it
-- finished (a task whose lease was lost gets neither) and notify the result channel
-- $11 per stored result: the worker's end of a batch in one round trip and one commit.
WITH fin AS (
    SELECT * FROM omniq_complete($1, $2, $3, $4, $5, $6)
), ins AS (
    INSERT INTO results (task_id, status, expires_at, envelope)
    SELECT i.tid, i.st, i.exp, i.env
    FROM unnest($7::text[], $8::text[], $9::float8[], $10::bytea[]) AS i(tid, st, exp, env)
    WHERE i.tid IN (SELECT unnest(fin.done) FROM fin)
    ON CONFLICT (task_id) DO UPDATE
        SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            envelope = EXCLUDED.envelope
    RETURNING task_id
)
SELECT fin.done, fin.released, fin.cancelled,
    (SELECT count(pg_notify($11, ins.task_id)) FROM ins) AS stored
FROM fin;

-- name: requeue_leased
-- Back to pending: a retry (new eta) or a release (attempt given back).
SELECT * FROM omniq_requeue($1,$2,$3,$4,$5);

-- name: cancel
-- Cancel pending or running tasks and resolve their dependents.
SELECT * FROM omniq_cancel($1,$2,$3,$4);

-- name: reclaim
-- Back to pending: running tasks whose lease lapsed.
SELECT * FROM omniq_reclaim($1,$2);

-- name: expire
-- Expire pending tasks past their TTL and resolve their dependents.
SELECT * FROM omniq_expire($1,$2,$3);

-- name: tasks_for_report
-- The cancelled dependents named in a completion report.
SELECT id, queue, attempt, envelope FROM tasks WHERE id = ANY($1::text[]);

-- name: tasks_get
-- Tasks by id.
SELECT id, queue, status, attempt, eta, envelope FROM tasks WHERE id = ANY($1::text[]);

-- name: tasks_counts
-- Task counts per queue and status.
SELECT queue, status, count(*) AS n FROM tasks GROUP BY 1, 2;

-- name: tasks_purge
-- Delete up to $3 tasks finished before $1 (of status $2, or any terminal one) and
-- their edges, oldest first; rows another purge holds are skipped, not waited for.
WITH d AS (
    DELETE FROM tasks WHERE id IN (
        SELECT id FROM tasks WHERE finished_at < $1
          AND status IN ('success', 'error', 'cancelled', 'expired')
          AND ($2::text IS NULL OR status = $2)
        ORDER BY finished_at LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    RETURNING id
), dd AS (
    DELETE FROM task_deps WHERE task_id IN (SELECT id FROM d)
)
SELECT count(*) FROM d;

-- name: result_put
-- Store results (replacing) and notify the result channel $5 per task id.
WITH ins AS (
    INSERT INTO results (task_id, status, expires_at, envelope)
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bytea[])
    ON CONFLICT (task_id) DO UPDATE
        SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            envelope = EXCLUDED.envelope
    RETURNING task_id
)
SELECT count(pg_notify($5, ins.task_id)) FROM ins;

-- name: result_get
-- Live results by task id.
SELECT task_id, envelope FROM results WHERE task_id = ANY($1::text[])
    AND (expires_at IS NULL OR expires_at > $2);

-- name: result_delete
-- Delete results by task id.
WITH d AS (DELETE FROM results WHERE task_id = ANY($1::text[]) RETURNING 1)
SELECT count(*) FROM d;

-- name: result_purge
-- Delete expired results.
WITH d AS (DELETE FROM results WHERE expires_at <= $1 RETURNING 1)
SELECT count(*) FROM d;

-- name: event_append
-- Append events (an id already stored is skipped).
INSERT INTO events (id, task_id, type, ts, worker_id, queue, metadata)
SELECT i.id, i.task_id, i.type, i.ts, i.worker_id, i.queue, i.metadata::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[],
            $7::text[]) AS i(id, task_id, type, ts, worker_id, queue, metadata)
ON CONFLICT (id) DO NOTHING;

-- name: event_count
-- Number of stored events.
SELECT count(*) FROM events;

-- name: schedule_upsert
-- Store schedules (replacing).
INSERT INTO schedules (id, state, next_run_at, envelope)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bytea[])
ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state,
    next_run_at = EXCLUDED.next_run_at, envelope = EXCLUDED.envelope;

-- name: schedule_get
-- One schedule.
SELECT envelope FROM schedules WHERE id = $1;

-- name: schedule_list
-- Every schedule.
SELECT envelope FROM schedules ORDER BY id;

-- name: schedule_list_state
-- Schedules in one state.
SELECT envelope FROM schedules WHERE state = $1 ORDER BY id;

-- name: schedule_delete
-- Delete one schedule.
WITH d AS (DELETE FROM schedules WHERE id = $1 RETURNING 1)
SELECT count(*) FROM d;

-- name: schedule_lock
-- One schedule, locked for an update in this transaction.
SELECT envelope FROM schedules WHERE id = $1 FOR UPDATE;

-- name: schedule_set
-- Write one schedule's row.
UPDATE schedules SET state = $2, next_run_at = $3, envelope = $4 WHERE id = $1;

-- name: schedule_due
-- Due active schedules, locked (SKIP LOCKED: each run is claimed once).
SELECT envelope FROM schedules WHERE state = 'active' AND next_run_at <= $1
ORDER BY next_run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED;

-- name: tasks_requeue_errors
-- Dead letters back to pending with a fresh attempt count; a task whose idempotency
-- key a live task now holds stays put. Notifies the work channel $2 per queue.
WITH u AS (
    UPDATE tasks t SET status = 'pending', attempt = 0, eta = NULL, token = NULL,
        worker_id = NULL, lease_expires_at = NULL, finished_at = NULL
    WHERE t.id = ANY($1::text[]) AND t.status = 'error'
      AND (t.key IS NULL OR NOT EXISTS (
          SELECT 1 FROM tasks o WHERE o.key = t.key AND o.status IN ('pending', 'running')))
    RETURNING t.id, t.queue
), n AS (
    SELECT pg_notify($2, q.queue) FROM (SELECT DISTINCT queue FROM u) q
)
SELECT u.id FROM u LEFT JOIN (SELECT count(*) FROM n) x ON true;

-- name: queue_lock
-- Taken by a pause, in its transaction, before it inserts: the claims read
-- paused_queues, so this waits for the claims running now, and a claim that starts
-- meanwhile waits for the pause to commit. PostgreSQL locks a statement's tables
-- before it takes the statement's snapshot, so no claim that leases after the pause
-- commits can have missed the row.
LOCK TABLE paused_queues IN ACCESS EXCLUSIVE MODE;

-- name: queue_pause
-- Pause the queue $1 (under queue_lock); returns a row if it was not paused.
INSERT INTO paused_queues (queue, paused_at) VALUES ($1, $2)
ON CONFLICT (queue) DO NOTHING RETURNING queue;

-- name: queue_resume
-- Resume the queue $1 and wake the workers waiting on it (channel $2); returns a row
-- if it was paused.
WITH d AS (
    DELETE FROM paused_queues WHERE queue = $1 RETURNING queue
)
SELECT d.queue, pg_notify($2, d.queue) FROM d;

-- name: queues_paused
-- The paused queues.
SELECT queue FROM paused_queues ORDER BY queue;

-- name: workers_register
-- Create or refresh worker registry entries.
INSERT INTO workers (id, expires_at, envelope)
SELECT * FROM unnest($1::text[], $2::float8[], $3::bytea[])
ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, envelope = EXCLUDED.envelope;

-- name: workers_deregister
-- Delete worker registry entries; returns how many existed.
WITH d AS (DELETE FROM workers WHERE id = ANY($1::text[]) RETURNING 1)
SELECT count(*) FROM d;

-- name: workers_list
-- Entries still counting at $1, by id.
SELECT envelope FROM workers WHERE expires_at > $1 ORDER BY id;

-- name: workers_purge
-- Delete entries past their expiry at $1; returns how many.
WITH d AS (DELETE FROM workers WHERE expires_at <= $1 RETURNING 1)
SELECT count(*) FROM d;
