/* `tinyroute import`: turn one of the shared benchmark data sets into
 * tinyroute's dataset layout (tools/DATASET.md). */
#include "cmds.h"
#include "dataset.h"
#include "tinyroute.h"
#include "tr_format.h" /* tr_fnv1a */
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A JSON list file (routerdc-7models) is parsed whole: its memory is a few
 * times this. Lines of JSONL and CSV files are bounded by TRH_LINE_MAX. */
#define TR_JSON_FILE_MAX ((uint64_t)256 << 20)

static const char usage[] =
    "usage: tinyroute import FORMAT SRC_DIR DST_DIR [options]\n"
    "\n"
    "Convert a benchmark data set into a tinyroute dataset directory\n"
    "(prompts.jsonl, correctness.csv, models.csv).\n"
    "\n"
    "formats:\n"
    "  mmlu-pro-32        questions.jsonl + correctness.csv + models.csv;\n"
    "                     cost = params_b (billions of parameters); models\n"
    "                     without params_b (API models) are dropped\n"
    "  llmrouter-9models  items.jsonl + models.csv; cost = input price in USD\n"
    "                     per 1M tokens; test items repeating a train question\n"
    "                     are dropped\n"
    "  routerdc-7models   *.json lists of {question, scores}; cost = parameter\n"
    "                     count in billions (a proxy: the source has no costs)\n"
    "\n"
    "options:\n"
    "  --limit N          keep N prompts, stratified by task (deterministic)\n"
    "  --test-share X     share of test prompts when the source has no split\n"
    "                     (default 0.2): test if FNV-1a(id) % 1000 < X*1000\n"
    "  --device NAME      make NAME an on-device model (repeatable); default:\n"
    "                     the cheapest model (ties: smaller, then by name)\n"
    "  --force            overwrite an existing dataset in DST_DIR (DST_DIR\n"
    "                     may never be, be inside or contain SRC_DIR)\n"
    "  --json             what was written as one JSON document on stdout\n"
    "  --help             this text\n"
    "\n"
    "memory: a JSONL/CSV line longer than 16 MiB is refused without reading the\n"
    "rest of it; a *.json list file (routerdc) may be at most 256 MiB.\n";

/* The dataset being built. */
typedef struct imp {
    trh_dataset ds;
    size_t cap;
    double *size;          /* per model: the device tie-break */
    const char *cost_unit; /* for the summary line */
} imp;

static size_t imp_model(imp *im, const char *name, double cost, double size)
{
    trh_dataset *ds = &im->ds;
    ds->models = trh_xrealloc(ds->models, (ds->n_models + 1) * sizeof *ds->models);
    im->size = trh_xrealloc(im->size, (ds->n_models + 1) * sizeof *im->size);
    ds->models[ds->n_models] = (trh_ds_model){trh_xstrdup(name), cost, TR_CLOUD};
    im->size[ds->n_models] = size;
    return ds->n_models++;
}

/* Appends a prompt (strings copied); all models must exist already. Returns
 * its score row, all unknown. */
static float *imp_prompt(imp *im, const char *id, const char *text, const char *task, int split)
{
    trh_dataset *ds = &im->ds;
    size_t nm = ds->n_models;
    if (ds->n_prompts == im->cap) {
        im->cap = im->cap ? 2 * im->cap : 1024;
        ds->prompts = trh_xrealloc(ds->prompts, im->cap * sizeof *ds->prompts);
        ds->scores = trh_xrealloc(ds->scores, im->cap * nm * sizeof(float));
    }
    ds->prompts[ds->n_prompts] = (trh_ds_prompt){trh_xstrdup(id), trh_xstrdup(text), trh_xstrdup(task), split};
    float *row = ds->scores + ds->n_prompts++ * nm;
    for (size_t m = 0; m < nm; m++)
        row[m] = NAN;
    return row;
}

/* Keeps the prompts with keep[i] set, in their order. */
static void imp_keep(imp *im, const unsigned char *keep)
{
    trh_dataset *ds = &im->ds;
    size_t nm = ds->n_models, j = 0;
    for (size_t i = 0; i < ds->n_prompts; i++) {
        trh_ds_prompt *p = &ds->prompts[i];
        if (!keep[i]) {
            free(p->id);
            free(p->text);
            free(p->task);
            continue;
        }
        ds->prompts[j] = *p;
        memmove(ds->scores + j * nm, ds->scores + i * nm, nm * sizeof(float));
        j++;
    }
    ds->n_prompts = j;
}

