/* Learned soft cluster map (Jitkrittum et al. 2025, section 4.3): instead
 * of one nearest centroid, a log-linear map gives each prompt a
 * distribution over the K clusters; a model's predicted error is that
 * distribution's average of its per-cluster errors Psi. */
#ifndef TR_LEARNED_MAP_H
#define TR_LEARNED_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute_status.h"
#include "tr_cluster.h"

typedef struct tr_learned_map {
    uint32_t k, dim;
    const float *theta; /* k x (dim + 1), bias last */
} tr_learned_map;

tr_status tr_learned_map_view(const uint8_t *sec, size_t len, uint32_t dim, uint32_t k,
                              tr_learned_map *map);

/* z[k] = softmax(theta x + b) for the int8 query q; predicted[m] =
 * 1 - sum_k z_k Psi[k][m]. z: k floats of scratch. */
void tr_learned_map_predict(const tr_learned_map *map, const tr_clusters *c, const int8_t *q,
                            float *z, float *predicted);

#endif
