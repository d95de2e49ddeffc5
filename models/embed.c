#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_embed.h"

#include <math.h>
#include <string.h>

#include "tr_format.h"
#include "tr_knn.h"

/* Is [off, off+bytes) inside a section of len bytes, 4-byte aligned? */
static int part_ok(uint32_t off, uint64_t bytes, size_t len)
{
    return off % 4 == 0 && off >= TR_EMB_HEADER_BYTES && off <= len &&
           bytes <= len - off;
}

tr_status tr_embedder_view(const uint8_t *sec, size_t len, tr_embedder *e)
{
    if (len < TR_EMB_HEADER_BYTES || memcmp(sec, TR_EMB_MAGIC, 8) != 0)
        return TR_E_MALFORMED;
    e->n_words = tr_ld32(sec + TR_E_N_WORDS);
    e->dim = tr_ld32(sec + TR_E_DIM);
    e->n_buckets = tr_ld32(sec + TR_E_N_BUCKETS);
    e->max_word = tr_ld32(sec + TR_E_MAX_WORD);
    e->scale = tr_ldf32(sec + TR_E_VEC_SCALE);
    e->sif_a = tr_ldf32(sec + TR_E_SIF_A);
    e->flags = tr_ld32(sec + TR_E_FLAGS);
    uint32_t nb = e->n_buckets, nw = e->n_words;
    const int hashed = (e->flags & TR_EMB_HASHED) != 0;
    if (nw == 0 || e->dim == 0 || !(e->scale > 0.0f) || !isfinite(e->scale) ||
        (e->flags & ~(TR_EMB_HAS_PC | TR_EMB_HASHED)) != 0 || tr_ld32(sec + TR_E_TOTAL) != len)
        return TR_E_MALFORMED;
    if (hashed ? (nw & (nw - 1)) != 0 || nb != 0 || e->max_word != 0
               : nb <= nw || (nb & (nb - 1)) != 0 || e->max_word == 0 ||
                     e->max_word >= TR_EMB_WORD_MAX)
        return TR_E_MALFORMED;
    uint32_t o_b = tr_ld32(sec + TR_E_OFF_BUCKETS), o_wo = tr_ld32(sec + TR_E_OFF_WORD_OFFS),
             o_c = tr_ld32(sec + TR_E_OFF_CHARS), o_w = tr_ld32(sec + TR_E_OFF_WEIGHTS),
             o_v = tr_ld32(sec + TR_E_OFF_VECTORS), o_pc = tr_ld32(sec + TR_E_OFF_PC);
    if (!part_ok(o_b, 4ull * nb, len) ||
        !part_ok(o_wo, hashed ? 0 : 4ull * (nw + 1ull), len) ||
        !part_ok(o_w, 4ull * nw, len) || !part_ok(o_v, (uint64_t)nw * e->dim, len) ||
        !part_ok(o_pc, 4ull * e->dim, len) || !part_ok(o_c, 0, len))
        return TR_E_MALFORMED;
    e->buckets = (const uint32_t *)(const void *)(sec + o_b);
    e->word_offs = (const uint32_t *)(const void *)(sec + o_wo);
    e->chars = sec + o_c;
    e->weights = (const float *)(const void *)(sec + o_w);
    e->vectors = (const int8_t *)(sec + o_v);
    e->pc = (e->flags & TR_EMB_HAS_PC) ? (const float *)(const void *)(sec + o_pc) : NULL;
    /* Words: offsets ascending, inside the chars part, of sane length. */
    size_t chars_len = len - o_c;
    if (!hashed && e->word_offs[0] != 0)
        return TR_E_MALFORMED;
    for (uint32_t i = 0; i < nw && !hashed; i++) {
        uint32_t a = e->word_offs[i], b = e->word_offs[i + 1];
        if (b <= a || b - a > e->max_word || b > chars_len)
            return TR_E_MALFORMED;
    }
    if (!tr_i8_rows_ok(e->vectors, nw, e->dim, e->dim))
        return TR_E_MALFORMED;
    for (uint32_t i = 0; i < nw; i++)
        if (!isfinite(e->weights[i]) || e->weights[i] < 0.0f)
            return TR_E_MALFORMED;
    for (uint32_t i = 0; i < nb; i++)
        if (e->buckets[i] > nw)
            return TR_E_MALFORMED;
    if (e->pc)
        for (uint32_t d = 0; d < e->dim; d++)
            if (!isfinite(e->pc[d]))
                return TR_E_MALFORMED;
    return TR_OK;
}

