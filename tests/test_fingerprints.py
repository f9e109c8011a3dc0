"""Fingerprints that survive unrelated edits, and instances made at one line kept apart
(docs/report.md, "Fingerprints").

Real programs under ``python -m tracethread run`` (subprocesses with a timeout): a comment
above a lock, another working directory, an absolute or relative script path change no
fingerprint (JSON report, SARIF, baseline); renaming a lock or changing the statement
that makes it does. Two ``Account.lock`` instances made by one statement stay two nodes
under either identity and in ``merge``, with the cycle between them reported and the two
told apart in the message."""

import json
import os
import re
import textwrap

import pytest
from helpers import tt

from tracethread._core import findings as F
from tracethread._core.lockorder import LockOrderGraph
from tracethread._core.records import Site
from tracethread.exporters.report.merge import merge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Three finding kinds, one program (its argv picks one). Every primitive has a default
# name (its creation site), so the names change when lines move; fingerprints must not.
PROGRAM = """
import sys
import threading


class Store:
    def __init__(self):
        self.lock = threading.Lock()


audit = threading.Lock()
store = Store()
ready = threading.Barrier(2)


def forward():
    with store.lock:
        if MODE == "deadlock":
            ready.wait()
        with audit:
            pass


def backward():
    with audit:
        if MODE == "deadlock":
            ready.wait()
        with store.lock:
            pass


MODE = sys.argv[1]
if MODE == "hang":
    threading.Event().wait()
elif MODE == "inversion":
    for target in (forward, backward):   # one after the other: never deadlocks
        t = threading.Thread(target=target)
        t.start()
        t.join()
else:
    ts = [threading.Thread(target=forward), threading.Thread(target=backward)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
"""

KIND = {"inversion": "potential-deadlock", "deadlock": "deadlock", "hang": "hang"}
RUN = {"inversion": ["--fail-on", "potential"],
       "deadlock": ["--fail-on", "deadlock"],
       "hang": ["--fail-on", "hang", "--hang-timeout", "0.3"]}


def commented(code):
    """The program with comment and blank lines above every line that makes a lock."""
    out = []
    for line in code.splitlines():
        if "threading.Lock()" in line or "threading.Event()" in line:
            indent = line[:len(line) - len(line.lstrip())]
            out += [f"{indent}# an unrelated edit", f"{indent}# that moves the lock down", ""]
        out.append(line)
    return "\n".join(out) + "\n"


def run_and_read(proj_file, cwd, mode, tmp, tag, *extra, expect):
    report, sarif = tmp / f"{tag}.json", tmp / f"{tag}.sarif"
    proc = tt("run", "-q", "--report", str(report), "--sarif", str(sarif), *RUN[mode], *extra,
              proj_file, mode, cwd=cwd)
    assert proc.returncode == expect, (tag, proc.returncode, proc.stderr[-3000:])
    r = json.loads(report.read_text())
    found = [f for f in r["findings"] if f["kind"] == KIND[mode]]
    assert len(found) == 1, (tag, r["findings"])
    s = json.loads(sarif.read_text())
    parts = [res["partialFingerprints"] for res in s["runs"][0]["results"]]
    return found[0], parts


@pytest.mark.parametrize("marker", [None, "pyproject.toml", ".git"])
@pytest.mark.parametrize("mode", ["inversion", "deadlock", "hang"])
def test_fingerprints_survive_comments_and_another_directory(tmp_path, mode, marker):
    proj = tmp_path / "proj"
    (proj / "app").mkdir(parents=True)
    if marker == ".git":
        (proj / ".git").mkdir()
    elif marker:
        (proj / marker).write_text("")
    prog = proj / "app" / "prog.py"
    prog.write_text(PROGRAM)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    baseline = out / "baseline.json"
    gate_fails = 3

    extra = ("--write-baseline", str(baseline)) if mode == "inversion" else ()
    first, first_sarif = run_and_read("prog.py", proj / "app", mode, out, "first", *extra,
                                      expect=gate_fails)   # nothing accepted yet
    assert {"tracethread/v1": first["fingerprint"]} in first_sarif
    if mode == "inversion":
        assert [a["fingerprint"] for a in json.loads(baseline.read_text())["accepted"]] \
            == [first["fingerprint"]]

    prog.write_text(commented(PROGRAM))   # every lock a few lines further down
    base = ("--baseline", str(baseline)) if mode == "inversion" else ()
    ok = 0 if mode == "inversion" else gate_fails   # the baseline accepts the inversion
    runs = {
        "commented": ("prog.py", proj / "app"),
        "from the project root": (os.path.join("app", "prog.py"), proj),
        "from outside, relative": (os.path.join("..", "proj", "app", "prog.py"), elsewhere),
        "from outside, absolute": (str(prog), elsewhere),
    }
    for tag, (path, cwd) in runs.items():
        f, sarif = run_and_read(path, cwd, mode, out, tag.replace(" ", "_").replace(",", ""),
                                *base, expect=ok)
        assert f["fingerprint"] == first["fingerprint"], (tag, first["message"], f["message"])
        assert sarif == first_sarif, tag
    # ... while the names shown did change (the lines moved; the path is the cwd's).
    assert f["message"] != first["message"]


