"""The eventlet.db_pool-compatible surface, over both pool variants.

Each test pins down one name or edge case from the "Contract" section of
DESIGN.md: the constructor, get/put/put(None), item(), clear(), free(),
waiting(), current_size, free_items, create(), connect(),
_unwrap_connection, _safe_close, the cleanup rules, 0 meaning "close on
return", and what a returned wrapper does.
"""

from __future__ import annotations

import collections
import gc
import inspect

import eventlet
import eventlet.event
import eventlet.tpool
import pytest

import db_pool
from tests.fakedb import FakeConnection, FakeDB, OperationalError
from tests.unit._fakes import raw_of, unproxy


def spawn_getter(pool, **kwargs):
    """Start a green thread blocked in ``pool.get()``; returns (thread, event)."""
    done = eventlet.event.Event()

    def run():
        try:
            done.send(pool.get(**kwargs))
        except BaseException as exc:  # handed to the test
            done.send_exception(exc)

    thread = eventlet.spawn(run)
    return thread, done


def queue_in_order(pool, count, hold=0.0):
    """Start *count* green threads that each get() a connection, note their
    number in the returned list, hold the connection *hold* seconds and put
    it back; each one is in line before the next arrives.  Returns
    ``(threads, order)``."""
    order = []

    def worker(n):
        conn = pool.get()
        order.append(n)
        if hold:
            eventlet.sleep(hold)
        pool.put(conn)

    threads = []
    for n in range(count):
        threads.append(eventlet.spawn(worker, n))
        settle(1)  # n is queued before n + 1 arrives
    return threads, order


def settle(times=3):
    """Let every runnable green thread run up to its next block."""
    for _ in range(times):
        eventlet.sleep(0)


def wait_until(predicate, timeout=5.0, step=0.005):
    """Poll *predicate* (green) until it is true; fail after *timeout*."""
    with eventlet.Timeout(
        timeout, AssertionError("condition not reached in %ss" % timeout)
    ):
        while not predicate():
            eventlet.sleep(step)


# -- names and the constructor -------------------------------------------------


def test_public_names_and_aliases():
    assert db_pool.ConnectionPool is db_pool.TpooledConnectionPool
    for cls in (db_pool.RawConnectionPool, db_pool.TpooledConnectionPool):
        assert issubclass(cls, db_pool.BaseConnectionPool)
    assert issubclass(db_pool.PooledConnectionWrapper, db_pool.GenericConnectionWrapper)
    assert issubclass(db_pool.ConnectTimeout, Exception)
    assert callable(db_pool.cleanup_rollback)
    assert callable(db_pool.DatabaseConnector)


