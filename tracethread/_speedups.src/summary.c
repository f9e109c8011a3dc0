/* Summaries (tracethread/_core/summaries.py): while every sink accepts them, the
 * operations that neither waited nor woke a thread are counted on their primitive instead
 * of recorded one by one; each drain takes the counters and delivers one SUMMARY record per
 * (kind, name).
 *
 * Here: the counters of the C types (LockCore/RLockCore's fields, CondCore's array) and the
 * threads that counted; the `_tt_take()` tuple, in the counter layout of _speedups.h;
 * bump(), which counts for the Python-level primitives (in their `_agg` lists) and for
 * Conditions; take_summaries(), the drain's take and adding up per (kind, name).
 */
#include "_speedups.h"

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

int
seen_traverse(Seen *s, visitproc visit, void *arg)
{
    Py_VISIT(s->last);
    Py_VISIT(s->other);
    Py_VISIT(s->threads);
    return 0;
}

void
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
int
summary_touch(PyObject *prim, int *dirty, Seen *seen, PyObject *st)
{
    if (!*dirty) {
        if (PyList_Append(cfg_dirty, prim) < 0)
            return -1;
        *dirty = 1;
    }
    return seen_add(seen, st);
}

int
agg_touch(LockCore *self, PyObject *st)
{
    return summary_touch((PyObject *)self, &self->dirty, &self->seen, st);
}

/* An uncontended hold of `held_ns` ended. The bucket is the one the OpenTelemetry SDK
 * would choose for held_ns / 1e9 (bisect_left over the boundaries). */
void
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
void
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

/* A lock's counters in the counter layout (the others are not a lock's: 0). */
void
lock_counts(LockCore *l, long long c[N_COUNTERS])
{
    memset(c, 0, sizeof(long long) * N_COUNTERS);
    c[A_ACQUIRES] = l->acquires; c[A_REENTRIES] = l->reentries; c[A_RELEASES] = l->releases;
    c[A_INNER_RELEASES] = l->inner_releases; c[A_HOLD_SUM] = l->hold_sum;
    c[A_HOLD_MIN] = l->releases ? l->hold_min : 0; c[A_HOLD_MAX] = l->hold_max;
}

/* The counts of a taken summary, a tuple in the counter layout (COUNTER_FORMAT): the
 * counts c, and objs[i] in each object slot i, references that move into the tuple
 * (consumed even if it fails, as Py_BuildValue's "N" does). */
static PyObject *
build_counts(const long long *c, PyObject *const *objs)
{
#define COUNTER_ARG_COUNT(i) , c[i]
#define COUNTER_ARG_HOLD(i) , c[i]
#define COUNTER_ARG_OBJ(i) , objs[i]
#define COUNTER_ARG_(NAME, name, kind) COUNTER_ARG_##kind(A_##NAME)
    return Py_BuildValue(COUNTER_FORMAT COUNTER_LAYOUT(COUNTER_ARG_));
#undef COUNTER_ARG_
#undef COUNTER_ARG_OBJ
#undef COUNTER_ARG_HOLD
#undef COUNTER_ARG_COUNT
}

/* The `_tt_take` tuple: counters c (counter layout), bucket counts and sums (NULL: zeros),
 * and the threads seen (taken from `seen`). NULL with an exception set. */
PyObject *
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
    long long counts[N_COUNTERS];   /* (the minimum hold: 0 without releases) */
    memcpy(counts, c, sizeof(counts));
    if (!counts[A_RELEASES])
        counts[A_HOLD_MIN] = 0;
    PyObject *objs[N_COUNTERS] = {NULL};
    objs[A_BUCKETS] = bt;
    objs[A_BUCKET_SUMS] = st;
    objs[A_THREADS] = threads;
    return build_counts(counts, objs);
error:
    Py_XDECREF(bt);
    Py_XDECREF(st);
    Py_XDECREF(threads);
    return NULL;
}

/* The counters list (`_agg`) of a Python-level primitive (Condition, Semaphore, Event), the
 * layout of tracethread/_core/summaries.py: the counter layout, with bucket counts, bucket
 * sums (lists, or None: no holds) and the thread set (None while one thread counted) in its
 * object slots, then the last thread (A_LAST). */
