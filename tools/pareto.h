/* Evaluation baselines and deferral-curve geometry on the host. */
#ifndef TR_TOOLS_PARETO_H
#define TR_TOOLS_PARETO_H

#include <stdint.h>

/* The upper concave hull of the (cost, acc) points, from the cheapest (the
 * most accurate of those) to the most accurate (the cheapest of those):
 * what a random mix of the points reaches at each mean cost. Writes the
 * vertices by increasing cost into hc/ha (n each); returns their count. */
uint32_t tr_hull(const double *cost, const double *acc, uint32_t n, double *hc, double *ha);

/* The hull at cost c: the first vertex's accuracy below it, flat after the
 * last. */
double tr_hull_at(const double *hc, const double *ha, uint32_t nh, double c);

/* Pareto-random (Hu et al. 2024's zero router, Jitkrittum et al. 2025's
 * baseline) over n single models: the hull at mean cost c. */
double tr_pareto_random(const double *cost, const double *acc, uint32_t n, double c);

/* Area under a curve sampled at grid equally spaced costs over [0,1]
 * (trapezoids). */
double tr_curve_area(const double *q, uint32_t grid);

#endif
