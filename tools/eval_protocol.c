/* tinyroute eval --data DIR ... (no --pack): the evaluation protocol of
 * Jitkrittum et al. 2025 on a dataset in the builder's layout.
 *
 * Per seed: prompts split 60/10/30 train/validation/test, models split in
 * half. Training models are known on the train prompts; test models (the
 * "new" models of a dynamic pool) only through their labels on the
 * validation prompts; the test prompts are routed among the test models.
 * Hyper-parameters (k and the prior strength a of kNN, K of K-means, whose
 * Psi is shrunk with that a) are
 * chosen on the validation prompts with the training models. The routers run on the device's own
 * int8 embeddings and kernels; a float32 reference runs beside kNN for the
 * fidelity figures. Every method gives a deferral curve (accuracy against
 * normalized cost as lambda sweeps), summarised by Area, QNC and Peak. */
#include "eval_protocol.h"
#include "eval_local.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mbedtls/sha256.h>

#include "choose.h"
#include "dataset.h"
#include "packwriter.h"
#include "pareto.h"
#include "task_map.h"
#include "report.h"
#include "tr_cluster.h"
#include "refs.h"
#include "tr_embed.h"
#include "tr_format.h"
#include "tr_knn.h"
#include "tr_learned_map.h"
#include "tr_task_scores.h"
#include "util.h"
#include "trh_rand.h"

#define GRID TRH_CURVE_GRID
#define OUT_GRID 101    /* the curve points written to the JSON */
#define N_LAMBDA TRH_CURVE_LAMBDAS
/* K of K-means; kNN's k and prior strength a come from tools/choose.h,
 * the grids build searches too. */
static const uint32_t K_grid[] = {4, 8, 16, 32, 64};
#define N_CG (sizeof K_grid / sizeof *K_grid)
#define MAX_UNKNOWN_SHARE 0.01 /* a model with more unknown scores is left out */

enum { M_KNN, M_KMEANS, M_LMAP, M_TMAP, M_PARETO, M_ORACLE, M_COUNT };
static const char *method_id[M_COUNT] = {"knn",      "kmeans",        "learned-map",
                                         "task-map", "pareto-random", "oracle"};
static const char *method_label[M_COUNT] = {
    "kNN (int8 core)", "K-means clusters (int8 core)", "Learned cluster map",
    "Task map (learned map over the tasks)", "Pareto-random", "Oracle"};
static const char *method_kind[M_COUNT] = {"router", "router", "router", "router", "baseline", "bound"};

typedef struct eval_opts {
    const char **data; /* room for every argument: no fixed count of --data */
    int n_data;
    const char *embedder;
    int n_seeds;
    int no_pc, uniform, random_emb, no_lmap;
    int hashed; /* the --embedder table is a hashed n-gram table */
    const char *embeddings; /* DIR/this .npy holds each data set's vectors */
    int fixed_pool; /* no model split: every model known on the train prompts */
    int tasks;      /* the leave-one-task-out table */
    double max_cost;/* > 0: only models this cheap */
    const char *json, *report;
    int force;
    const char *command;
    int local;             /* --local: tools/eval_local.c */
    double device_max_cost;
} eval_opts;

/* ---- small numerics ---- */

/* ---- one data set ---- */

typedef struct prepared {
    const char *name, *path;
    trh_dataset ds;
    uint32_t n_models, *model_col; /* kept models -> dataset column */
    uint32_t n;                     /* kept prompts */
    uint32_t *prompt;               /* kept prompt -> dataset row */
    float *Y;                       /* n x n_models scores */
    uint32_t dim;
    float *raw;                     /* n x dim unit SIF vectors, no pc */
    uint32_t dropped_unknown, dropped_no_word;
    const char **task;              /* kept prompt -> its task (name_tasks) */
    uint32_t tasks_inferred;
    char *cost_unit; /* the first line of cost_unit.txt, or NULL */
    char emb_sha[65]; /* of the --embeddings file */
} prepared;

static int file_sha256(const char *path, char hex[65]);

/* The prompts' vectors are given (random floor or --embeddings), not
 * computed from the text by the embedder table. */
static int given_vectors(const eval_opts *o)
{
    return o->random_emb || o->embeddings;
}

/* A float32, C-order, 2-D .npy file (what numpy.save writes) of exactly rows
 * rows; its column count goes to *cols. */
static float *read_npy(const char *path, size_t rows, uint32_t *cols)
{
    size_t len;
    uint8_t *b = trh_read_file(path, &len);
    if (!b)
        return NULL;
    float *out = NULL;
    size_t hl = 0, at = 0;
    if (len >= 10 && memcmp(b, "\x93NUMPY", 6) == 0) {
        if (b[6] == 1)
            hl = b[8] | (size_t)b[9] << 8, at = 10;
        else if (b[6] >= 2 && len >= 12)
            hl = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24, at = 12;
    }
    if (!at || hl > len - at) {
        trh_err("%s: not a .npy file", path);
        goto out;
    }
    char hdr[512];
    size_t n = hl < sizeof hdr - 1 ? hl : sizeof hdr - 1;
    memcpy(hdr, b + at, n);
    hdr[n] = 0;
    const char *sh = strstr(hdr, "'shape':");
    unsigned long long r = 0, c = 0;
    if (!strstr(hdr, "'descr': '<f4'") || !strstr(hdr, "'fortran_order': False") || !sh ||
        sscanf(sh, "'shape': (%llu, %llu)", &r, &c) != 2) {
        trh_err("%s: want a 2-D little-endian float32 C-order array (numpy.save of float32)",
               path);
        goto out;
    }
    if (r != rows || c < 1 || c > 4096 || (len - at - hl) != 4 * r * c) {
        trh_err("%s: %llu x %llu floats in %zu data bytes; want %zu rows (one per prompt) of "
               "1..4096 columns", path, r, c, len - at - hl, rows);
        goto out;
    }
    out = trh_xmalloc(4 * r * c);
    memcpy(out, b + at + hl, 4 * r * c);
    *cols = (uint32_t)c;
out:
    free(b);
    return out;
}

static void prepared_free(prepared *p)
{
    trh_dataset_free(&p->ds);
    free(p->model_col);
    free(p->prompt);
    free(p->Y);
    free(p->raw);
    free(p->task);
    free(p->cost_unit);
}

/* Each kept prompt's task. A prompt without one (a fleet's logged prompt:
 * tools/fleet_step.py writes none) among prompts of two or more tasks gets
 * the nearest task's, by build's rule (trh_task_ids, trh_infer_tasks, here
 * on the unit vectors): as a task "" of its own it made one task of every
 * topic in the task map, the S3 table and the local scenarios, unlike the
 * pack build makes of the same data. */
static void name_tasks(prepared *p)
{
    const uint32_t n = p->n;
    p->task = trh_xmalloc((n ? n : 1) * sizeof *p->task);
    for (uint32_t i = 0; i < n; i++)
        p->task[i] = p->ds.prompts[p->prompt[i]].task;
    uint32_t *id = trh_xmalloc((n ? n : 1) * sizeof *id);
    const char **names = trh_xmalloc((n ? n : 1) * sizeof *names);
    size_t untasked;
    const uint32_t T = trh_task_ids(p->task, n, id, names, &untasked);
    if (untasked) {
        p->tasks_inferred = (uint32_t)trh_infer_tasks_unit(p->raw, n, p->dim, T, id);
        for (uint32_t i = 0; i < n; i++)
            p->task[i] = names[id[i]];
    }
    free(id), free(names);
}

static int prepare(const char *path, uint8_t *table, size_t table_len, const eval_opts *o,
                   prepared *p)
{
    memset(p, 0, sizeof *p);
    if (table)
        tr_emb_set_pc(table, 0); /* a previous data set's pc is not ours */
    p->path = path;
    const char *slash = strrchr(path, '/');
    p->name = slash && slash[1] ? slash + 1 : path;
    if (trh_dataset_load(path, &p->ds))
        return 1;
    char *unit_path = trh_path_join(path, "cost_unit.txt");
    FILE *uf = fopen(unit_path, "r"); /* optional: without it, costs are models.csv's */
    free(unit_path);
    if (uf) {
        size_t cap = 0;
        if (trh_getline_max(&p->cost_unit, &cap, uf, TRH_LINE_MAX) >= 0)
            p->cost_unit[strcspn(p->cost_unit, "\r\n")] = 0;
        else
            free(p->cost_unit), p->cost_unit = NULL;
        fclose(uf);
    }
    trh_dataset *ds = &p->ds;
    p->model_col = trh_xmalloc(ds->n_models * sizeof *p->model_col);
    for (uint32_t m = 0; m < ds->n_models; m++) {
        size_t unknown = 0;
        for (size_t i = 0; i < ds->n_prompts; i++)
            unknown += isnan(ds->scores[i * ds->n_models + m]);
        if (o->max_cost > 0 && ds->models[m].cost > o->max_cost)
            continue;
        if ((double)unknown <= MAX_UNKNOWN_SHARE * (double)ds->n_prompts)
            p->model_col[p->n_models++] = m;
        else
            fprintf(stderr, "eval: %s: model %s left out (%zu unknown scores)\n", p->name,
                    ds->models[m].name, unknown);
    }
    if (p->n_models < 4)
        return trh_err("%s: the protocol needs at least 4 models with known scores", path);
    tr_embedder e = {0};
    float *given = NULL;
    if (o->embeddings) {
        char *gpath = trh_path_join(path, o->embeddings);
        given = read_npy(gpath, ds->n_prompts, &p->dim);
        for (size_t i = 0; given && i < ds->n_prompts * (size_t)p->dim; i++)
            if (!isfinite(given[i])) {
                trh_err("%s: NaN or Inf in row %zu", gpath, i / p->dim + 1);
                free(given);
                given = NULL;
            }
        if (given)
            file_sha256(gpath, p->emb_sha);
        free(gpath);
        if (!given)
            return 1;
    } else {
        tr_status st = tr_embedder_view(table, table_len, &e);
        if (st != TR_OK)
            return trh_err("embedder table: %s", tr_strerror(st));
        p->dim = e.dim;
    }
    const uint32_t dim = p->dim;
    p->prompt = trh_xmalloc(ds->n_prompts * sizeof *p->prompt);
    p->Y = trh_xmalloc(ds->n_prompts * (size_t)p->n_models * sizeof *p->Y);
    p->raw = trh_xmalloc(ds->n_prompts * (size_t)dim * sizeof *p->raw);
    uint64_t rs = 12345;
    for (size_t i = 0; i < ds->n_prompts; i++) {
        int known_all = 1;
        for (uint32_t m = 0; m < p->n_models; m++)
            known_all &= !isnan(ds->scores[i * ds->n_models + p->model_col[m]]);
        if (!known_all) {
            p->dropped_unknown++;
            continue;
        }
        float *v = p->raw + (size_t)p->n * dim;
        uint32_t known = 0;
        const char *t = ds->prompts[i].text;
        if (given) {
            memcpy(v, given + i * dim, dim * sizeof *v);
            for (uint32_t d = 0; d < dim; d++)
                known |= v[d] != 0.0f;
        } else if (tr_embed_f32(&e, t, strlen(t), v, &known) != TR_OK) {
            known = 0;
        }
        if (!known) {
            p->dropped_no_word++;
            continue;
        }
        if (o->random_emb) /* the floor: a fixed random direction per prompt */
            for (uint32_t d = 0; d < dim; d++)
                v[d] = (float)(trh_unit_double(&rs) - 0.5);
        trh_normalize(v, dim);
        for (uint32_t m = 0; m < p->n_models; m++)
            p->Y[(size_t)p->n * p->n_models + m] = ds->scores[i * ds->n_models + p->model_col[m]];
        p->prompt[p->n++] = (uint32_t)i;
    }
    free(given);
    name_tasks(p);
    return 0;
}

