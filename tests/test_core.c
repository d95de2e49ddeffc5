/* Core tests: pack round trip, verification failures (each with its own
 * error), swap-only-after-verify, exact arena size, and routing equal to an
 * independent double-precision brute-force reference. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/sha256.h>

#include "keys.h"
#include "packwriter.h"
#include "prefilter_choice.h"
#include "tinyroute.h"
#include "tr_cluster.h"
#include "tr_format.h"
#include "tr_knn.h"
#include "trh_fit.h"

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"
#define OTHER_KEY "fixtures/keys/test-other.key"
#define OTHER_PUB "fixtures/keys/test-other.pub"

enum { N = 300, DIM = 37, M = 5 };

typedef struct fixture {
    int8_t refs[N * DIM];
    float scores[N * M];
    trh_pack_model models[M];
    trh_buf pack;        /* signed with KEY */
    uint8_t *aligned;   /* 64-aligned copy of pack */
    tr_pubkey pub, other;
} fixture;

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char *names[M] = {"tiny-device", "small-cloud", "mid-cloud", "big-cloud", "also-device"};
static const double costs[M] = {1, 8, 30, 70, 3};

static void make_data(fixture *f, int with_unknown_and_fractions)
{
    for (size_t i = 0; i < N * DIM; i++)
        f->refs[i] = (int8_t)((int)(rnd() % 255) - 127);
    /* Two duplicate rows: exact ties must go to the lower index. */
    memcpy(f->refs + 7 * DIM, f->refs + 3 * DIM, DIM);
    for (size_t i = 0; i < N; i++)
        for (int m = 0; m < M; m++) {
            float v = (float)(rnd() % 100 < (uint32_t)(20 + 15 * m));
            if (with_unknown_and_fractions) {
                uint32_t r = rnd() % 20;
                if (r == 0)
                    v = NAN;
                else if (r == 1)
                    v = (float)(rnd() % 11) / 10.0f;
            }
            f->scores[i * M + m] = v;
        }
    for (int m = 0; m < M; m++)
        f->models[m] = (trh_pack_model){names[m], costs[m], (m == 0 || m == 4) ? TR_DEVICE : TR_CLOUD};
}

static trh_pack_spec spec_of(fixture *f)
{
    return (trh_pack_spec){.security_counter = 5, .created_unix = 1700000000,
                          .embedder_name = "test-embedder", .dim = DIM, .n_refs = N,
                          .n_models = M, .models = f->models, .refs = f->refs,
                          .scores = f->scores, .k = 10, .lambda = 0.0f};
}

static uint8_t *aligned_copy(const trh_buf *b)
{
    uint8_t *p = NULL;
    assert_int_equal(posix_memalign((void **)&p, 64, b->len + 64), 0);
    memcpy(p, b->data, b->len);
    return p;
}

static void build(fixture *f, const trh_pack_spec *s, const char *key)
{
    trh_pack_layout lay;
    trh_buf_free(&f->pack);
    assert_int_equal(trh_pack_write(s, &f->pack, &lay), 0);
    assert_int_equal(trh_pack_sign(&f->pack, key), 0);
    free(f->aligned);
    f->aligned = aligned_copy(&f->pack);
}

static int setup_with(void **state, int with_unknown_and_fractions)
{
    fixture *f = calloc(1, sizeof *f);
    make_data(f, with_unknown_and_fractions);
    trh_pack_spec s = spec_of(f);
    build(f, &s, KEY);
    assert_int_equal(trh_key_load_public(PUB, &f->pub), 0);
    assert_int_equal(trh_key_load_public(OTHER_PUB, &f->other), 0);
    *state = f;
    return 0;
}

static int setup_mixed(void **state) { return setup_with(state, 1); }
static int setup_binary(void **state) { return setup_with(state, 0); }

static int teardown(void **state)
{
    fixture *f = *state;
    trh_buf_free(&f->pack);
    free(f->aligned);
    free(f);
    return 0;
}

/* What an integrator keeps: the served view (r, NULL before the first
 * open), two view buffers (a new view goes into the one not served, then
 * the pointer flips: the swap), and one context sized up front. */
#include "view_box.h"

static tr_status apply_into(view_box *b, const uint8_t *p, size_t len, const tr_trust *t)
{
    const tr_pack *v = NULL;
    tr_status st = tr_pack_apply_delta(b->r, p, len, t, b->mem[b->cur ^ 1], tr_pack_size(), &v);
    return serve(b, st, v);
}

static tr_status drop_into(view_box *b)
{
    const tr_pack *v = NULL;
    tr_status st = tr_pack_drop_delta(b->r, b->mem[b->cur ^ 1], tr_pack_size(), &v);
    return serve(b, st, v);
}

static tr_status load(view_box *b, const uint8_t *p, size_t len, const tr_pubkey *k,
                      uint64_t floor_, uint64_t now)
{
    tr_trust t = {.keys = k, .n_keys = 1, .min_security_counter = floor_, .now_unix = now};
    return open_into(b, p, len, &t);
}

/* A route on the served view. These tests' arrays (penalties, masks,
 * predictions) hold n_models entries; tests/test_api.c checks the lengths. */
static tr_status route_q(view_box *b, const tr_query *q, const tr_route_opts *o,
                         tr_result *res, float *pred)
{
    tr_pack_info info = {0};
    tr_pack_get_info(b->r, &info);
    tr_route_opts tmp;
    if (o) {
        tmp = *o;
        tmp.penalty_count = tmp.penalty_count ? tmp.penalty_count : info.n_models;
        tmp.available_bits = tmp.available_bits ? tmp.available_bits : info.n_models;
        o = &tmp;
    }
    tr_route_out out = {pred, info.n_models, NULL, 0, NULL, 0};
    return tr_route(b->r, b->c, q, o, res, &out);
}

static tr_status route_i8(view_box *b, const char *emb, const int8_t *e, uint32_t dim,
                          const tr_route_opts *o, tr_result *res, float *pred)
{
    const tr_query q = tr_query_i8(emb, e, dim);
    return route_q(b, &q, o, res, pred);
}

static tr_status route_f32(view_box *b, const char *emb, const float *e, uint32_t dim,
                           const tr_route_opts *o, tr_result *res, float *pred)
{
    const tr_query q = tr_query_f32(emb, e, dim);
    return route_q(b, &q, o, res, pred);
}

static tr_status route_text(view_box *b, const char *t, size_t len, const tr_route_opts *o,
                            tr_result *res, float *pred)
{
    const tr_query q = tr_query_text(t, len);
    return route_q(b, &q, o, res, pred);
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_int_equal(info.format_version, TR_PACK_VERSION);
    assert_int_equal(info.security_counter, 5);
    assert_int_equal(info.created_unix, 1700000000);
    assert_int_equal(info.dim, DIM);
    assert_int_equal(info.n_refs, N);
    assert_int_equal(info.n_models, M);
    assert_int_equal(info.default_k, 10);
    assert_string_equal(info.embedder, "test-embedder");
    assert_false(info.has_text_embedder);
    for (uint32_t m = 0; m < M; m++) {
        tr_model_info mi;
        assert_int_equal(tr_pack_get_model(b.r, m, &mi), TR_OK);
        assert_string_equal(mi.name, names[m]);
        assert_true(fabs(mi.cost - costs[m]) < 1e-6);
        assert_true(fabs(mi.cost_norm - (costs[m] - 1) / 69.0) < 1e-6);
        double sum = 0;
        int known = 0;
        for (int i = 0; i < N; i++)
            if (!isnan(f->scores[i * M + m])) {
                sum += f->scores[i * M + m];
                known++;
            }
        assert_true(fabs(mi.prior - sum / known) < 1e-6);
        assert_int_equal(mi.where, (m == 0 || m == 4) ? TR_DEVICE : TR_CLOUD);
    }
    assert_int_equal(tr_pack_get_model(b.r, M, &(tr_model_info){0}), TR_E_ARG);
    /* The embedding must round-trip: route the stored rows, nearest = self. */
    tr_result res;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(route_i8(&b, "test-embedder", f->refs + i * DIM, DIM, NULL, &res, NULL), TR_OK);
        assert_true(res.nearest_distance < 1e-5f);
    }
    free_box(&b);
}

/* ---- the independent reference: double precision, sort everything ---- */

typedef struct ref_nb {
    double cos;
    int idx;
} ref_nb;

static int cmp_nb(const void *a, const void *b)
{
    const ref_nb *x = a, *y = b;
    if (x->cos != y->cos)
        return x->cos > y->cos ? -1 : 1;
    return x->idx - y->idx;
}

static int ref_route(const fixture *f, const int8_t *q, int k, double lambda, int offline,
                     const uint8_t *mask, int weighted, double *pred)
{
    static ref_nb all[N];
    double qn = 0;
    for (int d = 0; d < DIM; d++)
        qn += (double)q[d] * q[d];
    for (int i = 0; i < N; i++) {
        double dot = 0, rn = 0;
        for (int d = 0; d < DIM; d++) {
            dot += (double)q[d] * f->refs[i * DIM + d];
            rn += (double)f->refs[i * DIM + d] * f->refs[i * DIM + d];
        }
        all[i] = (ref_nb){dot / sqrt(qn * rn), i};
    }
    qsort(all, N, sizeof *all, cmp_nb);
    /* scikit-learn's weights='distance' (distance <= 1e-6 is exact). */
    double w[TR_K_MAX];
    int exact = 0;
    for (int j = 0; j < k; j++)
        exact |= 1 - all[j].cos <= 1e-6;
    for (int j = 0; j < k; j++)
        w[j] = !weighted ? 1 : exact ? (1 - all[j].cos <= 1e-6) : 1 / (1 - all[j].cos);
    int best = -1;
    double best_u = 0;
    for (int m = 0; m < M; m++) {
        double sum = 0, prior = 0, wsum = 0;
        int known = 0, pk = 0;
        for (int j = 0; j < k; j++) {
            float v = f->scores[all[j].idx * M + m];
            if (!isnan(v)) {
                sum += w[j] * roundf(v * 255.0f) / 255.0; /* the pack stores 1/255 steps */
                wsum += w[j];
                known++;
            }
        }
        for (int i = 0; i < N; i++)
            if (!isnan(f->scores[i * M + m])) {
                prior += f->scores[i * M + m];
                pk++;
            }
        pred[m] = known && wsum > 0 ? sum / wsum : prior / pk;
        int dev = f->models[m].where == TR_DEVICE;
        if ((offline && !dev) || (mask && !(mask[m / 8] >> (m % 8) & 1)))
            continue;
        double u = pred[m] - lambda * (costs[m] - 1) / 69.0;
        int bdev = best >= 0 && f->models[best].where == TR_DEVICE;
        if (best < 0 || u > best_u + 1e-9 ||
            (fabs(u - best_u) <= 1e-9 && ((dev && !bdev) || (dev == bdev && costs[m] < costs[best])))) {
            best = m;
            best_u = u;
        }
    }
    return best;
}

static void check_against_reference(fixture *f)
{
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    static const int ks[] = {1, 5, 10, 50, TR_K_MAX};
    static const double lambdas[] = {0, 0.05, 0.3, 2};
    int8_t q[DIM];
    for (int t = 0; t < 200; t++) {
        for (int d = 0; d < DIM; d++)
            q[d] = (int8_t)((int)(rnd() % 255) - 127);
        int k = ks[t % 5];
        double lambda = lambdas[(t / 5) % 4];
        int offline = t % 7 == 0;
        uint8_t mask[1] = {(uint8_t)(0x1F & ~(1u << (t % M)))};
        const uint8_t *mp = t % 3 == 0 ? mask : NULL;
        double pred_ref[M];
        int weighted = (t / 20) % 2;
        int want = ref_route(f, q, k, lambda, offline, mp, weighted, pred_ref);
        tr_route_opts o = {.k = (uint32_t)k, .lambda = (float)lambda, .available = mp,
                           .offline = offline, .distance_weighted = weighted};
        tr_result res;
        float pred[M];
        assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &o, &res, pred), TR_OK);
        for (int m = 0; m < M; m++)
            if (!(fabs(pred[m] - pred_ref[m]) < (weighted ? 1e-5 : 1e-6)))
                fail_msg("query %d model %d: predicted %.9f, reference %.9f (k=%d)", t, m, pred[m], pred_ref[m], k);
        assert_int_equal(res.model, want);
        assert_int_equal(res.k, (uint32_t)k);
        assert_string_equal(res.model_name, names[want]);
        assert_true(fabs(res.lambda - lambda) < 1e-7);
    }
    free_box(&b);
}

