/* Local learning (core/local.c, issue #16): the store's memory, its
 * arguments, the estimate it adds to kNN (formula, radius, updates,
 * eviction), bit-identical routes without evidence, the method and pack
 * bindings, and the sealed blob: round trip, every truncation and every
 * single-bit flip refused, foreign keys and other packs refused, the store
 * unchanged by any refused import.
 *
 * usage: test_local [FIXTURE_PACK] (the fixture pack adds text prompts of
 * the real embedder to the bit-identity check). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "packwriter.h"
#include "tinyroute.h"
#include "tr_format.h"
#include "tr_outcome.h"
#include "util.h"

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"

static const char *fixture_pack_path;

enum { D = 32, N = 300, M = 4, K = 10 };

typedef struct box {
    trh_buf pack;
    uint8_t *bytes;
    size_t len;
    void *view_mem, *ctx_mem;
    const tr_pack *r;
    tr_ctx *c;
    tr_pubkey pub;
    tr_pack_info info;
} box;

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void *amem(size_t bytes)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, bytes ? bytes : 1), 0);
    return p;
}

static void open_box(box *b)
{
    b->len = b->pack.len;
    b->bytes = amem(b->len);
    memcpy(b->bytes, b->pack.data, b->len);
    assert_int_equal(trh_key_load_public(PUB, &b->pub), 0);
    b->view_mem = amem(tr_pack_size());
    tr_trust t = {.keys = &b->pub, .n_keys = 1};
    assert_int_equal(tr_pack_open(b->view_mem, tr_pack_size(), b->bytes, b->len, &t, &b->r), TR_OK);
    assert_int_equal(tr_pack_get_info(b->r, &b->info), TR_OK);
    size_t need = tr_ctx_size_for(b->r);
    b->ctx_mem = amem(need);
    assert_int_equal(tr_ctx_init(b->ctx_mem, need, b->info.dim, b->info.n_models,
                                 b->info.prefilter_candidates, &b->c),
                     TR_OK);
}

/* A random pack: N references, M models with fractional and unknown
 * scores (exact_labels: 0/1 only, all known), a prior, optionally a
 * prefilter. names_tag renames the models (another pack, same shape). */
static void rand_pack(box *b, uint32_t prefilter, int exact_labels, const char *names_tag,
                      uint32_t seed)
{
    static int8_t refs[N * D];
    static float scores[N * M];
    rng_state = seed;
    for (int i = 0; i < N * D; i++)
        refs[i] = (int8_t)((int)(rnd() % 201) - 100);
    for (int i = 0; i < N; i++)
        for (int m = 0; m < M; m++) {
            uint32_t x = rnd() % 10;
            scores[i * M + m] = exact_labels ? (float)(x < 3 + 2 * (uint32_t)m)
                                : x == 0     ? NAN
                                : x < 3      ? (float)(rnd() % 256) / 255.0f
                                             : (float)(x < 6);
        }
    static char names[M][16];
    static trh_pack_model models[M];
    for (int m = 0; m < M; m++) {
        snprintf(names[m], sizeof names[m], "%s%d", names_tag, m);
        models[m] = (trh_pack_model){names[m], (float)(1 + 3 * m), m < 2 ? TR_DEVICE : TR_CLOUD};
    }
    trh_pack_spec s = {.security_counter = 1, .embedder_name = "rand", .dim = D, .n_refs = N,
                      .n_models = M, .models = models, .refs = refs, .scores = scores, .k = K,
                      .prior_strength = 2.0f, .prefilter_c = prefilter};
    trh_pack_layout lay;
    b->pack = (trh_buf){0};
    assert_int_equal(trh_pack_write(&s, &b->pack, &lay), 0);
    assert_int_equal(trh_pack_sign(&b->pack, KEY), 0);
    open_box(b);
}

static void free_box(box *b)
{
    trh_buf_free(&b->pack);
    free(b->bytes);
    free(b->view_mem);
    free(b->ctx_mem);
}

static tr_local *new_store(box *b, uint32_t capacity, void **mem)
{
    size_t need = tr_local_size(capacity, b->info.dim, b->info.n_models);
    assert_true(need > 0);
    *mem = amem(need);
    tr_local *s = NULL;
    assert_int_equal(tr_local_init(*mem, need, capacity, b->r, &s), TR_OK);
    return s;
}

static void rand_query(int8_t *q)
{
    for (int d = 0; d < D; d++)
        q[d] = (int8_t)((int)(rnd() % 201) - 100);
}

static tr_status route(box *b, const int8_t *q, const tr_route_opts *o, tr_result *res,
                       float *pred)
{
    const tr_query qq = tr_query_i8("rand", q, D);
    const tr_route_out out = {pred, M, NULL, 0, NULL, 0};
    return tr_route(b->r, b->c, &qq, o, res, &out);
}

