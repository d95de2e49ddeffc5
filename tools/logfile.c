/* The outcome log on the host: reader, the CLI's writer, eval --log and the
 * builder's --add-log (see logfile.h, core/OUTCOME_LOG.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "logfile.h"
#include "tr_internal.h"
#include "tr_outcome.h"
#include "util.h"

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Record i's fields against core/OUTCOME_LOG.md: NULL when sound, else the
 * field at fault (issue #18: NaN costs and unknown `where` codes were
 * accepted and printed as nan). n_models 0: the pack is not known here. */
static const char *record_fault(const trh_logfile *lf, uint32_t i, uint32_t n_models)
{
    const uint8_t *s = lf->bytes + lf->rec_off + (size_t)i * lf->record_bytes;
    trh_logrec r;
    trh_logfile_rec(lf, i, &r);
    int has = (r.flags & TR_LOG_REC_OUTCOME) != 0;
    if (s[TR_LR_WHERE] > 1)
        return "where (not 0 device or 1 cloud)";
    if (!isfinite(r.cost) || r.cost < 0)
        return "cost (not a finite number >= 0)";
    if (!isfinite(r.cost_norm))
        return "cost_norm (not finite)";
    if (!isfinite(r.lambda) || r.lambda < 0)
        return "lambda (not a finite number >= 0)";
    if (!isfinite(r.utility))
        return "utility (not finite)";
    if (has != !isnan(r.outcome) || (has && !(r.outcome >= 0.0f && r.outcome <= 1.0f)))
        return "outcome (not in [0,1], or not matching its flag)";
    if (n_models && r.model >= n_models)
        return "model (index past the pack's models)";
    return NULL;
}

int trh_logfile_check_models(const trh_logfile *lf, const char *path, uint32_t n_models,
                            uint64_t pack_tag)
{
    for (uint32_t i = 0; i < lf->n; i++) {
        trh_logrec r;
        trh_logfile_rec(lf, i, &r);
        if (r.pack_tag != pack_tag)
            continue; /* another pack's index: not ours to check */
        const char *f = record_fault(lf, i, n_models);
        if (f)
            return trh_err("%s: record %u: field %s; refusing the log", path, i, f);
    }
    return 0;
}

