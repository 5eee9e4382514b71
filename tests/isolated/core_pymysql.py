"""PyMySQL in a RawConnectionPool under eventlet.monkey_patch(): the core's
real-database scenarios, in a fresh interpreter.

PyMySQL is pure Python and only cooperates with the hub once ``socket`` is
patched, and patching must happen before anything imports it, so these
scenarios cannot run in the pytest process.  ``tests/realdb/test_core_mysql.py``
launches this script (``sys.executable``) and asserts on its output.

Usage::

    DB_POOL_TEST_MYSQL='{"host": ..., "port": ..., "user": ..., "password": ...,
    "database": ...}' python tests/isolated/core_pymysql.py MARKER [SCENARIO ...]

Prints one line of JSON on stdout: ``{scenario: result}``, where a result is
the scenario's dict of observations or ``{"exception": traceback}``.
"""

import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402

import db_pool  # noqa: E402
from tests.isolated import core_scenarios as sc  # noqa: E402

POOL = db_pool.RawConnectionPool


def scenario_green_setup(kwargs, marker):
    """Monkey-patched for real, and no PoolWarning for PyMySQL in a raw pool."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = POOL(pymysql, max_size=1, name=marker, **kwargs)
    pool.close()
    return {
        "socket_patched": eventlet.patcher.is_monkey_patched("socket"),
        "warnings": ["%s: %s" % (w.category.__name__, w.message) for w in caught],
    }


def scenario_connector(kwargs, marker):
    """DatabaseConnector with PyMySQL: the database name reaches the driver."""
    creds = {k: v for k, v in kwargs.items() if k not in ("host", "database")}
    host = kwargs.get("host", "127.0.0.1")
    dbname = kwargs.get("database", "test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        connector = db_pool.DatabaseConnector(
            pymysql, {"default": creds}, conn_pool=POOL, max_size=2
        )
        pools = [eventlet.spawn(connector.get, host, dbname) for _ in range(10)]
        pools = [gt.wait() for gt in pools]
        pool = connector.get(host, dbname)
        with pool.item() as conn:
            cur = conn.cursor()
            cur.execute("SELECT DATABASE()")
            current = cur.fetchone()[0]
            cur.close()
        connector.close()
    try:
        connector.get(host, dbname)
    except db_pool.PoolClosed:
        closed_error = "PoolClosed"
    else:
        closed_error = None
    return {
        "one_pool": all(p is pool for p in pools),
        "database": current,
        "expected_database": dbname,
        "pool_closed": pool.closed,
        "get_after_close": closed_error,
        "warnings": ["%s: %s" % (w.category.__name__, w.message) for w in caught],
    }


def run(kwargs, marker, names):
    plain = {
        "green_setup": scenario_green_setup,
        "connector": scenario_connector,
    }
    with_backend = {
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
    results = {}
    for i, name in enumerate(names or list(plain) + list(with_backend)):
        scenario_marker = "%s_%d" % (marker, i)
        try:
            if name in plain:
                results[name] = plain[name](kwargs, scenario_marker)
            else:
                backend = sc.MysqlBackend(pymysql, kwargs, scenario_marker)
                try:
                    results[name] = with_backend[name](backend, POOL)
                finally:
                    backend.close()
        except BaseException:  # noqa: B036 - report everything, keep going
            results[name] = {"exception": traceback.format_exc()}
    return results


def main(argv):
    kwargs = json.loads(os.environ["DB_POOL_TEST_MYSQL"])
    marker, names = argv[0], argv[1:]
    results = run(kwargs, marker, names)
    sys.stdout.write(json.dumps(results, default=repr) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
