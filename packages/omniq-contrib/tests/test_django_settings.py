"""omniq_from_settings: the OMNIQ mapping of Django settings to an OmniQ."""

from __future__ import annotations

import pytest

from omniq.contrib.django import omniq_from_settings
from omniq.models import ConfigError


def test_store_urls_and_settings_from_the_mapping() -> None:
    oq = omniq_from_settings({"TASK_QUEUE": "memory://", "RESULT_TTL": 60, "max_workers": 3})
    assert oq.task_queue_url == "memory://"
    assert oq.settings.result_ttl == 60
    assert oq.settings.max_workers == 3


def test_an_unknown_or_bad_setting_fails_naming_it() -> None:
    with pytest.raises(ConfigError, match="result_ttl"):
        omniq_from_settings({"TASK_QUEUE": "memory://", "RESULT_TTL": -5})
    with pytest.raises(ConfigError, match="OMNIQ"):
        omniq_from_settings(["not", "a", "mapping"])  # type: ignore[arg-type]