/* A seed's split of prompts and models. */
typedef struct split {
    uint32_t *tr, *va, *te, ntr, nva, nte; /* prompt indices (into prepared) */
    uint32_t *mtr, *mte, nmtr, nmte;      /* model indices */
} split;

/* Sub-matrix of Y: rows idx, columns cols. */
static float *sub_y(const prepared *p, const uint32_t *idx, uint32_t n, const uint32_t *cols,
                    uint32_t nc)
{
    float *y = trh_xmalloc((size_t)n * nc * sizeof *y);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t m = 0; m < nc; m++)
            y[(size_t)i * nc + m] = p->Y[(size_t)idx[i] * p->n_models + cols[m]];
    return y;
}

static void norm_costs(const prepared *p, const uint32_t *cols, uint32_t nc, double *cn,
                       double *cmin, double *cmax)
{
    *cmin = INFINITY;
    *cmax = -INFINITY;
    for (uint32_t m = 0; m < nc; m++) {
        double c = p->ds.models[p->model_col[cols[m]]].cost;
        *cmin = fmin(*cmin, c);
        *cmax = fmax(*cmax, c);
    }
    for (uint32_t m = 0; m < nc; m++) {
        double c = p->ds.models[p->model_col[cols[m]]].cost;
        cn[m] = *cmax > *cmin ? (c - *cmin) / (*cmax - *cmin) : 0.0;
    }
}

/* References for the device's kNN: the int8 rows of prompts idx, in the
 * pack's layout, and their inverse norms (trh_refs_free releases them). */
static tr_refs gather_refs(const int8_t *q, const uint32_t *idx, uint32_t n, uint32_t dim)
{
    int8_t *rows = trh_xmalloc((size_t)n * dim);
    for (uint32_t j = 0; j < n; j++)
        memcpy(rows + (size_t)j * dim, q + (size_t)idx[j] * dim, dim);
    tr_refs refs = trh_xrefs(rows, dim, n, dim);
    free(rows);
    return refs;
}

/* The k_max nearest references of each query, int8 core (device kernels). */
static void knn_int8(const int8_t *q, const uint32_t *qi, uint32_t nq, const int8_t *rows,
                     const uint32_t *ri, uint32_t nr, uint32_t dim, uint32_t kmax,
                     uint32_t *nb_out)
{
    tr_refs refs = gather_refs(rows, ri, nr, dim);
    int32_t dots[TR_KNN_BLOCK];
    tr_neighbor *nb = trh_xmalloc(kmax * sizeof *nb);
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t f = tr_knn_search(tr_kernels_active(), &refs, q + (size_t)qi[i] * dim, kmax,
                                   dots, nb);
        for (uint32_t j = 0; j < kmax; j++)
            nb_out[(size_t)i * kmax + j] = nb[j < f ? j : f - 1].idx;
    }
    free(nb);
    trh_refs_free(&refs);
}

/* The float32 reference: exact cosine on the unit float vectors. */
typedef struct fnb { float s; uint32_t i; } fnb;
static int cmp_fnb(const void *a, const void *b)
{
    const fnb *x = a, *y = b;
    return x->s > y->s ? -1 : x->s < y->s ? 1 : (x->i > y->i) - (x->i < y->i);
}

static void knn_f32(const float *f, const uint32_t *qi, uint32_t nq, const uint32_t *ri,
                    uint32_t nr, uint32_t dim, uint32_t kmax, uint32_t *nb_out)
{
    /* A sorted top-kmax list: most rows fail the first comparison. */
    fnb *top = trh_xmalloc((kmax + 1) * sizeof *top);
    float sims[4];
    for (uint32_t i = 0; i < nq; i++) {
        const float *x = f + (size_t)qi[i] * dim;
        uint32_t nt = 0;
        for (uint32_t j = 0; j < nr; j++) {
            /* Four rows' sums at a time (independent chains, each in d
             * order: the same floats as one at a time). */
            if (j % 4 == 0) {
                const float *y[4];
                for (uint32_t r = 0; r < 4; r++)
                    y[r] = f + (size_t)ri[j + r < nr ? j + r : j] * dim;
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (uint32_t d = 0; d < dim; d++) {
                    const float xd = x[d];
                    s0 += xd * y[0][d];
                    s1 += xd * y[1][d];
                    s2 += xd * y[2][d];
                    s3 += xd * y[3][d];
                }
                sims[0] = s0, sims[1] = s1, sims[2] = s2, sims[3] = s3;
            }
            fnb c = {sims[j % 4], j};
            if (nt == kmax && cmp_fnb(&c, &top[nt - 1]) >= 0)
                continue;
            uint32_t at = nt < kmax ? nt++ : kmax - 1;
            while (at > 0 && cmp_fnb(&c, &top[at - 1]) < 0) {
                top[at] = top[at - 1];
                at--;
            }
            top[at] = c;
        }
        for (uint32_t j = 0; j < kmax; j++)
            nb_out[(size_t)i * kmax + j] = top[j < nt ? j : nt - 1].i;
    }
    free(top);
}

/* The labels a pack would carry for models with scores Y (n x nm, all
 * known) on n references, as tools/packwriter.c writes them: correct bits
 * (score >= 0.5), round(score * 255) when some score is fractional, and
 * each model's prior, its mean score. */
/* Predicted correctness from the first k neighbours (indices into the
 * labels' references): the device's own estimator, prior strength a. */
static void knn_predict(const uint32_t *nb, uint32_t nq, uint32_t kmax, uint32_t k,
                        const trh_host_labels *h, float a, float *P)
{
    tr_neighbor t[TR_K_MAX];
    for (uint32_t i = 0; i < nq; i++) {
        for (uint32_t j = 0; j < k; j++)
            t[j] = (tr_neighbor){0.0f, nb[(size_t)i * kmax + j]};
        tr_knn_predict(&h->lab, t, k, 0, 1.0f, a, P + (size_t)i * h->lab.n_models);
    }
}

/* K-means on the train prompts, shipped as the device ships it; every
 * prompt's cluster by the device's int8 assignment. */
static int fit_clusters(const prepared *p, const float *f, const int8_t *q, const split *s,
                        uint32_t K, uint64_t seed, trh_buf *sec, tr_clusters *cv, float *cent,
                        uint32_t *assign_all)
{
    const uint32_t dim = p->dim;
    float *x = trh_xmalloc((size_t)s->ntr * dim * sizeof *x);
    uint32_t *a = trh_xmalloc(s->ntr * sizeof *a);
    for (uint32_t i = 0; i < s->ntr; i++)
        memcpy(x + (size_t)i * dim, f + (size_t)s->tr[i] * dim, dim * sizeof *x);
    double inertia = trh_kmeans_fit(x, s->ntr, dim, K, seed, 50, cent, a);
    free(x);
    free(a);
    if (inertia < 0 || trh_clusters_section(cent, K, dim, 1, 0.0f, sec) ||
        tr_clusters_view(sec->data, sec->len, dim, 1, cv) != TR_OK)
        return trh_err("k-means failed");
    int32_t dots[TR_KNN_BLOCK];
    for (uint32_t i = 0; i < p->n; i++) {
        const int8_t *qi = q + (size_t)i * dim;
        assign_all[i] = tr_cluster_assign(tr_kernels_active(), cv, qi, dots);
    }
    return 0;
}

/* Psi of the models cols from the labelled prompts idx, shrunk with
 * strength a as the builder shrinks it. */
static void psi_of(const prepared *p, const uint32_t *idx, uint32_t n, const uint32_t *cols,
                   uint32_t nc, const uint32_t *assign_all, uint32_t K, float a, float *psi)
{
    float *y = sub_y(p, idx, n, cols, nc);
    uint32_t *asg = trh_xmalloc(n * sizeof *asg);
    for (uint32_t i = 0; i < n; i++)
        asg[i] = assign_all[idx[i]];
    trh_cluster_psi(y, n, nc, asg, K, a, psi);
    free(asg);
    free(y);
}

static void cluster_predict(const tr_clusters *cv0, const float *psi, uint32_t nc,
                            const uint32_t *assign_all, const uint32_t *idx, uint32_t n,
                            float *P)
{
    tr_clusters cv = *cv0;
    cv.psi = psi;
    cv.n_models = nc;
    for (uint32_t i = 0; i < n; i++)
        tr_cluster_predict(&cv, assign_all[idx[i]], P + (size_t)i * nc);
}

/* The operating points: the cost (relative to the best single model's) at
 * which a curve first reaches these shares of that model's accuracy. The
 * last is QNC. */
#define N_CPT 4
static const double cpt_share[N_CPT] = {0.80, 0.90, 0.95, 1.00};
static const char *const cpt_key[N_CPT] = {"80", "90", "95", "100"};

typedef struct seed_result {
    trh_curve c[M_COUNT];
    int has[M_COUNT];
    uint32_t k, K, n_tasks; /* n_tasks: the task map's clusters (0: no task map) */
    double tmap_l2;        /* the task map's l2, chosen on validation */
    float a;               /* kNN prior strength chosen with k */
    float aK;              /* the a the clusters' Psi was shrunk with (= a) */
    double best_single_q;  /* the best single test model's test accuracy */
    double cheap_q;        /* the cheapest test model's: APGR's floor */
    double cpt[M_COUNT][N_CPT], apgr[M_COUNT];
    /* Per kept model (heap, n_models): test accuracy and normalised cost,
     * NAN where the model is not a test model of this seed. */
    double *single_acc, *single_cn;
    /* fidelity (kNN at the chosen k) */
    double same, area_f32, recall10, recall10_pf;
} seed_result;

static void seed_result_free(seed_result *r)
{
    free(r->single_acc);
    free(r->single_cn);
}

/* The least raw cost at which curve c reaches target, over c_best; NAN if
 * it never does. */
static double cost_to_reach(const trh_curve *c, double target, double cmin, double cmax,
                            double c_best)
{
    uint32_t g = trh_curve_first_reach(c->q, GRID, target);
    if (g == UINT32_MAX)
        return NAN;
    double raw = cmin + (cmax - cmin) * (double)g / (GRID - 1);
    return c_best > 0 ? raw / c_best : 0.0;
}

/* Each test model's accuracy on the test prompts and normalised cost; the
 * best of them (QNC's target; ties to the cheaper, whose cost *c_best gets)
 * and the cheapest (APGR's floor; ties to the more accurate). */
