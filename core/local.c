/* Local learning (issue #16): outcome references the device observed, kept
 * in caller memory next to the pack's, merged into the kNN estimate, and
 * persisted as a blob sealed with the device key. No allocation. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_format.h"
#include "tr_internal.h"
#include "tr_outcome.h"

#define TR_LOCAL_STRUCT_MAGIC 0x4C434F4Cu /* "LOCL" */
/* Capacities past this would make the blob's and the arena's sizes large
 * enough to need care on 32-bit targets; nobody keeps 16M local outcomes. */
#define TR_LOCAL_CAPACITY_MAX (1u << 24)

/* ---- the blob (little-endian) ----
 * header (64 bytes), count entries, the level block (version 2), then
 * HMAC-SHA-256 (32 bytes) under the device key over all before it. An
 * entry: dim int8 values, then per model u32 adds (0: unknown) and f32 mean
 * outcome (0 when unknown), then u64 stamp (the add counter at its last
 * update). The level block: per model u32 residual count and f32 residual
 * sum (0 when the count is). A version 1 blob (no level block) is still
 * read: its store starts with no residuals. */
#define TR_LOCAL_BLOB_MAGIC 0x534C5254u /* "TRLS" */
#define TR_LOCAL_BLOB_VERSION 2u
enum {
    TR_LB_MAGIC = 0,
    TR_LB_VERSION = 4,
    TR_LB_DIM = 8,
    TR_LB_MODELS = 12,
    TR_LB_CAPACITY = 16, /* the exporting store's (informational) */
    TR_LB_COUNT = 20,
    TR_LB_EMBEDDER_FP = 24, /* tr_embedder_fingerprint, or 0 without one */
    TR_LB_MODELS_FP = 32,   /* FNV-1a of the embedder and model names */
    TR_LB_CLOCK = 40,       /* adds so far */
    TR_LB_EVICTED = 48,
    TR_LB_RESERVED = 56,    /* 8 zero bytes */
    TR_LB_HEAD = 64
};
#define TR_LOCAL_MAC_BYTES 32u

struct tr_local {
    uint32_t magic;
    uint32_t dim, stride, n_models, capacity, count;
    uint64_t clock, evicted;
    uint64_t embedder_fp, models_fp;
    uint8_t pack_hash[32]; /* the view it is bound to (routes check it) */
    int8_t *rows;          /* capacity x stride, zero padding past dim */
    float *inv_norm;       /* 1/||row|| */
    uint64_t *row_hash;    /* FNV-1a of the dim bytes: finds an embedding */
    uint64_t *stamp;       /* clock at the entry's last add */
    uint32_t *adds;        /* capacity x n_models: 0 = outcome unknown */
    /* capacity x words: bit m set where adds[m] != 0. A route walks an
     * entry's known models only (an entry usually knows the one model that
     * answered), not all n_models. */
    uint64_t *known;
    uint32_t words;        /* ceil(n_models / 64) */
    float *mean;           /* capacity x n_models: mean outcome of the adds */
    /* The level term (tinyroute.h): per model, the residuals outcome - the
     * route's estimate before the term, of every add that gave one. */
    uint32_t *res_n;       /* n_models */
    float *res_sum;        /* n_models, |sum| <= count */
};

/* The pack rows' stride: D rounded up to 16 (PACK_FORMAT.md, ref_i8), which
 * the kernels may read whole. */
static uint32_t stride_of(uint32_t dim) { return (dim + 15u) & ~15u; }
static uint32_t words_of(uint32_t n_models) { return (n_models + 63u) / 64u; }

static void carve(tr_arena *a, tr_local *s, uint32_t capacity, uint32_t dim, uint32_t n_models)
{
    const size_t cm = (size_t)capacity * n_models;
    s->rows = tr_arena_take(a, (size_t)capacity * stride_of(dim));
    s->inv_norm = tr_arena_take(a, sizeof(float) * capacity);
    s->row_hash = tr_arena_take(a, sizeof(uint64_t) * capacity);
    s->stamp = tr_arena_take(a, sizeof(uint64_t) * capacity);
    s->adds = tr_arena_take(a, sizeof(uint32_t) * cm);
    s->known = tr_arena_take(a, sizeof(uint64_t) * capacity * words_of(n_models));
    s->mean = tr_arena_take(a, sizeof(float) * cm);
    s->res_n = tr_arena_take(a, sizeof(uint32_t) * n_models);
    s->res_sum = tr_arena_take(a, sizeof(float) * n_models);
}

