/* The heap analyses on constructed dumps: reachability and the "GC
 * cannot see" rule, exact and grouped paths, dominators against a naive
 * algorithm, census, diff identity, why --since, the ALLOC join and the
 * heap command's exit codes and JSON. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../src/analysis/heap/census.h"
#include "../../src/analysis/heap/diff.h"
#include "../../src/analysis/heap/top.h"
#include "../../src/analysis/heap/types.h"
#include "../../src/analysis/heap/why.h"
#include "../../src/cli/cli.h"
#include "cmd_run.h"
#include "harness.h"
#include "heap_gen.h"

/* --- a tiny dump builder: objects by number, names by text ---------- */

#define A(i) (0x100000ull + (uint64_t)(i)*0x100)

struct tb {
    struct hg b;
    const char *names[1024];
    uint64_t ids[1024];
    int nnames;
    uint64_t tg[4096], lb[4096];
    size_t ne;
    struct mh_heap_types ty; /* shared by every dump this builder loads */
    struct mh_heap_session a;     /* what tb_load() loads */
};

static void
tb_init(struct tb *t, uint64_t interval)
{
    memset(t, 0, sizeof(*t));
    mh_heap_types_init(&t->ty);
    mh_heap_session_init(&t->a);
    hg_init(&t->b, 0, interval);
}

/* Starts another dump whose types share the table of the ones before. */
static void
tb_next(struct tb *t, uint64_t interval)
{
    t->nnames = 0;
    t->ne = 0;
    hg_init(&t->b, 0, interval);
}

static void
tb_release(struct tb *t)
{
    mh_heap_session_release(&t->a);
    mh_heap_types_release(&t->ty);
}

/* The id of a string, or of a type ("T:" prefix), defined once. */
static uint64_t
tb_id(struct tb *t, const char *s)
{
    for (int i = 0; i < t->nnames; i++)
        if (!strcmp(t->names[i], s))
            return t->ids[i];
    CHECK(t->nnames < 1024);
    t->names[t->nnames] = s;
    t->ids[t->nnames] =
        strncmp(s, "T:", 2) ? hg_string(&t->b, s) : hg_type(&t->b, s + 2, 1);
    return t->ids[t->nnames++];
}

static void
edge(struct tb *t, int to, unsigned kind, const char *name)
{
    CHECK(t->ne < 4096);
    t->tg[t->ne] = A(to);
    t->lb[t->ne++] = hg_label(name ? tb_id(t, name) : 0, kind);
}

static void
obj(struct tb *t, int i, const char *type, uint64_t size, uint64_t refcnt)
{
    char tn[128];
    snprintf(tn, sizeof(tn), "T:%s", type);
    /* tb_id keeps the pointer: intern the literal's copy once */
    static char keep[64][128];
    static int nkeep;
    const char *key = NULL;
    for (int k = 0; k < nkeep; k++)
        if (!strcmp(keep[k], tn))
            key = keep[k];
    if (!key) {
        CHECK(nkeep < 64);
        snprintf(keep[nkeep], sizeof(keep[nkeep]), "%s", tn);
        key = keep[nkeep++];
    }
    uint64_t ty = tb_id(t, key);
    hg_object(&t->b, A(i), ty, size, refcnt, 1, t->tg, t->lb, t->ne);
    t->ne = 0;
}

static void
root(struct tb *t, unsigned kind, const char *name, int i)
{
    hg_root(&t->b, kind, name ? tb_id(t, name) : 0, A(i));
}

/* Finishes the dump and loads it into `a` (types in t->ty); the caller
 * releases `a` with mh_heap_session_release(). */
static void
tb_load_into(struct tb *t, struct mh_heap_session *a)
{
    hg_finish(&t->b);
    CHECK_EQ_INT(t->b.rc, MH_OK);
    mh_heap_session_init(a);
    int rc = mh_heap_session_load(a, &t->ty, t->b.file.data, t->b.file.len, 0);
    if (rc)
        fprintf(stderr, "%s\n", a->error);
    CHECK_EQ_INT(rc, MH_OK);
    hg_release(&t->b);
}

/* Finishes the dump and loads it into t->a; tb_release() frees it. */
static void
tb_load(struct tb *t)
{
    tb_load_into(t, &t->a);
}

static uint32_t
idx(const struct mh_heap_session *a, int i)
{
    uint32_t o = mh_heap_find(&a->dump, A(i));
    CHECK(o != MH_HEAP_NONE);
    return o;
}

static void
check_path(const struct mh_heap_session *a, int i, const char *want)
{
    struct mh_buf b;
    mh_buf_init(&b, 1 << 20);
    CHECK_EQ_INT(mh_heap_graph_path(&a->graph, idx(a, i), 1000, &b), MH_OK);
    CHECK_EQ_INT(mh_buf_put_u8(&b, 0), MH_OK);
    CHECK_EQ_STR((const char *)b.data, want);
    mh_buf_release(&b);
}

/* --- reachability --------------------------------------------------- */