static void test_route_matches_reference_mixed(void **state) { check_against_reference(*state); }
static void test_route_matches_reference_binary(void **state) { check_against_reference(*state); }

static void test_duplicate_rows_tie_to_lower_index(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    /* Query = row 7 = row 3: both at distance 0; with k=1 row 3 must win,
     * so the prediction equals row 3's labels. */
    tr_route_opts o = {.k = 1, .lambda = TR_LAMBDA_ZERO, .available = NULL, .offline = 0, .exact = 0};
    tr_result res;
    float pred[M];
    assert_int_equal(route_i8(&b, "test-embedder", f->refs + 7 * DIM, DIM, &o, &res, pred), TR_OK);
    for (int m = 0; m < M; m++) {
        float v = f->scores[3 * M + m];
        if (!isnan(v))
            assert_true(fabs(pred[m] - roundf(v * 255) / 255) < 1e-6);
    }
    free_box(&b);
}

static void test_ties_go_to_device(void **state)
{
    fixture *f = *state;
    /* All models always right: every utility ties at lambda 0. */
    for (int i = 0; i < N * M; i++)
        f->scores[i] = 1.0f;
    trh_pack_spec s = spec_of(f);
    build(f, &s, KEY);
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_result res;
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, NULL, &res, NULL), TR_OK);
    assert_int_equal(res.model, 0); /* device, and the cheaper of the two */
    assert_int_equal(res.where, TR_DEVICE);
    /* With model 0 masked out, the other device model wins the tie. */
    uint8_t mask[1] = {0x1E};
    tr_route_opts o = {.k = 0, .lambda = TR_LAMBDA_DEFAULT, .available = mask, .offline = 0, .exact = 0};
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, &o, &res, NULL), TR_OK);
    assert_int_equal(res.model, 4);
    /* Offline with both device models masked: nothing left. */
    uint8_t mask2[1] = {0x0E};
    tr_route_opts o2 = {.k = 0, .lambda = TR_LAMBDA_DEFAULT, .available = mask2, .offline = 1, .exact = 0};
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, &o2, &res, NULL),
                     TR_E_NO_MODEL_AVAILABLE);
    free_box(&b);
}

static void test_verify_errors(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    const size_t len = f->pack.len;
    uint64_t signed_bytes = tr_ld64(f->pack.data + TR_H_SIGNED_BYTES);
    uint8_t *p = aligned_copy(&f->pack);

    /* Wrong key: signed by another key than the trusted one. */
    assert_int_equal(load(&b, p, len, &f->other, 0, 0), TR_E_KEY_UNKNOWN);
    /* Truncated: cut in the sections, and in the trailer. */
    assert_int_equal(load(&b, p, len - 1, &f->pub, 0, 0), TR_E_TRUNCATED);
    assert_int_equal(load(&b, p, (size_t)signed_bytes - 100, &f->pub, 0, 0), TR_E_TRUNCATED);
    assert_int_equal(load(&b, p, 50, &f->pub, 0, 0), TR_E_TRUNCATED);
    /* No signature at all. */
    assert_int_equal(load(&b, p, (size_t)signed_bytes, &f->pub, 0, 0), TR_E_NO_SIGNATURE);
    /* One flipped byte in the payload. */
    p[signed_bytes / 2] ^= 0x01;
    assert_int_equal(load(&b, p, len, &f->pub, 0, 0), TR_E_SIGNATURE);
    p[signed_bytes / 2] ^= 0x01;
    /* A flipped magic byte. */
    p[0] ^= 0x20;
    assert_int_equal(load(&b, p, len, &f->pub, 0, 0), TR_E_BAD_MAGIC);
    p[0] ^= 0x20;
    /* Something appended after the signature. */
    uint8_t *q = NULL;
    assert_int_equal(posix_memalign((void **)&q, 64, 2 * len), 0);
    memcpy(q, p, len);
    memcpy(q + len, p + signed_bytes, len - signed_bytes);
    assert_int_equal(load(&b, q, len + (len - signed_bytes), &f->pub, 0, 0), TR_E_TRAILING_DATA);
    free(q);
    /* Key id forged to name the trusted key, signature by the other key. */
    trh_buf other = {0};
    trh_pack_layout lay;
    trh_pack_spec s = spec_of(f);
    assert_int_equal(trh_pack_write(&s, &other, &lay), 0);
    assert_int_equal(trh_pack_sign(&other, OTHER_KEY), 0);
    uint8_t id[32];
    trh_key_id(&f->pub, id);
    memcpy(other.data + signed_bytes + 8, id, 32);
    uint8_t *o = aligned_copy(&other);
    assert_int_equal(load(&b, o, other.len, &f->pub, 0, 0), TR_E_SIGNATURE);
    free(o);
    trh_buf_free(&other);
    /* Key rotation: both keys trusted, either signer accepted; a revoked
     * key id is refused even while its key is still in the trusted list. */
    tr_pubkey both[2] = {f->other, f->pub};
    tr_trust two = {.keys = both, .n_keys = 2, .min_security_counter = 0, .now_unix = 0};
    assert_int_equal(open_into(&b, p, len, &two), TR_OK);
    uint8_t gone[1][32];
    trh_key_id(&f->pub, gone[0]);
    tr_trust revoked = {.keys = both, .n_keys = 2, .revoked = (const uint8_t(*)[32])gone,
                        .n_revoked = 1};
    assert_int_equal(open_into(&b, p, len, &revoked), TR_E_KEY_REVOKED);
    /* Rollback and expiry. */
    assert_int_equal(load(&b, p, len, &f->pub, 6, 0), TR_E_ROLLBACK);
    assert_int_equal(load(&b, p, len, &f->pub, 5, 0), TR_OK);
    /* Unaligned buffer. */
    assert_int_equal(load(&b, p + 1, len, &f->pub, 0, 0), TR_E_ARG);
    free(p);
    free_box(&b);
}

static void test_every_flipped_byte_is_rejected(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    uint8_t *p = aligned_copy(&f->pack);
    const size_t len = f->pack.len;
    /* Every byte of the header, the table and the trailer; every 97th byte
     * of the sections (a full sweep is issue 7's fuzz matrix). */
    size_t tested = 0;
    uint64_t signed_bytes = tr_ld64(f->pack.data + TR_H_SIGNED_BYTES);
    for (size_t i = 0; i < len; i++) {
        if (i >= 512 && i < signed_bytes && i % 97)
            continue;
        p[i] ^= 0x80;
        tr_status st = load(&b, p, len, &f->pub, 0, 0);
        p[i] ^= 0x80;
        if (st == TR_OK)
            fail_msg("flipping byte %zu was accepted", i);
        tested++;
    }
    assert_true(tested > 500);
    assert_int_equal(load(&b, p, len, &f->pub, 0, 0), TR_OK);
    free(p);
    free_box(&b);
}

static void test_expiry(void **state)
{
    fixture *f = *state;
    trh_pack_spec s = spec_of(f);
    s.expires_unix = 1800000000;
    build(f, &s, KEY);
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 1800000000), TR_E_EXPIRED);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 1799999999), TR_OK);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    free_box(&b);
}

static void test_keeps_serving_after_reject(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    tr_result res;
    /* Nothing opened yet: no view to route with. */
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info before, after;
    tr_pack_get_info(b.r, &before);
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, NULL, &res, NULL), TR_OK);
    uint32_t model = res.model;
    /* Pack B: a newer counter but a broken signature; then the right
     * signature but rolled back. Both rejected; A keeps serving. */
    uint8_t *bad = aligned_copy(&f->pack);
    bad[300] ^= 1;
    assert_int_equal(load(&b, bad, f->pack.len, &f->pub, 0, 0), TR_E_SIGNATURE);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 99, 0), TR_E_ROLLBACK);
    tr_pack_get_info(b.r, &after);
    assert_memory_equal(before.pack_hash, after.pack_hash, 32);
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, NULL, &res, NULL), TR_OK);
    assert_int_equal(res.model, model);
    free(bad);
    free_box(&b);
}

static void test_ctx_size_is_exact(void **state)
{
    fixture *f = *state;
    size_t need = tr_ctx_size(DIM, M, 0);
    void *a;
    assert_int_equal(posix_memalign(&a, 64, need), 0);
    tr_ctx *c;
    assert_int_equal(tr_ctx_init(a, need - 1, DIM, M, 0, &c), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_ctx_init((uint8_t *)a + 1, need - 1, DIM, M, 0, &c), TR_E_ARG);
    assert_int_equal(tr_ctx_init(a, need, DIM, M, 0, &c), TR_OK);
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_result res;
    const tr_query q = tr_query_i8("test-embedder", f->refs, DIM);
    assert_int_equal(tr_route(b.r, c, &q, NULL, &res, NULL), TR_OK);
    /* A context carved for fewer models than the view serves. */
    assert_int_equal(tr_ctx_init(a, need, DIM, M - 1, 0, &c), TR_OK);
    assert_int_equal(tr_route(b.r, c, &q, NULL, &res, NULL), TR_E_ARENA_TOO_SMALL);
    free(a);
    /* The view: tr_pack_size() bytes, 16-aligned. */
    void *v;
    const tr_pack *p;
    tr_trust t = {.keys = &f->pub, .n_keys = 1};
    assert_int_equal(posix_memalign(&v, 64, tr_pack_size() + 16), 0);
    assert_int_equal(tr_pack_open(v, tr_pack_size() - 1, f->aligned, f->pack.len, &t, &p),
                     TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_pack_open((uint8_t *)v + 8, tr_pack_size(), f->aligned, f->pack.len, &t, &p),
                     TR_E_ARG);
    assert_int_equal(tr_pack_open(v, tr_pack_size(), f->aligned, f->pack.len, &t, &p), TR_OK);
    free(v);
    free_box(&b);
    /* Grows with the dimension and the model count. */
    assert_true(tr_ctx_size(768, 32, 0) > tr_ctx_size(100, 32, 0));
    assert_true(tr_ctx_size(100, 64, 0) > tr_ctx_size(100, 32, 0));
}