static PyObject *
new_counters(void)
{
    PyObject *a = PyList_New(A_LEN);
    if (a == NULL)
        return NULL;
    for (int i = 0; i < A_LEN; i++) {
        PyObject *v;
        if (counter_is_obj(i) || i == A_LAST) {
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
PyObject *
py_bump(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "bump() takes 3 or 4 arguments");
        return NULL;
    }
    PyObject *prim = args[0], *st = args[1];
    Py_ssize_t index = PyLong_AsSsize_t(args[2]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    long long by = 1;
    if (nargs == 4) {
        by = PyLong_AsLongLong(args[3]);
        if (by == -1 && PyErr_Occurred())
            return NULL;
        if (by < 0) {
            PyErr_SetString(PyExc_ValueError, "bump(): a count is never negative");
            return NULL;
        }
    }
    if (index < 0 || index >= A_LEN || index == A_LAST || counter_is_obj(index)) {
        PyErr_SetString(PyExc_ValueError, "bump(): not a counter index");
        return NULL;
    }
    if (cfg_dirty == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bump(): aggregation was never set up");
        return NULL;
    }
    if (!agg_counting)
        Py_RETURN_NONE;   /* no sink: nothing is counted */
    if (PyObject_TypeCheck(prim, CondCore_Type)) {
        if (cond_count((CondCore *)prim, st, index, by) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (PyObject_TypeCheck(prim, LockCore_Type) || PyObject_TypeCheck(prim, RLockCore_Type)) {
        /* (the Python paths of the C locks: a Condition's wait over an RLock) */
        LockCore *l = (LockCore *)prim;
        if (index == A_ACQUIRES)
            l->acquires += by;
        else if (index == A_REENTRIES)
            l->reentries += by;
        else if (index == A_INNER_RELEASES)
            l->inner_releases += by;
        else {
            PyErr_SetString(PyExc_ValueError, "bump(): not a lock's counter");
            return NULL;
        }
        if (agg_touch(l, st) < 0)
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
    PyObject *byo = PyLong_FromLongLong(by);
    PyObject *v = byo ? PyNumber_Add(old, byo) : NULL;
    Py_XDECREF(byo);
    if (v == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    PyList_SetItem(a, index, v);   /* steals v, releases old */
    Py_DECREF(a);
    Py_RETURN_NONE;
}

/* bump_hold(lock, st, held_ns): count an uncontended hold of a C lock that ended on a
 * Python path (an RLock's release inside Condition.wait), as its C release would. */
PyObject *
py_bump_hold(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "bump_hold() takes exactly 3 arguments");
        return NULL;
    }
    PyObject *prim = args[0];
    if (!PyObject_TypeCheck(prim, LockCore_Type) && !PyObject_TypeCheck(prim, RLockCore_Type)) {
        PyErr_SetString(PyExc_TypeError, "bump_hold(): not a C lock");
        return NULL;
    }
    long long held = PyLong_AsLongLong(args[2]);
    if (held == -1 && PyErr_Occurred())
        return NULL;
    if (cfg_dirty == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bump_hold(): aggregation was never set up");
        return NULL;
    }
    if (!agg_counting)
        Py_RETURN_NONE;
    agg_hold((LockCore *)prim, held < 0 ? 0 : held);
    if (agg_touch((LockCore *)prim, args[1]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* One (kind, name) of take_summaries: its counters added up. */
typedef struct {
    PyObject *info, *ids, *threads;   /* strong; threads: a set */
    PyObject *kind, *name;            /* strong: the group's key */
    long long c[N_COUNTERS];
    long long buckets[MAX_BOUNDS + 1], sums[MAX_BOUNDS + 1];
} Group;

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
#define SUMMED_(NAME, name, kind) COUNTER_SUMMED_##kind(A_##NAME)
    static const int counts[] = {COUNTER_LAYOUT(SUMMED_)};   /* the COUNT slots */
#undef SUMMED_
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        g->c[counts[i]] += c[counts[i]];
    if (c[A_RELEASES]) {
        if (!g->c[A_RELEASES] || c[A_HOLD_MIN] < g->c[A_HOLD_MIN])
            g->c[A_HOLD_MIN] = c[A_HOLD_MIN];
        g->c[A_RELEASES] += c[A_RELEASES];
        g->c[A_HOLD_SUM] += c[A_HOLD_SUM];
        if (c[A_HOLD_MAX] > g->c[A_HOLD_MAX])
            g->c[A_HOLD_MAX] = c[A_HOLD_MAX];
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

/* take_summaries(prims): take the counters of every listed primitive (C locks, and the
 * `_agg` lists of the Python-level ones) and add them up per (kind, name) of their info.
 * Returns [(info of the first, [instance ids], counts)], counts in the `_tt_take` layout
 * (threads: a tuple). The drain's per-primitive work in one C loop: a Future's Condition
 * and RLock are two primitives per task. */
PyObject *
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
        long long c[N_COUNTERS] = {0}, b_[MAX_BOUNDS + 1], bs_[MAX_BOUNDS + 1];
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
            if (!c[A_RELEASES])
                c[A_HOLD_MIN] = 0;
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
            for (int i = 0; i < N_COUNTERS; i++) {
                if (counter_is_obj(i))
                    continue;
                c[i] = PyLong_AsLongLong(PyList_GET_ITEM(a, i));
                if (c[i] == -1 && PyErr_Occurred()) {
                    Py_DECREF(a);
                    goto error;
                }
            }
            if (!c[A_RELEASES])
                c[A_HOLD_MIN] = 0;
            int r1 = list_to_ll(PyList_GET_ITEM(a, A_BUCKETS), b_, nb);
            int r2 = r1 < 0 ? -1 : list_to_ll(PyList_GET_ITEM(a, A_BUCKET_SUMS), bs_, nb);
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
        PyObject *objs[N_COUNTERS] = {NULL};
        objs[A_BUCKETS] = bt;
        objs[A_BUCKET_SUMS] = st;
        objs[A_THREADS] = tt;
        PyObject *counts = build_counts(g->c, objs);
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