static size_t model_index(const trh_dataset *ds, const char *name)
{
    for (size_t m = 0; m < ds->n_models; m++)
        if (!strcmp(ds->models[m].name, name))
            return m;
    return SIZE_MAX;
}

/* ---- source readers ---- */

/* Opens a CSV and reads its header, which must name every column in need. */
static int csv_begin(trh_csv *c, const char *path, const char *const *need, long *col, int n_need)
{
    if (trh_csv_open(c, path))
        return 1;
    if (trh_csv_header(c))
        return 1;
    for (int k = 0; k < n_need; k++)
        if ((col[k] = trh_csv_col(c, need[k])) < 0)
            return trh_err_at(path, 1, "missing column \"%s\"", need[k]);
    return 0;
}

static const char *json_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer (as JSON number or string) as text in buf; NULL if neither. */
static const char *json_int(const cJSON *o, const char *key, char buf[32])
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v) && *v->valuestring)
        return v->valuestring;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9007199254740992.0)
        return NULL;
    snprintf(buf, 32, "%.0f", v->valuedouble);
    return buf;
}

/* A score cell: empty = unknown (NAN). */
static int parse_score(const char *s, float *out)
{
    double v;
    if (!*s) {
        *out = NAN;
        return 0;
    }
    if (trh_parse_f64(s, &v) || v < 0 || v > 1)
        return -1;
    *out = (float)v;
    return 0;
}

/* ---- mmlu-pro-32 ---- */

static int mmlu_models(imp *im, const char *path, trh_strmap *cols, char ***dropped, size_t *n_dropped)
{
    static const char *const need[] = {"model", "params_b"};
    long col[2];
    trh_csv c;
    int r, rc = 1;
    if (csv_begin(&c, path, need, col, 2))
        goto out;
    size_t ncol = c.n;
    while ((r = trh_csv_next(&c)) > 0) {
        if (c.n != ncol) {
            trh_err_at(path, c.line, "wrong number of cells: %zu, the header has %zu", c.n, ncol);
            goto out;
        }
        const char *name = c.fields[col[0]], *pb = c.fields[col[1]];
        double params;
        if (!*pb) {
            *dropped = trh_xrealloc(*dropped, (*n_dropped + 1) * sizeof **dropped);
            (*dropped)[(*n_dropped)++] = trh_xstrdup(name);
            continue;
        }
        if (trh_parse_f64(pb, &params) || params <= 0) {
            trh_err_at(path, c.line, "params_b \"%s\" is not a positive number", pb);
            goto out;
        }
        imp_model(im, name, params, params);
    }
    if (r < 0)
        goto out;
    /* Column lookup by name: kept models map to their index, dropped ones
     * to SIZE_MAX (their scores are skipped). */
    for (size_t m = 0; m < im->ds.n_models; m++)
        if (trh_strmap_add(cols, im->ds.models[m].name, m, NULL)) {
            trh_err("%s: model \"%s\" is listed twice", path, im->ds.models[m].name);
            goto out;
        }
    for (size_t d = 0; d < *n_dropped; d++)
        if (trh_strmap_add(cols, (*dropped)[d], SIZE_MAX, NULL)) {
            trh_err("%s: model \"%s\" is listed twice", path, (*dropped)[d]);
            goto out;
        }
    rc = 0;
out:
    trh_csv_close(&c);
    return rc;
}

static int mmlu_questions(imp *im, const char *path, trh_strmap *ids)
{
    trh_jsonl j;
    int r, rc = 1;
    if (trh_jsonl_open(&j, path))
        return 1;
    while ((r = trh_jsonl_next(&j)) > 0) {
        const cJSON *o = j.obj;
        char buf[32];
        const char *id = json_int(o, "question_id", buf), *q = json_string(o, "question"),
                   *cat = json_string(o, "category");
        if (!id || !q || !cat) {
            trh_err_at(path, j.ln, "needs question_id, question and category");
            goto out;
        }
        imp_prompt(im, id, q, cat, TRH_SPLIT_ANY);
        if (trh_strmap_add(ids, im->ds.prompts[im->ds.n_prompts - 1].id, im->ds.n_prompts - 1, NULL)) {
            trh_err_at(path, j.ln, "duplicate question_id %s", id);
            goto out;
        }
    }
    rc = r < 0;
out:
    trh_jsonl_close(&j);
    return rc;
}

