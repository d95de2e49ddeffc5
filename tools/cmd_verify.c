/* tinyroute verify and inspect. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "keys.h"
#include "packfile.h"
#include "packwriter.h"
#include "tr_format.h"
#include "util.h"

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void when(char *out, size_t cap, uint64_t t)
{
    if (!t) {
        snprintf(out, cap, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    /* inspect shows untrusted headers: a time gmtime cannot convert, or
     * whose date does not fit (strftime then leaves out unterminated), is
     * shown as the number it is. */
    if (t > INT64_MAX || !gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "%llu", (unsigned long long)t);
}

/* The JSON document on out, one line. */
static void print_json(FILE *out, const cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    fprintf(out, "%s\n", txt);
    free(txt);
}

static const char verify_usage[] =
    "usage: tinyroute verify --key PUBLIC.pem [--key ...] [--min-counter N]\n"
    "                        [--revoke KEYID ...] [--delta DELTA]\n"
    "                        [--min-delta-counter N] [--json] PACK\n"
    "Checks the pack's signature against the trusted keys, then its sections,\n"
    "security counter and expiry; with --delta, the delta pack against PACK\n"
    "too. Exit 0 only when everything is valid.\n"
    "  --json  one JSON document on stdout: inspect's fields with \"verified\":\n"
    "          true (and \"delta\": the delta's), or \"verified\": false with the\n"
    "          refusal's \"error\" (TR_E_...) and \"message\" (exit 1)\n";

/* The TR_CHOSE_* bits by name, bit b at b. */
#define TR_N_CHOSE 4u
static const char *const chose_name[TR_N_CHOSE] = {"k", "prior_strength", "lambda", "method"};
/* TR_PACK_METHOD_* by name (the CLI's --method names). */
static const char *const method_name[] = {"knn", "cluster", "learned-map"};
#define TR_N_METHODS (sizeof method_name / sizeof *method_name)

/* The defaults record (TR_DEFAULTS_BYTES at d) as inspect shows it: the
 * routing defaults and what the builder chose on validation. */
static cJSON *defaults_json(const uint8_t *d)
{
    cJSON *o = cJSON_CreateObject(), *v = cJSON_CreateObject(), *ch = cJSON_CreateArray();
    uint32_t chosen = tr_ld32(d + TR_D_CHOSEN);
    cJSON_AddNumberToObject(o, "k", tr_ld32(d + TR_D_K));
    cJSON_AddNumberToObject(o, "lambda", tr_ldf32(d + TR_D_LAMBDA));
    cJSON_AddNumberToObject(o, "prior_strength", tr_ldf32(d + TR_D_PRIOR));
    cJSON_AddNumberToObject(v, "area", tr_ldf32(d + TR_D_VAL_AREA));
    cJSON_AddNumberToObject(v, "queries", tr_ld32(d + TR_D_VAL_QUERIES));
    for (uint32_t b = 0; b < TR_N_CHOSE; b++)
        if (chosen >> b & 1)
            cJSON_AddItemToArray(ch, cJSON_CreateString(chose_name[b]));
    cJSON_AddItemToObject(v, "chosen", ch);
    cJSON_AddItemToObject(o, "validation", v);
    /* inspect reads unverified packs too: an unknown method is shown, not
     * indexed. */
    uint32_t meth = tr_ld32(d + TR_D_METHOD);
    if (meth < TR_N_METHODS)
        cJSON_AddStringToObject(o, "method", method_name[meth]);
    else
        cJSON_AddNumberToObject(o, "method", meth);
    cJSON *mv = cJSON_AddObjectToObject(o, "method_validation");
    cJSON_AddNumberToObject(mv, "area", tr_ldf32(d + TR_D_METHOD_AREA));
    cJSON_AddNumberToObject(mv, "queries", tr_ld32(d + TR_D_METHOD_QUERIES));
    return o;
}

/* The default method's line: "learned-map; chosen by 5-fold cross-validation
 * (Area 0.6562 over 1350 out-of-fold queries)". */
static void print_method(FILE *out, const char *name, double area, uint32_t queries,
                         uint32_t chosen)
{
    fprintf(out, "  method      %s", name);
    if (queries)
        fprintf(out, "; %s by 5-fold cross-validation (Area %.4f over %u out-of-fold queries)",
                chosen & TR_CHOSE_METHOD ? "chosen" : "given, validated", area, queries);
    else
        fprintf(out, " (given, not validated)");
    fputc('\n', out);
}

