"""What differs from one DB-API driver to the next.

A :class:`Driver` knows, for one DB-API module, the keyword that names the
database, how to ask a connection cheaply whether a transaction is open, how
to ping it, which errors mean the connection is gone, and which of the
driver's own timeouts to set so that an OS thread cannot hang forever.
Unknown modules get the generic behaviour, which makes no assumption.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Callable

from . import _green
from .errors import PoolWarning

logger = logging.getLogger("db_pool")

__all__ = ["Driver", "driver_for", "make_psycopg_green", "psycopg_is_green"]

# MySQL client and server error codes that mean the session is gone.
MYSQL_DISCONNECT_CODES = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1152,  # aborted connection
        1153,  # packet too large (connection dropped)
        1927,  # MariaDB: connection was killed
        2002,  # can't connect through socket
        2003,  # can't connect to server
        2006,  # server has gone away
        2013,  # lost connection during query
        2014,  # commands out of sync
        2045,  # can't open shared memory
        2055,  # lost connection to server at ...
        4031,  # MySQL 8: disconnected by the server for inactivity
    }
)


_Proxy = _green.tpool.Proxy


def _unproxy(conn: Any) -> Any:
    """The driver's own object behind an eventlet ``tpool.Proxy``."""
    # Runs on every checkin (transaction status, closed flag): a type test,
    # not getattr(conn, "_obj", conn), which costs a caught AttributeError
    # on every plain connection.
    return conn._obj if isinstance(conn, _Proxy) else conn


class Driver:
    """Generic behaviour, for any DB-API 2 module."""

    #: Keyword under which DatabaseConnector passes the database name.
    dbname_keyword = "database"
    #: Whether the driver is known to talk to a server over the network; if
    #: so, resets and pings get a deadline by default (``reset_timeout``).
    networked = False
    #: ``(attribute, negated)``: :meth:`is_closed` is exactly
    #: ``bool(getattr(conn, attribute))`` (``not ...`` when *negated*) for
    #: the driver's own connection, True if that raises.  The pool's C fast
    #: path then reads the attribute instead of calling the method.
    closed_flag: tuple[str, bool] | None = None
    #: A method of the driver's connection, without arguments and without
    #: I/O, that returns 0 when no transaction is open (anything else: one
    #: may be): :meth:`transaction_open` of an open connection, in short,
    #: for the pool's C fast path.
    status_method: str | None = None

    def __init__(self, module: Any) -> None:
        self.module = module
        self.name = getattr(module, "__name__", type(module).__name__)
        errs = []
        for attr in ("OperationalError", "InterfaceError"):
            cls = getattr(module, attr, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                errs.append(cls)
        self._disconnect_classes: tuple[type[BaseException], ...] = tuple(errs)

    # -- transaction state -------------------------------------------------
    def transaction_open(self, conn: Any) -> bool | None:
        """True if *conn* has a transaction open, False if not, None if unknown.

        Must not do any I/O.
        """
        raw = _unproxy(conn)
        state = getattr(raw, "in_transaction", None)
        if state is None or callable(state):
            return None
        return bool(state)

    def is_closed(self, conn: Any) -> bool:
        """True when *conn* is known (without I/O) to be closed or broken."""
        return False

    def status_getter(self, conn: Any) -> Callable[[Any], bool | None] | None:
        """The function that tells whether *conn* has a transaction open.

        None when this kind of connection cannot tell: the pool then always
        runs the reset.  Decided once per connection, off the hot path.
        """
        if type(self).transaction_open is Driver.transaction_open:
            raw = _unproxy(conn)
            state = getattr(raw, "in_transaction", None)
            if not isinstance(state, bool):
                return None
        return self.transaction_open

    def closed_getter(self) -> Callable[[Any], bool] | None:
        """``is_closed`` if this driver can tell, else None (skip the call)."""
        if type(self).is_closed is Driver.is_closed:
            return None
        return self.is_closed

    # -- health ------------------------------------------------------------
    def ping(self, conn: Any) -> None:
        """Raise if *conn* does not answer a trivial request."""
        ping = getattr(conn, "ping", None)
        if ping is not None and callable(ping):
            ping()
            return
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()

    def is_disconnect(self, exc: BaseException, conn: Any = None) -> bool:
        """True when *exc*, raised while using *conn*, means *conn* is dead."""
        if conn is not None and self.is_closed(conn):
            return True
        return False

    # -- connecting --------------------------------------------------------
    def thread_connect_kwargs(
        self, kwargs: dict[str, Any], connect_timeout: float | None
    ) -> dict[str, Any]:
        """Keywords to add so a connect in an OS thread cannot hang forever."""
        return kwargs

    def check_green(self, pool_kind: str) -> None:
        """Warn when this driver would block every green thread of the process."""


class Sqlite3Driver(Driver):
    dbname_keyword = "database"
    networked = False

    def ping(self, conn: Any) -> None:
        # A local file: nothing can have gone away.  Touch it only to fail
        # loudly on a closed connection.
        conn.total_changes  # noqa: B018

    def is_disconnect(self, exc: BaseException, conn: Any = None) -> bool:
        return False


#: SQLSTATEs (besides class 08) after which the server has ended the session.
_PG_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})


