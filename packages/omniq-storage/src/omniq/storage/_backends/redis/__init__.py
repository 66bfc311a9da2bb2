"""The Redis backend (redis-py asyncio, hiredis): ``_backend.RedisBackend``.

The package imports no driver, so its Lua loader (``_lua``) works without the extra.
"""