static void test_sizes_and_arguments(void **state)
{
    assert_int_equal(tr_local_size(0, D, M), 0);
    assert_int_equal(tr_local_size(8, 0, M), 0);
    assert_int_equal(tr_local_size(8, D, 0), 0);
    assert_int_equal(tr_local_size(8, TR_DIM_MAX + 1, M), 0);
    assert_int_equal(tr_local_size(8, D, TR_MODELS_MAX + 1), 0);
    assert_int_equal(tr_local_size((1u << 24) + 1, D, M), 0);
    assert_true(tr_local_size(16, D, M) > tr_local_size(8, D, M));
    box b;
    rand_pack(&b, 0, 0, "m", 1);
    const size_t need = tr_local_size(8, D, M);
    uint8_t *mem = amem(need + 16);
    tr_local *s = NULL;
    assert_int_equal(tr_local_init(mem, need - 1, 8, b.r, &s), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_local_init(mem + 1, need, 8, b.r, &s), TR_E_ARG);
    assert_int_equal(tr_local_init(NULL, need, 8, b.r, &s), TR_E_ARG);
    assert_int_equal(tr_local_init(mem, need, 8, NULL, &s), TR_E_ARG);
    assert_int_equal(tr_local_init(mem, need, 0, b.r, &s), TR_E_ARG);
    assert_null(s);
    /* The exact size is enough. */
    assert_int_equal(tr_local_init(mem, need, 8, b.r, &s), TR_OK);
    int8_t q[D];
    rand_query(q);
    assert_int_equal(tr_local_add(NULL, q, D, 0, 1.0f), TR_E_ARG);
    assert_int_equal(tr_local_add(s, NULL, D, 0, 1.0f), TR_E_ARG);
    assert_int_equal(tr_local_add(s, q, D - 1, 0, 1.0f), TR_E_DIM_MISMATCH);
    assert_int_equal(tr_local_add(s, q, D, M, 1.0f), TR_E_ARG);
    assert_int_equal(tr_local_add(s, q, D, 0, NAN), TR_E_ARG);
    assert_int_equal(tr_local_add(s, q, D, 0, -0.01f), TR_E_ARG);
    assert_int_equal(tr_local_add(s, q, D, 0, 1.01f), TR_E_ARG);
    int8_t bad[D];
    memcpy(bad, q, D);
    bad[3] = -128;
    assert_int_equal(tr_local_add(s, bad, D, 0, 1.0f), TR_E_ARG);
    memset(bad, 0, D);
    assert_int_equal(tr_local_add(s, bad, D, 0, 1.0f), TR_E_ZERO_VECTOR);
    tr_local_stats st;
    assert_int_equal(tr_local_stats_get(s, &st), TR_OK);
    assert_int_equal(st.count, 0);
    assert_int_equal(st.adds, 0);
    assert_int_equal(st.capacity, 8);
    assert_int_equal(tr_local_add(s, q, D, 0, 1.0f), TR_OK);
    assert_int_equal(tr_local_stats_get(s, &st), TR_OK);
    assert_int_equal(st.count, 1);
    assert_int_equal(tr_local_stats_get(NULL, &st), TR_E_ARG);
    /* Options: bad weights, and methods other than kNN. */
    tr_result res;
    float pred[M];
    tr_route_opts o = {.local = s, .local_weight = -1.0f};
    assert_int_equal(route(&b, q, &o, &res, pred), TR_E_ARG);
    o.local_weight = NAN;
    assert_int_equal(route(&b, q, &o, &res, pred), TR_E_ARG);
    o.local_weight = INFINITY;
    assert_int_equal(route(&b, q, &o, &res, pred), TR_E_ARG);
    o.local_weight = 0.0f;
    assert_int_equal(route(&b, q, &o, &res, pred), TR_OK);
    o.method = TR_METHOD_CLUSTER;
    assert_int_equal(route(&b, q, &o, &res, pred), TR_E_ARG);
    o.method = TR_METHOD_LEARNED_MAP;
    assert_int_equal(route(&b, q, &o, &res, pred), TR_E_ARG);
    /* Not a store. */
    uint8_t junk[256] __attribute__((aligned(16))) = {0};
    o.method = TR_METHOD_KNN;
    o.local = (const tr_local *)junk;
    assert_int_equal(route(&b, q, &o, &res, pred), TR_E_ARG);
    free(mem);
    free_box(&b);
}

/* Without evidence in the radius the route is the pack-only route, bit for
 * bit: an empty store, and a store whose entries are all far away (the
 * negated queries, at cosine distance 2). */
static void check_identical(box *b, const tr_route_opts *base, tr_local *empty, tr_local *far,
                            const int8_t *q)
{
    tr_result r0, r1;
    float p0[M], p1[M];
    tr_route_opts o = *base;
    o.local = NULL;
    assert_int_equal(route(b, q, &o, &r0, p0), TR_OK);
    const tr_local *stores[2] = {empty, far};
    const float weights[3] = {0.0f, 1.0f, 50.0f};
    for (int s = 0; s < 2; s++)
        for (int w = 0; w < 3; w++) {
            o.local = stores[s];
            o.local_weight = weights[w];
            memset(&r1, 0xA5, sizeof r1);
            assert_int_equal(route(b, q, &o, &r1, p1), TR_OK);
            assert_memory_equal(p0, p1, sizeof p0);
            assert_int_equal(r0.model, r1.model);
            assert_memory_equal(&r0.utility, &r1.utility, sizeof r0.utility);
            assert_memory_equal(&r0.nearest_distance, &r1.nearest_distance, sizeof(float));
            assert_int_equal(r0.k, r1.k);
            assert_int_equal(r0.why, r1.why);
        }
}

static void test_no_evidence_is_bit_identical(void **state)
{
    const tr_route_opts variants[] = {
        {0},
        {.distance_weighted = 1},
        {.prior_strength = TR_PRIOR_NONE},
        {.k = 3, .lambda = TR_LAMBDA_ZERO},
        {.exact = 1, .prior_strength = 7.0f},
        {.distance_weighted = 1, .prior_strength = TR_PRIOR_NONE, .k = 40},
    };
    for (uint32_t pf = 0; pf <= 64; pf += 64) {
        box b;
        rand_pack(&b, pf, 0, "m", 7 + pf);
        void *em, *fm;
        tr_local *empty = new_store(&b, 64, &em), *far = new_store(&b, 256, &fm);
        const size_t far_bytes = tr_local_size(256, D, M);
        int8_t q[D], neg[D];
        for (int i = 0; i < 40; i++) {
            rand_query(q);
            /* A fresh far store per query: only its own negation in it. */
            assert_int_equal(tr_local_init(fm, far_bytes, 256, b.r, &far), TR_OK);
            for (int d = 0; d < D; d++)
                neg[d] = (int8_t)-q[d];
            for (uint32_t m = 0; m < M; m++)
                assert_int_equal(tr_local_add(far, neg, D, m, (float)(m % 2)), TR_OK);
            for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
                check_identical(&b, &variants[v], empty, far, q);
        }
        free(em);
        free(fm);
        free_box(&b);
    }
}

