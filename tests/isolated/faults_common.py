"""Fault-injection scenarios against real database servers.

Each scenario builds a pool in front of a real server, breaks something
(server-side kills, a loopback proxy that cuts, black-holes or refuses) and
returns a dict of what it measured.  The test modules assert on those dicts:

- ``tests/realdb/test_faults_pg.py`` runs them in the pytest process with
  psycopg2 made green (a wait callback; no monkey-patching);
- ``tests/realdb/test_faults_mysql.py`` runs them with MySQLdb through
  ``TpooledConnectionPool`` in the pytest process, and with PyMySQL in a
  monkey-patched interpreter (``tests/isolated/faults_mysql.py``), since
  PyMySQL is only green once ``socket`` is patched.

A *backend* object adapts a scenario to one driver: how to build the pool,
run a statement, open a transaction, tell (without a query where the driver
can) whether a transaction is open, count and kill the server-side sessions
of the pool.  Server-side counts come from the server itself
(``pg_stat_activity`` by application name; MariaDB's process list by the
connection ids the pool opened), never from the pool.

This module only measures; it asserts nothing, so that a failing scenario
still reports every number.
"""

from __future__ import annotations

import random
import time
import types

import eventlet
import eventlet.patcher
import eventlet.tpool

import db_pool
from tests import dbutil
from tests.proxy import Proxy

_threading = eventlet.patcher.original("threading")

#: Slack allowed on top of a deadline (the scenarios say "within 1 s + 20 %").
DEADLINE_SLACK = 0.2


def elapsed_since(start):
    return time.monotonic() - start


class CountingModule(types.ModuleType):
    """A stand-in for a driver module that counts ``connect()`` calls.

    It keeps the driver's name, so the pool picks the same driver support,
    and forwards every other attribute (exceptions, constants) to the real
    module.
    """

    def __init__(self, real):
        super().__init__(real.__name__)
        self._real = real
        self.connects = 0
        self.times = []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def connect(self, *args, **kwargs):
        self.connects += 1
        self.times.append(time.monotonic())
        return self._real.connect(*args, **kwargs)


# -- backends ---------------------------------------------------------


class _Backend:
    """What a scenario needs to know about one driver and its server."""

    label = "?"
    pool_class = db_pool.RawConnectionPool

    def __init__(self, kwargs, marker):
        self.kwargs = dict(kwargs)
        self.marker = marker
        self._pools = []

    def make_pool(self, port=None, module=None, **options):
        """A pool of this backend's connections, through *port* if given."""
        connect_args = self.connect_args(port)
        options.setdefault("name", self.marker)
        options.setdefault("connect_timeout", 5)
        listeners = list(options.pop("listeners", ()))
        listeners.append({"connection_created": self._created})
        pool = self.pool_class(
            module or self.module,
            connect_args=connect_args,
            listeners=listeners,
            **options,
        )
        self._pools.append(pool)
        return pool

    def _created(self, info):
        pass

    def close(self):
        for pool in self._pools:
            try:
                pool.close()
            except Exception:
                pass
        self._pools = []
        self.admin.close()

    # -- statements --------------------------------------------------------
    def select(self, conn):
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1")
            return cur.fetchall()[0][0]
        finally:
            cur.close()

    def dbapi_class(self, exc):
        """The DB-API exception class *exc* is an instance of (by name)."""
        for name in (
            "InterfaceError",
            "OperationalError",
            "ProgrammingError",
            "DataError",
            "IntegrityError",
            "InternalError",
            "NotSupportedError",
            "DatabaseError",
            "Error",
        ):
            if isinstance(exc, getattr(self.module, name)):
                return name
        return type(exc).__name__

    def is_disconnect_error(self, exc):
        return isinstance(
            exc, (self.module.OperationalError, self.module.InterfaceError)
        )


