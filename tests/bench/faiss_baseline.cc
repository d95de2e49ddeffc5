// FAISS baselines for `make bench` (Debian libfaiss-dev, C++ only): exact
// float32 inner product and exact binary Hamming search, one thread, one
// query at a time, timed the same way as tinyroute's kernels; and for
// `make bench-kmeans`, faiss::Clustering as the build's K-means.
#include <faiss/Clustering.h>
#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexFlat.h>
#include <omp.h>

#include <cstdint>
#include <ctime>
#include <vector>

static double now_ms()
{
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

extern "C" {

// Median-free simple timing: total ms over the queries / n_queries, best of
// `reps`. ids receive the last run's neighbours (n_queries x k).
double tr_bench_faiss_flat_ip(const float *x, long n, int d, const float *q, int n_queries, int k,
                              int reps, long *ids)
{
    omp_set_num_threads(1);
    faiss::IndexFlatIP index(d);
    index.add(n, x);
    std::vector<float> dist(k);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        for (int i = 0; i < n_queries; i++)
            index.search(1, q + (size_t)i * d, k, dist.data(), ids + (size_t)i * k);
        double ms = (now_ms() - t0) / n_queries;
        if (ms < best)
            best = ms;
    }
    return best;
}

double tr_bench_faiss_binary(const uint8_t *codes, long n, int bits, const uint8_t *q, int n_queries,
                             int k, int reps)
{
    omp_set_num_threads(1);
    faiss::IndexBinaryFlat index(bits);
    index.add(n, codes);
    std::vector<int32_t> dist(k);
    std::vector<faiss::Index::idx_t> ids(k);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        for (int i = 0; i < n_queries; i++)
            index.search(1, q + (size_t)i * bits / 8, k, dist.data(), ids.data());
        double ms = (now_ms() - t0) / n_queries;
        if (ms < best)
            best = ms;
    }
    return best;
}

// faiss::Clustering with the build's recipe: k centroids, niter Lloyd
// iterations, trained on at most max_per_centroid * k rows (FAISS draws its
// own sample), `threads` OpenMP threads; then every row to its nearest
// centroid (IndexFlatL2 search). Writes the centroids; returns the inertia
// over all n rows; *train_ms and *assign_ms the two phases' wall times.
double tr_bench_faiss_kmeans(const float *x, long n, int d, int k, int niter, int max_per_centroid,
                             int threads, float *centroids, double *train_ms, double *assign_ms)
{
    omp_set_num_threads(threads);
    faiss::ClusteringParameters cp;
    cp.niter = niter;
    cp.max_points_per_centroid = max_per_centroid;
    cp.seed = 1234;
    cp.verbose = false;
    faiss::Clustering clus(d, k, cp);
    faiss::IndexFlatL2 index(d);
    double t0 = now_ms();
    clus.train(n, x, index);
    double t1 = now_ms();
    std::vector<float> dist(n);
    std::vector<faiss::Index::idx_t> ids(n);
    index.search(n, x, 1, dist.data(), ids.data());
    double t2 = now_ms();
    *train_ms = t1 - t0;
    *assign_ms = t2 - t1;
    std::copy(clus.centroids.begin(), clus.centroids.end(), centroids);
    double inertia = 0;
    for (long i = 0; i < n; i++)
        inertia += dist[i];
    return inertia;
}
}
