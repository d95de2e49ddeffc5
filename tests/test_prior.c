/* The prior under every kNN estimate (issue 12, item 1): each model's
 * estimate is shrunk toward its own prior, (hits + a * prior) / (known + a).
 * Hand-made neighbour sets where two models tie on votes and the prior
 * breaks the tie; a model with no labelled neighbour gets exactly its prior;
 * a = 0 gives the plain means bit for bit (packs written before the field
 * route as before); the distance-weighted variant; a delta-added model
 * shrinks toward its own prior; the pack, delta and option bounds; the
 * clusters' per-cluster error rates Psi, shrunk the same way at build. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "packwriter.h"
#include "tinyroute.h"
#include "trh_fit.h"
#include "tr_format.h"
#include "tr_knn.h"

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"

/* ---- the estimator itself, on hand-made labels ---- */

enum { HN = 16 }; /* references of the hand-made label sets */

typedef struct hand {
    uint64_t correct[4], valid[4]; /* up to 4 models, one word each */
    uint8_t scores[4 * HN];
    float prior[4];
    tr_labels lab;
} hand;

static void hand_init(hand *h, uint32_t n_models, int with_valid, int with_scores)
{
    memset(h, 0, sizeof *h);
    h->lab = (tr_labels){n_models, HN, 1, h->correct, with_valid ? h->valid : NULL,
                         with_scores ? h->scores : NULL, HN, (const uint8_t *)h->prior,
                         sizeof(float)};
}

static void set_label(hand *h, uint32_t m, uint32_t i, int correct)
{
    h->valid[m] |= 1ull << i;
    if (correct)
        h->correct[m] |= 1ull << i;
    h->scores[m * HN + i] = correct ? 255 : 0;
}

static void uniform_nb(tr_neighbor *nb, uint32_t k)
{
    for (uint32_t j = 0; j < k; j++)
        nb[j] = (tr_neighbor){0.5f, j};
}

static void test_prior_breaks_a_vote_tie(void **state)
{
    (void)state;
    hand h;
    hand_init(&h, 2, 0, 0);
    /* Four neighbours: model 0 right on 0 and 1, model 1 on 2 and 3. */
    set_label(&h, 0, 0, 1);
    set_label(&h, 0, 1, 1);
    set_label(&h, 1, 2, 1);
    set_label(&h, 1, 3, 1);
    h.prior[0] = 0.3f; /* over all references model 1 is the better one */
    h.prior[1] = 0.8f;
    tr_neighbor nb[4];
    uniform_nb(nb, 4);
    float p[2];
    tr_knn_predict(&h.lab, nb, 4, 0, 1.0f, 0.0f, p);
    assert_true(p[0] == 0.5f && p[1] == 0.5f); /* an exact tie without the prior */
    tr_knn_predict(&h.lab, nb, 4, 0, 1.0f, 4.0f, p);
    assert_true(fabs(p[0] - (2 + 4 * 0.3) / 8) < 1e-6);
    assert_true(fabs(p[1] - (2 + 4 * 0.8) / 8) < 1e-6);
    assert_true(p[1] > p[0]);
    /* Fractional scores take the same formula in 1/255 units. */
    hand_init(&h, 2, 1, 1);
    set_label(&h, 0, 0, 1);
    set_label(&h, 1, 1, 1);
    h.scores[0 * HN + 1] = 51; /* 0.2 */
    h.valid[0] |= 2;
    h.scores[1 * HN + 0] = 51;
    h.valid[1] |= 1;
    h.prior[0] = 0.25f;
    h.prior[1] = 0.75f;
    tr_knn_predict(&h.lab, nb, 2, 0, 1.0f, 0.0f, p);
    assert_true(p[0] == p[1]);
    tr_knn_predict(&h.lab, nb, 2, 0, 1.0f, 2.0f, p);
    assert_true(fabs(p[0] - (306.0 / 255 + 2 * 0.25) / 4) < 1e-6);
    assert_true(fabs(p[1] - (306.0 / 255 + 2 * 0.75) / 4) < 1e-6);
}

