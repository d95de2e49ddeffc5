/* The outcome log: a ring of records in caller memory, each already in its
 * export layout (core/tr_outcome.h), so that export is a header and copies. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_format.h"
#include "tr_internal.h"
#include "tr_outcome.h"

#define TR_LOG_STRUCT_MAGIC 0x474F4C52u /* "RLOG" */

struct tr_log {
    uint32_t magic;
    uint32_t dim, capacity, flags;
    uint32_t record_bytes;
    uint64_t next_id;        /* ids start at first_id (1 by default): 0 is never a record */
    uint64_t first_id;
    uint64_t dropped;
    int bound;               /* embedder fixed by the first record */
    char embedder[TR_EMBEDDER_NAME_MAX];
    uint64_t embedder_fp;
    uint8_t fp_pack[32];     /* the pack embedder_fp was computed from */
    uint64_t cached_fp;
    int fp_cached;
    uint8_t pack_hash[32];   /* newest record's pack */
    uint8_t key[16];
    int key_set;
    int device_set;          /* tr_log_set_device: export version 2 */
    uint64_t device_id;
    uint8_t dev_key[TR_LOG_KEY_MAX];
    size_t dev_key_len;
    int8_t *spare;           /* embedding under construction */
    uint8_t *slots;
};

/* ---- hashes ---- */

