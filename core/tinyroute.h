/*
 * tinyroute — decide, per prompt, which language model should answer it.
 *
 * One public header. The library never allocates: the caller gives the
 * memory of every object (sizes reported up front by the *_size functions)
 * and the pack bytes, which are used in place (read-only flash, or RAM
 * nobody writes while it is served: not a file mapping;
 * core/INTEGRATION.md). The signature check is the one exception, and only
 * in the host build, where Debian's mbedTLS mallocs. Static storage, in
 * every build: the kernel choice, one pointer set by the first open (every
 * thread computes the same). The device build (make device,
 * -DTR_DEVICE_CRYPTO) adds mbedTLS's heap: a static pool of
 * TR_CRYPTO_POOL_BYTES (6,144 B as shipped), the allocator's own state,
 * and an atomic flag that lets one verification at a time use them (other
 * threads wait; routing never does). Nothing else: views, contexts, logs,
 * tasks and governors live in the caller's memory.
 *
 * Two objects, as zstd separates a dictionary from a context:
 *   tr_pack: tr_pack_open() verifies the pack's signature *before* any
 *            other field is trusted, checks every section, and writes an
 *            immutable view into tr_pack_size() bytes; any number of
 *            threads route through it;
 *   tr_ctx:  tr_ctx_init() carves one thread's scratch from
 *            tr_ctx_size(dim, n_models, prefilter_candidates) bytes;
 *   route:   tr_route(pack, ctx, &query, opts, &result, &outputs), every
 *            output with its capacity.
 *
 * Every call returns a tr_status; tr_strerror() names it.
 */
#ifndef TINYROUTE_H
#define TINYROUTE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TR_VERSION_MAJOR 0
#define TR_VERSION_MINOR 3
#define TR_VERSION_PATCH 0
#define TR_VERSION_STRING "0.3.0"
/* One number, as ZSTD_VERSION_NUMBER: major * 10000 + minor * 100 + patch. */
#define TR_VERSION_NUMBER (TR_VERSION_MAJOR * 10000 + TR_VERSION_MINOR * 100 + TR_VERSION_PATCH)

/* Marks the public functions: exported from a shared library even when it
 * is compiled with -fvisibility=hidden (the internal tr_ helpers are not).
 * Harmless in a static build; define TR_API yourself to override it. */
#ifndef TR_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define TR_API __attribute__((visibility("default")))
#else
#define TR_API
#endif
#endif

/* Status codes and limits: the bottom of the contract, included by every
 * layer of the library (platform/tinyroute_status.h). */
#include "tinyroute_status.h"

/* A short, stable, human-readable message; never NULL. */
TR_API const char *tr_strerror(tr_status status);
/* The enum's name, e.g. "TR_E_SIGNATURE"; never NULL. */
TR_API const char *tr_status_name(tr_status status);

/* The version of the library linked, as TR_VERSION_NUMBER and
 * TR_VERSION_STRING: compare with the header's to detect a library other
 * than the one compiled against. */
TR_API unsigned tr_version(void);
TR_API const char *tr_version_string(void);

typedef enum tr_where { TR_DEVICE = 0, TR_CLOUD = 1 } tr_where;

/* A trusted public key: ECDSA P-256, SEC1 uncompressed point (0x04||X||Y).
 * Its key id is SHA-256 of these 65 bytes. */
typedef struct tr_pubkey {
    uint8_t point[65];
} tr_pubkey;

/* Anti-rollback counters persisted by the integrator (flash, secure
 * element, a file). Packs and delta packs count separately, one slot each.
 * A slot is an opaque blob to the store: keep its bytes, return them (all
 * zeros if never written). Only the library interprets it (INTEGRATION.md).
 *  - TR_COUNTER_PACK: counter is the highest accepted pack counter; it only
 *    ever rises (a monotonic counter can hold it); base and hash are zero.
 *  - TR_COUNTER_DELTA: the last accepted delta: its counter, the hash of
 *    its base and its own hash. Delta counters count per base: a delta for
 *    another base starts afresh (so this counter may go down), and one for
 *    the same base must be strictly higher, or the very same delta. */
enum { TR_COUNTER_PACK = 0, TR_COUNTER_DELTA = 1 };
typedef struct tr_counter_slot {
    uint64_t counter;
    uint8_t base[32]; /* SHA-256 of the base pack's signed bytes */
    uint8_t hash[32]; /* SHA-256 of the delta's signed bytes */
} tr_counter_slot;
typedef struct tr_counter_store {
    void *ctx;
    /* The persisted slot of a kind; non-zero: the store failed. */
    int (*read)(void *ctx, int kind, tr_counter_slot *slot);
    /* Replace it; non-zero: failed, and the pack is not served (MCUboot's
     * order: the counter is stored before the new image runs). */
    int (*write)(void *ctx, int kind, const tr_counter_slot *slot);
} tr_counter_store;