size_t tr_local_size(uint32_t capacity, uint32_t dim, uint32_t n_models)
{
    if (capacity == 0 || capacity > TR_LOCAL_CAPACITY_MAX || dim == 0 || dim > TR_DIM_MAX ||
        n_models == 0 || n_models > TR_MODELS_MAX)
        return 0;
    /* 2^24 x 2^16 x 8 bytes overflows a 32-bit size_t: refuse there. */
    const uint64_t per =
        (uint64_t)stride_of(dim) + 4 + 8 + 8 + 8 * (uint64_t)n_models + 8 * words_of(n_models);
    if ((uint64_t)capacity * per + 8 * (uint64_t)n_models + 1024 > (uint64_t)SIZE_MAX)
        return 0;
    tr_arena a = {NULL, (size_t)-1, 0};
    tr_local s;
    tr_arena_take(&a, sizeof(struct tr_local));
    carve(&a, &s, capacity, dim, n_models);
    return a.used;
}

static int local_ok(const tr_local *s) { return s && s->magic == TR_LOCAL_STRUCT_MAGIC; }

/* What binds a store to a pack beyond dim and n_models: the embedder table
 * (as the outcome log binds its records) and the model names in order (an
 * outcome of model 3 means nothing for another pack's model 3). */
static void fingerprints(const tr_pack_view *p, uint64_t *emb, uint64_t *models)
{
    *emb = p->has_embedder ? tr_embedder_fingerprint(&p->embedder) : 0;
    uint64_t h = tr_fnv1a64(p->info.embedder, strnlen(p->info.embedder, TR_EMBEDDER_NAME_MAX));
    for (uint32_t m = 0; m < p->info.n_models; m++) {
        tr_model_info mi;
        tr_model_info_of(p, m, &mi);
        /* Each name hashed on its own and chained, so that "ab","c" and
         * "a","bc" differ. */
        h = (h ^ tr_fnv1a64(mi.name, strnlen(mi.name, TR_MODEL_NAME_MAX))) * 1099511628211ull;
    }
    *models = h;
}

tr_status tr_local_init(void *mem, size_t bytes, uint32_t capacity, const tr_pack *pk,
                        tr_local **out)
{
    if (!mem || !out || !tr_pack_ok(pk) || (uintptr_t)mem % TR_ARENA_ALIGN != 0)
        return TR_E_ARG;
    const tr_pack_view *p = &pk->served;
    const size_t need = tr_local_size(capacity, p->info.dim, p->info.n_models);
    if (need == 0)
        return TR_E_ARG;
    if (bytes < need)
        return TR_E_ARENA_TOO_SMALL;
    /* The store is written where the pack's bytes are read from. */
    if (tr_overlaps(mem, need, pk->base_bytes, pk->base_len) ||
        (pk->delta_bytes && tr_overlaps(mem, need, pk->delta_bytes, pk->delta_len)) ||
        tr_overlaps(mem, need, pk, sizeof *pk))
        return TR_E_ARG;
    tr_arena a = {mem, bytes, 0};
    tr_local *s = tr_arena_take(&a, sizeof *s);
    memset(s, 0, sizeof *s);
    s->dim = p->info.dim;
    s->stride = stride_of(s->dim);
    s->n_models = p->info.n_models;
    s->words = words_of(s->n_models);
    s->capacity = capacity;
    carve(&a, s, capacity, s->dim, s->n_models);
    /* Padding must read as zeros for the kernels; the rest is written per
     * entry before it is counted. */
    memset(s->rows, 0, (size_t)capacity * s->stride);
    memset(s->res_n, 0, sizeof(uint32_t) * s->n_models);
    memset(s->res_sum, 0, sizeof(float) * s->n_models);
    fingerprints(p, &s->embedder_fp, &s->models_fp);
    memcpy(s->pack_hash, p->info.pack_hash, 32);
    s->magic = TR_LOCAL_STRUCT_MAGIC;
    *out = s;
    return TR_OK;
}

