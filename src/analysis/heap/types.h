/* Type names across heap dumps. Census, diff and the ALLOC join group
 * objects by the name of their type as Python shows it ("str",
 * "app.models.User"), not by the type object, so that two dumps (whose
 * type ids and addresses differ) line up, and a class defined twice under
 * one name counts once. Groups are dense ids 0..n-1 in first-seen order. */
#ifndef MH_HEAP_TYPES_H
#define MH_HEAP_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "../../format/heap_read.h"

struct mh_heap_types {
    const char **names; /* borrowed from the dumps added: they must
                           outlive this table */
    uint32_t n, cap;
    uint32_t *slots; /* hash of names: group ids, UINT32_MAX = empty */
    unsigned bits;
};

void mh_heap_types_init(struct mh_heap_types *t);
void mh_heap_types_release(struct mh_heap_types *t);

/* Maps every type of `d` to a group, adding new names. *map receives an
 * array of d->ntypes group ids (index 0, "no type", maps to the group
 * of the name "?"); the caller frees it with mh_free(). */
int mh_heap_types_add(struct mh_heap_types *t, const struct mh_heap_image *d,
                      uint32_t **map) MH_MUST_USE;

/* The group of `name`, or UINT32_MAX when no dump had it. */
uint32_t mh_heap_types_find(const struct mh_heap_types *t, const char *name);

enum mh_heap_types_match {
    MH_TYPES_FOUND = 0,     /* *group is the type */
    MH_TYPES_AMBIGUOUS = 1, /* several names end in ".NAME": cand[] */
    MH_TYPES_UNKNOWN = 2,   /* none does: cand[] are the closest names */
};

/* Resolves a type name as a user types it: the exact name first, else
 * the one name that ends with "." + name (`Session` for
 * `__main__.Session`, `models.User` for `app.models.User`). When that is
 * not one name, up to `max` candidates go to cand[] (*ncand of them):
 * the names that matched, or the names closest to `name` (the same
 * suffix in another case first, then by edit distance), best first. */
enum mh_heap_types_match mh_heap_types_resolve(const struct mh_heap_types *t,
                                               const char *name,
                                               uint32_t *group, uint32_t *cand,
                                               uint32_t max, uint32_t *ncand);

/* Makes room for one more id in an open-addressing index of dense ids
 * 0..n-1: *slots holds 2^*bits ids (UINT32_MAX = empty). When it is
 * unallocated or would be over half full it grows (to 2^first_bits, then
 * doubling) and every id i goes back at hash(ctx, i). The heap analyses
 * with such an index (this table, heap_alloc's rows, heap_paths' shapes)
 * share it. MH_ENOMEM leaves *slots and *bits as they were; the owner
 * frees *slots with mh_free(). */
int mh_heap_types_slots_reserve(uint32_t **slots, unsigned *bits,
                                unsigned first_bits, uint32_t n,
                                size_t (*hash)(const void *ctx, uint32_t i),
                                const void *ctx) MH_MUST_USE;

#endif
