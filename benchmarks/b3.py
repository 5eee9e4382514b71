"""B3: ``SELECT 1`` on real databases, 200 green threads on 10 connections.

Every pool is reported as a fraction of a *ceiling*: 10 green threads that
each own one connection and never touch a pool.  The ceiling matches the
reset the pool performs:

``rollback``
    the owners roll back after every query: the ceiling for pools that
    roll back on every checkin (and for db_pool's transaction-aware reset,
    since a non-autocommit ``SELECT 1`` leaves a transaction open);
``no reset``
    the owners never reset: the ceiling for pools told not to reset;
``autocommit``
    autocommit connections, no reset: the ceiling for db_pool's
    transaction-aware reset on an autocommit workload, where no transaction
    is ever open and the reset should cost nothing.

Each pool runs *against* its ceiling: both are open side by side and take
turns in short slices (see :func:`duel`), so that the fraction compares
the two under the same conditions.  A ceiling's own row is the median over
the pools it was run against.

One more row runs the rollback ceiling against itself with one change: each
owner yields one turn of the hub after each query (``eventlet.sleep(0)``)
before it starts the next.  That is what a pool that wakes the next holder
from the hub costs even with no pool code at all, since the next query on
the connection then starts after the rest of the hub's turn instead of at
once.
"""

from __future__ import annotations

from time import process_time
from typing import Any, Callable

import eventlet
import eventlet.event

from . import realdb
from .candidates import (
    DB_POOL,
    DBUTILS,
    EVENTLET,
    HANDOFF,
    SQLALCHEMY,
    Candidate,
    Driver,
)
from .harness import clock, join_all, median

THREADS = 200
CONNECTIONS = 10
# Connections are opened before timing starts; this is for the green threads
# to reach their steady rhythm before the first timed slice.
RAMP = 0.1
# Workers stop within one query once told to; this only catches a hang.
JOIN_TIMEOUT = 30.0
SQL = "SELECT 1"
TITLE = "B3  SELECT 1, 200 green threads on 10 connections, real databases"

CEILING_RB = "ceiling_rollback"
CEILING_NR = "ceiling_noreset"
CEILING_AC = "ceiling_autocommit"
CEILINGS = {
    CEILING_RB: "ceiling: 10 owners, rollback per query",
    CEILING_NR: "ceiling: 10 owners, no reset",
    CEILING_AC: "ceiling: 10 owners, autocommit, no reset",
}


class Config:
    """One measured line: a pool (or a ceiling), its reset, its workload."""

    def __init__(
        self,
        key: str,
        label: str,
        pool: str | None,
        reset: str,
        autocommit: bool,
        ceiling: str | None,
        target: float | None = None,
        turn: bool = False,
    ) -> None:
        self.key = key
        self.label = label
        self.pool = pool  # a candidate key, or None for owners (a ceiling)
        self.reset = reset
        self.autocommit = autocommit
        self.ceiling = ceiling
        self.target = target
        # Owners that yield one turn of the hub after each query.
        self.turn = turn


