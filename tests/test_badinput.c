/* The bad-input matrix (issue 7, part 2): every way a caller or a network
 * can hand the library garbage, each with the exact tr_status it must give,
 * and after each rejected pack or delta the proof that the router still
 * serves what it served before (same pack hash, same delta hash, same route).
 *
 * Packs are copied into buffers of exactly their length, so an ASan build
 * (see the report of issue 7) turns any read past the end into a failure. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "keys.h"
#include "packwriter.h"
#include "tinyroute.h"
#include "tr_cluster.h"
#include "tr_format.h"

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"
#define OTHER_KEY "fixtures/keys/test-other.key"
#define OTHER_PUB "fixtures/keys/test-other.pub"
#define EMB "badinput-emb"

/* Small on purpose: the loops below verify one signature per flipped bit. */
enum { N = 16, DIM = 8, M = 3, K = 2, T = 2 };

/* The small pack A (kNN + clusters + tasks, no embedder) and a delta D over
 * it that adds one model; built once for the whole group. */
static struct world {
    trh_buf pack, delta;    /* signed */
    size_t sb, dsb;        /* their signed bytes */
    int8_t refs[N * DIM];
    tr_pubkey pub, other;
    int level;             /* LEVEL_*: how much of the payload to flip */
} W;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* A buffer of exactly len bytes (64-aligned), so ASan sees any overread. */
static uint8_t *exact_copy(const uint8_t *src, size_t len)
{
    uint8_t *p = NULL;
    assert_int_equal(posix_memalign((void **)&p, 64, len ? len : 1), 0);
    if (len)
        memcpy(p, src, len);
    return p;
}

static void sign_buf(trh_buf *b, const char *key) { assert_int_equal(trh_pack_sign(b, key), 0); }

/* The same bytes on every call (but for the key's signature). */
static void build_pack(trh_buf *out, uint64_t expires, const char *key)
{
    rng_state = 0x9E3779B97F4A7C15ull;
    static float scores[N * M];
    static const trh_pack_model models[M] = {
        {"dev-small", 1, TR_DEVICE}, {"cloud-mid", 10, TR_CLOUD}, {"cloud-big", 60, TR_CLOUD}};
    for (int i = 0; i < N * DIM; i++)
        W.refs[i] = (int8_t)((int)(rnd() % 255) - 127);
    for (int i = 0; i < N; i++)
        for (int m = 0; m < M; m++)
            scores[i * M + m] = (float)(rnd() % 100 < (uint32_t)(30 + 25 * m));
    float cent[K * DIM];
    for (int i = 0; i < K * DIM; i++)
        cent[i] = (float)((int)(rnd() % 2001) - 1000) / 3000.0f;
    trh_buf clu = {0}, tasks = {0};
    assert_int_equal(trh_clusters_section(cent, K, DIM, M, 16.0f, &clu), 0);
    tr_clusters cv;
    assert_int_equal(tr_clusters_view(clu.data, clu.len, DIM, M, &cv), TR_OK);
    float *psi = (float *)(void *)cv.psi;
    for (int i = 0; i < K * M; i++)
        psi[i] = (float)(i + 1) / (K * M + 1);
    static const float u[T] = {0.1f, 0.7f}, acc[T * M] = {0.5f, 0.6f, 0.7f, 0.4f, 0.8f, 0.9f};
    trh_tasks_section(u, acc, T, M, 19, 0.09f, 0.6f, &tasks);
    trh_pack_spec s = {.security_counter = 5, .created_unix = 1700000000, .expires_unix = expires,
                      .embedder_name = EMB, .dim = DIM, .n_refs = N, .n_models = M,
                      .models = models, .refs = W.refs, .scores = scores, .k = 4, .lambda = 0.1f,
                      .clusters = clu.data, .clusters_len = clu.len, .tasks = tasks.data,
                      .tasks_len = tasks.len};
    trh_pack_layout lay;
    out->len = 0;
    assert_int_equal(trh_pack_write(&s, out, &lay), 0);
    sign_buf(out, key);
    trh_buf_free(&clu);
    trh_buf_free(&tasks);
}

/* The writer pads bitsets to 64 bytes. */
enum { BITS_STRIDE = ((N + 7) / 8 + 63) / 64 * 64 };

static void build_delta(trh_buf *out, const uint8_t base_hash[32], uint64_t counter)
{
    static uint8_t rec[TR_MODEL_REC_BYTES], cor[BITS_STRIDE], val[BITS_STRIDE];
    static float psi[K];
    memset(rec, 0, sizeof rec);
    memcpy(rec + TR_M_NAME, "cloud-new", 9);
    tr_stf32(rec + TR_M_COST, 5.0f);
    tr_stf32(rec + TR_M_COST_NORM, 4.0f / 59.0f);
    tr_stf32(rec + TR_M_PRIOR, 0.75f);
    tr_st32(rec + TR_M_WHERE, TR_CLOUD);
    for (int i = 0; i < N; i++) {
        val[i >> 3] |= (uint8_t)(1u << (i & 7));
        if (i % 4)
            cor[i >> 3] |= (uint8_t)(1u << (i & 7));
    }
    psi[0] = 0.2f;
    psi[1] = 0.3f;
    trh_delta_spec d = {.security_counter = counter, .created_unix = 1700000001,
                       .n_base_models = M, .n_base_refs = N, .n_clusters = K,
                       .bit_stride = BITS_STRIDE, .n_added = 1, .records = rec,
                       .correct = cor, .valid = val, .psi = psi};
    memcpy(d.base_hash, base_hash, 32);
    out->len = 0;
    trh_delta_write(&d, out);
    sign_buf(out, KEY);
}

/* ---- routers and what they serve ---- */

#include "view_box.h"

static view_box new_router(void) { return new_box(DIM, M + 1, 0); }

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

/* A route on a view with context c. These tests' arrays (penalties, masks,
 * predictions) hold n_models entries; tests/test_api.c checks the lengths. */
static tr_status route_q(const tr_pack *p, tr_ctx *c, const tr_query *q, const tr_route_opts *o,
                         tr_result *res, float *pred)
{
    tr_pack_info info = {0};
    tr_pack_get_info(p, &info);
    tr_route_opts tmp;
    if (o) {
        tmp = *o;
        tmp.penalty_count = tmp.penalty_count ? tmp.penalty_count : info.n_models;
        tmp.available_bits = tmp.available_bits ? tmp.available_bits : info.n_models;
        o = &tmp;
    }
    tr_route_out out = {pred, info.n_models, NULL, 0, NULL, 0};
    return tr_route(p, c, q, o, res, &out);
}

static tr_status route_i8(const tr_pack *p, tr_ctx *c, const char *emb, const int8_t *e,
                          uint32_t dim, const tr_route_opts *o, tr_result *res, float *pred)
{
    const tr_query q = tr_query_i8(emb, e, dim);
    return route_q(p, c, &q, o, res, pred);
}

static tr_status route_f32(const tr_pack *p, tr_ctx *c, const char *emb, const float *e,
                           uint32_t dim, const tr_route_opts *o, tr_result *res, float *pred)
{
    const tr_query q = tr_query_f32(emb, e, dim);
    return route_q(p, c, &q, o, res, pred);
}

static tr_status route_text(const tr_pack *p, tr_ctx *c, const char *t, size_t len,
                            const tr_route_opts *o, tr_result *res, float *pred)
{
    const tr_query q = tr_query_text(t, len);
    return route_q(p, c, &q, o, res, pred);
}

static tr_trust trust_of(const tr_pubkey *k, uint64_t floor_, uint64_t now)
{
    return (tr_trust){.keys = k, .n_keys = 1, .min_security_counter = floor_, .now_unix = now};
}

static tr_status load(view_box *b, const uint8_t *p, size_t len)
{
    tr_trust t = trust_of(&W.pub, 0, 0);
    return open_into(b, p, len, &t);
}

static tr_status apply(view_box *b, const uint8_t *p, size_t len)
{
    tr_trust t = trust_of(&W.pub, 0, 0);
    return apply_into(b, p, len, &t);
}

/* What a router serves, as seen from outside: the pack and delta hashes and
 * the answers to a fixed query by kNN and by clusters. */
typedef struct served {
    uint8_t pack_hash[32], delta_hash[32];
    uint32_t n_models, knn_model, clu_model, cluster;
    float knn_pred[M + 1], clu_pred[M + 1];
} served;

static served snapshot(view_box *b)
{
    served s;
    memset(&s, 0, sizeof s);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b->r, &info), TR_OK);
    memcpy(s.pack_hash, info.pack_hash, 32);
    s.n_models = info.n_models;
    tr_delta_info di;
    if (tr_pack_get_delta(b->r, &di) == TR_OK)
        memcpy(s.delta_hash, di.delta_hash, 32);
    tr_result res;
    assert_int_equal(route_i8(b->r, b->c, EMB, W.refs + 3 * DIM, DIM, NULL, &res, s.knn_pred), TR_OK);
    s.knn_model = res.model;
    tr_route_opts oc = {.lambda = TR_LAMBDA_DEFAULT, .method = TR_METHOD_CLUSTER};
    assert_int_equal(route_i8(b->r, b->c, EMB, W.refs + 3 * DIM, DIM, &oc, &res, s.clu_pred), TR_OK);
    s.clu_model = res.model;
    s.cluster = res.cluster;
    return s;
}

static int same_served(view_box *b, const served *want)
{
    served now = snapshot(b);
    return memcmp(&now, want, sizeof now) == 0;
}

/* ---- the expected code of a damaged container ---- */

/* What a device must say about a trailer found at sb in bytes p[0, len),
 * per PACK_FORMAT.md "Trailer and verification order" (key and signature
 * not judged here). TR_OK: a well-formed trailer. */
static tr_status trailer_code(const uint8_t *p, size_t len, uint64_t sb)
{
    if (sb < TR_HEADER_BYTES)
        return TR_E_MALFORMED;
    if (sb > len)
        return TR_E_TRUNCATED;
    size_t rest = len - (size_t)sb;
    const uint8_t *t = p + sb;
    if (rest == 0)
        return TR_E_NO_SIGNATURE;
    if (rest < 4)
        return memcmp(t, TR_TRAILER_MAGIC, rest) == 0 ? TR_E_TRUNCATED : TR_E_NO_SIGNATURE;
    if (memcmp(t, TR_TRAILER_MAGIC, 4) != 0)
        return TR_E_NO_SIGNATURE;
    if (rest < TR_TRAILER_FIXED_BYTES)
        return TR_E_TRUNCATED;
    if ((t[4] | t[5] << 8) != TR_TRAILER_VERSION)
        return TR_E_VERSION;
    size_t sl = (size_t)(t[6] | t[7] << 8);
    if (sl == 0 || sl > TR_SIG_MAX_BYTES)
        return TR_E_SIGNATURE;
    if (rest < TR_TRAILER_FIXED_BYTES + sl)
        return TR_E_TRUNCATED;
    return rest > TR_TRAILER_FIXED_BYTES + sl ? TR_E_TRAILING_DATA : TR_OK;
}

/* The code for one flipped bit of a good container (pack or delta) of len
 * bytes whose trailer starts at sb; orig is the unflipped bytes. */
static tr_status flip_code(const uint8_t *orig, size_t len, size_t sb, size_t i, int bit,
                           int is_pack)
{
    if (i < 8)
        return TR_E_BAD_MAGIC;
    if (i < 12)
        return TR_E_VERSION;
    /* The header size (12..15) and the name's NUL (71) are judged only
     * behind the signature (PACK_FORMAT.md's order): a flip there is a
     * changed signed byte like any other. */
    if (i >= TR_H_SIGNED_BYTES && i < TR_H_SIGNED_BYTES + 8) {
        uint64_t moved = (uint64_t)sb ^ (1ull << (8 * (i - TR_H_SIGNED_BYTES) + bit));
        return trailer_code(orig, len, moved); /* never TR_OK: sb is unique */
    }
    if (i < sb)
        return TR_E_SIGNATURE; /* the signed bytes changed */
    size_t t = i - sb;
    if (t < 4)
        return TR_E_NO_SIGNATURE;
    if (t < 6)
        return TR_E_VERSION;
    if (t < 8) {
        uint8_t copy[8];
        memcpy(copy, orig + sb, 8);
        copy[t] ^= (uint8_t)(1u << bit);
        size_t sl = (size_t)(copy[6] | copy[7] << 8), real = len - sb - TR_TRAILER_FIXED_BYTES;
        if (sl == 0 || sl > TR_SIG_MAX_BYTES)
            return TR_E_SIGNATURE;
        return sl < real ? TR_E_TRAILING_DATA : TR_E_TRUNCATED;
    }
    if (t < TR_TRAILER_FIXED_BYTES)
        return TR_E_KEY_UNKNOWN;
    return TR_E_SIGNATURE; /* the DER signature */
}

/* How much the flip loops cover (TR_BADINPUT): "full", every bit of every
 * byte (about a minute natively: one ECDSA verify per bit); by default
 * every bit of the header and the trailer and one bit of every other byte,
 * the bit rotating, since past the header every signed byte takes the same
 * path (hash, verify); "quick" (tests/run.sh under qemu, where a verify
 * costs ~30 ms) every bit only of what is read before the signature (magic,
 * version, signed_bytes, the trailer's fixed
 * part), one bit of each other header and signature byte, and one payload
 * byte in 13. */
enum { LEVEL_QUICK, LEVEL_DEFAULT, LEVEL_FULL };

