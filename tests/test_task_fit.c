/* The builder's S3 table (models/fit/task_fit.c) against the plain algorithm it
 * replaced (every candidate qsorted per query), kept here verbatim as the
 * reference:
 *   - with every query (max_queries_per_task 0, or a cap above every task's
 *     size) the bounded-heap version writes the same bytes, on tie-heavy
 *     synthetic rows and on the fixture's real embeddings, with every kernel;
 *   - with a sample of Q queries per task, u and acc stay within a stated
 *     number of standard errors of the full run on the fixture;
 *   - leave one task out (trh_task_loto, eval --tasks): each held-out
 *     task's table from the shared neighbour lists writes the bytes
 *     trh_task_fit writes on the references without that task, and the
 *     held-out prompts' neighbours are tr_knn_search's, with lists long
 *     enough and with lists so short that queries are searched again.
 * Usage: test_task_fit FIXTURE_DIR EMBEDDER.bin */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataset.h"
#include "tr_embed.h"
#include "tr_format.h"
#include "tr_kernels.h"
#include "trh_fit.h"
#include "util.h"

static const char *fixture_dir, *embedder_path;

typedef struct cand {
    float sim;
    uint32_t idx;
} cand;

static int by_sim(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The pre-heap trh_task_fit (every reference a query, a full qsort per
 * query); also returns each reference's own u in u_of (for the test's
 * standard errors). */
/* rows: the references' rows, row-major (dim bytes each), scored here with
 * the row-major kernel: independent of the blocks layout under test. */
static void ref_task_fit(const tr_kernels *kern, const tr_refs *refs, const int8_t *rows,
                         const uint32_t *task_of,
                         uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                         uint32_t k_dist, float *u, float *acc, double *u_of)
{
    const uint32_t n = refs->n;
    int32_t *dots = malloc(n * sizeof *dots);
    cand *c = malloc(n * sizeof *c);
    double *usum = calloc(n_tasks, sizeof *usum), *hit = calloc((size_t)n_tasks * n_models, sizeof *hit);
    size_t *ucnt = calloc(n_tasks, sizeof *ucnt), *cnt = calloc((size_t)n_tasks * n_models, sizeof *cnt);
    assert_non_null(dots), assert_non_null(c), assert_non_null(usum), assert_non_null(hit);
    assert_non_null(ucnt), assert_non_null(cnt);
    for (uint32_t i = 0; i < n; i++) {
        const int8_t *q = rows + (size_t)i * refs->dim;
        kern->dot_i8_rows(q, rows, refs->dim, n, refs->dim, dots);
        float inv_q = refs->inv_norm[i];
        uint32_t nc = 0;
        for (uint32_t j = 0; j < n; j++)
            if (task_of[j] != task_of[i])
                c[nc++] = (cand){(float)dots[j] * refs->inv_norm[j], j};
        u_of[i] = NAN;
        if (nc == 0)
            continue;
        qsort(c, nc, sizeof *c, by_sim);
        uint32_t nd = nc < k_dist ? nc : k_dist, nk = nc < k ? nc : k;
        double ui = 0;
        for (uint32_t j = 0; j < nd; j++)
            ui += 1.0 - (double)c[j].sim * inv_q;
        usum[task_of[i]] += ui / nd;
        u_of[i] = ui / nd;
        ucnt[task_of[i]]++;
        for (uint32_t m = 0; m < n_models; m++) {
            float y = scores[(size_t)i * n_models + m];
            if (isnan(y))
                continue;
            double s = 0;
            uint32_t known = 0;
            for (uint32_t j = 0; j < nk; j++) {
                float v = scores[(size_t)c[j].idx * n_models + m];
                if (!isnan(v)) {
                    s += v;
                    known++;
                }
            }
            if (!known)
                continue;
            int right = (s / known > 0.5) == (y >= 0.5f);
            hit[(size_t)task_of[i] * n_models + m] += right;
            cnt[(size_t)task_of[i] * n_models + m]++;
        }
    }
    for (uint32_t t = 0; t < n_tasks; t++) {
        u[t] = ucnt[t] ? (float)(usum[t] / (double)ucnt[t]) : 1.0f;
        for (uint32_t m = 0; m < n_models; m++) {
            size_t j = (size_t)t * n_models + m;
            acc[j] = cnt[j] ? (float)(hit[j] / (double)cnt[j]) : 0.5f;
        }
    }
    free(dots), free(c), free(usum), free(hit), free(ucnt), free(cnt);
}

