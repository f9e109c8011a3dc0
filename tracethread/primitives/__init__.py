"""The traced primitives, one module per family, all built on raw ``_thread``."""

from .barrier import Barrier, BrokenBarrierError
from .condition import Condition
from .event import Event
from .lock import Lock, RLock
from .semaphore import BoundedSemaphore, Semaphore
from .thread import Thread, Timer

__all__ = ["Barrier", "BoundedSemaphore", "BrokenBarrierError", "Condition", "Event", "Lock",
           "RLock", "Semaphore", "Thread", "Timer"]
