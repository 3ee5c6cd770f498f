/* Type names across heap dumps. Census, diff and the ALLOC join group
 * objects by the name of their type as Python shows it ("str",
 * "app.models.User"), not by the type object, so that two dumps (whose
 * type ids and addresses differ) line up, and a class defined twice under
 * one name counts once. Groups are dense ids 0..n-1 in first-seen order. */
#ifndef MH_HEAP_TYPES_H
#define MH_HEAP_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "../format/heap_read.h"

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
int mh_heap_types_add(struct mh_heap_types *t, const struct mh_heap_dump *d,
                      uint32_t **map) MH_MUST_USE;

/* The group of `name`, or UINT32_MAX when no dump had it. */
uint32_t mh_heap_types_find(const struct mh_heap_types *t, const char *name);

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
