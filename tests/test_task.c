/* Task-level selection (Shnitzer et al. 2023) on hand-made cases where the
 * right answer is known: S1/S2/S3 values, the out-of-distribution gate, and
 * the API's edges (exact memory, packs without a table, pack swaps). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"
#include "packwriter.h"
#include "tinyroute.h"

#define KEY "fixtures/keys/test-signing.key"
#define PUB "fixtures/keys/test-signing.pub"

/* Three regions (basis directions), 25 identical references each; with
 * k = 25 a query on a basis direction sees exactly its region.
 *   region A: specialist 25/25 right, generalist 11/25
 *   region B: specialist  0/25,       generalist 25/25
 *   region C: specialist 13/25,       generalist 12/25
 * Priors: specialist 38/75, generalist 48/75: the generalist is BMA. */
enum { D = 8, PER = 25, N = 3 * PER, M = 2, GEN = 0, SPEC = 1 };

typedef struct box {
    trh_buf pack;
    uint8_t *bytes;
    void *view_mem, *ctx_mem, *taskmem;
    const tr_pack *view;
    tr_ctx *ctx;
    tr_pubkey pub;
} box;

static void make_pack(box *b, const float *acc_table, int with_table)
{
    static int8_t refs[N * D];
    static float scores[N * M];
    memset(refs, 0, sizeof refs);
    for (int region = 0; region < 3; region++)
        for (int i = 0; i < PER; i++) {
            int r = region * PER + i;
            refs[r * D + region] = 127;
            static const int spec_right[3] = {25, 0, 13}, gen_right[3] = {11, 25, 12};
            scores[r * M + SPEC] = i < spec_right[region];
            scores[r * M + GEN] = i < gen_right[region];
        }
    static const trh_pack_model models[M] = {{"generalist", 50, TR_CLOUD}, {"specialist", 10, TR_CLOUD}};
    trh_buf tasks = {0};
    static const float u[2] = {0.0f, 1.0f};
    trh_tasks_section(u, acc_table, 2, M, 19, 0.09f, 0.6f, &tasks);
    trh_pack_spec s = {.security_counter = 1, .embedder_name = "hand", .dim = D, .n_refs = N,
                      .n_models = M, .models = models, .refs = refs, .scores = scores, .k = 25,
                      .tasks = with_table ? tasks.data : NULL, .tasks_len = with_table ? tasks.len : 0};
    trh_pack_layout lay;
    b->pack = (trh_buf){0};
    assert_int_equal(trh_pack_write(&s, &b->pack, &lay), 0);
    assert_int_equal(trh_pack_sign(&b->pack, KEY), 0);
    trh_buf_free(&tasks);
    assert_int_equal(posix_memalign((void **)&b->bytes, 64, b->pack.len), 0);
    memcpy(b->bytes, b->pack.data, b->pack.len);
    assert_int_equal(trh_key_load_public(PUB, &b->pub), 0);
    size_t need = tr_ctx_size(D, M, 0);
    assert_int_equal(posix_memalign(&b->view_mem, 64, tr_pack_size()), 0);
    assert_int_equal(posix_memalign(&b->ctx_mem, 64, need), 0);
    assert_int_equal(tr_ctx_init(b->ctx_mem, need, D, M, 0, &b->ctx), TR_OK);
    tr_trust t = {.keys = &b->pub, .n_keys = 1, .min_security_counter = 0, .now_unix = 0};
    assert_int_equal(tr_pack_open(b->view_mem, tr_pack_size(), b->bytes, b->pack.len, &t, &b->view),
                     TR_OK);
    assert_int_equal(posix_memalign(&b->taskmem, 64, tr_task_size(M)), 0);
}

static void free_box(box *b)
{
    trh_buf_free(&b->pack);
    free(b->bytes);
    free(b->view_mem);
    free(b->ctx_mem);
    free(b->taskmem);
}

