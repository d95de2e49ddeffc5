/* tinyroute route, embed and eval: the device API driven from the shell. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "dataset.h"
#include "eval_protocol.h"
#include "keys.h"
#include "logfile.h"
#include "packfile.h"
#include "pareto.h"
#include "util.h"

/* Flags shared by route, embed and eval. */
typedef struct common {
    const char *pack, *delta, *data, *lambdas;
    tr_pubkey *keys;
    size_t n_keys;
    uint8_t (*revoked)[32];
    size_t n_revoked;
    uint64_t floor_, delta_floor;
    tr_route_opts ro;
    int split_all;
    int task;  /* --method task: all prompts form one task */
    const char *log_out, *log_flags, *log_key, *outcomes, *log_in;
    const char *log_device, *device_keys; /* issue 17: authenticated logs */
    int allow_v1;
    uint64_t log_capacity;
    int json;
    const char *input; /* --input FILE|-: NULL when not given */
    int jsonl, format_set, echo_prompt;
} common;

enum { O_PACK = 256, O_KEY, O_MIN, O_LAMBDA, O_K, O_OFFLINE, O_DATA, O_SPLIT, O_EXACT, O_METHOD,
       O_WEIGHTED, O_REVOKE, O_DELTA, O_MIN_DELTA, O_LOG_OUT, O_LOG_FLAGS, O_LOG_CAP, O_LOG_KEY,
       O_OUTCOMES, O_LOG, O_JSON, O_PRIOR, O_HELP,
       O_INPUT, O_FORMAT, O_ECHO, O_LOG_DEVICE, O_DEVICE_KEYS, O_ALLOW_V1 };

