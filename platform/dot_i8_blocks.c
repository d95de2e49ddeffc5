/* int8 . int8 dot products of one query against reference rows stored in
 * blocks of 4 rows by 16-byte chunks (pack format 2, platform/tr_format.h):
 * the kernel behind exact kNN search and the prefilter's rerank. Each ISA
 * variant sits beside the scalar reference and must return exactly its
 * results (tests/test_kernels.c). Centroids and the local store keep
 * row-major rows (platform/dot_i8.c). */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"
#include "tr_dot_steps.h"

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

#if defined(__x86_64__) || defined(__i386__)

/* AVX2 and AVX-VNNI: the sign trick of platform/tr_dot_steps.h (values in
 * [-127, 127]: |q| unsigned against sign(q) * row, no int16 saturation).
 * A 32-byte load is chunk c of two rows of a block (rows 2h, 2h + 1 at
 * 64 c + 32 h), the query's chunk c broadcast to both halves. Two blocks
 * per pass, four accumulators: one hadd tree and one permute put the 8
 * rows in order. The query's last partial chunk is copied once into a
 * zeroed 16-byte buffer (q is never read past dim); its zeros meet the
 * rows' zero padding. One row (a partial block, the rerank's single rows):
 * 128-bit steps on each of its 16-byte chunks. */
static TR_AVX2 inline __m128i step128_avx2(__m128i acc, __m128i qs, __m128i r)
{
    r = _mm_sign_epi8(r, qs);
    return _mm_add_epi32(acc, _mm_madd_epi16(_mm_maddubs_epi16(_mm_abs_epi8(qs), r),
                                             _mm_set1_epi16(1)));
}
static TR_VNNI inline __m128i step128_vnni(__m128i acc, __m128i qs, __m128i r)
{
    return _mm_dpbusd_avx_epi32(acc, _mm_abs_epi8(qs), _mm_sign_epi8(r, qs));
}

