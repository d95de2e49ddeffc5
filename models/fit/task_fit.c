#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"
#include "trh_rand.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The neighbour order: higher similarity first, then the lower index. */
static int by_sim(const void *a, const void *b)
{
    const tr_neighbor *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* x ranks after y in by_sim order. */
static int worse(tr_neighbor x, tr_neighbor y)
{
    return x.sim != y.sim ? x.sim < y.sim : x.idx > y.idx;
}

/* A bounded heap keeping the `cap` best candidates; h[0] is the worst kept. */
static void heap_push(tr_neighbor *h, uint32_t *len, uint32_t cap, tr_neighbor c)
{
    uint32_t i;
    if (*len < cap) {
        i = (*len)++;
        while (i && worse(c, h[(i - 1) / 2])) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = c;
        return;
    }
    if (!worse(h[0], c))
        return;
    i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        tr_neighbor wc = c;
        if (l < cap && worse(h[l], wc))
            w = l, wc = h[l];
        if (r < cap && worse(h[r], wc))
            w = r;
        if (w == i)
            break;
        h[i] = h[w];
        i = w;
    }
    h[i] = c;
}

/* Queries per batch and reference rows per tile: a tile (TILE x dim int8)
 * stays in cache while every query of the batch is scored against it, so
 * the references stream from memory once per batch, not once per query.
 * The tile is read in place (the blocks kernel has no tail to pad for). */
#define BATCH 64u
#define TILE 2048u
#define CHUNK 64u

/* The batched search's buffers: a batch of queries against tiles of rows. */
typedef struct search_buf {
    size_t pd;        /* query bytes: dim */
    uint32_t cap;     /* candidates kept per query */
    int32_t *dots;    /* TILE */
    int8_t *pq;       /* BATCH x pd */
    float *sims;      /* TILE */
    tr_neighbor *heap; /* BATCH x cap */
    uint32_t *hlen;   /* BATCH */
} search_buf;

static void search_buf_free(search_buf *b)
{
    free(b->dots), free(b->pq), free(b->sims), free(b->heap), free(b->hlen);
}

static int search_buf_make(search_buf *b, uint32_t dim, uint32_t cap)
{
    b->pd = dim;
    b->cap = cap;
    b->dots = malloc(TILE * sizeof *b->dots);
    b->pq = calloc((size_t)BATCH * b->pd, 1);
    b->sims = malloc(TILE * sizeof *b->sims);
    b->heap = malloc((size_t)BATCH * (cap ? cap : 1) * sizeof *b->heap);
    b->hlen = malloc(BATCH * sizeof *b->hlen);
    if (b->dots && b->pq && b->sims && b->heap && b->hlen)
        return 0;
    search_buf_free(b);
    return -1;
}

/* The cap nearest references of each of the nb <= BATCH queries qi[] that
 * are not of the query's own task, sorted best first into heap b x cap
 * (hlen[b] of them). */
static void search_batch(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                         const uint32_t *qi, uint32_t nb, search_buf *w)
{
    const uint32_t n = refs->n, cap = w->cap;
    const size_t pd = w->pd;
    memset(w->hlen, 0, nb * sizeof *w->hlen);
    for (uint32_t b = 0; b < nb; b++)
        tr_refs_get_row(refs, qi[b], w->pq + b * pd);
    for (uint32_t j0 = 0; j0 < n && cap; j0 += TILE) {
        const uint32_t nt = n - j0 < TILE ? n - j0 : TILE;
        for (uint32_t b = 0; b < nb; b++) {
            const uint32_t i = qi[b];
            kern->dot_i8_blocks(w->pq + b * pd, refs->rows, refs->dim, j0, nt, w->dots);
            tr_neighbor *h = w->heap + (size_t)b * cap;
            const float *inv = refs->inv_norm + j0;
            for (uint32_t j = 0; j < nt; j++) /* vectorizes */
                w->sims[j] = (float)w->dots[j] * inv[j];
            /* Once the heap is full, a candidate must beat its worst:
             * a higher similarity (an equal one has a higher index).
             * Blocks of CHUNK with none above it are skipped by one
             * vectorized test; the rest go through the exact one. */
            for (uint32_t c0 = 0; c0 < nt; c0 += CHUNK) {
                const uint32_t ce = nt - c0 < CHUNK ? nt - c0 : CHUNK;
                if (w->hlen[b] == cap && ce == CHUNK) {
                    const float thr = h[0].sim;
                    int any = 0;
                    for (uint32_t j = 0; j < CHUNK; j++)
                        any |= w->sims[c0 + j] > thr;
                    if (!any)
                        continue;
                }
                for (uint32_t j = c0; j < c0 + ce; j++)
                    if ((w->hlen[b] < cap || w->sims[j] > h[0].sim) &&
                        task_of[j0 + j] != task_of[i])
                        heap_push(h, &w->hlen[b], cap, (tr_neighbor){w->sims[j], j0 + j});
            }
        }
    }
    for (uint32_t b = 0; b < nb; b++)
        qsort(w->heap + (size_t)b * cap, w->hlen[b], sizeof(tr_neighbor), by_sim);
}

