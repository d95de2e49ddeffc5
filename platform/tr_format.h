/*
 * Pack format v2: the on-disk layout shared by the host writer (tools/) and
 * the device reader (core/). core/PACK_FORMAT.md is the prose description;
 * this header is the normative one. Everything is little-endian; every
 * section starts on a 64-byte boundary so rows can be read in place.
 *
 *   [header 128 B][section table n*32 B][sections...]   <- signed bytes
 *   [trailer: "TRSG" u16 ver u16 sig_len key_id[32] sig[sig_len]]
 *
 * The signature is ECDSA P-256 (DER) over SHA-256 of the signed bytes, so
 * `openssl dgst -sha256 -sign key.pem` over that prefix produces it.
 */
#ifndef TR_FORMAT_H
#define TR_FORMAT_H

#include <stdint.h>
#include <string.h>

#define TR_PACK_MAGIC "TINYRTPK"   /* 8 bytes, no NUL */
#define TR_PACK_VERSION 2u /* 2: ref rows in blocks of 4 (below); a v1
                              pack is refused with TR_E_VERSION: rebuild it */
#define TR_HEADER_BYTES 128u
#define TR_SECTION_ENTRY_BYTES 32u
#define TR_ALIGN 64u
#define TR_MAX_SECTIONS 32u

#define TR_TRAILER_MAGIC "TRSG"    /* 4 bytes, no NUL */
#define TR_TRAILER_VERSION 1u
#define TR_TRAILER_FIXED_BYTES 40u /* magic, version, sig_len, key id */
#define TR_SIG_MAX_BYTES 72u       /* DER ECDSA P-256 */

/* Header byte offsets. */
enum {
    TR_H_MAGIC = 0,          /* char[8] */
    TR_H_VERSION = 8,        /* u32 */
    TR_H_HEADER_BYTES = 12,  /* u32, = TR_HEADER_BYTES */
    TR_H_SECURITY = 16,      /* u64 security (anti-rollback) counter */
    TR_H_CREATED = 24,       /* u64 unix seconds */
    TR_H_EXPIRES = 32,       /* u64 unix seconds, 0 = never */
    TR_H_EMBEDDER = 40,      /* char[32], NUL-padded */
    TR_H_DIM = 72,           /* u32 */
    TR_H_N_REFS = 76,        /* u32 */
    TR_H_N_MODELS = 80,      /* u32 */
    TR_H_N_SECTIONS = 84,    /* u32 */
    TR_H_SIGNED_BYTES = 88,  /* u64, offset of the trailer */
    TR_H_FLAGS = 96,         /* u32, 0 in v1 */
    TR_H_PREFILTER_C = 100   /* u32 candidates of the binary prefilter, 0 =
                                exact search only; the rest is zero */
};

/* Section table entry byte offsets. */
enum {
    TR_S_TYPE = 0,   /* u32 tr_section_type */
    TR_S_FLAGS = 4,  /* u32, 0 in v1 */
    TR_S_OFFSET = 8, /* u64 from the start of the pack, 64-aligned */
    TR_S_LENGTH = 16,/* u64 bytes */
    TR_S_STRIDE = 24,/* u32 row stride in bytes (0: not a row section) */
    TR_S_COUNT = 28  /* u32 rows */
};

