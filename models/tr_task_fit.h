/* Host-side fitting of the S3 table (Shnitzer et al. 2023): leave one
 * benchmark task out at a time, predict its prompts from the references of
 * the other tasks, and record how far the task lies from them (u) and how
 * often the predictor was right about each model (acc). Host only. */
#ifndef TR_TASK_FIT_H
#define TR_TASK_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "tr_knn.h"

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
int tr_task_fit(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc);

/* The same, calling progress(ctx, done, total) after each batch of queries
 * (total: the number of queries), so a long fit can show an ETA. */
int tr_task_fit_cb(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                   uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                   uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

#endif
