/* tinyroute build: dataset layout -> embedded, quantized, signed pack. */
#include <float.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "choose.h"
#include "choose_method.h"
#include "prefilter_choice.h"
#include "cmds.h"
#include "dataset.h"
#include "keys.h"
#include "log_guard.h"
#include "logfile.h"
#include "packwriter.h"
#include "pareto.h"
#include "task_map.h"
#include "tr_cluster.h"
#include "refs.h"
#include "tr_knn.h"
#include "tr_embed.h"
#include "tr_format.h"
#include "util.h"

static void free_task_names(uint32_t *task_of, const char **names, uint32_t n_tasks)
{
    free(task_of);
    for (uint32_t i = 0; i < n_tasks; i++)
        free((void *)names[i]);
    free(names);
}

/* Where the build's human report goes: stdout, or stderr with --json (whose
 * document alone is on stdout). */
static FILE *say;

static const char usage[] =
    "usage: tinyroute build --data DIR [--embedder TABLE] --key PRIVATE.pem --out PACK\n"
    "                       [--split train|all] [--k K] [--prior-strength A]\n"
    "                       [--lambda 0]\n"
    "                       [--counter 1] [--expires-days D] [--prefilter C|auto]\n"
    "                       [--clusters K [--learned-map]] [--task-map] [--no-tasks]\n"
    "                       [--method knn|cluster|learned-map|task-map]\n"
    "                       [--no-pc] [--force] [--add-log LOG ...] [--json]\n"
    "                       [--device-keys FILE [--allow-unauthenticated]]\n"
    "                       [--no-log-guard | --log-guard-alpha A]\n"
    "Embeds the dataset's prompts (prompts.jsonl, correctness.csv, models.csv;\n"
    "see tools/DATASET.md) with the built-in embedder TABLE (from `tinyroute\n"
    "embedder`; by default the one `make install` put in PREFIX/share/tinyroute),\n"
    "quantizes them to int8, writes pack format v1 and signs it.\n"
    "  --split train   references = prompts marked train or unmarked (default)\n"
    "  --split all     every prompt\n"
    "  --k K           kNN neighbours stored as the pack's default\n"
    "  --prior-strength A  kNN estimates and per-cluster error rates shrink\n"
    "                  toward each model's mean score as if A more neighbours\n"
    "                  (prompts of the cluster) had scored it (0: none)\n"
    "                  Unless given, k and A are chosen on validation: leave-\n"
    "                  one-out over a fixed sample of up to 2000 references,\n"
    "                  the pair whose deferral curve has the largest Area (k in\n"
    "                  5..200, A in 0..32); the pack records the choice and\n"
    "                  its validation Area (`tinyroute inspect` shows them)\n"
    "  --lambda L      the cost weight stored as the pack's default. Unless\n"
    "                  given: 0 (accuracy first) if that does not route worse\n"
    "                  than a random mix of single models (Pareto-random) on\n"
    "                  the shipped method's out-of-fold validation curve, else\n"
    "                  the smallest lambda that does not; a given L that does\n"
    "                  gets a warning\n"
    "  --counter N     security (anti-rollback) counter\n"
    "  --clusters K    also fit K-means (K clusters) for cluster routing; the\n"
    "                  per-cluster error rates come from the references\n"
    "  --learned-map   with --clusters (K <= 256): also train the learned soft\n"
    "                  cluster map on the references' correctness\n"
    "  --task-map      also fit the task map: the learned map with the data's\n"
    "                  tasks (2..256) as its clusters\n"
    "  --method M      the pack's default method (what zeroed route options\n"
    "                  use): knn, cluster, learned-map (both need --clusters\n"
    "                  K) or task-map (routes as learned-map). Unless given,\n"
    "                  build cross-validates over 5 fixed-seed folds of the\n"
    "                  references: each candidate -- kNN at the chosen k and\n"
    "                  A; the task map (its l2 and A too) when the data have\n"
    "                  2..256 tasks (not with --clusters: one clusters section);\n"
    "                  with --clusters K, K-means (and --learned-map) instead\n"
    "                  -- fitted on four folds estimates the fold's prompts\n"
    "                  (at most 1000 a fold) with the device's estimators;\n"
    "                  the Area of each one's pooled out-of-fold deferral\n"
    "                  curve decides; the best ships, refitted on everything,\n"
    "                  recorded with that Area, and its curve sets the default\n"
    "                  lambda (see --lambda)\n"
    "  --no-tasks      skip the task-level (S3) table; by default it is fitted\n"
    "                  leave-one-task-out when the data has two or more tasks\n"
    "                  (beyond 50000 references on a fixed sample of 256\n"
    "                  prompts per task, searched against all references)\n"
    "  --prefilter C   store sign-bit codes; routes search the C nearest in\n"
    "                  Hamming distance, then rerank exactly (0: exact, default).\n"
    "                  Either way build measures recall@10 of the C on a sample\n"
    "                  of references (leave-one-out) and the predicted route\n"
    "                  time against exact search, and warns below recall 0.95\n"
    "                  or above exact's time\n"
    "  --prefilter auto  the smallest C (>= k) with recall@10 >= 0.95 on that\n"
    "                  sample, kept only where predicted to take at most half\n"
    "                  exact search's time (large N and D), else exact search\n"
    "  --no-pc         keep the first principal component (default: removed)\n"
    "  --force         replace PACK if it exists\n"    "  --json          the written pack as one JSON document on stdout (verify\n"
    "                  --json's fields, and \"build\": time, skipped prompts and\n"
    "                  method_validation: each candidate's out-of-fold Area);\n"
    "                  the progress lines go to stderr\n"

    "  --add-log LOG   (repeatable) a device outcome log (core/OUTCOME_LOG.md):\n"
    "                  each record with an embedding and an outcome becomes a\n"
    "                  reference, the outcome its logged model's score, the\n"
    "                  other models unknown. The log must come from a pack with\n"
    "                  this build's embedder (same table, data and pc); records\n"
    "                  with only a hash or text are skipped and counted\n"
    "  --device-keys FILE  authenticate every --add-log (lines DEVICE_ID HEX_KEY\n"
    "                  [revoked]; core/INTEGRATION.md): a log whose MAC fails,\n"
    "                  whose device is unknown or revoked, whose ids do not pass\n"
    "                  an earlier log of its device in this command (a replay),\n"
    "                  or that is unreadable, is refused with a message naming\n"
    "                  it; the pack is built from the others, exit 1. A\n"
    "                  version 1 (unauthenticated) log is refused unless\n"
    "  --allow-unauthenticated\n"
    "  Logged rows (--add-log's, and a dataset's cells counted in its\n"
    "  fleet_counts.csv: tools/fleet_step.py) are kept only when the trusted\n"
    "  rows (the others) say they help beyond chance (tools/log_guard.h): the\n"
    "  pack without them and the pack with them, each with the method, k and\n"
    "  A build chooses for it, are cross-validated on the same 5 folds of the\n"
    "  trusted rows (the logged rows are never queries); the logs stay when\n"
    "  a paired bootstrap of the Area difference over those queries gives a\n"
    "  one-sided p-value <= A (default 0.05), else the pack is\n"
    "  the one built without them (the pc too is fitted on the trusted rows).\n"
    "  The report's \"log guard\" line and --json's build.log_guard say why\n"
    "  --log-guard-alpha A  the guard's level, in (0, 1)\n"
    "  --no-log-guard  every logged row a reference, unjudged (as before)\n"
    "Progress with an ETA goes to stderr when it is a terminal or TR_PROGRESS=1.\n";

/* trh_kmeans_fit_cb's and trh_task_fit_cb's progress hook: forwards to the
 * build's progress line. */
static void fit_progress(void *ctx, uint64_t done, uint64_t total)
{
    trh_progress *p = ctx;
    p->total = total;
    trh_progress_update(p, done);
}

/* K-means on at most TR_KM_PER_CLUSTER rows per centroid (FAISS's default
 * max_points_per_centroid): Lloyd on all of a million references cost ~100
 * full passes (~15 min here) for centroids a sample places as well. */
#define TR_KM_PER_CLUSTER 256u

/* The text of prompt `want` from a reader that has returned *at prompts
 * so far: prompts are read in increasing order, each at most once. */
static const char *text_at(trh_prompt_reader *rd, size_t *at, size_t want)
{
    const char *t = NULL;
    while (*at <= want) {
        if (!(t = trh_prompt_reader_next(rd)))
            return NULL;
        (*at)++;
    }
    return t;
}

