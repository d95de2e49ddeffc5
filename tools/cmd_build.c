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
 * chosen on validation (tools/choose.h) over the references, costs cn
 * normalized as the pack's; the shipped lambda is checked against
 * Pareto-random there either way (a given one gets a warning). */
static int choose_knn(const int8_t *refs, size_t n, uint32_t dim, const float *scores, uint32_t m,
                      const double *cn, const trh_knn_given *given, trh_progress *pg,
                      trh_knn_choice *ch)
{
    trh_progress_start(pg, "build", "validation", 0);
    int r = trh_choose_knn(refs, (uint32_t)n, dim, scores, m, cn, given, ch);
    trh_progress_end(pg);
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

/* What the command line asks for. k, prior_strength and lambda hold the
 * given values (0 or < 0: choose on validation) until the choices replace
 * them; prefilter likewise. */
typedef struct build_opts {
    const char *data, *emb_path, *key, *out;
    const char *device_keys;  /* NULL: logs are read unauthenticated */
    const char **logs;        /* --add-log paths, n_logs of them */
    size_t n_logs;
    int all;                  /* --split all */
    int force, no_pc, no_tasks, lmap, json, task_map, allow_v1;
    int guard;                /* the do-no-harm log guard (--no-log-guard: 0) */
    double guard_alpha;
    uint64_t k, counter, expires_days, prefilter, n_clusters;
    int prefilter_auto;
    double lambda, prior_strength;
    int method_arg;           /* trh_cand; -1: chosen by cross-validation */
} build_opts;

/* Returned by the option phases when the build goes on (anything else is
 * the command's exit code: 0 after --help, 2 for a bad option). */
#define BUILD_GO (-1)

/* getopt over argv into o (logs: room for argc paths). Each value is
 * checked here, alone; how they combine is check_options'. */
static int parse_options(int argc, char **argv, const char **logs, build_opts *o)
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
    *o = (build_opts){.logs = logs, .guard = 1, .guard_alpha = TRH_GUARD_ALPHA, .counter = 1,
                      .lambda = -1, .prior_strength = -1, .method_arg = -1};
    int c;
    say = stdout;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': o->data = optarg; break;
        case 'e': o->emb_path = optarg; break;
        case 'K': o->key = optarg; break;
        case 'o': o->out = optarg; break;
        case 's':
            if (strcmp(optarg, "all") && strcmp(optarg, "train"))
                return trh_err("--split must be train or all, not '%s'", optarg), 2;
            o->all = !strcmp(optarg, "all");
            break;
        case 'k':
            if (trh_parse_u64(optarg, &o->k) || o->k == 0 || o->k > TR_K_MAX)
                return trh_err("--k must be an integer in 1..%d, not '%s'", TR_K_MAX, optarg), 2;
            break;
        case 'l':
            /* The pack stores f32: 1e39 would become Inf there, which the
             * device refuses (TR_E_MALFORMED). */
            if (trh_parse_f64(optarg, &o->lambda) || o->lambda < 0 || o->lambda > FLT_MAX)
                return trh_err("--lambda must be a number in [0, %g] (stored as f32), not '%s'",
                              (double)FLT_MAX, optarg), 2;
            break;
        case 'a':
            if (trh_parse_f64(optarg, &o->prior_strength) || !(o->prior_strength >= 0) ||
                o->prior_strength > TR_PRIOR_STRENGTH_MAX)
                return trh_err("--prior-strength must be a number in 0..%g, not '%s'",
                              (double)TR_PRIOR_STRENGTH_MAX, optarg), 2;
            break;
        case 'c':
            if (trh_parse_u64(optarg, &o->counter))
                return trh_err("--counter must be a non-negative integer, not '%s'", optarg), 2;
            if (o->counter > TRH_COUNTER_MAX)
                return trh_err("--counter %s: at most %llu (2^64-2); 2^64-1 would raise a device's "
                              "floor so that no later pack could ever load it",
                              optarg, (unsigned long long)TRH_COUNTER_MAX), 2;
            break;
        case 'x':
            if (trh_parse_u64(optarg, &o->expires_days) || o->expires_days == 0 || o->expires_days > 36500)
                return trh_err("--expires-days must be in 1..36500, not '%s'", optarg), 2;
            break;
        case 'C':
            o->prefilter_auto = !strcmp(optarg, "auto");
            if (!o->prefilter_auto &&
                (trh_parse_u64(optarg, &o->prefilter) || o->prefilter > TR_PREFILTER_MAX))
                return trh_err("--prefilter must be auto or an integer in 0..%d, not '%s'",
                              TR_PREFILTER_MAX, optarg), 2;
            break;
        case 'Q':
            if (trh_parse_u64(optarg, &o->n_clusters) || o->n_clusters == 0 || o->n_clusters > 65536)
                return trh_err("--clusters must be an integer in 1..65536, not '%s'", optarg), 2;
            break;
        case 'P': o->no_pc = 1; break;
        case 'T': o->no_tasks = 1; break;
        case 'L': o->lmap = 1; break;
        case 'A': logs[o->n_logs++] = optarg; break;
        case 'f': o->force = 1; break;
        case 'J': o->json = 1, say = stderr; break;
        case 'M': o->task_map = 1; break;
        case 'D':
            for (int c2 = 0; c2 < TRH_N_CAND; c2++)
                if (!strcmp(optarg, trh_cand_name[c2]))
                    o->method_arg = c2;
            if (o->method_arg < 0)
                return trh_err("--method must be knn, cluster, learned-map or task-map, not '%s'",
                              optarg), 2;
            break;
        case 'V': o->device_keys = optarg; break;
        case 'U': o->allow_v1 = 1; break;
        case 'G': o->guard = 0; break;
        case 'g':
            if (trh_parse_f64(optarg, &o->guard_alpha) || !(o->guard_alpha > 0) || o->guard_alpha >= 1)
                return trh_err("--log-guard-alpha must be a number in (0, 1), not '%s'", optarg), 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (!o->emb_path)
        o->emb_path = trh_default_embedder();
    if (!o->data || !o->emb_path || !o->key || !o->out || optind != argc) {
        trh_err("build needs --data, --key and --out, and --embedder unless the CLI is installed "
               "with its default table (PREFIX/share/tinyroute/embedder.bin)");
        fputs(usage, stderr);
        return 2;
    }
    return BUILD_GO;
}