static int read_before_signature(size_t i, size_t sb)
{
    return i < 12 || (i >= TR_H_SIGNED_BYTES && i < TR_H_SIGNED_BYTES + 8) ||
           (i >= sb && i < sb + TR_TRAILER_FIXED_BYTES);
}

static unsigned flip_bits_of(size_t i, size_t sb)
{
    if (W.level == LEVEL_FULL || read_before_signature(i, sb))
        return 0xFF;
    if (W.level == LEVEL_DEFAULT)
        return i < TR_HEADER_BYTES || i >= sb ? 0xFF : 1u << (i % 8);
    if (i < TR_HEADER_BYTES || i >= sb)
        return 1u << (i % 8);
    return i % 13 == 0 ? 1u << (i / 13 % 8) : 0;
}

/* The same for the re-signed mutations (one ECDSA sign each): by default
 * the header and the section table whole, then every 3rd byte; quick, the
 * header fields with their own codes (magic, version, size, the counts and
 * signed_bytes at 72..103 in both headers), then every 41st byte. */
static int mutation_tested(size_t i)
{
    if (W.level == LEVEL_FULL)
        return 1;
    if (W.level == LEVEL_DEFAULT)
        return i < TR_HEADER_BYTES + 7 * TR_SECTION_ENTRY_BYTES || i % 3 == 0;
    return i < 16 || (i >= TR_H_DIM && i < TR_H_PREFILTER_C + 4) || i % 41 == 0;
}

static int group_setup(void **state)
{
    assert_int_equal(trh_key_load_public(PUB, &W.pub), 0);
    assert_int_equal(trh_key_load_public(OTHER_PUB, &W.other), 0);
    build_pack(&W.pack, 0, KEY);
    W.sb = (size_t)tr_ld64(W.pack.data + TR_H_SIGNED_BYTES);
    view_box b = new_router();
    uint8_t *p = exact_copy(W.pack.data, W.pack.len);
    assert_int_equal(load(&b, p, W.pack.len), TR_OK);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    build_delta(&W.delta, info.pack_hash, 3);
    W.dsb = (size_t)tr_ld64(W.delta.data + TR_DH_SIGNED_BYTES);
    free(p);
    free_box(&b);
    const char *e = getenv("TR_BADINPUT");
    W.level = !e ? LEVEL_DEFAULT : strcmp(e, "full") == 0 ? LEVEL_FULL
            : strcmp(e, "quick") == 0 ? LEVEL_QUICK : LEVEL_DEFAULT;
    (void)state;
    return 0;
}

static int group_teardown(void **state)
{
    trh_buf_free(&W.pack);
    trh_buf_free(&W.delta);
    (void)state;
    return 0;
}

/* A router serving A (and, with_delta, A + D); *pa and *pd hold the bytes
 * it serves and must outlive it. */
static view_box serving(int with_delta, uint8_t **pa, uint8_t **pd)
{
    view_box b = new_router();
    *pa = exact_copy(W.pack.data, W.pack.len);
    assert_int_equal(load(&b, *pa, W.pack.len), TR_OK);
    *pd = NULL;
    if (with_delta) {
        *pd = exact_copy(W.delta.data, W.delta.len);
        assert_int_equal(apply(&b, *pd, W.delta.len), TR_OK);
    }
    return b;
}

/* ---- the matrix ---- */

static void test_the_small_pack_is_good(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_int_equal(info.n_models, M + 1);
    assert_int_equal(info.n_clusters, K);
    assert_int_equal(info.n_tasks, T);
    assert_false(info.has_text_embedder);
    print_message("small pack %zu bytes (signed %zu), delta %zu bytes (signed %zu)\n",
                  W.pack.len, W.sb, W.delta.len, W.dsb);
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

static void test_pack_every_truncation(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    const size_t len = W.pack.len, sb = W.sb;
    /* Landmarks: inside the magic, the header, the table, the sections,
     * exactly the signed bytes, the trailer's magic, its fixed part, the
     * signature. */
    const struct { size_t at; tr_status st; } marks[] = {
        {0, TR_E_TRUNCATED}, {7, TR_E_TRUNCATED}, {8, TR_E_TRUNCATED},
        {127, TR_E_TRUNCATED}, {128, TR_E_TRUNCATED}, {200, TR_E_TRUNCATED},
        {sb - 1, TR_E_TRUNCATED}, {sb, TR_E_NO_SIGNATURE}, {sb + 1, TR_E_TRUNCATED},
        {sb + 3, TR_E_TRUNCATED}, {sb + 4, TR_E_TRUNCATED}, {sb + 39, TR_E_TRUNCATED},
        {sb + 40, TR_E_TRUNCATED}, {len - 1, TR_E_TRUNCATED}};
    for (size_t j = 0; j < sizeof marks / sizeof *marks; j++) {
        uint8_t *p = exact_copy(W.pack.data, marks[j].at);
        assert_int_equal(load(&b, p, marks[j].at), marks[j].st);
        free(p);
    }
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = exact_copy(W.pack.data, cut);
        tr_status st = load(&b, p, cut);
        tr_status want_st = cut == sb ? TR_E_NO_SIGNATURE : TR_E_TRUNCATED;
        free(p);
        if (st != want_st)
            fail_msg("pack cut to %zu of %zu bytes: %s, want %s", cut, len,
                     tr_status_name(st), tr_status_name(want_st));
        /* Checking every length costs a route; every 61st is plenty. */
        if (cut % 61 == 0 || cut == sb)
            assert_true(same_served(&b, &want));
    }
    /* Short garbage: not a pack at all once the magic is there to read. */
    static const uint8_t junk[128] = "GIF89a not a pack at all";
    for (size_t n = 0; n <= sizeof junk; n += 1) {
        uint8_t *p = exact_copy(junk, n);
        assert_int_equal(load(&b, p, n), n < 8 ? TR_E_TRUNCATED : TR_E_BAD_MAGIC);
        free(p);
    }
    assert_true(same_served(&b, &want));
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void flip_loop(int is_pack)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    const trh_buf *src = is_pack ? &W.pack : &W.delta;
    const size_t len = src->len, sb = is_pack ? W.sb : W.dsb;
    uint8_t *p = exact_copy(src->data, len);
    size_t tested = 0, by_code[TR_STATUS_COUNT] = {0};
    double t0 = now_s();
    for (size_t i = 0; i < len; i++) {
        unsigned bits = flip_bits_of(i, sb);
        for (int bit = 0; bit < 8; bit++) {
            if (!(bits >> bit & 1))
                continue;
            p[i] ^= (uint8_t)(1u << bit);
            tr_status st = is_pack ? load(&b, p, len) : apply(&b, p, len);
            p[i] ^= (uint8_t)(1u << bit);
            tr_status exp = flip_code(src->data, len, sb, i, bit, is_pack);
            if (st != exp)
                fail_msg("%s byte %zu bit %d: %s, want %s", is_pack ? "pack" : "delta", i, bit,
                         tr_status_name(st), tr_status_name(exp));
            by_code[st]++;
            tested++;
        }
        if (bits && (i % 64 == 0 || i >= sb))
            assert_true(same_served(&b, &want));
    }
    double dt = now_s() - t0;
    print_message("%s: %zu flipped bits (%s) in %.1f s; SIGNATURE %zu, KEY_UNKNOWN %zu, "
                  "TRUNCATED %zu, NO_SIGNATURE %zu, TRAILING_DATA %zu, other %zu\n",
                  is_pack ? "pack" : "delta", tested,
                  W.level == LEVEL_FULL ? "all" : W.level == LEVEL_DEFAULT ? "a bit a byte" : "quick", dt,
                  by_code[TR_E_SIGNATURE], by_code[TR_E_KEY_UNKNOWN], by_code[TR_E_TRUNCATED],
                  by_code[TR_E_NO_SIGNATURE], by_code[TR_E_TRAILING_DATA],
                  tested - by_code[TR_E_SIGNATURE] - by_code[TR_E_KEY_UNKNOWN] -
                      by_code[TR_E_TRUNCATED] - by_code[TR_E_NO_SIGNATURE] -
                      by_code[TR_E_TRAILING_DATA]);
    assert_int_equal(by_code[TR_OK], 0);
    assert_true(tested >= 8 * (TR_TRAILER_FIXED_BYTES + 25) + (len - sb - TR_TRAILER_FIXED_BYTES));
    /* Unflipped, it is still good. */
    if (is_pack)
        assert_int_equal(load(&b, p, len), TR_OK);
    assert_int_equal(apply(&b, is_pack ? pd : p, W.delta.len), TR_OK);
    assert_true(same_served(&b, &want));
    free(p);
    free(pa);
    free(pd);
    free_box(&b);
}

static void test_pack_every_bit_flip(void **state) { flip_loop(1); (void)state; }
static void test_delta_every_bit_flip(void **state) { flip_loop(0); (void)state; }

static void test_delta_every_truncation(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    for (size_t cut = 0; cut < W.delta.len; cut++) {
        uint8_t *p = exact_copy(W.delta.data, cut);
        tr_status st = apply(&b, p, cut);
        tr_status want_st = cut == W.dsb ? TR_E_NO_SIGNATURE : TR_E_TRUNCATED;
        free(p);
        if (st != want_st)
            fail_msg("delta cut to %zu: %s, want %s", cut, tr_status_name(st),
                     tr_status_name(want_st));
        if (cut % 61 == 0 || cut == W.dsb)
            assert_true(same_served(&b, &want));
    }
    /* A pack is not a delta; a delta is not a pack. */
    assert_int_equal(apply(&b, pa, W.pack.len), TR_E_BAD_MAGIC);
    assert_int_equal(load(&b, pd, W.delta.len), TR_E_BAD_MAGIC);
    assert_true(same_served(&b, &want));
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

/* ---- signature and trust ---- */

static void test_signature_and_trust(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    const size_t len = W.pack.len, sb = W.sb;
    tr_trust t;

    /* Signed by a key the device does not trust; no key trusted at all. */
    t = trust_of(&W.other, 0, 0);
    assert_int_equal(open_into(&b, pa, len, &t), TR_E_KEY_UNKNOWN);
    t.n_keys = 0;
    t.keys = NULL;
    assert_int_equal(open_into(&b, pa, len, &t), TR_E_KEY_UNKNOWN);
    trh_buf other = {0};
    build_pack(&other, 0, OTHER_KEY);
    uint8_t *po = exact_copy(other.data, other.len);
    assert_int_equal(load(&b, po, other.len), TR_E_KEY_UNKNOWN);
    /* The other key's signature under our key's id. */
    uint8_t id[32];
    trh_key_id(&W.pub, id);
    memcpy(po + tr_ld64(po + TR_H_SIGNED_BYTES) + 8, id, 32);
    assert_int_equal(load(&b, po, other.len), TR_E_SIGNATURE);
    free(po);
    trh_buf_free(&other);
    /* Revoked: trusted key, but its id is on the revocation list. */
    uint8_t gone[1][32];
    memcpy(gone[0], id, 32);
    t = trust_of(&W.pub, 0, 0);
    t.revoked = (const uint8_t(*)[32])gone;
    t.n_revoked = 1;
    assert_int_equal(open_into(&b, pa, len, &t), TR_E_KEY_REVOKED);
    assert_true(same_served(&b, &want));

    /* No signature: the signed bytes alone, or followed by junk. */
    uint8_t *p = exact_copy(W.pack.data, sb);
    assert_int_equal(load(&b, p, sb), TR_E_NO_SIGNATURE);
    free(p);
    trh_buf junk = {0};
    trh_buf_put(&junk, W.pack.data, sb);
    trh_buf_put(&junk, "NOT A SIGNATURE TRAILER, JUST BYTES THAT FOLLOW THE PACK", 56);
    p = exact_copy(junk.data, junk.len);
    assert_int_equal(load(&b, p, junk.len), TR_E_NO_SIGNATURE);
    free(p);
    trh_buf_free(&junk);

    /* A second signature appended. */
    trh_buf two = {0};
    trh_buf_put(&two, W.pack.data, len);
    trh_buf_put(&two, W.pack.data + sb, len - sb);
    p = exact_copy(two.data, two.len);
    assert_int_equal(load(&b, p, two.len), TR_E_TRAILING_DATA);
    free(p);
    /* One stray byte after the signature. */
    two.len = len + 1;
    p = exact_copy(two.data, two.len);
    assert_int_equal(load(&b, p, two.len), TR_E_TRAILING_DATA);
    free(p);
    trh_buf_free(&two);

    /* The delta: wrong key, no signature, a second signature. */
    t = trust_of(&W.other, 0, 0);
    assert_int_equal(apply_into(&b, pd, W.delta.len, &t), TR_E_KEY_UNKNOWN);
    p = exact_copy(W.delta.data, W.dsb);
    assert_int_equal(apply(&b, p, W.dsb), TR_E_NO_SIGNATURE);
    free(p);
    trh_buf_put(&two, W.delta.data, W.delta.len);
    trh_buf_put(&two, W.delta.data + W.dsb, W.delta.len - W.dsb);
    p = exact_copy(two.data, two.len);
    assert_int_equal(apply(&b, p, two.len), TR_E_TRAILING_DATA);
    free(p);
    trh_buf_free(&two);
    assert_true(same_served(&b, &want));
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

/* ---- signed, but wrong behind the signature ---- */

/* Section table entry of the given type in signed bytes p. */
static uint8_t *entry_of(uint8_t *p, uint32_t type)
{
    uint32_t ns = tr_ld32(p + TR_H_N_SECTIONS);
    for (uint32_t i = 0; i < ns; i++) {
        uint8_t *e = p + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == type)
            return e;
    }
    fail_msg("no section of type %u", type);
    return NULL;
}

typedef void (*mutator)(uint8_t *p, size_t sb);

/* The signed bytes of A, changed by mut, signed again with the trusted key,
 * loaded (trust: floor, now) into a router serving A + D: must give want,
 * and the router must still serve A + D. */
static void check_resigned(view_box *b, const served *was, mutator mut, tr_status want,
                           uint64_t floor_, uint64_t now, const char *what)
{
    trh_buf s = {0};
    trh_buf_put(&s, W.pack.data, W.sb);
    mut(s.data, W.sb);
    sign_buf(&s, KEY);
    uint8_t *p = exact_copy(s.data, s.len);
    tr_trust t = trust_of(&W.pub, floor_, now);
    tr_status st = open_into(b, p, s.len, &t);
    if (st != want)
        fail_msg("%s: %s, want %s", what, tr_status_name(st), tr_status_name(want));
    if (st != TR_OK)
        assert_true(same_served(b, was));
    free(p);
    trh_buf_free(&s);
}

static void m_overlap(uint8_t *p, size_t sb)
{
    tr_st64(entry_of(p, TR_SEC_REF_I8) + TR_S_OFFSET, tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET));
}
static void m_overlap_tail(uint8_t *p, size_t sb)
{
    uint8_t *e = entry_of(p, TR_SEC_MODELS);
    tr_st64(e + TR_S_LENGTH, tr_ld64(e + TR_S_LENGTH) + 64);
}
static void m_beyond(uint8_t *p, size_t sb)
{
    tr_st64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET, (sb + 63) / 64 * 64 + 64);
}
static void m_huge_length(uint8_t *p, size_t sb)
{
    tr_st64(entry_of(p, TR_SEC_REF_INVNORM) + TR_S_LENGTH, UINT64_MAX);
}
static void m_huge_offset(uint8_t *p, size_t sb)
{
    tr_st64(entry_of(p, TR_SEC_REF_INVNORM) + TR_S_OFFSET, UINT64_MAX - 63);
}
static void m_in_table(uint8_t *p, size_t sb)
{
    tr_st64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET, 64);
}
static void m_unaligned(uint8_t *p, size_t sb)
{
    uint8_t *e = entry_of(p, TR_SEC_REF_INVNORM);
    tr_st64(e + TR_S_OFFSET, tr_ld64(e + TR_S_OFFSET) + 4);
}
static void m_duplicate(uint8_t *p, size_t sb)
{
    tr_st32(entry_of(p, TR_SEC_TASKS) + TR_S_TYPE, TR_SEC_CLUSTERS);
}
static void m_missing_models(uint8_t *p, size_t sb)
{
    tr_st32(entry_of(p, TR_SEC_MODELS) + TR_S_TYPE, 99);
}
static void m_no_sections(uint8_t *p, size_t sb) { tr_st32(p + TR_H_N_SECTIONS, 0); }
static void m_many_sections(uint8_t *p, size_t sb) { tr_st32(p + TR_H_N_SECTIONS, TR_MAX_SECTIONS + 1); }
static void m_all_sections(uint8_t *p, size_t sb) { tr_st32(p + TR_H_N_SECTIONS, UINT32_MAX); }
/* N * D overflows 32 bits (0x40000001 * 8 = 8 mod 2^32): the row section
 * claims exactly that wrapped size. */
