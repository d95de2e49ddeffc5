/* The numeric contract, in the source rather than in a Makefile.
 *
 * The host builder and the device must embed a prompt, quantise it and score
 * it to the same bits, whatever flags the integrator's build (CMake, Yocto,
 * a vendor IDE) compiles this library with. Two things break that silently:
 *
 *  - contraction: a*b + c fused into one FMA rounds once instead of twice.
 *    gcc fuses by default in the GNU dialects (-std=gnu11, the default) on
 *    any target with an FMA instruction: every aarch64, x86-64 with
 *    -march=haswell or -march=native. clang 14 fuses within an expression by
 *    default. The embedder's a += w * v, the principal-component removal,
 *    the quantiser's v / m * 127 + 0.5 and every utility p - lambda * c are
 *    exposed.
 *  - value-changing optimisations: -ffast-math and its parts reorder sums,
 *    replace divisions by reciprocals, and (-ffinite-math-only) delete the
 *    NaN/Inf checks that guard caller embeddings.
 *
 * Every .c file of core/, models/ and platform/ includes this header FIRST,
 * before any other header, so that the pragma covers every function of the
 * translation unit, inline functions from headers included later among
 * them (gcc's pragma applies to the definitions after it; a function
 * defined before it would be compiled with the caller's flags, and gcc may
 * refuse to inline between functions whose options differ).
 *
 * What is enforced (gcc 12 and clang 14; x86-64 and aarch64):
 *  - gcc: #pragma GCC optimize("fp-contract=off") turns contraction off
 *    whatever -ffp-contract, -std or -march say;
 *  - clang: #pragma STDC FP_CONTRACT OFF does the same for its default
 *    (-ffp-contract=on). clang's explicit -ffp-contract=fast ignores every
 *    pragma and nothing tells the preprocessor it was given: that one flag
 *    is not supported (core/INTEGRATION.md; `make test-flags` shows it);
 *  - -ffast-math, -fassociative-math, -freciprocal-math and
 *    -ffinite-math-only stop the build here where the compiler says so (gcc
 *    defines a macro for each; clang only for -ffast-math and finite-only),
 *    as does an evaluation method wider than float (x87).
 */
#ifndef TR_NUMERIC_H
#define TR_NUMERIC_H

#if defined(__FAST_MATH__)
#error "tinyroute: do not build with -ffast-math; host and device must compute the same float bits (platform/tr_numeric.h)"
#endif
#if defined(__ASSOCIATIVE_MATH__) || defined(__RECIPROCAL_MATH__)
#error "tinyroute: do not build with -fassociative-math or -freciprocal-math (platform/tr_numeric.h)"
#endif
#if defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#error "tinyroute: do not build with -ffinite-math-only: it deletes the NaN/Inf checks on caller embeddings (platform/tr_numeric.h)"
#endif
/* 16 (TS 18661-3): _Float16 in _Float16, everything else in its own type, as
 * 0 does: gcc's GNU modes report it where the CPU has AVX512-FP16
 * (-march=native on Sapphire Rapids). */
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0 && __FLT_EVAL_METHOD__ != 16
#error "tinyroute: float expressions must be evaluated in float (FLT_EVAL_METHOD 0; e.g. SSE, not x87) (platform/tr_numeric.h)"
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#endif /* TR_NUMERIC_H */