typedef struct data {
    tr_refs refs;           /* rows: blocks, a copy of rows' */
    int8_t *rows;           /* row-major */
    float *inv, *scores;
    uint32_t *task_of, n_tasks, n_models;
} data;

/* n row-major rows in the pack's blocks layout, malloc'd. */
static int8_t *blocks_of(const int8_t *rows, uint32_t n, uint32_t dim)
{
    int8_t *b = malloc(tr_ref_bytes(n, dim) + 1);
    assert_non_null(b);
    tr_refs_put_rows(b, rows, dim, n, dim);
    return b;
}

static void set_inv_norms(data *d)
{
    for (uint32_t j = 0; j < d->refs.n; j++) {
        int64_t ss = 0;
        for (uint32_t x = 0; x < d->refs.dim; x++)
            ss += (int32_t)d->rows[(size_t)j * d->refs.dim + x] * d->rows[(size_t)j * d->refs.dim + x];
        d->inv[j] = (float)(1.0 / sqrt((double)ss));
    }
    d->refs.rows = blocks_of(d->rows, d->refs.n, d->refs.dim);
    d->refs.inv_norm = d->inv;
}

static void free_data(data *d)
{
    free(d->rows), free((void *)d->refs.rows), free(d->inv), free(d->scores), free(d->task_of);
}

/* new (max_queries_per_task q) == reference, bytes of u and acc, for k. */
static void same_as_reference(const tr_kernels *kern, const data *d, uint32_t k, uint32_t k_dist,
                              uint32_t q)
{
    const size_t nu = d->n_tasks, na = (size_t)d->n_tasks * d->n_models;
    float *u0 = malloc(nu * sizeof *u0), *u1 = malloc(nu * sizeof *u1);
    float *a0 = malloc(na * sizeof *a0), *a1 = malloc(na * sizeof *a1);
    double *u_of = malloc(d->refs.n * sizeof *u_of);
    ref_task_fit(kern, &d->refs, d->rows, d->task_of, d->n_tasks, d->scores, d->n_models, k, k_dist, u0, a0, u_of);
    assert_int_equal(trh_task_fit(kern, &d->refs, d->task_of, d->n_tasks, d->scores, d->n_models, k,
                                 k_dist, q, u1, a1), 0);
    if (memcmp(u0, u1, nu * sizeof *u0) || memcmp(a0, a1, na * sizeof *a0))
        fail_msg("%s: k=%u k_dist=%u q=%u differs from the full sort", kern->name, k, k_dist, q);
    free(u0), free(u1), free(a0), free(a1), free(u_of);
}

/* 700 rows of 6 dims in {-1, 0, 1}: most similarities tie, so the order
 * among equals (lower index first) decides the neighbours. */
static void test_ties_match_full_sort(void **state)
{
    (void)state;
    data d = {0};
    const uint32_t n = 700, dim = 6;
    d.n_tasks = 5, d.n_models = 3;
    d.refs = (tr_refs){n, dim, NULL, NULL};
    d.rows = malloc((size_t)n * dim), d.inv = malloc(n * sizeof *d.inv);
    d.scores = malloc((size_t)n * d.n_models * sizeof *d.scores);
    d.task_of = malloc(n * sizeof *d.task_of);
    uint64_t s = 7;
    for (uint32_t j = 0; j < n; j++) {
        int nz = 0;
        do {
            nz = 0;
            for (uint32_t x = 0; x < dim; x++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                d.rows[(size_t)j * dim + x] = (int8_t)((int)(s >> 60) % 3 - 1);
                nz |= d.rows[(size_t)j * dim + x];
            }
        } while (!nz);
        d.task_of[j] = (j * 7 + (uint32_t)(s >> 61)) % d.n_tasks;
        for (uint32_t m = 0; m < d.n_models; m++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(s >> 58);
            d.scores[(size_t)j * d.n_models + m] = r < 6 ? NAN : (float)(r & 1);
        }
    }
    set_inv_norms(&d);
    const tr_kernels *ks[8];
    size_t nk = tr_kernels_available(ks, 8);
    static const uint32_t kk[][2] = {{1, 1}, {10, 19}, {100, 19}, {19, 3}, {1000, 19}, {5, 2000}};
    for (size_t v = 0; v < nk; v++)
        for (size_t i = 0; i < sizeof kk / sizeof *kk; i++) {
            same_as_reference(ks[v], &d, kk[i][0], kk[i][1], 0);
            same_as_reference(ks[v], &d, kk[i][0], kk[i][1], n); /* cap above every task */
        }
    free_data(&d);
}

