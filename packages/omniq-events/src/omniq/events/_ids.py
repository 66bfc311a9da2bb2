"""Event ids: ``omniq.models.new_id`` (UUIDv7 layout, time-sortable).

The events package once carried its own copy because ``new_id`` read ``os.urandom``
per id; ``new_id`` now draws from the fork-safe ``random`` generator itself, so one
implementation serves tasks and events.
"""

from __future__ import annotations

from omniq.models import new_id as event_id

__all__ = ["event_id"]
