"""Server lists against a real MariaDB: spread, failover within the caller's
deadline ([black hole, MariaDB] and [closed port, MariaDB]), recovery,
AllServersUnavailable, execute() retries.

MySQLdb (a C driver) runs in a ``TpooledConnectionPool``, eventlet's default
pool class; PyMySQL runs green in a ``RawConnectionPool`` in a fresh,
monkey-patched interpreter (it cannot be patched inside the pytest process).
"""

from __future__ import annotations

import json
import time

import eventlet
import pytest

import db_pool
from tests.dbutil import mysql_connection_id, wait_for
from tests.proxy import Blackhole, Proxy, closed_port

MySQLdb = pytest.importorskip("MySQLdb")

SECRET = "My-Secret-91"


@pytest.fixture
def pools():
    made = []

    def make(*args, **kwargs):
        pool = db_pool.TpooledConnectionPool(MySQLdb, *args, **kwargs)
        made.append(pool)
        return pool

    try:
        yield make
    finally:
        for pool in made:
            pool.close()


@pytest.fixture
def mysql_address(mysql_kwargs):
    return mysql_kwargs.get("host", "127.0.0.1"), int(mysql_kwargs.get("port", 3306))


@pytest.fixture
def base(mysql_kwargs):
    """Connect keywords without host/port (the server list gives those)."""
    kwargs = dict(mysql_kwargs)
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    return kwargs


@pytest.fixture
def proxies(mysql_address):
    made = []

    def make():
        proxy = Proxy(*mysql_address)
        proxy.start()
        made.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in made:
            proxy.stop()


def select(conn, sql="SELECT 1", params=None):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchone()[0]
    finally:
        cur.close()


def addr(proxy):
    return "127.0.0.1:%d" % proxy.port


def test_round_robin_spread_seen_by_the_server(pools, base, proxies, mysql_admin):
    one, two = proxies(), proxies()
    pool = pools(max_size=8, servers=[addr(one), addr(two)], **base)
    held = [pool.get() for _ in range(8)]
    ids = [mysql_connection_id(c) for c in held]
    assert mysql_admin.count(ids) == 8
    assert (one.connection_count, two.connection_count) == (4, 4)
    # Cut one proxy: the server loses exactly the four sessions behind it.
    one.cut()
    mysql_admin.wait_count(ids, 4)
    for c in held:
        pool.put(c)


def test_two_proxies_share_connect_after_connect(pools, base, proxies):
    one, two = proxies(), proxies()
    pool = pools(max_size=2, max_idle=0, servers=[addr(one), addr(two)], **base)
    for _ in range(12):
        with pool.connection() as conn:
            assert select(conn) == 1
    assert (one.accepted_count, two.accepted_count) == (6, 6)


@pytest.mark.parametrize("bad", ["black hole", "closed port"])
def test_failover_serves_every_request_within_its_deadline(
    pools, base, mysql_address, bad
):
    host, port = mysql_address
    hole = None
    if bad == "closed port":
        bad_addr = "127.0.0.1:%d" % closed_port()
    else:
        hole = Blackhole()
        hole.start()
        bad_addr = "127.0.0.1:%d" % hole.port
    deadline = 4.0
    try:
        pool = pools(
            max_size=5,
            max_idle=0,  # every checkout connects
            connect_timeout=1,
            pool_timeout=deadline,
            servers=[bad_addr, {"host": host, "port": port}],
            reconnect_delay=(0.05, 0.2),
            **base,
        )
        times = []
        errors = []

        def request(i):
            start = time.monotonic()
            try:
                with pool.connection() as conn:
                    assert select(conn, "SELECT %s", (i,)) == i
            except Exception as exc:  # recorded: the test fails on any
                errors.append(exc)
            times.append(time.monotonic() - start)

        threads = [eventlet.spawn(request, i) for i in range(40)]
        for gt in threads:
            gt.wait()
        assert errors == []
        assert len(times) == 40 and max(times) < deadline
        stats = pool.stats()["servers"]
        assert stats[bad_addr]["failures"] >= 1 and stats[bad_addr]["connects"] == 0
        assert stats["%s:%d" % (host, port)]["connects"] == 40
    finally:
        if hole is not None:
            hole.stop()


