"""Bounded, fair waiting: timeouts, non-blocking gets, first come first
served hand-off, the cap on waiters, connection() leases (reentrant or
not) and resizing at run time."""

from __future__ import annotations

import time

import eventlet
import eventlet.hubs
import pytest

import db_pool
import db_pool.pool as pool_module
from tests.common.test_compat import (
    queue_in_order,
    settle,
    spawn_getter,
    wait_until,
)
from tests.unit._fakes import raw_of


def elapsed_of(func, *args, **kwargs):
    start = time.monotonic()
    try:
        func(*args, **kwargs)
    finally:
        elapsed = time.monotonic() - start
    return elapsed


# -- timeouts ------------------------------------------------------------------


def test_get_timeout_raises_pool_timeout_within_the_deadline(pool):
    held = pool.get()
    start = time.monotonic()
    with pytest.raises(db_pool.PoolTimeout) as info:
        pool.get(timeout=0.1)
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 1.5
    assert isinstance(info.value, db_pool.PoolError)
    assert info.value.timeout == 0.1
    assert pool.waiting() == 0
    assert pool.current_size == 1
    pool.put(held)
    assert pool.free() == 1


def test_pool_timeout_is_the_default_deadline(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, pool_timeout=0.1)
    held = pool.get()
    start = time.monotonic()
    with pytest.raises(db_pool.PoolTimeout):
        pool.get()
    assert 0.09 <= time.monotonic() - start < 1.5
    pool.put(held)


def _watchdogs_on_hub():
    """The wait watchdog timers pending on this thread's hub."""
    hub = eventlet.hubs.get_hub()
    return [
        t
        for _, t in list(hub.timers) + list(hub.next_timers)
        if not t.called
        and getattr(t, "tpl", (None,))[0] is pool_module._run_watchdog
        and t.tpl[1][1] == "_expire_waits"
    ]


def test_timed_waits_share_one_watchdog_timer(pool_cls, db, make_pool):
    """Waits with a deadline cost no hub timer each: one per pool, due at
    the earliest deadline in line."""
    pool = make_pool(pool_cls, db, max_size=2, pool_timeout=30)
    before = len(_watchdogs_on_hub())
    served = []

    def worker():
        for _ in range(10):
            conn = pool.get()
            served.append(conn)
            eventlet.sleep(0)
            pool.put(conn)

    threads = [eventlet.spawn(worker) for _ in range(20)]
    settle()
    assert pool.waiting() > 10
    assert len(_watchdogs_on_hub()) == before + 1
    for gt in threads:
        gt.wait()
    assert len(served) == 200 and pool.stats()["timeouts"] == 0
    assert len(_watchdogs_on_hub()) <= before + 1


