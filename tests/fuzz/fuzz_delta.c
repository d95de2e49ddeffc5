/* libFuzzer target: the input is a delta pack, applied over a base pack
 * loaded once (TR_FUZZ_BASE, default build-fuzz/seeds/base.trp, written by
 * tests/fuzz/seeds.sh). Built with TR_FUZZ_SKIP_SIGNATURE, so mutations
 * reach the delta's section checks; the base hash is still computed, so a
 * delta must name the right base to get that far. A delta that applies is
 * routed with (a new view); the base's view must never change. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tinyroute.h"
#include "util.h"

static _Alignas(64) uint8_t arena[1u << 22], base_mem[1u << 12], delta_mem[1u << 12];
static _Alignas(64) uint8_t base_copy[1u << 12]; /* the base view's bytes, to compare */
static uint8_t *base;
static const tr_pack *view;
static tr_ctx *ctx;
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
    uint8_t *raw = trh_read_file(path, &len);
    if (!raw || posix_memalign((void **)&base, 64, len) != 0)
        abort();
    memcpy(base, raw, len);
    free(raw);
    tr_fuzz_load_key(&key);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    tr_pack_info info;
    /* Room for the most models a delta may add. */
    if (tr_pack_size() > sizeof base_mem ||
        tr_pack_open(base_mem, sizeof base_mem, base, len, &trust, &view) != TR_OK ||
        tr_pack_get_info(view, &info) != TR_OK ||
        tr_ctx_init(arena, sizeof arena, info.dim, info.n_models + TR_DELTA_MAX_ADDED,
                    info.prefilter_candidates, &ctx) != TR_OK) {
        fprintf(stderr, "fuzz: %s does not load (set TR_FUZZ_BASE)\n", path);
        abort();
    }
    memcpy(base_hash, info.pack_hash, 32);
    memcpy(base_copy, base_mem, tr_pack_size());
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
    const tr_pack *dv = NULL;
    tr_status st = tr_pack_apply_delta(view, d, size, &trust, delta_mem, sizeof delta_mem, &dv);
    tr_fuzz_check_status(st);
    tr_delta_info di;
    tr_fuzz_check_status(tr_delta_peek(d, size, &di));
    if (st == TR_OK) {
        if (tr_pack_get_delta(dv, &di) != TR_OK)
            abort();
        tr_fuzz_exercise(dv, ctx, prompts, sizeof prompts / sizeof *prompts);
    } else if (dv != NULL) {
        abort(); /* a refused delta gave a view */
    }
    tr_pack_info info;
    if (tr_pack_get_info(view, &info) != TR_OK || memcmp(info.pack_hash, base_hash, 32) ||
        tr_pack_get_delta(view, &di) != TR_E_NO_PACK ||
        memcmp(base_copy, base_mem, tr_pack_size()) != 0)
        abort(); /* the source view was written */
    free(d);
    return 0;
}