class PgBackend(_Backend):
    """psycopg2 (green through a wait callback) in a RawConnectionPool."""

    label = "postgresql"

    def __init__(self, kwargs, marker):
        super().__init__(kwargs, marker)
        import psycopg2
        import psycopg2.extensions

        self.module = psycopg2
        self._idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
        self.admin = dbutil.PgAdmin(self.kwargs)

    def connect_args(self, port=None):
        args = dict(self.kwargs, application_name=self.marker)
        if port is not None:
            args.update(host="127.0.0.1", port=port)
        return args

    def begin(self, conn):
        # psycopg2 opens a transaction before the first statement.
        self.select(conn)

    def fail_in_transaction(self, conn):
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1 / 0")
        finally:
            cur.close()

    def in_transaction(self, conn):
        # No round trip: libpq tracks the status from the server's replies.
        return conn.info.transaction_status != self._idle

    #: Statements that fail without ending the session: a statement timeout
    #: (QueryCanceled, an OperationalError), a syntax error.
    failing_statements = (
        "SET LOCAL statement_timeout = 50; SELECT pg_sleep(2)",
        "SELEC 1",
    )

    def session_id(self, conn):
        return conn.info.backend_pid

    def server_count(self):
        return self.admin.count(self.marker)

    def kill_all(self):
        return len(self.admin.terminate(self.marker))

    def wait_server_count(self, expected, timeout=5.0):
        self.admin.wait_count(self.marker, expected, timeout)


class _MysqlBackend(_Backend):
    def __init__(self, kwargs, marker):
        super().__init__(kwargs, marker)
        self.ids = set()
        self.admin = dbutil.MysqlAdmin(self.kwargs)

    def connect_args(self, port=None):
        args = dict(self.kwargs)
        if port is not None:
            args.update(host="127.0.0.1", port=port)
        return args

    def _created(self, info):
        self.ids.add(dbutil.mysql_connection_id(info["connection"]))

    def begin(self, conn):
        cur = conn.cursor()
        try:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()

    def fail_in_transaction(self, conn):
        cur = conn.cursor()
        try:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT * FROM dbp_no_such_table_anywhere")
        finally:
            cur.close()

    def session_id(self, conn):
        return dbutil.mysql_connection_id(conn)

    #: Statements that fail without ending the session: a statement timeout
    #: (error 1969, an OperationalError), a syntax error.
    failing_statements = (
        "SET STATEMENT max_statement_time = 0.05 FOR SELECT SLEEP(2)",
        "SELEC 1",
    )

    def server_count(self):
        return self.admin.count(self.ids)

    def kill_all(self):
        return len(self.admin.kill(self.ids))

    def wait_server_count(self, expected, timeout=5.0):
        self.admin.wait_count(self.ids, expected, timeout)


class PyMySQLBackend(_MysqlBackend):
    """PyMySQL, green under ``eventlet.monkey_patch()``, in a RawConnectionPool."""

    label = "mariadb-pymysql"

    def __init__(self, kwargs, marker):
        import pymysql

        self.module = pymysql
        super().__init__(kwargs, marker)

    def connect_args(self, port=None):
        args = super().connect_args(port)
        # The driver's own read timeout is the last line of defence for a
        # query on a hung network; the pool's deadlines are shorter.
        args.setdefault("read_timeout", 10)
        args.setdefault("write_timeout", 10)
        return args

    def in_transaction(self, conn):
        # MySQL servers send the in-transaction flag with every reply.
        return bool(conn.server_status & 1)


class MySQLdbBackend(_MysqlBackend):
    """MySQLdb (mysqlclient) in a TpooledConnectionPool: calls run in OS threads."""

    label = "mariadb-mysqldb"
    pool_class = db_pool.TpooledConnectionPool

    def __init__(self, kwargs, marker):
        import MySQLdb

        self.module = MySQLdb
        super().__init__(kwargs, marker)

    def connect_args(self, port=None):
        args = super().connect_args(port)
        args.setdefault("read_timeout", 10)
        args.setdefault("write_timeout", 10)
        return args

    def in_transaction(self, conn):
        # mysqlclient does not expose the status flags: ask the server.
        cur = conn.cursor()
        try:
            cur.execute("SELECT @@in_transaction")
            return bool(cur.fetchall()[0][0])
        finally:
            cur.close()


# -- helpers ---------------------------------------------------------


