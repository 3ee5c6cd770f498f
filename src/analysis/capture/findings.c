/* Findings grouped for the report, and the catalog of known rules (see
 * findings.h). The rules themselves run in the agent's Python layer; the
 * words here must agree with docs/findings.md. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/mem.h"
#include "endpoints.h"
#include "findings.h"
#include "../../util/blockmap.h"

/* A finding waiting for its request's REQUEST record. */
struct pend {
    uint32_t group;
    uint32_t next; /* + 1; the request's next, or the free list's */
};

/* Requests that ended lately, by id modulo RECENT: a finding made after
 * its request's REQUEST record (in a task that outlived the request)
 * still finds the endpoint. */
#define RECENT 1024

struct recent {
    uint64_t id; /* 0 = empty */
    uint32_t name;
};

struct mh_findings_priv {
    struct recent recent[RECENT];
    uint32_t *slots; /* group index + 1; 0 = empty */
    size_t nslots;   /* power of two */
    size_t v_cap;
    struct mh_blockmap pending; /* request id -> first pend + 1 */
    struct pend *pend;
    size_t npend, pend_cap;
    uint32_t free_pend;
    struct mh_blockmap counts; /* group << 32 | endpoint name -> findings */
};

/* ---- the catalog ---------------------------------------------------- */

/* "20,000" */
static void
fmt_count(char *buf, size_t n, uint64_t v)
{
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* "31.0 MiB", "512 B": binary units, as the text report writes them. */
static void
fmt_bytes(char *buf, size_t n, uint64_t v)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (v < 1024) {
        snprintf(buf, n, "%" PRIu64 " B", v);
        return;
    }
    double x = (double)v / 1024;
    int u = 0;
    while (x >= 1023.95 && u < 4) {
        x /= 1024;
        u++;
    }
    snprintf(buf, n, "%.1f %s", x, units[u]);
}

static void
fmt_times(char *buf, size_t n, uint64_t occurrences)
{
    if (occurrences == 1) {
        snprintf(buf, n, "once");
    } else {
        char c[32];
        fmt_count(c, sizeof(c), occurrences);
        snprintf(buf, n, "%s times", c);
    }
}

static void
ev_truthiness(char *buf, size_t n, const struct mh_finding_kind *k,
              uint64_t occ, uint64_t cmax, uint64_t ctot, uint64_t bmax,
              uint64_t btot)
{
    (void)k;
    (void)ctot;
    char c[32], b[32], t[48], bt[32];
    fmt_count(c, sizeof(c), cmax);
    fmt_bytes(b, sizeof(b), bmax);
    fmt_times(t, sizeof(t), occ);
    fmt_bytes(bt, sizeof(bt), btot);
    snprintf(buf, n,
             "the QuerySet was evaluated to test it (if qs:, bool(qs), "
             "len(qs)) and its rows were never read: up to %s rows fetched "
             "and %s allocated for them; %s, %s in all",
             c, b, t, bt);
}

static void
ev_large(char *buf, size_t n, const struct mh_finding_kind *k, uint64_t occ,
         uint64_t cmax, uint64_t ctot, uint64_t bmax, uint64_t btot)
{
    (void)k;
    (void)btot;
    char c[32], b[32], t[48], ct[32];
    fmt_count(c, sizeof(c), cmax);
    fmt_bytes(b, sizeof(b), bmax);
    fmt_times(t, sizeof(t), occ);
    fmt_count(ct, sizeof(ct), ctot);
    snprintf(buf, n,
             "a QuerySet of up to %s rows was loaded into memory at once "
             "(up to %s allocated); %s, %s rows in all",
             c, b, t, ct);
}

static void
ev_debug_log(char *buf, size_t n, const struct mh_finding_kind *k,
             uint64_t occ, uint64_t cmax, uint64_t ctot, uint64_t bmax,
             uint64_t btot)
{
    (void)k;
    (void)occ;
    (void)ctot;
    (void)btot;
    char c[32], b[32];
    fmt_count(c, sizeof(c), cmax);
    fmt_bytes(b, sizeof(b), bmax);
    snprintf(buf, n,
             "settings.DEBUG is on and queries run outside the request "
             "cycle, where connection.queries_log is never reset: it "
             "reached %s queries, about %s of SQL text",
             c, b);
}

