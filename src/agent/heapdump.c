/* Heap dumps: fork, walk every live object in the child, write the dump
 * (docs/heap-format.md), _exit.
 *
 * The parent pauses only for fork() (the pause is measured and written in
 * the dump). The child is a frozen copy of the process with one thread,
 * ours, holding the GIL: it reads objects, never writes them, never calls
 * Python code or Python's allocators (its memory is mh_malloc's, which is
 * libc's malloc underneath, safe after fork in glibc) and takes no lock
 * another thread could have held at the fork (the tracker's is reset by
 * its atfork handler).
 *
 * The walk: ROOT records first (interpreter containers, every thread's
 * frames: locals and value stack), then every object of the GC lists, and
 * depth-first from each what it references and was not seen yet, so
 * objects reachable only through untracked containers (str, int, tuples
 * and dicts the GC untracked) are found too. References are those of
 * tp_traverse plus what it omits: dict keys, inline attribute values
 * (3.11+, read from the values array, never by making a __dict__), the
 * fields of code objects and static types. Then ALLOC records join the
 * tracker's live blocks to the objects found; END says the dump is
 * whole. Layouts that differ per CPython version are in heapwalk_py*.c. */
#include "../format/heap.h"
#include "heapwalk.h" /* Python.h first, as CPython asks */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <structmember.h> /* T_OBJECT_EX */

#include "../format/capture_write.h"
#include "../format/heap_write.h"
#include "../util/addrmap.h"
#include "../util/fd.h"
#include "../util/file.h"
#include "../util/mem.h"
#include "heapdump.h"
#include "heapwalk.h"
#include "tracker.h"
#include "writer.h"

/* Payload per chunk before sealing. A dump cut short (the walker killed,
 * the disk full) loses the chunk it ends in: small chunks keep the rest.
 * The compressor's window is 16 KiB, so they compress as well as big
 * ones (docs/heap-format.md, "Chunks"). */
#define CHUNK_BYTES (64u << 10)
#define ZSTD_LEVEL 1
/* Edges recorded per object: its record (at most 20 bytes an edge) must
 * fit a chunk. Targets past it are still walked; the object is flagged. */
#define EDGES_MAX (2u << 20)
#define LABELS_MAX 4096     /* named fields per object (a frame's locals) */
#define NAME_MAX_BYTES 1024 /* root names, type names */
#define REPR_DEPTH 3        /* nested tuples in a key repr */
#define CHILDREN_MAX 16     /* walker children not reaped yet */

#define SEEN_ROOT 1u   /* the target of a ROOT record */
#define SEEN_QUEUED 2u /* pushed to be walked (or walked) */
#define SEEN_FLAGS 7u

static uint64_t
clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the visited set: addresses with flags in the low bits ---- */

struct addrset {
    uintptr_t *slots; /* 0 = empty; address | SEEN_* */
    size_t size;      /* power of two */
    size_t count;
};

static inline size_t
addr_hash(uintptr_t a)
{
    uint64_t k = (uint64_t)a >> 3;
    k *= 0x9E3779B97F4A7C15ull;
    return (size_t)(k ^ (k >> 29));
}

static int
set_grow(struct addrset *s)
{
    size_t size = s->size ? s->size * 2 : (1u << 16);
    uintptr_t *n = mh_calloc(size, sizeof(*n));
    if (!n)
        return MH_ENOMEM;
    for (size_t i = 0; i < s->size; i++) {
        uintptr_t v = s->slots[i];
        if (!v)
            continue;
        size_t j = addr_hash(v & ~(uintptr_t)SEEN_FLAGS) & (size - 1);
        while (n[j])
            j = (j + 1) & (size - 1);
        n[j] = v;
    }
    mh_free(s->slots);
    s->slots = n;
    s->size = size;
    return MH_OK;
}

/* The slot of `a`, inserted with no flags when absent (*is_new set);
 * NULL when memory ran out. */
static uintptr_t *
set_insert(struct addrset *s, uintptr_t a, int *is_new)
{
    if ((s->count + 1) * 2 > s->size && set_grow(s))
        return NULL;
    size_t mask = s->size - 1;
    for (size_t j = addr_hash(a) & mask;; j = (j + 1) & mask) {
        uintptr_t v = s->slots[j];
        if (!v) {
            s->slots[j] = a;
            s->count++;
            *is_new = 1;
            return &s->slots[j];
        }
        if ((v & ~(uintptr_t)SEEN_FLAGS) == a) {
            *is_new = 0;
            return &s->slots[j];
        }
    }
}

static int
set_has(const struct addrset *s, uintptr_t a)
{
    if (!s->size)
        return 0;
    size_t mask = s->size - 1;
    for (size_t j = addr_hash(a) & mask; s->slots[j]; j = (j + 1) & mask)
        if ((s->slots[j] & ~(uintptr_t)SEEN_FLAGS) == a)
            return 1;
    return 0;
}

/* ---- strings by content ---- */

struct strent {
    uint64_t hash; /* 0 = empty slot */
    uint64_t off;  /* into the arena */
    uint32_t len;
    uint32_t id;
};

struct strtab {
    struct strent *slots;
    size_t size, count;
    struct mh_buf arena;
};

static uint64_t
str_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

/* ---- the walk's state (the child's only) ---- */

struct label {
    PyObject *target;
    uint64_t label;
};

struct walk {
    PyInterpreterState *interp;
    int fd;
    int err; /* first MH_E* error; the walk stops */
    struct mh_buf chunk, out, zscratch;
    struct mh_heap_enc enc;

    struct addrset seen;
    PyObject **roots; /* ROOT targets, once each */
    size_t nroots, caproots;
    PyObject **stack;
    size_t nstack, capstack;
    PyObject **big; /* objects whose records wait for the end of the walk */
    size_t nbig, capbig;

    struct mh_addrmap types;    /* type object -> type id */
    struct mh_addrmap strcache; /* str object | 0 (text) or | 1 (repr),
                                   C string | 2 -> string id */
    struct mh_addrmap closures; /* closure tuple -> code object */
    struct mh_addrmap locnames; /* local name str | holder, form ->
                                     string id (local_name_id) */
    struct strtab strs;
    uint64_t next_type, next_string;

    struct mh_heap_edge *edges;
    size_t nedges, capedges;
    int capped;
    struct label *labels; /* names for what tp_traverse visits */
    size_t nlabels, caplabels;
    /* Names what tp_traverse visits that no label names (members of a
     * deque or set, a task's coroutine), or NULL. */
    uint64_t (*anon)(struct walk *w, PyObject *target);

    traverseproc subtype_traverse; /* of classes made by `class` */
    PyObject *cur;                 /* the object being walked */
    PyCodeObject *closure_code;    /* names the items of `cur` */
    uint64_t objects, nedges_total;
};

static void
fail(struct walk *w, int err)
{
    if (!w->err)
        w->err = err;
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return MH_EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return MH_OK;
}

/* Seals the pending records as one chunk and writes it. */
static void
flush_chunk(struct walk *w)
{
    if (w->err || w->chunk.len == 0)
        return;
    mh_buf_reset(&w->out);
    int rc = mh_cap_chunk_seal(&w->out, w->chunk.data, w->chunk.len,
                               ZSTD_LEVEL, &w->zscratch);
    if (rc == MH_OK)
        rc = write_all(w->fd, w->out.data, w->out.len);
    mh_buf_reset(&w->chunk);
    w->enc.last_addr = 0;
    if (rc)
        fail(w, rc);
}

/* ---- string ids ---- */

