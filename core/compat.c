/* The old one-object API (tr_router_*, tr_route_text/_f32/_i8, tr_task_*
 * with a router, tr_log_record) as thin wrappers over the pack view and
 * the context, so callers can be ported one at a time. A router arena is
 * the router (two view slots and the last delta accepted) followed by a
 * context carved for the pack it serves. To be deleted once no caller is
 * left (issue 13). */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <string.h>

#include "arena.h"
#include "tr_internal.h"

size_t tr_arena_size(uint32_t dim, uint32_t n_models, uint32_t n_cand)
{
    return tr_arena_round(sizeof(struct tr_router)) + tr_ctx_bytes(dim, n_models, n_cand);
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
    *out = r;
    return TR_OK;
}

static const tr_pack *served(const tr_router *r)
{
    return &r->views[r->cur];
}

static int fits(const tr_router *r, const tr_pack_view *v)
{
    return tr_arena_size(v->info.dim, v->info.n_models, v->info.prefilter_candidates) <=
           r->arena_bytes;
}

/* Make the other slot current and carve the context for what it serves
 * (fits() said it does). */
static void flip(tr_router *r)
{
    r->cur = 1 - r->cur;
    r->loaded = 1;
    const tr_pack_info *i = &r->views[r->cur].served.info;
    size_t off = tr_arena_round(sizeof(struct tr_router));
    (void)tr_ctx_init(r->arena + off, r->arena_bytes - off, i->dim, i->n_models,
                      i->prefilter_candidates, &r->ctx);
}

tr_status tr_router_load(tr_router *r, const void *pack, size_t len, const tr_trust *trust)
{
    if (!r || !pack)
        return TR_E_ARG;
    tr_pack_view v;
    tr_status st = tr_pack_verify(pack, len, trust, &v);
    if (st != TR_OK)
        return st;
    if (!fits(r, &v))
        return TR_E_ARENA_TOO_SMALL;
    uint64_t floor;
    if ((st = tr_counter_floor(trust, TR_COUNTER_PACK, &floor)) != TR_OK ||
        (st = tr_counter_commit(trust, TR_COUNTER_PACK, floor, v.info.security_counter)) != TR_OK)
        return st;
    struct tr_pack *p = &r->views[1 - r->cur];
    memset(p, 0, sizeof *p);
    p->magic = TR_VIEW_MAGIC;
    p->kern = tr_kernels_active();
    p->base_bytes = pack;
    p->base_len = len;
    p->base = v;
    p->served = v; /* a delta names its base: it cannot outlive it */
    flip(r);
    return TR_OK;
}

tr_status tr_router_share(const tr_router *src, void *arena, size_t arena_bytes, tr_router **out)
{
    if (!src || !arena || !out || (uintptr_t)arena % TR_ARENA_ALIGN != 0)
        return TR_E_ARG;
    /* An arena inside the source's would overwrite its router or scratch. */
    if (tr_overlaps(arena, arena_bytes, src->arena, src->arena_bytes))
        return TR_E_ARG;
    if (!src->loaded)
        return TR_E_NO_PACK;
    if (arena_bytes < tr_arena_round(sizeof(struct tr_router)) + tr_ctx_size_for(served(src)))
        return TR_E_ARENA_TOO_SMALL;
    tr_router *r = arena;
    memset(r, 0, sizeof *r);
    r->arena = arena;
    r->arena_bytes = arena_bytes;
    r->views[1] = *served(src); /* with the source's delta, if it serves one */
    r->delta_last = src->delta_last; /* its anti-rollback memory too */
    flip(r);
    *out = r;
    return TR_OK;
}

tr_status tr_router_pack_info(const tr_router *r, tr_pack_info *info)
{
    if (!r || !info)
        return TR_E_ARG;
    return r->loaded ? tr_pack_get_info(served(r), info) : TR_E_NO_PACK;
}

tr_status tr_router_model(const tr_router *r, uint32_t m, tr_model_info *mi)
{
    if (!r || !mi)
        return TR_E_ARG;
    return r->loaded ? tr_pack_get_model(served(r), m, mi) : TR_E_NO_PACK;
}

tr_status tr_router_delta_info(const tr_router *r, tr_delta_info *info)
{
    if (!r || !info)
        return TR_E_ARG;
    return r->loaded ? tr_pack_get_delta(served(r), info) : TR_E_NO_PACK;
}

tr_status tr_router_apply_delta(tr_router *r, const void *delta, size_t len, const tr_trust *trust)
{
    if (!r || !delta || !tr_trust_ok(trust) || (uintptr_t)delta % 8 != 0)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    const tr_pack *from = served(r);
    tr_pack_view v;
    tr_delta_info d;
    tr_counter_slot next, stored;
    tr_status st = tr_delta_verify(from, delta, len, trust, &r->delta_last, &v, &d, &next, &stored);
    if (st != TR_OK)
        return st;
    if (!fits(r, &v))
        return TR_E_ARENA_TOO_SMALL;
    if ((st = tr_delta_commit(trust, &next, &stored)) != TR_OK)
        return st;
    struct tr_pack *p = &r->views[1 - r->cur];
    *p = *from;
    p->delta_bytes = delta;
    p->delta_len = len;
    p->served = v;
    p->has_delta = 1;
    p->delta = d;
    r->delta_last = next;
    flip(r);
    return TR_OK;
}

tr_status tr_router_clear_delta(tr_router *r)
{
    if (!r)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    struct tr_pack *p = &r->views[1 - r->cur];
    *p = *served(r);
    p->served = p->base;
    p->has_delta = 0;
    p->delta_bytes = NULL;
    p->delta_len = 0;
    flip(r);
    return TR_OK;
}

