#include "dataset.h"

#include "tinyroute.h"
#include "tr_format.h" /* tr_fnv1a */
#include "tr_embed.h" /* tr_utf8_seq */

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The device's own decoder, so a name the host accepts is one the device reads. */
int trh_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = tr_utf8_seq(p + i, n - i)))
            return 0;
    return 1;
}

/* ---- string map: open addressing, linear probing, load <= 1/2 ---- */

static size_t strmap_slot(const trh_strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    size_t i = tr_fnv1a((const uint8_t *)key, (uint32_t)strlen(key)) & mask;
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

int trh_strmap_add(trh_strmap *m, const char *key, size_t val, size_t *prev)
{
    if (2 * (m->n + 1) > m->cap) {
        trh_strmap old = *m;
        m->cap = old.cap ? 2 * old.cap : 16;
        m->keys = trh_xcalloc(m->cap, sizeof *m->keys);
        m->vals = trh_xmalloc(m->cap * sizeof *m->vals);
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i]) {
                size_t j = strmap_slot(m, old.keys[i]);
                m->keys[j] = old.keys[i];
                m->vals[j] = old.vals[i];
            }
        free(old.keys);
        free(old.vals);
    }
    size_t i = strmap_slot(m, key);
    if (m->keys[i]) {
        if (prev)
            *prev = m->vals[i];
        return 1;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 0;
}

int trh_strmap_get(const trh_strmap *m, const char *key, size_t *val)
{
    if (!m->cap)
        return 0;
    size_t i = strmap_slot(m, key);
    if (!m->keys[i])
        return 0;
    *val = m->vals[i];
    return 1;
}

void trh_strmap_free(trh_strmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- CSV reader ---- */

int trh_csv_open(trh_csv *c, const char *path)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    c->next_line = 1;
    c->f = fopen(path, "rb");
    if (!c->f)
        return trh_err("%s: cannot open: %s", path, strerror(errno));
    unsigned char bom[3];
    if (fread(bom, 1, 3, c->f) != 3 || memcmp(bom, "\xEF\xBB\xBF", 3) != 0)
        rewind(c->f);
    return 0;
}

void trh_csv_close(trh_csv *c)
{
    if (c->f)
        fclose(c->f);
    free(c->fields);
    free(c->offs);
    trh_buf_free(&c->buf);
    memset(c, 0, sizeof *c);
}

static void csv_putc(trh_csv *c, int ch)
{
    uint8_t b = (uint8_t)ch;
    trh_buf_put(&c->buf, &b, 1);
}

/* After a CR: swallow the LF of a CRLF and report a line end. A lone CR is
 * data. */
static int csv_crlf(trh_csv *c)
{
    int ch = getc_unlocked(c->f);
    if (ch == '\n')
        return 1;
    if (ch != EOF)
        ungetc(ch, c->f);
    return 0;
}