static TR_AVX2 inline int32_t hsum128(__m128i s)
{
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* a0, a1: rows 0-1, 2-3 of one block; a2, a3: of the next (or zero). */
static TR_AVX2 inline __m256i rows8_avx2(__m256i a0, __m256i a1, __m256i a2, __m256i a3)
{
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

#define TR_BLOCKS_X86_BODY(STEP, STEP128)                                                      \
    if (n_rows == 0)                                                                           \
        return;                                                                                \
    const size_t stride = tr_ref_stride((uint32_t)dim), full = dim / 16, rest = dim % 16;      \
    const size_t bstride = TR_REF_BLOCK_ROWS * stride;                                         \
    int8_t qt[16] = {0};                                                                       \
    for (size_t d = 0; d < rest; d++)                                                          \
        qt[d] = q[16 * full + d];                                                              \
    const __m128i tq = _mm_loadu_si128((const __m128i *)qt);                                   \
    const __m256i tqs = _mm256_broadcastsi128_si256(tq), tqa = _mm256_abs_epi8(tqs);           \
    size_t r = first;                                                                          \
    const size_t end = first + n_rows;                                                         \
    int32_t *o = out;                                                                          \
    while (r < end) {                                                                          \
        const int8_t *p = blocks + bstride * (r / 4);                                          \
        const size_t j0 = r % 4, left = end - r;                                               \
        if (j0 == 0 && left >= 8) { /* two whole blocks */                                     \
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;                    \
            for (size_t c = 0; c < full; c++) {                                                \
                const __m256i qs = _mm256_broadcastsi128_si256(                                \
                    _mm_loadu_si128((const __m128i *)(q + 16 * c)));                           \
                const __m256i qa = _mm256_abs_epi8(qs);                                        \
                const int8_t *pc = p + 64 * c;                                                 \
                a0 = STEP(a0, qa, qs, _mm256_loadu_si256((const __m256i *)pc));                \
                a1 = STEP(a1, qa, qs, _mm256_loadu_si256((const __m256i *)(pc + 32)));         \
                a2 = STEP(a2, qa, qs, _mm256_loadu_si256((const __m256i *)(pc + bstride)));    \
                a3 = STEP(a3, qa, qs, _mm256_loadu_si256((const __m256i *)(pc + bstride + 32))); \
            }                                                                                  \
            if (rest) {                                                                        \
                const int8_t *pc = p + 64 * full;                                              \
                a0 = STEP(a0, tqa, tqs, _mm256_loadu_si256((const __m256i *)pc));              \
                a1 = STEP(a1, tqa, tqs, _mm256_loadu_si256((const __m256i *)(pc + 32)));       \
                a2 = STEP(a2, tqa, tqs, _mm256_loadu_si256((const __m256i *)(pc + bstride)));  \
                a3 = STEP(a3, tqa, tqs,                                                        \
                          _mm256_loadu_si256((const __m256i *)(pc + bstride + 32)));           \
            }                                                                                  \
            _mm256_storeu_si256((__m256i *)o, rows8_avx2(a0, a1, a2, a3));                     \
            r += 8, o += 8;                                                                    \
        } else if (left == 1 || (j0 == 3)) { /* one row */                                    \
            const int8_t *pr = p + 16 * j0;                                                    \
            __m128i a = _mm_setzero_si128(), b = a;                                            \
            size_t c = 0;                                                                      \
            for (; c + 2 <= full; c += 2) {                                                    \
                a = STEP128(a, _mm_loadu_si128((const __m128i *)(q + 16 * c)),                 \
                            _mm_loadu_si128((const __m128i *)(pr + 64 * c)));                  \
                b = STEP128(b, _mm_loadu_si128((const __m128i *)(q + 16 * c + 16)),            \
                            _mm_loadu_si128((const __m128i *)(pr + 64 * c + 64)));             \
            }                                                                                  \
            if (c < full)                                                                      \
                a = STEP128(a, _mm_loadu_si128((const __m128i *)(q + 16 * c)),                 \
                            _mm_loadu_si128((const __m128i *)(pr + 64 * c)));                  \
            if (rest)                                                                          \
                b = STEP128(b, tq, _mm_loadu_si128((const __m128i *)(pr + 64 * full)));        \
            *o = hsum128(_mm_add_epi32(a, b));                                                 \
            r++, o++;                                                                          \
        } else { /* one block, rows j0 .. j0 + cnt - 1 of it wanted */                         \
            const size_t cnt = left < 4 - j0 ? left : 4 - j0;                                  \
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;                                      \
            for (size_t c = 0; c < full; c++) {                                                \
                const __m256i qs = _mm256_broadcastsi128_si256(                                \
                    _mm_loadu_si128((const __m128i *)(q + 16 * c)));                           \
                const __m256i qa = _mm256_abs_epi8(qs);                                        \
                a0 = STEP(a0, qa, qs, _mm256_loadu_si256((const __m256i *)(p + 64 * c)));      \
                a1 = STEP(a1, qa, qs, _mm256_loadu_si256((const __m256i *)(p + 64 * c + 32))); \
            }                                                                                  \
            if (rest) {                                                                        \
                a0 = STEP(a0, tqa, tqs, _mm256_loadu_si256((const __m256i *)(p + 64 * full))); \
                a1 = STEP(a1, tqa, tqs,                                                        \
                          _mm256_loadu_si256((const __m256i *)(p + 64 * full + 32)));          \
            }                                                                                  \
            int32_t t[8];                                                                      \
            const __m256i z = _mm256_setzero_si256();                                          \
            _mm256_storeu_si256((__m256i *)t, rows8_avx2(a0, a1, z, z));                       \
            for (size_t j = 0; j < cnt; j++)                                                   \
                o[j] = t[j0 + j];                                                              \
            r += cnt, o += cnt;                                                                \
        }                                                                                      \
    }

TR_AVX2 void tr_dot_i8_blocks_avx2(const int8_t *q, const int8_t *blocks, size_t dim,
                                   size_t first, size_t n_rows, int32_t *out)
{
    TR_BLOCKS_X86_BODY(step_avx2, step128_avx2)
}

TR_VNNI void tr_dot_i8_blocks_vnni(const int8_t *q, const int8_t *blocks, size_t dim,
                                   size_t first, size_t n_rows, int32_t *out)
{
    TR_BLOCKS_X86_BODY(step_vnni, step128_vnni)
}

/* AVX-512 VNNI: a 64-byte load is chunk c of the 4 rows of a block, the
 * query's chunk c broadcast to the 4 lanes, one vpdpbusd per chunk per
 * block. The row is made unsigned by the offset trick of platform/dot_i8.c
 * (row ^ 0x80 = row + 128 as u8; 128 * sum q subtracted per row), so every
 * int8 value, -128 included, gives the scalar result: an int32 lane sums 4
 * products of at most 255 * 128 per chunk, 4 * 255 * 128 * 512 < 2^31 at
 * TR_DIM_MAX = 8192. The query's last partial chunk is a masked load (zeros
 * past dim; q is never read past dim), and a zero query byte cancels
 * whatever the row holds there. Four blocks (16 rows) per pass with four
 * accumulators so the dependency chains overlap; the four are reduced in
 * lane (two unpack levels), put in row order by one permute and stored
 * as 16 outputs. (Kernel alone on 12k x 100, best of 3000, interleaved
 * runs: 4 blocks per pass 0.0106-0.0124 ms, 2 blocks 0.0119-0.0130, 8
 * blocks no better than 4; one loop with the partial chunk folded in by a
 * branch 10% slower than the separate last step.) A partial block of 2-3 wanted rows is computed whole (its
 * storage is readable whole) and only those are written; a single row
 * (the prefilter's rerank) takes 128-bit steps on its 16-byte chunks,
 * 64 bytes apart. */
#ifndef TR_DOT_PREFETCH
#define TR_DOT_PREFETCH 8192
#endif
#define TR_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

static TR_AVX512 inline __m512i bstep_avx512(__m512i acc, __m512i qv, const int8_t *p)
{
    return _mm512_dpbusd_epi32(acc, _mm512_xor_si512(_mm512_loadu_si512(p),
                                                     _mm512_set1_epi8((char)0x80)), qv);
}

static TR_AVX512 inline __m512i qchunk512(const int8_t *q, size_t c)
{
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(q + 16 * c)));
}

