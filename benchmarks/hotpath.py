"""Profile db_pool's hot path: ``python -m benchmarks.hotpath [B1|B2|B4]``.

Runs one benchmark's workload on db_pool alone under cProfile and prints the
functions that take the time, with file and line, so that a missed target
points at code.  cProfile slows everything down by a similar factor, so read
the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath")
    parser.add_argument("bench", nargs="?", default="B1", choices=["B1", "B2", "B4"])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--cycles", type=int, default=200_000)
    args = parser.parse_args()

    from . import b2, b4, fakedb
    from .candidates import DB_POOL, Driver, roster
    from .harness import cycle_loop

    candidates, note = roster()
    pools = {c.key: c for c in candidates}
    if DB_POOL not in pools:
        sys.exit(f"cannot profile: {note}")
    opened = pools[DB_POOL].open(b2.SLOTS, Driver("fake", fakedb))
    if args.bench == "B1":
        cycle_loop(opened.get, opened.put, 10_000)

        def work() -> None:
            cycle_loop(opened.get, opened.put, args.cycles)

    elif args.bench == "B2":

        def work() -> None:
            b2.contend(opened, 1000, max(1, args.cycles // 1000))

    else:
        opened.close()
        opened = pools[DB_POOL].open(1, Driver("fake", fakedb))

        def work() -> None:
            b4.relay(opened, 100, args.cycles // 4)

    profiler = cProfile.Profile()
    profiler.runcall(work)
    opened.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"{args.bench} on db_pool, sorted by own time (tottime):")
    print(out.getvalue())


if __name__ == "__main__":
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()
    main()
