#include "task_map.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "packwriter.h"
#include "pareto.h"
#include "tr_cluster.h"
#include "trh_fit.h"
#include "tr_kernels.h"
#include "tr_knn.h"
#include "tr_format.h"
#include "tr_learned_map.h"
#include "trh_rand.h"

const double trh_task_map_l2[TRH_TASK_MAP_N_L2] = {1e-4, 1e-3, 1e-2};

void trh_unit_row(const int8_t *r, uint32_t dim, float *out)
{
    double ss = 0;
    for (uint32_t d = 0; d < dim; d++)
        ss += (double)r[d] * r[d];
    for (uint32_t d = 0; d < dim; d++)
        out[d] = (float)(r[d] / sqrt(ss));
}

void trh_task_means(const float *x, const uint32_t *task, size_t n, uint32_t T, uint32_t dim,
                       float *cent)
{
    uint32_t *cnt = trh_xcalloc(T, sizeof *cnt);
    memset(cent, 0, (size_t)T * dim * sizeof *cent);
    for (size_t i = 0; i < n; i++) {
        cnt[task[i]]++;
        for (uint32_t d = 0; d < dim; d++)
            cent[(size_t)task[i] * dim + d] += x[i * dim + d];
    }
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t d = 0; d < dim && cnt[t]; d++)
            cent[(size_t)t * dim + d] /= (float)cnt[t];
    free(cnt);
}

/* A fixed-seed fifth of n rows (build's validation of l2 and of the
 * method): a partial Fisher-Yates shuffle, so that no order of the data
 * (prompts sorted by task, say) decides which rows are held out. */