/* u's 128-bit lane k, element j: row k of the block that accumulator j
 * scored; into row order (row 4j + k at 4j + k). */
static TR_AVX512 inline __m512i sum4_avx512(__m512i a0, __m512i a1, __m512i a2, __m512i a3)
{
    const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}
static TR_AVX512 inline __m512i rows16_avx512(__m512i a0, __m512i a1, __m512i a2, __m512i a3)
{
    return _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
        sum4_avx512(a0, a1, a2, a3));
}

TR_AVX512 void tr_dot_i8_blocks_avx512(const int8_t *q, const int8_t *blocks, size_t dim,
                                       size_t first, size_t n_rows, int32_t *out)
{
    if (n_rows == 0)
        return;
    const size_t stride = tr_ref_stride((uint32_t)dim), full = dim / 16, rest = dim % 16;
    const size_t bstride = TR_REF_BLOCK_ROWS * stride;
    const __m128i tq = _mm_maskz_loadu_epi8((__mmask16)((1u << rest) - 1), q + 16 * full);
    const __m512i tqv = _mm512_broadcast_i32x4(tq);
    /* 128 * sum q, exactly, by vpdpbusd against ones. */
    const __m512i ones = _mm512_set1_epi8(1);
    const size_t main = dim & ~(size_t)63;
    __m512i qacc = _mm512_dpbusd_epi32(
        _mm512_setzero_si512(), ones,
        _mm512_maskz_loadu_epi8((dim & 63) ? ~0ull >> (64 - (dim & 63)) : 0, q + main));
    for (size_t d = 0; d < main; d += 64)
        qacc = _mm512_dpbusd_epi32(qacc, ones, _mm512_loadu_si512(q + d));
    const int32_t corr = 128 * _mm512_reduce_add_epi32(qacc);
    const __m512i corr16 = _mm512_set1_epi32(corr);
    size_t r = first;
    const size_t end = first + n_rows;
    int32_t *o = out;
    while (r < end) {
        const int8_t *p = blocks + bstride * (r / 4);
        const size_t j0 = r % 4, left = end - r;
        if (j0 == 0 && left >= 16) { /* four whole blocks */
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t c = 0; c < full; c++) {
                const __m512i qv = qchunk512(q, c);
                const int8_t *pc = p + 64 * c;
#if TR_DOT_PREFETCH
                /* One line TR_DOT_PREFETCH bytes ahead per chunk step (a
                 * quarter of the lines; a hint, never a fault past the
                 * end). Kernel alone, best of 4 interleaved runs: 100k x
                 * 768 2.82-2.96 ms, against 2.91-3.11 prefetching every
                 * line and 2.71-3.16 none; 2k x 768 (in L2) 0.0131-0.0143
                 * against 0.0173-0.0181 every line, 0.0123-0.0142 none. */
                _mm_prefetch((const char *)pc + TR_DOT_PREFETCH, _MM_HINT_T0);
#endif
                a0 = bstep_avx512(a0, qv, pc);
                a1 = bstep_avx512(a1, qv, pc + bstride);
                a2 = bstep_avx512(a2, qv, pc + 2 * bstride);
                a3 = bstep_avx512(a3, qv, pc + 3 * bstride);
            }
            if (rest) {
                const int8_t *pc = p + 64 * full;
                a0 = bstep_avx512(a0, tqv, pc);
                a1 = bstep_avx512(a1, tqv, pc + bstride);
                a2 = bstep_avx512(a2, tqv, pc + 2 * bstride);
                a3 = bstep_avx512(a3, tqv, pc + 3 * bstride);
            }
            const __m512i v = _mm512_sub_epi32(rows16_avx512(a0, a1, a2, a3), corr16);
            _mm512_storeu_si512(o, v);
            r += 16, o += 16;
        } else if (left == 1 || j0 == 3) { /* one row */
            const int8_t *pr = p + 16 * j0;
            const __m128i flip = _mm_set1_epi8((char)0x80);
            __m128i a = _mm_setzero_si128(), b = a;
            size_t c = 0;
            for (; c + 2 <= full; c += 2) {
                a = _mm_dpbusd_epi32(a, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(pr + 64 * c)), flip),
                                     _mm_loadu_si128((const __m128i *)(q + 16 * c)));
                b = _mm_dpbusd_epi32(b, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(pr + 64 * c + 64)), flip),
                                     _mm_loadu_si128((const __m128i *)(q + 16 * c + 16)));
            }
            if (c < full)
                a = _mm_dpbusd_epi32(a, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(pr + 64 * c)), flip),
                                     _mm_loadu_si128((const __m128i *)(q + 16 * c)));
            if (rest)
                b = _mm_dpbusd_epi32(b, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(pr + 64 * full)), flip), tq);
            __m128i s = _mm_add_epi32(a, b);
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
            *o = _mm_cvtsi128_si32(s) - corr;
            r++, o++;
        } else { /* whole blocks one at a time, or rows j0 .. j0 + cnt - 1 of one */
            const size_t cnt = left < 4 - j0 ? left : 4 - j0;
            __m512i a = _mm512_setzero_si512();
            for (size_t c = 0; c < full; c++)
                a = bstep_avx512(a, qchunk512(q, c), p + 64 * c);
            if (rest)
                a = bstep_avx512(a, tqv, p + 64 * full);
            const __m512i z = _mm512_setzero_si512();
            /* sum4 of (a, 0, 0, 0): row k of the block at element 4k. */
            const __m512i u = sum4_avx512(a, z, z, z);
            const __m512i v = _mm512_permutexvar_epi32(
                _mm512_add_epi32(_mm512_set1_epi32((int)(4 * j0)),
                                 _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
                _mm512_sub_epi32(u, corr16));
            _mm512_mask_storeu_epi32(o, (__mmask16)((1u << cnt) - 1), v);
            r += cnt, o += cnt;
        }
    }
}
#endif /* x86 */

