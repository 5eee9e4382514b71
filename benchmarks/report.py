"""Tables, targets (PASS/FAIL), the JSON result and the chart."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

from .candidates import DB_POOL, EVENTLET, LIGHT_QUEUE, SQLALCHEMY
from .harness import median

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
MB = 1_000_000
# Above this share of the machine's CPU used by other processes during a
# fake-driver benchmark, its figures say more about the neighbours.
BUSY_PCT = 20.0


# -- plain-text tables ---------------------------------------------------------


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "  "
) -> str:
    """Left-align the first column, right-align the others."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        parts = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:])
        ]
        lines.append(indent + "  ".join(parts).rstrip())
        if n == 0:
            lines.append((indent + "  ".join("-" * w for w in widths)).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return _num(value)
    return str(value)


def _num(value: float) -> str:
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _iqr_pct(samples: Sequence[float]) -> float | None:
    """Interquartile range over the median, in percent: how much the
    slices disagreed."""
    if len(samples) < 4:
        return None
    ordered = sorted(samples)
    n = len(ordered)
    mid = median(ordered)
    return 100.0 * (ordered[(3 * n) // 4] - ordered[n // 4]) / mid if mid else None


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


# -- targets -------------------------------------------------------------------


class Target:
    """One promise from the performance issue, checked against one number."""

    def __init__(
        self,
        bench: str,
        name: str,
        value: float | None,
        op: str,
        bound: float,
        unit: str = "",
        note: str = "",
    ) -> None:
        self.bench = bench
        self.name = name
        self.value = value
        self.op = op
        self.bound = bound
        self.unit = unit
        self.note = note
        if value is None or (isinstance(value, float) and math.isnan(value)):
            self.status = SKIP
        else:
            ok = {
                ">=": value >= bound,
                "<=": value <= bound,
                "<": value < bound,
                "==": value == bound,
            }[op]
            self.status = PASS if ok else FAIL

    def line(self) -> str:
        shown = "-" if self.status == SKIP else f"{_num(self.value)}{self.unit}"
        op = {">=": "≥", "<=": "≤", "<": "<", "==": "="}[self.op]
        text = (
            f"  [{self.status}] {self.bench} {self.name}: {shown}"
            f"  (target {op} {_num(self.bound)}{self.unit})"
        )
        return text + (f"  {self.note}" if self.note else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "name": self.name,
            "value": self.value,
            "op": self.op,
            "bound": self.bound,
            "unit": self.unit,
            "status": self.status,
            "note": self.note,
        }


def _rows_by_key(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in result.get("rows", [])}


# -- B1 ------------------------------------------------------------------------


def b1(result: dict[str, Any]) -> tuple[str, list[Target]]:
    rows = _rows_by_key(result)
    ref = rows.get(DB_POOL, {}).get("us_per_cycle")
    text = table(
        ["pool", "µs/cycle", "min", "max", "x db_pool"],
        [
            (
                r["label"],
                r["us_per_cycle"],
                min(r["samples"]),
                max(r["samples"]),
                ratio(r["us_per_cycle"], ref),
            )
            for r in result["rows"]
        ],
    )
    text += (
        "\n  (x db_pool: this pool's time per cycle over db_pool's;"
        " above 1 means db_pool is faster)"
    )

    def faster(key: str) -> float | None:
        return ratio(rows.get(key, {}).get("us_per_cycle"), ref)

    lq = rows.get(LIGHT_QUEUE, {}).get("us_per_cycle")
    targets = [
        Target(
            "B1",
            "db_pool speed-up over eventlet.db_pool",
            faster(EVENTLET),
            ">=",
            3.0,
            "x",
        ),
        Target(
            "B1",
            "db_pool speed-up over SQLAlchemy QueuePool",
            faster(SQLALCHEMY),
            ">=",
            3.0,
            "x",
        ),
        Target(
            "B1", "db_pool cost over LightQueue get/put", ratio(ref, lq), "<=", 3.0, "x"
        ),
    ]
    return text, targets


# -- B2 ------------------------------------------------------------------------


def b2(result: dict[str, Any]) -> tuple[str, list[Target]]:
    rows = _rows_by_key(result)
    ref = rows.get(DB_POOL, {}).get("throughput")
    text = table(
        [
            "pool",
            "cycles/s",
            "x db_pool",
            "wait p50 ms",
            "p99 ms",
            "max ms",
            "max/p50",
            "overtakes %",
            "",
        ],
        [
            (
                r["label"],
                r.get("throughput"),
                ratio(r.get("throughput"), ref),
                r.get("wait_p50_ms"),
                r.get("wait_p99_ms"),
                r.get("wait_max_ms"),
                ratio(r.get("wait_max_ms"), r.get("wait_p50_ms")),
                r.get("overtake_pct"),
                r.get("error", ""),
            )
            for r in result["rows"]
        ],
    )
    text += (
        "\n  (x db_pool: throughput over db_pool's; overtakes: checkouts"
        " that completed while an earlier get() was still waiting;"
        "\n   a median wait near 0 with a long tail means newcomers barged in"
        " while earlier callers starved)"
    )
    mine = rows.get(DB_POOL, {})
    eventlet = rows.get(EVENTLET, {}).get("throughput")
    targets = [
        Target("B2", "db_pool overtakes", mine.get("overtake_pct"), "==", 0.0, "%"),
        Target(
            "B2",
            "db_pool longest wait over median wait",
            ratio(mine.get("wait_max_ms"), mine.get("wait_p50_ms")),
            "<=",
            2.0,
            "x",
        ),
        Target(
            "B2",
            "db_pool throughput over eventlet.db_pool",
            ratio(mine.get("throughput"), eventlet),
            ">=",
            1.25,
            "x",
        ),
    ]
    return text, targets


# -- B3 ------------------------------------------------------------------------

_CEILING_SHORT = {
    "ceiling_rollback": "rollback",
    "ceiling_noreset": "no reset",
    "ceiling_autocommit": "autocommit",
}


def b3(result: dict[str, Any]) -> tuple[str, list[Target]]:
    parts = []
    targets: list[Target] = []
    for db_key, db in result["databases"].items():
        if "skipped" in db:
            parts.append(f"  {db_key}: SKIPPED ({db['skipped']})")
            for name, bound in (
                ("default reset", 0.95),
                ("cleanup=rollback", 0.95),
                ("autocommit, default reset", 0.85),
            ):
                targets.append(
                    Target(
                        "B3",
                        f"{db_key} db_pool {name}",
                        None,
                        ">=",
                        bound,
                        note="(database skipped)",
                    )
                )
            continue
        rows = _rows_by_key(db)
        # The reference for "x db_pool": db_pool's default on the same workload.
        ref = {
            False: rows.get("db_pool", {}).get("qps"),
            True: rows.get("db_pool_ac", {}).get("qps"),
        }
        lines = []
        for r in db["rows"]:
            lines.append(
                (
                    r["label"],
                    r.get("qps"),
                    _iqr_pct(r.get("slice_ratios", [])),
                    None
                    if r["pool"] is None
                    else ratio(r.get("qps"), ref[r["autocommit"]]),
                    r.get("fraction"),
                    _CEILING_SHORT.get(r["ceiling"] or "", ""),
                    r.get("fraction_of_noreset"),
                    r.get("client_us_per_query"),
                    r.get("starved"),
                    r.get("error", ""),
                )
            )
        parts.append(f"  {db['driver']}")
        parts.append(
            table(
                [
                    "configuration",
                    "queries/s",
                    "slice IQR %",
                    "x db_pool",
                    "of ceiling",
                    "ceiling",
                    "of no-reset",
                    "client µs/q",
                    "starved",
                    "",
                ],
                lines,
                indent="    ",
            )
        )
        for key, name in (
            ("db_pool", "default reset"),
            ("db_pool_rb", "cleanup=rollback"),
            ("db_pool_ac", "autocommit, default reset"),
        ):
            r = rows.get(key, {})
            ceiling = _CEILING_SHORT.get(r.get("ceiling") or "", "")
            targets.append(
                Target(
                    "B3",
                    f"{db_key} db_pool {name}, fraction of {ceiling} ceiling",
                    r.get("fraction"),
                    ">=",
                    r.get("target") or 0.0,
                )
            )
    text = "\n".join(parts)
    text += (
        "\n  (of ceiling: queries/s over the matching ceiling's, the two run in"
        " alternating slices;\n   slice IQR: spread of that ratio over the slices"
        " (interquartile range / median);\n   client µs/q: this process's CPU time per"
        " query (the pool's cost shows here even when the server is the"
        " bottleneck);\n   starved: green threads that ran no query in any timed"
        " slice;"
        "\n   x db_pool: over db_pool's default reset on the same workload)"
    )
    return text, targets


# -- B4 ------------------------------------------------------------------------


def b4(result: dict[str, Any]) -> tuple[str, list[Target]]:
    if "skipped" in result:
        return (
            f"  SKIPPED ({result['skipped']})",
            [
                Target("B4", "flatness over pool sizes", None, "<=", 1.2, "x"),
                Target("B4", "flatness over queued waiters", None, "<=", 1.2, "x"),
            ],
        )
    base = result["sizes"][0]["us_per_cycle"]
    text = table(
        ["pool size (idle connections)", "µs/cycle", "x size 1"],
        [
            (
                f"max_size {r['max_size']}",
                r["us_per_cycle"],
                ratio(r["us_per_cycle"], base),
            )
            for r in result["sizes"]
        ],
    )
    text += "\n\n" + table(
        [
            "waiters queued (relay, max_size 1)",
            "µs/cycle",
            "floor µs",
            "x floor",
            "hand-offs %",
        ],
        [
            (
                f"{r['waiters']} waiters"
                + (" (one thread: no hand-off)" if r["waiters"] == 0 else ""),
                r["us_per_cycle"],
                r["floor_us_per_cycle"],
                r["over_floor"],
                r.get("handoff_pct"),
            )
            for r in result["depths"]
        ],
    )
    text += (
        "\n  (relay: depth + 1 green threads loop get(); put() on one connection,"
        " so every put() meets\n   a queue of that many waiters; a cycle is one"
        " put, one queued get and one green switch.\n   floor: the same relay on"
        " a bare FIFO greenlet hand-off, which pays the same switches;"
        "\n   x floor: db_pool's cycle over the floor's, i.e. what db_pool adds;"
        " its flatness over\n   1..10,000 waiters is the target (depth 0 is"
        " B1's cycle, no switch: reference only).\n   hand-offs %: cycles whose"
        " holder differs from the previous one (100 % = put() really hands"
        " over).\n   raw flatness of db_pool's cycle: "
        f"{_num(result['depth_flatness_raw'])}x; of the floor's:"
        f" {_num(result['floor_depth_flatness'])}x)"
    )
    targets = [
        Target(
            "B4",
            "flatness over max_size 1..1000 (max/min)",
            result["size_flatness"],
            "<=",
            1.2,
            "x",
        ),
        Target(
            "B4",
            "flatness over 1..10,000 queued waiters (max/min of x floor)",
            result["depth_flatness"],
            "<=",
            1.2,
            "x",
        ),
    ]
    return text, targets


# -- B5 ------------------------------------------------------------------------


def b5(result: dict[str, Any]) -> tuple[str, list[Target]]:
    if "skipped" in result:
        return (
            f"  SKIPPED ({result['skipped']})",
            [Target("B5", "RSS growth", None, "<", MB / 1e6, " MB")],
        )
    g = result["growth"]
    text = table(
        ["measure", "value"],
        [
            (
                f"RSS growth over {g['cycles']:,} cycles",
                f"{g['rss_growth_bytes'] / 1024:,.0f} KiB",
            ),
            ("gc-tracked objects growth", f"{g['gc_objects_growth']:,}"),
        ],
    )
    rows = []
    for name in ("fake", "sqlite3"):
        r = result.get(f"idle_{name}")
        if r:
            rows.append(
                (
                    f"{name} x {r['connections']:,}",
                    r["bare_bytes_each"],
                    r["pooled_bytes_each"],
                    r["pool_overhead_bytes_each"],
                )
            )
    text += "\n\n" + table(
        ["idle connections", "bare B/conn", "in pool B/conn", "pool overhead B/conn"],
        rows,
    )
    text += (
        "\n  (each figure measured in a fresh interpreter; bare: connections"
        " held in a list)"
    )
    targets = [
        Target(
            "B5",
            f"RSS growth over {g['cycles']:,} cycles",
            g["rss_growth_bytes"] / 1e6,
            "<",
            MB / 1e6,
            " MB",
        )
    ]
    return text, targets


SECTIONS: dict[str, Callable[[dict[str, Any]], tuple[str, list[Target]]]] = {
    "B1": b1,
    "B2": b2,
    "B3": b3,
    "B4": b4,
    "B5": b5,
}


def section_header(bench: str, result: dict[str, Any]) -> str:
    detail = {
        "B1": lambda r: f"pool size {r['pool_size']}, median of {r['rounds']} rounds",
        "B2": lambda r: (
            f"{r['threads']} green threads x {r['cycles']} cycles on"
            f" {r['slots']} slots, median of {r['rounds']} rounds"
        ),
        "B3": lambda r: (
            f"each pool {r['seconds_per_side']:g} s against its ceiling in"
            f" {r['slice_seconds']:g} s slices; psycopg2 green by"
            f" {r['psycopg2_green']}"
        ),
        "B4": lambda r: (
            f"{r['pool']}, median of {r['rounds']} rounds" if "pool" in r else ""
        ),
        "B5": lambda r: r.get("pool", ""),
    }[bench](result)
    text = f"{result['title']}\n  ({detail})" if detail else result["title"]
    others = result.get("others_cpu_pct")
    if others is not None:
        text += (
            f"\n  ({result['seconds']:.0f} s; other processes used {others:.0f} % of"
            " the machine's CPU meanwhile"
            + (", database servers included)" if bench == "B3" else ")")
        )
        if bench in ("B1", "B2", "B4") and others > BUSY_PCT:
            text += "\n  WARNING: the machine was busy; these figures are unreliable"
    return text


# -- chart -----------------------------------------------------------------------


def chart(results: dict[str, Any], targets: list[Target], path: str) -> None:
    """Draw every benchmark that ran, plus the targets, into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(21, 11), layout="constrained")
    fig.suptitle("db_pool benchmarks (medians)")
    ax_iter = iter(axes.flat)

    def barh(
        ax: Any,
        labels: list[str],
        values: list[float],
        title: str,
        xlabel: str,
        log: bool = False,
    ) -> None:
        colors = [
            "tab:green" if lb.startswith("db_pool") or ": db_pool" in lb else "tab:gray"
            for lb in labels
        ]
        ax.barh(range(len(values)), values, color=colors)
        ax.set_yticks(range(len(values)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_xscale("log")

    def text_panel(ax: Any, title: str, lines: list[tuple[str, str]]) -> None:
        ax.axis("off")
        ax.set_title(title, fontsize=10)
        for i, (line, color) in enumerate(lines):
            ax.text(
                0,
                1 - i * 0.05,
                line,
                color=color,
                fontsize=7,
                family="monospace",
                transform=ax.transAxes,
                va="top",
            )

    if "B1" in results:
        r = results["B1"]["rows"]
        barh(
            next(ax_iter),
            [x["label"] for x in r],
            [x["us_per_cycle"] for x in r],
            "B1 checkout + checkin, one green thread",
            "µs per cycle (log)",
            log=True,
        )
    if "B2" in results:
        r = [x for x in results["B2"]["rows"] if "throughput" in x]
        ax = next(ax_iter)
        barh(
            ax,
            [f"{x['label']} ({x['overtake_pct']:.0f} % overtake)" for x in r],
            [x["throughput"] for x in r],
            f"B2 contention: {results['B2']['threads']} green threads, "
            f"{results['B2']['slots']} slots",
            "cycles/s",
        )
        ax.tick_params(axis="x", labelrotation=30)
    if "B3" in results:
        ax = next(ax_iter)
        labels: list[str] = []
        values: list[float] = []
        for db_key, db in results["B3"]["databases"].items():
            for x in db.get("rows", []):
                if "fraction" in x:
                    labels.append(f"{db_key}: {x['label']}")
                    values.append(x["fraction"])
        barh(
            ax,
            labels,
            values,
            "B3 SELECT 1: fraction of the matching ceiling",
            "fraction (red: 0.95, orange: 0.85)",
        )
        ax.axvline(0.95, color="tab:red", linestyle="--", linewidth=1)
        ax.axvline(0.85, color="tab:orange", linestyle=":", linewidth=1)
        ax.tick_params(axis="y", labelsize=7)
    if "B4" in results and "sizes" in results["B4"]:
        ax = next(ax_iter)
        r = results["B4"]
        depths = [x for x in r["depths"] if x["waiters"] > 0]
        ax.plot(
            [x["max_size"] for x in r["sizes"]],
            [x["us_per_cycle"] for x in r["sizes"]],
            "o-",
            label="db_pool, B1 cycle at max_size",
        )
        ax.plot(
            [x["waiters"] for x in depths],
            [x["us_per_cycle"] for x in depths],
            "s-",
            label="db_pool, relay with N waiters",
        )
        ax.plot(
            [x["waiters"] for x in depths],
            [x["floor_us_per_cycle"] for x in depths],
            "^--",
            label="floor (greenlet hand-off), relay with N waiters",
        )
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_title("B4 scale", fontsize=10)
        ax.set_xlabel("max_size or waiters (log)")
        ax.set_ylabel("µs per cycle")
        ax.legend(fontsize=7, loc="upper left")
    if "B5" in results and "growth" in results["B5"]:
        r = results["B5"]
        g = r["growth"]
        lines = [
            (
                f"RSS growth over {g['cycles']:,} cycles:"
                f" {g['rss_growth_bytes'] / 1024:,.0f} KiB",
                "black",
            ),
            (f"gc-tracked objects growth: {g['gc_objects_growth']:,}", "black"),
            ("", "black"),
        ]
        for name in ("fake", "sqlite3"):
            idle = r.get(f"idle_{name}")
            if idle:
                lines.append(
                    (f"{idle['connections']:,} idle {name} connections:", "black")
                )
                lines.append(
                    (
                        f"  bare {idle['bare_bytes_each']:,.0f} B each, in pool"
                        f" {idle['pooled_bytes_each']:,.0f} B each",
                        "black",
                    )
                )
        text_panel(next(ax_iter), f"B5 memory ({r.get('pool', '')})", lines)
    colors = {PASS: "tab:green", FAIL: "tab:red", SKIP: "tab:gray"}
    text_panel(
        next(ax_iter),
        "targets",
        [(t.line().strip(), colors[t.status]) for t in targets],
    )
    for ax in ax_iter:
        ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)
