/* Private to the library: the verified view of a pack and the router. */
#ifndef TR_INTERNAL_H
#define TR_INTERNAL_H

#include "tinyroute.h"
#include "tr_embed.h"
#include "tr_cluster.h"
#include "tr_knn.h"

typedef struct tr_pack_view {
    tr_pack_info info;
    const uint8_t *models;  /* n_models records of TR_MODEL_REC_BYTES */
    tr_refs refs;
    tr_codes codes;         /* words == 0: no prefilter */
    tr_labels labels;
    tr_clusters clusters;   /* k == 0: no cluster routing */
    int has_embedder;
    tr_embedder embedder;
} tr_pack_view;

/* SHA-256 of data. TR_OK or TR_E_CRYPTO. */
tr_status tr_sha256(const void *data, size_t len, uint8_t out[32]);
/* ECDSA P-256 verify of a DER signature over a SHA-256 digest.
 * TR_OK, TR_E_SIGNATURE, or TR_E_CRYPTO. */
tr_status tr_ecdsa_p256_verify(const uint8_t point[65], const uint8_t hash[32],
                               const uint8_t *sig, size_t sig_len);

/* Parse and verify a pack into a view (no router state touched). */
tr_status tr_pack_verify(const uint8_t *pack, size_t len, const tr_trust *trust,
                         tr_pack_view *view);

#endif
