/* Fault injection for the tests: memhound's allocator (util/mem.h)
 * pointed at one whose allocation number N fails, counting the blocks
 * still live, so a test can make every allocation fail in turn and check
 * that each failure is reported and leaks nothing (curl's torture mode,
 * SQLite's faultsim). */
#ifndef MH_TEST_FAULTY_H
#define MH_TEST_FAULTY_H

struct faulty {
    long calls, fail_at, live;
};

/* Installs the failing allocator: allocation number `fail_at` (counted
 * from 1) returns NULL. `f` must outlive faulty_remove(). */
void faulty_install(struct faulty *f, long fail_at);
/* Restores libc's allocator and CHECKs that no block is left live. */
void faulty_remove(struct faulty *f);

#endif
