/* tracethread._speedups, the optional C extension: what its source files share.
 *
 * Optional: without it (not built, or TRACETHREAD_PURE_PYTHON=1) tracethread runs the same
 * paths in pure Python. The C paths cover the common cases only and call back into the
 * Python classes for every other one, so behaviour and records are defined in Python.
 *
 * One extension module, tracethread._speedups, compiled from these files (setup.py lists
 * them). The directory is not called `_speedups/`: a directory of the module's own name
 * would be imported as an (empty) namespace package wherever the extension is not built,
 * instead of the ImportError that selects the pure-Python paths.
 *
 *   _speedups.h   this file: the summary counter layout, the object structs, the globals
 *                 (extern), small inline helpers, and the functions one file calls in another
 *   module.c      the module: method table, init (types, constants, interned strings), the
 *                 configuration the Python side calls (configure, set_*), every global's
 *                 definition
 *   record.c      records: the thread's state, sequence numbers, the record tuple (emit,
 *                 record), now_ns
 *   lock.c        LockCore/RLockCore, the C bases of tracethread.Lock/RLock: the
 *                 uncontended acquire and release
 *   condition.c   CondCore, the C base of tracethread.Condition: `with`, the lock protocol,
 *                 wait and notify, over tracethread's own locks
 *   summary.c     summaries: the counters of uncontended operations (on the C types; bump()
 *                 for the Python-level primitives), _tt_take's tuple, take_summaries()
 *   info.c        PrimitiveInfo (the C type), make_info() (name and creation site),
 *                 rlock_for_condition(), untrack()
 *
 * Everything runs holding the GIL, which protects the globals: they are set by module_exec
 * and the configuration functions, and read everywhere.
 */
#ifndef TRACETHREAD_SPEEDUPS_H
#define TRACETHREAD_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#include <time.h>

/* Only PyInit__speedups is exported (PyMODINIT_FUNC says so); what the files share stays
 * inside the shared object, as it did when they were one file of static functions. */
#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility push(hidden)
#endif

/* ------------------------------------------------------------------------------------ */
/* The summary counters of one primitive: the layout `_tt_take()` returns, `bump(prim, st,
 * index)` indexes and take_summaries() adds up (tracethread/_core/summaries.py, A_ACQUIRES
 * ... A_POLLS, the same indices; the module exports A_NOTIFIES and COUNTER_FIELDS, the
 * names below in slot order, for it to check).
 *
 * X(NAME, name, kind): slot A_<NAME>, called "name" in COUNTER_FIELDS (the Python
 * constant's name, lowercase, without A_). Kinds:
 *   COUNT  operations of one kind; a summary adds them up across its primitives
 *   HOLD   the uncontended holds that ended: releases, and the held time's total, minimum
 *          and maximum (ns); a summary merges them as holds (group_add)
 *   OBJ    not a count: the histogram's bucket counts and bucket sums, and the threads,
 *          each a tuple in a taken summary (in an array of counts the slot is unused, 0)
 */
#define COUNTER_LAYOUT(X)                      \
    X(ACQUIRES,       acquires,       COUNT)   \
    X(REENTRIES,      reentries,      COUNT)   \
    X(RELEASES,       releases,       HOLD)    \
    X(INNER_RELEASES, inner_releases, COUNT)   \
    X(HOLD_SUM,       hold_sum,       HOLD)    \
    X(HOLD_MIN,       hold_min,       HOLD)    \
    X(HOLD_MAX,       hold_max,       HOLD)    \
    X(BUCKETS,        buckets,        OBJ)     \
    X(BUCKET_SUMS,    bucket_sums,    OBJ)     \
    X(THREADS,        threads,        OBJ)     \
    X(NOTIFIES,       notifies,       COUNT)   \
    X(FAILURES,       failures,       COUNT)   \
    X(SEM_RELEASES,   sem_releases,   COUNT)   \
    X(SETS,           sets,           COUNT)   \
    X(CLEARS,         clears,         COUNT)   \
    X(POLLS,          polls,          COUNT)   \
    X(WAKEUPS,        wakeups,        COUNT)   \
    X(WOKEN,          woken,          COUNT)

