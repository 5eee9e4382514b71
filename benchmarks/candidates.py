"""The pools under test and the floors they are measured against.

Every candidate opens into an :class:`Opened`: a ``get`` that checks a
connection out, a ``put`` that checks it in, and a ``close``.  ``get`` and
``put`` are bound methods of the pool itself wherever the pool has them, so
the loop being timed calls the pool and nothing of ours in between.

A *reset* names what happens to a connection on checkin:

``default``
    whatever the pool does by default (db_pool: the transaction-aware reset;
    eventlet.db_pool, QueuePool and PooledDB: a rollback);
``rollback``
    a rollback on every checkin, forced;
``none``
    no reset at all.

Floors (eventlet.pools.Pool, LightQueue, a deque, a FIFO semaphore, a bare
greenlet hand-off) show what handing out an object costs with no pool logic.
They do not reset, except the greenlet hand-off given ``reset="rollback"``
(B3 uses it to show what any first-come-first-served pool can reach).
"""

from __future__ import annotations

import collections
import glob
import importlib
import importlib.machinery
import importlib.util
import os
import sys
from typing import Any, Callable

from eventlet import hubs as ev_hubs
from eventlet import pools as ev_pools
from eventlet import queue as ev_queue
from eventlet import semaphore as ev_semaphore
from greenlet import getcurrent

RESETS = ("default", "rollback", "none")


class Driver:
    """A DB-API module and the keywords its ``connect()`` takes."""

    def __init__(self, name: str, module: Any, **kwargs: Any) -> None:
        self.name = name
        self.module = module
        self.kwargs = kwargs

    def connect(self) -> Any:
        return self.module.connect(**self.kwargs)


class Opened:
    """One live pool: how to check out, check in and dispose of it."""

    __slots__ = ("get", "put", "close")

    def __init__(
        self,
        get: Callable[[], Any],
        put: Callable[[Any], object],
        close: Callable[[], object] = lambda: None,
    ) -> None:
        self.get = get
        self.put = put
        self.close = close


class Candidate:
    """A pool (or a floor) that the benchmarks can open at a given size."""

    def __init__(
        self,
        key: str,
        label: str,
        opener: Callable[[int, Driver, str], Opened],
        floor: bool = False,
        blocking: bool = True,
    ) -> None:
        self.key = key
        self.label = label
        self.opener = opener
        self.floor = floor
        # A bare deque cannot make a caller wait, so it has no place in a
        # benchmark where callers outnumber connections.
        self.blocking = blocking

    def open(self, size: int, driver: Driver, reset: str = "default") -> Opened:
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, not {reset!r}")
        return self.opener(size, driver, reset)

    def __repr__(self) -> str:
        return f"<Candidate {self.key}>"


def _rollback(conn: Any) -> None:
    conn.rollback()


def _no_cleanup(conn: Any) -> None:
    pass


def _checkin_method(probe: Any) -> Callable[[Any], object]:
    # QueuePool and PooledDB hand out proxies that go back with close();
    # the unbound method avoids a lambda of ours in the timed loop.
    return type(probe).close


# -- db_pool ----------------------------------------------------------------