typedef struct tr_trust {
    const tr_pubkey *keys;         /* trusted keys; a pack names one by id */
    size_t n_keys;
    uint64_t min_security_counter; /* anti-rollback floor of packs (0: none) */
    uint64_t now_unix;             /* for expiry; 0 skips the expiry check */
    const uint8_t (*revoked)[32];  /* key ids refused even if trusted */
    size_t n_revoked;
    uint64_t min_delta_counter;    /* floor of every delta, whatever its base */
    /* NULL, or a store: its slots count as well, and an accepted pack or
     * delta that changes one is written before it is served. */
    const tr_counter_store *counters;
} tr_trust;

/* What a pack header says. From tr_pack_peek() it is unverified (use it
 * only for sizing); from tr_pack_get_info() it is verified. */
typedef struct tr_pack_info {
    uint32_t format_version;
    uint64_t security_counter;
    uint64_t created_unix;
    uint64_t expires_unix; /* 0: never */
    char embedder[TR_EMBEDDER_NAME_MAX];
    uint32_t dim;
    uint32_t n_refs;
    uint32_t n_models;      /* models served: the base's plus a delta's */
    uint32_t n_added_models;   /* of which added by the applied delta */
    uint32_t n_retired_models; /* base models the delta retired */
    uint32_t default_k;
    float default_lambda;
    float default_prior_strength;  /* kNN prior strength a; 0: no prior */
    /* The builder's validation of these defaults (0, 0, 0: none): the Area
     * of the deferral curve over validation_queries held-out references,
     * and which defaults it chose (TR_CHOSE_* bits in tr_format.h: 1 k,
     * 2 prior strength, 4 lambda) rather than was given. */
    float validation_area;
    uint32_t validation_queries;
    uint32_t chosen_on_validation;
    /* The method zeroed options route with (a tr_method, never _DEFAULT;
     * TR_METHOD_KNN for packs built before the field), and the builder's
     * held-out Area of it (0, 0: not validated; TR_CHOSE_METHOD: chosen). */
    uint32_t default_method;
    float method_validation_area;
    uint32_t method_validation_queries;
    uint32_t prefilter_candidates; /* 0: the pack has no binary prefilter */
    uint32_t n_clusters;           /* 0: the pack has no cluster routing */
    uint32_t n_tasks;              /* 0: no task-level selection table */
    int has_learned_map;
    int has_text_embedder;
    uint64_t signed_bytes;
    uint8_t key_id[32];
    uint8_t pack_hash[32]; /* SHA-256 of the signed bytes; zero when peeked */
} tr_pack_info;

/* Reads the header only: no signature check. For sizing before load. */
TR_API tr_status tr_pack_peek(const void *pack, size_t len, tr_pack_info *info);

typedef struct tr_model_info {
    const char *name; /* points into the pack */
    float cost;       /* in the data set's own unit */
    float cost_norm;  /* cost scaled to [0,1] over the pack's models */
    float prior;      /* mean correctness over all references (an added
                         model: over its labelled validation prompts) */
    tr_where where;
    int added;        /* added by a delta pack */
    int retired;      /* retired by a delta pack: never chosen */
} tr_model_info;

/* ---- Delta packs: a dynamic model pool (Jitkrittum et al. 2025) ----
 * A signed delta adds models that did not exist when the base pack was
 * built (from their correctness on a small labelled validation set), retires
 * base models, or overrides the routing defaults (k, lambda), without
 * re-shipping the base. It names its base by hash; deltas do not stack (each
 * carries the whole change from its base), and a new delta replaces the
 * applied one. Added models get indices n_base..n_models-1; size contexts
 * with tr_ctx_size(dim, base n_models + n_added, ...). A delta is applied
 * to a view and gives a new view (tr_pack_apply_delta below). */
typedef struct tr_delta_info {
    uint64_t security_counter, created_unix, expires_unix;
    uint8_t base_hash[32];   /* SHA-256 of the base pack's signed bytes */
    uint32_t n_base_models, n_added, n_retired;
    int has_settings;        /* it overrides the defaults below */
    uint32_t k;              /* 0: the base's */
    float lambda;            /* < 0: the base's */
    float prior_strength;    /* 0: the base's; < 0: no prior */
    uint64_t signed_bytes;
    uint8_t key_id[32];
    uint8_t delta_hash[32];  /* zero when peeked */
} tr_delta_info;

/* Reads the (untrusted) delta header: for sizing only. */
TR_API tr_status tr_delta_peek(const void *delta, size_t len, tr_delta_info *info);

/* 0 is the pack's own method, so that zeroed options route as the pack
 * was built to (tr_pack_info.default_method; kNN for older packs). */
typedef enum tr_method {
    TR_METHOD_DEFAULT = 0, /* the pack's default method */
    TR_METHOD_KNN = 1,     /* mean correctness of the k nearest references */
    TR_METHOD_CLUSTER = 2, /* per-cluster error rates of the nearest K-means
                              centroid (Jitkrittum et al. 2025) */
    TR_METHOD_LEARNED_MAP = 3 /* the same errors under a learned soft
                                 assignment to the clusters (ibid. 4.3) */
} tr_method;

/* A store of local outcome references (Local learning, below). */
typedef struct tr_local tr_local;

