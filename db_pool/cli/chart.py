"""The chart of ``size``: throughput and p99 checkout wait against pool size.

With matplotlib installed, any format it knows (by the file's extension:
``.png``, ``.svg``, ``.pdf``); without it, SVG drawn by hand (a ``.png``
path then becomes ``.svg``, and the caller is told the path it got).
"""

from __future__ import annotations

import math
import os
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["write_chart", "have_matplotlib", "svg_chart", "DEFAULT_CHART"]

THROUGHPUT_COLOR = "#1f77b4"
WAIT_COLOR = "#d62728"


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (found without importing it)."""
    from importlib.util import find_spec

    return find_spec("matplotlib") is not None


#: Where ``size`` draws its chart unless told otherwise.
DEFAULT_CHART = "db_pool-size.png"


def write_chart(
    path: str, rows: list[dict[str, Any]], recommended: int | None, title: str
) -> str:
    """Draw *rows* (``pool_size``, ``throughput``, ``wait_p99``) to *path*.

    Returns the path written (which differs from *path* only when a PNG was
    asked for and matplotlib is missing).
    """
    if have_matplotlib():
        try:
            _matplotlib_chart(path, rows, recommended, title)
            return path
        except ImportError:
            pass  # found but broken (a missing dependency): draw it ourselves
    root, ext = os.path.splitext(path)
    if ext.lower() != ".svg":
        path = root + ".svg"
    with open(path, "w", encoding="utf-8") as f:
        f.write(svg_chart(rows, recommended, title))
    return path


def _matplotlib_chart(
    path: str, rows: list[dict[str, Any]], recommended: int | None, title: str
) -> None:
    # The object API with the Agg canvas: no pyplot, no display, no global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sizes = [r["pool_size"] for r in rows]
    fig = Figure(figsize=(8, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(
        sizes,
        [r["throughput"] for r in rows],
        "o-",
        color=THROUGHPUT_COLOR,
        label="throughput",
    )
    ax.set_xlabel("pool size (max_size)")
    ax.set_ylabel("throughput (operations/s)", color=THROUGHPUT_COLOR)
    ax.tick_params(axis="y", labelcolor=THROUGHPUT_COLOR)
    ax.set_ylim(bottom=0)
    if len(sizes) > 1 and min(sizes) > 0 and max(sizes) / min(sizes) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(
        sizes,
        [r["wait_p99"] * 1000 for r in rows],
        "s--",
        color=WAIT_COLOR,
        label="p99 checkout wait",
    )
    ax2.set_ylabel("p99 checkout wait (ms)", color=WAIT_COLOR)
    ax2.tick_params(axis="y", labelcolor=WAIT_COLOR)
    ax2.set_ylim(bottom=0)
    if recommended is not None:
        at_right = recommended == max(sizes) and len(sizes) > 1
        ax.axvline(recommended, color="#2ca02c", linestyle=":", linewidth=2)
        ax.annotate(
            "recommended: %d" % recommended,
            xy=(recommended, 0),
            xytext=(-4 if at_right else 4, 6),
            textcoords="offset points",
            color="#2ca02c",
            ha="right" if at_right else "left",
        )
    lines = ax.get_lines()[:1] + ax2.get_lines()[:1]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp  # pragma: no cover


def _fmt(value: float) -> str:
    if value >= 100 or value == int(value):
        return "%d" % round(value)
    return ("%.2f" % value).rstrip("0").rstrip(".")


def svg_chart(rows: list[dict[str, Any]], recommended: int | None, title: str) -> str:
    """The chart as an SVG document (no dependencies)."""
    width, height = 800, 480
    left, right, top, bottom = 80, 80, 50, 60
    pw, ph = width - left - right, height - top - bottom
    sizes = [r["pool_size"] for r in rows]
    tput = [r["throughput"] for r in rows]
    wait = [r["wait_p99"] * 1000 for r in rows]
    log_x = len(sizes) > 1 and min(sizes) > 0 and max(sizes) / min(sizes) >= 8

    def xpos(size: float) -> float:
        lo, hi = min(sizes), max(sizes)
        if hi == lo:
            return left + pw / 2
        if log_x:
            return left + pw * (math.log2(size) - math.log2(lo)) / (
                math.log2(hi) - math.log2(lo)
            )
        return left + pw * (size - lo) / (hi - lo)

    tmax, wmax = _nice_max(max(tput or [0])), _nice_max(max(wait or [0]))

    def ypos(value: float, top_value: float) -> float:
        return top + ph - ph * value / top_value

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'
        % (width, height, width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="25" text-anchor="middle" font-size="14">%s</text>'
        % (width // 2, escape(title)),
        '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'
        % (left, top, pw, ph),
    ]
    for i in range(6):
        frac = i / 5.0
        y = top + ph - ph * frac
        out.append(
            '<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
            % (left, y, left + pw, y)
        )
        out.append(
            '<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>'
            % (left - 6, y + 4, THROUGHPUT_COLOR, _fmt(tmax * frac))
        )
        out.append(
            '<text x="%d" y="%.1f" fill="%s">%s</text>'
            % (left + pw + 6, y + 4, WAIT_COLOR, _fmt(wmax * frac))
        )
    for s in sizes:
        x = xpos(s)
        out.append(
            '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
            % (x, top, x, top + ph)
        )
        out.append(
            '<text x="%.1f" y="%d" text-anchor="middle">%d</text>'
            % (x, top + ph + 18, s)
        )
    out.append(
        '<text x="%d" y="%d" text-anchor="middle">pool size (max_size)</text>'
        % (left + pw // 2, height - 15)
    )
    out.append(
        '<text transform="translate(20,%d) rotate(-90)" text-anchor="middle" fill="%s">'
        "throughput (operations/s)</text>" % (top + ph // 2, THROUGHPUT_COLOR)
    )
    out.append(
        '<text transform="translate(%d,%d) rotate(90)" text-anchor="middle" fill="%s">'
        "p99 checkout wait (ms)</text>" % (width - 20, top + ph // 2, WAIT_COLOR)
    )
    if recommended is not None and recommended in sizes:
        x = xpos(recommended)
        out.append(
            '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#2ca02c" '
            'stroke-width="2" stroke-dasharray="4 4"/>' % (x, top, x, top + ph)
        )
        at_right = recommended == max(sizes) and len(sizes) > 1
        out.append(
            '<text x="%.1f" y="%d" fill="#2ca02c" text-anchor="%s">'
            "recommended: %d</text>"
            % (
                x - 4 if at_right else x + 4,
                top + ph - 8,
                "end" if at_right else "start",
                recommended,
            )
        )
    for values, top_value, color, dash in (
        (tput, tmax, THROUGHPUT_COLOR, ""),
        (wait, wmax, WAIT_COLOR, ' stroke-dasharray="6 3"'),
    ):
        points = " ".join(
            "%.1f,%.1f" % (xpos(s), ypos(v, top_value)) for s, v in zip(sizes, values)
        )
        out.append(
            '<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
            % (points, color, dash)
        )
        for s, v in zip(sizes, values):
            out.append(
                '<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>'
                % (xpos(s), ypos(v, top_value), color)
            )
    out.append(
        '<text x="%d" y="%d" fill="%s">&#9679; throughput</text>'
        % (left + 10, top + 18, THROUGHPUT_COLOR)
    )
    out.append(
        '<text x="%d" y="%d" fill="%s">&#9679; p99 checkout wait</text>'
        % (left + 10, top + 34, WAIT_COLOR)
    )
    out.append("</svg>\n")
    return "\n".join(out)
