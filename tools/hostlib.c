/* libtinyroute-host.so (tools/hostlib.h): tools/logfile.c's reader and
 * authentication, and tools/packfile.c's verified pack opening and routing, for callers in other languages, so they parse logs with
 * the code the CLI uses instead of a second implementation of the format. */
#include <stdlib.h>
#include <string.h>

#include "hostlib.h"
#include "keys.h"
#include "logfile.h"
#include "packfile.h"
#include "tr_outcome.h"
#include "util.h"

int trh_abi_version(void) { return TRH_ABI_VERSION; }

void *trh_keys_load(const char *path, int allow_v1, char *err, size_t cap)
{
    trh_devkeys *dk = trh_xcalloc(1, sizeof *dk);
    trh_err_capture(err, cap);
    int bad = !path ? trh_err("no key file") : trh_devkeys_load(path, dk);
    trh_err_capture(NULL, 0);
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
        trh_devkeys_free(keys);
        free(keys);
    }
}

int trh_keys_take(void *keys, const char *path, uint32_t version, uint64_t device_id,
                  uint64_t recorded, uint32_t n, uint32_t *skip, char *err, size_t cap)
{
    if (!keys || !path || !skip)
        return 1;
    trh_logfile lf = {.version = version, .device_id = device_id, .recorded = recorded, .n = n};
    trh_err_capture(err, cap);
    int bad = trh_devkeys_take(keys, &lf, path, skip);
    trh_err_capture(NULL, 0);
    return bad;
}

