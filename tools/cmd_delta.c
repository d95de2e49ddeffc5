/* tinyroute add-model, retire-model and calibrate: signed delta packs over a
 * base pack (platform/tr_format.h, "Delta packs"). Each command starts from the
 * base (and the delta it already has, --delta), makes one change and writes
 * a new delta that carries the whole change from the base. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "dataset.h"
#include "keys.h"
#include "trh_fit.h"
#include "packfile.h"
#include "packwriter.h"
#include "tr_format.h"
#include "util.h"

/* What a delta holds, in host memory: psi is per added model (K floats
 * each), transposed to the format's row per cluster when written. */
typedef struct delta_state {
    int has_settings;
    uint32_t k;
    float lambda;
    float prior_strength; /* 0: the base's */
    uint8_t *retired; /* retire_bytes */
    uint32_t n_added;
    uint8_t *records, *correct, *valid;
    float *psi;
} delta_state;

/* The base pack's facts the delta depends on. */
typedef struct base_facts {
    uint32_t n_models, n_refs, dim, bit_stride, k_clusters, retire_bytes;
    float psi_prior; /* the strength the base's Psi was shrunk with */
    const int8_t *refs;
    double cmin, cmax;
} base_facts;

typedef struct delta_cmd {
    const char *pack, *delta, *key, *out;
    tr_pubkey *trust;
    size_t n_trust;
    tr_pubkey signer;
    uint64_t counter, expires_days;
    int has_counter, force, json;
    trh_packfile pf;
    base_facts b;
    delta_state st;
} delta_cmd;

/* --json: the written delta as inspect reads it, verified (it was applied to
 * the base's view before it was written). */
static void print_delta_json(const char *path, const trh_buf *d)
{
    cJSON *o = trh_inspect_json(path, d->data, d->len);
    if (!o)
        return; /* cannot happen for a delta that just verified; the message is printed */
    cJSON_ReplaceItemInObject(o, "verified", cJSON_CreateBool(1));
    char *txt = cJSON_PrintUnformatted(o);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(o);
}

/* Section of a verified pack or delta by type; NULL if absent. */
static const uint8_t *section(const uint8_t *p, uint32_t type, uint64_t *len, uint32_t *stride)
{
    uint32_t ns = tr_ld32(p + TR_H_N_SECTIONS);
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = p + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == type) {
            if (len)
                *len = tr_ld64(e + TR_S_LENGTH);
            if (stride)
                *stride = tr_ld32(e + TR_S_STRIDE);
            return p + tr_ld64(e + TR_S_OFFSET);
        }
    }
    return NULL;
}

static void base_facts_of(const trh_packfile *pf, base_facts *b)
{
    const uint8_t *p = pf->bytes;
    memset(b, 0, sizeof *b);
    b->n_models = tr_ld32(p + TR_H_N_MODELS);
    b->n_refs = pf->info.n_refs;
    b->dim = pf->info.dim;
    b->k_clusters = pf->info.n_clusters;
    if (b->k_clusters)
        b->psi_prior = tr_ldf32(section(p, TR_SEC_CLUSTERS, NULL, NULL) + TR_C_PSI_PRIOR);
    b->retire_bytes = (b->n_models + 63) / 64 * 8;
    b->refs = (const int8_t *)section(p, TR_SEC_REF_I8, NULL, NULL); /* blocks of 4 */
    section(p, TR_SEC_CORRECT_BITS, NULL, &b->bit_stride);
    const uint8_t *recs = section(p, TR_SEC_MODELS, NULL, NULL);
    b->cmin = INFINITY;
    b->cmax = -INFINITY;
    for (uint32_t m = 0; m < b->n_models; m++) {
        double c = tr_ldf32(recs + (size_t)m * TR_MODEL_REC_BYTES + TR_M_COST);
        b->cmin = fmin(b->cmin, c);
        b->cmax = fmax(b->cmax, c);
    }
}

/* The applied delta's contents (already verified by the device code). */
static void state_from_delta(const trh_packfile *pf, const base_facts *b, delta_state *s)
{
    memset(s, 0, sizeof *s);
    s->retired = trh_xcalloc(b->retire_bytes, 1);
    s->lambda = TR_LAMBDA_DEFAULT;
    if (!pf->delta)
        return;
    const uint8_t *d = pf->delta, *x;
    if ((x = section(d, TR_DSEC_SETTINGS, NULL, NULL))) {
        s->has_settings = 1;
        s->k = tr_ld32(x + TR_D_K);
        s->lambda = tr_ldf32(x + TR_D_LAMBDA);
        s->prior_strength = tr_ldf32(x + TR_D_PRIOR);
    }
    if ((x = section(d, TR_DSEC_RETIRE, NULL, NULL)))
        memcpy(s->retired, x, b->retire_bytes);
    uint32_t na = s->n_added = tr_ld32(d + TR_DH_N_ADDED);
    if (!na)
        return;
    s->records = trh_xmalloc((size_t)na * TR_MODEL_REC_BYTES);
    s->correct = trh_xmalloc((size_t)na * b->bit_stride);
    s->valid = trh_xmalloc((size_t)na * b->bit_stride);
    memcpy(s->records, section(d, TR_DSEC_MODELS, NULL, NULL), (size_t)na * TR_MODEL_REC_BYTES);
    memcpy(s->correct, section(d, TR_DSEC_CORRECT_BITS, NULL, NULL), (size_t)na * b->bit_stride);
    memcpy(s->valid, section(d, TR_DSEC_VALID_BITS, NULL, NULL), (size_t)na * b->bit_stride);
    s->psi = trh_xcalloc((size_t)na * (b->k_clusters ? b->k_clusters : 1), sizeof(float));
    if ((x = section(d, TR_DSEC_PSI, NULL, NULL)))
        for (uint32_t k = 0; k < b->k_clusters; k++)
            for (uint32_t m = 0; m < na; m++)
                s->psi[(size_t)m * b->k_clusters + k] = tr_ldf32(x + 4 * ((size_t)k * na + m));
}

