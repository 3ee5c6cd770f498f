/* Least-squares growth slope (slope.h). Sums are taken around the means,
 * so large times (seconds since boot) and values (bytes) lose nothing to
 * cancellation. */
#include <math.h>
#include <string.h>

#include "slope.h"

void
mh_slope_init(struct mh_slope *s, double window)
{
    memset(s, 0, sizeof(*s));
    s->window = window > 0 ? window : 0;
}

void
mh_slope_add(struct mh_slope *s, double t, double v)
{
    if (s->n && t < s->t[(s->first + s->n - 1) % MH_SLOPE_CAP])
        s->n = 0;
    if (s->n == MH_SLOPE_CAP) {
        s->first = (s->first + 1) % MH_SLOPE_CAP;
        s->n--;
    }
    size_t i = (s->first + s->n) % MH_SLOPE_CAP;
    s->t[i] = t;
    s->v[i] = v;
    s->n++;
    if (s->window > 0)
        while (s->n > 1 && s->t[s->first] < t - s->window) {
            s->first = (s->first + 1) % MH_SLOPE_CAP;
            s->n--;
        }
}

int
mh_slope_fit(const struct mh_slope *s, struct mh_slope_fit *f)
{
    memset(f, 0, sizeof(*f));
    if (s->n < 3)
        return MH_EINVAL;
    double mt = 0, mv = 0;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (s->first + k) % MH_SLOPE_CAP;
        mt += s->t[i];
        mv += s->v[i];
    }
    mt /= (double)s->n;
    mv /= (double)s->n;
    double sxx = 0, sxy = 0, syy = 0;
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (s->first + k) % MH_SLOPE_CAP;
        double dt = s->t[i] - mt, dv = s->v[i] - mv;
        sxx += dt * dt;
        sxy += dt * dv;
        syy += dv * dv;
    }
    size_t newest = (s->first + s->n - 1) % MH_SLOPE_CAP;
    f->span = s->t[newest] - s->t[s->first];
    f->n = s->n;
    if (sxx <= 0 || f->span <= 0)
        return MH_EINVAL;
    f->slope = sxy / sxx;
    f->r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1.0;
    if (f->r2 > 1)
        f->r2 = 1;
    f->last = mv + f->slope * (s->t[newest] - mt);
    double ssr = syy - f->slope * sxy;
    f->sd = s->n > 2 && ssr > 0 ? sqrt(ssr / (double)(s->n - 2)) : 0;
    f->se = f->sd / sqrt(sxx);
    return MH_OK;
}

double
mh_slope_t95(size_t df)
{
    static const double t[] = {
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262,
        2.228,  2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
        2.093,  2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052,
        2.048,  2.045, 2.042};
    if (df < 1)
        df = 1;
    if (df <= sizeof(t) / sizeof(t[0]))
        return t[df - 1];
    return df <= 60 ? 2.021 : df <= 120 ? 2.000 : 1.960;
}

int
mh_slope_fit_significant(const struct mh_slope_fit *f)
{
    if (f->n < MH_SLOPE_MIN_POINTS)
        return 0;
    return fabs(f->slope) > mh_slope_t95(f->n - 2) * f->se;
}

double
mh_slope_time_to(const struct mh_slope_fit *f, double current, double limit)
{
    if (current >= limit)
        return 0;
    if (!(f->slope > 0))
        return -1;
    return (limit - current) / f->slope;
}

void
mh_slope_sums_add(struct mh_slope_sums *s, double x, double y)
{
    s->n += 1;
    double dx = x - s->mx, dy = y - s->my;
    s->mx += dx / s->n;
    s->my += dy / s->n;
    /* The deviation from the old mean times that from the new one. */
    s->sxx += dx * (x - s->mx);
    s->sxy += dx * (y - s->my);
    s->syy += dy * (y - s->my);
}

void
mh_slope_sums_pool(struct mh_slope_sums *a, const struct mh_slope_sums *b)
{
    a->n += b->n;
    a->sxx += b->sxx;
    a->sxy += b->sxy;
    a->syy += b->syy;
    a->mx = a->my = 0;
}

int
mh_slope_sums_fit(const struct mh_slope_sums *s, double *slope, double *r2)
{
    struct mh_slope_fit f;
    int rc = mh_slope_sums_fit_full(s, &f);
    *slope = f.slope;
    *r2 = f.r2;
    return rc;
}

int
mh_slope_sums_fit_full(const struct mh_slope_sums *s, struct mh_slope_fit *f)
{
    memset(f, 0, sizeof(*f));
    f->n = s->n > 0 ? (size_t)s->n : 0;
    if (s->n < 3 || !(s->sxx > 0))
        return MH_EINVAL;
    f->slope = s->sxy / s->sxx;
    f->r2 = s->syy > 0 ? (s->sxy * s->sxy) / (s->sxx * s->syy) : 1.0;
    if (f->r2 > 1)
        f->r2 = 1;
    double ssr = s->syy - f->slope * s->sxy;
    f->sd = ssr > 0 ? sqrt(ssr / (s->n - 2)) : 0;
    f->se = f->sd / sqrt(s->sxx);
    return MH_OK;
}

int
mh_slope_growth_significant(const struct mh_slope_fit *f, double size,
                            double floor)
{
    if (f->n < MH_SLOPE_MIN_POINTS)
        return 0;
    return mh_slope_mark(f->slope - mh_slope_t95(f->n - 2) * f->se, size,
                         floor);
}

int
mh_slope_mark(double lo, double size, double floor)
{
    return lo > 0 && size >= floor;
}