/* A_<NAME>: the slot's index; N_COUNTERS: how many slots (the length of an array of
 * counts). */
#define COUNTER_INDEX_(NAME, name, kind) A_##NAME,
enum { COUNTER_LAYOUT(COUNTER_INDEX_) N_COUNTERS };
#undef COUNTER_INDEX_

/* A Python-level primitive's counters list (`_agg`) has the slots above and one more: the
 * last thread that counted (summaries.py's A_LAST; its thread set stays None until a
 * second thread counts). */
#define A_LAST N_COUNTERS
#define A_LEN (A_LAST + 1)

/* Per kind: its Py_BuildValue code; whether it is an object slot; the slot's index and a
 * comma if summaries add it up (COUNTER_SUMMED_<kind>(i)), else nothing. */
#define COUNTER_FMT_COUNT "L"
#define COUNTER_FMT_HOLD "L"
#define COUNTER_FMT_OBJ "N"
#define COUNTER_IS_OBJ_COUNT 0
#define COUNTER_IS_OBJ_HOLD 0
#define COUNTER_IS_OBJ_OBJ 1
#define COUNTER_SUMMED_COUNT(i) i,
#define COUNTER_SUMMED_HOLD(i)
#define COUNTER_SUMMED_OBJ(i)

/* The Py_BuildValue format of a taken summary's counts (now "(LLLLLLLNNNLLLLLLLL)"). */
#define COUNTER_FMT_(NAME, name, kind) COUNTER_FMT_##kind
#define COUNTER_FORMAT "(" COUNTER_LAYOUT(COUNTER_FMT_) ")"

/* The object slots, a bit per slot (module_exec checks N_COUNTERS < 32 when compiled). */
#define COUNTER_OBJ_BIT_(NAME, name, kind) | ((unsigned long)COUNTER_IS_OBJ_##kind << A_##NAME)
#define COUNTER_OBJ_SLOTS (0UL COUNTER_LAYOUT(COUNTER_OBJ_BIT_))

/* Is slot i (0 <= i <= A_LAST) an object slot (not a count)? */
static inline int
counter_is_obj(Py_ssize_t i)
{
    return (int)((COUNTER_OBJ_SLOTS >> i) & 1);
}

/* ------------------------------------------------------------------------------------ */
/* Objects */

#define MAX_BOUNDS 32   /* histogram boundaries at most (set_aggregation) */

/* The threads that took part in a summary: the last one, one other, and a set of all from
 * the third on (a Future's lock is used by two threads: no set per Future). All NULL:
 * nothing since the take. */
typedef struct {
    PyObject *last, *other, *threads;
} Seen;

/* One layout for both types; RLockCore calls its raw lock `_block` (as _PyRLock does). */
typedef struct {
    PyObject_HEAD
    PyObject *lock;        /* _thread.lock */
    PyObject *info;        /* PrimitiveInfo */
    PyObject *owner;       /* ThreadState or None */
    long long acquired_ns;
    long long count;       /* RLock recursion level */
    PyObject *waiting;     /* list of ThreadState */
    PyObject *weakreflist;
    /* Summary counters since the last take; `dirty`: the lock is listed in cfg_dirty. */
    int dirty;
    long long acquires, reentries, releases, inner_releases;
    long long hold_sum, hold_min, hold_max;
    long long buckets[MAX_BOUNDS + 1], bucket_sums[MAX_BOUNDS + 1];
    int bucket_lo, bucket_hi;   /* the buckets written since the take (if releases) */
    Seen seen;
} LockCore;

typedef LockCore RLockCore;

/* A Condition (condition.c): its lock, and its summary counters inline, in the counter
 * layout (no holds), rather than in an `_agg` list made per drain. */
typedef struct {
    PyObject_HEAD
    PyObject *lock;
    int dirty;
    long long c[N_COUNTERS];
    Seen seen;
} CondCore;

