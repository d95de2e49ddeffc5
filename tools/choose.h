/* Settings chosen on validation (issue 12): what `build` stores as the
 * pack's kNN defaults unless told, and the labels both build and eval hand
 * to the device's own kNN estimator. Host only. */
#ifndef TRH_TOOLS_CHOOSE_H
#define TRH_TOOLS_CHOOSE_H

#include <stdint.h>

#include "tr_knn.h"

/* Labels as the pack stores them, built from a float score matrix Y (n x nm,
 * row-major, NaN unknown): correct bits (score >= 0.5), valid bits when any
 * score is unknown, score bytes round(255 s) when any is fractional, and
 * each model's prior = its mean known score (0 with none), as
 * tools/packwriter.c writes them. */
typedef struct trh_host_labels {
    tr_labels lab;
    uint64_t *bits, *valid;
    uint8_t *sc;
    float *prior;
} trh_host_labels;

void trh_host_labels_make(const float *Y, uint32_t n, uint32_t nm, trh_host_labels *h);
void trh_host_labels_free(trh_host_labels *h);

/* The grids validation searches (eval's own). */
extern const uint32_t trh_choose_k_grid[];
extern const uint32_t trh_choose_k_grid_len;
extern const float trh_choose_a_grid[];
extern const uint32_t trh_choose_a_grid_len;

/* Most validation queries build takes: leave-one-out over a fixed sample,
 * so that the search costs TRH_CHOOSE_QUERIES scans of the references at
 * most, whatever N. */
#define TRH_CHOOSE_QUERIES 2000u

/* What build stored before it chose, and stores when nothing can be chosen:
 * the comparison point it reports. */
#define TRH_CHOOSE_OLD_K 10u
#define TRH_CHOOSE_OLD_A 16.0f

/* What the caller fixed; the rest is chosen. */
typedef struct trh_knn_given {
    uint32_t k;      /* > 0: this k */
    uint32_t k_cap;  /* > 0: no k above it (a prefilter's C) */
    float a;         /* >= 0: this prior strength */
    double lambda;   /* >= 0: this default lambda (then only checked) */
} trh_knn_given;

typedef struct trh_knn_choice {
    uint32_t k;          /* chosen on validation, or the one given */
    float a;             /* prior strength, likewise */
    double area;         /* validation Area of the deferral curve at (k, a) */
    double area_given;   /* ... at the defaults build used before (k 10, a 16) */
    uint32_t n_queries;  /* validation queries (0: too few to choose) */
    /* The guard (issue 12: never worse than not routing): the default
     * lambda and, at (k, a), its validation point (normalized cost,
     * accuracy) beside Pareto-random's accuracy at that cost. */
    double lambda, cost, acc, pareto;
    int below;           /* acc is under Pareto-random there */
} trh_knn_choice;

/* Chooses kNN's k and prior strength a by leave-one-out validation on the
 * n references (int8 rows, dim each, contiguous), scores Y (n x nm, NaN
 * unknown) and normalized costs cn: each of a fixed-seed sample of at most
 * TRH_CHOOSE_QUERIES references whose scores are all known is routed by the
 * device's estimator from its nearest other references (its own label out
 * of the priors too) at every lambda of the sweep; the (k, a) whose
 * deferral curve has the largest Area wins, ties to the smaller k, then the
 * smaller a. given fixes any of k, a and lambda (then only the others are
 * searched). The default lambda, unless given, is 0 (accuracy first) if
 * its validation point is not under Pareto-random, else the smallest
 * lambda of the sweep whose point is not (the sweep's last, the cheapest
 * model everywhere, lies on Pareto-random's curve: one always is).
 * Fewer than 2 usable queries: nothing to choose from, out->n_queries = 0,
 * the given (or build's old default) settings and lambda 0.
 * 0 ok, non-zero on failure (message printed). */
int trh_choose_knn(const int8_t *rows, uint32_t n, uint32_t dim, const float *Y, uint32_t nm,
                  const double *cn, const trh_knn_given *given, trh_knn_choice *out);

/* The guard on a validation curve: P the router's estimates of the nq
 * queries (nq x nm), Yq their scores. Sets out->lambda (lambda_given if
 * >= 0, else 0 unless its point is under Pareto-random, else the smallest
 * lambda of the sweep whose point is not) and its point: out->cost,
 * out->acc, out->pareto (Pareto-random over the queries' single models at
 * that cost) and out->below. */
void trh_guard_lambda(const float *P, const float *Yq, uint32_t nq, uint32_t nm, const double *cn,
                     double lambda_given, trh_knn_choice *out);
#endif