CONFIGS = [
    Config(CEILING_RB, CEILINGS[CEILING_RB], None, "rollback", False, None),
    Config(CEILING_NR, CEILINGS[CEILING_NR], None, "none", False, None),
    Config(CEILING_AC, CEILINGS[CEILING_AC], None, "none", True, None),
    Config(
        "db_pool",
        "db_pool, default (transaction-aware) reset",
        DB_POOL,
        "default",
        False,
        CEILING_RB,
        0.95,
    ),
    Config(
        "db_pool_rb",
        "db_pool, cleanup=rollback",
        DB_POOL,
        "rollback",
        False,
        CEILING_RB,
        0.95,
    ),
    Config(
        "eventlet",
        "eventlet.db_pool, default rollback",
        EVENTLET,
        "default",
        False,
        CEILING_RB,
    ),
    Config(
        "eventlet_nr",
        "eventlet.db_pool, no-op cleanup",
        EVENTLET,
        "none",
        False,
        CEILING_NR,
    ),
    Config(
        "sqlalchemy",
        "SQLAlchemy QueuePool, reset_on_return=rollback",
        SQLALCHEMY,
        "default",
        False,
        CEILING_RB,
    ),
    Config(
        "dbutils", "DBUtils PooledDB, reset=True", DBUTILS, "default", False, CEILING_RB
    ),
    Config(
        "db_pool_ac",
        "db_pool, default reset, autocommit",
        DB_POOL,
        "default",
        True,
        CEILING_AC,
        0.85,
    ),
    Config(
        "eventlet_ac",
        "eventlet.db_pool, default rollback, autocommit",
        EVENTLET,
        "default",
        True,
        CEILING_AC,
    ),
    # What any first-come-first-served pool can reach: a bare greenlet
    # hand-off among 200 green threads, with and without a rollback.
    Config(
        "floor_rb",
        "floor: FIFO greenlet hand-off, rollback",
        HANDOFF,
        "rollback",
        False,
        CEILING_RB,
    ),
    Config(
        "floor_nr",
        "floor: FIFO greenlet hand-off, no reset",
        HANDOFF,
        "none",
        False,
        CEILING_NR,
    ),
    # No pool: the rollback ceiling's owners, each yielding one hub turn
    # after each query, as a hand-off through the hub makes the next
    # holder wait for.
    Config(
        "turn_rb",
        "10 owners, rollback, one hub turn per query",
        None,
        "rollback",
        False,
        CEILING_RB,
        turn=True,
    ),
]

DATABASES: list[tuple[str, Callable[[bool], Driver]]] = [
    ("postgresql", realdb.postgres),
    ("mariadb", realdb.mariadb),
]