/* The fixture's train prompts with a known word, embedded and quantized as
 * the device does (no pc: the table's arithmetic is what is under test). */
static void load_fixture(data *d)
{
    trh_dataset ds;
    assert_int_equal(trh_dataset_load(fixture_dir, &ds), 0);
    size_t len;
    uint8_t *table = trh_read_file(embedder_path, &len);
    assert_non_null(table);
    tr_embedder e;
    assert_int_equal(tr_embedder_view(table, len, &e), TR_OK);
    const uint32_t dim = e.dim, m = (uint32_t)ds.n_models;
    d->rows = malloc(ds.n_prompts * dim), d->inv = malloc(ds.n_prompts * sizeof *d->inv);
    d->scores = malloc(ds.n_prompts * m * sizeof *d->scores);
    d->task_of = malloc(ds.n_prompts * sizeof *d->task_of);
    float *acc = malloc(dim * sizeof *acc);
    const char *names[256];
    uint32_t n = 0, nt = 0;
    for (size_t i = 0; i < ds.n_prompts; i++) {
        const trh_ds_prompt *p = &ds.prompts[i];
        uint32_t known;
        if (p->split == TRH_SPLIT_TEST)
            continue;
        if (tr_embed_f32(&e, p->text, strlen(p->text), acc, &known) != TR_OK || !known ||
            tr_quantize_i8(acc, dim, d->rows + (size_t)n * dim) != TR_OK)
            continue;
        uint32_t t = 0;
        while (t < nt && strcmp(names[t], p->task))
            t++;
        if (t == nt) {
            assert_true(nt < 256);
            names[nt++] = p->task;
        }
        d->task_of[n] = t;
        memcpy(d->scores + (size_t)n * m, ds.scores + i * m, m * sizeof *d->scores);
        n++;
    }
    d->refs = (tr_refs){n, dim, NULL, NULL};
    d->n_tasks = nt, d->n_models = m;
    set_inv_norms(d);
    assert_true(n > 1000 && nt >= 10);
    free(acc);
    free(table);
    trh_dataset_free(&ds);
}

static void test_fixture_full_matches(void **state)
{
    (void)state;
    data d = {0};
    load_fixture(&d);
    const tr_kernels *ks[8];
    size_t nk = tr_kernels_available(ks, 8);
    for (size_t v = 0; v < nk; v++) {
        same_as_reference(ks[v], &d, 100, 19, 0); /* the fixture pack's k */
        same_as_reference(ks[v], &d, 10, 19, 0);
    }
    same_as_reference(tr_kernels_active(), &d, 100, 19, d.refs.n);
    free_data(&d);
}

/* Leave one task out from shared lists == a fit per held-out task. */
static void loto_matches(const data *d, uint32_t k, uint32_t k_dist, uint32_t list_len,
                         uint32_t *searched)
{
    const tr_kernels *kern = tr_kernels_active();
    const uint32_t n = d->refs.n, nm = d->n_models, dim = d->refs.dim;
    trh_task_loto lo;
    assert_int_equal(trh_task_loto_make(kern, &d->refs, d->task_of, list_len, &lo), 0);
    uint32_t *ri = malloc(n * sizeof *ri), *rtask = malloc(n * sizeof *rtask),
             *reduced_of = malloc(n * sizeof *reduced_of);
    int8_t *rows = malloc((size_t)n * dim);
    float *inv = malloc(n * sizeof *inv), *ys = malloc((size_t)n * nm * sizeof *ys);
    float *u0 = malloc(d->n_tasks * sizeof *u0), *u1 = malloc(d->n_tasks * sizeof *u1);
    float *a0 = malloc((size_t)d->n_tasks * nm * sizeof *a0), *a1 = malloc((size_t)d->n_tasks * nm * sizeof *a1);
    tr_neighbor *nb0 = malloc(TR_K_MAX * sizeof *nb0), *nb1 = malloc(TR_K_MAX * sizeof *nb1);
    int32_t dots[TR_KNN_BLOCK];
    *searched = 0;
    for (uint32_t t = 0; t < d->n_tasks; t++) {
        uint32_t nr = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (d->task_of[i] == t)
                continue;
            ri[nr] = i;
            reduced_of[i] = nr;
            memcpy(rows + (size_t)nr * dim, d->rows + (size_t)i * dim, dim);
            inv[nr] = d->inv[i];
            memcpy(ys + (size_t)nr * nm, d->scores + (size_t)i * nm, nm * sizeof *ys);
            rtask[nr] = d->task_of[i] - (d->task_of[i] > t); /* tasks renumbered */
            nr++;
        }
        const tr_refs refs = {nr, dim, blocks_of(rows, nr, dim), inv};
        uint32_t again = 0;
        assert_int_equal(trh_task_fit(kern, &refs, rtask, d->n_tasks - 1, ys, nm, k, k_dist, 0, u0, a0), 0);
        assert_int_equal(trh_task_fit_loto(&lo, kern, d->task_of, t, &refs, ri, reduced_of, rtask,
                                           d->n_tasks - 1, ys, nm, k, k_dist, u1, a1, &again),
                         0);
        assert_memory_equal(u0, u1, (d->n_tasks - 1) * sizeof *u0);
        assert_memory_equal(a0, a1, (size_t)(d->n_tasks - 1) * nm * sizeof *a0);
        *searched += again;
        /* The held-out prompts' own neighbours. */
        for (uint32_t i = 0; i < n; i++) {
            if (d->task_of[i] != t)
                continue;
            const uint32_t f0 = tr_knn_search(kern, &refs, d->rows + (size_t)i * dim, k, dots, nb0);
            const uint32_t f1 = trh_task_loto_neighbours(&lo, d->task_of, t, reduced_of, i, k, nb1);
            if (f1 == UINT32_MAX) {
                assert_true(list_len < k);
                continue;
            }
            assert_int_equal(f0, f1);
            assert_memory_equal(nb0, nb1, f0 * sizeof *nb0);
        }
        free((void *)refs.rows);
    }
    trh_task_loto_free(&lo);
    free(ri), free(rtask), free(reduced_of), free(rows), free(inv), free(ys);
    free(u0), free(u1), free(a0), free(a1), free(nb0), free(nb1);
}

