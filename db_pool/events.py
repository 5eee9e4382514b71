"""Listener events, with pycassa's names.

A listener is any object with some of the methods named in :data:`EVENTS`,
or a dict mapping some of those names to callables.  Each call receives one
dict: ``{"pool": name, "connection": conn or None, "reason": str or None,
"error": exception or None}``.  A listener that raises is logged and
otherwise ignored: it can never break the pool.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

logger = logging.getLogger("db_pool")

__all__ = ["EVENTS", "Listeners"]

EVENTS = (
    "connection_created",
    "connection_checked_out",
    "connection_checked_in",
    "connection_disposed",
    "connection_failed",
    "connection_recycled",
    "pool_at_max",
    "pool_disposed",
)


class Listeners:
    """The callables registered for each event of one pool.

    For each event name there is an attribute holding a list, empty when
    nobody listens, so that the pool's hot path can test ``if
    listeners.connection_checked_out:`` at the cost of one attribute read.
    """

    def __init__(self, pool_name: str, listeners: Iterable[Any] = ()) -> None:
        self.pool_name = pool_name
        for name in EVENTS:
            setattr(self, name, [])
        for listener in listeners:
            self.add(listener)

    def add(self, listener: Any) -> None:
        """Register *listener* (an object with event methods, or a dict)."""
        found = False
        if isinstance(listener, dict):
            unknown = set(listener) - set(EVENTS)
            if unknown:
                raise ValueError(
                    "unknown listener event(s) %s; known events: %s"
                    % (", ".join(sorted(map(repr, unknown))), ", ".join(EVENTS))
                )
            for name, func in listener.items():
                if not callable(func):
                    raise TypeError(
                        "listener for %r must be callable, not %r" % (name, func)
                    )
                getattr(self, name).append(func)
                found = True
        else:
            for name in EVENTS:
                func = getattr(listener, name, None)
                if func is not None and callable(func):
                    getattr(self, name).append(func)
                    found = True
        if not found:
            raise TypeError(
                "listener %r has none of the event methods %s"
                % (listener, ", ".join(EVENTS))
            )

    def remove(self, listener: Any) -> None:
        """Unregister every callable that *listener* registered."""
        for name in EVENTS:
            if isinstance(listener, dict):
                func = listener.get(name)
            else:
                func = getattr(listener, name, None)
            if func is not None:
                funcs: list[Callable[..., Any]] = getattr(self, name)
                # In place: the pool holds these very lists.
                funcs[:] = [f for f in funcs if f != func]

    def fire(
        self,
        event: str,
        connection: Any = None,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Call every listener of *event*; errors are logged, never raised."""
        funcs = getattr(self, event)
        if not funcs:
            return
        info = {
            "pool": self.pool_name,
            "connection": connection,
            "reason": reason,
            "error": error,
        }
        for func in list(funcs):
            try:
                func(dict(info))
            except Exception:
                logger.exception(
                    "pool %r: listener %r for %s raised; ignored",
                    self.pool_name,
                    func,
                    event,
                )
