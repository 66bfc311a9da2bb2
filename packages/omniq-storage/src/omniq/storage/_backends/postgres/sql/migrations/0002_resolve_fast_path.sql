-- Dependency resolution returns at once when none of the finished tasks has a
-- dependent (the common case), instead of running its aggregate, UPDATE and DELETE
-- statements for nothing: the resolver of 0001 becomes omniq_resolve_deps, called by
-- a new omniq_resolve only when an edge exists.

ALTER FUNCTION omniq_resolve(text[], text[], text, float8, text)
    RENAME TO omniq_resolve_deps;

CREATE FUNCTION omniq_resolve(p_ok text[], p_failed text[], p_policy text,
    p_now float8, p_chan text, OUT released text[], OUT cancelled text[])
LANGUAGE plpgsql AS $$
BEGIN
    released := '{}';
    cancelled := '{}';
    IF NOT EXISTS (SELECT 1 FROM task_deps d WHERE d.depends_on = ANY(p_ok || p_failed)) THEN
        RETURN;
    END IF;
    SELECT r.released, r.cancelled INTO released, cancelled
    FROM omniq_resolve_deps(p_ok, p_failed, p_policy, p_now, p_chan) r;
END $$;
