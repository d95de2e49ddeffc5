/* Every kernel variant this CPU runs must equal the scalar reference,
 * exactly, on random and edge inputs: values -127/127 (and -128 for the
 * variants that take it), every length from 1 to 4 * 64 + 3, unaligned starts, odd strides, row counts around the
 * 4-row blocking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "tr_kernels.h"
#include "tr_format.h"
#include "tr_knn.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static uint64_t s = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static const tr_kernels *variants[8];
static size_t n_variants;

enum { MAXD = 4 * 64 + 3, MAXR = 11 };

static void fill(int8_t *p, size_t n, int mode)
{
    for (size_t i = 0; i < n; i++) {
        switch (mode) {
        case 0: p[i] = (int8_t)((int)(rnd() % 255) - 127); break;
        case 1: p[i] = 127; break;
        case 2: p[i] = -127; break;
        case 3: p[i] = (rnd() & 1) ? 127 : -127; break;
        case 4: p[i] = (int8_t)(uint8_t)rnd(); break;        /* -128 too */
        default: p[i] = (rnd() & 3) ? -128 : 127; break;    /* mostly -128 */
        }
    }
}

/* Every variant (with full_only: those flagged full_int8) against the
 * scalar reference on these rows; the number of variants compared. */
static size_t dots_equal_scalar(const int8_t *q, const int8_t *rows, size_t stride, size_t nr,
                                size_t dim, int mode, int full_only)
{
    int32_t want[MAXR], got[MAXR];
    size_t checks = 0;
    tr_kernels_scalar()->dot_i8_rows(q, rows, stride, nr, dim, want);
    for (size_t v = 0; v < n_variants; v++) {
        if (full_only && !variants[v]->full_int8)
            continue;
        memset(got, 0x55, sizeof got);
        variants[v]->dot_i8_rows(q, rows, stride, nr, dim, got);
        for (size_t r = 0; r < nr; r++)
            if (got[r] != want[r])
                fail_msg("%s: dim %zu stride %zu row %zu/%zu mode %d: %d != %d", variants[v]->name,
                         dim, stride, r, nr, mode, got[r], want[r]);
        checks++;
    }
    return checks;
}

static void test_dot_i8_rows_equal_scalar(void **state)
{
    /* +1: start the query and the rows at odd addresses. */
    static int8_t qbuf[MAXD + 1], rbuf[MAXR * (MAXD + 5) + 1];
    int32_t want[MAXR], got[MAXR];
    size_t checks = 0;
    for (int mode = 0; mode < 4; mode++)
        for (size_t dim = 1; dim <= MAXD; dim++) {
            size_t stride = dim + (dim % 3); /* padded and unpadded rows */
            for (size_t nr = 1; nr <= MAXR; nr += (nr < 5 ? 1 : 3)) {
                int8_t *q = qbuf + 1, *rows = rbuf + 1;
                fill(q, dim, mode);
                fill(rows, nr * stride, mode == 1 ? 2 : mode); /* 127 * -127 too */
                checks += dots_equal_scalar(q, rows, stride, nr, dim, mode, 0);
            }
        }
    /* The extreme sum: 127*127*MAXD, and its negative. */
    int8_t *q = qbuf + 1, *rows = rbuf + 1;
    fill(q, MAXD, 1);
    fill(rows, MAXD, 2);
    tr_kernels_scalar()->dot_i8_rows(q, rows, MAXD, 1, MAXD, want);
    assert_int_equal(want[0], -127 * 127 * MAXD);
    for (size_t v = 0; v < n_variants; v++) {
        variants[v]->dot_i8_rows(q, rows, MAXD, 1, MAXD, got);
        assert_int_equal(got[0], want[0]);
    }
    assert_true(checks > 1000);
}

/* Variants flagged full_int8 (scalar, AVX-512, NEON, SDOT) equal the scalar
 * reference on every int8 value, -128 included, which the AVX2 sign trick
 * does not (the loader keeps -128 out of packs for them). Lengths cover
 * every tail of the 64-byte step. */