static void m_nd_overflow(uint8_t *p, size_t sb)
{
    const uint32_t n = 0x40000001u;
    tr_st32(p + TR_H_N_REFS, n);
    uint8_t *e = entry_of(p, TR_SEC_REF_I8);
    tr_st32(e + TR_S_STRIDE, DIM);
    tr_st32(e + TR_S_COUNT, n);
    tr_st64(e + TR_S_LENGTH, (uint32_t)(n * DIM));
}
static void m_n_overflow_invnorm(uint8_t *p, size_t sb)
{
    const uint32_t n = 0x40000004u; /* 4 * n = 16 mod 2^32 */
    tr_st32(p + TR_H_N_REFS, n);
    tr_st64(entry_of(p, TR_SEC_REF_INVNORM) + TR_S_LENGTH, (uint32_t)(4u * n));
}
static void m_m_overflow(uint8_t *p, size_t sb)
{
    const uint32_t m = 0x40000001u; /* 96 * m wraps to 96 */
    tr_st32(p + TR_H_N_MODELS, m);
    tr_st64(entry_of(p, TR_SEC_MODELS) + TR_S_LENGTH, (uint32_t)(m * TR_MODEL_REC_BYTES));
}
static void m_dim0(uint8_t *p, size_t sb) { tr_st32(p + TR_H_DIM, 0); }
static void m_dim_huge(uint8_t *p, size_t sb) { tr_st32(p + TR_H_DIM, UINT32_MAX); }
static void m_dim_big(uint8_t *p, size_t sb) { tr_st32(p + TR_H_DIM, 8193); }
static void m_dim_past_stride(uint8_t *p, size_t sb) { tr_st32(p + TR_H_DIM, 17); }
static void m_refs0(uint8_t *p, size_t sb) { tr_st32(p + TR_H_N_REFS, 0); }
static void m_models0(uint8_t *p, size_t sb) { tr_st32(p + TR_H_N_MODELS, 0); }
static void m_signed_small(uint8_t *p, size_t sb) { tr_st64(p + TR_H_SIGNED_BYTES, 127); }
static void m_prefilter_no_codes(uint8_t *p, size_t sb) { tr_st32(p + TR_H_PREFILTER_C, 4); }
static void m_k0(uint8_t *p, size_t sb)
{
    tr_st32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_K, 0);
}
static void m_lambda_nan(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_LAMBDA, NAN);
}
static void m_invnorm_inf(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_REF_INVNORM) + TR_S_OFFSET) + 4 * 5, INFINITY);
}
static void m_name_unterminated(uint8_t *p, size_t sb)
{
    memset(p + tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET), 'x', TR_MODEL_NAME_MAX);
}
static void m_clusters_k_huge(uint8_t *p, size_t sb)
{
    tr_st32(p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET) + TR_C_K, 0x40000001u);
}
static void m_clusters_psi_out(uint8_t *p, size_t sb)
{
    uint8_t *c = p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET);
    tr_st32(c + TR_C_OFF_PSI, tr_ld32(c + TR_C_TOTAL));
}
static void m_tasks_t_huge(uint8_t *p, size_t sb)
{
    tr_st32(p + tr_ld64(entry_of(p, TR_SEC_TASKS) + TR_S_OFFSET) + TR_T_N_TASKS, 0x40000001u);
}
static void m_tasks_unknown(uint8_t *p, size_t sb)
{
    tr_st32(entry_of(p, TR_SEC_TASKS) + TR_S_TYPE, 200); /* unknown: ignored */
}
/* The bounds PACK_FORMAT.md states, one violation each ("Bounds checked
 * at load"). */
static void m_header_bytes(uint8_t *p, size_t sb) { tr_st32(p + TR_H_HEADER_BYTES, 129); }
static void m_name_no_nul(uint8_t *p, size_t sb) { p[TR_H_EMBEDDER + TR_EMBEDDER_NAME_MAX - 1] = 'x'; }
static void m_header_flags(uint8_t *p, size_t sb) { tr_st32(p + TR_H_FLAGS, 1); }
static void m_header_tail(uint8_t *p, size_t sb) { p[TR_HEADER_BYTES - 1] = 1; }
static void m_header_tail_first(uint8_t *p, size_t sb) { p[TR_H_PREFILTER_C + 4] = 0x80; }
static void m_section_flags(uint8_t *p, size_t sb) { tr_st32(entry_of(p, TR_SEC_REF_I8) + TR_S_FLAGS, 1); }
static void m_unknown_flags(uint8_t *p, size_t sb)
{
    /* Unknown types are skipped, but their entry is bounds-checked. */
    uint8_t *e = entry_of(p, TR_SEC_TASKS);
    tr_st32(e + TR_S_TYPE, 200);
    tr_st32(e + TR_S_FLAGS, 2);
}
static void m_ref_minus128(uint8_t *p, size_t sb)
{
    p[tr_ld64(entry_of(p, TR_SEC_REF_I8) + TR_S_OFFSET) + 7 * tr_ld32(entry_of(p, TR_SEC_REF_I8) + TR_S_STRIDE) + 3] = 0x80;
}
static void m_ref_last_minus128(uint8_t *p, size_t sb)
{
    uint8_t *e = entry_of(p, TR_SEC_REF_I8);
    p[tr_ld64(e + TR_S_OFFSET) + (uint64_t)(N - 1) * tr_ld32(e + TR_S_STRIDE) + DIM - 1] = 0x80;
}
static void m_ref_padding(uint8_t *p, size_t sb)
{
    uint8_t *e = entry_of(p, TR_SEC_REF_I8);
    if (tr_ld32(e + TR_S_STRIDE) <= DIM)
        fail_msg("the test pack's rows have no padding (stride %u)", tr_ld32(e + TR_S_STRIDE));
    p[tr_ld64(e + TR_S_OFFSET) + DIM] = 1;
}
static void m_centroid_minus128(uint8_t *p, size_t sb)
{
    uint8_t *c = p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET);
    c[tr_ld32(c + TR_C_OFF_ROWS) + (K - 1) * tr_ld32(c + TR_C_STRIDE) + 1] = 0x80;
}
static float *tasks_f32(uint8_t *p, uint32_t off)
{
    return (float *)(void *)(p + tr_ld64(entry_of(p, TR_SEC_TASKS) + TR_S_OFFSET) + off);
}
static void m_bandwidth_tiny(uint8_t *p, size_t sb)
{
    tr_stf32((uint8_t *)tasks_f32(p, TR_T_BANDWIDTH), 1e-38f);
}
static void m_bandwidth_small(uint8_t *p, size_t sb)
{
    tr_stf32((uint8_t *)tasks_f32(p, TR_T_BANDWIDTH), TR_TASK_BANDWIDTH_MIN * 0.99f);
}
static void m_bandwidth_big(uint8_t *p, size_t sb)
{
    tr_stf32((uint8_t *)tasks_f32(p, TR_T_BANDWIDTH), TR_TASK_BANDWIDTH_MAX * 1.01f);
}
static void m_bandwidth_inf(uint8_t *p, size_t sb)
{
    tr_stf32((uint8_t *)tasks_f32(p, TR_T_BANDWIDTH), INFINITY);
}
static void m_bandwidth_min(uint8_t *p, size_t sb)
{
    tr_stf32((uint8_t *)tasks_f32(p, TR_T_BANDWIDTH), TR_TASK_BANDWIDTH_MIN);
}
static void m_gate_nan(uint8_t *p, size_t sb) { tr_stf32((uint8_t *)tasks_f32(p, TR_T_GATE), NAN); }
static void m_k_dist0(uint8_t *p, size_t sb) { tr_st32((uint8_t *)tasks_f32(p, TR_T_K_DIST), 0); }
static void m_cost_neg(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET) + TR_M_COST, -1.0f);
}
static void m_cost_norm_big(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET) + TR_M_COST_NORM, 1.5f);
}
static void m_prior_nan(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET) + TR_M_PRIOR, NAN);
}
static void m_where_2(uint8_t *p, size_t sb)
{
    tr_st32(p + tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET) + TR_M_WHERE, 2);
}
static void m_k_over_max(uint8_t *p, size_t sb)
{
    tr_st32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_K, TR_K_MAX + 1);
}
static void m_lambda_neg(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_LAMBDA, -0.5f);
}
static void m_prior_strength_neg(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_PRIOR, -1.0f);
}
static void m_prior_strength_over(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_PRIOR,
             nextafterf(TR_PRIOR_STRENGTH_MAX, INFINITY));
}
static void m_prior_strength_nan(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_PRIOR, NAN);
}
static void m_prior_strength_max(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET) + TR_D_PRIOR,
             TR_PRIOR_STRENGTH_MAX);
}
static uint8_t *defaults_at(uint8_t *p) { return p + tr_ld64(entry_of(p, TR_SEC_DEFAULTS) + TR_S_OFFSET); }
/* The builder's validation record: consistent, or refused. */
static void m_val_area_over_1(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, 1.0001f);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, 1);
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_K);
}
static void m_val_area_nan(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, NAN);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, 1);
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_K);
}
static void m_val_queries_over_n(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, tr_ld32(p + TR_H_N_REFS) + 1);
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_K);
}
static void m_val_chosen_bit(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, 1);
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_K | 16u);
}
static void m_val_nothing_chosen(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, 1);
    tr_st32(defaults_at(p) + TR_D_CHOSEN, 0);
}
static void m_val_area_unvalidated(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, 0);
    tr_st32(defaults_at(p) + TR_D_CHOSEN, 0);
}
static void m_defaults_tail(uint8_t *p, size_t sb) { defaults_at(p)[TR_DEFAULTS_BYTES - 1] = 1; }
static void m_val_ok(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_VAL_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_VAL_QUERIES, tr_ld32(p + TR_H_N_REFS));
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_K | TR_CHOSE_PRIOR | TR_CHOSE_LAMBDA);
}
/* The default method (bytes 24..35): one the pack can serve, with a
 * consistent held-out record. A has clusters but no learned map. */
