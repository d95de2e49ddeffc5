#include "choose_method.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "choose.h"
#include "packwriter.h"
#include "pareto.h"
#include "task_map.h"
#include "tr_cluster.h"
#include "refs.h"
#include "tr_format.h"
#include "tr_kernels.h"
#include "tr_knn.h"
#include "tr_learned_map.h"
#include "util.h"

const char *const trh_cand_name[TRH_N_CAND] = {"knn", "task-map", "cluster", "learned-map"};

/* One fold: the training rows' int8 rows and scores (every row outside
 * the fold), the fold's scored queries' indices. */
typedef struct split5 {
    size_t nt;
    uint32_t nq;
    int8_t *rt;
    float *yt;
    const size_t *qi;
} split5;

static double area_of(const float *P, const float *Yq, uint32_t nq, uint32_t m, const double *cn)
{
    trh_curve c;
    trh_route_curve(P, Yq, nq, m, cn, &c, NULL);
    return c.area;
}

/* kNN at (k, a) as tr_route computes it (exact search), the training rows
 * its references, their means its priors: the fold's queries' estimates
 * into P. */
static void knn_predict(const split5 *s, const int8_t *refs, uint32_t dim, uint32_t m,
                        uint32_t k, float a, float *P)
{
    tr_refs rv = trh_xrefs(s->rt, dim, (uint32_t)s->nt, dim);
    trh_host_labels h;
    trh_host_labels_make(s->yt, (uint32_t)s->nt, m, &h);
    if (k > s->nt)
        k = (uint32_t)s->nt;
    tr_neighbor *nb = trh_xmalloc((k ? k : 1) * sizeof *nb);
    int32_t dots[TR_KNN_BLOCK];
    for (uint32_t i = 0; i < s->nq; i++) {
        const int8_t *q = refs + s->qi[i] * dim;
        uint32_t f = tr_knn_search(tr_kernels_active(), &rv, q, k, dots, nb);
        float *p = P + (size_t)i * m;
        tr_knn_predict(&h.lab, nb, f, 0, 1.0f, a, p);
        for (uint32_t t = 0; t < m; t++) /* no labelled neighbour: the prior, as route */
            if (isnan(p[t]))
                p[t] = h.prior[t];
    }
    free(nb);
    trh_refs_free(&rv);
    trh_host_labels_free(&h);
}

/* K-means on the training rows (their unit int8 rows: what the device
 * sees), Psi from the device's own assignment; then, if Pl, the learned
 * map over those clusters: the fold's queries' estimates into P and Pl. */
static int cluster_predict(const split5 *s, const int8_t *refs, uint32_t dim, uint32_t m,
                           uint32_t K, float a, float *P, float *Pl)
{
    const size_t nt = s->nt;
    float *x = trh_xmalloc(nt * dim * sizeof *x), *cent = trh_xmalloc((size_t)K * dim * sizeof *cent);
    uint32_t *assign = trh_xmalloc(nt * sizeof *assign);
    for (size_t j = 0; j < nt; j++)
        trh_unit_row(s->rt + j * dim, dim, x + j * dim);
    size_t used;
    trh_buf sec = {0};
    tr_clusters cv = {0}; /* the view sets no added models: none here */
    int rc = 0;
    if (trh_kmeans_fit_sampled(x, nt, dim, K, 256, 1, 100, cent, assign, &used, NULL, NULL) < 0 ||
        trh_clusters_section(cent, K, dim, m, a, &sec) ||
        tr_clusters_view(sec.data, sec.len, dim, m, &cv) != TR_OK) {
        rc = trh_err("k-means on the training folds failed");
        goto out;
    }
    int32_t dots[TR_KNN_BLOCK];
    for (size_t j = 0; j < nt; j++) {
        const int8_t *q = s->rt + j * dim;
        assign[j] = tr_cluster_assign(tr_kernels_active(), &cv, q, dots);
    }
    trh_cluster_psi(s->yt, nt, m, assign, K, a, (float *)(void *)cv.psi);
    for (uint32_t i = 0; i < s->nq; i++) {
        const int8_t *q = refs + s->qi[i] * dim;
        tr_cluster_predict(&cv, tr_cluster_assign(tr_kernels_active(), &cv, q, dots),
                           P + (size_t)i * m);
    }
    if (Pl) {
        float *err = trh_xmalloc(nt * m * sizeof *err), *theta = trh_xmalloc((size_t)K * (dim + 1) * sizeof *theta);
        for (size_t i = 0; i < nt * m; i++)
            err[i] = 1.0f - s->yt[i]; /* NaN stays NaN */
        double before;
        if (trh_learned_map_fit(x, nt, dim, err, m, cv.psi, cent, K, 200, theta, &before) < 0) {
            rc = trh_err("out of memory fitting the learned map");
        } else {
            tr_learned_map map = {K, dim, theta};
            float z[TR_LMAP_MAX_K];
            for (uint32_t i = 0; i < s->nq; i++)
                tr_learned_map_predict(&map, &cv, refs + s->qi[i] * dim, z, Pl + (size_t)i * m);
        }
        free(err), free(theta);
    }
out:
    trh_buf_free(&sec);
    free(x), free(cent), free(assign);
    return rc;
}

