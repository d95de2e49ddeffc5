#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tinyroute.h"

static const struct {
    const char *name, *message;
} table[TR_STATUS_COUNT] = {
    [TR_OK] = {"TR_OK", "ok"},
    [TR_E_ARG] = {"TR_E_ARG", "invalid argument"},
    [TR_E_ARENA_TOO_SMALL] = {"TR_E_ARENA_TOO_SMALL", "caller memory smaller than tr_pack_size/tr_ctx_size/tr_task_size asks"},
    [TR_E_TRUNCATED] = {"TR_E_TRUNCATED", "pack is truncated"},
    [TR_E_BAD_MAGIC] = {"TR_E_BAD_MAGIC", "not a tinyroute pack (bad magic)"},
    [TR_E_VERSION] = {"TR_E_VERSION", "unsupported pack format version (a pack of an older format must be rebuilt)"},
    [TR_E_NO_SIGNATURE] = {"TR_E_NO_SIGNATURE", "pack has no signature trailer"},
    [TR_E_TRAILING_DATA] = {"TR_E_TRAILING_DATA", "unexpected bytes after the pack signature"},
    [TR_E_KEY_UNKNOWN] = {"TR_E_KEY_UNKNOWN", "pack is signed by a key that is not trusted"},
    [TR_E_SIGNATURE] = {"TR_E_SIGNATURE", "pack signature does not verify (pack modified or wrong key)"},
    [TR_E_MALFORMED] = {"TR_E_MALFORMED", "pack sections are malformed"},
    [TR_E_ROLLBACK] = {"TR_E_ROLLBACK", "pack security counter is older than the device's (rollback)"},
    [TR_E_EXPIRED] = {"TR_E_EXPIRED", "pack has expired"},
    [TR_E_NO_PACK] = {"TR_E_NO_PACK", "no pack loaded"},
    [TR_E_NO_EMBEDDER] = {"TR_E_NO_EMBEDDER", "pack has no built-in text embedder"},
    [TR_E_EMBEDDER_MISMATCH] = {"TR_E_EMBEDDER_MISMATCH", "embedding comes from a different embedder than the pack's"},
    [TR_E_DIM_MISMATCH] = {"TR_E_DIM_MISMATCH", "embedding dimension differs from the pack's"},
    [TR_E_NOT_FINITE] = {"TR_E_NOT_FINITE", "embedding contains NaN or Inf"},
    [TR_E_ZERO_VECTOR] = {"TR_E_ZERO_VECTOR", "embedding is all zeros"},
    [TR_E_EMPTY_INPUT] = {"TR_E_EMPTY_INPUT", "empty prompt"},
    [TR_E_UTF8] = {"TR_E_UTF8", "prompt is not valid UTF-8"},
    [TR_E_NO_MODEL_AVAILABLE] = {"TR_E_NO_MODEL_AVAILABLE", "no model is available under the given mask"},
    [TR_E_CRYPTO] = {"TR_E_CRYPTO", "internal crypto failure"},
    [TR_E_KEY_REVOKED] = {"TR_E_KEY_REVOKED", "pack is signed by a revoked key"},
    [TR_E_DELTA_BASE] = {"TR_E_DELTA_BASE", "delta pack was made for another base pack"},
    [TR_E_COUNTER_STORE] = {"TR_E_COUNTER_STORE", "the anti-rollback counter store failed"},
    [TR_E_LOG_STALE] = {"TR_E_LOG_STALE", "log record was overwritten before its outcome came"},
    [TR_E_OUTPUT_TOO_SMALL] = {"TR_E_OUTPUT_TOO_SMALL", "an output array is smaller than the pack needs"},
    [TR_E_UNSUPPORTED] = {"TR_E_UNSUPPORTED", "the pack carries no data for this routing method"},
    [TR_E_LOCAL_BLOB] = {"TR_E_LOCAL_BLOB", "local store blob is truncated, malformed or of an unknown version"},
    [TR_E_LOCAL_MAC] = {"TR_E_LOCAL_MAC", "local store blob fails its MAC (modified, or sealed with another device key)"},
    [TR_E_LOCAL_PACK] = {"TR_E_LOCAL_PACK", "local store was made for another pack (embedder, dim or models differ)"},
};

const char *tr_strerror(tr_status s)
{
    return (unsigned)s < TR_STATUS_COUNT ? table[s].message : "unknown status";
}

const char *tr_status_name(tr_status s)
{
    return (unsigned)s < TR_STATUS_COUNT ? table[s].name : "TR_E_UNKNOWN";
}

unsigned tr_version(void) { return TR_VERSION_NUMBER; }

const char *tr_version_string(void) { return TR_VERSION_STRING; }