static void single_models_of(const prepared *p, const split *s, const float *Yte,
                             const double *cn_te, seed_result *r, double *c_best)
{
    r->single_acc = trh_xmalloc(p->n_models * sizeof *r->single_acc);
    r->single_cn = trh_xmalloc(p->n_models * sizeof *r->single_cn);
    for (uint32_t m = 0; m < p->n_models; m++)
        r->single_acc[m] = r->single_cn[m] = NAN;
    r->best_single_q = -1;
    *c_best = 0;
    double c_cheap = INFINITY;
    for (uint32_t m = 0; m < s->nmte; m++) {
        double a = 0;
        for (uint32_t i = 0; i < s->nte; i++)
            a += Yte[(size_t)i * s->nmte + m];
        a /= s->nte;
        double c = p->ds.models[p->model_col[s->mte[m]]].cost;
        r->single_acc[s->mte[m]] = a;
        r->single_cn[s->mte[m]] = cn_te[m];
        if (a > r->best_single_q || (a == r->best_single_q && c < *c_best)) {
            r->best_single_q = a;
            *c_best = c;
        }
        if (c < c_cheap || (c == c_cheap && a > r->cheap_q)) {
            c_cheap = c;
            r->cheap_q = a;
        }
    }
}

/* QNC, the CPT points and APGR of every method's curve. */
static void operating_points(seed_result *r, double cmin, double cmax, double c_best)
{
    for (int m = 0; m < M_COUNT; m++) {
        if (!r->has[m])
            continue;
        r->c[m].qnc = cost_to_reach(&r->c[m], r->best_single_q, cmin, cmax, c_best);
        for (int t = 0; t < N_CPT; t++)
            r->cpt[m][t] =
                cost_to_reach(&r->c[m], cpt_share[t] * r->best_single_q, cmin, cmax, c_best);
        r->apgr[m] = trh_curve_apgr(r->c[m].q, GRID, r->cheap_q, r->best_single_q);
    }
}

/* Pareto-random on the test prompts: the test models' front by validation
 * accuracy (by cost, then the better first), mixed at each budget. */
static void pareto_random_curve(const split *s, const float *Yva_te, const float *Yte,
                                const double *cn_te, trh_curve *c)
{
    const uint32_t nm = s->nmte;
    double *va_acc = trh_xmalloc(nm * sizeof *va_acc), *te_acc = trh_xmalloc(nm * sizeof *te_acc);
    for (uint32_t m = 0; m < nm; m++) {
        va_acc[m] = te_acc[m] = 0;
        for (uint32_t i = 0; i < s->nva; i++)
            va_acc[m] += Yva_te[(size_t)i * nm + m];
        for (uint32_t i = 0; i < s->nte; i++)
            te_acc[m] += Yte[(size_t)i * nm + m];
        va_acc[m] /= s->nva;
        te_acc[m] /= s->nte;
    }
    uint32_t *order = trh_xmalloc(nm * sizeof *order), *front = trh_xmalloc(nm * sizeof *front);
    uint32_t nf = 0;
    for (uint32_t m = 0; m < nm; m++)
        order[m] = m;
    for (uint32_t a = 1; a < nm; a++) /* insertion sort: stable; nm^2 is small next to routing */
        for (uint32_t b = a; b > 0; b--) {
            uint32_t x = order[b - 1], y = order[b];
            if (cn_te[y] < cn_te[x] || (cn_te[y] == cn_te[x] && va_acc[y] > va_acc[x])) {
                order[b - 1] = y;
                order[b] = x;
            }
        }
    for (uint32_t a = 0; a < nm; a++)
        if (nf == 0 || va_acc[order[a]] > va_acc[front[nf - 1]])
            front[nf++] = order[a];
    uint32_t v = 0;
    for (int g = 0; g < GRID; g++) {
        double b = (double)g / (GRID - 1);
        while (v + 1 < nf && cn_te[front[v + 1]] <= b)
            v++;
        if (v + 1 >= nf || b <= cn_te[front[0]])
            c->q[g] = te_acc[front[v]];
        else {
            double c0 = cn_te[front[v]], c1 = cn_te[front[v + 1]];
            c->q[g] = te_acc[front[v]] +
                      (te_acc[front[v + 1]] - te_acc[front[v]]) * (b - c0) / (c1 - c0);
        }
    }
    trh_curve_summarise(c);
    free(va_acc), free(te_acc), free(order), free(front);
}

/* The unit rows of the int8 embeddings q of the prompts idx. */
static float *unit_rows(const int8_t *q, const uint32_t *idx, uint32_t n, uint32_t dim)
{
    float *x = trh_xmalloc((size_t)n * dim * sizeof *x);
    for (uint32_t i = 0; i < n; i++)
        trh_unit_row(q + (size_t)idx[i] * dim, dim, x + (size_t)i * dim);
    return x;
}

/* The prompts of idx whose task is one of the train prompts' (tid[] <
 * n_tasks): their positions in idx into keep, their task ids into asg;
 * returns how many. */
static uint32_t known_task(const uint32_t *tid, uint32_t n_tasks, const uint32_t *idx, uint32_t n,
                           uint32_t *keep, uint32_t *asg)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (tid[idx[i]] < n_tasks)
            keep[k] = idx[i], asg[k++] = tid[idx[i]];
    return k;
}

/* The task map (M_TMAP): the learned map's device code with the data's tasks
 * as its clusters. theta: a softmax regression of the train prompts onto
 * their tasks (l2 on validation); Psi: each model's error per task, from the
 * prompts that label it (train for the training models, lab for the routed
 * ones), shrunk with kNN's a as the clusters' Psi is. Nothing when the train
 * prompts have fewer than two tasks or more than TR_LMAP_MAX_K. */
static int task_map(const prepared *p, const int8_t *q, const split *s, const uint32_t *lab,
                    uint32_t nlab, const float *Ytr_tr, const float *Yva_tr, const float *Yte,
                    const double *cn_tr, const double *cn_te, float *P, seed_result *r)
{
    const uint32_t dim = p->dim, n = p->n;
    uint32_t *tid = trh_xmalloc(n * sizeof *tid), T = 0;
    trh_strmap names = {0};
    for (uint32_t i = 0; i < n; i++)
        tid[i] = UINT32_MAX;
    for (uint32_t i = 0; i < s->ntr; i++) {
        size_t t;
        const char *name = p->task[s->tr[i]];
        if (!trh_strmap_get(&names, name, &t))
            trh_strmap_add(&names, name, t = T++, NULL);
        tid[s->tr[i]] = (uint32_t)t;
    }
    for (uint32_t i = 0; i < n; i++) { /* validation and test prompts of a train task */
        size_t t;
        if (tid[i] == UINT32_MAX && trh_strmap_get(&names, p->task[i], &t))
            tid[i] = (uint32_t)t;
    }
    trh_strmap_free(&names);
    if (T < 2 || T > TR_LMAP_MAX_K) {
        free(tid);
        return 0;
    }
    float *x = unit_rows(q, s->tr, s->ntr, dim), *cent = trh_xmalloc((size_t)T * dim * sizeof *cent);
    uint32_t *task = trh_xmalloc(s->ntr * sizeof *task);
    for (uint32_t i = 0; i < s->ntr; i++)
        task[i] = tid[s->tr[i]];
    trh_task_means(x, task, s->ntr, T, dim, cent);
    const uint32_t mx = s->nmtr > s->nmte ? s->nmtr : s->nmte;
    float *psi = trh_xmalloc((size_t)T * mx * sizeof *psi),
          *theta = trh_xmalloc((size_t)T * (dim + 1) * sizeof *theta),
          *best = trh_xmalloc((size_t)T * (dim + 1) * sizeof *best);
    uint32_t *keep = trh_xmalloc(n * sizeof *keep), *asg = trh_xmalloc(n * sizeof *asg);
    tr_clusters cv = {.k = T, .dim = dim, .psi = psi};
    float z[TR_LMAP_MAX_K];
    trh_curve cv_tmp;
    double best_area = -1;
    /* l2 on validation: the training models, Psi from the train prompts. */
    cv.n_models = s->nmtr;
    trh_cluster_psi(Ytr_tr, s->ntr, s->nmtr, task, T, r->a, psi);
    for (uint32_t g = 0; g < TRH_TASK_MAP_N_L2; g++) {
        if (trh_task_map_fit(x, s->ntr, dim, task, cent, T, trh_task_map_l2[g], TRH_TASK_MAP_ITERS,
                            theta) < 0)
            return trh_err("out of memory");
        tr_learned_map map = {T, dim, theta};
        for (uint32_t i = 0; i < s->nva; i++)
            tr_learned_map_predict(&map, &cv, q + (size_t)s->va[i] * dim, z, P + (size_t)i * s->nmtr);
        trh_route_curve(P, Yva_tr, s->nva, s->nmtr, cn_tr, &cv_tmp, NULL);
        if (cv_tmp.area > best_area) {
            best_area = cv_tmp.area;
            r->tmap_l2 = trh_task_map_l2[g];
            memcpy(best, theta, (size_t)T * (dim + 1) * sizeof *best);
        }
    }
    /* Test: the routed models' Psi from their labelled prompts. */
    uint32_t nk = known_task(tid, T, lab, nlab, keep, asg);
    float *y = sub_y(p, keep, nk, s->mte, s->nmte);
    cv.n_models = s->nmte;
    trh_cluster_psi(y, nk, s->nmte, asg, T, r->a, psi);
    tr_learned_map map = {T, dim, best};
    for (uint32_t i = 0; i < s->nte; i++)
        tr_learned_map_predict(&map, &cv, q + (size_t)s->te[i] * dim, z, P + (size_t)i * s->nmte);
    trh_route_curve(P, Yte, s->nte, s->nmte, cn_te, &r->c[M_TMAP], NULL);
    r->has[M_TMAP] = 1;
    r->n_tasks = T;
    free(y), free(tid), free(x), free(cent), free(task), free(psi), free(theta), free(best);
    free(keep), free(asg);
    return 0;
}

/* Every prompt's embedding as the device computes it: the component SIF
 * removes fitted on the ntr prompts train (no labels), then float rows into
 * f (unit, when f is given) and the device's int8 bits into q. */
static int embed_all(const prepared *p, uint8_t *table, size_t table_len, const eval_opts *o,
                     const uint32_t *train, uint32_t ntr, float *f, int8_t *q)
{
    const uint32_t dim = p->dim, n = p->n;
    tr_embedder e;
    if (!o->no_pc && !given_vectors(o)) {
        float *x = trh_xmalloc((size_t)ntr * dim * sizeof *x);
        for (uint32_t i = 0; i < ntr; i++)
            memcpy(x + (size_t)i * dim, p->raw + (size_t)train[i] * dim, dim * sizeof *x);
        float *pc = (float *)(void *)(table + tr_ld32(table + TR_E_OFF_PC));
        int bad = trh_first_pc(x, ntr, dim, pc);
        free(x);
        if (bad)
            return trh_err("out of memory");
        tr_emb_set_pc(table, 1);
    } else if (table) {
        tr_emb_set_pc(table, 0);
    }
    if (!given_vectors(o) && tr_embedder_view(table, table_len, &e) != TR_OK)
        return trh_err("internal: embedder view");
    float *row = f ? NULL : trh_xmalloc(dim * sizeof *row);
    for (uint32_t i = 0; i < n; i++) {
        float *v = f ? f + (size_t)i * dim : row;
        if (given_vectors(o)) {
            memcpy(v, p->raw + (size_t)i * dim, dim * sizeof *v);
        } else {
            uint32_t known;
            const char *t = p->ds.prompts[p->prompt[i]].text;
            tr_embed_f32(&e, t, strlen(t), v, &known);
        }
        if (tr_quantize_i8(v, dim, q + (size_t)i * dim) != TR_OK) {
            /* Zeroed by the pc removal: a direction of its own. */
            memset(q + (size_t)i * dim, 0, dim);
            q[(size_t)i * dim + i % dim] = 1;
        }
        if (f)
            trh_normalize(v, dim);
    }
    free(row);
    return 0;
}

