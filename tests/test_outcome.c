/* The outcome log (core/outcome.c): exact memory, the ring's wrap-around and
 * drops, stale ids, outcome checks, what each flag keeps, embedder binding,
 * and the hashes against their published test vectors. Exports are read
 * back through the offsets of core/OUTCOME_LOG.md. */
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

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"

enum { D = 8, N = 16, M = 2 };

typedef struct box {
    trh_buf pack;
    uint8_t *bytes;
    size_t len;
    void *view_mem, *ctx_mem;
    const tr_pack *r; /* the pack's view */
    tr_ctx *c;
    tr_pubkey pub;
} box;

/* Two models, references along the first D/2 basis directions: "small"
 * (device) right on the even ones, "large" (cloud) on all. */
static void hand_pack(box *b, const char *embedder, uint32_t dim)
{
    static int8_t refs[N * 16];
    static float scores[N * M];
    memset(refs, 0, sizeof refs);
    for (int i = 0; i < N; i++) {
        refs[i * dim + (uint32_t)i % (dim / 2)] = 127;
        scores[i * M + 0] = (float)(i % 2 == 0);
        scores[i * M + 1] = 1.0f;
    }
    static const trh_pack_model models[M] = {{"small", 1, TR_DEVICE}, {"large", 10, TR_CLOUD}};
    trh_pack_spec s = {.security_counter = 1, .embedder_name = embedder, .dim = dim, .n_refs = N,
                      .n_models = M, .models = models, .refs = refs, .scores = scores, .k = 1};
    trh_pack_layout lay;
    b->pack = (trh_buf){0};
    assert_int_equal(trh_pack_write(&s, &b->pack, &lay), 0);
    assert_int_equal(trh_pack_sign(&b->pack, KEY), 0);
    b->len = b->pack.len;
    assert_int_equal(posix_memalign((void **)&b->bytes, 64, b->len), 0);
    memcpy(b->bytes, b->pack.data, b->len);
    assert_int_equal(trh_key_load_public(PUB, &b->pub), 0);
    size_t need = tr_ctx_size(dim, M, 0);
    assert_int_equal(posix_memalign(&b->view_mem, 64, tr_pack_size()), 0);
    assert_int_equal(posix_memalign(&b->ctx_mem, 64, need), 0);
    assert_int_equal(tr_ctx_init(b->ctx_mem, need, dim, M, 0, &b->c), TR_OK);
    tr_trust t = {.keys = &b->pub, .n_keys = 1};
    assert_int_equal(tr_pack_open(b->view_mem, tr_pack_size(), b->bytes, b->len, &t, &b->r), TR_OK);
}

/* Route a caller's int8 embedding on the box's view. */
static tr_status route_i8(box *b, const char *embedder, const int8_t *q, uint32_t dim,
                          const tr_route_opts *o, tr_result *res)
{
    const tr_query qq = tr_query_i8(embedder, q, dim);
    return tr_route(b->r, b->c, &qq, o, res, NULL);
}

static void free_box(box *b)
{
    trh_buf_free(&b->pack);
    free(b->bytes);
    free(b->view_mem);
    free(b->ctx_mem);
}

static void *log_mem(size_t bytes)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, bytes ? bytes : 1), 0);
    return p;
}

/* Route query number i (a basis direction with a small tilt) and log it. */
static uint64_t route_and_log(box *b, tr_log *l, int i, tr_result *res)
{
    int8_t q[D] = {0};
    q[i % (D / 2)] = 100;
    q[D - 1] = (int8_t)(i + 1);
    tr_route_opts o = {.lambda = TR_LAMBDA_ZERO};
    assert_int_equal(route_i8(b, "hand", q, D, &o, res), TR_OK);
    uint64_t id = 0;
    assert_int_equal(tr_log_append(l, b->r, b->c, res, q, NULL, 0, &id), TR_OK);
    return id;
}

static const uint8_t *export_all(const tr_log *l, uint8_t **buf, size_t *len)
{
    size_t need = tr_log_export_size(l);
    *buf = malloc(need);
    assert_int_equal(tr_log_export(l, *buf, need, len), TR_OK);
    assert_int_equal(*len, need);
    assert_memory_equal(*buf, TR_LOG_MAGIC, 8);
    assert_int_equal(tr_ld32(*buf + TR_LH_VERSION), TR_LOG_VERSION);
    return *buf;
}

static uint16_t rec_flags(const uint8_t *rec) { return (uint16_t)(rec[TR_LR_FLAGS] | rec[TR_LR_FLAGS + 1] << 8); }