static void test_caller_embedding_checks(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    float v[DIM + 1];
    for (int d = 0; d <= DIM; d++)
        v[d] = (float)f->refs[d] * 0.01f;
    tr_result res;
    float pred[M];
    assert_int_equal(route_f32(&b, "test-embedder", v, DIM, NULL, &res, pred), TR_OK);
    assert_true(res.nearest_distance < 1e-4f); /* row 0, rescaled */
    assert_int_equal(route_f32(&b, "other", v, DIM, NULL, &res, pred), TR_E_EMBEDDER_MISMATCH);
    assert_int_equal(route_f32(&b, "test-embedder", v, DIM + 1, NULL, &res, pred), TR_E_DIM_MISMATCH);
    assert_int_equal(route_f32(&b, "test-embedder", v, DIM - 1, NULL, &res, pred), TR_E_DIM_MISMATCH);
    v[5] = NAN;
    assert_int_equal(route_f32(&b, "test-embedder", v, DIM, NULL, &res, pred), TR_E_NOT_FINITE);
    v[5] = INFINITY;
    assert_int_equal(route_f32(&b, "test-embedder", v, DIM, NULL, &res, pred), TR_E_NOT_FINITE);
    memset(v, 0, sizeof v);
    assert_int_equal(route_f32(&b, "test-embedder", v, DIM, NULL, &res, pred), TR_E_ZERO_VECTOR);
    int8_t q[DIM] = {0};
    assert_int_equal(route_i8(&b, "test-embedder", q, DIM, NULL, &res, pred), TR_E_ZERO_VECTOR);
    q[0] = -128;
    assert_int_equal(route_i8(&b, "test-embedder", q, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_text(&b, "hello", 5, NULL, &res, pred), TR_E_NO_EMBEDDER);
    tr_route_opts bad_k = {.k = TR_K_MAX + 1, .lambda = 0, .available = NULL, .offline = 0, .exact = 0};
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, &bad_k, &res, pred), TR_E_ARG);
    tr_route_opts bad_l = {.k = 0, .lambda = NAN, .available = NULL, .offline = 0, .exact = 0};
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, &bad_l, &res, pred), TR_E_ARG);
    const tr_query qr = tr_query_i8("test-embedder", f->refs, DIM);
    assert_int_equal(tr_route(NULL, b.c, &qr, NULL, &res, NULL), TR_E_ARG);
    free_box(&b);
}

/* Reference prefilter: sort all rows by (Hamming distance of the sign codes,
 * index), keep c, rank those by exact cosine. */
typedef struct ham_idx {
    int ham, idx;
} ham_idx;

static int cmp_ham(const void *a, const void *b)
{
    const ham_idx *x = a, *y = b;
    return x->ham != y->ham ? x->ham - y->ham : x->idx - y->idx;
}

static void ref_prefilter(const fixture *f, const int8_t *q, int k, int c, int *out)
{
    static ham_idx h[N];
    static ref_nb cand[N];
    for (int i = 0; i < N; i++) {
        int d = 0;
        for (int j = 0; j < DIM; j++)
            d += (q[j] > 0) != (f->refs[i * DIM + j] > 0);
        h[i] = (ham_idx){d, i};
    }
    qsort(h, N, sizeof *h, cmp_ham);
    for (int i = 0; i < c; i++) {
        const int8_t *r = f->refs + h[i].idx * DIM;
        double dot = 0, rn = 0, qn = 0;
        for (int j = 0; j < DIM; j++) {
            dot += (double)q[j] * r[j];
            rn += (double)r[j] * r[j];
            qn += (double)q[j] * q[j];
        }
        cand[i] = (ref_nb){dot / sqrt(rn * qn), h[i].idx};
    }
    qsort(cand, c, sizeof *cand, cmp_nb);
    for (int i = 0; i < k; i++)
        out[i] = cand[i].idx;
}

/* build --prefilter auto (tools/prefilter_choice.c): its recall at any C
 * equals a brute-force count -- every row a query (N <= its sample), the
 * exact 10 nearest others, the first C others by (Hamming, index) -- and
 * the C it chooses is the smallest reaching the target. */
static void test_prefilter_choice_recall(void **state)
{
    fixture *f = *state;
    trh_prefilter_places pl;
    assert_int_equal(trh_prefilter_places_of(f->refs, N, DIM, &pl), 0);
    assert_int_equal(pl.n_queries, N);
    assert_int_equal(pl.recall_at, 10);
    assert_int_equal(pl.n_places, (size_t)N * 10);
    float inv[N];
    for (int i = 0; i < N; i++)
        inv[i] = tr_i8_inv_norm(f->refs + i * DIM, DIM);
    int8_t blocks[tr_ref_bytes(N, DIM)];
    tr_refs_put_rows(blocks, f->refs, DIM, N, DIM);
    const tr_refs refs = {N, DIM, blocks, inv};
    static const int cs[] = {1, 10, 25, 60, 150, N - 1};
    size_t hits[6] = {0};
    for (int qi = 0; qi < N; qi++) {
        int32_t dots[TR_KNN_BLOCK];
        tr_neighbor nb[11];
        uint32_t found = tr_knn_search(tr_kernels_active(), &refs, f->refs + qi * DIM, 11, dots, nb);
        static ham_idx h[N];
        int n_other = 0;
        for (int i = 0; i < N; i++) {
            if (i == qi)
                continue;
            int d = 0;
            for (int j = 0; j < DIM; j++)
                d += (f->refs[qi * DIM + j] > 0) != (f->refs[i * DIM + j] > 0);
            h[n_other++] = (ham_idx){d, i};
        }
        qsort(h, (size_t)n_other, sizeof *h, cmp_ham);
        for (int ci = 0; ci < 6; ci++) {
            int taken = 0;
            for (uint32_t a = 0; a < found && taken < 10; a++) {
                if ((int)nb[a].idx == qi)
                    continue;
                taken++;
                for (int r = 0; r < cs[ci]; r++)
                    hits[ci] += h[r].idx == (int)nb[a].idx;
            }
        }
    }
    for (int ci = 0; ci < 6; ci++)
        assert_true(trh_prefilter_recall(&pl, (uint32_t)cs[ci]) == (double)hits[ci] / (N * 10.0));
    assert_true(trh_prefilter_recall(&pl, N - 1) == 1.0);
    uint32_t c = trh_prefilter_c_for(&pl, 0.95);
    assert_true(c > 1 && c < N);
    assert_true(trh_prefilter_recall(&pl, c) >= 0.95);
    assert_true(trh_prefilter_recall(&pl, c - 1) < 0.95);
    /* auto keeps at least k and turns the prefilter off where it cannot
     * pay: 300 rows of 37 dims (48-byte stride, 8-byte codes). */
    trh_prefilter_choice pc;
    assert_int_equal(trh_choose_prefilter(f->refs, N, DIM, 200, 0, 1, &pc), 0);
    assert_int_equal(pc.c_tried, c > 200 ? c : 200);
    assert_true(pc.cost_ratio > 1 && pc.c == 0);
    assert_int_equal(trh_choose_prefilter(f->refs, N, DIM, 10, 25, 0, &pc), 0);
    assert_int_equal(pc.c, 25);
    assert_true(pc.recall == trh_prefilter_recall(&pl, 25));
    trh_prefilter_places_free(&pl);
    /* Where it pays: 4,500 rows of 640 dims around 300 centres (15 each),
     * so a row's nearest are its centre's rows, near in Hamming too (the
     * rerank costs 16 exact rows a candidate: C must be well under N/16). */
    enum { BN = 4500, BD = 640, BG = 300 };
    int8_t *big = malloc((size_t)BN * BD), (*centre)[BD] = malloc(sizeof(int8_t[BG][BD]));
    assert_non_null(big), assert_non_null(centre);
    for (int g = 0; g < BG; g++)
        for (int d = 0; d < BD; d++)
            centre[g][d] = (int8_t)((int)(rnd() % 201) - 100);
    for (int i = 0; i < BN; i++)
        for (int d = 0; d < BD; d++)
            big[(size_t)i * BD + d] = (int8_t)(centre[i % BG][d] + (int)(rnd() % 41) - 20);
    free(centre);
    assert_int_equal(trh_choose_prefilter(big, BN, BD, 10, 0, 1, &pc), 0);
    assert_true(pc.c_tried >= 10 && pc.c_tried < 100 && pc.recall >= 0.95);
    if (!(pc.cost_ratio <= TRH_PREFILTER_PAYS && pc.c == pc.c_tried))
        fail_msg("C %u (tried %u, recall %g): predicted %g", pc.c, pc.c_tried, pc.recall, pc.cost_ratio);
    free(big);
    /* The model: two code passes plus the rerank, over one pass of rows;
     * on at the bench's 768-d mixture (C = 462), off on the real prompts. */
    assert_true(fabs(trh_prefilter_cost_ratio(100000, 768, 1000) -
                     (2.0 * (96 + TRH_PREFILTER_ROW_BYTES) * 1e5 +
                      1000.0 * TRH_PREFILTER_RERANK_ROWS * 768) / (1e5 * 768)) < 1e-12);
    assert_true(trh_prefilter_cost_ratio(100000, 768, 462) <= TRH_PREFILTER_PAYS);
    assert_true(trh_prefilter_cost_ratio(12025, 100, 400) > TRH_PREFILTER_PAYS);
}

static void test_prefilter_matches_reference(void **state)
{
    fixture *f = *state;
    static const int cs[] = {N, 60, 10};
    for (int ci = 0; ci < 3; ci++) {
        trh_pack_spec s = spec_of(f);
        s.prefilter_c = (uint32_t)cs[ci];
        build(f, &s, KEY);
        view_box b = new_box(DIM, M, s.prefilter_c);
        assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
        tr_pack_info info;
        tr_pack_get_info(b.r, &info);
        assert_int_equal(info.prefilter_candidates, cs[ci]);
        int8_t q[DIM];
        for (int t = 0; t < 40; t++) {
            for (int d = 0; d < DIM; d++)
                q[d] = (int8_t)((int)(rnd() % 255) - 127);
            tr_route_opts o = {.k = 10, .lambda = TR_LAMBDA_ZERO, .available = NULL, .offline = 0, .exact = 0}, ox = {.k = 10, .lambda = TR_LAMBDA_ZERO, .available = NULL, .offline = 0, .exact = 1};
            tr_result res, resx;
            float pred[M], predx[M], predk[M];
            assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &o, &res, pred), TR_OK);
            assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &ox, &resx, predx), TR_OK);
            /* The reference neighbours' labels must give the same predictions. */
            int nb[10];
            ref_prefilter(f, q, 10, cs[ci], nb);
            for (int m = 0; m < M; m++) {
                double sum = 0;
                int known = 0;
                for (int j = 0; j < 10; j++) {
                    float v = f->scores[nb[j] * M + m];
                    if (!isnan(v)) {
                        sum += roundf(v * 255.0f) / 255.0;
                        known++;
                    }
                }
                predk[m] = known ? (float)(sum / known) : pred[m];
                assert_true(fabs(pred[m] - predk[m]) < 1e-6);
            }
            if (cs[ci] == N) /* every row is a candidate: same as exact */
                assert_memory_equal(pred, predx, sizeof pred);
        }
        free_box(&b);
    }
    /* A prefilter pack needs the candidates in the context, even for an
     * exact route (one context size serves every option). */
    view_box small = new_box(DIM, M, 0);
    assert_int_equal(load(&small, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_result rs;
    tr_route_opts ex = {.exact = 1};
    assert_int_equal(route_i8(&small, "test-embedder", f->refs, DIM, NULL, &rs, NULL),
                     TR_E_ARENA_TOO_SMALL);
    assert_int_equal(route_i8(&small, "test-embedder", f->refs, DIM, &ex, &rs, NULL),
                     TR_E_ARENA_TOO_SMALL);
    free_box(&small);
}

static void test_cluster_route_matches_reference(void **state)
{
    fixture *f = *state;
    enum { K = 300 }; /* more than one block of centroids */
    static float cent[K * DIM];
    for (int i = 0; i < K * DIM; i++)
        cent[i] = (float)((int)(rnd() % 2001) - 1000) / 3000.0f;
    trh_buf sec = {0};
    assert_int_equal(trh_clusters_section(cent, K, DIM, M, 0.0f, &sec), 0);
    tr_clusters cv;
    assert_int_equal(tr_clusters_view(sec.data, sec.len, DIM, M, &cv), TR_OK);
    float *psi = (float *)(void *)cv.psi;
    for (int i = 0; i < K * M; i++)
        psi[i] = (float)(rnd() % 1000) / 999.0f;
    trh_pack_spec s = spec_of(f);
    s.clusters = sec.data;
    s.clusters_len = sec.len;
    build(f, &s, KEY);
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info info;
    tr_pack_get_info(b.r, &info);
    assert_int_equal(info.n_clusters, K);
    int8_t q[DIM];
    for (int t = 0; t < 100; t++) {
        for (int d = 0; d < DIM; d++)
            q[d] = (int8_t)((int)(rnd() % 255) - 127);
        double lambda = (t % 4) * 0.1, qn = 0;
        for (int d = 0; d < DIM; d++)
            qn += (double)q[d] * q[d];
        int want = 0;
        double best = -INFINITY;
        for (int k = 0; k < K; k++) {
            double dot = 0;
            for (int d = 0; d < DIM; d++)
                dot += (double)q[d] * cv.rows[k * cv.stride + d];
            double sc = dot / sqrt(qn) * cv.inv_scale[k] - cv.half_sq[k];
            if (sc > best) {
                best = sc;
                want = k;
            }
        }
        tr_route_opts o = {.lambda = (float)lambda, .method = TR_METHOD_CLUSTER};
        tr_result res;
        float pred[M];
        assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &o, &res, pred), TR_OK);
        assert_int_equal(res.method, TR_METHOD_CLUSTER);
        assert_int_equal(res.cluster, want);
        int model = -1;
        double bu = 0;
        for (int m = 0; m < M; m++) {
            assert_true(fabs(pred[m] - (1.0 - psi[want * M + m])) < 1e-6);
            double u = (1.0 - psi[want * M + m]) - lambda * (costs[m] - 1) / 69.0;
            int dev = f->models[m].where == TR_DEVICE;
            int bdev = model >= 0 && f->models[model].where == TR_DEVICE;
            if (model < 0 || u > bu + 1e-7 ||
                (fabs(u - bu) <= 1e-7 && ((dev && !bdev) || (dev == bdev && costs[m] < costs[model])))) {
                model = m;
                bu = u;
            }
        }
        assert_int_equal(res.model, model);
    }
    free_box(&b);
    trh_buf_free(&sec);
    /* A pack without clusters refuses the method; unknown methods are bad
     * arguments. */
    trh_pack_spec plain = spec_of(f);
    build(f, &plain, KEY);
    b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_route_opts oc = {.lambda = TR_LAMBDA_ZERO, .method = TR_METHOD_CLUSTER}, ob = {.lambda = 0, .method = (tr_method)4};
    tr_result res;
    assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &oc, &res, NULL), TR_E_UNSUPPORTED);
    assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &ob, &res, NULL), TR_E_ARG);
    free_box(&b);
}


