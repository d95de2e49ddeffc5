#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TEMP 10.0     /* sharpness of the K-means start */
#define LR 0.05
#define CLIP 1e-6

/* The logit theta_c x + b_c of row c, summed in d order (as every fit
 * before this one did: the results are the same to the bit). */
static double logit(const double *t, const double *x, uint32_t dim)
{
    double s = t[dim];
    for (uint32_t d = 0; d < dim; d++)
        s += t[d] * x[d];
    return s;
}

/* z = softmax(theta x + b) over the k rows of theta (k x (dim + 1), bias last).
 * Four rows at a time: four independent sums in flight instead of one
 * chain of dependent adds (each sum keeps its own d order). Not inlined
 * into the losses' AVX2 clones: there GCC 12 turns the four chains into
 * shuffles of partial products, slower than these. */
__attribute__((noinline)) static void softmax_of(const double *theta, const double *x,
                                                 uint32_t dim, uint32_t k, double *z)
{
    const size_t w = (size_t)dim + 1;
    uint32_t c = 0;
    for (; c + 4 <= k; c += 4) {
        const double *t0 = theta + c * w, *t1 = t0 + w, *t2 = t1 + w, *t3 = t2 + w;
        double s0 = t0[dim], s1 = t1[dim], s2 = t2[dim], s3 = t3[dim];
        for (uint32_t d = 0; d < dim; d++) {
            const double xd = x[d];
            s0 += t0[d] * xd;
            s1 += t1[d] * xd;
            s2 += t2[d] * xd;
            s3 += t3[d] * xd;
        }
        z[c] = s0, z[c + 1] = s1, z[c + 2] = s2, z[c + 3] = s3;
    }
    for (; c < k; c++)
        z[c] = logit(theta + c * w, x, dim);
    double mx = -INFINITY, sum = 0;
    for (c = 0; c < k; c++)
        mx = fmax(mx, z[c]);
    for (c = 0; c < k; c++)
        sum += (z[c] = exp(z[c] - mx));
    for (c = 0; c < k; c++)
        z[c] /= sum;
}

/* A sample's features as doubles, converted once (a float widens to a
 * double exactly: the products below are the ones the float operands gave). */
static void to_double(const float *x, uint32_t dim, double *xd)
{
    for (uint32_t d = 0; d < dim; d++)
        xd[d] = x[d];
}

/* grad_c += ds * x (x's dim values, then the bias); element-wise, so it
 * vectorizes. */
static void add_scaled(double *gr, double ds, const double *x, uint32_t dim)
{
    for (uint32_t d = 0; d < dim; d++)
        gr[d] += ds * x[d];
    gr[dim] += ds;
}

/* Per-sample work buffers of the two losses. */
typedef struct fit_scratch {
    double *z;   /* k: the softmax */
    double *gam; /* nm: the mixture's error estimate */
    double *dg;  /* nm: d loss / d gam */
    double *xd;  /* dim: the sample as doubles */
} fit_scratch;

static int scratch_make(fit_scratch *f, uint32_t k, uint32_t nm, uint32_t dim)
{
    f->z = calloc(k, sizeof *f->z);
    f->gam = calloc(nm ? nm : 1, sizeof *f->gam);
    f->dg = calloc(nm ? nm : 1, sizeof *f->dg);
    f->xd = calloc(dim ? dim : 1, sizeof *f->xd);
    return f->z && f->gam && f->dg && f->xd ? 0 : -1;
}

static void scratch_free(fit_scratch *f) { free(f->z), free(f->gam), free(f->dg), free(f->xd); }

/* A soft nearest centroid to start from: theta_c = TEMP c, b_c = -TEMP ||c||^2 / 2. */
static void start_at_centroids(const float *cent, uint32_t k, uint32_t dim, double *th)
{
    for (uint32_t c = 0; c < k; c++) {
        double sq = 0;
        for (uint32_t d = 0; d < dim; d++) {
            th[(size_t)c * (dim + 1) + d] = TEMP * cent[(size_t)c * dim + d];
            sq += (double)cent[(size_t)c * dim + d] * cent[(size_t)c * dim + d];
        }
        th[(size_t)c * (dim + 1) + dim] = -TEMP * sq / 2;
    }
}

/* One Adam step (iteration it, from 1) of th against its gradient g. */
static void adam_step(double *th, const double *g, double *m1, double *m2, size_t np, int it)
{
    double b1 = 1 - pow(0.9, it), b2 = 1 - pow(0.999, it);
    for (size_t j = 0; j < np; j++) {
        m1[j] = 0.9 * m1[j] + 0.1 * g[j];
        m2[j] = 0.999 * m2[j] + 0.001 * g[j] * g[j];
        th[j] -= LR * (m1[j] / b1) / (sqrt(m2[j] / b2) + 1e-8);
    }
}

/* Mean log loss, and its gradient into grad when not NULL. The sums run in
 * the order they always did (each over c or m ascending); only independent
 * sums are interleaved and loop-invariant terms hoisted, so the fit is the
 * same to the bit. */
