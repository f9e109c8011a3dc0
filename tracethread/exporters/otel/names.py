"""Every span name, attribute and metric tracethread emits, in one place (docs/otel.md).

Semantic-convention names where they exist; ``tracethread.*`` for the rest.
"""

from ..._core import api as _core

# Spans
SPAN_LOCK_WAIT = "lock.wait"
SPAN_LOCK_HOLD = "lock.hold"
SPAN_CONDITION_WAIT = "condition.wait"
SPAN_EVENT_WAIT = "event.wait"
SPAN_SEMAPHORE_WAIT = "semaphore.wait"
SPAN_BARRIER_WAIT = "barrier.wait"
SPAN_THREAD_JOIN = "thread.join"
SPAN_THREAD_RUN = "thread.run"
SPAN_FINDING = "tracethread.finding"

# Attributes: semantic conventions
THREAD_ID = "thread.id"
THREAD_NAME = "thread.name"
CODE_FUNCTION = "code.function.name"
CODE_FILE = "code.file.path"
CODE_LINE = "code.line.number"
# Attributes: tracethread's own
LOCK_NAME = "tracethread.lock.name"
LOCK_KIND = "tracethread.lock.kind"
LOCK_ID = "tracethread.lock.id"
LOCK_SITE = "tracethread.lock.site"
CONTENDED = "tracethread.contended"
TIMED_OUT = "tracethread.timed_out"
HOLDER_THREAD = "tracethread.holder.thread.name"
BARRIER_INDEX = "tracethread.barrier.index"
BARRIER_PARTIES = "tracethread.barrier.parties"
NOTIFIED = "tracethread.notified"
OPERATION = "tracethread.operation"
FINDING_KIND = "tracethread.finding.kind"
FINDING_FINGERPRINT = "tracethread.finding.fingerprint"
FINDING_CYCLE = "tracethread.finding.cycle"
EVENTS_DROPPED = "tracethread.events_dropped"  # run-span events over the per-run cap
# On a thread.run span made for a thread whose run tracethread did not see begin (the main
# thread, threads started before install() or by _thread): it covers what was seen.
RUN_PARTIAL = "tracethread.run.partial"
FINDING_MESSAGE = "message"  # on a finding event (an exception-like message)

# Metric attributes (bounded: never thread ids)
M_LOCK_NAME = "lock.name"
M_LOCK_KIND = "lock.kind"
M_FINDING_KIND = "kind"
OTHER = "other"
THREADS_METRIC_NAME = "(threads)"  # lock.name of Thread.join metrics: one value for all threads

# Metrics: (name, unit, description)
WAIT_DURATION = ("tracethread.lock.wait.duration", "s",
                 "Time an acquisition of a lock, RLock or semaphore waited, for acquisitions "
                 "that had to wait (attempts that timed out count in tracethread.lock.timeouts)")
HOLD_DURATION = ("tracethread.lock.hold.duration", "s", "Time a lock was held")
CONDITION_WAIT_DURATION = ("tracethread.condition.wait.duration", "s",
                           "Time spent in Condition.wait (and Event.wait)")
BARRIER_WAIT_DURATION = ("tracethread.barrier.wait.duration", "s",
                         "Time spent in Barrier.wait")
ACQUISITIONS = ("tracethread.lock.acquisitions", "{acquisition}", "Successful acquisitions")
CONTENTIONS = ("tracethread.lock.contentions", "{acquisition}",
               "Acquisitions that had to wait")
TIMEOUTS = ("tracethread.lock.timeouts", "{acquisition}", "Timed acquires and waits that "
            "timed out")
NOTIFICATIONS = ("tracethread.condition.notifications", "{notification}",
                 "Threads woken by notify/notify_all/Event.set")
FINDINGS = ("tracethread.deadlock.findings", "{finding}", "Deadlock findings, by kind")
WAITERS = ("tracethread.lock.waiters", "{thread}", "Threads blocked on a primitive now")
CYCLES = ("tracethread.lock_order.cycles", "{cycle}", "Cycles in the lock-order graph")
EDGES = ("tracethread.lock_order.edges", "{edge}", "Edges in the lock-order graph")
THREADS_LIVE = ("tracethread.thread.live", "{thread}", "Live threads")
DROPPED = ("tracethread.records.dropped", "{record}",
           "Records dropped before export (buffer or export queue overflow)")

# Buckets in seconds, 1 µs … 10 s (the SDK's defaults are for milliseconds): the core's,
# which summaries of uncontended holds are counted in.
DURATION_BUCKETS = list(_core.DURATION_BUCKETS)