/* The pack's default method (defaults bytes 24..27, issue 12): zeroed
 * options route with it, exactly as if it were asked for by name; a pack
 * whose bytes are 0 (every pack before the field) routes kNN; a default the
 * pack has no section for is refused at load. */
static void route_same(view_box *b, const int8_t *q, const tr_route_opts *zeroed,
                       const tr_route_opts *named, tr_method want)
{
    tr_result r0, r1;
    float p0[M], p1[M];
    assert_int_equal(route_i8(b, "test-embedder", q, DIM, zeroed, &r0, p0), TR_OK);
    assert_int_equal(route_i8(b, "test-embedder", q, DIM, named, &r1, p1), TR_OK);
    assert_int_equal(r0.method, want);
    assert_int_equal(r1.method, want);
    assert_int_equal(r0.model, r1.model);
    assert_int_equal(r0.cluster, r1.cluster);
    assert_memory_equal(p0, p1, sizeof p0);
}

static void test_pack_default_method(void **state)
{
    fixture *f = *state;
    enum { K = 6 };
    static float cent[K * DIM], theta[K * (DIM + 1)];
    for (int i = 0; i < K * DIM; i++)
        cent[i] = (float)((int)(rnd() % 2001) - 1000) / 3000.0f;
    for (int i = 0; i < K * (DIM + 1); i++)
        theta[i] = (float)((int)(rnd() % 2001) - 1000) / 100.0f;
    trh_buf sec = {0};
    assert_int_equal(trh_clusters_section(cent, K, DIM, M, 0.0f, &sec), 0);
    tr_clusters cv;
    assert_int_equal(tr_clusters_view(sec.data, sec.len, DIM, M, &cv), TR_OK);
    float *psi = (float *)(void *)cv.psi;
    for (int i = 0; i < K * M; i++)
        psi[i] = (float)(rnd() % 1000) / 999.0f;
    static const tr_method want[3] = {TR_METHOD_KNN, TR_METHOD_CLUSTER, TR_METHOD_LEARNED_MAP};
    int8_t q[DIM];
    for (uint32_t pm = 0; pm < 3; pm++) {
        trh_pack_spec s = spec_of(f);
        s.clusters = sec.data;
        s.clusters_len = sec.len;
        s.lmap_theta = theta;
        s.method = pm; /* TR_PACK_METHOD_*: 0 is what every older pack holds */
        build(f, &s, KEY);
        view_box b = new_box(DIM, M, 0);
        assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
        tr_pack_info info;
        assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
        assert_int_equal(info.default_method, want[pm]);
        int differs = 0;
        for (int t = 0; t < 60; t++) {
            for (int d = 0; d < DIM; d++)
                q[d] = (int8_t)((int)(rnd() % 255) - 127);
            const float lambda = (float)(t % 4) * 0.1f;
            tr_route_opts zero = {.lambda = lambda}, named = {.lambda = lambda, .method = want[pm]};
            route_same(&b, q, &zero, &named, want[pm]);
            if (t == 0)
                route_same(&b, q, NULL, &(tr_route_opts){.method = want[pm]}, want[pm]);
            /* An explicit method still wins over the pack's. */
            tr_route_opts knn = {.lambda = lambda, .method = TR_METHOD_KNN};
            tr_result rk, rz;
            assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &knn, &rk, NULL), TR_OK);
            assert_int_equal(rk.method, TR_METHOD_KNN);
            assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &zero, &rz, NULL), TR_OK);
            differs |= rk.model != rz.model;
        }
        /* Not vacuous: the learned map and kNN disagree somewhere here. */
        if (pm == 2)
            assert_true(differs);
        /* A local store asks for kNN: with it, the default method is kNN on
         * every pack, and naming another method is refused. */
        size_t lb = tr_local_size(4, DIM, M);
        void *lmem = NULL;
        assert_int_equal(posix_memalign(&lmem, 64, lb), 0);
        tr_local *store = NULL;
        assert_int_equal(tr_local_init(lmem, lb, 4, b.r, &store), TR_OK);
        tr_route_opts with_store = {.local = store}, knn_store = {.local = store, .method = TR_METHOD_KNN};
        route_same(&b, q, &with_store, &knn_store, TR_METHOD_KNN);
        if (pm) {
            tr_route_opts other = {.local = store, .method = want[pm]};
            tr_result ro;
            assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &other, &ro, NULL), TR_E_ARG);
        }
        free(lmem);
        free_box(&b);
    }
    /* A default the pack cannot serve: the writer refuses it, and a signed
     * one is refused at load. */
    trh_pack_spec plain = spec_of(f);
    trh_buf bad = {0};
    trh_pack_layout lay;
    plain.method = TR_PACK_METHOD_CLUSTER;
    assert_int_not_equal(trh_pack_write(&plain, &bad, &lay), 0);
    trh_buf_free(&bad);
    for (uint32_t pm = 1; pm <= 3; pm++) {
        trh_pack_spec s = spec_of(f);
        if (pm == 2) { /* clusters, but no learned map */
            s.clusters = sec.data;
            s.clusters_len = sec.len;
        }
        assert_int_equal(trh_pack_write(&s, &bad, &lay), 0);
        const uint8_t *e = bad.data + TR_HEADER_BYTES;
        while (tr_ld32(e + TR_S_TYPE) != TR_SEC_DEFAULTS)
            e += TR_SECTION_ENTRY_BYTES;
        tr_st32(bad.data + tr_ld64(e + TR_S_OFFSET) + TR_D_METHOD, pm);
        assert_int_equal(trh_pack_sign(&bad, KEY), 0);
        uint8_t *al = aligned_copy(&bad);
        view_box b = new_box(DIM, M, 0);
        assert_int_equal(load(&b, al, bad.len, &f->pub, 0, 0), TR_E_MALFORMED);
        free_box(&b);
        free(al);
        trh_buf_free(&bad);
    }
    trh_buf_free(&sec);
}


/* ---- Delta packs ---- */

/* The writer pads bitsets to 64 bytes. */
enum { BITS_STRIDE = ((N + 7) / 8 + 63) / 64 * 64 };

typedef struct delta_parts {
    uint8_t rec[2][TR_MODEL_REC_BYTES];
    uint8_t correct[2][BITS_STRIDE], valid[2][BITS_STRIDE];
    uint8_t retired[8];
    trh_delta_spec spec;
} delta_parts;

/* One added cloud model right on every labelled reference (the even ones),
 * so kNN predicts 1.0 for it wherever a labelled neighbour is near. */