static const struct option common_opts[] = {
    {"pack", required_argument, 0, O_PACK}, {"key", required_argument, 0, O_KEY},
    {"min-counter", required_argument, 0, O_MIN}, {"lambda", required_argument, 0, O_LAMBDA},
    {"k", required_argument, 0, O_K}, {"offline", no_argument, 0, O_OFFLINE},
    {"data", required_argument, 0, O_DATA}, {"split", required_argument, 0, O_SPLIT},
    {"exact", no_argument, 0, O_EXACT}, {"method", required_argument, 0, O_METHOD},
    {"weighted", no_argument, 0, O_WEIGHTED}, {"revoke", required_argument, 0, O_REVOKE},
    {"delta", required_argument, 0, O_DELTA},
    {"min-delta-counter", required_argument, 0, O_MIN_DELTA},
    {"log-out", required_argument, 0, O_LOG_OUT}, {"log-flags", required_argument, 0, O_LOG_FLAGS},
    {"log-capacity", required_argument, 0, O_LOG_CAP}, {"log-key", required_argument, 0, O_LOG_KEY},
    {"outcomes", required_argument, 0, O_OUTCOMES}, {"log", required_argument, 0, O_LOG},
    {"json", no_argument, 0, O_JSON}, {"prior-strength", required_argument, 0, O_PRIOR},
    {"input", required_argument, 0, O_INPUT}, {"format", required_argument, 0, O_FORMAT},
    {"echo-prompt", no_argument, 0, O_ECHO},
    {"log-device", required_argument, 0, O_LOG_DEVICE},
    {"device-keys", required_argument, 0, O_DEVICE_KEYS},
    {"allow-unauthenticated", no_argument, 0, O_ALLOW_V1},
    {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};

/* Is name one of the space-separated words of allowed? */
static int allows(const char *allowed, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = allowed; (p = strstr(p, name)) != NULL; p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return 1;
    return 0;
}

/* -1: bad usage (message printed), 1: --help printed, 0: ok. */
static int parse_common(int argc, char **argv, const char *usage, const char *allowed,
                        common *c)
{
    const char *key_paths[argc + 3]; /* each --key takes an argument; then pack, delta, input */
    size_t n_key_paths = 0;
    memset(c, 0, sizeof *c);
    c->ro.lambda = TR_LAMBDA_DEFAULT;
    c->log_capacity = 65536;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", common_opts, NULL)) != -1) {
        const char *name = NULL;
        for (const struct option *op = common_opts; op->name; op++)
            if (op->val == o)
                name = op->name;
        if (o != '?' && o != O_HELP && name && !allows(allowed, name)) {
            trh_err("%s does not take --%s", argv[0], name);
            goto bad;
        }
        uint64_t u;
        double d;
        switch (o) {
        case O_PACK: c->pack = optarg; break;
        case O_DELTA: c->delta = optarg; break;
        case O_MIN_DELTA:
            if (trh_parse_u64(optarg, &c->delta_floor)) {
                trh_err("--min-delta-counter must be a non-negative integer, not '%s'", optarg);
                goto bad;
            }
            break;
        case O_KEY:
            if (trh_keys_add(optarg, &c->keys, &c->n_keys))
                goto bad;
            key_paths[n_key_paths++] = optarg;
            break;
        case O_MIN:
            if (trh_parse_u64(optarg, &c->floor_)) {
                trh_err("--min-counter must be a non-negative integer, not '%s'", optarg);
                goto bad;
            }
            break;
        case O_LAMBDA:
            c->lambdas = optarg;
            if (!strchr(optarg, ',')) {
                if (trh_parse_f64(optarg, &d) || d < 0) {
                    trh_err("--lambda must be a number >= 0, not '%s'", optarg);
                    goto bad;
                }
                c->ro.lambda = trh_opts_lambda(d);
            }
            break;
        case O_K:
            if (trh_parse_u64(optarg, &u) || u == 0 || u > TR_K_MAX) {
                trh_err("--k must be an integer in 1..%d, not '%s'", TR_K_MAX, optarg);
                goto bad;
            }
            c->ro.k = (uint32_t)u;
            break;
        case O_PRIOR:
            if (trh_parse_f64(optarg, &d) || !(d >= 0) || d > TR_PRIOR_STRENGTH_MAX) {
                trh_err("--prior-strength must be a number in 0..%g, not '%s'",
                       (double)TR_PRIOR_STRENGTH_MAX, optarg);
                goto bad;
            }
            /* 0 on the command line means none; in the options, the pack's. */
            c->ro.prior_strength = d == 0 ? TR_PRIOR_NONE : (float)d;
            break;
        case O_OFFLINE: c->ro.offline = 1; break;
        case O_EXACT: c->ro.exact = 1; break;
        case O_WEIGHTED: c->ro.distance_weighted = 1; break;
        case O_REVOKE:
            if (trh_keyid_add(optarg, &c->revoked, &c->n_revoked))
                goto bad;
            break;
        case O_METHOD:
            if (!strcmp(optarg, "knn"))
                c->ro.method = TR_METHOD_KNN;
            else if (!strcmp(optarg, "cluster"))
                c->ro.method = TR_METHOD_CLUSTER;
            else if (!strcmp(optarg, "learned-map"))
                c->ro.method = TR_METHOD_LEARNED_MAP;
            else if (!strcmp(optarg, "task"))
                c->task = 1;
            else {
                trh_err("--method must be knn, cluster, learned-map or task, not '%s'", optarg);
                goto bad;
            }
            break;
        case O_DATA: c->data = optarg; break;
        case O_LOG_OUT: c->log_out = optarg; break;
        case O_LOG_FLAGS: c->log_flags = optarg; break;
        case O_LOG_KEY: c->log_key = optarg; break;
        case O_OUTCOMES: c->outcomes = optarg; break;
        case O_LOG: c->log_in = optarg; break;
        case O_LOG_DEVICE: c->log_device = optarg; break;
        case O_DEVICE_KEYS: c->device_keys = optarg; break;
        case O_ALLOW_V1: c->allow_v1 = 1; break;
        case O_JSON: c->json = 1; break;
        case O_INPUT: c->input = optarg; break;
        case O_ECHO: c->echo_prompt = 1; break;
        case O_FORMAT:
            if (strcmp(optarg, "lines") && strcmp(optarg, "jsonl")) {
                trh_err("--format must be lines or jsonl, not '%s'", optarg);
                goto bad;
            }
            c->jsonl = !strcmp(optarg, "jsonl");
            c->format_set = 1;
            break;
        case O_LOG_CAP:
            /* A limit the user can read in the message, not an allocation
             * of hundreds of GB failing (or swapping) later. */
            if (trh_parse_u64(optarg, &c->log_capacity) || c->log_capacity == 0 ||
                c->log_capacity > TRH_CLI_LOG_MAX_RECORDS) {
                trh_err("--log-capacity must be an integer in 1..%u (the CLI's limit: 16M records), not '%s'",
                       TRH_CLI_LOG_MAX_RECORDS, optarg);
                goto bad;
            }
            break;
        case O_SPLIT:
            if (strcmp(optarg, "test") && strcmp(optarg, "all")) {
                trh_err("--split must be test or all, not '%s'", optarg);
                goto bad;
            }
            c->split_all = !strcmp(optarg, "all");
            break;
        case O_HELP: fputs(usage, stdout); free(c->keys); free(c->revoked); return 1;
        case '?': trh_bad_option(argv); goto bad_quiet; /* the CLI's one style */
        default: goto bad;
        }
    }
    if (!c->pack || !c->n_keys) {
        trh_err("%s needs --pack and --key", argv[0]);
        goto bad;
    }
    if (c->log_out) {
        /* The log is written over LOG at the end: never over an input
         * (issue #18), the pack, delta, a key or the --outcomes data. */
        key_paths[n_key_paths++] = c->pack;
        key_paths[n_key_paths++] = c->delta;
        if (c->input && strcmp(c->input, "-"))
            key_paths[n_key_paths++] = c->input;
        if (trh_out_not_input_ds("--log-out", c->log_out, key_paths, n_key_paths, &c->outcomes,
                                1, NULL))
            goto bad_quiet;
    }
    return 0;
bad:
    fputs(usage, stderr);
bad_quiet:
    free(c->keys);
    free(c->revoked);
    c->keys = NULL;
    c->revoked = NULL;
    return -1;
}

/* Floats as their shortest 6-digit decimal: 0.1f prints as 0.1. */
static double f6(float x)
{
    char b[32];
    snprintf(b, sizeof b, "%.6g", (double)x);
    return strtod(b, NULL);
}

