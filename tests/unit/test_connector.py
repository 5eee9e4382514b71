"""DatabaseConnector: one pool per (host, database), with the fake driver."""

from __future__ import annotations

import eventlet
import pytest

import db_pool
from db_pool.drivers import driver_for
from tests.fakedb import FakeDB, OperationalError
from tests.unit._fakes import raw_of

SECRET = "pw-Geheim-42"

CREDS = {
    "db1": {"user": "alice", "password": SECRET},
    "default": {"user": "app", "password": SECRET + "-d"},
}


@pytest.fixture
def connectors():
    made = []

    def make(*args, **kwargs):
        connector = db_pool.DatabaseConnector(*args, **kwargs)
        made.append(connector)
        return connector

    try:
        yield make
    finally:
        for connector in made:
            connector.close()


def test_one_pool_per_key_under_many_green_threads(db, connectors):
    db.connect_delay = 0.01
    connector = connectors(db, CREDS, db_pool.RawConnectionPool, min_size=2, max_size=3)
    keys = [("db1", "a"), ("db1", "b"), ("db2", "a")]
    got = []

    def ask(i):
        host, name = keys[i % 3]
        got.append(((host, name), connector.get(host, name)))

    threads = [eventlet.spawn(ask, i) for i in range(60)]
    for gt in threads:
        gt.wait()
    pools = connector.pools()
    assert set(pools) == set(keys)
    for key, pool in got:
        assert pool is pools[key]
    # Each pool fills up to min_size in the background, once.
    for pool in pools.values():
        for _ in range(200):
            if len(pool.free_items) >= 2:
                break
            eventlet.sleep(0.01)
        assert pool.current_size == 2 and pool.min_size == 2 and pool.max_size == 3
    assert db.connect_calls == 6


def test_credentials_and_keywords(db, connectors):
    connector = connectors(
        db, CREDS, db_pool.RawConnectionPool, connect_args={"port": 5}
    )
    for host, user in (("db1", "alice"), ("db2", "app")):
        pool = connector.get(host, "shop")
        conn = pool.get()
        kwargs = raw_of(conn).kwargs
        pool.put(conn)
        # Unknown drivers get database=; the host under host=.
        assert kwargs["host"] == host and kwargs["database"] == "shop"
        assert kwargs["user"] == user and kwargs["port"] == 5
        assert pool.name == "%s/shop" % host
    assert connector.credentials_for("db1") is CREDS["db1"]
    assert connector.credentials_for("elsewhere") is CREDS["default"]
    assert SECRET not in repr(connector)
    assert SECRET not in repr(connector.get("db1", "shop"))


def test_no_credentials_at_all(db, connectors):
    connector = connectors(db, {}, db_pool.RawConnectionPool)
    assert connector.credentials_for("x") is None
    pool = connector.get("x", "y")
    conn = pool.get()
    assert raw_of(conn).kwargs == {"host": "x", "database": "y"}
    pool.put(conn)


@pytest.mark.parametrize(
    "module_name, keyword",
    [
        ("psycopg2", "dbname"),
        ("pymysql", "database"),
        ("MySQLdb", "db"),
        ("sqlite3", "database"),
    ],
)
def test_database_keyword_per_driver(module_name, keyword, connectors):
    fake = FakeDB(name=module_name)
    assert driver_for(fake).dbname_keyword == keyword
    if module_name == "psycopg2":
        return  # a psycopg2 pool would warn about green threads; see realdb tests
    connector = connectors(fake, {}, db_pool.TpooledConnectionPool)
    pool = connector.get("h", "inventory")
    conn = pool.get()
    assert raw_of(conn).kwargs[keyword] == "inventory"
    pool.put(conn)


def test_dbname_keyword_override(db, connectors):
    connector = connectors(
        db,
        {},
        db_pool.RawConnectionPool,
        dbname_keyword="schema",
        host_keyword="server",
    )
    pool = connector.get("h", "s")
    conn = pool.get()
    assert raw_of(conn).kwargs == {"server": "h", "schema": "s"}
    pool.put(conn)


def test_positional_pool_arguments_as_in_eventlet(db, connectors):
    # eventlet passes extra positional arguments on: min_size, max_size, ...
    connector = connectors(db, {}, db_pool.RawConnectionPool, 1, 3, 7)
    pool = connector.get("h", "d")
    assert (pool.min_size, pool.max_size, pool.max_idle) == (1, 3, 7)
    for _ in range(200):
        if pool.current_size == 1:
            break
        eventlet.sleep(0.01)
    assert pool.current_size == 1


