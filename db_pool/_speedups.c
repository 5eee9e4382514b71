/*
 * db_pool._speedups: the fast paths of BaseConnectionPool.get() and put()
 * in C.
 *
 * Only the common case runs here: on get(), a fresh idle connection and
 * nobody in line; on put(), a connection of this pool that needs nothing
 * special.  Every other case goes to the Python methods (kept on the class
 * as _py_get and _py_put), before this code has changed any state, or to
 * the same Python helpers that the Python fast paths call (_checkout_slow,
 * _after_checkout, _reset, _reset_failed, _hand_off).  The logic is line for
 * line that of the Python fast paths in pool.py; a change to one is a
 * change to both, and the test suite runs over both (DB_POOL_PURE_PYTHON=1
 * selects the Python code).
 *
 * Attributes are read and written through the slots that pool.py declares
 * (BaseConnectionPool, _Record and PooledConnectionWrapper all have
 * __slots__ for what is used here): their offsets are looked up once, from
 * the classes' member descriptors, by install().
 *
 * The code never holds state across a call into Python: any call may switch
 * green threads (a reset talks to the database), so everything is read
 * again afterwards, as the Python code does.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
Py_NewRef(PyObject *obj)
{
    Py_INCREF(obj);
    return obj;
}
static inline PyObject *
Py_XNewRef(PyObject *obj)
{
    Py_XINCREF(obj);
    return obj;
}
#endif

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Store *value* (a new reference, stolen) in a slot; drop the old value. */
static inline void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

typedef struct {
    int installed;
    PyTypeObject *pool_type;
    PyTypeObject *record_type;
    PyTypeObject *wrapper_type;
    PyTypeObject *waiter_type;
    PyTypeObject *waker_type;
    PyObject *py_get;           /* the Python get(), for every other case */
    PyObject *py_put;           /* the Python put() */
    PyObject *py_cursor;        /* PooledConnectionWrapper's Python cursor() */
    PyObject *py_del;           /* PooledConnectionWrapper's Python __del__ */
    PyObject *hand_off_descr;   /* the C _hand_off, as installed on the class */
    PyObject *py_reset;         /* BaseConnectionPool._reset */
    PyObject *reset_overran;    /* _ResetOverran */
    PyObject *proxy_type;       /* eventlet.tpool.Proxy */
    PyObject *globals;          /* pool.py's globals (_fork_generation) */
    PyObject *cleanup_rollback;
    PyObject *missing;          /* put(cleanup=...) not given */
    PyObject *default_;         /* get(timeout=...) not given */
    PyObject *empty_tuple;
    PyObject *empty;            /* a waiter not yet served */
    PyObject *timed_out;        /* a waiter whose deadline passed */
    PyObject *wait_buckets;     /* WAIT_BUCKETS: a tuple of floats */
    PyObject *wake_one;         /* _wake_one */
    PyObject *get_hub;
    PyObject *hub_local;        /* eventlet's per-thread holder of the hub */
    PyObject *base_hub_switch;  /* eventlet's BaseHub.switch */
    PyObject *getcurrent;
    PyObject *getweakrefcount;  /* weakref.getweakrefcount */
    /* BaseConnectionPool slots */
    Py_ssize_t p_free, p_waiters, p_spares, p_checkouts, p_out_hooks,
        p_in_hooks, p_max_uses, p_is_closed, p_hold, p_cleanup,
        p_reset_timeout, p_resets, p_resets_skipped, p_idle_window, p_closed,
        p_waking, p_waits, p_wait_time_total, p_wait_time_max, p_wait_buckets,
        p_pool_timeout, p_max_waiting, p_on_at_max, p_resets_running, p_watchdog, p_closed_attr, p_closed_negated,
        p_status_method;
    /* _Waiter slots */
    Py_ssize_t q_greenlet, q_value, q_hub, q_woken, q_deadline;
    /* _Waker slot, and the pool's */
    Py_ssize_t k_called, p_waker, p_wait_watch_due;
    /* _Record slots */
    Py_ssize_t r_conn, r_fresh_until, r_uses, r_checkout_at, r_pool, r_where,
        r_last_used, r_expires_at, r_broken, r_generation, r_status,
        r_suspect;
    /* PooledConnectionWrapper slot */
    Py_ssize_t w_record;
} State;

static State S;

static PyObject *str_popleft, *str_append, *str_appendleft, *str_checkout_slow,
    *str_after_checkout, *str_reset, *str_reset_failed, *str_hand_off,
    *str_wrapper_class, *str_fork_generation, *str_rollback, *str_block,
    *str_timeout, *str_cleanup, *str_conn, *str_monotonic, *str_discard_and_release,
    *str_reset_failed_reason, *int_one, *str_switch, *str_schedule_call_global,
    *str_abandon_wait, *str_finish_checkout, *str_current_size, *str_max_size,
    *float_zero, *str_return_record, *str_add_timer, *str_wake_rest,
    *str_watch_waits, *str_timed_out, *str_schedule, *str_hub, *str_greenlet,
    *str_dead, *str_parent, *str_switch_out, *str_cursor, *str_arm_reset_watchdog,
    *str_reset_overran, *str_pool;

static PyObject *time_monotonic; /* only where clock_gettime is not time.monotonic */

/* time.monotonic(), without the call. */
static inline int
monotonic(double *out)
{
#if defined(__linux__)
    /* CPython's time.monotonic() on Linux: CLOCK_MONOTONIC, converted the
     * same way (nanoseconds, then one division), so both give equal
     * readings. */
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) {
        long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        *out = (double)ns / 1e9;
        return 0;
    }
#endif
    PyObject *r = PyObject_CallNoArgs(time_monotonic);
    if (r == NULL)
        return -1;
    *out = PyFloat_AsDouble(r);
    Py_DECREF(r);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static inline PyObject *
