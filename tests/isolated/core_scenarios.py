"""The core's scenarios against real database servers, one driver at a time.

Each ``scenario_*`` function builds pools through a *backend* (an adapter for
one driver and its server), exercises one behaviour of the core, and returns
a JSON-friendly dict of what it observed.  It asserts nothing, so that a
failing scenario still reports every number; the test modules assert:

- ``tests/realdb/test_core_pg.py`` runs them in the pytest process with
  psycopg2 in a RawConnectionPool made green by a wait callback, and in a
  TpooledConnectionPool with the wait callback removed;
- ``tests/realdb/test_core_mysql.py`` runs them in the pytest process with
  MySQLdb (mysqlclient) in a TpooledConnectionPool, and with PyMySQL in a
  RawConnectionPool inside a monkey-patched interpreter
  (``tests/isolated/core_pymysql.py``).

Server-side numbers always come from the server: ``pg_stat_activity``
filtered by an application name unique to the test, and MariaDB's
``information_schema.PROCESSLIST`` filtered by the connection ids that the
pool opened (collected through the pool's ``connection_created`` event).
"""

from __future__ import annotations

import gc
import time
import traceback

import eventlet
import eventlet.greenthread

import db_pool
from tests import dbutil
from tests.proxy import Blackhole, Proxy

monotonic = time.monotonic


# -- small tools ---------------------------------------------------------------------


def wait_until(predicate, timeout=5.0, interval=0.01):
    """Poll *predicate* with green sleeps; True once it holds, False on timeout."""
    deadline = monotonic() + timeout
    while True:
        if predicate():
            return True
        if monotonic() >= deadline:
            return False
        eventlet.sleep(interval)


def collected():
    """Run the garbage collector; always True (for use in predicates)."""
    gc.collect()
    return True


def raw_connection(wrapper):
    """The driver's own connection behind a pooled wrapper (and a tpool.Proxy)."""
    base = wrapper._base
    return getattr(base, "_obj", base)


def error_name(exc):
    return type(exc).__name__ if exc is not None else None


class Sampler:
    """Calls *probe* from a green thread every *interval* seconds until stopped.

    The samples are the values that the server (or the pool) reported while
    the workload ran; a blocking probe only pauses the hub for one local
    query.
    """

    def __init__(self, probe, interval=0.01):
        self.samples = []
        self.errors = []
        self._probe = probe
        self._running = True
        self._thread = eventlet.spawn(self._run, interval)

    def _run(self, interval):
        while self._running:
            try:
                self.samples.append(self._probe())
            except Exception as exc:  # reported, never raised in the hub
                self.errors.append(repr(exc))
            eventlet.sleep(interval)

    def stop(self):
        self._running = False
        self._thread.wait()
        return self.samples


# -- backends -----------------------------------------------------------------------


class Backend:
    """What a scenario needs to know about one driver and its server."""

    label = "?"
    module = None

    def __init__(self, kwargs, marker):
        self.kwargs = dict(kwargs)
        self.marker = marker
        self.pools = []
        self.tables = []

    @property
    def address(self):
        return self.kwargs.get("host", "127.0.0.1"), int(self.kwargs.get("port", 0))

    def make_pool(self, pool_class, *, address=None, **options):
        """A pool of this backend's connections (through *address* if given)."""
        options.setdefault("name", self.marker)
        listeners = list(options.pop("listeners", ()))
        listeners.append({"connection_created": self._created})
        pool = pool_class(
            self.module,
            listeners=listeners,
            connect_args=self.connect_args(address),
            **options,
        )
        self.pools.append(pool)
        return pool

    def connect_args(self, address=None):
        args = dict(self.kwargs)
        if address is not None:
            args["host"], args["port"] = address
        return args

    def _created(self, info):
        pass

    def query(self, conn, sql):
        """Run *sql* on a pooled connection and return its rows as lists."""
        cur = conn.cursor()
        try:
            cur.execute(sql)
            rows = cur.fetchall() if cur.description else []
            return [list(row) for row in rows]
        finally:
            cur.close()

    def scalar(self, conn, sql):
        return self.query(conn, sql)[0][0]

    def admin_scalar(self, sql):
        return self.admin.query(sql)[0][0]

    def create_table(self):
        """A new, empty table of one INTEGER column, dropped by close()."""
        name = "%s_t%d" % (self.marker, len(self.tables) + 1)
        self.admin.query("CREATE TABLE %s (a INTEGER)%s" % (name, self.table_suffix))
        self.tables.append(name)
        return name

    table_suffix = ""

    def close(self):
        for pool in self.pools:
            try:
                pool.close()
            except Exception:
                pass
        self.pools = []
        for name in self.tables:
            try:
                self.admin.query("DROP TABLE IF EXISTS %s" % name)
            except Exception:
                pass
        self.tables = []
        self.cleanup_sessions()
        self.admin.close()


