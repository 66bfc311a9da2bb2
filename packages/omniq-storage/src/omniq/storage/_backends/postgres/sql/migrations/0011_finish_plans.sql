-- Completion (and retry/release) plans its UPDATE for the batch at hand. A generic
-- plan (the one PL/pgSQL caches after five calls) estimates ten rows for the unnested
-- batch and few running rows, and may join them by a nested loop over both, which is
-- quadratic in the batch size: a 3,000-task batch took seconds, so a worker that fell
-- behind fell further behind. A custom plan sees the batch's size and hashes it.
ALTER FUNCTION omniq_complete(text[], text[], text[], text, float8, text)
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION omniq_requeue(text[], text[], float8[], boolean, text)
    SET plan_cache_mode = force_custom_plan;
