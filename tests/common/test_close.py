"""pool.close(): idle connections closed now, lent ones when they come
back, get() raises PoolClosed, waiters are woken with PoolClosed."""

from __future__ import annotations

import gc

import eventlet
import pytest

import db_pool
from tests.common.test_compat import settle, spawn_getter, wait_until
from tests.unit._fakes import raw_of


def test_close_closes_idle_connections_now(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=3, min_size=2)
    assert db.open_count == 2
    pool.close()
    assert db.open_count == 0
    assert pool.closed
    assert pool.current_size == 0
    assert len(pool.free_items) == 0
    assert pool.stats()["closed"] is True
    assert "closed" in repr(pool)


def test_lent_connections_are_closed_when_returned(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    a, b = pool.get(), pool.get()
    raw_a, raw_b = raw_of(a), raw_of(b)
    pool.close()
    assert not raw_a.closed and not raw_b.closed  # a holder is never robbed
    a.cursor().execute("SELECT 1")
    pool.put(a)
    assert raw_a.closed
    b.close()
    assert raw_b.closed
    assert pool.current_size == 0
    assert db.open_count == 0


def test_get_after_close_raises_pool_closed(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    pool.put(pool.get())
    pool.close()
    for attempt in (pool.get, pool.get_nowait, lambda: pool.get(timeout=1)):
        with pytest.raises(db_pool.PoolClosed) as info:
            attempt()
        assert isinstance(info.value, db_pool.PoolError)
    with pytest.raises(db_pool.PoolClosed):
        with pool.connection():
            pass
    assert db.connect_calls == 1


def test_waiters_are_woken_with_pool_closed(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    waiters = [spawn_getter(pool) for _ in range(3)]
    settle()
    assert pool.waiting() == 3
    pool.close()
    for _thread, done in waiters:
        with eventlet.Timeout(2):
            with pytest.raises(db_pool.PoolClosed):
                done.wait()
    assert pool.waiting() == 0
    pool.put(held)
    assert pool.current_size == 0
    assert db.open_count == 0


def test_close_is_idempotent(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    pool.put(pool.get())
    pool.close()
    pool.close()
    assert pool.closed


def test_pool_is_a_context_manager_that_closes(pool_cls, db):
    with pool_cls(db, max_size=2) as pool:
        pool.put(pool.get())
        assert db.open_count == 1
    assert pool.closed
    assert db.open_count == 0


def test_dropped_wrapper_of_a_closed_pool_is_closed(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = raw_of(conn)
    pool.close()
    with pytest.warns(db_pool.ConnectionLeakWarning):
        del conn
        gc.collect()
        wait_until(lambda: raw.closed)
    assert pool.current_size == 0


def test_closed_pool_stops_its_background_work(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2, min_size=1, max_idle=0.05)
    pool.close()
    connects = db.connect_calls
    eventlet.sleep(0.2)  # a live pool would refill min_size after max_idle
    assert db.connect_calls == connects
    assert db.open_count == 0
