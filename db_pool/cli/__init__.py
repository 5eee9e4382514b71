"""The command line: ``python -m db_pool [bench|size|check] ...``.

Results go to stdout and progress to stderr, so output can be piped.  A bad
URL, a bad option or an unreachable server gives one line on stderr (never
a password) and a non-zero exit status: 2 for bad input, 1 when the command
could not do its job, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from typing import IO, Any, Sequence

from .target import SCHEMES, CommandError, UsageError, parse_url

__all__ = ["main", "build_parser"]

PROG = "python -m db_pool"
COMMANDS = ("bench", "size", "check")

_URL_HELP = (
    "database URL: %s (default: an embedded SQLite database in a temporary file)"
    % SCHEMES
)

_EPILOG = """\
URLs pick the driver and the pool variant:
  (none) / sqlite:///path.db   sqlite3, RawConnectionPool
  postgresql://user@host/db    psycopg2 made green, RawConnectionPool
  mysql://user@host/db         PyMySQL under eventlet.monkey_patch(), RawConnectionPool
  mysql+mysqldb://user@host/db MySQLdb (mysqlclient), TpooledConnectionPool
Query parameters go to the driver's connect() as keywords.

Exit status: 0 success, 1 failure (server unreachable, errors during the
run), 2 bad input, 130 interrupted.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError("%s (see %s --help)" % (message, self.prog))


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps text that is laid out already (the epilog)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected a positive integer, got %r" % text
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected a number of seconds, got %r" % text
        ) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            "expected a number of seconds >= 0, got %r" % text
        )
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(
            "expected a number of seconds > 0, got %r" % text
        )
    return value


def _sizes(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "expected comma-separated pool sizes like 1,2,4,8, got %r" % text
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError("pool sizes must be >= 1, got %r" % text)
        sizes.append(value)
    if not sizes:
        raise argparse.ArgumentTypeError(
            "expected at least one pool size, got %r" % text
        )
    return sorted(set(sizes))


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected a percentage, got %r" % text
        ) from None
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(
            "expected a percentage from 0 to 100, got %r" % text
        )
    return value


def _add_common(p: argparse.ArgumentParser, url_required: bool = False) -> None:
    p.add_argument("url", nargs="?", metavar="URL", help=_URL_HELP)
    p.add_argument(
        "--url", dest="url_option", metavar="URL", help="the same, as an option"
    )
    p.add_argument(
        "--json", action="store_true", help="machine-readable output (JSON on stdout)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show db_pool's log on stderr (-vv: debug); also tracebacks of "
        "internal errors",
    )


