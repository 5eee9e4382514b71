"""Driver.closed_flag and Driver.status_method say, for the C fast paths,
what is_closed() and transaction_open() compute: these tests hold each
driver's hints to its methods, on stand-ins for the driver's connections."""

from __future__ import annotations

import types

import pytest

from db_pool import drivers


def _module(name):
    return types.ModuleType(name)


HINTED = [
    drivers.Psycopg2Driver(_module("psycopg2")),
    drivers.PyMySQLDriver(_module("pymysql")),
]


class _Conn:
    """A connection with one flag attribute, or one that raises."""

    def __init__(self, attr, value):
        self._attr = attr
        self._value = value
        self._result = None
        self.server_status = 0

    def __getattr__(self, name):
        if name == self._attr:
            if isinstance(self._value, BaseException):
                raise self._value
            return self._value
        raise AttributeError(name)


@pytest.mark.parametrize("driver", HINTED, ids=lambda d: d.name)
@pytest.mark.parametrize("value", [0, 1, True, False, "", "x", None, OSError("gone")])
def test_the_closed_flag_says_what_is_closed_says(driver, value):
    attr, negated = driver.closed_flag
    conn = _Conn(attr, value)
    if isinstance(value, BaseException):
        from_flag = True
    else:
        from_flag = (not value) if negated else bool(value)
    assert driver.is_closed(conn) is from_flag


class _StatusConn:
    closed = 0

    def __init__(self, status):
        self.status = status

    def get_transaction_status(self):
        if isinstance(self.status, BaseException):
            raise self.status
        return self.status


@pytest.mark.parametrize("status", [0, 1, 2, 3, 4, RuntimeError("lost")])
def test_the_status_method_says_what_transaction_open_says(status):
    driver = drivers.Psycopg2Driver(_module("psycopg2"))
    conn = _StatusConn(status)
    # The C code: 0 from the method means idle (skip the rollback);
    # anything else, or an error, means roll back.
    if isinstance(status, BaseException):
        c_skips = False
    else:
        c_skips = getattr(conn, driver.status_method)() == 0
    assert (driver.transaction_open(conn) is False) is c_skips


def test_drivers_without_hints_have_none():
    for cls in (drivers.Driver, drivers.Sqlite3Driver, drivers.MySQLdbDriver):
        driver = cls(_module("x"))
        assert driver.status_method is None
    assert drivers.Sqlite3Driver(_module("sqlite3")).closed_flag is None
    assert drivers.PyMySQLDriver(_module("pymysql")).status_method is None