static uint64_t fnv_step(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

#define TR_FNV64_BASIS 14695981039346656037ull

uint64_t tr_fnv1a64(const void *p, size_t n) { return fnv_step(TR_FNV64_BASIS, p, n); }

uint64_t tr_embedder_fingerprint(const tr_embedder *e)
{
    uint8_t s[28];
    uint32_t fs, fa;
    memcpy(&fs, &e->scale, 4);
    memcpy(&fa, &e->sif_a, 4);
    tr_st32(s, e->n_words);
    tr_st32(s + 4, e->dim);
    tr_st32(s + 8, e->max_word);
    const int hashed = (e->flags & TR_EMB_HASHED) != 0;
    tr_st32(s + 12, e->flags & (TR_EMB_HAS_PC | TR_EMB_HASHED));
    tr_st32(s + 16, fs);
    tr_st32(s + 20, fa);
    tr_st32(s + 24, hashed ? 0 : e->word_offs[e->n_words]);
    uint64_t h = fnv_step(TR_FNV64_BASIS, s, sizeof s);
    /* The arrays as the section stores them (little-endian, as the device
     * reads them in place); a hashed table has no words. */
    if (!hashed) {
        h = fnv_step(h, (const uint8_t *)e->word_offs, 4 * ((size_t)e->n_words + 1));
        h = fnv_step(h, e->chars, e->word_offs[e->n_words]);
    }
    h = fnv_step(h, (const uint8_t *)e->weights, 4 * (size_t)e->n_words);
    h = fnv_step(h, (const uint8_t *)e->vectors, (size_t)e->n_words * e->dim);
    if (e->pc)
        h = fnv_step(h, (const uint8_t *)e->pc, 4 * (size_t)e->dim);
    return h;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

uint64_t tr_siphash24(const uint8_t key[16], const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t k0 = tr_ld64(key), k1 = tr_ld64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = tr_ld64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the ring ---- */

size_t tr_log_size(uint32_t dim, uint32_t capacity, uint32_t flags)
{
    if (capacity == 0 || (flags & ~(uint32_t)(TR_LOG_EMBEDDING | TR_LOG_HASH | TR_LOG_TEXT)) ||
        ((flags & TR_LOG_EMBEDDING) && dim == 0))
        return 0;
    /* The log keeps a record's size in 32 bits: a dim near 2^32 has none
     * (it reported 464 bytes when the sizes wrapped). */
    uint64_t rec = tr_log_record_bytes(dim, flags);
    if (rec == 0)
        return 0;
    uint64_t spare = (flags & TR_LOG_EMBEDDING) ? tr_arena_round(tr_log_emb_bytes(dim)) : 0;
    uint64_t fixed = tr_arena_round(sizeof(struct tr_log)) + spare;
    /* One export must fit a size_t too: header + every record. */
    if (rec > (SIZE_MAX - fixed - TR_LOG_HEADER_BYTES) / capacity)
        return 0;
    return (size_t)(fixed + rec * capacity);
}

tr_status tr_log_init(void *mem, size_t bytes, uint32_t dim, uint32_t capacity, uint32_t flags,
                      tr_log **out)
{
    if (!mem || !out || (uintptr_t)mem % TR_ARENA_ALIGN)
        return TR_E_ARG;
    size_t need = tr_log_size(dim, capacity, flags);
    if (need == 0)
        return TR_E_ARG;
    if (bytes < need)
        return TR_E_ARENA_TOO_SMALL;
    tr_arena a = {mem, bytes, 0};
    tr_log *l = tr_arena_take(&a, sizeof *l);
    if (!l) /* cannot happen after the size check; it keeps the compiler sure */
        return TR_E_ARENA_TOO_SMALL;
    memset(l, 0, sizeof *l);
    l->magic = TR_LOG_STRUCT_MAGIC;
    l->dim = dim;
    l->capacity = capacity;
    l->flags = flags;
    l->record_bytes = (uint32_t)tr_log_record_bytes(dim, flags);
    l->next_id = 1;
    l->first_id = 1;
    if (flags & TR_LOG_EMBEDDING)
        l->spare = tr_arena_take(&a, tr_log_emb_bytes(dim));
    /* The records are not rounded: measure and carve agree on the bytes. */
    l->slots = (uint8_t *)mem + a.used;
    *out = l;
    return TR_OK;
}

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int log_ok(const tr_log *l) { return l && l->magic == TR_LOG_STRUCT_MAGIC; }

tr_status tr_log_set_hash_key(tr_log *l, const uint8_t key[16])
{
    if (!log_ok(l) || !key)
        return TR_E_ARG;
    memcpy(l->key, key, 16);
    l->key_set = 1;
    return TR_OK;
}

tr_status tr_log_set_device(tr_log *l, uint64_t device_id, uint64_t first_id,
                            const uint8_t *key, size_t key_len)
{
    /* first_id is capped well below 2^64 so that next_id never wraps to 0
     * (the id that is never a record) in any realistic life of a device. */
    if (!log_ok(l) || !key || key_len < TR_LOG_KEY_MIN || key_len > TR_LOG_KEY_MAX ||
        first_id == 0 || first_id > (UINT64_MAX >> 1) || l->next_id != l->first_id)
        return TR_E_ARG;
    l->device_id = device_id;
    l->first_id = l->next_id = first_id;
    memset(l->dev_key, 0, sizeof l->dev_key);
    memcpy(l->dev_key, key, key_len);
    l->dev_key_len = key_len;
    l->device_set = 1;
    return TR_OK;
}

static uint64_t held_of(const tr_log *l)
{
    uint64_t issued = l->next_id - l->first_id;
    return issued < l->capacity ? issued : l->capacity;
}

static uint8_t *slot_of(const tr_log *l, uint64_t id)
{
    return l->slots + (size_t)((id - l->first_id) % l->capacity) * l->record_bytes;
}

/* The fingerprint of the view's embedder; hashing a table is megabytes, so
 * it is done once per pack. */
static uint64_t pack_fp(tr_log *l, const tr_pack_view *pv)
{
    if (!pv->has_embedder)
        return 0;
    if (!l->fp_cached || memcmp(l->fp_pack, pv->info.pack_hash, 32)) {
        l->cached_fp = tr_embedder_fingerprint(&pv->embedder);
        memcpy(l->fp_pack, pv->info.pack_hash, 32);
        l->fp_cached = 1;
    }
    return l->cached_fp;
}

tr_status tr_log_append(tr_log *l, const tr_pack *pk, tr_ctx *c, const tr_result *res,
                        const int8_t *embedding, const char *text, size_t len, uint64_t *id_out)
{
    if (!log_ok(l) || !tr_pack_ok(pk) || !res || (!text && len))
        return TR_E_ARG;
    const tr_pack_view *pv = &pk->served;
    const tr_pack_info *info = &pv->info;
    if (res->model >= info->n_models)
        return TR_E_ARG;
    if (text && (l->flags & TR_LOG_HASH) && !l->key_set)
        return TR_E_ARG;
    uint16_t rf = 0;
    tr_status st;
    if (l->flags & TR_LOG_EMBEDDING) {
        if (info->dim != l->dim)
            return TR_E_DIM_MISMATCH;
        uint64_t fp = pack_fp(l, pv);
        if (l->bound && (fp != l->embedder_fp ||
                         strncmp(l->embedder, info->embedder, TR_EMBEDDER_NAME_MAX)))
            return TR_E_EMBEDDER_MISMATCH;
        if (embedding) {
            if ((st = tr_check_i8(embedding, l->dim)) != TR_OK)
                return st;
            memcpy(l->spare, embedding, l->dim);
            rf |= TR_LOG_REC_EMBEDDING;
        } else if (res->flags & TR_RESULT_PRIOR_ONLY) {
            rf |= TR_LOG_REC_PRIOR_ONLY; /* its embedding is no place */
        } else if (text && pv->has_embedder) {
            /* Only this case embeds, so only it needs a context. */
            st = tr_embed(pk, c, text, len, l->spare, l->dim);
            if (st == TR_OK)
                rf |= TR_LOG_REC_EMBEDDING;
            else if (st == TR_E_ZERO_VECTOR)
                rf |= TR_LOG_REC_PRIOR_ONLY;
            else
                return st;
        }
        if (!l->bound) {
            memcpy(l->embedder, info->embedder, TR_EMBEDDER_NAME_MAX);
            l->embedder_fp = fp;
            l->bound = 1;
        }
    }
    /* Nothing can fail from here: the oldest record may be overwritten. */
    uint64_t id = l->next_id++;
    if (id - l->first_id >= l->capacity)
        l->dropped++;
    uint8_t *s = slot_of(l, id);
    memset(s, 0, l->record_bytes);
    tr_model_info mi;
    tr_model_info_of(pv, res->model, &mi);
    tr_st64(s + TR_LR_ID, id);
    tr_st64(s + TR_LR_PACK_TAG, tr_ld64(info->pack_hash));
    tr_st64(s + TR_LR_MODEL_HASH, tr_fnv1a64(mi.name, strnlen(mi.name, TR_MODEL_NAME_MAX)));
    tr_st32(s + TR_LR_MODEL, res->model);
    s[TR_LR_WHERE] = (uint8_t)res->where;
    /* The log keeps the pack's numbering (0 kNN, 1 cluster, 2 learned map:
     * tr_method - 1), as logs did before TR_METHOD_DEFAULT took 0. */
    s[TR_LR_METHOD] = (uint8_t)(res->method > TR_METHOD_KNN ? res->method - 1 : 0);
    tr_stf32(s + TR_LR_COST, res->cost);
    tr_stf32(s + TR_LR_COST_NORM, res->cost_norm);
    tr_stf32(s + TR_LR_LAMBDA, res->lambda);
    tr_stf32(s + TR_LR_UTILITY, res->utility);
    tr_stf32(s + TR_LR_OUTCOME, NAN);
    s[TR_LR_WHY] = (uint8_t)res->why;
    uint8_t *tail = s + TR_LOG_REC_HEAD;
    if (l->flags & TR_LOG_EMBEDDING) {
        if (rf & TR_LOG_REC_EMBEDDING)
            memcpy(tail, l->spare, l->dim);
        tail += tr_log_emb_bytes(l->dim);
    }
    if (text && (l->flags & TR_LOG_HASH)) {
        tr_st64(s + TR_LR_PROMPT_HASH, tr_siphash24(l->key, text, len));
        rf |= TR_LOG_REC_HASH;
    }
    if (text && (l->flags & TR_LOG_TEXT)) {
        size_t keep = len;
        if (keep > TR_LOG_TEXT_MAX) {
            keep = TR_LOG_TEXT_MAX;
            /* Never cut a UTF-8 sequence: back off its continuation bytes. */
            while (keep > 0 && ((uint8_t)text[keep] & 0xC0) == 0x80)
                keep--;
            rf |= TR_LOG_REC_TRUNCATED;
        }
        memcpy(tail, text, keep);
        tr_st16(s + TR_LR_TEXT_LEN, (uint16_t)keep);
        rf |= TR_LOG_REC_TEXT;
    }
    tr_st16(s + TR_LR_FLAGS, rf);
    memcpy(l->pack_hash, info->pack_hash, 32);
    if (id_out)
        *id_out = id;
    return TR_OK;
}

tr_status tr_log_outcome(tr_log *l, uint64_t id, float score)
{
    if (!log_ok(l) || id < l->first_id || id >= l->next_id)
        return TR_E_ARG;
    if (!(score >= 0.0f && score <= 1.0f)) /* NaN fails both */
        return TR_E_ARG;
    if (id < l->next_id - held_of(l))
        return TR_E_LOG_STALE;
    uint8_t *s = slot_of(l, id);
    tr_stf32(s + TR_LR_OUTCOME, score);
    tr_st16(s + TR_LR_FLAGS, (uint16_t)(ld16(s + TR_LR_FLAGS) | TR_LOG_REC_OUTCOME));
    return TR_OK;
}

tr_status tr_log_stats_get(const tr_log *l, tr_log_stats *st)
{
    if (!log_ok(l) || !st)
        return TR_E_ARG;
    memset(st, 0, sizeof *st);
    st->recorded = l->next_id - 1;
    st->dropped = l->dropped;
    st->held = (uint32_t)held_of(l);
    st->capacity = l->capacity;
    for (uint64_t id = l->next_id - st->held; id < l->next_id; id++)
        st->with_outcome += (ld16(slot_of(l, id) + TR_LR_FLAGS) & TR_LOG_REC_OUTCOME) != 0;
    return TR_OK;
}

/* Header and trailer bytes around the records: version 2 (a device set)
 * adds the device fields and the MAC. */
static size_t frame_of(const tr_log *l)
{
    return l->device_set ? TR_LOG_HEADER_BYTES_V2 + TR_LOG_MAC_BYTES : TR_LOG_HEADER_BYTES;
}

size_t tr_log_export_size(const tr_log *l)
{
    return log_ok(l) ? frame_of(l) + (size_t)held_of(l) * l->record_bytes : 0;
}

tr_status tr_log_export(const tr_log *l, void *out, size_t cap, size_t *written)
{
    if (!log_ok(l) || !written)
        return TR_E_ARG;
    size_t need = tr_log_export_size(l);
    *written = need;
    if (!out || cap < need)
        return TR_E_ARG;
    uint8_t *o = out;
    uint64_t held = held_of(l);
    const uint32_t hb = l->device_set ? TR_LOG_HEADER_BYTES_V2 : TR_LOG_HEADER_BYTES;
    memset(o, 0, hb);
    memcpy(o, TR_LOG_MAGIC, 8);
    tr_st32(o + TR_LH_VERSION, l->device_set ? TR_LOG_VERSION_AUTH : TR_LOG_VERSION);
    tr_st32(o + TR_LH_HEADER_BYTES, hb);
    tr_st32(o + TR_LH_RECORD_BYTES, l->record_bytes);
    tr_st32(o + TR_LH_FLAGS, l->flags);
    tr_st32(o + TR_LH_DIM, l->dim);
    tr_st32(o + TR_LH_TEXT_MAX, (l->flags & TR_LOG_TEXT) ? TR_LOG_TEXT_MAX : 0);
    tr_st32(o + TR_LH_N_RECORDS, (uint32_t)held);
    tr_st32(o + TR_LH_CAPACITY, l->capacity);
    tr_st64(o + TR_LH_RECORDED, l->next_id - 1);
    tr_st64(o + TR_LH_DROPPED, l->dropped);
    tr_st64(o + TR_LH_EMBEDDER_FP, l->bound ? l->embedder_fp : 0);
    if (l->bound)
        memcpy(o + TR_LH_EMBEDDER, l->embedder, TR_EMBEDDER_NAME_MAX);
    memcpy(o + TR_LH_PACK_HASH, l->pack_hash, 32);
    if (l->device_set) {
        tr_st64(o + TR_LH_DEVICE_ID, l->device_id);
        tr_st64(o + TR_LH_FIRST_ID, l->first_id);
        tr_st32(o + TR_LH_AUTH, TR_LOG_AUTH_HMAC_SHA256);
        tr_st32(o + TR_LH_MAC_BYTES, TR_LOG_MAC_BYTES);
    }
    o += hb;
    for (uint64_t id = l->next_id - held; id < l->next_id; id++, o += l->record_bytes)
        memcpy(o, slot_of(l, id), l->record_bytes);
    if (l->device_set) /* over every byte before the MAC: header and records */
        return tr_hmac_sha256(l->dev_key, l->dev_key_len, out, need - TR_LOG_MAC_BYTES, o);
    return TR_OK;
}