def run_requests(backend, pool, count, concurrency, timeout=5):
    """*count* ``SELECT 1`` requests from *concurrency* green threads.

    Returns the list of errors (``"Type: message"``) the callers saw.
    """
    errors = []
    todo = [count]

    def worker():
        while todo[0] > 0:
            todo[0] -= 1
            try:
                with pool.connection(timeout=timeout) as conn:
                    backend.select(conn)
            except Exception as exc:
                errors.append("%s: %s" % (type(exc).__name__, str(exc).strip()))

    threads = [eventlet.spawn(worker) for _ in range(concurrency)]
    for thread in threads:
        thread.wait()
    return errors


def hold_all(backend, pool, n, timeout=5):
    """Check out *n* connections at the same time, run a statement on each,
    then return them all.  Returns the errors seen.

    Every one of the *n* connections is taken before any is used or
    returned, so a pool with *n* or fewer idle connections hands out every
    one of them.
    """
    errors = []
    taken = []
    all_taken = eventlet.event.Event()

    def holder():
        try:
            with pool.connection(timeout=timeout) as conn:
                taken.append(conn)
                if len(taken) == n:
                    all_taken.send()
                all_taken.wait()
                backend.select(conn)
        except Exception as exc:
            errors.append("%s: %s" % (type(exc).__name__, str(exc).strip()))
            if not all_taken.ready():
                all_taken.send()

    threads = [eventlet.spawn(holder) for _ in range(n)]
    for thread in threads:
        thread.wait()
    return errors


def warm(backend, pool, n):
    """Open *n* connections and leave them idle in the pool."""
    errors = hold_all(backend, pool, n)
    if errors:
        raise RuntimeError("could not warm the pool: %s" % errors)
    backend.wait_server_count(n)


def pool_numbers(pool):
    stats = pool.stats()
    return {
        key: stats[key]
        for key in (
            "size",
            "free",
            "checked_out",
            "opening",
            "waiting",
            "connections_opened",
            "connections_closed",
            "connect_failures",
            "discarded_dead",
            "discarded_reset_failed",
            "timeouts",
            "pings",
            "ping_failures",
        )
    }


def call_blocking(func, *args):
    """Run a blocking call (an admin query, a subprocess) off the hub."""
    return eventlet.tpool.execute(func, *args)


# -- scenarios ---------------------------------------------------------


def scenario_kill_all_pre_ping(backend, size=5, requests=50):
    """Every pooled connection killed server-side, then *requests* requests
    with ``pre_ping=True, pre_ping_idle=0``."""
    pool = backend.make_pool(max_size=size, pre_ping=True, pre_ping_idle=0)
    warm(backend, pool, size)
    killed = backend.kill_all()
    backend.wait_server_count(0)
    pool.stats(reset=True)
    errors = run_requests(backend, pool, requests, concurrency=size)
    backend.wait_server_count(pool.current_size)
    return {
        "killed": killed,
        "requests": requests,
        "errors": errors,
        "server_count": backend.server_count(),
        **pool_numbers(pool),
    }


def scenario_kill_all_no_pre_ping(backend, size=5, requests=50):
    """Every pooled connection killed server-side, no pre-ping.

    Phase 1, one request at a time (10 requests): the first request gets a
    dead connection and fails; returning it tells the pool that the
    connection died, so the pool marks the idle connections older than the
    failure as suspect, and validates each of them before its next use.
    Phase 2 takes *size* connections at once, so every suspect one is
    checked out (and validated) once.  Phase 3 runs the remaining requests.
    """
    pool = backend.make_pool(max_size=size, pre_ping=False)
    warm(backend, pool, size)
    killed = backend.kill_all()
    backend.wait_server_count(0)
    pool.stats(reset=True)
    errors_1 = run_requests(backend, pool, 10, concurrency=1)
    after_1 = pool_numbers(pool)
    errors_2 = hold_all(backend, pool, size)
    after_2 = pool_numbers(pool)
    errors_3 = run_requests(backend, pool, requests - 10 - size, concurrency=size)
    backend.wait_server_count(pool.current_size)
    return {
        "killed": killed,
        "errors_sequential": errors_1,
        "after_sequential": after_1,
        "errors_all_at_once": errors_2,
        "after_all_at_once": after_2,
        "errors_rest": errors_3,
        "server_count": backend.server_count(),
        **pool_numbers(pool),
    }