/* One line for the defaults: "k 200, lambda 0, prior strength 32; chosen on
 * validation: k prior_strength lambda (Area 0.6529 over 1350 references)". */
static void print_defaults(FILE *out, uint32_t k, double lambda, double a, double area,
                           uint32_t queries, uint32_t chosen)
{
    fprintf(out, "  defaults    k %u, lambda %g, prior strength %g", k, lambda, a);
    chosen &= TR_CHOSE_K | TR_CHOSE_PRIOR | TR_CHOSE_LAMBDA; /* the method: its own line */
    if (queries && !chosen) {
        fprintf(out, "; validated, every setting given (Area %.4f over %u references)", area,
                queries);
    } else if (queries) {
        fprintf(out, "; chosen on validation:");
        for (uint32_t b = 0; b < TR_N_CHOSE; b++)
            if (chosen >> b & 1)
                fprintf(out, " %s", chose_name[b]);
        fprintf(out, " (Area %.4f over %u references)", area, queries);
    } else {
        fprintf(out, " (given, not validated)");
    }
    fputc('\n', out);
}

/* verify --json: the verdict as one document (r: trh_packfile_open's status). */
static int verify_json(const char *path, const char *delta, int r, trh_packfile *pf, uint64_t floor_)
{
    cJSON *o = r ? NULL : trh_inspect_json(path, pf->bytes, pf->len);
    if (!o) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddBoolToObject(o, "verified", 0);
        /* r < 0: a file that could not be read (its reason is on stderr) */
        cJSON_AddStringToObject(o, "error", r > 0 ? tr_status_name((tr_status)r) : "unreadable");
        cJSON_AddStringToObject(o, "message", r > 0 ? tr_strerror((tr_status)r)
                                              : "the pack or delta file could not be read");
        print_json(stdout, o);
        cJSON_Delete(o);
        if (!r)
            trh_packfile_close(pf);
        return 1;
    }
    cJSON_ReplaceItemInObject(o, "verified", cJSON_CreateBool(1));
    cJSON_AddNumberToObject(o, "min_counter", (double)floor_);
    char hash[65];
    hex(hash, pf->info.pack_hash, 32);
    cJSON_AddStringToObject(o, "sha256", hash);
    if (delta) {
        cJSON *d = trh_inspect_json(delta, pf->delta, pf->delta_len);
        if (d) {
            cJSON_ReplaceItemInObject(d, "verified", cJSON_CreateBool(1));
            hex(hash, pf->delta_info.delta_hash, 32);
            cJSON_AddStringToObject(d, "sha256", hash);
            cJSON_AddNumberToObject(d, "n_served_models", pf->info.n_models);
            cJSON_AddItemToObject(o, "delta", d);
        }
    }
    print_json(stdout, o);
    cJSON_Delete(o);
    trh_packfile_close(pf);
    return 0;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, 0, 'k'}, {"min-counter", required_argument, 0, 'c'},
        {"revoke", required_argument, 0, 'r'}, {"delta", required_argument, 0, 'd'},
        {"min-delta-counter", required_argument, 0, 'D'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0;
    const char *delta = NULL;
    tr_pubkey *keys = NULL;
    size_t n_keys = 0;
    uint64_t floor_ = 0, delta_floor = 0;
    uint8_t (*revoked)[32] = NULL;
    size_t n_revoked = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (trh_keys_add(optarg, &keys, &n_keys))
                return free(keys), 2;
            break;
        case 'c':
            if (trh_parse_u64(optarg, &floor_))
                return free(keys), trh_err("--min-counter must be a non-negative integer"), 2;
            break;
        case 'r':
            if (trh_keyid_add(optarg, &revoked, &n_revoked))
                return free(keys), free(revoked), 2;
            break;
        case 'd': delta = optarg; break;
        case 'D':
            if (trh_parse_u64(optarg, &delta_floor))
                return free(keys), trh_err("--min-delta-counter must be a non-negative integer"), 2;
            break;
        case 'j': json = 1; break;
        case 'h': fputs(verify_usage, stdout); return free(keys), free(revoked), 0;
        default: return free(keys), free(revoked), trh_bad_option(argv);
        }
    }
    if (!n_keys || optind != argc - 1) {
        free(keys);
        trh_err("verify needs --key and exactly one PACK");
        fputs(verify_usage, stderr);
        return 2;
    }
    const char *path = argv[optind];
    trh_packfile pf;
    tr_trust trust = {.keys = keys, .n_keys = n_keys, .min_security_counter = floor_,
                      .min_delta_counter = delta_floor,
                      .revoked = (const uint8_t(*)[32])revoked, .n_revoked = n_revoked};
    int r = trh_packfile_open(path, delta, &trust, &pf);
    free(keys);
    free(revoked);
    if (json)
        return verify_json(path, delta, r, &pf, floor_);
    if (r)
        return 1;
    char id[65], hash[65], created[32], expires[32];
    hex(id, pf.info.key_id, 32);
    hex(hash, pf.info.pack_hash, 32);
    when(created, sizeof created, pf.info.created_unix);
    when(expires, sizeof expires, pf.info.expires_unix);
    printf("%s: %zu bytes, pack format v%u\n", path, pf.len, pf.info.format_version);
    printf("  signature   ECDSA P-256 over SHA-256 of %llu bytes: valid\n",
           (unsigned long long)pf.info.signed_bytes);
    printf("  key id      %s (trusted)\n", id);
    printf("  sha256      %s\n", hash);
    printf("  sections    in bounds, aligned, consistent with N=%u M=%u D=%u\n",
           pf.info.n_refs, pf.info.n_models, pf.info.dim);
    printf("  counter     %llu (device floor %llu)\n",
           (unsigned long long)pf.info.security_counter, (unsigned long long)floor_);
    printf("  created     %s, expires %s\n", created, expires);
    if (pf.info.prefilter_candidates)
        printf("  search      sign-code prefilter, %u candidates reranked exactly\n",
               pf.info.prefilter_candidates);
    else
        printf("  search      exact\n");
    print_defaults(stdout, pf.info.default_k, pf.info.default_lambda,
                   pf.info.default_prior_strength, pf.info.validation_area,
                   pf.info.validation_queries, pf.info.chosen_on_validation);
    print_method(stdout, method_name[pf.info.default_method - 1], pf.info.method_validation_area,
                 pf.info.method_validation_queries, pf.info.chosen_on_validation);
    if (delta) {
        const tr_delta_info *d = &pf.delta_info;
        hex(hash, d->delta_hash, 32);
        hex(id, d->key_id, 32);
        when(created, sizeof created, d->created_unix);
        when(expires, sizeof expires, d->expires_unix);
        printf("%s: delta over this pack, signature valid\n", delta);
        printf("  key id      %s (trusted)\n", id);
        printf("  sha256      %s\n", hash);
        printf("  models      %u added, %u retired: %u served\n", d->n_added, d->n_retired,
               pf.info.n_models);
        if (d->has_settings)
            printf("  settings    k %u, lambda %g (0 / negative: the base's)\n", d->k,
                   (double)d->lambda);
        printf("  counter     %llu\n", (unsigned long long)d->security_counter);
        printf("  created     %s, expires %s\n", created, expires);
    }
    printf("OK\n");
    trh_packfile_close(&pf);
    return 0;
}

