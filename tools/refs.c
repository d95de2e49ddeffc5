#include "refs.h"

#include <stdlib.h>

#include "util.h"

tr_refs trh_xrefs(const int8_t *rows, size_t row_stride, uint32_t n, uint32_t dim)
{
    tr_refs r;
    if (trh_refs_make(rows, row_stride, n, dim, &r) != 0) {
        trh_err("out of memory (%u references of %u bytes)", n, dim);
        exit(70);
    }
    return r;
}
