/* The pack view, the per-call context and the one routing call: embed (or
 * take) the query, find its neighbours, predict each model's correctness,
 * pick argmax_m q_m - lambda * cost_m. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_format.h"
#include "tr_internal.h"

/* ---- the view ---- */

size_t tr_pack_size(void)
{
    return tr_arena_round(sizeof(struct tr_pack));
}

int tr_pack_ok(const tr_pack *p)
{
    return p && p->magic == TR_VIEW_MAGIC;
}

int tr_overlaps(const void *a, size_t an, const void *b, size_t bn)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bn && y < x + an;
}

tr_status tr_pack_open(void *mem, size_t mem_bytes, const void *pack, size_t len,
                       const tr_trust *trust, const tr_pack **out)
{
    if (!mem || !pack || !out || (uintptr_t)mem % TR_ARENA_ALIGN != 0)
        return TR_E_ARG;
    if (mem_bytes < tr_pack_size())
        return TR_E_ARENA_TOO_SMALL;
    /* The view written into the bytes it verified would change them. */
    if (tr_overlaps(mem, tr_pack_size(), pack, len))
        return TR_E_ARG;
    tr_pack_view v;
    tr_status st = tr_pack_verify(pack, len, trust, &v);
    if (st != TR_OK)
        return st;
    uint64_t floor;
    if ((st = tr_counter_floor(trust, TR_COUNTER_PACK, &floor)) != TR_OK ||
        (st = tr_counter_commit(trust, TR_COUNTER_PACK, floor, v.info.security_counter)) != TR_OK)
        return st;
    struct tr_pack *p = mem;
    memset(p, 0, sizeof *p);
    p->kern = tr_kernels_active();
    p->base_bytes = pack;
    p->base_len = len;
    p->base = v;
    p->served = v;
    p->magic = TR_VIEW_MAGIC;
    *out = p;
    return TR_OK;
}

tr_status tr_pack_get_info(const tr_pack *p, tr_pack_info *info)
{
    if (!tr_pack_ok(p) || !info)
        return TR_E_ARG;
    *info = p->served.info;
    return TR_OK;
}

void tr_model_info_of(const tr_pack_view *p, uint32_t m, tr_model_info *mi)
{
    mi->added = m >= p->n_base_models;
    mi->retired = !mi->added && p->retired && (p->retired[m >> 6] >> (m & 63) & 1);
    const uint8_t *rec = mi->added ? p->added_models + (size_t)(m - p->n_base_models) *
                                                           TR_MODEL_REC_BYTES
                                   : p->models + (size_t)m * TR_MODEL_REC_BYTES;
    mi->name = (const char *)rec + TR_M_NAME;
    mi->cost = tr_ldf32(rec + TR_M_COST);
    mi->cost_norm = tr_ldf32(rec + TR_M_COST_NORM);
    mi->prior = tr_ldf32(rec + TR_M_PRIOR);
    mi->where = (tr_where)tr_ld32(rec + TR_M_WHERE);
}

tr_status tr_pack_get_model(const tr_pack *p, uint32_t m, tr_model_info *mi)
{
    if (!tr_pack_ok(p) || !mi || m >= p->served.info.n_models)
        return TR_E_ARG;
    tr_model_info_of(&p->served, m, mi);
    return TR_OK;
}

/* ---- the context ---- */

static void carve(tr_arena *a, uint32_t dim, uint32_t n_models, uint32_t n_cand, tr_scratch *s,
                  uint8_t **mask)
{
    s->acc = tr_arena_take(a, sizeof(float) * dim);
    s->q = tr_arena_take(a, dim);
    s->dots = tr_arena_take(a, sizeof(int32_t) * TR_KNN_BLOCK);
    s->nb = tr_arena_take(a, sizeof(tr_neighbor) * TR_K_MAX);
    s->predicted = tr_arena_take(a, sizeof(float) * n_models);
    s->aux = tr_arena_take(a, sizeof(float) * n_models);
    s->lhits = tr_arena_take(a, sizeof(float) * n_models);
    s->lknown = tr_arena_take(a, sizeof(float) * n_models);
    s->z = tr_arena_take(a, sizeof(float) * TR_LMAP_MAX_K);
    s->qcode = NULL;
    s->ham = NULL;
    s->cand = NULL;
    s->n_cand = n_cand;
    if (n_cand) {
        s->qcode = tr_arena_take(a, 8 * (((size_t)dim + 63) / 64));
        s->ham = tr_arena_take(a, sizeof(uint32_t) * TR_KNN_BLOCK);
        s->cand = tr_arena_take(a, sizeof(tr_neighbor) * n_cand);
    }
    *mask = tr_arena_take(a, ((size_t)n_models + 7) / 8);
}

