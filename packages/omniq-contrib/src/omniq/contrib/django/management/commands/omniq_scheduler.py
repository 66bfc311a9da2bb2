"""``manage.py omniq_scheduler``: an OmniQ scheduler configured by ``settings.OMNIQ``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from omniq.contrib.django import get_omniq


class Command(BaseCommand):
    help = "Run an OmniQ scheduler (fires due schedules; safe to run in several processes)."

    def handle(self, *args: Any, **opts: Any) -> None:
        oq = get_omniq()
        self.stdout.write("omniq scheduler starting (SIGTERM/SIGINT stop it)")
        self.stdout.flush()
        try:
            stats = oq.run_scheduler_sync()
        finally:
            oq.close_sync()
        self.stdout.write(f"omniq scheduler stopped: {stats}")
