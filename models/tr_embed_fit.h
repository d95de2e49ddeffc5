/* Host-side embedder fitting (linked into the CLI only). */
#ifndef TR_EMBED_FIT_H
#define TR_EMBED_FIT_H

#include <stddef.h>
#include <stdint.h>

/* First right singular vector of the n rows of x (unit, float): what SIF
 * removes. Power iteration in double on X^T X; deterministic start.
 * 0, or -1 when out of memory. */
int tr_first_pc(const float *x, size_t n, uint32_t dim, float *pc);

/* A hashed table's rows (core/tr_format.h, TR_EMB_HASHED) learned from n
 * valid UTF-8 texts: the top dim right singular vectors of their tf-idf
 * feature matrix (smoothed idf, rows normalised), row r scaled by feature
 * r's idf, so the device's sum of a prompt's feature rows projects its
 * tf-idf vector. rows: a power of two; dim <= 500; proj: rows x dim.
 * Randomized SVD (Halko et al. 2011), deterministic for a seed. progress
 * (may be NULL) hears each phase's steps: "features" per text, then "SVD"
 * per pass over the matrix. 0, or -1 when out of memory. */
typedef void (*tr_fit_progress)(void *ctx, const char *phase, uint64_t done, uint64_t total);
int tr_hashed_fit(const char *const *texts, size_t n, uint32_t rows, uint32_t dim, uint64_t seed,
                  float *proj, tr_fit_progress progress, void *progress_ctx);

/* v /= ||v|| (a zero vector stays zero). */
void tr_normalize(float *v, uint32_t dim);

#endif
