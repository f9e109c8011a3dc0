"""Generate the Grafana dashboards in dashboards/grafana/ from tracethread's own names.

    python3 dashboards/build.py           # rewrite the JSON files
    python3 dashboards/build.py --check   # exit 1 if the files differ from what is built

Metric, span and attribute names come from ``tracethread.exporters.otel.names``, the module
the instrumentation uses, so a renamed metric cannot leave a dashboard querying nothing.
Prometheus names follow the OpenTelemetry → Prometheus rules the exporter applies: dots
become underscores, a unit of seconds adds ``_seconds``, counters add ``_total``, histograms
are read through ``_bucket``/``_sum``/``_count``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tracethread.exporters.otel import names as N  # noqa: E402

OUT = HERE / "grafana"
CONTENTION_FILE = OUT / "tracethread-lock-contention.json"
TRACES_FILE = OUT / "tracethread-lock-traces.json"
GRID_WIDTH = 24


# --- names ------------------------------------------------------------------------------

def prom(spec: tuple, kind: str) -> str:
    """The Prometheus name of an instrument spec (name, unit, description) of ``kind``
    counter, gauge or histogram."""
    name, unit, _ = spec
    base = name.replace(".", "_")
    if unit == "s":
        base += "_seconds"
    if kind == "counter":
        base += "_total"
    return base


def label(attr: str) -> str:
    return attr.replace(".", "_")


WAIT = prom(N.WAIT_DURATION, "histogram")
HOLD = prom(N.HOLD_DURATION, "histogram")
COND = prom(N.CONDITION_WAIT_DURATION, "histogram")
BARRIER = prom(N.BARRIER_WAIT_DURATION, "histogram")
ACQ = prom(N.ACQUISITIONS, "counter")
CONT = prom(N.CONTENTIONS, "counter")
TIMEOUTS = prom(N.TIMEOUTS, "counter")
NOTIFY = prom(N.NOTIFICATIONS, "counter")
FINDINGS = prom(N.FINDINGS, "counter")
DROPPED = prom(N.DROPPED, "counter")
WAITERS = prom(N.WAITERS, "gauge")
CYCLES = prom(N.CYCLES, "gauge")
EDGES = prom(N.EDGES, "gauge")
LIVE = prom(N.THREADS_LIVE, "gauge")

LOCK_NAME = label(N.M_LOCK_NAME)
LOCK_KIND = label(N.M_LOCK_KIND)
FINDING_KIND = label(N.M_FINDING_KIND)

# Every lock-labelled series is filtered by all four variables; process-wide ones by two.
SEL = (f'job=~"$job", instance=~"$instance", {LOCK_KIND}=~"$lock_kind", '
       f'{LOCK_NAME}=~"$lock_name"')
PSEL = 'job=~"$job", instance=~"$instance"'
RI = "$__rate_interval"

PROM_DS = {"type": "prometheus", "uid": "${datasource}"}
LOCK_KINDS = f'{LOCK_KIND}=~"Lock|RLock|Semaphore|BoundedSemaphore"'
# Variables read their values from every metric with lock labels, so Condition, Event,
# Barrier and Thread can be picked too, not only the kinds that are acquired.
LABELLED = "|".join([ACQ, WAITERS, NOTIFY, TIMEOUTS, f"{COND}_count", f"{BARRIER}_count",
                     f"{HOLD}_count"])


# --- panels -----------------------------------------------------------------------------

class Layout:
    """Places panels left to right, wrapping at the grid's 24 columns; rows span it all."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self._add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self._newline()

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > GRID_WIDTH:
            self._newline()
        self._add(panel, w, h)

    def _add(self, panel: dict, w: int, h: int) -> None:
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x = self.row_h = 0


def target(expr: str, ref: str, legend: str = "", **extra) -> dict:
    t = {"datasource": PROM_DS, "expr": expr, "refId": ref, "legendFormat": legend,
         "range": not extra.get("instant", False)}
    t.update(extra)
    return t


