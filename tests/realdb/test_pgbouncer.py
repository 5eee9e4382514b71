"""db_pool behind PgBouncer in transaction pooling mode.

A private PgBouncer (:class:`tests.dbutil.PgBouncer`: a free loopback port,
``auth_type = trust``, run as the ``postgres`` user when we are root, stopped
by its pid file) sits in front of the local PostgreSQL.  If the ``pgbouncer``
binary is missing, it is installed with apt-get when running as root; else
the tests skip (and fail under ``DB_POOL_REQUIRE_DB=1``; ``.ci/run``
installs it).

Many green threads run transactions through one db_pool pool (psycopg2 made
green); the tests check the results and that no transaction state crosses
from one checkout to the next, and show which session state PgBouncer's
transaction mode does *not* isolate (the README explains why).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import eventlet
import pytest

import db_pool
from tests.conftest import missing_database
from tests.dbutil import PgBouncer

psycopg2 = pytest.importorskip("psycopg2")
psycopg2_extensions = pytest.importorskip("psycopg2.extensions")

IDLE = psycopg2_extensions.TRANSACTION_STATUS_IDLE


def _pgbouncer_installed():
    return bool(shutil.which("pgbouncer")) or os.path.exists("/usr/sbin/pgbouncer")


def ensure_pgbouncer():
    """Install the Debian package pgbouncer if it is missing and we are root."""
    if _pgbouncer_installed():
        return
    if os.geteuid() != 0:
        missing_database(
            "pgbouncer is not installed, and only root may apt-get install it"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "--no-install-recommends", "pgbouncer"]
    subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
    if not _pgbouncer_installed():  # stale package lists: refresh, then retry
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=900)
        subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
    if not _pgbouncer_installed():
        missing_database("pgbouncer is not installed and apt-get could not install it")


@pytest.fixture
def green_psycopg2():
    saved = psycopg2_extensions.get_wait_callback()
    db_pool.make_psycopg_green()
    try:
        yield psycopg2
    finally:
        psycopg2_extensions.set_wait_callback(saved)


def start_bouncer(pg_kwargs, **options):
    ensure_pgbouncer()
    bouncer = PgBouncer(pg_kwargs, pool_mode="transaction", **options)
    try:
        return bouncer.start()
    except RuntimeError as exc:
        missing_database("PgBouncer did not start: %s" % exc)


@pytest.fixture
def bouncer(pg_kwargs):
    bouncer = start_bouncer(
        pg_kwargs,
        default_pool_size=4,
        max_client_conn=100,
        extra_settings={"server_lifetime": 3600, "server_idle_timeout": 600},
    )
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def table(pg_admin, unique_name):
    pg_admin.query("CREATE TABLE %s (worker integer, n integer)" % unique_name)
    try:
        yield unique_name
    finally:
        pg_admin.query("DROP TABLE IF EXISTS %s" % unique_name)


def fetch(cur, sql, params=None):
    cur.execute(sql, params)
    return cur.fetchone()


def test_many_green_threads_through_pgbouncer(
    green_psycopg2, bouncer, table, unique_name
):
    workers, rounds = 100, 6
    pool = db_pool.RawConnectionPool(
        psycopg2,
        max_size=20,  # client connections to PgBouncer: cheap
        max_idle=300,  # below PgBouncer's client_idle_timeout (if set)
        max_age=1800,
        pool_timeout=30,
        application_name=unique_name,
        **bouncer.kwargs,
    )
    bad = []  # (worker, n, what) for every state that crossed a checkout
    results = []
    committed = set()

    def worker(w):
        for n in range(rounds):
            with pool.connection() as conn:
                # Every checkout starts outside any transaction...
                if conn.info.transaction_status != IDLE:
                    bad.append((w, n, "status %r" % conn.info.transaction_status))
                cur = conn.cursor()
                # ...with nothing left by earlier transactions of any client.
                marker, scratch, xid = fetch(
                    cur,
                    "SELECT current_setting('dbpool.marker', true),"
                    " to_regclass('pg_temp.dbp_scratch'), txid_current_if_assigned()",
                )
                if marker not in (None, "") or scratch is not None or xid is not None:
                    bad.append((w, n, "leftover %r" % ((marker, scratch, xid),)))
                me = "%d-%d" % (w, n)
                cur.execute("SET LOCAL dbpool.marker = %s", (me,))
                cur.execute("CREATE TEMP TABLE dbp_scratch (x integer) ON COMMIT DROP")
                cur.execute("INSERT INTO dbp_scratch VALUES (%s)", (w,))
                cur.execute("INSERT INTO " + table + " VALUES (%s, %s)", (w, n))
                eventlet.sleep(0)  # let other green threads interleave
                got = fetch(
                    cur,
                    "SELECT current_setting('dbpool.marker'),"
                    " (SELECT x FROM dbp_scratch), %s::integer * 2",
                    (w * 1000 + n,),
                )
                results.append(got == (me, w, (w * 1000 + n) * 2))
                outcome = n % 3
                if outcome == 0:
                    conn.commit()
                    committed.add((w, n))
                elif outcome == 1:
                    pass  # returned with the transaction open: rolled back
                else:
                    try:
                        cur.execute("SELECT 1 / 0")
                    except psycopg2.DataError:
                        pass  # returned with a failed transaction
                cur.close()

    try:
        threads = [eventlet.spawn(worker, w) for w in range(workers)]
        for gt in threads:
            gt.wait()
        assert bad == []
        assert len(results) == workers * rounds and all(results)
        with pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT worker, n FROM " + table)
            rows = set(cur.fetchall())
            conn.rollback()
        # Only what was committed is there: open and failed transactions
        # were rolled back when their connections came back.
        assert rows == committed
        assert len(committed) == workers * rounds // 3
        stats = pool.stats()
        assert stats["checkouts"] == workers * rounds + 1
        assert stats["discarded_dead"] == 0 and stats["discarded_reset_failed"] == 0
        assert stats["connections_opened"] <= 20
        # PgBouncer multiplexed them onto at most default_pool_size sessions.
        servers = [
            row
            for row in bouncer.admin_query("SHOW SERVERS")
            if row["database"] == bouncer.dbname
        ]
        assert 1 <= len(servers) <= 4
        clients = [
            row
            for row in bouncer.admin_query("SHOW CLIENTS")
            if row["database"] == bouncer.dbname
        ]
        assert len(clients) == stats["size"] > len(servers)
    finally:
        pool.close()


def test_execute_through_pgbouncer(green_psycopg2, bouncer, unique_name):
    pool = db_pool.RawConnectionPool(
        psycopg2,
        max_size=5,
        max_retries=1,
        application_name=unique_name,
        **bouncer.kwargs,
    )
    try:

        def double(conn, x):
            cur = conn.cursor()
            cur.execute("SELECT %s::integer * 2", (x,))
            return cur.fetchone()[0]

        results = [eventlet.spawn(pool.execute, double, i) for i in range(50)]
        assert [gt.wait() for gt in results] == [i * 2 for i in range(50)]
        assert pool.stats()["checked_out"] == 0
    finally:
        pool.close()


def test_what_transaction_mode_does_not_isolate(green_psycopg2, pg_kwargs, unique_name):
    """Session-level SET leaks between clients in transaction mode; SET LOCAL
    does not.  (One server connection, so both clients share it.)"""
    bouncer = start_bouncer(pg_kwargs, default_pool_size=1, max_client_conn=10)
    pool = db_pool.RawConnectionPool(
        psycopg2, max_size=2, application_name=unique_name, **bouncer.kwargs
    )
    try:
        a, b = pool.get(), pool.get()
        a.autocommit = b.autocommit = True
        ca, cb = a.cursor(), b.cursor()
        ca.execute("SET dbpool.session_setting = 'from-a'")  # session level
        leaked = fetch(cb, "SELECT current_setting('dbpool.session_setting', true)")[0]
        assert leaked == "from-a"  # client b sees client a's session state
        ca.execute("RESET dbpool.session_setting")
        a.autocommit = b.autocommit = False
        ca.execute("SET LOCAL dbpool.local_setting = 'from-a'")
        a.commit()
        local = fetch(cb, "SELECT current_setting('dbpool.local_setting', true)")[0]
        assert local in (None, "")  # SET LOCAL ended with a's transaction
        b.rollback()
        ca.close()
        cb.close()
        pool.put(a)
        pool.put(b)
    finally:
        pool.close()
        bouncer.stop()
