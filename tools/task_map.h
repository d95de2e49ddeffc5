/* build --task-map: the learned soft cluster map (Jitkrittum et al. 2025,
 * section 4.3) with the data's own tasks as its clusters. Host only. */
#ifndef TRH_TOOLS_TASK_MAP_H
#define TRH_TOOLS_TASK_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct trh_task_map_info {
    double l2;           /* the softmax regression's weight, chosen on validation */
    double val_area;     /* the Area of the pooled out-of-fold curve at (l2, a) */
    uint32_t val_queries; /* how many queries it pooled */
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

/* Task ids of n rows by their task names (task[j], "" none), in order of
 * first appearance, with names[id] the name (n room). Rows without a task
 * among rows of two or more named tasks get UINT32_MAX, for
 * trh_infer_tasks below, and *untasked counts them (else 0, and "" is a
 * task of its own). Returns the task count. build and eval share it, so
 * both give a fleet's untasked prompts the same tasks. */
uint32_t trh_task_ids(const char *const *task, size_t n, uint32_t *task_of, const char **names,
                      size_t *untasked);

/* Rows without a task (task[i] >= T) each get the task whose mean unit row
 * (over the rows with one) is nearest by cosine, ties to the lower task:
 * the task map's own starting centroids. A fleet's logged prompts carry no
 * task (a device does not know it); left as a task of their own they made
 * one cluster of every topic in the task map. T >= 1. Returns how many it
 * gave. */
size_t trh_infer_tasks(const int8_t *refs, size_t n, uint32_t dim, uint32_t T, uint32_t *task);
/* The same on unit float rows x (n x dim): eval's prompts. */
size_t trh_infer_tasks_unit(const float *x, size_t n, uint32_t dim, uint32_t T, uint32_t *task);

/* build's K-fold cross-validation (of the task map's l2 and a, and of the
 * method): fold[j] & TRH_FOLD_MASK is row j's fold (0..TRH_FOLDS-1, a
 * fixed-seed shuffle dealt round-robin), TRH_FOLD_SCORED set on the first
 * TRH_FOLD_QUERIES of each fold in shuffle order (a uniform sample: the rows
 * scored; the rest are only left out of their fold's fit), so that the
 * validation costs at most TRH_FOLDS * TRH_FOLD_QUERIES predictions whatever
 * n. Every row is held out once; the scored rows' out-of-fold estimates are
 * pooled into one deferral curve per candidate. */
#define TRH_FOLDS 5u
#define TRH_FOLD_MASK 0x7fu
#define TRH_FOLD_SCORED 0x80u
#define TRH_FOLD_QUERIES 1000u
void trh_cv_folds(size_t n, uint8_t *fold);
/* The task map fitted, for each fold, on the task rows (the first n_task)
 * outside it, for each l2 of the grid and each of the na prior strengths
 * as of Psi, and applied to the fold's scored rows whose scores are all
 * known; their estimates pooled over the folds (fold by fold, rows in
 * order), the Area of that one curve (costs cn) at the best (l2, a), ties
 * to the smaller l2 then the earlier a, into info (val_area -1 with no such
 * row); P_best (val_queries x m, may be NULL) receives that (l2, a)'s
 * pooled estimates. Psi gets its own a (the clusters header's psi_prior):
 * the kNN's a, chosen for k neighbours, is not the one for a task of
 * hundreds of prompts. 0, or 1 after a message. */
int trh_task_map_score(const int8_t *refs, size_t n_task, uint32_t dim, const float *scores,
                      uint32_t m, const double *cn, const uint32_t *task, uint32_t T,
                      const float *as, uint32_t na, const uint8_t *fold, float *P_best,
                      trh_task_map_info *info);
/* The clusters section (centroids = each task's mean unit row, Psi = each
 * model's error per task, shrunk with a) and theta (n_tasks x (dim + 1),
 * malloc'd) of the task map, from the n_refs int8 rows refs whose first
 * n_task rows have a task (task[j] < n_tasks; the rest, e.g. logged
 * prompts, join Psi through their nearest task centroid). info zeroed: l2
 * is chosen here by cross-validation (trh_task_map_score on trh_cv_folds,
 * Psi shrunk with a; costs cn); else its l2 and a are used as they are.
 * Then everything is refitted on all rows. 0, or 1 after a message. */
int trh_task_map_build(const int8_t *refs, size_t n_refs, size_t n_task, uint32_t dim,
                      const float *scores, uint32_t n_models, const double *cn,
                      const uint32_t *task, uint32_t n_tasks, float a, trh_buf *clusters,
                      float **theta, trh_task_map_info *info);

#endif