size_t tr_ctx_size(uint32_t dim, uint32_t n_models, uint32_t n_cand)
{
    if (dim == 0 || dim > TR_DIM_MAX || n_models == 0 || n_models > TR_MODELS_MAX ||
        n_cand > TR_PREFILTER_MAX)
        return 0;
    tr_arena a = {NULL, (size_t)-1, 0};
    tr_scratch s;
    uint8_t *mask;
    tr_arena_take(&a, sizeof(struct tr_ctx));
    carve(&a, dim, n_models, n_cand, &s, &mask);
    return a.used;
}

size_t tr_ctx_size_for(const tr_pack *p)
{
    if (!tr_pack_ok(p))
        return 0;
    const tr_pack_info *i = &p->served.info;
    return tr_ctx_size(i->dim, i->n_models, i->prefilter_candidates);
}

tr_status tr_ctx_init(void *mem, size_t bytes, uint32_t dim, uint32_t n_models, uint32_t n_cand,
                      tr_ctx **out)
{
    size_t need = tr_ctx_size(dim, n_models, n_cand);
    if (!mem || !out || (uintptr_t)mem % TR_ARENA_ALIGN != 0 || need == 0)
        return TR_E_ARG;
    if (bytes < need)
        return TR_E_ARENA_TOO_SMALL;
    tr_arena a = {mem, bytes, 0};
    struct tr_ctx *c = mem;
    tr_arena_take(&a, sizeof *c);
    memset(c, 0, sizeof *c);
    c->dim = dim;
    c->n_models = n_models;
    c->n_cand = n_cand;
    carve(&a, dim, n_models, n_cand, &c->s, &c->mask);
    c->magic = TR_CTX_MAGIC;
    *out = c;
    return TR_OK;
}

tr_status tr_ctx_check(const tr_pack *p, const tr_ctx *c)
{
    if (!tr_pack_ok(p) || !c || c->magic != TR_CTX_MAGIC)
        return TR_E_ARG;
    const tr_pack_info *i = &p->served.info;
    return c->dim >= i->dim && c->n_models >= i->n_models && c->n_cand >= i->prefilter_candidates
               ? TR_OK
               : TR_E_ARENA_TOO_SMALL;
}

/* ---- options ---- */

