/* Bit kernels: AND/popcount over correctness bitsets and Hamming distance
 * over sign-bit codes. The scalar reference uses the compiler's popcount;
 * the AVX2 variant is the nibble-lookup method (Mula et al.); NEON uses CNT. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"

uint64_t tr_and_popcount_scalar(const uint64_t *a, const uint64_t *b, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (uint64_t)__builtin_popcountll(a[i] & b[i]);
    return total;
}

/* out[r] = popcount(q ^ codes[r]) over words u64 per code. */
void tr_hamming_rows_scalar(const uint64_t *q, const uint64_t *codes, size_t words,
                            size_t n_rows, uint32_t *out)
{
    for (size_t r = 0; r < n_rows; r++) {
        const uint64_t *c = codes + r * words;
        uint32_t d = 0;
        for (size_t i = 0; i < words; i++)
            d += (uint32_t)__builtin_popcountll(q[i] ^ c[i]);
        out[r] = d;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TR_AVX2 __attribute__((target("avx2")))

static TR_AVX2 inline __m256i popcnt_bytes(__m256i v)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
    __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_add_epi8(lo, hi);
}

static TR_AVX2 inline uint64_t hsum64(__m256i v)
{
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_extract_epi64(s, 1);
}

TR_AVX2 uint64_t tr_and_popcount_avx2(const uint64_t *a, const uint64_t *b, size_t n)
{
    __m256i acc = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(a + i)),
                                     _mm256_loadu_si256((const __m256i *)(b + i)));
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(popcnt_bytes(v), _mm256_setzero_si256()));
    }
    uint64_t total = hsum64(acc);
    for (; i < n; i++)
        total += (uint64_t)__builtin_popcountll(a[i] & b[i]);
    return total;
}

TR_AVX2 void tr_hamming_rows_avx2(const uint64_t *q, const uint64_t *codes, size_t words,
                                  size_t n_rows, uint32_t *out)
{
    for (size_t r = 0; r < n_rows; r++) {
        const uint64_t *c = codes + r * words;
        __m256i acc = _mm256_setzero_si256();
        size_t i = 0;
        for (; i + 4 <= words; i += 4) {
            __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + i)),
                                         _mm256_loadu_si256((const __m256i *)(c + i)));
            acc = _mm256_add_epi64(acc, _mm256_sad_epu8(popcnt_bytes(v), _mm256_setzero_si256()));
        }
        uint64_t d = hsum64(acc);
        for (; i < words; i++)
            d += (uint64_t)__builtin_popcountll(q[i] ^ c[i]);
        out[r] = (uint32_t)d;
    }
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>

uint64_t tr_and_popcount_neon(const uint64_t *a, const uint64_t *b, size_t n)
{
    uint64x2_t acc = vdupq_n_u64(0);
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint8x16_t v = vreinterpretq_u8_u64(vandq_u64(vld1q_u64(a + i), vld1q_u64(b + i)));
        acc = vpadalq_u32(acc, vpaddlq_u16(vpaddlq_u8(vcntq_u8(v))));
    }
    uint64_t total = vaddvq_u64(acc);
    for (; i < n; i++)
        total += (uint64_t)__builtin_popcountll(a[i] & b[i]);
    return total;
}

void tr_hamming_rows_neon(const uint64_t *q, const uint64_t *codes, size_t words,
                          size_t n_rows, uint32_t *out)
{
    for (size_t r = 0; r < n_rows; r++) {
        const uint64_t *c = codes + r * words;
        uint64x2_t acc = vdupq_n_u64(0);
        size_t i = 0;
        for (; i + 2 <= words; i += 2) {
            uint8x16_t v = vreinterpretq_u8_u64(veorq_u64(vld1q_u64(q + i), vld1q_u64(c + i)));
            acc = vpadalq_u32(acc, vpaddlq_u16(vpaddlq_u8(vcntq_u8(v))));
        }
        uint64_t d = vaddvq_u64(acc);
        for (; i < words; i++)
            d += (uint64_t)__builtin_popcountll(q[i] ^ c[i]);
        out[r] = (uint32_t)d;
    }
}
#endif
