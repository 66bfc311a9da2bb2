"""Run by ``manage.py shell -c "import proj.scenario"``: enqueues inside Django
transactions, rolled back and committed, and prints what is stored as JSON."""

import json

from django.db import connection, transaction

from omniq.contrib.django import enqueue_in_transaction, enqueue_on_commit, get_omniq


class Rollback(Exception):
    pass


oq = get_omniq()
with connection.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS orders (id integer)")
ids: dict[str, str] = {}
try:
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("INSERT INTO orders VALUES (1)")
        ids["tx_rolled_back"] = enqueue_in_transaction("proj.tasks:add", (1, 1)).id
        ids["on_commit_rolled_back"] = enqueue_on_commit("proj.tasks:add", (1, 2)).id
        raise Rollback
except Rollback:
    pass
with transaction.atomic():
    with connection.cursor() as cur:
        cur.execute("INSERT INTO orders VALUES (2)")
    ids["tx_committed"] = enqueue_in_transaction("proj.tasks:add", (2, 3)).id
    ids["seen_before_commit"] = str(oq.get_task_sync(ids["tx_committed"]) is not None)
    ids["on_commit_committed"] = enqueue_on_commit("proj.tasks:add", (3, 4)).id
    ids["on_commit_before_commit"] = str(oq.get_task_sync(ids["on_commit_committed"]) is not None)
stored = {k: oq.get_task_sync(v) is not None for k, v in ids.items() if not k.endswith("commit")}
with connection.cursor() as cur:
    cur.execute("SELECT count(*) FROM orders")
    orders = cur.fetchone()[0]
print(json.dumps({"ids": ids, "stored": stored, "orders": orders}))
oq.close_sync()