static void state_free(delta_state *s)
{
    free(s->retired);
    free(s->records);
    free(s->correct);
    free(s->valid);
    free(s->psi);
}

enum { D_PACK = 256, D_DELTA, D_KEY, D_TRUST, D_OUT, D_COUNTER, D_EXPIRES, D_FORCE, D_HELP,
       D_JSON, D_FIRST_OWN };

/* Where a delta command's report goes: stdout, or stderr with --json (whose
 * document alone is on stdout). */
static FILE *say;

static const char common_help[] =
    "  --pack PACK         the base pack\n"
    "  --delta DELTA       the delta the base has now: its changes are kept\n"
    "  --key PRIVATE.pem   signs the new delta\n"
    "  --trust PUBLIC.pem  key(s) that verify PACK and DELTA (default: --key's)\n"
    "  --out FILE          the new delta (not overwritten without --force)\n"
    "  --counter N         its security counter, above DELTA's and below 2^64-1\n"
    "                      (default: DELTA's + 1, or 1 without --delta)\n"
    "  --expires-days D    it expires D days from now (default: never)\n"
    "  --json              the new delta as one JSON document on stdout (inspect\n"
    "                      --json's fields, verified: true); the report on stderr\n";

/* Parse the shared flags; own flags (val >= D_FIRST_OWN) go to own().
 * *own_dir and *own_file (pointers into ctx, or NULL) are the command's own
 * inputs, a dataset directory and a file, that own() may set: --out may be
 * none of them, nor any shared input (issue #18: --force never overwrites an
 * input). Returns -1 bad usage, 1 help printed, 0 ok. */
static int parse(int argc, char **argv, const char *usage, const struct option *own_opts,
                 int (*own)(int, const char *, void *), void *ctx, delta_cmd *c,
                 const char *const *own_dir, const char *const *own_file)
{
    /* Inputs: --pack, --delta, --key, each --trust (at most one per
     * argument), the command's own file. */
    const char *in[argc + 4];
    size_t n_in = 0;
    static const struct option shared[] = {
        {"pack", required_argument, 0, D_PACK}, {"delta", required_argument, 0, D_DELTA},
        {"key", required_argument, 0, D_KEY}, {"trust", required_argument, 0, D_TRUST},
        {"out", required_argument, 0, D_OUT}, {"counter", required_argument, 0, D_COUNTER},
        {"expires-days", required_argument, 0, D_EXPIRES}, {"force", no_argument, 0, D_FORCE},
        {"json", no_argument, 0, D_JSON}, {"help", no_argument, 0, D_HELP}};
    struct option opts[32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof shared / sizeof *shared; i++)
        opts[n++] = shared[i];
    for (const struct option *o = own_opts; o->name && n < 31; o++)
        opts[n++] = *o;
    opts[n] = (struct option){0, 0, 0, 0};
    memset(c, 0, sizeof *c);
    say = stdout;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case D_PACK: c->pack = optarg; break;
        case D_DELTA: c->delta = optarg; break;
        case D_KEY: c->key = optarg; break;
        case D_TRUST:
            if (trh_keys_add(optarg, &c->trust, &c->n_trust))
                return -1;
            in[n_in++] = optarg;
            break;
        case D_OUT: c->out = optarg; break;
        case D_COUNTER:
            if (trh_parse_u64(optarg, &c->counter))
                return trh_err("--counter must be a non-negative integer, not '%s'", optarg), -1;
            c->has_counter = 1;
            break;
        case D_EXPIRES:
            if (trh_parse_u64(optarg, &c->expires_days) || c->expires_days == 0 ||
                c->expires_days > 36500)
                return trh_err("--expires-days must be in 1..36500, not '%s'", optarg), -1;
            break;
        case D_FORCE: c->force = 1; break;
        case D_JSON: c->json = 1, say = stderr; break;
        case D_HELP: fputs(usage, stdout); fputs(common_help, stdout); return 1;
        default:
            if (o == '?')
                return trh_bad_option(argv), -1;
            if (o >= D_FIRST_OWN && own(o, optarg, ctx) == 0)
                break;
            fputs(usage, stderr);
            return -1;
        }
    }
    if (!c->pack || !c->key || !c->out || optind != argc) {
        trh_err("%s needs --pack, --key and --out (and no other arguments)", argv[0]);
        fputs(usage, stderr);
        return -1;
    }
    in[n_in++] = c->pack;
    in[n_in++] = c->delta;
    in[n_in++] = c->key;
    in[n_in++] = own_file ? *own_file : NULL;
    if (trh_out_not_input_ds("--out", c->out, in, n_in, own_dir, own_dir ? 1 : 0, NULL))
        return -1;
    if (!c->force && access(c->out, F_OK) == 0)
        return trh_err("%s exists; not overwriting it (use --force)", c->out), -1;
    return 0;
}

