/* Runtime dispatch: detect CPU features once, pick the best kernel family.
 * x86: cpuid + xgetbv (the OS must save YMM state, and for AVX-512 also the
 * opmask and all 512-bit registers); aarch64: AT_HWCAP. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
#endif

static const tr_kernels scalar = {"scalar", tr_dot_i8_rows_scalar, tr_dot_i8_blocks_scalar, tr_and_popcount_scalar,
                                  tr_hamming_rows_scalar, tr_scaled_above_scalar, 1};
#if defined(__x86_64__) || defined(__i386__)
static const tr_kernels avx2 = {"avx2", tr_dot_i8_rows_avx2, tr_dot_i8_blocks_avx2, tr_and_popcount_avx2,
                                tr_hamming_rows_avx2, tr_scaled_above_avx2, 0};
static const tr_kernels vnni = {"avx-vnni", tr_dot_i8_rows_vnni, tr_dot_i8_blocks_vnni, tr_and_popcount_avx2,
                                tr_hamming_rows_avx2, tr_scaled_above_avx2, 0};
static const tr_kernels avx512 = {"avx512-vnni", tr_dot_i8_rows_avx512, tr_dot_i8_blocks_avx512, tr_and_popcount_avx512,
                                  tr_hamming_rows_avx512, tr_scaled_above_avx512, 1};

/* XCR0, the register state the OS saves on a context switch; 0 without
 * OSXSAVE (then not even YMM may be used). */
static unsigned xcr0(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

static void detect(int *has_avx2, int *has_vnni, int *has_avx512)
{
    unsigned a, b, c, d, x = xcr0();
    *has_avx2 = *has_vnni = *has_avx512 = 0;
    if ((x & 6) != 6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return; /* XCR0[2:1]: the OS saves SSE and YMM state */
    *has_avx2 = (b >> 5) & 1;
    /* AVX-512 F (EBX[16]) + BW (EBX[30]) + VL (EBX[31]: the 128-bit
     * vpdpbusd of dot_i8_blocks' one-row path) + VNNI (ECX[11]) + VPOPCNTDQ
     * (ECX[14]), and XCR0[7:5]: opmask, ZMM0-15 upper halves, ZMM16-31. A
     * CPU that has the instructions under an OS that does not save the
     * registers must not use them. */
    *has_avx512 = *has_avx2 && (x & 0xE6) == 0xE6 && ((b >> 16) & 1) && ((b >> 30) & 1) &&
                  ((b >> 31) & 1) && ((c >> 11) & 1) && ((c >> 14) & 1);
    if (*has_avx2 && __get_cpuid_count(7, 1, &a, &b, &c, &d))
        *has_vnni = (a >> 4) & 1; /* AVX-VNNI: CPUID.(7,1):EAX[4] */
}
#elif defined(__aarch64__)
static const tr_kernels neon = {"neon", tr_dot_i8_rows_neon, tr_dot_i8_blocks_neon, tr_and_popcount_neon,
                                tr_hamming_rows_neon, tr_scaled_above_neon, 1};
static const tr_kernels sdot = {"neon-sdot", tr_dot_i8_rows_sdot, tr_dot_i8_blocks_sdot, tr_and_popcount_neon,
                                tr_hamming_rows_neon, tr_scaled_above_neon, 1};
static const tr_kernels i8mm = {"neon-i8mm", tr_dot_i8_rows_i8mm, tr_dot_i8_blocks_i8mm, tr_and_popcount_neon,
                                tr_hamming_rows_neon, tr_scaled_above_neon, 1};

static int has_dotprod(void)
{
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}

static int has_i8mm(void)
{
#if defined(__linux__)
    return (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0;
#else
    return 0;
#endif
}
#endif

const tr_kernels *tr_kernels_scalar(void) { return &scalar; }

size_t tr_kernels_available(const tr_kernels **out, size_t cap)
{
    const tr_kernels *all[TR_KERNELS_MAX];
    size_t n = 0;
    all[n++] = &scalar;
#if defined(__x86_64__) || defined(__i386__)
    int a, v, z;
    detect(&a, &v, &z);
    if (a)
        all[n++] = &avx2;
    if (v)
        all[n++] = &vnni;
    if (z)
        all[n++] = &avx512;
#elif defined(__aarch64__)
    all[n++] = &neon; /* Advanced SIMD is part of ARMv8-A */
    /* i8mm before SDOT: with one query per call SMMLA does SDOT's useful
     * work plus two zips per 16 bytes (platform/dot_i8.c), so SDOT stays
     * the active one; every i8mm core has SDOT (ARMv8.6). */
    if (has_i8mm())
        all[n++] = &i8mm;
    if (has_dotprod())
        all[n++] = &sdot;
#endif
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = all[i];
    return n;
}

const tr_kernels *tr_kernels_active(void)
{
#ifdef TR_FORCE_SCALAR
    return &scalar;
#else
    /* Benign race: every thread computes the same pointer. */
    static const tr_kernels *chosen;
    const tr_kernels *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!k) {
        const tr_kernels *all[TR_KERNELS_MAX];
        size_t n = tr_kernels_available(all, TR_KERNELS_MAX);
        k = all[n - 1];
        __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    }
    return k;
#endif
}