static int mmlu_scores(imp *im, const char *path, const trh_strmap *cols, const trh_strmap *ids)
{
    static const char *const need[] = {"question_id"};
    trh_dataset *ds = &im->ds;
    size_t *colm = NULL, idx;
    unsigned char *seen = trh_xcalloc(ds->n_prompts + ds->n_models, 1), *mseen = seen + ds->n_prompts;
    long qcol, ccol;
    trh_csv c;
    int r, rc = 1;
    if (csv_begin(&c, path, need, &qcol, 1))
        goto out;
    ccol = trh_csv_col(&c, "category");
    size_t ncol = c.n;
    colm = trh_xmalloc(ncol * sizeof *colm);
    for (size_t i = 0; i < ncol; i++) {
        colm[i] = SIZE_MAX;
        if ((long)i == qcol || (long)i == ccol)
            continue;
        if (!trh_strmap_get(cols, c.fields[i], &colm[i])) {
            trh_err_at(path, 1, "column \"%s\" is not a model in models.csv", c.fields[i]);
            goto out;
        }
        if (colm[i] != SIZE_MAX)
            mseen[colm[i]] = 1;
    }
    for (size_t m = 0; m < ds->n_models; m++)
        if (!mseen[m]) {
            trh_err_at(path, 1, "no column for model \"%s\"", ds->models[m].name);
            goto out;
        }
    while ((r = trh_csv_next(&c)) > 0) {
        if (c.n != ncol) {
            trh_err_at(path, c.line, "wrong number of cells: %zu, the header has %zu", c.n, ncol);
            goto out;
        }
        if (!trh_strmap_get(ids, c.fields[qcol], &idx)) {
            trh_err_at(path, c.line, "question_id \"%.40s\" is not in questions.jsonl", c.fields[qcol]);
            goto out;
        }
        if (seen[idx]) {
            trh_err_at(path, c.line, "second row for question_id \"%.40s\"", c.fields[qcol]);
            goto out;
        }
        seen[idx] = 1;
        for (size_t i = 0; i < ncol; i++)
            if (colm[i] != SIZE_MAX && parse_score(c.fields[i], &ds->scores[idx * ds->n_models + colm[i]])) {
                trh_err_at(path, c.line, "model %s: \"%.40s\" is not a score in [0,1]", ds->models[colm[i]].name,
                          c.fields[i]);
                goto out;
            }
    }
    if (r < 0)
        goto out;
    for (size_t p = 0; p < ds->n_prompts; p++)
        if (!seen[p]) {
            trh_err("%s: no row for question_id %s", path, ds->prompts[p].id);
            goto out;
        }
    rc = 0;
out:
    free(colm);
    free(seen);
    trh_csv_close(&c);
    return rc;
}

static int import_mmlu_pro(imp *im, const char *src)
{
    char *mpath = trh_path_join(src, "models.csv"), *qpath = trh_path_join(src, "questions.jsonl"),
         *cpath = trh_path_join(src, "correctness.csv"), **dropped = NULL;
    size_t n_dropped = 0;
    trh_strmap cols = {0}, ids = {0};
    int rc = mmlu_models(im, mpath, &cols, &dropped, &n_dropped) || mmlu_questions(im, qpath, &ids) ||
             mmlu_scores(im, cpath, &cols, &ids);
    if (!rc && n_dropped) {
        fprintf(stderr, "tinyroute: import: dropped %zu models without params_b (API models of undisclosed size):",
                n_dropped);
        for (size_t d = 0; d < n_dropped; d++)
            fprintf(stderr, "%s %s", d ? "," : "", dropped[d]);
        fputc('\n', stderr);
    }
    for (size_t d = 0; d < n_dropped; d++)
        free(dropped[d]);
    free(dropped);
    trh_strmap_free(&cols);
    trh_strmap_free(&ids);
    free(mpath);
    free(qpath);
    free(cpath);
    im->cost_unit = "params_b (billions of parameters)";
    return rc;
}

/* ---- llmrouter-9models ---- */