/* The same with the real fixture pack and its embedder: text prompts. */
static void test_fixture_pack_identical(void **state)
{
    if (!fixture_pack_path) {
        skip();
        return;
    }
    box b = {0};
    size_t n = 0;
    uint8_t *raw = trh_read_file(fixture_pack_path, &n);
    assert_non_null(raw);
    b.pack.data = raw;
    b.pack.len = n;
    b.pack.cap = n;
    open_box(&b);
    const uint32_t nm = b.info.n_models, dim = b.info.dim;
    void *em;
    tr_local *empty = new_store(&b, 32, &em);
    float *p0 = calloc(nm, sizeof *p0), *p1 = calloc(nm, sizeof *p1);
    int8_t *emb = amem(dim);
    static const char *prompts[] = {
        "What is the capital of France?", "Solve 12 * 17 and explain the steps.",
        "Write a haiku about autumn leaves.", "Which enzyme breaks down starch?",
        "Translate good morning into German.", "zzqx unknownword",
    };
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++)
        for (int wgt = 0; wgt < 2; wgt++) {
            const tr_query qt = tr_query_text(prompts[i], strlen(prompts[i]));
            tr_route_opts o = {.distance_weighted = wgt};
            tr_result r0, r1;
            const tr_route_out out0 = {p0, nm, emb, dim, NULL, 0}, out1 = {p1, nm, NULL, 0, NULL, 0};
            assert_int_equal(tr_route(b.r, b.c, &qt, &o, &r0, &out0), TR_OK);
            o.local = empty;
            assert_int_equal(tr_route(b.r, b.c, &qt, &o, &r1, &out1), TR_OK);
            assert_memory_equal(p0, p1, sizeof(float) * nm);
            assert_int_equal(r0.model, r1.model);
            assert_memory_equal(&r0.utility, &r1.utility, sizeof(float));
        }
    free(p0);
    free(p1);
    free(emb);
    free(em);
    free_box(&b);
}

/* One entry at the query itself: (p0 (k + a) + w o) / (k + a + w) for the
 * model it knows (every label known, uniform weights), the others as
 * before; a second add of the same embedding makes the mean of the two. */
static void test_estimate_formula_and_updates(void **state)
{
    box b;
    rand_pack(&b, 0, 1, "m", 99);
    void *mem;
    tr_local *s = new_store(&b, 16, &mem);
    int8_t q[D];
    rand_query(q);
    tr_result r0, r1;
    float p0[M], p1[M];
    const float a = 2.0f, w = 3.0f;
    assert_int_equal(route(&b, q, NULL, &r0, p0), TR_OK);
    assert_int_equal(r0.k, K);
    assert_int_equal(tr_local_add(s, q, D, 2, 1.0f), TR_OK);
    tr_route_opts o = {.local = s, .local_weight = w};
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    for (int m = 0; m < M; m++) {
        if (m == 2)
            assert_float_equal(p1[m], (p0[m] * (K + a) + w * 1.0f) / (K + a + w), 1e-5);
        else
            assert_memory_equal(&p0[m], &p1[m], sizeof(float));
    }
    /* The same embedding again, outcome 0: one entry, mean 0.5. */
    assert_int_equal(tr_local_add(s, q, D, 2, 0.0f), TR_OK);
    tr_local_stats st;
    assert_int_equal(tr_local_stats_get(s, &st), TR_OK);
    assert_int_equal(st.count, 1);
    assert_int_equal(st.adds, 2);
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    assert_float_equal(p1[2], (p0[2] * (K + a) + w * 0.5f) / (K + a + w), 1e-5);
    /* Another model's outcome on the same entry. */
    assert_int_equal(tr_local_add(s, q, D, 0, 0.0f), TR_OK);
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    assert_float_equal(p1[0], (p0[0] * (K + a)) / (K + a + w), 1e-5);
    /* The default weight is TR_LOCAL_WEIGHT_DEFAULT. */
    o.local_weight = 0.0f;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    const float wd = TR_LOCAL_WEIGHT_DEFAULT;
    assert_float_equal(p1[2], (p0[2] * (K + a) + wd * 0.5f) / (K + a + wd), 1e-5);
    free(mem);
    free_box(&b);
}

/* Enough local evidence turns the decision: the cheap device model, wrong
 * by the pack on this query, right by the device's outcomes. */
static void test_evidence_turns_the_decision(void **state)
{
    box b;
    rand_pack(&b, 0, 1, "m", 5);
    void *mem;
    tr_local *s = new_store(&b, 16, &mem);
    int8_t q[D];
    tr_result r0, r1;
    float p0[M], p1[M];
    tr_route_opts o = {.lambda = TR_LAMBDA_ZERO};
    int found = 0;
    for (int i = 0; i < 200 && !found; i++) {
        rand_query(q);
        assert_int_equal(route(&b, q, &o, &r0, p0), TR_OK);
        found = r0.model != 0 && p0[0] < 0.8f;
    }
    assert_true(found);
    assert_int_equal(tr_local_add(s, q, D, 0, 1.0f), TR_OK);
    o.local = s;
    o.local_weight = 10000.0f;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    assert_true(p1[0] > 0.99f);
    assert_int_equal(r1.model, 0);
    free(mem);
    free_box(&b);
}

