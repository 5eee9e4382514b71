"""The core against a real PostgreSQL, with psycopg2 in both pool variants:

- ``raw-green``: RawConnectionPool, psycopg2 made green by
  :func:`db_pool.make_psycopg_green` (a wait callback);
- ``tpool``: TpooledConnectionPool, with the wait callback removed (it
  cannot work in OS threads) and restored after each test.

The scenarios are in ``tests/isolated/core_scenarios.py``; server-side
counts come from ``pg_stat_activity`` filtered by an application name unique
to each test.  At the end, eventlet.db_pool's own scenarios run against both
variants (and against a raw pool without the wait callback, as eventlet's
suite runs it).
"""

from __future__ import annotations

import unittest
import warnings

import eventlet
import pytest

import db_pool
from db_pool import RawConnectionPool, TpooledConnectionPool
from tests.conftest import require_pg
from tests.dbutil import PgAdmin
from tests.isolated import core_scenarios as sc
from tests.realdb._helpers import EventletPoolScenarios, psycopg_wait_callback

psycopg2 = pytest.importorskip("psycopg2")
extensions = pytest.importorskip("psycopg2.extensions")

COMBOS = {
    "raw-green": (RawConnectionPool, True),
    "tpool": (TpooledConnectionPool, False),
}


@pytest.fixture(params=sorted(COMBOS))
def combo(request, pg_kwargs, unique_name):
    """(backend, pool class) with psycopg2 in the matching mode."""
    pool_class, green = COMBOS[request.param]
    with psycopg_wait_callback(green):
        backend = sc.PgBackend(pg_kwargs, unique_name)
        try:
            yield backend, pool_class
        finally:
            backend.close()


def test_query(combo):
    r = sc.scenario_query(*combo)
    assert r["row"] == [42]
    assert r["server_count"] == 1
    assert (r["size"], r["free"]) == (1, 1)


def test_uncommitted_work_is_rolled_back_on_return(combo):
    r = sc.scenario_rollback_on_return(*combo)
    assert r["same_connection"], r
    assert r["seen_by_holder"] == 1
    assert r["in_transaction_after_return"] is False
    assert r["seen_by_next_holder"] == 0
    assert r["committed_rows_seen_by_others"] == [[2]]


def test_select_only_transaction_does_not_leak_its_snapshot(combo):
    r = sc.scenario_select_snapshot(*combo)
    assert r["same_connection"], r
    assert r["before"] == 0
    assert r["in_transaction_after_return"] is False, r
    assert r["after"] == 1, "the next holder saw the previous holder's snapshot: %r" % r
    # psycopg2 reports the transaction status: the SELECT's transaction is
    # rolled back, a committed connection is not reset again.
    assert (r["resets_for_select"], r["skipped_for_select"]) == (1, 0), r
    assert (r["resets_after_commit"], r["skipped_after_commit"]) == (0, 1), r


def test_max_idle_expiry_seen_from_the_server(combo):
    r = sc.scenario_max_idle(*combo)
    assert r["at_return"] == 3
    assert r["dropped"], r
    assert r["seconds_to_drop"] >= 0.4, r
    assert (r["after"], r["size"], r["expired_idle"]) == (0, 0, 3), r


def test_max_age_expiry_seen_from_the_server(combo):
    r = sc.scenario_max_age(*combo)
    assert r["at_return"] == 3
    assert r["idle_dropped"] and r["while_held"] == 1, r
    assert r["held_still_works"]
    assert r["all_dropped"], r
    assert (r["after"], r["size"], r["expired_age"]) == (0, 0, 3), r


def test_500_green_threads_on_a_pool_of_5(combo):
    r = sc.scenario_many_green_threads(*combo, threads=500, max_size=5)
    assert r["succeeded"] == 500, r["errors"]
    assert not r["sampler_errors"], r
    assert r["samples"] >= 5 and r["nonzero_samples"] >= 1, r
    assert r["max_server_count"] <= 5, r
    assert r["max_pool_size"] <= 5, r
    assert r["final_server_count"] == r["size"] <= 5, r
    assert r["connections_opened"] == 5, r
    assert r["checkouts"] == 500


