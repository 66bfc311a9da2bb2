"""Event ids: ``omniq.models.new_id`` (UUIDv7 layout, time-sortable).

``new_id`` draws from a fork-safe generator and is cheap per call, so one
implementation serves tasks and events.
"""

from __future__ import annotations

from omniq.models import new_id as event_id

__all__ = ["event_id"]