call_method0(PyObject *obj, PyObject *name)
{
    return PyObject_VectorcallMethod(
        name, &obj, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static inline PyObject *
call_method1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    return PyObject_VectorcallMethod(
        name, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static inline PyObject *
call1(PyObject *func, PyObject *arg)
{
    PyObject *args[2] = {NULL, arg};
    return PyObject_Vectorcall(
        func, args + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* A slot's value, borrowed; NULL (with AttributeError) when unset. */
static inline PyObject *
slot_get(PyObject *obj, Py_ssize_t off, const char *name)
{
    PyObject *v = SLOT(obj, off);
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'",
                     Py_TYPE(obj)->tp_name, name);
    return v;
}

static inline int
as_double(PyObject *v, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 0;
    }
    *out = PyFloat_AsDouble(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* 1 if *obj*'s class takes *name* from where *impl* stands (no subclass
 * overrides it), else 0: the C code then runs the C version itself. */
static inline int
inherits(PyObject *obj, PyObject *name, PyObject *impl)
{
    return _PyType_Lookup(Py_TYPE(obj), name) == impl;
}

/* Add *delta* to an int slot. */
static inline int
slot_incr(PyObject *obj, Py_ssize_t off, const char *name)
{
    PyObject *v = slot_get(obj, off, name);
    if (v == NULL)
        return -1;
    PyObject *n = PyNumber_Add(v, int_one);
    if (n == NULL)
        return -1;
    slot_set(obj, off, n);
    return 0;
}

static inline int
slot_set_double(PyObject *obj, Py_ssize_t off, double value)
{
    PyObject *f = PyFloat_FromDouble(value);
    if (f == NULL)
        return -1;
    slot_set(obj, off, f);
    return 0;
}

static inline int
truthy(PyObject *v)
{
    if (v == Py_True)
        return 1;
    if (v == Py_False || v == Py_None)
        return 0;
    return PyObject_IsTrue(v);
}

/* Call the Python method *func* with self prepended to the arguments. */
static PyObject *
fall_back(PyObject *func, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    PyObject *bound = PyMethod_New(func, self);
    if (bound == NULL)
        return NULL;
    PyObject *r = PyObject_Vectorcall(bound, args, nargs, kwnames);
    Py_DECREF(bound);
    return r;
}

/* The arguments of a method taking two, *name1* and *name2* (positional
 * or by keyword), into *arg1* and *arg2*, which hold their defaults.  0
 * for anything else (too many, an unknown or repeated keyword): the Python
 * method then takes the call and raises what Python raises. */
static int
two_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject *name1,
         PyObject **arg1, PyObject *name2, PyObject **arg2)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2)
        return 0;
    if (nargs >= 1)
        *arg1 = args[0];
    if (nargs == 2)
        *arg2 = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (nargs < 1 && (name == name1 || PyUnicode_Compare(name, name1) == 0))
            *arg1 = args[nargs + i];
        else if (nargs < 2 && (name == name2 || PyUnicode_Compare(name, name2) == 0))
            *arg2 = args[nargs + i];
        else {
            PyErr_Clear();
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ get */

/* 1 if weak references to *obj* exist, 0 if not, -1 on error. */
static inline int
has_weakrefs(PyObject *obj)
{
    Py_ssize_t off = Py_TYPE(obj)->tp_weaklistoffset;
    if (off > 0)
        return *(PyObject **)((char *)obj + off) != NULL;
    /* Python 3.12+ keeps the list where only the interpreter looks
     * (a "managed" weak reference list): ask weakref.getweakrefcount(). */
    PyObject *n = call1(S.getweakrefcount, obj);
    if (n == NULL)
        return -1;
    int t = PyObject_IsTrue(n);
    Py_DECREF(n);
    return t;
}

/* A new wrapper of the pool's wrapper_class (a new reference). */
static PyObject *
new_wrapper(PyObject *self)
{
    PyObject *cls = PyObject_GetAttr(self, str_wrapper_class);
    if (cls == NULL)
        return NULL;
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "wrapper_class must be a class, not %.100s",
                     Py_TYPE(cls)->tp_name);
        Py_DECREF(cls);
        return NULL;
    }
    PyObject *w = PyBaseObject_Type.tp_new((PyTypeObject *)cls, S.empty_tuple, NULL);
    Py_DECREF(cls);
    if (w != NULL && !PyObject_TypeCheck(w, S.wrapper_type)) {
        PyErr_SetString(PyExc_TypeError,
                        "wrapper_class must be a PooledConnectionWrapper subclass");
        Py_CLEAR(w);
    }
    return w;
}

/* Lend *rec* (borrowed; fresh, its slot held) to the caller: the end of
 * every checkout that the C code completes, as the Python code's.  With
 * *use_spares*, a returned wrapper that nobody references any more is
 * reused.  rec.pool is set to the pool first; on an error before that, the
 * record is not lent (the caller puts it back). */
static PyObject *
lend(PyObject *self, PyObject *rec, double now, int use_spares)
{
    if (slot_incr(rec, S.r_uses, "uses") < 0)
        return NULL;
    PyObject *now_obj = PyFloat_FromDouble(now);
    if (now_obj == NULL)
        return NULL;
    slot_set(rec, S.r_checkout_at, now_obj);
    Py_INCREF(self);
    slot_set(rec, S.r_pool, self);
    if (slot_incr(self, S.p_checkouts, "_checkouts") < 0)
        goto not_lent;
    {
        /* Where the caller checked it out (for leak reports): the calling
         * Python frame, as this code has none of its own. */
        PyFrameObject *frame = PyEval_GetFrame();
        PyObject *code = frame ? (PyObject *)PyFrame_GetCode(frame) : Py_NewRef(Py_None);
        slot_set(rec, S.r_where, code);
    }

    /* A returned wrapper that nobody else references any more saves making
     * a new one: popped from the deque, our reference is its only one. */
    PyObject *w = NULL;
    PyObject *spares = SLOT(self, S.p_spares);
    if (use_spares && spares != NULL && spares != Py_None) {
        Py_ssize_t n = PyObject_Size(spares);
        if (n < 0)
            goto not_lent;
        if (n > 0) {
            w = call_method0(spares, str_popleft);
            if (w == NULL)
                goto not_lent;
            int held = Py_REFCNT(w) != 1 || Py_TYPE(w) != S.wrapper_type;
            if (!held && (held = has_weakrefs(w)) < 0) {
                Py_DECREF(w);
                goto not_lent;
            }
            if (held) {
                /* still held: try it again later */
                PyObject *r = call_method1(spares, str_append, w);
                Py_DECREF(w);
                w = NULL;
                if (r == NULL)
                    goto not_lent;
                Py_DECREF(r);
            }
        }
    }
    if (w == NULL && (w = new_wrapper(self)) == NULL)
        goto not_lent;
    Py_INCREF(rec);
    slot_set(w, S.w_record, rec);
    /* Lent: from here on, a wrapper dropped on an error gives the slot
     * back through its finalizer, as in the Python code. */

    PyObject *hooks = slot_get(self, S.p_out_hooks, "_checkout_hooks");
    int on = hooks ? truthy(hooks) : -1;
    if (on < 0) {
        Py_DECREF(w);
        return NULL;
    }
    if (on) {
        PyObject *cargs[3] = {self, rec, int_one};
        PyObject *r = PyObject_VectorcallMethod(str_after_checkout, cargs,
                                                3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL) {
            Py_DECREF(w);
            return NULL;
        }
        Py_DECREF(r);
    }
    return w;

not_lent:
    /* The caller still holds the record and gives it back. */
    Py_INCREF(Py_None);
    slot_set(rec, S.r_pool, Py_None);
    return NULL;
}

/* Returned by wait_in_line() when the Python code must take over. */
static PyObject not_handled_object;
#define NOT_HANDLED (&not_handled_object)

/* A new error is set while the error (et, ev, tb), fetched earlier, was
 * being handled: the first becomes the new one's __context__, as in
 * Python.  Takes over the three references; the new error stays set. */
static void
chain_to(PyObject *et, PyObject *ev, PyObject *tb)
{
    PyObject *et2, *ev2, *tb2;
    PyErr_Fetch(&et2, &ev2, &tb2);
    PyErr_NormalizeException(&et2, &ev2, &tb2);
    if (tb2 != NULL)
        PyException_SetTraceback(ev2, tb2);
    PyErr_NormalizeException(&et, &ev, &tb);
    if (tb != NULL)
        PyException_SetTraceback(ev, tb);
    if (ev2 != ev)
        PyException_SetContext(ev2, ev); /* steals ev */
    else
        Py_DECREF(ev);
    Py_DECREF(et);
    Py_XDECREF(tb);
    PyErr_Restore(et2, ev2, tb2);
}

/* args[0].name(*args[1:]) while an error is set, which stays set: the
 * clean-up on the way out of a failure.  An error of the clean-up itself
 * is dropped; the first one is the one to report. */
static void
clean_up_after_error(PyObject *name, PyObject *const *args, size_t nargs)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *r = PyObject_VectorcallMethod(name, args,
                                            nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL)
        PyErr_Clear();
    else
        Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
}

/* The interrupted waiter leaves the line (or passes on what it was served):
 * self._abandon_wait(waiter), with the interruption raised again. */
static PyObject *
abandon_wait(PyObject *self, PyObject *waiter)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *r = call_method1(self, str_abandon_wait, waiter);
    if (r == NULL) {
        chain_to(et, ev, tb);
        return NULL;
    }
    Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
    return NULL;
}

/* Add one wait of *wait* seconds to the pool's statistics. */
static int
count_wait(PyObject *self, double wait)
{
    PyObject *v;
    double total, longest;
    if (slot_incr(self, S.p_waits, "_waits") < 0)
        return -1;
    if ((v = slot_get(self, S.p_wait_time_total, "_wait_time_total")) == NULL ||
        as_double(v, &total) < 0 || slot_set_double(self, S.p_wait_time_total, total + wait) < 0)
        return -1;
    if ((v = slot_get(self, S.p_wait_time_max, "_wait_time_max")) == NULL ||
        as_double(v, &longest) < 0)
        return -1;
    if (wait > longest && slot_set_double(self, S.p_wait_time_max, wait) < 0)
        return -1;
    /* bisect_left(WAIT_BUCKETS, wait) */
    Py_ssize_t i, n = PyTuple_GET_SIZE(S.wait_buckets);
    for (i = 0; i < n; i++) {
        if (PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(S.wait_buckets, i)) >= wait)
            break;
    }
    PyObject *buckets = slot_get(self, S.p_wait_buckets, "_wait_buckets");
    if (buckets == NULL)
        return -1;
    if (!PyList_CheckExact(buckets) || PyList_GET_SIZE(buckets) != n + 1) {
        PyErr_SetString(PyExc_RuntimeError, "the pool's wait histogram is damaged");
        return -1;
    }
    PyObject *count = PyNumber_Add(PyList_GET_ITEM(buckets, i), int_one);
    if (count == NULL)
        return -1;
    return PyList_SetItem(buckets, i, count); /* steals count */
}

/* ---------------------------------------------------------- the hub */

/* eventlet.hubs.get_hub(), reading where it reads first (a new reference). */
static PyObject *
current_hub(void)
{
    PyObject *hub = PyObject_GetAttr(S.hub_local, str_hub);
    if (hub != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError))
        return hub;
    PyErr_Clear();
    return PyObject_CallNoArgs(S.get_hub); /* makes this thread's hub */
}

