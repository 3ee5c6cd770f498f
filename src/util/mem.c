#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static void *
libc_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void
libc_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static struct mh_mem_ops mem_ops = {libc_realloc, libc_free, NULL};

void
mh_mem_set(const struct mh_mem_ops *ops)
{
    if (ops)
        mem_ops = *ops;
    else
        mem_ops = (struct mh_mem_ops){libc_realloc, libc_free, NULL};
}

void *
mh_malloc(size_t size)
{
    if (size == 0)
        return NULL;
    return mem_ops.realloc(mem_ops.ctx, NULL, size);
}

void *
mh_calloc(size_t n, size_t size)
{
    if (n == 0 || size == 0 || n > SIZE_MAX / size)
        return NULL;
    void *p = mh_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *
mh_realloc(void *ptr, size_t size)
{
    if (size == 0)
        return NULL;
    return mem_ops.realloc(mem_ops.ctx, ptr, size);
}

void
mh_free(void *ptr)
{
    if (ptr)
        mem_ops.free(mem_ops.ctx, ptr);
}

char *
mh_strndup(const char *s, size_t n)
{
    char *p = mh_malloc(n + 1);
    if (!p)
        return NULL;
    if (n) /* s may be NULL then: an empty mh_buf has no data */
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
