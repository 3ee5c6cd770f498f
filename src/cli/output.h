/* Where a command that renders a report writes it (heap, report): stdout,
 * or the file -o names. A full disk must not pass for a short report, so
 * the close checks the flush and reports a failure of either. */
#ifndef MH_CLI_OUTPUT_H
#define MH_CLI_OUTPUT_H

#include <stdio.h>

/* stdout when `path` is NULL or "-", else the file `path`, created or
 * truncated; the caller owns it and passes it to mh_output_close(). NULL
 * after reporting "cannot create 'PATH': ...". */
FILE *mh_output_open(const char *path);

/* Flushes `out`, and closes it unless it is stdout, after a render that
 * returned `rc`: MH_OK, an MH_E* code (MH_EIO with errno still set by the
 * failed write), or a positive exit code for an error the caller has
 * reported already, which is returned as it is. Otherwise reports
 * "cannot write 'PATH': ..." for the render's or the close's failure and
 * returns MH_EXIT_FAIL, or returns MH_EXIT_OK. */
int mh_output_close(FILE *out, const char *path, int rc);

#endif
