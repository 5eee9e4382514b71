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

Admin calls block the process for the length of one local query; call them
from the test body, not from many green threads at once.
"""

from __future__ import annotations

import time

import eventlet

__all__ = [
    "MysqlAdmin",
    "PgAdmin",
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