/* The new delta's counter: the served delta's + 1 (1 without --delta), or
 * --counter, which must be above the served delta's: a device that applied
 * DELTA refuses anything not strictly above it for the same base
 * (core/INTEGRATION.md). 2^64-1 would leave this base no next delta. */
static int pick_counter(delta_cmd *c)
{
    const uint64_t top = UINT64_MAX;
    uint64_t served = c->pf.delta ? c->pf.delta_info.security_counter : 0;
    if (c->pf.delta && !c->has_counter && served >= top - 1)
        return trh_err("%s has counter %llu: no counter is left for a next delta of this base "
                      "(2^64-1 is refused); build a new base pack instead",
                      c->delta, (unsigned long long)served);
    if (!c->has_counter)
        c->counter = c->pf.delta ? served + 1 : 1;
    else if (c->pf.delta && c->counter <= served)
        return trh_err("--counter %llu is not above the counter of %s (%llu): a device serving "
                      "that delta refuses this one (TR_E_ROLLBACK); use at least %llu or leave "
                      "--counter out",
                      (unsigned long long)c->counter, c->delta, (unsigned long long)served,
                      (unsigned long long)(served + 1));
    if (c->counter == top)
        return trh_err("--counter 18446744073709551615 (2^64-1) is refused: a device that "
                      "accepted it would refuse every later delta of this base for ever");
    c->has_counter = 1;
    return 0;
}

/* Verify and load the base (+ delta); read the state to change. */
static int open_base(delta_cmd *c)
{
    /* The signer's public key: sign a throwaway digest to get it. */
    uint8_t h[32] = {0}, sig[TR_SIG_MAX_BYTES];
    size_t sl;
    if (trh_key_sign(c->key, h, sig, &sl, &c->signer) != 0)
        return 1;
    if (!c->n_trust) {
        c->trust = trh_xmalloc(sizeof *c->trust);
        c->trust[0] = c->signer;
        c->n_trust = 1;
    }
    tr_trust trust = {.keys = c->trust, .n_keys = c->n_trust};
    if (trh_packfile_open(c->pack, c->delta, &trust, &c->pf) != 0)
        return 1;
    base_facts_of(&c->pf, &c->b);
    state_from_delta(&c->pf, &c->b, &c->st);
    return pick_counter(c);
}