MH_TEST(heap_graph_reach_and_gc_cannot_see)
{
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 2, "'app'");
    obj(&t, 1, "dict", 100, 1);
    obj(&t, 2, "module", 50, 1);
    /* 3: a dict with a reference nobody can see (refcnt 2, found 1),
     * holding 4; 5 <-> 6 a garbage cycle that also points at 3; 7 an
     * immortal nobody refers to; 8 refers to nothing, refcnt 0 */
    edge(&t, 4, 2, "'k'");
    obj(&t, 3, "dict", 232, 2);
    obj(&t, 4, "str", 60, 1);
    edge(&t, 6, 0, NULL);
    edge(&t, 3, 0, NULL);
    obj(&t, 5, "list", 64, 1);
    edge(&t, 5, 0, NULL);
    obj(&t, 6, "list", 64, 1);
    obj(&t, 7, "str", 50, (uint64_t)3 << 30);
    obj(&t, 8, "int", 28, 0);
    tb_load(&t);
    const struct mh_heap_graph *g = &t.a.graph;
    CHECK_EQ_INT(g->reach[idx(&t.a, 1)], MH_REACH_ROOT);
    CHECK_EQ_INT(g->reach[idx(&t.a, 2)], MH_REACH_ROOT);
    CHECK_EQ_INT(g->reach[idx(&t.a, 3)], MH_REACH_EXT);
    CHECK_EQ_INT(g->reach[idx(&t.a, 4)], MH_REACH_HELD);
    CHECK_EQ_INT(g->reach[idx(&t.a, 5)], MH_REACH_GARBAGE);
    CHECK_EQ_INT(g->reach[idx(&t.a, 6)], MH_REACH_GARBAGE);
    CHECK_EQ_INT(g->reach[idx(&t.a, 7)], MH_REACH_GARBAGE);
    CHECK_EQ_INT(g->reach[idx(&t.a, 8)], MH_REACH_GARBAGE);
    CHECK_EQ_INT(g->count[MH_REACH_EXT], 1);
    CHECK_EQ_INT(g->bytes[MH_REACH_EXT], 232);
    CHECK_EQ_INT(g->count[MH_REACH_GARBAGE], 4);
    check_path(&t.a, 4,
               "<dict at 0x100300 held by references the GC cannot see>"
               "['k']");
    check_path(&t.a, 5, "<unreachable list at 0x100500>");

    /* census: the EXT dict keeps itself and the str alive */
    struct mh_heap_census c;
    mh_heap_census_init(&c);
    CHECK_EQ_INT(mh_heap_census_build(&c, &t.a, t.ty.n), MH_OK);
    CHECK_EQ_INT(c.next, 1);
    CHECK_EQ_STR(t.ty.names[c.ext[0].group], "dict");
    CHECK_EQ_INT(c.ext[0].retained, 292);
    CHECK_EQ_INT(c.count, 8);
    mh_heap_census_release(&c);
    tb_release(&t);
}

/* --- exact paths ---------------------------------------------------- */

MH_TEST(heap_graph_exact_paths)
{
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    root(&t, 3, "thread 7 [MainThread] app.py:9 in run: conn", 20);
    edge(&t, 2, 2, "'app.db'");
    obj(&t, 1, "dict", 100, 1);
    edge(&t, 3, 6, "__dict__");
    obj(&t, 2, "module", 50, 1);
    edge(&t, 4, 2, "'cache'");
    edge(&t, 9, 2, "'not an identifier'");
    edge(&t, 10, 2, "'f'");
    obj(&t, 3, "dict", 100, 1);
    edge(&t, 11, 3, NULL);
    edge(&t, 12, 3, NULL);
    edge(&t, 5, 3, NULL); /* index 2 */
    obj(&t, 4, "list", 80, 1);
    edge(&t, 6, 4, "'k'");
    edge(&t, 7, 2, "'k'");
    obj(&t, 5, "dict", 100, 1);
    obj(&t, 6, "str", 50, 1);
    obj(&t, 7, "str", 50, 1);
    obj(&t, 9, "str", 50, 1);
    edge(&t, 13, 5, "x");
    obj(&t, 10, "function", 50, 1);
    obj(&t, 11, "int", 28, 1);
    obj(&t, 12, "int", 28, 1);
    obj(&t, 13, "cell", 28, 1);
    /* a linked list under a frame local, 3.9 style (->__dict__, key)
     * and 3.11 style (attribute) */
    edge(&t, 21, 1, "next");
    obj(&t, 20, "Node", 48, 1);
    edge(&t, 22, 1, "next");
    obj(&t, 21, "Node", 48, 1);
    edge(&t, 23, 1, "next");
    obj(&t, 22, "Node", 48, 1);
    edge(&t, 24, 1, "next");
    obj(&t, 23, "Node", 48, 1);
    edge(&t, 25, 6, "slot");
    obj(&t, 24, "Node", 48, 1);
    obj(&t, 25, "Node", 48, 1);
    tb_load(&t);
    check_path(&t.a, 1, "sys.modules");
    check_path(&t.a, 2, "sys.modules['app.db']");
    check_path(&t.a, 3, "sys.modules['app.db'].__dict__");
    check_path(&t.a, 4, "sys.modules['app.db'].cache");
    check_path(&t.a, 5, "sys.modules['app.db'].cache[2]");
    check_path(&t.a, 6, "sys.modules['app.db'].cache[2]<key 'k'>");
    check_path(&t.a, 7, "sys.modules['app.db'].cache[2]['k']");
    check_path(&t.a, 9, "sys.modules['app.db'].__dict__['not an identifier']");
    check_path(&t.a, 13, "sys.modules['app.db'].f.<closure x>");
    check_path(&t.a, 21, "thread 7 [MainThread] app.py:9 in run: conn.next");
    check_path(&t.a, 23,
               "thread 7 [MainThread] app.py:9 in run: conn"
               "(.next){3}");
    check_path(&t.a, 25,
               "thread 7 [MainThread] app.py:9 in run: conn"
               "(.next){4}->slot");
    tb_release(&t);
}

/* --- grouped paths -------------------------------------------------- */

static const struct mh_heap_path_row *
row_of(const struct mh_heap_why *w, const char *path)
{
    for (uint32_t i = 0; i < w->paths.n; i++)
        if (!strcmp(w->paths.rows[i].path, path))
            return &w->paths.rows[i];
    fprintf(stderr, "no row '%s'; rows:\n", path);
    for (uint32_t i = 0; i < w->paths.n; i++)
        fprintf(stderr, "  %8llu %s\n",
                (unsigned long long)w->paths.rows[i].count,
                w->paths.rows[i].path);
    return NULL;
}

static void
why_type(struct mh_heap_why *w, const struct mh_heap_session *a,
         const struct mh_heap_types *ty, const char *type)
{
    mh_heap_why_init(w);
    CHECK_EQ_INT(
        mh_heap_why_select_type(w, a, mh_heap_types_find(ty, type), ty->n),
        MH_OK);
    CHECK_EQ_INT(mh_heap_why_build(w, a, ty), MH_OK);
}

