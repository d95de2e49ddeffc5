/*
 * tinyroute's status codes and limits: the one part of the public contract
 * that every layer of the library returns or checks (models/ and core/
 * alike), so it sits at the bottom, in platform/, and tinyroute.h includes
 * it (as zstd.h includes zstd_errors.h). Include <tinyroute.h>, not this.
 */
#ifndef TINYROUTE_STATUS_H
#define TINYROUTE_STATUS_H

/* Limits that size the context. A pack beyond them is refused at open. */
#define TR_K_MAX 256            /* neighbours per query */
#define TR_PREFILTER_MAX 8192   /* candidates of the binary prefilter */
#define TR_DIM_MAX 8192u        /* embedding dimension D */
#define TR_MODELS_MAX 65536u    /* models a view serves: a pack's M, plus
                                   the models an applied delta adds */
#define TR_MODEL_NAME_MAX 64    /* bytes, including the terminating NUL */
#define TR_PRIOR_STRENGTH_MAX 4096.0f /* 16 x TR_K_MAX: past it only the prior counts */
#define TR_EMBEDDER_NAME_MAX 32 /* bytes, including the terminating NUL */

/* Pinned values: a status keeps its number in every release (logs, IPC and
 * other languages store them); a new status takes the next number. */
typedef enum tr_status {
    TR_OK = 0,
    TR_E_ARG = 1,                 /* a NULL pointer or an out-of-range option */
    TR_E_ARENA_TOO_SMALL = 2,     /* caller memory smaller than a *_size() asks */
    TR_E_TRUNCATED = 3,           /* pack shorter than its header says */
    TR_E_BAD_MAGIC = 4,           /* not a tinyroute pack */
    TR_E_VERSION = 5,             /* pack format version not supported */
    TR_E_NO_SIGNATURE = 6,        /* signature trailer missing */
    TR_E_TRAILING_DATA = 7,       /* bytes after the signature */
    TR_E_KEY_UNKNOWN = 8,         /* signed by a key that is not trusted */
    TR_E_SIGNATURE = 9,           /* signature does not match the pack bytes */
    TR_E_MALFORMED = 10,          /* signed, but sections are inconsistent */
    TR_E_ROLLBACK = 11,           /* security counter below the device's */
    TR_E_EXPIRED = 12,            /* pack expiry is in the past */
    TR_E_NO_PACK = 13,            /* route called before a pack was loaded */
    TR_E_NO_EMBEDDER = 14,        /* text routing asked of a pack without one */
    TR_E_EMBEDDER_MISMATCH = 15,  /* caller embedding from another embedder */
    TR_E_DIM_MISMATCH = 16,       /* caller embedding of the wrong length */
    TR_E_NOT_FINITE = 17,         /* NaN or Inf in a caller embedding */
    TR_E_ZERO_VECTOR = 18,        /* caller embedding is all zeros */
    TR_E_EMPTY_INPUT = 19,        /* empty prompt */
    TR_E_UTF8 = 20,               /* prompt is not valid UTF-8 */
    TR_E_NO_MODEL_AVAILABLE = 21, /* the availability mask leaves no model */
    TR_E_CRYPTO = 22,             /* the crypto library failed internally */
    TR_E_UNSUPPORTED = 23,        /* the pack carries no data for this method */
    TR_E_KEY_REVOKED = 24,        /* signed by a key whose id has been revoked */
    TR_E_DELTA_BASE = 25,         /* delta pack made for another base pack */
    TR_E_COUNTER_STORE = 26,      /* the integrator's counter store failed */
    TR_E_LOG_STALE = 27,          /* outcome for a log record already overwritten */
    TR_E_OUTPUT_TOO_SMALL = 28,   /* an output array's capacity is below what the
                                     pack needs (n_models, dim): nothing written */
    TR_E_LOCAL_BLOB = 29,         /* local store blob truncated, malformed or of
                                     an unknown version */
    TR_E_LOCAL_MAC = 30,          /* local store blob fails its MAC: modified, or
                                     sealed with another device key */
    TR_E_LOCAL_PACK = 31,         /* local store or blob made for another pack:
                                     embedder, dim or models differ */
    TR_STATUS_COUNT = 32          /* one past the last; grows as codes are added */
} tr_status;

#endif /* TINYROUTE_STATUS_H */
