#include "pareto.h"

#include <math.h>

/* Pareto-random (Hu et al. 2024's zero router, Jitkrittum et al. 2025's
 * baseline): the best accuracy a random mix of single models reaches at mean
 * cost c, i.e. the upper concave hull of the (cost, accuracy) points, flat
 * after the most accurate model and starting at the cheapest. */
double tr_pareto_random(const double *cost, const double *acc, uint32_t n, double c)
{
    /* Hull vertices by increasing cost; n is small (models). */
    uint32_t start = 0, top = 0;
    for (uint32_t j = 1; j < n; j++) {
        if (cost[j] < cost[start] || (cost[j] == cost[start] && acc[j] > acc[start]))
            start = j;
        if (acc[j] > acc[top] || (acc[j] == acc[top] && cost[j] < cost[top]))
            top = j;
    }
    if (c <= cost[start])
        return acc[start];
    uint32_t cur = start;
    while (cur != top) {
        /* The next vertex: the steepest slope from cur, among costlier and
         * more accurate models. */
        int next = -1;
        double best = -INFINITY;
        for (uint32_t j = 0; j < n; j++) {
            if (cost[j] <= cost[cur] || acc[j] <= acc[cur])
                continue;
            double slope = (acc[j] - acc[cur]) / (cost[j] - cost[cur]);
            if (slope > best || (slope == best && cost[j] > cost[next])) {
                best = slope;
                next = (int)j;
            }
        }
        if (next < 0)
            break;
        if (c <= cost[next])
            return acc[cur] + best * (c - cost[cur]);
        cur = (uint32_t)next;
    }
    return acc[cur];
}