/* Resolve options against the pack's defaults. */
tr_status tr_resolve_opts(const tr_pack_view *p, const tr_route_opts *o, uint32_t *k,
                          float *lambda)
{
    *k = p->info.default_k;
    *lambda = p->info.default_lambda;
    if (!o)
        return TR_OK;
    if (o->k > TR_K_MAX)
        return TR_E_ARG;
    if (o->k)
        *k = o->k;
    if (isnan(o->lambda) || isinf(o->lambda))
        return TR_E_ARG;
    /* 0 is the pack's, as k = 0: a zeroed opts keeps a calibrated lambda. */
    if (o->lambda > 0.0f)
        *lambda = o->lambda;
    else if (o->lambda == TR_LAMBDA_ZERO)
        *lambda = 0.0f;
    /* Arrays shorter than the models served (a delta added some since the
     * caller sized them) would be read past their end. */
    if ((o->penalty && o->penalty_count < p->info.n_models) ||
        (o->available && o->available_bits < p->info.n_models))
        return TR_E_ARG;
    /* A NaN penalty would compare false against every utility and flip the
     * choice; an infinite one makes every utility -Inf or NaN. */
    if (o->penalty)
        for (uint32_t m = 0; m < p->info.n_models; m++)
            if (!isfinite(o->penalty[m]))
                return TR_E_ARG;
    if (!(o->prior_strength <= TR_PRIOR_STRENGTH_MAX)) /* NaN too; -inf is "none" */
        return TR_E_ARG;
    if (o->method != TR_METHOD_DEFAULT && o->method != TR_METHOD_KNN &&
        o->method != TR_METHOD_CLUSTER && o->method != TR_METHOD_LEARNED_MAP)
        return TR_E_ARG;
    const tr_method meth = tr_method_of(p, o);
    if (o->local) {
        /* Local entries are neighbours: only the kNN estimate has a place
         * for them (tinyroute.h, Local learning). */
        if (meth != TR_METHOD_KNN || !(o->local_weight >= 0.0f) || isinf(o->local_weight) ||
            isnan(o->local_level) || isinf(o->local_level))
            return TR_E_ARG;
        tr_status st = tr_local_check(o->local, p);
        if (st != TR_OK)
            return st;
    }
    if ((meth == TR_METHOD_CLUSTER && p->clusters.k == 0) ||
        (meth == TR_METHOD_LEARNED_MAP && p->lmap.k == 0))
        return TR_E_UNSUPPORTED;
    return TR_OK;
}

tr_method tr_method_of(const tr_pack_view *p, const tr_route_opts *o)
{
    if (o && o->method != TR_METHOD_DEFAULT)
        return o->method;
    /* A local store asks for the estimate that has a place for its
     * entries, whatever the pack's default (tinyroute.h, Local learning). */
    if (o && o->local)
        return TR_METHOD_KNN;
    return (tr_method)p->info.default_method;
}

int tr_model_available(const tr_route_opts *o, uint32_t m, const tr_model_info *mi)
{
    if (mi->retired)
        return 0;
    if (o && o->offline && mi->where != TR_DEVICE)
        return 0;
    if (o && o->available && !(o->available[m >> 3] >> (m & 7) & 1))
        return 0;
    return 1;
}

float tr_prior_strength(const tr_pack_view *p, const tr_route_opts *o)
{
    if (!o || o->prior_strength == 0.0f)
        return p->info.default_prior_strength;
    return o->prior_strength > 0.0f ? o->prior_strength : 0.0f;
}

void tr_predict_knn(const tr_pack_view *p, const tr_neighbor *nb, uint32_t k, int weighted,
                    float inv_qnorm, float a, const float *eh, const float *ek, float *predicted,
                    float *share, float *pack_only)
{
    tr_knn_predict_ext(&p->labels, nb, k, weighted, inv_qnorm, a, eh, ek, predicted, share,
                       pack_only);
    const uint32_t b = p->n_base_models;
    if (p->added_labels.n_models)
        tr_knn_predict_ext(&p->added_labels, nb, k, weighted, inv_qnorm, a, eh ? eh + b : NULL,
                           ek ? ek + b : NULL, predicted + b, share ? share + b : NULL,
                           pack_only ? pack_only + b : NULL);
}

int tr_best_model(const tr_pack_view *p, const tr_route_opts *o, float lambda,
                  const float *score, float *best_u)
{
    int best = -1;
    tr_model_info bi = {0};
    float bu = 0.0f;
    for (uint32_t m = 0; m < p->info.n_models; m++) {
        tr_model_info mi;
        tr_model_info_of(p, m, &mi);
        if (!tr_model_available(o, m, &mi))
            continue;
        float u = (score ? score[m] : mi.prior) - lambda * mi.cost_norm -
                  (o && o->penalty ? o->penalty[m] : 0.0f);
        /* Ties: on-device first, then cheaper, then the lower index. */
        if (best < 0 || u > bu ||
            (u == bu && (mi.where < bi.where ||
                         (mi.where == bi.where && mi.cost_norm < bi.cost_norm)))) {
            best = (int)m;
            bu = u;
            bi = mi;
        }
    }
    if (best_u)
        *best_u = bu;
    return best;
}