/* The governed route takes the store through its options too: the same
 * predictions as a plain route with the store, and not the pack's. */
static void test_governed_route_reads_the_store(void **state)
{
    box b;
    rand_pack(&b, 0, 1, "m", 61);
    void *mem;
    tr_local *s = new_store(&b, 8, &mem);
    int8_t q[D];
    rand_query(q);
    assert_int_equal(tr_local_add(s, q, D, 1, 1.0f), TR_OK);
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 100.0f, 3600, 0, 0.0f, 0.0f), TR_OK);
    const tr_query qq = tr_query_i8("rand", q, D);
    float pg[M], pr[M], p0[M];
    const tr_route_out og = {pg, M, NULL, 0, NULL, 0}, orr = {pr, M, NULL, 0, NULL, 0}, o0 = {p0, M, NULL, 0, NULL, 0};
    tr_route_opts o = {.local = s, .local_weight = 4.0f};
    tr_result rg, rr, r0;
    assert_int_equal(tr_route_governed(b.r, b.c, &g, 1, &qq, &o, &rg, &og), TR_OK);
    assert_int_equal(tr_route(b.r, b.c, &qq, &o, &rr, &orr), TR_OK);
    assert_int_equal(tr_route(b.r, b.c, &qq, NULL, &r0, &o0), TR_OK);
    assert_memory_equal(pg, pr, sizeof pg);
    assert_true(pg[1] > p0[1]);
    free(mem);
    free_box(&b);
}

/* Full store: the oldest entry (least recently added to) goes. */
static void test_eviction_oldest_first(void **state)
{
    box b;
    rand_pack(&b, 0, 1, "m", 11);
    void *mem;
    tr_local *s = new_store(&b, 2, &mem);
    int8_t q[3][D];
    for (int i = 0; i < 3; i++)
        rand_query(q[i]);
    float p0[3][M], p[M];
    tr_result r;
    for (int i = 0; i < 3; i++)
        assert_int_equal(route(&b, q[i], NULL, &r, p0[i]), TR_OK);
    tr_route_opts o = {.local = s, .local_weight = 1000.0f};
    assert_int_equal(tr_local_add(s, q[0], D, 1, 1.0f), TR_OK); /* A */
    assert_int_equal(tr_local_add(s, q[1], D, 1, 1.0f), TR_OK); /* B */
    assert_int_equal(tr_local_add(s, q[0], D, 1, 1.0f), TR_OK); /* A again: B is oldest */
    assert_int_equal(tr_local_add(s, q[2], D, 1, 1.0f), TR_OK); /* C evicts B */
    tr_local_stats st;
    assert_int_equal(tr_local_stats_get(s, &st), TR_OK);
    assert_int_equal(st.count, 2);
    assert_int_equal(st.evicted, 1);
    /* B's query: no evidence left there (unless A or C is within its
     * radius, which random 32-d queries are not: checked on A's side). */
    assert_int_equal(route(&b, q[1], &o, &r, p), TR_OK);
    assert_memory_equal(p, p0[1], sizeof p);
    assert_int_equal(route(&b, q[0], &o, &r, p), TR_OK);
    assert_true(p[1] > 0.99f);
    assert_int_equal(route(&b, q[2], &o, &r, p), TR_OK);
    assert_true(p[1] > 0.99f);
    free(mem);
    free_box(&b);
}

/* A store serves the pack it is bound to; another pack is refused until
 * bound, and binding needs the same models. */
static void test_pack_binding(void **state)
{
    box a, same, other;
    rand_pack(&a, 0, 0, "m", 21);
    rand_pack(&same, 64, 0, "m", 22);  /* other pack bytes, same names/dim */
    rand_pack(&other, 0, 0, "x", 23); /* other model names */
    void *mem;
    tr_local *s = new_store(&a, 8, &mem);
    int8_t q[D];
    rand_query(q);
    assert_int_equal(tr_local_add(s, q, D, 0, 1.0f), TR_OK);
    tr_route_opts o = {.local = s};
    tr_result r;
    float p[M];
    assert_int_equal(route(&a, q, &o, &r, p), TR_OK);
    assert_int_equal(route(&same, q, &o, &r, p), TR_E_LOCAL_PACK);
    assert_int_equal(route(&other, q, &o, &r, p), TR_E_LOCAL_PACK);
    assert_int_equal(tr_local_bind(s, other.r), TR_E_LOCAL_PACK);
    assert_int_equal(route(&a, q, &o, &r, p), TR_OK); /* unchanged */
    assert_int_equal(tr_local_bind(s, same.r), TR_OK);
    assert_int_equal(route(&same, q, &o, &r, p), TR_OK);
    assert_int_equal(route(&a, q, &o, &r, p), TR_E_LOCAL_PACK);
    free(mem);
    free_box(&a);
    free_box(&same);
    free_box(&other);
}

static const uint8_t key1[32] = "local-store-key-0123456789abcdef";
static const uint8_t key2[32] = "another-device-key-0123456789abc";

static uint8_t *export_blob(const tr_local *s, const uint8_t *key, size_t *len)
{
    size_t need = tr_local_export_size(s), w = 0;
    assert_true(need > 0);
    uint8_t *buf = malloc(need);
    assert_int_equal(tr_local_export(s, key, buf, need - 1, &w), TR_E_OUTPUT_TOO_SMALL);
    assert_int_equal(w, need);
    assert_int_equal(tr_local_export(s, key, buf, need, &w), TR_OK);
    assert_int_equal(w, need);
    *len = w;
    return buf;
}

