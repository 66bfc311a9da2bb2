"""``manage.py omniq_worker``: an OmniQ worker configured by ``settings.OMNIQ``."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from omniq.contrib.django import get_omniq
from omniq.core import OmniQ


class Command(BaseCommand):
    help = "Run an OmniQ worker (with a scheduler beside it unless --no-scheduler)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-q", "--queue", action="append", dest="queues", default=None)
        parser.add_argument("-c", "--concurrency", type=int, default=None)
        parser.add_argument("--worker-type", default=None, help="async, thread, process...")
        parser.add_argument("--burst", action="store_true", help="stop when nothing is due")
        parser.add_argument("--no-scheduler", action="store_true")
        parser.add_argument(
            "--store-wait",
            type=float,
            default=30.0,
            help="seconds to keep trying while the stores are unreachable at start",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        oq = self._open(opts["store_wait"])
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

    def _open(self, wait: float) -> OmniQ:
        """The project's ``OmniQ``, opened; while its stores are unreachable, tried
        again for ``wait`` seconds, each failed try (a WARNING of ``omniq.core``)
        written to this command's stderr unless the project's logging shows it."""
        log = logging.getLogger("omniq.core")
        shown = bool(log.handlers or logging.getLogger().handlers)
        handler = None if shown else logging.StreamHandler(self.stderr)
        if handler is not None:
            handler.setLevel(logging.WARNING)
            log.addHandler(handler)
        try:
            return get_omniq(wait=wait)
        finally:
            if handler is not None:
                log.removeHandler(handler)
