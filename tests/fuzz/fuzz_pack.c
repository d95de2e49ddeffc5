/* libFuzzer target: the input is a pack. Built twice by mk/fuzz.mk: as is,
 * where every mutation must be refused at the signature (so this fuzzes the
 * header, the trailer and the ECDSA/DER path), and with
 * TR_FUZZ_SKIP_SIGNATURE, where mutations reach the section parser and,
 * when they open, every routing call. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tinyroute.h"

/* The largest pack dimensions the context buffer is sized for. Dimension
 * and prefilter are the library's own limits; models are bounded by what a
 * fuzz input can hold (96-byte records), so a pack beyond this buffer is
 * routed with a context too small (TR_E_ARENA_TOO_SMALL), itself a path
 * worth covering. */
#define FUZZ_DIM_MAX 8192u
#define FUZZ_MODELS_MAX 16384u
#define FUZZ_INPUT_MAX (4u << 20)

static _Alignas(64) uint8_t arena[1u << 21], view_mem[1u << 12];
static tr_pubkey key;
static uint8_t revoked[1][32];
static size_t arena_bytes;
static int verbose; /* TR_FUZZ_VERBOSE: say what each input came to */

static const char *const prompts[] = {
    "What is the capital of France?",
    "Solve for x: 3x + 7 = 22. Show the steps and the final answer.",
    "zzqx \xc3\xa9t\xc3\xa9 1234", /* unknown words and UTF-8 */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    tr_fuzz_load_key(&key);
    tr_pubkey other;
    const char *other_path = tr_fuzz_path("TR_FUZZ_OTHER_KEY", "fixtures/keys/test-other.pub");
    if (trh_key_load_public(other_path, &other) != 0)
        abort();
    trh_key_id(&other, revoked[0]);
    verbose = getenv("TR_FUZZ_VERBOSE") != NULL;
    arena_bytes = tr_ctx_size(FUZZ_DIM_MAX, FUZZ_MODELS_MAX, TR_PREFILTER_MAX);
    /* The limits outgrew the static buffers: raise their sizes. Multiples of
     * 64 (of 16, TR_ARENA_ALIGN, for the sizes) keep an end-aligned context
     * aligned. */
    if (arena_bytes > sizeof arena || arena_bytes % 16 || sizeof arena % 64 ||
        tr_pack_size() > sizeof view_mem)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_INPUT_MAX)
        return -1; /* not added to the corpus */
    /* The reader wants the pack 8-aligned; libFuzzer's copy need not be.
     * An exact-size heap copy, so a read past the pack's end hits ASan's
     * redzone (a static buffer would hide it behind stale bytes). */
    uint8_t *pack;
    if (posix_memalign((void **)&pack, 64, size ? size : 1) != 0)
        abort();
    memcpy(pack, data, size);
    /* The test key trusted, the other test key's id revoked: the revocation
     * scan runs on every input that gets as far as the trailer. */
    tr_trust trust = {.keys = &key, .n_keys = 1, .revoked = (const uint8_t(*)[32])revoked,
                      .n_revoked = 1,
                      .now_unix = 1700000000};
    const tr_pack *v = NULL;
    tr_status st = tr_pack_open(view_mem, sizeof view_mem, pack, size, &trust, &v);
    tr_fuzz_check_status(st);
    if (verbose)
        fprintf(stderr, "fuzz: %zu bytes: %s\n", size, tr_status_name(st));
    tr_pack_info peek;
    tr_fuzz_check_status(tr_pack_peek(pack, size, &peek));
    if (st != TR_OK) {
        /* A refused pack gives no view. */
        if (v != NULL)
            abort();
        free(pack);
        return 0;
    }
    /* The context the verified view asks for, placed flush against the end
     * of the static buffer: a scratch write past what tr_ctx_size promised
     * then lands in ASan's redzone instead of in spare bytes. Beyond the
     * buffer: the largest, and every route must refuse it. */
    tr_pack_info info;
    if (tr_pack_get_info(v, &info) != TR_OK)
        abort();
    size_t exact = tr_ctx_size_for(v), bytes = exact && exact <= arena_bytes ? exact : arena_bytes;
    tr_ctx *c;
    if (tr_ctx_init(arena + sizeof arena - bytes, bytes, bytes == exact ? info.dim : FUZZ_DIM_MAX,
                    bytes == exact ? info.n_models : FUZZ_MODELS_MAX,
                    bytes == exact ? info.prefilter_candidates : TR_PREFILTER_MAX, &c) != TR_OK)
        abort();
    tr_fuzz_exercise(v, c, prompts, sizeof prompts / sizeof *prompts);
    free(pack);
    return 0;
}
