/* Seed logs for fuzz_log made by the device API itself (tr_log_export), for
 * the record kinds `tinyroute route --log-out` cannot make: records given
 * as a caller embedding without text, a delta applied mid-log (a second pack
 * tag, model indices past the base's), outcomes replaced and at the ends of
 * [0,1], a wrapped ring, an empty log. tests/fuzz/seeds.sh runs it:
 *   log_seeds BASE.trp DELTA.trd PUBLIC.pem OUT_DIR */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "tinyroute.h"
#include "tr_format.h"
#include "util.h"

static _Alignas(64) uint8_t arena[1u << 22], base_mem[1u << 12], delta_mem[1u << 12];
static tr_ctx *ctx; /* sized for the base plus the delta's models */
static _Alignas(64) uint8_t logmem[1u << 20];
/* Issue 17: fill() seals its log (version 2) when seal_first is not 0: device
 * 7 under fuzz_log's key (tests/fuzz/fuzz_log.c FUZZ_DEVICE_KEY), ids from
 * seal_first. */
static uint64_t seal_first;
static const uint8_t seal_key[32] = "fuzz_log device key, 32 bytes.!";

static const char *const prompts[] = {
    "What is the capital of France?",
    "Solve for x: 3x + 7 = 22.",
    "Which enzyme unwinds DNA during replication?",
    "zzqqxx qqzzyy", /* no known word: routed on priors, nothing embedded */
    "Explain the difference between a list and a tuple in Python.",
};
#define N_PROMPTS (sizeof prompts / sizeof *prompts)

static void die(const char *what, tr_status st)
{
    fprintf(stderr, "log_seeds: %s: %s\n", what, tr_strerror(st));
    exit(1);
}

static void export(const tr_log *log, const char *dir, const char *name)
{
    static uint8_t buf[1u << 20];
    size_t w;
    tr_status st = tr_log_export(log, buf, sizeof buf, &w);
    if (st != TR_OK)
        die("export", st);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (trh_write_file_atomic(path, buf, w))
        exit(1);
}

/* One log of flags and capacity over n decisions: text prompts, then the
 * same prompts as caller embeddings without text; every third gets an
 * outcome, the first one's is replaced. */
