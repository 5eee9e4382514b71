"""A pool over a list of database servers, with failover.

``BaseConnectionPool(..., servers=[...])`` makes the pool open each new
connection on one server of a list instead of always the same one.  This
module owns that list: the order in which servers are tried, which ones are
down and until when, and the per-server counters shown in ``stats()``.

How a new connection is opened (:meth:`ServerList.create`):

- The list is shuffled once, then walked round-robin: each new connection
  starts one server further, so connections spread evenly and many
  processes with the same list do not all start on the same server.
- A server whose connect fails is marked *down* and skipped.  Callers
  never wait for a down server: a background green thread probes it (one
  connect, closed at once) after a backoff with jitter (from the pool's
  ``reconnect_delay``, doubling after each failed probe); when a probe
  succeeds the server is back in the rotation, without a restart.
- One connect attempt gets at most ``connect_timeout``, and never more than
  an equal share of what is left of the caller's deadline among the servers
  still to try, so one server that hangs cannot use up the whole deadline.
- When no server gives a connection, :class:`~db_pool.AllServersUnavailable`
  names every server and its error (passwords removed).  If the list came
  from a callable, it is read again first and new servers are tried.

This module does no I/O of its own besides the connects (and closing a
probe's connection), and changes its state only between them: green threads
switch only at I/O, so no lock is needed.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
import weakref
from collections.abc import Mapping
from typing import Any, Callable

from . import _green
from ._config import Backoff
from .errors import AllServersUnavailable, ConfigError, PoolTimeout
from .secrets import SENSITIVE_KEYS, redact, safe_kwargs

logger = logging.getLogger("db_pool")

__all__ = ["Server", "ServerList", "parse_servers"]

monotonic = _green.monotonic

#: Drivers whose "server" is not a host: a string entry names the database
#: file instead.  Every other driver takes ``host`` and ``port`` (psycopg2,
#: PyMySQL, MySQLdb, and most DB-API drivers for networked databases).
_FILE_DRIVERS = {"sqlite3": "database"}

#: Seconds a background probe may take when the pool has no connect_timeout.
PROBE_TIMEOUT = 10.0


def _host_port(text: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    text = text.strip()
    if not text:
        raise ValueError("empty server address")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unclosed '[' in %r" % (text,))
        host, rest = text[1:end], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("expected ':port' after ']' in %r" % (text,))
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        # No colon, or a bare IPv6 address (several colons, no port).
        return text, None
    if not host:
        raise ValueError("no host in %r" % (text,))
    if not port_text.isdigit():
        raise ValueError("port must be a number in %r" % (text,))
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError("port out of range in %r" % (text,))
    return host, port


def _format_address(host: Any, port: Any) -> str:
    host = str(host)
    if ":" in host:
        host = "[%s]" % host
    return host if port is None else "%s:%s" % (host, port)


def _entry_key(kwargs: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What identifies one server across re-reads of a callable list."""
    return tuple(sorted((k, repr(v)) for k, v in kwargs.items()))


