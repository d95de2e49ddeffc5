/*
 * Host-side fitting: everything `build`, `eval` and the other host tools fit
 * offline and the device only reads (K-means, the learned map, the S3 table,
 * embedder tables). Linked into the CLI and host tests, never into the device
 * library, so it may allocate; it sits in its own folder, models/fit/, as
 * zstd keeps its dictionary builder apart, and this is its one header.
 */
#ifndef TRH_FIT_H
#define TRH_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "tr_knn.h"

/* The softmax losses' gradient loops are also compiled for AVX2 on x86-64
 * and picked at run time: four doubles per instruction, the same
 * operations on each element (no FMA is formed: -ffp-contract=off; no sum
 * is reordered), so a fit gives the same bits on any machine. (K-means and
 * the logits' four-at-a-time sums were slower as AVX2 clones: GCC 12 turns
 * the independent sums into shuffles.) */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TRH_NO_CLONES /* clang -fsanitize=thread */
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TRH_NO_CLONES /* gcc -fsanitize=thread */
#endif
/* Not under ThreadSanitizer: the clones' resolver runs while the program
 * is relocated, before TSan's runtime, and its instrumented code crashes
 * there (test_threads segfaulted in _dl_relocate_object). */
#if defined(__x86_64__) && defined(__has_attribute) && !defined(TRH_NO_CLONES)
#if __has_attribute(target_clones)
#define TRH_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef TRH_AVX2_CLONE
#define TRH_AVX2_CLONE
#endif

/* ---- K-means and the per-cluster error vectors Psi (cluster routing) ---- */
/* Host-side fitting of cluster routing (linked into the CLI, never into the
 * device library): K-means++ and the per-cluster error vectors Psi. */
/* Euclidean K-means on n rows of x (dim floats each) with k-means++ seeding
 * from a fixed seed; Lloyd iterations until no assignment changes or
 * max_iter. Writes k x dim centroids and each row's cluster; returns the
 * inertia (sum of squared distances). An empty cluster is re-seeded with
 * the row farthest from its centroid. */
double trh_kmeans_fit(const float *x, size_t n, uint32_t dim, uint32_t k,
                     uint64_t seed, int max_iter, float *centroids, uint32_t *assign);

/* The same, calling progress(ctx, done, k + max_iter) after each seeded
 * centre (done = 1..k) and each Lloyd iteration (done = k + it), so a long
 * fit can show an ETA (an upper bound: Lloyd may stop early). */