void trh_method_scores_free(trh_method_scores *ms)
{
    for (int c = 0; c < TRH_N_CAND; c++)
        free(ms->P[c]), ms->P[c] = NULL;
    free(ms->Yq), ms->Yq = NULL;
}

/* One fold of the cross-validation: fitted on every row outside it, its
 * queries' estimates into slices of the pooled arrays (folds write
 * disjoint rows, so folds run side by side and give the same bits). */
typedef struct fold_job {
    const int8_t *refs;
    const float *Y;
    const uint8_t *fold;
    size_t n, nt;
    uint32_t f, dim, m, k, n_clusters;
    float a;
    const size_t *qi;
    uint32_t nq;
    float *Pk, *Pc, *Pl; /* NULL: not wanted */
    int rc;
} fold_job;

static void *fold_run(void *arg)
{
    fold_job *j = arg;
    const uint32_t dim = j->dim, m = j->m;
    split5 s = {0, j->nq, trh_xmalloc((j->nt ? j->nt : 1) * dim),
                trh_xmalloc((j->nt ? j->nt : 1) * m * sizeof(float)), j->qi};
    for (size_t r = 0; r < j->n; r++)
        if ((j->fold[r] & TRH_FOLD_MASK) != j->f) {
            memcpy(s.rt + s.nt * dim, j->refs + r * dim, dim);
            memcpy(s.yt + s.nt * m, j->Y + r * m, m * sizeof *j->Y);
            s.nt++;
        }
    if (j->Pk)
        knn_predict(&s, j->refs, dim, m, j->k, j->a, j->Pk);
    if (j->Pc || j->Pl) {
        float *Pc = trh_xmalloc((size_t)j->nq * m * sizeof *Pc);
        j->rc = cluster_predict(&s, j->refs, dim, m, j->n_clusters, j->a, Pc, j->Pl);
        if (j->Pc)
            memcpy(j->Pc, Pc, (size_t)j->nq * m * sizeof *Pc);
        free(Pc);
    }
    free(s.rt), free(s.yt);
    return NULL;
}

/* The folds with queries, trh_fit_workers() at a time; the first error. */
static int run_folds(fold_job *job, uint32_t n_jobs)
{
    const uint32_t nw = trh_fit_workers();
    pthread_t th[TRH_FIT_WORKERS_MAX];
    int started[TRH_FIT_WORKERS_MAX];
    for (uint32_t j0 = 0; j0 < n_jobs; j0 += nw) {
        const uint32_t end = n_jobs - j0 < nw ? n_jobs : j0 + nw;
        for (uint32_t j = j0 + 1; j < end; j++) /* one that cannot start runs here */
            started[j - j0] = pthread_create(&th[j - j0], NULL, fold_run, &job[j]) == 0;
        fold_run(&job[j0]);
        for (uint32_t j = j0 + 1; j < end; j++) {
            if (started[j - j0])
                pthread_join(th[j - j0], NULL);
            else
                fold_run(&job[j]);
        }
    }
    for (uint32_t j = 0; j < n_jobs; j++)
        if (job[j].rc)
            return job[j].rc;
    return 0;
}

