/* libFuzzer target for the heap dump reader and the analyses behind
 * `memhound heap` (`make fuzz`; seeds tests/data/heap-v1-*.mhh).
 *
 * Each input is parsed twice, as it is and with its chunks' CRCs made
 * right (fuzz_common.c). A successful parse is checked for
 * consistency, written again with the agent's encoders and read back
 * (both reads must agree), then run through the graph search, the
 * dominator tree, the census, grouped paths and top-retainers: a dump
 * the reader accepts must never crash an analysis. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/analysis/heap/census.h"
#include "../src/analysis/heap/top.h"
#include "../src/analysis/heap/why.h"
#include "../src/format/capture_write.h"
#include "../src/format/heap_read.h"
#include "../src/format/heap_write.h"
#include "../src/util/mem.h"
#include "fuzz_common.h"

/* Small enough that a hostile dump hits the cap, not the machine. */
#define FUZZ_MAX_BYTES ((size_t)256 << 20)

static void
check_dump(const struct mh_heap_image *d)
{
    REQUIRE(d->have_header);
    REQUIRE(d->nstrings >= 1 && d->ntypes >= 1);
    for (uint32_t i = 0; i < d->nstrings; i++) {
        REQUIRE(d->strings[i].s && d->strings[i].n <= MH_HEAP_STR_MAX);
        REQUIRE(d->strings[i].s[d->strings[i].n] == '\0');
    }
    for (uint32_t i = 1; i < d->ntypes; i++)
        REQUIRE(d->types[i].name >= 1 && d->types[i].name < d->nstrings);
    REQUIRE(d->edge_start[0] == 0);
    uint32_t dangling = 0;
    for (uint32_t o = 0; o < d->nobjs; o++) {
        REQUIRE(d->type[o] >= 1 && d->type[o] < d->ntypes);
        REQUIRE(d->addr[o] != 0);
        REQUIRE(d->edge_start[o] <= d->edge_start[o + 1]);
        REQUIRE(mh_heap_find(d, d->addr[o]) == o);
    }
    REQUIRE(d->edge_start[d->nobjs] == d->nedges);
    for (uint32_t e = 0; e < d->nedges; e++) {
        REQUIRE(d->edge_to[e] == MH_HEAP_NONE || d->edge_to[e] < d->nobjs);
        dangling += d->edge_to[e] == MH_HEAP_NONE;
        unsigned kind = mh_heap_label_kind(d->edge_label[e]);
        uint32_t name = mh_heap_label_name(d->edge_label[e]);
        REQUIRE(kind < MH_EDGE_KIND_RESERVED && name < d->nstrings);
        REQUIRE(!name || (kind != MH_EDGE_NONE && kind != MH_EDGE_ITEM));
    }
    REQUIRE(dangling == d->dangling);
    for (uint32_t r = 0; r < d->nroots; r++) {
        REQUIRE(d->roots[r].name < d->nstrings);
        REQUIRE(d->roots[r].obj == mh_heap_find(d, d->roots[r].addr));
    }
    for (uint32_t i = 0; i < d->nallocs; i++) {
        REQUIRE(d->allocs[i].type < d->ntypes);
        REQUIRE(d->allocs[i].obj == mh_heap_find(d, d->allocs[i].object));
    }
    REQUIRE(d->mem <= FUZZ_MAX_BYTES);
}

/* Writes `d` again: ids = indices, one chunk (compressed when `level`).
 * A dangling edge is written to an address no object has (the reader
 * does not keep the original). */