def panel(kind: str, title: str, description: str, targets: list[dict], unit: str,
          **options) -> dict:
    p = {"type": kind, "title": title, "description": description, "datasource": PROM_DS,
         "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}}
    custom = options.pop("custom", None)
    thresholds = options.pop("thresholds", None)
    if custom:
        p["fieldConfig"]["defaults"]["custom"] = custom
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": thresholds}
        p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    overrides = options.pop("overrides", None)
    if overrides:
        p["fieldConfig"]["overrides"] = overrides
    transformations = options.pop("transformations", None)
    if transformations:
        p["transformations"] = transformations
    p["options"] = options
    return p


def stat(title: str, description: str, expr: str, unit: str, thresholds=None,
         calc: str = "lastNotNull") -> dict:
    return panel("stat", title, description, [target(expr, "A")], unit,
                 thresholds=thresholds or [{"color": "green", "value": None}],
                 reduceOptions={"calcs": [calc], "fields": "", "values": False},
                 colorMode="value", graphMode="area", textMode="auto", justifyMode="auto")


def timeseries(title: str, description: str, targets: list[dict], unit: str,
               log: bool = False, stack: bool = False) -> dict:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
              "spanNulls": False}
    if log:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return panel("timeseries", title, description, targets, unit, custom=custom,
                 legend={"displayMode": "table", "placement": "right", "showLegend": True,
                         "calcs": ["mean", "max"]},
                 tooltip={"mode": "multi", "sort": "desc"})


def heatmap(title: str, description: str, metric: str) -> dict:
    expr = f"sum by (le) (increase({metric}_bucket{{{SEL}}}[{RI}]))"
    return panel("heatmap", title, description,
                 [target(expr, "A", "{{le}}", format="heatmap")], "s",
                 calculate=False, yAxis={"unit": "s", "axisPlacement": "left"},
                 cellGap=1, color={"mode": "scheme", "scheme": "Oranges", "steps": 64},
                 tooltip={"mode": "single", "yHistogram": True},
                 rowsFrame={"layout": "auto"}, legend={"show": True})


