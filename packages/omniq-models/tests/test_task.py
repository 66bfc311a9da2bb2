"""Task, result and event structs: identity, encoding, ids."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniq.models import (
    ClaimedTask,
    ErrorInfo,
    EventType,
    OmniQError,
    Payload,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    new_id,
)
from omniq.models import settings as S


def test_tasks_hash_and_compare_by_id() -> None:
    a = Task(func="m:f", priority=1)
    b = msgspec.structs.replace(a, priority=9, attempt=3)
    c = Task(func="m:f", priority=1)
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert {a, b, c} == {a, c}
    assert len({a, b, c}) == 2


def test_task_roundtrips_through_msgpack_with_nested_callbacks() -> None:
    follow = Task(func="m:after")
    t = Task(
        func="m:f",
        payload=Payload("msgpack", b"\x92\x90\x80"),
        depends_on=("x", "y"),
        on_success=(follow,),
        metadata={"k": [1, "v"]},
        expires_at=10.0,
    )
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(t), type=Task)
    assert back == t
    assert back.on_success[0].func == "m:after"
    assert back.depends_on == ("x", "y")
    assert back.payload == t.payload
    assert back.metadata == {"k": [1, "v"]}


def test_defaults_are_omitted_from_the_envelope() -> None:
    small = msgspec.msgpack.encode(Task(func="m:f", id="i", created_at=1.0))
    assert len(small) < 40


def test_ttl_and_eta_checks() -> None:
    t = Task(func="m:f", eta=100.0, expires_at=200.0)
    assert not t.is_due(99.0) and t.is_due(100.0)
    assert not t.is_expired(199.9) and t.is_expired(200.0)
    assert not Task(func="m:f").is_expired()


def test_ids_are_unique_and_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 36 and i[14] == "7" for i in ids[:100])


def test_ids_from_another_process_do_not_collide() -> None:
    code = "from omniq.models import new_id; print('\\n'.join(new_id() for _ in range(2000)))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    theirs = set(other.stdout.split())
    mine = {new_id() for _ in range(2000)}
    assert len(theirs) == 2000 and not theirs & mine


def test_result_exposes_status_value_error_attempts() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        err = ErrorInfo.from_exception(exc, traceback="tb")
    r = TaskResult(
        task_id="t", status=TaskStatus.ERROR, error=err, attempts=3, started_at=1.0, finished_at=3.5
    )
    assert r.error is not None
    assert (r.error.type, r.error.message, r.error.traceback) == ("KeyError", "'missing'", "tb")
    assert r.attempts == 3 and r.duration == 2.5 and not r.ok
    ok = TaskResult(task_id="t", status=TaskStatus.SUCCESS, value={"a": 1})
    assert ok.ok and ok.value == {"a": 1}
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(r), type=TaskResult)
    assert back == r


def test_error_info_names_non_builtin_types_with_their_module() -> None:
    assert ErrorInfo.from_exception(OmniQError("x")).type == "omniq.models.OmniQError"


def test_event_is_plain_json() -> None:
    ev = TaskEvent(task_id="t", type=EventType.RETRY, metadata={"attempt": 2, "error": "boom"})
    data = msgspec.json.decode(msgspec.json.encode(ev))
    assert data["type"] == "RETRY" and data["metadata"] == {"attempt": 2, "error": "boom"}
    assert msgspec.json.decode(msgspec.json.encode(ev), type=TaskEvent) == ev


def test_status_and_event_names_are_the_promised_ones() -> None:
    assert [s.value for s in TaskStatus] == [
        "pending",
        "running",
        "success",
        "error",
        "cancelled",
        "expired",
    ]
    assert [e.value for e in EventType] == [
        "ENQUEUED",
        "EXECUTING",
        "COMPLETE",
        "ERROR",
        "RETRY",
        "CANCELLED",
        "EXPIRED",
        "SCHEDULE_PAUSED",
        "SCHEDULE_RESUMED",
        "QUEUE_PAUSED",
        "QUEUE_RESUMED",
        "PROGRESS",
        "LIMITED",
    ]
    assert {s for s in TaskStatus if s.is_terminal} == {
        TaskStatus.SUCCESS,
        TaskStatus.ERROR,
        TaskStatus.CANCELLED,
        TaskStatus.EXPIRED,
    }


def test_claimed_task_carries_the_fencing_token() -> None:
    c = ClaimedTask(task=Task(func="m:f"), token="tok", lease_expires_at=5.0, worker_id="w")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(c), type=ClaimedTask).token == "tok"


def test_settings_constants_cover_the_specified_variables() -> None:
    spec = [
        "LOG_LEVEL",
        "DISABLE_LOGGING",
        "TASK_QUEUE_TYPE",
        "TASK_QUEUE_URL",
        "RESULT_STORAGE_TYPE",
        "RESULT_STORAGE_URL",
        "EVENT_STORAGE_TYPE",
        "EVENT_STORAGE_URL",
        "FSSPEC_URI",
        "DEFAULT_WORKER",
        "MAX_WORKERS",
        "THREAD_WORKERS",
        "PROCESS_WORKERS",
        "GEVENT_WORKERS",
        "TASK_TIMEOUT",
        "TASK_TTL",
        "RETRY_ATTEMPTS",
        "RETRY_DELAY",
        "RESULT_TTL",
        "COMPONENT_LOG_LEVELS",
        "BASE_DIR",
    ]
    missing = [n for n in spec if not hasattr(S, n)]
    assert not missing
    assert all(not n.startswith("OMNIQ_") for n in S.__all__)


def test_importing_models_pulls_in_neither_dill_nor_anyio() -> None:
    code = (
        "import sys, omniq.models, omniq.models as m; m.Task(func='a:b');"
        "print(sorted(x for x in ('dill','anyio','croniter') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@given(
    st.text(min_size=1),
    st.integers(-1000, 1000),
    st.dictionaries(st.text(), st.integers(-(2**63), 2**63 - 1)),
)
def test_any_task_roundtrips(func: str, prio: int, meta: dict[str, int]) -> None:
    t = Task(func=func, priority=prio, metadata=meta)
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(t), type=Task)
    assert (back.id, back.func, back.priority, back.metadata) == (t.id, func, prio, meta)


def test_garbage_envelope_is_a_typed_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        msgspec.msgpack.decode(b"\x93\x01\x02", type=Task)