class Psycopg2Driver(Driver):
    dbname_keyword = "dbname"
    networked = True
    closed_flag = ("closed", False)
    status_method = "get_transaction_status"

    def transaction_open(self, conn: Any) -> bool | None:
        raw = _unproxy(conn)
        try:
            if raw.closed:
                return None
            # Straight from libpq: raw.info would build an object per call.
            status = raw.get_transaction_status()
        except Exception:
            return None
        # 0 = idle; 1 active, 2 in transaction, 3 in error, 4 unknown.
        return status != 0

    def is_closed(self, conn: Any) -> bool:
        try:
            return bool(_unproxy(conn).closed)
        except Exception:
            return True

    def ping(self, conn: Any) -> None:
        raw = conn
        was_idle = self.transaction_open(raw) is False
        cur = raw.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()
        if was_idle and self.transaction_open(raw):
            # The ping opened a transaction (autocommit off): end it, so the
            # caller gets the connection in the state it was in.
            raw.rollback()

    def is_disconnect(self, exc: BaseException, conn: Any = None) -> bool:
        if conn is not None and self.is_closed(conn):
            return True
        if not isinstance(exc, self._disconnect_classes):
            return False
        interface = getattr(self.module, "InterfaceError", None)
        if isinstance(interface, type) and isinstance(exc, interface):
            return True
        # An OperationalError.  Many of them leave the session fine: a
        # statement timeout (QueryCanceled), a deadlock, a lock not
        # available.  Only these mean it is gone: no SQLSTATE at all (libpq's
        # own "server closed the connection unexpectedly" and the like),
        # class 08 (connection exception), or the server shutting down or
        # starting up (57P01-57P03).
        code = getattr(exc, "pgcode", None)
        return code is None or code.startswith("08") or code in _PG_SESSION_ENDED

    def thread_connect_kwargs(
        self, kwargs: dict[str, Any], connect_timeout: float | None
    ) -> dict[str, Any]:
        if connect_timeout and "connect_timeout" not in kwargs and "dsn" not in kwargs:
            kwargs = dict(kwargs, connect_timeout=max(2, math.ceil(connect_timeout)))
        return kwargs

    def check_green(self, pool_kind: str) -> None:
        if pool_kind != "raw":
            if psycopg_is_green():
                msg = (
                    "psycopg2 has a green wait callback installed, but a "
                    "TpooledConnectionPool runs psycopg2 in OS threads, where "
                    "that callback cannot work. Use RawConnectionPool instead."
                )
                logger.warning(msg)
                warnings.warn(msg, PoolWarning, stacklevel=4)
            return
        if not psycopg_is_green():
            msg = (
                "psycopg2 is used in a RawConnectionPool without a wait callback: "
                "every query blocks all green threads of the process. Call "
                "db_pool.make_psycopg_green() (or eventlet.monkey_patch()) "
                "first, or use TpooledConnectionPool."
            )
            logger.warning(msg)
            warnings.warn(msg, PoolWarning, stacklevel=4)