static void test_dot_i8_rows_full_range(void **state)
{
    static int8_t qbuf[MAXD + 1], rbuf[MAXR * (MAXD + 5) + 1];
    int32_t want[MAXR], got[MAXR];
    size_t checks = 0, full = 0;
    for (size_t v = 0; v < n_variants; v++)
        full += variants[v]->full_int8 != 0;
    for (int mode = 4; mode < 6; mode++)
        for (size_t dim = 1; dim <= MAXD; dim++) {
            size_t stride = dim + (dim % 5);
            for (size_t nr = 1; nr <= MAXR; nr += 2) {
                int8_t *q = qbuf + 1, *rows = rbuf + 1;
                fill(q, dim, mode);
                fill(rows, nr * stride, mode);
                checks += dots_equal_scalar(q, rows, stride, nr, dim, mode, 1);
            }
        }
    /* The largest sums: (-128)(-128) D and (-128)(127) D. */
    int8_t *q = qbuf + 1, *rows = rbuf + 1;
    memset(q, 0x80, MAXD);
    memset(rows, 0x80, MAXD);
    memset(rows + MAXD, 127, MAXD);
    tr_kernels_scalar()->dot_i8_rows(q, rows, MAXD, 2, MAXD, want);
    assert_int_equal(want[0], 128 * 128 * MAXD);
    assert_int_equal(want[1], -128 * 127 * MAXD);
    for (size_t v = 0; v < n_variants; v++)
        if (variants[v]->full_int8) {
            variants[v]->dot_i8_rows(q, rows, MAXD, 2, MAXD, got);
            assert_memory_equal(got, want, 2 * sizeof *want);
        }
    assert_int_equal(checks, full * 2 * MAXD * 6);
    assert_true(variants[0]->full_int8); /* the scalar reference itself */
}

/* The AVX-512 variant is there exactly when the CPU and OS support it (GCC's
 * cpu model reads CPUID and XCR0 independently of platform/dispatch.c), and
 * then it is the one dispatch picks; elsewhere the test says why it is
 * skipped. */
static void test_avx512_present_when_supported(void **state)
{
#if defined(__x86_64__) || defined(__i386__)
    int found = 0;
    for (size_t v = 0; v < n_variants; v++)
        found |= strcmp(variants[v]->name, "avx512-vnni") == 0;
    __builtin_cpu_init();
    static const char *const need[] = {"avx512f", "avx512bw", "avx512vnni", "avx512vpopcntdq",
                                       "avx512vl"};
    const char *missing = NULL;
    for (size_t i = 0; i < 5 && !missing; i++) {
        int has = 0;
        switch (i) {
        case 0: has = __builtin_cpu_supports("avx512f"); break;
        case 1: has = __builtin_cpu_supports("avx512bw"); break;
        case 2: has = __builtin_cpu_supports("avx512vnni"); break;
        case 3: has = __builtin_cpu_supports("avx512vpopcntdq"); break;
        default: has = __builtin_cpu_supports("avx512vl"); break; /* dot_i8_blocks' one row */
        }
        if (!has)
            missing = need[i];
    }
    if (missing) {
        print_message("avx512-vnni variant skipped: this CPU/OS lacks %s\n", missing);
        assert_false(found);
        return;
    }
    assert_true(found);
#ifndef TR_FORCE_SCALAR
    assert_string_equal(tr_kernels_active()->name, "avx512-vnni");
#endif
#else
    print_message("avx512-vnni variant skipped: not an x86 build\n");
    skip();
#endif
}

static void test_and_popcount_equal_scalar(void **state)
{
    static uint64_t a[70], b[70];
    for (size_t n = 0; n <= 67; n++)
        for (int mode = 0; mode < 3; mode++) {
            for (size_t i = 0; i < n + 1; i++) {
                a[i] = mode == 1 ? ~0ull : rnd();
                b[i] = mode == 2 ? ~0ull : rnd();
            }
            uint64_t want = tr_kernels_scalar()->and_popcount(a + 1, b + 1, n);
            for (size_t v = 0; v < n_variants; v++)
                assert_int_equal(variants[v]->and_popcount(a + 1, b + 1, n), want);
        }
    for (size_t i = 0; i < 70; i++)
        a[i] = b[i] = ~0ull;
    assert_int_equal(tr_kernels_scalar()->and_popcount(a, b, 70), 64 * 70);
}

static void test_hamming_rows_equal_scalar(void **state)
{
    static uint64_t q[20], codes[13 * 20];
    uint32_t want[13], got[13];
    for (size_t words = 1; words <= 19; words++)
        for (size_t nr = 1; nr <= 13; nr++) {
            for (size_t i = 0; i < words; i++)
                q[i] = rnd();
            for (size_t i = 0; i < nr * words; i++)
                codes[i] = (i % 5 == 0) ? q[i % words] : rnd(); /* some distance-0 words */
            tr_kernels_scalar()->hamming_rows(q, codes, words, nr, want);
            for (size_t v = 0; v < n_variants; v++) {
                variants[v]->hamming_rows(q, codes, words, nr, got);
                assert_memory_equal(got, want, nr * sizeof *want);
            }
        }
    memset(q, 0, sizeof q);
    memset(codes, 0xff, sizeof codes);
    tr_kernels_scalar()->hamming_rows(q, codes, 19, 1, want);
    assert_int_equal(want[0], 64 * 19);
}

/* The threshold filter: every variant's bits equal the scalar reference's
 * for every length around the 8/16/64-lane steps, thresholds exactly equal
 * to some products (a tie is not above), -inf and +inf, scales of 0; the
 * scalar reference itself is checked against the plain expression. */
