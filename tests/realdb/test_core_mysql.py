"""The core against a real MariaDB, with both MySQL drivers:

- ``mysqldb-tpool``: MySQLdb (mysqlclient, a C driver) in a
  TpooledConnectionPool, in the pytest process;
- ``pymysql-raw-green``: PyMySQL in a RawConnectionPool under
  ``eventlet.monkey_patch()``, in a fresh interpreter
  (``tests/isolated/core_pymysql.py``, run once per module; its scenarios
  report JSON that the same assertions check).

Server-side counts come from ``information_schema.PROCESSLIST`` filtered by
the connection ids the pool opened.  At the end, eventlet.db_pool's own
scenarios run against MySQLdb in both pool variants.
"""

from __future__ import annotations

import unittest

import eventlet
import pytest

import db_pool
from db_pool import RawConnectionPool, TpooledConnectionPool
from tests.conftest import make_unique_name, require_mysql
from tests.dbutil import MysqlAdmin
from tests.isolated import core_scenarios as sc
from tests.realdb._helpers import (
    EventletPoolScenarios,
    assert_scenario_ran,
    run_pymysql_scenarios,
)

MySQLdb = pytest.importorskip("MySQLdb")

IN_PROCESS = {
    "query": sc.scenario_query,
    "rollback_on_return": sc.scenario_rollback_on_return,
    "select_snapshot": sc.scenario_select_snapshot,
    "max_idle": sc.scenario_max_idle,
    "max_age": sc.scenario_max_age,
    "many_green_threads": sc.scenario_many_green_threads,
    "overlap": sc.scenario_overlap,
    "kill_waiting": sc.scenario_kill_waiting,
    "kill_connecting": sc.scenario_kill_connecting,
    "kill_holding": sc.scenario_kill_holding,
    "kill_holding_dropped": lambda b, cls: sc.scenario_kill_holding(
        b, cls, dropped=True
    ),
    "connect_timeout": sc.scenario_connect_timeout,
    "deadline_before_connect_timeout": sc.scenario_deadline_before_connect_timeout,
    "passthrough": sc.scenario_mysql_passthrough,
}


@pytest.fixture(scope="module")
def pymysql_results():
    """Every PyMySQL scenario, run once in a monkey-patched interpreter."""
    return run_pymysql_scenarios(require_mysql(), make_unique_name())


@pytest.fixture(params=["mysqldb-tpool", "pymysql-raw-green"])
def scenario(request, mysql_kwargs, unique_name):
    """``scenario(name)`` -> the observations of that scenario for this combination."""
    if request.param == "pymysql-raw-green":
        results = request.getfixturevalue("pymysql_results")
        yield lambda name: assert_scenario_ran(results[name])
        return
    backend = sc.MysqlBackend(MySQLdb, mysql_kwargs, unique_name)
    try:
        yield lambda name: IN_PROCESS[name](backend, TpooledConnectionPool)
    finally:
        backend.close()


def is_pymysql(request):
    return "pymysql" in request.node.callspec.params["scenario"]


def test_query(scenario):
    r = scenario("query")
    assert r["row"] == [42]
    assert r["connection_id_known"]
    assert r["server_count"] == 1
    assert (r["size"], r["free"]) == (1, 1)


def test_uncommitted_work_is_rolled_back_on_return(scenario):
    r = scenario("rollback_on_return")
    assert r["same_connection"], r
    assert r["seen_by_holder"] == 1
    assert r["in_transaction_after_return"] is False
    assert r["seen_by_next_holder"] == 0
    assert r["committed_rows_seen_by_others"] == [[2]]


def test_select_then_return_then_commit_elsewhere_is_seen(scenario, request):
    # REPEATABLE READ, autocommit off: a SELECT opens a transaction and its
    # snapshot; if the pool did not end it, the next holder would not see
    # a row committed by another connection meanwhile.
    r = scenario("select_snapshot")
    assert r["same_connection"], r
    assert r["before"] == 0
    assert r["in_transaction_after_return"] is False, r
    assert r["after"] == 1, "the next holder saw the previous holder's snapshot: %r" % r
    assert (r["resets_for_select"], r["skipped_for_select"]) == (1, 0), r
    if is_pymysql(request):
        # PyMySQL reports the transaction status: no reset after a commit.
        assert (r["resets_after_commit"], r["skipped_after_commit"]) == (0, 1), r
    else:
        # MySQLdb cannot tell without a round trip: it always rolls back.
        assert (r["resets_after_commit"], r["skipped_after_commit"]) == (1, 0), r


