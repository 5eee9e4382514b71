"""DatabaseConnector: one pool per (host, database), made on demand."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .drivers import driver_for
from .variants import ConnectionPool

logger = logging.getLogger("db_pool")

__all__ = ["DatabaseConnector"]


class DatabaseConnector:
    """A pool of pools: one connection pool per ``(host, dbname)``.

    *credentials* maps a host name to the connect keywords for it (user,
    password, ...); the entry ``'default'`` serves hosts without their own.
    *conn_pool* is the pool class (default :data:`db_pool.ConnectionPool`);
    the remaining arguments go to every pool's constructor.

    The database name is passed under the keyword the driver expects
    (``db`` for MySQLdb and PyMySQL, ``dbname`` for psycopg2, ``database``
    for sqlite3 and unknown drivers); *dbname_keyword* overrides it.
    *host_keyword* (default ``host``) likewise names the host.
    """

    def __init__(
        self,
        module: Any,
        credentials: Mapping[str, Mapping[str, Any]],
        conn_pool: Any = None,
        *args: Any,
        dbname_keyword: str | None = None,
        host_keyword: str = "host",
        max_per_host: int | None = None,
        **kwargs: Any,
    ) -> None:
        if module is None or not callable(getattr(module, "connect", None)):
            raise TypeError(
                "module must be a DB-API 2 module with a connect() function, not %r"
                % (module,)
            )
        if not isinstance(credentials, Mapping):
            raise TypeError(
                "credentials must be a mapping of host name to connect keywords, "
                "not %s" % (type(credentials).__name__,)
            )
        if max_per_host is not None and (
            not isinstance(max_per_host, int) or isinstance(max_per_host, bool) or max_per_host < 1
        ):
            raise ValueError("max_per_host must be an integer >= 1, got %r" % (max_per_host,))
        self._conn_pool_class = conn_pool if conn_pool is not None else ConnectionPool
        self._module = module
        self._args = args
        self._kwargs = kwargs
        self._credentials = credentials
        self._databases: dict[tuple[str, str], Any] = {}
        self._dbname_keyword = dbname_keyword or driver_for(module).dbname_keyword
        self._host_keyword = host_keyword
        self.max_per_host = max_per_host
        self._closed = False

    def credentials_for(self, host: str) -> Any:
        """The connect keywords for *host*, else the 'default' entry, else None."""
        if host in self._credentials:
            return self._credentials[host]
        return self._credentials.get("default", None)

    def get(self, host: str, dbname: str) -> Any:
        """The pool for *host* and *dbname*, made on first use.

        Exactly one pool is made per key, however many green threads ask at
        once: the pool object is registered before anything can yield.
        """
        key = (host, dbname)
        pool = self._databases.get(key)
        if pool is not None:
            return pool
        if self._closed:
            from .errors import PoolClosed

            raise PoolClosed("this DatabaseConnector is closed")
        new_kwargs = dict(self._kwargs)
        new_kwargs[self._dbname_keyword] = dbname
        new_kwargs[self._host_keyword] = host
        creds = self.credentials_for(host)
        if creds:
            new_kwargs.update(creds)
        new_kwargs.setdefault("name", "%s/%s" % (host, dbname))
        # Building a pool with min_size > 0 connects, which yields; build it
        # without prefill, register it, then let it fill up.  No other green
        # thread can slip in between the lookup above and this assignment.
        min_size = new_kwargs.pop("min_size", 0)
        if self.max_per_host is not None:
            new_kwargs["max_size"] = min(
                new_kwargs.get("max_size", 4), self._host_room(host)
            )
        pool = self._conn_pool_class(self._module, *self._args, min_size=0, **new_kwargs)
        self._databases[key] = pool
        if min_size:
            pool.resize(min_size=min(min_size, pool.max_size))
        return pool

    def _host_room(self, host: str) -> int:
        used = sum(p.max_size for (h, _), p in self._databases.items() if h == host)
        room = self.max_per_host - used  # type: ignore[operator]
        if room < 1:
            raise ValueError(
                "host %r has no room for another pool: max_per_host=%d is taken "
                "by its %d pool(s)"
                % (host, self.max_per_host, sum(1 for h, _ in self._databases if h == host))
            )
        return room

    def warm_up(self, keys: Any = None) -> None:
        """Open min_size connections now for the given (or all) pools."""
        for key, pool in list(self._databases.items()):
            if keys is None or key in keys:
                pool._maintain()

    def pools(self) -> dict[tuple[str, str], Any]:
        """A copy of the mapping (host, dbname) -> pool."""
        return dict(self._databases)

    def stats(self) -> dict[str, Any]:
        """``stats()`` of every pool, keyed ``"host/dbname"``."""
        return {"%s/%s" % key: pool.stats() for key, pool in self._databases.items()}

    def close(self) -> None:
        """Close every pool; later get() calls raise PoolClosed."""
        self._closed = True
        pools = list(self._databases.values())
        self._databases.clear()
        for pool in pools:
            try:
                pool.close()
            except Exception:
                logger.exception("closing pool %r failed", getattr(pool, "name", pool))

    def __repr__(self) -> str:
        return "<DatabaseConnector %d pool(s): %s>" % (
            len(self._databases),
            ", ".join("%s/%s" % key for key in self._databases),
        )
