"""A fake DB-API 2 driver for pool-logic tests: no sockets, every failure on
demand.

A :class:`FakeDB` instance stands in for a driver module (``psycopg2``,
``pymysql``...): it has ``connect()``, ``apilevel``, ``paramstyle`` and the
DB-API exception classes.  Its knobs make connecting slow, failing, hanging
or impossible, and it counts everything::

    db = FakeDB(connect_delay=0.01)
    pool = db_pool.RawConnectionPool(db, max_size=2)
    ...
    db.down = True            # the server goes away; open connections die
    db.connect_error = db.OperationalError("boom")
    db.hang = True            # connect() blocks until db.release()
    assert db.connect_calls == 3 and db.open_count == 0

Connections (:class:`FakeConnection`) count commits, rollbacks, closes and
pings, track whether a statement left a transaction open, and can be made
slow, failing, hung or dead one by one.

``FakeDB(report_status=True)`` gives connections an ``in_transaction``
attribute (as sqlite3's), so a pool can skip the rollback on return; by
default they have none, like drivers that cannot tell.

Waits are green (``eventlet.sleep``) when called from the main thread, and
real sleeps in other OS threads (a ``TpooledConnectionPool`` runs connect and
every connection call in eventlet's thread pool), so the same fake serves
both pool variants.  :meth:`FakeDB.release` wakes hung callers in either.
"""

from __future__ import annotations

import itertools

import eventlet
import eventlet.event
import eventlet.patcher

_threading = eventlet.patcher.original("threading")
_time = eventlet.patcher.original("time")
_MAIN_THREAD_ID = _threading.main_thread().ident

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "FakeConnection",
    "FakeCursor",
    "FakeDB",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "StatusFakeConnection",
    "Warning",
]


# -- the DB-API 2 exception hierarchy -----------------------------------------


class Warning(Exception):  # noqa: A001 - the DB-API name
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


# -- green-or-threaded waiting ------------------------------------------------


def _in_main_thread():
    return _threading.get_ident() == _MAIN_THREAD_ID


def _sleep(seconds):
    """Sleep without blocking the hub when called from a green thread."""
    if _in_main_thread():
        eventlet.sleep(seconds)
    else:
        _time.sleep(seconds)


class _Gate:
    """A latch that green threads and OS threads can both wait on.

    Green waiters (main thread) block on an ``eventlet.event.Event``, so an
    ``eventlet.Timeout`` interrupts them and the hub keeps running; OS
    threads (eventlet's thread pool) block on a real event.  Opening from an
    OS thread cannot wake a green waiter directly, so green waiters also
    re-check the real event every 50 ms.
    """

    def __init__(self):
        self._event = _threading.Event()
        self._green = eventlet.event.Event()

    def wait(self):
        if _in_main_thread():
            while not self._event.is_set():
                self._green.wait(0.05)
        else:
            self._event.wait()

    def open(self):
        self._event.set()
        if _in_main_thread() and not self._green.ready():
            self._green.send(True)


def _raise(error):
    if isinstance(error, type):
        raise error("fake driver error")
    raise error


# -- cursors and connections --------------------------------------------------