static void test_leave_one_task_out(void **state)
{
    (void)state;
    data d = {0};
    load_fixture(&d);
    uint32_t searched;
    loto_matches(&d, 100, 19, 300, &searched); /* eval --tasks' list: 3 k */
    print_message("leave one task out, lists of 300: %u queries searched again\n", searched);
    loto_matches(&d, 100, 19, 105, &searched); /* short lists: many searched again */
    assert_true(searched > 0);
    loto_matches(&d, 10, 19, 19, &searched);
    assert_true(searched > 0);
    free_data(&d);
}

/* Sampling Q of a task's n_t prompts (without replacement): a proportion's
 * standard error is at most 0.5/sqrt(Q)*sqrt((n_t-Q)/(n_t-1)), u's is
 * sd_t/sqrt(Q) times the same factor (sd_t: the spread of the per-prompt u
 * over the whole task, from the full run). Asserted: every u and acc entry
 * within 5 standard errors (the sample is deterministic, so no flakiness;
 * 5 leaves room for the largest of ~400 entries under another seed), and
 * the mean |acc difference| within one SE bound (a normal's mean absolute
 * deviation is 0.8 SE). */
static void test_fixture_sample_close(void **state)
{
    (void)state;
    data d = {0};
    load_fixture(&d);
    const uint32_t T = d.n_tasks, M = d.n_models, n = d.refs.n, Q = 48, k = 100, kd = 19;
    float *u0 = malloc(T * sizeof *u0), *u1 = malloc(T * sizeof *u1), *u2 = malloc(T * sizeof *u2);
    float *a0 = malloc((size_t)T * M * sizeof *a0), *a1 = malloc((size_t)T * M * sizeof *a1);
    float *a2 = malloc((size_t)T * M * sizeof *a2);
    double *u_of = malloc(n * sizeof *u_of);
    const tr_kernels *kern = tr_kernels_active();
    ref_task_fit(kern, &d.refs, d.rows, d.task_of, T, d.scores, M, k, kd, u0, a0, u_of);
    assert_int_equal(trh_task_fit(kern, &d.refs, d.task_of, T, d.scores, M, k, kd, Q, u1, a1), 0);
    assert_int_equal(trh_task_fit(kern, &d.refs, d.task_of, T, d.scores, M, k, kd, Q, u2, a2), 0);
    assert_memory_equal(u1, u2, T * sizeof *u1); /* the same sample every time */
    assert_memory_equal(a1, a2, (size_t)T * M * sizeof *a1);
    double sum_abs = 0, sum_se = 0, worst_u = 0, worst_a = 0;
    uint32_t sampled = 0;
    for (uint32_t t = 0; t < T; t++) {
        double nt = 0, mu = 0, ss = 0;
        for (uint32_t i = 0; i < n; i++)
            if (d.task_of[i] == t)
                nt++, mu += u_of[i];
        mu /= nt;
        for (uint32_t i = 0; i < n; i++)
            if (d.task_of[i] == t)
                ss += (u_of[i] - mu) * (u_of[i] - mu);
        if (nt <= Q) { /* every prompt: exactly the full run */
            assert_memory_equal(&u0[t], &u1[t], sizeof *u0);
            assert_memory_equal(a0 + (size_t)t * M, a1 + (size_t)t * M, M * sizeof *a0);
            continue;
        }
        sampled++;
        double fpc = sqrt((nt - Q) / (nt - 1)), se_u = sqrt(ss / (nt - 1)) / sqrt(Q) * fpc;
        double se_a = 0.5 / sqrt(Q) * fpc, du = fabs((double)u1[t] - u0[t]);
        if (du > 5 * se_u)
            fail_msg("task %u: u %.5f sampled vs %.5f full, SE %.5f", t, u1[t], u0[t], se_u);
        if (du / se_u > worst_u)
            worst_u = du / se_u;
        for (uint32_t m = 0; m < M; m++) {
            double da = fabs((double)a1[(size_t)t * M + m] - a0[(size_t)t * M + m]);
            if (da > 5 * se_a)
                fail_msg("task %u model %u: acc %.4f sampled vs %.4f full, SE bound %.4f", t, m,
                         a1[(size_t)t * M + m], a0[(size_t)t * M + m], se_a);
            if (da / se_a > worst_a)
                worst_a = da / se_a;
            sum_abs += da, sum_se += se_a;
        }
    }
    assert_true(sampled >= T / 2); /* the sample was really exercised */
    print_message("Q=%u: %u of %u tasks sampled; worst |du| %.2f SE, worst |dacc| %.2f SE bound, "
                  "mean |dacc| %.4f (bound %.4f)\n",
                  Q, sampled, T, worst_u, worst_a, sum_abs / (sampled * M), sum_se / (sampled * M));
    assert_true(sum_abs <= sum_se);
    free(u0), free(u1), free(u2), free(a0), free(a1), free(a2), free(u_of);
    free_data(&d);
}

