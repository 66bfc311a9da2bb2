"""A task function for the console-script tests (imported by the worker process)."""


def double(x: int) -> int:
    return 2 * x
