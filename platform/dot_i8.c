/* int8 . int8 dot products of one query against many rows: the kernel behind
 * kNN and centroid lookup. Each ISA variant sits beside the scalar reference
 * and must return exactly its results.
 *
 * Inputs are in [-127, 127] (the packs and tr_route_i8 guarantee it), which
 * lets the x86 variants use the sign trick: a.b = |a| . (sign(a) * b), with
 * |a| as the unsigned operand that vpmaddubsw / vpdpbusd require, and no
 * int16 saturation (2 * 127 * 127 < 32767). |q| is a property of the query,
 * so rows are never rewritten. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"

void tr_dot_i8_rows_scalar(const int8_t *q, const int8_t *rows, size_t stride,
                           size_t n_rows, size_t dim, int32_t *out)
{
    for (size_t r = 0; r < n_rows; r++) {
        const int8_t *row = rows + r * stride;
        int32_t acc = 0;
        for (size_t d = 0; d < dim; d++)
            acc += (int32_t)q[d] * (int32_t)row[d];
        out[r] = acc;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TR_AVX2 __attribute__((target("avx2")))
#define TR_VNNI __attribute__((target("avx2,avxvnni")))

static TR_AVX2 inline int32_t hsum256(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline int32_t tail(const int8_t *q, const int8_t *row, size_t from, size_t dim)
{
    int32_t acc = 0;
    for (size_t d = from; d < dim; d++)
        acc += (int32_t)q[d] * (int32_t)row[d];
    return acc;
}

/* One 32-byte step of |q| . sign(q)*row in int32 lanes. */
static TR_AVX2 inline __m256i step_avx2(__m256i acc, __m256i qa, __m256i qs, const int8_t *p)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i r = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)p), qs);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(qa, r), ones));
}

/* One kernel body for every x86 variant: four rows per pass share each
 * loaded query block; STEP is the variant's 32-byte multiply-accumulate. */
#define TR_DOT_X86_BODY(STEP)                                                              \
    const size_t main = dim & ~(size_t)31;                                                 \
    size_t r = 0;                                                                          \
    for (; r + 4 <= n_rows; r += 4) {                                                      \
        const int8_t *p0 = rows + r * stride, *p1 = p0 + stride, *p2 = p1 + stride,        \
                     *p3 = p2 + stride;                                                    \
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;                    \
        for (size_t d = 0; d < main; d += 32) {                                            \
            __m256i qs = _mm256_loadu_si256((const __m256i *)(q + d));                     \
            __m256i qa = _mm256_abs_epi8(qs);                                              \
            a0 = STEP(a0, qa, qs, p0 + d);                                                 \
            a1 = STEP(a1, qa, qs, p1 + d);                                                 \
            a2 = STEP(a2, qa, qs, p2 + d);                                                 \
            a3 = STEP(a3, qa, qs, p3 + d);                                                 \
        }                                                                                  \
        out[r] = hsum256(a0) + tail(q, p0, main, dim);                                     \
        out[r + 1] = hsum256(a1) + tail(q, p1, main, dim);                                 \
        out[r + 2] = hsum256(a2) + tail(q, p2, main, dim);                                 \
        out[r + 3] = hsum256(a3) + tail(q, p3, main, dim);                                 \
    }                                                                                      \
    for (; r < n_rows; r++) {                                                              \
        const int8_t *p = rows + r * stride;                                               \
        __m256i a = _mm256_setzero_si256();                                                \
        for (size_t d = 0; d < main; d += 32) {                                            \
            __m256i qs = _mm256_loadu_si256((const __m256i *)(q + d));                     \
            a = STEP(a, _mm256_abs_epi8(qs), qs, p + d);                                   \
        }                                                                                  \
        out[r] = hsum256(a) + tail(q, p, main, dim);                                       \
    }

TR_AVX2 void tr_dot_i8_rows_avx2(const int8_t *q, const int8_t *rows, size_t stride,
                                 size_t n_rows, size_t dim, int32_t *out)
{
    TR_DOT_X86_BODY(step_avx2)
}

static TR_VNNI inline __m256i step_vnni(__m256i acc, __m256i qa, __m256i qs, const int8_t *p)
{
    __m256i r = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)p), qs);
    return _mm256_dpbusd_avx_epi32(acc, qa, r);
}