/* The record sizes at the edge of the format's u32 (issue 18: they were
 * summed in 32 bits, so dim 0xFFFFFFF9 gave a 0-byte embedding and a
 * 64-byte record): exact up to the largest that fits, 0 past it, for every
 * flag combination; a dim that is not kept never counts. */
static void test_record_bytes_wrap(void **state)
{
    const uint32_t top = UINT32_MAX & ~7u; /* 0xFFFFFFF8: the largest rounded dim */
    assert_int_equal(tr_log_emb_bytes(0), 0);
    assert_int_equal(tr_log_emb_bytes(1), 8);
    assert_int_equal(tr_log_emb_bytes(top - 8), top - 8);
    assert_int_equal(tr_log_emb_bytes(top - 7), top);
    assert_int_equal(tr_log_emb_bytes(top), top);
    for (uint32_t d = top + 1; d != 0; d++) /* 0xFFFFFFF9 .. 0xFFFFFFFF: 2^32 does not fit */
        assert_int_equal(tr_log_emb_bytes(d), 0);
    /* The record: 64-byte head + embedding (+ 256 of text) <= UINT32_MAX. */
    const uint32_t emb_max = UINT32_MAX - TR_LOG_REC_HEAD + 1 - 8; /* largest multiple of 8 that fits */
    assert_int_equal(tr_log_record_bytes(emb_max, TR_LOG_EMBEDDING),
                     (uint64_t)TR_LOG_REC_HEAD + emb_max);
    assert_int_equal(tr_log_record_bytes(emb_max + 1, TR_LOG_EMBEDDING), 0);
    assert_int_equal(tr_log_record_bytes(emb_max - TR_LOG_TEXT_MAX, TR_LOG_EMBEDDING | TR_LOG_TEXT),
                     (uint64_t)TR_LOG_REC_HEAD + emb_max);
    assert_int_equal(tr_log_record_bytes(emb_max - TR_LOG_TEXT_MAX + 1,
                                         TR_LOG_EMBEDDING | TR_LOG_TEXT | TR_LOG_HASH), 0);
    for (uint32_t d = top - 8; d != 0; d++) {
        assert_int_equal(tr_log_record_bytes(d, TR_LOG_EMBEDDING), 0);
        assert_int_equal(tr_log_record_bytes(d, TR_LOG_HASH), TR_LOG_REC_HEAD);
        assert_int_equal(tr_log_record_bytes(d, TR_LOG_TEXT | TR_LOG_HASH),
                         TR_LOG_REC_HEAD + TR_LOG_TEXT_MAX);
        assert_int_equal(tr_log_size(d, 1, TR_LOG_EMBEDDING), 0);
    }
    assert_int_equal(tr_log_record_bytes(D, TR_LOG_EMBEDDING | TR_LOG_TEXT),
                     TR_LOG_REC_HEAD + 8 + TR_LOG_TEXT_MAX);
    (void)state;
}

static void test_exact_size(void **state)
{
    const uint32_t flags[] = {0, TR_LOG_EMBEDDING, TR_LOG_HASH, TR_LOG_TEXT,
                              TR_LOG_EMBEDDING | TR_LOG_HASH | TR_LOG_TEXT};
    box b;
    hand_pack(&b, "hand", D);
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
        size_t need = tr_log_size(D, 3, flags[f]);
        assert_true(need > 0);
        /* Grows by exactly one record per unit of capacity. */
        assert_int_equal(tr_log_size(D, 4, flags[f]) - need, tr_log_record_bytes(D, flags[f]));
        uint8_t *mem = log_mem(need + 64);
        tr_log *l;
        assert_int_equal(tr_log_init(mem, need - 1, D, 3, flags[f], &l), TR_E_ARENA_TOO_SMALL);
        assert_int_equal(tr_log_init(mem + 8, need, D, 3, flags[f], &l), TR_E_ARG); /* alignment */
        memset(mem + need, 0xA5, 64);
        assert_int_equal(tr_log_init(mem, need, D, 3, flags[f], &l), TR_OK);
        if (flags[f] & TR_LOG_HASH)
            assert_int_equal(tr_log_set_hash_key(l, (const uint8_t *)"0123456789abcdef"), TR_OK);
        /* Fill past the capacity, with a text longer than any slot keeps:
         * nothing lands beyond the bytes tr_log_size() asked for. */
        char text[600];
        memset(text, 'w', sizeof text);
        for (int i = 0; i < 7; i++) {
            tr_result res;
            int8_t q[D] = {0};
            q[i % (D / 2)] = 90;
            assert_int_equal(route_i8(&b, "hand", q, D, NULL, &res), TR_OK);
            uint64_t id;
            assert_int_equal(tr_log_append(l, b.r, b.c, &res, q, text, sizeof text, &id), TR_OK);
            assert_int_equal(tr_log_outcome(l, id, 1.0f), TR_OK);
        }
        for (int i = 0; i < 64; i++)
            assert_int_equal(mem[need + i], 0xA5);
        free(mem);
    }
    assert_int_equal(tr_log_size(D, 0, TR_LOG_EMBEDDING), 0);          /* no capacity */
    assert_int_equal(tr_log_size(0, 4, TR_LOG_EMBEDDING), 0);          /* no dim */
    assert_int_equal(tr_log_size(D, 4, 1u << 7), 0);                   /* unknown flag */
    assert_true(tr_log_size(0, 4, TR_LOG_HASH) > 0);                   /* dim unused */
    assert_int_equal(tr_log_size(4096, UINT32_MAX, TR_LOG_EMBEDDING | TR_LOG_TEXT) == 0,
                     sizeof(size_t) < 8);
    tr_log *l;
    uint8_t *mem = log_mem(tr_log_size(D, 2, 0));
    assert_int_equal(tr_log_init(mem, tr_log_size(D, 2, 0), D, 0, 0, &l), TR_E_ARG);
    assert_int_equal(tr_log_init(NULL, 100, D, 2, 0, &l), TR_E_ARG);
    free(mem);
    free_box(&b);
}

