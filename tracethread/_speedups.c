/* tracethread._speedups: the uncontended Lock/RLock paths in C.
 *
 * Optional: tracethread/primitives/lock.py has the same fast paths in pure Python and uses
 * them when this module is missing (or TRACETHREAD_PURE_PYTHON=1). Only the paths that never
 * wait live here; every other case (contention, arguments other than the defaults, the
 * tracer's own guarded code) calls back into the Python class, so behaviour and records are
 * defined in one place, in Python. The raw lock is the `_thread.lock` object the Python side
 * also uses, so both paths operate on the same lock.
 *
 * Each fast path: read the thread's state from the core's thread-local, check its guard,
 * try-acquire the raw lock, take a CLOCK_MONOTONIC timestamp (the clock of
 * time.monotonic_ns), and append one record tuple to the buffer (layout: see
 * tracethread/_core/records.py, materialize()).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#include "frameobject.h"
#include <time.h>

static long long seq_counter = 0;   /* protected by the GIL */

/* Configuration, set by configure() from the Python side. */
static PyObject *cfg_tls = NULL;          /* _thread._local holding .st */
static PyObject *cfg_new_state = NULL;    /* callable creating the thread's state */
static PyObject *cfg_append = NULL;       /* buffer.append */
static PyObject *cfg_lock_acquire = NULL; /* op names */
static PyObject *cfg_lock_release = NULL;
static PyObject *cfg_rlock_acquire = NULL;
static PyObject *cfg_rlock_release = NULL;
static PyObject *cfg_fast_details = NULL; /* details of a default blocking acquire */
static PyObject *cfg_reenter_details = NULL;
static PyObject *cfg_on_acquire = NULL;      /* detect.on_acquire(st, prim, bounded) */
static PyObject *cfg_released_elsewhere = NULL; /* detect.released_elsewhere(owner, prim, st) */
static PyObject *cfg_known = NULL;           /* set of (src_info, dst_info) already known */
static PyTypeObject *LockCore_Type = NULL, *RLockCore_Type = NULL;

/* Aggregation (see tracethread/_core/recorder.py, "Summaries"): while every sink accepts
 * summaries, the uncontended fast paths add to counters on the lock instead of appending a
 * record each; the drainer takes them (`_tt_take`) from the locks listed in `cfg_dirty`. */
#define MAX_BOUNDS 32
static int agg_on = 0;
static PyObject *cfg_dirty = NULL;        /* list of locks with counters to take */
static double agg_bounds[MAX_BOUNDS];     /* histogram boundaries, seconds, increasing */
static int agg_nbounds = 0;
static PyObject *str_held, *str_info;
static PyObject *str_agg, *one;

/* One layout for both types; RLockCore calls its raw lock `_block` (as _PyRLock does). */
/* The threads that took part in a summary: the last one, one other, and a set of all from
 * the third on (a Future's lock is used by two threads: no set per Future). All NULL:
 * nothing since the take. */
typedef struct {
    PyObject *last, *other, *threads;
} Seen;

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

static PyObject *str_st, *str_guard, *str_acquire, *str_release, *str_acquire_slow;
static PyObject *str_acquire_py, *str_tstate_key;
static PyObject *raw_acquire_descr = NULL, *raw_release_descr = NULL;

