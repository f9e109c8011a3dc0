/* CondCore: the C base of tracethread.Condition (tracethread/primitives/condition.py).
 *
 * `with condition:` without a Python frame. The stdlib's Condition.__enter__ is Python code
 * calling its lock's __enter__; when the lock is tracethread's own Lock or RLock (exactly
 * those classes: a subclass may override), this goes straight to the lock's C fast path
 * (lock.c). Any other lock: its own __enter__/__exit__, as the stdlib calls them.
 *
 * A Condition over tracethread's own Lock or RLock (exactly: every Future's) stores none
 * of the lock protocol (acquire, release, _release_save, _acquire_restore, _is_owned) as
 * bound methods, as the stdlib's does: the methods below go to the lock's C paths (five
 * objects fewer per Condition, and no instance __dict__). Over any other lock, the
 * Condition's __init__ stores the lock's methods in the instance __dict__, which comes
 * first, and where the lock has no such method these run the class's `_default_*`
 * one, as the stdlib's class methods.
 *
 * wait(), notify(n) and notify_all() over tracethread's own Lock/RLock are here too (the
 * stdlib's algorithm: a raw waiter lock per wait, released by notify), each falling back
 * to condition.py's `_wait_py`/`_notify_py`/`_notify_all_py` for every other case.
 *
 * Summary counters are inline (CondCore's array `c`, in the counter layout of _speedups.h;
 * no holds) rather than in an `_agg` list made per drain: a notify that woke nobody counts
 * there (A_NOTIFIES), and so does bump() (summary.c) on a Condition.
 */
#include "_speedups.h"

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
        return rlock_release_save_impl((RLockCore *)lock);
    if (kind == OWN_LOCK)   /* (what _default_release_save does: the lock's release) */
        return lock_release_impl((LockCore *)lock);
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
        return rlock_acquire_restore_impl((RLockCore *)lock, state);
    if (kind == OWN_LOCK) {   /* (what _default_acquire_restore does: the lock's acquire) */
        PyObject *r = lock_acquire_impl((LockCore *)lock, Py_True, NULL, 1);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    return PyObject_CallMethodOneArg((PyObject *)self, str_default_acquire_restore, state);
}

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

/* Count n at `index` of the counter layout, by `st`: 0, or -1 with an exception. */
int
cond_count(CondCore *self, PyObject *st, Py_ssize_t index, long long n)
{
    if (!agg_counting)
        return 0;   /* no sink: nothing is counted */
    if (summary_touch((PyObject *)self, &self->dirty, &self->seen, st) < 0)
        return -1;
    self->c[index] += n;
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

/* waiters.remove(waiter), a waiter no longer there being no error (the stdlib's
 * `try: ... except ValueError: pass`). 0, or -1 with an exception set. */
static int
remove_waiter(PyObject *waiters, PyObject *waiter)
{
    PyObject *r = PyObject_CallMethodOneArg(waiters, str_remove, waiter);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_ValueError))
        return -1;
    PyErr_Clear();
    return 0;
}

/* Wake up to `n` of the waiters, oldest first (Condition._wake): how many were woken, or
 * -1 with an exception set. A waiter already released (gh-92530: a notify interrupted
 * before it removed the lock) is removed without counting. */
static Py_ssize_t
cond_wake(PyObject *waiters, Py_ssize_t n)
{
    Py_ssize_t woken = 0;
    while (n > 0) {
        Py_ssize_t len = PyObject_Length(waiters);
        if (len <= 0)
            return len < 0 ? -1 : woken;
        PyObject *waiter = PySequence_GetItem(waiters, 0);
        if (waiter == NULL)
            return -1;
        PyObject *r = PyObject_CallMethodNoArgs(waiter, str_release);
        if (r != NULL) {
            Py_DECREF(r);
            n--;
            woken++;
        } else if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            PyErr_Clear();
        } else {
            Py_DECREF(waiter);
            return -1;
        }
        int rc = remove_waiter(waiters, waiter);
        Py_DECREF(waiter);
        if (rc < 0)
            return -1;
    }
    return woken;
}