def scenario_kill_all_burst(backend, size=5, requests=50):
    """Every pooled connection killed, no pre-ping, then *size* requests
    check out all the dead connections at the same time before any of them
    runs its statement (the worst case), then the rest of the requests."""
    pool = backend.make_pool(max_size=size, pre_ping=False)
    warm(backend, pool, size)
    killed = backend.kill_all()
    backend.wait_server_count(0)
    pool.stats(reset=True)
    errors_burst = hold_all(backend, pool, size)
    after_burst = pool_numbers(pool)
    errors_rest = run_requests(backend, pool, requests - size, concurrency=size)
    backend.wait_server_count(pool.current_size)
    return {
        "killed": killed,
        "errors_burst": errors_burst,
        "after_burst": after_burst,
        "errors_rest": errors_rest,
        "server_count": backend.server_count(),
        **pool_numbers(pool),
    }


def scenario_kill_get_put(backend, size=3):
    """eventlet-style ``get()`` / ``put()`` (no ``with`` block telling the pool
    about the error): a killed connection must still leave the pool."""
    pool = backend.make_pool(max_size=size, pre_ping=False)
    warm(backend, pool, size)
    killed = backend.kill_all()
    backend.wait_server_count(0)
    pool.stats(reset=True)
    errors = []
    for _ in range(10):
        conn = pool.get(timeout=5)
        try:
            backend.select(conn)
        except Exception as exc:
            errors.append("%s: %s" % (type(exc).__name__, str(exc).strip()))
        finally:
            pool.put(conn)
    after_sequential = pool_numbers(pool)
    errors_all_at_once = hold_all(backend, pool, size)
    backend.wait_server_count(pool.current_size)
    return {
        "killed": killed,
        "errors": errors,
        "after_sequential": after_sequential,
        "errors_all_at_once": errors_all_at_once,
        "server_count": backend.server_count(),
        **pool_numbers(pool),
    }


def scenario_query_errors(backend, size=2):
    """Errors that do not end the session (a statement timeout, a syntax
    error) must not be taken for disconnects: the connection is rolled
    back and reused, and no idle connection becomes suspect."""
    pool = backend.make_pool(max_size=size, pre_ping=False)
    warm(backend, pool, size)
    pool.stats(reset=True)
    sessions = set()
    errors = []
    for statement in backend.failing_statements:
        try:
            with pool.connection(timeout=5) as conn:
                sessions.add(backend.session_id(conn))
                cur = conn.cursor()
                try:
                    cur.execute(statement)
                    cur.fetchall()
                finally:
                    cur.close()
        except Exception as exc:
            errors.append(backend.dbapi_class(exc))
    with pool.connection(timeout=5) as conn:
        sessions.add(backend.session_id(conn))
        backend.select(conn)
    errors_all_at_once = hold_all(backend, pool, size)
    backend.wait_server_count(pool.current_size)
    return {
        "errors": errors,
        "sessions_used": len(sessions),
        "errors_all_at_once": errors_all_at_once,
        "server_count": backend.server_count(),
        **pool_numbers(pool),
    }


def scenario_blackhole(backend, timeout=1.0):
    """A database that stops answering, behind a proxy.

    (a) nothing idle in the pool: ``get(timeout)`` has to connect, and the
    connect hangs; (b) idle connections and ``pre_ping``: the ping hangs.
    Then the proxy passes traffic again and the same pool serves requests.
    """
    out = {}
    with Proxy("127.0.0.1", backend.kwargs.get("port")) as proxy:
        pool = backend.make_pool(
            port=proxy.port,
            max_size=3,
            pre_ping=True,
            pre_ping_idle=0,
            connect_timeout=5,  # longer than the caller's deadline
        )
        proxy.blackhole()
        for case in ("connect", "ping"):
            if case == "ping":
                proxy.pass_traffic()
                warm(backend, pool, 3)
                proxy.blackhole()
            start = time.monotonic()
            try:
                conn = pool.get(timeout=timeout)
            except Exception as exc:
                out[case] = {
                    "elapsed": elapsed_since(start),
                    "error": type(exc).__name__,
                    "message": str(exc),
                }
            else:  # pragma: no cover - reported as a failure by the test
                pool.put(conn)
                out[case] = {"elapsed": elapsed_since(start), "error": None}
            out[case].update(pool_numbers(pool))
        proxy.pass_traffic()
        start = time.monotonic()
        errors = run_requests(backend, pool, 20, concurrency=3)
        out["after"] = {
            "errors": errors,
            "elapsed": elapsed_since(start),
            **pool_numbers(pool),
        }
        backend.wait_server_count(pool.current_size)
        out["after"]["server_count"] = backend.server_count()
    return out