tr_status tr_local_bind(tr_local *s, const tr_pack *pk)
{
    if (!local_ok(s) || !tr_pack_ok(pk))
        return TR_E_ARG;
    const tr_pack_view *p = &pk->served;
    if (p->info.dim != s->dim || p->info.n_models != s->n_models)
        return TR_E_LOCAL_PACK;
    uint64_t emb, models;
    fingerprints(p, &emb, &models);
    if (emb != s->embedder_fp || models != s->models_fp)
        return TR_E_LOCAL_PACK;
    memcpy(s->pack_hash, p->info.pack_hash, 32);
    return TR_OK;
}

tr_status tr_local_check(const tr_local *s, const tr_pack_view *p)
{
    if (!local_ok(s))
        return TR_E_ARG;
    return s->dim == p->info.dim && s->n_models == p->info.n_models &&
                   memcmp(s->pack_hash, p->info.pack_hash, 32) == 0
               ? TR_OK
               : TR_E_LOCAL_PACK;
}

static uint32_t find(const tr_local *s, const int8_t *e, uint64_t h)
{
    for (uint32_t i = 0; i < s->count; i++)
        if (s->row_hash[i] == h && memcmp(s->rows + (size_t)i * s->stride, e, s->dim) == 0)
            return i;
    return UINT32_MAX;
}

tr_status tr_local_add(tr_local *s, const int8_t *e, uint32_t dim, uint32_t model, float outcome)
{
    return tr_local_add_est(s, e, dim, model, outcome, NAN);
}

tr_status tr_local_add_est(tr_local *s, const int8_t *e, uint32_t dim, uint32_t model,
                           float outcome, float estimate)
{
    if (!local_ok(s) || !e)
        return TR_E_ARG;
    if (dim != s->dim)
        return TR_E_DIM_MISMATCH;
    if (model >= s->n_models || !(outcome >= 0.0f && outcome <= 1.0f)) /* NaN too */
        return TR_E_ARG;
    /* NaN: unknown (the entry still counts); anything else is an estimate. */
    if (!isnan(estimate) && !(estimate >= 0.0f && estimate <= 1.0f))
        return TR_E_ARG;
    tr_status st = tr_check_i8(e, dim);
    if (st != TR_OK)
        return st;
    const uint64_t h = tr_fnv1a64(e, dim);
    uint32_t i = find(s, e, h);
    if (i == UINT32_MAX) {
        if (s->count < s->capacity) {
            i = s->count;
        } else {
            /* Oldest first: the entry least recently added to (lowest stamp;
             * stamps are distinct, so this is one entry). */
            i = 0;
            for (uint32_t j = 1; j < s->count; j++)
                if (s->stamp[j] < s->stamp[i])
                    i = j;
            s->evicted++;
        }
        int8_t *row = s->rows + (size_t)i * s->stride;
        memcpy(row, e, dim);
        s->inv_norm[i] = tr_i8_inv_norm(e, dim);
        s->row_hash[i] = h;
        memset(s->adds + (size_t)i * s->n_models, 0, sizeof(uint32_t) * s->n_models);
        memset(s->mean + (size_t)i * s->n_models, 0, sizeof(float) * s->n_models);
        memset(s->known + (size_t)i * s->words, 0, sizeof(uint64_t) * s->words);
        if (i == s->count)
            s->count++;
    }
    uint32_t *n = s->adds + (size_t)i * s->n_models + model;
    float *mu = s->mean + (size_t)i * s->n_models + model;
    /* A running mean; the count saturates (the mean then moves as an
     * exponential average of weight 2^-32: never in practice). */
    if (*n < UINT32_MAX)
        (*n)++;
    *mu += (outcome - *mu) / (float)*n;
    s->known[(size_t)i * s->words + model / 64u] |= 1ull << (model % 64u);
    if (*mu < 0.0f) /* rounding must keep it an outcome */
        *mu = 0.0f;
    if (*mu > 1.0f)
        *mu = 1.0f;
    s->stamp[i] = ++s->clock;
    /* The residual against the estimate the route made at that prompt:
     * where the device model was chosen because the pack was optimistic,
     * the outcome says so, and the mean carries that (bandit honesty). */
    if (!isnan(estimate) && s->res_n[model] < UINT32_MAX) {
        s->res_n[model]++;
        s->res_sum[model] += outcome - estimate;
    }
    return TR_OK;
}