int trh_logfile_read(const char *path, trh_logfile *lf)
{
    memset(lf, 0, sizeof *lf);
    lf->bytes = trh_read_file(path, &lf->len);
    if (!lf->bytes)
        return 1;
    const uint8_t *b = lf->bytes;
    const char *why = NULL;
    /* Version 2 (authenticated): a longer header with the device fields, and
     * the MAC after the records. */
    uint32_t mac = 0;
    lf->first_id = 1;
    if (lf->len < TR_LOG_HEADER_BYTES || memcmp(b, TR_LOG_MAGIC, 8))
        why = "not an outcome log (bad magic)";
    else if ((lf->version = tr_ld32(b + TR_LH_VERSION)) != TR_LOG_VERSION &&
             lf->version != TR_LOG_VERSION_AUTH)
        why = "unsupported outcome log version";
    else if (lf->version == TR_LOG_VERSION_AUTH && lf->len < TR_LOG_HEADER_BYTES_V2 + TR_LOG_MAC_BYTES)
        why = "truncated: shorter than an authenticated log's header and MAC";
    else if (tr_ld32(b + TR_LH_HEADER_BYTES) !=
             (lf->version == TR_LOG_VERSION ? TR_LOG_HEADER_BYTES : TR_LOG_HEADER_BYTES_V2))
        why = "bad header size";
    else if (lf->version == TR_LOG_VERSION_AUTH) {
        lf->device_id = tr_ld64(b + TR_LH_DEVICE_ID);
        lf->first_id = tr_ld64(b + TR_LH_FIRST_ID);
        mac = TR_LOG_MAC_BYTES;
        if (tr_ld32(b + TR_LH_AUTH) != TR_LOG_AUTH_HMAC_SHA256 ||
            tr_ld32(b + TR_LH_MAC_BYTES) != TR_LOG_MAC_BYTES)
            why = "unknown authentication (not HMAC-SHA-256 with a 32-byte MAC)";
        else if (tr_ld64(b + TR_LH_MAC_BYTES + 4) != 0)
            why = "reserved header bytes are not zero";
        else if (lf->first_id == 0)
            why = "first id 0";
    }
    lf->rec_off = lf->version == TR_LOG_VERSION_AUTH ? TR_LOG_HEADER_BYTES_V2 : TR_LOG_HEADER_BYTES;
    if (!why) {
        lf->record_bytes = tr_ld32(b + TR_LH_RECORD_BYTES);
        lf->flags = tr_ld32(b + TR_LH_FLAGS);
        lf->dim = tr_ld32(b + TR_LH_DIM);
        lf->text_max = tr_ld32(b + TR_LH_TEXT_MAX);
        lf->n = tr_ld32(b + TR_LH_N_RECORDS);
        lf->capacity = tr_ld32(b + TR_LH_CAPACITY);
        lf->recorded = tr_ld64(b + TR_LH_RECORDED);
        lf->dropped = tr_ld64(b + TR_LH_DROPPED);
        lf->embedder_fp = tr_ld64(b + TR_LH_EMBEDDER_FP);
        memcpy(lf->embedder, b + TR_LH_EMBEDDER, TR_EMBEDDER_NAME_MAX);
        memcpy(lf->pack_hash, b + TR_LH_PACK_HASH, 32);
        if (lf->flags & ~(uint32_t)(TR_LOG_EMBEDDING | TR_LOG_HASH | TR_LOG_TEXT))
            why = "unknown log flags";
        else if (tr_log_record_bytes(lf->dim, lf->flags) == 0 || /* dim near 2^32 */
                 lf->record_bytes != tr_log_record_bytes(lf->dim, lf->flags) ||
                 lf->text_max != ((lf->flags & TR_LOG_TEXT) ? TR_LOG_TEXT_MAX : 0))
            why = "record size does not match the flags and dim";
        else if (lf->len != (uint64_t)lf->rec_off + (uint64_t)lf->n * lf->record_bytes + mac)
            why = mac ? "length does not match the record count and MAC (truncated or padded)"
                      : "length does not match the record count";
        else if (lf->n > lf->capacity || lf->n > lf->recorded)
            why = "more records than the ring holds";
        else if (lf->recorded && lf->recorded < lf->first_id - 1)
            why = "ids issued before the log's first id";
    }
    char what[160];
    for (uint32_t i = 0; !why && i < lf->n; i++) {
        trh_logrec r;
        trh_logfile_rec(lf, i, &r);
        const char *f = record_fault(lf, i, 0);
        if (f) {
            snprintf(what, sizeof what, "record %u: field %s; refusing the log", i, f);
            why = what;
        } else if ((r.flags & TR_LOG_REC_EMBEDDING) && !(lf->flags & TR_LOG_EMBEDDING))
            why = "a record claims an embedding the log does not keep";
        else if (r.text && r.text_len > lf->text_max)
            why = "a record's text is longer than the slot";
        else if (i && r.id != tr_ld64(lf->bytes + lf->rec_off +
                                      (size_t)(i - 1) * lf->record_bytes) + 1)
            why = "record ids are not consecutive";
        else if (!i && r.id < lf->first_id)
            why = "a record id before the log's first id";
        else if (i == lf->n - 1 && lf->version == TR_LOG_VERSION_AUTH && r.id != lf->recorded)
            why = "the newest record's id is not the header's ids issued";
    }
    if (why) {
        trh_err("%s: %s", path, why);
        trh_logfile_free(lf);
        return 1;
    }
    return 0;
}

void trh_logfile_rec(const trh_logfile *lf, uint32_t i, trh_logrec *r)
{
    const uint8_t *s = lf->bytes + lf->rec_off + (size_t)i * lf->record_bytes;
    r->id = tr_ld64(s + TR_LR_ID);
    r->pack_tag = tr_ld64(s + TR_LR_PACK_TAG);
    r->model_hash = tr_ld64(s + TR_LR_MODEL_HASH);
    r->prompt_hash = tr_ld64(s + TR_LR_PROMPT_HASH);
    r->model = tr_ld32(s + TR_LR_MODEL);
    r->where = s[TR_LR_WHERE] ? TR_CLOUD : TR_DEVICE;
    r->flags = ld16(s + TR_LR_FLAGS);
    r->cost = tr_ldf32(s + TR_LR_COST);
    r->cost_norm = tr_ldf32(s + TR_LR_COST_NORM);
    r->lambda = tr_ldf32(s + TR_LR_LAMBDA);
    r->utility = tr_ldf32(s + TR_LR_UTILITY);
    r->outcome = tr_ldf32(s + TR_LR_OUTCOME);
    const uint8_t *tail = s + TR_LOG_REC_HEAD;
    r->emb = NULL;
    if (lf->flags & TR_LOG_EMBEDDING) {
        if (r->flags & TR_LOG_REC_EMBEDDING)
            r->emb = (const int8_t *)tail;
        tail += tr_log_emb_bytes(lf->dim);
    }
    r->text = (r->flags & TR_LOG_REC_TEXT) && (lf->flags & TR_LOG_TEXT) ? (const char *)tail : NULL;
    r->text_len = r->text ? ld16(s + TR_LR_TEXT_LEN) : 0;
}

void trh_logfile_free(trh_logfile *lf)
{
    free(lf->bytes);
    memset(lf, 0, sizeof *lf);
}