static int
rewrite(const struct mh_heap_image *d, int level, struct mh_buf *out)
{
    struct mh_buf p, scratch;
    struct mh_heap_enc enc = {0};
    mh_buf_init(&p, MH_CAP_CHUNK_RAW_MAX);
    mh_buf_init(&scratch, MH_CAP_CHUNK_MAX);
    struct mh_heap_info h = {d->header.pid,      d->header.time_ns,
                             d->header.pause_ns, d->header.python,
                             d->header.capture,  d->header.sample_interval};
    uint64_t tbase = 0, nowhere = 1;
    while (mh_heap_find(d, nowhere) != MH_HEAP_NONE)
        nowhere++;
    int rc = mh_heap_put_file_header(out);
    if (rc == MH_OK)
        rc = mh_heap_put_header(&p, &h);
    for (uint32_t i = 1; rc == MH_OK && i < d->nstrings; i++)
        rc = mh_heap_put_string(&p, i, d->strings[i].s, d->strings[i].n);
    for (uint32_t i = 1; rc == MH_OK && i < d->ntypes; i++)
        rc =
            mh_heap_put_type(&p, tbase + i, d->types[i].addr, d->types[i].name,
                             d->types[i].preheader, d->types[i].flags);
    struct mh_heap_edge *edges = NULL;
    size_t cap = 0;
    for (uint32_t o = 0; rc == MH_OK && o < d->nobjs; o++) {
        uint32_t n = d->edge_start[o + 1] - d->edge_start[o];
        if (n > cap) {
            cap = n;
            free(edges);
            edges = malloc(cap * sizeof(*edges));
            REQUIRE(edges);
        }
        for (uint32_t k = 0; k < n; k++) {
            uint32_t e = d->edge_start[o] + k, to = d->edge_to[e];
            edges[k].target = to == MH_HEAP_NONE ? nowhere : d->addr[to];
            edges[k].label = d->edge_label[e];
        }
        struct mh_heap_obj ob = {d->addr[o], tbase + d->type[o], d->size[o],
                                 d->refcnt[o], d->flags[o]};
        rc = mh_heap_put_object(&p, &enc, &ob, edges, n);
    }
    free(edges);
    for (uint32_t r = 0; rc == MH_OK && r < d->nroots; r++)
        rc = mh_heap_put_root(&p, &enc, d->roots[r].kind, d->roots[r].name,
                              d->roots[r].addr);
    for (uint32_t i = 0; rc == MH_OK && i < d->nallocs; i++) {
        const struct mh_heap_alloc *a = &d->allocs[i];
        rc = mh_heap_put_alloc(&p, a->addr, a->size, a->stack, a->object,
                               a->type ? tbase + a->type : 0);
    }
    if (rc == MH_OK && d->have_end)
        rc = mh_heap_put_end(&p, d->end_objects, d->end_edges, d->walk_ns);
    if (rc == MH_OK)
        rc = mh_cap_chunk_seal(out, p.data, p.len, level, &scratch);
    mh_buf_release(&p);
    mh_buf_release(&scratch);
    return rc;
}

static void
check_same(const struct mh_heap_image *a, const struct mh_heap_image *b)
{
    REQUIRE(a->nobjs == b->nobjs && a->nedges == b->nedges);
    REQUIRE(a->nroots == b->nroots && a->nallocs == b->nallocs);
    REQUIRE(a->header.pid == b->header.pid);
    REQUIRE(a->header.sample_interval == b->header.sample_interval);
    REQUIRE(fuzz_same_str(a->header.python, b->header.python));
    REQUIRE(fuzz_same_str(a->header.capture, b->header.capture));
    REQUIRE(a->have_end == b->have_end && a->dangling == b->dangling);
    for (uint32_t o = 0; o < a->nobjs; o++) {
        REQUIRE(a->addr[o] == b->addr[o] && a->size[o] == b->size[o]);
        REQUIRE(a->refcnt[o] == b->refcnt[o] && a->flags[o] == b->flags[o]);
        REQUIRE(!strcmp(mh_heap_type_name(a, o), mh_heap_type_name(b, o)));
        REQUIRE(a->edge_start[o] == b->edge_start[o]);
    }
    for (uint32_t e = 0; e < a->nedges; e++) {
        REQUIRE(a->edge_to[e] == b->edge_to[e]);
        REQUIRE(mh_heap_label_kind(a->edge_label[e]) ==
                mh_heap_label_kind(b->edge_label[e]));
        REQUIRE(!strcmp(mh_heap_str(a, mh_heap_label_name(a->edge_label[e])),
                        mh_heap_str(b, mh_heap_label_name(b->edge_label[e]))));
    }
    for (uint32_t r = 0; r < a->nroots; r++) {
        REQUIRE(a->roots[r].kind == b->roots[r].kind);
        REQUIRE(a->roots[r].obj == b->roots[r].obj);
        REQUIRE(!strcmp(mh_heap_str(a, a->roots[r].name),
                        mh_heap_str(b, b->roots[r].name)));
    }
    for (uint32_t i = 0; i < a->nallocs; i++) {
        REQUIRE(a->allocs[i].size == b->allocs[i].size);
        REQUIRE(a->allocs[i].obj == b->allocs[i].obj);
    }
}