/* S1, S2, S3 and p of a task (any may be NULL), M entries each. */
static tr_status choose(const box *b, const tr_task *t, const tr_route_opts *o, tr_task_result *res,
                        float *s1, float *s2, float *s3, float *p)
{
    const tr_task_scores sc = {s1, s2, s3, p, M};
    return tr_task_choose(b->view, b->ctx, t, o, res, &sc);
}

static tr_status add_i8(const box *b, tr_task *t, const char *embedder, const int8_t *q,
                        uint32_t dim)
{
    const tr_query qq = tr_query_i8(embedder, q, dim);
    return tr_task_add(b->view, b->ctx, t, &qq, NULL, NULL);
}

static const float reliable[2 * M] = {0.9f, 0.9f, 0.9f, 0.9f};

static tr_task *feed(box *b, int region, int n)
{
    tr_task *t;
    assert_int_equal(tr_task_begin(b->view, b->taskmem, tr_task_size(M), &t), TR_OK);
    int8_t q[D] = {0};
    q[region] = 100;
    for (int i = 0; i < n; i++)
        assert_int_equal(add_i8(b, t, "hand", q, D), TR_OK);
    return t;
}

static void test_specialist_wins_its_region(void **state)
{
    box b;
    make_pack(&b, reliable, 1);
    tr_task *t = feed(&b, 0, 20);
    tr_task_result res;
    float s1[M], s2[M], s3[M], p[M];
    assert_int_equal(choose(&b, t, NULL, &res, s1, s2, s3, p), TR_OK);
    assert_int_equal(res.n_prompts, 20);
    assert_true(res.mean_distance < 1e-6f);
    assert_true(fabsf(s1[SPEC] - 1.0f) < 1e-6f && fabsf(s1[GEN] - 11.0f / 25) < 1e-6f);
    assert_true(s2[SPEC] == 1.0f && s2[GEN] == 0.0f);
    assert_true(fabsf(p[SPEC] - 0.9f) < 1e-4f); /* u = 0 sits on the first table row */
    assert_true(fabsf(s3[SPEC] - 0.9f) < 1e-4f && fabsf(s3[GEN] - 0.1f) < 1e-4f);
    assert_int_equal(res.bma, GEN);
    assert_int_equal(res.by_s1, SPEC);
    assert_int_equal(res.by_s3, SPEC);
    /* mu = 20 * (1 - 0.44), var = 20 * 0.44 * 0.56: P ~ 1. */
    assert_true(res.p_beats_bma > 0.999f);
    assert_false(res.kept_bma);
    assert_int_equal(res.chosen, SPEC);
    free_box(&b);
}

static void test_gate_keeps_bma_on_thin_evidence(void **state)
{
    box b;
    make_pack(&b, reliable, 1);
    /* Region C: 0.52 vs 0.48 crosses the 0.5 threshold, so S2 and S3 prefer
     * the specialist, but 5 prompts cannot show it is better:
     * P = Phi(5 * 0.04 / sqrt(5 * 2 * 0.2496)) = 0.55 < 0.6. */
    tr_task *t = feed(&b, 2, 5);
    tr_task_result res;
    assert_int_equal(choose(&b, t, NULL, &res, NULL, NULL, NULL, NULL), TR_OK);
    assert_int_equal(res.by_s3, SPEC);
    double want = 0.5 * erfc(-(5 * 0.04) / sqrt(2 * 5 * 2 * 0.52 * 0.48));
    assert_true(fabs(res.p_beats_bma - want) < 1e-4);
    assert_true(res.p_beats_bma < 0.6f);
    assert_true(res.kept_bma);
    assert_int_equal(res.chosen, GEN);
    /* With many prompts the same margin becomes convincing. */
    t = feed(&b, 2, 200);
    assert_int_equal(choose(&b, t, NULL, &res, NULL, NULL, NULL, NULL), TR_OK);
    assert_true(res.p_beats_bma > 0.6f);
    assert_int_equal(res.chosen, SPEC);
    free_box(&b);
}

