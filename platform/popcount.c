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
/* AVX-512 VPOPCNTDQ: one vpopcntq per 8 words, masked loads for the last
 * partial step (no scalar tail, no read past the data). Codes of at most
 * 128 bits (2 words: every D <= 128, e.g. the built-in embedder's 100) are
 * scored four rows per 64-byte load. */
#define TR_AVX512POP __attribute__((target("avx512f,avx512bw,avx512vpopcntdq")))

TR_AVX512POP uint64_t tr_and_popcount_avx512(const uint64_t *a, const uint64_t *b, size_t n)
{
    __m512i acc = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(
                                        _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i))));
    if (i < n) {
        __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_and_si512(
                                        _mm512_maskz_loadu_epi64(m, a + i),
                                        _mm512_maskz_loadu_epi64(m, b + i))));
    }
    return (uint64_t)_mm512_reduce_add_epi64(acc);
}

TR_AVX512POP void tr_hamming_rows_avx512(const uint64_t *q, const uint64_t *codes, size_t words,
                                         size_t n_rows, uint32_t *out)
{
    size_t r = 0;
    if (words == 2) {
        /* Four codes per load: popcount each word, add the two words of a
         * code (swap the 64-bit halves of each 128-bit lane), then gather
         * the four sums (u32 lanes 0, 4, 8, 12) into one 16-byte store. */
        const __m512i qq = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)q));
        const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        for (; r + 4 <= n_rows; r += 4) {
            __m512i pc = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(codes + 2 * r), qq));
            pc = _mm512_add_epi64(pc, _mm512_shuffle_epi32(pc, _MM_PERM_BADC));
            _mm_storeu_si128((__m128i *)(out + r),
                             _mm512_castsi512_si128(_mm512_permutexvar_epi32(idx, pc)));
        }
    }
    const size_t full = words & ~(size_t)7;
    const __mmask8 tm = (__mmask8)((1u << (words & 7)) - 1);
    const __m512i qt = _mm512_maskz_loadu_epi64(tm, q + full);
    for (; r < n_rows; r++) {
        const uint64_t *c = codes + r * words;
        __m512i acc = _mm512_setzero_si512();
        for (size_t i = 0; i < full; i += 8)
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(
                                            _mm512_loadu_si512(q + i), _mm512_loadu_si512(c + i))));
        if (tm)
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(
                                            qt, _mm512_maskz_loadu_epi64(tm, c + full))));
        out[r] = (uint32_t)_mm512_reduce_add_epi64(acc);
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