def p99(metric: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return (f"histogram_quantile(0.99, sum by ({group}) "
            f"(rate({metric}_bucket{{{SEL}}}[{RI}])))")


def by_lock_rate(metric: str) -> str:
    return f"sum by ({LOCK_NAME}) (rate({metric}{{{SEL}}}[{RI}]))"


# --- the contention dashboard (Prometheus) ----------------------------------------------

def variables() -> list[dict]:
    def query_var(name: str, lbl: str, metric: str, match: str, text: str) -> dict:
        if metric.startswith("{"):
            q = f"label_values({metric[:-1]}, {match}}}, {lbl})"
        else:
            q = f"label_values({metric}{{{match}}}, {lbl})" if match else \
                f"label_values({metric}, {lbl})"
        return {"name": name, "label": text, "type": "query", "datasource": PROM_DS,
                "definition": q, "query": {"query": q, "refId": f"{name}-values",
                                           "qryType": 1},
                "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "options": [], "regex": "", "sort": 1, "hide": 0}

    return [
        {"name": "datasource", "label": "Prometheus", "type": "datasource",
         "query": "prometheus", "regex": "", "hide": 0, "refresh": 1, "options": [],
         "current": {"selected": False, "text": "${DS_PROMETHEUS}",
                     "value": "${DS_PROMETHEUS}"}},
        query_var("job", "job", LIVE, "", "Job"),
        query_var("instance", "instance", LIVE, 'job=~"$job"', "Instance"),
        query_var("lock_kind", LOCK_KIND, f'{{__name__=~"{LABELLED}"}}', PSEL, "Lock kind"),
        query_var("lock_name", LOCK_NAME, f'{{__name__=~"{LABELLED}"}}',
                  f'{PSEL}, {LOCK_KIND}=~"$lock_kind"', "Lock name"),
    ]


RED_AT_1 = [{"color": "green", "value": None}, {"color": "red", "value": 1}]


def contention_dashboard() -> dict:
    L = Layout()
    L.row("Overview")
    L.add(stat("Threads blocked now",
               "Threads blocked acquiring a Lock, RLock or semaphore at the last scrape "
               "(tracethread.lock.waiters; threads idle in Condition/Event waits and joins "
               "are in 'Blocked threads by lock' below). A value that stays above zero "
               "means a lock is a bottleneck — or a deadlock: check the cycles panel and "
               "the traces.",
               f"sum({WAITERS}{{{SEL}, {LOCK_KINDS}}})", "short",
               thresholds=[{"color": "green", "value": None},
                           {"color": "orange", "value": 1}]), 4, 4)
    L.add(stat("Average blocked threads",
               "Mean number of threads waiting for a lock over the rate window: seconds "
               "of waiting per second (Little's law on the wait-time sum). 1.0 means one "
               "thread's worth of time lost to waiting, continuously.",
               f"sum(rate({WAIT}_sum{{{SEL}}}[{RI}]))", "short", calc="mean"), 4, 4)
    L.add(stat("Contention ratio",
               "Share of acquisitions that had to wait because another thread held the "
               "lock. Near 0: locks are cheap. Above a few percent: look at the top-locks "
               "panel for which one.",
               f"sum(rate({CONT}{{{SEL}}}[{RI}])) / sum(rate({ACQ}{{{SEL}}}[{RI}]))",
               "percentunit", calc="mean"), 4, 4)
    L.add(stat("p99 wait",
               "99th percentile of the time an acquisition that had to wait spent waiting "
               "(uncontended acquisitions are not in this histogram).",
               p99(WAIT), "s"), 4, 4)
    L.add(stat("Timeouts / s",
               "Timed acquires and waits (Lock.acquire(timeout=…), Condition.wait, "
               "Event.wait, Barrier.wait) that gave up. Non-zero means callers are "
               "running their timeout paths.",
               f"sum(rate({TIMEOUTS}{{{SEL}}}[{RI}]))", "ops",
               thresholds=[{"color": "green", "value": None},
                           {"color": "orange", "value": 0.001}]), 4, 4)
    L.add(stat("Potential deadlock cycles",
               "Cycles in the live lock-order graph: two or more locks taken in opposite "
               "orders somewhere in the program. Any value ≥ 1 is a deadlock waiting to "
               "happen; `tracethread run` prints which locks and which lines.",
               f"max({CYCLES}{{{PSEL}}})", "short", thresholds=RED_AT_1), 4, 4)

    L.row("Wait time")
    L.add(timeseries("p99 wait by lock",
                     "99th percentile wait of contended acquisitions, per lock, on a log "
                     "axis (µs to seconds side by side). A line climbing by decades is a "
                     "lock turning into a queue.",
                     [target(p99(WAIT, LOCK_NAME), "A", "{{" + LOCK_NAME + "}}")], "s",
                     log=True), 12, 8)
    L.add(heatmap("Wait-time distribution",
                  "How many contended acquisitions waited how long (buckets 1 µs … 10 s) "
                  "per interval. Bands high up are long waits; a band that moves up "
                  "over time is growing contention.", WAIT), 12, 8)
    L.add(panel("bargauge", "Top 10 locks by total wait",
                "Seconds threads spent waiting for each lock over the whole selected "
                "range: where the program's waiting time goes.",
                [target(f"topk(10, sum by ({LOCK_NAME}) "
                        f"(increase({WAIT}_sum{{{SEL}}}[$__range])))", "A",
                        "{{" + LOCK_NAME + "}}", instant=True)], "s",
                displayMode="gradient", orientation="horizontal", showUnfilled=True,
                reduceOptions={"calcs": ["lastNotNull"], "fields": "", "values": False}),
          12, 8)
    L.add(timeseries("Average wait per acquisition",
                     "Wait time divided by all acquisitions (contended or not), per lock: "
                     "what taking this lock costs a caller on average.",
                     [target(f"{by_lock_rate(WAIT + '_sum')} / {by_lock_rate(ACQ)}", "A",
                             "{{" + LOCK_NAME + "}}")], "s", log=True), 12, 8)

    L.row("Throughput")
    L.add(timeseries("Acquisitions / s",
                     "Successful acquisitions per second, per lock.",
                     [target(by_lock_rate(ACQ), "A", "{{" + LOCK_NAME + "}}")], "ops"), 6, 8)
    L.add(timeseries("Contentions / s",
                     "Acquisitions per second that found the lock held and waited.",
                     [target(by_lock_rate(CONT), "A", "{{" + LOCK_NAME + "}}")], "ops"),
          6, 8)
    L.add(timeseries("Blocked threads by primitive",
                     "Threads blocked in each primitive at each scrape — locks, and also "
                     "Condition/Event waits, barriers and joins ((threads)) — a sampled "
                     "gauge: short waits between scrapes do not show here; the wait-time "
                     "panels count them all.",
                     [target(f"sum by ({LOCK_NAME}, {LOCK_KIND}) ({WAITERS}{{{SEL}}})", "A",
                             "{{" + LOCK_NAME + "}} ({{" + LOCK_KIND + "}})")], "short",
                     stack=True), 6, 8)
    L.add(timeseries("Utilisation (time held per second)",
                     "Seconds each lock was held per second. 1.0 (100 %) means always "
                     "held — fully serialised; above 1 is possible only for semaphores "
                     "and RLocks held by several threads or recursively.",
                     [target(by_lock_rate(HOLD + "_sum"), "A", "{{" + LOCK_NAME + "}}")],
                     "percentunit"), 6, 8)

    L.row("Hold time")
    L.add(timeseries("p99 hold by lock",
                     "99th percentile of how long each lock was held per acquisition, on a "
                     "log axis. Long holds are what make other threads wait.",
                     [target(p99(HOLD, LOCK_NAME), "A", "{{" + LOCK_NAME + "}}")], "s",
                     log=True), 12, 8)
    L.add(heatmap("Hold-time distribution",
                  "How many holds lasted how long, per interval (buckets 1 µs … 10 s).",
                  HOLD), 12, 8)

    L.row("Conditions, barriers and threads")
    L.add(timeseries("Condition and event wait p99",
                     "99th percentile of Condition.wait / Event.wait durations that "
                     "blocked, per primitive: how long consumers sit idle.",
                     [target(p99(COND, LOCK_NAME), "A", "{{" + LOCK_NAME + "}}")], "s",
                     log=True), 6, 8)
    L.add(timeseries("Notifications / s",
                     "Threads woken per second by notify / notify_all / Event.set.",
                     [target(by_lock_rate(NOTIFY), "A", "{{" + LOCK_NAME + "}}")], "ops"),
          6, 8)
    L.add(timeseries("Barrier wait p99",
                     "99th percentile of the time threads wait at each Barrier for the "
                     "others: the slowest party sets everyone's pace.",
                     [target(p99(BARRIER, LOCK_NAME), "A", "{{" + LOCK_NAME + "}}")], "s",
                     log=True), 6, 8)
    L.add(timeseries("Live threads, lock-order graph, dropped records",
                     "Live threads per process; edges in the lock-order graph (distinct "
                     "lock pairs taken nested); records dropped per second — above zero "
                     "means the exporter fell behind and these panels undercount.",
                     [target(f"sum by (instance) ({LIVE}{{{PSEL}}})", "A",
                             "threads {{instance}}"),
                      target(f"max by (instance) ({EDGES}{{{PSEL}}})", "B",
                             "lock-order edges {{instance}}"),
                      target(f"sum by (instance) (rate({DROPPED}{{{PSEL}}}[{RI}]))", "C",
                             "dropped/s {{instance}}")], "short"), 6, 8)
    L.add(timeseries("Deadlock findings by kind",
                     "Findings recorded so far by each running process, by kind: "
                     "potential-deadlock (a lock-order cycle), deadlock (threads waiting on "
                     "each other now), hang (a wait longer than the hang timeout). A step "
                     "up is a new finding; `tracethread run` prints its locks and lines.",
                     [target(f"sum by ({FINDING_KIND}) ({FINDINGS}{{{PSEL}}})", "A",
                             "{{" + FINDING_KIND + "}}")], "short"), 24, 6)

    L.row("Per-lock summary")
    cols = [("Acquisitions", f"sum by ({LOCK_NAME}, {LOCK_KIND}) "
                             f"(increase({ACQ}{{{SEL}}}[$__range]))", "short"),
            ("Contentions", f"sum by ({LOCK_NAME}, {LOCK_KIND}) "
                            f"(increase({CONT}{{{SEL}}}[$__range]))", "short"),
            ("Total wait", f"sum by ({LOCK_NAME}, {LOCK_KIND}) "
                           f"(increase({WAIT}_sum{{{SEL}}}[$__range]))", "s"),
            ("p99 wait", f"histogram_quantile(0.99, sum by (le, {LOCK_NAME}, {LOCK_KIND}) "
                         f"(increase({WAIT}_bucket{{{SEL}}}[$__range])))", "s"),
            ("p99 hold", f"histogram_quantile(0.99, sum by (le, {LOCK_NAME}, {LOCK_KIND}) "
                         f"(increase({HOLD}_bucket{{{SEL}}}[$__range])))", "s"),
            ("Timeouts", f"sum by ({LOCK_NAME}, {LOCK_KIND}) "
                         f"(increase({TIMEOUTS}{{{SEL}}}[$__range]))", "short")]
    refs = "ABCDEF"
    L.add(panel("table", "Per-lock summary",
                "One row per lock over the selected range: how often it was taken, how "
                "often that meant waiting, the total and p99 wait, the p99 hold and the "
                "timeouts. Sort by Total wait to find the lock to fix first.",
                [target(expr, ref, "", instant=True, format="table")
                 for ref, (_, expr, _) in zip(refs, cols)], "short",
                transformations=[
                    {"id": "merge", "options": {}},
                    {"id": "organize", "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {f"Value #{ref}": name
                                         for ref, (name, _, _) in zip(refs, cols)}}}],
                overrides=[{"matcher": {"id": "byName", "options": name},
                            "properties": [{"id": "unit", "value": unit}]}
                           for name, _, unit in cols],
                showHeader=True, sortBy=[{"displayName": "Total wait", "desc": True}]),
          24, 10)

    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                      "description": "Prometheus scraping tracethread's metrics",
                      "type": "datasource", "pluginId": "prometheus",
                      "pluginName": "Prometheus"}],
        "__requires": _requires(["stat", "timeseries", "heatmap", "bargauge", "table"],
                                [("prometheus", "Prometheus")]),
        "annotations": {"list": [_builtin_annotation()]},
        "description": "Where a Python program's threads wait: lock contention recorded "
                       "by tracethread (https://github.com/tracethread).",
        "editable": True, "graphTooltip": 1, "id": None, "links": [
            {"title": "Lock traces", "type": "dashboards", "tags": ["tracethread"],
             "asDropdown": False, "includeVars": False, "keepTime": True}],
        "panels": L.panels, "refresh": "10s", "schemaVersion": 39,
        "tags": ["tracethread", "python", "locks"],
        "templating": {"list": variables()},
        "time": {"from": "now-30m", "to": "now"}, "timepicker": {}, "timezone": "",
        "title": "tracethread — lock contention", "uid": "tracethread-contention",
        "version": 1,
    }


