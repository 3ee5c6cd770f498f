/* mh_idmap, mh_arena and mh_budget: what the format readers keep of a
 * file, and the cap that bounds it. */
#include <stdint.h>

#include "harness.h"
#include "util/arena.h"
#include "util/budget.h"
#include "util/idmap.h"
#include "util/mem.h"

MH_TEST(idmap_put_get_through_growth)
{
    size_t used = 0;
    struct mh_budget b = {&used, (size_t)1 << 20};
    struct mh_idmap m = {0};
    CHECK_EQ_INT(mh_idmap_get(&m, 5), 0);
    /* sparse keys, some sharing slots, across several doublings */
    for (uint32_t i = 1; i <= 1000; i++)
        CHECK_EQ_INT(mh_idmap_put(&m, &b, (uint64_t)i * 0x10001, i), MH_OK);
    CHECK_EQ_INT(m.count, 1000);
    for (uint32_t i = 1; i <= 1000; i++)
        CHECK_EQ_INT(mh_idmap_get(&m, (uint64_t)i * 0x10001), i);
    CHECK_EQ_INT(mh_idmap_get(&m, 0), 0);
    CHECK_EQ_INT(mh_idmap_get(&m, 0x10000), 0);
    /* the slots are charged once: the live table, not the ones it left */
    CHECK_EQ_INT(used, ((size_t)1 << m.bits) * 12);
    CHECK((size_t)m.count * 2 <= ((size_t)1 << m.bits));
    mh_idmap_release(&m);
    CHECK(m.keys == NULL && m.bits == 0 && m.count == 0);
}

MH_TEST(idmap_put_stops_at_the_budget)
{
    size_t used = 0;
    struct mh_budget b = {&used, 64 * 12 + 100}; /* room for one table */
    struct mh_idmap m = {0};
    uint32_t i = 1;
    while (mh_idmap_put(&m, &b, i, i) == MH_OK)
        i++;
    CHECK_EQ_INT(i, 33); /* the 33rd would make 64 slots over half full */
    CHECK_EQ_INT(used, 64 * 12);
    CHECK_EQ_INT(m.count, 32);
    CHECK_EQ_INT(mh_idmap_get(&m, 32), 32);
    mh_idmap_release(&m);
}

MH_TEST(budget_grow_doubles_and_stops_at_the_cap)
{
    size_t used = 0;
    struct mh_budget b = {&used, 1000};
    uint32_t *a = NULL;
    size_t cap = 0;
    CHECK_EQ_INT(mh_budget_grow(&b, (void **)&a, &cap, 1, sizeof(*a)), MH_OK);
    CHECK_EQ_INT(cap, 64);
    CHECK_EQ_INT(used, 256);
    CHECK_EQ_INT(mh_budget_grow(&b, (void **)&a, &cap, 64, sizeof(*a)), MH_OK);
    CHECK_EQ_INT(cap, 64); /* no growth when it fits */
    /* doubling to 256 would pass the cap: it grows to what is asked */
    CHECK_EQ_INT(mh_budget_grow(&b, (void **)&a, &cap, 200, sizeof(*a)),
                 MH_OK);
    CHECK_EQ_INT(cap, 200);
    CHECK_EQ_INT(used, 800);
    CHECK_EQ_INT(mh_budget_grow(&b, (void **)&a, &cap, 251, sizeof(*a)),
                 MH_ETOOBIG);
    CHECK_EQ_INT(cap, 200);
    CHECK_EQ_INT(used, 800);
    CHECK_EQ_INT(mh_budget_grow(&b, (void **)&a, &cap, 250, sizeof(*a)),
                 MH_OK);
    CHECK_EQ_INT(cap, 250);
    CHECK_EQ_INT(used, 1000);
    a[249] = 7;
    mh_free(a);
    CHECK_EQ_INT(mh_budget_grown(0, 1), 64);
    CHECK_EQ_INT(mh_budget_grown(64, 65), 128);
    CHECK_EQ_INT(mh_budget_grown(SIZE_MAX / 2 + 1, SIZE_MAX), SIZE_MAX);
}

MH_TEST(arena_copies_stay_put)
{
    size_t used = 0;
    struct mh_budget b = {&used, (size_t)1 << 20};
    struct mh_arena a = {0};
    const char *first, *s;
    CHECK_EQ_INT(mh_arena_str(&a, &b, "abc", 3, &first), MH_OK);
    CHECK_EQ_STR(first, "abc");
    CHECK_EQ_INT(mh_arena_str(&a, &b, NULL, 0, &s), MH_OK);
    CHECK_EQ_STR(s, "");
    size_t one = used;
    CHECK(one > MH_ARENA_BLOCK);
    /* fill past the first block: the early copy does not move */
    static char big[MH_ARENA_BLOCK - 1];
    memset(big, 'x', sizeof(big));
    CHECK_EQ_INT(mh_arena_str(&a, &b, big, sizeof(big), &s), MH_OK);
    CHECK(s[0] == 'x' && s[sizeof(big)] == '\0');
    CHECK_EQ_INT(used, 2 * one);
    CHECK_EQ_STR(first, "abc");
    /* a third block does not fit 1 MiB... */
    CHECK_EQ_INT(mh_arena_str(&a, &b, big, sizeof(big), &s), MH_OK);
    CHECK_EQ_INT(mh_arena_str(&a, &b, big, sizeof(big), &s), MH_ETOOBIG);
    CHECK_EQ_INT(used, 3 * one);
    /* ...and a string as long as a block never fits one */
    CHECK_EQ_INT(mh_arena_str(&a, &b, big, MH_ARENA_BLOCK, &s), MH_ETOOBIG);
    mh_arena_release(&a);
    CHECK(a.head == NULL);
}
