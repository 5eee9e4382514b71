"""B5: memory -- RSS growth over many cycles, and RSS per idle connection.

Every part runs in a fresh interpreter (``python -m benchmarks.b5 --part
...``, spawned by the main run), because memory that earlier work freed
stays resident and would absorb a leak without any growth in RSS.  A part
prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sqlite3
import subprocess
import sys
from typing import Any

from . import fakedb
from .candidates import Candidate, Driver
from .harness import cycle_loop, rss_bytes

TITLE = "B5  memory: RSS growth over many cycles, RSS per idle connection"


def _rss_after_collect() -> int:
    gc.collect()
    return rss_bytes()


def growth(cand: Candidate, cycles: int) -> dict[str, float]:
    opened = cand.open(10, Driver("fake", fakedb))
    # Let caches, free lists and the pool's own bookkeeping reach their
    # steady size before the baseline is taken.
    cycle_loop(opened.get, opened.put, max(50000, cycles // 10))
    rss0 = _rss_after_collect()
    objects0 = len(gc.get_objects())
    cycle_loop(opened.get, opened.put, cycles)
    rss1 = _rss_after_collect()
    objects1 = len(gc.get_objects())
    opened.close()
    return {
        "cycles": cycles,
        "rss_growth_bytes": rss1 - rss0,
        "gc_objects_growth": objects1 - objects0,
    }


DRIVERS = {
    "fake": (lambda: Driver("fake", fakedb), 100_000),
    "sqlite3": (lambda: Driver("sqlite3", sqlite3, database=":memory:"), 1000),
}


def idle(cand: Candidate | None, driver_name: str) -> dict[str, float]:
    """RSS per connection for N connections idle in the pool (or, with no
    pool, merely held in a list)."""
    make_driver, count = DRIVERS[driver_name]
    driver = make_driver()
    rss0 = _rss_after_collect()
    if cand is None:
        bare = [driver.connect() for _ in range(count)]
    else:
        opened = cand.open(count, driver)
        lent = [opened.get() for _ in range(count)]
        for wrapper in lent:
            opened.put(wrapper)
        del lent, wrapper  # the pool alone holds them now
    rss1 = _rss_after_collect()
    if cand is None:
        del bare
    return {"connections": count, "bytes_each": (rss1 - rss0) / count}


def _child(part: str, stand_in: bool, cycles: int) -> dict[str, Any]:
    """Run one measurement part in a fresh interpreter."""
    argv = [
        sys.executable,
        "-W",
        "ignore",
        "-m",
        "benchmarks.b5",
        "--part",
        part,
        "--cycles",
        str(cycles),
    ]
    if stand_in:
        argv.append("--stand-in")
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"B5 part {part} failed:\n" + "\n".join(tail))
    return json.loads(proc.stdout)


def run(quick: bool, stand_in: bool) -> dict[str, Any]:
    """Measure db_pool, each part in its own fresh interpreter.

    One process per part, because memory that an earlier part freed stays
    resident and would absorb the next part's allocations unseen.
    """
    cycles = 200_000 if quick else 1_000_000
    result: dict[str, Any] = {"title": TITLE}
    first = _child("growth", stand_in, cycles)
    if "skipped" in first:
        result["skipped"] = first["skipped"]
        return result
    result["pool"] = first.pop("pool")
    result["growth"] = first
    for name in DRIVERS:
        bare = _child(f"bare:{name}", stand_in, cycles)
        pooled = _child(f"pool:{name}", stand_in, cycles)
        result[f"idle_{name}"] = {
            "connections": pooled["connections"],
            "bare_bytes_each": bare["bytes_each"],
            "pooled_bytes_each": pooled["bytes_each"],
            "pool_overhead_bytes_each": pooled["bytes_each"] - bare["bytes_each"],
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.b5")
    parser.add_argument("--part", required=True)
    parser.add_argument("--cycles", type=int, default=1_000_000)
    parser.add_argument("--stand-in", action="store_true")
    args = parser.parse_args()

    from .candidates import DB_POOL, roster

    candidates, note = roster(args.stand_in)
    pools = {c.key: c for c in candidates}
    cand = pools.get(DB_POOL)
    result: dict[str, Any]
    if cand is None:
        result = {"skipped": note}
    elif args.part == "growth":
        result = growth(cand, args.cycles)
        result["pool"] = cand.label
    else:
        kind, driver_name = args.part.split(":")
        result = idle(cand if kind == "pool" else None, driver_name)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    import eventlet

    # As in the main run: green threading, sockets and time.sleep.
    eventlet.monkey_patch()
    main()
