/* doc_figures: the sizes and limits the documents quote, computed by the
 * library itself, one "name value" line each. tests/test_doc_figures.sh
 * greps README.md, core/INTEGRATION.md, core/DEVICE_CRYPTO.md and
 * core/PACK_FORMAT.md for each value in its sentence, so a figure that
 * drifts from the code fails the suite.
 *
 *   doc_figures PACK.trp
 *
 * Built with -DTR_DEVICE_CRYPTO only to see TR_CRYPTO_POOL_SHIPPED; it links
 * the ordinary library. */
#include <stdio.h>
#include <stdlib.h>

#include "tinyroute.h"
#include "tr_format.h"
#include "tr_internal.h"
#include "tr_knn.h"

static size_t r16(size_t n) { return (n + 15) / 16 * 16; }

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    long size = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    uint8_t *pack = size > 0 ? malloc((size_t)size) : NULL;
    if (!pack || fseek(f, 0, SEEK_SET) != 0 || fread(pack, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    tr_pack_info info;
    if (tr_pack_peek(pack, (size_t)size, &info) != TR_OK)
        return 1;
    printf("pack_dim %u\npack_models %u\npack_prefilter %u\n", info.dim, info.n_models,
           info.prefilter_candidates);
    printf("pack_object %zu\n", tr_pack_size());
    printf("ctx_pack %zu\n", tr_ctx_size(info.dim, info.n_models, info.prefilter_candidates));
    printf("ctx_768_32 %zu\n", tr_ctx_size(768, 32, 0));
    printf("task_pack %zu\n", tr_task_size(info.n_models));
    /* The local store: 1,024 entries, and the bytes one more entry adds. */
    const size_t l1 = tr_local_size(1024, info.dim, info.n_models),
                 l2 = tr_local_size(2048, info.dim, info.n_models);
    printf("local_1024 %zu\nlocal_entry %zu\n", l1, (l2 - l1) / 1024);
    printf("counter_slot %zu\n", sizeof(tr_counter_slot));
    printf("pool %u\n", (unsigned)TR_CRYPTO_POOL_SHIPPED);
    /* The prefilter's extra context bytes: the documented formula
     * r16(8*ceil(D/64)) + FIXED + r16(8*C), FIXED the same for every D, M, C
     * (printed; -1 if it is not a constant, and the docs' formula is wrong). */
    long fixed = -1;
    for (uint32_t d = 1; d <= TR_DIM_MAX; d += 61)
        for (uint32_t m = 1; m <= 300; m += 149)
            for (uint32_t c = 1; c <= TR_PREFILTER_MAX; c = c * 3 + 1) {
                size_t extra = tr_ctx_size(d, m, c) - tr_ctx_size(d, m, 0);
                long fx = (long)extra - (long)r16(8 * ((d + 63) / 64)) - (long)r16(8 * (size_t)c);
                if (fixed == -1)
                    fixed = fx;
                else if (fx != fixed)
                    fixed = -2;
            }
    printf("prefilter_fixed %ld\n", fixed < 0 ? -1L : fixed);
    printf("header_bytes %u\nsection_entry_bytes %u\nmax_sections %u\n", TR_HEADER_BYTES,
           TR_SECTION_ENTRY_BYTES, TR_MAX_SECTIONS);
    printf("trailer_fixed %u\nsig_max %u\nmodel_record %u\n", TR_TRAILER_FIXED_BYTES,
           TR_SIG_MAX_BYTES, TR_MODEL_REC_BYTES);
    printf("k_max %u\nprefilter_max %u\ndim_max %u\nmodels_max %u\n", (unsigned)TR_K_MAX,
           (unsigned)TR_PREFILTER_MAX, (unsigned)TR_DIM_MAX, (unsigned)TR_MODELS_MAX);
    free(pack);
    printf("prior_max %.0f\ndelta_max_added %u\nlmap_max_k %u\n", (double)TR_PRIOR_STRENGTH_MAX,
           TR_DELTA_MAX_ADDED, TR_LMAP_MAX_K);
    return 0;
}
