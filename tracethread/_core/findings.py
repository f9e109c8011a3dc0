"""Findings: what detection found, in one model for every kind.

Kinds: ``potential-deadlock`` (a lock-order cycle), ``guarded-cycle`` (a cycle whose edges
were all taken under one common gate lock: shown, never a gate failure), ``deadlock`` (a
wait-for cycle, or a thread re-acquiring a Lock it holds), ``hang`` (a thread blocked
longer than the hang timeout). Each finding is kept once per fingerprint (later hits only
count), issued as a record to the sinks, and — for potential deadlocks — as a
``PotentialDeadlockWarning`` so unmodified programs see it.
"""

from __future__ import annotations

import ast
import hashlib
import io
import linecache
import os
import re
import sys
import sysconfig
import time
import tokenize
import warnings
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from . import _raw
from . import config as _config
from .records import FINDING, PrimitiveInfo, _short_path
from .state import current_state
from .stream import flush, record

KINDS = ("potential-deadlock", "guarded-cycle", "deadlock", "hang")
MAX_FINDINGS = 10_000
MAX_STACK = 40

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_NOISE = {_raw.THREADING_FILE, getattr(__import__("runpy"), "__file__", ""), "<frozen runpy>"}


class PotentialDeadlockWarning(RuntimeWarning):
    """A lock-order inversion: some interleaving of these threads can deadlock."""


class DeadlockError(RuntimeError):
    """Raised (policy ``raise``) in the thread whose wait would close a wait-for cycle."""

    def __init__(self, message: str, finding: "Finding") -> None:
        super().__init__(message)
        self.finding = finding


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str


@dataclass(frozen=True)
class LockRef:
    name: str
    kind: str
    file: str | None
    line: int | None
    function: str | None
    instance: int | None = None   # ``#n`` of one of several instances of the name
    label: str | None = None      # the name the code gives it (``assigned_name``)


@dataclass(frozen=True)
class ThreadRef:
    name: str
    ident: int
    holds: tuple[str, ...]
    waits_for: str | None
    stack: tuple[Frame, ...]
    held_at: tuple[tuple[str, Frame | None], ...] = ()  # where each held lock was acquired


@dataclass(frozen=True)
class EdgeRef:
    src: str
    dst: str
    thread: str
    bounded: bool
    stack: tuple[Frame, ...]
    context: str = ""  # e.g. the pytest test that first took this edge


