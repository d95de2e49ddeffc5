/* The non-negotiable, checked: routing, embedding, the task API and the
 * governor never touch the heap. malloc, calloc, realloc and free are
 * interposed (glibc's own are reached through __libc_*) and counted while
 * the calls run. Pack loading allocates inside the host mbedTLS's bignum
 * code: that count is printed, not asserted. Built against the device
 * library (make test-device, TR_TEST_LOAD_NOALLOC) the signature check draws
 * on a static pool, and loading must not touch the heap either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "tinyroute.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static int counting;
static long calls;

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define TR_ASAN 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define TR_ASAN 1
#endif
#endif

#ifdef TR_ASAN
/* Under ASan (make test-asan) its allocator owns the heap: replacing malloc
 * would hand its blocks to glibc's free. Its hooks see every heap call, so
 * they count instead. (Declared here: gcc ships no sanitizer headers.) */
int __sanitizer_install_malloc_and_free_hooks(void (*)(const volatile void *, size_t),
                                              void (*)(const volatile void *));
static void count_alloc(const volatile void *p, size_t n) { calls += counting; }
static void count_free(const volatile void *p) { calls += counting && p; }
static void start_counting(void)
{
    __sanitizer_install_malloc_and_free_hooks(count_alloc, count_free);
}
#else
static void start_counting(void) {}

void *malloc(size_t n)
{
    calls += counting;
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t s)
{
    calls += counting;
    return __libc_calloc(n, s);
}
void *realloc(void *p, size_t n)
{
    calls += counting;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    calls += counting && p;
    __libc_free(p);
}
#endif

#define PUB "fixtures/keys/test-signing.pub"