static void test_scaled_above_equal_scalar(void **state)
{
    enum { NMAX = 4 * 64 + 9 };
    static int32_t dots[NMAX];
    static float scale[NMAX];
    uint64_t want[5], got[5];
    for (size_t n = 1; n <= NMAX; n += (n < 140 ? 1 : 13))
        for (int t = 0; t < 5; t++) {
            for (size_t j = 0; j < n; j++) {
                dots[j] = (int32_t)(rnd() % 2000001) - 1000000;
                scale[j] = (rnd() % 7 == 0) ? 0.0f : (float)(rnd() % 10000) / 7919.0f;
            }
            dots[n / 2] = 0; /* 0 * scale is 0: the tie case of thr = 0 */
            float thr = t == 0 ? (float)dots[n / 3] * scale[n / 3] /* an exact tie */
                      : t == 1 ? -INFINITY
                      : t == 2 ? INFINITY
                      : t == 3 ? 0.0f
                               : (float)((int)(rnd() % 2001) - 1000) * 0.5f;
            memset(want, 0xAB, sizeof want);
            tr_kernels_scalar()->scaled_above(dots, scale, n, thr, want);
            for (size_t j = 0; j < n; j++)
                assert_int_equal((want[j / 64] >> (j % 64)) & 1, (float)dots[j] * scale[j] > thr);
            for (size_t j = n; j < (n + 63) / 64 * 64; j++)
                assert_int_equal((want[j / 64] >> (j % 64)) & 1, 0);
            if (t == 0)
                assert_int_equal((want[n / 3 / 64] >> (n / 3 % 64)) & 1, 0);
            for (size_t v = 0; v < n_variants; v++) {
                memset(got, 0xCD, sizeof got);
                variants[v]->scaled_above(dots, scale, n, thr, got);
                assert_memory_equal(got, want, (n + 63) / 64 * sizeof *want);
            }
        }
}

/* Row-major rows (stride apart) as references in the pack's blocks layout;
 * free((void *)refs.rows) releases them. */
static tr_refs refs_of(const int8_t *rows, size_t stride, uint32_t n, uint32_t dim,
                       const float *inv)
{
    int8_t *b = malloc(tr_ref_bytes(n, dim) + 1);
    assert_non_null(b);
    tr_refs_put_rows(b, rows, stride, n, dim);
    return (tr_refs){n, dim, b, inv};
}

