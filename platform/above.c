/* Which scored rows beat a threshold: the filter between the dot kernel and
 * the top-k heap of exact kNN (models/knn.c). Once the heap is full, almost
 * every row loses to its worst entry; testing rows one at a time (convert,
 * scale, compare, branch) cost a third of a cache-resident search, as much
 * as the dots themselves. Here 8 or 16 rows are tested per instruction and
 * only the winners reach the heap.
 *
 * mask bit j (word j / 64, bit j % 64) = ((float)dots[j] * scale[j] > thr),
 * j < n; the bits past n are 0. Every variant computes exactly that: one
 * int32 -> float conversion (round to nearest, as C's), one IEEE multiply,
 * an ordered compare (false on NaN, as C's >). */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"

void tr_scaled_above_scalar(const int32_t *dots, const float *scale, size_t n, float thr,
                            uint64_t *mask)
{
    for (size_t w = 0; w * 64 < n; w++)
        mask[w] = 0;
    for (size_t j = 0; j < n; j++)
        mask[j / 64] |= (uint64_t)((float)dots[j] * scale[j] > thr) << (j % 64);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TR_AVX2 __attribute__((target("avx2")))
#define TR_AVX512 __attribute__((target("avx512f")))

TR_AVX2 void tr_scaled_above_avx2(const int32_t *dots, const float *scale, size_t n, float thr,
                                  uint64_t *mask)
{
    const __m256 t = _mm256_set1_ps(thr);
    for (size_t base = 0; base < n; base += 64) {
        size_t end = n - base < 64 ? n : base + 64, j = base;
        uint64_t m = 0;
        for (; j + 8 <= end; j += 8) {
            __m256 s = _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(dots + j))),
                _mm256_loadu_ps(scale + j));
            m |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(s, t, _CMP_GT_OQ))
                 << (j - base);
        }
        for (; j < end; j++)
            m |= (uint64_t)((float)dots[j] * scale[j] > thr) << (j - base);
        mask[base / 64] = m;
    }
}

/* The last partial step is a masked load: lanes past n are never read. */
TR_AVX512 void tr_scaled_above_avx512(const int32_t *dots, const float *scale, size_t n,
                                      float thr, uint64_t *mask)
{
    const __m512 t = _mm512_set1_ps(thr);
    for (size_t base = 0; base < n; base += 64) {
        size_t end = n - base < 64 ? n : base + 64;
        uint64_t m = 0;
        for (size_t j = base; j < end; j += 16) {
            __mmask16 live = end - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (end - j)) - 1);
            __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(live, dots + j)),
                                     _mm512_maskz_loadu_ps(live, scale + j));
            m |= (uint64_t)_mm512_mask_cmp_ps_mask(live, s, t, _CMP_GT_OQ) << (j - base);
        }
        mask[base / 64] = m;
    }
}
#endif /* x86 */

#if defined(__aarch64__)
#include <arm_neon.h>

/* Four lanes' compare results (all ones or zero) as four bits. */
static inline uint64_t bits4(uint32x4_t gt)
{
    static const uint32_t weight[4] = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(gt, vld1q_u32(weight)));
}

void tr_scaled_above_neon(const int32_t *dots, const float *scale, size_t n, float thr,
                          uint64_t *mask)
{
    const float32x4_t t = vdupq_n_f32(thr);
    for (size_t base = 0; base < n; base += 64) {
        size_t end = n - base < 64 ? n : base + 64, j = base;
        uint64_t m = 0;
        for (; j + 4 <= end; j += 4) {
            float32x4_t s = vmulq_f32(vcvtq_f32_s32(vld1q_s32(dots + j)), vld1q_f32(scale + j));
            m |= bits4(vcgtq_f32(s, t)) << (j - base);
        }
        for (; j < end; j++)
            m |= (uint64_t)((float)dots[j] * scale[j] > thr) << (j - base);
        mask[base / 64] = m;
    }
}
#endif /* aarch64 */
