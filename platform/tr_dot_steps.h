/* The int8 multiply-accumulate steps both dot kernel families share
 * (platform/dot_i8.c over row-major rows, platform/dot_i8_blocks.c over the
 * pack's blocks of 4): each ISA's target attribute, the compiler shims and
 * one 16- or 32-byte step. Private to platform/. */
#ifndef TR_DOT_STEPS_H
#define TR_DOT_STEPS_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TR_AVX2 __attribute__((target("avx2")))
#define TR_VNNI __attribute__((target("avx2,avxvnni")))

/* Inputs are in [-127, 127] (the packs and tr_route's int8 check guarantee
 * it), which allows the sign trick: a.b = |a| . (sign(a) * b), with |a| as
 * the unsigned operand vpmaddubsw / vpdpbusd require, and no int16
 * saturation (2 * 127 * 127 < 32767). One 32-byte step of |q| . sign(q)*r
 * into int32 lanes; qa = |qs|. */
static TR_AVX2 inline __m256i step_avx2(__m256i acc, __m256i qa, __m256i qs, __m256i r)
{
    r = _mm256_sign_epi8(r, qs);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(qa, r),
                                                   _mm256_set1_epi16(1)));
}

static TR_VNNI inline __m256i step_vnni(__m256i acc, __m256i qa, __m256i qs, __m256i r)
{
    return _mm256_dpbusd_avx_epi32(acc, qa, _mm256_sign_epi8(r, qs));
}
#endif /* x86 */

#if defined(__aarch64__)
#include <arm_neon.h>

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

/* ARMv8.6 int8 matrix multiply: SMMLA multiplies a 2x8 by an 8x2 int8
 * tile into a 2x2 int32 accumulator, acc[2i + j] += a_i . b_j. Two rows go
 * in as a (their 8-byte halves zipped), the query's same 8 bytes as both
 * columns of b, so lanes 0 and 3 hold row 0's and row 1's partial dots
 * (lanes 1 and 2 repeat them). With one query that is SDOT's useful work
 * per instruction; the tile pays off with two queries per call (batched
 * scoring), which is why dispatch keeps SDOT active where both exist. Exact
 * on every int8 (int32 accumulation). */
#if defined(__clang__)
/* As for SDOT above: clang 14 declares vmmlaq_s32 only for a whole +i8mm
 * build, so the same instruction by inline assembly. */
#define TR_I8MM __attribute__((target("i8mm")))
static TR_I8MM inline int32x4_t tr_vmmlaq_s32(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    __asm__("smmla %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}
#else
#define TR_I8MM __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#define tr_vmmlaq_s32 vmmlaq_s32
#endif

/* Rows p and p2 over 16 bytes against the query's 16 bytes qv. */
static TR_I8MM inline int32x4_t step_i8mm(int32x4_t acc, int8x16_t qv, const int8_t *p,
                                          const int8_t *p2)
{
    const int64x2_t q2 = vreinterpretq_s64_s8(qv);
    int64x2_t r0 = vreinterpretq_s64_s8(vld1q_s8(p)), r1 = vreinterpretq_s64_s8(vld1q_s8(p2));
    int8x16_t qlo = vreinterpretq_s8_s64(vdupq_laneq_s64(q2, 0));
    int8x16_t qhi = vreinterpretq_s8_s64(vdupq_laneq_s64(q2, 1));
    acc = tr_vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip1q_s64(r0, r1)), qlo);
    return tr_vmmlaq_s32(acc, vreinterpretq_s8_s64(vzip2q_s64(r0, r1)), qhi);
}
#endif /* aarch64 */

#endif
