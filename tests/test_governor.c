/* The governor on the real fixture pack: budget, lambda schedule, period
 * roll-over, network loss, missing models, penalties, and the reason each
 * decision reports. Deterministic: time is passed in. FIXTURE_PACK names
 * the pack (the test runner sets it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "packwriter.h"
#include "tinyroute.h"
#include "tr_format.h"
#include "util.h"

#define PUB "fixtures/keys/test-signing.pub"
#define PROMPT "Calculate the present value of an annuity paying $500 a year for 10 years at 6% interest."

static uint8_t *pack;
static size_t pack_len;
static void *view_mem, *delta_mem, *ctx_mem;
static const tr_pack *r; /* the fixture pack's view */
static tr_ctx *ctx;
static uint32_t n_models;

static int setup(void **state)
{
    const char *path = getenv("FIXTURE_PACK");
    if (!path)
        path = "build/fixture.trp";
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
    tr_pubkey key;
    if (tr_pack_peek(pack, pack_len, &info) || trh_key_load_public(PUB, &key))
        return -1;
    size_t need = tr_ctx_size(info.dim, info.n_models, info.prefilter_candidates);
    if (posix_memalign(&view_mem, 64, tr_pack_size()) ||
        posix_memalign(&delta_mem, 64, tr_pack_size()) || posix_memalign(&ctx_mem, 64, need) ||
        tr_ctx_init(ctx_mem, need, info.dim, info.n_models, info.prefilter_candidates, &ctx))
        return -1;
    tr_trust t = {.keys = &key, .n_keys = 1, .min_security_counter = 0, .now_unix = 0};
    n_models = info.n_models;
    return tr_pack_open(view_mem, tr_pack_size(), pack, pack_len, &t, &r) == TR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    free(pack);
    free(view_mem);
    free(delta_mem);
    free(ctx_mem);
    return 0;
}

/* PROMPT through the governor, on view p. */
static tr_status governed(const tr_pack *p, const tr_governor *g, uint64_t now,
                          const tr_route_opts *o, tr_result *res)
{
    const tr_query q = tr_query_text(PROMPT, strlen(PROMPT));
    return tr_route_governed(p, ctx, g, now, &q, o, res, NULL);
}

static tr_where where_of(uint32_t m)
{
    tr_model_info mi;
    tr_pack_get_model(r, m, &mi);
    return mi.where;
}

static void test_lambda_schedule(void **state)
{
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 0, 3600, 1000, 0, 1), TR_E_ARG);
    assert_int_equal(tr_governor_init(&g, 10, 0, 1000, 0, 1), TR_E_ARG);
    assert_int_equal(tr_governor_init(&g, 10, 3600, 1000, 0.5f, 0.1f), TR_E_ARG);
    assert_int_equal(tr_governor_init(&g, 100, 3600, 1000, 0.1f, 0.9f), TR_OK);
    assert_true(fabsf(tr_governor_lambda(&g, 1000) - 0.1f) < 1e-6f);
    assert_int_equal(tr_governor_record(&g, 1100, 50), TR_OK);
    assert_true(fabsf(tr_governor_lambda(&g, 1200) - (0.1f + 0.8f * 0.25f)) < 1e-6f);
    assert_int_equal(tr_governor_record(&g, 1300, 80), TR_OK); /* over budget */
    assert_true(fabsf(tr_governor_lambda(&g, 1400) - 0.9f) < 1e-6f);
    /* The next period starts afresh, on the fixed boundary. */
    assert_true(fabsf(tr_governor_lambda(&g, 4600) - 0.1f) < 1e-6f);
    assert_int_equal(tr_governor_record(&g, 4600 + 3600 * 2 + 5, 10), TR_OK);
    assert_int_equal(g.period_start, 1000 + 3 * 3600);
    assert_true(fabsf(g.spent - 10) < 1e-6f);
    assert_int_equal(tr_governor_record(&g, 5000, -1), TR_E_ARG);
    assert_int_equal(tr_governor_record(&g, 5000, NAN), TR_E_ARG);
}

