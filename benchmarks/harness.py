"""Measuring helpers shared by the benchmarks: clocks, rounds, medians, RSS."""

from __future__ import annotations

import gc
import os
import time
from itertools import repeat
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

clock = time.perf_counter

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process, read from ``/proc/self/statm``."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return float("nan")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def rotations(items: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """Yield ``(round, item)``, every item once per round, in rotated order.

    Rotating the order spreads slow drift (CPU frequency, a neighbour's load,
    the database's caches warming) over all items instead of charging it to
    whichever happens to run last.
    """
    n = len(items)
    for r in range(rounds):
        for i in range(n):
            yield r, items[(i + r) % n]


def settle() -> None:
    """Collect garbage so that one measurement does not pay for the last."""
    gc.collect()


def cycle_loop(get: Callable[[], T], put: Callable[[T], object], n: int) -> float:
    """Time *n* checkout + checkin cycles in the calling green thread."""
    t0 = clock()
    for _ in repeat(None, n):
        put(get())
    return clock() - t0


def calibrate(get: Callable[[], T], put: Callable[[T], object], seconds: float) -> int:
    """Warm a pool up and return how many cycles take about *seconds*."""
    n = 64
    while True:
        elapsed = cycle_loop(get, put, n)
        if elapsed >= 0.02:
            return max(1000, int(n * seconds / elapsed))
        n *= 4


_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICK


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuMeter:
    """How much CPU the rest of the machine used while we measured.

    Busy time of all CPUs (``/proc/stat``) less this process's own (and its
    children's), as a share of all the CPU time there was.  On a quiet
    machine it stays near zero for the fake-driver benchmarks; for the real
    databases it includes the database servers, which is expected.
    """

    def __init__(self) -> None:
        self._wall = clock()
        self._busy = _machine_busy_seconds()
        self._own = _own_cpu_seconds()

    def others_percent(self) -> float:
        wall = clock() - self._wall
        busy = _machine_busy_seconds() - self._busy
        own = _own_cpu_seconds() - self._own
        capacity = wall * (os.cpu_count() or 1)
        return max(0.0, 100.0 * (busy - own) / capacity) if capacity else 0.0


class Stuck(RuntimeError):
    """Green threads of a benchmark did not finish: the pool lost a wake-up."""


def join_all(threads: Sequence[Any], timeout: float) -> None:
    """Wait for every green thread; kill the rest and raise after *timeout*.

    A pool that loses a connection or a wake-up would otherwise hang the
    whole run instead of failing one measurement.
    """
    import eventlet

    try:
        with eventlet.Timeout(timeout):
            for gt in threads:
                gt.wait()
    except eventlet.Timeout:
        alive = [gt for gt in threads if not gt.dead]
        for gt in alive:
            gt.kill()
        raise Stuck(
            f"{len(alive)} of {len(threads)} green threads still running after"
            f" {timeout:g} s"
        ) from None