def test_renaming_a_lock_or_changing_its_statement_changes_the_fingerprint(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    baseline = tmp_path / "baseline.json"
    first, _ = run_and_read(str(prog), tmp_path, "inversion", tmp_path, "first",
                            "--write-baseline", str(baseline), expect=3)
    again, _ = run_and_read(str(prog), tmp_path, "inversion", tmp_path, "again",
                            "--baseline", str(baseline), expect=0)
    assert again["fingerprint"] == first["fingerprint"]
    edits = {
        "named": ("audit = threading.Lock()", 'audit = threading.Lock(name="audit")'),
        "renamed": ('audit = threading.Lock()', 'audit = threading.Lock(name="audit")',
                    'name="audit"', 'name="ledger"'),
        "another statement": ("self.lock = threading.Lock()",
                              "self.lock = threading.Lock() if True else None"),
        "another scope": ("class Store:", "class Shop:", "store = Store()",
                          "store = Shop()"),
    }
    seen = {first["fingerprint"]}
    for tag, pairs in edits.items():
        code = PROGRAM
        for old, new in zip(pairs[::2], pairs[1::2]):
            assert old in code
            code = code.replace(old, new)
        prog.write_text(code)
        f, _ = run_and_read(str(prog), tmp_path, "inversion", tmp_path, tag.replace(" ", "_"),
                            "--baseline", str(baseline), expect=3)   # a new finding
        assert f["fingerprint"] not in seen, tag
        seen.add(f["fingerprint"])


# --- keys, in process --------------------------------------------------------------------

def test_keys_name_the_statement_and_its_scope_not_the_line(tmp_path):
    (tmp_path / "setup.cfg").write_text("")
    mod = tmp_path / "pkg" / "mod.py"
    mod.parent.mkdir()
    mod.write_text(textwrap.dedent("""\
        import threading


        class Pool:
            def __init__(self):
                # two identical statements in one function: told apart by their rank
                self.lock = threading.Lock()
                self.spare = [
                    threading.Lock(),   # a comment is no part of it
                    threading.Lock()]
                self.lock = threading.Lock()
        """))

    def key(line, kind="Lock", name=None):
        site = Site("pkg/mod.py", line, "__init__", str(mod), "Pool.__init__")
        return F.lock_key(kind, name or f"{site.file}:{site.line}", site)

    assert key(7) == "Lock pkg/mod.py Pool.__init__: self.lock=threading.Lock()"
    assert key(11) == key(7) + " [2]"
    assert key(9) == ("Lock pkg/mod.py Pool.__init__: "
                      "self.spare=[threading.Lock(),threading.Lock()] +1")
    assert key(10) == key(9)[:-1] + "2"
    assert key(7, name="pool") == "Lock 'pool'"
    assert key(7, kind="RLock") != key(7)
    # No source to read: the line stands in for the statement.
    gone = Site("gone.py", 3, "f", str(tmp_path / "gone.py"), "C.f")
    assert F.lock_key("Lock", "gone.py:3", gone) == "Lock gone.py C.f: line 3"


def test_project_path_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "proj" / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    f = tmp_path / "proj" / "src" / "pkg" / "mod.py"
    f.write_text("")
    for cwd in (tmp_path, tmp_path / "proj" / "src"):
        monkeypatch.chdir(cwd)
        assert F.project_path(str(f)) == "src/pkg/mod.py"
    import queue
    assert F.project_path(queue.__file__) == "queue.py"
    assert F.project_path("<string>") == "<string>"


def test_cycle_fingerprint_is_the_smallest_rotation_also_with_repeated_keys():
    g = LockOrderGraph()
    nodes = ["S", "T", "S", "U"]   # two instances of S in one cycle
    fps = {g.fingerprint(nodes[i:] + nodes[:i]) for i in range(len(nodes))}
    assert len(fps) == 1
    assert g.fingerprint(["S", "S", "T", "U"]) not in fps   # another cycle


# --- two instances made by one statement -----------------------------------------------

BANK = """
import sys
import threading


class Account:
    def __init__(self, balance):
        self.balance = balance
        self.lock = threading.Lock()


def transfer(src, dst, amount):
    with src.lock:
        with dst.lock:
            src.balance -= amount
            dst.balance += amount


a, b = Account(100), Account(100)
how = sys.argv[1]
if how == "sequential":
    transfer(a, b, 10)
    transfer(b, a, 5)
elif how == "threads":
    for args in ((a, b, 10), (b, a, 5)):
        t = threading.Thread(target=transfer, args=args)
        t.start()
        t.join()
elif how == "ab":
    transfer(a, b, 10)
elif how == "ba":
    transfer(b, a, 5)
"""

ACCOUNT = re.compile(r"Lock Account\.lock \(bank\.py:9\) #(\d)")   # named as the code names it


def bank_report(tmp_path, identity, how):
    report = tmp_path / f"{identity}-{how}.json"
    proc = tt("run", "-q", "--identity", identity, "--report", str(report), "bank.py", how,
              cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return report, json.loads(report.read_text())


def the_cycle(findings):
    (f,) = [f for f in findings if f["kind"] == "potential-deadlock"]
    # Both instances, told apart: #1 -> #2 -> #1 (from either end).
    assert sorted(ACCOUNT.findall(f["message"])) in (["1", "1", "2"], ["1", "2", "2"]), \
        f["message"]
    return f


@pytest.mark.parametrize("how", ["sequential", "threads"])
@pytest.mark.parametrize("identity", ["instance", "site"])
def test_two_accounts_made_at_one_line_stay_two_locks(tmp_path, identity, how):
    (tmp_path / "bank.py").write_text(BANK)
    path, report = bank_report(tmp_path, identity, how)
    live = the_cycle(report["findings"])
    nodes = report["graph"]["nodes"]
    assert sorted(n["id"] for n in nodes) == ["Lock bank.py:9 #1", "Lock bank.py:9 #2"]
    assert len({n["key"] for n in nodes}) == 1 and sorted(n["instance"] for n in nodes) == [1, 2]
    for e in live["edges"]:
        assert ACCOUNT.fullmatch(e["from"]) and ACCOUNT.fullmatch(e["to"]) and \
            e["from"] != e["to"]
    assert sorted(lk["instance"] for lk in live["locks"]) == [1, 2]

    # merge of the saved report: the same cycle, the same fingerprint, not new.
    out = tmp_path / "merged.json"
    proc = tt("merge", "-o", str(out), str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "No deadlock findings" not in proc.stderr
    merged = the_cycle(json.loads(out.read_text())["findings"])
    assert merged["fingerprint"] == live["fingerprint"]
    assert sorted(lk["instance"] for lk in merged["locks"]) == [1, 2]
    assert merged["only_when_combined"] is False


@pytest.mark.parametrize("identity", ["instance", "site"])
def test_merge_of_one_direction_each_finds_the_transfer_cycle(tmp_path, identity):
    (tmp_path / "bank.py").write_text(BANK)
    ab, rab = bank_report(tmp_path, identity, "ab")
    ba, rba = bank_report(tmp_path, identity, "ba")
    assert rab["findings"] == [] and rba["findings"] == []
    _, whole = bank_report(tmp_path, identity, "sequential")
    out = tmp_path / "merged.json"
    proc = tt("merge", "-o", str(out), "--fail-on", "potential", str(ab), str(ba),
              cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]   # a cycle only the combination has
    merged = the_cycle(json.loads(out.read_text())["findings"])
    assert merged["only_when_combined"] is True
    assert merged["fingerprint"] == the_cycle(whole["findings"])["fingerprint"]


def test_the_same_cycle_has_one_fingerprint_under_either_identity(tmp_path):
    (tmp_path / "bank.py").write_text(BANK)
    fps = {the_cycle(bank_report(tmp_path, identity, how)[1]["findings"])["fingerprint"]
           for identity in ("instance", "site") for how in ("sequential", "threads")}
    assert len(fps) == 1


def test_merge_reads_reports_written_before_keys():
    def old(edge):
        nodes = [{"id": f"Lock {n}", "name": n, "kind": "Lock", "site": None,
                  "signal": False} for n in ("A", "B")]
        return {"version": 1, "tool": "tracethread", "findings": [], "locks": [],
                "graph": {"nodes": nodes, "edges": [
                    {"from": f"Lock {edge[0]}", "to": f"Lock {edge[1]}", "thread": "t",
                     "bounded": False, "count": 1, "context": "", "stack": []}]}}
    merged = merge([old("AB"), old("BA")], ["one", "two"])
    (f,) = merged["findings"]
    assert f["only_when_combined"] is True
    assert "Lock A" in f["message"] and "Lock B" in f["message"]
    # The fingerprint an old single run gave this cycle (over the names).
    assert f["fingerprint"] == LockOrderGraph().fingerprint(["Lock A", "Lock B"])
    assert sorted(n["id"] for n in merged["graph"]["nodes"]) == ["Lock A", "Lock B"]