static size_t
utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* The id of a string, writing its STRING record the first time. */
static uint64_t
string_id(struct walk *w, const char *s, size_t n)
{
    n = utf8_cut(s, n, MH_HEAP_STR_MAX);
    struct strtab *t = &w->strs;
    if ((t->count + 1) * 2 > t->size) {
        size_t size = t->size ? t->size * 2 : 4096;
        struct strent *ns = mh_calloc(size, sizeof(*ns));
        if (!ns) {
            fail(w, MH_ENOMEM);
            return 0;
        }
        for (size_t i = 0; i < t->size; i++) {
            if (!t->slots[i].hash)
                continue;
            size_t j = (size_t)t->slots[i].hash & (size - 1);
            while (ns[j].hash)
                j = (j + 1) & (size - 1);
            ns[j] = t->slots[i];
        }
        mh_free(t->slots);
        t->slots = ns;
        t->size = size;
    }
    uint64_t h = str_hash(s, n);
    size_t mask = t->size - 1, j;
    for (j = (size_t)h & mask; t->slots[j].hash; j = (j + 1) & mask) {
        struct strent *e = &t->slots[j];
        if (e->hash == h && e->len == n &&
            (n == 0 || memcmp(t->arena.data + e->off, s, n) == 0))
            return e->id;
    }
    uint64_t off = t->arena.len;
    uint64_t id = ++w->next_string;
    int rc = mh_buf_put(&t->arena, s, n);
    if (rc == MH_OK)
        rc = mh_heap_put_string(&w->chunk, id, s, n);
    if (rc) {
        fail(w, rc);
        return 0;
    }
    t->slots[j] = (struct strent){h, off, (uint32_t)n, (uint32_t)id};
    t->count++;
    return id;
}

static uint64_t
cstr_id(struct walk *w, const char *s)
{
    uint64_t id;
    if (mh_addrmap_get(&w->strcache, (uintptr_t)s | 2, &id))
        return id;
    id = string_id(w, s, strlen(s));
    if (id && ((uintptr_t)s & 3) == 0 &&
        mh_addrmap_put(&w->strcache, (uintptr_t)s | 2, id))
        fail(w, MH_ENOMEM);
    return id;
}

/* ---- text of objects, without Python's help ---- */

struct sb {
    char buf[MH_HEAP_KEY_REPR_MAX * 4 + NAME_MAX_BYTES];
    size_t len;
    size_t chars, maxchars; /* code points written, and the cap */
    int cut;                /* something did not fit */
};

static void
sb_init(struct sb *b, size_t maxchars)
{
    b->len = 0;
    b->chars = 0;
    b->maxchars = maxchars;
    b->cut = 0;
}

static void
sb_cp(struct sb *b, uint32_t c)
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

static void
sb_puts(struct sb *b, const char *s)
{
    for (; *s; s++)
        sb_cp(b, (unsigned char)*s);
}

static void sb_printf(struct sb *b, const char *fmt, ...) MH_PRINTF(2, 3);

static void
sb_printf(struct sb *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sb_puts(b, tmp);
}

/* Whether a str's characters can be read: 3.9-3.11 strings made by the
 * deprecated wchar_t APIs may not be "ready". */
static int
str_readable(PyObject *s)
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
static void
sb_str(struct sb *b, PyObject *s)
{
    if (!str_readable(s)) {
        sb_puts(b, "?");
        return;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n && !b->cut; i++)
        sb_cp(b, PyUnicode_READ(kind, data, i));
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

static void
sb_escape(struct sb *b, Py_UCS4 c, Py_UCS4 quote)
{
    if (c == quote || c == '\\') {
        sb_cp(b, '\\');
        sb_cp(b, c);
    } else if (c == '\t') {
        sb_puts(b, "\\t");
    } else if (c == '\n') {
        sb_puts(b, "\\n");
    } else if (c == '\r') {
        sb_puts(b, "\\r");
    } else if (printable(c)) {
        sb_cp(b, c);
    } else if (c <= 0xff) {
        sb_printf(b, "\\x%02x", (unsigned)c);
    } else if (c <= 0xffff) {
        sb_printf(b, "\\u%04x", (unsigned)c);
    } else {
        sb_printf(b, "\\U%08x", (unsigned)c);
    }
}

static void
repr_str(struct sb *b, PyObject *s)
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
    sb_cp(b, quote);
    for (Py_ssize_t i = 0; i < n && !b->cut; i++)
        sb_escape(b, PyUnicode_READ(kind, data, i), quote);
    sb_cp(b, quote);
}

static void
repr_bytes(struct sb *b, PyObject *o)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(o);
    Py_ssize_t n = PyBytes_GET_SIZE(o);
    int sq = memchr(p, '\'', (size_t)n) != NULL;
    int dq = memchr(p, '"', (size_t)n) != NULL;
    unsigned char quote = sq && !dq ? '"' : '\'';
    sb_cp(b, 'b');
    sb_cp(b, quote);
    for (Py_ssize_t i = 0; i < n && !b->cut; i++) {
        unsigned char c = p[i];
        if (c == quote || c == '\\') {
            sb_cp(b, '\\');
            sb_cp(b, c);
        } else if (c == '\t') {
            sb_puts(b, "\\t");
        } else if (c == '\n') {
            sb_puts(b, "\\n");
        } else if (c == '\r') {
            sb_puts(b, "\\r");
        } else if (c < 0x20 || c >= 0x7f) {
            sb_printf(b, "\\x%02x", c);
        } else {
            sb_cp(b, c);
        }
    }
    sb_cp(b, quote);
}

/* float.__repr__: the shortest digits that read back as x, in fixed
 * notation for 1e-4 <= |x| < 1e16, else with an exponent. */
