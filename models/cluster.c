#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_cluster.h"

#include <math.h>

#include "tr_format.h"
#include "tr_knn.h"

tr_status tr_clusters_view(const uint8_t *sec, size_t len, uint32_t dim,
                           uint32_t n_models, tr_clusters *c)
{
    if (len < TR_CLU_HEADER_BYTES || tr_ld32(sec + TR_C_TOTAL) != len)
        return TR_E_MALFORMED;
    c->k = tr_ld32(sec + TR_C_K);
    c->stride = tr_ld32(sec + TR_C_STRIDE);
    c->dim = dim;
    c->n_models = n_models;
    uint32_t o_r = tr_ld32(sec + TR_C_OFF_ROWS), o_s = tr_ld32(sec + TR_C_OFF_INV_SCALE),
             o_h = tr_ld32(sec + TR_C_OFF_HALF_SQ), o_p = tr_ld32(sec + TR_C_OFF_PSI);
    uint64_t k = c->k;
    if (k == 0 || k > 65536 || c->stride < dim || o_r % 4 || o_s % 4 || o_h % 4 || o_p % 4 ||
        o_r < TR_CLU_HEADER_BYTES || o_r + k * c->stride > len || o_s + 4 * k > len ||
        o_h + 4 * k > len || o_p + 4 * k * n_models > len || o_s < TR_CLU_HEADER_BYTES ||
        o_h < TR_CLU_HEADER_BYTES || o_p < TR_CLU_HEADER_BYTES)
        return TR_E_MALFORMED;
    c->rows = (const int8_t *)(sec + o_r);
    c->inv_scale = (const float *)(const void *)(sec + o_s);
    c->half_sq = (const float *)(const void *)(sec + o_h);
    c->psi = (const float *)(const void *)(sec + o_p);
    /* Unused on the device, bounded all the same: a host tool reads it. */
    float psi_prior = tr_ldf32(sec + TR_C_PSI_PRIOR);
    if (!(psi_prior >= 0.0f && psi_prior <= TR_PRIOR_STRENGTH_MAX))
        return TR_E_MALFORMED;
    if (!tr_i8_rows_ok(c->rows, k, dim, c->stride))
        return TR_E_MALFORMED;
    for (uint32_t i = 0; i < c->k; i++)
        if (!(c->inv_scale[i] > 0) || !isfinite(c->inv_scale[i]) || !(c->half_sq[i] >= 0) ||
            !isfinite(c->half_sq[i]))
            return TR_E_MALFORMED;
    for (uint64_t i = 0; i < k * n_models; i++)
        if (!(c->psi[i] >= 0.0f && c->psi[i] <= 1.0f))
            return TR_E_MALFORMED;
    return TR_OK;
}

uint32_t tr_cluster_assign(const tr_kernels *kern, const tr_clusters *c,
                           const int8_t *q, int32_t *dots)
{
    const float qnorm = sqrtf((float)tr_i8_sqnorm(q, c->dim));
    uint32_t best = 0;
    float best_s = -INFINITY;
    /* In blocks, so the scratch does not grow with K. */
    for (uint32_t base = 0; base < c->k; base += TR_KNN_BLOCK) {
        uint32_t nb = c->k - base < TR_KNN_BLOCK ? c->k - base : TR_KNN_BLOCK;
        kern->dot_i8_rows(q, c->rows + (size_t)base * c->stride, c->stride, nb, c->dim, dots);
        for (uint32_t j = 0; j < nb; j++) {
            uint32_t i = base + j;
            float s = (float)dots[j] / qnorm * c->inv_scale[i] - c->half_sq[i];
            if (s > best_s) {
                best_s = s;
                best = i;
            }
        }
    }
    return best;
}

void tr_cluster_predict(const tr_clusters *c, uint32_t cluster, float *predicted)
{
    for (uint32_t m = 0; m < c->n_models + c->n_added; m++)
        predicted[m] = 1.0f - tr_psi_at(c, cluster, m);
}