@dataclass
class Finding:
    kind: str
    message: str
    fingerprint: str
    locks: tuple[LockRef, ...] = ()
    threads: tuple[ThreadRef, ...] = ()
    edges: tuple[EdgeRef, ...] = ()
    single_thread: bool = False
    bounded: bool = False
    guarded_by: tuple[str, ...] = ()
    count: int = 1
    time_ns: int = field(default_factory=time.monotonic_ns)
    recovered_after_s: float | None = None   # a hang whose wait ended after all

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Called (guarded, in order) before the process is ended by a policy (on_deadlock or
# on_hang "exit"): the CLI writes its reports here.
fatal_hooks: list = []


def end_process(status: int) -> None:
    """Run the fatal hooks, flush the record stream and stdio, and end the process now."""
    st = current_state()
    st.guard = True
    try:
        for hook in list(fatal_hooks):
            try:
                hook(status)
            except Exception as exc:  # noqa: BLE001 - still end the process
                try:
                    sys.stderr.write(f"tracethread: exit hook failed: {exc!r}\n")
                except Exception:  # noqa: BLE001
                    pass
        flush()
        flush_stdio()
    finally:
        os._exit(status)


def flush_stdio() -> None:
    """Flush stdout and stderr before the process ends without Python's own shutdown
    (``os._exit``, a re-raised signal); a closed or broken stream is skipped."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


_lock = _raw.allocate_lock()
_findings: dict[tuple[str, str], Finding] = {}
_overflow = [0]


def findings(kind: str | None = None) -> list[Finding]:
    """Every finding so far (optionally of one kind), oldest first."""
    with _lock:
        items = list(_findings.values())
    return [f for f in items if kind is None or f.kind == kind]


def clear() -> None:
    """Forget every finding (tests; a new CI shard)."""
    with _lock:
        _findings.clear()
        _withdrawn.clear()


def add(finding: Finding) -> bool:
    """Keep a finding; True if it is new (its fingerprint was not seen for its kind)."""
    key = (finding.kind, finding.fingerprint)
    with _lock:
        known = _findings.get(key)
        if known is not None:
            known.count += 1
            return False
        if len(_findings) >= MAX_FINDINGS:
            _overflow[0] += 1
            return False
        _findings[key] = finding
    return True


_withdrawn: list = []   # [(Finding, reason)]: findings taken back, newest last (bounded)


def stored(finding: Finding) -> Finding | None:
    """The finding kept for ``finding``'s kind and fingerprint (the first one seen)."""
    with _lock:
        return _findings.get((finding.kind, finding.fingerprint))


def withdraw(kind: str, fingerprint: str, reason: str) -> Finding | None:
    """Take back a finding that later evidence disproved (a lock of a cycle turned out to
    be a signal). It leaves ``findings()`` and is listed by ``withdrawn()``."""
    with _lock:
        finding = _findings.pop((kind, fingerprint), None)
        if finding is not None:
            if len(_withdrawn) >= MAX_FINDINGS:
                del _withdrawn[0]
            _withdrawn.append((finding, reason))
    return finding


def withdrawn() -> list[tuple[Finding, str]]:
    """Findings taken back, with the reason, oldest first."""
    with _lock:
        return list(_withdrawn)


def publish(finding: Finding, st: Any) -> None:
    """Tell the world about a new finding: a record for the sinks, a warning or a line on
    stderr. Runs guarded: nothing done here is recorded."""

    prev = st.guard
    st.guard = True
    try:
        info = PrimitiveInfo("Finding", finding.kind, None)
        record(FINDING, info, st, None, False, False, None, None, (finding,))
        if finding.kind == "potential-deadlock" and _config.get().warn:
            warnings.warn(finding.message, PotentialDeadlockWarning,
                          stacklevel=_program_level())
        elif finding.kind in ("deadlock", "hang") and _config.get().live:
            say(render_text(finding))
    finally:
        st.guard = prev


def _program_level() -> int:
    """The ``stacklevel`` for a warning from ``publish`` that points at the program's
    line (the acquire that closed the cycle), past every tracethread frame."""
    f: Any = sys._getframe(1)   # publish
    level = 1
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
        level += 1
    return level


def _to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


# Where a finding is said the moment it is found (``say``): stderr, or what replaced it
# (the pytest plugin writes past its output capture, to the terminal).
live_writer: list[Callable[[str], None]] = [_to_stderr]


def say(text: str) -> None:
    """Write ``text`` (lines ending in newlines) where live reports go; never raises."""
    try:
        live_writer[0](text)
    except Exception:  # noqa: BLE001 - stderr may be gone, the terminal closed
        pass


# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: a name,
# path or stack line from a program or a file must never move the cursor, set the
# window title or clear the screen where it is shown.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))}
_CONTROL.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def literal(value: Any) -> str:
    """``value`` as text to show literally: control characters escaped (``\\x1b``)."""
    return str(value).translate(_CONTROL)


def render_text(f: Finding) -> str:
    """A plain-text rendering (the rich report comes with the CLI)."""
    out = [f"tracethread: {f.kind}: {f.message}"]
    for t in f.threads:
        holds = ", ".join(t.holds) or "nothing"
        out.append(f"  thread {t.name!r} holds {holds}; waits for {t.waits_for or '-'}")
        for lock, site in t.held_at:
            if site is not None:
                out.append(f"    took {lock} at {site.file}:{site.line}")
        for fr in t.stack[-6:]:
            out.append(f"    {fr.file}:{fr.line} in {fr.function}")
    return "\n".join(literal(line) for line in out) + "\n"


# ---------------------------------------------------------------------------------------
# Stacks

_frame_cache: dict[tuple[int, int], tuple[Frame | None, Any]] = {}
_FRAME_CACHE_MAX = 50_000


def frames_of(frame: Any, limit: int = MAX_STACK) -> tuple[Frame, ...]:
    """The stack from ``frame`` outwards, oldest first, without tracethread's own frames.

    A walk of the frames, each (code, line) turned into a ``Frame`` once and cached: no
    source lines are read (``traceback.extract_stack`` would read them, and stat the files,
    for every frame — tens of microseconds for each new lock-order edge). The cache is
    keyed by the code object's id and the instruction, not the code object and the line: a
    code object's hash is computed anew each time over its bytecode, constants and names,
    and ``f_lineno`` decodes the line table (the walk of a deep stack spent most of its
    time there); each entry holds a weak reference to its code, compared on a hit (an id
    is reused once its code is gone, and recompiled code must not be kept alive)."""
    out = []
    f = frame
    cache = _frame_cache
    for _ in range(limit + 20):
        if f is None:
            break
        code = f.f_code
        key = (id(code), f.f_lasti)
        hit = cache.get(key)
        if hit is not None and hit[1]() is code:
            fr = hit[0]
        else:
            fn = code.co_filename
            # The program's own frames: not tracethread's, not threading's bootstrap, not
            # runpy. (The line only here: f_lineno decodes the code's line table.)
            fr = (None if fn.startswith(_PKG_DIR) or fn in _NOISE
                  else Frame(_short_path(fn), f.f_lineno or 0, code.co_name))
            if len(cache) >= _FRAME_CACHE_MAX:
                cache.clear()
            cache[key] = (fr, weakref.ref(code))
        if fr is not None:
            out.append(fr)
        f = f.f_back
    out.reverse()
    return tuple(out[-limit:])


def current_stack(skip: int = 1) -> tuple[Frame, ...]:
    """This thread's stack (tracethread's own frames are left out anyway)."""
    return frames_of(sys._getframe(1))


def stack_of_thread(ident: int) -> tuple[Frame, ...]:
    return frames_of(sys._current_frames().get(ident))


# ---------------------------------------------------------------------------------------
# Fingerprints (docs/report.md, "Fingerprints")
#
# A finding's fingerprint is a hash of the *keys* of the primitives in it. A key says
# which primitive it is in terms that survive unrelated edits and another working
# directory: its kind and the name it was given (``name=``); else the file relative to its
# project, the scope (class/function) and the creation statement, read from the source
# here — when a finding is made, never on a hot path — and normalised. Not the line
# number, not the working directory, not the object's id.

_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
# The names threading gives threads that were not named ("Thread-3 (worker)", "Dummy-1").
_DEFAULT_THREAD_NAME = re.compile(r"(?:Thread|Dummy)-\d+(?: \(.*\))?\Z", re.S)
_CACHE_MAX = 4096
_key_cache: dict = {}      # (kind, name, site) -> key
_root_cache: dict = {}     # directory -> its project root (or None)
_source_cache: dict = {}   # path -> (lines, tree or None, memo)
_lib_dirs_found: list = []
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                tokenize.DEDENT, tokenize.ENDMARKER}
_MAX_TEXT = 200


