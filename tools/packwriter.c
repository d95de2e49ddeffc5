#include "packwriter.h"
#include "tr_knn.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "keys.h"
#include "packfile.h"
#include "tr_format.h"

const char *trh_section_name(uint32_t type)
{
    switch (type) {
    case TR_SEC_MODELS: return "models";
    case TR_SEC_REF_I8: return "ref_i8";
    case TR_SEC_REF_INVNORM: return "ref_invnorm";
    case TR_SEC_CORRECT_BITS: return "correct_bits";
    case TR_SEC_VALID_BITS: return "valid_bits";
    case TR_SEC_SCORES_U8: return "scores_u8";
    case TR_SEC_EMBEDDER: return "embedder";
    case TR_SEC_DEFAULTS: return "defaults";
    case TR_SEC_REF_SIGNS: return "ref_signs";
    case TR_SEC_CLUSTERS: return "clusters";
    case TR_SEC_TASKS: return "tasks";
    case TR_SEC_LEARNED_MAP: return "learned_map";
    case TR_DSEC_SETTINGS: return "delta_settings";
    case TR_DSEC_RETIRE: return "delta_retire";
    case TR_DSEC_MODELS: return "delta_models";
    case TR_DSEC_CORRECT_BITS: return "delta_correct_bits";
    case TR_DSEC_VALID_BITS: return "delta_valid_bits";
    case TR_DSEC_PSI: return "delta_psi";
    default: return "unknown";
    }
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Start a section: align, record its table entry. */
static void begin(trh_buf *b, trh_pack_layout *l, uint32_t type, uint32_t stride,
                  uint32_t count, uint8_t *table)
{
    trh_buf_align(b, TR_ALIGN);
    uint32_t i = l->n_sections++;
    l->sec[i].type = type;
    l->sec[i].offset = b->len;
    uint8_t *e = table + i * TR_SECTION_ENTRY_BYTES;
    tr_st32(e + TR_S_TYPE, type);
    tr_st32(e + TR_S_STRIDE, stride);
    tr_st32(e + TR_S_COUNT, count);
    tr_st64(e + TR_S_OFFSET, b->len);
}

static void end(trh_buf *b, trh_pack_layout *l, uint8_t *table)
{
    uint32_t i = l->n_sections - 1;
    l->sec[i].length = b->len - l->sec[i].offset;
    tr_st64(table + i * TR_SECTION_ENTRY_BYTES + TR_S_LENGTH, l->sec[i].length);
}

int trh_models_max_err(const char *where, const char *what, uint64_t n, const char *artifact)
{
    return trh_err("%s%s%s = %llu models: a router serves at most %u (TR_MODELS_MAX, "
                  "core/tinyroute.h); not building a %s it would refuse",
                  where ? where : "", where ? ": " : "", what, (unsigned long long)n,
                  TR_MODELS_MAX, artifact);
}

int trh_pack_check_models(const trh_pack_model *models, uint32_t m)
{
    if (m == 0)
        return trh_err("a pack needs at least one model");
    if (m > TR_MODELS_MAX)
        return trh_models_max_err(NULL, "M", m, "pack");
    for (uint32_t j = 0; j < m; j++) {
        const char *name = models[j].name;
        if (!name || !*name || strlen(name) >= TR_MODEL_NAME_MAX)
            return trh_err("model %u: name must have 1..%d bytes", j, TR_MODEL_NAME_MAX - 1);
        /* The pack stores f32: a double that rounds to Inf there is refused
         * by the device (TR_E_MALFORMED). */
        double c = models[j].cost;
        if (!isfinite(c) || c < 0 || c > FLT_MAX || !isfinite((float)c))
            return trh_err("model %s: cost %g is not a finite number in [0, %g] (f32)", name, c,
                          (double)FLT_MAX);
        if (models[j].where != TR_DEVICE && models[j].where != TR_CLOUD)
            return trh_err("model %s: where %d is neither device nor cloud", name,
                          (int)models[j].where);
    }
    return 0;
}

int trh_pack_check_settings(uint64_t counter, uint32_t k, double lambda)
{
    if (counter > TRH_COUNTER_MAX)
        return trh_err("security counter %llu: at most %llu (2^64-2); 2^64-1 would raise a "
                      "device's floor so that no later pack could ever load",
                      (unsigned long long)counter, (unsigned long long)TRH_COUNTER_MAX);
    if (k == 0 || k > TR_K_MAX)
        return trh_err("k = %u: must be in 1..%d (TR_K_MAX)", k, TR_K_MAX);
    if (!isfinite(lambda) || lambda < 0 || lambda > FLT_MAX || !isfinite((float)lambda))
        return trh_err("lambda %g is not a finite number in [0, %g] (stored as f32)", lambda,
                      (double)FLT_MAX);
    return 0;
}

int trh_pack_write(const trh_pack_spec *s, trh_buf *b, trh_pack_layout *l)
{
    const uint32_t n = s->n_refs, m = s->n_models, dim = s->dim;
    memset(l, 0, sizeof *l);
    if (s->prefilter_c > TR_PREFILTER_MAX || dim > TR_DIM_MAX)
        return trh_err("prefilter candidates must be <= %d and D <= %u", TR_PREFILTER_MAX,
                      TR_DIM_MAX);
    if (!s->embedder_name || strlen(s->embedder_name) >= TR_EMBEDDER_NAME_MAX)
        return trh_err("embedder name must have 1..%u bytes", TR_EMBEDDER_NAME_MAX - 1);
    if (n == 0 || m == 0 || dim == 0)
        return trh_err("a pack needs references, models and a dimension");
    if (trh_pack_check_models(s->models, m) || trh_pack_check_settings(s->security_counter, s->k, s->lambda))
        return 1;
    if (s->method > TR_PACK_METHOD_LEARNED_MAP ||
        (s->method == TR_PACK_METHOD_CLUSTER && !s->clusters) ||
        (s->method == TR_PACK_METHOD_LEARNED_MAP && !s->lmap_theta))
        return trh_err("the default method %u needs a section the pack does not have", s->method);
    double cmin = INFINITY, cmax = -INFINITY;
    int any_fraction = 0, any_unknown = 0;
    for (uint32_t j = 0; j < m; j++) {
        if (strlen(s->models[j].name) >= TR_MODEL_NAME_MAX)
            return trh_err("model name too long: %s", s->models[j].name);
        cmin = fmin(cmin, s->models[j].cost);
        cmax = fmax(cmax, s->models[j].cost);
    }
    for (size_t i = 0; i < (size_t)n * m; i++) {
        float v = s->scores[i];
        if (isnan(v))
            any_unknown = 1;
        else if (v != 0.0f && v != 1.0f)
            any_fraction = 1;
    }
    uint32_t n_sec = 5 + any_unknown + any_fraction + (s->embedder != NULL) +
                     (s->prefilter_c > 0) + (s->clusters != NULL) + (s->tasks != NULL) +
                     (s->lmap_theta != NULL);

    b->len = 0;
    trh_buf_zeros(b, TR_HEADER_BYTES + n_sec * TR_SECTION_ENTRY_BYTES);
    /* The table is patched through an offset: the buffer may move. */
    const size_t table_at = TR_HEADER_BYTES;
#define TABLE (b->data + table_at)

    begin(b, l, TR_SEC_DEFAULTS, 0, 1, TABLE);
    uint8_t defs[TR_DEFAULTS_BYTES] = {0};
    tr_st32(defs + TR_D_K, s->k);
    tr_stf32(defs + TR_D_LAMBDA, s->lambda);
    tr_stf32(defs + TR_D_PRIOR, s->prior_strength);
    tr_stf32(defs + TR_D_VAL_AREA, s->validation.area);
    tr_st32(defs + TR_D_VAL_QUERIES, s->validation.n_queries);
    tr_st32(defs + TR_D_CHOSEN, s->validation.chosen);
    tr_st32(defs + TR_D_METHOD, s->method);
    tr_stf32(defs + TR_D_METHOD_AREA, s->method_validation.area);
    tr_st32(defs + TR_D_METHOD_QUERIES, s->method_validation.n_queries);
    trh_buf_put(b, defs, sizeof defs);
    end(b, l, TABLE);

    begin(b, l, TR_SEC_MODELS, TR_MODEL_REC_BYTES, m, TABLE);
    for (uint32_t j = 0; j < m; j++) {
        uint8_t rec[TR_MODEL_REC_BYTES] = {0};
        double sum = 0;
        size_t known = 0;
        for (uint32_t i = 0; i < n; i++) {
            float v = s->scores[(size_t)i * m + j];
            if (!isnan(v)) {
                sum += v;
                known++;
            }
        }
        memcpy(rec + TR_M_NAME, s->models[j].name, strlen(s->models[j].name));
        tr_stf32(rec + TR_M_COST, (float)s->models[j].cost);
        tr_stf32(rec + TR_M_COST_NORM,
                 cmax > cmin ? (float)((s->models[j].cost - cmin) / (cmax - cmin)) : 0.0f);
        tr_stf32(rec + TR_M_PRIOR, known ? (float)(sum / (double)known) : 0.0f);
        tr_st32(rec + TR_M_WHERE, (uint32_t)s->models[j].where);
        trh_buf_put(b, rec, sizeof rec);
    }
    end(b, l, TABLE);

    const uint32_t stride = tr_ref_stride(dim);
    begin(b, l, TR_SEC_REF_I8, stride, n, TABLE);
    int8_t *block = malloc(TR_REF_BLOCK_ROWS * (size_t)stride);
    if (!block)
        return trh_err("out of memory");
    for (uint32_t i = 0; i < n; i += TR_REF_BLOCK_ROWS) {
        const uint32_t nb = n - i < TR_REF_BLOCK_ROWS ? n - i : TR_REF_BLOCK_ROWS;
        tr_refs_put_rows(block, s->refs + (size_t)i * dim, dim, nb, dim);
        trh_buf_put(b, block, TR_REF_BLOCK_ROWS * (size_t)stride);
    }
    free(block);
    end(b, l, TABLE);

    begin(b, l, TR_SEC_REF_INVNORM, 4, n, TABLE);
    for (uint32_t i = 0; i < n; i++) {
        float inv = tr_i8_inv_norm(s->refs + (size_t)i * dim, dim);
        if (inv == 0)
            return trh_err("reference %u has a zero embedding", i);
        uint8_t f[4];
        tr_stf32(f, inv);
        trh_buf_put(b, f, 4);
    }
    end(b, l, TABLE);

    if (s->prefilter_c) {
        uint32_t words = (dim + 63) / 64;
        begin(b, l, TR_SEC_REF_SIGNS, words * 8, n, TABLE);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t code[8 * 128] = {0};
            for (uint32_t d = 0; d < dim; d++)
                if (s->refs[(size_t)i * dim + d] > 0)
                    code[d / 8] |= (uint8_t)(1u << (d % 8));
            trh_buf_put(b, code, words * 8);
        }
        end(b, l, TABLE);
    }

    uint32_t bstride = (uint32_t)round_up((n + 7) / 8, TR_ALIGN);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && !any_unknown)
            break;
        begin(b, l, pass ? TR_SEC_VALID_BITS : TR_SEC_CORRECT_BITS, bstride, m, TABLE);
        for (uint32_t j = 0; j < m; j++) {
            size_t at = b->len;
            trh_buf_zeros(b, bstride);
            for (uint32_t i = 0; i < n; i++) {
                float v = s->scores[(size_t)i * m + j];
                int on = pass ? !isnan(v) : (!isnan(v) && v >= 0.5f);
                if (on)
                    b->data[at + i / 8] |= (uint8_t)(1u << (i % 8));
            }
        }
        end(b, l, TABLE);
    }

    if (any_fraction) {
        uint32_t sstride = (uint32_t)round_up(n, TR_ALIGN);
        begin(b, l, TR_SEC_SCORES_U8, sstride, m, TABLE);
        for (uint32_t j = 0; j < m; j++) {
            size_t at = b->len;
            trh_buf_zeros(b, sstride);
            for (uint32_t i = 0; i < n; i++) {
                float v = s->scores[(size_t)i * m + j];
                b->data[at + i] = isnan(v) ? 0 : (uint8_t)roundf(v * 255.0f);
            }
        }
        end(b, l, TABLE);
    }

    if (s->tasks) {
        begin(b, l, TR_SEC_TASKS, 0, tr_ld32(s->tasks + TR_T_N_TASKS), TABLE);
        trh_buf_put(b, s->tasks, s->tasks_len);
        end(b, l, TABLE);
    }

    if (s->clusters) {
        begin(b, l, TR_SEC_CLUSTERS, 0, tr_ld32(s->clusters + TR_C_K), TABLE);
        trh_buf_put(b, s->clusters, s->clusters_len);
        end(b, l, TABLE);
    }

    if (s->lmap_theta) {
        if (!s->clusters)
            return trh_err("a learned map needs the clusters section");
        uint32_t k = tr_ld32(s->clusters + TR_C_K);
        begin(b, l, TR_SEC_LEARNED_MAP, 0, k, TABLE);
        uint8_t h[TR_LMAP_HEADER_BYTES] = {0};
        size_t n_theta = (size_t)k * (dim + 1);
        tr_st32(h + TR_L_K, k);
        tr_st32(h + TR_L_DIM, dim);
        tr_st32(h + TR_L_OFF_THETA, TR_LMAP_HEADER_BYTES);
        tr_st32(h + TR_L_TOTAL, (uint32_t)round_up(TR_LMAP_HEADER_BYTES + 4 * n_theta, TR_ALIGN));
        trh_buf_put(b, h, sizeof h);
        for (size_t i = 0; i < n_theta; i++) {
            uint8_t f[4];
            tr_stf32(f, s->lmap_theta[i]);
            trh_buf_put(b, f, 4);
        }
        trh_buf_align(b, TR_ALIGN);
        end(b, l, TABLE);
    }

    if (s->embedder) {
        begin(b, l, TR_SEC_EMBEDDER, 0, 1, TABLE);
        trh_buf_put(b, s->embedder, s->embedder_len);
        end(b, l, TABLE);
    }
    trh_buf_align(b, TR_ALIGN);

    uint8_t *h = b->data;
    memcpy(h + TR_H_MAGIC, TR_PACK_MAGIC, 8);
    tr_st32(h + TR_H_VERSION, TR_PACK_VERSION);
    tr_st32(h + TR_H_HEADER_BYTES, TR_HEADER_BYTES);
    tr_st64(h + TR_H_SECURITY, s->security_counter);
    tr_st64(h + TR_H_CREATED, s->created_unix);
    tr_st64(h + TR_H_EXPIRES, s->expires_unix);
    memcpy(h + TR_H_EMBEDDER, s->embedder_name, strlen(s->embedder_name));
    tr_st32(h + TR_H_DIM, dim);
    tr_st32(h + TR_H_N_REFS, n);
    tr_st32(h + TR_H_N_MODELS, m);
    tr_st32(h + TR_H_N_SECTIONS, l->n_sections);
    tr_st64(h + TR_H_SIGNED_BYTES, b->len);
    tr_st32(h + TR_H_PREFILTER_C, s->prefilter_c);
    return l->n_sections == n_sec ? 0 : trh_err("internal: section count");
}