uint32_t trh_fit_workers(void)
{
    const char *e = getenv("TR_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : n > (long)TRH_FIT_WORKERS_MAX ? TRH_FIT_WORKERS_MAX : (uint32_t)n;
}

/* Every query's search is independent: workers search whole batches at
 * once, each into its own buffers, and each round's batches are handed to
 * done() in query order, so the caller sees what one thread would give. */
typedef struct batch_job {
    const tr_kernels *kern;
    const tr_refs *refs;
    const uint32_t *task_of, *qi;
    uint32_t nb;
    search_buf *w;
} batch_job;

static void *batch_run(void *arg)
{
    batch_job *j = arg;
    search_batch(j->kern, j->refs, j->task_of, j->qi, j->nb, j->w);
    return NULL;
}

typedef void (*batch_done)(void *ctx, const uint32_t *qi, uint32_t nb, const search_buf *w);

/* The cap nearest of each of qi[0..nq) (not of its own task), in batches;
 * done(ctx, ...) per batch in order. Returns 0, or -1 when out of memory. */
static int search_all(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                      const uint32_t *qi, uint32_t nq, uint32_t cap, batch_done done, void *ctx)
{
    const uint32_t batches = (nq + BATCH - 1) / BATCH, want = trh_fit_workers();
    const uint32_t nw = batches < want ? (batches ? batches : 1) : want;
    search_buf *w = calloc(nw, sizeof *w);
    batch_job *job = calloc(nw, sizeof *job);
    pthread_t *th = calloc(nw, sizeof *th);
    int *started = calloc(nw, sizeof *started);
    uint32_t made = 0;
    while (w && job && th && started && made < nw && search_buf_make(&w[made], refs->dim, cap) == 0)
        made++;
    const int ok = made == nw;
    for (uint32_t b0 = 0; ok && b0 < nq; b0 += nw * BATCH) {
        uint32_t n_jobs = 0;
        for (uint32_t t = 0; t < nw && b0 + t * BATCH < nq; t++, n_jobs++) {
            const uint32_t from = b0 + t * BATCH;
            job[t] = (batch_job){kern, refs, task_of, qi + from,
                                 nq - from < BATCH ? nq - from : BATCH, &w[t]};
            /* A worker that cannot start runs here instead. */
            started[t] = t > 0 && pthread_create(&th[t], NULL, batch_run, &job[t]) == 0;
        }
        batch_run(&job[0]);
        for (uint32_t t = 1; t < n_jobs; t++) {
            if (started[t])
                pthread_join(th[t], NULL);
            else
                batch_run(&job[t]);
        }
        for (uint32_t t = 0; t < n_jobs; t++)
            done(ctx, job[t].qi, job[t].nb, job[t].w);
    }
    for (uint32_t t = 0; t < made; t++)
        search_buf_free(&w[t]);
    free(w), free(job), free(th), free(started);
    return ok ? 0 : -1;
}

/* The per-task sums the table is made of. */
typedef struct task_sums {
    double *usum, *hit;
    size_t *ucnt, *cnt;
} task_sums;

/* Query i's part of the table from its neighbours c[0..nc), best first:
 * the mean distance of the first k_dist, and per model whether the first
 * k's mean score calls i's outcome right. */
static void add_query(const tr_refs *refs, const uint32_t *task_of, const float *scores,
                      uint32_t n_models, uint32_t k, uint32_t k_dist, uint32_t i,
                      const tr_neighbor *c, uint32_t nc, task_sums *ts)
{
    if (nc == 0)
        return;
    const float inv_q = refs->inv_norm[i];
    const uint32_t nd = nc < k_dist ? nc : k_dist, nk = nc < k ? nc : k;
    double ui = 0;
    for (uint32_t j = 0; j < nd; j++)
        ui += 1.0 - (double)c[j].sim * inv_q;
    ts->usum[task_of[i]] += ui / nd;
    ts->ucnt[task_of[i]]++;
    for (uint32_t m = 0; m < n_models; m++) {
        float y = scores[(size_t)i * n_models + m];
        if (isnan(y))
            continue;
        double s = 0;
        uint32_t known = 0;
        for (uint32_t j = 0; j < nk; j++) {
            float v = scores[(size_t)c[j].idx * n_models + m];
            if (!isnan(v)) {
                s += v;
                known++;
            }
        }
        if (!known)
            continue;
        int right = (s / known > 0.5) == (y >= 0.5f);
        ts->hit[(size_t)task_of[i] * n_models + m] += right;
        ts->cnt[(size_t)task_of[i] * n_models + m]++;
    }
}

static int task_sums_make(task_sums *ts, uint32_t n_tasks, uint32_t n_models)
{
    ts->usum = calloc(n_tasks ? n_tasks : 1, sizeof *ts->usum);
    ts->hit = calloc((size_t)(n_tasks ? n_tasks : 1) * n_models, sizeof *ts->hit);
    ts->ucnt = calloc(n_tasks ? n_tasks : 1, sizeof *ts->ucnt);
    ts->cnt = calloc((size_t)(n_tasks ? n_tasks : 1) * n_models, sizeof *ts->cnt);
    return ts->usum && ts->hit && ts->ucnt && ts->cnt ? 0 : -1;
}

/* u and acc from the sums (a task without queries: u 1, acc 0.5); frees them. */
static void task_sums_finish(task_sums *ts, uint32_t n_tasks, uint32_t n_models, float *u,
                             float *acc)
{
    for (uint32_t t = 0; t < n_tasks; t++) {
        u[t] = ts->ucnt[t] ? (float)(ts->usum[t] / (double)ts->ucnt[t]) : 1.0f;
        for (uint32_t m = 0; m < n_models; m++) {
            size_t j = (size_t)t * n_models + m;
            acc[j] = ts->cnt[j] ? (float)(ts->hit[j] / (double)ts->cnt[j]) : 0.5f;
        }
    }
    free(ts->usum), free(ts->hit), free(ts->ucnt), free(ts->cnt);
}

int trh_task_fit(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc)
{
    return trh_task_fit_cb(kern, refs, task_of, n_tasks, scores, n_models, k, k_dist,
                          max_queries_per_task, u, acc, NULL, NULL);
}

/* trh_task_fit_cb's part of each searched batch. */
typedef struct fit_ctx {
    const tr_refs *refs;
    const uint32_t *task_of;
    const float *scores;
    uint32_t n_models, k, k_dist;
    task_sums *ts;
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    uint64_t done, total;
} fit_ctx;

static void fit_batch_done(void *arg, const uint32_t *qi, uint32_t nb, const search_buf *w)
{
    fit_ctx *c = arg;
    /* In query order, as a full sort of every candidate would give. */
    for (uint32_t b = 0; b < nb; b++)
        add_query(c->refs, c->task_of, c->scores, c->n_models, c->k, c->k_dist, qi[b],
                  w->heap + (size_t)b * w->cap, w->hlen[b], c->ts);
    c->done += nb;
    if (c->progress)
        c->progress(c->progress_ctx, c->done, c->total);
}

int trh_task_fit_cb(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                   uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                   uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    const uint32_t n = refs->n, cap = k > k_dist ? k : k_dist;
    task_sums ts;
    uint32_t *qi = malloc(((size_t)n + 1) * sizeof *qi);
    size_t *left = calloc(n_tasks + 1, sizeof *left), *need = calloc(n_tasks + 1, sizeof *need);
    const int sums = task_sums_make(&ts, n_tasks, n_models);
    if (sums != 0 || !qi || !left || !need) {
        if (sums == 0)
            task_sums_finish(&ts, 0, 0, u, acc); /* frees */
        free(qi), free(left), free(need);
        return -1;
    }
    /* The queries: every reference, or per task a uniform sample of
     * max_queries_per_task drawn in one pass with a fixed seed (Knuth's
     * selection sampling: ascending indices, the same on every machine). */
    for (uint32_t i = 0; i < n; i++)
        left[task_of[i]]++;
    for (uint32_t t = 0; t < n_tasks; t++)
        need[t] = max_queries_per_task && left[t] > max_queries_per_task ? max_queries_per_task
                                                                         : left[t];
    uint32_t nq = 0;
    uint64_t seed = 0x5133u;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = task_of[i];
        if (need[t] == left[t]) {
            if (need[t])
                qi[nq++] = i, need[t]--;
        } else {
            double r = trh_unit_double(&seed);
            if (r * (double)left[t] < (double)need[t])
                qi[nq++] = i, need[t]--;
        }
        left[t]--;
    }
    fit_ctx fc = {refs, task_of, scores, n_models, k, k_dist, &ts, progress, ctx, 0, nq};
    const int rc = search_all(kern, refs, task_of, qi, nq, cap, fit_batch_done, &fc);
    task_sums_finish(&ts, rc ? 0 : n_tasks, n_models, u, acc);
    free(qi), free(left), free(need);
    return rc;
}