def fingerprint(*parts: str) -> str:
    """16 hex digits of the SHA-256 of ``parts``."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")
                          ).hexdigest()[:16]


def info_key(info: Any) -> str:
    """The stable key of the primitive a ``PrimitiveInfo`` describes."""
    return lock_key(info.kind, info.name, info.site)


def lock_key(kind: str, name: str, site: Any) -> str:
    """The stable key of a primitive of this kind, name and creation site (see above).
    Computed once per (kind, name, site); never raises."""
    ck = (kind, name, site)
    key = _key_cache.get(ck)
    if key is None:
        try:
            key = _lock_key(kind, name, site)
        except Exception:  # noqa: BLE001 - a key is always made
            key = f"{kind} {name!r}"
        if len(_key_cache) >= _CACHE_MAX:
            _key_cache.clear()
        _key_cache[ck] = key
    return key


def _given_name(kind: str, name: str, site: Any) -> bool:
    if site is None:
        return True
    if kind == "Thread":
        return not _DEFAULT_THREAD_NAME.match(name)
    return name != f"{site.file}:{site.line}"


def _lock_key(kind: str, name: str, site: Any) -> str:
    if _given_name(kind, name, site):
        return f"{kind} {name!r}"
    path = getattr(site, "path", None) or site.file
    where = project_path(path)
    scope, text, offset, nth = _statement(path, site.line)
    if scope is None:
        scope = getattr(site, "qualname", None) or site.function
    if text is None:   # no source: the line number is all there is
        return f"{kind} {where} {scope}: line {site.line}"
    key = f"{kind} {where} {scope}: {text}"
    if offset:
        key += f" +{offset}"      # the creation line's place in a statement of several
    if nth > 1:
        key += f" [{nth}]"        # the nth identical statement of its scope
    return key


def project_path(path: str) -> str:
    """``path`` as the project knows it, whatever the working directory: relative to the
    stdlib or site-packages directory holding it; else to its project root (the nearest
    directory above it holding pyproject.toml, setup.py, setup.cfg or .git); else to the
    longest absolute ``sys.path`` entry holding it; else its base name. ``/``-separated.
    Pseudo-files (``<string>``) stay as they are."""
    if not path or path[:1] == "<":
        return path
    real = os.path.realpath(os.path.abspath(path))
    for base in _lib_dirs():
        rel = _relative(real, base)
        if rel is not None:
            return rel
    root = _project_root(os.path.dirname(real))
    if root is not None:
        rel = _relative(real, root)
        if rel is not None:
            return rel
    best = None
    for entry in list(sys.path):
        if isinstance(entry, str) and entry and os.path.isabs(entry):
            rel = _relative(real, os.path.realpath(entry))
            if rel is not None and (best is None or len(rel) < len(best)):
                best = rel
    return best if best is not None else os.path.basename(real)


def _relative(path: str, base: str) -> str | None:
    base = base.rstrip(os.sep) + os.sep
    if os.path.normcase(path).startswith(os.path.normcase(base)) and len(path) > len(base):
        return path[len(base):].replace(os.sep, "/")
    return None


def _lib_dirs() -> list:
    if not _lib_dirs_found:
        dirs: set = set()
        try:
            paths = sysconfig.get_paths()
            dirs.update(paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib"))
        except Exception:  # noqa: BLE001
            pass
        try:
            import site
            dirs.update(site.getsitepackages())
            dirs.add(site.getusersitepackages())
        except Exception:  # noqa: BLE001 - site may be disabled (python -S)
            pass
        found = sorted({os.path.realpath(d) for d in dirs if d}, key=len, reverse=True)
        _lib_dirs_found[:] = found or [os.path.realpath(os.__file__ + "/..")]
    return _lib_dirs_found


def _project_root(directory: str) -> str | None:
    walked = []
    cur = directory
    root = None
    while True:
        if cur in _root_cache:
            root = _root_cache[cur]
            break
        walked.append(cur)
        if any(os.path.exists(os.path.join(cur, m)) for m in _MARKERS):
            root = cur
            break
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    if len(_root_cache) >= _CACHE_MAX:
        _root_cache.clear()
    for d in walked:
        _root_cache[d] = root
    return root


def _source(path: str) -> tuple | None:
    lines = linecache.getlines(path)
    if not lines:
        return None
    entry = _source_cache.get(path)
    if entry is None or entry[0] is not lines:
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if len(_source_cache) >= 256:
            _source_cache.clear()
        entry = _source_cache[path] = (lines, tree, {})
    return entry


def assigned_name(site: Any) -> str | None:
    """The name the code gives a primitive made at ``site``, read from the statement
    there: ``self.lock = Lock()`` in ``Account.__init__`` is ``Account.lock``,
    ``self.not_empty = Condition(...)`` in ``Queue.__init__`` is ``Queue.not_empty``,
    ``lock = Lock()`` is ``lock``; None when the line does not say (no source, a call
    inside an expression, several calls on the line, ``a, b = Lock(), Lock()``). Found
    once per site, when a report names the lock: never on the hot path."""
    if site is None:
        return None
    path = site.path or site.file
    entry = _source(path)
    if entry is None or entry[1] is None:
        return None
    lines, tree, memo = entry
    key = ("assigned", site.line)
    if key not in memo:
        # The scope from the source (``Account.__init__``), as 3.10's code objects have
        # no qualified name.
        scope = _statement(path, site.line)[0] or site.qualname or site.function
        memo[key] = _assigned(tree, site.line, scope)
    return memo[key]


def taken_at(stack: tuple, name: str) -> Frame | None:
    """Where a thread took the lock the code calls ``name`` (``Account.lock``, ``lock``),
    read from its stack as the deadlock left it: the innermost ``with ...lock:`` statement
    enclosing a frame's current line, or the last ``...lock.acquire(...)`` before it in
    the same function, whose expression ends in the name's last part (``src.lock``,
    ``self.lock``). Nothing is captured while the program runs; None when the source does
    not say."""
    attr = name.rpartition(".")[2]
    for fr in reversed(stack):
        entry = _source(fr.file)
        if entry is None or entry[1] is None:
            continue
        memo = entry[2]
        key = ("taken", fr.line, attr)
        if key not in memo:
            memo[key] = _taken(entry[1], fr.line, attr)
        line = memo[key]
        if line is not None:
            return Frame(fr.file, line, fr.function)
    return None


def _names_lock(expr: Any, attr: str) -> bool:
    return (isinstance(expr, ast.Name) and expr.id == attr) or \
        (isinstance(expr, ast.Attribute) and expr.attr == attr)


def _taken(tree: Any, line: int, attr: str) -> int | None:
    best: int | None = None
    funcs = [n for n in ast.walk(tree) if isinstance(n, _FUNCS)
             and n.lineno <= line <= (n.end_lineno or n.lineno)]
    scope = min(funcs, key=lambda n: (n.end_lineno or n.lineno) - n.lineno, default=tree)
    for node in ast.walk(scope):
        if isinstance(node, (ast.With, ast.AsyncWith)) and \
                node.lineno <= line <= (node.end_lineno or node.lineno) and \
                any(_names_lock(item.context_expr, attr) for item in node.items):
            if best is None or node.lineno > best:
                best = node.lineno
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "acquire" and _names_lock(node.func.value, attr) and \
                node.lineno <= line:
            if best is None or node.lineno > best:
                best = node.lineno
    return best


def _assigned(tree: Any, line: int, qualname: str) -> str | None:
    calls_here = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno == line]
    if len(calls_here) != 1:
        return None   # none, or several on the line: which one made it is not known
    call = calls_here[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.value is call and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is call:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name):
            return target.id
        if isinstance(target, ast.Attribute):
            if isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"):
                parts = qualname.split(".")
                owner = parts[-2] if len(parts) >= 2 and parts[-2] != "<locals>" else None
                return f"{owner}.{target.attr}" if owner else target.attr
            try:
                return ast.unparse(target)
            except Exception:  # noqa: BLE001 - a shape unparse does not know
                return None
        return None
    return None


def _statement(path: str, line: int) -> tuple:
    """(scope, normalised statement text, the line's offset in it, its rank among the
    identical statements of its scope) of the statement at ``path:line``; (None, None,
    0, 1) without source."""
    entry = _source(path)
    if entry is None or not 1 <= line <= len(entry[0]):
        return None, None, 0, 1
    lines, tree, memo = entry
    found = memo.get(line)
    if found is None:
        found = memo[line] = _find(lines, tree, line, memo)
    return found


def _child_stmts(node: Any) -> Any:
    for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, field_name, None) or ():
            if isinstance(child, ast.stmt):
                yield child
            else:   # an except clause, a match case: their statements
                yield from getattr(child, "body", ())


def _span(stmt: Any) -> tuple[int, int]:
    """The lines of a simple statement, or of a compound statement's header."""
    first = min((c.lineno for c in _child_stmts(stmt)), default=None)
    end = stmt.end_lineno or stmt.lineno
    if first is not None:
        end = max(stmt.lineno, first - 1)
    return stmt.lineno, end


