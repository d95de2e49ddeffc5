/* The hot loop of kNN routing: score every reference row against the query
 * in blocks (one kernel call per block), keep the k best in a min-heap. */
#include "tr_knn.h"

#include <math.h>

/* a ranks below b: lower sim, or equal sim and higher index. */
static int worse(const tr_neighbor *a, const tr_neighbor *b)
{
    return a->sim < b->sim || (a->sim == b->sim && a->idx > b->idx);
}

static void sift_down(tr_neighbor *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[l], &h[m]))
            m = l;
        if (r < n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        tr_neighbor t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
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

uint32_t tr_knn_search(const tr_kernels *kern, const tr_refs *refs,
                       const int8_t *q, uint32_t k, int32_t *dots,
                       tr_neighbor *out)
{
    uint32_t have = 0;
    if (k > refs->n)
        k = refs->n;
    if (k == 0)
        return 0;
    /* out[0..have) is a min-heap on "worse": out[0] is the worst kept. */
    for (uint32_t base = 0; base < refs->n; base += TR_KNN_BLOCK) {
        uint32_t nb = refs->n - base < TR_KNN_BLOCK ? refs->n - base : TR_KNN_BLOCK;
        kern->dot_i8_rows(q, refs->rows + (size_t)base * refs->stride,
                          refs->stride, nb, refs->dim, dots);
        for (uint32_t j = 0; j < nb; j++) {
            tr_neighbor c = {(float)dots[j] * refs->inv_norm[base + j], base + j};
            if (have < k) {
                out[have] = c;
                sift_up(out, have++);
            } else if (worse(&out[0], &c)) {
                out[0] = c;
                sift_down(out, have, 0);
            }
        }
    }
    /* Heap sort in place: repeatedly move the worst to the end. */
    for (uint32_t n = have; n > 1; n--) {
        tr_neighbor t = out[0];
        out[0] = out[n - 1];
        out[n - 1] = t;
        sift_down(out, n - 1, 0);
    }
    return have;
}

static int bit(const uint64_t *set, uint32_t i)
{
    return (int)(set[i >> 6] >> (i & 63) & 1u);
}

void tr_knn_predict(const tr_labels *lab, const tr_neighbor *nb, uint32_t k,
                    float *predicted)
{
    for (uint32_t m = 0; m < lab->n_models; m++) {
        const uint64_t *cor = lab->correct + (size_t)m * lab->bit_words;
        const uint64_t *val = lab->valid ? lab->valid + (size_t)m * lab->bit_words : NULL;
        const uint8_t *sc = lab->scores ? lab->scores + (size_t)m * lab->score_stride : NULL;
        uint32_t known = 0, sum = 0; /* sum: hits, or score units of 1/255 */
        for (uint32_t j = 0; j < k; j++) {
            uint32_t i = nb[j].idx;
            if (val && !bit(val, i))
                continue;
            known++;
            sum += sc ? sc[i] : (uint32_t)bit(cor, i);
        }
        if (known == 0)
            predicted[m] = NAN;
        else
            predicted[m] = sc ? (float)sum / (255.0f * (float)known)
                              : (float)sum / (float)known;
    }
}