/* Options; NULL means the pack's defaults, all models available. */
typedef struct tr_route_opts {
    uint32_t k;              /* neighbours; 0: pack default */
    float lambda;            /* cost weight > 0; 0 or TR_LAMBDA_DEFAULT: the
                                pack's (a delta's calibrated one when
                                applied); TR_LAMBDA_ZERO: no cost weight */
    const uint8_t *available;/* bitset, bit m of byte m/8: model m may be
                                chosen; NULL: all */
    int offline;             /* non-zero: on-device models only */
    int exact;               /* non-zero: exact search even when the pack
                                has a binary prefilter */
    tr_method method;        /* TR_METHOD_DEFAULT (0): the pack's */
    int distance_weighted;   /* kNN: weight neighbours by 1/cosine distance */
    const float *penalty;    /* NULL, or penalty_count caller penalties
                                (battery, latency) subtracted from each
                                utility; penalty_count >= n_models */
    /* kNN: each model's estimate is shrunk toward its prior (its mean score
     * over all references) as if a more neighbours had scored that:
     * (hits + a * prior) / (known + a). 0: the pack's a (so zeroed options
     * keep what the pack was built with); > 0: this a, at most
     * TR_PRIOR_STRENGTH_MAX; TR_PRIOR_NONE (< 0): no prior. */
    float prior_strength;
    /* Lengths of the two caller arrays above: a delta that adds models
     * makes n_models grow, and the route refuses (TR_E_ARG) an array
     * shorter than the pack it routes with instead of reading past it. */
    uint32_t penalty_count;  /* entries of penalty (ignored when NULL) */
    uint32_t available_bits; /* bits of available (ignored when NULL) */
    /* Local learning (below): NULL, or a store bound to this pack whose
     * entries join the kNN estimate: with it, TR_METHOD_DEFAULT routes kNN
     * whatever the pack's default, and another named method is TR_E_ARG.
     * local_weight: how many pack neighbours one local outcome
     * counts as; 0: TR_LOCAL_WEIGHT_DEFAULT; finite and > 0 otherwise.
     * local_level: the level term's pseudo-count s (Local learning); 0:
     * TR_LOCAL_LEVEL_DEFAULT; < 0 (TR_LOCAL_LEVEL_OFF): no level term;
     * finite (NaN, inf: TR_E_ARG). */
    const tr_local *local;
    float local_weight;
    float local_level;
} tr_route_opts;

/* A zeroed tr_route_opts routes with every pack default, lambda included
 * (as k = 0): a lambda that `tinyroute calibrate` put in a delta is used
 * unless the caller overrides it. A cost weight of exactly zero
 * (correctness alone) is asked for by name. */
#define TR_LAMBDA_DEFAULT (-1.0f)
#define TR_LAMBDA_ZERO (-2.0f)
#define TR_PRIOR_NONE (-1.0f)

enum {
    TR_RESULT_PRIOR_ONLY = 1u << 0 /* no known word in the prompt: the
                                      choice rests on model priors alone */
};

typedef struct tr_result {
    uint32_t model;        /* chosen model index */
    const char *model_name;/* points into the pack */
    tr_where where;
    float cost;            /* chosen model's cost, data set's unit */
    float cost_norm;       /* the normalized cost used in the utility */
    float lambda;          /* the lambda used */
    float utility;         /* predicted correctness - lambda * cost_norm */
    float nearest_distance;/* cosine distance to the nearest reference (kNN;
                              NaN for the cluster method) */
    uint32_t k;            /* neighbours used (kNN) */
    tr_method method;      /* the method that decided (never _DEFAULT) */
    uint32_t cluster;      /* the prompt's cluster (cluster method) */
    uint32_t flags;        /* TR_RESULT_* */
    uint32_t why;          /* TR_WHY_*: the rule that decided */
} tr_result;

/* Why a model was chosen. */
enum {
    TR_WHY_UTILITY = 0,     /* best predicted correctness - lambda * cost */
    TR_WHY_UNAVAILABLE = 1, /* the best one was not available: next best */
    TR_WHY_OFFLINE = 2,     /* network down or offline asked: on-device only */
    TR_WHY_BUDGET = 3,      /* cloud budget of the period spent: on-device only */
    TR_WHY_PRIOR_ONLY = 4   /* no known word: model priors alone */
};

/* ---- Two objects: a verified pack view and a per-call context ----
 * As zstd separates a dictionary from a context:
 *  - tr_pack: an immutable, verified view of a pack (plus at most one
 *    applied delta), tr_pack_size() bytes of caller memory (16-aligned).
 *    Written only by the call that opens it, before *out is set; read-only
 *    afterwards, so any number of threads route through one view at once.
 *    It points into the pack (and delta) bytes, which must stay valid and
 *    unchanged while the view is used. A delta gives a new view in new
 *    memory; the caller swaps its pointer and frees the old view and bytes
 *    when no thread uses them any more (INTEGRATION.md, "Swapping").
 *  - tr_ctx: the per-call scratch, tr_ctx_size() bytes, used by one thread
 *    at a time. It serves any view whose dim, n_models and prefilter
 *    candidates are at most its own: size it once for base + delta.
 * Neither allocates; a failed open or apply writes nothing. */