/* Open the pack under the flags' keys, floor and revocations; frees them. */
static int open_pack(common *c, trh_packfile *pf)
{
    tr_trust trust = {.keys = c->keys, .n_keys = c->n_keys, .min_security_counter = c->floor_,
                      .min_delta_counter = c->delta_floor,
                      .revoked = (const uint8_t(*)[32])c->revoked, .n_revoked = c->n_revoked};
    int r = trh_packfile_open(c->pack, c->delta, &trust, pf);
    free(c->keys);
    free(c->revoked);
    c->keys = NULL;
    c->revoked = NULL;
    return r;
}

/* The excerpt route prints of a prompt unless --echo-prompt: its first
 * bytes, at most EXCERPT_MAX in all with the "…" that marks a cut, cut
 * before a UTF-8 continuation byte (the text routed, so it is valid UTF-8).
 * A batch of ~2 KB prompts otherwise echoes all its input (issue #14). */
#define EXCERPT_MAX 80
static void excerpt(const char *text, size_t len, char out[EXCERPT_MAX + 1])
{
    if (len <= EXCERPT_MAX) {
        memcpy(out, text, len);
        out[len] = 0;
        return;
    }
    size_t cut = EXCERPT_MAX - 3; /* "…" is 3 bytes */
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(out, text, cut);
    memcpy(out + cut, "\xe2\x80\xa6", 4);
}

static cJSON *result_json(const tr_pack *r, const tr_pack_info *info, const cJSON *id,
                          const char *prompt, const tr_result *res, const float *pred)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateObject();
    if (id)
        cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
    if (prompt)
        cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddStringToObject(o, "model", res->model_name);
    cJSON_AddNumberToObject(o, "index", res->model);
    cJSON_AddStringToObject(o, "where", res->where == TR_DEVICE ? "device" : "cloud");
    cJSON_AddNumberToObject(o, "cost", f6(res->cost));
    cJSON_AddNumberToObject(o, "cost_norm", f6(res->cost_norm));
    cJSON_AddNumberToObject(o, "lambda", f6(res->lambda));
    cJSON_AddNumberToObject(o, "utility", f6(res->utility));
    if (!isnan(res->nearest_distance))
        cJSON_AddNumberToObject(o, "nearest_distance", f6(res->nearest_distance));
    static const char *method[] = {"default", "knn", "cluster", "learned-map"};
    cJSON_AddStringToObject(o, "method", method[res->method <= TR_METHOD_LEARNED_MAP ? res->method : 0]);
    if (res->method == TR_METHOD_CLUSTER)
        cJSON_AddNumberToObject(o, "cluster", res->cluster);
    else if (res->method == TR_METHOD_KNN)
        cJSON_AddNumberToObject(o, "k", res->k);
    cJSON_AddBoolToObject(o, "prior_only", (res->flags & TR_RESULT_PRIOR_ONLY) != 0);
    static const char *why[] = {"utility", "unavailable", "offline", "budget", "prior_only"};
    cJSON_AddStringToObject(o, "why", res->why < 5 ? why[res->why] : "?");
    for (uint32_t m = 0; m < info->n_models; m++) {
        tr_model_info mi;
        tr_pack_get_model(r, m, &mi);
        cJSON_AddNumberToObject(p, mi.name, f6(pred[m]));
    }
    cJSON_AddItemToObject(o, "predicted", p);
    return o;
}

static void print_json(cJSON *o)
{
    char *t = cJSON_PrintUnformatted(o);
    puts(t);
    free(t);
    cJSON_Delete(o);
}

/* "tinyroute route: FILE:LINE: message" (FILE NULL: "argument LINE: ...") */
static int line_err(const char *cmd, const char *file, long line, const char *fmt, ...)
{
    (void)cmd; /* trh_err names the subcommand */
    va_list ap;
    va_start(ap, fmt);
    char *msg = trh_xvprintf(fmt, ap);
    va_end(ap);
    if (file)
        trh_err_at(file, line, "%s", msg);
    else
        trh_err("argument %ld: %s", line, msg);
    free(msg);
    return 1;
}

/* One prompt: where it came from (file NULL for an argument), its id for
 * the output (the JSONL "id", else the line or argument number). */
typedef int (*prompt_fn)(void *ctx, const char *file, long line, const cJSON *id,
                         const char *text, size_t len);

typedef struct prompt_src {
    const char *cmd;  /* route or embed, for messages */
    FILE *f;          /* --input or stdin */
    const char *name; /* its name in messages */
    int jsonl;
    size_t blank; /* blank lines skipped */
} prompt_src;

static int blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\v\f", s[i]))
            return 0;
    return 1;
}

/* A JSONL line {"id": .., "text": ..} (tools/DATASET.md's prompts.jsonl
 * rules for both); 0 and fn's result, or 1 after a message. */
