/* The failing allocator of faulty.h. */
#include <stdlib.h>

#include "faulty.h"
#include "harness.h"
#include "util/mem.h"

static void *
faulty_realloc(void *ctx, void *p, size_t size)
{
    struct faulty *f = ctx;
    if (++f->calls == f->fail_at)
        return NULL;
    void *q = realloc(p, size);
    if (q && !p)
        f->live++;
    return q;
}

static void
faulty_free(void *ctx, void *p)
{
    struct faulty *f = ctx;
    if (p)
        f->live--;
    free(p);
}

void
faulty_install(struct faulty *f, long fail_at)
{
    memset(f, 0, sizeof(*f));
    f->fail_at = fail_at;
    struct mh_mem_ops ops = {faulty_realloc, faulty_free, f};
    mh_mem_set(&ops);
}

void
faulty_remove(struct faulty *f)
{
    mh_mem_set(NULL);
    if (f->live != 0)
        fprintf(stderr, "N=%ld: %ld blocks leaked\n", f->fail_at, f->live);
    CHECK_EQ_INT(f->live, 0);
}
