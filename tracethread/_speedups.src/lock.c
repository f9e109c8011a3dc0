/* LockCore and RLockCore: the C bases of tracethread.Lock and tracethread.RLock
 * (tracethread/primitives/lock.py), and their uncontended acquire and release (and the
 * RLock's _release_save/_acquire_restore, Condition.wait's).
 *
 * lock.py has the same fast paths in pure Python and uses them when the extension is
 * missing (or TRACETHREAD_PURE_PYTHON=1). Only the paths that never wait live here; every
 * other case (contention, arguments other than the defaults, the tracer's own guarded
 * code) calls back into the Python class, so behaviour and records are defined in one
 * place, in Python. The raw lock is the `_thread.lock` object the Python side also uses,
 * so both paths operate on the same lock.
 *
 * Each fast path: read the thread's state (record.c) from the core's thread-local, check
 * its guard, try-acquire the raw lock, take a CLOCK_MONOTONIC timestamp (the clock of
 * time.monotonic_ns), keep the thread's held list and the lock order (note_acquired,
 * note_released), then, while summaries are on, add to the lock's counters (summary.c),
 * else append one record tuple (emit, record.c). The types' struct is in _speedups.h;
 * CondCore (condition.c) calls the *_impl functions directly.
 */
#include "_speedups.h"

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
    if (!detection_on) {   /* (no graph: only a long list is looked at, for orphans) */
        need_python = n > HELD_CHECK_OFF;
        n = 0;
    }
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

/* Forget where `owner` took `self` after waiting (st.held_sites[id(self)], kept for a
 * deadlock report's "took ... at"), as lock.py's _leave_held does: an entry left behind
 * would name the site of a later lock that reuses the id. Only a dict with entries is
 * looked at (the usual one is empty). 0, or -1 with an exception set. */
static int
forget_held_site(PyObject *owner, PyObject *self)
{
    if (off_held_sites < 0 || Py_TYPE(owner) != tstate_type)
        return 0;
    PyObject *sites = *(PyObject **)((char *)owner + off_held_sites);
    if (sites == NULL || !PyDict_CheckExact(sites) || PyDict_GET_SIZE(sites) == 0)
        return 0;
    PyObject *key = PyLong_FromVoidPtr(self);
    if (key == NULL)
        return -1;
    int rc = PyDict_DelItem(sites, key);
    Py_DECREF(key);
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        rc = 0;
    }
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
    if (rc == 0)
        rc = forget_held_site(owner, self);
    return rc;
}

/* _tt_take(): the summary since the last take, and start a new one; None if nothing. */
static PyObject *
LockCore_take(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    self->dirty = 0;
    if (self->seen.last == NULL) {
        Py_RETURN_NONE;
    }
    long long c[N_COUNTERS];
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

int
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
    /* The fast path applies only to blocking=True, timeout=-1 or -1.0 (or not given). Any other
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
    } else if (PyFloat_CheckExact(*timeout))   /* -1.0: no timeout, as -1 (the twins) */
        *defaults = PyFloat_AS_DOUBLE(*timeout) == -1.0;
    else
        *defaults = 0;
    return 0;
}

/* Somebody waits for the lock (its contended paths, in Python, keep the list). */
static inline int
has_waiters(LockCore *self)
{
    return self->waiting != NULL && PyList_Check(self->waiting) &&
           PyList_GET_SIZE(self->waiting) > 0;
}

/* Details of a release (new reference): None, or (True, otel context) when another thread
 * was waiting: a contended hold, whose span joins the holder's trace. */