static void test_no_labelled_neighbour_gets_its_prior(void **state)
{
    (void)state;
    hand h;
    hand_init(&h, 3, 1, 0);
    for (uint32_t i = 0; i < 8; i++)
        set_label(&h, 0, i, i % 2);
    set_label(&h, 1, 12, 1); /* model 1 is labelled only far away */
    /* model 2 is labelled nowhere */
    h.prior[0] = 0.5f;
    h.prior[1] = 0.123456789f;
    h.prior[2] = 0.987654321f;
    tr_neighbor nb[8];
    uniform_nb(nb, 8);
    float p[3];
    static const float as[] = {0.0f, 1.0f, 3.0f, 32.0f};
    for (int weighted = 0; weighted < 2; weighted++)
        for (size_t i = 0; i < sizeof as / sizeof *as; i++) {
            tr_knn_predict(&h.lab, nb, 8, weighted, 1.0f, as[i], p);
            assert_true(p[1] == h.prior[1]); /* exactly, not a*prior/a */
            assert_true(p[2] == h.prior[2]);
            assert_true(fabs(p[0] - 0.5) < 1e-6);
        }
    /* Without priors there is nothing to fall back on: NaN, as before. */
    h.lab.priors = NULL;
    tr_knn_predict(&h.lab, nb, 8, 0, 1.0f, 3.0f, p);
    assert_true(isnan(p[1]) && isnan(p[2]));
    assert_true(p[0] == 0.5f);
}

/* The estimator before the prior existed, verbatim: the oracle for a = 0. */
static void old_weights(const tr_neighbor *nb, uint32_t k, int weighted, float inv_qnorm,
                        float *w)
{
    int exact = 0;
    for (uint32_t j = 0; j < k; j++) {
        float d = 1.0f - nb[j].sim * inv_qnorm;
        exact |= d <= 1e-6f;
        w[j] = weighted && d > 1e-6f ? 1.0f / d : 1.0f;
    }
    if (weighted && exact)
        for (uint32_t j = 0; j < k; j++)
            w[j] = 1.0f - nb[j].sim * inv_qnorm <= 1e-6f ? 1.0f : 0.0f;
}

static int bitof(const uint64_t *s, uint32_t i) { return (int)(s[i >> 6] >> (i & 63) & 1); }

static void old_predict(const tr_labels *lab, const tr_neighbor *nb, uint32_t k, int weighted,
                        float inv_qnorm, float *predicted)
{
    float w[TR_K_MAX];
    old_weights(nb, k, weighted, inv_qnorm, w);
    for (uint32_t m = 0; m < lab->n_models; m++) {
        const uint64_t *cor = lab->correct + (size_t)m * lab->bit_words;
        const uint64_t *val = lab->valid ? lab->valid + (size_t)m * lab->bit_words : NULL;
        const uint8_t *sc = lab->scores ? lab->scores + (size_t)m * lab->score_stride : NULL;
        if (!weighted) {
            uint32_t known = 0, sum = 0;
            for (uint32_t j = 0; j < k; j++) {
                uint32_t i = nb[j].idx;
                if (val && !bitof(val, i))
                    continue;
                known++;
                sum += sc ? sc[i] : (uint32_t)bitof(cor, i);
            }
            predicted[m] = known == 0 ? NAN
                           : sc       ? (float)sum / (255.0f * (float)known)
                                      : (float)sum / (float)known;
            continue;
        }
        float wsum = 0.0f, acc = 0.0f;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t i = nb[j].idx;
            if (val && !bitof(val, i))
                continue;
            wsum += w[j];
            acc += w[j] * (sc ? (float)sc[i] / 255.0f : (float)bitof(cor, i));
        }
        predicted[m] = wsum > 0.0f ? acc / wsum : NAN;
    }
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}

