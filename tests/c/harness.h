/* A tiny test harness: each test is a function registered with MH_TEST;
 * the runner (tests/c/main.c) runs each in a forked child so one crash
 * fails one test, and prints "N passed, N failed". */
#ifndef MH_TEST_HARNESS_H
#define MH_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mh_test {
    const char *name;
    void (*fn)(void);
    struct mh_test *next;
};

void mh_test_register(struct mh_test *t);

#define MH_TEST(name)                                                      \
    static void test_##name(void);                                         \
    static struct mh_test mh_test_##name = {#name, test_##name, NULL};     \
    __attribute__((constructor)) static void mh_test_reg_##name(void)      \
    {                                                                      \
        mh_test_register(&mh_test_##name);                                \
    }                                                                      \
    static void test_##name(void)

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                 \
    do {                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);              \
        if (va_ != vb_) {                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n",      \
                    __FILE__, __LINE__, #a, #b, va_, vb_);                 \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                 \
    do {                                                                   \
        const char *sa_ = (a), *sb_ = (b);                                 \
        if (strcmp(sa_, sb_) != 0) {                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: '%s' != '%s'\n",      \
                    __FILE__, __LINE__, #a, #b, sa_, sb_);                 \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* Seconds on the monotonic clock, for tests that time what they run. */
static inline double
mh_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