int trh_score_methods(const int8_t *refs, size_t n, size_t n_task, uint32_t dim, const float *Y,
                     uint32_t m, const double *cn, const uint8_t *fold, uint32_t k, float a,
                     int a_given, const uint32_t *task, uint32_t n_tasks, uint32_t n_clusters,
                     const int want[TRH_N_CAND], trh_method_scores *out)
{
    memset(out, 0, sizeof *out);
    out->best = -1;
    out->n_refs = n;
    const size_t N = n ? n : 1;
    size_t *qi = trh_xmalloc(N * sizeof *qi), nq = 0;
    /* The scored queries, fold by fold (as trh_task_map_score pools them). */
    for (uint32_t f = 0; f < TRH_FOLDS; f++)
        for (size_t j = 0; j < n_task; j++) {
            const float *y = Y + j * m;
            uint32_t t = 0;
            while (t < m && !isnan(y[t]))
                t++;
            if (t == m && fold[j] == (f | TRH_FOLD_SCORED))
                qi[nq++] = j;
        }
    out->n_queries = (uint32_t)nq;
    out->Yq = trh_xmalloc((nq ? nq : 1) * m * sizeof *out->Yq);
    for (size_t i = 0; i < nq; i++)
        memcpy(out->Yq + i * m, Y + qi[i] * m, m * sizeof *Y);
    int rc = 0, lm = want[TRH_CAND_LEARNED_MAP] && n_clusters <= TR_LMAP_MAX_K;
    int use[TRH_N_CAND] = {want[TRH_CAND_KNN],
                          want[TRH_CAND_TASK_MAP] && n_tasks >= 2 && n_tasks <= TR_LMAP_MAX_K,
                          want[TRH_CAND_CLUSTER] && n_clusters, lm && n_clusters};
    if (nq < 2)
        memset(use, 0, sizeof use);
    for (int c = 0; c < TRH_N_CAND; c++)
        if (use[c])
            out->P[c] = trh_xmalloc(nq * m * sizeof *out->P[c]);
    if (use[TRH_CAND_TASK_MAP]) {
        rc = trh_task_map_score(refs, n_task, dim, Y, m, cn, task, n_tasks,
                               a_given ? &a : trh_choose_a_grid, a_given ? 1 : trh_choose_a_grid_len,
                               fold, out->P[TRH_CAND_TASK_MAP], &out->task_map);
        if (!rc && out->task_map.val_area >= 0 && out->task_map.val_queries == nq) {
            out->area[TRH_CAND_TASK_MAP] = out->task_map.val_area;
            out->scored[TRH_CAND_TASK_MAP] = 1;
        }
    }
    /* kNN and K-means (and the learned map over it), fold by fold: fitted
     * on every row outside the fold, logged ones too. A fold with fewer
     * rows than clusters leaves K-means and the map unscored. */
    fold_job job[TRH_FOLDS];
    uint32_t n_jobs = 0;
    size_t in_fold[TRH_FOLDS] = {0};
    for (size_t j = 0; j < n; j++) /* fold TRH_FOLDS: a row in every fit (log_guard.h) */
        if ((fold[j] & TRH_FOLD_MASK) < TRH_FOLDS)
            in_fold[fold[j] & TRH_FOLD_MASK]++;
    for (uint32_t f = 0, q0 = 0; f < TRH_FOLDS && !rc; f++) {
        uint32_t fq = 0;
        while (q0 + fq < nq && (fold[qi[q0 + fq]] & TRH_FOLD_MASK) == f)
            fq++;
        if (fq && n_clusters > n - in_fold[f])
            use[TRH_CAND_CLUSTER] = use[TRH_CAND_LEARNED_MAP] = 0;
        if (fq)
            job[n_jobs++] = (fold_job){refs, Y, fold, n, n - in_fold[f], f, dim, m, k, n_clusters, a,
                                       qi + q0, fq, NULL, NULL, NULL, 0};
        q0 += fq;
    }
    for (uint32_t j = 0; j < n_jobs; j++) {
        const size_t at = (size_t)(job[j].qi - qi) * m;
        job[j].Pk = use[TRH_CAND_KNN] ? out->P[TRH_CAND_KNN] + at : NULL;
        job[j].Pc = use[TRH_CAND_CLUSTER] ? out->P[TRH_CAND_CLUSTER] + at : NULL;
        job[j].Pl = use[TRH_CAND_LEARNED_MAP] ? out->P[TRH_CAND_LEARNED_MAP] + at : NULL;
    }
    if (!rc && (use[TRH_CAND_KNN] || use[TRH_CAND_CLUSTER] || use[TRH_CAND_LEARNED_MAP]))
        rc = run_folds(job, n_jobs);
    for (int c = 0; c < TRH_N_CAND && !rc; c++)
        if (use[c] && c != TRH_CAND_TASK_MAP) {
            out->area[c] = area_of(out->P[c], out->Yq, (uint32_t)nq, m, cn);
            out->scored[c] = 1;
        }
    for (int c = 0; c < TRH_N_CAND; c++)
        if (out->scored[c] && (out->best < 0 || out->area[c] > out->area[out->best]))
            out->best = c;
    free(qi);
    return rc;
}
