/* Threads: one verified pack view, one context per thread, each thread
 * routing the same real prompts concurrently through that view, must give
 * bit-identical results to a single-threaded run, while another thread
 * keeps opening new views of the packs and swapping a shared pointer to
 * them, and the workers also route through whatever that pointer holds.
 * Under -fsanitize=thread (make test-tsan) this is also the race
 * detector's workload.
 *
 * usage: test_threads DATASET PACK [PACK...]
 * Plain C, not cmocka: cmocka's assertions longjmp and are not meant for
 * other threads. Prints "N passed, M failed" like the other suites. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "keys.h"
#include "tinyroute.h"
#include "util.h"

#define PUB "fixtures/keys/test-signing.pub"
enum { N_WORKERS = 4, N_PROMPTS = 300, TASK_PROMPTS = 60, MAX_REPORTS = 10 };

static int n_pass, n_fail;

static void check(int ok, const char *what, const char *pack)
{
    printf("%s %s (%s)\n", ok ? "ok  " : "FAIL", what, pack);
    if (ok)
        n_pass++;
    else
        n_fail++;
}

/* What one prompt goes through, each with its own options. */
typedef enum kind {
    K_EMBED,       /* tr_embed: the int8 vector itself */
    K_DEFAULT,     /* pack defaults */
    K_EXACT,       /* exact kNN, distance-weighted */
    K_PREFILTER,   /* k=100 through the prefilter when the pack has one */
    K_CLUSTER,
    K_LEARNED_MAP,
    K_MASKED,      /* availability mask and per-model penalties */
    K_GOVERNED,    /* tr_route_governed, governor shared read-only */
    K_I8,          /* an int8 query of the embedding */
    K_COUNT
} kind;

typedef struct outcome {
    tr_status st;
    tr_result res;
} outcome;

/* Everything read-only that the threads share for one pack. */
typedef struct job {
    const char *name;
    tr_pack_info info;
    const char **text;
    size_t n_text;
    int has_kind[K_COUNT];
    tr_route_opts opts[K_COUNT];
    uint8_t avail[32];
    float *penalty;
    tr_governor gov;
    /* Single-threaded answers: n_text x K_COUNT. */
    outcome *want;
    float *want_pred;  /* n_text x K_COUNT x n_models */
    int8_t *want_emb;  /* n_text x dim */
    int has_tasks;
    tr_status want_task_st;
    tr_task_result want_task;
    float *want_scores; /* 4 x n_models: s1, s2, s3, p */
} job;

typedef struct scratch {
    float *pred;
    int8_t *emb;
    float *scores;
    void *taskmem;
} scratch;

static scratch scratch_new(const job *j)
{
    scratch s;
    s.pred = trh_xcalloc(j->info.n_models, sizeof(float));
    s.emb = trh_xcalloc(j->info.dim, 1);
    s.scores = trh_xcalloc(4 * (size_t)j->info.n_models, sizeof(float));
    if (posix_memalign(&s.taskmem, 64, tr_task_size(j->info.n_models)) != 0)
        abort();
    return s;
}

static void scratch_free(scratch *s)
{
    free(s->pred);
    free(s->emb);
    free(s->scores);
    free(s->taskmem);
}

static tr_status run_one(const tr_pack *p, tr_ctx *c, const job *j, size_t i, int k,
                         scratch *s, tr_result *res)
{
    const char *t = j->text[i];
    size_t len = strlen(t);
    const uint32_t nm = j->info.n_models;
    tr_route_out out = {s->pred, nm, NULL, 0, NULL, 0};
    const tr_query q = tr_query_text(t, len);
    /* A poisoned start: a call that forgot to write a field shows up. */
    memset(res, 0xA5, sizeof *res);
    memset(s->pred, 0xA5, sizeof(float) * nm);
    switch (k) {
    case K_EMBED:
        return tr_embed(p, c, t, len, s->emb, j->info.dim);
    case K_GOVERNED:
        return tr_route_governed(p, c, &j->gov, 1700000100, &q, &j->opts[k], res, &out);
    case K_I8: {
        tr_status st = tr_embed(p, c, t, len, s->emb, j->info.dim);
        if (st != TR_OK)
            return st;
        const tr_query qi = tr_query_i8(j->info.embedder, s->emb, j->info.dim);
        return tr_route(p, c, &qi, &j->opts[k], res, &out);
    }
    default:
        return tr_route(p, c, &q, k == K_DEFAULT ? NULL : &j->opts[k], res, &out);
    }
}

