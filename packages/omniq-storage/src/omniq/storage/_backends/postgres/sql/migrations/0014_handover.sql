-- Handover: a worker waiting idle on its queues registers one row per queue here, and
-- the single enqueue of a task ready now into a queue with nothing ready stores the
-- task already leased to the worker that registered last and sends it on that
-- worker's channel (see queries.sql, enqueue_one), saving the worker's claim: one
-- commit between enqueue and start instead of two.
--
-- Unlogged: a registration is worth nothing after a server crash (the table comes back
-- empty, and workers register again on their next wait), and a transaction that writes
-- only unlogged rows commits without waiting for a WAL flush, so registering costs an
-- idle worker no flush.
CREATE UNLOGGED TABLE idle_workers (
    queue text NOT NULL,
    worker_id text NOT NULL,
    channel text NOT NULL,
    lease float8 NOT NULL,
    until float8 NOT NULL,
    PRIMARY KEY (queue, worker_id)
);
ALTER TABLE idle_workers SET (autovacuum_vacuum_threshold = 100, autovacuum_vacuum_cost_delay = 0);

-- The token of a lease that came from a handover, until the worker renews it: what
-- close_inbox gives back (a handed-over task the worker never confirmed). A later
-- claim of the task issues a new token, so a stale value here never matches.
ALTER TABLE tasks ADD COLUMN pushed text;