static void test_zero_strength_is_the_plain_mean_bit_for_bit(void **state)
{
    (void)state;
    enum { NR = 300, NM = 4, WORDS = (NR + 63) / 64 };
    static uint64_t cor[NM * WORDS], val[NM * WORDS];
    static uint8_t sc[NM * NR];
    float prior[NM] = {0.1f, 0.4f, 0.6f, 0.9f};
    int disagreements = 0;
    for (int t = 0; t < 400; t++) {
        memset(cor, 0, sizeof cor);
        memset(val, 0, sizeof val);
        for (uint32_t m = 0; m < NM; m++)
            for (uint32_t i = 0; i < NR; i++) {
                uint32_t r = rnd() % 10;
                if (r < 7 || t % 2)
                    val[m * WORDS + i / 64] |= 1ull << (i % 64);
                sc[m * NR + i] = (uint8_t)(r < 3 ? 0 : r < 6 ? 255 : rnd() % 256);
                if (sc[m * NR + i] >= 128)
                    cor[m * WORDS + i / 64] |= 1ull << (i % 64);
            }
        tr_labels lab = {NM, NR, WORDS, cor, t % 3 ? val : NULL, t % 4 < 2 ? sc : NULL, NR,
                         (const uint8_t *)prior, sizeof(float)};
        uint32_t k = 1 + rnd() % TR_K_MAX;
        tr_neighbor nb[TR_K_MAX];
        for (uint32_t j = 0; j < k; j++) /* distances from 0 to ~1, one exact now and then */
            nb[j] = (tr_neighbor){(t % 5 == 0 && j == 2) ? 1.0f : 1.0f - (float)(rnd() % 1000) / 999.0f,
                                  rnd() % NR};
        int weighted = t % 2;
        float want[NM], got[NM], bare[NM];
        old_predict(&lab, nb, k, weighted, 1.0f, want);
        tr_knn_predict(&lab, nb, k, weighted, 1.0f, 0.0f, got);
        tr_labels no_priors = lab;
        no_priors.priors = NULL;
        tr_knn_predict(&no_priors, nb, k, weighted, 1.0f, 5.0f, bare); /* a ignored */
        for (uint32_t m = 0; m < NM; m++) {
            /* Where nothing is known the old code said NaN (and the router
             * then used the prior); now the prior comes straight back. */
            float expect = isnan(want[m]) ? prior[m] : want[m];
            disagreements += memcmp(&got[m], &expect, 4) != 0;
            disagreements += isnan(want[m]) ? !isnan(bare[m]) : memcmp(&bare[m], &want[m], 4) != 0;
        }
    }
    assert_int_equal(disagreements, 0);
}

