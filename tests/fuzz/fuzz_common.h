/* Shared by the libFuzzer harnesses: the trusted key and a pass over the
 * library's entry points once a pack has opened. Host-only test code, so it
 * may allocate; the library under test still only gets caller memory. */
#ifndef TR_FUZZ_COMMON_H
#define TR_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "tinyroute.h"

/* The harnesses run from the repository root (mk/fuzz.mk does); an env var
 * overrides each path so a binary can be run from anywhere. */
static inline const char *tr_fuzz_path(const char *env, const char *dflt)
{
    const char *p = getenv(env);
    return p && *p ? p : dflt;
}

static inline void tr_fuzz_load_key(tr_pubkey *key)
{
    const char *path = tr_fuzz_path("TR_FUZZ_KEY", "fixtures/keys/test-signing.pub");
    if (trh_key_load_public(path, key) != 0) {
        fprintf(stderr, "fuzz: cannot load the trusted key %s (set TR_FUZZ_KEY)\n", path);
        abort();
    }
}

/* A status the entry points may return: anything else means the library
 * invented a code, which is a bug worth stopping on. */
static inline void tr_fuzz_check_status(tr_status st)
{
    if ((unsigned)st >= TR_STATUS_COUNT) {
        fprintf(stderr, "fuzz: status %d out of range\n", (int)st);
        abort();
    }
}

/* A routed result must name a model of the pack; without this check a
 * result pointing outside it would pass silently. */
static inline void tr_fuzz_check_result(const tr_pack *p, tr_status st, const tr_result *res)
{
    tr_fuzz_check_status(st);
    if (st != TR_OK)
        return;
    tr_pack_info info;
    tr_model_info mi;
    if (tr_pack_get_info(p, &info) != TR_OK || res->model >= info.n_models ||
        tr_pack_get_model(p, res->model, &mi) != TR_OK || mi.name != res->model_name ||
        res->k > TR_K_MAX) {
        fprintf(stderr, "fuzz: inconsistent result (model %u)\n", res->model);
        abort();
    }
}

/* Every routing method and option family on an opened view, through a
 * context c sized for it: text (when the pack embeds), a caller int8 and
 * f32 embedding, cluster and learned-map routing, the prefilter both ways,
 * masks, penalties and task selection. Most calls may legitimately fail
 * (no clusters, no tasks...); only crashes, sanitizer reports and
 * impossible results count. */
static inline void tr_fuzz_exercise(const tr_pack *p, tr_ctx *c, const char *const *prompts,
                                    size_t n_prompts)
{
    tr_pack_info info;
    if (tr_pack_get_info(p, &info) != TR_OK)
        abort(); /* opened, so this cannot fail */
    static float predicted[1u << 16];
    tr_route_out out = {predicted, sizeof predicted / sizeof *predicted, NULL, 0, NULL, 0};
    const tr_route_out *pred = info.n_models <= out.predicted_cap ? &out : NULL;
    static uint8_t avail[1u << 13];
    memset(avail, 0, sizeof avail);
    avail[0] = 0x01; /* only model 0: exercises the masked-out rule */
    static float penalty[1u << 16];
    for (uint32_t m = 0; m < info.n_models && m < sizeof penalty / sizeof *penalty; m++)
        penalty[m] = (float)(m % 3) * 0.1f;
    const tr_route_opts opts[] = {
        {.k = 0, .lambda = TR_LAMBDA_DEFAULT},
        {.k = 1, .lambda = 0.5f, .exact = 1, .distance_weighted = 1},
        {.k = TR_K_MAX, .lambda = 0.0f, .offline = 1},
        {.k = 3, .lambda = 2.0f, .available = avail, .available_bits = 8 * sizeof avail,
         .penalty = penalty, .penalty_count = sizeof penalty / sizeof *penalty},
        {.lambda = TR_LAMBDA_DEFAULT, .method = TR_METHOD_CLUSTER},
        {.lambda = 0.1f, .method = TR_METHOD_LEARNED_MAP},
    };
    /* Each option set once, with the prompts in turn: the full cross
     * product would only repeat the same code and cost the parser target
     * most of its executions. */
    tr_result res;
    for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
        const char *t = prompts[o % n_prompts];
        const tr_query q = tr_query_text(t, strlen(t));
        tr_fuzz_check_result(p, tr_route(p, c, &q, &opts[o], &res, pred), &res);
    }

    /* Caller embeddings of the pack's own dimension. */
    static int8_t q8[8192];
    static float qf[8192];
    if (info.dim <= sizeof q8) {
        for (uint32_t d = 0; d < info.dim; d++) {
            q8[d] = (int8_t)((int)(d * 37u % 255u) - 127);
            qf[d] = (float)q8[d] * 0.01f;
        }
        const tr_query qi = tr_query_i8(info.embedder, q8, info.dim),
                       qff = tr_query_f32(info.embedder, qf, info.dim);
        for (size_t o = 0; o < sizeof opts / sizeof *opts; o++)
            tr_fuzz_check_result(p, tr_route(p, c, o % 2 ? &qff : &qi, &opts[o], &res, pred), &res);
        if (info.has_text_embedder)
            tr_fuzz_check_status(tr_embed(p, c, prompts[0], strlen(prompts[0]), q8, sizeof q8));
    }

    /* Task-level selection when the pack has a table. */
    static _Alignas(16) uint8_t task_mem[1u << 20];
    tr_task *task;
    if (tr_task_size(info.n_models) <= sizeof task_mem &&
        tr_task_begin(p, task_mem, sizeof task_mem, &task) == TR_OK) {
        int used;
        for (size_t i = 0; i < n_prompts; i++) {
            const tr_query q = tr_query_text(prompts[i], strlen(prompts[i]));
            tr_fuzz_check_status(tr_task_add(p, c, task, &q, NULL, &used));
        }
        if (info.dim <= sizeof q8) {
            const tr_query qi = tr_query_i8(info.embedder, q8, info.dim);
            tr_fuzz_check_status(tr_task_add(p, c, task, &qi, &opts[1], NULL));
        }
        tr_task_result tres;
        const tr_task_scores sc = {predicted, NULL, NULL, NULL, sizeof predicted / sizeof *predicted};
        tr_status st = tr_task_choose(p, c, task, NULL, &tres, &sc);
        tr_fuzz_check_status(st);
        if (st == TR_OK && (tres.chosen >= info.n_models || tres.bma >= info.n_models))
            abort();
    }
}

#endif
