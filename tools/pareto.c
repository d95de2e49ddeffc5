#include "pareto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct pt { double c, a; } pt;

static int by_cost(const void *x, const void *y)
{
    const pt *p = x, *q = y;
    /* By cost; at equal cost the more accurate first. */
    return p->c < q->c ? -1 : p->c > q->c ? 1 : (p->a < q->a) - (p->a > q->a);
}

uint32_t trh_hull(const double *cost, const double *acc, uint32_t n, double *hc, double *ha)
{
    if (n == 0)
        return 0;
    pt *p = malloc(n * sizeof *p);
    if (!p)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        p[i] = (pt){cost[i], acc[i]};
    qsort(p, n, sizeof *p, by_cost);
    /* Nothing past the most accurate point (the cheapest of those) counts:
     * the curve is flat from there. */
    uint32_t top = 0;
    for (uint32_t i = 1; i < n; i++)
        if (p[i].a > p[top].a)
            top = i;
    uint32_t m = 0;
    for (uint32_t i = 0; i <= top; i++) {
        if (m && p[i].c == hc[m - 1])
            continue; /* same cost, less accurate: sorted after the better one */
        /* Monotone chain: drop vertices on or under the new chord. */
        while (m >= 2 && (hc[m - 1] - hc[m - 2]) * (p[i].a - ha[m - 2]) -
                                 (ha[m - 1] - ha[m - 2]) * (p[i].c - hc[m - 2]) >= 0)
            m--;
        hc[m] = p[i].c;
        ha[m] = p[i].a;
        m++;
    }
    free(p);
    return m;
}

double trh_hull_at(const double *hc, const double *ha, uint32_t nh, double c)
{
    if (c <= hc[0])
        return ha[0];
    for (uint32_t v = 0; v + 1 < nh; v++)
        if (c <= hc[v + 1])
            return ha[v] + (ha[v + 1] - ha[v]) * (c - hc[v]) / (hc[v + 1] - hc[v]);
    return ha[nh - 1];
}

double trh_pareto_random(const double *cost, const double *acc, uint32_t n, double c)
{
    double *hc = malloc(2 * n * sizeof *hc);
    if (!hc)
        return NAN;
    uint32_t nh = trh_hull(cost, acc, n, hc, hc + n);
    double a = nh ? trh_hull_at(hc, hc + n, nh, c) : NAN;
    free(hc);
    return a;
}

double trh_curve_area(const double *q, uint32_t grid)
{
    double area = 0;
    for (uint32_t g = 1; g < grid; g++)
        area += 0.5 * (q[g] + q[g - 1]) / (grid - 1);
    return area;
}

uint32_t trh_curve_first_reach(const double *q, uint32_t grid, double target)
{
    for (uint32_t g = 0; g < grid; g++)
        if (q[g] >= target - 1e-12)
            return g;
    return UINT32_MAX;
}

double trh_curve_apgr(const double *q, uint32_t grid, double lo, double hi)
{
    if (!(hi > lo) || grid < 2)
        return NAN;
    double s = 0;
    for (uint32_t g = 1; g < grid; g++)
        s += 0.5 * ((q[g] - lo) + (q[g - 1] - lo)) / (hi - lo);
    return s / (grid - 1);
}

double trh_curve_lambda(int j)
{
    if (j == 0)
        return 0.0;
    if (j == TRH_CURVE_LAMBDAS - 1)
        return 1e9; /* the cheapest model everywhere */
    return 1e-3 * pow(1e6, (double)(j - 1) / (TRH_CURVE_LAMBDAS - 3));
}

void trh_curve_summarise(trh_curve *c)
{
    c->area = trh_curve_area(c->q, TRH_CURVE_GRID);
    c->peak = c->q[0];
    for (int g = 1; g < TRH_CURVE_GRID; g++)
        c->peak = fmax(c->peak, c->q[g]);
}

void trh_curve_hull(const double *cost, const double *acc, int n, trh_curve *c)
{
    double *hc = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *hc), *ha = hc + (n > 0 ? n : 1);
    if (!hc) {
        fputs("tinyroute: out of memory\n", stderr);
        exit(1);
    }
    uint32_t nh = trh_hull(cost, acc, (uint32_t)n, hc, ha);
    for (int g = 0; g < TRH_CURVE_GRID; g++)
        c->q[g] = trh_hull_at(hc, ha, nh, (double)g / (TRH_CURVE_GRID - 1));
    free(hc);
    trh_curve_summarise(c);
}

void trh_route_point(const float *P, const float *Y, uint32_t nq, uint32_t nm, const double *cn,
                    double lambda, double *cost, double *acc, uint32_t *choices)
{
    double c = 0, a = 0;
    for (uint32_t i = 0; i < nq; i++) {
        const float *p = P + (size_t)i * nm;
        uint32_t best = 0;
        double bu = -INFINITY;
        for (uint32_t m = 0; m < nm; m++) {
            double u = p[m] - lambda * cn[m];
            if (u > bu || (u == bu && cn[m] < cn[best])) {
                bu = u;
                best = m;
            }
        }
        if (choices)
            choices[i] = best;
        c += cn[best];
        a += Y[(size_t)i * nm + best];
    }
    *cost = c / nq;
    *acc = a / nq;
}

void trh_route_curve(const float *P, const float *Y, uint32_t nq, uint32_t nm, const double *cn,
                    trh_curve *c, uint32_t *choices)
{
    double pc[TRH_CURVE_LAMBDAS], pa[TRH_CURVE_LAMBDAS];
    for (int j = 0; j < TRH_CURVE_LAMBDAS; j++)
        trh_route_point(P, Y, nq, nm, cn, trh_curve_lambda(j), &pc[j], &pa[j],
                       choices ? choices + (size_t)j * nq : NULL);
    trh_curve_hull(pc, pa, TRH_CURVE_LAMBDAS, c);
}

void trh_norm_costs(const double *cost, uint32_t n, double *cn)
{
    double cmin = INFINITY, cmax = -INFINITY;
    for (uint32_t m = 0; m < n; m++) {
        cmin = fmin(cmin, cost[m]);
        cmax = fmax(cmax, cost[m]);
    }
    for (uint32_t m = 0; m < n; m++)
        cn[m] = cmax > cmin ? (cost[m] - cmin) / (cmax - cmin) : 0.0;
}
