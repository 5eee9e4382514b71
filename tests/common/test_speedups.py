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
