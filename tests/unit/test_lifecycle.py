"""No background timer or green thread keeps a pool alive once the program
drops it (its idle connections are closed then); closing a pool stops its
background work.  And the exception hierarchy: a PoolError root, context
in attributes, pickling."""

from __future__ import annotations

import gc
import pickle
import weakref

import eventlet
import pytest

import db_pool
from tests.common.test_compat import wait_until
from tests.fakedb import FakeDB


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"min_size": 2},
        {"min_size": 1, "keepalive": 0.01, "max_idle": 0.05, "max_age": 0.2},
        {"leak_timeout": 0.01, "pre_ping": True},
    ],
    ids=["plain", "min_size", "timers", "leak-watch"],
)
@pytest.mark.parametrize(
    "pool_cls",
    [db_pool.RawConnectionPool, db_pool.TpooledConnectionPool],
    ids=["raw", "tpooled"],
)
def test_a_dropped_pool_is_collected_and_its_idle_connections_closed(pool_cls, options):
    db = FakeDB()
    pool = pool_cls(db, max_size=3, **options)
    conns = [pool.get(), pool.get()]
    for c in conns:
        pool.put(c)
    del conns, c
    eventlet.sleep(0.03)  # let the background work get going
    assert db.open_count >= 1
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    eventlet.sleep(0.05)
    gc.collect()
    assert ref() is None, gc.get_referrers(ref())
    wait_until(lambda: db.open_count == 0, timeout=3)
    connects = db.connect_calls
    eventlet.sleep(0.1)
    assert db.connect_calls == connects  # no refill from beyond the grave


def test_close_stops_the_background_work(fake_db):
    pool = db_pool.RawConnectionPool(
        fake_db, min_size=2, max_size=3, keepalive=0.01, max_idle=0.02
    )
    wait_until(lambda: len(pool.free_items) == 2)
    pool.close()
    calls, pings = fake_db.connect_calls, sum(c.pings for c in fake_db.connections)
    eventlet.sleep(0.1)
    assert fake_db.connect_calls == calls
    assert sum(c.pings for c in fake_db.connections) == pings
    assert fake_db.open_count == 0


# -- exceptions ----------------------------------------------------------------


def test_exception_hierarchy():
    for cls in (
        db_pool.PoolTimeout,
        db_pool.PoolClosed,
        db_pool.TooManyWaiters,
        db_pool.ConnectTimeout,
        db_pool.ConfigError,
        db_pool.AllServersUnavailable,
        db_pool.MaximumRetryException,
        db_pool.ConnectionReturnedError,
    ):
        assert issubclass(cls, db_pool.PoolError), cls
        assert cls.__module__ == "db_pool"
    assert issubclass(db_pool.PoolError, Exception)
    assert issubclass(db_pool.ConfigError, ValueError)
    assert issubclass(db_pool.ConnectionReturnedError, AttributeError)
    assert issubclass(db_pool.ConnectionLeakWarning, db_pool.PoolWarning)
    assert issubclass(db_pool.ConnectionLeakWarning, ResourceWarning)


def test_errors_keep_their_context_and_pickle(fake_db):
    pool = db_pool.RawConnectionPool(fake_db, max_size=1, name="ctx")
    held = pool.get()
    try:
        with pytest.raises(db_pool.PoolTimeout) as info:
            pool.get(timeout=0.01)
    finally:
        pool.put(held)
        pool.close()
    error = info.value
    assert (error.pool_name, error.timeout) == ("ctx", 0.01)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is db_pool.PoolTimeout
    assert (str(copy), copy.pool_name, copy.timeout) == (str(error), "ctx", 0.01)
    for exc in (
        db_pool.PoolClosed("closed", "p"),
        db_pool.TooManyWaiters("full", "p"),
        db_pool.ConnectTimeout("slow", "p"),
        db_pool.ConfigError("bad", "p"),
    ):
        copy = pickle.loads(pickle.dumps(exc))
        assert type(copy) is type(exc)
        assert (str(copy), copy.pool_name) == (str(exc), "p")
