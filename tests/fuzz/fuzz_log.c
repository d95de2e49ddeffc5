/* libFuzzer target: the input is an exported outcome log (core/OUTCOME_LOG.md)
 * and it goes through everything the host tools do with a log's bytes, short
 * of signing a pack (tools/logfile.c):
 *   - trh_logfile_read, the reader both commands use, and trh_logfile_rec over
 *     every record of a log it accepts;
 *   - trh_eval_log (`tinyroute eval --log`): the statistics and the deferral
 *     estimate re-routed at eval's default lambdas, once as JSON (kNN) and
 *     once as text (cluster routing), on the pack the seed logs come from
 *     (TR_FUZZ_LOG_PACK, default build-fuzz/seeds/base.trp), so the
 *     embedder matches and the re-routing runs;
 *   - trh_log_to_refs (`tinyroute build --add-log`) with that pack's embedder
 *     and a dataset of its model names.
 * The log is written to /dev/shm (the reader takes a path, as the commands
 * do). The device library has no log reader: tr_log_* only writes logs, so
 * there is no core parser to cover here.
 *
 * Checked beyond "no crash, no sanitizer report": an accepted log's records
 * lie inside it and agree with its header; eval's JSON parses, counts what
 * the reader accepted, and its shares and qualities are in [0,1]; every
 * reference --add-log returns passes the int8 check and has exactly its
 * logged model's outcome, in [0,1].
 *
 * Authenticated logs (version 2, issue 17): the commands run with device
 * keys (device 7 under FUZZ_DEVICE_KEY, version 1 allowed). An input shaped
 * as version 2 whose last byte is even is sealed afresh with that key before
 * it is read (else a mutation would almost never pass the MAC and the
 * parser behind it would go unfuzzed); one with an odd last byte keeps its
 * MAC. trh_logfile_auth must accept exactly the logs of device 7 whose MAC
 * is the HMAC of their bytes, and the batch must refuse the same log taken
 * twice (a replay). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fuzz_common.h"
#include "logfile.h"
#include "tr_internal.h"
#include "tr_outcome.h"
#include "util.h"

static _Alignas(64) uint8_t arena[1u << 22], view_mem[1u << 14];
static trh_packfile pf;
static trh_dataset ds;
static char dir[64], path[96];
static FILE *devnull;
static trh_devkeys dk;
/* log_seeds.c seals its version 2 seeds with this key, as device 7. */
static const uint8_t FUZZ_DEVICE_KEY[32] = "fuzz_log device key, 32 bytes.!";
static uint8_t *sealed;
/* eval's default --lambda list (tools/cmd_route.c). */
static const double lam[] = {0, 0.02, 0.05, 0.1, 0.2, 0.5, 1};
#define N_LAM ((int)(sizeof lam / sizeof *lam))

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char **argv[])
{
    (void)argc;
    (void)argv;
    const char *pp = tr_fuzz_path("TR_FUZZ_LOG_PACK", "build-fuzz/seeds/base.trp");
    uint8_t *raw = trh_read_file(pp, &pf.len), *pack;
    if (!raw || posix_memalign((void **)&pack, 64, pf.len) != 0)
        abort();
    memcpy(pack, raw, pf.len);
    free(raw);
    pf.bytes = pack;
    static tr_pubkey key;
    tr_fuzz_load_key(&key);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    if (tr_pack_size() > sizeof view_mem ||
        tr_pack_open(view_mem, sizeof view_mem, pack, pf.len, &trust, &pf.view) != TR_OK ||
        tr_pack_get_info(pf.view, &pf.info) != TR_OK || !pf.info.has_text_embedder ||
        tr_ctx_init(arena, sizeof arena, pf.info.dim, pf.info.n_models,
                    pf.info.prefilter_candidates, &pf.ctx) != TR_OK) {
        fprintf(stderr, "fuzz: %s does not load with an embedder (set TR_FUZZ_LOG_PACK)\n", pp);
        abort();
    }
    /* The dataset --add-log joins on: the pack's model names (costs and
     * prompts play no part there). */
    ds.n_models = pf.info.n_models;
    ds.models = calloc(ds.n_models, sizeof *ds.models);
    if (!ds.models)
        abort();
    for (uint32_t j = 0; j < pf.info.n_models; j++) {
        tr_model_info mi;
        if (tr_pack_get_model(pf.view, j, &mi) != TR_OK)
            abort();
        ds.models[j].name = (char *)mi.name;
    }
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/tr-fuzz-log-%ld", base, (long)getpid());
    snprintf(path, sizeof path, "%s/in.trl", dir);
    if (mkdir(dir, 0700) != 0)
        abort();
    atexit(cleanup);
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    /* The device keys the commands check against: device 7 only. */
    dk.n = 1;
    dk.k = calloc(1, sizeof *dk.k);
    if (!dk.k)
        abort();
    dk.k[0].id = 7;
    memcpy(dk.k[0].key, FUZZ_DEVICE_KEY, 32);
    dk.k[0].key_len = 32;
    dk.allow_v1 = 1;
    /* Both commands report on stdout and refuse on stderr: silence the
     * stdio streams (libFuzzer kept its own copy of stderr, the sanitizers
     * write to fd 2 directly, so crash reports still show). */
    if (!getenv("TR_FUZZ_VERBOSE"))
        stderr = devnull;
    stdout = devnull;
    return 0;
}