static void delta_parts_init(delta_parts *d, const fixture *f, const uint8_t base_hash[32])
{
    memset(d, 0, sizeof *d);
    memcpy(d->rec[0] + TR_M_NAME, "new-cloud", 9);
    tr_stf32(d->rec[0] + TR_M_COST, 5.0f);
    tr_stf32(d->rec[0] + TR_M_COST_NORM, 4.0f / 69.0f);
    tr_stf32(d->rec[0] + TR_M_PRIOR, 1.0f);
    tr_st32(d->rec[0] + TR_M_WHERE, TR_CLOUD);
    for (int i = 0; i < N; i += 2) {
        d->correct[0][i >> 3] |= (uint8_t)(1u << (i & 7));
        d->valid[0][i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    d->spec = (trh_delta_spec){.security_counter = 3, .created_unix = 1700000000,
                              .n_base_models = M, .n_base_refs = N, .bit_stride = BITS_STRIDE,
                              .n_added = 1, .records = d->rec[0], .correct = d->correct[0],
                              .valid = d->valid[0]};
    memcpy(d->spec.base_hash, base_hash, 32);
    (void)f;
}

static uint8_t *make_delta(const trh_delta_spec *s, const char *key, size_t *len)
{
    trh_buf b = {0};
    trh_delta_write(s, &b);
    assert_int_equal(trh_pack_sign(&b, key), 0);
    uint8_t *p = aligned_copy(&b);
    *len = b.len;
    trh_buf_free(&b);
    return p;
}

static tr_status apply(view_box *b, const uint8_t *p, size_t len, const tr_pubkey *k,
                       uint64_t floor_, uint64_t now)
{
    tr_counter_store_ram(&b->ram, b->slots); /* b may have moved since new_box */
    tr_trust t = {.keys = k, .n_keys = 1, .min_delta_counter = floor_, .now_unix = now,
                  .counters = &b->ram};
    return apply_into(b, p, len, &t);
}

static void test_delta_adds_a_model(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M + 1, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info info;
    tr_pack_get_info(b.r, &info);
    delta_parts d;
    delta_parts_init(&d, f, info.pack_hash);
    size_t len;
    uint8_t *delta = make_delta(&d.spec, KEY, &len);
    tr_delta_info di;
    assert_int_equal(tr_pack_get_delta(b.r, &di), TR_E_NO_PACK);
    assert_int_equal(apply(&b, delta, len, &f->pub, 0, 0), TR_OK);
    tr_pack_get_info(b.r, &info);
    assert_int_equal(info.n_models, M + 1);
    assert_int_equal(info.n_added_models, 1);
    assert_int_equal(tr_pack_get_delta(b.r, &di), TR_OK);
    assert_int_equal(di.n_added, 1);
    assert_int_equal(di.security_counter, 3);
    tr_model_info mi;
    assert_int_equal(tr_pack_get_model(b.r, M, &mi), TR_OK);
    assert_string_equal(mi.name, "new-cloud");
    assert_true(mi.added && !mi.retired);
    /* On a labelled reference that every base model got wrong, with k = 1,
     * the new model is predicted 1.0 and the others 0: it wins. */
    int at = -1;
    for (int i = 0; i < N && at < 0; i += 2) {
        int any = 0;
        for (int m = 0; m < M; m++)
            any |= f->scores[i * M + m] != 0.0f;
        if (!any)
            at = i;
    }
    assert_true(at >= 0);
    float pred[M + 1];
    tr_route_opts o = {.lambda = TR_LAMBDA_ZERO, .k = 1};
    tr_result res;
    assert_int_equal(route_i8(&b, "test-embedder", f->refs + at * DIM, DIM, &o, &res, pred),
                     TR_OK);
    assert_true(pred[M] == 1.0f);
    assert_int_equal(res.model, M);
    assert_string_equal(res.model_name, "new-cloud");
    /* Another thread, with its own context, routes through the same view:
     * base + delta too. Dropping the delta there is a new view in its own
     * memory; this one keeps serving base + delta. */
    view_box sh = new_box(DIM, M + 1, 0);
    sh.r = b.r;
    tr_delta_info sdi;
    assert_int_equal(tr_pack_get_delta(sh.r, &sdi), TR_OK);
    assert_int_equal(route_i8(&sh, "test-embedder", f->refs + at * DIM, DIM, &o, &res, NULL),
                     TR_OK);
    assert_int_equal(res.model, M);
    assert_int_equal(drop_into(&sh), TR_OK);
    tr_pack_get_info(sh.r, &info);
    assert_int_equal(info.n_models, M);
    tr_pack_get_info(b.r, &info);
    assert_int_equal(info.n_models, M + 1);
    free_box(&sh);
    /* On an odd (unlabelled) reference with k = 1 it knows nothing: prior. */
    assert_int_equal(route_i8(&b, "test-embedder", f->refs + 11 * DIM, DIM, &o, &res, pred),
                     TR_OK);
    assert_true(pred[M] == 1.0f); /* its prior */
    /* Back to the base alone. */
    assert_int_equal(drop_into(&b), TR_OK);
    tr_pack_get_info(b.r, &info);
    assert_int_equal(info.n_models, M);
    assert_int_equal(tr_pack_get_model(b.r, M, &mi), TR_E_ARG);
    /* Loading a base drops the delta too. */
    assert_int_equal(apply(&b, delta, len, &f->pub, 0, 0), TR_OK);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    assert_int_equal(tr_pack_get_delta(b.r, &di), TR_E_NO_PACK);
    free(delta);
    free_box(&b);
}

static void test_delta_rejections_keep_serving(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M + 2, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info info;
    tr_pack_get_info(b.r, &info);
    delta_parts d;
    delta_parts_init(&d, f, info.pack_hash);
    size_t len;
    uint8_t *good = make_delta(&d.spec, KEY, &len);
    assert_int_equal(apply(&b, good, len, &f->pub, 0, 0), TR_OK);
    tr_delta_info served;
    tr_pack_get_delta(b.r, &served);

    size_t l2;
    uint8_t *bad;
    /* Unsigned, cut, flipped, untrusted. */
    assert_int_equal(apply(&b, good, len - 80, &f->pub, 0, 0), TR_E_TRUNCATED);
    tr_delta_info peek;
    assert_int_equal(tr_delta_peek(good, len, &peek), TR_OK);
    assert_int_equal(apply(&b, good, (size_t)peek.signed_bytes, &f->pub, 0, 0), TR_E_NO_SIGNATURE);
    bad = aligned_copy(&(trh_buf){good, len, len});
    bad[140] ^= 1;
    assert_int_equal(apply(&b, bad, len, &f->pub, 0, 0), TR_E_SIGNATURE);
    free(bad);
    assert_int_equal(apply(&b, good, len, &f->other, 0, 0), TR_E_KEY_UNKNOWN);
    /* A pack is not a delta, nor a delta a pack. */
    assert_int_equal(apply(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_E_BAD_MAGIC);
    assert_int_equal(load(&b, good, len, &f->pub, 0, 0), TR_E_BAD_MAGIC);
    /* Signed, but for another base. */
    trh_delta_spec s = d.spec;
    s.base_hash[0] ^= 1;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_DELTA_BASE);
    free(bad);
    /* Signed, right base, inconsistent: model count, refs, Psi without
     * clusters, a bitset stride, a duplicate name, every device retired. */
    s = d.spec;
    s.n_base_models = M + 1;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_MALFORMED);
    free(bad);
    s = d.spec;
    s.n_base_refs = N - 1;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_MALFORMED);
    free(bad);
    float psi[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    s = d.spec;
    s.n_clusters = 4;
    s.psi = psi;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_MALFORMED);
    free(bad);
    s = d.spec;
    memcpy(d.rec[1], d.rec[0], TR_MODEL_REC_BYTES);
    memset(d.rec[1] + TR_M_NAME, 0, TR_MODEL_NAME_MAX);
    memcpy(d.rec[1] + TR_M_NAME, "mid-cloud", 9); /* a base model's name */
    s.records = d.rec[1];
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_MALFORMED);
    free(bad);
    s = d.spec;
    d.retired[0] = 1u << 0 | 1u << 4; /* both on-device models */
    s.retired = d.retired;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_MALFORMED);
    free(bad);
    /* Rolled back: under the device's floor, or under the served delta. */
    assert_int_equal(apply(&b, good, len, &f->pub, 4, 0), TR_E_ROLLBACK);
    s = d.spec;
    s.security_counter = 2;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_ROLLBACK);
    free(bad);
    /* The equal case: a different delta with the served delta's counter is
     * refused (two signed deltas must never share a counter), the very same
     * delta re-applied is accepted (idempotent; a restart does it). */
    s = d.spec;
    s.has_settings = 1, s.k = 3, s.lambda = -1.0f;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 0), TR_E_ROLLBACK);
    free(bad);
    assert_int_equal(apply(&b, good, len, &f->pub, 0, 0), TR_OK);
    /* Counter 4 goes; after dropping it, or reopening the base, neither
     * 3 nor another 4 come back while the in-RAM store lives (what the
     * router remembered before views were immutable). */
    s.security_counter = 4;
    uint8_t *four = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, four, l2, &f->pub, 0, 0), TR_OK);
    assert_int_equal(drop_into(&b), TR_OK);
    assert_int_equal(apply(&b, good, len, &f->pub, 0, 0), TR_E_ROLLBACK);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    assert_int_equal(apply(&b, good, len, &f->pub, 0, 0), TR_E_ROLLBACK);
    assert_int_equal(apply(&b, four, l2, &f->pub, 0, 0), TR_OK);
    tr_pack_get_delta(b.r, &served);
    free(four);
    /* Expired. */
    s = d.spec;
    s.security_counter = 5;
    s.expires_unix = 1800000000;
    bad = make_delta(&s, KEY, &l2);
    assert_int_equal(apply(&b, bad, l2, &f->pub, 0, 1800000000), TR_E_EXPIRED);
    free(bad);
    /* Too many models for the context: four added need more scratch than
     * the base's five (per-model arrays are rounded to 16 bytes). The view
     * opens; a context carved for the base refuses to route it. */
    enum { ADD = 4 };
    uint8_t recs[ADD * TR_MODEL_REC_BYTES], cors[ADD * BITS_STRIDE], vals[ADD * BITS_STRIDE];
    for (int j = 0; j < ADD; j++) {
        memcpy(recs + j * TR_MODEL_REC_BYTES, d.rec[0], TR_MODEL_REC_BYTES);
        recs[j * TR_MODEL_REC_BYTES + TR_M_NAME] = (uint8_t)('A' + j);
        memcpy(cors + j * BITS_STRIDE, d.correct[0], BITS_STRIDE);
        memcpy(vals + j * BITS_STRIDE, d.valid[0], BITS_STRIDE);
    }
    s = d.spec;
    s.n_added = ADD;
    s.records = recs;
    s.correct = cors;
    s.valid = vals;
    bad = make_delta(&s, KEY, &l2);
    assert_true(tr_ctx_size(DIM, M, 0) < tr_ctx_size(DIM, M + ADD, 0));
    view_box small = new_box(DIM, M, 0);
    assert_int_equal(load(&small, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    assert_int_equal(apply(&small, bad, l2, &f->pub, 0, 0), TR_OK);
    tr_result rs;
    assert_int_equal(route_i8(&small, "test-embedder", f->refs, DIM, NULL, &rs, NULL),
                     TR_E_ARENA_TOO_SMALL);
    free_box(&small);
    small = new_box(DIM, M + ADD, 0);
    assert_int_equal(load(&small, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    assert_int_equal(apply(&small, bad, l2, &f->pub, 0, 0), TR_OK);
    assert_int_equal(route_i8(&small, "test-embedder", f->refs, DIM, NULL, &rs, NULL), TR_OK);
    free(bad);
    free_box(&small);
    /* After every rejection the delta with counter 4 was still the one
     * served, and may be re-applied. */
    assert_int_equal(apply(&b, good, len, &f->pub, 0, 0), TR_E_ROLLBACK);
    size_t l4;
    s = d.spec;
    s.has_settings = 1, s.k = 3, s.lambda = -1.0f, s.security_counter = 4;
    four = make_delta(&s, KEY, &l4);
    assert_int_equal(apply(&b, four, l4, &f->pub, 0, 0), TR_OK);
    free(four);
    tr_delta_info now;
    tr_pack_get_delta(b.r, &now);
    assert_memory_equal(now.delta_hash, served.delta_hash, 32);
    free(good);
    free_box(&b);
}

static void test_delta_retires_and_sets_defaults(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M + 1, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info info;
    tr_pack_get_info(b.r, &info);
    /* The base's choice on each of the first 50 references, at lambda 0. */
    tr_route_opts o = {.lambda = TR_LAMBDA_ZERO, .k = 10}; /* the delta changes the default k */
    tr_result res;
    uint32_t before[50], most = 0, count[M] = {0};
    for (int i = 0; i < 50; i++) {
        assert_int_equal(route_i8(&b, "test-embedder", f->refs + i * DIM, DIM, &o, &res,
                                     NULL), TR_OK);
        before[i] = res.model;
        count[res.model]++;
    }
    for (uint32_t m = 0; m < M; m++)
        if (count[m] > count[most])
            most = m;
    assert_true(count[most] > 0);
    delta_parts d;
    delta_parts_init(&d, f, info.pack_hash);
    trh_delta_spec s = d.spec;
    s.n_added = 0; /* retire and settings only */
    s.records = s.correct = s.valid = NULL;
    d.retired[most >> 3] = (uint8_t)(1u << (most & 7));
    s.retired = d.retired;
    s.has_settings = 1;
    s.k = 3;
    s.lambda = 0.25f;
    size_t len;
    uint8_t *delta = make_delta(&s, KEY, &len);
    assert_int_equal(apply(&b, delta, len, &f->pub, 0, 0), TR_OK);
    tr_pack_get_info(b.r, &info);
    assert_int_equal(info.n_models, M);
    assert_int_equal(info.n_retired_models, 1);
    assert_int_equal(info.default_k, 3);
    assert_true(info.default_lambda == 0.25f);
    tr_model_info mi;
    tr_pack_get_model(b.r, most, &mi);
    assert_true(mi.retired);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(route_i8(&b, "test-embedder", f->refs + i * DIM, DIM, &o, &res,
                                     NULL), TR_OK);
        assert_int_not_equal(res.model, most);
        if (before[i] != most)
            assert_int_equal(res.model, before[i]);
        /* Not the caller's mask: the rule stays "utility". */
        assert_int_equal(res.why, TR_WHY_UTILITY);
    }
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, NULL, &res, NULL), TR_OK);
    assert_true(res.lambda == 0.25f);
    assert_int_equal(res.k, 3);
    free(delta);
    free_box(&b);
}


/* Issue 13: a zeroed tr_route_opts routes with the pack's lambda, so a
 * lambda that calibrate put in a delta is used unless the caller overrides
 * it; TR_LAMBDA_ZERO asks for none. (The governor's side: test_governor.) */