/* notify(n=1) / notify_all() (all: n is NULL), as condition.py's `_notify_py` and
 * `_notify_all_py`: wake the waiters, then, while summaries are on, count a notify that
 * woke nobody (A_NOTIFIES) or one that woke threads (A_WAKEUPS, and A_WOKEN the threads);
 * while every operation is wanted, a record with (n, woken). Those methods take what
 * is not the common case: the caller does not own the lock (their error), or an `n`
 * that is not an int (the stdlib compares and subtracts whatever it is given). */
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
    if (!owned || (!all && !PyLong_CheckExact(n)) || cfg_dirty == NULL) {
        if (all)
            return PyObject_CallMethodNoArgs(me, str_notify_all_py);
        return PyObject_CallMethodOneArg(me, str_notify_py, n);
    }
    PyObject *waiters = PyObject_GetAttr(me, str_waiters);
    if (waiters == NULL)
        return NULL;
    Py_ssize_t waiting = PyObject_Length(waiters);
    Py_ssize_t want = waiting;
    if (!all && waiting > 0) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(n, &overflow);
        want = overflow > 0 ? PY_SSIZE_T_MAX : overflow < 0 || v < 0 ? 0
               : v > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)v;
    }
    Py_ssize_t woken = waiting > 0 && want > 0 ? cond_wake(waiters, want) : 0;
    Py_DECREF(waiters);
    if (waiting < 0 || woken < 0)
        return NULL;
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int g = is_guarded(st);
    int rc = g < 0 ? -1 : 0;
    if (g == 0 && agg_on) {   /* (a notify that woke: a wake-up, and how many) */
        rc = woken ? cond_count(self, st, A_WAKEUPS, 1) : cond_count(self, st, A_NOTIFIES, 1);
        if (rc == 0 && woken)
            rc = cond_count(self, st, A_WOKEN, woken);
    } else if (g == 0) {
        PyObject *info = PyObject_GetAttr(me, str_info);
        PyObject *nn = all ? PyLong_FromSsize_t(waiting) : Py_NewRef(n);
        PyObject *details = info && nn ? Py_BuildValue("(On)", nn, woken) : NULL;
        if (details != NULL) {
            PyObject *args[9] = {all ? cfg_condition_notify_all : cfg_condition_notify,
                                 info, st, Py_None, woken ? Py_True : Py_False, Py_False,
                                 Py_None, Py_None, details};
            r = py_record(NULL, args, 9);
            Py_XDECREF(r);
        }
        rc = details != NULL && r != NULL ? 0 : -1;
        Py_XDECREF(details);
        Py_XDECREF(nn);
        Py_XDECREF(info);
    }
    Py_DECREF(st);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
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

/* ------------------------------------------------------------------------------------ */
/* wait(timeout=None), as condition.py's `_wait_py` (the stdlib's, recorded), in C for the
 * common case: a Condition over tracethread's own Lock or RLock, the caller owning it, a
 * timeout of None, an int or a float, not the tracer's own code. `_wait_py` takes every
 * other (its errors, another lock's protocol, guarded code). */

/* A timeout as a record holds it (_base.as_timeout): None or a float; never raises. */
static PyObject *
record_timeout(PyObject *timeout)
{
    if (timeout == Py_None || PyFloat_CheckExact(timeout))
        return Py_NewRef(timeout);
    double d = PyLong_AsDouble(timeout);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();   /* (too large for a float) */
        return Py_NewRef(Py_None);
    }
    return PyFloat_FromDouble(d);
}

/* An error raised while one was pending (a finally's): the pending one becomes its
 * __context__, as Python chains them. Takes the pending triple. */
static void
chain_pending(PyObject *et, PyObject *ev, PyObject *etb)
{
    if (et == NULL)
        return;
    PyErr_NormalizeException(&et, &ev, &etb);
    if (etb != NULL && ev != NULL)
        PyException_SetTraceback(ev, etb);
    Py_XDECREF(et);
    Py_XDECREF(etb);
    PyObject *nt, *nv, *ntb;
    PyErr_Fetch(&nt, &nv, &ntb);
    PyErr_NormalizeException(&nt, &nv, &ntb);
    if (nv != NULL && ev != NULL && nv != ev)
        PyException_SetContext(nv, ev);   /* (steals ev) */
    else
        Py_XDECREF(ev);
    PyErr_Restore(nt, nv, ntb);
}