int trh_csv_next(trh_csv *c)
{
    int ch;
    c->buf.len = 0;
    c->n = 0;
    for (;;) { /* skip blank lines */
        ch = getc_unlocked(c->f);
        if (ch == '\r' && csv_crlf(c))
            ch = '\n';
        if (ch != '\n')
            break;
        c->next_line++;
    }
    c->line = c->next_line;
    if (ch == EOF)
        return ferror(c->f) ? -trh_err_at(c->path, c->line, "read error") : 0;
    for (;;) {
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 16;
            c->offs = trh_xrealloc(c->offs, c->cap * sizeof *c->offs);
            c->fields = trh_xrealloc(c->fields, c->cap * sizeof *c->fields);
        }
        c->offs[c->n++] = c->buf.len;
        if (ch == '"') {
            for (;;) {
                ch = getc_unlocked(c->f);
                if (ch == EOF)
                    return -trh_err_at(c->path, c->line, "unterminated quoted field");
                if (ch == '"') {
                    ch = getc_unlocked(c->f);
                    if (ch != '"')
                        break;
                } else if (ch == '\n') {
                    c->next_line++;
                } else if (ch == 0) {
                    return -trh_err_at(c->path, c->next_line, "NUL byte");
                }
                if (c->buf.len >= TRH_LINE_MAX)
                    return -trh_err_at(c->path, c->line, "record longer than %zu bytes (TRH_LINE_MAX, "
                                      "tools/DATASET.md)", TRH_LINE_MAX);
                csv_putc(c, ch);
            }
            if (ch == '\r' && csv_crlf(c))
                ch = '\n';
            if (ch != ',' && ch != '\n' && ch != EOF)
                return -trh_err_at(c->path, c->next_line, "unexpected character after a closing quote");
        } else {
            while (ch != ',' && ch != '\n' && ch != EOF) {
                if (ch == '\r' && csv_crlf(c)) {
                    ch = '\n';
                    break;
                }
                if (ch == '"')
                    return -trh_err_at(c->path, c->next_line, "quote inside an unquoted field (quote the whole field)");
                if (ch == 0)
                    return -trh_err_at(c->path, c->next_line, "NUL byte");
                if (c->buf.len >= TRH_LINE_MAX)
                    return -trh_err_at(c->path, c->line, "record longer than %zu bytes (TRH_LINE_MAX, "
                                      "tools/DATASET.md)", TRH_LINE_MAX);
                csv_putc(c, ch);
                ch = getc_unlocked(c->f);
            }
        }
        csv_putc(c, 0);
        if (ch != ',')
            break;
        ch = getc_unlocked(c->f);
    }
    if (ch == '\n')
        c->next_line++;
    else if (ferror(c->f))
        return -trh_err_at(c->path, c->line, "read error");
    for (size_t i = 0; i < c->n; i++)
        c->fields[i] = (char *)c->buf.data + c->offs[i];
    return 1;
}

/* ---- loading ---- */

int trh_csv_header(trh_csv *c)
{
    int r = trh_csv_next(c);
    if (r == 0)
        return trh_err_at(c->path, 1, "empty file: no header");
    if (r < 0)
        return 1;
    trh_strmap seen = {0};
    size_t first = 0;
    for (size_t i = 0; i < c->n; i++)
        if (trh_strmap_add(&seen, c->fields[i], i, &first)) {
            trh_strmap_free(&seen);
            return trh_err_at(c->path, c->line, "duplicate column \"%s\" (columns %zu and %zu)",
                             c->fields[i], first + 1, i + 1);
        }
    trh_strmap_free(&seen);
    return 0;
}

long trh_csv_col(const trh_csv *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->fields[i], name))
            return (long)i;
    return -1;
}

typedef struct loader {
    trh_dataset *ds;
    char *mpath, *ppath, *cpath;
    trh_strmap models, ids;
    long *mline, *pline; /* source line of each model, each prompt */
    size_t pcap;
    unsigned flags;      /* TR_DS_* */
} loader;