static int write_delta(delta_cmd *c)
{
    const base_facts *b = &c->b;
    delta_state *s = &c->st;
    int any_retired = 0;
    for (uint32_t i = 0; i < b->retire_bytes; i++)
        any_retired |= s->retired[i] != 0;
    float *psi_rows = trh_xcalloc((size_t)b->k_clusters * s->n_added + 1, sizeof(float));
    for (uint32_t k = 0; k < b->k_clusters; k++)
        for (uint32_t m = 0; m < s->n_added; m++)
            psi_rows[(size_t)k * s->n_added + m] = s->psi[(size_t)m * b->k_clusters + k];
    time_t now = time(NULL);
    trh_delta_spec spec = {
        .security_counter = c->counter, /* pick_counter */
        .created_unix = (uint64_t)now,
        .expires_unix = c->expires_days ? (uint64_t)now + c->expires_days * 86400 : 0,
        .n_base_models = b->n_models, .n_base_refs = b->n_refs, .n_clusters = b->k_clusters,
        .bit_stride = b->bit_stride, .has_settings = s->has_settings, .k = s->k,
        .lambda = s->lambda, .prior_strength = s->prior_strength, .retired = any_retired ? s->retired : NULL,
        .n_added = s->n_added, .records = s->records, .correct = s->correct,
        .valid = s->valid, .psi = psi_rows};
    memcpy(spec.base_hash, c->pf.info.pack_hash, 32);
    trh_buf out = {0};
    trh_delta_write(&spec, &out);
    free(psi_rows);
    int r = trh_pack_sign(&out, c->key);
    if (r == 0) {
        /* Check the delta the way a device that trusts its signer will:
         * views of its own over one in-RAM counter store, which has served
         * the given delta first (so the new counter must be above). */
        tr_counter_slot slots[2];
        memset(slots, 0, sizeof slots);
        tr_counter_store ram;
        tr_counter_store_ram(&ram, slots);
        tr_trust base_trust = {.keys = c->trust, .n_keys = c->n_trust, .counters = &ram},
                 trust = {.keys = &c->signer, .n_keys = 1, .counters = &ram};
        void *mem[3] = {NULL, NULL, NULL};
        const tr_pack *base = NULL, *v = NULL;
        tr_status st = TR_OK;
        for (int i = 0; i < 3 && st == TR_OK; i++)
            if (posix_memalign(&mem[i], 64, tr_pack_size()) != 0)
                st = TR_E_ARG;
        if (st == TR_OK)
            st = tr_pack_open(mem[0], tr_pack_size(), c->pf.bytes, c->pf.len, &base_trust, &base);
        if (st == TR_OK && c->pf.delta)
            st = tr_pack_apply_delta(base, c->pf.delta, c->pf.delta_len, &base_trust, mem[1],
                                     tr_pack_size(), &v);
        if (st == TR_OK)
            st = tr_pack_apply_delta(base, out.data, out.len, &trust, mem[2], tr_pack_size(), &v);
        if (st != TR_OK)
            r = trh_err("the new delta does not verify (%s: %s)", tr_status_name(st),
                       tr_strerror(st));
        for (int i = 0; i < 3; i++)
            free(mem[i]);
    }
    if (r == 0)
        r = trh_write_file_atomic(c->out, out.data, out.len);
    if (r == 0)
        fprintf(say, "wrote %s: %zu bytes, counter %llu, %u model(s) added, %s retired%s\n", c->out,
               out.len, (unsigned long long)spec.security_counter, s->n_added,
               any_retired ? "some" : "none", s->has_settings ? ", settings" : "");
    if (r == 0 && !s->n_added && !any_retired && !s->has_settings)
        fprintf(say, "(no change from the base: it serves the base alone and, by its counter, keeps "
               "%s from being applied again)\n", c->delta ? c->delta : "an older delta");
    if (r == 0 && c->json)
        print_delta_json(c->out, &out);
    trh_buf_free(&out);
    return r;
}

static void cmd_done(delta_cmd *c)
{
    state_free(&c->st);
    if (c->pf.bytes)
        trh_packfile_close(&c->pf);
    free(c->trust);
}

/* The embedder's answer to a prompt of unknown words. */
static int all_zero(const int8_t *q, uint32_t dim)
{
    for (uint32_t d = 0; d < dim; d++)
        if (q[d])
            return 0;
    return 1;
}

/* Index of a served model by name, or -1. */
static int served_model(const trh_packfile *pf, const char *name)
{
    for (uint32_t m = 0; m < pf->info.n_models; m++) {
        tr_model_info mi;
        tr_pack_get_model(pf->view, m, &mi);
        if (!strcmp(mi.name, name))
            return (int)m;
    }
    return -1;
}

/* ---- add-model ---- */

typedef struct add_opts {
    const char *data;
    const char **names; /* heap: as many --model as the delta format takes */
    int n_names;
    int all_splits;
} add_opts;

enum { A_DATA = D_FIRST_OWN, A_MODEL, A_SPLIT };

static int add_own(int o, const char *arg, void *ctx)
{
    add_opts *a = ctx;
    switch (o) {
    case A_DATA: a->data = arg; return 0;
    case A_MODEL:
        if (a->n_names == (int)TR_DELTA_MAX_ADDED)
            return trh_err("at most %u --model per delta", TR_DELTA_MAX_ADDED);
        a->names = trh_xrealloc(a->names, (size_t)(a->n_names + 1) * sizeof *a->names);
        a->names[a->n_names++] = arg;
        return 0;
    case A_SPLIT:
        if (strcmp(arg, "all") && strcmp(arg, "train"))
            return trh_err("--split must be train or all, not '%s'", arg);
        a->all_splits = !strcmp(arg, "all");
        return 0;
    }
    return 1;
}

/* The base's reference rows, row-major (g_dim bytes each), for sorting. */
static const int8_t *g_rows;
static uint32_t g_dim;
static int cmp_rows(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    int c = memcmp(g_rows + (size_t)i * g_dim, g_rows + (size_t)j * g_dim, g_dim);
    return c ? c : (i > j) - (i < j);
}

/* The references whose int8 row equals q: [*lo, *hi) of the sorted order. */
static void find_rows(const uint32_t *order, uint32_t n, const int8_t *q, uint32_t *lo,
                      uint32_t *hi)
{
    uint32_t a = 0, b = n;
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        if (memcmp(g_rows + (size_t)order[mid] * g_dim, q, g_dim) < 0)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    while (a < n && memcmp(g_rows + (size_t)order[a] * g_dim, q, g_dim) == 0)
        a++;
    *hi = a;
}

static const char add_usage[] =
    "usage: tinyroute add-model --pack PACK [--delta DELTA] --key PRIVATE.pem --out FILE\n"
    "                           --data DIR --model NAME [--model NAME ...] [--split train|all]\n"
    "Adds models that the base pack has never seen, from their scores on a small\n"
    "labelled set (DIR, in the dataset layout; the model's cost and where come\n"
    "from its models.csv): for kNN, their correctness on the labelled prompts\n"
    "that are references of the base pack; for cluster routing, their error rate\n"
    "in each cluster (Jitkrittum et al. 2025). Prompts of split test are left\n"
    "out unless --split all.\n";

