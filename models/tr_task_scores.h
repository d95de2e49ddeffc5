/* Task-level model selection (Shnitzer et al. 2023): from the kNN
 * predictions on a batch of prompts of one new task, the scores
 *   S1(m) = mean_i g_m(x_i),   S2(m) = mean_i 1[g_m(x_i) > 0.5],
 *   S3(m) = p(d,m) S2(m) + (1 - p(d,m)) (1 - S2(m)),
 * where p(d,m), the predictor's accuracy on the task, is regressed on how
 * far the task lies from the references; and the out-of-distribution gate:
 * keep the best-on-average model (BMA) unless the S3 choice beats it with
 * probability >= gate. */
#ifndef TR_TASK_SCORES_H
#define TR_TASK_SCORES_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute_status.h"

typedef struct tr_task_table {
    uint32_t n_tasks, n_models, k_dist;
    float bandwidth, gate;
    const float *u;   /* n_tasks */
    const float *acc; /* n_tasks x n_models */
} tr_task_table;

tr_status tr_task_table_view(const uint8_t *sec, size_t len, uint32_t n_models,
                             tr_task_table *t);

/* Running sums over a task's prompts. */
typedef struct tr_task_sums {
    uint32_t n_models, n;
    double u;       /* sum of per-prompt mean distances */
    float *g;       /* n_models: sum of g */
    float *above;   /* n_models: count of g > 0.5 */
    float *var;     /* n_models: sum of g (1 - g) */
} tr_task_sums;

void tr_task_sums_add(tr_task_sums *s, const float *g, float mean_distance);

/* p[m] for a task at mean distance u: Nadaraya-Watson, Gaussian kernel. */
void tr_task_p(const tr_task_table *t, float u, float *p);

/* P[X_a > X_b] for X_m = sum_i Bernoulli(g_m(x_i)), independent: the normal
 * approximation of what the paper estimates by Monte Carlo. */
float tr_task_p_beats(const tr_task_sums *s, uint32_t a, uint32_t b);

#endif