/* The K-means input, row by row: the unit-length float embedding the
 * device quantizes (re-embedded from the prompt's text, streamed again
 * from prompts.jsonl, so that no N x D float matrix and no text is held:
 * issue #8, the build's peak memory) for the dataset's references, the
 * unit int8 row for logged ones. */
typedef struct km_rows {
    const tr_embedder *e;
    const char *dir;         /* the dataset */
    const trh_dataset *ds;    /* as loaded (for the reader's change check) */
    const size_t *kept_from; /* prompt index of each dataset reference */
    size_t kept_ds;          /* rows from the dataset; then from logs */
    const int8_t *refs;
} km_rows;

/* Row j into out; rows in increasing order on one reader. 0 ok. */
static int km_row(const km_rows *r, trh_prompt_reader *rd, size_t *at, size_t j, float *out)
{
    const uint32_t dim = r->e->dim;
    if (j < r->kept_ds) {
        const char *t = text_at(rd, at, r->kept_from[j]);
        uint32_t known;
        if (!t)
            return 1;
        tr_embed_f32(r->e, t, strlen(t), out, &known); /* as in pass 2 */
    } else {
        for (uint32_t d = 0; d < dim; d++)
            out[d] = r->refs[j * dim + d];
    }
    trh_normalize(out, dim);
    return 0;
}

typedef struct km_slot { size_t row, slot; } km_slot;
static int by_row(const void *a, const void *b)
{
    const km_slot *x = a, *y = b;
    return (x->row > y->row) - (x->row < y->row);
}

/* Fits k centroids on the n rows, on a fixed-seed sample when n exceeds
 * TR_KM_PER_CLUSTER * k, then assigns every row; returns the inertia over
 * all n rows (as trh_kmeans_fit does), < 0 on failure. The same centroids
 * and inertia as trh_kmeans_fit_sampled + trh_kmeans_assign on all the rows
 * at once: only the sample is held (read in row order, placed in sample
 * order), the assignment goes block by block. */
static double fit_kmeans(const km_rows *r, size_t n, uint32_t k, float *cent, uint32_t *assign,
                         trh_progress *pg)
{
    const uint32_t dim = r->e->dim;
    size_t *perm = trh_xmalloc(n * sizeof *perm);
    size_t ns = trh_kmeans_sample(n, k, TR_KM_PER_CLUSTER, 1, perm), at = 0;
    km_slot *sl = trh_xmalloc(ns * sizeof *sl);
    for (size_t i = 0; i < ns; i++)
        sl[i] = (km_slot){ns == n ? i : perm[i], i};
    free(perm);
    qsort(sl, ns, sizeof *sl, by_row);
    float *xs = trh_xmalloc(ns * dim * sizeof *xs);
    trh_prompt_reader rd;
    int bad = trh_prompt_reader_open(&rd, r->dir, r->ds);
    for (size_t i = 0; i < ns && !bad; i++)
        bad = km_row(r, &rd, &at, sl[i].row, xs + sl[i].slot * dim);
    trh_prompt_reader_close(&rd);
    free(sl);
    double res = bad ? -1 : trh_kmeans_fit_cb(xs, ns, dim, k, 1, 100, cent, assign, fit_progress, pg);
    free(xs);
    if (res < 0 || ns == n)
        return res;
    /* Every row to its nearest centroid, for the inertia over all n. */
    trh_progress_end(pg);
    trh_progress_start(pg, "build", "k-means assign", n);
    enum { BLOCK = 4096 };
    float *blk = trh_xmalloc((size_t)BLOCK * dim * sizeof *blk);
    double inertia = 0;
    at = 0;
    bad = trh_prompt_reader_open(&rd, r->dir, r->ds);
    for (size_t j0 = 0; j0 < n && !bad; j0 += BLOCK) {
        size_t b = n - j0 < BLOCK ? n - j0 : BLOCK;
        trh_progress_update(pg, j0);
        for (size_t i = 0; i < b && !bad; i++)
            bad = km_row(r, &rd, &at, j0 + i, blk + i * dim);
        if (!bad) {
            inertia = trh_kmeans_assign_from(inertia, blk, b, dim, cent, k, assign + j0, NULL, NULL);
            bad = inertia < 0; /* out of memory */
        }
    }
    trh_prompt_reader_close(&rd);
    free(blk);
    return bad ? -1 : inertia;
}

/* Scores as one byte each (0, 1, 2 = unknown) while the pass-1 rows are
 * held: a quarter of the N x M floats. NULL, and the floats are kept, when
 * some score is not exactly 0, 1 or the loader's NAN (fractional scores). */
static uint8_t *score_codes(const float *s, size_t len)
{
    const float nan = NAN, one = 1.0f, zero = 0.0f;
    uint8_t *c = malloc(len);
    for (size_t i = 0; c && i < len; i++) {
        if (!memcmp(&s[i], &zero, sizeof zero))
            c[i] = 0;
        else if (!memcmp(&s[i], &one, sizeof one))
            c[i] = 1;
        else if (!memcmp(&s[i], &nan, sizeof nan))
            c[i] = 2;
        else {
            free(c);
            return NULL;
        }
    }
    return c;
}

/* The S3 table's queries: every reference up to TR_TASK_ALL_QUERIES of
 * them (the fixture, MMLU-Pro's 12k: seconds), else a fixed-seed sample of
 * TR_TASK_QUERIES per task (each acc entry within a standard error of
 * 0.5/sqrt(256) = 0.031), still searched against all the other tasks'
 * references: at 1M references and 32 tasks, 8192 queries, not 1M. */
#define TR_TASK_ALL_QUERIES 50000u
#define TR_TASK_QUERIES 256u

/* kNN's k, prior strength and the default lambda: the ones given, else
 * chosen on validation (tools/choose.h) over the references, costs
 * normalized as the pack's; the shipped lambda is checked against
 * Pareto-random there either way (a given one gets a warning). */
static int choose_knn(const int8_t *refs, size_t n, uint32_t dim, const float *scores,
                      const trh_dataset *ds, const trh_knn_given *given, trh_progress *pg,
                      trh_knn_choice *ch)
{
    const uint32_t m = (uint32_t)ds->n_models;
    double *cost = trh_xmalloc(2 * (size_t)m * sizeof *cost), *cn = cost + m;
    for (uint32_t j = 0; j < m; j++)
        cost[j] = ds->models[j].cost;
    trh_norm_costs(cost, m, cn);
    trh_progress_start(pg, "build", "validation", 0);
    int r = trh_choose_knn(refs, (uint32_t)n, dim, scores, m, cn, given, ch);
    trh_progress_end(pg);
    free(cost);
    if (r)
        return r;
    if (!ch->n_queries) {
        fprintf(say, "validation: too few references with every score known; k=%u, prior strength "
               "%g, lambda %g (not chosen)\n", ch->k, (double)ch->a, ch->lambda);
        return 0;
    }
    fprintf(say, "validation: leave-one-out over %u references: k=%u%s, prior strength %g%s, "
           "Area %.4f (k=%u, prior strength %g: %.4f)\n",
           ch->n_queries, ch->k, given->k ? " (given)" : "", (double)ch->a,
           given->a >= 0 ? " (given)" : "", ch->area, given->k ? given->k : TRH_CHOOSE_OLD_K,
           given->a >= 0 ? (double)given->a : (double)TRH_CHOOSE_OLD_A, ch->area_given);
    return 0;
}

/* The guard's verdict on the shipped default lambda (ch: trh_guard_lambda's
 * point on the curve named by curve). */
static void say_guard(const trh_knn_choice *ch, const trh_knn_given *given, const char *curve)
{
    fprintf(say, "validation: default lambda %g%s on %s: accuracy %.4f at normalized cost %.4f, "
           "Pareto-random %.4f there%s\n",
           ch->lambda, given->lambda >= 0 ? " (given)" : "", curve, ch->acc, ch->cost, ch->pareto,
           ch->below ? ": BELOW not routing (a random mix of single models)" : "");
    if (ch->below && given->lambda >= 0)
        trh_err("warning: on validation, --lambda %g routes worse than a random mix of single "
               "models at the same cost; leave --lambda out to let build choose", given->lambda);
    else if (given->lambda < 0 && ch->lambda > 0 && ch->cost <= 1e-12)
        trh_err("warning: on validation this router is below a random mix of single models at "
               "every lambda that does not send every prompt to the cheapest model; the pack "
               "ships that (lambda %g). Other --k / --prior-strength, or --lambda, override",
               ch->lambda);
    else if (given->lambda < 0 && ch->lambda > 0)
        fprintf(say, "validation: lambda 0 sat below Pareto-random; the pack's default lambda is %g, "
               "the smallest of the sweep that does not\n", ch->lambda);
}

