/* Text of objects without Python's help, for the names of edges and
 * types: str and key reprs into a bounded buffer, dict lookups by C
 * string (no hashing, no Python), type names and their TYPE records. */
#include "heapdump_impl.h" /* Python.h first, as CPython asks */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../util/mem.h"

/* ---- text of objects, without Python's help ---- */

void
mh_hd_sb_init(struct sb *b, size_t maxchars)
{
    b->len = 0;
    b->chars = 0;
    b->maxchars = maxchars;
    b->cut = 0;
}

void
mh_hd_sb_cp(struct sb *b, uint32_t c)
{
    if (b->cut || b->chars >= b->maxchars || b->len + 4 > sizeof(b->buf)) {
        b->cut = 1;
        return;
    }
    if (c < 0x80) {
        b->buf[b->len++] = (char)c;
    } else if (c < 0x800) {
        b->buf[b->len++] = (char)(0xC0 | (c >> 6));
        b->buf[b->len++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        if (c >= 0xD800 && c < 0xE000)
            c = 0xFFFD; /* a lone surrogate is not UTF-8 */
        b->buf[b->len++] = (char)(0xE0 | (c >> 12));
        b->buf[b->len++] = (char)(0x80 | ((c >> 6) & 0x3F));
        b->buf[b->len++] = (char)(0x80 | (c & 0x3F));
    } else {
        b->buf[b->len++] = (char)(0xF0 | (c >> 18));
        b->buf[b->len++] = (char)(0x80 | ((c >> 12) & 0x3F));
        b->buf[b->len++] = (char)(0x80 | ((c >> 6) & 0x3F));
        b->buf[b->len++] = (char)(0x80 | (c & 0x3F));
    }
    b->chars++;
}

void
mh_hd_sb_puts(struct sb *b, const char *s)
{
    for (; *s; s++)
        mh_hd_sb_cp(b, (unsigned char)*s);
}

void
mh_hd_sb_printf(struct sb *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    mh_hd_sb_puts(b, tmp);
}

/* Whether a str's characters can be read: 3.9-3.11 strings made by the
 * deprecated wchar_t APIs may not be "ready". */
int
mh_hd_str_readable(PyObject *s)
{
#if PY_VERSION_HEX < 0x030C0000
    return PyUnicode_IS_READY(s);
#else
    (void)s;
    return 1;
#endif
}

/* Appends a str's text (not its repr); raw UTF-8 bytes of a multi-byte
 * character count as one character each here, which only matters for
 * the cap. */
void
mh_hd_sb_str(struct sb *b, PyObject *s)
{
    if (!mh_hd_str_readable(s)) {
        mh_hd_sb_puts(b, "?");
        return;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n && !b->cut; i++)
        mh_hd_sb_cp(b, PyUnicode_READ(kind, data, i));
}

static int
printable(Py_UCS4 c)
{
    if (c < 0x20 || c == 0x7f)
        return 0;
    if (c < 0x7f)
        return 1;
    return Py_UNICODE_ISPRINTABLE(c);
}

/* One character of a str's repr, or of a bytes' (`bytes`: only ASCII
 * 0x20-0x7e is shown as is). */
static void
sb_escape(struct sb *b, Py_UCS4 c, Py_UCS4 quote, int bytes)
{
    if (c == quote || c == '\\') {
        mh_hd_sb_cp(b, '\\');
        mh_hd_sb_cp(b, c);
    } else if (c == '\t') {
        mh_hd_sb_puts(b, "\\t");
    } else if (c == '\n') {
        mh_hd_sb_puts(b, "\\n");
    } else if (c == '\r') {
        mh_hd_sb_puts(b, "\\r");
    } else if (bytes ? c >= 0x20 && c < 0x7f : printable(c)) {
        mh_hd_sb_cp(b, c);
    } else if (c <= 0xff) {
        mh_hd_sb_printf(b, "\\x%02x", (unsigned)c);
    } else if (c <= 0xffff) {
        mh_hd_sb_printf(b, "\\u%04x", (unsigned)c);
    } else {
        mh_hd_sb_printf(b, "\\U%08x", (unsigned)c);
    }
}

void
mh_hd_repr_str(struct sb *b, PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    int sq = 0, dq = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        sq |= c == '\'';
        dq |= c == '"';
    }
    Py_UCS4 quote = sq && !dq ? '"' : '\'';
    mh_hd_sb_cp(b, quote);
    for (Py_ssize_t i = 0; i < n && !b->cut; i++)
        sb_escape(b, PyUnicode_READ(kind, data, i), quote, 0);
    mh_hd_sb_cp(b, quote);
}

