/* libFuzzer target: tr_local_import (core/local.c), the device's parser of
 * a local store blob, which comes back from flash and may have been altered.
 * A small hand-made pack (D = 16, 3 models) binds the stores.
 *
 * The first byte picks the mode:
 *   even: "build": the rest drives tr_local_add_est calls on a source store
 *         (embeddings, models, outcomes and estimates from the bytes), which is
 *         exported under the key, then cut short and/or one bit flipped
 *         as two more bytes say, and imported;
 *   odd:  "raw": the rest is the blob; if its last byte is even it is
 *         sealed afresh with the key first (else mutations would almost
 *         never pass the MAC and the checks behind it would go unfuzzed).
 * Checked beyond "no crash, no sanitizer report": the status is a known
 * one; a refused import leaves the target store exactly as it was (its
 * export before and after); an accepted one re-exports a blob of the same
 * length, within the store's capacity, and routes through it (level term
 * on, off, tiny and large) predict values in [0,1]; a blob built and neither cut nor flipped is accepted. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "packwriter.h"
#include "tr_outcome.h"
#include "util.h"

enum { D = 16, N = 40, M = 3, CAP = 8 };
static const uint8_t KEY[32] = "fuzz_local device key, 32 bytes";
static _Alignas(64) uint8_t view_mem[1u << 14], ctx_mem[1u << 16];
static _Alignas(64) uint8_t src_mem[1u << 14], dst_mem[1u << 14];
static uint8_t *pack_bytes;
static const tr_pack *view;
static tr_ctx *ctx;
static uint8_t before[1u << 13], after[1u << 13], blob[1u << 16];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static int8_t refs[N * D];
    static float scores[N * M];
    uint32_t x = 1;
    for (int i = 0; i < N * D; i++) {
        x = x * 1103515245u + 12345u;
        refs[i] = (int8_t)((int)(x >> 16) % 201 - 100);
    }
    for (int i = 0; i < N * M; i++)
        scores[i] = (float)((i * 7) % 3 == 0);
    static const trh_pack_model models[M] = {
        {"small", 1, TR_DEVICE}, {"mid", 3, TR_DEVICE}, {"large", 10, TR_CLOUD}};
    trh_pack_spec s = {.security_counter = 1, .embedder_name = "fz", .dim = D, .n_refs = N,
                      .n_models = M, .models = models, .refs = refs, .scores = scores, .k = 5,
                      .prior_strength = 2.0f};
    trh_buf b = {0};
    trh_pack_layout lay;
    const char *key = tr_fuzz_path("TR_FUZZ_SIGNING_KEY", "fixtures/keys/test-signing.key");
    if (trh_pack_write(&s, &b, &lay) != 0 || trh_pack_sign(&b, key) != 0)
        abort();
    if (posix_memalign((void **)&pack_bytes, 64, b.len) != 0)
        abort();
    memcpy(pack_bytes, b.data, b.len);
    static tr_pubkey pub;
    tr_fuzz_load_key(&pub);
    tr_trust t = {.keys = &pub, .n_keys = 1};
    if (tr_pack_open(view_mem, sizeof view_mem, pack_bytes, b.len, &t, &view) != TR_OK ||
        tr_ctx_init(ctx_mem, sizeof ctx_mem, D, M, 0, &ctx) != TR_OK ||
        tr_local_size(CAP, D, M) > sizeof src_mem)
        abort();
    trh_buf_free(&b);
    return 0;
}

static size_t export_of(const tr_local *s, uint8_t *out, size_t cap)
{
    size_t w = 0;
    if (tr_local_export(s, KEY, out, cap, &w) != TR_OK)
        abort();
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    tr_local *src, *dst;
    if (tr_local_init(src_mem, sizeof src_mem, CAP, view, &src) != TR_OK ||
        tr_local_init(dst_mem, sizeof dst_mem, CAP, view, &dst) != TR_OK)
        abort();
    /* The target holds one entry of its own, which a refusal must keep. */
    const int8_t own[D] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    if (tr_local_add(dst, own, D, 1, 0.5f) != TR_OK)
        abort();
    size_t len;
    int must_accept = 0;
    if (data[0] % 2 == 0) {
        /* build: each add takes D + 2 bytes; the last 3 bytes cut/flip. */
        const uint8_t *p = data + 1;
        size_t left = size - 1, tail = left >= 3 ? 3 : 0;
        left -= tail;
        while (left >= D + 2) {
            int8_t e[D];
            for (int d = 0; d < D; d++)
                e[d] = (int8_t)(p[d] == 0x80 ? 0x81 : p[d]);
            /* The model byte's top bit: no estimate (NaN); else its bits
             * 3-6 are the route's estimate (the level term's residual). */
            const float est = p[D] & 0x80 ? NAN : (float)(p[D] >> 3 & 15) / 15.0f;
            tr_status st =
                tr_local_add_est(src, e, D, p[D] % (M + 1), (float)p[D + 1] / 255.0f, est);
            tr_fuzz_check_status(st);
            p += D + 2;
            left -= D + 2;
        }
        len = export_of(src, blob, sizeof blob);
        must_accept = 1;
        if (tail) {
            const uint8_t *t = data + size - 3;
            if (t[0] & 1) { /* cut */
                len = len * t[1] / 256;
                must_accept = 0;
            }
            if (t[0] & 2) { /* flip */
                size_t at = ((size_t)t[1] << 8 | t[2]) % (len ? len : 1);
                if (len) {
                    blob[at] ^= (uint8_t)(1u << (t[0] >> 5));
                    must_accept = 0;
                }
            }
        }
    } else {
        len = size - 1 < sizeof blob ? size - 1 : sizeof blob;
        memcpy(blob, data + 1, len);
        if (len >= 96 && blob[len - 1] % 2 == 0 &&
            tr_hmac_sha256(KEY, 32, blob, len - 32, blob + len - 32) != TR_OK)
            abort();
    }
    const size_t bl = export_of(dst, before, sizeof before);
    tr_status st = tr_local_import(dst, KEY, blob, len);
    tr_fuzz_check_status(st);
    if (must_accept && st != TR_OK) {
        fprintf(stderr, "fuzz: an untouched blob was refused: %s\n", tr_status_name(st));
        abort();
    }
    if (st != TR_OK) {
        const size_t al = export_of(dst, after, sizeof after);
        if (al != bl || memcmp(before, after, bl) != 0) {
            fprintf(stderr, "fuzz: a refused import (%s) changed the store\n", tr_status_name(st));
            abort();
        }
        return 0;
    }
    tr_local_stats ls;
    if (tr_local_stats_get(dst, &ls) != TR_OK || ls.count > CAP ||
        tr_local_export_size(dst) != len)
        abort();
    /* Routes through the imported store: estimates stay outcomes. */
    float pred[M];
    const tr_route_out out = {pred, M, NULL, 0, NULL, 0};
    for (int i = 0; i < 4; i++) {
        int8_t q[D];
        for (int d = 0; d < D; d++)
            q[d] = (int8_t)(len > 64 + (size_t)d ? (blob[64 + d] == 0x80 ? 1 : blob[64 + d]) + i : d + 1);
        if (q[0] == 0)
            q[0] = 1;
        const tr_query qq = tr_query_i8("fz", q, D);
        /* The level term: default, tiny (clamps), off, large. */
        static const float levels[4] = {0.0f, 1e-3f, TR_LOCAL_LEVEL_OFF, 300.0f};
        tr_route_opts o = {.local = dst, .local_weight = (float)(1 + i * 10),
                           .distance_weighted = i & 1, .local_level = levels[i]};
        tr_result res;
        tr_status rs = tr_route(view, ctx, &qq, &o, &res, &out);
        tr_fuzz_check_result(view, rs, &res);
        for (int m = 0; m < M && rs == TR_OK; m++)
            if (!(pred[m] >= 0.0f && pred[m] <= 1.0f)) {
                fprintf(stderr, "fuzz: prediction %g outside [0,1]\n", pred[m]);
                abort();
            }
    }
    return 0;
}
