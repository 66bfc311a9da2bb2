"""Run by ``manage.py shell``: prints the results of the ids in RESULT_IDS as JSON."""

import json
import os

from omniq.contrib.django import get_omniq

oq = get_omniq()
out = {}
for tid in os.environ["RESULT_IDS"].split(","):
    res = oq.get_result_sync(tid)
    out[tid] = None if res is None else res.value
print(json.dumps(out))
oq.close_sync()
