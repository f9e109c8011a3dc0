"""install()/uninstall(): put the traced primitives under unmodified programs.

One patch/unpatch pair per target, as the OpenTelemetry instrumentations do: ``install``
records every (module, name, original) it replaced and ``uninstall`` restores exactly those,
and only where the value is still the one it put there. Installing twice or uninstalling
when not installed warns and does nothing.

Known limits (see docs/install.md): objects created before ``install()`` (e.g. ``logging``'s
module lock) stay untraced — ``tracethread.wrap()`` can trace one explicitly; names bound
under another alias (``from threading import Lock as L``) are not found.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from typing import Any, Iterator

from ._core import _raw
from . import primitives as _p

TARGETS = ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event", "Barrier",
           "Timer", "Thread")

_ORIGINALS = {
    "Lock": _raw.StdLock, "RLock": _raw.StdRLock, "Condition": _raw.StdCondition,
    "Semaphore": _raw.StdSemaphore, "BoundedSemaphore": _raw.StdBoundedSemaphore,
    "Event": _raw.StdEvent, "Barrier": _raw.StdBarrier, "Timer": _raw.StdTimer,
    "Thread": _raw.StdThread,
}
_REPLACEMENTS = {name: getattr(_p, name) for name in TARGETS}
# Never touched: the modules the originals live in, and our own.
_SKIP_MODULES = ("threading", "_thread", "tracethread")

_patch_lock = _raw.allocate_lock()
_patched: list[tuple[Any, str, Any, Any]] | None = None  # (module, name, original, ours)


def _patch(module: Any, name: str, original: Any, ours: Any,
           patched: list[tuple[Any, str, Any, Any]]) -> None:
    setattr(module, name, ours)
    patched.append((module, name, original, ours))


def install(**config: Any) -> None:
    """Replace the primitives in ``threading`` (and in modules that bound them earlier with
    ``from threading import Lock``) by tracethread's. Primitives constructed afterwards are
    traced. Keyword arguments go to ``tracethread.configure()``. A second call warns and
    does nothing."""
    global _patched
    if config:
        from ._core.config import configure
        configure(**config)
    with _patch_lock:
        if _patched is not None:
            warnings.warn("tracethread is already installed; install() did nothing",
                          RuntimeWarning, stacklevel=2)
            return
        patched: list[tuple[Any, str, Any, Any]] = []
        for name in TARGETS:
            if getattr(threading, name) is _ORIGINALS[name]:
                _patch(threading, name, _ORIGINALS[name], _REPLACEMENTS[name], patched)
        for modname, module in list(sys.modules.items()):
            if module is None or modname.split(".")[0] in _SKIP_MODULES:
                continue
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for name in TARGETS:
                if namespace.get(name) is _ORIGINALS[name]:
                    _patch(module, name, _ORIGINALS[name], _REPLACEMENTS[name], patched)
        _patched = patched


def uninstall() -> None:
    """Restore exactly what ``install()`` replaced. Warns if not installed."""
    global _patched
    with _patch_lock:
        if _patched is None:
            warnings.warn("tracethread is not installed; uninstall() did nothing",
                          RuntimeWarning, stacklevel=2)
            return
        for module, name, original, ours in reversed(_patched):
            if getattr(module, name, None) is ours:
                setattr(module, name, original)
            else:
                warnings.warn(
                    f"{getattr(module, '__name__', module)}.{name} was changed by someone "
                    "else after tracethread.install(); leaving it as it is",
                    RuntimeWarning, stacklevel=2)
        _patched = None


def is_installed() -> bool:
    return _patched is not None


def patched_names() -> list[str]:
    """``module.name`` for everything the current install replaced."""
    return [f"{getattr(m, '__name__', m)}.{n}" for m, n, _, _ in (_patched or [])]


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """``with tracethread.installed(): ...`` — install for the block, then restore."""
    install()
    try:
        yield
    finally:
        uninstall()