static void test_weighted_prior_counts_in_mean_weights(void **state)
{
    (void)state;
    hand h;
    hand_init(&h, 2, 1, 0);
    /* Neighbours at cosine distance 0.1, 0.2, 0.4, 0.5: weights 10, 5,
     * 2.5, 2 (mean 4.875), so a = 2 weighs as 2 x 4.875 = 9.75. */
    static const double dist[4] = {0.1, 0.2, 0.4, 0.5};
    tr_neighbor nb[4];
    for (uint32_t j = 0; j < 4; j++)
        nb[j] = (tr_neighbor){(float)(1.0 - dist[j]), j};
    set_label(&h, 0, 0, 1);
    set_label(&h, 0, 1, 0);
    set_label(&h, 0, 2, 0);
    set_label(&h, 0, 3, 1);
    set_label(&h, 1, 1, 1); /* model 1: only the second neighbour known */
    h.prior[0] = 0.3f;
    h.prior[1] = 0.6f;
    float p[2];
    tr_knn_predict(&h.lab, nb, 4, 1, 1.0f, 2.0f, p);
    double w[4], ws = 0;
    for (int j = 0; j < 4; j++)
        ws += w[j] = 1.0 / (1.0 - (double)nb[j].sim);
    double aw = 2.0 * ws / 4;
    assert_true(fabs(aw - 9.75) < 1e-4);
    assert_true(fabs(p[0] - (w[0] + w[3] + aw * 0.3) / (ws + aw)) < 1e-5);
    assert_true(fabs(p[1] - (w[1] + aw * 0.6f) / (w[1] + aw)) < 1e-5);
    /* With equal distances the weighted estimate is the uniform one. */
    for (uint32_t j = 0; j < 4; j++)
        nb[j].sim = 0.75f;
    float u[2];
    tr_knn_predict(&h.lab, nb, 4, 1, 1.0f, 2.0f, p);
    tr_knn_predict(&h.lab, nb, 4, 0, 1.0f, 2.0f, u);
    assert_true(fabs(p[0] - u[0]) < 1e-6 && fabs(p[1] - u[1]) < 1e-6);
    assert_true(fabs(u[0] - (2 + 2 * 0.3) / 6) < 1e-6);
    /* An exact match takes all the weight (mean weight 1/4): the prior
     * then weighs a / 4 against the match's 1. */
    nb[2].sim = 1.0f;
    tr_knn_predict(&h.lab, nb, 4, 1, 1.0f, 2.0f, p);
    assert_true(fabs(p[0] - (0 + 0.5 * 0.3) / 1.5) < 1e-6);
    assert_true(p[1] == h.prior[1]); /* its known neighbour has weight 0 */
}

/* ---- through the router: packs, options, deltas ---- */

enum { N = 64, DIM = 16, M = 3 };
static const char *names[M] = {"cheap-device", "best-cloud", "mid-cloud"};
static const double costs[M] = {1, 10, 5};

typedef struct world {
    int8_t refs[N * DIM];
    float scores[N * M];
    trh_pack_model models[M];
    tr_pubkey pub;
    int8_t q[DIM];
} world;

/* Rows 0..3 lie around the query's direction, the rest opposite. On those
 * four, cheap-device is right on 0 and 1, best-cloud on 2 and 3: with k = 4
 * they tie at 0.5, and at lambda 0 an exact tie goes to the device model.
 * Over all references best-cloud is right far more often. */
static void world_init(world *w)
{
    memset(w, 0, sizeof *w);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < DIM; d++)
            w->refs[i * DIM + d] = (int8_t)(d == 0 ? (i < 4 ? 127 : -127) : (int)(rnd() % 41) - 20);
    for (int i = 0; i < N; i++) {
        int near = i < 4;
        w->scores[i * M + 0] = near ? (float)(i < 2) : (float)(i % 10 == 0);
        w->scores[i * M + 1] = near ? (float)(i >= 2) : (float)(i % 10 != 0);
        w->scores[i * M + 2] = near ? 0.0f : (float)(i % 2);
    }
    for (int m = 0; m < M; m++)
        w->models[m] = (trh_pack_model){names[m], costs[m], m == 0 ? TR_DEVICE : TR_CLOUD};
    w->q[0] = 127;
    assert_int_equal(trh_key_load_public(PUB, &w->pub), 0);
}

static double prior_of(const world *w, int m)
{
    double s = 0;
    for (int i = 0; i < N; i++)
        s += w->scores[i * M + m];
    return s / N;
}

static uint8_t *aligned_copy(const trh_buf *b)
{
    uint8_t *p = NULL;
    assert_int_equal(posix_memalign((void **)&p, 64, b->len + 64), 0);
    memcpy(p, b->data, b->len);
    return p;
}

