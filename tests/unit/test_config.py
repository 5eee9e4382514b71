"""Option validation at construction: a bad value raises ValueError or
TypeError whose message names the option and the value."""

from __future__ import annotations

import pytest

import db_pool

BAD_OPTIONS = [
    # (option, value, exception)
    ("max_size", 0, ValueError),
    ("max_size", -3, ValueError),
    ("max_size", 2.5, TypeError),
    ("max_size", "4", TypeError),
    ("max_size", True, TypeError),
    ("max_size", None, TypeError),
    ("min_size", -1, ValueError),
    ("min_size", 1.0, TypeError),
    ("min_size", False, TypeError),
    ("max_idle", -1, ValueError),
    ("max_idle", -0.5, ValueError),
    ("max_idle", "10", TypeError),
    ("max_idle", True, TypeError),
    ("max_idle", float("nan"), ValueError),
    ("max_age", -2, ValueError),
    ("max_age", False, TypeError),
    ("max_age", [30], TypeError),
    ("connect_timeout", -1, ValueError),
    ("connect_timeout", "5", TypeError),
    ("connect_timeout", True, TypeError),
    ("cleanup", "rollback", TypeError),
    ("cleanup", 3, TypeError),
    ("pool_timeout", -0.1, ValueError),
    ("pool_timeout", True, TypeError),
    ("pool_timeout", "1", TypeError),
    ("max_waiting", -1, ValueError),
    ("max_waiting", 1.5, TypeError),
    ("max_waiting", True, TypeError),
    ("reentrant", 1, TypeError),
    ("reentrant", "yes", TypeError),
    ("pre_ping", 1, TypeError),
    ("pre_ping_idle", -1, ValueError),
    ("pre_ping_idle", None, TypeError),
    ("check", "SELECT 1", TypeError),
    ("max_uses", 0, ValueError),
    ("max_uses", True, TypeError),
    ("max_uses", 2.0, TypeError),
    ("leak_timeout", 0, ValueError),
    ("leak_timeout", -5, ValueError),
    ("leak_timeout", True, TypeError),
    ("keepalive", 0, ValueError),
    ("keepalive", -1, ValueError),
    ("keepalive", "30", TypeError),
    ("max_age_jitter", 1, ValueError),
    ("max_age_jitter", 1.5, ValueError),
    ("max_age_jitter", -0.1, ValueError),
    ("max_age_jitter", True, TypeError),
    ("reset_timeout", 0, ValueError),
    ("reset_timeout", -1, ValueError),
    ("name", 42, TypeError),
    ("connect_args", [("user", "x")], TypeError),
    ("is_disconnect", "yes", TypeError),
    ("max_retries", -1, ValueError),
    ("max_retries", True, TypeError),
    ("reconnect_delay", 5, TypeError),
    ("reconnect_delay", (1, 0.5), ValueError),
    ("reconnect_delay", (0, 1), ValueError),
]


@pytest.mark.parametrize(
    "option, value, error",
    BAD_OPTIONS,
    ids=["%s=%r" % (o, v) for o, v, _ in BAD_OPTIONS],
)
def test_bad_option_is_rejected_naming_option_and_value(fake_db, option, value, error):
    with pytest.raises(error) as info:
        db_pool.RawConnectionPool(fake_db, **{option: value})
    message = str(info.value)
    assert option.split("[")[0] in message
    if isinstance(value, tuple):  # the whole tuple or the bad element
        shown = [repr(value)] + [repr(v) for v in value]
    else:
        shown = [repr(value), str(value)]
    if option != "connect_args":  # named by type: the value may hold secrets
        assert any(text in message for text in shown), message
    assert fake_db.connect_calls == 0


def test_min_size_greater_than_max_size(fake_db):
    with pytest.raises(ValueError) as info:
        db_pool.RawConnectionPool(fake_db, min_size=5, max_size=2)
    message = str(info.value)
    assert "min_size" in message and "max_size" in message
    assert "5" in message and "2" in message
    assert fake_db.connect_calls == 0


def test_value_errors_are_config_errors(fake_db):
    with pytest.raises(db_pool.ConfigError) as info:
        db_pool.RawConnectionPool(fake_db, max_size=0)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, db_pool.PoolError)


def test_db_module_without_connect(fake_db):
    for junk in (None, object(), "psycopg2"):
        with pytest.raises(TypeError) as info:
            db_pool.RawConnectionPool(junk)
        assert "db_module" in str(info.value)


def test_connect_args_given_twice(fake_db):
    with pytest.raises(ValueError) as info:
        db_pool.RawConnectionPool(fake_db, connect_args={"host": "a"}, host="b")
    assert "host" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_idle": None, "max_age": None, "connect_timeout": None},
        {"max_idle": 0, "max_age": 0},
        {"min_size": 0, "max_size": 1},
        {"min_size": 3, "max_size": 3},
        {"max_idle": 0.5, "max_age": 2.5, "connect_timeout": 0.25},
        {"pool_timeout": 0, "max_waiting": 0},
        {"cleanup": None},
        {"cleanup": lambda conn: None},
        {"max_age_jitter": 0},
        {"max_uses": 1, "leak_timeout": 0.1, "keepalive": 1.5},
        {"pre_ping": True, "pre_ping_idle": 0},
        {"reentrant": True, "name": "orders"},
        {"check": lambda conn: True},
        {"connect_args": {"user": "u"}},
    ],
)
def test_good_options_are_accepted(fake_db, kwargs):
    pool = db_pool.RawConnectionPool(fake_db, **kwargs)
    try:
        for key, value in kwargs.items():
            if key in (
                "min_size",
                "max_size",
                "max_idle",
                "max_age",
                "max_uses",
                "pool_timeout",
                "max_waiting",
                "reentrant",
                "name",
            ):
                assert getattr(pool, key) == value
    finally:
        pool.close()


def test_connector_validates_its_arguments(fake_db):
    with pytest.raises(TypeError):
        db_pool.DatabaseConnector(None, {})
    with pytest.raises(TypeError) as info:
        db_pool.DatabaseConnector(fake_db, [("host", {})])
    assert "credentials" in str(info.value)