class PgBackend(Backend):
    """psycopg2 against PostgreSQL; sessions marked by application_name."""

    label = "postgresql"

    def __init__(self, kwargs, marker):
        super().__init__(kwargs, marker)
        import psycopg2

        self.module = psycopg2
        self.admin = dbutil.PgAdmin(self.kwargs)

    def connect_args(self, address=None):
        args = super().connect_args(address)
        args["application_name"] = self.marker
        # A backend whose client went away mid-query notices it within
        # 100 ms instead of at the end of the query (PostgreSQL >= 14).
        args["options"] = "-c client_connection_check_interval=100"
        return args

    def count(self):
        return self.admin.count(self.marker)

    def connection_id(self, conn):
        return conn.info.backend_pid

    def sleep_sql(self, seconds):
        return "SELECT pg_sleep(%s)" % seconds

    def running_sleep(self):
        """How many of this test's sessions are running pg_sleep right now."""
        return self.admin.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND state = 'active' AND query LIKE %s",
            (self.marker, "%pg_sleep%"),
        )[0][0]

    def idle_in_transaction(self, conn_id):
        return self.admin.states(self.marker).get(conn_id) == "idle in transaction"

    def set_repeatable_read(self, conn):
        conn.set_session(isolation_level="REPEATABLE READ")

    def cleanup_sessions(self):
        try:
            self.admin.terminate(self.marker)
        except Exception:
            pass