void trh_pack_append_trailer(trh_buf *b, const uint8_t key_id[32],
                            const uint8_t *sig, size_t sig_len)
{
    uint8_t t[TR_TRAILER_FIXED_BYTES];
    memcpy(t, TR_TRAILER_MAGIC, 4);
    tr_st16(t + 4, TR_TRAILER_VERSION);
    tr_st16(t + 6, (uint16_t)sig_len);
    memcpy(t + 8, key_id, 32);
    trh_buf_put(b, t, sizeof t);
    trh_buf_put(b, sig, sig_len);
}

void trh_delta_write(const trh_delta_spec *s, trh_buf *b)
{
    trh_pack_layout l = {0};
    uint32_t n_sec = (uint32_t)(s->has_settings + (s->retired != NULL) +
                                (s->n_added ? 3 + (s->n_clusters > 0) : 0));
    b->len = 0;
    trh_buf_zeros(b, TR_HEADER_BYTES + n_sec * TR_SECTION_ENTRY_BYTES);
    const size_t table_at = TR_HEADER_BYTES;
    if (s->has_settings) {
        begin(b, &l, TR_DSEC_SETTINGS, 0, 1, TABLE);
        uint8_t defs[TR_DEFAULTS_BYTES] = {0};
        tr_st32(defs + TR_D_K, s->k);
        tr_stf32(defs + TR_D_LAMBDA, s->lambda);
        tr_stf32(defs + TR_D_PRIOR, s->prior_strength);
        trh_buf_put(b, defs, sizeof defs);
        end(b, &l, TABLE);
    }
    if (s->retired) {
        uint32_t bytes = (s->n_base_models + 63) / 64 * 8;
        begin(b, &l, TR_DSEC_RETIRE, bytes, 1, TABLE);
        trh_buf_put(b, s->retired, bytes);
        end(b, &l, TABLE);
    }
    if (s->n_added) {
        begin(b, &l, TR_DSEC_MODELS, TR_MODEL_REC_BYTES, s->n_added, TABLE);
        trh_buf_put(b, s->records, (size_t)s->n_added * TR_MODEL_REC_BYTES);
        end(b, &l, TABLE);
        begin(b, &l, TR_DSEC_CORRECT_BITS, s->bit_stride, s->n_added, TABLE);
        trh_buf_put(b, s->correct, (size_t)s->n_added * s->bit_stride);
        end(b, &l, TABLE);
        begin(b, &l, TR_DSEC_VALID_BITS, s->bit_stride, s->n_added, TABLE);
        trh_buf_put(b, s->valid, (size_t)s->n_added * s->bit_stride);
        end(b, &l, TABLE);
        if (s->n_clusters) {
            begin(b, &l, TR_DSEC_PSI, 4 * s->n_added, s->n_clusters, TABLE);
            for (size_t i = 0; i < (size_t)s->n_clusters * s->n_added; i++) {
                uint8_t f[4];
                tr_stf32(f, s->psi[i]);
                trh_buf_put(b, f, 4);
            }
            end(b, &l, TABLE);
        }
    }
    trh_buf_align(b, TR_ALIGN);
    uint8_t *h = b->data;
    memcpy(h + TR_DH_MAGIC, TR_DELTA_MAGIC, 8);
    tr_st32(h + TR_DH_VERSION, TR_DELTA_VERSION);
    tr_st32(h + TR_DH_HEADER_BYTES, TR_HEADER_BYTES);
    tr_st64(h + TR_DH_SECURITY, s->security_counter);
    tr_st64(h + TR_DH_CREATED, s->created_unix);
    tr_st64(h + TR_DH_EXPIRES, s->expires_unix);
    memcpy(h + TR_DH_BASE_HASH, s->base_hash, 32);
    tr_st32(h + TR_DH_BASE_MODELS, s->n_base_models);
    tr_st32(h + TR_DH_N_ADDED, s->n_added);
    tr_st32(h + TR_DH_BASE_REFS, s->n_base_refs);
    tr_st32(h + TR_DH_N_SECTIONS, n_sec);
    tr_st64(h + TR_DH_SIGNED_BYTES, b->len);
    tr_st32(h + TR_DH_BASE_CLUSTERS, s->n_clusters);
}
#undef TABLE

