"""Server lists against a real PostgreSQL: spread, failover within the
caller's deadline, recovery, AllServersUnavailable, execute() retries and the
primary + replicas pattern.

"Servers" are loopback addresses of the one local PostgreSQL: the server
itself and :class:`tests.proxy.Proxy` instances in front of it (switched off
and on to play outages), plus a closed port and a black hole.  psycopg2 is
made green for these tests (and restored afterwards), so the pools are
``RawConnectionPool``.
"""

from __future__ import annotations

import os
import socket
import time

import eventlet
import pytest

import db_pool
from tests.dbutil import pg_backend_pid, wait_for
from tests.proxy import Blackhole, Proxy, closed_port

psycopg2 = pytest.importorskip("psycopg2")
psycopg2_extensions = pytest.importorskip("psycopg2.extensions")

SECRET = "Pg-Secret-77"


@pytest.fixture
def green_psycopg2():
    saved = psycopg2_extensions.get_wait_callback()
    db_pool.make_psycopg_green()
    try:
        yield psycopg2
    finally:
        psycopg2_extensions.set_wait_callback(saved)


@pytest.fixture
def pools():
    made = []

    def make(*args, **kwargs):
        pool = db_pool.RawConnectionPool(psycopg2, *args, **kwargs)
        made.append(pool)
        return pool

    try:
        yield make
    finally:
        for pool in made:
            pool.close()


@pytest.fixture
def base(pg_kwargs, unique_name):
    """Connect keywords without host/port (the server list gives those)."""
    kwargs = dict(pg_kwargs, application_name=unique_name)
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    return kwargs


@pytest.fixture
def pg_address(pg_kwargs):
    return pg_kwargs.get("host", "127.0.0.1"), int(pg_kwargs.get("port", 5432))


@pytest.fixture
def proxies(pg_address):
    made = []

    def make():
        proxy = Proxy(*pg_address)
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