class MysqlBackend(Backend):
    """PyMySQL or MySQLdb against MariaDB; sessions known by connection id."""

    label = "mariadb"
    table_suffix = " ENGINE=InnoDB"

    def __init__(self, module, kwargs, marker):
        super().__init__(kwargs, marker)
        self.module = module
        self.ids = set()
        self.admin = dbutil.MysqlAdmin(self.kwargs)

    def _created(self, info):
        # No I/O: PyMySQL keeps the id from the handshake, and MySQLdb's
        # thread_id() reads the client structure (called on the real
        # connection, not through the tpool.Proxy).
        raw = info["connection"]
        raw = getattr(raw, "_obj", raw)
        self.ids.add(int(raw.thread_id()))

    def count(self):
        return self.admin.count(self.ids)

    def connection_id(self, conn):
        return int(conn.thread_id())

    def sleep_sql(self, seconds):
        return "SELECT SLEEP(%s)" % seconds

    def running_sleep(self):
        ids = sorted(self.ids)
        if not ids:
            return 0
        return self.admin.query(
            "SELECT count(*) FROM information_schema.PROCESSLIST"
            " WHERE ID IN (%s) AND INFO LIKE %%s" % ", ".join(["%s"] * len(ids)),
            ids + ["%SLEEP(%"],
        )[0][0]

    def idle_in_transaction(self, conn_id):
        # Only transactions that read or wrote InnoDB tables are listed.
        return bool(
            self.admin.query(
                "SELECT count(*) FROM information_schema.INNODB_TRX"
                " WHERE trx_mysql_thread_id = %s",
                (conn_id,),
            )[0][0]
        )

    def set_repeatable_read(self, conn):
        self.query(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def cleanup_sessions(self):
        try:
            self.admin.kill(self.ids)
        except Exception:
            pass


# -- scenarios ----------------------------------------------------------------------


def scenario_query(b, pool_class):
    pool = b.make_pool(pool_class, max_size=2)
    conn = pool.get()
    try:
        row = b.query(conn, "SELECT 1 + 41")[0]
        conn_id = b.connection_id(conn)
    finally:
        pool.put(conn)
    return {
        "row": row,
        "server_count": b.count(),
        "size": pool.current_size,
        "free": len(pool.free_items),
        "connection_id_known": conn_id in getattr(b, "ids", {conn_id}),
    }


def scenario_rollback_on_return(b, pool_class):
    """Uncommitted work is rolled back on return, never seen by the next holder."""
    table = b.create_table()
    pool = b.make_pool(pool_class, max_size=1)
    conn = pool.get()
    first_id = b.connection_id(conn)
    b.query(conn, "INSERT INTO %s VALUES (1)" % table)
    seen_by_holder = b.scalar(conn, "SELECT count(*) FROM %s" % table)
    pool.put(conn)
    in_tx_after_return = b.idle_in_transaction(first_id)
    conn = pool.get()
    second_id = b.connection_id(conn)
    seen_by_next_holder = b.scalar(conn, "SELECT count(*) FROM %s" % table)
    b.query(conn, "INSERT INTO %s VALUES (2)" % table)
    conn.commit()
    pool.put(conn)
    return {
        "same_connection": first_id == second_id,
        "seen_by_holder": seen_by_holder,
        "in_transaction_after_return": in_tx_after_return,
        "seen_by_next_holder": seen_by_next_holder,
        "committed_rows_seen_by_others": [
            list(r) for r in b.admin.query("SELECT a FROM %s ORDER BY a" % table)
        ],
    }


def scenario_select_snapshot(b, pool_class):
    """A SELECT-only transaction (autocommit off, REPEATABLE READ) must not
    outlive the checkout: the next holder sees rows committed meanwhile."""
    table = b.create_table()
    pool = b.make_pool(pool_class, max_size=1)
    conn = pool.get()
    b.set_repeatable_read(conn)
    conn.commit()
    conn_id = b.connection_id(conn)
    before = b.scalar(conn, "SELECT count(*) FROM %s" % table)
    stats0 = pool.stats()
    pool.put(conn)
    stats1 = pool.stats()
    in_tx_after_return = b.idle_in_transaction(conn_id)
    b.admin.query("INSERT INTO %s VALUES (7)" % table)  # autocommit
    conn = pool.get()
    same = b.connection_id(conn) == conn_id
    after = b.scalar(conn, "SELECT count(*) FROM %s" % table)
    # End the transaction ourselves: the next return has nothing to reset.
    conn.commit()
    stats2 = pool.stats()
    pool.put(conn)
    stats3 = pool.stats()
    return {
        "before": before,
        "after": after,
        "same_connection": same,
        "in_transaction_after_return": in_tx_after_return,
        "resets_for_select": stats1["resets"] - stats0["resets"],
        "skipped_for_select": stats1["resets_skipped"] - stats0["resets_skipped"],
        "resets_after_commit": stats3["resets"] - stats2["resets"],
        "skipped_after_commit": stats3["resets_skipped"] - stats2["resets_skipped"],
    }


def _open_and_return(b, pool, n):
    conns = [pool.get() for _ in range(n)]
    for conn in conns:
        b.query(conn, "SELECT 1")
    for conn in conns:
        pool.put(conn)


def scenario_max_idle(b, pool_class):
    """Idle connections are closed by the pool's timer after max_idle."""
    pool = b.make_pool(pool_class, max_size=3, max_idle=0.5, max_age=None)
    _open_and_return(b, pool, 3)
    returned = monotonic()
    at_return = b.count()
    dropped = wait_until(lambda: b.count() == 0, timeout=6.0, interval=0.05)
    took = monotonic() - returned
    stats = pool.stats()
    return {
        "at_return": at_return,
        "dropped": dropped,
        "seconds_to_drop": took,
        "after": b.count(),
        "size": pool.current_size,
        "expired_idle": stats["expired_idle"],
    }


def scenario_max_age(b, pool_class):
    """Connections older than max_age are closed: idle ones by the timer, a
    lent one when it comes back."""
    pool = b.make_pool(
        pool_class, max_size=3, max_idle=None, max_age=1.0, max_age_jitter=0
    )
    conns = [pool.get() for _ in range(3)]
    for conn in conns:
        b.query(conn, "SELECT 1")
    held = conns.pop()
    for conn in conns:
        pool.put(conn)
    at_return = b.count()
    idle_dropped = wait_until(lambda: b.count() == 1, timeout=6.0, interval=0.05)
    while_held = b.count()
    held_still_works = b.query(held, "SELECT 5")[0][0] == 5
    pool.put(held)
    all_dropped = wait_until(lambda: b.count() == 0, timeout=3.0, interval=0.05)
    stats = pool.stats()
    return {
        "at_return": at_return,
        "idle_dropped": idle_dropped,
        "while_held": while_held,
        "held_still_works": held_still_works,
        "all_dropped": all_dropped,
        "after": b.count(),
        "size": pool.current_size,
        "expired_age": stats["expired_age"],
    }


def scenario_many_green_threads(b, pool_class, threads=500, max_size=5):
    """Many green threads share a small pool; the server never sees more
    connections than max_size."""
    pool = b.make_pool(pool_class, max_size=max_size)
    sql = b.sleep_sql(0.002)
    pool_sizes = []

    def probe():
        pool_sizes.append(pool.current_size)
        return b.count()

    sampler = Sampler(probe, 0.01)
    errors = []

    def worker(_):
        try:
            with pool.item() as conn:
                b.query(conn, sql)
            return True
        except Exception as exc:
            errors.append(repr(exc))
            return False

    start = monotonic()
    gpool = eventlet.GreenPool(threads)
    results = list(gpool.imap(worker, range(threads)))
    took = monotonic() - start
    samples = sampler.stop()
    final_count = b.count()
    stats = pool.stats()
    return {
        "threads": threads,
        "succeeded": sum(1 for r in results if r),
        "errors": errors[:5],
        "seconds": took,
        "samples": len(samples),
        "max_server_count": max(samples) if samples else None,
        "nonzero_samples": sum(1 for s in samples if s),
        "max_pool_size": max(pool_sizes) if pool_sizes else None,
        "sampler_errors": sampler.errors[:3],
        "final_server_count": final_count,
        "size": pool.current_size,
        "connections_opened": stats["connections_opened"],
        "checkouts": stats["checkouts"],
        "waits": stats["waits"],
    }


def scenario_overlap(b, pool_class, n=5, seconds=1):
    """n green threads each sleep *seconds* on the server, on a pool of n:
    the whole takes about one sleep, not the sum."""
    pool = b.make_pool(pool_class, max_size=n)
    sql = b.sleep_sql(seconds)
    errors = []

    def worker(_):
        try:
            with pool.item() as conn:
                b.query(conn, sql)
            return True
        except Exception as exc:
            errors.append(repr(exc))
            return False

    start = monotonic()
    results = list(eventlet.GreenPool(n).imap(worker, range(n)))
    took = monotonic() - start
    return {
        "n": n,
        "sleep": seconds,
        "succeeded": sum(1 for r in results if r),
        "errors": errors,
        "seconds": took,
        "connections_opened": pool.stats()["connections_opened"],
    }


def scenario_kill_waiting(b, pool_class):
    """A green thread killed (or timed out) while waiting loses no slot."""
    pool = b.make_pool(pool_class, max_size=1)
    held = pool.get()
    held_id = b.connection_id(held)
    waiter = eventlet.spawn(pool.get)
    queued = wait_until(lambda: pool.waiting() == 1, timeout=2.0, interval=0)
    waiter.kill()
    waiting_after_kill = pool.waiting()

    def timed_waiter():
        try:
            with eventlet.Timeout(0.2):
                pool.get()
        except eventlet.Timeout:
            return "Timeout"
        return "got a connection"

    timed_result = eventlet.spawn(timed_waiter).wait()
    waiting_after_timeout = pool.waiting()
    size_while_held = pool.current_size
    pool.put(held)
    size_after_put = pool.current_size
    free_after_put = pool.free()
    conn = pool.get(timeout=5)
    reused = b.connection_id(conn) == held_id
    works = b.query(conn, "SELECT 3")[0][0] == 3
    pool.put(conn)
    return {
        "queued": queued,
        "waiting_after_kill": waiting_after_kill,
        "timed_waiter": timed_result,
        "waiting_after_timeout": waiting_after_timeout,
        "size_while_held": size_while_held,
        "size_after_put": size_after_put,
        "free_after_put": free_after_put,
        "later_checkout_reused": reused,
        "later_checkout_works": works,
        "server_count": b.count(),
        "size": pool.current_size,
    }


def scenario_kill_connecting(b, pool_class):
    """A green thread killed while its connect hangs loses no slot."""
    with Proxy(*b.address) as proxy:
        pool = b.make_pool(
            pool_class,
            max_size=1,
            connect_timeout=10,
            address=("127.0.0.1", proxy.port),
        )
        proxy.blackhole()
        getter = eventlet.spawn(pool.get)
        connecting = wait_until(
            lambda: pool.stats()["opening"] == 1 and proxy.connection_count >= 1,
            timeout=3.0,
        )
        opening_before = pool.stats()["opening"]
        getter.kill()
        size_after_kill = pool.current_size
        opening_after_kill = pool.stats()["opening"]
        free_after_kill = pool.free()
        # Let the abandoned connect fail (an OS thread may still be in it),
        # then let traffic through again.
        proxy.cut()
        proxy.pass_traffic()
        error = None
        works = False
        try:
            conn = pool.get(timeout=5)
            try:
                works = b.query(conn, "SELECT 4")[0][0] == 4
            finally:
                pool.put(conn)
        except Exception as exc:
            error = repr(exc)
        consistent = wait_until(lambda: b.count() == pool.current_size, timeout=5.0)
        return {
            "connecting": connecting,
            "opening_before_kill": opening_before,
            "size_after_kill": size_after_kill,
            "opening_after_kill": opening_after_kill,
            "free_after_kill": free_after_kill,
            "later_checkout_works": works,
            "later_checkout_error": error,
            "size": pool.current_size,
            "server_consistent": consistent,
            "server_count": b.count(),
        }


def scenario_kill_holding(b, pool_class, dropped=False):
    """A green thread killed mid-query loses no slot.

    With *dropped*, the holder never returns its connection (no ``with``,
    no ``finally``): the wrapper is dropped and the pool reclaims it.
    """
    pool = b.make_pool(pool_class, max_size=1)
    sql = b.sleep_sql(1.5)
    state = {}

    def hold_with_lease():
        with pool.item() as conn:
            state["id"] = b.connection_id(conn)
            b.query(conn, sql)

    def hold_and_drop():
        conn = pool.get()
        state["id"] = b.connection_id(conn)
        b.query(conn, sql)
        pool.put(conn)

    if dropped:
        holder = eventlet.spawn_n(hold_and_drop)
    else:
        holder = eventlet.spawn(hold_with_lease)
    in_query = wait_until(lambda: b.running_sleep() == 1, timeout=3.0, interval=0.02)
    killed_at = monotonic()
    eventlet.greenthread.kill(holder)
    del holder
    gc.collect()
    # The slot is back once nothing is lent out and one get() can be served
    # at once: the connection was closed, or (a dropped wrapper whose reset
    # waited for the query to end in its OS thread) cleaned and kept.
    #
    # The garbage collector runs on every poll: an error raised through
    # eventlet.tpool (MySQLdb refuses a second call while an OS thread is
    # still inside the killed query) keeps the holder's frames, and so its
    # wrapper and cursor, in a reference cycle; a dropped wrapper is only
    # reclaimed, and a connection whose close() was refused only closed,
    # once that cycle is collected.
    slot_back = wait_until(
        lambda: collected() and pool.free() == 1 and pool.stats()["checked_out"] == 0,
        timeout=5.0,
        interval=0.05,
    )
    slot_back_after = monotonic() - killed_at
    error = None
    works = False
    new_id = None
    try:
        conn = pool.get(timeout=5)
        try:
            new_id = b.connection_id(conn)
            works = b.query(conn, "SELECT 6")[0][0] == 6
        finally:
            pool.put(conn)
    except Exception as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc))
    consistent = wait_until(
        lambda: collected() and b.count() == pool.current_size,
        timeout=6.0,
        interval=0.05,
    )
    stats = pool.stats()
    return {
        "in_query": in_query,
        "slot_back": slot_back,
        "slot_back_after": slot_back_after,
        "later_checkout_works": works,
        "later_checkout_error": error,
        "new_connection": new_id is not None and new_id != state.get("id"),
        "size": pool.current_size,
        "server_consistent": consistent,
        "server_count": b.count(),
        "leaks_reclaimed": stats["leaks_reclaimed"],
    }


