/* Evaluation baselines and deferral-curve geometry on the host. */
#ifndef TRH_TOOLS_PARETO_H
#define TRH_TOOLS_PARETO_H

#include <stdint.h>

/* The upper concave hull of the (cost, acc) points, from the cheapest (the
 * most accurate of those) to the most accurate (the cheapest of those):
 * what a random mix of the points reaches at each mean cost. Writes the
 * vertices by increasing cost into hc/ha (n each); returns their count. */
uint32_t trh_hull(const double *cost, const double *acc, uint32_t n, double *hc, double *ha);

/* The hull at cost c: the first vertex's accuracy below it, flat after the
 * last. */
double trh_hull_at(const double *hc, const double *ha, uint32_t nh, double c);

/* Pareto-random (Hu et al. 2024's zero router, Jitkrittum et al. 2025's
 * baseline) over n single models: the hull at mean cost c. */
double trh_pareto_random(const double *cost, const double *acc, uint32_t n, double c);

/* Area under a curve sampled at grid equally spaced costs over [0,1]
 * (trapezoids). */
double trh_curve_area(const double *q, uint32_t grid);

/* The first of the grid costs at which the curve reaches target (within
 * 1e-12, so a curve that passes through the target counts), or UINT32_MAX
 * when it never does: the operating points QNC and CPT. */
uint32_t trh_curve_first_reach(const double *q, uint32_t grid, double target);

/* APGR (Ong et al. 2024, RouteLLM): the mean over the curve's cost range of
 * the performance gap recovered, (q - lo) / (hi - lo), with trapezoids on
 * the grid; lo and hi are the accuracies of the cheapest and the best single
 * model. Not clipped (below lo is negative, above hi above 1); NAN when
 * hi <= lo, where no gap exists to recover. */
double trh_curve_apgr(const double *q, uint32_t grid, double lo, double hi);

/* cn[m] = (cost[m] - min) / (max - min) over the n costs (all 0 when they
 * are equal): the normalized costs the curves and the pack's cost_norm use. */
void trh_norm_costs(const double *cost, uint32_t n, double *cn);

/* ---- deferral curves (Jitkrittum et al. 2025): one router's accuracy at
 * every normalized cost budget as lambda sweeps ---- */
#define TRH_CURVE_GRID 1001   /* cost grid of the curves, 0..1 */
#define TRH_CURVE_LAMBDAS 62  /* 0, then 1e-3 .. 1e3 log-spaced, then 1e9 */

/* Accuracy at each budget of the grid. The router's (cost, accuracy) points
 * are joined by their upper concave hull, flat after the most accurate
 * point: with a budget B one can mix two lambdas at random (as
 * Pareto-random mixes two models) and need not spend all of B. */
typedef struct trh_curve {
    double q[TRH_CURVE_GRID];
    double area, peak, qnc; /* qnc: NAN if never reached */
} trh_curve;

/* The j-th lambda of the sweep, j < TRH_CURVE_LAMBDAS; the last one routes
 * every prompt to the cheapest model. */
double trh_curve_lambda(int j);

/* Area and peak of c->q. */
void trh_curve_summarise(trh_curve *c);

/* c from n (cost, accuracy) points, any n: their hull on the grid,
 * summarised. */
void trh_curve_hull(const double *cost, const double *acc, int n, trh_curve *c);

/* Route nq prompts (predicted P, true Y: nq x nm, row-major) among nm models
 * of normalized costs cn at every lambda of the sweep: argmax P - lambda * cn,
 * ties to the cheaper model, then the lower index, as on the device. choices
 * (optional, TRH_CURVE_LAMBDAS x nq) receive the decisions. */
/* One point of it: the mean normalized cost and accuracy at lambda; choices
 * (optional, nq) receive the decisions. */
void trh_route_point(const float *P, const float *Y, uint32_t nq, uint32_t nm, const double *cn,
                    double lambda, double *cost, double *acc, uint32_t *choices);

void trh_route_curve(const float *P, const float *Y, uint32_t nq, uint32_t nm, const double *cn,
                    trh_curve *c, uint32_t *choices);

#endif
