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
"""

from __future__ import annotations

from time import process_time
from typing import Any, Callable

import eventlet

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
from .harness import clock, join_all, median, rotations

THREADS = 200
CONNECTIONS = 10
# Connections are opened before a run starts; this is for the green threads
# to reach their steady rhythm before the window opens.
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
    ) -> None:
        self.key = key
        self.label = label
        self.pool = pool  # a candidate key, or None for a ceiling
        self.reset = reset
        self.autocommit = autocommit
        self.ceiling = ceiling
        self.target = target


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


class _Run:
    """The shared state of one timed run: counters, a stop flag, a failure."""

    def __init__(self, threads: int) -> None:
        self.counts = [0] * threads
        self.stopping = False
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stopping = True


def _pool_worker(
    run: _Run, i: int, get: Callable[[], Any], put: Callable[[Any], object]
) -> None:
    counts = run.counts
    try:
        while not run.stopping:
            conn = get()
            try:
                _query(conn)
            finally:
                put(conn)
            counts[i] += 1
    except Exception as exc:
        run.fail(exc)


def _owner_worker(run: _Run, i: int, conn: Any, rollback: bool) -> None:
    counts = run.counts
    try:
        while not run.stopping:
            _query(conn)
            if rollback:
                conn.rollback()
            counts[i] += 1
    except Exception as exc:
        run.fail(exc)


def _measure(
    spawn_all: Callable[[_Run], list[Any]], threads: int, seconds: float
) -> dict[str, float]:
    run = _Run(threads)
    workers = spawn_all(run)
    eventlet.sleep(RAMP)
    before, t0, cpu0 = list(run.counts), clock(), process_time()
    eventlet.sleep(seconds)
    after, t1, cpu1 = list(run.counts), clock(), process_time()
    run.stopping = True
    join_all(workers, JOIN_TIMEOUT)
    if run.error is not None:
        raise run.error
    done = [b - a for a, b in zip(before, after)]
    return {
        "qps": sum(done) / (t1 - t0),
        # This process's CPU per query: what the pool adds on the client,
        # independent of how busy the database server was.
        "client_us_per_query": (cpu1 - cpu0) / max(1, sum(done)) * 1e6,
        # Green threads that never got a connection in the whole window.
        "starved": sum(1 for d in done if d == 0),
    }


def _run_config(
    cfg: Config, driver: Driver, pools: dict[str, Candidate], seconds: float
) -> dict[str, float]:
    if cfg.pool is None:
        conns = [driver.connect() for _ in range(CONNECTIONS)]
        rollback = cfg.reset == "rollback"
        try:
            return _measure(
                lambda run: [
                    eventlet.spawn(_owner_worker, run, i, c, rollback)
                    for i, c in enumerate(conns)
                ],
                CONNECTIONS,
                seconds,
            )
        finally:
            for c in conns:
                c.close()
    opened = pools[cfg.pool].open(CONNECTIONS, driver, cfg.reset)
    # Open all the connections now, not inside the timed window.
    held = [opened.get() for _ in range(CONNECTIONS)]
    for conn in held:
        opened.put(conn)
    del held, conn
    try:
        return _measure(
            lambda run: [
                eventlet.spawn(_pool_worker, run, i, opened.get, opened.put)
                for i in range(THREADS)
            ],
            THREADS,
            seconds,
        )
    finally:
        opened.close()


def run(
    candidates: list[Candidate],
    quick: bool,
    db_pool_module: Any,
    log: Callable[[str], None],
) -> dict[str, Any]:
    # Many short slices rather than a few long ones: the median then shrugs
    # off a burst of load from elsewhere on the machine.
    seconds, rounds = (0.25, 3) if quick else (0.5, 5)
    green = realdb.make_psycopg_green(db_pool_module)
    pools = {c.key: c for c in candidates}
    configs = [c for c in CONFIGS if c.pool is None or c.pool in pools]
    result: dict[str, Any] = {
        "title": TITLE,
        "threads": THREADS,
        "connections": CONNECTIONS,
        "seconds_per_round": seconds,
        "rounds": rounds,
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
        log(
            f"B3 {db_key}: {len(configs)} configurations x {rounds} rounds "
            f"x {seconds:g} s"
        )
        samples: dict[str, list[dict[str, float]]] = {c.key: [] for c in configs}
        # A round that fails (the server restarted, a pool broke) counts as
        # missing; the others still make a median.
        errors: dict[str, list[str]] = {c.key: [] for c in configs}
        for _, cfg in rotations(configs, rounds):
            try:
                samples[cfg.key].append(
                    _run_config(cfg, drivers[cfg.autocommit], pools, seconds)
                )
            except Exception as exc:
                lines = str(exc).strip().splitlines()
                errors[cfg.key].append(
                    f"{type(exc).__name__}: {lines[0] if lines else ''}"
                )
                log(f"B3 {db_key} {cfg.label}: round failed: {errors[cfg.key][-1]}")
        qps = {k: median([s["qps"] for s in v]) for k, v in samples.items() if v}
        rows = []
        for cfg in configs:
            row: dict[str, Any] = {
                "key": cfg.key,
                "label": cfg.label,
                "pool": cfg.pool,
                "ceiling": cfg.ceiling,
                "target": cfg.target,
            }
            if errors[cfg.key]:
                row["error"] = (
                    f"{len(errors[cfg.key])} of {rounds} rounds failed;"
                    f" first: {errors[cfg.key][0]}"
                )
            if cfg.key in qps:
                row["qps"] = qps[cfg.key]
                row["starved"] = median([s["starved"] for s in samples[cfg.key]])
                row["client_us_per_query"] = median(
                    [s["client_us_per_query"] for s in samples[cfg.key]]
                )
                row["samples"] = samples[cfg.key]
                if cfg.ceiling in qps:
                    row["fraction"] = qps[cfg.key] / qps[cfg.ceiling]
                if CEILING_NR in qps and cfg.pool is not None:
                    row["fraction_of_noreset"] = qps[cfg.key] / qps[CEILING_NR]
            rows.append(row)
        result["databases"][db_key] = {"driver": drivers[False].name, "rows": rows}
    return result