static void
repr_float(struct sb *b, double x)
{
    if (isnan(x)) {
        sb_puts(b, "nan");
        return;
    }
    if (isinf(x)) {
        sb_puts(b, x > 0 ? "inf" : "-inf");
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
        sb_cp(b, '-');
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
        sb_cp(b, (unsigned char)digits[0]);
        if (nd > 1) {
            sb_cp(b, '.');
            sb_puts(b, digits + 1);
        }
        sb_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    } else if (decpt <= 0) {
        sb_puts(b, "0.");
        for (int i = 0; i < -decpt; i++)
            sb_cp(b, '0');
        sb_puts(b, digits);
    } else if (decpt >= nd) {
        sb_puts(b, digits);
        for (int i = nd; i < decpt; i++)
            sb_cp(b, '0');
        sb_puts(b, ".0");
    } else {
        for (int i = 0; i < nd; i++) {
            if (i == decpt)
                sb_cp(b, '.');
            sb_cp(b, (unsigned char)digits[i]);
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
    if (tp == &PyUnicode_Type && str_readable(k)) {
        repr_str(b, k);
    } else if (tp == &PyBool_Type) {
        sb_puts(b, k == Py_True ? "True" : "False");
    } else if (tp == &PyLong_Type) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(k, &overflow);
        if (overflow)
            sb_printf(b, "<int at %p>", (void *)k);
        else
            sb_printf(b, "%lld", v);
    } else if (tp == &PyBytes_Type) {
        repr_bytes(b, k);
    } else if (tp == &PyFloat_Type) {
        repr_float(b, PyFloat_AS_DOUBLE(k));
    } else if (k == Py_None) {
        sb_puts(b, "None");
    } else if (tp == &PyTuple_Type && depth < REPR_DEPTH) {
        Py_ssize_t n = PyTuple_GET_SIZE(k);
        sb_cp(b, '(');
        for (Py_ssize_t i = 0; i < n && !b->cut; i++) {
            if (i)
                sb_puts(b, ", ");
            repr_key(b, PyTuple_GET_ITEM(k, i), depth + 1);
        }
        if (n == 1)
            sb_cp(b, ',');
        sb_cp(b, ')');
    } else {
        sb_cp(b, '<');
        type_name(b, tp);
        sb_printf(b, " at %p>", (void *)k);
    }
}

/* The string id of a dict key's repr, capped at MH_HEAP_KEY_REPR_MAX
 * characters ("..." ends a cut one). */
static uint64_t
key_repr_id(struct walk *w, PyObject *k)
{
    uint64_t id;
    if (mh_addrmap_get(&w->strcache, (uintptr_t)k | 1, &id))
        return id;
    struct sb b;
    sb_init(&b, MH_HEAP_KEY_REPR_MAX - 3);
    repr_key(&b, k, 0);
    if (b.cut) {
        b.cut = 0;
        b.maxchars += 3;
        sb_puts(&b, "...");
    }
    id = string_id(w, b.buf, b.len);
    if (id && mh_addrmap_put(&w->strcache, (uintptr_t)k | 1, id))
        fail(w, MH_ENOMEM);
    return id;
}

/* The string id of a str's text (an attribute or variable name). */
static uint64_t
str_text_id(struct walk *w, PyObject *s)
{
    uint64_t id;
    if (!s || !PyUnicode_Check(s))
        return cstr_id(w, "?");
    if (mh_addrmap_get(&w->strcache, (uintptr_t)s, &id))
        return id;
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        id = string_id(w, (const char *)PyUnicode_DATA(s),
                       (size_t)PyUnicode_GET_LENGTH(s));
    } else {
        struct sb b;
        sb_init(&b, sizeof(b.buf));
        sb_str(&b, s);
        id = string_id(w, b.buf, b.len);
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

static PyObject *
dict_get(PyObject *dict, const char *name)
{
    struct find f = {name, strlen(name), NULL};
    if (dict && PyDict_Check(dict))
        mh_hw_dict_each(dict, find_kv, &f);
    return f.found;
}

/* The dict of an instance without a managed dict, or NULL. */
static PyObject **
dict_ptr(PyObject *op)
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
static PyObject *
attr_get(PyObject *op, const char *name)
{
    struct find f = {name, strlen(name), NULL};
    if (mh_hw_has_managed_dict(Py_TYPE(op))) {
        PyObject *d = mh_hw_managed_dict(op, find_kv, &f);
        return d ? dict_get(d, name) : f.found;
    }
    PyObject **dp = dict_ptr(op);
    return dp && *dp ? dict_get(*dp, name) : NULL;
}

/* ---- types ---- */

/* A type's name as Python shows it: `str`, `collections.deque`,
 * `app.models.User` (__module__ + '.' + __qualname__, read from the
 * type's dict and ht_qualname). */
static void
type_name(struct sb *b, PyTypeObject *tp)
{
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        sb_puts(b, tp->tp_name ? tp->tp_name : "?");
        return;
    }
    PyObject *mod = dict_get(mh_hw_type_dict(tp), "__module__");
    if (mod && PyUnicode_Check(mod) && !str_equals(mod, "builtins", 8)) {
        sb_str(b, mod);
        sb_cp(b, '.');
    }
    PyObject *qn = ((PyHeapTypeObject *)tp)->ht_qualname;
    if (qn && PyUnicode_Check(qn))
        sb_str(b, qn);
    else
        sb_puts(b, tp->tp_name ? tp->tp_name : "?");
}

static uint64_t
type_id(struct walk *w, PyTypeObject *tp)
{
    uint64_t id;
    if (mh_addrmap_get(&w->types, (uintptr_t)tp, &id))
        return id;
    struct sb b;
    sb_init(&b, NAME_MAX_BYTES);
    type_name(&b, tp);
    uint64_t name = string_id(w, b.buf, b.len);
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

/* ---- edges ---- */

static void
discover(struct walk *w, PyObject *op)
{
    int is_new;
    uintptr_t *slot = set_insert(&w->seen, (uintptr_t)op, &is_new);
    if (!slot) {
        fail(w, MH_ENOMEM);
        return;
    }
    if (!is_new && (*slot & SEEN_QUEUED))
        return;
    *slot |= SEEN_QUEUED;
    if (w->nstack == w->capstack) {
        size_t cap = w->capstack ? w->capstack * 2 : 4096;
        PyObject **s = mh_realloc(w->stack, cap * sizeof(*s));
        if (!s) {
            fail(w, MH_ENOMEM);
            return;
        }
        w->stack = s;
        w->capstack = cap;
    }
    w->stack[w->nstack++] = op;
}

/* An array of *cap elements of `size` bytes holding n, with room for
 * one more (doubled from `first` when full): `arr` or its moved copy,
 * or NULL once the walk has failed for memory (`arr` is unchanged). */
static void *
room_for_one(struct walk *w, void *arr, size_t *cap, size_t n, size_t size,
             size_t first)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : first;
    void *a = mh_realloc(arr, ncap * size);
    if (!a) {
        fail(w, MH_ENOMEM);
        return NULL;
    }
    *cap = ncap;
    return a;
}

static void
add_edge(struct walk *w, PyObject *target, uint64_t label)
{
    if (!target)
        return;
    discover(w, target);
    if (w->nedges >= EDGES_MAX) {
        w->capped = 1;
        return;
    }
    void *grown = room_for_one(w, w->edges, &w->capedges, w->nedges,
                               sizeof(*w->edges), 1024);
    if (!grown)
        return;
    w->edges = grown;
    w->edges[w->nedges++] = (struct mh_heap_edge){(uintptr_t)target, label};
}

static uint64_t
mklabel(uint64_t name, int kind)
{
    return (name << MH_EDGE_KIND_BITS) | (uint64_t)kind;
}

/* A reference named by a C string, emitted directly. */
static void
field_edge(void *arg, PyObject *target, int kind, const char *name)
{
    struct walk *w = arg;
    if (target)
        add_edge(w, target, mklabel(cstr_id(w, name), kind));
}

/* A name (an edge label) for a reference tp_traverse will report: the
 * first visit of `target` takes it. Past LABELS_MAX names, references
 * go unnamed. */
static void
label_id(struct walk *w, PyObject *target, uint64_t lab)
{
    if (!target || w->nlabels == LABELS_MAX)
        return;
    void *grown = room_for_one(w, w->labels, &w->caplabels, w->nlabels,
                               sizeof(*w->labels), 64);
    if (!grown)
        return;
    w->labels = grown;
    w->labels[w->nlabels++] = (struct label){target, lab};
}

static void
label(struct walk *w, PyObject *target, int kind, const char *name)
{
    if (target)
        label_id(w, target, mklabel(cstr_id(w, name), kind));
}

/* label() as a heapwalk field callback. */
static void
label_field(void *arg, PyObject *target, int kind, const char *name)
{
    label(arg, target, kind, name);
}

static int
visit(PyObject *target, void *arg)
{
    struct walk *w = arg;
    if (!target)
        return 0;
    uint64_t l = MH_EDGE_NONE;
    for (size_t i = 0; i < w->nlabels; i++)
        if (w->labels[i].target == target) {
            l = w->labels[i].label;
            /* Keep the order: two slots holding one object take their
             * names in turn. */
            memmove(&w->labels[i], &w->labels[i + 1],
                    (w->nlabels - i - 1) * sizeof(*w->labels));
            w->nlabels--;
            break;
        }
    if (l == MH_EDGE_NONE && w->anon)
        l = w->anon(w, target);
    add_edge(w, target, l);
    return 0;
}

/* A dict entry: the key object (when the dict holds it) and the value,
 * both named by the key's repr. */
static void
dict_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct walk *w = arg;
    uint64_t name = key_repr_id(w, key);
    if (owns_key)
        add_edge(w, key, mklabel(name, MH_EDGE_DICTKEY));
    add_edge(w, value, mklabel(name, MH_EDGE_DICTVAL));
}

/* An inline attribute value (3.11+), named by its key's text. */
static void
attr_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct walk *w = arg;
    (void)owns_key;
    add_edge(w, value, mklabel(str_text_id(w, key), MH_EDGE_ATTR));
}

/* The keys of a type's shared keys table, which the type holds. */
static void
cached_key(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct walk *w = arg;
    (void)value;
    (void)owns_key;
    add_edge(w, key, mklabel(cstr_id(w, "ht_cached_keys"), MH_EDGE_SLOT));
}

static void
items_edges(struct walk *w, PyObject **items, Py_ssize_t n)
{
    PyCodeObject *co = w->closure_code;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (co) {
            PyObject *name = mh_hw_freevar_name(co, (int)i);
            add_edge(w, items[i], mklabel(str_text_id(w, name), MH_EDGE_CELL));
        } else {
            add_edge(w, items[i], MH_EDGE_ITEM);
        }
    }
}

