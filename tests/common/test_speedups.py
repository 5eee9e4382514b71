"""get() and put() have two implementations, the C fast paths in
db_pool/_speedups.c and the Python code in pool.py; these tests pin down
what the C ones must do exactly as the Python ones do (the rest of the
suite runs over whichever is in use; CI runs the fake-driver suites over
both, the Python one with ``DB_POOL_PURE_PYTHON=1``).
"""

from __future__ import annotations

import gc
import inspect
import os
import subprocess
import sys
import tracemalloc

import eventlet
import pytest

import db_pool
import db_pool.pool as pool_module
from tests.unit._fakes import raw_of

speedups = pytest.mark.skipif(
    not pool_module.SPEEDUPS, reason="the C fast paths are not in use"
)


def test_the_c_fast_paths_are_in_use_where_they_must_be():
    """CI (``DB_POOL_REQUIRE_SPEEDUPS=1``) fails when the extension was not built."""
    pure = os.environ.get("DB_POOL_PURE_PYTHON", "") not in ("", "0")
    if os.environ.get("DB_POOL_REQUIRE_SPEEDUPS") == "1" and not pure:
        assert pool_module.SPEEDUPS, "db_pool._speedups was not built or not loaded"
    get = db_pool.BaseConnectionPool.__dict__["get"]
    put = db_pool.BaseConnectionPool.__dict__["put"]
    assert inspect.isfunction(get) is (not pool_module.SPEEDUPS)
    assert inspect.isfunction(put) is (not pool_module.SPEEDUPS)
    assert db_pool.SPEEDUPS is pool_module.SPEEDUPS


def test_pure_python_can_be_chosen():
    code = (
        "import inspect, db_pool, db_pool.pool as p;"
        "print(p.SPEEDUPS, inspect.isfunction(db_pool.BaseConnectionPool.get))"
    )
    env = dict(os.environ, DB_POOL_PURE_PYTHON="1")
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["False", "True"]


@speedups
def test_the_c_methods_keep_the_documentation():
    assert "Check out a connection" in db_pool.BaseConnectionPool.get.__doc__
    assert "Return a connection to the pool" in db_pool.BaseConnectionPool.put.__doc__
    assert db_pool.BaseConnectionPool._py_get.__name__ == "get"


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {}),
        ((True,), {}),
        ((False,), {}),
        ((True, 5), {}),
        ((), {"block": False}),
        ((), {"timeout": 5}),
        ((), {"timeout": None}),
        ((True,), {"timeout": 5}),
        ((), {"block": True, "timeout": 5}),
    ],
    ids=lambda v: repr(v),
)
def test_get_takes_its_arguments_every_way(pool_cls, db, make_pool, args, kwargs):
    pool = make_pool(pool_cls, db, max_size=1)
    for _ in range(3):  # opening, then the fast path, twice
        conn = pool.get(*args, **kwargs)
        assert raw_of(conn) is not None
        pool.put(conn)
    assert pool.stats()["checkouts"] == 3