def local_port(conn):
    """The local TCP port of a psycopg2 connection's socket."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        return sock.getsockname()[1]
    finally:
        sock.close()


def addr(proxy):
    return "127.0.0.1:%d" % proxy.port


def test_round_robin_spread_seen_by_the_server(
    green_psycopg2, pools, base, pg_address, proxies, pg_admin, unique_name
):
    host, port = pg_address
    proxy = proxies()
    # One server under two addresses: directly, and through the proxy.
    pool = pools(
        max_size=10,
        servers=[{"host": host, "port": port}, addr(proxy)],
        **base,
    )
    held = [pool.get() for _ in range(10)]
    assert all(select(c) == 1 for c in held)
    pg_admin.wait_count(unique_name, 10)
    assert proxy.connection_count == 5 and proxy.accepted_count == 5
    # Server side: a session whose client port is our own socket's port came
    # directly; the others came through the proxy.
    client_ports = dict(
        pg_admin.query(
            "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = %s",
            (unique_name,),
        )
    )
    direct = sum(1 for c in held if client_ports[pg_backend_pid(c)] == local_port(c))
    assert direct == 5
    stats = pool.stats()["servers"]
    assert {k: v["open"] for k, v in stats.items()} == {
        "%s:%d" % (host, port): 5,
        addr(proxy): 5,
    }
    for c in held:
        pool.put(c)


def test_two_proxies_share_connect_after_connect(green_psycopg2, pools, base, proxies):
    one, two = proxies(), proxies()
    pool = pools(max_size=2, max_idle=0, servers=[addr(one), addr(two)], **base)
    for _ in range(20):
        with pool.connection() as conn:
            assert select(conn) == 1
    assert (one.accepted_count, two.accepted_count) == (10, 10)


@pytest.mark.parametrize("bad", ["closed port", "black hole"])
def test_failover_serves_every_request_within_its_deadline(
    green_psycopg2, pools, base, pg_address, bad
):
    host, port = pg_address
    hole = None
    if bad == "closed port":
        bad_addr = "127.0.0.1:%d" % closed_port()
    else:
        hole = Blackhole()
        hole.start()
        bad_addr = "127.0.0.1:%d" % hole.port
    deadline = 3.0
    try:
        pool = pools(
            max_size=5,
            max_idle=0,  # every checkout connects: the server list is used each time
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

        threads = [eventlet.spawn(request, i) for i in range(60)]
        for gt in threads:
            gt.wait()
        assert errors == []
        assert len(times) == 60 and max(times) < deadline
        stats = pool.stats()["servers"]
        assert stats[bad_addr]["failures"] >= 1
        assert stats[bad_addr]["connects"] == 0
        assert stats["%s:%d" % (host, port)]["connects"] == 60
    finally:
        if hole is not None:
            hole.stop()


def test_recovery_after_the_proxy_comes_back(green_psycopg2, pools, base, proxies):
    flaky, steady = proxies(), proxies()
    flaky.down()
    pool = pools(
        max_size=2,
        max_idle=0,
        servers=[addr(flaky), addr(steady)],
        reconnect_delay=(0.05, 0.1),
        **base,
    )
    for _ in range(6):
        with pool.connection() as conn:
            assert select(conn) == 1
    assert flaky.accepted_count == 0 and steady.accepted_count == 6
    assert pool.stats()["servers"][addr(flaky)]["down"] is True

    flaky.pass_traffic()

    def used_again():
        with pool.connection() as conn:
            select(conn)
        # Used by the pool again (not merely probed in the background).
        return pool.stats()["servers"][addr(flaky)]["connects"] > 0

    wait_for(used_again, timeout=5, message="the proxy that came back was never used")
    stats = pool.stats()["servers"][addr(flaky)]
    assert stats["down"] is False and stats["connects"] >= 1
    before = flaky.accepted_count, steady.accepted_count
    for _ in range(10):
        with pool.connection() as conn:
            select(conn)
    # Back in the rotation: five each.
    assert (flaky.accepted_count - before[0], steady.accepted_count - before[1]) == (
        5,
        5,
    )


def test_all_servers_unavailable_text(green_psycopg2, pools, base):
    dead = closed_port()
    with Blackhole() as hole:
        pool = pools(
            name="reports",
            connect_timeout=0.5,
            servers=["127.0.0.1:%d" % dead, {"host": "127.0.0.1", "port": hole.port}],
            password=SECRET,
            **base,
        )
        start = time.monotonic()
        with pytest.raises(db_pool.AllServersUnavailable) as info:
            pool.get()
        assert time.monotonic() - start < 2.0
    text = str(info.value)
    assert "'reports'" in text and "all 2 server(s) unavailable" in text
    assert "127.0.0.1:%d: OperationalError" % dead in text
    assert "Connection refused" in text
    assert "127.0.0.1:%d: ConnectTimeout" % hole.port in text
    assert SECRET not in text and SECRET not in repr(info.value)
    assert SECRET not in repr(pool.stats())
    labels = sorted(label for label, _ in info.value.errors)
    assert labels == sorted(["127.0.0.1:%d" % dead, "127.0.0.1:%d" % hole.port])


def test_execute_retries_counted_exactly(
    green_psycopg2, pools, base, pg_address, proxies, pg_admin, unique_name
):
    host, port = pg_address
    proxy = proxies()
    direct = "127.0.0.1:%d" % port
    pool = pools(
        max_size=3,
        max_retries=2,
        servers=[{"host": host, "port": port}, addr(proxy)],
        **base,
    )
    calls = []

    def kill_then_query(conn, kills):
        pid = pg_backend_pid(conn)
        calls.append((pid, "127.0.0.1:%d" % conn.info.port))
        if len(calls) <= kills:
            # Someone kills our session while we work.
            assert pg_admin.terminate(unique_name, pids=[pid]) == [pid]
        return select(conn, "SELECT 40 + %s", (2,))

    assert pool.execute(kill_then_query, 2) == 42
    assert len(calls) == 3
    assert len({pid for pid, _ in calls}) == 3  # a new session every time
    labels = [label for _, label in calls]
    assert labels[0] != labels[1] and labels[1] != labels[2]  # and another server
    assert set(labels) == {direct, addr(proxy)}
    assert pool.stats()["discarded_dead"] == 2

    calls.clear()
    with pytest.raises(db_pool.MaximumRetryException) as info:
        pool.execute(kill_then_query, 99)
    assert len(calls) == 3 and info.value.attempts == 3
    assert isinstance(info.value.__cause__, psycopg2.OperationalError)
    assert pool.stats()["checked_out"] == 0
    # Work that fails for another reason is not retried.
    calls.clear()
    with pytest.raises(psycopg2.errors.UndefinedTable):
        pool.execute(
            lambda conn: (calls.append(1), select(conn, "SELECT * FROM dbp_nowhere"))
        )
    assert calls == [1]


def test_primary_and_replicas(
    green_psycopg2, pools, base, pg_address, proxies, pg_admin, unique_name
):
    """One pool for the primary, a server-list pool for the replicas."""
    host, port = pg_address
    replica_a, replica_b = proxies(), proxies()
    primary = pools(name="primary", max_size=2, host=host, port=port, **base)
    replicas = pools(
        name="replicas",
        max_size=4,
        servers=[addr(replica_a), addr(replica_b)],
        max_retries=1,  # reads are idempotent: retry them on the other replica
        connect_timeout=1,
        reconnect_delay=(0.05, 0.2),
        **base,
    )
    table = unique_name
    with primary.connection() as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE %s (n integer)" % table)
        conn.commit()
    try:

        def write(n):
            with primary.connection() as conn:
                conn.cursor().execute("INSERT INTO %s VALUES (%%s)" % table, (n,))
                conn.commit()

        def read(conn):
            return select(conn, "SELECT count(*) FROM %s" % table)

        for n in range(5):
            write(n)
        # Reads spread over both replicas.
        held = [replicas.get() for _ in range(4)]
        assert [read(c) for c in held] == [5] * 4
        for c in held:
            replicas.put(c)
        assert replica_a.accepted_count == 2 and replica_b.accepted_count == 2

        # One replica fails: its connections are cut and it refuses new ones.
        # Reads go on (retried once on the other replica), writes never notice.
        replica_a.down()
        results = []

        def reader():
            results.append(replicas.execute(read))

        threads = [eventlet.spawn(reader) for _ in range(20)]
        write(5)
        for gt in threads:
            gt.wait()
        assert len(results) == 20 and set(results) <= {5, 6}
        assert replicas.execute(read) == 6
        stats = replicas.stats()["servers"]
        assert stats[addr(replica_a)]["open"] == 0
        assert stats[addr(replica_b)]["open"] >= 1
        assert primary.stats()["discarded_dead"] == 0
    finally:
        with primary.connection() as conn:
            conn.cursor().execute("DROP TABLE IF EXISTS %s" % table)
            conn.commit()
