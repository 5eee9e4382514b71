"""Fork safety: after os.fork(), the child never gets one of the parent's
connections from get() (it opens its own) and never closes, rolls back or
otherwise touches the parent's connections, not even through put(), clear(),
close() or garbage collection.  The child reports what it saw through a
pipe; the fake records every call."""

from __future__ import annotations

import gc
import json
import os
import signal
import time

import eventlet
import pytest

import db_pool
from tests.fakedb import FakeDB
from tests.unit._fakes import raw_of

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()"),
    # eventlet's own at-fork hook warns that forking is risky: known, and
    # exactly what these tests are about.
    pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning"),
]


def run_in_child(child):
    """Run *child()* in a forked process; return the dict it returns."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            result = child()
            os.write(write_end, json.dumps(result).encode())
            code = 0
        except BaseException as exc:  # reported to the parent
            try:
                os.write(write_end, json.dumps({"error": repr(exc)}).encode())
            except Exception:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child process hung")
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    result = json.loads(b"".join(chunks) or b"{}")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, result
    return result


def touched(conns):
    return {
        "close_calls": sum(c.close_calls for c in conns),
        "rollbacks": sum(c.rollbacks for c in conns),
        "commits": sum(c.commits for c in conns),
        "pings": sum(c.pings for c in conns),
        "cursors": sum(c.cursors for c in conns),
    }


def test_child_opens_its_own_connections_and_never_touches_the_parents():
    db = FakeDB()
    pool = db_pool.RawConnectionPool(
        db, min_size=2, max_size=3, pre_ping=True, pre_ping_idle=0
    )
    lent = pool.get()  # lent in the parent when it forks
    parent_conns = list(db.connections)
    parent_ids = [c.id for c in parent_conns]
    before = touched(parent_conns)

    def child():
        got = []
        for _ in range(3):  # the whole pool's width
            got.append(pool.get())
        ids = [raw_of(c).id for c in got]
        for c in got:
            c.cursor().execute("SELECT 1")
            pool.put(c)
        pool.put(lent)  # the parent's lent connection, returned in the child
        with pool.connection() as conn:
            ids.append(raw_of(conn).id)
        pool.clear()
        pool.close()
        gc.collect()
        eventlet.sleep(0.05)  # let any background work run
        return {
            "ids": ids,
            "touched": touched(parent_conns),
            "size": pool.current_size,
        }

    result = run_in_child(child)
    assert "error" not in result, result
    assert not set(result["ids"]) & set(parent_ids)
    assert len(set(result["ids"][:3])) == 3
    assert result["touched"] == before
    # The parent's pool and connections are unharmed.
    assert touched(parent_conns) == before
    assert not any(c.closed for c in parent_conns)
    lent.cursor().execute("SELECT 1")
    pool.put(lent)
    conn = pool.get()
    assert raw_of(conn).id in parent_ids
    pool.put(conn)
    pool.close()


def test_child_of_a_process_with_a_connector():
    db = FakeDB()
    connector = db_pool.DatabaseConnector(db, {}, db_pool.RawConnectionPool, min_size=1)
    pool = connector.get("h", "d")
    for _ in range(100):
        if pool.free_items:
            break
        eventlet.sleep(0.01)
    parent_conns = list(db.connections)
    assert parent_conns
    before = touched(parent_conns)

    def child():
        conn = connector.get("h", "d").get()
        new_id = raw_of(conn).id
        conn.close()
        connector.close()
        gc.collect()
        return {"new_id": new_id, "touched": touched(parent_conns)}

    result = run_in_child(child)
    assert "error" not in result, result
    assert result["new_id"] not in [c.id for c in parent_conns]
    assert result["touched"] == before
    connector.close()
