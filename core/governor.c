/* The governor: cost control on the device as plain state the caller owns.
 * It only decides the options a route runs with; routing stays in router.c. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "tr_internal.h"

tr_status tr_governor_init(tr_governor *g, float budget, uint64_t period_seconds,
                           uint64_t now, float lambda_base, float lambda_max)
{
    const int from_pack = lambda_base == TR_LAMBDA_DEFAULT;
    if (!g || !(budget > 0) || !isfinite(budget) || period_seconds == 0 ||
        !(from_pack || lambda_base >= 0) || !(lambda_max >= (from_pack ? 0 : lambda_base)) ||
        !isfinite(lambda_max))
        return TR_E_ARG;
    memset(g, 0, sizeof *g);
    g->period_seconds = period_seconds;
    g->period_start = now;
    g->budget = budget;
    g->lambda_base = lambda_base;
    g->lambda_max = lambda_max;
    g->network_up = 1;
    memset(g->available, 0xff, sizeof g->available);
    return TR_OK;
}

tr_status tr_governor_set_available(tr_governor *g, uint32_t m, int up)
{
    if (!g || m >= TR_GOVERNOR_MAX_MODELS)
        return TR_E_ARG;
    if (up)
        g->available[m >> 3] |= (uint8_t)(1u << (m & 7));
    else
        g->available[m >> 3] &= (uint8_t) ~(1u << (m & 7));
    return TR_OK;
}

tr_status tr_governor_set_network(tr_governor *g, int up)
{
    if (!g)
        return TR_E_ARG;
    g->network_up = up != 0;
    return TR_OK;
}

/* Spend of the period containing now (a later period starts at zero). */
static float spent_now(const tr_governor *g, uint64_t now)
{
    return now >= g->period_start + g->period_seconds ? 0.0f : g->spent;
}

tr_status tr_governor_record(tr_governor *g, uint64_t now, float cost)
{
    if (!g || !(cost >= 0) || !isfinite(cost))
        return TR_E_ARG;
    if (now >= g->period_start + g->period_seconds) {
        /* Whole periods since the start: the boundaries stay fixed. */
        g->period_start += (now - g->period_start) / g->period_seconds * g->period_seconds;
        g->spent = 0.0f;
    }
    g->spent += cost;
    return TR_OK;
}

/* From base at no spend to max (never below base) at the whole budget. */
static float lambda_from(const tr_governor *g, uint64_t now, float base)
{
    float f = spent_now(g, now) / g->budget;
    if (f > 1.0f)
        f = 1.0f;
    float max = g->lambda_max > base ? g->lambda_max : base;
    return base + (max - base) * f * f;
}

float tr_governor_lambda(const tr_governor *g, uint64_t now)
{
    /* It returns no status; NaN is what a route refuses as a lambda
     * (TR_E_ARG), so a NULL governor cannot slip through as "free". A base
     * that is the pack's is known only to a route. */
    if (!g || g->lambda_base < 0)
        return NAN;
    return lambda_from(g, now, g->lambda_base);
}

tr_status tr_route_governed(const tr_pack *pk, tr_ctx *c, const tr_governor *g, uint64_t now,
                            const tr_query *q, const tr_route_opts *opts, tr_result *res,
                            const tr_route_out *out)
{
    tr_status st = tr_ctx_check(pk, c);
    if (st != TR_OK)
        return st;
    if (!g || !res)
        return TR_E_ARG;
    const tr_pack_view *p = &pk->served;
    const uint32_t n = p->info.n_models;
    if (opts && opts->available && opts->available_bits < n)
        return TR_E_ARG; /* checked here too: it is read below */
    tr_route_opts o = opts ? *opts : (tr_route_opts){0};
    /* The mask lives in the context (ceil(n_models / 8) bytes), so no
     * model count limits the route; the governor's own bitset covers its
     * first TR_GOVERNOR_MAX_MODELS models. */
    uint8_t *mask = c->mask;
    memset(mask, 0, (n + 7) / 8);
    for (uint32_t m = 0; m < n; m++) {
        int up = m >= TR_GOVERNOR_MAX_MODELS || (g->available[m >> 3] >> (m & 7) & 1);
        if (opts && opts->available && !(opts->available[m >> 3] >> (m & 7) & 1))
            up = 0;
        if (up)
            mask[m >> 3] |= (uint8_t)(1u << (m & 7));
    }
    o.available = mask;
    o.available_bits = n;
    int budget_out = spent_now(g, now) >= g->budget;
    o.offline = !g->network_up || budget_out || (opts && opts->offline);
    float base = g->lambda_base;
    if (base < 0) /* the pack's: its own, or the applied delta's */
        base = p->info.default_lambda;
    float lambda = lambda_from(g, now, base);
    /* 0 in the options would mean the pack's: say zero by name. */
    o.lambda = lambda > 0.0f ? lambda : TR_LAMBDA_ZERO;
    st = tr_route(pk, c, q, &o, res, out);
    if (st == TR_OK && budget_out && g->network_up && res->why == TR_WHY_OFFLINE)
        res->why = TR_WHY_BUDGET;
    return st;
}