static void test_zeroed_opts_use_calibrated_lambda(void **state)
{
    fixture *f = *state;
    view_box b = new_box(DIM, M, 0);
    assert_int_equal(load(&b, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    tr_pack_info info;
    tr_pack_get_info(b.r, &info);
    const tr_route_opts zero = {0};
    tr_result res;
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, &zero, &res, NULL), TR_OK);
    assert_true(res.lambda == info.default_lambda);
    /* A settings-only delta, as calibrate writes: a lambda large enough to
     * change decisions. */
    const float cal = 3.0f;
    delta_parts d;
    delta_parts_init(&d, f, info.pack_hash);
    trh_delta_spec s = d.spec;
    s.n_added = 0;
    s.records = s.correct = s.valid = NULL;
    s.has_settings = 1;
    s.lambda = cal;
    size_t len;
    uint8_t *delta = make_delta(&s, KEY, &len);
    assert_int_equal(apply(&b, delta, len, &f->pub, 0, 0), TR_OK);
    tr_pack_get_info(b.r, &info);
    assert_true(info.default_lambda == cal);
    const tr_route_opts explicit_cal = {.lambda = cal}, none = {.lambda = TR_LAMBDA_ZERO},
                        by_macro = {.lambda = TR_LAMBDA_DEFAULT};
    int changed = 0;
    for (int i = 0; i < N; i++) {
        const int8_t *q = f->refs + (size_t)i * DIM;
        tr_result rz, rc, rn, rm;
        assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &zero, &rz, NULL), TR_OK);
        assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &explicit_cal, &rc, NULL), TR_OK);
        assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &none, &rn, NULL), TR_OK);
        assert_int_equal(route_i8(&b, "test-embedder", q, DIM, &by_macro, &rm, NULL), TR_OK);
        assert_true(rz.lambda == cal && rm.lambda == cal && rn.lambda == 0.0f);
        assert_int_equal(rz.model, rc.model);
        assert_int_equal(rm.model, rc.model);
        assert_true(rz.utility == rc.utility);
        changed += rn.model != rz.model;
    }
    /* The calibrated lambda did decide something (else this proves nothing). */
    assert_true(changed > 0);

    free(delta);
    free_box(&b);
}

/* An integrator's counter store: in memory, with failures on demand. */
typedef struct fake_store {
    tr_counter_slot slot[2];
    int fail_read, fail_write, writes;
} fake_store;

static int store_read(void *ctx, int kind, tr_counter_slot *v)
{
    fake_store *s = ctx;
    if (s->fail_read)
        return -1;
    *v = s->slot[kind];
    return 0;
}

static int store_write(void *ctx, int kind, const tr_counter_slot *v)
{
    fake_store *s = ctx;
    if (s->fail_write)
        return -1;
    s->slot[kind] = *v;
    s->writes++;
    return 0;
}

