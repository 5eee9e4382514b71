"""Where db_pool spends its time: ``python -m benchmarks.hotpath B1``.

Runs one benchmark's workload on db_pool alone and samples the running
Python stack on a wall-clock timer (``SIGALRM``; a CPU-time timer ticks too
coarsely on most kernels).  Unlike cProfile it is not confused by green
threads switching stacks, and it names lines, not just functions.  Samples
that find the hub waiting for I/O count as idle; the shares below are of
the busy samples.  Prints:

- where the busy samples fell, by package (db_pool, eventlet, the driver...);
- the lines of db_pool executing when sampled (own time);
- the db_pool functions on the stack when sampled (inclusive time).

Workloads: ``B1`` (one green thread, fake driver), ``B2`` (1000 green threads
on 10 slots), ``B4`` (relay with 100 waiters), ``B3pg`` and ``B3mariadb``
(200 green threads, ``SELECT 1``; ``--config`` picks the B3 configuration,
default ``db_pool_rb``).  Sampling adds a little overhead everywhere; read
the shares, not absolute times.

The C fast paths of get() and put() (db_pool._speedups) have no Python
lines to sample: their time counts as the caller's.  Run with
``DB_POOL_PURE_PYTHON=1`` to see the Python code they stand for.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import os
import signal
import sys
from typing import Any, Callable

WORKLOADS = ("B1", "B2", "B4", "B3pg", "B3mariadb")


class Sampler:
    """A statistical profiler driven by ``ITIMER_REAL``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.total = 0
        self.idle = 0
        self.own: collections.Counter[tuple[str, int, str]] = collections.Counter()
        self.inclusive: collections.Counter[tuple[str, int, str]] = (
            collections.Counter()
        )
        self.buckets: collections.Counter[str] = collections.Counter()

    def _handler(self, signum: int, frame: Any) -> None:
        if frame is None:
            return
        code = frame.f_code
        if code.co_name == "do_poll":  # the hub blocked in epoll/poll
            self.idle += 1
            return
        self.total += 1
        self.own[code.co_filename, frame.f_lineno, code.co_name] += 1
        self.buckets[_bucket(code.co_filename)] += 1
        seen = set()
        while frame is not None:
            code = frame.f_code
            key = (code.co_filename, code.co_firstlineno, code.co_name)
            if key not in seen:
                seen.add(key)
                self.inclusive[key] += 1
            frame = frame.f_back

    def run(self, work: Callable[[], object]) -> None:
        previous = signal.signal(signal.SIGALRM, self._handler)
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        try:
            work()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, previous)


def _bucket(filename: str) -> str:
    parts = filename.replace(os.sep, "/").split("/")
    for name in (
        "db_pool",
        "benchmarks",
        "eventlet",
        "greenlet",
        "pymysql",
        "psycopg2",
        "sqlalchemy",
        "dbutils",
    ):
        if name in parts:
            return name
    return "other (stdlib, C calls made from it)"


def _short(filename: str) -> str:
    parts = filename.replace(os.sep, "/").split("/")
    for i, p in enumerate(parts):
        if p in ("db_pool", "benchmarks", "eventlet", "pymysql"):
            return "/".join(parts[i:])
    return filename


def report(s: Sampler, top: int) -> str:
    lines = [
        f"{s.total} busy samples, {s.idle} idle (hub waiting for I/O),"
        f" one every {s.interval * 1e3:g} ms"
    ]
    if not s.total:
        return lines[0]
    lines.append("\nby package (own time of the executing Python line):")
    for name, n in s.buckets.most_common():
        lines.append(f"  {100 * n / s.total:5.1f} %  {name}")
    lines.append("\nall functions executing (own time):")
    by_function: collections.Counter[tuple[str, str]] = collections.Counter()
    for (f, _line, name), n in s.own.items():
        by_function[_short(f), name] += n
    for (f, name), n in by_function.most_common(top):
        lines.append(f"  {100 * n / s.total:5.1f} %  {f} {name}()")
    lines.append("\ndb_pool lines executing (own time):")
    mine = [(k, n) for k, n in s.own.most_common() if "db_pool" in _bucket(k[0])]
    for (f, line, name), n in mine[:top]:
        text = linecache.getline(f, line).strip()
        lines.append(
            f"  {100 * n / s.total:5.1f} %  {_short(f)}:{line} ({name})  {text[:70]}"
        )
    lines.append("\ndb_pool functions on the stack (inclusive time):")
    mine = [(k, n) for k, n in s.inclusive.most_common() if _bucket(k[0]) == "db_pool"]
    for (f, line, name), n in mine[:top]:
        lines.append(f"  {100 * n / s.total:5.1f} %  {_short(f)}:{line} {name}()")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath")
    parser.add_argument("workload", nargs="?", default="B1", choices=WORKLOADS)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="B3 duration (default 3)"
    )
    parser.add_argument(
        "--config",
        default="db_pool_rb",
        help="B3 configuration key (default db_pool_rb)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0002,
        help="sampling interval in seconds of CPU time",
    )
    args = parser.parse_args()

    from . import b2, b3, b4, fakedb, realdb
    from .candidates import DB_POOL, Driver, load_db_pool, roster
    from .harness import cycle_loop

    candidates, note = roster()
    pools = {c.key: c for c in candidates}
    module = load_db_pool()[0]
    if module is not None and getattr(module, "SPEEDUPS", False):
        print(
            "(get() and put() run their C fast paths, which the sampler cannot"
            " see; DB_POOL_PURE_PYTHON=1 profiles the Python ones)"
        )
    if DB_POOL not in pools:
        sys.exit(f"cannot profile: {note}")
    cand = pools[DB_POOL]
    fake = Driver("fake", fakedb)
    work: Callable[[], object]
    if args.workload == "B1":
        opened = cand.open(10, fake)
        cycle_loop(opened.get, opened.put, 10_000)

        def work() -> None:
            cycle_loop(opened.get, opened.put, 1_000_000)

    elif args.workload == "B2":
        opened = cand.open(b2.SLOTS, fake)

        def work() -> None:
            b2.contend(opened, 1000, 100)

    elif args.workload == "B4":
        opened = cand.open(1, fake)

        def work() -> None:
            b4.relay(opened, 100, 200_000)

    else:
        realdb.make_psycopg_green(load_db_pool()[0])
        configs = {c.key: c for c in b3.CONFIGS}
        if args.config not in configs:
            sys.exit(f"unknown --config; choose from {', '.join(configs)}")
        cfg = configs[args.config]
        make = realdb.postgres if args.workload == "B3pg" else realdb.mariadb
        driver = make(cfg.autocommit)

        def work() -> None:
            result = b3.run_alone(cfg, driver, pools, args.seconds)
            print(f"{cfg.label}: {result['qps']:,.0f} queries/s")

    sampler = Sampler(args.interval)
    sampler.run(work)
    print(f"{args.workload} on db_pool")
    print(report(sampler, args.top))


if __name__ == "__main__":
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()
    main()