static int jsonl_prompt(prompt_src *src, long no, const char *s, size_t n, prompt_fn fn,
                        void *ctx)
{
    if (trh_json_nul_escape(s, n))
        return line_err(src->cmd, src->name, no,
                        "a \\u0000 (NUL) escape: the text would be cut there");
    cJSON *o = cJSON_ParseWithLengthOpts(s, n + 1, NULL, 1), *id = NULL;
    int r = 1;
    if (!cJSON_IsObject(o)) {
        line_err(src->cmd, src->name, no, o ? "expected a JSON object" : "malformed JSON");
        goto out;
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(o, "id"),
                *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (!jid)
        id = cJSON_CreateNumber((double)no);
    else if (cJSON_IsString(jid) && *jid->valuestring &&
             trh_utf8_valid(jid->valuestring, strlen(jid->valuestring)))
        id = cJSON_CreateString(jid->valuestring);
    else if (cJSON_IsNumber(jid) && jid->valuedouble == floor(jid->valuedouble) &&
             fabs(jid->valuedouble) <= 9007199254740992.0) /* 2^53: exact in JSON */
        id = cJSON_CreateNumber(jid->valuedouble);
    else {
        line_err(src->cmd, src->name, no,
                 "\"id\" must be a non-empty UTF-8 string or an integer");
        goto out;
    }
    if (!cJSON_IsString(text)) {
        line_err(src->cmd, src->name, no, "missing \"text\" (a string)");
        goto out;
    }
    /* No NUL inside (refused above), so strlen is the whole text. */
    r = fn(ctx, src->name, no, id, text->valuestring, strlen(text->valuestring));
out:
    cJSON_Delete(id);
    cJSON_Delete(o);
    return r;
}

/* Calls fn on each prompt: the arguments, or else each line of --input (or
 * stdin): plain text, or JSONL with --format jsonl. Blank lines are skipped
 * and counted; a bad line is reported and the batch goes on; 1 at the end
 * if anything failed. */
static int each_prompt(int argc, char **argv, prompt_src *src, prompt_fn fn, void *ctx)
{
    int failed = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++) {
            cJSON *id = cJSON_CreateNumber(i - optind + 1);
            failed |= fn(ctx, NULL, i - optind + 1, id, argv[i], strlen(argv[i])) != 0;
            cJSON_Delete(id);
        }
        return failed;
    }
    char *line = NULL;
    size_t cap = 0;
    long long n;
    long no = 0;
    while ((n = trh_getline_max(&line, &cap, src->f, TRH_LINE_MAX)) != -1) {
        no++;
        if (n == -2) {
            int ch;
            while ((ch = getc(src->f)) != EOF && ch != '\n')
                ; /* the rest of the line, unstored */
            failed = line_err(src->cmd, src->name, no,
                              "line longer than %zu bytes (TRH_LINE_MAX, tools/DATASET.md)",
                              TRH_LINE_MAX);
            continue;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (blank_line(line, (size_t)n)) {
            src->blank++;
            continue;
        }
        if (memchr(line, 0, (size_t)n))
            failed = line_err(src->cmd, src->name, no, "NUL byte");
        else if (src->jsonl)
            failed |= jsonl_prompt(src, no, line, (size_t)n, fn, ctx) != 0;
        else {
            cJSON *id = cJSON_CreateNumber((double)no);
            failed |= fn(ctx, src->name, no, id, line, (size_t)n) != 0;
            cJSON_Delete(id);
        }
        fflush(stdout); /* one answer per line as it comes: usable as a co-process */
    }
    if (ferror(src->f))
        failed = line_err(src->cmd, src->name, no + 1, "read error");
    free(line);
    return failed;
}

typedef struct route_ctx {
    trh_packfile *pf;
    const tr_route_opts *ro;
    float *pred;
    int embed_only;
    tr_task *task;
    size_t skipped;
    trh_cli_log *log; /* --log-out: every decision is also logged */
    int echo_prompt;
} route_ctx;

static int route_one(void *vctx, const char *file, long line, const cJSON *id, const char *text,
                     size_t len)
{
    route_ctx *c = vctx;
    tr_status st;
    if (c->task) {
        int used;
        const tr_query q = tr_query_text(text, len);
        st = tr_task_add(c->pf->view, c->pf->ctx, c->task, &q, c->ro, &used);
        c->skipped += st == TR_OK && !used;
    } else if (c->embed_only) {
        int8_t *q = trh_xmalloc(c->pf->info.dim);
        st = tr_embed(c->pf->view, c->pf->ctx, text, len, q, c->pf->info.dim);
        if (st == TR_OK) {
            printf("[");
            for (uint32_t d = 0; d < c->pf->info.dim; d++)
                printf("%s%d", d ? "," : "", q[d]);
            printf("]\n");
        }
        free(q);
    } else {
        tr_result res;
        const tr_query q = tr_query_text(text, len);
        const tr_route_out out = {c->pred, c->pf->info.n_models, NULL, 0, NULL, 0};
        st = tr_route(c->pf->view, c->pf->ctx, &q, c->ro, &res, &out);
        if (st == TR_OK) {
            char ex[EXCERPT_MAX + 1];
            if (!c->echo_prompt)
                excerpt(text, len, ex);
            print_json(result_json(c->pf->view, &c->pf->info, id, c->echo_prompt ? text : ex,
                                   &res, c->pred));
        }
        if (st == TR_OK && c->log && trh_cli_log_add(c->log, c->pf, &res, text, len))
            return 1;
    }
    if (st != TR_OK)
        return line_err(c->embed_only ? "embed" : "route", file, line, "%s: %s",
                        tr_status_name(st), tr_strerror(st));
    return 0;
}

