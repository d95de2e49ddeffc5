/* Host-side fitting of a hashed embedder table (platform/tr_format.h,
 * TR_EMB_HASHED): latent semantic analysis of the prompts' hashed word and
 * character n-gram features. The device sums one row per feature, so a row
 * is its feature's idf times that feature's coordinates in the top singular
 * directions: the sum is the projection of the prompt's tf-idf vector. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "trh_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tr_embed.h"
#include "trh_rand.h"

/* Sparse rows (CSR): the prompts' feature counts, then tf-idf values. */
typedef struct csr {
    size_t n, nnz, cap;
    size_t *start; /* n + 1 */
    uint32_t *col;
    double *val;
} csr;

typedef struct feats {
    uint32_t *row;
    size_t n, cap;
    int oom;
} feats;

static void collect(void *ctx, uint32_t row)
{
    feats *f = ctx;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 1024;
        uint32_t *r = realloc(f->row, cap * sizeof *r);
        if (!r) {
            f->oom = 1;
            return;
        }
        f->row = r;
        f->cap = cap;
    }
    f->row[f->n++] = row;
}

static int by_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* y[n x l] = A x[cols x l] */
static void mul(const csr *a, const double *x, uint32_t l, double *y)
{
    memset(y, 0, a->n * l * sizeof *y);
    for (size_t i = 0; i < a->n; i++)
        for (size_t p = a->start[i]; p < a->start[i + 1]; p++) {
            const double v = a->val[p], *xr = x + (size_t)a->col[p] * l;
            double *yr = y + i * l;
            for (uint32_t j = 0; j < l; j++)
                yr[j] += v * xr[j];
        }
}

/* x[cols x l] = A^T y[n x l] */
static void mul_t(const csr *a, const double *y, uint32_t l, double *x, uint32_t cols)
{
    memset(x, 0, (size_t)cols * l * sizeof *x);
    for (size_t i = 0; i < a->n; i++)
        for (size_t p = a->start[i]; p < a->start[i + 1]; p++) {
            const double v = a->val[p], *yr = y + i * l;
            double *xr = x + (size_t)a->col[p] * l;
            for (uint32_t j = 0; j < l; j++)
                xr[j] += v * yr[j];
        }
}

/* Orthonormal columns of m (rows x l, row-major): modified Gram-Schmidt,
 * twice (one pass loses orthogonality on near-dependent columns). A column
 * that vanishes is left zero. */
static void orthonormalize(double *m, size_t rows, uint32_t l)
{
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t j = 0; j < l; j++) {
            for (uint32_t k = 0; k < j; k++) {
                double d = 0;
                for (size_t i = 0; i < rows; i++)
                    d += m[i * l + j] * m[i * l + k];
                for (size_t i = 0; i < rows; i++)
                    m[i * l + j] -= d * m[i * l + k];
            }
            double s = 0;
            for (size_t i = 0; i < rows; i++)
                s += m[i * l + j] * m[i * l + j];
            s = s > 1e-300 ? 1.0 / sqrt(s) : 0.0;
            for (size_t i = 0; i < rows; i++)
                m[i * l + j] *= s;
        }
}

/* Eigen-decomposition of the symmetric l x l matrix c (destroyed) by cyclic
 * Jacobi rotations: eigenvalues to w, eigenvectors as columns of v. */
static void jacobi(double *c, uint32_t l, double *w, double *v)
{
    for (uint32_t i = 0; i < l; i++)
        for (uint32_t j = 0; j < l; j++)
            v[i * l + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (uint32_t i = 0; i < l; i++)
            for (uint32_t j = 0; j < l; j++)
                if (i == j)
                    diag += c[i * l + j] * c[i * l + j];
                else
                    off += c[i * l + j] * c[i * l + j];
        if (off <= 1e-22 * diag)
            break;
        for (uint32_t p = 0; p < l; p++)
            for (uint32_t q = p + 1; q < l; q++) {
                const double apq = c[p * l + q];
                if (fabs(apq) < 1e-300)
                    continue;
                const double theta = (c[q * l + q] - c[p * l + p]) / (2 * apq);
                const double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                const double cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (uint32_t k = 0; k < l; k++) { /* columns p, q */
                    const double a = c[k * l + p], b = c[k * l + q];
                    c[k * l + p] = cs * a - sn * b;
                    c[k * l + q] = sn * a + cs * b;
                }
                for (uint32_t k = 0; k < l; k++) { /* rows p, q */
                    const double a = c[p * l + k], b = c[q * l + k];
                    c[p * l + k] = cs * a - sn * b;
                    c[q * l + k] = sn * a + cs * b;
                }
                for (uint32_t k = 0; k < l; k++) {
                    const double a = v[k * l + p], b = v[k * l + q];
                    v[k * l + p] = cs * a - sn * b;
                    v[k * l + q] = sn * a + cs * b;
                }
            }
    }
    for (uint32_t i = 0; i < l; i++)
        w[i] = c[i * l + i];
}

