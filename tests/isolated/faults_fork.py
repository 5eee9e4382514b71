"""A pool used across ``os.fork()``, in a fresh interpreter.

Usage (from the repository root, which must be on ``sys.path``)::

    python tests/isolated/faults_fork.py DRIVER SETTINGS_JSON

*DRIVER* is ``psycopg2`` (made green with the pool's wait callback) or
``pymysql`` (the interpreter is monkey-patched first).  *SETTINGS_JSON*
holds ``connect`` (the driver's connect keywords), ``marker`` (a unique
name) and optionally ``unsafe``: a control run with the pool's own fork
handling switched off, to show that the checks notice.

The parent checks out connection A and opens a transaction on it (a
temporary table with one row, not committed), and leaves connection B idle
in the pool.  Then it forks.  The child:

- takes a connection from the pool and reports its server session, which
  must be neither A's nor B's;
- puts the parent's A back into the pool (as inherited code might in a
  ``finally``), which must neither roll A back nor close it;
- closes the pool and exits through normal interpreter shutdown, every
  object finalised.

The parent then checks that A's transaction is still open with its row,
that B still answers, and that the server still has both sessions.  The
last line of standard output is ``{"result": {...}}`` or ``{"error": ...}``.

Called by ``tests/realdb/test_fork.py``; not a test module itself.
"""

import os
import sys

if __name__ == "__main__":
    DRIVER = sys.argv[1]
    import eventlet

    if DRIVER == "pymysql":
        eventlet.monkey_patch()

import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402


def _session(driver, conn):
    from tests import dbutil

    if driver == "psycopg2":
        return dbutil.pg_backend_pid(conn)
    return dbutil.mysql_connection_id(conn)


def _run(cur, sql):
    cur.execute(sql)
    return cur.fetchall() if cur.description else None


def main(driver, settings):
    import db_pool
    from tests import dbutil

    if driver == "psycopg2":
        import psycopg2 as module

        db_pool.make_psycopg_green()
        connect = dict(settings["connect"], application_name=settings["marker"])
    else:
        import pymysql as module

        connect = dict(settings["connect"], read_timeout=10, write_timeout=10)
    if settings.get("unsafe"):
        # The control run: the child keeps the parent's idle connections.
        db_pool.pool.BaseConnectionPool._after_fork_in_child = lambda self: None
    pool = db_pool.RawConnectionPool(
        module, max_size=4, name=settings["marker"], connect_args=connect
    )
    a = pool.get()
    b = pool.get()
    a_id, b_id = _session(driver, a), _session(driver, b)
    pool.put(b)
    cur = a.cursor()
    if driver == "pymysql":
        _run(cur, "START TRANSACTION")
    _run(cur, "CREATE TEMPORARY TABLE dbp_fork_marks (x INTEGER)")
    _run(cur, "INSERT INTO dbp_fork_marks VALUES (42)")
    cur.close()

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        report = {}
        try:
            conn = pool.get(timeout=5)
            report["child_session"] = _session(driver, conn)
            cur = conn.cursor()
            report["child_query"] = _run(cur, "SELECT 1")[0][0]
            cur.close()
            pool.put(conn)
            # Inherited code puts the parent's connection back.
            pool.put(a)
            report["child_size"] = pool.current_size
            # A child that shuts down tidily closes the pool: that closes
            # the child's own connections, and only those.
            pool.close()
        except BaseException:
            report["child_error"] = traceback.format_exc()
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(report))
        # Normal interpreter shutdown: every object is finalised, the
        # inherited connections included.
        sys.exit(0)

    os.close(write_end)
    with os.fdopen(read_end) as inp:
        child = json.loads(inp.read() or "{}")
    _, status = os.waitpid(pid, 0)
    result = {
        "a_session": a_id,
        "b_session": b_id,
        "child_exit": os.waitstatus_to_exitcode(status),
        **child,
    }
    # The parent's transaction on A is still open, with its row.
    try:
        cur = a.cursor()
        result["a_rows"] = [list(r) for r in _run(cur, "SELECT x FROM dbp_fork_marks")]
        if driver == "psycopg2":
            result["a_in_transaction"] = a.info.transaction_status != 0
        else:
            result["a_in_transaction"] = bool(a.server_status & 1)
        cur.close()
    except Exception as exc:
        result["a_rows"] = "%s: %s" % (type(exc).__name__, exc)
    pool.put(a)
    # Both parent connections (B sat idle in the pool) still answer.
    both = [pool.get(timeout=5), pool.get(timeout=5)]
    result["parent_sessions"] = sorted(_session(driver, c) for c in both)
    result["parent_queries"] = []
    for conn in both:
        try:
            cur = conn.cursor()
            result["parent_queries"].append(_run(cur, "SELECT 1")[0][0])
            cur.close()
        except Exception as exc:
            result["parent_queries"].append("%s: %s" % (type(exc).__name__, exc))
        pool.put(conn)
    # The server's view: both parent sessions alive, the child's gone.
    if driver == "psycopg2":
        admin = dbutil.PgAdmin(settings["connect"])
        alive = lambda: set(admin.pids(settings["marker"]))  # noqa: E731
    else:
        admin = dbutil.MysqlAdmin(settings["connect"])
        ids = {a_id, b_id, result.get("child_session")} - {None}
        alive = lambda: admin.alive(ids)  # noqa: E731
    deadline = time.monotonic() + 5
    child_only = result.get("child_session") not in (a_id, b_id)
    while (
        child_only
        and result.get("child_session") in alive()
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    result["server_sessions"] = sorted(alive())
    result["stats"] = {k: pool.stats()[k] for k in ("size", "free", "checked_out")}
    admin.close()
    pool.close()
    return result


if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if root not in sys.path:
        sys.path.insert(0, root)
    parent = os.getpid()
    try:
        out = {"result": main(DRIVER, json.loads(sys.argv[2]))}
    except BaseException:
        out = {"error": traceback.format_exc()}
    if os.getpid() == parent:
        print(json.dumps(out))
