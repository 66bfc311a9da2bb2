"""The PostgreSQL backend (asyncpg): ``_backend.PostgresBackend``.

The package imports no driver, so its SQL loader (``_sql``) works without the extra.
"""