def test_max_idle_expiry_seen_from_the_server(scenario):
    r = scenario("max_idle")
    assert r["at_return"] == 3
    assert r["dropped"], r
    assert r["seconds_to_drop"] >= 0.4, r
    assert (r["after"], r["size"], r["expired_idle"]) == (0, 0, 3), r


def test_max_age_expiry_seen_from_the_server(scenario):
    r = scenario("max_age")
    assert r["at_return"] == 3
    assert r["idle_dropped"] and r["while_held"] == 1, r
    assert r["held_still_works"]
    assert r["all_dropped"], r
    assert (r["after"], r["size"], r["expired_age"]) == (0, 0, 3), r


def test_500_green_threads_on_a_pool_of_5(scenario):
    r = scenario("many_green_threads")
    assert r["threads"] == 500
    assert r["succeeded"] == 500, r["errors"]
    assert not r["sampler_errors"], r
    assert r["samples"] >= 5 and r["nonzero_samples"] >= 1, r
    assert r["max_server_count"] <= 5, r
    assert r["max_pool_size"] <= 5, r
    assert r["final_server_count"] == r["size"] <= 5, r
    assert r["connections_opened"] == 5, r
    assert r["checkouts"] == 500


@pytest.mark.timing
def test_queries_on_different_green_threads_overlap(scenario):
    r = scenario("overlap")
    assert (r["n"], r["sleep"]) == (5, 1)
    assert r["succeeded"] == 5, r["errors"]
    assert r["connections_opened"] == 5
    assert 1.0 <= r["seconds"] < 3.0, r


def test_killed_while_waiting_loses_no_slot(scenario):
    r = scenario("kill_waiting")
    assert r["queued"]
    assert r["waiting_after_kill"] == 0
    assert r["timed_waiter"] == "Timeout"
    assert r["waiting_after_timeout"] == 0
    assert (r["size_while_held"], r["size_after_put"], r["free_after_put"]) == (1, 1, 1)
    assert r["later_checkout_reused"] and r["later_checkout_works"]
    assert r["server_count"] == r["size"] == 1


def test_killed_while_connecting_loses_no_slot(scenario):
    r = scenario("kill_connecting")
    assert r["connecting"] and r["opening_before_kill"] == 1, r
    assert (r["size_after_kill"], r["opening_after_kill"], r["free_after_kill"]) == (
        0,
        0,
        1,
    )
    assert r["later_checkout_works"], r["later_checkout_error"]
    assert r["server_consistent"] and r["server_count"] == r["size"] == 1, r


@pytest.mark.parametrize("how", ["lease", "dropped"])
def test_killed_while_holding_mid_query_loses_no_slot(scenario, how):
    r = scenario("kill_holding" if how == "lease" else "kill_holding_dropped")
    assert r["in_query"], r
    assert r["slot_back"], r
    assert r["later_checkout_works"], r["later_checkout_error"]
    if how == "lease":
        assert r["new_connection"], "a connection killed mid-query was reused: %r" % r
    assert r["server_consistent"] and r["server_count"] == r["size"] == 1, r
    assert r["leaks_reclaimed"] == (1 if how == "dropped" else 0)


@pytest.mark.timing
def test_connect_timeout_fires_against_a_server_that_never_answers(scenario):
    r = scenario("connect_timeout")
    assert r["accepted"] >= 1, r
    assert r["is_connect_timeout"] and r["is_pool_error"], r
    assert 0.9 <= r["seconds"] < 2.5, r
    assert (r["size_after"], r["free_after"], r["connect_failures"]) == (0, 1, 1)


@pytest.mark.timing
def test_get_deadline_shorter_than_connect_timeout_is_a_pool_timeout(scenario):
    r = scenario("deadline_before_connect_timeout")
    assert r["is_pool_timeout"], r
    assert 0.45 <= r["seconds"] < 2.0, r
    assert r["size_after"] == 0