int32_t tr_embedder_lookup(const tr_embedder *e, const uint8_t *w, uint32_t n)
{
    uint32_t mask = e->n_buckets - 1;
    uint32_t h = tr_fnv1a(w, n) & mask;
    /* The table has empty buckets (n_buckets > n_words), so this ends. */
    for (uint32_t probe = 0; probe < e->n_buckets; probe++) {
        uint32_t slot = e->buckets[(h + probe) & mask];
        if (slot == 0)
            return -1;
        uint32_t idx = slot - 1;
        uint32_t a = e->word_offs[idx], b = e->word_offs[idx + 1];
        if (b - a == n && memcmp(e->chars + a, w, n) == 0)
            return (int32_t)idx;
    }
    return -1;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. Rejects
 * overlongs, surrogates and code points above U+10FFFF. */
size_t tr_utf8_seq(const uint8_t *p, size_t left)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) { n = 2; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; min = 0x10000; }
    else return 0;
    if (left < n)
        return 0;
    uint32_t cp = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int is_word_byte(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static void add_word(const tr_embedder *e, const uint8_t *w, uint32_t n,
                     float *acc, uint32_t *n_known)
{
    int32_t idx = tr_embedder_lookup(e, w, n);
    if (idx < 0)
        return;
    float wt = e->weights[idx];
    const int8_t *v = e->vectors + (size_t)idx * e->dim;
    for (uint32_t d = 0; d < e->dim; d++)
        acc[d] += wt * (float)v[d];
    (*n_known)++;
}

/* ---- hashed tables ---- */

typedef struct cp_ref {
    const uint8_t *p;
    uint32_t n;
} cp_ref;

static const uint8_t word_open = '<', word_close = '>';

static uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

/* The n-grams that end at code point count-1 of "<word>" (ring: the last
 * TR_NGRAM_MAX code points). */
static void ngrams_ending(const cp_ref *ring, size_t count, uint32_t mask, tr_feature_fn fn,
                          void *ctx)
{
    for (uint32_t n = TR_NGRAM_MIN; n <= TR_NGRAM_MAX && n <= count; n++) {
        uint32_t h = 2166136261u;
        for (size_t k = count - n; k < count; k++) {
            const cp_ref *c = &ring[k % TR_NGRAM_MAX];
            for (uint32_t j = 0; j < c->n; j++) {
                h ^= lower(c->p[j]);
                h *= 16777619u;
            }
        }
        fn(ctx, h & mask);
    }
}

void tr_hashed_features(const uint8_t *s, size_t len, uint32_t rows, tr_feature_fn fn, void *ctx)
{
    const uint32_t mask = rows - 1;
    size_t i = 0;
    while (i < len) {
        if (!is_word_byte(s[i])) {
            i++;
            continue;
        }
        cp_ref ring[TR_NGRAM_MAX];
        size_t count = 0;
        uint32_t h = (2166136261u ^ 0x01u) * 16777619u; /* word features: 0x01 first */
        ring[count++ % TR_NGRAM_MAX] = (cp_ref){&word_open, 1};
        while (i < len && is_word_byte(s[i])) {
            /* The caller checked the UTF-8: a lead byte starts a whole
             * sequence (a stray byte, had it not, is a code point of one). */
            size_t n = s[i] < 0x80 ? 1 : tr_utf8_seq(s + i, len - i);
            n = n ? n : 1;
            for (size_t j = 0; j < n; j++) {
                h ^= lower(s[i + j]);
                h *= 16777619u;
            }
            ring[count++ % TR_NGRAM_MAX] = (cp_ref){s + i, (uint32_t)n};
            ngrams_ending(ring, count, mask, fn, ctx);
            i += n;
        }
        ring[count++ % TR_NGRAM_MAX] = (cp_ref){&word_close, 1};
        ngrams_ending(ring, count, mask, fn, ctx);
        fn(ctx, h & mask);
    }
}

typedef struct row_sum {
    const tr_embedder *e;
    float *acc;
    uint32_t n;
} row_sum;

static void add_row(void *ctx, uint32_t row)
{
    row_sum *r = ctx;
    const float wt = r->e->weights[row];
    const int8_t *v = r->e->vectors + (size_t)row * r->e->dim;
    for (uint32_t d = 0; d < r->e->dim; d++)
        r->acc[d] += wt * (float)v[d];
    r->n++;
}

tr_status tr_embed_f32(const tr_embedder *e, const char *text, size_t len,
                       float *acc, uint32_t *n_known)
{
    const uint8_t *s = (const uint8_t *)text;
    if (len == 0)
        return TR_E_EMPTY_INPUT;
    for (size_t i = 0; i < len;) {
        size_t n = tr_utf8_seq(s + i, len - i);
        if (n == 0)
            return TR_E_UTF8;
        i += n;
    }
    memset(acc, 0, sizeof(float) * e->dim);
    *n_known = 0;
    if (e->flags & TR_EMB_HASHED) {
        row_sum r = {e, acc, 0};
        tr_hashed_features(s, len, e->n_words, add_row, &r);
        *n_known = r.n;
        goto remove_pc;
    }
    uint8_t word[TR_EMB_WORD_MAX];
    uint32_t wn = 0;
    int too_long = 0;
    for (size_t i = 0; i <= len; i++) {
        uint8_t c = i < len ? s[i] : 0;
        if (i < len && is_word_byte(c)) {
            if (wn < e->max_word)
                word[wn++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
            else
                too_long = 1; /* cannot be in the table: skip it */
            continue;
        }
        if (wn && !too_long)
            add_word(e, word, wn, acc, n_known);
        wn = 0;
        too_long = 0;
    }
remove_pc:
    if (e->pc && *n_known) {
        float dot = 0.0f, pp = 0.0f;
        for (uint32_t d = 0; d < e->dim; d++) {
            dot += acc[d] * e->pc[d];
            pp += e->pc[d] * e->pc[d];
        }
        if (pp > 0.0f) {
            float t = dot / pp;
            for (uint32_t d = 0; d < e->dim; d++)
                acc[d] -= t * e->pc[d];
        }
    }
    return TR_OK;
}

tr_status tr_quantize_i8(const float *v, uint32_t dim, int8_t *q)
{
    float m = 0.0f;
    for (uint32_t d = 0; d < dim; d++) {
        if (!isfinite(v[d]))
            return TR_E_NOT_FINITE;
        float a = fabsf(v[d]);
        if (a > m)
            m = a;
    }
    if (m == 0.0f)
        return TR_E_ZERO_VECTOR;
    /* Divide first: 127/m overflows for denormal m. */
    for (uint32_t d = 0; d < dim; d++) {
        float x = v[d] / m * 127.0f;
        int r = (int)(x >= 0.0f ? x + 0.5f : x - 0.5f);
        q[d] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
    }
    return TR_OK;
}