/* The old callers' options: arrays were assumed to hold n_models. */
static const tr_route_opts *old_opts(const tr_router *r, const tr_route_opts *o, tr_route_opts *tmp)
{
    if (!o)
        return NULL;
    *tmp = *o;
    uint32_t n = tr_router_view(r)->info.n_models;
    if (tmp->penalty && !tmp->penalty_count)
        tmp->penalty_count = n;
    if (tmp->available && !tmp->available_bits)
        tmp->available_bits = n;
    return tmp;
}

static tr_status ready(const tr_router *r, const void *in, const void *res)
{
    if (!r || !in || !res)
        return TR_E_ARG;
    return r->loaded ? TR_OK : TR_E_NO_PACK;
}

static tr_status route_old(tr_router *r, const tr_query *q, const tr_route_opts *o,
                           tr_result *res, float *predicted)
{
    tr_route_opts tmp;
    tr_route_out out = {predicted, tr_router_view(r)->info.n_models, NULL, 0};
    return tr_route(served(r), r->ctx, q, old_opts(r, o, &tmp), res, &out);
}

tr_status tr_route_text(tr_router *r, const char *text, size_t len, const tr_route_opts *o,
                        tr_result *res, float *predicted)
{
    tr_status st = ready(r, text, res);
    if (st != TR_OK)
        return st;
    const tr_query q = tr_query_text(text, len);
    return route_old(r, &q, o, res, predicted);
}

tr_status tr_route_f32(tr_router *r, const char *embedder, const float *e, uint32_t dim,
                       const tr_route_opts *o, tr_result *res, float *predicted)
{
    tr_status st = ready(r, e, res);
    if (st != TR_OK)
        return st;
    const tr_query q = tr_query_f32(embedder, e, dim);
    return route_old(r, &q, o, res, predicted);
}

tr_status tr_route_i8(tr_router *r, const char *embedder, const int8_t *e, uint32_t dim,
                      const tr_route_opts *o, tr_result *res, float *predicted)
{
    tr_status st = ready(r, e, res);
    if (st != TR_OK)
        return st;
    const tr_query q = tr_query_i8(embedder, e, dim);
    return route_old(r, &q, o, res, predicted);
}

tr_status tr_embed_text(tr_router *r, const char *text, size_t len, int8_t *out, uint32_t dim)
{
    tr_status st = ready(r, text, out);
    if (st != TR_OK)
        return st;
    if (dim != tr_router_view(r)->info.dim)
        return TR_E_DIM_MISMATCH;
    return tr_embed(served(r), r->ctx, text, len, out, dim);
}

tr_status tr_route_text_governed(tr_router *r, const tr_governor *g, uint64_t now,
                                 const char *text, size_t len, const tr_route_opts *opts,
                                 tr_result *res, float *predicted)
{
    if (!r || !g || !res)
        return TR_E_ARG;
    if (r->loaded && tr_router_view(r)->info.n_models > TR_GOVERNOR_MAX_MODELS)
        return TR_E_UNSUPPORTED;
    tr_status st = ready(r, text, res);
    if (st != TR_OK)
        return st;
    tr_route_opts tmp;
    const tr_query q = tr_query_text(text, len);
    tr_route_out out = {predicted, tr_router_view(r)->info.n_models, NULL, 0};
    return tr_route_governed(served(r), r->ctx, g, now, &q, old_opts(r, opts, &tmp), res, &out);
}

tr_status tr_task_init(const tr_router *r, void *mem, size_t bytes, tr_task **out)
{
    if (!r || !mem || !out || (uintptr_t)mem % TR_ARENA_ALIGN)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    tr_status st = tr_task_begin(served(r), mem, bytes, out);
    if (st == TR_OK)
        (*out)->owner = r; /* the old API bound a task to its router */
    return st;
}

static tr_status old_task(const tr_router *r, const tr_task *t)
{
    if (!r || !t || t->owner != r)
        return TR_E_ARG;
    return r->loaded ? TR_OK : TR_E_NO_PACK;
}

tr_status tr_task_add_text(tr_router *r, tr_task *t, const char *text, size_t len,
                           const tr_route_opts *o, int *used)
{
    tr_status st = old_task(r, t);
    if (st != TR_OK)
        return st;
    tr_route_opts tmp;
    const tr_query q = tr_query_text(text, len);
    return tr_task_add(served(r), r->ctx, t, &q, old_opts(r, o, &tmp), used);
}

tr_status tr_task_add_i8(tr_router *r, tr_task *t, const char *embedder, const int8_t *e,
                         uint32_t dim, const tr_route_opts *o)
{
    tr_status st = old_task(r, t);
    if (st != TR_OK)
        return st;
    tr_route_opts tmp;
    const tr_query q = tr_query_i8(embedder, e, dim);
    return tr_task_add(served(r), r->ctx, t, &q, old_opts(r, o, &tmp), NULL);
}

tr_status tr_task_select(const tr_router *r, const tr_task *t, const tr_route_opts *o,
                         tr_task_result *res, float *s1, float *s2, float *s3, float *p)
{
    tr_status st = old_task(r, t);
    if (st != TR_OK)
        return st;
    tr_route_opts tmp;
    tr_task_scores sc = {s1, s2, s3, p, tr_router_view(r)->info.n_models};
    return tr_task_choose(served(r), r->ctx, t, old_opts(r, o, &tmp), res, &sc);
}

tr_status tr_log_record(tr_log *log, tr_router *r, const tr_result *res, const int8_t *embedding,
                        const char *text, size_t len, uint64_t *id_out)
{
    if (!log || !r || !res || (!text && len))
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    return tr_log_append(log, served(r), r->ctx, res, embedding, text, len, id_out);
}