static PyObject *
CondCore_wait(CondCore *self, PyObject *timeout)
{
    PyObject *me = (PyObject *)self;
    PyObject *lock;
    int kind = cond_lock(self, &lock);
    if (kind < 0)
        return NULL;
    int simple = timeout == Py_None || PyLong_CheckExact(timeout) ||
                 PyFloat_CheckExact(timeout);
    if (kind == OTHER_LOCK || !simple || cfg_condition_wait == NULL)
        return PyObject_CallMethodOneArg(me, str_wait_py, timeout);
    PyObject *r = CondCore_is_owned(self, NULL);
    if (r == NULL)
        return NULL;
    int owned = r == Py_True;
    Py_DECREF(r);
    PyObject *st = thread_state();
    if (st == NULL)
        return NULL;
    int g = owned ? is_guarded(st) : 1;
    if (g != 0) {
        Py_DECREF(st);
        return g < 0 ? NULL : PyObject_CallMethodOneArg(me, str_wait_py, timeout);
    }
    PyObject *result = NULL, *site = NULL, *waiter = NULL, *waiters = NULL, *saved = NULL;
    PyObject *info = NULL;
    int recorded = SINKS();   /* (no sink: no record, no site to find) */
    site = recorded ? site_here() : Py_NewRef(Py_None);
    if (site == NULL)
        goto done;
    long long t0 = now_ns();
    waiter = PyObject_CallNoArgs(cfg_allocate_lock);
    if (waiter == NULL)
        goto done;
    int got = raw_try_acquire(waiter);
    if (got <= 0) {
        if (got == 0)
            PyErr_SetString(PyExc_RuntimeError, "wait(): a new waiter lock was taken");
        goto done;
    }
    waiters = PyObject_GetAttr(me, str_waiters);
    r = waiters ? PyObject_CallMethodOneArg(waiters, str_append, waiter) : NULL;
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    saved = CondCore_release_save(self, NULL);
    if (saved == NULL)
        goto done;
    /* try: (right after the release, as the stdlib's: whatever fails from here, the
     * lock is restored) */
    int waits = 1, gotit = 0;
    info = PyObject_GetAttr(me, str_info);
    PyObject *since = info ? PyLong_FromLongLong(now_ns()) : NULL;
    int marked = since != NULL && PyObject_SetAttr(st, str_waiting, info) == 0 &&
                 PyObject_SetAttr(st, str_wait_since, since) == 0 &&
                 PyObject_SetAttr(st, str_wait_bounded,
                                  timeout == Py_None ? Py_False : Py_True) == 0;
    Py_XDECREF(since);
    if (!marked) {
        r = NULL;
    } else if (timeout == Py_None) {
        r = PyObject_CallOneArg(raw_acquire_descr, waiter);
        gotit = r != NULL;
    } else {
        int positive;
        if (PyFloat_CheckExact(timeout)) {
            positive = PyFloat_AS_DOUBLE(timeout) > 0;
        } else {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(timeout, &overflow);
            positive = overflow > 0 || (overflow == 0 && v > 0);
        }
        if (positive) {
            PyObject *a[3] = {waiter, Py_True, timeout};
            r = PyObject_Vectorcall(raw_acquire_descr, a, 3, NULL);
        } else {
            waits = 0;
            PyObject *a[2] = {waiter, Py_False};
            r = PyObject_Vectorcall(raw_acquire_descr, a, 2, NULL);
        }
        gotit = r == Py_True;
    }
    Py_XDECREF(r);
    /* finally: (an error from the try is pending meanwhile) */
    PyObject *et = NULL, *ev = NULL, *etb = NULL;
    if (r == NULL)
        PyErr_Fetch(&et, &ev, &etb);
    int ok = PyObject_SetAttr(st, str_waiting, Py_None) == 0;
    long long t1 = now_ns();
    if (ok) {
        r = CondCore_acquire_restore(self, saved);
        ok = r != NULL;
        Py_XDECREF(r);
    }
    if (ok && !gotit)
        ok = remove_waiter(waiters, waiter) == 0;
    if (ok && recorded && info != NULL) {   /* (no _info: its error is pending) */
        PyObject *rt = record_timeout(timeout);
        PyObject *reacquired = rt ? PyLong_FromLongLong(now_ns()) : NULL;
        PyObject *ctx = NULL;
        if (reacquired != NULL)
            ctx = waits && cfg_capture_context != NULL
                  ? PyObject_CallNoArgs(cfg_capture_context) : Py_NewRef(Py_None);
        PyObject *details = ctx ? PyTuple_Pack(3, rt, reacquired, ctx) : NULL;
        ok = details != NULL &&
             emit_record(cfg_condition_wait, info, st, t0, t1, gotit, waits, -1,
                         waits ? site : NULL, details) == 0;
        Py_XDECREF(details);
        Py_XDECREF(ctx);
        Py_XDECREF(reacquired);
        Py_XDECREF(rt);
    }
    if (!ok)
        chain_pending(et, ev, etb);
    else if (et != NULL)
        PyErr_Restore(et, ev, etb);
    else
        result = PyBool_FromLong(gotit);
done:
    Py_XDECREF(info);
    Py_XDECREF(saved);
    Py_XDECREF(waiters);
    Py_XDECREF(waiter);
    Py_XDECREF(site);
    Py_DECREF(st);
    return result;
}

static PyMethodDef CondCore_methods[] = {
    /* Called by Condition.notify/notify_all (Python, for the stdlib's signatures). */
    {"_c_notify", (PyCFunction)(void (*)(void))CondCore_notify, METH_FASTCALL | METH_KEYWORDS,
     "notify(n=1), the common case in C."},
    {"_c_notify_all", (PyCFunction)CondCore_notify_all, METH_NOARGS,
     "notify_all(), the common case in C."},
    {"_c_wait", (PyCFunction)CondCore_wait, METH_O, "wait(timeout), the common case in C."},
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

PyType_Spec CondCore_spec = {
    .name = "tracethread._speedups.CondCore",
    .basicsize = sizeof(CondCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = CondCore_slots,
};