/* A C PrimitiveInfo (info.c). */
typedef struct {
    PyObject_HEAD
    PyObject *id, *kind, *name, *site;
    PyObject *weakreflist;
} PInfo;

/* ------------------------------------------------------------------------------------ */
/* Globals, defined in module.c. */

/* Set by configure() (tracethread/_core/_native.py). */
extern PyObject *cfg_tls;                 /* _thread._local holding .st */
extern PyObject *cfg_new_state;           /* callable creating the thread's state */
extern PyObject *cfg_append;              /* buffer.append (also set_append) */
extern PyObject *cfg_lock_acquire;        /* op names */
extern PyObject *cfg_lock_release;
extern PyObject *cfg_rlock_acquire;
extern PyObject *cfg_rlock_release;
extern PyObject *cfg_fast_details;        /* details of a default blocking acquire */
extern PyObject *cfg_reenter_details;
extern PyObject *cfg_on_acquire;          /* detect.on_acquire(st, prim, bounded) */
extern PyObject *cfg_released_elsewhere;  /* detect.released_elsewhere(owner, prim, st) */
extern PyObject *cfg_known;               /* set of (src_info, dst_info) already known */
extern PyObject *cfg_capture_context;     /* stream.capture_context */
extern PyObject *cfg_caller_site;         /* records.caller_site */
extern PyObject *cfg_condition_notify;    /* op names */
extern PyObject *cfg_condition_notify_all;
extern PyObject *cfg_condition_wait;

/* Set by set_lock_classes(): the classes whose fast paths CondCore may call, and the raw
 * lock maker (rlock_for_condition, and acquire()'s argument errors). */
extern PyObject *cfg_lock_cls, *cfg_rlock_cls, *cfg_allocate_lock;
extern PyObject *cfg_threading_file, *cfg_refuse_lock_args;   /* Lock() in C */

/* Set by set_thread_state_type(): ThreadState's `guard` and `held` are __slots__, read at
 * their offsets (what the member descriptor does, without the attribute lookup that finds
 * it), for objects of exactly that type. */
extern PyTypeObject *tstate_type;
extern Py_ssize_t off_guard, off_held, off_held_sites;

/* Set by set_detection() (configure(detection=...)): with detection off, a lock taken
 * while others are held is not looked up in the known edges, nor given to
 * detect.on_acquire, until the held list is longer than HELD_CHECK_OFF (on_acquire then
 * takes off it the locks nobody can release any more, _forget_orphans). */
extern int detection_on;
#define HELD_CHECK_OFF 16

/* Set by set_aggregation(). Aggregation (see tracethread/_core/summaries.py): while every
 * sink accepts summaries, the uncontended fast paths add to counters on the primitive
 * instead of appending a record each; the drainer takes them (`_tt_take`) from the
 * primitives listed in `cfg_dirty`. */
extern int agg_on;
/* Summaries are counted (a sink takes them). With agg_on and no sink at all, agg_counting
 * is 0: an uncontended operation records nothing, not even a count (issue 20). */
extern int agg_counting;
/* Count one operation on the summary path: `stmt` adds it to the counters and the
 * primitive is listed as dirty; nothing while no sink takes summaries. 0, or -1 with an
 * exception set. */
#define AGG(self, st, stmt) AGG_IF(agg_counting, self, st, stmt)
/* The same, with the counting flag read once before (a Python call in between may let
 * another thread add or remove a sink: the operation's clock and its count then agree). */
#define AGG_IF(counting, self, st, stmt) \
    ((counting) ? ((void)(stmt), agg_touch((self), (st))) : 0)
/* Is any sink attached? With none (the summary path on and nothing counted), no record
 * is made at all, nor what only a record carries (a call site, the OTel context): nobody
 * would read it, and a sink added later starts from that moment (docs/records.md, "No
 * sink"). emit_record() (emit() is one) and record() check it. */