@pytest.mark.timing
def test_queries_on_different_green_threads_overlap(combo):
    r = sc.scenario_overlap(*combo, n=5, seconds=1)
    assert r["succeeded"] == 5, r["errors"]
    assert r["connections_opened"] == 5
    assert 1.0 <= r["seconds"] < 3.0, r


def test_killed_while_waiting_loses_no_slot(combo):
    r = sc.scenario_kill_waiting(*combo)
    assert r["queued"]
    assert r["waiting_after_kill"] == 0
    assert r["timed_waiter"] == "Timeout"
    assert r["waiting_after_timeout"] == 0
    assert (r["size_while_held"], r["size_after_put"], r["free_after_put"]) == (1, 1, 1)
    assert r["later_checkout_reused"] and r["later_checkout_works"]
    assert r["server_count"] == r["size"] == 1


def test_killed_while_connecting_loses_no_slot(combo):
    r = sc.scenario_kill_connecting(*combo)
    assert r["connecting"] and r["opening_before_kill"] == 1, r
    assert (r["size_after_kill"], r["opening_after_kill"], r["free_after_kill"]) == (
        0,
        0,
        1,
    )
    assert r["later_checkout_works"], r["later_checkout_error"]
    assert r["server_consistent"] and r["server_count"] == r["size"] == 1, r


@pytest.mark.parametrize("how", ["lease", "dropped"])
def test_killed_while_holding_mid_query_loses_no_slot(combo, how):
    r = sc.scenario_kill_holding(*combo, dropped=how == "dropped")
    assert r["in_query"], r
    assert r["slot_back"], r
    assert r["later_checkout_works"], r["later_checkout_error"]
    if how == "lease":
        # The lease saw the kill: the connection's state is unknown, so it
        # must not be handed out again.
        assert r["new_connection"], "a connection killed mid-query was reused: %r" % r
    assert r["server_consistent"] and r["server_count"] == r["size"] == 1, r
    assert r["leaks_reclaimed"] == (1 if how == "dropped" else 0)


@pytest.mark.timing
def test_connect_timeout_fires_against_a_server_that_never_answers(combo):
    r = sc.scenario_connect_timeout(*combo, connect_timeout=1.0)
    assert r["accepted"] >= 1, r
    assert r["is_connect_timeout"], r
    assert 0.9 <= r["seconds"] < 2.5, r
    assert (r["size_after"], r["free_after"], r["connect_failures"]) == (0, 1, 1)


@pytest.mark.timing
def test_get_deadline_shorter_than_connect_timeout_is_a_pool_timeout(combo):
    r = sc.scenario_deadline_before_connect_timeout(
        *combo, timeout=0.5, connect_timeout=5
    )
    assert r["is_pool_timeout"], r
    assert 0.45 <= r["seconds"] < 2.0, r
    assert r["size_after"] == 0


def test_wrapper_passes_psycopg2_attributes_through(combo):
    r = sc.scenario_pg_passthrough(*combo)
    assert r["closed"] == 0
    assert r["backend_pid_matches"]
    assert r["wrapper_autocommit"] is True and r["raw_autocommit"] is True, r
    assert r["status_after_autocommit_insert"] == extensions.TRANSACTION_STATUS_IDLE
    assert r["autocommit_row_seen_by_others"] == 1
    assert any("dbp-notice-42" in n for n in r["notices"]), r["notices"]
    assert r["raw_autocommit_off"] is False
    assert r["enter_gives_wrapper"], r
    assert r["with_committed"] == 1 and r["with_rolled_back"], r
    assert r["closed_after_with"] == 0
    assert r["free_after_put"] == 1
    assert r["after_return_read"] == "ConnectionReturnedError"
    assert r["after_return_write"] == "ConnectionReturnedError"
    assert r["after_return_call"] == "ConnectionReturnedError"


