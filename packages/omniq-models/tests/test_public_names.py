"""The public surface of omniq.models: names show the public module and survive pickling."""

from __future__ import annotations

import inspect
import pickle
import typing

import msgspec
import pytest

import omniq.models
from omniq.models import (
    ConfigError,
    ErrorInfo,
    OmniQError,
    PayloadTooLargeError,
    RemoteTaskError,
    Retry,
    Task,
    TaskFailedError,
    TaskResult,
    TaskStatus,
)

EXPORTED = [getattr(omniq.models, n) for n in omniq.models.__all__]
CLASSES_AND_FUNCTIONS = [o for o in EXPORTED if inspect.isclass(o) or inspect.isfunction(o)]
ERRORS = [o for o in EXPORTED if inspect.isclass(o) and issubclass(o, OmniQError)]


@pytest.mark.parametrize("obj", CLASSES_AND_FUNCTIONS, ids=lambda o: o.__name__)
def test_exported_names_show_the_public_module(obj: typing.Any) -> None:
    assert obj.__module__ == "omniq.models"
    assert getattr(omniq.models, obj.__qualname__) is obj


@pytest.mark.parametrize("cls", [o for o in CLASSES_AND_FUNCTIONS if inspect.isclass(o)])
def test_type_hints_resolve_after_the_rename(cls: type) -> None:
    typing.get_type_hints(cls)


def test_structs_round_trip_through_msgspec_and_pickle() -> None:
    task = Task(func="mod:fn", queue="q", metadata={"k": 1})
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(task), type=Task) == task
    assert msgspec.json.decode(msgspec.json.encode(task), type=Task).queue == "q"
    assert pickle.loads(pickle.dumps(task)) == task
    assert repr(TaskStatus.PENDING).startswith("<TaskStatus.")
    assert pickle.loads(pickle.dumps(TaskStatus.SUCCESS)) is TaskStatus.SUCCESS
    result = TaskResult(
        task_id=task.id, status=TaskStatus.ERROR, error=ErrorInfo(type="E", message="m")
    )
    assert pickle.loads(pickle.dumps(result)) == result
    assert msgspec.json.schema(Task)["$ref"].endswith("/Task")


def _instance(cls: type[OmniQError]) -> OmniQError:
    if cls is ConfigError:
        return ConfigError("OMNIQ_X", "bad", "an int", "detail")
    if cls is RemoteTaskError:
        return RemoteTaskError(ErrorInfo(type="ValueError", message="boom", traceback="tb"))
    if cls is Retry:
        return Retry(2.5, "what went wrong")
    if cls is TaskFailedError:
        return TaskFailedError("t1", "m:f", ErrorInfo(type="ValueError", message="boom"))
    if cls is PayloadTooLargeError:
        return PayloadTooLargeError("what went wrong", subject="task t", size=9, limit=8)
    return cls("what went wrong")


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_message_and_fields(cls: type[OmniQError]) -> None:
    exc = _instance(cls)
    exc.add_note("a note")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc)
    assert back.__notes__ == ["a note"]
    assert vars(back) == vars(exc)


def test_remote_task_error_keeps_its_error_info() -> None:
    info = ErrorInfo(type="KeyError", message="'x'", traceback="Traceback ...")
    back = pickle.loads(pickle.dumps(RemoteTaskError(info)))
    assert back.info == info
    assert str(back) == "KeyError: 'x'"
    assert isinstance(back, OmniQError)
