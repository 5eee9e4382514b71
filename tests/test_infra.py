"""Tests of the test infrastructure itself: packaging and CI glue, the warning
filters, the realdb skip rule, tests/fakedb.py, tests/proxy.py and
tests/dbutil.py."""

from __future__ import annotations

import configparser
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import eventlet
import eventlet.tpool
import pytest

from tests import dbutil
from tests.conftest import (
    _parse,
    make_unique_name,
    mysql_connect_kwargs,
    pg_connect_kwargs,
    pg_dsn_string,
)
from tests.fakedb import (
    FakeDB,
    InterfaceError,
    OperationalError,
)
from tests.proxy import Proxy, _socket, _threading, closed_port

ROOT = Path(__file__).resolve().parent.parent


# -- packaging, README and CI -------------------------------------------------


def readme_commands():
    """The commands of the first code block of README.rst."""
    text = (ROOT / "README.rst").read_text()
    match = re.search(
        r"^\.\. code-block:: (?:sh|console|bash)\n\n((?:    .*\n|\n)+)", text, re.M
    )
    assert match, "README.rst must open with a code block of set-up commands"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2, commands
    run, test = commands
    assert "python -m db_pool" in run
    assert "tox" in test


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = readme_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines()]
    assert test_command in lines, ".ci/run must run %r verbatim" % test_command
    assert "export DB_POOL_REQUIRE_DB=1" in lines
    assert ci.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in lines
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_readme_sections_and_no_placeholders():
    text = (ROOT / "README.rst").read_text()
    for title in (
        "Quick start",
        "Configuration",
        "Failure behaviour",
        "Benchmarks",
        "Migration from eventlet.db_pool",
    ):
        assert re.search(
            r"^%s\n[=\-~^]{%d,}$" % (re.escape(title), len(title)), text, re.M
        ), title
    assert "TODO" not in text
    assert "libmariadb-dev" in text and "pkg-config" in text


def test_setup_cfg_metadata():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["name"] == "db_pool"
    assert cfg["options"]["python_requires"] == ">=3.9"
    assert "eventlet>=0.33" in cfg["options"]["install_requires"]
    extras = {
        name: value.split() for name, value in cfg["options.extras_require"].items()
    }
    assert extras["postgres"] == ["psycopg2-binary"]
    assert extras["mysql"] == ["PyMySQL"]
    assert extras["mysqlclient"] == ["mysqlclient"]
    assert set(extras["test"]) >= {
        "pytest",
        "pytest-timeout",
        "psycopg2-binary",
        "PyMySQL",
        "mysqlclient",
        "SQLAlchemy",
        "DBUtils",
    }
    assert cfg["options.package_data"]["db_pool"].strip() == "py.typed"


def test_tox_passes_database_settings_through():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "tox.ini")
    passenv = cfg["testenv"]["passenv"].split()
    assert {"DB_POOL_*", "PG*", "CI"} <= set(passenv)
    assert cfg["tox"]["env_list"].split() == ["py"]
    assert cfg["testenv"]["extras"].strip() == "test"


# -- warnings -----------------------------------------------------------------


def test_eventlet_deprecation_warning_is_ignored_by_class():
    warnings.warn("again", eventlet.EventletDeprecationWarning, stacklevel=1)


def test_other_warnings_are_errors():
    with pytest.raises(UserWarning):
        warnings.warn("boom", UserWarning, stacklevel=1)
    with pytest.raises(DeprecationWarning):
        warnings.warn("old", DeprecationWarning, stacklevel=1)


# -- the realdb skip rule (checked in a child pytest) -------------------------

PROBE = os.environ.get("DB_POOL_INFRA_PROBE") == "1"


@pytest.mark.realdb
def test_realdb_skip_probe():
    if PROBE:
        pytest.skip("probe: pretend the database is missing")


@pytest.mark.realdb
def test_realdb_xfail_probe():
    if PROBE:
        pytest.xfail("probe: an expected failure is not a skip")


def _run_probe(require):
    env = dict(os.environ, DB_POOL_INFRA_PROBE="1", DB_POOL_REQUIRE_DB=require)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/test_infra.py::test_realdb_skip_probe",
            "tests/test_infra.py::test_realdb_xfail_probe",
        ],
        cwd=str(ROOT),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_skipped_realdb_test_fails_when_databases_are_required():
    result = _run_probe("1")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed" in out and "1 xfailed" in out, out
    assert "DB_POOL_REQUIRE_DB=1 requires every real-database test to run" in out, out