def _find(lines: list, tree: Any, line: int, memo: dict) -> tuple:
    if tree is None:
        text = _normalise(lines[line - 1])
        return None, text or None, 0, 1
    scope: list[str] = []
    scope_node = node = tree
    hits: list = []
    while True:
        hits = [c for c in _child_stmts(node)
                if c.lineno <= line <= (c.end_lineno or c.lineno)]
        if len(hits) != 1:
            break        # none: no statement holds the line; several: they share it
        child = hits[0]
        start, end = _span(child)
        if line <= end:   # a simple statement, or the header of a compound one
            break
        if isinstance(child, _FUNCS + (ast.ClassDef,)):
            scope.append(child.name)
            if isinstance(child, _FUNCS):
                scope.append("<locals>")
            scope_node = child
        node = child
    while scope and scope[-1] == "<locals>":
        scope.pop()
    qualname = ".".join(scope) or "<module>"
    if not hits:
        return qualname, _normalise(lines[line - 1]) or None, 0, 1
    spans = [_span(h) for h in hits]
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    text = _normalise("".join(lines[start - 1:end]))
    if not text:
        return qualname, None, 0, 1
    same = _scope_index(lines, scope_node, memo).get(text, ())
    nth = 1 + sum(1 for s in same if s < start)
    return qualname, text, line - start, nth