int cmd_add_model(int argc, char **argv)
{
    static const struct option own[] = {{"data", required_argument, 0, A_DATA},
                                        {"model", required_argument, 0, A_MODEL},
                                        {"split", required_argument, 0, A_SPLIT},
                                        {0, 0, 0, 0}};
    add_opts a = {0};
    delta_cmd c;
    int r = parse(argc, argv, add_usage, own, add_own, &a, &c, &a.data, NULL);
    if (r)
        return free(c.trust), free(a.names), r < 0 ? 2 : 0;
    if (!a.data || !a.n_names) {
        free(c.trust);
        free(a.names);
        return trh_err("add-model needs --data and --model"), fputs(add_usage, stderr), 2;
    }
    trh_dataset ds = {0};
    uint32_t *order = NULL;
    int8_t *q = NULL, *base_rows = NULL;
    double *sum = NULL, *cnt = NULL;
    if ((r = open_base(&c)) != 0)
        goto done;
    /* The device's limits, before the labelled set is read and embedded. */
    if (c.st.n_added + (uint64_t)a.n_names > TR_DELTA_MAX_ADDED) {
        r = trh_err("%s adds %u model(s) already: a delta adds at most %u (TR_DELTA_MAX_ADDED), "
                   "not %u more", c.delta, c.st.n_added, TR_DELTA_MAX_ADDED, a.n_names);
        goto done;
    }
    if ((uint64_t)c.b.n_models + c.st.n_added + (uint64_t)a.n_names > TR_MODELS_MAX) {
        char what[96];
        snprintf(what, sizeof what, "base %u + added %u", c.b.n_models,
                 c.st.n_added + (uint32_t)a.n_names);
        r = trh_models_max_err(c.pack, what, (uint64_t)c.b.n_models + c.st.n_added + a.n_names,
                              "delta");
        goto done;
    }
    if ((r = trh_dataset_load(a.data, &ds)) != 0)
        goto done;
    const base_facts *b = &c.b;
    const uint32_t kc = b->k_clusters;
    /* Embed the labelled prompts once; find their reference rows. */
    order = trh_xmalloc(b->n_refs * sizeof *order);
    for (uint32_t i = 0; i < b->n_refs; i++)
        order[i] = i;
    base_rows = trh_xmalloc((size_t)b->n_refs * b->dim);
    const tr_refs base_refs = {b->n_refs, b->dim, b->refs, NULL};
    for (uint32_t i = 0; i < b->n_refs; i++)
        tr_refs_get_row(&base_refs, i, base_rows + (size_t)i * b->dim);
    g_rows = base_rows;
    g_dim = b->dim;
    qsort(order, b->n_refs, sizeof *order, cmp_rows);
    q = trh_xmalloc((size_t)ds.n_prompts * b->dim);
    uint32_t *cluster = trh_xcalloc(ds.n_prompts, sizeof *cluster);
    uint8_t *usable = trh_xcalloc(ds.n_prompts, 1);
    for (size_t i = 0; i < ds.n_prompts; i++) {
        if (!a.all_splits && ds.prompts[i].split == TRH_SPLIT_TEST)
            continue;
        int8_t *qi = q + i * b->dim;
        const char *t = ds.prompts[i].text;
        if (tr_embed(c.pf.view, c.pf.ctx, t, strlen(t), qi, b->dim) != TR_OK ||
            all_zero(qi, b->dim))
            continue; /* no known word: says nothing about the model */
        usable[i] = 1;
        if (kc) {
            tr_route_opts ro = {.lambda = 0, .method = TR_METHOD_CLUSTER};
            tr_result res;
            const tr_query qq = tr_query_i8(c.pf.info.embedder, qi, b->dim);
            if (tr_route(c.pf.view, c.pf.ctx, &qq, &ro, &res, NULL) == TR_OK)
                cluster[i] = res.cluster;
        }
    }
    /* Prompt i is reference ref_of[i] when its row is one of the base's.
     * Equal rows (a question asked twice) pair up in order, so the base's
     * own data gives every reference its own label back. */
    uint32_t *ref_of = trh_xmalloc(ds.n_prompts * sizeof *ref_of);
    uint8_t *taken = trh_xcalloc(b->n_refs, 1);
    for (size_t i = 0; i < ds.n_prompts; i++) {
        ref_of[i] = UINT32_MAX;
        if (!usable[i])
            continue;
        uint32_t lo, hi;
        find_rows(order, b->n_refs, q + i * b->dim, &lo, &hi);
        for (uint32_t j = lo; j < hi; j++)
            if (!taken[order[j]]) {
                taken[order[j]] = 1;
                ref_of[i] = order[j];
                break;
            }
    }
    free(taken);
    sum = trh_xmalloc((kc + 1) * sizeof *sum);
    cnt = trh_xmalloc((kc + 1) * sizeof *cnt);
    for (int n = 0; n < a.n_names && r == 0; n++) {
        const char *name = a.names[n];
        size_t col = ds.n_models;
        for (size_t j = 0; j < ds.n_models; j++)
            if (!strcmp(ds.models[j].name, name))
                col = j;
        if (col == ds.n_models) {
            r = trh_err("%s: no model '%s' in its models.csv", a.data, name);
            break;
        }
        int in_base = 0;
        const uint8_t *recs = section(c.pf.bytes, TR_SEC_MODELS, NULL, NULL);
        for (uint32_t m = 0; m < b->n_models; m++)
            in_base |= !strcmp((const char *)recs + (size_t)m * TR_MODEL_REC_BYTES, name);
        if (in_base || served_model(&c.pf, name) >= 0) {
            r = trh_err("'%s' is already a model of this pack%s; an added model needs a new name",
                       name, in_base ? " (maybe retired)" : "");
            break;
        }
        memset(sum, 0, (kc + 1) * sizeof *sum);
        memset(cnt, 0, (kc + 1) * sizeof *cnt);
        uint32_t labelled = 0, on_refs = 0;
        for (size_t i = 0; i < ds.n_prompts; i++) {
            float v = ds.scores[i * ds.n_models + col];
            if (!usable[i] || isnan(v))
                continue;
            labelled++;
            sum[kc] += v;
            cnt[kc] += 1;
            if (kc) {
                sum[cluster[i]] += v;
                cnt[cluster[i]] += 1;
            }
            on_refs += ref_of[i] != UINT32_MAX;
        }
        if (labelled == 0) {
            r = trh_err("'%s' has no known score on a usable prompt of %s", name, a.data);
            break;
        }
        delta_state *s = &c.st;
        uint32_t m = s->n_added++;
        s->records = trh_xrealloc(s->records, (size_t)s->n_added * TR_MODEL_REC_BYTES);
        s->correct = trh_xrealloc(s->correct, (size_t)s->n_added * b->bit_stride);
        s->valid = trh_xrealloc(s->valid, (size_t)s->n_added * b->bit_stride);
        s->psi = trh_xrealloc(s->psi, (size_t)s->n_added * (kc ? kc : 1) * sizeof(float));
        uint8_t *rec = s->records + (size_t)m * TR_MODEL_REC_BYTES;
        uint8_t *cor = s->correct + (size_t)m * b->bit_stride,
                *val = s->valid + (size_t)m * b->bit_stride;
        memset(rec, 0, TR_MODEL_REC_BYTES);
        memset(cor, 0, b->bit_stride);
        memset(val, 0, b->bit_stride);
        const trh_ds_model *dm = &ds.models[col];
        double prior = sum[kc] / cnt[kc];
        memcpy(rec + TR_M_NAME, name, strlen(name));
        tr_stf32(rec + TR_M_COST, (float)dm->cost);
        /* On the base's linear scale, so utilities stay comparable; a model
         * dearer than any base model lands above 1. */
        tr_stf32(rec + TR_M_COST_NORM,
                 b->cmax > b->cmin ? (float)((dm->cost - b->cmin) / (b->cmax - b->cmin)) : 0.0f);
        tr_stf32(rec + TR_M_PRIOR, (float)prior);
        tr_st32(rec + TR_M_WHERE, (uint32_t)dm->where);
        for (size_t i = 0; i < ds.n_prompts; i++) {
            float v = ds.scores[i * ds.n_models + col];
            uint32_t j = ref_of[i];
            if (j == UINT32_MAX || isnan(v))
                continue;
            val[j >> 3] |= (uint8_t)(1u << (j & 7));
            if (v >= 0.5f)
                cor[j >> 3] |= (uint8_t)(1u << (j & 7));
        }
        /* As the base's Psi: shrunk toward the model's mean error with the
         * base's strength, so added and base models are judged alike. */
        uint32_t covered = 0;
        for (uint32_t k = 0; k < kc; k++) {
            covered += cnt[k] > 0;
            s->psi[(size_t)m * kc + k] =
                trh_psi_estimate(sum[k], (double)cnt[k], prior, b->psi_prior);
        }
        fprintf(say, "%s: %u labelled prompts (prior %.3f), %u of them references of the base "
               "(for kNN)", name, labelled, prior, on_refs);
        if (kc)
            fprintf(say, "; %u of %u clusters seen", covered, kc);
        fprintf(say, "\n");
        if (on_refs == 0)
            fprintf(stderr, "tinyroute: warning: no labelled prompt of '%s' is a reference of "
                            "the base: kNN falls back to its prior\n", name);
    }
    free(ref_of);
    free(cluster);
    free(usable);
    if (r == 0)
        r = write_delta(&c);
done:
    free(order);
    free(q);
    free(base_rows);
    free(sum);
    free(cnt);
    trh_dataset_free(&ds);
    cmd_done(&c);
    free(a.names);
    return r ? 1 : 0;
}

