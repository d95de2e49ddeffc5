/* int8 . int8 dot products of one query against many rows: the kernel behind
 * kNN and centroid lookup. Each ISA variant sits beside the scalar reference
 * and must return exactly its results.
 *
 * The x86 variants use the sign trick (platform/tr_dot_steps.h): |q| is a
 * property of the query, so rows are never rewritten. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"
#include "tr_dot_steps.h"

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

/* out[0..4) = the four accumulators' sums: one hadd tree, one store (not
 * four horizontal sums). */
static TR_AVX2 inline void hsum4x256(__m256i a0, __m256i a1, __m256i a2, __m256i a3, int32_t *out)
{
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    _mm_storeu_si128((__m128i *)out,
                     _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
}

/* One kernel body for every AVX2 variant: four rows per pass share each
 * loaded query block; STEP is the variant's 32-byte multiply-accumulate.
 * The last dim % 32 bytes: where the rows are readable to the next 4-byte
 * boundary (every pack's stride is; so are host rows of dim % 4 == 0), one
 * more step with a copy of the query's tail zero-padded to 32 bytes and the
 * rows' dwords masked past it (maskload never reads a masked-out dword), so
 * whatever the padding holds meets a zero; else a scalar tail. */
#define TR_DOT_X86_BODY(STEP)                                                              \
    const size_t main = dim & ~(size_t)31, rest = dim - main;                              \
    const int vec_tail = rest && stride >= ((dim + 3) & ~(size_t)3);                       \
    const size_t scalar_from = vec_tail ? dim : main;                                      \
    int8_t qt[32] = {0};                                                                   \
    for (size_t d = 0; d < rest; d++)                                                      \
        qt[d] = q[main + d];                                                               \
    const __m256i tqs = _mm256_loadu_si256((const __m256i *)qt), tqa = _mm256_abs_epi8(tqs); \
    const __m256i tmask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)((rest + 3) / 4)),      \
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));  \
    size_t r = 0;                                                                          \
    for (; r + 4 <= n_rows; r += 4) {                                                      \
        const int8_t *p0 = rows + r * stride, *p1 = p0 + stride, *p2 = p1 + stride,        \
                     *p3 = p2 + stride;                                                    \
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;                    \
        for (size_t d = 0; d < main; d += 32) {                                            \
            __m256i qs = _mm256_loadu_si256((const __m256i *)(q + d));                     \
            __m256i qa = _mm256_abs_epi8(qs);                                              \
            a0 = STEP(a0, qa, qs, _mm256_loadu_si256((const __m256i *)(p0 + d)));          \
            a1 = STEP(a1, qa, qs, _mm256_loadu_si256((const __m256i *)(p1 + d)));          \
            a2 = STEP(a2, qa, qs, _mm256_loadu_si256((const __m256i *)(p2 + d)));          \
            a3 = STEP(a3, qa, qs, _mm256_loadu_si256((const __m256i *)(p3 + d)));          \
        }                                                                                  \
        if (vec_tail) {                                                                    \
            a0 = STEP(a0, tqa, tqs, _mm256_maskload_epi32((const int *)(p0 + main), tmask)); \
            a1 = STEP(a1, tqa, tqs, _mm256_maskload_epi32((const int *)(p1 + main), tmask)); \
            a2 = STEP(a2, tqa, tqs, _mm256_maskload_epi32((const int *)(p2 + main), tmask)); \
            a3 = STEP(a3, tqa, tqs, _mm256_maskload_epi32((const int *)(p3 + main), tmask)); \
        }                                                                                  \
        hsum4x256(a0, a1, a2, a3, out + r);                                                \
        out[r] += tail(q, p0, scalar_from, dim);                                           \
        out[r + 1] += tail(q, p1, scalar_from, dim);                                       \
        out[r + 2] += tail(q, p2, scalar_from, dim);                                       \
        out[r + 3] += tail(q, p3, scalar_from, dim);                                       \
    }                                                                                      \
    for (; r < n_rows; r++) {                                                              \
        const int8_t *p = rows + r * stride;                                               \
        __m256i a = _mm256_setzero_si256();                                                \
        for (size_t d = 0; d < main; d += 32) {                                            \
            __m256i qs = _mm256_loadu_si256((const __m256i *)(q + d));                     \
            a = STEP(a, _mm256_abs_epi8(qs), qs, _mm256_loadu_si256((const __m256i *)(p + d))); \
        }                                                                                  \
        if (vec_tail)                                                                      \
            a = STEP(a, tqa, tqs, _mm256_maskload_epi32((const int *)(p + main), tmask));  \
        out[r] = hsum256(a) + tail(q, p, scalar_from, dim);                                \
    }

