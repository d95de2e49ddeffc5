#include "prefilter_choice.h"

#include <stdlib.h>

#include "tinyroute_status.h"
#include "tr_knn.h"
#include "trh_rand.h"
#include "util.h"
#include "refs.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Query qi's places: for each exact neighbour j (qi left out), how many
 * other rows precede it in (distance, index) order, plus one; q is row qi.
 * Scratch:
 * nb (at + 1), ham (n), hist (dim + 2), cnt (dim + 1); padding bits are
 * zero, so every distance is at most dim. */
static size_t places_of_query(const tr_refs *refs, const int8_t *q, const uint64_t *codes,
                              uint32_t words, uint32_t qi, uint32_t at, tr_neighbor *nb, uint32_t *ham,
                              uint32_t *hist, uint32_t *cnt, int32_t *dots, uint32_t *out)
{
    const uint32_t n = refs->n, dim = refs->dim;
    const tr_kernels *kern = tr_kernels_active();
    uint32_t found = tr_knn_search(kern, refs, q, at + 1, dots, nb);
    uint32_t js[TRH_PREFILTER_RECALL_AT], m = 0;
    for (uint32_t f = 0; f < found && m < at; f++)
        if (nb[f].idx != qi)
            js[m++] = nb[f].idx;
    for (uint32_t a = 1; a < m; a++) /* by index, for the sweep below */
        for (uint32_t b = a; b > 0 && js[b - 1] > js[b]; b--) {
            uint32_t t = js[b];
            js[b] = js[b - 1];
            js[b - 1] = t;
        }
    kern->hamming_rows(codes + (size_t)qi * words, codes, words, n, ham);
    for (uint32_t d = 0; d <= dim + 1; d++)
        hist[d] = 0;
    for (uint32_t i = 0; i < n; i++)
        if (i != qi)
            hist[ham[i] + 1]++;
    for (uint32_t d = 1; d <= dim + 1; d++)
        hist[d] += hist[d - 1]; /* hist[d]: other rows nearer than d */
    /* Ties go to the lower index: cnt[d] counts the other rows before i at
     * distance d. */
    for (uint32_t d = 0; d <= dim; d++)
        cnt[d] = 0;
    uint32_t p = 0;
    for (uint32_t i = 0; i < n && p < m; i++) {
        for (; p < m && js[p] == i; p++)
            out[p] = hist[ham[i]] + cnt[ham[i]] + 1;
        if (i != qi)
            cnt[ham[i]]++;
    }
    return m;
}

int trh_prefilter_places_of(const int8_t *rows, size_t n, uint32_t dim, trh_prefilter_places *pl)
{
    *pl = (trh_prefilter_places){0};
    if (n < 2 || n > UINT32_MAX)
        return trh_err("the prefilter's C is chosen on 2..%u references, not %zu", UINT32_MAX, n);
    const uint32_t nr = (uint32_t)n, words = (dim + 63) / 64;
    const uint32_t at = nr - 1 < TRH_PREFILTER_RECALL_AT ? nr - 1 : TRH_PREFILTER_RECALL_AT;
    uint64_t *codes = trh_xmalloc((size_t)nr * words * sizeof *codes);
    for (uint32_t i = 0; i < nr; i++)
        tr_knn_sign_code(rows + (size_t)i * dim, dim, codes + (size_t)i * words, words);
    tr_refs refs = trh_xrefs(rows, dim, nr, dim);
    /* The sample: the first of a fixed-seed shuffle (the same pack from the
     * same data). */
    uint32_t *order = trh_xmalloc((size_t)nr * sizeof *order);
    for (uint32_t i = 0; i < nr; i++)
        order[i] = i;
    uint64_t seed = 0x7472707265666c74ull;
    trh_shuffle(order, nr, &seed);
    const uint32_t nq = nr < TRH_PREFILTER_QUERIES ? nr : TRH_PREFILTER_QUERIES;

    pl->place = trh_xmalloc((size_t)nq * at * sizeof *pl->place);
    pl->n_queries = nq;
    pl->recall_at = at;
    tr_neighbor *nb = trh_xmalloc((size_t)(at + 1) * sizeof *nb);
    uint32_t *ham = trh_xmalloc((size_t)nr * sizeof *ham);
    uint32_t *hist = trh_xmalloc(((size_t)dim + 2) * sizeof *hist);
    uint32_t *cnt = trh_xmalloc(((size_t)dim + 1) * sizeof *cnt);
    int32_t dots[TR_KNN_BLOCK];
    for (uint32_t s = 0; s < nq; s++)
        pl->n_places += places_of_query(&refs, rows + (size_t)order[s] * dim, codes, words,
                                        order[s], at, nb, ham, hist, cnt, dots,
                                        pl->place + pl->n_places);
    qsort(pl->place, pl->n_places, sizeof *pl->place, cmp_u32);
    free(nb), free(ham), free(hist), free(cnt), free(order), free(codes);
    trh_refs_free(&refs);
    return 0;
}

void trh_prefilter_places_free(trh_prefilter_places *pl)
{
    free(pl->place);
    *pl = (trh_prefilter_places){0};
}

double trh_prefilter_recall(const trh_prefilter_places *pl, uint32_t c)
{
    size_t lo = 0, hi = pl->n_places; /* the places <= c */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pl->place[mid] <= c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return pl->n_places ? (double)lo / (double)pl->n_places : 1.0;
}

uint32_t trh_prefilter_c_for(const trh_prefilter_places *pl, double target)
{
    if (!pl->n_places)
        return 1;
    /* The smallest c with #(place <= c) >= target * n_places. */
    size_t need = (size_t)(target * (double)pl->n_places + 0.999999);
    if (need < 1)
        need = 1;
    if (need > pl->n_places)
        need = pl->n_places;
    return pl->place[need - 1];
}

double trh_prefilter_cost_ratio(size_t n, uint32_t dim, uint32_t c)
{
    const double stride = tr_ref_stride(dim), code = 8.0 * ((dim + 63u) / 64u);
    return (2.0 * (code + TRH_PREFILTER_ROW_BYTES) * (double)n +
            (double)c * TRH_PREFILTER_RERANK_ROWS * stride) /
           ((double)n * stride);
}

int trh_choose_prefilter(const int8_t *rows, size_t n, uint32_t dim, uint32_t k,
                        uint32_t given_c, int choose, trh_prefilter_choice *out)
{
    *out = (trh_prefilter_choice){.chosen = choose};
    trh_prefilter_places pl;
    if (trh_prefilter_places_of(rows, n, dim, &pl)) {
        trh_prefilter_places_free(&pl);
        return 1;
    }
    uint32_t c = given_c;
    if (choose) {
        c = trh_prefilter_c_for(&pl, TRH_PREFILTER_TARGET);
        if (c < k)
            c = k;
    }
    out->c_tried = c;
    out->recall = trh_prefilter_recall(&pl, c);
    out->reached = out->recall >= TRH_PREFILTER_TARGET;
    out->cost_ratio = trh_prefilter_cost_ratio(n, dim, c);
    out->n_queries = pl.n_queries;
    out->recall_at = pl.recall_at;
    trh_prefilter_places_free(&pl);
    out->c = !choose ? given_c
             : out->reached && c <= TR_PREFILTER_MAX && out->cost_ratio <= TRH_PREFILTER_PAYS ? c
                                                                                             : 0;
    return 0;
}
