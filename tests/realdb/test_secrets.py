"""No password in anything the pool produces, with the real drivers.

A password given as a connect keyword, inside a libpq DSN, inside a URL, or
in a server list never appears in ``repr(pool)``, ``repr()``/``str()`` of a
wrapper, ``stats()``, any log record (every logger, every level, formatted
with its traceback), or the text of any error a caller gets (message,
``repr``, chained causes, formatted traceback, ``AllServersUnavailable``'s
per-server errors) -- on the way in, in use, after a server-side kill, and
when connecting fails (port closed, server black-holed, every server down).

PostgreSQL runs with trust authentication, so it accepts any password: a
pool with ``password=`` really connects.  MariaDB checks passwords, so the
test creates a user with one for the length of the test.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest

import db_pool

psycopg2 = pytest.importorskip("psycopg2")

from tests import dbutil  # noqa: E402
from tests.proxy import closed_port  # noqa: E402

# Built, not written out, so that no source line quoted in a traceback
# contains it.
SECRET = "s3cr3t-" + "xyz"

_FORMATTER = logging.Formatter("%(name)s %(levelname)s %(message)s")


@pytest.fixture
def green_psycopg2():
    from psycopg2 import extensions

    saved = extensions.get_wait_callback()
    db_pool.make_psycopg_green()
    try:
        yield
    finally:
        extensions.set_wait_callback(saved)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


class Texts:
    """Everything the pool showed; checked for the secret at the end."""

    def __init__(self):
        self.texts = []
        self.errors = 0

    def add(self, *texts):
        self.texts.extend(str(t) for t in texts)

    def pool(self, pool):
        self.add(repr(pool), str(pool), json.dumps(pool.stats(), default=repr))

    def wrapper(self, conn):
        self.add(repr(conn), str(conn))

    def error(self, exc):
        self.errors += 1
        self.add(str(exc), repr(exc), "".join(traceback.format_exception(exc)))
        for attr in ("errors", "args"):
            self.add(repr(getattr(exc, attr, "")))

    def expect_error(self, func, *args, **kwargs):
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self.error(exc)
            return exc
        raise AssertionError("expected an error from %r, got %r" % (func, result))

    def check(self, caplog, min_records=1):
        records = list(caplog.records)
        assert len(records) >= min_records, [r.getMessage() for r in records]
        for record in records:
            self.add(_FORMATTER.format(record))
        assert self.texts
        leaks = [t for t in self.texts if SECRET in t]
        assert leaks == []


def _select(conn):
    cur = conn.cursor()
    try:
        cur.execute("SELECT 1")
        return cur.fetchall()[0][0]
    finally:
        cur.close()


# -- PostgreSQL ---------------------------------------------------------


def test_pg_password_keyword(pg_kwargs, unique_name, green_psycopg2, logs):
    seen = Texts()
    pool = db_pool.RawConnectionPool(
        psycopg2,
        max_size=2,
        pre_ping=True,
        pre_ping_idle=0,
        name=unique_name,
        password=SECRET,
        application_name=unique_name,
        **pg_kwargs,
    )
    try:
        conn = pool.get()
        seen.wrapper(conn)
        seen.pool(pool)
        assert _select(conn) == 1
        seen.add(repr(conn.cursor()))
        pool.put(conn)
        seen.wrapper(conn)  # returned
        # A server-side kill: the pre-ping fails and is logged.
        with dbutil.PgAdmin(pg_kwargs) as admin:
            assert len(admin.terminate(unique_name)) == 1
            admin.wait_count(unique_name, 0)
        with pool.connection() as conn:
            assert _select(conn) == 1
            seen.wrapper(conn)
        # An error in use: the connection is killed while a caller holds it.
        seen.expect_error(_use_killed, pool, pg_kwargs, unique_name)
        seen.pool(pool)
        assert pool.stats()["discarded_dead"] == 2
    finally:
        pool.close()
    seen.pool(pool)
    seen.check(logs, min_records=2)


def _use_killed(pool, pg_kwargs, name):
    with pool.connection() as conn:
        with dbutil.PgAdmin(pg_kwargs) as admin:
            assert len(admin.terminate(name)) == 1
            admin.wait_count(name, 0)
        _select(conn)


def test_pg_connect_failures(pg_kwargs, unique_name, green_psycopg2, logs, blackhole):
    seen = Texts()
    port = closed_port()
    dsn = "host=127.0.0.1 port=%d user=%s password=%s dbname=%s" % (
        port,
        pg_kwargs.get("user", "postgres"),
        SECRET,
        pg_kwargs.get("dbname", "test"),
    )
    url = "postgresql://%s:%s@127.0.0.1:%d/%s" % (
        pg_kwargs.get("user", "postgres"),
        SECRET,
        port,
        pg_kwargs.get("dbname", "test"),
    )
    pools = [
        # eventlet's positional form: the DSN after the pool's own arguments.
        db_pool.RawConnectionPool(
            psycopg2, 0, 2, 10, 30, 2, db_pool.cleanup_rollback, dsn, name=unique_name
        ),
        db_pool.RawConnectionPool(psycopg2, max_size=2, dsn=url, name=unique_name),
        db_pool.RawConnectionPool(
            psycopg2, max_size=2, name=unique_name, connect_args={"dsn": dsn}
        ),
    ]
    try:
        for pool in pools:
            seen.pool(pool)
            # The driver's connect error, then the pool's fail-fast replay
            # of it while the database is presumed down.
            seen.expect_error(pool.get, timeout=2)
            seen.expect_error(pool.get, timeout=2)
            seen.expect_error(pool.get_nowait)
            seen.pool(pool)
        # A server that accepts and never answers: the caller's deadline,
        # then connect_timeout.
        hung = db_pool.RawConnectionPool(
            psycopg2,
            max_size=1,
            connect_timeout=0.3,
            name=unique_name,
            host="127.0.0.1",
            port=blackhole.port,
            password=SECRET,
            user="postgres",
        )
        pools.append(hung)
        exc = seen.expect_error(hung.get, timeout=0.2)
        assert isinstance(exc, db_pool.PoolTimeout)
        exc = seen.expect_error(hung.get, timeout=5)
        assert isinstance(exc, db_pool.ConnectTimeout)
        seen.pool(hung)
    finally:
        for pool in pools:
            pool.close()
    assert seen.errors == 11
    seen.check(logs, min_records=3)


def test_pg_all_servers_unavailable(
    pg_kwargs, unique_name, green_psycopg2, logs, blackhole
):
    seen = Texts()
    down = closed_port()
    pool = db_pool.RawConnectionPool(
        psycopg2,
        max_size=2,
        connect_timeout=0.3,
        name=unique_name,
        user=pg_kwargs.get("user", "postgres"),
        password=SECRET,
        dbname=pg_kwargs.get("dbname", "test"),
        servers=[
            {"host": "127.0.0.1", "port": down, "password": SECRET + "-2"},
            "127.0.0.1:%d" % blackhole.port,
            "postgresql://u:%s@127.0.0.1:%d/test" % (SECRET, down),
        ],
    )
    try:
        seen.pool(pool)
        exc = seen.expect_error(pool.get, timeout=5)
        assert isinstance(exc, db_pool.AllServersUnavailable), exc
        assert len(exc.errors) == 3
        seen.expect_error(pool.get, timeout=5)
        seen.pool(pool)
    finally:
        pool.close()
    seen.check(logs, min_records=1)


# -- MariaDB ---------------------------------------------------------


@pytest.fixture
def mysql_user(mysql_kwargs, unique_name):
    """A MariaDB user whose password is SECRET, dropped afterwards."""
    pytest.importorskip("MySQLdb")
    admin = dbutil.MysqlAdmin(mysql_kwargs)
    user = unique_name[:32]
    try:
        admin.query("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, SECRET))
        admin.query("GRANT USAGE ON *.* TO %s@'%%'", (user,))
        yield user
    finally:
        try:
            admin.query("DROP USER IF EXISTS %s@'%%'", (user,))
        finally:
            admin.close()


def test_mysql_password(mysql_kwargs, mysql_user, unique_name, logs):
    import MySQLdb

    seen = Texts()
    kwargs = {
        k: v
        for k, v in mysql_kwargs.items()
        if k not in ("user", "password", "database")
    }
    pool = db_pool.TpooledConnectionPool(
        MySQLdb,
        max_size=2,
        name=unique_name,
        pre_ping=True,
        pre_ping_idle=0,
        user=mysql_user,
        password=SECRET,
        **kwargs,
    )
    wrong = db_pool.TpooledConnectionPool(
        MySQLdb,
        max_size=1,
        name=unique_name,
        connect_args=dict(kwargs, user=mysql_user, password=SECRET + "-wrong"),
    )
    refused = db_pool.TpooledConnectionPool(
        MySQLdb,
        max_size=1,
        name=unique_name,
        connect_args=dict(kwargs, port=closed_port(), user=mysql_user, password=SECRET),
    )
    try:
        conn = pool.get()
        seen.wrapper(conn)
        seen.pool(pool)
        assert _select(conn) == 1
        conn_id = dbutil.mysql_connection_id(conn)
        pool.put(conn)
        with dbutil.MysqlAdmin(mysql_kwargs) as admin:
            assert admin.kill([conn_id]) == [conn_id]
            admin.wait_count([conn_id], 0)
        with pool.connection() as conn:  # the pre-ping finds it dead: logged
            assert _select(conn) == 1
        assert pool.stats()["discarded_dead"] == 1
        seen.pool(pool)
        for bad in (wrong, refused):
            seen.expect_error(bad.get, timeout=5)
            seen.expect_error(bad.get, timeout=5)
            seen.pool(bad)
    finally:
        for p in (pool, wrong, refused):
            p.close()
    assert seen.errors == 4
    seen.check(logs, min_records=2)