def test_shared_cap_per_host(db, connectors):
    connector = connectors(
        db, {}, db_pool.RawConnectionPool, max_size=4, max_per_host=5
    )
    first = connector.get("h", "a")
    assert first.max_size == 4
    held = [first.get() for _ in range(4)]
    for conn in held:
        first.put(conn)
    assert db.open_count == 4
    second = connector.get("h", "b")
    # 5 shared by two pools: 3 + 2; the first shrank, closing an idle one.
    assert (first.max_size, second.max_size) == (3, 2)
    assert first.current_size == 3 and db.open_count == 3
    third = connector.get("h", "c")
    assert [p.max_size for p in (first, second, third)] == [2, 2, 1]
    # Other hosts have their own cap.
    assert connector.get("other", "a").max_size == 4
    connector.get("h", "d")
    connector.get("h", "e")
    assert sum(p.max_size for (h, _), p in connector.pools().items() if h == "h") == 5
    with pytest.raises(db_pool.ConfigError) as info:
        connector.get("h", "f")
    assert "max_per_host=5" in str(info.value)
    assert ("h", "f") not in connector.pools()


def test_shared_cap_holds_under_load(db, connectors):
    db.connect_delay = 0.002
    connector = connectors(
        db, {}, db_pool.RawConnectionPool, max_size=10, max_per_host=6
    )
    names = ["a", "b", "c"]
    for name in names:
        connector.get("h", name)

    def work(i):
        pool = connector.get("h", names[i % 3])
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")
            eventlet.sleep(0.002)

    threads = [eventlet.spawn(work, i) for i in range(90)]
    for gt in threads:
        gt.wait()
    assert db.max_open <= 6


def test_bad_arguments(db):
    with pytest.raises(TypeError):
        db_pool.DatabaseConnector(None, {})
    with pytest.raises(TypeError):
        db_pool.DatabaseConnector(db, [("h", {})])
    with pytest.raises(TypeError):
        db_pool.DatabaseConnector(db, {"h": "user=x"})
    with pytest.raises(db_pool.ConfigError):
        db_pool.DatabaseConnector(db, {}, max_per_host=0)
    with pytest.raises(TypeError):
        db_pool.DatabaseConnector(db, {}, max_per_host=True)
    with pytest.raises(TypeError):
        db_pool.DatabaseConnector(db, {}, db_pool.RawConnectionPool, 1, min_size=2)


def test_stats_and_close(db, connectors):
    connector = connectors(db, {}, db_pool.RawConnectionPool)
    a = connector.get("h1", "a")
    b = connector.get("h2", "b")
    a.put(a.get())
    b.put(b.get())
    stats = connector.stats()
    assert set(stats) == {"h1/a", "h2/b"}
    assert stats["h1/a"]["checkouts"] == 1 and stats["h1/a"]["free"] == 1
    assert db.open_count == 2
    connector.close()
    assert connector.closed and a.closed and b.closed
    assert db.open_count == 0
    assert connector.stats() == {}
    with pytest.raises(db_pool.PoolClosed):
        connector.get("h1", "a")


def test_context_manager_closes(db):
    with db_pool.DatabaseConnector(db, {}, db_pool.RawConnectionPool) as connector:
        pool = connector.get("h", "d")
    assert pool.closed


def test_lazy_until_used(db, connectors):
    connector = connectors(db, {}, db_pool.RawConnectionPool)
    assert connector.pools() == {}
    connector.get("h", "d")
    assert db.connect_calls == 0


def test_warm_up_opens_connections(db, connectors):
    db.connect_delay = 0.01
    connector = connectors(db, {}, db_pool.RawConnectionPool, max_size=3)
    result = connector.warm_up([("h1", "a"), ("h2", "b")], size=2)
    assert result == {"h1/a": 2, "h2/b": 2}
    assert db.open_count == 4
    for pool in connector.pools().values():
        assert len(pool.free_items) == 2
    # Default size: min_size, at least 1; already-open connections count.
    assert connector.warm_up() == {"h1/a": 2, "h2/b": 2}
    assert db.connect_calls == 4
    # Never beyond max_size.
    assert connector.warm_up([("h1", "a")], size=10) == {"h1/a": 3}


def test_warm_up_reports_failure_after_warming_the_rest(db, connectors):
    def refuse(args, kwargs):
        if kwargs["host"] == "down":
            raise OperationalError("connection refused")

    db.on_connect = refuse
    connector = connectors(db, {}, db_pool.RawConnectionPool)
    with pytest.raises(OperationalError):
        connector.warm_up([("down", "a"), ("up", "b")], size=2)
    assert len(connector.get("up", "b").free_items) == 2
    assert connector.get("down", "a").current_size == 0