double trh_kmeans_fit_cb(const float *x, size_t n, uint32_t dim, uint32_t k,
                        uint64_t seed, int max_iter, float *centroids, uint32_t *assign,
                        void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* K-means as `tinyroute build` runs it at scale (FAISS's recipe): fit on at
 * most max_per_centroid * k rows -- all of them when n is no larger, else a
 * uniform sample drawn with splitmix64 from `seed` (the same on every
 * machine) -- with trh_kmeans_fit_cb(seed, max_iter). Writes the centroids;
 * assign (n entries) receives the fit's assignment of the rows it used;
 * *n_used: how many (n: no sample, assign covers every row). Returns the
 * inertia over those rows, < 0 on failure. progress as trh_kmeans_fit_cb. */
double trh_kmeans_fit_sampled(const float *x, size_t n, uint32_t dim, uint32_t k,
                             uint32_t max_per_centroid, uint64_t seed, int max_iter,
                             float *centroids, uint32_t *assign, size_t *n_used,
                             void (*progress)(void *ctx, uint64_t done, uint64_t total),
                             void *ctx);

/* Every row to its nearest centroid (squared Euclidean, the lower index on
 * ties; the same sums as the Lloyd steps of trh_kmeans_fit); returns the
 * inertia over the n rows, < 0 when out of memory. progress(ctx, done, n)
 * every 4096 rows. */
double trh_kmeans_assign(const float *x, size_t n, uint32_t dim, const float *centroids,
                        uint32_t k, uint32_t *assign,
                        void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* trh_kmeans_fit_sampled's sample, for a caller that makes the rows itself
 * rather than holding all n (tinyroute build re-embeds them): returns how
 * many rows the fit uses; when fewer than n, they are perm[0..ns) in the
 * order the fit sees them (perm: room for n entries), else every row in
 * order and perm is untouched. */
size_t trh_kmeans_sample(size_t n, uint32_t k, uint32_t max_per_centroid, uint64_t seed,
                        size_t *perm);

/* trh_kmeans_assign over rows given in blocks: adds each row's squared
 * distance to inertia in row order, so blocks in order sum exactly as one
 * call over all of them; returns the new total, < 0 when out of memory
 * (stop there: a later block's sum would hide it). */
double trh_kmeans_assign_from(double inertia, const float *x, size_t n, uint32_t dim,
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
static inline float trh_psi_estimate(double sum, double cnt, double overall_acc, double a)
{
    if (cnt <= 0)
        return (float)(1.0 - overall_acc);
    return (float)(1.0 - (sum + a * overall_acc) / (cnt + a));
}

/* psi[c][m] = trh_psi_estimate (strength a) of model m's known scores over the
 * rows in cluster c, toward m's mean over all n rows. scores: n x n_models,
 * NaN unknown. */
void trh_cluster_psi(const float *scores, size_t n, uint32_t n_models,
                    const uint32_t *assign, uint32_t k, double a, float *psi);

/* ---- the learned soft cluster map (Jitkrittum et al. 2025, section 4.3 and C.1) and the task map ---- */
/* Host-side training of the learned cluster map (Jitkrittum et al. 2025,
 * section 4.3 and C.1). Host only. */
/* theta (k x (dim + 1), bias last) minimizing the log loss
 *   -sum_{i,m} e_im log g_im + (1 - e_im) log(1 - g_im),
 *   g_im = sum_k softmax(theta x_i)_k psi[k][m]
 * over the known error targets e (n x n_models, 1 - score, NaN unknown),
 * psi fixed. Full-batch Adam from the K-means solution (theta_k = t c_k,
 * b_k = -t ||c_k||^2 / 2: a soft nearest centroid). x: n unit rows.
 * Returns the final mean loss (and the initial one in *initial), or -1 when
 * out of memory. */
double trh_learned_map_fit(const float *x, size_t n, uint32_t dim, const float *err,
                          uint32_t n_models, const float *psi, const float *centroids,
                          uint32_t k, int iters, float *theta, double *initial);

/* The task map: the learned map's theta (k x (dim + 1), bias last) as a
 * softmax regression of the n unit rows x onto their labels (task[i] in
 * 0..k-1), the data's own tasks standing in for the clusters: most of what
 * a router can know of a prompt is which task it belongs to (a router told
 * the true task is the best one short of the oracle). Mean cross-entropy +
 * l2 * ||theta without the biases||^2, full-batch Adam from the task means
 * (as trh_learned_map_fit starts from the centroids). centroids: k x dim,
 * the mean row of each task. Returns the final objective, or -1 when out of
 * memory. */
double trh_task_map_fit(const float *x, size_t n, uint32_t dim, const uint32_t *task,
                       const float *centroids, uint32_t k, double l2, int iters, float *theta);

/* ---- the S3 table (Shnitzer et al. 2023) ---- */
/* Host-side fitting of the S3 table (Shnitzer et al. 2023): leave one
 * benchmark task out at a time, predict its prompts from the references of
 * the other tasks, and record how far the task lies from them (u) and how
 * often the predictor was right about each model (acc). Host only. */
/* refs: the pack's references; task_of[i] < n_tasks; scores n x n_models
 * (NaN unknown). k: predictor neighbours; k_dist: neighbours behind u.
 * A model's prediction on a prompt counts as right when (g > 0.5) equals
 * (score >= 0.5). Writes u[n_tasks] and acc[n_tasks][n_models]; a task
 * without a known score for a model gets acc 0.5 (no information).
 *
 * Queries: max_queries_per_task = 0 uses every reference of a task as a
 * query (cost: n queries x n references). Otherwise a task with more
 * references uses a uniform sample of that many, drawn with a fixed seed
 * (the same table on every machine); the references searched stay all of
 * the other tasks' references. A sample suffices because u and acc are
 * per-task means over the task's prompts: with Q sampled prompts each
 * acc entry (a proportion) has a standard error of at most 0.5/sqrt(Q)
 * (0.022 at Q = 512), and u, a mean of per-prompt distances, sd/sqrt(Q);
 * the device only uses them through a kernel smoother over tasks.
 *
 * Neighbours are the k (k_dist) most similar references, ties broken by
 * the lower index, kept in a bounded heap (no full sort). With every query
 * the result is that of sorting all candidates. Returns 0, or -1 when out
 * of memory. */
int trh_task_fit(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc);

/* The same, calling progress(ctx, done, total) after each batch of queries
 * (total: the number of queries), so a long fit can show an ETA.
 * The batches are searched by TR_THREADS threads (unset: one per online
 * CPU, at most 16; 1: no thread), the same table to the bit. */
int trh_task_fit_cb(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                   uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                   uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* Threads for the host fits that split into independent parts (the S3
 * table's query batches, build's cross-validation folds): TR_THREADS if
 * set (1: none), else the online CPUs, at most TRH_FIT_WORKERS_MAX. Every
 * such fit gives the same bits with any count. */
#define TRH_FIT_WORKERS_MAX 16u
uint32_t trh_fit_workers(void);

/* Leave-one-task-out tables (tinyroute eval --tasks) without a search over
 * everything per held-out task: every prompt's list_len nearest prompts of
 * other tasks, best first, found once; the table without task t then reads
 * each query's list with task t's rows skipped, which is the start of the
 * list a search without them gives (removing rows keeps the order of the
 * rest, and indices keep their order when renumbered). A query whose list
 * holds too few rows of the tasks left (all cut at list_len were task t's)
 * is searched again. The results are trh_task_fit's to the bit.
 * Memory: n x list_len neighbours. */
typedef struct trh_task_loto {
    uint32_t n, list_len;
    tr_neighbor *nb;   /* n x list_len, best first */
    uint32_t *len;     /* n: entries held (< list_len: every candidate) */
} trh_task_loto;
/* Searched by TR_THREADS threads, as trh_task_fit_cb. */
int trh_task_loto_make(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                       uint32_t list_len, trh_task_loto *out);
void trh_task_loto_free(trh_task_loto *lo);
/* Prompt i's first `want` neighbours without task held_out's prompts, their
 * indices renumbered by reduced_of (original -> the references without
 * task held_out), into out; the count, or UINT32_MAX when the list cannot
 * tell (search instead). */
uint32_t trh_task_loto_neighbours(const trh_task_loto *lo, const uint32_t *task_all,
                                  uint32_t held_out, const uint32_t *reduced_of, uint32_t i,
                                  uint32_t want, tr_neighbor *out);
/* trh_task_fit (every reference a query) of the references without task
 * held_out: refs, task_of, n_tasks, scores as trh_task_fit takes them;
 * orig_of[r] the original index of reference r (ascending) and reduced_of
 * its inverse (original -> r, read for the other tasks' prompts only).
 * n_searched: the queries searched again. 0, or -1 when out of memory. */
int trh_task_fit_loto(const trh_task_loto *lo, const tr_kernels *kern, const uint32_t *task_all,
                      uint32_t held_out, const tr_refs *refs, const uint32_t *orig_of,
                      const uint32_t *reduced_of, const uint32_t *task_of, uint32_t n_tasks,
                      const float *scores, uint32_t n_models, uint32_t k, uint32_t k_dist,
                      float *u, float *acc, uint32_t *n_searched);

/* ---- references on the host ---- */
/* References for tr_knn_search from n row-major int8 rows (row_stride bytes
 * apart, dim used): the rows in the pack's blocks layout and their inverse
 * norms, allocated; trh_refs_free releases them. 0, or -1 when out of
 * memory (out then holds nothing to free). */
int trh_refs_make(const int8_t *rows, size_t row_stride, uint32_t n, uint32_t dim,
                  tr_refs *out);
void trh_refs_free(tr_refs *refs);

/* ---- embedder tables (SIF principal component, hashed n-gram rows) ---- */
/* Host-side embedder fitting (linked into the CLI only). */
/* First right singular vector of the n rows of x (unit, float): what SIF
 * removes. Power iteration in double on X^T X (formed once up to D = 512);
 * deterministic start.
 * 0, or -1 when out of memory. */
int trh_first_pc(const float *x, size_t n, uint32_t dim, float *pc);

/* A hashed table's rows (platform/tr_format.h, TR_EMB_HASHED) learned from n
 * valid UTF-8 texts: the top dim right singular vectors of their tf-idf
 * feature matrix (smoothed idf, rows normalised), row r scaled by feature
 * r's idf, so the device's sum of a prompt's feature rows projects its
 * tf-idf vector. rows: a power of two; dim <= 500; proj: rows x dim.
 * Randomized SVD (Halko et al. 2011), deterministic for a seed. progress
 * (may be NULL) hears each phase's steps: "features" per text, then "SVD"
 * per pass over the matrix. 0, or -1 when out of memory. */
typedef void (*trh_fit_progress)(void *ctx, const char *phase, uint64_t done, uint64_t total);
int trh_hashed_fit(const char *const *texts, size_t n, uint32_t rows, uint32_t dim, uint64_t seed,
                  float *proj, trh_fit_progress progress, void *progress_ctx);

/* v /= ||v|| (a zero vector stays zero). */
void trh_normalize(float *v, uint32_t dim);

#endif /* TRH_FIT_H */