static int llmrouter_models(imp *im, const char *path)
{
    static const char *const need[] = {"model", "size", "input_price_usd_per_1M_tokens"};
    long col[3];
    trh_csv c;
    int r, rc = 1;
    if (csv_begin(&c, path, need, col, 3))
        goto out;
    size_t ncol = c.n;
    while ((r = trh_csv_next(&c)) > 0) {
        double price;
        char *end;
        if (c.n != ncol) {
            trh_err_at(path, c.line, "wrong number of cells: %zu, the header has %zu", c.n, ncol);
            goto out;
        }
        if (trh_parse_f64(c.fields[col[2]], &price) || price < 0) {
            trh_err_at(path, c.line, "input price \"%s\" is not a number >= 0", c.fields[col[2]]);
            goto out;
        }
        double size = strtod(c.fields[col[1]], &end); /* "7B" */
        if (end == c.fields[col[1]])
            size = NAN;
        if (model_index(&im->ds, c.fields[col[0]]) != SIZE_MAX) {
            trh_err_at(path, c.line, "model \"%s\" is listed twice", c.fields[col[0]]);
            goto out;
        }
        imp_model(im, c.fields[col[0]], price, size);
    }
    rc = r < 0;
out:
    trh_csv_close(&c);
    return rc;
}

static int llmrouter_items(imp *im, const char *path)
{
    trh_jsonl j;
    int r, rc = 1;
    if (trh_jsonl_open(&j, path))
        return 1;
    while ((r = trh_jsonl_next(&j)) > 0) {
        const cJSON *o = j.obj;
        char buf[32];
        const char *split = json_string(o, "split"), *index = json_int(o, "index", buf),
                   *task = json_string(o, "task_name"), *q = json_string(o, "question");
        const cJSON *scores = cJSON_GetObjectItemCaseSensitive(o, "scores"), *s;
        if (!split || (strcmp(split, "train") && strcmp(split, "test")) || !index || !task || !q ||
            !cJSON_IsObject(scores)) {
            trh_err_at(path, j.ln, "needs split (train|test), index, task_name, question and scores{}");
            goto out;
        }
        char *id = trh_xprintf("%s-%s", split, index);
        float *row = imp_prompt(im, id, q, task, strcmp(split, "train") ? TRH_SPLIT_TEST : TRH_SPLIT_TRAIN);
        free(id);
        cJSON_ArrayForEach(s, scores) {
            size_t m = model_index(&im->ds, s->string);
            if (m == SIZE_MAX) {
                trh_err_at(path, j.ln, "score for \"%s\", which is not in models.csv", s->string);
                goto out;
            }
            if (cJSON_IsNull(s))
                continue;
            if (!cJSON_IsNumber(s) || !(s->valuedouble >= 0 && s->valuedouble <= 1)) {
                trh_err_at(path, j.ln, "score for \"%s\" is not a number in [0,1]", s->string);
                goto out;
            }
            row[m] = (float)s->valuedouble;
        }
    }
    rc = r < 0;
out:
    trh_jsonl_close(&j);
    return rc;
}

static int import_llmrouter(imp *im, const char *src)
{
    char *mpath = trh_path_join(src, "models.csv"), *ipath = trh_path_join(src, "items.jsonl");
    int rc = llmrouter_models(im, mpath) || llmrouter_items(im, ipath);
    if (!rc) {
        /* The source's test split repeats some train questions verbatim;
         * evaluating on them would reward memorising the references. */
        trh_dataset *ds = &im->ds;
        trh_strmap train = {0};
        size_t dropped = 0, i;
        unsigned char *keep = trh_xmalloc(ds->n_prompts);
        for (i = 0; i < ds->n_prompts; i++)
            if (ds->prompts[i].split == TRH_SPLIT_TRAIN)
                trh_strmap_add(&train, ds->prompts[i].text, i, NULL);
        for (i = 0; i < ds->n_prompts; i++) {
            keep[i] = ds->prompts[i].split == TRH_SPLIT_TRAIN || !trh_strmap_get(&train, ds->prompts[i].text, &(size_t){0});
            dropped += !keep[i];
        }
        trh_strmap_free(&train);
        imp_keep(im, keep);
        free(keep);
        fprintf(stderr, "tinyroute: import: dropped %zu test prompts whose question also appears in train\n", dropped);
    }
    free(mpath);
    free(ipath);
    im->cost_unit = "input_price_usd_per_1M_tokens (USD per 1M input tokens, NVIDIA NIM)";
    return rc;
}

