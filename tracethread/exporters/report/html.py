"""The report as one HTML file a person opens in a browser (``run --html``, ``report
FILE.json --html``): the summary, the contention table (sortable), each finding with its
cycle drawn (cyclegraph.py) and its threads' stacks, and a timeline of each thread's waits
and holds (from the ``TimelineSink``; a saved JSON report has none, and the page says so).

Self-contained and offline by construction: the CSS, the one script (table sorting) and
every picture are inline, fonts are the system's, and a Content-Security-Policy allows
nothing to be loaded (``default-src 'none'``) and no script or style to run but the two
this module wrote (by their SHA-256). The policy is a second line: the first is that every
string from the program or a file is escaped (htmltext.py), in text, in attributes, in
SVG and in the JSON embedded in a ``<script>``.

The page works without its script (the table is then in the report's order).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from . import cyclegraph
from .files import write_text
from .htmltext import esc, plain, script_json, shorten
from .json_report import display_name

MAX_ROWS = 1000
MAX_LANES = 200
PLOT_W = 900.0
LABEL_W = 180.0
LANE_H = 24.0

# (key, heading, value in a row, how it is shown)
_COLUMNS: list[tuple[str, str, str, str]] = [
    ("primitive", "primitive", "name", "text"), ("kind", "kind", "kind", "text"),
    ("ops", "ops", "operations", "count"), ("acquired", "acquired", "acquisitions", "count"),
    ("contended", "contended", "contentions", "count"), ("waits", "waits", "waits", "count"),
    ("timeouts", "timeouts", "timeouts", "count"),
    ("wait-total", "wait total", "wait_seconds_total", "seconds"),
    ("wait-max", "wait max", "wait_seconds_max", "seconds"),
    ("hold-max", "hold max", "hold_seconds_max", "seconds"),
    ("threads", "threads", "threads", "count")]

STYLE = """
:root { color-scheme: light; --hot: #c62828; --cold: #9e9e9e; --ink: #1f2328;
        --muted: #59636e; --line: #d1d9e0; --hold: #1565c0; --wait: #c62828; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 24px auto; max-width: 1280px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; }
code, .mono, td.primitive, svg text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo,
       Consolas, monospace; }