static const char inspect_usage[] =
    "usage: tinyroute inspect [--json] PACK|DELTA\n"
    "Prints the header (a pack's or a delta's), the section table and the\n"
    "signer's key id as they\n"
    "stand in the file, WITHOUT checking the signature (use verify for that).\n"
    "Fields that do not fit the file are listed as problems (exit 0 as long\n"
    "as the header itself can be read).\n";

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(inspect_usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (optind != argc - 1) {
        trh_err("inspect needs exactly one PACK or DELTA");
        fputs(inspect_usage, stderr);
        return 2;
    }
    const char *path = argv[optind];
    trh_packfile pf;
    if (trh_packfile_read(path, &pf))
        return 1;
    int r = trh_inspect(path, pf.bytes, pf.len, json, stdout);
    trh_packfile_close(&pf);
    return r;
}

/* inspect's report on a pack's (or a delta's) bytes as they stand, as a JSON
 * object; path only names it. The bytes are untrusted: nothing here may read
 * past len. NULL and a message when not even the header can be read. */
cJSON *trh_inspect_json(const char *path, const uint8_t *p, size_t len)
{
    /* A delta is the same container with its own magic and header
     * (PACK_FORMAT.md, delta packs): same section count and signed-bytes
     * offsets, so everything below the header is read the same way. */
    int is_delta = len >= 8 && memcmp(p, TR_DELTA_MAGIC, 8) == 0;
    tr_pack_info info;
    tr_delta_info dinfo;
    tr_status st = is_delta ? tr_delta_peek(p, len, &dinfo) : tr_pack_peek(p, len, &info);
    if (st != TR_OK) {
        trh_err("%s: %s: %s", path, tr_status_name(st), tr_strerror(st));
        return NULL;
    }
    if (is_delta) {
        memset(&info, 0, sizeof info);
        info.format_version = tr_ld32(p + TR_DH_VERSION);
        info.security_counter = dinfo.security_counter;
        info.created_unix = dinfo.created_unix;
        info.expires_unix = dinfo.expires_unix;
        info.signed_bytes = dinfo.signed_bytes;
    }
    /* inspect is for packs nobody trusts yet: every header field is checked
     * against the file's length before it indexes anything (in forms that
     * cannot wrap), and what does not fit is reported, not followed. */
    cJSON *problems = cJSON_CreateArray();
    char msg[160];
    uint32_t ns = tr_ld32(p + TR_H_N_SECTIONS);
    int table_ok = ns <= TR_MAX_SECTIONS &&
                   (size_t)ns * TR_SECTION_ENTRY_BYTES <= len - TR_HEADER_BYTES;
    if (!table_ok) {
        snprintf(msg, sizeof msg, "section table of %u entries does not fit the file (at most %u)",
                 ns, (unsigned)TR_MAX_SECTIONS);
        cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
    }
    char id[65] = "none", created[32], expires[32];
    if (info.signed_bytes > len || len - info.signed_bytes < TR_TRAILER_FIXED_BYTES) {
        snprintf(msg, sizeof msg, "signed_bytes %llu leaves no room for a %u-byte trailer in %zu bytes",
                 (unsigned long long)info.signed_bytes, (unsigned)TR_TRAILER_FIXED_BYTES, len);
        cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
    } else if (memcmp(p + info.signed_bytes, TR_TRAILER_MAGIC, 4) != 0) {
        cJSON_AddItemToArray(problems, cJSON_CreateString("no signature trailer at signed_bytes"));
    } else {
        hex(id, p + info.signed_bytes + 8, 32);
    }
    when(created, sizeof created, info.created_unix);
    when(expires, sizeof expires, info.expires_unix);

    cJSON *o = cJSON_CreateObject(), *secs = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddNumberToObject(o, "bytes", (double)len);
    cJSON_AddStringToObject(o, "kind", is_delta ? "delta" : "pack");
    cJSON_AddBoolToObject(o, "verified", 0);
    cJSON_AddNumberToObject(o, "format_version", info.format_version);
    cJSON_AddNumberToObject(o, "security_counter", (double)info.security_counter);
    cJSON_AddStringToObject(o, "created", created);
    cJSON_AddStringToObject(o, "expires", expires);
    char base_hash[65];
    if (is_delta) {
        hex(base_hash, dinfo.base_hash, 32);
        cJSON_AddStringToObject(o, "base_hash", base_hash);
        cJSON_AddNumberToObject(o, "n_base_models", dinfo.n_base_models);
        cJSON_AddNumberToObject(o, "n_base_refs", tr_ld32(p + TR_DH_BASE_REFS));
        cJSON_AddNumberToObject(o, "n_base_clusters", tr_ld32(p + TR_DH_BASE_CLUSTERS));
        cJSON_AddNumberToObject(o, "n_added", dinfo.n_added);
    } else {
        cJSON_AddStringToObject(o, "embedder", info.embedder);
        cJSON_AddNumberToObject(o, "dim", info.dim);
        cJSON_AddNumberToObject(o, "n_refs", info.n_refs);
        cJSON_AddNumberToObject(o, "n_models", info.n_models);
        cJSON_AddNumberToObject(o, "prefilter_candidates", info.prefilter_candidates);
    }
    /* n_retired is no header field: the bits set in the retire section over
     * the base's models, counted only when the section lies in the file and
     * covers them (else a problem, and no count). */
    long long n_retired = is_delta ? 0 : -1;
    int seen_retire = 0;
    cJSON_AddNumberToObject(o, "signed_bytes", (double)info.signed_bytes);
    cJSON_AddStringToObject(o, "key_id", id);
    cJSON_AddStringToObject(o, "kernel", tr_kernel_name());
    for (uint32_t i = 0; table_ok && i < ns; i++) {
        const uint8_t *e = p + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        uint64_t off = tr_ld64(e + TR_S_OFFSET), slen = tr_ld64(e + TR_S_LENGTH);
        if (off > len || slen > len - off) {
            snprintf(msg, sizeof msg, "section %u (%s) lies outside the file", i,
                     trh_section_name(tr_ld32(e + TR_S_TYPE)));
            cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
        }
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", trh_section_name(tr_ld32(e + TR_S_TYPE)));
        cJSON_AddNumberToObject(s, "type", tr_ld32(e + TR_S_TYPE));
        cJSON_AddNumberToObject(s, "offset", (double)tr_ld64(e + TR_S_OFFSET));
        cJSON_AddNumberToObject(s, "length", (double)tr_ld64(e + TR_S_LENGTH));
        cJSON_AddNumberToObject(s, "stride", tr_ld32(e + TR_S_STRIDE));
        cJSON_AddNumberToObject(s, "count", tr_ld32(e + TR_S_COUNT));
        cJSON_AddItemToArray(secs, s);
        int fits = off <= len && slen <= len - off;
        uint32_t type = tr_ld32(e + TR_S_TYPE);
        if (!is_delta && type == TR_SEC_DEFAULTS && fits && slen == TR_DEFAULTS_BYTES &&
            !cJSON_GetObjectItem(o, "defaults"))
            cJSON_AddItemToObject(o, "defaults", defaults_json(p + off));
        if (is_delta && type == TR_DSEC_SETTINGS && fits && slen == TR_DEFAULTS_BYTES &&
            !cJSON_GetObjectItem(o, "settings")) {
            cJSON *st_ = cJSON_CreateObject();
            cJSON_AddNumberToObject(st_, "k", tr_ld32(p + off + TR_D_K));
            cJSON_AddNumberToObject(st_, "lambda", tr_ldf32(p + off + TR_D_LAMBDA));
            cJSON_AddNumberToObject(st_, "prior_strength", tr_ldf32(p + off + TR_D_PRIOR));
            cJSON_AddItemToObject(o, "settings", st_);
        }
        if (is_delta && type == TR_DSEC_RETIRE && seen_retire++) {
            cJSON_AddItemToArray(problems, cJSON_CreateString("more than one retire section"));
            n_retired = -1;
        } else if (is_delta && type == TR_DSEC_RETIRE) {
            /* words needed for the base's models, in a form that cannot wrap */
            uint64_t words = ((uint64_t)dinfo.n_base_models + 63) / 64;
            if (!fits || slen / 8 < words) {
                if (fits) {
                    snprintf(msg, sizeof msg,
                             "retire section of %llu bytes does not cover the base's %u models",
                             (unsigned long long)slen, dinfo.n_base_models);
                    cJSON_AddItemToArray(problems, cJSON_CreateString(msg));
                }
                n_retired = -1;
            } else {
                for (uint32_t m = 0; m < dinfo.n_base_models; m++)
                    n_retired += p[off + m / 8] >> (m % 8) & 1;
            }
        }
    }
    if (is_delta && !table_ok)
        n_retired = -1;
    if (is_delta && n_retired >= 0)
        cJSON_AddNumberToObject(o, "n_retired", (double)n_retired);
    else if (is_delta)
        cJSON_AddNullToObject(o, "n_retired");
    cJSON_AddItemToObject(o, "sections", secs);
    cJSON_AddItemToObject(o, "problems", problems);
    return o;
}

