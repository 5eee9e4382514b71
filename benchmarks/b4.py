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
    switch to the next holder.  Depth 0 (a single thread) has no hand-off
    and no switch: it is B1's cycle, shown for reference; flatness is taken
    over depths 1, 100 and 10,000, which all do the same work per cycle.
    A pool whose queue operations scan, sort or wake all waiters grows with
    depth here.
"""

from __future__ import annotations

from typing import Any

import eventlet

from . import fakedb
from .candidates import Candidate, Driver
from .harness import calibrate, clock, cycle_loop, median, rotations, settle

SIZES = (1, 10, 100, 1000)
DEPTHS = (0, 1, 100, 10000)
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


def relay(opened: Any, depth: int, cycles: int) -> float:
    """Microseconds per hand-off with *depth* waiters queued behind the holder."""
    get, put = opened.get, opened.put
    threads = depth + 1
    # Let every thread join the queue and go round once before timing.
    start = 2 * threads + 100
    stop = start + cycles
    state = {"count": 0, "t0": 0.0, "t1": 0.0}

    def worker() -> None:
        while state["count"] < stop:
            conn = get()
            count = state["count"] = state["count"] + 1
            if count == start:
                state["t0"] = clock()
            elif count == stop:
                state["t1"] = clock()
            put(conn)

    workers = [eventlet.spawn(worker) for _ in range(threads)]
    for gt in workers:
        gt.wait()
    return (state["t1"] - state["t0"]) / cycles * 1e6


def _depth_round(cand: Candidate, depth: int, cycles: int) -> float:
    opened = cand.open(1, Driver("fake", fakedb))
    settle()
    us = relay(opened, depth, cycles)
    opened.close()
    return us


def flatness(values: list[float]) -> float:
    return max(values) / min(values)


def run(cand: Candidate, quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 5
    seconds = 0.04 if quick else 0.1
    cycles = 5000 if quick else 20000

    probe = cand.open(SIZES[0], Driver("fake", fakedb))
    n = calibrate(probe.get, probe.put, seconds)
    probe.close()
    relay_probe = cand.open(1, Driver("fake", fakedb))
    relay(relay_probe, 10, 2000)  # warm-up, untimed
    relay_probe.close()

    size_samples: dict[int, list[float]] = {s: [] for s in SIZES}
    depth_samples: dict[int, list[float]] = {d: [] for d in DEPTHS}
    jobs = [("size", s) for s in SIZES] + [("depth", d) for d in DEPTHS]
    for _, (kind, value) in rotations(jobs, rounds):
        if kind == "size":
            size_samples[value].append(_size_round(cand, value, n))
        else:
            depth_samples[value].append(_depth_round(cand, value, cycles))

    sizes = {s: median(v) for s, v in size_samples.items()}
    depths = {d: median(v) for d, v in depth_samples.items()}
    return {
        "title": TITLE,
        "pool": cand.label,
        "rounds": rounds,
        "sizes": [{"max_size": s, "us_per_cycle": sizes[s],
                   "samples": size_samples[s]} for s in SIZES],
        "depths": [{"waiters": d, "us_per_cycle": depths[d],
                    "samples": depth_samples[d]} for d in DEPTHS],
        "size_flatness": flatness(list(sizes.values())),
        "depth_flatness": flatness([depths[d] for d in DEPTHS if d > 0]),
    }
