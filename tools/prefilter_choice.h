/* build --prefilter auto (issue 15, item 4): the binary prefilter's C
 * chosen on the pack's own references, and whether it pays at all.
 * Host only.
 *
 * Recall: a fixed-seed sample of references is searched leave-one-out,
 * exactly (the device's int8 kernel) and by sign codes; for each of a
 * query's TRH_PREFILTER_RECALL_AT exact neighbours, the number of
 * candidates the device's prefilter must keep to hold it is its place in
 * the (Hamming distance, index) order of the other references, plus one.
 * Recall at any C then follows from those places, so the smallest C that
 * reaches a recall target is read off them exactly, not from a grid.
 *
 * Cost: a route reads every reference row once with exact search; with the
 * prefilter it reads every sign code twice (tr_knn_search_prefilter's two
 * passes) and reranks C rows. Per row and pass the prefilter also pays
 * work that does not shrink with the code (popcount, bin update), counted
 * as TRH_PREFILTER_ROW_BYTES bytes; a reranked row costs what
 * TRH_PREFILTER_RERANK_ROWS rows of exact search do (it is fetched alone,
 * and in pack format 2 its chunks lie in every line of its block of 4).
 * Predicted time against exact:
 *   (2 * (code + ROW_BYTES) * n + C * RERANK_ROWS * stride) / (n * stride)
 * Calibrated on `make bench` on the idle Xeon (AVX-512 VNNI, one thread,
 * format 2, tests/bench/RESULTS.md of 2026-12-06 (6)): on the real 12,025
 * x 100 prompts an exact row cost 1.76 ns, a Hamming pass 1.06 ns a row
 * (68 bytes' worth at the exact rate, 16 of them the code) and a reranked
 * row 27.6 ns (15.7 rows); at 100k x 768, 27.7 ns, 4.7 ns (130 bytes) and
 * 262 ns (9.5 rows). The model predicts 1.67 (measured 1.69) at 12k x 100,
 * C = 289, and 0.47 (measured 0.39) at 100k x 768, C = 462: exact where
 * cache-resident, cautious where memory-bound. (The row-major format's
 * model, with a reranked row at 1 row, predicted 1.31 against 1.69.) */
#ifndef TRH_TOOLS_PREFILTER_CHOICE_H
#define TRH_TOOLS_PREFILTER_CHOICE_H

#include <stddef.h>
#include <stdint.h>

#define TRH_PREFILTER_RECALL_AT 10u   /* recall@10, issue 15's measure */
#define TRH_PREFILTER_TARGET 0.95     /* the recall C is chosen for */
#define TRH_PREFILTER_QUERIES 1000u   /* sampled references searched */
#define TRH_PREFILTER_ROW_BYTES 56u   /* per-row, per-pass work, in bytes */
#define TRH_PREFILTER_RERANK_ROWS 16u /* a reranked row, in exact rows */
/* Enabled only where the model predicts at most half the exact time: the
 * prefilter costs recall and N*D/8 bytes, so a 10% gain is not worth it,
 * and it must never be slower than exact where a pack enables it on a
 * machine other than the bench's. */
#define TRH_PREFILTER_PAYS 0.5

typedef struct trh_prefilter_places {
    uint32_t *place;    /* sorted: candidates needed for each exact neighbour */
    size_t n_places;    /* n_queries * recall_at (fewer with tiny sets) */
    uint32_t n_queries;
    uint32_t recall_at;
} trh_prefilter_places;

/* The places of n int8 rows (dim each, contiguous; n >= 2), searched
 * against each other. 0, or 1 after a message (too few rows).
 * trh_prefilter_places_free after either. */
int trh_prefilter_places_of(const int8_t *rows, size_t n, uint32_t dim, trh_prefilter_places *pl);
void trh_prefilter_places_free(trh_prefilter_places *pl);

/* Recall@recall_at of the prefilter with c candidates, over the sample. */
double trh_prefilter_recall(const trh_prefilter_places *pl, uint32_t c);

/* The smallest c whose recall reaches target (at most n - 1). */
uint32_t trh_prefilter_c_for(const trh_prefilter_places *pl, double target);

/* The cost model above: predicted route time with c candidates over exact. */
double trh_prefilter_cost_ratio(size_t n, uint32_t dim, uint32_t c);

/* build's prefilter: given_c as given (--prefilter C), or, with choose set
 * (--prefilter auto), the smallest C reaching TRH_PREFILTER_TARGET, at
 * least k, kept only if it reaches the target within TR_PREFILTER_MAX and
 * the model predicts at most TRH_PREFILTER_PAYS of exact search's time;
 * else the pack searches exactly (c = 0). */
typedef struct trh_prefilter_choice {
    uint32_t c;          /* written to the pack; 0: exact search */
    uint32_t c_tried;    /* the C measured: the given one, or the chosen */
    double recall;       /* recall@recall_at at c_tried, over the sample */
    double cost_ratio;   /* predicted route time at c_tried over exact */
    uint32_t n_queries, recall_at;
    int chosen;          /* 1: --prefilter auto */
    int reached;         /* recall >= TRH_PREFILTER_TARGET */
} trh_prefilter_choice;
int trh_choose_prefilter(const int8_t *rows, size_t n, uint32_t dim, uint32_t k,
                        uint32_t given_c, int choose, trh_prefilter_choice *out);

#endif