def parse_servers(
    entries: Any, driver_name: str = ""
) -> list[tuple[str, dict[str, Any]]]:
    """Check a server list and turn it into ``(label, connect_kwargs)`` pairs.

    *entries* is a list or tuple of ``"host"`` / ``"host:port"`` strings or
    of dicts of connect keywords.  *driver_name* is the DB-API module's name
    (``"sqlite3"`` takes database file names instead of hosts).  Raises
    TypeError or :class:`~db_pool.ConfigError` naming the bad entry, without
    its password.
    """
    if isinstance(entries, (str, bytes)) or not isinstance(entries, (list, tuple)):
        raise TypeError(
            "servers must be a list of 'host[:port]' strings or dicts of connect "
            "keywords (or a callable returning one), not %s" % (type(entries).__name__,)
        )
    if not entries:
        raise ConfigError("servers must name at least one server, got an empty list")
    file_keyword = _FILE_DRIVERS.get(driver_name.split(".")[0])
    result: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, str):
            if file_keyword is not None:
                if not entry:
                    raise ConfigError("servers[%d]: empty database name" % (index,))
                kwargs: dict[str, Any] = {file_keyword: entry}
                label = entry
            else:
                try:
                    host, port = _host_port(entry)
                except ValueError as exc:
                    raise ConfigError("servers[%d]: %s" % (index, exc)) from None
                kwargs = {"host": host}
                if port is not None:
                    kwargs["port"] = port
                # A URL given by mistake ("postgresql://u:pw@h/db") parses
                # as a host name: its label must not show the password.
                label = redact(_format_address(host, port))
        elif isinstance(entry, Mapping):
            bad = [k for k in entry if not isinstance(k, str)]
            if bad:
                raise TypeError(
                    "servers[%d]: connect keywords must be strings, got %r"
                    % (index, bad[0])
                )
            if not entry:
                raise ConfigError(
                    "servers[%d]: empty dict of connect keywords" % (index,)
                )
            kwargs = dict(entry)
            port = kwargs.get("port")
            if port is not None and (
                isinstance(port, bool) or not isinstance(port, (int, str))
            ):
                raise TypeError(
                    "servers[%d]: port must be an integer, not %r" % (index, port)
                )
            if isinstance(port, str):
                if not port.isdigit():
                    raise ConfigError(
                        "servers[%d]: port must be a number, got %r" % (index, port)
                    )
                # PyMySQL and MySQLdb want an int; psycopg2 takes either.
                kwargs["port"] = int(port)
            label = _dict_label(kwargs, file_keyword, index)
        else:
            raise TypeError(
                "servers[%d] must be a 'host[:port]' string or a dict of connect "
                "keywords, not %s" % (index, type(entry).__name__)
            )
        result.append((label, kwargs))
    # Labels name servers in stats and errors: make them unique.
    seen: dict[str, int] = {}
    for label, _ in result:
        seen[label] = seen.get(label, 0) + 1
    if any(n > 1 for n in seen.values()):
        counts: dict[str, int] = {}
        unique = []
        for label, kwargs in result:
            if seen[label] > 1:
                counts[label] = counts.get(label, 0) + 1
                label = "%s#%d" % (label, counts[label])
            unique.append((label, kwargs))
        result = unique
    return result


def _dict_label(kwargs: Mapping[str, Any], file_keyword: str | None, index: int) -> str:
    """A display name for a dict entry: its address, never a secret."""
    if file_keyword is not None and file_keyword in kwargs:
        return redact(str(kwargs[file_keyword]))
    host = kwargs.get("host", kwargs.get("unix_socket"))
    if host is None:
        return "server-%d" % (index + 1,)
    label = _format_address(host, kwargs.get("port"))
    for key in ("dbname", "database", "db"):
        if key in kwargs:
            label = "%s/%s" % (label, kwargs[key])
            break
    return redact(label)


class Server:
    """One server of a list: its connect keywords, state and counters."""

    __slots__ = (
        "label",
        "kwargs",
        "key",
        "backoff",
        "down_until",
        "down_since",
        "probing",
        "probes",
        "failures_in_row",
        "last_error",
        "avoid_until",
        "connects",
        "failures",
        "disconnects",
        "open",
    )

    def __init__(self, label: str, kwargs: dict[str, Any], backoff: Backoff) -> None:
        self.label = label
        self.kwargs = kwargs
        self.key = _entry_key(kwargs)
        self.backoff = backoff
        #: monotonic() time of the next background probe (0: up).
        self.down_until = 0.0
        self.down_since: float | None = None
        #: True while the background probe of this (down) server runs.
        self.probing = False
        self.probes = 0
        #: 0: up; otherwise how many connects in a row failed (down).
        self.failures_in_row = 0
        self.last_error: str | None = None
        #: A connection to it just died: put it last in the order for a
        #: moment, so that a retry lands on another server where there is one.
        self.avoid_until = 0.0
        self.connects = 0
        self.failures = 0
        self.disconnects = 0
        self.open = 0

    @property
    def up(self) -> bool:
        return self.failures_in_row == 0

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return "<Server %s %s open=%d>" % (
            self.label,
            "up" if self.failures_in_row == 0 else "down",
            self.open,
        )