static int print_task(trh_packfile *pf, const tr_task *task, const tr_route_opts *ro,
                      size_t skipped)
{
    const uint32_t m = pf->info.n_models;
    float *s = trh_xmalloc(4 * m * sizeof *s);
    tr_task_result res;
    const tr_task_scores scores = {s, s + m, s + 2 * m, s + 3 * m, m};
    tr_status st = tr_task_choose(pf->view, pf->ctx, task, ro, &res, &scores);
    if (st != TR_OK) {
        free(s);
        return trh_err("task: %s: %s", tr_status_name(st), tr_strerror(st));
    }
    tr_model_info mi;
    cJSON *o = cJSON_CreateObject(), *sc = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", "task");
    cJSON_AddNumberToObject(o, "prompts", res.n_prompts);
    cJSON_AddNumberToObject(o, "skipped", (double)skipped);
    cJSON_AddNumberToObject(o, "mean_distance", f6(res.mean_distance));
    static const char *keys[] = {"by_s1", "by_s2", "by_s3", "bma", "chosen"};
    uint32_t which[] = {res.by_s1, res.by_s2, res.by_s3, res.bma, res.chosen};
    for (int i = 0; i < 5; i++) {
        tr_pack_get_model(pf->view, which[i], &mi);
        cJSON_AddStringToObject(o, keys[i], mi.name);
    }
    tr_pack_get_model(pf->view, res.chosen, &mi);
    cJSON_AddStringToObject(o, "where", mi.where == TR_DEVICE ? "device" : "cloud");
    cJSON_AddNumberToObject(o, "p_beats_bma", f6(res.p_beats_bma));
    cJSON_AddBoolToObject(o, "kept_bma", res.kept_bma);
    for (uint32_t j = 0; j < m; j++) {
        tr_pack_get_model(pf->view, j, &mi);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "s1", f6(s[j]));
        cJSON_AddNumberToObject(e, "s2", f6(s[m + j]));
        cJSON_AddNumberToObject(e, "s3", f6(s[2 * m + j]));
        cJSON_AddNumberToObject(e, "p", f6(s[3 * m + j]));
        cJSON_AddItemToObject(sc, mi.name, e);
    }
    cJSON_AddItemToObject(o, "scores", sc);
    print_json(o);
    free(s);
    return 0;
}

static const char route_usage[] =
    "usage: tinyroute route --pack PACK [--delta DELTA] --key PUBLIC.pem [--lambda L] [--k K]\n"
    "                       [--offline] [--exact] [--method knn|cluster|learned-map|task]\n"
    "                       [--weighted] [--prior-strength A]\n"
    "                       [--log-out LOG [--log-flags embedding,hash,text|none]\n"
    "                        [--log-key HEX32] [--log-capacity N] [--outcomes DIR]\n"
    "                        [--log-device ID:HEXKEY[:FIRST_ID]]]\n"
    "                       [--min-counter N] [--min-delta-counter N] [--revoke KEYID]\n"
    "                       [--echo-prompt] [PROMPT... | --input FILE|- [--format lines|jsonl]]\n"
    "Routes each PROMPT (or each prompt of --input FILE, - or no PROMPT: stdin)\n"
    "and prints one JSON line per prompt: id, prompt (its first 80 bytes, or\n"
    "all of it with --echo-prompt), model, where (device|cloud), per-model\n"
    "predicted correctness, cost, nearest distance. --format lines (the\n"
    "default): one prompt per line, id its line number; jsonl: one\n"
    "{\"id\": ..., \"text\": ...} object per line (tools/DATASET.md; a\n"
    "multi-line prompt is a JSON string with \\n), id the line number when\n"
    "absent. Blank lines are skipped; a bad line is reported as FILE:LINE and\n"
    "the rest routed, exit 1 at the end. --offline allows on-device models only; --exact\n"
    "searches every reference even when the pack has a binary prefilter;\n"
    "--weighted weighs neighbours by 1/cosine distance. --prior-strength A\n"
    "overrides the pack's kNN prior strength (0: plain neighbour means).\n"
    "--delta applies a signed\n"
    "delta pack (added or retired models, settings) over PACK. --min-counter and\n"
    "--min-delta-counter are the device's anti-rollback floors for PACK and\n"
    "DELTA (below: TR_E_ROLLBACK). --method: the pack's default method unless\n"
    "given (`tinyroute inspect` shows it). --method task takes all\n"
    "the prompts as one new task and prints one JSON object: S1, S2, S3 per\n"
    "model and the choice after the out-of-distribution gate (Shnitzer 2023).\n"
    "--log-out records every decision in a device outcome log (tr_log_*) and\n"
    "exports it to LOG (core/OUTCOME_LOG.md): by default the int8 embedding;\n"
    "hash needs --log-key (SipHash key, 32 hex digits); text is opt-in. The\n"
    "ring keeps the newest --log-capacity records (65536; at most 16M). --outcomes DIR\n"
    "attaches as each prompt's outcome the chosen model's score in that dataset\n"
    "(looked up by text, the first prompt with that text; a simulated user).\n"
    "--log-device seals the export (format version 2): device ID (decimal), its\n"
    "HMAC key (32..128 hex digits) and the first record id (default 1).\n";

static const char embed_usage[] =
    "usage: tinyroute embed --pack PACK --key PUBLIC.pem [--revoke KEYID]\n"
    "                       [PROMPT... | --input FILE|- [--format lines|jsonl]]\n"
    "Prints the built-in embedder's int8 embedding of each prompt (or each\n"
    "prompt of --input FILE, - or no PROMPT: stdin; read as by route: blank\n"
    "lines skipped, a bad line reported and skipped, exit 1 at the end) as a\n"
    "JSON array, one line per prompt.\n";