static void test_counter_store(void **state)
{
    fixture *f = *state; /* the pack's counter is 5 */
    view_box b = new_box(DIM, M + 1, 0);
    fake_store fs = {{{.counter = 3}}, 0, 0, 0};
    tr_counter_store cs = {&fs, store_read, store_write};
    tr_trust t = {.keys = &f->pub, .n_keys = 1, .counters = &cs};
    /* Accepted above the stored floor: the floor is raised to 5. */
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(fs.slot[TR_COUNTER_PACK].counter, 5);
    assert_int_equal(fs.writes, 1);
    /* The same pack again: not below, nothing to write. */
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(fs.writes, 1);
    /* The store says 7: pack 5 is a rollback, even with trust's floor 0. */
    fs.slot[TR_COUNTER_PACK].counter = 7;
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_E_ROLLBACK);
    /* A store that cannot be read or written: refused, old pack kept. */
    fs.slot[TR_COUNTER_PACK].counter = 0;
    fs.fail_read = 1;
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_E_COUNTER_STORE);
    fs.fail_read = 0;
    fs.fail_write = 1;
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_E_COUNTER_STORE);
    tr_result res;
    assert_int_equal(route_i8(&b, "test-embedder", f->refs, DIM, NULL, &res, NULL), TR_OK);
    /* Deltas have their own slot: counter 3, this base, this delta. */
    fs.fail_write = 0;
    tr_pack_info info;
    tr_pack_get_info(b.r, &info);
    delta_parts d;
    delta_parts_init(&d, f, info.pack_hash);
    size_t len;
    uint8_t *delta = make_delta(&d.spec, KEY, &len);
    fs.slot[TR_COUNTER_PACK].counter = 100; /* not the delta's business */
    fs.writes = 0;
    assert_int_equal(apply_into(&b, delta, len, &t), TR_OK);
    tr_delta_info di;
    tr_pack_get_delta(b.r, &di);
    assert_int_equal(fs.slot[TR_COUNTER_DELTA].counter, 3);
    assert_memory_equal(fs.slot[TR_COUNTER_DELTA].base, info.pack_hash, 32);
    assert_memory_equal(fs.slot[TR_COUNTER_DELTA].hash, di.delta_hash, 32);
    assert_int_equal(fs.writes, 1);
    /* A restart re-applies the stored delta: a fresh router, same store,
     * same delta is accepted and nothing is written. */
    view_box fresh = new_box(DIM, M + 1, 0);
    fs.slot[TR_COUNTER_PACK].counter = 5;
    assert_int_equal(open_into(&fresh, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(apply_into(&fresh, delta, len, &t), TR_OK);
    assert_int_equal(fs.writes, 1);
    /* After that restart, a different delta with the same counter 3 is
     * refused: only the store remembers the first one. */
    trh_delta_spec s = d.spec;
    s.lambda = 0.5f, s.has_settings = 1;
    size_t l2;
    uint8_t *same_counter = make_delta(&s, KEY, &l2);
    view_box again = new_box(DIM, M + 1, 0);
    assert_int_equal(open_into(&again, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(apply_into(&again, same_counter, l2, &t), TR_E_ROLLBACK);
    free(same_counter);
    /* The store says 4 (a later delta was served before the restart):
     * clearing and applying 3 again is a rollback. */
    fs.slot[TR_COUNTER_DELTA].counter = 4;
    drop_into(&b);
    assert_int_equal(apply_into(&b, delta, len, &t), TR_E_ROLLBACK);
    /* Reloading the base does not reopen it either. */
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(apply_into(&b, delta, len, &t), TR_E_ROLLBACK);
    /* The store's delta belongs to another base: this base's count starts
     * afresh, and the accepted delta takes the slot over. */
    fs.slot[TR_COUNTER_DELTA].base[0] ^= 1;
    view_box other = new_box(DIM, M + 1, 0);
    assert_int_equal(open_into(&other, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(apply_into(&other, delta, len, &t), TR_OK);
    assert_int_equal(fs.slot[TR_COUNTER_DELTA].counter, 3);
    assert_memory_equal(fs.slot[TR_COUNTER_DELTA].base, info.pack_hash, 32);
    /* The trust's floor holds for every base. */
    t.min_delta_counter = 9;
    memset(&fs.slot[TR_COUNTER_DELTA], 0, sizeof fs.slot[0]);
    assert_int_equal(apply_into(&fresh, delta, len, &t), TR_E_ROLLBACK);
    t.min_delta_counter = 0;
    /* A store that fails on a delta: refused, the old delta kept. */
    fs.fail_write = 1;
    view_box failing = new_box(DIM, M + 1, 0);
    assert_int_equal(open_into(&failing, f->aligned, f->pack.len, &t), TR_OK);
    assert_int_equal(apply_into(&failing, delta, len, &t), TR_E_COUNTER_STORE);
    assert_int_equal(tr_pack_get_delta(failing.r, &di), TR_E_NO_PACK);
    fs.fail_write = 0;
    /* A store without its functions is a caller error. */
    tr_counter_store half = {&fs, store_read, NULL};
    t.counters = &half;
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_E_ARG);
    free(delta);
    free_box(&b);
    free_box(&fresh);
    free_box(&again);
    free_box(&other);
    free_box(&failing);
}

/* Delta counters count per base. The reproducer: base A's delta left the
 * store at 3; a new base B's first delta (counter 1, as add-model picks
 * without --delta) must not be locked out. B has a higher pack counter, so
 * A, and with it A's old deltas, cannot come back. */
static void test_delta_counter_per_base(void **state)
{
    fixture *f = *state; /* base A: counter 5 */
    fake_store fs;
    memset(&fs, 0, sizeof fs);
    tr_counter_store cs = {&fs, store_read, store_write};
    tr_trust t = {.keys = &f->pub, .n_keys = 1, .counters = &cs};
    view_box b = new_box(DIM, M + 1, 0);
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_OK);
    tr_pack_info a;
    tr_pack_get_info(b.r, &a);
    delta_parts da;
    delta_parts_init(&da, f, a.pack_hash);
    size_t la1, la3, lb1;
    da.spec.security_counter = 1;
    uint8_t *a1 = make_delta(&da.spec, KEY, &la1);
    da.spec.security_counter = 3;
    uint8_t *a3 = make_delta(&da.spec, KEY, &la3);
    assert_int_equal(apply_into(&b, a3, la3, &t), TR_OK);
    assert_int_equal(fs.slot[TR_COUNTER_DELTA].counter, 3);
    /* Base B: the same data rebuilt later with pack counter 6. */
    trh_pack_spec sb = spec_of(f);
    sb.security_counter = 6;
    sb.created_unix += 86400;
    trh_buf pb = {0};
    trh_pack_layout lay;
    assert_int_equal(trh_pack_write(&sb, &pb, &lay), 0);
    assert_int_equal(trh_pack_sign(&pb, KEY), 0);
    uint8_t *bb = aligned_copy(&pb);
    assert_int_equal(open_into(&b, bb, pb.len, &t), TR_OK);
    tr_pack_info bi;
    tr_pack_get_info(b.r, &bi);
    assert_memory_not_equal(bi.pack_hash, a.pack_hash, 32);
    delta_parts db;
    delta_parts_init(&db, f, bi.pack_hash);
    db.spec.security_counter = 1;
    uint8_t *b1 = make_delta(&db.spec, KEY, &lb1);
    assert_int_equal(apply_into(&b, b1, lb1, &t), TR_OK);
    assert_int_equal(fs.slot[TR_COUNTER_DELTA].counter, 1);
    assert_memory_equal(fs.slot[TR_COUNTER_DELTA].base, bi.pack_hash, 32);
    /* A's delta does not fit B, and A itself is now a rollback, so A's
     * older delta 1 has no way back in. */
    assert_int_equal(apply_into(&b, a1, la1, &t), TR_E_DELTA_BASE);
    assert_int_equal(open_into(&b, f->aligned, f->pack.len, &t), TR_E_ROLLBACK);
    /* With only an in-RAM delta memory (what the router kept before views
     * were immutable), on a device that lived through A's delta 3 and B:
     * back on A (its pack counter is allowed by the trust's floor 0), A's
     * own count is B's now, so the older delta 1 is accepted. This is the
     * equal-or-lower-pack-counter case INTEGRATION.md describes. The RAM
     * store would also keep A's pack out; its pack slot is cleared before
     * A comes back, as the old router never held one. */
    tr_counter_slot nslots[2];
    memset(nslots, 0, sizeof nslots);
    tr_counter_store nram;
    tr_counter_store_ram(&nram, nslots);
    tr_trust bare = {.keys = &f->pub, .n_keys = 1, .counters = &nram};
    view_box n = new_box(DIM, M + 1, 0);
    assert_int_equal(open_into(&n, f->aligned, f->pack.len, &bare), TR_OK);
    assert_int_equal(apply_into(&n, a3, la3, &bare), TR_OK);
    assert_int_equal(apply_into(&n, a1, la1, &bare), TR_E_ROLLBACK);
    assert_int_equal(open_into(&n, bb, pb.len, &bare), TR_OK);
    assert_int_equal(apply_into(&n, b1, lb1, &bare), TR_OK);
    memset(&nslots[TR_COUNTER_PACK], 0, sizeof nslots[0]);
    assert_int_equal(open_into(&n, f->aligned, f->pack.len, &bare), TR_OK);
    assert_int_equal(apply_into(&n, a1, la1, &bare), TR_OK);
    free(a1);
    free(a3);
    free(b1);
    free(bb);
    trh_buf_free(&pb);
    free_box(&b);
    free_box(&n);
}

/* ---- Signatures: one pack, one valid signature encoding ---- */

static const uint8_t p256_n[32] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51};

/* Test's own strict DER reader: r and s right-aligned in 32 bytes. */
static void der_split(const uint8_t *sig, size_t len, uint8_t r[32], uint8_t s[32])
{
    assert_true(len >= 8 && sig[0] == 0x30 && sig[1] == len - 2 && sig[2] == 0x02);
    size_t lr = sig[3];
    assert_true(lr >= 1 && lr <= 33 && sig[4 + lr] == 0x02);
    size_t ls = sig[5 + lr];
    assert_int_equal(6 + lr + ls, len);
    const uint8_t *pr = sig + 4, *ps = sig + 6 + lr;
    /* Minimal: a leading zero only before a byte with its top bit set. */
    assert_true(!(pr[0] & 0x80) && !(pr[0] == 0 && lr > 1 && !(pr[1] & 0x80)));
    assert_true(!(ps[0] & 0x80) && !(ps[0] == 0 && ls > 1 && !(ps[1] & 0x80)));
    memset(r, 0, 32);
    memset(s, 0, 32);
    memcpy(r + 32 - (lr - (lr == 33)), pr + (lr == 33), lr - (lr == 33));
    memcpy(s + 32 - (ls - (ls == 33)), ps + (ls == 33), ls - (ls == 33));
}

/* Encodes SEQUENCE { INTEGER r, INTEGER s }: minimal, or with the given
 * deviation. Returns the length. */
enum { ENC_STRICT, ENC_LONG_SEQ, ENC_LONG_INT, ENC_EXTRA_ZERO };
static size_t der_join(uint8_t *out, const uint8_t r[32], const uint8_t s[32], int how)
{
    uint8_t body[80];
    size_t n = 0;
    for (int v = 0; v < 2; v++) {
        const uint8_t *x = v ? s : r;
        size_t i = 0;
        while (i < 31 && x[i] == 0)
            i++;
        size_t pad = (x[i] >> 7) + (how == ENC_EXTRA_ZERO && v == 0), len = 32 - i + pad;
        body[n++] = 0x02;
        if (how == ENC_LONG_INT && v == 0)
            body[n++] = 0x81;
        body[n++] = (uint8_t)len;
        memset(body + n, 0, pad);
        memcpy(body + n + pad, x + i, 32 - i);
        n += len;
    }
    size_t h = 0;
    out[h++] = 0x30;
    if (how == ENC_LONG_SEQ)
        out[h++] = 0x81;
    out[h++] = (uint8_t)n;
    memcpy(out + h, body, n);
    return h + n;
}

/* The fixture pack with its trailer replaced by one carrying sig. */
static tr_status load_with_sig(const fixture *f, const uint8_t *sig, size_t sl)
{
    uint64_t sb = tr_ld64(f->aligned + TR_H_SIGNED_BYTES);
    trh_buf b = {0};
    trh_buf_put(&b, f->aligned, (size_t)sb);
    trh_pack_append_trailer(&b, f->aligned + sb + 8, sig, sl);
    uint8_t *p = aligned_copy(&b);
    view_box box = new_box(DIM, M, 0);
    tr_trust t = {.keys = &f->pub, .n_keys = 1};
    tr_status st = open_into(&box, p, b.len, &t);
    free_box(&box);
    free(p);
    trh_buf_free(&b);
    return st;
}

/* What a lenient verifier (mbedTLS's own DER reader, no low-S rule) says:
 * shows each variant is the same signature, only re-encoded. */
static int lenient_ok(const tr_pubkey *pub, const uint8_t hash[32], const uint8_t *sig, size_t sl)
{
    mbedtls_ecdsa_context ec;
    mbedtls_ecdsa_init(&ec);
    int rc = mbedtls_ecp_group_load(&ec.grp, MBEDTLS_ECP_DP_SECP256R1);
    if (rc == 0)
        rc = mbedtls_ecp_point_read_binary(&ec.grp, &ec.Q, pub->point, 65);
    if (rc == 0)
        rc = mbedtls_ecdsa_read_signature(&ec, hash, 32, sig, sl);
    mbedtls_ecdsa_free(&ec);
    return rc == 0;
}

static void test_signature_one_encoding(void **state)
{
    fixture *f = *state;
    uint64_t sb = tr_ld64(f->aligned + TR_H_SIGNED_BYTES);
    uint8_t hash[32], sig[TR_SIG_MAX_BYTES], var[TR_SIG_MAX_BYTES + 4], r[32], s[32], hs[32];
    mbedtls_sha256_ret(f->aligned, (size_t)sb, hash, 0);
    tr_pubkey pub;
    size_t sl = 0;
    /* The signer always writes minimal DER with s <= n/2, whatever the
     * random nonce; a signer that left s alone fails this 2^-64 of runs. */
    int shorter = 0;
    for (int i = 0; i < 64; i++) {
        size_t l;
        uint8_t one[TR_SIG_MAX_BYTES];
        assert_int_equal(trh_key_sign(KEY, hash, one, &l, &pub), 0);
        der_split(one, l, r, s);
        uint8_t half[32];
        int borrow = 0; /* half = n >> 1 */
        for (int j = 0; j < 32; j++) {
            half[j] = (uint8_t)((p256_n[j] >> 1) | borrow << 7);
            borrow = p256_n[j] & 1;
        }
        assert_true(memcmp(s, half, 32) <= 0);
        assert_int_equal(load_with_sig(f, one, l), TR_OK);
        /* Keep one short enough that every variant fits in 72 bytes, so
         * the verifier's DER reader (not the length limit) refuses it. */
        if (l <= 70 && !shorter) {
            memcpy(sig, one, l);
            sl = l;
            shorter = 1;
        }
    }
    assert_true(shorter);
    der_split(sig, sl, r, s);
    assert_int_equal(der_join(var, r, s, ENC_STRICT), sl);
    assert_memory_equal(var, sig, sl);
    assert_int_equal(load_with_sig(f, sig, sl), TR_OK);
    const int hows[] = {ENC_LONG_SEQ, ENC_LONG_INT, ENC_EXTRA_ZERO};
    for (size_t i = 0; i < sizeof hows / sizeof *hows; i++) {
        size_t vl = der_join(var, r, s, hows[i]);
        assert_true(vl == sl + 1 && vl <= TR_SIG_MAX_BYTES);
        assert_true(lenient_ok(&f->pub, hash, var, vl));
        assert_int_equal(load_with_sig(f, var, vl), TR_E_SIGNATURE);
    }
    /* High S: (r, n - s) is the same signature's twin. */
    int borrow = 0;
    for (int j = 31; j >= 0; j--) {
        int d = p256_n[j] - s[j] - borrow;
        borrow = d < 0;
        hs[j] = (uint8_t)(d + (borrow << 8));
    }
    size_t vl = der_join(var, r, hs, ENC_STRICT);
    assert_true(vl <= TR_SIG_MAX_BYTES);
    assert_true(lenient_ok(&f->pub, hash, var, vl));
    assert_int_equal(load_with_sig(f, var, vl), TR_E_SIGNATURE);
    /* A byte after s inside the SEQUENCE. */
    memcpy(var, sig, sl);
    var[sl] = 0;
    var[1]++;
    assert_int_equal(load_with_sig(f, var, sl + 1), TR_E_SIGNATURE);
}

/* The prefilter's query code has room for dim bits (tr_ctx_size knows
 * only dim), so a sign-code section with a wider stride than dim needs made
 * the route zero and read qcode words past its scratch. Signed-but-wrong
 * packs must be refused, not served: here rows built for 4 code words under
 * a header that says dim 64 (one word). */
static void test_sign_stride_wider_than_dim_is_refused(void **state)
{
    (void)state;
    enum { RN = 4, RDIM = 256, RM = 2 };
    static int8_t refs[RN * RDIM];
    static float scores[RN * RM];
    for (int i = 0; i < RN * RDIM; i++)
        refs[i] = (int8_t)(i % 13 - 6);
    for (int i = 0; i < RN * RM; i++)
        scores[i] = (float)(i % 2);
    const trh_pack_model models[RM] = {{"dev", 1, TR_DEVICE}, {"cloud", 2, TR_CLOUD}};
    trh_pack_spec s = {.embedder_name = "test-embedder", .dim = RDIM, .n_refs = RN, .n_models = RM,
                      .models = models, .refs = refs, .scores = scores, .k = 2, .prefilter_c = 2};
    trh_buf b = {0};
    trh_pack_layout lay;
    assert_int_equal(trh_pack_write(&s, &b, &lay), 0);
    uint32_t ns = tr_ld32(b.data + TR_H_N_SECTIONS), stride = 0;
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = b.data + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == TR_SEC_REF_SIGNS)
            stride = tr_ld32(e + TR_S_STRIDE);
    }
    assert_int_equal(stride, RDIM / 8);
    tr_st32(b.data + TR_H_DIM, 64);
    assert_int_equal(trh_pack_sign(&b, KEY), 0);
    uint8_t *p = aligned_copy(&b);
    tr_pubkey pub;
    assert_int_equal(trh_key_load_public(PUB, &pub), 0);
    view_box r = new_box(64, RM, 2);
    assert_int_equal(load(&r, p, b.len, &pub, 0, 0), TR_E_MALFORMED);
    /* The same pack with the header's dim left alone is fine. */
    trh_buf_free(&b);
    assert_int_equal(trh_pack_write(&s, &b, &lay), 0);
    assert_int_equal(trh_pack_sign(&b, KEY), 0);
    free(p);
    p = aligned_copy(&b);
    free_box(&r);
    r = new_box(RDIM, RM, 2);
    assert_int_equal(load(&r, p, b.len, &pub, 0, 0), TR_OK);
    free(p);
    free_box(&r);
    trh_buf_free(&b);
}

/* Every status with the number the header pins and the name it goes by: a
 * reordered enum, a renumbered code or a code missing from the name table
 * fails here (statuses are stored in logs and crossed over IPC). */
#define PINNED(e, v) {e, v, #e}
static const struct {
    tr_status st;
    int value;
    const char *name;
} pinned[] = {
    PINNED(TR_OK, 0), PINNED(TR_E_ARG, 1), PINNED(TR_E_ARENA_TOO_SMALL, 2),
    PINNED(TR_E_TRUNCATED, 3), PINNED(TR_E_BAD_MAGIC, 4), PINNED(TR_E_VERSION, 5),
    PINNED(TR_E_NO_SIGNATURE, 6), PINNED(TR_E_TRAILING_DATA, 7), PINNED(TR_E_KEY_UNKNOWN, 8),
    PINNED(TR_E_SIGNATURE, 9), PINNED(TR_E_MALFORMED, 10), PINNED(TR_E_ROLLBACK, 11),
    PINNED(TR_E_EXPIRED, 12), PINNED(TR_E_NO_PACK, 13), PINNED(TR_E_NO_EMBEDDER, 14),
    PINNED(TR_E_EMBEDDER_MISMATCH, 15), PINNED(TR_E_DIM_MISMATCH, 16),
    PINNED(TR_E_NOT_FINITE, 17), PINNED(TR_E_ZERO_VECTOR, 18), PINNED(TR_E_EMPTY_INPUT, 19),
    PINNED(TR_E_UTF8, 20), PINNED(TR_E_NO_MODEL_AVAILABLE, 21), PINNED(TR_E_CRYPTO, 22),
    PINNED(TR_E_UNSUPPORTED, 23), PINNED(TR_E_KEY_REVOKED, 24), PINNED(TR_E_DELTA_BASE, 25),
    PINNED(TR_E_COUNTER_STORE, 26), PINNED(TR_E_LOG_STALE, 27), PINNED(TR_E_OUTPUT_TOO_SMALL, 28),
    PINNED(TR_E_LOCAL_BLOB, 29), PINNED(TR_E_LOCAL_MAC, 30), PINNED(TR_E_LOCAL_PACK, 31),
};