static const struct mh_finding_kind catalog[] = {
    {"django-queryset-truthiness",
     "QuerySet evaluated only to test whether it is empty or how long it is",
     "use qs.exists() to test for rows and qs.count() for their number; "
     "if the rows are needed afterwards, evaluate once (rows = list(qs)) "
     "and test rows",
     ev_truthiness},
    {"django-large-queryset", "Large QuerySet loaded into memory at once",
     "iterate with qs.iterator(chunk_size=2000), which fetches and drops "
     "rows in chunks; fetch less with .values_list() or .only(); or "
     "paginate",
     ev_large},
    {"django-debug-query-log", "DEBUG=True query log growing outside requests",
     "run production services and workers with DEBUG=False; in a long "
     "loop outside requests, call django.db.reset_queries() now and then",
     ev_debug_log},
};

const struct mh_finding_kind *
mh_findings_kind(const char *id, size_t n)
{
    for (size_t i = 0; i < sizeof(catalog) / sizeof(*catalog); i++)
        if (strlen(catalog[i].id) == n && !memcmp(catalog[i].id, id, n))
            return &catalog[i];
    return NULL;
}

/* ---- grouping ------------------------------------------------------- */

void
mh_findings_init(struct mh_findings *f, struct mh_strpool *strings)
{
    memset(f, 0, sizeof(*f));
    f->strings = strings;
}

void
mh_findings_release(struct mh_findings *f)
{
    mh_free(f->v);
    mh_free(f->order);
    struct mh_findings_priv *pv = f->priv;
    if (pv) {
        mh_free(pv->slots);
        mh_blockmap_release(&pv->pending);
        mh_free(pv->pend);
        mh_blockmap_release(&pv->counts);
        mh_free(pv);
    }
    mh_findings_init(f, f->strings);
}

int
mh_findings_begin(struct mh_findings *f)
{
    struct mh_findings_priv *pv = f->priv;
    if (!pv) {
        pv = f->priv = mh_calloc(1, sizeof(*pv));
        if (!pv)
            return MH_ENOMEM;
        mh_blockmap_init(&pv->pending, MH_EP_MAX_REQUESTS);
        mh_blockmap_init(&pv->counts, MH_EP_MAX_PAIRS);
    }
    mh_blockmap_release(&pv->pending);
    pv->npend = 0;
    pv->free_pend = 0;
    memset(pv->recent, 0, sizeof(pv->recent));
    return MH_OK;
}

static size_t
group_hash(uint32_t id, uint32_t file, uint32_t line)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    h ^= file;
    h *= 0xff51afd7ed558ccdull;
    h ^= line;
    h *= 0xc4ceb9fe1a85ec53ull;
    return (size_t)(h ^ (h >> 29));
}

static int
slots_grow(struct mh_findings *f)
{
    struct mh_findings_priv *pv = f->priv;
    size_t n = pv->nslots ? pv->nslots * 2 : 64;
    uint32_t *s = mh_calloc(n, sizeof(*s));
    if (!s)
        return MH_ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        const struct mh_finding *g = &f->v[i];
        size_t j = group_hash(g->id, g->file, g->line) & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = (uint32_t)i + 1;
    }
    mh_free(pv->slots);
    pv->slots = s;
    pv->nslots = n;
    return MH_OK;
}

/* The group of (id, file, line), added when new; UINT32_MAX when the
 * groups are at their cap. */
