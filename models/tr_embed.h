/* The built-in text embedder: tokenizer + SIF-weighted word vectors, or
 * hashed word and character n-gram features with builder-learned rows.
 * One implementation, used by the device (core/) and by the host pack
 * builder (tools/), so both produce the same bits for the same prompt. */
#ifndef TR_EMBED_H
#define TR_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute_status.h"

typedef struct tr_embedder {
    uint32_t n_words, dim, n_buckets, max_word, flags;
    float scale, sif_a;
    const uint32_t *buckets;
    const uint32_t *word_offs;
    const uint8_t *chars;
    const float *weights;
    const int8_t *vectors;
    const float *pc; /* NULL unless TR_EMB_HAS_PC */
} tr_embedder;

/* Check an embedder section (bounds, alignment, table consistency) and point
 * a view at it. sec must be 4-byte aligned. */
tr_status tr_embedder_view(const uint8_t *sec, size_t len, tr_embedder *e);

/* Length (1..4) of the valid UTF-8 sequence at p, 0 if invalid: no
 * overlongs, surrogates or code points above U+10FFFF. */
size_t tr_utf8_seq(const uint8_t *p, size_t left);

/* Index of a lower-cased word, or -1. */
int32_t tr_embedder_lookup(const tr_embedder *e, const uint8_t *w, uint32_t n);

/* A hashed table's features of a valid UTF-8 text (platform/tr_format.h): fn
 * gets each feature's row, rows a power of two. The builder fits the rows
 * from the same features. */
typedef void (*tr_feature_fn)(void *ctx, uint32_t row);
void tr_hashed_features(const uint8_t *s, size_t len, uint32_t rows, tr_feature_fn fn, void *ctx);

/* SIF sum of the prompt's known words (a hashed table: of its features),
 * minus the pc projection, into
 * acc[dim] (not normalized: the quantizer is scale-free). *n_known counts
 * the known words; 0 means acc is all zeros.
 * Errors: TR_E_EMPTY_INPUT, TR_E_UTF8. */
tr_status tr_embed_f32(const tr_embedder *e, const char *text, size_t len,
                       float *acc, uint32_t *n_known);

/* Quantize v[dim] to int8 with max |q| = 127 (round half away from zero).
 * TR_E_NOT_FINITE for NaN/Inf, TR_E_ZERO_VECTOR for all zeros. */
tr_status tr_quantize_i8(const float *v, uint32_t dim, int8_t *q);

#endif
