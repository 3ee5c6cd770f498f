/* Heap dump format constants shared by the writer (agent, heap_write.c)
 * and the reader (CLI, heap_read.c). docs/heap-format.md is the
 * specification. The file header layout and the chunk framing are the
 * capture's (capture.h, chunk.h); only the magic differs. */
#ifndef MH_HEAP_H
#define MH_HEAP_H

#define MH_HEAP_MAGIC "\x89MHH\r\n\x1a\n"
#define MH_HEAP_VERSION 1

#define MH_HEAP_STR_MAX (64u << 10)
/* A dict key's repr as an edge name is cut to this many characters. */
#define MH_HEAP_KEY_REPR_MAX 200

enum mh_heap_tag {
    MH_HREC_OBJECT = 0x01,
    MH_HREC_ROOT = 0x02,
    MH_HREC_ALLOC = 0x03,
    MH_HREC_FIXED_LAST = 0x3F,
    MH_HREC_HEADER = 0x40,
    MH_HREC_STRING = 0x41,
    MH_HREC_TYPE = 0x42,
    MH_HREC_END = 0x43,
};

/* EDGE label = (name << 3) | kind */
enum mh_heap_edge_kind {
    MH_EDGE_NONE = 0,    /* ->? */
    MH_EDGE_ATTR = 1,    /* .name */
    MH_EDGE_DICTVAL = 2, /* ['key'] */
    MH_EDGE_ITEM = 3,    /* [3] */
    MH_EDGE_DICTKEY = 4, /* <key 'k'> */
    MH_EDGE_CELL = 5,    /* .<closure x> */
    MH_EDGE_SLOT = 6,    /* ->name */
    MH_EDGE_KIND_RESERVED = 7,
};
#define MH_EDGE_KIND_BITS 3
#define MH_EDGE_KIND_MASK 7u

/* OBJECT flags */
#define MH_OBJ_GC_TRACKED 0x1u
#define MH_OBJ_FOUND_BY_REF 0x2u
#define MH_OBJ_UNFOLLOWED 0x4u

/* TYPE flags */
#define MH_TYPE_GC 0x1u

enum mh_heap_root_kind {
    MH_ROOT_MODULES = 0,
    MH_ROOT_SYS = 1,
    MH_ROOT_BUILTINS = 2,
    MH_ROOT_FRAME = 3,
    MH_ROOT_INTERP = 4,
    /* Held by the interpreter's C state, not by a container: static
     * types, interned strings (the analysis adds immortal objects). */
    MH_ROOT_RUNTIME = 5,
};

/* The walker child's process name (comm), so supervisors such as
 * `memhound guard` can tell it from a server's workers. */
#define MH_HEAP_WALKER_COMM "memhound-walk"

#endif
