/* Host side of the outcome log (core/OUTCOME_LOG.md): read an exported log,
 * write one from the CLI's routes, evaluate a pack on it, and turn its
 * records into references for the builder. */
#ifndef TRH_TOOLS_LOGFILE_H
#define TRH_TOOLS_LOGFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dataset.h"
#include "packfile.h"
#include "tinyroute.h"
#include "tr_embed.h"
#include "tr_outcome.h"

/* --log-capacity limits: records, and bytes of the ring (a log larger than
 * this is a mistake in the flags, not something to try to allocate). */
#define TRH_CLI_LOG_MAX_RECORDS (1u << 24)
#define TRH_CLI_LOG_MAX_BYTES ((size_t)4 << 30)

typedef struct trh_logfile {
    uint8_t *bytes;
    size_t len;
    uint32_t version;      /* 1 plain, 2 authenticated (device id + MAC) */
    uint32_t rec_off;      /* the header's bytes: where the records start */
    uint32_t record_bytes, flags, dim, text_max, n, capacity;
    uint64_t recorded, dropped, embedder_fp;
    uint64_t device_id, first_id; /* version 2; first_id 1 in version 1 */
    char embedder[TR_EMBEDDER_NAME_MAX + 1];
    uint8_t pack_hash[32];
} trh_logfile;

/* --device-keys FILE (core/INTEGRATION.md, provisioning): one line per
 * device, `DEVICE_ID HEX_KEY [revoked]` (decimal id; 32..128 hex digits,
 * the 16..64-byte key of tr_log_set_device), `#` comments, blank lines. */
typedef struct trh_devkey {
    uint64_t id;
    uint8_t key[TR_LOG_KEY_MAX];
    size_t key_len;
    int revoked;
    uint64_t taken; /* newest record id taken from the device in this batch */
    int took;       /* a log of the device was taken in this batch (taken may be 0:
                     * an empty log issued no id, and the same again is a replay) */
} trh_devkey;
typedef struct trh_devkeys {
    trh_devkey *k; /* sorted by id */
    size_t n;
    int allow_v1; /* --allow-unauthenticated: take version 1 logs unchecked */
} trh_devkeys;
int trh_devkeys_load(const char *path, trh_devkeys *dk);
void trh_devkeys_free(trh_devkeys *dk);
/* The authentication of a read log: its device is known and not revoked
 * and its MAC verifies under that device's key (a version 1 log only with
 * allow_v1). 0 accepted; else non-zero and a message naming path. */
int trh_logfile_auth(const trh_logfile *lf, const char *path, const trh_devkeys *dk);
/* The batch's replay rule, after trh_logfile_auth accepted lf: its newest id
 * must pass the newest taken from its device by an earlier log of the batch
 * (else refused: non-zero, a message naming path). *skip: its first records
 * that an earlier log already gave (exports of one ring overlap). */
int trh_devkeys_take(trh_devkeys *dk, const trh_logfile *lf, const char *path, uint32_t *skip);
/* Read, authenticate and take (dk NULL: read only; a version 2 log is then
 * read with a note that its MAC was not checked). 0 ok. */
int trh_logfile_open(const char *path, trh_devkeys *dk, trh_logfile *lf, uint32_t *skip);

typedef struct trh_logrec {
    uint64_t id, pack_tag, model_hash, prompt_hash;
    uint32_t model, flags; /* flags: TR_LOG_REC_* */
    tr_where where;
    float cost, cost_norm, lambda, utility, outcome; /* outcome NaN: none */
    const int8_t *emb;     /* NULL unless TR_LOG_REC_EMBEDDING */
    const char *text;      /* NULL unless TR_LOG_REC_TEXT */
    size_t text_len;
} trh_logrec;

/* Read and check an exported log. 0 ok; a message on stderr otherwise. */
int trh_logfile_read(const char *path, trh_logfile *lf);
/* A read log against a pack of n_models models whose records carry
 * pack_tag (the first 8 bytes of its hash, little-endian): refuses (message
 * naming the record and field, non-zero) such a record whose model index is
 * past them. Records of other packs are not checked. */
int trh_logfile_check_models(const trh_logfile *lf, const char *path, uint32_t n_models,
                            uint64_t pack_tag);
void trh_logfile_rec(const trh_logfile *lf, uint32_t i, trh_logrec *r);
void trh_logfile_free(trh_logfile *lf);

/* The CLI's own log: `tinyroute route --log-out`. */
typedef struct trh_cli_log {
    void *mem;
    tr_log *log;
    trh_dataset ds;          /* --outcomes: where observed outcomes come from */
    int has_ds;
    trh_strmap by_text;
    size_t *col;            /* pack model -> dataset column */
    size_t no_outcome;
} trh_cli_log;

/* flags: comma list of embedding, hash, text (or "none"); key_hex: 32 hex
 * digits (needed with hash); device: "ID:HEXKEY[:FIRST_ID]" (tr_log_set_device)
 * or NULL; outcomes: a dataset dir or NULL. 0 ok. */
int trh_cli_log_begin(trh_cli_log *cl, const trh_packfile *pf, const char *flags, uint64_t capacity,
                     const char *key_hex, const char *device, const char *outcomes);
int trh_cli_log_add(trh_cli_log *cl, const trh_packfile *pf, const tr_result *res, const char *text,
                   size_t len);
/* Export to path and release. 0 ok. */
int trh_cli_log_finish(trh_cli_log *cl, const char *path);

/* `tinyroute eval --log`: realised quality and cost of the logged routes,
 * and a deferral estimate of the pack at each lambda. 0 ok. */
int trh_eval_log(trh_packfile *pf, const char *path, trh_devkeys *dk, const tr_route_opts *ro,
                const double *lam, int n_lam, int json);

/* `tinyroute build --add-log` (its report to say: stdout, or stderr under
 * build --json, whose stdout is one document): append the log's records that have an
 * embedding and an outcome to refs/scores (n_refs x dim, n_refs x
 * n_models; grown with realloc), NaN for the models not logged. The log's
 * embedder must be e (name, dim, fingerprint). 0 ok. */
int trh_log_to_refs(const char *path, const tr_embedder *e, const char *embedder_name,
                   const trh_dataset *ds, trh_devkeys *dk, int8_t **refs, float **scores,
                   size_t *n_refs, FILE *say);

#endif
