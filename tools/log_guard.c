#include "log_guard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pareto.h"
#include "task_map.h"
#include "trh_rand.h"
#include "util.h"

/* A count cell: 1 when it holds a count > 0 (logged), 0 when 0 or empty,
 * -1 when it is not a count (fleet_step.py writes integers; anything else,
 * "3x" or "-1" or "nan", is a file someone edited, not a fleet's count). */
static int counted(const char *s)
{
    if (!*s)
        return 0;
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= 0) || isinf(v))
        return -1;
    return v > 0;
}

/* The rows of an open, headed fleet_counts.csv into cells. */
static int read_counts(trh_csv *c, const trh_dataset *ds, const long *col, trh_strmap *ids,
                       uint8_t *cells)
{
    long idc = trh_csv_col(c, "id");
    if (idc < 0)
        return trh_err_at(c->path, 1, "no id column");
    int r;
    while ((r = trh_csv_next(c)) == 1) {
        size_t p;
        if (c->n <= (size_t)idc || !trh_strmap_get(ids, c->fields[idc], &p))
            return trh_err_at(c->path, c->line, "a row for no prompt of the dataset");
        for (size_t t = 0; t < ds->n_models; t++) {
            if (col[t] < 0 || (size_t)col[t] >= c->n)
                return trh_err_at(c->path, c->line, "no cell for model %s", ds->models[t].name);
            const int logged = counted(c->fields[col[t]]);
            if (logged < 0)
                return trh_err_at(c->path, c->line, "model %s: '%s' is not a count (a number >= 0)",
                                  ds->models[t].name, c->fields[col[t]]);
            cells[p * ds->n_models + t] = (uint8_t)logged;
        }
    }
    return r < 0;
}

int trh_fleet_cells(const char *dir, const trh_dataset *ds, uint8_t **cells)
{
    *cells = NULL;
    size_t len = strlen(dir) + 32;
    char *path = trh_xmalloc(len);
    snprintf(path, len, "%s/fleet_counts.csv", dir);
    if (access(path, F_OK) != 0) {
        free(path);
        return 0;
    }
    trh_csv c;
    int rc = trh_csv_open(&c, path) || trh_csv_header(&c);
    long *col = trh_xmalloc((ds->n_models ? ds->n_models : 1) * sizeof *col);
    trh_strmap ids = {0};
    uint8_t *cl = trh_xcalloc(ds->n_prompts * ds->n_models + 1, 1);
    if (!rc) {
        for (size_t t = 0; t < ds->n_models; t++)
            col[t] = trh_csv_col(&c, ds->models[t].name);
        for (size_t i = 0; i < ds->n_prompts; i++)
            trh_strmap_add(&ids, ds->prompts[i].id, i, NULL);
        rc = read_counts(&c, ds, col, &ids, cl);
    }
    if (c.f)
        trh_csv_close(&c);
    trh_strmap_free(&ids);
    free(col), free(path);
    if (rc)
        free(cl);
    else
        *cells = cl;
    return rc;
}

void trh_guard_folds(size_t n, const size_t *trusted, const uint8_t *touched, const uint8_t *fold_t,
                     uint8_t *fold)
{
    for (size_t j = 0; j < n; j++) {
        fold[j] = trusted[j] != SIZE_MAX ? fold_t[trusted[j]] : (uint8_t)TRH_FOLDS; /* every fit */
        if (touched[j])
            fold[j] &= (uint8_t)~TRH_FOLD_SCORED;
    }
}

/* Per lambda of the sweep and query: the chosen model's normalized cost and
 * score under estimates P (TRH_CURVE_LAMBDAS x nq each). */
static void per_query(const float *P, const float *Yq, uint32_t nq, uint32_t m, const double *cn,
                      double *cost, double *acc)
{
    uint32_t *ch = trh_xmalloc((size_t)TRH_CURVE_LAMBDAS * (nq ? nq : 1) * sizeof *ch);
    trh_curve c;
    trh_route_curve(P, Yq, nq, m, cn, &c, ch);
    for (size_t j = 0; j < (size_t)TRH_CURVE_LAMBDAS * nq; j++) {
        cost[j] = cn[ch[j]];
        acc[j] = Yq[(j % nq) * m + ch[j]];
    }
    free(ch);
}

/* The Area of the curve through the points weighted by w (sum W). */
static double weighted_area(const double *cost, const double *acc, const uint32_t *w, uint32_t nq,
                            double W)
{
    double pc[TRH_CURVE_LAMBDAS], pa[TRH_CURVE_LAMBDAS];
    for (int l = 0; l < TRH_CURVE_LAMBDAS; l++) {
        double c = 0, a = 0;
        for (uint32_t i = 0; i < nq; i++)
            c += w[i] * cost[(size_t)l * nq + i], a += w[i] * acc[(size_t)l * nq + i];
        pc[l] = c / W, pa[l] = a / W;
    }
    trh_curve cv;
    trh_curve_hull(pc, pa, TRH_CURVE_LAMBDAS, &cv);
    return cv.area;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void trh_guard_bootstrap(const float *Pw, const float *Po, const float *Yq, uint32_t nq, uint32_t m,
                         const double *cn, uint32_t resamples, trh_log_guard *g)
{
    const size_t L = (size_t)TRH_CURVE_LAMBDAS * (nq ? nq : 1);
    double *cw = trh_xmalloc(4 * L * sizeof *cw), *aw = cw + L, *co = aw + L, *ao = co + L;
    double *d = trh_xmalloc((resamples ? resamples : 1) * sizeof *d);
    uint32_t *w = trh_xmalloc((nq ? nq : 1) * sizeof *w);
    per_query(Pw, Yq, nq, m, cn, cw, aw);
    per_query(Po, Yq, nq, m, cn, co, ao);
    for (uint32_t i = 0; i < nq; i++)
        w[i] = 1;
    g->area_with = weighted_area(cw, aw, w, nq, nq);
    g->area_without = weighted_area(co, ao, w, nq, nq);
    g->delta = g->area_with - g->area_without;
    uint64_t s = 0x6775617264313721ull; /* fixed: the same decision from the same data */
    uint32_t not_better = 0;
    for (uint32_t b = 0; b < resamples; b++) {
        memset(w, 0, nq * sizeof *w);
        for (uint32_t i = 0; i < nq; i++)
            w[trh_splitmix64(&s) % nq]++;
        d[b] = weighted_area(cw, aw, w, nq, nq) - weighted_area(co, ao, w, nq, nq);
        not_better += d[b] <= 0;
    }
    qsort(d, resamples, sizeof *d, by_value);
    g->resamples = resamples;
    g->lo = resamples ? d[(size_t)(0.05 * resamples)] : NAN;
    g->p = (1.0 + not_better) / (resamples + 1.0);
    free(cw), free(d), free(w);
}