/* Runs every analysis on a parsed dump. */
static void
analyse(const uint8_t *data, size_t size)
{
    struct mh_heap_types types;
    struct mh_heap_session a;
    mh_heap_types_init(&types);
    mh_heap_session_init(&a);
    if (mh_heap_session_load(&a, &types, data, size, FUZZ_MAX_BYTES) != MH_OK)
        goto out;
    const struct mh_heap_graph *g = &a.graph;
    /* Sizes a fuzzer makes up can overflow the sums: compare sums only
     * when they cannot. */
    int small = 1;
    for (uint32_t o = 0; o < a.dump.nobjs; o++)
        small &= a.dump.size[o] < ((uint64_t)1 << 32);
    uint64_t total = 0;
    for (int k = 0; k < 4; k++)
        total += g->count[k];
    REQUIRE(total == a.dump.nobjs);
    struct mh_heap_census c;
    mh_heap_census_init(&c);
    if (mh_heap_census_build(&c, &a, types.n) == MH_OK) {
        uint64_t n = 0;
        for (uint32_t i = 0; i < c.n; i++) {
            n += c.rows[i].count;
            REQUIRE(!small || c.rows[i].retained >= c.rows[i].bytes);
        }
        REQUIRE(n == a.dump.nobjs);
        for (uint32_t o = 0; o < a.dump.nobjs; o++) {
            uint32_t p = a.dom.idom[o];
            REQUIRE(p == MH_HEAP_NONE || p < a.dump.nobjs);
            REQUIRE(!small || a.dom.retained[o] >= a.dump.size[o]);
        }
    }
    mh_heap_census_release(&c);
    if (types.n) {
        struct mh_heap_why w;
        mh_heap_why_init(&w);
        uint32_t grp = (uint32_t)(size % types.n);
        if (mh_heap_why_select_type(&w, &a, grp, types.n) == MH_OK &&
            mh_heap_why_build(&w, &a, &types) == MH_OK) {
            uint64_t n = 0;
            for (uint32_t i = 0; i < w.paths.n; i++)
                n += w.paths.rows[i].count;
            REQUIRE(n == w.count);
        }
        mh_heap_why_release(&w);
    }
    struct mh_heap_top t;
    mh_heap_top_init(&t);
    if (mh_heap_top_build(&t, &a, 5, (int)(size & 1), types.n) == MH_OK)
        for (uint32_t i = 1; i < t.n; i++)
            REQUIRE(t.rows[i - 1].retained >= t.rows[i].retained);
    (void)small;
    mh_heap_top_release(&t);
out:
    mh_heap_session_release(&a);
    mh_heap_types_release(&types);
}

void
fuzz_parse_one(const uint8_t *data, size_t size)
{
    struct mh_heap_image d;
    mh_heap_image_init(&d, FUZZ_MAX_BYTES);
    d.inflate_fixed = FUZZ_INFLATE_FIXED;
    int rc = mh_heap_parse(&d, data, size);
    REQUIRE(rc <= 0);
    REQUIRE(memchr(d.error, '\0', sizeof(d.error)) != NULL);
    if (rc < 0) {
        REQUIRE(d.error[0] != '\0');
        REQUIRE(d.error_offset <= size);
        /* a bomb is refused from the chunk headers, before any record */
        REQUIRE(rc != MH_ETOOBIG || d.chunks == 0 ||
                strstr(d.error, "decompression bomb") == NULL);
        mh_heap_image_release(&d);
        return;
    }
    REQUIRE(!d.truncated || d.truncated_at < size);
    check_dump(&d);
    if (d.nobjs < 200000) {
        struct mh_buf out;
        mh_buf_init(&out, (size_t)1 << 28);
        if (rewrite(&d, (int)(size & 2), &out) == MH_OK) {
            struct mh_heap_image d2;
            mh_heap_image_init(&d2, 0);
            REQUIRE(mh_heap_parse(&d2, out.data, out.len) == MH_OK);
            REQUIRE(!d2.truncated);
            check_same(&d, &d2);
            mh_heap_image_release(&d2);
        }
        mh_buf_release(&out);
        analyse(data, size);
    }
    mh_heap_image_release(&d);
}
