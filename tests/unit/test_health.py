"""Health and lifetime options with fakes: pre_ping, check=, max_uses,
keepalive, max_idle/max_age expiry by the background timers, max_age
jitter, the min_size refill, and failing fast while the database is down.
(The fault suite against real servers lives elsewhere.)"""

from __future__ import annotations

import eventlet
import pytest

import db_pool
from tests.common.test_compat import wait_until
from tests.fakedb import FakeDB, OperationalError
from tests.unit._fakes import raw_of

Raw = db_pool.RawConnectionPool


# -- pre_ping / check ----------------------------------------------------------


def test_pre_ping_replaces_a_dead_idle_connection(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=2, pre_ping=True, pre_ping_idle=0)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    raw.kill()  # the server dropped it while idle
    conn = pool.get()
    assert raw_of(conn) is not raw
    assert raw.closed
    conn.cursor().execute("SELECT 1")  # the caller never saw the dead one
    pool.put(conn)
    assert pool.current_size == 1
    stats = pool.stats()
    assert stats["ping_failures"] == 1 and stats["discarded_dead"] == 1


def test_pre_ping_pings_only_after_pre_ping_idle(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, pre_ping=True, pre_ping_idle=0.1)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    pool.put(pool.get())  # reused at once: no ping
    assert raw.pings == 0
    eventlet.sleep(0.15)
    pool.put(pool.get())
    assert raw.pings == 1


def test_pre_ping_without_a_ping_method_runs_a_query(make_pool):
    db = FakeDB(has_ping=False)
    pool = make_pool(Raw, db, pre_ping=True, pre_ping_idle=0)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    pool.put(pool.get())
    assert [sql for sql, _ in raw.executed] == ["SELECT 1"]


def test_a_dead_connection_makes_older_idle_ones_suspect(fake_db, make_pool):
    pool = make_pool(
        Raw,
        fake_db,
        max_size=3,
        pre_ping=True,
        pre_ping_idle=30,
        # An unknown driver's errors are not taken for disconnects unless
        # the application says so.
        is_disconnect=lambda exc: isinstance(exc, OperationalError),
    )
    conns = [pool.get() for _ in range(3)]
    for c in conns:
        pool.put(c)
    fake_db.kill_all()  # a server restart
    # Returned just now, so no pre-ping runs: the first caller meets the
    # dead connection, and its error tells the pool.
    with pytest.raises(OperationalError):
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")
    assert pool.stats()["discarded_dead"] == 1
    # The other idle connections are as old: they are checked before use
    # and replaced, so nobody else sees a dead one.
    held = [pool.get() for _ in range(3)]  # uses every idle connection
    for conn in held:
        conn.cursor().execute("SELECT 1")
        pool.put(conn)
    assert pool.stats()["discarded_dead"] == 3
    assert pool.stats()["ping_failures"] == 2


def test_check_callable(fake_db, make_pool):
    verdicts = [True, False]
    seen = []

    def check(conn):
        seen.append(conn)
        return verdicts.pop(0)

    pool = make_pool(Raw, fake_db, check=check, pre_ping_idle=0)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    conn = pool.get()  # check says True: kept
    assert raw_of(conn) is raw
    pool.put(conn)
    conn = pool.get()  # check says False: discarded, a new one opened
    assert raw_of(conn) is not raw
    assert raw.closed
    assert seen == [raw, raw]
    pool.put(conn)


def test_check_that_raises_discards(fake_db, make_pool):
    def check(conn):
        raise OperationalError("SELECT 1 failed")

    pool = make_pool(Raw, fake_db, max_size=1, check=check, pre_ping_idle=0)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    conn = pool.get()
    assert raw_of(conn) is not raw
    pool.put(conn)
    assert pool.current_size == 1


# -- max_uses ------------------------------------------------------------------


def test_max_uses_recycles(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_uses=3)
    raws = []
    for _ in range(7):
        conn = pool.get()
        raws.append(raw_of(conn))
        pool.put(conn)
    assert raws[0] is raws[1] is raws[2]
    assert raws[3] is raws[4] is raws[5] and raws[3] is not raws[0]
    assert raws[6] is not raws[3]
    assert raws[0].closed and raws[3].closed
    assert pool.stats()["recycled_uses"] == 2
    assert pool.current_size == 1


# -- background expiry ---------------------------------------------------------


