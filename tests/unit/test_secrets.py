"""Nothing secret (a password, a DSN with a password) appears in repr(pool),
repr(wrapper), stats, log records, or the pool's own error messages, even
when the driver's connect error quotes the DSN."""

from __future__ import annotations

import gc
import logging

import eventlet
import pytest

import db_pool
from tests.common.test_compat import settle, spawn_getter, wait_until
from tests.fakedb import OperationalError
from tests.unit._fakes import CtxFakeDB, raw_of

PASSWORD = "s3cr3t-Pa55word"
DSN = "host=db.example port=5432 user=app password=%s dbname=shop" % PASSWORD
URL = "postgresql://app:%s@db.example:5432/shop" % PASSWORD


@pytest.fixture
def db():
    fake = CtxFakeDB()  # its connections' repr shows the DSN, password and all
    try:
        yield fake
    finally:
        fake.release()


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="db_pool")
    return caplog


def assert_no_secret(*texts):
    for text in texts:
        assert PASSWORD not in text, text


def logged(caplog):
    out = []
    for record in caplog.records:
        out.append(record.getMessage())
        if record.exc_info:
            out.append(logging.Formatter().formatException(record.exc_info))
    return out


@pytest.mark.parametrize(
    "pool_cls", [db_pool.RawConnectionPool, db_pool.TpooledConnectionPool]
)
def test_reprs_and_stats_hide_the_password(pool_cls, db, make_pool):
    pool = make_pool(pool_cls, db, dsn=DSN, password=PASSWORD, name="shop")
    conn = pool.get()
    assert PASSWORD in repr(raw_of(conn))  # the fake does show it...
    assert_no_secret(repr(pool), str(pool), repr(conn), str(conn))  # ...we do not
    assert_no_secret(repr(pool.stats()))
    pool.put(conn)
    assert_no_secret(repr(conn), repr(pool))


def test_connect_error_quoting_the_dsn_is_not_logged(db, make_pool, all_logs):
    pool = make_pool(
        db_pool.RawConnectionPool, db, dsn=DSN, reconnect_delay=(0.001, 0.002)
    )
    for message in (
        "could not connect using %s" % DSN,
        "could not translate host name in %s" % URL,
        "invalid connection option in %r" % {"password": PASSWORD},
        "FATAL: password authentication failed (password '%s')" % PASSWORD,
    ):
        db.fail_next(1, OperationalError(message))
        with pytest.raises(OperationalError):
            pool.get()
        eventlet.sleep(0.005)
    assert logged(all_logs)  # the failures were logged...
    assert_no_secret(*logged(all_logs))  # ...without the password


def test_pool_errors_never_carry_the_password(db, make_pool, all_logs):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=1,
        max_waiting=1,
        connect_timeout=0.05,
        password=PASSWORD,
        name="shop",
    )
    errors = []
    held = pool.get()
    try:
        pool.get(timeout=0.01)
    except db_pool.PoolError as exc:
        errors.append(exc)
    thread, done = spawn_getter(pool)
    settle()
    try:
        pool.get()
    except db_pool.PoolError as exc:
        errors.append(exc)
    pool.put(held)
    pool.put(done.wait())
    pool.clear()
    db.hang = True
    try:
        pool.get()
    except db_pool.PoolError as exc:
        errors.append(exc)
    db.release()
    pool.close()
    try:
        pool.get()
    except db_pool.PoolError as exc:
        errors.append(exc)
    kinds = {type(e) for e in errors}
    assert kinds == {
        db_pool.PoolTimeout,
        db_pool.TooManyWaiters,
        db_pool.ConnectTimeout,
        db_pool.PoolClosed,
    }
    for exc in errors:
        assert_no_secret(str(exc), repr(exc), repr(exc.__reduce__()))
    assert_no_secret(*logged(all_logs))


def test_config_errors_never_echo_connect_arguments(db):
    with pytest.raises(TypeError) as info:
        db_pool.RawConnectionPool(db, connect_args=[("password", PASSWORD)])
    assert_no_secret(str(info.value))
    with pytest.raises(ValueError) as info:
        db_pool.RawConnectionPool(
            db, connect_args={"password": PASSWORD}, password=PASSWORD
        )
    assert_no_secret(str(info.value))


def test_leak_and_discard_logs_hide_the_password(db, make_pool, all_logs):
    pool = make_pool(
        db_pool.RawConnectionPool,
        db,
        max_size=2,
        dsn=DSN,
        leak_timeout=0.02,
        max_uses=1,
    )

    def leaky():
        conn = pool.get()
        raw_of(conn).rollback_error = OperationalError("rollback failed on %s" % DSN)

    with pytest.warns(db_pool.ConnectionLeakWarning) as warned:
        leaky()
        gc.collect()
        wait_until(lambda: pool.free() == 2)
    held = pool.get()
    wait_until(lambda: pool.stats()["leaks_reported"] == 1)
    pool.put(held)  # max_uses=1: closed with a debug line
    assert_no_secret(*(str(w.message) for w in warned))
    assert_no_secret(*logged(all_logs))


def test_connector_hides_credentials(db, make_pool, all_logs):
    connector = db_pool.DatabaseConnector(
        db,
        {"default": {"user": "app", "password": PASSWORD}},
        db_pool.RawConnectionPool,
    )
    try:
        pool = connector.get("db.example", "shop")
        conn = pool.get()
        assert raw_of(conn).kwargs["password"] == PASSWORD  # it does reach the driver
        assert_no_secret(
            repr(connector), repr(pool), repr(conn), repr(connector.stats())
        )
        pool.put(conn)
    finally:
        connector.close()
    assert_no_secret(*logged(all_logs))
