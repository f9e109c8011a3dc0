"""The core: per-thread state, the record stream and its sinks.

It knows nothing of the layers above it (``primitives/``, ``exporters/``): primitives call
into it, exporters are sinks attached to it.
"""

from .records import (  # noqa: F401 - re-exported
    ALL_OPS, PrimitiveInfo, Record, Site, ThreadInfo, ThreadState, caller_site,
)
from .recorder import (  # noqa: F401 - re-exported
    Sink, add_sink, current_state, flush, guarded, is_guarded, remove_sink, set_buffer_size,
    sinks, stats,
)
from . import forking  # noqa: F401,E402 - registers the core's fork hooks
