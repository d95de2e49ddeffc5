/* Pack reader: the signature is checked before any other field is trusted;
 * then every section is bounds-checked, so a signed-but-wrong pack (a
 * builder bug, a leaked key) still cannot make a route read outside it. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "tr_format.h"
#include "tr_internal.h"

/* TR_FUZZ_SKIP_SIGNATURE lets a fuzzer's mutated packs reach the section
 * parser, which no unsigned input can reach otherwise. A library built so
 * accepts any pack, so two guards keep it out of anything but a fuzz
 * harness: the build must also say FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
 * (the name libFuzzer/OSS-Fuzz builds use, which no release flag set has),
 * and this object then references the harness's entry point, so linking it
 * into the CLI or any program without LLVMFuzzerTestOneInput fails. */
#ifdef TR_FUZZ_SKIP_SIGNATURE
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#error "TR_FUZZ_SKIP_SIGNATURE is for fuzz builds only (see mk/fuzz.mk)"
#endif
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((used)) static int (*const tr_fuzz_harness_only)(const uint8_t *, size_t) =
    LLVMFuzzerTestOneInput;
#endif

static tr_status read_header(const uint8_t *p, size_t len, tr_pack_info *info)
{
    if (len < TR_HEADER_BYTES)
        return len >= 8 && memcmp(p, TR_PACK_MAGIC, 8) != 0 ? TR_E_BAD_MAGIC
                                                            : TR_E_TRUNCATED;
    if (memcmp(p, TR_PACK_MAGIC, 8) != 0)
        return TR_E_BAD_MAGIC;
    memset(info, 0, sizeof *info);
    info->format_version = tr_ld32(p + TR_H_VERSION);
    if (info->format_version != TR_PACK_VERSION)
        return TR_E_VERSION;
    info->security_counter = tr_ld64(p + TR_H_SECURITY);
    info->created_unix = tr_ld64(p + TR_H_CREATED);
    info->expires_unix = tr_ld64(p + TR_H_EXPIRES);
    memcpy(info->embedder, p + TR_H_EMBEDDER, TR_EMBEDDER_NAME_MAX);
    /* Byte 71 is checked after the signature (header_ok); until then the
     * copy is kept a C string for whoever prints it. */
    info->embedder[TR_EMBEDDER_NAME_MAX - 1] = 0;
    info->dim = tr_ld32(p + TR_H_DIM);
    info->n_refs = tr_ld32(p + TR_H_N_REFS);
    info->n_models = tr_ld32(p + TR_H_N_MODELS);
    info->signed_bytes = tr_ld64(p + TR_H_SIGNED_BYTES);
    info->prefilter_candidates = tr_ld32(p + TR_H_PREFILTER_C);
    return TR_OK;
}

/* Locate the trailer; the distinct errors tell a cut file from an unsigned
 * one from one with something appended. */
static tr_status read_trailer(const uint8_t *p, size_t len, uint64_t signed_bytes,
                              const uint8_t **key_id, const uint8_t **sig,
                              size_t *sig_len)
{
    if (signed_bytes < TR_HEADER_BYTES)
        return TR_E_MALFORMED;
    if (signed_bytes > len)
        return TR_E_TRUNCATED;
    size_t rest = len - (size_t)signed_bytes;
    if (rest == 0)
        return TR_E_NO_SIGNATURE;
    const uint8_t *t = p + signed_bytes;
    if (rest < 4 || memcmp(t, TR_TRAILER_MAGIC, 4) != 0)
        return rest < 4 && memcmp(t, TR_TRAILER_MAGIC, rest) == 0 ? TR_E_TRUNCATED
                                                                 : TR_E_NO_SIGNATURE;
    if (rest < TR_TRAILER_FIXED_BYTES)
        return TR_E_TRUNCATED;
    if ((t[4] | t[5] << 8) != TR_TRAILER_VERSION)
        return TR_E_VERSION;
    size_t sl = (size_t)(t[6] | t[7] << 8);
    if (sl == 0 || sl > TR_SIG_MAX_BYTES)
        return TR_E_SIGNATURE;
    if (rest < TR_TRAILER_FIXED_BYTES + sl)
        return TR_E_TRUNCATED;
    if (rest > TR_TRAILER_FIXED_BYTES + sl)
        return TR_E_TRAILING_DATA;
    *key_id = t + 8;
    *sig = t + TR_TRAILER_FIXED_BYTES;
    *sig_len = sl;
    return TR_OK;
}