static void test_budget_network_availability(void **state)
{
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 1000, 3600, 0, 0, 0.3f), TR_OK);
    tr_result res, again;
    assert_int_equal(governed(r, &g, 10, NULL, &res), TR_OK);
    assert_int_equal(res.why, TR_WHY_UTILITY);
    assert_int_equal(res.where, TR_CLOUD); /* a hard finance question */
    assert_int_equal(governed(r, &g, 10, NULL, &again), TR_OK);
    assert_int_equal(again.model, res.model); /* deterministic */
    uint32_t cloud = res.model;

    /* The chosen model goes missing: the next best, and the reason. */
    assert_int_equal(tr_governor_set_available(&g, cloud, 0), TR_OK);
    assert_int_equal(governed(r, &g, 20, NULL, &res), TR_OK);
    assert_int_not_equal(res.model, cloud);
    assert_int_equal(res.why, TR_WHY_UNAVAILABLE);
    assert_int_equal(tr_governor_set_available(&g, cloud, 1), TR_OK);

    /* Network down: on-device only. */
    tr_governor_set_network(&g, 0);
    assert_int_equal(governed(r, &g, 30, NULL, &res), TR_OK);
    assert_int_equal(res.where, TR_DEVICE);
    assert_int_equal(res.why, TR_WHY_OFFLINE);
    tr_governor_set_network(&g, 1);

    /* Spend the budget: on-device only until the period ends. */
    assert_int_equal(tr_governor_record(&g, 40, 1000), TR_OK);
    assert_int_equal(governed(r, &g, 50, NULL, &res), TR_OK);
    assert_int_equal(res.where, TR_DEVICE);
    assert_int_equal(res.why, TR_WHY_BUDGET);
    assert_true(fabsf(res.lambda - 0.3f) < 1e-6f);
    assert_int_equal(governed(r, &g, 3600, NULL, &res), TR_OK);
    assert_int_equal(res.model, cloud);
    assert_int_equal(res.why, TR_WHY_UTILITY);
}

/* Issue 13: a governor with base TR_LAMBDA_DEFAULT starts from the pack's
 * lambda, here one a settings-only delta (what `tinyroute calibrate`
 * writes) put there, and rises from it to lambda_max as the budget goes;
 * tr_governor_init took TR_LAMBDA_DEFAULT as TR_E_ARG before. */