def _scope_index(lines: list, scope_node: Any, memo: dict) -> dict:
    """Normalised statement text -> first lines of the statements of that text in a
    scope (its own statements: not those of functions and classes inside it)."""
    k = ("scope", id(scope_node))   # the tree lives as long as the memo
    index = memo.get(k)
    if index is None:
        index = {}
        todo = list(_child_stmts(scope_node))
        while todo:
            stmt = todo.pop()
            start, end = _span(stmt)
            index.setdefault(_normalise("".join(lines[start - 1:end])), []).append(start)
            if not isinstance(stmt, _FUNCS + (ast.ClassDef,)):
                todo.extend(_child_stmts(stmt))
        memo[k] = index
    return index


def _normalise(text: str) -> str:
    """The statement's tokens, comments left out, a space only where two words meet:
    neither re-indenting, re-wrapping, spacing nor comments change it."""
    out: list[str] = []
    prev = ""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in _SKIP_TOKENS:
                continue
            s = tok.string
            if prev and s and _wordish(prev[-1]) and _wordish(s[0]):
                out.append(" ")
            out.append(s)
            prev = s
    except (tokenize.TokenError, SyntaxError, ValueError):
        return " ".join(text.split())
    norm = "".join(out)
    if len(norm) > _MAX_TEXT:
        norm = f"{norm[:_MAX_TEXT - 40]}…{fingerprint(norm)}"
    return norm


def _wordish(c: str) -> bool:
    return c.isalnum() or c == "_"
