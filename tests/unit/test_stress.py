"""Randomized stress: many green threads on a small pool, with random holds,
errors, timeouts and kills while waiting, connecting, holding and
returning.  The invariants of DESIGN.md are checked all along and at the
end:

- ``current_size`` stays within ``0..max_size`` at every observation, and
  the fake server never sees more than ``max_size`` open connections;
- no connection is ever held by two holders at once;
- no holder ever gets a closed connection;
- at the end, every slot is back: ``current_size == free + checked_out +
  opening`` with nothing checked out or opening, ``free() == max_size``,
  and every open connection is in the pool.
"""

from __future__ import annotations

import gc
import random

import eventlet
import eventlet.greenthread
import pytest
from greenlet import GreenletExit, getcurrent

import db_pool
from tests.common.test_compat import wait_until
from tests.fakedb import FakeDB, OperationalError
from tests.unit._fakes import HolderTracker, raw_of


class Observer:
    """Checks the pool's size invariants each time it is asked to look."""

    def __init__(self, pool, db, tracker, check_server=True):
        self.pool = pool
        self.db = db
        self.tracker = tracker
        self.check_server = check_server
        self.observations = 0
        self.violations = []
        self.max_seen = 0

    def look(self, where):
        pool = self.pool
        stats = pool.stats()
        size = stats["size"]
        self.observations += 1
        self.max_seen = max(self.max_seen, size)
        problems = []
        if not 0 <= size <= pool.max_size:
            problems.append("current_size=%d" % size)
        if size != pool.current_size:
            problems.append(
                "stats size %d != current_size %d" % (size, pool.current_size)
            )
        if stats["free"] + stats["checked_out"] + stats["opening"] != size:
            problems.append("free+checked_out+opening != size: %r" % (stats,))
        if min(stats["free"], stats["checked_out"], stats["opening"]) < 0:
            problems.append("negative count: %r" % (stats,))
        if self.tracker.held() > pool.max_size:
            problems.append("%d holders" % self.tracker.held())
        if self.check_server and self.db.open_count > pool.max_size:
            problems.append("server sees %d connections" % self.db.open_count)
        if problems:
            self.violations.append((where, problems))

    def run(self, stop):
        while not stop.ready():
            self.look("monitor")
            eventlet.sleep(0.0005)