@pytest.mark.slow
def test_skipped_realdb_test_is_a_skip_otherwise():
    result = _run_probe("0")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 skipped" in out and "1 xfailed" in out, out


# -- connection settings ------------------------------------------------------


def test_default_connection_settings(monkeypatch):
    monkeypatch.delenv("DB_POOL_PG_DSN", raising=False)
    monkeypatch.delenv("DB_POOL_MYSQL", raising=False)
    assert pg_connect_kwargs() == {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "dbname": "test",
    }
    assert mysql_connect_kwargs() == {
        "host": "127.0.0.1",
        "port": 3306,
        "user": "root",
        "password": "",
        "database": "test",
    }


def test_connection_settings_from_urls(monkeypatch):
    monkeypatch.setenv(
        "DB_POOL_PG_DSN", "postgresql://bob:s%40cret@db1:6432/app?sslmode=disable"
    )
    monkeypatch.setenv("DB_POOL_MYSQL", "mysql://alice:pw@db2:3307/shop")
    assert pg_connect_kwargs() == {
        "host": "db1",
        "port": 6432,
        "user": "bob",
        "password": "s@cret",
        "dbname": "app",
        "sslmode": "disable",
    }
    assert mysql_connect_kwargs() == {
        "host": "db2",
        "port": 3307,
        "user": "alice",
        "password": "pw",
        "database": "shop",
    }


def test_connection_settings_keyword_aliases(monkeypatch):
    monkeypatch.setenv("DB_POOL_MYSQL", "host=h port=1 user=u passwd='a b' db=d")
    assert mysql_connect_kwargs() == {
        "host": "h",
        "port": 1,
        "user": "u",
        "password": "a b",
        "database": "d",
    }
    assert _parse("a=1 b='x y'") == {"a": "1", "b": "x y"}
    assert pg_dsn_string({"host": "h", "password": "a b", "port": 5}) == (
        "host=h password='a b' port=5"
    )


def test_unique_name(unique_name):
    assert re.match(r"^dbp_%d_\d+$" % os.getpid(), unique_name)
    assert len({make_unique_name() for _ in range(3)} | {unique_name}) == 4


# -- fakedb -------------------------------------------------------------------


def test_fakedb_looks_like_a_driver_module(fake_db):
    assert fake_db.apilevel == "2.0"
    assert fake_db.paramstyle == "qmark"
    assert fake_db.__name__ == "fakedb"
    for name in (
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(fake_db, name), Exception)
    assert issubclass(fake_db.OperationalError, fake_db.DatabaseError)
    assert issubclass(fake_db.DatabaseError, fake_db.Error)
    assert issubclass(fake_db.InterfaceError, fake_db.Error)


def test_fakedb_connect_counts_and_records(fake_db):
    a = fake_db.connect("dsn", user="u")
    b = fake_db.connect()
    assert fake_db.connect_calls == 2
    assert fake_db.connections == [a, b]
    assert fake_db.connect_args[0] == (("dsn",), {"user": "u"})
    assert a.args == ("dsn",) and a.kwargs == {"user": "u"}
    assert fake_db.open_count == 2 and fake_db.max_open == 2
    a.close()
    a.close()
    assert a.closed and a.close_calls == 2
    assert fake_db.open_count == 1 and fake_db.max_open == 2
    assert fake_db.open_connections() == [b]


def test_fakedb_transaction_flag_and_counts(fake_db):
    conn = fake_db.connect()
    assert not hasattr(conn, "in_transaction")
    assert not conn.transaction_open
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    assert conn.transaction_open
    conn.commit()
    assert not conn.transaction_open and conn.commits == 1
    cur.execute("UPDATE t SET x = ?", (1,))
    assert conn.executed[-1] == ("UPDATE t SET x = ?", (1,))
    conn.rollback()
    assert not conn.transaction_open and conn.rollbacks == 1
    conn.autocommit = True
    cur.execute("SELECT 1")
    assert not conn.transaction_open


def test_fakedb_reports_status_only_when_asked(fake_db_status):
    conn = fake_db_status.connect()
    assert conn.in_transaction is False
    conn.cursor().execute("SELECT 1")
    assert conn.in_transaction is True
    conn.rollback()
    assert conn.in_transaction is False


