"""Server lists with failover (``servers=``) and ``execute()`` retries, with a
fake driver whose "servers" are told apart by the host/port keywords."""

from __future__ import annotations

import collections
import pickle
import sqlite3
import time

import eventlet
import eventlet.patcher
import pytest

import db_pool
from db_pool.servers import parse_servers
from tests.dbutil import wait_for
from tests.fakedb import OperationalError, ProgrammingError
from tests.unit._fakes import raw_of

_threading = eventlet.patcher.original("threading")

SECRET = "s3cret-Pa55"


class Cluster:
    """Per-address behaviour of a :class:`FakeDB`: up, down (refused) or hung.

    Addresses are ``"host:port"`` (or ``"host"``), as the pool labels them.
    ``attempts`` counts connects per address.  A hung connect waits (without
    blocking the hub) until :meth:`release` or the caller's timeout.
    """

    def __init__(self, db):
        self.db = db
        self.state = {}
        self.attempts = collections.Counter()
        self.in_flight = collections.Counter()
        self.max_in_flight = collections.Counter()
        self._released = _threading.Event()
        db.on_connect = self._on_connect

    @staticmethod
    def address(kwargs):
        host = kwargs.get("host")
        port = kwargs.get("port")
        return host if port is None else "%s:%s" % (host, port)

    def _on_connect(self, args, kwargs):
        addr = self.address(kwargs)
        self.attempts[addr] += 1
        state = self.state.get(addr, "up")
        if state == "down":
            raise OperationalError(
                'connection to server at "%s" failed: Connection refused '
                "(dsn: host=%s password=%s)"
                % (addr, kwargs.get("host"), kwargs.get("password"))
            )
        if state == "hang":
            self.in_flight[addr] += 1
            self.max_in_flight[addr] = max(
                self.max_in_flight[addr], self.in_flight[addr]
            )
            try:
                if _threading.current_thread() is _threading.main_thread():
                    while not self._released.is_set():
                        eventlet.sleep(0.005)
                else:
                    self._released.wait(10)
            finally:
                self.in_flight[addr] -= 1
            raise OperationalError("server at %s never answered" % addr)

    def release(self):
        self._released.set()


@pytest.fixture
def cluster(db):
    c = Cluster(db)
    try:
        yield c
    finally:
        c.release()


def server_of(wrapper):
    """The address the lent connection was opened on."""
    return Cluster.address(raw_of(wrapper).kwargs)


def server_of_raw(conn):
    return Cluster.address(conn.kwargs)


def disconnect(exc):
    # The fake driver is unknown to db_pool: say which errors mean "dead".
    return isinstance(exc, OperationalError)


POOLS = [db_pool.RawConnectionPool, db_pool.TpooledConnectionPool]


# -- parsing ---------------------------------------------------------------------------


def test_parse_strings_and_dicts():
    parsed = parse_servers(
        [
            "db1",
            "db2:5433",
            "[::1]:6432",
            "::1",
            {"host": "db3", "port": "7000", "dbname": "x"},
        ]
    )
    assert parsed == [
        ("db1", {"host": "db1"}),
        ("db2:5433", {"host": "db2", "port": 5433}),
        ("[::1]:6432", {"host": "::1", "port": 6432}),
        ("[::1]", {"host": "::1"}),
        ("db3:7000/x", {"host": "db3", "port": 7000, "dbname": "x"}),
    ]


def test_parse_duplicate_labels_made_unique():
    parsed = parse_servers([{"host": "h", "user": "a"}, {"host": "h", "user": "b"}])
    assert [label for label, _ in parsed] == ["h#1", "h#2"]


def test_parse_sqlite_takes_file_names():
    assert parse_servers(["/tmp/a.db", "b.db"], "sqlite3") == [
        ("/tmp/a.db", {"database": "/tmp/a.db"}),
        ("b.db", {"database": "b.db"}),
    ]


