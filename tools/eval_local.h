/* tinyroute eval --local: a device that learns from its own outcomes
 * (issue #16), simulated with bandit feedback on a data set. */
#ifndef TRH_EVAL_LOCAL_H
#define TRH_EVAL_LOCAL_H

#include <stdint.h>
#include <stdio.h>

typedef struct trh_local_eval_in {
    const char *name;
    uint32_t n, dim, nm;       /* prompts, embedding dimension, models */
    const int8_t *q;           /* n x dim: the device's int8 embeddings */
    const float *Y;            /* n x nm scores in [0,1] (all known) */
    const double *cost;        /* nm */
    const char *const *model;  /* nm names */
    const int *on_device;      /* nm: 1 for the data set's device models */
    const char *const *task;   /* n task names (NULL entries: none), or NULL */
    int n_seeds;
    double device_max_cost;    /* device model candidates: cost <= this */
} trh_local_eval_in;

/* Prints one table per scenario (model shift; model + traffic shift) to out
 * and, when scenarios is not NULL, appends one object per scenario to that
 * cJSON array (tools/EVAL_JSON.md, "local"). 0 on success. */
struct cJSON;
int trh_eval_local(const trh_local_eval_in *in, FILE *out, struct cJSON *scenarios);

#endif
