"""``python -m benchmarks.peers``: run the workloads, alternating libraries within each
round, and print medians over the rounds with versions and machine facts."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import _floors, _venvs, _workloads
from ._machine import machine_info
from ._report import fmt, markdown, show
from ._workloads import EMBEDDED, PEERS

ALL_WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "w6")
VERBOSE = False


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    ap.add_argument("--peers", default=",".join(PEERS), help="comma list (default: all)")
    ap.add_argument("--embedded", default=",".join(EMBEDDED), help="W4 entries (default: all)")
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    ap.add_argument("--runs", type=int, default=3, help="rounds; medians are over rounds")
    ap.add_argument("--n", type=int, default=20_000, help="W1/W4 tasks")
    ap.add_argument("--lat-n", type=int, default=500, help="W2 tasks")
    ap.add_argument("--lat-gap", type=float, default=0.02, help="W2 seconds between enqueues")
    ap.add_argument("--io-n", type=int, default=2_000, help="W3 tasks")
    ap.add_argument("--enq-n", type=int, default=5_000, help="W6 tasks (single/concurrent)")
    ap.add_argument("--enq-c", type=int, default=100, help="W6 concurrent senders")
    ap.add_argument("--floor-n", type=int, default=100_000, help="engine floor operations")
    ap.add_argument("--quick", action="store_true", help="small N: 2000/100/400, floors 20000")
    ap.add_argument("--no-floors", action="store_true")
    ap.add_argument("--setup-only", action="store_true", help="create the peer venvs and exit")
    ap.add_argument("--json", type=Path, help="write raw results here")
    ap.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    ap.add_argument(
        "--omniq-ref",
        action="append",
        default=[],
        metavar="REV",
        help="also run each selected OmniQ peer (or OmniQ on Redis) from git revision REV's "
        "sources (peer 'omniq...@REV'), alternating with the working tree: an A/B of a "
        "change in the same minutes",
    )
    ap.add_argument(
        "--churn",
        type=int,
        default=100_000,
        help="tasks the omniq-pg-churned peer runs through its store before each workload",
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failed runs")
    args = ap.parse_args(argv)
    args.peers = [p for p in args.peers.split(",") if p]
    _workloads.set_churn(args.churn)
    bases = [p for p in args.peers if PEERS.get(p) and PEERS[p].adapter == "omniq"] or ["omniq"]
    for rev in args.omniq_ref:
        for base in bases:
            PEERS[f"{base}@{rev}"] = _workloads.omniq_at(rev, base)
            args.peers.append(f"{base}@{rev}")
    if args.quick:
        args.n, args.lat_n, args.io_n, args.floor_n = 2_000, 100, 400, 20_000
        args.enq_n = 1_000
    args.embedded = [p for p in args.embedded.split(",") if p]
    args.workloads = {w.strip().lower() for w in args.workloads.split(",") if w}
    for p in args.peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}; known: {', '.join(PEERS)}")
    for p in args.embedded:
        if p not in EMBEDDED:
            ap.error(f"unknown embedded entry {p!r}; known: {', '.join(EMBEDDED)}")
    return args


def _setup(args: argparse.Namespace) -> dict[str, str]:
    venvs = {PEERS[p].venv for p in args.peers} | {EMBEDDED[e][0].venv for e in args.embedded}
    for v in sorted(x for x in venvs if x):
        print(f"venv {v}: {' '.join(_venvs.PINS[v])}", flush=True)
        _venvs.ensure(v)
    print("compiling bytecode", flush=True)
    for v in sorted(venvs, key=lambda x: x or ""):
        _venvs.compile_bytecode(_venvs.python_for(v))
    _workloads.ensure_databases()
    versions: dict[str, str] = {}
    for name in args.peers:
        try:
            versions[name] = _workloads.version(PEERS[name])
        except Exception as exc:
            versions[name] = f"unavailable ({str(exc).strip().splitlines()[-1][:80]})"
    for name in args.embedded:
        peer = EMBEDDED[name][0]
        try:
            versions[name] = _workloads.version(peer)
        except Exception as exc:
            versions[name] = f"unavailable ({str(exc).strip().splitlines()[-1][:80]})"
    return versions


def _one(samples: dict, errors: dict, key: tuple[str, str], fn: Any, *fargs: Any) -> None:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="omniq-bench-") as tmp:
        try:
            result = fn(*fargs, Path(tmp))
        except Exception as exc:
            errors[key] = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else repr(exc)
            print(f"  {key[0]:<14} {key[1]}: FAILED {errors[key]}", flush=True)
            if VERBOSE:
                traceback.print_exc()
            return
    for metric, value in result.items():
        samples[(*key, metric)].append(value)
    shown = ", ".join(f"{k}={v:,.1f}" for k, v in result.items())
    print(f"  {key[0]:<14} {key[1]}: {shown} ({time.monotonic() - t0:.1f}s)", flush=True)


def _rounds(args: argparse.Namespace) -> tuple[dict, dict]:
    samples: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    errors: dict[tuple[str, str], str] = {}
    wl = args.workloads
    for r in range(args.runs):
        # Rotate the order every round so no library always runs first or last.
        k = r % max(len(args.peers), 1)
        order = args.peers[k:] + args.peers[:k]
        print(f"round {r + 1}/{args.runs}: {' '.join(order)}", flush=True)
        for name in order:
            peer = PEERS[name]
            if "w1" in wl:
                _one(samples, errors, (name, "w1"), _workloads.throughput, peer, "noop", args.n)
            if ("w2" in wl or "w5" in wl) and not peer.env.get("BENCH_OMNIQ_WORKER"):
                _one(
                    samples, errors, (name, "w2"), _workloads.latency, peer, args.lat_n,
                    args.lat_gap,
                )  # fmt: skip
            if "w3" in wl and not peer.env.get("BENCH_OMNIQ_WORKER"):
                _one(samples, errors, (name, "w3"), _workloads.throughput, peer, "sleep", args.io_n)
            if "w6" in wl and not (
                peer.env.get("BENCH_OMNIQ_WORKER") or peer.env.get("BENCH_CHURN")
            ):
                _one(
                    samples, errors, (name, "w6"), _workloads.enqueue_rates, peer, args.enq_n,
                    args.enq_c,
                )  # fmt: skip
        if "w4" in wl:
            k = r % max(len(args.embedded), 1)
            for name in args.embedded[k:] + args.embedded[:k]:
                _one(samples, errors, (name, "w4"), _workloads.embedded, name, args.n)
    return samples, errors


def _median(samples: dict, key: tuple[str, str, str]) -> float | None:
    values = samples.get(key)
    return statistics.median(values) if values else None


def _tables(args, versions, samples, errors, floors):  # type: ignore[no-untyped-def]
    tables = []
    headers = ["library", "version", "engine", "W1 enqueue/s", "W1 drain/s", "W1 e2e/s"]
    headers += ["W2 p50 ms", "W2 p99 ms", "W3 tasks/s", "W5 idle MB", "W5 loaded MB"]
    headers += ["W6 1-by-1/s", f"W6 x{args.enq_c}/s", "errors"]
    rows = []
    for name in args.peers:
        peer = PEERS[name]

        def m(wl: str, metric: str, name: str = name) -> float | None:
            return _median(samples, (name, wl, metric))

        loaded = [v for v in (m("w1", "peak_rss_mb"), m("w3", "peak_rss_mb")) if v is not None]
        errs = [f"{wl}: {msg}" for (p, wl), msg in errors.items() if p == name]
        rows.append(
            [
                name,
                versions.get(name, "?"),
                peer.engine,
                fmt(m("w1", "enqueue_rate")),
                fmt(m("w1", "drain_rate")),
                fmt(m("w1", "e2e_rate")),
                fmt(m("w2", "p50_ms"), 2),
                fmt(m("w2", "p99_ms"), 2),
                fmt(m("w3", "drain_rate")),
                fmt(m("w2", "idle_rss_mb"), 1),
                fmt(max(loaded) if loaded else None, 1),
                fmt(m("w6", "single_rate")),
                fmt(m("w6", "concurrent_rate")),
                "; ".join(errs)[:120],
            ]
        )
    if args.workloads & {"w1", "w2", "w3", "w5", "w6"}:
        tables.append((f"W1-W3, W5 (N={args.n}, latency N={args.lat_n}, I/O N={args.io_n}; "
                       f"medians of {args.runs})", headers, rows))  # fmt: skip
    if "w4" in args.workloads:
        h4 = ["embedded", "version", "W4 enqueue/s", "W4 drain/s", "W4 e2e/s", "errors"]
        r4 = []
        for name in args.embedded:
            r4.append(
                [
                    name,
                    versions.get(name, "?"),
                    fmt(_median(samples, (name, "w4", "enqueue_rate"))),
                    fmt(_median(samples, (name, "w4", "drain_rate"))),
                    fmt(_median(samples, (name, "w4", "e2e_rate"))),
                    errors.get((name, "w4"), "")[:120],
                ]
            )
        tables.append((f"W4 embedded (N={args.n}; medians of {args.runs})", h4, r4))
    if floors:
        tables.append(
            (
                f"Engine floors (N={args.floor_n})",
                ["operation", "ops/s"],
                [[k, fmt(v)] for k, v in floors.items()],
            )
        )
    return tables


def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    args = _parse(argv)
    VERBOSE = args.verbose
    machine = machine_info()
    versions = _setup(args)
    if args.setup_only:
        print(json.dumps(versions, indent=2))
        return 0
    samples, errors = _rounds(args)
    floors: dict[str, float] = {}
    if not args.no_floors:
        for fn in (_floors.redis_floor, _floors.pg_floor):
            try:
                floors.update(fn(args.floor_n))
            except Exception as exc:
                floors[f"{fn.__name__} failed: {exc}"[:100]] = float("nan")
    machine["load after run (1/5/15 min)"] = machine_info()["load (1/5/15 min)"]
    tables = _tables(args, versions, samples, errors, floors)
    show("Machine", ["fact", "value"], [[k, v] for k, v in machine.items()])
    for title, headers, rows in tables:
        show(title, headers, rows)
    if args.markdown:
        text = markdown("Machine", ["fact", "value"], [[k, v] for k, v in machine.items()])
        text += "".join("\n" + markdown(*t) for t in tables)
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "versions": versions,
                    "args": {k: sorted(v) if isinstance(v, set) else v
                             for k, v in vars(args).items() if k not in ("json", "markdown")},
                    "samples": {"|".join(k): v for k, v in samples.items()},
                    "errors": {"|".join(k): v for k, v in errors.items()},
                    "floors": floors,
                },
                indent=2,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