def scenario_connect_timeout(b, pool_class, connect_timeout=1.0):
    """connect_timeout fires against a server that accepts and never answers."""
    with Blackhole() as hole:
        pool = b.make_pool(
            pool_class,
            max_size=1,
            connect_timeout=connect_timeout,
            address=("127.0.0.1", hole.port),
        )
        start = monotonic()
        error = None
        try:
            conn = pool.get()
        except BaseException as exc:  # noqa: B036 - a Timeout must be reported
            error = exc
        else:
            pool.put(conn)
        took = monotonic() - start
        accepted = hole.accepted_count
        result = {
            "connect_timeout": connect_timeout,
            "error": error_name(error),
            "is_connect_timeout": isinstance(error, db_pool.ConnectTimeout),
            "is_pool_error": isinstance(error, db_pool.PoolError),
            "seconds": took,
            "accepted": accepted,
            "size_after": pool.current_size,
            "free_after": pool.free(),
            "connect_failures": pool.stats()["connect_failures"],
        }
        pool.close()
    return result


def scenario_deadline_before_connect_timeout(
    b, pool_class, timeout=0.5, connect_timeout=5
):
    """get(timeout=) shorter than connect_timeout: PoolTimeout at the deadline."""
    with Blackhole() as hole:
        pool = b.make_pool(
            pool_class,
            max_size=1,
            connect_timeout=connect_timeout,
            address=("127.0.0.1", hole.port),
        )
        start = monotonic()
        error = None
        try:
            conn = pool.get(timeout=timeout)
        except BaseException as exc:  # noqa: B036
            error = exc
        else:
            pool.put(conn)
        took = monotonic() - start
        result = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "error": error_name(error),
            "is_pool_timeout": isinstance(error, db_pool.PoolTimeout),
            "seconds": took,
            "size_after": pool.current_size,
        }
        pool.close()
    return result


