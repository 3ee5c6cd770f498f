/* Runs every registered test in its own child process. Arguments filter
 * tests by substring. */
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct mh_test *tests;

void
mh_test_register(struct mh_test *t)
{
    t->next = tests;
    tests = t;
}

int
main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    /* Registration order is reversed by the constructors; run in name
     * order for stable output. */
    struct mh_test *sorted[4096];
    int n = 0;
    for (struct mh_test *t = tests; t && n < 4096; t = t->next)
        sorted[n++] = t;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(sorted[j - 1]->name,
                                        sorted[j]->name) > 0; j--) {
            struct mh_test *x = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = x;
        }
    for (int i = 0; i < n; i++) {
        struct mh_test *t = sorted[i];
        int selected = argc < 2;
        for (int a = 1; a < argc; a++)
            selected |= strstr(t->name, argv[a]) != NULL;
        if (!selected)
            continue;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            t->fn();
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
            printf("ok   %s\n", t->name);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("FAIL %s (signal %d)\n", t->name, WTERMSIG(status));
            else
                printf("FAIL %s\n", t->name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