/* How the options combine: --method implies its section's flags, and what
 * cannot go together is refused. Settings the device refuses are refused
 * before minutes of work (the same checks run again when the pack is
 * written). */
static int check_options(build_opts *o)
{
    if (o->method_arg == TRH_CAND_TASK_MAP)
        o->task_map = 1;
    if ((o->method_arg == TRH_CAND_CLUSTER || o->method_arg == TRH_CAND_LEARNED_MAP) && !o->n_clusters)
        return trh_err("--method %s needs --clusters K", trh_cand_name[o->method_arg]), 2;
    if (o->method_arg == TRH_CAND_LEARNED_MAP)
        o->lmap = 1;
    if (o->task_map && (o->n_clusters || o->lmap))
        return trh_err("--task-map makes the tasks the clusters: not with --clusters or --learned-map"), 2;
    if (o->lmap && (o->n_clusters == 0 || o->n_clusters > TR_LMAP_MAX_K))
        return trh_err("--learned-map needs --clusters K with K <= %u", TR_LMAP_MAX_K), 2;
    if (o->prefilter && o->k && o->prefilter < o->k)
        return trh_err("--prefilter %llu keeps fewer candidates than --k %llu",
                      (unsigned long long)o->prefilter, (unsigned long long)o->k), 2;
    if (trh_pack_check_settings(o->counter, o->k ? (uint32_t)o->k : 1, o->lambda < 0 ? 0 : o->lambda))
        return 2;
    return BUILD_GO;
}

/* The files, before minutes of embedding: --out is no input and not
 * there unless --force, the key signs, the device key file reads. */
static int check_files(const build_opts *o, trh_devkeys *dk)
{
    {
        /* --force never overwrites an input (issue #18). */
        const char **in = trh_xmalloc((2 + o->n_logs) * sizeof *in);
        in[0] = o->emb_path;
        in[1] = o->key;
        for (size_t i = 0; i < o->n_logs; i++)
            in[2 + i] = o->logs[i];
        const char *data = o->data;
        int clash = trh_out_not_input_ds("--out", o->out, in, 2 + o->n_logs, &data, 1, NULL);
        free(in);
        if (clash)
            return 2;
    }
    if (!o->force && access(o->out, F_OK) == 0)
        return trh_err("%s exists; not overwriting it (use --force)", o->out), 2;
    { /* the key signs now, not only after the whole build */
        uint8_t hash[32] = {0}, sig[TR_SIG_MAX_BYTES];
        size_t sig_len;
        tr_pubkey pub;
        if (trh_key_sign(o->key, hash, sig, &sig_len, &pub))
            return 1;
    }
    if (o->allow_v1 && !o->device_keys)
        return trh_err("--allow-unauthenticated goes with --device-keys"), 2;
    if (o->device_keys && trh_devkeys_load(o->device_keys, dk))
        return 1;
    dk->allow_v1 = o->allow_v1;
    return BUILD_GO;
}

/* One build, phase to phase: what each phase leaves for the next. Every
 * pointer is NULL or owned here, so build_free releases everything
 * whichever phase stopped the build. The work phases return 0, or 1 after
 * a message (the command's exit code). */
typedef struct build_ctx {
    build_opts o;
    trh_devkeys dk;              /* --device-keys */
    struct timespec t0;          /* the report's build time starts after the checks */
    trh_progress pg;
    /* The embedder table (the pc is written into it after pass 1), its
     * view, and the name the pack records for it. */
    uint8_t *table;
    size_t emb_len;
    tr_embedder e;
    char name[TR_EMBEDDER_NAME_MAX];
    trh_dataset ds;              /* text streamed from prompts.jsonl, not held */
    uint32_t dim, m;
    double *cost;                /* 2m: the models' costs, then cn */
    const double *cn;            /* the costs normalized as the pack's */
    uint8_t *cells;              /* fleet_counts.csv's logged cells (NULL: none) */
    uint8_t *pc_skip;            /* prompts the pc is not fitted on (NULL: none) */
    uint8_t *codes;              /* the scores as bytes while pass 1 runs */
    /* Pass 1: pick[] the n prompts with a known word (the references),
     * x the nx of their rows the pc is fitted on. */
    size_t *pick, n;
    float *x;
    size_t nx, no_words;
    /* The references (pass 2 and the logs): kept int8 rows and their
     * scores, the first kept_ds from the dataset (kept_from: prompt index). */
    int8_t *refs;
    float *scores;
    size_t *kept_from, kept, kept_ds, zeroed;
    size_t refused;              /* --add-log files refused (--device-keys) */
    /* What was given, kept apart from what is chosen (o.k, o.lambda and
     * o.prefilter are overwritten with the choices). */
    trh_knn_given given;
    int chose_k, chose_a, chose_lambda;
    trh_log_guard lg;
    uint8_t *fold_w;             /* the guard's folds, when it kept the logs */
    trh_knn_choice ch;
    trh_prefilter_choice pfc;
    uint32_t *task_of;           /* each dataset reference's task */
    const char **names;          /* the n_tasks task names (owned copies) */
    uint32_t n_tasks;
    trh_method_scores ms;        /* scores only after choose_estimator: P, Yq freed */
    int chosen_method, n_scored;
    trh_buf clusters;            /* the clusters section (task map or K-means) */
    float *theta;                /* the learned map's */
    trh_buf tasks;               /* the S3 table section */
    int tasks_bad;
} build_ctx;

