/* Private to the library: the verified view of a pack and the context. */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

#include "tinyroute.h"
#include "tr_embed.h"
#include "tr_cluster.h"
#include "tr_knn.h"
#include "tr_learned_map.h"
#include "tr_task_scores.h"

typedef struct tr_pack_view {
    tr_pack_info info;      /* info.n_models: n_base_models + added */
    uint32_t n_base_models;
    const uint8_t *models;  /* n_base_models records of TR_MODEL_REC_BYTES */
    const uint8_t *added_models; /* delta: info.n_added_models records */
    const uint64_t *retired;/* delta: NULL, or a bitset over base models */
    tr_refs refs;
    tr_codes codes;         /* words == 0: no prefilter */
    tr_labels labels;       /* base models */
    tr_labels added_labels; /* delta: added models (n_models 0: none) */
    tr_clusters clusters;   /* k == 0: no cluster routing */
    tr_task_table tasks;    /* n_tasks == 0: no task-level selection */
    tr_learned_map lmap;    /* k == 0: no learned cluster map */
    int has_embedder;
    tr_embedder embedder;
} tr_pack_view;

/* Per-call working memory, carved from a tr_ctx. */
typedef struct scratch {
    float *acc;          /* dim: float query */
    int8_t *q;           /* dim: int8 query */
    int32_t *dots;       /* TR_KNN_BLOCK */
    tr_neighbor *nb;     /* TR_K_MAX */
    float *predicted;    /* n_models */
    float *aux;          /* n_models: a second per-model vector */
    float *lhits;        /* n_models: local outcome units (Local learning) */
    float *lknown;       /* n_models: local neighbour units */
    float *z;            /* TR_LMAP_MAX_K: learned map cluster weights */
    uint64_t *qcode;     /* prefilter: query sign code */
    uint32_t *ham;       /* prefilter: TR_KNN_BLOCK Hamming distances */
    tr_neighbor *cand;   /* prefilter: candidates */
    uint32_t n_cand;     /* what qcode/cand were carved for (0: none) */
} tr_scratch;

#define TR_VIEW_MAGIC 0x57454956u /* "VIEW" */
#define TR_CTX_MAGIC 0x58544354u  /* "TCTX" */

/* The immutable view: written only inside open/apply/drop, before the
 * caller sees it; every array points into the caller's pack/delta bytes. */
struct tr_pack {
    uint32_t magic;
    const tr_kernels *kern;
    const uint8_t *base_bytes;  /* the base pack's bytes (overlap checks) */
    size_t base_len;
    const uint8_t *delta_bytes; /* the applied delta's, or NULL */
    size_t delta_len;
    tr_pack_view base;      /* the verified base pack */
    tr_pack_view served;    /* what is served: base, or base + delta */
    int has_delta;
    tr_delta_info delta;
};

struct tr_ctx {
    uint32_t magic;
    uint32_t dim, n_models, n_cand; /* capacities it was carved for */
    tr_scratch s;
    uint8_t *mask;          /* ceil(n_models / 8): the governed route's mask */
};

/* A task's sums, valid for one pack and model set (by hash). */
struct tr_task {
    uint32_t magic;
    uint8_t pack_hash[32];
    uint8_t delta_hash[32]; /* zero: no delta */
    tr_task_sums sums;
};

/* A valid view (non-NULL, its magic). */
int tr_pack_ok(const tr_pack *p);
/* TR_E_ARG (NULL, not a ctx) or TR_E_ARENA_TOO_SMALL (carved for a smaller
 * view than p). */
tr_status tr_ctx_check(const tr_pack *p, const tr_ctx *c);
/* Do [a, a+an) and [b, b+bn) share a byte? */
int tr_overlaps(const void *a, size_t an, const void *b, size_t bn);