static void test_strerror_covers_every_status(void **state)
{
    /* A status added to the enum must be pinned here too. */
    assert_int_equal(sizeof pinned / sizeof pinned[0], TR_STATUS_COUNT);
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        assert_int_equal((int)pinned[i].st, pinned[i].value);
        assert_string_equal(tr_status_name(pinned[i].st), pinned[i].name);
    }
    for (int s = 0; s < TR_STATUS_COUNT; s++) {
        const char *name = tr_status_name((tr_status)s), *msg = tr_strerror((tr_status)s);
        assert_non_null(name);
        assert_non_null(msg);
        assert_true(strlen(msg) > 1);
        assert_true(strncmp(name, "TR_", 3) == 0);
        for (int t = 0; t < s; t++) {
            assert_string_not_equal(msg, tr_strerror((tr_status)t));
            assert_string_not_equal(name, tr_status_name((tr_status)t));
        }
    }
    assert_string_equal(tr_strerror(TR_STATUS_COUNT), "unknown status");
    assert_string_equal(tr_status_name(TR_STATUS_COUNT), "TR_E_UNKNOWN");
    assert_string_equal(tr_status_name((tr_status)-1), "TR_E_UNKNOWN");
}

/* The linked library's version is the header's, in both forms, and the
 * number is built as the header says (major * 10000 + minor * 100 + patch). */
static void test_version(void **state)
{
    assert_int_equal(tr_version(), TR_VERSION_NUMBER);
    assert_int_equal(TR_VERSION_NUMBER,
                     TR_VERSION_MAJOR * 10000 + TR_VERSION_MINOR * 100 + TR_VERSION_PATCH);
    assert_true(TR_VERSION_MINOR < 100 && TR_VERSION_PATCH < 100);
    assert_string_equal(tr_version_string(), TR_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TR_VERSION_MAJOR, TR_VERSION_MINOR,
             TR_VERSION_PATCH);
    assert_string_equal(tr_version_string(), want);
}

/* Field by field: memcmp would also compare padding. NaN distances (the
 * cluster method) compare equal by their bits. */
static void assert_same_result(const tr_result *x, const tr_result *y)
{
    assert_int_equal(x->model, y->model);
    assert_ptr_equal(x->model_name, y->model_name);
    assert_int_equal(x->where, y->where);
    assert_memory_equal(&x->cost, &y->cost, sizeof x->cost);
    assert_memory_equal(&x->cost_norm, &y->cost_norm, sizeof x->cost_norm);
    assert_memory_equal(&x->lambda, &y->lambda, sizeof x->lambda);
    assert_memory_equal(&x->utility, &y->utility, sizeof x->utility);
    assert_memory_equal(&x->nearest_distance, &y->nearest_distance, sizeof x->nearest_distance);
    assert_int_equal(x->k, y->k);
    assert_int_equal(x->method, y->method);
    assert_int_equal(x->cluster, y->cluster);
    assert_int_equal(x->flags, y->flags);
    assert_int_equal(x->why, y->why);
}

/* One view, many contexts (what tr_router_share did): a second context on
 * the same view gives the same answers, bit for bit; a view keeps its pack
 * whatever is opened later (into other memory); a failed open writes
 * nothing; a context may be reused for any view it is large enough for. */
static void test_one_view_many_contexts(void **state)
{
    fixture *f = *state;
    view_box src = new_box(DIM, M, 0);
    void *cm;
    size_t need = tr_ctx_size(DIM, M, 0);
    assert_int_equal(posix_memalign(&cm, 64, need), 0);
    tr_ctx *c2 = NULL, *untouched = (tr_ctx *)(uintptr_t)1, *out = untouched;
    assert_int_equal(tr_ctx_init(NULL, need, DIM, M, 0, &out), TR_E_ARG);
    assert_int_equal(tr_ctx_init(cm, need, DIM, M, 0, NULL), TR_E_ARG);
    assert_int_equal(tr_ctx_init((uint8_t *)cm + 1, need, DIM, M, 0, &out), TR_E_ARG);
    assert_int_equal(tr_ctx_init(cm, need - 1, DIM, M, 0, &out), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_ctx_init(cm, 8, DIM, M, 0, &out), TR_E_ARENA_TOO_SMALL);
    assert_ptr_equal(out, untouched);
    assert_int_equal(tr_ctx_init(cm, need, DIM, M, 0, &c2), TR_OK);
    assert_ptr_equal(c2, cm);
    assert_int_equal(load(&src, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    const tr_pack *first_view = src.r;

    tr_pack_info a, b;
    tr_result want[20], got;
    float pw[M], pg[M];
    const tr_route_out og = {pg, M, NULL, 0, NULL, 0};
    for (int i = 0; i < 20; i++) {
        const int8_t *q = f->refs + (i * 13) * DIM;
        const tr_query qq = tr_query_i8("test-embedder", q, DIM);
        assert_int_equal(route_i8(&src, "test-embedder", q, DIM, NULL, &want[i], pw), TR_OK);
        assert_int_equal(tr_route(first_view, c2, &qq, NULL, &got, &og), TR_OK);
        assert_same_result(&want[i], &got);
        assert_memory_equal(pw, pg, sizeof pw);
    }

    /* Another pack (other default k) opened and served: the first view
     * keeps its pack, from the caller's bytes. */
    uint8_t *first = f->aligned;
    const size_t first_len = f->pack.len;
    f->aligned = NULL;
    trh_pack_spec s2 = spec_of(f);
    s2.k = 3;
    s2.security_counter = 6;
    build(f, &s2, KEY);
    assert_int_equal(load(&src, f->aligned, f->pack.len, &f->pub, 0, 0), TR_OK);
    assert_ptr_not_equal(src.r, first_view);
    tr_pack_get_info(src.r, &a);
    assert_int_equal(a.default_k, 3);
    assert_int_equal(tr_pack_get_info(first_view, &b), TR_OK);
    assert_int_equal(b.default_k, 10);
    assert_int_equal(b.security_counter, 5);
    assert_memory_not_equal(a.pack_hash, b.pack_hash, 32);
    /* A failed open leaves both alone. */
    assert_int_equal(load(&src, first, first_len, &f->pub, 99, 0), TR_E_ROLLBACK);
    assert_int_equal(tr_pack_get_info(first_view, &b), TR_OK);
    assert_int_equal(b.default_k, 10);
    for (int i = 0; i < 20; i++) {
        const int8_t *q = f->refs + (i * 13) * DIM;
        const tr_query qq = tr_query_i8("test-embedder", q, DIM);
        assert_int_equal(tr_route(first_view, c2, &qq, NULL, &got, &og), TR_OK);
        assert_same_result(&want[i], &got);
        /* The same context serves the other view in turn. */
        assert_int_equal(tr_route(src.r, c2, &qq, NULL, &got, &og), TR_OK);
        assert_int_equal(got.k, 3);
    }
    free(first);
    free(cm);
    free_box(&src);
}

/* trh_first_pc (SIF's principal component) is the top eigenvector of X^T X
 * on both of its paths: the Gram matrix formed once (D <= 512) and the
 * passes over the rows (D above). Rows with one strong shared direction
 * plus noise; checked: unit norm, X^T X pc = lambda pc to 1e-9, and
 * lambda at least the Rayleigh quotient of the planted direction and of
 * every axis (the largest eigenvalue bounds them all). */
static void test_first_pc_is_top_eigenvector(void **state)
{
    (void)state;
    static const uint32_t dims[] = {3, 40, 512, 513, 700};
    for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
        const uint32_t dim = dims[t], n = 3000;
        float *x = malloc((size_t)n * dim * sizeof *x), *pc = malloc(dim * sizeof *pc);
        double *w = calloc(dim, sizeof *w), *axis = calloc(dim, sizeof *axis);
        double *u = malloc(dim * sizeof *u);
        assert_non_null(x), assert_non_null(pc), assert_non_null(w), assert_non_null(axis);
        assert_non_null(u);
        uint64_t s = 0x5eed + dim;
        double un = 0;
        for (uint32_t d = 0; d < dim; d++) {
            u[d] = (double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) / 9007199254740992.0 - 0.5;
            un += u[d] * u[d];
        }
        for (uint32_t d = 0; d < dim; d++)
            u[d] /= sqrt(un);
        for (uint32_t i = 0; i < n; i++) {
            double a = (double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) / 9007199254740992.0 + 0.5;
            for (uint32_t d = 0; d < dim; d++) {
                double e = (double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) / 9007199254740992.0 - 0.5;
                x[(size_t)i * dim + d] = (float)(a * u[d] + 0.3 * e);
            }
        }
        assert_int_equal(trh_first_pc(x, n, dim, pc), 0);
        double nrm = 0, lam = 0, ru = 0;
        for (uint32_t d = 0; d < dim; d++)
            nrm += (double)pc[d] * pc[d];
        assert_true(fabs(nrm - 1.0) < 1e-6);
        for (uint32_t i = 0; i < n; i++) { /* w = X^T X pc; axis[d] = sum x_d^2 */
            const float *r = x + (size_t)i * dim;
            double tp = 0, tu = 0;
            for (uint32_t d = 0; d < dim; d++)
                tp += (double)r[d] * pc[d], tu += r[d] * u[d];
            for (uint32_t d = 0; d < dim; d++)
                w[d] += tp * r[d], axis[d] += (double)r[d] * r[d];
            ru += tu * tu;
        }
        for (uint32_t d = 0; d < dim; d++)
            lam += w[d] * pc[d];
        double res = 0;
        for (uint32_t d = 0; d < dim; d++)
            res += (w[d] - lam * pc[d]) * (w[d] - lam * pc[d]);
        if (!(sqrt(res) <= 1e-6 * lam))
            fail_msg("D=%u: |X^T X pc - lambda pc| = %g, lambda %g", dim, sqrt(res), lam);
        assert_true(lam >= ru * (1 - 1e-9));
        for (uint32_t d = 0; d < dim; d++)
            assert_true(lam >= axis[d] * (1 - 1e-9));
        free(x), free(pc), free(w), free(axis), free(u);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_route_matches_reference_mixed, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_route_matches_reference_binary, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_rows_tie_to_lower_index, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_ties_go_to_device, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_verify_errors, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_every_flipped_byte_is_rejected, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_keeps_serving_after_reject, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_ctx_size_is_exact, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_caller_embedding_checks, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_prefilter_matches_reference, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_prefilter_choice_recall, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_route_matches_reference, setup_mixed, teardown),
        cmocka_unit_test_setup_teardown(test_pack_default_method, setup_mixed, teardown),
        cmocka_unit_test(test_sign_stride_wider_than_dim_is_refused),
        cmocka_unit_test(test_strerror_covers_every_status),
        cmocka_unit_test(test_version),
        cmocka_unit_test_setup_teardown(test_zeroed_opts_use_calibrated_lambda, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_delta_adds_a_model, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_delta_rejections_keep_serving, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_delta_retires_and_sets_defaults, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_counter_store, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_delta_counter_per_base, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_signature_one_encoding, setup_binary, teardown),
        cmocka_unit_test_setup_teardown(test_one_view_many_contexts, setup_binary, teardown),
        cmocka_unit_test(test_first_pc_is_top_eigenvector),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
