"""Real database drivers for B3: where the servers are and how to go green.

PostgreSQL (psycopg2) is made green with a wait callback; MariaDB (PyMySQL)
is green because the benchmark process is monkey-patched before PyMySQL is
imported.  Servers come from the environment:

``DB_POOL_PG_DSN``
    a libpq DSN, default ``host=127.0.0.1 port=5432 user=postgres dbname=test``
``DB_POOL_MYSQL_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_DATABASE``
    default ``127.0.0.1``, ``3306``, ``root``, empty, ``test``
``DB_POOL_MYSQL_SSL``
    ``1`` keeps PyMySQL's default of trying TLS.  By default the benchmarks
    pass ``ssl_disabled=True``: PyMySQL otherwise builds a TLS context on
    every connect (tens of milliseconds of CPU, blocking every green thread)
    even when the server has TLS off, as a local test server usually does.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import eventlet
from eventlet.hubs import trampoline

from .candidates import Driver

PG_DSN_DEFAULT = "host=127.0.0.1 port=5432 user=postgres dbname=test"
PROBE_TIMEOUT = 5.0


def _psycopg_wait_callback() -> Callable[..., None]:
    """An eventlet wait callback for psycopg2 (the driver's documented recipe)."""
    from psycopg2 import OperationalError, extensions

    POLL_OK, POLL_READ, POLL_WRITE = (
        extensions.POLL_OK,
        extensions.POLL_READ,
        extensions.POLL_WRITE,
    )

    def wait(conn: Any, timeout: object = None) -> None:
        while True:
            state = conn.poll()
            if state == POLL_OK:
                return
            if state == POLL_READ:
                trampoline(conn.fileno(), read=True)
            elif state == POLL_WRITE:
                trampoline(conn.fileno(), write=True)
            else:
                raise OperationalError(f"unexpected poll() state {state!r}")

    return wait


def make_psycopg_green(db_pool: Any) -> str:
    """Install a green wait callback: db_pool's own if it has one, else ours.

    The callback is process-wide, so every pool and ceiling measured on
    PostgreSQL runs with the same one.
    """
    helper = getattr(db_pool, "make_psycopg_green", None)
    if helper is not None:
        helper()
        return "db_pool.make_psycopg_green()"
    from psycopg2 import extensions

    extensions.set_wait_callback(_psycopg_wait_callback())
    return "the benchmarks' own eventlet wait callback"


def postgres(autocommit: bool) -> Driver:
    import psycopg2
    import psycopg2.extensions

    kwargs: dict[str, Any] = {"dsn": os.environ.get("DB_POOL_PG_DSN", PG_DSN_DEFAULT)}
    if autocommit:
        kwargs["connection_factory"] = _AutocommitConnection.get()
    return Driver("PostgreSQL (psycopg2)", psycopg2, **kwargs)


class _AutocommitConnection:
    """A psycopg2 connection class that switches autocommit on at connect.

    psycopg2.connect() has no autocommit keyword; a connection_factory
    keeps the module passed to every pool the real psycopg2.
    """

    _cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._cls is None:
            import psycopg2.extensions

            class AutocommitConnection(psycopg2.extensions.connection):
                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    super().__init__(*args, **kwargs)
                    self.autocommit = True

            cls._cls = AutocommitConnection
        return cls._cls


def mariadb(autocommit: bool) -> Driver:
    import pymysql

    env = os.environ.get
    return Driver(
        "MariaDB (PyMySQL)",
        pymysql,
        host=env("DB_POOL_MYSQL_HOST", "127.0.0.1"),
        port=int(env("DB_POOL_MYSQL_PORT", "3306")),
        user=env("DB_POOL_MYSQL_USER", "root"),
        password=env("DB_POOL_MYSQL_PASSWORD", ""),
        database=env("DB_POOL_MYSQL_DATABASE", "test"),
        autocommit=autocommit,
        ssl_disabled=env("DB_POOL_MYSQL_SSL", "") in ("", "0"),
    )


def probe(driver: Driver) -> str:
    """Return "" if the server answers ``SELECT 1``, else why it does not."""
    try:
        with eventlet.Timeout(PROBE_TIMEOUT):
            conn = driver.connect()
            try:
                cur = conn.cursor()
                cur.execute("SELECT 1")
                cur.fetchall()
                cur.close()
            finally:
                conn.close()
    except eventlet.Timeout:
        return f"no answer within {PROBE_TIMEOUT:g} s"
    except Exception as exc:
        # The first line only: driver messages can be long, and must not
        # leak anything but the reason.
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"
    return ""
