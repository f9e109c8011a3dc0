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
from .json_report import display_name


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


def _middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle (a lock's name ends in
    its line number: both ends matter)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


# (header, width, value of a row): the default columns, then those --wide adds.
_COLUMNS = [
    ("kind", 9, lambda r: core.literal(r["kind"])),
    ("acquired", 8, lambda r: str(r["acquisitions"])),
    ("contended", 9, lambda r: str(r["contentions"])),
    ("waited", 8, lambda r: _dur(r["wait_seconds_total"])),
    ("wait max", 8, lambda r: _dur(r["wait_seconds_max"])),
    ("hold max", 8, lambda r: _dur(r["hold_seconds_max"])),
]
_WIDE_COLUMNS = [
    ("ops", 7, lambda r: str(r["operations"])),
    ("waits", 7, lambda r: str(r["waits"])),
    ("timeouts", 8, lambda r: str(r["timeouts"])),
    ("threads", 7, lambda r: str(r["threads"])),
]
_NAME_MIN = 12   # below this, rows are written one per line instead of as a table


def _fit(row: dict, width: int) -> str:
    """A row's name in ``width`` characters: the code's name and the site, else the code's
    name and the file's base name, else the code's name, else cut in the middle."""
    label, name = row.get("label"), core.literal(row["name"])
    if isinstance(label, str) and label:
        label = core.literal(label)
        file, _, line = name.rpartition(":")
        for text in (f"{label} {name}", f"{label} {os.path.basename(file)}:{line}", label):
            if len(text) <= width:
                return text
        return _middle(label, width)
    return _middle(name, width)


def _eventful(row: dict) -> bool:
    """Did the primitive make anyone wait (contended, waited on, timed out)?"""
    return bool(row["contentions"] or row["wait_seconds_total"] or row["timeouts"])


class ReportView:
    """The most contended primitives, then each finding: the cycle as a chain, a scenario
    per thread (holds X, wants Y), and the program's own frames.

    The table fits the console's width (80 columns and up): by default it shows only the
    primitives somebody waited on, with the columns above, names cut in the middle;
    ``wide`` adds the other columns and every primitive. Narrower than a table can be, it
    becomes one line per primitive: a column is never cut off."""

    def __init__(self, report: dict[str, Any], limit: int = 20,
                 title: str = "tracethread: lock contention", baselined: set | None = None,
                 stack_frames: int = 4, wide: bool = False) -> None:
        self.report = report
        self.limit = limit
        self.title = title
        self.baselined = baselined or set()
        self.stack_frames = stack_frames
        self.wide = wide

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        locks = self.report.get("locks", [])
        rows = locks if self.wide else [r for r in locks if _eventful(r)]
        shown = rows[: self.limit]
        columns = _COLUMNS + (_WIDE_COLUMNS if self.wide else [])
        # Each column takes its width and a space either side; the name takes the rest.
        name_width = options.max_width - sum(w + 2 for _, w, _ in columns) - 1
        yield _text(self.title, style="bold")
        if shown and name_width >= _NAME_MIN:
            table = Table(box=None, pad_edge=False, expand=False, padding=(0, 1),
                          header_style="bold")
            table.add_column("primitive", no_wrap=True, width=min(
                name_width, max(len("primitive"),
                                max(len(core.literal(display_name(r))) for r in shown))))
            for header, width, _ in columns:
                table.add_column(header, justify="left" if header == "kind" else "right",
                                 no_wrap=True, min_width=width)
            for row in shown:
                table.add_row(Text(_fit(row, name_width)),
                              *(Text(_middle(value(row), width))
                                for _, width, value in columns))
            yield table
        else:   # too narrow for a table: one primitive per line, nothing cut
            for row in shown:
                yield _text(f"{display_name(row)} ({row['kind']}): " + ", ".join(
                    f"{header} {value(row)}" for header, _, value in columns[1:]))
        rec = self.report.get("recorder", {})
        if self.wide:
            summary = (f"{rec.get('records', 0)} records on {len(locks)} primitives "
                       f"(top {len(shown)} shown)")
        else:
            summary = (f"{rec.get('records', 0)} records on {len(locks)} primitives; "
                       f"{len(rows)} made a thread wait"
                       + (f" (top {len(shown)} shown)" if len(shown) < len(rows) else "")
                       + "; --wide shows every primitive and column")
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
        if f.get("recovered_after_s") is not None:
            head += f" (it went on after at most {f['recovered_after_s']:.1f} s)"
        if base:
            head += " [in baseline]"
        yield Text("")
        yield _text(head, style=style)
        if f["locks"] and f["kind"] in ("potential-deadlock", "guarded-cycle"):
            names = [display_name(lk) + (f" #{lk['instance']}" if lk.get("instance") else "")
                     for lk in f["locks"]]
            yield _text(f"  cycle: {' → '.join(names)} → {names[0]}")
        for e in f.get("edges", []):
            where = _site(e["stack"][-1]) if e.get("stack") else "?"
            yield _text(f"  thread {e['thread']!r} holds {e['from']} and takes {e['to']} "
                        f"at {where}")
            for fr in e["stack"][-self.stack_frames:-1][::-1]:
                yield _text(f"      called from {fr['file']}:{fr['line']} in "
                            f"{fr['function']}", style="dim")
        if f["kind"] == "potential-deadlock":
            yield from _scenario(f.get("edges", []))
        if f["kind"] in ("deadlock", "hang"):
            for t in f.get("threads", []):
                holds = ", ".join(t["holds"]) or "nothing"
                yield _text(f"  thread {t['name']!r} holds {holds}; waits for "
                            f"{t['waits_for'] or '-'}")
                for held in t.get("held_at", []):
                    if held.get("site"):
                        yield _text(f"    took {held['lock']} at {_site(held['site'])}")
                for fr in t["stack"][-self.stack_frames:][::-1]:
                    yield _text(f"      {fr['file']}:{fr['line']} in {fr['function']}",
                                style="dim")
        yield _text(f"  fingerprint {f['fingerprint']}", style="dim")


def _short(lock: str) -> str:
    """A lock as a scenario shows it: without its site (``Lock Account.lock #3``)."""
    head, sep, rest = lock.partition(" (")
    if not sep or ")" not in rest:
        return lock
    return head + rest.partition(")")[2]


def _scenario(edges: list) -> RenderResult:
    """Linux lockdep's "possible unsafe locking scenario" for a two-thread inversion: the
    interleaving that deadlocks, one column per thread, and the fix."""
    if len(edges) != 2 or edges[0]["thread"] == edges[1]["thread"]:
        return
    first, second = edges
    a, b = _short(first["from"]), _short(first["to"])
    t1, t2 = first["thread"], second["thread"]
    rows = [(f"takes {a}", ""), ("", f"takes {b}"), (f"waits for {b}", ""),
            ("", f"waits for {a}")]
    width = max(len(t1), *(len(left) for left, _ in rows)) + 4
    yield _text("  how it can deadlock (one interleaving of the two threads):")
    yield _text(f"    {t1:<{width}}{t2}", style="bold")
    for left, right in rows:
        yield _text(f"    {left:<{width}}{right}".rstrip())
    yield _text("    each waits for a lock the other holds: neither ever goes on")
    where = _site(second["stack"][-1]) if second.get("stack") else "?"
    yield _text(f"  fix: take the two locks in one order everywhere: thread {t2!r} takes {a} "
                f"while holding {b} at {where}; take {a} first there, as {t1!r} does (or "
                "guard both with one lock)")


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