/* ---- routerdc-7models ---- */

/* No costs in the source: parameter counts in billions stand in for them. */
static const struct { const char *name; double params_b; } rdc_models[] = {
    {"mistralai/Mistral-7B-v0.1", 7.2},
    {"meta-math/MetaMath-Mistral-7B", 7.2},
    {"itpossible/Chinese-Mistral-7B-v0.1", 7.2},
    {"HuggingFaceH4/zephyr-7b-beta", 7.2}, /* a Mistral-7B fine-tune */
    {"cognitivecomputations/dolphin-2.6-mistral-7b", 7.2},
    {"meta-llama/Meta-Llama-3-8B", 8.0},
    {"cognitivecomputations/dolphin-2.9-llama3-8b", 8.0},
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Line of a byte offset, for JSON parse errors. */
static long line_of(const char *buf, const char *at)
{
    long ln = 1;
    for (const char *p = buf; p < at; p++)
        ln += *p == '\n';
    return ln;
}

static int rdc_file(imp *im, const char *dir, const char *file)
{
    static const char *const mc[] = {"mmlu", "arc_easy", "cmmlu", "ceval"};
    static const char *const suffix[] = {"_train", "_test", "-train", "-test"};
    char *path = trh_path_join(dir, file), *task;
    size_t len, n;
    int rc = 1, split = strstr(file, "train") ? TRH_SPLIT_TRAIN : TRH_SPLIT_TEST, is_mc = 0;
    task = trh_xprintf("%.*s", (int)(strlen(file) - 5), file); /* without .json */
    n = strlen(task);
    for (size_t k = 0; k < 4; k++) {
        size_t sl = strlen(suffix[k]);
        if (n > sl && !strcmp(task + n - sl, suffix[k]))
            task[n - sl] = 0;
    }
    for (size_t k = 0; k < 4; k++)
        is_mc |= !strcmp(task, mc[k]);
    /* These sources are one JSON list per file, parsed whole: a stated
     * bound instead of whatever the file asks (tools/DATASET.md). */
    char *buf = NULL;
    cJSON *arr = NULL, *it;
    const char *nul;
    struct stat sb;
    if (stat(path, &sb) == 0 && (uint64_t)sb.st_size > TR_JSON_FILE_MAX) {
        trh_err("%s: %lld bytes: a JSON list file is read whole, at most %llu bytes "
               "(TR_JSON_FILE_MAX, tools/DATASET.md)", path, (long long)sb.st_size,
               (unsigned long long)TR_JSON_FILE_MAX);
        goto out;
    }
    buf = (char *)trh_read_file(path, &len);
    if (buf && (nul = trh_json_nul_escape(buf, len))) {
        trh_err_at(path, line_of(buf, nul), "a \\u0000 (NUL) escape: the text would be cut there; "
                  "remove it");
        goto out;
    }
    arr = buf ? cJSON_ParseWithLength(buf, len) : NULL;
    if (buf && !cJSON_IsArray(arr)) {
        const char *at = cJSON_GetErrorPtr();
        trh_err_at(path, arr || !at ? 1 : line_of(buf, at), arr ? "expected a JSON list" : "malformed JSON");
        goto out;
    }
    if (!buf)
        goto out;
    size_t pos = 0;
    cJSON_ArrayForEach(it, arr) {
        const char *q = json_string(it, "question");
        const cJSON *scores = cJSON_GetObjectItemCaseSensitive(it, "scores"), *s;
        if (!q || !cJSON_IsObject(scores)) {
            trh_err("%s: item %zu: needs question and scores{}", path, pos);
            goto out;
        }
        char *id = trh_xprintf("%s-%s-%zu", task, split == TRH_SPLIT_TRAIN ? "train" : "test", pos);
        float *row = imp_prompt(im, id, q, task, split);
        free(id);
        cJSON_ArrayForEach(s, scores) {
            size_t m = model_index(&im->ds, s->string);
            double v = s->valuedouble;
            if (m == SIZE_MAX) {
                trh_err("%s: item %zu: score for unknown model \"%s\"", path, pos, s->string);
                goto out;
            }
            if (!cJSON_IsNumber(s) || !(v >= 0 && v <= 1)) {
                trh_err("%s: item %zu: score for \"%s\" is not a number in [0,1]", path, pos, s->string);
                goto out;
            }
            /* Multiple choice scores are the probability of the right option
             * when the model picked it, else 0: > 0 is exactly "correct". */
            row[m] = is_mc ? (v > 0) : (float)v;
        }
        pos++;
    }
    rc = 0;
out:
    cJSON_Delete(arr);
    free(buf);
    free(task);
    free(path);
    return rc;
}

static int import_routerdc(imp *im, const char *src)
{
    DIR *d = opendir(src);
    if (!d)
        return trh_err("%s: cannot open directory: %s", src, strerror(errno));
    char **files = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json")) {
            files = trh_xrealloc(files, (n + 1) * sizeof *files);
            files[n++] = trh_xstrdup(e->d_name);
        }
    }
    closedir(d);
    if (n) /* readdir order is arbitrary */
        qsort(files, n, sizeof *files, name_cmp);
    for (size_t m = 0; m < sizeof rdc_models / sizeof *rdc_models; m++)
        imp_model(im, rdc_models[m].name, rdc_models[m].params_b, rdc_models[m].params_b);
    int rc = n ? 0 : trh_err("%s: no *.json files", src);
    for (size_t i = 0; i < n; i++) {
        rc = rc || rdc_file(im, src, files[i]);
        free(files[i]);
    }
    free(files);
    im->cost_unit = "parameter count in billions (a proxy: the source has no costs; Mistral-7B based 7.2, Llama-3-8B "
                    "based 8.0)";
    return rc;
}

