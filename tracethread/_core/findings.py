"""Findings: what detection found, in one model for every kind.

Kinds: ``potential-deadlock`` (a lock-order cycle), ``guarded-cycle`` (a cycle whose edges
were all taken under one common gate lock: shown, never a gate failure), ``deadlock`` (a
wait-for cycle, or a thread re-acquiring a Lock it holds), ``hang`` (a thread blocked
longer than the hang timeout). Each finding is kept once per fingerprint (later hits only
count), issued as a record to the sinks, and — for potential deadlocks — as a
``PotentialDeadlockWarning`` so unmodified programs see it.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _raw
from . import config as _config
from .records import _short_path

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Called (guarded, in order) before the process is ended by a policy (on_deadlock or
# on_hang "exit"): the CLI writes its reports here.
fatal_hooks: list = []


def end_process(status: int) -> None:
    """Run the fatal hooks, flush the record stream and stdio, and end the process now."""
    from .recorder import current_state, flush
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
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
    finally:
        os._exit(status)


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
    from .recorder import record
    from .records import FINDING, PrimitiveInfo

    prev = st.guard
    st.guard = True
    try:
        info = PrimitiveInfo("Finding", finding.kind, None)
        record(FINDING, info, st, None, False, False, None, None, (finding,))
        if finding.kind == "potential-deadlock" and _config.get().warn:
            warnings.warn(finding.message, PotentialDeadlockWarning, stacklevel=4)
        elif finding.kind in ("deadlock", "hang") and _config.get().warn:
            try:
                sys.stderr.write(render_text(finding))
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 - stderr may be gone
                pass
    finally:
        st.guard = prev


def render_text(f: Finding) -> str:
    """A plain-text rendering (the rich report comes with the CLI)."""
    out = [f"tracethread: {f.kind}: {f.message}"]
    for t in f.threads:
        holds = ", ".join(t.holds) or "nothing"
        out.append(f"  thread {t.name!r} holds {holds}; waits for {t.waits_for or '-'}")
        for fr in t.stack[-6:]:
            out.append(f"    {fr.file}:{fr.line} in {fr.function}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# Stacks

_frame_cache: dict[tuple[Any, int], Frame | None] = {}
_FRAME_CACHE_MAX = 50_000


def frames_of(frame: Any, limit: int = MAX_STACK) -> tuple[Frame, ...]:
    """The stack from ``frame`` outwards, oldest first, without tracethread's own frames.

    A walk of the frames, each (code, line) turned into a ``Frame`` once and cached: no
    source lines are read (``traceback.extract_stack`` would read them, and stat the files,
    for every frame — tens of microseconds for each new lock-order edge)."""
    out = []
    f = frame
    cache = _frame_cache
    for _ in range(limit + 20):
        if f is None:
            break
        code = f.f_code
        line = f.f_lineno or 0
        key = (code, line)
        fr = cache.get(key, False)
        if fr is False:
            fn = code.co_filename
            # The program's own frames: not tracethread's, not threading's bootstrap, not
            # runpy.
            fr = (None if fn.startswith(_PKG_DIR) or fn in _NOISE
                  else Frame(_short_path(fn), line, code.co_name))
            if len(cache) >= _FRAME_CACHE_MAX:
                cache.clear()
            cache[key] = fr
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
