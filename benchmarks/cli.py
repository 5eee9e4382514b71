"""``python -m benchmarks``: run the benchmarks, print tables, write results.

Everything runs in one monkey-patched process, the way an eventlet server
runs: SQLAlchemy's and DBUtils' locks are green, PyMySQL's sockets are green,
and psycopg2 gets a wait callback.  After a warm-up, candidates alternate
within each round and tables show medians over the rounds and ratios to
db_pool; in B3 each pool takes turns with its ceiling in short slices.  Only
B5 (memory) measures in fresh interpreters of its own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

from . import b1, b2, b3, b4, b5, report
from .candidates import DB_POOL, HANDOFF, load_db_pool, roster
from .harness import CpuMeter

BENCHES = ("B1", "B2", "B3", "B4", "B5")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="db_pool side by side with eventlet.db_pool, SQLAlchemy's "
        "QueuePool, DBUtils' PooledDB and bare floors.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds, shorter runs (under a minute)",
    )
    parser.add_argument(
        "--only",
        metavar="B1,B2",
        help="comma-separated benchmarks to run (default: all)",
    )
    parser.add_argument("--json", metavar="PATH", help="write all results here")
    parser.add_argument("--chart", metavar="PATH", help="write a PNG chart here")
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="measure eventlet.db_pool in db_pool's place (for working on the "
        "harness without db_pool; its results mean nothing)",
    )
    args = parser.parse_args(argv)
    if args.only:
        chosen = [b.strip().upper() for b in args.only.split(",") if b.strip()]
        unknown = [b for b in chosen if b not in BENCHES]
        if unknown:
            parser.error(
                f"unknown benchmark(s) {', '.join(unknown)}; "
                f"choose from {', '.join(BENCHES)}"
            )
        args.only = [b for b in BENCHES if b in chosen]
    else:
        args.only = list(BENCHES)
    return args


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "-C", here, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import eventlet.hubs

    return {
        "command": " ".join(["python -m benchmarks"] + sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "revision": _git_revision(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "loadavg": os.getloadavg(),
        "hub": type(eventlet.hubs.get_hub()).__module__,
        "versions": {
            d: _version(d)
            for d in (
                "eventlet",
                "SQLAlchemy",
                "DBUtils",
                "psycopg2-binary",
                "PyMySQL",
                "greenlet",
            )
        },
        "quick": args.quick,
        **_measured_db_pool(args),
    }


def _measured_db_pool(args: argparse.Namespace) -> dict[str, Any]:
    """Which db_pool the run measures: where it was imported from, and
    whether its get() and put() ran their C fast paths (None: no db_pool)."""
    module = None if args.stand_in else load_db_pool()[0]
    if module is None:
        return {"db_pool_speedups": None, "db_pool_from": None}
    return {
        "db_pool_speedups": bool(getattr(module, "SPEEDUPS", False)),
        "db_pool_from": os.path.dirname(module.__file__),
    }


def log(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _run_one(
    bench: str,
    args: argparse.Namespace,
    candidates: list[Any],
    note: str,
    db_pool_module: Any,
) -> dict[str, Any]:
    have_db_pool = bool(candidates) and candidates[0].key == DB_POOL
    if bench == "B1":
        return b1.run(candidates, args.quick)
    if bench == "B2":
        return b2.run(candidates, args.quick)
    if bench == "B3":
        return b3.run(candidates, args.quick, db_pool_module, log)
    if bench == "B4":
        if not have_db_pool:
            return {"title": b4.TITLE, "skipped": note}
        floor = next(c for c in candidates if c.key == HANDOFF)
        return b4.run(candidates[0], floor, args.quick)
    return b5.run(args.quick, args.stand_in)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    candidates, note = roster(args.stand_in)
    db_pool_module = None if args.stand_in else load_db_pool()[0]
    env = environment(args)

    print(f"db_pool benchmarks  {env['date']}  revision {env['revision']}")
    print(
        f"  python {env['python']}, {env['cpus']} CPUs ({env['cpu']}), "
        f"load {env['loadavg'][0]:.2f}, hub {env['hub']}"
    )
    print("  " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    if env["db_pool_speedups"] is not None:
        print(
            "  db_pool get()/put(): "
            + (
                "C fast paths (db_pool._speedups)"
                if env["db_pool_speedups"]
                else "pure Python (extension not built, or DB_POOL_PURE_PYTHON=1)"
            )
            + f"; db_pool from {env['db_pool_from']}"
        )
    print(
        "  one monkey-patched process; candidates alternate within rounds"
        " (B3: with their ceilings); medians"
    )
    if env["loadavg"][0] > 0.5:
        print(
            f"  WARNING: load average {env['loadavg'][0]:.2f} at start: other work"
            " on this machine makes every figure noisier"
        )
    if note:
        print(f"  NOTE: {note}")
    print()

    results: dict[str, Any] = {}
    targets: list[report.Target] = []
    started = time.monotonic()
    crashed = False
    for bench in args.only:
        t0 = time.monotonic()
        meter = CpuMeter()
        log(f"{bench} running")
        try:
            results[bench] = _run_one(bench, args, candidates, note, db_pool_module)
        except Exception as exc:  # report it, and go on with the others
            import traceback

            print(f"{bench}  FAILED: {type(exc).__name__}: {exc}\n")
            traceback.print_exc()
            results[bench] = {"error": f"{type(exc).__name__}: {exc}"}
            targets.append(report.Target(bench, "ran to completion", 0.0, ">=", 1.0))
            crashed = True
            continue
        results[bench]["seconds"] = time.monotonic() - t0
        results[bench]["others_cpu_pct"] = meter.others_percent()
        text, found = report.SECTIONS[bench](results[bench])
        print(report.section_header(bench, results[bench]))
        print(text)
        for t in found:
            print(t.line())
        print(flush=True)
        targets += found

    elapsed = time.monotonic() - started
    counts = {
        s: sum(t.status == s for t in targets)
        for s in (report.PASS, report.FAIL, report.SKIP)
    }
    print(
        f"Targets: {counts[report.PASS]} pass, {counts[report.FAIL]} fail, "
        f"{counts[report.SKIP]} skipped  ({elapsed:.0f} s)"
    )
    for t in targets:
        if t.status != report.PASS:
            print(t.line())

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "environment": env,
                    "note": note,
                    "results": results,
                    "targets": [t.as_dict() for t in targets],
                },
                f,
                indent=1,
            )
        print(f"wrote {args.json}")
    if args.chart:
        report.chart(results, targets, args.chart)
        print(f"wrote {args.chart}")
    return 1 if crashed else 0