/* The store's state, as its export under key1 says. */
static int same_state(const tr_local *s, const uint8_t *want, size_t want_len)
{
    size_t len;
    uint8_t *now = export_blob(s, key1, &len);
    int same = len == want_len && memcmp(now, want, len) == 0;
    free(now);
    return same;
}

static void fill(tr_local *s, int n, uint32_t seed)
{
    rng_state = seed;
    int8_t q[D];
    for (int i = 0; i < n; i++) {
        rand_query(q);
        assert_int_equal(tr_local_add(s, q, D, rnd() % M, (float)(rnd() % 5) / 4.0f), TR_OK);
    }
}

static void test_blob_round_trip(void **state)
{
    box b;
    rand_pack(&b, 0, 0, "m", 31);
    void *m1, *m2;
    tr_local *s = new_store(&b, 8, &m1), *t = new_store(&b, 8, &m2);
    fill(s, 12, 5); /* 4 evicted */
    size_t len;
    uint8_t *blob = export_blob(s, key1, &len);
    assert_int_equal(tr_local_import(t, key1, blob, len), TR_OK);
    tr_local_stats a, c;
    assert_int_equal(tr_local_stats_get(s, &a), TR_OK);
    assert_int_equal(tr_local_stats_get(t, &c), TR_OK);
    assert_memory_equal(&a, &c, sizeof a);
    assert_int_equal(a.evicted, 4);
    assert_true(same_state(t, blob, len));
    /* Routes through either give the same predictions. */
    int8_t q[D];
    tr_result r;
    float p0[M], p1[M];
    for (int i = 0; i < 20; i++) {
        rand_query(q);
        tr_route_opts o = {.local = s, .local_weight = 5.0f};
        assert_int_equal(route(&b, q, &o, &r, p0), TR_OK);
        o.local = t;
        assert_int_equal(route(&b, q, &o, &r, p1), TR_OK);
        assert_memory_equal(p0, p1, sizeof p0);
    }
    /* Further adds continue the clock: the same next state in both. */
    fill(s, 3, 77);
    fill(t, 3, 77);
    size_t l2;
    uint8_t *b2 = export_blob(s, key1, &l2);
    assert_true(same_state(t, b2, l2));
    free(b2);
    /* An empty store exports and imports too. */
    void *m3;
    tr_local *e = new_store(&b, 4, &m3);
    size_t el;
    uint8_t *eb = export_blob(e, key1, &el);
    assert_int_equal(tr_local_import(t, key1, eb, el), TR_OK);
    assert_int_equal(tr_local_stats_get(t, &c), TR_OK);
    assert_int_equal(c.count, 0);
    /* More entries than the store holds. */
    void *m4;
    tr_local *small = new_store(&b, 4, &m4);
    assert_int_equal(tr_local_import(small, key1, blob, len), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_local_import(NULL, key1, blob, len), TR_E_ARG);
    assert_int_equal(tr_local_import(t, NULL, blob, len), TR_E_ARG);
    assert_int_equal(tr_local_import(t, key1, NULL, len), TR_E_ARG);
    free(eb);
    free(blob);
    free(m1);
    free(m2);
    free(m3);
    free(m4);
    free_box(&b);
}

/* Every truncation and every single-bit flip of a small blob is refused,
 * each with its status, and the store keeps its entries. */
static void test_blob_tamper(void **state)
{
    box b;
    rand_pack(&b, 0, 0, "m", 41);
    void *m1, *m2;
    tr_local *s = new_store(&b, 8, &m1), *t = new_store(&b, 8, &m2);
    fill(s, 3, 9);
    fill(t, 2, 10); /* t's own state, which refused imports must keep */
    size_t len, tl;
    uint8_t *blob = export_blob(s, key1, &len), *before = export_blob(t, key1, &tl);
    uint8_t *x = malloc(len);
    for (size_t n = 0; n < len; n++) {
        memcpy(x, blob, n);
        tr_status st = tr_local_import(t, key1, x, n);
        assert_int_equal(st, TR_E_LOCAL_BLOB);
    }
    int macs = 0, blobs = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(x, blob, len);
            x[i] ^= (uint8_t)(1u << bit);
            tr_status st = tr_local_import(t, key1, x, len);
            assert_true(st == TR_E_LOCAL_MAC || st == TR_E_LOCAL_BLOB);
            macs += st == TR_E_LOCAL_MAC;
            blobs += st == TR_E_LOCAL_BLOB;
        }
    /* Flips of the entries and the MAC are MAC failures; of the shape
     * fields (magic, version, dim, models, count) blob failures. */
    assert_true(macs > (int)(len - 64) * 8);
    assert_true(blobs >= 5 * 32 - 8);
    /* An extra byte. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, blob, len);
    longer[len] = 0;
    assert_int_equal(tr_local_import(t, key1, longer, len + 1), TR_E_LOCAL_BLOB);
    free(longer);
    /* Another device's key. */
    assert_int_equal(tr_local_import(t, key2, blob, len), TR_E_LOCAL_MAC);
    assert_true(same_state(t, before, tl));
    free(x);
    free(blob);
    free(before);
    free(m1);
    free(m2);
    free_box(&b);
}

/* Reseal a modified blob with the right key: what the MAC cannot catch
 * (another pack's store, malformed entries from a buggy writer) is still
 * refused. */
