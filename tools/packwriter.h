/* Host-side pack writer: lays out pack format v1 (platform/tr_format.h) and
 * appends the signature trailer. */
#ifndef TRH_TOOLS_PACKWRITER_H
#define TRH_TOOLS_PACKWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute.h"
#include "tr_format.h"
#include "util.h"

typedef struct trh_pack_model {
    const char *name;
    double cost;
    tr_where where;
} trh_pack_model;

typedef struct trh_pack_spec {
    uint64_t security_counter, created_unix, expires_unix;
    const char *embedder_name;
    uint32_t dim, n_refs, n_models;
    const trh_pack_model *models;
    const int8_t *refs;          /* n_refs x dim, contiguous */
    const float *scores;         /* n_refs x n_models, row-major; NaN unknown */
    const uint8_t *embedder;     /* optional TR_SEC_EMBEDDER bytes */
    size_t embedder_len;
    uint32_t k;
    float lambda;
    float prior_strength;        /* kNN prior strength a (0: none) */
    struct {                     /* build's validation (all 0: none) */
        float area;
        uint32_t n_queries, chosen; /* TR_CHOSE_* */
    } validation;
    uint32_t method;             /* TR_PACK_METHOD_*: the default method */
    struct {                     /* its held-out validation (0, 0: none) */
        float area;
        uint32_t n_queries;
    } method_validation;
    uint32_t prefilter_c;        /* > 0: write sign codes, prefilter on */
    const uint8_t *clusters;     /* optional TR_SEC_CLUSTERS bytes */
    size_t clusters_len;
    const uint8_t *tasks;        /* optional TR_SEC_TASKS bytes */
    size_t tasks_len;
    const float *lmap_theta;     /* optional learned map, K x (dim + 1) with
                                    K the clusters section's */
} trh_pack_spec;

/* Section sizes, for the builder's summary. */
typedef struct trh_pack_layout {
    uint32_t n_sections;
    struct {
        uint32_t type;
        uint64_t offset, length;
    } sec[16];
} trh_pack_layout;

/* Limits a builder checks before any long work, so that it never signs a
 * pack the device side refuses (issue #18). The model count is the
 * library's TR_MODELS_MAX (core/tinyroute.h), which tr_pack_open and
 * tr_pack_apply_delta check; a security counter of 2^64-1 would raise a
 * device's floor for good, so the largest one a builder writes is 2^64-2. */
#define TRH_COUNTER_MAX (UINT64_MAX - 1)
/* The S3 bandwidth range is the device's (TR_TASK_BANDWIDTH_MIN/MAX,
 * platform/tr_format.h): a builder writes nothing a device refuses. */

/* Each check prints "tinyroute: FIELD ..." naming the field and the limit
 * and returns 1; 0 when within the device's limits. */
int trh_pack_check_models(const trh_pack_model *models, uint32_t n_models);
/* The message for n models past TR_MODELS_MAX: "[WHERE: ]WHAT = N models: a
 * router serves at most 65536 (TR_MODELS_MAX, core/tinyroute.h); not
 * building a ARTIFACT it would refuse". Returns 1. */
int trh_models_max_err(const char *where, const char *what, uint64_t n, const char *artifact);
int trh_pack_check_settings(uint64_t security_counter, uint32_t k, double lambda);

/* Write the signed bytes (header, table, sections) into out. 0 on success;
 * refuses (message, non-zero) a spec the checks above refuse. */
int trh_pack_write(const trh_pack_spec *spec, trh_buf *out, trh_pack_layout *layout);

/* SHA-256 the bytes in out, sign them with the PEM private key and append
 * the trailer. 0 on success. */
int trh_pack_sign(trh_buf *out, const char *private_key_path);

/* trh_pack_sign, then the library's own verifier over the result, as a
 * device that trusts the signer and the CLI's verify and route load it
 * (arena sized as tools/packfile.c does): non-zero, and a message naming
 * the status, when it refuses the pack, so that it is never written. */
int trh_pack_sign_checked(trh_buf *out, const char *private_key_path);

/* Append a trailer with a signature made elsewhere (e.g. by openssl). */
void trh_pack_append_trailer(trh_buf *out, const uint8_t key_id[32],
                            const uint8_t *sig, size_t sig_len);

const char *trh_section_name(uint32_t type);

/* A delta pack (platform/tr_format.h, TR_DELTA_MAGIC): the whole change from
 * one base pack. */
typedef struct trh_delta_spec {
    uint64_t security_counter, created_unix, expires_unix;
    uint8_t base_hash[32];
    uint32_t n_base_models, n_base_refs, n_clusters;
    uint32_t bit_stride;          /* the base's bitset stride, bytes */
    int has_settings;
    uint32_t k;                   /* 0: keep the base's */
    float lambda;                 /* < 0: keep the base's */
    float prior_strength;         /* 0: keep the base's; < 0: none */
    const uint8_t *retired;       /* NULL, or bit_words(n_base_models) * 8 bytes */
    uint32_t n_added;
    const uint8_t *records;       /* n_added * TR_MODEL_REC_BYTES */
    const uint8_t *correct, *valid; /* n_added * bit_stride bytes each */
    const float *psi;             /* n_clusters * n_added, row per cluster */
} trh_delta_spec;

/* Write the signed bytes of a delta into out (sign with trh_pack_sign). */
void trh_delta_write(const trh_delta_spec *spec, trh_buf *out);

/* A tasks section (the S3 regression table). Non-zero (a message) when the
 * bandwidth is not finite or outside [TR_TASK_BANDWIDTH_MIN,
 * TR_TASK_BANDWIDTH_MAX]: out is then left empty. */
int trh_tasks_section(const float *u, const float *acc, uint32_t n_tasks, uint32_t n_models,
                      uint32_t k_dist, float bandwidth, float gate, trh_buf *out);

/* A clusters section with int8 centroids and a zero Psi, for the caller to
 * fill through tr_clusters_view (its Psi must come from the device's own
 * assignment of the references to these quantized centroids);
 * psi_prior: the strength the caller shrinks that Psi with
 * (trh_cluster_psi's a), recorded in the header for `delta`. */
int trh_clusters_section(const float *centroids, uint32_t k, uint32_t dim,
                        uint32_t n_models, float psi_prior, trh_buf *out);

#endif
