"""Detection settings: one place, ``tracethread.configure(...)`` (also ``install(...)``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

POLICIES = ("report", "raise", "exit")
IDENTITIES = ("instance", "site")
# Exit status of a process ended by the ``exit`` policy (not 0, 1 or 2).
EXIT_DEADLOCK = 3


@dataclass(frozen=True)
class Config:
    detection: bool = True            # lock-order and wait-for graphs
    on_deadlock: str = "report"       # report | raise | exit
    hang_timeout: float | None = None  # seconds; None or 0: no watchdog
    single_thread_cycles: bool = True  # a cycle seen in one thread is still a finding
    identity: str = "instance"        # instance | site (merge locks made at one line)
    warn: bool = True                 # a PotentialDeadlockWarning per new cycle, at once
    live: bool = True                 # a deadlock or hang is written to stderr the moment
    #                                   it is found (findings.live_writer), in every mode
    on_hang: str = "report"           # report | exit (end the process, status 3)
    deadlock_confirm: float = 0.5     # seconds a wait-for cycle that a thread outside it
    #                                   could still break (through a Lock, which any thread
    #                                   may release) must stay closed before it is reported;
    #                                   0: report at once (docs/detection.md)
    max_edges: int | None = 200_000   # the lock-order graph's cap (docs/detection.md,
    #                                   "Memory"); None: no cap


_config = Config()
_listeners: list = []


def get() -> Config:
    return _config


def configure(**changes: object) -> Config:
    """Change detection settings; returns the new ``Config``. Unknown names and bad values
    raise ``TypeError``/``ValueError`` naming what is accepted."""
    global _config
    known = {f.name for f in fields(Config)}
    unknown = set(changes) - known
    if unknown:
        raise TypeError(f"configure() got unknown setting(s) {sorted(unknown)}; "
                        f"known: {sorted(known)}")
    new = replace(_config, **changes)  # type: ignore[arg-type]
    if new.on_deadlock not in POLICIES:
        raise ValueError(f"on_deadlock must be one of {POLICIES}, not {new.on_deadlock!r}")
    if new.on_hang not in ("report", "exit"):
        raise ValueError(f"on_hang must be 'report' or 'exit', not {new.on_hang!r}")
    if new.identity not in IDENTITIES:
        raise ValueError(f"identity must be one of {IDENTITIES}, not {new.identity!r}")
    c = new.deadlock_confirm
    if isinstance(c, bool) or not isinstance(c, (int, float)) or math.isnan(c) or c < 0 \
            or math.isinf(c):
        raise ValueError(f"deadlock_confirm must be a finite number of seconds >= 0, "
                         f"not {c!r}")
    new = replace(new, deadlock_confirm=float(c))
    m = new.max_edges
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise ValueError(f"max_edges must be None or an integer >= 1, not {m!r}")
    if new.hang_timeout is not None:
        t = float(new.hang_timeout)  # type: ignore[arg-type]
        if math.isnan(t) or t < 0:
            raise ValueError(f"hang_timeout must be None or >= 0 seconds, not {t!r}")
        new = replace(new, hang_timeout=t or None)
    _config = new
    for cb in list(_listeners):
        cb(new)
    return new


def on_change(callback) -> None:
    _listeners.append(callback)
