"""What a database URL means: which driver, which pool variant, how to connect.

A :class:`Target` is parsed from a URL without importing any driver; the
driver is imported (and made green) only by :meth:`Target.prepare`, which
the command line calls once, before any green thread runs.

==============================  ==========  ========================================
URL                             driver      pool
==============================  ==========  ========================================
(none)                          sqlite3     RawConnectionPool, embedded temp file
``sqlite:///relative/path.db``  sqlite3     RawConnectionPool
``sqlite:////absolute/path.db``
``postgresql://`` (or           psycopg2    RawConnectionPool, made green with
``postgres://``)                            :func:`db_pool.make_psycopg_green`
``mysql://`` (or                PyMySQL     RawConnectionPool, after
``mysql+pymysql://``,                       ``eventlet.monkey_patch()``
``mariadb://``)
``mysql+mysqldb://``            MySQLdb     TpooledConnectionPool (OS threads)
==============================  ==========  ========================================

Query parameters are passed to the driver's ``connect()`` as keywords
(digits become integers): ``postgresql://u@h/db?application_name=x``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..secrets import redact

__all__ = ["Target", "UsageError", "CommandError", "parse_url"]

SCHEMES = "postgresql://, mysql://, mysql+mysqldb://, sqlite:///PATH"


class UsageError(Exception):
    """Bad input from the user: one line, exit status 2."""


class CommandError(Exception):
    """The command could not do its job (server unreachable...): exit status 1."""


_KINDS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg2": "postgresql",
    "mysql": "pymysql",
    "mysql+pymysql": "pymysql",
    "mariadb": "pymysql",
    "mariadb+pymysql": "pymysql",
    "mysql+mysqldb": "mysqldb",
    "mariadb+mysqldb": "mysqldb",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
}

# kind -> (module to import, pip extra, pool class name, paramstyle marker)
_DRIVERS = {
    "sqlite": ("sqlite3", None, "RawConnectionPool", "?"),
    "postgresql": ("psycopg2", "postgres", "RawConnectionPool", "%s"),
    "pymysql": ("pymysql", "mysql", "RawConnectionPool", "%s"),
    "mysqldb": ("MySQLdb", "mysqlclient", "TpooledConnectionPool", "%s"),
}

# Distributions that may provide each driver (their own __version__ can lie:
# PyMySQL reports a mysqlclient-compatible one).
_DISTRIBUTIONS = {
    "postgresql": ("psycopg2-binary", "psycopg2"),
    "pymysql": ("PyMySQL",),
    "mysqldb": ("mysqlclient",),
}

_VERSION_SQL = {
    "sqlite": "SELECT 'SQLite ' || sqlite_version()",
    "postgresql": "SELECT version()",
    "pymysql": "SELECT CONCAT(@@version_comment, ' ', VERSION())",
    "mysqldb": "SELECT CONCAT(@@version_comment, ' ', VERSION())",
}


def _convert(value: str) -> Any:
    if value.isdigit():
        return int(value)
    lowered = value.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return value


class Target:
    """A database to run against: parsed URL plus what it takes to connect."""

    def __init__(
        self,
        kind: str,
        display: str,
        connect_kwargs: dict[str, Any],
        embedded: bool = False,
        password: str | None = None,
    ) -> None:
        self.kind = kind
        #: The URL as it may be shown: never a password.
        self.display = display
        self.connect_kwargs = connect_kwargs
        self.embedded = embedded
        self.password = password
        module_name, extra, pool_class, marker = _DRIVERS[kind]
        self.module_name = module_name
        self.extra = extra
        self.pool_class_name = pool_class
        self.marker = marker
        self.module: Any = None
        self._tempdir: str | None = None

    @property
    def networked(self) -> bool:
        return self.kind != "sqlite"

    @property
    def version_sql(self) -> str:
        return _VERSION_SQL[self.kind]

    def safe(self, text: str) -> str:
        """*text* with this target's password (and any URL password) hidden."""
        return redact(text, [self.password] if self.password else [])

    # -- set-up ---------------------------------------------------------------
    def load_driver(self) -> Any:
        """Import the driver, made green.  Call before any green thread runs.

        PyMySQL is pure Python and cooperates with the hub only once the
        standard library is monkey-patched, and the patching must come
        before ``import pymysql`` binds ``socket`` (and before logging
        handlers make their locks): so it happens here, first thing, and
        only for that driver, which keeps the other measurements free of
        patching side effects.  psycopg2 gets its wait callback instead.
        """
        if self.module is not None:
            return self.module
        if self.kind == "pymysql":
            import eventlet  # the application's own choice, made at start-up

            eventlet.monkey_patch()
        try:
            module = importlib.import_module(self.module_name)
        except ImportError as exc:
            hint = " (pip install 'db_pool[%s]')" % self.extra if self.extra else ""
            raise CommandError(
                "the %s driver is not installed%s: %s" % (self.module_name, hint, exc)
            ) from None
        if self.kind == "postgresql":
            from ..drivers import make_psycopg_green

            make_psycopg_green()
        self.module = module
        return module

    def prepare(self) -> None:
        """Load the driver and, for the embedded database, make its file."""
        self.load_driver()
        if self.embedded and self._tempdir is None:
            self._tempdir = tempfile.mkdtemp(prefix="db_pool-")
            path = os.path.join(self._tempdir, "bench.db")
            self.connect_kwargs["database"] = path
            self.display = "sqlite:///%s (embedded, temporary)" % path

    def cleanup(self) -> None:
        """Remove the embedded database, if one was made."""
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def pool_class(self) -> Any:
        from .. import variants

        return getattr(variants, self.pool_class_name)

    def make_pool(self, max_size: int, name: str, **options: Any) -> Any:
        """A pool of at most *max_size* connections to this target."""
        self.prepare()
        return self.pool_class()(
            self.module,
            max_size=max_size,
            name=name,
            connect_args=dict(self.connect_kwargs),
            **options,
        )

    @property
    def driver_label(self) -> str:
        """The driver's name and version, e.g. ``psycopg2 2.9.9``."""
        label = self.module_name
        if self.kind == "sqlite":
            return "%s (SQLite %s)" % (
                label,
                getattr(self.module, "sqlite_version", "?"),
            )
        from importlib import metadata

        for dist in _DISTRIBUTIONS.get(self.kind, ()):
            try:
                return "%s %s" % (label, metadata.version(dist))
            except Exception:
                continue
        version = getattr(self.module, "__version__", None)
        return "%s %s" % (label, version) if isinstance(version, str) else label

    def __repr__(self) -> str:
        return "<Target %s %s>" % (self.kind, self.display)