def test_fakedb_ping_can_be_hidden():
    db = FakeDB(has_ping=False)
    conn = db.connect()
    assert not hasattr(conn, "ping")
    db.has_ping = True
    assert db.connect().ping() is True


def test_fakedb_connect_delay_is_green():
    db = FakeDB(connect_delay=0.2)
    ticks = []

    def ticker():
        for _ in range(5):
            ticks.append(time.monotonic())
            eventlet.sleep(0.01)

    gt = eventlet.spawn(ticker)
    start = time.monotonic()
    db.connect()
    assert time.monotonic() - start >= 0.19
    gt.wait()
    assert len(ticks) == 5 and ticks[-1] - start < 0.19


def test_fakedb_connect_errors():
    db = FakeDB(connect_error=OperationalError("refused"))
    with pytest.raises(OperationalError, match="refused"):
        db.connect()
    db.connect_error = InterfaceError
    with pytest.raises(InterfaceError):
        db.connect()
    db.connect_error = None
    db.fail_next(2)
    for _ in range(2):
        with pytest.raises(OperationalError):
            db.connect()
    db.connect()
    assert db.connect_calls == 5
    assert db.connect_failures == 4
    assert db.open_count == 1


def test_fakedb_down_kills_open_connections():
    db = FakeDB()
    conn = db.connect()
    db.down = True
    with pytest.raises(db.OperationalError):
        db.connect()
    with pytest.raises(db.OperationalError):
        conn.cursor()
    with pytest.raises(db.OperationalError):
        conn.rollback()
    conn.close()  # closing a dead connection works
    assert conn.closed and db.open_count == 0
    db.down = False
    fresh = db.connect()
    fresh.cursor().execute("SELECT 1")


def test_fakedb_hang_until_released():
    db = FakeDB(hang=True)
    gt = eventlet.spawn(db.connect)
    eventlet.sleep(0.05)
    assert db.connect_calls == 1 and db.open_count == 0
    db.release()
    conn = gt.wait()
    assert db.open_count == 1 and not db.hang
    assert conn is db.connections[0]


def test_fakedb_hang_is_interrupted_by_a_green_timeout():
    db = FakeDB(hang=True)
    with pytest.raises(eventlet.Timeout):
        with eventlet.Timeout(0.05):
            db.connect()
    assert db.connect_failures == 1 and db.open_count == 0
    db.release()


def test_fakedb_works_in_os_threads():
    # TpooledConnectionPool runs connect in eventlet's thread pool.
    db = FakeDB(connect_delay=0.05)
    conn = eventlet.tpool.execute(db.connect)
    assert db.open_count == 1
    db.hang = True
    gt = eventlet.spawn(eventlet.tpool.execute, db.connect)
    eventlet.sleep(0.1)
    assert db.open_count == 1
    db.release()
    gt.wait()
    assert db.open_count == 2
    conn.hang = True
    gt = eventlet.spawn(eventlet.tpool.execute, conn.rollback)
    eventlet.sleep(0.05)
    assert conn.rollbacks == 0
    conn.release()
    gt.wait()
    assert conn.rollbacks == 1


def test_fakeconnection_knobs(fake_db):
    conn = fake_db.connect()
    conn.rollback_delay = 0.05
    start = time.monotonic()
    conn.rollback()
    assert time.monotonic() - start >= 0.045
    conn.rollback_delay = 0
    conn.rollback_error = OperationalError("rollback failed")
    with pytest.raises(OperationalError, match="rollback failed"):
        conn.rollback()
    conn.rollback_error = None
    conn.execute_error = fake_db.ProgrammingError
    with pytest.raises(fake_db.ProgrammingError):
        conn.cursor().execute("SELEC 1")
    conn.execute_error = None
    conn.results = [(1, "a"), (2, "b")]
    cur = conn.cursor()
    cur.execute("SELECT *")
    assert cur.fetchall() == [(1, "a"), (2, "b")]
    assert conn.ping() and conn.pings == 1
    conn.hang = True
    gt = eventlet.spawn(conn.commit)
    eventlet.sleep(0.02)
    assert conn.commits == 0
    conn.release()
    gt.wait()
    assert conn.commits == 1


