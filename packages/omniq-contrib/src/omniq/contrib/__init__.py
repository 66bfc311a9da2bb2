"""OmniQ integrations with web frameworks.

``omniq.contrib.fastapi`` (extra ``[fastapi]``): one ``OmniQ`` per Starlette/FastAPI
application, opened and closed by its lifespan, and a dependency returning it.
``omniq.contrib.django`` (extra ``[django]``): a Django app reading ``settings.OMNIQ``,
with ``enqueue_on_commit``, transactional enqueue through Django's own connection and
the ``omniq_worker``/``omniq_scheduler`` management commands.
"""

from __future__ import annotations

__all__: list[str] = []