MH_TEST(heap_paths_grouped)
{
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 2, "'app'");
    for (int m = 0; m < 20; m++) {
        static char names[20][16];
        snprintf(names[m], sizeof(names[m]), "'m%d'", m);
        edge(&t, 3000 + m, 2, names[m]);
    }
    obj(&t, 1, "dict", 100, 1);
    for (int m = 0; m < 20; m++) {
        edge(&t, 3100 + m, 1, "__doc__");
        obj(&t, 3000 + m, "module", 50, 1);
        obj(&t, 3100 + m, "str", 70, 1);
    }
    edge(&t, 3, 6, "__dict__");
    obj(&t, 2, "module", 50, 1);
    edge(&t, 4, 2, "'log'");
    edge(&t, 5, 2, "'cache'");
    edge(&t, 6, 2, "'big'");
    obj(&t, 3, "dict", 100, 1);
    /* log: 900 dicts {'sql': str} */
    for (int i = 0; i < 900; i++)
        edge(&t, 10000 + i, 3, NULL);
    obj(&t, 4, "collections.deque", 8000, 1);
    for (int i = 0; i < 900; i++) {
        edge(&t, 20000 + i, 2, "'sql'");
        obj(&t, 10000 + i, "dict", 184, 1);
        obj(&t, 20000 + i, "str", 100, 1);
    }
    /* cache: 300 str keys -> str values, and one key holding a list of
     * 200 strs, which stands out */
    static char keys[301][16];
    for (int i = 0; i < 300; i++) {
        snprintf(keys[i], sizeof(keys[i]), "'k%d'", i);
        edge(&t, 30000 + i, 4, keys[i]);
        edge(&t, 31000 + i, 2, keys[i]);
    }
    edge(&t, 32000, 2, "'heavy'");
    obj(&t, 5, "dict", 20000, 1);
    for (int i = 0; i < 300; i++) {
        obj(&t, 30000 + i, "str", 50, 1);
        obj(&t, 31000 + i, "str", 60, 1);
    }
    for (int i = 0; i < 200; i++)
        edge(&t, 33000 + i, 3, NULL);
    obj(&t, 32000, "list", 1656, 1);
    for (int i = 0; i < 200; i++)
        obj(&t, 33000 + i, "str", 55, 1);
    obj(&t, 6, "str", 10000, 1);
    tb_load(&t);

    struct mh_heap_why w;
    why_type(&w, &t.a, &t.ty, "str");
    CHECK_EQ_INT(w.count, 20 + 900 + 600 + 200 + 1);
    const struct mh_heap_path_row *r;
    CHECK((r = row_of(&w, "sys.modules['app'].log[*]['sql']")) != NULL);
    CHECK_EQ_INT(r->count, 900);
    CHECK_EQ_INT(r->bytes, 90000);
    CHECK((r = row_of(&w, "sys.modules['app'].cache[*]")) != NULL);
    CHECK_EQ_INT(r->count, 300);
    CHECK((r = row_of(&w, "sys.modules['app'].cache<key *>")) != NULL);
    CHECK_EQ_INT(r->count, 300);
    CHECK((r = row_of(&w, "sys.modules['app'].cache['heavy'][*]")) != NULL);
    CHECK_EQ_INT(r->count, 200);
    CHECK((r = row_of(&w, "sys.modules['app'].big")) != NULL);
    CHECK_EQ_INT(r->bytes, 10000);
    /* 20 modules, one str each: the modules collapse */
    CHECK((r = row_of(&w, "sys.modules[*].__doc__")) != NULL);
    CHECK_EQ_INT(r->count, 20);
    /* sorted by bytes */
    CHECK_EQ_STR(w.paths.rows[0].path, "sys.modules['app'].log[*]['sql']");
    for (uint32_t i = 1; i < w.paths.n; i++)
        CHECK(w.paths.rows[i - 1].bytes >= w.paths.rows[i].bytes);
    mh_heap_why_release(&w);
    tb_release(&t);
}

MH_TEST(heap_paths_linked_lists)
{
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 1000, 2, "'old'");
    edge(&t, 5000, 2, "'new'");
    obj(&t, 1, "dict", 100, 1);
    /* 3.9: node ->__dict__ dict ['next'] node ... */
    for (int i = 0; i < 50; i++) {
        edge(&t, 2000 + i, 6, "__dict__");
        obj(&t, 1000 + i, "Node", 48, 1);
        if (i < 49)
            edge(&t, 1000 + i + 1, 2, "'next'");
        obj(&t, 2000 + i, "dict", 104, 1);
    }
    /* 3.11: inline attributes */
    for (int i = 0; i < 50; i++) {
        if (i < 49)
            edge(&t, 5000 + i + 1, 1, "next");
        obj(&t, 5000 + i, "Node", 48, 1);
    }
    tb_load(&t);
    struct mh_heap_why w;
    why_type(&w, &t.a, &t.ty, "Node");
    const struct mh_heap_path_row *r;
    CHECK((r = row_of(&w, "sys.modules['old']")) != NULL);
    CHECK((r = row_of(&w, "sys.modules['old'].next")) != NULL);
    CHECK((r = row_of(&w, "sys.modules['old'].next.next")) != NULL);
    CHECK((r = row_of(&w, "sys.modules['old'](.next){3,}")) != NULL);
    CHECK_EQ_INT(r->count, 47);
    CHECK((r = row_of(&w, "sys.modules['new'](.next){3,}")) != NULL);
    CHECK_EQ_INT(r->count, 47);
    CHECK_EQ_INT(w.paths.n, 8); /* depths 0, 1, 2 and 3+, twice */
    mh_heap_why_release(&w);
    /* the instance dicts */
    why_type(&w, &t.a, &t.ty, "dict");
    CHECK((r = row_of(&w, "sys.modules['old'](.next){3,}.__dict__")) != NULL);
    CHECK_EQ_INT(r->count, 47);
    mh_heap_why_release(&w);
    tb_release(&t);
}

/* --- dominators ----------------------------------------------------- */

/* Dominator sets by the textbook data-flow iteration over bit sets,
 * with node n (0-based) = object n, and node N = the virtual root whose
 * successors are the roots. */
static void
naive_dominators(uint32_t n, const uint32_t *estart, const uint32_t *eto,
                 const uint8_t *is_root, uint64_t *dom /* n x words */,
                 uint32_t words)
{
    for (uint32_t v = 0; v < n; v++)
        for (uint32_t w = 0; w < words; w++)
            dom[(size_t)v * words + w] = ~0ull;
    int changed = 1;
    uint64_t *tmp = calloc(words, sizeof(uint64_t));
    while (changed) {
        changed = 0;
        for (uint32_t v = 0; v < n; v++) {
            /* intersection over predecessors; the virtual root's set is
             * empty (it is not an object) */
            for (uint32_t w = 0; w < words; w++)
                tmp[w] = is_root[v] ? 0 : ~0ull;
            for (uint32_t u = 0; u < n; u++)
                for (uint32_t e = estart[u]; e < estart[u + 1]; e++)
                    if (eto[e] == v)
                        for (uint32_t w = 0; w < words; w++)
                            tmp[w] &= dom[(size_t)u * words + w];
            tmp[v / 64] |= 1ull << (v % 64);
            for (uint32_t w = 0; w < words; w++)
                if (tmp[w] != dom[(size_t)v * words + w]) {
                    dom[(size_t)v * words + w] = tmp[w];
                    changed = 1;
                }
        }
    }
    free(tmp);
}

