/* Local learning under the documented thread rule (core/tinyroute.h, "Local
 * learning"): one writer adds outcomes while several readers route through
 * the same store and export it, the writer holding a reader-writer lock
 * exclusively and the readers shared. Each thread has its own context; the
 * pack view is shared. Checked: every call succeeds, every prediction is
 * in [0,1], and at the end the store holds exactly what a single-threaded
 * replay of the same adds holds (its sealed export, byte for byte), and
 * routes through it predict the same bits. Under -fsanitize=thread (make
 * test-tsan) this is the race detector's workload for the store.
 *
 * usage: test_local_threads DATASET PACK
 * Plain C (cmocka's assertions longjmp, not meant for other threads);
 * prints "N passed, M failed" like the other suites. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "keys.h"
#include "tinyroute.h"
#include "util.h"

#define PUB "fixtures/keys/test-signing.pub"
enum { N_READERS = 3, N_PROMPTS = 200, CAPACITY = 64 };

static int n_pass, n_fail;
static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok)
        n_pass++;
    else
        n_fail++;
}

static const uint8_t key[32] = "local-threads-device-key-0123456";

typedef struct shared {
    const tr_pack *view;
    tr_pack_info info;
    const char **text;
    size_t n_text;
    tr_local *store;
    pthread_rwlock_t lock;
    atomic_int done;
    atomic_int errors;
    /* The writer's adds, in order, for the replay. */
    int8_t *emb;     /* n_text x dim */
    uint32_t *model; /* n_text */
    float *outcome;  /* n_text */
    float *est;      /* n_text: the route's estimate of the chosen model */
    float *est_all;  /* n_text x n_models: the estimates routes returned */
    int *added;      /* n_text: 1 if added */
} shared;

static tr_ctx *new_ctx(const shared *sh, void **mem)
{
    size_t need = tr_ctx_size_for(sh->view);
    if (posix_memalign(mem, 64, need) != 0)
        return NULL;
    tr_ctx *c = NULL;
    if (tr_ctx_init(*mem, need, sh->info.dim, sh->info.n_models, sh->info.prefilter_candidates,
                    &c) != TR_OK)
        return NULL;
    return c;
}

/* Embeds and routes each prompt pack-only, then records the outcome of
 * the chosen model (a deterministic stand-in: 1 for an even prompt). */
static void *writer_main(void *arg)
{
    shared *sh = arg;
    void *mem;
    tr_ctx *c = new_ctx(sh, &mem);
    if (!c) {
        atomic_fetch_add(&sh->errors, 1);
        return NULL;
    }
    const uint32_t dim = sh->info.dim;
    for (size_t i = 0; i < sh->n_text; i++) {
        const tr_query q = tr_query_text(sh->text[i], strlen(sh->text[i]));
        int8_t *e = sh->emb + i * dim;
        float *est = sh->est_all + i * sh->info.n_models;
        const tr_route_out out = {NULL, 0, e, dim, est, sh->info.n_models};
        tr_result res;
        if (tr_route(sh->view, c, &q, NULL, &res, &out) != TR_OK) {
            atomic_fetch_add(&sh->errors, 1);
            continue;
        }
        if (res.flags & TR_RESULT_PRIOR_ONLY)
            continue;
        sh->model[i] = res.model;
        sh->outcome[i] = (float)(i % 2 == 0);
        pthread_rwlock_wrlock(&sh->lock);
        sh->est[i] = est[res.model];
        /* With the residual for the level term (the readers route with it). */
        tr_status st = tr_local_add_est(sh->store, e, dim, res.model, sh->outcome[i], sh->est[i]);
        pthread_rwlock_unlock(&sh->lock);
        if (st != TR_OK)
            atomic_fetch_add(&sh->errors, 1);
        sh->added[i] = 1;
    }
    atomic_store(&sh->done, 1);
    free(mem);
    return NULL;
}