static void m_method_3(uint8_t *p, size_t sb) { tr_st32(defaults_at(p) + TR_D_METHOD, 3); }
static void m_method_lmap_missing(uint8_t *p, size_t sb)
{
    tr_st32(defaults_at(p) + TR_D_METHOD, TR_PACK_METHOD_LEARNED_MAP);
}
static void m_method_cluster(uint8_t *p, size_t sb)
{
    tr_st32(defaults_at(p) + TR_D_METHOD, TR_PACK_METHOD_CLUSTER);
    tr_stf32(defaults_at(p) + TR_D_METHOD_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_METHOD_QUERIES, tr_ld32(p + TR_H_N_REFS));
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_METHOD);
}
static void m_method_area_over_1(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_METHOD_AREA, 1.0001f);
    tr_st32(defaults_at(p) + TR_D_METHOD_QUERIES, 1);
}
static void m_method_area_nan(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_METHOD_AREA, NAN);
    tr_st32(defaults_at(p) + TR_D_METHOD_QUERIES, 1);
}
static void m_method_queries_over_n(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_METHOD_AREA, 0.5f);
    tr_st32(defaults_at(p) + TR_D_METHOD_QUERIES, tr_ld32(p + TR_H_N_REFS) + 1);
}
static void m_method_area_unvalidated(uint8_t *p, size_t sb)
{
    tr_stf32(defaults_at(p) + TR_D_METHOD_AREA, 0.5f);
}
static void m_method_chosen_unvalidated(uint8_t *p, size_t sb)
{
    tr_st32(defaults_at(p) + TR_D_CHOSEN, TR_CHOSE_METHOD);
}
static void m_defaults_used_end(uint8_t *p, size_t sb) { defaults_at(p)[TR_D_USED_BYTES] = 1; }
static void m_prior_over_1(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_MODELS) + TR_S_OFFSET) + TR_M_PRIOR, 1.0001f);
}
static void m_psi_over_1(uint8_t *p, size_t sb)
{
    uint8_t *c = p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET);
    tr_stf32(c + tr_ld32(c + TR_C_OFF_PSI) + 4, 1.0001f);
}
static void m_psi_prior_neg(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET) + TR_C_PSI_PRIOR, -1.0f);
}
static void m_psi_prior_over(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET) + TR_C_PSI_PRIOR,
             nextafterf(TR_PRIOR_STRENGTH_MAX, INFINITY));
}
static void m_psi_prior_nan(uint8_t *p, size_t sb)
{
    tr_stf32(p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET) + TR_C_PSI_PRIOR, NAN);
}
static void m_inv_scale_0(uint8_t *p, size_t sb)
{
    uint8_t *c = p + tr_ld64(entry_of(p, TR_SEC_CLUSTERS) + TR_S_OFFSET);
    tr_stf32(c + tr_ld32(c + TR_C_OFF_INV_SCALE), 0.0f);
}
static void m_task_u_big(uint8_t *p, size_t sb)
{
    uint8_t *t = p + tr_ld64(entry_of(p, TR_SEC_TASKS) + TR_S_OFFSET);
    tr_stf32(t + tr_ld32(t + TR_T_OFF_U), 2.5f);
}
static void m_prefilter_over(uint8_t *p, size_t sb) { tr_st32(p + TR_H_PREFILTER_C, TR_PREFILTER_MAX + 1); }
static void m_counter_4(uint8_t *p, size_t sb) { tr_st64(p + TR_H_SECURITY, 4); }
static void m_expires(uint8_t *p, size_t sb) { tr_st64(p + TR_H_EXPIRES, 1800000000); }
static void m_none(uint8_t *p, size_t sb) { (void)p; }

static void test_signed_but_malformed(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    const struct { mutator f; tr_status st; const char *what; } cases[] = {
        {m_overlap, TR_E_MALFORMED, "sections overlapping"},
        {m_overlap_tail, TR_E_MALFORMED, "a section running into the next"},
        {m_beyond, TR_E_MALFORMED, "a section past the signed bytes"},
        {m_huge_length, TR_E_MALFORMED, "length 2^64-1"},
        {m_huge_offset, TR_E_MALFORMED, "offset near 2^64"},
        {m_in_table, TR_E_MALFORMED, "a section inside the header"},
        {m_unaligned, TR_E_MALFORMED, "an unaligned section"},
        {m_duplicate, TR_E_MALFORMED, "a duplicate section type"},
        {m_missing_models, TR_E_MALFORMED, "no models section"},
        {m_no_sections, TR_E_MALFORMED, "zero sections"},
        {m_many_sections, TR_E_MALFORMED, "33 sections"},
        {m_all_sections, TR_E_MALFORMED, "2^32-1 sections"},
        {m_nd_overflow, TR_E_MALFORMED, "N*D wrapping 32 bits"},
        {m_n_overflow_invnorm, TR_E_MALFORMED, "4*N wrapping 32 bits"},
        {m_m_overflow, TR_E_MALFORMED, "96*M wrapping 32 bits"},
        {m_dim0, TR_E_MALFORMED, "dim 0"},
        {m_dim_huge, TR_E_MALFORMED, "dim 2^32-1"},
        {m_dim_big, TR_E_MALFORMED, "dim 8193"},
        {m_dim_past_stride, TR_E_MALFORMED, "dim past the row stride"},
        {m_refs0, TR_E_MALFORMED, "no references"},
        {m_models0, TR_E_MALFORMED, "no models"},
        {m_signed_small, TR_E_MALFORMED, "signed bytes inside the header"},
        {m_prefilter_no_codes, TR_E_MALFORMED, "a prefilter without sign codes"},
        {m_k0, TR_E_MALFORMED, "default k 0"},
        {m_lambda_nan, TR_E_MALFORMED, "default lambda NaN"},
        {m_invnorm_inf, TR_E_MALFORMED, "an infinite inverse norm"},
        {m_name_unterminated, TR_E_MALFORMED, "a model name without NUL"},
        {m_clusters_k_huge, TR_E_MALFORMED, "K = 0x40000001 clusters"},
        {m_clusters_psi_out, TR_E_MALFORMED, "Psi past the clusters section"},
        {m_tasks_t_huge, TR_E_MALFORMED, "T = 0x40000001 tasks"},
        {m_header_bytes, TR_E_MALFORMED, "header size 129"},
        {m_name_no_nul, TR_E_MALFORMED, "embedder name without NUL (byte 71)"},
        {m_header_flags, TR_E_MALFORMED, "header flags 1"},
        {m_header_tail, TR_E_MALFORMED, "header byte 127 not zero"},
        {m_header_tail_first, TR_E_MALFORMED, "header byte 104 not zero"},
        {m_section_flags, TR_E_MALFORMED, "section flags 1"},
        {m_unknown_flags, TR_E_MALFORMED, "an unknown section's flags 2"},
        {m_ref_minus128, TR_E_MALFORMED, "-128 in a reference row"},
        {m_ref_last_minus128, TR_E_MALFORMED, "-128 in the last reference value"},
        {m_ref_padding, TR_E_MALFORMED, "reference row padding not zero"},
        {m_centroid_minus128, TR_E_MALFORMED, "-128 in a centroid"},
        {m_bandwidth_tiny, TR_E_MALFORMED, "S3 bandwidth 1e-38"},
        {m_bandwidth_small, TR_E_MALFORMED, "S3 bandwidth under the minimum"},
        {m_bandwidth_big, TR_E_MALFORMED, "S3 bandwidth over the maximum"},
        {m_bandwidth_inf, TR_E_MALFORMED, "S3 bandwidth Inf"},
        {m_gate_nan, TR_E_MALFORMED, "S3 gate NaN"},
        {m_k_dist0, TR_E_MALFORMED, "S3 k_dist 0"},
        {m_cost_neg, TR_E_MALFORMED, "a negative cost"},
        {m_cost_norm_big, TR_E_MALFORMED, "cost_norm 1.5"},
        {m_prior_nan, TR_E_MALFORMED, "prior NaN"},
        {m_where_2, TR_E_MALFORMED, "where 2"},
        {m_k_over_max, TR_E_MALFORMED, "default k over TR_K_MAX"},
        {m_lambda_neg, TR_E_MALFORMED, "default lambda negative"},
        {m_prior_strength_neg, TR_E_MALFORMED, "default prior strength -1"},
        {m_prior_strength_over, TR_E_MALFORMED, "default prior strength over TR_PRIOR_STRENGTH_MAX"},
        {m_prior_strength_nan, TR_E_MALFORMED, "default prior strength NaN"},
        {m_prior_over_1, TR_E_MALFORMED, "a model prior 1.0001"},
        {m_psi_over_1, TR_E_MALFORMED, "Psi 1.0001"},
        {m_psi_prior_neg, TR_E_MALFORMED, "Psi prior strength -1"},
        {m_psi_prior_over, TR_E_MALFORMED, "Psi prior strength over TR_PRIOR_STRENGTH_MAX"},
        {m_psi_prior_nan, TR_E_MALFORMED, "Psi prior strength NaN"},
        {m_inv_scale_0, TR_E_MALFORMED, "a centroid inv_scale 0"},
        {m_task_u_big, TR_E_MALFORMED, "task u 2.5"},
        {m_prefilter_over, TR_E_MALFORMED, "prefilter C over TR_PREFILTER_MAX"},
        {m_val_area_over_1, TR_E_MALFORMED, "validation Area 1.0001"},
        {m_val_area_nan, TR_E_MALFORMED, "validation Area NaN"},
        {m_val_queries_over_n, TR_E_MALFORMED, "validation queries N + 1"},
        {m_val_chosen_bit, TR_E_MALFORMED, "an unknown chosen-on-validation bit"},
        {m_val_area_unvalidated, TR_E_MALFORMED, "an Area without validation queries"},
        {m_defaults_tail, TR_E_MALFORMED, "defaults byte 63 not zero"},
        {m_defaults_used_end, TR_E_MALFORMED, "defaults byte 36 not zero"},
        {m_method_3, TR_E_MALFORMED, "default method 3"},
        {m_method_lmap_missing, TR_E_MALFORMED, "default method learned map without one"},
        {m_method_area_over_1, TR_E_MALFORMED, "method validation Area 1.0001"},
        {m_method_area_nan, TR_E_MALFORMED, "method validation Area NaN"},
        {m_method_queries_over_n, TR_E_MALFORMED, "method validation queries N + 1"},
        {m_method_area_unvalidated, TR_E_MALFORMED, "a method Area without queries"},
        {m_method_chosen_unvalidated, TR_E_MALFORMED, "method chosen without queries"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_resigned(&b, &want, cases[i].f, cases[i].st, 0, 0, cases[i].what);
    /* Rolled back (A's counter is 5) and expired: signed and well formed. */
    check_resigned(&b, &want, m_none, TR_E_ROLLBACK, 6, 0, "counter 5 under floor 6");
    check_resigned(&b, &want, m_counter_4, TR_E_ROLLBACK, 5, 0, "counter 4 under floor 5");
    check_resigned(&b, &want, m_expires, TR_E_EXPIRED, 0, 1800000000, "expired at now");
    check_resigned(&b, &want, m_expires, TR_E_EXPIRED, 0, UINT64_MAX, "expired long ago");
    /* The controls: the same path accepts a pack that is fine. */
    check_resigned(&b, &want, m_expires, TR_OK, 0, 1799999999, "not yet expired");
    check_resigned(&b, &want, m_bandwidth_min, TR_OK, 0, 0, "S3 bandwidth at the minimum");
    check_resigned(&b, &want, m_prior_strength_max, TR_OK, 0, 0, "prior strength at the maximum");
    check_resigned(&b, &want, m_val_ok, TR_OK, 0, 0, "validated over all N references");
    check_resigned(&b, &want, m_val_nothing_chosen, TR_OK, 0, 0, "validated, every setting given");
    check_resigned(&b, &want, m_method_cluster, TR_OK, 0, 0, "default method cluster, chosen");
    {
        tr_pack_info mi;
        assert_int_equal(tr_pack_get_info(b.r, &mi), TR_OK);
        assert_int_equal(mi.default_method, TR_METHOD_CLUSTER);
        assert_int_equal(mi.method_validation_queries, tr_ld32(W.pack.data + TR_H_N_REFS));
    }
    check_resigned(&b, &want, m_tasks_unknown, TR_OK, 0, 0, "an unknown section type");
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_int_equal(info.n_tasks, 0); /* the tasks section was ignored */
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

/* What a signed container may answer when byte i of its signed bytes was
 * xored with x before signing: the header fields read before the signature
 * have their own codes, the counts must match the sections, and any other
 * byte may give a pack the parser accepts or one it calls malformed. */
static int mutation_allowed(int is_pack, size_t i, uint8_t x, tr_status st, const trh_buf *s,
                            size_t sb)
{
    if (i < 8)
        return st == TR_E_BAD_MAGIC;
    if (i < 12)
        return st == TR_E_VERSION;
    if (i < 16)
        return st == TR_E_MALFORMED; /* header size */
    if (i >= TR_H_SIGNED_BYTES && i < TR_H_SIGNED_BYTES + 8)
        return st == trailer_code(s->data, s->len, sb ^ ((uint64_t)x << 8 * (i - TR_H_SIGNED_BYTES)));
    if (is_pack) {
        if ((i >= TR_H_N_REFS && i < TR_H_N_SECTIONS + 4) ||
            (i >= TR_H_PREFILTER_C && i < TR_H_PREFILTER_C + 4))
            return st == TR_E_MALFORMED;
        return st == TR_OK || st == TR_E_MALFORMED;
    }
    if (i >= TR_DH_SECURITY && i < TR_DH_SECURITY + 8) /* may fall under the served 3 */
        return st == TR_OK || st == TR_E_ROLLBACK;
    if (i >= TR_DH_BASE_HASH && i < TR_DH_BASE_HASH + 32)
        return st == TR_E_DELTA_BASE;
    if ((i >= TR_DH_BASE_MODELS && i < TR_DH_N_SECTIONS + 4) ||
        (i >= TR_DH_BASE_CLUSTERS && i < TR_DH_BASE_CLUSTERS + 4))
        return st == TR_E_MALFORMED;
    return st == TR_OK || st == TR_E_MALFORMED;
}

/* Every byte of the signed bytes of A (or D) changed, one pattern per byte,
 * and signed again: what the parser behind the signature sees of a leaked
 * key or a builder bug. The code must be one a signed container can get,
 * never a crash (ASan), and an accepted one must route. */
static void mutation_loop(int is_pack)
{
    static const uint8_t patterns[] = {0x80, 0x01, 0xFF, 0x10, 0x7F, 0x04};
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    const trh_buf *src = is_pack ? &W.pack : &W.delta;
    const size_t sb = is_pack ? W.sb : W.dsb;
    size_t tested = 0, ok = 0;
    double t0 = now_s();
    for (size_t i = 0; i < sb; i++) {
        if (!mutation_tested(i))
            continue;
        uint8_t x = patterns[i % sizeof patterns];
        trh_buf s = {0};
        trh_buf_put(&s, src->data, sb);
        /* A delta must count above the served D (3) to be served; the
         * counter's own bytes are mutated as they are. */
        if (!is_pack && !(i >= TR_DH_SECURITY && i < TR_DH_SECURITY + 8))
            tr_st64(s.data + TR_DH_SECURITY, tr_ld64(s.data + TR_DH_SECURITY) + 1);
        s.data[i] ^= x;
        sign_buf(&s, KEY);
        uint8_t *p = exact_copy(s.data, s.len);
        tr_status st = is_pack ? load(&b, p, s.len) : apply(&b, p, s.len);
        if (!mutation_allowed(is_pack, i, x, st, &s, sb))
            fail_msg("%s: signed byte %zu ^ 0x%02x: %s", is_pack ? "pack" : "delta", i, x,
                     tr_status_name(st));
        if (st == TR_OK) {
            /* Serve it: route by kNN and by clusters. */
            ok++;
            tr_result res;
            tr_route_opts oc = {.lambda = TR_LAMBDA_DEFAULT, .method = TR_METHOD_CLUSTER};
            tr_pack_info info;
            assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
            int8_t q[64];
            memset(q, 0, sizeof q);
            memcpy(q, W.refs + 5 * DIM, DIM);
            if (info.dim <= sizeof q) {
                tr_status r1 = route_i8(b.r, b.c, info.embedder, q, info.dim, NULL, &res, NULL);
                tr_status r2 = route_i8(b.r, b.c, info.embedder, q, info.dim, &oc, &res, NULL);
                assert_true(r1 == TR_OK || r1 == TR_E_NO_MODEL_AVAILABLE);
                assert_true(r2 == TR_OK || r2 == TR_E_NO_MODEL_AVAILABLE || r2 == TR_E_UNSUPPORTED);
            }
            /* Back to A + D for the next one (no counter store: a view
             * remembers nothing, so D is accepted again). */
            assert_int_equal(load(&b, pa, W.pack.len), TR_OK);
            assert_int_equal(apply(&b, pd, W.delta.len), TR_OK);
        }
        assert_true(same_served(&b, &want));
        free(p);
        trh_buf_free(&s);
        tested++;
    }
    print_message("%s: %zu signed bytes mutated and re-signed, %zu accepted, %.1f s\n",
                  is_pack ? "pack" : "delta", tested, ok, now_s() - t0);
    assert_true(tested >= 16 + 32 + (sb - 48) / 41);
    free(pa);
    free(pd);
    free_box(&b);
}

static void test_pack_signed_mutations(void **state) { mutation_loop(1); (void)state; }
static void test_delta_signed_mutations(void **state) { mutation_loop(0); (void)state; }

/* ---- caller embeddings ---- */

static void test_caller_embeddings(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(0, &pa, &pd);
    served want = snapshot(&b);
    tr_result res;
    float pred[M + 1];
    float v[DIM + 1];
    int8_t q[DIM + 1];
    for (int d = 0; d <= DIM; d++) {
        v[d] = (float)W.refs[3 * DIM + d % DIM] / 100.0f;
        q[d] = W.refs[3 * DIM + d % DIM];
    }
    assert_int_equal(route_f32(b.r, b.c, EMB, v, DIM, NULL, &res, pred), TR_OK);
    /* Embedder names: another, empty, ours with a suffix, ours cut short. */
    static const char *wrong[] = {"other", "", EMB "-v2", "badinput-em", "BADINPUT-EMB"};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        assert_int_equal(route_f32(b.r, b.c, wrong[i], v, DIM, NULL, &res, pred),
                         TR_E_EMBEDDER_MISMATCH);
        assert_int_equal(route_i8(b.r, b.c, wrong[i], q, DIM, NULL, &res, pred),
                         TR_E_EMBEDDER_MISMATCH);
        /* The name is checked before the length. */
        assert_int_equal(route_i8(b.r, b.c, wrong[i], q, DIM + 1, NULL, &res, pred),
                         TR_E_EMBEDDER_MISMATCH);
    }
    static const uint32_t dims[] = {0, 1, DIM - 1, DIM + 1, 100, UINT32_MAX};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        assert_int_equal(route_f32(b.r, b.c, EMB, v, dims[i], NULL, &res, pred), TR_E_DIM_MISMATCH);
        assert_int_equal(route_i8(b.r, b.c, EMB, q, dims[i], NULL, &res, pred), TR_E_DIM_MISMATCH);
    }
    /* NaN, +Inf, -Inf at every position. */
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (size_t j = 0; j < 4; j++)
        for (int d = 0; d < DIM; d++) {
            float keep = v[d];
            v[d] = bad[j];
            assert_int_equal(route_f32(b.r, b.c, EMB, v, DIM, NULL, &res, pred), TR_E_NOT_FINITE);
            v[d] = keep;
        }
    /* All zero, and all negative zero. */
    float z[DIM];
    memset(z, 0, sizeof z);
    assert_int_equal(route_f32(b.r, b.c, EMB, z, DIM, NULL, &res, pred), TR_E_ZERO_VECTOR);
    for (int d = 0; d < DIM; d++)
        z[d] = -0.0f;
    assert_int_equal(route_f32(b.r, b.c, EMB, z, DIM, NULL, &res, pred), TR_E_ZERO_VECTOR);
    int8_t qz[DIM] = {0};
    assert_int_equal(route_i8(b.r, b.c, EMB, qz, DIM, NULL, &res, pred), TR_E_ZERO_VECTOR);
    /* Extreme but finite floats route: the largest, and one denormal. */
    for (int d = 0; d < DIM; d++)
        z[d] = d % 2 ? FLT_MAX : -FLT_MAX;
    assert_int_equal(route_f32(b.r, b.c, EMB, z, DIM, NULL, &res, pred), TR_OK);
    memset(z, 0, sizeof z);
    z[2] = 1e-45f;
    assert_int_equal(route_f32(b.r, b.c, EMB, z, DIM, NULL, &res, pred), TR_OK);
    /* int8 -128 at every position (it has no positive twin). */
    for (int d = 0; d < DIM; d++) {
        int8_t keep = q[d];
        q[d] = -128;
        assert_int_equal(route_i8(b.r, b.c, EMB, q, DIM, NULL, &res, pred), TR_E_ARG);
        q[d] = keep;
    }
    /* Bad options: k past the limit, NaN or infinite lambda, no such method. */
    const tr_route_opts bad_opts[] = {{.k = TR_K_MAX + 1}, {.lambda = NAN}, {.lambda = INFINITY},
                                      {.lambda = -INFINITY}, {.method = (tr_method)(TR_METHOD_LEARNED_MAP + 1)},
                                      {.method = (tr_method)-1}};
    for (size_t i = 0; i < sizeof bad_opts / sizeof *bad_opts; i++)
        assert_int_equal(route_i8(b.r, b.c, EMB, q, DIM, &bad_opts[i], &res, pred), TR_E_ARG);
    tr_route_opts lm = {.method = TR_METHOD_LEARNED_MAP};
    assert_int_equal(route_i8(b.r, b.c, EMB, q, DIM, &lm, &res, pred), TR_E_UNSUPPORTED);
    /* Text on a pack without an embedder. */
    assert_int_equal(route_text(b.r, b.c, "hello", 5, NULL, &res, pred), TR_E_NO_EMBEDDER);
    int8_t out[DIM];
    assert_int_equal(tr_embed(b.r, b.c, "hello", 5, out, DIM), TR_E_NO_EMBEDDER);
    assert_true(same_served(&b, &want));
    free(pa);
    free_box(&b);
    (void)state;
}

/* ---- prompts, on the fixture pack with its real embedder ---- */

static uint8_t *read_pack(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run through tests/run.sh, or set FIXTURE_PACK)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n > 0);
    uint8_t *p = NULL;
    assert_int_equal(posix_memalign((void **)&p, 64, (size_t)n), 0);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* A view_box serving the fixture pack ($FIXTURE_PACK) under trust t, with a
 * context of the exact size; the caller frees *pack and the view_box. */