/* __slots__ of one class of an instance's MRO (what subtype_traverse
 * visits): members of type T_OBJECT_EX after the heap type struct. */
static void
slot_edges(struct walk *w, PyObject *op, PyTypeObject *base)
{
    Py_ssize_t n = Py_SIZE(base);
    PyMemberDef *mp =
        (PyMemberDef *)((char *)base + Py_TYPE(base)->tp_basicsize);
    for (Py_ssize_t i = 0; i < n; i++, mp++)
        if (mp->type == T_OBJECT_EX && mp->name)
            add_edge(w, *(PyObject **)((char *)op + mp->offset),
                     mklabel(cstr_id(w, mp->name), MH_EDGE_ATTR));
}

static void
container_edges(struct walk *w, PyObject *op, traverseproc traverse)
{
    if (PyDict_Check(op))
        mh_hw_dict_each(op, dict_kv, w);
    else if (PyList_Check(op))
        items_edges(w, ((PyListObject *)op)->ob_item, PyList_GET_SIZE(op));
    else if (PyTuple_Check(op))
        items_edges(w, ((PyTupleObject *)op)->ob_item, PyTuple_GET_SIZE(op));
    else if (traverse)
        traverse(op, visit, w);
}

/* ---- names for what tp_traverse visits in built-in objects ---- */

/* Who holds a frame's slots, for the names of what they hold: a frame
 * object, or (3.11+, which embeds the frame) a generator, coroutine or
 * async generator, read through gen.gi_frame, coro.cr_frame... */
enum { HOLDER_FRAME, HOLDER_GEN, HOLDER_CORO, HOLDER_AGEN, HOLDERS };

static const char *const holder_frame[HOLDERS] = {NULL, "gi_frame", "cr_frame",
                                                  "ag_frame"};
static const char *const holder_code[HOLDERS] = {"f_code", "gi_code",
                                                 "cr_code", "ag_code"};
static const char *const holder_locals[HOLDERS] = {
    "f_locals", "gi_frame.f_locals", "cr_frame.f_locals", "ag_frame.f_locals"};
static const char *const holder_globals[HOLDERS] = {
    "f_globals", "gi_frame.f_globals", "cr_frame.f_globals",
    "ag_frame.f_globals"};
static const char *const holder_builtins[HOLDERS] = {
    "f_builtins", "gi_frame.f_builtins", "cr_frame.f_builtins",
    "ag_frame.f_builtins"};
static const char *const holder_stack[HOLDERS] = {
    "<value stack>", "gi_frame.<value stack>", "cr_frame.<value stack>",
    "ag_frame.<value stack>"};
static const char *const holder_unnamed[HOLDERS] = {
    "<local>", "gi_frame.<local>", "cr_frame.<local>", "ag_frame.<local>"};

/* The string id of the name of local slot `name` (a str) of a frame held
 * by `holder`: `f_locals['x']`, or `<cell x>` for a cell or free
 * variable, after the holder's prefix. Cached by name object, holder and
 * form: code objects share their names, and a heap holds many frames of
 * one function. */
static uint64_t
local_name_id(struct walk *w, PyObject *name, int holder, int cell)
{
    uintptr_t key = (uintptr_t)name | (uintptr_t)(holder << 1 | cell);
    uint64_t id;
    if (((uintptr_t)name & 7) == 0 && mh_addrmap_get(&w->locnames, key, &id))
        return id;
    struct sb b;
    sb_init(&b, NAME_MAX_BYTES);
    if (holder_frame[holder]) {
        sb_puts(&b, holder_frame[holder]);
        sb_cp(&b, '.');
    }
    if (!cell) {
        sb_puts(&b, "f_locals[");
        repr_str(&b, name);
        sb_cp(&b, ']');
    } else {
        sb_puts(&b, "<cell ");
        sb_str(&b, name);
        sb_cp(&b, '>');
    }
    id = string_id(w, b.buf, b.len);
    /* A full cache only costs the next lookup its string. */
    if (id && ((uintptr_t)name & 7) == 0 &&
        mh_addrmap_put(&w->locnames, key, id) == MH_ENOMEM)
        fail(w, MH_ENOMEM);
    return id;
}

/* Names what a frame object or a generator-like object holds: f_back,
 * the code, globals, each local by its name (`f_locals['x']`, as Python
 * reads it), cells and free variables (`<cell x>`), the value stack of
 * a suspended frame (`<value stack>`). */
static void
held_frame_labels(struct walk *w, PyObject *op, const struct mh_hw_held *h)
{
    int holder = h->is_frame                 ? HOLDER_FRAME
                 : PyCoro_CheckExact(op)     ? HOLDER_CORO
                 : PyAsyncGen_CheckExact(op) ? HOLDER_AGEN
                                             : HOLDER_GEN;
    const char *code = holder_code[holder];
    if (holder != HOLDER_FRAME) {
        /* 3.9-3.10: a frame object holds the generator's locals; from
         * 3.11 the generator does, read as gen.gi_frame.f_locals. */
        label(w, h->frame, MH_EDGE_ATTR, holder_frame[holder]);
        label(w, h->name, MH_EDGE_ATTR, "__name__");
        label(w, h->qualname, MH_EDGE_ATTR, "__qualname__");
        /* 3.11 visits the code twice: gi_code, and its frame's. */
        label(w, h->code, MH_EDGE_ATTR, code);
    }
    label(w, h->back, MH_EDGE_ATTR, "f_back");
    label(w, h->code, MH_EDGE_ATTR, code);
    label(w, h->locals, MH_EDGE_ATTR, holder_locals[holder]);
    label(w, h->globals, MH_EDGE_ATTR, holder_globals[holder]);
    label(w, h->builtins, MH_EDGE_ATTR, holder_builtins[holder]);
    label(w, h->func, MH_EDGE_SLOT, "f_func");
    const struct mh_hw_frame *f = &h->slots;
    if (!f->code)
        return;
    for (int i = 0; i < f->nlocals + f->nstack && !w->err; i++) {
        PyObject *v =
            i < f->nlocals ? f->localsplus[i] : f->stack[i - f->nlocals];
        if (!v)
            continue;
        if (i >= f->nlocals) {
            label(w, v, MH_EDGE_ATTR, holder_stack[holder]);
            continue;
        }
        PyObject *name = mh_hw_local_name(f->code, i);
        if (!name || !PyUnicode_Check(name) || !str_readable(name)) {
            label(w, v, MH_EDGE_ATTR, holder_unnamed[holder]);
            continue;
        }
        int cell = mh_hw_local_kind(f->code, i) != MH_HW_LOCAL;
        label_id(w, v,
                 mklabel(local_name_id(w, name, holder, cell), MH_EDGE_ATTR));
    }
}

/* Whether tp or a base of it is the built-in type named `name`. */
static int
is_builtin(PyTypeObject *tp, const char *name)
{
    for (; tp; tp = tp->tp_base)
        if (tp->tp_name && !strcmp(tp->tp_name, name))
            return 1;
    return 0;
}

static uint64_t
anon_item(struct walk *w, PyObject *target)
{
    (void)w;
    (void)target;
    return MH_EDGE_ITEM;
}

static uint64_t
anon_member(struct walk *w, PyObject *target)
{
    (void)target;
    return mklabel(cstr_id(w, "<set member>"), MH_EDGE_ATTR);
}

/* What an asyncio task (the C one) holds: its coroutine. */
static uint64_t
anon_task(struct walk *w, PyObject *target)
{
    if (PyCoro_CheckExact(target) || PyGen_Check(target))
        return mklabel(cstr_id(w, "get_coro()"), MH_EDGE_ATTR);
    return MH_EDGE_NONE;
}

/* Names the references of built-in objects (and of instances of classes
 * derived from them) that their tp_traverse visits, as Python spells
 * them where it can (`.tb_next`, `.__self__`), else as a labelled
 * pseudo-attribute (`.<lru_cache>`). */
