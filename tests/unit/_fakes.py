"""Extra fakes for the unit and common suites, on top of tests/fakedb.py.

- :class:`CtxFakeDB`: connections that are their own context manager (as
  psycopg2's and sqlite3's are) and whose ``repr`` shows the DSN they were
  opened with (as some drivers' do), password included.
- :class:`HolderTracker`: records which green thread holds which raw
  connection, and fails loudly if two hold the same one at once.
- :func:`raw_of`: the fake connection behind a wrapper, whatever the pool
  variant (a TpooledConnectionPool hands out ``tpool.Proxy`` objects).
- :class:`ManagedPools`: makes pools for a test and closes them afterwards.
"""

from __future__ import annotations

import eventlet
import eventlet.tpool
from greenlet import getcurrent

from tests.fakedb import FakeDB

__all__ = ["CtxFakeDB", "HolderTracker", "ManagedPools", "raw_of", "unproxy"]


def unproxy(conn):
    """*conn* without an eventlet ``tpool.Proxy`` around it."""
    if isinstance(conn, eventlet.tpool.Proxy):
        return conn._obj
    return conn


def raw_of(wrapper):
    """The fake connection lent through *wrapper* (None once returned)."""
    base = wrapper._base
    return None if base is None else unproxy(base)


class _CtxMixin:
    """The driver's own context manager: commit on success, roll back on error."""

    entered = 0
    exits = ()

    def __enter__(self):
        self._check()
        self.entered += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        self.exits = self.exits + ((exc_type,),)
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False

    def __repr__(self):
        # Like a driver that shows its connection string, secrets and all.
        dsn = " ".join("%s=%s" % kv for kv in sorted(self.kwargs.items()))
        return "<%s #%d dsn=%r>" % (type(self).__name__, self.id, dsn)


_ctx_classes = {}


def _ctx_class(cls):
    if cls not in _ctx_classes:
        _ctx_classes[cls] = type("Ctx" + cls.__name__, (_CtxMixin, cls), {})
    return _ctx_classes[cls]


class CtxFakeDB(FakeDB):
    """A :class:`FakeDB` whose connections have ``__enter__``/``__exit__``."""

    def connect(self, *args, **kwargs):
        conn = super().connect(*args, **kwargs)
        # Same layout, one more base class: swapping the class is safe.
        conn.__class__ = _ctx_class(type(conn))
        return conn


class HolderTracker:
    """Who holds which raw connection, checked at every change.

    ``acquire(raw)`` right after a checkout, ``release(raw)`` right before
    the return.  A second ``acquire`` of a connection already held is
    recorded in ``overlaps`` (and the test fails on it).
    """

    def __init__(self):
        self.holder = {}
        self.overlaps = []
        self.acquired = 0

    def acquire(self, raw):
        me = getcurrent()
        other = self.holder.get(id(raw))
        if other is not None:
            self.overlaps.append((raw, other, me))
        self.holder[id(raw)] = me
        self.acquired += 1

    def release(self, raw):
        if self.holder.get(id(raw)) is getcurrent():
            del self.holder[id(raw)]

    def held(self):
        return len(self.holder)


class ManagedPools:
    """Makes pools and closes every one of them when the test ends."""

    def __init__(self):
        self.pools = []
        self.dbs = []

    def __call__(self, cls, db, *args, **kwargs):
        pool = cls(db, *args, **kwargs)
        self.pools.append(pool)
        return pool

    def close_all(self):
        for db in self.dbs:
            db.release()
        for pool in self.pools:
            pool.close()
        # Let background green threads notice the close and end.
        eventlet.sleep(0)


# -- fixtures (imported by tests/unit/conftest.py and tests/common/conftest.py) --

import pytest  # noqa: E402


@pytest.fixture
def db():
    """A fresh :class:`tests.fakedb.FakeDB`, released (un-hung) at the end."""
    fake = FakeDB()
    try:
        yield fake
    finally:
        fake.release()


@pytest.fixture
def make_pool():
    """``make_pool(cls, db, *args, **kwargs)``: a pool closed after the test."""
    pools = ManagedPools()
    try:
        yield pools
    finally:
        pools.close_all()


_threading = eventlet.patcher.original("threading")
_time = eventlet.patcher.original("time")


def any_sleep(seconds):
    """A green sleep in the hub's thread, a real one in a tpool thread."""
    if _threading.current_thread() is _threading.main_thread():
        eventlet.sleep(seconds)
    else:
        _time.sleep(seconds)


def make_close_slow(raw, seconds):
    """Make ``raw.close()`` take *seconds* before it closes."""
    real_close = raw.close

    def slow_close():
        any_sleep(seconds)
        real_close()

    raw.close = slow_close