static int run_seed(const prepared *p, uint8_t *table, size_t table_len, const eval_opts *o,
                    uint64_t seed, seed_result *r)
{
    const uint32_t dim = p->dim, n = p->n;
    memset(r, 0, sizeof *r);
    uint64_t rs = seed * 0x2545F4914F6CDD1Dull + 1;
    /* Splits. */
    split s = {0};
    uint32_t *perm = trh_xmalloc(n * sizeof *perm);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    trh_shuffle(perm, n, &rs);
    s.ntr = (uint32_t)(0.6 * n);
    s.nva = (uint32_t)(0.1 * n);
    s.nte = n - s.ntr - s.nva;
    s.tr = perm;
    s.va = perm + s.ntr;
    s.te = perm + s.ntr + s.nva;
    uint32_t *mperm = trh_xmalloc(p->n_models * sizeof *mperm);
    for (uint32_t m = 0; m < p->n_models; m++)
        mperm[m] = m;
    trh_shuffle(mperm, p->n_models, &rs);
    s.nmtr = o->fixed_pool ? p->n_models : p->n_models / 2;
    s.nmte = o->fixed_pool ? p->n_models : p->n_models - s.nmtr;
    s.mtr = mperm;
    s.mte = o->fixed_pool ? mperm : mperm + s.nmtr;
    /* Where the routed (test) models' labels come from: the validation
     * prompts for new models, the train prompts for a fixed pool. */
    const uint32_t *lab = o->fixed_pool ? s.tr : s.va, nlab = o->fixed_pool ? s.ntr : s.nva;

    /* Embeddings: pc fitted on the train prompts, then the device's bits. */
    float *f = trh_xmalloc((size_t)n * dim * sizeof *f);
    int8_t *q = trh_xmalloc((size_t)n * dim);
    if (embed_all(p, table, table_len, o, s.tr, s.ntr, f, q))
        return 1;

    double *cn_tr = trh_xmalloc(s.nmtr * sizeof *cn_tr), *cn_te = trh_xmalloc(s.nmte * sizeof *cn_te);
    double cmin, cmax, tmin, tmax;
    norm_costs(p, s.mtr, s.nmtr, cn_tr, &tmin, &tmax);
    norm_costs(p, s.mte, s.nmte, cn_te, &cmin, &cmax);
    float *Yte = sub_y(p, s.te, s.nte, s.mte, s.nmte);   /* truth, test models */
    float *Yva_te = sub_y(p, s.va, s.nva, s.mte, s.nmte);
    float *Ylab = sub_y(p, lab, nlab, s.mte, s.nmte); /* what the router knows of them */
    float *Yva_tr = sub_y(p, s.va, s.nva, s.mtr, s.nmtr);
    float *Ytr_tr = sub_y(p, s.tr, s.ntr, s.mtr, s.nmtr);
    float *P = trh_xmalloc((size_t)(s.nte > s.nva ? s.nte : s.nva) * p->n_models * sizeof *P);
    trh_curve cv_tmp;

    double c_best;
    single_models_of(p, &s, Yte, cn_te, r, &c_best);

    /* kNN: k on validation (training models, train references). */
    uint32_t kmax = trh_choose_k_grid[trh_choose_k_grid_len - 1];
    if (kmax > s.nva || kmax > nlab)
        kmax = s.nva < nlab ? s.nva : nlab;
    uint32_t *nb = trh_xmalloc((size_t)(s.nva > s.nte ? s.nva : s.nte) * trh_choose_k_grid[trh_choose_k_grid_len - 1] *
                              sizeof *nb);
    knn_int8(q, s.va, s.nva, q, s.tr, s.ntr, dim, trh_choose_k_grid[trh_choose_k_grid_len - 1], nb);
    double best_area = -1;
    trh_host_labels hl;
    trh_host_labels_make(Ytr_tr, s.ntr, s.nmtr, &hl);
    for (uint32_t g = 0; g < trh_choose_k_grid_len; g++) {
        if (trh_choose_k_grid[g] > kmax)
            break;
        for (uint32_t ga = 0; ga < trh_choose_a_grid_len; ga++) {
            knn_predict(nb, s.nva, trh_choose_k_grid[trh_choose_k_grid_len - 1], trh_choose_k_grid[g], &hl, trh_choose_a_grid[ga], P);
            trh_route_curve(P, Yva_tr, s.nva, s.nmtr, cn_tr, &cv_tmp, NULL);
            if (cv_tmp.area > best_area) {
                best_area = cv_tmp.area;
                r->k = trh_choose_k_grid[g];
                r->a = trh_choose_a_grid[ga];
            }
        }
    }
    trh_host_labels_free(&hl);
    /* Test: the test models through their labels. */
    trh_host_labels_make(Ylab, nlab, s.nmte, &hl);
    knn_int8(q, s.te, s.nte, q, lab, nlab, dim, kmax, nb);
    knn_predict(nb, s.nte, kmax, r->k, &hl, r->a, P);
    uint32_t *ch8 = trh_xmalloc((size_t)N_LAMBDA * s.nte * sizeof *ch8),
             *ch32 = trh_xmalloc((size_t)N_LAMBDA * s.nte * sizeof *ch32);
    trh_route_curve(P, Yte, s.nte, s.nmte, cn_te, &r->c[M_KNN], ch8);
    r->has[M_KNN] = 1;
    /* Fidelity: the same with float32 embeddings and exact cosine. */
    uint32_t *nbf = trh_xmalloc((size_t)s.nte * kmax * sizeof *nbf);
    knn_f32(f, s.te, s.nte, lab, nlab, dim, kmax, nbf);
    knn_predict(nbf, s.nte, kmax, r->k, &hl, r->a, P);
    trh_host_labels_free(&hl);
    trh_curve cf;
    trh_route_curve(P, Yte, s.nte, s.nmte, cn_te, &cf, ch32);
    r->area_f32 = cf.area;
    size_t same = 0;
    for (size_t i = 0; i < (size_t)N_LAMBDA * s.nte; i++)
        same += ch8[i] == ch32[i];
    r->same = (double)same / ((double)N_LAMBDA * s.nte);
    uint32_t k10 = kmax < 10 ? kmax : 10;
    double rec = 0;
    for (uint32_t i = 0; i < s.nte; i++)
        for (uint32_t a = 0; a < k10; a++)
            for (uint32_t b = 0; b < k10; b++)
                rec += nb[(size_t)i * kmax + a] == nbf[(size_t)i * kmax + b];
    r->recall10 = rec / ((double)s.nte * k10);
    /* Prefilter recall: Hamming top-C on sign codes, exact rerank. */
    {
        const uint32_t words = (dim + 63) / 64, C = nlab < 400 ? nlab : 400;
        tr_refs refs = gather_refs(q, lab, nlab, dim);
        uint64_t *codes = trh_xcalloc((size_t)nlab * words, 8), *qc = trh_xmalloc(words * 8);
        for (uint32_t j = 0; j < nlab; j++)
            tr_knn_sign_code(q + (size_t)lab[j] * dim, dim, codes + (size_t)j * words, words);
        tr_codes cd = {words, codes};
        uint32_t ham[TR_KNN_BLOCK];
        tr_neighbor *cand = trh_xmalloc(C * sizeof *cand), out[10];
        double rp = 0;
        for (uint32_t i = 0; i < s.nte; i++) {
            uint32_t got = tr_knn_search_prefilter(tr_kernels_active(), &refs, &cd,
                                                   q + (size_t)s.te[i] * dim, k10, C, qc, ham,
                                                   cand, out);
            for (uint32_t a = 0; a < got; a++)
                for (uint32_t b = 0; b < k10; b++)
                    rp += out[a].idx == nbf[(size_t)i * kmax + b];
        }
        r->recall10_pf = rp / ((double)s.nte * k10);
        trh_refs_free(&refs);
        free(codes), free(qc), free(cand);
    }
    free(nbf);
    free(ch8);
    free(ch32);

    /* K-means: K on validation (training models' Psi from train), Psi shrunk
     * with the a chosen for kNN: a pack carries one a, and build shrinks its
     * Psi with it. (Choosing Psi's a with K from the grid as well was tried,
     * 5 seeds on routerdc, llmrouter and the fixture, both pool modes: no
     * better than a fixed 10, -0.003 summed over the 12 Areas; this, -0.002;
     * every difference within 0.0053 of a fixed 10, well inside one sd.) */
    uint32_t *assign = trh_xmalloc(n * sizeof *assign);
    float *cent = trh_xmalloc((size_t)K_grid[N_CG - 1] * dim * sizeof *cent);
    float *psi = trh_xmalloc((size_t)K_grid[N_CG - 1] * p->n_models * sizeof *psi);
    trh_buf sec = {0}, best_sec = {0};
    tr_clusters cv;
    float *best_cent = trh_xmalloc((size_t)K_grid[N_CG - 1] * dim * sizeof *best_cent);
    uint32_t *best_assign = trh_xmalloc(n * sizeof *best_assign);
    best_area = -1;
    for (uint32_t g = 0; g < N_CG; g++) {
        uint32_t K = K_grid[g];
        if (K > s.ntr / 4)
            break;
        if (fit_clusters(p, f, q, &s, K, seed, &sec, &cv, cent, assign))
            return 1;
        psi_of(p, s.tr, s.ntr, s.mtr, s.nmtr, assign, K, r->a, psi);
        cluster_predict(&cv, psi, s.nmtr, assign, s.va, s.nva, P);
        trh_route_curve(P, Yva_tr, s.nva, s.nmtr, cn_tr, &cv_tmp, NULL);
        if (cv_tmp.area > best_area) {
            best_area = cv_tmp.area;
            r->K = K;
            best_sec.len = 0;
            trh_buf_put(&best_sec, sec.data, sec.len);
            memcpy(best_cent, cent, (size_t)K * dim * sizeof *cent);
            memcpy(best_assign, assign, n * sizeof *assign);
        }
    }
    r->aK = r->a; /* recorded per method in the JSON */
    if (tr_clusters_view(best_sec.data, best_sec.len, dim, 1, &cv) != TR_OK)
        return trh_err("internal: clusters view");
    memcpy(cent, best_cent, (size_t)r->K * dim * sizeof *cent);
    memcpy(assign, best_assign, n * sizeof *assign);
    free(best_cent);
    free(best_assign);
    psi_of(p, lab, nlab, s.mte, s.nmte, assign, r->K, r->aK, psi);
    cluster_predict(&cv, psi, s.nmte, assign, s.te, s.nte, P);
    trh_route_curve(P, Yte, s.nte, s.nmte, cn_te, &r->c[M_KMEANS], NULL);
    r->has[M_KMEANS] = 1;

    /* Learned cluster map at that K: trained on the train prompts with the
     * training models; the test models enter through their Psi. */
    if (!o->no_lmap) {
        float *psi_tr = trh_xmalloc((size_t)r->K * s.nmtr * sizeof *psi_tr);
        psi_of(p, s.tr, s.ntr, s.mtr, s.nmtr, assign, r->K, r->aK, psi_tr);
        float *phi = unit_rows(q, s.tr, s.ntr, dim),
              *err = trh_xmalloc((size_t)s.ntr * s.nmtr * sizeof *err);
        for (size_t j = 0; j < (size_t)s.ntr * s.nmtr; j++)
            err[j] = 1.0f - Ytr_tr[j];
        float *theta = trh_xmalloc((size_t)r->K * (dim + 1) * sizeof *theta);
        double before;
        double loss = trh_learned_map_fit(phi, s.ntr, dim, err, s.nmtr, psi_tr, cent, r->K, 100,
                                         theta, &before);
        if (loss >= 0) {
            tr_learned_map map = {r->K, dim, theta};
            tr_clusters c2 = cv;
            c2.psi = psi;
            c2.n_models = s.nmte;
            float z[TR_LMAP_MAX_K];
            for (uint32_t i = 0; i < s.nte; i++)
                tr_learned_map_predict(&map, &c2, q + (size_t)s.te[i] * dim, z,
                                       P + (size_t)i * s.nmte);
            trh_route_curve(P, Yte, s.nte, s.nmte, cn_te, &r->c[M_LMAP], NULL);
            r->has[M_LMAP] = 1;
        }
        free(psi_tr), free(phi), free(err), free(theta);
    }

    if (!o->no_lmap && task_map(p, q, &s, lab, nlab, Ytr_tr, Yva_tr, Yte, cn_tr, cn_te, P, r))
        return 1;

    /* Pareto-random: the front by validation accuracy, mixed on test. */
    pareto_random_curve(&s, Yva_te, Yte, cn_te, &r->c[M_PARETO]);
    r->has[M_PARETO] = 1;
    /* Oracle: the truth as the prediction. */
    trh_route_curve(Yte, Yte, s.nte, s.nmte, cn_te, &r->c[M_ORACLE], NULL);
    r->has[M_ORACLE] = 1;
    operating_points(r, cmin, cmax, c_best);

    trh_buf_free(&sec);
    trh_buf_free(&best_sec);
    free(assign), free(cent), free(psi), free(nb), free(P);
    free(Yte), free(Yva_te), free(Ylab), free(Yva_tr), free(Ytr_tr);
    free(f), free(q), free(perm), free(mperm), free(cn_tr), free(cn_te);
    return 0;
}