int trh_hashed_fit(const char *const *texts, size_t n, uint32_t rows, uint32_t dim, uint64_t seed,
                  float *proj, trh_fit_progress progress, void *progress_ctx)
{
    const uint32_t l = dim + (dim < 20 ? 10 : dim / 2); /* oversampling (Halko et al. 2011) */
    csr a = {.n = n};
    feats f = {0};
    uint32_t *df = calloc(rows, sizeof *df);
    double *idf = malloc(rows * sizeof *idf), *omega = NULL, *y = NULL, *bt = NULL, *c = NULL,
           *w = NULL, *v = NULL;
    int rc = -1;
    a.start = calloc(n + 1, sizeof *a.start);
    if (!df || !idf || !a.start)
        goto out;
    /* Counts per prompt: sort its feature rows, merge repeats. */
    for (size_t i = 0; i < n; i++) {
        if (progress && i % 1024 == 0)
            progress(progress_ctx, "features", i, n);
        f.n = 0;
        tr_hashed_features((const uint8_t *)texts[i], strlen(texts[i]), rows, collect, &f);
        if (f.oom)
            goto out;
        qsort(f.row, f.n, sizeof *f.row, by_u32);
        for (size_t p = 0; p < f.n;) {
            size_t q = p;
            while (q < f.n && f.row[q] == f.row[p])
                q++;
            if (a.nnz == a.cap) {
                size_t cap = a.cap ? 2 * a.cap : 1 << 16;
                uint32_t *col = realloc(a.col, cap * sizeof *col);
                if (col)
                    a.col = col;
                double *val = realloc(a.val, cap * sizeof *val);
                if (val)
                    a.val = val;
                if (!col || !val)
                    goto out;
                a.cap = cap;
            }
            a.col[a.nnz] = f.row[p];
            a.val[a.nnz++] = (double)(q - p);
            df[f.row[p]]++;
            p = q;
        }
        a.start[i + 1] = a.nnz;
    }
    /* Smoothed idf (as scikit-learn's TfidfTransformer); rows normalised
     * for the fit only: a prompt's length scales its vector, not its
     * direction, and long prompts must not own the singular directions. */
    for (uint32_t r = 0; r < rows; r++)
        idf[r] = log((1.0 + (double)n) / (1.0 + df[r])) + 1.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t p = a.start[i]; p < a.start[i + 1]; p++) {
            a.val[p] *= idf[a.col[p]];
            s += a.val[p] * a.val[p];
        }
        s = s > 0 ? 1.0 / sqrt(s) : 0;
        for (size_t p = a.start[i]; p < a.start[i + 1]; p++)
            a.val[p] *= s;
    }
    /* Randomized range finder with power iterations, then the exact SVD of
     * the small projected matrix through its l x l Gram matrix. */
    omega = malloc((size_t)rows * l * sizeof *omega);
    bt = malloc((size_t)rows * l * sizeof *bt);
    y = malloc(n * l * sizeof *y);
    c = malloc((size_t)l * l * sizeof *c);
    w = malloc(l * sizeof *w);
    v = malloc((size_t)l * l * sizeof *v);
    if (!omega || !bt || !y || !c || !w || !v)
        goto out;
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)rows * l; i++)
        omega[i] = (trh_splitmix64(&s) >> 63) ? 1.0 : -1.0;
    enum { POWER = 7 }; /* passes: 1 + POWER + 1, then the small SVD */
    if (progress)
        progress(progress_ctx, "SVD", 0, POWER + 3);
    mul(&a, omega, l, y);
    orthonormalize(y, n, l);
    for (int it = 0; it < POWER; it++) {
        if (progress)
            progress(progress_ctx, "SVD", 1 + (uint64_t)it, POWER + 3);
        mul_t(&a, y, l, bt, rows);
        orthonormalize(bt, rows, l);
        mul(&a, bt, l, y);
        orthonormalize(y, n, l);
    }
    if (progress)
        progress(progress_ctx, "SVD", POWER + 1, POWER + 3);
    mul_t(&a, y, l, bt, rows); /* B^T = A^T Q, rows x l */
    memset(c, 0, (size_t)l * l * sizeof *c);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t i = 0; i < l; i++)
            for (uint32_t j = 0; j < l; j++)
                c[i * l + j] += bt[(size_t)r * l + i] * bt[(size_t)r * l + j];
    if (progress)
        progress(progress_ctx, "SVD", POWER + 2, POWER + 3);
    jacobi(c, l, w, v);
    /* Right singular vectors: B^T u_j / sigma_j, for the dim largest. */
    uint32_t order[768]; /* l <= 500 + 250 */
    for (uint32_t i = 0; i < l; i++)
        order[i] = i;
    for (uint32_t i = 1; i < l; i++)
        for (uint32_t j = i; j > 0 && w[order[j]] > w[order[j - 1]]; j--) {
            uint32_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (uint32_t d = 0; d < dim; d++) {
        const uint32_t k = order[d];
        const double sig = w[k] > 0 ? sqrt(w[k]) : 0;
        for (uint32_t r = 0; r < rows; r++) {
            double x = 0;
            for (uint32_t i = 0; i < l; i++)
                x += bt[(size_t)r * l + i] * v[i * l + k];
            proj[(size_t)r * dim + d] = sig > 0 ? (float)(idf[r] * x / sig) : 0.0f;
        }
    }
    rc = 0;
out:
    free(df), free(idf), free(a.start), free(a.col), free(a.val), free(f.row);
    free(omega), free(y), free(bt), free(c), free(w), free(v);
    return rc;
}
