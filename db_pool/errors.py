"""The exceptions and warnings that db_pool raises.

Every exception the pool raises on its own account derives from
:class:`PoolError`.  Errors carry their context in attributes (the pool's
name, the timeout, ...), never a DSN or a password, and they pickle.
"""

from __future__ import annotations

from typing import Any


class PoolError(Exception):
    """Root of the exceptions raised by db_pool itself.

    *pool_name* is the name of the pool that raised it (or None).
    """

    def __init__(self, message: str = "", pool_name: str | None = None) -> None:
        super().__init__(message)
        self.pool_name = pool_name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.pool_name))


class PoolTimeout(PoolError):
    """No connection could be had within the caller's deadline."""

    def __init__(
        self,
        message: str = "",
        pool_name: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(message, pool_name)
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.pool_name, self.timeout))


class PoolClosed(PoolError):
    """The pool was closed; it hands out no more connections."""


class TooManyWaiters(PoolError):
    """The queue of callers waiting for a connection is full (``max_waiting``)."""


class ConnectTimeout(PoolError):
    """Opening a connection took longer than ``connect_timeout``.

    The name is eventlet.db_pool's; the instance is raised from ``get()``.
    """


class ConfigError(PoolError, ValueError):
    """An option given to a pool has a bad value."""


class AllServersUnavailable(PoolError):
    """Every server of a server list failed to give a connection.

    *errors* is a list of ``(server_label, error_text)`` pairs; the labels and
    texts never include a password.
    """

    def __init__(
        self,
        message: str = "",
        pool_name: str | None = None,
        errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, pool_name)
        self.errors = list(errors or ())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.pool_name, self.errors))


class MaximumRetryException(PoolError):
    """``execute()`` gave up after ``max_retries`` retries (last error chained)."""

    def __init__(
        self, message: str = "", pool_name: str | None = None, attempts: int = 0
    ) -> None:
        super().__init__(message, pool_name)
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.pool_name, self.attempts))


class ConnectionReturnedError(PoolError, AttributeError):
    """A wrapper was used after its connection went back to the pool."""


class PoolWarning(UserWarning):
    """Base class of the warnings db_pool emits."""


class ConnectionLeakWarning(PoolWarning, ResourceWarning):
    """A connection was dropped without being returned, or held too long."""


for _cls in (
    PoolError,
    PoolTimeout,
    PoolClosed,
    TooManyWaiters,
    ConnectTimeout,
    ConfigError,
    AllServersUnavailable,
    MaximumRetryException,
    ConnectionReturnedError,
    PoolWarning,
    ConnectionLeakWarning,
):
    _cls.__module__ = "db_pool"
del _cls