def test_recovery_after_the_proxy_comes_back(pools, base, proxies):
    flaky, steady = proxies(), proxies()
    flaky.down()
    pool = pools(
        max_size=2,
        max_idle=0,
        servers=[addr(flaky), addr(steady)],
        reconnect_delay=(0.05, 0.1),
        **base,
    )
    for _ in range(4):
        with pool.connection() as conn:
            select(conn)
    assert flaky.accepted_count == 0 and steady.accepted_count == 4
    flaky.pass_traffic()

    def used_again():
        with pool.connection() as conn:
            select(conn)
        # Used by the pool again (not merely probed in the background).
        return pool.stats()["servers"][addr(flaky)]["connects"] > 0

    wait_for(used_again, timeout=5, message="the proxy that came back was never used")
    assert pool.stats()["servers"][addr(flaky)]["down"] is False


def test_all_servers_unavailable_text(pools, base):
    dead = closed_port()
    with Blackhole() as hole:
        pool = pools(
            name="billing",
            connect_timeout=1,
            servers=["127.0.0.1:%d" % dead, "127.0.0.1:%d" % hole.port],
            **dict(base, password=SECRET),
        )
        start = time.monotonic()
        with pytest.raises(db_pool.AllServersUnavailable) as info:
            pool.get()
        assert time.monotonic() - start < 3.0
    text = str(info.value)
    assert "'billing'" in text and "all 2 server(s) unavailable" in text
    assert "127.0.0.1:%d: OperationalError" % dead in text
    assert "127.0.0.1:%d: ConnectTimeout" % hole.port in text
    assert SECRET not in text and SECRET not in repr(info.value.errors)


def test_execute_retries_counted_exactly(
    pools, base, mysql_address, proxies, mysql_admin
):
    host, port = mysql_address
    proxy = proxies()
    pool = pools(
        max_size=3,
        max_retries=2,
        servers=[{"host": host, "port": port}, addr(proxy)],
        **base,
    )
    calls = []

    def kill_then_query(conn, kills):
        session = mysql_connection_id(conn)
        calls.append(session)
        if len(calls) <= kills:
            assert mysql_admin.kill([session]) == [session]
        return select(conn, "SELECT 40 + %s", (2,))

    assert pool.execute(kill_then_query, 2) == 42
    assert len(calls) == 3 and len(set(calls)) == 3
    assert pool.stats()["discarded_dead"] == 2
    per_server = pool.stats()["servers"]
    assert sum(s["disconnects"] for s in per_server.values()) == 2

    calls.clear()
    with pytest.raises(db_pool.MaximumRetryException) as info:
        pool.execute(kill_then_query, 99)
    assert len(calls) == 3 and info.value.attempts == 3
    assert isinstance(info.value.__cause__, MySQLdb.OperationalError)
    assert pool.stats()["checked_out"] == 0


PYMYSQL_CHILD = """
import eventlet
eventlet.monkey_patch()
import json, sys, time
import pymysql
import db_pool
from tests.proxy import Blackhole

kwargs = %(kwargs)r
host, port = kwargs.pop("host"), kwargs.pop("port")
out = {}
with Blackhole() as hole:
    pool = db_pool.RawConnectionPool(
        pymysql, max_size=5, max_idle=0, connect_timeout=1, pool_timeout=%(deadline)r,
        servers=["127.0.0.1:%%d" %% hole.port, {"host": host, "port": port}],
        reconnect_delay=(0.05, 0.2), **kwargs)
    times, errors, values = [], [], []

    def request(i):
        start = time.monotonic()
        try:
            with pool.connection() as conn:
                cur = conn.cursor()
                cur.execute("SELECT %%s", (i,))
                values.append(cur.fetchone()[0] == i)
        except Exception as exc:
            errors.append(repr(exc))
        times.append(time.monotonic() - start)

    threads = [eventlet.spawn(request, i) for i in range(40)]
    for gt in threads:
        gt.wait()
    stats = pool.stats()["servers"]
    pool.close()
out = {"errors": errors, "max_time": max(times), "ok": sum(values), "stats": stats,
       "hole": "127.0.0.1:%%d" %% hole.port}
print(json.dumps(out))
"""


def test_pymysql_green_failover_within_deadline(mysql_kwargs, run_python):
    pytest.importorskip("pymysql")
    deadline = 4.0
    code = PYMYSQL_CHILD % {"kwargs": dict(mysql_kwargs), "deadline": deadline}
    result = run_python(code, timeout=60)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["ok"] == 40
    assert out["max_time"] < deadline, out
    hole = out["stats"][out["hole"]]
    assert hole["failures"] >= 1 and hole["connects"] == 0
