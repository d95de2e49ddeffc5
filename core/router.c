/* Routing entry points: embed (or take) the query, find its neighbours,
 * predict each model's correctness, pick argmax_m q_m - lambda * cost_m. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_format.h"
#include "tr_internal.h"

static int carve(tr_arena *a, uint32_t dim, uint32_t n_models, uint32_t n_cand,
                 tr_scratch *s)
{
    tr_arena_take(a, sizeof(struct tr_router));
    s->acc = tr_arena_take(a, sizeof(float) * dim);
    s->q = tr_arena_take(a, dim);
    s->dots = tr_arena_take(a, sizeof(int32_t) * TR_KNN_BLOCK);
    s->nb = tr_arena_take(a, sizeof(tr_neighbor) * TR_K_MAX);
    s->predicted = tr_arena_take(a, sizeof(float) * n_models);
    s->aux = tr_arena_take(a, sizeof(float) * n_models);
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
    return a->used <= a->size;
}

size_t tr_arena_size(uint32_t dim, uint32_t n_models, uint32_t n_cand)
{
    tr_arena a = {NULL, (size_t)-1, 0};
    tr_scratch s;
    carve(&a, dim, n_models, n_cand, &s);
    return a.used;
}

tr_status tr_router_init(void *arena, size_t arena_bytes, tr_router **out)
{
    if (!arena || !out || (uintptr_t)arena % TR_ARENA_ALIGN != 0)
        return TR_E_ARG;
    if (arena_bytes < tr_arena_round(sizeof(struct tr_router)))
        return TR_E_ARENA_TOO_SMALL;
    tr_router *r = arena;
    memset(r, 0, sizeof *r);
    r->arena = arena;
    r->arena_bytes = arena_bytes;
    r->kern = tr_kernels_active();
    *out = r;
    return TR_OK;
}

tr_status tr_router_load(tr_router *r, const void *pack, size_t len,
                         const tr_trust *trust)
{
    if (!r || !pack)
        return TR_E_ARG;
    tr_pack_view v;
    tr_status st = tr_pack_verify(pack, len, trust, &v);
    if (st != TR_OK)
        return st;
    if (tr_arena_size(v.info.dim, v.info.n_models, v.info.prefilter_candidates) >
        r->arena_bytes)
        return TR_E_ARENA_TOO_SMALL;
    uint64_t floor;
    if ((st = tr_counter_floor(trust, TR_COUNTER_PACK, &floor)) != TR_OK ||
        (st = tr_counter_commit(trust, TR_COUNTER_PACK, floor, v.info.security_counter)) != TR_OK)
        return st;
    r->base = v;
    r->pack = v; /* the swap: only after every check passed */
    r->loaded = 1;
    r->has_delta = 0; /* a delta names its base: it cannot outlive it */
    return TR_OK;
}

