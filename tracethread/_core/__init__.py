"""The core: per-thread state, the record stream and its sinks, detection.

It knows nothing of the layers above it (``primitives/``, ``exporters/``): primitives call
into it, exporters are sinks attached to it and use ``api``. Its modules import only
downward (tests/test_core_imports.py walks them), bottom to top:

    _raw, _accel, config, lockorder, errors    leaves
    records                                     data: PrimitiveInfo, ThreadState, Record
    state                                       each thread's state, the live-state registry
    summaries                                   counters standing in for plain operations
    stream                                      the record buffer, sinks, draining
    findings                                    findings, their publication, ending the process
    detect                                      lock-order and wait-for checks
    watchdog                                    hangs
    forking, _native                            fork hooks; the C module's wiring
    api                                         the API for the layers above
"""

from .records import (  # noqa: F401 - re-exported
    ALL_OPS, PrimitiveInfo, Record, Site, ThreadInfo, ThreadState, caller_site,
)
from .state import current_state, guarded, is_guarded  # noqa: F401 - re-exported
from .errors import stats  # noqa: F401 - re-exported
from .stream import (  # noqa: F401 - re-exported
    Sink, add_sink, flush, remove_sink, set_buffer_size, sinks,
)
from . import _native  # noqa: F401,E402 - wires the C module (if built)
from . import forking  # noqa: F401,E402 - registers the core's fork hooks
