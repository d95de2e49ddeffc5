/* make bench-kmeans: the build's K-means (trh_kmeans_fit_sampled +
 * trh_kmeans_assign, what `tinyroute build --clusters K` runs: k-means++ and
 * Lloyd on at most 256 rows per centroid, then every row assigned) against
 * faiss::Clustering with the same K, sample size and iteration cap, on the
 * same float rows, in the same run. Reports times, their ratio and the
 * inertia over all rows. No test asserts on any of it.
 * usage: bench_kmeans N [D K ITER]  (synthetic isotropic unit vectors) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "trh_fit.h"

double tr_bench_faiss_kmeans(const float *x, long n, int d, int k, int niter, int max_per_centroid,
                             int threads, float *centroids, double *train_ms, double *assign_ms);

static uint64_t rng = 88172645463325252ull;

static double gauss(void)
{
    /* Box-Muller on xorshift, as bench.c: fixed seed, same data every run. */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u1 = ((rng >> 11) + 1.0) / 9007199254740993.0;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u2 = (rng >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t last_step;
static void count_steps(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx, (void)total;
    last_step = done;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: bench_kmeans N [D K ITER]\n");
        return 2;
    }
    const size_t n = strtoull(argv[1], NULL, 10);
    const uint32_t dim = argc > 2 ? (uint32_t)atoi(argv[2]) : 100;
    const uint32_t k = argc > 3 ? (uint32_t)atoi(argv[3]) : 64;
    const int iter = argc > 4 ? atoi(argv[4]) : 100;
    const uint32_t per = 256;
    float *x = malloc(n * dim * sizeof *x), *cent = malloc((size_t)k * dim * sizeof *cent);
    float *fcent = malloc((size_t)k * dim * sizeof *fcent);
    uint32_t *assign = malloc(n * sizeof *assign);
    if (!x || !cent || !fcent || !assign)
        return fprintf(stderr, "out of memory\n"), 1;
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        float *v = x + i * dim;
        for (uint32_t d = 0; d < dim; d++) {
            v[d] = (float)gauss();
            ss += (double)v[d] * v[d];
        }
        for (uint32_t d = 0; d < dim; d++)
            v[d] /= (float)sqrt(ss);
    }
    size_t used;
    double t0 = now_ms();
    double fit = trh_kmeans_fit_sampled(x, n, dim, k, per, 1, iter, cent, assign, &used, count_steps, NULL);
    double t1 = now_ms();
    double ours = used == n ? fit : trh_kmeans_assign(x, n, dim, cent, k, assign, NULL, NULL);
    double t2 = now_ms();
    if (fit < 0)
        return fprintf(stderr, "k-means failed\n"), 1;
    const int ours_iter = (int)(last_step - k);
    double f1t, f1a, f2t, f2a;
    double faiss1 = tr_bench_faiss_kmeans(x, (long)n, (int)dim, (int)k, iter, (int)per, 1, fcent, &f1t, &f1a);
    double faiss2 = tr_bench_faiss_kmeans(x, (long)n, (int)dim, (int)k, iter, (int)per, 2, fcent, &f2t, &f2a);
    double ot = (t1 - t0) / 1e3, oa = (t2 - t1) / 1e3;
    printf("K-means, N=%zu D=%u K=%u, sample %zu rows (%u per centroid), at most %d iterations; "
           "synthetic isotropic unit vectors\n\n", n, dim, k, used, per, iter);
    printf("| K-means | threads | iterations | fit s | assign s | total s | x FAISS 2 threads | inertia (all rows) | x FAISS 2 threads |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    double f2 = (f2t + f2a) / 1e3;
    printf("| tinyroute (k-means++, Lloyd, double) | 1 | %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.4f |\n",
           ours_iter, ot, oa, ot + oa, (ot + oa) / f2, ours, ours / faiss2);
    printf("| FAISS Clustering + IndexFlatL2 | 1 | %d | %.2f | %.2f | %.2f | %.2f | %.1f | %.4f |\n",
           iter, f1t / 1e3, f1a / 1e3, (f1t + f1a) / 1e3, (f1t + f1a) / 1e3 / f2, faiss1, faiss1 / faiss2);
    printf("| FAISS Clustering + IndexFlatL2 | 2 | %d | %.2f | %.2f | %.2f | 1.00 | %.1f | 1.0000 |\n",
           iter, f2t / 1e3, f2a / 1e3, f2, faiss2);
    free(x), free(cent), free(fcent), free(assign);
    return 0;
}