typedef enum tr_section_type {
    TR_SEC_MODELS = 1,        /* n_models records of TR_MODEL_REC_BYTES */
    TR_SEC_REF_I8 = 2,        /* n_refs int8 rows in blocks of 4 rows
                                 (tr_ref_offset below); stride is the row's
                                 bytes, tr_ref_stride(dim); count n_refs;
                                 length tr_ref_bytes(n_refs, dim) */
    TR_SEC_REF_INVNORM = 3,   /* float[n_refs]: 1/||row||2 of the int8 row */
    TR_SEC_CORRECT_BITS = 4,  /* n_models bitsets of n_refs bits (u64 LE
                                 words), stride bytes each: 1 = correct
                                 (score >= 0.5) */
    TR_SEC_VALID_BITS = 5,    /* optional, same layout: 1 = score known;
                                 absent = every score known */
    TR_SEC_SCORES_U8 = 6,     /* optional: n_models rows of n_refs bytes,
                                 round(score*255); present when any score is
                                 not 0 or 1, and then used instead of bits */
    TR_SEC_EMBEDDER = 7,      /* optional built-in text embedder */
    TR_SEC_DEFAULTS = 8,      /* routing defaults, TR_DEFAULTS_BYTES */
    TR_SEC_REF_SIGNS = 9,     /* optional: n_refs sign-bit codes (bit d = row[d]
                                 > 0), u64 LE words, stride bytes each; with
                                 TR_H_PREFILTER_C > 0 the router searches
                                 Hamming top-C, then reranks exactly */
    TR_SEC_CLUSTERS = 10,     /* optional: K-means routing (UniRoute), below */
    TR_SEC_TASKS = 11,        /* optional: task-level selection (S3), below */
    TR_SEC_LEARNED_MAP = 12   /* optional: learned soft cluster map, below */
} tr_section_type;

/* Reference rows, format 2: "blocks" of 4 rows by 16-byte chunks. A row
 * is dim int8 values padded with zeros to stride = dim rounded up to 16;
 * the 4 rows of block b are stored chunk by chunk: chunk c (bytes
 * 16c .. 16c + 15) of row 4b + j is at 4 * stride * b + 64 c + 16 j. So
 * one 64-byte load holds the same chunk of 4 rows: an AVX-512 VNNI step
 * against the broadcast query chunk scores 4 rows with no masked step and
 * a 2-level reduction (tests/bench/ANALYSIS.md, "row layout probe"), and a
 * 16-byte NEON load is still one row's chunk. The last block is whole:
 * rows past n_refs are zero. */
#define TR_REF_BLOCK_ROWS 4u
#define TR_REF_CHUNK 16u

static inline uint32_t tr_ref_stride(uint32_t dim)
{
    return (dim + TR_REF_CHUNK - 1) / TR_REF_CHUNK * TR_REF_CHUNK;
}

/* Byte offset of value d of row r. */
static inline uint64_t tr_ref_offset(uint32_t dim, uint64_t r, uint32_t d)
{
    return (uint64_t)TR_REF_BLOCK_ROWS * tr_ref_stride(dim) * (r / TR_REF_BLOCK_ROWS) +
           (uint64_t)TR_REF_BLOCK_ROWS * TR_REF_CHUNK * (d / TR_REF_CHUNK) +
           TR_REF_CHUNK * (r % TR_REF_BLOCK_ROWS) + d % TR_REF_CHUNK;
}

/* Bytes of n rows: whole blocks. */
static inline uint64_t tr_ref_bytes(uint64_t n, uint32_t dim)
{
    return (n + TR_REF_BLOCK_ROWS - 1) / TR_REF_BLOCK_ROWS * TR_REF_BLOCK_ROWS *
           tr_ref_stride(dim);
}

/* Model record. */
#define TR_MODEL_REC_BYTES 96u
enum {
    TR_M_NAME = 0,      /* char[64], NUL-terminated */
    TR_M_COST = 64,     /* f32, data set's unit */
    TR_M_COST_NORM = 68,/* f32 in [0,1] */
    TR_M_PRIOR = 72,    /* f32 mean score over the references */
    TR_M_WHERE = 76     /* u32 tr_where */
};

/* Defaults record. */
#define TR_DEFAULTS_BYTES 64u
enum {
    TR_D_K = 0,      /* u32 */
    TR_D_LAMBDA = 4, /* f32 */
    TR_D_PRIOR = 8,  /* f32 prior strength a: kNN estimates are (hits + a *
                        prior) / (known + a). Pack: 0 = none (what packs
                        written before the field hold), at most
                        TR_PRIOR_STRENGTH_MAX. Delta settings: 0 keeps the
                        base's, < 0 turns it off, > 0 sets it. */
    /* What the builder chose on validation (pack only; 0 in a delta's
     * settings and in packs built with every setting given): */
    TR_D_VAL_AREA = 12,    /* f32 in [0,1]: validation Area of the deferral
                              curve at these defaults; 0: not validated */
    TR_D_VAL_QUERIES = 16, /* u32 <= N: the validation queries */
    TR_D_CHOSEN = 20,      /* u32 TR_CHOSE_* bits: the defaults chosen on
                              validation (the others were given) */
    TR_D_METHOD = 24,      /* u32 TR_PACK_METHOD_*: what zeroed options
                              route with (0 kNN: packs before the field) */
    TR_D_METHOD_AREA = 28,    /* f32 in [0,1]: held-out Area of that method */
    TR_D_METHOD_QUERIES = 32  /* u32 <= N: its held-out queries (0: none) */
};
#define TR_D_USED_BYTES 36u /* the rest of the record is zero */
enum { TR_CHOSE_K = 1u << 0, TR_CHOSE_PRIOR = 1u << 1, TR_CHOSE_LAMBDA = 1u << 2,
       TR_CHOSE_METHOD = 1u << 3 };
