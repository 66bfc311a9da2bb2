"""OmniQ for Django (extra ``[django]``): add ``"omniq.contrib.django"`` to
``INSTALLED_APPS`` and configure it with ``settings.OMNIQ``.

``get_omniq()`` is the process's ``OmniQ``; ``enqueue_on_commit`` enqueues when the
transaction commits (any task store); ``enqueue_in_transaction`` writes the task in
Django's own transaction (a task store in the same PostgreSQL or SQLite database).
``manage.py omniq_worker`` and ``manage.py omniq_scheduler`` run a worker and a
scheduler with these settings.
"""

from __future__ import annotations

from omniq.models.lowlevel import publish

from ._omniq import enqueue_in_transaction, enqueue_on_commit, get_omniq, omniq_from_settings

__all__ = ["enqueue_in_transaction", "enqueue_on_commit", "get_omniq", "omniq_from_settings"]

publish(globals())
del publish
