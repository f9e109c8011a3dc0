/* PrimitiveInfo, the identity of one primitive (records.PrimitiveInfo in C), and making
 * one: make_info() names a new primitive (its name, else its creation site, looked up in
 * the site cache), rlock_for_condition() makes a Condition's default RLock with its info,
 * and untrack() keeps objects that cannot be in a cycle away from the garbage collector.
 *
 * PrimitiveInfo is not a GC type: it refers only to strings, an int and a Site (strings
 * and an int), so it can never be part of a cycle, and making one (two per Future) adds
 * nothing to the collector's allocation count, as a Python object with slots would. The
 * setters keep it that way. Its struct, PInfo, is in _speedups.h (take_summaries reads it).
 */
#include "_speedups.h"
#include "frameobject.h"

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

#if PY_VERSION_HEX >= 0x030B0000   /* (site_at's only caller) */
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
#endif

/* site_at(depth): the cached (Site, label) of the first frame outside tracethread,
 * starting `depth` frames above the Python function that called (the C function that
 * calls) this one, or None when
 * that place is not cached yet (records.caller_site_and_label then computes and caches
 * it under the same key, (code, f_lasti)). Python 3.11+ (f_lasti in bytes, as the frame
 * attribute gives it); None on older versions. The frame is reached with sys._getframe,
 * which makes one frame object (the one asked for) where a walk with PyFrame_GetBack
 * makes one per frame passed. */
static PyObject *
site_at(long depth)
{
#if PY_VERSION_HEX >= 0x030B0000
    if (cfg_site_cache == NULL || cfg_getframe == NULL)
        Py_RETURN_NONE;
    PyObject *fo;
    if (depth == 0) {   /* the frame running now (a constructor in C): no call needed */
        fo = (PyObject *)PyEval_GetFrame();
        if (fo == NULL)
            Py_RETURN_NONE;
        Py_INCREF(fo);
    } else {
        PyObject *d = PyLong_FromLong(depth);
        if (d == NULL)
            return NULL;
        fo = PyObject_CallOneArg(cfg_getframe, d);
        Py_DECREF(d);
    }
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

/* The Site (new reference) of the first frame outside tracethread, from the Python
 * frame running now up (a C method called from a Python function of tracethread's), or
 * None; as records.caller_site, whose cache it shares. NULL with an exception set. */
PyObject *
site_here(void)
{
    if (cfg_site_fallback == NULL)
        return Py_NewRef(Py_None);
    PyObject *found = site_at(0);
    if (found == Py_None) {
        Py_DECREF(found);
        PyObject *d = PyLong_FromLong(1);   /* (the fallback counts its own frame) */
        found = d ? PyObject_CallOneArg(cfg_site_fallback, d) : NULL;
        Py_XDECREF(d);
    }
    if (found == NULL || found == Py_None)
        return found;
    PyObject *site = PyTuple_Check(found) && PyTuple_GET_SIZE(found) == 3
                     ? Py_NewRef(PyTuple_GET_ITEM(found, 0)) : NULL;
    Py_DECREF(found);
    if (site == NULL)
        PyErr_SetString(PyExc_TypeError, "bad site cache entry");
    return site;
}

/* make_info(kind, name): the PrimitiveInfo of a primitive being made, as the pure
 * primitives._base.make_info: named `name` (a str; a str subclass's value), else after
 * its creation site, the first frame outside tracethread (the caller must be one of
 * tracethread's constructors), else "<kind>". The site comes from the site cache
 * (site_at) or, for a place not cached yet, from records.caller_site_and_label, which
 * caches it; those are tracethread's own Site objects (their fields not checked again). */
PyObject *
make_info(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "make_info(kind, name)");
        return NULL;
    }
    /* From C (no frame of its own), called by a Python constructor: 1 is its caller. */
    return make_info_at(args[0], args[1], 1);
}

/* make_info's work, the frames looked at from `depth` outwards (0: the frame running now,
 * for a constructor in C). */
PyObject *
make_info_at(PyObject *kind, PyObject *name, long depth)
{
    PyObject *plain = NULL;
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
    /* The fallback, a Python function, counts its own frame too. */
    PyObject *found = site_at(depth);
    if (found == Py_None) {
        Py_DECREF(found);
        PyObject *two = PyLong_FromLong(depth + 1);
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
PyObject *
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
PyObject *
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

PyType_Spec PInfo_spec = {
    .name = "tracethread.PrimitiveInfo",
    .basicsize = sizeof(PInfo),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = PInfo_slots,
};

/* untrack(obj): take obj out of the garbage collector's lists. Only for objects that can
 * never be part of a reference cycle (a PrimitiveInfo: ints, strings and a Site): one
 * per primitive, and with ten thousand Futures pending the collector's full passes walk
 * every one of them. */
PyObject *
py_untrack(PyObject *module, PyObject *obj)
{
    if (PyObject_IS_GC(obj) && PyObject_GC_IsTracked(obj))
        PyObject_GC_UnTrack(obj);
    Py_RETURN_NONE;
}