/* ---- authentication (version 2) ---- */

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = ((const trh_devkey *)a)->id, y = ((const trh_devkey *)b)->id;
    return x < y ? -1 : x > y;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int trh_devkeys_load(const char *path, trh_devkeys *dk)
{
    memset(dk, 0, sizeof *dk);
    size_t len;
    char *text = (char *)trh_read_file(path, &len);
    if (!text)
        return 1;
    size_t cap = 0;
    unsigned line = 0;
    int bad = 0;
    char *save = NULL;
    /* Line by line, keeping blank lines in the count. */
    for (char *p = text; p && !bad; ) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        line++;
        char *hash = strchr(p, '#');
        if (hash)
            *hash = 0;
        char *f[4];
        int nf = 0;
        for (char *t = strtok_r(p, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save))
            f[nf < 4 ? nf++ : 3] = t;
        p = nl ? nl + 1 : NULL;
        if (nf == 0)
            continue;
        trh_devkey k = {0};
        size_t hl = nf >= 2 ? strlen(f[1]) : 0;
        if (nf < 2 || nf > 3 || (nf == 3 && strcmp(f[2], "revoked"))) {
            bad = trh_err("%s:%u: expected 'DEVICE_ID HEX_KEY [revoked]'", path, line);
            break;
        }
        if (trh_parse_u64(f[0], &k.id)) {
            bad = trh_err("%s:%u: device id '%s' is not a decimal integer", path, line, f[0]);
            break;
        }
        if (hl % 2 || hl < 2 * TR_LOG_KEY_MIN || hl > 2 * TR_LOG_KEY_MAX) {
            bad = trh_err("%s:%u: key of device %s: %u to %u hex digits, an even count", path, line,
                         f[0], 2 * TR_LOG_KEY_MIN, 2 * TR_LOG_KEY_MAX);
            break;
        }
        for (size_t i = 0; i < hl / 2 && !bad; i++) {
            int hi = hexval((unsigned char)f[1][2 * i]), lo = hexval((unsigned char)f[1][2 * i + 1]);
            if (hi < 0 || lo < 0)
                bad = trh_err("%s:%u: key of device %s is not hexadecimal", path, line, f[0]);
            k.key[i] = (uint8_t)(hi << 4 | lo);
        }
        k.key_len = hl / 2;
        k.revoked = nf == 3;
        if (dk->n == cap) {
            cap = cap ? 2 * cap : 64;
            dk->k = trh_xrealloc(dk->k, cap * sizeof *dk->k);
        }
        dk->k[dk->n++] = k;
    }
    free(text);
    if (!bad && dk->n)
        qsort(dk->k, dk->n, sizeof *dk->k, key_cmp);
    for (size_t i = 1; !bad && i < dk->n; i++)
        if (dk->k[i].id == dk->k[i - 1].id)
            bad = trh_err("%s: device %llu is listed twice", path, (unsigned long long)dk->k[i].id);
    if (!bad && dk->n == 0)
        bad = trh_err("%s: no device key", path);
    if (bad)
        trh_devkeys_free(dk);
    return bad;
}

void trh_devkeys_free(trh_devkeys *dk)
{
    if (dk->k)
        memset(dk->k, 0, dk->n * sizeof *dk->k); /* the keys */
    free(dk->k);
    memset(dk, 0, sizeof *dk);
}

static trh_devkey *devkey_find(const trh_devkeys *dk, uint64_t id)
{
    trh_devkey probe = {.id = id};
    return dk->n ? bsearch(&probe, dk->k, dk->n, sizeof *dk->k, key_cmp) : NULL;
}

int trh_logfile_auth(const trh_logfile *lf, const char *path, const trh_devkeys *dk)
{
    if (lf->version == TR_LOG_VERSION)
        return dk->allow_v1 ? 0
                            : trh_err("%s: refused: an unauthenticated (version 1) log, and --device-keys "
                                     "is given (--allow-unauthenticated takes it unchecked)", path);
    const trh_devkey *k = devkey_find(dk, lf->device_id);
    if (!k)
        return trh_err("%s: refused: device %llu is not in the device keys", path,
                      (unsigned long long)lf->device_id);
    if (k->revoked)
        return trh_err("%s: refused: device %llu is revoked", path, (unsigned long long)lf->device_id);
    uint8_t mac[32];
    if (tr_hmac_sha256(k->key, k->key_len, lf->bytes, lf->len - TR_LOG_MAC_BYTES, mac) != TR_OK)
        return trh_err("%s: refused: the MAC could not be computed", path);
    /* Compared in constant time: the MAC is a secret until it matches. */
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++)
        diff |= mac[i] ^ lf->bytes[lf->len - TR_LOG_MAC_BYTES + i];
    if (diff)
        return trh_err("%s: refused: the MAC does not verify under device %llu's key (altered, "
                      "truncated or not written by that device)", path,
                      (unsigned long long)lf->device_id);
    return 0;
}

