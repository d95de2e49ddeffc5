/* make bench-layout: what an interleaved row layout would buy exact search,
 * and what it would cost the prefilter's rerank, before the pack format is
 * changed for it (issue 15; tests/bench/ANALYSIS.md, "Row layout probe").
 *
 * Row-major (the pack today): row r at r * stride, the shipped kernel
 * (tr_kernels_active()->dot_i8_rows) reduces each row's 64-byte lanes to one
 * sum. Tiled (a probe, not shipped): 16 rows per tile, the tile stores their
 * 4-byte groups side by side (byte 64g + 4p + b of tile t is row 16t + p,
 * column 4g + b), so one VNNI step scores 16 rows against a broadcast query
 * group and no reduction is left. A single row is then spread over D / 4
 * cache lines, so the prefilter's rerank of C scattered candidates pays for
 * whole tiles: measured here as C tiles of 16 rows.
 *
 * Synthetic int8 values (the kernels' cost does not depend on them); every
 * tiled dot is checked equal to the shipped kernel's. x86 with AVX-512 VNNI
 * only; elsewhere it says so and exits 0. Usage: bench_layout [REPS]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tr_kernels.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* Two tiles at a time share each broadcast query group: two independent
 * accumulator chains hide vpdpbusd's latency (four or eight measured no
 * better). Rows are signed, so they are flipped to unsigned (x ^ 0x80 =
 * x + 128) and 128 * sum(q) is taken off once. */
AVX512 static void dot_tiles(const int8_t *q, const int8_t *tiles, size_t groups, size_t n_rows,
                             int32_t *out)
{
    int32_t sum_q = 0;
    for (size_t d = 0; d < 4 * groups; d++)
        sum_q += q[d];
    const __m512i corr = _mm512_set1_epi32(128 * sum_q), flip = _mm512_set1_epi8((char)0x80);
    const size_t tile = 64 * groups, n_tiles = (n_rows + 15) / 16;
    int32_t qg[groups];
    memcpy(qg, q, sizeof qg);
    size_t t = 0;
    for (; t + 2 <= n_tiles; t += 2) {
        const int8_t *p = tiles + t * tile;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0;
        for (size_t g = 0; g < groups; g++) {
            const __m512i qb = _mm512_set1_epi32(qg[g]);
            _mm_prefetch((const char *)p + 64 * g + 4096, _MM_HINT_T0);
            _mm_prefetch((const char *)p + tile + 64 * g + 4096, _MM_HINT_T0);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(p + 64 * g), flip), qb);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_loadu_si512(p + tile + 64 * g), flip), qb);
        }
        const __mmask16 m1 = n_rows - 16 * (t + 1) >= 16 ? 0xffff : (__mmask16)((1u << (n_rows - 16 * (t + 1))) - 1);
        _mm512_storeu_si512(out + 16 * t, _mm512_sub_epi32(a0, corr));
        _mm512_mask_storeu_epi32(out + 16 * (t + 1), m1, _mm512_sub_epi32(a1, corr));
    }
    for (; t < n_tiles; t++) {
        const int8_t *p = tiles + t * tile;
        __m512i a = _mm512_setzero_si512();
        for (size_t g = 0; g < groups; g++)
            a = _mm512_dpbusd_epi32(a, _mm512_xor_si512(_mm512_loadu_si512(p + 64 * g), flip),
                                    _mm512_set1_epi32(qg[g]));
        const size_t left = n_rows - 16 * t;
        _mm512_mask_storeu_epi32(out + 16 * t, left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1),
                                 _mm512_sub_epi32(a, corr));
    }
}

/* Blocks of 4 rows (the middle way): the rows keep their 16-padded stride,
 * and each block of 4 stores chunk c (16 bytes) of row p at 64c + 16p, so
 * one 64-byte step holds 4 rows, its 16 lanes reduce in 2 levels instead of
 * 4, and D = 100 (stride 112) needs 7 full steps per block, no masked one.
 * A single row spans D / 16 cache lines (4x row-major's). */
