"""stats(): exact counts for scripted scenarios; listeners: the events, with
the right fields, in the right order; a raising listener is harmless."""

from __future__ import annotations

import logging

import eventlet
import pytest

import db_pool
from tests.common.test_compat import settle, spawn_getter
from tests.fakedb import OperationalError
from tests.unit._fakes import raw_of


class Recorder:
    """A listener object with every event method; records (event, info)."""

    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        if name not in db_pool.EVENTS:
            raise AttributeError(name)

        def record(info):
            self.events.append((name, info))

        return record

    def names(self):
        return [name for name, _ in self.events]

    def clear(self):
        del self.events[:]


SIZE_KEYS = ("size", "free", "checked_out", "opening", "waiting")


def sizes(pool):
    stats = pool.stats()
    return tuple(stats[k] for k in SIZE_KEYS)


def test_stats_keys(fake_db):
    pool = db_pool.RawConnectionPool(fake_db, name="orders")
    try:
        stats = pool.stats()
    finally:
        pool.close()
    expected = {
        "name",
        "min_size",
        "max_size",
        "size",
        "free",
        "checked_out",
        "opening",
        "waiting",
        "checkouts",
        "waits",
        "wait_time_total",
        "wait_time_max",
        "hold_time_total",
        "connections_opened",
        "connections_closed",
        "connect_failures",
        "connect_time_total",
        "discarded_dead",
        "discarded_reset_failed",
        "expired_idle",
        "expired_age",
        "recycled_uses",
        "leaks_reclaimed",
        "timeouts",
        "too_many_waiters",
        "pings",
        "ping_failures",
        "resets",
        "resets_skipped",
    }
    assert expected <= set(stats)
    assert stats["name"] == "orders"
    assert (stats["min_size"], stats["max_size"]) == (0, 4)
    for key in expected - {"name", "min_size", "max_size"}:
        assert stats[key] == 0, key


def test_scripted_scenario_counts_exactly(fake_db, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, fake_db, max_size=2, name="s")
    a = pool.get()
    b = pool.get()
    assert sizes(pool) == (2, 0, 2, 0, 0)
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(timeout=0.01)
    pool.put(a)
    assert sizes(pool) == (2, 1, 1, 0, 0)
    a2 = pool.get()
    pool.put(a2)
    pool.put(b)
    stats = pool.stats()
    assert stats["checkouts"] == 3
    assert stats["connections_opened"] == 2
    assert stats["connections_closed"] == 0
    assert stats["timeouts"] == 1
    assert stats["resets"] == 3
    assert stats["resets_skipped"] == 0
    assert stats["waits"] == 0  # the timed-out caller never got one
    assert stats["hold_time_total"] > 0
    assert stats["connect_time_total"] >= 0
    assert sizes(pool) == (2, 2, 0, 0, 0)
    pool.clear()
    stats = pool.stats()
    assert stats["connections_closed"] == 2
    assert sizes(pool) == (0, 0, 0, 0, 0)
    fake_db.fail_next(1)
    with pytest.raises(OperationalError):
        pool.get()
    assert pool.stats()["connect_failures"] == 1
    assert sizes(pool) == (0, 0, 0, 0, 0)


def test_waits_are_counted_and_timed(fake_db, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, fake_db, max_size=1)
    held = pool.get()
    thread, done = spawn_getter(pool)
    settle()
    assert pool.stats()["waiting"] == 1
    eventlet.sleep(0.05)
    pool.put(held)
    pool.put(done.wait())
    stats = pool.stats()
    assert stats["waits"] == 1
    assert stats["checkouts"] == 2
    assert 0.04 <= stats["wait_time_max"] <= stats["wait_time_total"] < 5


def test_discard_counters(fake_db, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        fake_db,
        max_size=3,
        max_uses=2,
        pre_ping=True,
        pre_ping_idle=0,
    )
    # Recycled after two uses.
    conn = pool.get()
    pool.put(conn)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    assert raw.closed
    # Reset failure.
    conn = pool.get()
    raw_of(conn).rollback_error = RuntimeError("reset failed")
    pool.put(conn)
    # Dead on checkout (pre_ping).
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    raw.kill()
    conn = pool.get()
    assert raw_of(conn) is not raw
    pool.put(conn)
    stats = pool.stats()
    assert stats["recycled_uses"] == 1
    assert stats["discarded_reset_failed"] == 1
    assert stats["discarded_dead"] == 1
    assert stats["ping_failures"] == 1
    assert stats["pings"] >= 2
    assert stats["connections_closed"] == 3