static view_box fixture_box(uint8_t **pack, size_t *len, const tr_trust *t)
{
    const char *path = getenv("FIXTURE_PACK");
    *pack = read_pack(path && *path ? path : "build/fixture.trp", len);
    tr_pack_info peek;
    assert_int_equal(tr_pack_peek(*pack, *len, &peek), TR_OK);
    view_box b = new_box(peek.dim, peek.n_models, peek.prefilter_candidates);
    assert_int_equal(open_into(&b, *pack, *len, t), TR_OK);
    return b;
}

/* The task and governor calls of these tests, on a view_box. */
static tr_status task_add_i8(view_box *b, tr_task *t, const char *emb, const int8_t *q, uint32_t dim,
                             const tr_route_opts *o)
{
    const tr_query qq = tr_query_i8(emb, q, dim);
    return tr_task_add(b->r, b->c, t, &qq, o, NULL);
}

static tr_status task_add_text(view_box *b, tr_task *t, const char *text, size_t len,
                               const tr_route_opts *o, int *used)
{
    const tr_query qq = tr_query_text(text, len);
    return tr_task_add(b->r, b->c, t, &qq, o, used);
}

static tr_status task_select(view_box *b, const tr_task *t, const tr_route_opts *o, tr_task_result *res,
                             float *s1, float *s2, float *s3, float *p)
{
    tr_pack_info info = {0};
    tr_pack_get_info(b->r, &info);
    const tr_task_scores sc = {s1, s2, s3, p, info.n_models};
    return tr_task_choose(b->r, b->c, t, o, res, &sc);
}

static tr_status governed_text(view_box *b, const tr_governor *g, uint64_t now, const char *text,
                               size_t len, const tr_route_opts *o, tr_result *res, float *pred)
{
    tr_pack_info info = {0};
    tr_pack_get_info(b->r, &info);
    const tr_query q = tr_query_text(text, len);
    tr_route_out out = {pred, info.n_models, NULL, 0, NULL, 0};
    return tr_route_governed(b->r, b->c, g, now, &q, o, res, &out);
}

/* The fixture pack's embedder section, -128 in its int8 word vectors (and
 * its other stated bounds), signed again: refused, the old pack still served. */
static void test_embedder_bounds(void **state)
{
    size_t len;
    uint8_t *pack;
    tr_trust t = trust_of(&W.pub, 0, 0);
    view_box fb = fixture_box(&pack, &len, &t), *r = &fb;
    static const char good[] = "What is the derivative of x squared with respect to x?";
    tr_result ref, res;
    assert_int_equal(route_text(r->r, r->c, good, strlen(good), NULL, &ref, NULL), TR_OK);
    const uint64_t sb = tr_ld64(pack + TR_H_SIGNED_BYTES);
    uint64_t emb = 0;
    for (uint32_t i = 0; i < tr_ld32(pack + TR_H_N_SECTIONS); i++) {
        const uint8_t *e = pack + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == TR_SEC_EMBEDDER)
            emb = tr_ld64(e + TR_S_OFFSET);
    }
    assert_true(emb != 0);
    const uint8_t *eh = pack + emb;
    const uint32_t nw = tr_ld32(eh + TR_E_N_WORDS), dim = tr_ld32(eh + TR_E_DIM);
    const uint64_t vec = emb + tr_ld32(eh + TR_E_OFF_VECTORS);
    /* First, a middle and the last vector value; then other stated bounds. */
    const struct { uint64_t at; uint32_t v; int width; const char *what; } cases[] = {
        {vec, 0x80, 1, "-128 in the first word vector"},
        {vec + (uint64_t)(nw / 2) * dim + dim / 2, 0x80, 1, "-128 in a middle word vector"},
        {vec + (uint64_t)nw * dim - 1, 0x80, 1, "-128 in the last vector value"},
        {emb + TR_E_FLAGS, 4, 4, "embedder flag bit 2"},
        {emb + TR_E_VEC_SCALE, 0, 4, "embedder scale 0"},
        {emb + TR_E_DIM, dim + 1, 4, "embedder dim != pack dim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        trh_buf s = {0};
        trh_buf_put(&s, pack, (size_t)sb);
        if (cases[i].width == 1)
            s.data[cases[i].at] = (uint8_t)cases[i].v;
        else
            tr_st32(s.data + cases[i].at, cases[i].v);
        sign_buf(&s, KEY);
        uint8_t *p = exact_copy(s.data, s.len);
        tr_status st = open_into(r, p, s.len, &t);
        if (st != TR_E_MALFORMED)
            fail_msg("%s: %s, want TR_E_MALFORMED", cases[i].what, tr_status_name(st));
        assert_int_equal(route_text(r->r, r->c, good, strlen(good), NULL, &res, NULL), TR_OK);
        assert_int_equal(res.model, ref.model);
        assert_memory_equal(res.model_name, ref.model_name, strlen(ref.model_name) + 1);
        free(p);
        trh_buf_free(&s);
    }
    /* The control: the same bytes signed again load. */
    trh_buf s = {0};
    trh_buf_put(&s, pack, (size_t)sb);
    sign_buf(&s, KEY);
    uint8_t *p = exact_copy(s.data, s.len);
    assert_int_equal(open_into(r, p, s.len, &t), TR_OK);
    free(p);
    trh_buf_free(&s);
    free_box(r);
    free(pack);
    (void)state;
}

