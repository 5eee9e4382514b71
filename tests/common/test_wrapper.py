"""The wrapper passes every attribute through, reads and writes, and the
driver's own context manager; eventlet's wrapper only proxied a fixed list
of MySQLdb methods."""

from __future__ import annotations

import pytest

import db_pool
from tests.fakedb import OperationalError
from tests.unit._fakes import CtxFakeDB, raw_of


@pytest.fixture
def ctx_db():
    fake = CtxFakeDB()
    try:
        yield fake
    finally:
        fake.release()


def test_attribute_reads_reach_the_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    raw = raw_of(conn)
    raw.results = [(7,), (8,)]
    assert conn.id == raw.id
    assert conn.closed is False
    assert conn.autocommit is False
    assert conn.executed == []
    cur = conn.cursor()
    cur.execute("SELECT x FROM t", (1,))
    assert cur.fetchall() == [(7,), (8,)]
    assert raw.executed == [("SELECT x FROM t", (1,))]
    pool.put(conn)


def test_attribute_writes_reach_the_connection(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    raw = raw_of(conn)
    conn.autocommit = True
    assert raw.autocommit is True
    assert conn.autocommit is True
    conn.custom_flag = "set through the wrapper"
    assert raw.custom_flag == "set through the wrapper"
    del conn.custom_flag
    assert not hasattr(raw, "custom_flag")
    # With autocommit on, a statement leaves no transaction open.
    conn.cursor().execute("UPDATE t")
    assert not raw.transaction_open
    pool.put(conn)


def test_methods_that_eventlet_never_proxied(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    raw = raw_of(conn)
    raw.notices = ["NOTICE: hello"]  # psycopg2-style attributes
    raw.server_version = 160000
    raw.get_transaction_status = lambda: 0
    assert conn.notices == ["NOTICE: hello"]
    assert conn.server_version == 160000
    assert conn.get_transaction_status() == 0
    assert conn.ping() is True  # PyMySQL/MySQLdb-style method
    assert raw.pings == 1
    pool.put(conn)


def test_missing_attribute_is_an_ordinary_attribute_error(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    with pytest.raises(AttributeError) as info:
        _ = conn.no_such_attribute
    assert not isinstance(info.value, db_pool.ConnectionReturnedError)
    assert not hasattr(conn, "no_such_attribute")
    pool.put(conn)


def test_driver_context_manager_commits(pool_cls, ctx_db, make_pool):
    pool = make_pool(pool_cls, ctx_db)
    conn = pool.get()
    raw = raw_of(conn)
    with conn as inner:
        # The driver's __enter__ returns the connection: we get the wrapper
        # back, never the bare connection.
        assert inner is conn
        inner.cursor().execute("INSERT 1")
    assert raw.entered == 1
    assert raw.exits == ((None,),)
    assert raw.commits == 1
    assert not raw.transaction_open
    assert conn  # the driver's context manager does not return it to the pool
    pool.put(conn)
    assert raw.rollbacks == 1  # the pool's reset on return


def test_driver_context_manager_rolls_back_on_error(pool_cls, ctx_db, make_pool):
    pool = make_pool(pool_cls, ctx_db)
    conn = pool.get()
    raw = raw_of(conn)
    with pytest.raises(OperationalError):
        with conn:
            conn.cursor().execute("INSERT 1")
            raise OperationalError("constraint")
    assert raw.exits == ((OperationalError,),)
    assert raw.rollbacks == 1 and raw.commits == 0
    pool.put(conn)


def test_context_manager_of_a_returned_wrapper_raises(pool_cls, ctx_db, make_pool):
    pool = make_pool(pool_cls, ctx_db)
    conn = pool.get()
    pool.put(conn)
    with pytest.raises(db_pool.ConnectionReturnedError):
        with conn:
            pass


def test_repr_of_a_wrapper(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    assert "PooledConnectionWrapper" in repr(conn)
    assert "FakeConnection" in repr(conn)
    pool.put(conn)
    assert "returned" in repr(conn)


def test_returned_wrapper_rejects_writes_and_deletes(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db)
    conn = pool.get()
    raw = raw_of(conn)
    pool.put(conn)
    with pytest.raises(db_pool.ConnectionReturnedError):
        conn.autocommit = True
    with pytest.raises(db_pool.ConnectionReturnedError):
        del conn.autocommit
    assert raw.autocommit is False
