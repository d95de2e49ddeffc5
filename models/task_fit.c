#include "tr_task_fit.h"

#include <math.h>
#include <stdlib.h>

typedef struct cand {
    float sim;
    uint32_t idx;
} cand;

static int by_sim(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int tr_task_fit(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                uint32_t k_dist, float *u, float *acc)
{
    const uint32_t n = refs->n;
    int32_t *dots = malloc(n * sizeof *dots);
    cand *c = malloc(n * sizeof *c);
    double *usum = calloc(n_tasks, sizeof *usum), *hit = calloc((size_t)n_tasks * n_models, sizeof *hit);
    size_t *ucnt = calloc(n_tasks, sizeof *ucnt), *cnt = calloc((size_t)n_tasks * n_models, sizeof *cnt);
    if (!dots || !c || !usum || !hit || !ucnt || !cnt) {
        free(dots), free(c), free(usum), free(hit), free(ucnt), free(cnt);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const int8_t *q = refs->rows + (size_t)i * refs->stride;
        kern->dot_i8_rows(q, refs->rows, refs->stride, n, refs->dim, dots);
        float inv_q = refs->inv_norm[i];
        uint32_t nc = 0;
        for (uint32_t j = 0; j < n; j++)
            if (task_of[j] != task_of[i])
                c[nc++] = (cand){(float)dots[j] * refs->inv_norm[j], j};
        if (nc == 0)
            continue;
        /* Host code: a full sort keeps this obviously right. */
        qsort(c, nc, sizeof *c, by_sim);
        uint32_t nd = nc < k_dist ? nc : k_dist, nk = nc < k ? nc : k;
        double ui = 0;
        for (uint32_t j = 0; j < nd; j++)
            ui += 1.0 - (double)c[j].sim * inv_q;
        usum[task_of[i]] += ui / nd;
        ucnt[task_of[i]]++;
        for (uint32_t m = 0; m < n_models; m++) {
            float y = scores[(size_t)i * n_models + m];
            if (isnan(y))
                continue;
            double s = 0;
            uint32_t known = 0;
            for (uint32_t j = 0; j < nk; j++) {
                float v = scores[(size_t)c[j].idx * n_models + m];
                if (!isnan(v)) {
                    s += v;
                    known++;
                }
            }
            if (!known)
                continue;
            int right = (s / known > 0.5) == (y >= 0.5f);
            hit[(size_t)task_of[i] * n_models + m] += right;
            cnt[(size_t)task_of[i] * n_models + m]++;
        }
    }
    for (uint32_t t = 0; t < n_tasks; t++) {
        u[t] = ucnt[t] ? (float)(usum[t] / (double)ucnt[t]) : 1.0f;
        for (uint32_t m = 0; m < n_models; m++) {
            size_t j = (size_t)t * n_models + m;
            acc[j] = cnt[j] ? (float)(hit[j] / (double)cnt[j]) : 0.5f;
        }
    }
    free(dots), free(c), free(usum), free(hit), free(ucnt), free(cnt);
    return 0;
}
