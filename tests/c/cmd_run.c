/* The command runner of cmd_run.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_run.h"
#include "harness.h"

char *
write_temp(const char *tmpl, const uint8_t *p, size_t n)
{
    char *path = strdup(tmpl);
    CHECK(path != NULL);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
    return path;
}

int
run_quiet(int (*cmd)(int, char **), const char *name, int n,
          const char *const *args)
{
    char *argv[32];
    CHECK(n + 2 <= 32);
    argv[0] = (char *)name;
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    argv[n + 1] = NULL;
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
    int rc = cmd(n + 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    fclose(null);
    return rc;
}
