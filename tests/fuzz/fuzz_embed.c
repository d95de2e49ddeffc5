/* libFuzzer target: the input is a prompt, routed and embedded on the real
 * fixture pack (its 50k-word embedder), loaded and verified once. The pack
 * comes from TR_FUZZ_PACK, default build/fixture.trp (`make fixture-pack`). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tinyroute.h"
#include "util.h"

static _Alignas(64) uint8_t arena[1u << 20];
static uint8_t *pack;
static tr_router *router;
static tr_pack_info info;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = tr_fuzz_path("TR_FUZZ_PACK", "build/fixture.trp");
    size_t len;
    uint8_t *raw = tr_read_file(path, &len);
    if (!raw) {
        fprintf(stderr, "fuzz: cannot read the pack %s (set TR_FUZZ_PACK)\n", path);
        abort();
    }
    /* Kept for the process' life: the router reads it in place. */
    if (posix_memalign((void **)&pack, 64, len ? len : 1) != 0)
        abort();
    memcpy(pack, raw, len);
    free(raw);
    tr_pubkey key;
    tr_fuzz_load_key(&key);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    tr_pack_info peek;
    if (tr_pack_peek(pack, len, &peek) != TR_OK ||
        tr_arena_size(peek.dim, peek.n_models, peek.prefilter_candidates) > sizeof arena ||
        tr_router_init(arena, sizeof arena, &router) != TR_OK ||
        tr_router_load(router, pack, len, &trust) != TR_OK ||
        tr_router_pack_info(router, &info) != TR_OK || !info.has_text_embedder) {
        fprintf(stderr, "fuzz: %s does not load as a pack with a text embedder\n", path);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    static int8_t q[8192];
    static float predicted[4096];
    if (info.dim > sizeof q || info.n_models > sizeof predicted / sizeof *predicted)
        abort();
    tr_status se = tr_embed_text(router, text, size, q, info.dim);
    tr_fuzz_check_status(se);
    tr_result res;
    tr_status sr = tr_route_text(router, text, size, NULL, &res, predicted);
    tr_fuzz_check_result(router, sr, &res);
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
        for (uint32_t d = 0; d < info.dim; d++) {
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
        for (uint32_t m = 0; m < info.n_models; m++)
            if (!(predicted[m] >= 0.0f && predicted[m] <= 1.0f)) {
                fprintf(stderr, "fuzz: predicted[%u] = %g\n", m, (double)predicted[m]);
                abort();
            }
    }
    /* The cluster method, when the pack has clusters. */
    tr_route_opts o = {.lambda = TR_LAMBDA_DEFAULT, .method = TR_METHOD_CLUSTER};
    tr_fuzz_check_result(router, tr_route_text(router, text, size, &o, &res, NULL), &res);
    return 0;
}
