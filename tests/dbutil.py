"""Helpers for real-database tests: watch and kill server sessions.

An *admin* connection is a separate, plain blocking driver connection
(psycopg2 or PyMySQL) in autocommit mode.  It counts the server-side
sessions that a test's pool opened and kills them, to play "the server
dropped my connection".

How a test finds its own sessions:

- PostgreSQL: give the pool's connections a unique ``application_name``
  (the ``unique_name`` fixture is one) and filter ``pg_stat_activity`` by it.
- MariaDB: no per-connection marker is visible without performance_schema,
  and creating users needs privileges tests should not assume, so collect
  the ``CONNECTION_ID()`` of each pool connection (:func:`mysql_connection_id`)
  and filter ``information_schema.PROCESSLIST`` by that set of ids.

Only sessions the test itself opened are ever killed: PostgreSQL kills go by
an application name that must start with ``dbp_`` (or by pids that must carry
the given name); MariaDB kills go by ids the test collected.

:class:`PgBouncer` runs a private PgBouncer (transaction pooling) in front
of the test PostgreSQL server.

Admin calls block the process for the length of one local query; call them
from the test body, not from many green threads at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import eventlet

__all__ = [
    "MysqlAdmin",
    "PgAdmin",
    "PgBouncer",
    "mysql_connection_id",
    "pg_backend_pid",
    "wait_for",
]

#: Prefix of every name the ``unique_name`` fixture hands out.
MARKER_PREFIX = "dbp_"


def wait_for(predicate, timeout=5.0, interval=0.02, message=None):
    """Poll *predicate* (green sleeps in between) until it returns a truthy
    value, and return that value; fail the test after *timeout* seconds
    with *message* (a string, or a callable that builds one).

    Server-side views lag a little (a backend that lost its client takes a
    few milliseconds to leave ``pg_stat_activity``), so assert on them
    through this.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if callable(message):
                message = message()
            raise AssertionError(
                message or "condition not met within %.1f s: %r" % (timeout, predicate)
            )
        eventlet.sleep(interval)


def _check_marker(marker):
    if not isinstance(marker, str) or not marker.startswith(MARKER_PREFIX):
        raise ValueError(
            "refusing to act on sessions not marked by this test suite: %r "
            "(use the unique_name fixture)" % (marker,)
        )


# -- PostgreSQL ---------------------------------------------------------------


def pg_backend_pid(conn):
    """The server pid of a psycopg2 connection (raw, wrapped or proxied)."""
    info = getattr(conn, "info", None)
    pid = getattr(info, "backend_pid", None)
    if pid:
        return pid
    cur = conn.cursor()
    try:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]
    finally:
        cur.close()


