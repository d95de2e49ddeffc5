/* kNN correctness predictor (Shnitzer et al. 2023; Li 2025): a model's
 * chance of being right on a prompt is its mean correctness over the k
 * reference prompts nearest in cosine similarity. */
#ifndef TR_KNN_H
#define TR_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "tr_kernels.h"

/* Reference set, in place in the pack. */
typedef struct tr_refs {
    uint32_t n, dim, stride;   /* stride: bytes between int8 rows */
    const int8_t *rows;
    const float *inv_norm;     /* 1/||row|| of each int8 row */
} tr_refs;

/* Per-model labels, in place in the pack. */
typedef struct tr_labels {
    uint32_t n_models, n_refs;
    uint32_t bit_words;        /* u64 words between two models' bitsets */
    const uint64_t *correct;   /* bit set: score >= 0.5 */
    const uint64_t *valid;     /* NULL: all known */
    const uint8_t *scores;     /* NULL: 0/1 labels; else round(score*255) */
    uint32_t score_stride;
} tr_labels;

typedef struct tr_neighbor {
    float sim;   /* dot(q,row) / ||row||: cosine times ||q|| */
    uint32_t idx;
} tr_neighbor;

/* Rows scored per kernel call; the arena holds one block of int32 dots. */
#define TR_KNN_BLOCK 256u

/* The k best rows by sim, best first; ties go to the lower index. dots is
 * scratch of TR_KNN_BLOCK int32. Returns the number found (min(k, n)). */
uint32_t tr_knn_search(const tr_kernels *kern, const tr_refs *refs,
                       const int8_t *q, uint32_t k, int32_t *dots,
                       tr_neighbor *out);

/* predicted[m] = mean label of model m over the neighbours whose label is
 * known; NaN where none is (the caller falls back to a prior). */
void tr_knn_predict(const tr_labels *lab, const tr_neighbor *nb, uint32_t k,
                    float *predicted);

#endif