static void
builtin_labels(struct walk *w, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    struct mh_hw_held held;
    PyObject *func;
    if (PyModule_Check(op)) {
        label(w, PyModule_GetDict(op), MH_EDGE_SLOT, "__dict__");
    } else if (PyFunction_Check(op)) {
        mh_hw_function_refs(op, label_field, w);
    } else if ((func = mh_hw_classmethod_func(op)) != NULL) {
        label(w, func, MH_EDGE_ATTR, "__func__");
    } else if (PyObject_TypeCheck(op, &PyMethodDescr_Type) ||
               PyObject_TypeCheck(op, &PyClassMethodDescr_Type) ||
               PyObject_TypeCheck(op, &PyGetSetDescr_Type) ||
               PyObject_TypeCheck(op, &PyMemberDescr_Type) ||
               PyObject_TypeCheck(op, &PyWrapperDescr_Type)) {
        PyDescrObject *d = (PyDescrObject *)op;
        label(w, (PyObject *)d->d_type, MH_EDGE_ATTR, "__objclass__");
        label(w, d->d_name, MH_EDGE_ATTR, "__name__");
        label(w, d->d_qualname, MH_EDGE_ATTR, "__qualname__");
    } else if (PyCell_Check(op)) {
        label(w, PyCell_GET(op), MH_EDGE_ATTR, "cell_contents");
    } else if (PyMethod_Check(op)) {
        label(w, PyMethod_GET_FUNCTION(op), MH_EDGE_ATTR, "__func__");
        label(w, PyMethod_GET_SELF(op), MH_EDGE_ATTR, "__self__");
    } else if (PyCFunction_Check(op)) {
        PyCFunctionObject *f = (PyCFunctionObject *)op;
        label(w, f->m_self, MH_EDGE_ATTR, "__self__");
        label(w, f->m_module, MH_EDGE_ATTR, "__module__");
    } else if (PyTraceBack_Check(op)) {
        PyTracebackObject *tb = (PyTracebackObject *)op;
        label(w, (PyObject *)tb->tb_next, MH_EDGE_ATTR, "tb_next");
        label(w, (PyObject *)tb->tb_frame, MH_EDGE_ATTR, "tb_frame");
    } else if (mh_hw_held_frame(op, &held)) {
        held_frame_labels(w, op, &held);
    } else if (PyExceptionInstance_Check(op)) {
        PyBaseExceptionObject *e = (PyBaseExceptionObject *)op;
        label(w, e->traceback, MH_EDGE_ATTR, "__traceback__");
        label(w, e->context, MH_EDGE_ATTR, "__context__");
        label(w, e->cause, MH_EDGE_ATTR, "__cause__");
        label(w, e->args, MH_EDGE_ATTR, "args");
    } else if (PyWeakref_Check(op)) {
        label(w, ((PyWeakReference *)op)->wr_callback, MH_EDGE_ATTR,
              "__callback__");
    } else if (mh_hw_lru_cache_refs(op, label_field, w)) {
    } else if (mh_hw_partial_refs(op, label_field, w)) {
    } else if (PyTuple_Check(op)) {
        w->anon = anon_item; /* struct sequences: sys.flags... */
    } else if (PyAnySet_Check(op)) {
        w->anon = anon_member;
    } else if (is_builtin(tp, "collections.deque")) {
        w->anon = anon_item;
    } else if (is_builtin(tp, "_asyncio.Task")) {
        w->anon = anon_task;
    }
}

/* An instance of a class made by a `class` statement: what
 * subtype_traverse visits, named. */
static void
instance_edges(struct walk *w, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op), *base = tp;
    while (base && base->tp_traverse == w->subtype_traverse) {
        if (Py_SIZE(base))
            slot_edges(w, op, base);
        base = base->tp_base;
    }
    traverseproc basetraverse = base ? base->tp_traverse : NULL;
    if (mh_hw_has_managed_dict(tp)) {
        PyObject *d = mh_hw_managed_dict(op, attr_kv, w);
        field_edge(w, d, MH_EDGE_SLOT, "__dict__");
    } else if (base && tp->tp_dictoffset != base->tp_dictoffset) {
        PyObject **dp = dict_ptr(op);
        if (dp)
            field_edge(w, *dp, MH_EDGE_SLOT, "__dict__");
    }
    if (!basetraverse || !(base->tp_flags & Py_TPFLAGS_HEAPTYPE))
        field_edge(w, (PyObject *)tp, MH_EDGE_ATTR, "__class__");
    if (basetraverse) {
        builtin_labels(w, op);
        container_edges(w, op, basetraverse);
    }
}

static int
is_leaf(PyObject *op)
{
    return PyUnicode_Check(op) || PyBytes_Check(op) || PyLong_Check(op) ||
           PyFloat_Check(op) || PyComplex_Check(op) || op == Py_None ||
           PyByteArray_Check(op) || op == Py_Ellipsis ||
           op == Py_NotImplemented || Py_IS_TYPE(op, &PyBaseObject_Type);
}

/* Lists the references of op into w->edges; returns MH_OBJ_UNFOLLOWED
 * when its layout is unknown. */
static unsigned
object_edges(struct walk *w, PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    w->nlabels = 0;
    w->anon = NULL;
    if (PyType_Check(op)) {
        /* Not type_traverse: it aborts on static types. */
        mh_hw_type_refs((PyTypeObject *)op, field_edge, w);
        mh_hw_cached_keys_each((PyTypeObject *)op, cached_key, w);
        if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
            field_edge(w, (PyObject *)tp, MH_EDGE_ATTR, "__class__");
        return 0;
    }
    if (PyCode_Check(op)) {
        mh_hw_code_refs((PyCodeObject *)op, field_edge, w);
        return 0;
    }
    if (Py_IS_TYPE(op, &PyModuleDef_Type)) {
        /* A single-phase extension module's definition keeps a copy of
         * its module dict, to initialise it again. */
        field_edge(w, ((PyModuleDef *)op)->m_base.m_copy, MH_EDGE_SLOT,
                   "m_copy");
        return 0;
    }
    if (tp->tp_traverse && tp->tp_traverse == w->subtype_traverse) {
        instance_edges(w, op);
        return 0;
    }
    if (PyDict_CheckExact(op) || PyList_CheckExact(op)) {
        container_edges(w, op, NULL);
        return 0;
    }
    if (PyTuple_CheckExact(op)) {
        uint64_t code;
        if (w->closures.count &&
            mh_addrmap_get(&w->closures, (uintptr_t)op, &code))
            w->closure_code = (PyCodeObject *)(uintptr_t)code;
        container_edges(w, op, NULL);
        w->closure_code = NULL;
        return 0;
    }
    if (!tp->tp_traverse)
        return is_leaf(op) ? 0 : MH_OBJ_UNFOLLOWED;
    builtin_labels(w, op);
    PyObject **dp = dict_ptr(op);
    if (dp)
        label(w, *dp, MH_EDGE_SLOT, "__dict__");
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
        label(w, (PyObject *)tp, MH_EDGE_ATTR, "__class__");
    tp->tp_traverse(op, visit, w);
    return 0;
}

/* ---- sizes ---- */

/* sys.getsizeof(op) for built-in types, computed from the object; other
 * types get object.__sizeof__ (a user __sizeof__ is never called). */
static uint64_t
shallow_size(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t size;
    if (PyUnicode_Check(op))
        size = mh_hw_str_sizeof(op);
    else if (PyLong_Check(op))
        size = mh_hw_int_sizeof(op);
    else if (PyDict_Check(op))
        size = mh_hw_dict_sizeof(op);
    else if (PyList_Check(op))
        size = (size_t)tp->tp_basicsize +
               (size_t)((PyListObject *)op)->allocated * sizeof(void *);
    else if (PyAnySet_Check(op)) {
        PySetObject *so = (PySetObject *)op;
        size = (size_t)tp->tp_basicsize;
        if (so->table != so->smalltable)
            size += ((size_t)so->mask + 1) * sizeof(setentry);
    } else if (PyByteArray_Check(op))
        size = (size_t)tp->tp_basicsize +
               (size_t)((PyByteArrayObject *)op)->ob_alloc;
    else if (PyType_Check(op))
        size = mh_hw_type_sizeof((PyTypeObject *)op);
    else if (PyBytes_Check(op))
        size = offsetof(PyBytesObject, ob_sval) + 1 + (size_t)Py_SIZE(op);
    else
        size = mh_hw_object_sizeof(op);
    return size + mh_hw_getsizeof_extra(op);
}