MH_TEST(heap_dom_matches_naive)
{
    srand(7);
    for (int round = 0; round < 60; round++) {
        uint32_t n = 5 + (uint32_t)(rand() % 120);
        struct tb t;
        tb_init(&t, 0);
        /* Every node reachable: a random tree from the roots plus
         * random extra edges (cycles, cross edges, self loops). */
        uint32_t nroots = 1 + (uint32_t)(rand() % 3);
        static int par[200];
        for (uint32_t v = 0; v < n; v++)
            par[v] = v < nroots ? -1 : rand() % (int)v;
        for (uint32_t r = 0; r < nroots; r++)
            root(&t, r == 0 ? 0 : 3, "r", (int)r);
        for (uint32_t v = 0; v < n; v++) {
            for (uint32_t c = 0; c < n; c++)
                if (par[c] == (int)v)
                    edge(&t, (int)c, 3, NULL);
            int extra = rand() % 3;
            for (int k = 0; k < extra; k++)
                edge(&t, rand() % (int)n, 0, NULL);
            obj(&t, (int)v, v % 3 ? "dict" : "list", 10 + v, 100);
        }
        tb_load(&t);
        CHECK_EQ_INT(t.a.graph.count[MH_REACH_ROOT], n);
        CHECK_EQ_INT(mh_heap_session_dominators(&t.a), MH_OK);
        const struct mh_heap_image *d = &t.a.dump;
        uint32_t words = (n + 63) / 64;
        uint64_t *dom = calloc((size_t)n * words, sizeof(uint64_t));
        uint8_t *is_root = calloc(n, 1);
        for (uint32_t r = 0; r < d->nroots; r++)
            is_root[d->roots[r].obj] = 1;
        naive_dominators(n, d->edge_start, d->edge_to, is_root, dom, words);
        for (uint32_t v = 0; v < n; v++) {
            /* idom = the strict dominator with the most dominators */
            uint32_t best = MH_HEAP_NONE, bestc = 0;
            for (uint32_t u = 0; u < n; u++) {
                if (u == v ||
                    !(dom[(size_t)v * words + u / 64] >> (u % 64) & 1))
                    continue;
                uint32_t c = 0;
                for (uint32_t w = 0; w < words; w++)
                    c += (uint32_t)__builtin_popcountll(
                        dom[(size_t)u * words + w]);
                if (best == MH_HEAP_NONE || c > bestc) {
                    best = u;
                    bestc = c;
                }
            }
            if (t.a.dom.idom[v] != best)
                fprintf(stderr, "round %d n %u: idom(%u) = %u, naive %u\n",
                        round, n, v, t.a.dom.idom[v], best);
            CHECK_EQ_INT(t.a.dom.idom[v], best);
            uint64_t ret = 0;
            uint32_t cnt = 0;
            for (uint32_t o = 0; o < n; o++)
                if (dom[(size_t)o * words + v / 64] >> (v % 64) & 1) {
                    ret += d->size[o];
                    cnt++;
                }
            CHECK_EQ_INT(t.a.dom.retained[v], ret);
            CHECK_EQ_INT(t.a.dom.rcount[v], cnt);
        }
        free(dom);
        free(is_root);
        tb_release(&t);
    }
}

/* A million-long chain: no recursion anywhere. */
MH_TEST(heap_dom_deep_chain)
{
    struct hg b;
    hg_init(&b, 1, 0);
    uint64_t ty = hg_type(&b, "Node", 1), s = hg_string(&b, "next");
    uint64_t r = hg_string(&b, "head");
    hg_root(&b, 3, r, A(0));
    const uint32_t n = 1000000;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t tg = A(i + 1), lb = hg_label(s, 1);
        hg_object(&b, A(i), ty, 48, 1, 1, &tg, &lb, i + 1 < n);
    }
    hg_finish(&b);
    CHECK_EQ_INT(b.rc, MH_OK);
    struct mh_heap_types types;
    struct mh_heap_session a;
    mh_heap_types_init(&types);
    mh_heap_session_init(&a);
    CHECK_EQ_INT(mh_heap_session_load(&a, &types, b.file.data, b.file.len, 0),
                 MH_OK);
    struct mh_heap_top t;
    mh_heap_top_init(&t);
    CHECK_EQ_INT(mh_heap_top_build(&t, &a, 3, 0, types.n), MH_OK);
    CHECK_EQ_INT(t.n, 3);
    CHECK_EQ_INT(t.rows[0].retained, 48ull * n);
    CHECK_EQ_INT(t.rows[1].retained, 48ull * (n - 1));
    CHECK_EQ_STR(t.rows[1].path, "head.next");
    CHECK_EQ_STR(t.rows[2].path, "head.next.next");
    mh_heap_top_release(&t);
    struct mh_heap_why w;
    why_type(&w, &a, &types, "Node");
    CHECK_EQ_INT(w.paths.n, 4);
    CHECK_EQ_INT(w.paths.rows[0].count, n - 3);
    CHECK_EQ_STR(w.paths.rows[0].path, "head(.next){3,}");
    mh_heap_why_release(&w);
    struct mh_buf p;
    mh_buf_init(&p, 1 << 20);
    CHECK_EQ_INT(mh_heap_graph_path(&a.graph, n - 1, 1000, &p), MH_OK);
    CHECK_EQ_INT(mh_buf_put_u8(&p, 0), MH_OK);
    CHECK_EQ_STR((const char *)p.data, "head(.next){999999}");
    mh_buf_release(&p);
    mh_heap_session_release(&a);
    mh_heap_types_release(&types);
    hg_release(&b);
}

/* An unnamed reference shows the type of its holder, in an exact path
 * and in a grouped one; --type resolves a dotted tail of a name. */