def test_max_idle_expires_idle_connections_in_the_background(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=2, max_idle=0.1)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    eventlet.sleep(0.03)
    assert len(pool.free_items) == 1  # not yet
    wait_until(lambda: raw.closed, timeout=2)
    assert pool.current_size == 0
    assert len(pool.free_items) == 0
    assert pool.stats()["expired_idle"] == 1


def test_use_restarts_the_idle_clock(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_idle=0.15)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    for _ in range(4):
        eventlet.sleep(0.08)
        conn = pool.get()
        assert raw_of(conn) is raw
        pool.put(conn)
    assert not raw.closed


def test_max_age_expires_in_the_background(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_idle=None, max_age=0.1, max_age_jitter=0)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    wait_until(lambda: raw.closed, timeout=2)
    assert pool.current_size == 0
    assert pool.stats()["expired_age"] == 1


def test_max_age_never_robs_a_holder(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_age=0.05, max_age_jitter=0)
    conn = pool.get()
    raw = raw_of(conn)
    eventlet.sleep(0.15)
    assert not raw.closed
    conn.cursor().execute("SELECT 1")
    pool.put(conn)  # too old: closed on return
    assert raw.closed
    assert pool.current_size == 0


def test_max_age_jitter_spreads_expiry(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=20, max_age=100, max_age_jitter=0.5)
    conns = [pool.get() for _ in range(20)]
    for c in conns:
        pool.put(c)
    lifetimes = [rec.expires_at - rec.created_at for rec in pool.free_items]
    assert all(50 - 1e-6 <= life <= 100 + 1e-6 for life in lifetimes)
    assert len({round(life, 6) for life in lifetimes}) > 10


def test_no_jitter_means_exact_max_age(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, max_size=5, max_age=100, max_age_jitter=0)
    conns = [pool.get() for _ in range(5)]
    for c in conns:
        pool.put(c)
    for rec in pool.free_items:
        assert rec.expires_at - rec.created_at == pytest.approx(100)


def test_jittered_connections_all_expire_by_max_age(fake_db, make_pool):
    pool = make_pool(
        Raw, fake_db, max_size=6, max_idle=None, max_age=0.2, max_age_jitter=0.9
    )
    conns = [pool.get() for _ in range(6)]
    raws = [raw_of(c) for c in conns]
    for c in conns:
        pool.put(c)
    wait_until(lambda: all(r.closed for r in raws), timeout=3)
    assert pool.current_size == 0


# -- keepalive -----------------------------------------------------------------


def test_keepalive_pings_idle_connections(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, keepalive=0.05, max_idle=None, max_age=None)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    wait_until(lambda: raw.pings >= 2, timeout=3)
    assert not raw.closed
    assert len(pool.free_items) == 1


def test_keepalive_discards_a_dead_idle_connection_and_refills(fake_db, make_pool):
    pool = make_pool(
        Raw, fake_db, min_size=1, keepalive=0.05, max_idle=None, max_age=None
    )
    raw = pool.free_items[0][2]
    raw.kill()
    wait_until(lambda: raw.closed, timeout=3)
    wait_until(lambda: len(pool.free_items) == 1, timeout=3)
    assert pool.free_items[0][2] is not raw
    assert pool.current_size == 1


# -- min_size ------------------------------------------------------------------


def test_min_size_is_kept_warm(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, min_size=2, max_size=3, max_uses=1)
    assert len(pool.free_items) == 2
    pool.put(pool.get())  # recycled on return: one below min_size
    wait_until(lambda: len(pool.free_items) == 2)
    assert fake_db.connect_calls == 3


def test_min_size_prefill_failure_is_not_raised(make_pool):
    db = FakeDB(down=True)
    pool = make_pool(Raw, db, min_size=2, reconnect_delay=(0.01, 0.02))
    assert pool.current_size == 0
    db.down = False
    wait_until(lambda: len(pool.free_items) == 2, timeout=3)


# -- failing fast while the database is down -----------------------------------


def test_fail_fast_while_backing_off(fake_db, make_pool):
    pool = make_pool(Raw, fake_db, reconnect_delay=(0.2, 0.4))
    fake_db.fail_next(1, OperationalError("connection refused"))
    with pytest.raises(OperationalError):
        pool.get()
    calls = fake_db.connect_calls
    with pytest.raises(OperationalError):  # same class, without a connect
        pool.get()
    assert fake_db.connect_calls == calls
    assert pool.free() == 4
    eventlet.sleep(0.45)
    conn = pool.get()
    assert fake_db.connect_calls == calls + 1
    pool.put(conn)
