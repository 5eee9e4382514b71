"""Pieces shared by the real-database tests of the core
(``test_core_pg.py`` and ``test_core_mysql.py``).

- :func:`psycopg_wait_callback`: run with psycopg2 made green, or with its
  wait callback removed (as TpooledConnectionPool needs), and put back
  whatever was installed before;
- :func:`run_pymysql_scenarios`: the PyMySQL scenarios, in a monkey-patched
  interpreter (``tests/isolated/core_pymysql.py``), as a dict;
- :class:`EventletPoolScenarios`: eventlet.db_pool's own test scenarios,
  written anew as a unittest-style mixin and run against each driver and
  pool class with ``from db_pool import ...``.

The scenarios themselves live in ``tests/isolated/core_scenarios.py`` so
that the monkey-patched interpreter can run them too.
"""

from __future__ import annotations

import contextlib
import json
import warnings

import eventlet

import db_pool
from db_pool import GenericConnectionWrapper, PooledConnectionWrapper
from tests.conftest import make_unique_name, run_python
from tests.dbutil import wait_for

__all__ = [
    "EventletPoolScenarios",
    "assert_scenario_ran",
    "psycopg_wait_callback",
    "run_pymysql_scenarios",
]


@contextlib.contextmanager
def psycopg_wait_callback(green):
    """Make psycopg2 green (*green* true) or blocking for the block.

    TpooledConnectionPool runs psycopg2 in OS threads, where a green wait
    callback cannot work, so its tests run with the callback removed.
    The callback that was installed before is restored afterwards.
    """
    from psycopg2 import extensions

    previous = extensions.get_wait_callback()
    if green:
        db_pool.make_psycopg_green()
    else:
        extensions.set_wait_callback(None)
    try:
        yield
    finally:
        extensions.set_wait_callback(previous)


def assert_scenario_ran(result):
    """Fail with the scenario's own traceback if it raised."""
    if "exception" in result:
        raise AssertionError("the scenario raised:\n%s" % result["exception"])
    return result