MH_TEST(heap_unnamed_hop_and_type_names)
{
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 2, "'__main__'");
    obj(&t, 1, "dict", 100, 1);
    edge(&t, 3, 6, "__dict__");
    obj(&t, 2, "module", 50, 1);
    edge(&t, 4, 2, "'wrapper'");
    edge(&t, 8, 2, "'other'");
    obj(&t, 3, "dict", 100, 1);
    edge(&t, 5, 0, NULL);
    obj(&t, 4, "functools._lru_cache_wrapper", 152, 1);
    edge(&t, 6, 2, "'k'");
    edge(&t, 7, 2, "'j'");
    obj(&t, 5, "dict", 100, 1);
    obj(&t, 6, "__main__.Session", 48, 1);
    obj(&t, 7, "__main__.Session", 48, 1);
    edge(&t, 9, 0, NULL);
    obj(&t, 8, "app.models.Session", 48, 1);
    obj(&t, 9, "__main__.Payload", 48, 1);
    tb_load(&t);
    check_path(&t.a, 5,
               "sys.modules['__main__'].wrapper"
               "->?<functools._lru_cache_wrapper>");
    check_path(&t.a, 9,
               "sys.modules['__main__'].other->?<app.models.Session>");
    struct mh_heap_why w;
    why_type(&w, &t.a, &t.ty, "__main__.Session");
    CHECK(row_of(&w, "sys.modules['__main__'].wrapper"
                     "->?<functools._lru_cache_wrapper>['k']") != NULL);
    mh_heap_why_release(&w);

    uint32_t g, cand[5], n;
    CHECK_EQ_INT(mh_heap_types_resolve(&t.ty, "Payload", &g, cand, 5, &n),
                 MH_TYPES_FOUND);
    CHECK_EQ_STR(t.ty.names[g], "__main__.Payload");
    CHECK_EQ_INT(
        mh_heap_types_resolve(&t.ty, "models.Session", &g, cand, 5, &n),
        MH_TYPES_FOUND);
    CHECK_EQ_STR(t.ty.names[g], "app.models.Session");
    CHECK_EQ_INT(mh_heap_types_resolve(&t.ty, "dict", &g, cand, 5, &n),
                 MH_TYPES_FOUND);
    CHECK_EQ_STR(t.ty.names[g], "dict");
    /* "ession" is no dotted tail: unknown */
    CHECK_EQ_INT(mh_heap_types_resolve(&t.ty, "ession", &g, cand, 5, &n),
                 MH_TYPES_UNKNOWN);
    CHECK_EQ_INT(mh_heap_types_resolve(&t.ty, "Session", &g, cand, 5, &n),
                 MH_TYPES_AMBIGUOUS);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(t.ty.names[cand[0]], "__main__.Session");
    CHECK_EQ_STR(t.ty.names[cand[1]], "app.models.Session");
    CHECK_EQ_INT(g, UINT32_MAX);
    CHECK_EQ_INT(mh_heap_types_resolve(&t.ty, "payload", &g, cand, 5, &n),
                 MH_TYPES_UNKNOWN);
    CHECK_EQ_STR(t.ty.names[cand[0]], "__main__.Payload");
    CHECK_EQ_INT(mh_heap_types_resolve(&t.ty, "Sesion", &g, cand, 2, &n),
                 MH_TYPES_UNKNOWN);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(t.ty.names[cand[0]], "__main__.Session");
    CHECK_EQ_STR(t.ty.names[cand[1]], "app.models.Session");
    tb_release(&t);
}

MH_TEST(heap_census_retained_by_type)
{
    struct tb t;
    tb_init(&t, 0);
    /* root dict 1 -> dict 2 -> dict 3 -> str 4; dict 1 -> str 5 */
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 2, "'a'");
    edge(&t, 5, 2, "'b'");
    obj(&t, 1, "dict", 100, 1);
    edge(&t, 3, 2, "'c'");
    obj(&t, 2, "dict", 100, 1);
    edge(&t, 4, 2, "'d'");
    obj(&t, 3, "dict", 100, 1);
    obj(&t, 4, "str", 10, 1);
    obj(&t, 5, "str", 20, 1);
    tb_load(&t);
    struct mh_heap_census c;
    mh_heap_census_init(&c);
    CHECK_EQ_INT(mh_heap_census_build(&c, &t.a, t.ty.n), MH_OK);
    CHECK_EQ_INT(c.n, 2);
    CHECK_EQ_STR(t.ty.names[c.rows[0].group], "dict");
    CHECK_EQ_INT(c.rows[0].count, 3);
    CHECK_EQ_INT(c.rows[0].bytes, 300);
    CHECK_EQ_INT(c.rows[0].retained, 330); /* not 330 + 210 + 110 */
    CHECK_EQ_INT(c.rows[1].retained, 30);
    mh_heap_census_release(&c);

    /* top-retainers: the chain collapses to where memory fans out */
    struct mh_heap_top top;
    mh_heap_top_init(&top);
    CHECK_EQ_INT(mh_heap_top_build(&top, &t.a, 10, 1, t.ty.n), MH_OK);
    CHECK_EQ_INT(top.n, 5); /* no child holds 90% of its parent */
    CHECK_EQ_INT(top.rows[0].retained, 330);
    CHECK_EQ_INT(top.rows[0].nholds, 2);
    CHECK_EQ_STR(t.ty.names[top.rows[0].holds[0].group], "dict");
    CHECK_EQ_INT(top.rows[0].holds[0].count, 2);
    CHECK_EQ_INT(top.rows[2].retained, 110);
    CHECK_EQ_STR(top.rows[2].path, "sys.modules['a']['c']");

    mh_heap_top_release(&top);
    tb_release(&t);
}

/* A chain module dict -> instance -> list that retains ten strs: only
 * the list, where the memory fans out, is listed (and the strs). */