# --- the traces dashboard (Jaeger and Tempo) --------------------------------------------

JAEGER_DS = {"type": "jaeger", "uid": "${jaeger}"}
TEMPO_DS = {"type": "tempo", "uid": "${tempo}"}


def traceql_name(name: str) -> str:
    return f'name = "{name}"'


def traces_dashboard() -> dict:
    L = Layout()
    slow = "$min_wait"

    def jaeger(title: str, description: str, operation: str, tags: str = "",
               min_duration: str = "") -> dict:
        t = {"datasource": JAEGER_DS, "refId": "A", "queryType": "search",
             "service": "$service", "operation": operation, "limit": 20}
        if tags:
            t["tags"] = tags
        if min_duration:
            t["minDuration"] = min_duration
        p = panel("table", title, description, [t], "short", showHeader=True)
        p["datasource"] = JAEGER_DS
        return p

    def tempo(title: str, description: str, query: str, kind: str = "table",
              metrics: bool = False, unit: str = "short") -> dict:
        t = {"datasource": TEMPO_DS, "refId": "A", "queryType": "traceql", "query": query,
             "limit": 20, "tableType": "spans"}
        if metrics:
            t["metricsQueryType"] = "range"
            del t["tableType"], t["limit"]
        p = (timeseries(title, description, [t], unit, log=True) if kind == "timeseries"
             else panel("table", title, description, [t], unit, showHeader=True))
        p["datasource"] = TEMPO_DS
        return p

    svc = 'resource.service.name = "$service"'
    waits = " || ".join(traceql_name(n) for n in (
        N.SPAN_LOCK_WAIT, N.SPAN_CONDITION_WAIT, N.SPAN_SEMAPHORE_WAIT,
        N.SPAN_BARRIER_WAIT, N.SPAN_EVENT_WAIT, N.SPAN_THREAD_JOIN))

    L.row("Jaeger")
    L.add(jaeger("Long lock waits (Jaeger)",
                 f"The latest 20 traces with a {N.SPAN_LOCK_WAIT} span of at least $min_wait "
                 "in service $service (raise the minimum to narrow them to the slowest; the "
                 "duration column is the whole trace's). Click a trace ID to open the trace "
                 "view: the wait sits under "
                 "the request that suffered it, and its attributes name the lock "
                 f"({N.LOCK_NAME}) and the thread holding it ({N.HOLDER_THREAD}).",
                 N.SPAN_LOCK_WAIT, min_duration=slow), 12, 10)
    L.add(jaeger("Lock holds that made others wait (Jaeger)",
                 f"{N.SPAN_LOCK_HOLD} spans: a hold during which another thread waited, "
                 "at least $min_wait long. The holder's stack frame is in "
                 f"{N.CODE_FUNCTION}/{N.CODE_FILE}/{N.CODE_LINE}.",
                 N.SPAN_LOCK_HOLD, min_duration=slow), 12, 10)
    L.add(jaeger("Deadlock findings (Jaeger)",
                 f"{N.SPAN_FINDING} spans: every potential deadlock (lock-order cycle), "
                 f"real deadlock and hang; {N.FINDING_CYCLE} holds the cycle and "
                 f"{N.FINDING_KIND} its kind.", N.SPAN_FINDING), 12, 10)
    L.add(jaeger("Timed-out lock waits (Jaeger)",
                 f"{N.SPAN_LOCK_WAIT} spans whose timed acquire gave up "
                 f"({N.TIMED_OUT}=true).", N.SPAN_LOCK_WAIT,
                 tags=f"{N.TIMED_OUT}=true"), 12, 10)

    L.row("Tempo (TraceQL)")
    L.add(tempo("Long waits (Tempo)",
                "The latest 20 blocking wait spans (locks, conditions, semaphores, "
                "barriers, events, joins) of at least $min_wait, one row per span with its "
                "own duration; sort by the duration column, click through to the trace.",
                f"{{ {svc} && ({waits}) && duration >= {slow} }}"), 12, 10)
    L.add(tempo("Deadlocks and timeouts (Tempo)",
                "Finding spans (potential deadlocks, deadlocks, hangs) and waits that timed "
                "out, with their kind and lock.",
                f'{{ {svc} && ({traceql_name(N.SPAN_FINDING)} || '
                f"span.{N.TIMED_OUT} = true) }}"), 12, 10)
    L.add(tempo("Wait p99 by lock, from spans (Tempo)",
                f"99th percentile duration of {N.SPAN_LOCK_WAIT} spans per lock, computed "
                "by Tempo's TraceQL metrics (needs Tempo's metrics-generator/local-blocks; "
                "Jaeger has no equivalent — use the Prometheus dashboard there).",
                f"{{ {svc} && {traceql_name(N.SPAN_LOCK_WAIT)} }} | "
                f"quantile_over_time(duration, .99) by (span.{N.LOCK_NAME})",
                kind="timeseries", metrics=True, unit="s"), 24, 8)

    def ds_var(name: str, plugin: str, text: str, inp: str) -> dict:
        return {"name": name, "label": text, "type": "datasource", "query": plugin,
                "regex": "", "hide": 0, "refresh": 1, "options": [],
                "current": {"selected": False, "text": "${%s}" % inp,
                            "value": "${%s}" % inp}}

    return {
        "__inputs": [
            {"name": "DS_JAEGER", "label": "Jaeger", "description": "Jaeger receiving "
             "tracethread's spans", "type": "datasource", "pluginId": "jaeger",
             "pluginName": "Jaeger"},
            ],
        "__requires": _requires(["table", "timeseries"],
                                [("jaeger", "Jaeger"), ("tempo", "Tempo")]),
        "annotations": {"list": [_builtin_annotation()]},
        "description": "Lock waits, contended holds and deadlock findings as traces "
                       "(tracethread spans in Jaeger or Tempo).",
        "editable": True, "graphTooltip": 0, "id": None, "links": [
            {"title": "Lock contention", "type": "dashboards", "tags": ["tracethread"],
             "asDropdown": False, "includeVars": False, "keepTime": True}],
        "panels": L.panels, "refresh": "", "schemaVersion": 39,
        "tags": ["tracethread", "python", "traces"],
        "templating": {"list": [
            ds_var("jaeger", "jaeger", "Jaeger", "DS_JAEGER"),
            # No import input: a Jaeger-only Grafana can import the dashboard; the Tempo
            # row then says its data source is missing, the Jaeger row works.
            dict(ds_var("tempo", "tempo", "Tempo (optional)", ""), current={}),
            {"name": "service", "label": "Service (OTEL_SERVICE_NAME)", "type": "textbox",
             "query": "tracethread", "hide": 0,
             "current": {"text": "tracethread", "value": "tracethread"}},
            {"name": "min_wait", "label": "Minimum wait", "type": "custom",
             "query": "0ms,1ms,10ms,100ms,1s", "hide": 0, "multi": False,
             "includeAll": False, "current": {"text": "1ms", "value": "1ms"},
             "options": [{"selected": v == "1ms", "text": v, "value": v}
                         for v in ("0ms", "1ms", "10ms", "100ms", "1s")]},
        ]},
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {}, "timezone": "",
        "title": "tracethread — lock traces", "uid": "tracethread-traces", "version": 1,
    }


# --- shared pieces ----------------------------------------------------------------------

def _builtin_annotation() -> dict:
    return {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}


def _requires(panels: list[str], datasources: list[tuple[str, str]]) -> list[dict]:
    names = {"stat": "Stat", "timeseries": "Time series", "heatmap": "Heatmap",
             "bargauge": "Bar gauge", "table": "Table"}
    # 10.4: TraceQL metrics queries in the Tempo data source.
    return ([{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"}]
            + [{"type": "datasource", "id": i, "name": n, "version": "1.0.0"}
               for i, n in datasources]
            + [{"type": "panel", "id": p, "name": names[p], "version": ""}
               for p in sorted(panels)])


def render(dashboard: dict) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    return {CONTENTION_FILE: render(contention_dashboard()),
            TRACES_FILE: render(traces_dashboard())}


def main(argv: list[str]) -> int:
    stale = [p for p, text in outputs().items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p} is out of date: run python3 dashboards/build.py", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for p, text in outputs().items():
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
