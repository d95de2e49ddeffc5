#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_learned_map.h"

#include <math.h>

#include "tr_format.h"
#include "tr_kernels.h"
#include "tr_knn.h"

tr_status tr_learned_map_view(const uint8_t *sec, size_t len, uint32_t dim, uint32_t k,
                              tr_learned_map *map)
{
    if (len < TR_LMAP_HEADER_BYTES || tr_ld32(sec + TR_L_TOTAL) != len ||
        tr_ld32(sec + TR_L_K) != k || tr_ld32(sec + TR_L_DIM) != dim || k == 0 ||
        k > TR_LMAP_MAX_K)
        return TR_E_MALFORMED;
    uint32_t o = tr_ld32(sec + TR_L_OFF_THETA);
    uint64_t n = (uint64_t)k * (dim + 1);
    if (o % 4 || o < TR_LMAP_HEADER_BYTES || o > len || 4 * n > len - o)
        return TR_E_MALFORMED;
    map->k = k;
    map->dim = dim;
    map->theta = (const float *)(const void *)(sec + o);
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(map->theta[i]))
            return TR_E_MALFORMED;
    return TR_OK;
}

void tr_learned_map_predict(const tr_learned_map *map, const tr_clusters *c, const int8_t *q,
                            float *z, float *predicted)
{
    float inv = tr_i8_inv_norm(q, map->dim);
    for (uint32_t k = 0; k < map->k; k++) {
        const float *t = map->theta + (size_t)k * (map->dim + 1);
        float s = 0.0f;
        for (uint32_t d = 0; d < map->dim; d++)
            s += t[d] * (float)q[d];
        z[k] = s * inv + t[map->dim];
    }
    tr_softmax(z, map->k);
    for (uint32_t m = 0; m < c->n_models + c->n_added; m++) {
        float err = 0.0f;
        for (uint32_t k = 0; k < map->k; k++)
            err += z[k] * tr_psi_at(c, k, m);
        predicted[m] = 1.0f - err;
    }
}
