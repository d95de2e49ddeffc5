/* The two-object API (issue 13): an immutable pack view and a caller-owned
 * context. Checks the contract's edges on the fixture pack and a delta that
 * adds a model to it: output capacities (TR_E_OUTPUT_TOO_SMALL, nothing
 * written), a context too small for the view, view memory that overlaps
 * what it reads, caller arrays shorter than a delta's model count, the
 * in-RAM counter store, and that a view is never written after open. */
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

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"
#define PROMPT "What is the derivative of x squared with respect to x?"

typedef struct world {
    uint8_t *pack;
    size_t len;
    tr_pubkey pub;
    tr_pack_info info;
    void *view_mem, *delta_mem, *ctx_mem;
    const tr_pack *view;
    tr_ctx *ctx;
} world;

static void *aligned(size_t n)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, n ? n : 1), 0);
    return p;
}

static int setup(void **state)
{
    const char *path = getenv("FIXTURE_PACK") ? getenv("FIXTURE_PACK") : "build/fixture.trp";
    world *w = calloc(1, sizeof *w);
    FILE *f = fopen(path, "rb");
    if (!w || !f) {
        fprintf(stderr, "ERROR: cannot open %s (run through tests/run.sh, or set FIXTURE_PACK)\n",
                path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    w->len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    w->pack = aligned(w->len);
    if (fread(w->pack, 1, w->len, f) != w->len)
        return -1;
    fclose(f);
    if (trh_key_load_public(PUB, &w->pub) != 0)
        return -1;
    w->view_mem = aligned(tr_pack_size());
    w->delta_mem = aligned(tr_pack_size());
    tr_trust t = {.keys = &w->pub, .n_keys = 1};
    if (tr_pack_open(w->view_mem, tr_pack_size(), w->pack, w->len, &t, &w->view) != TR_OK ||
        tr_pack_get_info(w->view, &w->info) != TR_OK)
        return -1;
    /* Room for the base and a delta that adds one model. */
    size_t cb = tr_ctx_size(w->info.dim, w->info.n_models + 1, w->info.prefilter_candidates);
    w->ctx_mem = aligned(cb);
    if (tr_ctx_init(w->ctx_mem, cb, w->info.dim, w->info.n_models + 1,
                    w->info.prefilter_candidates, &w->ctx) != TR_OK)
        return -1;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    free(w->pack);
    free(w->view_mem);
    free(w->delta_mem);
    free(w->ctx_mem);
    free(w);
    return 0;
}

/* A signed delta of the fixture pack adding one cloud model right on every
 * even reference, with this counter. */
static uint8_t *make_delta(const world *w, uint64_t counter, size_t *len)
{
    const uint32_t n = w->info.n_refs, stride = ((n + 7) / 8 + 63) / 64 * 64;
    uint8_t rec[TR_MODEL_REC_BYTES] = {0};
    memcpy(rec + TR_M_NAME, "api-added", 9);
    tr_stf32(rec + TR_M_COST, 5.0f);
    tr_stf32(rec + TR_M_COST_NORM, 0.5f);
    tr_stf32(rec + TR_M_PRIOR, 0.5f);
    tr_st32(rec + TR_M_WHERE, TR_CLOUD);
    uint8_t *bits = calloc(2, stride);
    assert_non_null(bits);
    for (uint32_t i = 0; i < n; i += 2) {
        bits[i >> 3] |= (uint8_t)(1u << (i & 7));
        bits[stride + (i >> 3)] |= (uint8_t)(1u << (i & 7));
    }
    trh_delta_spec s = {.security_counter = counter, .created_unix = 1700000000,
                       .n_base_models = w->info.n_models, .n_base_refs = n,
                       .bit_stride = stride, .n_added = 1, .records = rec, .correct = bits,
                       .valid = bits + stride};
    memcpy(s.base_hash, w->info.pack_hash, 32);
    trh_buf b = {0};
    trh_delta_write(&s, &b);
    assert_int_equal(trh_pack_sign(&b, KEY), 0);
    uint8_t *p = aligned(b.len);
    memcpy(p, b.data, b.len);
    *len = b.len;
    trh_buf_free(&b);
    free(bits);
    return p;
}

static void test_output_capacities(void **state)
{
    world *w = *state;
    const uint32_t M = w->info.n_models, D = w->info.dim;
    float *pred = aligned(sizeof(float) * (M + 1));
    int8_t *emb = aligned(D + 1);
    const tr_query q = tr_query_text(PROMPT, strlen(PROMPT));
    tr_result res, keep;
    memset(&keep, 0x5a, sizeof keep);
    /* One entry short, either array: refused before anything is written. */
    for (int which = 0; which < 2; which++) {
        memset(pred, 0x5a, sizeof(float) * (M + 1));
        memset(emb, 0x5a, D + 1);
        res = keep;
        tr_route_out out = {pred, which == 0 ? M - 1 : M, emb, which == 1 ? D - 1 : D, NULL, 0};
        assert_int_equal(tr_route(w->view, w->ctx, &q, NULL, &res, &out), TR_E_OUTPUT_TOO_SMALL);
        assert_memory_equal(&res, &keep, sizeof res);
        for (uint32_t m = 0; m <= M; m++)
            assert_int_equal(((uint8_t *)pred)[4 * m], 0x5a);
        for (uint32_t d = 0; d <= D; d++)
            assert_int_equal((uint8_t)emb[d], 0x5a);
    }
    /* Exact capacities: written, and nothing past them. */
    tr_route_out out = {pred, M, emb, D, NULL, 0};
    assert_int_equal(tr_route(w->view, w->ctx, &q, NULL, &res, &out), TR_OK);
    assert_int_equal(((uint8_t *)pred)[4 * M], 0x5a);
    assert_int_equal((uint8_t)emb[D], 0x5a);
    assert_true(res.model < M);
    for (uint32_t m = 0; m < M; m++)
        assert_true(pred[m] >= 0.0f && pred[m] <= 1.0f);
    /* The embedding the route reports is the one tr_embed gives, and
     * routing it as an int8 query decides the same. */
    int8_t *e2 = aligned(D);
    assert_int_equal(tr_embed(w->view, w->ctx, PROMPT, strlen(PROMPT), e2, D - 1),
                     TR_E_OUTPUT_TOO_SMALL);
    assert_int_equal(tr_embed(w->view, w->ctx, PROMPT, strlen(PROMPT), e2, D), TR_OK);
    assert_memory_equal(emb, e2, D);
    const tr_query qi = tr_query_i8(w->info.embedder, e2, D);
    tr_result r2;
    float *pred2 = aligned(sizeof(float) * M);
    tr_route_out out2 = {pred2, M, NULL, 0, NULL, 0};
    assert_int_equal(tr_route(w->view, w->ctx, &qi, NULL, &r2, &out2), TR_OK);
    assert_int_equal(r2.model, res.model);
    assert_memory_equal(pred, pred2, sizeof(float) * M);
    /* A query struct of another size (another header) is refused. */
    tr_query bad = q;
    bad.size = sizeof bad - 1;
    assert_int_equal(tr_route(w->view, w->ctx, &bad, NULL, &res, NULL), TR_E_ARG);
    bad = q;
    bad.kind = (tr_query_kind)7;
    assert_int_equal(tr_route(w->view, w->ctx, &bad, NULL, &res, NULL), TR_E_ARG);
    free(pred);
    free(pred2);
    free(emb);
    free(e2);
}

static void test_ctx_too_small(void **state)
{
    world *w = *state;
    const tr_pack_info *i = &w->info;
    assert_int_equal(tr_ctx_size_for(w->view),
                     tr_ctx_size(i->dim, i->n_models, i->prefilter_candidates));
    assert_int_equal(tr_ctx_size(0, 1, 0), 0);
    assert_int_equal(tr_ctx_size(TR_DIM_MAX + 1, 1, 0), 0);
    assert_int_equal(tr_ctx_size(8, 0, 0), 0);
    assert_int_equal(tr_ctx_size(8, TR_MODELS_MAX + 1, 0), 0);
    assert_int_equal(tr_ctx_size(8, 1, TR_PREFILTER_MAX + 1), 0);
    size_t need = tr_ctx_size_for(w->view);
    uint8_t *mem = aligned(need + 16);
    tr_ctx *c;
    assert_int_equal(tr_ctx_init(mem, need - 1, i->dim, i->n_models, i->prefilter_candidates, &c),
                     TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_ctx_init(mem + 8, need, i->dim, i->n_models, i->prefilter_candidates, &c),
                     TR_E_ARG);
    assert_int_equal(tr_ctx_init(mem, need, 0, i->n_models, 0, &c), TR_E_ARG);
    /* A context carved for fewer models, or a smaller dim, than the view. */
    const tr_query q = tr_query_text(PROMPT, strlen(PROMPT));
    tr_result res, keep;
    memset(&keep, 0x5a, sizeof keep);
    for (int which = 0; which < 2; which++) {
        uint32_t d = which ? i->dim - 1 : i->dim, m = which ? i->n_models : i->n_models - 1;
        assert_int_equal(tr_ctx_init(mem, need, d, m, i->prefilter_candidates, &c), TR_OK);
        res = keep;
        assert_int_equal(tr_route(w->view, c, &q, NULL, &res, NULL), TR_E_ARENA_TOO_SMALL);
        assert_memory_equal(&res, &keep, sizeof res);
    }
    assert_int_equal(tr_ctx_init(mem, need, i->dim, i->n_models, i->prefilter_candidates, &c),
                     TR_OK);
    assert_int_equal(tr_route(w->view, c, &q, NULL, &res, NULL), TR_OK);
    /* Not a context or not a view. */
    assert_int_equal(tr_route(w->view, (tr_ctx *)(void *)w->pack, &q, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(tr_route((const tr_pack *)(const void *)w->pack, c, &q, NULL, &res, NULL),
                     TR_E_ARG);
    assert_int_equal(tr_route(NULL, c, &q, NULL, &res, NULL), TR_E_ARG);
    assert_int_equal(tr_route(w->view, NULL, &q, NULL, &res, NULL), TR_E_ARG);
    free(mem);
}

static void test_view_memory(void **state)
{
    world *w = *state;
    tr_trust t = {.keys = &w->pub, .n_keys = 1};
    const tr_pack *v;
    /* The view may not live inside the bytes it verifies. */
    uint8_t *copy = aligned(w->len + tr_pack_size());
    memcpy(copy, w->pack, w->len);
    assert_int_equal(tr_pack_open(copy + 64, tr_pack_size(), copy, w->len, &t, &v), TR_E_ARG);
    assert_memory_equal(copy, w->pack, w->len);
    free(copy);
    uint8_t *mem = aligned(tr_pack_size() + 16);
    assert_int_equal(tr_pack_open(mem, tr_pack_size() - 1, w->pack, w->len, &t, &v),
                     TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_pack_open(mem + 8, tr_pack_size(), w->pack, w->len, &t, &v), TR_E_ARG);
    /* A delta view over its source view, or over the delta bytes: refused,
     * and the source is left as it was. */
    size_t dlen;
    uint8_t *delta = make_delta(w, 5, &dlen);
    uint8_t *before = malloc(tr_pack_size());
    memcpy(before, w->view_mem, tr_pack_size());
    assert_int_equal(tr_pack_apply_delta(w->view, delta, dlen, &t, w->view_mem, tr_pack_size(), &v),
                     TR_E_ARG);
    assert_int_equal(tr_pack_apply_delta(w->view, delta, dlen, &t, delta, tr_pack_size(), &v),
                     TR_E_ARG);
    /* A failed verification writes nothing into the new view's memory. */
    memset(mem, 0x5a, tr_pack_size());
    delta[dlen - 10] ^= 1; /* inside the signature */
    assert_int_not_equal(tr_pack_apply_delta(w->view, delta, dlen, &t, mem, tr_pack_size(), &v),
                         TR_OK);
    for (size_t b = 0; b < tr_pack_size(); b++)
        assert_int_equal(mem[b], 0x5a);
    delta[dlen - 10] ^= 1;
    /* A good one leaves its source unchanged: the source still serves the
     * base, the new view base + delta. */
    assert_int_equal(tr_pack_apply_delta(w->view, delta, dlen, &t, mem, tr_pack_size(), &v), TR_OK);
    assert_memory_equal(before, w->view_mem, tr_pack_size());
    tr_pack_info a, b;
    tr_delta_info di;
    assert_int_equal(tr_pack_get_info(w->view, &a), TR_OK);
    assert_int_equal(tr_pack_get_info(v, &b), TR_OK);
    assert_int_equal(a.n_models + 1, b.n_models);
    assert_int_equal(tr_pack_get_delta(w->view, &di), TR_E_NO_PACK);
    assert_int_equal(tr_pack_get_delta(v, &di), TR_OK);
    tr_model_info mi;
    assert_int_equal(tr_pack_get_model(v, a.n_models, &mi), TR_OK);
    assert_string_equal(mi.name, "api-added");
    assert_int_equal(tr_pack_get_model(w->view, a.n_models, &mi), TR_E_ARG);
    /* Dropping the delta gives the base again, in other memory. */
    const tr_pack *v2;
    assert_int_equal(tr_pack_drop_delta(v, mem, tr_pack_size(), &v2), TR_E_ARG);
    assert_int_equal(tr_pack_drop_delta(v, w->delta_mem, tr_pack_size(), &v2), TR_OK);
    assert_int_equal(tr_pack_get_info(v2, &b), TR_OK);
    assert_int_equal(b.n_models, a.n_models);
    assert_int_equal(tr_pack_get_delta(v2, &di), TR_E_NO_PACK);
    free(before);
    free(delta);
    free(mem);
}

/* A delta grows n_models: arrays sized for the base are refused by the
 * delta view (never read or written past their end), accepted by the base. */
static void test_arrays_shorter_than_a_delta(void **state)
{
    world *w = *state;
    const uint32_t M = w->info.n_models;
    tr_trust t = {.keys = &w->pub, .n_keys = 1};
    size_t dlen;
    uint8_t *delta = make_delta(w, 6, &dlen);
    const tr_pack *dv;
    assert_int_equal(tr_pack_apply_delta(w->view, delta, dlen, &t, w->delta_mem, tr_pack_size(), &dv),
                     TR_OK);
    float *pen = aligned(sizeof(float) * (M + 1));
    for (uint32_t m = 0; m <= M; m++)
        pen[m] = 0.0f;
    uint8_t avail[(65536 + 7) / 8];
    memset(avail, 0xff, sizeof avail);
    const tr_query q = tr_query_text(PROMPT, strlen(PROMPT));
    tr_result res;
    tr_route_opts o = {.penalty = pen, .penalty_count = M};
    assert_int_equal(tr_route(w->view, w->ctx, &q, &o, &res, NULL), TR_OK);
    assert_int_equal(tr_route(dv, w->ctx, &q, &o, &res, NULL), TR_E_ARG);
    o.penalty_count = M + 1;
    assert_int_equal(tr_route(dv, w->ctx, &q, &o, &res, NULL), TR_OK);
    tr_route_opts oa = {.available = avail, .available_bits = M};
    assert_int_equal(tr_route(w->view, w->ctx, &q, &oa, &res, NULL), TR_OK);
    assert_int_equal(tr_route(dv, w->ctx, &q, &oa, &res, NULL), TR_E_ARG);
    oa.available_bits = M + 1;
    assert_int_equal(tr_route(dv, w->ctx, &q, &oa, &res, NULL), TR_OK);
    /* The governed route combines the caller's mask: checked the same way. */
    tr_governor g;
    assert_int_equal(tr_governor_init(&g, 10.0f, 3600, 0, TR_LAMBDA_DEFAULT, 1.0f), TR_OK);
    oa.available_bits = M;
    assert_int_equal(tr_route_governed(dv, w->ctx, &g, 0, &q, &oa, &res, NULL), TR_E_ARG);
    assert_int_equal(tr_route_governed(dv, w->ctx, &g, 0, &q, NULL, &res, NULL), TR_OK);
    /* A predicted array sized for the base. */
    tr_route_out out = {pen, M, NULL, 0, NULL, 0};
    assert_int_equal(tr_route(dv, w->ctx, &q, NULL, &res, &out), TR_E_OUTPUT_TOO_SMALL);
    out.predicted_cap = M + 1;
    assert_int_equal(tr_route(dv, w->ctx, &q, NULL, &res, &out), TR_OK);
    /* A context carved for the base alone is too small for the delta view. */
    size_t cb = tr_ctx_size_for(w->view);
    void *cm = aligned(cb);
    tr_ctx *c;
    assert_int_equal(tr_ctx_init(cm, cb, w->info.dim, M, w->info.prefilter_candidates, &c), TR_OK);
    assert_int_equal(tr_route(dv, c, &q, NULL, &res, NULL), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_route(w->view, c, &q, NULL, &res, NULL), TR_OK);
    free(cm);
    free(pen);
    free(delta);
}

/* Rollback memory now lives in a counter store; the RAM store gives the
 * in-process semantics the old router had. */
static void test_ram_counter_store(void **state)
{
    world *w = *state;
    tr_counter_slot slots[2];
    memset(slots, 0, sizeof slots);
    tr_counter_store ram;
    tr_counter_store_ram(&ram, slots);
    tr_trust t = {.keys = &w->pub, .n_keys = 1, .counters = &ram};
    size_t l4, l3;
    uint8_t *d4 = make_delta(w, 4, &l4), *d3 = make_delta(w, 3, &l3);
    void *m2 = aligned(tr_pack_size());
    const tr_pack *v;
    /* The pack's counter was recorded by opening through the store. */
    const tr_pack *base;
    assert_int_equal(tr_pack_open(m2, tr_pack_size(), w->pack, w->len, &t, &base), TR_OK);
    assert_int_equal(slots[TR_COUNTER_PACK].counter, w->info.security_counter);
    assert_int_equal(tr_pack_apply_delta(base, d4, l4, &t, w->delta_mem, tr_pack_size(), &v), TR_OK);
    assert_int_equal(slots[TR_COUNTER_DELTA].counter, 4);
    /* An older delta of the same base: refused, from either view. */
    void *m3 = aligned(tr_pack_size());
    assert_int_equal(tr_pack_apply_delta(base, d3, l3, &t, m3, tr_pack_size(), &v), TR_E_ROLLBACK);
    assert_int_equal(tr_pack_apply_delta(v, d3, l3, &t, m3, tr_pack_size(), &v), TR_E_ROLLBACK);
    /* The very same delta again (a restart re-applying it) is accepted. */
    assert_int_equal(tr_pack_apply_delta(base, d4, l4, &t, m3, tr_pack_size(), &v), TR_OK);
    /* Without a store only the floor applies: the older one goes through
     * (INTEGRATION.md says so), and the floor still refuses below it. */
    tr_trust none = {.keys = &w->pub, .n_keys = 1};
    assert_int_equal(tr_pack_apply_delta(base, d3, l3, &none, m3, tr_pack_size(), &v), TR_OK);
    none.min_delta_counter = 4;
    assert_int_equal(tr_pack_apply_delta(base, d3, l3, &none, m3, tr_pack_size(), &v),
                     TR_E_ROLLBACK);
    /* NULL arguments leave the store as it was. */
    tr_counter_store keep = ram;
    tr_counter_store_ram(&ram, NULL);
    assert_memory_equal(&keep, &ram, sizeof ram);
    free(m2);
    free(m3);
    free(d4);
    free(d3);
}

/* Task selection through a view: score arrays carry their capacity. */
static void test_task_scores_capacity(void **state)
{
    world *w = *state;
    const uint32_t M = w->info.n_models;
    if (w->info.n_tasks == 0)
        skip();
    void *tm = aligned(tr_task_size(M));
    tr_task *task;
    assert_int_equal(tr_task_begin(w->view, tm, tr_task_size(M), &task), TR_OK);
    const tr_query q = tr_query_text(PROMPT, strlen(PROMPT));
    int used = -1;
    assert_int_equal(tr_task_add(w->view, w->ctx, task, &q, NULL, &used), TR_OK);
    assert_int_equal(used, 1);
    float *s = aligned(sizeof(float) * 4 * M);
    tr_task_scores sc = {s, s + M, s + 2 * M, s + 3 * M, M - 1};
    tr_task_result r, keep;
    memset(&keep, 0x5a, sizeof keep);
    r = keep;
    assert_int_equal(tr_task_choose(w->view, w->ctx, task, NULL, &r, &sc), TR_E_OUTPUT_TOO_SMALL);
    assert_memory_equal(&r, &keep, sizeof r);
    sc.cap = M;
    assert_int_equal(tr_task_choose(w->view, w->ctx, task, NULL, &r, &sc), TR_OK);
    assert_int_equal(r.n_prompts, 1);
    for (uint32_t m = 0; m < 4 * M; m++)
        assert_true(s[m] >= 0.0f && s[m] <= 1.0f);
    free(s);
    free(tm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_capacities),
        cmocka_unit_test(test_ctx_too_small),
        cmocka_unit_test(test_view_memory),
        cmocka_unit_test(test_arrays_shorter_than_a_delta),
        cmocka_unit_test(test_ram_counter_store),
        cmocka_unit_test(test_task_scores_capacity),
    };
    return cmocka_run_group_tests_name("api", tests, setup, teardown);
}
