/* Task-level selection entry points: accumulate kNN predictions over a
 * task's prompts in caller memory, then score with S1/S2/S3 and apply the
 * out-of-distribution gate (models/task.c holds the math). */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_internal.h"

#define TR_TASK_MAGIC 0x4B534154u /* "TASK" */

struct tr_task {
    uint32_t magic;
    const tr_router *router;
    uint8_t pack_hash[32]; /* the sums are only valid for this pack */
    uint8_t delta_hash[32];/* and this model set (zero: no delta) */
    tr_task_sums sums;
};

size_t tr_task_size(uint32_t n_models)
{
    return tr_arena_round(sizeof(struct tr_task)) + 3 * tr_arena_round(sizeof(float) * n_models);
}

tr_status tr_task_init(const tr_router *r, void *mem, size_t bytes, tr_task **out)
{
    if (!r || !mem || !out || (uintptr_t)mem % TR_ARENA_ALIGN)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    if (r->pack.tasks.n_tasks == 0)
        return TR_E_UNSUPPORTED;
    uint32_t m = r->pack.info.n_models;
    if (bytes < tr_task_size(m))
        return TR_E_ARENA_TOO_SMALL;
    tr_arena a = {mem, bytes, 0};
    tr_task *t = tr_arena_take(&a, sizeof *t);
    memset(t, 0, sizeof *t);
    t->magic = TR_TASK_MAGIC;
    t->router = r;
    memcpy(t->pack_hash, r->pack.info.pack_hash, 32);
    if (r->has_delta)
        memcpy(t->delta_hash, r->delta.delta_hash, 32);
    t->sums.n_models = m;
    t->sums.g = tr_arena_take(&a, sizeof(float) * m);
    t->sums.above = tr_arena_take(&a, sizeof(float) * m);
    t->sums.var = tr_arena_take(&a, sizeof(float) * m);
    memset(t->sums.g, 0, sizeof(float) * m);
    memset(t->sums.above, 0, sizeof(float) * m);
    memset(t->sums.var, 0, sizeof(float) * m);
    *out = t;
    return TR_OK;
}

static tr_status check_task(const tr_router *r, const tr_task *t)
{
    if (!r || !t || t->magic != TR_TASK_MAGIC || t->router != r)
        return TR_E_ARG;
    if (!r->loaded)
        return TR_E_NO_PACK;
    /* A pack swapped in since init has other models and references. */
    static const uint8_t none[32];
    return memcmp(t->pack_hash, r->pack.info.pack_hash, 32) == 0 &&
                   memcmp(t->delta_hash, r->has_delta ? r->delta.delta_hash : none, 32) == 0
               ? TR_OK
               : TR_E_ARG;
}

/* The query is in s.q. */
static void add_query(tr_router *r, tr_task *t, const tr_scratch *sp, uint32_t k,
                      const tr_route_opts *o)
{
    const tr_pack_view *p = &r->pack;
    tr_scratch s = *sp;
    uint32_t kd = p->tasks.k_dist, kk = k > kd ? k : kd;
    uint32_t c = p->info.prefilter_candidates;
    uint32_t found = c && !(o && o->exact)
                         ? tr_knn_search_prefilter(r->kern, &p->refs, &p->codes, s.q, kk, c,
                                                   s.qcode, s.ham, s.cand, s.nb)
                         : tr_knn_search(r->kern, &p->refs, s.q, kk, s.dots, s.nb);
    int64_t qq = 0;
    for (uint32_t d = 0; d < p->info.dim; d++)
        qq += (int32_t)s.q[d] * s.q[d];
    float inv_qnorm = 1.0f / sqrtf((float)qq);
    tr_predict_knn(p, s.nb, found < k ? found : k, o && o->distance_weighted, inv_qnorm,
                   tr_prior_strength(p, o), s.predicted);
    for (uint32_t m = 0; m < p->info.n_models; m++)
        if (isnan(s.predicted[m])) {
            tr_model_info mi;
            tr_model_info_of(p, m, &mi);
            s.predicted[m] = mi.prior;
        }
    uint32_t nd = found < kd ? found : kd;
    float u = 0.0f;
    for (uint32_t j = 0; j < nd; j++)
        u += 1.0f - s.nb[j].sim * inv_qnorm;
    tr_task_sums_add(&t->sums, s.predicted, nd ? u / (float)nd : 1.0f);
}

