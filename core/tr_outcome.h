/* The outcome log's export format (core/OUTCOME_LOG.md is the prose) and the
 * hashes the device and the host tools must compute alike. */
#ifndef TR_OUTCOME_H
#define TR_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute.h"
#include "tr_embed.h"

#define TR_LOG_MAGIC "TROUTLOG" /* 8 bytes, no NUL */
#define TR_LOG_VERSION 1u
#define TR_LOG_HEADER_BYTES 128u
#define TR_LOG_REC_HEAD 64u
/* Version 2: the authenticated export (tr_log_set_device). The v1 header,
 * then the device fields up to TR_LOG_HEADER_BYTES_V2; the records; then
 * TR_LOG_MAC_BYTES of HMAC-SHA-256 over every byte before it. */
#define TR_LOG_VERSION_AUTH 2u
#define TR_LOG_HEADER_BYTES_V2 160u
#define TR_LOG_MAC_BYTES 32u
#define TR_LOG_AUTH_HMAC_SHA256 1u
#define TR_LOG_KEY_MIN 16u
#define TR_LOG_KEY_MAX 64u /* the SHA-256 block: a key is never pre-hashed */

enum { /* header offsets */
    TR_LH_VERSION = 8,       /* u32 */
    TR_LH_HEADER_BYTES = 12, /* u32 */
    TR_LH_RECORD_BYTES = 16, /* u32 */
    TR_LH_FLAGS = 20,        /* u32 TR_LOG_* */
    TR_LH_DIM = 24,          /* u32 */
    TR_LH_TEXT_MAX = 28,     /* u32 */
    TR_LH_N_RECORDS = 32,    /* u32 records in this export */
    TR_LH_CAPACITY = 36,     /* u32 */
    TR_LH_RECORDED = 40,     /* u64 ids issued */
    TR_LH_DROPPED = 48,      /* u64 */
    TR_LH_EMBEDDER_FP = 56,  /* u64, 0: none bound */
    TR_LH_EMBEDDER = 64,     /* char[32], NUL-padded */
    TR_LH_PACK_HASH = 96,    /* u8[32]: the newest record's pack */
    /* version 2 only */
    TR_LH_DEVICE_ID = 128,   /* u64 */
    TR_LH_FIRST_ID = 136,    /* u64: the log's first id (tr_log_set_device) */
    TR_LH_AUTH = 144,        /* u32 TR_LOG_AUTH_HMAC_SHA256 */
    TR_LH_MAC_BYTES = 148    /* u32 TR_LOG_MAC_BYTES; 152..159 zero */
};

enum { /* record offsets */
    TR_LR_ID = 0,          /* u64 */
    TR_LR_PACK_TAG = 8,    /* u64: pack hash bytes 0..7, little-endian */
    TR_LR_MODEL_HASH = 16, /* u64: FNV-1a 64 of the model name */
    TR_LR_PROMPT_HASH = 24,/* u64: SipHash-2-4, 0 without TR_LOG_REC_HASH */
    TR_LR_MODEL = 32,      /* u32 model index in that pack */
    TR_LR_WHERE = 36,      /* u8 tr_where */
    TR_LR_METHOD = 37,     /* u8 tr_method */
    TR_LR_FLAGS = 38,      /* u16 TR_LOG_REC_* */
    TR_LR_COST = 40,       /* f32 */
    TR_LR_COST_NORM = 44,  /* f32 */
    TR_LR_LAMBDA = 48,     /* f32 */
    TR_LR_UTILITY = 52,    /* f32 */
    TR_LR_OUTCOME = 56,    /* f32, NaN: none */
    TR_LR_TEXT_LEN = 60,   /* u16 */
    TR_LR_WHY = 62         /* u8 TR_WHY_*, then one zero byte */
};

/* Embedding bytes (dim rounded up to 8) and record size for these flags.
 * Both are summed in 64 bits and return 0 when the result does not fit the
 * format's u32 record size (TR_LH_RECORD_BYTES): a dim near 2^32 wrapped
 * them in 32 bits (issue #18, as tr_log_size did). The record size is never
 * 0 otherwise (it has a 64-byte head); the embedding size is 0 for dim 0. */
static inline size_t tr_log_emb_bytes(uint32_t dim)
{
    uint64_t b = ((uint64_t)dim + 7u) & ~(uint64_t)7u;
    return b > UINT32_MAX ? 0 : (size_t)b;
}
static inline size_t tr_log_record_bytes(uint32_t dim, uint32_t flags)
{
    uint64_t emb = (flags & TR_LOG_EMBEDDING) ? ((uint64_t)dim + 7u) & ~(uint64_t)7u : 0;
    uint64_t b = TR_LOG_REC_HEAD + emb + ((flags & TR_LOG_TEXT) ? TR_LOG_TEXT_MAX : 0);
    return b > UINT32_MAX ? 0 : (size_t)b;
}

uint64_t tr_fnv1a64(const void *p, size_t n);
/* HMAC-SHA-256 (RFC 2104) with key_len <= 64, over mbedTLS's SHA-256 on the
 * stack: no allocation, so it needs no crypto pool on the device.
 * TR_E_ARG for a longer key, TR_E_CRYPTO if SHA-256 fails. */
tr_status tr_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                         uint8_t out[32]);
/* SipHash-2-4 (Aumasson & Bernstein) with a 16-byte key. */
uint64_t tr_siphash24(const uint8_t key[16], const void *p, size_t n);
/* FNV-1a 64 over what an embedding depends on: the scalars, vocabulary,
 * weights, vectors and the removed pc. Two embedders with equal
 * fingerprints give the same bits for every prompt. */
uint64_t tr_embedder_fingerprint(const tr_embedder *e);

#endif
