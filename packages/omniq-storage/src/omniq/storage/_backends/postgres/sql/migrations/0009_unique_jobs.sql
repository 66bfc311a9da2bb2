-- Unique jobs (Task.unique_for): a key stays reserved by the task that took it until
-- its window ends, whatever that task's state. Enqueues of keyed tasks take a
-- transaction-scoped advisory lock per key before reading this table, so the check and
-- the insert of the reservation are atomic.
CREATE TABLE task_unique (
    key text PRIMARY KEY,
    task_id text NOT NULL,
    until float8 NOT NULL
);