/* Sign b's bytes and append the trailer; pub receives the signer's key. */
static int sign_into(trh_buf *b, const char *key_path, tr_pubkey *pub)
{
    uint8_t hash[32], sig[TR_SIG_MAX_BYTES], id[32];
    size_t sig_len = 0;
    mbedtls_sha256_ret(b->data, b->len, hash, 0);
    if (trh_key_sign(key_path, hash, sig, &sig_len, pub) != 0)
        return 1;
    trh_key_id(pub, id);
    trh_pack_append_trailer(b, id, sig, sig_len);
    return 0;
}

int trh_pack_sign(trh_buf *b, const char *key_path)
{
    tr_pubkey pub;
    return sign_into(b, key_path, &pub);
}

int trh_pack_sign_checked(trh_buf *b, const char *key_path)
{
    tr_pubkey pub;
    if (sign_into(b, key_path, &pub) != 0)
        return 1;
    /* Now as the device: the same limits and context sizing as the CLI's
     * verify and route (tools/packfile.c), then tr_pack_open with the
     * signer's key. The buffer is malloc'd (16-aligned, as open needs 8). */
    tr_pack_info info;
    tr_status st = tr_pack_peek(b->data, b->len, &info);
    void *view_mem = NULL, *ctx_mem = NULL;
    const tr_pack *view;
    tr_ctx *ctx;
    size_t need = trh_packfile_ctx_bytes(b->data, b->len, NULL, 0);
    if (st == TR_OK && (posix_memalign(&view_mem, 64, tr_pack_size()) != 0 ||
                        posix_memalign(&ctx_mem, 64, need) != 0)) {
        free(view_mem);
        return trh_err("out of memory (%zu bytes) for the check of the signed pack", need);
    }
    tr_trust trust = {.keys = &pub, .n_keys = 1};
    if (st == TR_OK)
        st = tr_pack_open(view_mem, tr_pack_size(), b->data, b->len, &trust, &view);
    if (st == TR_OK)
        st = tr_ctx_init(ctx_mem, need, info.dim, info.n_models, info.prefilter_candidates, &ctx);
    free(view_mem);
    free(ctx_mem);
    if (st != TR_OK)
        return trh_err("the signed pack does not verify (%s: %s): a builder bug or a field past "
                      "the device's limits; not writing it", tr_status_name(st), tr_strerror(st));
    return 0;
}

