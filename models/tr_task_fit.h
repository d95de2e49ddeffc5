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
 * Returns 0, or -1 when out of memory. */
int tr_task_fit(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                uint32_t k_dist, float *u, float *acc);

#endif