class PhaseFakeDB(FakeDB):
    """Knows which green threads are inside ``connect()`` right now."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.connecting = set()

    def connect(self, *args, **kwargs):
        me = getcurrent()
        self.connecting.add(me)
        try:
            return super().connect(*args, **kwargs)
        finally:
            self.connecting.discard(me)


def run_stress(pool_cls, seed, threads, max_size, check_server):
    rng = random.Random(seed)
    db = PhaseFakeDB(connect_delay=0.002)

    def flaky_connect(args, kwargs):
        if rng.random() < 0.03:
            raise OperationalError("connect refused (random)")

    db.on_connect = flaky_connect
    pool = pool_cls(
        db,
        max_size=max_size,
        max_idle=0.02,  # short lifetimes: many reconnects, so many kills
        max_age=0.05,  # land while connecting
        max_uses=rng.choice([None, 7]),
        reconnect_delay=(0.001, 0.002),
    )
    tracker = HolderTracker()
    observer = Observer(pool, db, tracker, check_server)
    # Look at every state change too, not only at the monitor's ticks.
    pool.add_listener(
        {name: (lambda info, name=name: observer.look(name)) for name in db_pool.EVENTS}
    )
    errors = []
    outcomes = {"ok": 0, "timeout": 0, "killed": 0, "connect_error": 0, "app_error": 0}
    phase = {}  # green thread -> "get", "holding", "returning"

    def hold(conn):
        me = getcurrent()
        raw = raw_of(conn)
        if raw is None or raw.closed:
            errors.append("got a closed or empty connection: %r" % (raw,))
        tracker.acquire(raw)
        phase[me] = "holding"
        observer.look("holding")
        try:
            conn.cursor().execute("UPDATE t SET n = n + 1")
            if rng.random() < 0.2:
                raw.rollback_delay = rng.choice([0, 0.001])  # slow return
            eventlet.sleep(rng.choice([0, 0, 0.0005, 0.001, 0.003]))
        finally:
            tracker.release(raw)
            phase[me] = "returning"

    def worker(n):
        me = getcurrent()
        phase[me] = "get"
        mode = rng.random()
        try:
            if mode < 0.35:
                with pool.connection() as conn:
                    hold(conn)
                    if rng.random() < 0.1:
                        raise KeyError("application error")
            elif mode < 0.6:
                conn = pool.get()
                try:
                    hold(conn)
                finally:
                    pool.put(conn)
            elif mode < 0.75:
                # Bare get, no finally: a kill drops the wrapper, which the
                # pool must reclaim.
                conn = pool.get(timeout=rng.choice([0.005, 0.05, None]))
                hold(conn)
                pool.put(conn)
            elif mode < 0.9:
                with eventlet.Timeout(rng.choice([0.001, 0.003, 0.01]), False):
                    with pool.item() as conn:
                        hold(conn)
            else:
                conn = pool.get(block=False)
                hold(conn)
                conn.close()
            outcomes["ok"] += 1
        except db_pool.PoolTimeout:
            outcomes["timeout"] += 1
        except OperationalError:
            outcomes["connect_error"] += 1
        except KeyError:
            outcomes["app_error"] += 1
        except GreenletExit:
            outcomes["killed"] += 1
            raise
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append("worker %d: %r" % (n, exc))
        finally:
            phase.pop(me, None)
            finished.append(n)
            if len(finished) == threads:
                all_done.send()

    stop = eventlet.Event()
    monitor = eventlet.spawn(observer.run, stop)
    finished = []
    all_done = eventlet.Event()
    # Plain greenlets (spawn_n), not GreenThreads: a dead GreenThread keeps
    # its exception's traceback, and with it a killed holder's wrapper,
    # alive; a real server drops its finished green threads.
    workers = []
    for n in range(threads):
        workers.append(eventlet.spawn_n(worker, n))
        if rng.random() < 0.3:
            eventlet.sleep(0)

    # The killer: kills workers at random moments, wherever they are, and
    # makes sure to catch some while waiting, connecting and holding.
    kills = {"waiting": 0, "connecting": 0, "holding": 0, "returning": 0}
    budget = threads // 4
    while budget > 0:
        eventlet.sleep(rng.choice([0, 0.0005, 0.001]))
        live = [w for w in workers if not w.dead and w in phase]
        if not live:
            break
        by_phase = {
            "connecting": [w for w in live if w in db.connecting],
            "holding": [w for w in live if phase.get(w) == "holding"],
            "waiting": [
                w for w in live if phase.get(w) == "get" and w not in db.connecting
            ],
        }
        wanted = [
            p
            for p in ("connecting", "holding", "waiting")
            if kills[p] < 3 and by_phase[p]
        ]
        if wanted:
            victim = rng.choice(by_phase[rng.choice(wanted)])
        elif rng.random() < 0.3:
            victim = rng.choice(live)
        else:
            continue
        if victim in db.connecting:
            where = "connecting"
        else:
            where = {"get": "waiting"}.get(phase.get(victim), phase.get(victim))
        eventlet.greenthread.kill(victim)
        kills[where] += 1
        budget -= 1
    with eventlet.Timeout(
        20, AssertionError("workers still running: %d" % (threads - len(finished)))
    ):
        all_done.wait()
    del workers
    live = by_phase = victim = None
    gc.collect()
    stop.send()
    monitor.wait()
    return pool, db, tracker, observer, errors, outcomes, kills


def final_checks(pool, db, tracker, observer, errors, check_server=True):
    db.on_connect = None  # no more random connect failures
    # Every dropped wrapper reclaimed, every slot back.
    wait_until(
        lambda: pool.stats()["checked_out"] == 0 and pool.stats()["opening"] == 0
    )
    observer.look("end")
    assert errors == []
    assert tracker.overlaps == []
    assert observer.violations == []
    assert observer.observations > 20
    assert tracker.held() == 0
    assert 0 <= pool.current_size <= pool.max_size
    assert pool.current_size == len(pool.free_items)
    assert pool.free() == pool.max_size
    assert pool.waiting() == 0
    if check_server:
        assert db.max_open <= pool.max_size
        # Every open connection is one the pool holds: nothing leaked.
        assert db.open_count == pool.current_size
    # And the pool still works at full width.
    conns = [pool.get_nowait() for _ in range(pool.max_size)]
    assert len({id(raw_of(c)) for c in conns}) == pool.max_size
    for c in conns:
        pool.put(c)
    pool.close()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_stress_raw_pool(seed):
    pool, db, tracker, observer, errors, outcomes, kills = run_stress(
        db_pool.RawConnectionPool, seed, threads=300, max_size=5, check_server=True
    )
    # Kills landed everywhere a caller can be.
    assert kills["waiting"] > 0 and kills["connecting"] > 0, kills
    assert kills["holding"] > 0, kills
    assert outcomes["ok"] > 50
    assert 0 < outcomes["killed"] <= sum(kills.values())
    assert observer.max_seen == 5  # the pool really was under pressure
    final_checks(pool, db, tracker, observer, errors, check_server=True)
    assert db.open_count == 0


def test_stress_tpooled_pool():
    # A green thread killed while its connect runs in an OS thread cannot
    # stop that thread: the server may see the abandoned connection, so only
    # the pool's own invariants are checked here.
    pool, db, tracker, observer, errors, outcomes, kills = run_stress(
        db_pool.TpooledConnectionPool, 7, threads=120, max_size=4, check_server=False
    )
    # A refused connect early on makes the callers that need a new
    # connection fail fast for up to a second (the whole run, here), with
    # the driver's error: then most outcomes are connect errors.
    assert outcomes["ok"] > 0
    assert outcomes["ok"] + outcomes["connect_error"] > 20, outcomes
    final_checks(pool, db, tracker, observer, errors, check_server=False)
