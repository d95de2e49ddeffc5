/* libFuzzer target: the input is a delta pack, applied over a base pack
 * loaded once (TR_FUZZ_BASE, default build-fuzz/seeds/base.trp, written by
 * tests/fuzz/seeds.sh). Built with TR_FUZZ_SKIP_SIGNATURE, so mutations
 * reach the delta's section checks; the base hash is still computed, so a
 * delta must name the right base to get that far. A delta that applies is
 * routed with, then cleared; a refused one must leave the base served. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tinyroute.h"
#include "util.h"

static _Alignas(64) uint8_t arena[1u << 22];
static uint8_t *base;
static tr_router *router;
static tr_pubkey key;
static uint8_t base_hash[32];

static const char *const prompts[] = {
    "What is the capital of France?",
    "Solve for x: 3x + 7 = 22.",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = tr_fuzz_path("TR_FUZZ_BASE", "build-fuzz/seeds/base.trp");
    size_t len;
    uint8_t *raw = tr_read_file(path, &len);
    if (!raw || posix_memalign((void **)&base, 64, len) != 0)
        abort();
    memcpy(base, raw, len);
    free(raw);
    tr_fuzz_load_key(&key);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    tr_pack_info info;
    /* Room for the most models a delta may add. */
    if (tr_pack_peek(base, len, &info) != TR_OK ||
        tr_arena_size(info.dim, info.n_models + TR_DELTA_MAX_ADDED, info.prefilter_candidates) >
            sizeof arena ||
        tr_router_init(arena, sizeof arena, &router) != TR_OK ||
        tr_router_load(router, base, len, &trust) != TR_OK ||
        tr_router_pack_info(router, &info) != TR_OK) {
        fprintf(stderr, "fuzz: %s does not load (set TR_FUZZ_BASE)\n", path);
        abort();
    }
    memcpy(base_hash, info.pack_hash, 32);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: a read past the delta's end hits ASan's redzone. */
    uint8_t *d;
    if (posix_memalign((void **)&d, 64, size ? size : 1) != 0)
        abort();
    memcpy(d, data, size);
    tr_trust trust = {.keys = &key, .n_keys = 1, .now_unix = 1700000000};
    tr_status st = tr_router_apply_delta(router, d, size, &trust);
    tr_fuzz_check_status(st);
    tr_delta_info di;
    tr_fuzz_check_status(tr_delta_peek(d, size, &di));
    if (st == TR_OK) {
        tr_fuzz_exercise(router, prompts, sizeof prompts / sizeof *prompts);
        if (tr_router_clear_delta(router) != TR_OK)
            abort();
    } else if (tr_router_delta_info(router, &di) != TR_E_NO_PACK) {
        abort(); /* a refused delta was left in place */
    }
    tr_pack_info info;
    if (tr_router_pack_info(router, &info) != TR_OK || memcmp(info.pack_hash, base_hash, 32))
        abort();
    free(d);
    return 0;
}