int trh_clusters_section(const float *centroids, uint32_t k, uint32_t dim,
                        uint32_t n_models, float psi_prior, trh_buf *out)
{
    const uint32_t cstride = (uint32_t)round_up(dim, 16);
    uint32_t o_rows = TR_CLU_HEADER_BYTES;
    uint32_t o_scale = (uint32_t)round_up(o_rows + (size_t)k * cstride, TR_ALIGN);
    uint32_t o_half = (uint32_t)round_up(o_scale + 4ull * k, TR_ALIGN);
    uint32_t o_psi = (uint32_t)round_up(o_half + 4ull * k, TR_ALIGN);
    uint32_t total = (uint32_t)round_up(o_psi + 4ull * k * n_models, TR_ALIGN);
    out->len = 0;
    trh_buf_zeros(out, total);
    uint8_t *c = out->data;
    tr_st32(c + TR_C_K, k);
    tr_st32(c + TR_C_STRIDE, cstride);
    tr_st32(c + TR_C_OFF_ROWS, o_rows);
    tr_st32(c + TR_C_OFF_INV_SCALE, o_scale);
    tr_st32(c + TR_C_OFF_HALF_SQ, o_half);
    tr_st32(c + TR_C_OFF_PSI, o_psi);
    tr_st32(c + TR_C_TOTAL, total);
    tr_stf32(c + TR_C_PSI_PRIOR, psi_prior);
    for (uint32_t i = 0; i < k; i++) {
        const float *v = centroids + (size_t)i * dim;
        double mx = 0, sq = 0;
        for (uint32_t d = 0; d < dim; d++) {
            mx = fmax(mx, fabs(v[d]));
            sq += (double)v[d] * v[d];
        }
        if (!(mx > 0) || !isfinite(sq))
            return trh_err("centroid %u is zero or not finite", i);
        double scale = 127.0 / mx;
        for (uint32_t d = 0; d < dim; d++) {
            double x = v[d] * scale;
            c[o_rows + (size_t)i * cstride + d] = (uint8_t)(int8_t)(int)(x >= 0 ? x + 0.5 : x - 0.5);
        }
        tr_stf32(c + o_scale + 4 * i, (float)(1.0 / scale));
        tr_stf32(c + o_half + 4 * i, (float)(sq / 2));
    }
    return 0;
}