def parse_url(url: str | None) -> Target:
    """The :class:`Target` for *url* (None: an embedded SQLite database).

    Raises :class:`UsageError` with a one-line, password-free message.
    """
    if url is None:
        return Target(
            "sqlite",
            "sqlite (embedded, temporary)",
            {"check_same_thread": False},
            embedded=True,
        )
    shown = redact(url)
    if "://" not in url:
        raise UsageError(
            "not a database URL: %r (expected one of %s)" % (shown, SCHEMES)
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError("bad database URL %r: %s" % (shown, exc)) from None
    scheme = parts.scheme.lower()
    kind = _KINDS.get(scheme)
    if kind is None:
        raise UsageError(
            "unsupported URL scheme %r in %r (supported: %s)"
            % (parts.scheme, shown, SCHEMES)
        )
    params = {k: _convert(v) for k, v in parse_qsl(parts.query, keep_blank_values=True)}
    if kind == "sqlite":
        path = unquote(url.split("://", 1)[1].split("?", 1)[0])
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs -> /abs
        if not path or path == ":memory:":
            raise UsageError(
                "an SQLite URL needs a file: sqlite:///relative.db or "
                "sqlite:////absolute/path.db (a pool cannot share :memory:)"
            )
        kwargs = {"database": path, "check_same_thread": False}
        kwargs.update(params)
        return Target("sqlite", "sqlite:///%s" % path, kwargs)
    password = unquote(parts.password) if parts.password is not None else None
    kwargs: dict[str, Any] = {}
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port:
        kwargs["port"] = port
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if password is not None:
        kwargs["password"] = password
    dbname = unquote(parts.path.lstrip("/"))
    if "/" in dbname:
        raise UsageError("bad database name %r in %r" % (dbname, shown))
    if dbname:
        kwargs["dbname" if kind == "postgresql" else "database"] = dbname
    kwargs.update(params)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    netloc = host
    if port:
        netloc += ":%d" % port
    if parts.username:
        netloc = "%s%s@%s" % (
            parts.username,
            ":***" if password else "",
            netloc,
        )
    display = "%s://%s/%s" % (scheme, netloc, parts.path.lstrip("/"))
    return Target(kind, display, kwargs, password=password)