static void build_free(build_ctx *b)
{
    trh_devkeys_free(&b->dk);
    free(b->o.logs);
    free(b->table), free(b->cost), free(b->cells), free(b->pc_skip), free(b->codes);
    free(b->pick), free(b->x), free(b->refs), free(b->scores), free(b->kept_from);
    free(b->fold_w), free(b->theta);
    if (b->names)
        free_task_names(b->task_of, b->names, b->n_tasks);
    trh_method_scores_free(&b->ms);
    trh_buf_free(&b->clusters), trh_buf_free(&b->tasks);
    trh_dataset_free(&b->ds);
}

/* The embedder table, read whole: the pack carries it. */
static int load_embedder(build_ctx *b)
{
    clock_gettime(CLOCK_MONOTONIC, &b->t0);
    b->table = trh_read_file(b->o.emb_path, &b->emb_len);
    if (!b->table)
        return 1;
    tr_status st = tr_embedder_view(b->table, b->emb_len, &b->e);
    if (st != TR_OK)
        return trh_err("%s: not a valid embedder table (%s)", b->o.emb_path, tr_strerror(st));
    b->dim = b->e.dim;
    return 0;
}

/* Models the pack cannot hold (too many, costs beyond f32) are refused
 * here, before the embedding passes. */
static int check_models(build_ctx *b)
{
    const trh_dataset *ds = &b->ds;
    if (ds->n_models > TR_MODELS_MAX) {
        size_t wl = strlen(b->o.data) + 16;
        char *where = trh_xmalloc(wl);
        snprintf(where, wl, "%s/models.csv", b->o.data);
        trh_models_max_err(where, "M", ds->n_models, "pack");
        free(where);
        return 1;
    }
    trh_pack_model *pm = trh_xmalloc(ds->n_models * sizeof *pm);
    for (size_t j = 0; j < ds->n_models; j++)
        pm[j] = (trh_pack_model){ds->models[j].name, ds->models[j].cost,
                                ds->models[j].where ? TR_CLOUD : TR_DEVICE};
    int bad = trh_pack_check_models(pm, (uint32_t)ds->n_models);
    free(pm);
    if (bad)
        return trh_err("%s/models.csv: refused before building (see above)", b->o.data);
    return 0;
}

/* The dataset without its text, the models' normalized costs (every
 * choice below weighs cost as the pack will), the fleet's cells and the
 * scores packed as bytes for pass 1. */
static int load_dataset(build_ctx *b)
{
    trh_progress_start(&b->pg, "build", "loading", 0);
    if (trh_dataset_load_flags(b->o.data, &b->ds, TRH_DS_NO_TEXT) != 0)
        return 1;
    trh_progress_end(&b->pg);
    if (check_models(b))
        return 1;
    const uint32_t m = b->m = (uint32_t)b->ds.n_models;
    b->cost = trh_xmalloc(2 * (size_t)m * sizeof *b->cost);
    for (uint32_t j = 0; j < m; j++)
        b->cost[j] = b->ds.models[j].cost;
    trh_norm_costs(b->cost, m, b->cost + m);
    b->cn = b->cost + m;
    /* The fleet's cells (fleet_counts.csv) and, with the guard, the prompts
     * the pc is not fitted on: those with no known cell but logged ones
     * (the embedder stays the one the trusted references give). */
    if (b->o.guard && trh_fleet_cells(b->o.data, &b->ds, &b->cells))
        return 1;
    if (b->cells)
        b->pc_skip = untrusted_prompts(&b->ds, b->cells, b->o.all);
    b->codes = score_codes(b->ds.scores, b->ds.n_prompts * b->ds.n_models);
    if (b->codes) { /* the floats come back after pass 1, for the references */
        free(b->ds.scores);
        b->ds.scores = NULL;
    }
    return 0;
}

/* Pass 1: plain SIF embeddings of the references, to fit the pc. Picks
 * the references: the split's prompts with a known word. */
