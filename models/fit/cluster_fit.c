/* K-means++ (Arthur & Vassilvitskii 2007) and Lloyd iterations, in double
 * accumulators. Host only; the distance sums run four at a time (each in
 * its own order) because `make eval` fits K-means per seed and method. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"
#include "trh_rand.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sqdist(const float *a, const float *b, uint32_t dim)
{
    double d = 0;
    for (uint32_t i = 0; i < dim; i++) {
        double t = (double)a[i] - b[i];
        d += t * t;
    }
    return d;
}

/* sqdist(a, b[j]) for four rows b[0..3] at once: four sums in flight rather
 * than one chain of dependent adds, each in sqdist's own order (the same
 * doubles to the bit). */
static void sqdist4(const float *a, const float *const b[4], uint32_t dim, double out[4])
{
    double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    for (uint32_t i = 0; i < dim; i++) {
        const double ai = a[i];
        const double t0 = ai - b[0][i], t1 = ai - b[1][i], t2 = ai - b[2][i], t3 = ai - b[3][i];
        d0 += t0 * t0;
        d1 += t1 * t1;
        d2 += t2 * t2;
        d3 += t3 * t3;
    }
    out[0] = d0, out[1] = d1, out[2] = d2, out[3] = d3;
}

/* d[i] = sqdist(x_i, c) for the n rows of x (four at a time). */
static void sqdist_rows(const float *x, size_t n, uint32_t dim, const float *c, double *d)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *const r[4] = {x + i * dim, x + (i + 1) * dim, x + (i + 2) * dim,
                                   x + (i + 3) * dim};
        /* sqdist(a, b) and sqdist(b, a) square the same differences up to
         * sign: the same doubles. */
        double o[4];
        sqdist4(c, r, dim, o);
        d[i] = o[0], d[i + 1] = o[1], d[i + 2] = o[2], d[i + 3] = o[3];
    }
    for (; i < n; i++)
        d[i] = sqdist(x + i * dim, c, dim);
}

/* The centres as doubles in groups of four, interleaved by dimension:
 * ct[(g * dim + d) * 4 + j] = cent[4g + j][d]; the last group's missing
 * lanes repeat its last centre (never chosen: see nearest). Rebuilt once
 * per Lloyd step, it lets the four sums of a group run side by side in
 * vector lanes, each still in d order. */
static void interleave_centres(const float *cent, uint32_t k, uint32_t dim, double *ct)
{
    for (uint32_t g = 0; g < (k + 3) / 4; g++)
        for (uint32_t d = 0; d < dim; d++)
            for (uint32_t j = 0; j < 4; j++) {
                const uint32_t c = 4 * g + j < k ? 4 * g + j : k - 1;
                ct[((size_t)g * dim + d) * 4 + j] = cent[(size_t)c * dim + d];
            }
}

/* The nearest of the k centres to a (the first of equals, as a loop over
 * c with a strict < finds it) and its squared distance: sqdist's sums to
 * the bit. */
static uint32_t nearest(const float *a, const double *ct, uint32_t k, uint32_t dim, double *bd_out)
{
    uint32_t best = 0;
    double bd = INFINITY;
    for (uint32_t g = 0; g < (k + 3) / 4; g++) {
        const double *cg = ct + (size_t)g * dim * 4;
        double s[4] = {0, 0, 0, 0};
        for (uint32_t d = 0; d < dim; d++) {
            const double ad = a[d];
            for (uint32_t j = 0; j < 4; j++) {
                const double t = ad - cg[(size_t)d * 4 + j];
                s[j] += t * t;
            }
        }
        for (uint32_t j = 0; j < 4 && 4 * g + j < k; j++)
            if (s[j] < bd) {
                bd = s[j];
                best = 4 * g + j;
            }
    }
    *bd_out = bd;
    return best;
}

double trh_kmeans_fit(const float *x, size_t n, uint32_t dim, uint32_t k,
                     uint64_t seed, int max_iter, float *cent, uint32_t *assign)
{
    return trh_kmeans_fit_cb(x, n, dim, k, seed, max_iter, cent, assign, NULL, NULL);
}

