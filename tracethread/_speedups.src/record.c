/* Records as the C paths write them: the calling thread's state, sequence numbers, and the
 * record tuple appended to the buffer (its layout: tracethread/_core/records.py,
 * materialize()).
 *
 * emit() is the C locks' (lock.c); record(), next_seq() and now_ns() are the module
 * functions the Python paths use (tracethread/_core/stream.py), so records made either way
 * share one sequence and one clock (CLOCK_MONOTONIC, the clock of time.monotonic_ns).
 */
#include "_speedups.h"

static long long seq_counter = 0;   /* protected by the GIL */

/* The thread's state object (new reference), or NULL with an exception set. */
PyObject *
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

/* Append a record tuple to the buffer and drop our reference to it (0, or -1 with an
 * exception set). Nothing a record holds refers back to it, so it can never be part of a
 * cycle: it is kept away from the garbage collector, which would otherwise walk the whole
 * buffer. */
static int
append_record(PyObject *tuple)
{
    PyObject_GC_UnTrack(tuple);
    PyObject *r = PyObject_Vectorcall(cfg_append, &tuple, 1, NULL);
    Py_DECREF(tuple);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Append (seq, op, info, st, t0, t1, ok, blocked, held, site, details): the record
 * tuple of the C paths (held < 0: None; site NULL: None; t0 == t1: one int for both).
 * Nothing while no sink is attached (SINKS()). 0, or -1 with an exception set. */
int
emit_record(PyObject *op, PyObject *info, PyObject *st, long long t0, long long t1, int ok,
            int blocked, long long held_ns, PyObject *site, PyObject *details)
{
    if (!SINKS())
        return 0;   /* (nobody would read it) */
    PyObject *a = PyLong_FromLongLong(t0);
    PyObject *b = a == NULL ? NULL : t1 == t0 ? Py_NewRef(a) : PyLong_FromLongLong(t1);
    PyObject *held = b == NULL ? NULL
                     : held_ns >= 0 ? PyLong_FromLongLong(held_ns) : Py_NewRef(Py_None);
    PyObject *seq = held ? PyLong_FromLongLong(++seq_counter) : NULL;
    PyObject *tuple = seq ? PyTuple_New(11) : NULL;
    if (tuple == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_XDECREF(held);
        Py_XDECREF(seq);
        return -1;
    }
    PyObject *items[11] = {seq, Py_NewRef(op), Py_NewRef(info), Py_NewRef(st), a, b,
                           Py_NewRef(ok ? Py_True : Py_False),
                           Py_NewRef(blocked ? Py_True : Py_False), held,
                           Py_NewRef(site ? site : Py_None), Py_NewRef(details)};
    for (int i = 0; i < 11; i++)
        PyTuple_SET_ITEM(tuple, i, items[i]);   /* (steals) */
    return append_record(tuple);
}

/* An operation that did not wait, at one instant: (seq, op, info, st, t, t, True, False,
 * held, site, details). */
int
emit(PyObject *op, PyObject *info, PyObject *st, long long tns, long long held_ns,
     PyObject *site, PyObject *details)
{
    return emit_record(op, info, st, tns, tns, 1, 0, held_ns, site, details);
}

PyObject *
next_seq(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(++seq_counter);
}

PyObject *
py_now_ns(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(now_ns());
}

/* record(op, info, st, t0, ok, blocked, held, site, details): append one record whose end
 * is now (and whose start is t0, or now when t0 is None). The Python paths' one call per
 * record: sequence number, timestamp, tuple and append in C. */
PyObject *
py_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "record() takes exactly 9 arguments");
        return NULL;
    }
    if (!configured())
        return NULL;
    if (!SINKS())
        Py_RETURN_NONE;
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
    if (append_record(tuple) < 0)
        return NULL;
    Py_RETURN_NONE;
}