static void
repr_bytes(struct sb *b, PyObject *o)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(o);
    Py_ssize_t n = PyBytes_GET_SIZE(o);
    int sq = memchr(p, '\'', (size_t)n) != NULL;
    int dq = memchr(p, '"', (size_t)n) != NULL;
    unsigned char quote = sq && !dq ? '"' : '\'';
    mh_hd_sb_cp(b, 'b');
    mh_hd_sb_cp(b, quote);
    for (Py_ssize_t i = 0; i < n && !b->cut; i++)
        sb_escape(b, p[i], quote, 1);
    mh_hd_sb_cp(b, quote);
}

/* float.__repr__: the shortest digits that read back as x, in fixed
 * notation for 1e-4 <= |x| < 1e16, else with an exponent. */
static void
repr_float(struct sb *b, double x)
{
    if (isnan(x)) {
        mh_hd_sb_puts(b, "nan");
        return;
    }
    if (isinf(x)) {
        mh_hd_sb_puts(b, x > 0 ? "inf" : "-inf");
        return;
    }
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, x);
        if (strtod(tmp, NULL) == x)
            break;
    }
    const char *s = tmp;
    if (*s == '-') {
        mh_hd_sb_cp(b, '-');
        s++;
    }
    char digits[24];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < (int)sizeof(digits) - 1)
            digits[nd++] = *s;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int e = *s == 'e' ? atoi(s + 1) : 0;
    int decpt = e + 1;
    if (decpt <= -4 || decpt > 16) {
        mh_hd_sb_cp(b, (unsigned char)digits[0]);
        if (nd > 1) {
            mh_hd_sb_cp(b, '.');
            mh_hd_sb_puts(b, digits + 1);
        }
        mh_hd_sb_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    } else if (decpt <= 0) {
        mh_hd_sb_puts(b, "0.");
        for (int i = 0; i < -decpt; i++)
            mh_hd_sb_cp(b, '0');
        mh_hd_sb_puts(b, digits);
    } else if (decpt >= nd) {
        mh_hd_sb_puts(b, digits);
        for (int i = nd; i < decpt; i++)
            mh_hd_sb_cp(b, '0');
        mh_hd_sb_puts(b, ".0");
    } else {
        for (int i = 0; i < nd; i++) {
            if (i == decpt)
                mh_hd_sb_cp(b, '.');
            mh_hd_sb_cp(b, (unsigned char)digits[i]);
        }
    }
}

static void type_name(struct sb *b, PyTypeObject *tp);

/* A dict key as repr() shows it for str, int, bytes, float, None, bool
 * and tuples of those; `<Type at 0x...>` for anything else. */
static void
repr_key(struct sb *b, PyObject *k, int depth)
{
    PyTypeObject *tp = Py_TYPE(k);
    if (tp == &PyUnicode_Type && mh_hd_str_readable(k)) {
        mh_hd_repr_str(b, k);
    } else if (tp == &PyBool_Type) {
        mh_hd_sb_puts(b, k == Py_True ? "True" : "False");
    } else if (tp == &PyLong_Type) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(k, &overflow);
        if (overflow)
            mh_hd_sb_printf(b, "<int at %p>", (void *)k);
        else
            mh_hd_sb_printf(b, "%lld", v);
    } else if (tp == &PyBytes_Type) {
        repr_bytes(b, k);
    } else if (tp == &PyFloat_Type) {
        repr_float(b, PyFloat_AS_DOUBLE(k));
    } else if (k == Py_None) {
        mh_hd_sb_puts(b, "None");
    } else if (tp == &PyTuple_Type && depth < REPR_DEPTH) {
        Py_ssize_t n = PyTuple_GET_SIZE(k);
        mh_hd_sb_cp(b, '(');
        for (Py_ssize_t i = 0; i < n && !b->cut; i++) {
            if (i)
                mh_hd_sb_puts(b, ", ");
            repr_key(b, PyTuple_GET_ITEM(k, i), depth + 1);
        }
        if (n == 1)
            mh_hd_sb_cp(b, ',');
        mh_hd_sb_cp(b, ')');
    } else {
        mh_hd_sb_cp(b, '<');
        type_name(b, tp);
        mh_hd_sb_printf(b, " at %p>", (void *)k);
    }
}

/* The string id of a dict key's repr, capped at MH_HEAP_KEY_REPR_MAX
 * characters ("..." ends a cut one). */
uint64_t
mh_hd_key_repr_id(struct walk *w, PyObject *k)
{
    uint64_t id;
    if (mh_addrmap_get(&w->strcache, (uintptr_t)k | 1, &id))
        return id;
    struct sb b;
    mh_hd_sb_init(&b, MH_HEAP_KEY_REPR_MAX - 3);
    repr_key(&b, k, 0);
    if (b.cut) {
        b.cut = 0;
        b.maxchars += 3;
        mh_hd_sb_puts(&b, "...");
    }
    id = mh_hd_string_id(w, b.buf, b.len);
    if (id && mh_addrmap_put(&w->strcache, (uintptr_t)k | 1, id))
        fail(w, MH_ENOMEM);
    return id;
}

