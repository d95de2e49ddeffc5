/* The hot loop of kNN routing: score every reference row against the query
 * in blocks (one kernel call per block), keep the k best in a min-heap; once
 * the heap is full, a second kernel picks the few rows of a block that beat
 * its worst entry, and only those reach the heap. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_knn.h"

#include <math.h>

#include "tr_format.h"

/* a ranks below b: lower sim, or equal sim and higher index. */
static int worse(const tr_neighbor *a, const tr_neighbor *b)
{
    return a->sim < b->sim || (a->sim == b->sim && a->idx > b->idx);
}

/* Put x at h[i] and restore the heap below it. Bottom-up (Floyd): walk
 * down the path of worse children to a leaf, moving each up one level (one
 * comparison per level, not two), then climb back to where x belongs. An
 * entry replacing the root barely beats the worst kept, so it belongs near
 * the leaves and the climb is short. */
static void sift_down_with(tr_neighbor *h, uint32_t n, uint32_t i, tr_neighbor x)
{
    const uint32_t top = i;
    for (uint32_t l; (l = 2 * i + 1) < n; ) {
        uint32_t c = l + 1 < n && worse(&h[l + 1], &h[l]) ? l + 1 : l;
        h[i] = h[c];
        i = c;
    }
    while (i > top) {
        uint32_t p = (i - 1) / 2;
        if (!worse(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static void sift_down(tr_neighbor *h, uint32_t n, uint32_t i)
{
    sift_down_with(h, n, i, h[i]);
}

static void sift_up(tr_neighbor *h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!worse(&h[i], &h[p]))
            return;
        tr_neighbor t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* A bounded selection: keeps the k best seen, never sorts the candidates. */
typedef struct topk {
    tr_neighbor *h; /* min-heap on "worse": h[0] is the worst kept */
    uint32_t n, k;
} topk;

static inline void topk_push(topk *t, tr_neighbor c)
{
    if (t->n < t->k) {
        t->h[t->n] = c;
        sift_up(t->h, t->n++);
    } else if (worse(&t->h[0], &c)) {
        sift_down_with(t->h, t->n, 0, c);
    }
}

/* Heap sort in place, best first; returns the count. */
static uint32_t topk_finish(topk *t)
{
    for (uint32_t n = t->n; n > 1; n--) {
        tr_neighbor x = t->h[0];
        t->h[0] = t->h[n - 1];
        t->h[n - 1] = x;
        sift_down(t->h, n - 1, 0);
    }
    return t->n;
}

uint32_t tr_knn_search(const tr_kernels *kern, const tr_refs *refs,
                       const int8_t *q, uint32_t k, int32_t *dots,
                       tr_neighbor *out)
{
    topk t = {out, 0, k < refs->n ? k : refs->n};
    if (t.k == 0)
        return 0;
    for (uint32_t base = 0; base < refs->n; base += TR_KNN_BLOCK) {
        uint32_t nb = refs->n - base < TR_KNN_BLOCK ? refs->n - base : TR_KNN_BLOCK;
        const float *inv = refs->inv_norm + base;
        kern->dot_i8_blocks(q, refs->rows, refs->dim, base, nb, dots);
        if (t.n < t.k) {
            for (uint32_t j = 0; j < nb; j++)
                topk_push(&t, (tr_neighbor){(float)dots[j] * inv[j], base + j});
            continue;
        }
        /* Only rows above the worst kept can enter: rows come in index
         * order, so a tie with it loses. The heap's floor rises during the
         * block, so topk_push still checks each one against the current. */
        uint64_t above[TR_KNN_BLOCK / 64];
        kern->scaled_above(dots, inv, nb, t.h[0].sim, above);
        for (uint32_t w = 0; w * 64 < nb; w++)
            for (uint64_t m = above[w]; m; m &= m - 1) {
                uint32_t j = w * 64 + (uint32_t)__builtin_ctzll(m);
                topk_push(&t, (tr_neighbor){(float)dots[j] * inv[j], base + j});
            }
    }
    return topk_finish(&t);
}

void tr_knn_sign_code(const int8_t *q, uint32_t dim, uint64_t *code, uint32_t words)
{
    for (uint32_t w = 0; w < words; w++)
        code[w] = 0;
    for (uint32_t d = 0; d < dim; d++)
        if (q[d] > 0)
            code[d >> 6] |= 1ull << (d & 63);
}

/* Counting selection of the prefilter's candidates. Hamming distances are
 * small integers (0 .. dim), so the c smallest are found by a histogram, not
 * a heap over every row: one pass counts the distances into TR_HAM_BINS
 * bins (width 1 for D < 127, 2^sh above: D = 768 has width 8), the bin
 * where the running count reaches c is the edge, and a second pass keeps
 * every row below the edge bin and, through a heap of the few still
 * needed, the best of the edge bin's rows by (distance, index). That is
 * exactly the set a heap over all rows keeps: the c best by (distance,
 * index), ties to the lower index. Two passes over the codes for any D
 * (an earlier exact-bins refinement pass made it three at D = 768).
 * The arena's ham scratch (TR_KNN_BLOCK u32) holds the bins in its first
 * half and a block of distances in the second; distances are recomputed in
 * the second pass rather than stored (n of them would not fit the arena). */
#define TR_HAM_BINS 128u
#define TR_HAM_ROWS (TR_KNN_BLOCK - TR_HAM_BINS)
_Static_assert(TR_KNN_BLOCK >= 2 * TR_HAM_BINS, "ham scratch holds bins and a block");

/* Histogram of the distances >= lo at bin width 2^sh (the last bin open);
 * returns how many are below lo. */
static uint32_t ham_histogram(const tr_kernels *kern, const tr_codes *codes, uint32_t n,
                              const uint64_t *qcode, uint32_t *ham, uint32_t lo, uint32_t sh)
{
    uint32_t *bins = ham, *dist = ham + TR_HAM_BINS, below = 0;
    for (uint32_t b = 0; b < TR_HAM_BINS; b++)
        bins[b] = 0;
    for (uint32_t base = 0; base < n; base += TR_HAM_ROWS) {
        uint32_t nb = n - base < TR_HAM_ROWS ? n - base : TR_HAM_ROWS;
        kern->hamming_rows(qcode, codes->bits + (size_t)base * codes->words, codes->words, nb,
                           dist);
        for (uint32_t j = 0; j < nb; j++) {
            uint32_t x = dist[j];
            if (x < lo) {
                below++;
                continue;
            }
            uint32_t b = (x - lo) >> sh;
            bins[b < TR_HAM_BINS - 1 ? b : TR_HAM_BINS - 1]++;
        }
    }
    return below;
}

uint32_t tr_knn_search_prefilter(const tr_kernels *kern, const tr_refs *refs,
                                 const tr_codes *codes, const int8_t *q,
                                 uint32_t k, uint32_t c, uint64_t *qcode,
                                 uint32_t *ham, tr_neighbor *cand,
                                 tr_neighbor *out)
{
    /* One snapshot of the view: every pass below must see the same rows
     * (the collect pass relies on the histogram's counts), and a caller
     * that swaps the view under a route (tests/test_threads.c's race) must
     * at worst get a wrong answer, never a write past cand. */
    const tr_refs rf = *refs;
    const uint32_t n = rf.n, words = codes->words, nc = c < n ? c : n;
    const uint64_t *bits = codes->bits;
    const tr_codes cd = {words, bits};
    if (nc == 0 || k == 0)
        return 0;
    uint32_t m = 0;
    if (nc == n) {
        for (uint32_t i = 0; i < n; i++) /* every row: no distances needed */
            cand[m++] = (tr_neighbor){0.0f, i};
    } else {
        tr_knn_sign_code(q, rf.dim, qcode, words);
        /* Bins of width 2^sh over 0..dim; distances past dim come only
         * from nonzero padding bits and land in the open last bin. */
        uint32_t sh = 0;
        while ((rf.dim >> sh) >= TR_HAM_BINS - 1)
            sh++;
        uint32_t cum = ham_histogram(kern, &cd, n, qcode, ham, 0, sh), b = 0;
        while (b < TR_HAM_BINS - 1 && cum + ham[b] < nc) /* the bins hold n >= nc */
            cum += ham[b++];
        /* cum rows are below the edge bin [lo, hi), all taken; of the edge
         * bin's rows the nc - cum best by (distance, index) are kept in a
         * small heap behind them. With width-1 bins (D < 127) the edge
         * rows tie, and the heap keeps the first by index without a sift. */
        const uint32_t lo = b << sh, hi = b == TR_HAM_BINS - 1 ? UINT32_MAX : lo + (1u << sh);
        topk edge = {cand + cum, 0, nc - cum};
        uint32_t *dist = ham + TR_HAM_BINS;
        for (uint32_t base = 0; base < n; base += TR_HAM_ROWS) {
            uint32_t nb = n - base < TR_HAM_ROWS ? n - base : TR_HAM_ROWS;
            kern->hamming_rows(qcode, bits + (size_t)base * words, words, nb, dist);
            for (uint32_t j = 0; j < nb; j++) {
                uint32_t x = dist[j];
                if (x < lo) {
                    if (m < cum) /* always, unless the view changed */
                        cand[m++] = (tr_neighbor){-(float)x, base + j};
                } else if (x < hi) {
                    topk_push(&edge, (tr_neighbor){-(float)x, base + j});
                }
            }
        }
        if (m < cum) /* a view swapped under the call: keep what is whole */
            edge.n = 0;
        else
            m += edge.n;
    }
    topk t = {out, 0, k < m ? k : m};
    for (uint32_t i = 0; i < m; i++) {
        uint32_t r = cand[i].idx;
        int32_t dot;
        kern->dot_i8_blocks(q, rf.rows, rf.dim, r, 1, &dot);
        topk_push(&t, (tr_neighbor){(float)dot * rf.inv_norm[r], r});
    }
    return topk_finish(&t);
}

static int bit(const uint64_t *set, uint32_t i)
{
    return (int)(set[i >> 6] >> (i & 63) & 1u);
}

/* A duplicate of the query lands at float32 distance ~1e-7, not 0: below
 * this it counts as an exact match. */
#define TR_EXACT_DISTANCE 1e-6f

/* Weight of each neighbour into w[]; all 1 when uniform. */
static void weights(const tr_neighbor *nb, uint32_t k, int weighted, float inv_qnorm,
                    float *w)
{
    int exact = 0;
    for (uint32_t j = 0; j < k; j++) {
        float d = 1.0f - nb[j].sim * inv_qnorm;
        exact |= d <= TR_EXACT_DISTANCE;
        w[j] = weighted && d > TR_EXACT_DISTANCE ? 1.0f / d : 1.0f;
    }
    if (weighted && exact)
        for (uint32_t j = 0; j < k; j++)
            w[j] = 1.0f - nb[j].sim * inv_qnorm <= TR_EXACT_DISTANCE ? 1.0f : 0.0f;
}

void tr_knn_predict_ext(const tr_labels *lab, const tr_neighbor *nb, uint32_t k, int weighted,
                        float inv_qnorm, float a, const float *ext_hits, const float *ext_known,
                        float *predicted, float *pack_share, float *pack_only)
{
    float w[TR_K_MAX];
    weights(nb, k, weighted, inv_qnorm, w);
    if (!lab->priors)
        a = 0.0f;
    float aw = a; /* a in units of the mean weight */
    if (weighted && a > 0.0f && k > 0) {
        float ws = 0.0f;
        for (uint32_t j = 0; j < k; j++)
            ws += w[j];
        aw = a * (ws / (float)k);
    }
    for (uint32_t m = 0; m < lab->n_models; m++) {
        const uint64_t *cor = lab->correct + (size_t)m * lab->bit_words;
        const uint64_t *val = lab->valid ? lab->valid + (size_t)m * lab->bit_words : NULL;
        const uint8_t *sc = lab->scores ? lab->scores + (size_t)m * lab->score_stride : NULL;
        /* Without priors a is 0, and a 0 (not NaN) keeps the sums clean. */
        const float prior =
            lab->priors ? tr_ldf32(lab->priors + (size_t)m * lab->prior_stride) : 0.0f;
        const float none = lab->priors ? prior : NAN;
        if (pack_share)
            pack_share[m] = 1.0f;
        if (!weighted) {
            /* Integer sums: exact, whatever the order. */
            uint32_t known = 0, sum = 0; /* hits, or score units of 1/255 */
            for (uint32_t j = 0; j < k; j++) {
                uint32_t i = nb[j].idx;
                if (val && !bit(val, i))
                    continue;
                known++;
                sum += sc ? sc[i] : (uint32_t)bit(cor, i);
            }
            /* With a = 0 these are the plain means' very operations. */
            const float own = known == 0 ? none
                              : sc ? ((float)sum + a * 255.0f * prior) /
                                         (255.0f * ((float)known + a))
                                   : ((float)sum + a * prior) / ((float)known + a);
            /* Extra (local) evidence: its own expression, so that a model
             * without any keeps the pack-only operations bit for bit. */
            if (ext_known && ext_known[m] > 0.0f) {
                const float hits = sc ? (float)sum / 255.0f : (float)sum;
                const float ek = ext_known[m];
                predicted[m] = (hits + a * prior + ext_hits[m]) / ((float)known + a + ek);
                if (pack_share)
                    pack_share[m] = ((float)known + a) / ((float)known + a + ek);
            } else {
                predicted[m] = own;
            }
            if (pack_only)
                pack_only[m] = own;
            continue;
        }
        float wsum = 0.0f, acc = 0.0f;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t i = nb[j].idx;
            if (val && !bit(val, i))
                continue;
            wsum += w[j];
            acc += w[j] * (sc ? (float)sc[i] / 255.0f : (float)bit(cor, i));
        }
        const float own = wsum > 0.0f ? (acc + aw * prior) / (wsum + aw) : none;
        if (ext_known && ext_known[m] > 0.0f) {
            /* One extra unit counts as a neighbour of the mean weight, as a. */
            float mw = 1.0f;
            if (k > 0) {
                float ws = 0.0f;
                for (uint32_t j = 0; j < k; j++)
                    ws += w[j];
                mw = ws / (float)k;
            }
            const float ek = ext_known[m];
            predicted[m] = (acc + aw * prior + mw * ext_hits[m]) / (wsum + aw + mw * ek);
            if (pack_share)
                pack_share[m] = (wsum + aw) / (wsum + aw + mw * ek);
        } else {
            predicted[m] = own;
        }
        if (pack_only)
            pack_only[m] = own;
    }
}

void tr_knn_predict(const tr_labels *lab, const tr_neighbor *nb, uint32_t k,
                    int weighted, float inv_qnorm, float a, float *predicted)
{
    tr_knn_predict_ext(lab, nb, k, weighted, inv_qnorm, a, NULL, NULL, predicted, NULL, NULL);
}

/* int8 rows the kernels read: every value in [-127, 127] (the x86 kernels'
 * sign trick and the scalar one disagree on -128, so a pack holding it
 * would route differently per CPU), and the padding past dim zero. One
 * pass over the bytes: linear in the section size. */
int tr_i8_rows_ok(const int8_t *rows, uint64_t n_rows, uint32_t dim, uint32_t stride)
{
    for (uint64_t i = 0; i < n_rows; i++) {
        const int8_t *r = rows + i * stride;
        for (uint32_t d = 0; d < dim; d++)
            if (r[d] == -128)
                return 0;
        for (uint32_t d = dim; d < stride; d++)
            if (r[d] != 0)
                return 0;
    }
    return 1;
}

/* The same over the blocks layout, in one linear pass over its bytes:
 * the offset's block, chunk and lane say which row and value it holds. */
int tr_i8_blocks_ok(const int8_t *blocks, uint64_t n_rows, uint32_t dim)
{
    const uint64_t bytes = tr_ref_bytes(n_rows, dim);
    const uint32_t stride = tr_ref_stride(dim);
    for (uint64_t o = 0; o < bytes; o += TR_REF_CHUNK) {
        const uint64_t in_block = o % (TR_REF_BLOCK_ROWS * stride);
        const uint64_t r = o / (TR_REF_BLOCK_ROWS * stride) * TR_REF_BLOCK_ROWS +
                           in_block % (TR_REF_BLOCK_ROWS * TR_REF_CHUNK) / TR_REF_CHUNK;
        const uint32_t d0 =
            (uint32_t)(in_block / (TR_REF_BLOCK_ROWS * TR_REF_CHUNK)) * TR_REF_CHUNK;
        for (uint32_t b = 0; b < TR_REF_CHUNK; b++) {
            const int8_t v = blocks[o + b];
            if (r < n_rows && d0 + b < dim ? v == -128 : v != 0)
                return 0;
        }
    }
    return 1;
}

void tr_refs_put_rows(int8_t *dst, const int8_t *src, size_t src_stride, uint32_t n,
                      uint32_t dim)
{
    const uint64_t bytes = tr_ref_bytes(n, dim);
    for (uint64_t o = 0; o < bytes; o++)
        dst[o] = 0;
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t d = 0; d < dim; d++)
            dst[tr_ref_offset(dim, r, d)] = src[(size_t)r * src_stride + d];
}

void tr_refs_get_row(const tr_refs *refs, uint32_t r, int8_t *out)
{
    for (uint32_t d = 0; d < refs->dim; d += TR_REF_CHUNK) {
        const int8_t *chunk = refs->rows + tr_ref_offset(refs->dim, r, d);
        for (uint32_t b = 0; b < TR_REF_CHUNK && d + b < refs->dim; b++)
            out[d + b] = chunk[b];
    }
}
