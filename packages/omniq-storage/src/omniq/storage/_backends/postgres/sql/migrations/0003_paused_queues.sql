-- Paused queues: the claim statements lease no task of a queue listed here, and the
-- wait probe does not count its tasks as ready. A pause takes this table's ACCESS
-- EXCLUSIVE lock while it inserts: every claim reads the table, so the pause waits for
-- the claims already running and the claims after it see the row (see queries.sql,
-- queue_lock).

CREATE TABLE paused_queues (
    queue text PRIMARY KEY,
    paused_at double precision NOT NULL
);