TR_AVX2 void tr_dot_i8_rows_avx2(const int8_t *q, const int8_t *rows, size_t stride,
                                 size_t n_rows, size_t dim, int32_t *out)
{
    TR_DOT_X86_BODY(step_avx2)
}

TR_VNNI void tr_dot_i8_rows_vnni(const int8_t *q, const int8_t *rows, size_t stride,
                                 size_t n_rows, size_t dim, int32_t *out)
{
    TR_DOT_X86_BODY(step_vnni)
}

/* AVX-512 VNNI, 64 bytes per step. vpdpbusd multiplies unsigned by signed
 * bytes; here the row is made unsigned by an offset instead of the sign
 * trick (AVX-512 has no vpsignb): (r ^ 0x80) is r + 128 as a u8, so
 *   sum q * (r + 128) = q.r + 128 * sum q,
 * and 128 * sum q is a property of the query, subtracted once per row. Every
 * int8 value, -128 included, gives the scalar result: per int32 lane the
 * partial sums stay below 4 * 255 * 128 * (dim / 64) < 2^31 for any
 * dim <= TR_DIM_MAX. The last partial step uses masked loads (zeros past
 * dim, never a read past the row), so there is no scalar tail whatever the
 * stride; a masked-out lane contributes (0 ^ 0x80) * 0 = 0. Four rows share
 * each query block, and their four accumulators are reduced together:
 * one transpose-and-add tree and one 16-byte store per four rows instead of
 * four horizontal sums. */
#ifndef TR_DOT_PREFETCH
#define TR_DOT_PREFETCH 8192
#endif
#define TR_AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni")))

static TR_AVX512 inline __m512i step_avx512(__m512i acc, __m512i qv, __m512i rv)
{
    return _mm512_dpbusd_epi32(acc, _mm512_xor_si512(rv, _mm512_set1_epi8((char)0x80)), qv);
}