static PyObject *
release_details(LockCore *self)
{
    if (!has_waiters(self))
        return Py_NewRef(Py_None);
    if (cfg_capture_context == NULL || !SINKS()) {   /* (no record will carry it) */
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

/* The call site of a contended release (its lock.hold span's code.* attributes), None for
 * any other release (new reference, or NULL with an exception set). */
static PyObject *
contended_site(PyObject *details)
{
    if (details == Py_None || cfg_caller_site == NULL || !SINKS())
        return Py_NewRef(Py_None);
    PyObject *depth = PyLong_FromLong(1);   /* (the walk skips tracethread's frames) */
    if (depth == NULL)
        return NULL;
    PyObject *site = PyObject_CallOneArg(cfg_caller_site, depth);
    Py_DECREF(depth);
    return site;
}

PyObject *
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
            long long t = TIMED() ? now_ns() : 0;
            if (note_acquired(st, (PyObject *)self, self->info) < 0)
                goto done;
            Py_INCREF(st);
            Py_XSETREF(self->owner, st);
            self->acquired_ns = t;
            int e;
            if (agg_on) {
                e = AGG(self, st, self->acquires++);
            } else {
                if (t == 0)   /* (records turned on since the clock was skipped) */
                    self->acquired_ns = t = now_ns();
                e = emit(cfg_lock_acquire, self->info, st, t, -1, NULL, cfg_fast_details);
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

PyObject *
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
    long long acquired = self->acquired_ns;
    PyObject *details = release_details(self);
    if (details == NULL)
        goto done;
    int summarize = agg_on && details == Py_None;   /* nobody waited: uncontended */
    int counting = agg_counting;   /* (read once: note_released may run Python) */
    /* (no time when nothing will read it: counted by nobody; a hold that began then
     * and is recorded now, a sink having been added meanwhile, is 0 long) */
    long long t = summarize && !counting ? 0 : now_ns();
    long long held = acquired && t ? t - acquired : 0;
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
        e = AGG_IF(counting, self, st, agg_hold(self, held));
    } else {
        PyObject *site = contended_site(details);
        e = site == NULL ? -1 : emit(cfg_lock_release, self->info, st, t, held, site,
                                     details);
        Py_XDECREF(site);
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

/* tracethread.Lock(*, name=None), made in C: constructing one through Python's __new__
 * and __init__ cost 17x the stdlib's Lock() (issue 20). As lock.py's pure-Python Lock:
 * the stdlib's own raw lock inside tracer code (the guard) and for the threading module's
 * own bookkeeping (its direct caller); anything but name= gets the stdlib's error; the
 * name, else the creation site, from make_info. A subclass gets the same fields (its
 * arguments are its own __init__'s; its super().__init__(name=...) is LockCore_init). */
static PyObject *
LockCore_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (cfg_allocate_lock == NULL || cfg_threading_file == NULL ||
        cfg_refuse_lock_args == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Lock(): set_lock_classes() was not called");
        return NULL;
    }
    int exact = (PyObject *)type == cfg_lock_cls;
    PyObject *name = Py_None;
    if (exact) {
        Py_ssize_t nkw = kwds == NULL ? 0 : PyDict_GET_SIZE(kwds);
        PyObject *given = nkw ? PyDict_GetItemWithError(kwds, str_name) : NULL;
        if (given == NULL && PyErr_Occurred())
            return NULL;
        if (PyTuple_GET_SIZE(args) || nkw > (given != NULL)) {
            PyObject *r = PyObject_CallFunctionObjArgs(cfg_refuse_lock_args, args,
                                                       kwds ? kwds : Py_None, NULL);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);   /* (the stdlib took them: so does this) */
        }
        if (given != NULL)
            name = given;
        PyObject *st = thread_state();
        if (st == NULL)
            return NULL;
        int g = is_guarded(st);
        Py_DECREF(st);
        if (g < 0)
            return NULL;
        int raw = g;
        if (!raw) {
            PyFrameObject *f = PyEval_GetFrame();   /* borrowed: the constructor's caller */
            if (f != NULL) {
                PyCodeObject *code = PyFrame_GetCode(f);
                raw = PyUnicode_Compare(code->co_filename, cfg_threading_file) == 0;
                Py_DECREF(code);
                if (raw == 0 && PyErr_Occurred())
                    return NULL;
            }
        }
        if (raw)
            return PyObject_CallNoArgs(cfg_allocate_lock);
    }
    PyObject *block = PyObject_CallNoArgs(cfg_allocate_lock);
    if (block == NULL)
        return NULL;
    PyObject *info = make_info_at(str_lock_kind, name, 0);
    LockCore *self = info ? (LockCore *)type->tp_alloc(type, 0) : NULL;
    if (self == NULL) {
        Py_DECREF(block);
        Py_XDECREF(info);
        return NULL;
    }
    self->lock = block;
    self->info = info;
    self->owner = Py_NewRef(Py_None);
    self->waiting = Py_NewRef(Py_None);   /* a list from the first wait */
    return (PyObject *)self;
}

/* Lock.__init__(self, *, name=None): the fields are LockCore_new's; a name given here (a
 * subclass's super().__init__(name=...)) renames it. */
static int
LockCore_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    LockCore *self = (LockCore *)op;
    if ((PyObject *)Py_TYPE(op) == cfg_lock_cls)
        return 0;   /* (checked by LockCore_new) */
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Lock.__init__() takes no positional arguments");
        return -1;
    }
    PyObject *name = kwds ? PyDict_GetItemWithError(kwds, str_name) : NULL;
    if (name == NULL && PyErr_Occurred())
        return -1;
    if (kwds && PyDict_GET_SIZE(kwds) > (name != NULL)) {
        PyErr_SetString(PyExc_TypeError, "Lock.__init__() takes only name=");
        return -1;
    }
    if (name == NULL || name == Py_None)
        return 0;
    PyObject *info = make_info_at(str_lock_kind, name, 0);
    if (info == NULL)
        return -1;
    Py_XSETREF(self->info, info);
    return 0;
}

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
    {Py_tp_new, LockCore_new},
    {Py_tp_init, LockCore_init},
    {Py_tp_doc, "C fast paths of tracethread.Lock."},
    {0, NULL},
};

