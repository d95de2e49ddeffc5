/* tinyroute eval --local (issue #16): a device that learns from its own
 * outcomes, simulated on a data set with bandit feedback.
 *
 * Per seed: prompts split 60/40 into the pack's references and the user's
 * prompts. Model shift: the pack is built with device model A's labels, but
 * the device's model behaves like B, another model of the device candidates
 * (cost <= --device-max-cost); the routed pool is every model but B, with
 * A's column answering as B. Traffic shift (second scenario, on top): the
 * user's prompts come from 1-3 tasks. The user's prompts split in half:
 * validation (local_weight, then the level term's pseudo-count given it,
 * are chosen there, never on the test half) and test. On the test half the
 * device routes a stream of prompts, each at a lambda drawn from the
 * curve's sweep, and learns only the chosen model's outcome (bandit
 * feedback) and its residual against the pack's own estimate at routing
 * time; after t in {0, 50, 200, 1000} outcomes the later prompts (the rest
 * of the test half, never streamed) are routed by
 *   pack-only: the pack's kNN estimate;
 *   local:     the same plus the store's entries within the pack's
 *              neighbour radius (tr_knn_predict_ext, the estimator
 *              tr_route uses with tr_route_opts.local; core/local.c), on
 *              the stream routed without the level term;
 *   level:     local plus the level term (tr_route_opts.local_level: the
 *              shrunk mean residual on the pack's share), on its own
 *              stream;
 *   rebuilt:   a pack whose references are the pack's plus the t prompts
 *              of the level stream, each labelled with its one revealed outcome (what
 *              `build --add-log` makes of a device's log), priors
 *              recomputed;
 * and each gives the Area of its deferral curve (tools/pareto.h). The pack's
 * k and prior strength are chosen as build chooses them, on held-out pack
 * references with the pack's labels. */
#include "eval_local.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "choose.h"
#include "pareto.h"
#include "tr_knn.h"
#include "trh_rand.h"
#include "util.h"
#include "refs.h"

#define N_CP 4
static const uint32_t cp_at[N_CP] = {0, 50, 200, 1000};
static const float w_grid[] = {0.25f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f};
#define N_W (sizeof w_grid / sizeof *w_grid)
#define VAL_STREAM 200u /* outcomes of the validation stream */

typedef struct world {
    const trh_local_eval_in *in;
    uint32_t nmp, *pc;    /* pool -> data set model */
    uint32_t d_pack, d_true;
    double *cn;           /* pool's normalized costs */
    tr_refs refs;         /* the pack's references */
    trh_host_labels hl;    /* the pack's labels (A's for the device slot) */
    uint32_t k;
    float a;
    float *inv;           /* n: 1/||q|| as the device computes it */
} world;

static float y_true(const world *w, uint32_t i, uint32_t m)
{
    uint32_t c = w->pc[m] == w->d_pack ? w->d_true : w->pc[m];
    return w->in->Y[(size_t)i * w->in->nm + c];
}

static float y_pack(const world *w, uint32_t i, uint32_t m)
{
    return w->in->Y[(size_t)i * w->in->nm + w->pc[m]];
}

static const int8_t *row(const world *w, uint32_t i)
{
    return w->in->q + (size_t)i * w->in->dim;
}

static int32_t dot8(const int8_t *a, const int8_t *b, uint32_t dim)
{
    int32_t s = 0;
    for (uint32_t d = 0; d < dim; d++)
        s += (int32_t)a[d] * b[d];
    return s;
}

static tr_refs make_refs(const world *w, const uint32_t *idx, uint32_t n)
{
    const uint32_t dim = w->in->dim;
    int8_t *rows = trh_xmalloc((size_t)n * dim + 1);
    for (uint32_t j = 0; j < n; j++)
        memcpy(rows + (size_t)j * dim, row(w, idx[j]), dim);
    tr_refs refs = trh_xrefs(rows, dim, n, dim);
    free(rows);
    for (uint32_t j = 0; j < n; j++) /* the norms this file scores with */
        ((float *)refs.inv_norm)[j] = w->inv[idx[j]];
    return refs;
}

/* The stream so far: prompt, chosen model, revealed outcome. */
typedef struct stream {
    const uint32_t *prompt;
    uint32_t *model;
    float *outcome;
    float *est; /* the route's estimate for model, without the level term */
    uint32_t n;
} stream;

/* The level term's pseudo-count: 0 = off. */
static const float s_grid[] = {0.0f, 10.0f, 30.0f, 100.0f, 300.0f};
#define N_S (sizeof s_grid / sizeof *s_grid)

/* Per model: the first s->n entries' shrunk mean residual
 * n_m / (n_m + sp) * mean(outcome - est) = sum / (n_m + sp), times the
 * pack's share of the estimate (local outcomes are the device's own level
 * already), added to P and clamped to [0,1] (as tr_route does with a store
 * and local_level). */