static tr_log *fill(const tr_pack *r, uint32_t dim, uint32_t flags, uint32_t capacity, size_t n)
{
    static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    tr_log *log;
    size_t need = tr_log_size(dim, capacity, flags);
    tr_status st = need && need <= sizeof logmem ? tr_log_init(logmem, need, dim, capacity, flags, &log)
                                                 : TR_E_ARENA_TOO_SMALL;
    if (st == TR_OK && (flags & TR_LOG_HASH))
        st = tr_log_set_hash_key(log, key);
    if (st == TR_OK && seal_first)
        st = tr_log_set_device(log, 7, seal_first, seal_key, sizeof seal_key);
    if (st != TR_OK)
        die("log init", st);
    const tr_route_opts o = {.lambda = TR_LAMBDA_DEFAULT};
    static int8_t q[8192];
    for (size_t i = 0; i < n; i++) {
        const char *t = prompts[i % N_PROMPTS];
        tr_result res;
        uint64_t id;
        int by_emb = (i / N_PROMPTS) % 2 == 1 && dim <= sizeof q &&
                     tr_embed(r, ctx, t, strlen(t), q, sizeof q) == TR_OK;
        tr_pack_info info;
        tr_pack_get_info(r, &info);
        /* A prompt with no known word embeds to zeros, which an int8 query
         * refuses: that one goes by text (and is routed on priors). */
        const tr_query qi = tr_query_i8(info.embedder, q, dim), qt = tr_query_text(t, strlen(t));
        if (by_emb && tr_route(r, ctx, &qi, &o, &res, NULL) != TR_OK)
            by_emb = 0;
        st = by_emb ? TR_OK : tr_route(r, ctx, &qt, &o, &res, NULL);
        if (st != TR_OK)
            die("route", st);
        st = by_emb ? tr_log_append(log, r, ctx, &res, q, NULL, 0, &id)
                    : tr_log_append(log, r, ctx, &res, NULL, t, strlen(t), &id);
        if (st != TR_OK)
            die("record", st);
        if (i % 3 == 0 && (st = tr_log_outcome(log, id, (float)(i % 2))) != TR_OK)
            die("outcome", st);
        if (i == 0 && (st = tr_log_outcome(log, id, 0.375f)) != TR_OK)
            die("outcome replaced", st);
    }
    return log;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fputs("usage: log_seeds BASE.trp DELTA.trd PUBLIC.pem OUT_DIR\n", stderr);
        return 2;
    }
    size_t len, dlen;
    uint8_t *pack = trh_read_file(argv[1], &len), *delta = trh_read_file(argv[2], &dlen);
    tr_pubkey key;
    if (!pack || !delta || trh_key_load_public(argv[3], &key))
        return 1;
    tr_trust trust = {.keys = &key, .n_keys = 1, .now_unix = 1700000000};
    const tr_pack *r, *rd;
    tr_pack_info info;
    tr_status st = tr_pack_open(base_mem, sizeof base_mem, pack, len, &trust, &r);
    if (st == TR_OK)
        st = tr_pack_get_info(r, &info);
    if (st == TR_OK)
        st = tr_ctx_init(arena, sizeof arena, info.dim, info.n_models + TR_DELTA_MAX_ADDED,
                         info.prefilter_candidates, &ctx);
    if (st != TR_OK)
        die(argv[1], st);
    const char *out = argv[4];
    const uint32_t all = TR_LOG_EMBEDDING | TR_LOG_HASH | TR_LOG_TEXT;

    /* Nothing recorded: no embedder bound, zero records. */
    export(fill(r, info.dim, TR_LOG_DEFAULT, 8, 0), out, "api-empty.trl");
    /* Every kind of record, room for all. */
    export(fill(r, info.dim, all, 64, 2 * N_PROMPTS), out, "api-all.trl");
    /* A ring of 4 after 13 decisions: 9 dropped, ids start past 1. */
    export(fill(r, info.dim, TR_LOG_EMBEDDING, 4, 13), out, "api-wrapped.trl");
    /* Decisions and outcomes only. */
    export(fill(r, 0, 0, 16, 7), out, "api-bare.trl");
    /* Sealed (version 2): every kind of record; a wrapped ring whose ids
     * start far from 1; an empty one. */
    seal_first = 1;
    export(fill(r, info.dim, all, 64, 2 * N_PROMPTS), out, "api-sealed-all.trl");
    /* A new device's empty export: no id issued yet (ids issued 0), which
     * taken twice is a replay all the same (fuzz_log found it passing). */
    export(fill(r, info.dim, TR_LOG_DEFAULT, 8, 0), out, "api-sealed-new.trl");
    seal_first = 1000000;
    export(fill(r, info.dim, TR_LOG_EMBEDDING, 4, 13), out, "api-sealed-wrapped.trl");
    export(fill(r, info.dim, TR_LOG_DEFAULT, 8, 0), out, "api-sealed-empty.trl");
    seal_first = 0;

    /* Base, then the delta mid-log: the newer records carry the delta's
     * pack tag and may name an added model (indices past the base's). */
    tr_log *log = fill(r, info.dim, TR_LOG_EMBEDDING | TR_LOG_HASH, 64, N_PROMPTS);
    if ((st = tr_pack_apply_delta(r, delta, dlen, &trust, delta_mem, sizeof delta_mem, &rd)) != TR_OK)
        die(argv[2], st);
    const tr_route_opts o = {.lambda = 0.0f}; /* quality only: the added models win some */
    for (size_t i = 0; i < N_PROMPTS; i++) {
        tr_result res;
        uint64_t id;
        const tr_query qt = tr_query_text(prompts[i], strlen(prompts[i]));
        if ((st = tr_route(rd, ctx, &qt, &o, &res, NULL)) != TR_OK ||
            (st = tr_log_append(log, rd, ctx, &res, NULL, prompts[i], strlen(prompts[i]), &id)) != TR_OK ||
            (st = tr_log_outcome(log, id, 1.0f)) != TR_OK)
            die("after the delta", st);
    }
    export(log, out, "api-delta.trl");
    free(pack);
    free(delta);
    return 0;
}
