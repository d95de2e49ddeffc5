/* build's choice of the estimator (issue 12, item 2): each candidate fitted
 * on four fifths of the references, scored by the deferral-curve Area of
 * the held-out fifth with the device's own estimator code. Host only. */
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
    double area[TRH_N_CAND];  /* its held-out Area */
    uint32_t n_queries;      /* held-out rows with every score known */
    size_t n_train;          /* rows fitted on */
    int best;                /* argmax of area over the scored; -1: none */
    trh_task_map_info task_map; /* the task map's l2, chosen on the same fifth */
} trh_method_scores;

/* Scores the candidates want[c] on the references: n int8 rows (dim each,
 * contiguous), scores Y (n x m, NaN unknown), normalized costs cn. hold:
 * the held-out fifth (trh_holdout_fifth); queries are its rows marked 1
 * among the first n_task (dataset rows, not logged ones) whose scores are
 * all known.
 * kNN at (k, a) (exact search); the task map over task[j] < n_tasks of the
 * first n_task rows; K-means with n_clusters on the unit int8 rows (and the
 * learned map over them); every estimate shrunk with a as the pack's,
 * but the task map's Psi with the best of trh_choose_a_grid unless a_given
 * (its a goes to the clusters header, out->task_map.a).
 * 0, or 1 after a message. */
int trh_score_methods(const int8_t *refs, size_t n, size_t n_task, uint32_t dim, const float *Y,
                     uint32_t m, const double *cn, const uint8_t *hold, uint32_t k, float a,
                     int a_given, const uint32_t *task, uint32_t n_tasks, uint32_t n_clusters,
                     const int want[TRH_N_CAND], trh_method_scores *out);

#endif