@pytest.mark.parametrize(
    "servers, error, text",
    [
        ([], db_pool.ConfigError, "at least one"),
        ("db1:5432", TypeError, "list"),
        ({"db1"}, TypeError, "list"),
        ([42], TypeError, "servers[0]"),
        (["db1", "db2:port"], db_pool.ConfigError, "servers[1]"),
        (["db1:70000"], db_pool.ConfigError, "range"),
        (["db1:"], db_pool.ConfigError, "servers[0]"),
        ([{}], db_pool.ConfigError, "empty"),
        ([{"host": "h", "port": 1.5}], TypeError, "port"),
        ([{"host": "h", "port": True}], TypeError, "port"),
    ],
)
def test_bad_server_lists_rejected(db, servers, error, text):
    with pytest.raises(error) as info:
        db_pool.RawConnectionPool(db, servers=servers)
    assert text in str(info.value)


def test_bad_entry_error_hides_password(db):
    with pytest.raises(db_pool.ConfigError) as info:
        db_pool.RawConnectionPool(
            db, servers=[{"host": "h", "port": "x", "password": SECRET}]
        )
    assert SECRET not in str(info.value)


# -- spreading -------------------------------------------------------------------------


@pytest.mark.parametrize("pool_cls", POOLS, ids=["raw", "tpooled"])
def test_round_robin_spreads_new_connections_evenly(pool_cls, db, cluster, make_pool):
    servers = ["a:1", "b:2", "c:3"]
    # max_idle=0: every connection is closed on return, so every get() connects.
    pool = make_pool(pool_cls, db, max_size=3, max_idle=0, servers=servers)
    used = []
    for _ in range(30):
        conn = pool.get()
        used.append(server_of(conn))
        pool.put(conn)
    assert collections.Counter(used) == {"a:1": 10, "b:2": 10, "c:3": 10}
    # Round-robin: each run of three consecutive connects hits every server.
    for i in range(0, 30, 3):
        assert sorted(used[i : i + 3]) == sorted(servers)
    stats = pool.stats()["servers"]
    assert {label: s["connects"] for label, s in stats.items()} == {
        "a:1": 10,
        "b:2": 10,
        "c:3": 10,
    }
    assert all(s["open"] == 0 and not s["down"] for s in stats.values())


def test_concurrent_connects_spread(db, cluster, make_pool):
    db.connect_delay = 0.01
    pool = make_pool(
        db_pool.RawConnectionPool, db, max_size=12, servers=["a:1", "b:2", "c:3"]
    )
    conns = [None] * 12

    def take(i):
        conns[i] = pool.get()

    pile = [eventlet.spawn(take, i) for i in range(12)]
    for gt in pile:
        gt.wait()
    assert collections.Counter(server_of(c) for c in conns) == {
        "a:1": 4,
        "b:2": 4,
        "c:3": 4,
    }
    assert {k: s["open"] for k, s in pool.stats()["servers"].items()} == {
        "a:1": 4,
        "b:2": 4,
        "c:3": 4,
    }
    for c in conns:
        pool.put(c)


def test_order_is_shuffled_per_pool(db, cluster, make_pool):
    firsts = set()
    for _ in range(40):
        pool = make_pool(db_pool.RawConnectionPool, db, servers=["a:1", "b:2", "c:3"])
        conn = pool.get()
        firsts.add(server_of(conn))
        pool.put(conn)
    # 40 pools all starting on the same server: chance 3 * (1/3)**40.
    assert len(firsts) >= 2


def test_server_keywords_override_pool_keywords(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        servers=[{"host": "a", "port": 1, "user": "replica"}],
        host="ignored",
        port=9,
        user="app",
        dbname="shop",
    )
    conn = pool.get()
    assert raw_of(conn).kwargs == {
        "host": "a",
        "port": 1,
        "user": "replica",
        "dbname": "shop",
    }
    pool.put(conn)


