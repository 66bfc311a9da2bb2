-- Autovacuum settings for the tables every task updates. A claim and a completion each
-- leave a dead row version and dead index entries behind, and claims scan the partial
-- indexes of pending and running rows from their start, so these tables must be
-- vacuumed long before the server's default (20% of the table changed) lets
-- autovacuum start: vacuum and analyze after 1,000 rows plus 2% of the table, without
-- the cost-based throttle. Where autovacuum is off these settings do nothing; the
-- workers then vacuum these tables themselves (see _maintenance.py).
ALTER TABLE tasks SET (
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE results SET (
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE task_deps SET (
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE workers SET (autovacuum_vacuum_threshold = 100, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE task_progress SET (
    autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