/* The prefilter's validation: recall and predicted time at the C measured. */
static void say_prefilter(const trh_prefilter_choice *p)
{
    fprintf(say, "prefilter: C=%u%s: recall@%u %.4f over %u sampled references, predicted %.2fx "
            "exact search's time", p->c_tried, p->chosen ? "" : " (given)", p->recall_at,
            p->recall, p->n_queries, p->cost_ratio);
    if (p->chosen && !p->c)
        fprintf(say, "; off (exact search): %s\n",
                p->c_tried > TR_PREFILTER_MAX ? "more candidates than a pack may hold"
                                              : "it pays only at large N and D "
                                                "(tools/prefilter_choice.h)");
    else
        fprintf(say, "\n");
    if (!p->chosen && p->recall < TRH_PREFILTER_TARGET)
        trh_err("warning: --prefilter %u finds %.4f of the %u nearest references (target %.2f); "
                "--prefilter auto chooses C for the target", p->c_tried, p->recall, p->recall_at,
                TRH_PREFILTER_TARGET);
    if (!p->chosen && p->cost_ratio > 1)
        trh_err("warning: --prefilter %u is predicted slower than exact search (%.2fx): "
                "leave it out, or --prefilter auto", p->c_tried, p->cost_ratio);
}

static int build_with(int argc, char **argv, const char **logs, trh_devkeys *dk);

/* Each of the n dataset references' task (prompt from[j] of ds) into
 * task_of, the task names (pointers into ds) into names (n room each);
 * returns the task count. Untasked prompts (a fleet's: tools/fleet_step.py
 * writes none) are given the nearest task's as trh_task_ids says;
 * *inferred counts them. */
static uint32_t assign_tasks(const trh_dataset *ds, const size_t *from, size_t n, const int8_t *refs,
                             uint32_t dim, uint32_t *task_of, const char **names, size_t *inferred)
{
    const char **task = trh_xmalloc((n ? n : 1) * sizeof *task);
    for (size_t j = 0; j < n; j++)
        task[j] = ds->prompts[from[j]].task;
    const uint32_t n_tasks = trh_task_ids(task, n, task_of, names, inferred);
    free(task);
    if (*inferred)
        trh_infer_tasks(refs, n, dim, n_tasks, task_of);
    return n_tasks;
}

/* With fleet cells: 1 for each prompt with no known score outside them
 * (NULL when no reference prompt, test ones only with all, has one: the
 * pc is then fitted on all). */
static uint8_t *untrusted_prompts(const trh_dataset *ds, const uint8_t *cells, int all)
{
    const size_t m = ds->n_models;
    uint8_t *skip = trh_xmalloc(ds->n_prompts ? ds->n_prompts : 1);
    size_t trusted = 0;
    for (size_t i = 0; i < ds->n_prompts; i++) {
        int known = 0;
        for (size_t t = 0; t < m; t++)
            known |= !cells[i * m + t] && !isnan(ds->scores[i * m + t]);
        skip[i] = (uint8_t)!known;
        trusted += known && (all || ds->prompts[i].split != TRH_SPLIT_TEST);
    }
    if (!trusted)
        free(skip), skip = NULL;
    return skip;
}

/* The candidates build cross-validates: the one given (scored for the
 * record), else kNN and one clusters section (K-means when asked for, else
 * the tasks). */
static void want_of(int method_arg, uint64_t n_clusters, int lmap, int want[TRH_N_CAND])
{
    memset(want, 0, TRH_N_CAND * sizeof *want);
    if (method_arg >= 0) {
        want[method_arg] = 1;
        return;
    }
    want[TRH_CAND_KNN] = 1;
    want[TRH_CAND_TASK_MAP] = !n_clusters;
    want[TRH_CAND_CLUSTER] = n_clusters > 0;
    want[TRH_CAND_LEARNED_MAP] = lmap;
}

/* The settings the guard compares (one side: the rows with or without the
 * logs): what build would choose on them. */
typedef struct guard_in {
    const trh_dataset *ds;
    uint32_t dim, m;
    const double *cn;
    const trh_knn_given *given;
    int method_arg, lmap;
    uint64_t n_clusters;
} guard_in;

/* One side: k and a chosen on the n rows (n_task of them dataset rows,
 * from[] their prompts), their tasks, and the 5-fold scores of the
 * candidates on the folds given; *chosen the method build would ship. */
static int score_side(const guard_in *in, const int8_t *refs, size_t n, size_t n_task,
                      const size_t *from, const float *Y, const uint8_t *fold, trh_knn_choice *ch,
                      trh_method_scores *ms, int *chosen)
{
    memset(ms, 0, sizeof *ms);
    if (trh_choose_knn(refs, (uint32_t)n, in->dim, Y, in->m, in->cn, in->given, ch))
        return 1;
    uint32_t *task = trh_xmalloc((n_task ? n_task : 1) * sizeof *task);
    const char **names = trh_xmalloc((n_task ? n_task : 1) * sizeof *names);
    size_t inferred;
    uint32_t nt = assign_tasks(in->ds, from, n_task, refs, in->dim, task, names, &inferred);
    int want[TRH_N_CAND];
    want_of(in->method_arg, in->n_clusters, in->lmap, want);
    int bad = trh_score_methods(refs, n, n_task, in->dim, Y, in->m, in->cn, fold, ch->k, ch->a,
                               in->given->a >= 0, task, nt, (uint32_t)in->n_clusters, want, ms);
    *chosen = in->method_arg >= 0 ? in->method_arg : ms->best >= 0 ? ms->best : TRH_CAND_KNN;
    free(task), free(names);
    return bad;
}

/* The rows without the logs: every dataset row with a known cell not from
 * a log (logged cells blanked). cells: trh_fleet_cells' (NULL: none). */
typedef struct guard_rows {
    int8_t *refs;
    float *Y;
    size_t *from, n;
    size_t *trusted;  /* each row's index among them, SIZE_MAX if none */
    uint8_t *touched; /* each row has a logged cell */
    size_t logged;    /* rows touched */
} guard_rows;

static void guard_rows_free(guard_rows *r)
{
    free(r->refs), free(r->Y), free(r->from), free(r->trusted), free(r->touched);
    memset(r, 0, sizeof *r);
}

static void trusted_rows(const int8_t *refs, const float *Y, size_t n, size_t n_ds, const size_t *from,
                         const uint8_t *cells, uint32_t dim, uint32_t m, guard_rows *r)
{
    const size_t N = n ? n : 1;
    r->refs = trh_xmalloc(N * dim), r->Y = trh_xmalloc(N * m * sizeof *r->Y);
    r->from = trh_xmalloc(N * sizeof *r->from), r->trusted = trh_xmalloc(N * sizeof *r->trusted);
    r->touched = trh_xcalloc(N, 1), r->n = r->logged = 0;
    for (size_t j = 0; j < n; j++) {
        int known = 0;
        float *y = r->Y + r->n * m;
        for (uint32_t t = 0; t < m; t++) {
            int lg = j >= n_ds || (cells && cells[from[j] * m + t]);
            r->touched[j] |= (uint8_t)lg;
            y[t] = lg ? NAN : Y[j * m + t];
            known |= !isnan(y[t]);
        }
        r->logged += r->touched[j];
        r->trusted[j] = known ? r->n : SIZE_MAX;
        if (known) {
            memcpy(r->refs + r->n * dim, refs + j * dim, dim);
            r->from[r->n++] = from[j];
        }
    }
}

/* The guard (tools/log_guard.h): g filled in; *fold_w the folds the build
 * with the logs cross-validates on (kept x 1), r the rows without them.
 * 0, or 1 after a message. */
