"""The hot path's shortcuts must never weaken what the pool promises.

- Returned wrappers are reused for later checkouts, but only when nothing
  outside the pool can reach them: a caller that kept a returned wrapper (a
  variable, a container, a weak reference) never sees it come back to life.
- Waiters served while the hub is busy are woken together by one hub
  callback: still in the order they were served, never twice, and a waiter
  that gives up after being served passes its connection on.
"""

from __future__ import annotations

import gc
import weakref

import eventlet
import pytest

import db_pool
import db_pool.pool as pool_module
from tests.common.test_compat import queue_in_order, settle, wait_until
from tests.unit._fakes import raw_of

reuse_possible = pytest.mark.skipif(
    pool_module._UNREFERENCED is None,
    reason="this interpreter cannot prove a wrapper unreferenced",
)


# -- reuse of returned wrappers --------------------------------------------------


@reuse_possible
def test_an_unreferenced_returned_wrapper_is_reused(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    seen = set()
    for _ in range(20):
        conn = pool.get()
        seen.add(id(conn))
        pool.put(conn)
        del conn
    # Without reuse every checkout makes a wrapper; ids could repeat only
    # by chance of the allocator, never as few as this with one live.
    assert len(seen) <= 2
    assert len(pool._spares) >= 1


def test_a_kept_returned_wrapper_never_comes_back(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    kept = []
    for _ in range(10):
        conn = pool.get()
        pool.put(conn)
        kept.append(conn)
    del conn
    lent = [pool.get()]
    for old in kept:
        assert not old
        assert all(old is not new for new in lent)
        with pytest.raises(db_pool.ConnectionReturnedError):
            old.cursor()
    # And the lent one still works.
    lent[0].cursor().execute("select 1")
    pool.put(lent[0])


def test_a_returned_wrapper_held_by_a_variable_is_not_reused(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    old = pool.get()
    pool.put(old)
    new = pool.get()  # `old` still names the returned wrapper
    assert new is not old
    assert not old
    assert raw_of(new) is not None
    pool.put(new)


def test_a_weakly_referenced_returned_wrapper_is_not_reused(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    ref = weakref.ref(conn)
    pool.put(conn)
    del conn
    gc.collect()
    for _ in range(5):
        new = pool.get()
        # The weak reference either died with its wrapper or still points
        # at a returned (dead) wrapper: never at a lent one.
        old = ref()
        assert old is None or (old is not new and not old)
        pool.put(new)
        del new


def test_a_wrapper_returned_with_close_is_safe_to_reuse(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    for _ in range(5):
        conn = pool.get()
        conn.close()
        assert not conn
        with pytest.raises(db_pool.ConnectionReturnedError):
            conn.cursor()
        del conn
    conn = pool.get()
    assert raw_of(conn) is not None
    pool.put(conn)


def test_spares_are_bounded(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=50)
    conns = [pool.get() for _ in range(50)]
    for conn in conns:
        pool.put(conn)
    if pool._spares is not None:
        assert len(pool._spares) <= pool_module._SPARES


def test_cursor_of_a_lent_wrapper_reaches_the_driver(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    cur = conn.cursor()
    cur.execute("select 1")
    pool.put(conn)
    with pytest.raises(db_pool.ConnectionReturnedError):
        conn.cursor()


# -- batched wake-ups --------------------------------------------------------------


def test_waiters_served_in_one_turn_run_in_the_order_served(pool_cls, db, make_pool):
    # No reset: a return then never yields (a tpool rollback would).
    pool = make_pool(pool_cls, db, max_size=5, cleanup=None)
    held = [pool.get() for _ in range(5)]
    threads, order = queue_in_order(pool, 15)
    assert pool.waiting() == 15
    # Five returns without yielding: five waiters served in one turn.
    for conn in held:
        pool.put(conn)
    assert pool.waiting() == 10
    for t in threads:
        t.wait()
    assert order == list(range(15))
    assert pool.waiting() == 0
    assert pool.free() == 5


def test_served_waiter_killed_before_it_runs_passes_the_connection_on(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=2, cleanup=None)
    held = [pool.get() for _ in range(2)]
    threads, got = queue_in_order(pool, 4, hold=0.01)
    # Serve waiters 0 and 1 in one turn, then kill 0 before it runs.
    pool.put(held[0])
    pool.put(held[1])
    threads[0].kill()
    for t in threads[1:]:
        t.wait()
    assert got == [1, 2, 3]
    assert pool.waiting() == 0
    assert pool.free() == 2
    assert pool.current_size == 2


def test_many_waiters_many_rounds_lose_nothing(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=4)
    done = []

    def worker(n):
        for _ in range(20):
            conn = pool.get()
            assert raw_of(conn) is not None
            eventlet.sleep(0)
            pool.put(conn)
        done.append(n)

    threads = [eventlet.spawn(worker, n) for n in range(40)]
    for t in threads:
        t.wait()
    assert sorted(done) == list(range(40))
    assert pool.waiting() == 0
    assert pool.current_size <= 4
    assert pool.free() == pool.current_size


def test_a_returner_that_asks_again_queues_behind_the_waiters(pool_cls, db, make_pool):
    """put() then get() at once: the waiter served by the put runs first
    (woken first), and the returner takes its turn at the back."""
    pool = make_pool(pool_cls, db, max_size=1, cleanup=None)
    order = []

    def waiter(n):
        conn = pool.get()
        order.append(n)
        pool.put(conn)

    def returner():
        conn = pool.get()
        order.append("r1")
        wait_until(lambda: pool.waiting() == 3)
        pool.put(conn)
        conn = pool.get()
        order.append("r2")
        pool.put(conn)

    r = eventlet.spawn(returner)
    settle(1)
    threads = [eventlet.spawn(waiter, n) for n in range(3)]
    r.wait()
    for t in threads:
        t.wait()
    assert order == ["r1", 0, 1, 2, "r2"]
    assert pool.waiting() == 0
    assert pool.free() == 1


def test_killing_a_returner_parked_in_line_loses_nothing(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, cleanup=None)
    held = pool.get()
    got = []

    def waiter():
        conn = pool.get()
        got.append("w")
        eventlet.sleep(0.01)  # hold it while the returner waits in line
        pool.put(conn)

    def returner(conn):
        pool.put(conn)  # serves the waiter ...
        pool.get()  # ... and waits behind it
        got.append("r")  # never reached: killed while waiting

    w = eventlet.spawn(waiter)
    settle(1)
    r = eventlet.spawn(returner, held)
    wait_until(lambda: got == ["w"] and pool.waiting() == 1)
    r.kill()
    w.wait()
    assert got == ["w"]
    assert pool.waiting() == 0
    assert pool.free() == 1
    conn = pool.get(block=False)
    pool.put(conn)


def _on_hub(timer):
    hub = eventlet.hubs.get_hub()
    return [t for _, t in list(hub.timers) + list(hub.next_timers) if t is timer]


def test_one_wake_up_serves_every_batch_and_none_is_left_behind(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=2)
    waker = pool._waker
    served = []

    def worker(n):
        for _ in range(20):
            conn = pool.get()
            served.append(n)
            eventlet.sleep(0)
            pool.put(conn)

    threads = [eventlet.spawn(worker, n) for n in range(8)]
    for gt in threads:
        gt.wait()
    assert len(served) == 160
    assert pool.stats()["waits"] > 100  # batches were woken, many times
    assert pool._waker is waker
    assert waker.called and _on_hub(waker) == []  # nothing pending
    assert pool.waiting() == 0 and len(pool.free_items) == 2


def test_the_wake_up_holds_its_pool_weakly(pool_cls, db):
    pool = pool_cls(db, max_size=1)
    held = pool.get()
    woken = []

    def waiter(p):
        woken.append(p.get())

    gt = eventlet.spawn(waiter, pool)
    eventlet.sleep(0)
    pool.put(held)  # serves the waiter: the wake-up is now on the hub
    waker = pool._waker
    assert _on_hub(waker) == [waker] and not waker.called
    assert waker.pool_ref() is pool
    gt.wait()  # the wake-up ran: the waiter got its connection
    assert len(woken) == 1 and waker.called
    pool.put(woken.pop())
    ref = weakref.ref(pool)
    pool.close()
    del pool, held, gt
    gc.collect()
    assert ref() is None
    waker()  # a late call finds no pool and does nothing
    assert waker.called
