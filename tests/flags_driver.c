/* flags_driver: everything the library computes in floating point, for one
 * build of it, written out bit for bit (floats as %a, embeddings in hex), so
 * that `make test-flags` can compare a library compiled with an integrator's
 * flags (gnu11 -O2 -g, -O3 -march=native, plain aarch64 gcc -O2) against the
 * reference build, byte for byte (platform/tr_numeric.h says why they must
 * agree).
 *
 *   flags_driver PACK.trp KEY.point PROMPTS.bin [PROMPTS...]
 *
 * PROMPTS.bin: little-endian u32 length + UTF-8 bytes, per prompt. The pack
 * should have clusters, a learned map, a prefilter and a task table (the
 * threads pack) so that every method's arithmetic is exercised. Per prompt:
 * the int8 embedding (tr_embed, the path of tr_log_append), kNN routes
 * (defaults, 1/d weighted, exact, with penalties), the cluster and learned
 * map routes, a float32 caller embedding (the quantiser), a governed route;
 * per group of prompts a task selection; at the end the exported outcome log.
 * The driver itself is built with the reference flags: only the library
 * under test changes. Exit 0 on success, 1 on an API failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyroute.h"

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = aligned_alloc(16, ((size_t)size + 15) / 16 * 16)) != NULL &&
        fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = size > 0 ? (size_t)size : 0;
    return buf;
}

static int check(const char *what, tr_status st)
{
    if (st == TR_OK)
        return 0;
    fprintf(stderr, "flags_driver: %s: %s\n", what, tr_status_name(st));
    exit(1);
}

static void put_floats(const char *tag, const float *v, uint32_t n)
{
    printf(" %s", tag);
    for (uint32_t i = 0; i < n; i++)
        printf("%c%a", i ? ',' : '=', (double)v[i]);
}

static void put_result(const char *tag, tr_status st, const tr_result *r, const float *pred,
                       uint32_t n)
{
    if (st != TR_OK) {
        printf(" %s=%s", tag, tr_status_name(st));
        return;
    }
    printf(" %s=%u/%a/%a/%a/%u/%u/%u", tag, r->model, (double)r->utility, (double)r->lambda,
           (double)r->nearest_distance, r->cluster, r->flags, r->why);
    put_floats("p", pred, n);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PACK.trp KEY.point PROMPTS.bin\n", argv[0]);
        return 2;
    }
    size_t pack_len, key_len, plen;
    void *pack = read_file(argv[1], &pack_len);
    uint8_t *point = read_file(argv[2], &key_len);
    uint8_t *prompts = read_file(argv[3], &plen);
    if (!pack || !point || !prompts || key_len != sizeof(tr_pubkey)) {
        fprintf(stderr, "flags_driver: cannot read %s, %s or %s\n", argv[1], argv[2], argv[3]);
        return 1;
    }
    tr_pubkey key;
    memcpy(key.point, point, sizeof key.point);
    const tr_pack *r = NULL;
    tr_ctx *c = NULL;
    tr_pack_info info;
    check("peek", tr_pack_peek(pack, pack_len, &info));
    void *view_mem = aligned_alloc(16, (tr_pack_size() + 15) / 16 * 16);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    check("open", tr_pack_open(view_mem, tr_pack_size(), pack, pack_len, &trust, &r));
    check("info", tr_pack_get_info(r, &info));
    size_t need = tr_ctx_size_for(r);
    void *ctx_mem = aligned_alloc(16, (need + 15) / 16 * 16);
    check("ctx", tr_ctx_init(ctx_mem, need, info.dim, info.n_models, info.prefilter_candidates, &c));
    if (!info.n_clusters || !info.has_learned_map || !info.prefilter_candidates || !info.n_tasks) {
        fprintf(stderr, "flags_driver: the pack lacks clusters, map, prefilter or tasks\n");
        return 1;
    }
    const uint32_t n = info.n_models, dim = info.dim;
    int8_t *q = malloc(dim);
    float *f = malloc(sizeof(float) * dim), *pred = malloc(sizeof(float) * n);
    float *pen = malloc(sizeof(float) * n);
    const tr_route_out out = {pred, n, NULL, 0, NULL, 0};
    float *s[4];
    for (int i = 0; i < 4; i++)
        s[i] = malloc(sizeof(float) * n);
    /* Penalties with many significant bits, so that p - lambda*c - pen has
     * rounding to get wrong. */
    for (uint32_t m = 0; m < n; m++)
        pen[m] = (float)((m * 2654435761u) % 1000u) / 7919.0f;
    size_t tbytes = tr_task_size(n);
    void *tmem = aligned_alloc(16, (tbytes + 15) / 16 * 16);
    tr_task *task = NULL;
    uint32_t n_prompts = 0;
    for (size_t o = 0; o + 4 <= plen;) {
        uint32_t len = (uint32_t)prompts[o] | (uint32_t)prompts[o + 1] << 8 |
                       (uint32_t)prompts[o + 2] << 16 | (uint32_t)prompts[o + 3] << 24;
        o += 4;
        if (len > plen - o) {
            fprintf(stderr, "flags_driver: %s is truncated\n", argv[3]);
            return 1;
        }
        n_prompts++;
        o += len;
    }
    size_t lbytes = tr_log_size(dim, n_prompts, TR_LOG_EMBEDDING | TR_LOG_HASH);
    void *lmem = aligned_alloc(16, (lbytes + 15) / 16 * 16);
    tr_log *log;
    check("log init", tr_log_init(lmem, lbytes, dim, n_prompts, TR_LOG_EMBEDDING | TR_LOG_HASH, &log));
    static const uint8_t hkey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    check("log key", tr_log_set_hash_key(log, hkey));
    tr_governor g;
    check("governor", tr_governor_init(&g, 0.05f, 3600, 1000, 0.05f, 0.9f));

    uint32_t i = 0;
    for (size_t o = 0; o + 4 <= plen; i++) {
        uint32_t len = (uint32_t)prompts[o] | (uint32_t)prompts[o + 1] << 8 |
                       (uint32_t)prompts[o + 2] << 16 | (uint32_t)prompts[o + 3] << 24;
        const char *text = (const char *)prompts + o + 4;
        o += 4 + len;
        printf("%u", i);
        tr_status st = tr_embed(r, c, text, len, q, dim);
        const tr_query qt = tr_query_text(text, len);
        if (st == TR_OK) {
            printf(" e=");
            for (uint32_t d = 0; d < dim; d++)
                printf("%02x", (uint8_t)q[d]);
        } else {
            printf(" e=%s", tr_status_name(st));
        }
        tr_result res;
        tr_route_opts ko = {.k = 0, .lambda = TR_LAMBDA_DEFAULT};
        put_result("knn", tr_route(r, c, &qt, &ko, &res, &out), &res, pred, n);
        tr_route_opts wo = {.k = 7, .lambda = 0.3f, .distance_weighted = 1, .penalty = pen,
                            .penalty_count = n};
        put_result("knnw", tr_route(r, c, &qt, &wo, &res, &out), &res, pred, n);
        tr_route_opts eo = {.k = 25, .lambda = 0.173f, .exact = 1};
        put_result("exact", tr_route(r, c, &qt, &eo, &res, &out), &res, pred, n);
        tr_route_opts co = {.lambda = 0.21f, .method = TR_METHOD_CLUSTER};
        put_result("clus", tr_route(r, c, &qt, &co, &res, &out), &res, pred, n);
        tr_route_opts mo = {.lambda = 0.11f, .method = TR_METHOD_LEARNED_MAP, .penalty = pen,
                            .penalty_count = n};
        put_result("lmap", tr_route(r, c, &qt, &mo, &res, &out), &res, pred, n);
        /* The log keeps the decision's floats beside the int8 embedding:
         * a lambda > 0 and penalties give its utility roundings to differ. */
        tr_route_opts lo = {.k = 9, .lambda = 0.173f, .penalty = pen, .penalty_count = n};
        tr_status rst = tr_route(r, c, &qt, &lo, &res, NULL);
        if (rst == TR_OK) {
            uint64_t id;
            check("log record", tr_log_append(log, r, c, &res, NULL, text, len, &id));
        }
        if (st == TR_OK) {
            /* A float caller embedding whose quantisation has roundings to
             * get wrong: the embedding scaled by a non-power of two, plus a
             * small ramp. */
            for (uint32_t d = 0; d < dim; d++)
                f[d] = (float)q[d] * 0.3719f + (float)(d % 7) * 0.0131f;
            const tr_query qf = tr_query_f32(info.embedder, f, dim);
            put_result("f32", tr_route(r, c, &qf, &ko, &res, &out), &res, pred, n);
        }
        uint64_t now = 1000 + 97u * i;
        st = tr_route_governed(r, c, &g, now, &qt, NULL, &res, &out);
        put_result("gov", st, &res, pred, n);
        if (st == TR_OK)
            check("governor record", tr_governor_record(&g, now, res.cost * 0.001f));
        printf(" glambda=%a", (double)tr_governor_lambda(&g, now));
        /* A task of 50 prompts: add them, then select. */
        if (!task)
            check("task init", tr_task_begin(r, tmem, tbytes, &task));
        int used;
        st = tr_task_add(r, c, task, &qt, &wo, &used);
        printf(" task_add=%s/%d", tr_status_name(st), st == TR_OK ? used : -1);
        if (i % 50 == 49) {
            tr_task_result tres;
            tr_route_opts so = {.lambda = 0.07f};
            const tr_task_scores sc = {s[0], s[1], s[2], s[3], n};
            st = tr_task_choose(r, c, task, &so, &tres, &sc);
            if (st == TR_OK) {
                printf(" task=%u/%a/%u/%u/%u/%u/%a/%u/%d", tres.n_prompts,
                       (double)tres.mean_distance, tres.by_s1, tres.by_s2, tres.by_s3, tres.bma,
                       (double)tres.p_beats_bma, tres.chosen, tres.kept_bma);
                put_floats("s1", s[0], n);
                put_floats("s2", s[1], n);
                put_floats("s3", s[2], n);
                put_floats("pb", s[3], n);
            } else {
                printf(" task=%s", tr_status_name(st));
            }
            task = NULL;
        }
        printf("\n");
    }
    size_t written;
    size_t cap = tr_log_export_size(log);
    uint8_t *ex = malloc(cap ? cap : 1);
    check("log export", tr_log_export(log, ex, cap, &written));
    for (size_t b = 0; b < written; b++)
        printf("%02x%s", ex[b], b % 64 == 63 || b + 1 == written ? "\n" : "");
    return 0;
}
