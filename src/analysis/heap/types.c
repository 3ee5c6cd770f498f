/* Type names across heap dumps (types.h). */
#include <string.h>

#include "../../util/mem.h"
#include "types.h"

void
mh_heap_types_init(struct mh_heap_types *t)
{
    memset(t, 0, sizeof(*t));
}

void
mh_heap_types_release(struct mh_heap_types *t)
{
    mh_free(t->names);
    mh_free(t->slots);
    mh_heap_types_init(t);
}

static size_t
str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h ^ h >> 29);
}

uint32_t
mh_heap_types_find(const struct mh_heap_types *t, const char *name)
{
    if (!t->bits)
        return UINT32_MAX;
    size_t mask = ((size_t)1 << t->bits) - 1;
    for (size_t i = str_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t g = t->slots[i];
        if (g == UINT32_MAX || !strcmp(t->names[g], name))
            return g;
    }
}

int
mh_heap_types_slots_reserve(uint32_t **slots, unsigned *bits,
                            unsigned first_bits, uint32_t n,
                            size_t (*hash)(const void *ctx, uint32_t i),
                            const void *ctx)
{
    if (*bits && (size_t)(n + 1) * 2 <= ((size_t)1 << *bits))
        return MH_OK;
    unsigned nbits = *bits ? *bits + 1 : first_bits;
    size_t size = (size_t)1 << nbits, mask = size - 1;
    uint32_t *s = mh_malloc(size * sizeof(uint32_t));
    if (!s)
        return MH_ENOMEM;
    memset(s, 0xff, size * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        size_t h = hash(ctx, i) & mask;
        while (s[h] != UINT32_MAX)
            h = (h + 1) & mask;
        s[h] = i;
    }
    mh_free(*slots);
    *slots = s;
    *bits = nbits;
    return MH_OK;
}

static size_t
group_hash(const void *ctx, uint32_t g)
{
    const struct mh_heap_types *t = ctx;
    return str_hash(t->names[g]);
}

static int
intern(struct mh_heap_types *t, const char *name, uint32_t *out)
{
    uint32_t g = mh_heap_types_find(t, name);
    if (g != UINT32_MAX) {
        *out = g;
        return MH_OK;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        const char **names = mh_realloc(t->names, cap * sizeof(*names));
        if (!names)
            return MH_ENOMEM;
        t->names = names;
        t->cap = cap;
    }
    int rc = mh_heap_types_slots_reserve(&t->slots, &t->bits, 8, t->n,
                                         group_hash, t);
    if (rc)
        return rc;
    size_t mask = ((size_t)1 << t->bits) - 1;
    size_t i = str_hash(name) & mask;
    while (t->slots[i] != UINT32_MAX)
        i = (i + 1) & mask;
    t->slots[i] = t->n;
    t->names[t->n] = name;
    *out = t->n++;
    return MH_OK;
}

int
mh_heap_types_add(struct mh_heap_types *t, const struct mh_heap_image *d,
                  uint32_t **map)
{
    uint32_t *m =
        mh_malloc((size_t)(d->ntypes ? d->ntypes : 1) * sizeof(uint32_t));
    if (!m)
        return MH_ENOMEM;
    for (uint32_t i = 0; i < d->ntypes; i++) {
        const char *name = i ? mh_heap_str(d, d->types[i].name) : "?";
        if (!*name)
            name = "?";
        int rc = intern(t, name, &m[i]);
        if (rc) {
            mh_free(m);
            return rc;
        }
    }
    *map = m;
    return MH_OK;
}

/* ---- resolving what a user typed ---- */

#define RESOLVE_CHARS 128 /* name length the edit distance looks at */

/* Whether `full` is `name` or ends with "." + name; `fold` compares
 * ASCII letters case-insensitively. */
static int
suffix_match(const char *full, const char *name, int fold)
{
    size_t nf = strlen(full), nn = strlen(name);
    if (nn == 0 || nn > nf)
        return 0;
    const char *tail = full + nf - nn;
    if (nn < nf && tail[-1] != '.')
        return 0;
    if (!fold)
        return !memcmp(tail, name, nn);
    for (size_t i = 0; i < nn; i++) {
        unsigned char a = (unsigned char)tail[i], b = (unsigned char)name[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

/* Levenshtein distance between the first RESOLVE_CHARS bytes of a and
 * b, ASCII case folded. */
static unsigned
edit_distance(const char *a, const char *b)
{
    unsigned row[RESOLVE_CHARS + 1];
    size_t na = strnlen(a, RESOLVE_CHARS), nb = strnlen(b, RESOLVE_CHARS);
    for (size_t j = 0; j <= nb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= na; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= nb; j++) {
            unsigned char x = (unsigned char)a[i - 1];
            unsigned char y = (unsigned char)b[j - 1];
            x = x >= 'A' && x <= 'Z' ? (unsigned char)(x - 'A' + 'a') : x;
            y = y >= 'A' && y <= 'Z' ? (unsigned char)(y - 'A' + 'a') : y;
            unsigned best = diag + (x != y);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[nb];
}

/* How far `full` is from what the user typed: 0 for the same suffix in
 * another case, else 1 + the smaller edit distance to the whole name or
 * to its last dotted part. */
static unsigned
name_score(const char *full, const char *name)
{
    if (suffix_match(full, name, 1))
        return 0;
    const char *dot = strrchr(full, '.');
    unsigned d = edit_distance(full, name);
    if (dot) {
        unsigned e = edit_distance(dot + 1, name);
        d = e < d ? e : d;
    }
    return 1 + d;
}

/* Keeps the `max` best (lowest score, then name) of what it is offered,
 * in cand[] sorted best first. */
static void
keep_best(const struct mh_heap_types *t, uint32_t *cand, unsigned *score,
          uint32_t max, uint32_t *n, uint32_t g, unsigned s)
{
    uint32_t i = *n < max ? (*n)++ : max;
    while (i > 0 && (score[i - 1] > s ||
                     (score[i - 1] == s &&
                      strcmp(t->names[cand[i - 1]], t->names[g]) > 0))) {
        if (i < max) {
            cand[i] = cand[i - 1];
            score[i] = score[i - 1];
        }
        i--;
    }
    if (i < max) {
        cand[i] = g;
        score[i] = s;
    }
}

enum mh_heap_types_match
mh_heap_types_resolve(const struct mh_heap_types *t, const char *name,
                      uint32_t *group, uint32_t *cand, uint32_t max,
                      uint32_t *ncand)
{
    unsigned score[16];
    if (max > 16)
        max = 16;
    *ncand = 0;
    *group = mh_heap_types_find(t, name);
    if (*group != UINT32_MAX)
        return MH_TYPES_FOUND;
    uint32_t matches = 0;
    for (uint32_t g = 0; g < t->n; g++)
        if (suffix_match(t->names[g], name, 0)) {
            *group = g;
            keep_best(t, cand, score, max, ncand, g, 0);
            matches++;
        }
    if (matches == 1) {
        *ncand = 0;
        return MH_TYPES_FOUND;
    }
    *group = UINT32_MAX;
    if (matches > 1)
        return MH_TYPES_AMBIGUOUS;
    for (uint32_t g = 0; g < t->n; g++)
        if (strcmp(t->names[g], "?"))
            keep_best(t, cand, score, max, ncand, g,
                      name_score(t->names[g], name));
    return MH_TYPES_UNKNOWN;
}