class FakeCursor:
    """A DB-API cursor whose every ``execute`` returns one row ``(1,)``.

    Set ``connection.results`` to a list of rows to change what the next
    ``execute`` returns.
    """

    arraysize = 1

    def __init__(self, connection):
        self.connection = connection
        self.closed = False
        self.description = None
        self.rowcount = -1
        self._rows = []

    def _check(self):
        if self.closed:
            raise InterfaceError("cursor already closed")
        self.connection._check()

    def execute(self, operation, parameters=None):
        self._check()
        conn = self.connection
        conn._before_call("execute")
        conn.executed.append((operation, parameters))
        if not conn.autocommit:
            conn._transaction = True
        rows = conn.results if conn.results is not None else [(1,)]
        self._rows = list(rows)
        self.rowcount = len(self._rows)
        self.description = (("col", None, None, None, None, None, None),)
        return self

    def executemany(self, operation, seq_of_parameters):
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)

    def fetchone(self):
        self._check()
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size=None):
        self._check()
        size = self.arraysize if size is None else size
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchall(self):
        self._check()
        rows, self._rows = self._rows, []
        return rows

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def close(self):
        self.closed = True

    def __iter__(self):
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class FakeConnection:
    """A DB-API connection made by :meth:`FakeDB.connect`.

    Counters: ``commits``, ``rollbacks``, ``close_calls``, ``pings``,
    ``cursors``; ``executed`` lists ``(sql, params)``.  State: ``closed``,
    ``dead``, ``transaction_open`` (a statement ran since the last
    commit/rollback; not visible to a pool, see
    :class:`StatusFakeConnection`), ``autocommit``.

    Knobs (attributes, settable at any time): ``rollback_delay``,
    ``rollback_error``, ``commit_error``, ``execute_delay``,
    ``execute_error``, ``ping_error``, ``close_error`` (an exception
    instance or class), and ``hang`` (the next call blocks until
    :meth:`release`).  :meth:`kill` makes the connection dead: every call but
    ``close()`` raises ``OperationalError``, as after a server restart.
    """

    _ids = itertools.count(1)

    def __init__(self, db, args, kwargs):
        self.db = db
        self.id = next(self._ids)
        self.args = args
        self.kwargs = kwargs
        self.created_at = _time.monotonic()
        self.autocommit = False
        self.closed = False
        self.dead = False
        self._transaction = False
        self.results = None
        self.commits = 0
        self.rollbacks = 0
        self.close_calls = 0
        self.pings = 0
        self.cursors = 0
        self.executed = []
        self.rollback_delay = 0.0
        self.rollback_error = None
        self.commit_error = None
        self.execute_delay = 0.0
        self.execute_error = None
        self.ping_error = None
        self.close_error = None
        self.status_value = 0
        self._hang = False
        self._gate = _Gate()

    # -- test controls --------------------------------------------------------

    @property
    def transaction_open(self):
        """True when a statement ran since the last commit or rollback."""
        return self._transaction

    @property
    def hang(self):
        return self._hang

    @hang.setter
    def hang(self, value):
        if value and not self._hang:
            self._gate = _Gate()
        elif not value and self._hang:
            self._gate.open()
        self._hang = bool(value)

    def release(self):
        """Wake every call blocked by ``hang`` and stop hanging."""
        self.hang = False

    def kill(self):
        """Make the connection dead, as if the server dropped it."""
        self.dead = True

    def status_code(self):
        """``status_value`` (raised if it is an exception): a stand-in for a
        driver's transaction-status method (``Driver.status_method``)."""
        value = self.status_value
        if isinstance(value, BaseException):
            raise value
        return value

    # -- DB-API ---------------------------------------------------------------

    def _check(self):
        if self.closed:
            raise InterfaceError("connection already closed")
        if self.dead:
            raise OperationalError("server closed the connection unexpectedly")

    def _before_call(self, name):
        if self._hang:
            self._gate.wait()
            self._check()
        delay = self.execute_delay if name == "execute" else 0.0
        if name == "rollback":
            delay = self.rollback_delay
        if delay:
            _sleep(delay)
            self._check()
        error = getattr(self, name + "_error", None)
        if error is not None:
            _raise(error)

    def cursor(self, *args, **kwargs):
        self._check()
        self.cursors += 1
        return FakeCursor(self)

    def commit(self):
        self._check()
        self._before_call("commit")
        self.commits += 1
        self._transaction = False

    def rollback(self):
        self._check()
        self._before_call("rollback")
        self.rollbacks += 1
        self._transaction = False

    def ping(self, reconnect=False):
        """MySQLdb/PyMySQL-style liveness check (``has_ping=False`` hides it)."""
        self._check()
        self._before_call("ping")
        self.pings += 1
        return True

    def close(self):
        self.close_calls += 1
        if self.closed:
            return
        if self.close_error is not None:
            _raise(self.close_error)
        self.closed = True
        self.db._closed(self)

    def __repr__(self):
        state = "closed" if self.closed else "dead" if self.dead else "open"
        return "<%s #%d %s>" % (type(self).__name__, self.id, state)


class StatusFakeConnection(FakeConnection):
    """A connection that reports its transaction status, as sqlite3's does."""

    @property
    def in_transaction(self):
        self._check()
        return self._transaction


class _NoPing:
    """Hides ``ping()``: ``hasattr(conn, "ping")`` is False."""

    @property
    def ping(self):
        raise AttributeError("ping")


class _NoPingFakeConnection(_NoPing, FakeConnection):
    pass


class _NoPingStatusFakeConnection(_NoPing, StatusFakeConnection):
    pass


_CONNECTION_CLASSES = {
    # (report_status, has_ping) -> class
    (False, True): FakeConnection,
    (True, True): StatusFakeConnection,
    (False, False): _NoPingFakeConnection,
    (True, False): _NoPingStatusFakeConnection,
}