def scenario_mysql_passthrough(b, pool_class):
    """PyMySQL's / MySQLdb's own methods through the pooled wrapper."""
    table = b.create_table()
    pool = b.make_pool(pool_class, max_size=1)
    conn = pool.get()
    out = {}
    conn.ping()
    out["ping_ok"] = True
    out["thread_id_matches"] = conn.thread_id() == b.scalar(
        conn, "SELECT CONNECTION_ID()"
    )
    database = b.scalar(conn, "SELECT DATABASE()")
    conn.select_db("information_schema")
    out["after_select_db"] = b.scalar(conn, "SELECT DATABASE()")
    conn.select_db(database)
    out["after_select_back"] = b.scalar(conn, "SELECT DATABASE()") == database
    conn.autocommit(True)
    out["autocommit_flag"] = bool(conn.get_autocommit())
    b.query(conn, "INSERT INTO %s VALUES (1)" % table)
    out["autocommit_row_seen_by_others"] = b.admin_scalar(
        "SELECT count(*) FROM %s" % table
    )
    conn.autocommit(False)
    b.query(conn, "INSERT INTO %s VALUES (2)" % table)
    out["uncommitted_row_seen_by_others"] = b.admin_scalar(
        "SELECT count(*) FROM %s WHERE a = 2" % table
    )
    conn.rollback()
    # The drivers' own context manager closes the connection at exit.
    with conn as inner:
        out["enter_gives_wrapper"] = inner is conn
        b.query(inner, "SELECT 1")
    out["open_after_with"] = bool(raw_connection(conn).open)
    count_before_put = b.count()
    pool.put(conn)
    out["size_after_put"] = pool.current_size
    out["free_items_after_put"] = len(pool.free_items)
    out["server_count_before_put"] = count_before_put
    out["server_count_dropped"] = wait_until(lambda: b.count() == 0, timeout=3.0)
    try:
        conn.thread_id()
    except AttributeError as exc:
        out["use_after_return"] = type(exc).__name__
        out["use_after_return_message"] = str(exc)
    else:
        out["use_after_return"] = None
    conn2 = pool.get()
    out["next_checkout_works"] = b.scalar(conn2, "SELECT 8") == 8
    pool.put(conn2)
    return out


