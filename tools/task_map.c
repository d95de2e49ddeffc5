#include "task_map.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
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

uint32_t trh_task_ids(const char *const *task, size_t n, uint32_t *task_of, const char **names,
                      size_t *untasked)
{
    trh_strmap seen = {0};
    size_t none = 0, v;
    uint32_t named = 0, T = 0;
    for (size_t j = 0; j < n; j++) {
        if (!*task[j])
            none++;
        else
            named += trh_strmap_add(&seen, task[j], named, NULL) == 0;
    }
    trh_strmap_free(&seen);
    const int infer = none && named >= 2;
    seen = (trh_strmap){0};
    for (size_t j = 0; j < n; j++) {
        if (infer && !*task[j]) {
            task_of[j] = UINT32_MAX; /* for trh_infer_tasks */
            continue;
        }
        if (trh_strmap_add(&seen, task[j], T, &v) == 0)
            names[v = T++] = task[j];
        task_of[j] = (uint32_t)v;
    }
    trh_strmap_free(&seen);
    *untasked = infer ? none : 0;
    return T;
}

/* trh_infer_tasks on rows read through row(ctx, i, out): unit float rows. */
static size_t infer_tasks(void (*row)(const void *ctx, size_t i, uint32_t dim, float *out),
                          const void *ctx, size_t n, uint32_t dim, uint32_t T, uint32_t *task)
{
    double *sum = trh_xcalloc((size_t)T * dim, sizeof *sum);
    float *x = trh_xmalloc((dim ? dim : 1) * sizeof *x), *cent = trh_xmalloc((size_t)T * dim * sizeof *cent);
    size_t given = 0;
    for (size_t i = 0; i < n; i++) {
        if (task[i] >= T)
            continue;
        row(ctx, i, dim, x);
        for (uint32_t d = 0; d < dim; d++)
            sum[(size_t)task[i] * dim + d] += x[d];
    }
    /* Unit centroids: the cosine to each, not the dot with a mean whose
     * length shrinks with the task's spread. */
    for (uint32_t t = 0; t < T; t++) {
        double ss = 0;
        for (uint32_t d = 0; d < dim; d++)
            ss += sum[(size_t)t * dim + d] * sum[(size_t)t * dim + d];
        for (uint32_t d = 0; d < dim; d++)
            cent[(size_t)t * dim + d] = ss > 0 ? (float)(sum[(size_t)t * dim + d] / sqrt(ss)) : 0.0f;
    }
    for (size_t i = 0; i < n; i++) {
        if (task[i] < T)
            continue;
        row(ctx, i, dim, x);
        uint32_t best = 0;
        double best_s = -INFINITY;
        for (uint32_t t = 0; t < T; t++) {
            double s = 0;
            for (uint32_t d = 0; d < dim; d++)
                s += (double)x[d] * cent[(size_t)t * dim + d];
            if (s > best_s) {
                best_s = s;
                best = t;
            }
        }
        task[i] = best;
        given++;
    }
    free(sum), free(x), free(cent);
    return given;
}

static void int8_row(const void *ctx, size_t i, uint32_t dim, float *out)
{
    trh_unit_row((const int8_t *)ctx + i * dim, dim, out);
}

static void unit_row(const void *ctx, size_t i, uint32_t dim, float *out)
{
    memcpy(out, (const float *)ctx + i * dim, dim * sizeof *out);
}

size_t trh_infer_tasks(const int8_t *refs, size_t n, uint32_t dim, uint32_t T, uint32_t *task)
{
    return infer_tasks(int8_row, refs, n, dim, T, task);
}

size_t trh_infer_tasks_unit(const float *x, size_t n, uint32_t dim, uint32_t T, uint32_t *task)
{
    return infer_tasks(unit_row, x, n, dim, T, task);
}

/* Five folds of n rows (build's cross-validation of l2, a and the
 * method): a full Fisher-Yates shuffle with a fixed seed, so that no order
 * of the data (prompts sorted by task, say) decides the folds; the row at
 * shuffle position i goes to fold i % 5 (sizes differ by at most one), and
 * is scored while i < 5 * TRH_FOLD_QUERIES (the first TRH_FOLD_QUERIES of
 * each fold in shuffle order: a uniform sample). */