class ServerList:
    """The servers of one pool, and how a new connection picks one.

    *servers* is a list (or tuple) of ``"host"`` / ``"host:port"`` strings
    or dicts of connect keywords, or a callable returning such a list; the
    callable is called now, and again whenever no server could give a
    connection.  *pool* is the pool: its connect keywords, connect function,
    ``connect_timeout`` and ``reconnect_delay`` are used.  Each server's
    keywords are laid over the pool's own.
    """

    def __init__(self, servers: Any, pool: Any) -> None:
        self._pool = pool
        self._driver_name = getattr(pool._db_module, "__name__", "") or ""
        backoff = pool._backoff
        self._delays = (backoff.initial, backoff.maximum)
        if callable(servers) and not isinstance(servers, (list, tuple)):
            self._source: Callable[[], Any] | None = servers
            entries = servers()
        else:
            self._source = None
            entries = servers
        self._servers: list[Server] = self._build(
            parse_servers(entries, self._driver_name), {}
        )
        random.shuffle(self._servers)
        self._cursor = 0
        self._reread_backoff = Backoff(*self._delays)
        self._reread_at = 0.0
        self._list_error: str | None = None
        self._prober: Any = None
        self._pid = os.getpid()

    # ------------------------------------------------------------------
    def _build(
        self, parsed: list[tuple[str, dict[str, Any]]], old: dict[Any, Server]
    ) -> list[Server]:
        out = []
        for label, kwargs in parsed:
            server = old.get(_entry_key(kwargs))
            if server is None:
                server = Server(label, kwargs, Backoff(*self._delays))
            else:
                server.label = label
            out.append(server)
        return out

    @property
    def servers(self) -> list[Server]:
        """The servers, in the (shuffled) order they are walked."""
        return list(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def __repr__(self) -> str:
        return "<ServerList %s>" % (", ".join(s.label for s in self._servers),)

    def _secrets(self) -> list[str]:
        """Literal secret values to scrub from error texts."""
        found = []
        sources = [self._pool._kwargs] + [s.kwargs for s in self._servers]
        for kwargs in sources:
            for key, value in kwargs.items():
                if key.lower() in SENSITIVE_KEYS and isinstance(value, str):
                    found.append(value)
        return found

    def _describe(self, exc: BaseException) -> str:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else ""
        text = "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
        return redact(text, self._secrets())

    def _check_fork(self) -> None:
        pid = os.getpid()
        if pid != self._pid:
            # A child inherits none of the parent's connections.
            self._pid = pid
            for server in self._servers:
                server.open = 0
                server.probing = False
            self._prober = None
            if any(not server.up for server in self._servers):
                self._ensure_prober()

    # ------------------------------------------------------------------
    def _order(self, now: float) -> list[Server]:
        """The servers that are up, in the order to try them now."""
        servers = self._servers
        n = len(servers)
        start = self._cursor % n
        rotated = servers[start:] + servers[:start]
        ready = [s for s in rotated if s.up]
        if len(ready) > 1:
            # Stable: servers that just lost a connection go last.
            ready.sort(key=lambda s: s.avoid_until > now)
        # The next caller starts after the server this one will use first
        # (not merely one further), so that a skipped server's share is
        # spread evenly over the others.
        first = ready[0] if ready else rotated[0]
        self._cursor = (servers.index(first) + 1) % n
        return ready

    def create(self, deadline: float | None) -> tuple[float, float, Any, Server]:
        """Open a connection on the next server that gives one.

        Returns ``(last_used, created_at, conn, server)``.  Raises
        :class:`~db_pool.AllServersUnavailable` when no server gave one, or
        :class:`~db_pool.PoolTimeout` when the caller's *deadline* (a
        ``monotonic()`` time, or None) passed first.
        """
        self._check_fork()
        now = monotonic()
        errors: dict[Server, str] = {}
        result = self._try(self._order(now), deadline, errors)
        if result is not None:
            return result
        if self._source is not None and monotonic() >= self._reread_at:
            fresh = self._reread(errors)
            if fresh:
                result = self._try(fresh, deadline, errors)
                if result is not None:
                    return result
        self._raise(errors, deadline)
        raise AssertionError("unreachable")  # pragma: no cover

    def _try(
        self,
        candidates: list[Server],
        deadline: float | None,
        errors: dict[Server, str],
    ) -> tuple[float, float, Any, Server] | None:
        for index, server in enumerate(candidates):
            if deadline is not None and deadline - monotonic() <= 0:
                return None
            if not server.up:
                # Another caller found it down while we were trying the
                # servers before it.
                continue
            timeout = self._attempt_timeout(deadline, len(candidates) - index)
            conn = self._attempt(server, timeout, errors)
            if conn is not None:
                if index and server in self._servers:
                    # Failed over: the next caller starts after this one.
                    self._cursor = (self._servers.index(server) + 1) % len(
                        self._servers
                    )
                now = monotonic()
                return now, now, conn, server
        return None

    def _attempt_timeout(self, deadline: float | None, left: int) -> float | None:
        """connect_timeout, capped by a fair share of the caller's deadline."""
        timeout = self._pool.connect_timeout
        if deadline is None:
            return timeout
        share = max(deadline - monotonic(), 0.001) / left
        return share if timeout is None or share < timeout else timeout

    def _connect(self, server: Server, timeout: float | None) -> Any:
        pool = self._pool
        kwargs = dict(pool._kwargs)
        kwargs.update(server.kwargs)
        if pool._kind == "tpool":
            # The driver's own timeouts too, so an OS thread cannot hang.
            kwargs = pool._driver.thread_connect_kwargs(kwargs, timeout)
        return pool.connect(pool._db_module, timeout, *pool._args, **kwargs)

    def _attempt(
        self, server: Server, timeout: float | None, errors: dict[Server, str]
    ) -> Any:
        try:
            conn = self._connect(server, timeout)
        except Exception as exc:
            errors[server] = self._failed(server, exc)
            # One event per failed server; the pool adds one more, with the
            # final error, when no server at all gave a connection.
            self._pool._listeners.fire(
                "connection_failed", error=exc, reason="server %s" % server.label
            )
            return None
        server.connects += 1
        server.open += 1
        if not server.up:
            # Marked down by another caller meanwhile, yet it answered us.
            self._recovered(server)
        self._reread_backoff.reset()
        self._reread_at = 0.0
        return conn

    def _recovered(self, server: Server) -> None:
        logger.warning(
            "pool %r: server %s answers again (down for %.1fs)",
            self._pool.name,
            server.label,
            monotonic() - (server.down_since or monotonic()),
        )
        server.failures_in_row = 0
        server.down_until = 0.0
        server.down_since = None
        server.backoff.reset()

    def _failed(self, server: Server, exc: Exception, probe: bool = False) -> str:
        """Count a failed connect; mark *server* down.  Returns the error text."""
        now = monotonic()
        text = self._describe(exc)
        server.failures += 1
        server.last_error = text
        if server.up or probe:
            # A caller that failed on a server already down (it started
            # before the server was marked) does not lengthen the backoff.
            if server.up:
                server.down_since = now
            server.failures_in_row += 1
            delay = server.backoff.next_delay()
            server.down_until = now + delay
            log = logger.info if probe else logger.warning
            log(
                "pool %r: server %s %s (%s); next try in %.2fs",
                self._pool.name,
                server.label,
                "still fails" if probe else "failed, skipped until it answers again",
                text,
                delay,
            )
            self._ensure_prober()
        return text

    # ------------------------------------------------------------------
    # background probes of down servers
    def _ensure_prober(self) -> None:
        if self._prober is None and not self._pool.closed:
            self._prober = _green.spawn_n(_prober_loop, weakref.ref(self))

    def _probe_due(self) -> float | None:
        """Start the probes that are due; the delay to the next, or None."""
        if self._pool.closed:
            self._prober = None
            return None
        now = monotonic()
        next_at = math.inf
        for server in self._servers:
            if server.up or server.probing:
                continue
            if server.down_until <= now:
                server.probing = True
                _green.spawn_n(self._probe, server)
            else:
                next_at = min(next_at, server.down_until)
        if next_at == math.inf:
            # Nothing waiting; a probe that fails starts the loop again.
            self._prober = None
            return None
        return max(next_at - now, 0.001)

    def _probe(self, server: Server) -> None:
        """One background connect to a down server; closed at once."""
        server.probes += 1
        timeout = self._pool.connect_timeout or PROBE_TIMEOUT
        try:
            conn = self._connect(server, timeout)
        except Exception as exc:
            server.probing = False
            if server in self._servers and not self._pool.closed:
                self._failed(server, exc, probe=True)
            return
        except BaseException:
            server.probing = False
            raise
        server.probing = False
        try:
            conn.close()
        except Exception:
            pass
        if not server.up:
            self._recovered(server)

    def _reread(self, errors: dict[Server, str]) -> list[Server]:
        """Call the list's callable again; return the servers new to the list."""
        self._reread_at = monotonic() + self._reread_backoff.next_delay()
        try:
            entries = self._source()  # type: ignore[misc]
            parsed = parse_servers(entries, self._driver_name)
        except Exception as exc:
            logger.warning(
                "pool %r: reading the server list failed: %s",
                self._pool.name,
                self._describe(exc),
            )
            self._list_error = self._describe(exc)
            return []
        self._list_error = None
        old = {s.key: s for s in self._servers}
        servers = self._build(parsed, old)
        new = [s for s in servers if s.key not in old]
        if new or len(servers) != len(self._servers):
            random.shuffle(servers)
            self._servers = servers
            self._cursor = 0
            logger.warning(
                "pool %r: server list read again: %s",
                self._pool.name,
                ", ".join(s.label for s in servers),
            )
        for server in list(errors):
            if server not in servers:
                del errors[server]
        random.shuffle(new)
        return new

    def _down_text(self, server: Server, now: float) -> str:
        if server.probing:
            wait = "being probed now"
        else:
            wait = "next probe in %.2fs" % (max(server.down_until - now, 0.0),)
        return "down, %s; last error: %s" % (wait, server.last_error)

    def _raise(self, errors: dict[Server, str], deadline: float | None) -> None:
        now = monotonic()
        pairs: list[tuple[str, str]] = []
        for server in self._servers:
            if server in errors:
                pairs.append((server.label, errors[server]))
            elif not server.up:
                pairs.append((server.label, self._down_text(server, now)))
            else:
                pairs.append((server.label, "not tried: the caller's deadline passed"))
        if self._list_error is not None:
            pairs.append(("server list", self._list_error))
        detail = "; ".join("%s: %s" % pair for pair in pairs)
        name = self._pool.name
        # The last attempt is given what is left of the deadline, so when it
        # times out the caller's deadline has passed: that is a PoolTimeout
        # (the same error the pool raises for any other checkout too slow).
        if deadline is not None and now >= deadline - 0.001:
            raise PoolTimeout(
                "pool %r: no server gave a connection within the caller's "
                "deadline (%s)" % (name, detail),
                name,
            ) from None
        raise AllServersUnavailable(
            "pool %r: all %d server(s) unavailable: %s"
            % (name, len(self._servers), detail),
            name,
            pairs,
        ) from None

    # ------------------------------------------------------------------
    # feedback from the pool
    def released(self, server: Any, reason: str | None = None) -> None:
        """A connection opened on *server* was closed (for *reason*)."""
        if not isinstance(server, Server):
            return
        if server.open > 0:
            server.open -= 1
        if reason == "dead":
            server.disconnects += 1
            server.avoid_until = monotonic() + max(self._delays[0], 0.05) * 10

    # ------------------------------------------------------------------
    # stats
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-server state and counters, keyed by the server's label."""
        self._check_fork()
        now = monotonic()
        wall = time.time()
        out: dict[str, dict[str, Any]] = {}
        for server in self._servers:
            down = server.failures_in_row > 0
            retry_in = max(server.down_until - now, 0.0) if down else 0.0
            out[server.label] = {
                "address": server.label,
                "connects": server.connects,
                "failures": server.failures,
                "disconnects": server.disconnects,
                "open": server.open,
                "down": down,
                "down_until": wall + retry_in if down else None,
                "retry_in": retry_in,
                "probes": server.probes,
                "consecutive_failures": server.failures_in_row,
                "last_error": server.last_error,
            }
        return out

    def reset_stats(self) -> None:
        """Zero the counters (the state -- open, down -- stays)."""
        for server in self._servers:
            server.connects = 0
            server.failures = 0
            server.disconnects = 0
            server.probes = 0

    def describe(self) -> list[dict[str, Any]]:
        """The servers' connect keywords as given, secrets masked."""
        return [safe_kwargs(s.kwargs) for s in self._servers]


def _prober_loop(ref: "weakref.ref[ServerList]") -> None:
    """Probe down servers when due; holds only a weak reference in between,
    so it never keeps a dropped pool alive, and ends with the pool."""
    while True:
        servers = ref()
        if servers is None:
            return
        delay = servers._probe_due()
        if delay is None:
            return
        del servers
        _green.sleep(delay)
