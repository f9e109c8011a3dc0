"""The hang watchdog: reports any thread blocked in any primitive for longer than the hang
timeout — the waits that have no owner to build a wait-for cycle from (Condition, Event,
Semaphore, Barrier, a join on a thread that is itself waiting for a signal) — and, when the
wait ends after all, that it did ("went on after 41.2 s").

It also finds the deadlock no wait-for cycle shows: **all threads are asleep** (Go's rule,
extended to every primitive). When every live thread is blocked without a timeout in a
traced wait — a Lock, RLock, Condition, Event, Semaphore, Barrier or join — or is the main
thread joining the others at interpreter exit, nothing can wake any of them: a ``deadlock``
is reported, once the same waits have been seen unchanged for ``ASLEEP_CONFIRM_S`` (a
thread just woken has not yet cleared its wait). A thread in a wait with a timeout (a
pending ``Timer`` included), in ``time.sleep``, in I/O or anywhere else, and a thread the
tracer has no state for, counts as awake; the tracer's own threads do not count
(docs/detection.md, "All threads are asleep").

It runs on a raw ``_thread`` thread (never in ``threading.enumerate()``, never traced)
while a hang timeout is set, wakes a few times per timeout (at least every
``ASLEEP_CONFIRM_S / 2``), and reports each hang once (a hang is one thread's one wait,
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
from .detect import code_name, describe_info, held_at, in_wait_cycle
from .state import current_state, live_states, states

ASLEEP_CONFIRM_S = 0.5

# Hangs reported and not yet over: (ident, wait_since) -> (state, its finding, what).
_reported: dict = {}
_running = [False]
_lock = _raw.allocate_lock()
_asleep: list = [None, 0]   # [the waits of an all-asleep moment, when first seen (ns)]


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
            time.sleep(min(max(timeout / 4, 0.01), ASLEEP_CONFIRM_S / 2))
            scan(me)
            all_asleep(me)
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
    hangs_over(now)
    limit = int(timeout * 1e9)
    hung = [st for st in list(states)
            if st.waiting is not None and st.wait_since and now - st.wait_since >= limit
            and (st.ident, st.wait_since) not in _reported]
    if not hung:
        return []
    frames = sys._current_frames()
    live = live_states(frames)
    everyone = [_thread_ref(st, None if st.waiting is None else _describe_info(st.waiting),
                            frames) for st in live.values() if not st.guard]
    out = []
    for st in hung:
        secs = (now - st.wait_since) / 1e9
        what = _describe_info(st.waiting)
        msg = (f"thread {st.name!r} has been waiting on {what} for {secs:.1f} s "
               f"(hang timeout {timeout:g} s)") + _slots_held(st, everyone, live)
        info = st.waiting
        fp = F.fingerprint("hang", F.info_key(info))
        lock = _lock_ref(info)
        ordered = tuple(sorted(everyone, key=lambda t: t.ident != st.ident))
        finding = F.Finding(kind="hang", message=msg, fingerprint=fp, locks=(lock,),
                            threads=ordered)
        F.add(finding)  # counted per fingerprint; published for every new hang
        _reported[(st.ident, st.wait_since)] = (st, F.stored(finding), what)
        if me is not None:
            F.publish(finding, me)
        out.append(finding)
    if out and me is not None and _config.get().on_hang == "exit":
        F.end_process(_config.EXIT_DEADLOCK)
    return out


def hangs_over(now: int | None = None) -> None:
    """Say of each hang reported whose wait has ended since that it did, and after how
    long at most (the watchdog looks every quarter second or more often; the exit looks
    once more, before its report)."""
    now = time.monotonic_ns() if now is None else now
    for key, (st, finding, what) in list(_reported.items()):
        if st.waiting is not None and st.wait_since == key[1]:
            continue
        if _reported.pop(key, None) is None:
            continue   # (said by the other caller: the watchdog, or the exit)
        secs = (now - key[1]) / 1e9
        if finding is not None:
            finding.recovered_after_s = round(secs, 3)
        F.say(F.literal(f"tracethread: hang over: thread {st.name!r} went on after at most "
                        f"{secs:.1f} s waiting on {what}") + "\n")


def _lock_ref(info: Any) -> F.LockRef:
    """The reference a finding keeps to the primitive ``info`` describes."""
    site = info.site
    return F.LockRef(info.name, info.kind, site.file if site else None,
                     site.line if site else None, site.function if site else None, None,
                     code_name(info.kind, info.name, site))


def _thread_ref(st: Any, waits_for: str | None, frames: dict) -> F.ThreadRef:
    """What a finding says of thread ``st``: what it holds (and where it took each), what
    it waits for, its stack."""
    stack = F.frames_of(frames.get(st.ident))
    return F.ThreadRef(st.name, st.ident, tuple(_describe(h) for h in list(st.held)),
                       waits_for, stack, held_at(st, stack))


def _slots_held(st: Any, everyone: list, live: dict) -> str:
    """For a thread waiting on a Semaphore: who took the slots still held, and where
    (a leaked slot: taken, never released), as the semaphore's holders say; "" when it is
    not known (not a Semaphore, or one released by other threads than took it)."""
    prim = st.blocked_on
    holders: list[Any] = list(getattr(prim, "_holders", None) or ())
    if not holders or getattr(prim, "_as_lock", None) is False:
        return ""
    info = st.waiting
    label = code_name(info.kind, info.name, info.site) if info is not None else None
    stacks = {t.ident: t.stack for t in everyone}
    parts = []
    for h in holders[:8]:
        name, ident = h.name, h.ident
        if live.get(ident) is not h:
            parts.append(f"{name!r} (its thread has ended: the slot leaked)")
            continue
        where = F.taken_at(stacks.get(ident, ()), label) if label else None
        parts.append(f"{name!r}" + (f" (took one at {where.file}:{where.line})"
                                    if where else ""))
    more = f" and {len(holders) - 8} more" if len(holders) > 8 else ""
    return f"; the slots are held by {', '.join(parts)}{more}, taken and not released"


def _main_in_shutdown(frame: Any) -> bool:
    """Is this the main thread's frame joining the other threads at interpreter exit
    (``threading._shutdown``)?"""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_shutdown" and code.co_filename == _raw.THREADING_FILE:
            return True
        frame = frame.f_back
    return False


def asleep_waits() -> tuple | None:
    """The waits of every live thread when all of them are blocked without a timeout
    (``(state, what it waits on, since)``, or ``(None, "exit", ident)`` for the main thread
    joining the others at exit), else None. Threads the tracer has no state for count as
    awake; its own threads do not count."""
    frames = sys._current_frames()
    by_ident = live_states(frames)
    waits: list[tuple[Any, Any, int]] = []
    main = _raw.main_ident()
    for ident, frame in frames.items():
        s = by_ident.get(ident)
        if s is not None and s.internal:
            continue
        if s is not None and s.waiting is not None and not s.wait_bounded and s.wait_since:
            waits.append((s, s.waiting, s.wait_since))
        elif ident == main and _main_in_shutdown(frame):
            waits.append((None, "exit", ident))
        else:
            return None   # awake: it may yet wake the others
    if not any(s is not None for s, _, _ in waits):
        return None
    return tuple(waits)


def _same_waits(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x[0] is y[0] and x[1] is y[1] and x[2] == y[2]
                                    for x, y in zip(a, b))


def all_asleep(me: Any = None, now_ns: int | None = None) -> F.Finding | None:
    """Report a deadlock when every live thread has been asleep (``asleep_waits``) in the
    same waits for ``ASLEEP_CONFIRM_S``; the policy of ``on_deadlock`` applies, and a
    program that is exiting (its main thread joining the others) is ended with the
    deadlock status whatever the policy: it would wait forever."""
    cfg = _config.get()
    if not cfg.detection:
        return None
    now = time.monotonic_ns() if now_ns is None else now_ns
    waits = asleep_waits()
    if waits is None:
        _asleep[0] = None
        return None
    if _asleep[0] is None or not _same_waits(_asleep[0], waits):
        _asleep[0], _asleep[1] = waits, now
        return None
    if now - _asleep[1] < ASLEEP_CONFIRM_S * 1e9:
        return None
    finding = _asleep_finding(waits)
    exiting = any(s is None for s, _, _ in waits)
    # A wait-for cycle among them is a deadlock reported already, by the thread that
    # closed it: this finding would say it again.
    cycle = any(s is not None and in_wait_cycle(s) for s, _, _ in waits)
    if not cycle and F.add(finding) and me is not None:
        F.publish(finding, me)
    _asleep[0] = None
    if me is not None and (exiting or cfg.on_deadlock == "exit"):
        if exiting:
            F.say("tracethread: the program is exiting and waits for threads that can "
                  f"never end: ending it (exit status {_config.EXIT_DEADLOCK})\n")
        F.end_process(_config.EXIT_DEADLOCK)
    return finding


def _asleep_finding(waits: tuple) -> F.Finding:
    frames = sys._current_frames()
    threads = []
    for s, what, since in waits:
        if s is None:
            threads.append(F.ThreadRef("MainThread", since, (), "the other threads, at exit",
                                       F.frames_of(frames.get(since))))
            continue
        threads.append(_thread_ref(s, _describe_info(what), frames))
    infos = [what for s, what, _ in waits if s is not None]
    msg = (f"all threads are asleep: {len(waits)} thread(s) each wait without a timeout "
           f"and none can wake another ("
           + "; ".join(f"{t.name!r} waits for {t.waits_for}" for t in threads) + ")")
    locks = tuple(map(_lock_ref, infos))
    fp = F.fingerprint("deadlock", "asleep", *sorted(F.info_key(i) for i in infos))
    return F.Finding(kind="deadlock", message=msg, fingerprint=fp, locks=locks,
                     threads=tuple(threads))


def _describe(prim: Any) -> str:
    info = getattr(prim, "_info", None) or getattr(prim, "_self_info", None)
    return _describe_info(info) if info is not None else repr(prim)


def _describe_info(info: Any) -> str:
    """As deadlock messages name it (``#n`` for one of several instances of a name)."""
    return describe_info(info)


_config.on_change(ensure_running)
