"""Code written for eventlet.db_pool, run against db_pool with fakes.

Written the way such code and its tests are: unittest classes whose setUp
checks a connection out of a one-connection pool and whose tearDown puts it
back (whatever the test did to it) and clears the pool, pools replaced in
the middle of a test, minimal driver modules that are plain objects with a
``connect`` method and connections that have nothing but ``rollback``.
After every test, the pool's books must still balance.
"""

from __future__ import annotations

import unittest
from unittest import mock

import eventlet
import eventlet.tpool

import db_pool
from tests.fakedb import FakeDB


class _BareConnection:
    """A connection with nothing but rollback(): no close(), no cursor()."""

    def __init__(self):
        self.rollbacks = 0

    def rollback(self):
        self.rollbacks += 1


class _BareModule:
    """A driver "module" that is an instance with only connect()."""

    def __init__(self):
        self.made = []

    def connect(self, *args, **kwargs):
        conn = _BareConnection()
        self.made.append((args, kwargs, conn))
        return conn


class _RefusingModule:
    def connect(self, *args, **kwargs):
        raise RuntimeError("no database here")


class _PoolTests:
    """The shared cases; subclasses name the pool class."""

    pool_class = None

    def create_pool(
        self,
        min_size=0,
        max_size=1,
        max_idle=10,
        max_age=10,
        connect_timeout=0.5,
        module=None,
    ):
        return self.pool_class(
            module if module is not None else self.db,
            min_size=min_size,
            max_size=max_size,
            max_idle=max_idle,
            max_age=max_age,
            connect_timeout=connect_timeout,
            host="127.0.0.1",
            user="tester",
        )

    def setUp(self):
        self.db = FakeDB()
        self.pools = []
        self.pool = self.create_pool()
        self.connection = self.pool.get()

    def tearDown(self):
        if self.connection:
            self.pool.put(self.connection)
        self.pool.clear()
        self.pools.append(self.pool)
        for pool in self.pools:
            self.assert_books_balance(pool)
            pool.close()
        self.db.release()

    def assert_books_balance(self, pool):
        size = pool.current_size
        self.assertGreaterEqual(size, 0)
        self.assertLessEqual(size, pool.max_size)
        self.assertLessEqual(len(pool.free_items), size)
        self.assertLessEqual(pool.free(), pool.max_size)

    def replace_pool(self, **kwargs):
        self.pools.append(self.pool)
        self.pool = self.create_pool(**kwargs)

    # -- the cases -----------------------------------------------------------

    def test_connecting(self):
        self.assertIsNotNone(self.connection)

    def test_cursor_and_query(self):
        cursor = self.connection.cursor()
        cursor.execute("select 1")
        self.assertTrue(cursor.fetchall())
        cursor.close()

    def test_put_none(self):
        self.assertEqual(self.pool.free(), 0)
        self.pool.put(None)
        self.assertEqual(self.pool.free(), 1)
        conn2 = self.pool.get()
        self.assertIsNotNone(conn2)
        self.assertTrue(conn2.cursor)
        self.pool.put(conn2)
        # tearDown then puts the first connection back as well.

    def test_close_does_a_put(self):
        self.assertEqual(self.pool.free(), 0)
        self.connection.close()
        self.assertEqual(self.pool.free(), 1)
        self.assertRaises(AttributeError, self.connection.cursor)

    def test_put_doesnt_double_wrap(self):
        self.pool.put(self.connection)
        conn = self.pool.get()
        self.assertNotIsInstance(conn._base, db_pool.PooledConnectionWrapper)
        self.pool.put(conn)

    def test_bool(self):
        self.assertTrue(self.connection)
        self.connection.close()
        self.assertFalse(self.connection)

    def test_query_in_another_green_thread_does_not_block(self):
        cursor = self.connection.cursor()
        results = []
        done = eventlet.Event()

        def query():
            cursor.execute("select 1")
            results.append(2)
            done.send()

        eventlet.spawn(query)
        results.append(1)
        self.assertEqual(results, [1])
        done.wait()
        self.assertEqual(results, [1, 2])

    def test_clear_after_putting_the_old_pools_connection_in_a_new_pool(self):
        self.replace_pool()
        self.pool.put(self.connection)
        self.pool.clear()
        self.assertEqual(len(self.pool.free_items), 0)

    def test_clear_warmup(self):
        self.replace_pool(min_size=1)
        self.pool.clear()
        self.assertEqual(len(self.pool.free_items), 0)

    def test_unwrap_connection(self):
        self.assertIsInstance(self.connection, db_pool.GenericConnectionWrapper)
        conn = self.pool._unwrap_connection(self.connection)
        self.assertNotIsInstance(conn, db_pool.GenericConnectionWrapper)
        self.assertIsNone(self.pool._unwrap_connection(None))
        self.assertIsNone(self.pool._unwrap_connection(1))
        duck = mock.Mock()
        duck._base = "hi"
        self.assertEqual(self.pool._unwrap_connection(duck), "hi")
        conn.close()

    def test_safe_close(self):
        self.pool._safe_close(self.connection, quiet=True)
        self.assertEqual(len(self.pool.free_items), 1)
        self.pool._safe_close(None)
        self.pool._safe_close(1)
        fatal = mock.Mock()
        fatal.close = mock.Mock(side_effect=KeyboardInterrupt)
        self.assertRaises(KeyboardInterrupt, self.pool._safe_close, fatal)
        noisy = mock.Mock()
        noisy.close = mock.Mock(side_effect=RuntimeError("logged, not raised"))
        self.pool._safe_close(noisy, quiet=False)

    def test_zero_max_idle(self):
        self.pool.put(self.connection)
        self.pool.clear()
        self.replace_pool(max_size=2, max_idle=0)
        self.connection = self.pool.get()
        self.connection.close()
        self.assertEqual(len(self.pool.free_items), 0)

    def test_zero_max_age(self):
        self.pool.put(self.connection)
        self.pool.clear()
        self.replace_pool(max_size=2, max_age=0)
        self.connection = self.pool.get()
        self.connection.close()
        self.assertEqual(len(self.pool.free_items), 0)

    def test_waiters_get_woken(self):
        self.pool.put(self.connection)
        self.pool.clear()
        self.replace_pool(max_size=1, max_age=0)
        self.connection = self.pool.get()
        self.assertEqual((self.pool.free(), self.pool.waiting()), (0, 0))
        got = eventlet.Event()
        eventlet.spawn(lambda: got.send(self.pool.get()))
        eventlet.sleep(0)
        eventlet.sleep(0)
        self.assertEqual((self.pool.free(), self.pool.waiting()), (0, 1))
        self.pool.put(self.connection)
        with eventlet.Timeout(1):
            conn = got.wait()
        self.assertEqual((self.pool.free(), self.pool.waiting()), (0, 0))
        self.pool.put(conn)

    def test_raising_create(self):
        self.replace_pool(max_size=1, module=_RefusingModule())
        self.assertRaises(RuntimeError, self.pool.get)
        self.assertEqual(self.pool.free(), 1)

    def test_max_idle_expiry(self):
        self.pool.put(self.connection)
        self.pool.clear()
        self.replace_pool(max_size=2, max_idle=0.1)
        self.connection = self.pool.get()
        self.connection.close()
        self.assertEqual(len(self.pool.free_items), 1)
        eventlet.sleep(0.03)
        self.assertEqual(len(self.pool.free_items), 1)
        for _ in range(100):
            if not self.pool.free_items:
                break
            eventlet.sleep(0.02)
        self.assertEqual(len(self.pool.free_items), 0)
        self.assertEqual(self.pool.current_size, 0)