/* The string id of a str's text (an attribute or variable name). */
uint64_t
mh_hd_str_text_id(struct walk *w, PyObject *s)
{
    uint64_t id;
    if (!s || !PyUnicode_Check(s))
        return mh_hd_cstr_id(w, "?");
    if (mh_addrmap_get(&w->strcache, (uintptr_t)s, &id))
        return id;
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        id = mh_hd_string_id(w, (const char *)PyUnicode_DATA(s),
                             (size_t)PyUnicode_GET_LENGTH(s));
    } else {
        struct sb b;
        mh_hd_sb_init(&b, sizeof(b.buf));
        mh_hd_sb_str(&b, s);
        id = mh_hd_string_id(w, b.buf, b.len);
    }
    if (id && mh_addrmap_put(&w->strcache, (uintptr_t)s, id))
        fail(w, MH_ENOMEM);
    return id;
}

/* ---- dict lookups by C string, for names (no hashing, no Python) ---- */

struct find {
    const char *name;
    size_t n;
    PyObject *found;
};

static int
str_equals(PyObject *s, const char *name, size_t n)
{
    return PyUnicode_Check(s) && PyUnicode_IS_COMPACT_ASCII(s) &&
           (size_t)PyUnicode_GET_LENGTH(s) == n &&
           memcmp(PyUnicode_DATA(s), name, n) == 0;
}

static void
find_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct find *f = arg;
    (void)owns_key;
    if (!f->found && value && str_equals(key, f->name, f->n))
        f->found = value;
}

PyObject *
mh_hd_dict_get(PyObject *dict, const char *name)
{
    struct find f = {name, strlen(name), NULL};
    if (dict && PyDict_Check(dict))
        mh_hw_dict_each(dict, find_kv, &f);
    return f.found;
}

/* The dict of an instance without a managed dict, or NULL. */
PyObject **
mh_hd_dict_ptr(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    Py_ssize_t off = tp->tp_dictoffset;
    if (off == 0 || mh_hw_has_managed_dict(tp))
        return NULL;
    if (off < 0) {
        /* After the items: an int subclass's (IntEnum members) before
         * 3.12, which manages its dict. */
        Py_ssize_t n = mh_hw_var_items(op);
        size_t size = (size_t)tp->tp_basicsize + (size_t)n * tp->tp_itemsize;
        size = (size + sizeof(void *) - 1) & ~(sizeof(void *) - 1);
        off += (Py_ssize_t)size;
    }
    return (PyObject **)((char *)op + off);
}

/* An instance attribute, read from its __dict__ or inline values. */
PyObject *
mh_hd_attr_get(PyObject *op, const char *name)
{
    struct find f = {name, strlen(name), NULL};
    if (mh_hw_has_managed_dict(Py_TYPE(op))) {
        PyObject *d = mh_hw_managed_dict(op, find_kv, &f);
        return d ? mh_hd_dict_get(d, name) : f.found;
    }
    PyObject **dp = mh_hd_dict_ptr(op);
    return dp && *dp ? mh_hd_dict_get(*dp, name) : NULL;
}

/* ---- types ---- */

/* A type's name as Python shows it: `str`, `collections.deque`,
 * `app.models.User` (__module__ + '.' + __qualname__, read from the
 * type's dict and ht_qualname). */
static void
type_name(struct sb *b, PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        mh_hd_sb_puts(b, tp->tp_name ? tp->tp_name : "?");
        return;
    }
    PyObject *mod = mh_hd_dict_get(mh_hw_type_dict(tp), "__module__");
    if (mod && PyUnicode_Check(mod) && !str_equals(mod, "builtins", 8)) {
        mh_hd_sb_str(b, mod);
        mh_hd_sb_cp(b, '.');
    }
    PyObject *qn = ((PyHeapTypeObject *)tp)->ht_qualname;
    if (qn && PyUnicode_Check(qn))
        mh_hd_sb_str(b, qn);
    else
        mh_hd_sb_puts(b, tp->tp_name ? tp->tp_name : "?");
}

uint64_t
mh_hd_type_id(struct walk *w, PyTypeObject *tp)
{
    uint64_t id;
    if (mh_addrmap_get(&w->types, (uintptr_t)tp, &id))
        return id;
    struct sb b;
    mh_hd_sb_init(&b, NAME_MAX_BYTES);
    type_name(&b, tp);
    uint64_t name = mh_hd_string_id(w, b.buf, b.len);
    id = ++w->next_type;
    int rc = name ? mh_heap_put_type(&w->chunk, id, (uintptr_t)tp, name,
                                     mh_hw_preheader(tp),
                                     PyType_IS_GC(tp) ? MH_TYPE_GC : 0)
                  : MH_ENOMEM;
    if (rc == MH_OK)
        rc = mh_addrmap_put(&w->types, (uintptr_t)tp, id);
    if (rc) {
        fail(w, rc);
        return 0;
    }
    return id;
}
