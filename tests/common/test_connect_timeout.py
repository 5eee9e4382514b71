"""connect_timeout fires against a connect that hangs (ConnectTimeout), and
the deadline of get(timeout=...) covers connecting (PoolTimeout); neither
loses a slot."""

from __future__ import annotations

import time

import eventlet
import pytest

import db_pool
from tests.common.test_compat import settle, spawn_getter


def test_connect_timeout_fires(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, connect_timeout=0.1)
    db.hang = True
    start = time.monotonic()
    with pytest.raises(db_pool.ConnectTimeout) as info:
        pool.get()
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 2
    assert isinstance(info.value, db_pool.PoolError)
    assert "connect_timeout" in str(info.value) or "0.1" in str(info.value)
    assert pool.current_size == 0
    assert pool.free() == 1
    assert pool.stats()["opening"] == 0
    assert pool.stats()["connect_failures"] == 1


def test_pool_recovers_after_a_connect_timeout(pool_cls, db, make_pool):
    pool = make_pool(
        pool_cls, db, max_size=1, connect_timeout=0.05, reconnect_delay=(0.001, 0.002)
    )
    db.hang = True
    with pytest.raises(db_pool.ConnectTimeout):
        pool.get()
    db.release()
    eventlet.sleep(0.01)  # past the reconnect backoff
    conn = pool.get()
    assert conn
    pool.put(conn)


def test_classmethod_connect_honours_connect_timeout(pool_cls, db):
    db.hang = True
    with pytest.raises(db_pool.ConnectTimeout):
        pool_cls.connect(db, 0.05)


def test_get_deadline_covers_connecting(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, connect_timeout=5)
    db.hang = True
    start = time.monotonic()
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(timeout=0.1)
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 2
    assert pool.current_size == 0
    assert pool.stats()["opening"] == 0


def test_pool_timeout_covers_waiting_then_connecting(pool_cls, db, make_pool):
    """One deadline for the whole checkout: time spent waiting counts
    against the time left for connecting."""
    pool = make_pool(pool_cls, db, max_size=1, connect_timeout=5, pool_timeout=0.3)
    held = pool.get()
    db.hang = True
    thread, done = spawn_getter(pool)
    settle()
    start = time.monotonic()
    eventlet.sleep(0.15)
    pool.put(None)  # the waiter must now connect, and connecting hangs
    with pytest.raises(db_pool.PoolTimeout):
        done.wait()
    assert time.monotonic() - start < 1.5
    assert pool.current_size == 0
    del held


def test_waiter_behind_a_hung_connect_gets_its_turn(pool_cls, db, make_pool):
    pool = make_pool(
        pool_cls, db, max_size=1, connect_timeout=0.1, reconnect_delay=(0.001, 0.002)
    )
    db.hang = True
    first, first_done = spawn_getter(pool)
    settle()
    second, second_done = spawn_getter(pool, timeout=3)
    settle()
    assert pool.waiting() == 1
    with pytest.raises(db_pool.ConnectTimeout):
        first_done.wait()
    db.release()
    # The slot passed to the waiter: it connects (or gets the connect error
    # at once while the pool backs off), but is never left waiting.
    try:
        conn = second_done.wait()
    except db_pool.ConnectTimeout:
        assert pool.free() == 1
    else:
        pool.put(conn)
    assert pool.waiting() == 0


def test_killed_while_connecting(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, connect_timeout=None)
    db.hang = True
    thread, done = spawn_getter(pool)
    settle()
    eventlet.sleep(0.02)
    assert pool.stats()["opening"] == 1
    thread.kill()
    assert pool.stats()["opening"] == 0
    assert pool.current_size == 0 and pool.free() == 1
