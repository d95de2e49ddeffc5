/* Host-side fitting for the built-in embedder: the principal component the
 * builder removes (Arora et al. 2017's SIF), and unit normalisation. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int trh_first_pc(const float *x, size_t n, uint32_t dim, float *pc)
{
    double *v = calloc(dim, sizeof *v), *w = calloc(dim, sizeof *w);
    if (!v || !w) {
        free(v);
        free(w);
        return -1;
    }
    for (uint32_t d = 0; d < dim; d++)
        v[d] = 1.0 / sqrt((double)dim) * (d % 2 ? 1.0 : 0.5);
    for (int it = 0; it < 200; it++) {
        memset(w, 0, dim * sizeof *w);
        for (size_t i = 0; i < n; i++) {
            const float *r = x + i * dim;
            double t = 0;
            for (uint32_t d = 0; d < dim; d++)
                t += r[d] * v[d];
            for (uint32_t d = 0; d < dim; d++)
                w[d] += t * r[d];
        }
        double nrm = 0;
        for (uint32_t d = 0; d < dim; d++)
            nrm += w[d] * w[d];
        nrm = sqrt(nrm);
        for (uint32_t d = 0; d < dim; d++)
            v[d] = nrm > 0 ? w[d] / nrm : 0;
    }
    for (uint32_t d = 0; d < dim; d++)
        pc[d] = (float)v[d];
    free(v);
    free(w);
    return 0;
}

void trh_normalize(float *v, uint32_t dim)
{
    double s = 0;
    for (uint32_t d = 0; d < dim; d++)
        s += (double)v[d] * v[d];
    if (s > 0)
        for (uint32_t d = 0; d < dim; d++)
            v[d] = (float)(v[d] / sqrt(s));
}