/* The stored method is tr_method - 1: 0 stays kNN in every older pack. */
enum { TR_PACK_METHOD_KNN = 0, TR_PACK_METHOD_CLUSTER = 1, TR_PACK_METHOD_LEARNED_MAP = 2 };

/* Clusters section (Jitkrittum et al. 2025, cluster-based routing): a 64-byte
 * header, then parts at 64-aligned offsets relative to the section start.
 * Centroids c_k were fitted in float on unit-norm embeddings (Euclidean
 * K-means); they ship as int8 rows q_k = round(c_k * scale_k). A unit query x
 * (int8 q, ||q|| its norm) goes to argmax_k x.c_k - ||c_k||^2 / 2, computed
 * as dot(q, q_k) / ||q|| * inv_scale_k - half_sq_norm_k. Psi[k][m] is model
 * m's error rate (1 - mean score) on the labelled prompts of cluster k,
 * shrunk toward m's overall error with strength psi_prior:
 * 1 - (hits_k + a * prior) / (n_k + a); a cluster without labels holds the
 * overall error. */
#define TR_CLU_HEADER_BYTES 64u
enum {
    TR_C_K = 0,            /* u32 clusters */
    TR_C_STRIDE = 4,       /* u32 bytes between centroid rows (>= dim) */
    TR_C_OFF_ROWS = 8,     /* u32 -> int8[K * stride] */
    TR_C_OFF_INV_SCALE = 12, /* u32 -> f32[K] */
    TR_C_OFF_HALF_SQ = 16, /* u32 -> f32[K] */
    TR_C_OFF_PSI = 20,     /* u32 -> f32[K * n_models], row per cluster */
    TR_C_TOTAL = 24,       /* u32 section bytes */
    TR_C_PSI_PRIOR = 28    /* f32 the strength a Psi was shrunk with, in
                              [0, TR_PRIOR_STRENGTH_MAX]. The device never
                              reads it (Psi ships shrunk); `delta` shrinks an
                              added model's Psi with it. 0 in packs written
                              before the field (their Psi used a = 10). */
};

/* Tasks section (Shnitzer et al. 2023, task-level selection): the kernel
 * regression table behind S3. For each benchmark task t of the builder's
 * data, held out in turn: u[t], the mean cosine distance of t's prompts to
 * their k_dist nearest references of the other tasks, and acc[t][m], how
 * often the kNN predictor (built from the other tasks) was right about
 * model m on t. The device estimates p(d,m) for a new task d by
 * Nadaraya-Watson regression of acc on u with a Gaussian kernel. */
#define TR_TASKS_HEADER_BYTES 64u
/* Bandwidth bounds: u lies in [0, 2], so below 1e-3 2h^2 reaches the
 * subnormals and the nearest task's weight turns 0/0 (S3 NaN); above 100
 * every task weighs the same to f32 precision. */
#define TR_TASK_BANDWIDTH_MIN 1e-3f
#define TR_TASK_BANDWIDTH_MAX 100.0f
enum {
    TR_T_N_TASKS = 0,    /* u32 T */
    TR_T_K_DIST = 4,     /* u32 neighbours behind u (19 in the paper) */
    TR_T_BANDWIDTH = 8,  /* f32 kernel bandwidth (0.09 in the paper) */
    TR_T_GATE = 12,      /* f32 P[beats BMA] needed to leave BMA (0.6) */
    TR_T_OFF_U = 16,     /* u32 -> f32[T] */
    TR_T_OFF_ACC = 20,   /* u32 -> f32[T * n_models] */
    TR_T_TOTAL = 24      /* u32 section bytes */
};