def _add_load(p: argparse.ArgumentParser, duration: float) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=200,
        metavar="N",
        help="green threads running the workload (default: 200)",
    )
    p.add_argument(
        "--query",
        metavar="SQL",
        help="run this statement as the workload (default: SELECT 1 on a server; "
        "the mixed workload on SQLite)",
    )
    p.add_argument(
        "--mixed",
        action="store_true",
        help="the mixed workload on a server too: 90%% point reads and 10%% "
        "updates on a scratch table of 1000 rows, created and dropped by the run",
    )
    until = p.add_mutually_exclusive_group()
    until.add_argument(
        "--duration",
        type=_positive_seconds,
        default=duration,
        metavar="SECONDS",
        help="how long each run lasts (default: %g)" % duration,
    )
    until.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="stop after N operations in all, instead of after --duration",
    )
    p.add_argument(
        "--hold",
        type=_seconds,
        metavar="SECONDS",
        help="keep each connection this much longer after its statement, as a "
        "request doing its own I/O would (default: 0.001 on SQLite, 0 on a server)",
    )
    p.add_argument(
        "--connect-timeout",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="the pool's connect_timeout (default: 5)",
    )
    p.add_argument(
        "--pool-timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="the pool's pool_timeout: give up waiting for a connection after "
        "this long (default: wait for ever)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Load, size and check a database through a db_pool connection pool. "
            "Without a command, runs 'bench' (options of 'bench' may follow): "
            "a short concurrent workload against an embedded SQLite database "
            "unless a URL is given."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    from .. import __version__

    parser.add_argument(
        "--version", action="version", version="db_pool %s" % __version__
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    bench = sub.add_parser(
        "bench",
        help="run a concurrent workload and report throughput, latency and "
        "wait percentiles",
        description=(
            "Run a workload from many green threads sharing one pool, with a "
            "progress bar on stderr; then print throughput, latency and "
            "checkout-wait percentiles (p50, p95, p99, max), errors and the "
            "pool's stats."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    _add_common(bench)
    _add_load(bench, 3.0)
    bench.add_argument(
        "--pool-size",
        type=_positive_int,
        default=8,
        metavar="N",
        help="the pool's max_size (default: 8)",
    )

    size = sub.add_parser(
        "size",
        help="run the workload at several pool sizes and recommend one",
        description=(
            "Run the same workload at each pool size; print throughput and p99 "
            "checkout wait per size, mark the smallest size within --tolerance "
            "of the best throughput as the recommendation, and draw both "
            "curves in a chart."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    _add_common(size)
    _add_load(size, 2.0)
    size.add_argument(
        "--sizes",
        type=_sizes,
        default=[1, 2, 4, 8, 16, 32],
        metavar="N,N,...",
        help="pool sizes to try (default: 1,2,4,8,16,32)",
    )
    size.add_argument(
        "--tolerance",
        type=_percent,
        default=5.0,
        metavar="PERCENT",
        help="recommend the smallest size within this much of the best "
        "throughput (default: 5)",
    )
    from .chart import DEFAULT_CHART

    size.add_argument(
        "--chart",
        default=DEFAULT_CHART,
        metavar="PATH",
        help="where to write the chart; its extension picks PNG or SVG (default: "
        "%(default)s; without matplotlib, an SVG drawn by hand)",
    )
    size.add_argument(
        "--no-chart",
        dest="chart",
        action="store_const",
        const=None,
        help="draw no chart",
    )

    check = sub.add_parser(
        "check",
        help="connect, ping, print the server version and round-trip latency",
        description=(
            "Connect through a pool, ask the server's version and time a few "
            "round trips. Exit status 0 when the database answers, 1 when it "
            "does not: fit for scripts and health checks."
        ),
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    _add_common(check)
    check.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="give up connecting, and answering, after this long (default: 5)",
    )
    check.add_argument(
        "--pings",
        type=_positive_int,
        default=5,
        metavar="N",
        help="round trips to time (default: 5)",
    )
    return parser


def _configure_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logger = logging.getLogger("db_pool")
    logger.addHandler(handler)
    logger.propagate = False
    if verbose >= 2:
        logger.setLevel(logging.DEBUG)
    elif verbose == 1:
        logger.setLevel(logging.INFO)
    else:
        # The run's report counts what went wrong; log lines would only
        # break the progress bar and the one-line error contract.
        logger.setLevel(logging.CRITICAL + 1)
        warnings.simplefilter("ignore")


def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = stdout if stdout is not None else sys.stdout
    if not args_list or (
        args_list[0].startswith("-")
        and args_list[0] not in ("-h", "--help", "--version")
    ):
        args_list.insert(0, "bench")
    parser = build_parser()
    prog = PROG
    verbose = 0
    try:
        args = parser.parse_args(args_list)
        if args.command is None:  # pragma: no cover - "bench" is inserted above
            args.command = "bench"
        prog = "%s %s" % (PROG, args.command)
        if args.url and args.url_option:
            raise UsageError("give the URL once, as an argument or with --url")
        url = args.url or args.url_option
        if args.command == "check" and url is None:
            raise UsageError("check needs a database URL (%s)" % SCHEMES)
        target = parse_url(url)
        # Monkey-patching (PyMySQL) must come before anything makes locks.
        target.load_driver()
        verbose = args.verbose
        _configure_logging(verbose)
        from . import commands
        from .progress import Progress

        progress = Progress(quiet=args.quiet)
        return getattr(commands, args.command)(args, target, progress, out)
    except UsageError as exc:
        _error(prog, str(exc))
        return 2
    except CommandError as exc:
        _error(prog, str(exc))
        return 1
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        from ..secrets import redact

        if verbose:
            traceback.print_exc()
        text = str(exc).strip().splitlines()
        _error(
            prog,
            redact(
                "internal error: %s%s%s"
                % (
                    type(exc).__name__,
                    ": " + text[0] if text else "",
                    "" if verbose else " (run with -v for the traceback)",
                )
            ),
        )
        return 1


def _error(prog: str, message: str) -> None:
    try:
        sys.stderr.write("%s: error: %s\n" % (prog, message.replace("\n", " ")))
        sys.stderr.flush()
    except Exception:
        pass