/* The batched searches run on TR_THREADS workers (models/fit/task_fit.c):
 * 1, 2 and 5 workers give the same table and the same lists to the bit, on
 * the fixture's 1,599 prompts (25 batches of 64: rounds of several batches,
 * and a last round with fewer batches than workers). */
static void test_threads_same_bytes(void **state)
{
    (void)state;
    data d = {0};
    load_fixture(&d);
    const uint32_t T = d.n_tasks, M = d.n_models, n = d.refs.n;
    const tr_kernels *kern = tr_kernels_active();
    float *u[3], *a[3];
    trh_task_loto lo[3];
    static const char *workers[3] = {"1", "2", "5"};
    for (int w = 0; w < 3; w++) {
        setenv("TR_THREADS", workers[w], 1);
        u[w] = malloc(T * sizeof *u[w]), a[w] = malloc((size_t)T * M * sizeof *a[w]);
        assert_int_equal(trh_task_fit(kern, &d.refs, d.task_of, T, d.scores, M, 100, 19, 0, u[w], a[w]), 0);
        assert_int_equal(trh_task_loto_make(kern, &d.refs, d.task_of, 57, &lo[w]), 0);
    }
    unsetenv("TR_THREADS");
    for (int w = 1; w < 3; w++) {
        assert_memory_equal(u[w], u[0], T * sizeof *u[0]);
        assert_memory_equal(a[w], a[0], (size_t)T * M * sizeof *a[0]);
        assert_memory_equal(lo[w].len, lo[0].len, n * sizeof *lo[0].len);
        for (uint32_t i = 0; i < n; i++)
            assert_memory_equal(lo[w].nb + (size_t)i * 57, lo[0].nb + (size_t)i * 57,
                                lo[0].len[i] * sizeof *lo[0].nb);
    }
    assert_true(lo[0].len[0] > 0 && lo[0].len[n - 1] > 0);
    for (int w = 0; w < 3; w++)
        free(u[w]), free(a[w]), trh_task_loto_free(&lo[w]);
    free_data(&d);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_task_fit FIXTURE_DIR EMBEDDER.bin\n");
        return 2;
    }
    fixture_dir = argv[1], embedder_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ties_match_full_sort),
        cmocka_unit_test(test_fixture_full_matches),
        cmocka_unit_test(test_fixture_sample_close),
        cmocka_unit_test(test_leave_one_task_out),
        cmocka_unit_test(test_threads_same_bytes),
    };
    return cmocka_run_group_tests_name("task_fit", tests, NULL, NULL);
}