class RawStyleTests(_PoolTests, unittest.TestCase):
    pool_class = db_pool.RawConnectionPool


class TpooledStyleTests(_PoolTests, unittest.TestCase):
    pool_class = db_pool.TpooledConnectionPool

    def tearDown(self):
        super().tearDown()
        eventlet.tpool.killall()  # as eventlet's own suite does


# -- module-level cases with minimal driver modules ----------------------------


def test_min_size_with_a_bare_module_and_a_dsn_keyword():
    module = _BareModule()
    pool = db_pool.RawConnectionPool(
        module, dsn="dbname=test port=5433", min_size=3, max_size=5
    )
    assert len(module.made) == 3
    conn = pool.get()
    pool.put(conn)
    assert module.made[0][1] == {"dsn": "dbname=test port=5433"}
    pool.clear()  # connections without close(): nothing breaks
    assert pool.current_size == 0
    pool.close()


def test_custom_cleanup_is_called_on_put_and_item():
    cleanup = mock.Mock()
    pool = db_pool.RawConnectionPool(_BareModule(), cleanup=cleanup)
    pool.put(pool.get())
    assert cleanup.call_count == 1
    with pool.item():
        pass
    assert cleanup.call_count == 2
    pool.close()


def test_put_cleanup_argument_that_raises():
    cleanup = mock.Mock(side_effect=NotImplementedError)
    pool = db_pool.RawConnectionPool(_BareModule())
    pool.put(pool.get(), cleanup=cleanup)
    assert cleanup.call_count == 1
    assert pool.current_size == 0  # discarded (it has no close(): no matter)
    with pool.item(cleanup=cleanup):
        pass
    assert cleanup.call_count == 2
    pool.close()


def test_fatal_cleanup_propagates():
    calls = []

    def cleanup(conn):
        calls.append(conn)
        raise KeyboardInterrupt

    pool = db_pool.RawConnectionPool(_BareModule(), cleanup=cleanup)
    conn = pool.get()
    try:
        pool.put(conn)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("expected KeyboardInterrupt")
    assert len(calls) == 1
    assert pool.free() == pool.max_size
    pool.close()


def test_clear_updates_current_size():
    pool = db_pool.RawConnectionPool(_BareModule())
    pool.get().close()
    assert pool.current_size == 1
    assert len(pool.free_items) == 1
    pool.clear()
    assert pool.current_size == 0
    assert len(pool.free_items) == 0
    pool.close()
