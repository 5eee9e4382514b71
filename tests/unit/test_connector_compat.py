"""DatabaseConnector, complementing test_connector.py: the database-name
keyword for each driver under both pool variants, a stampede of 100 green
threads on few keys (with and without min_size, slow connects), and lent
connections of a closed connector."""

from __future__ import annotations

import warnings

import eventlet
import pytest

import db_pool
from tests.common.test_compat import wait_until
from tests.fakedb import FakeDB

Raw = db_pool.RawConnectionPool


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


@pytest.mark.parametrize(
    "driver_name, keyword",
    [
        ("psycopg2", "dbname"),
        ("pymysql", "database"),  # PyMySQL deprecates db=
        ("MySQLdb", "db"),
        ("sqlite3", "database"),
        ("some_other_driver", "database"),
    ],
)
@pytest.mark.parametrize(
    "pool_cls", [Raw, db_pool.TpooledConnectionPool], ids=["raw", "tpooled"]
)
def test_dbname_keyword_per_driver(connectors, driver_name, keyword, pool_cls):
    db = FakeDB(name=driver_name)
    with warnings.catch_warnings():
        # A fake named like a real driver trips the "this would block the
        # hub" check, which is not what this test is about.
        warnings.simplefilter("ignore", db_pool.PoolWarning)
        connector = connectors(db, {"default": {"user": "app"}}, pool_cls)
        pool = connector.get("db1.example", "orders")
    pool.put(pool.get())
    ((args, kwargs),) = db.connect_args
    assert kwargs[keyword] == "orders"
    for other in {"db", "dbname", "database"} - {keyword}:
        assert other not in kwargs
    assert kwargs["host"] == "db1.example"
    assert kwargs["user"] == "app"


def test_default_pool_class_is_connection_pool(connectors):
    connector = connectors(FakeDB(), {})
    assert isinstance(connector.get("h", "d"), db_pool.ConnectionPool)


@pytest.mark.parametrize("min_size", [0, 2])
def test_one_pool_per_key_under_a_stampede(connectors, min_size):
    db = FakeDB(connect_delay=0.01)  # connecting yields to the others
    connector = connectors(
        db, {"default": {"user": "u"}}, Raw, min_size=min_size, max_size=4
    )
    keys = [("h1", "a"), ("h1", "b"), ("h2", "a")]
    got = []

    def ask(n):
        got.append((keys[n % 3], connector.get(*keys[n % 3])))

    threads = [eventlet.spawn(ask, n) for n in range(100)]
    for t in threads:
        t.wait()
    assert len(got) == 100
    pools = {}
    for key, pool in got:
        pools.setdefault(key, set()).add(id(pool))
    assert {key: len(ids) for key, ids in pools.items()} == {key: 1 for key in keys}
    assert len(connector.pools()) == 3
    for pool in connector.pools().values():
        wait_until(lambda pool=pool: len(pool.free_items) == min_size)
    # No pool was built and thrown away: only the survivors' connections.
    assert db.connect_calls == 3 * min_size
    assert db.open_count == 3 * min_size


def test_stampede_of_checkouts_through_the_connector(connectors):
    db = FakeDB(connect_delay=0.005)
    connector = connectors(db, {}, Raw, max_size=3)
    done = []

    def work(n):
        pool = connector.get("h", "d")
        with pool.connection() as conn:
            conn.cursor().execute("SELECT %d" % n)
            eventlet.sleep(0.001)
        done.append(n)

    threads = [eventlet.spawn(work, n) for n in range(100)]
    for t in threads:
        t.wait()
    assert len(done) == 100
    assert db.max_open <= 3
    assert len(connector.pools()) == 1


def test_close_closes_lent_connections_when_they_come_back(connectors):
    db = FakeDB()
    connector = connectors(db, {}, Raw, min_size=1)
    pools = [connector.get("h", name) for name in ("a", "b", "c")]
    wait_until(lambda: db.open_count == 3)
    lent = pools[0].get()
    connector.close()
    assert all(pool.closed for pool in pools)
    assert db.open_count == 1  # the lent one: never taken from its holder
    lent.cursor().execute("SELECT 1")
    pools[0].put(lent)
    assert db.open_count == 0
    with pytest.raises(db_pool.PoolClosed):
        pools[1].get()
