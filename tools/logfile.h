/* Host side of the outcome log (core/OUTCOME_LOG.md): read an exported log,
 * write one from the CLI's routes, evaluate a pack on it, and turn its
 * records into references for the builder. */
#ifndef TR_TOOLS_LOGFILE_H
#define TR_TOOLS_LOGFILE_H

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
#define TR_CLI_LOG_MAX_RECORDS (1u << 24)
#define TR_CLI_LOG_MAX_BYTES ((size_t)4 << 30)

typedef struct tr_logfile {
    uint8_t *bytes;
    size_t len;
    uint32_t version;      /* 1 plain, 2 authenticated (device id + MAC) */
    uint32_t rec_off;      /* the header's bytes: where the records start */
    uint32_t record_bytes, flags, dim, text_max, n, capacity;
    uint64_t recorded, dropped, embedder_fp;
    uint64_t device_id, first_id; /* version 2; first_id 1 in version 1 */
    char embedder[TR_EMBEDDER_NAME_MAX + 1];
    uint8_t pack_hash[32];
} tr_logfile;

/* --device-keys FILE (core/INTEGRATION.md, provisioning): one line per
 * device, `DEVICE_ID HEX_KEY [revoked]` (decimal id; 32..128 hex digits,
 * the 16..64-byte key of tr_log_set_device), `#` comments, blank lines. */
typedef struct tr_devkey {
    uint64_t id;
    uint8_t key[TR_LOG_KEY_MAX];
    size_t key_len;
    int revoked;
    uint64_t taken; /* newest record id taken from the device in this batch; 0 none */
} tr_devkey;
typedef struct tr_devkeys {
    tr_devkey *k; /* sorted by id */
    size_t n;
    int allow_v1; /* --allow-unauthenticated: take version 1 logs unchecked */
} tr_devkeys;
int tr_devkeys_load(const char *path, tr_devkeys *dk);
void tr_devkeys_free(tr_devkeys *dk);
/* The authentication of a read log: its device is known and not revoked
 * and its MAC verifies under that device's key (a version 1 log only with
 * allow_v1). 0 accepted; else non-zero and a message naming path. */
int tr_logfile_auth(const tr_logfile *lf, const char *path, const tr_devkeys *dk);
/* The batch's replay rule, after tr_logfile_auth accepted lf: its newest id
 * must pass the newest taken from its device by an earlier log of the batch
 * (else refused: non-zero, a message naming path). *skip: its first records
 * that an earlier log already gave (exports of one ring overlap). */
int tr_devkeys_take(tr_devkeys *dk, const tr_logfile *lf, const char *path, uint32_t *skip);
/* Read, authenticate and take (dk NULL: read only; a version 2 log is then
 * read with a note that its MAC was not checked). 0 ok. */
int tr_logfile_open(const char *path, tr_devkeys *dk, tr_logfile *lf, uint32_t *skip);

typedef struct tr_logrec {
    uint64_t id, pack_tag, model_hash, prompt_hash;
    uint32_t model, flags; /* flags: TR_LOG_REC_* */
    tr_where where;
    float cost, cost_norm, lambda, utility, outcome; /* outcome NaN: none */
    const int8_t *emb;     /* NULL unless TR_LOG_REC_EMBEDDING */
    const char *text;      /* NULL unless TR_LOG_REC_TEXT */
    size_t text_len;
} tr_logrec;

/* Read and check an exported log. 0 ok; a message on stderr otherwise. */
int tr_logfile_read(const char *path, tr_logfile *lf);
/* A read log against a pack of n_models models whose records carry
 * pack_tag (the first 8 bytes of its hash, little-endian): refuses (message
 * naming the record and field, non-zero) such a record whose model index is
 * past them. Records of other packs are not checked. */
int tr_logfile_check_models(const tr_logfile *lf, const char *path, uint32_t n_models,
                            uint64_t pack_tag);
void tr_logfile_rec(const tr_logfile *lf, uint32_t i, tr_logrec *r);
void tr_logfile_free(tr_logfile *lf);

/* The CLI's own log: `tinyroute route --log-out`. */
typedef struct tr_cli_log {
    void *mem;
    tr_log *log;
    tr_dataset ds;          /* --outcomes: where observed outcomes come from */
    int has_ds;
    tr_strmap by_text;
    size_t *col;            /* pack model -> dataset column */
    size_t no_outcome;
} tr_cli_log;

/* flags: comma list of embedding, hash, text (or "none"); key_hex: 32 hex
 * digits (needed with hash); device: "ID:HEXKEY[:FIRST_ID]" (tr_log_set_device)
 * or NULL; outcomes: a dataset dir or NULL. 0 ok. */
int tr_cli_log_begin(tr_cli_log *cl, const tr_packfile *pf, const char *flags, uint64_t capacity,
                     const char *key_hex, const char *device, const char *outcomes);
int tr_cli_log_add(tr_cli_log *cl, const tr_packfile *pf, const tr_result *res, const char *text,
                   size_t len);
/* Export to path and release. 0 ok. */
int tr_cli_log_finish(tr_cli_log *cl, const char *path);

/* `tinyroute eval --log`: realised quality and cost of the logged routes,
 * and a deferral estimate of the pack at each lambda. 0 ok. */
int tr_eval_log(tr_packfile *pf, const char *path, tr_devkeys *dk, const tr_route_opts *ro,
                const double *lam, int n_lam, int json);

/* `tinyroute build --add-log` (its report to say: stdout, or stderr under
 * build --json, whose stdout is one document): append the log's records that have an
 * embedding and an outcome to refs/scores (n_refs x dim, n_refs x
 * n_models; grown with realloc), NaN for the models not logged. The log's
 * embedder must be e (name, dim, fingerprint). 0 ok. */
int tr_log_to_refs(const char *path, const tr_embedder *e, const char *embedder_name,
                   const tr_dataset *ds, tr_devkeys *dk, int8_t **refs, float **scores,
                   size_t *n_refs, FILE *say);

#endif
