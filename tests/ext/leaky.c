/* _mhleaky: a deliberately misbehaving extension for memhound's tests.
 * Each function forgets a Py_DECREF the way real extensions do (the
 * aiohttp/multidict 4.5 leak was one): the object it leaks is never
 * freed, and no reference that Python code or the GC can see holds it.
 *
 *   leak_list(n) -> a new list of n small ints, with one reference too
 *                   many: the caller's last reference going away leaves
 *                   a GC-tracked list that nothing reachable points to
 *                   ("held by references the GC cannot see").
 *   leak_str(n)  -> None; makes a new str of n characters (unique per
 *                   call, never interned) and drops it without the
 *                   DECREF: live, but no walk from a root can reach it.
 *   leaked()     -> how many objects were leaked so far.
 *
 * Built by the tests with the interpreter's headers:
 *   gcc -shared -fPIC -I<include> leaky.c -o _mhleaky<EXT_SUFFIX> */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static Py_ssize_t counter;

static PyObject *
leak_list(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 || n > 1000000) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "n must be 0..1000000");
        return NULL;
    }
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromSsize_t(i);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    counter++;
    Py_INCREF(list); /* the bug: nobody will ever release this one */
    return list;
}

static PyObject *
leak_str(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 32 || n > 1000000) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "n must be 32..1000000");
        return NULL;
    }
    PyObject *s = PyUnicode_New(n, 127);
    if (!s)
        return NULL;
    char head[32];
    int k = snprintf(head, sizeof(head), "leak %zd ", ++counter);
    for (Py_ssize_t i = 0; i < n; i++)
        PyUnicode_WRITE(PyUnicode_1BYTE_KIND, PyUnicode_DATA(s), i,
                        i < k ? (Py_UCS4)head[i] : (Py_UCS4)'x');
    /* the bug: s is dropped here without Py_DECREF(s) */
    Py_RETURN_NONE;
}

static PyObject *
leaked(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromSsize_t(counter);
}

static PyMethodDef methods[] = {
    {"leak_list", leak_list, METH_O, "A new list, one reference leaked."},
    {"leak_str", leak_str, METH_O, "Makes a str of n chars and leaks it."},
    {"leaked", leaked, METH_NOARGS, "Objects leaked so far."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    "_mhleaky",
    "memhound's test extension with deliberate missing DECREFs.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__mhleaky(void)
{
    return PyModule_Create(&moduledef);
}
