"""The only module that touches eventlet.

Everything else in db_pool asks this module for clocks, green threads,
timeouts and the thread pool, so that another green-thread library (or plain
OS threads) can later slot in here alone.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Callable

if "eventlet" not in sys.modules:
    # Importing eventlet announces that eventlet is in maintenance mode.  The
    # users of this package chose eventlet already; repeating the notice on
    # their behalf on every import only adds noise, so hide that one message
    # (and only while we import it).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        import eventlet
else:  # pragma: no cover - depends on import order
    import eventlet

import eventlet.event
import eventlet.greenthread
import eventlet.hubs
import eventlet.timeout
import eventlet.tpool
from greenlet import GreenletExit
from greenlet import getcurrent as current_greenlet

__all__ = [
    "CLIENT_EXCEPTIONS",
    "Event",
    "GreenletExit",
    "Timeout",
    "call_soon_global",
    "current_greenlet",
    "get_hub",
    "monotonic",
    "sleep",
    "spawn",
    "spawn_n",
    "tpool",
]

monotonic = time.monotonic
Timeout = eventlet.timeout.Timeout
Event = eventlet.event.Event
sleep = eventlet.greenthread.sleep
spawn = eventlet.greenthread.spawn
spawn_n = eventlet.greenthread.spawn_n
get_hub = eventlet.hubs.get_hub
trampoline = eventlet.hubs.trampoline
tpool = eventlet.tpool
#: Where eventlet keeps each OS thread's hub (what get_hub() reads first):
#: the C fast paths read it there, and call get_hub() only when it is unset.
hub_local = eventlet.hubs._threadlocal

#: What a caller can be interrupted with, besides ordinary errors: all of
#: these must leave the pool's state whole.
CLIENT_EXCEPTIONS = (Exception, GreenletExit, Timeout)


def call_soon_global(func: Callable[..., Any], *args: Any) -> Any:
    """Run *func* from the hub as soon as possible.

    Safe to call from a finalizer or ``__del__``: it only appends to the hub's
    list of new timers and switches nothing.
    """
    return get_hub().schedule_call_global(0, func, *args)


def is_monkey_patched(module: str) -> bool:
    """True when eventlet has patched the standard module *module*."""
    return bool(eventlet.patcher.is_monkey_patched(module))