/* The method a route uses: opts' unless TR_METHOD_DEFAULT (or NULL), then the pack's. */
tr_method tr_method_of(const tr_pack_view *p, const tr_route_opts *o);
tr_status tr_resolve_opts(const tr_pack_view *p, const tr_route_opts *o, uint32_t *k,
                          float *lambda);
/* Not retired, in the caller's mask, and on-device when offline. */
int tr_model_available(const tr_route_opts *o, uint32_t m, const tr_model_info *mi);
/* argmax over available models of score[m] (NULL: the priors) - lambda *
 * cost_norm[m] - penalty[m]; ties to on-device, then cheaper, then the
 * lower index. -1 if none is available. */
int tr_best_model(const tr_pack_view *p, const tr_route_opts *o, float lambda,
                  const float *score, float *best_u);
/* kNN predictions of every model (base, then added) from the neighbours,
 * shrunk toward each model's own prior with strength a; share and
 * pack_only as tr_knn_predict_ext's (either NULL). */
void tr_predict_knn(const tr_pack_view *p, const tr_neighbor *nb, uint32_t k, int weighted,
                    float inv_qnorm, float a, const float *ext_hits, const float *ext_known,
                    float *predicted, float *share, float *pack_only);
/* The one kNN query path (route and task): search k_search neighbours of
 * s->q (prefilter unless o->exact), predict every model from the first
 * k_pred of them into s->predicted (a model no neighbour knows: its prior).
 * Returns the neighbours found; *inv_qnorm is 1/|q|. */
uint32_t tr_knn_query(const tr_pack *p, const tr_scratch *s, uint32_t k_search, uint32_t k_pred,
                      const tr_route_opts *o, float *inv_qnorm);
/* The prior strength a route uses: the caller's (tr_route_opts), else the
 * served pack's (a delta's settings may override the base's). Options
 * already checked by tr_resolve_opts. */
float tr_prior_strength(const tr_pack_view *p, const tr_route_opts *o);
void tr_model_info_of(const tr_pack_view *p, uint32_t m, tr_model_info *mi);
/* The query into s->q (text embedded, f32 quantized, i8 checked);
 * *prior_only when a prompt has no known word (s->q is then zero). The
 * query itself is checked first (size, kind, embedder, dim). */
tr_status tr_check_query(const tr_pack *p, const tr_query *q);
tr_status tr_load_query(const tr_pack *p, const tr_scratch *s, const tr_query *q,
                        int *prior_only);
int tr_masked_out_better(const tr_pack_view *p, const tr_route_opts *o, float lambda,
                         const float *predicted, float best_u);
/* Local learning (local.c). TR_OK if store is a store bound to view p
 * (dim, n_models, pack hash), TR_E_ARG if not a store, else
 * TR_E_LOCAL_PACK. */
tr_status tr_local_check(const tr_local *store, const tr_pack_view *p);
uint32_t tr_local_count(const tr_local *store);
/* The store's evidence for query q: every entry at cosine distance <= radius
 * adds w * its mean outcome to hits[m] and w to known[m] for each model m
 * it knows (n_models entries each, zeroed first). dots: TR_KNN_BLOCK int32
 * scratch. Returns non-zero if any entry counted. */
int tr_local_evidence(const tr_local *store, const tr_kernels *kern, const int8_t *q,
                      float inv_qnorm, float radius, float w, int32_t *dots, float *hits,
                      float *known);
/* The level term (tinyroute.h, Local learning): with a store and the term
 * on, adds to each s->predicted[m] s->aux[m] (the pack's share of the
 * estimate) times the model's shrunk mean residual, clamped to [0,1]. */
void tr_apply_local_level(const tr_pack_view *p, const tr_scratch *s, const tr_route_opts *o);
void tr_local_apply_level(const tr_local *store, float strength, const float *share,
                          float *predicted);
/* A caller's int8 embedding: values in [-127,127], not all zero. */
tr_status tr_check_i8(const int8_t *e, uint32_t dim);


