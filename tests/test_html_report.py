"""The HTML report (``run --html``, ``report FILE.json --html``; docs/report.md, "The HTML
report"): one self-contained page, checked by parsing it and by a real browser.

The pages come from real runs (a subprocess with a timeout and faulthandler on). Parsed
with ``html.parser``: nothing is loaded from anywhere, the finding's fingerprint and its
cycle (one SVG node per lock, named) are there, the table is sortable, the timeline has
the run's threads. A program that names its locks and threads to break the page gets
them shown as text. Headless Chromium renders the page: the graph's nodes and the
fingerprint are in the DOM it built, its script ran and sorted the table, and it draws a
screenshot."""

import json
import re
import shutil
import struct
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from helpers import finish, run_traced, tt

from tracethread.exporters.report import cyclegraph, html
from tracethread.exporters.report.json_report import display_name

TIMEOUT = 60


class Page(HTMLParser):
    """Every element with its attributes, the text inside each, and each <svg> as the
    source between its tags (to check it is well-formed XML)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []     # (tag, attrs dict, [text pieces]) in document order
        self._open = []
        self.feed(text)
        self.close()
        self.source = text

    def handle_starttag(self, tag, attrs):
        el = (tag, dict(attrs), [])
        self.elements.append(el)
        self._open.append(el)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for el in self._open:
            el[2].append(data)

    def find(self, tag, cls=None, **attrs):
        return [el for el in self.elements if el[0] == tag
                and (cls is None or cls in el[1].get("class", "").split())
                and all(el[1].get(k.replace("_", "-")) == v for k, v in attrs.items())]

    @staticmethod
    def text(el):
        return "".join(el[2])

    def svgs(self):
        return re.findall(r"<svg\b.*?</svg>", self.source, flags=re.S)



def _node_text(lock):
    """How the graph names a lock: as the code names it, the site beside, else its name."""
    return f"{lock['label']} ({lock['name']})" if lock.get("label") else lock["name"]

def assert_self_contained(page):
    """No address anything could be fetched from: no src/href/action/xlink at all but
    fragments, no <link>, <img>, <iframe>, <object>, <embed>, and a policy of 'none'."""
    for tag, attrs, _ in page.elements:
        assert tag not in ("link", "img", "iframe", "object", "embed", "base", "form"), tag
        for name, value in attrs.items():
            if name in ("src", "href", "xlink:href", "action", "data", "poster"):
                assert (value or "").startswith("#"), (tag, name, value)
            assert not re.search(r"(https?:)?//", value or "") or name == "content", \
                (tag, name, value)
            assert not name.startswith("on"), (tag, name)
    assert "url(" not in page.source.replace("url(#", "")
    csp = page.find("meta", http_equiv="Content-Security-Policy")
    assert len(csp) == 1 and "default-src 'none'" in csp[0][1]["content"]


def assert_valid_svg(page):
    svgs = page.svgs()
    assert svgs
    for source in svgs:
        root = ET.fromstring(source)    # well-formed XML, as an .svg file must be
        assert root.tag == "svg" and float(root.get("width")) > 0


def cycle_nodes(page, section):
    """The lock names drawn as nodes in the graph of ``section`` (a finding)."""
    start = page.elements.index(section)
    nodes = []
    for el in page.elements[start + 1:]:
        if el[0] == "section":
            break
        if el[0] == "g" and "node" in el[1].get("class", "").split():
            nodes.append(el)
    names = []
    for node in nodes:
        i = page.elements.index(node)
        names.append(next(Page.text(el) for el in page.elements[i:]
                          if el[0] == "text" and el[1].get("class") == "name"))
    return names


@pytest.fixture(scope="module")
def inversion(tmp_path_factory):
    """examples/inversion.py run with --html and --report: (page, report, html path)."""
    d = tmp_path_factory.mktemp("inversion")
    proc = tt("run", "-q", "--html", str(d / "out.html"), "--report", str(d / "r.json"),
              "examples/inversion.py", timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    text = (d / "out.html").read_text(encoding="utf-8")
    return Page(text), json.loads((d / "r.json").read_text()), d / "out.html"


def test_run_writes_one_self_contained_page(inversion):
    page, report, _ = inversion
    assert_self_contained(page)
    assert_valid_svg(page)
    summary = page.find("dl", "summary")[0]
    assert "examples/inversion.py" in Page.text(summary)
    assert "1 potential-deadlock" in Page.text(summary)
    [finding] = report["findings"]
    [section] = page.find("section", "finding")
    assert section[1]["data-fingerprint"] == finding["fingerprint"]
    assert [Page.text(c) for c in page.find("code", "fingerprint")] == [finding["fingerprint"]]
    # One node per lock of the cycle, named as the report names it; both edges of the
    # cycle highlighted, labelled with their thread and acquisition line.
    assert sorted(cycle_nodes(page, section)) == sorted(map(_node_text, finding["locks"]))
    edges = page.find("g", "cycle-edge")
    assert sorted(e[1]["data-thread"] for e in edges) == ["audit", "transfer"]
    labels = " ".join(Page.text(e) for e in edges)
    assert "inversion.py:15" in labels and "inversion.py:21" in labels


def test_the_contention_table_is_sortable(inversion):
    page, report, _ = inversion
    [table] = page.find("table", "sortable")
    heads = [el for el in page.elements if el[0] == "th"]
    assert [h[1]["data-key"] for h in heads][:3] == ["primitive", "kind", "ops"]
    assert all(h[1]["data-type"] in ("text", "number") for h in heads)
    cells = page.find("td")
    assert len(cells) == len(heads) * len(report["locks"])
    assert all("data-value" in c[1] for c in cells)
    scripts = [el for el in page.find("script") if "type" not in el[1]]
    assert len(scripts) == 1 and "table.sortable" in Page.text(scripts[0])


def test_the_timeline_has_the_runs_threads_and_embeds_its_data(inversion):
    page, _, _ = inversion
    lanes = [g[1]["data-thread"] for g in page.find("g", "thread")]
    # the workers take the locks; the main thread has a lane when its joins waited
    assert {"transfer", "audit"} <= set(lanes)
    [data] = page.find("script", id="timeline-data")
    timeline = json.loads(Page.text(data))
    assert {name for _, name in timeline["threads"]} == set(lanes)
    # holds always; a wait only when the run's scheduling made a thread wait
    kinds = {s[1] for s in timeline["slices"]}
    assert "hold" in kinds and kinds <= {"hold", "wait"}
    assert page.find("rect", "hold")
    assert bool(page.find("rect", "wait")) == ("wait" in kinds)
    assert timeline["findings"][0][3] in page.source


@pytest.mark.parametrize("engine", ["dot", "circle"])
def test_both_layouts_draw_valid_svg(engine, inversion):
    if engine == "dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz dot is not installed (apt-get install graphviz): the "
                    "fallback layout is tested alone")
    _, report, _ = inversion
    page = Page(html.render(report, engine=engine))
    assert_valid_svg(page)
    [graph] = page.find("svg", "cycle")
    assert graph[1]["data-layout"] == engine
    [section] = page.find("section", "finding")
    assert len(cycle_nodes(page, section)) == 2
    assert len(page.find("g", "cycle-edge")) == 2
    paths = [el for el in page.find("path") if el[1].get("marker-end")]
    assert len(paths) == 2 and all(p[1]["d"].startswith("M") for p in paths)


def test_a_dot_that_fails_in_any_way_means_the_fallback(tmp_path, inversion):
    _, report, _ = inversion
    nodes, edges = cyclegraph.of_finding(report["findings"][0])
    liar = tmp_path / "dot"
    liar.write_text("#!/bin/sh\necho 'graph 1 x y'\necho '<script>alert(1)</script>'\n")
    liar.chmod(0o755)
    slow = tmp_path / "slowdot"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    assert cyclegraph.dot_layout(nodes, edges, exe="/bin/false") is None
    assert cyclegraph.dot_layout(nodes, edges, exe=str(tmp_path / "missing")) is None
    assert cyclegraph.dot_layout(nodes, edges, exe=str(liar)) is None
    assert cyclegraph.dot_layout(nodes, edges, exe=str(slow), timeout=0.5) is None


def test_dot_is_given_sizes_never_names():
    finding = {"kind": "potential-deadlock", "locks": [
        {"name": "</script>\"quote\\", "kind": "Lock"}, {"name": "b", "kind": "Lock"}],
        "edges": [{"from": "Lock </script>\"quote\\", "to": "Lock b", "thread": "t\"{}",
                   "stack": [{"file": "x.py", "line": 3, "function": "f"}]},
                  {"from": "Lock b", "to": "Lock </script>\"quote\\", "thread": "u",
                   "stack": []}]}
    source = cyclegraph._dot_source(*cyclegraph.of_finding(finding))
    assert "script" not in source and "quote" not in source and "t\\\"" not in source
    assert re.fullmatch(r'[\w\s\[\]=.,;\->"{}\\]*', source), source


HOSTILE_LOCK = "</script><img src=x onerror=alert(1)>"
HOSTILE_PROGRAM = f"""
    import threading
    import tracethread
    a = tracethread.Lock(name={HOSTILE_LOCK!r})
    b = tracethread.Lock(name='b" onmouseover="alert(2)<!--')
    def one():
        with a:
            with b:
                pass
    def two():
        with b:
            with a:
                pass
    for i, f in enumerate((one, two)):
        t = threading.Thread(target=f, name=f"t{{i}}\\x1b]0;pwn\\x07\\x00<b>\\ud800")
        t.start()
        t.join()