static void *reader_main(void *arg)
{
    shared *sh = arg;
    void *mem;
    tr_ctx *c = new_ctx(sh, &mem);
    float *pred = calloc(sh->info.n_models, sizeof *pred);
    uint8_t *blob = NULL;
    size_t cap = 0;
    if (!c || !pred) {
        atomic_fetch_add(&sh->errors, 1);
        free(pred);
        return NULL;
    }
    const tr_route_out out = {pred, sh->info.n_models, NULL, 0, NULL, 0};
    size_t i = 0;
    /* At least one pass over the prompts, and on until the writer is done. */
    for (size_t n = 0; n < sh->n_text || !atomic_load(&sh->done); n++, i = (i + 1) % sh->n_text) {
        const tr_query q = tr_query_text(sh->text[i], strlen(sh->text[i]));
        tr_route_opts o = {.local = sh->store, .local_weight = 2.0f, .distance_weighted = (int)(n & 1),
                           .local_level = 30.0f};
        tr_result res;
        pthread_rwlock_rdlock(&sh->lock);
        tr_status st = tr_route(sh->view, c, &q, &o, &res, &out);
        size_t need = 0;
        tr_status ex = TR_OK;
        if (n % 16 == 0) {
            need = tr_local_export_size(sh->store);
            if (need > cap) {
                free(blob);
                cap = 2 * need;
                blob = malloc(cap);
            }
            size_t w;
            ex = tr_local_export(sh->store, key, blob, cap, &w);
        }
        pthread_rwlock_unlock(&sh->lock);
        int bad = st != TR_OK || ex != TR_OK;
        for (uint32_t m = 0; m < sh->info.n_models && st == TR_OK; m++)
            bad |= !(pred[m] >= 0.0f && pred[m] <= 1.0f);
        if (bad)
            atomic_fetch_add(&sh->errors, 1);
    }
    free(blob);
    free(pred);
    free(mem);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_local_threads DATASET PACK\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    trh_dataset ds;
    if (trh_dataset_load(argv[1], &ds) != 0) {
        check(0, "dataset loads");
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return 1;
    }
    size_t step = ds.n_prompts / N_PROMPTS ? ds.n_prompts / N_PROMPTS : 1, n = 0;
    const char **text = trh_xcalloc(N_PROMPTS, sizeof *text);
    for (size_t i = 0; i < ds.n_prompts && n < N_PROMPTS; i += step)
        text[n++] = ds.prompts[i].text;
    size_t len = 0;
    uint8_t *raw = trh_read_file(argv[2], &len);
    tr_pubkey pub;
    void *pack = NULL, *view_mem = NULL;
    shared sh = {0};
    if (!raw || trh_key_load_public(PUB, &pub) != 0 || posix_memalign(&pack, 64, len) != 0 ||
        posix_memalign(&view_mem, 64, tr_pack_size()) != 0) {
        check(0, "pack and key load");
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return 1;
    }
    memcpy(pack, raw, len);
    tr_trust trust = {.keys = &pub, .n_keys = 1};
    check(tr_pack_open(view_mem, tr_pack_size(), pack, len, &trust, &sh.view) == TR_OK &&
              tr_pack_get_info(sh.view, &sh.info) == TR_OK,
          "pack opens");
    const size_t sbytes = tr_local_size(CAPACITY, sh.info.dim, sh.info.n_models);
    void *smem = NULL, *rmem = NULL;
    tr_local *replay = NULL;
    check(posix_memalign(&smem, 64, sbytes) == 0 && posix_memalign(&rmem, 64, sbytes) == 0 &&
              tr_local_init(smem, sbytes, CAPACITY, sh.view, &sh.store) == TR_OK &&
              tr_local_init(rmem, sbytes, CAPACITY, sh.view, &replay) == TR_OK,
          "stores init");
    sh.text = text;
    sh.n_text = n;
    sh.emb = trh_xcalloc(n, sh.info.dim);
    sh.model = trh_xcalloc(n, sizeof *sh.model);
    sh.outcome = trh_xcalloc(n, sizeof *sh.outcome);
    sh.est = trh_xcalloc(n, sizeof *sh.est);
    sh.est_all = trh_xcalloc(n * (size_t)sh.info.n_models, sizeof *sh.est_all);
    sh.added = trh_xcalloc(n, sizeof *sh.added);
    /* glibc's rwlock prefers readers by default: three readers that always
     * hold it would starve the writer. */
    pthread_rwlockattr_t la;
    pthread_rwlockattr_init(&la);
    pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sh.lock, &la);
    pthread_rwlockattr_destroy(&la);
    pthread_t w, r[N_READERS];
    int started = pthread_create(&w, NULL, writer_main, &sh) == 0;
    for (int i = 0; i < N_READERS; i++)
        started &= pthread_create(&r[i], NULL, reader_main, &sh) == 0;
    check(started, "threads start");
    pthread_join(w, NULL);
    for (int i = 0; i < N_READERS; i++)
        pthread_join(r[i], NULL);
    check(atomic_load(&sh.errors) == 0, "every concurrent call succeeded, predictions in [0,1]");
    /* The replay, single-threaded, of the adds the writer made. */
    size_t adds = 0;
    for (size_t i = 0; i < n; i++)
        if (sh.added[i]) {
            tr_local_add_est(replay, sh.emb + i * sh.info.dim, sh.info.dim, sh.model[i],
                             sh.outcome[i], sh.est[i]);
            adds++;
        }
    tr_local_stats st;
    check(tr_local_stats_get(sh.store, &st) == TR_OK && st.adds == adds && adds > CAPACITY &&
              st.count == CAPACITY,
          "the store counted every add, and evicted past its capacity");
    size_t l1 = tr_local_export_size(sh.store), l2 = tr_local_export_size(replay), w1, w2;
    uint8_t *b1 = malloc(l1), *b2 = malloc(l2);
    check(l1 == l2 && tr_local_export(sh.store, key, b1, l1, &w1) == TR_OK &&
              tr_local_export(replay, key, b2, l2, &w2) == TR_OK && memcmp(b1, b2, l1) == 0,
          "the store equals a single-threaded replay (sealed export, byte for byte)");
    /* And routes through both predict the same bits. */
    void *cm;
    tr_ctx *c = new_ctx(&sh, &cm);
    float *p1 = calloc(sh.info.n_models, sizeof *p1), *p2 = calloc(sh.info.n_models, sizeof *p2);
    int same = c != NULL, moved = 0;
    for (size_t i = 0; i < n && same; i++) {
        const tr_query q = tr_query_text(text[i], strlen(text[i]));
        tr_route_opts o1 = {.local = sh.store, .local_weight = 2.0f, .local_level = 30.0f}, o2 = o1,
                      o0 = {0};
        o2.local = replay;
        tr_result r1, r2, r0;
        const tr_route_out a = {p1, sh.info.n_models, NULL, 0, NULL, 0}, b = {p2, sh.info.n_models, NULL, 0, NULL, 0};
        same = tr_route(sh.view, c, &q, &o1, &r1, &a) == TR_OK &&
               tr_route(sh.view, c, &q, &o2, &r2, &b) == TR_OK &&
               memcmp(p1, p2, sizeof(float) * sh.info.n_models) == 0 && r1.model == r2.model;
        /* The store does change predictions somewhere (else this test
         * would check nothing). */
        if (same && tr_route(sh.view, c, &q, &o0, &r0, &b) == TR_OK &&
            memcmp(p1, p2, sizeof(float) * sh.info.n_models) != 0)
            moved++;
    }
    check(same, "routes through the store and the replay agree bit for bit");
    check(moved > 0, "the store moved some prediction");
    pthread_rwlock_destroy(&sh.lock);
    free(p1);
    free(p2);
    free(cm);
    free(b1);
    free(b2);
    free(sh.emb);
    free(sh.model);
    free(sh.outcome);
    free(sh.est);
    free(sh.est_all);
    free(sh.added);
    free(smem);
    free(rmem);
    free(pack);
    free(view_mem);
    free(raw);
    free(text);
    trh_dataset_free(&ds);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
