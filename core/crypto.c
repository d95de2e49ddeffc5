/* The only file that talks to mbedTLS. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "tr_format.h"
#include "tr_internal.h"
#include "tr_outcome.h"

#ifdef TR_DEVICE_CRYPTO
#include <stdatomic.h>
#ifndef __STDC_NO_THREADS__
#include <threads.h>
#endif

#include <mbedtls/memory_buffer_alloc.h>

/* Device build (make device): mbedTLS allocates only from a static pool of
 * TR_CRYPTO_POOL_BYTES (tr_internal.h). One pool for the process, so one verification at a time: a spin lock
 * (C11 atomics) serialises concurrent verifies from several threads.
 * Acceptable because a verify is rare (pack loads) and short (a few ms);
 * routing never takes the lock. A waiter yields its CPU where C11 threads
 * exist, since the holder may need it for those milliseconds. */
static _Alignas(16) unsigned char pool[TR_CRYPTO_POOL_BYTES];
static atomic_flag pool_busy = ATOMIC_FLAG_INIT;
static size_t pool_limit = sizeof pool;

static void crypto_enter(void)
{
    while (atomic_flag_test_and_set_explicit(&pool_busy, memory_order_acquire)) {
#ifndef __STDC_NO_THREADS__
        thrd_yield();
#endif
    }
    /* A fresh heap each time: a verify can never inherit a leak or
     * fragmentation from an earlier one, and the pool needs no set-up call. */
    mbedtls_memory_buffer_alloc_init(pool, pool_limit);
}

static void crypto_leave(void)
{
    atomic_flag_clear_explicit(&pool_busy, memory_order_release);
}

#if defined(MBEDTLS_MEMORY_DEBUG)
/* Measuring build only (TR_MBEDTLS_MEASURE). */
static size_t stat_peak, stat_blocks, stat_left;

void tr_crypto_pool_limit(size_t bytes)
{
    pool_limit = bytes < sizeof pool ? bytes : sizeof pool;
}

void tr_crypto_pool_stats(size_t *peak, size_t *peak_blocks, size_t *left)
{
    *peak = stat_peak;
    *peak_blocks = stat_blocks;
    *left = stat_left;
}

static void crypto_record(void)
{
    size_t blocks;
    mbedtls_memory_buffer_alloc_max_get(&stat_peak, &stat_blocks);
    mbedtls_memory_buffer_alloc_cur_get(&stat_left, &blocks);
}
#else
static void crypto_record(void) {}
#endif
#else
static void crypto_enter(void) {}
static void crypto_leave(void) {}
static void crypto_record(void) {}
#endif

/* Running out of memory (the device pool, or the heap on the host) is the
 * crypto layer failing, not a bad signature: the pack may be perfectly good.
 * mbedTLS may add a low-level code (bits 0-6) to a high-level one. */
static int out_of_memory(int ret)
{
    int lo = -ret & 0x7F, hi = -ret & ~0x7F;
    return lo == -MBEDTLS_ERR_MPI_ALLOC_FAILED || lo == -MBEDTLS_ERR_ASN1_ALLOC_FAILED ||
           hi == -MBEDTLS_ERR_ECP_ALLOC_FAILED;
}

tr_status tr_sha256(const void *data, size_t len, uint8_t out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_sha256(data, len, out, 0) == 0 ? TR_OK : TR_E_CRYPTO;
#else
    return mbedtls_sha256_ret(data, len, out, 0) == 0 ? TR_OK : TR_E_CRYPTO;
#endif
}

/* mbedTLS 3 dropped the _ret suffixes of 2.28's SHA-256 steps. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define tr_sha256_starts(c) mbedtls_sha256_starts((c), 0)
#define tr_sha256_update mbedtls_sha256_update
#define tr_sha256_finish mbedtls_sha256_finish
#else
#define tr_sha256_starts(c) mbedtls_sha256_starts_ret((c), 0)
#define tr_sha256_update mbedtls_sha256_update_ret
#define tr_sha256_finish mbedtls_sha256_finish_ret
#endif

/* HMAC by hand over the SHA-256 context rather than mbedtls_md_hmac: the md
 * layer allocates its context (the heap, or the device pool and its lock),
 * and the device build does not even compile it in. */