static void test_ring_wraps_and_counts_drops(void **state)
{
    box b;
    hand_pack(&b, "hand", D);
    size_t need = tr_log_size(D, 3, TR_LOG_EMBEDDING);
    void *mem = log_mem(need);
    tr_log *l;
    assert_int_equal(tr_log_init(mem, need, D, 3, TR_LOG_EMBEDDING, &l), TR_OK);
    uint8_t *buf;
    size_t len;
    export_all(l, &buf, &len); /* empty: a header alone */
    assert_int_equal(len, TR_LOG_HEADER_BYTES);
    assert_int_equal(tr_ld32(buf + TR_LH_N_RECORDS), 0);
    free(buf);

    tr_result res[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(route_and_log(&b, l, i, &res[i]), (uint64_t)i + 1);
    tr_log_stats st;
    assert_int_equal(tr_log_stats_get(l, &st), TR_OK);
    assert_int_equal(st.recorded, 5);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.held, 3);
    assert_int_equal(st.capacity, 3);
    assert_int_equal(st.with_outcome, 0);

    export_all(l, &buf, &len);
    const uint32_t rb = tr_ld32(buf + TR_LH_RECORD_BYTES);
    assert_int_equal(rb, TR_LOG_REC_HEAD + 8);
    assert_int_equal(len, TR_LOG_HEADER_BYTES + 3 * rb);
    assert_int_equal(tr_ld32(buf + TR_LH_N_RECORDS), 3);
    assert_int_equal(tr_ld64(buf + TR_LH_RECORDED), 5);
    assert_int_equal(tr_ld64(buf + TR_LH_DROPPED), 2);
    assert_int_equal(tr_ld32(buf + TR_LH_DIM), D);
    assert_string_equal((const char *)buf + TR_LH_EMBEDDER, "hand");
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(b.r, &info), TR_OK);
    assert_memory_equal(buf + TR_LH_PACK_HASH, info.pack_hash, 32);
    /* Oldest first: ids 3, 4, 5, each with its own decision and query. */
    for (int j = 0; j < 3; j++) {
        const uint8_t *rec = buf + TR_LOG_HEADER_BYTES + (size_t)j * rb;
        int i = j + 2;
        assert_int_equal(tr_ld64(rec + TR_LR_ID), (uint64_t)i + 1);
        assert_int_equal(tr_ld64(rec + TR_LR_PACK_TAG), tr_ld64(info.pack_hash));
        assert_int_equal(tr_ld32(rec + TR_LR_MODEL), res[i].model);
        assert_int_equal(tr_ld64(rec + TR_LR_MODEL_HASH),
                         tr_fnv1a64(res[i].model_name, strlen(res[i].model_name)));
        assert_int_equal(rec[TR_LR_WHERE], res[i].where);
        assert_true(tr_ldf32(rec + TR_LR_COST) == res[i].cost);
        assert_true(tr_ldf32(rec + TR_LR_LAMBDA) == res[i].lambda);
        assert_true(tr_ldf32(rec + TR_LR_UTILITY) == res[i].utility);
        assert_true(isnan(tr_ldf32(rec + TR_LR_OUTCOME)));
        assert_int_equal(rec_flags(rec), TR_LOG_REC_EMBEDDING);
        const int8_t *e = (const int8_t *)rec + TR_LOG_REC_HEAD;
        assert_int_equal(e[i % (D / 2)], 100);
        assert_int_equal(e[D - 1], i + 1);
    }
    /* The routing is what the pack says: odd directions go to the cloud. */
    assert_int_equal(res[1].where, TR_CLOUD);
    assert_int_equal(res[2].where, TR_DEVICE);
    free(buf);
    free(mem);
    free_box(&b);
}

