"""Shared test configuration for db_pool.

Environment:

``DB_POOL_PG_DSN``
    libpq connection string or URI of the PostgreSQL server for real-database
    tests (default ``host=127.0.0.1 port=5432 user=postgres dbname=test``).
``DB_POOL_MYSQL``
    ``key=value`` string (``host port user password database``) or
    ``mysql://user:password@host:port/database`` URL of the MariaDB/MySQL
    server (default ``host=127.0.0.1 port=3306 user=root password= database=test``).
``DB_POOL_REQUIRE_DB``
    When ``1``, an unreachable database fails the tests that need it instead
    of skipping them, and any skip of a test marked ``realdb`` is reported
    as a failure (so CI cannot pass without having run them).

Fixtures: ``pg_kwargs``, ``mysql_kwargs`` (connect keyword dicts),
``pg_dsn``, ``pg_admin``, ``mysql_admin`` (see ``tests/dbutil.py``),
``unique_name``, ``fake_db``, ``fake_db_status`` (see ``tests/fakedb.py``),
``pg_proxy``, ``mysql_proxy``, ``blackhole``, ``closed_port`` (see
``tests/proxy.py``), ``pgbouncer`` (a private PgBouncer, see
``tests/dbutil.py``), ``run_python`` (code in a fresh interpreter).

Markers ``realdb`` and ``isolated`` are added automatically to tests under
``tests/realdb/`` and ``tests/isolated/``.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest


def _import_eventlet():
    """Import eventlet, dropping its EventletDeprecationWarning (by class).

    Every other warning raised during the import is re-issued, so the
    ``error`` filter still applies to it.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import eventlet
    deprecation = getattr(eventlet, "EventletDeprecationWarning", None)
    for warning in caught:
        if deprecation is not None and issubclass(warning.category, deprecation):
            continue
        if deprecation is None and "Eventlet is deprecated" in str(warning.message):
            continue  # eventlet < 0.41 (Python 3.9) warns with a plain class
        warnings.warn_explicit(
            warning.message,
            warning.category,
            warning.filename,
            warning.lineno,
            source=warning.source,
        )
    return eventlet


eventlet = _import_eventlet()

from tests import dbutil  # noqa: E402  (after eventlet's quiet import)
from tests import fakedb as _fakedb  # noqa: E402
from tests import proxy as _proxy  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent

DEFAULT_PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
DEFAULT_MYSQL = "host=127.0.0.1 port=3306 user=root password= database=test"

#: Seconds a reachability probe may take before the server counts as down.
PROBE_TIMEOUT = 5


