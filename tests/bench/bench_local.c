/* Route time with a full local store (issue #16, core/INTEGRATION.md "Local
 * learning"): the same prompts routed pack-only and through stores of 1,024
 * and 8,192 entries (filled from the data set's own prompt embeddings, so
 * that entries fall inside neighbour radii as on a device), text queries
 * and int8 queries, best of REPS passes (ns per route; the passes take the
 * stores in turn). No assertion on time: it prints a table.
 *
 * usage: bench_local DATASET PACK [REPS] */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset.h"
#include "keys.h"
#include "tinyroute.h"
#include "util.h"

#define PUB "fixtures/keys/test-signing.pub"

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_local DATASET PACK [REPS]\n");
        return 2;
    }
    const int reps = argc > 3 ? atoi(argv[3]) : 5;
    trh_dataset ds;
    if (trh_dataset_load(argv[1], &ds) != 0)
        return 1;
    size_t len;
    uint8_t *raw = trh_read_file(argv[2], &len);
    tr_pubkey pub;
    void *pack, *vm, *cm;
    if (!raw || trh_key_load_public(PUB, &pub) != 0 || posix_memalign(&pack, 64, len) ||
        posix_memalign(&vm, 64, tr_pack_size()))
        return 1;
    memcpy(pack, raw, len);
    tr_trust trust = {.keys = &pub, .n_keys = 1};
    const tr_pack *p;
    tr_pack_info info;
    if (tr_pack_open(vm, tr_pack_size(), pack, len, &trust, &p) != TR_OK ||
        tr_pack_get_info(p, &info) != TR_OK)
        return 1;
    const size_t cb = tr_ctx_size_for(p);
    tr_ctx *c;
    if (posix_memalign(&cm, 64, cb) ||
        tr_ctx_init(cm, cb, info.dim, info.n_models, info.prefilter_candidates, &c) != TR_OK)
        return 1;
    /* Every prompt's embedding (the store's fill and the int8 queries). */
    const size_t n = ds.n_prompts, dim = info.dim;
    int8_t *emb = trh_xcalloc(n, dim);
    int *ok = trh_xcalloc(n, sizeof *ok);
    for (size_t i = 0; i < n; i++) {
        ok[i] = tr_embed(p, c, ds.prompts[i].text, strlen(ds.prompts[i].text), emb + i * dim,
                         dim) == TR_OK;
        int any = 0; /* a prompt of no known word embeds to zeros */
        for (size_t d = 0; d < dim; d++)
            any |= emb[i * dim + d] != 0;
        ok[i] &= any;
    }
    /* Every store is filled first and the passes interleave them, so that
     * a change in the machine's load falls on every column alike. */
    enum { NCAP = 3 };
    const uint32_t caps[NCAP] = {0, 1024, 8192};
    const size_t nq = n < 1000 ? n : 1000; /* queries: the first prompts */
    tr_local *store[NCAP] = {NULL};
    void *smem[NCAP] = {NULL};
    for (size_t ci = 0; ci < NCAP; ci++) {
        if (!caps[ci])
            continue;
        size_t sb = tr_local_size(caps[ci], info.dim, info.n_models);
        if (posix_memalign(&smem[ci], 64, sb) ||
            tr_local_init(smem[ci], sb, caps[ci], p, &store[ci]) != TR_OK)
            return 1;
        /* Fill to capacity: prompts after the queries, then variants (one
         * value nudged) until full; one outcome each. */
        tr_local_stats st = {0};
        for (size_t k = 0; st.count < caps[ci]; k++) {
            size_t i = nq + k % (n - nq);
            int8_t e[8192];
            memcpy(e, emb + i * dim, dim);
            e[k / (n - nq) % dim] = (int8_t)(e[k / (n - nq) % dim] / 2 + 1);
            tr_local_add(store[ci], e, (uint32_t)dim, (uint32_t)(k % info.n_models),
                         (float)(k % 3) / 2.0f);
            tr_local_stats_get(store[ci], &st);
        }
    }
    double best_t[NCAP], best_i[NCAP];
    for (size_t ci = 0; ci < NCAP; ci++)
        best_t[ci] = best_i[ci] = 1e30;
    for (int r = 0; r < reps; r++)
        for (size_t ci = 0; ci < NCAP; ci++) {
            tr_route_opts o = {.local = store[ci]};
            tr_result res;
            size_t ni = 0;
            double t0 = now_ns();
            for (size_t i = 0; i < nq; i++) {
                const tr_query q = tr_query_text(ds.prompts[i].text, strlen(ds.prompts[i].text));
                tr_route(p, c, &q, &o, &res, NULL);
            }
            double t1 = now_ns();
            for (size_t i = 0; i < nq; i++) {
                if (!ok[i])
                    continue;
                const tr_query q = tr_query_i8(info.embedder, emb + i * dim, (uint32_t)dim);
                tr_route(p, c, &q, &o, &res, NULL);
                ni++;
            }
            double t2 = now_ns();
            if ((t1 - t0) / nq < best_t[ci])
                best_t[ci] = (t1 - t0) / nq;
            if (ni && (t2 - t1) / ni < best_i[ci])
                best_i[ci] = (t2 - t1) / ni;
        }
    printf("| store entries | text route (ns) | ratio | int8 route (ns) | ratio |\n");
    printf("|---:|---:|---:|---:|---:|\n");
    for (size_t ci = 0; ci < NCAP; ci++) {
        printf("| %u | %.0f | %.2f | %.0f | %.2f |\n", caps[ci], best_t[ci],
               best_t[ci] / best_t[0], best_i[ci], best_i[ci] / best_i[0]);
        free(smem[ci]);
    }
    printf("\npack: D=%u, N=%u references, M=%u models, k=%u; %zu queries, best of %d; kernel %s\n",
           info.dim, info.n_refs, info.n_models, info.default_k, nq, reps, tr_kernel_name());
    free(emb);
    free(ok);
    free(raw);
    free(pack);
    free(vm);
    free(cm);
    trh_dataset_free(&ds);
    return 0;
}