tr_status tr_router_pack_info(const tr_router *r, tr_pack_info *info)
{
    if (!r || !info)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    *info = r->pack.info;
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

tr_status tr_router_model(const tr_router *r, uint32_t m, tr_model_info *mi)
{
    if (!r || !mi)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    if (m >= r->pack.info.n_models)
        return TR_E_ARG;
    tr_model_info_of(&r->pack, m, mi);
    return TR_OK;
}

tr_scratch tr_get_scratch(tr_router *r)
{
    tr_arena a = {r->arena, r->arena_bytes, 0};
    tr_scratch s;
    carve(&a, r->pack.info.dim, r->pack.info.n_models, r->pack.info.prefilter_candidates,
          &s);
    return s;
}

/* Resolve options against the pack's defaults. */
tr_status tr_resolve_opts(const tr_router *r, const tr_route_opts *o,
                         uint32_t *k, float *lambda)
{
    *k = r->pack.info.default_k;
    *lambda = r->pack.info.default_lambda;
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
    /* A NaN penalty would compare false against every utility and flip the
     * choice; an infinite one makes every utility -Inf or NaN. */
    if (o->penalty)
        for (uint32_t m = 0; m < r->pack.info.n_models; m++)
            if (!isfinite(o->penalty[m]))
                return TR_E_ARG;
    if (!(o->prior_strength <= TR_PRIOR_STRENGTH_MAX)) /* NaN too; -inf is "none" */
        return TR_E_ARG;
    if (o->method != TR_METHOD_KNN && o->method != TR_METHOD_CLUSTER &&
        o->method != TR_METHOD_LEARNED_MAP)
        return TR_E_ARG;
    if ((o->method == TR_METHOD_CLUSTER && r->pack.clusters.k == 0) ||
        (o->method == TR_METHOD_LEARNED_MAP && r->pack.lmap.k == 0))
        return TR_E_UNSUPPORTED;
    return TR_OK;
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
                    float inv_qnorm, float a, float *predicted)
{
    tr_knn_predict(&p->labels, nb, k, weighted, inv_qnorm, a, predicted);
    if (p->added_labels.n_models)
        tr_knn_predict(&p->added_labels, nb, k, weighted, inv_qnorm, a,
                       predicted + p->n_base_models);
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

static tr_status route_query(tr_router *r, const tr_scratch *s, int prior_only,
                             const tr_route_opts *o, tr_result *res,
                             float *predicted)
{
    const tr_pack_view *p = &r->pack;
    uint32_t k, n_models = p->info.n_models;
    float lambda;
    tr_status st = tr_resolve_opts(r, o, &k, &lambda);
    if (st != TR_OK)
        return st;
    memset(res, 0, sizeof *res);
    res->lambda = lambda;
    res->method = o ? o->method : TR_METHOD_KNN;
    res->nearest_distance = 1.0f;
    if (prior_only) {
        res->flags |= TR_RESULT_PRIOR_ONLY;
        for (uint32_t m = 0; m < n_models; m++)
            s->predicted[m] = NAN;
    } else if (o && o->method == TR_METHOD_CLUSTER) {
        float qn = 0.0f;
        for (uint32_t d = 0; d < p->info.dim; d++)
            qn += (float)((int32_t)s->q[d] * s->q[d]);
        res->cluster = tr_cluster_assign(r->kern, &p->clusters, s->q, sqrtf(qn), s->dots);
        tr_cluster_predict(&p->clusters, res->cluster, s->predicted);
        res->nearest_distance = NAN;
    } else if (o && o->method == TR_METHOD_LEARNED_MAP) {
        tr_learned_map_predict(&p->lmap, &p->clusters, s->q, s->z, s->predicted);
        res->nearest_distance = NAN;
    } else {
        /* The prefilter only with the scratch carved for it: a view that
         * changed under this call (a load from a callback, a caller breaking
         * the one-thread rule) must not send the search to NULL codes. */
        uint32_t c = p->info.prefilter_candidates;
        if (c != s->n_cand || !s->cand || !p->codes.bits)
            c = 0;
        uint32_t found = c && !(o && o->exact)
                             ? tr_knn_search_prefilter(r->kern, &p->refs, &p->codes, s->q, k, c,
                                                       s->qcode, s->ham, s->cand, s->nb)
                             : tr_knn_search(r->kern, &p->refs, s->q, k, s->dots, s->nb);
        int64_t qq = 0;
        for (uint32_t d = 0; d < p->info.dim; d++)
            qq += (int32_t)s->q[d] * s->q[d];
        float inv_qnorm = 1.0f / sqrtf((float)qq);
        tr_predict_knn(p, s->nb, found, o && o->distance_weighted, inv_qnorm,
                       tr_prior_strength(p, o), s->predicted);
        res->k = found;
        res->nearest_distance = 1.0f - s->nb[0].sim * inv_qnorm;
    }
    for (uint32_t m = 0; m < n_models; m++)
        if (isnan(s->predicted[m])) {
            tr_model_info mi;
            tr_model_info_of(p, m, &mi);
            s->predicted[m] = mi.prior;
        }
    float best_u;
    int best = tr_best_model(p, o, lambda, s->predicted, &best_u);
    if (predicted)
        memcpy(predicted, s->predicted, sizeof(float) * n_models);
    if (best < 0)
        return TR_E_NO_MODEL_AVAILABLE;
    /* The hard rules first: they hold whatever the prediction. */
    res->why = o && o->offline ? TR_WHY_OFFLINE
             : tr_masked_out_better(p, o, lambda, s->predicted, best_u) ? TR_WHY_UNAVAILABLE
             : prior_only ? TR_WHY_PRIOR_ONLY
                          : TR_WHY_UTILITY;
    tr_model_info bi;
    tr_model_info_of(p, (uint32_t)best, &bi);
    res->model = (uint32_t)best;
    res->model_name = bi.name;
    res->where = bi.where;
    res->cost = bi.cost;
    res->cost_norm = bi.cost_norm;
    res->utility = best_u;
    return TR_OK;
}

/* Embed text into s->q; *prior_only when no known word was found. */
tr_status tr_embed_query(tr_router *r, const tr_scratch *s, const char *text,
                       size_t len, int *prior_only)
{
    if (!r->pack.has_embedder)
        return TR_E_NO_EMBEDDER;
    uint32_t known;
    tr_status st = tr_embed_f32(&r->pack.embedder, text, len, s->acc, &known);
    if (st != TR_OK)
        return st;
    st = known ? tr_quantize_i8(s->acc, r->pack.info.dim, s->q) : TR_E_ZERO_VECTOR;
    /* A prompt of unknown words (or one the pc removal zeroed) says nothing
     * about its neighbours: fall back to priors, and say so. */
    *prior_only = st == TR_E_ZERO_VECTOR;
    if (*prior_only)
        memset(s->q, 0, r->pack.info.dim);
    return st == TR_E_ZERO_VECTOR ? TR_OK : st;
}

tr_status tr_check_ready(const tr_router *r, const void *in, const void *res)
{
    if (!r || !in || !res)
        return TR_E_ARG;
    return r->loaded ? TR_OK : TR_E_NO_PACK;
}

tr_status tr_route_text(tr_router *r, const char *text, size_t len,
                        const tr_route_opts *o, tr_result *res, float *predicted)
{
    tr_status st = tr_check_ready(r, text, res);
    if (st != TR_OK)
        return st;
    tr_scratch s = tr_get_scratch(r);
    int prior_only;
    st = tr_embed_query(r, &s, text, len, &prior_only);
    if (st != TR_OK)
        return st;
    return route_query(r, &s, prior_only, o, res, predicted);
}

tr_status tr_embed_text(tr_router *r, const char *text, size_t len, int8_t *out,
                        uint32_t dim)
{
    tr_status st = tr_check_ready(r, text, out);
    if (st != TR_OK)
        return st;
    if (dim != r->pack.info.dim)
        return TR_E_DIM_MISMATCH;
    tr_scratch s = tr_get_scratch(r);
    int prior_only;
    st = tr_embed_query(r, &s, text, len, &prior_only);
    if (st != TR_OK)
        return st;
    memcpy(out, s.q, dim);
    return TR_OK;
}

tr_status tr_check_embedding(const tr_router *r, const char *embedder, uint32_t dim)
{
    if (!embedder)
        return TR_E_ARG;
    if (strncmp(embedder, r->pack.info.embedder, TR_EMBEDDER_NAME_MAX) != 0)
        return TR_E_EMBEDDER_MISMATCH;
    return dim == r->pack.info.dim ? TR_OK : TR_E_DIM_MISMATCH;
}

tr_status tr_route_f32(tr_router *r, const char *embedder, const float *e,
                       uint32_t dim, const tr_route_opts *o, tr_result *res,
                       float *predicted)
{
    tr_status st = tr_check_ready(r, e, res);
    if (st == TR_OK)
        st = tr_check_embedding(r, embedder, dim);
    if (st != TR_OK)
        return st;
    tr_scratch s = tr_get_scratch(r);
    st = tr_quantize_i8(e, dim, s.q);
    if (st != TR_OK)
        return st;
    return route_query(r, &s, 0, o, res, predicted);
}

tr_status tr_route_i8(tr_router *r, const char *embedder, const int8_t *e,
                      uint32_t dim, const tr_route_opts *o, tr_result *res,
                      float *predicted)
{
    tr_status st = tr_check_ready(r, e, res);
    if (st == TR_OK)
        st = tr_check_embedding(r, embedder, dim);
    if (st != TR_OK)
        return st;
    if ((st = tr_check_i8(e, dim)) != TR_OK)
        return st;
    tr_scratch s = tr_get_scratch(r);
    memcpy(s.q, e, dim);
    return route_query(r, &s, 0, o, res, predicted);
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

/* The verified view holds only the pack's facts and pointers into the
 * caller's pack bytes, so a copy of it serves the same pack with no second
 * signature check; only the scratch (carved from the new arena) differs. */
tr_status tr_router_share(const tr_router *src, void *arena, size_t arena_bytes,
                          tr_router **out)
{
    if (!src || !arena || !out || (uintptr_t)arena % TR_ARENA_ALIGN != 0)
        return TR_E_ARG;
    /* An arena inside the source's would overwrite its router or scratch. */
    uintptr_t a = (uintptr_t)arena, s = (uintptr_t)src->arena;
    if (a < s + src->arena_bytes && s < a + arena_bytes)
        return TR_E_ARG;
    if (!src->loaded)
        return TR_E_NO_PACK;
    const tr_pack_info *info = &src->pack.info;
    if (arena_bytes < tr_arena_size(info->dim, info->n_models, info->prefilter_candidates))
        return TR_E_ARENA_TOO_SMALL;
    tr_router *r = arena;
    memset(r, 0, sizeof *r);
    r->arena = arena;
    r->arena_bytes = arena_bytes;
    r->kern = src->kern;
    r->base = src->base;
    r->pack = src->pack; /* with the source's delta, if it serves one */
    r->has_delta = src->has_delta;
    r->delta = src->delta;
    r->delta_last = src->delta_last; /* its anti-rollback memory too */
    r->loaded = 1;
    *out = r;
    return TR_OK;
}
