/* libFuzzer target: the input is a prompt, routed and embedded on the real
 * fixture pack (its 50k-word embedder; TR_FUZZ_PACK, default
 * build/fixture.trp from `make fixture-pack`) and on a pack with a hashed
 * n-gram embedder, each loaded and verified once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tinyroute.h"
#include "util.h"

/* Two embedders: the fixture pack's word table, and a hashed n-gram table
 * (TR_FUZZ_HASHED_PACK, default the seed pack tests/fuzz/seeds.sh builds). */
#define N_PACKS 2
static _Alignas(64) uint8_t arena[N_PACKS][1u << 20], view_mem[N_PACKS][1u << 12];
static uint8_t *pack[N_PACKS];
static const tr_pack *view[N_PACKS];
static tr_ctx *ctx[N_PACKS];
static tr_pack_info info[N_PACKS];

static void load(int i, const char *path)
{
    size_t len;
    uint8_t *raw = trh_read_file(path, &len);
    if (!raw) {
        fprintf(stderr, "fuzz: cannot read the pack %s\n", path);
        abort();
    }
    /* Kept for the process' life: the view reads it in place. */
    if (posix_memalign((void **)&pack[i], 64, len ? len : 1) != 0)
        abort();
    memcpy(pack[i], raw, len);
    free(raw);
    tr_pubkey key;
    tr_fuzz_load_key(&key);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    if (tr_pack_size() > sizeof view_mem[i] ||
        tr_pack_open(view_mem[i], sizeof view_mem[i], pack[i], len, &trust, &view[i]) != TR_OK ||
        tr_pack_get_info(view[i], &info[i]) != TR_OK || !info[i].has_text_embedder ||
        tr_ctx_init(arena[i], sizeof arena[i], info[i].dim, info[i].n_models,
                    info[i].prefilter_candidates, &ctx[i]) != TR_OK) {
        fprintf(stderr, "fuzz: %s does not load as a pack with a text embedder\n", path);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    load(0, tr_fuzz_path("TR_FUZZ_PACK", "build/fixture.trp"));
    load(1, tr_fuzz_path("TR_FUZZ_HASHED_PACK", "build-fuzz/seeds/hashed.trp"));
    return 0;
}

static void one(const tr_pack *r, tr_ctx *c, const tr_pack_info *in, const char *text,
                size_t size)
{
    const tr_pack_info pi = *in;
    static int8_t q[8192];
    static float predicted[4096];
    if (pi.dim > sizeof q || pi.n_models > sizeof predicted / sizeof *predicted)
        abort();
    tr_status se = tr_embed(r, c, text, size, q, sizeof q);
    tr_fuzz_check_status(se);
    tr_result res;
    const tr_query tq = tr_query_text(text, size);
    const tr_route_out out = {predicted, sizeof predicted / sizeof *predicted, NULL, 0, NULL, 0};
    tr_status sr = tr_route(r, c, &tq, NULL, &res, &out);
    tr_fuzz_check_result(r, sr, &res);
    /* Embedding and routing read the prompt the same way: they must agree
     * on whether it is acceptable. */
    if ((se == TR_OK) != (sr == TR_OK)) {
        fprintf(stderr, "fuzz: embed says %s, route says %s\n", tr_status_name(se),
                tr_status_name(sr));
        abort();
    }
    if (se == TR_OK) {
        /* A prompt with a known word embeds to a unit-ish int8 vector whose
         * largest magnitude is 127; one with none to zeros (prior only). */
        int peak = 0;
        for (uint32_t d = 0; d < pi.dim; d++) {
            int a = q[d] < 0 ? -q[d] : q[d];
            if (q[d] == -128)
                abort();
            peak = a > peak ? a : peak;
        }
        int prior_only = (res.flags & TR_RESULT_PRIOR_ONLY) != 0;
        if (prior_only ? peak != 0 : peak != 127) {
            fprintf(stderr, "fuzz: peak %d with prior_only %d\n", peak, prior_only);
            abort();
        }
        for (uint32_t m = 0; m < pi.n_models; m++)
            if (!(predicted[m] >= 0.0f && predicted[m] <= 1.0f)) {
                fprintf(stderr, "fuzz: predicted[%u] = %g\n", m, (double)predicted[m]);
                abort();
            }
    }
    /* The cluster method, when the pack has clusters. */
    tr_route_opts o = {.lambda = TR_LAMBDA_DEFAULT, .method = TR_METHOD_CLUSTER};
    tr_fuzz_check_result(r, tr_route(r, c, &tq, &o, &res, NULL), &res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int i = 0; i < N_PACKS; i++)
        one(view[i], ctx[i], &info[i], (const char *)data, size);
    return 0;
}
