/* Delta packs (the dynamic model pool): verified like a pack, signature
 * first, then checked against the base being served, then swapped in as a
 * new view of base + delta. Nothing is copied: the view points into the
 * base's and the delta's bytes. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_format.h"
#include "tr_internal.h"

static tr_status read_header(const uint8_t *p, size_t len, tr_delta_info *d)
{
    if (len < TR_HEADER_BYTES)
        return len >= 8 && memcmp(p, TR_DELTA_MAGIC, 8) != 0 ? TR_E_BAD_MAGIC
                                                             : TR_E_TRUNCATED;
    if (memcmp(p, TR_DELTA_MAGIC, 8) != 0)
        return TR_E_BAD_MAGIC;
    memset(d, 0, sizeof *d);
    if (tr_ld32(p + TR_DH_VERSION) != TR_DELTA_VERSION)
        return TR_E_VERSION;
    d->security_counter = tr_ld64(p + TR_DH_SECURITY);
    d->created_unix = tr_ld64(p + TR_DH_CREATED);
    d->expires_unix = tr_ld64(p + TR_DH_EXPIRES);
    memcpy(d->base_hash, p + TR_DH_BASE_HASH, 32);
    d->n_base_models = tr_ld32(p + TR_DH_BASE_MODELS);
    d->n_added = tr_ld32(p + TR_DH_N_ADDED);
    d->signed_bytes = tr_ld64(p + TR_DH_SIGNED_BYTES);
    d->lambda = TR_LAMBDA_DEFAULT;
    return TR_OK;
}

tr_status tr_delta_peek(const void *delta, size_t len, tr_delta_info *info)
{
    if (!delta || !info)
        return TR_E_ARG;
    return read_header(delta, len, info);
}

static int name_taken(const tr_pack_view *v, const uint8_t *added, uint32_t n_added,
                      const char *name)
{
    for (uint32_t m = 0; m < v->n_base_models; m++)
        if (strncmp((const char *)v->models + (size_t)m * TR_MODEL_REC_BYTES + TR_M_NAME, name,
                    TR_MODEL_NAME_MAX) == 0)
            return 1;
    for (uint32_t m = 0; m < n_added; m++)
        if (strncmp((const char *)added + (size_t)m * TR_MODEL_REC_BYTES + TR_M_NAME, name,
                    TR_MODEL_NAME_MAX) == 0)
            return 1;
    return 0;
}

/* The sections of a signed delta, against its base; fills d and the view v
 * (a copy of the base view). */
