"""DatabaseConnector: one pool per (host, database), made on demand."""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from . import _green
from ._config import check_int
from .drivers import driver_for
from .errors import ConfigError, PoolClosed
from .variants import ConnectionPool

logger = logging.getLogger("db_pool")

__all__ = ["DatabaseConnector"]

# The pool constructor's positional parameters after db_module (eventlet's
# order): DatabaseConnector passes its extra positional arguments on as these.
_MIN_SIZE, _MAX_SIZE = 0, 1


class DatabaseConnector:
    """A pool of pools: one connection pool per ``(host, dbname)``.

    *credentials* maps a host name to the connect keywords for it (user,
    password, ...); the entry ``'default'`` serves hosts without their own.
    *conn_pool* is the pool class (default :data:`db_pool.ConnectionPool`);
    the remaining arguments, positional (``min_size, max_size, ...``, as in
    eventlet) or keyword, go to every pool's constructor.

    The database name is passed under the keyword the driver expects
    (``dbname`` for psycopg2, ``database`` for PyMySQL, sqlite3 and unknown
    drivers, ``db`` for MySQLdb); *dbname_keyword* overrides it.
    *host_keyword* (default ``host``) likewise names the host.

    *max_per_host* caps the connections to one host across all its
    databases: the host's pools share it evenly (each gets at most its own
    ``max_size``), and the pools already made shrink when a new database on
    the same host gets its pool.  A host with more databases than
    *max_per_host* raises :class:`~db_pool.ConfigError` for the extra ones.

    Pools are made lazily, on the first :meth:`get` of their key;
    :meth:`warm_up` makes them and opens their connections ahead of time.
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
        for host, creds in credentials.items():
            if creds is not None and not isinstance(creds, Mapping):
                raise TypeError(
                    "credentials[%r] must be a mapping of connect keywords, not %s"
                    % (host, type(creds).__name__)
                )
        if conn_pool is not None and not callable(conn_pool):
            raise TypeError("conn_pool must be a pool class, not %r" % (conn_pool,))
        self.max_per_host = check_int("max_per_host", max_per_host, 1, allow_none=True)
        self._conn_pool_class = conn_pool if conn_pool is not None else ConnectionPool
        self._module = module
        self._args = args
        self._kwargs = kwargs
        self._credentials = credentials
        self._databases: dict[tuple[str, str], Any] = {}
        self._dbname_keyword = dbname_keyword or driver_for(module).dbname_keyword
        self._host_keyword = host_keyword
        self._closed = False
        # The sizes every pool asks for (positional as in eventlet, or keyword).
        self._min_size = self._option("min_size", _MIN_SIZE, 0)
        self._max_size = self._option("max_size", _MAX_SIZE, 4)

    def _option(self, name: str, position: int, default: Any) -> Any:
        if len(self._args) > position:
            if name in self._kwargs:
                raise TypeError("%s given both positionally and by keyword" % (name,))
            return self._args[position]
        return self._kwargs.get(name, default)

    def credentials_for(self, host: str) -> Any:
        """The connect keywords for *host*, else the 'default' entry, else None."""
        if host in self._credentials:
            return self._credentials[host]
        return self._credentials.get("default", None)

    def get(self, host: str, dbname: str) -> Any:
        """The pool for *host* and *dbname*, made on first use.

        Exactly one pool is made per key, however many green threads ask at
        once: the pool is built without connecting and registered before
        anything can yield; it opens its ``min_size`` connections afterwards,
        in the background.
        """
        key = (host, dbname)
        pool = self._databases.get(key)
        if pool is not None:
            return pool
        if self._closed:
            raise PoolClosed("this DatabaseConnector is closed")
        args = list(self._args)
        kwargs = dict(self._kwargs)
        kwargs[self._dbname_keyword] = dbname
        kwargs[self._host_keyword] = host
        creds = self.credentials_for(host)
        if creds:
            kwargs.update(creds)
        kwargs.setdefault("name", "%s/%s" % (host, dbname))
        max_size = self._max_size
        if self.max_per_host is not None:
            shares = self._shares(host, 1)
            max_size = min(max_size, shares[-1])
        # No prefill in the constructor: it would connect, which yields,
        # and another green thread could then make a second pool for key.
        self._set_option(args, kwargs, "min_size", _MIN_SIZE, 0)
        self._set_option(args, kwargs, "max_size", _MAX_SIZE, max_size)
        pool = self._conn_pool_class(self._module, *args, **kwargs)
        self._databases[key] = pool
        if self.max_per_host is not None:
            self._rebalance(host)
        if self._min_size:
            pool.resize(min_size=min(self._min_size, pool.max_size))
        return pool

    @staticmethod
    def _set_option(
        args: list[Any], kwargs: dict[str, Any], name: str, position: int, value: Any
    ) -> None:
        if len(args) > position:
            args[position] = value
        else:
            kwargs[name] = value

    def _host_pools(self, host: str) -> list[Any]:
        return [pool for (h, _), pool in self._databases.items() if h == host]

    def _shares(self, host: str, extra: int) -> list[int]:
        """max_per_host split evenly over *host*'s pools (plus *extra* new ones)."""
        count = len(self._host_pools(host)) + extra
        cap = self.max_per_host
        assert cap is not None
        if count > cap:
            raise ConfigError(
                "host %r cannot have %d pools: max_per_host=%d leaves no connection "
                "for the last one" % (host, count, cap)
            )
        base, rest = divmod(cap, count)
        return [base + (1 if i < rest else 0) for i in range(count)]

    def _rebalance(self, host: str) -> None:
        """Give *host*'s pools their share of max_per_host (oldest first)."""
        pools = self._host_pools(host)
        for pool, share in zip(pools, self._shares(host, 0)):
            new_max = min(self._max_size, share)
            if pool.max_size != new_max:
                # Shrinking closes idle connections now and lent ones when
                # they come back: the host's total drops to the cap as soon
                # as the surplus is returned.
                pool.resize(max_size=new_max, min_size=min(pool.min_size, new_max))

    def warm_up(
        self,
        keys: Iterable[tuple[str, str]] | None = None,
        size: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, int]:
        """Open connections now, so that the first requests find them ready.

        *keys* are ``(host, dbname)`` pairs (their pools are made if need
        be); None means every pool made so far.  Each pool gets *size* open
        connections (default: its ``min_size``, at least 1; never more than
        its ``max_size``).  The pools are warmed in parallel; *timeout*
        bounds each checkout (default: the pool's ``pool_timeout``).

        Returns ``{"host/dbname": open connections}``.  When a pool cannot
        open its connections, the others are still warmed, then the first
        error is raised.
        """
        size = check_int("size", size, 1, allow_none=True)
        if keys is None:
            targets = list(self._databases.items())
        else:
            targets = [((h, d), self.get(h, d)) for h, d in keys]
        errors: list[BaseException] = []

        def warm(key: tuple[str, str], pool: Any) -> None:
            want = size if size is not None else max(pool.min_size, 1)
            want = min(want, pool.max_size)
            held = []
            try:
                for _ in range(want):
                    if timeout is None:
                        held.append(pool.get())
                    else:
                        held.append(pool.get(timeout=timeout))
            except Exception as exc:
                logger.warning(
                    "warm-up of pool %s/%s: opened %d of %d connections: %s",
                    key[0],
                    key[1],
                    len(held),
                    want,
                    type(exc).__name__,
                )
                errors.append(exc)
            finally:
                for conn in held:
                    pool.put(conn)

        threads = [_green.spawn(warm, key, pool) for key, pool in targets]
        for thread in threads:
            thread.wait()
        if errors:
            raise errors[0]
        return {"%s/%s" % key: pool.current_size for key, pool in targets}

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

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "DatabaseConnector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<DatabaseConnector %d pool(s): %s>" % (
            len(self._databases),
            ", ".join("%s/%s" % key for key in self._databases),
        )