def test_fakeconnection_dead_and_closed(fake_db):
    conn = fake_db.connect()
    conn.kill()
    for call in (conn.cursor, conn.commit, conn.rollback, conn.ping):
        with pytest.raises(OperationalError):
            call()
    conn.close()
    with pytest.raises(InterfaceError):
        conn.cursor()
    other = fake_db.connect()
    cur = other.cursor()
    other.close()
    with pytest.raises(InterfaceError):
        cur.execute("SELECT 1")
    assert "closed" in repr(other)


# -- proxy (against a local echo server) --------------------------------------


class EchoServer:
    """Echoes every byte back; real threads, unpatched sockets."""

    def __init__(self):
        self.sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.clients = []
        self.thread = _threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)
            _threading.Thread(target=self._echo, args=(client,), daemon=True).start()

    @staticmethod
    def _echo(client):
        try:
            while True:
                data = client.recv(4096)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()

    def close(self):
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for client in self.clients:
            try:
                client.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def echo_proxy(echo):
    with Proxy("127.0.0.1", echo.port) as proxy:
        yield proxy


def _client(port, timeout=2.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _roundtrip(sock, payload=b"ping"):
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by peer")
        received += chunk
    return received


def test_proxy_passes_traffic(echo_proxy):
    assert echo_proxy.port and echo_proxy.mode == "pass"
    with _client(echo_proxy.port) as a, _client(echo_proxy.port) as b:
        assert _roundtrip(a, b"hello") == b"hello"
        assert _roundtrip(b, b"x" * 300000) == b"x" * 300000
        assert echo_proxy.connection_count == 2
    dbutil.wait_for(lambda: echo_proxy.connection_count == 0)
    assert echo_proxy.accepted_count == 2


def test_proxy_cut_closes_current_connections_only(echo_proxy):
    with _client(echo_proxy.port) as sock:
        assert _roundtrip(sock) == b"ping"
        echo_proxy.cut()
        assert echo_proxy.connection_count == 0
        assert sock.recv(10) == b""
    with _client(echo_proxy.port) as sock:
        assert _roundtrip(sock) == b"ping"


def test_proxy_blackhole_holds_then_resumes(echo_proxy):
    with _client(echo_proxy.port, timeout=0.3) as old:
        assert _roundtrip(old) == b"ping"
        echo_proxy.blackhole()
        assert echo_proxy.mode == "blackhole"
        with _client(echo_proxy.port, timeout=0.3) as new:
            for sock in (old, new):
                sock.sendall(b"held")
                with pytest.raises(socket.timeout):
                    sock.recv(10)
            assert echo_proxy.connection_count == 2
            echo_proxy.pass_traffic()
            for sock in (old, new):
                sock.settimeout(2)
                assert sock.recv(10) == b"held"


def test_proxy_blackhole_notices_clients_leaving(echo_proxy):
    echo_proxy.blackhole()
    with _client(echo_proxy.port) as sock:
        sock.sendall(b"never answered")
        dbutil.wait_for(lambda: echo_proxy.connection_count == 1)
    dbutil.wait_for(lambda: echo_proxy.connection_count == 0)


def test_proxy_refuse_and_back(echo_proxy):
    port = echo_proxy.port
    with _client(port) as kept:
        echo_proxy.refuse()
        assert echo_proxy.mode == "refuse"
        with pytest.raises(ConnectionRefusedError):
            _client(port)
        assert _roundtrip(kept) == b"ping"  # refuse leaves open ones alone
    echo_proxy.pass_traffic()
    assert echo_proxy.port == port
    with _client(port) as sock:
        assert _roundtrip(sock) == b"ping"


def test_proxy_down_refuses_and_cuts(echo_proxy):
    with _client(echo_proxy.port) as sock:
        echo_proxy.down()
        assert sock.recv(10) == b""
        with pytest.raises(ConnectionRefusedError):
            _client(echo_proxy.port)


def test_proxy_to_a_dead_target_closes_clients():
    with Proxy("127.0.0.1", closed_port()) as proxy:
        with _client(proxy.port) as sock:
            assert sock.recv(10) == b""


def test_proxy_stop():
    echo = EchoServer()
    try:
        proxy = Proxy("127.0.0.1", echo.port)
        proxy.refuse()  # modes can be set before start
        port = proxy.start()
        with pytest.raises(ConnectionRefusedError):
            _client(port)
        proxy.pass_traffic()
        with _client(port) as sock:
            assert _roundtrip(sock) == b"ping"
            proxy.stop()
            assert sock.recv(10) == b""
        proxy.stop()  # idempotent
        with pytest.raises(ConnectionRefusedError):
            _client(port)
        assert "pass" in repr(proxy)
    finally:
        echo.close()


def test_blackhole_accepts_and_never_answers(blackhole):
    with _client(blackhole.port, timeout=0.2) as sock:
        sock.sendall(b"hello?")
        with pytest.raises(socket.timeout):
            sock.recv(10)
        assert blackhole.connection_count == 1
    with pytest.raises(TypeError):
        blackhole.pass_traffic()


def test_closed_port_refuses(closed_port):
    with pytest.raises(ConnectionRefusedError):
        _client(closed_port)


def test_proxy_works_from_green_threads(echo_proxy):
    # The test process is not monkey-patched, but green threads calling the
    # proxy's controls and blocking on it must not deadlock it.
    def worker():
        with _client(echo_proxy.port) as sock:
            return _roundtrip(sock)

    threads = [eventlet.spawn(worker) for _ in range(5)]
    echo_proxy.cut()
    assert [gt.wait() for gt in threads] == [b"ping"] * 5


# -- proxy and dbutil against the real databases ------------------------------


@pytest.fixture
def blocking_psycopg2():
    """psycopg2 with no wait callback (some tests make it green globally)."""
    psycopg2 = pytest.importorskip("psycopg2")
    pytest.importorskip("psycopg2.extensions")

    saved = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    try:
        yield psycopg2
    finally:
        psycopg2.extensions.set_wait_callback(saved)


def _pg_select_one(conn):
    cur = conn.cursor()
    try:
        cur.execute("SELECT 1")
        return cur.fetchone()[0]
    finally:
        cur.close()


@pytest.mark.realdb
def test_proxy_with_postgres(pg_kwargs, pg_proxy, blocking_psycopg2):
    psycopg2 = blocking_psycopg2
    kwargs = dict(pg_kwargs, host="127.0.0.1", port=pg_proxy.port, connect_timeout=2)

    conn = psycopg2.connect(**kwargs)
    assert _pg_select_one(conn) == 1
    pg_proxy.cut()
    with pytest.raises((psycopg2.OperationalError, psycopg2.InterfaceError)):
        _pg_select_one(conn)
    conn.close()

    conn = psycopg2.connect(**kwargs)  # new connections pass after a cut
    assert _pg_select_one(conn) == 1
    conn.close()

    pg_proxy.blackhole()
    start = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(**kwargs)
    assert time.monotonic() - start < 15

    pg_proxy.refuse()
    start = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(**kwargs)
    assert time.monotonic() - start < 1

    pg_proxy.pass_traffic()
    conn = psycopg2.connect(**kwargs)
    assert _pg_select_one(conn) == 1
    conn.close()


@pytest.mark.realdb
def test_proxy_with_mariadb(mysql_kwargs, mysql_proxy):
    pymysql = pytest.importorskip("pymysql")
    kwargs = dict(
        mysql_kwargs,
        host="127.0.0.1",
        port=mysql_proxy.port,
        connect_timeout=2,
        read_timeout=2,
        write_timeout=2,
    )

    def select_one(conn):
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0]

    conn = pymysql.connect(**kwargs)
    assert select_one(conn) == 1
    mysql_proxy.cut()
    with pytest.raises((pymysql.OperationalError, pymysql.InterfaceError)):
        select_one(conn)
    conn.close()

    conn = pymysql.connect(**kwargs)
    assert select_one(conn) == 1
    conn.close()

    mysql_proxy.blackhole()
    start = time.monotonic()
    with pytest.raises(pymysql.OperationalError):
        pymysql.connect(**kwargs)
    assert time.monotonic() - start < 10

    mysql_proxy.refuse()
    with pytest.raises(pymysql.OperationalError):
        pymysql.connect(**kwargs)

    mysql_proxy.pass_traffic()
    conn = pymysql.connect(**kwargs)
    assert select_one(conn) == 1
    conn.close()


