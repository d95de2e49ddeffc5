/* build's choice of the estimator (issue 12, item 2): 5-fold
 * cross-validation. For each fold every candidate is fitted on the other
 * four and estimates the fold's scored queries with the device's own
 * estimator code; the out-of-fold estimates of all folds are pooled into
 * one deferral curve per candidate, scored by its Area. Pooled rather than
 * the mean of per-fold Areas: a routing decision is per query (its own
 * estimates against the shared lambda), so each point of the pooled curve
 * is the query-weighted mean of the folds' points -- the curve the router
 * refitted on everything is estimated to draw -- while the mean of five
 * hulls of ~n/5 noisy points each is biased upward by the hull of each.
 * Host only. */
#ifndef TRH_TOOLS_CHOOSE_METHOD_H
#define TRH_TOOLS_CHOOSE_METHOD_H

#include <stddef.h>
#include <stdint.h>

#include "task_map.h"

/* The candidates, in the order a tie is settled (the first wins: kNN
 * needs no extra section). */
typedef enum trh_cand {
    TRH_CAND_KNN = 0,
    TRH_CAND_TASK_MAP = 1,    /* the learned map with the data's tasks as clusters */
    TRH_CAND_CLUSTER = 2,     /* K-means, --clusters K */
    TRH_CAND_LEARNED_MAP = 3, /* the learned map over those K clusters */
    TRH_N_CAND = 4
} trh_cand;
/* Their --method names. */
extern const char *const trh_cand_name[TRH_N_CAND];

typedef struct trh_method_scores {
    int scored[TRH_N_CAND];   /* candidate c was fitted and scored */
    double area[TRH_N_CAND];  /* the Area of its pooled out-of-fold curve */
    uint32_t n_queries;      /* queries scored out of fold (every score known) */
    size_t n_refs;           /* rows dealt into the folds */
    int best;                /* argmax of area over the scored; -1: none */
    trh_task_map_info task_map; /* the task map's l2 and a, chosen on the same folds */
    /* The pooled out-of-fold estimates (n_queries x m) of each candidate
     * fitted (NULL otherwise) and the queries' scores: the curve build's
     * lambda guard checks for the method it ships. trh_method_scores_free. */
    float *P[TRH_N_CAND], *Yq;
} trh_method_scores;

/* Scores the candidates want[c] on the references: n int8 rows (dim each,
 * contiguous), scores Y (n x m, NaN unknown), normalized costs cn. fold:
 * trh_cv_folds(n), or trh_guard_folds' (fold TRH_FOLDS: a row in every fit,
 * never a query); the queries are the rows with TRH_FOLD_SCORED among the
 * first n_task (dataset rows, not logged ones) whose scores are all known,
 * pooled fold by fold; each fold's fit uses every row outside it.
 * kNN at (k, a) (exact search); the task map over task[j] < n_tasks of the
 * first n_task rows; K-means with n_clusters on the unit int8 rows (and the
 * learned map over them); every estimate shrunk with a as the pack's,
 * but the task map's (l2, Psi's a) chosen on the same pooled curve from
 * its l2 grid and trh_choose_a_grid unless a_given (its a goes to the
 * clusters header, out->task_map.a).
 * 0, or 1 after a message; either way trh_method_scores_free(out) after. */
int trh_score_methods(const int8_t *refs, size_t n, size_t n_task, uint32_t dim, const float *Y,
                     uint32_t m, const double *cn, const uint8_t *fold, uint32_t k, float a,
                     int a_given, const uint32_t *task, uint32_t n_tasks, uint32_t n_clusters,
                     const int want[TRH_N_CAND], trh_method_scores *out);

void trh_method_scores_free(trh_method_scores *ms);
#endif
