"""The command line, run as a user runs it: ``python -m db_pool`` in a subprocess.

Everything here runs against SQLite (the embedded default or a file in the
test's temporary directory) or against loopback addresses where nothing
answers; the real servers are in tests/realdb/test_cli_realdb.py.  The
pure helpers (URL parsing, percentiles, the recommendation, the hand-drawn
SVG) are tested in-process at the end.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import db_pool
from db_pool.cli import commands
from db_pool.cli import target as target_mod
from db_pool.cli.chart import svg_chart
from db_pool.cli.report import fmt_time
from db_pool.cli.workload import percentiles

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cretpw"


def cli_env(extra_path=None):
    env = dict(os.environ)
    paths = [str(ROOT)]
    if extra_path is not None:
        paths.insert(0, str(extra_path))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # eventlet stays silent about locks made before monkey-patching when it
    # believes it runs under pytest: the CLI must be clean without that.
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def run_cli(*args, timeout=120, cwd=None, extra_path=None, stderr=subprocess.PIPE):
    return subprocess.run(
        [sys.executable, "-m", "db_pool", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(extra_path),
    )


def run_json(*args, **kwargs):
    proc = run_cli(*args, "--json", **kwargs)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_percentiles_sane(dist):
    assert 0 <= dist["p50"] <= dist["p95"] <= dist["p99"] <= dist["max"]
    assert dist["mean"] <= dist["max"]


# -- help -------------------------------------------------------------------------


def test_help_lists_the_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for word in (
        "bench",
        "size",
        "check",
        "Without a command",
        "postgresql://",
        "mysql+mysqldb://",
    ):
        assert word in text
    assert proc.stderr == ""


@pytest.mark.parametrize(
    "command, options",
    [
        (
            "bench",
            [
                "--threads",
                "--pool-size",
                "--query",
                "--duration",
                "--count",
                "--json",
                "--hold",
            ],
        ),
        (
            "size",
            ["--sizes", "--chart", "--no-chart", "--tolerance", "--threads", "--json"],
        ),
        ("check", ["--timeout", "--pings", "--json"]),
    ],
)
def test_help_of_each_command(command, options):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m db_pool %s" % command)
    for option in options:
        assert option in proc.stdout


def test_version():
    import db_pool

    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "db_pool %s" % db_pool.__version__


# -- bench ------------------------------------------------------------------------


def test_bare_command_runs_the_default_workload():
    """``python -m db_pool`` alone: the embedded SQLite workload, for ~3 s."""
    start = time.monotonic()
    proc = run_cli()
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("db_pool bench\n")
    assert "embedded" in out and "RawConnectionPool" in out
    assert "(get/put in %s)" % ("C" if db_pool.SPEEDUPS else "Python") in out
    assert "mixed: 90% point reads, 10% updates" in out
    assert "200 green threads, pool of 8, 3 s" in out
    for header in ("p50", "p95", "p99", "max"):
        assert header in out
    assert "\n  latency " in out and "\n  checkout wait " in out
    assert "<RawConnectionPool 'bench' free=8 used=0 opening=0 waiting=0 max=8>" in out
    assert "\n  errors      0\n" in out
    ops = int(out.split("\n  operations  ", 1)[1].split()[0])
    assert ops > 0
    # The pool's stats: every checkout of the run is one operation.
    assert re.search(r"\bcheckouts +%d\b" % ops, out), out
    assert elapsed >= 3.0
    # stderr is a pipe here: plain progress lines, no bar drawing.
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("bench: running 200 green threads, pool of 8")
    assert lines[-1].startswith("bench: done, %d operations" % ops)


def test_bench_json_counts_are_exact():
    # Options without a command go to bench.
    data = run_json("--count", "400", "--threads", "40", "--pool-size", "4")
    assert data["command"] == "bench"
    assert data["operations"] == 400
    assert data["errors"] == 0 and data["error_kinds"] == {}
    assert data["threads"] == 40 and data["pool_size"] == 4 and data["count"] == 400
    assert data["duration"] is None
    assert data["workload"] == "mixed" and data["hold"] == pytest.approx(0.001)
    assert (
        data["driver"].startswith("sqlite3")
        and data["pool_class"] == "RawConnectionPool"
    )
    # Which get() and put() ran: the C ones where the extension was built.
    assert data["speedups"] is db_pool.SPEEDUPS
    pool = data["pool"]
    # The warm-up opened every connection; the counters cover the run only.
    assert data["warmup"]["connections_opened"] == 4
    assert pool["name"] == "bench" and pool["max_size"] == 4
    assert pool["checkouts"] == 400
    assert pool["connections_opened"] == 0 and pool["connections_closed"] == 0
    assert pool["size"] == 4 and pool["free"] == 4 and pool["checked_out"] == 0
    assert pool["waiting"] == 0 and pool["timeouts"] == 0
    assert 0 < pool["waits"] <= 400  # 40 threads on 4 connections: most wait
    assert pool["resets"] + pool["resets_skipped"] == 400
    assert pool["wait_time_max"] == pytest.approx(data["wait"]["max"], abs=0.01)
    # Each operation holds its connection for at least the 1 ms hold.
    assert pool["hold_time_total"] >= 400 * 0.001
    assert_percentiles_sane(data["latency"])
    assert_percentiles_sane(data["wait"])
    # An operation's latency includes its wait: so does every percentile.
    for key in ("p50", "p95", "p99", "max"):
        assert data["latency"][key] >= data["wait"][key]
    assert data["latency"]["p50"] >= 0.001
    assert data["throughput"] == pytest.approx(400 / data["elapsed"])


def test_bench_on_a_sqlite_file_cleans_up_its_table(tmp_path):
    path = tmp_path / "app.db"
    data = run_json("bench", "sqlite:///%s" % path, "--count", "200", "--threads", "20")
    assert data["url"] == "sqlite:///%s" % path
    assert data["operations"] == 200 and data["errors"] == 0
    table = data["workload_description"].split("(table ", 1)[1].rstrip(")")
    assert table.startswith("db_pool_bench_")
    conn = sqlite3.connect(str(path))
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
    finally:
        conn.close()
    assert tables == []


def test_bench_query_and_relative_sqlite_path(tmp_path):
    data = run_json(
        "bench",
        "--url",
        "sqlite:///rel.db",
        "--query",
        "SELECT 1",
        "--count",
        "150",
        "--threads",
        "10",
        "--pool-size",
        "2",
        "--hold",
        "0",
        cwd=tmp_path,
    )
    assert (tmp_path / "rel.db").exists()
    assert data["workload"] == "query" and data["query"] == "SELECT 1"
    assert data["operations"] == 150 and data["pool"]["checkouts"] == 150
    assert data["hold"] == 0
    assert data["pool"]["max_size"] == 2 and data["warmup"]["connections_opened"] == 2


def test_bench_duration_mode():
    data = run_json("bench", "--duration", "0.5", "--threads", "10", "--pool-size", "2")
    assert data["duration"] == 0.5 and data["count"] is None
    assert 0.5 <= data["elapsed"] < 5
    assert data["operations"] > 0
    assert data["pool"]["checkouts"] == data["operations"]


def test_text_report_goes_to_stdout_and_quiet_silences_progress():
    proc = run_cli("bench", "--count", "100", "--threads", "10", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "operations  100 in" in proc.stdout


def test_live_progress_bar_on_a_terminal():
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "db_pool",
                "bench",
                "--duration",
                "1",
                "--threads",
                "20",
            ],
            stdout=subprocess.PIPE,
            stderr=slave,
            env=cli_env(),
            text=True,
        )
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=60)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    tty = b"".join(chunks).decode()
    assert "\r" in tty
    assert "bench [" in tty and "%" in tty and " ops" in tty
    assert "#" in tty  # the bar fills
    assert "operations" in out  # the report still went to stdout


# -- size -------------------------------------------------------------------------


def test_size_json_recommendation_and_png_chart(tmp_path):
    chart = tmp_path / "size.png"
    data = run_json(
        "size",
        "--sizes",
        "4,1,2",
        "--count",
        "300",
        "--threads",
        "30",
        "--chart",
        str(chart),
    )
    assert data["command"] == "size"
    assert data["sizes"] == [1, 2, 4]  # sorted
    rows = data["results"]
    assert [r["pool_size"] for r in rows] == [1, 2, 4]
    for row in rows:
        assert row["operations"] == 300 and row["errors"] == 0
        assert row["pool"]["max_size"] == row["pool_size"]
        assert row["pool"]["checkouts"] == 300
        assert 0 <= row["wait_p50"] <= row["wait_p99"] <= row["wait_max"]
        assert row["latency_p99"] >= row["wait_p99"]
    best = max(r["throughput"] for r in rows)
    expected = min(r["pool_size"] for r in rows if r["throughput"] >= 0.95 * best)
    assert data["recommended"] == expected
    assert data["chart"] == str(chart)
    content = chart.read_bytes()
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 5000


def test_size_text_marks_one_recommendation_and_svg_chart(tmp_path):
    chart = tmp_path / "size.svg"
    proc = run_cli(
        "size",
        "--sizes",
        "1,2",
        "--count",
        "200",
        "--threads",
        "20",
        "--chart",
        str(chart),
    )
    assert proc.returncode == 0, proc.stderr
    marked = [ln for ln in proc.stdout.splitlines() if ln.endswith("<- recommended")]
    assert len(marked) == 1
    size = int(marked[0].split()[0])
    assert "recommended: max_size=%d," % size in proc.stdout
    assert "chart: %s" % chart in proc.stdout
    root = ET.parse(str(chart)).getroot()
    assert root.tag.endswith("svg")
    # Progress: one "running" and one "done" line per size.
    assert len([ln for ln in proc.stderr.splitlines() if ": done," in ln]) == 2


def test_size_draws_svg_by_hand_without_matplotlib(tmp_path):
    blocker = tmp_path / "block"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text(
        "raise ImportError('no matplotlib here')\n"
    )
    data = run_json(
        "size",
        "--sizes",
        "1,2,4",
        "--count",
        "150",
        "--threads",
        "15",
        "--chart",
        str(tmp_path / "chart.png"),
        extra_path=blocker,
    )
    assert data["chart"] == str(tmp_path / "chart.svg")
    assert not (tmp_path / "chart.png").exists()
    root = ET.parse(data["chart"]).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(ns + "polyline")
    assert len(lines) == 2  # throughput and p99 wait
    for line in lines:
        assert len(line.get("points").split()) == 3


def test_size_no_chart(tmp_path):
    data = run_json(
        "size",
        "--sizes",
        "1",
        "--count",
        "50",
        "--threads",
        "5",
        "--no-chart",
        cwd=tmp_path,
    )
    assert data["chart"] is None and data["recommended"] == 1
    assert list(tmp_path.iterdir()) == []


# -- check ------------------------------------------------------------------------


def test_check_sqlite(tmp_path):
    path = tmp_path / "c.db"
    data = run_json("check", "sqlite:///%s" % path, "--pings", "3")
    assert data["ok"] is True
    assert data["server_version"] == "SQLite %s" % sqlite3.sqlite_version
    assert data["round_trip"]["count"] == 3
    assert (
        0
        <= data["round_trip"]["min"]
        <= data["round_trip"]["median"]
        <= data["round_trip"]["max"]
    )
    assert data["pool"]["checkouts"] == 1 and data["pool"]["connections_opened"] == 1
    proc = run_cli("check", "sqlite:///%s" % path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("ok sqlite:///%s\n" % path)
    assert "round trip  min" in proc.stdout


# -- bad input: one line on stderr, non-zero exit, no traceback, no password ---


def _bad_cases():
    return [
        (["bench", "foo://x"], 2, "unsupported URL scheme 'foo'"),
        (["bench", "not a url"], 2, "not a database URL"),
        (["bench", "sqlite://"], 2, "needs a file"),
        (["bench", "postgresql://u:%s@[::1/x" % SECRET], 2, "bad database URL"),
        (["bench", "--threads", "0"], 2, "--threads"),
        (["bench", "--threads", "abc"], 2, "--threads"),
        (["bench", "--duration", "1", "--count", "5"], 2, "not allowed with"),
        (
            ["bench", "--url", "sqlite:///a.db", "sqlite:///b.db"],
            2,
            "give the URL once",
        ),
        (["size", "--sizes", "1,x"], 2, "--sizes"),
        (["size", "--sizes", "0"], 2, "--sizes"),
        (["check"], 2, "check needs a database URL"),
        (["frobnicate"], 2, "invalid choice"),
        (["check", "sqlite:////nonexistent-dir-db-pool/x.db"], 1, "cannot connect"),
        (["bench", "--query", "SELEC 1", "--count", "5"], 1, "the workload failed"),
        (
            ["check", "postgresql://u:%s@127.0.0.1:{port}/db" % SECRET],
            1,
            "cannot connect to postgresql://u:***@127.0.0.1:",
        ),
        (
            ["bench", "mysql://u:%s@127.0.0.1:{port}/db" % SECRET, "--count", "5"],
            1,
            "cannot connect to mysql://u:***@",
        ),
        (
            ["check", "mysql+mysqldb://u:%s@127.0.0.1:{port}/db" % SECRET],
            1,
            "cannot connect",
        ),
        (
            ["size", "postgresql://u:%s@127.0.0.1:{port}/db" % SECRET, "--count", "5"],
            1,
            "cannot connect",
        ),
    ]


@pytest.mark.parametrize("args, status, message", _bad_cases(), ids=lambda v: None)
def test_bad_input_gives_one_line_and_nonzero_exit(
    args, status, message, closed_port, tmp_path
):
    args = [a.replace("{port}", str(closed_port)) for a in args]
    proc = run_cli(*args, cwd=tmp_path, timeout=60)
    assert proc.returncode == status, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m db_pool")
    assert ": error: " in lines[0]
    assert message in lines[0]
    assert SECRET not in proc.stderr and SECRET not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("scheme", ["postgresql", "mysql", "mysql+mysqldb"])
def test_check_of_a_server_that_never_answers(blackhole, scheme):
    start = time.monotonic()
    proc = run_cli(
        "check",
        "%s://u:%s@127.0.0.1:%d/db" % (scheme, SECRET, blackhole.port),
        "--timeout",
        "1",
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot connect" in lines[0] and "ConnectTimeout" in lines[0]
    assert SECRET not in proc.stderr
    assert elapsed < 15


# -- in-process: the helpers ----------------------------------------------------


@pytest.mark.parametrize(
    "url, kind, kwargs, display, pool_class",
    [
        (
            "postgresql://app:%s@db.example:6543/orders?application_name=x&connect_timeout=3"
            % SECRET,
            "postgresql",
            {
                "host": "db.example",
                "port": 6543,
                "user": "app",
                "password": SECRET,
                "dbname": "orders",
                "application_name": "x",
                "connect_timeout": 3,
            },
            "postgresql://app:***@db.example:6543/orders",
            "RawConnectionPool",
        ),
        (
            "postgres://h/d",
            "postgresql",
            {"host": "h", "dbname": "d"},
            "postgres://h/d",
            "RawConnectionPool",
        ),
        (
            "mysql://root@127.0.0.1/test",
            "pymysql",
            {"host": "127.0.0.1", "user": "root", "database": "test"},
            "mysql://root@127.0.0.1/test",
            "RawConnectionPool",
        ),
        (
            "mysql+mysqldb://u:%s@h:3307/d" % SECRET,
            "mysqldb",
            {
                "host": "h",
                "port": 3307,
                "user": "u",
                "password": SECRET,
                "database": "d",
            },
            "mysql+mysqldb://u:***@h:3307/d",
            "TpooledConnectionPool",
        ),
        (
            "sqlite:////abs/x.db",
            "sqlite",
            {"database": "/abs/x.db", "check_same_thread": False},
            "sqlite:////abs/x.db",
            "RawConnectionPool",
        ),
        (
            "sqlite:///rel.db?timeout=2",
            "sqlite",
            {"database": "rel.db", "check_same_thread": False, "timeout": 2},
            "sqlite:///rel.db",
            "RawConnectionPool",
        ),
    ],
)
def test_parse_url(url, kind, kwargs, display, pool_class):
    t = target_mod.parse_url(url)
    assert t.kind == kind
    assert t.connect_kwargs == kwargs
    assert t.display == display
    assert t.pool_class_name == pool_class
    assert SECRET not in repr(t)


def test_parse_url_default_is_embedded_sqlite():
    t = target_mod.parse_url(None)
    assert t.kind == "sqlite" and t.embedded
    t.prepare()
    try:
        path = t.connect_kwargs["database"]
        assert os.path.isdir(os.path.dirname(path))
        assert path in t.display
    finally:
        t.cleanup()
    assert not os.path.exists(os.path.dirname(path))


def test_percentiles_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]
    p = percentiles(values)
    assert (p["p50"], p["p95"], p["p99"], p["max"]) == (50.0, 95.0, 99.0, 100.0)
    assert p["mean"] == pytest.approx(50.5)
    assert percentiles([]) == {
        "p50": 0.0,
        "p95": 0.0,
        "p99": 0.0,
        "max": 0.0,
        "mean": 0.0,
    }
    assert percentiles([0.25])["p99"] == 0.25


def _rows(*pairs):
    return [
        {"pool_size": s, "throughput": t, "operations": 1 if t else 0, "wait_p99": 0.01}
        for s, t in pairs
    ]


def test_recommendation_is_the_smallest_size_near_the_best():
    rows = _rows(
        (1, 100.0), (2, 190.0), (4, 380.0), (8, 396.0), (16, 400.0), (32, 390.0)
    )
    assert commands.recommend(rows, 0.05) == 4  # 380 >= 0.95 * 400
    assert commands.recommend(rows, 0.0) == 16
    assert commands.recommend(rows, 0.5) == 4  # 190 < 200
    assert commands.recommend(_rows((1, 0.0), (2, 0.0)), 0.05) is None
    assert not commands.still_rising(rows, 4, 0.05)
    rising = _rows((1, 100.0), (2, 200.0), (4, 400.0))
    assert commands.recommend(rising, 0.05) == 4
    assert commands.still_rising(rising, 4, 0.05)


def test_svg_chart_is_valid_svg():
    rows = [
        {"pool_size": s, "throughput": t, "wait_p99": w}
        for s, t, w in [
            (1, 700.0, 0.3),
            (2, 1400.0, 0.15),
            (4, 2600.0, 0.08),
            (8, 2700.0, 0.07),
        ]
    ]
    root = ET.fromstring(svg_chart(rows, 4, "title <&> escaped"))
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(ns + "text")]
    assert "title <&> escaped" in texts
    assert "recommended: 4" in texts
    assert len(root.findall(ns + "polyline")) == 2
    assert len(root.findall(ns + "circle")) == 8


def test_fmt_time():
    assert fmt_time(0.0000421) == "0.042 ms"
    assert fmt_time(0.00123) == "1.23 ms"
    assert fmt_time(0.0456) == "45.6 ms"
    assert fmt_time(0.456) == "456 ms"
    assert fmt_time(2.5) == "2.50 s"
