/* The module tracethread._speedups: its method table and initialization (the types, the
 * constants A_NOTIFIES and COUNTER_FIELDS, the interned strings, the raw lock's methods),
 * and the configuration the Python side gives it: configure() and set_thread_state_type()
 * (tracethread/_core/_native.py), set_append() (on a buffer resize), set_aggregation()
 * (_core/summaries.py), set_site_type() and set_site_cache() (_core/records.py),
 * set_lock_classes() (primitives/lock.py).
 *
 * Every global of the extension is defined here (_speedups.h declares them, and says which
 * file does what).
 */
#include "_speedups.h"

/* Set by configure(). */
PyObject *cfg_tls = NULL;
PyObject *cfg_new_state = NULL;
PyObject *cfg_append = NULL;
PyObject *cfg_lock_acquire = NULL;
PyObject *cfg_lock_release = NULL;
PyObject *cfg_rlock_acquire = NULL;
PyObject *cfg_rlock_release = NULL;
PyObject *cfg_fast_details = NULL;
PyObject *cfg_reenter_details = NULL;
PyObject *cfg_on_acquire = NULL;
PyObject *cfg_released_elsewhere = NULL;
PyObject *cfg_known = NULL;
PyObject *cfg_capture_context = NULL;
PyObject *cfg_caller_site = NULL;
PyObject *cfg_condition_notify = NULL;
PyObject *cfg_condition_notify_all = NULL;
PyObject *cfg_condition_wait = NULL;

/* Set by set_lock_classes(). */
PyObject *cfg_lock_cls = NULL, *cfg_rlock_cls = NULL, *cfg_allocate_lock = NULL;
PyObject *cfg_threading_file = NULL, *cfg_refuse_lock_args = NULL;

/* Set by set_thread_state_type(). */
PyTypeObject *tstate_type = NULL;
Py_ssize_t off_guard = -1, off_held = -1, off_held_sites = -1;

/* Set by set_detection(). */
int detection_on = 1;

/* Set by set_aggregation(). */
int agg_on = 0;
int agg_counting = 0;
PyObject *cfg_dirty = NULL;
double agg_bounds[MAX_BOUNDS];
int agg_nbounds = 0;

/* Set by set_site_cache() and set_site_type(). */
PyObject *cfg_pkg_dir = NULL, *cfg_site_cache = NULL, *cfg_getframe = NULL;
PyObject *cfg_site_fallback = NULL;
PyObject *cfg_site_type = NULL;

/* Made by module_exec. */
PyTypeObject *LockCore_Type = NULL, *RLockCore_Type = NULL, *CondCore_Type = NULL,
    *PInfo_Type = NULL;
PyObject *pinfo_restore_func = NULL;
PyObject *raw_acquire_descr = NULL, *raw_release_descr = NULL, *raw_locked_descr = NULL;
int raw_direct = 0;
PyTypeObject *raw_lock_type = NULL;
PyObject *one = NULL, *minus_one = NULL;
PyObject *contended_details = NULL;
PyObject *str_st, *str_guard, *str_acquire, *str_release, *str_acquire_slow;
PyObject *str_acquire_py, *str_tstate_key, *str_held, *str_info, *str_agg;
PyObject *str_enter, *str_exit, *str_is_owned, *str_waiters, *str_notify_py,
    *str_notify_all_py;
PyObject *str_release_save_py, *str_acquire_restore_py, *str_remove;
PyObject *str_append, *str_wait_py, *str_waiting, *str_wait_since, *str_wait_bounded;
PyObject *str_release_save, *str_acquire_restore, *str_default_release_save,
    *str_default_acquire_restore, *str_default_is_owned;
PyObject *str_kind, *str_name, *str_id, *str_rlock_kind, *str_lock_kind;

/* ------------------------------------------------------------------------------------ */
/* Configuration */

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"tls", "new_state", "append", "lock_acquire", "lock_release",
                             "rlock_acquire", "rlock_release", "fast_details",
                             "reenter_details", "on_acquire", "released_elsewhere", "known",
                             "capture_context", "caller_site", "condition_notify",
                             "condition_notify_all", "condition_wait", NULL};
    PyObject *tls, *new_state, *append, *la, *lr, *ra, *rr, *fd, *rd, *oa, *re, *kn, *cc, *cs;
    PyObject *cn, *cna, *cw;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOOOOOOOOO:configure", kwlist,
                                     &tls, &new_state, &append, &la, &lr, &ra, &rr, &fd, &rd,
                                     &oa, &re, &kn, &cc, &cs, &cn, &cna, &cw))
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
    SET(cfg_caller_site, cs);
    SET(cfg_condition_notify, cn);
    SET(cfg_condition_notify_all, cna);
    SET(cfg_condition_wait, cw);