/* Everything the header bounds beyond what locating the signature needs:
 * checked only once the signature verified (PACK_FORMAT.md's order), so no
 * unsigned byte picks an error other than the signature's. */
static int zero_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int tr_header_tail_ok(const uint8_t *p)
{
    return tr_ld32(p + TR_H_HEADER_BYTES) == TR_HEADER_BYTES && tr_ld32(p + TR_H_FLAGS) == 0 &&
           zero_bytes(p + TR_H_PREFILTER_C + 4, TR_HEADER_BYTES - TR_H_PREFILTER_C - 4);
}

static int header_ok(const uint8_t *p)
{
    return tr_header_tail_ok(p) && p[TR_H_EMBEDDER + TR_EMBEDDER_NAME_MAX - 1] == 0;
}

tr_status tr_pack_peek(const void *pack, size_t len, tr_pack_info *info)
{
    if (!pack || !info)
        return TR_E_ARG;
    return read_header(pack, len, info);
}

const tr_section *tr_find_section(const tr_section *s, uint32_t n, uint32_t type)
{
    for (uint32_t i = 0; i < n; i++)
        if (s[i].type == type)
            return &s[i];
    return NULL;
}

tr_status tr_read_table(const uint8_t *p, uint64_t signed_bytes, tr_section *s, uint32_t *n)
{
    uint32_t ns = tr_ld32(p + TR_H_N_SECTIONS);
    uint64_t table_end = TR_HEADER_BYTES + (uint64_t)ns * TR_SECTION_ENTRY_BYTES;
    if (ns == 0 || ns > TR_MAX_SECTIONS || table_end > signed_bytes)
        return TR_E_MALFORMED;
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = p + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        s[i] = (tr_section){tr_ld32(e + TR_S_TYPE), tr_ld32(e + TR_S_STRIDE),
                            tr_ld32(e + TR_S_COUNT), tr_ld64(e + TR_S_OFFSET),
                            tr_ld64(e + TR_S_LENGTH)};
        if (tr_ld32(e + TR_S_FLAGS) != 0 || s[i].offset % TR_ALIGN != 0 ||
            s[i].offset < table_end ||
            s[i].offset > signed_bytes || s[i].length > signed_bytes - s[i].offset)
            return TR_E_MALFORMED;
        for (uint32_t j = 0; j < i; j++)
            if (s[j].type == s[i].type ||
                (s[i].offset < s[j].offset + s[j].length &&
                 s[j].offset < s[i].offset + s[i].length))
                return TR_E_MALFORMED;
    }
    *n = ns;
    return TR_OK;
}

int tr_bitset_ok(const tr_section *s, uint32_t rows, uint32_t bits)
{
    return s->stride % 8 == 0 && (uint64_t)s->stride * 8 >= bits && s->count == rows &&
           s->length == (uint64_t)s->stride * rows;
}

int tr_model_rec_ok(const uint8_t *r, int cost_norm_unbounded)
{
    float cost = tr_ldf32(r + TR_M_COST), cn = tr_ldf32(r + TR_M_COST_NORM),
          prior = tr_ldf32(r + TR_M_PRIOR);
    return r[TR_M_NAME] != 0 && memchr(r + TR_M_NAME, 0, TR_MODEL_NAME_MAX) != NULL &&
           cost >= 0.0f && isfinite(cost) && isfinite(cn) &&
           (cost_norm_unbounded || (cn >= 0.0f && cn <= 1.0f)) &&
           prior >= 0.0f && prior <= 1.0f && tr_ld32(r + TR_M_WHERE) <= TR_CLOUD;
}