@pytest.mark.realdb
def test_blackhole_makes_driver_connects_time_out(
    blackhole, pg_kwargs, blocking_psycopg2
):
    kwargs = dict(pg_kwargs, host="127.0.0.1", port=blackhole.port, connect_timeout=2)
    start = time.monotonic()
    with pytest.raises(blocking_psycopg2.OperationalError):
        blocking_psycopg2.connect(**kwargs)
    assert 1.5 < time.monotonic() - start < 15


@pytest.mark.realdb
def test_pg_admin_counts_and_terminates(
    pg_kwargs, pg_admin, unique_name, blocking_psycopg2
):
    psycopg2 = blocking_psycopg2
    conns = [
        psycopg2.connect(application_name=unique_name, **pg_kwargs) for _ in range(2)
    ]
    try:
        pg_admin.wait_count(unique_name, 2)
        pids = pg_admin.pids(unique_name)
        assert sorted(dbutil.pg_backend_pid(c) for c in conns) == pids
        assert set(pg_admin.states(unique_name).values()) <= {"idle"}
        assert pg_admin.terminate(unique_name, pids=pids[:1]) == pids[:1]
        pg_admin.wait_count(unique_name, 1)
        victim = next(c for c in conns if c.info.backend_pid == pids[0])
        with pytest.raises(psycopg2.OperationalError):
            _pg_select_one(victim)
        with pytest.raises(ValueError):
            pg_admin.terminate("someone_else")
        assert pg_admin.terminate(unique_name) == pids[1:]
        pg_admin.wait_count(unique_name, 0)
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.realdb
def test_mysql_admin_counts_and_kills(mysql_kwargs, mysql_admin):
    pymysql = pytest.importorskip("pymysql")
    conns = [pymysql.connect(read_timeout=5, **mysql_kwargs) for _ in range(2)]
    try:
        ids = [dbutil.mysql_connection_id(c) for c in conns]
        assert len(set(ids)) == 2
        assert mysql_admin.alive(ids) == set(ids)
        assert mysql_admin.kill(ids[0]) == [ids[0]]
        mysql_admin.wait_count(ids, 1)
        with pytest.raises((pymysql.OperationalError, pymysql.InterfaceError)):
            with conns[0].cursor() as cur:
                cur.execute("SELECT 1")
        with conns[1].cursor() as cur:
            cur.execute("SELECT 1")
        assert mysql_admin.kill(ids) == [ids[1]]
        mysql_admin.wait_count(ids, 0)
        assert mysql_admin.kill(ids) == []
    finally:
        for conn in conns:
            try:
                conn.close()
            except pymysql.Error:
                pass


