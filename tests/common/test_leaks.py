"""A wrapper dropped without being returned is reclaimed: its slot comes
back, its transaction is rolled back, and a ConnectionLeakWarning plus a
``db_pool`` log record say which function checked it out.  Callers killed
while holding lose nothing either."""

from __future__ import annotations

import gc
import logging

import eventlet
import pytest

import db_pool
from tests.common.test_compat import settle, spawn_getter, wait_until
from tests.unit._fakes import raw_of


def checkout_and_forget(pool, box):
    """Checks out a connection, starts a transaction, and drops the wrapper."""
    conn = pool.get()
    conn.cursor().execute("UPDATE accounts SET x = 1")
    box.append(raw_of(conn))


def lease_and_forget(pool, box):
    conn = pool.connection().__enter__()  # never exited
    box.append(raw_of(conn))


def test_dropped_wrapper_is_reclaimed_with_a_warning(pool_cls, db, make_pool, caplog):
    pool = make_pool(pool_cls, db, max_size=1)
    box = []
    caplog.set_level(logging.WARNING, logger="db_pool")
    with pytest.warns(db_pool.ConnectionLeakWarning) as record:
        checkout_and_forget(pool, box)
        gc.collect()
        wait_until(lambda: pool.free() == 1)
    raw = box[0]
    assert raw.rollbacks == 1
    assert not raw.transaction_open
    assert not raw.closed
    assert len(pool.free_items) == 1
    assert pool.current_size == 1
    assert pool.stats()["leaks_reclaimed"] == 1
    assert any("checkout_and_forget" in str(w.message) for w in record)
    messages = [r.getMessage() for r in caplog.records if r.name == "db_pool"]
    assert any("checkout_and_forget" in m and "dropped" in m for m in messages), (
        messages
    )
    # The reclaimed connection serves the next caller.
    again = pool.get()
    assert raw_of(again) is raw
    pool.put(again)


def test_dropped_lease_names_the_function_that_entered_it(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    box = []
    with pytest.warns(db_pool.ConnectionLeakWarning, match="lease_and_forget"):
        lease_and_forget(pool, box)
        gc.collect()
        wait_until(lambda: pool.free() == 1)


def test_reclaimed_connection_goes_to_a_waiter(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    box = []
    conn = pool.get()
    box.append(raw_of(conn))
    thread, done = spawn_getter(pool)
    settle()
    assert pool.waiting() == 1
    with pytest.warns(db_pool.ConnectionLeakWarning):
        del conn
        gc.collect()
        with eventlet.Timeout(2):
            got = done.wait()
    assert raw_of(got) is box[0]
    assert db.connect_calls == 1
    pool.put(got)


def test_dropped_wrapper_whose_rollback_fails_is_closed(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    box = []
    with pytest.warns(db_pool.ConnectionLeakWarning):
        checkout_and_forget(pool, box)
        box[0].rollback_error = db.OperationalError("gone")
        gc.collect()
        wait_until(lambda: pool.free() == 1)
    assert box[0].closed
    assert pool.current_size == 0


def test_dropped_unwrapped_wrapper_frees_its_slot_once(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    conn = pool.get()
    raw = pool._unwrap_connection(conn)
    with pytest.warns(db_pool.ConnectionLeakWarning):
        del conn
        gc.collect()
        wait_until(lambda: pool.free() == 2)
    settle()
    assert pool.current_size == 0
    assert pool.free() == 2
    raw.close()


def test_holder_killed_inside_a_lease_gives_the_slot_back(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    inside = eventlet.Event()

    def holder():
        with pool.connection() as conn:
            conn.cursor().execute("UPDATE t")
            inside.send(raw_of(conn))
            eventlet.sleep(10)

    thread = eventlet.spawn(holder)
    raw = inside.wait()
    thread.kill()
    # The lease's exit returns it (through an OS thread for a tpooled pool).
    wait_until(lambda: pool.free() == 1)
    assert pool.waiting() == 0
    # Killed mid-work: the session state is unknown, so it is not reused.
    assert raw.closed
    with pool.connection(timeout=1) as conn:
        assert raw_of(conn) is not raw


def test_holder_killed_with_a_bare_get_gives_the_slot_back(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    inside = eventlet.Event()

    def holder():
        conn = pool.get()
        inside.send()
        eventlet.sleep(10)
        pool.put(conn)

    thread = eventlet.spawn(holder)
    inside.wait()
    with pytest.warns(db_pool.ConnectionLeakWarning, match="holder"):
        thread.kill()
        # The dead thread's exit event keeps the traceback, and with it the
        # wrapper, alive until the thread object goes.
        del thread
        gc.collect()
        wait_until(lambda: pool.free() == 1)
    pool.put(pool.get(timeout=1))


def test_leak_timeout_warns_about_a_connection_held_too_long(
    pool_cls, db, make_pool, caplog
):
    pool = make_pool(pool_cls, db, max_size=2, leak_timeout=0.05)
    caplog.set_level(logging.WARNING, logger="db_pool")

    def slow_request():
        return pool.get()

    conn = slow_request()
    wait_until(lambda: pool.stats()["leaks_reported"] == 1, timeout=3)
    messages = [r.getMessage() for r in caplog.records if r.name == "db_pool"]
    report = [m for m in messages if "leak_timeout" in m]
    assert report and "slow_request" in report[0]
    assert conn  # a warning only: the holder keeps its connection
    pool.put(conn)
    quick = pool.get()
    pool.put(quick)
    eventlet.sleep(0.1)
    assert pool.stats()["leaks_reported"] == 1  # returned in time: no report