/* SHA-256 of data. TR_OK or TR_E_CRYPTO. */
tr_status tr_sha256(const void *data, size_t len, uint8_t out[32]);
/* ECDSA P-256 verify of a DER signature over a SHA-256 digest.
 * TR_OK, TR_E_SIGNATURE, or TR_E_CRYPTO. */
tr_status tr_ecdsa_p256_verify(const uint8_t point[65], const uint8_t hash[32],
                               const uint8_t *sig, size_t sig_len);
#ifdef TR_DEVICE_CRYPTO
/* The static pool mbedTLS allocates from in the device build (crypto.c).
 * Measured need of one verify on LP64 (x86-64, aarch64): 4408 bytes at most
 * (make test-device, core/DEVICE_CRYPTO.md); 6144 leaves 39% for keys and
 * signatures not measured. */
#define TR_CRYPTO_POOL_SHIPPED 6144
#ifndef TR_CRYPTO_POOL_BYTES
#define TR_CRYPTO_POOL_BYTES TR_CRYPTO_POOL_SHIPPED
#endif
#endif
#if defined(TR_DEVICE_CRYPTO) && defined(TR_MBEDTLS_MEASURE)
/* Measuring device build only: cap the pool in use (to test running out),
 * and the last verify's peak payload bytes, peak block count and bytes still
 * allocated after it. */
void tr_crypto_pool_limit(size_t bytes);
void tr_crypto_pool_stats(size_t *peak, size_t *peak_blocks, size_t *left);
#endif

/* The part shared by packs and deltas: trailer, key (trusted, not revoked),
 * SHA-256 of the signed bytes into hash, ECDSA signature. */
tr_status tr_verify_signature(const uint8_t *p, size_t len, uint64_t signed_bytes,
                              const tr_trust *trust, uint8_t key_id[32], uint8_t hash[32]);

/* The section table of a pack or delta (same container). */
typedef struct tr_section {
    uint32_t type, stride, count;
    uint64_t offset, length;
} tr_section;
/* Reads and checks the table: in bounds, 64-aligned, no overlap, no type twice. */
tr_status tr_read_table(const uint8_t *p, uint64_t signed_bytes, tr_section *s, uint32_t *n);
const tr_section *tr_find_section(const tr_section *s, uint32_t n, uint32_t type);
/* rows bitsets of at least bits bits, stride a whole number of u64 words. */
/* Header bytes 12-15, flags and 104..127 as v1 wants them (packs and deltas). */
int tr_header_tail_ok(const uint8_t *p);
int tr_bitset_ok(const tr_section *s, uint32_t rows, uint32_t bits);
/* A model record: a name, finite non-negative cost, prior in [0,1]; the
 * normalized cost in [0,1] unless unbounded (a delta's added model). */
int tr_model_rec_ok(const uint8_t *rec, int cost_norm_unbounded);

/* Non-NULL, and its arrays present where their counts say. */
int tr_trust_ok(const tr_trust *trust);

/* The integrator's slot of a kind (all zeros without a store), and its
 * replacement (nothing without a store). TR_E_COUNTER_STORE if it fails. */
tr_status tr_counter_read(const tr_trust *trust, int kind, tr_counter_slot *slot);
tr_status tr_counter_write(const tr_trust *trust, int kind, const tr_counter_slot *slot);
/* Packs: the anti-rollback floor (the trust's, or the store's if higher)
 * and persisting an accepted counter above it (the last step before a
 * swap). kind is TR_COUNTER_PACK; deltas count per base (delta.c). */
tr_status tr_counter_floor(const tr_trust *trust, int kind, uint64_t *floor);
tr_status tr_counter_commit(const tr_trust *trust, int kind, uint64_t floor, uint64_t counter);

/* Parse and verify a pack into a view (no caller memory touched). */
tr_status tr_pack_verify(const uint8_t *pack, size_t len, const tr_trust *trust,
                         tr_pack_view *view);

#endif
