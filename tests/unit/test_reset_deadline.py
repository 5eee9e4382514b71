"""``reset_timeout``: the rollback on return is bounded, by a per-pool watchdog.

A server that stops answering must not hold ``put()`` past ``reset_timeout``;
resets that finish in time must never be interrupted later; the watchdog
holds the pool only weakly.
"""

from __future__ import annotations

import gc
import time
import weakref

import eventlet

import db_pool
from tests.unit._fakes import raw_of

Raw = db_pool.RawConnectionPool


def test_a_hanging_rollback_is_abandoned_after_reset_timeout(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=1, reset_timeout=0.2)
    conn = pool.get()
    raw = raw_of(conn)
    raw.rollback_delay = 5.0  # the server stopped answering
    start = time.monotonic()
    pool.put(conn)
    elapsed = time.monotonic() - start
    assert 0.15 <= elapsed < 1.0, elapsed
    stats = pool.stats()
    assert stats["discarded_reset_failed"] == 1
    assert raw.closed
    assert pool.current_size == 0 and pool.free() == 1
    # The slot is usable at once, with a new connection.
    conn = pool.get(timeout=1)
    assert raw_of(conn) is not raw
    pool.put(conn)


def test_concurrent_hanging_rollbacks_are_all_abandoned(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=3, reset_timeout=0.2)
    conns = [pool.get() for _ in range(3)]
    for conn in conns:
        raw_of(conn).rollback_delay = 5.0
    durations = []

    def give_back(conn):
        start = time.monotonic()
        pool.put(conn)
        durations.append(time.monotonic() - start)

    threads = []
    for conn in conns:
        threads.append(eventlet.spawn(give_back, conn))
        eventlet.sleep(0.05)  # staggered deadlines
    for thread in threads:
        thread.wait()
    assert len(durations) == 3
    assert all(0.15 <= d < 1.0 for d in durations), durations
    assert pool.stats()["discarded_reset_failed"] == 3
    assert pool.current_size == 0


def test_resets_that_finish_in_time_are_never_interrupted(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=2, reset_timeout=0.1)
    finished = []

    def worker(n):
        for _ in range(n):
            conn = pool.get()
            raw_of(conn).rollback_delay = 0.01
            pool.put(conn)
            # Idle well past the watchdog's due time: a late throw would
            # land here and kill this green thread.
            eventlet.sleep(0.15)
        finished.append(n)

    threads = [eventlet.spawn(worker, 3) for _ in range(2)]
    for thread in threads:
        thread.wait()
    assert finished == [3, 3]
    stats = pool.stats()
    assert stats["discarded_reset_failed"] == 0
    assert stats["resets"] == 6


def test_the_watchdog_does_not_keep_a_dropped_pool_alive(fake_db):
    pool = Raw(fake_db, max_size=1, reset_timeout=30)
    conn = pool.get()
    pool.put(conn)  # arms the watchdog for 30 s
    ref = weakref.ref(pool)
    del pool, conn
    gc.collect()
    assert ref() is None