/* Would some model outside the availability mask have beaten best_u? */
int tr_masked_out_better(const tr_pack_view *p, const tr_route_opts *o, float lambda,
                         const float *predicted, float best_u)
{
    if (!o || !o->available)
        return 0;
    for (uint32_t m = 0; m < p->info.n_models; m++) {
        tr_model_info mi;
        tr_model_info_of(p, m, &mi);
        if (mi.retired)
            continue;
        float u = predicted[m] - lambda * mi.cost_norm - (o->penalty ? o->penalty[m] : 0.0f);
        if (!(o->available[m >> 3] >> (m & 7) & 1) && u > best_u)
            return 1;
    }
    return 0;
}

/* Models no neighbour (or no method) said anything about: their prior. */
static void fill_priors(const tr_pack_view *p, float *predicted)
{
    for (uint32_t m = 0; m < p->info.n_models; m++)
        if (isnan(predicted[m])) {
            tr_model_info mi;
            tr_model_info_of(p, m, &mi);
            predicted[m] = mi.prior;
        }
}

uint32_t tr_knn_query(const tr_pack *pk, const tr_scratch *s, uint32_t k_search, uint32_t k_pred,
                      const tr_route_opts *o, float *inv_qnorm)
{
    const tr_pack_view *p = &pk->served;
    /* The prefilter only with scratch carved for it (tr_ctx_check). */
    uint32_t c = p->info.prefilter_candidates;
    if (c > s->n_cand || !s->cand || !p->codes.bits)
        c = 0;
    uint32_t found = c && !(o && o->exact)
                         ? tr_knn_search_prefilter(pk->kern, &p->refs, &p->codes, s->q, k_search,
                                                   c, s->qcode, s->ham, s->cand, s->nb)
                         : tr_knn_search(pk->kern, &p->refs, s->q, k_search, s->dots, s->nb);
    *inv_qnorm = tr_i8_inv_norm(s->q, p->info.dim);
    const uint32_t kp = found < k_pred ? found : k_pred;
    const float *eh = NULL, *ek = NULL;
    if (o && o->local && tr_local_count(o->local) > 0) {
        /* The pack's neighbour radius: the k-th neighbour's distance. A
         * local entry inside it is as near as a neighbour the pack counts. */
        const float radius = kp ? 1.0f - s->nb[kp - 1].sim * *inv_qnorm : 2.0f;
        const float w = o->local_weight > 0.0f ? o->local_weight : TR_LOCAL_WEIGHT_DEFAULT;
        if (tr_local_evidence(o->local, pk->kern, s->q, *inv_qnorm, radius, w, s->dots, s->lhits,
                              s->lknown)) {
            eh = s->lhits;
            ek = s->lknown;
        }
    }
    const int weighted = o && o->distance_weighted;
    const float a = tr_prior_strength(p, o);
    /* And the pack's own estimate (no local entries) into lhits, for the
     * level term's residuals (tr_route_out.estimate): each model's local
     * hits are read before its own estimate replaces them. */
    tr_predict_knn(p, s->nb, kp, weighted, *inv_qnorm, a, eh, ek, s->predicted, s->aux, s->lhits);
    fill_priors(p, s->predicted);
    fill_priors(p, s->lhits);
    tr_apply_local_level(p, s, o);
    return found;
}

void tr_apply_local_level(const tr_pack_view *p, const tr_scratch *s, const tr_route_opts *o)
{
    if (!o || !o->local)
        return;
    const float strength = o->local_level == 0.0f ? TR_LOCAL_LEVEL_DEFAULT : o->local_level;
    if (strength > 0.0f) /* < 0: off */
        tr_local_apply_level(o->local, strength, s->aux, s->predicted);
}

