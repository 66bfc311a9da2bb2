-- The worker registry: one row per live worker process, refreshed with its lease
-- renewals; a row past expires_at no longer counts and is purged.

CREATE TABLE workers (
    id text PRIMARY KEY,
    expires_at float8 NOT NULL,
    envelope bytea NOT NULL
);
CREATE INDEX workers_expiry ON workers (expires_at);