static void test_outcomes_and_stale_ids(void **state)
{
    box b;
    hand_pack(&b, "hand", D);
    size_t need = tr_log_size(D, 2, TR_LOG_EMBEDDING);
    void *mem = log_mem(need);
    tr_log *l;
    assert_int_equal(tr_log_init(mem, need, D, 2, TR_LOG_EMBEDDING, &l), TR_OK);
    tr_result res;
    assert_int_equal(tr_log_outcome(l, 1, 1.0f), TR_E_ARG); /* nothing issued yet */
    for (int i = 0; i < 3; i++)
        route_and_log(&b, l, i, &res);
    assert_int_equal(tr_log_outcome(l, 1, 1.0f), TR_E_LOG_STALE);
    assert_int_equal(tr_log_outcome(l, 0, 1.0f), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 4, 1.0f), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 2, NAN), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 2, INFINITY), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 2, 1.5f), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 2, -0.01f), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 2, 0.25f), TR_OK);
    assert_int_equal(tr_log_outcome(l, 2, 0.75f), TR_OK); /* the later one holds */
    assert_string_equal(tr_status_name(TR_E_LOG_STALE), "TR_E_LOG_STALE");
    tr_log_stats st;
    tr_log_stats_get(l, &st);
    assert_int_equal(st.with_outcome, 1);
    uint8_t *buf;
    size_t len;
    export_all(l, &buf, &len);
    const uint32_t rb = tr_ld32(buf + TR_LH_RECORD_BYTES);
    const uint8_t *r2 = buf + TR_LOG_HEADER_BYTES, *r3 = r2 + rb;
    assert_true(tr_ldf32(r2 + TR_LR_OUTCOME) == 0.75f);
    assert_int_equal(rec_flags(r2), TR_LOG_REC_EMBEDDING | TR_LOG_REC_OUTCOME);
    assert_true(isnan(tr_ldf32(r3 + TR_LR_OUTCOME)));
    /* Too small a buffer: told the size, nothing written. */
    size_t w = 0;
    buf[0] = 0;
    assert_int_equal(tr_log_export(l, buf, len - 1, &w), TR_E_ARG);
    assert_int_equal(w, len);
    assert_int_equal(buf[0], 0);
    /* Record 3 overwritten by 4: its outcome can no longer land. */
    route_and_log(&b, l, 3, &res);
    assert_int_equal(tr_log_outcome(l, 2, 1.0f), TR_E_LOG_STALE);
    assert_int_equal(tr_log_outcome(l, 3, 1.0f), TR_OK);
    free(buf);
    free(mem);
    free_box(&b);
}