TRH_AVX2_CLONE
static double loss(const float *x, size_t n, uint32_t dim, const float *err, uint32_t nm,
                   const float *psi, uint32_t k, const double *theta, double *grad, fit_scratch *f)
{
    const uint32_t w = dim + 1;
    double total = 0, *z = f->z, *gam = f->gam, *dg = f->dg, *xd = f->xd;
    size_t count = 0;
    if (grad)
        memset(grad, 0, sizeof(double) * k * w);
    for (size_t i = 0; i < n; i++)
        for (uint32_t m = 0; m < nm; m++)
            count += !isnan(err[i * nm + m]);
    if (!count)
        return 0;
    for (size_t i = 0; i < n; i++) {
        to_double(x + i * dim, dim, xd);
        softmax_of(theta, xd, dim, k, z);
        /* gam_m = sum_c z_c psi_cm, every m's sum in c order. */
        for (uint32_t m = 0; m < nm; m++)
            gam[m] = 0;
        for (uint32_t c = 0; c < k; c++)
            for (uint32_t m = 0; m < nm; m++)
                gam[m] += z[c] * psi[(size_t)c * nm + m];
        for (uint32_t m = 0; m < nm; m++) {
            gam[m] = fmin(fmax(gam[m], CLIP), 1 - CLIP);
            double e = err[i * nm + m];
            if (isnan(e))
                continue;
            total -= e * log(gam[m]) + (1 - e) * log(1 - gam[m]);
            if (grad)
                dg[m] = (gam[m] - e) / (gam[m] * (1 - gam[m]));
        }
        if (!grad)
            continue;
        for (uint32_t c = 0; c < k; c++) {
            double ds = 0;
            for (uint32_t m = 0; m < nm; m++) {
                if (isnan(err[i * nm + m]))
                    continue;
                ds += dg[m] * z[c] * (psi[(size_t)c * nm + m] - gam[m]);
            }
            ds /= (double)count;
            add_scaled(grad + (size_t)c * w, ds, xd, dim);
        }
    }
    return total / (double)count;
}

double trh_learned_map_fit(const float *x, size_t n, uint32_t dim, const float *err,
                          uint32_t nm, const float *psi, const float *cent, uint32_t k, int iters,
                          float *theta_out, double *initial)
{
    const size_t np = (size_t)k * (dim + 1);
    double *th = calloc(np, sizeof *th), *g = calloc(np, sizeof *g), *m1 = calloc(np, sizeof *m1),
           *m2 = calloc(np, sizeof *m2);
    fit_scratch f;
    if (scratch_make(&f, k, nm, dim) != 0 || !th || !g || !m1 || !m2) {
        free(th), free(g), free(m1), free(m2), scratch_free(&f);
        return -1;
    }
    start_at_centroids(cent, k, dim, th);
    *initial = loss(x, n, dim, err, nm, psi, k, th, NULL, &f);
    for (int it = 1; it <= iters; it++) {
        loss(x, n, dim, err, nm, psi, k, th, g, &f);
        adam_step(th, g, m1, m2, np, it);
    }
    double final = loss(x, n, dim, err, nm, psi, k, th, NULL, &f);
    for (size_t j = 0; j < np; j++)
        theta_out[j] = (float)th[j];
    free(th), free(g), free(m1), free(m2), scratch_free(&f);
    return final;
}

/* Softmax regression objective, and its gradient into grad. */
TRH_AVX2_CLONE
static double task_loss(const float *x, size_t n, uint32_t dim, const uint32_t *task, uint32_t k,
                        double l2, const double *theta, double *grad, fit_scratch *f)
{
    const uint32_t w = dim + 1;
    double total = 0, *z = f->z, *xd = f->xd;
    memset(grad, 0, sizeof(double) * k * w);
    for (size_t i = 0; i < n; i++) {
        to_double(x + i * dim, dim, xd);
        softmax_of(theta, xd, dim, k, z);
        total -= log(fmax(z[task[i]], 1e-300));
        for (uint32_t c = 0; c < k; c++)
            add_scaled(grad + (size_t)c * w, (z[c] - (c == task[i])) / (double)n, xd, dim);
    }
    double reg = 0;
    for (uint32_t c = 0; c < k; c++)
        for (uint32_t d = 0; d < dim; d++) {
            double t = theta[(size_t)c * w + d];
            reg += t * t;
            grad[(size_t)c * w + d] += 2 * l2 * t;
        }
    return total / (double)n + l2 * reg;
}

double trh_task_map_fit(const float *x, size_t n, uint32_t dim, const uint32_t *task,
                       const float *cent, uint32_t k, double l2, int iters, float *theta_out)
{
    const size_t np = (size_t)k * (dim + 1);
    double *th = calloc(np, sizeof *th), *g = calloc(np, sizeof *g), *m1 = calloc(np, sizeof *m1),
           *m2 = calloc(np, sizeof *m2);
    fit_scratch f;
    double obj = -1;
    if (scratch_make(&f, k, 0, dim) != 0 || !th || !g || !m1 || !m2 || !n)
        goto out;
    start_at_centroids(cent, k, dim, th);
    for (int it = 1; it <= iters; it++) {
        task_loss(x, n, dim, task, k, l2, th, g, &f);
        adam_step(th, g, m1, m2, np, it);
    }
    obj = task_loss(x, n, dim, task, k, l2, th, g, &f);
    for (size_t j = 0; j < np; j++)
        theta_out[j] = (float)th[j];
out:
    free(th), free(g), free(m1), free(m2), scratch_free(&f);
    return obj;
}
