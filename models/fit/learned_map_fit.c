#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TEMP 10.0     /* sharpness of the K-means start */
#define LR 0.05
#define CLIP 1e-6

/* z = softmax(theta x + b) over the k rows of theta (k x (dim + 1), bias last). */
static void softmax_of(const double *theta, const float *x, uint32_t dim, uint32_t k, double *z)
{
    double mx = -INFINITY, sum = 0;
    for (uint32_t c = 0; c < k; c++) {
        const double *t = theta + (size_t)c * (dim + 1);
        double s = t[dim];
        for (uint32_t d = 0; d < dim; d++)
            s += t[d] * x[d];
        z[c] = s;
        mx = fmax(mx, s);
    }
    for (uint32_t c = 0; c < k; c++)
        sum += (z[c] = exp(z[c] - mx));
    for (uint32_t c = 0; c < k; c++)
        z[c] /= sum;
}

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

/* Mean log loss, and its gradient into grad when not NULL. */
static double loss(const float *x, size_t n, uint32_t dim, const float *err, uint32_t nm,
                   const float *psi, uint32_t k, const double *theta, double *grad, double *z,
                   double *gam)
{
    const uint32_t w = dim + 1;
    double total = 0;
    size_t count = 0;
    if (grad)
        memset(grad, 0, sizeof(double) * k * w);
    for (size_t i = 0; i < n; i++)
        for (uint32_t m = 0; m < nm; m++)
            count += !isnan(err[i * nm + m]);
    if (!count)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        softmax_of(theta, xi, dim, k, z);
        for (uint32_t m = 0; m < nm; m++) {
            double g = 0;
            for (uint32_t c = 0; c < k; c++)
                g += z[c] * psi[(size_t)c * nm + m];
            gam[m] = fmin(fmax(g, CLIP), 1 - CLIP);
            double e = err[i * nm + m];
            if (!isnan(e))
                total -= e * log(gam[m]) + (1 - e) * log(1 - gam[m]);
        }
        if (!grad)
            continue;
        for (uint32_t c = 0; c < k; c++) {
            double ds = 0;
            for (uint32_t m = 0; m < nm; m++) {
                double e = err[i * nm + m];
                if (isnan(e))
                    continue;
                double dg = (gam[m] - e) / (gam[m] * (1 - gam[m]));
                ds += dg * z[c] * (psi[(size_t)c * nm + m] - gam[m]);
            }
            ds /= (double)count;
            double *gr = grad + (size_t)c * w;
            for (uint32_t d = 0; d < dim; d++)
                gr[d] += ds * xi[d];
            gr[dim] += ds;
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
           *m2 = calloc(np, sizeof *m2), *z = calloc(k, sizeof *z), *gam = calloc(nm, sizeof *gam);
    if (!th || !g || !m1 || !m2 || !z || !gam) {
        free(th), free(g), free(m1), free(m2), free(z), free(gam);
        return -1;
    }
    start_at_centroids(cent, k, dim, th);
    *initial = loss(x, n, dim, err, nm, psi, k, th, NULL, z, gam);
    for (int it = 1; it <= iters; it++) {
        loss(x, n, dim, err, nm, psi, k, th, g, z, gam);
        adam_step(th, g, m1, m2, np, it);
    }
    double final = loss(x, n, dim, err, nm, psi, k, th, NULL, z, gam);
    for (size_t j = 0; j < np; j++)
        theta_out[j] = (float)th[j];
    free(th), free(g), free(m1), free(m2), free(z), free(gam);
    return final;
}

/* Softmax regression objective, and its gradient into grad. */
static double task_loss(const float *x, size_t n, uint32_t dim, const uint32_t *task, uint32_t k,
                        double l2, const double *theta, double *grad, double *z)
{
    const uint32_t w = dim + 1;
    double total = 0;
    memset(grad, 0, sizeof(double) * k * w);
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        softmax_of(theta, xi, dim, k, z);
        total -= log(fmax(z[task[i]], 1e-300));
        for (uint32_t c = 0; c < k; c++) {
            double ds = (z[c] - (c == task[i])) / (double)n;
            double *gr = grad + (size_t)c * w;
            for (uint32_t d = 0; d < dim; d++)
                gr[d] += ds * xi[d];
            gr[dim] += ds;
        }
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
           *m2 = calloc(np, sizeof *m2), *z = calloc(k, sizeof *z);
    double obj = -1;
    if (!th || !g || !m1 || !m2 || !z || !n)
        goto out;
    start_at_centroids(cent, k, dim, th);
    for (int it = 1; it <= iters; it++) {
        task_loss(x, n, dim, task, k, l2, th, g, z);
        adam_step(th, g, m1, m2, np, it);
    }
    obj = task_loss(x, n, dim, task, k, l2, th, g, z);
    for (size_t j = 0; j < np; j++)
        theta_out[j] = (float)th[j];
out:
    free(th), free(g), free(m1), free(m2), free(z);
    return obj;
}