/* ---- task-level selection, leave one task out (Shnitzer et al. 2023) ----
 * Each task in turn is the "new task": the references are every prompt of
 * the other tasks (all models known), the S3 regression table is fitted on
 * those other tasks alone (as the builder does), and one model is chosen for
 * the whole held-out task by S1, S2, S3 (after the out-of-distribution gate)
 * and BMA; each choice scores its mean accuracy on the task. The same model
 * functions as the device (models/task_scores.c); the choice rule is the device's
 * at lambda 0. */
#define TASK_K 100
#define TASK_K_DIST 19
#define TASK_MIN_PROMPTS 20

typedef struct task_row {
    const char *name;
    uint32_t n;
    double s1, s2, s3, bma, oracle;
    int kept_bma;
} task_row;

static uint32_t argmax_score(const float *v, const double *cost, uint32_t nm)
{
    uint32_t b = 0;
    for (uint32_t m = 1; m < nm; m++)
        if (v[m] > v[b] || (v[m] == v[b] && cost[m] < cost[b]))
            b = m;
    return b;
}

static int eval_tasks(const prepared *p, uint8_t *table, size_t table_len, const eval_opts *o,
                      task_row **rows_out, uint32_t *n_rows)
{
    const uint32_t n = p->n, dim = p->dim, nm = p->n_models;
    /* Embeddings: pc fitted on every prompt (unlabelled, so no leak). */
    int8_t *q = trh_xmalloc((size_t)n * dim);
    tr_embedder e;
    if (!o->no_pc && !given_vectors(o)) {
        float *pc = (float *)(void *)(table + tr_ld32(table + TR_E_OFF_PC));
        if (trh_first_pc(p->raw, n, dim, pc))
            return trh_err("out of memory");
        tr_emb_set_pc(table, 1);
    } else if (table) {
        tr_emb_set_pc(table, 0);
    }
    if (!given_vectors(o))
        tr_embedder_view(table, table_len, &e);
    float *acc = trh_xmalloc(dim * sizeof *acc);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t known;
        const char *t = p->ds.prompts[p->prompt[i]].text;
        if (given_vectors(o))
            memcpy(acc, p->raw + (size_t)i * dim, dim * sizeof *acc);
        else
            tr_embed_f32(&e, t, strlen(t), acc, &known);
        if (tr_quantize_i8(acc, dim, q + (size_t)i * dim) != TR_OK) {
            memset(q + (size_t)i * dim, 0, dim);
            q[(size_t)i * dim + i % dim] = 1;
        }
    }
    free(acc);
    /* Task ids. */
    trh_strmap names = {0};
    uint32_t *task = trh_xmalloc(n * sizeof *task), nt = 0;
    const char **tname = trh_xmalloc(n * sizeof *tname);
    for (uint32_t i = 0; i < n; i++) {
        const char *t = p->task[i];
        size_t v;
        if (trh_strmap_add(&names, t, nt, &v) == 0) {
            tname[nt] = t;
            task[i] = nt++;
        } else {
            task[i] = (uint32_t)v;
        }
    }
    trh_strmap_free(&names);
    uint32_t *count = trh_xcalloc(nt, sizeof *count);
    for (uint32_t i = 0; i < n; i++)
        count[task[i]]++;
    double *cost = trh_xmalloc(nm * sizeof *cost), *prior = trh_xmalloc(nm * sizeof *prior),
           *truth = trh_xmalloc(nm * sizeof *truth);
    for (uint32_t m = 0; m < nm; m++)
        cost[m] = p->ds.models[p->model_col[m]].cost;
    task_row *rows = trh_xcalloc(nt, sizeof *rows);
    uint32_t nr_out = 0;
    uint32_t *ri = trh_xmalloc(n * sizeof *ri); /* the references' prompts */
    float *ys = trh_xmalloc((size_t)n * nm * sizeof *ys);
    uint32_t *rtask = trh_xmalloc(n * sizeof *rtask), *remap = trh_xmalloc(nt * sizeof *remap);
    float *u = trh_xmalloc(nt * sizeof *u), *tacc = trh_xmalloc((size_t)nt * nm * sizeof *tacc);
    float *g = trh_xmalloc(nm * sizeof *g), *sg = trh_xcalloc(nm, sizeof *sg),
          *sa = trh_xcalloc(nm, sizeof *sa), *sv = trh_xcalloc(nm, sizeof *sv),
          *v = trh_xmalloc(nm * sizeof *v), *pp = trh_xmalloc(nm * sizeof *pp);
    tr_neighbor nb[TASK_K];
    int32_t dots[TR_KNN_BLOCK];
    uint32_t n_big = 0;
    for (uint32_t t = 0; t < nt; t++)
        n_big += count[t] >= TASK_MIN_PROMPTS;
    if (n_big < 3) {
        free(rows);
        rows = NULL;
        goto done; /* no task table: too few tasks */
    }
    /* Every prompt's nearest prompts of other tasks, once: each held-out
     * task's table and searches read them (trh_task_loto; the same
     * neighbours as a search per task, to the bit). The list is three times
     * the neighbours a query needs, so that a held-out task rarely holds
     * all of one. */
    for (uint32_t i = 0; i < n; i++)
        ri[i] = i;
    tr_refs all = gather_refs(q, ri, n, dim);
    trh_task_loto lo;
    if (trh_task_loto_make(tr_kernels_active(), &all, task, 3 * TASK_K, &lo) != 0)
        return trh_err("out of memory");
    trh_refs_free(&all);
    uint32_t *reduced_of = trh_xmalloc(n * sizeof *reduced_of), searched = 0;
    for (uint32_t t = 0; t < nt; t++) {
        if (count[t] < TASK_MIN_PROMPTS)
            continue;
        fprintf(stderr, "\reval: %s: task %u/%u", p->name, t + 1, nt);
        /* The references: every prompt of the other tasks. */
        uint32_t nref = 0, ntask = 0;
        for (uint32_t x = 0; x < nt; x++)
            remap[x] = x == t ? UINT32_MAX : ntask++;
        memset(prior, 0, nm * sizeof *prior);
        for (uint32_t i = 0; i < n; i++) {
            if (task[i] == t)
                continue;
            ri[nref] = i;
            memcpy(ys + (size_t)nref * nm, p->Y + (size_t)i * nm, nm * sizeof *ys);
            for (uint32_t m = 0; m < nm; m++)
                prior[m] += p->Y[(size_t)i * nm + m];
            rtask[nref++] = remap[task[i]];
        }
        tr_refs refs = gather_refs(q, ri, nref, dim);
        for (uint32_t r = 0; r < nref; r++)
            reduced_of[ri[r]] = r;
        uint32_t again;
        if (trh_task_fit_loto(&lo, tr_kernels_active(), task, t, &refs, ri, reduced_of, rtask,
                              ntask, ys, nm, TASK_K, TASK_K_DIST, u, tacc, &again) != 0)
            return trh_err("out of memory");
        searched += again;
        tr_task_table tab = {ntask, nm, TASK_K_DIST, 0.09f, 0.6f, u, tacc};
        memset(sg, 0, nm * sizeof *sg);
        memset(sa, 0, nm * sizeof *sa);
        memset(sv, 0, nm * sizeof *sv);
        tr_task_sums sums = {nm, 0, 0, sg, sa, sv};
        memset(truth, 0, nm * sizeof *truth);
        for (uint32_t i = 0; i < n; i++) {
            if (task[i] != t)
                continue;
            const int8_t *qi = q + (size_t)i * dim;
            /* i is of the held-out task: its list holds only references. */
            uint32_t f = trh_task_loto_neighbours(&lo, task, t, reduced_of, i, TASK_K, nb);
            if (f == UINT32_MAX)
                f = tr_knn_search(tr_kernels_active(), &refs, qi, TASK_K, dots, nb);
            float iq = tr_i8_inv_norm(qi, dim), ud = 0;
            for (uint32_t m = 0; m < nm; m++) {
                double sum = 0;
                for (uint32_t j = 0; j < f; j++)
                    sum += ys[(size_t)nb[j].idx * nm + m];
                g[m] = (float)(sum / f);
                truth[m] += p->Y[(size_t)i * nm + m];
            }
            uint32_t kd = f < TASK_K_DIST ? f : TASK_K_DIST;
            for (uint32_t j = 0; j < kd; j++)
                ud += 1.0f - nb[j].sim * iq;
            tr_task_sums_add(&sums, g, ud / (float)kd);
        }
        for (uint32_t m = 0; m < nm; m++) {
            truth[m] /= count[t];
            v[m] = (float)(prior[m] / nref);
        }
        task_row *row = &rows[nr_out++];
        row->name = tname[t];
        row->n = count[t];
        uint32_t bma = argmax_score(v, cost, nm);
        for (uint32_t m = 0; m < nm; m++)
            v[m] = sg[m] / (float)sums.n;
        uint32_t b1 = argmax_score(v, cost, nm);
        for (uint32_t m = 0; m < nm; m++)
            v[m] = sa[m] / (float)sums.n;
        uint32_t b2 = argmax_score(v, cost, nm);
        tr_task_p(&tab, (float)(sums.u / sums.n), pp);
        for (uint32_t m = 0; m < nm; m++)
            v[m] = pp[m] * v[m] + (1.0f - pp[m]) * (1.0f - v[m]);
        uint32_t b3 = argmax_score(v, cost, nm);
        float beats = b3 == bma ? 1.0f : tr_task_p_beats(&sums, b3, bma);
        row->kept_bma = beats < tab.gate;
        row->s1 = truth[b1];
        row->s2 = truth[b2];
        row->s3 = truth[row->kept_bma ? bma : b3];
        row->bma = truth[bma];
        row->oracle = truth[0];
        for (uint32_t m = 1; m < nm; m++)
            row->oracle = fmax(row->oracle, truth[m]);
        trh_refs_free(&refs);
    }
    fprintf(stderr, "\reval: %s: task tables: %u queries searched again past their lists\n",
            p->name, searched);
    trh_task_loto_free(&lo);
    free(reduced_of);
