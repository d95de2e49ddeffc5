/* Host-side training of the learned cluster map (Jitkrittum et al. 2025,
 * section 4.3 and C.1). Host only. */
#ifndef TR_LEARNED_MAP_FIT_H
#define TR_LEARNED_MAP_FIT_H

#include <stddef.h>
#include <stdint.h>

/* theta (k x (dim + 1), bias last) minimizing the log loss
 *   -sum_{i,m} e_im log g_im + (1 - e_im) log(1 - g_im),
 *   g_im = sum_k softmax(theta x_i)_k psi[k][m]
 * over the known error targets e (n x n_models, 1 - score, NaN unknown),
 * psi fixed. Full-batch Adam from the K-means solution (theta_k = t c_k,
 * b_k = -t ||c_k||^2 / 2: a soft nearest centroid). x: n unit rows.
 * Returns the final mean loss (and the initial one in *initial), or -1 when
 * out of memory. */
double tr_learned_map_fit(const float *x, size_t n, uint32_t dim, const float *err,
                          uint32_t n_models, const float *psi, const float *centroids,
                          uint32_t k, int iters, float *theta, double *initial);

/* The task map: the learned map's theta (k x (dim + 1), bias last) as a
 * softmax regression of the n unit rows x onto their labels (task[i] in
 * 0..k-1), the data's own tasks standing in for the clusters: most of what
 * a router can know of a prompt is which task it belongs to (a router told
 * the true task is the best one short of the oracle). Mean cross-entropy +
 * l2 * ||theta without the biases||^2, full-batch Adam from the task means
 * (as tr_learned_map_fit starts from the centroids). centroids: k x dim,
 * the mean row of each task. Returns the final objective, or -1 when out of
 * memory. */
double tr_task_map_fit(const float *x, size_t n, uint32_t dim, const uint32_t *task,
                       const float *centroids, uint32_t k, double l2, int iters, float *theta);

#endif