def scenario_reset_blackhole(backend, reset_timeout=0.5):
    """The server stops answering while a caller holds a connection with a
    transaction open: the rollback in ``put()`` must give up after
    *reset_timeout* and discard the connection."""
    with Proxy("127.0.0.1", backend.kwargs.get("port")) as proxy:
        pool = backend.make_pool(
            port=proxy.port, max_size=2, reset_timeout=reset_timeout, pre_ping=False
        )
        conn = pool.get(timeout=5)
        backend.begin(conn)
        was_in_transaction = backend.in_transaction(conn)
        proxy.blackhole()
        start = time.monotonic()
        put_error = None
        try:
            pool.put(conn)
        except Exception as exc:  # pragma: no cover - reported by the test
            put_error = "%s: %s" % (type(exc).__name__, exc)
        put_time = elapsed_since(start)
        after_put = pool_numbers(pool)
        proxy.pass_traffic()
        errors = run_requests(backend, pool, 5, concurrency=1)
        backend.wait_server_count(pool.current_size)
        return {
            "was_in_transaction": was_in_transaction,
            "put_time": put_time,
            "put_error": put_error,
            "after_put": after_put,
            "errors_after": errors,
            "server_count": backend.server_count(),
            **pool_numbers(pool),
        }


def scenario_outage(backend, callers=200, size=10, timeout=1.0):
    """The database is down while many callers want a connection.

    (a) refused: connects fail at once; (b) black-holed: connects hang.
    Each caller asks with ``get(timeout)``; we count the connection attempts
    the pool makes (the driver's ``connect()`` calls, and for (b) also the
    TCP connections the proxy accepted).  Then the proxy passes traffic and
    the same pool serves requests again.
    """
    out = {}
    for case in ("refused", "blackholed"):
        module = CountingModule(backend.module)
        with Proxy("127.0.0.1", backend.kwargs.get("port")) as proxy:
            pool = backend.make_pool(
                port=proxy.port,
                module=module,
                max_size=size,
                pre_ping=True,
                pre_ping_idle=0,
                connect_timeout=5,
                reconnect_delay=(0.05, 0.5),
            )
            warm(backend, pool, 2)
            if case == "refused":
                proxy.down()
            else:
                proxy.blackhole()
            connects_before = module.connects
            accepted_before = proxy.accepted_count
            results = []

            def caller(pool=pool, results=results):
                start = time.monotonic()
                try:
                    with pool.connection(timeout=timeout) as conn:
                        backend.select(conn)
                except Exception as exc:
                    results.append((elapsed_since(start), type(exc).__name__, str(exc)))
                else:
                    results.append((elapsed_since(start), None, ""))

            start = time.monotonic()
            threads = [eventlet.spawn(caller) for _ in range(callers)]
            for thread in threads:
                thread.wait()
            kinds = {}
            for _, kind, _ in results:
                kinds[kind] = kinds.get(kind, 0) + 1
            # The black hole accepts in an OS thread of its own: a connect
            # begun just before a caller's deadline may not be counted yet.
            # Give it a moment to catch up (bounded: a connect that never
            # reached the proxy still shows as a difference).
            settle_by = time.monotonic() + 2.0
            while (
                case == "blackholed"
                and proxy.accepted_count - accepted_before
                < module.connects - connects_before
                and time.monotonic() < settle_by
            ):
                eventlet.sleep(0.01)
            result = out[case] = {
                "callers": callers,
                "wall": elapsed_since(start),
                "max_elapsed": max(r[0] for r in results),
                "errors": kinds,
                "messages": sorted(
                    {r[2].splitlines()[0] if r[2] else "" for r in results}
                )[:5],
                "connect_calls": module.connects - connects_before,
                "accepted": proxy.accepted_count - accepted_before,
                **pool_numbers(pool),
            }
            proxy.pass_traffic()
            back = time.monotonic()
            # The pool learns that the database is back at its next connect
            # attempt, at most one retry interval (reconnect_delay) later.
            first_ok = None
            while elapsed_since(back) < 3:
                try:
                    with pool.connection(timeout=1) as conn:
                        backend.select(conn)
                except Exception:
                    eventlet.sleep(0.01)
                else:
                    first_ok = elapsed_since(back)
                    break
            errors = run_requests(backend, pool, 50, concurrency=size)
            result["after"] = {
                "first_ok": first_ok,
                "errors": errors,
                **pool_numbers(pool),
            }
            backend.wait_server_count(pool.current_size)
            result["after"]["server_count"] = backend.server_count()
            pool.close()
    return out


