"""db_pool.prometheus: pools' stats scraped through prometheus_client's registry.

Every test builds its own ``CollectorRegistry``, drives pools on the fake
driver through a scripted scenario, scrapes with ``generate_latest`` and
parses the exposition text back, so what is checked is what Prometheus
would read.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import eventlet
import pytest

import db_pool
from db_pool import PoolTimeout, RawConnectionPool, TooManyWaiters

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from db_pool.pool import WAIT_BUCKETS  # noqa: E402
from db_pool.prometheus import PoolCollector, register, unregister  # noqa: E402


def scrape(registry):
    """``{(sample name, frozenset of labels): value}`` and the family types."""
    text = generate_latest(registry).decode()
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types, text


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def registry():
    return CollectorRegistry()


def _pool(make_pool, db, **kwargs):
    kwargs.setdefault("max_idle", None)
    kwargs.setdefault("max_age", None)
    return make_pool(RawConnectionPool, db, **kwargs)


def test_scripted_scenario_exact_values(make_pool, db, registry):
    pool = _pool(make_pool, db, max_size=2, name="orders")
    registry.register(PoolCollector([pool]))

    c1, c2 = pool.get(), pool.get()
    waiter = eventlet.spawn(pool.get)
    eventlet.sleep(0)  # the waiter queues up
    s, types, _ = scrape(registry)
    assert value(s, "db_pool_waiting", pool="orders") == 1
    assert value(s, "db_pool_connections", pool="orders", state="checked_out") == 2
    assert value(s, "db_pool_connections", pool="orders", state="free") == 0
    assert value(s, "db_pool_connections", pool="orders", state="opening") == 0
    assert value(s, "db_pool_size", pool="orders") == 2
    assert value(s, "db_pool_max_size", pool="orders") == 2
    assert value(s, "db_pool_min_size", pool="orders") == 0
    assert value(s, "db_pool_closed", pool="orders") == 0
    assert value(s, "db_pool_checkouts_total", pool="orders") == 2
    assert value(s, "db_pool_connections_opened_total", pool="orders") == 2
    assert types["db_pool_checkouts"] == "counter"
    assert types["db_pool_checkout_wait_seconds"] == "histogram"
    assert types["db_pool_hold_seconds"] == "summary"
    assert types["db_pool_waiting"] == "gauge"

    eventlet.sleep(0.03)  # the waiter waits at least this long
    pool.put(c1)
    c3 = waiter.wait()
    pool.put(c2)
    pool.put(c3)

    s, _, _ = scrape(registry)
    assert value(s, "db_pool_waiting", pool="orders") == 0
    assert value(s, "db_pool_connections", pool="orders", state="free") == 2
    assert value(s, "db_pool_checkouts_total", pool="orders") == 3
    assert value(s, "db_pool_connections_opened_total", pool="orders") == 2
    assert value(s, "db_pool_connections_closed_total", pool="orders") == 0
    # The histogram: two checkouts served at once, one that waited >= 30 ms.
    name = "db_pool_checkout_wait_seconds"
    assert value(s, name + "_count", pool="orders") == 3
    assert value(s, name + "_bucket", pool="orders", le="0.001") == 2
    assert value(s, name + "_bucket", pool="orders", le="0.025") == 2
    assert value(s, name + "_bucket", pool="orders", le="+Inf") == 3
    assert value(s, name + "_bucket", pool="orders", le="10.0") == 3
    assert value(s, name + "_sum", pool="orders") >= 0.03
    assert value(s, name + "_sum", pool="orders") == pytest.approx(
        pool.stats()["wait_time_total"]
    )
    assert value(s, "db_pool_checkout_wait_max_seconds", pool="orders") >= 0.03
    # Buckets are cumulative.
    bounds = ["%r" % float(b) for b in WAIT_BUCKETS] + ["+Inf"]
    counts = [value(s, name + "_bucket", pool="orders", le=b) for b in bounds]
    assert counts == sorted(counts)
    # Hold times: three returns; c1 was held for the 30 ms.
    assert value(s, "db_pool_hold_seconds_count", pool="orders") == 3
    assert value(s, "db_pool_hold_seconds_sum", pool="orders") >= 0.03
    assert value(s, "db_pool_connect_seconds_count", pool="orders") == 2
    assert (
        value(s, "db_pool_resets_total", pool="orders") == 3
    )  # no status: always roll back
    assert value(s, "db_pool_resets_skipped_total", pool="orders") == 0

    # Interval reporting with pop_stats() does not make counters go back.
    popped = pool.pop_stats()
    assert popped["checkouts"] == 3 and pool.stats()["checkouts"] == 0
    s, _, _ = scrape(registry)
    assert value(s, "db_pool_checkouts_total", pool="orders") == 3
    assert value(s, name + "_count", pool="orders") == 3
    assert value(s, name + "_bucket", pool="orders", le="0.001") == 2
    assert value(s, "db_pool_checkout_wait_max_seconds", pool="orders") >= 0.03
    pool.put(pool.get())
    s, _, _ = scrape(registry)
    assert value(s, "db_pool_checkouts_total", pool="orders") == 4
    assert value(s, name + "_bucket", pool="orders", le="0.001") == 3

    pool.clear()
    s, _, _ = scrape(registry)
    assert value(s, "db_pool_connections_closed_total", pool="orders") == 2
    assert value(s, "db_pool_size", pool="orders") == 0
    pool.close()
    s, _, _ = scrape(registry)
    assert value(s, "db_pool_closed", pool="orders") == 1


def test_discard_reasons(make_pool, db, registry):
    recycled = _pool(make_pool, db, name="recycled", max_uses=1)
    aged = _pool(make_pool, db, name="aged", max_age=0)
    broken = _pool(make_pool, db, name="broken")
    registry.register(PoolCollector([recycled, aged, broken]))
    for _ in range(3):
        recycled.put(recycled.get())
    for _ in range(2):
        aged.put(aged.get())
    conn = broken.get()
    conn._base.kill()  # the server dropped it while the caller held it
    broken.put(conn)  # its reset fails: discarded

    s, _, _ = scrape(registry)
    reasons = {
        pool: {
            reason: value(
                s, "db_pool_connections_discarded_total", pool=pool, reason=reason
            )
            for reason in ("dead", "reset_failed", "idle", "age", "uses")
        }
        for pool in ("recycled", "aged", "broken")
    }
    assert reasons["recycled"] == {
        "dead": 0,
        "reset_failed": 0,
        "idle": 0,
        "age": 0,
        "uses": 3,
    }
    assert reasons["aged"] == {
        "dead": 0,
        "reset_failed": 0,
        "idle": 0,
        "age": 2,
        "uses": 0,
    }
    assert reasons["broken"]["dead"] + reasons["broken"]["reset_failed"] == 1
    assert (
        reasons["broken"]["idle"] + reasons["broken"]["age"] + reasons["broken"]["uses"]
        == 0
    )
    assert value(s, "db_pool_connections_closed_total", pool="recycled") == 3
    assert value(s, "db_pool_connections_closed_total", pool="aged") == 2
    assert value(s, "db_pool_connections_closed_total", pool="broken") == 1
    assert value(s, "db_pool_connections_opened_total", pool="recycled") == 3
    assert value(s, "db_pool_size", pool="broken") == 0


def test_timeouts_rejections_and_connect_failures(make_pool, db, registry):
    pool = _pool(make_pool, db, name="busy", max_size=1, max_waiting=1)
    registry.register(PoolCollector([pool]))
    held = pool.get()
    with pytest.raises(PoolTimeout):
        pool.get(timeout=0.01)
    waiter = eventlet.spawn(pool.get)
    eventlet.sleep(0)
    with pytest.raises(TooManyWaiters):
        pool.get()
    pool.put(held)
    pool.put(waiter.wait())
    pool.clear()
    db.fail_next(2)
    for _ in range(2):
        with pytest.raises(db.OperationalError):
            pool.get()
    s, _, _ = scrape(registry)
    assert value(s, "db_pool_timeouts_total", pool="busy") == 1
    assert value(s, "db_pool_too_many_waiters_total", pool="busy") == 1
    # The first failure is a connect; the pool may fail the second at once
    # while the database is known down: every failure is in one counter.
    st = pool.stats()
    assert (
        value(s, "db_pool_connect_failures_total", pool="busy")
        == st["connect_failures"]
        >= 1
    )
    fast = st.get("connect_failures_fast", 0)
    assert st["connect_failures"] + fast == 2
    if "connect_failures_fast" in st:
        assert value(s, "db_pool_connect_failures_fast_total", pool="busy") == fast
    assert value(s, "db_pool_checkouts_total", pool="busy") == 2


def test_every_counter_of_stats_is_exported(make_pool, db, registry):
    pool = _pool(make_pool, db, name="all")
    registry.register(PoolCollector([pool]))
    pool.put(pool.get())
    s, _, _ = scrape(registry)
    names = {name for name, _ in s}
    st = pool.lifetime_stats()
    for key, val in st.items():
        if (
            key in ("name", "closed", "wait_buckets")
            or isinstance(val, (bool, str, dict))
            or val is None
        ):
            continue
        candidates = {
            "db_pool_%s" % key,
            "db_pool_%s_total" % key,
            "db_pool_%s_total" % key.replace("_total", ""),
        }
        mapped = {
            "free": "db_pool_connections",
            "checked_out": "db_pool_connections",
            "opening": "db_pool_connections",
            "waits": "db_pool_checkout_wait_seconds_count",
            "wait_time_total": "db_pool_checkout_wait_seconds_sum",
            "wait_time_max": "db_pool_checkout_wait_max_seconds",
            "hold_time_total": "db_pool_hold_seconds_sum",
            "connect_time_total": "db_pool_connect_seconds_sum",
            "discarded_dead": "db_pool_connections_discarded_total",
            "discarded_reset_failed": "db_pool_connections_discarded_total",
            "expired_idle": "db_pool_connections_discarded_total",
            "expired_age": "db_pool_connections_discarded_total",
            "recycled_uses": "db_pool_connections_discarded_total",
        }
        if key in mapped:
            candidates.add(mapped[key])
        assert candidates & names, "stats key %r is not exported" % key


def test_dropped_pools_disappear(db, registry):
    collector = PoolCollector()
    registry.register(collector)
    pool = RawConnectionPool(db, name="short-lived")
    collector.add(pool)
    s, _, _ = scrape(registry)
    assert value(s, "db_pool_size", pool="short-lived") == 0
    del pool
    gc.collect()
    s, _, text = scrape(registry)
    assert "short-lived" not in text
    assert collector.pools() == []


def test_names_must_be_distinct_and_remove(make_pool, db, registry):
    a = _pool(make_pool, db, name="same")
    b = _pool(make_pool, db, name="same")
    collector = PoolCollector([a])
    collector.add(a)  # the same pool again: fine
    with pytest.raises(ValueError, match="'same'"):
        collector.add(b)
    with pytest.raises(TypeError):
        collector.add(object())
    collector.remove(a)
    collector.add(b)
    assert [p for _, p in collector.pools()] == [b]


def test_connector_pools_appear_as_they_are_made(db, registry):
    connector = db_pool.DatabaseConnector(db, {"default": {}}, RawConnectionPool)
    try:
        registry.register(PoolCollector([connector]))
        connector.get("h1", "app")
        s, _, _ = scrape(registry)
        assert value(s, "db_pool_size", pool="h1/app") == 0
        pool2 = connector.get("h2", "app")
        pool2.put(pool2.get())
        s, _, _ = scrape(registry)
        assert value(s, "db_pool_checkouts_total", pool="h2/app") == 1
        assert value(s, "db_pool_checkouts_total", pool="h1/app") == 0
    finally:
        connector.close()


def test_same_name_through_two_connectors_stays_valid(db, registry):
    one = db_pool.DatabaseConnector(db, {"default": {}}, RawConnectionPool)
    two = db_pool.DatabaseConnector(db, {"default": {}}, RawConnectionPool)
    try:
        registry.register(PoolCollector([one, two]))
        one.get("h", "d")
        two.get("h", "d")
        s, _, _ = scrape(registry)
        assert value(s, "db_pool_size", pool="h/d") == 0
        assert value(s, "db_pool_size", pool="h/d#2") == 0
    finally:
        one.close()
        two.close()


def test_describe_lets_the_registry_refuse_duplicates(registry):
    registry.register(PoolCollector())
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(PoolCollector())
    registry.register(PoolCollector(namespace="other"))


def test_namespace(make_pool, db, registry):
    pool = _pool(make_pool, db, name="ns")
    registry.register(PoolCollector([pool], namespace="myapp_db"))
    pool.put(pool.get())
    s, _, text = scrape(registry)
    assert value(s, "myapp_db_checkouts_total", pool="ns") == 1
    assert "db_pool_" not in text.replace("myapp_db", "")


def test_register_helper(make_pool, db, registry):
    a = _pool(make_pool, db, name="a")
    b = _pool(make_pool, db, name="b")
    collector = register(a, registry)
    assert register(b, registry) is collector
    s, _, _ = scrape(registry)
    assert ("db_pool_size", frozenset({("pool", "a")})) in s
    assert ("db_pool_size", frozenset({("pool", "b")})) in s
    unregister(a, registry)
    _, _, text = scrape(registry)
    assert 'pool="a"' not in text and 'pool="b"' in text


def test_server_list_metrics(make_pool, db, registry):
    pool = _pool(make_pool, db, name="cluster", max_size=4, servers=["a:1", "b:2"])
    registry.register(PoolCollector([pool]))
    held = [pool.get() for _ in range(4)]
    s, _, _ = scrape(registry)
    servers = pool.stats()["servers"]
    assert len(servers) == 2
    for label, info in servers.items():
        assert value(s, "db_pool_server_up", pool="cluster", server=label) == 1
        assert (
            value(s, "db_pool_server_connections", pool="cluster", server=label)
            == info["open"]
        )
        assert (
            value(s, "db_pool_server_connects_total", pool="cluster", server=label)
            == info["connects"]
        )
    assert (
        sum(
            value(s, "db_pool_server_connects_total", pool="cluster", server=label)
            for label in servers
        )
        == 4
    )
    for conn in held:
        pool.put(conn)
    pool.pop_stats()  # server counters survive a reset too
    s, _, _ = scrape(registry)
    assert (
        sum(
            value(s, "db_pool_server_connects_total", pool="cluster", server=label)
            for label in servers
        )
        == 4
    )


def test_a_broken_pool_does_not_break_the_scrape(make_pool, db, registry, caplog):
    good = _pool(make_pool, db, name="good")
    bad = _pool(make_pool, db, name="bad")
    registry.register(PoolCollector([good, bad]))

    def boom():
        raise RuntimeError("broken")

    bad.lifetime_stats = boom
    s, _, text = scrape(registry)
    assert value(s, "db_pool_size", pool="good") == 0
    assert 'pool="bad"' not in text
    assert "collecting stats for Prometheus failed" in caplog.text


def test_import_error_without_prometheus_client():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None
        try:
            import db_pool.prometheus
        except ImportError as exc:
            print(exc)
        else:
            print("imported")
        """
    )
    from tests.test_cli import cli_env

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'db_pool[prometheus]'" in proc.stdout
    assert "prometheus_client" in proc.stdout