/* ---- retire-model ---- */

static const char retire_usage[] =
    "usage: tinyroute retire-model --pack PACK [--delta DELTA] --key PRIVATE.pem --out FILE\n"
    "                              --model NAME [--model NAME ...]\n"
    "Retires models: the router never chooses them again. A base model is marked\n"
    "retired; a model that DELTA added is dropped from the new delta.\n";

int cmd_retire_model(int argc, char **argv)
{
    static const struct option own[] = {{"model", required_argument, 0, A_MODEL}, {0, 0, 0, 0}};
    add_opts a = {0};
    delta_cmd c;
    int r = parse(argc, argv, retire_usage, own, add_own, &a, &c, NULL, NULL);
    if (r)
        return free(c.trust), free(a.names), r < 0 ? 2 : 0;
    if (!a.n_names) {
        free(c.trust);
        return trh_err("retire-model needs --model"), fputs(retire_usage, stderr), 2;
    }
    if ((r = open_base(&c)) != 0)
        goto done;
    delta_state *s = &c.st;
    const uint32_t mb = c.b.n_models, kc = c.b.k_clusters, bs = c.b.bit_stride;
    const uint8_t *base_recs = section(c.pf.bytes, TR_SEC_MODELS, NULL, NULL);
    for (int n = 0; n < a.n_names && r == 0; n++) {
        const char *name = a.names[n];
        int m = -1;
        for (uint32_t i = 0; i < mb; i++)
            if (!strcmp((const char *)base_recs + (size_t)i * TR_MODEL_REC_BYTES, name))
                m = (int)i;
        if (m >= 0) {
            if (s->retired[m >> 3] >> (m & 7) & 1) {
                r = trh_err("'%s' is retired already", name);
                break;
            }
            s->retired[m >> 3] |= (uint8_t)(1u << (m & 7));
            fprintf(say, "retired %s (a base model)\n", name);
            continue;
        }
        for (uint32_t i = 0; i < s->n_added; i++)
            if (!strcmp((const char *)s->records + (size_t)i * TR_MODEL_REC_BYTES, name))
                m = (int)i;
        if (m < 0) {
            r = trh_err("no model '%s' in %s%s%s", name, c.pack, c.delta ? " + " : "",
                       c.delta ? c.delta : "");
            break;
        }
        /* An added model leaves the delta: close its gap in every array. */
        uint32_t j = (uint32_t)m, tail = s->n_added - j - 1;
        memmove(s->records + (size_t)j * TR_MODEL_REC_BYTES,
                s->records + (size_t)(j + 1) * TR_MODEL_REC_BYTES, (size_t)tail * TR_MODEL_REC_BYTES);
        memmove(s->correct + (size_t)j * bs, s->correct + (size_t)(j + 1) * bs, (size_t)tail * bs);
        memmove(s->valid + (size_t)j * bs, s->valid + (size_t)(j + 1) * bs, (size_t)tail * bs);
        if (kc)
            memmove(s->psi + (size_t)j * kc, s->psi + (size_t)(j + 1) * kc,
                    (size_t)tail * kc * sizeof(float));
        s->n_added--;
        fprintf(say, "dropped %s (added by %s)\n", name, c.delta);
    }
    if (r == 0)
        r = write_delta(&c);
done:
    cmd_done(&c);
    free(a.names);
    return r ? 1 : 0;
}

