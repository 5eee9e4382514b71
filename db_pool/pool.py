"""BaseConnectionPool: slots, the free stack, the waiter queue.

This module is the only place where a connection changes state.  The states
are: *opening* (a slot is reserved and a connect is running), *free* (in
``free_items``), *checked out* (lent to a caller through a wrapper).  The
pool runs on green threads, which only switch at I/O or explicit yields, so
the state changes below need no lock: every function that changes state
does so without yielding, and does its I/O (connect, ping, reset, close)
before or after, holding a *slot*.

A slot is the right to one connection.  ``current_size`` counts the slots
taken (free + checked out + opening) and never exceeds ``max_size``.  A
caller that holds a slot and loses it (error, timeout, kill) gives it back
with :meth:`_release_slot`, which hands it to the longest waiter first.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import sys
import traceback
import warnings
import weakref
from bisect import bisect_left
from collections import deque
from typing import Any, Callable, Iterable
from weakref import getweakrefcount

from . import _green
from ._config import Backoff, check_callable, check_int, check_number
from .drivers import Driver, _unproxy, driver_for
from .errors import (
    ConfigError,
    ConnectionLeakWarning,
    MaximumRetryException,
    PoolClosed,
    PoolError,
    PoolTimeout,
    TooManyWaiters,
)
from .events import Listeners
from .secrets import connect_secrets, redact
from .wrapper import PooledConnectionWrapper, _Detached, set_record

logger = logging.getLogger("db_pool")

__all__ = ["BaseConnectionPool", "cleanup_rollback"]

monotonic = _green.monotonic
_getframe = sys._getframe
_INF = float("inf")

#: Upper bounds (seconds) of the checkout-wait histogram kept for exporters
#: (``db_pool.prometheus``); counted only for checkouts that waited, which
#: already take the slow path.
WAIT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_MISSING: Any = object()  # "argument not given" (eventlet's name)
_DEFAULT: Any = object()  # get(timeout=...) not given: use pool_timeout
_EMPTY: Any = object()  # a waiter not yet served
_CLOSED: Any = object()  # handed to waiters when the pool closes
_TIMED_OUT: Any = object()  # handed to waiters whose deadline passed

# Fork generation: bumped in every child process; records of an older
# generation belong to the parent and are never used or closed by the child.
_fork_generation = 0
_all_pools: "weakref.WeakSet[BaseConnectionPool]" = weakref.WeakSet()
# Connections inherited from the parent, kept referenced so that the child
# never finalises them (which could send the server a goodbye).
_inherited: list[Any] = []
_pool_ids = itertools.count(1)
_new_wrapper = object.__new__
_getrefcount = getattr(sys, "getrefcount", None)


def _unreferenced_count() -> int | None:
    """The reference count that get() sees for a wrapper nobody else holds.

    A returned wrapper is reused for a later checkout only when its count,
    taken the way get() takes it (a local variable passed to
    ``sys.getrefcount``), shows that the pool's own reference is the only
    one: then no caller can ever reach the connection through it.  Measured
    here, on this interpreter, instead of assumed; None (never reuse) where
    reference counts cannot prove that: not CPython, no GIL, or counts that
    do not move by one per reference.
    """
    if (
        sys.implementation.name != "cpython"
        or _getrefcount is None
        or not getattr(sys, "_is_gil_enabled", lambda: True)()
    ):
        return None
    box = deque([object()])
    w = box.popleft()
    alone = _getrefcount(w)
    box.append(w)
    if _getrefcount(w) != alone + 1:
        return None
    return alone


#: See _unreferenced_count(); None disables the reuse of wrappers.
_UNREFERENCED = _unreferenced_count()
#: How many returned wrappers a pool keeps for reuse.
_SPARES = 4


def cleanup_rollback(conn: Any) -> None:
    """Roll back *conn*: the default reset when a connection comes back.

    The pool skips the round trip when the driver reports, without asking
    the server, that no transaction is open (psycopg2's transaction status,
    the status flags MySQL sends with every reply, sqlite3's
    ``in_transaction``); whenever one is open, or the driver cannot tell, it
    rolls back.
    """
    conn.rollback()


class _Record:
    """One open connection and what the pool knows about it.

    Unpacks like eventlet's ``(last_used, created_at, conn)`` tuples, so code
    that reads ``pool.free_items`` keeps working.  Times are
    ``time.monotonic()`` values.
    """

    __slots__ = (
        "conn",
        "created_at",
        "last_used",
        "expires_at",
        "fresh_until",
        "uses",
        "checkout_at",
        "suspect",
        "broken",
        "generation",
        "server",
        "stack",
        "pinged_at",
        "leak_warned",
        "pool",
        "where",
        "status",
    )

    def __init__(self, conn: Any, created_at: float, expires_at: float) -> None:
        self.conn = conn
        self.created_at = created_at
        self.last_used = created_at
        self.expires_at = expires_at
        self.fresh_until = expires_at
        self.uses = 0
        self.checkout_at = created_at
        self.suspect = False
        self.broken = False
        self.generation = _fork_generation
        self.server: Any = None
        self.stack: Any = None
        self.pinged_at = created_at
        self.leak_warned = False
        self.pool: Any = None
        self.where: Any = None
        self.status: Any = None

    def __iter__(self) -> Any:
        return iter((self.last_used, self.created_at, self.conn))

    def __getitem__(self, index: Any) -> Any:
        return (self.last_used, self.created_at, self.conn)[index]

    def __len__(self) -> int:
        return 3

    def __repr__(self) -> str:
        return "<connection record uses=%d age=%.1fs>" % (
            self.uses,
            monotonic() - self.created_at,
        )


class _ResetOverran(BaseException):
    """Thrown into a green thread whose reset outlived ``reset_timeout``."""

    def __init__(self, pool: Any) -> None:
        super().__init__("reset_timeout")
        self.pool = pool


class _Waiter:
    """A green thread queued in get(); served in arrival order."""

    __slots__ = ("greenlet", "value", "hub", "woken", "deadline")

    def __init__(self, hub: Any, deadline: float | None = None) -> None:
        self.greenlet = _green.current_greenlet()
        self.value = _EMPTY
        # The hub that switches back to us (see _hand_off).
        self.hub = hub
        # Set once we were switched to, or gave up waiting: never again.
        self.woken = False
        # When the wait watchdog (_expire_waits) gives up for us, or None.
        self.deadline = deadline


class _Waker:
    """The hub callback that wakes the waiters served in one turn of the
    hub (see _hand_off and _wake_served).

    One per pool, put on the hub's timer list again for each batch, where
    ``hub.schedule_call_global()`` would make a new eventlet ``Timer`` each
    time.  It follows the protocol the hub expects of a timer (``seconds``,
    ``called``, calling it, ordering); it holds its pool weakly, so a
    pending wake-up never keeps a pool alive.
    """

    __slots__ = ("seconds", "called", "pool_ref")

    def __init__(self, pool: Any) -> None:
        self.seconds = 0
        self.called = True  # True: not on any hub's timer list
        self.pool_ref = weakref.ref(pool)

    def schedule(self, hub: Any) -> None:
        self.called = False
        hub.add_timer(self)

    def __call__(self) -> None:
        if not self.called:
            self.called = True
            pool = self.pool_ref()
            if pool is not None:
                pool._wake_served()

    def __lt__(self, other: Any) -> bool:
        # The hub's heap holds (time, timer) pairs; equal times compare
        # the timers.
        return id(self) < id(other)

    def __repr__(self) -> str:
        return "<db_pool wake-up of %r>" % (self.pool_ref(),)


def _wake_one(waiter: _Waiter) -> None:
    """Hub callback: switch to one served waiter (see _hand_off)."""
    if not waiter.woken:
        waiter.woken = True
        waiter.greenlet.switch()


class _Lease:
    """The context manager of ``item()`` and ``connection()``."""

    __slots__ = ("pool", "cleanup", "timeout", "conn", "reentrant_key")

    def __init__(self, pool: "BaseConnectionPool", cleanup: Any, timeout: Any) -> None:
        self.pool = pool
        self.cleanup = cleanup
        self.timeout = timeout
        self.conn: Any = None
        self.reentrant_key: Any = None

    def __enter__(self) -> Any:
        pool = self.pool
        if pool.reentrant:
            key = _green.current_greenlet()
            held = pool._leases.get(key)
            if held is not None and held[0]:
                held[1] += 1
                self.reentrant_key = key
                return held[0]
            self.conn = pool._checkout(True, self.timeout, 2)
            pool._leases[key] = [self.conn, 1]
            self.reentrant_key = key
            return self.conn
        self.conn = pool._checkout(True, self.timeout, 2)
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        pool = self.pool
        key = self.reentrant_key
        if key is not None:
            held = pool._leases.get(key)
            if held is None:
                return
            if exc is not None and held[0]:
                pool._note_error(held[0], exc)
            held[1] -= 1
            if held[1] > 0:
                return
            del pool._leases[key]
            conn = held[0]
        else:
            conn = self.conn
            if exc is not None and conn:
                pool._note_error(conn, exc)
        self.conn = None
        pool.put(conn, self.cleanup)


def _maintenance_loop(pool_ref: "weakref.ref[BaseConnectionPool]") -> None:
    """Background work of one pool; holds only a weak reference between runs."""
    while True:
        pool = pool_ref()
        if pool is None:
            return
        try:
            delay = pool._maintain()
        except Exception:
            logger.exception("pool %r: maintenance failed", pool.name)
            delay = 1.0
        if delay is None:
            return
        del pool
        _green.sleep(delay)


def _run_watchdog(pool_ref: "weakref.ref[BaseConnectionPool]", method: str) -> None:
    """The hub timer of a pool's watchdog (``_watch_resets``,
    ``_expire_waits``): runs it unless the pool is gone.  It holds the pool
    only weakly, so a pending timer never keeps a pool alive."""
    pool = pool_ref()
    if pool is not None:
        getattr(pool, method)()


def _close_connections_later(records: "deque[_Record]", name: str) -> None:
    """Finalizer of a dropped pool: close its idle connections from the hub."""
    if not records:
        return
    items = list(records)
    records.clear()

    def close_all() -> None:
        for rec in items:
            if rec.generation != _fork_generation:
                continue
            try:
                rec.conn.close()
            except Exception:
                pass
        logger.debug(
            "pool %r was dropped; closed %d idle connection(s)", name, len(items)
        )

    try:
        _green.call_soon_global(_green.spawn_n, close_all)
    except Exception:  # no hub any more (interpreter shutdown)
        pass


class BaseConnectionPool:
    """A pool of DB-API 2 connections for green threads.

    Constructs a pool of at most *max_size* connections opened with
    ``db_module.connect(*args, **kwargs)``, keeping at least *min_size* open.

    *max_idle* is how long (seconds) an unused connection may stay in the
    pool, *max_age* how long any connection may live; ``0`` closes every
    connection on return, ``None`` means no limit.  *connect_timeout* bounds
    each connect (raising :class:`~db_pool.ConnectTimeout`).  *cleanup* is
    called with the raw connection when it comes back (default: roll back;
    ``None``: nothing).

    The keyword-only options are described in the README's *Configuration*
    section.  Every option is checked here; a bad value raises
    :class:`ValueError` or :class:`TypeError` naming it.
    """

    # What the fast paths of get() and put() touch lives in slots: the C
    # versions of those paths (_speedups.c) find it at fixed offsets.
    # Everything else is in the instance dict, as usual.
    __slots__ = (
        "free_items",
        "_waiters",
        "_spares",
        "_checkouts",
        "_checkout_hooks",
        "_checkin_hooks",
        "_max_uses",
        "_is_closed",
        "_hold_time_total",
        "cleanup",
        "reset_timeout",
        "_resets",
        "_resets_skipped",
        "_idle_window",
        "_closed",
        "_waking",
        "_waker",
        "pool_timeout",
        "max_waiting",
        "_on_pool_at_max",
        "_resets_running",
        "_watchdog",
        "_closed_attr",
        "_closed_negated",
        "_status_method",
        "_wait_watch_due",
        "_waits",
        "_wait_time_total",
        "_wait_time_max",
        "_wait_buckets",
        "__dict__",
        "__weakref__",
    )

    #: The wrapper class handed to callers.
    wrapper_class = PooledConnectionWrapper
    #: "raw" or "tpool": how connections are opened and used.
    _kind = "raw"

    def __init__(
        self,
        db_module: Any,
        min_size: int = 0,
        max_size: int = 4,
        max_idle: float | None = 10,
        max_age: float | None = 30,
        connect_timeout: float | None = 5,
        cleanup: Callable[[Any], Any] | None = cleanup_rollback,
        *args: Any,
        name: str | None = None,
        pool_timeout: float | None = None,
        max_waiting: int | None = None,
        reentrant: bool = False,
        pre_ping: bool = False,
        pre_ping_idle: float = 0.5,
        check: Callable[[Any], Any] | None = None,
        max_uses: int | None = None,
        leak_timeout: float | None = None,
        keepalive: float | None = None,
        max_age_jitter: float = 0.1,
        reset_timeout: Any = _DEFAULT,
        listeners: Iterable[Any] = (),
        connect_args: dict[str, Any] | None = None,
        is_disconnect: Callable[[BaseException], bool] | None = None,
        servers: Any = None,
        max_retries: int = 0,
        reconnect_delay: tuple[float, float] = (0.1, 10.0),
        **kwargs: Any,
    ) -> None:
        if db_module is None or not callable(getattr(db_module, "connect", None)):
            raise TypeError(
                "db_module must be a DB-API 2 module with a connect() function, "
                "not %r" % (db_module,)
            )
        self.min_size = check_int("min_size", min_size, 0)
        self.max_size = check_int("max_size", max_size, 1)
        if self.min_size > self.max_size:  # type: ignore[operator]
            raise ConfigError(
                "min_size (%r) must not be greater than max_size (%r)"
                % (min_size, max_size)
            )
        self.max_idle = check_number("max_idle", max_idle)
        self.max_age = check_number("max_age", max_age)
        self.connect_timeout = check_number("connect_timeout", connect_timeout)
        if self.connect_timeout == 0:
            self.connect_timeout = None
        self.cleanup = check_callable("cleanup", cleanup)
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be a string, not %r" % (name,))
        self.name = name if name is not None else "pool-%d" % next(_pool_ids)
        self.pool_timeout = check_number("pool_timeout", pool_timeout)
        self.max_waiting = check_int("max_waiting", max_waiting, 0, allow_none=True)
        if not isinstance(reentrant, bool):
            raise TypeError("reentrant must be True or False, not %r" % (reentrant,))
        self.reentrant = reentrant
        if not isinstance(pre_ping, bool):
            raise TypeError("pre_ping must be True or False, not %r" % (pre_ping,))
        self.pre_ping = pre_ping
        self.pre_ping_idle = check_number("pre_ping_idle", pre_ping_idle, False)
        self.check = check_callable("check", check)
        self.max_uses = check_int("max_uses", max_uses, 1, allow_none=True)
        self.leak_timeout = check_number("leak_timeout", leak_timeout, positive=True)
        self.keepalive = check_number("keepalive", keepalive, positive=True)
        jitter = check_number("max_age_jitter", max_age_jitter, False)
        if jitter >= 1:  # type: ignore[operator]
            raise ConfigError("max_age_jitter must be < 1, got %r" % (max_age_jitter,))
        self.max_age_jitter = jitter
        self.is_disconnect_hook = check_callable("is_disconnect", is_disconnect)
        self.max_retries = check_int("max_retries", max_retries, 0)
        if not isinstance(reconnect_delay, tuple) or len(reconnect_delay) != 2:
            raise TypeError(
                "reconnect_delay must be a tuple (initial, maximum), not %r"
                % (reconnect_delay,)
            )
        lo = check_number("reconnect_delay[0]", reconnect_delay[0], False, True)
        hi = check_number("reconnect_delay[1]", reconnect_delay[1], False, True)
        if lo > hi:  # type: ignore[operator]
            raise ConfigError(
                "reconnect_delay: initial must be <= maximum, got %r"
                % (reconnect_delay,)
            )
        self._backoff = Backoff(lo, hi)  # type: ignore[arg-type]
        if connect_args is not None:
            if not isinstance(connect_args, dict):
                raise TypeError(
                    "connect_args must be a dict, not %s"
                    % (type(connect_args).__name__,)
                )
            overlap = set(connect_args) & set(kwargs)
            if overlap:
                raise ConfigError(
                    "connect argument(s) %s given both loose and in connect_args"
                    % (", ".join(sorted(overlap)),)
                )
            kwargs = dict(kwargs, **connect_args)

        self._db_module = db_module
        self._args = args
        self._kwargs = kwargs
        # Scrubbed from every driver error text the pool logs or raises.
        self._secrets = connect_secrets(args, kwargs)
        self._driver: Driver = driver_for(db_module)
        if reset_timeout is _DEFAULT:
            reset_timeout = self.connect_timeout if self._driver.networked else None
        self.reset_timeout = check_number("reset_timeout", reset_timeout, positive=True)
        self._servers: Any = None
        if servers is not None:
            from .servers import ServerList

            self._servers = ServerList(servers, self)

        # -- state ------------------------------------------------------
        self.current_size = 0
        self.free_items: deque[_Record] = deque()
        self._opening = 0
        self._waiters: deque[_Waiter] = deque()
        # Waiters served but not yet switched to (all of one hub).
        self._waking: list[_Waiter] = []
        self._waker = _Waker(self)
        # The wait watchdog: one hub timer, due at the earliest deadline of
        # the waiters in line (see _expire_waits), instead of one each.
        self._wait_watch: Any = None
        self._wait_watch_due: float | None = None
        self._closed = False
        self._leases: dict[Any, list[Any]] = {}
        self._in_use: set[_Record] | None = set() if leak_timeout else None
        self._dropped: deque[tuple[_Record, Any, bool]] = deque()
        # Lent connections whose slot the caller already gave up with
        # put(None): the next one to come back closes instead of returning.
        self._abandoned = 0
        self._maintenance: Any = None
        self._next_refill = 0.0
        # clear() stops the min_size refill until the pool is used again:
        # the checkout count at that clear(), or None.
        self._refill_paused: int | None = None
        self._resets_running: dict[Any, float] = {}
        self._watchdog: Any = None
        self._connect_error: Exception | None = None
        self._retry_at = 0.0
        self._refill_delay = 0.0
        self._probing = False
        self._close_on_return = self.max_idle == 0 or self.max_age == 0
        self._use_pre_ping = pre_ping or check is not None
        self._listeners = Listeners(self.name, listeners)
        self._on_checked_out = self._listeners.connection_checked_out
        self._on_checked_in = self._listeners.connection_checked_in
        # The list itself (Listeners edits it in place): get() tests it.
        self._on_pool_at_max = self._listeners.pool_at_max
        self._is_closed = self._driver.closed_getter()
        # The same answers, read straight off the driver's connection by the
        # C fast paths (see Driver.closed_flag and Driver.status_method).
        flag = self._driver.closed_flag if self._is_closed is not None else None
        self._closed_attr = flag[0] if flag else None
        self._closed_negated = bool(flag and flag[1])
        self._status_method = self._driver.status_method
        # Returned wrappers kept for reuse (see _unreferenced_count); only
        # for the plain wrapper class, whose only state is the record.
        self._spares: deque[Any] | None = (
            deque(maxlen=_SPARES)
            if _UNREFERENCED is not None
            and self.wrapper_class is PooledConnectionWrapper
            else None
        )
        self._max_uses = self.max_uses if self.max_uses is not None else -1
        self._idle_window = _INF
        if self.max_idle is not None:
            self._idle_window = self.max_idle
        if self._use_pre_ping:
            self._idle_window = min(self._idle_window, self.pre_ping_idle)  # type: ignore[type-var]
        self._checkin_special = False
        self._checkout_hooks = self._checkin_hooks = True
        self._update_checkin_special()
        self._reset_stats()
        # For exporters, which need counters that never go back: what
        # stats(reset=True) took away, and the wait histogram (never reset).
        self._stats_carried: dict[str, Any] = {}
        self._wait_buckets = [0] * (len(WAIT_BUCKETS) + 1)

        _all_pools.add(self)
        self._finalizer = weakref.finalize(
            self, _close_connections_later, self.free_items, self.name
        )
        self._finalizer.atexit = False
        self._driver.check_green(self._kind)

        # eventlet opens min_size connections in the constructor; so do we,
        # but a failure is logged and left to the background refill rather
        # than raised: a pool can be built while the database is down.
        for _ in range(self.min_size):  # type: ignore[arg-type]
            self.current_size += 1
            try:
                rec = self._open(None)
            except Exception as exc:
                self.current_size -= 1
                logger.warning(
                    "pool %r: could not open a min_size connection: %s",
                    self.name,
                    _describe(exc, self._secrets),
                )
                self._ensure_maintenance()
                break
            self.free_items.append(rec)

    # ------------------------------------------------------------------
    # stats
    _COUNTERS = (
        "checkouts",
        "waits",
        "wait_time_total",
        "wait_time_max",
        "hold_time_total",
        "connections_opened",
        "connections_closed",
        "connect_failures",
        "connect_failures_fast",
        "connect_time_total",
        "discarded_dead",
        "discarded_reset_failed",
        "expired_idle",
        "expired_age",
        "recycled_uses",
        "leaks_reclaimed",
        "leaks_reported",
        "timeouts",
        "too_many_waiters",
        "pings",
        "ping_failures",
        "resets",
        "resets_skipped",
    )

    def _reset_stats(self) -> None:
        self._checkouts = 0
        self._waits = 0
        self._wait_time_total = 0.0
        self._wait_time_max = 0.0
        self._hold_time_total = 0.0
        self._connections_opened = 0
        self._connections_closed = 0
        self._connect_failures = 0
        self._connect_failures_fast = 0
        self._connect_time_total = 0.0
        self._discarded_dead = 0
        self._discarded_reset_failed = 0
        self._expired_idle = 0
        self._expired_age = 0
        self._recycled_uses = 0
        self._leaks_reclaimed = 0
        self._leaks_reported = 0
        self._timeouts = 0
        self._too_many_waiters = 0
        self._pings = 0
        self._ping_failures = 0
        self._resets = 0
        self._resets_skipped = 0

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """A snapshot of the pool's sizes and counters, as a plain dict.

        Counters count since the pool was made, or since the last call with
        *reset* true.  Times are in seconds.
        """
        free = len(self.free_items)
        out: dict[str, Any] = {
            "name": self.name,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "size": self.current_size,
            "free": free,
            "checked_out": self.current_size - free - self._opening,
            "opening": self._opening,
            "waiting": len(self._waiters),
            "closed": self._closed,
        }
        for key in self._COUNTERS:
            out[key] = getattr(self, "_" + key)
        if self._servers is not None:
            out["servers"] = self._servers.stats()
        if reset:
            self._carry_stats(out)
            self._reset_stats()
            if self._servers is not None:
                self._servers.reset_stats()
        return out

    def _carry_stats(self, snapshot: dict[str, Any]) -> None:
        """Keep the counters a reset is about to zero, for lifetime_stats()."""
        carried = self._stats_carried
        for key in self._COUNTERS:
            if key == "wait_time_max":
                carried[key] = max(carried.get(key, 0.0), snapshot[key])
            else:
                carried[key] = carried.get(key, 0) + snapshot[key]
        for label, server in snapshot.get("servers", {}).items():
            kept = carried.setdefault("servers", {}).setdefault(label, {})
            for key in ("connects", "failures", "disconnects", "probes"):
                if isinstance(server.get(key), (int, float)):
                    kept[key] = kept.get(key, 0) + server[key]

    def lifetime_stats(self) -> dict[str, Any]:
        """Like :meth:`stats`, but counting since the pool was made, whatever
        ``stats(reset=True)`` did (counters that never go back, as
        monitoring systems want); plus ``wait_buckets``, the number of
        checkouts that waited, by :data:`WAIT_BUCKETS` bound (the last item
        counts waits above the last bound).
        """
        out = self.stats()
        carried = self._stats_carried
        for key, value in carried.items():
            if key == "servers":
                for label, kept in value.items():
                    server = out.get("servers", {}).get(label)
                    if server is not None:
                        for name, n in kept.items():
                            server[name] = server.get(name, 0) + n
            elif key == "wait_time_max":
                out[key] = max(out[key], value)
            elif key in out:
                out[key] += value
        out["wait_buckets"] = list(self._wait_buckets)
        return out

    def pop_stats(self) -> dict[str, Any]:
        """Same as ``stats(reset=True)``."""
        return self.stats(reset=True)

    def __repr__(self) -> str:
        free = len(self.free_items)
        return "<%s %r free=%d used=%d opening=%d waiting=%d max=%d%s>" % (
            type(self).__name__,
            self.name,
            free,
            self.current_size - free - self._opening,
            self._opening,
            len(self._waiters),
            self.max_size,
            " closed" if self._closed else "",
        )

    # ------------------------------------------------------------------
    # listeners
    def add_listener(self, listener: Any) -> None:
        """Register a listener: an object with event methods, or a dict."""
        self._listeners.add(listener)
        self._update_hooks()

    def remove_listener(self, listener: Any) -> None:
        self._listeners.remove(listener)
        self._update_hooks()

    # ------------------------------------------------------------------
    # eventlet-compatible counters
    def free(self) -> int:
        """How many get() calls can be served without waiting."""
        return len(self.free_items) + self.max_size - self.current_size  # type: ignore[operator]

    def waiting(self) -> int:
        """How many green threads are waiting in get()."""
        return len(self._waiters)

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------
    # checkout
    def get(self, block: bool = True, timeout: Any = _DEFAULT) -> Any:
        """Check out a connection (a :class:`PooledConnectionWrapper`).

        Waits in line, first come first served, when every connection is in
        use; *timeout* (default: the pool's ``pool_timeout``; None: forever)
        bounds the whole checkout, waiting, connecting and validating
        included.  With *block* false, never waits.

        Raises :class:`PoolTimeout`, :class:`TooManyWaiters`,
        :class:`PoolClosed`, :class:`ConnectTimeout`, or the driver's own
        error when connecting fails.
        """
        # The fast path of _checkout(), inlined: a fresh idle connection and
        # nobody in line.  (A closed pool has no idle connections.)
        free = self.free_items
        if free and not self._waiters:
            rec = free.popleft()
            now = monotonic()
            if now < rec.fresh_until:
                rec.uses += 1
                rec.checkout_at = now
                rec.pool = self
                self._checkouts += 1
                rec.where = _getframe(1).f_code
                # A returned wrapper that nobody else references any more
                # (see _unreferenced_count) saves making a new one.
                spares = self._spares
                if spares:
                    w = spares.popleft()
                    if _getrefcount(w) != _UNREFERENCED or getweakrefcount(w):
                        spares.append(w)  # still held: try it again later
                        w = _new_wrapper(self.wrapper_class)
                else:
                    w = _new_wrapper(self.wrapper_class)
                set_record(w, rec)
                if self._checkout_hooks:
                    self._after_checkout(rec, 2)
                return w
            return self._checkout_slow(block, timeout, 2, rec, now)
        return self._checkout_slow(block, timeout, 2, None, None)

    def get_nowait(self) -> Any:
        """Check out a connection, or raise :class:`PoolTimeout` at once."""
        return self._checkout(False, 0, 2)

    def _checkout(self, block: bool, timeout: Any, depth: int) -> Any:
        free = self.free_items
        if free and not self._waiters:
            rec = free.popleft()
            now = monotonic()
            if now >= rec.fresh_until or self._closed:
                return self._checkout_slow(block, timeout, depth + 1, rec, now)
            # The fast path: a fresh idle connection and nobody in line.
            rec.uses += 1
            rec.checkout_at = now
            rec.pool = self
            self._checkouts += 1
            rec.where = _getframe(depth).f_code
            w = self._wrap(rec)
            if self._checkout_hooks:
                self._after_checkout(rec, depth + 1)
            return w
        return self._checkout_slow(block, timeout, depth + 1, None, None)

    def _wrap(self, rec: _Record) -> Any:
        """The wrapper that lends *rec*: a reusable spare, or a new one."""
        spares = self._spares
        if spares:
            w = spares.popleft()
            if _getrefcount(w) == _UNREFERENCED and not getweakrefcount(w):
                set_record(w, rec)
                return w
            spares.append(w)
        w = _new_wrapper(self.wrapper_class)
        set_record(w, rec)
        return w

    def _after_checkout(self, rec: _Record, depth: int) -> None:
        """Leak tracking and listeners: off the hot path unless configured."""
        if self._in_use is not None:
            self._track(rec, depth + 1)
        if self._on_checked_out:
            self._listeners.fire("connection_checked_out", rec.conn)

    def _update_hooks(self) -> None:
        """Recompute the flags that send checkouts and checkins off the fast path."""
        self._checkout_hooks = bool(self._in_use is not None or self._on_checked_out)
        self._checkin_hooks = bool(
            self._in_use is not None
            or self._on_checked_in
            or self._abandoned
            or self._checkin_special
        )

    def _checkout_slow(
        self, block: bool, timeout: Any, depth: int, rec: Any, now: float | None
    ) -> Any:
        # *now* is the caller's clock reading, if it took one.
        start = monotonic() if now is None else now
        if timeout is _DEFAULT:
            timeout = self.pool_timeout
        elif timeout is not None:
            timeout = check_number("timeout", timeout)
        # *deadline* bounds the whole checkout; a non-blocking get (or a
        # timeout of 0) never waits in line, but may still open a connection
        # within connect_timeout.
        deadline = None if not timeout else start + timeout
        if not block:
            timeout = 0
        waited = False
        if rec is not None and self._closed:
            self.free_items.appendleft(rec)
            rec = None
        if rec is None:
            # Take a slot: a free connection, room to open one, or a place
            # in line.
            if self._closed:
                raise PoolClosed("pool %r is closed" % (self.name,), self.name)
            if self.free_items and not self._waiters:
                rec = self.free_items.popleft()
            elif self.current_size < self.max_size and not self._waiters:  # type: ignore[operator]
                self.current_size += 1
            else:
                rec = self._wait(deadline, timeout)
                waited = True
        return self._finish_checkout(rec, start, deadline, waited, depth + 1)

    def _finish_checkout(
        self, rec: Any, start: float, deadline: float | None, waited: bool, depth: int
    ) -> Any:
        """Lend the slot we hold: *rec* is its connection, None (a slot
        with no connection yet: open one), or _CLOSED (the pool closed
        while we waited)."""
        if rec is _CLOSED:
            raise PoolClosed("pool %r is closed" % (self.name,), self.name)
        # We hold a slot; rec is None when it has no connection yet.
        try:
            while True:
                if rec is None:
                    rec = self._open(deadline)
                    now = monotonic()
                    break
                now = monotonic()
                if now < rec.fresh_until:
                    # Handed over fresh (the usual case after a wait):
                    # nothing to check.
                    break
                reason = self._expired(rec, now)
                if reason is not None:
                    self._discard(rec, reason)
                    rec = None
                    continue
                if rec.suspect or (
                    self._use_pre_ping and now - rec.last_used >= self.pre_ping_idle  # type: ignore[operator]
                ):
                    ok_rec, rec = rec, None
                    if self._validate(ok_rec, deadline):
                        rec = ok_rec
                        now = monotonic()
                        break
                    continue
                break
        except BaseException:
            # The slot comes back even if the caller is interrupted again
            # (a second kill or Timeout) while the connection closes.
            try:
                if rec is not None:
                    self._discard(rec, "error")
            finally:
                self._release_slot()
            raise
        if waited:
            wait = now - start
            self._waits += 1
            self._wait_time_total += wait
            if wait > self._wait_time_max:
                self._wait_time_max = wait
            self._wait_buckets[bisect_left(WAIT_BUCKETS, wait)] += 1
        rec.uses += 1
        rec.checkout_at = now
        rec.pool = self
        self._checkouts += 1
        rec.where = _getframe(depth).f_code
        if waited:
            # After a wait the spares are still held, nearly always, by the
            # callers that returned them (and now wait in line themselves).
            w = _new_wrapper(self.wrapper_class)
            set_record(w, rec)
        else:
            w = self._wrap(rec)
        if self._in_use is not None:
            self._track(rec, depth + 1)
        if self._on_checked_out:
            self._listeners.fire("connection_checked_out", rec.conn)
        return w

    def _track(self, rec: _Record, depth: int) -> None:
        rec.stack = traceback.extract_stack(_getframe(depth))
        rec.leak_warned = False
        self._in_use.add(rec)  # type: ignore[union-attr]

    def _wait(self, deadline: float | None, timeout: Any) -> Any:
        """Queue up for a slot; return a record, or None (a slot to open)."""
        if timeout == 0 or (deadline is not None and deadline <= monotonic()):
            self._timeouts += 1
            raise PoolTimeout(
                "pool %r: no connection available (max_size=%d, all in use)"
                % (self.name, self.max_size),
                self.name,
                timeout,
            )
        if self.max_waiting is not None and len(self._waiters) >= self.max_waiting:
            self._too_many_waiters += 1
            raise TooManyWaiters(
                "pool %r: %d callers already waiting (max_waiting=%d)"
                % (self.name, len(self._waiters), self.max_waiting),
                self.name,
            )
        if self._on_pool_at_max:
            self._listeners.fire("pool_at_max")
        hub = _green.get_hub()
        waiter = _Waiter(hub, deadline)
        self._waiters.append(waiter)
        if deadline is not None:
            due = self._wait_watch_due
            if due is None or deadline < due:
                self._watch_waits(deadline, hub)
        try:
            # Yield point: sleep until _hand_off() gives us a slot, or the
            # watchdog our deadline.
            while waiter.value is _EMPTY:
                hub.switch()
        except BaseException:
            self._abandon_wait(waiter)
            raise
        value = waiter.value
        if value is _TIMED_OUT:
            raise self._timed_out(timeout)
        # A record, None (a slot to open) or _CLOSED: see _finish_checkout.
        return value

    def _timed_out(self, timeout: Any) -> PoolTimeout:
        """The error of a wait that reached its deadline (counted)."""
        self._timeouts += 1
        return PoolTimeout(
            "pool %r: no connection available within %.3gs "
            "(max_size=%d, all in use)" % (self.name, timeout, self.max_size),
            self.name,
            timeout,
        )

    def _watch_waits(self, due: float, hub: Any) -> None:
        """Have the wait watchdog run at *due* (a monotonic time)."""
        if self._wait_watch is not None:
            self._wait_watch.cancel()
        self._wait_watch_due = due
        self._wait_watch = hub.schedule_call_global(
            max(0.0, due - monotonic()),
            _run_watchdog,
            weakref.ref(self),
            "_expire_waits",
        )

    def _expire_waits(self) -> None:
        """The wait watchdog: the waiters whose deadline passed leave the
        line, and raise PoolTimeout when they next run.

        One hub timer per pool, due at the earliest deadline in line, costs
        the hub less than an ``eventlet.Timeout`` per wait (each one a timer
        to add, and to cancel when, as usually, the wait ends in time).  A
        waiter already served is out of the line: it keeps its connection.
        """
        self._wait_watch = None
        self._wait_watch_due = None
        now = monotonic()
        waiters = self._waiters
        expired = [w for w in waiters if w.deadline is not None and w.deadline <= now]
        if expired:
            kept = [w for w in waiters if w.deadline is None or w.deadline > now]
            waiters.clear()
            waiters.extend(kept)
            for waiter in expired:
                self._serve(waiter, _TIMED_OUT)
        deadlines = [w.deadline for w in waiters if w.deadline is not None]
        if deadlines:
            self._watch_waits(min(deadlines), _green.get_hub())

    def _abandon_wait(self, waiter: _Waiter) -> None:
        """A caller waiting in line was interrupted (killed, timed out):
        leave the line, or pass on what it was served meanwhile."""
        value = waiter.value
        if value is _EMPTY:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass
        else:
            # Served and interrupted at the same time: pass it on, and make
            # sure the pending wake-up skips us.
            waiter.woken = True
            if value is not _CLOSED and value is not _TIMED_OUT:
                if value is None:
                    self._release_slot()
                else:
                    self._return_record(value)

    def _hand_off(self, value: Any) -> bool:
        """Give *value* (a record, or None for a bare slot) to the longest waiter."""
        waiters = self._waiters
        if not waiters:
            return False
        self._serve(waiters.popleft(), value)
        return True

    def _serve(self, waiter: _Waiter, value: Any) -> None:
        """Hand *value* to *waiter*, out of the line now, and wake it."""
        waiter.value = value
        # Served waiters are switched to from the hub, in the order served.
        # Those served before the hub runs again share one hub callback
        # (_wake_served) instead of one hub timer each: with many
        # connections returned per turn of the hub, the timers were most of
        # the cost of a hand-off.
        waking = self._waking
        if not waking:
            self._waker.schedule(waiter.hub)
        elif waiter.hub is not waking[0].hub:
            # A waiter of another OS thread's hub: it wakes on its own.
            waiter.hub.schedule_call_global(0, _wake_one, waiter)
            return
        waking.append(waiter)

    def _wake_served(self) -> None:
        """Hub callback: switch to each waiter served since the last one.

        Each switch returns here when that green thread yields to the hub
        again.  Waiters served meanwhile go to the next callback, so one
        turn of the hub never runs an unbounded chain of hand-offs.
        """
        batch = self._waking
        self._waking = []
        for i, waiter in enumerate(batch):
            if waiter.woken:
                continue  # gave up waiting after it was served
            waiter.woken = True
            try:
                waiter.greenlet.switch()
            except BaseException:
                self._wake_rest(batch, i + 1)
                raise

    def _wake_rest(self, batch: list[_Waiter], start: int) -> None:
        """A switch in _wake_served() raised (the hub reports it as it would
        a failed timer): the rest of the batch is still woken, in order, by
        the next callback."""
        rest = [w for w in batch[start:] if not w.woken]
        if rest:
            if not self._waking:
                self._waker.schedule(rest[0].hub)
            self._waking[:0] = rest

    def _release_slot(self) -> None:
        """Give up a slot that has no connection (any more)."""
        if (
            self._closed
            or self.current_size > self.max_size
            or not self._hand_off(None)
        ):  # type: ignore[operator]
            self.current_size -= 1
            if self.current_size < self.min_size and not self._closed:  # type: ignore[operator]
                self._ensure_maintenance()

    def _return_record(self, rec: _Record) -> None:
        """Put a clean, usable record back: to the longest waiter, or free."""
        if self._closed:
            self._discard_and_release(rec, "pool_closed")
        elif not self._hand_off(rec):
            self.free_items.appendleft(rec)

    def _expired(self, rec: _Record, now: float) -> str | None:
        if now >= rec.expires_at:
            return "age"
        if self.max_idle is not None and now - rec.last_used >= self.max_idle:
            return "idle"
        return None

    def _fresh_until(self, rec: _Record, now: float) -> float:
        """Until when *rec* may be handed out without a check or expiry test."""
        if rec.suspect:
            return 0.0
        until = now + self._idle_window
        return until if until < rec.expires_at else rec.expires_at

    # ------------------------------------------------------------------
    # opening
    def create(self) -> tuple[float, float, Any]:
        """Open a new raw connection: returns ``(last_used, created_at, conn)``.

        With ``servers=``, the connection goes to the next server of the list.
        """
        if self._servers is not None:
            return self._servers.create(None)[:3]  # type: ignore[no-any-return]
        now = monotonic()
        conn = self.connect(
            self._db_module, self.connect_timeout, *self._args, **self._kwargs
        )
        return now, now, conn

    @classmethod
    def connect(
        cls, db_module: Any, connect_timeout: float | None, /, *args: Any, **kw: Any
    ) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError("use RawConnectionPool or TpooledConnectionPool")

    def _open(self, deadline: float | None) -> _Record:
        """Open a connection for a slot the caller holds.

        After a failed connect the database is presumed down: until a retry
        time (exponential backoff with jitter) callers are not let through
        to connect again, and while one caller probes, the others are not
        either.  They get the last connect error at once instead -- the same
        exception class the driver raised -- so an outage makes no stampede
        of connects and no caller waits for an answer that will not come.
        """
        error = self._connect_error
        if error is not None and self._servers is None:
            if self._probing or monotonic() < self._retry_at:
                self._connect_failures_fast += 1
                raise error.with_traceback(None)
            self._probing = True
        self._opening += 1
        start = monotonic()
        timer = None
        try:
            if deadline is not None:
                remaining = deadline - start
                if remaining <= 0:
                    raise PoolTimeout(
                        "pool %r: deadline passed before a connection could be opened"
                        % (self.name,),
                        self.name,
                    )
                if self.connect_timeout is None or remaining < self.connect_timeout:
                    timer = _green.Timeout(remaining)
            try:
                if self._servers is not None:
                    created = self._servers.create(deadline)
                else:
                    created = self.create()
            finally:
                if timer is not None:
                    timer.cancel()
        except BaseException as exc:
            self._opening -= 1
            self._connect_failures += 1
            self._probing = False
            if isinstance(exc, Exception) and exc is not timer:
                # The database (not the caller's deadline) failed us.
                self._connect_error = exc
                # Callers are let through again after at most a second, so
                # a database that is back is found quickly even when no
                # background refill runs; the refill itself backs off fully.
                self._refill_delay = self._backoff.next_delay()
                self._retry_at = monotonic() + min(self._refill_delay, 1.0)
            if exc is timer:
                self._timeouts += 1
                err: BaseException = PoolTimeout(
                    "pool %r: could not open a connection within the caller's "
                    "deadline" % (self.name,),
                    self.name,
                )
                self._listeners.fire("connection_failed", error=err)
                raise err from None
            if isinstance(exc, Exception):
                logger.warning(
                    "pool %r: connect failed: %s",
                    self.name,
                    _describe(exc, self._secrets),
                )
                self._listeners.fire("connection_failed", error=exc)
            raise
        self._opening -= 1
        self._probing = False
        if self._connect_error is not None:
            logger.warning("pool %r: the database answers again", self.name)
            self._connect_error = None
        server = None
        if isinstance(created, tuple) and len(created) == 3:
            _, _, conn = created
        elif isinstance(created, tuple) and len(created) == 4:
            _, _, conn, server = created
        else:
            conn = created
        now = monotonic()
        self._connections_opened += 1
        self._connect_time_total += now - start
        self._backoff.reset()
        rec = _Record(conn, now, self._expiry(now))
        rec.status = self._driver.status_getter(conn)
        rec.server = server
        rec.fresh_until = self._fresh_until(rec, now)
        logger.debug("pool %r: opened a connection in %.3fs", self.name, now - start)
        if self._listeners.connection_created:
            self._listeners.fire("connection_created", conn)
        self._ensure_maintenance()
        return rec

    def _expiry(self, now: float) -> float:
        if self.max_age is None:
            return _INF
        age = self.max_age
        if self.max_age_jitter:
            age *= 1 - self.max_age_jitter * random.random()
        return now + age

    # ------------------------------------------------------------------
    # validation
    def _validate(self, rec: _Record, deadline: float | None) -> bool:
        """Ping *rec*; True if it answered.  A dead one is discarded."""
        check = self.check
        timer = None
        remaining = None
        if deadline is not None:
            remaining = deadline - monotonic()
        if self.reset_timeout is not None and (
            remaining is None or remaining > self.reset_timeout
        ):
            remaining = self.reset_timeout
        self._pings += 1
        try:
            if remaining is not None:
                timer = _green.Timeout(max(remaining, 0.0))
            try:
                if check is not None:
                    result = check(rec.conn)
                    if result is False:
                        raise PoolError("check returned False")
                else:
                    self._driver.ping(rec.conn)
            finally:
                if timer is not None:
                    timer.cancel()
        except BaseException as exc:
            # A fired Timeout's traceback refers to this frame, which refers
            # to the Timeout: drop the local, or that cycle keeps the
            # connection (and, for a TpooledConnectionPool, whose OS thread
            # may still be inside the ping, its server session) alive until
            # the garbage collector runs.
            fired, timer = exc is timer, None
            self._ping_failures += 1
            self._discard(rec, "dead")
            if fired:
                logger.warning(
                    "pool %r: ping timed out; connection discarded", self.name
                )
                if deadline is not None and monotonic() >= deadline:
                    self._timeouts += 1
                    raise PoolTimeout(
                        "pool %r: no live connection within the caller's deadline"
                        % (self.name,),
                        self.name,
                    ) from None
                return False
            if not isinstance(exc, Exception):
                raise
            logger.warning(
                "pool %r: connection failed its check (%s); discarded",
                self.name,
                _describe(exc, self._secrets),
            )
            self._mark_suspects(rec)
            return False
        rec.suspect = False
        rec.pinged_at = monotonic()
        return True

    def _mark_suspects(self, failed: _Record | None = None) -> None:
        """A connection died: check the older idle ones before their next use."""
        for rec in self.free_items:
            if failed is None or rec.created_at <= failed.last_used:
                rec.suspect = True
                rec.fresh_until = 0.0

    # ------------------------------------------------------------------
    # checkin
    def put(self, conn: Any, cleanup: Any = _MISSING) -> None:
        """Return a connection to the pool.

        *cleanup* overrides the pool's reset for this return (``None``: no
        reset).  ``put(None)`` gives back a slot without a connection (for a
        connection that was lost).  A cleanup that raises an ordinary error
        discards the connection; KeyboardInterrupt and SystemExit propagate,
        and the slot is given back all the same.
        """
        if isinstance(conn, PooledConnectionWrapper):
            rec = conn._record
            if rec is None:
                own = conn._pool
                if own is not None and own is not self:
                    own.put(conn, cleanup)
                    return
                logger.debug(
                    "pool %r: put() of a connection already returned; ignored",
                    self.name,
                )
                return
            set_record(conn, None)
            if rec.__class__ is _Detached:
                # The caller unwrapped it (_unwrap_connection) and owns the
                # raw connection now: only the slot comes back.
                owner = rec.record.pool
                owner._forget(rec.record)
                if not owner._settle_abandoned():
                    owner._release_slot()
                return
            if rec.pool is not self:
                self._adopt(rec, cleanup)
                return
            spares = self._spares
            if spares is not None:
                # Kept for reuse; get() takes it only once nobody else holds it.
                spares.append(conn)
            # The fast path of _checkin(), inlined: nothing special about
            # this pool or this connection.
            now = monotonic()
            if (
                self._checkin_hooks
                or now >= rec.expires_at
                or rec.broken
                or rec.uses == self._max_uses
                or rec.generation != _fork_generation
                or (self._is_closed is not None and self._is_closed(rec.conn))
            ):
                self._checkin(rec, cleanup)
                return
            rec.last_used = now
            self._hold_time_total += now - rec.checkout_at
            if cleanup is _MISSING:
                cleanup = self.cleanup
            if cleanup is not None:
                raw = rec.conn
                status = rec.status
                if (
                    cleanup is cleanup_rollback
                    and status is not None
                    and status(raw) is False
                ):
                    self._resets_skipped += 1
                else:
                    self._resets += 1
                    try:
                        if self.reset_timeout is not None:
                            self._reset(cleanup, raw)
                        elif cleanup is cleanup_rollback:
                            raw.rollback()  # the same, one call less
                        else:
                            cleanup(raw)
                    except BaseException as exc:
                        self._reset_failed(rec, cleanup, exc)
                        if not isinstance(exc, Exception):
                            raise
                        return
            until = now + self._idle_window
            expires = rec.expires_at
            rec.fresh_until = (
                0.0 if rec.suspect else (until if until < expires else expires)
            )
            rec.pool = None
            if self._waiters:
                self._hand_off(rec)
            else:
                self.free_items.appendleft(rec)
            return
        if conn is None:
            self._give_up_slot()
            return
        # A raw connection: we cannot know its history, so never reuse it.
        logger.warning(
            "pool %r: put() of a %s, not a pooled connection: closing it and "
            "freeing one slot",
            self.name,
            type(conn).__name__,
        )
        self._safe_close(conn, quiet=True)
        self._give_up_slot()

    def _interchangeable(self, other: "BaseConnectionPool") -> bool:
        """True if *other* opens exactly the connections this pool opens."""
        try:
            return bool(
                other._db_module is self._db_module
                and other._kind == self._kind
                and other._servers is None
                and self._servers is None
                and other._args == self._args
                and other._kwargs == self._kwargs
            )
        except Exception:  # connect arguments that cannot be compared
            return False

    def _adopt(self, rec: _Record, cleanup: Any) -> None:
        """put() of a connection lent by another pool.

        eventlet's put() keeps whatever connection it is given.  Code (and
        eventlet's own tests) replace a pool, put the old pool's connection
        into the new one and clear() it, expecting the connection closed.
        So the old pool gives up the slot, and this pool keeps the
        connection if it opens the very same connections and has room;
        otherwise the connection is closed (never handed out by a pool that
        would not have opened it: another database, another driver).
        """
        owner = rec.pool
        owner._forget(rec)
        if not owner._settle_abandoned():
            owner._release_slot()
        if not self._interchangeable(owner):
            logger.warning(
                "pool %r: got a connection of pool %r, which opens other "
                "connections; closing it",
                self.name,
                owner.name,
            )
            owner._discard(rec, "foreign")
            return
        if self._closed or self.current_size >= self.max_size:  # type: ignore[operator]
            owner._discard(rec, "foreign")
            return
        logger.debug(
            "pool %r: took over a connection of pool %r", self.name, owner.name
        )
        self.current_size += 1
        rec.pool = self
        self._checkin(rec, cleanup)

    def _give_up_slot(self) -> None:
        """``put(None)``: the caller lost a lent connection; free its slot.

        The wrapper of that connection may still come back (put, close, or
        dropped): it is counted in ``_abandoned`` so that, when it does, it
        is closed instead of growing the pool beyond its slots.
        """
        if self.current_size - len(self.free_items) - self._opening <= 0:
            logger.warning(
                "pool %r: put(None) with no connection checked out; ignored", self.name
            )
            return
        self._abandoned += 1
        self._checkin_hooks = True
        self._release_slot()

    def _settle_abandoned(self) -> bool:
        """A lent connection came back: True if its slot was already given up."""
        if self._abandoned > 0:
            self._abandoned -= 1
            return True
        return False

    def _forget(self, rec: _Record) -> None:
        if self._in_use is not None:
            self._in_use.discard(rec)
        if rec.server is not None and self._servers is not None:
            self._servers.released(rec.server, "detached")

    def _checkin(self, rec: _Record, cleanup: Any) -> None:
        now = monotonic()
        rec.last_used = now
        self._hold_time_total += now - rec.checkout_at
        if self._in_use is not None:
            self._in_use.discard(rec)
        conn = rec.conn
        if self._abandoned and self._settle_abandoned():
            # Its slot went with an earlier put(None): close, free nothing.
            self._discard(rec, "abandoned")
            return
        if self._on_checked_in:
            self._listeners.fire("connection_checked_in", conn)
        if (
            self._checkin_special
            or rec.broken
            or now >= rec.expires_at
            or rec.uses == self._max_uses
            or rec.generation != _fork_generation
            or (self._is_closed is not None and self._is_closed(conn))
        ):
            reason = self._checkin_reason(rec, now)
            if reason is not None:
                if reason == "orphan":
                    _orphan(rec)
                    return
                if reason == "dead":
                    self._mark_suspects(rec)
                self._discard_and_release(rec, reason)
                return
        if cleanup is _MISSING:
            cleanup = self.cleanup
        if cleanup is not None:
            status = rec.status
            if (
                cleanup is cleanup_rollback
                and status is not None
                and status(conn) is False
            ):
                self._resets_skipped += 1
            else:
                self._resets += 1
                try:
                    if self.reset_timeout is None:
                        cleanup(conn)
                    else:
                        self._reset(cleanup, conn)
                except BaseException as exc:
                    self._reset_failed(rec, cleanup, exc)
                    if not isinstance(exc, Exception):
                        raise
                    return
        rec.fresh_until = self._fresh_until(rec, now)
        # Only a lent record points at its pool (for its wrapper): idle ones
        # must not, or the finalizer, which holds free_items, would keep the
        # pool alive forever.  Checkout sets it again.
        rec.pool = None
        if self._waiters:
            self._hand_off(rec)
        else:
            self.free_items.appendleft(rec)

    def _reset_failed(self, rec: _Record, cleanup: Any, exc: BaseException) -> None:
        """The reset of a returning connection raised *exc*: discard it.

        KeyboardInterrupt, SystemExit, a green Timeout or kill leave the
        connection's state unknown; the caller re-raises them.  The slot is
        given back in every case.
        """
        if not isinstance(exc, Exception):
            self._discard_and_release(rec, "reset_failed")
            return
        logger.warning(
            "pool %r: cleanup %s raised %s; connection discarded",
            self.name,
            getattr(cleanup, "__name__", cleanup),
            _describe(exc, self._secrets),
        )
        # A reset that failed because the connection is gone (a driver
        # without a "closed" flag, such as MySQLdb, only tells us here) is a
        # disconnect: the idle connections older than it are checked before
        # their next use.
        if not isinstance(exc, PoolError) and self.is_disconnect(exc, rec.conn):
            self._mark_suspects(rec)
            self._discard_and_release(rec, "dead")
        else:
            self._discard_and_release(rec, "reset_failed")

    def _discard_and_release(self, rec: _Record, reason: str) -> None:
        """Close *rec* and give its slot back.

        The close may yield (a tpool call, a slow driver); a caller killed or
        timed out a second time meanwhile must not take the slot with it.
        """
        try:
            self._discard(rec, reason)
        finally:
            self._release_slot()

    def _checkin_reason(self, rec: _Record, now: float) -> str | None:
        """Why a returning connection must be closed, or None to keep it."""
        if rec.generation != _fork_generation:
            return "orphan"
        if self._closed:
            return "pool_closed"
        if self.current_size > self.max_size:  # type: ignore[operator]
            return "resize"
        if rec.broken or (self._is_closed is not None and self._is_closed(rec.conn)):
            return "dead"
        if self._close_on_return:
            return "age" if self.max_age == 0 else "idle"
        if now >= rec.expires_at:
            return "age"
        if self.max_uses is not None and rec.uses >= self.max_uses:
            return "uses"
        return None

    def _update_checkin_special(self) -> None:
        """Recompute the flag that sends every checkin down the careful path."""
        self._checkin_special = (
            self._closed or self._close_on_return or self.current_size > self.max_size  # type: ignore[operator]
        )
        self._update_hooks()

    def _reset(self, cleanup: Callable[[Any], Any], conn: Any) -> None:
        """Run *cleanup* on *conn* within ``reset_timeout``.

        Every return of a connection to a network driver runs this, so the
        deadline is not an ``eventlet.Timeout`` each (a hub timer each,
        cancelled a moment later, that stays in the hub's heap until it
        would have fired: at thousands of returns a second the heap grows
        and every timer operation of the process slows down).  Instead the
        resetting green thread is registered in ``_resets_running`` and one
        watchdog timer per pool, due at the oldest deadline, interrupts
        those that overran.
        """
        running = self._resets_running
        me = _green.current_greenlet()
        running[me] = monotonic() + self.reset_timeout  # type: ignore[operator]
        if self._watchdog is None:
            self._arm_reset_watchdog()
        try:
            cleanup(conn)
        except _ResetOverran as exc:
            if exc.pool is not self:
                raise
            raise self._reset_overran() from None
        finally:
            running.pop(me, None)

    def _arm_reset_watchdog(self) -> None:
        """Have the reset watchdog run once ``reset_timeout`` has passed."""
        self._watchdog = _green.get_hub().schedule_call_global(
            self.reset_timeout, _run_watchdog, weakref.ref(self), "_watch_resets"
        )

    def _reset_overran(self) -> PoolError:
        """The error of a reset that our watchdog interrupted."""
        return PoolError(
            "reset did not finish within %gs" % (self.reset_timeout,), self.name
        )

    def _watch_resets(self) -> None:
        """Hub timer: interrupt the resets past their deadline, then re-arm."""
        self._watchdog = None
        running = self._resets_running
        now = monotonic()
        # Oldest first (dicts keep insertion order; deadlines only grow).
        for greenlet, deadline in list(running.items()):
            if deadline > now:
                break
            if running.get(greenlet) == deadline and not greenlet.dead:
                running.pop(greenlet, None)
                greenlet.throw(_ResetOverran(self))
        if running:
            oldest = next(iter(running.values()))
            self._watchdog = _green.get_hub().schedule_call_global(
                max(oldest - monotonic(), 0.0),
                _run_watchdog,
                weakref.ref(self),
                "_watch_resets",
            )

    def _note_error(self, wrapper: Any, exc: BaseException) -> None:
        """An error left a ``with`` block: if it means a dead connection, mark it."""
        rec = getattr(wrapper, "_record", None)
        if rec is None or rec.__class__ is _Detached:
            return
        if self.is_disconnect(exc, rec.conn):
            rec.broken = True
        elif not isinstance(exc, Exception):
            # Killed or timed out mid-query: the session state is unknown.
            rec.broken = True

    def is_disconnect(self, exc: BaseException, conn: Any = None) -> bool:
        """True when *exc* (raised while using *conn*) means the connection died."""
        hook = self.is_disconnect_hook
        if hook is not None:
            try:
                verdict = hook(exc)
            except Exception:
                logger.exception("pool %r: is_disconnect hook raised", self.name)
                verdict = None
            if verdict is not None:
                return bool(verdict)
        return self._driver.is_disconnect(exc, conn)

    # ------------------------------------------------------------------
    # disposal
    def _discard(self, rec: _Record, reason: str) -> None:
        """Close a record's connection (its slot is the caller's business)."""
        if self._in_use is not None:
            self._in_use.discard(rec)
        if rec.generation != _fork_generation:
            _orphan(rec)
            return
        if rec.server is not None and self._servers is not None:
            self._servers.released(rec.server, reason)
        if reason == "dead":
            self._discarded_dead += 1
        elif reason == "reset_failed":
            self._discarded_reset_failed += 1
        elif reason == "idle":
            self._expired_idle += 1
        elif reason == "age":
            self._expired_age += 1
        elif reason == "uses":
            self._recycled_uses += 1
        log = (
            logger.warning
            if reason in ("dead", "reset_failed", "error")
            else logger.debug
        )
        log("pool %r: closing a connection (%s)", self.name, reason)
        self._close_raw(rec.conn)
        if reason == "uses" and self._listeners.connection_recycled:
            self._listeners.fire("connection_recycled", rec.conn, reason)
        if self._listeners.connection_disposed:
            self._listeners.fire("connection_disposed", rec.conn, reason)

    def _close_raw(self, conn: Any) -> None:
        self._connections_closed += 1
        if self.reset_timeout is None:
            self._safe_close(conn, quiet=True)
            return
        timer = _green.Timeout(self.reset_timeout)
        try:
            self._safe_close(conn, quiet=True)
        except _green.Timeout as exc:
            if exc is not timer:
                raise
            logger.warning("pool %r: close() did not finish; abandoned", self.name)
        finally:
            timer.cancel()
            timer = None  # break the frame <-> fired Timeout cycle (see _validate)

    def _unwrap_connection(self, conn: Any) -> Any:
        """The raw connection inside *conn*, or None for junk.

        Anything with a ``_base`` attribute is unwrapped (duck typing, as
        eventlet); a pooled wrapper is emptied, and its slot stays taken until
        the wrapper is put back.
        """
        try:
            if not conn:
                return None
            base = conn._base
        except AttributeError:
            return None
        try:
            conn._destroy()
        except AttributeError:
            pass
        return base

    def _safe_close(self, conn: Any, quiet: bool = False) -> None:
        """Close *conn*, swallowing ordinary errors (KeyboardInterrupt passes)."""
        try:
            conn.close()
        except AttributeError:
            pass  # None, or junk
        except Exception as exc:
            if not quiet:
                logger.warning(
                    "pool %r: connection close() raised %s",
                    self.name,
                    _describe(exc, self._secrets),
                )
            # An error raised through eventlet.tpool sits in a reference
            # cycle with the frames of its traceback, which hold *conn*:
            # let go of them, so that a connection whose close() failed
            # (mysqlclient refuses while an OS thread is still inside a
            # call we gave up on) is closed as soon as that call returns.
            exc.__traceback__ = None

    def clear(self) -> None:
        """Close every idle connection and forget it (``current_size`` drops).

        A pool with ``min_size`` opens no new connection until it is used
        again (eventlet never reopens them).
        """
        items = list(self.free_items)
        self.free_items.clear()
        # As in eventlet, a cleared pool stays empty until it is used again:
        # no min_size refill meanwhile (code clears a pool before dropping
        # its database, or to let a restarted server go).
        if self.min_size:
            self._refill_paused = self._checkouts
        for rec in items:
            self.current_size -= 1
            self._discard(rec, "cleared")

    def close(self) -> None:
        """Close the pool.

        Idle connections are closed now, lent ones when they come back;
        waiters and later ``get()`` calls get :class:`PoolClosed`.
        """
        if self._closed:
            return
        self._closed = True
        self._checkin_special = True
        self._checkin_hooks = True
        while self._waiters:
            self._hand_off(_CLOSED)
        self.clear()
        self._finalizer.detach()
        _all_pools.discard(self)
        logger.debug("pool %r closed", self.name)
        self._listeners.fire("pool_disposed")

    def __enter__(self) -> "BaseConnectionPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------
    # leases
    def item(self, cleanup: Any = _MISSING) -> _Lease:
        """Context manager: check out a connection, return it on exit."""
        return _Lease(self, cleanup, _DEFAULT)

    def connection(self, timeout: Any = _DEFAULT, cleanup: Any = _MISSING) -> _Lease:
        """``with pool.connection() as conn:`` -- the idiomatic lease.

        With ``reentrant=True``, a nested ``connection()`` in the same green
        thread gets the same connection, returned when the outermost block
        ends.  An error that means the connection died discards it.
        """
        return _Lease(self, cleanup, timeout)

    def execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(conn, *args, **kwargs)`` on a pooled connection.

        With ``max_retries=N``, when *fn* fails because the connection died,
        the connection is discarded and *fn* runs again on another one, up
        to N times; then :class:`MaximumRetryException` is raised with the
        last error chained.  Only for idempotent work.
        """
        attempts = 0
        while True:
            conn = self._checkout(True, _DEFAULT, 2)
            try:
                result = fn(conn, *args, **kwargs)
            except BaseException as exc:
                dead = isinstance(exc, Exception) and self.is_disconnect(
                    exc, conn._record.conn if conn._record is not None else None
                )
                if dead and conn._record is not None:
                    conn._record.broken = True
                elif not isinstance(exc, Exception) and conn._record is not None:
                    conn._record.broken = True
                lost_server = getattr(conn._record, "server", None)
                self.put(conn)
                if not dead:
                    raise
                attempts += 1
                if attempts > self.max_retries:
                    if self.max_retries == 0:
                        raise
                    raise MaximumRetryException(
                        "pool %r: gave up after %d attempts: %s"
                        % (self.name, attempts, _describe(exc, self._secrets)),
                        self.name,
                        attempts,
                    ) from exc
                logger.warning(
                    "pool %r: connection died in execute(); retry %d of %d",
                    self.name,
                    attempts,
                    self.max_retries,
                )
                if lost_server is not None:
                    # Retry on another server where there is one: an idle
                    # connection of another server goes first in line (and
                    # the server list puts lost_server last for new ones).
                    for i, other in enumerate(self.free_items):
                        if other.server is not lost_server:
                            if i:
                                del self.free_items[i]
                                self.free_items.appendleft(other)
                            break
                continue
            self.put(conn)
            return result

    # ------------------------------------------------------------------
    # resizing
    def resize(
        self,
        new_size: int | None = None,
        *,
        min_size: int | None = None,
        max_size: int | None = None,
    ) -> None:
        """Change the sizes at run time (``resize(n)`` sets ``max_size``).

        Shrinking closes idle connections first and never takes one from a
        holder: surplus lent connections are closed when they come back.
        """
        if new_size is not None:
            if max_size is not None:
                raise TypeError("give max_size once, positionally or by keyword")
            max_size = new_size
        new_max = (
            self.max_size if max_size is None else check_int("max_size", max_size, 1)
        )
        new_min = (
            self.min_size if min_size is None else check_int("min_size", min_size, 0)
        )
        if new_min > new_max:  # type: ignore[operator]
            raise ConfigError(
                "min_size (%r) must not be greater than max_size (%r)"
                % (new_min, new_max)
            )
        self.min_size, self.max_size = new_min, new_max
        if min_size is not None:
            self._refill_paused = None
        self._checkin_special = True  # until the next maintenance round
        self._checkin_hooks = True
        self._ensure_maintenance()
        # Shrink: close idle connections beyond the new maximum, oldest first.
        while self.current_size > self.max_size and self.free_items:  # type: ignore[operator]
            rec = self.free_items.pop()
            self.current_size -= 1
            self._discard(rec, "resize")
        # Grow: let waiters open connections in the new room.
        while self._waiters and self.current_size < self.max_size:  # type: ignore[operator]
            self.current_size += 1
            self._hand_off(None)
        if self.current_size < self.min_size:  # type: ignore[operator]
            self._ensure_maintenance()

    # ------------------------------------------------------------------
    # dropped wrappers
    def _reclaim_dropped(self, rec: _Record, has_conn: bool) -> None:
        """Called from a wrapper's ``__del__``: no I/O, just schedule."""
        self._dropped.append((rec, rec.where, has_conn))
        try:
            _green.call_soon_global(_green.spawn_n, self._process_dropped)
        except Exception:  # interpreter shutdown
            pass

    def _process_dropped(self) -> None:
        while self._dropped:
            rec, where, has_conn = self._dropped.popleft()
            self._leaks_reclaimed += 1
            site = _format_site(where)
            msg = (
                "pool %r: a connection checked out at %s was dropped without "
                "being returned; reclaimed" % (self.name, site)
            )
            if has_conn:
                # Roll back whatever it was doing, exactly as a put() would.
                self._checkin(rec, _MISSING)
            else:
                self._forget(rec)
                if not self._settle_abandoned():
                    self._release_slot()
            logger.warning(msg)
            try:
                warnings.warn(msg, ConnectionLeakWarning, stacklevel=1)
            except Warning:
                # Warnings turned into errors must not kill the reclaimer.
                pass

    # ------------------------------------------------------------------
    # background maintenance
    def _ensure_maintenance(self) -> None:
        if self._maintenance is None and not self._closed:
            self._maintenance = _green.spawn_n(_maintenance_loop, weakref.ref(self))

    def _maintain(self) -> float | None:
        """One round of background work; returns the delay to the next one."""
        if self._closed:
            self._maintenance = None
            return None
        self._update_checkin_special()
        now = monotonic()
        next_due = now + 1.0
        # Expire idle connections (max_idle / max_age), least recently used first.
        if self.free_items:
            keep: deque[_Record] = deque()
            expired: list[tuple[_Record, str]] = []
            for rec in self.free_items:
                reason = self._expired(rec, now)
                if reason is None:
                    keep.append(rec)
                else:
                    expired.append((rec, reason))
            if expired:
                self.free_items.clear()
                self.free_items.extend(keep)
                for rec, reason in expired:
                    self.current_size -= 1
                    self._discard(rec, reason)
            for rec in self.free_items:
                due = rec.expires_at
                if self.max_idle is not None:
                    due = min(due, rec.last_used + self.max_idle)
                next_due = min(next_due, due)
        # Keep-alive pings of idle connections.
        if self.keepalive is not None:
            stale = [
                rec
                for rec in self.free_items
                if now - max(rec.last_used, rec.pinged_at) >= self.keepalive
            ]
            for rec in stale:
                try:
                    self.free_items.remove(rec)
                except ValueError:
                    continue  # taken meanwhile
                if self._validate(rec, None):
                    if not self._hand_off(rec):
                        self.free_items.append(rec)
                else:
                    self._release_slot()
            next_due = min(next_due, now + self.keepalive)
        # Leak warnings.
        if self._in_use is not None and self.leak_timeout is not None:
            for rec in list(self._in_use):
                held = now - rec.checkout_at
                if held >= self.leak_timeout and not rec.leak_warned:
                    rec.leak_warned = True
                    self._leaks_reported += 1
                    stack = "".join(traceback.format_list(rec.stack or []))
                    logger.warning(
                        "pool %r: a connection has been checked out for %.1fs "
                        "(leak_timeout=%gs); checked out at:\n%s",
                        self.name,
                        held,
                        self.leak_timeout,
                        stack,
                    )
                elif not rec.leak_warned:
                    next_due = min(next_due, rec.checkout_at + self.leak_timeout)
        # Refill to min_size, with backoff after failures.
        if (
            self.current_size < self.min_size  # type: ignore[operator]
            and not self._waiters
            and (self._refill_paused is None or self._refill_paused != self._checkouts)
            and now >= self._next_refill
        ):
            self.current_size += 1
            try:
                rec = self._open(None)
            except Exception:
                self._release_slot()
                self._next_refill = monotonic() + max(self._refill_delay, 0.01)
                next_due = min(next_due, self._next_refill)
            else:
                self._return_record(rec)
                next_due = now  # go on filling
        if self.current_size == 0 and self.min_size == 0 and not self._dropped:
            self._maintenance = None
            return None
        return max(0.005, min(next_due - monotonic(), 1.0))

    # ------------------------------------------------------------------
    # fork safety
    def _after_fork_in_child(self) -> None:
        for rec in self.free_items:
            _orphan(rec)
        self.free_items.clear()
        self.current_size = 0
        self._opening = 0
        self._waiters.clear()
        self._wait_watch = None
        self._wait_watch_due = None
        self._leases.clear()
        self._abandoned = 0
        if self._in_use is not None:
            self._in_use.clear()
        self._maintenance = None
        if self.min_size:
            self._ensure_maintenance()


