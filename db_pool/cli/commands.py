"""The commands: ``bench``, ``size`` and ``check``.

Each takes the parsed arguments, writes its results to *out* (stdout) and
its progress to a :class:`~db_pool.cli.progress.Progress` (stderr), and
returns the exit status.  Failures the user must hear about raise
:class:`~db_pool.cli.target.CommandError` or
:class:`~db_pool.cli.target.UsageError` with a one-line message.
"""

from __future__ import annotations

import random
from typing import IO, Any

from .. import _green
from ..pool import SPEEDUPS
from . import report
from .chart import write_chart
from .progress import Progress
from .target import CommandError, Target
from .workload import (
    MixedWorkload,
    QueryWorkload,
    RunResult,
    Workload,
    percentiles,
    run,
)

__all__ = ["bench", "size", "check"]

monotonic = _green.monotonic

#: Hold time of the default SQLite workload: SQLite answers in microseconds
#: without ever yielding, so without some time spent holding the connection
#: (a request's own I/O) no two green threads would ever want one at once.
SQLITE_HOLD = 0.001


def _describe(exc: BaseException, target: Target) -> str:
    lines = str(exc).strip().splitlines()
    text = (
        "%s: %s" % (type(exc).__name__, lines[0].strip())
        if lines
        else type(exc).__name__
    )
    return target.safe(text)


def make_workload(args: Any, target: Target) -> Workload:
    if args.query is not None:
        if not args.query.strip():
            from .target import UsageError

            raise UsageError("--query is empty")
        return QueryWorkload(args.query)
    if args.mixed or target.kind == "sqlite":
        return MixedWorkload(target)
    return QueryWorkload("SELECT 1")


def _hold(args: Any, target: Target, workload: Workload) -> float:
    if args.hold is not None:
        return float(args.hold)
    return SQLITE_HOLD if target.kind == "sqlite" else 0.0


def _pool_options(args: Any) -> dict[str, Any]:
    return {
        "connect_timeout": args.connect_timeout,
        "pool_timeout": args.pool_timeout,
    }


class _Session:
    """Set-up and tear-down of a workload around one or more runs.

    The set-up runs on a pool of its own, closed before the runs start, so
    that during a run the server sees exactly the run's connections.
    """

    def __init__(self, target: Target, workload: Workload, args: Any) -> None:
        self.target = target
        self.workload = workload
        self.args = args

    def _with_conn(self, name: str, action: Any, what: str) -> None:
        target = self.target
        timeout = self.args.connect_timeout
        pool = target.make_pool(1, name, connect_timeout=timeout)
        try:
            try:
                conn = pool.get()
            except Exception as exc:
                raise CommandError(
                    "cannot connect to %s: %s"
                    % (target.display, _describe(exc, target))
                ) from None
            try:
                action(conn)
            except Exception as exc:
                raise CommandError(
                    "%s failed on %s: %s"
                    % (what, target.display, _describe(exc, target))
                ) from None
            finally:
                pool.put(conn)
        finally:
            pool.close()

    def __enter__(self) -> "_Session":
        workload = self.workload

        def setup(conn: Any) -> None:
            try:
                workload.setup(conn)
                # One operation before the clock starts: a bad --query fails
                # here, with one clear line, not thousands of times.
                workload.operation(conn, random.Random(0))
                conn.rollback()
            except BaseException:
                try:
                    conn.rollback()
                    workload.teardown(conn)
                except Exception:
                    pass
                raise

        self._with_conn("db_pool-setup", setup, "the workload")
        return self

    def __exit__(self, *exc: Any) -> None:
        if getattr(self.workload, "created", False):
            try:
                self._with_conn(
                    "db_pool-teardown", self.workload.teardown, "cleaning up"
                )
            except CommandError:
                if exc[0] is None:
                    raise


def _run_once(
    args: Any,
    target: Target,
    workload: Workload,
    pool_size: int,
    name: str,
    progress: Progress,
    label: str,
) -> RunResult:
    pool = target.make_pool(pool_size, name, **_pool_options(args))
    progress.start(
        label,
        "%d green threads, pool of %d, %s"
        % (
            args.threads,
            pool_size,
            "%g s" % args.duration
            if args.count is None
            else "%d operations" % args.count,
        ),
    )
    try:
        result = run(
            pool,
            workload,
            target,
            threads=args.threads,
            duration=args.duration if args.count is None else None,
            count=args.count,
            hold=_hold(args, target, workload),
            progress=progress.callback(),
            drain_timeout=max(10.0, 2 * args.connect_timeout),
        )
    finally:
        pool.close()
    progress.finish(
        "%d operations, %.1f/s, %d errors"
        % (result.operations, result.throughput, result.errors)
    )
    return result


def _info(
    args: Any, target: Target, workload: Workload, command: str
) -> dict[str, Any]:
    return {
        "command": command,
        "url": target.display,
        "driver": target.driver_label,
        "pool_class": target.pool_class_name,
        # get() and put() in C (db_pool._speedups) or in Python.
        "speedups": SPEEDUPS,
        "workload": workload.name,
        "workload_description": workload.description,
        "query": getattr(workload, "sql", None),
        "hold": _hold(args, target, workload),
        "threads": args.threads,
        "duration": args.duration if args.count is None else None,
        "count": args.count,
    }