static tr_status read_sections(const uint8_t *p, const tr_pack_view *base, tr_delta_info *d,
                               tr_pack_view *v)
{
    tr_section s[TR_MAX_SECTIONS];
    uint32_t ns = 0;
    /* A delta without sections changes nothing: it serves the base alone
     * and, by its counter, keeps the delta before it from coming back (how
     * a delta's only change is withdrawn; PACK_FORMAT.md). */
    tr_status st = tr_ld32(p + TR_DH_N_SECTIONS) == 0
                       ? TR_OK
                       : tr_read_table(p, d->signed_bytes, s, &ns);
    if (st != TR_OK)
        return st;
    const uint32_t mb = base->n_base_models, n_refs = base->info.n_refs,
                   na = d->n_added, k = base->clusters.k;
    if (d->n_base_models != mb || tr_ld32(p + TR_DH_BASE_REFS) != n_refs ||
        tr_ld32(p + TR_DH_BASE_CLUSTERS) != k || na > TR_DELTA_MAX_ADDED ||
        (uint64_t)mb + na > TR_MODELS_MAX)
        return TR_E_MALFORMED;
    for (uint32_t i = 0; i < ns; i++)
        if (s[i].type < TR_DSEC_SETTINGS || s[i].type > TR_DSEC_PSI)
            return TR_E_MALFORMED;
    const tr_section *set = tr_find_section(s, ns, TR_DSEC_SETTINGS),
                     *ret = tr_find_section(s, ns, TR_DSEC_RETIRE),
                     *mod = tr_find_section(s, ns, TR_DSEC_MODELS),
                     *cor = tr_find_section(s, ns, TR_DSEC_CORRECT_BITS),
                     *val = tr_find_section(s, ns, TR_DSEC_VALID_BITS),
                     *psi = tr_find_section(s, ns, TR_DSEC_PSI);
    *v = *base;
    if (set) {
        if (set->length != TR_DEFAULTS_BYTES)
            return TR_E_MALFORMED;
        d->has_settings = 1;
        d->k = tr_ld32(p + set->offset + TR_D_K);
        d->lambda = tr_ldf32(p + set->offset + TR_D_LAMBDA);
        d->prior_strength = tr_ldf32(p + set->offset + TR_D_PRIOR);
        for (uint32_t i = TR_D_VAL_AREA; i < TR_DEFAULTS_BYTES; i++)
            if (p[set->offset + i]) /* the builder's validation: packs only */
                return TR_E_MALFORMED;
        if (d->k > TR_K_MAX || !isfinite(d->lambda) || !isfinite(d->prior_strength) ||
            d->prior_strength > TR_PRIOR_STRENGTH_MAX)
            return TR_E_MALFORMED;
        if (d->k)
            v->info.default_k = d->k;
        if (d->lambda >= 0.0f)
            v->info.default_lambda = d->lambda;
        if (d->prior_strength != 0.0f)
            v->info.default_prior_strength = d->prior_strength > 0.0f ? d->prior_strength : 0.0f;
    }
    if (ret) {
        if (!tr_bitset_ok(ret, 1, mb))
            return TR_E_MALFORMED;
        v->retired = (const uint64_t *)(const void *)(p + ret->offset);
        for (uint32_t m = 0; m < mb; m++)
            d->n_retired += (uint32_t)(v->retired[m >> 6] >> (m & 63) & 1);
    }
    /* Added models need their kNN labels, and their Psi when the base
     * routes by clusters, so every method the base offers covers them. */
    if (na == 0 ? (mod || cor || val || psi)
                : (!mod || !cor || !val || (k != 0) != (psi != NULL)))
        return TR_E_MALFORMED;
    if (na) {
        const uint32_t stride = base->labels.bit_words * 8;
        if (mod->length != (uint64_t)na * TR_MODEL_REC_BYTES || !tr_bitset_ok(cor, na, n_refs) ||
            !tr_bitset_ok(val, na, n_refs) || cor->stride != stride || val->stride != stride)
            return TR_E_MALFORMED;
        const uint8_t *recs = p + mod->offset;
        for (uint32_t m = 0; m < na; m++) {
            const uint8_t *rec = recs + (size_t)m * TR_MODEL_REC_BYTES;
            if (!tr_model_rec_ok(rec, 1) || name_taken(base, recs, m, (const char *)rec))
                return TR_E_MALFORMED;
        }
        v->added_models = recs;
        v->added_labels = (tr_labels){na, n_refs, stride / 8,
                                      (const uint64_t *)(const void *)(p + cor->offset),
                                      (const uint64_t *)(const void *)(p + val->offset), NULL, 0,
                                      recs + TR_M_PRIOR, TR_MODEL_REC_BYTES};
        if (psi) {
            if (psi->length != 4ull * k * na)
                return TR_E_MALFORMED;
            const float *e = (const float *)(const void *)(p + psi->offset);
            for (uint64_t i = 0; i < (uint64_t)k * na; i++)
                if (!(e[i] >= 0.0f && e[i] <= 1.0f))
                    return TR_E_MALFORMED;
            v->clusters.n_added = na;
            v->clusters.psi_added = e;
        }
    }
    v->info.n_models = mb + na;
    v->info.n_added_models = na;
    v->info.n_retired_models = d->n_retired;
    /* On-device is the one model always reachable: a delta may not take
     * the last one away. */
    for (uint32_t m = 0; m < v->info.n_models; m++) {
        tr_model_info mi;
        tr_model_info_of(v, m, &mi);
        if (!mi.retired && mi.where == TR_DEVICE)
            return TR_OK;
    }
    return TR_E_MALFORMED;
}

/* May delta d follow the last one accepted (slot s)? A delta of another
 * base (or none yet: a zero slot) starts a new count, since counters are
 * per base. For the same base: strictly higher, so two different deltas
 * never share a counter, or the very same delta again (a restart re-applies
 * what it served). Equal pack counters do not order bases, so neither are
 * the deltas of two such bases ordered (INTEGRATION.md). */
static int delta_follows(const tr_counter_slot *s, const tr_delta_info *d)
{
    if (memcmp(s->base, d->base_hash, 32) != 0)
        return 1;
    return d->security_counter > s->counter ||
           (d->security_counter == s->counter && memcmp(s->hash, d->delta_hash, 32) == 0);
}

/* Everything up to (not including) the store write: fills the view v, the
 * delta's info, and the slot to commit (next) against the stored one. */
