/* Where memhound's own memory comes from.
 *
 * The CLI uses libc. The agent runs inside the target, under its own
 * allocator hooks, so it points these at the RAW allocator that was
 * installed before it (never the hooked one). Tests point them at a
 * failing allocator to inject faults (make allocation N fail). */
#ifndef MH_MEM_H
#define MH_MEM_H

#include <stddef.h>

struct mh_mem_ops {
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
};

/* Replace the allocator; NULL restores libc. Not thread-safe: call once,
 * before any other thread uses memhound's memory. */
void mh_mem_set(const struct mh_mem_ops *ops);

/* Each returns NULL when the memory cannot be had (also for size 0 and
 * for n * size overflow). The caller frees with mh_free(). */
void *mh_malloc(size_t size);
void *mh_calloc(size_t n, size_t size);
void *mh_realloc(void *ptr, size_t size);
void mh_free(void *ptr);

/* The caller owns the copy and frees it with mh_free(). */
char *mh_strndup(const char *s, size_t n);

#endif
