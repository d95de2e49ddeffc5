/* Evaluation baselines on the host. */
#ifndef TR_TOOLS_PARETO_H
#define TR_TOOLS_PARETO_H

#include <stdint.h>

/* Pareto-random: the best accuracy a random mix of the n single models
 * (cost[j], acc[j]) reaches at mean cost c: the upper concave hull, from the
 * cheapest model, flat after the most accurate one. */
double tr_pareto_random(const double *cost, const double *acc, uint32_t n, double c);

#endif