/* A signed pack with prior strength a; *len its size. */
static uint8_t *pack_with(const world *w, float a, size_t *len)
{
    trh_pack_spec s = {.security_counter = 1, .created_unix = 1700000000,
                      .embedder_name = "test-embedder", .dim = DIM, .n_refs = N,
                      .n_models = M, .models = w->models, .refs = w->refs,
                      .scores = w->scores, .k = 4, .lambda = 0.0f, .prior_strength = a};
    trh_buf b = {0};
    trh_pack_layout lay;
    assert_int_equal(trh_pack_write(&s, &b, &lay), 0);
    assert_int_equal(trh_pack_sign(&b, KEY), 0);
    uint8_t *p = aligned_copy(&b);
    *len = b.len;
    trh_buf_free(&b);
    return p;
}

/* The pack's defaults record (to patch it, then sign again). */
static uint8_t *defaults_of(uint8_t *p)
{
    uint32_t ns = tr_ld32(p + TR_H_N_SECTIONS);
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = p + TR_HEADER_BYTES + (size_t)i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == TR_SEC_DEFAULTS)
            return p + tr_ld64(e + TR_S_OFFSET);
    }
    fail_msg("no defaults section");
    return NULL;
}

static uint8_t *resign(const uint8_t *p, size_t *len)
{
    trh_buf b = {0};
    trh_buf_put(&b, p, (size_t)tr_ld64(p + TR_H_SIGNED_BYTES));
    assert_int_equal(trh_pack_sign(&b, KEY), 0);
    uint8_t *out = aligned_copy(&b);
    *len = b.len;
    trh_buf_free(&b);
    return out;
}

/* A pack's view (base), the view routed (r: base or base + delta) and a
 * context for n_models. */
typedef struct box {
    void *view_mem, *delta_mem, *ctx_mem;
    const tr_pack *base, *r;
    tr_ctx *ctx;
    uint32_t n_models;
} box;

static box loaded(const world *w, const uint8_t *p, size_t len, uint32_t n_models)
{
    box b = {.n_models = n_models};
    size_t bytes = tr_ctx_size(DIM, n_models, 0);
    assert_int_equal(posix_memalign(&b.view_mem, 64, tr_pack_size()), 0);
    assert_int_equal(posix_memalign(&b.delta_mem, 64, tr_pack_size()), 0);
    assert_int_equal(posix_memalign(&b.ctx_mem, 64, bytes), 0);
    assert_int_equal(tr_ctx_init(b.ctx_mem, bytes, DIM, n_models, 0, &b.ctx), TR_OK);
    tr_trust t = {.keys = &w->pub, .n_keys = 1};
    assert_int_equal(tr_pack_open(b.view_mem, tr_pack_size(), p, len, &t, &b.base), TR_OK);
    b.r = b.base;
    return b;
}

static void box_free(box *b)
{
    free(b->view_mem), free(b->delta_mem), free(b->ctx_mem);
}

static tr_status route(box *b, const world *w, float a_opt, tr_result *res, float *pred)
{
    tr_route_opts o = {.k = 4, .lambda = 0.0f, .prior_strength = a_opt};
    const tr_query q = tr_query_i8("test-embedder", w->q, DIM);
    tr_route_out out = {pred, b->n_models, NULL, 0, NULL, 0};
    return tr_route(b->r, b->ctx, &q, &o, res, &out);
}

