/* mbedTLS 2.28 configuration of the device build (make device): exactly what
 * core/crypto.c needs to verify a pack — SHA-256 and ECDSA P-256 verify — and
 * nothing that reaches the heap, the file system, the network or an entropy
 * source. Used as MBEDTLS_CONFIG_FILE both for building mbedcrypto and for
 * compiling the library against it, so both sides see the same structs. */
#ifndef TR_MBEDTLS_DEVICE_H
#define TR_MBEDTLS_DEVICE_H

/* Bignum assembly where mbedTLS has it (x86-64, aarch64): only speed. */
#define MBEDTLS_HAVE_ASM

/* Every mbedTLS allocation goes to mbedtls_calloc, which crypto.c points at
 * a static pool (memory_buffer_alloc). NO_STD_FUNCTIONS: until then the
 * default allocator returns NULL instead of calling libc calloc, so a missed
 * initialisation fails verification rather than touching the heap. */
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_MEMORY_BUFFER_ALLOC_C
/* The allocator exits on a corrupted pool header. Memory safety is already
 * lost then, so trap at once: needs neither libc's exit nor a declaration. */
#define MBEDTLS_PLATFORM_EXIT_MACRO(code) __builtin_trap()
/* The measuring build (build-device/measure, tests only) keeps stdio for
 * the allocator's statistics and diagnostics. */
#if defined(TR_MBEDTLS_MEASURE)
#define MBEDTLS_MEMORY_DEBUG
#else
#define MBEDTLS_PLATFORM_NO_STD_FUNCTIONS
#endif

#define MBEDTLS_SHA256_C
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ASN1_PARSE_C
/* ECDSA_C requires it (signing code we never call); costs ~1 KB of code. */
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
/* Fast reduction modulo the NIST primes: code, no memory. */
#define MBEDTLS_ECP_NIST_OPTIM

/* Verification uses no secret, so the coordinate blinding that the internal
 * RNG feeds protects nothing; without it ECP needs no DRBG and no entropy. */
#define MBEDTLS_ECP_NO_INTERNAL_RNG
/* Each verify loads a fresh group, so a cached table for G would be thrown
 * away: the optimisation would only raise the pool peak (w = 5 for G). */
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 0
/* Comb window: 2^(w-1) precomputed points for the public key's
 * multiplication. w = 2 instead of 4 cuts the pool a verify needs from about
 * 7.1 KB to 4.4 KB (x86-64); the time difference was lost in the noise of a
 * shared machine (core/DEVICE_CRYPTO.md). */
#define MBEDTLS_ECP_WINDOW_SIZE 2
#define MBEDTLS_ECP_MAX_BITS 256

#include "mbedtls/check_config.h"

#endif
