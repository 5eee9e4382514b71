"""A minimal DB-API 2 module with no I/O, so the benchmarks time pools alone.

A connection has what every pool under test calls (``cursor``, ``commit``,
``rollback``, ``close``) and nothing that tells a pool whether a transaction
is open, so a transaction-aware reset must fall back to a rollback here, as
every other pool does.
"""

from __future__ import annotations

apilevel = "2.0"
# 1: connections must not be shared between threads; DBUtils reads this.
threadsafety = 1
paramstyle = "qmark"


class Warning(Exception):  # the DB-API requires this name
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class Cursor:
    description = None
    rowcount = -1
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def execute(self, operation: str, parameters: object = None) -> None:
        self.rowcount = 1

    def fetchall(self) -> list[tuple[int]]:
        return [(1,)]

    def close(self) -> None:
        pass


class Connection:
    closed = False

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def connect(*args: object, **kwargs: object) -> Connection:
    return Connection()
