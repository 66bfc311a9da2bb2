"""``manage.py omniq_worker``: an OmniQ worker configured by ``settings.OMNIQ``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from omniq.contrib.django import get_omniq


class Command(BaseCommand):
    help = "Run an OmniQ worker (with a scheduler beside it unless --no-scheduler)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-q", "--queue", action="append", dest="queues", default=None)
        parser.add_argument("-c", "--concurrency", type=int, default=None)
        parser.add_argument("--worker-type", default=None, help="async, thread, process...")
        parser.add_argument("--burst", action="store_true", help="stop when nothing is due")
        parser.add_argument("--no-scheduler", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        oq = get_omniq()
        worker = {
            "queues": opts["queues"],
            "concurrency": opts["concurrency"],
            "worker_type": opts["worker_type"],
            "burst": opts["burst"],
        }
        try:
            if opts["no_scheduler"]:
                stats = oq.run_worker_sync(**worker)
            else:
                with oq.scheduler():
                    stats = oq.run_worker_sync(**worker)
        finally:
            oq.close_sync()
        self.stdout.write(f"omniq worker stopped: {stats}")