def scenario_refill(backend, min_size=2, watch=2.0, keepalive=0.2):
    """``min_size`` kept warm through an outage, with no caller at all.

    The proxy goes down (open connections cut, connects refused); the
    keep-alive finds the idle connections dead, and the background refill
    retries with exponential backoff (``reconnect_delay=(0.05, 0.5)``).  We
    count its connect attempts while the database is down, then let traffic
    through and time how long the pool takes to be back at ``min_size``.
    """
    module = CountingModule(backend.module)
    with Proxy("127.0.0.1", backend.kwargs.get("port")) as proxy:
        pool = backend.make_pool(
            port=proxy.port,
            module=module,
            min_size=min_size,
            max_size=5,
            keepalive=keepalive,
            reconnect_delay=(0.05, 0.5),
            connect_timeout=2,
        )
        backend.wait_server_count(min_size)
        opened_before = module.connects
        proxy.down()
        down_start = time.monotonic()
        backend.wait_server_count(0)
        eventlet.sleep(max(0.0, watch - elapsed_since(down_start)))
        attempt_times = [round(t - down_start, 3) for t in module.times[opened_before:]]
        during = pool_numbers(pool)
        proxy.pass_traffic()
        back = time.monotonic()
        recovered = None
        while time.monotonic() - back < 5:
            if pool.current_size >= min_size and len(pool.free_items) >= min_size:
                recovered = elapsed_since(back)
                break
            eventlet.sleep(0.01)
        backend.wait_server_count(min_size)
        errors = run_requests(backend, pool, 10, concurrency=2)
        return {
            "initial_connects": opened_before,
            "attempts_while_down": len(attempt_times),
            "attempt_times": attempt_times,
            "during": during,
            "recovered_after": recovered,
            "errors_after": errors,
            "server_count": backend.server_count(),
            **pool_numbers(pool),
        }


def scenario_restart_via_proxy(backend, workers=20, size=5, down_for=1.0, after=1.5):
    """Load through a proxy that goes down (cut + refuse) and comes back: the
    database restarting, as the client sees it."""
    with Proxy("127.0.0.1", backend.kwargs.get("port")) as proxy:
        return restart_under_load(
            backend,
            dict(port=proxy.port),
            proxy.down,
            proxy.pass_traffic,
            workers=workers,
            size=size,
            down_for=down_for,
            after=after,
        )


#: reconnect_delay of the restart scenarios: the pool retries a connect at
#: most this long after the previous failure.
RESTART_RECONNECT_DELAY = (0.05, 0.5)