done:
    free(q), free(task), free(tname), free(count), free(ri), free(ys), free(rtask);
    free(remap), free(u), free(tacc), free(g), free(sg), free(sa), free(sv), free(v), free(pp);
    free(cost), free(prior), free(truth);
    *rows_out = rows;
    *n_rows = rows ? nr_out : 0;
    return 0;
}

static cJSON *tasks_json(const task_row *rows, uint32_t nr)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "n_tasks", nr);
    cJSON_AddNumberToObject(t, "k", TASK_K);
    cJSON *a = cJSON_AddArrayToObject(t, "rows");
    double mean[5] = {0};
    for (uint32_t i = 0; i < nr; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "task", rows[i].name);
        cJSON_AddNumberToObject(r, "prompts", rows[i].n);
        double x[5] = {rows[i].s1, rows[i].s2, rows[i].s3, rows[i].bma, rows[i].oracle};
        static const char *key[5] = {"s1", "s2", "s3", "bma", "oracle"};
        for (int j = 0; j < 5; j++) {
            cJSON_AddNumberToObject(r, key[j], x[j]);
            mean[j] += x[j] / nr;
        }
        cJSON_AddBoolToObject(r, "gate_kept_bma", rows[i].kept_bma);
        cJSON_AddItemToArray(a, r);
    }
    cJSON *m = cJSON_AddObjectToObject(t, "mean");
    static const char *key[5] = {"s1", "s2", "s3", "bma", "oracle"};
    for (int j = 0; j < 5; j++)
        cJSON_AddNumberToObject(m, key[j], mean[j]);
    return t;
}

/* ---- output ---- */

static void mean_std(const double *x, int n, double *mean, double *sd, int *finite)
{
    double s = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            s += x[i];
            k++;
        }
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]))
            ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = k > 1 ? sqrt(ss / (k - 1)) : 0.0;
    if (finite)
        *finite = k;
}

static cJSON *stat_json(const double *x, int n, int with_finite)
{
    double m, sd;
    int k;
    mean_std(x, n, &m, &sd, &k);
    cJSON *o = cJSON_CreateObject();
    if (isfinite(m)) {
        cJSON_AddNumberToObject(o, "mean", m);
        cJSON_AddNumberToObject(o, "std", sd);
    } else {
        cJSON_AddNullToObject(o, "mean");
        cJSON_AddNullToObject(o, "std");
    }
    if (with_finite)
        cJSON_AddNumberToObject(o, "finite", k);
    return o;
}

static int file_sha256(const char *path, char hex[65])
{
    size_t len;
    uint8_t *b = trh_read_file(path, &len), h[32];
    if (!b)
        return 1;
    mbedtls_sha256_ret(b, len, h, 0);
    free(b);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", h[i]);
    return 0;
}

/* x's value, or null where it does not exist (a point never reached). */
static void add_num_or_null(cJSON *o, const char *key, double x)
{
    if (isfinite(x))
        cJSON_AddNumberToObject(o, key, x);
    else
        cJSON_AddNullToObject(o, key);
}

/* The operating points of method m over the seeds: the best single model's
 * accuracy, CPT at each share and APGR, as mean/std (tools/EVAL_JSON.md). */
static void points_json(cJSON *mo, const seed_result *sr, int ns, int m)
{
    double *x = trh_xmalloc((size_t)ns * sizeof *x);
    for (int i = 0; i < ns; i++)
        x[i] = sr[i].best_single_q;
    cJSON_AddItemToObject(mo, "best_single_accuracy", stat_json(x, ns, 0));
    cJSON *cpt = cJSON_AddObjectToObject(mo, "cpt");
    for (int t = 0; t < N_CPT; t++) {
        for (int i = 0; i < ns; i++)
            x[i] = sr[i].cpt[m][t];
        cJSON_AddItemToObject(cpt, cpt_key[t], stat_json(x, ns, 1));
    }
    for (int i = 0; i < ns; i++)
        x[i] = sr[i].apgr[m];
    cJSON_AddItemToObject(mo, "apgr", stat_json(x, ns, 1));
    free(x);
}

/* In how many seeds router m's Area falls below Pareto-random's, and the
 * largest shortfall (0 when never). */
