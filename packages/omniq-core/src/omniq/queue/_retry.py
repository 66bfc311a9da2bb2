"""RetryManager: exponential backoff with full jitter and a cap, per task or by default."""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec

from omniq.models import Task, settings

__all__ = ["RetryManager", "RetryPolicy"]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often and how late a failed task runs again.

    ``max_retries`` counts runs after the first; the delay before retry ``n`` (1-based) is
    drawn uniformly from ``[0, min(max_delay, base_delay * 2 ** (n - 1))]`` ("full
    jitter"), which spreads a burst of failures instead of retrying them in lockstep.
    """

    max_retries: int = settings.RETRY_ATTEMPTS
    base_delay: float = settings.RETRY_DELAY
    max_delay: float = settings.RETRY_MAX_DELAY

    def ceiling(self, retry: int) -> float:
        """The largest delay retry number ``retry`` (1-based) may wait."""
        exp = min(max(retry - 1, 0), 62)  # 2**62 already exceeds any sane cap
        return min(self.max_delay, self.base_delay * float(2**exp))


class RetryManager:
    """Decides whether a failed attempt is retried and when.

    The task's own ``max_retries``/``retry_delay``/``retry_max_delay`` win; the default
    policy fills what a task leaves unset (``retry_max_delay is None``). ``attempt`` is
    the store's count of attempts started, which survives worker crashes.
    """

    def __init__(
        self,
        default: RetryPolicy | None = None,
        *,
        rng: Callable[[float, float], float] | None = None,
    ) -> None:
        self.default = default or RetryPolicy()
        self._uniform = rng or random.uniform

    def policy_for(self, task: Task) -> RetryPolicy:
        """The effective policy of ``task``."""
        max_delay = (
            task.retry_max_delay if task.retry_max_delay is not None else self.default.max_delay
        )
        return RetryPolicy(
            max_retries=task.max_retries,
            base_delay=task.retry_delay,
            max_delay=max(max_delay, 0.0),
        )

    def should_retry(self, task: Task, attempt: int | None = None) -> bool:
        """True if attempt number ``attempt`` (default: the task's) may be followed by another."""
        n = task.attempt if attempt is None else attempt
        return n < task.max_retries + 1

    def delay(self, task: Task, attempt: int | None = None) -> float:
        """Seconds to wait before the retry that follows attempt ``attempt``."""
        n = task.attempt if attempt is None else attempt
        policy = self.policy_for(task)
        ceiling = policy.ceiling(max(n, 1))
        return self._uniform(0.0, ceiling) if ceiling > 0 else 0.0