def restart_under_load(
    backend,
    pool_options,
    bring_down,
    bring_up,
    *,
    workers,
    size,
    down_for,
    after,
    before_count=None,
):
    """*workers* green threads run requests in a loop on a pool of *size*
    (``pre_ping=True``, default ``pre_ping_idle``) while the database goes
    down (*bring_down*), stays down *down_for* seconds and comes back
    (*bring_up* returns once it answers).

    Returns the requests and errors before, during and after the outage.
    "After" is split two ways: requests that started once the database
    answered again, and those that started once the pool had opened its
    first new connection (while the database is down, the pool does not
    try to connect more than once per retry interval, so it learns that the
    database is back at most one retry interval late).
    """
    reconnects = []
    pool = backend.make_pool(
        max_size=size,
        pre_ping=True,
        reconnect_delay=RESTART_RECONNECT_DELAY,
        listeners=[
            {"connection_created": lambda info: reconnects.append(time.monotonic())}
        ],
        **pool_options,
    )
    log = []  # (start, end, error or None)
    stop = [False]

    def worker():
        while not stop[0]:
            start = time.monotonic()
            try:
                with pool.connection(timeout=2) as conn:
                    backend.select(conn)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                log.append(
                    (start, time.monotonic(), "%s: %s" % (type(exc).__name__, first))
                )
                eventlet.sleep(0.02)
            else:
                log.append((start, time.monotonic(), None))
                eventlet.sleep(0.005)

    threads = [eventlet.spawn(worker) for _ in range(workers)]
    try:
        eventlet.sleep(0.5)
        backend.wait_server_count(size)
        down_at = time.monotonic()
        bring_down()
        stopped_at = time.monotonic()
        eventlet.sleep(down_for)
        bring_up()
        up_at = time.monotonic()
        eventlet.sleep(after)
    finally:
        stop[0] = True
        for thread in threads:
            thread.wait()
    # Nothing can connect while the database is down: the first connection
    # opened after it went down is the pool's reconnect.
    reconnected_at = min((t for t in reconnects if t > stopped_at), default=None)
    before = [e for e in log if e[1] < down_at]
    after_up = [e for e in log if e[0] >= up_at]
    after_reconnect = [
        e for e in log if reconnected_at is not None and e[0] >= reconnected_at
    ]
    after_retry = [e for e in log if e[0] >= up_at + RESTART_RECONNECT_DELAY[1]]
    if before_count is not None:
        before_count()
    backend.wait_server_count(pool.current_size)
    return {
        "requests_before": len(before),
        "errors_before": [e[2] for e in before if e[2]],
        "errors_during": len(
            [e for e in log if e[2] and e[1] >= down_at and e[0] < up_at]
        ),
        "requests_after_up": len(after_up),
        "errors_after_up": sorted({e[2] for e in after_up if e[2]}),
        "errors_after_up_count": len([e for e in after_up if e[2]]),
        "reconnected_after": None if reconnected_at is None else reconnected_at - up_at,
        "requests_after_reconnect": len(after_reconnect),
        "errors_after_reconnect": [e[2] for e in after_reconnect if e[2]],
        "requests_after_retry_interval": len(after_retry),
        "errors_after_retry_interval": [e[2] for e in after_retry if e[2]],
        "server_count": backend.server_count(),
        **pool_numbers(pool),
    }