static void test_prompts(void **state)
{
    size_t len;
    uint8_t *pack;
    tr_trust t = trust_of(&W.pub, 0, 0);
    view_box fb = fixture_box(&pack, &len, &t), *r = &fb;
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(r->r, &info), TR_OK);
    assert_true(info.has_text_embedder);
    tr_result res, ref;
    static const char good[] = "What is the derivative of x squared with respect to x?";
    assert_int_equal(route_text(r->r, r->c, good, strlen(good), NULL, &ref, NULL), TR_OK);
    assert_false(ref.flags & TR_RESULT_PRIOR_ONLY);

    /* Empty: zero length, with or without bytes behind the pointer. */
    assert_int_equal(route_text(r->r, r->c, "", 0, NULL, &res, NULL), TR_E_EMPTY_INPUT);
    assert_int_equal(route_text(r->r, r->c, good, 0, NULL, &res, NULL), TR_E_EMPTY_INPUT);
    int8_t q[1024];
    assert_true(info.dim <= sizeof q);
    assert_int_equal(tr_embed(r->r, r->c, "", 0, q, info.dim), TR_E_EMPTY_INPUT);

    /* Invalid UTF-8, in the middle and at the end of a good prompt. */
    static const struct { const char *s; const char *what; } bad[] = {
        {"\xC0\xAF", "overlong '/'"}, {"\xE0\x80\xAF", "overlong 3-byte"},
        {"\xF0\x80\x80\xAF", "overlong 4-byte"}, {"\xC1\xBF", "overlong C1"},
        {"\xED\xA0\x80", "high surrogate"}, {"\xED\xBF\xBF", "low surrogate"},
        {"\xE2\x82", "truncated 3-byte"}, {"\xF0\x9F\x98", "truncated 4-byte"},
        {"\xC3", "lone lead byte"}, {"\x80", "lone continuation"},
        {"\xFF", "0xFF"}, {"\xFE", "0xFE"}, {"\xF4\x90\x80\x80", "above U+10FFFF"},
        {"\xF8\x88\x80\x80\x80", "5-byte form"}, {"\xE2\x28\xA1", "bad continuation"}};
    char buf[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int n = snprintf(buf, sizeof buf, "what is %s the answer", bad[i].s);
        tr_status st = route_text(r->r, r->c, buf, (size_t)n, NULL, &res, NULL);
        if (st != TR_E_UTF8)
            fail_msg("%s inside a prompt: %s", bad[i].what, tr_status_name(st));
        n = snprintf(buf, sizeof buf, "what is the answer %s", bad[i].s);
        st = route_text(r->r, r->c, buf, (size_t)n, NULL, &res, NULL);
        if (st != TR_E_UTF8)
            fail_msg("%s ending a prompt: %s", bad[i].what, tr_status_name(st));
        st = tr_embed(r->r, r->c, bad[i].s, strlen(bad[i].s), q, info.dim);
        if (st != TR_E_UTF8)
            fail_msg("%s alone, embedded: %s", bad[i].what, tr_status_name(st));
    }
    /* A valid sequence cut by the length the caller gives. */
    static const char euro[] = "price in \xE2\x82\xAC";
    assert_int_equal(route_text(r->r, r->c, euro, sizeof euro - 2, NULL, &res, NULL), TR_E_UTF8);
    assert_int_equal(route_text(r->r, r->c, euro, sizeof euro - 1, NULL, &res, NULL), TR_OK);
    /* Valid non-ASCII and an embedded NUL are text like any other. */
    static const char intl[] = "Quelle est la d\xC3\xA9riv\xC3\xA9" "e de x\xC2\xB2 ? \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80";
    assert_int_equal(route_text(r->r, r->c, intl, sizeof intl - 1, NULL, &res, NULL), TR_OK);
    static const char nul[] = "derivative\0of x squared";
    assert_int_equal(route_text(r->r, r->c, nul, sizeof nul - 1, NULL, &res, NULL), TR_OK);

    /* Only unknown words, or no words at all: the priors decide. */
    static const char *unknown[] = {"zzqxv qwzzkj vvbxq", "?!?! ... --- ***", "   \t\n ",
                                    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        assert_int_equal(route_text(r->r, r->c, unknown[i], strlen(unknown[i]), NULL, &res, NULL), TR_OK);
        assert_true(res.flags & TR_RESULT_PRIOR_ONLY);
        assert_int_equal(res.why, TR_WHY_PRIOR_ONLY);
        /* The choice is argmax prior - lambda * cost_norm (ties: device,
         * then cheaper, then lower index). */
        int best = -1;
        float bu = 0;
        tr_model_info bi = {0};
        for (uint32_t m = 0; m < info.n_models; m++) {
            tr_model_info mi;
            assert_int_equal(tr_pack_get_model(r->r, m, &mi), TR_OK);
            float u = mi.prior - res.lambda * mi.cost_norm;
            if (best < 0 || u > bu ||
                (u == bu && (mi.where < bi.where ||
                             (mi.where == bi.where && mi.cost_norm < bi.cost_norm)))) {
                best = (int)m;
                bu = u;
                bi = mi;
            }
        }
        assert_int_equal(res.model, best);
    }

    /* One megabyte of prompt: it must come back, with a clean answer. */
    enum { MB = 1 << 20 };
    char *big = malloc(MB);
    assert_non_null(big);
    static const char words[] = "what is the integral of a polynomial in physics ";
    for (size_t i = 0; i < MB; i++)
        big[i] = words[i % (sizeof words - 1)];
    assert_int_equal(route_text(r->r, r->c, big, MB, NULL, &res, NULL), TR_OK);
    assert_false(res.flags & TR_RESULT_PRIOR_ONLY);
    /* ...one 1 MB word (longer than any in the table): no known word. */
    memset(big, 'a', MB);
    assert_int_equal(route_text(r->r, r->c, big, MB, NULL, &res, NULL), TR_OK);
    assert_true(res.flags & TR_RESULT_PRIOR_ONLY);
    /* ...and 1 MB with one bad byte at its very end. */
    memcpy(big + MB - 1, "\xC3", 1);
    assert_int_equal(route_text(r->r, r->c, big, MB, NULL, &res, NULL), TR_E_UTF8);
    free(big);

    /* After all that, the same prompt routes the same way. */
    assert_int_equal(route_text(r->r, r->c, good, strlen(good), NULL, &res, NULL), TR_OK);
    assert_int_equal(res.model, ref.model);
    assert_true(res.utility == ref.utility);
    tr_pack_info after;
    assert_int_equal(tr_pack_get_info(r->r, &after), TR_OK);
    assert_memory_equal(after.pack_hash, info.pack_hash, 32);
    free_box(r);
    free(pack);
    (void)state;
}

/* ---- NULL pointers, no pack, misaligned memory ---- */

/* A counter store that routes on the router being loaded, from inside the
 * load (the one re-entry the API allows a single thread): it must see the
 * pack being served, never the one being checked. */
typedef struct reentry {
    view_box *b;
    const served *was;
    int calls, same, fail_write;
} reentry;
static int re_read(void *ctx, int kind, tr_counter_slot *slot)
{
    (void)ctx;
    (void)kind;
    memset(slot, 0, sizeof *slot); /* never written */
    return 0;
}
static int re_write(void *ctx, int kind, const tr_counter_slot *slot)
{
    reentry *e = ctx;
    (void)kind;
    (void)slot;
    e->calls++;
    e->same += same_served(e->b, e->was);
    return e->fail_write;
}

static void test_route_during_load(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);
    trh_buf s = {0};
    trh_buf_put(&s, W.pack.data, W.sb);
    tr_st64(s.data + TR_H_SECURITY, 6); /* above A's 5: the store is written */
    sign_buf(&s, KEY);
    uint8_t *p = exact_copy(s.data, s.len);
    reentry e = {&b, &want, 0, 0, 1};
    tr_counter_store cs = {&e, re_read, re_write};
    tr_trust t = trust_of(&W.pub, 0, 0);
    t.counters = &cs;
    /* The store fails: the load fails, and routing inside and after it
     * serves A + D. */
    assert_int_equal(open_into(&b, p, s.len, &t), TR_E_COUNTER_STORE);
    assert_int_equal(e.calls, 1);
    assert_int_equal(e.same, 1);
    assert_true(same_served(&b, &want));
    /* The store works: inside the load A + D is still served; after it the
     * new pack (no delta). */
    e.fail_write = 0;
    assert_int_equal(open_into(&b, p, s.len, &t), TR_OK);
    assert_int_equal(e.calls, 2);
    assert_int_equal(e.same, 2);
    tr_delta_info di;
    assert_int_equal(tr_pack_get_delta(b.r, &di), TR_E_NO_PACK);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_int_equal(info.security_counter, 6);
    free(p);
    trh_buf_free(&s);
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

/* Issue 18's library-side reproducers: nothing unverified picks a delta's
 * error, a delta header's bounds, NaN penalties, tr_log_size's wrap, and a
 * query of -128 (the pack side of -128 is in test_signed_but_malformed). */
static void test_issue18_reproducers(void **state)
{
    uint8_t *pa, *pd;
    view_box b = serving(1, &pa, &pd);
    served want = snapshot(&b);

    /* n_added 2000 (> TR_DELTA_MAX_ADDED), not signed again: the signature
     * speaks first (it used to be TR_E_ARENA_TOO_SMALL against the base). */
    trh_buf s = {0};
    trh_buf_put(&s, W.delta.data, W.delta.len);
    tr_st32(s.data + TR_DH_N_ADDED, 2000);
    uint8_t *p = exact_copy(s.data, s.len);
    assert_int_equal(apply(&b, p, s.len), TR_E_SIGNATURE);
    tr_trust other = trust_of(&W.other, 0, 0);
    assert_int_equal(apply_into(&b, p, s.len, &other), TR_E_KEY_UNKNOWN);
    free(p);
    /* ... and signed again: malformed, still not the arena. */
    s.len = W.dsb;
    sign_buf(&s, KEY);
    p = exact_copy(s.data, s.len);
    assert_int_equal(apply(&b, p, s.len), TR_E_MALFORMED);
    free(p);
    /* The delta header's own bounds, re-signed: size, flags, zero tail. */
    static const struct { size_t at; uint32_t v; } dh[] = {
        {TR_DH_HEADER_BYTES, 129}, {TR_DH_FLAGS, 1}, {104, 1}, {124, 0x80000000u}};
    for (size_t i = 0; i < sizeof dh / sizeof *dh; i++) {
        s.len = 0;
        trh_buf_put(&s, W.delta.data, W.dsb);
        tr_st32(s.data + dh[i].at, dh[i].v);
        sign_buf(&s, KEY);
        p = exact_copy(s.data, s.len);
        tr_status st = apply(&b, p, s.len);
        if (st != TR_E_MALFORMED)
            fail_msg("delta header byte %zu = 0x%x: %s", dh[i].at, dh[i].v, tr_status_name(st));
        free(p);
        /* Unsigned, the same change is the signature's. */
        s.len = 0;
        trh_buf_put(&s, W.delta.data, W.delta.len);
        tr_st32(s.data + dh[i].at, dh[i].v);
        p = exact_copy(s.data, s.len);
        assert_int_equal(apply(&b, p, s.len), TR_E_SIGNATURE);
        free(p);
    }
    trh_buf_free(&s);
    assert_true(same_served(&b, &want));

    /* Penalties: NaN or Inf in any slot is the caller's error; finite ones
     * still count. */
    tr_result res;
    float pen[M + 1] = {0};
    tr_route_opts o = {.lambda = TR_LAMBDA_DEFAULT, .penalty = pen};
    assert_int_equal(route_i8(b.r, b.c, EMB, W.refs + 3 * DIM, DIM, &o, &res, NULL), TR_OK);
    uint32_t chosen = res.model;
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (uint32_t m = 0; m < M + 1; m++)
        for (size_t j = 0; j < 3; j++) {
            memset(pen, 0, sizeof pen);
            pen[m] = bad[j];
            assert_int_equal(route_i8(b.r, b.c, EMB, W.refs + 3 * DIM, DIM, &o, &res, NULL),
                             TR_E_ARG);
        }
    memset(pen, 0, sizeof pen);
    pen[chosen] = 10.0f; /* a finite penalty moves the choice */
    assert_int_equal(route_i8(b.r, b.c, EMB, W.refs + 3 * DIM, DIM, &o, &res, NULL), TR_OK);
    assert_int_not_equal(res.model, chosen);

    /* A query holding -128 is refused (no kernel sees it). */
    int8_t q[DIM];
    memcpy(q, W.refs + 3 * DIM, DIM);
    q[DIM / 2] = -128;
    assert_int_equal(route_i8(b.r, b.c, EMB, q, DIM, NULL, &res, NULL), TR_E_ARG);
    assert_true(same_served(&b, &want));

    /* tr_log_size: 0 where dim + 7 wraps 32 bits (it reported 464 bytes). */
    for (uint32_t d = 0xFFFFFFF9u; d != 0; d++)
        assert_int_equal(tr_log_size(d, 1, TR_LOG_EMBEDDING), 0);
    assert_int_equal(tr_log_size(0xFFFFFFF8u, 1, TR_LOG_EMBEDDING), 0);
    assert_true(tr_log_size(64, 16, TR_LOG_EMBEDDING) >= 16 * 64);
    assert_true(tr_log_size(0xFFFFFFF9u, 1, 0) > 0); /* dim unused without embeddings */
    free(pa);
    free(pd);
    free_box(&b);
    (void)state;
}