typedef struct tr_pack tr_pack;
typedef struct tr_ctx tr_ctx;

/* Bytes of one view, whatever the pack. */
TR_API size_t tr_pack_size(void);
/* Verify the pack (signature first, then every section), then place a view
 * of it in mem. TR_E_ARG: NULL, misaligned mem, or mem overlapping the pack
 * bytes; TR_E_ARENA_TOO_SMALL: mem_bytes < tr_pack_size(). The counter
 * store (trust->counters) is written before the view is made. */
TR_API tr_status tr_pack_open(void *mem, size_t mem_bytes, const void *pack, size_t len,
                              const tr_trust *trust, const tr_pack **out);
/* The facts of the view: verified header, and n_models etc. as served. */
TR_API tr_status tr_pack_get_info(const tr_pack *pack, tr_pack_info *info);
TR_API tr_status tr_pack_get_model(const tr_pack *pack, uint32_t model, tr_model_info *info);

/* Context bytes for views of at most this dim, model count and prefilter
 * candidate count (0 for a bad argument: dim 0 or above TR_DIM_MAX, models
 * 0 or above TR_MODELS_MAX, candidates above TR_PREFILTER_MAX). */
TR_API size_t tr_ctx_size(uint32_t dim, uint32_t n_models, uint32_t prefilter_candidates);
/* tr_ctx_size() of what the view serves. */
TR_API size_t tr_ctx_size_for(const tr_pack *pack);
/* mem 16-aligned, bytes >= tr_ctx_size(dim, n_models, prefilter_candidates). */
TR_API tr_status tr_ctx_init(void *mem, size_t bytes, uint32_t dim, uint32_t n_models,
                             uint32_t prefilter_candidates, tr_ctx **out);

/* A query: prompt text for the pack's embedder, or the caller's float32 or
 * int8 embedding (embedder: the pack's embedder name, dim its dimension).
 * Make one with tr_query_text/_f32/_i8, which set size to the caller's
 * sizeof(tr_query) so that a later library can tell old callers apart. */
typedef enum tr_query_kind { TR_QUERY_TEXT = 0, TR_QUERY_F32 = 1, TR_QUERY_I8 = 2 } tr_query_kind;
typedef struct tr_query {
    uint32_t size;
    tr_query_kind kind;
    const char *text;      /* TR_QUERY_TEXT: UTF-8, len bytes */
    size_t len;
    const char *embedder;  /* TR_QUERY_F32, TR_QUERY_I8 */
    const void *embedding; /* dim floats or int8 values in [-127,127] */
    uint32_t dim;
} tr_query;
static inline tr_query tr_query_text(const char *text, size_t len)
{
    tr_query q = {sizeof(tr_query), TR_QUERY_TEXT, text, len, NULL, NULL, 0};
    return q;
}
static inline tr_query tr_query_f32(const char *embedder, const float *embedding, uint32_t dim)
{
    tr_query q = {sizeof(tr_query), TR_QUERY_F32, NULL, 0, embedder, embedding, dim};
    return q;
}
static inline tr_query tr_query_i8(const char *embedder, const int8_t *embedding, uint32_t dim)
{
    tr_query q = {sizeof(tr_query), TR_QUERY_I8, NULL, 0, embedder, embedding, dim};
    return q;
}

/* Optional outputs of a route, each with its capacity (entries). NULL
 * arrays are not wanted. A capacity below what the view needs (n_models
 * predictions, dim embedding bytes) is TR_E_OUTPUT_TOO_SMALL before
 * anything is written. */
typedef struct tr_route_out {
    float *predicted;      /* each model's predicted correctness */
    size_t predicted_cap;
    int8_t *embedding;     /* the int8 query routed (zeros: priors alone) */
    size_t embedding_cap;
    float *estimate;       /* NULL, or each model's estimate from the pack
                              alone (no local entries, no level term; Local
                              learning): what tr_local_add_est takes;
                              = predicted without a store; cap >= n_models */
    size_t estimate_cap;
} tr_route_out;

/* The one routing call. Every argument is checked before anything is
 * written: on error *result and out's arrays are unchanged. ctx smaller
 * than the view needs: TR_E_ARENA_TOO_SMALL. opts NULL: pack defaults. */
TR_API tr_status tr_route(const tr_pack *pack, tr_ctx *ctx, const tr_query *query,
                          const tr_route_opts *opts, tr_result *result, const tr_route_out *out);
/* The built-in embedder's int8 output for a prompt (zeros for a prompt of
 * no known word); out_cap >= dim. */
TR_API tr_status tr_embed(const tr_pack *pack, tr_ctx *ctx, const char *text, size_t len,
                          int8_t *out, size_t out_cap);

