"""B4: does a cycle cost the same at any pool size and any queue depth?

Sizes
    B1's loop (one green thread, checkout + checkin) on a pool holding
    *max_size* idle connections, opened beforehand: 1, 10, 100, 1000.

Queue depths
    A *relay* on a pool of one connection: depth + 1 green threads each loop
    get(); put().  While one holds the connection, the other *depth* are
    queued in get(), so every put() hands the connection to a queue of
    *depth* waiters, and the putter's next get() joins its tail.  One cycle
    is one put() to the queue, one get() that queues, and one green-thread
    switch to the next holder.  A pool whose queue operations scan, sort or
    wake all waiters grows with depth here.

    Switching among 10,000 green threads costs more per switch than among
    two, pool or no pool (each switch touches another thread's stack, colder
    in the CPU caches the more threads take turns).  So the same relay runs
    on a floor, the bare greenlet hand-off of candidates.HandoffPool, and
    the depth figure is db_pool's cycle over the floor's at the same depth:
    what db_pool adds, not what the machine charges for many threads.
    Flatness is taken over depths 1, 100 and 10,000, which all do the same
    work per cycle; depth 0 (a single thread, no hand-off, no switch) is
    B1's cycle, shown for reference.
"""

from __future__ import annotations

from typing import Any

import eventlet

from . import fakedb
from .candidates import Candidate, Driver
from .harness import (
    calibrate,
    clock,
    cycle_loop,
    join_all,
    median,
    rotations,
    settle,
)

SIZES = (1, 10, 100, 1000)
DEPTHS = (0, 1, 100, 10000)
JOIN_TIMEOUT = 120.0  # a relay takes well under a second; this catches a hang
TITLE = "B4  scale: cycle cost against pool size and queue depth"


def _fill(opened: Any, size: int) -> None:
    """Open *size* connections and leave them idle in the pool."""
    held = [opened.get() for _ in range(size)]
    for conn in held:
        opened.put(conn)


def _size_round(cand: Candidate, size: int, n: int) -> float:
    opened = cand.open(size, Driver("fake", fakedb))
    _fill(opened, size)
    cycle_loop(opened.get, opened.put, n // 10)
    settle()
    elapsed = cycle_loop(opened.get, opened.put, n)
    opened.close()
    return elapsed / n * 1e6


def relay(opened: Any, depth: int, cycles: int) -> tuple[float, float]:
    """Time *cycles* relay cycles with *depth* waiters queued behind the holder.

    Returns microseconds per cycle and the share of timed cycles (in %) whose
    holder differs from the previous cycle's: whether put() really handed
    the connection over, or the putter took it straight back.
    """
    get, put = opened.get, opened.put
    threads = depth + 1
    # Let every thread join the queue and go round once before timing.
    start = 2 * threads + 100
    stop = start + cycles
    state = {"count": 0, "holder": -1, "handoffs": 0, "t0": 0.0, "t1": 0.0, "queued": 0}

    def worker(me: int) -> None:
        state["queued"] += 1
        while state["count"] < stop:
            conn = get()
            count = state["count"] = state["count"] + 1
            if start < count <= stop and state["holder"] != me:
                state["handoffs"] += 1
            state["holder"] = me
            if count == start:
                state["t0"] = clock()
            elif count == stop:
                state["t1"] = clock()
            put(conn)

    # Hold the connection until every thread waits in get(): a thread that
    # found it free would otherwise loop alone, never yielding to the rest.
    held = get()
    workers = [eventlet.spawn(worker, i) for i in range(threads)]
    while state["queued"] < threads:
        eventlet.sleep(0)
    put(held)
    join_all(workers, JOIN_TIMEOUT)
    us = (state["t1"] - state["t0"]) / cycles * 1e6
    return us, 100.0 * state["handoffs"] / cycles


def _depth_round(cand: Candidate, depth: int, cycles: int) -> tuple[float, float]:
    opened = cand.open(1, Driver("fake", fakedb))
    settle()
    measured = relay(opened, depth, cycles)
    opened.close()
    return measured


def flatness(values: list[float]) -> float:
    return max(values) / min(values)


def run(cand: Candidate, floor: Candidate, quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 5
    seconds = 0.04 if quick else 0.1
    cycles = 5000 if quick else 20000

    probe = cand.open(SIZES[0], Driver("fake", fakedb))
    n = calibrate(probe.get, probe.put, seconds)
    probe.close()
    for c in (cand, floor):  # warm-up, untimed
        _depth_round(c, 10, 2000)

    size_samples: dict[int, list[float]] = {s: [] for s in SIZES}
    depth_samples: dict[tuple[str, int], list[float]] = {}
    handoffs: dict[tuple[str, int], list[float]] = {}
    jobs = [("size", cand, s) for s in SIZES] + [
        ("depth", c, d) for d in DEPTHS for c in (cand, floor)
    ]
    for _, (kind, c, value) in rotations(jobs, rounds):
        if kind == "size":
            size_samples[value].append(_size_round(c, value, n))
        else:
            us, pct = _depth_round(c, value, cycles)
            depth_samples.setdefault((c.key, value), []).append(us)
            handoffs.setdefault((c.key, value), []).append(pct)

    sizes = {s: median(v) for s, v in size_samples.items()}
    depths = []
    for d in DEPTHS:
        mine = median(depth_samples[cand.key, d])
        bare = median(depth_samples[floor.key, d])
        depths.append(
            {
                "waiters": d,
                "us_per_cycle": mine,
                "floor_us_per_cycle": bare,
                "over_floor": mine / bare,
                "handoff_pct": median(handoffs[cand.key, d]),
                "samples": depth_samples[cand.key, d],
                "floor_samples": depth_samples[floor.key, d],
            }
        )
    queued = [r for r in depths if r["waiters"] > 0]
    return {
        "title": TITLE,
        "pool": cand.label,
        "floor": floor.label,
        "rounds": rounds,
        "sizes": [
            {"max_size": s, "us_per_cycle": sizes[s], "samples": size_samples[s]}
            for s in SIZES
        ],
        "depths": depths,
        "size_flatness": flatness(list(sizes.values())),
        "depth_flatness": flatness([r["over_floor"] for r in queued]),
        "depth_flatness_raw": flatness([r["us_per_cycle"] for r in queued]),
        "floor_depth_flatness": flatness([r["floor_us_per_cycle"] for r in queued]),
    }