int trh_devkeys_take(trh_devkeys *dk, const trh_logfile *lf, const char *path, uint32_t *skip)
{
    *skip = 0;
    if (lf->version == TR_LOG_VERSION)
        return 0; /* nothing to order it by (accepted only with allow_v1) */
    trh_devkey *k = devkey_find(dk, lf->device_id);
    if (!k)
        return trh_err("%s: refused: device %llu is not in the device keys", path,
                      (unsigned long long)lf->device_id);
    if (k->took && lf->recorded <= k->taken)
        return trh_err("%s: refused as a replay: its ids (up to %llu) do not pass the %llu already "
                      "taken from device %llu by an earlier log of this batch", path,
                      (unsigned long long)lf->recorded, (unsigned long long)k->taken,
                      (unsigned long long)lf->device_id);
    if (lf->n) {
        uint64_t first = lf->recorded - lf->n + 1;
        if (k->taken >= first)
            *skip = (uint32_t)(k->taken - first + 1);
    }
    k->taken = lf->recorded;
    k->took = 1;
    return 0;
}

int trh_logfile_open(const char *path, trh_devkeys *dk, trh_logfile *lf, uint32_t *skip)
{
    *skip = 0;
    if (trh_logfile_read(path, lf))
        return 1;
    if (!dk) {
        if (lf->version == TR_LOG_VERSION_AUTH)
            fprintf(stderr, "tinyroute: %s: note: authenticated log of device %llu read without "
                            "--device-keys: its MAC is not checked\n",
                    path, (unsigned long long)lf->device_id);
        return 0;
    }
    if (trh_logfile_auth(lf, path, dk) || trh_devkeys_take(dk, lf, path, skip)) {
        trh_logfile_free(lf);
        return 1;
    }
    if (*skip)
        fprintf(stderr, "tinyroute: %s: its first %u records were taken from an earlier log of "
                        "device %llu; skipped\n", path, *skip, (unsigned long long)lf->device_id);
    return 0;
}

/* ---- the CLI's writer ---- */

static int hex_key(const char *hex, uint8_t key[16])
{
    if (!hex || strlen(hex) != 32)
        return 1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return 1;
        key[i] = (uint8_t)v;
    }
    return 0;
}

