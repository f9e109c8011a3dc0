"""The Grafana dashboards in dashboards/: generated, well-formed, and answering real data.

Static checks read the JSON as Grafana would; the live test runs a real workload under
``tracethread run --prometheus-port``, has a real Prometheus (Debian's package) scrape it
every second, and evaluates every panel's query through Prometheus's HTTP API. The traces
dashboard is checked against the spans a real run delivers over OTLP.
"""

import importlib.util
import json
import math
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tracethread.exporters.otel import names as N

from helpers import (
    CONTENDED_PROGRAM, OTLPReceiver, clean_env, finish, free_ports, run_traced,
)

ROOT = Path(__file__).resolve().parent.parent
DASH = ROOT / "dashboards"
CONTENTION = DASH / "grafana" / "tracethread-lock-contention.json"
TRACES = DASH / "grafana" / "tracethread-lock-traces.json"
BUILTINS = {"__rate_interval", "__range", "__interval", "__all", "__from", "__to",
            "__dashboard", "__name", "__org", "__user", "__range_s", "__range_ms",
            "__interval_ms", "timeFilter", "__timeFilter"}
VAR_RE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]")


def _builder():
    spec = importlib.util.spec_from_file_location("dashboards_build", DASH / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _panels(dash):
    return [p for p in dash["panels"] if p["type"] != "row"]


def _prom_targets(dash):
    for p in _panels(dash):
        for t in p["targets"]:
            if "expr" in t:
                yield p, t


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _label_values(query):
    """label_values(METRIC{matchers}, LABEL) -> (selector, label)."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
    assert m, query
    return m.group(1), m.group(2)


# --- static ------------------------------------------------------------------------------

def test_regenerating_the_dashboards_gives_no_diff():
    build = _builder()
    for path, text in build.outputs().items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.name} differs from dashboards/build.py's output: run it and commit"


@pytest.mark.parametrize("path", [CONTENTION, TRACES], ids=lambda p: p.stem)
def test_panels_have_unique_ids_and_fit_the_grid_without_overlap(path):
    dash = _load(path)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    taken = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0, p["title"]
        assert g["x"] + g["w"] <= 24, f"{p['title']} sticks out of the 24-column grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{p['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = p["title"]


@pytest.mark.parametrize("path", [CONTENTION, TRACES], ids=lambda p: p.stem)
def test_every_panel_has_a_description_a_unit_and_declared_datasources(path):
    dash = _load(path)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    inputs = {i["name"] for i in dash["__inputs"]}
    ds_vars = {n for n, v in variables.items() if v["type"] == "datasource"}
    for name in ds_vars:
        # Importable: the variable defaults to the input the import dialog asks for;
        # provisioned from a file (no __inputs), Grafana falls back to the default source.
        # An optional source (Tempo) has no input and no default: the first of its type.
        current = variables[name]["current"]
        if current:
            m = re.fullmatch(r"\$\{(\w+)\}", current["value"])
            assert m and m.group(1) in inputs, name
    for p in _panels(dash):
        assert p.get("description", "").strip(), p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for ds in [p["datasource"]] + [t["datasource"] for t in p["targets"]]:
            m = re.fullmatch(r"\$\{(\w+)\}", ds["uid"])
            assert m and m.group(1) in ds_vars, (p["title"], ds)
            assert variables[m.group(1)]["query"] == ds["type"], (p["title"], ds)
    required = {r["id"] for r in dash["__requires"]}
    assert {p["type"] for p in _panels(dash)} <= required


@pytest.mark.parametrize("path", [CONTENTION, TRACES], ids=lambda p: p.stem)
def test_every_variable_used_is_declared_or_a_builtin(path):
    dash = _load(path)
    declared = {v["name"] for v in dash["templating"]["list"]}
    inputs = {i["name"] for i in dash["__inputs"]}
    body = {k: v for k, v in dash.items() if k != "__inputs"}
    for s in _strings(body):
        for m in VAR_RE.finditer(s):
            name = next(g for g in m.groups() if g)
            assert name in declared | BUILTINS | inputs, f"${name} in {s!r}"


def _substitute(expr, rate="1m", rng="1h", interval="1m"):
    return (expr.replace("$__rate_interval", rate).replace("$__range", rng)
            .replace("$__interval", interval)
            .replace("$job", ".*").replace("$instance", ".*")
            .replace("$lock_kind", ".*").replace("$lock_name", ".*"))


def _metric_names(expr):
    import promql_parser
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if isinstance(child, promql_parser.Expr):
                visit(child)
        for child in getattr(node, "args", None) or []:
            visit(child)

    visit(promql_parser.parse(expr))
    return names


def test_every_promql_expression_parses_and_rates_use_rate_interval():
    pytest.importorskip("promql_parser", reason="the test extra (promql-parser) is missing")
    import promql_parser
    dash = _load(CONTENTION)
    exprs = [t["expr"] for _, t in _prom_targets(dash)]
    assert len(exprs) >= 25
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            selector, _ = _label_values(v["query"]["query"])
            exprs.append(selector)
    used = set()
    for expr in exprs:
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window in ("$__rate_interval", "$__range"), expr
        try:
            promql_parser.parse(_substitute(expr))
        except ValueError as exc:
            pytest.fail(f"{expr!r} does not parse: {exc}")
        used |= _metric_names(_substitute(expr))
    # Every instrument the OTel sink defines appears on the dashboard.
    build = _builder()
    for name in (build.WAIT, build.HOLD, build.COND, build.BARRIER):
        assert f"{name}_bucket" in used or f"{name}_sum" in used, name
    for name in (build.ACQ, build.CONT, build.TIMEOUTS, build.NOTIFY, build.FINDINGS,
                 build.DROPPED, build.WAITERS, build.CYCLES, build.EDGES, build.LIVE):
        assert name in used, name


def test_the_stack_files_fit_together():
    """The compose stack as shipped (it is not run here: no Docker engine): every mounted
    file exists, every published port is on 127.0.0.1, the provisioned data sources cover
    every data source type the dashboards use, and the pipeline is OTLP in -> Jaeger, Tempo
    and a Prometheus endpoint that prometheus.yml scrapes."""
    yaml = pytest.importorskip("yaml", reason="the test extra (pyyaml) is missing")
    compose = yaml.safe_load((DASH / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"otel-collector", "jaeger", "tempo", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            assert (DASH / src).exists(), (name, src)
    sources = yaml.safe_load(
        (DASH / "provisioning" / "datasources" / "tracethread.yml").read_text())
    types = {d["type"] for d in sources["datasources"]}
    for path in (CONTENTION, TRACES):
        used = {v["query"] for v in _load(path)["templating"]["list"]
                if v["type"] == "datasource"}
        assert used <= types, (path.name, used - types)
    for d in sources["datasources"]:
        host = urllib.parse.urlparse(d["url"]).hostname
        assert host in services, d
    collector = yaml.safe_load((DASH / "otel-collector.yaml").read_text())
    pipes = collector["service"]["pipelines"]
    assert set(pipes["traces"]["exporters"]) == {"otlp/jaeger", "otlp/tempo"}
    assert pipes["metrics"]["exporters"] == ["prometheus"]
    metrics_port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    scrape = yaml.safe_load((DASH / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert f"otel-collector:{metrics_port}" in targets
    provider = yaml.safe_load(
        (DASH / "provisioning" / "dashboards" / "tracethread.yml").read_text())
    mounted = [v.split(":")[1] for v in services["grafana"]["volumes"]
               if v.startswith("./grafana")]
    assert provider["providers"][0]["options"]["path"] in mounted


# --- live, against a real Prometheus -----------------------------------------------------

def _readline(proc, timeout):
    """One line of the process's stdout, or '' when it ends or the timeout passes."""
    ready = select.select([proc.stdout], [], [], timeout)[0]
    return proc.stdout.readline() if ready else ""


def _get(base, path, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def _values(result):
    for series in result:
        for v in series.get("values") or [series.get("value")]:
            if v:
                yield float(v[1])


def _check_values(title, result):
    """Some finite data, and never ±Inf (a ratio dividing by zero, a quantile beyond the
    buckets); NaN is a window with no events, which Grafana draws as a gap."""
    values = list(_values(result))
    assert not any(math.isinf(v) for v in values), f"{title}: infinite values"
    if title in ("Contention ratio",):
        assert all(v <= 1 for v in values if not math.isnan(v)), f"{title}: above 100 %"
    return any(math.isfinite(v) for v in values)


@pytest.fixture
def prometheus(tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary: .ci/run installs Debian's package "
                    "(apt-get install prometheus)")
    port, target_port = free_ports(2)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: tracethread-live\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield base, target_port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_every_panel_answers_with_data_from_a_real_prometheus(prometheus, tmp_path):
    base, target_port = prometheus
    dash = _load(CONTENTION)
    flag = tmp_path / "finished"
    t0 = time.time()
    # The example the dashboards README walks through, for 6 s of activity.
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracethread", "run", "-q", "--prometheus-port",
         str(target_port), str(ROOT / "examples" / "contention.py"), "--seconds", "6",
         "--hold-until", str(flag)],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = _readline(proc, timeout=60)
    if line == "active phase done\n":
        time.sleep(3)  # a few more scrapes of the final state
    t1 = time.time()
    flag.write_text("done")
    out, err = finish(proc, 60)
    assert line == "active phase done\n" and proc.returncode == 0, (line, err[-3000:])

    start, end = t0 - 1, t1
    rng = f"{int(end - start) + 1}s"
    names = set(_get(base, "/api/v1/label/__name__/values"))
    empty = []
    for p, t in _prom_targets(dash):
        expr = _substitute(t["expr"], rate="4s", rng=rng, interval="1s")
        for metric in _metric_names(expr):
            assert metric in names, f"{p['title']}: {metric} was never scraped"
        if t.get("instant"):
            data = _get(base, "/api/v1/query", query=expr, time=end)
        else:
            data = _get(base, "/api/v1/query_range", query=expr, start=start, end=end,
                        step="1s")
        if not _check_values(p["title"], data["result"]):
            empty.append(f"{p['title']} [{t['refId']}]: {expr}")
    assert not empty, "panels without finite data:\n" + "\n".join(empty)

    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        selector, lbl = _label_values(v["query"]["query"])
        values = _get(base, f"/api/v1/label/{lbl}/values", start=start, end=end,
                      **{"match[]": _substitute(selector)})
        assert values, f"variable ${v['name']}: no values"
        if v["name"] == "lock_kind":  # every kind the workload used can be picked
            assert {"Lock", "RLock", "Condition", "Event", "Barrier"} <= set(values), values


# --- the traces dashboard against spans a real run delivers ------------------------------

SPANS_PROGRAM = CONTENDED_PROGRAM + """
    lock.acquire()
    t = threading.Thread(target=lambda: lock.acquire(timeout=0.05))   # times out
    t.start(); t.join()
    lock.release()
    c = threading.Condition()
    with c:
        c.wait(0.02)
    threading.Event().wait(0.02)
    threading.Semaphore(0).acquire(timeout=0.02)
    b = threading.Barrier(2)
    t = threading.Thread(target=b.wait); t.start(); time.sleep(0.05); b.wait(); t.join()
    x, y = threading.Lock(), threading.Lock()
    with x:
        with y: pass
    with y:
        with x: pass
"""


def test_traces_dashboard_queries_name_spans_and_attributes_that_arrive(tmp_path):
    with OTLPReceiver() as receiver:
        proc = run_traced(["-q"], SPANS_PROGRAM, tmp_path,  # no OTEL_SERVICE_NAME
                          env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
        out, err = finish(proc, 90)
        assert proc.returncode == 0, err[-3000:]
        requests = receiver.traces()
    span_names, span_attrs, resource_attrs = set(), {}, {}
    for req in requests:
        for rs in req.resource_spans:
            resource_attrs.update((a.key, a.value.string_value)
                                  for a in rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    span_names.add(s.name)
                    for a in s.attributes:
                        span_attrs.setdefault(a.key, set()).add(
                            str(getattr(a.value, a.value.WhichOneof("value"))).lower())

    dash = _load(TRACES)
    jaeger = tempo = 0
    for p in _panels(dash):
        for t in p["targets"]:
            if t["datasource"]["type"] == "jaeger":
                jaeger += 1
                assert t["queryType"] == "search" and t["service"] == "$service"
                assert t["operation"] in span_names, t["operation"]
                for pair in t.get("tags", "").split():
                    key, value = pair.split("=", 1)
                    assert value.lower() in span_attrs.get(key, ()), pair
            else:
                tempo += 1
                q = t["query"]
                assert q.count("{") == q.count("}") and q.count("(") == q.count(")"), q
                for name in re.findall(r'(?<![.\w])name = "([^"]+)"', q):
                    assert name in span_names, name
                for attr in re.findall(r"\bspan\.([\w.]+)", q):
                    assert attr in span_attrs, attr
                for attr in re.findall(r"\bresource\.([\w.]+)", q):
                    assert attr in resource_attrs, attr
    assert jaeger >= 3 and tempo >= 3
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    # The service variable defaults to the service name a run exports without settings.
    assert variables["service"]["query"] == resource_attrs["service.name"] == "tracethread"
    assert {N.SPAN_LOCK_WAIT, N.SPAN_FINDING} <= span_names