def test_a_shorter_deadline_behind_a_longer_one_times_out_first(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    slow, slow_done = spawn_getter(pool, timeout=5)
    settle()
    start = time.monotonic()
    quick, quick_done = spawn_getter(pool, timeout=0.1)
    with pytest.raises(db_pool.PoolTimeout) as info:
        quick_done.wait()
    assert 0.09 <= time.monotonic() - start < 1.5
    assert info.value.timeout == 0.1
    assert not slow_done.ready() and pool.waiting() == 1
    pool.put(held)  # the first in line still gets it
    conn = slow_done.wait()
    assert raw_of(conn) is not None
    pool.put(conn)
    assert pool.stats()["timeouts"] == 1 and pool.waiting() == 0


def test_waiters_timing_out_together_all_leave_the_line(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, pool_timeout=0.05)
    held = pool.get()
    getters = [spawn_getter(pool) for _ in range(30)]
    patient, patient_done = spawn_getter(pool, timeout=None)
    settle()
    assert pool.waiting() == 31
    for _, done in getters:
        with pytest.raises(db_pool.PoolTimeout):
            done.wait()
    assert pool.waiting() == 1 and pool.stats()["timeouts"] == 30
    pool.put(held)
    conn = patient_done.wait()
    pool.put(conn)
    assert pool.waiting() == 0 and len(pool.free_items) == 1


def test_explicit_timeout_none_waits_beyond_pool_timeout(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, pool_timeout=0.05)
    held = pool.get()
    thread, done = spawn_getter(pool, timeout=None)
    eventlet.sleep(0.15)
    assert not done.ready()
    assert pool.waiting() == 1
    pool.put(held)
    pool.put(done.wait())


def test_default_is_to_wait_forever_like_eventlet(pool):
    held = pool.get()
    thread, done = spawn_getter(pool)
    eventlet.sleep(0.2)
    assert not done.ready() and pool.waiting() == 1
    pool.put(held)
    pool.put(done.wait())


def test_timed_out_waiter_does_not_take_a_later_connection(pool):
    held = pool.get()
    thread, done = spawn_getter(pool, timeout=0.05)
    with pytest.raises(db_pool.PoolTimeout):
        done.wait()
    pool.put(held)
    assert pool.free() == 1 and len(pool.free_items) == 1


def test_eventlet_timeout_while_waiting_leaves_the_queue(pool):
    held = pool.get()
    with pytest.raises(eventlet.Timeout):
        with eventlet.Timeout(0.05):
            pool.get()
    assert pool.waiting() == 0
    pool.put(held)
    assert pool.free() == 1


def test_non_blocking_get(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    a = pool.get(block=False)  # room to open one: it connects
    b = pool.get_nowait()
    assert raw_of(a) is not raw_of(b)
    for attempt in (lambda: pool.get(block=False), pool.get_nowait):
        start = time.monotonic()
        with pytest.raises(db_pool.PoolTimeout):
            attempt()
        assert time.monotonic() - start < 0.5
    assert pool.waiting() == 0
    pool.put(a)
    c = pool.get_nowait()
    assert raw_of(c) is not None
    pool.put(b)
    pool.put(c)


# -- fairness ------------------------------------------------------------------


def test_waiters_are_served_in_arrival_order(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    threads, order = queue_in_order(pool, 12, hold=0.001)
    assert pool.waiting() == 12
    pool.put(held)
    for t in threads:
        t.wait()
    assert order == list(range(12))
    assert db.connect_calls == 1


def test_waiters_of_a_larger_pool_are_served_in_order(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=3)
    held = [pool.get() for _ in range(3)]
    threads, order = queue_in_order(pool, 20)
    for conn in held:
        pool.put(conn)
    for t in threads:
        t.wait()
    assert order == list(range(20))


def test_returned_connection_goes_to_the_longest_waiter_not_a_newcomer(pool):
    held = pool.get()
    thread, done = spawn_getter(pool)
    settle()
    assert pool.waiting() == 1
    pool.put(held)
    # The connection is already promised to the waiter: a newcomer that
    # arrives before the waiter runs must not take it.
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(block=False)
    got = done.wait()
    assert raw_of(got) is not None
    pool.put(got)


def test_newcomer_with_free_room_does_not_overtake_waiters(pool_cls, db, make_pool):
    """Even a fresh get() queues behind waiters that are already in line."""
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    order = []

    def worker(name):
        conn = pool.get()
        order.append(name)
        pool.put(conn)

    first = eventlet.spawn(worker, "first")
    settle()
    pool.put(held)  # handed to "first", which has not run yet
    late = eventlet.spawn(worker, "late")
    first.wait()
    late.wait()
    assert order == ["first", "late"]


def test_max_waiting_sheds_load_at_once(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, max_waiting=2)
    held = pool.get()
    waiters = [spawn_getter(pool) for _ in range(2)]
    settle()
    assert pool.waiting() == 2
    start = time.monotonic()
    with pytest.raises(db_pool.TooManyWaiters) as info:
        pool.get()
    assert time.monotonic() - start < 0.5
    assert isinstance(info.value, db_pool.PoolError)
    assert pool.stats()["too_many_waiters"] == 1
    assert pool.waiting() == 2
    pool.put(held)
    for _thread, done in waiters:
        pool.put(done.wait())
    assert pool.free() == 1


def test_max_waiting_zero_never_queues(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, max_waiting=0)
    held = pool.get()
    with pytest.raises(db_pool.TooManyWaiters):
        pool.get(timeout=5)
    pool.put(held)
    pool.put(pool.get())


# -- connection() leases -------------------------------------------------------


def test_connection_is_a_lease_like_item(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    with pool.connection() as conn:
        assert isinstance(conn, db_pool.PooledConnectionWrapper)
        assert pool.free() == 1
        conn.cursor().execute("UPDATE t")
        raw = raw_of(conn)
    assert not conn
    assert pool.free() == 2
    assert raw.rollbacks == 1


def test_connection_timeout(pool):
    held = pool.get()
    with pytest.raises(db_pool.PoolTimeout):
        with pool.connection(timeout=0.05):
            pytest.fail("must not get here")
    pool.put(held)


def test_nested_leases_are_separate_connections_by_default(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    with pool.connection() as outer:
        with pool.connection() as inner:
            assert raw_of(inner) is not raw_of(outer)
            assert pool.free() == 0
        assert pool.free() == 1
    a, b = pool.get(), pool.get()
    assert raw_of(a) is not raw_of(b)
    pool.put(a)
    pool.put(b)


def test_reentrant_nested_leases_share_one_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2, reentrant=True)
    with pool.connection() as outer:
        with pool.connection() as inner:
            assert inner is outer
            with pool.connection() as innermost:
                assert innermost is outer
            assert outer  # still lent: only the outermost block returns it
            assert pool.free() == 1
        assert outer and pool.free() == 1
        raw = raw_of(outer)
    assert not outer
    assert pool.free() == 2
    assert raw.rollbacks == 1  # one return, one reset
    assert db.connect_calls == 1


def test_reentrant_leases_are_per_green_thread(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2, reentrant=True)
    seen = {}

    def lease(name, ready, go):
        with pool.connection() as conn:
            seen[name] = raw_of(conn)
            ready.send()
            go.wait()

    events = [(eventlet.Event(), eventlet.Event()) for _ in range(2)]
    threads = [eventlet.spawn(lease, n, *events[n]) for n in range(2)]
    for ready, _ in events:
        ready.wait()
    assert seen[0] is not seen[1]
    for _, go in events:
        go.send()
    for t in threads:
        t.wait()
    assert pool.free() == 2


def test_reentrant_lease_released_after_an_error(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, reentrant=True)
    with pytest.raises(KeyError):
        with pool.connection():
            with pool.connection():
                raise KeyError("boom")
    assert pool.free() == 1
    with pool.connection() as conn:
        assert conn


def test_reentrant_pool_get_still_gives_separate_connections(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2, reentrant=True)
    a, b = pool.get(), pool.get()
    assert raw_of(a) is not raw_of(b)
    pool.put(a)
    pool.put(b)


# -- resize --------------------------------------------------------------------


def test_resize_grow_serves_waiters(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    waiters = [spawn_getter(pool) for _ in range(3)]
    settle()
    assert pool.waiting() == 3
    pool.resize(max_size=3)
    assert pool.max_size == 3
    first, second = waiters[0][1].wait(), waiters[1][1].wait()
    assert pool.waiting() == 1
    assert not waiters[2][1].ready()
    assert pool.current_size == 3
    pool.put(held)
    third = waiters[2][1].wait()
    for conn in (first, second, third):
        pool.put(conn)
    assert pool.free() == 3


def test_resize_positional_sets_max_size(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    pool.resize(5)
    assert pool.max_size == 5 and pool.free() == 5


def test_resize_shrink_closes_idle_first_and_never_robs_a_holder(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=3)
    conns = [pool.get() for _ in range(3)]
    raws = [raw_of(c) for c in conns]
    pool.put(conns[0])
    pool.put(conns[1])
    pool.resize(max_size=1)
    assert pool.max_size == 1
    assert raws[0].closed and raws[1].closed
    assert not raws[2].closed
    assert pool.current_size == 1
    conns[2].cursor().execute("SELECT 1")  # the holder still works
    pool.put(conns[2])
    assert not raws[2].closed
    assert pool.free() == 1


def test_resize_shrink_closes_surplus_on_return(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=3)
    conns = [pool.get() for _ in range(3)]
    raws = [raw_of(c) for c in conns]
    pool.resize(max_size=1)
    assert not any(r.closed for r in raws)  # nobody robbed
    assert pool.current_size == 3
    pool.put(conns[0])
    pool.put(conns[1])
    assert raws[0].closed and raws[1].closed
    assert pool.current_size == 1
    pool.put(conns[2])
    assert not raws[2].closed
    assert pool.current_size == 1 and len(pool.free_items) == 1
    assert pool.free() == 1


def test_resize_shrink_with_waiters_keeps_them_within_the_new_size(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=2)
    held = [pool.get(), pool.get()]
    thread, done = spawn_getter(pool)
    settle()
    pool.resize(max_size=1)
    pool.put(held[0])  # surplus: closed, not handed to the waiter
    assert pool.current_size == 1
    assert not done.ready()
    pool.put(held[1])
    got = done.wait()
    assert pool.current_size == 1
    pool.put(got)


def test_resize_min_size_opens_in_the_background(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=4)
    pool.resize(min_size=2)
    assert pool.min_size == 2
    wait_until(lambda: len(pool.free_items) == 2)
    assert pool.current_size == 2
    assert db.connect_calls == 2


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"max_size": 0}, ValueError),
        ({"min_size": 5}, ValueError),
        ({"max_size": "3"}, TypeError),
        ({"min_size": -1}, ValueError),
        ({"max_size": True}, TypeError),
    ],
)
def test_resize_validates(pool_cls, db, make_pool, kwargs, error):
    pool = make_pool(pool_cls, db, max_size=3)
    with pytest.raises(error) as info:
        pool.resize(**kwargs)
    name = next(iter(kwargs))
    assert name in str(info.value)
    assert (pool.min_size, pool.max_size) == (0, 3)