"""


def test_hostile_names_are_shown_as_text(tmp_path):
    out = tmp_path / "out.html"
    proc = run_traced(["-q", "--html", str(out), "--report", str(tmp_path / "r.json")],
                      HOSTILE_PROGRAM, tmp_path)
    stdout, stderr = finish(proc, TIMEOUT)
    assert proc.returncode == 0, stderr
    assert stderr == ""
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert_self_contained(page)
    assert_valid_svg(page)
    # Nothing the program named became markup: the only elements are the page's own.
    assert {el[0] for el in page.elements} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "dl", "dt",
        "dd", "code", "section", "p", "div", "svg", "defs", "marker", "path", "g", "rect",
        "text", "b", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "script",
        "span", "line", "ul"}
    assert len(page.find("b")) == 2          # the two thread names in the finding, bold
    assert text.count("</script") == len(page.find("script")) == 2
    assert "<!--" not in text and "\x1b" not in text and "\x00" not in text
    [section] = page.find("section", "finding")
    assert sorted(cycle_nodes(page, section)) == sorted(
        [HOSTILE_LOCK, 'b" onmouseover="alert(2)<!--'])
    # Control characters and the lone surrogate are shown escaped, as in the terminal.
    shown = "t0\\x1b]0;pwn\\x07\\x00<b>\\ud800"
    assert shown in {e[1]["data-thread"] for e in page.find("g", "cycle-edge")}
    assert shown in {g[1]["data-thread"] for g in page.find("g", "thread")}
    # The embedded JSON gives the names back exactly.
    [data] = page.find("script", id="timeline-data")
    timeline = json.loads(Page.text(data))
    assert any(HOSTILE_LOCK in s[2] for s in timeline["slices"])
    # And the saved report renders to the same safe page.
    again = tt("report", str(tmp_path / "r.json"), "--html", str(tmp_path / "again.html"))
    assert again.returncode == 0, again.stderr
    page = Page((tmp_path / "again.html").read_text(encoding="utf-8"))
    assert_self_contained(page)
    assert "</script" not in page.source.replace("</script>", "", 1)


def test_report_renders_a_saved_report_without_a_timeline(inversion, tmp_path):
    _, report, _ = inversion
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(report))
    proc = tt("report", str(saved), "--html", str(tmp_path / "out.html"), timeout=TIMEOUT)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr
    page = Page((tmp_path / "out.html").read_text(encoding="utf-8"))
    assert_self_contained(page)
    assert_valid_svg(page)
    assert page.find("section", "finding")[0][1]["data-fingerprint"] == \
        report["findings"][0]["fingerprint"]
    assert not page.find("svg", "timeline") and not page.find("script", id="timeline-data")
    assert "No timeline: a saved JSON report does not carry one" in page.source


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 1, "tool":
                                                              "tracethread"})])
def test_report_refuses_a_malformed_file_in_one_line(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    proc = tt("report", str(bad), "--html", str(tmp_path / "out.html"))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracethread: error: "), proc.stderr
    assert not (tmp_path / "out.html").exists()


@pytest.mark.parametrize("where", ["missing directory", "a directory"])
def test_an_unwritable_html_path_is_refused_before_the_program_runs(tmp_path, where):
    marker = tmp_path / "ran"
    prog = tmp_path / "prog.py"
    prog.write_text(f"open({str(marker)!r}, 'w').close()\n")
    target = tmp_path / "no" / "out.html" if where == "missing directory" else tmp_path
    for args in (["run", "--html", str(target), str(prog)],
                 ["report", str(prog), "--html", str(target)]):
        proc = tt(*args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("tracethread: error: --html ")
        assert len(proc.stderr.splitlines()) == 1
    assert not marker.exists(), "the program ran"


def test_an_html_page_that_cannot_be_written_does_not_change_the_verdict(tmp_path):
    # The directory disappears while the program runs: one line, the gate still fails.
    out = tmp_path / "out"
    out.mkdir()
    code = textwrap.dedent("""
        import threading
        a = threading.Lock(); b = threading.Lock()
        with a, b: pass
        with b, a: pass
    """) + f"import shutil; shutil.rmtree({str(out)!r})\n"
    proc = run_traced(["-q", "--fail-on", "potential", "--html", str(out / "r.html")],
                      code, tmp_path)
    _, stderr = finish(proc, TIMEOUT)
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "could not" in line] == [
        f"tracethread: could not write {str(out / 'r.html')!r}: No such file or directory"]


def test_the_timeline_keeps_the_longest_slices_in_bounded_memory():
    import time

    import tracethread
    from tracethread.exporters.timeline import TimelineSink
    sink = TimelineSink(max_slices=3)
    tracethread.add_sink(sink)
    try:
        lock = tracethread.Lock(name="timeline-test")
        for ms in (1, 30, 2, 40, 3, 50, 4):
            with lock:
                time.sleep(ms / 1000)
        tracethread.flush()
    finally:
        tracethread.remove_sink(sink)
    data = sink.data()
    mine = [s for s in data["slices"] if s[2] == "hold timeline-test"]
    assert len(data["slices"]) == 3 and len(mine) == 3
    # the three long holds (a sleep only ever takes longer than asked, and the short ones
    # are far below 30 ms even on a loaded machine)
    assert all(s[4] / 1000 >= 30 for s in mine), mine
    assert [s[3] for s in mine] == sorted(s[3] for s in mine)   # in start order
    assert data["slices_not_kept"] == data["slices_seen"] - 3 >= 4


# --- a real browser ---------------------------------------------------------------------

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome binary on "
                             "PATH (.ci/run installs Debian's chromium)")


def _browser(tmp_path, *args):
    """Headless Chromium with a profile of its own (no state shared with another run)."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=TIMEOUT)