static void test_router_tie_goes_to_the_better_prior(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    size_t l0, l4;
    uint8_t *p0 = pack_with(&w, 0.0f, &l0), *p4 = pack_with(&w, 4.0f, &l4);
    /* A pack written with a = 0 has the bytes of one written before the
     * field: zeros after lambda. */
    static const uint8_t zeros[TR_DEFAULTS_BYTES - TR_D_PRIOR];
    assert_memory_equal(defaults_of(p0) + TR_D_PRIOR, zeros, sizeof zeros);
    box b0 = loaded(&w, p0, l0, M), b4 = loaded(&w, p4, l4, M);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b0.r, &info), TR_OK);
    assert_true(info.default_prior_strength == 0.0f);
    assert_int_equal(tr_pack_get_info(b4.r, &info), TR_OK);
    assert_true(info.default_prior_strength == 4.0f);

    tr_result r0, r4, rn, ro;
    float q0[M], q4[M], qn[M], qo[M];
    /* No prior: the votes tie exactly, and the tie goes to the device. */
    assert_int_equal(route(&b0, &w, 0.0f, &r0, q0), TR_OK);
    assert_true(q0[0] == 0.5f && q0[1] == 0.5f && q0[2] == 0.0f);
    assert_int_equal(r0.model, 0);
    /* The pack's prior: the whole reference set says best-cloud. */
    assert_int_equal(route(&b4, &w, 0.0f, &r4, q4), TR_OK);
    for (int m = 0; m < M; m++) {
        double hits = m == 2 ? 0 : 2;
        assert_true(fabs(q4[m] - (hits + 4 * prior_of(&w, m)) / 8) < 1e-6);
    }
    assert_true(q4[1] > q4[0]);
    assert_int_equal(r4.model, 1);
    assert_string_equal(r4.model_name, "best-cloud");
    /* The caller can turn it off, or set it on a pack without one. */
    assert_int_equal(route(&b4, &w, TR_PRIOR_NONE, &rn, qn), TR_OK);
    assert_memory_equal(qn, q0, sizeof q0);
    assert_int_equal(rn.model, 0);
    assert_int_equal(route(&b0, &w, 4.0f, &ro, qo), TR_OK);
    assert_memory_equal(qo, q4, sizeof q4);
    assert_int_equal(ro.model, 1);
    /* Bad strengths are the caller's error; -inf is just "none". */
    assert_int_equal(route(&b4, &w, NAN, &ro, NULL), TR_E_ARG);
    assert_int_equal(route(&b4, &w, TR_PRIOR_STRENGTH_MAX * 2, &ro, NULL), TR_E_ARG);
    assert_int_equal(route(&b4, &w, INFINITY, &ro, NULL), TR_E_ARG);
    assert_int_equal(route(&b4, &w, -INFINITY, &ro, qo), TR_OK);
    assert_memory_equal(qo, q0, sizeof q0);
    box_free(&b0), box_free(&b4), free(p0), free(p4);
}

static void test_pack_strength_is_bounds_checked(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    size_t len;
    uint8_t *p = pack_with(&w, 4.0f, &len);
    static const float bad[] = {-1.0f, NAN, INFINITY, TR_PRIOR_STRENGTH_MAX * 1.5f, -0.5f};
    void *mem;
    const tr_pack *v;
    assert_int_equal(posix_memalign(&mem, 64, tr_pack_size()), 0);
    tr_trust t = {.keys = &w.pub, .n_keys = 1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tr_stf32(defaults_of(p) + TR_D_PRIOR, bad[i]);
        size_t l2;
        uint8_t *q = resign(p, &l2);
        assert_int_equal(tr_pack_open(mem, tr_pack_size(), q, l2, &t, &v), TR_E_MALFORMED);
        free(q);
    }
    /* The largest allowed loads. */
    tr_stf32(defaults_of(p) + TR_D_PRIOR, TR_PRIOR_STRENGTH_MAX);
    size_t l2;
    uint8_t *q = resign(p, &l2);
    assert_int_equal(tr_pack_open(mem, tr_pack_size(), q, l2, &t, &v), TR_OK);
    free(q), free(p), free(mem);
}

/* A delta adding "new-cloud", labelled on rows 0..2 (right only on row 2),
 * with a prior of 0.85 from its own labels elsewhere. Each delta applied to
 * one base needs a counter above the last one's (anti-rollback). */