static void fail(const char *why)
{
    dprintf(2, "fuzz_log: %s\n", why);
    abort();
}

/* A number in JSON object o, or NAN when absent or null. */
static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_unit(const cJSON *o, const char *k)
{
    double x = num(o, k);
    if (!isnan(x) && !(x >= 0 && x <= 1))
        fail(k);
}

/* The reader's result, checked against the bytes it came from. */
static void check_read(const trh_logfile *lf, size_t size)
{
    const uint64_t mac = lf->version == TR_LOG_VERSION_AUTH ? TR_LOG_MAC_BYTES : 0;
    if (lf->len != size || size != lf->rec_off + (uint64_t)lf->n * lf->record_bytes + mac ||
        lf->n > lf->capacity || lf->record_bytes < TR_LOG_REC_HEAD)
        fail("accepted header disagrees with the length");
    uint64_t emb = (lf->flags & TR_LOG_EMBEDDING) ? lf->dim : 0;
    uint64_t text = (lf->flags & TR_LOG_TEXT) ? lf->text_max : 0;
    if (TR_LOG_REC_HEAD + emb + text > lf->record_bytes)
        fail("accepted record size smaller than its embedding and text");
    for (uint32_t i = 0; i < lf->n; i++) {
        trh_logrec r;
        trh_logfile_rec(lf, i, &r);
        const uint8_t *lo = lf->bytes + lf->rec_off + (size_t)i * lf->record_bytes,
                      *hi = lo + lf->record_bytes;
        if (r.emb && ((const uint8_t *)r.emb < lo || (const uint8_t *)r.emb + lf->dim > hi))
            fail("embedding outside its record");
        if (r.text && ((const uint8_t *)r.text < lo || (const uint8_t *)r.text + r.text_len > hi))
            fail("text outside its record");
        int has = (r.flags & TR_LOG_REC_OUTCOME) != 0;
        if (has ? !(r.outcome >= 0 && r.outcome <= 1) : !isnan(r.outcome))
            fail("accepted outcome malformed");
    }
}

