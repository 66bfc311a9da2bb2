"""Fuzzing the decoders of stored records (tasks, results, events, schedules) and of
serialization payloads: random, truncated, tampered and huge inputs always end in a
typed error (StorageError / SerializationError), in bounded memory, running nothing."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pickles import evil_pickle

from omniq.models import (
    ErrorInfo,
    EventType,
    Payload,
    Schedule,
    SerializationError,
    StorageError,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
)
from omniq.serialization import SerializationManager
from omniq.storage._codec import (
    decode_event,
    decode_result,
    decode_schedule,
    decode_task,
    encode,
    encode_event,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _samples() -> list[tuple[str, bytes]]:
    task = Task(
        func="app.tasks:work",
        payload=Payload("msgpack", b"\x92\x90\x80"),
        metadata={"k": [1, 2.5, "x"]},
        depends_on=("a", "b"),
        max_retries=3,
    )
    result = TaskResult(
        task_id=task.id,
        status=TaskStatus.ERROR,
        error=ErrorInfo(type="ValueError", message="bad", traceback="tb"),
        attempts=2,
        worker_id="h:1:x",
    )
    event = TaskEvent(task_id=task.id, type=EventType.COMPLETE, metadata={"attempt": 1})
    sched = Schedule.create(task, cron="*/5 * * * *", name="every-5")
    return [
        ("task", encode(task)),
        ("result", encode(result)),
        ("event", encode_event(event)),
        ("schedule", encode(sched)),
    ]


DECODERS = {
    "task": decode_task,
    "result": decode_result,
    "event": decode_event,
    "schedule": decode_schedule,
}
SAMPLES = _samples()
ALLOWED = (StorageError,)


def _decode_or_typed_error(kind: str, data: bytes) -> None:
    with contextlib.suppress(ALLOWED):
        DECODERS[kind](data)


@pytest.mark.parametrize("kind", list(DECODERS))
@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_decode_or_raise_storage_error(kind: str, data: bytes) -> None:
    _decode_or_typed_error(kind, data)


@FUZZ
@given(pick=st.sampled_from(SAMPLES), cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_records_raise_storage_error(pick: tuple[str, bytes], cut: int) -> None:
    kind, blob = pick
    short = blob[: cut % max(1, len(blob))]
    with pytest.raises(StorageError):
        DECODERS[kind](short)


@FUZZ
@given(
    pick=st.sampled_from(SAMPLES),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_tampered_records_decode_or_raise_storage_error(
    pick: tuple[str, bytes], flips: list[tuple[int, int]]
) -> None:
    kind, blob = pick
    buf = bytearray(blob)
    for pos, x in flips:
        buf[pos % len(buf)] ^= x
    _decode_or_typed_error(kind, bytes(buf))


@pytest.mark.parametrize(
    "blob",
    [
        b"\xc6" + struct.pack(">I", 0xFFFFFFF0) + b"abc",  # bin32 claiming ~4 GiB
        b"\xdb" + struct.pack(">I", 0xFFFFFFF0) + b"abc",  # str32 claiming ~4 GiB
        b"\xdd" + struct.pack(">I", 0xFFFFFFF0) + b"\x01",  # array32 of ~4 G items
        b"\xdf" + struct.pack(">I", 0xFFFFFFF0) + b"\xa1a\x01",  # map32 of ~4 G pairs
        b"\x91" * 100_000,  # 100k nested arrays
    ],
    ids=["bin32", "str32", "array32", "map32", "deep-nesting"],
)
@pytest.mark.parametrize("kind", ["task", "result", "schedule"])
def test_huge_declared_lengths_fail_fast_in_bounded_memory(kind: str, blob: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(StorageError):
            DECODERS[kind](blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"decoding a {len(blob)}-byte lie peaked at {peak} bytes"


@pytest.mark.parametrize("kind", list(DECODERS))
def test_a_pickle_is_not_a_record(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(StorageError):
        DECODERS[kind](evil_pickle(str(marker)))
    assert not marker.exists()


# -- serialization payloads ---------------------------------------------------------------

PLAIN = SerializationManager()
SIGNED = SerializationManager(dill_enabled=True, secret="s3cret-for-tests")
FORMATS = st.sampled_from(["msgpack", "dill", "pickle", "json", "", "DILL", "msgpack\x00"])


@FUZZ
@given(fmt=FORMATS, data=st.binary(max_size=512))
def test_random_payloads_load_or_raise_serialization_error(fmt: str, data: bytes) -> None:
    for mgr in (PLAIN, SIGNED):
        with contextlib.suppress(SerializationError):
            mgr.loads(Payload(fmt, data))


@FUZZ
@given(
    value=st.recursive(
        st.none() | st.integers() | st.text(max_size=20) | st.binary(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
        max_leaves=20,
    ),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_tampered_signed_dill_is_refused(value: object, flips: list[tuple[int, int]]) -> None:
    payload = SIGNED.dumps(set([repr(value)]))  # a set: not msgpack-exact, so dill
    assert payload.format == "dill"
    buf = bytearray(payload.data)
    for pos, x in flips:
        buf[pos % len(buf)] ^= x
    if bytes(buf) == payload.data:
        return  # the flips cancelled out: not a tampered payload
    with pytest.raises(SerializationError):
        SIGNED.loads(Payload("dill", bytes(buf)))


def test_unsigned_pickle_as_dill_payload_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = evil_pickle(str(marker))
    for mgr in (PLAIN, SIGNED):
        for fmt in ("dill", "pickle", "msgpack"):
            with pytest.raises(SerializationError):
                mgr.loads(Payload(fmt, bomb))
    assert not marker.exists()


def test_oversized_payload_is_refused_before_decoding() -> None:
    small = SerializationManager(max_size=1024)
    tracemalloc.start()
    try:
        with pytest.raises(SerializationError):
            small.loads(Payload("msgpack", b"\xc4\xff" + b"x" * 4096))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_encoded_samples_round_trip() -> None:
    """The fuzz seeds are valid records (so truncation/tampering starts from real data)."""
    for kind, blob in SAMPLES:
        assert DECODERS[kind](blob) is not None
    assert isinstance(msgspec.msgpack.decode(SAMPLES[0][1]), dict)