def test_sqlite_file_list(tmp_path, make_pool):
    paths = [str(tmp_path / "one.db"), str(tmp_path / "two.db")]
    for path in paths:
        c = sqlite3.connect(path)
        c.execute("CREATE TABLE whoami (name TEXT)")
        c.execute("INSERT INTO whoami VALUES (?)", (path,))
        c.commit()
        c.close()
    pool = make_pool(
        db_pool.RawConnectionPool, sqlite3, max_size=2, max_idle=0, servers=paths
    )
    seen = []
    for _ in range(4):
        with pool.connection() as conn:
            seen.append(conn.execute("SELECT name FROM whoami").fetchone()[0])
    assert collections.Counter(seen) == {paths[0]: 2, paths[1]: 2}


# -- failover --------------------------------------------------------------------------


@pytest.mark.parametrize("pool_cls", POOLS, ids=["raw", "tpooled"])
def test_down_server_is_skipped(pool_cls, db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        pool_cls,
        db,
        max_size=2,
        max_idle=0,
        servers=["a:1", "b:2"],
        reconnect_delay=(5.0, 10.0),
    )
    for _ in range(10):
        conn = pool.get()
        assert server_of(conn) == "b:2"
        pool.put(conn)
    # Tried once, then skipped for its backoff (at least 2.5 s here).
    assert cluster.attempts["a:1"] == 1
    stats = pool.stats()["servers"]
    assert stats["a:1"]["failures"] == 1
    assert stats["a:1"]["down"] is True
    assert 2.0 < stats["a:1"]["retry_in"] <= 5.0
    assert stats["a:1"]["down_until"] > time.time()
    assert "Connection refused" in stats["a:1"]["last_error"]
    assert SECRET not in repr(stats)
    assert stats["b:2"]["connects"] == 10 and stats["b:2"]["down"] is False
    assert pool.stats()["connect_failures"] == 0  # every get() was served


def test_server_that_comes_back_is_used_again(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=2,
        max_idle=0,
        servers=["a:1", "b:2"],
        reconnect_delay=(0.02, 0.05),
    )
    for _ in range(4):
        pool.put(pool.get())
    assert pool.stats()["servers"]["a:1"]["down"] is True
    cluster.state["a:1"] = "up"
    deadline = time.monotonic() + 5
    used = []
    while "a:1" not in used:
        assert time.monotonic() < deadline, "a:1 never used again: %r" % (used,)
        conn = pool.get()
        used.append(server_of(conn))
        pool.put(conn)
        eventlet.sleep(0.01)
    stats = pool.stats()["servers"]["a:1"]
    assert stats["down"] is False and stats["consecutive_failures"] == 0
    assert stats["retry_in"] == 0.0 and stats["down_until"] is None
    # Back in the rotation: it now takes every other new connection.
    more = []
    for _ in range(6):
        conn = pool.get()
        more.append(server_of(conn))
        pool.put(conn)
    assert collections.Counter(more) == {"a:1": 3, "b:2": 3}


def test_down_server_is_probed_in_the_background(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=10,
        max_idle=0,
        connect_timeout=0.3,
        servers=["a:1", "b:2"],
        reconnect_delay=(0.02, 0.02),
    )
    held = [pool.get(), pool.get()]  # the second starts on the other server
    for conn in held:
        pool.put(conn)
    assert cluster.attempts["a:1"] == 1
    # While a:1 is down, and even while its probe hangs, no caller waits
    # for it: every checkout goes straight to b:2.
    cluster.state["a:1"] = "hang"
    wait_for(lambda: pool.stats()["servers"]["a:1"]["probes"] >= 3, timeout=5)
    for _ in range(10):
        start = time.monotonic()
        conn = pool.get()
        assert time.monotonic() - start < 0.1
        assert server_of(conn) == "b:2"
        pool.put(conn)
    stats = pool.stats()["servers"]["a:1"]
    assert stats["down"] and stats["open"] == 0 and stats["connects"] == 0
    assert stats["failures"] >= 2 and "ConnectTimeout" in stats["last_error"]
    # The probe's connections were closed at once.
    cluster.state["a:1"] = "up"
    wait_for(lambda: not pool.stats()["servers"]["a:1"]["down"], timeout=5)
    assert all(c.closed for c in db.connections if server_of_raw(c) == "a:1")
    used = []
    for _ in range(4):
        conn = pool.get()
        used.append(server_of(conn))
        pool.put(conn)
    assert collections.Counter(used) == {"a:1": 2, "b:2": 2}