#undef SET
    Py_RETURN_NONE;
}

/* set_detection(on): the lock-order graph is kept (detection on) or not. */
static PyObject *
set_detection(PyObject *module, PyObject *on)
{
    int v = PyObject_IsTrue(on);
    if (v < 0)
        return NULL;
    detection_on = v;
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

/* set_thread_state_type(type): read ThreadState's guard, held and held_sites slots
 * directly. */
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
    off_held_sites = slot_offset(type, "held_sites");
    return Py_BuildValue("(nnn)", off_guard, off_held, off_held_sites);
}

/* set_lock_classes(Lock, RLock, allocate_lock, threading_file=None, refuse=None): the
 * classes whose fast paths CondCore may call; with the stdlib threading module's file and
 * the function giving the stdlib's error for Lock()'s arguments, Lock() is made in C
 * (LockCore_new). */
static PyObject *
set_lock_classes(PyObject *module, PyObject *args)
{
    PyObject *l, *r, *alloc, *tfile = NULL, *refuse = NULL;
    if (!PyArg_ParseTuple(args, "O!O!O|UO:set_lock_classes", &PyType_Type, &l, &PyType_Type,
                          &r, &alloc, &tfile, &refuse))
        return NULL;
    Py_XINCREF(tfile);
    Py_XSETREF(cfg_threading_file, tfile);
    Py_XINCREF(refuse);
    Py_XSETREF(cfg_refuse_lock_args, refuse);
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

/* set_aggregation(on, dirty, bounds, counting=on): turn summaries on or off; `dirty` is
 * the list the locks with counters are appended to, `bounds` the histogram boundaries in
 * seconds; `counting` false (no sink at all): the summary path counts nothing. */
static PyObject *
set_aggregation(PyObject *module, PyObject *args)
{
    int on, counting = -1;
    PyObject *dirty, *bounds;
    if (!PyArg_ParseTuple(args, "pO!O|p:set_aggregation", &on, &PyList_Type, &dirty, &bounds,
                          &counting))
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
    agg_counting = counting < 0 ? on : counting;
    Py_RETURN_NONE;
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

/* ------------------------------------------------------------------------------------ */
/* The module */

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
     "bump(prim, st, index, n=1): count n in prim's summary counter (atomic)."},
    {"bump_hold", (PyCFunction)(void (*)(void))py_bump_hold, METH_FASTCALL,
     "bump_hold(lock, st, held_ns): count an uncontended hold of a C lock (atomic)."},
    {"set_aggregation", set_aggregation, METH_VARARGS,
     "set_aggregation(on, dirty, bounds, counting=on): summaries of uncontended operations "
     "on or off; counting false: the summary path counts nothing (no sink)."},
    {"next_seq", next_seq, METH_NOARGS, "The next record sequence number."},
    {"now_ns", py_now_ns, METH_NOARGS, "time.monotonic_ns(), cheaper."},
    {"record", (PyCFunction)(void (*)(void))py_record, METH_FASTCALL,
     "record(op, info, st, t0, ok, blocked, held, site, details): append one record."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Bind the core's thread-local, buffer and constants."},
    {"set_append", set_append, METH_O, "Re-bind the buffer's append (buffer resized)."},
    {"set_detection", set_detection, METH_O,
     "Is the lock-order graph kept (configure(detection=...))?"},
    {NULL, NULL, 0, NULL},
};

/* Does a `_thread.lock` have the RawLockLayout (_speedups.h) here? Its size, and a real
 * lock's `locked` and PyThread lock followed through its own acquire and release. 1 yes,
 * 0 no, -1 error. TRACETHREAD_RAW_LOCK_METHODS=1 says no (the methods always). */
static int
raw_direct_check(PyTypeObject *tp, PyObject *allocate)
{
    const char *env = getenv("TRACETHREAD_RAW_LOCK_METHODS");
    if ((env != NULL && env[0] == '1') || tp->tp_basicsize != sizeof(RawLockLayout))
        return 0;
    PyObject *probe = PyObject_CallNoArgs(allocate);
    if (probe == NULL)
        return -1;
    if (Py_TYPE(probe) != tp) {
        Py_DECREF(probe);
        return 0;
    }
    RawLockLayout *l = (RawLockLayout *)probe;
    int ok = l->lock_lock != NULL && l->locked == 0;
    PyObject *args[2] = {probe, Py_False};
    PyObject *r = ok ? PyObject_Vectorcall(raw_acquire_descr, args, 2, NULL) : NULL;
    ok = r == Py_True && l->locked == 1 &&
         PyThread_acquire_lock_timed(l->lock_lock, 0, 0) == PY_LOCK_FAILURE;
    Py_XDECREF(r);
    if (ok) {
        r = PyObject_Vectorcall(raw_release_descr, args, 1, NULL);
        ok = r != NULL && l->locked == 0;
        Py_XDECREF(r);
    }
    if (ok && PyThread_acquire_lock_timed(l->lock_lock, 0, 0) == PY_LOCK_ACQUIRED) {
        l->locked = 1;   /* (taken directly: its own locked() must say so) */
        r = PyObject_CallMethod(probe, "locked", NULL);
        ok = r == Py_True;
        Py_XDECREF(r);
        l->locked = 0;
        PyThread_release_lock(l->lock_lock);
    } else {
        ok = 0;
    }
    Py_DECREF(probe);
    if (PyErr_Occurred())
        PyErr_Clear();
    return ok;
}

static int
module_exec(PyObject *m)
{
    Py_BUILD_ASSERT(N_COUNTERS < 32);   /* (the object slots are bits of an unsigned long) */
    Py_BUILD_ASSERT(sizeof(COUNTER_FORMAT) == N_COUNTERS + 3);   /* a code per slot, () */
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
    INTERN(str_lock_kind, "Lock");
    INTERN(str_agg, "_agg");
    INTERN(str_enter, "__enter__");
    INTERN(str_is_owned, "_is_owned");
    INTERN(str_release_save, "_release_save");
    INTERN(str_acquire_restore, "_acquire_restore");
    INTERN(str_release_save_py, "_release_save_py");
    INTERN(str_acquire_restore_py, "_acquire_restore_py");
    INTERN(str_default_release_save, "_default_release_save");
    INTERN(str_default_acquire_restore, "_default_acquire_restore");
    INTERN(str_default_is_owned, "_default_is_owned");
    INTERN(str_waiters, "_waiters");
    INTERN(str_remove, "remove");
    INTERN(str_append, "append");
    INTERN(str_wait_py, "_wait_py");
    INTERN(str_waiting, "waiting");
    INTERN(str_wait_since, "wait_since");
    INTERN(str_wait_bounded, "wait_bounded");
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
        PyObject *allocate = PyObject_GetAttrString(thread_mod, "allocate_lock");
        Py_DECREF(thread_mod);
        if (lock_type == NULL || allocate == NULL) {
            Py_XDECREF(lock_type);
            Py_XDECREF(allocate);
            return -1;
        }
        raw_acquire_descr = PyObject_GetAttr(lock_type, str_acquire);
        raw_release_descr = PyObject_GetAttr(lock_type, str_release);
        raw_locked_descr = PyObject_GetAttrString(lock_type, "locked");
        if (raw_acquire_descr == NULL || raw_release_descr == NULL || raw_locked_descr == NULL
            || !PyType_Check(lock_type)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "_thread.LockType is not a type");
            Py_DECREF(lock_type);
            Py_DECREF(allocate);
            return -1;
        }
        raw_lock_type = (PyTypeObject *)lock_type;   /* (the module keeps it) */
        raw_direct = raw_direct_check(raw_lock_type, allocate);
        Py_DECREF(allocate);
        if (raw_direct < 0)
            return -1;
        if (PyModule_AddIntConstant(m, "RAW_DIRECT", raw_direct) < 0)
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
    {
        /* COUNTER_FIELDS: the names of the counter layout's slots, in slot order. */
        static const char *const names[N_COUNTERS] = {
#define COUNTER_NAME_(NAME, name, kind) #name,
            COUNTER_LAYOUT(COUNTER_NAME_)
#undef COUNTER_NAME_
        };
        PyObject *fields = PyTuple_New(N_COUNTERS);
        if (fields == NULL)
            return -1;
        for (int i = 0; i < N_COUNTERS; i++) {
            PyObject *name = PyUnicode_InternFromString(names[i]);
            if (name == NULL) {
                Py_DECREF(fields);
                return -1;
            }
            PyTuple_SET_ITEM(fields, i, name);
        }
        int r = PyModule_AddObjectRef(m, "COUNTER_FIELDS", fields);
        Py_DECREF(fields);
        if (r < 0)
            return -1;
    }
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