static tr_status read_sections(const uint8_t *p, tr_pack_view *v)
{
    const tr_pack_info *info = &v->info;
    tr_section s[TR_MAX_SECTIONS];
    uint32_t ns;
    tr_status st = tr_read_table(p, info->signed_bytes, s, &ns);
    if (st != TR_OK)
        return st;
    if (info->dim == 0 || info->dim > TR_DIM_MAX || info->n_refs == 0 ||
        info->n_models == 0 || info->n_models > TR_MODELS_MAX)
        return TR_E_MALFORMED;
    const uint32_t n = info->n_refs, m = info->n_models, dim = info->dim;
    const tr_section *models = tr_find_section(s, ns, TR_SEC_MODELS), *rows = tr_find_section(s, ns, TR_SEC_REF_I8),
                  *inv = tr_find_section(s, ns, TR_SEC_REF_INVNORM), *bits = tr_find_section(s, ns, TR_SEC_CORRECT_BITS),
                  *valid = tr_find_section(s, ns, TR_SEC_VALID_BITS), *scores = tr_find_section(s, ns, TR_SEC_SCORES_U8),
                  *emb = tr_find_section(s, ns, TR_SEC_EMBEDDER), *defs = tr_find_section(s, ns, TR_SEC_DEFAULTS),
                  *signs = tr_find_section(s, ns, TR_SEC_REF_SIGNS), *clu = tr_find_section(s, ns, TR_SEC_CLUSTERS),
                  *tasks = tr_find_section(s, ns, TR_SEC_TASKS), *lmap = tr_find_section(s, ns, TR_SEC_LEARNED_MAP);
    if (!models || !rows || !inv || !bits || !defs)
        return TR_E_MALFORMED;
    if (models->length != (uint64_t)m * TR_MODEL_REC_BYTES ||
        rows->stride != tr_ref_stride(dim) || rows->count != n ||
        rows->length != tr_ref_bytes(n, dim) ||
        inv->length != 4ull * n || !tr_bitset_ok(bits, m, n) ||
        (valid && (!tr_bitset_ok(valid, m, n) || valid->stride != bits->stride)) ||
        (scores && (scores->stride < n || scores->count != m ||
                    scores->length != (uint64_t)scores->stride * m)) ||
        defs->length != TR_DEFAULTS_BYTES)
        return TR_E_MALFORMED;
    /* The prefilter needs its codes; codes without a prefilter are unused.
     * A code is exactly the words dim bits take: the query's code scratch
     * is sized from dim alone (tr_ctx_size), and a wider stride would make
     * the search zero and read words past it. */
    if (info->prefilter_candidates > TR_PREFILTER_MAX ||
        (info->prefilter_candidates && !signs) ||
        (signs && (signs->stride != 8 * ((dim + 63) / 64) ||
                   signs->count != n || signs->length != (uint64_t)signs->stride * n)))
        return TR_E_MALFORMED;
    if (signs)
        v->codes = (tr_codes){signs->stride / 8,
                              (const uint64_t *)(const void *)(p + signs->offset)};

    v->models = p + models->offset;
    for (uint32_t i = 0; i < m; i++)
        if (!tr_model_rec_ok(v->models + (size_t)i * TR_MODEL_REC_BYTES, 0))
            return TR_E_MALFORMED;
    v->refs = (tr_refs){n, dim, (const int8_t *)(p + rows->offset),
                        (const float *)(const void *)(p + inv->offset)};
    if (!tr_i8_blocks_ok(v->refs.rows, n, dim))
        return TR_E_MALFORMED;
    for (uint32_t i = 0; i < n; i++)
        if (!(v->refs.inv_norm[i] > 0.0f) || !isfinite(v->refs.inv_norm[i]))
            return TR_E_MALFORMED;
    v->labels = (tr_labels){
        m, n, bits->stride / 8, (const uint64_t *)(const void *)(p + bits->offset),
        valid ? (const uint64_t *)(const void *)(p + valid->offset) : NULL,
        scores ? p + scores->offset : NULL, scores ? scores->stride : 0,
        v->models + TR_M_PRIOR, TR_MODEL_REC_BYTES};
    const uint8_t *d = p + defs->offset;
    v->info.default_k = tr_ld32(d + TR_D_K);
    v->info.default_lambda = tr_ldf32(d + TR_D_LAMBDA);
    v->info.default_prior_strength = tr_ldf32(d + TR_D_PRIOR);
    v->info.validation_area = tr_ldf32(d + TR_D_VAL_AREA);
    v->info.validation_queries = tr_ld32(d + TR_D_VAL_QUERIES);
    v->info.chosen_on_validation = tr_ld32(d + TR_D_CHOSEN);
    const uint32_t method = tr_ld32(d + TR_D_METHOD);
    v->info.method_validation_area = tr_ldf32(d + TR_D_METHOD_AREA);
    v->info.method_validation_queries = tr_ld32(d + TR_D_METHOD_QUERIES);
    for (uint32_t i = TR_D_USED_BYTES; i < TR_DEFAULTS_BYTES; i++)
        if (d[i])
            return TR_E_MALFORMED;
    const uint32_t knn_bits = TR_CHOSE_K | TR_CHOSE_PRIOR | TR_CHOSE_LAMBDA;
    if (!(v->info.validation_area >= 0.0f && v->info.validation_area <= 1.0f) ||
        v->info.validation_queries > n ||
        (v->info.chosen_on_validation & ~(knn_bits | TR_CHOSE_METHOD)) ||
        /* not validated: nothing recorded */
        (!v->info.validation_queries &&
         (v->info.validation_area != 0.0f || (v->info.chosen_on_validation & knn_bits))) ||
        !(v->info.method_validation_area >= 0.0f && v->info.method_validation_area <= 1.0f) ||
        v->info.method_validation_queries > n ||
        (!v->info.method_validation_queries &&
         (v->info.method_validation_area != 0.0f ||
          (v->info.chosen_on_validation & TR_CHOSE_METHOD))))
        return TR_E_MALFORMED;
    if (method > TR_PACK_METHOD_LEARNED_MAP)
        return TR_E_MALFORMED;
    v->info.default_method = method + 1; /* tr_method */
    if (v->info.default_k == 0 || v->info.default_k > TR_K_MAX ||
        !(v->info.default_lambda >= 0.0f) || !isfinite(v->info.default_lambda) ||
        !(v->info.default_prior_strength >= 0.0f &&
          v->info.default_prior_strength <= TR_PRIOR_STRENGTH_MAX))
        return TR_E_MALFORMED;
    if (clu) {
        tr_status cst = tr_clusters_view(p + clu->offset, (size_t)clu->length, dim, m,
                                         &v->clusters);
        if (cst != TR_OK)
            return cst;
        v->info.n_clusters = v->clusters.k;
    }
    if (lmap) {
        /* The map reweighs the clusters' Psi: without them it means nothing. */
        if (!clu)
            return TR_E_MALFORMED;
        tr_status lst = tr_learned_map_view(p + lmap->offset, (size_t)lmap->length, dim,
                                            v->clusters.k, &v->lmap);
        if (lst != TR_OK)
            return lst;
        v->info.has_learned_map = 1;
    }
    /* A default the pack cannot serve would fail every zeroed route. */
    if ((method == TR_PACK_METHOD_CLUSTER && !clu) || (method == TR_PACK_METHOD_LEARNED_MAP && !lmap))
        return TR_E_MALFORMED;
    if (tasks) {
        tr_status tst = tr_task_table_view(p + tasks->offset, (size_t)tasks->length, m, &v->tasks);
        if (tst != TR_OK)
            return tst;
        v->info.n_tasks = v->tasks.n_tasks;
    }
    v->has_embedder = emb != NULL;
    v->info.has_text_embedder = emb != NULL;
    if (emb) {
        st = tr_embedder_view(p + emb->offset, (size_t)emb->length, &v->embedder);
        if (st != TR_OK)
            return st;
        if (v->embedder.dim != dim)
            return TR_E_MALFORMED;
    }
    return TR_OK;
}

