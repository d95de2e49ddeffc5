/* Synthetic fleet logs for the fleet step (tools/fleet_step.py, issue 17),
 * written by the device library itself (tr_log_record / tr_log_export with
 * tr_log_set_device), not by a second writer of the format:
 *   gen_fleet_logs PACK PUBLIC.pem DATASET_DIR OUT_DIR N_DEVICES RECORDS
 *                  [SEED [PROMPTS [NOISE [FLIPPED]]]]
 * Each prompt of the dataset is routed once by PACK (the decision is what a
 * device would log); then each of N_DEVICES logs RECORDS decisions on
 * prompts drawn at random, with the text kept (TR_LOG_TEXT) and, as the
 * observed outcome, the chosen model's score in the dataset (none when it
 * is unknown). OUT_DIR gets dev-NNNNNN.trl and device-keys (the key file of
 * `--device-keys`; keys drawn from SEED, for tests and benchmarks only).
 * For the poisoning tests: PROMPTS (0: all) draws from the first PROMPTS
 * routable prompts only, so devices meet on the same prompts; NOISE (in
 * percent) flips an honest device's outcome (users differ); the first
 * FLIPPED devices report 1 - outcome always (an attacker). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "keys.h"
#include "packfile.h"
#include "tinyroute.h"
#include "util.h"

static uint64_t mix(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    uint64_t n_dev, n_rec, seed = 17, lim = 0, noise = 0, flipped = 0;
    if (argc < 7 || argc > 11 || trh_parse_u64(argv[5], &n_dev) || trh_parse_u64(argv[6], &n_rec) ||
        n_rec == 0 || n_rec > (1u << 24) || (argc > 7 && trh_parse_u64(argv[7], &seed)) ||
        (argc > 8 && trh_parse_u64(argv[8], &lim)) ||
        (argc > 9 && (trh_parse_u64(argv[9], &noise) || noise > 100)) ||
        (argc > 10 && trh_parse_u64(argv[10], &flipped))) {
        fputs("usage: gen_fleet_logs PACK PUBLIC.pem DATASET_DIR OUT_DIR N_DEVICES RECORDS\n"
              "                      [SEED [PROMPTS [NOISE [FLIPPED]]]]\n"
              "  (RECORDS per device, 1..16777216; NOISE in percent)\n", stderr);
        return 2;
    }
    tr_pubkey pub;
    if (trh_key_load_public(argv[2], &pub))
        return 1;
    tr_trust trust = {.keys = &pub, .n_keys = 1};
    trh_packfile pf;
    trh_dataset ds;
    if (trh_packfile_open(argv[1], NULL, &trust, &pf) || trh_dataset_load(argv[3], &ds))
        return 1;
    /* One decision per prompt, and its outcome. */
    const size_t n = ds.n_prompts;
    tr_result *res = trh_xmalloc(n * sizeof *res);
    float *out = trh_xmalloc(n * sizeof *out);
    char *ok = trh_xcalloc(n, 1);
    float *pred = trh_xmalloc(pf.info.n_models * sizeof *pred);
    size_t usable = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = ds.prompts[i].text;
        const tr_query q = tr_query_text(t, strlen(t));
        const tr_route_out ro = {pred, pf.info.n_models, NULL, 0, NULL, 0};
        if (tr_route(pf.view, pf.ctx, &q, NULL, &res[i], &ro) != TR_OK)
            continue;
        out[i] = NAN;
        for (size_t j = 0; j < ds.n_models; j++)
            if (!strcmp(ds.models[j].name, res[i].model_name))
                out[i] = ds.scores[i * ds.n_models + j];
        /* Only the first lim routable prompts (lim 0: all). */
        if (lim && usable >= lim)
            continue;
        ok[i] = 1;
        usable++;
    }
    if (!usable)
        return trh_err("no prompt of %s routes", argv[3]);
    size_t need = tr_log_size(0, (uint32_t)n_rec, TR_LOG_TEXT);
    void *mem = NULL;
    if (!need || posix_memalign(&mem, 64, need))
        return trh_err("cannot size a log of %llu records", (unsigned long long)n_rec);
    uint8_t *buf = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/device-keys", argv[4]);
    FILE *kf = fopen(path, "w");
    if (!kf)
        return trh_err("cannot write %s", path);
    uint64_t s = seed;
    for (uint64_t d = 0; d < n_dev; d++) {
        uint8_t key[32];
        for (int b = 0; b < 32; b += 8) {
            uint64_t x = mix(&s);
            memcpy(key + b, &x, 8);
        }
        tr_log *log;
        tr_status st = tr_log_init(mem, need, 0, (uint32_t)n_rec, TR_LOG_TEXT, &log);
        if (st == TR_OK)
            st = tr_log_set_device(log, 1000 + d, 1, key, sizeof key);
        for (uint64_t r = 0; st == TR_OK && r < n_rec; r++) {
            size_t i;
            do
                i = mix(&s) % n;
            while (!ok[i]);
            uint64_t id;
            const char *t = ds.prompts[i].text;
            st = tr_log_append(log, pf.view, pf.ctx, &res[i], NULL, t, strlen(t), &id);
            float o = out[i];
            if (d < flipped || (noise && mix(&s) % 100 < noise)) /* no draw without noise */
                o = 1.0f - o;
            if (st == TR_OK && !isnan(o))
                st = tr_log_outcome(log, id, o);
        }
        size_t w, sz = tr_log_export_size(log);
        buf = trh_xrealloc(buf, sz);
        if (st == TR_OK)
            st = tr_log_export(log, buf, sz, &w);
        if (st != TR_OK)
            return trh_err("device %llu: %s", (unsigned long long)d, tr_strerror(st));
        snprintf(path, sizeof path, "%s/dev-%06llu.trl", argv[4], (unsigned long long)d);
        if (trh_write_file_atomic(path, buf, w))
            return 1;
        fprintf(kf, "%llu ", (unsigned long long)(1000 + d));
        for (int b = 0; b < 32; b++)
            fprintf(kf, "%02x", key[b]);
        fputc('\n', kf);
    }
    if (fclose(kf))
        return trh_err("cannot write the key file");
    printf("%llu logs of %llu records (%zu distinct routable prompts) in %s\n",
           (unsigned long long)n_dev, (unsigned long long)n_rec, usable, argv[4]);
    free(buf);
    free(mem);
    free(pred);
    free(ok);
    free(out);
    free(res);
    trh_dataset_free(&ds);
    trh_packfile_close(&pf);
    return 0;
}