static void test_governor_starts_from_calibrated_lambda(void **state)
{
    tr_pack_info info;
    assert_int_equal(tr_pack_get_info(r, &info), TR_OK);
    uint32_t bit_stride = 0, ns = tr_ld32(pack + TR_H_N_SECTIONS);
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = pack + TR_HEADER_BYTES + (size_t)i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == TR_SEC_CORRECT_BITS)
            bit_stride = tr_ld32(e + TR_S_STRIDE);
    }
    assert_true(bit_stride > 0);
    const float cal = 0.35f, max = 0.95f;
    trh_delta_spec s = {.security_counter = 1, .created_unix = 1700000000,
                       .n_base_models = n_models, .n_base_refs = info.n_refs,
                       .n_clusters = info.n_clusters, .bit_stride = bit_stride,
                       .has_settings = 1, .lambda = cal};
    memcpy(s.base_hash, info.pack_hash, 32);
    trh_buf b = {0};
    trh_delta_write(&s, &b);
    assert_int_equal(trh_pack_sign(&b, "fixtures/keys/test-signing.key"), 0);
    void *delta;
    assert_int_equal(posix_memalign(&delta, 64, b.len), 0);
    memcpy(delta, b.data, b.len);
    tr_pubkey key;
    assert_int_equal(trh_key_load_public(PUB, &key), 0);
    tr_trust t = {.keys = &key, .n_keys = 1};
    const tr_pack *d;
    assert_int_equal(tr_pack_apply_delta(r, delta, b.len, &t, delta_mem, tr_pack_size(), &d), TR_OK);

    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 100, 3600, 0, TR_LAMBDA_DEFAULT, max), TR_OK);
    assert_true(isnan(tr_governor_lambda(&g, 0))); /* only a route knows the pack */
    tr_result res, plain;
    assert_int_equal(governed(d, &g, 10, NULL, &res), TR_OK);
    assert_true(res.lambda == cal);
    /* The same decision as a zeroed opts (the pack's lambda) routes to. */
    const tr_route_opts zero = {0};
    const tr_query q = tr_query_text(PROMPT, strlen(PROMPT));
    assert_int_equal(tr_route(d, ctx, &q, &zero, &plain, NULL), TR_OK);
    assert_true(plain.lambda == cal);
    assert_int_equal(res.model, plain.model);
    /* Half the budget spent: a quarter of the way from cal to max. */
    assert_int_equal(tr_governor_record(&g, 20, 50), TR_OK);
    assert_int_equal(governed(d, &g, 30, NULL, &res), TR_OK);
    assert_true(fabsf(res.lambda - (cal + (max - cal) * 0.25f)) < 1e-6f);
    /* A lambda_max below the pack's: the pack's is kept, never lowered. */
    assert_int_equal(tr_governor_init(&g, 100, 3600, 0, TR_LAMBDA_DEFAULT, 0.1f), TR_OK);
    assert_int_equal(tr_governor_record(&g, 20, 100), TR_OK);
    assert_int_equal(governed(d, &g, 30, NULL, &res), TR_OK);
    assert_true(res.lambda == cal);
    /* A governor with base 0 keeps meaning zero: it is asked for by name,
     * not read as "the pack's". */
    assert_int_equal(tr_governor_init(&g, 100, 3600, 0, 0, 0.5f), TR_OK);
    assert_int_equal(governed(d, &g, 10, NULL, &res), TR_OK);
    assert_true(res.lambda == 0.0f);
    /* Other negative bases, and a negative max, are still refused. */
    assert_int_equal(tr_governor_init(&g, 100, 3600, 0, -0.5f, 1), TR_E_ARG);
    assert_int_equal(tr_governor_init(&g, 100, 3600, 0, TR_LAMBDA_DEFAULT, -1), TR_E_ARG);
    free(delta);
    trh_buf_free(&b);
}

static void test_penalty_and_caller_mask(void **state)
{
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 1000, 3600, 0, 0, 0.3f), TR_OK);
    /* A battery/latency penalty of 1 on every cloud model keeps it local. */
    float *pen = calloc(n_models, sizeof *pen);
    for (uint32_t m = 0; m < n_models; m++)
        pen[m] = where_of(m) == TR_CLOUD ? 1.0f : 0.0f;
    tr_route_opts o = {.lambda = TR_LAMBDA_DEFAULT, .penalty = pen, .penalty_count = n_models};
    tr_result res;
    assert_int_equal(governed(r, &g, 10, &o, &res), TR_OK);
    assert_int_equal(res.where, TR_DEVICE);
    assert_int_equal(res.why, TR_WHY_UTILITY);
    /* A caller mask with nothing in it leaves nothing to choose. */
    uint8_t none[TR_GOVERNOR_MAX_MODELS / 8] = {0};
    tr_route_opts o2 = {.lambda = TR_LAMBDA_DEFAULT, .available = none,
                        .available_bits = 8 * sizeof none};
    assert_int_equal(governed(r, &g, 10, &o2, &res),
                     TR_E_NO_MODEL_AVAILABLE);
    assert_int_equal(tr_governor_set_available(&g, TR_GOVERNOR_MAX_MODELS, 0), TR_E_ARG);
    free(pen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lambda_schedule),
        cmocka_unit_test(test_budget_network_availability),
        cmocka_unit_test(test_penalty_and_caller_mask),
        cmocka_unit_test(test_governor_starts_from_calibrated_lambda),
    };
    return cmocka_run_group_tests_name("governor", tests, setup, teardown);
}
