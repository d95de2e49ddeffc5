/* Host-side fitting for the built-in embedder: the principal component the
 * builder removes (Arora et al. 2017's SIF), and unit normalisation. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Power iteration: 200 steps of v <- A v / |A v|, A = X^T X, from a fixed
 * start. mul(ctx, v, w) sets w = A v. */
static void power_iterate(void (*mul)(const void *, const double *, double *), const void *ctx,
                          uint32_t dim, double *v, double *w)
{
    for (uint32_t d = 0; d < dim; d++)
        v[d] = 1.0 / sqrt((double)dim) * (d % 2 ? 1.0 : 0.5);
    for (int it = 0; it < 200; it++) {
        mul(ctx, v, w);
        double nrm = 0;
        for (uint32_t d = 0; d < dim; d++)
            nrm += w[d] * w[d];
        nrm = sqrt(nrm);
        for (uint32_t d = 0; d < dim; d++)
            v[d] = nrm > 0 ? w[d] / nrm : 0;
    }
}

typedef struct rows_ctx {
    const float *x;
    size_t n;
    uint32_t dim;
} rows_ctx;

/* w = X^T (X v), one pass over the rows. */
static void mul_rows(const void *ctx, const double *v, double *w)
{
    const rows_ctx *c = ctx;
    memset(w, 0, c->dim * sizeof *w);
    for (size_t i = 0; i < c->n; i++) {
        const float *r = c->x + i * c->dim;
        double t = 0;
        for (uint32_t d = 0; d < c->dim; d++)
            t += r[d] * v[d];
        for (uint32_t d = 0; d < c->dim; d++)
            w[d] += t * r[d];
    }
}

typedef struct gram_ctx {
    const double *g; /* dim x dim, upper triangle filled */
    uint32_t dim;
} gram_ctx;

/* w = G v, G symmetric, read from its upper triangle. */
static void mul_gram(const void *ctx, const double *v, double *w)
{
    const gram_ctx *c = ctx;
    const uint32_t dim = c->dim;
    for (uint32_t a = 0; a < dim; a++) {
        double t = 0;
        for (uint32_t b = 0; b < a; b++)
            t += c->g[(size_t)b * dim + a] * v[b];
        for (uint32_t b = a; b < dim; b++)
            t += c->g[(size_t)a * dim + b] * v[b];
        w[a] = t;
    }
}

/* Up to this dimension X^T X is formed once (n d^2 / 2 multiply-adds, d^2
 * doubles: 2 MB at 512) and the 200 steps run on it; past it, the steps
 * pass over the rows (2 n d each, 400 n d in all), which is cheaper beyond
 * d = 800 and needs no d^2 memory. At 1M x 100 the Gram form took the
 * build's principal component from 24 s to ~2 s (tests/bench/BUILD_SCALE.md). */
#define TRH_PC_GRAM_DIM_MAX 512u

int trh_first_pc(const float *x, size_t n, uint32_t dim, float *pc)
{
    const int gram = dim <= TRH_PC_GRAM_DIM_MAX;
    double *v = calloc(dim, sizeof *v), *w = calloc(dim, sizeof *w);
    double *g = gram ? calloc((size_t)dim * dim, sizeof *g) : NULL;
    if (!v || !w || (gram && !g)) {
        free(v), free(w), free(g);
        return -1;
    }
    if (gram) {
        /* Rows in order, each into the upper triangle: one summation order,
         * so the same bits on every machine. */
        for (size_t i = 0; i < n; i++) {
            const float *r = x + i * dim;
            for (uint32_t a = 0; a < dim; a++) {
                const double ra = r[a];
                double *ga = g + (size_t)a * dim;
                for (uint32_t b = a; b < dim; b++)
                    ga[b] += ra * r[b];
            }
        }
        const gram_ctx c = {g, dim};
        power_iterate(mul_gram, &c, dim, v, w);
    } else {
        const rows_ctx c = {x, n, dim};
        power_iterate(mul_rows, &c, dim, v, w);
    }
    for (uint32_t d = 0; d < dim; d++)
        pc[d] = (float)v[d];
    free(v), free(w), free(g);
    return 0;
}

void trh_normalize(float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t d = 0; d < dim; d++)
        s += (double)v[d] * v[d];
    if (s > 0)
        for (uint32_t d = 0; d < dim; d++)
            v[d] = (float)(v[d] / sqrt(s));
}

