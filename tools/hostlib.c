/* libtinyroute-host.so (tools/hostlib.h): tools/logfile.c's reader and
 * authentication for callers in other languages, so they parse logs with
 * the code the CLI uses instead of a second implementation of the format. */
#include <stdlib.h>
#include <string.h>

#include "hostlib.h"
#include "logfile.h"
#include "tr_outcome.h"
#include "util.h"

int trh_abi_version(void) { return TRH_ABI_VERSION; }

void *trh_keys_load(const char *path, int allow_v1, char *err, size_t cap)
{
    tr_devkeys *dk = tr_xcalloc(1, sizeof *dk);
    tr_err_capture(err, cap);
    int bad = !path ? tr_err("no key file") : tr_devkeys_load(path, dk);
    tr_err_capture(NULL, 0);
    if (bad) {
        free(dk);
        return NULL;
    }
    dk->allow_v1 = allow_v1 != 0;
    return dk;
}

void trh_keys_free(void *keys)
{
    if (keys) {
        tr_devkeys_free(keys);
        free(keys);
    }
}

int trh_keys_take(void *keys, const char *path, uint32_t version, uint64_t device_id,
                  uint64_t recorded, uint32_t n, uint32_t *skip, char *err, size_t cap)
{
    if (!keys || !path || !skip)
        return 1;
    tr_logfile lf = {.version = version, .device_id = device_id, .recorded = recorded, .n = n};
    tr_err_capture(err, cap);
    int bad = tr_devkeys_take(keys, &lf, path, skip);
    tr_err_capture(NULL, 0);
    return bad;
}

void *trh_log_open(const char *path, const void *keys, trh_log_info *info, char *err, size_t cap)
{
    if (!path || !info)
        return NULL;
    tr_logfile *lf = tr_xcalloc(1, sizeof *lf);
    tr_err_capture(err, cap);
    int bad = tr_logfile_read(path, lf);
    if (!bad && keys && tr_logfile_auth(lf, path, keys)) {
        tr_logfile_free(lf);
        bad = 1;
    }
    tr_err_capture(NULL, 0);
    if (bad) {
        free(lf);
        return NULL;
    }
    *info = (trh_log_info){lf->version, lf->flags, lf->dim, lf->n, lf->capacity, lf->record_bytes,
                           lf->device_id, lf->first_id, lf->recorded, lf->dropped, lf->embedder_fp};
    return lf;
}

int trh_log_records(const void *log, uint32_t from, uint32_t count, uint64_t *id,
                    uint64_t *model_hash, uint64_t *prompt_hash, uint64_t *text_key,
                    uint32_t *flags, float *outcome, float *cost)
{
    const tr_logfile *lf = log;
    if (!lf || from > lf->n || count > lf->n - from)
        return 1;
    for (uint32_t k = 0; k < count; k++) {
        tr_logrec r;
        tr_logfile_rec(lf, from + k, &r);
        if (id)
            id[k] = r.id;
        if (model_hash)
            model_hash[k] = r.model_hash;
        if (prompt_hash)
            prompt_hash[k] = r.prompt_hash;
        if (text_key)
            text_key[k] = r.text ? tr_fnv1a64(r.text, r.text_len) : 0;
        if (flags)
            flags[k] = r.flags;
        if (outcome)
            outcome[k] = r.outcome;
        if (cost)
            cost[k] = r.cost;
    }
    return 0;
}

int trh_log_text(const void *log, uint32_t i, char *buf, size_t cap)
{
    const tr_logfile *lf = log;
    if (!lf || i >= lf->n)
        return -1;
    tr_logrec r;
    tr_logfile_rec(lf, i, &r);
    if (!r.text)
        return -1;
    if (buf && cap)
        memcpy(buf, r.text, r.text_len < cap ? r.text_len : cap);
    return (int)r.text_len;
}

int trh_log_embeddings(const void *log, uint32_t from, uint32_t count, int8_t *out)
{
    const tr_logfile *lf = log;
    if (!lf || !out || !(lf->flags & TR_LOG_EMBEDDING) || from > lf->n || count > lf->n - from)
        return 1;
    for (uint32_t k = 0; k < count; k++) {
        tr_logrec r;
        tr_logfile_rec(lf, from + k, &r);
        if (r.emb)
            memcpy(out + (size_t)k * lf->dim, r.emb, lf->dim);
        else
            memset(out + (size_t)k * lf->dim, 0, lf->dim);
    }
    return 0;
}

void trh_log_close(void *log)
{
    if (log) {
        tr_logfile_free(log);
        free(log);
    }
}

uint64_t trh_fnv1a64(const void *p, size_t n) { return tr_fnv1a64(p, n); }