/* ---- walking ---- */

/* Puts off writing the record of an object with more edges than a chunk
 * holds to the end of the walk, where it is walked again (its targets
 * are seen by then, and the child's heap does not change): a dump cut
 * short inside such a record loses it, not all that would follow it.
 * Returns 0 when it cannot (out of memory): the record is written now. */
static int
defer_big(struct walk *w, PyObject *op)
{
    if (w->nbig == w->capbig) {
        size_t cap = w->capbig ? w->capbig * 2 : 64;
        PyObject **b = mh_realloc(w->big, cap * sizeof(*b));
        if (!b)
            return 0;
        w->big = b;
        w->capbig = cap;
    }
    w->big[w->nbig++] = op;
    return 1;
}

static void root(struct walk *w, PyObject *target, int kind, uint64_t name);

/* An int in the range the interpreter keeps preallocated (-5..256,
 * before 3.12 held by its state, not a container). */
static int
small_int(PyObject *op)
{
    int overflow = 0;
    long v = PyLong_AsLongAndOverflow(op, &overflow);
    return !overflow && v >= -5 && v <= 256;
}

/* What the interpreter's C state holds without a container the walk
 * starts from: a static type (a C global, with its dict, MRO and
 * descriptors), a module definition (a C global), an interned string
 * (the interpreter's table of them), an immortal object (3.12+) and a
 * preallocated small int.
 * Kind 5 roots, which the analysis searches last: a path through them is
 * given only to what no other root reaches, and none of it is "held by
 * references the GC cannot see". */
static void
runtime_root(struct walk *w, PyObject *op)
{
    if (PyType_Check(op) &&
        !(((PyTypeObject *)op)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        const char *name = ((PyTypeObject *)op)->tp_name;
        root(w, op, MH_ROOT_RUNTIME, cstr_id(w, name ? name : "?"));
    } else if (Py_IS_TYPE(op, &PyModuleDef_Type)) {
        const char *name = ((PyModuleDef *)op)->m_name;
        root(w, op, MH_ROOT_RUNTIME, cstr_id(w, name ? name : "?"));
    } else if (PyUnicode_CheckExact(op) && PyUnicode_CHECK_INTERNED(op)) {
        root(w, op, MH_ROOT_RUNTIME, cstr_id(w, "<interned>"));
    } else if (mh_hw_is_immortal(op)) {
        root(w, op, MH_ROOT_RUNTIME, cstr_id(w, "<immortal>"));
    } else if (PyLong_CheckExact(op) && small_int(op)) {
        root(w, op, MH_ROOT_RUNTIME, cstr_id(w, "<small int>"));
    } else if ((PyBytes_CheckExact(op) && Py_SIZE(op) <= 1) ||
               (PyUnicode_CheckExact(op) && PyUnicode_GET_LENGTH(op) <= 1 &&
                PyUnicode_KIND(op) == PyUnicode_1BYTE_KIND)) {
        /* The empty and one-character bytes and latin-1 strs the
         * interpreter caches (before 3.11 on the heap, held by it). */
        root(w, op, MH_ROOT_RUNTIME, cstr_id(w, "<one-character cache>"));
    }
}

/* Walks op: queues what it references, and writes its record, or leaves
 * it for the end of the walk when it is big and `may_defer`. */
static void
walk_one(struct walk *w, PyObject *op, int may_defer)
{
    runtime_root(w, op);
    w->nedges = 0;
    w->capped = 0;
    w->cur = op;
    unsigned flags = object_edges(w, op);
    if (w->capped)
        flags |= MH_OBJ_UNFOLLOWED;
    if (PyObject_IS_GC(op) && PyObject_GC_IsTracked(op))
        flags |= MH_OBJ_GC_TRACKED;
    else {
        int is_new;
        uintptr_t *slot = set_insert(&w->seen, (uintptr_t)op, &is_new);
        if (slot && !(*slot & SEEN_ROOT))
            flags |= MH_OBJ_FOUND_BY_REF;
    }
    struct mh_heap_obj o = {
        .addr = (uintptr_t)op,
        .type = type_id(w, Py_TYPE(op)),
        .size = shallow_size(op),
        .refcnt = (uint64_t)Py_REFCNT(op),
        .flags = flags,
    };
    if (may_defer && MH_HEAP_OBJ_MAX(w->nedges) > CHUNK_BYTES &&
        defer_big(w, op))
        return;
    /* An object that may not fit what is left of the chunk starts one of
     * its own. */
    if (w->chunk.len &&
        w->chunk.len + MH_HEAP_OBJ_MAX(w->nedges) > CHUNK_BYTES)
        flush_chunk(w);
    int rc = mh_heap_put_object(&w->chunk, &w->enc, &o, w->edges, w->nedges);
    if (rc) {
        fail(w, rc);
        return;
    }
    w->objects++;
    w->nedges_total += w->nedges;
    if (w->chunk.len >= CHUNK_BYTES)
        flush_chunk(w);
}

static void
drain(struct walk *w)
{
    while (w->nstack && !w->err)
        walk_one(w, w->stack[--w->nstack], 1);
}

static int
walk_gc_object(void *arg, PyObject *op)
{
    struct walk *w = arg;
    discover(w, op);
    drain(w);
    return w->err;
}

/* ---- roots ---- */

static void
root(struct walk *w, PyObject *target, int kind, uint64_t name)
{
    if (!target)
        return;
    int is_new;
    uintptr_t *slot = set_insert(&w->seen, (uintptr_t)target, &is_new);
    if (!slot) {
        fail(w, MH_ENOMEM);
        return;
    }
    if (is_new) {
        if (w->nroots == w->caproots) {
            size_t cap = w->caproots ? w->caproots * 2 : 1024;
            PyObject **r = mh_realloc(w->roots, cap * sizeof(*r));
            if (!r) {
                fail(w, MH_ENOMEM);
                return;
            }
            w->roots = r;
            w->caproots = cap;
        }
        w->roots[w->nroots++] = target;
    }
    *slot |= SEEN_ROOT;
    int rc = mh_heap_put_root(&w->chunk, &w->enc, (uint64_t)kind, name,
                              (uintptr_t)target);
    if (rc)
        fail(w, rc);
}

static void
interp_root(void *arg, PyObject *target, int kind, const char *name)
{
    struct walk *w = arg;
    if (target)
        root(w, target, kind, cstr_id(w, name));
}

struct find_int {
    unsigned long long value;
    PyObject *found;
};

static void
find_int_kv(void *arg, PyObject *key, PyObject *value, int owns_key)
{
    struct find_int *f = arg;
    (void)owns_key;
    if (f->found || !PyLong_CheckExact(key))
        return;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
    if (!overflow && (unsigned long long)v == f->value)
        f->found = value;
}

/* threading._active[ident]._name, read without calling anything. */
static PyObject *
thread_name(struct walk *w, unsigned long ident)
{
    PyObject *mod = dict_get(mh_hw_interp_modules(w->interp), "threading");
    if (!mod || !PyModule_Check(mod))
        return NULL;
    PyObject *active = dict_get(PyModule_GetDict(mod), "_active");
    if (!active || !PyDict_Check(active))
        return NULL;
    struct find_int f = {ident, NULL};
    mh_hw_dict_each(active, find_int_kv, &f);
    if (!f.found)
        return NULL;
    PyObject *name = attr_get(f.found, "_name");
    return name && PyUnicode_Check(name) ? name : NULL;
}

/* Frame roots are named `thread <ident> [<name>] <file>:<line> in
 * <function>: <local>`; the prefix is built once per frame. */
struct frame_ctx {
    struct walk *w;
    PyThreadState *last_ts;
    PyObject *tname;
};

static void
frame_root(void *arg, PyThreadState *ts, const struct mh_hw_frame *f)
{
    struct frame_ctx *fc = arg;
    struct walk *w = fc->w;
    if (ts != fc->last_ts) {
        fc->last_ts = ts;
        fc->tname = thread_name(w, ts->thread_id);
    }
    struct sb pre;
    sb_init(&pre, NAME_MAX_BYTES / 2);
    sb_printf(&pre, "thread %lu ", ts->thread_id);
    if (fc->tname) {
        sb_cp(&pre, '[');
        sb_str(&pre, fc->tname);
        sb_puts(&pre, "] ");
    }
    PyCodeObject *co = f->code;
    if (co->co_filename && PyUnicode_Check(co->co_filename))
        sb_str(&pre, co->co_filename);
    sb_printf(&pre, ":%d in ", f->line);
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *fn = co->co_qualname;
#else
    PyObject *fn = co->co_name;
#endif
    if (fn && PyUnicode_Check(fn))
        sb_str(&pre, fn);
    sb_puts(&pre, ": ");
    for (int i = 0; i < f->nlocals + f->nstack && !w->err; i++) {
        PyObject *v =
            i < f->nlocals ? f->localsplus[i] : f->stack[i - f->nlocals];
        if (!v)
            continue;
        struct sb b;
        memcpy(b.buf, pre.buf, pre.len);
        b.len = pre.len;
        b.chars = 0;
        b.maxchars = NAME_MAX_BYTES;
        b.cut = 0;
        PyObject *name = i < f->nlocals ? mh_hw_local_name(co, i) : NULL;
        if (name && PyUnicode_Check(name))
            sb_str(&b, name);
        else
            sb_puts(&b, i < f->nlocals ? "?" : "<stack>");
        root(w, v, MH_ROOT_FRAME, string_id(w, b.buf, b.len));
    }
}

/* ---- before the walk: what names need ---- */

/* tp_traverse of classes made by a `class` statement (subtype_traverse,
 * static in typeobject.c): read from one such class every interpreter
 * has, importlib's ModuleSpec. */
static traverseproc
find_subtype_traverse(PyObject *modules)
{
    static const char *const where[][2] = {
        {"_frozen_importlib", "ModuleSpec"},
        {"_frozen_importlib", "BuiltinImporter"},
        {"abc", "ABC"},
    };
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        PyObject *mod = dict_get(modules, where[i][0]);
        if (!mod || !PyModule_Check(mod))
            continue;
        PyObject *cls = dict_get(PyModule_GetDict(mod), where[i][1]);
        if (cls && PyType_Check(cls) &&
            (((PyTypeObject *)cls)->tp_flags & Py_TPFLAGS_HEAPTYPE))
            return ((PyTypeObject *)cls)->tp_traverse;
    }
    return NULL;
}