/* ---- common steps ---- */

static uint32_t id_hash(const char *id)
{
    return tr_fnv1a((const uint8_t *)id, (uint32_t)strlen(id));
}

typedef struct limit_key {
    size_t task, i;
    uint32_t h;
    const char *id;
} limit_key;

static int limit_cmp(const void *a, const void *b)
{
    const limit_key *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return strcmp(x->id, y->id);
}

typedef struct quota {
    uint64_t rem;
    size_t task;
} quota;

static int quota_cmp(const void *a, const void *b)
{
    const quota *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem > y->rem ? -1 : 1;
    return x->task < y->task ? -1 : x->task > y->task;
}

/* Keeps `limit` prompts: each task gets its proportional share (largest
 * remainder), filled with its prompts of lowest id hash. */
static void apply_limit(imp *im, size_t limit)
{
    trh_dataset *ds = &im->ds;
    size_t n = ds->n_prompts, nt = 0, t, left = limit;
    if (!limit || limit >= n) /* 0: no limit */
        return;
    trh_strmap tasks = {0};
    limit_key *keys = trh_xmalloc(n * sizeof *keys);
    size_t *count = trh_xcalloc(n, sizeof *count), *take = trh_xcalloc(n, sizeof *take);
    for (size_t i = 0; i < n; i++) {
        if (!trh_strmap_add(&tasks, ds->prompts[i].task, nt, &t))
            t = nt++;
        count[t]++;
        keys[i] = (limit_key){t, i, id_hash(ds->prompts[i].id), ds->prompts[i].id};
    }
    quota *q = trh_xmalloc(nt * sizeof *q);
    for (t = 0; t < nt; t++) {
        take[t] = (size_t)((uint64_t)limit * count[t] / n);
        q[t] = (quota){(uint64_t)limit * count[t] % n, t};
        left -= take[t];
    }
    qsort(q, nt, sizeof *q, quota_cmp);
    for (t = 0; t < left; t++)
        take[q[t].task]++;
    qsort(keys, n, sizeof *keys, limit_cmp);
    unsigned char *keep = trh_xcalloc(n, 1);
    for (size_t k = 0; k < n; k++)
        if (take[keys[k].task]) {
            take[keys[k].task]--;
            keep[keys[k].i] = 1;
        }
    imp_keep(im, keep);
    free(keep);
    free(q);
    free(keys);
    free(count);
    free(take);
    trh_strmap_free(&tasks);
}

/* Sizes compare equal when either is unknown. */
static int cheaper(const imp *im, size_t a, size_t b)
{
    const trh_ds_model *x = &im->ds.models[a], *y = &im->ds.models[b];
    if (x->cost != y->cost)
        return x->cost < y->cost;
    if (im->size[a] != im->size[b] && !isnan(im->size[a]) && !isnan(im->size[b]))
        return im->size[a] < im->size[b];
    return strcmp(x->name, y->name) < 0;
}