static void reseal(uint8_t *blob, size_t len, const uint8_t *key)
{
    assert_int_equal(tr_hmac_sha256(key, 32, blob, len - 32, blob + len - 32), TR_OK);
}

static void test_blob_other_pack_and_bad_entries(void **state)
{
    box a, other;
    rand_pack(&a, 0, 0, "m", 51);
    rand_pack(&other, 0, 0, "x", 52);
    void *m1, *m2, *m3;
    tr_local *s = new_store(&a, 8, &m1), *t = new_store(&a, 8, &m2),
             *o = new_store(&other, 8, &m3);
    fill(s, 2, 3);
    fill(t, 1, 4);
    size_t len, tl;
    uint8_t *blob = export_blob(s, key1, &len), *before = export_blob(t, key1, &tl);
    /* A store of another pack (model names differ) refuses a sealed blob. */
    assert_int_equal(tr_local_import(o, key1, blob, len), TR_E_LOCAL_PACK);
    uint8_t *x = malloc(len);
    /* Fingerprints. */
    for (unsigned off = 24; off < 40; off += 8) {
        memcpy(x, blob, len);
        x[off] ^= 1;
        reseal(x, len, key1);
        assert_int_equal(tr_local_import(t, key1, x, len), TR_E_LOCAL_PACK);
    }
    /* Entries: a -128, an all-zero embedding, a mean out of [0,1], a mean
     * without adds, a stamp past the clock. Entry 0 starts at 64. */
    const size_t e0 = 64, mo = e0 + D; /* model 0's (adds, mean) */
    struct {
        size_t off;
        int kind;
    } edits[] = {{e0 + 1, 0}, {e0, 1}, {mo, 2}, {mo, 3}, {e0 + D + 8 * M, 4}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(x, blob, len);
        switch (edits[i].kind) {
        case 0:
            x[edits[i].off] = 0x80;
            break;
        case 1:
            memset(x + e0, 0, D);
            break;
        case 2:
            tr_st32(x + mo, 1);
            tr_stf32(x + mo + 4, 1.5f);
            break;
        case 3:
            tr_st32(x + mo, 0);
            tr_stf32(x + mo + 4, 0.5f);
            break;
        case 4:
            tr_st64(x + edits[i].off, 1000);
            break;
        }
        reseal(x, len, key1);
        assert_int_equal(tr_local_import(t, key1, x, len), TR_E_LOCAL_BLOB);
    }
    /* Reserved header bytes. */
    memcpy(x, blob, len);
    x[60] = 1;
    reseal(x, len, key1);
    assert_int_equal(tr_local_import(t, key1, x, len), TR_E_LOCAL_BLOB);
    assert_true(same_state(t, before, tl));
    /* The unmodified resealed blob is accepted: the edits were the cause. */
    memcpy(x, blob, len);
    reseal(x, len, key1);
    assert_int_equal(tr_local_import(t, key1, x, len), TR_OK);
    free(x);
    free(blob);
    free(before);
    free(m1);
    free(m2);
    free(m3);
    free_box(&a);
    free_box(&other);
}

/* The level term on a hand-made store: exact arithmetic of
 * sum / (n + s) on a model's estimate, clamped, only the pack's share
 * of an estimate shifted, NaN estimates counted as entries but not as
 * residuals, the option's checks, and the route's estimate output. */
static tr_status route_est(box *b, const int8_t *q, const tr_route_opts *o, tr_result *res,
                           float *pred, float *est, size_t est_cap)
{
    const tr_query qq = tr_query_i8("rand", q, D);
    const tr_route_out out = {pred, M, NULL, 0, est, est_cap};
    return tr_route(b->r, b->c, &qq, o, res, &out);
}

/* A pack of more models than one 64-bit word of an entry's known set:
 * the route walks only the models an entry knows, across words, in the
 * order a loop over every model adds them; tr_route_out.estimate is the
 * pack's own estimate bit for bit while the prediction moves; an imported
 * store knows the same models. */