MH_TEST(heap_top_collapse)
{
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 2, "'app'");
    obj(&t, 1, "dict", 10, 1);
    edge(&t, 3, 1, "items");
    obj(&t, 2, "app.Holder", 10, 1);
    for (int i = 0; i < 10; i++)
        edge(&t, 10 + i, 3, NULL);
    obj(&t, 3, "list", 10, 1);
    for (int i = 0; i < 10; i++)
        obj(&t, 10 + i, "str", 100 + i, 1);
    tb_load(&t);
    struct mh_heap_top top;
    mh_heap_top_init(&top);
    CHECK_EQ_INT(mh_heap_top_build(&top, &t.a, 3, 1, t.ty.n), MH_OK);
    CHECK_EQ_INT(top.n, 3);
    CHECK_EQ_STR(top.rows[0].path, "sys.modules['app'].items");
    CHECK_EQ_INT(top.rows[0].retained, 10 + 1045);
    CHECK_EQ_INT(top.rows[0].rcount, 11);
    CHECK_EQ_STR(top.rows[1].path, "sys.modules['app'].items[9]");
    CHECK_EQ_INT(top.rows[2].retained, 108);
    mh_heap_top_release(&top);
    CHECK_EQ_INT(mh_heap_top_build(&top, &t.a, 3, 0, t.ty.n), MH_OK);
    CHECK_EQ_STR(top.rows[0].path, "sys.modules");
    CHECK_EQ_INT(top.rows[0].retained, 30 + 1045);
    mh_heap_top_release(&top);
    tb_release(&t);
}

/* --- diff and why --since ------------------------------------------- */

MH_TEST(heap_diff_identity)
{
    struct mh_heap_session o;
    struct tb t;
    tb_init(&t, 0);
    root(&t, 0, "sys.modules", 1);
    for (int i = 2; i <= 5; i++)
        edge(&t, i, 3, NULL);
    obj(&t, 1, "list", 100, 1);
    obj(&t, 2, "str", 50, 1);
    obj(&t, 3, "str", 50, 1);
    obj(&t, 4, "dict", 100, 1);
    obj(&t, 5, "str", 50, 1);
    tb_load_into(&t, &o);
    /* 2 kept; 3 freed and its address reused by another str (counts as
     * old); 4's address now a str (new); 5 gone; 6, 7 new */
    tb_next(&t, 0);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 3, NULL);
    edge(&t, 3, 3, NULL);
    edge(&t, 4, 3, NULL);
    edge(&t, 6, 3, NULL);
    edge(&t, 7, 3, NULL);
    obj(&t, 1, "list", 140, 1);
    obj(&t, 2, "str", 50, 1);
    obj(&t, 3, "str", 70, 1);
    obj(&t, 4, "str", 60, 1);
    obj(&t, 6, "str", 50, 1);
    obj(&t, 7, "dict", 200, 1);
    tb_load(&t);
    struct mh_heap_diff df;
    mh_heap_diff_init(&df);
    CHECK_EQ_INT(mh_heap_diff_build(&df, &o, &t.a, t.ty.n), MH_OK);
    CHECK_EQ_INT(df.new_count, 3);
    CHECK_EQ_INT(df.new_bytes, 60 + 50 + 200);
    CHECK_EQ_INT(df.n, 3);
    /* by bytes_delta: str +80 (4 vs 3), list +40, dict +100 */
    CHECK_EQ_STR(t.ty.names[df.rows[0].group], "dict");
    CHECK_EQ_INT(df.rows[0].bytes_delta, 100);
    CHECK_EQ_INT(df.rows[0].count_delta, 0);
    CHECK_EQ_INT(df.rows[0].new_count, 1);
    CHECK_EQ_STR(t.ty.names[df.rows[1].group], "str");
    CHECK_EQ_INT(df.rows[1].count_delta, 1);
    CHECK_EQ_INT(df.rows[1].bytes_delta, 80);
    CHECK_EQ_INT(df.rows[1].new_count, 2);
    CHECK_EQ_INT(df.rows[1].new_bytes, 110);
    CHECK_EQ_STR(t.ty.names[df.rows[2].group], "list");
    CHECK_EQ_INT(df.rows[2].new_count, 0);

    /* why --since: the new objects of the types that grew (str, dict,
     * list: all grew in bytes) */
    struct mh_heap_why w;
    mh_heap_why_init(&w);
    CHECK_EQ_INT(mh_heap_why_select_since(&w, &t.a, &df, t.ty.n), MH_OK);
    CHECK_EQ_INT(mh_heap_why_build(&w, &t.a, &t.ty), MH_OK);
    CHECK_EQ_INT(w.count, 3);
    CHECK_EQ_INT(w.paths.n, 1);
    CHECK_EQ_STR(w.paths.rows[0].path, "sys.modules[*]");
    mh_heap_why_release(&w);
    mh_heap_diff_release(&df);
    mh_heap_session_release(&o);
    tb_release(&t);
}

/* --- live but unreachable ------------------------------------------- */

MH_TEST(heap_alloc_join)
{
    struct tb t;
    const uint64_t R = 1000;
    tb_init(&t, R);
    root(&t, 0, "sys.modules", 1);
    edge(&t, 2, 2, "'x'");
    obj(&t, 1, "dict", 100, 1);
    obj(&t, 2, "str", 60, 1);
    obj(&t, 3, "int", 32, 5); /* leaked: refcnt 5, no references */
    obj(&t, 4, "int", 32, 0); /* garbage */
    uint64_t tint = tb_id(&t, "T:int");
    hg_alloc(&t.b, A(2) - 16, 60, 11, A(2), 0); /* reachable: skipped */
    hg_alloc(&t.b, A(3) - 16, 32, 12, A(3), 0); /* gc cannot see */
    hg_alloc(&t.b, A(4) - 16, 32, 12, A(4), 0); /* garbage */
    hg_alloc(&t.b, 0x900000, 32, 12, 0, tint);  /* not walked */
    hg_alloc(&t.b, 0x900100, 32, 12, 0, tint);  /* not walked */
    hg_alloc(&t.b, 0x900200, 4096, 13, 0, 0);   /* a buffer: not judged */
    hg_alloc(&t.b, 0x900300, 64, 14, 0x777, 0); /* object not in dump */
    tb_load(&t);
    struct mh_unreachable l;
    mh_unreachable_init(&l);
    CHECK_EQ_INT(mh_unreachable_build(&l, &t.a.graph, t.a.group, NULL, NULL), MH_OK);
    CHECK_EQ_INT(l.blocks, 7);
    CHECK_EQ_INT(l.n, 4);
    double w32 = 1.0 / (1.0 - exp(-32.0 / 1000.0));
    const struct mh_unreachable_row *r = NULL;
    for (uint32_t i = 0; i < l.n; i++)
        if (l.rows[i].reason == MH_UNREACHABLE_NOT_WALKED && l.rows[i].stack == 12)
            r = &l.rows[i];
    CHECK(r != NULL);
    CHECK_EQ_STR(t.ty.names[r->group], "int");
    CHECK_EQ_INT(r->blocks, 2);
    CHECK(fabs(r->est_count - 2 * w32) < 1e-6);
    CHECK(fabs(r->est_bytes - 64 * w32) < 1e-6);
    CHECK(l.rows[0].est_bytes >= l.rows[1].est_bytes);
    int ext = 0, garbage = 0, unknown = 0;
    for (uint32_t i = 0; i < l.n; i++) {
        ext += l.rows[i].reason == MH_UNREACHABLE_EXT;
        garbage += l.rows[i].reason == MH_UNREACHABLE_GARBAGE;
        unknown += l.rows[i].group == UINT32_MAX;
    }
    CHECK_EQ_INT(ext, 1);
    CHECK_EQ_INT(garbage, 1);
    CHECK_EQ_INT(unknown, 1);
    /* only ints */
    uint8_t only[16] = {0};
    only[mh_heap_types_find(&t.ty, "int")] = 1;
    CHECK_EQ_INT(mh_unreachable_build(&l, &t.a.graph, t.a.group, only, NULL), MH_OK);
    CHECK_EQ_INT(l.n, 3);
    mh_unreachable_release(&l);
    CHECK(fabs(mh_unreachable_weight(32, 0) - 1.0) < 1e-12);
    tb_release(&t);
}

