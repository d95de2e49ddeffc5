/* Host-side embedder fitting (linked into the CLI only). */
#ifndef TR_EMBED_FIT_H
#define TR_EMBED_FIT_H

#include <stddef.h>
#include <stdint.h>

/* First right singular vector of the n rows of x (unit, float): what SIF
 * removes. Power iteration in double on X^T X; deterministic start.
 * 0, or -1 when out of memory. */
int tr_first_pc(const float *x, size_t n, uint32_t dim, float *pc);

/* v /= ||v|| (a zero vector stays zero). */
void tr_normalize(float *v, uint32_t dim);

#endif
