#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"
#include "trh_rand.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float sim;
    uint32_t idx;
} cand;

/* The neighbour order: higher similarity first, then the lower index. */
static int by_sim(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->sim != y->sim)
        return x->sim > y->sim ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* x ranks after y in by_sim order. */
static int worse(cand x, cand y) { return x.sim != y.sim ? x.sim < y.sim : x.idx > y.idx; }

/* A bounded heap keeping the `cap` best candidates; h[0] is the worst kept. */
static void heap_push(cand *h, uint32_t *len, uint32_t cap, cand c)
{
    uint32_t i;
    if (*len < cap) {
        i = (*len)++;
        while (i && worse(c, h[(i - 1) / 2])) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = c;
        return;
    }
    if (!worse(h[0], c))
        return;
    i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        cand wc = c;
        if (l < cap && worse(h[l], wc))
            w = l, wc = h[l];
        if (r < cap && worse(h[r], wc))
            w = r;
        if (w == i)
            break;
        h[i] = h[w];
        i = w;
    }
    h[i] = c;
}

/* Queries per batch and reference rows per tile: a tile (TILE x dim int8)
 * stays in cache while every query of the batch is scored against it, so
 * the references stream from memory once per batch, not once per query.
 * Tile and queries are copied zero-padded to a multiple of 32 bytes: the
 * kernels then run no scalar tail (D = 100: 4 of every 100 products), and
 * the integer dot products are the same. */
#define BATCH 64u
#define TILE 2048u
#define CHUNK 64u

int trh_task_fit(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc)
{
    return trh_task_fit_cb(kern, refs, task_of, n_tasks, scores, n_models, k, k_dist,
                          max_queries_per_task, u, acc, NULL, NULL);
}

int trh_task_fit_cb(const tr_kernels *kern, const tr_refs *refs, const uint32_t *task_of,
                   uint32_t n_tasks, const float *scores, uint32_t n_models, uint32_t k,
                   uint32_t k_dist, uint32_t max_queries_per_task, float *u, float *acc,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    const uint32_t n = refs->n, cap = k > k_dist ? k : k_dist;
    const size_t pd = ((size_t)refs->dim + 31) & ~(size_t)31;
    int32_t *dots = malloc(TILE * sizeof *dots);
    int8_t *ptile = calloc((size_t)TILE * pd, 1), *pq = calloc((size_t)BATCH * pd, 1);
    float *sims = malloc(TILE * sizeof *sims);
    cand *heap = malloc((size_t)BATCH * (cap ? cap : 1) * sizeof *heap);
    uint32_t *hlen = malloc(BATCH * sizeof *hlen), *qi = malloc((size_t)n * sizeof *qi);
    size_t *left = calloc(n_tasks, sizeof *left), *need = calloc(n_tasks, sizeof *need);
    double *usum = calloc(n_tasks, sizeof *usum), *hit = calloc((size_t)n_tasks * n_models, sizeof *hit);
    size_t *ucnt = calloc(n_tasks, sizeof *ucnt), *cnt = calloc((size_t)n_tasks * n_models, sizeof *cnt);
    int ret = -1;
    if (!dots || !ptile || !pq || !sims || !heap || !hlen || (n && !qi) || !left || !need || !usum || !hit || !ucnt || !cnt)
        goto out;
    /* The queries: every reference, or per task a uniform sample of
     * max_queries_per_task drawn in one pass with a fixed seed (Knuth's
     * selection sampling: ascending indices, the same on every machine). */
    for (uint32_t i = 0; i < n; i++)
        left[task_of[i]]++;
    for (uint32_t t = 0; t < n_tasks; t++)
        need[t] = max_queries_per_task && left[t] > max_queries_per_task ? max_queries_per_task
                                                                         : left[t];
    uint32_t nq = 0;
    uint64_t seed = 0x5133u;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = task_of[i];
        if (need[t] == left[t]) {
            if (need[t])
                qi[nq++] = i, need[t]--;
        } else {
            double r = trh_unit_double(&seed);
            if (r * (double)left[t] < (double)need[t])
                qi[nq++] = i, need[t]--;
        }
        left[t]--;
    }
    for (uint32_t b0 = 0; b0 < nq; b0 += BATCH) {
        const uint32_t nb = nq - b0 < BATCH ? nq - b0 : BATCH;
        memset(hlen, 0, nb * sizeof *hlen);
        for (uint32_t b = 0; b < nb; b++)
            memcpy(pq + b * pd, refs->rows + (size_t)qi[b0 + b] * refs->stride, refs->dim);
        for (uint32_t j0 = 0; j0 < n && cap; j0 += TILE) {
            const uint32_t nt = n - j0 < TILE ? n - j0 : TILE;
            for (uint32_t j = 0; j < nt; j++)
                memcpy(ptile + j * pd, refs->rows + (size_t)(j0 + j) * refs->stride, refs->dim);
            for (uint32_t b = 0; b < nb; b++) {
                const uint32_t i = qi[b0 + b];
                kern->dot_i8_rows(pq + b * pd, ptile, pd, nt, pd, dots);
                cand *h = heap + (size_t)b * cap;
                const float *inv = refs->inv_norm + j0;
                for (uint32_t j = 0; j < nt; j++) /* vectorizes */
                    sims[j] = (float)dots[j] * inv[j];
                /* Once the heap is full, a candidate must beat its worst:
                 * a higher similarity (an equal one has a higher index).
                 * Blocks of CHUNK with none above it are skipped by one
                 * vectorized test; the rest go through the exact one. */
                for (uint32_t c0 = 0; c0 < nt; c0 += CHUNK) {
                    const uint32_t ce = nt - c0 < CHUNK ? nt - c0 : CHUNK;
                    if (hlen[b] == cap && ce == CHUNK) {
                        const float thr = h[0].sim;
                        int any = 0;
                        for (uint32_t j = 0; j < CHUNK; j++)
                            any |= sims[c0 + j] > thr;
                        if (!any)
                            continue;
                    }
                    for (uint32_t j = c0; j < c0 + ce; j++)
                        if ((hlen[b] < cap || sims[j] > h[0].sim) && task_of[j0 + j] != task_of[i])
                            heap_push(h, &hlen[b], cap, (cand){sims[j], j0 + j});
                }
            }
        }
        /* In query order, as a full sort of every candidate would give. */
        for (uint32_t b = 0; b < nb; b++) {
            const uint32_t i = qi[b0 + b], nc = hlen[b];
            cand *c = heap + (size_t)b * cap;
            if (nc == 0)
                continue;
            qsort(c, nc, sizeof *c, by_sim);
            float inv_q = refs->inv_norm[i];
            uint32_t nd = nc < k_dist ? nc : k_dist, nk = nc < k ? nc : k;
            double ui = 0;
            for (uint32_t j = 0; j < nd; j++)
                ui += 1.0 - (double)c[j].sim * inv_q;
            usum[task_of[i]] += ui / nd;
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
        if (progress)
            progress(ctx, b0 + nb, nq);
    }
    for (uint32_t t = 0; t < n_tasks; t++) {
        u[t] = ucnt[t] ? (float)(usum[t] / (double)ucnt[t]) : 1.0f;
        for (uint32_t m = 0; m < n_models; m++) {
            size_t j = (size_t)t * n_models + m;
            acc[j] = cnt[j] ? (float)(hit[j] / (double)cnt[j]) : 0.5f;
        }
    }
    ret = 0;
out:
    free(dots), free(ptile), free(pq), free(sims), free(heap), free(hlen), free(qi), free(left), free(need);
    free(usum), free(hit), free(ucnt), free(cnt);
    return ret;
}