def scenario_pg_passthrough(b, pool_class):
    """psycopg2's attributes (read and write) and its context manager."""
    table = b.create_table()
    pool = b.make_pool(pool_class, max_size=1)
    conn = pool.get()
    raw = raw_connection(conn)
    out = {}
    out["closed"] = conn.closed
    out["backend_pid_matches"] = conn.info.backend_pid == b.scalar(
        conn, "SELECT pg_backend_pid()"
    )
    conn.rollback()
    conn.autocommit = True
    out["wrapper_autocommit"] = conn.autocommit
    out["raw_autocommit"] = raw.autocommit
    b.query(conn, "INSERT INTO %s VALUES (1)" % table)
    out["status_after_autocommit_insert"] = raw.info.transaction_status
    out["autocommit_row_seen_by_others"] = b.admin_scalar(
        "SELECT count(*) FROM %s" % table
    )
    b.query(conn, "DO $$ BEGIN RAISE NOTICE 'dbp-notice-42'; END $$")
    out["notices"] = [str(n) for n in conn.notices]
    conn.autocommit = False
    out["raw_autocommit_off"] = raw.autocommit
    # psycopg2's own context manager: commit on success, roll back on error,
    # and the connection stays open.
    with conn as inner:
        out["enter_gives_wrapper"] = inner is conn
        b.query(inner, "INSERT INTO %s VALUES (2)" % table)
    out["with_committed"] = b.admin_scalar(
        "SELECT count(*) FROM %s WHERE a = 2" % table
    )
    try:
        with conn:
            b.query(conn, "INSERT INTO %s VALUES (3)" % table)
            raise KeyError("boom")
    except KeyError:
        pass
    out["with_rolled_back"] = (
        b.admin_scalar("SELECT count(*) FROM %s WHERE a = 3" % table) == 0
    )
    out["closed_after_with"] = conn.closed
    pool.put(conn)
    out["free_after_put"] = len(pool.free_items)
    for name, action in (
        ("read", lambda: conn.closed),
        ("write", lambda: setattr(conn, "autocommit", True)),
        ("call", lambda: conn.cursor()),
    ):
        try:
            action()
        except AttributeError as exc:
            out["after_return_" + name] = type(exc).__name__
        else:
            out["after_return_" + name] = None
    return out


SCENARIOS = {
    name[len("scenario_") :]: func
    for name, func in list(globals().items())
    if name.startswith("scenario_")
}
