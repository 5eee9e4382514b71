"""Text and JSON output of the commands (stdout)."""

from __future__ import annotations

import json
from typing import IO, Any

from .workload import percentiles

__all__ = ["fmt_time", "bench_text", "size_text", "check_text", "dump_json"]

# Stats keys that are durations in seconds.
_TIME_KEYS = (
    "wait_time_total",
    "wait_time_max",
    "hold_time_total",
    "connect_time_total",
)
_SIZE_KEYS = (
    "min_size",
    "max_size",
    "size",
    "free",
    "checked_out",
    "opening",
    "waiting",
)


def fmt_time(seconds: float) -> str:
    """A duration for people: ``0.042 ms``, ``12.3 ms``, ``1.20 s``."""
    if seconds >= 1:
        return "%.2f s" % seconds
    ms = seconds * 1000
    if ms >= 100:
        return "%.0f ms" % ms
    if ms >= 10:
        return "%.1f ms" % ms
    if ms >= 1:
        return "%.2f ms" % ms
    return "%.3f ms" % ms


def _stats_lines(stats: dict[str, Any]) -> list[str]:
    items = []
    for key, value in stats.items():
        if key in ("name", "closed", "servers") or key in _SIZE_KEYS:
            continue
        shown = fmt_time(value) if key in _TIME_KEYS else str(value)
        items.append((key, shown))
    width = max((len(k) + len(v) for k, v in items), default=0) + 2
    lines = []
    for i in range(0, len(items), 2):
        cells = [
            "%s%s%s" % (k, " " * (width - len(k) - len(v)), v)
            for k, v in items[i : i + 2]
        ]
        lines.append("    " + "    ".join(cells))
    return lines


def _dist_table(rows: list[tuple[str, list[float]]]) -> list[str]:
    head = "  %-14s %10s %10s %10s %10s" % ("", "p50", "p95", "p99", "max")
    lines = [head]
    for label, values in rows:
        p = percentiles(values)
        lines.append(
            "  %-14s %10s %10s %10s %10s"
            % (
                label,
                fmt_time(p["p50"]),
                fmt_time(p["p95"]),
                fmt_time(p["p99"]),
                fmt_time(p["max"]),
            )
        )
    return lines


def _driver_line(info: dict[str, Any]) -> str:
    return "  driver      %s, %s (get/put in %s)" % (
        info["driver"],
        info["pool_class"],
        "C" if info["speedups"] else "Python",
    )


def bench_text(info: dict[str, Any], result: Any) -> str:
    """The report of ``bench`` for people."""
    lines = [
        "db_pool bench",
        "  database    %s" % info["url"],
        _driver_line(info),
        "  workload    %s%s"
        % (
            info["workload_description"],
            "; holds each connection %s more" % fmt_time(info["hold"])
            if info["hold"]
            else "",
        ),
        "  load        %d green threads, pool of %d, %s"
        % (
            info["threads"],
            info["pool_size"],
            "%g s" % info["duration"]
            if info["duration"] is not None
            else "%d operations" % info["count"],
        ),
        "",
        "  operations  %d in %.2f s: %.1f/s"
        % (result.operations, result.elapsed, result.throughput),
        "  errors      %d" % result.errors,
    ]
    for kind, n in sorted(result.error_kinds.items(), key=lambda kv: -kv[1])[:5]:
        lines.append("    %6d x %s" % (n, kind))
    lines.append("")
    lines.extend(
        _dist_table([("latency", result.latencies), ("checkout wait", result.waits)])
    )
    lines.append("")
    lines.append("  pool %s" % result.pool_repr)
    lines.extend(_stats_lines(result.pool_stats))
    warm = result.warmup
    if warm.get("connections_opened"):
        lines.append(
            "    (warm-up before the run: %d connections opened in %s on average)"
            % (
                warm["connections_opened"],
                fmt_time(warm["connect_time_total"] / warm["connections_opened"]),
            )
        )
    return "\n".join(lines) + "\n"


def size_text(
    info: dict[str, Any],
    rows: list[dict[str, Any]],
    recommended: int | None,
    chart: str | None,
) -> str:
    """The report of ``size`` for people."""
    lines = [
        "db_pool size",
        "  database    %s" % info["url"],
        _driver_line(info),
        "  workload    %s%s"
        % (
            info["workload_description"],
            "; holds each connection %s more" % fmt_time(info["hold"])
            if info["hold"]
            else "",
        ),
        "  load        %d green threads, %s per size"
        % (
            info["threads"],
            "%g s" % info["duration"]
            if info["duration"] is not None
            else "%d operations" % info["count"],
        ),
        "",
        "  %9s %14s %12s %12s %8s"
        % ("pool size", "throughput/s", "p99 wait", "p99 latency", "errors"),
    ]
    for row in rows:
        mark = "  <- recommended" if row["pool_size"] == recommended else ""
        lines.append(
            "  %9d %14.1f %12s %12s %8d%s"
            % (
                row["pool_size"],
                row["throughput"],
                fmt_time(row["wait_p99"]),
                fmt_time(row["latency_p99"]),
                row["errors"],
                mark,
            )
        )
    lines.append("")
    if recommended is not None:
        lines.append(
            "  recommended: max_size=%d, the smallest pool within %d%% of the best "
            "throughput" % (recommended, info["tolerance_percent"])
        )
        if info.get("still_rising"):
            lines.append(
                "  (throughput was still rising at the largest size tried: "
                "try larger --sizes)"
            )
    else:
        lines.append("  no recommendation: no size completed an operation")
    if chart:
        lines.append("  chart: %s" % chart)
    return "\n".join(lines) + "\n"


def check_text(info: dict[str, Any]) -> str:
    """The report of ``check`` for people."""
    rtt = info["round_trip"]
    return (
        "\n".join(
            [
                "ok %s" % info["url"],
                "  server      %s" % info["server_version"],
                "  driver      %s, %s" % (info["driver"], info["pool_class"]),
                "  connect     %s" % fmt_time(info["connect_time"]),
                "  round trip  min %s, median %s, max %s (%d x %s)"
                % (
                    fmt_time(rtt["min"]),
                    fmt_time(rtt["median"]),
                    fmt_time(rtt["max"]),
                    rtt["count"],
                    info["ping_sql"],
                ),
            ]
        )
        + "\n"
    )


def dump_json(data: Any, stream: IO[str]) -> None:
    json.dump(data, stream, indent=2, sort_keys=False, default=str)
    stream.write("\n")