/* The query is in s->q; the result goes to *res only on success. */
static tr_status route_query(const tr_pack *pk, const tr_scratch *s, int prior_only,
                             const tr_route_opts *o, uint32_t k, float lambda, tr_result *out)
{
    const tr_pack_view *p = &pk->served;
    uint32_t n_models = p->info.n_models;
    tr_result r;
    memset(&r, 0, sizeof r);
    r.lambda = lambda;
    r.method = tr_method_of(p, o);
    r.nearest_distance = 1.0f;
    if (prior_only) {
        r.flags |= TR_RESULT_PRIOR_ONLY;
        for (uint32_t m = 0; m < n_models; m++)
            s->predicted[m] = NAN;
        fill_priors(p, s->predicted);
        memcpy(s->lhits, s->predicted, sizeof(float) * n_models);
        for (uint32_t m = 0; m < n_models; m++)
            s->aux[m] = 1.0f; /* no local entry: the estimate is the pack's */
        tr_apply_local_level(p, s, o); /* the device model's level, here too */
    } else if (r.method == TR_METHOD_CLUSTER) {
        r.cluster = tr_cluster_assign(pk->kern, &p->clusters, s->q, s->dots);
        tr_cluster_predict(&p->clusters, r.cluster, s->predicted);
        fill_priors(p, s->predicted);
        r.nearest_distance = NAN;
    } else if (r.method == TR_METHOD_LEARNED_MAP) {
        tr_learned_map_predict(&p->lmap, &p->clusters, s->q, s->z, s->predicted);
        fill_priors(p, s->predicted);
        r.nearest_distance = NAN;
    } else {
        float inv_qnorm;
        r.k = tr_knn_query(pk, s, k, k, o, &inv_qnorm);
        r.nearest_distance = 1.0f - s->nb[0].sim * inv_qnorm;
    }
    float best_u;
    int best = tr_best_model(p, o, lambda, s->predicted, &best_u);
    if (best < 0)
        return TR_E_NO_MODEL_AVAILABLE;
    /* The hard rules first: they hold whatever the prediction. */
    r.why = o && o->offline ? TR_WHY_OFFLINE
          : tr_masked_out_better(p, o, lambda, s->predicted, best_u) ? TR_WHY_UNAVAILABLE
          : prior_only ? TR_WHY_PRIOR_ONLY
                       : TR_WHY_UTILITY;
    tr_model_info bi;
    tr_model_info_of(p, (uint32_t)best, &bi);
    r.model = (uint32_t)best;
    r.model_name = bi.name;
    r.where = bi.where;
    r.cost = bi.cost;
    r.cost_norm = bi.cost_norm;
    r.utility = best_u;
    *out = r;
    return TR_OK;
}

tr_status tr_check_query(const tr_pack *pk, const tr_query *q)
{
    const tr_pack_view *p = &pk->served;
    if (!q || q->size != sizeof(tr_query))
        return TR_E_ARG;
    switch (q->kind) {
    case TR_QUERY_TEXT:
        if (!q->text)
            return TR_E_ARG;
        return p->has_embedder ? TR_OK : TR_E_NO_EMBEDDER;
    case TR_QUERY_F32:
    case TR_QUERY_I8:
        if (!q->embedder || !q->embedding)
            return TR_E_ARG;
        if (strncmp(q->embedder, p->info.embedder, TR_EMBEDDER_NAME_MAX) != 0)
            return TR_E_EMBEDDER_MISMATCH;
        return q->dim == p->info.dim ? TR_OK : TR_E_DIM_MISMATCH;
    }
    return TR_E_ARG;
}

tr_status tr_load_query(const tr_pack *pk, const tr_scratch *s, const tr_query *q,
                        int *prior_only)
{
    const tr_pack_view *p = &pk->served;
    const uint32_t dim = p->info.dim;
    tr_status st;
    *prior_only = 0;
    switch (q->kind) {
    case TR_QUERY_TEXT: {
        uint32_t known;
        st = tr_embed_f32(&p->embedder, q->text, q->len, s->acc, &known);
        if (st != TR_OK)
            return st;
        st = known ? tr_quantize_i8(s->acc, dim, s->q) : TR_E_ZERO_VECTOR;
        /* A prompt of unknown words (or one the pc removal zeroed) says
         * nothing about its neighbours: fall back to priors, and say so. */
        *prior_only = st == TR_E_ZERO_VECTOR;
        if (*prior_only)
            memset(s->q, 0, dim);
        return st == TR_E_ZERO_VECTOR ? TR_OK : st;
    }
    case TR_QUERY_F32:
        return tr_quantize_i8(q->embedding, dim, s->q);
    case TR_QUERY_I8:
        if ((st = tr_check_i8(q->embedding, dim)) != TR_OK)
            return st;
        memcpy(s->q, q->embedding, dim);
        return TR_OK;
    }
    return TR_E_ARG;
}