def db_required():
    """True when ``DB_POOL_REQUIRE_DB`` asks for the real databases."""
    return os.environ.get("DB_POOL_REQUIRE_DB", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


def pytest_configure(config):
    # The class-based filter for eventlet's import-time warning (tox.ini says
    # why it is not listed there).  eventlet is already imported, so
    # resolving the dotted name no longer warns.
    if hasattr(eventlet, "EventletDeprecationWarning"):
        config.addinivalue_line(
            "filterwarnings", "ignore::eventlet.EventletDeprecationWarning"
        )


def pytest_report_header(config):
    return [
        "db_pool: PostgreSQL %s; MariaDB %s; DB_POOL_REQUIRE_DB=%s"
        % (
            _describe(pg_connect_kwargs()),
            _describe(mysql_connect_kwargs()),
            "1" if db_required() else "0",
        )
    ]


def _describe(kwargs):
    # Never print the password.
    return "%s@%s:%s/%s" % (
        kwargs.get("user", ""),
        kwargs.get("host", ""),
        kwargs.get("port", ""),
        kwargs.get("dbname", kwargs.get("database", "")),
    )


# -- connection settings from the environment ---------------------------------


def _parse_keywords(text):
    """Parse ``key=value key='quoted value'`` into a dict."""
    result = {}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        if not sep:
            raise ValueError("expected key=value, got %r" % token)
        result[key.strip()] = value
    return result


def _parse_url(text):
    parts = urlsplit(text)
    result = {}
    if parts.hostname:
        result["host"] = unquote(parts.hostname)
    if parts.port:
        result["port"] = parts.port
    if parts.username:
        result["user"] = unquote(parts.username)
    if parts.password is not None:
        result["password"] = unquote(parts.password)
    if parts.path.strip("/"):
        result["database"] = unquote(parts.path.strip("/"))
    result.update(parse_qsl(parts.query))
    return result


def _parse(text):
    text = text.strip()
    return _parse_url(text) if "://" in text else _parse_keywords(text)


def pg_connect_kwargs():
    """psycopg2 connect keywords from ``DB_POOL_PG_DSN`` (or the default)."""
    kwargs = _parse(os.environ.get("DB_POOL_PG_DSN") or DEFAULT_PG_DSN)
    if "database" in kwargs:
        kwargs.setdefault("dbname", kwargs.pop("database"))
    if "port" in kwargs:
        kwargs["port"] = int(kwargs["port"])
    return kwargs


def mysql_connect_kwargs():
    """PyMySQL / MySQLdb connect keywords from ``DB_POOL_MYSQL``.

    The database is given as ``database`` and the password as ``password``:
    both drivers accept these (PyMySQL warns on ``db`` and ``passwd``).
    """
    kwargs = _parse(os.environ.get("DB_POOL_MYSQL") or DEFAULT_MYSQL)
    for old, new in (
        ("db", "database"),
        ("dbname", "database"),
        ("passwd", "password"),
    ):
        if old in kwargs:
            kwargs.setdefault(new, kwargs.pop(old))
    if "port" in kwargs:
        kwargs["port"] = int(kwargs["port"])
    kwargs.setdefault("password", "")
    return kwargs


def pg_dsn_string(kwargs):
    """A libpq keyword string for *kwargs*."""

    def quote(value):
        value = str(value)
        if value and not any(c in value for c in " '\\"):
            return value
        return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")

    return " ".join("%s=%s" % (key, quote(value)) for key, value in kwargs.items())


# -- reachability -------------------------------------------------------------

_probe_cache = {}


def _probe(kind, kwargs):
    key = (kind, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    if key not in _probe_cache:
        try:
            if kind == "pg":
                _probe_pg(kwargs)
            else:
                _probe_mysql(kwargs)
        except Exception as exc:  # reported as the skip/fail reason
            _probe_cache[key] = "%s: %s" % (type(exc).__name__, exc)
        else:
            _probe_cache[key] = None
    return _probe_cache[key]


def _probe_pg(kwargs):
    import psycopg2

    conn = psycopg2.connect(connect_timeout=PROBE_TIMEOUT, **kwargs)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
    finally:
        conn.close()


def _probe_mysql(kwargs):
    import pymysql

    conn = pymysql.connect(
        connect_timeout=PROBE_TIMEOUT,
        read_timeout=PROBE_TIMEOUT,
        write_timeout=PROBE_TIMEOUT,
        **kwargs,
    )
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
    finally:
        conn.close()


def pg_unreachable_reason(kwargs=None):
    """None when PostgreSQL answers, else why not (cached per session)."""
    return _probe("pg", pg_connect_kwargs() if kwargs is None else kwargs)


def mysql_unreachable_reason(kwargs=None):
    """None when MariaDB answers, else why not (cached per session)."""
    return _probe("mysql", mysql_connect_kwargs() if kwargs is None else kwargs)


def missing_database(message):
    """Skip the current test, or fail it when DB_POOL_REQUIRE_DB=1."""
    if db_required():
        pytest.fail(
            "%s (DB_POOL_REQUIRE_DB=1, so this is a failure, not a skip)" % message,
            pytrace=False,
        )
    pytest.skip(message)


def require_pg():
    """Return psycopg2 connect keywords, or skip/fail if PostgreSQL is down."""
    kwargs = pg_connect_kwargs()
    reason = pg_unreachable_reason(kwargs)
    if reason:
        missing_database(
            "PostgreSQL not reachable at %s: %s" % (_describe(kwargs), reason)
        )
    return kwargs


def require_mysql():
    """Return PyMySQL/MySQLdb connect keywords, or skip/fail if MariaDB is down."""
    kwargs = mysql_connect_kwargs()
    reason = mysql_unreachable_reason(kwargs)
    if reason:
        missing_database(
            "MariaDB not reachable at %s: %s" % (_describe(kwargs), reason)
        )
    return kwargs


# -- fixtures -----------------------------------------------------------------


@pytest.fixture
def pg_kwargs():
    """psycopg2 connect keywords (a fresh dict per test: mutate freely)."""
    return require_pg()


@pytest.fixture
def pg_dsn(pg_kwargs):
    """The same settings as a libpq keyword string."""
    return pg_dsn_string(pg_kwargs)


@pytest.fixture
def mysql_kwargs():
    """PyMySQL/MySQLdb connect keywords (``host port user password database``)."""
    return require_mysql()


@pytest.fixture
def pg_admin(pg_kwargs):
    """A :class:`tests.dbutil.PgAdmin` (closed after the test)."""
    admin = dbutil.PgAdmin(pg_kwargs)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def mysql_admin(mysql_kwargs):
    """A :class:`tests.dbutil.MysqlAdmin` (closed after the test)."""
    admin = dbutil.MysqlAdmin(mysql_kwargs)
    try:
        yield admin
    finally:
        admin.close()


_names = itertools.count(1)


def make_unique_name():
    """A name unique to this test run: ``dbp_<pid>_<n>``."""
    return "%s%d_%d" % (dbutil.MARKER_PREFIX, os.getpid(), next(_names))


@pytest.fixture
def pgbouncer(pg_kwargs):
    """A started :class:`tests.dbutil.PgBouncer` (transaction pooling) in
    front of PostgreSQL; connect with ``pgbouncer.kwargs``."""
    try:
        bouncer = dbutil.PgBouncer(pg_kwargs).start()
    except RuntimeError as exc:
        missing_database("PgBouncer unavailable: %s" % exc)
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def unique_name():
    """A name unique to this test run: ``dbp_<pid>_<n>``.

    Good as a table name and as a PostgreSQL ``application_name`` marking
    this test's connections.
    """
    return make_unique_name()


@pytest.fixture
def fake_db():
    """A fresh :class:`tests.fakedb.FakeDB` (no transaction status)."""
    return _fakedb.FakeDB()


@pytest.fixture
def fake_db_status():
    """A fresh :class:`tests.fakedb.FakeDB` whose connections report
    ``in_transaction``."""
    return _fakedb.FakeDB(report_status=True)


@pytest.fixture
def pg_proxy(pg_kwargs):
    """A started :class:`tests.proxy.Proxy` in front of PostgreSQL."""
    with _proxy.Proxy(
        pg_kwargs.get("host", "127.0.0.1"), pg_kwargs.get("port", 5432)
    ) as p:
        yield p


@pytest.fixture
def mysql_proxy(mysql_kwargs):
    """A started :class:`tests.proxy.Proxy` in front of MariaDB."""
    with _proxy.Proxy(
        mysql_kwargs.get("host", "127.0.0.1"), mysql_kwargs.get("port", 3306)
    ) as p:
        yield p


@pytest.fixture
def blackhole():
    """A started :class:`tests.proxy.Blackhole` (accepts, never answers)."""
    with _proxy.Blackhole() as hole:
        yield hole


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening."""
    return _proxy.closed_port()


#: Runs first in every :func:`run_python` child: the same warning policy as
#: the test run (every warning an error but eventlet's deprecation notice).
ISOLATED_PRELUDE = """\
import warnings
warnings.simplefilter("error")
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")
    import eventlet
_quiet = getattr(eventlet, "EventletDeprecationWarning", None)
for _w in _caught:
    if _quiet is None or not issubclass(_w.category, _quiet):
        warnings.warn_explicit(_w.message, _w.category, _w.filename, _w.lineno)
if _quiet is not None:
    warnings.filterwarnings("ignore", category=_quiet)
del _caught, _quiet
"""


def run_python(code, *, timeout=120, env=None, check=True):
    """Run *code* in a fresh interpreter (for monkey-patching scenarios).

    The child starts in the repository root with it on ``PYTHONPATH`` (so
    ``db_pool`` and ``tests.*`` import) and runs :data:`ISOLATED_PRELUDE`
    first.  Returns the ``subprocess.CompletedProcess``; with *check*, a
    non-zero exit fails the test and shows the child's output.
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    root = str(TESTS_DIR.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, child_env.get("PYTHONPATH")) if p
    )
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_PRELUDE + textwrap.dedent(code)],
        cwd=root,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        pytest.fail(
            "child interpreter exited with %d\n--- stdout ---\n%s--- stderr ---\n%s"
            % (result.returncode, result.stdout, result.stderr),
            pytrace=False,
        )
    return result