/* getattr(obj, name, None) as a new reference; NULL only on an error. */
static PyObject *
optional_attr(PyObject *obj, PyObject *name)
{
    PyObject *v;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyObject_GetOptionalAttr(obj, name, &v) < 0)
        return NULL;
#else
    if (_PyObject_LookupAttr(obj, name, &v) < 0)
        return NULL;
#endif
    return v != NULL ? v : Py_NewRef(Py_None);
}

/* hub.switch() for the green thread *me*: what eventlet's Hub.switch does
 * (make the hub our parent, switch to its greenlet), without running it
 * as Python code.  Anything unusual (a hub class with a switch() of its
 * own, a green thread with a switch_out hook, a hub greenlet that ended)
 * calls hub.switch() itself. */
static PyObject *
hub_switch(PyObject *hub, PyObject *me)
{
    if (!inherits(hub, str_switch, S.base_hub_switch))
        return call_method0(hub, str_switch);
    PyObject *hook = optional_attr(me, str_switch_out);
    if (hook == NULL)
        return NULL;
    Py_DECREF(hook);
    if (hook != Py_None)
        return call_method0(hub, str_switch);
    PyObject *hg = PyObject_GetAttr(hub, str_greenlet);
    if (hg == NULL)
        return NULL;
    PyObject *v = PyObject_GetAttr(hg, str_dead);
    int t = v ? truthy(v) : -1;
    Py_XDECREF(v);
    if (t != 0) {
        Py_DECREF(hg);
        return t < 0 ? NULL : call_method0(hub, str_switch);
    }
    if (hg == me) {
        /* As eventlet's assertion: the hub cannot wait for itself. */
        Py_DECREF(hg);
        PyErr_SetString(PyExc_AssertionError, "Cannot switch to MAINLOOP from MAINLOOP");
        return NULL;
    }
    /* eventlet: if the hub's parent is not us, we get the hub as parent
     * (skipped when we have it already: the same assignment). */
    PyObject *hub_parent = PyObject_GetAttr(hg, str_parent);
    if (hub_parent == NULL) {
        Py_DECREF(hg);
        return NULL;
    }
    Py_DECREF(hub_parent);
    if (hub_parent != me) {
        PyObject *mine = PyObject_GetAttr(me, str_parent);
        if (mine == NULL) {
            Py_DECREF(hg);
            return NULL;
        }
        Py_DECREF(mine);
        if (mine != hg && PyObject_SetAttr(me, str_parent, hg) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(hg);
                return NULL;
            }
            PyErr_Clear(); /* a parent cycle: eventlet ignores it too */
        }
    }
    PyObject *r = call_method0(hg, str_switch);
    Py_DECREF(hg);
    return r;
}

static PyObject *wait_with_limit(PyObject *self, PyObject *waiters, Py_ssize_t n_waiters,
                                 PyObject *timeout_value, double limit);

/* get() with every connection in use: wait in line, first come first
 * served, as _checkout_slow() and _wait() do, for the common case only:
 * blocking, no limit on the line reached, no listener for "pool_at_max".  Anything else returns NOT_HANDLED before touching any
 * state; so does a connection handed over that needs a check (the Python
 * code finishes the checkout then). */
static PyObject *
wait_in_line(PyObject *self, PyObject *block, PyObject *timeout, PyObject *waiters,
             Py_ssize_t n_waiters)
{
    int t;

    if ((t = truthy(block)) <= 0)
        return t < 0 ? NULL : NOT_HANDLED;
    /* The deadline: a timeout given, or the pool's pool_timeout.  Only a
     * plain positive number is taken here; the Python code checks and
     * handles anything else (0 raises at once, a bad value a ValueError). */
    double limit = 0.0;
    PyObject *timeout_value;
    if (timeout == S.default_) {
        if ((timeout_value = slot_get(self, S.p_pool_timeout, "pool_timeout")) == NULL)
            return NULL;
        Py_INCREF(timeout_value);
    }
    else {
        timeout_value = Py_NewRef(timeout);
    }
    if (timeout_value != Py_None) {
        if (!PyFloat_CheckExact(timeout_value) && !PyLong_CheckExact(timeout_value)) {
            Py_DECREF(timeout_value);
            return NOT_HANDLED;
        }
        limit = PyFloat_AsDouble(timeout_value);
        if (limit == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            limit = 0.0;
        }
        if (!(limit > 0.0 && limit < 1e12)) {
            Py_DECREF(timeout_value);
            return NOT_HANDLED;
        }
    }
    PyObject *r = wait_with_limit(self, waiters, n_waiters, timeout_value, limit);
    Py_DECREF(timeout_value);
    return r;
}

