/* build --task-map: the learned soft cluster map (Jitkrittum et al. 2025,
 * section 4.3) with the data's own tasks as its clusters. Host only. */
#ifndef TRH_TOOLS_TASK_MAP_H
#define TRH_TOOLS_TASK_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct trh_task_map_info {
    double l2;           /* the softmax regression's weight, chosen on validation */
    double val_area;     /* the deferral-curve Area on the held-out references at l2 */
    uint32_t val_queries; /* how many were held out */
    float a;             /* Psi's prior strength, chosen on validation with l2 */
} trh_task_map_info;

/* The l2 weights the task map's softmax regression is chosen from, and its
 * Adam iterations (eval and build choose alike). */
extern const double trh_task_map_l2[];
#define TRH_TASK_MAP_N_L2 3
#define TRH_TASK_MAP_ITERS 300

/* Row r as the learned map sees it: the unit float row, in double before
 * the one rounding (the fits of build and eval both read rows through it). */
void trh_unit_row(const int8_t *r, uint32_t dim, float *out);

/* cent[t] = the mean of the n rows x (dim each) of task t (task[i] < T). */
void trh_task_means(const float *x, const uint32_t *task, size_t n, uint32_t T, uint32_t dim,
                   float *cent);

/* hold[j] != 0 for a fixed-seed fifth of the n rows (n / 5 of them): the
 * held-out references build validates l2 and the method on; 1 for the
 * first TRH_HOLDOUT_QUERIES of them in shuffle order (a uniform sample: the
 * rows scored), 2 for the rest (held out of the fit, not scored). */
#define TRH_HOLDOUT_QUERIES 2000u
void trh_holdout_fifth(size_t n, uint8_t *hold);

/* The task map fitted on the task rows (the first n_task) not held out
 * (hold[j] == 0), scored on those with hold[j] == 1,
 * for each l2 of the grid and each of the na prior strengths as of Psi;
 * the Area of the held-out rows whose scores are all known (costs cn), at
 * the best (l2, a), into info (val_area -1 with no such row). Psi gets its
 * own a (the clusters header's psi_prior): the kNN's a, chosen for k
 * neighbours, is not the one for a task of hundreds of prompts. 0, or 1
 * after a message. */
int trh_task_map_score(const int8_t *refs, size_t n_task, uint32_t dim, const float *scores,
                      uint32_t m, const double *cn, const uint32_t *task, uint32_t T,
                      const float *as, uint32_t na, const uint8_t *hold, trh_task_map_info *info);

/* The clusters section (centroids = each task's mean unit row, Psi = each
 * model's error per task, shrunk with a) and theta (n_tasks x (dim + 1),
 * malloc'd) of the task map, from the n_refs int8 rows refs whose first
 * n_task rows have a task (task[j] < n_tasks; the rest, e.g. logged
 * prompts, join Psi through their nearest task centroid). l2 is chosen on a
 * fixed fifth of the task rows held out (the Area of their deferral curve
 * with costs cn), then everything is refitted on all rows. info zeroed:
 * l2 is chosen here (trh_task_map_score on trh_holdout_fifth, Psi shrunk
 * with a); else its l2 and a are used as they are. 0, or 1 after a message. */
int trh_task_map_build(const int8_t *refs, size_t n_refs, size_t n_task, uint32_t dim,
                      const float *scores, uint32_t n_models, const double *cn,
                      const uint32_t *task, uint32_t n_tasks, float a, trh_buf *clusters,
                      float **theta, trh_task_map_info *info);

#endif