static int log_guard(const guard_in *in, const int8_t *refs, const float *Y, size_t kept,
                     size_t kept_ds, const size_t *kept_from, const uint8_t *cells, double alpha,
                     trh_log_guard *g, uint8_t **fold_w, guard_rows *r)
{
    memset(g, 0, sizeof *g);
    g->keep = 1, g->alpha = alpha, g->why = "no logged rows";
    trusted_rows(refs, Y, kept, kept_ds, kept_from, cells, in->dim, in->m, r);
    g->trusted_rows = r->n, g->logged_rows = r->logged;
    if (!r->logged)
        return 0;
    uint8_t *fold_t = trh_xmalloc(r->n ? r->n : 1);
    *fold_w = trh_xmalloc(kept ? kept : 1);
    trh_cv_folds(r->n, fold_t);
    trh_guard_folds(kept, r->trusted, r->touched, fold_t, *fold_w);
    trh_knn_choice co, cw;
    trh_method_scores mo = {0}, mw = {0};
    int so, sw;
    int bad = score_side(in, r->refs, r->n, r->n, r->from, r->Y, fold_t, &co, &mo, &so) ||
              score_side(in, refs, kept, kept_ds, kept_from, Y, *fold_w, &cw, &mw, &sw);
    free(fold_t);
    g->method_without = so, g->method_with = sw, g->queries = mo.n_queries;
    g->k_without = co.k, g->k_with = cw.k, g->a_without = co.a, g->a_with = cw.a;
    if (bad) {
        g->why = "failed";
    } else if (!mo.scored[so] || !mw.scored[sw] || mo.n_queries < 2) {
        g->why = "too few trusted references to judge: logs kept";
    } else if (mo.n_queries != mw.n_queries ||
               memcmp(mo.Yq, mw.Yq, (size_t)mo.n_queries * in->m * sizeof *mo.Yq)) {
        bad = trh_err("internal: the guard's two sides scored different queries");
    } else {
        g->ran = 1;
        trh_guard_bootstrap(mw.P[sw], mo.P[so], mo.Yq, mo.n_queries, in->m, in->cn,
                            TRH_GUARD_RESAMPLES, g);
        g->keep = g->p <= alpha;
        g->why = g->keep ? "the trusted references route better with the logs, beyond chance"
                         : "the trusted references do not show the logs routing better beyond "
                           "chance: the pack is built without them";
    }
    trh_method_scores_free(&mo), trh_method_scores_free(&mw);
    return bad;
}

/* What the guard decided and why. */
static void say_log_guard(const trh_log_guard *g)
{
    fprintf(say, "log guard: %zu rows with logged cells, %zu trusted rows", g->logged_rows, g->trusted_rows);
    if (g->ran)
        fprintf(say, "; %u-fold cross-validation on %u trusted queries (logged rows neighbours in "
                "every fold): without the logs %s (k=%u, prior strength %g) Area %.4f, with "
                "them %s (k=%u, prior strength %g) Area %.4f, difference %+.4f (paired bootstrap over "
                "the queries, %u resamples: 5 %% quantile %+.4f, one-sided p %.4f, alpha %g)",
                TRH_FOLDS, g->queries, trh_cand_name[g->method_without], g->k_without,
                (double)g->a_without, g->area_without, trh_cand_name[g->method_with], g->k_with,
                (double)g->a_with, g->area_with, g->delta, g->resamples, g->lo, g->p, g->alpha);
    fprintf(say, ": %s %s\n", g->keep ? "KEPT," : "DROPPED,", g->why);
}

/* build --json's "log_guard" object. */
static void json_log_guard(cJSON *b, const trh_log_guard *g)
{
    cJSON *o = cJSON_AddObjectToObject(b, "log_guard");
    cJSON_AddBoolToObject(o, "judged", g->ran);
    cJSON_AddBoolToObject(o, "logs_kept", g->keep);
    cJSON_AddStringToObject(o, "why", g->why);
    cJSON_AddNumberToObject(o, "logged_rows", (double)g->logged_rows);
    cJSON_AddNumberToObject(o, "trusted_rows", (double)g->trusted_rows);
    if (!g->ran)
        return;
    cJSON_AddNumberToObject(o, "queries", g->queries);
    cJSON_AddStringToObject(o, "method_without", trh_cand_name[g->method_without]);
    cJSON_AddStringToObject(o, "method_with", trh_cand_name[g->method_with]);
    cJSON_AddNumberToObject(o, "area_without", g->area_without);
    cJSON_AddNumberToObject(o, "area_with", g->area_with);
    cJSON_AddNumberToObject(o, "difference", g->delta);
    cJSON_AddNumberToObject(o, "difference_q05", g->lo);
    cJSON_AddNumberToObject(o, "p", g->p);
    cJSON_AddNumberToObject(o, "alpha", g->alpha);
    cJSON_AddNumberToObject(o, "resamples", g->resamples);
}

int cmd_build(int argc, char **argv)
{
    /* Room for every --add-log there can be: no fixed count. */
    const char **logs = trh_xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof *logs);
    trh_devkeys dk = {0}; /* --device-keys; freed here whichever way build_with returns */
    int r = build_with(argc, argv, logs, &dk);
    trh_devkeys_free(&dk);
    free(logs);
    return r;
}

/* build --json: inspect's view of the written pack, verified (the pack was
 * loaded by the library before it was written), and what the build did. */
static void print_built(const char *out, const trh_buf *pack, double seconds, size_t no_words,
                        size_t zeroed, const trh_method_scores *ms, int chosen, int given,
                        const trh_prefilter_choice *pf, const trh_log_guard *lg)
{
    cJSON *o = trh_inspect_json(out, pack->data, pack->len), *b = cJSON_CreateObject();
    if (!o)
        return; /* cannot happen for a pack that just loaded; the message is printed */
    cJSON_ReplaceItemInObject(o, "verified", cJSON_CreateBool(1));
    cJSON_AddNumberToObject(b, "seconds", seconds);
    cJSON_AddNumberToObject(b, "skipped_no_known_word", (double)no_words);
    cJSON_AddNumberToObject(b, "skipped_zero_after_pc", (double)zeroed);
    /* What the method was chosen from: every candidate's Area on the
     * pooled out-of-fold curve of the 5-fold cross-validation. */
    cJSON *mv = cJSON_AddObjectToObject(b, "method_validation"),
          *ar = cJSON_AddObjectToObject(mv, "areas");
    cJSON_AddNumberToObject(mv, "queries", ms->n_queries);
    cJSON_AddNumberToObject(mv, "folds", TRH_FOLDS);
    cJSON_AddNumberToObject(mv, "references", (double)ms->n_refs);
    for (int c = 0; c < TRH_N_CAND; c++)
        if (ms->scored[c])
            cJSON_AddNumberToObject(ar, trh_cand_name[c], ms->area[c]);
    if (ms->scored[TRH_CAND_TASK_MAP])
        cJSON_AddNumberToObject(mv, "task_map_l2", ms->task_map.l2);
    cJSON_AddStringToObject(mv, "method", trh_cand_name[chosen]);
    cJSON_AddBoolToObject(mv, "given", given);
    if (pf->n_queries) { /* --prefilter given or auto: what it measured */
        cJSON *pv = cJSON_AddObjectToObject(b, "prefilter_validation");
        cJSON_AddNumberToObject(pv, "candidates", pf->c_tried);
        cJSON_AddBoolToObject(pv, "chosen", pf->chosen);
        cJSON_AddBoolToObject(pv, "enabled", pf->c > 0);
        cJSON_AddNumberToObject(pv, "recall_at", pf->recall_at);
        cJSON_AddNumberToObject(pv, "recall", pf->recall);
        cJSON_AddNumberToObject(pv, "queries", pf->n_queries);
        cJSON_AddNumberToObject(pv, "predicted_time_vs_exact", pf->cost_ratio);
    }
    if (lg->logged_rows)
        json_log_guard(b, lg);
    cJSON_AddItemToObject(o, "build", b);
    char *txt = cJSON_PrintUnformatted(o);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(o);
}