static int embed_pass1(build_ctx *b)
{
    const trh_dataset *ds = &b->ds;
    const uint32_t dim = b->dim;
    b->pick = trh_xmalloc(ds->n_prompts * sizeof *b->pick);
    b->x = trh_xmalloc(ds->n_prompts * (size_t)dim * sizeof *b->x);
    trh_prompt_reader rd;
    if (trh_prompt_reader_open(&rd, b->o.data, ds))
        return 1;
    trh_progress_start(&b->pg, "build", "embedding pass 1", ds->n_prompts);
    for (size_t i = 0; i < ds->n_prompts; i++) {
        const trh_ds_prompt *p = &ds->prompts[i];
        const char *text = trh_prompt_reader_next(&rd);
        if (!text) {
            trh_prompt_reader_close(&rd);
            return 1;
        }
        if ((i & 4095) == 0) /* the clock is cheap, but not free per prompt */
            trh_progress_update(&b->pg, i);
        if (!b->o.all && p->split == TRH_SPLIT_TEST)
            continue;
        uint32_t known;
        tr_status st = tr_embed_f32(&b->e, text, strlen(text), b->x + b->nx * dim, &known);
        if (st != TR_OK) {
            trh_err("%s/prompts.jsonl: prompt %s: %s", b->o.data, p->id, tr_strerror(st));
            trh_prompt_reader_close(&rd);
            return 1;
        }
        if (!known) {
            b->no_words++; /* nothing to place it by: not a reference */
            continue;
        }
        if (!b->pc_skip || !b->pc_skip[i])
            trh_normalize(b->x + b->nx++ * dim, dim);
        b->pick[b->n++] = i;
    }
    trh_prompt_reader_close(&rd);
    trh_progress_end(&b->pg);
    if (b->n == 0)
        return trh_err("%s: no reference prompt with a known word", b->o.data);
    if (b->n > UINT32_MAX)
        return trh_err("%s: too many references", b->o.data);
    return 0;
}

/* The first principal component of the pass-1 rows, written into the
 * table (unless --no-pc): pass 2 then embeds as the device will. */
static int fit_pc(build_ctx *b)
{
    if (!b->o.no_pc) {
        float *pc = (float *)(void *)(b->table + tr_ld32(b->table + TR_E_OFF_PC));
        trh_progress_start(&b->pg, "build", "principal comp.", 0);
        if (trh_first_pc(b->x, b->nx, b->dim, pc) != 0)
            return trh_err("out of memory");
        trh_progress_end(&b->pg);
        tr_emb_set_pc(b->table, 1);
        tr_status st = tr_embedder_view(b->table, b->emb_len, &b->e);
        if (st != TR_OK)
            return trh_err("internal: embedder view after pc: %s", tr_strerror(st));
    }
    /* The pass-1 rows only served the pc: N x D floats not to hold any
     * longer (issue #8: the build's peak memory). */
    free(b->x);
    b->x = NULL;
    return 0;
}

/* The references' scores, row j for prompt pick[j]: decoded from the
 * byte codes, or else compacted in place in the dataset's own matrix
 * (j <= pick[j] and pick grows: a row moves before it is overwritten). */
static void reference_scores(build_ctx *b)
{
    const uint32_t m = b->m;
    const size_t n = b->n, *pick = b->pick;
    if (b->codes) {
        static const float val[3] = {0.0f, 1.0f, NAN};
        float *scores = b->scores = trh_xmalloc(n * (size_t)m * sizeof *scores);
        for (size_t j = 0; j < n; j++)
            for (uint32_t t = 0; t < m; t++)
                scores[j * m + t] = val[b->codes[pick[j] * m + t]];
        free(b->codes);
        b->codes = NULL;
    } else {
        float *scores = b->scores = b->ds.scores;
        b->ds.scores = NULL;
        for (size_t j = 0; j < n; j++)
            if (pick[j] != j)
                memmove(scores + j * m, scores + pick[j] * m, m * sizeof *scores);
    }
}

/* Pass 2: the embedding the device computes, bit for bit, quantized to
 * the int8 rows; a row that quantizes to zero (after the pc) is dropped
 * with its scores. */
static int embed_pass2(build_ctx *b)
{
    const uint32_t dim = b->dim, m = b->m;
    const size_t n = b->n;
    float *scores = b->scores;
    b->refs = trh_xmalloc(n * (size_t)dim);
    b->kept_from = trh_xmalloc(n * sizeof *b->kept_from); /* prompt index */
    size_t kept = 0, at = 0;
    trh_prompt_reader rd;
    if (trh_prompt_reader_open(&rd, b->o.data, &b->ds))
        return 1;
    float *acc = trh_xmalloc(dim * sizeof *acc);
    trh_progress_start(&b->pg, "build", "embedding pass 2", n);
    for (size_t j = 0; j < n; j++) {
        const char *text = text_at(&rd, &at, b->pick[j]);
        uint32_t known;
        if (!text) {
            trh_prompt_reader_close(&rd);
            free(acc);
            return 1;
        }
        if ((j & 4095) == 0)
            trh_progress_update(&b->pg, j);
        tr_embed_f32(&b->e, text, strlen(text), acc, &known);
        if (tr_quantize_i8(acc, dim, b->refs + kept * dim) != TR_OK) {
            b->zeroed++;
            continue;
        }
        if (kept != j) /* kept <= j: compacted in place */
            memmove(scores + kept * m, scores + j * m, m * sizeof *scores);
        b->kept_from[kept] = b->pick[j];
        kept++;
    }
    free(acc);
    trh_prompt_reader_close(&rd);
    trh_progress_end(&b->pg);
    if (kept) /* give back the rows of the prompts not kept */
        b->scores = trh_xrealloc(scores, kept * (size_t)m * sizeof *scores);
    b->kept = b->kept_ds = kept;
    return 0;
}

/* The name the pack records for its embedder (a log must match it). */
static void embedder_name(build_ctx *b)
{
    const tr_embedder *e = &b->e;
    if (e->flags & TR_EMB_HASHED)
        snprintf(b->name, sizeof b->name, "hashed-ngram-%uk-d%u%s", e->n_words / 1024, e->dim,
                 b->o.no_pc ? "" : "-pc");
    else
        snprintf(b->name, sizeof b->name, "glove100-sif-%uk%s", e->n_words / 1000,
                 b->o.no_pc ? "" : "-pc");
}

