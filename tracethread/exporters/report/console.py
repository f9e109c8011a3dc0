"""The report, rendered by rich (imported here, never by ``import tracethread``).

``ReportView`` renders a report dict (the JSON report's schema, docs/report.md) and
implements ``__rich_console__``: the live report at exit and ``tracethread report FILE``
are the same view. Plain text when the stream is not a terminal or ``NO_COLOR`` is set.
"""

from __future__ import annotations

import io
import os
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from ..._core import api as core


def _text(value: Any, style: str = "") -> Text:
    return Text(core.literal(value), style=style)


def _dur(seconds: float) -> str:
    ns = seconds * 1e9
    if ns == 0:
        return "0"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    return f"{ns / 1e6:.1f} ms"


def _site(site: dict | None) -> str:
    return "" if not site else f"{core.literal(site['file'])}:{site['line']}"


class ReportView:
    """The most contended primitives, then each finding: the cycle as a chain, a scenario
    per thread (holds X, wants Y), and the program's own frames."""

    def __init__(self, report: dict[str, Any], limit: int = 20,
                 title: str = "tracethread: lock contention", baselined: set | None = None,
                 stack_frames: int = 4) -> None:
        self.report = report
        self.limit = limit
        self.title = title
        self.baselined = baselined or set()
        self.stack_frames = stack_frames

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        locks = self.report.get("locks", [])
        table = Table(title=_text(self.title), title_justify="left", expand=False)
        table.add_column("primitive", overflow="fold", min_width=24)
        table.add_column("kind", no_wrap=True)
        for col in ("ops", "acquired", "contended", "waits", "timeouts", "wait total",
                    "wait max", "hold max", "threads"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in locks[: self.limit]:
            table.add_row(_text(row["name"]), _text(row["kind"]), str(row["operations"]),
                          str(row["acquisitions"]), str(row["contentions"]),
                          str(row["waits"]), str(row["timeouts"]),
                          _dur(row["wait_seconds_total"]), _dur(row["wait_seconds_max"]),
                          _dur(row["hold_seconds_max"]), str(row["threads"]))
        yield table
        rec = self.report.get("recorder", {})
        summary = (f"{rec.get('records', 0)} records on {len(locks)} primitives "
                   f"(top {min(self.limit, len(locks))} shown)")
        if rec.get("dropped"):
            summary += (f"; {rec['dropped']} records dropped (the program outran the recorder; "
                        "the counts above are lower bounds)")
        if rec.get("export_dropped"):
            summary += (f"; {rec['export_dropped']} spans dropped by the exporter's full "
                        "queue (OTEL_BSP_MAX_QUEUE_SIZE)")
        export = self.report.get("export")
        if isinstance(export, dict) and export.get("error"):
            summary += (f"; OpenTelemetry export failed ({core.literal(export['error'])}): "
                        f"{export.get('spans_not_delivered', 0)} spans, "
                        f"{export.get('metric_points_not_delivered', 0)} metric points "
                        "not delivered")
        if rec.get("internal_errors"):
            summary += (f"; {rec['internal_errors']} errors of tracethread's own were "
                        "contained (see stderr): findings may be incomplete")
        cut = self.report.get("graph", {}).get("truncated")
        if cut:
            summary += (f"; lock-order graph truncated at {cut['max_edges']} edges "
                        f"({cut['not_kept']} acquires in a new order were not recorded: "
                        "cycles through them were not looked for; raise --max-edges)")
        yield Text(summary)
        found = self.report.get("findings", [])
        if not found:
            yield Text("No deadlock findings: no lock-order cycles, deadlocks or hangs.")
            return
        for f in found:
            yield from self._finding(f)

    def _finding(self, f: dict[str, Any]) -> RenderResult:
        base = f["fingerprint"] in self.baselined
        style = "dim" if base or f["kind"] == "guarded-cycle" else "bold red"
        head = f"{f['kind']}: {f['message']}"
        if f.get("count", 1) > 1:
            head += f" (seen {f['count']}×)"
        if base:
            head += " [in baseline]"
        yield Text("")
        yield _text(head, style=style)
        if f["locks"] and f["kind"] in ("potential-deadlock", "guarded-cycle"):
            names = [lk["name"] + (f" #{lk['instance']}" if lk.get("instance") else "")
                     for lk in f["locks"]]
            yield _text(f"  cycle: {' → '.join(names)} → {names[0]}")
        for e in f.get("edges", []):
            where = _site(e["stack"][-1]) if e.get("stack") else "?"
            yield _text(f"  thread {e['thread']!r} holds {e['from']} and takes {e['to']} "
                        f"at {where}")
            for fr in e["stack"][-self.stack_frames:-1][::-1]:
                yield _text(f"      called from {fr['file']}:{fr['line']} in "
                            f"{fr['function']}", style="dim")
        if f["kind"] in ("deadlock", "hang"):
            for t in f.get("threads", []):
                holds = ", ".join(t["holds"]) or "nothing"
                yield _text(f"  thread {t['name']!r} holds {holds}; waits for "
                            f"{t['waits_for'] or '-'}")
                for fr in t["stack"][-self.stack_frames:][::-1]:
                    yield _text(f"      {fr['file']}:{fr['line']} in {fr['function']}",
                                style="dim")
        yield _text(f"  fingerprint {f['fingerprint']}", style="dim")


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