def _orphan(rec: _Record) -> None:
    """Keep a parent's connection away from the child for good.

    Its socket descriptor is pointed at /dev/null so that nothing the child
    does, not even the driver's own finaliser, can reach the parent's
    session; the object is kept referenced so it is never finalised.
    """
    # The driver's own object, not a tpool.Proxy: through the proxy,
    # fileno() is a call into eventlet's thread pool, whose threads do not
    # exist in the child, and this (at-fork) hook would never return.
    conn = _unproxy(rec.conn)
    fd = None
    for getter in (
        lambda c: c.fileno(),
        lambda c: c._sock.fileno(),
    ):
        try:
            fd = getter(conn)
            if isinstance(fd, int) and fd >= 0:
                break
            fd = None
        except Exception:
            fd = None
    if fd is not None:
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
        except OSError:
            pass
    _inherited.append(rec)


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1
    for pool in list(_all_pools):
        try:
            pool._after_fork_in_child()
        except Exception:  # pragma: no cover - never let a fork fail
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _install_speedups() -> bool:
    """Put the C fast paths of get() and put() in place, if they were built.

    ``DB_POOL_PURE_PYTHON=1`` in the environment keeps the Python ones (the
    test suite runs over both).
    """
    if os.environ.get("DB_POOL_PURE_PYTHON", "") not in ("", "0"):
        return False
    if _UNREFERENCED is None:
        # Not CPython with a GIL: the C code's reference-count test of a
        # returned wrapper would prove nothing there.
        return False
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return False
    try:
        _speedups.install(
            BaseConnectionPool, _Record, PooledConnectionWrapper, _Waiter, globals()
        )
    except Exception as exc:  # an extension that does not fit this code
        logger.warning(
            "db_pool._speedups could not be installed (%s); using the Python "
            "get() and put()",
            exc,
        )
        return False
    return True


#: True when get() and put() run their fast paths in C (db_pool._speedups).
SPEEDUPS = _install_speedups()


def _format_site(code: Any) -> str:
    if code is None:
        return "an unknown place"
    return "%s() in %s (function starting at line %d)" % (
        code.co_name,
        code.co_filename,
        code.co_firstlineno,
    )


def _describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line about *exc*, safe to log: type and message, secrets removed."""

    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if not first:
        return type(exc).__name__
    return "%s: %s" % (type(exc).__name__, redact(first, secrets))