static cJSON *below_pareto_json(const seed_result *sr, int ns, int m)
{
    int below = 0;
    double worst = 0;
    for (int i = 0; i < ns; i++) {
        double d = sr[i].c[M_PARETO].area - sr[i].c[m].area;
        if (d > 0) {
            below++;
            worst = fmax(worst, d);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seeds", below);
    cJSON_AddNumberToObject(o, "of", ns);
    cJSON_AddNumberToObject(o, "max_shortfall", worst);
    return o;
}

/* Every seed's figures for method m. */
static cJSON *per_seed_json(const seed_result *sr, int ns, int m)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < ns; i++) {
        const seed_result *r = &sr[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "seed", i + 1);
        cJSON_AddNumberToObject(o, "area", r->c[m].area);
        add_num_or_null(o, "qnc", r->c[m].qnc);
        cJSON_AddNumberToObject(o, "peak", r->c[m].peak);
        cJSON_AddNumberToObject(o, "best_single_accuracy", r->best_single_q);
        cJSON_AddNumberToObject(o, "cheapest_accuracy", r->cheap_q);
        cJSON *cpt = cJSON_AddObjectToObject(o, "cpt");
        for (int t = 0; t < N_CPT; t++)
            add_num_or_null(cpt, cpt_key[t], r->cpt[m][t]);
        add_num_or_null(o, "apgr", r->apgr[m]);
        cJSON_AddNumberToObject(o, "area_minus_pareto_random",
                                r->c[m].area - r->c[M_PARETO].area);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* The test models: accuracy on the test prompts and normalised cost, each a
 * mean over the seeds in which the model was a test model. */
static cJSON *single_models_json(const prepared *p, const seed_result *sr, int ns)
{
    cJSON *a = cJSON_CreateArray();
    for (uint32_t m = 0; m < p->n_models; m++) {
        double acc = 0, cn = 0;
        int k = 0;
        for (int i = 0; i < ns; i++)
            if (!isnan(sr[i].single_acc[m])) {
                acc += sr[i].single_acc[m];
                cn += sr[i].single_cn[m];
                k++;
            }
        if (!k)
            continue;
        const trh_ds_model *dm = &p->ds.models[p->model_col[m]];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", dm->name);
        cJSON_AddNumberToObject(o, "cost", dm->cost);
        cJSON_AddNumberToObject(o, "cost_norm", cn / k);
        cJSON_AddNumberToObject(o, "accuracy", acc / k);
        cJSON_AddNumberToObject(o, "seeds", k);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* A data set's entry in the document up to its results: what was read,
 * with which embedder, over which seeds. */
static cJSON *dataset_head_json(const prepared *p, const eval_opts *o, const char *emb_sha)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "name", p->name);
    cJSON_AddStringToObject(d, "path", p->path);
    cJSON_AddNumberToObject(d, "n_prompts", p->n);
    cJSON_AddNumberToObject(d, "n_models", p->n_models);
    if (!o->local)
        cJSON_AddStringToObject(d, "model_split", o->fixed_pool ? "none (fixed pool)"
                                                                : "half train, half test (new models)");
    cJSON_AddNumberToObject(d, "dropped_unknown_score", p->dropped_unknown);
    cJSON_AddNumberToObject(d, "dropped_no_known_word", p->dropped_no_word);
    cJSON_AddNumberToObject(d, "tasks_inferred", p->tasks_inferred);
    cJSON_AddStringToObject(d, "cost_unit", p->cost_unit && p->cost_unit[0] ? p->cost_unit
                                                            : "the dataset's models.csv cost");
    cJSON *e = cJSON_AddObjectToObject(d, "embedder");
    char *ename;
    if (o->embeddings)
        ename = trh_xprintf("given vectors: %s", o->embeddings);
    else
        ename = trh_xprintf("%s%s%s", o->random_emb ? "random (floor)" : o->embedder,
                 o->hashed ? " hashed n-grams" : o->uniform ? " mean" : " SIF", o->no_pc || o->random_emb ? "" : " -pc");
    cJSON_AddStringToObject(e, "name", ename);
    free(ename);
    cJSON_AddStringToObject(e, "sha256", o->embeddings ? p->emb_sha : emb_sha);
    cJSON *seeds = cJSON_AddArrayToObject(d, "seeds");
    for (int i = 0; i < o->n_seeds; i++)
        cJSON_AddItemToArray(seeds, cJSON_CreateNumber(i + 1));
    return d;
}

static cJSON *dataset_json(const prepared *p, const eval_opts *o, seed_result *sr,
                           const char *emb_sha, double *headline)
{
    cJSON *d = dataset_head_json(p, o, emb_sha);
    cJSON *ms = cJSON_AddArrayToObject(d, "methods");
    double x[64];
    for (int m = 0; m < M_COUNT; m++) {
        if (!sr[0].has[m])
            continue;
        cJSON *mo = cJSON_CreateObject();
        cJSON_AddStringToObject(mo, "id", method_id[m]);
        cJSON_AddStringToObject(mo, "label", method_label[m]);
        cJSON_AddStringToObject(mo, "kind", method_kind[m]);
        if (m == M_KNN || m == M_KMEANS || m == M_LMAP || m == M_TMAP) {
            cJSON_AddStringToObject(mo, "param", m == M_KNN ? "k" : "K");
            cJSON *ch = cJSON_AddArrayToObject(mo, "chosen");
            for (int i = 0; i < o->n_seeds; i++)
                cJSON_AddItemToArray(ch, cJSON_CreateNumber(m == M_KNN   ? sr[i].k
                                                            : m == M_TMAP ? sr[i].n_tasks
                                                                          : sr[i].K));
            /* kNN: a chosen with k; the cluster methods: Psi's a, chosen
             * with K (the learned map reuses K-means'). */
            cJSON *pa = cJSON_AddArrayToObject(mo, "prior_strength");
            for (int i = 0; i < o->n_seeds; i++)
                cJSON_AddItemToArray(pa, cJSON_CreateNumber(m == M_KNN ? sr[i].a : sr[i].aK));
        }
        for (int i = 0; i < o->n_seeds; i++)
            x[i] = sr[i].c[m].area;
        cJSON_AddItemToObject(mo, "area", stat_json(x, o->n_seeds, 0));
        headline[m] = cJSON_GetObjectItem(cJSON_GetObjectItem(mo, "area"), "mean")->valuedouble;
        for (int i = 0; i < o->n_seeds; i++)
            x[i] = sr[i].c[m].qnc;
        cJSON_AddItemToObject(mo, "qnc", stat_json(x, o->n_seeds, 1));
        for (int i = 0; i < o->n_seeds; i++)
            x[i] = sr[i].c[m].peak;
        cJSON_AddItemToObject(mo, "peak", stat_json(x, o->n_seeds, 0));
        points_json(mo, sr, o->n_seeds, m);
        if (!strcmp(method_kind[m], "router"))
            cJSON_AddItemToObject(mo, "below_pareto_random", below_pareto_json(sr, o->n_seeds, m));
        cJSON *cu = cJSON_AddArrayToObject(mo, "curve");
        for (int g = 0; g < OUT_GRID; g++) {
            int at = g * (GRID - 1) / (OUT_GRID - 1);
            double q = 0;
            for (int i = 0; i < o->n_seeds; i++)
                q += sr[i].c[m].q[at];
            cJSON *pt = cJSON_CreateArray();
            cJSON_AddItemToArray(pt, cJSON_CreateNumber((double)g / (OUT_GRID - 1)));
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(q / o->n_seeds));
            cJSON_AddItemToArray(cu, pt);
        }
        cJSON_AddItemToObject(mo, "per_seed", per_seed_json(sr, o->n_seeds, m));
        cJSON_AddItemToArray(ms, mo);
    }
    cJSON_AddItemToObject(d, "single_models", single_models_json(p, sr, o->n_seeds));
    cJSON *fi = cJSON_AddObjectToObject(d, "fidelity");
    double a[64];
#define FID(field, key)                                                                          \
    do {                                                                                         \
        for (int i = 0; i < o->n_seeds; i++)                                                     \
            a[i] = sr[i].field;                                                                  \
        double mm, sd;                                                                           \
        mean_std(a, o->n_seeds, &mm, &sd, NULL);                                                 \
        cJSON_AddNumberToObject(fi, key, mm);                                                    \
    } while (0)
    FID(same, "same_decisions");
    FID(c[M_KNN].area, "area_int8");
    FID(area_f32, "area_f32");
    FID(recall10, "recall_at_10");
    FID(recall10_pf, "recall_at_10_prefilter");
#undef FID
    for (int i = 0; i < o->n_seeds; i++)
        a[i] = fabs(sr[i].c[M_KNN].area - sr[i].area_f32);
    double mm, sd;
    mean_std(a, o->n_seeds, &mm, &sd, NULL);
    cJSON_AddNumberToObject(fi, "delta_area", mm);
    cJSON_AddNumberToObject(fi, "prefilter_candidates", 400);
    return d;
}

/* "mean±std", or "inf (0)" / "mean (finite)" for a statistic with a count
 * of finite seeds. */
static void stat_text(char *buf, size_t cap, const cJSON *st, int digits)
{
    const cJSON *mean = cJSON_GetObjectItem(st, "mean"), *fin = cJSON_GetObjectItem(st, "finite");
    if (!cJSON_IsNumber(mean))
        snprintf(buf, cap, "inf (0)");
    else if (fin)
        snprintf(buf, cap, "%.*f (%d)", digits, mean->valuedouble, fin->valueint);
    else
        snprintf(buf, cap, "%.*f±%.*f", digits, mean->valuedouble, digits,
                 cJSON_GetObjectItem(st, "std")->valuedouble);
}

/* The operating points of data set d's methods as a second table: the best
 * single model's accuracy, CPT (cost to reach a share of it, relative to
 * its cost; the seeds where reached), APGR, and for routers the seeds whose
 * Area falls below Pareto-random's and the largest shortfall. */
static void print_points(const cJSON *d, const char *name)
{
    printf("%-22s %-30s %-15s %-12s %-12s %-12s %-12s %-15s %s\n", name, "operating points",
           "best single", "CPT 80%", "CPT 90%", "CPT 95%", "CPT 100%", "APGR",
           "below Pareto-random (Area)");
    const cJSON *mo;
    cJSON_ArrayForEach(mo, cJSON_GetObjectItem(d, "methods"))
    {
        const cJSON *cpt = cJSON_GetObjectItem(mo, "cpt"),
                    *bp = cJSON_GetObjectItem(mo, "below_pareto_random");
        char bs[40], ct[N_CPT][32], ap[40], bl[64] = "";
        stat_text(bs, sizeof bs, cJSON_GetObjectItem(mo, "best_single_accuracy"), 4);
        for (int t = 0; t < N_CPT; t++)
            stat_text(ct[t], sizeof ct[t], cJSON_GetObjectItem(cpt, cpt_key[t]), 3);
        const cJSON *apgr = cJSON_GetObjectItem(mo, "apgr");
        if (cJSON_IsNumber(cJSON_GetObjectItem(apgr, "mean")))
            snprintf(ap, sizeof ap, "%.3f±%.3f", cJSON_GetObjectItem(apgr, "mean")->valuedouble,
                     cJSON_GetObjectItem(apgr, "std")->valuedouble);
        else
            snprintf(ap, sizeof ap, "-");
        int nb = bp ? cJSON_GetObjectItem(bp, "seeds")->valueint : 0;
        if (bp)
            snprintf(bl, sizeof bl, "%d of %d seeds", nb, cJSON_GetObjectItem(bp, "of")->valueint);
        if (nb)
            snprintf(bl + strlen(bl), sizeof bl - strlen(bl), ", by up to %.4f",
                     cJSON_GetObjectItem(bp, "max_shortfall")->valuedouble);
        printf("%-22s %-30s %-15s %-12s %-12s %-12s %-12s %-15s %s\n", name,
               cJSON_GetObjectItem(mo, "label")->valuestring, bs, ct[0], ct[1], ct[2], ct[3], ap,
               bl);
    }
}

static const char usage[] =
    "usage: tinyroute eval --data DIR [--data DIR ...] (--embedder TABLE | --embeddings FILE)\n"
    "                      [--seeds 10]\n"
    "                      [--json OUT.json] [--report OUT.html] [--force]\n"
    "                      [--no-pc] [--mean] [--random-embedding] [--no-learned-map]\n"
    "                      [--fixed-pool] [--tasks] [--max-cost C]\n"
    "The protocol of Jitkrittum et al. 2025 on each dataset: prompts split\n"
    "60/10/30 train/validation/test, models split in half (the test models are\n"
    "known only through their validation labels, as in a dynamic pool), k with\n"
    "the kNN prior strength a, and K chosen on validation (the per-cluster error\n"
    "rates shrunk with that a; chosen column k:a, K:a), SEEDS random splits.\n"
    "Prints Area, QNC and Peak (mean\n"
    "and standard deviation over the seeds) of the deferral curve of kNN, K-means\n"
    "routing, the learned cluster map, Pareto-random and the oracle, and the\n"
    "int8-vs-float32 fidelity of kNN; then the operating points: the best single\n"
    "model's accuracy, CPT (the cost to reach 80/90/95/100% of it, relative to its\n"
    "cost), APGR, and the seeds where a router's Area falls below Pareto-random's\n"
    "(tools/EVAL_JSON.md). Models with more than 1% unknown scores and\n"
    "prompts with an unknown score are left out (and counted). --no-pc keeps the\n"
    "first principal component, --mean weighs words equally instead of SIF,\n"
    "--random-embedding replaces the embedder by random vectors (the floor).\n"
    "--fixed-pool: no model split, every model is known on the train prompts\n"
    "(a pack built for the models it routes among). --tasks adds the\n"
    "leave-one-task-out table of task-level selection (S1, S2, S3 with the\n"
    "out-of-distribution gate, BMA, per-task oracle; Shnitzer et al. 2023).\n"
    "--max-cost keeps only the models whose cost is at most C.\n"
    "--embeddings FILE: compare an embedder of your own under the same protocol:\n"
    "each data set's DIR/FILE holds its prompts' vectors (numpy.save of a float32\n"
    "array, one row per line of prompts.jsonl; all-zero rows are left out), used\n"
    "as they are (no component removed) in place of --embedder.\n"
    "(With --pack, eval measures a built pack instead: see eval --pack --help.)\n"
    "--local [--device-max-cost 10]: a device that learns from its own outcomes\n"
    "(issue #16, tools/eval_local.c): model and traffic shift with bandit\n"
    "feedback; Area after 0, 50, 200, 1000 local outcomes against the pack alone\n"
    "and a pack rebuilt with the same outcomes.\n";

/* --local: the device's int8 embeddings of every prompt (the component
 * removed is fitted, without labels, on a fixed 60% of the prompts), then
 * tools/eval_local.c. */
static int eval_local_set(const prepared *p, uint8_t *table, size_t table_len, const eval_opts *o,
                          const char *emb_sha, cJSON *dsets)
{
    const uint32_t n = p->n, dim = p->dim;
    uint64_t rs = 0x10CA1;
    uint32_t *perm = trh_xmalloc(n * sizeof *perm);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    trh_shuffle(perm, n, &rs);
    int8_t *q = trh_xmalloc((size_t)n * dim);
    int bad = embed_all(p, table, table_len, o, perm, (uint32_t)(0.6 * n), NULL, q);
    free(perm);
    if (bad) {
        free(q);
        return 1;
    }
    double *cost = trh_xmalloc(p->n_models * sizeof *cost);
    const char **model = trh_xmalloc(p->n_models * sizeof *model);
    int *on_device = trh_xmalloc(p->n_models * sizeof *on_device);
    const char **task = trh_xmalloc(n * sizeof *task);
    int any_task = 0;
    for (uint32_t m = 0; m < p->n_models; m++) {
        cost[m] = p->ds.models[p->model_col[m]].cost;
        model[m] = p->ds.models[p->model_col[m]].name;
        on_device[m] = p->ds.models[p->model_col[m]].where == 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        task[i] = p->task[i];
        any_task |= task[i] != NULL;
    }
    trh_local_eval_in in = {p->name, n, dim, p->n_models, q, p->Y, cost, model, on_device,
                           any_task ? task : NULL, o->n_seeds, o->device_max_cost};
    /* The document's data set: no methods (the pack-only router is the
     * baseline inside each scenario), its "local" scenarios. */
    cJSON *d = dataset_head_json(p, o, emb_sha);
    cJSON_AddArrayToObject(d, "methods");
    int r = trh_eval_local(&in, stdout, cJSON_AddArrayToObject(d, "local"));
    if (r == 0)
        cJSON_AddItemToArray(dsets, d);
    else
        cJSON_Delete(d);
    free(q), free(cost), free(model), free(on_device), free(task);
    return r;
}

int trh_eval_protocol(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"embedder", required_argument, 0, 'e'},
        {"seeds", required_argument, 0, 's'}, {"json", required_argument, 0, 'j'},
        {"report", required_argument, 0, 'r'}, {"force", no_argument, 0, 'f'},
        {"no-pc", no_argument, 0, 'P'}, {"mean", no_argument, 0, 'M'},
        {"random-embedding", no_argument, 0, 'R'}, {"no-learned-map", no_argument, 0, 'L'},
        {"fixed-pool", no_argument, 0, 'F'}, {"tasks", no_argument, 0, 'T'},
        {"max-cost", required_argument, 0, 'C'}, {"embeddings", required_argument, 0, 'E'},
        {"local", no_argument, 0, 'l'}, {"device-max-cost", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *data[argc > 0 ? argc : 1]; /* each --data takes an argument */
    eval_opts o = {.n_seeds = 10, .data = data, .device_max_cost = 10.0};
    int c;
    uint64_t u;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.data[o.n_data++] = optarg;
            break;
        case 'e': o.embedder = optarg; break;
        case 's':
            if (trh_parse_u64(optarg, &u) || u < 1 || u > 64)
                return trh_err("--seeds must be in 1..64, not '%s'", optarg), 2;
            o.n_seeds = (int)u;
            break;
        case 'j': o.json = optarg; break;
        case 'r': o.report = optarg; break;
        case 'f': o.force = 1; break;
        case 'P': o.no_pc = 1; break;
        case 'M': o.uniform = 1; break;
        case 'R': o.random_emb = 1; break;
        case 'L': o.no_lmap = 1; break;
        case 'E': o.embeddings = optarg; break;
        case 'F': o.fixed_pool = 1; break;
        case 'T': o.tasks = 1; break;
        case 'C':
            if (trh_parse_f64(optarg, &o.max_cost) || !(o.max_cost > 0))
                return trh_err("--max-cost must be a number > 0, not '%s'", optarg), 2;
            break;
        case 'l': o.local = 1; break;
        case 'D':
            if (trh_parse_f64(optarg, &o.device_max_cost) || !(o.device_max_cost > 0))
                return trh_err("--device-max-cost must be a number > 0, not '%s'", optarg), 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (!o.embedder && !o.embeddings)
        o.embedder = trh_default_embedder(); /* the installed table, if any */
    if (!o.n_data || !(o.embedder || o.embeddings) || optind != argc) {
        trh_err("eval needs --data and --embedder (unless the CLI is installed with its default "
               "table) or --embeddings (or --pack, see eval --pack --help)");
        fputs(usage, stderr);
        return 2;
    }
    if (o.embeddings && (o.embedder || o.no_pc || o.uniform || o.random_emb))
        return trh_err("--embeddings replaces the embedder: drop --embedder, --no-pc, --mean "
                      "and --random-embedding"), 2;
    if (o.embeddings && (strchr(o.embeddings, '/') || !strcmp(o.embeddings, "..")))
        return trh_err("--embeddings names a file inside each --data directory, not a path"), 2;
    const char *outs[2] = {o.json, o.report};
    /* --force never overwrites an input (issue #18): not the table, not a
     * file of any --data directory (nor its --embeddings file). */
    for (int i = 0; i < 2; i++)
        if (outs[i] && trh_out_not_input_ds(i ? "--report" : "--json", outs[i], &o.embedder, 1,
                                           o.data, (size_t)o.n_data, o.embeddings))
            return 2;
    for (int i = 0; i < 2; i++)
        if (outs[i] && !o.force && access(outs[i], F_OK) == 0)
            return trh_err("%s exists; not overwriting it (use --force)", outs[i]), 2;
    size_t table_len = 0;
    uint8_t *table = NULL;
    char emb_sha[65] = "";
    if (o.embedder && !(table = trh_read_file(o.embedder, &table_len)))
        return 1;
    tr_embedder e;
    if (table && tr_embedder_view(table, table_len, &e) != TR_OK) {
        free(table);
        return trh_err("%s: not a valid embedder table", o.embedder);
    }
    if (table && (e.flags & TR_EMB_HAS_PC)) {
        free(table);
        return trh_err("%s: the table already removes a component; give the plain table",
                      o.embedder);
    }
    o.hashed = table && (e.flags & TR_EMB_HASHED);
    if (o.uniform && o.hashed) {
        free(table);
        return trh_err("--mean weighs words equally: a hashed table has no words"), 2;
    }
    if (o.uniform) /* plain mean of the word vectors */
        for (uint32_t w = 0; w < e.n_words; w++)
            tr_stf32(table + tr_ld32(table + TR_E_OFF_WEIGHTS) + 4 * w, 1.0f);
    if (table)
        file_sha256(o.embedder, emb_sha);
    /* The command as given, whole: no cap on its length. */
    trh_buf cmdline = {0};
    trh_buf_put(&cmdline, "tinyroute", 9);
    for (int i = 0; i < argc; i++) {
        trh_buf_put(&cmdline, " ", 1);
        trh_buf_put(&cmdline, argv[i], strlen(argv[i]));
    }
    trh_buf_put(&cmdline, "", 1);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "tinyroute_version", TR_VERSION_STRING);
    cJSON_AddStringToObject(doc, "kernel", tr_kernel_name());
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(doc, "created", when);
    cJSON_AddStringToObject(doc, "command", (const char *)cmdline.data);
    trh_buf_free(&cmdline);
    const char *protocol =
        o.local ? "eval --local (issue 16): the pack built with one device model's labels while the "
                  "device behaves as another (model shift), and prompts from 1-3 tasks (traffic shift); "
                  "bandit feedback (only the routed model's outcome is revealed); Area on the user's "
                  "later prompts after 0, 50, 200, 1000 local outcomes: pack only, local store, local "
                  "store + level term, and a pack rebuilt with the same outcomes"
                : "Jitkrittum et al. 2025: prompts 60/10/30 train/validation/test, models split in half; "
                  "test models known only by their validation labels; k in {5,10,20,50,100,200} with the kNN "
                  "prior strength a in {0,1,2,4,8,16,32}, and K in "
                  "{4,8,16,32,64} chosen by validation Area with the training models, Psi shrunk with "
                  "kNN's a; learned map at the chosen K; deferral curve = upper concave hull of the (cost, accuracy) points of a "
                  "lambda sweep, cost normalised between the cheapest and costliest test model; QNC = "
                  "least cost reaching the best test model's test accuracy, relative to that model's cost";
    cJSON_AddStringToObject(doc, "protocol", protocol);
    cJSON *dsets = cJSON_AddArrayToObject(doc, "datasets");
    int r = 0;
    if (!o.local)
        printf("%-22s %-30s %-15s %-17s %-15s %s\n", "dataset", "method", "Area", "QNC (finite)",
               "Peak", "chosen");
    for (int di = 0; di < o.n_data && r == 0; di++) {
        prepared p;
        if ((r = prepare(o.data[di], table, table_len, &o, &p)) != 0) {
            prepared_free(&p);
            break;
        }
        if (o.local) {
            r = eval_local_set(&p, table, table_len, &o, emb_sha, dsets);
            prepared_free(&p);
            continue;
        }
        seed_result *sr = trh_xcalloc((size_t)o.n_seeds, sizeof *sr);
        for (int si = 0; si < o.n_seeds && r == 0; si++) {
            fprintf(stderr, "\reval: %s: seed %d/%d", p.name, si + 1, o.n_seeds);
            r = run_seed(&p, table, table_len, &o, (uint64_t)si + 1, &sr[si]);
        }
        fprintf(stderr, "\n");
        task_row *trows = NULL;
        uint32_t ntrows = 0;
        if (r == 0 && o.tasks)
            r = eval_tasks(&p, table, table_len, &o, &trows, &ntrows);
        if (r == 0) {
            double head[M_COUNT];
            cJSON *d = dataset_json(&p, &o, sr, emb_sha, head);
            if (ntrows) {
                cJSON_AddItemToObject(d, "tasks", tasks_json(trows, ntrows));
                double mean[5] = {0}, worst = 0;
                for (uint32_t i = 0; i < ntrows; i++) {
                    mean[0] += trows[i].s1 / ntrows;
                    mean[1] += trows[i].s2 / ntrows;
                    mean[2] += trows[i].s3 / ntrows;
                    mean[3] += trows[i].bma / ntrows;
                    mean[4] += trows[i].oracle / ntrows;
                    worst = fmax(worst, trows[i].bma - trows[i].s3);
                }
                printf("%-22s tasks (leave one out, %u): S1 %.4f  S2 %.4f  S3 %.4f  BMA %.4f  "
                       "oracle %.4f; S3 worst vs BMA on a task: -%.4f\n",
                       p.name, ntrows, mean[0], mean[1], mean[2], mean[3], mean[4], worst);
            }
            cJSON_AddItemToArray(dsets, d);
            const cJSON *ms = cJSON_GetObjectItem(d, "methods"), *mo;
            cJSON_ArrayForEach(mo, ms)
            {
                const cJSON *a = cJSON_GetObjectItem(mo, "area"), *q = cJSON_GetObjectItem(mo, "qnc"),
                            *pk = cJSON_GetObjectItem(mo, "peak"), *ch = cJSON_GetObjectItem(mo, "chosen"),
                            *pa = cJSON_GetObjectItem(mo, "prior_strength");
                char as[32], qs[32], ps[32], cs[192] = "";
                snprintf(as, sizeof as, "%.4f±%.4f", cJSON_GetObjectItem(a, "mean")->valuedouble,
                         cJSON_GetObjectItem(a, "std")->valuedouble);
                const cJSON *qm = cJSON_GetObjectItem(q, "mean");
                if (cJSON_IsNull(qm))
                    snprintf(qs, sizeof qs, "inf (0)");
                else
                    snprintf(qs, sizeof qs, "%.3f (%d)", qm->valuedouble,
                             cJSON_GetObjectItem(q, "finite")->valueint);
                snprintf(ps, sizeof ps, "%.4f±%.4f", cJSON_GetObjectItem(pk, "mean")->valuedouble,
                         cJSON_GetObjectItem(pk, "std")->valuedouble);
                if (ch) {
                    const cJSON *v;
                    size_t l = 0;
                    int i = 0;
                    /* k:a where a prior strength was chosen too */
                    cJSON_ArrayForEach(v, ch) {
                        const cJSON *av = pa ? cJSON_GetArrayItem(pa, i) : NULL;
                        if (l < sizeof cs - 16)
                            l += (size_t)snprintf(cs + l, sizeof cs - l, av ? "%s%d:%g" : "%s%d",
                                                  l ? "," : "", v->valueint,
                                                  av ? av->valuedouble : 0.0);
                        i++;
                    }
                }
                printf("%-22s %-30s %-15s %-17s %-15s %s\n", p.name,
                       cJSON_GetObjectItem(mo, "label")->valuestring, as, qs, ps, cs);
            }
            const cJSON *fi = cJSON_GetObjectItem(d, "fidelity");
            printf("%-22s fidelity int8 vs float32: %.4f same decisions, |dArea| %.5f, "
                   "recall@10 %.4f (prefilter C=400: %.4f)\n",
                   p.name, cJSON_GetObjectItem(fi, "same_decisions")->valuedouble,
                   cJSON_GetObjectItem(fi, "delta_area")->valuedouble,
                   cJSON_GetObjectItem(fi, "recall_at_10")->valuedouble,
                   cJSON_GetObjectItem(fi, "recall_at_10_prefilter")->valuedouble);
            print_points(d, p.name);
        }
        for (int si = 0; si < o.n_seeds; si++)
            seed_result_free(&sr[si]);
        free(sr);
        free(trows);
        prepared_free(&p);
    }
    if (r == 0 && o.json) {
        char *t = cJSON_Print(doc);
        r = trh_write_file_atomic(o.json, t, strlen(t));
        free(t);
    }
    if (r == 0 && o.report) {
        char *html = NULL;
        size_t html_len = 0;
        FILE *mem = open_memstream(&html, &html_len);
        r = !mem || trh_report_html(doc, mem);
        if (mem)
            r |= fclose(mem) != 0;
        if (r == 0)
            r = trh_write_file_atomic(o.report, html, html_len);
        free(html);
    }
    cJSON_Delete(doc);
    free(table);
    return r ? 1 : 0;
}