class MySQLDriver(Driver):
    """PyMySQL and MySQLdb (mysqlclient)."""

    dbname_keyword = "db"
    networked = True

    def _code(self, exc: BaseException) -> int | None:
        args = getattr(exc, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        return None

    def is_disconnect(self, exc: BaseException, conn: Any = None) -> bool:
        if conn is not None and self.is_closed(conn):
            return True
        code = self._code(exc)
        if code in MYSQL_DISCONNECT_CODES:
            return True
        interface = getattr(self.module, "InterfaceError", None)
        if isinstance(interface, type) and isinstance(exc, interface):
            return True
        return False


class PyMySQLDriver(MySQLDriver):
    # PyMySQL still accepts ``db`` but warns that it is deprecated.
    dbname_keyword = "database"
    closed_flag = ("open", True)

    def transaction_open(self, conn: Any) -> bool | None:
        raw = _unproxy(conn)
        try:
            if not raw.open:
                return None
            result = raw._result
            status = raw.server_status
            if status is None:
                return None
            if result is not None:
                if getattr(result, "unbuffered_active", False):
                    return None  # a result is still being streamed
                if getattr(result, "server_status", None) is None:
                    # The last statement returned rows.  PyMySQL reads the
                    # status flags only from OK packets, not from the EOF
                    # packet that ends a result set, so server_status is the
                    # one from before that statement: a SELECT that opened a
                    # transaction (autocommit off) would look idle.  Only in
                    # autocommit mode, outside a transaction, can no such
                    # statement have opened one.
                    if status & 0x0002 and not status & 0x0001:
                        return False  # SERVER_STATUS_AUTOCOMMIT, not IN_TRANS
                    return None
        except Exception:
            return None
        return bool(status & 0x0001)  # SERVER_STATUS_IN_TRANS

    def is_closed(self, conn: Any) -> bool:
        try:
            return not _unproxy(conn).open
        except Exception:
            return True

    def ping(self, conn: Any) -> None:
        conn.ping(False)

    def check_green(self, pool_kind: str) -> None:
        if pool_kind == "raw" and not _green.is_monkey_patched("socket"):
            msg = (
                "PyMySQL is used in a RawConnectionPool but the socket module "
                "is not monkey-patched: every query blocks all green threads. "
                "Call eventlet.monkey_patch() before importing pymysql."
            )
            logger.warning(msg)
            warnings.warn(msg, PoolWarning, stacklevel=4)


class MySQLdbDriver(MySQLDriver):
    def ping(self, conn: Any) -> None:
        # No argument: mysqlclient 2.2.1 deprecated ping(reconnect) (a
        # DeprecationWarning, an error where warnings are errors, would make
        # every ping fail), and the reconnect flag is off by default since
        # MySQL 5.0.3, so ping() alone never reconnects behind our back.
        conn.ping()

    def thread_connect_kwargs(
        self, kwargs: dict[str, Any], connect_timeout: float | None
    ) -> dict[str, Any]:
        if connect_timeout and "connect_timeout" not in kwargs:
            kwargs = dict(kwargs, connect_timeout=max(1, math.ceil(connect_timeout)))
        return kwargs

    def check_green(self, pool_kind: str) -> None:
        if pool_kind == "raw":
            msg = (
                "MySQLdb is a C driver that green threads cannot switch out of: "
                "in a RawConnectionPool every query blocks all green threads. "
                "Use TpooledConnectionPool (db_pool.ConnectionPool)."
            )
            logger.warning(msg)


_DRIVERS: dict[str, type[Driver]] = {
    "sqlite3": Sqlite3Driver,
    "psycopg2": Psycopg2Driver,
    "pymysql": PyMySQLDriver,
    "MySQLdb": MySQLdbDriver,
}


def driver_for(module: Any) -> Driver:
    """The :class:`Driver` for the DB-API *module* (generic if unknown)."""
    name = getattr(module, "__name__", "")
    cls = _DRIVERS.get(name.split(".")[0], Driver)
    return cls(module)


# -- psycopg2 made green -------------------------------------------------------
def _make_psycopg_wait() -> Callable[..., None]:
    """Build the psycopg2 wait callback, with psycopg2's names bound once."""
    from psycopg2 import OperationalError
    from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE

    trampoline = _green.trampoline

    def wait(conn: Any, timeout: Any = None) -> None:
        """psycopg2 wait callback: yield to the hub until the socket is ready."""
        while True:
            state = conn.poll()
            if state == POLL_OK:
                return
            if state == POLL_READ:
                trampoline(conn.fileno(), read=True)
            elif state == POLL_WRITE:
                trampoline(conn.fileno(), write=True)
            else:
                raise OperationalError("bad state from poll: %r" % (state,))

    return wait


_psycopg_wait: Callable[..., None] | None = None


def make_psycopg_green() -> None:
    """Install a wait callback so psycopg2 yields to other green threads.

    Process-wide: afterwards every psycopg2 connection of the process is
    green.  Do not combine with psycopg2 connections used from OS threads
    (TpooledConnectionPool): the callback only works in the hub's thread.
    """
    global _psycopg_wait
    from psycopg2 import extensions

    if _psycopg_wait is None:
        _psycopg_wait = _make_psycopg_wait()
    extensions.set_wait_callback(_psycopg_wait)


def psycopg_is_green() -> bool:
    """True when psycopg2 has a wait callback installed."""
    try:
        from psycopg2 import extensions
    except ImportError:  # pragma: no cover
        return False
    return extensions.get_wait_callback() is not None
