"""The command line against the real servers, run as a subprocess.

For each of psycopg2 (``postgresql://``), PyMySQL (``mysql://``, green under
monkey-patching) and MySQLdb (``mysql+mysqldb://``, through the thread
pool): ``check``, ``bench --json``, the mixed workload's scratch table, and
the pool's stats cross-checked against the server's own view of the
connections while a run is under way (PostgreSQL: ``pg_stat_activity`` by a
unique ``application_name``; MariaDB: the processlist by a unique database
made for the test).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from tests.dbutil import wait_for
from tests.test_cli import SECRET, cli_env, run_cli

pytestmark = pytest.mark.slow

KINDS = ("postgresql", "mysql", "mysql+mysqldb")


def pg_url(kwargs, **params):
    user = quote(str(kwargs.get("user", "postgres")))
    password = kwargs.get("password")
    auth = "%s:%s" % (user, quote(str(password))) if password else user
    url = "postgresql://%s@%s:%s/%s" % (
        auth,
        kwargs.get("host", "127.0.0.1"),
        kwargs.get("port", 5432),
        quote(str(kwargs.get("dbname", "test"))),
    )
    if params:
        url += "?" + "&".join("%s=%s" % kv for kv in params.items())
    return url


def mysql_url(kwargs, scheme="mysql", database=None):
    user = quote(str(kwargs.get("user", "root")))
    password = kwargs.get("password")
    auth = "%s:%s" % (user, quote(str(password))) if password else user
    return "%s://%s@%s:%s/%s" % (
        scheme,
        auth,
        kwargs.get("host", "127.0.0.1"),
        kwargs.get("port", 3306),
        quote(str(database or kwargs.get("database", "test"))),
    )


@pytest.fixture(params=KINDS)
def server_url(request):
    """(scheme, URL) of each driver's way to a real server."""
    from tests.conftest import require_mysql, require_pg

    if request.param == "postgresql":
        return request.param, pg_url(require_pg())
    return request.param, mysql_url(require_mysql(), request.param)