/* 0 ok; 2 when a --device name is not a model. */
static int assign_device(imp *im, char **names, size_t n_names)
{
    trh_dataset *ds = &im->ds;
    size_t best = 0;
    for (size_t m = 0; m < ds->n_models; m++) {
        ds->models[m].where = TR_CLOUD;
        if (cheaper(im, m, best))
            best = m;
    }
    if (!n_names && ds->n_models)
        ds->models[best].where = TR_DEVICE;
    for (size_t k = 0; k < n_names; k++) {
        size_t m = model_index(ds, names[k]);
        if (m == SIZE_MAX)
            return 2 * trh_err("import: --device %s: no such model in this data set", names[k]);
        ds->models[m].where = TR_DEVICE;
    }
    return 0;
}

/* Repeated texts are kept (their ids and scores differ) but worth knowing:
 * a test prompt whose text is also a train prompt leaks the answer. */
static void note_repeats(const trh_dataset *ds)
{
    trh_strmap all = {0}, train = {0};
    size_t dup = 0, cross = 0, v;
    for (size_t i = 0; i < ds->n_prompts; i++) {
        dup += (size_t)trh_strmap_add(&all, ds->prompts[i].text, i, NULL);
        if (ds->prompts[i].split == TRH_SPLIT_TRAIN)
            trh_strmap_add(&train, ds->prompts[i].text, i, NULL);
    }
    for (size_t i = 0; i < ds->n_prompts; i++)
        cross += ds->prompts[i].split == TRH_SPLIT_TEST && trh_strmap_get(&train, ds->prompts[i].text, &v);
    if (dup)
        fprintf(stderr,
                "tinyroute: import: note: %zu prompts repeat the text of an earlier one (kept); "
                "%zu test prompts share their text with a train prompt\n",
                dup, cross);
    trh_strmap_free(&all);
    trh_strmap_free(&train);
}

/* What was written: a line, or with --json one document on stdout. */
static void summary(const imp *im, const char *format, const char *dst, int hashed, double share,
                    int json)
{
    const trh_dataset *ds = &im->ds;
    trh_strmap tasks = {0};
    size_t train = 0, test = 0, unknown = 0, dev = 0, first_dev = 0;
    for (size_t i = 0; i < ds->n_prompts; i++) {
        trh_strmap_add(&tasks, ds->prompts[i].task, i, NULL);
        train += ds->prompts[i].split == TRH_SPLIT_TRAIN;
        test += ds->prompts[i].split == TRH_SPLIT_TEST;
    }
    for (size_t i = 0; i < ds->n_prompts * ds->n_models; i++)
        unknown += isnan(ds->scores[i]);
    for (size_t m = ds->n_models; m-- > 0;)
        if (ds->models[m].where == TR_DEVICE)
            dev++, first_dev = m;
    if (json) {
        cJSON *o = cJSON_CreateObject(), *d = cJSON_AddArrayToObject(o, "device_models");
        cJSON_AddStringToObject(o, "format", format);
        cJSON_AddStringToObject(o, "out", dst);
        cJSON_AddNumberToObject(o, "prompts", (double)ds->n_prompts);
        cJSON_AddNumberToObject(o, "models", (double)ds->n_models);
        for (size_t m = 0; m < ds->n_models; m++)
            if (ds->models[m].where == TR_DEVICE)
                cJSON_AddItemToArray(d, cJSON_CreateString(ds->models[m].name));
        cJSON_AddNumberToObject(o, "tasks", (double)tasks.n);
        cJSON_AddNumberToObject(o, "train", (double)train);
        cJSON_AddNumberToObject(o, "test", (double)test);
        if (hashed)
            cJSON_AddNumberToObject(o, "test_share_by_id_hash", share);
        else
            cJSON_AddNullToObject(o, "test_share_by_id_hash");
        cJSON_AddNumberToObject(o, "unknown_score_cells", (double)unknown);
        cJSON_AddNumberToObject(o, "score_cells", (double)(ds->n_prompts * ds->n_models));
        cJSON_AddStringToObject(o, "cost_unit", im->cost_unit);
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
        trh_strmap_free(&tasks);
        return;
    }
    printf("%s -> %s: %zu prompts, %zu models (%zu device: %s%s), %zu tasks, %zu train / %zu test",
           format, dst, ds->n_prompts, ds->n_models, dev, ds->models[first_dev].name, dev > 1 ? ", ..." : "",
           tasks.n, train, test);
    if (hashed)
        printf(" (split by id hash, test share %g)", share);
    printf(", %zu of %zu score cells unknown; cost = %s\n", unknown, ds->n_prompts * ds->n_models, im->cost_unit);
    trh_strmap_free(&tasks);
}