/* Closure tuples, so their cells can be named by the code's free
 * variables whichever of tuple and function is walked first. */
static int
note_closure(void *arg, PyObject *op)
{
    struct walk *w = arg;
    if (!PyFunction_Check(op))
        return 0;
    PyFunctionObject *f = (PyFunctionObject *)op;
    if (f->func_closure && PyTuple_CheckExact(f->func_closure) &&
        f->func_code && PyCode_Check(f->func_code) &&
        mh_addrmap_put(&w->closures, (uintptr_t)f->func_closure,
                       (uintptr_t)f->func_code))
        return MH_ENOMEM;
    return 0;
}

/* ---- ALLOC records: the tracker's live blocks ---- */

static int
plausible_refcnt(PyObject *op)
{
    Py_ssize_t r = Py_REFCNT(op);
    return r > 0 && (uint64_t)r < ((uint64_t)1 << 40);
}

/* The walked object a live block holds (its address is the block's plus
 * its type's pre-header), or the type id of an object the walk did not
 * find but the block looks like (its ob_type is a walked type). The
 * block's own ob_type candidates are read first: the types table is
 * small and hot, the visited set is not, so a block that holds no object
 * costs no lookup there. */
static void
alloc_record(struct walk *w, uintptr_t addr, uint64_t v)
{
    uint64_t size = mh_tracker_live_size(v);
    uint64_t object = 0, type = 0;
    static const size_t offsets[] = {0, 16, 32};
    for (size_t i = 0; i < 3 && !object; i++) {
        if (size < offsets[i] + sizeof(PyObject))
            break;
        PyObject *op = (PyObject *)(addr + offsets[i]);
        PyTypeObject *tp = Py_TYPE(op);
        uint64_t id;
        if (!mh_addrmap_get(&w->types, (uintptr_t)tp, &id)) {
            /* A type with no instance walked: a type object the walk
             * found. */
            if (!tp || !set_has(&w->seen, (uintptr_t)tp) ||
                !PyType_Check((PyObject *)tp))
                continue;
            id = 0;
        }
        if (mh_hw_preheader(tp) != offsets[i])
            continue;
        if (id && set_has(&w->seen, (uintptr_t)op))
            object = (uintptr_t)op;
        else if (!type && plausible_refcnt(op))
            type = id ? id : type_id(w, tp);
    }
    if (object)
        type = 0;
    int rc = mh_heap_put_alloc(&w->chunk, addr, size, mh_tracker_live_stack(v),
                               object, type);
    if (rc)
        fail(w, rc);
    else if (w->chunk.len >= CHUNK_BYTES)
        flush_chunk(w);
}

static void
alloc_records(struct walk *w)
{
    const struct mh_addrmap *m = &mh_tracker.sampled;
    for (size_t i = 0; i < m->size && !w->err; i++)
        if (m->slots[i].key)
            alloc_record(w, (uintptr_t)m->slots[i].key, m->slots[i].value);
}

/* ---- the child ---- */

struct child_args {
    int fd;
    PyInterpreterState *interp;
    uint64_t parent_pid;
    uint64_t fork_mono_ns, fork_real_ns;
    const char *capture;
};

static void
walk_release(struct walk *w)
{
    mh_buf_release(&w->chunk);
    mh_buf_release(&w->out);
    mh_buf_release(&w->zscratch);
    mh_free(w->seen.slots);
    mh_free(w->stack);
    mh_free(w->big);
    mh_free(w->roots);
    mh_addrmap_release(&w->types);
    mh_addrmap_release(&w->strcache);
    mh_addrmap_release(&w->closures);
    mh_addrmap_release(&w->locnames);
    mh_free(w->strs.slots);
    mh_buf_release(&w->strs.arena);
    mh_free(w->edges);
    mh_free(w->labels);
}

static int
child_walk(struct walk *w, const struct child_args *a, uint64_t pause_ns)
{
    struct mh_buf fh;
    mh_buf_init(&fh, 64);
    int rc = mh_heap_put_file_header(&fh);
    if (rc == MH_OK)
        rc = write_all(w->fd, fh.data, fh.len);
    mh_buf_release(&fh);
    if (rc)
        return rc;
    const char *py = Py_GetVersion();
    struct mh_heap_info h = {
        .pid = a->parent_pid,
        .time_ns = a->fork_real_ns,
        .pause_ns = pause_ns,
        .python = {py, utf8_cut(py, strlen(py), MH_HEAP_STR_MAX)},
        .capture = {a->capture,
                    utf8_cut(a->capture, strlen(a->capture), MH_HEAP_STR_MAX)},
        .sample_interval =
            mh_tracker.mode == MH_MODE_SAMPLE ? mh_tracker.interval : 0,
    };
    rc = mh_heap_put_header(&w->chunk, &h);
    if (rc)
        return rc;
    /* The HEADER alone in the first chunk: a dump cut anywhere after it
     * still reads. */
    flush_chunk(w);
    if (w->err)
        return w->err;
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);

    PyObject *modules = mh_hw_interp_modules(w->interp);
    w->subtype_traverse = find_subtype_traverse(modules);
    rc = mh_hw_gc_each(w->interp, note_closure, w);
    if (rc)
        return rc;

    mh_hw_interp_roots(w->interp, interp_root, w);
    struct frame_ctx fc = {w, NULL, NULL};
    mh_hw_threads_each(w->interp, frame_root, &fc);
    if (w->err)
        return w->err;

    rc = mh_hw_gc_each(w->interp, walk_gc_object, w);
    if (rc)
        return rc;
    /* Roots the GC lists did not lead to (untracked objects, and what
     * only they reach). */
    for (size_t i = 0; i < w->nroots && !w->err; i++) {
        discover(w, w->roots[i]);
        drain(w);
    }
    for (size_t i = 0; i < w->nbig && !w->err; i++) {
        walk_one(w, w->big[i], 0);
        drain(w); /* nothing new, unless the first visit ran out of room */
    }
    if (w->err)
        return w->err;
    uint64_t walk_ns = clock_ns(CLOCK_MONOTONIC) - t0;

    alloc_records(w);
    if (!w->err && (rc = mh_heap_put_end(&w->chunk, w->objects,
                                         w->nedges_total, walk_ns)))
        fail(w, rc);
    flush_chunk(w);
    return w->err;
}

