"""Every page and action of the dashboard through Starlette's TestClient, on SQLite."""

from __future__ import annotations

import re
import time

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from typer.testing import CliRunner

from omniq.core import OmniQ
from omniq.core.cli import app as cli_app
from omniq.models import Payload, Task, TaskStatus
from omniq.web import BasicAuth, create_app

from .conftest import token


def _fail(seed: OmniQ, n: int = 1) -> list[str]:
    """Dead letters: math.sqrt(-1) raises ValueError, no retries."""
    tasks = [seed.enqueue_sync("math:sqrt", (-1,), queue="fail", max_retries=0) for _ in range(n)]
    seed.run_worker_sync(queues=["fail"], burst=True, handle_signals=False)
    seed.flush_events_sync()
    return [t.id for t in tasks]


def test_overview_lists_queues_and_pause_resume(client: TestClient, seed: OmniQ) -> None:
    seed.enqueue_many_sync([("math:sqrt", (4,))] * 3, queue="emails")
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-queue="emails"' in page.text and "htmx.min.js" in page.text
    assert client.get("/fragments/queues").text.count("<tr") >= 2
    csrf = token(client)
    r = client.post("/queues/emails/pause", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert [q.paused for q in seed.list_queues_sync() if q.name == "emails"] == [True]
    assert 'class="paused"' in client.get("/").text
    client.post("/queues/emails/resume", data={"csrf": csrf})
    assert [q.paused for q in seed.list_queues_sync() if q.name == "emails"] == [False]


def test_overview_throughput_failures_and_oldest_pending(client: TestClient, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="ok")
    seed.run_worker_sync(queues=["ok"], burst=True, handle_signals=False)
    _fail(seed, 2)
    seed.enqueue_sync("math:sqrt", (9,), queue="waiting")
    html = client.get("/").text
    row = re.search(r'<tr data-queue="fail">(.*?)</tr>', html, re.S)
    assert row
    cells = re.findall(r'<td class="n">([^<]*)</td>', row.group(1))
    assert cells[:2] == ["0", "2"]  # done and failed in the window
    ok = re.search(r'<tr data-queue="ok">(.*?)</tr>', html, re.S)
    assert ok and re.findall(r'<td class="n">([^<]*)</td>', ok.group(1))[0] == "1"
    waiting = re.search(r'<tr data-queue="waiting">(.*?)</tr>', html, re.S)
    assert waiting and re.findall(r'<td class="n">([^<]*)</td>', waiting.group(1))[2].endswith("s")


def test_actions_need_the_csrf_token(client: TestClient, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="a")
    token(client)  # the cookie is set
    assert client.post("/queues/a/pause").status_code == 403
    assert client.post("/queues/a/pause", data={"csrf": "forged"}).status_code == 403
    other = TestClient(client.app)  # a cross-site form carries no cookie of ours
    assert other.post("/queues/a/pause", data={"csrf": token(client)}).status_code == 403
    assert seed.list_queues_sync()[0].paused is False


def test_read_only_hides_buttons_and_refuses_actions(url: str, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="a")
    with TestClient(create_app(url, read_only=True)) as c:
        html = c.get("/").text
        assert "read-only" in html and "<form" not in html.split("</header>")[1]
        csrf = c.cookies.get("omniq_csrf")
        assert c.post("/queues/a/pause", data={"csrf": csrf}).status_code == 403
    assert seed.list_queues_sync()[0].paused is False


def test_basic_auth_and_callable_auth(
    url: str, seed: OmniQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(url, auth=BasicAuth("ops", "s3cret"))) as c:
        r = c.get("/")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert c.get("/", auth=("ops", "wrong")).status_code == 401
        assert c.get("/", auth=("ops", "s3cret")).status_code == 200
        assert c.get("/metrics").status_code == 401
    with TestClient(create_app(url, auth=lambda req: req.headers.get("x-user") == "me")) as c:
        assert c.get("/tasks").status_code == 401
        assert c.get("/tasks", headers={"x-user": "me"}).status_code == 200

    async def allow(req: object) -> bool:
        return True

    with TestClient(create_app(url, auth=allow)) as c:
        assert c.get("/workers").status_code == 200
    monkeypatch.setenv("OMNIQ_WEB_PASSWORD", "pw")
    with TestClient(create_app(url)) as c:
        assert c.get("/").status_code == 401
        assert c.get("/", auth=("admin", "pw")).status_code == 200


def test_tasks_filters_and_keyset_paging(client: TestClient, seed: OmniQ) -> None:
    made = seed.enqueue_many_sync([("math:sqrt", (i,)) for i in range(120)], queue="big")
    seed.enqueue_many_sync([("math:floor", (1.5,))] * 3, queue="small")
    first = client.get("/tasks", params={"queue": "big"}).text
    ids1 = re.findall(r'href="/tasks/([0-9a-f-]{36})"', first)
    newest = sorted((t.id for t in made), reverse=True)
    assert ids1 == newest[:50]
    nxt = re.search(r'rel="next" href="([^"]+)"', first)
    assert nxt
    second = client.get(nxt.group(1).replace("&amp;", "&")).text
    assert re.findall(r'href="/tasks/([0-9a-f-]{36})"', second) == newest[50:100]
    by_func = client.get("/tasks", params={"func": "floor"}).text
    assert len(re.findall(r'href="/tasks/([0-9a-f-]{36})"', by_func)) == 3
    pending = client.get("/tasks", params={"status": "success"}).text
    assert "No tasks match" in pending
    future = client.get("/tasks", params={"since": "2999-01-01T00:00"}).text
    assert "No tasks match" in future
    past = client.get("/tasks", params={"until": "2000-01-01T00:00"}).text
    assert "No tasks match" in past


def test_task_detail_decodes_msgpack_and_never_unpickles(client: TestClient, seed: OmniQ) -> None:
    t = seed.enqueue_sync("math:pow", (2, 10), queue="calc")
    html = client.get(f"/tasks/{t.id}").text
    assert "math:pow" in html and "<pre id=args>args: [2, 10]</pre>" in html
    evil = Task(func="os:system", payload=Payload("dill", b"\x80\x04cos\nsystem\n" + b"x" * 20))
    seed.enqueue_many_sync([evil])
    seed.flush_events_sync()
    html = client.get(f"/tasks/{evil.id}").text
    assert "&lt;binary 33 bytes&gt;" in html
    assert "ENQUEUED" in html  # the event trail
    gone = client.get("/tasks/0190a0a0-0000-7000-8000-000000000000")
    assert gone.status_code == 200 and "No task with this id" in gone.text


def test_task_detail_shows_error_traceback_and_result(client: TestClient, seed: OmniQ) -> None:
    [dead] = _fail(seed)
    html = client.get(f"/tasks/{dead}").text
    assert "ValueError" in html and "id=traceback" in html and "Traceback" in html
    assert "ERROR" in client.get(f"/tasks/{dead}/trail").text
    ok = seed.enqueue_sync("math:sqrt", (16,), queue="ok")
    seed.run_worker_sync(queues=["ok"], burst=True, handle_signals=False)
    html = client.get(f"/tasks/{ok.id}").text
    assert "4.0" in html and "COMPLETE" in html


def test_dead_letters_requeue_and_purge(client: TestClient, seed: OmniQ) -> None:
    a, b, c = _fail(seed, 3)
    html = client.get("/dead-letters").text
    assert all(f'data-task="{x}"' in html for x in (a, b, c)) and "ValueError" in html
    csrf = token(client, "/dead-letters")
    r = client.post("/dead-letters/requeue", data={"csrf": csrf, "id": a})
    assert r.status_code == 200
    task = seed.get_task_sync(a)
    assert task is not None and task.status is TaskStatus.PENDING
    client.post("/dead-letters/purge", data={"csrf": csrf})
    assert seed.dead_letters_sync() == []
    assert "No dead letters" in client.get("/dead-letters").text


def test_schedules_pause_resume_delete(client: TestClient, seed: OmniQ) -> None:
    s = seed.schedule_sync("math:sqrt", interval=3600, args=(4,), name="hourly")
    html = client.get("/schedules").text
    assert "hourly" in html and f'action="/schedules/{s.id}/pause"' in html
    csrf = token(client, "/schedules")
    client.post(f"/schedules/{s.id}/pause", data={"csrf": csrf})
    got = seed.get_schedule_sync(s.id)
    assert got is not None and got.state.value == "paused"
    client.post(f"/schedules/{s.id}/resume", data={"csrf": csrf})
    got = seed.get_schedule_sync(s.id)
    assert got is not None and got.state.value == "active"
    assert client.post(f"/schedules/{s.id}/explode", data={"csrf": csrf}).status_code == 404
    client.post(f"/schedules/{s.id}/delete", data={"csrf": csrf})
    assert seed.get_schedule_sync(s.id) is None


def test_workers_page_shows_live_workers(client: TestClient, seed: OmniQ) -> None:
    assert "No live workers" in client.get("/workers").text
    with seed.worker(queues=["w"]):
        deadline = time.monotonic() + 10
        while "No live workers" in client.get("/fragments/workers").text:
            assert time.monotonic() < deadline, "worker never showed up"
            time.sleep(0.05)
        assert "<code>" in client.get("/workers").text


def test_metrics_are_read_from_the_store(client: TestClient, seed: OmniQ) -> None:
    seed.enqueue_many_sync([("math:sqrt", (1,))] * 4, queue="m")
    _fail(seed)
    text = client.get("/metrics").text
    assert 'omniq_queue_tasks{queue="m",status="pending"} 4.0' in text
    assert 'omniq_queue_tasks{queue="fail",status="error"} 1.0' in text
    assert re.search(r'omniq_queue_oldest_pending_seconds\{queue="m"\} [0-9.]+', text)
    assert 'omniq_queue_oldest_pending_seconds{queue="fail"} 0.0' in text
    assert "omniq_workers_live 0.0" in text


def test_mounted_inside_a_starlette_app(url: str, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="a")
    outer = Starlette(routes=[Mount("/ops/omniq", app=create_app(oq=seed))])
    with TestClient(outer) as c:
        html = c.get("/ops/omniq/").text
        assert 'href="/ops/omniq/tasks' in html and 'action="/ops/omniq/queues/a/pause"' in html
        assert c.get("/ops/omniq/static/htmx.min.js").status_code == 200
        csrf = token(c, "/ops/omniq/")
        r = c.post("/ops/omniq/queues/a/pause", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
    assert seed.list_queues_sync()[0].paused is True


def test_omniq_web_command_is_registered() -> None:
    out = CliRunner().invoke(cli_app, ["web", "--help"])
    assert out.exit_code == 0 and "--port" in out.output and "127.0.0.1" in out.output


def test_overview_without_event_store_counts_from_its_own_samples(url: str, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="s")
    with TestClient(create_app(url)) as c:
        c.get("/")  # first sample: nothing done yet
        seed.enqueue_many_sync([("math:sqrt", (1,))] * 3, queue="s")
        seed.run_worker_sync(queues=["s"], burst=True, handle_signals=False)
        row = re.search(r'<tr data-queue="s">(.*?)</tr>', c.get("/fragments/queues").text, re.S)
    assert row
    done, failed = re.findall(r'<td class="n">([^<]*)</td>', row.group(1))[:2]
    assert done.startswith("4 in ") and failed.startswith("0 in ")


def test_odd_queue_names_and_bad_input(client: TestClient, seed: OmniQ) -> None:
    seed.enqueue_sync("math:sqrt", (4,), queue="mail:eu.v2")
    html = client.get("/").text
    assert 'action="/queues/mail%3Aeu.v2/pause"' in html
    client.post("/queues/mail%3Aeu.v2/pause", data={"csrf": token(client)})
    assert seed.list_queues_sync()[0].paused is True
    assert client.get("/dead-letters?offset=abc").status_code == 200
    assert client.get("/tasks?status=nonsense&since=yesterday").status_code == 200
    bad = client.post("/queues/bad%20name/pause", data={"csrf": token(client)})
    assert bad.status_code == 400
