/* References for tr_knn_search built on the host (host only: allocates). */
#ifndef TRH_TOOLS_REFS_H
#define TRH_TOOLS_REFS_H

#include "trh_fit.h"

/* trh_refs_make, exiting with a message when out of memory (as
 * trh_xmalloc); trh_refs_free releases the result. */
tr_refs trh_xrefs(const int8_t *rows, size_t row_stride, uint32_t n, uint32_t dim);

#endif