def test_constructor_signature_and_defaults_match_eventlet(pool_cls):
    params = list(inspect.signature(pool_cls.__init__).parameters.values())
    positional = [
        (p.name, p.default)
        for p in params[1:]
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert positional == [
        ("db_module", inspect.Parameter.empty),
        ("min_size", 0),
        ("max_size", 4),
        ("max_idle", 10),
        ("max_age", 30),
        ("connect_timeout", 5),
        ("cleanup", db_pool.cleanup_rollback),
    ]
    kinds = [p.kind for p in params]
    assert inspect.Parameter.VAR_POSITIONAL in kinds
    assert kinds[-1] is inspect.Parameter.VAR_KEYWORD


def test_defaults_are_exposed(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    assert (pool.min_size, pool.max_size) == (0, 4)
    assert (pool.max_idle, pool.max_age, pool.connect_timeout) == (10, 30, 5)
    assert pool.cleanup is db_pool.cleanup_rollback
    assert pool.current_size == 0
    assert pool.free() == 4
    assert pool.waiting() == 0


def test_extra_positional_and_keyword_arguments_go_to_connect(pool_cls, db, make_pool):
    pool = make_pool(
        pool_cls,
        db,
        0,
        2,
        10,
        30,
        5,
        db_pool.cleanup_rollback,
        "dsn-part",
        42,
        host="db.example",
        port=5433,
    )
    conn = pool.get()
    assert db.connect_args == [(("dsn-part", 42), {"host": "db.example", "port": 5433})]
    assert raw_of(conn).args == ("dsn-part", 42)
    pool.put(conn)


def test_connect_args_option_merges_with_loose_keywords(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, connect_args={"user": "u"}, host="h")
    pool.put(pool.get())
    assert db.connect_args == [((), {"user": "u", "host": "h"})]


# -- get / put -----------------------------------------------------------------


def test_get_returns_a_wrapper_around_a_new_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    conn = pool.get()
    assert isinstance(conn, db_pool.PooledConnectionWrapper)
    assert isinstance(conn, db_pool.GenericConnectionWrapper)
    assert isinstance(raw_of(conn), FakeConnection)
    assert bool(conn) is True
    assert pool.current_size == 1
    assert pool.free() == 1
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall() == [(1,)]
    pool.put(conn)


def test_put_makes_the_connection_free_and_it_is_reused(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    assert pool.free() == 2
    assert pool.current_size == 1
    assert len(pool.free_items) == 1
    assert not conn  # the wrapper is spent
    again = pool.get()
    assert raw_of(again) is raw
    assert db.connect_calls == 1
    pool.put(again)


def test_put_rolls_back_by_default(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    conn.cursor().execute("INSERT 1")
    raw = raw_of(conn)
    assert raw.transaction_open
    pool.put(conn)
    assert raw.rollbacks == 1
    assert not raw.transaction_open


def test_put_does_not_double_wrap(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    pool.put(conn)
    conn = pool.get()
    assert not isinstance(conn._base, db_pool.GenericConnectionWrapper)
    assert isinstance(raw_of(conn), FakeConnection)
    pool.put(conn)


def test_two_simultaneous_connections_are_distinct(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    a, b = pool.get(), pool.get()
    assert raw_of(a) is not raw_of(b)
    assert pool.free() == 0
    pool.put(a)
    pool.put(b)
    assert pool.free() == 2


def test_get_with_a_free_connection_does_not_yield(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    pool.put(pool.get())
    ran = []
    eventlet.spawn(ran.append, 1)
    conn = pool.get()
    assert ran == []  # the other green thread never got to run
    pool.put(conn)
    settle()
    assert ran == [1]


def test_put_none_frees_a_slot(pool):
    conn = pool.get()
    assert pool.free() == 0
    pool.put(None)
    assert pool.free() == 1
    assert pool.current_size == 0
    other = pool.get()
    assert raw_of(other) is not raw_of(conn)
    assert other.cursor  # usable
    pool.put(other)


def test_put_none_lets_a_waiter_open_a_new_connection(pool, db):
    conn = pool.get()
    thread, done = spawn_getter(pool)
    settle()
    assert pool.waiting() == 1
    pool.put(None)
    got = done.wait()
    assert pool.waiting() == 0
    assert db.connect_calls == 2
    assert raw_of(got) is not raw_of(conn)
    assert pool.current_size == 1
    pool.put(got)


def test_put_none_then_the_old_wrapper_never_grows_the_pool(pool, db):
    """After ``put(None)`` gave up the slot of a lent connection, bringing
    that connection back must not leave the pool holding more than
    max_size connections (eventlet's own tests do exactly this)."""
    conn = pool.get()
    pool.put(None)
    other = pool.get()
    pool.put(other)
    pool.put(conn)
    assert pool.current_size <= pool.max_size
    assert len(pool.free_items) <= pool.current_size
    assert pool.free() == pool.max_size
    assert len(db.open_connections()) <= pool.max_size
    pool.clear()
    assert pool.current_size == 0
    assert pool.free() == pool.max_size


def test_put_none_then_the_old_wrapper_is_dropped(pool, db):
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(None)  # "I lost that connection"
    assert pool.current_size == 0
    with pytest.warns(db_pool.ConnectionLeakWarning):
        del conn
        gc.collect()
        wait_until(lambda: raw.closed)  # its slot was given up: closed
    settle()
    assert pool.current_size == 0
    assert pool.free() == 1
    assert len(pool.free_items) == 0


def test_put_none_with_nothing_checked_out_is_ignored(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    pool.put(pool.get())
    pool.put(None)
    assert pool.current_size == 1
    assert pool.free() == 2  # not 3: no slot was given up
    conns = [pool.get(), pool.get()]
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(block=False)
    for c in conns:
        pool.put(c)


def test_unwrapped_then_put_none_then_dropped_frees_one_slot(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    keep = pool.get()
    conn = pool.get()
    raw = pool._unwrap_connection(conn)
    pool.put(None)
    assert pool.current_size == 1
    with pytest.warns(db_pool.ConnectionLeakWarning):
        del conn
        gc.collect()
        wait_until(lambda: pool.stats()["leaks_reclaimed"] == 1)
    settle()
    assert pool.current_size == 1  # still the one held by `keep`
    assert pool.free() == 1
    pool.put(keep)
    assert pool.free() == 2
    raw.close()


def test_put_of_a_returned_wrapper_is_harmless(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    pool.put(conn)
    conn.close()
    pool.put(conn)
    assert pool.current_size == 1
    assert pool.free() == 2
    assert len(pool.free_items) == 1
    assert raw.rollbacks == 1
    assert not raw.closed


def test_put_into_another_pool_frees_the_slot_of_the_first(pool_cls, db, make_pool):
    """eventlet's own tests put an old pool's connection into its
    replacement: the old pool gets its slot back; the new one keeps the
    connection (same driver, same connect arguments) within its size."""
    first = make_pool(pool_cls, db, max_size=1)
    second = make_pool(pool_cls, db, max_size=1)
    conn = first.get()
    raw = raw_of(conn)
    second.put(conn)
    assert not conn
    assert (first.current_size, first.free(), len(first.free_items)) == (0, 1, 0)
    assert (second.current_size, len(second.free_items)) == (1, 1)
    assert not raw.closed
    again = second.get()
    assert raw_of(again) is raw
    second.put(again)
    second.clear()
    assert raw.closed


def test_put_into_a_pool_of_another_database_closes_it(pool_cls, db, make_pool):
    first = make_pool(pool_cls, db, max_size=1, database="a")
    second = make_pool(pool_cls, db, max_size=1, database="b")
    conn = first.get()
    raw = raw_of(conn)
    second.put(conn)
    assert raw.closed  # never handed out by a pool that would not open it
    assert (first.current_size, first.free()) == (0, 1)
    assert (second.current_size, len(second.free_items)) == (0, 0)


# -- cleanup -------------------------------------------------------------------


def test_put_with_cleanup_none_skips_the_cleanup(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    conn.cursor().execute("INSERT 1")
    raw = raw_of(conn)
    pool.put(conn, cleanup=None)
    assert raw.rollbacks == 0
    assert raw.transaction_open
    assert pool.free() == 4 and len(pool.free_items) == 1


def test_put_with_a_custom_cleanup(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    seen = []
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn, cleanup=seen.append)
    assert [unproxy(c) for c in seen] == [raw]
    assert raw.rollbacks == 0


def test_constructor_cleanup_none_keeps_connections(pool_cls, db, make_pool):
    # eventlet discards every connection on return in this case; we keep them.
    pool = make_pool(pool_cls, db, cleanup=None)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    assert raw.rollbacks == 0
    assert not raw.closed
    assert len(pool.free_items) == 1
    again = pool.get()
    assert raw_of(again) is raw
    assert db.connect_calls == 1
    pool.put(again)


def test_cleanup_raising_an_error_discards_the_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = raw_of(conn)

    def bad_cleanup(c):
        raise OperationalError("rollback failed")

    pool.put(conn, cleanup=bad_cleanup)
    assert raw.closed
    assert pool.current_size == 0
    assert pool.free() == 1
    again = pool.get()
    assert raw_of(again) is not raw
    pool.put(again)


def test_failing_default_rollback_discards_the_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = raw_of(conn)
    raw.rollback_error = OperationalError("gone")
    pool.put(conn)
    assert raw.closed
    assert (pool.current_size, pool.free(), len(pool.free_items)) == (0, 1, 0)


def test_cleanup_raising_keyboard_interrupt_propagates_and_loses_no_slot(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()

    def interrupted(c):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool.put(conn, cleanup=interrupted)
    assert pool.free() == 1
    assert pool.current_size == 0
    assert not conn
    again = pool.get()  # no hang: the slot came back
    pool.put(again)


# -- item() --------------------------------------------------------------------


def test_item_context_manager(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    with pool.item() as conn:
        assert isinstance(conn, db_pool.PooledConnectionWrapper)
        assert pool.free() == 1
        conn.cursor().execute("UPDATE t")
        raw = raw_of(conn)
    assert pool.free() == 2
    assert raw.rollbacks == 1
    assert not conn


def test_item_returns_the_connection_on_error(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=2)
    with pytest.raises(ZeroDivisionError):
        with pool.item() as conn:
            raise ZeroDivisionError("in the block")
    assert pool.free() == 2
    assert not conn


def test_item_with_cleanup_none(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    with pool.item(cleanup=None) as conn:
        conn.cursor().execute("UPDATE t")
        raw = raw_of(conn)
    assert raw.rollbacks == 0


# -- clear / free / waiting / free_items ---------------------------------------


def test_clear_closes_free_connections_and_lowers_current_size(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=3)
    a, b, c = pool.get(), pool.get(), pool.get()
    raws = [raw_of(x) for x in (a, b, c)]
    pool.put(a)
    pool.put(b)
    assert pool.current_size == 3
    pool.clear()
    assert len(pool.free_items) == 0
    assert pool.current_size == 1
    assert raws[0].closed and raws[1].closed
    assert not raws[2].closed  # a lent connection is never touched
    assert pool.free() == 2
    pool.put(c)
    assert pool.current_size == 1 and len(pool.free_items) == 1


def test_free_items_is_a_deque_of_three_tuples(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=3)
    conns = [pool.get() for _ in range(3)]
    raws = {id(raw_of(c)) for c in conns}
    for c in conns:
        pool.put(c)
    assert isinstance(pool.free_items, collections.deque)
    assert len(pool.free_items) == 3
    for item in pool.free_items:
        assert len(item) == 3
        last_used, created_at, conn = item
        assert isinstance(last_used, float) and isinstance(created_at, float)
        assert created_at <= last_used
        assert id(unproxy(conn)) in raws
        assert item[2] is conn


def test_min_size_prefills_free_items(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, min_size=2, max_size=4)
    assert db.connect_calls == 2
    assert pool.current_size == 2
    assert len(pool.free_items) == 2
    assert pool.free() == 4
    for _last_used, _created_at, conn in pool.free_items:
        assert isinstance(unproxy(conn), FakeConnection)


def test_waiting_counts_blocked_getters(pool, db):
    conn = pool.get()
    threads = [spawn_getter(pool) for _ in range(3)]
    settle()
    assert pool.waiting() == 3
    assert pool.free() == 0
    pool.put(conn)
    for _thread, done in threads:
        got = done.wait()
        pool.put(got)
    assert pool.waiting() == 0
    assert db.connect_calls == 1


# -- create / connect ----------------------------------------------------------


def test_create_returns_last_used_created_at_conn(pool_cls, db, make_pool):
    pool = make_pool(
        pool_cls, db, 0, 4, 10, 30, 5, db_pool.cleanup_rollback, "arg", k=1
    )
    result = pool.create()
    assert isinstance(result, tuple) and len(result) == 3
    last_used, created_at, conn = result
    assert isinstance(last_used, float) and isinstance(created_at, float)
    assert isinstance(unproxy(conn), FakeConnection)
    assert unproxy(conn).args == ("arg",) and unproxy(conn).kwargs == {"k": 1}
    if pool_cls is db_pool.TpooledConnectionPool:
        assert isinstance(conn, eventlet.tpool.Proxy)
    # create() opens a connection for the caller; the pool does not own it.
    assert pool.current_size == 0
    conn.close()


def test_connect_is_a_classmethod(pool_cls, db):
    conn = pool_cls.connect(db, 5, "a", b=2)
    raw = unproxy(conn)
    assert isinstance(raw, FakeConnection)
    assert raw.args == ("a",) and raw.kwargs == {"b": 2}
    if pool_cls is db_pool.TpooledConnectionPool:
        assert isinstance(conn, eventlet.tpool.Proxy)
    else:
        assert conn is raw
    conn.close()


def test_a_subclass_may_override_create(pool_cls, db, make_pool):
    made = []

    class Custom(pool_cls):
        def create(self):
            result = super().create()
            made.append(result[2])
            return result

    pool = make_pool(Custom, db, max_size=1)
    conn = pool.get()
    assert made and conn._base is made[0]
    pool.put(conn)


def test_tpooled_pool_hands_out_tpool_proxies(db, make_pool):
    pool = make_pool(db_pool.TpooledConnectionPool, db)
    conn = pool.get()
    assert isinstance(conn._base, eventlet.tpool.Proxy)
    cursor = conn.cursor()
    assert isinstance(cursor, eventlet.tpool.Proxy)  # cursors run in threads too
    cursor.execute("SELECT 1")
    assert cursor.fetchone() == (1,)
    pool.put(conn)


def test_raw_pool_hands_out_the_drivers_connections(db, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, db)
    conn = pool.get()
    assert type(conn._base) is FakeConnection
    pool.put(conn)


# -- _unwrap_connection / _safe_close ------------------------------------------


class _Duck:
    _base = "hi"


def test_unwrap_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    assert pool._unwrap_connection(None) is None
    assert pool._unwrap_connection(1) is None
    assert pool._unwrap_connection("junk") is None
    assert pool._unwrap_connection(object()) is None
    assert pool._unwrap_connection(_Duck()) == "hi"  # duck typing on _base
    conn = pool.get()
    raw = conn._base
    assert pool._unwrap_connection(conn) is raw
    assert not conn
    assert not isinstance(raw, db_pool.GenericConnectionWrapper)
    raw.close()


def test_unwrapped_connection_gives_its_slot_back_once(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = pool._unwrap_connection(conn)
    assert pool.free() == 0  # still taken until the wrapper is put back
    pool.put(conn)
    assert pool.free() == 1
    assert pool.current_size == 0
    assert not unproxy(raw).closed  # the caller owns it now
    raw.close()


def test_safe_close(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    raw = FakeDB().connect()
    pool._safe_close(raw)
    assert raw.closed
    pool._safe_close(None)
    pool._safe_close("junk")
    noisy = FakeDB().connect()
    noisy.close_error = OperationalError("close failed")
    pool._safe_close(noisy)
    pool._safe_close(noisy, quiet=True)
    assert noisy.close_calls == 2
    stubborn = FakeDB().connect()
    stubborn.close_error = KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        pool._safe_close(stubborn)


def test_safe_close_of_a_wrapper_returns_it(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1)
    conn = pool.get()
    raw = raw_of(conn)
    pool._safe_close(conn)
    assert not conn
    assert pool.free() == 1
    assert not raw.closed
    assert len(pool.free_items) == 1


# -- zero lifetimes, raising connect, discarded returns ------------------------


@pytest.mark.parametrize("option", ["max_idle", "max_age"])
def test_zero_lifetime_closes_on_return(pool_cls, db, make_pool, option):
    pool = make_pool(pool_cls, db, max_size=2, **{option: 0})
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    assert raw.closed
    assert pool.current_size == 0
    assert len(pool.free_items) == 0
    assert pool.free() == 2
    again = pool.get()
    assert raw_of(again) is not raw
    pool.put(again)
    assert db.open_count == 0


def test_raising_connect_loses_no_capacity(pool_cls, db, make_pool):
    # A short reconnect backoff: after a failed connect the pool answers
    # with the same error at once until the retry time (tested elsewhere).
    pool = make_pool(pool_cls, db, max_size=2, reconnect_delay=(0.001, 0.002))
    db.fail_next(3, OperationalError("refused"))
    for _ in range(3):
        with pytest.raises(OperationalError):
            pool.get()
        assert pool.current_size == 0
        assert pool.free() == 2
        eventlet.sleep(0.005)  # past the retry time
    assert db.connect_failures == 3
    a, b = pool.get(), pool.get()
    assert pool.current_size == 2
    pool.put(a)
    pool.put(b)


def test_raising_connect_of_any_error_type(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, max_size=1, reconnect_delay=(0.001, 0.002))
    db.connect_error = RuntimeError("not a DB-API error")
    with pytest.raises(RuntimeError):
        pool.get()
    assert pool.free() == 1
    db.connect_error = None
    eventlet.sleep(0.005)
    pool.put(pool.get())


def test_raising_connect_passes_the_slot_to_a_waiter(pool, db):
    """A waiter behind a failed connect still gets its turn."""
    conn = pool.get()
    thread, done = spawn_getter(pool)
    settle()
    db.fail_next(1)
    pool.put(None)  # the waiter will have to connect
    with pytest.raises(OperationalError):
        done.wait()
    assert pool.current_size == 0 and pool.free() == 1
    del conn


def test_waiter_is_woken_when_the_returned_connection_is_discarded(
    pool_cls, db, make_pool
):
    pool = make_pool(pool_cls, db, max_size=1, max_age=0)
    conn = pool.get()
    assert (pool.free(), pool.waiting()) == (0, 0)
    thread, done = spawn_getter(pool)
    settle()
    assert (pool.free(), pool.waiting()) == (0, 1)
    pool.put(conn)
    with eventlet.Timeout(2):
        got = done.wait()
    assert (pool.free(), pool.waiting()) == (0, 0)
    assert raw_of(got) is not None and not raw_of(got).closed
    pool.put(got)
    assert pool.free() == 1


def test_waiter_is_woken_when_cleanup_fails(pool, db):
    conn = pool.get()
    raw_of(conn).rollback_error = OperationalError("dead")
    thread, done = spawn_getter(pool)
    settle()
    pool.put(conn)
    with eventlet.Timeout(2):
        got = done.wait()
    assert db.connect_calls == 2
    pool.put(got)


# -- the returned wrapper ------------------------------------------------------


def test_close_on_a_wrapper_returns_it(pool, db):
    conn = pool.get()
    raw = raw_of(conn)
    assert pool.free() == 0
    conn.close()
    assert pool.free() == 1
    assert not raw.closed
    assert raw.rollbacks == 1
    assert bool(conn) is False


def test_a_returned_wrapper_refuses_to_work(pool):
    conn = pool.get()
    conn.close()
    # The style of eventlet's own tests: fetching the method works, calling fails.
    with pytest.raises(AttributeError):
        conn.cursor()
    cursor = conn.cursor
    with pytest.raises(AttributeError) as info:
        cursor()
    assert isinstance(info.value, db_pool.ConnectionReturnedError)
    assert "returned to the pool" in str(info.value)
    with pytest.raises(AttributeError) as info:
        _ = conn.commits  # a plain attribute of the driver's connection
    assert "returned to the pool" in str(info.value)
    with pytest.raises(AttributeError):
        conn.autocommit = True


def test_assert_raises_style_on_a_returned_wrapper(pool):
    import unittest

    case = unittest.TestCase()
    conn = pool.get()
    conn.close()
    case.assertRaises(AttributeError, conn.cursor)
    case.assertRaises(AttributeError, conn.rollback)
    case.assertRaises(AttributeError, conn.commit)
    case.assertFalse(conn)


def test_a_returned_wrapper_never_reaches_the_connection(pool):
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    commits, cursors = raw.commits, raw.cursors
    for name in ("cursor", "commit", "rollback", "ping"):
        with pytest.raises(AttributeError):
            getattr(conn, name)()
    assert (raw.commits, raw.cursors) == (commits, cursors)
    # The next holder's connection is untouched by the old wrapper.
    other = pool.get()
    assert raw_of(other) is raw
    with pytest.raises(AttributeError):
        conn.cursor()
    pool.put(other)


def test_generic_wrapper_passes_everything_through():
    raw = FakeDB().connect()
    wrapper = db_pool.GenericConnectionWrapper(raw)
    assert wrapper._base is raw
    wrapper.cursor().execute("x")
    wrapper.commit()
    assert raw.commits == 1
    wrapper.autocommit = True
    assert raw.autocommit is True