/* Verify a delta against from's base pack (from may itself serve a delta:
 * deltas do not stack, the new one replaces it) and place a view of base +
 * delta in mem. Checks, in order: signature, base hash, sections, rollback
 * (trust->min_delta_counter and the store's TR_COUNTER_DELTA slot: with
 * counters == NULL only the floor applies, so keep a store, or
 * tr_counter_store_ram, to refuse an older delta of the same base), expiry;
 * then the store is written and the view made. from is never written.
 * TR_E_ARG also for mem overlapping from, the delta or the pack bytes. */
TR_API tr_status tr_pack_apply_delta(const tr_pack *from, const void *delta, size_t len,
                                     const tr_trust *trust, void *mem, size_t mem_bytes,
                                     const tr_pack **out);
/* A view of from's base pack alone, in mem. */
TR_API tr_status tr_pack_drop_delta(const tr_pack *from, void *mem, size_t mem_bytes,
                                    const tr_pack **out);
/* The view's applied delta; TR_E_NO_PACK if it serves none. */
TR_API tr_status tr_pack_get_delta(const tr_pack *pack, tr_delta_info *info);

/* A counter store kept in RAM (slots: caller memory, zeroed once): what
 * the library remembered in-process before views were immutable. It lasts
 * as long as slots do, not across restarts: use a persistent store there. */
TR_API void tr_counter_store_ram(tr_counter_store *store, tr_counter_slot slots[2]);

/* ---- Task-level selection (Shnitzer et al. 2023) ----
 * Feed the prompts of one new task, then choose one model for the whole
 * task by S1, S2 or the out-of-distribution-aware S3. The accumulator lives
 * in caller memory of tr_task_size(n_models) bytes (16-aligned). */
typedef struct tr_task tr_task;

TR_API size_t tr_task_size(uint32_t n_models);
typedef struct tr_task_result {
    uint32_t n_prompts;    /* prompts that counted */
    float mean_distance;   /* u(d): mean cosine distance to the k_dist nearest */
    uint32_t by_s1, by_s2, by_s3; /* argmax of S - lambda * cost_norm */
    uint32_t bma;          /* best model on average (highest prior) */
    float p_beats_bma;     /* P[the S3 choice beats BMA on this task] */
    uint32_t chosen;       /* by_s3 if p_beats_bma >= gate, else bma */
    int kept_bma;          /* the out-of-distribution gate fired */
} tr_task_result;

/* tr_task_begin: TR_E_UNSUPPORTED if the pack has no task table; the task
 * is bound to the view's pack and delta by hash (another view of the same
 * pack and delta serves it too; any other is TR_E_ARG). tr_task_add: one
 * prompt or embedding of any query kind (k, weighting, exact/prefilter from
 * opts); a prompt with no known word is skipped (*used = 0), it says
 * nothing about the task. tr_task_choose: availability and lambda from
 * opts; TR_E_EMPTY_INPUT if no prompt counted; scores (NULL: none) receives
 * S1, S2, S3 and p, any of them NULL, each of cap entries (cap >= n_models,
 * else TR_E_OUTPUT_TOO_SMALL before anything is written). */
typedef struct tr_task_scores {
    float *s1, *s2, *s3, *p; /* any may be NULL */
    size_t cap;
} tr_task_scores;
TR_API tr_status tr_task_begin(const tr_pack *pack, void *mem, size_t bytes, tr_task **out);
TR_API tr_status tr_task_add(const tr_pack *pack, tr_ctx *ctx, tr_task *task,
                             const tr_query *query, const tr_route_opts *opts, int *used);
TR_API tr_status tr_task_choose(const tr_pack *pack, tr_ctx *ctx, const tr_task *task,
                                const tr_route_opts *opts, tr_task_result *result,
                                const tr_task_scores *scores);

/* ---- Governor: cost control on the device ----
 * Plain state in caller memory, deterministic (time is the caller's), no
 * allocation. Routes through it see: models marked unavailable are never
 * chosen; with the network down only on-device models are; lambda rises
 * from lambda_base to lambda_max as the period's cloud budget is spent
 * (quadratically in the spent share) and at zero budget left routing is
 * on-device only, until the next period. */
#define TR_GOVERNOR_MAX_MODELS 256

typedef struct tr_governor {
    uint64_t period_seconds, period_start;
    float budget, spent;         /* cloud cost per period, data set's unit */
    float lambda_base, lambda_max;
    int network_up;
    uint8_t available[TR_GOVERNOR_MAX_MODELS / 8]; /* bit m: model m reachable */
} tr_governor;

/* budget > 0 (cost units per period), period_seconds > 0, 0 <= lambda_base
 * <= lambda_max, or lambda_base = TR_LAMBDA_DEFAULT: start from the pack's
 * lambda (a delta's calibrated one), read at each route, and rise to
 * lambda_max (>= 0; a pack lambda above it is kept). Everything starts
 * available, network up. */
TR_API tr_status tr_governor_init(tr_governor *g, float budget, uint64_t period_seconds,
                           uint64_t now_unix, float lambda_base, float lambda_max);