enum { MW = 70 };
static void test_known_models_across_words(void **state)
{
    static int8_t refs[N * D];
    static float scores[N * MW];
    static char names[MW][16];
    static trh_pack_model models[MW];
    rng_state = 4242;
    for (int i = 0; i < N * D; i++)
        refs[i] = (int8_t)((int)(rnd() % 201) - 100);
    for (int i = 0; i < N * MW; i++)
        scores[i] = (float)(rnd() % 3 == 0);
    for (int m = 0; m < MW; m++) {
        snprintf(names[m], sizeof names[m], "w%d", m);
        models[m] = (trh_pack_model){names[m], (float)(1 + m), m < 2 ? TR_DEVICE : TR_CLOUD};
    }
    trh_pack_spec sp = {.security_counter = 1, .embedder_name = "rand", .dim = D, .n_refs = N,
                        .n_models = MW, .models = models, .refs = refs, .scores = scores,
                        .k = K, .prior_strength = 2.0f};
    trh_pack_layout lay;
    box b;
    b.pack = (trh_buf){0};
    assert_int_equal(trh_pack_write(&sp, &b.pack, &lay), 0);
    assert_int_equal(trh_pack_sign(&b.pack, KEY), 0);
    open_box(&b);
    void *m1, *m2;
    tr_local *s = new_store(&b, 4, &m1), *t = new_store(&b, 4, &m2);
    int8_t q[D];
    rand_query(q);
    const tr_query qq = tr_query_i8("rand", q, D);
    float p0[MW], p1[MW], e1[MW];
    tr_result r;
    const tr_route_out out0 = {p0, MW, NULL, 0, NULL, 0};
    assert_int_equal(tr_route(b.r, b.c, &qq, NULL, &r, &out0), TR_OK);
    /* The query itself (distance 0: inside any radius) knows models 3,
     * 64 and 69: one in the first word, two in the second. */
    const uint32_t known[] = {69, 3, 64};
    const float outcome[] = {1.0f, 0.0f, 1.0f};
    for (int i = 0; i < 3; i++)
        assert_int_equal(tr_local_add(s, q, D, known[i], outcome[i]), TR_OK);
    const float a = 2.0f, w = 3.0f;
    tr_route_opts o = {.local = s, .local_weight = w};
    const tr_route_out out1 = {p1, MW, NULL, 0, e1, MW};
    assert_int_equal(tr_route(b.r, b.c, &qq, &o, &r, &out1), TR_OK);
    assert_memory_equal(p0, e1, sizeof p0); /* the pack's own estimate */
    int moved = 0;
    for (uint32_t m = 0; m < MW; m++) {
        float y = -1.0f;
        for (int i = 0; i < 3; i++)
            if (known[i] == m)
                y = outcome[i];
        if (y < 0.0f) {
            assert_memory_equal(&p0[m], &p1[m], sizeof(float));
            continue;
        }
        assert_float_equal(p1[m], (p0[m] * (K + a) + w * y) / (K + a + w), 1e-5);
        moved += p1[m] != p0[m];
    }
    assert_true(moved >= 2); /* an outcome equal to the estimate may not move it */
    /* Export and import: the imported store knows the same three models. */
    size_t len;
    uint8_t *blob = export_blob(s, key1, &len);
    assert_int_equal(tr_local_import(t, key1, blob, len), TR_OK);
    o.local = t;
    float p2[MW];
    const tr_route_out out2 = {p2, MW, NULL, 0, NULL, 0};
    assert_int_equal(tr_route(b.r, b.c, &qq, &o, &r, &out2), TR_OK);
    assert_memory_equal(p1, p2, sizeof p1);
    free(blob);
    free(m1);
    free(m2);
    free_box(&b);
}