def run_pymysql_scenarios(mysql_kwargs, marker, names=(), timeout=150):
    """Run PyMySQL scenarios in a monkey-patched interpreter; return
    ``{name: observations}``."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['core_pymysql.py'] + %r\n"
        "runpy.run_path('tests/isolated/core_pymysql.py', run_name='__main__')\n"
        % ([marker] + list(names),)
    )
    result = run_python(
        code, timeout=timeout, env={"DB_POOL_TEST_MYSQL": json.dumps(mysql_kwargs)}
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(
            "the PyMySQL scenarios printed nothing\n--- stderr ---\n%s" % result.stderr
        )
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise AssertionError(
            "the PyMySQL scenarios did not end with a JSON line\n--- stdout ---\n%s"
            "--- stderr ---\n%s" % (result.stdout, result.stderr)
        ) from None


# -- eventlet.db_pool's scenarios ---------------------------------------------------


class RaisingModule:
    """A DB-API module whose connect() always fails."""

    def connect(self, *args, **kwargs):
        raise RuntimeError("this database refuses every connection")


class _Junk:
    """A plain object that tests attach attributes to."""


class EventletPoolScenarios:
    """eventlet.db_pool's own test scenarios, re-expressed.

    Code written against eventlet's pool must keep working with db_pool, so
    these walk the same paths as eventlet's suite does: a fresh database per
    test, a pool of one connection with ``connect_timeout=0.5``, pools
    replaced in the middle of a test, and a tear-down that puts the first
    connection back into whatever pool the test left behind, clears it, and
    drops the database.  That last step fails on PostgreSQL if any session
    is still connected, so the tear-down checks that none is.

    A concrete class mixes this with a driver mixin (which sets ``module``
    and knows how to make and drop databases), sets ``pool_class``, and
    derives from ``unittest.TestCase``.
    """

    pool_class = None
    module = None
    #: SQL of a temporary table that the scenarios fill.
    temp_table_sql = None

    # -- set-up ------------------------------------------------------------------
    def setUp(self):
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)
        self.server_kwargs = self.require_server()
        self.enter_driver_mode(self._stack)
        self.dbname = make_unique_name()
        self.create_database()
        self.addCleanup(self.drop_database)
        direct = self.connect_directly()
        try:
            cur = direct.cursor()
            cur.execute("CREATE TABLE marks (a INTEGER)")
            direct.commit()
            cur.close()
        finally:
            direct.close()
        self.connection = None
        self.pool = self.make_pool()
        self.connection = self.pool.get()

    def tearDown(self):
        if self.connection:
            self.pool.put(self.connection)
        self.pool.clear()
        # eventlet's tear-down drops the database right now, which fails
        # while a connection of the test is still open.
        left = self.sessions_on_database()
        if left:
            try:
                wait_for(lambda: self.sessions_on_database() == 0, timeout=2.0)
            except AssertionError:
                pass
            left = self.sessions_on_database()
        self.assertEqual(
            left,
            0,
            "%d connection(s) of this test are still open on database %r after "
            "put() and clear(): eventlet's tear-down could not drop it"
            % (left, self.dbname),
        )

    def make_pool(
        self,
        min_size=0,
        max_size=1,
        max_idle=10,
        max_age=10,
        connect_timeout=0.5,
        module=None,
    ):
        module = module if module is not None else self.module
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pool = self.pool_class(
                module,
                min_size=min_size,
                max_size=max_size,
                max_idle=max_idle,
                max_age=max_age,
                connect_timeout=connect_timeout,
                **self.database_kwargs(),
            )
        self.check_construction_warnings(module, caught)
        return pool

    def check_construction_warnings(self, module, caught):
        """By default no warning at all is expected when a pool is made."""
        self.assertEqual(
            [], ["%s: %s" % (w.category.__name__, w.message) for w in caught]
        )

    def enter_driver_mode(self, stack):
        """Hook: switch the driver into the mode this class tests."""

    # -- helpers ----------------------------------------------------------------
    def run_select_one(self, conn):
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1")
            rows = cur.fetchall()
        finally:
            cur.close()
        self.assertTrue(rows)
        return rows

    def make_temp_table(self, conn, rows=0):
        cur = conn.cursor()
        cur.execute(self.temp_table_sql)
        for i in range(rows):
            cur.execute("INSERT INTO filled (value_int) VALUES (%d)" % i)
        conn.commit()
        cur.close()

    # -- the scenarios -----------------------------------------------------------
    def test_connecting(self):
        self.assertIsNotNone(self.connection)
        self.assertTrue(self.connection)
        self.run_select_one(self.connection)

    def test_cursor_and_queries(self):
        self.run_select_one(self.connection)
        cur = self.connection.cursor()
        with self.assertRaises(self.module.DatabaseError):
            cur.execute("this is not sql at all")
        cur.close()

    def test_put_none(self):
        # max_size is 1 and that one connection is lent out.
        self.assertEqual(self.pool.free(), 0)
        self.pool.put(None)  # "the holder died": its slot comes back
        self.assertEqual(self.pool.free(), 1)
        other = self.pool.get()
        self.assertIsNotNone(other)
        self.assertTrue(callable(other.cursor))
        self.run_select_one(other)
        self.pool.put(other)

    def test_close_does_a_put(self):
        self.assertEqual(self.pool.free(), 0)
        self.connection.close()
        self.assertEqual(self.pool.free(), 1)
        # Fetching a method of a returned wrapper may succeed; calling it
        # must raise an AttributeError.
        self.assertRaises(AttributeError, self.connection.cursor)

    def test_put_doesnt_double_wrap(self):
        self.pool.put(self.connection)
        again = self.pool.get()
        self.assertNotIsInstance(again._base, PooledConnectionWrapper)
        self.assertNotIsInstance(again._base, GenericConnectionWrapper)
        self.pool.put(again)

    def test_bool(self):
        self.assertTrue(self.connection)
        self.connection.close()
        self.assertFalse(self.connection)

    def test_returns_immediately(self):
        self.pool = self.make_pool()
        conn = self.pool.get()
        self.make_temp_table(conn, rows=100)
        cur = conn.cursor()
        order = []
        done = eventlet.Event()

        def later():
            self.run_select_one(conn)
            cur.execute("SELECT * FROM filled")
            order.append("query")
            done.send()

        eventlet.spawn(later)
        order.append("spawner")
        self.assertEqual(["spawner"], order)
        done.wait()
        self.assertEqual(["spawner", "query"], order)
        self.pool.put(conn)

    def test_connection_is_clean_after_put(self):
        self.pool = self.make_pool()
        conn = self.pool.get()
        self.make_temp_table(conn)
        cur = conn.cursor()
        for i in range(10):
            cur.execute("INSERT INTO filled (value_int) VALUES (%d)" % i)
        # No commit: the pool must roll these back.
        self.pool.put(conn)
        del conn, cur
        conn = self.pool.get()  # the same session: the temporary table is there
        cur = conn.cursor()
        for i in range(10):
            cur.execute("INSERT INTO filled (value_int) VALUES (%d)" % i)
        conn.commit()
        cur.execute("SELECT * FROM filled")
        self.assertEqual(10, cur.rowcount)
        self.pool.put(conn)

    def test_visibility_from_other_connections(self):
        self.pool = self.make_pool(max_size=3)
        first = self.pool.get()
        second = self.pool.get()
        first_cur = first.cursor()
        try:
            cur = second.cursor()
            cur.execute("INSERT INTO marks (a) VALUES (%d)" % 271828)
            self.assertEqual(1, cur.rowcount)
            second.commit()
            cur.execute("SELECT * FROM marks")
            self.assertEqual(1, cur.rowcount)
            del cur
            self.pool.put(second)
            third = self.pool.get()
            cur = third.cursor()
            cur.execute("SELECT * FROM marks")
            self.assertEqual(1, cur.rowcount)
            first_cur.execute("SELECT * FROM marks")
            self.assertEqual(1, first_cur.rowcount)
            self.pool.put(third)
        finally:
            first_cur.execute("DELETE FROM marks WHERE a = %d" % 271828)
            first.commit()
            self.pool.put(first)

    def test_clear(self):
        self.pool = self.make_pool()
        # The first pool's connection goes back through the new pool.
        self.pool.put(self.connection)
        self.pool.clear()
        self.assertEqual(0, len(self.pool.free_items))

    def test_clear_warmup(self):
        self.pool = self.make_pool(min_size=1)
        self.assertEqual(1, len(self.pool.free_items))
        self.pool.clear()
        self.assertEqual(0, len(self.pool.free_items))

    def test_unwrap_connection(self):
        self.assertIsInstance(self.connection, GenericConnectionWrapper)
        raw = self.pool._unwrap_connection(self.connection)
        self.assertNotIsInstance(raw, GenericConnectionWrapper)
        self.assertIsNotNone(raw)
        self.assertIsNone(self.pool._unwrap_connection(None))
        self.assertIsNone(self.pool._unwrap_connection(1))
        junk = _Junk()
        junk._base = "anything with a _base"
        self.assertEqual("anything with a _base", self.pool._unwrap_connection(junk))
        raw.close()

    def test_safe_close(self):
        self.pool._safe_close(self.connection, quiet=True)
        self.assertEqual(1, len(self.pool.free_items))
        self.pool._safe_close(None)
        self.pool._safe_close(1)

        def interrupt():
            raise KeyboardInterrupt

        junk = _Junk()
        junk.close = interrupt
        self.assertRaises(KeyboardInterrupt, self.pool._safe_close, junk)

        def fail():
            raise RuntimeError("swallowed by _safe_close")

        junk = _Junk()
        junk.close = fail
        self.pool._safe_close(junk, quiet=False)

    def test_zero_max_idle(self):
        self.pool.put(self.connection)
        self.pool.clear()
        self.pool = self.make_pool(max_size=2, max_idle=0)
        self.connection = self.pool.get()
        self.connection.close()
        self.assertEqual(0, len(self.pool.free_items))

    def test_zero_max_age(self):
        self.pool.put(self.connection)
        self.pool.clear()
        self.pool = self.make_pool(max_size=2, max_age=0)
        self.connection = self.pool.get()
        self.connection.close()
        self.assertEqual(0, len(self.pool.free_items))

    def test_waiters_get_woken(self):
        # A waiter must wake up when the connection it waits for is closed
        # on return (max_age=0) instead of being handed over.
        self.pool.put(self.connection)
        self.pool.clear()
        self.pool = self.make_pool(max_size=1, max_age=0)
        self.connection = self.pool.get()
        self.assertEqual(0, self.pool.free())
        self.assertEqual(0, self.pool.waiting())
        got = eventlet.Event()

        def take(pool, event):
            event.send(pool.get())

        eventlet.spawn(take, self.pool, got)
        eventlet.sleep(0)
        eventlet.sleep(0)
        self.assertEqual(0, self.pool.free())
        self.assertEqual(1, self.pool.waiting())
        self.pool.put(self.connection)
        with eventlet.Timeout(1):
            conn = got.wait()
        self.assertEqual(0, self.pool.free())
        self.assertEqual(0, self.pool.waiting())
        self.pool.put(conn)

    def test_raising_create(self):
        self.pool = self.make_pool(max_size=1, module=RaisingModule())
        self.assertRaises(RuntimeError, self.pool.get)
        self.assertEqual(1, self.pool.free())
