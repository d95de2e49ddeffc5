/* Host references: row-major int8 rows into the blocks layout tr_knn_search
 * reads (pack format 2), for the host tools that search outside a pack. */
#include "trh_fit.h"

#include <stdlib.h>

#include "tr_format.h"

int trh_refs_make(const int8_t *rows, size_t row_stride, uint32_t n, uint32_t dim,
                  tr_refs *out)
{
    int8_t *blocks = malloc(tr_ref_bytes(n, dim) ? (size_t)tr_ref_bytes(n, dim) : 1);
    float *inv = malloc(n ? n * sizeof *inv : 1);
    if (!blocks || !inv) {
        free(blocks), free(inv);
        *out = (tr_refs){0, 0, NULL, NULL};
        return -1;
    }
    tr_refs_put_rows(blocks, rows, row_stride, n, dim);
    for (uint32_t i = 0; i < n; i++)
        inv[i] = tr_i8_inv_norm(rows + (size_t)i * row_stride, dim);
    *out = (tr_refs){n, dim, blocks, inv};
    return 0;
}

void trh_refs_free(tr_refs *refs)
{
    free((void *)refs->rows), free((void *)refs->inv_norm);
    *refs = (tr_refs){0, 0, NULL, NULL};
}
