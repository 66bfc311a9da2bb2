"""repr(OmniQ) never shows the password of its task queue URL."""

from __future__ import annotations

import pytest

from omniq.core import OmniQ


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@localhost:6379/0",
        "postgresql://omniq:hunter2@db1:5432,db2:5432/jobs",
        "nats://hunter2@localhost:4222",
        "redis://localhost:6379/0?password=hunter2",
    ],
)
def test_repr_redacts_the_url(url: str) -> None:
    text = repr(OmniQ(url))
    assert "hunter2" not in text
    assert text.startswith("OmniQ(task_queue=") and "***" in text
