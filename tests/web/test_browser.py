"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver),
driven by clicks through selenium: pause a queue, requeue a dead letter, open a task's
event trail. Screenshots go to tests/web/artifacts/ (and, with OMNIQ_DOCS_SHOTS=1,
the overview to docs/images/dashboard.png)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from omniq.core import OmniQ
from omniq.models import TaskStatus
from omniq.web import create_app

from .browser import DOCS_IMAGES, DOCS_SHOTS, chromium, save_shot

ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_SHOT = DOCS_IMAGES / "dashboard.png"
WAIT = 15.0


def until(fn: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if fn():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass  # htmx is swapping the block (old one gone, new one not in yet): read again
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[str, OmniQ]]:
    url = f"sqlite:///{tmp_path / 'oq.db'}"
    with OmniQ(url, event_storage=url) as oq:
        oq.enqueue_many_sync([("math:sqrt", (i,)) for i in range(5)], queue="emails")
        oq.enqueue_many_sync([("math:floor", (2.5,))] * 3, queue="reports")
        oq.enqueue_sync("math:sqrt", (-1,), queue="imports", max_retries=0)
        oq.run_worker_sync(queues=["imports"], burst=True, handle_signals=False)
        oq.flush_events_sync()
        yield url, oq


@pytest.fixture
def server(seeded: tuple[str, OmniQ]) -> Iterator[str]:
    url, _ = seeded
    port = _free_port()
    config = uvicorn.Config(
        create_app(url, events_url=url, poll=1.0), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    srv.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    until(lambda: srv.started, "the server to start")
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def shot(driver: webdriver.Chrome, name: str) -> Path:
    return save_shot(driver, ARTIFACTS, name)


@pytest.mark.slow
def test_pause_requeue_and_trail_by_clicking(
    server: str, seeded: tuple[str, OmniQ], browser: webdriver.Chrome
) -> None:
    _, oq = seeded
    browser.get(server + "/")
    until(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-queue="emails"]'), "queues")
    row = 'tr[data-queue="emails"]'

    def click_pause() -> bool:
        browser.find_element(By.CSS_SELECTOR, f'{row} button[data-action="pause"]').click()
        return True

    until(click_pause, "the pause button")
    until(
        lambda: browser.find_element(By.CSS_SELECTOR, f"{row} td.state").text == "paused",
        "the queue to show paused",
    )
    assert [q.paused for q in oq.list_queues_sync() if q.name == "emails"] == [True]
    until(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'{row} button[data-action="resume"]'),
        "the resume button",
    )
    overview = shot(browser, "1-overview-paused")
    if DOCS_SHOTS:  # refresh the picture in docs/dashboard.md
        shutil.copyfile(overview, DOCS_SHOT)

    browser.find_element(By.LINK_TEXT, "Dead letters").click()
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "tr[data-task]"), "a dead letter")
    dead = browser.find_element(By.CSS_SELECTOR, "tr[data-task]").get_attribute("data-task")
    assert dead
    shot(browser, "2-dead-letters")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-task] button[data-action="requeue"]').click()
    until(lambda: "No dead letters" in browser.page_source, "the dead letter to go")
    task = oq.get_task_sync(dead)
    assert task is not None and task.status is TaskStatus.PENDING
    shot(browser, "3-dead-letters-requeued")

    browser.find_element(By.LINK_TEXT, "Tasks").click()
    until(lambda: browser.find_elements(By.LINK_TEXT, dead), "the task list")
    browser.find_element(By.LINK_TEXT, dead).click()
    until(lambda: browser.find_elements(By.ID, "trail-table"), "the event trail")
    trail = browser.find_element(By.ID, "trail-table").text
    assert "ENQUEUED" in trail and "ERROR" in trail
    assert "ValueError" not in browser.find_element(By.ID, "args").text
    shot(browser, "4-task-trail")
