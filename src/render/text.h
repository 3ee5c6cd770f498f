/* The report for people: a compact summary, the growth and live
 * tables, and an ASCII timeline of RSS against tracked live bytes. */
#ifndef MH_TEXT_H
#define MH_TEXT_H

#include <stddef.h>
#include <stdio.h>

#include "../analysis/capture/analysis.h"

/* Writes the finished analysis to `out`. MH_EIO when writing fails. */
int mh_text_render(FILE *out, const struct mh_analysis *a) MH_MUST_USE;

/* "1.5 MiB", "512 B": binary units, one decimal past KiB. */
void mh_text_bytes(char *buf, size_t size, double bytes);
/* "45.2s", "12m30s", "3h05m". */
void mh_text_duration(char *buf, size_t size, double seconds);

#endif