@pytest.fixture(name="run_python")
def run_python_fixture():
    """:func:`run_python`: run code in a fresh interpreter."""
    return run_python


# -- markers and the "real databases required" rule ---------------------------

_AUTO_MARKERS = {"realdb": "realdb", "isolated": "isolated"}


def _top_dir(path):
    """The first directory below tests/ that *path* is in, or None."""
    try:
        parts = Path(str(path)).resolve().relative_to(TESTS_DIR).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = _AUTO_MARKERS.get(_top_dir(item.path))
        if marker and item.get_closest_marker(marker) is None:
            item.add_marker(marker)


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _required_message(what, report):
    return (
        "%s was skipped, but DB_POOL_REQUIRE_DB=1 requires every real-database "
        "test to run. %s" % (what, _skip_reason(report))
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and db_required()
        and item.get_closest_marker("realdb") is not None
    ):
        report.outcome = "failed"
        report.longrepr = _required_message("realdb test %s" % item.nodeid, report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    # A module under tests/realdb/ that skips itself at import time (for
    # example pytest.importorskip of a driver) never produces test reports,
    # so the rule above would not see it.
    if (
        report.skipped
        and db_required()
        and _top_dir(getattr(collector, "path", "")) == "realdb"
    ):
        report.outcome = "failed"
        report.longrepr = _required_message(
            "realdb module %s" % collector.nodeid, report
        )