/* Logged prompts follow the dataset's references. They only add rows:
 * the pc was fitted above, so the embedder stays the one they were
 * logged under, and they take no part in the task table (no task).
 * With --device-keys a refused log (forged, altered, truncated, replayed,
 * foreign, revoked, or unreadable) is reported and left out, and the
 * pack is built from the rest: one bad device must not stop a fleet's
 * build. Exit 1 then, as for any batch with a part failed (README).
 * Without, any bad log fails the build as before. */
static int add_logs(build_ctx *b)
{
    const build_opts *o = &b->o;
    for (size_t i = 0; i < o->n_logs; i++)
        if (trh_log_to_refs(o->logs[i], &b->e, b->name, &b->ds, o->device_keys ? &b->dk : NULL,
                           &b->refs, &b->scores, &b->kept, say)) {
            if (!o->device_keys)
                return 1;
            b->refused++;
        }
    return 0;
}

/* The do-no-harm guard on the logged rows (tools/log_guard.h), when there
 * are any: if the trusted rows do not show them helping beyond chance,
 * the references become the trusted rows alone. */
static int guard_logged_rows(build_ctx *b)
{
    const build_opts *o = &b->o;
    b->lg.keep = 1;
    if (!o->guard || (b->kept == b->kept_ds && !b->cells))
        return 0;
    const guard_in gi = {&b->ds, b->dim, b->m, b->cn, &b->given, o->method_arg, o->lmap, o->n_clusters};
    guard_rows gr = {0};
    trh_progress_start(&b->pg, "build", "log guard", 0);
    int bad = log_guard(&gi, b->refs, b->scores, b->kept, b->kept_ds, b->kept_from, b->cells,
                        o->guard_alpha, &b->lg, &b->fold_w, &gr);
    trh_progress_end(&b->pg);
    if (!bad && !b->lg.keep) { /* the pack without the logs */
        free(b->refs), free(b->scores), free(b->kept_from), free(b->fold_w);
        b->refs = gr.refs, b->scores = gr.Y, b->kept_from = gr.from, b->kept = b->kept_ds = gr.n;
        gr.refs = NULL, gr.Y = NULL, gr.from = NULL, b->fold_w = NULL;
    }
    guard_rows_free(&gr);
    if (bad)
        return 1;
    say_log_guard(&b->lg);
    return 0;
}

/* kNN's k, prior strength and default lambda, then the prefilter's C
 * (given or auto), each measured on the references. */
static int choose_settings(build_ctx *b)
{
    build_opts *o = &b->o;
    if (choose_knn(b->refs, b->kept, b->dim, b->scores, b->m, b->cn, &b->given, &b->pg, &b->ch))
        return 1;
    o->k = b->ch.k;
    o->lambda = b->ch.lambda;
    if (o->prefilter || o->prefilter_auto) {
        if (trh_choose_prefilter(b->refs, b->kept, b->dim, (uint32_t)o->k, (uint32_t)o->prefilter,
                                 o->prefilter_auto, &b->pfc))
            return 1;
        o->prefilter = b->pfc.c;
        say_prefilter(&b->pfc);
    }
    return 0;
}

/* Each dataset reference's task, for the S3 table and the task map; the
 * names are copied, for the prompts' strings are freed before the table. */
static void assign_reference_tasks(build_ctx *b)
{
    const size_t n = b->kept_ds ? b->kept_ds : 1;
    b->task_of = trh_xmalloc(n * sizeof *b->task_of);
    b->names = trh_xmalloc(n * sizeof *b->names);
    size_t untasked;
    b->n_tasks = assign_tasks(&b->ds, b->kept_from, b->kept_ds, b->refs, b->dim, b->task_of,
                              b->names, &untasked);
    if (untasked)
        fprintf(say, "tasks: %zu references without a task given the nearest of the %u tasks' "
                "(cosine to each task's mean row)\n", untasked, b->n_tasks);
    for (uint32_t i = 0; i < b->n_tasks; i++)
        b->names[i] = trh_xstrdup(b->names[i]);
}

/* The method validation's report line: each candidate's Area. */
static void say_method_validation(const trh_method_scores *ms, int chosen, int given)
{
    fprintf(say, "method validation: %u-fold cross-validation over %zu references, %u scored "
            "out of fold:", TRH_FOLDS, ms->n_refs, ms->n_queries);
    int any = 0;
    for (int c = 0; c < TRH_N_CAND; c++)
        if (ms->scored[c]) {
            fprintf(say, "%s %s Area %.4f", any ? "," : "", trh_cand_name[c], ms->area[c]);
            if (c == TRH_CAND_TASK_MAP)
                fprintf(say, " (l2 %g, prior strength %g)", ms->task_map.l2, (double)ms->task_map.a);
            any = 1;
        }
    fprintf(say, "%s; method %s%s\n", any ? "" : " none scored", trh_cand_name[chosen],
            given ? " (given)" : "");
}

/* The estimator: the one given, or the best by 5-fold cross-validation;
 * then the default lambda checked on its out-of-fold curve. Only ms's
 * scores outlive this (its curves are freed). */