.muted { color: var(--muted); }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.summary dt { color: var(--muted); } dl.summary dd { margin: 0; }
.note { background: #fff8e1; border-left: 3px solid #f9a825; padding: 6px 10px; }
table.sortable { border-collapse: collapse; font-size: 13px; }
table.sortable th, table.sortable td { border-bottom: 1px solid var(--line);
       padding: 3px 8px; text-align: right; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; background: #f6f8fa; }
table.sortable th.text, table.sortable td.text { text-align: left; }
table.sortable td.primitive { white-space: normal; word-break: break-all; max-width: 420px; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
section.finding { border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
       margin: 12px 0; }
section.finding.failing h3 { color: var(--hot); }
.graph { overflow-x: auto; margin: 8px 0; }
svg.cycle rect { fill: #fff; stroke: #444; stroke-width: 1.2; }
svg.cycle text { font-size: 12px; fill: var(--ink); }
svg.cycle text.kind, svg.cycle text.site { font-size: 11px; fill: var(--muted); }
svg.cycle path { fill: none; }
svg.cycle .cycle-edge path { stroke: var(--hot); stroke-width: 2.2; }
svg.cycle .cycle-edge text { fill: var(--hot); }
svg.cycle .other-edge path { stroke: var(--cold); stroke-width: 1; stroke-dasharray: 4 3; }
svg.cycle marker.arrow-hot path { fill: var(--hot); stroke: none; }
svg.cycle marker.arrow-cold path { fill: var(--cold); stroke: none; }
ol.stack { margin: 2px 0 8px; padding-left: 28px; font-size: 12.5px; }
ol.stack li { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
.timeline { overflow-x: auto; }
svg.timeline text { font-size: 11px; fill: var(--ink); }
svg.timeline .lane { fill: #f6f8fa; }
svg.timeline .hold { fill: var(--hold); fill-opacity: 0.55; }
svg.timeline .wait { fill: var(--wait); }
svg.timeline .finding-mark { stroke: #6a1b9a; stroke-width: 1.5; }
svg.timeline .axis { stroke: var(--line); }
.legend span { display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 12px; }
.legend .hold { background: #1565c0; opacity: 0.55; } .legend .wait { background: #c62828; }
"""

# Sorting the contention table: a click on a heading (or Enter on it) sorts by that
# column, numbers by the value in data-value, a second click reverses. ``#sort=KEY`` or
# ``#sort=-KEY`` in the page's address opens it sorted (a link can share a view).
SCRIPT = """
(function () {
  "use strict";
  function sortBy(table, th, descending) {
    var heads = table.tHead.rows[0].cells, col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "number";
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-value"), y = b.cells[col].getAttribute("data-value");
      var c = numeric ? Number(x) - Number(y) : (x < y ? -1 : x > y ? 1 : 0);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    table.setAttribute("data-sorted-by", th.getAttribute("data-key"));
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.tabIndex = 0;
      function toggle() {
        var now = th.getAttribute("aria-sort");
        var numeric = th.getAttribute("data-type") === "number";
        sortBy(table, th, now ? now === "ascending" : numeric);
      }
      th.addEventListener("click", toggle);
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); }
      });
    });
    table.setAttribute("data-sortable", "ready");
  });
  var m = /^#sort=(-?)([a-z-]+)$/.exec(window.location.hash);
  if (m && tables.length) {
    var th = tables[0].querySelector('th[data-key="' + m[2] + '"]');
    if (th) { sortBy(tables[0], th, m[1] === "-"); }
  }
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
       "img-src 'none'; base-uri 'none'; form-action 'none'")


def _seconds(s: float) -> str:
    if s == 0:
        return "0"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _frames(stack: list[dict[str, Any]]) -> str:
    """A stack, newest frame first (the report stores it oldest first)."""
    if not stack:
        return '<p class="muted">no stack recorded</p>'
    items = "".join(f"<li>{esc(fr['file'])}:{esc(fr['line'])} in {esc(fr.get('function'))}"
                    "</li>" for fr in reversed(stack))
    return f'<ol class="stack">{items}</ol>'


def _summary(report: dict[str, Any], timeline: dict[str, Any] | None) -> str:
    rows: list[tuple[str, str]] = []
    command = report.get("command")
    if command is not None:
        rows.append(("command", f"<code>{esc(' '.join(plain(a) for a in command))}</code>"))
    status = report.get("exit_status")
    if status is not None or "exit_status" in report:
        text = esc(status if status is not None else "none")
        if report.get("ended_by_tracethread"):
            text += " (tracethread ended the run)"
        rows.append(("exit status", text))
    found = report.get("findings", [])
    kinds: dict[str, int] = {}
    for f in found:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    rows.append(("findings", esc(", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                                 or "none")))
    rec = report.get("recorder", {})
    locks = report.get("locks", [])
    graph = report.get("graph", {})
    rows.append(("primitives", f"{len(locks)}"))
    rows.append(("records", esc(rec.get("records", "?"))
                 + (f", {esc(rec['dropped'])} dropped (the counts are lower bounds)"
                    if rec.get("dropped") else "")))
    rows.append(("lock-order graph", f"{len(graph.get('nodes', []))} locks, "
                                     f"{len(graph.get('edges', []))} edges"))
    cut = graph.get("truncated")
    if cut:
        rows.append(("graph truncated", f"at {esc(cut['max_edges'])} edges; "
                     f"{esc(cut['not_kept'])} acquires in a new order not recorded"))
    if rec.get("internal_errors"):
        rows.append(("errors", f"{esc(rec['internal_errors'])} of tracethread's own were "
                     "contained: findings may be incomplete"))
    if report.get("withdrawn"):
        rows.append(("withdrawn", f"{len(report['withdrawn'])} findings taken back"))
    if report.get("subprocesses"):
        rows.append(("subprocesses", f"{len(report['subprocesses'])} traced"))
    if report.get("merged_from"):
        rows.append(("merged from", esc(", ".join(plain(x) for x in report["merged_from"]))))
    if timeline is not None:
        rows.append(("timeline", f"{len(timeline['slices'])} slices drawn "
                     f"of {timeline['slices_seen']} waits and holds"))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl class="summary">{body}</dl>'


def _table(report: dict[str, Any]) -> str:
    locks = report.get("locks", [])
    if not locks:
        return '<p class="muted">No primitive was used.</p>'
    heads = "".join(
        f'<th data-key="{key}" data-type="{"text" if how == "text" else "number"}" '
        f'class="{"text" if how == "text" else "num"}" scope="col">{title}</th>'
        for key, title, _, how in _COLUMNS)
    rows = []
    for row in locks[:MAX_ROWS]:
        cells = []
        for key, _, field, how in _COLUMNS:
            value = row.get(field, 0)
            if key == "primitive":   # as the console shows it: the code's name, the site
                value = display_name(row)
            if how == "text":
                cells.append(f'<td class="text {key}" data-value="{esc(value)}">'
                             f"{esc(value)}</td>")
            else:
                shown = _seconds(value) if how == "seconds" else str(value)
                cells.append(f'<td data-value="{esc(value)}">{esc(shown)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="muted">{len(locks) - MAX_ROWS} more primitives not shown.</p>'
            if len(locks) > MAX_ROWS else "")
    return (f'<table class="sortable" id="contention"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{more}"
            '<p class="muted">Click a heading to sort by it.</p>')


def _finding(f: dict[str, Any], n: int, report: dict[str, Any], baselined: set[str],
             engine: str) -> str:
    fp = f["fingerprint"]
    # In red as in the terminal: what is not guarded and not accepted in the baseline.
    classes = "finding" + ("" if f["kind"] == "guarded-cycle" or fp in baselined
                           else " failing")
    notes = []
    if f.get("count", 1) > 1:
        notes.append(f"seen {esc(f['count'])} times")
    if f.get("single_thread"):
        notes.append("seen within one thread")
    if f.get("bounded"):
        notes.append("bounded: a timed acquire is involved (it stalls, cannot hang forever)")
    if f.get("guarded_by"):
        notes.append("guarded by " + esc(", ".join(plain(g) for g in f["guarded_by"])))
    if f.get("only_when_combined"):
        notes.append("seen only when the runs are combined")
    if fp in baselined:
        notes.append("in the baseline")
    process = f.get("process")
    if isinstance(process, dict):
        notes.append(f"in subprocess {esc(process.get('pid'))}")
    out = [f'<section class="{classes}" id="finding-{n}" data-fingerprint="{esc(fp)}" '
           f'data-kind="{esc(f["kind"])}">',
           f"<h3>{esc(f['kind'])}: {esc(f['message'])}</h3>",
           f'<p>fingerprint <code class="fingerprint">{esc(fp)}</code>'
           + ("".join(f"; {note}" for note in notes)) + "</p>"]
    picture = cyclegraph.svg(f, report.get("graph"), ident=f"f{n}", engine=engine)
    if picture:
        out.append(f'<div class="graph">{picture}</div>')
    for e in f.get("edges", []):
        out.append(f"<p>thread <b>{esc(e['thread'])}</b> holds <code>{esc(e['from'])}</code> "
                   f"and takes <code>{esc(e['to'])}</code></p>" + _frames(e.get("stack", [])))
    # The threads of a deadlock or hang (a lock-order cycle's are its edges, above).
    for t in f.get("threads", []) if f["kind"] in ("deadlock", "hang") else []:
        holds = ", ".join(plain(h) for h in t.get("holds", [])) or "nothing"
        out.append(f"<p>thread <b>{esc(t['name'])}</b> holds <code>{esc(holds)}</code>; "
                   f"waits for <code>{esc(t.get('waits_for') or '-')}</code></p>")
        if t.get("stack"):
            out.append(_frames(t["stack"]))
        held = [h for h in t.get("held_at", []) if h.get("site")]
        if held:
            out.append('<ul class="muted">' + "".join(
                f"<li>took <code>{esc(h['lock'])}</code> at "
                f"{esc(h['site']['file'])}:{esc(h['site']['line'])}</li>" for h in held)
                + "</ul>")
    out.append("</section>")
    return "".join(out)


def _timeline(timeline: dict[str, Any] | None) -> str:
    if timeline is None:
        return ('<p class="note">No timeline: a saved JSON report does not carry one. It is '
                "made from the records while the program runs: "
                "<code>tracethread run --html FILE</code> draws it.</p>")
    slices = timeline["slices"]
    if not slices:
        return '<p class="muted">No thread waited or held a lock.</p>'
    total = max(timeline["duration"], max(s[3] + s[4] for s in slices), 1.0)
    busy: dict[int, float] = {}
    for s in slices:
        busy[s[0]] = busy.get(s[0], 0.0) + s[4]
    lanes = sorted(busy, key=lambda lane: -busy[lane])[:MAX_LANES]
    row = {lane: i for i, lane in enumerate(sorted(lanes))}
    names = dict((lane, name) for lane, name in timeline["threads"])
    height = len(row) * LANE_H + 30
    x = LABEL_W + PLOT_W
    out = [f'<svg class="timeline" width="{x + 10:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {x + 10:.0f} {height:.0f}" role="img" '
           'aria-label="waits and holds per thread">']
    for lane, i in sorted(row.items(), key=lambda item: item[1]):
        y = i * LANE_H
        out.append(f'<g class="thread" data-thread="{esc(names.get(lane, "?"))}">'
                   f'<rect class="lane" x="{LABEL_W}" y="{y + 1:.0f}" width="{PLOT_W:.0f}" '
                   f'height="{LANE_H - 2:.0f}"/><text x="{LABEL_W - 6}" y="{y + 16:.0f}" '
                   f'text-anchor="end">{esc(shorten(plain(names.get(lane, "?")), 26))}'
                   "</text></g>")
    for lane, kind, label, start, dur, site in slices:
        if lane not in row:
            continue
        y = row[lane] * LANE_H + (3 if kind == "hold" else 12)
        sx = LABEL_W + start / total * PLOT_W
        w = max(dur / total * PLOT_W, 1.0)
        where = f" at {plain(site)}" if site else ""
        out.append(f'<rect class="{kind}" x="{sx:.1f}" y="{y:.0f}" width="{w:.1f}" '
                   f'height="{9 if kind == "hold" else 10}"><title>'
                   f"{esc(names.get(lane, '?'))}: {esc(label)} {_seconds(dur / 1e6)}"
                   f"{esc(where)}</title></rect>")
    bottom = len(row) * LANE_H
    for ts, thread, kind, fp in timeline.get("findings", []):
        fx = LABEL_W + min(ts / total, 1.0) * PLOT_W
        out.append(f'<line class="finding-mark" x1="{fx:.1f}" x2="{fx:.1f}" y1="0" '
                   f'y2="{bottom:.0f}"><title>{esc(kind)} {esc(fp)} (thread '
                   f"{esc(thread)})</title></line>")
    for k in range(5):
        tx = LABEL_W + k / 4 * PLOT_W
        out.append(f'<line class="axis" x1="{tx:.1f}" x2="{tx:.1f}" y1="{bottom:.0f}" '
                   f'y2="{bottom + 5:.0f}"/><text x="{tx:.1f}" y="{bottom + 18:.0f}" '
                   f'text-anchor="{"start" if k == 0 else "end" if k == 4 else "middle"}">'
                   f"{_seconds(total * k / 4 / 1e6)}</text>")
    out.append("</svg>")
    notes = []
    if timeline["slices_not_kept"]:
        notes.append(f"{timeline['slices_not_kept']} shorter waits and holds are not drawn "
                     f"(the {len(slices)} longest of {timeline['slices_seen']} are)")
    if len(busy) > len(row):
        notes.append(f"{len(busy) - len(row)} threads with less time waiting or holding "
                     "are not drawn")
    legend = ('<p class="legend muted"><span class="hold"></span>holds a lock'
              '<span class="wait"></span>waits (lock, condition, event, join…); '
              "hover a bar for its lock and site</p>")
    return (legend + f'<div class="timeline">{"".join(out)}</div>'
            + "".join(f'<p class="muted">{note}.</p>' for note in notes)
            + f'<script type="application/json" id="timeline-data">{script_json(timeline)}'
            "</script>")


def render(report: dict[str, Any], timeline: dict[str, Any] | None = None,
           baselined: set[str] | None = None, engine: str = "auto") -> str:
    """The whole page. ``timeline``: ``TimelineSink.data()``, None for a saved report;
    ``baselined``: fingerprints accepted by ``--baseline``; ``engine``: the graphs'
    layout (cyclegraph.svg)."""
    baselined = baselined or set()
    found = report.get("findings", [])
    title = "tracethread report"
    if report.get("command"):
        title += ": " + " ".join(plain(a) for a in report["command"])
    findings = "".join(_finding(f, n, report, baselined, engine)
                       for n, f in enumerate(found, 1))
    if not found:
        findings = '<p>No deadlock findings: no lock-order cycles, deadlocks or hangs.</p>'
    withdrawn = report.get("withdrawn", [])
    if withdrawn:
        findings += ("<h3>Withdrawn</h3><ul>" + "".join(
            f"<li>{esc(w['finding']['message'])}: {esc(w['reason'])}</li>"
            for w in withdrawn) + "</ul>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(shorten(title, 200))}</title><style>{STYLE}</style></head><body>"
        "<h1>tracethread report</h1>"
        f"{_summary(report, timeline)}"
        f"<h2>Findings</h2>{findings}"
        f"<h2>Contention</h2>{_table(report)}"
        f"<h2>Timeline</h2>{_timeline(timeline)}"
        f"<script>{SCRIPT}</script></body></html>\n")


def write(path: str, report: dict[str, Any], timeline: dict[str, Any] | None = None,
          baselined: set[str] | None = None) -> None:
    write_text(path, render(report, timeline, baselined))