static void check_eval_json(const char *out, const trh_logfile *lf)
{
    cJSON *o = cJSON_Parse(out);
    if (!o)
        fail("eval --log --json printed no JSON");
    if (num(o, "records") != lf->n || num(o, "with_outcome") > lf->n ||
        num(o, "other_pack") > lf->n || num(o, "unknown_model") > lf->n)
        fail("eval --log counts disagree with the log");
    check_unit(o, "realised_quality");
    check_unit(o, "cloud_share");
    check_unit(o, "reroutable_quality");
    check_unit(o, "reroutable_cloud_share");
    double routed = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "models"))
    {
        routed += num(m, "count");
        check_unit(m, "mean_outcome");
        if (num(m, "with_outcome") > num(m, "count"))
            fail("a model has more outcomes than routes");
    }
    if (routed > lf->n)
        fail("more routes per model than records");
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "deferral"))
    {
        check_unit(m, "cloud_share");
        check_unit(m, "quality_estimate");
        if (num(m, "supported") > num(o, "reroutable_with_outcome"))
            fail("more supported records than re-routed ones with an outcome");
    }
    cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Version 2 shaped, even last byte: sealed afresh (see the top). */
    if (size >= TR_LOG_HEADER_BYTES_V2 + TR_LOG_MAC_BYTES && !memcmp(data, TR_LOG_MAGIC, 8) &&
        tr_ld32(data + TR_LH_VERSION) == TR_LOG_VERSION_AUTH && data[size - 1] % 2 == 0) {
        sealed = realloc(sealed, size);
        if (!sealed)
            abort();
        memcpy(sealed, data, size);
        if (tr_hmac_sha256(FUZZ_DEVICE_KEY, 32, sealed, size - 32, sealed + size - 32) != TR_OK)
            abort();
        data = sealed;
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();

    trh_logfile lf;
    int ok = trh_logfile_read(path, &lf) == 0;
    dk.k[0].taken = 0, dk.k[0].took = 0; /* each input is a batch of its own */
    if (!ok) {
        if (lf.bytes || lf.n)
            fail("a refused log was not released");
        /* Both commands refuse it the same way: nothing else to run. */
        if (trh_eval_log(&pf, path, &dk, &(tr_route_opts){.lambda = 0}, lam, N_LAM, 1) == 0)
            fail("eval --log accepted a log the reader refuses");
        return 0;
    }
    check_read(&lf, size);
    if (lf.version == TR_LOG_VERSION_AUTH) {
        uint8_t mac[32];
        if (tr_hmac_sha256(FUZZ_DEVICE_KEY, 32, data, size - 32, mac) != TR_OK)
            abort();
        int genuine = lf.device_id == 7 && !memcmp(mac, data + size - 32, 32);
        if ((trh_logfile_auth(&lf, path, &dk) == 0) != genuine)
            fail(genuine ? "a genuine sealed log was refused" : "a forged or foreign log was accepted");
        if (!genuine) {
            if (trh_eval_log(&pf, path, &dk, &(tr_route_opts){.lambda = 0}, lam, N_LAM, 1) == 0)
                fail("eval --log accepted a log that fails authentication");
            trh_logfile_free(&lf);
            return 0;
        }
        uint32_t skip;
        if (trh_devkeys_take(&dk, &lf, path, &skip) != 0 || skip != 0)
            fail("the first log of a batch was refused or skipped records");
        if (trh_devkeys_take(&dk, &lf, path, &skip) == 0)
            fail("the same log taken twice in a batch was not refused as a replay");
        dk.k[0].taken = 0, dk.k[0].took = 0;
    }

    /* eval --log --json, into memory to check what it says. */
    char *out = NULL;
    size_t out_len = 0;
    FILE *ms = open_memstream(&out, &out_len);
    if (!ms)
        abort();
    stdout = ms;
    tr_route_opts ro = {.lambda = TR_LAMBDA_DEFAULT};
    /* eval may refuse what the reader took: a record of this pack naming a
     * model index past M (trh_logfile_check_models). */
    int refused = trh_eval_log(&pf, path, &dk, &ro, lam, N_LAM, 1) != 0;
    dk.k[0].taken = 0, dk.k[0].took = 0;
    fclose(ms);
    stdout = devnull;
    if (!refused)
        check_eval_json(out, &lf);
    else if (out_len)
        fail("eval --log printed (part of) a report, then refused the log");
    free(out);
    /* eval --log, text, cluster routing. */
    ro.method = TR_METHOD_CLUSTER;
    trh_eval_log(&pf, path, &dk, &ro, lam, N_LAM, 0);
    dk.k[0].taken = 0, dk.k[0].took = 0;

    /* build --add-log with the pack's own embedder. */
    int8_t *refs = NULL;
    float *scores = NULL;
    size_t n_refs = 0;
    const tr_embedder *e = &pf.view->served.embedder;
    if (trh_log_to_refs(path, e, pf.info.embedder, &ds, &dk, &refs, &scores, &n_refs, stdout) == 0) {
        if (n_refs > lf.n)
            fail("--add-log made more references than records");
        for (size_t i = 0; i < n_refs; i++) {
            if (tr_check_i8(refs + i * e->dim, e->dim) != TR_OK)
                fail("--add-log kept an embedding the router refuses");
            size_t known = 0;
            for (size_t j = 0; j < ds.n_models; j++) {
                float s = scores[i * ds.n_models + j];
                if (!isnan(s) && !(s >= 0 && s <= 1))
                    fail("--add-log score outside [0,1]");
                known += !isnan(s);
            }
            if (known != 1)
                fail("--add-log reference without exactly one observed model");
        }
    }
    free(refs);
    free(scores);
    trh_logfile_free(&lf);
    return 0;
}
