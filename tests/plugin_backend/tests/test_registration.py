"""memo:// is found through its entry point, like any backend."""

from __future__ import annotations

from omniq_memo import MemoBackend

from omniq.config import Settings
from omniq.storage import BACKENDS, backend_class, open_storage, store_urls


def test_opened_through_the_entry_point() -> None:
    assert BACKENDS["memo"].target == "omniq_memo:MemoBackend"
    assert BACKENDS["memo"].distribution == "omniq-memo"
    assert backend_class("memo") is MemoBackend
    assert type(open_storage("memo://x")) is MemoBackend


def test_its_default_url_rule() -> None:
    urls = store_urls(Settings(task_queue_type="memo", event_storage_type="memo"))
    assert urls.tasks == urls.events == "memo://task_queue"
    assert store_urls(Settings(result_storage_type="memo")).results == "memo://result_storage"
