"""How connections are opened: in the hub's thread, or in OS threads."""

from __future__ import annotations

from typing import Any

from . import _green
from .errors import ConnectTimeout
from .pool import BaseConnectionPool

__all__ = ["RawConnectionPool", "TpooledConnectionPool", "ConnectionPool"]


def _timed_connect(
    func: Any, connect_timeout: float | None, /, *args: Any, **kw: Any
) -> Any:
    """Run *func* under a green timeout that raises ConnectTimeout.

    Positional-only, like ``connect()``: the driver's own ``connect_timeout``
    keyword (psycopg2, MySQLdb) must be able to travel in *kw*.
    """
    if not connect_timeout:
        return func(*args, **kw)
    timer = _green.Timeout(connect_timeout)
    try:
        return func(*args, **kw)
    except _green.Timeout as exc:
        if exc is not timer:
            raise
        raise ConnectTimeout(
            "connect did not finish within %gs (connect_timeout)" % (connect_timeout,)
        ) from None
    finally:
        timer.cancel()


class RawConnectionPool(BaseConnectionPool):
    """A pool that gives out the driver's own connections.

    For drivers that cooperate with the hub: PyMySQL under
    ``eventlet.monkey_patch()``, psycopg2 after
    :func:`db_pool.make_psycopg_green`, sqlite3.
    """

    _kind = "raw"

    @classmethod
    def connect(
        cls, db_module: Any, connect_timeout: float | None, /, *args: Any, **kw: Any
    ) -> Any:
        """Open a connection with ``db_module.connect(*args, **kw)``."""
        return _timed_connect(db_module.connect, connect_timeout, *args, **kw)


class TpooledConnectionPool(BaseConnectionPool):
    """A pool whose connections run every call in an OS thread (eventlet.tpool).

    For C drivers that block, such as MySQLdb (mysqlclient).  The connections
    handed out are ``tpool.Proxy`` objects.  Connect keywords for the
    driver's own timeouts are added (when known and not given), so that an
    OS thread cannot stay stuck after the green timeout has fired.
    """

    _kind = "tpool"

    def create(self) -> tuple[float, float, Any]:
        if self._servers is not None:
            return super().create()
        now = _green.monotonic()
        kwargs = self._driver.thread_connect_kwargs(self._kwargs, self.connect_timeout)
        conn = self.connect(
            self._db_module, self.connect_timeout, *self._args, **kwargs
        )
        return now, now, conn

    @classmethod
    def connect(
        cls, db_module: Any, connect_timeout: float | None, /, *args: Any, **kw: Any
    ) -> Any:
        """Open a connection in an OS thread; returns a ``tpool.Proxy``."""
        tpool = _green.tpool
        conn = _timed_connect(
            tpool.execute, connect_timeout, db_module.connect, *args, **kw
        )
        return tpool.Proxy(conn, autowrap_names=("cursor",))


#: eventlet.db_pool's default: the OS-thread pool.
ConnectionPool = TpooledConnectionPool
