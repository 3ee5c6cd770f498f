/* Growth slope of a series of (time, value) points: a least-squares line
 * over a sliding window, with R² as its fit quality, for `top` (MiB/h per
 * process, time left until the cgroup limit) and anything else that
 * samples memory on a timer; and running sums (mh_slope_sums) for a
 * whole series in O(1) memory (the report's endpoints).
 *
 * A fixed ring of points: adding is O(1), fitting O(points), no
 * allocation. R² near 1 means steady growth (a leak grows like that);
 * near 0 means the value moves around its mean (a server that allocates
 * and frees per request). */
#ifndef MH_SLOPE_H
#define MH_SLOPE_H

#include <stddef.h>

#include "msg.h"

#define MH_SLOPE_CAP 512

struct mh_slope {
    double t[MH_SLOPE_CAP]; /* seconds, any origin, non-decreasing */
    double v[MH_SLOPE_CAP];
    size_t first;  /* index of the oldest point */
    size_t n;      /* points held */
    double window; /* points older than the newest minus this are
                      dropped; 0 = keep the last MH_SLOPE_CAP */
};

struct mh_slope_fit {
    double slope; /* value units per second */
    double r2;    /* 0..1; 1 also when every value is equal */
    double se;    /* the slope's standard error (0 with 3 points on a
                     line); slope +- mh_slope_t95(n - 2) * se is its 95%
                     confidence interval */
    double sd;    /* the residuals' standard deviation (the noise) */
    double last;  /* the fitted value at the newest time */
    double span;  /* seconds between the oldest and newest point */
    size_t n;
};

void mh_slope_init(struct mh_slope *s, double window);
/* Adds a point; a time before the newest one empties the series first
 * (a clock that went back, or a new process behind the same pid). */
void mh_slope_add(struct mh_slope *s, double t, double v);
/* Fits the points held. MH_EINVAL with fewer than 3 points or when they
 * span no time. */
int mh_slope_fit(const struct mh_slope *s, struct mh_slope_fit *f) MH_MUST_USE;
/* Least squares over a whole series in O(1) memory: running means and
 * centred sums (Welford's update), for series too long to keep, such as
 * an endpoint's live bytes at each of its requests. Exact, no window. */
struct mh_slope_sums {
    double n;
    double mx, my;        /* means of the points added */
    double sxx, sxy, syy; /* sums of products of deviations from them */
};

/* A zeroed struct is an empty series. */
void mh_slope_sums_add(struct mh_slope_sums *s, double x, double y);
/* Adds b's centred sums to a's, so a fit gives one slope for both series,
 * each with its own intercept (two processes serving one endpoint, whose
 * baselines differ). a's means then describe no series. */
void mh_slope_sums_pool(struct mh_slope_sums *a,
                        const struct mh_slope_sums *b);
/* The slope (y units per x unit) and R² (0..1; 1 also when every y is
 * equal). MH_EINVAL with fewer than 3 points or when x does not vary;
 * both are then 0. */
int mh_slope_sums_fit(const struct mh_slope_sums *s, double *slope,
                      double *r2) MH_MUST_USE;

/* The same fit with the slope's standard error and the residuals'
 * deviation (f->last and f->span are 0: the sums keep no times), so
 * mh_slope_fit_significant() and mh_slope_growth_significant() apply.
 * MH_EINVAL as mh_slope_sums_fit(). */
int mh_slope_sums_fit_full(const struct mh_slope_sums *s,
                           struct mh_slope_fit *f) MH_MUST_USE;

/* Student's t for a two-sided 95% interval with `df` degrees of freedom
 * (df >= 1). */
double mh_slope_t95(size_t df);
/* A fit a display may show: at least MH_SLOPE_MIN_POINTS points and a
 * slope whose 95% interval excludes zero (fewer points, or noise that
 * allows either sign, extrapolate nothing). */
#define MH_SLOPE_MIN_POINTS 8
int mh_slope_fit_significant(const struct mh_slope_fit *f);
/* The report's significance mark for something that grows (an endpoint's
 * retained bytes against its requests, a site's growth): enough points,
 * the slope's 95% interval lies above zero, and `size` (what the growth
 * amounts to) reaches `floor` (the report's noise floor), so neither a
 * steady trickle of a few bytes nor a large but noisy estimate counts. */
int mh_slope_growth_significant(const struct mh_slope_fit *f, double size,
                                double floor);
/* The rule itself, for an estimate whose 95% interval's lower end is `lo`
 * (a site's growth under sampling noise): lo > 0 and size >= floor. */
int mh_slope_mark(double lo, double size, double floor);

/* Seconds until the fitted line reaches `limit` from `current`
 * (current + slope * t = limit): 0 when it is there already, a negative
 * value when it does not grow (slope <= 0). */
double mh_slope_time_to(const struct mh_slope_fit *f, double current,
                        double limit);

#endif