tr_status tr_local_stats_get(const tr_local *s, tr_local_stats *st)
{
    if (!local_ok(s) || !st)
        return TR_E_ARG;
    st->count = s->count;
    st->capacity = s->capacity;
    st->adds = s->clock;
    st->evicted = s->evicted;
    return TR_OK;
}

uint32_t tr_local_count(const tr_local *s) { return s->count; }

tr_status tr_local_level(const tr_local *s, uint32_t model, float strength, float *level)
{
    if (!local_ok(s) || !level || model >= s->n_models || !(strength > 0.0f) || isinf(strength))
        return TR_E_ARG;
    const uint32_t n = s->res_n[model];
    /* n/(n+s) * (sum/n): the mean residual shrunk toward 0 by s pseudo-counts. */
    *level = n ? s->res_sum[model] / ((float)n + strength) : 0.0f;
    return TR_OK;
}

void tr_local_apply_level(const tr_local *s, float strength, const float *share, float *predicted)
{
    for (uint32_t m = 0; m < s->n_models; m++) {
        const uint32_t n = s->res_n[m];
        if (!n) /* no residual: the estimate as it was, bit for bit */
            continue;
        /* Only the pack's part of the estimate is shifted: local outcomes
         * are the device model's own level already. */
        const float v = predicted[m] + share[m] * (s->res_sum[m] / ((float)n + strength));
        predicted[m] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

int tr_local_evidence(const tr_local *s, const tr_kernels *kern, const int8_t *q, float inv_qnorm,
                      float radius, float w, int32_t *dots, float *hits, float *known)
{
    int any = 0;
    for (uint32_t m = 0; m < s->n_models; m++)
        hits[m] = known[m] = 0.0f;
    for (uint32_t base = 0; base < s->count; base += TR_KNN_BLOCK) {
        uint32_t nb = s->count - base < TR_KNN_BLOCK ? s->count - base : TR_KNN_BLOCK;
        kern->dot_i8_rows(q, s->rows + (size_t)base * s->stride, s->stride, nb, s->dim, dots);
        /* The entries inside the radius, their offsets compacted over the
         * block's dots without a branch (few are inside: a branch per
         * entry mispredicts on each of them). The pack's own distance
         * formula (router.c), so that the radius and the entries compare
         * like with like. */
        uint32_t n_in = 0;
        for (uint32_t j = 0; j < nb; j++) {
            const float d = 1.0f - (float)dots[j] * s->inv_norm[base + j] * inv_qnorm;
            dots[n_in] = (int32_t)j;
            n_in += d <= radius;
        }
        /* Their known sets and means are scattered over the store: ask for
         * all of them before walking any, so the misses overlap. */
        for (uint32_t t = 0; t < n_in; t++) {
            const uint32_t i = base + (uint32_t)dots[t];
            __builtin_prefetch(s->known + (size_t)i * s->words);
            __builtin_prefetch(s->mean + (size_t)i * s->n_models);
        }
        for (uint32_t t = 0; t < n_in; t++) {
            const uint32_t i = base + (uint32_t)dots[t];
            const uint64_t *kb = s->known + (size_t)i * s->words;
            const float *mu = s->mean + (size_t)i * s->n_models;
            /* Models in ascending order, as a loop over all of them would
             * add them: the sums do not depend on the walk. */
            for (uint32_t wd = 0; wd < s->words; wd++)
                for (uint64_t b = kb[wd]; b; b &= b - 1) {
                    const uint32_t m = wd * 64u + (uint32_t)__builtin_ctzll(b);
                    hits[m] += w * mu[m];
                    known[m] += w;
                    any = 1;
                }
        }
    }
    return any;
}

/* ---- persistence ---- */

/* Bytes of a blob of count entries (version 1: no level block); 0 if it
 * would not fit a size_t. */
static size_t blob_bytes(uint32_t version, uint32_t dim, uint32_t n_models, uint32_t count)
{
    const uint64_t e = (uint64_t)dim + 8u * (uint64_t)n_models + 8u;
    const uint64_t level = version >= 2 ? 8u * (uint64_t)n_models : 0;
    const uint64_t b = TR_LB_HEAD + (uint64_t)count * e + level + TR_LOCAL_MAC_BYTES;
    /* dim, n_models, count are u32: b < 2^32 * 2^36, no u64 overflow. */
    return b > (uint64_t)SIZE_MAX ? 0 : (size_t)b;
}

size_t tr_local_export_size(const tr_local *s)
{
    return local_ok(s) ? blob_bytes(TR_LOCAL_BLOB_VERSION, s->dim, s->n_models, s->count) : 0;
}

tr_status tr_local_export(const tr_local *s, const uint8_t key[TR_LOCAL_KEY_BYTES], void *out,
                          size_t cap, size_t *written)
{
    if (!local_ok(s) || !key || !written)
        return TR_E_ARG;
    const size_t need = blob_bytes(TR_LOCAL_BLOB_VERSION, s->dim, s->n_models, s->count);
    *written = need;
    if (!out || cap < need)
        return TR_E_OUTPUT_TOO_SMALL;
    uint8_t *o = out;
    memset(o, 0, TR_LB_HEAD);
    tr_st32(o + TR_LB_MAGIC, TR_LOCAL_BLOB_MAGIC);
    tr_st32(o + TR_LB_VERSION, TR_LOCAL_BLOB_VERSION);
    tr_st32(o + TR_LB_DIM, s->dim);
    tr_st32(o + TR_LB_MODELS, s->n_models);
    tr_st32(o + TR_LB_CAPACITY, s->capacity);
    tr_st32(o + TR_LB_COUNT, s->count);
    tr_st64(o + TR_LB_EMBEDDER_FP, s->embedder_fp);
    tr_st64(o + TR_LB_MODELS_FP, s->models_fp);
    tr_st64(o + TR_LB_CLOCK, s->clock);
    tr_st64(o + TR_LB_EVICTED, s->evicted);
    uint8_t *e = o + TR_LB_HEAD;
    for (uint32_t i = 0; i < s->count; i++) {
        memcpy(e, s->rows + (size_t)i * s->stride, s->dim);
        e += s->dim;
        for (uint32_t m = 0; m < s->n_models; m++) {
            const size_t x = (size_t)i * s->n_models + m;
            tr_st32(e, s->adds[x]);
            tr_stf32(e + 4, s->mean[x]);
            e += 8;
        }
        tr_st64(e, s->stamp[i]);
        e += 8;
    }
    for (uint32_t m = 0; m < s->n_models; m++, e += 8) {
        tr_st32(e, s->res_n[m]);
        tr_stf32(e + 4, s->res_sum[m]);
    }
    return tr_hmac_sha256(key, TR_LOCAL_KEY_BYTES, o, need - TR_LOCAL_MAC_BYTES,
                          o + need - TR_LOCAL_MAC_BYTES);
}

/* Constant time: how many bytes differ is not leaked through timing. */
static int mac_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;
    for (unsigned i = 0; i < TR_LOCAL_MAC_BYTES; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* The checks a sealed blob must still pass: a MAC only says the key's
 * holder wrote it, not that the writer was this library. */
static tr_status entries_ok(const uint8_t *b, uint32_t dim, uint32_t n_models, uint32_t count,
                            uint64_t clock)
{
    const uint8_t *e = b + TR_LB_HEAD;
    for (uint32_t i = 0; i < count; i++) {
        if (tr_check_i8((const int8_t *)e, dim) != TR_OK)
            return TR_E_LOCAL_BLOB;
        e += dim;
        for (uint32_t m = 0; m < n_models; m++, e += 8) {
            const uint32_t n = tr_ld32(e);
            const float mu = tr_ldf32(e + 4);
            if (n ? !(mu >= 0.0f && mu <= 1.0f) : tr_ld32(e + 4) != 0)
                return TR_E_LOCAL_BLOB;
        }
        const uint64_t stamp = tr_ld64(e);
        if (stamp == 0 || stamp > clock)
            return TR_E_LOCAL_BLOB;
        e += 8;
    }
    return TR_OK;
}

/* The level block at l (version 2): a residual is in [-1,1], so a sum
 * beyond its count is not one this library wrote; no more residuals than
 * adds either. */
static tr_status level_ok(const uint8_t *l, uint32_t n_models, uint64_t clock)
{
    for (uint32_t m = 0; m < n_models; m++, l += 8) {
        const uint32_t n = tr_ld32(l);
        const float sum = tr_ldf32(l + 4);
        if (n ? !(fabsf(sum) <= (float)n) || n > clock : tr_ld32(l + 4) != 0)
            return TR_E_LOCAL_BLOB;
    }
    return TR_OK;
}

tr_status tr_local_import(tr_local *s, const uint8_t key[TR_LOCAL_KEY_BYTES], const void *blob,
                          size_t len)
{
    if (!local_ok(s) || !key || (!blob && len))
        return TR_E_ARG;
    const uint8_t *b = blob;
    /* Shape first, from the header as written (not trusted yet): a blob of
     * another length than its header says is truncated or extended. */
    if (len < TR_LB_HEAD + TR_LOCAL_MAC_BYTES || tr_ld32(b + TR_LB_MAGIC) != TR_LOCAL_BLOB_MAGIC)
        return TR_E_LOCAL_BLOB;
    /* Version 1 (before the level term) is migrated: no residuals. */
    const uint32_t version = tr_ld32(b + TR_LB_VERSION);
    if (version != 1u && version != TR_LOCAL_BLOB_VERSION)
        return TR_E_LOCAL_BLOB;
    const uint32_t dim = tr_ld32(b + TR_LB_DIM), n_models = tr_ld32(b + TR_LB_MODELS),
                   count = tr_ld32(b + TR_LB_COUNT);
    if (dim == 0 || dim > TR_DIM_MAX || n_models == 0 || n_models > TR_MODELS_MAX ||
        blob_bytes(version, dim, n_models, count) != len)
        return TR_E_LOCAL_BLOB;
    /* Then the seal, before any field is believed. */
    uint8_t mac[32];
    tr_status st = tr_hmac_sha256(key, TR_LOCAL_KEY_BYTES, b, len - TR_LOCAL_MAC_BYTES, mac);
    if (st != TR_OK)
        return st;
    if (!mac_equal(mac, b + len - TR_LOCAL_MAC_BYTES))
        return TR_E_LOCAL_MAC;
    /* Sealed by this device: now which pack it belongs to. */
    if (dim != s->dim || n_models != s->n_models ||
        tr_ld64(b + TR_LB_EMBEDDER_FP) != s->embedder_fp ||
        tr_ld64(b + TR_LB_MODELS_FP) != s->models_fp)
        return TR_E_LOCAL_PACK;
    const uint64_t clock = tr_ld64(b + TR_LB_CLOCK);
    for (unsigned i = TR_LB_RESERVED; i < TR_LB_HEAD; i++)
        if (b[i])
            return TR_E_LOCAL_BLOB;
    /* The level block ends where the MAC starts (version 2 only: a version
     * 1 blob may be shorter than one). */
    const uint8_t *lv = version >= 2 ? b + len - TR_LOCAL_MAC_BYTES - 8u * (size_t)n_models : b;
    if (count > clock || (st = entries_ok(b, dim, n_models, count, clock)) != TR_OK ||
        (version >= 2 && (st = level_ok(lv, n_models, clock)) != TR_OK))
        return st == TR_OK ? TR_E_LOCAL_BLOB : st;
    if (count > s->capacity)
        return TR_E_ARENA_TOO_SMALL;
    /* Every check passed: only now is the store written. */
    const uint8_t *e = b + TR_LB_HEAD;
    for (uint32_t i = 0; i < count; i++) {
        int8_t *row = s->rows + (size_t)i * s->stride;
        memcpy(row, e, dim);
        s->inv_norm[i] = tr_i8_inv_norm(row, dim);
        s->row_hash[i] = tr_fnv1a64(row, dim);
        e += dim;
        uint64_t *kb = s->known + (size_t)i * s->words;
        memset(kb, 0, sizeof(uint64_t) * s->words);
        for (uint32_t m = 0; m < n_models; m++, e += 8) {
            const size_t x = (size_t)i * n_models + m;
            s->adds[x] = tr_ld32(e);
            s->mean[x] = tr_ldf32(e + 4);
            if (s->adds[x])
                kb[m / 64u] |= 1ull << (m % 64u);
        }
        s->stamp[i] = tr_ld64(e);
        e += 8;
    }
    for (uint32_t m = 0; m < n_models; m++) {
        s->res_n[m] = version >= 2 ? tr_ld32(lv + 8u * m) : 0;
        s->res_sum[m] = version >= 2 ? tr_ldf32(lv + 8u * m + 4) : 0.0f;
    }
    s->count = count;
    s->clock = clock;
    s->evicted = tr_ld64(b + TR_LB_EVICTED);
    return TR_OK;
}