def test_get_rejects_what_the_python_signature_rejects(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    with pytest.raises(TypeError, match="bogus"):
        pool.get(bogus=1)
    with pytest.raises(TypeError):
        pool.get(True, 1, 2)
    with pytest.raises(TypeError, match="block"):
        pool.get(True, block=True)
    with pytest.raises(ValueError, match="timeout"):
        pool.get(timeout=-1)
    assert pool.waiting() == 0
    conn = pool.get()
    pool.put(conn)


def test_put_takes_its_arguments_every_way(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    calls = []

    def custom(raw):
        calls.append(raw)

    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn=conn)
    assert raw.rollbacks == 1
    pool.put(pool.get(), None)
    pool.put(pool.get(), cleanup=None)
    assert raw.rollbacks == 1
    pool.put(pool.get(), cleanup=custom)
    pool.put(pool.get(), custom)
    assert [raw_of_unproxied(c) for c in calls] == [raw, raw]
    with pytest.raises(TypeError, match="bogus"):
        pool.put(pool.get(), bogus=1)
    with pytest.raises(TypeError):
        pool.put()
    stats = pool.stats()
    assert stats["checkouts"] == 6 and stats["resets"] == 3


def raw_of_unproxied(conn):
    return getattr(conn, "_obj", conn)


def test_the_checkout_site_is_the_callers_function(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    for _ in range(2):  # opening, then the fast path
        conn = pool.get()
        assert conn._record.where is sys._getframe().f_code
        pool.put(conn)

    def helper():
        return pool.get()

    conn = helper()
    assert conn._record.where is helper.__code__
    pool.put(conn)


def test_a_reset_that_fails_discards_the_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    pool.put(conn)  # the next get() takes the fast path
    conn = pool.get()
    raw = raw_of(conn)
    raw.rollback_error = db.ProgrammingError("no")
    pool.put(conn)  # logged, not raised
    assert raw.closed
    assert pool.current_size == 0
    assert pool.stats()["discarded_reset_failed"] == 1
    conn = pool.get()
    assert raw_of(conn) is not raw
    pool.put(conn)


class Interrupt(BaseException):
    pass


def test_a_reset_interrupted_gives_the_slot_back_and_raises(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    pool.put(pool.get())

    def interrupted(raw):
        raise Interrupt()

    conn = pool.get()
    with pytest.raises(Interrupt):
        pool.put(conn, interrupted)
    assert pool.current_size == 0
    assert not conn
    conn = pool.get(timeout=1)
    pool.put(conn)


def test_counters_and_times_move_as_in_python(pool_cls, make_pool):
    from tests.fakedb import FakeDB

    db = FakeDB(report_status=True)
    pool = make_pool(pool_cls, db, max_size=1, max_idle=60)
    pool.put(pool.get())
    before = pool.stats()
    conn = pool.get()
    rec = conn._record
    assert rec.uses == 2
    assert rec.pool is pool
    cur = conn.cursor()
    cur.execute("SELECT 1")  # leaves a transaction open: a rollback
    pool.put(conn)
    pool.put(pool.get())  # nothing open: the rollback is skipped
    after = pool.stats()
    assert after["checkouts"] - before["checkouts"] == 2
    assert after["resets"] - before["resets"] == 1
    assert after["resets_skipped"] - before["resets_skipped"] == 1
    assert after["hold_time_total"] > before["hold_time_total"]
    assert rec.pool is None
    assert rec.last_used <= rec.fresh_until <= rec.last_used + 60
    assert rec.fresh_until <= rec.expires_at


def test_a_subclass_may_override_get_and_put(pool_cls, db, make_pool):
    calls = []

    class Counting(pool_cls):
        def get(self, *args, **kwargs):
            calls.append("get")
            return super().get(*args, **kwargs)

        def put(self, conn, *args, **kwargs):
            calls.append("put")
            return super().put(conn, *args, **kwargs)

    pool = make_pool(Counting, db, max_size=1)
    for _ in range(2):
        conn = pool.get()
        conn.close()  # close() returns it through put()
    assert calls == ["get", "put"] * 2
    assert len(pool.free_items) == 1


def test_a_wrapper_of_another_pool_is_taken_over(pool_cls, db, make_pool):
    one = make_pool(pool_cls, db, max_size=1)
    two = make_pool(pool_cls, db, max_size=1)
    conn = one.get()
    raw = raw_of(conn)
    two.put(conn)  # the same connections: two takes it over
    assert one.current_size == 0 and not one.free_items
    assert two.current_size == 1 and len(two.free_items) == 1
    two.put(conn)  # already returned: ignored
    assert len(two.free_items) == 1
    again = two.get()
    assert raw_of(again) is raw
    two.put(again)


def test_the_checkout_site_after_a_wait_is_the_callers_function(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    sites = []

    def waiting_caller():
        conn = pool.get()  # waits in line
        sites.append(conn._record.where)
        pool.put(conn)

    gt = eventlet.spawn(waiting_caller)
    eventlet.sleep(0)
    assert pool.waiting() == 1
    pool.put(held)
    gt.wait()
    assert sites == [waiting_caller.__code__]
    stats = pool.stats()
    assert stats["waits"] == 1 and stats["wait_time_total"] >= 0
    assert sum(pool._wait_buckets) == 1


@pytest.mark.parametrize("pool_timeout", [None, 30], ids=["no deadline", "deadline"])
def test_many_cycles_leave_no_garbage(pool_cls, db, make_pool, pool_timeout):
    """Every path of get() and put(), fast and waiting, frees what it makes
    (a reference leaked in C would leave objects behind on every cycle)."""
    pool = make_pool(pool_cls, db, max_size=2, pool_timeout=pool_timeout)

    def cycles(n):
        for _ in range(n):
            conn = pool.get()
            eventlet.sleep(0)  # let the others queue up
            pool.put(conn)

    def run(n):
        threads = [eventlet.spawn(cycles, n) for _ in range(6)]
        for gt in threads:
            gt.wait()
        for _ in range(n):  # the fast path alone
            pool.put(pool.get())

    run(50)  # warm up: connections, spares, caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(2000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 14,000 checkouts: a leaked float or int each would be over 300 KB.
    assert grown < 64 * 1024, grown
    assert pool.waiting() == 0 and len(pool.free_items) == 2
    assert pool.stats()["waits"] > 0  # the waiting path ran too


# -- what the C fast paths read straight off the driver's connection -----------


def _hint_closed_flag(pool, attr, negated):
    """Give *pool* a driver whose is_closed is the flag *attr* (see
    Driver.closed_flag), as Psycopg2Driver and PyMySQLDriver have."""

    def is_closed(conn):
        try:
            value = bool(getattr(raw_of_unproxied(conn), attr))
        except Exception:
            return True
        return not value if negated else value

    pool._is_closed = is_closed
    pool._closed_attr = attr
    pool._closed_negated = negated


class _Alive:
    """A connection flag that is ``not closed``, and raises when told to."""

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        if getattr(obj, "flag_broken", False):
            raise RuntimeError("flag unreadable")
        return not obj.closed


def test_a_closed_flag_discards_the_connection_on_return(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    _hint_closed_flag(pool, "closed", False)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    conn = pool.get()
    assert raw_of(conn) is raw  # an open connection is kept
    raw.closed = True
    pool.put(conn)
    assert pool.current_size == 0
    assert pool.stats()["discarded_dead"] == 1
    conn = pool.get()
    assert raw_of(conn) is not raw
    pool.put(conn)


@pytest.mark.parametrize("broken", [False, True], ids=["closed", "unreadable"])
def test_a_negated_flag_or_one_that_raises_means_closed(
    pool_cls, db, make_pool, broken
):
    from tests.fakedb import FakeConnection

    FakeConnection.alive = _Alive()
    try:
        pool = make_pool(pool_cls, db, max_size=1)
        _hint_closed_flag(pool, "alive", True)  # closed = not conn.alive
        conn = pool.get()
        raw = raw_of(conn)
        pool.put(conn)
        conn = pool.get()
        assert raw_of(conn) is raw
        if broken:
            raw.flag_broken = True
        else:
            raw.closed = True
        pool.put(conn)
        assert pool.current_size == 0
        assert pool.stats()["discarded_dead"] == 1
    finally:
        del FakeConnection.alive


@pytest.mark.parametrize(
    "status, rolled_back",
    [(0, False), (2, True), (RuntimeError("status unknown"), True), ("2", True)],
    ids=["idle", "in transaction", "raises", "not an int"],
)
def test_the_status_method_decides_the_rollback(
    pool_cls, make_pool, status, rolled_back
):
    from tests.fakedb import FakeDB

    db = FakeDB(report_status=True)
    pool = make_pool(pool_cls, db, max_size=1)
    pool.put(pool.get())
    conn = pool.get()
    raw = raw_of(conn)
    raw.status_value = status
    # As Psycopg2Driver.status_method: 0 means idle, anything else (or an
    # error) a rollback.
    pool._status_method = "status_code"
    before = raw.rollbacks
    # The driver's own report (in_transaction) says idle; the status method
    # decides where the C code uses it, the status getter elsewhere: make
    # both say the same.
    rec = conn._record
    rec.status = lambda c: None if isinstance(status, Exception) or status else False
    pool.put(conn)
    assert (raw.rollbacks - before == 1) is rolled_back
    assert pool.current_size == 1


def test_cursor_goes_to_the_lent_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = raw_of(conn)
    before = raw.cursors
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert raw.cursors == before + 1
    assert raw.executed[-1][0] == "SELECT 1"
    calls = []
    real = type(raw).cursor

    def recording(self, *args, **kwargs):
        calls.append((args, kwargs))
        return real(self, *args, **kwargs)

    type(raw).cursor = recording
    try:
        conn.cursor("named", scrollable=True)
        conn.cursor(*range(9), key=1)  # more arguments than fit the C buffer
    finally:
        type(raw).cursor = real
    assert calls == [(("named",), {"scrollable": True}), (tuple(range(9)), {"key": 1})]
    pool.put(conn)
    with pytest.raises(db_pool.ConnectionReturnedError):
        conn.cursor()


@speedups
def test_cursor_is_the_c_method_and_keeps_the_python_one():
    cls = db_pool.PooledConnectionWrapper
    assert not inspect.isfunction(cls.__dict__["cursor"])
    assert inspect.isfunction(cls._py_cursor)


def test_a_detached_or_direct_wrapper_still_has_a_cursor(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = pool._unwrap_connection(conn)
    assert raw is not None
    direct = db_pool.PooledConnectionWrapper(db.connect())
    assert direct.cursor() is not None
    pool.put(conn)


def test_a_subclass_cursor_is_used(pool_cls, db, make_pool):
    class Wrapper(db_pool.PooledConnectionWrapper):
        __slots__ = ()

        def cursor(self, *args, **kwargs):
            return ("mine", super().cursor(*args, **kwargs))

    class Pool(pool_cls):
        wrapper_class = Wrapper

    pool = make_pool(Pool, db, max_size=1)
    conn = pool.get()
    assert conn.cursor()[0] == "mine"
    pool.put(conn)


def test_a_returned_wrapper_is_finalized_without_the_pool(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    pool.put(conn)
    dropped = []
    pool._reclaim_dropped = lambda *args: dropped.append(args)
    del conn
    gc.collect()
    assert dropped == []


def test_a_lent_wrapper_dropped_is_still_reclaimed(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    with pytest.warns(db_pool.ConnectionLeakWarning):
        del conn
        gc.collect()
        eventlet.sleep(0.01)  # the reclaim runs from the hub
        conn = pool.get(timeout=2)
    pool.put(conn)


def test_settings_changed_on_a_live_pool_take_effect(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    pool.pool_timeout = 0.05
    with pytest.raises(db_pool.PoolTimeout):
        pool.get()
    pool.pool_timeout = None
    pool.max_waiting = 0
    with pytest.raises(db_pool.TooManyWaiters):
        pool.get()
    pool.max_waiting = None
    fired = []
    pool.add_listener({"pool_at_max": lambda info: fired.append(info["pool"])})
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(timeout=0.05)
    assert fired == [pool.name]
    pool.put(held)


class _HookedGreenlet(eventlet.greenthread.GreenThread):
    """A green thread with eventlet's ``switch_out`` hook (as the backdoor's
    console has): the hub calls it whenever the thread yields."""

    switched_out = 0

    def switch_out(self):
        type(self).switched_out += 1


def test_a_waiter_with_a_switch_out_hook_gets_it_called(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    held = pool.get()
    hub = eventlet.hubs.get_hub()
    got = []

    def waiter():
        conn = pool.get(timeout=5)
        got.append(conn)
        pool.put(conn)

    _HookedGreenlet.switched_out = 0
    gt = _HookedGreenlet(hub.greenlet)
    hub.schedule_call_global(0, gt.switch, waiter, (), {})
    eventlet.sleep(0)
    eventlet.sleep(0)
    assert pool.waiting() == 1
    assert _HookedGreenlet.switched_out >= 1
    pool.put(held)
    gt.wait()
    assert len(got) == 1
