"""B2: contention -- many green threads, few connections.

Every green thread runs *cycles* times: get(), ``sleep(0)`` while holding,
put().  Each get() call takes an arrival number when it is made; the order in
which get() calls return is recorded.  A checkout *overtakes* when it returns
while a get() call that arrived earlier is still waiting: a newcomer barging
ahead of the queue, or a waiter woken out of turn.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import eventlet

from . import fakedb
from .candidates import Candidate, Driver
from .harness import clock, join_all, median, percentile, rotations, settle

SLOTS = 10
# The slowest pool takes seconds per round; this only catches a hang.
JOIN_TIMEOUT = 300.0
TITLE = "B2  contention, fake driver, sleep(0) while holding"


def overtakes(completions: Sequence[int]) -> int:
    """Count checkouts that completed before an earlier-arrived get() call.

    *completions* lists arrival numbers (0..n-1, each once) in the order the
    get() calls returned.  Arrival numbers are handed out in call order, so
    every number below a checkout's own belongs to a call already made; if
    the smallest one not yet completed is below it, that call was waiting.
    """
    done = bytearray(len(completions))
    oldest_waiting = 0
    count = 0
    for arrival in completions:
        if oldest_waiting < arrival:
            count += 1
        done[arrival] = 1
        while oldest_waiting < len(done) and done[oldest_waiting]:
            oldest_waiting += 1
    return count


def contend(opened: Any, threads: int, cycles: int) -> dict[str, float]:
    """Run the contention workload once; return throughput and wait figures.

    Only the contention is timed.  Every green thread is started before the
    first get() (starting a thousand green threads takes the hub as long as
    several thousand cycles) and stays alive until the last cycle of all
    (a green thread that ends costs the hub about one cycle too): otherwise
    the waits of the first and last cycles include the start and the end of
    the other threads, and the longest wait measures those instead of the
    pool.
    """
    get, put = opened.get, opened.put
    sleep = eventlet.sleep
    arrivals = itertools.count()
    completions: list[int] = []
    waits: list[float] = []
    ready = [0]
    done = [0]
    start = eventlet.Event()
    all_done = eventlet.Event()
    end = [0.0]

    def worker() -> None:
        ready[0] += 1
        start.wait()
        for _ in range(cycles):
            arrival = next(arrivals)
            t0 = clock()
            conn = get()
            # No switch can happen between get() returning and these two
            # appends, so the recorded order is the real completion order.
            waits.append(clock() - t0)
            completions.append(arrival)
            sleep(0)
            put(conn)
        done[0] += 1
        if done[0] == threads:
            end[0] = clock()
            all_done.send()
        else:
            all_done.wait()

    workers = [eventlet.spawn(worker) for _ in range(threads)]
    while ready[0] < threads:
        sleep(0)
    t0 = clock()
    start.send()
    join_all(workers, JOIN_TIMEOUT)
    elapsed = end[0] - t0
    waits.sort()
    total = threads * cycles
    return {
        "throughput": total / elapsed,
        "wait_p50_ms": percentile(waits, 50) * 1e3,
        "wait_p99_ms": percentile(waits, 99) * 1e3,
        "wait_max_ms": waits[-1] * 1e3,
        "overtake_pct": 100.0 * overtakes(completions) / total,
    }


METRICS = ("throughput", "wait_p50_ms", "wait_p99_ms", "wait_max_ms", "overtake_pct")


def run(candidates: list[Candidate], quick: bool) -> dict[str, Any]:
    threads, cycles, rounds = (300, 30, 2) if quick else (1000, 100, 5)
    driver = Driver("fake", fakedb)
    candidates = [c for c in candidates if c.blocking]
    errors: dict[str, str] = {}

    def measure(cand: Candidate, threads: int, cycles: int) -> dict[str, float]:
        opened = cand.open(SLOTS, driver)
        settle()
        try:
            return contend(opened, threads, cycles)
        finally:
            opened.close()

    samples: dict[str, list[dict[str, float]]] = {c.key: [] for c in candidates}
    warm_up = [(c, 50, 5) for c in candidates]
    timed = [(c, threads, cycles) for _, c in rotations(candidates, rounds)]
    for n, (cand, t, c) in enumerate(warm_up + timed):
        if cand.key in errors:
            continue
        try:
            result = measure(cand, t, c)
        except Exception as exc:  # one broken pool must not end the run
            errors[cand.key] = f"{type(exc).__name__}: {exc}"
            continue
        if n >= len(warm_up):
            samples[cand.key].append(result)

    rows = []
    for c in candidates:
        row: dict[str, Any] = {"key": c.key, "label": c.label}
        if c.key in errors:
            row["error"] = errors[c.key]
        else:
            for metric in METRICS:
                row[metric] = median([s[metric] for s in samples[c.key]])
            row["samples"] = samples[c.key]
        rows.append(row)
    return {
        "title": TITLE,
        "threads": threads,
        "cycles": cycles,
        "slots": SLOTS,
        "rounds": rounds,
        "rows": rows,
    }
