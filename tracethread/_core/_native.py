"""The one place that wires the C module (``tracethread._speedups``) to the core: what its
fast paths call back into (the thread-local and state factory, the record buffer's
``append``, detection's entry points and known-edge set, context capture) and the record
kinds they write. Imported last by ``_core/__init__``: it is the top of the core's imports.
Without the C module it does nothing (the pure-Python paths call the core directly).
"""

from __future__ import annotations

from . import config as _config
from . import detect as _detect
from . import records as _r
from . import state as _state
from . import stream as _stream
from ._accel import speedups
from .records import ThreadState

if speedups is not None:
    speedups.configure(tls=_state.tls(), new_state=_state.new_state,
                       append=_stream.append_now(),
                       lock_acquire=_r.LOCK_ACQUIRE, lock_release=_r.LOCK_RELEASE,
                       rlock_acquire=_r.RLOCK_ACQUIRE, rlock_release=_r.RLOCK_RELEASE,
                       fast_details=_r.D_FAST_ACQUIRE, reenter_details=_r.D_REENTER,
                       on_acquire=_detect.on_acquire,
                       released_elsewhere=_detect.released_elsewhere, known=_detect.known,
                       capture_context=lambda: _stream.capture_context(),
                       caller_site=_r.caller_site,
                       condition_notify=_r.CONDITION_NOTIFY,
                       condition_notify_all=_r.CONDITION_NOTIFY_ALL,
                       condition_wait=_r.CONDITION_WAIT)
    speedups.set_thread_state_type(ThreadState)
    speedups.set_detection(_config.get().detection)
    _config.on_change(lambda cfg: speedups.set_detection(cfg.detection))
    _stream.on_buffer_change(speedups.set_append)
