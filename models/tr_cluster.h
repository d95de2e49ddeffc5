/* Cluster-based routing (Jitkrittum et al. 2025, "Universal Model Routing"):
 * a prompt's cluster is its nearest K-means centroid; each model is its
 * vector of per-cluster error rates Psi, so a model added later needs only
 * its errors on a small labelled set, never a retrained router. */
#ifndef TR_CLUSTER_H
#define TR_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute_status.h"
#include "tr_kernels.h"

typedef struct tr_clusters {
    uint32_t k, dim, stride, n_models;
    const int8_t *rows;      /* k x stride */
    const float *inv_scale;  /* k */
    const float *half_sq;    /* k: ||c||^2 / 2 in float units */
    const float *psi;        /* k x n_models error rates */
    uint32_t n_added;        /* models a delta pack added, after n_models */
    const float *psi_added;  /* k x n_added, from the delta */
} tr_clusters;

/* Psi[cluster][m] over base then added models. */
static inline float tr_psi_at(const tr_clusters *c, uint32_t cluster, uint32_t m)
{
    return m < c->n_models ? c->psi[(size_t)cluster * c->n_models + m]
                           : c->psi_added[(size_t)cluster * c->n_added + (m - c->n_models)];
}

/* Check a clusters section and point a view at it. */
tr_status tr_clusters_view(const uint8_t *sec, size_t len, uint32_t dim,
                           uint32_t n_models, tr_clusters *c);

/* Nearest centroid of the int8 query q (not all zero); ties to the lower
 * index. Its norm is computed here, the one way (exact int64 sum, then
 * float), for the device and the host fits alike. dots: TR_KNN_BLOCK int32
 * of scratch. */
uint32_t tr_cluster_assign(const tr_kernels *kern, const tr_clusters *c,
                           const int8_t *q, int32_t *dots);

/* predicted[m] = 1 - Psi[cluster][m], for n_models + n_added models. */
void tr_cluster_predict(const tr_clusters *c, uint32_t cluster, float *predicted);

#endif