static int load_models(loader *L)
{
    trh_dataset *ds = L->ds;
    trh_csv c;
    if (trh_csv_open(&c, L->mpath))
        return 1;
    int rc = 1, r;
    size_t cap = 0, ncol;
    long col[3];
    const char *want[3] = {"name", "cost", "where"};
    if (trh_csv_header(&c))
        goto out;
    ncol = c.n;
    for (int k = 0; k < 3; k++)
        if ((col[k] = trh_csv_col(&c, want[k])) < 0) {
            trh_err_at(c.path, c.line, "missing column \"%s\" (header must have name,cost,where)", want[k]);
            goto out;
        }
    while ((r = trh_csv_next(&c)) > 0) {
        if (c.n != ncol) {
            trh_err_at(c.path, c.line, "wrong number of cells: %zu, the header has %zu", c.n, ncol);
            goto out;
        }
        const char *name = c.fields[col[0]], *where = c.fields[col[2]];
        size_t len = strlen(name), prev;
        double cost;
        if (!len || len >= TRH_DS_NAME_MAX || !trh_utf8_valid(name, len)) {
            trh_err_at(c.path, c.line, "model name must be 1 to %d bytes of UTF-8 (got %zu bytes)",
                      TRH_DS_NAME_MAX - 1, len);
            goto out;
        }
        if (trh_parse_f64(c.fields[col[1]], &cost) || cost < 0) {
            trh_err_at(c.path, c.line, "cost \"%s\" is not a finite number >= 0", c.fields[col[1]]);
            goto out;
        }
        if (strcmp(where, "device") && strcmp(where, "cloud")) {
            trh_err_at(c.path, c.line, "where is \"%s\", expected device or cloud", where);
            goto out;
        }
        if (ds->n_models == cap) {
            cap = cap ? 2 * cap : 16;
            ds->models = trh_xrealloc(ds->models, cap * sizeof *ds->models);
            L->mline = trh_xrealloc(L->mline, cap * sizeof *L->mline);
        }
        trh_ds_model *m = &ds->models[ds->n_models];
        m->name = trh_xstrdup(name);
        m->cost = cost;
        m->where = strcmp(where, "device") ? TR_CLOUD : TR_DEVICE;
        L->mline[ds->n_models] = c.line;
        if (trh_strmap_add(&L->models, m->name, ds->n_models, &prev)) {
            trh_err_at(c.path, c.line, "duplicate model name \"%s\" (first on line %ld)", name, L->mline[prev]);
            free(m->name);
            goto out;
        }
        ds->n_models++;
    }
    if (r < 0)
        goto out;
    size_t dev = 0;
    for (size_t i = 0; i < ds->n_models; i++)
        dev += ds->models[i].where == TR_DEVICE;
    if (!ds->n_models)
        trh_err_at(c.path, 1, "no models");
    else if (!dev)
        trh_err_at(c.path, 1, "no device model (every model has where=cloud)");
    else
        rc = 0;
out:
    trh_csv_close(&c);
    return rc;
}

/* A JSON string field; missing or null gives dflt (NULL: required). */
static int json_str(const cJSON *o, const char *key, const char *dflt, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return dflt ? 0 : -1;
    }
    if (!cJSON_IsString(v))
        return -1;
    *out = v->valuestring;
    return 0;
}

/* One prompts.jsonl object into prompt p. 0 ok; 1 after a message. */
static int parse_prompt(const char *path, long ln, const cJSON *o, trh_ds_prompt *p, int keep_text)
{
    const char *text, *task, *split;
    char num[32];
    int rc = 1;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (cJSON_IsString(id)) {
        if (!*id->valuestring || !trh_utf8_valid(id->valuestring, strlen(id->valuestring))) {
            trh_err_at(path, ln, "\"id\" is empty or not valid UTF-8");
            goto out;
        }
        p->id = trh_xstrdup(id->valuestring);
    } else if (cJSON_IsNumber(id) && id->valuedouble == floor(id->valuedouble) &&
               fabs(id->valuedouble) <= 9007199254740992.0) {
        snprintf(num, sizeof num, "%.0f", id->valuedouble);
        p->id = trh_xstrdup(num);
    } else {
        trh_err_at(path, ln, "missing or invalid \"id\" (a string or an integer)");
        goto out;
    }
    if (json_str(o, "text", NULL, &text)) {
        trh_err_at(path, ln, "missing \"text\" (a string)");
        goto out;
    }
    if (!*text) {
        trh_err_at(path, ln, "empty text");
        goto out;
    }
    if (!trh_utf8_valid(text, strlen(text))) {
        trh_err_at(path, ln, "invalid UTF-8 in text");
        goto out;
    }
    if (json_str(o, "task", "", &task) || !trh_utf8_valid(task, strlen(task))) {
        trh_err_at(path, ln, "\"task\" must be a UTF-8 string");
        goto out;
    }
    if (json_str(o, "split", "", &split) || (*split && strcmp(split, "train") && strcmp(split, "test"))) {
        trh_err_at(path, ln, "\"split\" must be \"train\" or \"test\"");
        goto out;
    }
    p->text = keep_text ? trh_xstrdup(text) : NULL;
    p->task = trh_xstrdup(task);
    p->split = !*split ? TRH_SPLIT_ANY : !strcmp(split, "train") ? TRH_SPLIT_TRAIN : TRH_SPLIT_TEST;
    rc = 0;
out:
    return rc;
}

