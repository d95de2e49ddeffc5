/* kNN correctness predictor (Shnitzer et al. 2023; Li 2025): a model's
 * chance of being right on a prompt is its mean correctness over the k
 * reference prompts nearest in cosine similarity. */
#ifndef TR_KNN_H
#define TR_KNN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "tinyroute_status.h"
#include "tr_kernels.h"

/* Reference set, in place in the pack. */
typedef struct tr_refs {
    uint32_t n, dim;
    const int8_t *rows;        /* in blocks of 4 (tr_ref_offset in
                                  platform/tr_format.h): tr_ref_bytes(n, dim) */
    const float *inv_norm;     /* 1/||row|| of each int8 row */
} tr_refs;

/* Row-major rows (src_stride bytes apart, dim used) into the blocks layout
 * at dst (tr_ref_bytes(n, dim) bytes; padding and the rows past n zeroed):
 * for host code that builds references outside a pack. */
void tr_refs_put_rows(int8_t *dst, const int8_t *src, size_t src_stride, uint32_t n,
                      uint32_t dim);
/* Row r of refs into out[dim]. */
void tr_refs_get_row(const tr_refs *refs, uint32_t r, int8_t *out);

/* Sign-bit codes of the references (bit d of row r: row[d] > 0). */
typedef struct tr_codes {
    uint32_t words;            /* u64 per code (stride / 8) */
    const uint64_t *bits;
} tr_codes;

/* Per-model labels, in place in the pack. */
typedef struct tr_labels {
    uint32_t n_models, n_refs;
    uint32_t bit_words;        /* u64 words between two models' bitsets */
    const uint64_t *correct;   /* bit set: score >= 0.5 */
    const uint64_t *valid;     /* NULL: all known */
    const uint8_t *scores;     /* NULL: 0/1 labels; else round(score*255) */
    uint32_t score_stride;
    /* Model m's prior (mean score over all its labelled references) is the
     * little-endian f32 at priors + m * prior_stride: the pack's model
     * records, read in place. NULL: no priors (estimates as without). */
    const uint8_t *priors;
    uint32_t prior_stride;
} tr_labels;

typedef struct tr_neighbor {
    float sim;   /* dot(q,row) / ||row||: cosine times ||q|| */
    uint32_t idx;
} tr_neighbor;

/* Rows scored per kernel call; the arena holds one block of int32 dots. */
#define TR_KNN_BLOCK 256u

/* The k best rows by sim, best first; ties go to the lower index. dots is
 * scratch of TR_KNN_BLOCK int32. Returns the number found (min(k, n)). */
/* Load-time check of int8 rows: no -128, zero padding past dim. */
int tr_i8_rows_ok(const int8_t *rows, uint64_t n_rows, uint32_t dim, uint32_t stride);
/* The same for reference rows in blocks of 4 (tr_ref_bytes(n_rows, dim)
 * bytes): the rows past n_rows zero too. */
int tr_i8_blocks_ok(const int8_t *blocks, uint64_t n_rows, uint32_t dim);

uint32_t tr_knn_search(const tr_kernels *kern, const tr_refs *refs,
                       const int8_t *q, uint32_t k, int32_t *dots,
                       tr_neighbor *out);

/* Sign-bit code of a query: words u64. */
void tr_knn_sign_code(const int8_t *q, uint32_t dim, uint64_t *code, uint32_t words);

/* Binary prefilter + exact rerank: the c references nearest in Hamming
 * distance (ties to the lower index) are rescored with the int8 kernel and
 * the k best returned, as tr_knn_search would rank them. The c are chosen by
 * counting (a histogram of the distances, then the rows below the edge bin
 * and the best of the edge bin's): the same set a heap on (distance,
 * index) keeps. Scratch: qcode (codes->words), ham (TR_KNN_BLOCK: bins and
 * a block of distances), cand (c; left holding the candidates, in no set
 * order). Returns min(k, c, n). */
uint32_t tr_knn_search_prefilter(const tr_kernels *kern, const tr_refs *refs,
                                 const tr_codes *codes, const int8_t *q,
                                 uint32_t k, uint32_t c, uint64_t *qcode,
                                 uint32_t *ham, tr_neighbor *cand,
                                 tr_neighbor *out);

/* predicted[m] = model m's mean label over the neighbours whose label is
 * known, shrunk toward its prior by a pseudo-neighbours (a Beta prior of
 * strength a, Li 2025's beta-binomial view of kNN routing):
 *   uniform:  (hits + a * prior) / (known + a)
 *   weighted: (sum w y + a' * prior) / (sum w + a'), a' = a * mean(w),
 * the weights' mean over all k neighbours, i.e. a counts in neighbours of
 * average weight, as in the uniform case, whatever the distance scale.
 * Why: with k neighbours the raw means are multiples of 1/k, so models tie
 * often (and a tie goes to the cheaper one); the prior breaks such ties by
 * the whole reference set's evidence, and damps estimates that rest on few
 * known labels. a = 0 gives the plain means, bit for bit. A model with no
 * known neighbour gets exactly its prior (NaN without priors).
 * Weighted: each neighbour counts 1 / (cosine distance), as scikit-learn's
 * weights='distance'; neighbours at distance 0 (<= 1e-6: float rounding)
 * then take all the weight.
 * inv_qnorm = 1/||q|| turns a neighbour's sim into its cosine. a: finite,
 * >= 0 (ignored without priors). */
void tr_knn_predict(const tr_labels *lab, const tr_neighbor *nb, uint32_t k,
                    int weighted, float inv_qnorm, float a, float *predicted);
/* The same with extra evidence per model (the device's local outcomes):
 * ext_hits[m] outcome units over ext_known[m] neighbour units join the
 * sums, (hits + a * prior + ext_hits) / (known + a + ext_known) (weighted:
 * the extra units count at the neighbours' mean weight). A model with
 * ext_known[m] == 0, or both arrays NULL, is predicted by tr_knn_predict's
 * very operations (bit for bit). pack_share (NULL, or n_models): the
 * share of each estimate's weight that is the pack's (neighbours and
 * prior), 1 without extra units: where the local level term applies.
 * pack_only (NULL, or n_models): the estimate without the extra evidence,
 * bit for bit tr_knn_predict's, from the same pass over the neighbours.
 * It may be ext_hits itself: each model's extra evidence is read before its
 * pack-only estimate is written. */
void tr_knn_predict_ext(const tr_labels *lab, const tr_neighbor *nb, uint32_t k, int weighted,
                        float inv_qnorm, float a, const float *ext_hits, const float *ext_known,
                        float *predicted, float *pack_share, float *pack_only);

/* Exact squared norm of an int8 row (an int64 sum, exact for any TR_DIM_MAX;
 * a float sum rounds past 2^24). */
static inline uint64_t tr_i8_sqnorm(const int8_t *q, uint32_t dim)
{
    int64_t ss = 0;
    for (uint32_t d = 0; d < dim; d++)
        ss += (int32_t)q[d] * q[d];
    return (uint64_t)ss;
}

/* 1/|row| rounded once to float, 0 for the zero row: the one inverse norm
 * of the format. The builder stores it for every reference, and the device
 * and the host tools compute a query's the same way, so a similarity means
 * the same on both sides. */
static inline float tr_i8_inv_norm(const int8_t *q, uint32_t dim)
{
    uint64_t ss = tr_i8_sqnorm(q, dim);
    return ss ? (float)(1.0 / sqrt((double)ss)) : 0.0f;
}

#endif
