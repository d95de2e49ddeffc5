/* build's "do no harm" guard on logged rows (issue 17): when a build adds
 * outcome logs (--add-log, or a fleet's rows that tools/fleet_step.py marks
 * in fleet_counts.csv) it keeps them only when the trusted benchmark
 * references say, beyond chance, that the pack routes better with them.
 *
 * The comparison, on trusted references only: the pack without logs
 * (method, k and prior strength chosen as build chooses them on the
 * trusted rows alone) and the pack with them (chosen on every row) are both
 * cross-validated on the same 5 folds of the trusted rows; the scored
 * queries are the same trusted rows, never a logged one (logged rows are
 * neighbours in every fold's fit). The two pooled out-of-fold curves are
 * compared by a paired bootstrap over the queries (the same resampled
 * queries for both); the logs are kept when the one-sided p-value of
 * "their Area is no better" is at most alpha. Why a test and not the
 * larger Area: with a few hundred trusted queries the Area difference has
 * a standard error of ~0.005, more than fleets' logs change it, and the
 * sign of a difference that small on the trusted rows does not predict its
 * sign held out (tests/eval/RESULTS.md, "Fleet feedback under poisoning").
 * A logged outcome may depend on the trusted labels near it (the deployed
 * pack chose the logged model from them; a forger logs 1 where it was
 * routed to the device), which can flatter the estimate with the logs; the
 * test's margin is the guard against that, not a proof. Host only. */
#ifndef TRH_TOOLS_LOG_GUARD_H
#define TRH_TOOLS_LOG_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

/* The guard's default level: one-sided 5 %, the conventional chance level. */
#define TRH_GUARD_ALPHA 0.05
/* Bootstrap resamples (fixed seed: the same pack from the same data). */
#define TRH_GUARD_RESAMPLES 2000u

/* What the guard decided and why (build's report and --json). */
typedef struct trh_log_guard {
    int ran;                  /* logs were present and the guard judged them */
    int keep;                 /* the logs stay (or the guard did not run) */
    const char *why;          /* one phrase: the reason for the decision */
    size_t trusted_rows;      /* rows with a trusted cell (the pack without logs) */
    size_t logged_rows;       /* rows with a logged cell */
    uint32_t queries;         /* trusted rows scored out of fold, both sides */
    int method_without, method_with; /* trh_cand of each side */
    uint32_t k_without, k_with;
    float a_without, a_with;
    double area_without, area_with; /* pooled out-of-fold Areas on the queries */
    double delta, lo, p;      /* Area with - without; bootstrap 5 % quantile; p-value */
    double alpha;
    uint32_t resamples;
} trh_log_guard;

/* DIR/fleet_counts.csv (tools/fleet_step.py: observations per cell), when
 * present: *cells = n_prompts x n_models bytes, 1 where the cell's score
 * came from logs (a count > 0). No file: *cells = NULL. 0 ok, 1 after a
 * message (a malformed file, an unknown prompt or model). */
int trh_fleet_cells(const char *dir, const trh_dataset *ds, uint8_t **cells);

/* The folds of the build with the logs: trusted[j] is row j's index among
 * the trusted rows (SIZE_MAX for a row with no trusted cell), touched[j]
 * non-zero when row j has a logged cell; fold_t the trusted rows' folds
 * (trh_cv_folds over them, as the build without the logs deals them). A
 * trusted row keeps its fold, a touched one without TRH_FOLD_SCORED (never
 * a query); a row with no trusted cell is in no fold (TRH_FOLDS): a
 * neighbour in every fold's fit, never held out. */
void trh_guard_folds(size_t n, const size_t *trusted, const uint8_t *touched, const uint8_t *fold_t,
                     uint8_t *fold);

/* The paired bootstrap of Area(Pw) - Area(Po) over nq queries (scores Yq,
 * nq x m; normalized costs cn): g->delta, g->lo (its 5 % quantile) and
 * g->p = (1 + #{resampled difference <= 0}) / (resamples + 1). */
void trh_guard_bootstrap(const float *Pw, const float *Po, const float *Yq, uint32_t nq, uint32_t m,
                         const double *cn, uint32_t resamples, trh_log_guard *g);

#endif
