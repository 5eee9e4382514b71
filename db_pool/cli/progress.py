"""Progress on stderr: a live bar on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["Progress"]

WIDTH = 30


class Progress:
    """Reports the progress of one run after another.

    On a terminal (or with *live* true) a bar is redrawn in place; when
    stderr is a pipe or a file, one line is written when a run starts and
    one when it ends, so logs stay readable.  *quiet* silences it all.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        quiet: bool = False,
        live: bool | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        if live is None:
            try:
                live = self.stream.isatty()
            except Exception:
                live = False
        self.live = live
        self.label = ""
        self._drawn = False
        self._last_line = ""

    def start(self, label: str, detail: str = "") -> None:
        self.label = label
        if self.quiet:
            return
        if not self.live:
            self._write(
                "%s: running %s\n" % (label, detail)
                if detail
                else "%s: running\n" % label
            )

    def update(
        self, fraction: float, operations: int, elapsed: float | None = None
    ) -> None:
        if self.quiet or not self.live:
            return
        fraction = max(0.0, min(1.0, fraction))
        filled = int(round(fraction * WIDTH))
        bar = "#" * filled + "-" * (WIDTH - filled)
        line = "\r%s [%s] %3d%%  %d ops" % (self.label, bar, fraction * 100, operations)
        if elapsed:
            line += "  %.0f/s" % (operations / elapsed)
        if line != self._last_line:
            # Pad so a shorter line fully covers the previous one.
            pad = max(0, len(self._last_line) - len(line))
            self._write(line + " " * pad)
            self._last_line = line
            self._drawn = True

    def finish(self, summary: str = "") -> None:
        if self.quiet:
            return
        if self.live:
            if self._drawn:
                self._write("\r" + " " * len(self._last_line) + "\r")
            self._drawn = False
            self._last_line = ""
            if summary:
                self._write("%s: %s\n" % (self.label, summary))
        else:
            self._write(
                "%s: done%s\n" % (self.label, ", " + summary if summary else "")
            )

    def note(self, text: str) -> None:
        """A line of its own (never while a bar is drawn)."""
        if not self.quiet:
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed pipe must not stop the run
            pass

    def callback(self) -> Any:
        """A ``progress(fraction, operations)`` callable for :func:`workload.run`."""
        from .. import _green

        begin = _green.monotonic()

        def report(fraction: float, operations: int) -> None:
            self.update(fraction, operations, _green.monotonic() - begin)

        return report