/* --log-device ID:HEXKEY[:FIRST_ID]. 0 ok. */
static int parse_device(const char *spec, uint64_t *id, uint8_t *key, size_t *key_len,
                        uint64_t *first)
{
    char *d = trh_xstrdup(spec), *save = NULL;
    char *f[3] = {strtok_r(d, ":", &save), NULL, NULL};
    f[1] = f[0] ? strtok_r(NULL, ":", &save) : NULL;
    f[2] = f[1] ? strtok_r(NULL, ":", &save) : NULL;
    size_t hl = f[1] ? strlen(f[1]) : 0;
    int bad = !f[1] || strtok_r(NULL, ":", &save) || trh_parse_u64(f[0], id) || hl % 2 ||
              hl < 2 * TR_LOG_KEY_MIN || hl > 2 * TR_LOG_KEY_MAX;
    *first = 1;
    if (!bad && f[2] && (trh_parse_u64(f[2], first) || *first == 0))
        bad = 1;
    for (size_t i = 0; !bad && i < hl / 2; i++) {
        int hi = hexval((unsigned char)f[1][2 * i]), lo = hexval((unsigned char)f[1][2 * i + 1]);
        bad = hi < 0 || lo < 0;
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    *key_len = hl / 2;
    free(d);
    return bad ? trh_err("--log-device takes ID:HEXKEY[:FIRST_ID] (decimal ID, %u..%u hex digits, "
                        "FIRST_ID >= 1), not '%s'", 2 * TR_LOG_KEY_MIN, 2 * TR_LOG_KEY_MAX, spec)
               : 0;
}

int trh_cli_log_begin(trh_cli_log *cl, const trh_packfile *pf, const char *flags_s,
                     uint64_t capacity, const char *key_hex, const char *device,
                     const char *outcomes)
{
    memset(cl, 0, sizeof *cl);
    uint32_t flags = 0;
    char *fs = trh_xstrdup(flags_s ? flags_s : "embedding");
    for (char *t = strtok(fs, ","); t; t = strtok(NULL, ",")) {
        if (!strcmp(t, "embedding"))
            flags |= TR_LOG_EMBEDDING;
        else if (!strcmp(t, "hash"))
            flags |= TR_LOG_HASH;
        else if (!strcmp(t, "text"))
            flags |= TR_LOG_TEXT;
        else if (strcmp(t, "none")) {
            free(fs);
            return trh_err("--log-flags takes embedding, hash, text or none, not '%s'", t);
        }
    }
    free(fs);
    uint8_t key[16], dkey[TR_LOG_KEY_MAX];
    size_t dkey_len = 0;
    uint64_t dev_id = 0, first_id = 1;
    if ((flags & TR_LOG_HASH) && hex_key(key_hex, key))
        return trh_err("--log-flags hash needs --log-key with 32 hex digits");
    if (device && parse_device(device, &dev_id, dkey, &dkey_len, &first_id))
        return 1;
    if (capacity == 0 || capacity > TRH_CLI_LOG_MAX_RECORDS)
        return trh_err("--log-capacity must be in 1..%u", TRH_CLI_LOG_MAX_RECORDS);
    size_t need = tr_log_size(pf->info.dim, (uint32_t)capacity, flags);
    if (need > TRH_CLI_LOG_MAX_BYTES)
        return trh_err("--log-capacity %llu: the log would take %zu bytes, over the CLI's limit of 4 GiB",
                      (unsigned long long)capacity, need);
    if (need == 0 || posix_memalign(&cl->mem, 64, need))
        return trh_err("cannot size a log of %llu records", (unsigned long long)capacity);
    tr_status st = tr_log_init(cl->mem, need, pf->info.dim, (uint32_t)capacity, flags, &cl->log);
    if (st == TR_OK && (flags & TR_LOG_HASH))
        st = tr_log_set_hash_key(cl->log, key);
    if (st == TR_OK && device)
        st = tr_log_set_device(cl->log, dev_id, first_id, dkey, dkey_len);
    if (st != TR_OK) {
        free(cl->mem);
        return trh_err("log: %s", tr_strerror(st));
    }
    if (!outcomes)
        return 0;
    if (trh_dataset_load(outcomes, &cl->ds)) {
        free(cl->mem);
        return 1;
    }
    cl->has_ds = 1;
    cl->col = trh_xmalloc(pf->info.n_models * sizeof *cl->col);
    for (uint32_t j = 0; j < pf->info.n_models; j++) {
        tr_model_info mi;
        tr_pack_get_model(pf->view, j, &mi);
        cl->col[j] = SIZE_MAX;
        for (size_t t = 0; t < cl->ds.n_models; t++)
            if (!strcmp(cl->ds.models[t].name, mi.name))
                cl->col[j] = t;
    }
    for (size_t i = 0; i < cl->ds.n_prompts; i++)
        trh_strmap_add(&cl->by_text, cl->ds.prompts[i].text, i, NULL); /* first one wins */
    return 0;
}

int trh_cli_log_add(trh_cli_log *cl, const trh_packfile *pf, const tr_result *res, const char *text,
                   size_t len)
{
    uint64_t id;
    tr_status st = tr_log_append(cl->log, pf->view, pf->ctx, res, NULL, text, len, &id);
    if (st != TR_OK)
        return trh_err("log: %s: %s", tr_status_name(st), tr_strerror(st));
    if (!cl->has_ds)
        return 0;
    /* The outcome a user would have seen: the chosen model's score on this
     * prompt in the dataset. */
    size_t i;
    float s = NAN;
    if (memchr(text, 0, len) == NULL && text[len] == 0 && trh_strmap_get(&cl->by_text, text, &i) &&
        cl->col[res->model] != SIZE_MAX)
        s = cl->ds.scores[i * cl->ds.n_models + cl->col[res->model]];
    if (isnan(s)) {
        cl->no_outcome++;
        return 0;
    }
    st = tr_log_outcome(cl->log, id, s);
    return st == TR_OK ? 0 : trh_err("log: %s", tr_strerror(st));
}

int trh_cli_log_finish(trh_cli_log *cl, const char *path)
{
    size_t need = tr_log_export_size(cl->log), w;
    uint8_t *buf = trh_xmalloc(need);
    int r = tr_log_export(cl->log, buf, need, &w) != TR_OK ||
            trh_write_file_atomic(path, buf, w);
    if (!r) {
        tr_log_stats st;
        tr_log_stats_get(cl->log, &st);
        fprintf(stderr, "log: %s: %u records (%u with an outcome, %llu dropped)\n", path, st.held,
                st.with_outcome, (unsigned long long)st.dropped);
    }
    free(buf);
    free(cl->mem);
    free(cl->col);
    if (cl->has_ds) {
        trh_strmap_free(&cl->by_text);
        trh_dataset_free(&cl->ds);
    }
    return r ? trh_err("%s: could not write the log", path) : 0;
}

/* ---- eval --log ---- */

/* Pack model index of each logged name hash; -1 when the pack lacks it. */
static int model_of(const uint64_t *hashes, uint32_t m, uint64_t h)
{
    for (uint32_t j = 0; j < m; j++)
        if (hashes[j] == h)
            return (int)j;
    return -1;
}

static double f6(double x)
{
    char b[32];
    snprintf(b, sizeof b, "%.6g", x);
    return strtod(b, NULL);
}

int trh_eval_log(trh_packfile *pf, const char *path, trh_devkeys *dk, const tr_route_opts *ro,
                const double *lam, int n_lam, int json)
{
    trh_logfile lf;
    uint32_t skip; /* one log: nothing earlier to overlap */
    if (trh_logfile_open(path, dk, &lf, &skip))
        return 1;
    if (trh_logfile_check_models(&lf, path, pf->info.n_models, tr_ld64(pf->info.pack_hash))) {
        trh_logfile_free(&lf);
        return 1;
    }
    const uint32_t m = pf->info.n_models;
    tr_model_info *mi = trh_xmalloc(m * sizeof *mi);
    uint64_t *mh = trh_xmalloc(m * sizeof *mh);
    for (uint32_t j = 0; j < m; j++) {
        tr_pack_get_model(pf->view, j, &mi[j]);
        mh[j] = tr_fnv1a64(mi[j].name, strlen(mi[j].name));
    }
    /* Logged decisions as they were made. */
    size_t n_out = 0, n_cloud = 0, n_other_pack = 0, n_unknown_model = 0;
    double sum_out = 0, sum_cost = 0;
    size_t *count = trh_xcalloc(m, sizeof *count), *count_out = trh_xcalloc(m, sizeof *count_out);
    double *model_out = trh_xcalloc(m, sizeof *model_out);
    const uint64_t tag = tr_ld64(pf->info.pack_hash);
    for (uint32_t i = 0; i < lf.n; i++) {
        trh_logrec r;
        trh_logfile_rec(&lf, i, &r);
        sum_cost += r.cost;
        n_cloud += r.where == TR_CLOUD;
        n_other_pack += r.pack_tag != tag;
        int j = model_of(mh, m, r.model_hash);
        n_unknown_model += j < 0;
        if (j >= 0)
            count[j]++;
        if (r.flags & TR_LOG_REC_OUTCOME) {
            n_out++;
            sum_out += r.outcome;
            if (j >= 0) {
                count_out[j]++;
                model_out[j] += r.outcome;
            }
        }
    }
    /* Re-routed at each lambda: only prompts with an embedding, and only
     * when the log's embedder is the pack's. */
    const char *why_not = NULL;
    const tr_pack_view *pv = &pf->view->served;
    if (!(lf.flags & TR_LOG_EMBEDDING))
        why_not = "the log keeps no embeddings";
    else if (!lf.embedder[0])
        why_not = "the log has no record";
    else if (strcmp(lf.embedder, pf->info.embedder) || lf.dim != pf->info.dim)
        why_not = "the log's embedder is not the pack's";
    else if (pv->has_embedder && lf.embedder_fp != tr_embedder_fingerprint(&pv->embedder))
        why_not = "the log's embedder table differs from the pack's (another pc or vocabulary)";
    size_t n_emb = 0, n_emb_out = 0;
    double emb_out = 0, emb_cost = 0, emb_cloud = 0;
    double(*d)[5] = trh_xcalloc((size_t)n_lam, sizeof *d); /* cost, cloud, n, sum, sum sq */
    float *pred = trh_xmalloc(m * sizeof *pred);
    size_t failed = 0;
    for (uint32_t i = 0; i < lf.n && !why_not; i++) {
        trh_logrec r;
        trh_logfile_rec(&lf, i, &r);
        if (!r.emb)
            continue;
        int logged = model_of(mh, m, r.model_hash);
        int ok = 1;
        tr_result res[64];
        for (int l = 0; l < n_lam && ok; l++) {
            tr_route_opts o = *ro;
            o.lambda = trh_opts_lambda(lam[l]);
            const tr_query q = tr_query_i8(pf->info.embedder, r.emb, lf.dim);
            const tr_route_out out = {pred, m, NULL, 0, NULL, 0};
            tr_status st = tr_route(pf->view, pf->ctx, &q, &o, &res[l], &out);
            if (st != TR_OK) {
                trh_err("%s: record %llu: its embedding cannot be re-routed (%s: %s)", path,
                       (unsigned long long)r.id, tr_status_name(st), tr_strerror(st));
                ok = 0;
            }
        }
        if (!ok) {
            failed++;
            continue;
        }
        n_emb++;
        emb_cost += r.cost;
        emb_cloud += r.where == TR_CLOUD;
        int has = (r.flags & TR_LOG_REC_OUTCOME) != 0;
        if (has) {
            n_emb_out++;
            emb_out += r.outcome;
        }
        for (int l = 0; l < n_lam; l++) {
            d[l][0] += res[l].cost;
            d[l][1] += res[l].where == TR_CLOUD;
            if (has && logged == (int)res[l].model) {
                d[l][2] += 1;
                d[l][3] += r.outcome;
                d[l][4] += (double)r.outcome * r.outcome;
            }
        }
    }
    free(pred);
    /* Every refusal comes before the first byte of the report: a script
     * reading stdout gets a whole report or nothing (issue #18). */
    int rc = 0;
    if (failed) {
        trh_err("%s: %zu record(s) could not be re-routed; refusing the log", path, failed);
        rc = 1;
        goto done;
    }
    const char *note =
        "quality at a lambda is an estimate: the mean logged outcome over the records whose "
        "logged model is the one the pack now chooses at that lambda (inverse propensity with a "
        "deterministic logger: weight 1 there, the other records carry no information). It "
        "assumes those supported records are like the rest; with few of them it is noise. Cost "
        "and cloud share are exact for the logged prompts.";
    if (json) {
        cJSON *o = cJSON_CreateObject(), *ms = cJSON_CreateObject(), *dv = cJSON_CreateArray();
        cJSON_AddNumberToObject(o, "records", lf.n);
        cJSON_AddNumberToObject(o, "recorded", (double)lf.recorded);
        cJSON_AddNumberToObject(o, "dropped", (double)lf.dropped);
        cJSON_AddNumberToObject(o, "with_outcome", (double)n_out);
        cJSON_AddNumberToObject(o, "other_pack", (double)n_other_pack);
        cJSON_AddNumberToObject(o, "unknown_model", (double)n_unknown_model);
        if (n_out)
            cJSON_AddNumberToObject(o, "realised_quality", f6(sum_out / n_out));
        else
            cJSON_AddNullToObject(o, "realised_quality");
        cJSON_AddNumberToObject(o, "mean_cost", lf.n ? f6(sum_cost / lf.n) : 0);
        cJSON_AddNumberToObject(o, "cloud_share", lf.n ? f6((double)n_cloud / lf.n) : 0);
        for (uint32_t j = 0; j < m; j++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "count", (double)count[j]);
            cJSON_AddNumberToObject(e, "with_outcome", (double)count_out[j]);
            if (count_out[j])
                cJSON_AddNumberToObject(e, "mean_outcome", f6(model_out[j] / count_out[j]));
            cJSON_AddItemToObject(ms, mi[j].name, e);
        }
        cJSON_AddItemToObject(o, "models", ms);
        if (why_not) {
            cJSON_AddStringToObject(o, "deferral_skipped", why_not);
        } else {
            cJSON_AddNumberToObject(o, "reroutable", (double)n_emb);
            cJSON_AddNumberToObject(o, "reroutable_with_outcome", (double)n_emb_out);
            if (n_emb_out)
                cJSON_AddNumberToObject(o, "reroutable_quality", f6(emb_out / n_emb_out));
            if (n_emb) {
                cJSON_AddNumberToObject(o, "reroutable_cost", f6(emb_cost / n_emb));
                cJSON_AddNumberToObject(o, "reroutable_cloud_share", f6(emb_cloud / n_emb));
            }
            for (int l = 0; l < n_lam && n_emb; l++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "lambda", f6(lam[l]));
                cJSON_AddNumberToObject(e, "mean_cost", f6(d[l][0] / n_emb));
                cJSON_AddNumberToObject(e, "cloud_share", f6(d[l][1] / n_emb));
                cJSON_AddNumberToObject(e, "supported", d[l][2]);
                if (d[l][2] > 0) {
                    double mean = d[l][3] / d[l][2];
                    double var = d[l][2] > 1 ? (d[l][4] - d[l][2] * mean * mean) / (d[l][2] - 1) : 0;
                    cJSON_AddNumberToObject(e, "quality_estimate", f6(mean));
                    cJSON_AddNumberToObject(e, "stderr", f6(sqrt(fmax(var, 0) / d[l][2])));
                } else {
                    cJSON_AddNullToObject(e, "quality_estimate");
                }
                cJSON_AddItemToArray(dv, e);
            }
            cJSON_AddStringToObject(o, "note", note);
        }
        cJSON_AddItemToObject(o, "deferral", dv);
        char *t = cJSON_PrintUnformatted(o);
        puts(t);
        free(t);
        cJSON_Delete(o);
    } else {
        printf("log %s: %u records (ids up to %llu, %llu dropped), %zu with an outcome\n", path,
               lf.n, (unsigned long long)lf.recorded, (unsigned long long)lf.dropped, n_out);
        if (n_other_pack || n_unknown_model)
            printf("  %zu records from another pack, %zu with a model this pack lacks\n",
                   n_other_pack, n_unknown_model);
        if (n_out)
            printf("realised quality %.4f (mean outcome over %zu records)\n", sum_out / n_out, n_out);
        else
            printf("realised quality: no outcome logged\n");
        printf("mean cost %.4f, cloud share %.4f\n", lf.n ? sum_cost / lf.n : 0,
               lf.n ? (double)n_cloud / lf.n : 0);
        printf("%-40s %8s %12s %12s\n", "model", "routed", "with outcome", "mean outcome");
        size_t never = 0;
        for (uint32_t j = 0; j < m; j++) {
            if (!count[j]) {
                never++;
                continue;
            }
            printf("%-40.40s %8zu %12zu ", mi[j].name, count[j], count_out[j]);
            if (count_out[j])
                printf("%12.4f\n", model_out[j] / count_out[j]);
            else
                printf("%12s\n", "-");
        }
        if (never)
            printf("(%zu other models of the pack: never routed to)\n", never);
        if (why_not) {
            printf("deferral estimate skipped: %s\n", why_not);
        } else {
            printf("deferral estimate over the %zu logged prompts with an embedding (%zu with an "
                   "outcome; as logged: quality %.4f, cost %.4f, cloud share %.4f)\n",
                   n_emb, n_emb_out, n_emb_out ? emb_out / n_emb_out : NAN,
                   n_emb ? emb_cost / n_emb : NAN, n_emb ? emb_cloud / n_emb : NAN);
            printf("%10s %10s %12s %10s %18s\n", "lambda", "mean cost", "cloud share", "supported",
                   "quality estimate");
            for (int l = 0; l < n_lam && n_emb; l++) {
                printf("%10g %10.4f %12.4f %10.0f ", lam[l], d[l][0] / n_emb, d[l][1] / n_emb,
                       d[l][2]);
                if (d[l][2] > 0) {
                    double mean = d[l][3] / d[l][2];
                    double var = d[l][2] > 1 ? (d[l][4] - d[l][2] * mean * mean) / (d[l][2] - 1) : 0;
                    printf("%10.4f +- %.4f\n", mean, sqrt(fmax(var, 0) / d[l][2]));
                } else {
                    printf("%18s\n", "-");
                }
            }
            printf("(%s)\n", note);
        }
    }