#if defined(__aarch64__)

/* A 16-byte load is one row's chunk: the steps of platform/tr_dot_steps.h with
 * new addresses (row j of a block at 16 j, its chunk c 64 c further). Four
 * rows of a whole block per pass share each query chunk; a partial block's
 * rows go one at a time. The query's last partial chunk is copied once into
 * a zeroed 16-byte buffer (q is never read past dim): its zeros meet the
 * rows' zero padding, so no scalar tail. */
/* The query chunk c: from q, or the zero-padded copy of the last one. */
#define TR_QCHUNK(c) vld1q_s8((c) < full ? q + 16 * (c) : qt)

#define TR_BLOCKS_ARM_BODY(STEP)                                                           \
    const size_t stride = tr_ref_stride((uint32_t)dim), full = dim / 16;                   \
    const size_t steps = stride / 16, bstride = TR_REF_BLOCK_ROWS * stride;                \
    int8_t qt[16] = {0};                                                                   \
    for (size_t d = 16 * full; d < dim; d++)                                               \
        qt[d - 16 * full] = q[d];                                                          \
    size_t r = first;                                                                      \
    const size_t end = first + n_rows;                                                     \
    int32_t *o = out;                                                                      \
    while (r < end) {                                                                      \
        const int8_t *p = blocks + bstride * (r / 4);                                      \
        if (r % 4 == 0 && end - r >= 4) {                                                  \
            int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;                      \
            for (size_t c = 0; c < full; c++) {                                            \
                const int8x16_t qv = vld1q_s8(q + 16 * c);                                 \
                const int8_t *pc = p + 64 * c;                                             \
                a0 = STEP(a0, qv, pc);                                                     \
                a1 = STEP(a1, qv, pc + 16);                                                \
                a2 = STEP(a2, qv, pc + 32);                                                \
                a3 = STEP(a3, qv, pc + 48);                                                \
            }                                                                              \
            if (steps > full) {                                                            \
                const int8x16_t qv = vld1q_s8(qt);                                         \
                const int8_t *pc = p + 64 * full;                                          \
                a0 = STEP(a0, qv, pc);                                                     \
                a1 = STEP(a1, qv, pc + 16);                                                \
                a2 = STEP(a2, qv, pc + 32);                                                \
                a3 = STEP(a3, qv, pc + 48);                                                \
            }                                                                              \
            /* pairwise adds: [sum a0, sum a1, sum a2, sum a3] */                          \
            vst1q_s32(o, vpaddq_s32(vpaddq_s32(a0, a1), vpaddq_s32(a2, a3)));              \
            r += 4, o += 4;                                                                \
        } else { /* one row */                                                             \
            const int8_t *pr = p + 16 * (r % 4);                                           \
            int32x4_t a = vdupq_n_s32(0), b = a;                                           \
            size_t c = 0;                                                                  \
            for (; c + 2 <= steps; c += 2) {                                               \
                a = STEP(a, TR_QCHUNK(c), pr + 64 * c);                                    \
                b = STEP(b, TR_QCHUNK(c + 1), pr + 64 * c + 64);                           \
            }                                                                              \
            if (c < steps)                                                                 \
                a = STEP(a, TR_QCHUNK(c), pr + 64 * c);                                    \
            *o = vaddvq_s32(vaddq_s32(a, b));                                              \
            r++, o++;                                                                      \
        }                                                                                  \
    }