int trh_tasks_section(const float *u, const float *acc, uint32_t n_tasks, uint32_t n_models,
                     uint32_t k_dist, float bandwidth, float gate, trh_buf *out)
{
    out->len = 0;
    if (!isfinite(bandwidth) || bandwidth < TR_TASK_BANDWIDTH_MIN || bandwidth > TR_TASK_BANDWIDTH_MAX)
        return trh_err("task table: S3 bandwidth %g is outside [%g, %g]; not writing a table "
                      "whose weights would be all 0 or NaN", (double)bandwidth,
                      (double)TR_TASK_BANDWIDTH_MIN, (double)TR_TASK_BANDWIDTH_MAX);
    uint32_t o_u = TR_TASKS_HEADER_BYTES;
    uint32_t o_a = (uint32_t)round_up(o_u + 4ull * n_tasks, TR_ALIGN);
    uint32_t total = (uint32_t)round_up(o_a + 4ull * n_tasks * n_models, TR_ALIGN);
    out->len = 0;
    trh_buf_zeros(out, total);
    uint8_t *t = out->data;
    tr_st32(t + TR_T_N_TASKS, n_tasks);
    tr_st32(t + TR_T_K_DIST, k_dist);
    tr_stf32(t + TR_T_BANDWIDTH, bandwidth);
    tr_stf32(t + TR_T_GATE, gate);
    tr_st32(t + TR_T_OFF_U, o_u);
    tr_st32(t + TR_T_OFF_ACC, o_a);
    tr_st32(t + TR_T_TOTAL, total);
    for (uint32_t i = 0; i < n_tasks; i++)
        tr_stf32(t + o_u + 4 * i, u[i]);
    for (size_t i = 0; i < (size_t)n_tasks * n_models; i++)
        tr_stf32(t + o_a + 4 * i, acc[i]);
    return 0;
}