TR_API tr_status tr_governor_set_available(tr_governor *g, uint32_t model, int available);
TR_API tr_status tr_governor_set_network(tr_governor *g, int up);
/* Record what a call cost (after it was made); rolls the period over. */
TR_API tr_status tr_governor_record(tr_governor *g, uint64_t now_unix, float cost);
/* The lambda the governor would use now; NaN for a NULL governor or one
 * whose base is the pack's (result->lambda of a governed route says). */
TR_API float tr_governor_lambda(const tr_governor *g, uint64_t now_unix);

/* tr_route under the governor, for any query kind: opts' k, method,
 * weighting, penalty are kept; availability, offline and lambda come from
 * the governor (an opts->available mask is combined with it; models from
 * TR_GOVERNOR_MAX_MODELS on are governed by that mask alone). */
TR_API tr_status tr_route_governed(const tr_pack *pack, tr_ctx *ctx, const tr_governor *g,
                                   uint64_t now_unix, const tr_query *query,
                                   const tr_route_opts *opts, tr_result *result,
                                   const tr_route_out *out);

/* Name of the kernel family in use, e.g. "scalar". */
TR_API const char *tr_kernel_name(void);

/* ---- Outcome log: what was routed, and how it went (issue #8) ----
 * A ring of fixed-size records in caller memory. The app records each routed
 * prompt's decision (model, cost, lambda, predicted utility) and later the
 * outcome it observed (a score in [0,1]: the user kept the answer, or
 * retried it). tr_log_export() writes the ring, oldest first, in the
 * little-endian format of core/OUTCOME_LOG.md, for `tinyroute eval --log`
 * (realised quality, cost, a deferral estimate) and `tinyroute build
 * --add-log` (logged prompts become references of the next pack).
 *
 * Privacy: prompt text is kept only under TR_LOG_TEXT. By default a record
 * keeps the prompt's int8 embedding (what a pack needs to learn from it);
 * TR_LOG_HASH keeps a keyed 64-bit hash (SipHash-2-4) instead or as well.
 * The key is the integrator's: an unkeyed hash of a short prompt could be
 * tested against guessed prompts by anyone holding the log.
 *
 * No allocation, no global state. One writer at a time: record, outcome and
 * export of one log must not run concurrently (the caller serialises them;
 * an append that embeds text uses its context, as routing does). */
#define TR_LOG_TEXT_MAX 256u /* text bytes kept per record under TR_LOG_TEXT */

enum {
    TR_LOG_EMBEDDING = 1u << 0, /* the prompt's int8 embedding */
    TR_LOG_HASH = 1u << 1,      /* SipHash-2-4 of the prompt text, caller key */
    TR_LOG_TEXT = 1u << 2,      /* opt-in: the text, cut to TR_LOG_TEXT_MAX */
    TR_LOG_DEFAULT = TR_LOG_EMBEDDING
};

/* What one record holds (in the export). */
enum {
    TR_LOG_REC_EMBEDDING = 1u << 0,
    TR_LOG_REC_HASH = 1u << 1,
    TR_LOG_REC_TEXT = 1u << 2,
    TR_LOG_REC_TRUNCATED = 1u << 3, /* the text was cut */
    TR_LOG_REC_OUTCOME = 1u << 4,   /* an outcome was attached */
    TR_LOG_REC_PRIOR_ONLY = 1u << 5 /* routed on priors: no embedding */
};

typedef struct tr_log tr_log; /* opaque; lives in the caller's memory */

/* Exact bytes for a log of capacity records (0: a bad argument). dim is the
 * packs' embedding dimension (may be 0 without TR_LOG_EMBEDDING). */
TR_API size_t tr_log_size(uint32_t dim, uint32_t capacity, uint32_t flags);
/* mem 16-byte aligned, bytes >= tr_log_size(). flags: TR_LOG_* (0 keeps the
 * decisions and outcomes only). */
TR_API tr_status tr_log_init(void *mem, size_t bytes, uint32_t dim, uint32_t capacity,
                      uint32_t flags, tr_log **out);
/* The SipHash key for TR_LOG_HASH; records with text fail (TR_E_ARG) until
 * it is set. */
TR_API tr_status tr_log_set_hash_key(tr_log *log, const uint8_t key[16]);
/* Authenticated export (format version 2, core/OUTCOME_LOG.md): every
 * export then carries device_id and an HMAC-SHA-256 under key (16..64
 * bytes, provisioned per device by the integrator, core/INTEGRATION.md) over
 * header and records, so a host holding the key can refuse forged, altered,
 * foreign or replayed logs. Record ids continue from first_id (>= 1): keep
 * tr_log_stats.recorded across restarts and pass it + 1, since the host
 * refuses a log whose ids run backwards versus an earlier one of the device.
 * Only before the first record (else TR_E_ARG). The key is copied. */
TR_API tr_status tr_log_set_device(tr_log *log, uint64_t device_id, uint64_t first_id,
                                   const uint8_t *key, size_t key_len);

