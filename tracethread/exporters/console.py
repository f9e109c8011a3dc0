"""The contention report, rendered by rich (imported here, never by ``import tracethread``).

``ContentionReport`` implements ``__rich_console__``; rendering is the console's job. Plain
text when the stream is not a terminal or ``NO_COLOR`` is set.
"""

from __future__ import annotations

import io
import os
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from .stats import PrimitiveStats, StatsSink


def _ms(ns: int) -> str:
    if ns == 0:
        return "0"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    return f"{ns / 1e6:.1f} ms"


class ContentionReport:
    """The most contended primitives of a run, and how much was recorded."""

    def __init__(self, stats: StatsSink, recorder: dict[str, int] | None = None,
                 limit: int = 20, title: str = "tracethread: lock contention") -> None:
        self.stats = stats
        self.recorder = recorder or {}
        self.limit = limit
        self.title = title

    def rows(self) -> list[PrimitiveStats]:
        return self.stats.top(self.limit)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = Table(title=self.title, title_justify="left", expand=False)
        table.add_column("primitive", overflow="fold", min_width=24)
        table.add_column("kind", no_wrap=True)
        for col in ("ops", "acquired", "contended", "waits", "timeouts", "wait total",
                    "wait max", "hold max", "threads"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in self.rows():
            table.add_row(row.name, row.kind, str(row.operations), str(row.acquisitions),
                          str(row.contentions), str(row.waits), str(row.timeouts),
                          _ms(row.wait_ns_total), _ms(row.wait_ns_max), _ms(row.hold_ns_max),
                          str(len(row.threads)))
        yield table
        shown = min(self.limit, len(self.stats.rows))
        summary = (f"{self.stats.records} records from {len(self.stats.threads)} threads on "
                   f"{len(self.stats.rows)} primitives (top {shown} shown)")
        dropped = self.recorder.get("dropped", 0)
        if dropped:
            summary += f"; {dropped} records dropped (buffer overflow)"
        if self.stats.overflow:
            summary += f"; {self.stats.overflow} records of primitives past the row limit"
        yield Text(summary)
        from .._core.findings import findings
        found = findings()
        if not found:
            yield Text("No deadlock findings: no lock-order cycles, deadlocks or hangs.")
        for f in found:
            yield Text(f"{f.kind}: {f.message}" + (f" (seen {f.count}×)" if f.count > 1 else ""),
                       style="bold red" if f.kind in ("deadlock", "hang",
                                                      "potential-deadlock") else "")
            for e in f.edges:
                where = f" at {e.stack[-1].file}:{e.stack[-1].line}" if e.stack else ""
                yield Text(f"    {e.thread}: holds {e.src}, takes {e.dst}{where}")


def make_console(file: TextIO, width: int | None = None) -> Console:
    tty = getattr(file, "isatty", lambda: False)()
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    if width is None and not tty:
        # A log file or CI output: wide enough for the table, whatever the terminal was.
        width = int(os.environ.get("COLUMNS", "0") or 0) or 160
    return Console(file=file, width=width, color_system=None if plain else "auto",
                   no_color=plain, highlight=False, soft_wrap=False)


def render_text(renderable: Any, width: int = 120) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False).print(renderable)
    return buf.getvalue()
