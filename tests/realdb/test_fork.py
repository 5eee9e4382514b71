"""A pool across ``os.fork()``, against the real servers.

Each case runs in a fresh interpreter (``tests/isolated/faults_fork.py``),
so that the forked child can exit through a normal interpreter shutdown
(every object finalised) without taking pytest along.  See that script for
the sequence; here we check what it measured:

- the child gets a connection of its own, never one of the parent's;
- the child putting the parent's checked-out connection back neither rolls
  back the parent's transaction nor closes it;
- after the child closed its pool and exited, the parent's two sessions are
  alive on the server and answer, and the child's session is gone.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_python


def _run_fork_script(driver, connect, marker, unsafe=False):
    settings = {"connect": connect, "marker": marker, "unsafe": unsafe}
    code = (
        "import runpy, sys\n"
        "sys.argv = ['faults_fork.py', %r, %r]\n"
        "runpy.run_path('tests/isolated/faults_fork.py', run_name='__main__')\n"
        % (driver, json.dumps(settings))
    )
    proc = run_python(code, timeout=60)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    outcome = json.loads(lines[-1]) if lines else {}
    if "result" not in outcome:
        pytest.fail(
            "fork scenario failed:\n%s\n--- stderr ---\n%s"
            % (outcome.get("error", proc.stdout), proc.stderr[-5000:]),
            pytrace=False,
        )
    return outcome["result"]


def _connect_settings(driver):
    pytest.importorskip(driver)
    if driver == "psycopg2":
        from tests.conftest import require_pg

        return require_pg()
    from tests.conftest import require_mysql

    return require_mysql()


@pytest.mark.parametrize("driver", ["psycopg2", "pymysql"])
def test_child_never_uses_the_parents_connections(driver, unique_name):
    r = _run_fork_script(driver, _connect_settings(driver), unique_name)
    assert "child_error" not in r, r.get("child_error")
    assert r["child_exit"] == 0
    parent = {r["a_session"], r["b_session"]}
    # The child's connection is its own: B sat idle in the pool, A was
    # checked out; the child got neither.
    assert r["child_session"] not in parent
    assert r["child_query"] == 1
    # Only the child's own connection counts in the child's pool.
    assert r["child_size"] == 1
    # A: the transaction the parent opened before the fork is still open,
    # with its uncommitted row, although the child put A "back".
    assert r["a_rows"] == [[42]]
    assert r["a_in_transaction"] is True
    # Both parent sessions answer and the server still has them; the
    # child's session ended with the child.
    assert r["parent_sessions"] == sorted(parent)
    assert r["parent_queries"] == [1, 1]
    assert r["server_sessions"] == sorted(parent)
    assert r["stats"] == {"size": 2, "free": 2, "checked_out": 0}


def test_control_without_the_pools_fork_handling(unique_name):
    """With the pool's at-fork reset switched off, the child is handed the
    parent's idle connection: the check above would fail."""
    r = _run_fork_script("psycopg2", _connect_settings("psycopg2"), unique_name, True)
    assert r["child_session"] == r["b_session"]


def test_fork_with_a_tpooled_pool_does_not_hang_the_child(mysql_kwargs):
    """MySQLdb through TpooledConnectionPool: the at-fork hook must not call
    into eventlet's thread pool (its threads do not exist in the child)."""
    pytest.importorskip("MySQLdb")
    code = """
        import json, os, sys, time
        import MySQLdb
        import db_pool
        from tests import dbutil

        kwargs = json.loads(sys.argv[1])
        pool = db_pool.TpooledConnectionPool(MySQLdb, max_size=2, connect_args=kwargs)
        conn = pool.get()
        session = dbutil.mysql_connection_id(conn)
        pool.put(conn)
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                print(json.dumps({"hung": True}))
                sys.exit(0)
            time.sleep(0.02)
        conn = pool.get()
        cur = conn.cursor()
        cur.execute("SELECT 1")
        print(json.dumps({
            "hung": False,
            "child_exit": os.waitstatus_to_exitcode(status),
            "same_session": dbutil.mysql_connection_id(conn) == session,
            "query": cur.fetchall()[0][0],
        }))
        cur.close()
        pool.put(conn)
        pool.close()
    """
    code = "import sys; sys.argv = ['-', %r]\n" % json.dumps(mysql_kwargs) + _dedent(
        code
    )
    proc = run_python(code, timeout=60)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"hung": False, "child_exit": 7, "same_session": True, "query": 1}


def _dedent(code):
    import textwrap

    return textwrap.dedent(code)