/* [sum a0, sum a1, sum a2, sum a3] */
static TR_AVX512 inline __m128i hsum4x512(__m512i a0, __m512i a1, __m512i a2, __m512i a3)
{
    __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
    __m256i v = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

TR_AVX512 void tr_dot_i8_rows_avx512(const int8_t *q, const int8_t *rows, size_t stride,
                                     size_t n_rows, size_t dim, int32_t *out)
{
    const size_t main = dim & ~(size_t)63;
    const __mmask64 tm = (dim & 63) ? ~0ull >> (64 - (dim & 63)) : 0;
    /* 128 * sum q, exactly (|sum q| <= 128 * TR_DIM_MAX), by vpdpbusd
     * against ones: the prefilter's rerank calls this once per candidate. */
    const __m512i qt = _mm512_maskz_loadu_epi8(tm, q + main);
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i qacc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, qt);
    for (size_t d = 0; d < main; d += 64)
        qacc = _mm512_dpbusd_epi32(qacc, ones, _mm512_loadu_si512(q + d));
    const int32_t corr = 128 * _mm512_reduce_add_epi32(qacc);
    const __m128i corr4 = _mm_set1_epi32(corr);
    size_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const int8_t *p0 = rows + r * stride, *p1 = p0 + stride, *p2 = p1 + stride,
                     *p3 = p2 + stride;
        /* Ask for the rows TR_DOT_PREFETCH bytes ahead: at 100k x 768 (past
         * the caches) it measured 3.6 / 2.5 / 3.9 ms against 6.3 / 4.4 /
         * 6.0 ms without, on this noisy shared VM; cache-resident sets do
         * not slow down. A prefetch past the end is a hint, never a fault. */
        const char *pf = (const char *)((uintptr_t)p0 + TR_DOT_PREFETCH);
        for (size_t o = 0; o < 4 * stride; o += 64)
            _mm_prefetch(pf + o, _MM_HINT_T0);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < main; d += 64) {
            __m512i qv = _mm512_loadu_si512(q + d);
            a0 = step_avx512(a0, qv, _mm512_loadu_si512(p0 + d));
            a1 = step_avx512(a1, qv, _mm512_loadu_si512(p1 + d));
            a2 = step_avx512(a2, qv, _mm512_loadu_si512(p2 + d));
            a3 = step_avx512(a3, qv, _mm512_loadu_si512(p3 + d));
        }
        if (tm) {
            a0 = step_avx512(a0, qt, _mm512_maskz_loadu_epi8(tm, p0 + main));
            a1 = step_avx512(a1, qt, _mm512_maskz_loadu_epi8(tm, p1 + main));
            a2 = step_avx512(a2, qt, _mm512_maskz_loadu_epi8(tm, p2 + main));
            a3 = step_avx512(a3, qt, _mm512_maskz_loadu_epi8(tm, p3 + main));
        }
        _mm_storeu_si128((__m128i *)(out + r), _mm_sub_epi32(hsum4x512(a0, a1, a2, a3), corr4));
    }
    for (; r < n_rows; r++) {
        const int8_t *p = rows + r * stride;
        __m512i a = _mm512_setzero_si512();
        for (size_t d = 0; d < main; d += 64)
            a = step_avx512(a, _mm512_loadu_si512(q + d), _mm512_loadu_si512(p + d));
        if (tm)
            a = step_avx512(a, qt, _mm512_maskz_loadu_epi8(tm, p + main));
        out[r] = _mm512_reduce_add_epi32(a) - corr;
    }
}
#endif /* x86 */

#if defined(__aarch64__)

static inline int32_t tail(const int8_t *q, const int8_t *row, size_t from, size_t dim)
{
    int32_t acc = 0;
    for (size_t d = from; d < dim; d++)
        acc += (int32_t)q[d] * (int32_t)row[d];
    return acc;
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

/* SMMLA (platform/tr_dot_steps.h): rows in pairs, lanes 0 and 3. */
TR_I8MM void tr_dot_i8_rows_i8mm(const int8_t *q, const int8_t *rows, size_t stride,
                                 size_t n_rows, size_t dim, int32_t *out)
{
    const size_t main = dim & ~(size_t)15;
    size_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const int8_t *p0 = rows + r * stride, *p1 = p0 + stride, *p2 = p1 + stride,
                     *p3 = p2 + stride;
        int32x4_t a01 = vdupq_n_s32(0), a23 = a01;
        for (size_t d = 0; d < main; d += 16) {
            int8x16_t qv = vld1q_s8(q + d);
            a01 = step_i8mm(a01, qv, p0 + d, p1 + d);
            a23 = step_i8mm(a23, qv, p2 + d, p3 + d);
        }
        out[r] = vgetq_lane_s32(a01, 0) + tail(q, p0, main, dim);
        out[r + 1] = vgetq_lane_s32(a01, 3) + tail(q, p1, main, dim);
        out[r + 2] = vgetq_lane_s32(a23, 0) + tail(q, p2, main, dim);
        out[r + 3] = vgetq_lane_s32(a23, 3) + tail(q, p3, main, dim);
    }
    for (; r < n_rows; r++) {
        /* One row: pair it with itself. */
        const int8_t *p = rows + r * stride;
        int32x4_t a = vdupq_n_s32(0);
        for (size_t d = 0; d < main; d += 16)
            a = step_i8mm(a, vld1q_s8(q + d), p + d, p + d);
        out[r] = vgetq_lane_s32(a, 0) + tail(q, p, main, dim);
    }
}
#endif /* aarch64 */