enum { BITS_STRIDE = ((N + 7) / 8 + 63) / 64 * 64 };
static uint8_t *delta_with(uint64_t counter, int has_settings, float settings_a, size_t *len)
{
    static uint8_t rec[TR_MODEL_REC_BYTES], cor[BITS_STRIDE], val[BITS_STRIDE];
    memset(rec, 0, sizeof rec);
    memset(cor, 0, sizeof cor);
    memset(val, 0, sizeof val);
    memcpy(rec + TR_M_NAME, "new-cloud", 9);
    tr_stf32(rec + TR_M_COST, 7.0f);
    tr_stf32(rec + TR_M_COST_NORM, 6.0f / 9.0f);
    tr_stf32(rec + TR_M_PRIOR, 0.85f);
    tr_st32(rec + TR_M_WHERE, TR_CLOUD);
    val[0] = 0x07; /* rows 0, 1, 2 */
    cor[0] = 0x04; /* right on row 2 */
    trh_delta_spec s = {.security_counter = counter, .created_unix = 1700000000, .n_base_models = M,
                       .n_base_refs = N, .bit_stride = BITS_STRIDE, .has_settings = has_settings,
                       .lambda = TR_LAMBDA_DEFAULT, .prior_strength = settings_a, .n_added = 1,
                       .records = rec, .correct = cor, .valid = val};
    trh_buf b = {0};
    trh_delta_write(&s, &b);
    *len = b.len;
    uint8_t *p = aligned_copy(&b);
    trh_buf_free(&b);
    return p;
}

static uint8_t *signed_delta(uint8_t *d, size_t *len, const uint8_t hash[32])
{
    memcpy(d + TR_DH_BASE_HASH, hash, 32);
    trh_buf b = {0};
    trh_buf_put(&b, d, *len);
    assert_int_equal(trh_pack_sign(&b, KEY), 0);
    uint8_t *p = aligned_copy(&b);
    *len = b.len;
    trh_buf_free(&b);
    free(d);
    return p;
}

static void test_delta_model_uses_its_own_prior(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    size_t bl;
    uint8_t *base = pack_with(&w, 4.0f, &bl);
    box b = loaded(&w, base, bl, M + 1);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    tr_trust t = {.keys = &w.pub, .n_keys = 1};
    struct {
        int has;
        float set, want; /* the settings' a, the a then served */
    } cases[] = {{0, 0.0f, 4.0f}, {1, 0.0f, 4.0f}, {1, 2.0f, 2.0f}, {1, -1.0f, 0.0f}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        size_t dl;
        uint8_t *d = delta_with(2 + c, cases[c].has, cases[c].set, &dl);
        d = signed_delta(d, &dl, info.pack_hash);
        assert_int_equal(
            tr_pack_apply_delta(b.base, d, dl, &t, b.delta_mem, tr_pack_size(), &b.r), TR_OK);
        tr_pack_info di;
        assert_int_equal(tr_pack_get_info(b.r, &di), TR_OK);
        assert_true(di.default_prior_strength == cases[c].want);
        tr_delta_info dd;
        assert_int_equal(tr_pack_get_delta(b.r, &dd), TR_OK);
        assert_true(dd.prior_strength == (cases[c].has ? cases[c].set : 0.0f));
        float pred[M + 1];
        tr_result res;
        assert_int_equal(route(&b, &w, 0.0f, &res, pred), TR_OK);
        /* Its three known neighbours: 1 hit, shrunk toward its own 0.85;
         * the base models toward theirs, as without the delta. */
        double a = cases[c].want;
        assert_true(fabs(pred[M] - (1 + a * 0.85) / (3 + a)) < 1e-6);
        assert_true(fabs(pred[1] - (2 + a * prior_of(&w, 1)) / (4 + a)) < 1e-6);
        if (a == 0)
            assert_true(pred[M] == 1.0f / 3.0f);
        b.r = b.base;
        free(d);
    }
    /* A settings strength past the bound or not a number is refused. */
    static const float bad[] = {NAN, INFINITY, TR_PRIOR_STRENGTH_MAX * 2};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t dl;
        uint8_t *d = delta_with(100 + i, 1, bad[i], &dl);
        d = signed_delta(d, &dl, info.pack_hash);
        const tr_pack *v;
        assert_int_equal(tr_pack_apply_delta(b.base, d, dl, &t, b.delta_mem, tr_pack_size(), &v),
                         TR_E_MALFORMED);
        free(d);
    }
    box_free(&b), free(base);
}

