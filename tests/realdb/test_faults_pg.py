"""Fault injection against a real PostgreSQL server (psycopg2, green).

The scenarios live in ``tests/isolated/faults_common.py`` and the expected
counts in ``tests/realdb/faults_expect.py`` (shared with MariaDB); README.rst's
"Failure behaviour" table states the same numbers.  psycopg2 is made green
with the pool's wait callback for the length of each test (no
monkey-patching), so the pool's green threads really interleave on the
sockets while the loopback proxy runs in an OS thread.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

pytest.register_assert_rewrite("tests.realdb.faults_expect")

psycopg2 = pytest.importorskip("psycopg2")
pytest.importorskip("psycopg2.extensions")

import eventlet  # noqa: E402
import eventlet.tpool  # noqa: E402

import db_pool  # noqa: E402
from tests.isolated import faults_common as fc  # noqa: E402
from tests.realdb import faults_expect as expect  # noqa: E402


@pytest.fixture
def green_psycopg2():
    """psycopg2 with the pool's wait callback, restored afterwards."""
    from psycopg2 import extensions

    saved = extensions.get_wait_callback()
    db_pool.make_psycopg_green()
    try:
        yield psycopg2
    finally:
        extensions.set_wait_callback(saved)


@pytest.fixture
def backend(pg_kwargs, unique_name, green_psycopg2):
    b = fc.PgBackend(pg_kwargs, unique_name)
    try:
        yield b
    finally:
        b.close()


def test_kill_all_with_pre_ping(backend):
    expect.check_kill_all_pre_ping(fc.scenario_kill_all_pre_ping(backend))


def test_kill_all_without_pre_ping(backend):
    expect.check_kill_all_no_pre_ping(fc.scenario_kill_all_no_pre_ping(backend))


def test_kill_all_without_pre_ping_all_handed_out_at_once(backend):
    expect.check_kill_all_burst(fc.scenario_kill_all_burst(backend))


def test_kill_all_get_put(backend):
    expect.check_kill_get_put(fc.scenario_kill_get_put(backend))


def test_query_errors_are_not_disconnects(backend):
    expect.check_query_errors(fc.scenario_query_errors(backend))


def test_blackholed_database(backend):
    expect.check_blackhole(fc.scenario_blackhole(backend))


def test_rollback_on_return_to_a_silent_server(backend):
    expect.check_reset_blackhole(fc.scenario_reset_blackhole(backend))


def test_outage_many_callers(backend):
    expect.check_outage(fc.scenario_outage(backend), backend.marker)


def test_min_size_refill_backs_off_and_recovers(backend):
    expect.check_refill(fc.scenario_refill(backend))


def test_restart_through_proxy_under_load(backend):
    expect.check_restart(fc.scenario_restart_via_proxy(backend))


def test_hammer_with_random_cuts(backend):
    expect.check_hammer(fc.scenario_hammer(backend, seed=1))


def test_hammer_checks_catch_a_pool_that_does_not_reset(backend):
    result = fc.scenario_hammer(
        backend, threads=20, duration=0.5, cuts=False, reset=False, seed=2
    )
    expect.check_hammer_control(result)


# -- a real restart ---------------------------------------------------------


def _pg_version():
    versions = sorted(
        os.listdir("/etc/postgresql"), key=lambda v: [int(x) for x in v.split(".")]
    )
    return versions[-1]


def _pg_ctl(action):
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", action],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _pg_answers(kwargs):
    try:
        conn = psycopg2.connect(connect_timeout=2, **kwargs)
    except psycopg2.Error:
        return False
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        return True
    except psycopg2.Error:
        return False
    finally:
        conn.close()


def _ensure_pg_running(kwargs, timeout=60):
    """Start the cluster if it is down and wait until it answers."""
    deadline = time.monotonic() + timeout
    if _pg_answers(kwargs):
        return
    status = subprocess.run(
        ["pg_ctlcluster", _pg_version(), "main", "status"], capture_output=True
    )
    if status.returncode != 0:
        _pg_ctl("start")
    while time.monotonic() < deadline:
        if _pg_answers(kwargs):
            return
        time.sleep(0.2)
    raise AssertionError(
        "PostgreSQL did not answer within %ds after a restart" % timeout
    )


def _can_control_the_cluster():
    return (
        os.path.isdir("/etc/postgresql")
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and subprocess.run(["which", "pg_ctlcluster"], capture_output=True).returncode
        == 0
    )


@pytest.mark.slow
def test_real_restart_under_load(backend, pg_kwargs):
    """The PostgreSQL server really stops (fast shutdown: every session is
    terminated) and starts again while 20 green threads run requests."""
    if not _can_control_the_cluster():
        pytest.skip("needs root and pg_ctlcluster to stop and start PostgreSQL")

    def stop():
        result = eventlet.tpool.execute(_pg_ctl, "stop")
        assert result.returncode == 0, result.stderr

    def start():
        result = eventlet.tpool.execute(_pg_ctl, "start")
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 60
        while not _pg_answers(pg_kwargs):  # green: psycopg2 has the callback
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            eventlet.sleep(0.05)

    try:
        # The admin connection dies with the server: count with a new one.
        result = fc.restart_under_load(
            backend,
            {},
            stop,
            start,
            workers=20,
            size=5,
            down_for=0.5,
            after=1.5,
            before_count=_reopen_admin(backend),
        )
    finally:
        _ensure_pg_running(pg_kwargs)
    expect.check_restart(result)


def _reopen_admin(backend):
    def reopen():
        try:
            backend.admin.close()
        except Exception:
            pass
        backend.admin = fc.dbutil.PgAdmin(backend.kwargs)

    return reopen