static int run_route(int argc, char **argv, int embed_only)
{
    common c;
    int r = parse_common(argc, argv, embed_only ? embed_usage : route_usage,
                         embed_only ? "pack key delta min-counter min-delta-counter revoke input format"
                                    : "pack key delta min-counter min-delta-counter revoke lambda k offline exact method weighted "
                                      "prior-strength log-out log-flags log-key log-capacity outcomes input format echo-prompt "
                                      "log-device",
                         &c);
    if (r)
        return r < 0 ? 2 : 0;
    if (c.lambdas && strchr(c.lambdas, ',')) {
        free(c.keys);
        free(c.revoked);
        return trh_err("route takes one --lambda value"), 2;
    }
    const char *cmd = embed_only ? "embed" : "route";
    if ((c.input || c.format_set) && optind < argc) {
        free(c.keys);
        free(c.revoked);
        fprintf(stderr, "tinyroute %s: --input and --format read prompts from a file or stdin, "
                        "not with PROMPT arguments\n", cmd);
        return 2;
    }
    /* The input is opened before the pack: a wrong path fails at once. */
    prompt_src src = {cmd, stdin, "stdin", c.jsonl, 0};
    if (c.input && strcmp(c.input, "-")) {
        struct stat sb;
        src.f = fopen(c.input, "rb");
        src.name = c.input;
        if (!src.f || (fstat(fileno(src.f), &sb) == 0 && S_ISDIR(sb.st_mode))) {
            fprintf(stderr, "tinyroute %s: cannot read %s: %s\n", cmd, c.input,
                    src.f ? "is a directory" : strerror(errno));
            if (src.f)
                fclose(src.f);
            free(c.keys);
            free(c.revoked);
            return 1;
        }
    }
    trh_packfile pf;
    r = open_pack(&c, &pf);
    if (r) {
        if (src.f != stdin)
            fclose(src.f);
        return 1;
    }
    if ((c.log_flags || c.log_key || c.outcomes || c.log_device) && !c.log_out) {
        trh_packfile_close(&pf);
        if (src.f != stdin)
            fclose(src.f);
        return trh_err("--log-flags, --log-key, --log-device and --outcomes go with --log-out"), 2;
    }
    if (c.log_out && c.task) {
        trh_packfile_close(&pf);
        if (src.f != stdin)
            fclose(src.f);
        return trh_err("--log-out logs single decisions, not --method task"), 2;
    }
    trh_cli_log cl;
    if (c.log_out && trh_cli_log_begin(&cl, &pf, c.log_flags, c.log_capacity, c.log_key, c.log_device, c.outcomes)) {
        trh_packfile_close(&pf);
        if (src.f != stdin)
            fclose(src.f);
        return 1;
    }
    route_ctx ctx = {&pf, &c.ro, trh_xmalloc(pf.info.n_models * sizeof(float)), embed_only, NULL, 0,
                     c.log_out ? &cl : NULL, c.echo_prompt};
    void *mem = NULL;
    if (c.task) {
        size_t bytes = tr_task_size(pf.info.n_models);
        tr_status st = posix_memalign(&mem, 64, bytes) ? TR_E_ARG
                                                        : tr_task_begin(pf.view, mem, bytes, &ctx.task);
        if (st != TR_OK) {
            r = trh_err("%s: %s: %s", c.pack, tr_status_name(st), tr_strerror(st));
            goto done;
        }
    }
    r = each_prompt(argc, argv, &src, route_one, &ctx);
    if (src.blank)
        fprintf(stderr, "tinyroute %s: %zu blank line%s skipped\n", cmd, src.blank,
                src.blank == 1 ? "" : "s");
    if (c.task && r == 0)
        r = print_task(&pf, ctx.task, &c.ro, ctx.skipped);
    if (c.log_out && trh_cli_log_finish(&cl, c.log_out))
        r = 1;
done:
    if (src.f != stdin)
        fclose(src.f);
    free(mem);
    free(ctx.pred);
    trh_packfile_close(&pf);
    return r;
}

int cmd_route(int argc, char **argv) { return run_route(argc, argv, 0); }
int cmd_embed(int argc, char **argv) { return run_route(argc, argv, 1); }

static const char eval_usage[] =
    "usage: tinyroute eval --pack PACK [--delta DELTA] --key PUBLIC.pem --data DIR\n"
    "                      [--split test|all] [--lambda L1,L2,...] [--k K] [--exact]\n"
    "                      [--method knn|cluster|learned-map] [--weighted]\n"
    "                      [--prior-strength A] [--min-counter N] [--min-delta-counter N]\n"
    "                      [--revoke KEYID]\n"
    "       tinyroute eval --pack PACK --key PUBLIC.pem --log LOG [--json]\n"
    "                      [--device-keys FILE [--allow-unauthenticated]]\n"
    "                      [--lambda L1,L2,...] [--k K] [--method ...]\n"
    "Routes the dataset's held-out prompts (split test, the default) and prints\n"
    "accuracy, mean cost and cloud share of the router at each lambda, beside\n"
    "always-on-device (best device model), always-best (best single model)\n"
    "and the oracle. Prompts with an unknown score for any model are skipped.\n"
    "With --log (a device outcome log, core/OUTCOME_LOG.md) instead: realised\n"
    "quality (mean logged outcome), mean cost, cloud share and per-model counts\n"
    "of the logged decisions, then the logged prompts re-routed by PACK at each\n"
    "lambda: exact cost and cloud share, and an estimated quality from the\n"
    "records whose logged model is the new choice (their count is printed).\n"
    "--device-keys FILE (lines DEVICE_ID HEX_KEY [revoked]; core/INTEGRATION.md)\n"
    "refuses (exit 1) a log whose device is unknown or revoked or whose MAC\n"
    "fails, and a version 1 (unauthenticated) log unless --allow-unauthenticated.\n";