AVX512 static void dot_blocks(const int8_t *q, const int8_t *blocks, size_t stride, size_t n_rows,
                              int32_t *out)
{
    int32_t sum_q = 0;
    for (size_t d = 0; d < stride; d++)
        sum_q += q[d];
    const __m512i corr = _mm512_set1_epi32(128 * sum_q), flip = _mm512_set1_epi8((char)0x80);
    /* u's 128-bit part k holds row k of blocks 0..3: into row order. */
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const size_t block = 4 * stride, steps = stride / 16, n_blocks = (n_rows + 3) / 4;
    size_t b = 0;
    for (; b + 4 <= n_blocks; b += 4) {
        const int8_t *p = blocks + b * block;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t c = 0; c < steps; c++) {
            const __m512i qv = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(q + 16 * c)));
            _mm_prefetch((const char *)p + 64 * c + 8192, _MM_HINT_T0);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(p + 64 * c), flip), qv);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_loadu_si512(p + block + 64 * c), flip), qv);
            a2 = _mm512_dpbusd_epi32(a2, _mm512_xor_si512(_mm512_loadu_si512(p + 2 * block + 64 * c), flip), qv);
            a3 = _mm512_dpbusd_epi32(a3, _mm512_xor_si512(_mm512_loadu_si512(p + 3 * block + 64 * c), flip), qv);
        }
        const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
        const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
        const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
        const size_t left = n_rows - 4 * b;
        _mm512_mask_storeu_epi32(out + 4 * b, left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1),
                                 _mm512_sub_epi32(_mm512_permutexvar_epi32(order, u), corr));
    }
    for (; b < n_blocks; b++) { /* the last 1-3 blocks, one at a time */
        const int8_t *p = blocks + b * block;
        __m512i a = _mm512_setzero_si512();
        for (size_t c = 0; c < steps; c++)
            a = _mm512_dpbusd_epi32(a, _mm512_xor_si512(_mm512_loadu_si512(p + 64 * c), flip),
                                    _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(q + 16 * c))));
        int32_t lanes[16];
        _mm512_storeu_si512(lanes, a);
        for (size_t r = 0; r < 4 && 4 * b + r < n_rows; r++)
            out[4 * b + r] = lanes[4 * r] + lanes[4 * r + 1] + lanes[4 * r + 2] + lanes[4 * r + 3] - 128 * sum_q;
    }
}

/* The memory floor: every byte read once, nothing computed on it. */
AVX512 static int64_t read_all(const int8_t *p, size_t bytes)
{
    __m512i a = _mm512_setzero_si512(), b = a;
    for (size_t o = 0; o + 128 <= bytes; o += 128) {
        a = _mm512_add_epi64(a, _mm512_loadu_si512(p + o));
        b = _mm512_add_epi64(b, _mm512_loadu_si512(p + o + 64));
    }
    return _mm512_reduce_add_epi64(_mm512_add_epi64(a, b));
}

typedef struct set {
    size_t n, dim, stride, groups, n_tiles;
    int8_t *rows, *tiles, *blocks, *q;
    int32_t *dots, *out; /* the shipped kernel's dots; a layout's */
    uint32_t *cand; /* rerank candidates, scattered */
    size_t n_cand;
} set;

static int make_set(set *s, size_t n, size_t dim, size_t n_cand, uint64_t seed)
{
    s->n = n, s->dim = dim, s->stride = (dim + 15) & ~(size_t)15, s->groups = (dim + 3) / 4;
    s->n_tiles = (n + 15) / 16, s->n_cand = n_cand;
    s->rows = aligned_alloc(64, n * s->stride + 8192);
    s->tiles = aligned_alloc(64, s->n_tiles * 64 * s->groups + 8192);
    s->blocks = aligned_alloc(64, (n + 16) * s->stride + 8192);
    s->q = aligned_alloc(64, s->stride + 64);
    s->dots = malloc((n + 16) * sizeof *s->dots), s->out = malloc((n + 16) * sizeof *s->out);
    s->cand = malloc(n_cand * sizeof *s->cand);
    if (!s->rows || !s->tiles || !s->blocks || !s->q || !s->dots || !s->out || !s->cand)
        return -1;
    memset(s->blocks, 0, (n + 16) * s->stride + 8192);
    memset(s->rows, 0, n * s->stride + 8192);
    memset(s->tiles, 0, s->n_tiles * 64 * s->groups + 8192);
    memset(s->q, 0, s->stride + 64);
    for (size_t i = 0; i <= n; i++)
        for (size_t d = 0; d < dim; d++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const int8_t v = (int8_t)((int)(seed >> 33) % 255 - 127);
            if (i == n) {
                s->q[d] = v;
                continue;
            }
            s->rows[i * s->stride + d] = v;
            s->tiles[(i / 16) * 64 * s->groups + (d / 4) * 64 + (i % 16) * 4 + d % 4] = v;
            s->blocks[(i / 4) * 4 * s->stride + (d / 16) * 64 + (i % 4) * 16 + d % 16] = v;
        }
    for (size_t c = 0; c < n_cand; c++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        s->cand[c] = (uint32_t)((seed >> 33) % n);
    }
    return 0;
}

static void free_set(set *s)
{
    free(s->rows), free(s->tiles), free(s->blocks), free(s->q), free(s->dots), free(s->out);
    free(s->cand);
}

static volatile int64_t sink;

/* One layout of a set: its bytes, a scan of every row, and the rerank's
 * score of one row (through whatever unit the layout reads). */
typedef struct layout {
    const int8_t *bytes;
    size_t size;
    void (*scan)(const tr_kernels *k, const set *s, int32_t *out);
    int32_t (*one)(const tr_kernels *k, const set *s, uint32_t r);
} layout;