def run_json(*args, **kwargs):
    proc = run_cli(*args, "--json", **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_check(server_url):
    scheme, url = server_url
    data = run_json("check", url)
    assert data["ok"] is True
    expected = "PostgreSQL" if scheme == "postgresql" else "MariaDB"
    assert expected in data["server_version"]
    assert data["pool_class"] == (
        "TpooledConnectionPool" if scheme == "mysql+mysqldb" else "RawConnectionPool"
    )
    assert data["connect_time"] > 0
    assert data["round_trip"]["count"] == 5
    assert 0 < data["round_trip"]["min"] <= data["round_trip"]["max"] < 5
    pool = data["pool"]
    assert pool["connections_opened"] == 1 and pool["checkouts"] == 1
    assert pool["connect_failures"] == 0


def test_bench_json(server_url):
    scheme, url = server_url
    data = run_json(
        "bench", url, "--count", "300", "--threads", "30", "--pool-size", "4"
    )
    assert data["url"] == url  # no password in these URLs to hide
    assert data["workload"] == "query" and data["query"] == "SELECT 1"
    assert data["operations"] == 300 and data["errors"] == 0
    pool = data["pool"]
    assert pool["checkouts"] == 300
    assert pool["max_size"] == 4 and pool["size"] == 4
    assert data["warmup"]["connections_opened"] == 4
    assert pool["connections_opened"] == 0 and pool["connect_failures"] == 0
    assert pool["resets"] + pool["resets_skipped"] == 300
    # How many had to wait depends on timing; what the pool timed is within
    # what the command timed around get().
    assert 0 <= pool["waits"] <= 300
    assert pool["wait_time_max"] <= data["wait"]["max"] + 1e-6
    for key in ("p50", "p95", "p99", "max"):
        assert data["latency"][key] >= data["wait"][key] >= 0


def test_bench_mixed_workload_drops_its_table(server_url):
    scheme, url = server_url
    data = run_json(
        "bench", url, "--mixed", "--count", "300", "--threads", "20", "--pool-size", "4"
    )
    assert data["workload"] == "mixed"
    assert data["operations"] == 300 and data["errors"] == 0
    table = data["workload_description"].split("(table ", 1)[1].rstrip(")")
    assert table.startswith("db_pool_bench_")
    # Reads leave nothing to roll back only in autocommit; here every read
    # of the mixed workload ran inside the driver's implicit transaction.
    assert data["pool"]["resets"] + data["pool"]["resets_skipped"] == 300
    if scheme == "postgresql":
        from tests.conftest import require_pg
        from tests.dbutil import PgAdmin

        with PgAdmin(require_pg()) as admin:
            rows = admin.query(
                "SELECT 1 FROM information_schema.tables WHERE table_name = %s",
                (table,),
            )
    else:
        from tests.conftest import require_mysql
        from tests.dbutil import MysqlAdmin

        with MysqlAdmin(require_mysql()) as admin:
            rows = admin.query(
                "SELECT 1 FROM information_schema.tables WHERE table_name = %s",
                (table,),
            )
    assert list(rows) == []


def _watch_run(args, count_fn, pool_size):
    """Run the CLI; sample the server's count of its connections meanwhile.

    Returns (the JSON report, the samples taken once the count first
    reached *pool_size*).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "db_pool", *args, "--json", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        wait_for(
            lambda: count_fn() == pool_size or proc.poll() is not None,
            timeout=30,
            interval=0.02,
            message="the server never saw the pool's connections",
        )
        assert proc.poll() is None, "the run ended before its connections were seen"
        samples = []
        while proc.poll() is None:
            samples.append(count_fn())
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return json.loads(out), samples


def _check_report(data, samples, pool_size):
    assert data["errors"] == 0
    # The server saw exactly the pool's connections for the whole run.
    # (Then fewer and fewer: the pool closes them one by one a moment before
    # the process ends, so the samples may catch it half way.)
    last = max(i for i, value in enumerate(samples) if value == pool_size)
    during, closing = samples[: last + 1], samples[last + 1 :]
    assert len(during) >= 5, samples
    assert set(during) == {pool_size}, samples
    assert closing == sorted(closing, reverse=True), samples
    assert all(value < pool_size for value in closing), samples
    # ... which is what the pool's own counters say.
    assert data["warmup"]["connections_opened"] == pool_size
    pool = data["pool"]
    assert pool["size"] == pool_size and pool["free"] == pool_size
    assert pool["connections_opened"] == 0 and pool["connections_closed"] == 0
    assert pool["checkouts"] == data["operations"]


def test_server_sees_exactly_the_pool_postgresql(pg_admin, pg_kwargs, unique_name):
    pool_size = 5
    url = pg_url(pg_kwargs, application_name=unique_name)
    data, samples = _watch_run(
        [
            "bench",
            url,
            "--duration",
            "2",
            "--threads",
            "40",
            "--pool-size",
            str(pool_size),
        ],
        lambda: pg_admin.count(unique_name),
        pool_size,
    )
    _check_report(data, samples, pool_size)
    # Every connection closed when the command ended.
    pg_admin.wait_count(unique_name, 0)


@pytest.mark.parametrize("scheme", ["mysql", "mysql+mysqldb"])
def test_server_sees_exactly_the_pool_mariadb(
    mysql_admin, mysql_kwargs, unique_name, scheme
):
    pool_size = 5
    # Connections of this run are the ones in a database of its own.
    mysql_admin.query("CREATE DATABASE %s" % unique_name)
    try:

        def count():
            rows = mysql_admin.query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s",
                (unique_name,),
            )
            return int(rows[0][0])

        url = mysql_url(mysql_kwargs, scheme, database=unique_name)
        data, samples = _watch_run(
            [
                "bench",
                url,
                "--duration",
                "2",
                "--threads",
                "40",
                "--pool-size",
                str(pool_size),
            ],
            count,
            pool_size,
        )
        _check_report(data, samples, pool_size)
        wait_for(
            lambda: count() == 0, timeout=10, message="connections left after the run"
        )
    finally:
        mysql_admin.query("DROP DATABASE IF EXISTS %s" % unique_name)


def test_size_on_postgresql(pg_kwargs, tmp_path):
    chart = tmp_path / "pg.png"
    data = run_json(
        "size",
        pg_url(pg_kwargs),
        "--sizes",
        "1,2,4",
        "--count",
        "200",
        "--threads",
        "20",
        "--chart",
        str(chart),
    )
    rows = data["results"]
    assert [r["pool_size"] for r in rows] == [1, 2, 4]
    assert all(r["operations"] == 200 and r["errors"] == 0 for r in rows)
    best = max(r["throughput"] for r in rows)
    assert data["recommended"] == min(
        r["pool_size"] for r in rows if r["throughput"] >= 0.95 * best
    )
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_size_on_mariadb_green(mysql_kwargs, tmp_path):
    chart = tmp_path / "my.svg"
    data = run_json(
        "size",
        mysql_url(mysql_kwargs),
        "--sizes",
        "1,3",
        "--count",
        "150",
        "--threads",
        "15",
        "--chart",
        str(chart),
    )
    assert [r["operations"] for r in data["results"]] == [150, 150]
    assert data["recommended"] in (1, 3)
    assert chart.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_unknown_database_is_one_line(pg_kwargs, unique_name):
    url = pg_url(dict(pg_kwargs, dbname=unique_name + "_missing"))
    proc = run_cli("check", url)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "does not exist" in lines[0]


def test_wrong_password_is_one_line_without_the_password(mysql_kwargs):
    kwargs = dict(mysql_kwargs, user="dbp_no_such_user", password=SECRET)
    for scheme in ("mysql", "mysql+mysqldb"):
        proc = run_cli("check", mysql_url(kwargs, scheme))
        assert proc.returncode == 1
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert "Access denied" in lines[0]
        assert SECRET not in proc.stderr and SECRET not in proc.stdout
        assert "dbp_no_such_user:***@" in lines[0]