@needs_chromium
def test_chromium_renders_the_graph_and_runs_the_sort(inversion, tmp_path):
    _, report, path = inversion
    # ``#sort=primitive`` makes the page's own script sort the table as it loads.
    proc = _browser(tmp_path, "--dump-dom", path.as_uri() + "#sort=primitive")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Page(proc.stdout)
    [section] = dom.find("section", "finding")
    assert section[1]["data-fingerprint"] == report["findings"][0]["fingerprint"]
    assert sorted(cycle_nodes(dom, section)) == sorted(
        _node_text(lk) for lk in report["findings"][0]["locks"])
    [table] = dom.find("table", "sortable")
    assert table[1].get("data-sortable") == "ready", "the page's script did not run"
    assert table[1].get("data-sorted-by") == "primitive"
    assert [h[1]["data-key"] for h in dom.find("th") if h[1].get("aria-sort")] == ["primitive"]
    names = [c[1]["data-value"] for c in dom.find("td", "primitive")]
    assert names == sorted(names) and len(names) == len(report["locks"])
    assert names != [display_name(row) for row in report["locks"]]   # the script moved rows
    # Descending on a number: the report's rows re-ordered by "ops", largest first.
    proc = _browser(tmp_path, "--dump-dom", path.as_uri() + "#sort=-ops")
    ops = [int(Page.text(row_cells[2])) for row_cells in _rows(Page(proc.stdout))]
    assert ops == sorted(ops, reverse=True)


def _rows(page):
    cells = page.find("td")
    width = len(page.find("th"))
    return [cells[i:i + width] for i in range(0, len(cells), width)]


@needs_chromium
def test_chromium_takes_a_screenshot(inversion, tmp_path):
    _, _, path = inversion
    shot = tmp_path / "shot.png"
    proc = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1200,900",
                    "--hide-scrollbars", path.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 900)
    assert len(data) > 20_000, "a blank page compresses to a few kB"

