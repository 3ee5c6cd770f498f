/* String arena for the format readers (arena.h). */
#include <string.h>

#include "arena.h"
#include "mem.h"

struct mh_arena_block {
    struct mh_arena_block *next;
    size_t used, cap;
    char data[];
};

int
mh_arena_str(struct mh_arena *a, struct mh_budget *bud, const char *s,
             size_t n, const char **copy)
{
    struct mh_arena_block *b = a->head;
    if (n >= MH_ARENA_BLOCK)
        return MH_ETOOBIG;
    if (!b || b->cap - b->used < n + 1) {
        size_t bytes = sizeof(*b) + MH_ARENA_BLOCK;
        if (mh_budget_charge(bud, bytes))
            return MH_ETOOBIG;
        b = mh_malloc(bytes);
        if (!b) {
            *bud->used -= bytes;
            return MH_ENOMEM;
        }
        b->used = 0;
        b->cap = MH_ARENA_BLOCK;
        b->next = a->head;
        a->head = b;
    }
    char *p = b->data + b->used;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    b->used += n + 1;
    *copy = p;
    return MH_OK;
}

void
mh_arena_release(struct mh_arena *a)
{
    for (struct mh_arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        mh_free(b);
    }
    a->head = NULL;
}