static int choose_estimator(build_ctx *b)
{
    build_opts *o = &b->o;
    trh_method_scores *ms = &b->ms;
    int want[TRH_N_CAND];
    want_of(o->method_arg, o->n_clusters, o->lmap, want);
    uint8_t *fold = b->fold_w; /* with logs the guard kept: its folds */
    if (!fold) {
        fold = trh_xmalloc(b->kept ? b->kept : 1);
        trh_cv_folds(b->kept, fold);
    }
    b->fold_w = NULL;
    trh_progress_start(&b->pg, "build", "method validation", 0);
    int bad = trh_score_methods(b->refs, b->kept, b->kept_ds, b->dim, b->scores, b->m, b->cn, fold,
                                (uint32_t)o->k, b->ch.a, !b->chose_a, b->task_of, b->n_tasks,
                                (uint32_t)o->n_clusters, want, ms);
    trh_progress_end(&b->pg);
    free(fold);
    if (bad)
        return 1;
    const int chosen = b->chosen_method =
        o->method_arg >= 0 ? o->method_arg : ms->best >= 0 ? ms->best : TRH_CAND_KNN;
    if (chosen == TRH_CAND_TASK_MAP)
        o->task_map = 1;
    say_method_validation(ms, chosen, o->method_arg >= 0);
    /* The guard on the shipped method's own out-of-fold curve; kNN's
     * leave-one-out curve when that method could not be scored. */
    if (ms->scored[chosen]) {
        trh_guard_lambda(ms->P[chosen], ms->Yq, ms->n_queries, b->m, b->cn, b->given.lambda, &b->ch);
        o->lambda = b->ch.lambda;
        char curve[64];
        snprintf(curve, sizeof curve, "%s's out-of-fold curve", trh_cand_name[chosen]);
        say_guard(&b->ch, &b->given, curve);
    } else if (b->ch.n_queries) {
        say_guard(&b->ch, &b->given, "knn's leave-one-out curve");
    }
    trh_method_scores_free(ms);
    for (int c = 0; c < TRH_N_CAND; c++)
        b->n_scored += ms->scored[c];
    return 0;
}

/* The task map: the learned map with the tasks as its clusters; its l2
 * and a as cross-validated with the method, else chosen now. */
static int fit_task_map(build_ctx *b)
{
    trh_task_map_info ti = {0};
    if (b->ms.scored[TRH_CAND_TASK_MAP])
        ti = b->ms.task_map;
    trh_progress_start(&b->pg, "build", "task map", 0);
    int bad = trh_task_map_build(b->refs, b->kept, b->kept_ds, b->dim, b->scores, b->m, b->cn,
                                 b->task_of, b->n_tasks, b->ch.a, &b->clusters, &b->theta, &ti);
    trh_progress_end(&b->pg);
    if (bad)
        return 1;
    fprintf(say, "task map: %u tasks, l2 %g chosen on validation, Psi's prior strength %g "
            "(Area %.4f over %u out-of-fold queries)\n", b->n_tasks, ti.l2, (double)ti.a,
            ti.val_area, ti.val_queries);
    return 0;
}

/* --learned-map: theta trained from the K-means start, on Phi(x) as the
 * device sees it (the unit int8 row) and the references' errors. */
static void fit_learned_map(build_ctx *b, const float *psi, const float *centroids)
{
    const size_t kept = b->kept;
    const uint32_t dim = b->dim, m = b->m, k = (uint32_t)b->o.n_clusters;
    float *phi = trh_xmalloc(kept * dim * sizeof *phi), *err = trh_xmalloc(kept * m * sizeof *err);
    for (size_t j = 0; j < kept; j++) {
        trh_unit_row(b->refs + j * dim, dim, phi + j * dim);
        for (uint32_t t = 0; t < m; t++)
            err[j * m + t] = 1.0f - b->scores[j * m + t]; /* NaN stays NaN */
    }
    b->theta = trh_xmalloc(b->o.n_clusters * (dim + 1) * sizeof *b->theta);
    trh_progress_start(&b->pg, "build", "learned map", 0);
    double before;
    double after = trh_learned_map_fit(phi, kept, dim, err, m, psi, centroids, k, 200, b->theta, &before);
    trh_progress_end(&b->pg);
    fprintf(say, "learned map: log loss %.6f from the K-means start %.6f\n", after, before);
    free(phi);
    free(err);
}

/* --clusters K: K-means on the references, its section, Psi from the
 * device's own assignment, and the learned map when asked for. */