/* ---- leave one task out ---- */

/* trh_task_loto_make's part of each searched batch: the lists, as found. */
static void loto_batch_done(void *arg, const uint32_t *qi, uint32_t nb, const search_buf *w)
{
    trh_task_loto *out = arg;
    for (uint32_t b = 0; b < nb; b++) {
        out->len[qi[b]] = w->hlen[b];
        memcpy(out->nb + (size_t)qi[b] * out->list_len, w->heap + (size_t)b * out->list_len,
               w->hlen[b] * sizeof *out->nb);
    }
}

int trh_task_loto_make(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                       uint32_t list_len, trh_task_loto *out)
{
    const uint32_t n = refs->n, L = list_len;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->list_len = L;
    out->nb = malloc(((size_t)n * L + 1) * sizeof *out->nb);
    out->len = malloc(((size_t)n + 1) * sizeof *out->len);
    uint32_t *qi = malloc(((size_t)n + 1) * sizeof *qi);
    if (!out->nb || !out->len || !qi) {
        free(qi);
        trh_task_loto_free(out);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        qi[i] = i;
    const int rc = search_all(kern, refs, task_of, qi, n, L, loto_batch_done, out);
    free(qi);
    if (rc)
        trh_task_loto_free(out);
    return rc;
}

void trh_task_loto_free(trh_task_loto *lo)
{
    free(lo->nb), free(lo->len);
    memset(lo, 0, sizeof *lo);
}

uint32_t trh_task_loto_neighbours(const trh_task_loto *lo, const uint32_t *task_all,
                                  uint32_t held_out, const uint32_t *reduced_of, uint32_t i,
                                  uint32_t want, tr_neighbor *out)
{
    const tr_neighbor *l = lo->nb + (size_t)i * lo->list_len;
    uint32_t got = 0;
    for (uint32_t j = 0; j < lo->len[i] && got < want; j++)
        if (task_all[l[j].idx] != held_out)
            out[got++] = (tr_neighbor){l[j].sim, reduced_of[l[j].idx]};
    /* A list cut at list_len may hide more of the other tasks' rows. */
    return got == want || lo->len[i] < lo->list_len ? got : UINT32_MAX;
}

int trh_task_fit_loto(const trh_task_loto *lo, const tr_kernels *kern, const uint32_t *task_all,
                      uint32_t held_out, const tr_refs *refs, const uint32_t *orig_of,
                      const uint32_t *reduced_of, const uint32_t *task_of, uint32_t n_tasks,
                      const float *scores, uint32_t n_models, uint32_t k, uint32_t k_dist,
                      float *u, float *acc, uint32_t *n_searched)
{
    const uint32_t n = refs->n, cap = k > k_dist ? k : k_dist;
    search_buf w;
    task_sums ts;
    tr_neighbor *nb = malloc(((size_t)cap + 1) * sizeof *nb);
    const int bufs = search_buf_make(&w, refs->dim, cap), sums = task_sums_make(&ts, n_tasks, n_models);
    if (bufs != 0 || sums != 0 || !nb) {
        if (bufs == 0)
            search_buf_free(&w);
        if (sums == 0)
            task_sums_finish(&ts, 0, 0, u, acc);
        free(nb);
        return -1;
    }
    *n_searched = 0;
    /* Every reference a query, in order, as trh_task_fit with
     * max_queries_per_task 0. */
    for (uint32_t r = 0; r < n; r++) {
        uint32_t got = trh_task_loto_neighbours(lo, task_all, held_out, reduced_of, orig_of[r],
                                                cap, nb);
        if (got == UINT32_MAX) { /* the list ran short: search this one */
            search_batch(kern, refs, task_of, &r, 1, &w);
            add_query(refs, task_of, scores, n_models, k, k_dist, r, w.heap, w.hlen[0], &ts);
            ++*n_searched;
            continue;
        }
        add_query(refs, task_of, scores, n_models, k, k_dist, r, nb, got, &ts);
    }
    task_sums_finish(&ts, n_tasks, n_models, u, acc);
    search_buf_free(&w);
    free(nb);
    return 0;
}
