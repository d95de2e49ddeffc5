/* Settings chosen on validation: build's kNN k and prior strength. */
#include "choose.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pareto.h"
#include "util.h"
#include "trh_rand.h"
#include "refs.h"

const uint32_t trh_choose_k_grid[] = {5, 10, 20, 50, 100, 200};
const uint32_t trh_choose_k_grid_len = sizeof trh_choose_k_grid / sizeof *trh_choose_k_grid;
/* Prior strengths (pseudo-neighbours at the model's prior); 0 first, so
 * that a tie keeps the plain means. */
const float trh_choose_a_grid[] = {0, 1, 2, 4, 8, 16, 32};
const uint32_t trh_choose_a_grid_len = sizeof trh_choose_a_grid / sizeof *trh_choose_a_grid;


void trh_host_labels_make(const float *Y, uint32_t n, uint32_t nm, trh_host_labels *h)
{
    const uint32_t words = (n + 63) / 64;
    int frac = 0, unknown = 0;
    for (size_t i = 0; i < (size_t)n * nm; i++) {
        unknown |= isnan(Y[i]);
        frac |= !isnan(Y[i]) && Y[i] != 0.0f && Y[i] != 1.0f;
    }
    h->bits = trh_xcalloc((size_t)nm * words, 8);
    h->valid = unknown ? trh_xcalloc((size_t)nm * words, 8) : NULL;
    h->sc = frac ? trh_xcalloc((size_t)nm * n, 1) : NULL;
    h->prior = trh_xmalloc((nm ? nm : 1) * sizeof *h->prior);
    for (uint32_t m = 0; m < nm; m++) {
        double sum = 0;
        size_t known = 0;
        for (uint32_t i = 0; i < n; i++) {
            float v = Y[(size_t)i * nm + m];
            if (isnan(v))
                continue;
            sum += v;
            known++;
            if (unknown)
                h->valid[(size_t)m * words + i / 64] |= 1ull << (i % 64);
            if (v >= 0.5f)
                h->bits[(size_t)m * words + i / 64] |= 1ull << (i % 64);
            if (frac)
                h->sc[(size_t)m * n + i] = (uint8_t)roundf(v * 255.0f);
        }
        h->prior[m] = known ? (float)(sum / (double)known) : 0.0f;
    }
    h->lab = (tr_labels){nm, n, words, h->bits, h->valid, h->sc, n,
                         (const uint8_t *)h->prior, sizeof(float)};
}

void trh_host_labels_free(trh_host_labels *h)
{
    free(h->bits), free(h->valid), free(h->sc), free(h->prior);
    memset(h, 0, sizeof *h);
}

/* The validation queries: a fixed-seed sample of at most TRH_CHOOSE_QUERIES
 * references whose every score is known (a curve needs the truth of every
 * model). Returns their count; q receives their indices, increasing. */
static uint32_t pick_queries(const float *Y, uint32_t n, uint32_t nm, uint32_t *q)
{
    uint32_t nq = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t m = 0;
        while (m < nm && !isnan(Y[(size_t)i * nm + m]))
            m++;
        if (m == nm)
            q[nq++] = i;
    }
    /* Partial Fisher-Yates: the first TRH_CHOOSE_QUERIES of a shuffle. */
    uint64_t s = 0x7472636830736531ull; /* fixed: the same pack from the same data */
    uint32_t take = nq < TRH_CHOOSE_QUERIES ? nq : TRH_CHOOSE_QUERIES;
    for (uint32_t i = 0; i < take; i++) {
        uint32_t j = i + (uint32_t)(trh_splitmix64(&s) % (nq - i)), t = q[i];
        q[i] = q[j];
        q[j] = t;
    }
    return take;
}

/* Neighbours of each query among the other references, best first, kmax
 * each (its own row left out; a query with fewer other rows repeats its
 * last neighbour, as eval does). */
static void loo_neighbours(const tr_refs *refs, const uint32_t *q, uint32_t nq, uint32_t kmax,
                           tr_neighbor *nb)
{
    int32_t dots[TR_KNN_BLOCK];
    tr_neighbor *t = trh_xmalloc((kmax + 1) * sizeof *t);
    int8_t *row = trh_xmalloc(refs->dim);
    for (uint32_t i = 0; i < nq; i++) {
        tr_refs_get_row(refs, q[i], row);
        uint32_t f = tr_knn_search(tr_kernels_active(), refs, row, kmax + 1, dots, t), o = 0;
        for (uint32_t j = 0; j < f && o < kmax; j++)
            if (t[j].idx != q[i])
                nb[(size_t)i * kmax + o++] = t[j];
        for (; o < kmax; o++)
            nb[(size_t)i * kmax + o] = nb[(size_t)i * kmax + (o ? o - 1 : 0)];
    }
    free(t), free(row);
}

/* Validation Area at (k, a): each query's estimates from its first k
 * neighbours, with the priors computed without its own scores. */