static void file_stamp(FILE *f, unsigned long long stamp[4])
{
    struct stat st;
    memset(stamp, 0, 4 * sizeof *stamp);
    if (fstat(fileno(f), &st) == 0) {
        stamp[0] = (unsigned long long)st.st_dev;
        stamp[1] = (unsigned long long)st.st_ino;
        stamp[2] = (unsigned long long)st.st_size;
        stamp[3] = (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                   (unsigned long long)st.st_mtim.tv_nsec;
    }
}

static int load_prompts(loader *L)
{
    trh_dataset *ds = L->ds;
    trh_jsonl j;
    if (trh_jsonl_open(&j, L->ppath))
        return 1;
    file_stamp(j.f, ds->prompts_stamp);
    size_t prev;
    int rc = 1, r;
    while ((r = trh_jsonl_next(&j)) > 0) {
        if (ds->n_prompts == L->pcap) {
            L->pcap = L->pcap ? 2 * L->pcap : 1024;
            ds->prompts = trh_xrealloc(ds->prompts, L->pcap * sizeof *ds->prompts);
            L->pline = trh_xrealloc(L->pline, L->pcap * sizeof *L->pline);
        }
        trh_ds_prompt *p = &ds->prompts[ds->n_prompts];
        memset(p, 0, sizeof *p);
        if (parse_prompt(L->ppath, j.ln, j.obj, p, !(L->flags & TRH_DS_NO_TEXT))) {
            free(p->id);
            goto out;
        }
        L->pline[ds->n_prompts] = j.ln;
        ds->n_prompts++; /* counted before the check so that free() sees it */
        if (trh_strmap_add(&L->ids, p->id, ds->n_prompts - 1, &prev)) {
            trh_err_at(L->ppath, j.ln, "duplicate prompt id \"%.100s\" (first on line %ld)", p->id,
                      L->pline[prev]);
            goto out;
        }
    }
    if (r == 0 && !ds->n_prompts)
        trh_err_at(L->ppath, 1, "no prompts");
    else if (r == 0)
        rc = 0;
out:
    trh_jsonl_close(&j);
    return rc;
}

static int load_scores(loader *L)
{
    trh_dataset *ds = L->ds;
    size_t np = ds->n_prompts, nm = ds->n_models, *colm = NULL, idx;
    unsigned char *seen = NULL;
    trh_csv c;
    if (nm && np > SIZE_MAX / sizeof(float) / nm)
        return trh_err("%s: %zu x %zu scores do not fit in memory", L->cpath, np, nm);
    if (trh_csv_open(&c, L->cpath))
        return 1;
    int rc = 1, r;
    if (trh_csv_header(&c))
        goto out;
    if (strcmp(c.fields[0], "id")) {
        trh_err_at(c.path, c.line, "missing column \"id\" (must be the first)");
        goto out;
    }
    size_t ncol = c.n;
    colm = trh_xcalloc(ncol, sizeof *colm);
    seen = trh_xcalloc(nm > np ? nm : np, 1);
    for (size_t i = 1; i < ncol; i++) {
        if (!trh_strmap_get(&L->models, c.fields[i], &idx)) {
            trh_err_at(c.path, c.line, "column %zu: unknown model \"%s\" (not in models.csv)", i + 1, c.fields[i]);
            goto out;
        }
        colm[i] = idx;
        seen[idx] = 1;
    }
    for (size_t m = 0; m < nm; m++)
        if (!seen[m]) {
            trh_err_at(c.path, c.line, "no column for model \"%s\" (models.csv line %ld)", ds->models[m].name,
                      L->mline[m]);
            goto out;
        }
    memset(seen, 0, np);
    ds->scores = trh_xmalloc(np * nm * sizeof(float));
    for (size_t i = 0; i < np * nm; i++)
        ds->scores[i] = NAN;
    while ((r = trh_csv_next(&c)) > 0) {
        if (c.n != ncol) {
            trh_err_at(c.path, c.line, "wrong number of cells: %zu, the header has %zu", c.n, ncol);
            goto out;
        }
        if (!trh_strmap_get(&L->ids, c.fields[0], &idx)) {
            trh_err_at(c.path, c.line, "prompt id \"%.100s\" is not in prompts.jsonl", c.fields[0]);
            goto out;
        }
        if (seen[idx]) {
            trh_err_at(c.path, c.line, "second row for prompt id \"%.100s\"", c.fields[0]);
            goto out;
        }
        seen[idx] = 1;
        float *row = ds->scores + idx * nm;
        for (size_t i = 1; i < ncol; i++) {
            double v;
            if (!*c.fields[i])
                continue; /* unknown */
            if (trh_parse_f64(c.fields[i], &v) || v < 0 || v > 1) {
                trh_err_at(c.path, c.line, "column %zu (%s): score \"%.40s\" is not a number in [0,1]", i + 1,
                          ds->models[colm[i]].name, c.fields[i]);
                goto out;
            }
            row[colm[i]] = (float)v;
        }
    }
    if (r < 0)
        goto out;
    for (size_t p = 0; p < np; p++)
        if (!seen[p]) {
            trh_err_at(L->ppath, L->pline[p], "prompt id \"%.100s\" has no row in correctness.csv",
                      ds->prompts[p].id);
            goto out;
        }
    rc = 0;
out:
    free(colm);
    free(seen);
    trh_csv_close(&c);
    return rc;
}

int trh_dataset_load(const char *dir, trh_dataset *ds) { return trh_dataset_load_flags(dir, ds, 0); }

int trh_dataset_load_flags(const char *dir, trh_dataset *ds, unsigned flags)
{
    memset(ds, 0, sizeof *ds);
    loader L = {.ds = ds, .flags = flags};
    L.mpath = trh_path_join(dir, "models.csv");
    L.ppath = trh_path_join(dir, "prompts.jsonl");
    L.cpath = trh_path_join(dir, "correctness.csv");
    int rc = load_models(&L) || load_prompts(&L) || load_scores(&L);
    if (rc) {
        trh_dataset_free(ds);
    } else if (L.pcap > ds->n_prompts) {
        ds->prompts = trh_xrealloc(ds->prompts, ds->n_prompts * sizeof *ds->prompts);
    }
    trh_strmap_free(&L.models);
    trh_strmap_free(&L.ids);
    free(L.mline);
    free(L.pline);
    free(L.mpath);
    free(L.ppath);
    free(L.cpath);
    return rc;
}

int trh_prompt_reader_open(trh_prompt_reader *r, const char *dir, const trh_dataset *ds)
{
    memset(r, 0, sizeof *r);
    r->path = trh_path_join(dir, "prompts.jsonl");
    if (trh_jsonl_open(&r->j, r->path)) {
        trh_prompt_reader_close(r);
        return 1;
    }
    unsigned long long now[4];
    file_stamp(r->j.f, now);
    if (memcmp(now, ds->prompts_stamp, sizeof now) != 0) {
        trh_err("%s: changed since the dataset was loaded (size, time or file differ); "
               "not mixing two versions of the prompts", r->path);
        trh_prompt_reader_close(r);
        return 1;
    }
    return 0;
}

/* load_prompts' walk over the lines (the same reader), keeping only the text. */
const char *trh_prompt_reader_next(trh_prompt_reader *r)
{
    const char *text;
    int got = trh_jsonl_next(&r->j);
    if (got > 0 && (json_str(r->j.obj, "text", NULL, &text) || !*text)) {
        trh_err_at(r->path, r->j.ln, "not the prompt it was when the dataset was loaded");
        return NULL;
    }
    if (got == 0)
        trh_err("%s: fewer prompts than when it was loaded", r->path);
    return got > 0 ? text : NULL;
}

void trh_prompt_reader_close(trh_prompt_reader *r)
{
    trh_jsonl_close(&r->j);
    free(r->path);
    memset(r, 0, sizeof *r);
}

void trh_dataset_free(trh_dataset *ds)
{
    for (size_t i = 0; i < ds->n_prompts; i++) {
        free(ds->prompts[i].id);
        free(ds->prompts[i].text);
        free(ds->prompts[i].task);
    }
    for (size_t i = 0; i < ds->n_models; i++)
        free(ds->models[i].name);
    free(ds->prompts);
    free(ds->models);
    free(ds->scores);
    memset(ds, 0, sizeof *ds);
}

/* ---- writing ---- */

/* What load would reject, checked before anything is written. */
static int check_dataset(const char *dir, const trh_dataset *ds)
{
    trh_strmap names = {0}, ids = {0};
    int rc = 1, dev = 0;
    if (!ds->n_models || !ds->n_prompts) {
        trh_err("%s: refusing to write a dataset with %zu prompts and %zu models", dir, ds->n_prompts,
               ds->n_models);
        goto out;
    }
    for (size_t i = 0; i < ds->n_models; i++) {
        const trh_ds_model *m = &ds->models[i];
        size_t len = m->name ? strlen(m->name) : 0;
        if (!len || len >= TRH_DS_NAME_MAX || !trh_utf8_valid(m->name, len) || trh_strmap_add(&names, m->name, i, NULL)) {
            trh_err("%s: model %zu: name empty, 64 bytes or more, not UTF-8 or repeated", dir, i);
            goto out;
        }
        if (!isfinite(m->cost) || m->cost < 0 || (m->where != TR_DEVICE && m->where != TR_CLOUD)) {
            trh_err("%s: model \"%s\": bad cost or where", dir, m->name);
            goto out;
        }
        dev |= m->where == TR_DEVICE;
    }
    if (!dev) {
        trh_err("%s: no device model", dir);
        goto out;
    }
    for (size_t i = 0; i < ds->n_prompts; i++) {
        const trh_ds_prompt *p = &ds->prompts[i];
        if (!p->id || !*p->id || !trh_utf8_valid(p->id, strlen(p->id)) || trh_strmap_add(&ids, p->id, i, NULL)) {
            trh_err("%s: prompt %zu: id missing, empty, not UTF-8 or repeated", dir, i);
            goto out;
        }
        if (!p->text || !*p->text || !trh_utf8_valid(p->text, strlen(p->text)) ||
            (p->task && !trh_utf8_valid(p->task, strlen(p->task))) || p->split < TRH_SPLIT_ANY ||
            p->split > TRH_SPLIT_TEST) {
            trh_err("%s: prompt \"%.100s\": empty or non-UTF-8 text or task, or bad split", dir, p->id);
            goto out;
        }
        for (size_t m = 0; m < ds->n_models; m++) {
            float v = ds->scores[i * ds->n_models + m];
            if (!isnan(v) && !(v >= 0 && v <= 1)) {
                trh_err("%s: prompt \"%.100s\": score %g outside [0,1]", dir, p->id, (double)v);
                goto out;
            }
        }
    }
    rc = 0;
out:
    trh_strmap_free(&names);
    trh_strmap_free(&ids);
    return rc;
}

static void put_str(trh_buf *b, const char *s)
{
    trh_buf_put(b, s, strlen(s));
}

static void csv_field(trh_buf *b, const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")]) {
        put_str(b, s);
        return;
    }
    trh_buf_put(b, "\"", 1);
    for (; *s; s++)
        trh_buf_put(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    trh_buf_put(b, "\"", 1);
}

/* Shortest decimal that reads back to the same value (as a float when
 * as_float), so 0.1f is written "0.1" and not "0.100000001". Starting at
 * the integer digit count keeps 70 from coming out as "7e+01". */
static void put_num(trh_buf *b, double v, int as_float)
{
    char s[40];
    int prec = 1;
    for (double t = fabs(v); t >= 10 && prec < 17; t /= 10)
        prec++;
    for (; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        double back = strtod(s, NULL);
        if (as_float ? (float)back == (float)v : back == v)
            break;
    }
    put_str(b, s);
}

static int mkdir_p(const char *dir)
{
    if (!*dir)
        return trh_err("empty directory name");
    char *p = trh_xstrdup(dir);
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            trh_err("cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return 1;
        }
        if (!(*s = c))
            break;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return trh_err("%s is not a directory", dir);
    return 0;
}

int trh_dataset_write(const char *dir, const trh_dataset *ds, int force)
{
    if (check_dataset(dir, ds) || mkdir_p(dir))
        return 1;
    static const char *names[3] = {"models.csv", "prompts.jsonl", "correctness.csv"};
    char *path[3];
    int rc = 0;
    for (int k = 0; k < 3; k++) {
        path[k] = trh_path_join(dir, names[k]);
        if (!force && !rc && access(path[k], F_OK) == 0)
            rc = trh_err("%s already exists (--force overwrites)", path[k]);
    }
    trh_buf b = {0};
    for (int k = 0; k < 3 && !rc; k++) {
        b.len = 0;
        if (k == 0) {
            put_str(&b, "name,cost,where\n");
            for (size_t i = 0; i < ds->n_models; i++) {
                csv_field(&b, ds->models[i].name);
                trh_buf_put(&b, ",", 1);
                put_num(&b, ds->models[i].cost, 0);
                put_str(&b, ds->models[i].where == TR_DEVICE ? ",device\n" : ",cloud\n");
            }
        } else if (k == 1) {
            for (size_t i = 0; i < ds->n_prompts && !rc; i++) {
                const trh_ds_prompt *p = &ds->prompts[i];
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "id", p->id);
                cJSON_AddStringToObject(o, "text", p->text);
                cJSON_AddStringToObject(o, "task", p->task ? p->task : "");
                if (p->split != TRH_SPLIT_ANY)
                    cJSON_AddStringToObject(o, "split", p->split == TRH_SPLIT_TRAIN ? "train" : "test");
                char *s = cJSON_PrintUnformatted(o);
                if (s) {
                    put_str(&b, s);
                    trh_buf_put(&b, "\n", 1);
                } else {
                    rc = trh_err("%s: cannot encode prompt %zu as JSON", path[k], i);
                }
                cJSON_free(s);
                cJSON_Delete(o);
            }
        } else {
            put_str(&b, "id");
            for (size_t m = 0; m < ds->n_models; m++) {
                trh_buf_put(&b, ",", 1);
                csv_field(&b, ds->models[m].name);
            }
            trh_buf_put(&b, "\n", 1);
            for (size_t i = 0; i < ds->n_prompts; i++) {
                csv_field(&b, ds->prompts[i].id);
                for (size_t m = 0; m < ds->n_models; m++) {
                    float v = ds->scores[i * ds->n_models + m];
                    trh_buf_put(&b, ",", 1);
                    if (!isnan(v))
                        put_num(&b, v, 1);
                }
                trh_buf_put(&b, "\n", 1);
            }
        }
        if (!rc && trh_write_file_atomic(path[k], b.data, b.len))
            rc = 1;
    }
    trh_buf_free(&b);
    for (int k = 0; k < 3; k++)
        free(path[k]);
    return rc;
}

char **trh_read_prompts(const char *path, size_t *n)
{
    trh_jsonl j;
    char **out = NULL;
    size_t cap = 0;
    int r = 1;
    *n = 0;
    if (trh_jsonl_open(&j, path))
        return NULL;
    while ((r = trh_jsonl_next(&j)) > 0) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j.obj, "text");
        if (!cJSON_IsString(t) || !t->valuestring[0]) {
            r = -trh_err_at(path, j.ln, "expected a JSON object with a non-empty \"text\" string");
            break;
        }
        if (*n == cap)
            out = trh_xrealloc(out, (cap = cap ? 2 * cap : 256) * sizeof *out);
        out[(*n)++] = trh_xstrdup(t->valuestring);
    }
    trh_jsonl_close(&j);
    if (r < 0) {
        for (size_t i = 0; i < *n; i++)
            free(out[i]);
        free(out);
        *n = 0;
        return NULL;
    }
    if (*n == 0)
        trh_err("%s: no prompts", path);
    return out;
}
