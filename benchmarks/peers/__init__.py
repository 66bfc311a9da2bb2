"""Peer comparison harness: the same workloads on OmniQ and on Celery, Dramatiq, RQ,
Huey, arq, Taskiq, SAQ and procrastinate, each peer installed in its own cached venv
and driven through ``adapters/bench_<peer>.py``. Run ``python -m benchmarks.peers -h``.
"""
