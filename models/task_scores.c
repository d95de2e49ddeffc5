#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_task_scores.h"

#include <math.h>

#include "tr_format.h"

tr_status tr_task_table_view(const uint8_t *sec, size_t len, uint32_t n_models,
                             tr_task_table *t)
{
    if (len < TR_TASKS_HEADER_BYTES || tr_ld32(sec + TR_T_TOTAL) != len)
        return TR_E_MALFORMED;
    t->n_tasks = tr_ld32(sec + TR_T_N_TASKS);
    t->n_models = n_models;
    t->k_dist = tr_ld32(sec + TR_T_K_DIST);
    t->bandwidth = tr_ldf32(sec + TR_T_BANDWIDTH);
    t->gate = tr_ldf32(sec + TR_T_GATE);
    uint32_t o_u = tr_ld32(sec + TR_T_OFF_U), o_a = tr_ld32(sec + TR_T_OFF_ACC);
    uint64_t nt = t->n_tasks;
    if (nt == 0 || nt > 65536 || t->k_dist == 0 || t->k_dist > TR_K_MAX ||
        !(t->bandwidth >= TR_TASK_BANDWIDTH_MIN && t->bandwidth <= TR_TASK_BANDWIDTH_MAX) || !(t->gate >= 0 && t->gate <= 1) ||
        o_u % 4 || o_a % 4 || o_u < TR_TASKS_HEADER_BYTES || o_a < TR_TASKS_HEADER_BYTES ||
        o_u + 4 * nt > len || o_a + 4 * nt * n_models > len)
        return TR_E_MALFORMED;
    t->u = (const float *)(const void *)(sec + o_u);
    t->acc = (const float *)(const void *)(sec + o_a);
    for (uint64_t i = 0; i < nt; i++)
        if (!(t->u[i] >= 0 && t->u[i] <= 2))
            return TR_E_MALFORMED;
    for (uint64_t i = 0; i < nt * n_models; i++)
        if (!(t->acc[i] >= 0 && t->acc[i] <= 1))
            return TR_E_MALFORMED;
    return TR_OK;
}

void tr_task_sums_add(tr_task_sums *s, const float *g, float mean_distance)
{
    for (uint32_t m = 0; m < s->n_models; m++) {
        s->g[m] += g[m];
        s->above[m] += g[m] > 0.5f;
        s->var[m] += g[m] * (1.0f - g[m]);
    }
    s->u += mean_distance;
    s->n++;
}

void tr_task_p(const tr_task_table *t, float u, float *p)
{
    /* Weights relative to the nearest task, so a task far from all of them
     * still gets the nearest one's accuracy rather than 0/0. */
    float dmin = INFINITY;
    for (uint32_t i = 0; i < t->n_tasks; i++)
        dmin = fminf(dmin, fabsf(u - t->u[i]));
    float h2 = 2.0f * t->bandwidth * t->bandwidth, wsum = 0.0f;
    for (uint32_t m = 0; m < t->n_models; m++)
        p[m] = 0.0f;
    for (uint32_t i = 0; i < t->n_tasks; i++) {
        float d = fabsf(u - t->u[i]);
        float w = expf(-(d * d - dmin * dmin) / h2);
        wsum += w;
        for (uint32_t m = 0; m < t->n_models; m++)
            p[m] += w * t->acc[(size_t)i * t->n_models + m];
    }
    for (uint32_t m = 0; m < t->n_models; m++)
        p[m] /= wsum;
}

float tr_task_p_beats(const tr_task_sums *s, uint32_t a, uint32_t b)
{
    float mu = s->g[a] - s->g[b], var = s->var[a] + s->var[b];
    if (var <= 0.0f)
        return mu > 0.0f ? 1.0f : mu < 0.0f ? 0.0f : 0.5f;
    return 0.5f * erfcf(-mu / sqrtf(2.0f * var));
}