static int by_sim_then_index(const void *a, const void *b)
{
    const tr_neighbor *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Every row's sim for q, sorted by (sim descending, index ascending). */
static void sorted_sims(const int8_t *q, const int8_t *rows, const float *inv, uint32_t nr,
                        uint32_t dim, tr_neighbor *all)
{
    int32_t dot;
    for (uint32_t i = 0; i < nr; i++) {
        tr_kernels_scalar()->dot_i8_rows(q, rows + (size_t)i * dim, dim, 1, dim, &dot);
        all[i] = (tr_neighbor){(float)dot * inv[i], i};
    }
    qsort(all, nr, sizeof *all, by_sim_then_index);
}

/* tr_knn_search (heap + block filter) returns exactly the first k of a full
 * sort by (sim descending, index ascending), with exact ties that straddle
 * blocks (copies of rows 256 and 600 rows later), for k small, around the
 * 256-row block and beyond it. The last trial reorders the rows so that each
 * is nearer than every row before it: every row must pass the filter, by a
 * margin as small as the gaps between neighbouring sims. */
static void test_knn_search_equals_full_sort(void **state)
{
    enum { NR = 1500, DIM = 40 };
    static int8_t rows[NR * DIM], sorted_rows[NR * DIM];
    static float inv[NR], sorted_inv[NR];
    static tr_neighbor all[NR], got[NR];
    int8_t q[DIM];
    fill(rows, sizeof rows, 0);
    for (uint32_t i = 0; i < NR; i++)
        if (i % 3 == 0 && i + 600 < NR)
            memcpy(rows + (size_t)(i + 600) * DIM, rows + (size_t)i * DIM, DIM);
        else if (i % 7 == 0 && i + 256 < NR)
            memcpy(rows + (size_t)(i + 256) * DIM, rows + (size_t)i * DIM, DIM);
    for (uint32_t i = 0; i < NR; i++)
        inv[i] = tr_i8_inv_norm(rows + (size_t)i * DIM, DIM);
    tr_refs refs = refs_of(rows, DIM, NR, DIM, inv);
    static const uint32_t ks[] = {1, 10, 100, 255, 256, 257, 700, NR};
    for (int trial = 0; trial < 5; trial++) {
        if (trial == 0)
            memcpy(q, rows + 3 * DIM, DIM); /* its copies tie at the top */
        else
            fill(q, DIM, 0);
        sorted_sims(q, rows, inv, NR, DIM, all);
        if (trial == 4) { /* ascending: the nearest row last */
            for (uint32_t i = 0; i < NR; i++) {
                memcpy(sorted_rows + (size_t)i * DIM, rows + (size_t)all[NR - 1 - i].idx * DIM, DIM);
                sorted_inv[i] = inv[all[NR - 1 - i].idx];
            }
            free((void *)refs.rows);
            refs = refs_of(sorted_rows, DIM, NR, DIM, sorted_inv);
            sorted_sims(q, sorted_rows, sorted_inv, NR, DIM, all);
            assert_int_equal(all[0].idx, NR - 1);
        }
        if (trial == 0)
            assert_int_equal(all[1].idx, 603); /* the tie is there and ordered by index */
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
            for (size_t v = 0; v < n_variants; v++) {
                int32_t dots[TR_KNN_BLOCK];
                uint32_t n = tr_knn_search(variants[v], &refs, q, ks[ki], dots, got);
                assert_int_equal(n, ks[ki]);
                assert_memory_equal(got, all, n * sizeof *got);
            }
    }
    free((void *)refs.rows);
}

/* The whole neighbour search, not just the dot products, is identical under
 * every variant: same indices, same similarities, same order. */
static void test_knn_search_identical_across_variants(void **state)
{
    enum { NR = 2000 };
    static const uint32_t dims[] = {100, 768, 33};
    for (size_t t = 0; t < 3; t++) {
        uint32_t dim = dims[t], stride = (dim + 15) & ~15u;
        int8_t *rows = calloc((size_t)NR * stride, 1), *q = calloc(stride, 1);
        float *inv = malloc(NR * sizeof *inv);
        for (uint32_t i = 0; i < NR; i++) {
            fill(rows + (size_t)i * stride, dim, 0);
            double ss = 0;
            for (uint32_t d = 0; d < dim; d++)
                ss += (double)rows[(size_t)i * stride + d] * rows[(size_t)i * stride + d];
            inv[i] = (float)(1.0 / __builtin_sqrt(ss));
        }
        memcpy(rows + 11 * stride, rows + 5 * stride, stride); /* an exact tie */
        inv[11] = inv[5];
        memcpy(q, rows + 5 * stride, dim);
        tr_refs refs = refs_of(rows, stride, NR, dim, inv);
        int32_t dots[TR_KNN_BLOCK];
        tr_neighbor want[100], got[100];
        uint32_t nw = tr_knn_search(tr_kernels_scalar(), &refs, q, 100, dots, want);
        assert_int_equal(nw, 100);
        assert_int_equal(want[0].idx, 5);
        assert_int_equal(want[1].idx, 11);
        for (size_t v = 0; v < n_variants; v++) {
            uint32_t ng = tr_knn_search(variants[v], &refs, q, 100, dots, got);
            assert_int_equal(ng, nw);
            assert_memory_equal(got, want, nw * sizeof *want);
        }
        free(rows), free((void *)refs.rows);
        free(q);
        free(inv);
    }
}

/* On aarch64 the i8mm (SMMLA) variant is listed exactly when the kernel
 * reports FEAT_I8MM (qemu -cpu max does; cortex-a53 does not, and the test
 * prints why it is skipped). The equality tests above then cover it. */
static void test_i8mm_present_when_supported(void **state)
{
#if defined(__aarch64__)
    int found = 0;
    for (size_t v = 0; v < n_variants; v++)
        found |= strcmp(variants[v]->name, "neon-i8mm") == 0;
#if defined(__linux__)
    int has = (getauxval(AT_HWCAP2) & (1ul << 13)) != 0; /* HWCAP2_I8MM */
#else
    int has = 0;
#endif
    if (!has) {
        print_message("neon-i8mm variant skipped: this CPU lacks FEAT_I8MM (HWCAP2_I8MM)\n");
        assert_false(found);
        return;
    }
    assert_true(found);
    print_message("neon-i8mm variant tested against scalar\n");
#else
    print_message("neon-i8mm variant skipped: not an aarch64 build\n");
    skip();
#endif
}

/* The prefilter's counting selection keeps exactly the c rows nearest in
 * Hamming distance, ties to the lower index, then reranks them as exact
 * search would: checked against a sort of all (distance, index) pairs, for
 * every variant, with dims whose distances all fit the first histogram
 * (D = 5: heavy ties; D = 100) and dims that need the refining passes
 * (D = 300, 768: distances past 127), c from 1 to past n. */
static uint32_t *sort_ham;
static int by_ham(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (sort_ham[x] != sort_ham[y])
        return sort_ham[x] < sort_ham[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int by_index(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_prefilter_selects_nearest_codes(void **state)
{
    static uint32_t got_idx[1500];
    enum { NR = 1500, KK = 10 };
    static const uint32_t dims[] = {5, 100, 300, 768};
    static const uint32_t cs[] = {1, 7, 10, 100, 333, 1499, 1500, 4000};
    size_t checks = 0;
    for (size_t t = 0; t < 4; t++) {
        uint32_t dim = dims[t], stride = (dim + 15) & ~15u, words = (dim + 63) / 64;
        int8_t *rows = calloc((size_t)NR * stride, 1), *q = calloc(stride, 1);
        float *inv = malloc(NR * sizeof *inv);
        uint64_t *codes = calloc((size_t)NR * words, 8), qcode[16];
        uint32_t *hd = malloc(NR * sizeof *hd), *order = malloc(NR * sizeof *order), ham[TR_KNN_BLOCK];
        fill(q, dim, 0);
        for (uint32_t i = 0; i < NR; i++) {
            int8_t *r = rows + (size_t)i * stride;
            if (i % 3 == 0 && i) /* near copies of the query: short distances */
                for (uint32_t d = 0; d < dim; d++)
                    r[d] = (rnd() % 8) ? q[d] : (int8_t)((int)(rnd() % 255) - 127);
            else
                fill(r, dim, 0);
            double ss = 1;
            for (uint32_t d = 0; d < dim; d++)
                ss += (double)r[d] * r[d];
            inv[i] = (float)(1.0 / __builtin_sqrt(ss));
            tr_knn_sign_code(r, dim, codes + (size_t)i * words, words);
        }
        tr_knn_sign_code(q, dim, qcode, words);
        tr_kernels_scalar()->hamming_rows(qcode, codes, words, NR, hd);
        for (uint32_t i = 0; i < NR; i++)
            order[i] = i;
        sort_ham = hd;
        qsort(order, NR, sizeof *order, by_ham);
        tr_refs refs = refs_of(rows, stride, NR, dim, inv);
        tr_codes cd = {words, codes};
        for (size_t ci = 0; ci < 8; ci++) {
            uint32_t c = cs[ci], nc = c < NR ? c : NR;
            /* The reference: exact search over the nc nearest codes only. */
            int8_t *sub = malloc((size_t)nc * stride);
            float *subinv = malloc(nc * sizeof *subinv);
            uint32_t *back = malloc(nc * sizeof *back);
            for (uint32_t i = 0; i < nc; i++)
                back[i] = order[i];
            for (uint32_t i = 1; i < nc; i++) /* index order keeps tie order */
                for (uint32_t j = i; j > 0 && back[j - 1] > back[j]; j--) {
                    uint32_t x = back[j];
                    back[j] = back[j - 1];
                    back[j - 1] = x;
                }
            for (uint32_t i = 0; i < nc; i++) {
                memcpy(sub + (size_t)i * stride, rows + (size_t)back[i] * stride, stride);
                subinv[i] = inv[back[i]];
            }
            tr_refs subrefs = refs_of(sub, stride, nc, dim, subinv);
            int32_t dots[TR_KNN_BLOCK];
            tr_neighbor want[KK], got[KK];
            tr_neighbor *cand = malloc(nc * sizeof *cand);
            uint32_t nw = tr_knn_search(tr_kernels_scalar(), &subrefs, q, KK, dots, want);
            for (uint32_t i = 0; i < nw; i++)
                want[i].idx = back[want[i].idx];
            assert_int_equal(nw, nc < KK ? nc : KK);
            for (size_t v = 0; v < n_variants; v++) {
                uint32_t ng = tr_knn_search_prefilter(variants[v], &refs, &cd, q, KK, c, qcode,
                                                      ham, cand, got);
                assert_int_equal(ng, nw);
                for (uint32_t i = 0; i < nw; i++)
                    if (got[i].idx != want[i].idx || got[i].sim != want[i].sim)
                        fail_msg("%s D=%u c=%u rank %u: row %u (%g) != %u (%g)", variants[v]->name,
                                 dim, c, i, got[i].idx, got[i].sim, want[i].idx, want[i].sim);
                /* the candidate set itself: the nc nearest (any order) */
                if (nc < NR) {
                    for (uint32_t i = 0; i < nc; i++)
                        got_idx[i] = cand[i].idx;
                    qsort(got_idx, nc, sizeof *got_idx, by_index);
                    assert_memory_equal(got_idx, back, nc * sizeof *back);
                }
                checks++;
            }
            free(sub), free(subinv), free(back), free(cand), free((void *)subrefs.rows);
        }
        free(rows), free(q), free(inv), free(codes), free(hd), free(order);
        free((void *)refs.rows);
    }
    assert_int_equal(checks, 4 * 8 * n_variants);
}

/* ---- dot_i8_blocks: pack format 2's reference rows (blocks of 4 rows by
 * 16-byte chunks, tr_ref_offset) ----
 * The inputs sit right before an inaccessible page: the query's dim bytes
 * and the storage of exactly the blocks the wanted rows fall in, so a
 * variant that reads q past dim or a block past the last one faults
 * (natively and under qemu, not only under ASan). Padding bytes and the
 * rows of a touched block that are not wanted hold random bytes (-128
 * included): a variant must not depend on them. */
#include <sys/mman.h>
#include <unistd.h>

typedef struct guarded {
    uint8_t *base; /* mapping: size bytes, then one PROT_NONE page */
    size_t size;
} guarded;

static guarded guard_map(size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t size = (bytes + page - 1) / page * page;
    void *m = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect((uint8_t *)m + size, page, PROT_NONE), 0);
    return (guarded){m, size};
}
/* n bytes that end where the inaccessible page starts. */
static void *guard_tail(const guarded *g, size_t n)
{
    assert_true(n <= g->size);
    return g->base + g->size - n;
}
static void guard_unmap(guarded *g)
{
    munmap(g->base, g->size + (size_t)sysconf(_SC_PAGESIZE));
}

static const size_t blk_dims[] = {1,  2,  3,  4,  5,   6,   7,   8,   9,   10,  11,  12,
                                  13, 14, 15, 16, 17,  31,  32,  33,  48,  63,  64,  65,
                                  100, 127, 128, 129, 768, 4096, TR_DIM_MAX};
static const size_t blk_firsts[] = {0, 1, 2, 3, 4, 5, 6, 7, 255, 256};
static const size_t blk_counts[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 300};
enum { BLK_MAX_ROWS = 256 + 300 };

/* Big dims: fewer starts and counts (the scalar reference is the slow part,
 * under qemu most of all). */
static int blk_case_wanted(size_t dim, size_t first, size_t nr)
{
    if (dim < 768)
        return 1;
    return (first == 0 || first == 3 || first == 255) && (nr <= 5 || nr == 17 || nr == 300);
}

/* Rows first .. first + nr - 1 of a blocks layout, filled by mode; the rest
 * of their blocks random. Returns the blocks (at the guard), and the row-major
 * copy of the wanted rows in rm[nr * dim]. */
static const int8_t *blk_make(const guarded *g, size_t dim, size_t first, size_t nr, int mode,
                              int8_t *rm)
{
    const size_t bytes = (size_t)tr_ref_bytes(first + nr, (uint32_t)dim);
    int8_t *b = guard_tail(g, bytes);
    fill(b, bytes, 4);
    fill(rm, nr * dim, mode);
    for (size_t i = 0; i < nr; i++)
        for (size_t d = 0; d < dim; d++)
            b[tr_ref_offset((uint32_t)dim, first + i, (uint32_t)d)] = rm[i * dim + d];
    return b;
}

/* The scalar reference is the naive row-major dot on rows placed by
 * tr_ref_offset (so the layout, not only the variants, is checked), and
 * writes exactly n_rows outputs. */
static void test_dot_i8_blocks_scalar_is_row_major(void **state)
{
    guarded gb = guard_map((size_t)tr_ref_bytes(BLK_MAX_ROWS, TR_DIM_MAX)), gq = guard_map(TR_DIM_MAX);
    int8_t *rm = malloc((size_t)BLK_MAX_ROWS * TR_DIM_MAX);
    int32_t *got = malloc((BLK_MAX_ROWS + 1) * sizeof *got);
    assert_non_null(rm);
    assert_non_null(got);
    size_t checks = 0;
    for (int mode = 0; mode < 6; mode += 4) /* [-127, 127]; every int8 */
        for (size_t di = 0; di < sizeof blk_dims / sizeof *blk_dims; di++)
            for (size_t fi = 0; fi < sizeof blk_firsts / sizeof *blk_firsts; fi++)
                for (size_t ci = 0; ci < sizeof blk_counts / sizeof *blk_counts; ci++) {
                    const size_t dim = blk_dims[di], first = blk_firsts[fi], nr = blk_counts[ci];
                    if (!blk_case_wanted(dim, first, nr))
                        continue;
                    int8_t *q = guard_tail(&gq, dim);
                    fill(q, dim, mode);
                    const int8_t *b = blk_make(&gb, dim, first, nr, mode, rm);
                    got[nr] = 0x55555555;
                    tr_dot_i8_blocks_scalar(q, b, dim, first, nr, got);
                    for (size_t i = 0; i < nr; i++) {
                        int32_t want = 0;
                        for (size_t d = 0; d < dim; d++)
                            want += (int32_t)q[d] * rm[i * dim + d];
                        if (got[i] != want)
                            fail_msg("scalar blocks: dim %zu first %zu row %zu/%zu mode %d: %d != %d",
                                     dim, first, i, nr, mode, got[i], want);
                    }
                    assert_int_equal(got[nr], 0x55555555);
                    checks++;
                }
    assert_true(checks > 2 * 31 * 100);
    assert_ptr_equal(tr_kernels_scalar()->dot_i8_blocks, tr_dot_i8_blocks_scalar);
    free(rm);
    free(got);
    guard_unmap(&gb);
    guard_unmap(&gq);
}

/* Every variant equals the scalar reference bit for bit (values [-127, 127]
 * for all; -128 too for those flagged full_int8), at every start residue,
 * counts around the 4-row block and the 16-row pass, every dim step; and
 * writes no output past n_rows. */
static void test_dot_i8_blocks_equal_scalar(void **state)
{
    guarded gb = guard_map((size_t)tr_ref_bytes(BLK_MAX_ROWS, TR_DIM_MAX)), gq = guard_map(TR_DIM_MAX);
    int8_t *rm = malloc((size_t)BLK_MAX_ROWS * TR_DIM_MAX);
    int32_t *want = malloc((BLK_MAX_ROWS + 1) * sizeof *want);
    int32_t *got = malloc((BLK_MAX_ROWS + 1) * sizeof *got);
    assert_non_null(rm);
    assert_non_null(want);
    assert_non_null(got);
    size_t checks = 0, cases = 0, full = 0;
    for (size_t v = 0; v < n_variants; v++)
        full += variants[v]->full_int8 != 0;
    static const int modes[] = {0, 3, 4, 5};
    for (size_t mi = 0; mi < 4; mi++)
        for (size_t di = 0; di < sizeof blk_dims / sizeof *blk_dims; di++)
            for (size_t fi = 0; fi < sizeof blk_firsts / sizeof *blk_firsts; fi++)
                for (size_t ci = 0; ci < sizeof blk_counts / sizeof *blk_counts; ci++) {
                    const int mode = modes[mi];
                    const size_t dim = blk_dims[di], first = blk_firsts[fi], nr = blk_counts[ci];
                    if (!blk_case_wanted(dim, first, nr))
                        continue;
                    int8_t *q = guard_tail(&gq, dim);
                    fill(q, dim, mode);
                    const int8_t *b = blk_make(&gb, dim, first, nr, mode, rm);
                    tr_dot_i8_blocks_scalar(q, b, dim, first, nr, want);
                    cases += mode < 4;
                    for (size_t v = 0; v < n_variants; v++) {
                        if (mode >= 4 && !variants[v]->full_int8)
                            continue;
                        for (size_t i = 0; i <= nr; i++)
                            got[i] = 0x55555555;
                        variants[v]->dot_i8_blocks(q, b, dim, first, nr, got);
                        for (size_t i = 0; i < nr; i++)
                            if (got[i] != want[i])
                                fail_msg("%s blocks: dim %zu first %zu row %zu/%zu mode %d: %d != %d",
                                         variants[v]->name, dim, first, i, nr, mode, got[i], want[i]);
                        if (got[nr] != 0x55555555)
                            fail_msg("%s blocks: dim %zu first %zu n_rows %zu: wrote out[n_rows]",
                                     variants[v]->name, dim, first, nr);
                        checks++;
                    }
                }
    /* modes 0 and 3 for every variant, 4 and 5 for the full_int8 ones */
    assert_int_equal(checks, cases * n_variants + cases * full);
    print_message("dot_i8_blocks: %zu variant(s) x %zu cases\n", n_variants, cases / 2);

    /* The largest sums, at TR_DIM_MAX: (-128)(-128) D and (-128)(127) D
     * (full_int8 variants), 127 * 127 D and -127 * 127 D (all), rows 1, 2
     * of a block (the one-row and the partial-block paths) and a whole one. */
    const size_t dim = TR_DIM_MAX;
    int8_t *q = guard_tail(&gq, dim);
    for (int lo = 0; lo < 2; lo++) {
        const int8_t a = lo ? -128 : -127;
        const size_t bytes = (size_t)tr_ref_bytes(8, TR_DIM_MAX);
        int8_t *b = guard_tail(&gb, bytes);
        memset(q, (uint8_t)a, dim);
        memset(b, 0, bytes);
        for (size_t r = 0; r < 8; r++)
            for (size_t d = 0; d < dim; d++)
                b[tr_ref_offset(TR_DIM_MAX, r, (uint32_t)d)] = (int8_t)(r % 2 ? 127 : a);
        const int32_t big = a * a * (int32_t)dim, neg = a * 127 * (int32_t)dim;
        static const size_t fn[][2] = {{1, 1}, {1, 2}, {0, 8}, {2, 1}, {4, 4}};
        for (size_t k = 0; k < 5; k++) {
            tr_dot_i8_blocks_scalar(q, b, dim, fn[k][0], fn[k][1], want);
            for (size_t i = 0; i < fn[k][1]; i++)
                assert_int_equal(want[i], (fn[k][0] + i) % 2 ? neg : big);
            for (size_t v = 0; v < n_variants; v++) {
                if (lo && !variants[v]->full_int8)
                    continue;
                variants[v]->dot_i8_blocks(q, b, dim, fn[k][0], fn[k][1], got);
                for (size_t i = 0; i < fn[k][1]; i++)
                    if (got[i] != want[i])
                        fail_msg("%s blocks: extreme sums, first %zu row %zu: %d != %d",
                                 variants[v]->name, fn[k][0], i, got[i], want[i]);
            }
        }
    }
    free(rm);
    free(want);
    free(got);
    guard_unmap(&gb);
    guard_unmap(&gq);
}

/* The rerank's call: one row at a time, at every row of a set (every
 * residue, both ends), for every variant, against the scalar reference on
 * the whole set. */
static void test_dot_i8_blocks_single_rows(void **state)
{
    static const size_t dims[] = {5, 16, 33, 100, 768};
    enum { NR = 37 };
    guarded gb = guard_map((size_t)tr_ref_bytes(NR, 768)), gq = guard_map(768);
    int8_t *rm = malloc((size_t)NR * 768);
    assert_non_null(rm);
    int32_t want[NR], got[2];
    size_t checks = 0;
    for (size_t di = 0; di < 5; di++) {
        const size_t dim = dims[di];
        int8_t *q = guard_tail(&gq, dim);
        fill(q, dim, 0);
        const int8_t *b = blk_make(&gb, dim, 0, NR, 0, rm);
        tr_dot_i8_blocks_scalar(q, b, dim, 0, NR, want);
        for (size_t v = 0; v < n_variants; v++)
            for (size_t r = 0; r < NR; r++) {
                got[1] = 0x55555555;
                variants[v]->dot_i8_blocks(q, b, dim, r, 1, got);
                if (got[0] != want[r] || got[1] != 0x55555555)
                    fail_msg("%s blocks: one row %zu of %d, dim %zu: %d != %d", variants[v]->name,
                             r, NR, dim, got[0], want[r]);
                checks++;
            }
    }
    assert_int_equal(checks, 5 * n_variants * NR);
    free(rm);
    guard_unmap(&gb);
    guard_unmap(&gq);
}

/* SLEEF's vector expf behind the learned map's softmax: within 1e-6 of a
 * double reference, sums to 1, no overflow on large logits, any length. */
static void test_softmax(void **state)
{
    float x[37];
    for (uint32_t n = 1; n <= 37; n++) {
        double ref[37], mx = -1e300, sum = 0;
        for (uint32_t i = 0; i < n; i++) {
            x[i] = (float)((int)(rnd() % 2001) - 1000) / 100.0f + (i == 3 ? 500.0f : 0.0f);
            mx = x[i] > mx ? x[i] : mx;
        }
        for (uint32_t i = 0; i < n; i++)
            sum += (ref[i] = exp(x[i] - mx));
        tr_softmax(x, n);
        float total = 0;
        for (uint32_t i = 0; i < n; i++) {
            assert_true(fabs(x[i] - ref[i] / sum) < 1e-6);
            total += x[i];
        }
        assert_true(fabsf(total - 1.0f) < 1e-5f);
    }
}

static void test_dispatch(void **state)
{
    const tr_kernels *active = tr_kernels_active();
    assert_non_null(active);
    assert_string_equal(variants[0]->name, "scalar");
#ifndef TR_FORCE_SCALAR
    /* The best available one is chosen. */
    assert_ptr_equal(active, variants[n_variants - 1]);
#endif
    print_message("kernel variants on this CPU:");
    for (size_t v = 0; v < n_variants; v++)
        print_message(" %s", variants[v]->name);
    print_message(" (active: %s)\n", active->name);
}

int main(void)
{
    n_variants = tr_kernels_available(variants, 8);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_i8_rows_equal_scalar),
        cmocka_unit_test(test_dot_i8_rows_full_range),
        cmocka_unit_test(test_avx512_present_when_supported),
        cmocka_unit_test(test_i8mm_present_when_supported),
        cmocka_unit_test(test_and_popcount_equal_scalar),
        cmocka_unit_test(test_hamming_rows_equal_scalar),
        cmocka_unit_test(test_scaled_above_equal_scalar),
        cmocka_unit_test(test_knn_search_equals_full_sort),
        cmocka_unit_test(test_knn_search_identical_across_variants),
        cmocka_unit_test(test_prefilter_selects_nearest_codes),
        cmocka_unit_test(test_dot_i8_blocks_scalar_is_row_major),
        cmocka_unit_test(test_dot_i8_blocks_equal_scalar),
        cmocka_unit_test(test_dot_i8_blocks_single_rows),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