/* The router's deferral curve over the held-out prompts (estimates P,
 * truth Y) as `tinyroute eval --data` draws it: the lambda sweep on costs
 * normalized to [0,1], joined by the upper hull. Area and Peak, beside
 * Pareto-random's over the single models (accuracy acc, cost cost). */
static void print_curve(const float *P, const float *Y, size_t n, uint32_t m,
                        const double *cost, const double *acc)
{
    double *cn = trh_xmalloc(m * sizeof *cn);
    trh_norm_costs(cost, m, cn);
    trh_curve *c = trh_xmalloc(2 * sizeof *c);
    trh_route_curve(P, Y, (uint32_t)n, m, cn, &c[0], NULL);
    trh_curve_hull(cn, acc, (int)m, &c[1]);
    printf("deferral curve (the lambda sweep of `eval --data`): Area %.4f, Peak %.4f; "
           "Pareto-random Area %.4f\n", c[0].area, c[0].peak, c[1].area);
    free(c);
    free(cn);
}

int cmd_eval(int argc, char **argv)
{
    int has_pack = 0;
    for (int i = 1; i < argc; i++)
        has_pack |= !strcmp(argv[i], "--pack") || !strncmp(argv[i], "--pack=", 7);
    if (!has_pack)
        return trh_eval_protocol(argc, argv);
    common c;
    int r = parse_common(argc, argv, eval_usage,
                         "pack key delta min-counter min-delta-counter revoke lambda k data split exact method weighted "
                         "prior-strength log json device-keys allow-unauthenticated", &c);
    if (r)
        return r < 0 ? 2 : 0;
    if (c.log_in && c.data) {
        free(c.keys);
        free(c.revoked);
        return trh_err("eval takes --data or --log, not both"), 2;
    }
    if (c.json && !c.log_in) {
        free(c.keys);
        free(c.revoked);
        return trh_err("eval --pack prints JSON with --log only"), 2;
    }
    if (!c.data && !c.log_in) {
        free(c.keys);
        free(c.revoked);
        fputs(eval_usage, stderr);
        return trh_err("eval needs --data or --log"), 2;
    }
    double lam[64];
    int n_lam = 0;
    char *ls = trh_xstrdup(c.lambdas ? c.lambdas : "0,0.02,0.05,0.1,0.2,0.5,1");
    for (char *tok = strtok(ls, ","); tok; tok = strtok(NULL, ",")) {
        if (n_lam == 64 || trh_parse_f64(tok, &lam[n_lam]) || lam[n_lam] < 0) {
            free(ls);
            free(c.keys);
            free(c.revoked);
            return trh_err("--lambda takes up to 64 numbers >= 0, comma-separated"), 2;
        }
        n_lam++;
    }
    free(ls);
    trh_packfile pf;
    trh_dataset ds;
    r = open_pack(&c, &pf);
    if (r)
        return 1;
    if (c.log_in) {
        trh_devkeys dk;
        if (c.device_keys && trh_devkeys_load(c.device_keys, &dk)) {
            trh_packfile_close(&pf);
            return 1;
        }
        dk.allow_v1 = c.allow_v1;
        r = trh_eval_log(&pf, c.log_in, c.device_keys ? &dk : NULL, &c.ro, lam, n_lam, c.json);
        if (c.device_keys)
            trh_devkeys_free(&dk);
        trh_packfile_close(&pf);
        return r;
    }
    if (trh_dataset_load(c.data, &ds)) {
        trh_packfile_close(&pf);
        return 1;
    }
    const uint32_t m = pf.info.n_models;
    /* Pack model j is dataset column col[j]. */
    size_t *col = trh_xmalloc(m * sizeof *col);
    tr_model_info *mi = trh_xmalloc(m * sizeof *mi);
    int best_dev = -1, best_all = -1;
    for (uint32_t j = 0; j < m; j++) {
        tr_pack_get_model(pf.view, j, &mi[j]);
        col[j] = ds.n_models;
        for (size_t t = 0; t < ds.n_models; t++)
            if (!strcmp(ds.models[t].name, mi[j].name))
                col[j] = t;
        if (col[j] == ds.n_models) {
            r = trh_err("%s: model %s of the pack is not in the dataset", c.data, mi[j].name);
            goto out;
        }
        if (mi[j].where == TR_DEVICE && (best_dev < 0 || mi[j].prior > mi[best_dev].prior))
            best_dev = (int)j;
        if (best_all < 0 || mi[j].prior > mi[best_all].prior)
            best_all = (int)j;
    }
    double *acc = trh_xcalloc((size_t)n_lam * 3, sizeof *acc); /* score, cost, cloud */
    double base[3][3] = {{0}}; /* device, best, oracle x score, cost, cloud */
    double *model_acc = trh_xcalloc(m, sizeof *model_acc), *model_cost = trh_xmalloc(m * sizeof *model_cost);
    size_t used = 0, skipped = 0, failed = 0;
    /* Every used prompt's estimates and truth, for the deferral curve. */
    float *P = trh_xmalloc(ds.n_prompts * (size_t)m * sizeof *P),
          *Y = trh_xmalloc(ds.n_prompts * (size_t)m * sizeof *Y);
    float *pred = trh_xmalloc(m * sizeof *pred);
    for (size_t i = 0; i < ds.n_prompts; i++) {
        const trh_ds_prompt *p = &ds.prompts[i];
        if (!c.split_all && p->split != TRH_SPLIT_TEST)
            continue;
        const float *row = ds.scores + i * ds.n_models;
        int unknown = 0;
        for (uint32_t j = 0; j < m; j++)
            unknown |= isnan(row[col[j]]);
        if (unknown) {
            skipped++;
            continue;
        }
        tr_result res[64];
        int ok = 1;
        for (int l = 0; l < n_lam && ok; l++) {
            tr_route_opts ro = c.ro;
            ro.lambda = trh_opts_lambda(lam[l]);
            const tr_query q = tr_query_text(p->text, strlen(p->text));
            const tr_route_out out = {pred, pf.info.n_models, NULL, 0, NULL, 0};
            tr_status st = tr_route(pf.view, pf.ctx, &q, &ro, &res[l], &out);
            if (st != TR_OK) {
                trh_err("%s: prompt %s: %s", c.data, p->id, tr_strerror(st));
                ok = 0;
            }
        }
        if (!ok) {
            failed++;
            continue;
        }
        for (uint32_t j = 0; j < m; j++) {
            P[used * m + j] = pred[j];
            Y[used * m + j] = row[col[j]];
        }
        used++;
        for (int l = 0; l < n_lam; l++) {
            acc[3 * l] += row[col[res[l].model]];
            acc[3 * l + 1] += res[l].cost;
            acc[3 * l + 2] += res[l].where == TR_CLOUD;
        }
        for (uint32_t j = 0; j < m; j++)
            model_acc[j] += row[col[j]];
        int oracle = -1;
        for (uint32_t j = 0; j < m; j++) {
            float s = row[col[j]];
            if (oracle < 0 || s > row[col[oracle]] ||
                (s == row[col[oracle]] && mi[j].cost < mi[oracle].cost))
                oracle = (int)j;
        }
        int pick[3] = {best_dev, best_all, oracle};
        for (int b = 0; b < 3; b++) {
            if (pick[b] < 0)
                continue;
            base[b][0] += row[col[pick[b]]];
            base[b][1] += mi[pick[b]].cost;
            base[b][2] += mi[pick[b]].where == TR_CLOUD;
        }
    }
    free(pred);
    if (!used) {
        free(P), free(Y);
        r = trh_err("%s: no held-out prompt to evaluate (%zu skipped)", c.data, skipped);
        free(acc);
        free(model_acc);
        free(model_cost);
        goto out;
    }
    printf("held-out prompts: %zu (skipped %zu with unknown scores, %zu failed)\n", used,
           skipped, failed);
    for (uint32_t j = 0; j < m; j++) {
        model_acc[j] /= (double)used;
        model_cost[j] = mi[j].cost;
    }
    printf("%-44s %9s %11s %11s %15s\n", "router", "accuracy", "mean cost", "cloud share",
           "Pareto-random");
    static const char *bn[3] = {"always on-device", "always best single model", "oracle"};
    for (int b = 0; b < 3; b++) {
        int j = b == 0 ? best_dev : b == 1 ? best_all : -1;
        char label[96];
        snprintf(label, sizeof label, "%s%s%s%s", bn[b], j >= 0 ? " (" : "",
                 j >= 0 ? mi[j].name : "", j >= 0 ? ")" : "");
        printf("%-44.44s %9.4f %11.3f %11.3f\n", label, base[b][0] / used, base[b][1] / used,
               base[b][2] / used);
    }
    for (int l = 0; l < n_lam; l++) {
        char label[64];
        /* The method that routed: the option's, or the pack's default. */
        const uint32_t meth = c.ro.method ? (uint32_t)c.ro.method : pf.info.default_method;
        snprintf(label, sizeof label, "%s router, lambda=%g",
                 meth == TR_METHOD_CLUSTER       ? "cluster"
                 : meth == TR_METHOD_LEARNED_MAP ? "learned-map"
                                                 : "kNN",
                 lam[l]);
        printf("%-44s %9.4f %11.3f %11.3f %15.4f\n", label, acc[3 * l] / used,
               acc[3 * l + 1] / used, acc[3 * l + 2] / used,
               trh_pareto_random(model_cost, model_acc, m, acc[3 * l + 1] / used));
    }
    print_curve(P, Y, used, m, model_cost, model_acc);
    free(P), free(Y);
    printf("(Pareto-random: the accuracy a random mix of single models reaches at the same mean "
           "cost, on these prompts)\n");
    free(acc);
    free(model_acc);
    free(model_cost);
    r = failed ? 1 : 0;
out:
    free(col);
    free(mi);
    trh_dataset_free(&ds);
    trh_packfile_close(&pf);
    return r;
}