/* wait_in_line(), once the deadline is known: *limit* seconds (0: none). */
static PyObject *
wait_with_limit(PyObject *self, PyObject *waiters, Py_ssize_t n_waiters,
                PyObject *timeout_value, double limit)
{
    PyObject *v;
    int t;
    if ((v = slot_get(self, S.p_closed, "_closed")) == NULL)
        return NULL;
    if ((t = truthy(v)) != 0)
        return t < 0 ? NULL : NOT_HANDLED;
    if (n_waiters == 0) {
        /* Nobody in line and nothing free: wait only if there is no room
         * to open a connection. */
        PyObject *size = PyObject_GetAttr(self, str_current_size);
        PyObject *max_size = size ? PyObject_GetAttr(self, str_max_size) : NULL;
        t = max_size ? PyObject_RichCompareBool(size, max_size, Py_LT) : -1;
        Py_XDECREF(size);
        Py_XDECREF(max_size);
        if (t != 0)
            return t < 0 ? NULL : NOT_HANDLED;
    }
    if ((v = slot_get(self, S.p_max_waiting, "max_waiting")) == NULL)
        return NULL;
    if (v != Py_None) {
        PyObject *n = PyLong_FromSsize_t(n_waiters);
        t = n ? PyObject_RichCompareBool(n, v, Py_GE) : -1;
        Py_XDECREF(n);
        if (t != 0)
            return t < 0 ? NULL : NOT_HANDLED;
    }
    /* A "pool_at_max" listener: the Python code fires it. */
    if ((v = slot_get(self, S.p_on_at_max, "_on_pool_at_max")) == NULL)
        return NULL;
    if ((t = truthy(v)) != 0)
        return t < 0 ? NULL : NOT_HANDLED;

    double start;
    if (monotonic(&start) < 0)
        return NULL;
    PyObject *hub = current_hub();
    if (hub == NULL)
        return NULL;
    PyObject *me = PyObject_CallNoArgs(S.getcurrent);
    if (me == NULL) {
        Py_DECREF(hub);
        return NULL;
    }
    PyObject *waiter = PyBaseObject_Type.tp_new(S.waiter_type, S.empty_tuple, NULL);
    if (waiter == NULL) {
        Py_DECREF(hub);
        Py_DECREF(me);
        return NULL;
    }
    slot_set(waiter, S.q_greenlet, me);
    slot_set(waiter, S.q_value, Py_NewRef(S.empty));
    slot_set(waiter, S.q_hub, hub); /* the waiter owns it now */
    slot_set(waiter, S.q_woken, Py_NewRef(Py_False));
    PyObject *deadline = Py_NewRef(Py_None);
    if (limit > 0.0) {
        Py_DECREF(deadline);
        if ((deadline = PyFloat_FromDouble(start + limit)) == NULL) {
            Py_DECREF(waiter);
            return NULL;
        }
    }
    slot_set(waiter, S.q_deadline, Py_NewRef(deadline));
    /* Read again: the attribute lookups above may have run Python code. */
    waiters = SLOT(self, S.p_waiters);
    PyObject *r = waiters ? call_method1(waiters, str_append, waiter) : NULL;
    if (r == NULL) {
        Py_DECREF(deadline);
        Py_DECREF(waiter);
        return NULL;
    }
    Py_DECREF(r);
    if (deadline != Py_None) {
        /* The wait watchdog must run by our deadline: as _wait() does. */
        PyObject *due = slot_get(self, S.p_wait_watch_due, "_wait_watch_due");
        double due_at = 0.0;
        int sooner = due == NULL ? -1 : due == Py_None ? 1 : 0;
        if (sooner == 0) {
            if (as_double(due, &due_at) < 0)
                sooner = -1;
            else
                sooner = start + limit < due_at;
        }
        if (sooner > 0) {
            PyObject *wargs[3] = {self, deadline, SLOT(waiter, S.q_hub)};
            r = PyObject_VectorcallMethod(str_watch_waits, wargs,
                                          3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (r == NULL)
                sooner = -1;
            else
                Py_DECREF(r);
        }
        if (sooner < 0) {
            abandon_wait(self, waiter);
            Py_DECREF(deadline);
            Py_DECREF(waiter);
            return NULL;
        }
    }

    /* Yield point: sleep until _hand_off() gives us a slot. */
    while (SLOT(waiter, S.q_value) == S.empty) {
        r = hub_switch(SLOT(waiter, S.q_hub), SLOT(waiter, S.q_greenlet));
        if (r == NULL) {
            abandon_wait(self, waiter);
            Py_DECREF(deadline);
            Py_DECREF(waiter);
            return NULL;
        }
        Py_DECREF(r);
    }
    PyObject *value = Py_NewRef(SLOT(waiter, S.q_value));
    Py_DECREF(waiter);
    if (value == S.timed_out) {
        /* The watchdog took us out of the line: raise self._timed_out(). */
        Py_DECREF(value);
        Py_DECREF(deadline);
        PyObject *exc = call_method1(self, str_timed_out, timeout_value);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }

    double now, fresh_until;
    if (Py_TYPE(value) == S.record_type) {
        if (monotonic(&now) < 0 ||
            as_double(SLOT(value, S.r_fresh_until), &fresh_until) < 0)
            goto finish_in_python;
        if (now < fresh_until) {
            /* Handed over fresh (the usual case): nothing to check. */
            if (count_wait(self, now - start) < 0)
                goto finish_in_python;
            /* After a wait the spares are still held, nearly always, by
             * the callers that returned them (and now wait in line). */
            PyObject *w = lend(self, value, now, 0);
            if (w == NULL && SLOT(value, S.r_pool) != self)
                goto finish_in_python;
            Py_DECREF(value);
            Py_DECREF(deadline);
            return w;
        }
    }
finish_in_python:
    /* A slot with no connection, a connection to check, the pool closed,
     * or an error above (raised from there, with the slot given back). */
    if (PyErr_Occurred()) {
        /* Not lent: the connection goes back, then the error is raised. */
        if (Py_TYPE(value) == S.record_type) {
            PyObject *rargs[2] = {self, value};
            clean_up_after_error(str_return_record, rargs, 2);
        }
        r = NULL;
    }
    else {
        PyObject *start_obj = PyFloat_FromDouble(start);
        PyObject *fargs[6] = {self, value, start_obj, deadline, Py_True, int_one};
        r = start_obj ? PyObject_VectorcallMethod(str_finish_checkout, fargs,
                                                  6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                      : NULL;
        Py_XDECREF(start_obj);
    }
    Py_DECREF(value);
    Py_DECREF(deadline);
    return r;
}

static PyObject *
checkout_slow(PyObject *self, PyObject *block, PyObject *timeout, PyObject *rec,
              double now)
{
    /* self._checkout_slow(block, timeout, 1, rec, now): depth 1 is our
     * caller's frame, as this function has no Python frame of its own. */
    PyObject *now_obj = Py_None, *r;
    if (rec != Py_None) {
        now_obj = PyFloat_FromDouble(now);
        if (now_obj == NULL)
            return NULL;
    }
    else {
        Py_INCREF(now_obj);
    }
    PyObject *args[6] = {self, block, timeout, int_one, rec, now_obj};
    r = PyObject_VectorcallMethod(str_checkout_slow, args,
                                  6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(now_obj);
    return r;
}

static PyObject *
fast_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *block = Py_True, *timeout = S.default_;
    if (!two_args(args, nargs, kwnames, str_block, &block, str_timeout, &timeout))
        return fall_back(S.py_get, self, args, nargs, kwnames);

    PyObject *free = slot_get(self, S.p_free, "free_items");
    PyObject *waiters = slot_get(self, S.p_waiters, "_waiters");
    if (free == NULL || waiters == NULL)
        return NULL;
    Py_ssize_t n_free = PyObject_Size(free);
    if (n_free < 0)
        return NULL;
    Py_ssize_t n_waiters = PyObject_Size(waiters);
    if (n_waiters < 0)
        return NULL;
    if (n_free == 0 || n_waiters > 0) {
        PyObject *r = wait_in_line(self, block, timeout, waiters, n_waiters);
        if (r != NOT_HANDLED)
            return r;
        return checkout_slow(self, block, timeout, Py_None, 0.0);
    }

    PyObject *rec = call_method0(free, str_popleft);
    if (rec == NULL)
        return NULL;
    double now, fresh_until;
    if (monotonic(&now) < 0)
        goto restore;
    if (Py_TYPE(rec) != S.record_type) {
        /* Not ours to take apart: the Python code decides. */
        PyObject *r = checkout_slow(self, block, timeout, rec, now);
        Py_DECREF(rec);
        return r;
    }
    if (as_double(SLOT(rec, S.r_fresh_until), &fresh_until) < 0)
        goto restore;
    if (!(now < fresh_until)) {
        PyObject *r = checkout_slow(self, block, timeout, rec, now);
        Py_DECREF(rec);
        return r;
    }

    /* The fast path: a fresh idle connection and nobody in line. */
    PyObject *w = lend(self, rec, now, 1);
    if (w == NULL && SLOT(rec, S.r_pool) != self)
        goto restore; /* failed before it was lent */
    Py_DECREF(rec);
    return w;

restore:
    /* An error before the record was lent: it goes back to the pool. */
    free = SLOT(self, S.p_free); /* read again: Python code may have run */
    if (free != NULL) {
        PyObject *rargs[2] = {free, rec};
        clean_up_after_error(str_appendleft, rargs, 2);
    }
    Py_DECREF(rec);
    return NULL;
}

/* ------------------------------------------------------------- hand-off */

/* _hand_off(value): give *value* (a record, or None for a bare slot) to the
 * longest waiter; False when nobody waits.  As the Python method: waiters
 * served before the hub runs again are woken by one hub callback
 * (_wake_served), in the order served. */
static PyObject *
fast_hand_off(PyObject *self, PyObject *value)
{
    PyObject *waiters = slot_get(self, S.p_waiters, "_waiters");
    if (waiters == NULL)
        return NULL;
    Py_ssize_t n = PyObject_Size(waiters);
    if (n < 0)
        return NULL;
    if (n == 0)
        Py_RETURN_FALSE;
    PyObject *waiter = call_method0(waiters, str_popleft);
    if (waiter == NULL)
        return NULL;
    if (Py_TYPE(waiter) != S.waiter_type) {
        PyErr_Format(PyExc_TypeError, "not a waiter in the line: %.100s",
                     Py_TYPE(waiter)->tp_name);
        Py_DECREF(waiter);
        return NULL;
    }
    Py_INCREF(value);
    slot_set(waiter, S.q_value, value);
    PyObject *hub = Py_NewRef(SLOT(waiter, S.q_hub));
    PyObject *waking = slot_get(self, S.p_waking, "_waking");
    PyObject *r = NULL;
    if (waking == NULL || !PyList_Check(waking)) {
        if (waking != NULL)
            PyErr_SetString(PyExc_TypeError, "_waking must be a list");
        goto done;
    }
    Py_INCREF(waking);
    if (PyList_GET_SIZE(waking) == 0) {
        /* The pool's _Waker goes on the hub's timer list: waker.schedule(hub). */
        PyObject *waker = slot_get(self, S.p_waker, "_waker");
        if (waker != NULL) {
            Py_INCREF(waker);
            if (Py_TYPE(waker) == S.waker_type) {
                slot_set(waker, S.k_called, Py_NewRef(Py_False));
                r = call_method1(hub, str_add_timer, waker);
            }
            else {
                r = call_method1(waker, str_schedule, hub);
            }
            Py_DECREF(waker);
        }
    }
    else if (Py_TYPE(PyList_GET_ITEM(waking, 0)) != S.waiter_type ||
             SLOT(PyList_GET_ITEM(waking, 0), S.q_hub) != hub) {
        /* A waiter of another OS thread's hub: it wakes on its own. */
        PyObject *args[4] = {hub, float_zero, S.wake_one, waiter};
        r = PyObject_VectorcallMethod(str_schedule_call_global, args,
                                      4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(waking);
        if (r != NULL) {
            Py_DECREF(r);
            r = Py_NewRef(Py_True);
        }
        goto done;
    }
    else {
        r = Py_NewRef(Py_None);
    }
    if (r != NULL) {
        Py_DECREF(r);
        r = PyList_Append(waking, waiter) < 0 ? NULL : Py_NewRef(Py_True);
    }
    Py_DECREF(waking);
done:
    Py_DECREF(hub);
    Py_DECREF(waiter);
    return r;
}

/* _wake_served(): the hub callback that switches to each waiter served
 * since the last one, in the order served (see the Python method). */
static PyObject *
fast_wake_served(PyObject *self, PyObject *unused)
{
    PyObject *batch = slot_get(self, S.p_waking, "_waking");
    if (batch == NULL)
        return NULL;
    if (!PyList_CheckExact(batch)) {
        PyErr_SetString(PyExc_TypeError, "_waking must be a list");
        return NULL;
    }
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    Py_INCREF(batch);
    slot_set(self, S.p_waking, fresh);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(batch); i++) {
        PyObject *waiter = PyList_GET_ITEM(batch, i);
        if (Py_TYPE(waiter) != S.waiter_type) {
            PyErr_SetString(PyExc_TypeError, "not a waiter in the batch");
            Py_DECREF(batch);
            return NULL;
        }
        PyObject *woken = SLOT(waiter, S.q_woken);
        int t = woken ? truthy(woken) : 0;
        if (t < 0) {
            Py_DECREF(batch);
            return NULL;
        }
        if (t)
            continue; /* gave up waiting after it was served */
        Py_INCREF(waiter);
        slot_set(waiter, S.q_woken, Py_NewRef(Py_True));
        PyObject *r = call_method0(SLOT(waiter, S.q_greenlet), str_switch);
        Py_DECREF(waiter);
        if (r == NULL) {
            /* The rest of the batch is still woken, in order, by the next
             * callback; the hub reports the error. */
            PyObject *et, *ev, *tb;
            PyErr_Fetch(&et, &ev, &tb);
            PyObject *start = PyLong_FromSsize_t(i + 1);
            PyObject *args[3] = {self, batch, start};
            r = start ? PyObject_VectorcallMethod(str_wake_rest, args,
                                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                      : NULL;
            Py_XDECREF(start);
            Py_XDECREF(r);
            if (r == NULL)
                PyErr_Clear();
            PyErr_Restore(et, ev, tb);
            Py_DECREF(batch);
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_DECREF(batch);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ put */

/* 1: the fast path applies; 0: it does not; -1: error. */
static int
checkin_is_plain(PyObject *self, PyObject *rec, double now)
{
    PyObject *v;
    double expires_at;
    int t;

    if ((v = slot_get(self, S.p_in_hooks, "_checkin_hooks")) == NULL)
        return -1;
    if ((t = truthy(v)) != 0)
        return t < 0 ? -1 : 0;
    if ((v = slot_get(rec, S.r_expires_at, "expires_at")) == NULL ||
        as_double(v, &expires_at) < 0)
        return -1;
    if (now >= expires_at)
        return 0;
    if ((v = slot_get(rec, S.r_broken, "broken")) == NULL)
        return -1;
    if ((t = truthy(v)) != 0)
        return t < 0 ? -1 : 0;
    PyObject *uses = slot_get(rec, S.r_uses, "uses");
    PyObject *max_uses = slot_get(self, S.p_max_uses, "_max_uses");
    if (uses == NULL || max_uses == NULL)
        return -1;
    if ((t = PyObject_RichCompareBool(uses, max_uses, Py_EQ)) != 0)
        return t < 0 ? -1 : 0;
    PyObject *gen = slot_get(rec, S.r_generation, "generation");
    if (gen == NULL)
        return -1;
    PyObject *fork_gen = PyDict_GetItemWithError(S.globals, str_fork_generation);
    if (fork_gen == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "db_pool.pool._fork_generation is gone");
        return -1;
    }
    if (gen != fork_gen) {
        if ((t = PyObject_RichCompareBool(gen, fork_gen, Py_NE)) != 0)
            return t < 0 ? -1 : 0;
    }
    PyObject *is_closed = slot_get(self, S.p_is_closed, "_is_closed");
    if (is_closed == NULL)
        return -1;
    if (is_closed != Py_None) {
        PyObject *conn = slot_get(rec, S.r_conn, "conn");
        PyObject *attr = slot_get(self, S.p_closed_attr, "_closed_attr");
        if (conn == NULL || attr == NULL)
            return -1;
        Py_INCREF(conn);
        if (PyUnicode_CheckExact(attr) && Py_TYPE(conn) != (PyTypeObject *)S.proxy_type) {
            /* is_closed(conn), read off the driver's connection (see
             * Driver.closed_flag): an error there means closed. */
            PyObject *v = PyObject_GetAttr(conn, attr);
            Py_DECREF(conn);
            if (v == NULL) {
                PyErr_Clear();
                return 0;
            }
            t = truthy(v);
            Py_DECREF(v);
            if (t < 0) {
                PyErr_Clear();
                return 0;
            }
            PyObject *negated = slot_get(self, S.p_closed_negated, "_closed_negated");
            if (negated == NULL)
                return -1;
            return (t != (negated == Py_True)) ? 0 : 1;
        }
        PyObject *r = call1(is_closed, conn);
        Py_DECREF(conn);
        if (r == NULL)
            return -1;
        t = truthy(r);
        Py_DECREF(r);
        if (t != 0)
            return t < 0 ? -1 : 0;
    }
    return 1;
}

/* The reset raised: as the Python code's `except BaseException as exc:
 * self._reset_failed(rec, cleanup, exc); if not an Exception: raise`.
 * Returns 0 when the error was dealt with, -1 with an error set. */
static int
reset_failed(PyObject *self, PyObject *rec, PyObject *cleanup)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyErr_NormalizeException(&et, &ev, &tb);
    if (tb != NULL)
        PyException_SetTraceback(ev, tb);
    int ordinary = PyObject_IsInstance(ev, PyExc_Exception);
    if (ordinary < 0) {
        PyErr_Clear();
        ordinary = 0;
    }
    PyObject *args[4] = {self, rec, cleanup, ev};
    PyObject *r = PyObject_VectorcallMethod(str_reset_failed, args,
                                            4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        chain_to(et, ev, tb); /* a new error while handling the first */
        return -1;
    }
    Py_DECREF(r);
    if (!ordinary) {
        PyErr_Restore(et, ev, tb);
        return -1;
    }
    Py_DECREF(et);
    Py_DECREF(ev);
    Py_XDECREF(tb);
    return 0;
}

/* self._reset(cleanup, raw): run the cleanup with our green thread in
 * _resets_running, where the reset watchdog finds it once reset_timeout
 * has passed; as the Python method, line for line. */
static PyObject *
reset_with_deadline(PyObject *self, PyObject *cleanup, PyObject *raw,
                    PyObject *reset_timeout)
{
    double limit, now;
    PyObject *running = slot_get(self, S.p_resets_running, "_resets_running");
    if (running == NULL || as_double(reset_timeout, &limit) < 0 || monotonic(&now) < 0)
        return NULL;
    if (!PyDict_CheckExact(running)) {
        PyErr_SetString(PyExc_TypeError, "_resets_running must be a dict");
        return NULL;
    }
    Py_INCREF(running);
    PyObject *me = PyObject_CallNoArgs(S.getcurrent);
    PyObject *deadline = me ? PyFloat_FromDouble(now + limit) : NULL;
    int t = deadline ? PyDict_SetItem(running, me, deadline) : -1;
    Py_XDECREF(deadline);
    if (t < 0) {
        Py_XDECREF(me);
        Py_DECREF(running);
        return NULL;
    }
    PyObject *r;
    PyObject *watchdog = SLOT(self, S.p_watchdog);
    if (watchdog == NULL || watchdog == Py_None) {
        r = call_method0(self, str_arm_reset_watchdog);
        if (r == NULL)
            goto finally;
        Py_DECREF(r);
    }
    r = cleanup == S.cleanup_rollback ? call_method0(raw, str_rollback) /* the same */
                                      : call1(cleanup, raw);
    if (r == NULL && PyErr_ExceptionMatches(S.reset_overran)) {
        /* Our watchdog's interruption becomes a PoolError (from None);
         * another pool's goes on as it is. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyErr_NormalizeException(&et, &ev, &tb);
        PyObject *owner = ev ? PyObject_GetAttr(ev, str_pool) : NULL;
        if (owner == NULL) {
            chain_to(et, ev, tb);
            goto finally;
        }
        Py_DECREF(owner);
        if (owner != self) {
            PyErr_Restore(et, ev, tb);
            goto finally;
        }
        PyObject *err = call_method0(self, str_reset_overran);
        if (err == NULL) {
            chain_to(et, ev, tb);
            goto finally;
        }
        if (tb != NULL)
            PyException_SetTraceback(ev, tb);
        PyException_SetContext(err, ev); /* steals ev */
        PyException_SetCause(err, NULL); /* "from None" */
        Py_DECREF(et);
        Py_XDECREF(tb);
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    }
finally:
    /* running.pop(me, None), with any error kept for the caller. */
    {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        if (PyDict_DelItem(running, me) < 0)
            PyErr_Clear();
        PyErr_Restore(et, ev, tb);
    }
    Py_DECREF(me);
    Py_DECREF(running);
    return r;
}

static PyObject *
fast_put(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *conn = NULL, *cleanup = S.missing;
    if (!two_args(args, nargs, kwnames, str_conn, &conn, str_cleanup, &cleanup))
        goto python;
    if (conn == NULL || !PyObject_TypeCheck(conn, S.wrapper_type))
        goto python;
    PyObject *rec = SLOT(conn, S.w_record);
    if (rec == NULL || Py_TYPE(rec) != S.record_type || SLOT(rec, S.r_pool) != self)
        goto python;

    double now;
    if (monotonic(&now) < 0)
        return NULL;
    Py_INCREF(rec);
    int plain = checkin_is_plain(self, rec, now);
    if (plain <= 0) {
        Py_DECREF(rec);
        if (plain < 0)
            return NULL;
        goto python;
    }
    /* _is_closed() may have switched green threads (a driver's own
     * method): the wrapper must still be lent from this pool. */
    if (SLOT(conn, S.w_record) != rec || SLOT(rec, S.r_pool) != self) {
        Py_DECREF(rec);
        goto python;
    }

    /* From here on the record is ours (we hold a reference). */
    Py_INCREF(Py_None);
    slot_set(conn, S.w_record, Py_None);
    PyObject *spares = SLOT(self, S.p_spares);
    if (spares != NULL && spares != Py_None) {
        /* Kept for reuse; get() takes it only once nobody else holds it. */
        PyObject *r = call_method1(spares, str_append, conn);
        if (r == NULL)
            goto error;
        Py_DECREF(r);
    }
    double checkout_at, hold;
    PyObject *v;
    if (slot_set_double(rec, S.r_last_used, now) < 0)
        goto error;
    if ((v = slot_get(rec, S.r_checkout_at, "checkout_at")) == NULL ||
        as_double(v, &checkout_at) < 0)
        goto error;
    if ((v = slot_get(self, S.p_hold, "_hold_time_total")) == NULL ||
        as_double(v, &hold) < 0)
        goto error;
    if (slot_set_double(self, S.p_hold, hold + (now - checkout_at)) < 0)
        goto error;

    if (cleanup == S.missing) {
        cleanup = slot_get(self, S.p_cleanup, "cleanup");
        if (cleanup == NULL)
            goto error;
    }
    Py_INCREF(cleanup);
    if (cleanup != Py_None) {
        PyObject *raw = slot_get(rec, S.r_conn, "conn");
        PyObject *status = slot_get(rec, S.r_status, "status");
        if (raw == NULL || status == NULL) {
            Py_DECREF(cleanup);
            goto error;
        }
        Py_INCREF(raw);
        int skip = 0;
        if (cleanup == S.cleanup_rollback && status != Py_None) {
            PyObject *method = slot_get(self, S.p_status_method, "_status_method");
            if (method == NULL) {
                Py_DECREF(raw);
                Py_DECREF(cleanup);
                goto error;
            }
            if (PyUnicode_CheckExact(method) && Py_TYPE(raw) != (PyTypeObject *)S.proxy_type) {
                /* rec.status(raw), asked of the connection itself (see
                 * Driver.status_method): 0 means idle; an error, unknown. */
                PyObject *r = call_method0(raw, method);
                if (r == NULL)
                    PyErr_Clear();
                else {
                    skip = PyLong_CheckExact(r) && PyLong_AsLong(r) == 0;
                    Py_DECREF(r);
                }
            }
            else {
                Py_INCREF(status);
                PyObject *r = call1(status, raw);
                Py_DECREF(status);
                if (r == NULL) {
                    Py_DECREF(raw);
                    Py_DECREF(cleanup);
                    goto error;
                }
                skip = (r == Py_False);
                Py_DECREF(r);
            }
        }
        if (skip) {
            if (slot_incr(self, S.p_resets_skipped, "_resets_skipped") < 0) {
                Py_DECREF(raw);
                Py_DECREF(cleanup);
                goto error;
            }
        }
        else {
            PyObject *r = NULL;
            PyObject *reset_timeout;
            if (slot_incr(self, S.p_resets, "_resets") < 0 ||
                (reset_timeout = slot_get(self, S.p_reset_timeout, "reset_timeout")) ==
                    NULL) {
                Py_DECREF(raw);
                Py_DECREF(cleanup);
                goto error;
            }
            if (reset_timeout != Py_None) {
                if (inherits(self, str_reset, S.py_reset)) {
                    r = reset_with_deadline(self, cleanup, raw, reset_timeout);
                }
                else { /* a subclass's own _reset() */
                    PyObject *rargs[3] = {self, cleanup, raw};
                    r = PyObject_VectorcallMethod(str_reset, rargs,
                                                  3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
                }
            }
            else if (cleanup == S.cleanup_rollback) {
                r = call_method0(raw, str_rollback); /* the same, one call less */
            }
            else {
                r = call1(cleanup, raw);
            }
            if (r == NULL) {
                Py_DECREF(raw);
                int failed = reset_failed(self, rec, cleanup);
                Py_DECREF(cleanup);
                Py_DECREF(rec);
                if (failed < 0)
                    return NULL;
                Py_RETURN_NONE;
            }
            Py_DECREF(r);
        }
        Py_DECREF(raw);
    }
    Py_DECREF(cleanup);

    {
        double idle_window, expires_at, fresh_until = 0.0;
        int suspect;
        if ((v = slot_get(rec, S.r_suspect, "suspect")) == NULL ||
            (suspect = truthy(v)) < 0)
            goto error;
        if (!suspect) {
            if ((v = slot_get(self, S.p_idle_window, "_idle_window")) == NULL ||
                as_double(v, &idle_window) < 0)
                goto error;
            if ((v = slot_get(rec, S.r_expires_at, "expires_at")) == NULL ||
                as_double(v, &expires_at) < 0)
                goto error;
            fresh_until = now + idle_window;
            if (!(fresh_until < expires_at))
                fresh_until = expires_at;
        }
        if (slot_set_double(rec, S.r_fresh_until, fresh_until) < 0)
            goto error;
    }
    Py_INCREF(Py_None);
    slot_set(rec, S.r_pool, Py_None);

    PyObject *waiters = slot_get(self, S.p_waiters, "_waiters");
    if (waiters == NULL)
        goto error;
    Py_ssize_t n = PyObject_Size(waiters);
    if (n < 0)
        goto error;
    PyObject *r;
    if (n > 0) {
        /* A subclass may override _hand_off(). */
        if (inherits(self, str_hand_off, S.hand_off_descr))
            r = fast_hand_off(self, rec);
        else
            r = call_method1(self, str_hand_off, rec);
    }
    else {
        PyObject *free = slot_get(self, S.p_free, "free_items");
        r = free ? call_method1(free, str_appendleft, rec) : NULL;
    }
    Py_DECREF(rec);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;

error:
    /* Out of memory or a broken invariant half-way through a return: the
     * connection's state is unknown, so it is discarded and its slot given
     * back; the error goes to the caller. */
    {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *dargs[3] = {self, rec, str_reset_failed_reason};
        PyObject *r = PyObject_VectorcallMethod(str_discard_and_release, dargs,
                                                3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(rec);
        if (r == NULL) {
            Py_XDECREF(et);
            Py_XDECREF(ev);
            Py_XDECREF(tb);
            return NULL;
        }
        Py_DECREF(r);
        PyErr_Restore(et, ev, tb);
        return NULL;
    }

python:
    return fall_back(S.py_put, self, args, nargs, kwnames);
}

/* ------------------------------------------------------------ wrapper */

/* PooledConnectionWrapper.cursor(): the lent connection's cursor(); the
 * Python method for everything else (a returned or detached wrapper). */
static PyObject *
wrapper_cursor(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    if (PyObject_TypeCheck(self, S.wrapper_type)) {
        PyObject *rec = SLOT(self, S.w_record);
        if (rec != NULL && Py_TYPE(rec) == S.record_type) {
            PyObject *conn = SLOT(rec, S.r_conn);
            if (conn != NULL) {
                Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
                PyObject *small[8];
                PyObject **stack = small;
                if (nargs + nkw + 1 > 8) {
                    stack = PyMem_Malloc((nargs + nkw + 1) * sizeof(PyObject *));
                    if (stack == NULL)
                        return PyErr_NoMemory();
                }
                Py_INCREF(conn);
                stack[0] = conn;
                for (Py_ssize_t i = 0; i < nargs + nkw; i++)
                    stack[i + 1] = args[i];
                PyObject *r = PyObject_VectorcallMethod(str_cursor, stack, (nargs + 1), kwnames);
                Py_DECREF(conn);
                if (stack != small)
                    PyMem_Free(stack);
                return r;
            }
        }
    }
    return fall_back(S.py_cursor, self, args, nargs, kwnames);
}

/* The finalizer of PooledConnectionWrapper: a returned wrapper (the usual
 * case) has nothing to do; a lent one goes to the Python __del__, which
 * has the pool reclaim the connection. */
static void
wrapper_finalize(PyObject *self)
{
    PyObject *rec = SLOT(self, S.w_record);
    if (rec == NULL || rec == Py_None)
        return;
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *r = call1(S.py_del, self);
    if (r == NULL)
        PyErr_WriteUnraisable(S.py_del);
    else
        Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
}

/* -------------------------------------------------------------- install */

static PyMethodDef get_def = {
    "get", (PyCFunction)(void (*)(void))fast_get, METH_FASTCALL | METH_KEYWORDS, NULL};
static PyMethodDef put_def = {
    "put", (PyCFunction)(void (*)(void))fast_put, METH_FASTCALL | METH_KEYWORDS, NULL};
static PyMethodDef hand_off_def = {"_hand_off", (PyCFunction)fast_hand_off, METH_O, NULL};
static PyMethodDef wake_served_def = {"_wake_served", (PyCFunction)fast_wake_served,
                                      METH_NOARGS, NULL};
static PyMethodDef cursor_def = {"cursor", (PyCFunction)(void (*)(void))wrapper_cursor,
                                 METH_FASTCALL | METH_KEYWORDS, NULL};

static int
offset_of(PyTypeObject *cls, const char *name, Py_ssize_t *out)
{
    PyObject *d = PyObject_GetAttrString((PyObject *)cls, name);
    if (d == NULL)
        return -1;
    if (Py_TYPE(d) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "%.100s.%s is not a slot", cls->tp_name, name);
        Py_DECREF(d);
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
        PyErr_Format(PyExc_TypeError, "%.100s.%s is not a writable object slot",
                     cls->tp_name, name);
        Py_DECREF(d);
        return -1;
    }
    *out = m->offset;
    Py_DECREF(d);
    return 0;
}

static char *
copy_doc(PyObject *func, const char *fallback)
{
    PyObject *doc = PyObject_GetAttrString(func, "__doc__");
    const char *text = NULL;
    if (doc != NULL && PyUnicode_Check(doc))
        text = PyUnicode_AsUTF8(doc);
    if (text == NULL) {
        PyErr_Clear();
        text = fallback;
    }
    char *copy = PyMem_RawMalloc(strlen(text) + 1);
    if (copy != NULL)
        strcpy(copy, text);
    Py_XDECREF(doc);
    return copy;
}

/* A name from pool.py's globals (a new reference). */
static PyObject *
global(PyObject *globals, const char *name)
{
    PyObject *v = PyDict_GetItemString(globals, name);
    if (v == NULL)
        PyErr_Format(PyExc_RuntimeError, "db_pool.pool has no %s", name);
    else
        Py_INCREF(v);
    return v;
}

static PyObject *
install(PyObject *module, PyObject *args)
{
    PyObject *pool_type, *record_type, *wrapper_type, *waiter_type, *globals;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!:install", &PyType_Type, &pool_type,
                          &PyType_Type, &record_type, &PyType_Type, &wrapper_type,
                          &PyType_Type, &waiter_type, &PyDict_Type, &globals))
        return NULL;
    if (S.installed) {
        PyErr_SetString(PyExc_RuntimeError, "db_pool._speedups is already installed");
        return NULL;
    }
    PyTypeObject *P = (PyTypeObject *)pool_type, *R = (PyTypeObject *)record_type,
                 *W = (PyTypeObject *)wrapper_type, *Q = (PyTypeObject *)waiter_type;
    if (W->tp_weaklistoffset == 0) {
        PyErr_SetString(PyExc_TypeError, "the wrapper class must support weak references");
        return NULL;
    }
    State s = {0};
#define OFF(cls, field, name)               \
    if (offset_of(cls, name, &s.field) < 0) \
        return NULL;
    OFF(P, p_free, "free_items");
    OFF(P, p_waiters, "_waiters");
    OFF(P, p_spares, "_spares");
    OFF(P, p_checkouts, "_checkouts");
    OFF(P, p_out_hooks, "_checkout_hooks");
    OFF(P, p_in_hooks, "_checkin_hooks");
    OFF(P, p_max_uses, "_max_uses");
    OFF(P, p_is_closed, "_is_closed");
    OFF(P, p_hold, "_hold_time_total");
    OFF(P, p_cleanup, "cleanup");
    OFF(P, p_reset_timeout, "reset_timeout");
    OFF(P, p_resets, "_resets");
    OFF(P, p_resets_skipped, "_resets_skipped");
    OFF(P, p_idle_window, "_idle_window");
    OFF(P, p_closed, "_closed");
    OFF(P, p_waking, "_waking");
    OFF(P, p_waits, "_waits");
    OFF(P, p_wait_time_total, "_wait_time_total");
    OFF(P, p_wait_time_max, "_wait_time_max");
    OFF(P, p_wait_buckets, "_wait_buckets");
    OFF(R, r_conn, "conn");
    OFF(R, r_fresh_until, "fresh_until");
    OFF(R, r_uses, "uses");
    OFF(R, r_checkout_at, "checkout_at");
    OFF(R, r_pool, "pool");
    OFF(R, r_where, "where");
    OFF(R, r_last_used, "last_used");
    OFF(R, r_expires_at, "expires_at");
    OFF(R, r_broken, "broken");
    OFF(R, r_generation, "generation");
    OFF(R, r_status, "status");
    OFF(R, r_suspect, "suspect");
    OFF(W, w_record, "_record");
    OFF(Q, q_greenlet, "greenlet");
    OFF(Q, q_value, "value");
    OFF(Q, q_hub, "hub");
    OFF(Q, q_woken, "woken");
    OFF(Q, q_deadline, "deadline");
    OFF(P, p_wait_watch_due, "_wait_watch_due");
    OFF(P, p_pool_timeout, "pool_timeout");
    OFF(P, p_max_waiting, "max_waiting");
    OFF(P, p_on_at_max, "_on_pool_at_max");
    OFF(P, p_resets_running, "_resets_running");
    OFF(P, p_watchdog, "_watchdog");
    OFF(P, p_closed_attr, "_closed_attr");
    OFF(P, p_closed_negated, "_closed_negated");
    OFF(P, p_status_method, "_status_method");
    OFF(P, p_waker, "_waker");
    PyObject *waker_type = global(globals, "_Waker");
    if (waker_type == NULL)
        return NULL;
    if (!PyType_Check(waker_type)) {
        Py_DECREF(waker_type);
        PyErr_SetString(PyExc_TypeError, "_Waker must be a class");
        return NULL;
    }
    if (offset_of((PyTypeObject *)waker_type, "called", &s.k_called) < 0) {
        Py_DECREF(waker_type);
        return NULL;
    }
    s.waker_type = (PyTypeObject *)waker_type; /* keeps the reference */
#undef OFF
    /* WAIT_BUCKETS, as a tuple of floats for the C bisection. */
    PyObject *buckets = global(globals, "WAIT_BUCKETS");
    if (buckets == NULL)
        return NULL;
    s.wait_buckets = PySequence_Tuple(buckets);
    Py_DECREF(buckets);
    if (s.wait_buckets == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(s.wait_buckets); i++) {
        if (!PyFloat_CheckExact(PyTuple_GET_ITEM(s.wait_buckets, i))) {
            PyErr_SetString(PyExc_TypeError, "WAIT_BUCKETS must hold floats");
            return NULL;
        }
    }
    PyObject *green = global(globals, "_green");
    if (green == NULL)
        return NULL;
    s.get_hub = PyObject_GetAttrString(green, "get_hub");
    s.hub_local = s.get_hub ? PyObject_GetAttrString(green, "hub_local") : NULL;
    s.getcurrent = s.hub_local ? PyObject_GetAttrString(green, "current_greenlet") : NULL;
    Py_DECREF(green);
    if (s.getcurrent == NULL)
        return NULL;
    {
        PyObject *hubmod = PyImport_ImportModule("eventlet.hubs.hub");
        PyObject *base = hubmod ? PyObject_GetAttrString(hubmod, "BaseHub") : NULL;
        Py_XDECREF(hubmod);
        if (base == NULL)
            return NULL;
        if (!PyType_Check(base)) {
            Py_DECREF(base);
            PyErr_SetString(PyExc_TypeError, "eventlet's BaseHub is not a class");
            return NULL;
        }
        /* Borrowed from the class, which the hub module keeps alive. */
        s.base_hub_switch = _PyType_Lookup((PyTypeObject *)base, str_switch);
        Py_XINCREF(s.base_hub_switch);
        Py_DECREF(base);
        if (s.base_hub_switch == NULL) {
            PyErr_SetString(PyExc_TypeError, "eventlet's BaseHub has no switch()");
            return NULL;
        }
    }

    if ((s.cleanup_rollback = global(globals, "cleanup_rollback")) == NULL ||
        (s.missing = global(globals, "_MISSING")) == NULL ||
        (s.default_ = global(globals, "_DEFAULT")) == NULL ||
        (s.empty = global(globals, "_EMPTY")) == NULL ||
        (s.timed_out = global(globals, "_TIMED_OUT")) == NULL ||
        (s.wake_one = global(globals, "_wake_one")) == NULL)
        return NULL;
    if ((s.empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    if ((s.reset_overran = global(globals, "_ResetOverran")) == NULL)
        return NULL;
    if ((s.py_reset = PyObject_GetAttrString(pool_type, "_reset")) == NULL)
        return NULL;
    {
        PyObject *tpool = PyImport_ImportModule("eventlet.tpool");
        s.proxy_type = tpool ? PyObject_GetAttrString(tpool, "Proxy") : NULL;
        Py_XDECREF(tpool);
        if (s.proxy_type == NULL)
            return NULL;
    }
    PyObject *weakref = PyImport_ImportModule("weakref");
    if (weakref == NULL)
        return NULL;
    s.getweakrefcount = PyObject_GetAttrString(weakref, "getweakrefcount");
    Py_DECREF(weakref);
    if (s.getweakrefcount == NULL)
        return NULL;

    PyObject *py_get = PyObject_GetAttrString(pool_type, "get");
    PyObject *py_put = py_get ? PyObject_GetAttrString(pool_type, "put") : NULL;
    if (py_put == NULL) {
        Py_XDECREF(py_get);
        return NULL;
    }
    if (!PyFunction_Check(py_get) || !PyFunction_Check(py_put)) {
        PyErr_SetString(PyExc_TypeError, "get and put must be Python functions");
        Py_DECREF(py_get);
        Py_DECREF(py_put);
        return NULL;
    }
    s.py_get = py_get;
    s.py_put = py_put;
    s.py_cursor = PyObject_GetAttrString(wrapper_type, "cursor");
    s.py_del = s.py_cursor ? PyObject_GetAttrString(wrapper_type, "__del__") : NULL;
    if (s.py_del == NULL)
        return NULL;
    if (!PyFunction_Check(s.py_cursor) || !PyFunction_Check(s.py_del) ||
        W->tp_finalize == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "the wrapper's cursor and __del__ must be Python functions");
        return NULL;
    }
    cursor_def.ml_doc = copy_doc(s.py_cursor, "A cursor of the lent connection.");
    get_def.ml_doc = copy_doc(py_get, "Check out a connection.");
    put_def.ml_doc = copy_doc(py_put, "Return a connection to the pool.");
    PyObject *hand_off_py = PyObject_GetAttrString(pool_type, "_hand_off");
    if (hand_off_py == NULL)
        return NULL;
    hand_off_def.ml_doc = copy_doc(hand_off_py, "Give a slot to the longest waiter.");
    Py_DECREF(hand_off_py);
    PyObject *wake_served_py = PyObject_GetAttrString(pool_type, "_wake_served");
    if (wake_served_py == NULL)
        return NULL;
    wake_served_def.ml_doc = copy_doc(wake_served_py, "Wake the waiters served.");
    Py_DECREF(wake_served_py);

    s.installed = 1;
    s.pool_type = (PyTypeObject *)Py_NewRef(pool_type);
    s.record_type = (PyTypeObject *)Py_NewRef(record_type);
    s.wrapper_type = (PyTypeObject *)Py_NewRef(wrapper_type);
    s.waiter_type = (PyTypeObject *)Py_NewRef(waiter_type);
    s.globals = Py_NewRef(globals);
    /* The state must be in place before the first call. */
    S = s;

    PyObject *get = PyDescr_NewMethod(P, &get_def);
    PyObject *put = get ? PyDescr_NewMethod(P, &put_def) : NULL;
    PyObject *hand_off = put ? PyDescr_NewMethod(P, &hand_off_def) : NULL;
    PyObject *wake_served = hand_off ? PyDescr_NewMethod(P, &wake_served_def) : NULL;
    PyObject *cursor = wake_served ? PyDescr_NewMethod(W, &cursor_def) : NULL;
    S.hand_off_descr = Py_XNewRef(hand_off);
    int failed = cursor == NULL ||
                 PyObject_SetAttrString(pool_type, "_py_get", py_get) < 0 ||
                 PyObject_SetAttrString(pool_type, "_py_put", py_put) < 0 ||
                 PyObject_SetAttrString(pool_type, "get", get) < 0 ||
                 PyObject_SetAttrString(pool_type, "put", put) < 0 ||
                 PyObject_SetAttrString(pool_type, "_hand_off", hand_off) < 0 ||
                 PyObject_SetAttrString(pool_type, "_wake_served", wake_served) < 0 ||
                 PyObject_SetAttrString(wrapper_type, "_py_cursor", S.py_cursor) < 0 ||
                 PyObject_SetAttrString(wrapper_type, "cursor", cursor) < 0;
    Py_XDECREF(cursor);
    Py_XDECREF(get);
    Py_XDECREF(put);
    Py_XDECREF(hand_off);
    Py_XDECREF(wake_served);
    if (failed) {
        /* Whatever went in place is the Python code again. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject_SetAttrString(pool_type, "get", py_get);
        PyObject_SetAttrString(pool_type, "put", py_put);
        PyObject_SetAttrString(wrapper_type, "cursor", S.py_cursor);
        PyErr_Restore(et, ev, tb);
        S.installed = 0;
        return NULL;
    }
    /* Set after the class attributes: assigning them re-derives no slot
     * from __del__, which stays in the class for subclasses and for
     * anyone who calls it. */
    W->tp_finalize = wrapper_finalize;
    PyType_Modified(W);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"install", install, METH_VARARGS,
     "install(pool_class, record_class, wrapper_class, waiter_class, pool_globals)\n\n"
     "Replace pool_class.get, .put and ._hand_off by their C versions (the "
     "Python get and put stay as _py_get and _py_put)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "db_pool._speedups",
    "The fast paths of db_pool's get() and put() in C (see pool.py).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
#define INTERN(var, text)                            \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;
    INTERN(str_popleft, "popleft");
    INTERN(str_append, "append");
    INTERN(str_appendleft, "appendleft");
    INTERN(str_checkout_slow, "_checkout_slow");
    INTERN(str_after_checkout, "_after_checkout");
    INTERN(str_reset, "_reset");
    INTERN(str_reset_failed, "_reset_failed");
    INTERN(str_hand_off, "_hand_off");
    INTERN(str_wrapper_class, "wrapper_class");
    INTERN(str_fork_generation, "_fork_generation");
    INTERN(str_rollback, "rollback");
    INTERN(str_block, "block");
    INTERN(str_timeout, "timeout");
    INTERN(str_cleanup, "cleanup");
    INTERN(str_conn, "conn");
    INTERN(str_monotonic, "monotonic");
    INTERN(str_discard_and_release, "_discard_and_release");
    INTERN(str_reset_failed_reason, "reset_failed");
    INTERN(str_switch, "switch");
    INTERN(str_return_record, "_return_record");
    INTERN(str_add_timer, "add_timer");
    INTERN(str_wake_rest, "_wake_rest");
    INTERN(str_watch_waits, "_watch_waits");
    INTERN(str_timed_out, "_timed_out");
    INTERN(str_schedule, "schedule");
    INTERN(str_schedule_call_global, "schedule_call_global");
    INTERN(str_abandon_wait, "_abandon_wait");
    INTERN(str_finish_checkout, "_finish_checkout");
    INTERN(str_current_size, "current_size");
    INTERN(str_max_size, "max_size");
    INTERN(str_hub, "hub");
    INTERN(str_greenlet, "greenlet");
    INTERN(str_dead, "dead");
    INTERN(str_parent, "parent");
    INTERN(str_switch_out, "switch_out");
    INTERN(str_cursor, "cursor");
    INTERN(str_arm_reset_watchdog, "_arm_reset_watchdog");
    INTERN(str_reset_overran, "_reset_overran");
    INTERN(str_pool, "pool");
    if ((int_one = PyLong_FromLong(1)) == NULL)
        return NULL;
    if ((float_zero = PyFloat_FromDouble(0.0)) == NULL)
        return NULL;
#undef INTERN
    PyObject *time = PyImport_ImportModule("time");
    if (time == NULL)
        return NULL;
    time_monotonic = PyObject_GetAttr(time, str_monotonic);
    Py_DECREF(time);
    if (time_monotonic == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