/* A delta without sections (issue 18: retire-model of a delta's only added
 * model wrote one that the loader refused as TR_E_MALFORMED). It serves the
 * base alone and, by its counter (given a counter store), keeps the delta
 * before it from coming back, even across a drop (PACK_FORMAT.md, "Delta
 * packs"). */
static void test_empty_delta(void **state)
{
    uint8_t *pa, *pd, *pb, *pb2;
    view_box b = serving(0, &pa, &pd);
    /* The rollback memory lives in a counter store (here in RAM). */
    tr_counter_slot slots[2];
    memset(slots, 0, sizeof slots);
    tr_counter_store ram;
    tr_counter_store_ram(&ram, slots);
    tr_trust rt = trust_of(&W.pub, 0, 0);
    rt.counters = &ram;
    pd = exact_copy(W.delta.data, W.delta.len);
    assert_int_equal(apply_into(&b, pd, W.delta.len, &rt), TR_OK); /* A + D, D's counter 3 */
    view_box base = serving(0, &pb, &pb2);
    served alone = snapshot(&base);
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_int_equal(info.n_models, M + 1);
    trh_delta_spec e = {.security_counter = 4, .created_unix = 1700000002, .n_base_models = M,
                       .n_base_refs = N, .n_clusters = K, .bit_stride = BITS_STRIDE};
    memcpy(e.base_hash, info.pack_hash, 32);
    trh_buf s = {0};
    trh_delta_write(&e, &s);
    assert_int_equal(tr_ld32(s.data + TR_DH_N_SECTIONS), 0);
    sign_buf(&s, KEY);
    uint8_t *p = exact_copy(s.data, s.len);
    assert_int_equal(apply_into(&b, p, s.len, &rt), TR_OK);
    tr_delta_info di;
    assert_int_equal(tr_pack_get_delta(b.r, &di), TR_OK);
    assert_int_equal(di.security_counter, 4);
    assert_int_equal(di.n_added, 0);
    assert_int_equal(di.n_retired, 0);
    assert_false(di.has_settings);
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_int_equal(info.n_models, M);
    assert_int_equal(info.n_added_models, 0);
    /* The base's own answers, by kNN and by clusters. */
    served now = snapshot(&b);
    assert_memory_equal(now.pack_hash, alone.pack_hash, 32);
    assert_int_equal(now.n_models, alone.n_models);
    assert_int_equal(now.knn_model, alone.knn_model);
    assert_int_equal(now.clu_model, alone.clu_model);
    assert_memory_equal(now.knn_pred, alone.knn_pred, M * sizeof(float));
    assert_memory_equal(now.clu_pred, alone.clu_pred, M * sizeof(float));
    /* The withdrawn D cannot come back, dropped or not; the empty delta
     * itself may be applied again (a restart). */
    assert_int_equal(apply_into(&b, pd, W.delta.len, &rt), TR_E_ROLLBACK);
    assert_int_equal(drop_into(&b), TR_OK);
    assert_int_equal(apply_into(&b, pd, W.delta.len, &rt), TR_E_ROLLBACK);
    assert_int_equal(apply_into(&b, p, s.len, &rt), TR_OK);
    trh_buf_free(&s);
    free(p);
    free(pa);
    free(pd);
    free(pb);
    free_box(&b);
    free_box(&base);
    (void)state;
}

/* A pack of m models made by hand, since trh_pack_write refuses more than
 * TR_MODELS_MAX: one reference of RAW_DIM values, model 0 on the device,
 * every label 0, k = 1. Signed with the test key. */
enum { RAW_DIM = 16, RAW_BITS = 64 };
static void raw_pack(uint32_t m, trh_buf *b)
{
    static const struct { uint32_t type, stride; } sec[] = {
        {TR_SEC_MODELS, TR_MODEL_REC_BYTES}, {TR_SEC_REF_I8, RAW_DIM}, {TR_SEC_REF_INVNORM, 4},
        {TR_SEC_CORRECT_BITS, RAW_BITS}, {TR_SEC_DEFAULTS, 0}};
    const uint32_t ns = sizeof sec / sizeof *sec;
    const uint64_t len[] = {(uint64_t)m * TR_MODEL_REC_BYTES, tr_ref_bytes(1, RAW_DIM), 4,
                            (uint64_t)m * RAW_BITS, TR_DEFAULTS_BYTES};
    const uint32_t count[] = {m, 1, 1, m, 1};
    uint64_t at[sizeof sec / sizeof *sec];
    b->len = 0;
    trh_buf_zeros(b, TR_HEADER_BYTES + ns * TR_SECTION_ENTRY_BYTES);
    for (uint32_t i = 0; i < ns; i++) {
        trh_buf_align(b, TR_ALIGN);
        at[i] = b->len;
        trh_buf_zeros(b, (size_t)len[i]);
        uint8_t *e = b->data + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        tr_st32(e + TR_S_TYPE, sec[i].type);
        tr_st64(e + TR_S_OFFSET, at[i]);
        tr_st64(e + TR_S_LENGTH, len[i]);
        tr_st32(e + TR_S_STRIDE, sec[i].stride);
        tr_st32(e + TR_S_COUNT, count[i]);
    }
    trh_buf_align(b, TR_ALIGN);
    for (uint32_t j = 0; j < m; j++) {
        uint8_t *r = b->data + at[0] + (size_t)j * TR_MODEL_REC_BYTES;
        snprintf((char *)r + TR_M_NAME, TR_MODEL_NAME_MAX, "m%u", j);
        tr_stf32(r + TR_M_COST, (float)j);
        tr_stf32(r + TR_M_COST_NORM, (float)j / (float)m);
        tr_st32(r + TR_M_WHERE, j ? TR_CLOUD : TR_DEVICE);
    }
    b->data[at[1]] = 1; /* the row (1, 0, ..., 0): norm 1 */
    tr_stf32(b->data + at[2], 1.0f);
    tr_st32(b->data + at[4] + TR_D_K, 1);
    uint8_t *h = b->data;
    memcpy(h + TR_H_MAGIC, TR_PACK_MAGIC, 8);
    tr_st32(h + TR_H_VERSION, TR_PACK_VERSION);
    tr_st32(h + TR_H_HEADER_BYTES, TR_HEADER_BYTES);
    tr_st64(h + TR_H_SECURITY, 1);
    memcpy(h + TR_H_EMBEDDER, "raw", 3);
    tr_st32(h + TR_H_DIM, RAW_DIM);
    tr_st32(h + TR_H_N_REFS, 1);
    tr_st32(h + TR_H_N_MODELS, m);
    tr_st32(h + TR_H_N_SECTIONS, ns);
    tr_st64(h + TR_H_SIGNED_BYTES, b->len);
    sign_buf(b, KEY);
}

/* A delta adding one model to the base raw_pack(m_base) made. */
static void raw_delta(const trh_buf *base, uint32_t m_base, trh_buf *out)
{
    uint8_t rec[TR_MODEL_REC_BYTES] = {0}, cor[RAW_BITS] = {0}, val[RAW_BITS] = {1};
    memcpy(rec + TR_M_NAME, "added", 5);
    tr_stf32(rec + TR_M_COST, 1.0f);
    tr_st32(rec + TR_M_WHERE, TR_CLOUD);
    tr_pack_info info;
    assert_int_equal(tr_pack_peek(base->data, base->len, &info), TR_OK);
    trh_delta_spec d = {.security_counter = 1, .n_base_models = m_base, .n_base_refs = 1,
                       .bit_stride = RAW_BITS, .n_added = 1, .records = rec, .correct = cor,
                       .valid = val};
    /* The base hash: SHA-256 of its signed bytes, as a view reports it. */
    view_box rb = new_box(RAW_DIM, m_base, 0), *r = &rb;
    tr_trust t = trust_of(&W.pub, 0, 0);
    assert_int_equal(open_into(r, base->data, base->len, &t), TR_OK);
    assert_int_equal(tr_pack_get_info(r->r, &info), TR_OK);
    memcpy(d.base_hash, info.pack_hash, 32);
    free_box(r);
    out->len = 0;
    trh_delta_write(&d, out);
    sign_buf(out, KEY);
}

/* One model limit, TR_MODELS_MAX (core/tinyroute.h), checked at load for a
 * pack's M and for a delta's base + added models (issue 18: the builders
 * had their own, stale 65,536, which the loader did not know). */
static void test_models_max(void **state)
{
    view_box rb = new_box(RAW_DIM, TR_MODELS_MAX, 0), *r = &rb;
    tr_trust t = trust_of(&W.pub, 0, 0);
    trh_buf pk = {0}, dl = {0};
    tr_pack_info info;
    tr_result res;
    const int8_t q[RAW_DIM] = {3, 1};
    /* At the limit: served. One past it, with nothing else different and
     * room for its view: TR_E_MALFORMED, the old view kept. */
    raw_pack(TR_MODELS_MAX, &pk);
    assert_int_equal(open_into(r, pk.data, pk.len, &t), TR_OK);
    assert_int_equal(tr_pack_get_info(r->r, &info), TR_OK);
    assert_int_equal(info.n_models, TR_MODELS_MAX);
    assert_int_equal(route_i8(r->r, r->c, "raw", q, RAW_DIM, NULL, &res, NULL), TR_OK);
    trh_buf big = {0};
    raw_pack(TR_MODELS_MAX + 1, &big);
    assert_int_equal(tr_pack_peek(big.data, big.len, &info), TR_OK);
    assert_int_equal(info.n_models, TR_MODELS_MAX + 1);
    assert_int_equal(open_into(r, big.data, big.len, &t), TR_E_MALFORMED);
    assert_int_equal(tr_pack_get_info(r->r, &info), TR_OK);
    assert_int_equal(info.n_models, TR_MODELS_MAX);
    trh_buf_free(&big);
    /* A delta adding one model: past the limit over a base at it, served
     * over a base one model below. */
    raw_delta(&pk, TR_MODELS_MAX, &dl);
    assert_int_equal(apply_into(r, dl.data, dl.len, &t), TR_E_MALFORMED);
    raw_pack(TR_MODELS_MAX - 1, &pk);
    raw_delta(&pk, TR_MODELS_MAX - 1, &dl);
    assert_int_equal(open_into(r, pk.data, pk.len, &t), TR_OK);
    assert_int_equal(apply_into(r, dl.data, dl.len, &t), TR_OK);
    assert_int_equal(tr_pack_get_info(r->r, &info), TR_OK);
    assert_int_equal(info.n_models, TR_MODELS_MAX);
    assert_int_equal(info.n_added_models, 1);
    assert_int_equal(route_i8(r->r, r->c, "raw", q, RAW_DIM, NULL, &res, NULL), TR_OK);
    trh_buf_free(&pk);
    trh_buf_free(&dl);
    free_box(r);
    (void)state;
}