static void test_hash_vectors(void **state)
{
    /* SipHash-2-4, Aumasson & Bernstein's paper, appendix A. */
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    assert_int_equal(tr_siphash24(key, msg, 15), 0xa129ca6149be45e5ull);
    assert_int_equal(tr_siphash24(key, msg, 0), 0x726fdb47dd0e0e31ull); /* first vector */
    /* FNV-1a 64 (Fowler, Noll, Vo reference values). */
    assert_int_equal(tr_fnv1a64("", 0), 0xcbf29ce484222325ull);
    assert_int_equal(tr_fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
    assert_int_equal(tr_fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}

/* HMAC-SHA-256 against RFC 4231 (test cases 1 and 2), a block-sized key
 * (the largest the log takes; Python's hmac gave the value), and a key past
 * the block refused rather than silently pre-hashed. */
static void test_hmac_vectors(void **state)
{
    static const uint8_t tc1[32] = {
        0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b,
        0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7};
    static const uint8_t tc2[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
        0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    static const uint8_t blk[32] = {
        0xdb, 0x2c, 0xf9, 0x3f, 0x63, 0x3f, 0xcd, 0xfd, 0x9b, 0xb7, 0xf3, 0xb9, 0x97, 0x63, 0xa6, 0x37,
        0x25, 0xcb, 0x8e, 0x38, 0xb4, 0xfa, 0x60, 0xa8, 0x7d, 0x0e, 0x94, 0xb7, 0x1d, 0x8b, 0x59, 0x70};
    uint8_t key[65], mac[32];
    memset(key, 0x0b, 20);
    assert_int_equal(tr_hmac_sha256(key, 20, "Hi There", 8, mac), TR_OK);
    assert_memory_equal(mac, tc1, 32);
    assert_int_equal(tr_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, mac),
                     TR_OK);
    assert_memory_equal(mac, tc2, 32);
    memset(key, 0xaa, sizeof key);
    assert_int_equal(tr_hmac_sha256(key, 64, NULL, 0, mac), TR_OK);
    assert_memory_equal(mac, blk, 32);
    assert_int_equal(tr_hmac_sha256(key, 65, "x", 1, mac), TR_E_ARG);
}

static const uint8_t dev_key[32] = "device-key-0123456789abcdefghijk";

/* tr_log_set_device: version 2 export with the device id, the first id, and
 * an HMAC over every byte before it; ids continue from first_id through the
 * ring's wrap; outcome ids before first_id were never issued; the setter
 * refuses bad keys, id 0, and a log that already holds records. */
static void test_authenticated_export(void **state)
{
    box b;
    hand_pack(&b, "hand", D);
    size_t need = tr_log_size(D, 3, TR_LOG_EMBEDDING);
    void *mem = log_mem(need);
    tr_log *l;
    assert_int_equal(tr_log_init(mem, need, D, 3, TR_LOG_EMBEDDING, &l), TR_OK);
    assert_int_equal(tr_log_set_device(l, 42, 1000, dev_key, 15), TR_E_ARG);
    assert_int_equal(tr_log_set_device(l, 42, 1000, dev_key, 65), TR_E_ARG);
    assert_int_equal(tr_log_set_device(l, 42, 1000, NULL, 32), TR_E_ARG);
    assert_int_equal(tr_log_set_device(l, 42, 0, dev_key, 32), TR_E_ARG);
    assert_int_equal(tr_log_set_device(l, 42, 1000, dev_key, 32), TR_OK);
    size_t len;
    uint8_t *buf = malloc(tr_log_export_size(l));
    assert_int_equal(tr_log_export(l, buf, tr_log_export_size(l), &len), TR_OK);
    assert_int_equal(len, TR_LOG_HEADER_BYTES_V2 + TR_LOG_MAC_BYTES); /* empty, still sealed */
    free(buf);
    tr_result res[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(route_and_log(&b, l, i, &res[i]), (uint64_t)1000 + i);
    assert_int_equal(tr_log_set_device(l, 42, 1, dev_key, 32), TR_E_ARG); /* records exist */
    assert_int_equal(tr_log_outcome(l, 999, 1.0f), TR_E_ARG);
    assert_int_equal(tr_log_outcome(l, 1001, 1.0f), TR_E_LOG_STALE);
    assert_int_equal(tr_log_outcome(l, 1003, 0.5f), TR_OK);
    assert_int_equal(tr_log_outcome(l, 1005, 0.5f), TR_E_ARG);
    tr_log_stats st;
    assert_int_equal(tr_log_stats_get(l, &st), TR_OK);
    assert_int_equal(st.recorded, 1004);
    assert_int_equal(st.held, 3);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.with_outcome, 1);

    need = tr_log_export_size(l);
    buf = malloc(need);
    assert_int_equal(tr_log_export(l, buf, need, &len), TR_OK);
    const uint32_t rb = TR_LOG_REC_HEAD + 8;
    assert_int_equal(len, TR_LOG_HEADER_BYTES_V2 + 3 * rb + TR_LOG_MAC_BYTES);
    assert_memory_equal(buf, TR_LOG_MAGIC, 8);
    assert_int_equal(tr_ld32(buf + TR_LH_VERSION), TR_LOG_VERSION_AUTH);
    assert_int_equal(tr_ld32(buf + TR_LH_HEADER_BYTES), TR_LOG_HEADER_BYTES_V2);
    assert_int_equal(tr_ld32(buf + TR_LH_N_RECORDS), 3);
    assert_int_equal(tr_ld64(buf + TR_LH_RECORDED), 1004);
    assert_int_equal(tr_ld64(buf + TR_LH_DROPPED), 2);
    assert_int_equal(tr_ld64(buf + TR_LH_DEVICE_ID), 42);
    assert_int_equal(tr_ld64(buf + TR_LH_FIRST_ID), 1000);
    assert_int_equal(tr_ld32(buf + TR_LH_AUTH), TR_LOG_AUTH_HMAC_SHA256);
    assert_int_equal(tr_ld32(buf + TR_LH_MAC_BYTES), TR_LOG_MAC_BYTES);
    for (uint32_t o = TR_LH_MAC_BYTES + 4; o < TR_LOG_HEADER_BYTES_V2; o++)
        assert_int_equal(buf[o], 0);
    for (int j = 0; j < 3; j++) {
        const uint8_t *rec = buf + TR_LOG_HEADER_BYTES_V2 + (size_t)j * rb;
        assert_int_equal(tr_ld64(rec + TR_LR_ID), (uint64_t)1002 + j);
        assert_int_equal(tr_ld32(rec + TR_LR_MODEL), res[j + 2].model);
        assert_int_equal(rec_flags(rec) & TR_LOG_REC_OUTCOME, j == 1 ? TR_LOG_REC_OUTCOME : 0);
    }
    uint8_t mac[32];
    assert_int_equal(tr_hmac_sha256(dev_key, 32, buf, len - 32, mac), TR_OK);
    assert_memory_equal(mac, buf + len - 32, 32);
    /* Every byte is covered: flipping any one changes the MAC. */
    for (size_t o = 0; o < len - 32; o++) {
        buf[o] ^= 1;
        assert_int_equal(tr_hmac_sha256(dev_key, 32, buf, len - 32, mac), TR_OK);
        assert_memory_not_equal(mac, buf + len - 32, 32);
        buf[o] ^= 1;
    }
    /* Another key, another MAC. */
    uint8_t other[32];
    memcpy(other, dev_key, 32);
    other[0] ^= 0x80;
    assert_int_equal(tr_hmac_sha256(other, 32, buf, len - 32, mac), TR_OK);
    assert_memory_not_equal(mac, buf + len - 32, 32);
    free(buf);
    free(mem);
    free_box(&b);
}

static void test_flags_keep_what_they_say(void **state)
{
    box b;
    hand_pack(&b, "hand", D);
    const uint8_t key[16] = "k-of-the-device";
    tr_result res;
    int8_t q[D] = {0};
    q[1] = 60;
    assert_int_equal(route_i8(&b, "hand", q, D, NULL, &res), TR_OK);
    const char *text = "which model should answer this";
    /* Hash only: 64-byte records, the keyed hash, no embedding or text. */
    size_t need = tr_log_size(D, 4, TR_LOG_HASH);
    void *mem = log_mem(need);
    tr_log *l;
    assert_int_equal(tr_log_init(mem, need, D, 4, TR_LOG_HASH, &l), TR_OK);
    assert_int_equal(tr_log_append(l, b.r, b.c, &res, q, text, strlen(text), NULL), TR_E_ARG); /* no key */
    assert_int_equal(tr_log_set_hash_key(l, key), TR_OK);
    assert_int_equal(tr_log_append(l, b.r, b.c, &res, q, text, strlen(text), NULL), TR_OK);
    assert_int_equal(tr_log_append(l, b.r, b.c, &res, q, NULL, 0, NULL), TR_OK); /* no text, no hash */
    uint8_t *buf;
    size_t len;
    export_all(l, &buf, &len);
    assert_int_equal(tr_ld32(buf + TR_LH_RECORD_BYTES), TR_LOG_REC_HEAD);
    assert_int_equal(tr_ld32(buf + TR_LH_FLAGS), TR_LOG_HASH);
    assert_int_equal(len, TR_LOG_HEADER_BYTES + 2 * TR_LOG_REC_HEAD);
    const uint8_t *r1 = buf + TR_LOG_HEADER_BYTES, *r2 = r1 + TR_LOG_REC_HEAD;
    assert_int_equal(rec_flags(r1), TR_LOG_REC_HASH);
    assert_int_equal(tr_ld64(r1 + TR_LR_PROMPT_HASH), tr_siphash24(key, text, strlen(text)));
    assert_int_equal(rec_flags(r2), 0);
    assert_int_equal(tr_ld64(r2 + TR_LR_PROMPT_HASH), 0);
    /* No text anywhere in the export. */
    assert_null(memmem(buf, len, "model should", 12));
    free(buf);
    free(mem);

    /* Text, opt-in: kept whole when short; cut at TR_LOG_TEXT_MAX on a
     * UTF-8 boundary and flagged when long. */
    char longt[TR_LOG_TEXT_MAX + 40];
    memset(longt, 'a', sizeof longt);
    memcpy(longt + TR_LOG_TEXT_MAX - 1, "\xc3\xa9", 2); /* straddles the cut */
    need = tr_log_size(D, 4, TR_LOG_TEXT);
    mem = log_mem(need);
    assert_int_equal(tr_log_init(mem, need, D, 4, TR_LOG_TEXT, &l), TR_OK);
    assert_int_equal(tr_log_append(l, b.r, b.c, &res, NULL, text, strlen(text), NULL), TR_OK);
    assert_int_equal(tr_log_append(l, b.r, b.c, &res, NULL, longt, sizeof longt, NULL), TR_OK);
    export_all(l, &buf, &len);
    const uint32_t rb = tr_ld32(buf + TR_LH_RECORD_BYTES);
    assert_int_equal(rb, TR_LOG_REC_HEAD + TR_LOG_TEXT_MAX);
    assert_int_equal(tr_ld32(buf + TR_LH_TEXT_MAX), TR_LOG_TEXT_MAX);
    r1 = buf + TR_LOG_HEADER_BYTES;
    r2 = r1 + rb;
    assert_int_equal(rec_flags(r1), TR_LOG_REC_TEXT);
    assert_int_equal(r1[TR_LR_TEXT_LEN], strlen(text));
    assert_memory_equal(r1 + TR_LOG_REC_HEAD, text, strlen(text));
    assert_int_equal(rec_flags(r2), TR_LOG_REC_TEXT | TR_LOG_REC_TRUNCATED);
    assert_int_equal(r2[TR_LR_TEXT_LEN] | r2[TR_LR_TEXT_LEN + 1] << 8, TR_LOG_TEXT_MAX - 1);
    assert_int_equal(r2[TR_LOG_REC_HEAD + TR_LOG_TEXT_MAX - 1], 0); /* é left out whole */
    free(buf);
    free(mem);

    /* Nothing but decisions and outcomes. */
    need = tr_log_size(0, 2, 0);
    mem = log_mem(need);
    assert_int_equal(tr_log_init(mem, need, 0, 2, 0, &l), TR_OK);
    assert_int_equal(tr_log_append(l, b.r, b.c, &res, q, text, strlen(text), NULL), TR_OK);
    export_all(l, &buf, &len);
    assert_int_equal(len, TR_LOG_HEADER_BYTES + TR_LOG_REC_HEAD);
    assert_int_equal(rec_flags(buf + TR_LOG_HEADER_BYTES), 0);
    assert_int_equal(tr_ld64(buf + TR_LOG_HEADER_BYTES + TR_LR_PROMPT_HASH), 0);
    free(buf);
    free(mem);
    free_box(&b);
}

static void test_embedder_binding(void **state)
{
    box a, other, wide;
    hand_pack(&a, "hand", D);
    hand_pack(&other, "other-embedder", D);
    hand_pack(&wide, "hand", 16);
    size_t need = tr_log_size(D, 4, TR_LOG_EMBEDDING);
    void *mem = log_mem(need);
    tr_log *l;
    assert_int_equal(tr_log_init(mem, need, D, 4, TR_LOG_EMBEDDING, &l), TR_OK);
    tr_result res;
    route_and_log(&a, l, 0, &res);
    int8_t q[16] = {0};
    q[0] = 1;
    assert_int_equal(route_i8(&other, "other-embedder", q, D, NULL, &res), TR_OK);
    assert_int_equal(tr_log_append(l, other.r, other.c, &res, q, NULL, 0, NULL), TR_E_EMBEDDER_MISMATCH);
    assert_int_equal(route_i8(&wide, "hand", q, 16, NULL, &res), TR_OK);
    assert_int_equal(tr_log_append(l, wide.r, wide.c, &res, q, NULL, 0, NULL), TR_E_DIM_MISMATCH);
    int8_t bad[D] = {0};
    assert_int_equal(tr_log_append(l, a.r, a.c, &res, bad, NULL, 0, NULL), TR_E_ZERO_VECTOR);
    tr_result wrong = res;
    wrong.model = M;
    assert_int_equal(tr_log_append(l, a.r, a.c, &wrong, q, NULL, 0, NULL), TR_E_ARG);
    /* Refused records leave no trace. */
    tr_log_stats st;
    tr_log_stats_get(l, &st);
    assert_int_equal(st.recorded, 1);
    /* Without TR_LOG_EMBEDDING the embedder does not matter. */
    need = tr_log_size(0, 4, 0);
    void *mem2 = log_mem(need);
    assert_int_equal(tr_log_init(mem2, need, 0, 4, 0, &l), TR_OK);
    assert_int_equal(route_i8(&a, "hand", q, D, NULL, &res), TR_OK);
    assert_int_equal(tr_log_append(l, a.r, a.c, &res, NULL, NULL, 0, NULL), TR_OK);
    assert_int_equal(route_i8(&other, "other-embedder", q, D, NULL, &res), TR_OK);
    assert_int_equal(tr_log_append(l, other.r, other.c, &res, NULL, NULL, 0, NULL), TR_OK);
    free(mem2);
    free(mem);
    free_box(&a);
    free_box(&other);
    free_box(&wide);
}

/* The fixture pack's own embedder: text is embedded as tr_embed does;
 * a prompt with no known word keeps no embedding. */
static void test_text_embedding(void **state)
{
    const char *path = getenv("FIXTURE_PACK") ? getenv("FIXTURE_PACK") : "build/fixture.trp";
    size_t len;
    uint8_t *bytes = NULL;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(posix_memalign((void **)&bytes, 64, len), 0);
    assert_int_equal(fread(bytes, 1, len, f), len);
    fclose(f);
    tr_pack_info info;
    assert_int_equal(tr_pack_peek(bytes, len, &info), TR_OK);
    size_t need = tr_ctx_size(info.dim, info.n_models, info.prefilter_candidates);
    void *ctx_mem = log_mem(need), *view_mem = log_mem(tr_pack_size());
    const tr_pack *r;
    tr_ctx *c;
    assert_int_equal(tr_ctx_init(ctx_mem, need, info.dim, info.n_models, info.prefilter_candidates,
                                 &c), TR_OK);
    tr_pubkey pub;
    assert_int_equal(trh_key_load_public(PUB, &pub), 0);
    tr_trust t = {.keys = &pub, .n_keys = 1};
    assert_int_equal(tr_pack_open(view_mem, tr_pack_size(), bytes, len, &t, &r), TR_OK);
    assert_int_equal(tr_pack_get_info(r, &info), TR_OK);

    size_t lneed = tr_log_size(info.dim, 8, TR_LOG_DEFAULT);
    void *mem = log_mem(lneed);
    tr_log *l;
    assert_int_equal(tr_log_init(mem, lneed, info.dim, 8, TR_LOG_DEFAULT, &l), TR_OK);
    const char *p1 = "What is the derivative of the natural logarithm?", *p2 = "zxqv qqzk";
    tr_result res;
    int8_t *want = malloc(info.dim);
    const tr_query q1 = tr_query_text(p1, strlen(p1)), q2 = tr_query_text(p2, strlen(p2));
    assert_int_equal(tr_route(r, c, &q1, NULL, &res, NULL), TR_OK);
    /* Embedding the text itself needs a context. */
    assert_int_equal(tr_log_append(l, r, NULL, &res, NULL, p1, strlen(p1), NULL), TR_E_ARG);
    assert_int_equal(tr_log_append(l, r, c, &res, NULL, p1, strlen(p1), NULL), TR_OK);
    assert_int_equal(tr_embed(r, c, p1, strlen(p1), want, info.dim), TR_OK);
    assert_int_equal(tr_route(r, c, &q2, NULL, &res, NULL), TR_OK);
    assert_true(res.flags & TR_RESULT_PRIOR_ONLY);
    assert_int_equal(tr_log_append(l, r, c, &res, NULL, p2, strlen(p2), NULL), TR_OK);
    uint8_t *buf;
    export_all(l, &buf, &len);
    const uint32_t rb = tr_ld32(buf + TR_LH_RECORD_BYTES);
    const uint8_t *r1 = buf + TR_LOG_HEADER_BYTES, *r2 = r1 + rb;
    assert_int_equal(rec_flags(r1), TR_LOG_REC_EMBEDDING);
    assert_memory_equal(r1 + TR_LOG_REC_HEAD, want, info.dim);
    assert_int_equal(rec_flags(r2), TR_LOG_REC_PRIOR_ONLY);
    assert_string_equal((const char *)buf + TR_LH_EMBEDDER, info.embedder);
    assert_int_not_equal(tr_ld64(buf + TR_LH_EMBEDDER_FP), 0);
    /* Default: no text and no hash. */
    assert_null(memmem(buf, len, "logarithm", 9));
    assert_int_equal(tr_ld64(r1 + TR_LR_PROMPT_HASH), 0);
    free(buf);
    free(want);
    free(mem);
    free(ctx_mem);
    free(view_mem);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_size),
        cmocka_unit_test(test_ring_wraps_and_counts_drops),
        cmocka_unit_test(test_outcomes_and_stale_ids),
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_hmac_vectors),
        cmocka_unit_test(test_authenticated_export),
        cmocka_unit_test(test_record_bytes_wrap),
        cmocka_unit_test(test_flags_keep_what_they_say),
        cmocka_unit_test(test_embedder_binding),
        cmocka_unit_test(test_text_embedding),
    };
    return cmocka_run_group_tests_name("outcome", tests, NULL, NULL);
}
