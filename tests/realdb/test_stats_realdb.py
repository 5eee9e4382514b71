"""pool.stats() (and the Prometheus view of it) against the server's own count
of the pool's connections.

PostgreSQL with psycopg2, green in a RawConnectionPool and in OS threads in
a TpooledConnectionPool; MariaDB with MySQLdb in a TpooledConnectionPool
(PyMySQL needs a monkey-patched interpreter: its server-side check is the
command-line test in test_cli_realdb.py).  The server kills one idle
session; the pool's counters must say exactly what the server saw.
"""

from __future__ import annotations

import pytest

from db_pool import RawConnectionPool, TpooledConnectionPool
from tests.dbutil import mysql_connection_id, pg_backend_pid, wait_for
from tests.realdb._helpers import psycopg_wait_callback

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from db_pool.prometheus import PoolCollector  # noqa: E402


def scraped(pool, metric):
    registry = CollectorRegistry()
    registry.register(PoolCollector([pool]))
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == metric and sample.labels == {"pool": pool.name}:
                return sample.value
    raise AssertionError("%s not scraped" % metric)


class PgSide:
    def __init__(self, admin, marker):
        self.admin = admin
        self.marker = marker

    def count(self):
        return self.admin.count(self.marker)

    def kill(self, conn):
        pid = pg_backend_pid(conn)
        assert self.admin.terminate(self.marker, [pid]) == [pid]


class MysqlSide:
    def __init__(self, admin):
        self.admin = admin
        self.ids = set()

    def note(self, conns):
        self.ids.update(mysql_connection_id(c) for c in conns)

    def count(self):
        return self.admin.count(self.ids)

    def kill(self, conn):
        target = mysql_connection_id(conn)
        assert self.admin.kill([target]) == [target]


def run_scenario(pool, side):
    """Three connections; one killed by the server while idle; then clear()."""
    held = [pool.get() for _ in range(3)]
    if isinstance(side, MysqlSide):
        side.note(held)
    st = pool.stats()
    assert (st["connections_opened"], st["size"], st["checked_out"], st["free"]) == (
        3,
        3,
        3,
        0,
    )
    wait_for(lambda: side.count() == 3)
    victim = held[0]
    side.kill(victim)
    wait_for(lambda: side.count() == 2)
    for conn in held:
        pool.put(conn)
    # The server counts 2; the pool finds the third dead on its next use.
    again = [pool.get() for _ in range(3)]
    if isinstance(side, MysqlSide):
        side.note(again)
    st = pool.stats()
    dead = st["discarded_dead"] + st["discarded_reset_failed"]
    assert dead == 1, st
    assert st["connections_opened"] == 4, st
    assert st["connections_closed"] == 1, st
    assert st["size"] == st["checked_out"] == 3
    assert st["checkouts"] == 6
    wait_for(lambda: side.count() == 3)
    assert scraped(pool, "db_pool_size") == side.count() == 3
    assert scraped(pool, "db_pool_connections_opened_total") == 4
    for conn in again:
        pool.put(conn)
    pool.clear()
    st = pool.stats()
    assert st["connections_closed"] == 4 and st["size"] == 0
    assert st["connections_opened"] - st["connections_closed"] == 0
    wait_for(lambda: side.count() == 0)
    assert scraped(pool, "db_pool_connections_closed_total") == 4


@pytest.mark.parametrize(
    "pool_class, green",
    [(RawConnectionPool, True), (TpooledConnectionPool, False)],
    ids=["raw-green", "tpool"],
)
def test_pg_counts_match_the_server(
    pool_class, green, pg_kwargs, pg_admin, unique_name
):
    import psycopg2

    with psycopg_wait_callback(green):
        pool = pool_class(
            psycopg2,
            max_size=4,
            max_idle=None,
            max_age=None,
            pre_ping=True,
            pre_ping_idle=0,
            name=unique_name,
            connect_args=dict(pg_kwargs, application_name=unique_name),
        )
        try:
            run_scenario(pool, PgSide(pg_admin, unique_name))
        finally:
            pool.close()


def test_pg_idle_expiry_seen_by_the_server(pg_kwargs, pg_admin, unique_name):
    import psycopg2

    with psycopg_wait_callback(True):
        pool = RawConnectionPool(
            psycopg2,
            max_size=3,
            max_idle=0.3,
            name=unique_name,
            connect_args=dict(pg_kwargs, application_name=unique_name),
        )
        try:
            held = [pool.get() for _ in range(2)]
            for conn in held:
                pool.put(conn)
            assert pg_admin.count(unique_name) == 2
            wait_for(lambda: pool.stats()["expired_idle"] == 2, timeout=5)
            st = pool.stats()
            assert (st["connections_closed"], st["size"], st["free"]) == (2, 0, 0)
            pg_admin.wait_count(unique_name, 0)
        finally:
            pool.close()


def test_mysqldb_counts_match_the_server(mysql_kwargs, mysql_admin, unique_name):
    MySQLdb = pytest.importorskip("MySQLdb")
    pool = TpooledConnectionPool(
        MySQLdb,
        max_size=4,
        max_idle=None,
        max_age=None,
        pre_ping=True,
        pre_ping_idle=0,
        name=unique_name,
        connect_args=dict(mysql_kwargs),
    )
    try:
        run_scenario(pool, MysqlSide(mysql_admin))
    finally:
        pool.close()