static int
group_get(struct mh_findings *f, const struct mh_cap_finding *r, uint32_t *idx)
{
    struct mh_findings_priv *pv = f->priv;
    uint32_t id, file;
    int rc = mh_strpool_intern(f->strings, r->id.s, r->id.n, &id);
    if (rc == MH_OK)
        rc = mh_strpool_intern(f->strings, r->file.s, r->file.n, &file);
    if (rc)
        return rc;
    if ((f->n + 1) * 2 > pv->nslots && (rc = slots_grow(f)))
        return rc;
    size_t mask = pv->nslots - 1;
    size_t j = group_hash(id, file, r->line) & mask;
    for (; pv->slots[j]; j = (j + 1) & mask) {
        const struct mh_finding *g = &f->v[pv->slots[j] - 1];
        if (g->id == id && g->file == file && g->line == r->line) {
            *idx = pv->slots[j] - 1;
            return MH_OK;
        }
    }
    if (f->n >= MH_FINDINGS_MAX_GROUPS) {
        *idx = UINT32_MAX;
        return MH_OK;
    }
    if (f->n == pv->v_cap) {
        size_t cap = pv->v_cap ? pv->v_cap * 2 : 16;
        struct mh_finding *v = mh_realloc(f->v, cap * sizeof(*v));
        if (!v)
            return MH_ENOMEM;
        f->v = v;
        pv->v_cap = cap;
    }
    struct mh_finding *g = &f->v[f->n];
    memset(g, 0, sizeof(*g));
    g->id = id;
    g->file = file;
    g->line = r->line;
    g->kind = mh_findings_kind(r->id.s, r->id.n);
    if ((rc = mh_strpool_intern(f->strings, r->function.s, r->function.n,
                                &g->function)) ||
        (rc = mh_strpool_intern(f->strings, r->detail.s, r->detail.n,
                                &g->detail)))
        return rc;
    pv->slots[j] = (uint32_t)f->n + 1;
    *idx = (uint32_t)f->n++;
    return MH_OK;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static int
count_name(struct mh_findings *f, uint32_t group, uint32_t id)
{
    struct mh_findings_priv *pv = f->priv;
    uint64_t key = (uint64_t)group << 32 | id, c = 0, old;
    int had;
    mh_blockmap_get(&pv->counts, key, &c);
    return mh_blockmap_put(&pv->counts, key, c + 1, &old, &had);
}

static int
on_finding(struct mh_findings *f, const struct mh_cap_finding *r)
{
    struct mh_findings_priv *pv = f->priv;
    uint32_t gi;
    int rc = group_get(f, r, &gi);
    if (rc)
        return rc;
    if (gi == UINT32_MAX) {
        f->dropped++;
        return MH_OK;
    }
    struct mh_finding *g = &f->v[gi];
    g->occurrences++;
    if (r->count > g->count_max)
        g->count_max = r->count;
    if (r->bytes > g->bytes_max)
        g->bytes_max = r->bytes;
    g->count_total = sat_add(g->count_total, r->count);
    g->bytes_total = sat_add(g->bytes_total, r->bytes);
    if (!r->request)
        return MH_OK;
    const struct recent *e = &pv->recent[r->request % RECENT];
    if (e->id == r->request)
        return count_name(f, gi, e->name);
    /* Its endpoint is known when the request ends. */
    uint32_t i;
    if (pv->free_pend) {
        i = pv->free_pend - 1;
        pv->free_pend = pv->pend[i].next;
    } else {
        if (pv->npend == pv->pend_cap) {
            if (pv->pend_cap >= MH_EP_MAX_PAIRS)
                return MH_ETOOBIG;
            size_t cap = pv->pend_cap ? pv->pend_cap * 2 : 64;
            struct pend *p = mh_realloc(pv->pend, cap * sizeof(*p));
            if (!p)
                return MH_ENOMEM;
            pv->pend = p;
            pv->pend_cap = cap;
        }
        i = (uint32_t)pv->npend++;
    }
    uint64_t head = 0, old;
    int had;
    mh_blockmap_get(&pv->pending, r->request, &head);
    pv->pend[i] = (struct pend){gi, (uint32_t)head};
    return mh_blockmap_put(&pv->pending, r->request, i + 1, &old, &had);
}

/* The findings in list `head` count for the endpoint named `name` (a
 * string id). */
static int
resolve(struct mh_findings *f, uint64_t head, uint32_t name)
{
    struct mh_findings_priv *pv = f->priv;
    for (uint32_t i = (uint32_t)head; i;) {
        struct pend *p = &pv->pend[i - 1];
        uint32_t next = p->next;
        int rc = count_name(f, p->group, name);
        if (rc)
            return rc;
        p->next = pv->free_pend;
        pv->free_pend = i;
        i = next;
    }
    return MH_OK;
}

int
mh_findings_visit(struct mh_findings *f, const struct mh_cap_event *ev)
{
    if (!f->priv)
        return MH_EINVAL;
    if (ev->kind == MH_EV_FINDING)
        return on_finding(f, &ev->u.finding);
    if (ev->kind != MH_EV_REQUEST)
        return MH_OK;
    const struct mh_str *e = &ev->u.request.endpoint;
    uint32_t name;
    int rc = e->n ? mh_strpool_intern(f->strings, e->s, e->n, &name)
                  : mh_strpool_intern(f->strings, MH_EP_UNNAMED,
                                      strlen(MH_EP_UNNAMED), &name);
    if (rc)
        return rc;
    struct recent *r = &f->priv->recent[ev->u.request.id % RECENT];
    r->id = ev->u.request.id;
    r->name = name;
    uint64_t head;
    if (!mh_blockmap_take(&f->priv->pending, ev->u.request.id, &head))
        return MH_OK;
    return resolve(f, head, name);
}

int
mh_findings_end(struct mh_findings *f)
{
    struct mh_findings_priv *pv = f->priv;
    if (!pv)
        return MH_OK;
    size_t pos = 0;
    uint64_t id, head;
    uint32_t name;
    int rc = mh_strpool_intern(f->strings, MH_EP_IN_PROGRESS,
                               strlen(MH_EP_IN_PROGRESS), &name);
    while (rc == MH_OK && mh_blockmap_next(&pv->pending, &pos, &id, &head))
        rc = resolve(f, head, name);
    if (rc)
        return rc;
    mh_blockmap_release(&pv->pending);
    return MH_OK;
}

/* ---- finishing ------------------------------------------------------ */

static int
order_cmp(const void *x, const void *y, void *ctx)
{
    const struct mh_finding *v = ctx;
    uint32_t i = *(const uint32_t *)x, j = *(const uint32_t *)y;
    const struct mh_finding *a = &v[i], *b = &v[j];
    if (a->bytes_total != b->bytes_total)
        return a->bytes_total > b->bytes_total ? -1 : 1;
    if (a->occurrences != b->occurrences)
        return a->occurrences > b->occurrences ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* Keeps endpoint `name` among the group's most frequent (ties: the name
 * seen first, i.e. with the smaller id). */
static void
top_endpoint(struct mh_finding *g, uint32_t name, uint64_t count)
{
    size_t k = g->nendpoints;
    while (k > 0 && (g->endpoint_counts[k - 1] < count ||
                     (g->endpoint_counts[k - 1] == count &&
                      g->endpoints[k - 1] > name)))
        k--;
    if (k >= MH_FINDINGS_ENDPOINTS)
        return;
    size_t last = g->nendpoints < MH_FINDINGS_ENDPOINTS
                      ? g->nendpoints
                      : MH_FINDINGS_ENDPOINTS - 1;
    for (size_t m = last; m > k; m--) {
        g->endpoints[m] = g->endpoints[m - 1];
        g->endpoint_counts[m] = g->endpoint_counts[m - 1];
    }
    g->endpoints[k] = name;
    g->endpoint_counts[k] = count;
    if (g->nendpoints < MH_FINDINGS_ENDPOINTS)
        g->nendpoints++;
}

int
mh_findings_finish(struct mh_findings *f)
{
    struct mh_findings_priv *pv = f->priv;
    if (pv) {
        size_t pos = 0;
        uint64_t key, count;
        while (mh_blockmap_next(&pv->counts, &pos, &key, &count))
            if ((key >> 32) < f->n)
                top_endpoint(&f->v[key >> 32], (uint32_t)key, count);
    }
    for (size_t i = 0; i < f->n; i++) {
        struct mh_finding *g = &f->v[i];
        int rc;
        if (g->kind) {
            char buf[512];
            g->kind->evidence(buf, sizeof(buf), g->kind, g->occurrences,
                              g->count_max, g->count_total, g->bytes_max,
                              g->bytes_total);
            rc = mh_strpool_intern(f->strings, buf, strlen(buf), &g->evidence);
        } else if (mh_strpool_len(f->strings, g->detail)) {
            g->evidence = g->detail;
            rc = MH_OK;
        } else {
            char buf[256], t[48];
            fmt_times(t, sizeof(t), g->occurrences);
            snprintf(buf, sizeof(buf),
                     "seen %s; count up to %" PRIu64 ", bytes up to %" PRIu64,
                     t, g->count_max, g->bytes_max);
            rc = mh_strpool_intern(f->strings, buf, strlen(buf), &g->evidence);
        }
        if (rc)
            return rc;
    }
    mh_free(f->order);
    f->order = NULL;
    if (!f->n)
        return MH_OK;
    f->order = mh_calloc(f->n, sizeof(*f->order));
    if (!f->order)
        return MH_ENOMEM;
    for (size_t i = 0; i < f->n; i++)
        f->order[i] = (uint32_t)i;
    qsort_r(f->order, f->n, sizeof(*f->order), order_cmp, f->v);
    return MH_OK;
}
