/* A do-nothing allocator hook that is not memhound's: it wraps the RAW,
 * MEM and OBJ domains and only forwards. bench/run.py builds it and loads
 * it from a sitecustomize (column "hook") to measure the floor any
 * PyMem_SetAllocator-based tracker pays on this interpreter, independently
 * of the agent's own forward mode. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyMemAllocatorEx wrapped[3];

static void *
hook_malloc(void *ctx, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    return a->malloc(a->ctx, size);
}

static void *
hook_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *a = ctx;
    return a->calloc(a->ctx, nelem, elsize);
}

static void *
hook_realloc(void *ctx, void *ptr, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    return a->realloc(a->ctx, ptr, size);
}

static void
hook_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *a = ctx;
    a->free(a->ctx, ptr);
}

static PyObject *
install(PyObject *self, PyObject *unused)
{
    static const PyMemAllocatorDomain doms[3] = {
        PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    (void)self;
    (void)unused;
    for (int i = 0; i < 3; i++) {
        PyMem_GetAllocator(doms[i], &wrapped[i]);
        PyMemAllocatorEx ours = {&wrapped[i], hook_malloc, hook_calloc,
                                 hook_realloc, hook_free};
        PyMem_SetAllocator(doms[i], &ours);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS, "wrap the three domains"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "floorhook", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit_floorhook(void)
{
    return PyModule_Create(&module);
}