static int key_trusted(const tr_trust *trust, const uint8_t *key_id,
                       const tr_pubkey **key)
{
    for (size_t i = 0; i < trust->n_keys; i++) {
        uint8_t id[32];
        if (tr_sha256(trust->keys[i].point, 65, id) != TR_OK)
            return 0;
        if (memcmp(id, key_id, 32) == 0) {
            *key = &trust->keys[i];
            return 1;
        }
    }
    return 0;
}

tr_status tr_verify_signature(const uint8_t *p, size_t len, uint64_t signed_bytes,
                              const tr_trust *trust, uint8_t key_id_out[32], uint8_t hash[32])
{
    const uint8_t *key_id, *sig;
    size_t sig_len;
    tr_status st = read_trailer(p, len, signed_bytes, &key_id, &sig, &sig_len);
    if (st != TR_OK)
        return st;
    for (size_t i = 0; i < trust->n_revoked; i++)
        if (memcmp(trust->revoked[i], key_id, 32) == 0)
            return TR_E_KEY_REVOKED;
#ifdef TR_FUZZ_SKIP_SIGNATURE
    /* Any key, any signature; the hash is still real, so a delta's base
     * still has to match. */
    (void)key_trusted;
    (void)sig;
    (void)sig_len;
    memcpy(key_id_out, key_id, 32);
    return tr_sha256(p, (size_t)signed_bytes, hash);
#else
    const tr_pubkey *key;
    if (!key_trusted(trust, key_id, &key))
        return TR_E_KEY_UNKNOWN;
    memcpy(key_id_out, key_id, 32);
    st = tr_sha256(p, (size_t)signed_bytes, hash);
    if (st != TR_OK)
        return st;
    return tr_ecdsa_p256_verify(key->point, hash, sig, sig_len);
#endif
}