/* Append the decision res made on view pack for a prompt; when the ring is
 * full the oldest record is overwritten (and counted as dropped).
 * embedding: the int8 query (as routed, e.g. tr_route_out.embedding), or
 * NULL to embed text with the pack's embedder (nothing is kept for a prompt
 * routed on priors alone); ctx is needed only then (TR_LOG_EMBEDDING,
 * embedding NULL, text given), else may be NULL. text may be NULL (then no
 * hash or text is kept). Under TR_LOG_EMBEDDING the log keeps to one
 * embedder: the first record binds its name, dim and table fingerprint; a
 * view with another gives TR_E_EMBEDDER_MISMATCH (export and start a new
 * log). *id_out (may be NULL) names the record for tr_log_outcome. On
 * error nothing is appended. */
TR_API tr_status tr_log_append(tr_log *log, const tr_pack *pack, tr_ctx *ctx,
                               const tr_result *res, const int8_t *embedding, const char *text,
                               size_t len, uint64_t *id_out);
/* Attach the observed outcome, score in [0,1] (NaN or out of range:
 * TR_E_ARG); a later call replaces it. TR_E_LOG_STALE if the record was
 * already overwritten, TR_E_ARG for an id never issued. */
TR_API tr_status tr_log_outcome(tr_log *log, uint64_t id, float score);

typedef struct tr_log_stats {
    uint64_t recorded; /* ids issued so far (the last id) */
    uint64_t dropped;  /* records overwritten by newer ones */
    uint32_t held;     /* records in the ring */
    uint32_t with_outcome; /* of which with an outcome */
    uint32_t capacity;
} tr_log_stats;
TR_API tr_status tr_log_stats_get(const tr_log *log, tr_log_stats *stats);

/* Bytes tr_log_export() writes now. */
TR_API size_t tr_log_export_size(const tr_log *log);
/* Write the held records, oldest first (core/OUTCOME_LOG.md). If cap is too
 * small: TR_E_ARG with *written = the bytes needed. The log is unchanged. */
TR_API tr_status tr_log_export(const tr_log *log, void *out, size_t cap, size_t *written);

/* ---- Local learning: outcome references in caller memory (issue #16) ----
 * A pack knows how the benchmarked models did on benchmark prompts; a device
 * sees how *its* models do on *its* user's prompts. The store keeps, per
 * entry, the int8 embedding a route returned (tr_route_out.embedding), the
 * outcome in [0,1] observed for the model that answered (and any other model
 * whose outcome is known), and an age. A kNN route given the store
 * (tr_route_opts.local) counts every entry whose cosine distance to the
 * query is at most the pack's neighbour radius (the distance of the k-th
 * pack neighbour) as local_weight neighbours for the models it knows:
 *   (hits + a * prior + w * sum outcome) / (known + a + w * entries)
 * (under distance weighting one entry counts as w neighbours of the pack
 * neighbours' mean weight). A model no entry in the radius knows, and every
 * route with an empty store or local NULL, is predicted bit for bit as
 * without the store.
 * The level term: a device model that is another build than the one
 * benchmarked differs in *level* everywhere, which neighbours within the
 * radius only correct locally. The store keeps per model the sum of the
 * residuals outcome - estimate over the adds that gave the route's
 * estimate (tr_local_add_est, from tr_route_out.estimate: the pack's own
 * estimate, without local entries or this term, so the term does not feed
 * on itself) and their count n_m. A route with local_level = s > 0 adds
 *   n_m / (n_m + s) * mean residual = sum_m / (n_m + s)
 * to the pack's share of each model's estimate (all of it without local
 * entries in the radius, (known + a) / (known + a + w * entries) with
 * them: local outcomes are the device's level already), clamped to [0,1];
 * kNN routes and the priors of a prompt of no known word. A model with no
 * residual is predicted bit for bit as without the term.
 * Bandit honesty: only the chosen model's outcome is seen, and a model is
 * chosen more often where the pack was optimistic about it; the residual
 * is measured against the estimate made when routing, before the outcome,
 * so that selection bias is in the mean and corrected rather than
 * hidden. Cluster and learned-map routes do not read the store:
 * with a store, TR_METHOD_DEFAULT means kNN (even on a pack whose default is
 * another method), and naming cluster or learned map is TR_E_ARG. The same options
 * carry the store into tr_route_governed and tr_task_add (a task's
 * estimates then include the device's outcomes).
 *
 * Memory: tr_local_size(capacity, dim, n_models) bytes, 16-aligned, no
 * allocation. The store is bound to the pack at init: its dim, n_models, and
 * fingerprints of its embedder table and model names. A route with a view
 * of another pack is TR_E_LOCAL_PACK; tr_local_bind moves a store to a new
 * pack with the same embedder, dim and models (a pack rebuilt from the same
 * data).
 * Memory also holds n_models residual sums and counts.
 * Entries: an add of an embedding already held (the same bytes) updates
 * that entry: each model's outcome is the running mean of its adds. Every
 * add stamps the entry with the store's add counter; its age is the number
 * of adds since. When the store is full a new embedding replaces the oldest
 * entry (least recently added to).
 * Threads: tr_local_add(_est), tr_local_import and tr_local_bind write the
 * store; routes (and tr_local_export, tr_local_stats_get, tr_local_level)
 * only read it. The
 * caller serialises every writer against every other call on the store (a
 * reader-writer lock: routes take it shared, adds exclusive); readers run
 * concurrently with each other.
 * Persistence: tr_local_export writes a versioned blob (core/INTEGRATION.md,
 * "Local learning") of int8 embeddings, outcomes and ages and the per-model
 * residual sums only (never text; version 2; a version 1 blob from before
 * the level term is imported with no residuals),
 * sealed by HMAC-SHA-256 under the caller's 32-byte device key and bound
 * to the pack's embedder, dim and models. tr_local_import refuses a
 * truncated or malformed blob (TR_E_LOCAL_BLOB), a modified one or one
 * sealed with another key (TR_E_LOCAL_MAC), and one of another pack
 * (TR_E_LOCAL_PACK), and then leaves the store unchanged. */

