/* Heap dumps for the tests (heap_gen.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap_gen.h"

void
hg_init(struct hg *b, int level, uint64_t interval)
{
    memset(b, 0, sizeof(*b));
    mh_buf_init(&b->file, (size_t)1 << 32);
    mh_buf_init(&b->chunk, MH_CAP_CHUNK_RAW_MAX);
    mh_buf_init(&b->scratch, MH_CAP_CHUNK_MAX);
    b->level = level;
    b->chunk_bytes = 1u << 20;
    b->next_id = 1;
    struct mh_heap_info h = {4242,
                             1700000000000000000ull,
                             3100000,
                             {"3.11.7 (main) [GCC]", 19},
                             {"/tmp/app.mhc", 12},
                             interval};
    b->rc = mh_heap_put_file_header(&b->file);
    if (!b->rc)
        b->rc = mh_heap_put_header(&b->chunk, &h);
}

void
hg_release(struct hg *b)
{
    mh_buf_release(&b->file);
    mh_buf_release(&b->chunk);
    mh_buf_release(&b->scratch);
}

void
hg_seal(struct hg *b)
{
    if (b->rc || !b->chunk.len)
        return;
    b->rc = mh_cap_chunk_seal(&b->file, b->chunk.data, b->chunk.len, b->level,
                              &b->scratch);
    if (b->nchunks < sizeof(b->chunk_end) / sizeof(b->chunk_end[0]))
        b->chunk_end[b->nchunks] = b->file.len;
    b->nchunks++;
    mh_buf_reset(&b->chunk);
    b->enc.last_addr = 0;
}

static void
maybe_seal(struct hg *b)
{
    if (b->chunk.len >= b->chunk_bytes)
        hg_seal(b);
}

uint64_t
hg_string(struct hg *b, const char *s)
{
    uint64_t id = b->next_id++;
    if (!b->rc)
        b->rc = mh_heap_put_string(&b->chunk, id, s, strlen(s));
    return id;
}

uint64_t
hg_type(struct hg *b, const char *name, uint64_t flags)
{
    uint64_t n = hg_string(b, name);
    uint64_t id = b->next_id++;
    if (!b->rc)
        b->rc =
            mh_heap_put_type(&b->chunk, id, 0x1000 + id * 0x400, n, 16, flags);
    return id;
}

void
hg_object(struct hg *b, uint64_t addr, uint64_t type, uint64_t size,
          uint64_t refcnt, uint64_t flags, const uint64_t *targets,
          const uint64_t *labels, size_t n)
{
    struct mh_heap_edge e[64];
    struct mh_heap_obj o = {addr, type, size, refcnt, flags};
    if (b->rc)
        return;
    if (n > 64) {
        /* Big containers: edges from the heap. */
        struct mh_heap_edge *big = malloc(n * sizeof(*big));
        if (!big) {
            b->rc = MH_ENOMEM;
            return;
        }
        for (size_t i = 0; i < n; i++)
            big[i] = (struct mh_heap_edge){targets[i], labels[i]};
        b->rc = mh_heap_put_object(&b->chunk, &b->enc, &o, big, n);
        free(big);
    } else {
        for (size_t i = 0; i < n; i++)
            e[i] = (struct mh_heap_edge){targets[i], labels[i]};
        b->rc = mh_heap_put_object(&b->chunk, &b->enc, &o, e, n);
    }
    b->objects++;
    b->edges += n;
    maybe_seal(b);
}

void
hg_root(struct hg *b, uint64_t kind, uint64_t name, uint64_t addr)
{
    if (!b->rc)
        b->rc = mh_heap_put_root(&b->chunk, &b->enc, kind, name, addr);
}

void
hg_alloc(struct hg *b, uint64_t addr, uint64_t size, uint64_t stack,
         uint64_t object, uint64_t type)
{
    if (!b->rc)
        b->rc = mh_heap_put_alloc(&b->chunk, addr, size, stack, object, type);
}

void
hg_finish(struct hg *b)
{
    if (!b->rc)
        b->rc = mh_heap_put_end(&b->chunk, b->objects, b->edges, 412000000);
    hg_seal(b);
}

/* Addresses of the synthetic heap's objects. */
#define SYN_DICT(i) (0x7f0000000000ull + (uint64_t)(i)*192)
#define SYN_STR(i) (0x7f4000000000ull + (uint64_t)(i)*112)
#define SYN_FIXED(k) (0x7f8000000000ull + (uint64_t)(k)*4096)