void tr_dot_i8_blocks_neon(const int8_t *q, const int8_t *blocks, size_t dim, size_t first,
                           size_t n_rows, int32_t *out)
{
    TR_BLOCKS_ARM_BODY(step_neon)
}

TR_SDOT void tr_dot_i8_blocks_sdot(const int8_t *q, const int8_t *blocks, size_t dim,
                                   size_t first, size_t n_rows, int32_t *out)
{
    TR_BLOCKS_ARM_BODY(step_sdot)
}

/* SMMLA (platform/tr_dot_steps.h): a block's rows in pairs, lanes 0 and 3. */
TR_I8MM void tr_dot_i8_blocks_i8mm(const int8_t *q, const int8_t *blocks, size_t dim,
                                   size_t first, size_t n_rows, int32_t *out)
{
    const size_t stride = tr_ref_stride((uint32_t)dim), full = dim / 16;
    const size_t steps = stride / 16, bstride = TR_REF_BLOCK_ROWS * stride;
    int8_t qt[16] = {0};
    for (size_t d = 16 * full; d < dim; d++)
        qt[d - 16 * full] = q[d];
    size_t r = first;
    const size_t end = first + n_rows;
    int32_t *o = out;
    while (r < end) {
        const int8_t *p = blocks + bstride * (r / 4);
        if (r % 4 == 0 && end - r >= 4) {
            int32x4_t a01 = vdupq_n_s32(0), a23 = a01;
            for (size_t c = 0; c < steps; c++) {
                const int8x16_t qv = TR_QCHUNK(c);
                const int8_t *pc = p + 64 * c;
                a01 = step_i8mm(a01, qv, pc, pc + 16);
                a23 = step_i8mm(a23, qv, pc + 32, pc + 48);
            }
            o[0] = vgetq_lane_s32(a01, 0);
            o[1] = vgetq_lane_s32(a01, 3);
            o[2] = vgetq_lane_s32(a23, 0);
            o[3] = vgetq_lane_s32(a23, 3);
            r += 4, o += 4;
        } else { /* one row: paired with itself */
            const int8_t *pr = p + 16 * (r % 4);
            int32x4_t a = vdupq_n_s32(0);
            for (size_t c = 0; c < steps; c++)
                a = step_i8mm(a, TR_QCHUNK(c), pr + 64 * c, pr + 64 * c);
            *o = vgetq_lane_s32(a, 0);
            r++, o++;
        }
    }
}
#endif /* aarch64 */