static tr_status delta_verify(const tr_pack *from, const uint8_t *p, size_t len,
                              const tr_trust *trust, tr_pack_view *v, tr_delta_info *d,
                              tr_counter_slot *next, tr_counter_slot *stored)
{
    if (!tr_pack_ok(from) || !p || !tr_trust_ok(trust) || (uintptr_t)p % 8 != 0)
        return TR_E_ARG;
    tr_status st = read_header(p, len, d);
    if (st != TR_OK)
        return st;
    st = tr_verify_signature(p, len, d->signed_bytes, trust, d->key_id, d->delta_hash);
    if (st != TR_OK)
        return st;
    /* From here on the bytes are the signer's. */
    if (!tr_header_tail_ok(p)) /* size, flags, zero tail: as a pack's */
        return TR_E_MALFORMED;
    if (memcmp(d->base_hash, from->base.info.pack_hash, 32) != 0)
        return TR_E_DELTA_BASE;
    if ((st = read_sections(p, &from->base, d, v)) != TR_OK)
        return st;
    /* Anti-rollback per base: the floor, and the store's slot (a view
     * remembers nothing: tr_counter_store_ram keeps it in-process). */
    if ((st = tr_counter_read(trust, TR_COUNTER_DELTA, stored)) != TR_OK)
        return st;
    if (d->security_counter < trust->min_delta_counter || !delta_follows(stored, d))
        return TR_E_ROLLBACK;
    if (trust->now_unix && d->expires_unix && trust->now_unix >= d->expires_unix)
        return TR_E_EXPIRED;
    memset(next, 0, sizeof *next);
    next->counter = d->security_counter;
    memcpy(next->base, d->base_hash, 32);
    memcpy(next->hash, d->delta_hash, 32);
    return TR_OK;
}

/* Writes next unless it is the stored slot. */
static tr_status delta_commit(const tr_trust *trust, const tr_counter_slot *next,
                              const tr_counter_slot *stored)
{
    /* Re-applying the stored delta (a restart) writes nothing. */
    if (memcmp(next, stored, sizeof *next) == 0)
        return TR_OK;
    return tr_counter_write(trust, TR_COUNTER_DELTA, next);
}

/* mem for a new view made from `from`: aligned, big enough, and touching
 * none of the bytes the view reads (from itself, the pack, the delta). */
static tr_status view_mem_ok(const tr_pack *from, void *mem, size_t mem_bytes, const void *delta,
                             size_t len)
{
    if (!mem || (uintptr_t)mem % TR_ARENA_ALIGN != 0)
        return TR_E_ARG;
    if (mem_bytes < tr_pack_size())
        return TR_E_ARENA_TOO_SMALL;
    const size_t n = tr_pack_size();
    if (tr_overlaps(mem, n, from, sizeof *from) ||
        tr_overlaps(mem, n, from->base_bytes, from->base_len) ||
        (delta && tr_overlaps(mem, n, delta, len)))
        return TR_E_ARG;
    return TR_OK;
}

/* A view in mem serving from's base pack alone (no delta): what apply then
 * puts a delta on and what drop returns. */
static struct tr_pack *view_of_base(const tr_pack *from, void *mem)
{
    struct tr_pack *p = mem;
    memset(p, 0, sizeof *p);
    p->kern = from->kern;
    p->base_bytes = from->base_bytes;
    p->base_len = from->base_len;
    p->base = from->base;
    p->served = from->base;
    p->magic = TR_VIEW_MAGIC;
    return p;
}

tr_status tr_pack_apply_delta(const tr_pack *from, const void *delta, size_t len,
                              const tr_trust *trust, void *mem, size_t mem_bytes,
                              const tr_pack **out)
{
    if (!tr_pack_ok(from) || !delta || !out)
        return TR_E_ARG;
    tr_status st = view_mem_ok(from, mem, mem_bytes, delta, len);
    if (st != TR_OK)
        return st;
    tr_pack_view v;
    tr_delta_info d;
    tr_counter_slot next, stored;
    if ((st = delta_verify(from, delta, len, trust, &v, &d, &next, &stored)) != TR_OK ||
        (st = delta_commit(trust, &next, &stored)) != TR_OK)
        return st;
    struct tr_pack *p = view_of_base(from, mem);
    p->delta_bytes = delta;
    p->delta_len = len;
    p->served = v;
    p->has_delta = 1;
    p->delta = d;
    *out = p;
    return TR_OK;
}

tr_status tr_pack_drop_delta(const tr_pack *from, void *mem, size_t mem_bytes,
                             const tr_pack **out)
{
    if (!tr_pack_ok(from) || !out)
        return TR_E_ARG;
    tr_status st = view_mem_ok(from, mem, mem_bytes, from->delta_bytes, from->delta_len);
    if (st != TR_OK)
        return st;
    *out = view_of_base(from, mem);
    return TR_OK;
}

tr_status tr_pack_get_delta(const tr_pack *p, tr_delta_info *info)
{
    if (!tr_pack_ok(p) || !info)
        return TR_E_ARG;
    if (!p->has_delta)
        return TR_E_NO_PACK;
    *info = p->delta;
    return TR_OK;
}
