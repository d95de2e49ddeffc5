/* libtinyroute-host.so: the host tools' verified parsers behind a small C
 * ABI for other languages (ctypes; tools/fleet_step.py, issue 17, the start
 * of a Python binding). Only plain C types cross it: handles are opaque,
 * arrays are the caller's, errors are copied into the caller's buffer
 * (err, cap) and name the file. No function prints. Thread-compatible:
 * one handle at a time per thread (a keys handle's take is serial). */
#ifndef TR_TOOLS_HOSTLIB_H
#define TR_TOOLS_HOSTLIB_H

#include <stddef.h>
#include <stdint.h>

#define TRH_ABI_VERSION 1

typedef struct trh_log_info {
    uint32_t version;      /* 1 plain, 2 authenticated */
    uint32_t flags;        /* TR_LOG_* of the log */
    uint32_t dim;
    uint32_t n;            /* records in the file */
    uint32_t capacity;
    uint32_t record_bytes;
    uint64_t device_id;    /* version 2 */
    uint64_t first_id;
    uint64_t recorded;     /* newest id */
    uint64_t dropped;
    uint64_t embedder_fp;
} trh_log_info;

int trh_abi_version(void);
/* --device-keys FILE; allow_v1: accept version 1 logs unchecked. NULL on
 * error (message in err). */
void *trh_keys_load(const char *path, int allow_v1, char *err, size_t cap);
void trh_keys_free(void *keys);
/* The batch's replay rule (tools/logfile.h tr_devkeys_take) from a log's
 * header fields, so the logs themselves can be read elsewhere (a worker).
 * 0 accepted, *skip its first records already taken; 1 refused. */
int trh_keys_take(void *keys, const char *path, uint32_t version, uint64_t device_id,
                  uint64_t recorded, uint32_t n, uint32_t *skip, char *err, size_t cap);
/* Read and check a log (tr_logfile_read); with keys, authenticate it
 * (tr_logfile_auth: device known, not revoked, MAC). NULL on refusal. */
void *trh_log_open(const char *path, const void *keys, trh_log_info *info, char *err,
                   size_t cap);
/* Records from..from+count-1 into the caller's arrays (any may be NULL):
 * id, model name hash, prompt hash (SipHash, 0 without), text key (FNV-1a 64
 * of the kept text, 0 without text), record flags, outcome (NaN: none),
 * cost. 0 ok, 1 out of range. */
int trh_log_records(const void *log, uint32_t from, uint32_t count, uint64_t *id,
                    uint64_t *model_hash, uint64_t *prompt_hash, uint64_t *text_key,
                    uint32_t *flags, float *outcome, float *cost);
/* Record i's kept text: its length (copied up to cap bytes), -1 without. */
int trh_log_text(const void *log, uint32_t i, char *buf, size_t cap);
/* Embeddings of records from..from+count-1, dim bytes each (zeros for a
 * record without one). 0 ok, 1 out of range or no embeddings kept. */
int trh_log_embeddings(const void *log, uint32_t from, uint32_t count, int8_t *out);
void trh_log_close(void *log);
/* FNV-1a 64, as the log hashes model names. */
uint64_t trh_fnv1a64(const void *p, size_t n);

#endif