static void test_level_term(void **state)
{
    box b;
    rand_pack(&b, 0, 1, "m", 61);
    void *mem;
    tr_local *s = new_store(&b, 16, &mem);
    int8_t q[D], far[D], far2[D];
    rand_query(q);
    for (int d = 0; d < D; d++) /* cosine distance 2: outside any radius */
        far[d] = (int8_t)-q[d];
    memcpy(far2, far, D);
    far2[0] = (int8_t)(far2[0] > 0 ? far2[0] - 1 : far2[0] + 1);
    tr_result r0, r1;
    float p0[M], p1[M], e1[M];
    assert_int_equal(route(&b, q, NULL, &r0, p0), TR_OK);
    /* Empty store, the term on: bit for bit, and the estimate is predicted. */
    tr_route_opts o = {.local = s, .local_weight = 2.0f, .local_level = 3.0f};
    assert_int_equal(route_est(&b, q, &o, &r1, p1, e1, M), TR_OK);
    assert_memory_equal(p0, p1, sizeof p0);
    assert_memory_equal(p0, e1, sizeof p0);
    assert_int_equal(route_est(&b, q, &o, &r1, p1, e1, M - 1), TR_E_OUTPUT_TOO_SMALL);
    /* Arguments: the estimate is in [0,1] or NaN. */
    assert_int_equal(tr_local_add_est(s, far, D, 1, 1.0f, 1.5f), TR_E_ARG);
    assert_int_equal(tr_local_add_est(s, far, D, 1, 1.0f, -0.25f), TR_E_ARG);
    assert_int_equal(tr_local_add_est(s, far, D, 1, 1.0f, INFINITY), TR_E_ARG);
    tr_local_stats st;
    assert_int_equal(tr_local_stats_get(s, &st), TR_OK);
    assert_int_equal(st.adds, 0);
    /* A NaN estimate: the entry counts, the level does not move. */
    float lv = -1.0f;
    assert_int_equal(tr_local_add_est(s, far, D, 1, 1.0f, NAN), TR_OK);
    assert_int_equal(tr_local_level(s, 1, 3.0f, &lv), TR_OK);
    assert_true(lv == 0.0f);
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    assert_memory_equal(p0, p1, sizeof p0);
    /* One residual 1 - 0.25 = 0.75 far from q: level 0.75 / (1 + 3). */
    assert_int_equal(tr_local_add_est(s, far, D, 1, 1.0f, 0.25f), TR_OK);
    assert_int_equal(tr_local_level(s, 1, 3.0f, &lv), TR_OK);
    assert_true(lv == 0.1875f);
    assert_int_equal(route_est(&b, q, &o, &r1, p1, e1, M), TR_OK);
    assert_memory_equal(p0, e1, sizeof p0); /* the estimate before the term */
    for (int m = 0; m < M; m++) {
        float want = m == 1 ? p0[1] + 0.1875f : p0[m];
        want = want > 1.0f ? 1.0f : want;
        assert_memory_equal(&p1[m], &want, sizeof want);
    }
    /* A second residual 0 - 0.5: sum 0.25 over 2, level 0.25 / (2 + 2). */
    assert_int_equal(tr_local_add_est(s, far2, D, 1, 0.0f, 0.5f), TR_OK);
    assert_int_equal(tr_local_level(s, 1, 2.0f, &lv), TR_OK);
    assert_true(lv == 0.0625f);
    o.local_level = 2.0f;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    const float want1 = p0[1] + 0.0625f > 1.0f ? 1.0f : p0[1] + 0.0625f;
    assert_memory_equal(&p1[1], &want1, sizeof want1);
    /* The default pseudo-count, and off. */
    o.local_level = 0.0f;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    const float sd = TR_LOCAL_LEVEL_DEFAULT; /* off (< 0) or a pseudo-count */
    const float wantd = sd > 0.0f ? fminf(1.0f, p0[1] + 0.25f / (2.0f + sd)) : p0[1];
    assert_memory_equal(&p1[1], &wantd, sizeof wantd);
    o.local_level = TR_LOCAL_LEVEL_OFF;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    assert_memory_equal(p0, p1, sizeof p0);
    o.local_level = NAN;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_E_ARG);
    o.local_level = INFINITY;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_E_ARG);
    assert_int_equal(tr_local_level(s, 1, 0.0f, &lv), TR_E_ARG);
    assert_int_equal(tr_local_level(s, M, 1.0f, &lv), TR_E_ARG);
    /* Clamped: residuals of +1 on model 0 with a tiny pseudo-count. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(tr_local_add_est(s, far, D, 0, 1.0f, 0.0f), TR_OK);
    o.local_level = 1e-6f;
    assert_int_equal(route(&b, q, &o, &r1, p1), TR_OK);
    if (p0[0] > 0.0f) /* p0 + ~1 is past 1 */
        assert_true(p1[0] == 1.0f);
    /* A local entry at q itself for model 2 (weight w) and a residual
     * -0.5 for it: only the pack's share (K + a) / (K + a + w) of the
     * estimate moves by the level -0.5 / (1 + 1). */
    assert_int_equal(tr_local_add(s, q, D, 2, 1.0f), TR_OK);
    assert_int_equal(tr_local_add_est(s, far, D, 2, 0.0f, 0.5f), TR_OK);
    o.local_level = 1.0f;
    const float a = 2.0f, w = 2.0f;
    assert_int_equal(route_est(&b, q, &o, &r1, p1, e1, M), TR_OK);
    const float mixed = (p0[2] * (K + a) + w * 1.0f) / (K + a + w);
    assert_float_equal(p1[2], fmaxf(0.0f, mixed + (K + a) / (K + a + w) * -0.25f), 1e-5);
    assert_memory_equal(&e1[2], &p0[2], sizeof(float)); /* the pack's own */
    /* The residuals persist: a round trip routes the same. */
    void *m2;
    tr_local *t = new_store(&b, 16, &m2);
    size_t len;
    uint8_t *blob = export_blob(s, key1, &len);
    assert_int_equal(tr_local_import(t, key1, blob, len), TR_OK);
    float p2[M], l2 = 0.0f;
    tr_route_opts ot = o;
    ot.local = t;
    assert_int_equal(route(&b, q, &ot, &r1, p2), TR_OK);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_int_equal(tr_local_level(t, 1, 2.0f, &l2), TR_OK);
    assert_true(l2 == 0.0625f);
    /* A version 1 blob (no level block) is migrated: entries, no residuals. */
    uint8_t *v1 = malloc(len);
    const size_t l1 = len - 8 * M;
    memcpy(v1, blob, l1 - 32);
    tr_st32(v1 + 4, 1);
    reseal(v1, l1, key1);
    assert_int_equal(tr_local_import(t, key1, v1, l1), TR_OK);
    assert_int_equal(tr_local_level(t, 1, 2.0f, &l2), TR_OK);
    assert_true(l2 == 0.0f);
    tr_local_stats sa, sb;
    assert_int_equal(tr_local_stats_get(s, &sa), TR_OK);
    assert_int_equal(tr_local_stats_get(t, &sb), TR_OK);
    assert_memory_equal(&sa, &sb, sizeof sa);
    /* ... but a version 1 header on a version 2 body, or version 3, is not. */
    memcpy(v1, blob, len);
    tr_st32(v1 + 4, 1);
    reseal(v1, len, key1);
    assert_int_equal(tr_local_import(t, key1, v1, len), TR_E_LOCAL_BLOB);
    tr_st32(v1 + 4, 3);
    reseal(v1, len, key1);
    assert_int_equal(tr_local_import(t, key1, v1, len), TR_E_LOCAL_BLOB);
    /* A sealed level block no writer of this library makes: a sum beyond
     * its count, a sum without a count, more residuals than adds. */
    const size_t lb = len - 32 - 8 * M; /* model 0's (count, sum) */
    for (int kind = 0; kind < 3; kind++) {
        memcpy(v1, blob, len);
        if (kind == 0)
            tr_stf32(v1 + lb + 4, 4.5f); /* model 0: 4 residuals */
        else if (kind == 1)
            tr_st32(v1 + lb, 0);
        else
            tr_st32(v1 + lb, 1000);
        reseal(v1, len, key1);
        assert_int_equal(tr_local_import(t, key1, v1, len), TR_E_LOCAL_BLOB);
    }
    free(v1);
    free(blob);
    free(m2);
    free(mem);
    free_box(&b);
}

int main(int argc, char **argv)
{
    fixture_pack_path = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_arguments),
        cmocka_unit_test(test_no_evidence_is_bit_identical),
        cmocka_unit_test(test_fixture_pack_identical),
        cmocka_unit_test(test_estimate_formula_and_updates),
        cmocka_unit_test(test_known_models_across_words),
        cmocka_unit_test(test_evidence_turns_the_decision),
        cmocka_unit_test(test_governed_route_reads_the_store),
        cmocka_unit_test(test_eviction_oldest_first),
        cmocka_unit_test(test_pack_binding),
        cmocka_unit_test(test_blob_round_trip),
        cmocka_unit_test(test_blob_tamper),
        cmocka_unit_test(test_blob_other_pack_and_bad_entries),
        cmocka_unit_test(test_level_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