/* ---- the clusters' Psi (shrunk at build, models/fit/cluster_fit.c) ----
 * Six rows in three clusters, two models. Model 0: cluster 0 rows 0, 1
 * right, wrong; cluster 1 rows 2, 3, 4 right, right, right; cluster 2 (row
 * 5) unknown: no labelled prompt there. Its prior is 4/5. Model 1 is known
 * everywhere: wrong, wrong, right, wrong, wrong, right (prior 2/6). */
static void test_cluster_psi_shrinks_toward_the_prior(void **state)
{
    (void)state;
    const float scores[6 * 2] = {1, 0, 0, 0, 1, 1, 1, 0, 1, 0, NAN, 1};
    const uint32_t assign[6] = {0, 0, 1, 1, 1, 2};
    static const double as[] = {0, 1, 16, TR_PRIOR_STRENGTH_MAX};
    for (size_t t = 0; t < sizeof as / sizeof *as; t++) {
        const double a = as[t];
        float psi[3 * 2];
        trh_cluster_psi(scores, 6, 2, assign, 3, a, psi);
        const double p0 = 4.0 / 5.0, p1 = 2.0 / 6.0;
        /* Psi[c][m] = 1 - (hits + a * prior) / (n + a). */
        assert_float_equal(psi[0 * 2 + 0], 1 - (1 + a * p0) / (2 + a), 1e-6);
        assert_float_equal(psi[1 * 2 + 0], 1 - (3 + a * p0) / (3 + a), 1e-6);
        assert_float_equal(psi[0 * 2 + 1], 1 - (0 + a * p1) / (2 + a), 1e-6);
        assert_float_equal(psi[1 * 2 + 1], 1 - (1 + a * p1) / (3 + a), 1e-6);
        assert_float_equal(psi[2 * 2 + 1], 1 - (1 + a * p1) / (1 + a), 1e-6);
        /* A cluster with no labelled prompt gets exactly the model's overall
         * error, whatever a (not 0, not 1, not 0/0). */
        assert_true(psi[2 * 2 + 0] == (float)(1 - p0));
        if (a == 0) { /* the raw means */
            assert_true(psi[0] == 0.5f && psi[1 * 2 + 0] == 0.0f && psi[2 * 2 + 1] == 0.0f);
        } else { /* strictly between the raw mean and the prior's */
            assert_true(psi[1 * 2 + 0] > 0.0f && psi[1 * 2 + 0] < (float)(1 - p0));
            assert_true(psi[2 * 2 + 1] > 0.0f && psi[2 * 2 + 1] < (float)(1 - p1));
        }
    }
    /* The inline estimate the delta tool calls for added models: no label
     * in the cluster is the prior, a = 0 too. */
    assert_true(trh_psi_estimate(0, 0, 0.25, 0) == 0.75f);
    assert_true(trh_psi_estimate(0, 0, 0.25, 16) == 0.75f);
    assert_float_equal(trh_psi_estimate(3, 4, 0.25, 4), 1 - (3 + 1.0) / 8, 1e-7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prior_breaks_a_vote_tie),
        cmocka_unit_test(test_no_labelled_neighbour_gets_its_prior),
        cmocka_unit_test(test_zero_strength_is_the_plain_mean_bit_for_bit),
        cmocka_unit_test(test_weighted_prior_counts_in_mean_weights),
        cmocka_unit_test(test_router_tie_goes_to_the_better_prior),
        cmocka_unit_test(test_pack_strength_is_bounds_checked),
        cmocka_unit_test(test_delta_model_uses_its_own_prior),
        cmocka_unit_test(test_cluster_psi_shrinks_toward_the_prior),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
