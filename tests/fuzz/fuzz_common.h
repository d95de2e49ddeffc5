/* Shared by the libFuzzer harnesses: the trusted key and a pass over the
 * router's entry points once a pack has loaded. Host-only test code, so it
 * may allocate; the library under test still only gets the caller arena. */
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
    if (tr_key_load_public(path, key) != 0) {
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
static inline void tr_fuzz_check_result(const tr_router *r, tr_status st, const tr_result *res)
{
    tr_fuzz_check_status(st);
    if (st != TR_OK)
        return;
    tr_pack_info info;
    tr_model_info mi;
    if (tr_router_pack_info(r, &info) != TR_OK || res->model >= info.n_models ||
        tr_router_model(r, res->model, &mi) != TR_OK || mi.name != res->model_name ||
        res->k > TR_K_MAX) {
        fprintf(stderr, "fuzz: inconsistent result (model %u)\n", res->model);
        abort();
    }
}

/* Every routing method and option family on a loaded pack: text (when the
 * pack embeds), a caller int8 and f32 embedding, cluster and learned-map
 * routing, the prefilter both ways, masks, penalties and task selection.
 * Most calls may legitimately fail (no clusters, no tasks...); only crashes,
 * sanitizer reports and impossible results count. */
static inline void tr_fuzz_exercise(tr_router *r, const char *const *prompts, size_t n_prompts)
{
    tr_pack_info info;
    if (tr_router_pack_info(r, &info) != TR_OK)
        abort(); /* loaded, so this cannot fail */
    static float predicted[1u << 16];
    float *pred = info.n_models <= sizeof predicted / sizeof *predicted ? predicted : NULL;
    static uint8_t avail[1u << 13];
    memset(avail, 0, sizeof avail);
    avail[0] = 0x01; /* only model 0: exercises the masked-out rule */
    static float penalty[1u << 16];
    const float *pen = info.n_models <= sizeof penalty / sizeof *penalty ? penalty : NULL;
    for (uint32_t m = 0; pen && m < info.n_models; m++)
        penalty[m] = (float)(m % 3) * 0.1f;
    const tr_route_opts opts[] = {
        {.k = 0, .lambda = TR_LAMBDA_DEFAULT},
        {.k = 1, .lambda = 0.5f, .exact = 1, .distance_weighted = 1},
        {.k = TR_K_MAX, .lambda = 0.0f, .offline = 1},
        {.k = 3, .lambda = 2.0f, .available = info.n_models <= 8 * sizeof avail ? avail : NULL,
         .penalty = pen},
        {.lambda = TR_LAMBDA_DEFAULT, .method = TR_METHOD_CLUSTER},
        {.lambda = 0.1f, .method = TR_METHOD_LEARNED_MAP},
    };
    /* Each option set once, with the prompts in turn: the full cross
     * product would only repeat the same code and cost the parser target
     * most of its executions. */
    tr_result res;
    for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
        const char *t = prompts[o % n_prompts];
        tr_fuzz_check_result(r, tr_route_text(r, t, strlen(t), &opts[o], &res, pred), &res);
    }

    /* Caller embeddings of the pack's own dimension. */
    static int8_t q8[8192];
    static float qf[8192];
    if (info.dim <= sizeof q8) {
        for (uint32_t d = 0; d < info.dim; d++) {
            q8[d] = (int8_t)((int)(d * 37u % 255u) - 127);
            qf[d] = (float)q8[d] * 0.01f;
        }
        for (size_t o = 0; o < sizeof opts / sizeof *opts; o++)
            tr_fuzz_check_result(r, o % 2 ? tr_route_f32(r, info.embedder, qf, info.dim, &opts[o], &res,
                                                         pred)
                                          : tr_route_i8(r, info.embedder, q8, info.dim, &opts[o], &res,
                                                        pred),
                                 &res);
        if (info.has_text_embedder)
            tr_fuzz_check_status(tr_embed_text(r, prompts[0], strlen(prompts[0]), q8, info.dim));
    }

    /* Task-level selection when the pack has a table. */
    static _Alignas(16) uint8_t task_mem[1u << 20];
    tr_task *task;
    if (tr_task_size(info.n_models) <= sizeof task_mem &&
        tr_task_init(r, task_mem, sizeof task_mem, &task) == TR_OK) {
        int used;
        for (size_t i = 0; i < n_prompts; i++)
            tr_fuzz_check_status(tr_task_add_text(r, task, prompts[i], strlen(prompts[i]), NULL,
                                                  &used));
        if (info.dim <= sizeof q8)
            tr_fuzz_check_status(tr_task_add_i8(r, task, info.embedder, q8, info.dim, &opts[1]));
        tr_task_result tres;
        tr_status st = tr_task_select(r, task, NULL, &tres, pred, NULL, NULL, NULL);
        tr_fuzz_check_status(st);
        if (st == TR_OK && (tres.chosen >= info.n_models || tres.bma >= info.n_models))
            abort();
    }
}

#endif
