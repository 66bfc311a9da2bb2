"""Circuit breakers: per task function (defer its tasks) and per backend (back off)."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

from omniq.models import ConfigError

__all__ = ["BreakerRegistry", "BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    """closed: calls flow. open: calls are deferred until the cool-down ends.
    half_open: one probe call is let through; its outcome closes or re-opens."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures, for ``cooldown`` seconds.

    While open, ``allow()`` is False and ``retry_at()`` says when to try again; after the
    cool-down the breaker is half-open and lets ``half_open_max`` probe calls through: a
    success closes it, a failure re-opens it for another cool-down. Thread-safe.
    """

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        *,
        half_open_max: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if threshold < 1:
            raise ConfigError("threshold", threshold, "an integer >= 1")
        self.threshold = threshold
        self.cooldown = cooldown
        self.half_open_max = max(1, half_open_max)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() < self._opened_at + self.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def allow(self) -> bool:
        """True if a call may go ahead now (closed, or a half-open probe slot is free)."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.OPEN:
                return False
            if self._probes < self.half_open_max:
                self._probes += 1
                return True
            return False

    def retry_at(self) -> float:
        """When a deferred call should be tried again (now if closed)."""
        with self._lock:
            if self._opened_at is None:
                return self._clock()
            return max(self._clock(), self._opened_at + self.cooldown)

    def record_success(self) -> None:
        """A call succeeded: the breaker closes and the failure count resets."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probes = 0

    def record_failure(self) -> None:
        """A call failed: count it; open (or re-open) at the threshold or after a probe."""
        with self._lock:
            state = self._state()
            self._failures += 1
            if state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._probes = 0

    def reset(self) -> None:
        """Close the breaker and forget all failures."""
        self.record_success()


class BreakerRegistry:
    """One CircuitBreaker per key (a task's function path), created on first use."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.enabled = enabled
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CircuitBreaker:
        """The breaker for ``key``."""
        breaker = self._breakers.get(key)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.setdefault(
                    key, CircuitBreaker(self.threshold, self.cooldown, clock=self._clock)
                )
        return breaker

    def allow(self, key: str) -> bool:
        """True if ``key``'s calls may run now (always when disabled)."""
        if not self.enabled:
            return True
        breaker = self._breakers.get(key)
        return True if breaker is None else breaker.allow()

    def record(self, key: str, ok: bool) -> None:
        """Feed one call's outcome to ``key``'s breaker."""
        if not self.enabled:
            return
        if ok:
            breaker = self._breakers.get(key)
            if breaker is not None:
                breaker.record_success()
        else:
            self.get(key).record_failure()

    def states(self) -> dict[str, BreakerState]:
        """Current state of every breaker, for status output."""
        return {k: b.state for k, b in list(self._breakers.items())}