void trh_holdout_fifth(size_t n, uint8_t *hold)
{
    size_t *perm = trh_xmalloc((n ? n : 1) * sizeof *perm), take = n / 5;
    /* At most TRH_HOLDOUT_QUERIES of them are scored: at a million
     * references the fifth would be 200k kNN scans of 800k rows. */
    uint64_t s = 0x7472686f6c643566ull; /* fixed: the same pack from the same data */
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    memset(hold, 0, n);
    for (size_t i = 0; i < take; i++) {
        size_t j = i + (size_t)(trh_splitmix64(&s) % (n - i)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        hold[perm[i]] = i < TRH_HOLDOUT_QUERIES ? 1 : 2;
    }
    free(perm);
}

/* Unknown scores leave a row out of any deferral curve (it needs every
 * model's truth). */
static int all_known(const float *y, uint32_t m)
{
    for (uint32_t t = 0; t < m; t++)
        if (isnan(y[t]))
            return 0;
    return 1;
}

int trh_task_map_score(const int8_t *refs, size_t n_task, uint32_t dim, const float *scores,
                      uint32_t m, const double *cn, const uint32_t *task, uint32_t T,
                      const float *as, uint32_t na, const uint8_t *hold, trh_task_map_info *info)
{
    size_t nt = 0, nv = 0;
    float *xt = trh_xmalloc((n_task ? n_task : 1) * dim * sizeof *xt),
          *yt = trh_xmalloc((n_task ? n_task : 1) * m * sizeof *yt),
          *yv = trh_xmalloc((n_task ? n_task : 1) * m * sizeof *yv);
    uint32_t *tt = trh_xmalloc((n_task ? n_task : 1) * sizeof *tt);
    size_t *vi = trh_xmalloc((n_task ? n_task : 1) * sizeof *vi);
    for (size_t j = 0; j < n_task; j++) {
        if (hold[j]) {
            if (hold[j] != 1 || !all_known(scores + j * m, m))
                continue;
            memcpy(yv + nv * m, scores + j * m, m * sizeof *yv);
            vi[nv++] = j;
        } else {
            trh_unit_row(refs + j * dim, dim, xt + nt * dim);
            memcpy(yt + nt * m, scores + j * m, m * sizeof *yt);
            tt[nt++] = task[j];
        }
    }
    float *cent = trh_xmalloc((size_t)T * dim * sizeof *cent), *psi = trh_xmalloc((size_t)T * m * sizeof *psi),
          *theta = trh_xmalloc((size_t)T * (dim + 1) * sizeof *theta),
          *P = trh_xmalloc((nv ? nv : 1) * m * sizeof *P);
    trh_task_means(xt, tt, nt, T, dim, cent);
    tr_clusters cv = {.k = T, .dim = dim, .n_models = m, .psi = psi};
    float z[TR_LMAP_MAX_K];
    int rc = 0;
    info->val_area = -1;
    info->val_queries = (uint32_t)nv;
    info->l2 = trh_task_map_l2[TRH_TASK_MAP_N_L2 / 2];
    info->a = as[0];
    /* theta does not depend on Psi's a: one fit per l2, every a on it. */
    for (uint32_t g = 0; g < TRH_TASK_MAP_N_L2 && nv && nt; g++) {
        if (trh_task_map_fit(xt, nt, dim, tt, cent, T, trh_task_map_l2[g], TRH_TASK_MAP_ITERS, theta) < 0) {
            rc = trh_err("out of memory fitting the task map");
            break;
        }
        tr_learned_map map = {T, dim, theta};
        for (uint32_t ga = 0; ga < na; ga++) {
            trh_cluster_psi(yt, nt, m, tt, T, as[ga], psi);
            for (size_t i = 0; i < nv; i++)
                tr_learned_map_predict(&map, &cv, refs + vi[i] * dim, z, P + i * m);
            trh_curve c;
            trh_route_curve(P, yv, (uint32_t)nv, m, cn, &c, NULL);
            if (c.area > info->val_area)
                info->val_area = c.area, info->l2 = trh_task_map_l2[g], info->a = as[ga];
        }
    }
    free(xt), free(yt), free(yv), free(tt), free(vi), free(cent), free(psi), free(theta), free(P);
    return rc;
}

int trh_task_map_build(const int8_t *refs, size_t n, size_t n_task, uint32_t dim,
                      const float *scores, uint32_t m, const double *cn, const uint32_t *task,
                      uint32_t T, float a, trh_buf *clusters, float **theta_out,
                      trh_task_map_info *info)
{
    /* info already scored (trh_task_map_score on build's fifth): its l2. */
    if (T < 2 || T > TR_LMAP_MAX_K)
        return trh_err("--task-map needs 2 to %u tasks in the references, not %u", TR_LMAP_MAX_K, T);
    float *x = trh_xmalloc(n_task * dim * sizeof *x);
    for (size_t j = 0; j < n_task; j++)
        trh_unit_row(refs + j * dim, dim, x + j * dim);
    float *cent = trh_xmalloc((size_t)T * dim * sizeof *cent);
    float *theta = trh_xmalloc((size_t)T * (dim + 1) * sizeof *theta);
    uint32_t *assign = trh_xmalloc(n * sizeof *assign);
    tr_clusters cv;
    int rc = 0;
    if (!info->val_queries && info->val_area == 0) {
        uint8_t *hold = trh_xmalloc(n_task ? n_task : 1);
        trh_holdout_fifth(n_task, hold);
        rc = trh_task_map_score(refs, n_task, dim, scores, m, cn, task, T, &a, 1, hold, info);
        free(hold);
    }
    trh_task_means(x, task, n_task, T, dim, cent);
    if (!rc && (trh_clusters_section(cent, T, dim, m, info->a, clusters) ||
                tr_clusters_view(clusters->data, clusters->len, dim, m, &cv) != TR_OK))
        rc = trh_err("the task map's clusters section could not be written");
    if (!rc && trh_task_map_fit(x, n_task, dim, task, cent, T, info->l2, TRH_TASK_MAP_ITERS, theta) < 0)
        rc = trh_err("out of memory fitting the task map");
    if (!rc) {
        /* Psi: the task rows by their task, the others by the device's own
         * nearest task centroid. cv views our writable section: filled in
         * place, as build does for K-means. */
        int32_t dots[TR_KNN_BLOCK];
        memcpy(assign, task, n_task * sizeof *assign);
        for (size_t j = n_task; j < n; j++) {
            const int8_t *q = refs + j * dim;
            assign[j] = tr_cluster_assign(tr_kernels_active(), &cv, q, dots);
        }
        trh_cluster_psi(scores, n, m, assign, T, info->a, (float *)(void *)cv.psi);
    }
    free(x), free(cent), free(assign);
    if (rc)
        free(theta);
    else
        *theta_out = theta;
    return rc;
}