def test_one_probe_at_a_time_per_server(db, cluster, make_pool):
    # a:1 hangs (its probes take the whole connect_timeout); b:2 refuses at
    # once, so its quick probes keep the prober busy meanwhile.
    cluster.state["a:1"] = "hang"
    cluster.state["b:2"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=2,
        connect_timeout=0.2,
        servers=["a:1", "b:2"],
        reconnect_delay=(0.01, 0.01),
    )
    with pytest.raises(db_pool.AllServersUnavailable):
        pool.get()
    wait_for(
        lambda: cluster.attempts["a:1"] >= 3 and cluster.attempts["b:2"] >= 10,
        timeout=5,
    )
    assert cluster.max_in_flight["a:1"] == 1


def test_probes_stop_when_the_pool_closes(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool, db, servers=["a:1"], reconnect_delay=(0.01, 0.01)
    )
    with pytest.raises(db_pool.AllServersUnavailable):
        pool.get()
    wait_for(lambda: cluster.attempts["a:1"] >= 3, timeout=5)
    pool.close()
    eventlet.sleep(0.05)
    attempts = cluster.attempts["a:1"]
    eventlet.sleep(0.1)
    assert cluster.attempts["a:1"] == attempts


def test_probes_do_not_keep_a_dropped_pool_alive(db, cluster):
    import gc
    import weakref

    cluster.state["a:1"] = "down"
    pool = db_pool.RawConnectionPool(db, servers=["a:1"], reconnect_delay=(0.01, 0.01))
    with pytest.raises(db_pool.AllServersUnavailable) as info:
        pool.get()
    del info
    ref = weakref.ref(pool)
    del pool
    for _ in range(5):
        eventlet.sleep(0.02)
        gc.collect()
    assert ref() is None
    attempts = cluster.attempts["a:1"]
    eventlet.sleep(0.1)
    assert cluster.attempts["a:1"] == attempts


def test_deadline_is_shared_between_servers(db, cluster, make_pool):
    # A hung server and a good one; connect_timeout alone would let the hung
    # one take the whole deadline.
    cluster.state["a:1"] = "hang"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=4,
        connect_timeout=10,
        pool_timeout=1.0,
        servers=["a:1", "b:2"],
    )
    results = []

    def take():
        start = time.monotonic()
        conn = pool.get()
        results.append((server_of(conn), time.monotonic() - start))

    threads = [eventlet.spawn(take) for _ in range(4)]
    for gt in threads:
        gt.wait()
    assert [server for server, _ in results] == ["b:2"] * 4
    assert max(elapsed for _, elapsed in results) < 0.9
    assert cluster.attempts["a:1"] >= 1  # half of them started on a:1
    stats = pool.stats()["servers"]["a:1"]
    assert stats["down"] and "ConnectTimeout" in stats["last_error"]


def test_connect_timeout_bounds_each_attempt(db, cluster, make_pool):
    cluster.state["a:1"] = "hang"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=2,
        connect_timeout=0.2,
        servers=["a:1", "b:2"],
    )
    start = time.monotonic()
    for _ in range(2):
        assert server_of(pool.get()) == "b:2"
    assert time.monotonic() - start < 1.0