/* trh_inspect_json's object as inspect prints it, to out. A function of its
 * own so tests/fuzz/fuzz_inspect.c runs exactly what the command does. */
int trh_inspect(const char *path, const uint8_t *p, size_t len, int json, FILE *out)
{
    cJSON *o = trh_inspect_json(path, p, len);
    if (!o)
        return 1;
    const int is_delta = !strcmp(cJSON_GetObjectItem(o, "kind")->valuestring, "delta");
    cJSON *secs = cJSON_GetObjectItem(o, "sections"), *problems = cJSON_GetObjectItem(o, "problems");
#define J_NUM(key) cJSON_GetObjectItem(o, key)->valuedouble
#define J_STR(key) cJSON_GetObjectItem(o, key)->valuestring
    if (json) {
        print_json(out, o);
    } else {
        fprintf(out, "%s: %zu bytes, %s format v%.0f (NOT verified: use `tinyroute verify`)\n",
                path, len, is_delta ? "delta" : "pack", J_NUM("format_version"));
        if (is_delta) {
            const cJSON *nr = cJSON_GetObjectItem(o, "n_retired");
            fprintf(out, "  base sha256 %s (N=%.0f references, M=%.0f models, K=%.0f clusters)\n",
                    J_STR("base_hash"), J_NUM("n_base_refs"), J_NUM("n_base_models"),
                    J_NUM("n_base_clusters"));
            if (cJSON_IsNumber(nr))
                fprintf(out, "  models %.0f added, %.0f retired\n", J_NUM("n_added"), nr->valuedouble);
            else
                fprintf(out, "  models %.0f added, retired unknown\n", J_NUM("n_added"));
            cJSON *se = cJSON_GetObjectItem(o, "settings");
            if (se)
                fprintf(out, "  settings k %.0f, lambda %g, prior strength %g (k 0, lambda < 0, prior 0: the base's)\n",
                        cJSON_GetObjectItem(se, "k")->valuedouble,
                        cJSON_GetObjectItem(se, "lambda")->valuedouble,
                        cJSON_GetObjectItem(se, "prior_strength")->valuedouble);
        } else {
            fprintf(out, "  embedder %s, D=%.0f, N=%.0f references, M=%.0f models\n",
                    J_STR("embedder"), J_NUM("dim"), J_NUM("n_refs"), J_NUM("n_models"));
        }
        fprintf(out, "  counter %.0f, created %s, expires %s\n", J_NUM("security_counter"),
                J_STR("created"), J_STR("expires"));
        fprintf(out, "  signed bytes %.0f, key id %s\n", J_NUM("signed_bytes"), J_STR("key_id"));
        fprintf(out, "  kernel %s\n", tr_kernel_name());
        cJSON *s, *d = cJSON_GetObjectItem(o, "defaults");
        if (d) {
            cJSON *v = cJSON_GetObjectItem(d, "validation"), *c;
            uint32_t chosen = 0;
            cJSON_ArrayForEach(c, cJSON_GetObjectItem(v, "chosen"))
                for (uint32_t b = 0; b < TR_N_CHOSE; b++)
                    chosen |= (uint32_t)!strcmp(c->valuestring, chose_name[b]) << b;
            print_defaults(out, (uint32_t)cJSON_GetObjectItem(d, "k")->valuedouble,
                           cJSON_GetObjectItem(d, "lambda")->valuedouble,
                           cJSON_GetObjectItem(d, "prior_strength")->valuedouble,
                           cJSON_GetObjectItem(v, "area")->valuedouble,
                           (uint32_t)cJSON_GetObjectItem(v, "queries")->valuedouble, chosen);
            cJSON *mn = cJSON_GetObjectItem(d, "method"), *mv = cJSON_GetObjectItem(d, "method_validation");
            char unk[32];
            if (!cJSON_IsString(mn))
                snprintf(unk, sizeof unk, "unknown (%.0f)", mn->valuedouble);
            print_method(out, cJSON_IsString(mn) ? mn->valuestring : unk,
                         cJSON_GetObjectItem(mv, "area")->valuedouble,
                         (uint32_t)cJSON_GetObjectItem(mv, "queries")->valuedouble, chosen);
        }
        cJSON_ArrayForEach(s, secs) {
            fprintf(out, "  section %-13s %10.0f bytes at %.0f\n",
                    cJSON_GetObjectItem(s, "name")->valuestring,
                    cJSON_GetObjectItem(s, "length")->valuedouble,
                    cJSON_GetObjectItem(s, "offset")->valuedouble);
        }
        cJSON_ArrayForEach(s, problems)
            fprintf(out, "  problem: %s\n", s->valuestring);
    }
#undef J_NUM
#undef J_STR
    cJSON_Delete(o);
    return 0;
}
