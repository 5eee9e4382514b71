"""The load generator: many green threads sharing one pool.

Each green thread loops: check out a connection (timed: the *wait*), run one
operation of the workload, optionally hold the connection a little longer
(*hold*: the application's own I/O inside a request), return it, yield.
The *latency* of an operation runs from the start of the checkout to the
end of the return.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable

from .. import _green
from .target import CommandError, Target

__all__ = [
    "Workload",
    "MixedWorkload",
    "QueryWorkload",
    "RunResult",
    "run",
    "percentiles",
]

monotonic = _green.monotonic

#: Percentiles shown in reports.
PERCENTILES = (50, 95, 99)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank), max and mean of *values* (0 when empty)."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    ordered = sorted(values)
    n = len(ordered)
    out = {}
    for p in PERCENTILES:
        rank = max(1, math.ceil(p / 100.0 * n))
        out["p%d" % p] = ordered[rank - 1]
    out["max"] = ordered[-1]
    out["mean"] = math.fsum(ordered) / n
    return out


class Workload:
    """What one operation does with a connection."""

    name = "workload"
    description = ""

    def setup(self, conn: Any) -> None:
        """Prepare the database (on a pooled connection), once per run set."""

    def operation(self, conn: Any, rng: random.Random) -> None:
        raise NotImplementedError

    def teardown(self, conn: Any) -> None:
        """Undo :meth:`setup`."""


class QueryWorkload(Workload):
    """Run one SQL statement and fetch its rows."""

    name = "query"

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.description = "query %r" % (sql if len(sql) <= 60 else sql[:57] + "...")

    def operation(self, conn: Any, rng: random.Random) -> None:
        cur = conn.cursor()
        try:
            cur.execute(self.sql)
            if cur.description is not None:
                cur.fetchall()
        finally:
            cur.close()


class MixedWorkload(Workload):
    """Point reads and occasional updates on a small table.

    *rows* rows of ``(id, name, balance, hits)``; each operation reads one
    random row by primary key or, with probability *write_ratio*, updates
    one and commits.  The update is a single statement followed by its
    commit, with nothing in between that could yield, so write transactions
    of green threads never interleave (SQLite's file lock would otherwise
    stall every green thread of the process).
    """

    name = "mixed"

    def __init__(
        self, target: Target, rows: int = 1000, write_ratio: float = 0.1
    ) -> None:
        self.rows = rows
        self.write_ratio = write_ratio
        self.marker = target.marker
        self.kind = target.kind
        if target.embedded:
            self.table = "db_pool_bench"
        else:
            self.table = "db_pool_bench_%d_%d" % (
                __import__("os").getpid(),
                random.randrange(1_000_000),
            )
        self.created = False
        self.description = (
            "mixed: %d%% point reads, %d%% updates on %d rows (table %s)"
            % (
                round(100 * (1 - write_ratio)),
                round(100 * write_ratio),
                rows,
                self.table,
            )
        )
        m = self.marker
        self._read = "SELECT name, balance FROM %s WHERE id = %s" % (self.table, m)
        self._write = (
            "UPDATE %s SET balance = balance + 1, hits = hits + 1 WHERE id = %s"
            % (
                self.table,
                m,
            )
        )

    def setup(self, conn: Any) -> None:
        cur = conn.cursor()
        try:
            if self.kind == "sqlite":
                # Readers never wait for the writer in WAL mode.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.fetchall()
            cur.execute(
                "CREATE TABLE %s (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
                "balance INTEGER NOT NULL, hits INTEGER NOT NULL)" % self.table
            )
            self.created = True
            m = self.marker
            cur.executemany(
                "INSERT INTO %s (id, name, balance, hits) VALUES (%s, %s, %s, 0)"
                % (self.table, m, m, m),
                [(i, "account %d" % i, 1000) for i in range(1, self.rows + 1)],
            )
            conn.commit()
        finally:
            cur.close()

    def operation(self, conn: Any, rng: random.Random) -> None:
        key = rng.randint(1, self.rows)
        cur = conn.cursor()
        try:
            if rng.random() < self.write_ratio:
                cur.execute(self._write, (key,))
                conn.commit()
            else:
                cur.execute(self._read, (key,))
                if cur.fetchone() is None:
                    raise LookupError("row %d of %s is missing" % (key, self.table))
        finally:
            cur.close()

    def teardown(self, conn: Any) -> None:
        if not self.created:
            return
        cur = conn.cursor()
        try:
            cur.execute("DROP TABLE %s" % self.table)
            conn.commit()
        finally:
            cur.close()
        self.created = False


class RunResult:
    """What one run measured."""

    def __init__(self) -> None:
        self.operations = 0
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.latencies: list[float] = []
        self.waits: list[float] = []
        self.elapsed = 0.0
        self.pool_stats: dict[str, Any] = {}
        self.warmup: dict[str, Any] = {}
        self.pool_repr = ""

    @property
    def throughput(self) -> float:
        return self.operations / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "errors": self.errors,
            "error_kinds": dict(self.error_kinds),
            "elapsed": self.elapsed,
            "throughput": self.throughput,
            "latency": percentiles(self.latencies),
            "wait": percentiles(self.waits),
            "pool": self.pool_stats,
            "warmup": self.warmup,
        }


def _describe_error(exc: BaseException, target: Target) -> str:
    lines = str(exc).strip().splitlines()
    text = "%s: %s" % (type(exc).__name__, lines[0]) if lines else type(exc).__name__
    return target.safe(text)


def run(
    pool: Any,
    workload: Workload,
    target: Target,
    *,
    threads: int,
    duration: float | None = None,
    count: int | None = None,
    hold: float = 0.0,
    progress: Callable[[float, int], None] | None = None,
    seed: int | None = None,
    drain_timeout: float = 10.0,
) -> RunResult:
    """Run *workload* on *pool* from *threads* green threads.

    Stops after *duration* seconds or *count* operations in all (errors
    included).  The pool is warmed up first (``max_size`` connections
    opened), and its counters are reset, so that the stats in the result
    cover the measured run only; the warm-up's own counters are in
    ``result.warmup``.  *progress* is called about ten times a second with
    ``(fraction_done, operations)``.  Operations still running
    *drain_timeout* seconds after the end (a database that stopped
    answering) are abandoned and counted as errors.
    """
    if (duration is None) == (count is None):
        raise ValueError("give exactly one of duration and count")
    result = RunResult()
    # Warm-up: open every connection before the clock starts, so that the
    # run measures the pool, not the connects.
    conns = []
    try:
        for _ in range(pool.max_size):
            conns.append(pool.get())
    except Exception as exc:
        for conn in conns:
            pool.put(conn)
        raise CommandError(
            "cannot connect to %s: %s" % (target.display, _describe_error(exc, target))
        ) from None
    for conn in conns:
        pool.put(conn)
    warm = pool.pop_stats()
    result.warmup = {
        "connections_opened": warm["connections_opened"],
        "connect_time_total": warm["connect_time_total"],
    }

    latencies = result.latencies
    waits = result.waits
    state = {"stop": False, "remaining": count if count is not None else -1}
    error_kinds = result.error_kinds
    rng_seed = random.Random(seed)
    sleep = _green.sleep

    def worker(rng: random.Random) -> None:
        get = pool.get
        put = pool.put
        operation = workload.operation
        while not state["stop"]:
            if count is not None:
                if state["remaining"] <= 0:
                    return
                state["remaining"] -= 1
            t0 = monotonic()
            try:
                conn = get()
            except Exception as exc:
                result.errors += 1
                kind = _describe_error(exc, target)
                error_kinds[kind] = error_kinds.get(kind, 0) + 1
                sleep(0.01)  # do not spin on a database that is down
                continue
            t1 = monotonic()
            failed = False
            try:
                operation(conn, rng)
                if hold:
                    sleep(hold)
            except Exception as exc:
                failed = True
                result.errors += 1
                kind = _describe_error(exc, target)
                error_kinds[kind] = error_kinds.get(kind, 0) + 1
            finally:
                put(conn)
            if not failed:
                t2 = monotonic()
                result.operations += 1
                waits.append(t1 - t0)
                latencies.append(t2 - t0)
            # Yield between requests, as a server does between requests:
            # SQLite never yields on its own.
            sleep(0)

    finished: list[float] = []

    def worker_until_done(rng: random.Random) -> None:
        try:
            worker(rng)
        finally:
            finished.append(monotonic())

    def reporter() -> None:
        while not state["stop"]:
            if duration is not None:
                done = (monotonic() - start) / duration
            else:
                done = (result.operations + result.errors) / float(count or 1)
            progress(min(done, 1.0), result.operations)  # type: ignore[misc]
            sleep(0.1)

    start = monotonic()
    greenlets = [
        _green.spawn(worker_until_done, random.Random(rng_seed.random()))
        for _ in range(threads)
    ]
    watcher = _green.spawn(reporter) if progress is not None else None
    try:
        if duration is not None:
            sleep(duration)
            state["stop"] = True
        else:
            for g in greenlets:
                g.wait()
        # Let the operations under way finish, but not for ever.
        drain = _green.Timeout(drain_timeout)
        try:
            for g in greenlets:
                g.wait()
        except _green.Timeout as exc:
            if exc is not drain:
                raise
            stuck = [g for g in greenlets if not g.dead]
            for g in stuck:
                g.kill()
            result.errors += len(stuck)
            kind = (
                "abandoned: no answer within %gs after the end of the run"
                % drain_timeout
            )
            error_kinds[kind] = error_kinds.get(kind, 0) + len(stuck)
        finally:
            drain.cancel()
    except BaseException:
        state["stop"] = True
        for g in greenlets:
            g.kill()
        raise
    finally:
        state["stop"] = True
        if watcher is not None:
            watcher.kill()
    result.elapsed = (max(finished) if finished else monotonic()) - start
    if progress is not None:
        progress(1.0, result.operations)
    result.pool_stats = pool.stats()
    result.pool_repr = repr(pool)
    return result