static inline long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The thread's state object (new reference), or NULL with an exception set. */
static PyObject *
thread_state(void)
{
    /* The per-thread dict of the interpreter's thread state: one lookup, and it is
     * cleared with the thread, so a reused ident never sees a dead thread's state. It
     * caches the same object the Python side keeps in the core's thread-local. */
    PyObject *tdict = PyThreadState_GetDict();
    if (tdict != NULL) {
        PyObject *st = PyDict_GetItemWithError(tdict, str_tstate_key);
        if (st != NULL) {
            Py_INCREF(st);
            return st;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    PyObject *st = PyObject_GetAttr(cfg_tls, str_st);
    if (st == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        st = PyObject_CallNoArgs(cfg_new_state);
        if (st == NULL)
            return NULL;
    }
    if (tdict != NULL && PyDict_SetItem(tdict, str_tstate_key, st) < 0) {
        Py_DECREF(st);
        return NULL;
    }
    return st;
}

/* ThreadState's `guard` and `held` are __slots__: read them at their offsets (what the
 * member descriptor does, without the attribute lookup that finds it), for objects of
 * exactly that type; set by set_thread_state_type(). */
static PyTypeObject *tstate_type = NULL;
static Py_ssize_t off_guard = -1, off_held = -1;

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

/* Try-acquire the raw lock: 1 acquired, 0 not, -1 error. */
static inline int
raw_try_acquire(PyObject *raw)
{
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
    PyObject *args[1] = {raw};
    PyObject *r = PyObject_Vectorcall(raw_release_descr, args, 1, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* A blocking acquire of `self` succeeded: lock-order bookkeeping, then onto the thread's
 * held list. Edges already known (taken before without a timeout) cost a set lookup. */
static int
note_acquired(PyObject *st, PyObject *self, PyObject *info)
{
    PyObject *held = st_get(st, off_held, str_held);
    if (held == NULL)
        return -1;
    if (!PyList_Check(held)) {
        Py_DECREF(held);
        PyErr_SetString(PyExc_TypeError, "thread state's held is not a list");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(held);
    int need_python = 0;
    for (Py_ssize_t i = 0; i < n && !need_python; i++) {
        PyObject *h = PyList_GET_ITEM(held, i);
        if (h == self)
            continue;
        PyObject *hinfo;   /* strong */
        if (Py_IS_TYPE(h, LockCore_Type) || Py_IS_TYPE(h, RLockCore_Type) ||
            PyObject_TypeCheck(h, LockCore_Type) || PyObject_TypeCheck(h, RLockCore_Type)) {
            hinfo = Py_NewRef(((LockCore *)h)->info);
        } else {
            /* A Semaphore used as a mutex, a wrapped lock: its info, if it has one. */
            hinfo = PyObject_GetAttr(h, str_info);
            if (hinfo == NULL) {
                PyErr_Clear();
                need_python = 1;
                break;
            }
        }
        PyObject *key = PyTuple_Pack(2, hinfo, info);
        Py_DECREF(hinfo);
        if (key == NULL) {
            Py_DECREF(held);
            return -1;
        }
        int has = PySet_Contains(cfg_known, key);
        Py_DECREF(key);
        if (has < 0) {
            Py_DECREF(held);
            return -1;
        }
        if (!has)
            need_python = 1;
    }
    if (need_python) {
        PyObject *args[3] = {st, self, Py_False};
        PyObject *r = PyObject_Vectorcall(cfg_on_acquire, args, 3, NULL);
        if (r == NULL) {
            Py_DECREF(held);
            return -1;
        }
        Py_DECREF(r);
    }
    int rc = PyList_Append(held, self);
    Py_DECREF(held);
    return rc;
}

/* `self` was released by `st`; take it off its owner's held list. */
static int
note_released(PyObject *owner, PyObject *self, PyObject *st)
{
    if (owner == NULL || owner == Py_None)
        return 0;
    PyObject *held = st_get(owner, off_held, str_held);
    if (held == NULL)
        return -1;
    Py_ssize_t n = PyList_Check(held) ? PyList_GET_SIZE(held) : 0;
    int rc;
    if (owner == st && n > 0 && PyList_GET_ITEM(held, n - 1) == self) {
        rc = PyList_SetSlice(held, n - 1, n, NULL);
    } else {
        PyObject *args[3] = {owner, self, st};
        PyObject *r = PyObject_Vectorcall(cfg_released_elsewhere, args, 3, NULL);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_DECREF(held);
    return rc;
}

/* Append (seq, op, info, st, t, t, True, False, held, None, details). held < 0: None. */
static int
emit(PyObject *op, PyObject *info, PyObject *st, long long tns, long long held_ns,
     PyObject *details)
{
    PyObject *t = PyLong_FromLongLong(tns);
    if (t == NULL)
        return -1;
    PyObject *held = NULL;
    if (held_ns >= 0) {
        held = PyLong_FromLongLong(held_ns);
        if (held == NULL) {
            Py_DECREF(t);
            return -1;
        }
    }
    PyObject *tuple = PyTuple_New(11);
    if (tuple == NULL) {
        Py_DECREF(t);
        Py_XDECREF(held);
        return -1;
    }
    PyObject *seq = PyLong_FromLongLong(++seq_counter);
    if (seq == NULL) {
        Py_DECREF(tuple);
        Py_DECREF(t);
        Py_XDECREF(held);
        return -1;
    }
    PyTuple_SET_ITEM(tuple, 0, seq);
    Py_INCREF(op); PyTuple_SET_ITEM(tuple, 1, op);
    Py_INCREF(info); PyTuple_SET_ITEM(tuple, 2, info);
    Py_INCREF(st); PyTuple_SET_ITEM(tuple, 3, st);
    PyTuple_SET_ITEM(tuple, 4, t);   /* steals */
    Py_INCREF(t); PyTuple_SET_ITEM(tuple, 5, t);
    Py_INCREF(Py_True); PyTuple_SET_ITEM(tuple, 6, Py_True);
    Py_INCREF(Py_False); PyTuple_SET_ITEM(tuple, 7, Py_False);
    if (held == NULL) { Py_INCREF(Py_None); held = Py_None; }
    PyTuple_SET_ITEM(tuple, 8, held);
    Py_INCREF(Py_None); PyTuple_SET_ITEM(tuple, 9, Py_None);
    Py_INCREF(details); PyTuple_SET_ITEM(tuple, 10, details);
    /* Nothing a record holds refers back to it, so it can never be part of a cycle: keep
     * it away from the garbage collector, which would otherwise walk the whole buffer. */
    PyObject_GC_UnTrack(tuple);
    PyObject *r = PyObject_Vectorcall(cfg_append, &tuple, 1, NULL);
    Py_DECREF(tuple);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
configured(void)
{
    if (cfg_append == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tracethread._speedups is not configured");
        return 0;
    }
    return 1;
}

/* Note `st` among the threads seen. 0, or -1 with an exception set. */
static int
seen_add(Seen *s, PyObject *st)
{
    if (s->last == st)
        return 0;
    if (s->threads != NULL) {
        if (PySet_Add(s->threads, st) < 0)
            return -1;
    } else if (s->last != NULL) {
        if (s->other == NULL || s->other == st) {
            /* Two threads: the last one becomes the other. */
            PyObject *prev = s->last;
            s->last = Py_NewRef(st);
            Py_XSETREF(s->other, prev);
            return 0;
        }
        /* A third thread: a set of them all. */
        if ((s->threads = PySet_New(NULL)) == NULL || PySet_Add(s->threads, s->last) < 0 ||
            PySet_Add(s->threads, s->other) < 0 || PySet_Add(s->threads, st) < 0)
            return -1;
    }
    Py_INCREF(st);
    Py_XSETREF(s->last, st);
    return 0;
}

/* The threads seen, as a tuple (NULL with an exception set), and start anew. */
static PyObject *
seen_take(Seen *s)
{
    PyObject *t;
    if (s->threads != NULL)
        t = PySequence_Tuple(s->threads);
    else if (s->other != NULL)
        t = PyTuple_Pack(2, s->other, s->last);
    else if (s->last != NULL)
        t = PyTuple_Pack(1, s->last);
    else
        t = PyTuple_New(0);
    if (t == NULL)
        return NULL;
    Py_CLEAR(s->threads);
    Py_CLEAR(s->other);
    Py_CLEAR(s->last);
    return t;
}

static int
seen_traverse(Seen *s, visitproc visit, void *arg)
{
    Py_VISIT(s->last);
    Py_VISIT(s->other);
    Py_VISIT(s->threads);
    return 0;
}

static void
seen_clear(Seen *s)
{
    Py_CLEAR(s->last);
    Py_CLEAR(s->other);
    Py_CLEAR(s->threads);
}

/* Every item of `items` added to `set`. 0, or -1 with an exception set. */
static int
set_add_all(PyObject *set, PyObject *items)
{
    PyObject *it = PyObject_GetIter(items), *t;
    if (it == NULL)
        return -1;
    int r = 0;
    while (r == 0 && (t = PyIter_Next(it)) != NULL) {
        r = PySet_Add(set, t);
        Py_DECREF(t);
    }
    Py_DECREF(it);
    return r < 0 || PyErr_Occurred() ? -1 : 0;
}

/* The threads seen added to `set`, and start anew: no tuple per primitive for the drain.
 * 0, or -1 with an exception set. */
static int
seen_take_into(Seen *s, PyObject *set)
{
    int r = 0;
    if (s->threads != NULL)
        r = set_add_all(set, s->threads);
    else {
        if (s->other != NULL)
            r = PySet_Add(set, s->other);
        if (r == 0 && s->last != NULL)
            r = PySet_Add(set, s->last);
    }
    seen_clear(s);
    return r;
}

/* `st` did an operation on `prim` (a C lock or Condition) that goes into its summary:
 * list it as dirty (its `dirty` flag) and remember the thread. 0, or -1 with an exception
 * set. */
static int
summary_touch(PyObject *prim, int *dirty, Seen *seen, PyObject *st)
{
    if (!*dirty) {
        if (PyList_Append(cfg_dirty, prim) < 0)
            return -1;
        *dirty = 1;
    }
    return seen_add(seen, st);
}

static int
agg_touch(LockCore *self, PyObject *st)
{
    return summary_touch((PyObject *)self, &self->dirty, &self->seen, st);
}

/* An uncontended hold of `held_ns` ended. The bucket is the one the OpenTelemetry SDK
 * would choose for held_ns / 1e9 (bisect_left over the boundaries). */
static void
agg_hold(LockCore *self, long long held_ns)
{
    double v = (double)held_ns / 1e9;
    int lo = 0, hi = agg_nbounds;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (agg_bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!self->releases || lo < self->bucket_lo)
        self->bucket_lo = lo;
    if (!self->releases || lo > self->bucket_hi)
        self->bucket_hi = lo;
    self->releases++;
    self->hold_sum += held_ns;
    if (self->releases == 1 || held_ns < self->hold_min)
        self->hold_min = held_ns;
    if (held_ns > self->hold_max)
        self->hold_max = held_ns;
    self->buckets[lo]++;
    self->bucket_sums[lo] += held_ns;
}

/* Start new counts (after a take; the thread set and last thread are the caller's). */
static void
counters_reset(LockCore *self)
{
    self->acquires = self->reentries = self->inner_releases = 0;
    if (self->releases) {   /* (the buckets are only written with a release: agg_hold) */
        size_t k = (size_t)(self->bucket_hi - self->bucket_lo + 1) * sizeof(long long);
        memset(self->buckets + self->bucket_lo, 0, k);
        memset(self->bucket_sums + self->bucket_lo, 0, k);
    }
    self->releases = 0;
    self->hold_sum = self->hold_min = self->hold_max = 0;
}

/* A lock's counters in the `bump` layout (0-6; the others are not a lock's: 0). */
static void
lock_counts(LockCore *l, long long c[16])
{
    memset(c, 0, sizeof(long long) * 16);
    c[0] = l->acquires; c[1] = l->reentries; c[2] = l->releases;
    c[3] = l->inner_releases; c[4] = l->hold_sum;
    c[5] = l->releases ? l->hold_min : 0; c[6] = l->hold_max;
}

/* The `_tt_take` tuple: counters c (bump layout), bucket counts and sums (NULL: zeros),
 * and the threads seen (taken from `seen`). NULL with an exception set. */
static PyObject *
take_tuple(const long long *c, const long long *buckets, const long long *sums, Seen *seen)
{
    int nb = agg_nbounds + 1;
    PyObject *bt = PyTuple_New(nb), *st = PyTuple_New(nb), *threads = NULL;
    if (bt == NULL || st == NULL)
        goto error;
    for (int i = 0; i < nb; i++) {
        PyObject *v = PyLong_FromLongLong(buckets ? buckets[i] : 0);
        if (v == NULL)
            goto error;
        PyTuple_SET_ITEM(bt, i, v);
        v = PyLong_FromLongLong(sums ? sums[i] : 0);
        if (v == NULL)
            goto error;
        PyTuple_SET_ITEM(st, i, v);
    }
    threads = seen_take(seen);
    if (threads == NULL)
        goto error;
    /* N: the tuples move into the result (consumed even if it fails) */
    return Py_BuildValue("(LLLLLLLNNNLLLLLL)", c[0], c[1], c[2], c[3], c[4],
                         c[2] ? c[5] : 0, c[6], bt, st, threads, c[10], c[11], c[12], c[13],
                         c[14], c[15]);
error:
    Py_XDECREF(bt);
    Py_XDECREF(st);
    Py_XDECREF(threads);
    return NULL;
}

/* _tt_take(): the summary since the last take, and start a new one; None if nothing. */
static PyObject *
LockCore_take(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    self->dirty = 0;
    if (self->seen.last == NULL) {
        Py_RETURN_NONE;
    }
    long long c[16];
    lock_counts(self, c);
    PyObject *r = take_tuple(c, self->buckets, self->bucket_sums, &self->seen);
    if (r != NULL)
        counters_reset(self);
    return r;
}

/* ------------------------------------------------------------------------------------ */
/* LockCore: fields shared with the Python subclass (tracethread.Lock).                 */


static int
LockCore_traverse(LockCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->lock);
    Py_VISIT(self->info);
    Py_VISIT(self->owner);
    Py_VISIT(self->waiting);
    return seen_traverse(&self->seen, visit, arg);
}

static int
LockCore_clear(LockCore *self)
{
    Py_CLEAR(self->lock);
    Py_CLEAR(self->info);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->waiting);
    seen_clear(&self->seen);
    return 0;
}

static void
LockCore_dealloc(LockCore *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    LockCore_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* Fallback to the Python implementation: self._acquire_slow(st, blocking, timeout, op) */
static PyObject *
call_slow_acquire(PyObject *self, PyObject *st, PyObject *blocking, PyObject *timeout,
                  PyObject *op)
{
    PyObject *args[5] = {self, st, blocking, timeout, op};
    return PyObject_VectorcallMethod(str_acquire_slow, args,
                                     5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *cfg_allocate_lock;   /* _thread.allocate_lock (set_lock_classes) */

/* An acquire() call whose arguments do not bind (too many, an unknown or a repeated
 * keyword): raise the stdlib's own error for it, on this interpreter (3.11 says "'foo' is
 * an invalid keyword argument for acquire()", 3.13 "acquire() got an unexpected keyword
 * argument 'foo'"), by giving the same arguments to a fresh raw lock's acquire. (Were the
 * raw lock to take them, which it does not, the lock is dropped and an error of ours
 * stands.) Returns -1. */
static int
acquire_args_error(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (cfg_allocate_lock != NULL) {
        PyObject *probe = PyObject_CallNoArgs(cfg_allocate_lock);
        if (probe == NULL)
            return -1;
        PyObject *meth = PyObject_GetAttr(probe, str_acquire);
        PyObject *r = meth ? PyObject_Vectorcall(meth, args, nargs, kwnames) : NULL;
        Py_XDECREF(meth);
        Py_DECREF(probe);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 arguments (%zd given)",
                 nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0));
    return -1;
}

static int
parse_acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                   PyObject **blocking, PyObject **timeout, int *defaults)
{
    *blocking = Py_True;
    *timeout = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 2 || nargs > 2)
        return acquire_args_error(args, nargs, kwnames);
    if (nargs >= 1) *blocking = args[0];
    if (nargs >= 2) *timeout = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject *value = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(name, "blocking") == 0 && nargs < 1) {
            *blocking = value;
        } else if (PyUnicode_CompareWithASCIIString(name, "timeout") == 0 && nargs < 2) {
            *timeout = value;
        } else {
            return acquire_args_error(args, nargs, kwnames);
        }
    }
    /* The fast path applies only to blocking=True, timeout=-1 (or not given). Any other
     * values go to the Python paths, which have a raw lock check them (its errors). */
    if (*blocking != Py_True)
        *defaults = 0;
    else if (*timeout == NULL)
        *defaults = 1;
    else if (PyLong_CheckExact(*timeout)) {
        int overflow;
        *defaults = PyLong_AsLongAndOverflow(*timeout, &overflow) == -1 && !overflow;
        if (PyErr_Occurred())
            return -1;
    } else
        *defaults = 0;
    return 0;
}

static PyObject *minus_one = NULL;
static PyObject *contended_details = NULL;  /* (True,): another thread was waiting */

static PyObject *cfg_capture_context = NULL;  /* recorder.capture_context */

/* Details of a release (new reference): None, or (True, otel context) when another thread
 * was waiting: a contended hold, whose span joins the holder's trace. */
static PyObject *
release_details(LockCore *self)
{
    if (!(self->waiting && PyList_Check(self->waiting) &&
          PyList_GET_SIZE(self->waiting) > 0)) {
        Py_INCREF(Py_None);
        return Py_None;
    }
    if (cfg_capture_context == NULL) {
        Py_INCREF(contended_details);
        return contended_details;
    }
    PyObject *ctx = PyObject_CallNoArgs(cfg_capture_context);
    if (ctx == NULL)
        return NULL;
    PyObject *d = PyTuple_Pack(2, Py_True, ctx);
    Py_DECREF(ctx);
    return d;
}

static PyObject *
lock_acquire_impl(LockCore *self, PyObject *blocking, PyObject *timeout, int defaults)
{
    if (!configured())
        return NULL;
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    PyObject *result = NULL;
    int g = is_guarded(st);
    if (g < 0)
        goto done;
    if (g == 0 && defaults) {
        int got = raw_try_acquire(self->lock);
        if (got < 0)
            goto done;
        if (got) {
            long long t = now_ns();
            if (note_acquired(st, (PyObject *)self, self->info) < 0)
                goto done;
            Py_INCREF(st);
            Py_XSETREF(self->owner, st);
            self->acquired_ns = t;
            int e;
            if (agg_on) {
                self->acquires++;
                e = agg_touch(self, st);
            } else {
                e = emit(cfg_lock_acquire, self->info, st, t, -1, cfg_fast_details);
            }
            if (e < 0)
                goto done;
            Py_INCREF(Py_True);
            result = Py_True;
            goto done;
        }
    }
    if (g) {
        PyObject *args[3] = {self->lock, blocking, timeout ? timeout : minus_one};
        result = PyObject_VectorcallMethod(str_acquire, args,
                                           3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        goto done;
    }
    result = call_slow_acquire((PyObject *)self, st, blocking, timeout ? timeout : minus_one,
                               cfg_lock_acquire);
done:
    Py_DECREF(st);
    return result;
}

static PyObject *
LockCore_acquire(LockCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *blocking, *timeout;
    int defaults;
    if (parse_acquire_args(args, nargs, kwnames, &blocking, &timeout, &defaults) < 0)
        return NULL;
    return lock_acquire_impl(self, blocking, timeout, defaults);
}

static PyObject *
LockCore_enter(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return lock_acquire_impl(self, Py_True, NULL, 1);
}

static PyObject *
lock_release_impl(LockCore *self)
{
    if (!configured())
        return NULL;
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    PyObject *result = NULL;
    int g = is_guarded(st);
    if (g < 0)
        goto done;
    if (g) {
        if (raw_release(self->lock) < 0)
            goto done;
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    long long t = now_ns();
    long long acquired = self->acquired_ns;
    PyObject *details = release_details(self);
    if (details == NULL)
        goto done;
    int summarize = agg_on && details == Py_None;   /* nobody waited: uncontended */
    PyObject *owner = self->owner;   /* reference moves to us */
    Py_INCREF(Py_None);
    self->owner = Py_None;
    if (raw_release(self->lock) < 0) {
        Py_XSETREF(self->owner, owner);
        Py_DECREF(details);
        goto done;
    }
    int nr = note_released(owner, (PyObject *)self, st);
    Py_XDECREF(owner);
    if (nr < 0) {
        Py_DECREF(details);
        goto done;
    }
    int e;
    if (summarize) {
        agg_hold(self, t - acquired);
        e = agg_touch(self, st);
    } else {
        e = emit(cfg_lock_release, self->info, st, t, t - acquired, details);
    }
    Py_DECREF(details);
    if (e < 0)
        goto done;
    Py_INCREF(Py_None);
    result = Py_None;
done:
    Py_DECREF(st);
    return result;
}

static PyObject *
LockCore_release(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return lock_release_impl(self);
}

static PyObject *
LockCore_exit(LockCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    return lock_release_impl(self);
}

static PyMethodDef LockCore_methods[] = {
    {"_tt_take", (PyCFunction)LockCore_take, METH_NOARGS,
     "The summary of aggregated operations since the last take, or None."},
    {"acquire", (PyCFunction)(void (*)(void))LockCore_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\nAcquire the lock (recorded)."},
    {"__enter__", (PyCFunction)LockCore_enter, METH_NOARGS, "Acquire the lock (recorded)."},
    {"release", (PyCFunction)LockCore_release, METH_NOARGS,
     "release($self, /)\n--\n\nRelease the lock (recorded)."},
    {"__exit__", (PyCFunction)(void (*)(void))LockCore_exit, METH_FASTCALL,
     "Release the lock (recorded)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef LockCore_members[] = {
    {"_lock", T_OBJECT_EX, offsetof(LockCore, lock), 0, NULL},
    {"_info", T_OBJECT_EX, offsetof(LockCore, info), 0, NULL},
    {"_owner", T_OBJECT, offsetof(LockCore, owner), 0, NULL},
    {"_acquired_ns", T_LONGLONG, offsetof(LockCore, acquired_ns), 0, NULL},
    {"_waiting", T_OBJECT_EX, offsetof(LockCore, waiting), 0, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(LockCore, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot LockCore_slots[] = {
    {Py_tp_dealloc, LockCore_dealloc},
    {Py_tp_traverse, LockCore_traverse},
    {Py_tp_clear, LockCore_clear},
    {Py_tp_methods, LockCore_methods},
    {Py_tp_members, LockCore_members},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_doc, "C fast paths of tracethread.Lock."},
    {0, NULL},
};

static PyType_Spec LockCore_spec = {
    .name = "tracethread._speedups.LockCore",
    .basicsize = sizeof(LockCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = LockCore_slots,
};

/* ------------------------------------------------------------------------------------ */
/* RLockCore */

static PyObject *
rlock_acquire_impl(RLockCore *self, PyObject *blocking, PyObject *timeout, int defaults)
{
    if (!configured())
        return NULL;
    if (!defaults) {
        /* Anything but the defaults: the Python implementation (argument checks first). */
        PyObject *args[3] = {(PyObject *)self, blocking, timeout ? timeout : minus_one};
        return PyObject_VectorcallMethod(str_acquire_py, args,
                                         3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    PyObject *result = NULL;
    int g = is_guarded(st);
    if (g < 0)
        goto done;
    if (self->owner == st) {
        self->count += 1;
        if (!g) {
            int e;
            if (agg_on) {
                self->reentries++;
                e = agg_touch(self, st);
            } else {
                e = emit(cfg_rlock_acquire, self->info, st, now_ns(), -1, cfg_reenter_details);
            }
            if (e < 0)
                goto done;
        }
        Py_INCREF(Py_True);
        result = Py_True;
        goto done;
    }
    if (!g) {
        int got = raw_try_acquire(self->lock);
        if (got < 0)
            goto done;
        if (got) {
            long long t = now_ns();
            if (note_acquired(st, (PyObject *)self, self->info) < 0)
                goto done;
            Py_INCREF(st);
            Py_XSETREF(self->owner, st);
            self->count = 1;
            self->acquired_ns = t;
            int e;
            if (agg_on) {
                self->acquires++;
                e = agg_touch(self, st);
            } else {
                e = emit(cfg_rlock_acquire, self->info, st, t, -1, cfg_fast_details);
            }
            if (e < 0)
                goto done;
            Py_INCREF(Py_True);
            result = Py_True;
            goto done;
        }
    }
    {
        PyObject *args[3] = {(PyObject *)self, blocking, minus_one};
        result = PyObject_VectorcallMethod(str_acquire_py, args,
                                           3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
done:
    Py_DECREF(st);
    return result;
}

static PyObject *
RLockCore_acquire(RLockCore *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    PyObject *blocking, *timeout;
    int defaults;
    if (parse_acquire_args(args, nargs, kwnames, &blocking, &timeout, &defaults) < 0)
        return NULL;
    return rlock_acquire_impl(self, blocking, timeout, defaults);
}

static PyObject *
RLockCore_enter(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    return rlock_acquire_impl(self, Py_True, NULL, 1);
}

static PyObject *
rlock_release_impl(RLockCore *self)
{
    if (!configured())
        return NULL;
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    PyObject *result = NULL;
    if (self->owner != st) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        goto done;
    }
    int g = is_guarded(st);
    if (g < 0)
        goto done;
    long long count = --self->count;
    if (g) {
        if (count == 0) {
            Py_INCREF(Py_None);
            Py_XSETREF(self->owner, Py_None);
            if (raw_release(self->lock) < 0)
                goto done;
        }
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    long long t = now_ns();
    long long held = -1;
    PyObject *details;
    if (count == 0) {
        details = release_details(self);
        if (details == NULL)
            goto done;
    } else {
        Py_INCREF(Py_None);
        details = Py_None;
    }
    if (count == 0) {
        long long acquired = self->acquired_ns;
        Py_INCREF(Py_None);
        Py_XSETREF(self->owner, Py_None);
        if (raw_release(self->lock) < 0 || note_released(st, (PyObject *)self, st) < 0) {
            Py_DECREF(details);
            goto done;
        }
        held = t - acquired;
    }
    int e;
    if (agg_on && details == Py_None) {   /* an inner release, or nobody waited */
        if (held < 0)
            self->inner_releases++;
        else
            agg_hold(self, held);
        e = agg_touch(self, st);
    } else {
        e = emit(cfg_rlock_release, self->info, st, t, held, details);
    }
    Py_DECREF(details);
    if (e < 0)
        goto done;
    Py_INCREF(Py_None);
    result = Py_None;
done:
    Py_DECREF(st);
    return result;
}

static PyObject *
RLockCore_release(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    return rlock_release_impl(self);
}

static PyObject *
RLockCore_exit(RLockCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    return rlock_release_impl(self);
}

/* _is_owned(): does the calling thread own it (Condition.notify/wait ask, every time)? */
static PyObject *
RLockCore_is_owned(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int owned = self->owner == st;
    Py_DECREF(st);
    return PyBool_FromLong(owned);
}

static PyMethodDef RLockCore_methods[] = {
    {"_is_owned", (PyCFunction)RLockCore_is_owned, METH_NOARGS,
     "Is it owned by the calling thread?"},
    {"_tt_take", (PyCFunction)LockCore_take, METH_NOARGS,
     "The summary of aggregated operations since the last take, or None."},
    {"acquire", (PyCFunction)(void (*)(void))RLockCore_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\nAcquire the lock (recorded)."},
    {"__enter__", (PyCFunction)RLockCore_enter, METH_NOARGS, "Acquire the lock (recorded)."},
    {"release", (PyCFunction)RLockCore_release, METH_NOARGS,
     "release($self, /)\n--\n\nRelease the lock (recorded)."},
    {"__exit__", (PyCFunction)(void (*)(void))RLockCore_exit, METH_FASTCALL,
     "Release the lock (recorded)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef RLockCore_members[] = {
    {"_block", T_OBJECT_EX, offsetof(RLockCore, lock), 0, NULL},
    {"_info", T_OBJECT_EX, offsetof(RLockCore, info), 0, NULL},
    {"_owner", T_OBJECT, offsetof(RLockCore, owner), 0, NULL},
    {"_count", T_LONGLONG, offsetof(RLockCore, count), 0, NULL},
    {"_acquired_ns", T_LONGLONG, offsetof(RLockCore, acquired_ns), 0, NULL},
    {"_waiting", T_OBJECT_EX, offsetof(RLockCore, waiting), 0, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(RLockCore, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot RLockCore_slots[] = {
    {Py_tp_dealloc, LockCore_dealloc},
    {Py_tp_traverse, LockCore_traverse},
    {Py_tp_clear, LockCore_clear},
    {Py_tp_methods, RLockCore_methods},
    {Py_tp_members, RLockCore_members},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_doc, "C fast paths of tracethread.RLock."},
    {0, NULL},
};

static PyType_Spec RLockCore_spec = {
    .name = "tracethread._speedups.RLockCore",
    .basicsize = sizeof(RLockCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = RLockCore_slots,
};

/* ------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------ */
/* CondCore: `with condition:` without a Python frame. The stdlib's Condition.__enter__ is
 * Python code calling its lock's __enter__; when the lock is tracethread's own Lock or
 * RLock (exactly those classes: a subclass may override), this goes straight to the lock's
 * C fast path. Any other lock: its own __enter__/__exit__, as the stdlib calls them. */

/* A Condition over tracethread's own Lock or RLock (exactly: every Future's) stores none
 * of the lock protocol (acquire, release, _release_save, _acquire_restore, _is_owned) as
 * bound methods, as the stdlib's does: the methods below go to the lock's C paths (five
 * objects fewer per Condition, and no instance __dict__). Over any other lock, the
 * Condition's __init__ stores the lock's methods in the instance __dict__, which comes
 * first, and where the lock has no such method these run the class's `_default_*`
 * one, as the stdlib's class methods. Summary counters are inline, in the `bump` layout
 * (no holds), rather than in an `_agg` list made per drain. */
typedef struct {
    PyObject_HEAD
    PyObject *lock;
    int dirty;
    long long c[16];
    Seen seen;
} CondCore;

static PyTypeObject *CondCore_Type = NULL;
static PyObject *cfg_lock_cls = NULL, *cfg_rlock_cls = NULL, *cfg_allocate_lock = NULL;
static PyObject *str_enter, *str_exit;

/* The Condition's lock and what it is: OWN_LOCK / OWN_RLOCK (tracethread's own, exactly:
 * their C paths are called directly), OTHER_LOCK, or -1 (none, AttributeError set). */
enum { OTHER_LOCK, OWN_LOCK, OWN_RLOCK };

static int
cond_lock(CondCore *self, PyObject **lock)
{
    *lock = self->lock;
    if (*lock == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_lock");
        return -1;
    }
    PyObject *t = (PyObject *)Py_TYPE(*lock);
    return t == cfg_lock_cls ? OWN_LOCK : t == cfg_rlock_cls ? OWN_RLOCK : OTHER_LOCK;
}

static PyObject *
own_acquire(int kind, PyObject *lock, PyObject *blocking, PyObject *timeout, int defaults)
{
    if (kind == OWN_LOCK)
        return lock_acquire_impl((LockCore *)lock, blocking, timeout, defaults);
    return rlock_acquire_impl((RLockCore *)lock, blocking, timeout, defaults);
}

static PyObject *
own_release(int kind, PyObject *lock)
{
    if (kind == OWN_LOCK)
        return lock_release_impl((LockCore *)lock);
    return rlock_release_impl((RLockCore *)lock);
}

/* lock.<name>(*args, **kw) of another lock. */
static PyObject *
call_lock_method(PyObject *lock, PyObject *name, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    PyObject *meth = PyObject_GetAttr(lock, name);
    if (meth == NULL)
        return NULL;
    PyObject *r = PyObject_Vectorcall(meth, args, nargs, kwnames);
    Py_DECREF(meth);
    return r;
}

static PyObject *
CondCore_enter(CondCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    if (kind != OTHER_LOCK)
        return own_acquire(kind, lock, Py_True, NULL, 1);
    return PyObject_CallMethodNoArgs(lock, str_enter);
}

static PyObject *
CondCore_exit(CondCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    if (kind != OTHER_LOCK)
        return own_release(kind, lock);
    return call_lock_method(lock, str_exit, args, nargs, NULL);
}

static int
CondCore_traverse(CondCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->lock);
    return seen_traverse(&self->seen, visit, arg);
}

static int
CondCore_clear(CondCore *self)
{
    Py_CLEAR(self->lock);
    seen_clear(&self->seen);
    return 0;
}

static PyObject *str_release_save, *str_acquire_restore, *str_default_release_save,
    *str_default_acquire_restore, *str_default_is_owned, *raw_locked_descr;

static PyObject *
CondCore_acquire(CondCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *lock, *blocking, *timeout;
    int defaults, kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    if (kind == OTHER_LOCK)
        return call_lock_method(lock, str_acquire, args, nargs, kwnames);
    if (parse_acquire_args(args, nargs, kwnames, &blocking, &timeout, &defaults) < 0)
        return NULL;
    return own_acquire(kind, lock, blocking, timeout, defaults);
}

static PyObject *
CondCore_release(CondCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    /* Arguments (there are none to give): the lock's own release() refuses them, as the
     * stdlib's Condition.release, which is the lock's, does. */
    if (kind == OTHER_LOCK || nargs || kwnames)
        return call_lock_method(lock, str_release, args, nargs, kwnames);
    return own_release(kind, lock);
}

static PyObject *
CondCore_release_save(CondCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    if (kind == OWN_RLOCK)
        return PyObject_CallMethodNoArgs(lock, str_release_save);
    return PyObject_CallMethodNoArgs((PyObject *)self, str_default_release_save);
}

static PyObject *
CondCore_acquire_restore(CondCore *self, PyObject *state)
{
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    if (kind == OWN_RLOCK)
        return PyObject_CallMethodOneArg(lock, str_acquire_restore, state);
    return PyObject_CallMethodOneArg((PyObject *)self, str_default_acquire_restore, state);
}

static PyObject *RLockCore_is_owned(RLockCore *self, PyObject *Py_UNUSED(ignored));

static PyObject *
CondCore_is_owned(CondCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    if (kind == OWN_RLOCK)
        return RLockCore_is_owned((RLockCore *)lock, NULL);
    if (kind == OWN_LOCK) {  /* the stdlib's try-acquire probe's answer, unrecorded */
        PyObject *raw = ((LockCore *)lock)->lock;
        if (raw == NULL) {
            PyErr_SetString(PyExc_AttributeError, "_lock");
            return NULL;
        }
        return PyObject_CallOneArg(raw_locked_descr, raw);
    }
    return PyObject_CallMethodNoArgs((PyObject *)self, str_default_is_owned);
}

/* Count one operation (index in the bump layout) by `st`: 0, or -1 with an exception. */
static int
cond_count(CondCore *self, PyObject *st, Py_ssize_t index)
{
    if (summary_touch((PyObject *)self, &self->dirty, &self->seen, st) < 0)
        return -1;
    self->c[index]++;
    return 0;
}

/* _tt_take(): the counters since the last take, in the `_tt_take` layout, and start new
 * ones; None if nothing. */
static PyObject *
CondCore_take(CondCore *self, PyObject *Py_UNUSED(ignored))
{
    self->dirty = 0;
    if (self->seen.last == NULL)
        Py_RETURN_NONE;
    PyObject *r = take_tuple(self->c, NULL, NULL, &self->seen);
    if (r != NULL)
        memset(self->c, 0, sizeof(self->c));
    return r;
}

static void
CondCore_dealloc(CondCore *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    CondCore_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *py_bump(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
static PyObject *str_is_owned, *str_waiters, *str_notify_py, *str_notify_all_py;
/* Counter index of a notify that woke nobody: recorder.A_NOTIFIES (checked at import). */
#define A_NOTIFIES 10

/* notify(n=1) / notify_all(): the common case — the caller owns the lock, nobody waits,
 * summaries are on — counted here; everything else (waking threads, recording, errors) in
 * the Python methods `_notify_py` / `_notify_all_py`. */
static PyObject *
cond_notify(CondCore *self, PyObject *n, int all)
{
    PyObject *me = (PyObject *)self;
    PyObject *r = PyObject_CallMethodNoArgs(me, str_is_owned);
    if (r == NULL)
        return NULL;
    int owned = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (owned < 0)
        return NULL;
    Py_ssize_t waiting = 1;
    if (owned && agg_on) {
        PyObject *waiters = PyObject_GetAttr(me, str_waiters);
        if (waiters == NULL)
            return NULL;
        waiting = PyObject_Length(waiters);
        Py_DECREF(waiters);
        if (waiting < 0)
            return NULL;
    }
    if (!owned || waiting) {
        if (all)
            return PyObject_CallMethodNoArgs(me, str_notify_all_py);
        return PyObject_CallMethodOneArg(me, str_notify_py, n);
    }
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int g = is_guarded(st);
    PyObject *res = NULL;
    if (g == 0) {
        if (cfg_dirty == NULL)
            PyErr_SetString(PyExc_RuntimeError, "notify(): aggregation was never set up");
        else if (cond_count(self, st, A_NOTIFIES) == 0)
            res = Py_NewRef(Py_None);
    } else if (g > 0) {
        res = Py_NewRef(Py_None);
    }
    Py_DECREF(st);
    return res;
}

static PyObject *
CondCore_notify(CondCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const kw[] = {"n", NULL};
    PyObject *n = NULL;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError, "notify() takes at most 1 argument (%zd given)",
                     nargs + nkw);
        return NULL;
    }
    if (nargs == 1)
        n = args[0];
    else if (nkw == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), kw[0]) != 0) {
            PyErr_Format(PyExc_TypeError, "notify() got an unexpected keyword argument '%U'",
                         PyTuple_GET_ITEM(kwnames, 0));
            return NULL;
        }
        n = args[0];
    }
    if (n == NULL) {
        n = one;
    }
    return cond_notify(self, n, 0);
}

static PyObject *
CondCore_notify_all(CondCore *self, PyObject *Py_UNUSED(ignored))
{
    return cond_notify(self, NULL, 1);
}

static PyMethodDef CondCore_methods[] = {
    /* Called by Condition.notify/notify_all (Python, for the stdlib's signatures). */
    {"_c_notify", (PyCFunction)(void (*)(void))CondCore_notify, METH_FASTCALL | METH_KEYWORDS,
     "notify(n=1), the common case in C."},
    {"_c_notify_all", (PyCFunction)CondCore_notify_all, METH_NOARGS,
     "notify_all(), the common case in C."},
    {"_tt_take", (PyCFunction)CondCore_take, METH_NOARGS,
     "The summary counters since the last take (and start new ones), or None."},
    {"acquire", (PyCFunction)(void (*)(void))CondCore_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\nThe lock's acquire()."},
    {"release", (PyCFunction)(void (*)(void))CondCore_release, METH_FASTCALL | METH_KEYWORDS,
     "release($self, /)\n--\n\nThe lock's release()."},
    {"_release_save", (PyCFunction)CondCore_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)CondCore_acquire_restore, METH_O, NULL},
    {"_is_owned", (PyCFunction)CondCore_is_owned, METH_NOARGS, NULL},
    {"__enter__", (PyCFunction)CondCore_enter, METH_NOARGS, "Acquire the lock."},
    {"__exit__", (PyCFunction)(void (*)(void))CondCore_exit, METH_FASTCALL,
     "Release the lock."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef CondCore_members[] = {
    {"_lock", T_OBJECT_EX, offsetof(CondCore, lock), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot CondCore_slots[] = {
    {Py_tp_dealloc, CondCore_dealloc},
    {Py_tp_traverse, CondCore_traverse},
    {Py_tp_clear, CondCore_clear},
    {Py_tp_methods, CondCore_methods},
    {Py_tp_members, CondCore_members},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_doc, "C base of tracethread.Condition: the lock protocol over tracethread's own "
                "Lock/RLock, notify when nobody waits, summary counters."},
    {0, NULL},
};

static PyType_Spec CondCore_spec = {
    .name = "tracethread._speedups.CondCore",
    .basicsize = sizeof(CondCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = CondCore_slots,
};

/* set_lock_classes(Lock, RLock): the classes whose fast paths CondCore may call. */
static PyObject *
set_lock_classes(PyObject *module, PyObject *args)
{
    PyObject *l, *r, *alloc;
    if (!PyArg_ParseTuple(args, "O!O!O:set_lock_classes", &PyType_Type, &l, &PyType_Type, &r,
                          &alloc))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)l, LockCore_Type) ||
        !PyType_IsSubtype((PyTypeObject *)r, RLockCore_Type)) {
        PyErr_SetString(PyExc_TypeError, "set_lock_classes(): not LockCore/RLockCore types");
        return NULL;
    }
    Py_INCREF(l);
    Py_XSETREF(cfg_lock_cls, l);
    Py_INCREF(r);
    Py_XSETREF(cfg_rlock_cls, r);
    Py_INCREF(alloc);
    Py_XSETREF(cfg_allocate_lock, alloc);
    Py_RETURN_NONE;
}

static PyObject *
next_seq(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(++seq_counter);
}

static PyObject *
py_now_ns(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(now_ns());
}

/* record(op, info, st, t0, ok, blocked, held, site, details): append one record whose end
 * is now (and whose start is t0, or now when t0 is None). The Python paths' one call per
 * record: sequence number, timestamp, tuple and append in C. */
static PyObject *
py_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "record() takes exactly 9 arguments");
        return NULL;
    }
    if (!configured())
        return NULL;
    PyObject *t1 = PyLong_FromLongLong(now_ns());
    if (t1 == NULL)
        return NULL;
    PyObject *t0 = args[3] == Py_None ? t1 : args[3];
    PyObject *tuple = PyTuple_New(11);
    PyObject *seq = tuple ? PyLong_FromLongLong(++seq_counter) : NULL;
    if (seq == NULL) {
        Py_XDECREF(tuple);
        Py_DECREF(t1);
        return NULL;
    }
    PyTuple_SET_ITEM(tuple, 0, seq);
    PyObject *items[10] = {args[0], args[1], args[2], t0, t1, args[4], args[5], args[6],
                           args[7], args[8]};
    for (int i = 0; i < 10; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(tuple, i + 1, items[i]);
    }
    Py_DECREF(t1);
    PyObject_GC_UnTrack(tuple);
    PyObject *r = PyObject_Vectorcall(cfg_append, &tuple, 1, NULL);
    Py_DECREF(tuple);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"tls", "new_state", "append", "lock_acquire", "lock_release",
                             "rlock_acquire", "rlock_release", "fast_details",
                             "reenter_details", "on_acquire", "released_elsewhere", "known",
                             "capture_context", NULL};
    PyObject *tls, *new_state, *append, *la, *lr, *ra, *rr, *fd, *rd, *oa, *re, *kn, *cc;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOOOOO:configure", kwlist, &tls,
                                     &new_state, &append, &la, &lr, &ra, &rr, &fd, &rd,
                                     &oa, &re, &kn, &cc))
        return NULL;
    if (!PySet_Check(kn)) {
        PyErr_SetString(PyExc_TypeError, "known must be a set");
        return NULL;
    }
#define SET(var, val) do { Py_INCREF(val); Py_XSETREF(var, val); } while (0)
    SET(cfg_tls, tls);
    SET(cfg_new_state, new_state);
    SET(cfg_append, append);
    SET(cfg_lock_acquire, la);
    SET(cfg_lock_release, lr);
    SET(cfg_rlock_acquire, ra);
    SET(cfg_rlock_release, rr);
    SET(cfg_fast_details, fd);
    SET(cfg_reenter_details, rd);
    SET(cfg_on_acquire, oa);
    SET(cfg_released_elsewhere, re);
    SET(cfg_known, kn);
    SET(cfg_capture_context, cc);
#undef SET
    Py_RETURN_NONE;
}

static PyObject *
set_append(PyObject *module, PyObject *append)
{
    Py_INCREF(append);
    Py_XSETREF(cfg_append, append);
    Py_RETURN_NONE;
}

/* The offset of a T_OBJECT_EX slot `name` of `type`, or -1. */
static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *d = PyObject_GetAttrString(type, name);
    if (d == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
            off = m->offset;
    }
    Py_DECREF(d);
    return off;
}

/* set_thread_state_type(type): read ThreadState's guard and held slots directly. */
static PyObject *
set_thread_state_type(PyObject *module, PyObject *type)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "a type is required");
        return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(tstate_type, (PyTypeObject *)type);
    off_guard = slot_offset(type, "guard");
    off_held = slot_offset(type, "held");
    return Py_BuildValue("(nn)", off_guard, off_held);
}

/* set_aggregation(on, dirty, bounds): turn summaries on or off; `dirty` is the list the
 * locks with counters are appended to, `bounds` the histogram boundaries in seconds. */
static PyObject *
set_aggregation(PyObject *module, PyObject *args)
{
    int on;
    PyObject *dirty, *bounds;
    if (!PyArg_ParseTuple(args, "pO!O:set_aggregation", &on, &PyList_Type, &dirty, &bounds))
        return NULL;
    PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_BOUNDS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d bounds", MAX_BOUNDS);
        return NULL;
    }
    double b[MAX_BOUNDS];
    for (Py_ssize_t i = 0; i < n; i++) {
        b[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (b[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    memcpy(agg_bounds, b, sizeof(double) * n);
    agg_nbounds = (int)n;
    Py_INCREF(dirty);
    Py_XSETREF(cfg_dirty, dirty);
    agg_on = on;
    Py_RETURN_NONE;
}

/* The counters list of a Python-level primitive (Condition, Semaphore, Event), the layout
 * of tracethread/_core/recorder.py: 7 ints, bucket counts, bucket sums (lists, or None:
 * no holds), thread set (None while one thread counted), 6 ints, the last thread. */
#define A_THREADS 9
#define A_LAST 16
#define A_LEN 17


static PyObject *
new_counters(void)
{
    PyObject *a = PyList_New(A_LEN);
    if (a == NULL)
        return NULL;
    for (int i = 0; i < A_LEN; i++) {
        PyObject *v;
        if (i == 7 || i == 8 || i == A_THREADS || i == A_LAST) {
            /* No holds (these primitives have none): no bucket lists; no thread set until
             * a second thread counts. */
            v = Py_NewRef(Py_None);
        } else {
            v = PyLong_FromLong(0);
        }
        if (v == NULL) {
            Py_DECREF(a);
            return NULL;
        }
        PyList_SET_ITEM(a, i, v);
    }
    return a;
}

/* bump(prim, st, index): count one operation of a Python-level primitive in its summary:
 * prim._agg[index] += 1, the counters created and prim listed as dirty on first use, st
 * noted among its threads. One C call, so atomic under the GIL: the drainer's take (which
 * swaps prim._agg for None) can never lose a count, as it could between a Python
 * read-modify-write's steps. */
static PyObject *
py_bump(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "bump() takes exactly 3 arguments");
        return NULL;
    }
    PyObject *prim = args[0], *st = args[1];
    Py_ssize_t index = PyLong_AsSsize_t(args[2]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (index < 0 || index >= A_LEN || index == 7 || index == 8 || index == A_THREADS ||
        index == A_LAST) {
        PyErr_SetString(PyExc_ValueError, "bump(): not a counter index");
        return NULL;
    }
    if (cfg_dirty == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bump(): aggregation was never set up");
        return NULL;
    }
    if (PyObject_TypeCheck(prim, CondCore_Type)) {
        if (cond_count((CondCore *)prim, st, index) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *a = PyObject_GetAttr(prim, str_agg);
    if (a == NULL)
        return NULL;
    if (a == Py_None) {
        Py_DECREF(a);
        a = new_counters();
        if (a == NULL)
            return NULL;
        if (PyObject_SetAttr(prim, str_agg, a) < 0 || PyList_Append(cfg_dirty, prim) < 0) {
            Py_DECREF(a);
            return NULL;
        }
    }
    if (!PyList_CheckExact(a) || PyList_GET_SIZE(a) != A_LEN) {
        Py_DECREF(a);
        PyErr_SetString(PyExc_TypeError, "bump(): _agg is not a counters list");
        return NULL;
    }
    PyObject *last = PyList_GET_ITEM(a, A_LAST);
    if (last != st) {
        if (last != Py_None) {
            PyObject *threads = PyList_GET_ITEM(a, A_THREADS);
            if (threads == Py_None) {
                threads = PySet_New(NULL);
                if (threads == NULL || PySet_Add(threads, last) < 0) {
                    Py_XDECREF(threads);
                    Py_DECREF(a);
                    return NULL;
                }
                PyList_SetItem(a, A_THREADS, threads);
            }
            if (PySet_Add(threads, st) < 0) {
                Py_DECREF(a);
                return NULL;
            }
        }
        PyList_SetItem(a, A_LAST, Py_NewRef(st));
    }
    PyObject *old = PyList_GET_ITEM(a, index);
    PyObject *v = PyNumber_Add(old, one);
    if (v == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    PyList_SetItem(a, index, v);   /* steals v, releases old */
    Py_DECREF(a);
    Py_RETURN_NONE;
}

/* take_summaries(prims): take the counters of every listed primitive (C locks, and the
 * `_agg` lists of the Python-level ones) and add them up per (kind, name) of their info.
 * Returns [(info of the first, [instance ids], counts)], counts in the `_tt_take` layout
 * (threads: a tuple). The drain's per-primitive work in one C loop: a Future's Condition
 * and RLock are two primitives per task. */
/* A C PrimitiveInfo (see PrimitiveInfo below). */
typedef struct {
    PyObject_HEAD
    PyObject *id, *kind, *name, *site;
    PyObject *weakreflist;
} PInfo;

typedef struct {
    PyObject *info, *ids, *threads;   /* strong; threads: a set */
    PyObject *kind, *name;            /* strong: the group's key */
    long long c[16];
    long long buckets[MAX_BOUNDS + 1], sums[MAX_BOUNDS + 1];
} Group;

static PyObject *str_kind, *str_name, *str_id;
static PyTypeObject *PInfo_Type = NULL;   /* (the PrimitiveInfo type) */

static int
group_threads_add(Group *g, PyObject *threads, PyObject *last)
{
    if (threads != NULL && threads != Py_None)
        return set_add_all(g->threads, threads);
    if (last != NULL && last != Py_None)
        return PySet_Add(g->threads, last);
    return 0;
}

/* Add one primitive's counts (c, with its buckets b/bs, may be NULL, of which only
 * lo..hi may be other than 0) to g. */
static void
group_add(Group *g, const long long *c, const long long *b, const long long *bs, int lo,
          int hi)
{
    static const int counts[] = {0, 1, 3, 10, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        g->c[counts[i]] += c[counts[i]];
    if (c[2]) {
        if (!g->c[2] || c[5] < g->c[5])
            g->c[5] = c[5];
        g->c[2] += c[2];
        g->c[4] += c[4];
        if (c[6] > g->c[6])
            g->c[6] = c[6];
        if (b != NULL)
            for (int i = lo; i <= hi; i++) {
                g->buckets[i] += b[i];
                g->sums[i] += bs[i];
            }
    }
}

static int
list_to_ll(PyObject *list, long long *out, int n)
{
    if (list == Py_None)
        return 0;
    if (!PyList_Check(list) || PyList_GET_SIZE(list) != n) {
        PyErr_SetString(PyExc_TypeError, "take_summaries(): bad bucket list");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i] = PyLong_AsLongLong(PyList_GET_ITEM(list, i));
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 1;
}

/* kind, name and id of a primitive's info (new references; the fields of a C
 * PrimitiveInfo are read directly). 0, or -1 with an exception set. */
static int
info_key(PyObject *info, PyObject **kind, PyObject **name, PyObject **id)
{
    if (Py_IS_TYPE(info, PInfo_Type)) {
        PInfo *pi = (PInfo *)info;
        *kind = Py_NewRef(pi->kind);
        *name = Py_NewRef(pi->name);
        *id = Py_NewRef(pi->id);
        return 0;
    }
    *kind = PyObject_GetAttr(info, str_kind);
    *name = *kind ? PyObject_GetAttr(info, str_name) : NULL;
    *id = *name ? PyObject_GetAttr(info, str_id) : NULL;
    if (*id == NULL) {
        Py_CLEAR(*kind);
        Py_CLEAR(*name);
        return -1;
    }
    return 0;
}

/* Does (kind, name) equal the key of g (as the index dict's tuple keys compare)?
 * 1, 0, or -1 with an exception set. */
static int
group_is(Group *g, PyObject *kind, PyObject *name)
{
    int r = PyObject_RichCompareBool(kind, g->kind, Py_EQ);
    return r <= 0 ? r : PyObject_RichCompareBool(name, g->name, Py_EQ);
}

/* The group of (kind, name), made if new (index: key tuple -> position). NULL with an
 * exception set on failure. */
static Group *
group_of(PyObject *index, Group **groups, Py_ssize_t *ng, Py_ssize_t *cap, PyObject *info,
         PyObject *kind, PyObject *name)
{
    PyObject *key = PyTuple_Pack(2, kind, name);
    if (key == NULL)
        return NULL;
    Group *g = NULL;
    PyObject *gi = PyDict_GetItemWithError(index, key);
    if (gi != NULL) {
        g = &(*groups)[PyLong_AsSsize_t(gi)];
    } else if (!PyErr_Occurred()) {
        if (*ng == *cap) {
            Py_ssize_t ncap = *cap ? *cap * 2 : 16;
            Group *grown = PyMem_Realloc(*groups, sizeof(Group) * ncap);
            if (grown == NULL) {
                PyErr_NoMemory();
                Py_DECREF(key);
                return NULL;
            }
            *groups = grown;
            *cap = ncap;
        }
        PyObject *pos = PyLong_FromSsize_t(*ng);
        if (pos != NULL && PyDict_SetItem(index, key, pos) == 0) {
            g = &(*groups)[(*ng)++];
            memset(g, 0, sizeof(Group));
            g->info = Py_NewRef(info);
            g->kind = Py_NewRef(kind);
            g->name = Py_NewRef(name);
            g->ids = PyList_New(0);
            g->threads = PySet_New(NULL);
            if (g->ids == NULL || g->threads == NULL)
                g = NULL;
        }
        Py_XDECREF(pos);
    }
    Py_DECREF(key);
    return g;
}

static PyObject *
take_summaries(PyObject *module, PyObject *prims)
{
    if (!PyList_Check(prims)) {
        PyErr_SetString(PyExc_TypeError, "take_summaries() takes a list");
        return NULL;
    }
    int nb = agg_nbounds + 1;
    Py_ssize_t n = PyList_GET_SIZE(prims), ng = 0, cap = 0, recent[2] = {-1, -1};
    Group *groups = NULL;
    PyObject *index = PyDict_New(), *result = NULL;
    if (index == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *prim = PyList_GET_ITEM(prims, k);
        long long c[16] = {0}, b_[MAX_BOUNDS + 1], bs_[MAX_BOUNDS + 1];
        const long long *b = NULL, *bs = NULL;   /* bucket counts and sums, if any */
        int blo = 0, bhi = nb - 1;               /* (those that may be other than 0) */
        /* strong. A C primitive's counters and threads are taken (copied, and the
         * primitive starts anew) before anything that can run Python code — finding the
         * group may, and other threads then count meanwhile; `seen`: its threads, added to
         * the group once found. */
        PyObject *info = NULL, *threads = NULL, *last = NULL;
        Seen taken = {NULL, NULL, NULL}, *seen = NULL;
        if (PyObject_TypeCheck(prim, LockCore_Type) || PyObject_TypeCheck(prim, RLockCore_Type)) {
            LockCore *lk = (LockCore *)prim;
            lk->dirty = 0;
            if (lk->seen.last == NULL)
                continue;
            lock_counts(lk, c);
            if (lk->releases) {   /* only the buckets written since the last take */
                blo = lk->bucket_lo;
                bhi = lk->bucket_hi;
                size_t len = (size_t)(bhi - blo + 1) * sizeof(long long);
                memcpy(b_ + blo, lk->buckets + blo, len);
                memcpy(bs_ + blo, lk->bucket_sums + blo, len);
                b = b_;
                bs = bs_;
            }
            taken = lk->seen;
            memset(&lk->seen, 0, sizeof(Seen));
            seen = &taken;
            counters_reset(lk);
            info = Py_NewRef(lk->info);
        } else if (PyObject_TypeCheck(prim, CondCore_Type)) {
            CondCore *cc = (CondCore *)prim;
            cc->dirty = 0;
            if (cc->seen.last == NULL)
                continue;
            memcpy(c, cc->c, sizeof(c));
            if (!c[2])
                c[5] = 0;
            memset(cc->c, 0, sizeof(cc->c));
            taken = cc->seen;
            memset(&cc->seen, 0, sizeof(Seen));
            seen = &taken;
            info = PyObject_GetAttr(prim, str_info);
            if (info == NULL) {
                seen_clear(seen);
                goto error;
            }
        } else {
            PyObject *a = PyObject_GetAttr(prim, str_agg);
            if (a == NULL)
                goto error;
            if (a == Py_None) {
                Py_DECREF(a);
                continue;
            }
            if (PyObject_SetAttr(prim, str_agg, Py_None) < 0 || !PyList_Check(a) ||
                PyList_GET_SIZE(a) != A_LEN) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "take_summaries(): bad _agg");
                Py_DECREF(a);
                goto error;
            }
            for (int i = 0; i < 16; i++) {
                if (i >= 7 && i <= 9)
                    continue;
                c[i] = PyLong_AsLongLong(PyList_GET_ITEM(a, i));
                if (c[i] == -1 && PyErr_Occurred()) {
                    Py_DECREF(a);
                    goto error;
                }
            }
            if (!c[2])
                c[5] = 0;
            int r1 = list_to_ll(PyList_GET_ITEM(a, 7), b_, nb);
            int r2 = r1 < 0 ? -1 : list_to_ll(PyList_GET_ITEM(a, 8), bs_, nb);
            if (r1 < 0 || r2 < 0) {
                Py_DECREF(a);
                goto error;
            }
            if (r1 > 0 && r2 > 0) {
                b = b_;
                bs = bs_;
            }
            threads = Py_NewRef(PyList_GET_ITEM(a, A_THREADS));
            last = Py_NewRef(PyList_GET_ITEM(a, A_LAST));
            Py_DECREF(a);
            info = PyObject_GetAttr(prim, str_info);
            if (info == NULL) {
                Py_XDECREF(threads);
                Py_XDECREF(last);
                goto error;
            }
        }
        /* Its group: (kind, name) of its info; mostly one of the last two used (the
         * Conditions and RLocks of Futures come in turns), compared before the index. */
        Group *g = NULL;
        PyObject *kind = NULL, *name = NULL, *id = NULL;
        int ok = info_key(info, &kind, &name, &id) == 0;
        for (int j = 0; ok && g == NULL && j < 2 && recent[j] >= 0; j++) {
            int r = group_is(&groups[recent[j]], kind, name);
            if (r < 0)
                ok = 0;
            else if (r) {
                g = &groups[recent[j]];
                if (j) {   /* the most recent first */
                    recent[1] = recent[0];
                    recent[0] = g - groups;
                }
            }
        }
        if (ok && g == NULL) {
            g = group_of(index, &groups, &ng, &cap, info, kind, name);
            if (g != NULL && recent[0] != g - groups) {
                recent[1] = recent[0];
                recent[0] = g - groups;
            }
        }
        ok = g != NULL && PyList_Append(g->ids, id) == 0;
        if (seen != NULL) {   /* taken, or dropped on failure (its counts are reset) */
            if (ok)
                ok = seen_take_into(seen, g->threads) == 0;
            else
                seen_clear(seen);
        } else if (ok)
            ok = group_threads_add(g, threads, last) == 0;
        if (ok)
            group_add(g, c, b, bs, blo, bhi);
        Py_XDECREF(kind);
        Py_XDECREF(name);
        Py_XDECREF(id);
        Py_XDECREF(info);
        Py_XDECREF(threads);
        Py_XDECREF(last);
        if (!ok)
            goto error;
    }
    result = PyList_New(ng);
    if (result == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < ng; i++) {
        Group *g = &groups[i];
        PyObject *bt = PyTuple_New(nb), *st = PyTuple_New(nb);
        PyObject *tt = PySequence_Tuple(g->threads);
        if (bt == NULL || st == NULL || tt == NULL) {
            Py_XDECREF(bt);
            Py_XDECREF(st);
            Py_XDECREF(tt);
            goto error;
        }
        for (int j = 0; j < nb; j++) {
            PyTuple_SET_ITEM(bt, j, PyLong_FromLongLong(g->buckets[j]));
            PyTuple_SET_ITEM(st, j, PyLong_FromLongLong(g->sums[j]));
        }
        PyObject *counts = Py_BuildValue(
            "(LLLLLLLNNNLLLLLL)", g->c[0], g->c[1], g->c[2], g->c[3], g->c[4], g->c[5],
            g->c[6], bt, st, tt, g->c[10], g->c[11], g->c[12], g->c[13], g->c[14], g->c[15]);
        PyObject *item = counts ? PyTuple_Pack(3, g->info, g->ids, counts) : NULL;
        Py_XDECREF(counts);
        if (item == NULL)
            goto error;
        PyList_SET_ITEM(result, i, item);
    }
    goto done;
error:
    Py_CLEAR(result);
done:
    for (Py_ssize_t i = 0; i < ng; i++) {
        Py_XDECREF(groups[i].info);
        Py_XDECREF(groups[i].kind);
        Py_XDECREF(groups[i].name);
        Py_XDECREF(groups[i].ids);
        Py_XDECREF(groups[i].threads);
    }
    PyMem_Free(groups);
    Py_DECREF(index);
    return result;
}

/* untrack(obj): take obj out of the garbage collector's lists. Only for objects that can
 * never be part of a reference cycle (a PrimitiveInfo: ints, strings and a Site): one
 * per primitive, and with ten thousand Futures pending the collector's full passes walk
 * every one of them. */
static PyObject *
py_untrack(PyObject *module, PyObject *obj)
{
    if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        PyObject_GC_UnTrack(obj);
    Py_RETURN_NONE;
}

/* site_at(depth): the cached (Site, label) of the first frame outside tracethread,
 * starting `depth` frames above the Python function that called (the C function that
 * calls) this one, or None when
 * that place is not cached yet (records.caller_site_and_label then computes and caches
 * it under the same key, (code, f_lasti)). Python 3.11+ (f_lasti in bytes, as the frame
 * attribute gives it); None on older versions. The frame is reached with sys._getframe,
 * which makes one frame object (the one asked for) where a walk with PyFrame_GetBack
 * makes one per frame passed. */
static PyObject *cfg_pkg_dir = NULL, *cfg_site_cache = NULL, *cfg_getframe = NULL;
static PyObject *cfg_site_fallback = NULL;   /* records.caller_site_and_label */

/* Is `ref` a weak reference to `obj` (alive)? */
static int
weakref_is(PyObject *ref, PyObject *obj)
{
    if (!PyWeakref_Check(ref))
        return 0;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o = NULL;
    if (PyWeakref_GetRef(ref, &o) < 0) {
        PyErr_Clear();
        return 0;
    }
    int same = o == obj;
    Py_XDECREF(o);
    return same;
#else
    return PyWeakref_GetObject(ref) == obj;
#endif
}

static PyObject *
site_at(long depth)
{
#if PY_VERSION_HEX >= 0x030B0000
    if (cfg_site_cache == NULL || cfg_getframe == NULL)
        Py_RETURN_NONE;
    PyObject *d = PyLong_FromLong(depth);
    if (d == NULL)
        return NULL;
    PyObject *fo = PyObject_CallOneArg(cfg_getframe, d);
    Py_DECREF(d);
    if (fo == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))   /* (not that deep) */
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (!PyFrame_Check(fo)) {
        Py_DECREF(fo);
        Py_RETURN_NONE;
    }
    PyFrameObject *f = (PyFrameObject *)fo;
    PyCodeObject *code = NULL;
    while (f != NULL) {
        code = PyFrame_GetCode(f);
        int r = PyUnicode_Tailmatch(code->co_filename, cfg_pkg_dir, 0, PY_SSIZE_T_MAX, -1);
        if (r < 0) {
            Py_DECREF(code);
            Py_DECREF(f);
            return NULL;
        }
        if (r == 0)
            break;
        Py_CLEAR(code);
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    if (f == NULL)
        Py_RETURN_NONE;
    /* The key: (id(code), f_lasti), as caller_site_and_label makes it (a code object's
     * hash is computed anew each time, over its constants and names); the entry holds a
     * weak reference to the code, compared (an id is reused once its code is gone). */
    PyObject *lasti = PyLong_FromLong(PyFrame_GetLasti(f));
    Py_DECREF(f);
    PyObject *cid = lasti ? PyLong_FromVoidPtr(code) : NULL;
    PyObject *key = cid ? PyTuple_Pack(2, cid, lasti) : NULL;
    Py_XDECREF(cid);
    Py_XDECREF(lasti);
    if (key == NULL) {
        Py_DECREF(code);
        return NULL;
    }
    PyObject *found = PyDict_GetItemWithError(cfg_site_cache, key);
    Py_DECREF(key);
    if (found == NULL || !PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 3 ||
            !weakref_is(PyTuple_GET_ITEM(found, 2), (PyObject *)code)) {
        Py_DECREF(code);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;   /* (not cached, or an entry the Python side will replace) */
    }
    Py_DECREF(code);
    return Py_NewRef(found);
#else
    Py_RETURN_NONE;
#endif
}

static PyObject *
set_site_cache(PyObject *module, PyObject *args)
{
    PyObject *pkg_dir, *cache, *fallback;
    if (!PyArg_ParseTuple(args, "UO!O:set_site_cache", &pkg_dir, &PyDict_Type, &cache,
                          &fallback))
        return NULL;
    PyObject *getframe = PySys_GetObject("_getframe");   /* borrowed */
    if (getframe == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_site_cache(): no sys._getframe");
        return NULL;
    }
    Py_INCREF(getframe);
    Py_XSETREF(cfg_getframe, getframe);
    Py_INCREF(pkg_dir);
    Py_XSETREF(cfg_pkg_dir, pkg_dir);
    Py_INCREF(cache);
    Py_XSETREF(cfg_site_cache, cache);
    Py_INCREF(fallback);
    Py_XSETREF(cfg_site_fallback, fallback);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------ */
/* PrimitiveInfo: the identity of one primitive (records.PrimitiveInfo in C). Not a GC
 * type: it refers only to strings, an int and a Site (strings and an int), so it can never
 * be part of a cycle, and making one (two per Future) adds nothing to the collector's
 * allocation count, as a Python object with slots would. The setters keep it that way. */

/* (PInfo: the PrimitiveInfo type's struct, defined above take_summaries) */

static PyObject *cfg_site_type = NULL;
static long long pinfo_next_id = 0;

static int
pinfo_check_str(PyObject *v, const char *what)
{
    if (v == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", what);
        return -1;
    }
    if (!PyUnicode_CheckExact(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    return 0;
}

static int
pinfo_check_site(PyObject *v)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete site");
        return -1;
    }
    if (v == Py_None)
        return 0;
    if (cfg_site_type == NULL || (PyObject *)Py_TYPE(v) != cfg_site_type) {
        PyErr_Format(PyExc_TypeError, "site must be a Site or None, not %.100s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    /* A Site's fields are not checked by the dataclass: a str, an int and a str, or the
     * PrimitiveInfo could end up in a cycle the collector cannot see. */
    static const char *fields[] = {"file", "line", "function"};
    static PyObject *names[3];
    for (int i = 0; i < 3; i++) {
        if (names[i] == NULL && (names[i] = PyUnicode_InternFromString(fields[i])) == NULL)
            return -1;
        PyObject *f = PyObject_GetAttr(v, names[i]);
        if (f == NULL)
            return -1;
        int ok = i == 1 ? (PyLong_CheckExact(f) || f == Py_None) : PyUnicode_CheckExact(f);
        Py_DECREF(f);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "Site.%s must be %s", fields[i],
                         i == 1 ? "an int or None" : "a str");
            return -1;
        }
    }
    return 0;
}

/* A new PrimitiveInfo with the next id (fields already checked). */
static PyObject *
pinfo_make(PyTypeObject *type, PyObject *kind, PyObject *name, PyObject *site)
{
    PyObject *id = PyLong_FromLongLong(++pinfo_next_id);
    if (id == NULL)
        return NULL;
    PInfo *self = (PInfo *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(id);
        return NULL;
    }
    self->id = id;
    self->kind = Py_NewRef(kind);
    self->name = Py_NewRef(name);
    self->site = Py_NewRef(site);
    return (PyObject *)self;
}

static PyObject *
PInfo_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"kind", "name", "site", NULL};
    PyObject *kind, *name, *site;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:PrimitiveInfo", kwlist,
                                     &kind, &name, &site))
        return NULL;
    if (pinfo_check_str(kind, "kind") < 0 || pinfo_check_str(name, "name") < 0 ||
        pinfo_check_site(site) < 0)
        return NULL;
    return pinfo_make(type, kind, name, site);
}

/* make_info(kind, name): the PrimitiveInfo of a primitive being made, as the pure
 * primitives._base.make_info: named `name` (a str; a str subclass's value), else after
 * its creation site, the first frame outside tracethread (the caller must be one of
 * tracethread's constructors), else "<kind>". The site comes from the site cache
 * (site_at) or, for a place not cached yet, from records.caller_site_and_label, which
 * caches it; those are tracethread's own Site objects (their fields not checked again). */
static PyObject *str_rlock_kind;

static PyObject *
make_info(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "make_info(kind, name)");
        return NULL;
    }
    PyObject *kind = args[0], *name = args[1], *plain = NULL;
    if (pinfo_check_str(kind, "kind") < 0)
        return NULL;
    if (name != Py_None) {
        if (!PyUnicode_Check(name)) {   /* (the type's __name__, as the Python twin) */
            PyObject *tn = PyObject_GetAttrString((PyObject *)Py_TYPE(name), "__name__");
            if (tn != NULL) {
                PyErr_Format(PyExc_TypeError, "name must be a str, not %S", tn);
                Py_DECREF(tn);
            }
            return NULL;
        }
        plain = PyUnicode_CheckExact(name) ? Py_NewRef(name) : PyUnicode_FromObject(name);
        if (plain == NULL)
            return NULL;
    }
    if (cfg_site_fallback == NULL) {
        Py_XDECREF(plain);
        PyErr_SetString(PyExc_RuntimeError, "make_info(): set_site_cache() not called");
        return NULL;
    }
    /* From C (no frame of its own): 1 is the constructor's caller; the fallback, a
     * Python function, counts its own frame too. */
    PyObject *found = site_at(1);
    if (found == Py_None) {
        Py_DECREF(found);
        PyObject *two = PyLong_FromLong(2);
        found = two ? PyObject_CallOneArg(cfg_site_fallback, two) : NULL;
        Py_XDECREF(two);
    }
    if (found == NULL) {
        Py_XDECREF(plain);
        return NULL;
    }
    PyObject *site = Py_None;
    if (found != Py_None) {
        /* (Site, label, weakref to code), made by caller_site_and_label */
        if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 3 ||
            (PyObject *)Py_TYPE(PyTuple_GET_ITEM(found, 0)) != cfg_site_type ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(found, 1))) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "make_info(): bad site cache entry");
            Py_DECREF(found);
            Py_XDECREF(plain);
            return NULL;
        }
        site = PyTuple_GET_ITEM(found, 0);
        if (plain == NULL)
            plain = Py_NewRef(PyTuple_GET_ITEM(found, 1));
    } else if (plain == NULL) {
        plain = PyUnicode_FromFormat("<%U>", kind);
        if (plain == NULL) {
            Py_DECREF(found);
            return NULL;
        }
    }
    PyObject *info = pinfo_make(PInfo_Type, kind, plain, site);
    Py_DECREF(found);
    Py_DECREF(plain);
    return info;
}

/* rlock_for_condition(info): the default lock of a Condition, as RLock._for_condition
 * (tracethread's RLock, named and placed as `info`, built without a second look at the
 * frames: Conditions are made per Future, per Queue...). */
static PyObject *
rlock_for_condition(PyObject *module, PyObject *info)
{
    if (!Py_IS_TYPE(info, PInfo_Type) || cfg_rlock_cls == NULL || cfg_allocate_lock == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "rlock_for_condition() takes a PrimitiveInfo (after set_lock_classes)");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cfg_rlock_cls;
    PyObject *block = PyObject_CallNoArgs(cfg_allocate_lock);
    if (block == NULL)
        return NULL;
    PInfo *pi = (PInfo *)info;
    PyObject *rinfo = pinfo_make(PInfo_Type, str_rlock_kind, pi->name, pi->site);
    LockCore *self = rinfo ? (LockCore *)tp->tp_alloc(tp, 0) : NULL;
    if (self == NULL) {
        Py_DECREF(block);
        Py_XDECREF(rinfo);
        return NULL;
    }
    self->lock = block;   /* (no owner, count and time 0: as tp_alloc leaves them) */
    self->info = rinfo;
    self->waiting = Py_NewRef(Py_None);   /* a list from the first wait */
    return (PyObject *)self;
}

static void
PInfo_dealloc(PInfo *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Py_XDECREF(self->id);
    Py_XDECREF(self->kind);
    Py_XDECREF(self->name);
    Py_XDECREF(self->site);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
PInfo_repr(PInfo *self)
{
    return PyUnicode_FromFormat("PrimitiveInfo(id=%S, kind=%R, name=%R)", self->id,
                                self->kind, self->name);
}

static PyObject *pinfo_restore_func = NULL;

/* Copies and pickles keep the id (as the pure-Python class's slots did). */
static PyObject *
PInfo_reduce(PInfo *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("O(OOOO)", pinfo_restore_func, self->id, self->kind, self->name,
                         self->site);
}

static PyMethodDef PInfo_methods[] = {
    {"__reduce__", (PyCFunction)PInfo_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};


/* _pinfo_restore(id, kind, name, site): a PrimitiveInfo with that id (unpickling). */
static PyObject *
pinfo_restore(PyObject *module, PyObject *args)
{
    PyObject *id, *kind, *name, *site;
    if (!PyArg_ParseTuple(args, "O!OOO:_pinfo_restore", &PyLong_Type, &id, &kind, &name,
                          &site))
        return NULL;
    if (pinfo_check_str(kind, "kind") < 0 || pinfo_check_str(name, "name") < 0 ||
        pinfo_check_site(site) < 0)
        return NULL;
    PInfo *self = (PInfo *)PInfo_Type->tp_alloc(PInfo_Type, 0);
    if (self == NULL)
        return NULL;
    self->id = Py_NewRef(id);
    self->kind = Py_NewRef(kind);
    self->name = Py_NewRef(name);
    self->site = Py_NewRef(site);
    return (PyObject *)self;
}

static PyObject *
PInfo_get_id(PInfo *self, void *c) { return Py_NewRef(self->id); }
static PyObject *
PInfo_get_kind(PInfo *self, void *c) { return Py_NewRef(self->kind); }
static PyObject *
PInfo_get_name(PInfo *self, void *c) { return Py_NewRef(self->name); }
static PyObject *
PInfo_get_site(PInfo *self, void *c) { return Py_NewRef(self->site); }

static int
PInfo_set_kind(PInfo *self, PyObject *v, void *c)
{
    if (pinfo_check_str(v, "kind") < 0)
        return -1;
    Py_SETREF(self->kind, Py_NewRef(v));
    return 0;
}

static int
PInfo_set_name(PInfo *self, PyObject *v, void *c)
{
    if (pinfo_check_str(v, "name") < 0)
        return -1;
    Py_SETREF(self->name, Py_NewRef(v));
    return 0;
}

static int
PInfo_set_site(PInfo *self, PyObject *v, void *c)
{
    if (pinfo_check_site(v) < 0)
        return -1;
    Py_SETREF(self->site, Py_NewRef(v));
    return 0;
}

static PyGetSetDef PInfo_getset[] = {
    {"id", (getter)PInfo_get_id, NULL,
     "Never reused in the process (id() of a dead object is).", NULL},
    {"kind", (getter)PInfo_get_kind, (setter)PInfo_set_kind, "Lock, RLock, Condition…", NULL},
    {"name", (getter)PInfo_get_name, (setter)PInfo_set_name, "The primitive's name.", NULL},
    {"site", (getter)PInfo_get_site, (setter)PInfo_set_site,
     "Where it was created (a Site), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef PInfo_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PInfo, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot PInfo_slots[] = {
    {Py_tp_new, PInfo_new},
    {Py_tp_dealloc, PInfo_dealloc},
    {Py_tp_repr, PInfo_repr},
    {Py_tp_getset, PInfo_getset},
    {Py_tp_methods, PInfo_methods},
    {Py_tp_members, PInfo_members},
    {Py_tp_doc, "PrimitiveInfo(kind, name, site): identity of one primitive. Its id comes "
                "from a counter and is never reused. Records hold this, not the primitive, "
                "so a primitive is garbage-collected normally while its records wait in "
                "the buffer."},
    {0, NULL},
};

static PyType_Spec PInfo_spec = {
    .name = "tracethread.PrimitiveInfo",
    .basicsize = sizeof(PInfo),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = PInfo_slots,
};

/* set_site_type(Site): the one type a PrimitiveInfo's site may have (besides None). */
static PyObject *
set_site_type(PyObject *module, PyObject *type)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "set_site_type() takes a type");
        return NULL;
    }
    Py_INCREF(type);
    Py_XSETREF(cfg_site_type, type);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_pinfo_restore", pinfo_restore, METH_VARARGS,
     "_pinfo_restore(id, kind, name, site): a PrimitiveInfo with that id (unpickling)."},
    {"make_info", (PyCFunction)(void (*)(void))make_info, METH_FASTCALL,
     "make_info(kind, name): a new primitive's PrimitiveInfo (name or creation site)."},
    {"rlock_for_condition", rlock_for_condition, METH_O,
     "rlock_for_condition(info): a Condition's default RLock, named and placed as info."},
    {"set_site_type", set_site_type, METH_O,
     "set_site_type(Site): the type of a PrimitiveInfo's site."},
    {"set_site_cache", set_site_cache, METH_VARARGS,
     "set_site_cache(pkg_dir, cache, caller_site_and_label): where make_info looks, "
     "and what make_info calls for a place not cached yet."},
    {"set_lock_classes", set_lock_classes, METH_VARARGS,
     "set_lock_classes(Lock, RLock, allocate_lock): the classes CondCore calls the fast "
     "paths of, and the raw lock maker of rlock_for_condition."},
    {"untrack", py_untrack, METH_O,
     "untrack(obj): stop the garbage collector tracking obj (it can never be in a cycle)."},
    {"set_thread_state_type", set_thread_state_type, METH_O,
     "set_thread_state_type(type): read its guard and held slots directly."},
    {"take_summaries", take_summaries, METH_O,
     "take_summaries(prims): take and add up their counters per (kind, name)."},
    {"bump", (PyCFunction)(void (*)(void))py_bump, METH_FASTCALL,
     "bump(prim, st, index): count one operation in prim's summary (atomic)."},
    {"set_aggregation", set_aggregation, METH_VARARGS,
     "set_aggregation(on, dirty, bounds): summaries of uncontended operations on or off."},
    {"next_seq", next_seq, METH_NOARGS, "The next record sequence number."},
    {"now_ns", py_now_ns, METH_NOARGS, "time.monotonic_ns(), cheaper."},
    {"record", (PyCFunction)(void (*)(void))py_record, METH_FASTCALL,
     "record(op, info, st, t0, ok, blocked, held, site, details): append one record."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Bind the core's thread-local, buffer and constants."},
    {"set_append", set_append, METH_O, "Re-bind the buffer's append (buffer resized)."},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *m)
{
#define INTERN(var, s) do { var = PyUnicode_InternFromString(s); if (!var) return -1; } while (0)
    INTERN(str_st, "st");
    INTERN(str_guard, "guard");
    INTERN(str_acquire, "acquire");
    INTERN(str_release, "release");
    INTERN(str_acquire_slow, "_acquire_slow");
    INTERN(str_acquire_py, "_acquire_py");
    INTERN(str_tstate_key, "tracethread._speedups.thread_state");
    INTERN(str_held, "held");
    INTERN(str_info, "_info");
    INTERN(str_rlock_kind, "RLock");
    INTERN(str_agg, "_agg");
    INTERN(str_enter, "__enter__");
    INTERN(str_is_owned, "_is_owned");
    INTERN(str_release_save, "_release_save");
    INTERN(str_acquire_restore, "_acquire_restore");
    INTERN(str_default_release_save, "_default_release_save");
    INTERN(str_default_acquire_restore, "_default_acquire_restore");
    INTERN(str_default_is_owned, "_default_is_owned");
    INTERN(str_waiters, "_waiters");
    INTERN(str_notify_py, "_notify_py");
    INTERN(str_notify_all_py, "_notify_all_py");
    INTERN(str_exit, "__exit__");
    INTERN(str_kind, "kind");
    INTERN(str_name, "name");
    INTERN(str_id, "id");
#undef INTERN
    minus_one = PyLong_FromLong(-1);
    one = PyLong_FromLong(1);
    if (minus_one == NULL || one == NULL)
        return -1;
    contended_details = PyTuple_Pack(1, Py_True);
    if (contended_details == NULL)
        return -1;
    {
        PyObject *thread_mod = PyImport_ImportModule("_thread");
        if (thread_mod == NULL)
            return -1;
        PyObject *lock_type = PyObject_GetAttrString(thread_mod, "LockType");
        Py_DECREF(thread_mod);
        if (lock_type == NULL)
            return -1;
        raw_acquire_descr = PyObject_GetAttr(lock_type, str_acquire);
        raw_release_descr = PyObject_GetAttr(lock_type, str_release);
        raw_locked_descr = PyObject_GetAttrString(lock_type, "locked");
        Py_DECREF(lock_type);
        if (raw_acquire_descr == NULL || raw_release_descr == NULL || raw_locked_descr == NULL)
            return -1;
    }
    PyObject *t = PyType_FromModuleAndSpec(m, &LockCore_spec, NULL);
    if (t == NULL)
        return -1;
    LockCore_Type = (PyTypeObject *)t;
    Py_INCREF(t);
    if (PyModule_AddObject(m, "LockCore", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    t = PyType_FromModuleAndSpec(m, &RLockCore_spec, NULL);
    if (t == NULL)
        return -1;
    RLockCore_Type = (PyTypeObject *)t;
    Py_INCREF(t);
    if (PyModule_AddObject(m, "RLockCore", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "A_NOTIFIES", A_NOTIFIES) < 0)
        return -1;
    t = PyType_FromModuleAndSpec(m, &PInfo_spec, NULL);
    if (t == NULL)
        return -1;
    PInfo_Type = (PyTypeObject *)t;
    Py_INCREF(t);
    if (PyModule_AddObject(m, "PrimitiveInfo", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    pinfo_restore_func = PyObject_GetAttrString(m, "_pinfo_restore");
    if (pinfo_restore_func == NULL)
        return -1;
    t = PyType_FromModuleAndSpec(m, &CondCore_spec, NULL);
    if (t == NULL)
        return -1;
    CondCore_Type = (PyTypeObject *)t;
    Py_INCREF(t);
    if (PyModule_AddObject(m, "CondCore", t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tracethread._speedups",
    .m_doc = "C fast paths for tracethread's Lock and RLock (optional).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&moduledef);
}