void
hg_synthetic(struct hg *b, uint32_t n)
{
    enum {
        MODS = 0,
        APPDB,
        APPDB_DICT,
        HANDLER,
        CONNS,
        WRAPPER,
        DEQUE,
        SQLKEY,
        OTHER
    };
    uint64_t t_dict = hg_type(b, "dict", 1), t_str = hg_type(b, "str", 0);
    uint64_t t_mod = hg_type(b, "module", 1);
    uint64_t t_handler = hg_type(b, "django.db.utils.ConnectionHandler", 1);
    uint64_t t_wrapper =
        hg_type(b, "django.db.backends.sqlite3.base.DatabaseWrapper", 1);
    uint64_t t_deque = hg_type(b, "collections.deque", 1);
    uint64_t s_mods = hg_string(b, "sys.modules");
    uint64_t s_appdb = hg_string(b, "'app.db'");
    uint64_t s_dict = hg_string(b, "__dict__");
    uint64_t s_conn = hg_string(b, "'connections'");
    uint64_t s_conns = hg_string(b, "_connections");
    uint64_t s_default = hg_string(b, "'default'");
    uint64_t s_qlog = hg_string(b, "queries_log");
    uint64_t s_sql = hg_string(b, "'sql'");
    uint64_t s_name = hg_string(b, "'__name__'");
    char name[32];
    uint64_t tg[8], lb[8];

    hg_root(b, 0, s_mods, SYN_FIXED(MODS));
    /* sys.modules: app.db and a few others */
    uint64_t mt[9], ml[9];
    mt[0] = SYN_FIXED(APPDB);
    ml[0] = hg_label(s_appdb, 2);
    for (int k = 1; k < 9; k++) {
        snprintf(name, sizeof(name), "'mod%d'", k);
        mt[k] = SYN_FIXED(OTHER + 2 * k);
        ml[k] = hg_label(hg_string(b, name), 2);
    }
    hg_object(b, SYN_FIXED(MODS), t_dict, 4696, 2, 1, mt, ml, 9);
    for (int k = 1; k < 9; k++) {
        tg[0] = SYN_FIXED(OTHER + 2 * k + 1);
        lb[0] = hg_label(s_dict, 6);
        hg_object(b, SYN_FIXED(OTHER + 2 * k), t_mod, 72, 2, 1, tg, lb, 1);
        tg[0] = SYN_FIXED(SQLKEY);
        lb[0] = hg_label(s_name, 2);
        hg_object(b, SYN_FIXED(OTHER + 2 * k + 1), t_dict, 1200, 2, 1, tg, lb,
                  1);
    }
    tg[0] = SYN_FIXED(APPDB_DICT);
    lb[0] = hg_label(s_dict, 6);
    hg_object(b, SYN_FIXED(APPDB), t_mod, 72, 2, 1, tg, lb, 1);
    tg[0] = SYN_FIXED(HANDLER);
    lb[0] = hg_label(s_conn, 2);
    hg_object(b, SYN_FIXED(APPDB_DICT), t_dict, 1200, 2, 1, tg, lb, 1);
    tg[0] = SYN_FIXED(CONNS);
    lb[0] = hg_label(s_conns, 1);
    hg_object(b, SYN_FIXED(HANDLER), t_handler, 56, 2, 1, tg, lb, 1);
    tg[0] = SYN_FIXED(WRAPPER);
    lb[0] = hg_label(s_default, 2);
    hg_object(b, SYN_FIXED(CONNS), t_dict, 232, 2, 1, tg, lb, 1);
    tg[0] = SYN_FIXED(DEQUE);
    lb[0] = hg_label(s_qlog, 1);
    hg_object(b, SYN_FIXED(WRAPPER), t_wrapper, 56, 2, 1, tg, lb, 1);
    hg_object(b, SYN_FIXED(SQLKEY), t_str, 52, 1000000, 0, NULL, NULL, 0);
    /* The deque's items, written in slices so chunks stay small. */
    uint64_t *items = calloc((size_t)n + 1, sizeof(uint64_t));
    uint64_t *ilab = calloc((size_t)n + 1, sizeof(uint64_t));
    if (!items || !ilab) {
        b->rc = MH_ENOMEM;
        free(items);
        free(ilab);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        items[i] = SYN_DICT(i);
        ilab[i] = hg_label(0, 3);
    }
    hg_object(b, SYN_FIXED(DEQUE), t_deque, 624 + (uint64_t)n / 64 * 528, 2, 1,
              items, ilab, n);
    free(items);
    free(ilab);
    for (uint32_t i = 0; i < n; i++) {
        tg[0] = SYN_FIXED(SQLKEY);
        lb[0] = hg_label(s_sql, 4);
        tg[1] = SYN_STR(i);
        lb[1] = hg_label(s_sql, 2);
        hg_object(b, SYN_DICT(i), t_dict, 184, 1, 1, tg, lb, 2);
        hg_object(b, SYN_STR(i), t_str, 109, 1, 0, NULL, NULL, 0);
    }
}