def test_lifetime_stats_survive_resets(make_pool, db):
    """The core's lifetime_stats(), which the collector reads."""
    pool = _pool(make_pool, db, max_size=1, name="life")
    waited = []

    def wait_for_it():
        conn = pool.get()
        waited.append(conn)

    for round_ in range(3):
        held = pool.get()
        waiter = eventlet.spawn(wait_for_it)
        eventlet.sleep(0.002 * (round_ + 1))
        pool.put(held)
        waiter.wait()
        pool.put(waited.pop())
        if round_ < 2:
            popped = pool.pop_stats()
            assert (popped["checkouts"], popped["waits"]) == (2, 1)
    st = pool.stats()
    assert (st["checkouts"], st["waits"]) == (2, 1)
    life = pool.lifetime_stats()
    assert (life["checkouts"], life["waits"]) == (6, 3)
    assert life["connections_opened"] == 1
    assert life["wait_time_total"] >= 0.002 + 0.004 + 0.006
    assert life["wait_time_max"] >= 0.006
    assert life["wait_time_max"] >= st["wait_time_max"]
    # Every wait is in exactly one bucket; the waits were 2-6 ms long.
    buckets = life["wait_buckets"]
    assert len(buckets) == len(WAIT_BUCKETS) + 1
    assert sum(buckets) == 3
    assert buckets[0] == 0  # none at or under 1 ms
    # Sizes are the current ones, not sums.
    assert (life["size"], life["free"], life["max_size"]) == (1, 1, 1)
    # stats() itself is unchanged by all this.
    assert "wait_buckets" not in pool.stats()