/* With the capture, stacks that differ only by bytecode offset make one
 * row, and where they allocated can be named. */
MH_TEST(heap_alloc_join_with_capture)
{
    struct mh_buf file, c;
    mh_buf_init(&file, 1 << 20);
    mh_buf_init(&c, 1 << 20);
    struct mh_cap_header h;
    memset(&h, 0, sizeof(h));
    h.mode = MH_MODE_TRACE;
    CHECK_EQ_INT(mh_cap_put_file_header(&file), MH_OK);
    CHECK_EQ_INT(mh_cap_put_header(&c, &h), MH_OK);
    CHECK_EQ_INT(mh_cap_put_string(&c, 1, "app.py", 6), MH_OK);
    CHECK_EQ_INT(mh_cap_put_string(&c, 2, "handler", 7), MH_OK);
    CHECK_EQ_INT(mh_cap_put_code(&c, 3, 1, 2, 1), MH_OK);
    CHECK_EQ_INT(mh_cap_put_frame(&c, 4, 3, 5, 10), MH_OK);
    CHECK_EQ_INT(mh_cap_put_frame(&c, 5, 3, 5, 24), MH_OK);
    CHECK_EQ_INT(mh_cap_put_frame(&c, 6, 3, 7, 40), MH_OK);
    uint32_t f4 = 4, f5 = 5, f6 = 6;
    CHECK_EQ_INT(mh_cap_put_stack(&c, 9, 1, &f5), MH_OK);
    CHECK_EQ_INT(mh_cap_put_stack(&c, 8, 1, &f4), MH_OK);
    CHECK_EQ_INT(mh_cap_put_stack(&c, 20, 1, &f6), MH_OK);
    CHECK_EQ_INT(mh_cap_chunk_seal(&file, c.data, c.len, 0, NULL), MH_OK);
    struct mh_cap_reader r;
    mh_cap_reader_init(&r);
    CHECK_EQ_INT(mh_cap_parse(&r, file.data, file.len, NULL, NULL), MH_OK);

    struct tb t;
    tb_init(&t, 0);
    obj(&t, 1, "int", 32, 0);
    uint64_t tint = tb_id(&t, "T:int");
    hg_alloc(&t.b, 0x900000, 32, 9, 0, tint);
    hg_alloc(&t.b, 0x900100, 32, 8, 0, tint);
    hg_alloc(&t.b, 0x900200, 32, 8, 0, tint);
    hg_alloc(&t.b, 0x900300, 32, 20, 0, tint);
    hg_alloc(&t.b, 0x900400, 32, 77, 0, tint); /* not in the capture */
    tb_load(&t);
    struct mh_unreachable l;
    mh_unreachable_init(&l);
    CHECK_EQ_INT(mh_unreachable_build(&l, &t.a.graph, t.a.group, NULL, NULL), MH_OK);
    CHECK_EQ_INT(l.n, 4);
    CHECK_EQ_INT(mh_unreachable_build(&l, &t.a.graph, t.a.group, NULL, &r), MH_OK);
    CHECK_EQ_INT(l.n, 3);
    CHECK_EQ_INT(l.rows[0].stack, 8);
    CHECK_EQ_INT(l.rows[0].blocks, 3);
    struct mh_buf w;
    mh_buf_init(&w, 1 << 10);
    CHECK_EQ_INT(mh_unreachable_where(&l, &l.rows[0], 3, &w), MH_OK);
    CHECK_EQ_INT(mh_buf_put_u8(&w, 0), MH_OK);
    CHECK_EQ_STR((const char *)w.data, "handler (app.py:5)");
    mh_buf_reset(&w);
    const struct mh_unreachable_row *r77 = NULL;
    for (uint32_t i = 0; i < l.n; i++)
        if (l.rows[i].stack == 77)
            r77 = &l.rows[i];
    CHECK(r77 != NULL);
    CHECK_EQ_INT(mh_unreachable_where(&l, r77, 3, &w), MH_OK);
    CHECK_EQ_INT(mh_buf_put_u8(&w, 0), MH_OK);
    CHECK_EQ_STR((const char *)w.data, "stack 77");
    mh_buf_release(&w);
    mh_unreachable_release(&l);
    tb_release(&t);
    mh_cap_reader_release(&r);
    mh_buf_release(&file);
    mh_buf_release(&c);
}

/* --- the command ---------------------------------------------------- */

#define HEAP_TMP "/tmp/mh-test-heap-XXXXXX"

/* Runs python3 on the JSON in `path` with a check script. */
static int
python_check(const char *path, const char *script)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,sys\n"
             "d = json.load(open(sys.argv[1], encoding=\"utf-8\"))\n"
             "%s' %s",
             script, path);
    return system(cmd);
}

#define RUN(code, ...)                                                        \
    do {                                                                      \
        const char *args_[] = {__VA_ARGS__};                                  \
        CHECK_EQ_INT(run_quiet(mh_cmd_heap, "heap",                           \
                               sizeof(args_) / sizeof(*args_), args_),        \
                     code);                                                   \
    } while (0)