int tr_trust_ok(const tr_trust *trust)
{
    return trust && (!trust->n_keys || trust->keys) && (!trust->n_revoked || trust->revoked) &&
           (!trust->counters || (trust->counters->read && trust->counters->write));
}

tr_status tr_counter_read(const tr_trust *trust, int kind, tr_counter_slot *slot)
{
    memset(slot, 0, sizeof *slot);
    if (!trust->counters)
        return TR_OK;
    return trust->counters->read(trust->counters->ctx, kind, slot) == 0 ? TR_OK
                                                                        : TR_E_COUNTER_STORE;
}

tr_status tr_counter_write(const tr_trust *trust, int kind, const tr_counter_slot *slot)
{
    if (!trust->counters)
        return TR_OK;
    return trust->counters->write(trust->counters->ctx, kind, slot) == 0 ? TR_OK
                                                                         : TR_E_COUNTER_STORE;
}

tr_status tr_counter_floor(const tr_trust *trust, int kind, uint64_t *floor)
{
    *floor = kind == TR_COUNTER_PACK ? trust->min_security_counter : trust->min_delta_counter;
    tr_counter_slot stored;
    tr_status st = tr_counter_read(trust, kind, &stored);
    if (st == TR_OK && stored.counter > *floor)
        *floor = stored.counter;
    return st;
}

tr_status tr_counter_commit(const tr_trust *trust, int kind, uint64_t floor, uint64_t counter)
{
    if (counter <= floor)
        return TR_OK;
    /* The pack slot keeps only the counter: packs of equal counter are
     * equally acceptable (>=), so their hashes need not be told apart. */
    tr_counter_slot slot;
    memset(&slot, 0, sizeof slot);
    slot.counter = counter;
    return tr_counter_write(trust, kind, &slot);
}

tr_status tr_pack_verify(const uint8_t *p, size_t len, const tr_trust *trust,
                         tr_pack_view *v)
{
    if (!p || !tr_trust_ok(trust))
        return TR_E_ARG;
    /* Rows and floats are read in place. */
    if ((uintptr_t)p % 8 != 0)
        return TR_E_ARG;
    memset(v, 0, sizeof *v);
    tr_status st = read_header(p, len, &v->info);
    if (st != TR_OK)
        return st;
    st = tr_verify_signature(p, len, v->info.signed_bytes, trust, v->info.key_id,
                             v->info.pack_hash);
    if (st != TR_OK)
        return st;
    /* From here on the bytes are the signer's. */
    if (!header_ok(p))
        return TR_E_MALFORMED;
    st = read_sections(p, v);
    if (st != TR_OK)
        return st;
    v->n_base_models = v->info.n_models;
    uint64_t floor;
    if ((st = tr_counter_floor(trust, TR_COUNTER_PACK, &floor)) != TR_OK)
        return st;
    if (v->info.security_counter < floor)
        return TR_E_ROLLBACK;
    if (trust->now_unix && v->info.expires_unix && trust->now_unix >= v->info.expires_unix)
        return TR_E_EXPIRED;
    return TR_OK;
}