static void add_level(const world *W, const stream *s, float sp, const float *share, float *P)
{
    if (!(sp > 0.0f) || !s || !s->n)
        return;
    for (uint32_t m = 0; m < W->nmp; m++) {
        double sum = 0;
        uint32_t n = 0;
        for (uint32_t j = 0; j < s->n; j++)
            if (s->model[j] == m && !isnan(s->est[j]))
                sum += s->outcome[j] - s->est[j], n++;
        if (!n)
            continue;
        float v = P[m] + share[m] * (float)(sum / ((double)n + sp));
        P[m] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

/* Prompt i's k nearest references into nb (their count), and the pack's
 * neighbour radius: the k-th neighbour's distance (router.c's formula). */
static uint32_t neighbours(const world *W, const tr_refs *refs, uint32_t i, tr_neighbor *nb,
                           float *radius)
{
    int32_t dots[TR_KNN_BLOCK];
    const uint32_t f = tr_knn_search(tr_kernels_active(), refs, row(W, i), W->k, dots, nb);
    *radius = f ? 1.0f - nb[f - 1].sim * W->inv[i] : 2.0f;
    return f;
}

/* The cosine distance of prompts i and p as the device computes it. */
static float distance(const world *W, uint32_t i, uint32_t p)
{
    return 1.0f - (float)dot8(row(W, i), row(W, p), W->in->dim) * W->inv[p] * W->inv[i];
}

/* Model predictions for prompt i from refs/labels, plus (w > 0) the local
 * evidence of the first s->n stream entries inside the neighbour radius. */
static void predict(const world *W, const tr_refs *refs, const tr_labels *lab, uint32_t i,
                    const stream *s, float w, float *P, float *hits, float *known, float *share)
{
    tr_neighbor nb[TR_K_MAX];
    float radius;
    const uint32_t f = neighbours(W, refs, i, nb, &radius);
    const float *eh = NULL, *ek = NULL;
    if (s && s->n && w > 0.0f) {
        int any = 0;
        for (uint32_t m = 0; m < W->nmp; m++)
            hits[m] = known[m] = 0.0f;
        for (uint32_t j = 0; j < s->n; j++) {
            if (distance(W, i, s->prompt[j]) <= radius) {
                hits[s->model[j]] += w * s->outcome[j];
                known[s->model[j]] += w;
                any = 1;
            }
        }
        if (any)
            eh = hits, ek = known;
    }
    tr_knn_predict_ext(lab, nb, f, 0, W->inv[i], W->a, eh, ek, P, share, NULL);
}

static uint32_t route_at(const world *W, const float *P, uint32_t i, double lambda)
{
    float *y = trh_xmalloc(W->nmp * sizeof *y);
    for (uint32_t m = 0; m < W->nmp; m++)
        y[m] = y_true(W, i, m);
    double c, acc;
    uint32_t choice;
    trh_route_point(P, y, 1, W->nmp, W->cn, lambda, &c, &acc, &choice);
    free(y);
    return choice;
}

/* Route the stream prompts in order with the store learning as it goes:
 * fills s->model/outcome for s->n = T prompts. */
static void run_stream(const world *W, stream *s, uint32_t T, float w, float sp, uint64_t *rs)
{
    float *P = trh_xmalloc(W->nmp * sizeof *P), *h = trh_xmalloc(W->nmp * sizeof *h),
          *k = trh_xmalloc(W->nmp * sizeof *k), *sh = trh_xmalloc(W->nmp * sizeof *sh);
    for (uint32_t t = 0; t < T; t++) {
        s->n = t;
        const uint32_t i = s->prompt[t];
        predict(W, &W->refs, &W->hl.lab, i, s, w, P, h, k, sh);
        add_level(W, s, sp, sh, P);
        /* The pack's own estimate (no local entries, no level term;
         * tr_route_out.estimate): what the residual is measured against. */
        predict(W, &W->refs, &W->hl.lab, i, NULL, 0.0f, h, NULL, NULL, NULL);
        /* A lambda of the sweep but the last (which only ever picks the
         * cheapest): users and budgets differ from prompt to prompt. */
        const double lam = trh_curve_lambda((int)(trh_splitmix64(rs) % (TRH_CURVE_LAMBDAS - 1)));
        s->model[t] = route_at(W, P, i, lam);
        s->outcome[t] = y_true(W, i, s->model[t]);
        s->est[t] = h[s->model[t]];
    }
    s->n = T;
    free(P), free(h), free(k), free(sh);
}

/* Area on prompts E: local (w > 0, first t stream entries) or pack-only. */
static double area_local(const world *W, const uint32_t *E, uint32_t nE, const stream *s,
                         uint32_t t, float w, float sp)
{
    float *P = trh_xmalloc((size_t)nE * W->nmp * sizeof *P), *Y = trh_xmalloc((size_t)nE * W->nmp * sizeof *Y);
    float *h = trh_xmalloc(W->nmp * sizeof *h), *k = trh_xmalloc(W->nmp * sizeof *k),
          *sh = trh_xmalloc(W->nmp * sizeof *sh);
    stream st = *s;
    st.n = t;
    for (uint32_t e = 0; e < nE; e++) {
        predict(W, &W->refs, &W->hl.lab, E[e], &st, w, P + (size_t)e * W->nmp, h, k, sh);
        add_level(W, &st, sp, sh, P + (size_t)e * W->nmp);
        for (uint32_t m = 0; m < W->nmp; m++)
            Y[(size_t)e * W->nmp + m] = y_true(W, E[e], m);
    }
    trh_curve c;
    trh_route_curve(P, Y, nE, W->nmp, W->cn, &c, NULL);
    free(P), free(Y), free(h), free(k), free(sh);
    return c.area;
}

/* Area on E of the pack rebuilt with the first t stream prompts as
 * references, each knowing only its revealed outcome. */
static double area_rebuilt(const world *W, const uint32_t *tr, uint32_t ntr, const uint32_t *E,
                           uint32_t nE, const stream *s, uint32_t t)
{
    const uint32_t n = ntr + t, nm = W->nmp;
    uint32_t *idx = trh_xmalloc((size_t)n * sizeof *idx);
    float *L = trh_xmalloc((size_t)n * nm * sizeof *L);
    for (uint32_t j = 0; j < ntr; j++) {
        idx[j] = tr[j];
        for (uint32_t m = 0; m < nm; m++)
            L[(size_t)j * nm + m] = y_pack(W, tr[j], m);
    }
    for (uint32_t j = 0; j < t; j++) {
        idx[ntr + j] = s->prompt[j];
        for (uint32_t m = 0; m < nm; m++)
            L[(size_t)(ntr + j) * nm + m] = m == s->model[j] ? s->outcome[j] : NAN;
    }
    tr_refs refs = make_refs(W, idx, n);
    trh_host_labels hl;
    trh_host_labels_make(L, n, nm, &hl);
    float *P = trh_xmalloc((size_t)nE * nm * sizeof *P), *Y = trh_xmalloc((size_t)nE * nm * sizeof *Y);
    for (uint32_t e = 0; e < nE; e++) {
        predict(W, &refs, &hl.lab, E[e], NULL, 0.0f, P + (size_t)e * nm, NULL, NULL, NULL);
        for (uint32_t m = 0; m < nm; m++)
            Y[(size_t)e * nm + m] = y_true(W, E[e], m);
    }
    trh_curve c;
    trh_route_curve(P, Y, nE, nm, W->cn, &c, NULL);
    trh_host_labels_free(&hl);
    trh_refs_free(&refs);
    free(idx), free(L), free(P), free(Y);
    return c.area;
}

/* k and prior strength as build chooses them: the best Area on the last
 * sixth of the pack's references, with the pack's labels, the rest as
 * references. */
static void choose_k_a(world *W, const uint32_t *tr, uint32_t ntr)
{
    const uint32_t nv = ntr / 6, nr = ntr - nv, nm = W->nmp;
    W->k = trh_choose_k_grid[0];
    W->a = 0;
    if (nv == 0 || nr == 0) /* too few to choose on: the grid's first */
        return;
    tr_refs refs = make_refs(W, tr, nr);
    float *L = trh_xmalloc((size_t)nr * nm * sizeof *L), *Yv = trh_xmalloc((size_t)nv * nm * sizeof *Yv);
    for (uint32_t j = 0; j < nr; j++)
        for (uint32_t m = 0; m < nm; m++)
            L[(size_t)j * nm + m] = y_pack(W, tr[j], m);
    for (uint32_t j = 0; j < nv; j++)
        for (uint32_t m = 0; m < nm; m++)
            Yv[(size_t)j * nm + m] = y_pack(W, tr[nr + j], m);
    trh_host_labels hl;
    trh_host_labels_make(L, nr, nm, &hl);
    uint32_t kmax = trh_choose_k_grid[trh_choose_k_grid_len - 1];
    if (kmax > nr)
        kmax = nr;
    tr_neighbor *nb = trh_xmalloc((size_t)nv * kmax * sizeof *nb);
    int32_t dots[TR_KNN_BLOCK];
    for (uint32_t j = 0; j < nv; j++)
        tr_knn_search(tr_kernels_active(), &refs, row(W, tr[nr + j]), kmax, dots,
                      nb + (size_t)j * kmax);
    float *P = trh_xmalloc((size_t)nv * nm * sizeof *P);
    double best = -1;
    for (uint32_t g = 0; g < trh_choose_k_grid_len && trh_choose_k_grid[g] <= kmax; g++)
        for (uint32_t ga = 0; ga < trh_choose_a_grid_len; ga++) {
            for (uint32_t j = 0; j < nv; j++)
                tr_knn_predict(&hl.lab, nb + (size_t)j * kmax, trh_choose_k_grid[g], 0, 1.0f,
                               trh_choose_a_grid[ga], P + (size_t)j * nm);
            trh_curve c;
            trh_route_curve(P, Yv, nv, nm, W->cn, &c, NULL);
            if (c.area > best) {
                best = c.area;
                W->k = trh_choose_k_grid[g];
                W->a = trh_choose_a_grid[ga];
            }
        }
    free(nb), free(P), free(L), free(Yv);
    trh_host_labels_free(&hl);
    trh_refs_free(&refs);
}

typedef struct cell {
    double pack, local, level, rebuilt;
    int n;
} cell;

/* ---- eviction (issue #16 item 1: oldest first or least supported) ----
 * A device sees some prompts again. The store merges an embedding it
 * holds (one entry, a mean per model, counted once in the radius), so a
 * repeated prompt's entry gathers adds. When full, the library evicts the
 * oldest entry (least recently added to); "least supported" evicts the
 * entry with the fewest adds, the oldest of those. Measured: a stream of
 * EV_DRAWS prompts drawn with Zipf popularity (weight 1/rank) from the
 * test half's streamed prompts, routed with the store (local, no level
 * term) and learning each chosen model's outcome, into stores of each
 * capacity under each policy and an unbounded one; Area on the evaluation
 * prompts with the final store. */
#define EV_DRAWS 1000u
static const uint32_t ev_cap[] = {64, 256};
#define N_EVC (sizeof ev_cap / sizeof *ev_cap)
enum { EV_OLDEST, EV_SUPPORT, N_EVP };
static const char *const ev_policy[N_EVP] = {"oldest first", "least supported"};

typedef struct evstore {
    uint32_t cap, n, nm;   /* cap 0: unbounded (EV_DRAWS entries at most) */
    uint64_t clock, evicted;
    uint32_t *prompt, *adds_total, *adds; /* adds: n x nm */
    uint64_t *stamp;
    float *mean;           /* n x nm */
} evstore;

static void ev_init(evstore *e, uint32_t cap, uint32_t nm)
{
    const uint32_t room = cap ? cap : EV_DRAWS;
    *e = (evstore){.cap = cap, .nm = nm};
    e->prompt = trh_xcalloc(room, sizeof *e->prompt);
    e->adds_total = trh_xcalloc(room, sizeof *e->adds_total);
    e->stamp = trh_xcalloc(room, sizeof *e->stamp);
    e->adds = trh_xcalloc((size_t)room * nm, sizeof *e->adds);
    e->mean = trh_xcalloc((size_t)room * nm, sizeof *e->mean);
}

static void ev_free(evstore *e)
{
    free(e->prompt), free(e->adds_total), free(e->stamp), free(e->adds), free(e->mean);
}

/* tr_local_add's update (core/local.c), with the policy's eviction. */
static void ev_add(evstore *e, int policy, uint32_t prompt, uint32_t m, float y)
{
    uint32_t i = 0;
    while (i < e->n && e->prompt[i] != prompt)
        i++;
    if (i == e->n) {
        if (e->cap && e->n == e->cap) {
            i = 0;
            for (uint32_t j = 1; j < e->n; j++) {
                const int fewer = e->adds_total[j] < e->adds_total[i];
                const int tie = e->adds_total[j] == e->adds_total[i];
                if (policy == EV_SUPPORT ? fewer || (tie && e->stamp[j] < e->stamp[i])
                                         : e->stamp[j] < e->stamp[i])
                    i = j;
            }
            e->evicted++;
        } else {
            i = e->n++;
        }
        e->prompt[i] = prompt;
        e->adds_total[i] = 0;
        memset(e->adds + (size_t)i * e->nm, 0, e->nm * sizeof *e->adds);
        memset(e->mean + (size_t)i * e->nm, 0, e->nm * sizeof *e->mean);
    }
    uint32_t *n = e->adds + (size_t)i * e->nm + m;
    float *mu = e->mean + (size_t)i * e->nm + m;
    (*n)++;
    *mu += (y - *mu) / (float)*n;
    e->adds_total[i]++;
    e->stamp[i] = ++e->clock;
}

/* Predictions for prompt i from the pack plus the store's entries inside
 * the neighbour radius (tr_local_evidence's sums). */
static void ev_predict(const world *W, const evstore *e, uint32_t i, float w, float *P,
                       float *hits, float *known)
{
    tr_neighbor nb[TR_K_MAX];
    float radius;
    const uint32_t f = neighbours(W, &W->refs, i, nb, &radius);
    int any = 0;
    for (uint32_t m = 0; m < W->nmp; m++)
        hits[m] = known[m] = 0.0f;
    for (uint32_t j = 0; j < e->n; j++) {
        if (!(distance(W, i, e->prompt[j]) <= radius))
            continue;
        for (uint32_t m = 0; m < W->nmp; m++)
            if (e->adds[(size_t)j * e->nm + m]) {
                hits[m] += w * e->mean[(size_t)j * e->nm + m];
                known[m] += w;
                any = 1;
            }
    }
    tr_knn_predict_ext(&W->hl.lab, nb, f, 0, W->inv[i], W->a, any ? hits : NULL,
                       any ? known : NULL, P, NULL, NULL);
}

/* One store's run: the draws routed and learnt, then Area on E. */
static double ev_run(const world *W, evstore *e, int policy, const uint32_t *draw, const double *lam,
                     const uint32_t *E, uint32_t nE, float w)
{
    const uint32_t nm = W->nmp;
    float *P = trh_xmalloc((size_t)(nE > 1 ? nE : 1) * nm * sizeof *P);
    float *Y = trh_xmalloc((size_t)(nE > 1 ? nE : 1) * nm * sizeof *Y);
    float *h = trh_xmalloc(nm * sizeof *h), *k = trh_xmalloc(nm * sizeof *k);
    for (uint32_t t = 0; t < EV_DRAWS; t++) {
        ev_predict(W, e, draw[t], w, P, h, k);
        const uint32_t m = route_at(W, P, draw[t], lam[t]);
        ev_add(e, policy, draw[t], m, y_true(W, draw[t], m));
    }
    for (uint32_t x = 0; x < nE; x++) {
        ev_predict(W, e, E[x], w, P + (size_t)x * nm, h, k);
        for (uint32_t m = 0; m < nm; m++)
            Y[(size_t)x * nm + m] = y_true(W, E[x], m);
    }
    trh_curve c;
    trh_route_curve(P, Y, nE, nm, W->cn, &c, NULL);
    free(P), free(Y), free(h), free(k);
    return c.area;
}

/* Areas of the unbounded store and of each capacity x policy, added to
 * ev[0] and ev[1 + c * N_EVP + policy], their evictions to evicted[] alike;
 * the pool's distinct draws to *distinct. */
static void ev_sweep(const world *W, const uint32_t *pool, uint32_t npool, const uint32_t *E,
                     uint32_t nE, float w, uint64_t *rs, double *ev, double *evicted,
                     double *distinct)
{
    /* Zipf popularity over the pool's order (already shuffled per seed):
     * the cumulative weights 1/rank, drawn by bisection. */
    double *cum = trh_xmalloc(npool * sizeof *cum), tot = 0;
    for (uint32_t r = 0; r < npool; r++)
        cum[r] = tot += 1.0 / (r + 1.0);
    uint32_t *draw = trh_xmalloc(EV_DRAWS * sizeof *draw);
    double *lam = trh_xmalloc(EV_DRAWS * sizeof *lam);
    uint8_t *seen = trh_xcalloc(npool, 1);
    uint32_t nd = 0;
    for (uint32_t t = 0; t < EV_DRAWS; t++) {
        const double u = (double)(trh_splitmix64(rs) >> 11) * 0x1p-53 * tot;
        uint32_t lo = 0, hi = npool - 1;
        while (lo < hi) {
            const uint32_t mid = (lo + hi) / 2;
            if (cum[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        draw[t] = pool[lo];
        nd += !seen[lo];
        seen[lo] = 1;
        lam[t] = trh_curve_lambda((int)(trh_splitmix64(rs) % (TRH_CURVE_LAMBDAS - 1)));
    }
    *distinct += nd;
    evstore e;
    ev_init(&e, 0, W->nmp);
    ev[0] += ev_run(W, &e, EV_OLDEST, draw, lam, E, nE, w);
    ev_free(&e);
    for (uint32_t c = 0; c < N_EVC; c++)
        for (int p = 0; p < N_EVP; p++) {
            ev_init(&e, ev_cap[c], W->nmp);
            ev[1 + c * N_EVP + (uint32_t)p] += ev_run(W, &e, p, draw, lam, E, nE, w);
            evicted[1 + c * N_EVP + (uint32_t)p] += (double)e.evicted;
            ev_free(&e);
        }
    free(cum), free(draw), free(lam), free(seen);
}

#define N_EV (1 + N_EVC * N_EVP)
typedef struct evcell {
    double area[N_EV], evicted[N_EV], pack, distinct;
    int n;
} evcell;

/* One seed of one scenario; adds to cells[N_CP]; *w_out, *s_out the weight
 * and level pseudo-count chosen (0: off). */
static int run_seed(const trh_local_eval_in *in, int traffic, uint64_t seed, cell *cells,
                    evcell *evc, float *w_out, float *s_out, char *pair, size_t pair_cap)
{
    uint64_t rs = seed * 0x9E3779B97F4A7C15ull + (uint64_t)traffic * 7919u + 1;
    world W = {.in = in};
    /* Device candidates, and the pair (A in the pack, B on the device). */
    uint32_t *cand = trh_xmalloc(in->nm * sizeof *cand), nc = 0;
    for (uint32_t m = 0; m < in->nm; m++)
        if (in->cost[m] <= in->device_max_cost)
            cand[nc++] = m;
    if (nc < 2) {
        free(cand);
        return trh_err("eval --local: %s has %u models of cost <= %g: need two device candidates",
                      in->name, nc, in->device_max_cost);
    }
    trh_shuffle(cand, nc, &rs);
    /* A is the data set's device model when it is a candidate (the model
     * the device runs, and the one the router keeps traffic on at high
     * lambda); B another candidate, drawn per seed. */
    uint32_t a_at = 0;
    for (uint32_t j = 0; j < nc; j++)
        if (in->on_device && in->on_device[cand[j]]) {
            a_at = j;
            break;
        }
    W.d_pack = cand[a_at];
    W.d_true = cand[a_at == 0 ? 1 : 0];
    free(cand);
    snprintf(pair, pair_cap, "%s as %s", in->model[W.d_pack], in->model[W.d_true]);
    W.pc = trh_xmalloc(in->nm * sizeof *W.pc);
    for (uint32_t m = 0; m < in->nm; m++)
        if (m != W.d_true)
            W.pc[W.nmp++] = m;
    W.cn = trh_xmalloc(W.nmp * sizeof *W.cn);
    double cmin = INFINITY, cmax = -INFINITY;
    for (uint32_t m = 0; m < W.nmp; m++)
        cmin = fmin(cmin, in->cost[W.pc[m]]), cmax = fmax(cmax, in->cost[W.pc[m]]);
    for (uint32_t m = 0; m < W.nmp; m++)
        W.cn[m] = cmax > cmin ? (in->cost[W.pc[m]] - cmin) / (cmax - cmin) : 0.0;
    W.inv = trh_xmalloc(in->n * sizeof *W.inv);
    for (uint32_t i = 0; i < in->n; i++)
        W.inv[i] = 1.0f / sqrtf((float)dot8(row(&W, i), row(&W, i), in->dim));
    /* Prompts: 60% pack references, 40% the user's. */
    uint32_t *perm = trh_xmalloc(in->n * sizeof *perm);
    for (uint32_t i = 0; i < in->n; i++)
        perm[i] = i;
    trh_shuffle(perm, in->n, &rs);
    const uint32_t ntr = (uint32_t)(0.6 * in->n);
    uint32_t *user = perm + ntr, nu = in->n - ntr;
    if (traffic && in->task && nu > 0) {
        /* 1-3 tasks of the user's prompts, drawn among those present. */
        const uint32_t want = 1 + (uint32_t)(trh_splitmix64(&rs) % 3);
        const char *picked[3] = {0};
        uint32_t np = 0;
        for (uint32_t tries = 0; np < want && tries < 1000; tries++) {
            const char *t = in->task[user[trh_splitmix64(&rs) % nu]];
            int dup = !t;
            for (uint32_t j = 0; j < np && !dup; j++)
                dup = !strcmp(picked[j], t);
            if (!dup)
                picked[np++] = t;
        }
        uint32_t k = 0;
        for (uint32_t j = 0; j < nu; j++) {
            const char *t = in->task[user[j]];
            int keep = 0;
            for (uint32_t x = 0; x < np && t && !keep; x++)
                keep = !strcmp(picked[x], t);
            if (keep)
                user[k++] = user[j];
        }
        nu = k;
    }
    tr_refs all = make_refs(&W, perm, ntr);
    W.refs = all;
    choose_k_a(&W, perm, ntr);
    float *L = trh_xmalloc((size_t)ntr * W.nmp * sizeof *L);
    for (uint32_t j = 0; j < ntr; j++)
        for (uint32_t m = 0; m < W.nmp; m++)
            L[(size_t)j * W.nmp + m] = y_pack(&W, perm[j], m);
    trh_host_labels_make(L, ntr, W.nmp, &W.hl);
    free(L);
    /* The user's prompts: validation half, test half; in each the first
     * part is streamed and the rest evaluated. */
    const uint32_t nval = nu / 2, ntest = nu - nval;
    const uint32_t *val = user, *test = user + nval;
    stream s = {0};
    s.model = trh_xmalloc((nu + 1) * sizeof *s.model);
    s.outcome = trh_xmalloc((nu + 1) * sizeof *s.outcome);
    s.est = trh_xmalloc((nu + 1) * sizeof *s.est);
    /* local_weight on validation: the stream of VAL_STREAM outcomes (or
     * two thirds of the half), Area on the rest. */
    uint32_t tv = nval * 2 / 3 < VAL_STREAM ? nval * 2 / 3 : VAL_STREAM;
    float w_best = 1.0f, s_best = 0.0f;
    if (tv >= 20 && nval - tv >= 20) {
        /* The weight first (level off), then the level's pseudo-count
         * given it: 7 + 5 validation streams instead of 35. */
        double best = -1;
        for (uint32_t g = 0; g < N_W; g++) {
            uint64_t r2 = rs;
            s.prompt = val;
            run_stream(&W, &s, tv, w_grid[g], 0.0f, &r2);
            double a = area_local(&W, val + tv, nval - tv, &s, tv, w_grid[g], 0.0f);
            if (a > best + 1e-12)
                best = a, w_best = w_grid[g];
        }
        for (uint32_t g = 1; g < N_S; g++) {
            uint64_t r2 = rs;
            s.prompt = val;
            run_stream(&W, &s, tv, w_best, s_grid[g], &r2);
            double a = area_local(&W, val + tv, nval - tv, &s, tv, w_best, s_grid[g]);
            if (a > best + 1e-12)
                best = a, s_best = s_grid[g];
        }
    }
    *w_out = w_best;
    *s_out = s_best;
    /* Test: stream up to 1000 outcomes, keeping a third for evaluation;
     * once without the level term (local) and once with the chosen one
     * (level; the rebuilt pack sees that stream's outcomes). */
    uint32_t T = ntest * 2 / 3 < cp_at[N_CP - 1] ? ntest * 2 / 3 : cp_at[N_CP - 1];
    const uint32_t *E = test + T, nE = ntest - T;
    s.prompt = test;
    uint64_t r0 = rs;
    run_stream(&W, &s, T, w_best, 0.0f, &r0);
    double loc[N_CP] = {0};
    if (nE >= 20)
        for (int c = 0; c < N_CP; c++)
            if (cp_at[c] <= T)
                loc[c] = area_local(&W, E, nE, &s, cp_at[c], w_best, 0.0f);
    run_stream(&W, &s, T, w_best, s_best, &rs);
    if (nE >= 20) {
        const double pack = area_local(&W, E, nE, &s, 0, 0.0f, 0.0f);
        for (int c = 0; c < N_CP; c++) {
            if (cp_at[c] > T)
                continue;
            cells[c].pack += pack;
            cells[c].local += loc[c];
            cells[c].level += area_local(&W, E, nE, &s, cp_at[c], w_best, s_best);
            cells[c].rebuilt += area_rebuilt(&W, perm, ntr, E, nE, &s, cp_at[c]);
            cells[c].n++;
        }
        /* Eviction, on its own generator (the tables above stay as they
         * were): the streamed prompts as the pool drawn from again. */
        if (T >= ev_cap[N_EVC - 1]) {
            uint64_t re = rs ^ 0xE51C7u;
            ev_sweep(&W, test, T, E, nE, w_best, &re, evc->area, evc->evicted, &evc->distinct);
            evc->pack += pack;
            evc->n++;
        }
    }
    free(s.model), free(s.outcome), free(s.est);
    trh_refs_free(&all);
    trh_host_labels_free(&W.hl);
    free(W.pc), free(W.cn), free(W.inv), free(perm);
    return 0;
}

/* One scenario as EVAL_JSON.md's "local" entries: the settings chosen per
 * seed and, per number of local outcomes, the mean Areas. */
static cJSON *scenario_json(const char *scenario, int n_seeds, cJSON *pairs, cJSON *weights,
                            cJSON *levels, const cell *cells)
{
    cJSON *o = cJSON_CreateObject(), *pts = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "scenario", scenario);
    cJSON_AddNumberToObject(o, "seeds", n_seeds);
    cJSON_AddItemToObject(o, "pairs", pairs);
    cJSON_AddItemToObject(o, "local_weight", weights);
    cJSON_AddItemToObject(o, "level_pseudo_count", levels);
    for (int c = 0; c < N_CP; c++) {
        if (!cells[c].n)
            continue;
        const double n = cells[c].n;
        cJSON *pt = cJSON_CreateObject();
        cJSON_AddNumberToObject(pt, "outcomes", cp_at[c]);
        cJSON_AddNumberToObject(pt, "seeds", cells[c].n);
        cJSON_AddNumberToObject(pt, "pack", cells[c].pack / n);
        cJSON_AddNumberToObject(pt, "local", cells[c].local / n);
        cJSON_AddNumberToObject(pt, "level", cells[c].level / n);
        cJSON_AddNumberToObject(pt, "rebuilt", cells[c].rebuilt / n);
        cJSON_AddItemToArray(pts, pt);
    }
    cJSON_AddItemToObject(o, "points", pts);
    return o;
}

/* The eviction table of one scenario (nothing where no seed streamed
 * enough prompts to hold the largest store). */
static void print_eviction(FILE *out, const evcell *e)
{
    if (!e->n)
        return;
    const double n = e->n;
    fprintf(out, "\nEviction: %u draws with repeats (Zipf), %.0f distinct prompts on average, %d "
                 "seeds; Area with the final store (pack-only %.4f)\n",
            EV_DRAWS, e->distinct / n, e->n, e->pack / n);
    fprintf(out, "| store | eviction | evicted per seed | Area | - unbounded | - pack-only |\n"
                 "|---|---|---:|---:|---:|---:|\n");
    const double u = e->area[0] / n;
    fprintf(out, "| store unbounded | none | 0 | %.4f | %+.4f | %+.4f |\n", u, 0.0, u - e->pack / n);
    for (uint32_t c = 0; c < N_EVC; c++)
        for (int p = 0; p < N_EVP; p++) {
            const uint32_t x = 1 + c * N_EVP + (uint32_t)p;
            const double a = e->area[x] / n;
            fprintf(out, "| store %u | %s | %.1f | %.4f | %+.4f | %+.4f |\n", ev_cap[c],
                    ev_policy[p], e->evicted[x] / n, a, a - u, a - e->pack / n);
        }
}

int trh_eval_local(const trh_local_eval_in *in, FILE *out, cJSON *scenarios)
{
    static const char *const scen[2] = {"model shift", "model + traffic shift (1-3 tasks)"};
    if (in->n < 100)
        return trh_err("eval --local: %s has %u prompts: too few to split into references, a "
                      "stream and later prompts", in->name, in->n);
    for (int traffic = 0; traffic < 2; traffic++) {
        if (traffic && !in->task)
            continue;
        cell cells[N_CP] = {{0}};
        evcell evc;
        memset(&evc, 0, sizeof evc);
        cJSON *pairs = cJSON_CreateArray(), *weights = cJSON_CreateArray(),
              *levels = cJSON_CreateArray();
        char pair[160];
        for (int si = 0; si < in->n_seeds; si++) {
            fprintf(stderr, "\reval --local: %s, %s: seed %d/%d", in->name, scen[traffic], si + 1,
                    in->n_seeds);
            float w = 1.0f, sp = 0.0f;
            if (run_seed(in, traffic, (uint64_t)si + 1, cells, &evc, &w, &sp, pair, sizeof pair) !=
                0) {
                cJSON_Delete(pairs), cJSON_Delete(weights), cJSON_Delete(levels);
                return 1;
            }
            cJSON_AddItemToArray(pairs, cJSON_CreateString(pair));
            cJSON_AddItemToArray(weights, cJSON_CreateNumber(w));
            cJSON_AddItemToArray(levels, cJSON_CreateNumber(sp)); /* 0: off */
        }
        fprintf(stderr, "\n");
        fprintf(out, "\n%s, %s, %d seeds; local_weight chosen per seed on validation: ", in->name,
                scen[traffic], in->n_seeds);
        const cJSON *v;
        int i = 0;
        cJSON_ArrayForEach(v, weights)
            fprintf(out, "%s%g", i++ ? "," : "", v->valuedouble);
        fprintf(out, "; level pseudo-count: ");
        i = 0;
        cJSON_ArrayForEach(v, levels) {
            if (v->valuedouble > 0)
                fprintf(out, "%s%g", i++ ? "," : "", v->valuedouble);
            else
                fprintf(out, "%soff", i++ ? "," : "");
        }
        fprintf(out, "\n| outcomes | seeds | pack-only | local | local - pack | local+level | "
                     "level - pack | rebuilt | level - rebuilt |\n");
        fprintf(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int c = 0; c < N_CP; c++) {
            if (!cells[c].n) {
                fprintf(out, "| %u | 0 | | | | | | | |\n", cp_at[c]);
                continue;
            }
            const double n = cells[c].n, p = cells[c].pack / n, l = cells[c].local / n,
                         lv = cells[c].level / n, r = cells[c].rebuilt / n;
            fprintf(out, "| %u | %d | %.4f | %.4f | %+.4f | %.4f | %+.4f | %.4f | %+.4f |\n",
                    cp_at[c], cells[c].n, p, l, l - p, lv, lv - p, r, lv - r);
        }
        print_eviction(out, &evc);
        if (scenarios)
            cJSON_AddItemToArray(scenarios, scenario_json(scen[traffic], in->n_seeds, pairs,
                                                         weights, levels, cells));
        else
            cJSON_Delete(pairs), cJSON_Delete(weights), cJSON_Delete(levels);
    }
    return 0;
}
