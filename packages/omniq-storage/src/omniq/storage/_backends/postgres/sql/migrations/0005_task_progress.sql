-- Progress records of running tasks (``current_task().set_progress``): the latest per
-- task, written under the task's lease (see _control.py).
CREATE TABLE task_progress (
    task_id text PRIMARY KEY,
    data bytea NOT NULL,
    updated_at float8 NOT NULL
);