/* cmd_build with logs[] (argc entries) for the --add-log paths. */
static int build_with(int argc, char **argv, const char **logs, trh_devkeys *dk)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"embedder", required_argument, 0, 'e'},
        {"key", required_argument, 0, 'K'}, {"out", required_argument, 0, 'o'},
        {"split", required_argument, 0, 's'}, {"k", required_argument, 0, 'k'},
        {"lambda", required_argument, 0, 'l'}, {"counter", required_argument, 0, 'c'},
        {"expires-days", required_argument, 0, 'x'}, {"no-pc", no_argument, 0, 'P'},
        {"force", no_argument, 0, 'f'}, {"prefilter", required_argument, 0, 'C'},
        {"clusters", required_argument, 0, 'Q'}, {"no-tasks", no_argument, 0, 'T'},
        {"learned-map", no_argument, 0, 'L'}, {"add-log", required_argument, 0, 'A'},
        {"prior-strength", required_argument, 0, 'a'}, {"json", no_argument, 0, 'J'},
        {"task-map", no_argument, 0, 'M'}, {"method", required_argument, 0, 'D'},
        {"device-keys", required_argument, 0, 'V'}, {"allow-unauthenticated", no_argument, 0, 'U'},
        {"no-log-guard", no_argument, 0, 'G'}, {"log-guard-alpha", required_argument, 0, 'g'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *device_keys = NULL;
    int allow_v1 = 0, guard = 1;
    double guard_alpha = TRH_GUARD_ALPHA;
    const char *data = NULL, *emb_path = NULL, *key = NULL, *out = NULL;
    int all = 0, force = 0, no_pc = 0, no_tasks = 0, lmap = 0, json = 0, task_map = 0, c;
    say = stdout;
    uint64_t k = 0, counter = 1, expires_days = 0, prefilter = 0, n_clusters = 0;
    int prefilter_auto = 0;
    /* k 0, prior strength and lambda < 0: chosen on validation */
    double lambda = -1, prior_strength = -1;
    size_t n_logs = 0;
    int method_arg = -1; /* trh_cand; -1: chosen by cross-validation */
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'e': emb_path = optarg; break;
        case 'K': key = optarg; break;
        case 'o': out = optarg; break;
        case 's':
            if (strcmp(optarg, "all") && strcmp(optarg, "train"))
                return trh_err("--split must be train or all, not '%s'", optarg), 2;
            all = !strcmp(optarg, "all");
            break;
        case 'k':
            if (trh_parse_u64(optarg, &k) || k == 0 || k > TR_K_MAX)
                return trh_err("--k must be an integer in 1..%d, not '%s'", TR_K_MAX, optarg), 2;
            break;
        case 'l':
            /* The pack stores f32: 1e39 would become Inf there, which the
             * device refuses (TR_E_MALFORMED). */
            if (trh_parse_f64(optarg, &lambda) || lambda < 0 || lambda > FLT_MAX)
                return trh_err("--lambda must be a number in [0, %g] (stored as f32), not '%s'",
                              (double)FLT_MAX, optarg), 2;
            break;
        case 'a':
            if (trh_parse_f64(optarg, &prior_strength) || !(prior_strength >= 0) ||
                prior_strength > TR_PRIOR_STRENGTH_MAX)
                return trh_err("--prior-strength must be a number in 0..%g, not '%s'",
                              (double)TR_PRIOR_STRENGTH_MAX, optarg), 2;
            break;
        case 'c':
            if (trh_parse_u64(optarg, &counter))
                return trh_err("--counter must be a non-negative integer, not '%s'", optarg), 2;
            if (counter > TRH_COUNTER_MAX)
                return trh_err("--counter %s: at most %llu (2^64-2); 2^64-1 would raise a device's "
                              "floor so that no later pack could ever load it",
                              optarg, (unsigned long long)TRH_COUNTER_MAX), 2;
            break;
        case 'x':
            if (trh_parse_u64(optarg, &expires_days) || expires_days == 0 || expires_days > 36500)
                return trh_err("--expires-days must be in 1..36500, not '%s'", optarg), 2;
            break;
        case 'C':
            prefilter_auto = !strcmp(optarg, "auto");
            if (!prefilter_auto && (trh_parse_u64(optarg, &prefilter) || prefilter > TR_PREFILTER_MAX))
                return trh_err("--prefilter must be auto or an integer in 0..%d, not '%s'",
                              TR_PREFILTER_MAX, optarg), 2;
            break;
        case 'Q':
            if (trh_parse_u64(optarg, &n_clusters) || n_clusters == 0 || n_clusters > 65536)
                return trh_err("--clusters must be an integer in 1..65536, not '%s'", optarg), 2;
            break;
        case 'P': no_pc = 1; break;
        case 'T': no_tasks = 1; break;
        case 'L': lmap = 1; break;
        case 'A':
            logs[n_logs++] = optarg;
            break;
        case 'f': force = 1; break;
        case 'J': json = 1, say = stderr; break;
        case 'M': task_map = 1; break;
        case 'D':
            for (int c2 = 0; c2 < TRH_N_CAND; c2++)
                if (!strcmp(optarg, trh_cand_name[c2]))
                    method_arg = c2;
            if (method_arg < 0)
                return trh_err("--method must be knn, cluster, learned-map or task-map, not '%s'",
                              optarg), 2;
            break;
        case 'V': device_keys = optarg; break;
        case 'U': allow_v1 = 1; break;
        case 'G': guard = 0; break;
        case 'g':
            if (trh_parse_f64(optarg, &guard_alpha) || !(guard_alpha > 0) || guard_alpha >= 1)
                return trh_err("--log-guard-alpha must be a number in (0, 1), not '%s'", optarg), 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (!emb_path)
        emb_path = trh_default_embedder();
    if (!data || !emb_path || !key || !out || optind != argc) {
        trh_err("build needs --data, --key and --out, and --embedder unless the CLI is installed "
               "with its default table (PREFIX/share/tinyroute/embedder.bin)");
        fputs(usage, stderr);
        return 2;
    }
    if (method_arg == TRH_CAND_TASK_MAP)
        task_map = 1;
    if ((method_arg == TRH_CAND_CLUSTER || method_arg == TRH_CAND_LEARNED_MAP) && !n_clusters)
        return trh_err("--method %s needs --clusters K", trh_cand_name[method_arg]), 2;
    if (method_arg == TRH_CAND_LEARNED_MAP)
        lmap = 1;
    if (task_map && (n_clusters || lmap))
        return trh_err("--task-map makes the tasks the clusters: not with --clusters or --learned-map"), 2;
    if (lmap && (n_clusters == 0 || n_clusters > TR_LMAP_MAX_K))
        return trh_err("--learned-map needs --clusters K with K <= %u", TR_LMAP_MAX_K), 2;
    if (prefilter && k && prefilter < k)
        return trh_err("--prefilter %llu keeps fewer candidates than --k %llu",
                      (unsigned long long)prefilter, (unsigned long long)k), 2;
    /* Settings the device refuses are refused before minutes of work (the
     * same checks run again when the pack is written). */
    if (trh_pack_check_settings(counter, k ? (uint32_t)k : 1, lambda < 0 ? 0 : lambda))
        return 2;
    {
        /* --force never overwrites an input (issue #18). */
        const char **in = trh_xmalloc((2 + n_logs) * sizeof *in);
        in[0] = emb_path;
        in[1] = key;
        for (size_t i = 0; i < n_logs; i++)
            in[2 + i] = logs[i];
        int clash = trh_out_not_input_ds("--out", out, in, 2 + n_logs, &data, 1, NULL);
        free(in);
        if (clash)
            return 2;
    }
    if (!force && access(out, F_OK) == 0)
        return trh_err("%s exists; not overwriting it (use --force)", out), 2;
    { /* the key signs now, not only after the whole build */
        uint8_t hash[32] = {0}, sig[TR_SIG_MAX_BYTES];
        size_t sig_len;
        tr_pubkey pub;
        if (trh_key_sign(key, hash, sig, &sig_len, &pub))
            return 1;
    }
    if (allow_v1 && !device_keys)
        return trh_err("--allow-unauthenticated goes with --device-keys"), 2;
    /* Before minutes of embedding: a bad key file fails now. */
    if (device_keys && trh_devkeys_load(device_keys, dk))
        return 1;
    dk->allow_v1 = allow_v1;

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t emb_len;
    uint8_t *table = trh_read_file(emb_path, &emb_len);
    if (!table)
        return 1;
    tr_embedder e;
    tr_status st = tr_embedder_view(table, emb_len, &e);
    if (st != TR_OK) {
        free(table);
        return trh_err("%s: not a valid embedder table (%s)", emb_path, tr_strerror(st));
    }
    trh_dataset ds;
    trh_progress pg;
    trh_progress_start(&pg, "build", "loading", 0);
    if (trh_dataset_load_flags(data, &ds, TRH_DS_NO_TEXT) != 0) {
        free(table);
        return 1;
    }
    trh_progress_end(&pg);
    if (ds.n_models > TR_MODELS_MAX) { /* before the embedding passes */
        size_t wl = strlen(data) + 16;
        char *where = trh_xmalloc(wl);
        snprintf(where, wl, "%s/models.csv", data);
        trh_models_max_err(where, "M", ds.n_models, "pack");
        free(where);
        free(table);
        trh_dataset_free(&ds);
        return 1;
    }
    {
        /* Costs the pack cannot hold (f32), before the embedding passes. */
        trh_pack_model *pm = trh_xmalloc(ds.n_models * sizeof *pm);
        for (size_t j = 0; j < ds.n_models; j++)
            pm[j] = (trh_pack_model){ds.models[j].name, ds.models[j].cost,
                                    ds.models[j].where ? TR_CLOUD : TR_DEVICE};
        int bad = trh_pack_check_models(pm, (uint32_t)ds.n_models);
        free(pm);
        if (bad) {
            trh_err("%s/models.csv: refused before building (see above)", data);
            free(table);
            trh_dataset_free(&ds);
            return 1;
        }
    }
    const uint32_t dim = e.dim, m = (uint32_t)ds.n_models;
    /* The fleet's cells (fleet_counts.csv) and, with the guard, the prompts
     * the pc is not fitted on: those with no known cell but logged ones
     * (the embedder stays the one the trusted references give). */
    uint8_t *cells = NULL, *pc_skip = NULL, *fold_w = NULL; /* fold_w: the guard's folds */
    if (guard && trh_fleet_cells(data, &ds, &cells)) {
        free(table);
        trh_dataset_free(&ds);
        return 1;
    }
    if (cells)
        pc_skip = untrusted_prompts(&ds, cells, all);
    uint8_t *codes = score_codes(ds.scores, ds.n_prompts * ds.n_models);
    if (codes) { /* the floats come back after pass 1, for the references */
        free(ds.scores);
        ds.scores = NULL;
    }

    /* Pass 1: plain SIF embeddings of the references, to fit the pc. */
    size_t *pick = trh_xmalloc(ds.n_prompts * sizeof *pick), n = 0, nx = 0; /* nx: rows of x */
    float *x = trh_xmalloc(ds.n_prompts * (size_t)dim * sizeof *x);
    size_t no_words = 0;
    /* The text is streamed from prompts.jsonl in each pass, not held. */
    trh_prompt_reader rd;
    if (trh_prompt_reader_open(&rd, data, &ds))
        goto fail;
    trh_progress_start(&pg, "build", "embedding pass 1", ds.n_prompts);
    for (size_t i = 0; i < ds.n_prompts; i++) {
        const trh_ds_prompt *p = &ds.prompts[i];
        const char *text = trh_prompt_reader_next(&rd);
        if (!text) {
            trh_prompt_reader_close(&rd);
            goto fail;
        }
        if ((i & 4095) == 0) /* the clock is cheap, but not free per prompt */
            trh_progress_update(&pg, i);
        if (!all && p->split == TRH_SPLIT_TEST)
            continue;
        uint32_t known;
        st = tr_embed_f32(&e, text, strlen(text), x + nx * dim, &known);
        if (st != TR_OK) {
            trh_err("%s/prompts.jsonl: prompt %s: %s", data, p->id, tr_strerror(st));
            trh_prompt_reader_close(&rd);
            goto fail;
        }
        if (!known) {
            no_words++; /* nothing to place it by: not a reference */
            continue;
        }
        if (!pc_skip || !pc_skip[i])
            trh_normalize(x + nx++ * dim, dim);
        pick[n++] = i;
    }
    trh_prompt_reader_close(&rd);
    trh_progress_end(&pg);
    if (n == 0) {
        trh_err("%s: no reference prompt with a known word", data);
        goto fail;
    }
    if (n > UINT32_MAX) {
        trh_err("%s: too many references", data);
        goto fail;
    }
    if (!no_pc) {
        float *pc = (float *)(void *)(table + tr_ld32(table + TR_E_OFF_PC));
        trh_progress_start(&pg, "build", "principal comp.", 0);
        if (trh_first_pc(x, nx, dim, pc) != 0) {
            trh_err("out of memory");
            goto fail;
        }
        trh_progress_end(&pg);
        tr_emb_set_pc(table, 1);
        if ((st = tr_embedder_view(table, emb_len, &e)) != TR_OK) {
            trh_err("internal: embedder view after pc: %s", tr_strerror(st));
            goto fail;
        }
    }
    /* The pass-1 rows only served the pc: N x D floats not to hold any
     * longer (issue #8: the build's peak memory). */
    free(x);
    x = NULL;
    /* The references' scores, row j for prompt pick[j]: decoded from the
     * byte codes, or else compacted in place in the dataset's own matrix
     * (j <= pick[j] and pick grows: a row moves before it is overwritten). */
    float *scores;
    if (codes) {
        static const float val[3] = {0.0f, 1.0f, NAN};
        scores = trh_xmalloc(n * (size_t)m * sizeof *scores);
        for (size_t j = 0; j < n; j++)
            for (uint32_t t = 0; t < m; t++)
                scores[j * m + t] = val[codes[pick[j] * m + t]];
        free(codes);
        codes = NULL;
    } else {
        scores = ds.scores;
        ds.scores = NULL;
        for (size_t j = 0; j < n; j++)
            if (pick[j] != j)
                memmove(scores + j * m, scores + pick[j] * m, m * sizeof *scores);
    }
    /* Pass 2: the embedding the device computes, bit for bit. */
    int8_t *refs = trh_xmalloc(n * (size_t)dim);
    size_t *kept_from = trh_xmalloc(n * sizeof *kept_from);      /* prompt index */
    size_t kept = 0, zeroed = 0, at = 0;
    float *acc = trh_xmalloc(dim * sizeof *acc);
    if (trh_prompt_reader_open(&rd, data, &ds)) {
        free(refs), free(kept_from), free(scores), free(acc);
        goto fail;
    }
    trh_progress_start(&pg, "build", "embedding pass 2", n);
    for (size_t j = 0; j < n; j++) {
        const char *text = text_at(&rd, &at, pick[j]);
        uint32_t known;
        if (!text) {
            trh_prompt_reader_close(&rd);
            free(refs), free(kept_from), free(scores), free(acc);
            goto fail;
        }
        if ((j & 4095) == 0)
            trh_progress_update(&pg, j);
        tr_embed_f32(&e, text, strlen(text), acc, &known);
        if (tr_quantize_i8(acc, dim, refs + kept * dim) != TR_OK) {
            zeroed++;
            continue;
        }
        if (kept != j) /* kept <= j: compacted in place */
            memmove(scores + kept * m, scores + j * m, m * sizeof *scores);
        kept_from[kept] = pick[j];
        kept++;
    }
    free(acc);
    trh_prompt_reader_close(&rd);
    trh_progress_end(&pg);
    if (kept) /* give back the rows of the prompts not kept */
        scores = trh_xrealloc(scores, kept * (size_t)m * sizeof *scores);
    char name[TR_EMBEDDER_NAME_MAX];
    if (e.flags & TR_EMB_HASHED)
        snprintf(name, sizeof name, "hashed-ngram-%uk-d%u%s", e.n_words / 1024, e.dim,
                 no_pc ? "" : "-pc");
    else
        snprintf(name, sizeof name, "glove100-sif-%uk%s", e.n_words / 1000, no_pc ? "" : "-pc");

    /* Logged prompts follow the dataset's references. They only add rows:
     * the pc was fitted above, so the embedder stays the one they were
     * logged under, and they take no part in the task table (no task). */
    size_t kept_ds = kept;
    /* With --device-keys a refused log (forged, altered, truncated, replayed,
     * foreign, revoked, or unreadable) is reported and left out, and the
     * pack is built from the rest: one bad device must not stop a fleet's
     * build. Exit 1 then, as for any batch with a part failed (README).
     * Without, any bad log fails the build as before. */
    size_t refused = 0;
    for (size_t i = 0; i < n_logs; i++)
        if (trh_log_to_refs(logs[i], &e, name, &ds, device_keys ? dk : NULL, &refs, &scores,
                           &kept, say)) {
            if (device_keys) {
                refused++;
                continue;
            }
            free(refs), free(scores), free(kept_from);
            goto fail;
        }

    const int chose_k = k == 0, chose_a = prior_strength < 0, chose_lambda = lambda < 0;
    const trh_knn_given given = {(uint32_t)k, (uint32_t)prefilter, (float)prior_strength, lambda};
    /* The do-no-harm guard on the logged rows (tools/log_guard.h). */
    trh_log_guard lg = {0};
    lg.keep = 1;
    if (guard && (kept > kept_ds || cells)) {
        double *cost = trh_xmalloc(2 * (size_t)m * sizeof *cost), *cn = cost + m;
        for (uint32_t j = 0; j < m; j++)
            cost[j] = ds.models[j].cost;
        trh_norm_costs(cost, m, cn);
        const guard_in gi = {&ds, dim, m, cn, &given, method_arg, lmap, n_clusters};
        guard_rows gr = {0};
        trh_progress_start(&pg, "build", "log guard", 0);
        int bad = log_guard(&gi, refs, scores, kept, kept_ds, kept_from, cells, guard_alpha, &lg,
                            &fold_w, &gr);
        trh_progress_end(&pg);
        free(cost);
        if (!bad && !lg.keep) { /* the pack without the logs */
            free(refs), free(scores), free(kept_from), free(fold_w);
            refs = gr.refs, scores = gr.Y, kept_from = gr.from, kept = kept_ds = gr.n;
            gr.refs = NULL, gr.Y = NULL, gr.from = NULL, fold_w = NULL;
        }
        guard_rows_free(&gr);
        if (bad) {
            free(refs), free(scores), free(kept_from);
            goto fail;
        }
        say_log_guard(&lg);
    }
    trh_knn_choice ch;
    if (choose_knn(refs, kept, dim, scores, &ds, &given, &pg, &ch)) {
        free(refs), free(scores), free(kept_from);
        goto fail;
    }
    k = ch.k;
    lambda = ch.lambda;
    trh_prefilter_choice pfc = {0};
    if (prefilter || prefilter_auto) {
        if (trh_choose_prefilter(refs, kept, dim, (uint32_t)k, (uint32_t)prefilter, prefilter_auto,
                                 &pfc)) {
            free(refs), free(scores), free(kept_from);
            goto fail;
        }
        prefilter = pfc.c;
        say_prefilter(&pfc);
    }

    /* Each dataset reference's task, for the S3 table and the task map. */
    trh_buf tasks = {0};
    int tasks_bad = 0;
    uint32_t *task_of = trh_xmalloc((kept_ds ? kept_ds : 1) * sizeof *task_of);
    const char **names = trh_xmalloc((kept_ds ? kept_ds : 1) * sizeof *names);
    size_t untasked;
    uint32_t n_tasks = assign_tasks(&ds, kept_from, kept_ds, refs, dim, task_of, names, &untasked);
    if (untasked)
        fprintf(say, "tasks: %zu references without a task given the nearest of the %u tasks' "
                "(cosine to each task's mean row)\n", untasked, n_tasks);
    for (uint32_t i = 0; i < n_tasks; i++)
        names[i] = trh_xstrdup(names[i]);

    /* The estimator: the one given, or the best by 5-fold cross-validation. */
    trh_method_scores ms;
    int chosen_method;
    {
        double *cost = trh_xmalloc(2 * (size_t)m * sizeof *cost), *cn = cost + m;
        for (uint32_t j = 0; j < m; j++)
            cost[j] = ds.models[j].cost;
        trh_norm_costs(cost, m, cn);
        int want[TRH_N_CAND];
        want_of(method_arg, n_clusters, lmap, want);
        uint8_t *fold = fold_w; /* with logs the guard kept: its folds */
        if (!fold) {
            fold = trh_xmalloc(kept ? kept : 1);
            trh_cv_folds(kept, fold);
        }
        fold_w = NULL;
        trh_progress_start(&pg, "build", "method validation", 0);
        int bad = trh_score_methods(refs, kept, kept_ds, dim, scores, m, cn, fold, (uint32_t)k, ch.a,
                                   !chose_a, task_of, n_tasks, (uint32_t)n_clusters, want, &ms);
        trh_progress_end(&pg);
        free(fold);
        if (bad) {
            free(cost), trh_method_scores_free(&ms);
            free(refs), free(scores), free(kept_from), free_task_names(task_of, names, n_tasks);
            goto fail;
        }
        chosen_method = method_arg >= 0 ? method_arg : ms.best >= 0 ? ms.best : TRH_CAND_KNN;
        if (chosen_method == TRH_CAND_TASK_MAP)
            task_map = 1;
        fprintf(say, "method validation: %u-fold cross-validation over %zu references, %u scored "
                "out of fold:", TRH_FOLDS, ms.n_refs, ms.n_queries);
        int any = 0;
        for (int c2 = 0; c2 < TRH_N_CAND; c2++)
            if (ms.scored[c2]) {
                fprintf(say, "%s %s Area %.4f", any ? "," : "", trh_cand_name[c2], ms.area[c2]);
                if (c2 == TRH_CAND_TASK_MAP)
                    fprintf(say, " (l2 %g, prior strength %g)", ms.task_map.l2, (double)ms.task_map.a);
                any = 1;
            }
        fprintf(say, "%s; method %s%s\n", any ? "" : " none scored", trh_cand_name[chosen_method],
                method_arg >= 0 ? " (given)" : "");
        /* The guard on the shipped method's own out-of-fold curve; kNN's
         * leave-one-out curve when that method could not be scored. */
        if (ms.scored[chosen_method]) {
            trh_guard_lambda(ms.P[chosen_method], ms.Yq, ms.n_queries, m, cn, given.lambda, &ch);
            lambda = ch.lambda;
            char curve[64];
            snprintf(curve, sizeof curve, "%s's out-of-fold curve", trh_cand_name[chosen_method]);
            say_guard(&ch, &given, curve);
        } else if (ch.n_queries) {
            say_guard(&ch, &given, "knn's leave-one-out curve");
        }
        free(cost);
        trh_method_scores_free(&ms);
    }
    int n_scored = 0;
    for (int c2 = 0; c2 < TRH_N_CAND; c2++)
        n_scored += ms.scored[c2];

    trh_buf clusters = {0};
    float *theta = NULL;
    if (task_map) {
        double *cost = trh_xmalloc(2 * (size_t)m * sizeof *cost), *cn = cost + m;
        for (uint32_t j = 0; j < m; j++)
            cost[j] = ds.models[j].cost;
        trh_norm_costs(cost, m, cn);
        /* Its l2 and a as cross-validated with the method, else chosen now. */
        trh_task_map_info ti = {0};
        if (ms.scored[TRH_CAND_TASK_MAP])
            ti = ms.task_map;
        trh_progress_start(&pg, "build", "task map", 0);
        int bad = trh_task_map_build(refs, kept, kept_ds, dim, scores, m, cn, task_of, n_tasks, ch.a,
                                    &clusters, &theta, &ti);
        trh_progress_end(&pg);
        free(cost);
        if (bad) {
            free(refs), free(scores), free(kept_from), free_task_names(task_of, names, n_tasks);
            goto fail;
        }
        fprintf(say, "task map: %u tasks, l2 %g chosen on validation, Psi's prior strength %g "
                "(Area %.4f over %u out-of-fold queries)\n", n_tasks, ti.l2, (double)ti.a,
                ti.val_area, ti.val_queries);
    } else if (n_clusters) {
        if (n_clusters > kept) {
            trh_err("--clusters %llu exceeds the %zu references", (unsigned long long)n_clusters, kept);
            free(refs), free(scores), free(kept_from), free_task_names(task_of, names, n_tasks);
            goto fail;
        }
        uint32_t *assign = trh_xmalloc(kept * sizeof *assign);
        float *centroids = trh_xmalloc(n_clusters * dim * sizeof *centroids);
        trh_progress_start(&pg, "build", "k-means", 0);
        const km_rows kr = {&e, data, &ds, kept_from, kept_ds, refs};
        double inertia = fit_kmeans(&kr, kept, (uint32_t)n_clusters, centroids, assign, &pg);
        trh_progress_end(&pg);
        tr_clusters cv;
        if (inertia < 0 || trh_clusters_section(centroids, (uint32_t)n_clusters, dim, m,
                                               ch.a, &clusters) ||
            tr_clusters_view(clusters.data, clusters.len, dim, m, &cv) != TR_OK) {
            trh_err("k-means failed");
            free(assign), free(centroids), free(refs), free(scores), free(kept_from), free_task_names(task_of, names, n_tasks);
            goto fail;
        }
        /* Psi from the device's own assignment: the quantized centroids and
         * the int8 rows, exactly as tr_route will see them. */
        int32_t dots[TR_KNN_BLOCK];
        trh_progress_start(&pg, "build", "cluster assign", kept);
        for (size_t j = 0; j < kept; j++) {
            const int8_t *q = refs + j * dim;
            if ((j & 4095) == 0)
                trh_progress_update(&pg, j);
            assign[j] = tr_cluster_assign(tr_kernels_active(), &cv, q, dots);
        }
        trh_progress_end(&pg);
        /* cv views our own, writable, section buffer: fill its Psi in place,
         * each cluster's rate shrunk toward the model's overall error with
         * the kNN's strength a (one prior for every estimator). */
        trh_cluster_psi(scores, kept, m, assign, (uint32_t)n_clusters, ch.a,
                       (float *)(void *)cv.psi);
        fprintf(say, "k-means: K=%llu, inertia %.4f over %zu references\n",
               (unsigned long long)n_clusters, inertia, kept);
        if (lmap) {
            /* Phi(x) as the device sees it: the unit int8 row. */
            float *phi = trh_xmalloc(kept * dim * sizeof *phi), *err = trh_xmalloc(kept * m * sizeof *err);
            for (size_t j = 0; j < kept; j++) {
                trh_unit_row(refs + j * dim, dim, phi + j * dim);
                for (uint32_t t = 0; t < m; t++)
                    err[j * m + t] = 1.0f - scores[j * m + t]; /* NaN stays NaN */
            }
            theta = trh_xmalloc(n_clusters * (dim + 1) * sizeof *theta);
            trh_progress_start(&pg, "build", "learned map", 0);
            double before;
            double after = trh_learned_map_fit(phi, kept, dim, err, m, cv.psi, centroids,
                                              (uint32_t)n_clusters, 200, theta, &before);
            trh_progress_end(&pg);
            fprintf(say, "learned map: log loss %.6f from the K-means start %.6f\n", after, before);
            free(phi);
            free(err);
        }
        free(assign);
        free(centroids);
    }

    /* The S3 table, leave one task out (Shnitzer et al. 2023). */
    /* The prompts' text, ids and tasks have had their last use: give their
     * memory back before the task table and the pack (at 1M prompts, as
     * much as the int8 rows). Only the models are still needed. */
    for (size_t i = 0; i < ds.n_prompts; i++) {
        free(ds.prompts[i].id);
        free(ds.prompts[i].text);
        free(ds.prompts[i].task);
    }
    free(ds.prompts);
    ds.prompts = NULL;
    ds.n_prompts = 0;
#ifdef __GLIBC__
    malloc_trim(0); /* the strings were small heap blocks, not mmap'd */
#endif
    if (n_tasks >= 2 && !no_tasks) {
        trh_progress_start(&pg, "build", "task table", 0);
        tr_refs rv = trh_xrefs(refs, dim, (uint32_t)kept_ds, dim);
        float *u = trh_xmalloc(n_tasks * sizeof *u), *tacc = trh_xmalloc((size_t)n_tasks * m * sizeof *tacc);
        const uint32_t q = kept_ds <= TR_TASK_ALL_QUERIES ? 0 : TR_TASK_QUERIES;
        if (trh_task_fit_cb(tr_kernels_active(), &rv, task_of, n_tasks, scores, m, (uint32_t)k, 19, q,
                           u, tacc, fit_progress, &pg) == 0) {
            tasks_bad = trh_tasks_section(u, tacc, n_tasks, m, 19, 0.09f, 0.6f, &tasks);
            if (tasks_bad)
                trh_err("the task table is not written; the pack is not built");
            else if (q)
                fprintf(say, "task table: %u tasks, leave-one-task-out, k=%llu, u over 19 neighbours, "
                       "queries: a sample of up to %u per task\n",
                       n_tasks, (unsigned long long)k, q);
            else
                fprintf(say, "task table: %u tasks, leave-one-task-out, k=%llu, u over 19 neighbours, "
                       "queries: every reference\n",
                       n_tasks, (unsigned long long)k);
        }
        trh_refs_free(&rv);
        free(u);
        free(tacc);
        trh_progress_end(&pg);
    }
    free_task_names(task_of, names, n_tasks);
    free(kept_from);

    trh_pack_model *models = trh_xmalloc(m * sizeof *models);
    for (uint32_t j = 0; j < m; j++)
        models[j] = (trh_pack_model){ds.models[j].name, ds.models[j].cost,
                                    ds.models[j].where ? TR_CLOUD : TR_DEVICE};
    time_t now = time(NULL);
    trh_pack_spec spec = {
        .security_counter = counter, .created_unix = (uint64_t)now,
        .expires_unix = expires_days ? (uint64_t)now + expires_days * 86400 : 0,
        .embedder_name = name, .dim = dim, .n_refs = (uint32_t)kept, .n_models = m,
        .models = models, .refs = refs, .scores = scores, .embedder = table,
        .embedder_len = emb_len, .k = (uint32_t)k, .lambda = (float)lambda,
        .prior_strength = ch.a,
        .validation = {ch.n_queries ? (float)ch.area : 0.0f, ch.n_queries,
                       (ch.n_queries ? (chose_a ? TR_CHOSE_PRIOR : 0) | (chose_k ? TR_CHOSE_K : 0) |
                                           (chose_lambda ? TR_CHOSE_LAMBDA : 0)
                                     : 0) |
                           (method_arg < 0 && n_scored >= 2 ? TR_CHOSE_METHOD : 0)},
        .method = chosen_method == TRH_CAND_KNN       ? TR_PACK_METHOD_KNN
                  : chosen_method == TRH_CAND_CLUSTER ? TR_PACK_METHOD_CLUSTER
                                                     : TR_PACK_METHOD_LEARNED_MAP,
        .method_validation = {ms.scored[chosen_method] ? (float)ms.area[chosen_method] : 0.0f,
                              ms.scored[chosen_method] ? ms.n_queries : 0},
        .prefilter_c = (uint32_t)prefilter, .clusters = clusters.data,
        .clusters_len = clusters.len, .tasks = tasks.len ? tasks.data : NULL,
        .tasks_len = tasks.len, .lmap_theta = theta};
    trh_buf pack = {0};
    trh_pack_layout lay;
    trh_progress_start(&pg, "build", "writing", 0);
    int r = tasks_bad || trh_pack_write(&spec, &pack, &lay) || trh_pack_sign_checked(&pack, key) ||
            trh_write_file_atomic(out, pack.data, pack.len);
    if (r == 0)
        trh_progress_end(&pg);
    if (r == 0) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(say, "wrote %s: %zu bytes, N=%zu references, M=%u models, D=%u, embedder %s, "
               "counter %llu, %.1f s\n",
               out, pack.len, kept, m, dim, name, (unsigned long long)counter,
               (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (no_words || zeroed)
            fprintf(say, "skipped %zu prompts with no known word, %zu zero after pc removal\n",
                   no_words, zeroed);
        for (uint32_t i = 0; i < lay.n_sections; i++)
            fprintf(say, "  section %-13s %10llu bytes at %llu\n", trh_section_name(lay.sec[i].type),
                   (unsigned long long)lay.sec[i].length, (unsigned long long)lay.sec[i].offset);
        if (json)
            print_built(out, &pack, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
                        no_words, zeroed, &ms, chosen_method, method_arg >= 0, &pfc, &lg);
    }
    trh_buf_free(&pack);
    trh_buf_free(&clusters);
    trh_buf_free(&tasks);
    free(theta);
    free(models);
    free(refs);
    free(scores);
    free(pick);
    free(x);
    free(table);
    free(cells), free(pc_skip), free(fold_w);
    trh_dataset_free(&ds);
    if (r == 0 && refused) {
        trh_err("%zu of %zu logs refused (above); the pack was built from the others (exit 1)",
               refused, n_logs);
        r = 1; /* README's exit codes: a batch with a part failed */
    }
    return r;
fail:
    free(cells), free(pc_skip), free(fold_w);
    free(codes);
    free(pick);
    free(x);
    free(table);
    trh_dataset_free(&ds);
    return 1;
}
