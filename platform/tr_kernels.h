/* Kernel family: the hot loops of kNN, centroid lookup and bitset work.
 * Each ISA variant lives beside its scalar reference (platform/dot_i8.c,
 * platform/dot_i8_blocks.c, platform/popcount.c, platform/above.c) and must give identical results:
 * the arithmetic is integer (or one exactly rounded float operation), so
 * "identical" means equal, not close. */
#ifndef TR_KERNELS_H
#define TR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tr_kernels {
    const char *name;
    /* out[r] = sum_d q[d] * rows[r*stride + d], r < n_rows; values in
     * [-127, 127]. Exact. */
    void (*dot_i8_rows)(const int8_t *q, const int8_t *rows, size_t stride,
                        size_t n_rows, size_t dim, int32_t *out);
    /* out[i] = sum_d q[d] * row(first + i)[d], i < n_rows, d < dim, the
     * rows stored in blocks of 4 (pack format 2's reference rows:
     * platform/tr_format.h, tr_ref_offset). q holds dim bytes (no padding
     * needed); the blocks that rows first .. first + n_rows - 1 fall in are
     * readable whole; values in [-127, 127]. Exact. first may be any row:
     * the prefilter's rerank scores single rows. */
    void (*dot_i8_blocks)(const int8_t *q, const int8_t *blocks, size_t dim, size_t first,
                          size_t n_rows, int32_t *out);
    /* popcount(a[i] & b[i]) summed over n words. */
    uint64_t (*and_popcount)(const uint64_t *a, const uint64_t *b, size_t n);
    /* out[r] = popcount(q ^ codes[r]) over `words` u64 per code. */
    void (*hamming_rows)(const uint64_t *q, const uint64_t *codes, size_t words,
                         size_t n_rows, uint32_t *out);
    /* mask bit j = ((float)dots[j] * scale[j] > thr), j < n, in ceil(n/64)
     * words; bits past n are 0 (platform/above.c). */
    void (*scaled_above)(const int32_t *dots, const float *scale, size_t n, float thr,
                         uint64_t *mask);
    /* 1: dot_i8_rows equals the scalar reference on -128 too (every int8);
     * 0: only on [-127, 127] (the AVX2 sign trick), which is all the loader
     * admits (tr_i8_rows_ok). */
    int full_int8;
} tr_kernels;

/* Softmax of x[n] in place (SLEEF vector expf). */
void tr_softmax(float *x, uint32_t n);

/* The best variant this CPU runs (detected once). Building with
 * -DTR_FORCE_SCALAR (make SCALAR=1) pins the scalar reference. */
const tr_kernels *tr_kernels_active(void);
/* The portable reference, always available. */
const tr_kernels *tr_kernels_scalar(void);
/* Every variant compiled in and supported by this CPU, best last;
 * returns the count. For tests and benchmarks. */
size_t tr_kernels_available(const tr_kernels **out, size_t cap);
/* No architecture has more variants than this. */
#define TR_KERNELS_MAX 8

/* The variants themselves (some exist only on their architecture). */
void tr_dot_i8_rows_scalar(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_rows_avx2(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_rows_vnni(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_rows_avx512(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_rows_neon(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_rows_i8mm(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_rows_sdot(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_scalar(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_avx2(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_vnni(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_avx512(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_neon(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_sdot(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
void tr_dot_i8_blocks_i8mm(const int8_t *, const int8_t *, size_t, size_t, size_t, int32_t *);
uint64_t tr_and_popcount_scalar(const uint64_t *, const uint64_t *, size_t);
uint64_t tr_and_popcount_avx2(const uint64_t *, const uint64_t *, size_t);
uint64_t tr_and_popcount_avx512(const uint64_t *, const uint64_t *, size_t);
uint64_t tr_and_popcount_neon(const uint64_t *, const uint64_t *, size_t);
void tr_hamming_rows_scalar(const uint64_t *, const uint64_t *, size_t, size_t, uint32_t *);
void tr_hamming_rows_avx2(const uint64_t *, const uint64_t *, size_t, size_t, uint32_t *);
void tr_hamming_rows_avx512(const uint64_t *, const uint64_t *, size_t, size_t, uint32_t *);
void tr_hamming_rows_neon(const uint64_t *, const uint64_t *, size_t, size_t, uint32_t *);
void tr_scaled_above_scalar(const int32_t *, const float *, size_t, float, uint64_t *);
void tr_scaled_above_avx2(const int32_t *, const float *, size_t, float, uint64_t *);
void tr_scaled_above_avx512(const int32_t *, const float *, size_t, float, uint64_t *);
void tr_scaled_above_neon(const int32_t *, const float *, size_t, float, uint64_t *);

#endif