static const struct {
    const char *name;
    int (*run)(imp *im, const char *src);
} formats[] = {
    {"mmlu-pro-32", import_mmlu_pro},
    {"llmrouter-9models", import_llmrouter},
    {"routerdc-7models", import_routerdc},
};

static int bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "tinyroute import: %s%s%s\nsee 'tinyroute import --help'\n", what,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

int cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, 0, 'l'}, {"test-share", required_argument, 0, 's'},
        {"device", required_argument, 0, 'd'}, {"force", no_argument, 0, 'f'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *pos[3];
    char **device = trh_xmalloc((size_t)argc * sizeof *device);
    size_t n_device = 0, limit = 0, f;
    double share = 0.2;
    int force = 0, share_given = 0, json = 0, rc = 0, o;
    uint64_t u;
    imp im = {0};
    optind = 1;
    while (!rc && (o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            if (trh_parse_u64(optarg, &u) || u == 0 || u > SIZE_MAX)
                rc = bad_usage("--limit needs a positive integer, got", optarg);
            limit = (size_t)u;
            break;
        case 's':
            if (trh_parse_f64(optarg, &share) || share < 0 || share > 1)
                rc = bad_usage("--test-share needs a number in [0,1], got", optarg);
            share_given = 1;
            break;
        case 'd': device[n_device++] = optarg; break;
        case 'f': force = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(usage, stdout); free(device); return 0;
        default: rc = trh_bad_option(argv);
        }
    }
    if (!rc && argc - optind != 3)
        rc = bad_usage(argc - optind < 3 ? "needs FORMAT SRC_DIR DST_DIR" : "too many arguments",
                       argc - optind > 3 ? argv[optind + 3] : NULL);
    if (rc)
        goto out;
    for (int i = 0; i < 3; i++)
        pos[i] = argv[optind + i];
    for (f = 0; f < sizeof formats / sizeof *formats && strcmp(formats[f].name, pos[0]); f++)
        ;
    if (f == sizeof formats / sizeof *formats) {
        rc = bad_usage("unknown format (mmlu-pro-32, llmrouter-9models, routerdc-7models)", pos[0]);
        goto out;
    }

    /* Before reading anything: DST_DIR must not be, be inside or contain
     * SRC_DIR, --force or not (issue #18: `import mmlu-pro-32 SRC SRC
     * --force` replaced the source's models.csv and correctness.csv). */
    if (trh_dir_apart(pos[2], pos[1])) {
        rc = 2;
        goto out;
    }
    if ((rc = formats[f].run(&im, pos[1])))
        goto out;
    int hashed = 0;
    for (size_t i = 0; i < im.ds.n_prompts; i++)
        if (im.ds.prompts[i].split == TRH_SPLIT_ANY) {
            hashed = 1;
            im.ds.prompts[i].split = id_hash(im.ds.prompts[i].id) % 1000 < share * 1000 ? TRH_SPLIT_TEST
                                                                                          : TRH_SPLIT_TRAIN;
        }
    if (share_given && !hashed)
        fprintf(stderr, "tinyroute: import: note: --test-share ignored, the source has its own split\n");
    apply_limit(&im, limit);
    if ((rc = assign_device(&im, device, n_device)))
        goto out;
    note_repeats(&im.ds);
    if ((rc = trh_dataset_write(pos[2], &im.ds, force)))
        goto out;
    /* What the costs mean, for the evaluator's report (tools/DATASET.md). */
    char *unit_path = trh_path_join(pos[2], "cost_unit.txt");
    rc = trh_write_file_atomic(unit_path, im.cost_unit, strlen(im.cost_unit));
    free(unit_path);
    if (rc)
        goto out;
    summary(&im, pos[0], pos[2], hashed, share, json);
out:
    trh_dataset_free(&im.ds);
    free(im.size);
    free(device);
    return rc;
}