void trh_cv_folds(size_t n, uint8_t *fold)
{
    size_t *perm = trh_xmalloc((n ? n : 1) * sizeof *perm);
    uint64_t s = 0x7472686f6c643566ull; /* fixed: the same pack from the same data */
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = 0; i < n; i++) {
        size_t j = i + (size_t)(trh_splitmix64(&s) % (n - i)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        fold[perm[i]] = (uint8_t)((i % TRH_FOLDS) |
                                  (i < (size_t)TRH_FOLDS * TRH_FOLD_QUERIES ? TRH_FOLD_SCORED : 0));
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
                      const float *as, uint32_t na, const uint8_t *fold, float *P_best,
                      trh_task_map_info *info)
{
    const size_t N = n_task ? n_task : 1;
    float *xt = trh_xmalloc(N * dim * sizeof *xt), *yt = trh_xmalloc(N * m * sizeof *yt),
          *yv = trh_xmalloc(N * m * sizeof *yv);
    uint32_t *tt = trh_xmalloc(N * sizeof *tt);
    size_t *vi = trh_xmalloc(N * sizeof *vi), nv = 0;
    for (uint32_t f = 0; f < TRH_FOLDS; f++) /* the pooled queries, fold by fold */
        for (size_t j = 0; j < n_task; j++)
            if (fold[j] == (f | TRH_FOLD_SCORED) && all_known(scores + j * m, m)) {
                memcpy(yv + nv * m, scores + j * m, m * sizeof *yv);
                vi[nv++] = j;
            }
    /* Every (l2, a)'s out-of-fold estimates, pooled: one curve each. */
    const size_t ng = (size_t)TRH_TASK_MAP_N_L2 * na;
    float *cent = trh_xmalloc((size_t)T * dim * sizeof *cent), *psi = trh_xmalloc((size_t)T * m * sizeof *psi),
          *theta = trh_xmalloc((size_t)T * (dim + 1) * sizeof *theta),
          *P = trh_xmalloc(ng * (nv ? nv : 1) * m * sizeof *P);
    tr_clusters cv = {.k = T, .dim = dim, .n_models = m, .psi = psi};
    float z[TR_LMAP_MAX_K];
    int rc = 0;
    info->val_area = -1;
    info->val_queries = (uint32_t)nv;
    info->l2 = trh_task_map_l2[TRH_TASK_MAP_N_L2 / 2];
    info->a = as[0];
    size_t q0 = 0;
    for (uint32_t f = 0; f < TRH_FOLDS && nv && !rc; f++) {
        size_t nt = 0, q1 = q0;
        for (size_t j = 0; j < n_task; j++)
            if ((fold[j] & TRH_FOLD_MASK) != f) {
                trh_unit_row(refs + j * dim, dim, xt + nt * dim);
                memcpy(yt + nt * m, scores + j * m, m * sizeof *yt);
                tt[nt++] = task[j];
            }
        while (q1 < nv && (fold[vi[q1]] & TRH_FOLD_MASK) == f)
            q1++;
        if (q1 == q0)
            continue;
        if (!nt) { /* one row per fold at most: nothing to fit on */
            rc = 2;
            break;
        }
        trh_task_means(xt, tt, nt, T, dim, cent);
        /* theta does not depend on Psi's a: one fit per l2, every a on it. */
        for (uint32_t g = 0; g < TRH_TASK_MAP_N_L2 && !rc; g++) {
            if (trh_task_map_fit(xt, nt, dim, tt, cent, T, trh_task_map_l2[g], TRH_TASK_MAP_ITERS, theta) < 0) {
                rc = trh_err("out of memory fitting the task map");
                break;
            }
            tr_learned_map map = {T, dim, theta};
            for (uint32_t ga = 0; ga < na; ga++) {
                trh_cluster_psi(yt, nt, m, tt, T, as[ga], psi);
                float *Pg = P + ((size_t)g * na + ga) * nv * m;
                for (size_t i = q0; i < q1; i++)
                    tr_learned_map_predict(&map, &cv, refs + vi[i] * dim, z, Pg + i * m);
            }
        }
        q0 = q1;
    }
    if (rc == 2) /* too few rows to cross-validate: nothing scored */
        rc = 0, nv = 0, info->val_queries = 0;
    for (size_t g = 0; g < ng && nv && !rc; g++) {
        trh_curve c;
        trh_route_curve(P + g * nv * m, yv, (uint32_t)nv, m, cn, &c, NULL);
        if (c.area > info->val_area) { /* ties: the smaller l2, then the smaller a */
            info->val_area = c.area, info->l2 = trh_task_map_l2[g / na], info->a = as[g % na];
            if (P_best)
                memcpy(P_best, P + g * nv * m, nv * m * sizeof *P);
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
    /* info already scored (trh_task_map_score on build's folds): its l2. */
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
        uint8_t *fold = trh_xmalloc(n_task ? n_task : 1);
        trh_cv_folds(n_task, fold);
        rc = trh_task_map_score(refs, n_task, dim, scores, m, cn, task, T, &a, 1, fold, NULL, info);
        free(fold);
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