/* Signals are the parent's business: the child takes the defaults, so a
 * SIGTERM ends it and Python's handlers (which write to the wakeup fd it
 * shares with the parent) never run in it. */
static void
child_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN &&
            sa.sa_handler != SIG_DFL) {
            memset(&sa, 0, sizeof(sa));
            sa.sa_handler = SIG_DFL;
            sigaction(sig, &sa, NULL);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void __attribute__((noreturn)) child_main(const struct child_args *a)
{
    uint64_t pause_ns = clock_ns(CLOCK_MONOTONIC) - a->fork_mono_ns;
    prctl(PR_SET_NAME, MH_HEAP_WALKER_COMM, 0, 0, 0);
    child_signals();
    mh_tracker_set_busy(1);
    struct walk w;
    memset(&w, 0, sizeof(w));
    w.fd = a->fd;
    w.interp = a->interp;
    mh_buf_init(&w.chunk, MH_CAP_CHUNK_MAX);
    mh_buf_init(&w.out, MH_CAP_CHUNK_MAX + 64);
    mh_buf_init(&w.zscratch, MH_CAP_CHUNK_MAX + 64);
    mh_buf_init(&w.strs.arena, (size_t)1 << 31);
    mh_addrmap_init(&w.types, (size_t)1 << 24);
    mh_addrmap_init(&w.strcache, (size_t)1 << 30);
    mh_addrmap_init(&w.closures, (size_t)1 << 30);
    mh_addrmap_init(&w.locnames, (size_t)1 << 24);
    int rc = child_walk(&w, a, pause_ns);
    if (rc)
        fail(&w, rc);
    if (close(a->fd) && !w.err)
        w.err = MH_EIO;
    walk_release(&w);
    _exit(w.err ? 1 : 0);
}

/* ---- the parent ---- */

/* Walker children not reaped yet; `waited` ones are reaped by the
 * caller of mh_heap_dump(wait=1). */
static struct {
    pid_t pid;
    int waited;
} children[CHILDREN_MAX];
static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;

static void
children_add(pid_t pid, int waited)
{
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (!children[i].pid) {
            children[i].pid = pid;
            children[i].waited = waited;
            break;
        }
    /* A full table only leaves a zombie until the process ends. */
    pthread_mutex_unlock(&children_lock);
}

static void
children_remove(pid_t pid)
{
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (children[i].pid == pid)
            children[i].pid = 0;
    pthread_mutex_unlock(&children_lock);
}

int
mh_heap_reap(void)
{
    int n = 0;
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < CHILDREN_MAX; i++) {
        if (!children[i].pid || children[i].waited)
            continue;
        pid_t r = waitpid(children[i].pid, NULL, WNOHANG);
        if (r == children[i].pid || (r < 0 && errno == ECHILD)) {
            children[i].pid = 0;
            n++;
        }
    }
    pthread_mutex_unlock(&children_lock);
    return n;
}

PyObject *
mh_py_create_error(const char *path, int flags, int err)
{
    char why[PATH_MAX + 256];
    /* Under `memhound run` or `guard`, the user's switch is --force. */
    mh_file_create_error(path, flags, err,
                         getenv("MEMHOUND_OUTPUT") ? "--force" : "force=True",
                         why, sizeof(why));
    PyObject *exc = Py_BuildValue("(is)", err, why);
    if (exc) {
        PyErr_SetObject(PyExc_OSError, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static int
heap_dump(const char *path, const char *capture, int wait, int flags,
          struct mh_heap_dump_result *res)
{
    memset(res, 0, sizeof(*res));
    int fd = mh_file_create_private(path, flags);
    if (fd < 0) {
        res->create_failed = 1;
        return -1;
    }
    /* Out of the program's way while the walker forks (fd.h). */
    return mh_heap_dump_fd(mh_fd_move_high(fd), capture, wait, res);
}

int
mh_heap_dump_fd(int fd, const char *capture, int wait,
                struct mh_heap_dump_result *res)
{
    memset(res, 0, sizeof(*res));
    mh_heap_reap();
    /* Stacks named by ALLOC records must be in the capture: flush what
     * the tracker holds (the writer takes the GIL to resolve stacks).
     * Stacks interned after this reach the capture with the next
     * flush. */
    if (mh_writer_is_open()) {
        Py_BEGIN_ALLOW_THREADS mh_writer_flush();
        Py_END_ALLOW_THREADS
    }
    struct child_args a = {
        .fd = fd,
        .interp = PyInterpreterState_Get(),
        .parent_pid = (uint64_t)getpid(),
        .capture = capture ? capture : "",
    };
    a.fork_real_ns = clock_ns(CLOCK_REALTIME);
    a.fork_mono_ns = clock_ns(CLOCK_MONOTONIC);
    pid_t pid = fork();
    if (pid == 0)
        child_main(&a);
    res->pause_ns = clock_ns(CLOCK_MONOTONIC) - a.fork_mono_ns;
    int err = errno;
    close(fd);
    if (pid < 0) {
        errno = err;
        return -1;
    }
    res->child = pid;
    children_add(pid, wait);
    if (!wait)
        return 0;
    int status = 0;
    pid_t r;
    Py_BEGIN_ALLOW_THREADS do r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR)
        ;
    Py_END_ALLOW_THREADS children_remove(pid);
    if (r < 0)
        return errno == ECHILD ? 0 : -1; /* SIGCHLD ignored: reaped */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = EIO;
        return -1;
    }
    return 0;
}

int
mh_heap_dump(const char *path, const char *capture, int wait,
             struct mh_heap_dump_result *res)
{
    return heap_dump(path, capture, wait,
                     mh_writer_is_open() ? mh_writer_create_flags() : 0, res);
}

PyObject *
mh_py_dump_heap(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *path_obj;
    int wait = 1, force = 0;
    if (!PyArg_ParseTuple(args, "O&|pp", PyUnicode_FSConverter, &path_obj,
                          &wait, &force))
        return NULL;
    struct mh_heap_dump_result r;
    int flags = mh_writer_is_open() ? mh_writer_create_flags() : 0;
    flags |= force ? MH_FILE_FORCE : 0;
    int rc = heap_dump(PyBytes_AS_STRING(path_obj),
                       mh_writer_is_open() ? mh_writer_path() : "", wait,
                       flags, &r);
    if (rc && r.create_failed) {
        int err = errno;
        mh_py_create_error(PyBytes_AS_STRING(path_obj), flags, err);
        Py_DECREF(path_obj);
        return NULL;
    }
    Py_DECREF(path_obj);
    if (rc) {
        if (errno == EIO && r.child)
            return PyErr_Format(PyExc_OSError,
                                "memhound: the heap walker (pid %d) failed "
                                "writing %R",
                                (int)r.child, PyTuple_GET_ITEM(args, 0));
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError,
                                                    PyTuple_GET_ITEM(args, 0));
    }
    return Py_BuildValue("{s:i,s:K}", "pid", (int)r.child, "pause_ns",
                         (unsigned long long)r.pause_ns);
}