/* ---- calibrate ---- */

typedef struct cal_opts {
    const char *prompts;
    double share;
    int has_share;
    tr_method method;
} cal_opts;

enum { C_PROMPTS = D_FIRST_OWN + 10, C_SHARE, C_METHOD };

static int cal_own(int o, const char *arg, void *ctx)
{
    cal_opts *a = ctx;
    switch (o) {
    case C_PROMPTS: a->prompts = arg; return 0;
    case C_SHARE:
        if (trh_parse_f64(arg, &a->share) || a->share < 0 || a->share > 1)
            return trh_err("--cloud-share must be a number in [0,1], not '%s'", arg);
        a->has_share = 1;
        return 0;
    case C_METHOD:
        if (!strcmp(arg, "knn"))
            a->method = TR_METHOD_KNN;
        else if (!strcmp(arg, "cluster"))
            a->method = TR_METHOD_CLUSTER;
        else if (!strcmp(arg, "learned-map"))
            a->method = TR_METHOD_LEARNED_MAP;
        else
            return trh_err("--method must be knn, cluster or learned-map, not '%s'", arg);
        return 0;
    }
    return 1;
}

typedef struct traffic {
    const tr_pack *view;
    tr_ctx *ctx;
    const char *embedder;
    uint32_t dim;
    size_t n;
    int8_t *q;          /* n x dim; all zero: no known word */
    const char *prior_text; /* one prompt of unknown words, if any */
    size_t n_prior;
    tr_method method;
} traffic;