static tr_status check_out(const tr_pack_view *p, const tr_route_out *out)
{
    if (!out)
        return TR_OK;
    if ((out->predicted && out->predicted_cap < p->info.n_models) ||
        (out->embedding && out->embedding_cap < p->info.dim) ||
        (out->estimate && out->estimate_cap < p->info.n_models))
        return TR_E_OUTPUT_TOO_SMALL;
    return TR_OK;
}

tr_status tr_route(const tr_pack *pk, tr_ctx *c, const tr_query *q, const tr_route_opts *o,
                   tr_result *res, const tr_route_out *out)
{
    tr_status st = tr_ctx_check(pk, c);
    if (st != TR_OK)
        return st;
    if (!q || !res)
        return TR_E_ARG;
    const tr_pack_view *p = &pk->served;
    uint32_t k;
    float lambda;
    if ((st = tr_check_query(pk, q)) != TR_OK || (st = check_out(p, out)) != TR_OK ||
        (st = tr_resolve_opts(p, o, &k, &lambda)) != TR_OK)
        return st;
    int prior_only;
    if ((st = tr_load_query(pk, &c->s, q, &prior_only)) != TR_OK)
        return st;
    tr_result r;
    if ((st = route_query(pk, &c->s, prior_only, o, k, lambda, &r)) != TR_OK)
        return st;
    if (out && out->predicted)
        memcpy(out->predicted, c->s.predicted, sizeof(float) * p->info.n_models);
    if (out && out->embedding)
        memcpy(out->embedding, c->s.q, p->info.dim);
    if (out && out->estimate) /* cluster and map routes have no level term */
        memcpy(out->estimate, r.method == TR_METHOD_KNN || (r.flags & TR_RESULT_PRIOR_ONLY)
                                  ? c->s.lhits
                                  : c->s.predicted,
               sizeof(float) * p->info.n_models);
    *res = r;
    return TR_OK;
}

tr_status tr_embed(const tr_pack *pk, tr_ctx *c, const char *text, size_t len, int8_t *out,
                   size_t out_cap)
{
    tr_status st = tr_ctx_check(pk, c);
    if (st != TR_OK)
        return st;
    if (!out)
        return TR_E_ARG;
    const tr_query q = tr_query_text(text, len);
    if ((st = tr_check_query(pk, &q)) != TR_OK)
        return st;
    if (out_cap < pk->served.info.dim)
        return TR_E_OUTPUT_TOO_SMALL;
    int prior_only;
    if ((st = tr_load_query(pk, &c->s, &q, &prior_only)) != TR_OK)
        return st;
    memcpy(out, c->s.q, pk->served.info.dim);
    return TR_OK;
}

tr_status tr_check_i8(const int8_t *e, uint32_t dim)
{
    int any = 0;
    for (uint32_t d = 0; d < dim; d++) {
        /* -128 has no positive twin; the packs use [-127,127]. */
        if (e[d] == -128)
            return TR_E_ARG;
        any |= e[d] != 0;
    }
    return any ? TR_OK : TR_E_ZERO_VECTOR;
}

const char *tr_kernel_name(void)
{
    return tr_kernels_active()->name;
}

/* ---- the in-RAM counter store ---- */

static int ram_read(void *ctx, int kind, tr_counter_slot *slot)
{
    *slot = ((const tr_counter_slot *)ctx)[kind];
    return 0;
}

static int ram_write(void *ctx, int kind, const tr_counter_slot *slot)
{
    ((tr_counter_slot *)ctx)[kind] = *slot;
    return 0;
}

void tr_counter_store_ram(tr_counter_store *s, tr_counter_slot slots[2])
{
    if (!s || !slots)
        return;
    s->ctx = slots;
    s->read = ram_read;
    s->write = ram_write;
}