def test_deadline_passing_raises_pool_timeout(db, cluster, make_pool):
    cluster.state["a:1"] = cluster.state["b:2"] = "hang"
    pool = make_pool(
        db_pool.RawConnectionPool, db, servers=["a:1", "b:2"], connect_timeout=5
    )
    start = time.monotonic()
    with pytest.raises(db_pool.PoolTimeout):
        pool.get(timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert pool.current_size == 0


# -- all servers down ------------------------------------------------------------------


def test_all_servers_unavailable_names_every_server_without_secrets(
    db, cluster, make_pool
):
    cluster.state["a:1"] = cluster.state["b:2"] = "down"
    events = []
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        name="orders",
        servers=["a:1", {"host": "b", "port": 2, "password": SECRET + "-b"}],
        password=SECRET,
        listeners=[{"connection_failed": events.append}],
        reconnect_delay=(5.0, 10.0),
    )
    with pytest.raises(db_pool.AllServersUnavailable) as info:
        pool.get()
    exc = info.value
    text = str(exc)
    assert isinstance(exc, db_pool.PoolError)
    assert "'orders'" in text and "2 server(s)" in text
    assert "a:1: OperationalError" in text and "b:2: OperationalError" in text
    assert text.count("Connection refused") == 2
    assert SECRET not in text and SECRET not in repr(exc)
    assert [label for label, _ in exc.errors] == ["a:1", "b:2"] or sorted(
        label for label, _ in exc.errors
    ) == ["a:1", "b:2"]
    assert exc.__cause__ is None and exc.__suppress_context__
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is db_pool.AllServersUnavailable and clone.errors == exc.errors
    # One event per failed server, then one for the checkout that failed.
    assert [e["reason"] for e in events[:2]] in (
        ["server a:1", "server b:2"],
        ["server b:2", "server a:1"],
    )
    assert events[2]["reason"] is None and events[2]["error"] is exc
    assert len(events) == 3
    assert pool.current_size == 0

    # Both are in their backoff now: the next caller is told at once,
    # without a connect.
    attempts = sum(cluster.attempts.values())
    start = time.monotonic()
    with pytest.raises(db_pool.AllServersUnavailable) as info:
        pool.get()
    assert time.monotonic() - start < 0.1
    assert sum(cluster.attempts.values()) == attempts
    text = str(info.value)
    assert "a:1: down, next probe in" in text and "last error: OperationalError" in text
    assert SECRET not in text
    stats = pool.stats()
    assert stats["connect_failures"] == 2
    assert stats["servers"]["a:1"]["failures"] == 1
    assert stats["servers"]["b:2"]["failures"] == 1


def test_all_down_recovers_without_callers(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        servers=["a:1"],
        reconnect_delay=(0.02, 0.04),
    )
    with pytest.raises(db_pool.AllServersUnavailable):
        pool.get()
    assert cluster.attempts["a:1"] == 1
    # Probed in the background, over and over, with nobody asking.
    wait_for(lambda: cluster.attempts["a:1"] >= 4, timeout=5)
    cluster.state["a:1"] = "up"
    wait_for(lambda: not pool.stats()["servers"]["a:1"]["down"], timeout=5)
    conn = pool.get()
    assert server_of(conn) == "a:1"
    pool.put(conn)
    assert pool.stats()["servers"]["a:1"]["consecutive_failures"] == 0


# -- callable server lists -------------------------------------------------------------


