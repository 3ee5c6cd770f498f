/* Parsing a capture (docs/capture-format.md) from a buffer. No I/O: the
 * caller reads or maps the file, which is what lets the parser be fuzzed.
 *
 * The reader keeps the tables (strings, code, frames, stacks) as dense
 * arrays, index 0 meaning "none", and hands every event to a visitor in
 * file order. Strings are copied into the reader, so they outlive the
 * buffer and any decompressed chunk. */
#ifndef MH_CAPTURE_READ_H
#define MH_CAPTURE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "../util/msg.h"
#include "capture.h"

/* Bytes of tables (strings, code, frames, stacks, id maps) one reader may
 * hold; a file that needs more fails with MH_ETOOBIG. The spec's limits
 * bound each record, this bounds the sum, so no file can make the reader
 * allocate without end. The decompressed chunk (at most
 * MH_CAP_CHUNK_RAW_MAX) comes on top. */
#define MH_CAP_READER_TABLES_MAX ((size_t)1 << 30)

struct mh_cap_code {
    uint32_t filename; /* string index */
    uint32_t name;     /* string index */
    uint32_t firstlineno;
};

struct mh_cap_frame {
    uint32_t code; /* code index */
    uint32_t line; /* 0 = unknown */
    uint32_t offset;
};

struct mh_cap_stack {
    uint32_t depth;
    uint32_t first; /* frames are stack_frames[first .. first + depth),
                       innermost first, as frame indices */
};

enum mh_cap_event_kind {
    MH_EV_ALLOC,
    MH_EV_FREE,
    MH_EV_TIMELINE,
    MH_EV_MARKER,
    MH_EV_END,
    MH_EV_REQUEST,
    MH_EV_FINDING,
};

struct mh_cap_event {
    enum mh_cap_event_kind kind;
    uint64_t offset; /* file offset of the record (of its chunk when the
                        chunk is compressed) */
    union {
        struct {
            uint32_t domain; /* enum mh_domain */
            uint32_t stack;  /* stack index; 0 = no Python stack */
            uint64_t size;
            uint64_t addr;
            uint64_t request; /* from the chunk's last TAG; 0 = none */
        } alloc;
        struct {
            uint64_t addr;
        } free;
        struct mh_cap_timeline timeline;
        struct {
            uint64_t t_ns;
            uint32_t kind;      /* enum mh_marker_kind; unknown kinds
                                   arrive as MH_MARK_USER */
            struct mh_str text; /* valid during the visit only */
        } marker;
        struct {
            uint64_t t_ns, samples, frees, dropped;
        } end;
        struct mh_cap_request request;  /* strings valid during the visit */
        struct mh_cap_finding finding;  /* strings valid during the visit */
    } u;
};

/* Returns 0 to go on; anything else stops the parse and is returned by
 * mh_cap_parse(). */
typedef int (*mh_cap_visit_fn)(void *ctx, const struct mh_cap_event *ev);

struct mh_cap_reader_priv;

struct mh_cap_reader {
    struct mh_cap_header header; /* valid once have_header is set; its
                                    strings are owned by the reader */
    int have_header;

    struct mh_str *strings; /* [0] is the empty string */
    uint32_t nstrings;
    struct mh_cap_code *codes; /* [0] unused */
    uint32_t ncodes;
    struct mh_cap_frame *frames; /* [0] unused */
    uint32_t nframes;
    struct mh_cap_stack *stacks; /* [0] = the empty stack */
    uint32_t nstacks;
    uint32_t *stack_frames;
    size_t nstack_frames;

    /* Decompressed bytes allowed on top of MH_CAP_INFLATE_RATIO times the
     * file's size (capture.h): mh_cap_reader_init() puts
     * MH_CAP_INFLATE_FIXED; lower it before parsing to be stricter. */
    uint64_t inflate_fixed;
    /* Bytes of tables the parse may hold: 0 (mh_cap_reader_init()) is
     * MH_CAP_READER_TABLES_MAX; set a smaller bound before parsing. */
    size_t tables_max;

    uint64_t chunks;       /* complete chunks read */
    int clean_end;         /* an END record was seen */
    int truncated;         /* the file ends inside a chunk */
    uint64_t truncated_at; /* offset of that chunk; data before it is used */

    uint64_t error_offset; /* where the parse failed */
    char error[200];       /* why, when mh_cap_parse() failed */

    struct mh_cap_reader_priv *priv;
};

void mh_cap_reader_init(struct mh_cap_reader *r);
/* Frees everything the reader holds. */
void mh_cap_reader_release(struct mh_cap_reader *r);

/* Parses a whole capture, once per reader. Returns MH_OK (with
 * r->truncated set when the tail was cut), a negative MH_E* code with
 * r->error and r->error_offset set, or the visitor's nonzero return.
 * `visit` may be NULL. */
int mh_cap_parse(struct mh_cap_reader *r, const uint8_t *buf, size_t len,
                 mh_cap_visit_fn visit, void *ctx) MH_MUST_USE;

/* The index of the stack with file id `id` (as a heap dump's ALLOC
 * record names it), after the parse; 0 when the capture defines none. */
uint32_t mh_cap_stack_index(const struct mh_cap_reader *r, uint64_t id);

/* The string at index i, NUL-terminated (the reader stores a NUL after
 * each string). */
static inline const char *
mh_cap_str(const struct mh_cap_reader *r, uint32_t i)
{
    return i < r->nstrings ? r->strings[i].s : "";
}

#endif