/* Learned cluster map section (Jitkrittum et al. 2025, section 4.3): the
 * clusters section's Psi with a soft assignment z(x) = softmax(theta x + b)
 * of the unit query x (q / ||q||); predicted correctness of model m is
 * 1 - sum_k z_k Psi[k][m]. theta: K rows of dim floats then the bias, f32. */
#define TR_LMAP_HEADER_BYTES 64u
#define TR_LMAP_MAX_K 256u
enum {
    TR_L_K = 0,        /* u32, equals the clusters section's K */
    TR_L_DIM = 4,      /* u32 */
    TR_L_OFF_THETA = 8,/* u32 -> f32[K * (dim + 1)] */
    TR_L_TOTAL = 12    /* u32 section bytes */
};

/* ---- Delta packs: the dynamic model pool (Jitkrittum et al. 2025) ----
 * A delta changes the model set of one base pack without re-shipping it: it
 * adds models (their correctness bits over the base's references, for kNN,
 * and their per-cluster error rates Psi, for cluster routing), retires base
 * models, and may override the routing defaults (k, lambda), e.g. from
 * `tinyroute calibrate`. Same container as a pack (header, section table,
 * 64-aligned sections, signature trailer; TR_H_N_SECTIONS and
 * TR_H_SIGNED_BYTES at the same offsets), its own magic and header. A delta
 * names its base by the SHA-256 of the base's signed bytes. Deltas do not
 * stack: each one carries the whole change from its base. */
#define TR_DELTA_MAGIC "TINYRTDL"  /* 8 bytes, no NUL */
#define TR_DELTA_VERSION 1u
#define TR_DELTA_MAX_ADDED 1024u
enum {
    TR_DH_MAGIC = 0,         /* char[8] */
    TR_DH_VERSION = 8,       /* u32 */
    TR_DH_HEADER_BYTES = 12, /* u32, = TR_HEADER_BYTES */
    TR_DH_SECURITY = 16,     /* u64 anti-rollback counter */
    TR_DH_CREATED = 24,      /* u64 unix seconds */
    TR_DH_EXPIRES = 32,      /* u64 unix seconds, 0 = never */
    TR_DH_BASE_HASH = 40,    /* u8[32]: SHA-256 of the base's signed bytes */
    TR_DH_BASE_MODELS = 72,  /* u32: the base's model count */
    TR_DH_N_ADDED = 76,      /* u32 models added */
    TR_DH_BASE_REFS = 80,    /* u32: the base's reference count */
    TR_DH_N_SECTIONS = 84,   /* u32, as TR_H_N_SECTIONS */
    TR_DH_SIGNED_BYTES = 88, /* u64, as TR_H_SIGNED_BYTES */
    TR_DH_FLAGS = 96,        /* u32, 0 in v1 */
    TR_DH_BASE_CLUSTERS = 100/* u32: the base's K (0: none); the rest is 0 */
};

typedef enum tr_delta_section_type {
    TR_DSEC_SETTINGS = 32,     /* optional, TR_DEFAULTS_BYTES: k (0 keeps the
                                  base's), lambda (< 0 keeps the base's) and
                                  prior strength (see TR_D_PRIOR) */
    TR_DSEC_RETIRE = 33,       /* optional: bitset over the base's models, u64
                                  LE words: 1 = never chosen again */
    TR_DSEC_MODELS = 34,       /* n_added model records (TR_MODEL_REC_BYTES);
                                  cost_norm on the base's scale, may pass 1 */
    TR_DSEC_CORRECT_BITS = 35, /* n_added bitsets over the base's references,
                                  the base's bit stride: 1 = correct */
    TR_DSEC_VALID_BITS = 36,   /* n_added bitsets: 1 = labelled (a validation
                                  reference the model was run on) */
    TR_DSEC_PSI = 37           /* f32[K * n_added], row per cluster: error
                                  rates; required when the base has clusters */
} tr_delta_section_type;