TR_VNNI void tr_dot_i8_rows_vnni(const int8_t *q, const int8_t *rows, size_t stride,
                                 size_t n_rows, size_t dim, int32_t *out)
{
    TR_DOT_X86_BODY(step_vnni)
}
#endif /* x86 */

#if defined(__aarch64__)
#include <arm_neon.h>

static inline int32_t tail(const int8_t *q, const int8_t *row, size_t from, size_t dim)
{
    int32_t acc = 0;
    for (size_t d = from; d < dim; d++)
        acc += (int32_t)q[d] * (int32_t)row[d];
    return acc;
}

/* Plain NEON (ARMv8.0): widening multiplies into int16, pairwise-add into
 * int32. 127*127*2 fits int16 lanes only once, so accumulate in int32. */
static inline int32x4_t step_neon(int32x4_t acc, int8x16_t qv, const int8_t *p)
{
    int8x16_t rv = vld1q_s8(p);
    int16x8_t lo = vmull_s8(vget_low_s8(qv), vget_low_s8(rv));
    int16x8_t hi = vmull_high_s8(qv, rv);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
}

/* ARMv8.2 dot product: SDOT does 4 int8 products per int32 lane. */
#if defined(__clang__)
/* clang names the feature target("dotprod"), and its arm_neon.h (14) declares
 * vdotq_s32 only for a whole -march=...+dotprod build: the same instruction
 * by inline assembly. */
#define TR_SDOT __attribute__((target("dotprod")))
static TR_SDOT inline int32x4_t tr_vdotq_s32(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}
#else
#define TR_SDOT __attribute__((target("arch=armv8.2-a+dotprod")))
#define tr_vdotq_s32 vdotq_s32
#endif

static TR_SDOT inline int32x4_t step_sdot(int32x4_t acc, int8x16_t qv, const int8_t *p)
{
    return tr_vdotq_s32(acc, qv, vld1q_s8(p));
}

/* One body for both variants: four rows per pass share each query block. */
#define TR_DOT_ARM_BODY(STEP)                                                              \
    const size_t main = dim & ~(size_t)15;                                                 \
    size_t r = 0;                                                                          \
    for (; r + 4 <= n_rows; r += 4) {                                                      \
        const int8_t *p0 = rows + r * stride, *p1 = p0 + stride, *p2 = p1 + stride,        \
                     *p3 = p2 + stride;                                                    \
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;                          \
        for (size_t d = 0; d < main; d += 16) {                                            \
            int8x16_t qv = vld1q_s8(q + d);                                                \
            a0 = STEP(a0, qv, p0 + d);                                                     \
            a1 = STEP(a1, qv, p1 + d);                                                     \
            a2 = STEP(a2, qv, p2 + d);                                                     \
            a3 = STEP(a3, qv, p3 + d);                                                     \
        }                                                                                  \
        out[r] = vaddvq_s32(a0) + tail(q, p0, main, dim);                                  \
        out[r + 1] = vaddvq_s32(a1) + tail(q, p1, main, dim);                              \
        out[r + 2] = vaddvq_s32(a2) + tail(q, p2, main, dim);                              \
        out[r + 3] = vaddvq_s32(a3) + tail(q, p3, main, dim);                              \
    }                                                                                      \
    for (; r < n_rows; r++) {                                                              \
        const int8_t *p = rows + r * stride;                                               \
        int32x4_t a = vdupq_n_s32(0);                                                      \
        for (size_t d = 0; d < main; d += 16)                                              \
            a = STEP(a, vld1q_s8(q + d), p + d);                                           \
        out[r] = vaddvq_s32(a) + tail(q, p, main, dim);                                    \
    }

void tr_dot_i8_rows_neon(const int8_t *q, const int8_t *rows, size_t stride,
                         size_t n_rows, size_t dim, int32_t *out)
{
    TR_DOT_ARM_BODY(step_neon)
}

TR_SDOT void tr_dot_i8_rows_sdot(const int8_t *q, const int8_t *rows, size_t stride,
                                 size_t n_rows, size_t dim, int32_t *out)
{
    TR_DOT_ARM_BODY(step_sdot)
}
#endif /* aarch64 */
