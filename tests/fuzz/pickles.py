"""Pickles whose unpickling would leave a side effect (a file), to prove none is run."""

from __future__ import annotations

import pickle


class Boom:
    """``pickle.loads`` of this object calls ``open(path, 'a').write('pwned')``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (exec, (f"open({self.path!r}, 'a').write('pwned')",))


def evil_pickle(path: str) -> bytes:
    return pickle.dumps(Boom(path), protocol=pickle.HIGHEST_PROTOCOL)