/* Built-in embedder section: a 64-byte header, then the parts below at the
 * given offsets (relative to the section start, 64-aligned). The same bytes
 * are the standalone embedder table file that `tinyroute embedder` writes.
 *
 * Word lookup: FNV-1a 32 of the lower-cased word bytes, masked by
 * n_buckets - 1, linear probing; a bucket holds word index + 1 (0: empty).
 * Prompt embedding: sum of weight[w] * vec[w] over the prompt's known words,
 * minus its projection on pc (when TR_EMB_HAS_PC), L2-normalized, then
 * quantized to int8 with max |value| = 127.
 *
 * A hashed table (TR_EMB_HASHED) has no words: n_words is its number of rows
 * (a power of two), n_buckets and max_word are 0 and the buckets, word
 * offsets and chars parts are empty. A prompt's features are each word and
 * each run of TR_NGRAM_MIN..TR_NGRAM_MAX code points of "<word>", counted
 * with repetition (words as the tokenizer cuts them: runs of ASCII letters
 * and digits and non-ASCII characters, ASCII lower-cased); a word feature is
 * FNV-1a 32 of the byte 0x01 then the word, an n-gram feature FNV-1a 32 of
 * its bytes, and feature h adds weight[r] * vec[r], r = h & (n_words - 1).
 * The builder learns the rows (tinyroute embedder --hashed). */
#define TR_EMB_MAGIC "TREMB001"  /* 8 bytes, no NUL */
#define TR_EMB_HEADER_BYTES 64u
#define TR_EMB_HAS_PC 1u
#define TR_EMB_HASHED 2u
#define TR_NGRAM_MIN 3u
#define TR_NGRAM_MAX 5u
enum {
    TR_E_MAGIC = 0,         /* char[8] */
    TR_E_N_WORDS = 8,       /* u32 */
    TR_E_DIM = 12,          /* u32 */
    TR_E_N_BUCKETS = 16,    /* u32, power of two, > n_words (hashed: 0) */
    TR_E_MAX_WORD = 20,     /* u32, longest word in bytes (< 64; hashed: 0) */
    TR_E_VEC_SCALE = 24,    /* f32, value = int8 * scale */
    TR_E_SIF_A = 28,        /* f32, the a in a/(a+p(w)) (informative) */
    TR_E_FLAGS = 32,        /* u32 TR_EMB_* */
    TR_E_OFF_BUCKETS = 36,  /* u32 -> u32[n_buckets] */
    TR_E_OFF_WORD_OFFS = 40,/* u32 -> u32[n_words + 1] into chars */
    TR_E_OFF_CHARS = 44,    /* u32 -> word bytes, no separators */
    TR_E_OFF_WEIGHTS = 48,  /* u32 -> f32[n_words] */
    TR_E_OFF_VECTORS = 52,  /* u32 -> int8[n_words * dim] */
    TR_E_OFF_PC = 56,       /* u32 -> f32[dim], unit vector */
    TR_E_TOTAL = 60         /* u32 section bytes */
};
#define TR_EMB_WORD_MAX 64u

/* Little-endian loads and stores that do not care about alignment: the
 * writer and the reader of the format share them. */
static inline uint32_t tr_ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint64_t tr_ld64(const uint8_t *p)
{
    return (uint64_t)tr_ld32(p) | (uint64_t)tr_ld32(p + 4) << 32;
}
static inline float tr_ldf32(const uint8_t *p)
{
    uint32_t u = tr_ld32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline void tr_st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void tr_st32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tr_st64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tr_stf32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    tr_st32(p, u);
}

/* Set or clear TR_EMB_HAS_PC in an embedder header, keeping its other flags
 * (the host tools fit the pc into a table in place). */
static inline void tr_emb_set_pc(uint8_t *sec, int on)
{
    const uint32_t f = tr_ld32(sec + TR_E_FLAGS) & ~TR_EMB_HAS_PC;
    tr_st32(sec + TR_E_FLAGS, on ? f | TR_EMB_HAS_PC : f);
}

static inline uint32_t tr_fnv1a(const uint8_t *p, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

#endif /* TR_FORMAT_H */