#define SINKS() (agg_counting || !agg_on)
/* Will anybody read the time of this operation? Not while no sink is attached: an
 * uncontended acquire and release then skip the clock. */
#define TIMED() SINKS()
extern PyObject *cfg_dirty;               /* list of primitives with counters to take */
extern double agg_bounds[MAX_BOUNDS];     /* histogram boundaries, seconds, increasing */
extern int agg_nbounds;

/* Set by set_site_cache() and set_site_type() (make_info, PrimitiveInfo). */
extern PyObject *cfg_pkg_dir, *cfg_site_cache, *cfg_getframe;
extern PyObject *cfg_site_fallback;       /* records.caller_site_and_label */
extern PyObject *cfg_site_type;           /* records.Site */

/* Made by module_exec. */
extern PyTypeObject *LockCore_Type, *RLockCore_Type, *CondCore_Type, *PInfo_Type;
extern PyObject *pinfo_restore_func;      /* the module's _pinfo_restore */
extern PyObject *raw_acquire_descr, *raw_release_descr, *raw_locked_descr;  /* LockType's */
extern PyObject *one, *minus_one;
extern PyObject *contended_details;       /* (True,): another thread was waiting */
/* Interned attribute and method names. */
extern PyObject *str_st, *str_guard, *str_acquire, *str_release, *str_acquire_slow;
extern PyObject *str_acquire_py, *str_tstate_key, *str_held, *str_info, *str_agg;
extern PyObject *str_enter, *str_exit, *str_is_owned, *str_waiters, *str_notify_py,
    *str_notify_all_py;
extern PyObject *str_release_save_py, *str_acquire_restore_py, *str_remove;
extern PyObject *str_append, *str_wait_py, *str_waiting, *str_wait_since, *str_wait_bounded;
extern PyObject *str_release_save, *str_acquire_restore, *str_default_release_save,
    *str_default_acquire_restore, *str_default_is_owned;
extern PyObject *str_kind, *str_name, *str_id, *str_rlock_kind, *str_lock_kind;

/* ------------------------------------------------------------------------------------ */
/* Inline helpers */

static inline long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int
configured(void)
{
    if (cfg_append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tracethread._speedups is not configured");
        return 0;
    }
    return 1;
}