MH_TEST(heap_command)
{
    struct hg o, n;
    hg_init(&o, 3, 0);
    hg_synthetic(&o, 300);
    hg_finish(&o);
    hg_init(&n, 0, 0);
    n.chunk_bytes = 4096; /* several chunks, so a cut one leaves some */
    hg_synthetic(&n, 500);
    hg_finish(&n);
    CHECK_EQ_INT(o.rc | n.rc, MH_OK);
    char *old = write_temp(HEAP_TMP, o.file.data, o.file.len);
    char *cur = write_temp(HEAP_TMP, n.file.data, n.file.len);
    char *cut = write_temp(HEAP_TMP, n.file.data, n.file.len - 3);
    n.file.data[n.file.len / 2] ^= 0x40;
    char *bad = write_temp(HEAP_TMP, n.file.data, n.file.len);
    static const uint8_t junk[] = "not a heap dump";
    char *notdump = write_temp(HEAP_TMP, junk, sizeof(junk));
    char out[] = "/tmp/mh-test-heap-out-XXXXXX";
    close(mkstemp(out));

    RUN(MH_EXIT_OK, "census", cur, "--force", "-o", out);
    RUN(MH_EXIT_OK, "census", cur, "--format", "json", "--force", "-o", out);
    CHECK_EQ_INT(python_check(out, "t = d[\"types\"]\n"
                                   "assert [r[\"type\"] for r in t][:2] == "
                                   "[\"dict\", \"str\"], t\n"
                                   "assert t[0][\"count\"] == 511\n"
                                   "assert t[1][\"bytes\"] == 500 * 109 + 52\n"
                                   "assert t[0][\"retained_bytes\"] == "
                                   "d[\"bytes\"]\n"
                                   "assert all(t[i][\"bytes\"] >= "
                                   "t[i+1][\"bytes\"] for i in "
                                   "range(len(t)-1))\n"
                                   "assert d[\"dump\"][\"complete\"]\n"),
                 0);
    RUN(MH_EXIT_OK, "diff", old, cur, "--format=json", "--force", "-o", out);
    CHECK_EQ_INT(python_check(out,
                              "t = d[\"types\"]\n"
                              "assert t[0][\"type\"] == \"dict\", t\n"
                              "assert t[0][\"count_delta\"] == 200\n"
                              "assert t[0][\"new_count\"] == 200\n"
                              "assert t[1][\"type\"] == \"str\"\n"
                              "assert t[1][\"bytes_delta\"] == 200 * 109\n"
                              "assert d[\"new_count\"] == 400\n"),
                 0);
    RUN(MH_EXIT_OK, "why", cur, "--type", "str", "--format", "json", "--force",
        "-o", out);
    CHECK_EQ_INT(
        python_check(out, "p = d[\"paths\"]\n"
                          "assert p[0] == {\"path\": \"sys.modules[\\x27app.db"
                          "\\x27].connections._connections[\\x27default\\x27]"
                          ".queries_log[*][\\x27sql\\x27]\", \"count\": 500, "
                          "\"bytes\": 500 * 109}, p[0]\n"
                          "assert d[\"unreachable\"] == []\n"),
        0);
    RUN(MH_EXIT_OK, "why", cur, "--since", old, "--format", "json", "--force", "-o", out);
    CHECK_EQ_INT(python_check(out,
                              "p = d[\"paths\"]\n"
                              "assert len(p) == 2, p\n"
                              "assert \"queries_log\" in p[0][\"path\"]\n"
                              "assert d[\"selection\"][\"count\"] == 400\n"),
                 0);
    RUN(MH_EXIT_OK, "why", cur, "--unreachable", "--force", "-o", out);
    RUN(MH_EXIT_OK, "why", cur, "--address", "0x7f0000000000", "--format",
        "json", "--force", "-o", out);
    CHECK_EQ_INT(python_check(out, "assert d[\"paths\"][0][\"path\"].endswith("
                                   "\"queries_log[0]\"), d\n"),
                 0);
    RUN(MH_EXIT_OK, "top-retainers", cur, "--format", "json", "--force", "-o", out);
    CHECK_EQ_INT(python_check(out,
                              "r = d[\"retainers\"][0]\n"
                              "assert r[\"type\"] == \"collections.deque\"\n"
                              "assert r[\"path\"].endswith(\"queries_log\")\n"
                              "assert r[\"retained_count\"] == 1001\n"),
                 0);
    RUN(MH_EXIT_OK, "top-retainers", cur, "--all", "--top", "0", "--force", "-o", out);
    RUN(MH_EXIT_OK, "census", cut, "--force", "-o", out); /* truncated: a warning */
    RUN(MH_EXIT_FAIL, "census", bad, "--force", "-o", out);
    RUN(MH_EXIT_FAIL, "census", notdump, "--force", "-o", out);
    RUN(MH_EXIT_FAIL, "census", "/nonexistent/x.mhh", "--force", "-o", out);
    RUN(MH_EXIT_FAIL, "why", cur, "--address", "0x1234", "--force", "-o", out);
    RUN(MH_EXIT_FAIL, "census", cur, "--capture", notdump, "--force", "-o", out);
    RUN(MH_EXIT_USAGE, "why", cur, "--force", "-o", out);
    RUN(MH_EXIT_USAGE, "why", cur, "--type", "str", "--address", "1");
    RUN(MH_EXIT_USAGE, "why", cur, "--address", "zz");
    RUN(MH_EXIT_USAGE, "census");
    RUN(MH_EXIT_USAGE, "diff", cur);
    RUN(MH_EXIT_USAGE, "census", cur, "--type", "str");
    RUN(MH_EXIT_USAGE, "census", cur, "--format", "xml");
    RUN(MH_EXIT_USAGE, "census", cur, "--top", "-1");
    RUN(MH_EXIT_USAGE, "frobnicate", cur);
    RUN(MH_EXIT_USAGE, "diff", old, cur, "--capture", old);
    RUN(MH_EXIT_OK, "--help");
    char *files[] = {old, cur, cut, bad, notdump, out};
    for (size_t i = 0; i < 6; i++) {
        unlink(files[i]);
        if (files[i] != out)
            free(files[i]);
    }
    hg_release(&o);
    hg_release(&n);
}
