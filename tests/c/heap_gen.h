/* Building heap dumps in memory for the tests and the benchmark, with the
 * agent's encoders (src/format/heap_write.h): a small builder, and a
 * synthetic heap shaped like the DEBUG=True Django leak
 *   sys.modules['app.db'].connections._connections['default']
 *       .queries_log[*]['sql']
 * holding N dicts and N strs. */
#ifndef MH_TEST_HEAP_GEN_H
#define MH_TEST_HEAP_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "../../src/format/capture_write.h"
#include "../../src/format/heap_write.h"

struct hg {
    struct mh_buf file, chunk, scratch;
    struct mh_heap_enc enc;
    int level;          /* zstd level for chunks; 0 = stored */
    size_t chunk_bytes; /* seal a chunk once its payload passes this */
    uint64_t next_id;   /* string and type ids */
    uint64_t objects, edges;
    size_t chunk_end[64]; /* file offsets where the first chunks end */
    size_t nchunks;
    int rc; /* the first error */
};

/* Starts a dump: file header, HEADER record (sample interval R). */
void hg_init(struct hg *b, int level, uint64_t interval);
void hg_release(struct hg *b);

/* Ids of a new STRING / TYPE record. */
uint64_t hg_string(struct hg *b, const char *s);
uint64_t hg_type(struct hg *b, const char *name, uint64_t flags);

/* An OBJECT with n edges: targets[i] with labels[i] = (name << 3) | kind. */
void hg_object(struct hg *b, uint64_t addr, uint64_t type, uint64_t size,
               uint64_t refcnt, uint64_t flags, const uint64_t *targets,
               const uint64_t *labels, size_t n);
void hg_root(struct hg *b, uint64_t kind, uint64_t name, uint64_t addr);
void hg_alloc(struct hg *b, uint64_t addr, uint64_t size, uint64_t stack,
              uint64_t object, uint64_t type);
/* Seals the chunk being built (a new chunk restarts the deltas). */
void hg_seal(struct hg *b);
/* END record and the last chunk; b->file then holds the dump. */
void hg_finish(struct hg *b);

static inline uint64_t
hg_label(uint64_t name, unsigned kind)
{
    return name << 3 | kind;
}

/* The synthetic heap: n dicts {'sql': <str>} in a deque at the path
 * above, object i of each kind at a fixed address (so a dump with fewer
 * items shares its objects with a bigger one), plus a few modules.
 * Strings are 60 characters (109 bytes), dicts 184 bytes. */
void hg_synthetic(struct hg *b, uint32_t n);

#endif