def test_wrapper_passes_driver_methods_through(scenario):
    r = scenario("passthrough")
    assert r["ping_ok"]
    assert r["thread_id_matches"]
    assert r["after_select_db"] == "information_schema"
    assert r["after_select_back"]
    assert r["autocommit_flag"] is True
    assert r["autocommit_row_seen_by_others"] == 1
    assert r["uncommitted_row_seen_by_others"] == 0
    # The drivers' own context manager closes the connection; the pool
    # sees a closed connection come back and drops it.
    assert r["enter_gives_wrapper"], r
    assert r["open_after_with"] is False
    assert (r["size_after_put"], r["free_items_after_put"]) == (0, 0), r
    assert r["server_count_dropped"]
    assert r["use_after_return"] == "ConnectionReturnedError"
    assert "returned to the pool" in r["use_after_return_message"]
    assert r["next_checkout_works"]


def test_pymysql_is_green_and_raises_no_pool_warning(pymysql_results):
    r = assert_scenario_ran(pymysql_results["green_setup"])
    assert r["socket_patched"]
    assert r["warnings"] == []


def test_pymysql_database_connector(pymysql_results):
    r = assert_scenario_ran(pymysql_results["connector"])
    assert r["one_pool"]
    assert r["database"] == r["expected_database"]
    assert r["pool_closed"] and r["get_after_close"] == "PoolClosed"
    assert r["warnings"] == [], "PyMySQL warned about the connect keywords: %r" % r


def test_database_connector_passes_db_to_mysqldb(
    mysql_kwargs, mysql_admin, unique_name
):
    dbname = unique_name
    mysql_admin.query("CREATE DATABASE %s" % dbname)
    try:
        host = mysql_kwargs.get("host", "127.0.0.1")
        creds = {k: v for k, v in mysql_kwargs.items() if k not in ("host", "database")}
        connector = db_pool.DatabaseConnector(MySQLdb, {host: creds}, max_size=2)
        try:
            assert connector.credentials_for(host) == creds
            assert connector.credentials_for("elsewhere") is None
            asked = [eventlet.spawn(connector.get, host, dbname) for _ in range(10)]
            pools = [gt.wait() for gt in asked]
            pool = connector.get(host, dbname)
            assert all(p is pool for p in pools)
            assert isinstance(pool, db_pool.ConnectionPool)  # eventlet's default
            assert pool._kwargs.get("db") == dbname
            with pool.item() as conn:
                cur = conn.cursor()
                cur.execute("SELECT DATABASE()")
                assert cur.fetchone()[0] == dbname
                cur.close()
                conn_id = int(conn.thread_id())
            assert mysql_admin.alive([conn_id]) == {conn_id}
        finally:
            connector.close()
        assert pool.closed
        mysql_admin.wait_count([conn_id], 0, timeout=3.0)
        with pytest.raises(db_pool.PoolClosed):
            connector.get(host, dbname)
    finally:
        mysql_admin.query("DROP DATABASE IF EXISTS %s" % dbname)


# -- eventlet.db_pool's scenarios ---------------------------------------------------


class _MySQLdb:
    """Driver side of the eventlet scenarios: MySQLdb, a database per test."""

    module = MySQLdb
    temp_table_sql = (
        "CREATE TEMPORARY TABLE filled (row_id INTEGER PRIMARY KEY AUTO_INCREMENT,"
        " value_int INTEGER) ENGINE=InnoDB"
    )

    def require_server(self):
        return require_mysql()

    def enter_driver_mode(self, stack):
        self.admin = MysqlAdmin(self.server_kwargs)
        stack.callback(self.admin.close)

    def create_database(self):
        self.admin.query("CREATE DATABASE %s" % self.dbname)

    def drop_database(self):
        self.admin.query("DROP DATABASE IF EXISTS %s" % self.dbname)

    def sessions_on_database(self):
        return self.admin.query(
            "SELECT count(*) FROM information_schema.PROCESSLIST"
            " WHERE DB = %s AND ID <> CONNECTION_ID()",
            (self.dbname,),
        )[0][0]

    def database_kwargs(self):
        kwargs = {k: v for k, v in self.server_kwargs.items() if k != "database"}
        kwargs["db"] = self.dbname  # eventlet's suite names it so
        return kwargs

    def connect_directly(self):
        return MySQLdb.connect(**self.database_kwargs())


class TestMySQLdbTpoolEventletScenarios(
    _MySQLdb, EventletPoolScenarios, unittest.TestCase
):
    pool_class = TpooledConnectionPool


class TestMySQLdbRawEventletScenarios(
    _MySQLdb, EventletPoolScenarios, unittest.TestCase
):
    pool_class = RawConnectionPool
