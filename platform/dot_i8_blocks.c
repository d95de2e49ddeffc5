/* int8 . int8 dot products of one query against reference rows stored in
 * blocks of 4 rows by 16-byte chunks (pack format 2, platform/tr_format.h):
 * the kernel behind exact kNN search and the prefilter's rerank. Each ISA
 * variant sits beside the scalar reference and must return exactly its
 * results (tests/test_kernels.c). Centroids and the local store keep
 * row-major rows (platform/dot_i8.c). */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"

#include "tr_format.h"

/* The reference: row r's chunk c is 16 bytes at blocks + tr_ref_offset(r, 16c). */
void tr_dot_i8_blocks_scalar(const int8_t *q, const int8_t *blocks, size_t dim, size_t first,
                             size_t n_rows, int32_t *out)
{
    for (size_t i = 0; i < n_rows; i++) {
        const int8_t *row = blocks + tr_ref_offset((uint32_t)dim, first + i, 0);
        int32_t acc = 0;
        for (size_t d = 0; d < dim; d++)
            acc += (int32_t)q[d] *
                   (int32_t)row[TR_REF_BLOCK_ROWS * TR_REF_CHUNK * (d / TR_REF_CHUNK) +
                                d % TR_REF_CHUNK];
        out[i] = acc;
    }
}