# -- the driver module --------------------------------------------------------


class FakeDB:
    """A fake DB-API 2 driver module; each instance is an independent "server".

    Constructor arguments set the knobs of the same name:

    *connect_delay*: seconds each connect takes (green sleep);
    *connect_error*: exception (instance or class) every connect raises;
    *hang*: connect blocks until :meth:`release`;
    *down*: connect raises ``OperationalError`` (setting it kills open
    connections too, like a server that stops);
    *report_status*: connections get ``in_transaction``;
    *has_ping*: connections have ``ping()``;
    *name*: the module ``__name__`` (a pool may pick driver behaviour by it);
    *paramstyle*.

    Also :meth:`fail_next` (the next *n* connects fail) and ``on_connect``
    (a callable run with ``(args, kwargs)`` before each connect succeeds).

    Counters and records: ``connect_calls`` (attempts), ``connect_failures``,
    ``connections`` (every connection made, in order), ``connect_args``
    (``(args, kwargs)`` of every attempt), ``open_count``, ``max_open``
    (high-water mark of open connections), ``open_connections()``.
    """

    apilevel = "2.0"
    threadsafety = 1

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(
        self,
        *,
        connect_delay=0.0,
        connect_error=None,
        hang=False,
        down=False,
        report_status=False,
        has_ping=True,
        name="fakedb",
        paramstyle="qmark",
    ):
        self.__name__ = name
        self.paramstyle = paramstyle
        self.connect_delay = connect_delay
        self.connect_error = connect_error
        self.report_status = report_status
        self.has_ping = has_ping
        self.on_connect = None
        self.connect_calls = 0
        self.connect_failures = 0
        self.connections = []
        self.connect_args = []
        self.max_open = 0
        self._open = 0
        self._fail_next = []
        self._down = False
        self._hang = False
        self._gate = _Gate()
        self._lock = _threading.Lock()
        self.down = down
        self.hang = hang

    # -- knobs ----------------------------------------------------------------

    @property
    def down(self):
        return self._down

    @down.setter
    def down(self, value):
        """While down, connect fails; going down kills open connections."""
        self._down = bool(value)
        if value:
            self.kill_all()

    @property
    def hang(self):
        return self._hang

    @hang.setter
    def hang(self, value):
        if value and not self._hang:
            self._gate = _Gate()
        elif not value and self._hang:
            self._gate.open()
        self._hang = bool(value)

    def release(self):
        """Wake every connect blocked by ``hang`` and stop hanging."""
        self.hang = False

    def fail_next(self, count=1, error=None):
        """Make the next *count* connects raise *error* (OperationalError)."""
        error = error if error is not None else OperationalError("connect failed")
        with self._lock:
            self._fail_next.extend([error] * count)

    def kill_all(self):
        """Make every open connection dead (every call raises)."""
        for conn in self.open_connections():
            conn.kill()

    # -- introspection --------------------------------------------------------

    @property
    def open_count(self):
        """Connections made and not yet closed."""
        return self._open

    def open_connections(self):
        """The connections made and not yet closed, oldest first."""
        with self._lock:
            return [c for c in self.connections if not c.closed]

    # -- DB-API ---------------------------------------------------------------

    def connect(self, *args, **kwargs):
        with self._lock:
            self.connect_calls += 1
            self.connect_args.append((args, kwargs))
        try:
            if self._hang:
                self._gate.wait()
            if self.connect_delay:
                _sleep(self.connect_delay)
            with self._lock:
                error = self._fail_next.pop(0) if self._fail_next else None
            if self._down:
                raise OperationalError("could not connect: the fake database is down")
            if error is not None:
                _raise(error)
            if self.connect_error is not None:
                _raise(self.connect_error)
            if self.on_connect is not None:
                self.on_connect(args, kwargs)
        except BaseException:
            with self._lock:
                self.connect_failures += 1
            raise
        cls = _CONNECTION_CLASSES[bool(self.report_status), bool(self.has_ping)]
        conn = cls(self, args, kwargs)
        with self._lock:
            self.connections.append(conn)
            self._open += 1
            self.max_open = max(self.max_open, self._open)
        return conn

    def _closed(self, conn):
        with self._lock:
            self._open -= 1

    def __repr__(self):
        return "<FakeDB %r open=%d connect_calls=%d%s>" % (
            self.__name__,
            self._open,
            self.connect_calls,
            " down" if self._down else "",
        )