PyType_Spec LockCore_spec = {
    .name = "tracethread._speedups.LockCore",
    .basicsize = sizeof(LockCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = LockCore_slots,
};

/* ------------------------------------------------------------------------------------ */
/* RLockCore */

PyObject *
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
                e = AGG(self, st, self->reentries++);
            } else {
                e = emit(cfg_rlock_acquire, self->info, st, now_ns(), -1, NULL,
                         cfg_reenter_details);
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
            long long t = TIMED() ? now_ns() : 0;
            if (note_acquired(st, (PyObject *)self, self->info) < 0)
                goto done;
            Py_INCREF(st);
            Py_XSETREF(self->owner, st);
            self->count = 1;
            self->acquired_ns = t;
            int e;
            if (agg_on) {
                e = AGG(self, st, self->acquires++);
            } else {
                if (t == 0)   /* (records turned on since the clock was skipped) */
                    self->acquired_ns = t = now_ns();
                e = emit(cfg_rlock_acquire, self->info, st, t, -1, NULL, cfg_fast_details);
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

PyObject *
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
    int counting = agg_counting;   /* (read once: note_released may run Python) */
    long long t = agg_on && details == Py_None && !counting ? 0 : now_ns();
    if (count == 0) {
        long long acquired = self->acquired_ns;
        Py_INCREF(Py_None);
        Py_XSETREF(self->owner, Py_None);
        if (raw_release(self->lock) < 0 || note_released(st, (PyObject *)self, st) < 0) {
            Py_DECREF(details);
            goto done;
        }
        held = acquired && t ? t - acquired : 0;
    }
    int e;
    if (agg_on && details == Py_None) {   /* an inner release, or nobody waited */
        e = AGG_IF(counting, self, st,
                   held < 0 ? (void)self->inner_releases++ : agg_hold(self, held));
    } else {
        PyObject *site = contended_site(details);
        e = site == NULL ? -1 : emit(cfg_rlock_release, self->info, st, t, held, site,
                                     details);
        Py_XDECREF(site);
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
PyObject *
RLockCore_is_owned(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int owned = self->owner == st;
    Py_DECREF(st);
    return PyBool_FromLong(owned);
}

/* _release_save(): Condition.wait's release of every level at once; returns (count,
 * owner) for _acquire_restore. The common case here (summaries on, nobody waiting, not
 * the tracer's own code): the hold counted in the summary, as lock.py's
 * `_release_save_py` does, which takes every other case (the record, its errors). */
PyObject *
rlock_release_save_impl(RLockCore *self)
{
    if (!configured())
        return NULL;
    PyObject *me = (PyObject *)self;
    if (!agg_on || has_waiters(self) || self->count <= 0)
        return PyObject_CallMethodNoArgs(me, str_release_save_py);
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int g = is_guarded(st);
    if (g != 0 || self->owner != st) {
        Py_DECREF(st);
        return g < 0 ? NULL : PyObject_CallMethodNoArgs(me, str_release_save_py);
    }
    int counting = agg_counting;   /* (read once: note_released may run Python) */
    long long t = counting ? now_ns() : 0;
    PyObject *saved = Py_BuildValue("(LO)", self->count, self->owner);
    if (saved == NULL) {
        Py_DECREF(st);
        return NULL;
    }
    long long acquired = self->acquired_ns;
    PyObject *owner = self->owner;   /* reference moves to us */
    self->owner = Py_NewRef(Py_None);
    long long count = self->count;
    self->count = 0;
    if (raw_release(self->lock) < 0) {
        Py_XSETREF(self->owner, owner);
        self->count = count;
        Py_DECREF(saved);
        Py_DECREF(st);
        return NULL;
    }
    int rc = note_released(owner, me, st);
    Py_DECREF(owner);
    if (rc == 0)
        rc = AGG_IF(counting, self, st, agg_hold(self, acquired && t ? t - acquired : 0));
    Py_DECREF(st);
    if (rc < 0) {
        Py_DECREF(saved);
        return NULL;
    }
    return saved;
}

/* _acquire_restore((count, owner)): Condition.wait's re-acquire. The common case here
 * (summaries on, the lock free, not the tracer's own code): counted as any uncontended
 * acquire; every other case (waiting, records, a state of another shape) in lock.py's
 * `_acquire_restore_py`. */
PyObject *
rlock_acquire_restore_impl(RLockCore *self, PyObject *state)
{
    if (!configured())
        return NULL;
    PyObject *me = (PyObject *)self;
    long long count;
    if (!agg_on || !PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 2 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(state, 0)) ||
        (count = PyLong_AsLongLong(PyTuple_GET_ITEM(state, 0))) <= 0) {
        PyErr_Clear();   /* (an overflow: the Python path says what is wrong) */
        return PyObject_CallMethodOneArg(me, str_acquire_restore_py, state);
    }
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int g = is_guarded(st);
    int got = g == 0 ? raw_try_acquire(self->lock) : 0;
    if (g < 0 || got < 0) {
        Py_DECREF(st);
        return NULL;
    }
    if (!got) {
        Py_DECREF(st);
        return PyObject_CallMethodOneArg(me, str_acquire_restore_py, state);
    }
    long long t = TIMED() ? now_ns() : 0;
    int rc = note_acquired(st, me, self->info);
    if (rc == 0) {
        self->acquired_ns = t;
        rc = AGG(self, st, self->acquires++);
    }
    /* (owned from here whatever the bookkeeping said: the raw lock is held) */
    Py_XSETREF(self->owner, Py_NewRef(PyTuple_GET_ITEM(state, 1)));
    self->count = count;
    Py_DECREF(st);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
RLockCore_release_save(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    return rlock_release_save_impl(self);
}

static PyObject *
RLockCore_acquire_restore(RLockCore *self, PyObject *state)
{
    return rlock_acquire_restore_impl(self, state);
}

static PyMethodDef RLockCore_methods[] = {
    {"_is_owned", (PyCFunction)RLockCore_is_owned, METH_NOARGS,
     "Is it owned by the calling thread?"},
    {"_release_save", (PyCFunction)RLockCore_release_save, METH_NOARGS,
     "Condition.wait's release of every level: (count, owner)."},
    {"_acquire_restore", (PyCFunction)RLockCore_acquire_restore, METH_O,
     "Condition.wait's re-acquire of the levels _release_save returned."},
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

PyType_Spec RLockCore_spec = {
    .name = "tracethread._speedups.RLockCore",
    .basicsize = sizeof(RLockCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = RLockCore_slots,
};