void *trh_log_open(const char *path, const void *keys, trh_log_info *info, char *err, size_t cap)
{
    if (!path || !info)
        return NULL;
    trh_logfile *lf = trh_xcalloc(1, sizeof *lf);
    trh_err_capture(err, cap);
    int bad = trh_logfile_read(path, lf);
    if (!bad && keys && trh_logfile_auth(lf, path, keys)) {
        trh_logfile_free(lf);
        bad = 1;
    }
    trh_err_capture(NULL, 0);
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
    const trh_logfile *lf = log;
    if (!lf || from > lf->n || count > lf->n - from)
        return 1;
    for (uint32_t k = 0; k < count; k++) {
        trh_logrec r;
        trh_logfile_rec(lf, from + k, &r);
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
    const trh_logfile *lf = log;
    if (!lf || i >= lf->n)
        return -1;
    trh_logrec r;
    trh_logfile_rec(lf, i, &r);
    if (!r.text)
        return -1;
    if (buf && cap)
        memcpy(buf, r.text, r.text_len < cap ? r.text_len : cap);
    return (int)r.text_len;
}

int trh_log_embeddings(const void *log, uint32_t from, uint32_t count, int8_t *out)
{
    const trh_logfile *lf = log;
    if (!lf || !out || !(lf->flags & TR_LOG_EMBEDDING) || from > lf->n || count > lf->n - from)
        return 1;
    for (uint32_t k = 0; k < count; k++) {
        trh_logrec r;
        trh_logfile_rec(lf, from + k, &r);
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
        trh_logfile_free(log);
        free(log);
    }
}

uint64_t trh_fnv1a64(const void *p, size_t n) { return tr_fnv1a64(p, n); }

/* A verified pack: the CLI's trh_packfile plus what the open needed. */
typedef struct trh_pack {
    trh_packfile pf;
    tr_pubkey *keys;
} trh_pack;

void *trh_pack_open(const char *pack, const char *delta, const char *const *pubkey_paths,
                    size_t n_keys, char *err, size_t cap)
{
    trh_pack *p = trh_xcalloc(1, sizeof *p);
    trh_err_capture(err, cap);
    int bad = 0;
    if (!pack || !pubkey_paths || n_keys == 0)
        bad = trh_err("a pack and at least one public key are needed");
    if (!bad)
        p->keys = trh_xcalloc(n_keys, sizeof *p->keys);
    for (size_t i = 0; !bad && i < n_keys; i++)
        bad = !pubkey_paths[i] ? trh_err("public key %zu: no path", i)
                               : trh_key_load_public(pubkey_paths[i], &p->keys[i]);
    if (!bad) {
        const tr_trust trust = {.keys = p->keys, .n_keys = n_keys};
        bad = trh_packfile_open(pack, delta, &trust, &p->pf) != 0;
    }
    trh_err_capture(NULL, 0);
    if (bad) {
        free(p->keys);
        free(p);
        return NULL;
    }
    return p;
}

void trh_pack_close(void *pack)
{
    trh_pack *p = pack;
    if (p) {
        trh_packfile_close(&p->pf);
        free(p->keys);
        free(p);
    }
}

void trh_pack_info(const void *pack, uint32_t *dim, uint32_t *n_refs, uint32_t *n_models)
{
    const trh_pack *p = pack;
    if (dim)
        *dim = p ? p->pf.info.dim : 0;
    if (n_refs)
        *n_refs = p ? p->pf.info.n_refs : 0;
    if (n_models)
        *n_models = p ? p->pf.info.n_models : 0;
}

int trh_pack_model(const void *pack, uint32_t m, char *name, size_t cap, float *cost,
                   float *cost_norm, int *where)
{
    const trh_pack *p = pack;
    tr_model_info mi;
    if (!p || m >= p->pf.info.n_models || tr_pack_get_model(p->pf.view, m, &mi) != TR_OK)
        return 1;
    if (name && cap) {
        size_t n = strlen(mi.name);
        n = n < cap - 1 ? n : cap - 1;
        memcpy(name, mi.name, n);
        name[n] = 0;
    }
    if (cost)
        *cost = mi.cost;
    if (cost_norm)
        *cost_norm = mi.cost_norm;
    if (where)
        *where = mi.where == TR_DEVICE ? 0 : 1;
    return 0;
}

/* The failing prompt's message, in the library's words. */
static size_t batch_fail(size_t i, tr_status st, char *err, size_t cap)
{
    trh_err_capture(err, cap);
    trh_err("prompt %zu: %s: %s", i, tr_status_name(st), tr_strerror(st));
    trh_err_capture(NULL, 0);
    return i;
}

size_t trh_route_batch(void *pack, const char *const *texts, const size_t *lens, size_t n,
                       float lambda, uint32_t k, int method, uint32_t *model, float *utility,
                       float *nearest, float *pred, char *err, size_t cap)
{
    trh_pack *p = pack;
    if (!p || (n && (!texts || !lens || !model)))
        return batch_fail(0, TR_E_ARG, err, cap);
    /* route's options: --lambda L (0: no cost weight), --k, --method */
    tr_route_opts ro = {.lambda = lambda < 0 ? TR_LAMBDA_DEFAULT : trh_opts_lambda(lambda), .k = k,
                        .method = method == 1   ? TR_METHOD_CLUSTER
                                  : method == 2 ? TR_METHOD_LEARNED_MAP
                                                : TR_METHOD_KNN};
    const uint32_t m = p->pf.info.n_models;
    float *scratch = pred ? NULL : trh_xmalloc((m ? m : 1) * sizeof *scratch);
    size_t i = 0;
    for (; i < n; i++) {
        tr_result res;
        const tr_query q = tr_query_text(texts[i] ? texts[i] : "", texts[i] ? lens[i] : 0);
        const tr_route_out out = {pred ? pred + i * (size_t)m : scratch, m, NULL, 0, NULL, 0};
        tr_status st = tr_route(p->pf.view, p->pf.ctx, &q, &ro, &res, &out);
        if (st != TR_OK) {
            free(scratch);
            return batch_fail(i, st, err, cap);
        }
        model[i] = res.model;
        if (utility)
            utility[i] = res.utility;
        if (nearest)
            nearest[i] = res.nearest_distance;
    }
    free(scratch);
    return i;
}

size_t trh_embed_batch(void *pack, const char *const *texts, const size_t *lens, size_t n,
                       int8_t *out, char *err, size_t cap)
{
    trh_pack *p = pack;
    if (!p || (n && (!texts || !lens || !out)))
        return batch_fail(0, TR_E_ARG, err, cap);
    const uint32_t dim = p->pf.info.dim;
    for (size_t i = 0; i < n; i++) {
        tr_status st = tr_embed(p->pf.view, p->pf.ctx, texts[i] ? texts[i] : "",
                                texts[i] ? lens[i] : 0, out + i * (size_t)dim, dim);
        if (st != TR_OK)
            return batch_fail(i, st, err, cap);
    }
    return n;
}