def scenario_hammer(
    backend,
    threads=200,
    size=10,
    duration=3.0,
    pre_ping=False,
    seed=None,
    cuts=True,
    reset=True,
):
    """*threads* green threads share a pool of *size* while a proxy cuts every
    connection at random moments.

    Every checkout checks that no other holder has the same connection and
    that no transaction is open on arrival; the work mixes committed,
    rolled-back, abandoned (returned mid-transaction) and failed
    transactions, returned through ``with`` blocks and through ``put()``.
    At the end the pool must have every slot back, and (after one round
    that uses every idle connection) as many connections as the server
    counts.

    *cuts* false leaves the proxy alone; *reset* false builds the pool with
    ``cleanup=None`` (no rollback on return): a control run showing that
    the checks do catch transactions carried from one holder to the next.
    """
    rng = random.Random(seed)
    stats = {
        "checkouts": 0,
        "double_holds": 0,
        "dirty_arrivals": 0,
        "dirty_examples": [],
        "disconnect_errors": 0,
        "timeouts": 0,
        "other_errors": [],
        "cuts": 0,
    }
    held = set()
    stop = [False]
    with Proxy("127.0.0.1", backend.kwargs.get("port")) as proxy:
        options = {} if reset else {"cleanup": None}
        pool = backend.make_pool(
            port=proxy.port,
            max_size=size,
            pre_ping=pre_ping,
            pre_ping_idle=0,
            # A connect cut by the proxy makes the pool hold back new
            # connects for one retry interval; keep it short, so that the
            # run keeps connecting (and being cut) all along.
            reconnect_delay=HAMMER_RECONNECT_DELAY,
            **options,
        )

        def use(conn):
            key = id(conn._base)
            if key in held:
                stats["double_holds"] += 1
            held.add(key)
            try:
                stats["checkouts"] += 1
                try:
                    dirty = backend.in_transaction(conn)
                except Exception as exc:
                    if not backend.is_disconnect_error(exc):
                        raise
                    dirty = False
                if dirty:
                    stats["dirty_arrivals"] += 1
                    if len(stats["dirty_examples"]) < 5:
                        stats["dirty_examples"].append(repr(conn))
                action = rng.random()
                if action < 0.3:
                    backend.begin(conn)  # left open: the pool must roll back
                elif action < 0.5:
                    backend.begin(conn)
                    conn.commit()
                elif action < 0.6:
                    try:
                        backend.fail_in_transaction(conn)
                    except Exception as exc:
                        if backend.is_disconnect_error(exc):
                            raise
                elif action < 0.7:
                    backend.begin(conn)
                    eventlet.sleep(rng.random() * 0.01)
                else:
                    backend.select(conn)
            finally:
                held.discard(key)

        def worker():
            while not stop[0]:
                try:
                    if rng.random() < 0.5:
                        with pool.connection(timeout=5) as conn:
                            use(conn)
                    else:
                        conn = pool.get(timeout=5)
                        try:
                            use(conn)
                        finally:
                            pool.put(conn)
                except db_pool.PoolTimeout:
                    stats["timeouts"] += 1
                except Exception as exc:
                    if backend.is_disconnect_error(exc):
                        stats["disconnect_errors"] += 1
                    else:
                        stats["other_errors"].append(
                            "%s: %s" % (type(exc).__name__, exc)
                        )
                    # A client pauses after an error instead of spinning.
                    eventlet.sleep(0.01)
                eventlet.sleep(0)

        def cutter():
            while not stop[0]:
                eventlet.sleep(rng.uniform(0.05, 0.3))
                if stop[0]:
                    break
                proxy.cut(reset=rng.random() < 0.5)
                stats["cuts"] += 1

        workers = [eventlet.spawn(worker) for _ in range(threads)]
        cut_thread = eventlet.spawn(cutter if cuts else lambda: None)
        eventlet.sleep(duration)
        stop[0] = True
        cut_thread.wait()
        for thread in workers:
            thread.wait()
        proxy.pass_traffic()
        end = pool_numbers(pool)
        end["free_slots"] = pool.free()
        end["held_left"] = len(held)
        # Past the retry interval that a connect cut by the last cut may
        # have started.
        eventlet.sleep(HAMMER_RECONNECT_DELAY[1])
        # One round that takes every connection at once: idle connections
        # whose proxy link was cut while they sat in the pool fail here (the
        # pool could not know) and are discarded; the rest are alive.
        sweep_errors = hold_all(backend, pool, size)
        backend.wait_server_count(pool.current_size)
        final = pool_numbers(pool)
        final["server_count"] = backend.server_count()
        final["free_slots"] = pool.free()
        # Every slot can be taken at once without waiting.
        taken = []
        try:
            for _ in range(size):
                taken.append(pool.get(block=False))
            final["all_slots_taken"] = True
        except Exception:
            final["all_slots_taken"] = False
        for conn in taken:
            pool.put(conn)
    stats.update(end=end, sweep_errors=sweep_errors, final=final)
    return stats


#: reconnect_delay of the hammer scenario.
HAMMER_RECONNECT_DELAY = (0.01, 0.1)

SCENARIOS = {
    name[len("scenario_") :]: func
    for name, func in globals().items()
    if name.startswith("scenario_")
}