def _has_speedups(package_dir: str) -> bool:
    return any(
        glob.glob(os.path.join(package_dir, "_speedups*" + suffix))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def _prefer_a_built_copy() -> None:
    """Run from a checkout after ``pip install .``, ``import db_pool`` finds
    the checkout's sources first (``python -m`` puts the current directory
    first on ``sys.path``), where the C extension was never built, and the
    benchmarks would time the pure-Python fallback.  Then the installed copy,
    which has the extension, is imported instead; the report names the file
    it measured.  (``pip install -e .`` or ``tox -e bench`` build the
    extension in the checkout itself.)"""
    if "db_pool" in sys.modules:
        return
    spec = importlib.util.find_spec("db_pool")
    if spec is None or not spec.submodule_search_locations:
        return
    first = os.path.realpath(list(spec.submodule_search_locations)[0])
    if _has_speedups(first):
        return
    for entry in sys.path:
        candidate = os.path.realpath(os.path.join(entry or os.getcwd(), "db_pool"))
        if candidate != first and _has_speedups(candidate):
            sys.path.insert(0, entry)
            return


def load_db_pool() -> tuple[Any, str]:
    """Import db_pool; return ``(module or None, why it is missing)``."""
    try:
        _prefer_a_built_copy()
        module = importlib.import_module("db_pool")
        module.RawConnectionPool  # noqa: B018 - fail here, not mid-benchmark
    except Exception as exc:  # any import-time failure means "skip db_pool"
        return None, f"{type(exc).__name__}: {exc}"
    return module, ""


def _db_pool_opener(module: Any) -> Callable[[int, Driver, str], Opened]:
    def open_db_pool(size: int, driver: Driver, reset: str) -> Opened:
        options: dict[str, Any] = {}
        if reset == "rollback":
            options["cleanup"] = _rollback
        elif reset == "none":
            options["cleanup"] = None
        pool = module.RawConnectionPool(
            driver.module, 0, size, **options, **driver.kwargs
        )
        return Opened(pool.get, pool.put, getattr(pool, "close", pool.clear))

    return open_db_pool


# -- the pools users would otherwise pick -------------------------------------


def _open_eventlet(size: int, driver: Driver, reset: str) -> Opened:
    from eventlet import db_pool as ev_db_pool

    # eventlet.db_pool discards every connection on return when the
    # constructor is given cleanup=None, so "no reset" is a no-op cleanup.
    cleanup = _no_cleanup if reset == "none" else ev_db_pool.cleanup_rollback
    pool = ev_db_pool.RawConnectionPool(
        driver.module, 0, size, cleanup=cleanup, **driver.kwargs
    )
    return Opened(pool.get, pool.put, pool.clear)


def _open_sqlalchemy(size: int, driver: Driver, reset: str) -> Opened:
    from sqlalchemy.pool import QueuePool

    pool = QueuePool(
        driver.connect,
        pool_size=size,
        max_overflow=0,
        # Starved callers wait seconds in the contention benchmark; the
        # default 30 s timeout must not turn starvation into errors.
        timeout=3600,
        reset_on_return=None if reset == "none" else "rollback",
    )
    probe = pool.connect()
    put = _checkin_method(probe)
    probe.close()
    return Opened(pool.connect, put, pool.dispose)


def _open_dbutils(size: int, driver: Driver, reset: str) -> Opened:
    from dbutils.pooled_db import PooledDB

    # reset=True (the default) rolls back on every return; reset=False only
    # after transactions begun through DBUtils' own begin().  Other options
    # stay at their defaults, including ping=1 (ping() on every checkout,
    # where the driver has a ping method).
    pool = PooledDB(
        driver.module,
        maxconnections=size,
        blocking=True,
        reset=reset != "none",
        **driver.kwargs,
    )
    probe = pool.connection()
    put = _checkin_method(probe)
    probe.close()
    return Opened(pool.connection, put, pool.close)


# -- floors ---------------------------------------------------------------------


def _open_eventlet_pools(size: int, driver: Driver, reset: str) -> Opened:
    pool = ev_pools.Pool(max_size=size, order_as_stack=True, create=driver.connect)
    return Opened(pool.get, pool.put)


def _open_light_queue(size: int, driver: Driver, reset: str) -> Opened:
    queue = ev_queue.LightQueue()
    for _ in range(size):
        queue.put(driver.connect())
    return Opened(queue.get, queue.put)


def _open_deque(size: int, driver: Driver, reset: str) -> Opened:
    free = collections.deque(driver.connect() for _ in range(size))
    return Opened(free.pop, free.append)


class FifoPool:
    """The simplest strictly first-come-first-served pool: a semaphore + deque.

    eventlet's Semaphore queues a newcomer behind any waiter and wakes
    waiters in arrival order, so nobody overtakes; the price is a trip
    through the hub on every hand-off.
    """

    def __init__(self, connections: list[Any]) -> None:
        self._free = collections.deque(connections)
        self._slots = ev_semaphore.Semaphore(len(connections))

    def get(self) -> Any:
        self._slots.acquire()
        return self._free.pop()

    def put(self, conn: Any) -> None:
        self._free.append(conn)
        self._slots.release()


def _open_fifo(size: int, driver: Driver, reset: str) -> Opened:
    pool = FifoPool([driver.connect() for _ in range(size)])
    return Opened(pool.get, pool.put)


class HandoffPool:
    """The least a strictly first-come-first-served pool can do.

    A newcomer takes a free connection only when nobody waits; put() gives
    the connection to the longest waiter by scheduling a switch to it.  No
    timeouts, no kill safety, no bookkeeping: a floor, not a pool.
    """

    def __init__(self, connections: list[Any]) -> None:
        self._free = collections.deque(connections)
        self._waiters: collections.deque[Any] = collections.deque()
        self._hub = ev_hubs.get_hub()

    def get(self) -> Any:
        if self._free and not self._waiters:
            return self._free.pop()
        self._waiters.append(getcurrent())
        return self._hub.switch()

    def put(self, conn: Any) -> None:
        if self._waiters:
            self._hub.schedule_call_global(0, self._waiters.popleft().switch, conn)
        else:
            self._free.append(conn)


def _open_handoff(size: int, driver: Driver, reset: str) -> Opened:
    pool = HandoffPool([driver.connect() for _ in range(size)])
    if reset != "rollback":
        return Opened(pool.get, pool.put)
    hand_back = pool.put

    def put(conn: Any) -> None:
        conn.rollback()
        hand_back(conn)

    return Opened(pool.get, put)


# -- the roster -------------------------------------------------------------------

DB_POOL = "db_pool"
EVENTLET = "eventlet.db_pool"
SQLALCHEMY = "sqlalchemy"
DBUTILS = "dbutils"
LIGHT_QUEUE = "LightQueue"
HANDOFF = "handoff"

STAND_IN_ENV = "DB_POOL_BENCH_STAND_IN"


def roster(stand_in: bool = False) -> tuple[list[Candidate], str]:
    """Every candidate, db_pool first; and a note if db_pool is not itself.

    With *stand_in* (or ``DB_POOL_BENCH_STAND_IN=1``), eventlet.db_pool is
    measured in db_pool's place: a way to work on the harness itself before
    db_pool exists, never a result.
    """
    stand_in = stand_in or os.environ.get(STAND_IN_ENV, "") not in ("", "0")
    module, missing = (None, "") if stand_in else load_db_pool()
    pools: list[Candidate] = []
    if module is not None:
        pools.append(
            Candidate(DB_POOL, "db_pool RawConnectionPool", _db_pool_opener(module))
        )
    elif stand_in:
        pools.append(
            Candidate(DB_POOL, "db_pool (STAND-IN: eventlet.db_pool)", _open_eventlet)
        )
    pools += [
        Candidate(EVENTLET, "eventlet.db_pool RawConnectionPool", _open_eventlet),
        Candidate(SQLALCHEMY, "SQLAlchemy QueuePool", _open_sqlalchemy),
        Candidate(DBUTILS, "DBUtils PooledDB", _open_dbutils),
        Candidate(
            "eventlet.pools",
            "floor: eventlet.pools.Pool",
            _open_eventlet_pools,
            floor=True,
        ),
        Candidate(
            LIGHT_QUEUE, "floor: LightQueue get/put", _open_light_queue, floor=True
        ),
        Candidate(
            "deque", "floor: deque pop/append", _open_deque, floor=True, blocking=False
        ),
        Candidate("fifo", "floor: FIFO semaphore + deque", _open_fifo, floor=True),
        Candidate(HANDOFF, "floor: FIFO greenlet hand-off", _open_handoff, floor=True),
    ]
    if stand_in:
        note = "eventlet.db_pool stands in for db_pool (harness development only)"
    elif module is None:
        note = f"db_pool not importable ({missing})"
    else:
        note = ""
    return pools, note