def test_stats_reset(fake_db, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, fake_db)
    pool.put(pool.get())
    first = pool.stats(reset=True)
    assert first["checkouts"] == 1
    second = pool.stats()
    assert second["checkouts"] == 0
    assert second["connections_opened"] == 0
    assert second["size"] == 1 and second["free"] == 1  # sizes are not counters


def test_repr_shows_the_counts(fake_db, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, fake_db, max_size=3, name="web")
    conn = pool.get()
    pool.put(pool.get())
    assert repr(pool) == (
        "<RawConnectionPool 'web' free=1 used=1 opening=0 waiting=0 max=3>"
    )
    pool.put(conn)


# -- listeners -----------------------------------------------------------------


def test_events_in_order_with_their_fields(fake_db, make_pool):
    recorder = Recorder()
    pool = make_pool(
        db_pool.RawConnectionPool, fake_db, max_size=1, name="ev", listeners=[recorder]
    )
    a = pool.get()
    raw = raw_of(a)
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(timeout=0.01)
    pool.put(a)
    pool.clear()
    fake_db.fail_next(1, OperationalError("no route"))
    with pytest.raises(OperationalError):
        pool.get()
    pool.close()
    assert recorder.names() == [
        "connection_created",
        "connection_checked_out",
        "pool_at_max",
        "connection_checked_in",
        "connection_disposed",
        "connection_failed",
        "pool_disposed",
    ]
    for _name, info in recorder.events:
        assert set(info) == {"pool", "connection", "reason", "error"}
        assert info["pool"] == "ev"
    by_name = dict(recorder.events)
    for name in (
        "connection_created",
        "connection_checked_out",
        "connection_checked_in",
        "connection_disposed",
    ):
        assert by_name[name]["connection"] is raw
    assert by_name["connection_disposed"]["reason"] == "cleared"
    failed = by_name["connection_failed"]
    assert isinstance(failed["error"], OperationalError)
    assert failed["connection"] is None
    assert by_name["pool_disposed"]["connection"] is None


def test_recycle_and_expiry_events(fake_db, make_pool):
    recorder = Recorder()
    pool = make_pool(
        db_pool.RawConnectionPool, fake_db, max_uses=1, listeners=[recorder]
    )
    pool.put(pool.get())
    names = recorder.names()
    assert names[-2:] == ["connection_recycled", "connection_disposed"]
    assert recorder.events[-1][1]["reason"] == "uses"
    recorder.clear()
    zero = make_pool(
        db_pool.RawConnectionPool, fake_db, max_age=0, listeners=[recorder]
    )
    zero.put(zero.get())
    assert recorder.names()[-1] == "connection_disposed"
    assert recorder.events[-1][1]["reason"] == "age"


def test_dict_listener_and_add_remove(fake_db, make_pool):
    seen = []
    listener = {
        "connection_checked_out": lambda info: seen.append("out"),
        "connection_checked_in": lambda info: seen.append("in"),
    }
    pool = make_pool(db_pool.RawConnectionPool, fake_db)
    pool.add_listener(listener)
    pool.put(pool.get())
    assert seen == ["out", "in"]
    pool.remove_listener(listener)
    pool.put(pool.get())
    assert seen == ["out", "in"]


def test_bad_listeners_are_rejected(fake_db):
    with pytest.raises(ValueError) as info:
        db_pool.RawConnectionPool(fake_db, listeners=[{"checkout": print}])
    assert "checkout" in str(info.value)
    with pytest.raises(TypeError):
        db_pool.RawConnectionPool(fake_db, listeners=[object()])


def test_a_raising_listener_is_harmless(fake_db, make_pool, caplog):
    calls = []

    def boom(info):
        calls.append(info)
        raise RuntimeError("listener bug")

    listener = {name: boom for name in db_pool.EVENTS}
    caplog.set_level(logging.ERROR, logger="db_pool")
    pool = make_pool(
        db_pool.RawConnectionPool, fake_db, max_size=1, listeners=[listener]
    )
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    conn = pool.get()
    assert raw_of(conn) is raw
    pool.put(conn)
    fake_db.fail_next(1)
    pool.clear()
    with pytest.raises(OperationalError):  # the driver's error, not the listener's
        pool.get()
    pool.close()
    assert len(calls) >= 7
    assert pool.stats()["checkouts"] == 2
    assert any("listener" in r.getMessage() for r in caplog.records)


def test_tpooled_events_carry_the_proxy(fake_db, make_pool):
    recorder = Recorder()
    pool = make_pool(db_pool.TpooledConnectionPool, fake_db, listeners=[recorder])
    conn = pool.get()
    base = conn._base
    pool.put(conn)
    assert [info["connection"] for _, info in recorder.events] == [base, base, base]