static int fit_kmeans_section(build_ctx *b)
{
    const size_t kept = b->kept;
    const uint32_t dim = b->dim, m = b->m, k = (uint32_t)b->o.n_clusters;
    if (b->o.n_clusters > kept)
        return trh_err("--clusters %llu exceeds the %zu references",
                       (unsigned long long)b->o.n_clusters, kept);
    uint32_t *assign = trh_xmalloc(kept * sizeof *assign);
    float *centroids = trh_xmalloc(b->o.n_clusters * dim * sizeof *centroids);
    trh_progress_start(&b->pg, "build", "k-means", 0);
    const km_rows kr = {&b->e, b->o.data, &b->ds, b->kept_from, b->kept_ds, b->refs};
    double inertia = fit_kmeans(&kr, kept, k, centroids, assign, &b->pg);
    trh_progress_end(&b->pg);
    tr_clusters cv;
    if (inertia < 0 || trh_clusters_section(centroids, k, dim, m, b->ch.a, &b->clusters) ||
        tr_clusters_view(b->clusters.data, b->clusters.len, dim, m, &cv) != TR_OK) {
        trh_err("k-means failed");
        free(assign), free(centroids);
        return 1;
    }
    /* Psi from the device's own assignment: the quantized centroids and
     * the int8 rows, exactly as tr_route will see them. */
    int32_t dots[TR_KNN_BLOCK];
    trh_progress_start(&b->pg, "build", "cluster assign", kept);
    for (size_t j = 0; j < kept; j++) {
        const int8_t *q = b->refs + j * dim;
        if ((j & 4095) == 0)
            trh_progress_update(&b->pg, j);
        assign[j] = tr_cluster_assign(tr_kernels_active(), &cv, q, dots);
    }
    trh_progress_end(&b->pg);
    /* cv views our own, writable, section buffer: fill its Psi in place,
     * each cluster's rate shrunk toward the model's overall error with
     * the kNN's strength a (one prior for every estimator). */
    trh_cluster_psi(b->scores, kept, m, assign, k, b->ch.a, (float *)(void *)cv.psi);
    fprintf(say, "k-means: K=%llu, inertia %.4f over %zu references\n",
            (unsigned long long)b->o.n_clusters, inertia, kept);
    if (b->o.lmap)
        fit_learned_map(b, cv.psi, centroids);
    free(assign);
    free(centroids);
    return 0;
}

/* The prompts' text, ids and tasks have had their last use: give their
 * memory back before the task table and the pack (at 1M prompts, as
 * much as the int8 rows). Only the models are still needed. */
static void release_prompt_strings(trh_dataset *ds)
{
    for (size_t i = 0; i < ds->n_prompts; i++) {
        free(ds->prompts[i].id);
        free(ds->prompts[i].text);
        free(ds->prompts[i].task);
    }
    free(ds->prompts);
    ds->prompts = NULL;
    ds->n_prompts = 0;
#ifdef __GLIBC__
    malloc_trim(0); /* the strings were small heap blocks, not mmap'd */
#endif
}

/* The S3 table, leave one task out (Shnitzer et al. 2023), over the
 * dataset's references (the logged ones have no task). A section that
 * cannot be written, or a fit that fails (trh_task_fit_cb: out of memory),
 * fails the build with a message (tasks_bad, checked by write_pack). */
static void fit_task_table(build_ctx *b)
{
    const size_t kept_ds = b->kept_ds;
    const uint32_t dim = b->dim, m = b->m, n_tasks = b->n_tasks;
    const uint64_t k = b->o.k;
    const int8_t *refs = b->refs;
    if (n_tasks >= 2 && !b->o.no_tasks) {
        trh_progress_start(&b->pg, "build", "task table", 0);
        tr_refs rv = trh_xrefs(refs, dim, (uint32_t)kept_ds, dim);
        float *u = trh_xmalloc(n_tasks * sizeof *u), *tacc = trh_xmalloc((size_t)n_tasks * m * sizeof *tacc);
        const uint32_t q = kept_ds <= TR_TASK_ALL_QUERIES ? 0 : TR_TASK_QUERIES;
        if (trh_task_fit_cb(tr_kernels_active(), &rv, b->task_of, n_tasks, b->scores, m, (uint32_t)k, 19, q,
                           u, tacc, fit_progress, &b->pg) == 0) {
            b->tasks_bad = trh_tasks_section(u, tacc, n_tasks, m, 19, 0.09f, 0.6f, &b->tasks);
            if (b->tasks_bad)
                trh_err("the task table is not written; the pack is not built");
            else if (q)
                fprintf(say, "task table: %u tasks, leave-one-task-out, k=%llu, u over 19 neighbours, "
                       "queries: a sample of up to %u per task\n",
                       n_tasks, (unsigned long long)k, q);
            else
                fprintf(say, "task table: %u tasks, leave-one-task-out, k=%llu, u over 19 neighbours, "
                       "queries: every reference\n",
                       n_tasks, (unsigned long long)k);
        } else {
            /* trh_task_fit_cb fails only when out of memory: a pack without
             * the table it was asked for is not a success. */
            b->tasks_bad = trh_err("out of memory for the task table (%u tasks, %zu references): "
                                   "the pack is not built; --no-tasks builds one without it",
                                   n_tasks, kept_ds);
        }
        trh_refs_free(&rv);
        free(u);
        free(tacc);
        trh_progress_end(&b->pg);
    }
}

/* The pack's defaults section: the settings and what chose them (the
 * TR_CHOSE_ bits: only for choices the validation actually made). */
static trh_pack_spec pack_spec(const build_ctx *b, const trh_pack_model *models, time_t now)
{
    const build_opts *o = &b->o;
    const trh_knn_choice *ch = &b->ch;
    const trh_method_scores *ms = &b->ms;
    const int chosen = b->chosen_method;
    return (trh_pack_spec){
        .security_counter = o->counter, .created_unix = (uint64_t)now,
        .expires_unix = o->expires_days ? (uint64_t)now + o->expires_days * 86400 : 0,
        .embedder_name = b->name, .dim = b->dim, .n_refs = (uint32_t)b->kept, .n_models = b->m,
        .models = models, .refs = b->refs, .scores = b->scores, .embedder = b->table,
        .embedder_len = b->emb_len, .k = (uint32_t)o->k, .lambda = (float)o->lambda,
        .prior_strength = ch->a,
        .validation = {ch->n_queries ? (float)ch->area : 0.0f, ch->n_queries,
                       (ch->n_queries ? (b->chose_a ? TR_CHOSE_PRIOR : 0) | (b->chose_k ? TR_CHOSE_K : 0) |
                                            (b->chose_lambda ? TR_CHOSE_LAMBDA : 0)
                                      : 0) |
                           (o->method_arg < 0 && b->n_scored >= 2 ? TR_CHOSE_METHOD : 0)},
        .method = chosen == TRH_CAND_KNN       ? TR_PACK_METHOD_KNN
                  : chosen == TRH_CAND_CLUSTER ? TR_PACK_METHOD_CLUSTER
                                               : TR_PACK_METHOD_LEARNED_MAP,
        .method_validation = {ms->scored[chosen] ? (float)ms->area[chosen] : 0.0f,
                              ms->scored[chosen] ? ms->n_queries : 0},
        .prefilter_c = (uint32_t)o->prefilter, .clusters = b->clusters.data,
        .clusters_len = b->clusters.len, .tasks = b->tasks.len ? b->tasks.data : NULL,
        .tasks_len = b->tasks.len, .lmap_theta = b->theta};
}

