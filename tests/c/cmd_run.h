/* Running a CLI command inside the tests: its input written to a
 * temporary file, its output kept out of the test log. */
#ifndef MH_TEST_CMD_RUN_H
#define MH_TEST_CMD_RUN_H

#include <stddef.h>
#include <stdint.h>

/* Writes p[0..n) to a new file made from `tmpl` (mkstemp's XXXXXX
 * suffix). The caller owns the returned path, unlinks the file and
 * frees the path with free(). */
char *write_temp(const char *tmpl, const uint8_t *p, size_t n);

/* Runs `cmd` (e.g. mh_cmd_report) as `name args[0..n)` with stdout and
 * stderr sent to /dev/null; returns its exit code. */
int run_quiet(int (*cmd)(int, char **), const char *name, int n,
              const char *const *args);

#endif