static double area_at(const trh_host_labels *h, const float *Y, const uint32_t *q, uint32_t nq,
                      const tr_neighbor *nb, uint32_t kmax, uint32_t k, float a,
                      const double *cn, const double *sum, const uint32_t *known, float *P,
                      float *Yq)
{
    const uint32_t nm = h->lab.n_models;
    float *prior = trh_xmalloc((nm ? nm : 1) * sizeof *prior);
    tr_labels lab = h->lab;
    lab.priors = (const uint8_t *)prior;
    for (uint32_t i = 0; i < nq; i++) {
        const float *y = Y + (size_t)q[i] * nm;
        for (uint32_t m = 0; m < nm; m++) {
            prior[m] = known[m] > 1 ? (float)((sum[m] - y[m]) / (known[m] - 1)) : 0.0f;
            Yq[(size_t)i * nm + m] = y[m];
        }
        tr_knn_predict(&lab, nb + (size_t)i * kmax, k, 0, 1.0f, a, P + (size_t)i * nm);
    }
    free(prior);
    trh_curve c;
    trh_route_curve(P, Yq, nq, nm, cn, &c, NULL);
    return c.area;
}

void trh_guard_lambda(const float *P, const float *Yq, uint32_t nq, uint32_t nm,
                         const double *cn, double lambda_given, trh_knn_choice *out)
{
    double *single = trh_xcalloc(nm, sizeof *single);
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t m = 0; m < nm; m++)
            single[m] += Yq[(size_t)i * nm + m] / nq;
    for (int j = 0; j < TRH_CURVE_LAMBDAS; j++) {
        out->lambda = lambda_given >= 0 ? lambda_given : trh_curve_lambda(j);
        trh_route_point(P, Yq, nq, nm, cn, out->lambda, &out->cost, &out->acc, NULL);
        out->pareto = trh_pareto_random(cn, single, nm, out->cost);
        out->below = out->acc < out->pareto - 1e-12;
        if (!out->below || lambda_given >= 0)
            break;
    }
    free(single);
}

int trh_choose_knn(const int8_t *rows, uint32_t n, uint32_t dim, const float *Y, uint32_t nm,
                  const double *cn, const trh_knn_given *given, trh_knn_choice *out)
{
    const uint32_t k_given = given->k, k_cap = given->k_cap;
    const float a_given = given->a;
    uint32_t k0 = k_given ? k_given : TRH_CHOOSE_OLD_K;
    if (k_cap && k0 > k_cap)
        k0 = k_cap;
    *out = (trh_knn_choice){k0, a_given >= 0 ? a_given : TRH_CHOOSE_OLD_A, NAN, NAN, 0,
                           given->lambda >= 0 ? given->lambda : 0.0, NAN, NAN, NAN, 0};
    uint32_t *q = trh_xmalloc((n ? n : 1) * sizeof *q);
    const uint32_t nq = pick_queries(Y, n, nm, q);
    if (nq < 2 || n < 2) {
        free(q);
        return 0;
    }
    /* The largest k searched: the grid's (or the given one), at most the
     * other references. */
    uint32_t kmax = k_given ? k_given : trh_choose_k_grid[trh_choose_k_grid_len - 1];
    if (k_cap && kmax > k_cap)
        kmax = k_cap;
    if (kmax > n - 1)
        kmax = n - 1;
    tr_refs refs = trh_xrefs(rows, dim, n, dim);
    tr_neighbor *nb = trh_xmalloc((size_t)nq * kmax * sizeof *nb);
    loo_neighbours(&refs, q, nq, kmax, nb);
    trh_refs_free(&refs);

    trh_host_labels h;
    trh_host_labels_make(Y, n, nm, &h);
    double *sum = trh_xcalloc(nm ? nm : 1, sizeof *sum);
    uint32_t *known = trh_xcalloc(nm ? nm : 1, sizeof *known);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t m = 0; m < nm; m++)
            if (!isnan(Y[(size_t)i * nm + m])) {
                sum[m] += Y[(size_t)i * nm + m];
                known[m]++;
            }
    float *P = trh_xmalloc((size_t)nq * nm * sizeof *P), *Yq = trh_xmalloc((size_t)nq * nm * sizeof *Yq);
    /* The candidates: the grids, or the one value given. */
    const uint32_t *ks = k_given ? &k_given : trh_choose_k_grid;
    const uint32_t nk = k_given ? 1 : trh_choose_k_grid_len;
    const float *as = a_given >= 0 ? &a_given : trh_choose_a_grid;
    const uint32_t na = a_given >= 0 ? 1 : trh_choose_a_grid_len;
    double best = -1;
    for (uint32_t g = 0; g < nk && (g == 0 || ks[g - 1] < kmax); g++) {
        const uint32_t k = ks[g] < kmax ? ks[g] : kmax; /* past kmax: all kmax */
        for (uint32_t ga = 0; ga < na; ga++) {
            double area = area_at(&h, Y, q, nq, nb, kmax, k, as[ga], cn, sum, known, P, Yq);
            if (area > best) {
                best = area;
                out->k = k;
                out->a = as[ga];
            }
        }
    }
    out->area = best;
    out->n_queries = nq;
    {
        uint32_t k_old = k_given ? k_given : TRH_CHOOSE_OLD_K;
        out->area_given = area_at(&h, Y, q, nq, nb, kmax, k_old < kmax ? k_old : kmax,
                                  a_given >= 0 ? a_given : TRH_CHOOSE_OLD_A, cn, sum, known, P, Yq);
    }
    area_at(&h, Y, q, nq, nb, kmax, out->k, out->a, cn, sum, known, P, Yq); /* P at the choice */
    trh_guard_lambda(P, Yq, nq, nm, cn, given->lambda, out);
    free(P), free(Yq), free(sum), free(known), free(nb), free(q);
    trh_host_labels_free(&h);
    return 0;
}
