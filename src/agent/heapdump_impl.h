/* The heap walker's private interface: the walk's state and the
 * functions its files share (heapdump.c forks the walker and runs it;
 * heapdump_walk.c walks; heapdump_edges.c names each object's
 * references; heapdump_names.c makes text of objects without Python;
 * heapdump_out.c writes the dump's chunks and string ids). Only the
 * heapdump*.c files include it; everything here runs in the walker
 * child, never in the target. */
#ifndef MH_AGENT_HEAPDUMP_IMPL_H
#define MH_AGENT_HEAPDUMP_IMPL_H

#include "heapwalk.h" /* Python.h first, as CPython asks */

#include <stdint.h>
#include <time.h>

#include "../format/heap.h"
#include "../format/heap_write.h"
#include "../util/addrmap.h"
#include "../util/buf.h"
#include "../util/clock.h"
#include "../util/msg.h"

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

#define SEEN_ROOT 1u   /* the target of a ROOT record */
#define SEEN_QUEUED 2u /* pushed to be walked (or walked) */
#define SEEN_FLAGS 7u

/* ---- the visited set: addresses with flags in the low bits ---- */

struct addrset {
    uintptr_t *slots; /* 0 = empty; address | SEEN_* */
    size_t size;      /* power of two */
    size_t count;
};

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

/* A bounded text buffer for names and reprs (heapdump_names.c). */
struct sb {
    char buf[MH_HEAP_KEY_REPR_MAX * 4 + NAME_MAX_BYTES];
    size_t len;
    size_t chars, maxchars; /* code points written, and the cap */
    int cut;                /* something did not fit */
};

/* What the parent hands the walker child. */
struct child_args {
    int fd;
    PyInterpreterState *interp;
    uint64_t parent_pid;
    uint64_t fork_mono_ns, fork_real_ns;
    const char *capture;
};

/* Records the walk's first error; the walk stops at it. */
static inline void
fail(struct walk *w, int err)
{
    if (!w->err)
        w->err = err;
}

/* heapdump_out.c: the visited set, the dump's chunks, string ids. */

/* The slot of `a`, inserted with no flags when absent (*is_new set);
 * NULL when memory ran out. */
uintptr_t *mh_hd_set_insert(struct addrset *s, uintptr_t a, int *is_new);
int mh_hd_set_has(const struct addrset *s, uintptr_t a);
int mh_hd_write_all(int fd, const uint8_t *p, size_t n);
/* Seals the pending records as one chunk and writes it. */
void mh_hd_flush_chunk(struct walk *w);
/* The length of the first n bytes of s cut to at most max bytes, at a
 * UTF-8 character boundary. */
size_t mh_hd_utf8_cut(const char *s, size_t n, size_t max);
/* The id of a string, writing its STRING record the first time. */
uint64_t mh_hd_string_id(struct walk *w, const char *s, size_t n);
uint64_t mh_hd_cstr_id(struct walk *w, const char *s);

/* heapdump_names.c: text of objects, dict lookups by name, types. */

void mh_hd_sb_init(struct sb *b, size_t maxchars);
void mh_hd_sb_cp(struct sb *b, uint32_t c);
void mh_hd_sb_puts(struct sb *b, const char *s);
void mh_hd_sb_printf(struct sb *b, const char *fmt, ...) MH_PRINTF(2, 3);
int mh_hd_str_readable(PyObject *s);
void mh_hd_sb_str(struct sb *b, PyObject *s);
void mh_hd_repr_str(struct sb *b, PyObject *s);
/* The string id of a dict key's repr, capped at MH_HEAP_KEY_REPR_MAX
 * characters ("..." ends a cut one). */
uint64_t mh_hd_key_repr_id(struct walk *w, PyObject *k);
/* The string id of a str's text (an attribute or variable name). */
uint64_t mh_hd_str_text_id(struct walk *w, PyObject *s);
PyObject *mh_hd_dict_get(PyObject *dict, const char *name);
/* The dict of an instance without a managed dict, or NULL. */
PyObject **mh_hd_dict_ptr(PyObject *op);
/* An instance attribute, read from its __dict__ or inline values. */
PyObject *mh_hd_attr_get(PyObject *op, const char *name);
uint64_t mh_hd_type_id(struct walk *w, PyTypeObject *tp);

/* heapdump_edges.c: an object's references and their names. */

/* Queues op to be walked, once. */
void mh_hd_discover(struct walk *w, PyObject *op);
/* Lists the references of op into w->edges; returns MH_OBJ_UNFOLLOWED
 * when its layout is unknown. */
unsigned mh_hd_object_edges(struct walk *w, PyObject *op);

/* heapdump_walk.c: the walk, from the roots to the END record. */

/* Writes the whole dump to w->fd; returns 0 or the first MH_E* error. */
int mh_hd_walk(struct walk *w, const struct child_args *a, uint64_t pause_ns);

#endif
