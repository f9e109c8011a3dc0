"""The hang watchdog: reports any thread blocked in any primitive for longer than the hang
timeout — the waits that have no owner to build a wait-for cycle from (Condition, Event,
Semaphore, Barrier, a join on a thread that is itself waiting for a signal).

It runs on a raw ``_thread`` thread (never in ``threading.enumerate()``, never traced),
wakes a few times per timeout, and reports each hang once (a hang is one thread's one wait,
identified by when that wait began), with every thread's stack, what each holds and what
each waits for.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from . import _raw
from . import config as _config
from . import findings as F
from .detect import describe_info
from .state import current_state, states

_reported: set = set()
_running = [False]
_lock = _raw.allocate_lock()


def ensure_running(cfg: Any = None) -> None:
    cfg = cfg or _config.get()
    if not cfg.hang_timeout:
        return
    with _lock:
        if _running[0]:
            return
        _running[0] = True
    _raw.start_new_thread(_main, ())


def _main() -> None:
    me = current_state()
    me.guard = me.internal = True
    me.name = "tracethread-watchdog"
    try:
        while True:
            timeout = _config.get().hang_timeout
            if not timeout:
                return
            time.sleep(min(max(timeout / 4, 0.01), 1.0))
            scan(me)
    except BaseException:  # noqa: BLE001 - interpreter shutdown
        pass
    finally:
        _running[0] = False


def scan(me: Any = None, now_ns: int | None = None) -> list[F.Finding]:
    """Report the threads blocked past the hang timeout (once per wait)."""
    timeout = _config.get().hang_timeout
    if not timeout:
        return []
    now = time.monotonic_ns() if now_ns is None else now_ns
    limit = int(timeout * 1e9)
    hung = [st for st in list(states)
            if st.waiting is not None and st.wait_since and now - st.wait_since >= limit
            and (st.ident, st.wait_since) not in _reported]
    if not hung:
        return []
    frames = sys._current_frames()
    everyone = []
    for st in list(states):
        if st.ident not in frames or st.guard:
            continue
        held = list(st.held)
        everyone.append(F.ThreadRef(
            st.name, st.ident, tuple(_describe(h) for h in held),
            None if st.waiting is None else _describe_info(st.waiting),
            F.frames_of(frames.get(st.ident)),
            tuple((_describe(h), st.held_sites.get(id(h))) for h in held)))
    out = []
    for st in hung:
        _reported.add((st.ident, st.wait_since))
        secs = (now - st.wait_since) / 1e9
        what = _describe_info(st.waiting)
        msg = (f"thread {st.name!r} has been waiting on {what} for {secs:.1f} s "
               f"(hang timeout {timeout:g} s)")
        info = st.waiting
        fp = F.fingerprint("hang", F.info_key(info))
        lock = F.LockRef(info.name, info.kind, info.site.file if info.site else None,
                         info.site.line if info.site else None,
                         info.site.function if info.site else None)
        ordered = tuple(sorted(everyone, key=lambda t: t.ident != st.ident))
        finding = F.Finding(kind="hang", message=msg, fingerprint=fp, locks=(lock,),
                            threads=ordered)
        F.add(finding)  # counted per fingerprint; published for every new hang
        if me is not None:
            F.publish(finding, me)
        out.append(finding)
    if out and me is not None and _config.get().on_hang == "exit":
        F.end_process(_config.EXIT_DEADLOCK)
    return out


def _describe(prim: Any) -> str:
    info = getattr(prim, "_info", None) or getattr(prim, "_self_info", None)
    return _describe_info(info) if info is not None else repr(prim)


def _describe_info(info: Any) -> str:
    """As deadlock messages name it (``#n`` for one of several instances of a name)."""
    return describe_info(info)


_config.on_change(ensure_running)
