/* libtinyroute-host.so: the host tools' verified parsers behind a small C
 * ABI for other languages (ctypes; tools/fleet_step.py, issue 17, the start
 * of a Python binding). Only plain C types cross it: handles are opaque,
 * arrays are the caller's, errors are copied into the caller's buffer
 * (err, cap) and name the file. No function prints. Thread-compatible:
 * one handle at a time per thread (a keys handle's take is serial). */
#ifndef TRH_TOOLS_HOSTLIB_H
#define TRH_TOOLS_HOSTLIB_H

#include <stddef.h>
#include <stdint.h>

/* 2: the pack calls (trh_pack_*, trh_route_batch, trh_embed_batch) added;
 * everything of 1 unchanged. */
#define TRH_ABI_VERSION 2

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
/* The batch's replay rule (tools/logfile.h trh_devkeys_take) from a log's
 * header fields, so the logs themselves can be read elsewhere (a worker).
 * 0 accepted, *skip its first records already taken; 1 refused. */
int trh_keys_take(void *keys, const char *path, uint32_t version, uint64_t device_id,
                  uint64_t recorded, uint32_t n, uint32_t *skip, char *err, size_t cap);
/* Read and check a log (trh_logfile_read); with keys, authenticate it
 * (trh_logfile_auth: device known, not revoked, MAC). NULL on refusal. */
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
/* Packs (issue 17 item 4): the CLI's tools/packfile.c path. A pack file
 * (and a delta over it, delta NULL: none) is read into private memory and
 * verified against the public key(s) of pubkey_paths (PEM files, n_keys of
 * them), as `tinyroute route --pack P --key K` does; NULL on refusal, with
 * the library's message ("PATH: TR_E_X: text") in err. A handle routes on
 * one thread at a time (it holds one context). */
void *trh_pack_open(const char *pack, const char *delta, const char *const *pubkey_paths,
                    size_t n_keys, char *err, size_t cap);
void trh_pack_close(void *pack);
/* dim, references and models served (any may be NULL). */
void trh_pack_info(const void *pack, uint32_t *dim, uint32_t *n_refs, uint32_t *n_models);
/* Model m's name (NUL-terminated, cut to cap), cost, normalized cost and
 * where (0 device, 1 cloud). 0 ok, 1 out of range. */
int trh_pack_model(const void *pack, uint32_t m, char *name, size_t cap, float *cost,
                   float *cost_norm, int *where);
/* Route n prompts (texts[i], lens[i] bytes) with the pack's defaults except:
 * lambda < 0 the pack's, 0 no cost weight, > 0 that weight (route
 * --lambda); k 0 the pack's; method 0 kNN, 1 cluster, 2 learned map. Per
 * prompt into the caller's arrays (any may be NULL but model): the chosen
 * model index, utility, nearest cosine distance (NaN without), and with
 * pred n x n_models predicted correctness. Returns the number routed: on a
 * prompt the library refuses, that prompt's index (the others before it
 * are filled), with "prompt I: TR_E_X: text" in err. */
size_t trh_route_batch(void *pack, const char *const *texts, const size_t *lens, size_t n,
                       float lambda, uint32_t k, int method, uint32_t *model, float *utility,
                       float *nearest, float *pred, char *err, size_t cap);
/* The built-in int8 embedding of n prompts, dim bytes each, as `tinyroute
 * embed`. Returns the number embedded (as trh_route_batch). */
size_t trh_embed_batch(void *pack, const char *const *texts, const size_t *lens, size_t n,
                       int8_t *out, char *err, size_t cap);
/* FNV-1a 64, as the log hashes model names. */
uint64_t trh_fnv1a64(const void *p, size_t n);

#endif