double trh_kmeans_fit_cb(const float *x, size_t n, uint32_t dim, uint32_t k,
                        uint64_t seed, int max_iter, float *cent, uint32_t *assign,
                        void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    const uint64_t steps = (uint64_t)k + (max_iter > 0 ? (uint64_t)max_iter : 0);
    double *d2 = malloc(n * sizeof *d2), *dc = malloc(n * sizeof *dc),
           *sum = malloc((size_t)k * dim * sizeof *sum),
           *ct = malloc(((size_t)k + 3) / 4 * 4 * dim * sizeof *ct);
    size_t *count = malloc(k * sizeof *count);
    if (!d2 || !dc || !sum || !ct || !count || n == 0 || k == 0 || k > n) {
        free(d2), free(dc), free(sum), free(ct), free(count);
        return -1;
    }
    uint64_t s = seed;
    /* Seeding: first centre uniform, then proportional to D(x)^2. */
    memcpy(cent, x + (trh_splitmix64(&s) % n) * dim, dim * sizeof *cent);
    sqdist_rows(x, n, dim, cent, d2);
    for (uint32_t c = 1; c < k; c++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += d2[i];
        double r = trh_unit_double(&s) * total;
        size_t pick = n - 1;
        for (size_t i = 0; i < n; i++) {
            r -= d2[i];
            if (r < 0) {
                pick = i;
                break;
            }
        }
        memcpy(cent + (size_t)c * dim, x + pick * dim, dim * sizeof *cent);
        sqdist_rows(x, n, dim, cent + (size_t)c * dim, dc);
        for (size_t i = 0; i < n; i++)
            if (dc[i] < d2[i])
                d2[i] = dc[i];
        if (progress)
            progress(ctx, c + 1, steps);
    }
    for (size_t i = 0; i < n; i++)
        assign[i] = UINT32_MAX;
    double inertia = 0;
    for (int it = 0; it < max_iter; it++) {
        size_t changed = 0;
        inertia = 0;
        interleave_centres(cent, k, dim, ct);
        for (size_t i = 0; i < n; i++) {
            double bd;
            const uint32_t best = nearest(x + i * dim, ct, k, dim, &bd);
            changed += assign[i] != best;
            assign[i] = best;
            d2[i] = bd;
            inertia += bd;
        }
        if (progress)
            progress(ctx, k + (uint64_t)it + 1, steps);
        if (!changed)
            break;
        memset(sum, 0, (size_t)k * dim * sizeof *sum);
        memset(count, 0, k * sizeof *count);
        for (size_t i = 0; i < n; i++) {
            count[assign[i]]++;
            for (uint32_t j = 0; j < dim; j++)
                sum[(size_t)assign[i] * dim + j] += x[i * dim + j];
        }
        for (uint32_t c = 0; c < k; c++) {
            if (count[c] == 0) {
                size_t far = 0;
                for (size_t i = 1; i < n; i++)
                    if (d2[i] > d2[far])
                        far = i;
                memcpy(cent + (size_t)c * dim, x + far * dim, dim * sizeof *cent);
                d2[far] = 0;
                continue;
            }
            for (uint32_t j = 0; j < dim; j++)
                cent[(size_t)c * dim + j] = (float)(sum[(size_t)c * dim + j] / (double)count[c]);
        }
    }
    free(d2);
    free(dc);
    free(ct);
    free(sum);
    free(count);
    return inertia;
}

size_t trh_kmeans_sample(size_t n, uint32_t k, uint32_t max_per_centroid, uint64_t seed, size_t *perm)
{
    size_t ns = (size_t)k * max_per_centroid;
    if (n <= ns || max_per_centroid == 0)
        return n;
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t s = seed;
    for (size_t i = 0; i < ns; i++) { /* partial Fisher-Yates */
        size_t j = i + (size_t)(trh_splitmix64(&s) % (n - i)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    return ns;
}

double trh_kmeans_fit_sampled(const float *x, size_t n, uint32_t dim, uint32_t k,
                             uint32_t max_per_centroid, uint64_t seed, int max_iter,
                             float *cent, uint32_t *assign, size_t *n_used,
                             void (*progress)(void *ctx, uint64_t done, uint64_t total),
                             void *ctx)
{
    size_t ns = (size_t)k * max_per_centroid;
    if (n <= ns || max_per_centroid == 0) {
        *n_used = n;
        return trh_kmeans_fit_cb(x, n, dim, k, seed, max_iter, cent, assign, progress, ctx);
    }
    size_t *perm = malloc(n * sizeof *perm);
    float *xs = malloc(ns * dim * sizeof *xs);
    if (!perm || !xs) {
        free(perm), free(xs);
        return -1;
    }
    trh_kmeans_sample(n, k, max_per_centroid, seed, perm);
    for (size_t i = 0; i < ns; i++)
        memcpy(xs + i * dim, x + perm[i] * dim, dim * sizeof *xs);
    free(perm);
    double r = trh_kmeans_fit_cb(xs, ns, dim, k, seed, max_iter, cent, assign, progress, ctx);
    free(xs);
    *n_used = ns;
    return r;
}

double trh_kmeans_assign_from(double inertia, const float *x, size_t n, uint32_t dim,
                             const float *cent, uint32_t k, uint32_t *assign,
                             void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    double *ct = malloc(((size_t)k + 3) / 4 * 4 * dim * sizeof *ct);
    if (!ct)
        return -1;
    interleave_centres(cent, k, dim, ct);
    for (size_t i = 0; i < n; i++) {
        double bd;
        assign[i] = nearest(x + i * dim, ct, k, dim, &bd);
        inertia += bd;
        if (progress && (i & 4095) == 0)
            progress(ctx, i, n);
    }
    free(ct);
    return inertia;
}

double trh_kmeans_assign(const float *x, size_t n, uint32_t dim, const float *cent,
                        uint32_t k, uint32_t *assign,
                        void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    return trh_kmeans_assign_from(0, x, n, dim, cent, k, assign, progress, ctx);
}

void trh_cluster_psi(const float *scores, size_t n, uint32_t n_models,
                    const uint32_t *assign, uint32_t k, double a, float *psi)
{
    double *sum = calloc((size_t)k * n_models, sizeof *sum), *all = calloc(n_models, sizeof *all);
    size_t *cnt = calloc((size_t)k * n_models, sizeof *cnt), *all_n = calloc(n_models, sizeof *all_n);
    for (size_t i = 0; i < n; i++)
        for (uint32_t m = 0; m < n_models; m++) {
            float v = scores[i * n_models + m];
            if (isnan(v))
                continue;
            sum[(size_t)assign[i] * n_models + m] += v;
            cnt[(size_t)assign[i] * n_models + m]++;
            all[m] += v;
            all_n[m]++;
        }
    for (uint32_t c = 0; c < k; c++)
        for (uint32_t m = 0; m < n_models; m++) {
            size_t j = (size_t)c * n_models + m;
            double overall = all_n[m] ? all[m] / (double)all_n[m] : 0;
            psi[j] = trh_psi_estimate(sum[j], (double)cnt[j], overall, a);
        }
    free(sum);
    free(all);
    free(cnt);
    free(all_n);
}