static int bits_equal(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Every field, floats by their bits (the cluster method's distance is NaN). */
static int same_result(const tr_result *a, const tr_result *b)
{
    return a->model == b->model && a->model_name == b->model_name && a->where == b->where &&
           bits_equal(a->cost, b->cost) && bits_equal(a->cost_norm, b->cost_norm) &&
           bits_equal(a->lambda, b->lambda) && bits_equal(a->utility, b->utility) &&
           bits_equal(a->nearest_distance, b->nearest_distance) && a->k == b->k &&
           a->method == b->method && a->cluster == b->cluster && a->flags == b->flags &&
           a->why == b->why;
}

static atomic_int reports;

static int mismatch(const job *j, const char *who, size_t i, int k, const char *field)
{
    if (atomic_fetch_add(&reports, 1) < MAX_REPORTS)
        fprintf(stderr, "%s: %s: prompt %zu kind %d: %s differs\n", j->name, who, i, k,
                field);
    return 1;
}

/* Routes every prompt every way on r; returns the mismatches against the
 * single-threaded answers. start rotates the order so threads disagree on
 * what they route at any moment. */
static long route_all(const tr_pack *p, tr_ctx *c, const job *j, scratch *s, size_t start,
                      const char *who)
{
    long bad = 0;
    uint32_t nm = j->info.n_models;
    for (size_t n = 0; n < j->n_text; n++) {
        size_t i = (start + n) % j->n_text;
        for (int k = 0; k < K_COUNT; k++) {
            if (!j->has_kind[k])
                continue;
            tr_result res;
            tr_status st = run_one(p, c, j, i, k, s, &res);
            const outcome *w = &j->want[i * K_COUNT + k];
            if (st != w->st) {
                bad += mismatch(j, who, i, k, "status");
                continue;
            }
            if (st != TR_OK)
                continue;
            if (k == K_EMBED) {
                if (memcmp(s->emb, j->want_emb + i * j->info.dim, j->info.dim) != 0)
                    bad += mismatch(j, who, i, k, "embedding");
                continue;
            }
            if (!same_result(&res, &w->res))
                bad += mismatch(j, who, i, k, "result");
            if (memcmp(s->pred, j->want_pred + (i * K_COUNT + k) * nm, sizeof(float) * nm) != 0)
                bad += mismatch(j, who, i, k, "predicted");
        }
    }
    return bad;
}

/* Task-level selection over the first TASK_PROMPTS prompts, in memory of
 * the caller's own. */
static tr_status run_task(const tr_pack *p, tr_ctx *c, const job *j, scratch *s,
                          tr_task_result *res)
{
    tr_task *t;
    tr_status st = tr_task_begin(p, s->taskmem, tr_task_size(j->info.n_models), &t);
    for (size_t i = 0; st == TR_OK && i < TASK_PROMPTS && i < j->n_text; i++) {
        int used;
        const tr_query q = tr_query_text(j->text[i], strlen(j->text[i]));
        st = tr_task_add(p, c, t, &q, NULL, &used);
        if (st == TR_E_EMPTY_INPUT || st == TR_E_UTF8)
            st = TR_OK; /* the odd prompts at the end of the list */
    }
    if (st != TR_OK)
        return st;
    uint32_t m = j->info.n_models;
    memset(res, 0xA5, sizeof *res);
    tr_task_scores sc = {s->scores, s->scores + m, s->scores + 2 * m, s->scores + 3 * m, m};
    return tr_task_choose(p, c, t, NULL, res, &sc);
}

static int same_task(const tr_task_result *a, const tr_task_result *b)
{
    return a->n_prompts == b->n_prompts && bits_equal(a->mean_distance, b->mean_distance) &&
           a->by_s1 == b->by_s1 && a->by_s2 == b->by_s2 && a->by_s3 == b->by_s3 &&
           a->bma == b->bma && bits_equal(a->p_beats_bma, b->p_beats_bma) &&
           a->chosen == b->chosen && a->kept_bma == b->kept_bma;
}

static long task_mismatch(const job *j, const tr_pack *p, tr_ctx *c, scratch *s, const char *who)
{
    if (!j->has_tasks)
        return 0;
    tr_task_result res;
    tr_status st = run_task(p, c, j, s, &res);
    if (st != j->want_task_st)
        return mismatch(j, who, 0, -1, "task status");
    if (st == TR_OK &&
        (!same_task(&res, &j->want_task) ||
         memcmp(s->scores, j->want_scores, 4 * sizeof(float) * j->info.n_models) != 0))
        return mismatch(j, who, 0, -1, "task selection");
    return 0;
}

/* ---- the threads ---- */

/* Views the swapper opens, each in memory of its own that is never reused
 * while the workers run: the caller's grace period, the simplest kind. */
enum { N_SWAPS = 48 };

typedef struct shared_state {
    const job *j;
    const tr_pack *view;           /* the job's view: every worker's */
    _Atomic(const tr_pack *) live; /* what the swapper published last */
    pthread_barrier_t started;
    atomic_int workers_left;
    int reps;
    /* What the swapper opens, in turn: the same pack at another address,
     * another pack, the job's own bytes. */
    const uint8_t *open_bytes[3];
    size_t open_len[3];
    int n_open;
    const tr_trust *trust;
    uint32_t ctx_dim, ctx_models, ctx_cand; /* a ctx for every pack */
    uint32_t max_models;
} shared_state;

typedef struct worker {
    shared_state *sh;
    int id;
    tr_status ctx_st;
    long bad;
    long routes;
    long live_routes, live_bad;
} worker;

static tr_ctx *ctx_new(const shared_state *sh, void **mem, tr_status *st)
{
    size_t need = tr_ctx_size(sh->ctx_dim, sh->ctx_models, sh->ctx_cand);
    if (posix_memalign(mem, 64, need) != 0)
        abort();
    tr_ctx *c = NULL;
    *st = tr_ctx_init(*mem, need, sh->ctx_dim, sh->ctx_models, sh->ctx_cand, &c);
    return c;
}

/* A route through the published view: whichever pack it is, a valid
 * status, and a model of that view. */
static int live_ok(const shared_state *sh, tr_ctx *c, const char *t, float *pred)
{
    const tr_pack *p = atomic_load_explicit(&sh->live, memory_order_acquire);
    tr_pack_info info;
    if (tr_pack_get_info(p, &info) != TR_OK)
        return 0;
    tr_result res;
    tr_route_out out = {pred, sh->max_models, NULL, 0, NULL, 0};
    const tr_query q = tr_query_text(t, strlen(t));
    tr_status st = tr_route(p, c, &q, NULL, &res, &out);
    if (st == TR_OK)
        return res.model < info.n_models;
    return st == TR_E_EMPTY_INPUT || st == TR_E_UTF8;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    shared_state *sh = w->sh;
    const job *j = sh->j;
    void *mem;
    tr_ctx *c = ctx_new(sh, &mem, &w->ctx_st);
    pthread_barrier_wait(&sh->started);
    if (w->ctx_st == TR_OK) {
        char who[32];
        snprintf(who, sizeof who, "thread %d", w->id);
        scratch s = scratch_new(j);
        float *pred = trh_xcalloc(sh->max_models, sizeof(float));
        for (int rep = 0; rep < sh->reps; rep++) {
            w->bad += route_all(sh->view, c, j, &s, (size_t)(w->id * 37 + rep * 101), who);
            w->bad += task_mismatch(j, sh->view, c, &s, who);
            w->routes += (long)j->n_text;
            for (size_t i = 0; i < j->n_text; i += 7) {
                w->live_bad += !live_ok(sh, c, j->text[i], pred);
                w->live_routes++;
            }
        }
        free(pred);
        scratch_free(&s);
    }
    atomic_fetch_sub(&sh->workers_left, 1);
    free(mem);
    return NULL;
}

typedef struct swapper {
    shared_state *sh;
    void *mem[N_SWAPS];
    long swaps, failed;
} swapper;

/* Opens new views and publishes them for as long as the workers run (at
 * most N_SWAPS: each keeps its memory until the end), at least once
 * through the list. */
static void *swapper_main(void *arg)
{
    swapper *x = arg;
    shared_state *sh = x->sh;
    pthread_barrier_wait(&sh->started);
    for (int i = 0; i < N_SWAPS; i++) {
        int which = i % sh->n_open;
        if (posix_memalign(&x->mem[i], 64, tr_pack_size()) != 0)
            abort();
        const tr_pack *v;
        if (tr_pack_open(x->mem[i], tr_pack_size(), sh->open_bytes[which], sh->open_len[which],
                         sh->trust, &v) == TR_OK)
            atomic_store_explicit(&sh->live, v, memory_order_release);
        else
            x->failed++;
        x->swaps++;
        if (i >= sh->n_open - 1 && atomic_load(&sh->workers_left) == 0)
            break;
    }
    return NULL;
}

/* ---- set-up ---- */

static uint8_t *aligned_copy(const uint8_t *p, size_t len)
{
    void *q;
    if (posix_memalign(&q, 64, len ? len : 1) != 0)
        abort();
    memcpy(q, p, len);
    return q;
}

static void job_options(job *j)
{
    tr_route_opts none = {.lambda = TR_LAMBDA_DEFAULT};
    for (int k = 0; k < K_COUNT; k++) {
        j->opts[k] = none;
        j->has_kind[k] = 1;
    }
    j->opts[K_EXACT] = (tr_route_opts){.k = 25, .lambda = 0.1f, .exact = 1,
                                       .distance_weighted = 1};
    j->opts[K_PREFILTER] = (tr_route_opts){.k = 100, .lambda = TR_LAMBDA_ZERO};
    j->opts[K_CLUSTER] = (tr_route_opts){.lambda = 0.05f, .method = TR_METHOD_CLUSTER};
    j->opts[K_LEARNED_MAP] = (tr_route_opts){.lambda = 0.05f, .method = TR_METHOD_LEARNED_MAP};
    j->has_kind[K_CLUSTER] = j->info.n_clusters > 0;
    j->has_kind[K_LEARNED_MAP] = j->info.has_learned_map;
    /* Every third model unavailable; penalties favour the low indices. */
    memset(j->avail, 0, sizeof j->avail);
    j->penalty = trh_xcalloc(j->info.n_models, sizeof(float));
    for (uint32_t m = 0; m < j->info.n_models && m < 8 * sizeof j->avail; m++) {
        if (m % 3 != 1)
            j->avail[m / 8] |= (uint8_t)(1u << (m % 8));
        j->penalty[m] = 0.002f * (float)m;
    }
    j->opts[K_MASKED] = (tr_route_opts){.k = 40, .lambda = 0.2f, .available = j->avail,
                                        .available_bits = 8 * sizeof j->avail,
                                        .penalty = j->penalty, .penalty_count = j->info.n_models};
    /* A third of the budget spent: lambda between base and max. */
    tr_governor_init(&j->gov, 30.0f, 3600, 1700000000, 0.05f, 0.5f);
    tr_governor_record(&j->gov, 1700000050, 10.0f);
    tr_governor_set_available(&j->gov, 0, 0);
    j->opts[K_GOVERNED] = (tr_route_opts){.k = 20, .lambda = TR_LAMBDA_DEFAULT};
    j->opts[K_I8] = (tr_route_opts){.k = 10, .lambda = 0.02f, .exact = 1};
}

static void job_reference(job *j, const tr_pack *p, tr_ctx *c)
{
    uint32_t nm = j->info.n_models;
    j->want = trh_xcalloc(j->n_text * K_COUNT, sizeof *j->want);
    j->want_pred = trh_xcalloc(j->n_text * K_COUNT * nm, sizeof(float));
    j->want_emb = trh_xcalloc(j->n_text, j->info.dim);
    j->want_scores = trh_xcalloc(4 * (size_t)nm, sizeof(float));
    scratch s = scratch_new(j);
    for (size_t i = 0; i < j->n_text; i++)
        for (int k = 0; k < K_COUNT; k++) {
            if (!j->has_kind[k])
                continue;
            outcome *o = &j->want[i * K_COUNT + k];
            o->st = run_one(p, c, j, i, k, &s, &o->res);
            if (k == K_EMBED)
                memcpy(j->want_emb + i * j->info.dim, s.emb, j->info.dim);
            else
                memcpy(j->want_pred + (i * K_COUNT + k) * nm, s.pred, sizeof(float) * nm);
        }
    j->has_tasks = j->info.n_tasks > 0;
    if (j->has_tasks) {
        j->want_task_st = run_task(p, c, j, &s, &j->want_task);
        memcpy(j->want_scores, s.scores, 4 * sizeof(float) * nm);
    }
    scratch_free(&s);
}

static int count_status(const job *j, int k, tr_status st)
{
    int n = 0;
    for (size_t i = 0; i < j->n_text; i++)
        n += j->want[i * K_COUNT + k].st == st;
    return n;
}

static void run_pack(const char *path, const char *other_path, const char **text, size_t n_text,
                     const tr_trust *trust, int reps)
{
    size_t len, other_len = 0;
    uint8_t *raw = trh_read_file(path, &len);
    if (!raw) {
        check(0, "pack readable", path);
        return;
    }
    /* The pack is read in place: rows need 8-byte alignment. */
    uint8_t *bytes = aligned_copy(raw, len), *copy = aligned_copy(raw, len), *other = NULL;
    free(raw);
    if (other_path && (raw = trh_read_file(other_path, &other_len))) {
        other = aligned_copy(raw, other_len);
        free(raw);
    }
    job j = {.name = path, .text = text, .n_text = n_text};
    tr_pack_info oi = {0};
    if (tr_pack_peek(bytes, len, &j.info) != TR_OK ||
        (other && tr_pack_peek(other, other_len, &oi) != TR_OK)) {
        check(0, "pack header readable", path);
        goto out;
    }
    shared_state sh = {.j = &j, .reps = reps, .trust = trust};
    /* One context size for every pack the threads meet. */
    sh.ctx_dim = j.info.dim > oi.dim ? j.info.dim : oi.dim;
    sh.ctx_models = j.info.n_models > oi.n_models ? j.info.n_models : oi.n_models;
    sh.ctx_cand = j.info.prefilter_candidates > oi.prefilter_candidates
                      ? j.info.prefilter_candidates
                      : oi.prefilter_candidates;
    sh.max_models = sh.ctx_models;
    void *view_mem, *ctx_mem;
    if (posix_memalign(&view_mem, 64, tr_pack_size()) != 0)
        abort();
    tr_status cst;
    tr_ctx *c = ctx_new(&sh, &ctx_mem, &cst);
    int ok = cst == TR_OK &&
             tr_pack_open(view_mem, tr_pack_size(), bytes, len, trust, &sh.view) == TR_OK &&
             tr_pack_get_info(sh.view, &j.info) == TR_OK;
    check(ok, "the pack opens, a context is made", path);
    if (!ok) {
        free(view_mem);
        free(ctx_mem);
        goto out;
    }
    printf("     %s: %zu prompts, %u models, %u clusters%s, prefilter %u, %u tasks, kernel %s\n",
           path, n_text, j.info.n_models, j.info.n_clusters,
           j.info.has_learned_map ? " + learned map" : "", j.info.prefilter_candidates,
           j.info.n_tasks, tr_kernel_name());
    job_options(&j);
    job_reference(&j, sh.view, c);
    /* The list must really route: errors only for the odd prompts added. */
    check(count_status(&j, K_DEFAULT, TR_OK) == (int)n_text - 2 &&
              count_status(&j, K_DEFAULT, TR_E_EMPTY_INPUT) == 1 &&
              count_status(&j, K_DEFAULT, TR_E_UTF8) == 1 &&
              (j.want[(n_text - 2) * K_COUNT + K_DEFAULT].res.flags & TR_RESULT_PRIOR_ONLY),
          "single-threaded answers computed", path);
    /* A second pass with the same context: the reference itself is stable. */
    scratch s = scratch_new(&j);
    check(route_all(sh.view, c, &j, &s, 0, "main") == 0 &&
              task_mismatch(&j, sh.view, c, &s, "main") == 0,
          "single-threaded answers repeat", path);

    atomic_init(&sh.workers_left, N_WORKERS);
    atomic_init(&sh.live, sh.view);
    sh.open_bytes[sh.n_open] = copy;
    sh.open_len[sh.n_open++] = len;
    if (other) {
        sh.open_bytes[sh.n_open] = other;
        sh.open_len[sh.n_open++] = other_len;
    }
    sh.open_bytes[sh.n_open] = bytes;
    sh.open_len[sh.n_open++] = len;
    pthread_barrier_init(&sh.started, NULL, N_WORKERS + 1);
    int n_kinds = 0;
    for (int k = 0; k < K_COUNT; k++)
        n_kinds += j.has_kind[k];
    worker w[N_WORKERS];
    pthread_t tid[N_WORKERS], stid;
    swapper x = {.sh = &sh};
    for (int i = 0; i < N_WORKERS; i++) {
        w[i] = (worker){.sh = &sh, .id = i};
        if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0)
            abort();
    }
    if (pthread_create(&stid, NULL, swapper_main, &x) != 0)
        abort();
    for (int i = 0; i < N_WORKERS; i++)
        pthread_join(tid[i], NULL);
    pthread_join(stid, NULL);
    pthread_barrier_destroy(&sh.started);
    long live = 0, live_bad = 0;
    for (int i = 0; i < N_WORKERS; i++) {
        char what[96];
        snprintf(what, sizeof what, "thread %d: one shared view, %ld prompts x %d ways, identical",
                 i, w[i].routes, n_kinds);
        check(w[i].ctx_st == TR_OK && w[i].bad == 0 && w[i].routes == (long)reps * (long)n_text,
              what, path);
        live += w[i].live_routes;
        live_bad += w[i].live_bad;
    }
    char what[160];
    snprintf(what, sizeof what,
             "swapper: %ld views opened and published meanwhile, all accepted; %ld routes "
             "through the published view, every status and model valid",
             x.swaps, live);
    check(x.failed == 0 && x.swaps >= sh.n_open && live > 0 && live_bad == 0, what, path);
    /* The shared view was never written: it still answers the same. */
    check(route_all(sh.view, c, &j, &s, 0, "main after") == 0, "the shared view after the swaps",
          path);
    for (int i = 0; i < N_SWAPS; i++)
        free(x.mem[i]);
    scratch_free(&s);
    free(view_mem);
    free(ctx_mem);
    free(j.want);
    free(j.want_pred);
    free(j.want_emb);
    free(j.want_scores);
    free(j.penalty);
out:
    free(bytes);
    free(copy);
    free(other);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_threads DATASET PACK [PACK...]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *env = getenv("TR_THREADS_REPS");
    int reps = env && atoi(env) > 0 ? atoi(env) : 3;
    trh_dataset ds;
    if (trh_dataset_load(argv[1], &ds) != 0) {
        check(0, "dataset loads", argv[1]);
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return 1;
    }
    /* ~300 real prompts spread over the file (all subjects), then the odd
     * ones: empty, unknown words only, invalid UTF-8. */
    size_t step = ds.n_prompts / N_PROMPTS ? ds.n_prompts / N_PROMPTS : 1, n = 0;
    const char **text = trh_xcalloc(N_PROMPTS + 3, sizeof *text);
    for (size_t i = 0; i < ds.n_prompts && n < N_PROMPTS; i += step)
        text[n++] = ds.prompts[i].text;
    text[n++] = "";
    text[n++] = "qzxvj wxqkzv jjqzk";
    text[n++] = "bad \xff byte";
    tr_pubkey pub;
    if (trh_key_load_public(PUB, &pub) != 0) {
        check(0, "public key loads", PUB);
    } else {
        tr_trust trust = {.keys = &pub, .n_keys = 1};
        for (int a = 2; a < argc; a++)
            run_pack(argv[a], argc > 3 ? argv[a == argc - 1 ? 2 : a + 1] : NULL, text, n,
                     &trust, reps);
    }
    free(text);
    trh_dataset_free(&ds);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