/* Share of the traffic a route at lambda sends to the cloud. */
static double cloud_share(const traffic *t, double lambda, tr_status *st)
{
    tr_route_opts ro = {.lambda = trh_opts_lambda(lambda), .method = t->method};
    tr_result res;
    size_t cloud = 0;
    *st = TR_OK;
    for (size_t i = 0; i < t->n && *st == TR_OK; i++) {
        const int8_t *qi = t->q + i * t->dim;
        if (all_zero(qi, t->dim))
            continue;
        const tr_query q = tr_query_i8(t->embedder, qi, t->dim);
        *st = tr_route(t->view, t->ctx, &q, &ro, &res, NULL);
        cloud += res.where == TR_CLOUD;
    }
    /* Prompts of unknown words are routed on priors alone: all alike. */
    if (t->n_prior && *st == TR_OK) {
        const tr_query q = tr_query_text(t->prior_text, strlen(t->prior_text));
        *st = tr_route(t->view, t->ctx, &q, &ro, &res, NULL);
        if (res.where == TR_CLOUD)
            cloud += t->n_prior;
    }
    return (double)cloud / (double)t->n;
}

static const char calibrate_usage[] =
    "usage: tinyroute calibrate --pack PACK [--delta DELTA] --key PRIVATE.pem --out FILE\n"
    "                           --prompts TRAFFIC.jsonl --cloud-share S\n"
    "                           [--method knn|cluster|learned-map]\n"
    "Finds the lambda at which the router sends the share S (0..1) of the prompts\n"
    "in TRAFFIC (one JSON object with a \"text\" per line: your own users' prompts;\n"
    "- reads them from standard input)\n"
    "to cloud models, and writes it as the default lambda of a signed delta.\n"
    "The share moves in steps (one prompt at a time): the closest reachable share\n"
    "not above S is taken, or the closest one if none is. --method: the pack's\n"
    "default method unless given.\n";

int cmd_calibrate(int argc, char **argv)
{
    static const struct option own[] = {{"prompts", required_argument, 0, C_PROMPTS},
                                        {"cloud-share", required_argument, 0, C_SHARE},
                                        {"method", required_argument, 0, C_METHOD},
                                        {0, 0, 0, 0}};
    cal_opts a = {0};
    delta_cmd c;
    int r = parse(argc, argv, calibrate_usage, own, cal_own, &a, &c, NULL, &a.prompts);
    if (r)
        return free(c.trust), r < 0 ? 2 : 0;
    if (!a.prompts || !a.has_share) {
        free(c.trust);
        return trh_err("calibrate needs --prompts and --cloud-share"),
               fputs(calibrate_usage, stderr), 2;
    }
    size_t n = 0;
    char **text = NULL;
    traffic t = {0};
    if ((r = open_base(&c)) != 0 || !(text = trh_read_prompts(a.prompts, &n)) || n == 0) {
        r = 1;
        goto done;
    }
    t = (traffic){c.pf.view, c.pf.ctx, c.pf.info.embedder, c.pf.info.dim, n,
                  trh_xcalloc(n, c.pf.info.dim), NULL, 0, a.method};
    for (size_t i = 0; i < n; i++) {
        tr_status st = tr_embed(t.view, t.ctx, text[i], strlen(text[i]), t.q + i * t.dim, t.dim);
        if (st != TR_OK) {
            r = trh_err("%s: prompt %zu: %s", a.prompts, i + 1, tr_strerror(st));
            goto done;
        }
        if (all_zero(t.q + i * t.dim, t.dim)) {
            t.prior_text = text[i];
            t.n_prior++;
        }
    }
    /* Bisection: the share falls (in steps) as lambda rises. */
    tr_status st;
    double lo = 0, hi = 1, s_lo = cloud_share(&t, lo, &st), s_hi = 0;
    double best = 0, best_share = s_lo;
    if (st == TR_OK && s_lo > a.share) {
        while ((s_hi = cloud_share(&t, hi, &st)) > a.share && st == TR_OK && hi < 1e4)
            hi *= 2;
        best = hi;
        best_share = s_hi;
        for (int it = 0; it < 60 && st == TR_OK; it++) {
            double mid = 0.5 * (lo + hi), sm = cloud_share(&t, mid, &st);
            if (sm > a.share)
                lo = mid;
            else
                hi = mid, best = mid, best_share = sm;
        }
        if (best_share > a.share) /* never got down to S: take the closest */
            best = hi;
    }
    if (st != TR_OK) {
        r = trh_err("routing the traffic failed: %s", tr_strerror(st));
        goto done;
    }
    fprintf(say, "lambda %.6g: cloud share %.4f of %zu prompts (asked %.4f%s)\n", best, best_share, n,
           a.share, t.n_prior ? "; prompts of unknown words follow the priors" : "");
    if (fabs(best_share - a.share) > 0.02)
        fprintf(stderr, "tinyroute: warning: the closest reachable share is %.4f\n", best_share);
    c.st.has_settings = 1;
    c.st.lambda = (float)best;
    r = write_delta(&c);
done:
    if (text)
        for (size_t i = 0; i < n; i++)
            free(text[i]);
    free(text);
    free(t.q);
    cmd_done(&c);
    return r ? 1 : 0;
}
