/* Live but unreachable: the tracker's live blocks (ALLOC records) joined
 * with the walk.
 *
 * A block the tracker holds as live is memory someone allocated and
 * nobody freed. When it holds an object no root reaches, or looks like an
 * object (its type was read from it) that the walk never found at all,
 * that memory is leaked below Python: typically a C extension that took
 * a reference and never dropped it. Blocks are grouped by allocation
 * stack (the capture's stack id), type and reason; in sampling mode each
 * block stands for size / (1 - exp(-size / R)) bytes and
 * 1 / (1 - exp(-size / R)) blocks, as in the capture report. Blocks that
 * hold no object and do not look like one (buffers) are not judged. */
#ifndef MH_HEAP_UNREACHABLE_H
#define MH_HEAP_UNREACHABLE_H

#include <stdint.h>

#include "../../format/capture_read.h"
#include "../../util/buf.h"
#include "graph.h"

enum mh_unreachable_reason {
    MH_UNREACHABLE_NOT_WALKED =
        0,                  /* looks like an object; the walk never saw it */
    MH_UNREACHABLE_EXT = 1, /* its object is held by references the GC
                      cannot see (or by such an object) */
    MH_UNREACHABLE_GARBAGE = 2, /* its object is reached by nothing found */
};

struct mh_unreachable_row {
    uint64_t stack; /* the capture's stack id; 0 = no Python stack */
    uint32_t group; /* type group; UINT32_MAX = not known */
    enum mh_unreachable_reason reason;
    uint64_t blocks;             /* ALLOC records */
    double est_count, est_bytes; /* what they stand for */
};

struct mh_unreachable {
    struct mh_unreachable_row *rows; /* by est_bytes, largest first */
    uint32_t n;
    uint64_t blocks;  /* ALLOC records in the dump */
    double est_bytes; /* what they all stand for */
    /* The capture given to mh_unreachable_build(), borrowed: the rows'
     * frames are read from it (mh_unreachable_frame()) while it lives;
     * NULL = none. */
    const struct mh_cap_reader *cap;
};

/* One frame of a row's allocation stack as the capture names it; the
 * strings are the capture reader's (valid while it lives). */
struct mh_unreachable_frame {
    const char *file;
    const char *function;
    uint32_t line;
};

void mh_unreachable_init(struct mh_unreachable *l);
void mh_unreachable_release(struct mh_unreachable *l);

/* Joins g's dump's ALLOC records with the search. `group` maps type
 * indices to groups. When `only` is not NULL, a block is kept only if its
 * group g has only[g] != 0. With the target's capture `cap` (may be
 * NULL), stacks with the same frames (file, line, function; stacks also
 * differ by bytecode offset) make one row, under the lowest stack id.
 * MH_ENOMEM. */
int mh_unreachable_build(struct mh_unreachable *l,
                         const struct mh_heap_graph *g, const uint32_t *group,
                         const uint8_t *only,
                         const struct mh_cap_reader *cap) MH_MUST_USE;

/* Bytes and blocks one ALLOC of `size` stands for at sample interval R
 * (0 = trace-all: itself). */
double mh_unreachable_weight(uint64_t size, uint64_t interval);

/* Row r's allocation stack as l's capture knows it: 1 and *depth (its
 * frames, innermost first) when the capture has the stack, 0 when there
 * is no capture, no Python stack (r->stack 0) or an unknown id. */
int mh_unreachable_stack(const struct mh_unreachable *l,
                         const struct mh_unreachable_row *r, uint32_t *depth);
/* Frame k (< the depth mh_unreachable_stack() gave) of row r's stack. */
void mh_unreachable_frame(const struct mh_unreachable *l,
                          const struct mh_unreachable_row *r, uint32_t k,
                          struct mh_unreachable_frame *out);
/* Appends where row r's blocks were allocated: up to `frames` frames,
 * innermost first, as "function (file:line) < caller (file:line)".
 * "(no Python stack)" for stack 0; without a capture or for an unknown
 * id: "stack <id>". */
int mh_unreachable_where(const struct mh_unreachable *l,
                         const struct mh_unreachable_row *r, unsigned frames,
                         struct mh_buf *out) MH_MUST_USE;

#endif