static void test_routing_allocates_nothing(void **state)
{
    const char *path = getenv("FIXTURE_PACK") ? getenv("FIXTURE_PACK") : "build/fixture.trp";
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *pack;
    assert_int_equal(posix_memalign((void **)&pack, 64, len), 0);
    assert_int_equal(fread(pack, 1, len, f), len);
    fclose(f);
    tr_pubkey key;
    assert_int_equal(trh_key_load_public(PUB, &key), 0);
    tr_pack_info info;
    assert_int_equal(tr_pack_peek(pack, len, &info), TR_OK);
    size_t need = tr_ctx_size(info.dim, info.n_models, info.prefilter_candidates);
    void *view_mem, *ctx_mem, *taskmem;
    assert_int_equal(posix_memalign(&view_mem, 64, tr_pack_size()), 0);
    assert_int_equal(posix_memalign(&ctx_mem, 64, need), 0);
    assert_int_equal(posix_memalign(&taskmem, 64, tr_task_size(info.n_models)), 0);
    float *pred = __libc_malloc(info.n_models * sizeof *pred);
    float *est = __libc_malloc(info.n_models * sizeof *est);
    int8_t *q = __libc_malloc(info.dim);
    const tr_pack *r;
    tr_ctx *c;
    tr_trust trust = {.keys = &key, .n_keys = 1, .min_security_counter = 0, .now_unix = 0};
    const uint32_t log_flags = TR_LOG_EMBEDDING | TR_LOG_HASH | TR_LOG_TEXT;
    size_t log_bytes = tr_log_size(info.dim, 2, log_flags);
    void *logmem;
    assert_int_equal(posix_memalign(&logmem, 64, log_bytes), 0);
    uint8_t *exported = __libc_malloc(log_bytes + 128);
    /* Local learning: a store of 4 entries, its blob buffer. */
    const size_t local_bytes = tr_local_size(4, info.dim, info.n_models);
    void *localmem;
    assert_int_equal(posix_memalign(&localmem, 64, local_bytes), 0);
    uint8_t *blob = __libc_malloc(local_bytes + 4096);

    start_counting();
    counting = 1;
    calls = 0;
    /* The interposition is live: a deliberate allocation counts. */
    void *(*volatile alloc)(size_t) = malloc; /* volatile: the compiler may */
    void (*volatile release)(void *) = free;  /* elide a plain malloc/free pair */
    release(alloc(16));
    assert_int_equal(calls, 2);
    calls = 0;
    assert_int_equal(tr_ctx_init(ctx_mem, need, info.dim, info.n_models, info.prefilter_candidates,
                                 &c), TR_OK);
    assert_int_equal(calls, 0);
    assert_int_equal(tr_pack_open(view_mem, tr_pack_size(), pack, len, &trust, &r), TR_OK);
    long load_calls = calls;
    calls = 0;
    const tr_route_out out = {pred, info.n_models, NULL, 0, NULL, 0};

    static const char *prompts[] = {
        "What is the derivative of x squared?", "Define consideration in contract law.",
        "zzqxj qqqzx", "Ünïcödé prompt about thermodynamics and entropy"};
    tr_result res;
    for (int i = 0; i < 4; i++) {
        const char *p = prompts[i];
        const tr_query qt = tr_query_text(p, strlen(p));
        assert_int_equal(tr_route(r, c, &qt, NULL, &res, &out), TR_OK);
        tr_route_opts w = {.k = 50, .lambda = 0.2f, .distance_weighted = 1, .exact = 1};
        assert_int_equal(tr_route(r, c, &qt, &w, &res, &out), TR_OK);
    }
    assert_int_equal(tr_embed(r, c, prompts[0], strlen(prompts[0]), q, info.dim), TR_OK);
    const tr_query qi = tr_query_i8(info.embedder, q, info.dim);
    assert_int_equal(tr_route(r, c, &qi, NULL, &res, &out), TR_OK);
    /* Errors too. */
    const tr_query empty = tr_query_text("", 0), bad = tr_query_text("\xff", 1);
    assert_int_equal(tr_route(r, c, &empty, NULL, &res, &out), TR_E_EMPTY_INPUT);
    assert_int_equal(tr_route(r, c, &bad, NULL, &res, &out), TR_E_UTF8);
    tr_task *t;
    assert_int_equal(tr_task_begin(r, taskmem, tr_task_size(info.n_models), &t), TR_OK);
    for (int i = 0; i < 4; i++) {
        const tr_query qt = tr_query_text(prompts[i], strlen(prompts[i]));
        assert_int_equal(tr_task_add(r, c, t, &qt, NULL, NULL), TR_OK);
    }
    tr_task_result tres;
    assert_int_equal(tr_task_choose(r, c, t, NULL, &tres, NULL), TR_OK);
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 100, 3600, 0, 0, 1), TR_OK);
    const tr_query q0 = tr_query_text(prompts[0], strlen(prompts[0]));
    assert_int_equal(tr_route_governed(r, c, &g, 5, &q0, NULL, &res, &out), TR_OK);
    assert_int_equal(tr_governor_record(&g, 6, res.cost), TR_OK);
    tr_log *lg;
    assert_int_equal(tr_log_init(logmem, log_bytes, info.dim, 2, log_flags, &lg), TR_OK);
    assert_int_equal(tr_log_set_hash_key(lg, (const uint8_t *)"sixteen byte key"), TR_OK);
    /* Sealed export (HMAC-SHA-256 on the stack): no heap either. */
    assert_int_equal(tr_log_set_device(lg, 7, 1, (const uint8_t *)"a sixteen+ byte device key", 26), TR_OK);
    for (int i = 0; i < 4; i++) {
        uint64_t id;
        const tr_query qt = tr_query_text(prompts[i], strlen(prompts[i]));
        assert_int_equal(tr_route(r, c, &qt, NULL, &res, &out), TR_OK);
        assert_int_equal(tr_log_append(lg, r, c, &res, NULL, prompts[i], strlen(prompts[i]), &id),
                         TR_OK);
        assert_int_equal(tr_log_outcome(lg, id, 1.0f), TR_OK);
    }
    size_t written;
    assert_int_equal(tr_log_export(lg, exported, log_bytes + 128, &written), TR_OK);
    /* Local learning: init, adds past the capacity (eviction), routes that
     * read the store, the sealed export and its import. */
    tr_local *ls;
    assert_int_equal(tr_local_init(localmem, local_bytes, 4, r, &ls), TR_OK);
    const tr_route_out eout = {pred, info.n_models, q, info.dim, est, info.n_models};
    for (int i = 0; i < 6; i++) {
        const char *p = prompts[i % 4];
        const tr_query qt = tr_query_text(p, strlen(p));
        /* The level term too (its residuals from the route's estimate). */
        tr_route_opts lo = {.local = ls, .local_weight = 2.0f, .distance_weighted = i & 1,
                            .local_level = 10.0f};
        assert_int_equal(tr_route(r, c, &qt, &lo, &res, &eout), TR_OK);
        if (!(res.flags & TR_RESULT_PRIOR_ONLY))
            assert_int_equal(tr_local_add_est(ls, q, info.dim, res.model, 1.0f, est[res.model]),
                             TR_OK);
        q[0] = (int8_t)(q[0] == 100 ? 99 : 100); /* another embedding next time */
        assert_int_equal(tr_local_add(ls, q, info.dim, 0, 0.5f), TR_OK);
    }
    static const uint8_t lkey[32] = "local-store-device-key-012345678";
    size_t lwritten;
    assert_true(tr_local_export_size(ls) <= local_bytes + 4096);
    assert_int_equal(tr_local_export(ls, lkey, blob, local_bytes + 4096, &lwritten), TR_OK);
    assert_int_equal(tr_local_import(ls, lkey, blob, lwritten), TR_OK);
    blob[70] ^= 1;
    assert_int_equal(tr_local_import(ls, lkey, blob, lwritten), TR_E_LOCAL_MAC);
    tr_local_stats lst;
    assert_int_equal(tr_local_stats_get(ls, &lst), TR_OK);
    assert_int_equal(lst.count, 4);
    counting = 0;
    assert_int_equal(calls, 0);
#ifdef TR_TEST_LOAD_NOALLOC
    assert_int_equal(load_calls, 0);
    print_message("heap calls: ctx/open/route/embed/task/governor/log/local 0 (device crypto)\n");
#else
    print_message("heap calls: route/embed/task/governor/log/local 0; pack load %ld (inside mbedTLS)\n",
                   load_calls);
#endif

    __libc_free(pred);
    __libc_free(est);
    __libc_free(q);
    __libc_free(exported);
    __libc_free(blob);
    free(localmem);
    free(logmem);
    free(view_mem);
    free(ctx_mem);
    free(taskmem);
    free(pack);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_routing_allocates_nothing)};
    return cmocka_run_group_tests_name("noalloc", tests, NULL, NULL);
}