static void scan_rows(const tr_kernels *k, const set *s, int32_t *out)
{
    k->dot_i8_rows(s->q, s->rows, s->stride, s->n, s->dim, out);
}
static void scan_tiles(const tr_kernels *k, const set *s, int32_t *out)
{
    dot_tiles(s->q, s->tiles, s->groups, s->n, out);
}
static void scan_blocks(const tr_kernels *k, const set *s, int32_t *out)
{
    dot_blocks(s->q, s->blocks, s->stride, s->n, out);
}
static int32_t one_row(const tr_kernels *k, const set *s, uint32_t r)
{
    int32_t d;
    k->dot_i8_rows(s->q, s->rows + (size_t)r * s->stride, s->stride, 1, s->dim, &d);
    return d;
}
static int32_t one_tile(const tr_kernels *k, const set *s, uint32_t r)
{
    int32_t d[16];
    dot_tiles(s->q, s->tiles + (size_t)(r / 16) * 64 * s->groups, s->groups, 16, d);
    return d[r % 16];
}
static int32_t one_block(const tr_kernels *k, const set *s, uint32_t r)
{
    int32_t d[4];
    dot_blocks(s->q, s->blocks + (size_t)(r / 4) * 4 * s->stride, s->stride, 4, d);
    return d[r % 4];
}

typedef struct timing {
    double floor, scan, rerank;
} timing;

/* Best of reps: the floor (each read twice, the second as a search finds
 * the cache), the scan, and the rerank of the candidates. Every dot must
 * equal the shipped kernel's (s->dots). */
static int time_layout(const tr_kernels *k, const set *s, const layout *l, int reps, int32_t *out,
                       timing *t)
{
    *t = (timing){1e9, 1e9, 1e9};
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        sink += read_all(l->bytes, l->size);
        const double t1 = now_s();
        sink += read_all(l->bytes, l->size);
        const double t2 = now_s();
        l->scan(k, s, out);
        const double t3 = now_s();
        int32_t check = 0;
        for (size_t c = 0; c < s->n_cand; c++)
            check |= l->one(k, s, s->cand[c]) ^ s->dots[s->cand[c]];
        const double t4 = now_s();
        const double fl = t1 - t0 < t2 - t1 ? t1 - t0 : t2 - t1;
        t->floor = fl < t->floor ? fl : t->floor;
        t->scan = t3 - t2 < t->scan ? t3 - t2 : t->scan;
        t->rerank = t4 - t3 < t->rerank ? t4 - t3 : t->rerank;
        if (check || memcmp(out, s->dots, s->n * sizeof *out) != 0)
            return -1;
    }
    return 0;
}

static int run(const tr_kernels *k, set *s, int reps)
{
    const layout ls[3] = {
        {s->rows, s->n * s->stride, scan_rows, one_row},
        {s->tiles, s->n_tiles * 64 * s->groups, scan_tiles, one_tile},
        {s->blocks, (s->n + 3) / 4 * 4 * s->stride, scan_blocks, one_block},
    };
    timing t[3];
    k->dot_i8_rows(s->q, s->rows, s->stride, s->n, s->dim, s->dots); /* the reference */
    for (int i = 0; i < 3; i++)
        if (time_layout(k, s, &ls[i], reps, s->out, &t[i]) != 0) {
            fprintf(stderr, "bench_layout: layout %d's dots differ from %s's at N=%zu D=%zu\n", i,
                    k->name, s->n, s->dim);
            return -1;
        }
    printf("| %zu x %zu |", s->n, s->dim);
    for (int i = 0; i < 3; i++)
        printf(" %.4f [%.4f] %.2fx |", t[i].scan * 1e3, t[i].floor * 1e3, t[i].scan / t[i].floor);
    printf(" %zu: %.4f / %.4f / %.4f |\n", s->n_cand, t[0].rerank * 1e3, t[1].rerank * 1e3,
           t[2].rerank * 1e3);
    return 0;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 50;
    const tr_kernels *k = tr_kernels_active();
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw") || reps < 1) {
        printf("bench_layout: needs AVX-512 VNNI (and REPS >= 1); nothing measured\n");
        return 0;
    }
    printf("Kernel-only time, ms, best of %d (N = 100k: a fifth); [the read floor of the same bytes]; "
           "row-major = %s's dot_i8_rows (shipped); tiles = 16 rows x 4-byte groups, blocks = 4 rows x "
           "16-byte chunks (probes); rerank = C scattered rows, each through its layout's unit\n\n",
           reps, k->name);
    printf("| N x D | row-major [floor] | tiles [floor] | blocks [floor] | rerank C: row-major / tiles / blocks |\n");
    printf("|---|---|---|---|---|\n");
    static const size_t shapes[][3] = {{12025, 100, 400}, {100000, 100, 2000}, {100000, 768, 2000}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        set s;
        int rc = make_set(&s, shapes[i][0], shapes[i][1], shapes[i][2], 42 + i);
        if (rc == 0)
            rc = run(k, &s, shapes[i][0] > 50000 ? (reps + 4) / 5 : reps);
        free_set(&s);
        if (rc)
            return rc == -1 ? 1 : 2;
    }
    return 0;
}
#else
int main(void)
{
    printf("bench_layout: x86 only (the probe's tiled kernel is AVX-512 VNNI); nothing measured\n");
    return 0;
}
#endif