def test_database_connector_passes_dbname(combo, pg_kwargs, unique_name):
    backend, pool_class = combo
    host = pg_kwargs.get("host", "127.0.0.1")
    dbname = pg_kwargs.get("dbname", "test")
    creds = {k: v for k, v in pg_kwargs.items() if k not in ("host", "dbname")}
    creds["application_name"] = unique_name
    connector = db_pool.DatabaseConnector(
        psycopg2, {"default": creds}, conn_pool=pool_class, max_size=2
    )
    try:
        assert connector.credentials_for("elsewhere") == creds
        asked = [eventlet.spawn(connector.get, host, dbname) for _ in range(10)]
        pools = [gt.wait() for gt in asked]
        pool = connector.get(host, dbname)
        assert all(p is pool for p in pools)
        assert isinstance(pool, pool_class)
        with pool.item() as conn:
            assert backend.scalar(conn, "SELECT current_database()") == dbname
        assert backend.count() == 1
    finally:
        connector.close()
    assert pool.closed
    assert sc.wait_until(lambda: backend.count() == 0, timeout=3.0)
    with pytest.raises(db_pool.PoolClosed):
        connector.get(host, dbname)


def test_raw_pool_warns_when_psycopg2_is_not_green(pg_kwargs):
    with psycopg_wait_callback(False):
        with pytest.warns(db_pool.PoolWarning, match="wait callback"):
            pool = RawConnectionPool(psycopg2, max_size=1, **pg_kwargs)
        pool.close()
    with psycopg_wait_callback(True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", db_pool.PoolWarning)
            pool = RawConnectionPool(psycopg2, max_size=1, **pg_kwargs)
        pool.close()


def test_tpooled_pool_warns_when_psycopg2_is_green(pg_kwargs):
    with psycopg_wait_callback(True):
        with pytest.warns(db_pool.PoolWarning, match="OS threads"):
            pool = TpooledConnectionPool(psycopg2, max_size=1, **pg_kwargs)
        pool.close()


# -- eventlet.db_pool's scenarios ---------------------------------------------------


class _Psycopg2:
    """Driver side of the eventlet scenarios: psycopg2, a database per test."""

    module = psycopg2
    green = None  # True: wait callback installed; False: removed
    temp_table_sql = (
        "CREATE TEMPORARY TABLE filled (row_id SERIAL PRIMARY KEY, value_int INTEGER)"
    )

    def require_server(self):
        return require_pg()

    def enter_driver_mode(self, stack):
        stack.enter_context(psycopg_wait_callback(self.green))
        self.admin = PgAdmin(self.server_kwargs)
        stack.callback(self.admin.close)

    def create_database(self):
        self.admin.query("CREATE DATABASE %s" % self.dbname)

    def drop_database(self):
        if self.sessions_on_database():
            self.admin.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.dbname)
        else:
            self.admin.query("DROP DATABASE IF EXISTS %s" % self.dbname)

    def sessions_on_database(self):
        return self.admin.query(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.dbname,),
        )[0][0]

    def database_kwargs(self):
        kwargs = {k: v for k, v in self.server_kwargs.items() if k != "dbname"}
        kwargs["database"] = self.dbname  # eventlet's suite names it so
        return kwargs

    def connect_directly(self):
        return psycopg2.connect(**self.database_kwargs())

    def test_cursor_works_as_context_manager(self):
        with self.connection.cursor() as cur:
            cur.execute("SELECT 1")
            self.assertEqual((1,), cur.fetchone())

    def test_set_isolation_level(self):
        self.connection.set_isolation_level(extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        # psycopg2 turns that level into its autocommit mode.
        self.assertIs(True, self.connection.autocommit)


class TestPsycopg2TpoolEventletScenarios(
    _Psycopg2, EventletPoolScenarios, unittest.TestCase
):
    pool_class = TpooledConnectionPool
    green = False


class TestPsycopg2RawEventletScenarios(
    _Psycopg2, EventletPoolScenarios, unittest.TestCase
):
    pool_class = RawConnectionPool
    green = True


class TestPsycopg2RawBlockingEventletScenarios(
    _Psycopg2, EventletPoolScenarios, unittest.TestCase
):
    """As eventlet's suite runs it: a raw pool, psycopg2 not made green.

    Works, and warns (PoolWarning) every time such a pool is made.
    """

    pool_class = RawConnectionPool
    green = False

    def check_construction_warnings(self, module, caught):
        names = [w.category for w in caught]
        if module is psycopg2:
            self.assertEqual([db_pool.PoolWarning], names)
        else:
            self.assertEqual([], names)
