/* Parsing a heap dump (docs/heap-format.md) from a buffer into arrays the
 * analyses can use directly. No I/O: the caller maps or reads the file,
 * which is what lets the parser be fuzzed.
 *
 * Objects become dense indices 0..nobjs-1 in file order, held as a
 * structure of arrays (8-29 bytes per object, 8 per edge) with their
 * edges in CSR form; edge targets, root and ALLOC addresses are resolved
 * to object indices once the whole dump is read (MH_HEAP_NONE when the
 * address is not an object of the dump). Strings and type names are
 * copied, so the dump outlives the buffer. */
#ifndef MH_HEAP_READ_H
#define MH_HEAP_READ_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"
#include "capture.h"
#include "heap.h"

/* Default bound on everything one dump may make the reader hold (arrays,
 * strings, the address index; not the one decompressed chunk): a dump
 * that needs more fails with MH_ETOOBIG instead of exhausting memory.
 * About 60 million objects with two edges each. */
#define MH_HEAP_READER_MAX ((size_t)4 << 30)

/* No object: an unresolved address, an unreached node. */
#define MH_HEAP_NONE UINT32_MAX
/* Objects and edges are counted in 32 bits, with a few values kept for
 * marks like MH_HEAP_NONE. */
#define MH_HEAP_COUNT_MAX (UINT32_MAX - 16)

/* A reference count at or above this is CPython's immortal mark (3.12+),
 * not a count of references. */
#define MH_HEAP_IMMORTAL_REFCNT ((uint64_t)1 << 30)

struct mh_heap_header {
    uint64_t pid;
    uint64_t time_ns;  /* Unix epoch, when the fork happened */
    uint64_t pause_ns; /* how long the target paused for the fork */
    struct mh_str python;
    struct mh_str capture;    /* the target's capture path, or "" */
    uint64_t sample_interval; /* R; 0 = trace-all */
};

struct mh_heap_type {
    uint64_t addr;      /* of the type object */
    uint32_t name;      /* string index */
    uint32_t flags;     /* MH_TYPE_* */
    uint64_t preheader; /* bytes of the block before the object */
};

struct mh_heap_root {
    uint32_t kind; /* enum mh_heap_root_kind; unknown kinds kept as is */
    uint32_t name; /* string index, 0 = none */
    uint64_t addr;
    uint32_t obj; /* object index, or MH_HEAP_NONE */
};

struct mh_heap_alloc {
    uint64_t addr, size;
    uint64_t stack;  /* the capture's stack id; 0 = none */
    uint64_t object; /* address of the walked object it holds; 0 = none */
    uint32_t obj;    /* that object's index, or MH_HEAP_NONE */
    uint32_t type;   /* type index read from the block; 0 = none */
};

struct mh_heap_priv;

/* A parsed heap dump (the reading side; agent/heapdump.h's mh_heap_dump()
 * is the agent taking one). */
struct mh_heap_image {
    struct mh_heap_header header; /* valid once have_header is set */
    int have_header;

    struct mh_str *strings; /* [0] is the empty string; NUL-terminated */
    uint32_t nstrings;
    struct mh_heap_type *types; /* [0] is "no type" (name "?") */
    uint32_t ntypes;

    /* Objects, by index. */
    uint32_t nobjs;
    uint64_t *addr;
    uint32_t *type;       /* type index (>= 1) */
    uint64_t *size;       /* shallow bytes */
    uint32_t *refcnt;     /* saturated at UINT32_MAX */
    uint8_t *flags;       /* MH_OBJ_* */
    uint32_t *edge_start; /* edges of object i: [edge_start[i],
                             edge_start[i + 1]); nobjs + 1 entries */

    /* Edges. */
    uint32_t nedges;
    uint32_t *edge_to;    /* object index, or MH_HEAP_NONE */
    uint32_t *edge_label; /* (string index << 3) | kind */
    uint32_t dangling;    /* edges whose target is not in the dump */

    struct mh_heap_root *roots;
    uint32_t nroots;
    struct mh_heap_alloc *allocs;
    uint32_t nallocs;

    int have_end; /* an END record was read */
    uint64_t end_objects, end_edges, walk_ns;

    /* Decompressed bytes allowed on top of MH_CAP_INFLATE_RATIO times the
     * file's size (capture.h): mh_heap_image_init() puts
     * MH_CAP_INFLATE_FIXED; lower it before parsing to be stricter. */
    uint64_t inflate_fixed;

    uint64_t chunks;       /* complete chunks read */
    int truncated;         /* the dump ends inside a chunk */
    uint64_t truncated_at; /* that chunk's offset: what follows is lost */
    uint64_t file_bytes;   /* the length of the buffer parsed */
    uint64_t error_offset;
    char error[200]; /* why mh_heap_parse() failed */

    size_t max_bytes;
    size_t mem; /* bytes held, against max_bytes */
    struct mh_heap_priv *priv;
};

/* Sets up an empty dump; `max_bytes` bounds what parsing may hold (0 =
 * MH_HEAP_READER_MAX). */
void mh_heap_image_init(struct mh_heap_image *d, size_t max_bytes);
/* Frees everything the dump holds. */
void mh_heap_image_release(struct mh_heap_image *d);

/* Parses a whole dump, once per mh_heap_image. Returns MH_OK (with
 * d->truncated set when the tail was cut; what came before is used), or
 * a negative MH_E* code with d->error and d->error_offset set. */
int mh_heap_parse(struct mh_heap_image *d, const uint8_t *buf,
                  size_t len) MH_MUST_USE;

/* The index of the object at `addr`, or MH_HEAP_NONE. */
uint32_t mh_heap_find(const struct mh_heap_image *d, uint64_t addr);

static inline const char *
mh_heap_str(const struct mh_heap_image *d, uint32_t i)
{
    return i < d->nstrings ? d->strings[i].s : "";
}

/* The type name of object i, e.g. "str", "app.models.User". */
static inline const char *
mh_heap_type_name(const struct mh_heap_image *d, uint32_t i)
{
    return mh_heap_str(d, d->types[d->type[i]].name);
}

static inline unsigned
mh_heap_label_kind(uint32_t label)
{
    return label & MH_EDGE_KIND_MASK;
}

static inline uint32_t
mh_heap_label_name(uint32_t label)
{
    return label >> MH_EDGE_KIND_BITS;
}

#endif