/* local_weight of a zeroed tr_route_opts: the weight the validation halves
 * of `tinyroute eval --local` chose most often (16 of 60 seed runs, grid
 * 0.25..16; tests/eval/RESULTS.md, "Local learning"): one local outcome of
 * the device's own model on a nearby prompt outweighs 8 benchmark labels. */
#define TR_LOCAL_WEIGHT_DEFAULT 8.0f
/* local_level of a zeroed tr_route_opts: off. Off is what the validation
 * halves of `tinyroute eval --local` chose most often (17 of 60 seed runs,
 * 14 of them with traffic shift; grid off, 10, 30, 100, 300), just ahead
 * of 100 (16; the most chosen under model shift alone, 12 of 30).
 * tests/eval/RESULTS.md, "Local learning": a device whose model may be
 * another build than the benchmarked one asks for the term by value. */
#define TR_LOCAL_LEVEL_OFF (-1.0f)
#define TR_LOCAL_LEVEL_DEFAULT TR_LOCAL_LEVEL_OFF
#define TR_LOCAL_KEY_BYTES 32u

/* Exact bytes of a store of capacity entries (0: capacity 0 or above
 * 2^24, dim 0 or above TR_DIM_MAX, n_models 0 or above TR_MODELS_MAX). */
TR_API size_t tr_local_size(uint32_t capacity, uint32_t dim, uint32_t n_models);
/* An empty store for capacity entries of the view's dim and n_models in
 * mem (16-aligned, bytes >= tr_local_size). Hashes the pack's embedder
 * table once (megabytes: not per route). */
TR_API tr_status tr_local_init(void *mem, size_t bytes, uint32_t capacity, const tr_pack *pack,
                               tr_local **out);
/* Rebind the entries to another view with the same embedder, dim and model
 * names (TR_E_LOCAL_PACK otherwise, store unchanged). */
TR_API tr_status tr_local_bind(tr_local *store, const tr_pack *pack);
/* Record outcome (in [0,1]) of model for an int8 embedding of dim values in
 * [-127,127], not all zero (a route's tr_route_out.embedding; a prompt
 * routed on priors alone has none and is not added: TR_E_ZERO_VECTOR). */
TR_API tr_status tr_local_add(tr_local *store, const int8_t *embedding, uint32_t dim,
                              uint32_t model, float outcome);
/* tr_local_add, and the residual outcome - estimate for the level term:
 * estimate is tr_route_out.estimate[model] of the route that chose model
 * for that prompt (in [0,1], else TR_E_ARG); NaN: unknown (the entry is
 * added, the level is not updated: tr_local_add is this with NaN). */
TR_API tr_status tr_local_add_est(tr_local *store, const int8_t *embedding, uint32_t dim,
                                  uint32_t model, float outcome, float estimate);
/* The level term a route with local_level = strength (> 0, finite) adds
 * to model's estimate now, before the clamp: sum / (n + strength), 0 with
 * no residual. */
TR_API tr_status tr_local_level(const tr_local *store, uint32_t model, float strength,
                                float *level);

typedef struct tr_local_stats {
    uint32_t count;    /* entries held */
    uint32_t capacity;
    uint64_t adds;     /* tr_local_add calls that succeeded (the age clock) */
    uint64_t evicted;  /* entries replaced because the store was full */
} tr_local_stats;
TR_API tr_status tr_local_stats_get(const tr_local *store, tr_local_stats *stats);

/* Bytes tr_local_export writes now (0 for a bad store). */
TR_API size_t tr_local_export_size(const tr_local *store);
/* The sealed blob; cap too small: TR_E_OUTPUT_TOO_SMALL, *written = the
 * bytes needed. The store is unchanged. */
TR_API tr_status tr_local_export(const tr_local *store, const uint8_t key[TR_LOCAL_KEY_BYTES],
                                 void *out, size_t cap, size_t *written);
/* Replace the store's entries by the blob's after every check (above);
 * a blob of more entries than the store's capacity: TR_E_ARENA_TOO_SMALL. */
TR_API tr_status tr_local_import(tr_local *store, const uint8_t key[TR_LOCAL_KEY_BYTES],
                                 const void *blob, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* TINYROUTE_H */