static void test_unreliable_predictor_falls_back(void **state)
{
    /* The table says the predictor is right about the specialist only 10%
     * of the time near the references: S3 turns its S2 = 1 into 0.1. */
    static const float table[2 * M] = {0.5f, 0.1f, 0.5f, 0.1f};
    box b;
    make_pack(&b, table, 1);
    tr_task *t = feed(&b, 0, 20);
    tr_task_result res;
    float s3[M];
    assert_int_equal(choose(&b, t, NULL, &res, NULL, NULL, s3, NULL), TR_OK);
    assert_int_equal(res.by_s1, SPEC);
    assert_int_equal(res.by_s2, SPEC);
    assert_true(fabsf(s3[SPEC] - 0.1f) < 1e-4f && fabsf(s3[GEN] - 0.5f) < 1e-4f);
    assert_int_equal(res.by_s3, GEN);
    assert_int_equal(res.chosen, GEN);
    assert_false(res.kept_bma);
    free_box(&b);
}

static void test_lambda_and_availability(void **state)
{
    box b;
    make_pack(&b, reliable, 1);
    tr_task *t = feed(&b, 1, 10); /* region B: the generalist is right */
    tr_task_result res;
    assert_int_equal(choose(&b, t, NULL, &res, NULL, NULL, NULL, NULL), TR_OK);
    assert_int_equal(res.chosen, GEN);
    uint8_t only_spec = 1u << SPEC;
    tr_route_opts o = {.lambda = TR_LAMBDA_DEFAULT, .available = &only_spec, .available_bits = M};
    assert_int_equal(choose(&b, t, &o, &res, NULL, NULL, NULL, NULL), TR_OK);
    assert_int_equal(res.chosen, SPEC);
    assert_int_equal(res.bma, SPEC);
    tr_route_opts off = {.lambda = TR_LAMBDA_DEFAULT, .offline = 1};
    assert_int_equal(choose(&b, t, &off, &res, NULL, NULL, NULL, NULL), TR_E_NO_MODEL_AVAILABLE);
    free_box(&b);
}

static void test_api_edges(void **state)
{
    box b;
    make_pack(&b, reliable, 1);
    tr_task *t;
    assert_int_equal(tr_task_begin(b.view, b.taskmem, tr_task_size(M) - 1, &t), TR_E_ARENA_TOO_SMALL);
    assert_int_equal(tr_task_begin(b.view, (uint8_t *)b.taskmem + 1, tr_task_size(M), &t), TR_E_ARG);
    assert_int_equal(tr_task_begin(b.view, b.taskmem, tr_task_size(M), &t), TR_OK);
    tr_task_result res;
    assert_int_equal(choose(&b, t, NULL, &res, NULL, NULL, NULL, NULL), TR_E_EMPTY_INPUT);
    int8_t q[D] = {0}, nanq[D] = {0};
    q[0] = 5;
    assert_int_equal(add_i8(&b, t, "other", q, D), TR_E_EMBEDDER_MISMATCH);
    assert_int_equal(add_i8(&b, t, "hand", q, D - 1), TR_E_DIM_MISMATCH);
    assert_int_equal(add_i8(&b, t, "hand", nanq, D), TR_E_ZERO_VECTOR);
    const tr_query words = tr_query_text("words", 5);
    assert_int_equal(tr_task_add(b.view, b.ctx, t, &words, NULL, NULL), TR_E_NO_EMBEDDER);
    /* The sums belong to their pack: another pack's view refuses them. */
    box other;
    make_pack(&other, reliable, 0);
    assert_int_equal(add_i8(&other, t, "hand", q, D), TR_E_ARG);
    assert_int_equal(add_i8(&b, t, "hand", q, D), TR_OK);
    /* A pack without the table has no task-level selection. */
    assert_int_equal(tr_task_begin(other.view, b.taskmem, tr_task_size(M), &t), TR_E_UNSUPPORTED);
    free_box(&other);
    free_box(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specialist_wins_its_region),
        cmocka_unit_test(test_gate_keeps_bma_on_thin_evidence),
        cmocka_unit_test(test_unreliable_predictor_falls_back),
        cmocka_unit_test(test_lambda_and_availability),
        cmocka_unit_test(test_api_edges),
    };
    return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