/* The written pack's report: size, sections, what was skipped; --json's
 * document too. */
static void say_written(const build_ctx *b, const trh_buf *pack, const trh_pack_layout *lay)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double seconds = (double)(t1.tv_sec - b->t0.tv_sec) + (t1.tv_nsec - b->t0.tv_nsec) / 1e9;
    fprintf(say, "wrote %s: %zu bytes, N=%zu references, M=%u models, D=%u, embedder %s, "
           "counter %llu, %.1f s\n",
           b->o.out, pack->len, b->kept, b->m, b->dim, b->name, (unsigned long long)b->o.counter,
           seconds);
    if (b->no_words || b->zeroed)
        fprintf(say, "skipped %zu prompts with no known word, %zu zero after pc removal\n",
               b->no_words, b->zeroed);
    for (uint32_t i = 0; i < lay->n_sections; i++)
        fprintf(say, "  section %-13s %10llu bytes at %llu\n", trh_section_name(lay->sec[i].type),
               (unsigned long long)lay->sec[i].length, (unsigned long long)lay->sec[i].offset);
    if (b->o.json)
        print_built(b->o.out, pack, seconds, b->no_words, b->zeroed, &b->ms, b->chosen_method,
                    b->o.method_arg >= 0, &b->pfc, &b->lg);
}

/* Writes, signs and atomically replaces --out (nothing is written when
 * the task table failed). 0, or 1 after a message. */
static int write_pack(build_ctx *b)
{
    trh_pack_model *models = trh_xmalloc(b->m * sizeof *models);
    for (uint32_t j = 0; j < b->m; j++)
        models[j] = (trh_pack_model){b->ds.models[j].name, b->ds.models[j].cost,
                                    b->ds.models[j].where ? TR_CLOUD : TR_DEVICE};
    trh_pack_spec spec = pack_spec(b, models, time(NULL));
    trh_buf pack = {0};
    trh_pack_layout lay;
    trh_progress_start(&b->pg, "build", "writing", 0);
    int r = b->tasks_bad || trh_pack_write(&spec, &pack, &lay) || trh_pack_sign_checked(&pack, b->o.key) ||
            trh_write_file_atomic(b->o.out, pack.data, pack.len);
    if (r == 0) {
        trh_progress_end(&b->pg);
        say_written(b, &pack, &lay);
    }
    trh_buf_free(&pack);
    free(models);
    return r;
}

/* The build, phase by phase: the options and files checked before any
 * work; the references embedded (pass 1 fits the pc, pass 2 quantizes)
 * and the logs added; the logs judged; the settings, tasks and estimator
 * chosen on validation; the clusters section and the task table fitted;
 * the pack written. */
static int run_build(build_ctx *b, int argc, char **argv)
{
    /* Room for every --add-log there can be: no fixed count. */
    const char **logs = trh_xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof *logs);
    int go = parse_options(argc, argv, logs, &b->o); /* b->o.logs = logs, owned from here */
    if (go == BUILD_GO)
        go = check_options(&b->o);
    if (go == BUILD_GO)
        go = check_files(&b->o, &b->dk);
    if (go != BUILD_GO)
        return go;
    const build_opts *o = &b->o;
    b->chose_k = o->k == 0, b->chose_a = o->prior_strength < 0, b->chose_lambda = o->lambda < 0;
    b->given = (trh_knn_given){(uint32_t)o->k, (uint32_t)o->prefilter, (float)o->prior_strength, o->lambda};

    if (load_embedder(b) || load_dataset(b) || embed_pass1(b) || fit_pc(b))
        return 1;
    reference_scores(b);
    if (embed_pass2(b))
        return 1;
    embedder_name(b);
    if (add_logs(b) || guard_logged_rows(b) || choose_settings(b))
        return 1;
    assign_reference_tasks(b);
    if (choose_estimator(b))
        return 1;
    if (o->task_map ? fit_task_map(b) : o->n_clusters ? fit_kmeans_section(b) : 0)
        return 1;
    release_prompt_strings(&b->ds);
    fit_task_table(b);
    int r = write_pack(b);
    if (r == 0 && b->refused) {
        trh_err("%zu of %zu logs refused (above); the pack was built from the others (exit 1)",
               b->refused, o->n_logs);
        r = 1; /* README's exit codes: a batch with a part failed */
    }
    return r;
}

int cmd_build(int argc, char **argv)
{
    build_ctx b = {0};
    int r = run_build(&b, argc, argv);
    build_free(&b);
    return r;
}
