"""Fault injection against a real MariaDB server.

Two drivers, each in a fresh interpreter (``tests/isolated/faults_mysql.py``):

- PyMySQL in a RawConnectionPool, green because the interpreter is
  monkey-patched before PyMySQL is imported;
- MySQLdb (mysqlclient) in a TpooledConnectionPool, every call in an OS
  thread of eventlet's pool (no monkey-patching).

The scenarios (``tests/isolated/faults_common.py``) and the expected counts
(``tests/realdb/faults_expect.py``) are the ones PostgreSQL runs.
"""

from __future__ import annotations

import json

import pytest

pytest.register_assert_rewrite("tests.realdb.faults_expect")

from tests.conftest import run_python  # noqa: E402
from tests.realdb import faults_expect as expect  # noqa: E402

DRIVERS = ["pymysql", "mysqldb"]
_IMPORT_NAMES = {"pymysql": "pymysql", "mysqldb": "MySQLdb"}


def run_scenario(driver, scenario, mysql_kwargs, marker, **kwargs):
    """Run *scenario* with *driver* in a fresh interpreter; return its dict."""
    pytest.importorskip(_IMPORT_NAMES[driver])
    settings = {"connect": mysql_kwargs, "marker": marker, "kwargs": kwargs}
    code = (
        "import runpy, sys\n"
        "sys.argv = ['faults_mysql.py', %r, %r, %r]\n"
        "runpy.run_path('tests/isolated/faults_mysql.py', run_name='__main__')\n"
        % (driver, scenario, json.dumps(settings))
    )
    proc = run_python(code, timeout=120, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        outcome = json.loads(lines[-1])
    except (IndexError, ValueError):
        outcome = None
    if not outcome or "result" not in outcome:
        pytest.fail(
            "scenario %s (%s) failed, exit code %d\n%s\n--- stderr ---\n%s"
            % (
                scenario,
                driver,
                proc.returncode,
                (outcome or {}).get("error", proc.stdout),
                proc.stderr[-5000:],
            ),
            pytrace=False,
        )
    return outcome["result"]


@pytest.fixture(params=DRIVERS)
def scenario(request, mysql_kwargs, unique_name):
    """``scenario(name, **kwargs)``: run a fault scenario with one driver."""
    driver = request.param

    def run(name, **kwargs):
        return run_scenario(driver, name, mysql_kwargs, unique_name, **kwargs)

    run.marker = unique_name
    return run


def test_kill_all_with_pre_ping(scenario):
    expect.check_kill_all_pre_ping(scenario("kill_all_pre_ping"))


def test_kill_all_without_pre_ping(scenario):
    expect.check_kill_all_no_pre_ping(scenario("kill_all_no_pre_ping"))


def test_kill_all_without_pre_ping_all_handed_out_at_once(scenario):
    expect.check_kill_all_burst(scenario("kill_all_burst"))


def test_kill_all_get_put(scenario):
    expect.check_kill_get_put(scenario("kill_get_put"))


def test_query_errors_are_not_disconnects(scenario):
    expect.check_query_errors(scenario("query_errors"))


def test_blackholed_database(scenario):
    expect.check_blackhole(scenario("blackhole"))


def test_rollback_on_return_to_a_silent_server(scenario):
    expect.check_reset_blackhole(scenario("reset_blackhole"))


def test_outage_many_callers(scenario):
    expect.check_outage(scenario("outage"), scenario.marker)


def test_min_size_refill_backs_off_and_recovers(scenario):
    expect.check_refill(scenario("refill"))


def test_restart_through_proxy_under_load(scenario):
    expect.check_restart(scenario("restart_via_proxy"))


def test_hammer_with_random_cuts(scenario):
    expect.check_hammer(scenario("hammer", seed=1))


def test_hammer_checks_catch_a_pool_that_does_not_reset(scenario):
    result = scenario(
        "hammer", threads=20, duration=0.5, cuts=False, reset=False, seed=2
    )
    expect.check_hammer_control(result)