def test_callable_list_is_read_again_when_all_fail(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    lists = [["a:1"], ["a:1", "c:3"]]
    calls = []

    def discover():
        calls.append(1)
        return lists[min(len(calls), len(lists)) - 1]

    pool = make_pool(db_pool.RawConnectionPool, db, servers=discover, max_size=2)
    assert len(calls) == 1
    conn = pool.get()  # a:1 fails, the list is read again, c:3 serves
    assert server_of(conn) == "c:3"
    assert len(calls) == 2
    stats = pool.stats()["servers"]
    assert set(stats) == {"a:1", "c:3"}
    assert stats["a:1"]["failures"] == 1  # kept across the re-read
    assert stats["c:3"]["open"] == 1
    pool.put(conn)


def test_callable_list_failure_is_reported(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    calls = []

    def discover():
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("registry unreachable (password=%s)" % SECRET)
        return ["a:1"]

    pool = make_pool(db_pool.RawConnectionPool, db, servers=discover)
    with pytest.raises(db_pool.AllServersUnavailable) as info:
        pool.get()
    text = str(info.value)
    assert "server list: RuntimeError: registry unreachable" in text
    assert SECRET not in text


# -- per-server bookkeeping ------------------------------------------------------------


def test_open_counts_follow_connections(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=4,
        servers=["a:1", "b:2"],
        is_disconnect=disconnect,
    )

    def open_counts():
        return {k: s["open"] for k, s in pool.stats()["servers"].items()}

    conns = [pool.get() for _ in range(4)]
    assert open_counts() == {"a:1": 2, "b:2": 2}
    for c in conns:
        pool.put(c)
    assert open_counts() == {"a:1": 2, "b:2": 2}
    # A connection that dies in use is discarded: one fewer on its server.
    with pytest.raises(OperationalError):
        with pool.connection() as conn:
            lost = server_of(conn)
            raw_of(conn).kill()
            conn.cursor()
    expected = {"a:1": 2, "b:2": 2}
    expected[lost] -= 1
    assert open_counts() == expected
    # eventlet's idiom: take the raw connection out of the pool for good.
    conn = pool.get()
    taken = server_of(conn)
    raw = pool._unwrap_connection(conn)
    pool.put(conn)
    expected[taken] -= 1
    assert open_counts() == expected
    assert not raw.closed
    raw.close()
    pool.clear()
    assert open_counts() == {"a:1": 0, "b:2": 0}
    assert db.open_count == 0


def test_stats_reset_keeps_state(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        servers=["a:1", "b:2"],
        reconnect_delay=(5.0, 10.0),
    )
    held = [pool.get(), pool.get()]  # the second starts on the other server
    first = pool.stats(reset=True)["servers"]
    assert first["a:1"]["failures"] == 1 and first["b:2"]["connects"] == 2
    after = pool.stats()["servers"]
    assert after["a:1"]["failures"] == 0 and after["b:2"]["connects"] == 0
    assert after["a:1"]["down"] is True and after["b:2"]["open"] == 2
    for conn in held:
        pool.put(conn)


def test_disconnects_counted_per_server(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool, db, servers=["a:1"], is_disconnect=disconnect
    )
    with pytest.raises(OperationalError):
        with pool.connection() as conn:
            raw_of(conn).kill()
            conn.cursor()
    stats = pool.stats()["servers"]["a:1"]
    assert stats["disconnects"] == 1 and stats["open"] == 0
    assert stats["down"] is False  # a lost session is not a lost server


# -- execute() -------------------------------------------------------------------------


def test_execute_returns_fn_result(db, cluster, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, db, servers=["a:1"])

    def fn(conn, x, y=0):
        cur = conn.cursor()
        cur.execute("SELECT ?", (x,))
        return cur.fetchone(), y

    assert pool.execute(fn, 5, y=7) == ((1,), 7)
    assert pool.stats()["checked_out"] == 0


def test_execute_retries_on_another_server(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=2,
        servers=["a:1", "b:2"],
        max_retries=3,
        is_disconnect=disconnect,
    )
    calls = []

    def fn(conn):
        calls.append((server_of(conn), raw_of(conn)))
        if len(calls) <= 2:
            raw_of(conn).kill()  # the session dies under fn
            conn.cursor()  # raises OperationalError
        return "ok"

    assert pool.execute(fn) == "ok"
    assert len(calls) == 3  # two failures, two retries, no more
    servers = [server for server, _ in calls]
    assert servers[0] != servers[1] and servers[1] != servers[2]
    assert len({id(raw) for _, raw in calls}) == 3  # a new connection each time
    assert pool.stats()["discarded_dead"] == 2
    assert sum(s["disconnects"] for s in pool.stats()["servers"].values()) == 2


def test_execute_prefers_idle_connection_of_another_server(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=4,
        servers=["a:1", "b:2"],
        max_retries=1,
        is_disconnect=disconnect,
    )
    conns = [pool.get() for _ in range(4)]
    for c in conns:
        pool.put(c)
    opened = db.connect_calls
    calls = []

    def fn(conn):
        calls.append(server_of(conn))
        if len(calls) == 1:
            raw_of(conn).kill()
            conn.cursor()
        return len(calls)

    assert pool.execute(fn) == 2
    assert calls[0] != calls[1]
    assert db.connect_calls == opened  # the retry reused an idle connection


@pytest.mark.parametrize("max_retries", [1, 3])
def test_execute_gives_up_after_max_retries(db, cluster, make_pool, max_retries):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        servers=["a:1", "b:2"],
        max_retries=max_retries,
        is_disconnect=disconnect,
    )
    errors = []

    def fn(conn):
        raw_of(conn).kill()
        try:
            conn.cursor()
        except OperationalError as exc:
            errors.append(exc)
            raise

    with pytest.raises(db_pool.MaximumRetryException) as info:
        pool.execute(fn)
    assert len(errors) == max_retries + 1
    assert info.value.attempts == max_retries + 1
    assert info.value.__cause__ is errors[-1]
    assert isinstance(info.value, db_pool.PoolError)
    assert pool.stats()["checked_out"] == 0
    assert pool.stats()["discarded_dead"] == max_retries + 1


def test_execute_does_not_retry_other_errors(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        servers=["a:1", "b:2"],
        max_retries=5,
        is_disconnect=disconnect,
    )
    calls = []

    def fn(conn):
        calls.append(1)
        raise ProgrammingError("syntax error")

    with pytest.raises(ProgrammingError):
        pool.execute(fn)
    assert len(calls) == 1
    assert pool.stats()["discarded_dead"] == 0
    assert pool.stats()["free"] == 1  # the connection went back, rolled back


def test_execute_without_retries_raises_the_driver_error(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool, db, servers=["a:1"], is_disconnect=disconnect
    )

    def fn(conn):
        raw_of(conn).kill()
        conn.cursor()

    with pytest.raises(OperationalError):
        pool.execute(fn)
    assert pool.stats()["discarded_dead"] == 1


def test_pool_without_servers_has_no_server_stats(db, make_pool):
    pool = make_pool(db_pool.RawConnectionPool, db)
    assert "servers" not in pool.stats()


def test_skipped_server_share_is_spread_evenly(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=3,
        max_idle=0,
        servers=["a:1", "b:2", "c:3"],
        reconnect_delay=(5.0, 10.0),
    )
    used = []
    for _ in range(21):
        conn = pool.get()
        used.append(server_of(conn))
        pool.put(conn)
    counts = collections.Counter(used)
    assert cluster.attempts["a:1"] == 1
    assert counts["b:2"] + counts["c:3"] == 21
    assert abs(counts["b:2"] - counts["c:3"]) <= 1
    # ...and they alternate, once a:1 is known to be down.
    assert all(x != y for x, y in zip(used[1:], used[2:]))


def test_backoff_grows_and_starts_again_after_a_recovery(db, cluster, make_pool):
    cluster.state["a:1"] = "down"
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_idle=0,
        servers=["a:1"],
        reconnect_delay=(0.02, 10.0),
    )

    def server_stats():
        return pool.stats()["servers"]["a:1"]

    with pytest.raises(db_pool.AllServersUnavailable):
        pool.get()
    # Five failures in a row (one caller, four probes): the next backoff is
    # 0.16 to 0.32 s.
    wait_for(lambda: server_stats()["consecutive_failures"] >= 5, timeout=5)
    assert server_stats()["retry_in"] > 0.1
    cluster.state["a:1"] = "up"
    wait_for(lambda: not server_stats()["down"], timeout=5)
    pool.put(pool.get())
    cluster.state["a:1"] = "down"
    with pytest.raises(db_pool.AllServersUnavailable):
        pool.get()
    assert server_stats()["consecutive_failures"] == 1
    assert 0 < server_stats()["retry_in"] <= 0.02


def test_execute_retry_avoids_the_server_that_lost_the_session(db, cluster, make_pool):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=4,
        servers=["a:1", "b:2"],
        max_retries=1,
        is_disconnect=disconnect,
    )
    calls = []
    held = []

    def fn(conn):
        calls.append(server_of(conn))
        if len(calls) == 1:
            # Another connection is opened meanwhile: round-robin alone
            # would now send the next new connection back to our server.
            held.append(pool.get())
            raw_of(conn).kill()
            conn.cursor()
        return "ok"

    assert pool.execute(fn) == "ok"
    assert calls[0] != calls[1]
    assert server_of(held[0]) != calls[0]
    pool.put(held[0])
