"""Every async operation of the public facades has a blocking ``_sync`` twin with the
same parameters, so the two colours cannot drift apart (architecture.md section 6)."""

from __future__ import annotations

import inspect
import typing

import pytest

from omniq.core import OmniQ
from omniq.queue import (
    AsyncScheduler,
    AsyncTaskQueue,
    EnqueueOptions,
    Scheduler,
    TaskQueue,
    build_task,
)

# Async methods that are hooks for the worker's outcome sink, not user operations.
NOT_OPERATIONS = {"record_cancelled", "record_cascade", "log_expired"}


def _async_ops(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in NOT_OPERATIONS
    }


def _params(sig: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def _drifts(async_sig: inspect.Signature, sync_sig: inspect.Signature) -> bool:
    """True unless the sync twin takes the async parameters, in order, with the same
    kinds and defaults; a twin may add keyword-only options of its own (for example
    ``handle_signals`` on blocking runs) before a shared ``**options``."""
    a, s = _params(async_sig), _params(sync_sig)
    var_kw = inspect.Parameter.VAR_KEYWORD
    a_fixed = [p for p in a if p[1] is not var_kw]
    s_fixed = [p for p in s if p[1] is not var_kw]
    extra = [p for p in s_fixed if p not in a_fixed]
    if [p for p in s_fixed if p in a_fixed] != a_fixed:
        return True
    if any(
        p[1] is not inspect.Parameter.KEYWORD_ONLY or p[2] is inspect.Parameter.empty for p in extra
    ):
        return True
    return any(p[1] is var_kw for p in a) != any(p[1] is var_kw for p in s)


def test_every_omniq_operation_has_a_sync_twin_with_the_same_parameters() -> None:
    ops = _async_ops(OmniQ)
    assert {
        "enqueue",
        "enqueue_many",
        "get_result",
        "get_task",
        "list_tasks",
        "cancel",
        "run_worker",
        "get_events",
    } <= set(ops)
    missing = [n for n in ops if not hasattr(OmniQ, f"{n}_sync")]
    assert missing == []
    drift = [
        n for n, sig in ops.items() if _drifts(sig, inspect.signature(getattr(OmniQ, f"{n}_sync")))
    ]
    assert drift == []


@pytest.mark.parametrize(
    ("async_cls", "sync_cls"), [(AsyncTaskQueue, TaskQueue), (AsyncScheduler, Scheduler)]
)
def test_sync_wrapper_classes_mirror_their_async_core(async_cls: type, sync_cls: type) -> None:
    ops = _async_ops(async_cls)
    assert ops, f"{async_cls.__name__} has no async operations"
    missing = [n for n in ops if not callable(getattr(sync_cls, n, None))]
    assert missing == []
    drift = [n for n, sig in ops.items() if _drifts(sig, inspect.signature(getattr(sync_cls, n)))]
    assert drift == []


def test_enqueue_options_are_build_tasks_keywords() -> None:
    """``EnqueueOptions`` (the typed ``**options`` of enqueue and friends) lists exactly
    the keyword options ``build_task`` implements, with the same types."""
    params = inspect.signature(build_task, eval_str=True).parameters
    keywords = {
        n: p.annotation
        for n, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "task_id"
    }
    hints = typing.get_type_hints(EnqueueOptions)
    assert keywords == hints