def bench(args: Any, target: Target, progress: Progress, out: IO[str]) -> int:
    """Run the workload once; report throughput, percentiles and stats."""
    target.prepare()
    workload = make_workload(args, target)
    try:
        with _Session(target, workload, args):
            result = _run_once(
                args, target, workload, args.pool_size, "bench", progress, "bench"
            )
    finally:
        target.cleanup()
    info = _info(args, target, workload, "bench")
    info["pool_size"] = args.pool_size
    if args.json:
        data = dict(info)
        data.update(result.as_dict())
        report.dump_json(data, out)
    else:
        out.write(report.bench_text(info, result))
    return 0 if result.errors == 0 else 1


def recommend(rows: list[dict[str, Any]], tolerance: float) -> int | None:
    """The smallest pool size within *tolerance* (a fraction) of the best throughput."""
    useful = [r for r in rows if r["operations"] > 0]
    if not useful:
        return None
    best = max(r["throughput"] for r in useful)
    good = [r["pool_size"] for r in useful if r["throughput"] >= best * (1 - tolerance)]
    return min(good)


def still_rising(
    rows: list[dict[str, Any]], recommended: int | None, tolerance: float
) -> bool:
    """True when the recommendation is the largest size tried and throughput
    was still growing there: a larger pool might do better."""
    if recommended is None or len(rows) < 2 or recommended != rows[-1]["pool_size"]:
        return False
    before, last = rows[-2]["throughput"], rows[-1]["throughput"]
    return last > before * (1 + tolerance)


def size(args: Any, target: Target, progress: Progress, out: IO[str]) -> int:
    """Run the workload at each pool size; recommend one; draw the chart."""
    target.prepare()
    workload = make_workload(args, target)
    rows = []
    try:
        with _Session(target, workload, args):
            for n in args.sizes:
                result = _run_once(
                    args,
                    target,
                    workload,
                    n,
                    "size-%d" % n,
                    progress,
                    "size %d/%d" % (n, args.sizes[-1]),
                )
                wait = percentiles(result.waits)
                latency = percentiles(result.latencies)
                rows.append(
                    {
                        "pool_size": n,
                        "operations": result.operations,
                        "errors": result.errors,
                        "elapsed": result.elapsed,
                        "throughput": result.throughput,
                        "wait_p50": wait["p50"],
                        "wait_p99": wait["p99"],
                        "wait_max": wait["max"],
                        "latency_p50": latency["p50"],
                        "latency_p99": latency["p99"],
                        "pool": result.pool_stats,
                    }
                )
    finally:
        target.cleanup()
    tolerance = args.tolerance / 100.0
    recommended = recommend(rows, tolerance)
    chart = None
    if args.chart:
        title = "db_pool size: %s, %s, %d green threads" % (
            target.display,
            workload.name,
            args.threads,
        )
        try:
            chart = write_chart(args.chart, rows, recommended, title)
        except Exception as exc:
            raise CommandError(
                "could not write the chart to %s: %s"
                % (args.chart, _describe(exc, target))
            ) from None
    info = _info(args, target, workload, "size")
    info["tolerance_percent"] = args.tolerance
    info["still_rising"] = still_rising(rows, recommended, tolerance)
    if args.json:
        data = dict(info)
        data.update(
            {
                "sizes": list(args.sizes),
                "results": rows,
                "recommended": recommended,
                "chart": chart,
            }
        )
        report.dump_json(data, out)
    else:
        out.write(report.size_text(info, rows, recommended, chart))
    if recommended is None:
        return 1
    return 0 if all(r["errors"] == 0 for r in rows) else 1


def check(args: Any, target: Target, progress: Progress, out: IO[str]) -> int:
    """Connect through a pool, ask the server's version, time round trips."""
    target.prepare()
    timeout = args.timeout
    pool = target.make_pool(
        1,
        "check",
        connect_timeout=timeout,
        max_idle=None,
        max_age=None,
    )
    try:
        start = monotonic()
        try:
            conn = pool.get()
        except Exception as exc:
            raise CommandError(
                "cannot connect to %s: %s" % (target.display, _describe(exc, target))
            ) from None
        connect_time = monotonic() - start
        ping_sql = "SELECT 1"
        rtts = []
        timer = _green.Timeout(timeout)
        try:
            cur = conn.cursor()
            cur.execute(target.version_sql)
            row = cur.fetchone()
            version = str(row[0]) if row else "unknown"
            for _ in range(args.pings):
                t0 = monotonic()
                cur.execute(ping_sql)
                cur.fetchall()
                rtts.append(monotonic() - t0)
            cur.close()
        except _green.Timeout as exc:
            if exc is not timer:
                raise
            pool.put(conn)
            raise CommandError(
                "%s accepted the connection but did not answer within %gs"
                % (target.display, timeout)
            ) from None
        except Exception as exc:
            pool.put(conn)
            raise CommandError(
                "%s: query failed: %s" % (target.display, _describe(exc, target))
            ) from None
        finally:
            timer.cancel()
        pool.put(conn)
        stats = pool.stats()
    finally:
        pool.close()
        target.cleanup()
    rtts.sort()
    info = {
        "command": "check",
        "ok": True,
        "url": target.display,
        "driver": target.driver_label,
        "pool_class": target.pool_class_name,
        "server_version": version.strip(),
        "connect_time": connect_time,
        "ping_sql": ping_sql,
        "round_trip": {
            "count": len(rtts),
            "min": rtts[0] if rtts else 0.0,
            "median": rtts[len(rtts) // 2] if rtts else 0.0,
            "max": rtts[-1] if rtts else 0.0,
        },
        "pool": stats,
    }
    if args.json:
        report.dump_json(info, out)
    else:
        out.write(report.check_text(info))
    return 0