@pytest.mark.realdb
def test_mysqldb_connection_id(mysql_kwargs):
    MySQLdb = pytest.importorskip("MySQLdb")
    conn = MySQLdb.connect(**mysql_kwargs)
    try:
        cur = conn.cursor()
        cur.execute("SELECT CONNECTION_ID()")
        assert dbutil.mysql_connection_id(conn) == cur.fetchone()[0]
    finally:
        conn.close()


@pytest.mark.realdb
def test_pgbouncer_fixture(pgbouncer, unique_name, pg_admin, blocking_psycopg2):
    psycopg2 = blocking_psycopg2
    assert pgbouncer.pool_mode == "transaction"
    conn = psycopg2.connect(application_name=unique_name, **pgbouncer.kwargs)
    try:
        assert _pg_select_one(conn) == 1
        conn.commit()
        pools = pgbouncer.admin_query("SHOW POOLS")
        assert any(row["database"] == pgbouncer.dbname for row in pools), pools
    finally:
        conn.close()
    directory = pgbouncer.directory
    pgbouncer.stop()
    assert not os.path.exists(directory)
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(connect_timeout=2, **pgbouncer.kwargs)


# -- fresh interpreters -------------------------------------------------------


def test_run_python_applies_the_warning_policy(run_python):
    result = run_python(
        """
        import warnings
        import eventlet
        warnings.warn("quiet", eventlet.EventletDeprecationWarning, stacklevel=1)
        try:
            warnings.warn("loud", UserWarning, stacklevel=1)
        except UserWarning:
            print("error raised")
        import tests.fakedb
        print(tests.fakedb.FakeDB().connect())
        """
    )
    assert result.stdout.splitlines() == ["error raised", "<FakeConnection #1 open>"]
    assert "EventletDeprecationWarning" not in result.stderr
    failed = run_python("raise SystemExit(3)", check=False)
    assert failed.returncode == 3
