"""Callers interrupted (killed, timed out) at the worst moments lose
nothing: not while waiting, not while the pool hands them a connection, not
while returning one, not even when interrupted a second time while the
pool cleans up after the first interruption."""

from __future__ import annotations

import eventlet
import eventlet.greenthread
import pytest

import db_pool
from tests.common.test_compat import settle, spawn_getter, wait_until
from tests.unit._fakes import make_close_slow, raw_of


def test_waiter_killed_after_being_handed_a_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    raw = raw_of(held)
    first, first_done = spawn_getter(pool)
    second, second_done = spawn_getter(pool)
    settle()
    pool.put(held)  # promised to `first`, which has not run yet
    first.kill()
    # The connection passes on to the next in line instead of being lost.
    got = second_done.wait()
    assert raw_of(got) is raw
    pool.put(got)
    assert pool.free() == 1 and pool.waiting() == 0


def test_waiter_timed_out_as_it_is_served(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    thread, done = spawn_getter(pool, timeout=0.05)
    settle()
    eventlet.sleep(0.06)  # its timer is due; the hub has not fired it yet
    pool.put(held)
    try:
        pool.put(done.wait())
    except db_pool.PoolTimeout:
        pass
    assert pool.free() == 1
    assert len(pool.free_items) == 1


def test_timeout_inside_put_loses_nothing(pool_cls, db, make_pool):
    """eventlet.db_pool loses the connection for good when this happens."""
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = raw_of(conn)
    raw.rollback_delay = 0.5
    with pytest.raises(eventlet.Timeout):
        with eventlet.Timeout(0.02):
            pool.put(conn)
    wait_until(lambda: pool.free() == 1)
    assert pool.current_size in (0, 1)
    again = pool.get(timeout=2)
    pool.put(again)


def test_killed_while_returning_with_a_waiter(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    ready = eventlet.Event()

    def holder():
        conn = pool.get()
        raw_of(conn).rollback_delay = 0.5
        ready.send()
        pool.put(conn)

    thread = eventlet.spawn(holder)
    ready.wait()
    waiter, done = spawn_getter(pool)
    settle()
    eventlet.sleep(0.01)  # holder is inside the rollback now
    thread.kill()
    with eventlet.Timeout(5):
        got = done.wait()
    pool.put(got)
    wait_until(lambda: pool.free() == 1)


@pytest.mark.parametrize("where", ["discard", "rollback"])
def test_killed_again_while_the_pool_cleans_up(pool_cls, db, make_pool, where):
    """The first kill makes the pool close the connection; a second kill
    lands during that close.  The slot must still come back."""
    pool = make_pool(pool_cls, db, max_size=1)
    inside = eventlet.Event()

    def holder():
        with pool.connection() as conn:
            raw = raw_of(conn)
            make_close_slow(raw, 0.2)
            if where == "rollback":
                raw.rollback_delay = 0.2
                inside.send(raw)
                return  # the lease's exit rolls back: killed there
            inside.send(raw)
            eventlet.sleep(10)  # killed here: the exit closes the connection

    thread = eventlet.spawn(holder)
    raw = inside.wait()
    eventlet.sleep(0.01)
    eventlet.greenthread.kill(thread)
    eventlet.sleep(0.01)
    if not thread.dead:
        eventlet.greenthread.kill(thread)  # the second interruption
    wait_until(lambda: pool.free() == 1 and pool.current_size == 0, timeout=3)
    with pool.connection(timeout=2) as conn:
        assert raw_of(conn) is not raw


def test_killed_while_a_checkout_closes_a_dead_connection(pool_cls, db, make_pool):
    """pre_ping finds the idle connection dead and closes it (slowly); the
    caller is killed during that close.  The slot must come back."""
    pool = make_pool(pool_cls, db, max_size=1, pre_ping=True, pre_ping_idle=0)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    raw.ping_error = db.OperationalError("server closed the connection")
    make_close_slow(raw, 0.3)
    thread, done = spawn_getter(pool, timeout=5)
    eventlet.sleep(0.05)  # inside the close now
    assert not thread.dead
    thread.kill()
    wait_until(lambda: pool.free() == 1)
    assert pool.stats()["opening"] == 0
    with pool.connection(timeout=2) as conn:
        assert raw_of(conn) is not raw
