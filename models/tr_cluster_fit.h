/* Host-side fitting of cluster routing (linked into the CLI, never into the
 * device library): K-means++ and the per-cluster error vectors Psi. */
#ifndef TR_CLUSTER_FIT_H
#define TR_CLUSTER_FIT_H

#include <stddef.h>
#include <stdint.h>

/* Euclidean K-means on n rows of x (dim floats each) with k-means++ seeding
 * from a fixed seed; Lloyd iterations until no assignment changes or
 * max_iter. Writes k x dim centroids and each row's cluster; returns the
 * inertia (sum of squared distances). An empty cluster is re-seeded with
 * the row farthest from its centroid. */
double tr_kmeans_fit(const float *x, size_t n, uint32_t dim, uint32_t k,
                     uint64_t seed, int max_iter, float *centroids, uint32_t *assign);

/* The same, calling progress(ctx, done, k + max_iter) after each seeded
 * centre (done = 1..k) and each Lloyd iteration (done = k + it), so a long
 * fit can show an ETA (an upper bound: Lloyd may stop early). */
double tr_kmeans_fit_cb(const float *x, size_t n, uint32_t dim, uint32_t k,
                        uint64_t seed, int max_iter, float *centroids, uint32_t *assign,
                        void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* K-means as `tinyroute build` runs it at scale (FAISS's recipe): fit on at
 * most max_per_centroid * k rows -- all of them when n is no larger, else a
 * uniform sample drawn with splitmix64 from `seed` (the same on every
 * machine) -- with tr_kmeans_fit_cb(seed, max_iter). Writes the centroids;
 * assign (n entries) receives the fit's assignment of the rows it used;
 * *n_used: how many (n: no sample, assign covers every row). Returns the
 * inertia over those rows, < 0 on failure. progress as tr_kmeans_fit_cb. */
double tr_kmeans_fit_sampled(const float *x, size_t n, uint32_t dim, uint32_t k,
                             uint32_t max_per_centroid, uint64_t seed, int max_iter,
                             float *centroids, uint32_t *assign, size_t *n_used,
                             void (*progress)(void *ctx, uint64_t done, uint64_t total),
                             void *ctx);

/* Every row to its nearest centroid (squared Euclidean, the lower index on
 * ties); returns the inertia over the n rows. progress(ctx, done, n) every
 * 4096 rows. */
double tr_kmeans_assign(const float *x, size_t n, uint32_t dim, const float *centroids,
                        uint32_t k, uint32_t *assign,
                        void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* tr_kmeans_fit_sampled's sample, for a caller that makes the rows itself
 * rather than holding all n (tinyroute build re-embeds them): returns how
 * many rows the fit uses; when fewer than n, they are perm[0..ns) in the
 * order the fit sees them (perm: room for n entries), else every row in
 * order and perm is untouched. */
size_t tr_kmeans_sample(size_t n, uint32_t k, uint32_t max_per_centroid, uint64_t seed,
                        size_t *perm);

/* tr_kmeans_assign over rows given in blocks: adds each row's squared
 * distance to inertia in row order, so blocks in order sum exactly as one
 * call over all of them; returns the new total. */
double tr_kmeans_assign_from(double inertia, const float *x, size_t n, uint32_t dim,
                             const float *centroids, uint32_t k, uint32_t *assign,
                             void (*progress)(void *ctx, uint64_t done, uint64_t total),
                             void *ctx);

/* A cluster's error rate is shrunk toward the model's overall error as if the
 * cluster held a more prompts at that rate (a Beta prior of strength a, the
 * same beta-binomial estimate as kNN's: 1 - (hits + a * prior) / (n + a)).
 * Why: a model added from a small validation set has a handful of labelled
 * prompts per cluster, and a raw mean over five prompts routes on noise; with
 * hundreds per cluster (a base pack's references) the prior hardly moves Psi.
 * A cluster without labels gets exactly the overall error, a = 0 too (where
 * the raw mean would be 0/0). sum: the cluster's scores, cnt: how
 * many, overall_acc: the model's mean score. Packs written before the
 * strength was chosen (the clusters header's psi_prior field 0) used a = 10. */
static inline float tr_psi_estimate(double sum, double cnt, double overall_acc, double a)
{
    if (cnt <= 0)
        return (float)(1.0 - overall_acc);
    return (float)(1.0 - (sum + a * overall_acc) / (cnt + a));
}

/* psi[c][m] = tr_psi_estimate (strength a) of model m's known scores over the
 * rows in cluster c, toward m's mean over all n rows. scores: n x n_models,
 * NaN unknown. */
void tr_cluster_psi(const float *scores, size_t n, uint32_t n_models,
                    const uint32_t *assign, uint32_t k, double a, float *psi);

#endif