tr_status tr_task_add_text(tr_router *r, tr_task *t, const char *text, size_t len,
                           const tr_route_opts *o, int *used)
{
    tr_status st = check_task(r, t);
    if (st != TR_OK)
        return st;
    if (!text)
        return TR_E_ARG;
    uint32_t k;
    float lambda;
    if ((st = tr_resolve_opts(r, o, &k, &lambda)) != TR_OK)
        return st;
    tr_scratch s = tr_get_scratch(r);
    int prior_only;
    if ((st = tr_embed_query(r, &s, text, len, &prior_only)) != TR_OK)
        return st;
    if (used)
        *used = !prior_only;
    if (!prior_only)
        add_query(r, t, &s, k, o);
    return TR_OK;
}

tr_status tr_task_add_i8(tr_router *r, tr_task *t, const char *embedder, const int8_t *e,
                         uint32_t dim, const tr_route_opts *o)
{
    tr_status st = check_task(r, t);
    if (st == TR_OK)
        st = e ? tr_check_embedding(r, embedder, dim) : TR_E_ARG;
    uint32_t k;
    float lambda;
    if (st == TR_OK)
        st = tr_resolve_opts(r, o, &k, &lambda);
    if (st != TR_OK)
        return st;
    tr_scratch s = tr_get_scratch(r);
    if ((st = tr_check_i8(e, dim)) != TR_OK)
        return st;
    memcpy(s.q, e, dim);
    add_query(r, t, &s, k, o);
    return TR_OK;
}

tr_status tr_task_select(const tr_router *r, const tr_task *t, const tr_route_opts *o,
                         tr_task_result *res, float *s1, float *s2, float *s3, float *p_out)
{
    tr_status st = check_task(r, t);
    if (st != TR_OK)
        return st;
    if (!res)
        return TR_E_ARG;
    uint32_t k;
    float lambda;
    if ((st = tr_resolve_opts(r, o, &k, &lambda)) != TR_OK)
        return st;
    const tr_pack_view *pk = &r->pack;
    const tr_task_sums *s = &t->sums;
    if (s->n == 0)
        return TR_E_EMPTY_INPUT;
    const uint32_t n_models = pk->info.n_models;
    /* The router's scratch holds the three score vectors in turn. */
    tr_scratch sc = tr_get_scratch((tr_router *)r);
    float *v = sc.predicted;
    memset(res, 0, sizeof *res);
    res->n_prompts = s->n;
    res->mean_distance = (float)(s->u / s->n);
    for (uint32_t m = 0; m < n_models; m++)
        v[m] = s->g[m] / (float)s->n;
    if (s1)
        memcpy(s1, v, sizeof(float) * n_models);
    int b1 = tr_best_model(pk, o, lambda, v, NULL);
    for (uint32_t m = 0; m < n_models; m++)
        v[m] = s->above[m] / (float)s->n;
    if (s2)
        memcpy(s2, v, sizeof(float) * n_models);
    int b2 = tr_best_model(pk, o, lambda, v, NULL);
    float *p = sc.aux; /* S3 needs S2 and p at once */
    tr_task_p(&pk->tasks, res->mean_distance, p);
    /* The table knows only the base's models. The predictor's accuracy on
     * this task for a model added later: its mean over the known ones. */
    if (n_models > pk->n_base_models) {
        float mean = 0.0f;
        for (uint32_t m = 0; m < pk->n_base_models; m++)
            mean += p[m];
        mean /= (float)pk->n_base_models;
        for (uint32_t m = pk->n_base_models; m < n_models; m++)
            p[m] = mean;
    }
    if (p_out)
        memcpy(p_out, p, sizeof(float) * n_models);
    for (uint32_t m = 0; m < n_models; m++)
        v[m] = p[m] * v[m] + (1.0f - p[m]) * (1.0f - v[m]);
    if (s3)
        memcpy(s3, v, sizeof(float) * n_models);
    int b3 = tr_best_model(pk, o, lambda, v, NULL);
    int bma = tr_best_model(pk, o, 0.0f, NULL, NULL);
    if (b1 < 0 || b2 < 0 || b3 < 0 || bma < 0)
        return TR_E_NO_MODEL_AVAILABLE;
    res->by_s1 = (uint32_t)b1;
    res->by_s2 = (uint32_t)b2;
    res->by_s3 = (uint32_t)b3;
    res->bma = (uint32_t)bma;
    res->p_beats_bma = b3 == bma ? 1.0f : tr_task_p_beats(s, (uint32_t)b3, (uint32_t)bma);
    res->kept_bma = res->p_beats_bma < pk->tasks.gate;
    res->chosen = res->kept_bma ? (uint32_t)bma : (uint32_t)b3;
    return TR_OK;
}