tr_status tr_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         uint8_t out[32])
{
    if ((!key && key_len) || key_len > 64 || (!data && len) || !out)
        return TR_E_ARG;
    uint8_t pad[64], inner[32];
    mbedtls_sha256_context c;
    int e = 0;
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < key_len; i++)
        pad[i] ^= key[i];
    mbedtls_sha256_init(&c);
    e |= tr_sha256_starts(&c);
    e |= tr_sha256_update(&c, pad, sizeof pad);
    e |= tr_sha256_update(&c, data, len);
    e |= tr_sha256_finish(&c, inner);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] ^= 0x36 ^ 0x5c; /* ipad -> opad */
    e |= tr_sha256_starts(&c);
    e |= tr_sha256_update(&c, pad, sizeof pad);
    e |= tr_sha256_update(&c, inner, sizeof inner);
    e |= tr_sha256_finish(&c, out);
    mbedtls_sha256_free(&c);
    /* The key's traces: the pads and the inner hash. */
    memset(pad, 0, sizeof pad);
    memset(inner, 0, sizeof inner);
    return e ? TR_E_CRYPTO : TR_OK;
}

/* floor(n / 2) of P-256's group order n, big-endian. */
static const uint8_t half_n[32] = {
    0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xDE, 0x73, 0x7D, 0x56, 0xD3, 0x8B, 0xCF, 0x42, 0x79, 0xDC, 0xE5, 0x61, 0x7E, 0x31, 0x92, 0xA8};

/* One DER INTEGER in its only encoding: short-form length, no leading zero
 * unless the next byte has its top bit set, positive, at most 256 bits.
 * Writes it right-aligned into out[32]. By hand, with no allocation. */
static int der_uint256(const uint8_t **p, const uint8_t *end, uint8_t out[32])
{
    const uint8_t *q = *p;
    if (end - q < 2 || q[0] != 0x02 || q[1] == 0 || q[1] > 33 || end - q - 2 < q[1])
        return -1;
    size_t n = q[1];
    q += 2;
    if (q[0] & 0x80)
        return -1; /* negative */
    if (q[0] == 0 && n > 1 && !(q[1] & 0x80))
        return -1; /* a leading zero that is not needed */
    if (n == 33) {
        if (q[0] != 0)
            return -1;
        q++, n--;
    }
    memset(out, 0, 32);
    memcpy(out + 32 - n, q, n);
    *p = q + n;
    return 0;
}

/* The one valid encoding of a signature (PACK_FORMAT.md, trailer): strict
 * DER of SEQUENCE { r, s } with nothing after, and low S (s <= n/2), so a
 * signature cannot be re-encoded or turned into (r, n - s) and still pass. */
static int sig_canonical(const uint8_t *sig, size_t len, uint8_t r[32], uint8_t s[32])
{
    /* At most 2 + 2 * 35 = 72 bytes: the length is always short-form. */
    if (len < 8 || len > TR_SIG_MAX_BYTES || sig[0] != 0x30 || sig[1] != len - 2)
        return -1;
    const uint8_t *p = sig + 2, *end = sig + len;
    if (der_uint256(&p, end, r) != 0 || der_uint256(&p, end, s) != 0 || p != end)
        return -1;
    return memcmp(s, half_n, 32) <= 0 ? 0 : -1;
}

tr_status tr_ecdsa_p256_verify(const uint8_t point[65], const uint8_t hash[32],
                               const uint8_t *sig, size_t sig_len)
{
    crypto_enter();
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    tr_status st = TR_E_CRYPTO;
    int ret = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (ret != 0)
        goto out;
    /* A trusted key that is not a curve point is a caller error, but it
     * still must not verify anything. */
    if ((ret = mbedtls_ecp_point_read_binary(&grp, &q, point, 65)) != 0 ||
        (ret = mbedtls_ecp_check_pubkey(&grp, &q)) != 0)
        goto bad;
    /* Strict DER, low S; r, s in [1, n-1] is mbedtls_ecdsa_verify's. */
    uint8_t rb[32], sb[32];
    ret = 0;
    if (sig_canonical(sig, sig_len, rb, sb) != 0)
        goto bad;
    if ((ret = mbedtls_mpi_read_binary(&r, rb, 32)) != 0 ||
        (ret = mbedtls_mpi_read_binary(&s, sb, 32)) != 0)
        goto bad;
    ret = mbedtls_ecdsa_verify(&grp, hash, 32, &q, &r, &s);
    st = ret == 0 ? TR_OK : TR_E_SIGNATURE;
bad:
    if (st != TR_OK)
        st = out_of_memory(ret) ? TR_E_CRYPTO : TR_E_SIGNATURE;
out:
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    crypto_record();
    crypto_leave();
    return st;
}