static void test_null_pointers_and_order(void **state)
{
    tr_result res;
    tr_pack_info info;
    tr_delta_info di;
    tr_model_info mi;
    tr_trust t = trust_of(&W.pub, 0, 0);
    int8_t q[DIM];
    float v[DIM], pred[M + 1];
    memcpy(q, W.refs, DIM);
    for (int d = 0; d < DIM; d++)
        v[d] = q[d];

    /* Messages for any status, even one that does not exist. */
    const int statuses[] = {-1, TR_STATUS_COUNT, TR_STATUS_COUNT + 1, 1000, INT32_MIN};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        assert_non_null(tr_strerror((tr_status)statuses[i]));
        assert_non_null(tr_status_name((tr_status)statuses[i]));
    }
    assert_non_null(tr_kernel_name());

    /* Peek. */
    assert_int_equal(tr_pack_peek(NULL, W.pack.len, &info), TR_E_ARG);
    assert_int_equal(tr_pack_peek(W.pack.data, W.pack.len, NULL), TR_E_ARG);
    assert_int_equal(tr_delta_peek(NULL, W.delta.len, &di), TR_E_ARG);
    assert_int_equal(tr_delta_peek(W.delta.data, W.delta.len, NULL), TR_E_ARG);

    /* Contexts: NULL memory or out, misaligned, too small, bad sizes. */
    size_t bytes = tr_ctx_size(DIM, M + 1, 0);
    uint8_t *cmem;
    assert_int_equal(posix_memalign((void **)&cmem, 64, bytes + 64), 0);
    tr_ctx *c = NULL;
    assert_int_equal(tr_ctx_init(NULL, bytes, DIM, M + 1, 0, &c), TR_E_ARG);
    assert_int_equal(tr_ctx_init(cmem, bytes, DIM, M + 1, 0, NULL), TR_E_ARG);
    for (size_t off = 1; off < 16; off++)
        assert_int_equal(tr_ctx_init(cmem + off, bytes, DIM, M + 1, 0, &c), TR_E_ARG);
    assert_int_equal(tr_ctx_init(cmem, 0, DIM, M + 1, 0, &c), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_ctx_init(cmem, bytes, 0, M + 1, 0, &c), TR_E_ARG);
    assert_int_equal(tr_ctx_init(cmem, bytes, DIM, 0, 0, &c), TR_E_ARG);
    assert_int_equal(tr_ctx_init(cmem, bytes, DIM, M + 1, TR_PREFILTER_MAX + 1, &c), TR_E_ARG);
    assert_null(c);
    assert_int_equal(tr_ctx_init(cmem, bytes, DIM, M + 1, 0, &c), TR_OK);
    view_box rb = new_router(), *r = &rb;

    /* No view yet (NULL): every call that takes one refuses it. */
    assert_null(r->r);
    assert_int_equal(tr_pack_get_info(r->r, &info), TR_E_ARG);
    assert_int_equal(tr_pack_get_model(r->r, 0, &mi), TR_E_ARG);
    assert_int_equal(tr_ctx_size_for(r->r), 0);
    assert_int_equal(route_i8(r->r, c, EMB, q, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_f32(r->r, c, EMB, v, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_text(r->r, c, "hello", 5, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(tr_embed(r->r, c, "hello", 5, q, DIM), TR_E_ARG);
    uint8_t *pd = exact_copy(W.delta.data, W.delta.len);
    assert_int_equal(apply_into(r, pd, W.delta.len, &t), TR_E_ARG);
    assert_int_equal(drop_into(r), TR_E_ARG);
    assert_int_equal(tr_pack_get_delta(r->r, &di), TR_E_ARG);
    void *taskmem;
    assert_int_equal(posix_memalign(&taskmem, 64, tr_task_size(M + 1)), 0);
    tr_task *task = NULL;
    assert_int_equal(tr_task_begin(r->r, taskmem, tr_task_size(M + 1), &task), TR_E_ARG);
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 10.0f, 3600, 1700000000, 0.0f, 1.0f), TR_OK);
    assert_int_equal(governed_text(r, &g, 1700000000, "hello", 5, NULL, &res, NULL), TR_E_ARG);

    /* Open: NULL memory, pack, trust or out; a trust with NULL lists. */
    uint8_t *pa = exact_copy(W.pack.data, W.pack.len);
    const tr_pack *v1 = NULL;
    assert_int_equal(tr_pack_open(NULL, tr_pack_size(), pa, W.pack.len, &t, &v1), TR_E_ARG);
    assert_int_equal(tr_pack_open(r->mem[0], tr_pack_size(), pa, W.pack.len, &t, NULL), TR_E_ARG);
    assert_int_equal(open_into(r, NULL, W.pack.len, &t), TR_E_ARG);
    assert_int_equal(open_into(r, pa, W.pack.len, NULL), TR_E_ARG);
    tr_trust no_keys = {.keys = NULL, .n_keys = 1};
    assert_int_equal(open_into(r, pa, W.pack.len, &no_keys), TR_E_ARG);
    tr_trust no_revoked = trust_of(&W.pub, 0, 0);
    no_revoked.n_revoked = 1;
    assert_int_equal(open_into(r, pa, W.pack.len, &no_revoked), TR_E_ARG);
    /* A pack buffer that is not 8-aligned; 8-aligned is enough. */
    uint8_t *shifted;
    assert_int_equal(posix_memalign((void **)&shifted, 64, W.pack.len + 8), 0);
    for (size_t off = 1; off < 8; off++) {
        memcpy(shifted + off, W.pack.data, W.pack.len);
        assert_int_equal(open_into(r, shifted + off, W.pack.len, &t), TR_E_ARG);
    }
    assert_null(r->r); /* still none */
    memcpy(shifted + 8, W.pack.data, W.pack.len);
    assert_int_equal(open_into(r, shifted + 8, W.pack.len, &t), TR_OK);
    assert_int_equal(open_into(r, pa, W.pack.len, &t), TR_OK);
    free(shifted);

    /* Deltas: NULL view, delta, trust, memory or out; a misaligned delta. */
    const tr_pack *dv = NULL;
    assert_int_equal(tr_pack_apply_delta(NULL, pd, W.delta.len, &t, r->mem[r->cur ^ 1],
                                         tr_pack_size(), &dv), TR_E_ARG);
    assert_int_equal(tr_pack_apply_delta(r->r, pd, W.delta.len, &t, NULL, tr_pack_size(), &dv),
                     TR_E_ARG);
    assert_int_equal(tr_pack_apply_delta(r->r, pd, W.delta.len, &t, r->mem[r->cur ^ 1],
                                         tr_pack_size(), NULL), TR_E_ARG);
    assert_int_equal(tr_pack_apply_delta(r->r, pd, W.delta.len, &t, r->mem[r->cur ^ 1],
                                         tr_pack_size() - 1, &dv), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(apply_into(r, NULL, W.delta.len, &t), TR_E_ARG);
    assert_int_equal(apply_into(r, pd, W.delta.len, NULL), TR_E_ARG);
    assert_int_equal(apply_into(r, pd, W.delta.len, &no_keys), TR_E_ARG);
    uint8_t *dshift;
    assert_int_equal(posix_memalign((void **)&dshift, 64, W.delta.len + 8), 0);
    memcpy(dshift + 4, W.delta.data, W.delta.len);
    assert_int_equal(apply_into(r, dshift + 4, W.delta.len, &t), TR_E_ARG);
    free(dshift);
    assert_null(dv);
    assert_int_equal(tr_pack_get_delta(r->r, &di), TR_E_NO_PACK);
    assert_int_equal(apply_into(r, pd, W.delta.len, &t), TR_OK);
    assert_int_equal(tr_pack_drop_delta(NULL, r->mem[r->cur ^ 1], tr_pack_size(), &dv), TR_E_ARG);
    assert_int_equal(tr_pack_drop_delta(r->r, r->mem[r->cur ^ 1], tr_pack_size(), NULL), TR_E_ARG);
    assert_int_equal(tr_pack_get_delta(NULL, &di), TR_E_ARG);
    assert_int_equal(tr_pack_get_delta(r->r, NULL), TR_E_ARG);

    /* Info and models. */
    assert_int_equal(tr_pack_get_info(NULL, &info), TR_E_ARG);
    assert_int_equal(tr_pack_get_info(r->r, NULL), TR_E_ARG);
    assert_int_equal(tr_pack_get_model(NULL, 0, &mi), TR_E_ARG);
    assert_int_equal(tr_pack_get_model(r->r, 0, NULL), TR_E_ARG);
    assert_int_equal(tr_pack_get_model(r->r, M + 1, &mi), TR_E_ARG);
    assert_int_equal(tr_pack_get_model(r->r, UINT32_MAX, &mi), TR_E_ARG);

    /* Routing: NULL view, context, query, embedder, embedding, text or
     * result (outputs and opts may be NULL). */
    const tr_query qi = tr_query_i8(EMB, q, DIM);
    assert_int_equal(tr_route(NULL, c, &qi, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(tr_route(r->r, NULL, &qi, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(tr_route(r->r, c, NULL, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(route_i8(r->r, c, NULL, q, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_i8(r->r, c, EMB, NULL, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_i8(r->r, c, EMB, q, DIM, NULL, NULL, pred), TR_E_ARG);
    assert_int_equal(route_i8(r->r, c, EMB, q, DIM, NULL, &res, NULL), TR_OK);
    assert_int_equal(route_f32(r->r, c, NULL, v, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_f32(r->r, c, EMB, NULL, DIM, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_f32(r->r, c, EMB, v, DIM, NULL, NULL, pred), TR_E_ARG);
    assert_int_equal(route_f32(r->r, c, EMB, v, DIM, NULL, &res, NULL), TR_OK);
    assert_int_equal(route_text(r->r, c, NULL, 5, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_text(r->r, c, NULL, 0, NULL, &res, pred), TR_E_ARG);
    assert_int_equal(route_text(r->r, c, "hello", 5, NULL, NULL, pred), TR_E_ARG);
    assert_int_equal(tr_embed(NULL, c, "hello", 5, q, DIM), TR_E_ARG);
    assert_int_equal(tr_embed(r->r, NULL, "hello", 5, q, DIM), TR_E_ARG);
    assert_int_equal(tr_embed(r->r, c, NULL, 5, q, DIM), TR_E_ARG);
    assert_int_equal(tr_embed(r->r, c, "hello", 5, NULL, DIM), TR_E_ARG);
    /* No embedder is checked before the capacity: this pack has none. */
    assert_int_equal(tr_embed(r->r, c, "hello", 5, q, DIM - 1), TR_E_NO_EMBEDDER);

    /* Tasks. */
    size_t tbytes = tr_task_size(M + 1);
    assert_int_equal(tr_task_begin(NULL, taskmem, tbytes, &task), TR_E_ARG);
    assert_int_equal(tr_task_begin(r->r, NULL, tbytes, &task), TR_E_ARG);
    assert_int_equal(tr_task_begin(r->r, taskmem, tbytes, NULL), TR_E_ARG);
    assert_int_equal(tr_task_begin(r->r, (uint8_t *)taskmem + 4, tbytes - 4, &task), TR_E_ARG);
    assert_int_equal(tr_task_begin(r->r, taskmem, tbytes - 1, &task), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_task_begin(r->r, taskmem, tbytes, &task), TR_OK);
    tr_task_result tres;
    assert_int_equal(task_select(r, task, NULL, &tres, NULL, NULL, NULL, NULL), TR_E_EMPTY_INPUT);
    assert_int_equal(tr_task_add(NULL, c, task, &qi, NULL, NULL), TR_E_ARG);
    assert_int_equal(tr_task_add(r->r, NULL, task, &qi, NULL, NULL), TR_E_ARG);
    assert_int_equal(tr_task_add(r->r, c, task, NULL, NULL, NULL), TR_E_ARG);
    assert_int_equal(task_add_i8(r, NULL, EMB, q, DIM, NULL), TR_E_ARG);
    assert_int_equal(task_add_i8(r, task, NULL, q, DIM, NULL), TR_E_ARG);
    assert_int_equal(task_add_i8(r, task, EMB, NULL, DIM, NULL), TR_E_ARG);
    assert_int_equal(task_add_text(r, NULL, "hello", 5, NULL, NULL), TR_E_ARG);
    assert_int_equal(task_add_text(r, task, NULL, 5, NULL, NULL), TR_E_ARG);
    assert_int_equal(task_add_text(r, task, "hello", 5, NULL, NULL), TR_E_NO_EMBEDDER);
    assert_int_equal(task_add_i8(r, task, EMB, q, DIM, NULL), TR_OK);
    assert_int_equal(tr_task_choose(NULL, c, task, NULL, &tres, NULL), TR_E_ARG);
    assert_int_equal(tr_task_choose(r->r, NULL, task, NULL, &tres, NULL), TR_E_ARG);
    assert_int_equal(task_select(r, NULL, NULL, &tres, NULL, NULL, NULL, NULL), TR_E_ARG);
    assert_int_equal(task_select(r, task, NULL, NULL, NULL, NULL, NULL, NULL), TR_E_ARG);
    assert_int_equal(task_select(r, task, NULL, &tres, NULL, NULL, NULL, NULL), TR_OK);
    /* A task begun under another model set is refused, not misread. */
    assert_int_equal(drop_into(r), TR_OK);
    assert_int_equal(task_add_i8(r, task, EMB, q, DIM, NULL), TR_E_ARG);
    assert_int_equal(task_select(r, task, NULL, &tres, NULL, NULL, NULL, NULL), TR_E_ARG);

    /* The governor. */
    assert_int_equal(tr_governor_init(NULL, 10.0f, 3600, 0, 0.0f, 1.0f), TR_E_ARG);
    assert_int_equal(tr_governor_set_available(NULL, 0, 1), TR_E_ARG);
    assert_int_equal(tr_governor_set_network(NULL, 1), TR_E_ARG);
    assert_int_equal(tr_governor_record(NULL, 0, 1.0f), TR_E_ARG);
    assert_true(isnan(tr_governor_lambda(NULL, 0)));
    const tr_query qt = tr_query_text("hello", 5);
    assert_int_equal(tr_route_governed(NULL, c, &g, 0, &qt, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(tr_route_governed(r->r, NULL, &g, 0, &qt, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(governed_text(r, NULL, 0, "hello", 5, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(governed_text(r, &g, 0, NULL, 5, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(governed_text(r, &g, 0, "hello", 5, NULL, NULL, NULL), TR_E_ARG);

    free(taskmem);
    free(pa);
    free(pd);
    free(cmem);
    free_box(r);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_small_pack_is_good),
        cmocka_unit_test(test_pack_every_truncation),
        cmocka_unit_test(test_pack_every_bit_flip),
        cmocka_unit_test(test_delta_every_truncation),
        cmocka_unit_test(test_delta_every_bit_flip),
        cmocka_unit_test(test_signature_and_trust),
        cmocka_unit_test(test_signed_but_malformed),
        cmocka_unit_test(test_pack_signed_mutations),
        cmocka_unit_test(test_delta_signed_mutations),
        cmocka_unit_test(test_caller_embeddings),
        cmocka_unit_test(test_issue18_reproducers),
        cmocka_unit_test(test_empty_delta),
        cmocka_unit_test(test_models_max),
        cmocka_unit_test(test_route_during_load),
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_embedder_bounds),
        cmocka_unit_test(test_null_pointers_and_order),
    };
    return cmocka_run_group_tests_name("badinput", tests, group_setup, group_teardown);
}
