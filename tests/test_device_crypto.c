/* The device build's signature check (make test-device): how much of the
 * static pool a verify needs, that running out of it fails cleanly with
 * TR_E_CRYPTO, and that concurrent verifies share it safely. Linked against
 * the measuring variant of crypto.c and mbedcrypto (MBEDTLS_MEMORY_DEBUG, a
 * pool cap, a pool larger than the shipped one); signatures are made with
 * the host tools' signing code. FIXTURE_PACK names the pack. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "keys.h"
#include "tinyroute.h"
#include "tr_format.h"
#include "tr_internal.h"

/* 64 signatures per key; each one's minimal pool is searched for. */
#define N_SIGS 64
/* Margin the shipped pool must keep above the largest measured need. */
#define MARGIN_PCT 25

static const char *const key_paths[2] = {"fixtures/keys/test-signing.key",
                                         "fixtures/keys/test-other.key"};

typedef struct signed_hash {
    tr_pubkey pub;
    uint8_t hash[32];
    uint8_t sig[TR_SIG_MAX_BYTES];
    size_t sig_len;
} signed_hash;

static signed_hash sigs[2][N_SIGS];
static uint8_t *pack;
static size_t pack_len;
static void *view_mem;
static tr_pubkey fixture_key;

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint8_t next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 32);
}

static int setup(void **state)
{
    const char *path = getenv("FIXTURE_PACK") ? getenv("FIXTURE_PACK") : "build/fixture.trp";
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    pack_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    if (posix_memalign((void **)&pack, 64, pack_len) || fread(pack, 1, pack_len, f) != pack_len)
        return -1;
    fclose(f);
    tr_pack_info info;
    if (tr_pack_peek(pack, pack_len, &info) ||
        trh_key_load_public("fixtures/keys/test-signing.pub", &fixture_key))
        return -1;
    if (posix_memalign(&view_mem, 64, tr_pack_size()))
        return -1;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < N_SIGS; i++) {
            signed_hash *s = &sigs[k][i];
            for (int b = 0; b < 32; b++)
                s->hash[b] = next_byte();
            if (trh_key_sign(key_paths[k], s->hash, s->sig, &s->sig_len, &s->pub))
                return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    free(pack);
    free(view_mem);
    return 0;
}

static tr_status verify_sig(const signed_hash *s)
{
    return tr_ecdsa_p256_verify(s->pub.point, s->hash, s->sig, s->sig_len);
}

static tr_status load_fixture(void)
{
    const tr_pack *v = NULL;
    tr_trust t = {.keys = &fixture_key, .n_keys = 1};
    tr_status st = tr_pack_open(view_mem, tr_pack_size(), pack, pack_len, &t, &v);
    /* A refused pack gives no view. */
    if (st != TR_OK && v != NULL)
        return TR_E_ARG;
    return st;
}

/* Smallest pool cap under which the verify succeeds; below it, it must fail
 * with TR_E_CRYPTO (checked at every 8 bytes by test_running_out). */
static size_t min_pool(const signed_hash *s)
{
    size_t lo = 0, hi = TR_CRYPTO_POOL_BYTES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        tr_crypto_pool_limit(mid);
        tr_status st = s ? verify_sig(s) : load_fixture();
        if (st == TR_OK)
            hi = mid;
        else
            lo = mid + 1;
    }
    tr_crypto_pool_limit((size_t)-1);
    return lo;
}

static size_t need_max, peak_max, blocks_max;

static void note_stats(void)
{
    size_t peak, blocks, left;
    tr_crypto_pool_stats(&peak, &blocks, &left);
    /* Every verify returns all it took. */
    assert_int_equal(left, 0);
    if (peak > peak_max)
        peak_max = peak;
    if (blocks > blocks_max)
        blocks_max = blocks;
}

static void test_pool_need(void **state)
{
    tr_crypto_pool_limit((size_t)-1);
    assert_int_equal(load_fixture(), TR_OK);
    note_stats();
    size_t fixture_need = min_pool(NULL);
    need_max = fixture_need;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < N_SIGS; i++) {
            assert_int_equal(verify_sig(&sigs[k][i]), TR_OK);
            note_stats();
            size_t need = min_pool(&sigs[k][i]);
            if (need > need_max)
                need_max = need;
            /* A wrong digest is a bad signature, not a crypto failure. */
            signed_hash bad = sigs[k][i];
            bad.hash[i % 32] ^= 1;
            assert_int_equal(verify_sig(&bad), TR_E_SIGNATURE);
            note_stats();
        }
    /* For the record only (MEMORY_DEBUG bookkeeping included): no test
     * asserts on time. */
    double best = 1e30;
    for (int rep = 0; rep < 10; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        for (int i = 0; i < 10; i++)
            assert_int_equal(verify_sig(&sigs[0][i]), TR_OK);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 10 / 1e3;
        best = us < best ? us : best;
    }
    /* CPU time, fastest of 10 batches: the machine is shared. */
    print_message("verify: %.0f us each\n", best);
    print_message("pool: fixture pack needs %zu B; max need over it and %d signatures %zu B; "
                  "mbedTLS peak %zu B payload in %zu blocks; shipped %d B\n",
                  fixture_need, 2 * N_SIGS, need_max, peak_max, blocks_max,
                  TR_CRYPTO_POOL_SHIPPED);
    assert_true(need_max * (100 + MARGIN_PCT) / 100 <= TR_CRYPTO_POOL_SHIPPED);
}

static void test_running_out(void **state)
{
    const signed_hash *s = &sigs[0][0];
    size_t need = min_pool(s);
    assert_true(need > 0);
    /* Every cap short of the need hits the allocator at a different point of
     * the verify; each must fail as TR_E_CRYPTO and leak nothing. */
    for (size_t cap = 0; cap < need; cap += 8) {
        tr_crypto_pool_limit(cap);
        assert_int_equal(verify_sig(s), TR_E_CRYPTO);
        size_t peak, blocks, left;
        tr_crypto_pool_stats(&peak, &blocks, &left);
        assert_int_equal(left, 0);
    }
    tr_crypto_pool_limit(64);
    assert_int_equal(load_fixture(), TR_E_CRYPTO);
    tr_crypto_pool_limit((size_t)-1);
    assert_int_equal(load_fixture(), TR_OK);
    assert_int_equal(verify_sig(s), TR_OK);
}

/* Several routers loading at once share the one pool. */
static void *verify_many(void *arg)
{
    const int k = (int)(intptr_t)arg;
    for (int i = 0; i < N_SIGS; i++) {
        signed_hash bad = sigs[k & 1][i];
        bad.sig[bad.sig_len - 1] ^= 1;
        if (verify_sig(&sigs[k & 1][i]) != TR_OK || verify_sig(&bad) != TR_E_SIGNATURE)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_verifies(void **state)
{
    /* Set by make test-device under qemu-user, where a dynamically linked
     * aarch64 program hangs in pthread_create (qemu 7.2, Debian 12). */
    if (getenv("TR_TEST_SKIP_THREADS"))
        skip();
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, verify_many, (void *)(intptr_t)t), 0);
    for (int t = 0; t < 4; t++) {
        void *ret;
        assert_int_equal(pthread_join(th[t], &ret), 0);
        assert_null(ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_need),
        cmocka_unit_test(test_running_out),
        cmocka_unit_test(test_concurrent_verifies),
    };
    return cmocka_run_group_tests_name("device_crypto", tests, setup, teardown);
}