class PgAdmin:
    """An autocommit psycopg2 connection for watching and killing sessions.

    *kwargs* are psycopg2 connect arguments (the ``pg_kwargs`` fixture).
    """

    def __init__(self, kwargs):
        import psycopg2

        kwargs = dict(kwargs)
        kwargs.setdefault("connect_timeout", 5)
        kwargs["application_name"] = "db_pool_test_admin"
        self.conn = psycopg2.connect(**kwargs)
        self.conn.autocommit = True
        self.pid = self.conn.info.backend_pid

    def query(self, sql, params=None):
        """Run *sql* and return all rows."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
        finally:
            cur.close()

    def pids(self, application_name):
        """Server pids of the sessions whose application_name is given."""
        rows = self.query(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()"
            " ORDER BY pid",
            (application_name,),
        )
        return [row[0] for row in rows]

    def count(self, application_name):
        """How many sessions with this application_name are connected."""
        return len(self.pids(application_name))

    def states(self, application_name):
        """``{pid: state}`` (``idle``, ``active``, ``idle in transaction``...)."""
        rows = self.query(
            "SELECT pid, state FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        )
        return dict(rows)

    def terminate(self, application_name, pids=None):
        """Terminate this test's sessions (all with *application_name*, or only
        those of *pids* that carry it); return the pids terminated."""
        _check_marker(application_name)
        targets = self.pids(application_name)
        if pids is not None:
            wanted = set(pids)
            targets = [pid for pid in targets if pid in wanted]
        for pid in targets:
            self.query("SELECT pg_terminate_backend(%s)", (pid,))
        return targets

    def wait_count(self, application_name, expected, timeout=5.0):
        """Wait until exactly *expected* sessions carry *application_name*."""
        wait_for(
            lambda: self.count(application_name) == expected,
            timeout,
            message=lambda: (
                "expected %d PostgreSQL sessions named %r, found %d"
                % (expected, application_name, self.count(application_name))
            ),
        )

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# -- MariaDB / MySQL ----------------------------------------------------------


def mysql_connection_id(conn):
    """The server thread id of a PyMySQL or MySQLdb connection."""
    thread_id = getattr(conn, "thread_id", None)
    if callable(thread_id):
        try:
            return int(thread_id())
        except Exception:
            pass
    server_thread_id = getattr(conn, "server_thread_id", None)
    if server_thread_id:
        return int(server_thread_id[0])
    cur = conn.cursor()
    try:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])
    finally:
        cur.close()


class MysqlAdmin:
    """An autocommit PyMySQL connection for watching and killing sessions.

    *kwargs* are PyMySQL connect arguments (the ``mysql_kwargs`` fixture).
    """

    def __init__(self, kwargs):
        import pymysql

        kwargs = dict(kwargs)
        kwargs.setdefault("connect_timeout", 5)
        kwargs.setdefault("read_timeout", 30)
        kwargs.setdefault("write_timeout", 30)
        kwargs["autocommit"] = True
        self.conn = pymysql.connect(**kwargs)
        self.id = mysql_connection_id(self.conn)

    def query(self, sql, params=None):
        """Run *sql* and return all rows."""
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params)
            return list(cur.fetchall())
        finally:
            cur.close()

    def alive(self, ids):
        """The subset of connection *ids* the server still has."""
        ids = sorted({int(i) for i in ids})
        if not ids:
            return set()
        placeholders = ", ".join(["%s"] * len(ids))
        rows = self.query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (%s)"
            % placeholders,
            ids,
        )
        return {int(row[0]) for row in rows}

    def count(self, ids):
        """How many of the connection *ids* are still connected."""
        return len(self.alive(ids))

    def kill(self, ids):
        """Kill the given connections (ids this test collected); return the
        ids that were alive and got killed."""
        if isinstance(ids, int):
            ids = [ids]
        targets = sorted(self.alive(ids) - {self.id})
        for thread_id in targets:
            try:
                self.query("KILL CONNECTION %d" % thread_id)
            except Exception as exc:
                # Gone between the lookup and the kill: that is fine.
                if "Unknown thread id" not in str(exc):
                    raise
        return targets

    def wait_count(self, ids, expected, timeout=5.0):
        """Wait until exactly *expected* of the connection *ids* are alive."""
        wait_for(
            lambda: self.count(ids) == expected,
            timeout,
            message=lambda: (
                "expected %d of MariaDB connections %r alive, found %d"
                % (expected, sorted(ids), self.count(ids))
            ),
        )

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# -- PgBouncer ----------------------------------------------------------------


def _free_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


class PgBouncer:
    """A private PgBouncer in front of the test PostgreSQL server.

    It listens on a free port of 127.0.0.1 (``.port``), serves one database
    (the one in *pg_kwargs*) in *pool_mode* (``transaction`` by default) with
    ``auth_type = trust``, and forwards to *target_host*:*target_port* (the
    server in *pg_kwargs* unless given, e.g. a :class:`tests.proxy.Proxy` to
    play a server outage behind the bouncer).

    PgBouncer refuses to run as root, so as root it runs as the ``postgres``
    user, with its files in a directory of /tmp owned by that user.  Only
    the process started here (by its own pid file) is ever stopped.
    """

    def __init__(
        self,
        pg_kwargs,
        *,
        pool_mode="transaction",
        default_pool_size=5,
        max_client_conn=200,
        target_host=None,
        target_port=None,
        extra_settings=None,
    ):
        self.binary = shutil.which("pgbouncer") or (
            "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
        )
        if self.binary is None:
            raise RuntimeError("pgbouncer is not installed (Debian package pgbouncer)")
        self.pg_kwargs = dict(pg_kwargs)
        self.dbname = self.pg_kwargs.get("dbname", "test")
        self.user = self.pg_kwargs.get("user", "postgres")
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.pool_mode = pool_mode
        self.target_host = target_host or self.pg_kwargs.get("host", "127.0.0.1")
        self.target_port = target_port or self.pg_kwargs.get("port", 5432)
        self.settings = {
            "listen_addr": self.host,
            "listen_port": self.port,
            "auth_type": "trust",
            "pool_mode": pool_mode,
            "default_pool_size": default_pool_size,
            "max_client_conn": max_client_conn,
            "admin_users": self.user,
            "stats_users": self.user,
            "server_connect_timeout": 5,
            "server_login_retry": 1,
            # Drivers send these at start-up; let them through.
            "ignore_startup_parameters": "extra_float_digits,options",
        }
        self.settings.update(extra_settings or {})
        self.directory = None
        self.pid = None

    @property
    def kwargs(self):
        """psycopg2 connect keywords that reach PostgreSQL through PgBouncer."""
        kwargs = dict(self.pg_kwargs, host=self.host, port=self.port)
        kwargs.pop("password", None)
        return kwargs

    def _write(self, name, text):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, timeout=10.0):
        """Start PgBouncer and wait until it accepts connections."""
        self.directory = tempfile.mkdtemp(prefix="dbp_pgbouncer_")
        self.ini = os.path.join(self.directory, "pgbouncer.ini")
        self.log = os.path.join(self.directory, "pgbouncer.log")
        self.pidfile = os.path.join(self.directory, "pgbouncer.pid")
        auth = self._write("users.txt", '"%s" ""\n' % self.user)
        lines = ["[databases]"]
        lines.append(
            "%s = host=%s port=%s dbname=%s"
            % (self.dbname, self.target_host, self.target_port, self.dbname)
        )
        lines.append("[pgbouncer]")
        settings = dict(
            self.settings, auth_file=auth, logfile=self.log, pidfile=self.pidfile
        )
        lines.extend("%s = %s" % item for item in settings.items())
        self._write("pgbouncer.ini", "\n".join(lines) + "\n")
        command = [self.binary, "-d", self.ini]
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam("postgres")
            for name in os.listdir(self.directory) + [""]:
                os.chown(os.path.join(self.directory, name), entry.pw_uid, entry.pw_gid)
            command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(
                "pgbouncer did not start: %s%s%s"
                % (result.stdout, result.stderr, self._log_tail())
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.pid is None and os.path.exists(self.pidfile):
                with open(self.pidfile) as f:
                    text = f.read().strip()
                self.pid = int(text) if text else None
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "pgbouncer is not listening on port %d%s"
                        % (self.port, self._log_tail())
                    ) from None
                eventlet.sleep(0.05)
            else:
                if self.pid is not None:
                    return self
                eventlet.sleep(0.05)

    def _log_tail(self):
        try:
            with open(self.log) as f:
                return "\n--- pgbouncer.log ---\n" + "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def admin_query(self, sql):
        """Run a console command (``SHOW POOLS``...); rows as dicts."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname="pgbouncer"
        )
        try:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute(sql)
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            conn.close()

    def stop(self, timeout=10.0):
        """Stop the PgBouncer started here and remove its files."""
        pid, self.pid = self.pid, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
            deadline = time.monotonic() + timeout
            while pid is not None and time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                eventlet.sleep(0.05)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
