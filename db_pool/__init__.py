"""db_pool: a DB-API 2 connection pool for green-thread servers.

A drop-in successor of ``eventlet.db_pool``: the same names and behaviour,
plus fair bounded waiting, health checks, lifetimes, stats and events.
"""

from .connector import DatabaseConnector
from .drivers import make_psycopg_green
from .errors import (
    AllServersUnavailable,
    ConfigError,
    ConnectionLeakWarning,
    ConnectionReturnedError,
    ConnectTimeout,
    MaximumRetryException,
    PoolClosed,
    PoolError,
    PoolTimeout,
    PoolWarning,
    TooManyWaiters,
)
from .events import EVENTS
from .pool import SPEEDUPS, BaseConnectionPool, cleanup_rollback
from .variants import ConnectionPool, RawConnectionPool, TpooledConnectionPool
from .wrapper import GenericConnectionWrapper, PooledConnectionWrapper

__version__ = "0.1.0"

__all__ = [
    "AllServersUnavailable",
    "BaseConnectionPool",
    "ConfigError",
    "ConnectTimeout",
    "ConnectionLeakWarning",
    "ConnectionPool",
    "ConnectionReturnedError",
    "DatabaseConnector",
    "EVENTS",
    "GenericConnectionWrapper",
    "MaximumRetryException",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "PoolWarning",
    "PooledConnectionWrapper",
    "RawConnectionPool",
    "SPEEDUPS",
    "TooManyWaiters",
    "TpooledConnectionPool",
    "cleanup_rollback",
    "make_psycopg_green",
]