def _query(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute(SQL)
    cur.fetchall()
    cur.close()


class _Group:
    """Green threads running queries, which can be paused between queries.

    A pool's workers pause after get() returns, holding the connection, so
    a paused pool keeps its state (10 holders, 190 queued) and resumes at
    once.  Counters are per thread; a slice is measured by snapshots.
    """

    def __init__(self, threads: int) -> None:
        self.counts = [0] * threads
        self.active = False
        self.stopping = False
        self.error: BaseException | None = None
        self._resumed = eventlet.event.Event()
        self.workers: list[Any] = []

    def wait_active(self) -> None:
        while not self.active and not self.stopping:
            self._resumed.wait()

    def pause(self) -> None:
        if self.active:
            self.active = False
            self._resumed = eventlet.event.Event()

    def resume(self) -> None:
        if not self.active:
            self.active = True
            self._resumed.send()

    def stop(self) -> None:
        """Stop every worker; kill them if they do not stop in time."""
        self.stopping = True
        self.resume()
        try:
            join_all(self.workers, JOIN_TIMEOUT)
        except BaseException:
            # Nobody may be inside the driver when its connections close
            # (psycopg2 would block the whole process on the connection's
            # lock): kill whatever still runs before raising.
            for gt in self.workers:
                gt.kill()
            raise

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stopping = True


def _pool_worker(
    g: _Group, i: int, get: Callable[[], Any], put: Callable[[Any], object]
) -> None:
    counts = g.counts
    try:
        while not g.stopping:
            conn = get()
            try:
                if not g.active:
                    g.wait_active()
                if g.stopping:
                    break
                _query(conn)
            finally:
                put(conn)
            counts[i] += 1
    except Exception as exc:
        g.fail(exc)


def _owner_worker(
    g: _Group, i: int, conn: Any, rollback: bool, turn: bool = False
) -> None:
    counts = g.counts
    try:
        while not g.stopping:
            if not g.active:
                g.wait_active()
                continue
            _query(conn)
            if rollback:
                conn.rollback()
            if turn:
                eventlet.sleep(0)
            counts[i] += 1
    except Exception as exc:
        g.fail(exc)


class _Side:
    """One configuration in a duel: its group, what it holds, what it did."""

    def __init__(self, cfg: Config, driver: Driver, pools: dict[str, Candidate]):
        self.cfg = cfg
        self.queries = 0
        self.elapsed = 0.0
        self.cpu = 0.0
        self.slice_qps: list[float] = []
        self.per_thread: list[int] = []
        self._close: Callable[[], object]
        if cfg.pool is None:
            conns = [driver.connect() for _ in range(CONNECTIONS)]
            rollback = cfg.reset == "rollback"
            self.group = _Group(CONNECTIONS)
            self.group.workers = [
                eventlet.spawn(_owner_worker, self.group, i, c, rollback, cfg.turn)
                for i, c in enumerate(conns)
            ]

            def close() -> None:
                for c in conns:
                    c.close()

            self._close = close
        else:
            opened = pools[cfg.pool].open(CONNECTIONS, driver, cfg.reset)
            # Open all the connections now, not inside a timed slice.
            held = [opened.get() for _ in range(CONNECTIONS)]
            for conn in held:
                opened.put(conn)
            del held
            self.group = _Group(THREADS)
            self.group.workers = [
                eventlet.spawn(_pool_worker, self.group, i, opened.get, opened.put)
                for i in range(THREADS)
            ]
            self._close = opened.close
        self.per_thread = [0] * len(self.group.counts)

    def run_slice(self, seconds: float) -> None:
        g = self.group
        g.resume()
        before, t0, cpu0 = list(g.counts), clock(), process_time()
        eventlet.sleep(seconds)
        after, t1, cpu1 = list(g.counts), clock(), process_time()
        g.pause()
        done = [b - a for a, b in zip(before, after)]
        for i, d in enumerate(done):
            self.per_thread[i] += d
        self.queries += sum(done)
        self.elapsed += t1 - t0
        self.cpu += cpu1 - cpu0
        self.slice_qps.append(sum(done) / (t1 - t0))

    def close(self) -> None:
        try:
            self.group.stop()
        finally:
            self._close()
        if self.group.error is not None:
            raise self.group.error

    def result(self) -> dict[str, float]:
        return {
            "qps": self.queries / self.elapsed,
            # This process's CPU per query: what the pool adds on the client,
            # independent of how busy the database server was.
            "client_us_per_query": self.cpu / max(1, self.queries) * 1e6,
            # Green threads that never got a connection in any slice.
            "starved": sum(1 for d in self.per_thread if d == 0),
        }


def duel(
    a: Config,
    b: Config,
    drivers: dict[bool, Driver],
    pools: dict[str, Candidate],
    seconds: float,
    slice_seconds: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run *a* and *b* in alternating slices; return each one's figures.

    Both stay open side by side and take turns every *slice_seconds*, for
    *seconds* each in all (ABBA order, so neither always goes first).  A
    slow-down of the machine, the server or the neighbours then falls on
    both alike, and their ratio keeps steady where back-to-back runs of a
    second each differ by a third.
    """
    sides: list[_Side] = []
    try:
        for cfg in (a, b):
            sides.append(_Side(cfg, drivers[cfg.autocommit], pools))
        for side in sides:  # warm up, untimed
            side.group.resume()
            eventlet.sleep(RAMP)
            side.group.pause()
        for k in range(max(1, round(seconds / slice_seconds))):
            for side in sides if k % 2 == 0 else sides[::-1]:
                side.run_slice(slice_seconds)
    finally:
        for side in sides:
            side.close()
    ra, rb = sides[0].result(), sides[1].result()
    ra["slice_ratios"] = [
        x / y for x, y in zip(sides[0].slice_qps, sides[1].slice_qps) if y
    ]
    return ra, rb


def run_alone(
    cfg: Config, driver: Driver, pools: dict[str, Candidate], seconds: float
) -> dict[str, float]:
    """Run one configuration without a partner (for profiling)."""
    side = _Side(cfg, driver, pools)
    try:
        side.group.resume()
        eventlet.sleep(RAMP)
        side.run_slice(seconds)
    finally:
        side.close()
    return side.result()


def run(
    candidates: list[Candidate],
    quick: bool,
    db_pool_module: Any,
    log: Callable[[str], None],
) -> dict[str, Any]:
    # Each pool is timed for *seconds* in slices that alternate with its
    # ceiling's; see duel().
    seconds, slice_seconds = (0.5, 0.125) if quick else (2.5, 0.25)
    green = realdb.make_psycopg_green(db_pool_module)
    pools = {c.key: c for c in candidates}
    configs = [c for c in CONFIGS if c.pool is None or c.pool in pools]
    by_key = {c.key: c for c in configs}
    result: dict[str, Any] = {
        "title": TITLE,
        "threads": THREADS,
        "connections": CONNECTIONS,
        "seconds_per_side": seconds,
        "slice_seconds": slice_seconds,
        "psycopg2_green": green,
        "databases": {},
    }
    for db_key, make_driver in DATABASES:
        try:
            drivers = {False: make_driver(False), True: make_driver(True)}
        except ImportError as exc:
            result["databases"][db_key] = {"skipped": f"driver missing: {exc}"}
            log(f"B3 {db_key}: skipped, driver missing: {exc}")
            continue
        unreachable = realdb.probe(drivers[False])
        if unreachable:
            result["databases"][db_key] = {"skipped": unreachable}
            log(f"B3 {db_key}: skipped, server unreachable: {unreachable}")
            continue
        pairs = [c for c in configs if c.ceiling is not None and c.ceiling in by_key]
        log(
            f"B3 {db_key}: {len(pairs)} pools, each against its ceiling"
            f" for {seconds:g} s each in {slice_seconds:g} s slices"
        )
        mine: dict[str, dict[str, Any]] = {}
        ceilings: dict[str, list[dict[str, Any]]] = {}
        errors: dict[str, str] = {}
        for cfg in pairs:
            try:
                mine[cfg.key], ceiling = duel(
                    cfg, by_key[cfg.ceiling], drivers, pools, seconds, slice_seconds
                )
            except Exception as exc:  # a server restart, a broken pool
                lines = str(exc).strip().splitlines()
                errors[cfg.key] = f"{type(exc).__name__}: {lines[0] if lines else ''}"
                log(f"B3 {db_key} {cfg.label}: failed: {errors[cfg.key]}")
                continue
            mine[cfg.key]["ceiling_qps"] = ceiling["qps"]
            ceilings.setdefault(cfg.ceiling, []).append(ceiling)  # type: ignore[arg-type]
        noreset_runs = ceilings.get(CEILING_NR)
        noreset = median([c["qps"] for c in noreset_runs]) if noreset_runs else None
        rows = []
        for cfg in configs:
            row: dict[str, Any] = {
                "key": cfg.key,
                "label": cfg.label,
                "pool": cfg.pool,
                "ceiling": cfg.ceiling,
                "target": cfg.target,
                "autocommit": cfg.autocommit,
            }
            if cfg.ceiling is None:
                runs = ceilings.get(cfg.key, [])
                if runs:
                    # A ceiling ran once per pool that it bounds.
                    row["duels"] = len(runs)
                    for k in ("qps", "client_us_per_query"):
                        row[k] = median([r[k] for r in runs])
                    row["starved"] = max(r["starved"] for r in runs)
            elif cfg.key in errors:
                row["error"] = errors[cfg.key]
            elif cfg.key in mine:
                r = mine[cfg.key]
                row.update(r)
                row["fraction"] = r["qps"] / r["ceiling_qps"]
                if noreset:
                    row["fraction_of_noreset"] = r["qps"] / noreset
            rows.append(row)
        result["databases"][db_key] = {"driver": drivers[False].name, "rows": rows}
    return result