done:
    free(d);
    free(count);
    free(count_out);
    free(model_out);
    free(mi);
    free(mh);
    trh_logfile_free(&lf);
    return rc;
}

/* ---- build --add-log ---- */

int trh_log_to_refs(const char *path, const tr_embedder *e, const char *embedder_name,
                   const trh_dataset *ds, trh_devkeys *dk, int8_t **refs, float **scores,
                   size_t *n_refs, FILE *say)
{
    trh_logfile lf;
    uint32_t skip;
    if (trh_logfile_open(path, dk, &lf, &skip))
        return 1;
    if (!(lf.flags & TR_LOG_EMBEDDING)) {
        fprintf(say, "%s: no embeddings kept (hash or text only): all %u records skipped\n", path, lf.n);
        trh_logfile_free(&lf);
        return 0;
    }
    if (lf.n && (strcmp(lf.embedder, embedder_name) || lf.dim != e->dim ||
                 lf.embedder_fp != tr_embedder_fingerprint(e))) {
        trh_err("%s: logged with embedder %s (dim %u, fingerprint %016llx), but this build's is %s "
               "(dim %u, fingerprint %016llx): its embeddings are not comparable (the pc is fitted on "
               "the references: build from the data, split and table the logging pack came from)",
               path, lf.embedder, lf.dim, (unsigned long long)lf.embedder_fp, embedder_name, e->dim,
               (unsigned long long)tr_embedder_fingerprint(e));
        trh_logfile_free(&lf);
        return 1;
    }
    const size_t m = ds->n_models, dim = e->dim;
    uint64_t *mh = trh_xmalloc(m * sizeof *mh);
    for (size_t j = 0; j < m; j++)
        mh[j] = tr_fnv1a64(ds->models[j].name, strlen(ds->models[j].name));
    size_t added = 0, no_emb = 0, no_out = 0, no_model = 0, bad = 0;
    for (uint32_t i = skip; i < lf.n; i++) {
        trh_logrec r;
        trh_logfile_rec(&lf, i, &r);
        if (!r.emb) {
            no_emb++;
            continue;
        }
        if (!(r.flags & TR_LOG_REC_OUTCOME)) {
            no_out++;
            continue;
        }
        int j = model_of(mh, (uint32_t)m, r.model_hash);
        if (j < 0) {
            no_model++;
            continue;
        }
        if (tr_check_i8(r.emb, (uint32_t)dim) != TR_OK) {
            bad++;
            continue;
        }
        *refs = trh_xrealloc(*refs, (*n_refs + 1) * dim);
        *scores = trh_xrealloc(*scores, (*n_refs + 1) * m * sizeof **scores);
        memcpy(*refs + *n_refs * dim, r.emb, dim);
        float *row = *scores + *n_refs * m;
        for (size_t t = 0; t < m; t++)
            row[t] = NAN; /* only the logged model was observed */
        row[j] = r.outcome;
        (*n_refs)++;
        added++;
    }
    fprintf(say, "%s: added %zu references; skipped %zu without an embedding, %zu without an outcome, "
           "%zu with a model not in the dataset, %zu malformed",
           path, added, no_emb, no_out, no_model, bad);
    if (skip)
        fprintf(say, ", %u taken from an earlier log of the device", skip);
    fputc('\n', say);
    free(mh);
    trh_logfile_free(&lf);
    return 0;
}
