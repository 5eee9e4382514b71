"""Prometheus metrics for db_pool pools (optional: needs ``prometheus_client``).

::

    from prometheus_client import REGISTRY, start_http_server
    from db_pool.prometheus import PoolCollector

    collector = PoolCollector([orders_pool])      # pools, or DatabaseConnectors
    REGISTRY.register(collector)
    collector.add(reports_pool)                   # later additions are seen too
    start_http_server(9100)

or, for the default registry, just ``db_pool.prometheus.register(pool)``.

The collector holds pools weakly: a pool that the program drops disappears
from the metrics.  Every metric is labelled ``pool`` with the pool's name
(``name=`` when it was made), so give pools distinct names.  Counters count
since the pool was made: ``pool.stats(reset=True)`` does not make them go
back (see :meth:`db_pool.BaseConnectionPool.lifetime_stats`).

Metrics (namespace ``db_pool`` by default), each labelled ``pool``:

- gauges: ``db_pool_connections{state}`` (free, checked_out, opening),
  ``db_pool_size`` (open + opening, ``current_size``), ``db_pool_max_size``,
  ``db_pool_min_size``, ``db_pool_waiting`` (callers waiting),
  ``db_pool_closed`` (1 once closed), ``db_pool_checkout_wait_max_seconds``;
- counters: ``db_pool_checkouts_total``, ``db_pool_connections_opened_total``,
  ``db_pool_connections_closed_total`` (for any reason),
  ``db_pool_connect_failures_total``,
  ``db_pool_connections_discarded_total{reason}`` (dead, reset_failed, idle,
  age, uses), ``db_pool_timeouts_total``, ``db_pool_too_many_waiters_total``
  (refused by ``max_waiting``), ``db_pool_leaks_reclaimed_total``, and
  ``db_pool_<key>_total`` for every other counter of ``stats()``;
- histogram ``db_pool_checkout_wait_seconds``: time to get a connection
  (0 for callers served at once);
- summaries ``db_pool_hold_seconds`` (time connections were held) and
  ``db_pool_connect_seconds`` (time successful connects took);
- with ``servers=``, labelled ``server`` too: ``db_pool_server_up``,
  ``db_pool_server_connections`` and ``db_pool_server_{connects,failures,
  disconnects,probes}_total``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Iterable, Iterator

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import REGISTRY
except ImportError as _exc:  # pragma: no cover - exercised without the package
    raise ImportError(
        "db_pool.prometheus needs the prometheus_client package: "
        "pip install 'db_pool[prometheus]' (or pip install prometheus_client)"
    ) from _exc

try:
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - prometheus_client < 0.14
    Collector = object  # type: ignore[assignment,misc]

from .pool import WAIT_BUCKETS, BaseConnectionPool

logger = logging.getLogger("db_pool")

__all__ = ["PoolCollector", "register", "unregister"]

# stats() keys shown by the explicit metrics below; every other numeric
# counter is exported generically as <namespace>_<key>_total.
_DISCARD_REASONS = (
    ("dead", "discarded_dead"),
    ("reset_failed", "discarded_reset_failed"),
    ("idle", "expired_idle"),
    ("age", "expired_age"),
    ("uses", "recycled_uses"),
)
_SIMPLE_COUNTERS = (
    ("checkouts", "checkouts", "Connections handed out"),
    ("connections_opened", "connections_opened", "Connections opened"),
    ("connections_closed", "connections_closed", "Connections closed, for any reason"),
    ("connect_failures", "connect_failures", "Connects that failed"),
    ("timeouts", "timeouts", "Checkouts (or connects) that ran out of time"),
    (
        "too_many_waiters",
        "too_many_waiters",
        "Checkouts refused because max_waiting callers were waiting",
    ),
    (
        "leaks_reclaimed",
        "leaks_reclaimed",
        "Connections dropped without being returned, then reclaimed",
    ),
)
_SHOWN = (
    {key for _, key in _DISCARD_REASONS}
    | {key for _, key, _ in _SIMPLE_COUNTERS}
    | {
        "waits",
        "wait_time_total",
        "wait_time_max",
        "hold_time_total",
        "connect_time_total",
    }
)
_GENERIC_HELP = {
    "leaks_reported": "Connections reported as held longer than leak_timeout",
    "pings": "Liveness checks run on connections",
    "ping_failures": "Liveness checks that failed",
    "resets": "Resets (rollbacks) run on returned connections",
    "resets_skipped": "Resets skipped because no transaction was open",
    "connect_failures_fast": (
        "Checkouts failed at once because the database was known down"
    ),
}
_SERVER_COUNTERS = (
    ("connects", "Connections opened to the server"),
    ("failures", "Connects to the server that failed"),
    ("disconnects", "Connections to the server found dead"),
    ("probes", "Background probes of the server while down"),
)


class PoolCollector(Collector):
    """A ``prometheus_client`` collector for any number of pools.

    *sources* are pools or :class:`~db_pool.DatabaseConnector` objects (all
    the pools a connector has, now and later); both are held weakly.
    *namespace* prefixes every metric name.
    """

    def __init__(self, sources: Iterable[Any] = (), namespace: str = "db_pool") -> None:
        self.namespace = namespace
        self._pools: "weakref.WeakSet[BaseConnectionPool]" = weakref.WeakSet()
        self._connectors: "weakref.WeakSet[Any]" = weakref.WeakSet()
        for source in sources:
            self.add(source)

    def add(self, source: Any) -> None:
        """Export *source* (a pool or a DatabaseConnector) too."""
        if isinstance(source, BaseConnectionPool):
            for pool in self._pools:
                if pool is not source and pool.name == source.name:
                    raise ValueError(
                        "a pool named %r is already exported; give pools distinct "
                        "names (name=...)" % (source.name,)
                    )
            self._pools.add(source)
        elif callable(getattr(source, "pools", None)):
            self._connectors.add(source)
        else:
            raise TypeError(
                "expected a db_pool pool or DatabaseConnector, not %r" % (source,)
            )

    def remove(self, source: Any) -> None:
        """Stop exporting *source*."""
        self._pools.discard(source)
        self._connectors.discard(source)

    def pools(self) -> list[tuple[str, BaseConnectionPool]]:
        """``(label, pool)`` of every exported pool, sorted by label.

        Two pools of the same name (possible through connectors) get
        distinct labels, ``name`` and ``name#2``, so that the exposition
        stays valid.
        """
        found: list[BaseConnectionPool] = list(self._pools)
        seen = {id(p) for p in found}
        for connector in list(self._connectors):
            for pool in connector.pools().values():
                if id(pool) not in seen:
                    seen.add(id(pool))
                    found.append(pool)
        found.sort(key=lambda p: (p.name, id(p)))
        out = []
        counts: dict[str, int] = {}
        for pool in found:
            n = counts[pool.name] = counts.get(pool.name, 0) + 1
            out.append((pool.name if n == 1 else "%s#%d" % (pool.name, n), pool))
        return out

    # -- prometheus_client protocol -------------------------------------------
    def describe(self) -> Iterator[Any]:
        """The metric families (without samples), for duplicate checks."""
        return self._families([])

    def collect(self) -> Iterator[Any]:
        snapshots = []
        for label, pool in self.pools():
            try:
                snapshots.append((label, pool.lifetime_stats()))
            except Exception:  # one broken pool must not break the scrape
                logger.exception(
                    "pool %r: collecting stats for Prometheus failed", label
                )
        return self._families(snapshots)

    # -- building -------------------------------------------------------------
    def _families(self, snapshots: list[tuple[str, dict[str, Any]]]) -> Iterator[Any]:
        ns = self.namespace
        pool_label = ["pool"]

        def gauge(name: str, doc: str, key: str) -> Any:
            fam = GaugeMetricFamily("%s_%s" % (ns, name), doc, labels=pool_label)
            for label, st in snapshots:
                fam.add_metric([label], float(st[key]))
            return fam

        conns = GaugeMetricFamily(
            "%s_connections" % ns,
            "Connections of the pool, by state (free, checked_out, opening)",
            labels=["pool", "state"],
        )
        for label, st in snapshots:
            for state in ("free", "checked_out", "opening"):
                conns.add_metric([label, state], float(st[state]))
        yield conns
        yield gauge("size", "Connections open or being opened (current_size)", "size")
        yield gauge("max_size", "Configured maximum number of connections", "max_size")
        yield gauge("min_size", "Configured minimum number of connections", "min_size")
        yield gauge("waiting", "Callers waiting for a connection", "waiting")
        closed = GaugeMetricFamily(
            "%s_closed" % ns, "1 once the pool is closed", labels=pool_label
        )
        for label, st in snapshots:
            closed.add_metric([label], 1.0 if st["closed"] else 0.0)
        yield closed

        for name, key, doc in _SIMPLE_COUNTERS:
            fam = CounterMetricFamily("%s_%s" % (ns, name), doc, labels=pool_label)
            for label, st in snapshots:
                fam.add_metric([label], float(st.get(key, 0)))
            yield fam
        discarded = CounterMetricFamily(
            "%s_connections_discarded" % ns,
            "Connections closed by the pool, by reason "
            "(dead, reset_failed, idle, age, uses)",
            labels=["pool", "reason"],
        )
        for label, st in snapshots:
            for reason, key in _DISCARD_REASONS:
                discarded.add_metric([label, reason], float(st.get(key, 0)))
        yield discarded

        wait = HistogramMetricFamily(
            "%s_checkout_wait_seconds" % ns,
            "Time callers took to get a connection (0 for those served at once)",
            labels=pool_label,
        )
        for label, st in snapshots:
            # The pool counts only the checkouts that waited; the others
            # waited 0 s and belong in every bucket.
            cumulative = st["checkouts"] - st["waits"]
            buckets = []
            for bound, n in zip(WAIT_BUCKETS, st["wait_buckets"]):
                cumulative += n
                buckets.append((_bound(bound), float(cumulative)))
            buckets.append(("+Inf", float(st["checkouts"])))
            wait.add_metric([label], buckets, float(st["wait_time_total"]))
        yield wait
        yield gauge(
            "checkout_wait_max_seconds",
            "Longest time a caller waited for a connection",
            "wait_time_max",
        )

        hold = SummaryMetricFamily(
            "%s_hold_seconds" % ns,
            "Time connections were held by callers (returned ones)",
            labels=pool_label,
        )
        connect = SummaryMetricFamily(
            "%s_connect_seconds" % ns,
            "Time successful connects took",
            labels=pool_label,
        )
        for label, st in snapshots:
            returned = max(st["checkouts"] - st["checked_out"], 0)
            hold.add_metric([label], returned, float(st["hold_time_total"]))
            connect.add_metric(
                [label], st["connections_opened"], float(st["connect_time_total"])
            )
        yield hold
        yield connect

        # Every other counter, so that none of stats() is left out.
        others = sorted(
            {
                key
                for _, st in snapshots
                for key, value in st.items()
                if key not in _SHOWN
                and key
                not in (
                    "name",
                    "min_size",
                    "max_size",
                    "size",
                    "free",
                    "checked_out",
                    "opening",
                    "waiting",
                    "closed",
                    "wait_buckets",
                    "servers",
                )
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            }
            | (set(_GENERIC_HELP) if not snapshots else set())
        )
        for key in others:
            fam = CounterMetricFamily(
                "%s_%s" % (ns, key),
                _GENERIC_HELP.get(key, "stats()[%r] of the pool" % key),
                labels=pool_label,
            )
            for label, st in snapshots:
                if key in st:
                    fam.add_metric([label], float(st[key]))
            yield fam

        # Server lists.
        up = GaugeMetricFamily(
            "%s_server_up" % ns,
            "1 when the server is taking connections, 0 while down",
            labels=["pool", "server"],
        )
        open_ = GaugeMetricFamily(
            "%s_server_connections" % ns,
            "Connections open to the server",
            labels=["pool", "server"],
        )
        server_counters = [
            (
                key,
                CounterMetricFamily(
                    "%s_server_%s" % (ns, key), doc, labels=["pool", "server"]
                ),
            )
            for key, doc in _SERVER_COUNTERS
        ]
        for label, st in snapshots:
            for server, info in sorted((st.get("servers") or {}).items()):
                up.add_metric([label, server], 0.0 if info.get("down") else 1.0)
                open_.add_metric([label, server], float(info.get("open", 0)))
                for key, fam in server_counters:
                    fam.add_metric([label, server], float(info.get(key, 0)))
        yield up
        yield open_
        for _, fam in server_counters:
            yield fam


def _bound(value: float) -> str:
    return repr(float(value))


_registered: "weakref.WeakKeyDictionary[Any, PoolCollector]" = (
    weakref.WeakKeyDictionary()
)


def register(source: Any, registry: Any = None) -> PoolCollector:
    """Export *source* (a pool or DatabaseConnector) in *registry*.

    One :class:`PoolCollector` per registry (default: prometheus_client's
    global ``REGISTRY``) is made on first use and registered; it is
    returned.
    """
    if registry is None:
        registry = REGISTRY
    collector = _registered.get(registry)
    if collector is None:
        collector = PoolCollector()
        registry.register(collector)
        _registered[registry] = collector
    collector.add(source)
    return collector


def unregister(source: Any, registry: Any = None) -> None:
    """Stop exporting *source* in *registry* (see :func:`register`)."""
    collector = _registered.get(REGISTRY if registry is None else registry)
    if collector is not None:
        collector.remove(source)