/* st.held, or st.<name> at `off`: a new reference, or NULL with an exception set. */
static inline PyObject *
st_get(PyObject *st, Py_ssize_t off, PyObject *name)
{
    if (off >= 0 && Py_TYPE(st) == tstate_type) {
        PyObject *v = *(PyObject **)((char *)st + off);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(st, name);
}

/* 1 if guarded, 0 if not, -1 on error. */
static inline int
is_guarded(PyObject *st)
{
    if (off_guard >= 0 && Py_TYPE(st) == tstate_type) {
        PyObject *v = *(PyObject **)((char *)st + off_guard);
        if (v == Py_False)
            return 0;
        if (v == Py_True)
            return 1;
    }
    PyObject *g = PyObject_GetAttr(st, str_guard);
    if (g == NULL)
        return -1;
    int r = PyObject_IsTrue(g);
    Py_DECREF(g);
    return r;
}

/* The layout of a `_thread.lock` object on CPython 3.10 to 3.13.0 at least
 * (Modules/_threadmodule.c, `lockobject`; measured: RAW_DIRECT is 1 on 3.10.13, 3.11.7 and
 * 3.13.0). module_exec checks it against a real lock (raw_direct_check, module.c): where
 * it holds, the fast paths try-acquire and release a raw lock as its own methods do, on
 * the PyThread lock, keeping `locked` in step, without a method call and its argument
 * parsing (a third of an uncontended `with lock:`'s overhead; issue 20). Where it does not
 * (a later CPython keeping a PyMutex there fails the size check), they call the lock's
 * methods. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} RawLockLayout;
extern int raw_direct;                   /* the layout above was checked and holds */
extern PyTypeObject *raw_lock_type;      /* _thread.LockType */

/* Try-acquire the raw lock: 1 acquired, 0 not, -1 error. */
static inline int
raw_try_acquire(PyObject *raw)
{
    if (raw_direct && Py_IS_TYPE(raw, raw_lock_type)) {
        RawLockLayout *l = (RawLockLayout *)raw;
        if (PyThread_acquire_lock_timed(l->lock_lock, 0, 0) != PY_LOCK_ACQUIRED)
            return 0;
        l->locked = 1;
        return 1;
    }
    PyObject *args[2] = {raw, Py_False};
    PyObject *r = PyObject_Vectorcall(raw_acquire_descr, args, 2, NULL);
    if (r == NULL)
        return -1;
    int ok = (r == Py_True);
    Py_DECREF(r);
    return ok;
}

static inline int
raw_release(PyObject *raw)
{
    if (raw_direct && Py_IS_TYPE(raw, raw_lock_type)) {
        RawLockLayout *l = (RawLockLayout *)raw;
        if (!l->locked) {   /* (the lock's own error) */
            PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
            return -1;
        }
        l->locked = 0;
        PyThread_release_lock(l->lock_lock);
        return 0;
    }
    PyObject *args[1] = {raw};
    PyObject *r = PyObject_Vectorcall(raw_release_descr, args, 1, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* What each file offers the others (module functions: see module.c's method table). */

/* record.c */
PyObject *thread_state(void);
int emit(PyObject *op, PyObject *info, PyObject *st, long long tns, long long held_ns,
         PyObject *site, PyObject *details);
int emit_record(PyObject *op, PyObject *info, PyObject *st, long long t0, long long t1, int ok,
                int blocked, long long held_ns, PyObject *site, PyObject *details);
PyObject *next_seq(PyObject *module, PyObject *Py_UNUSED(ignored));
PyObject *py_now_ns(PyObject *module, PyObject *Py_UNUSED(ignored));
PyObject *py_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* lock.c */
extern PyType_Spec LockCore_spec, RLockCore_spec;
int parse_acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                       PyObject **blocking, PyObject **timeout, int *defaults);
PyObject *lock_acquire_impl(LockCore *self, PyObject *blocking, PyObject *timeout,
                            int defaults);
PyObject *lock_release_impl(LockCore *self);
PyObject *rlock_acquire_impl(RLockCore *self, PyObject *blocking, PyObject *timeout,
                             int defaults);
PyObject *rlock_release_impl(RLockCore *self);
PyObject *RLockCore_is_owned(RLockCore *self, PyObject *Py_UNUSED(ignored));
PyObject *rlock_release_save_impl(RLockCore *self);
PyObject *rlock_acquire_restore_impl(RLockCore *self, PyObject *state);

/* condition.c */
extern PyType_Spec CondCore_spec;
int cond_count(CondCore *self, PyObject *st, Py_ssize_t index, long long n);

/* summary.c */
int seen_traverse(Seen *s, visitproc visit, void *arg);
void seen_clear(Seen *s);
int summary_touch(PyObject *prim, int *dirty, Seen *seen, PyObject *st);
int agg_touch(LockCore *self, PyObject *st);
void agg_hold(LockCore *self, long long held_ns);
void counters_reset(LockCore *self);
void lock_counts(LockCore *l, long long c[N_COUNTERS]);
PyObject *take_tuple(const long long *c, const long long *buckets, const long long *sums,
                     Seen *seen);
PyObject *py_bump(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *py_bump_hold(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *take_summaries(PyObject *module, PyObject *prims);

/* info.c */
extern PyType_Spec PInfo_spec;
PyObject *pinfo_restore(PyObject *module, PyObject *args);
PyObject *make_info(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *make_info_at(PyObject *kind, PyObject *name, long depth);
PyObject *site_here(void);
PyObject *rlock_for_condition(PyObject *module, PyObject *info);
PyObject *py_untrack(PyObject *module, PyObject *obj);

#if defined(__GNUC__) && !defined(_WIN32)
#pragma GCC visibility pop
#endif

#endif /* TRACETHREAD_SPEEDUPS_H */
