/* Task-level selection entry points: accumulate kNN predictions over a
 * task's prompts in caller memory, then score with S1/S2/S3 and apply the
 * out-of-distribution gate (models/task_scores.c holds the math). */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "tr_internal.h"

#define TR_TASK_MAGIC 0x4B534154u /* "TASK" */

size_t tr_task_size(uint32_t n_models)
{
    return tr_arena_round(sizeof(struct tr_task)) + 3 * tr_arena_round(sizeof(float) * n_models);
}

tr_status tr_task_begin(const tr_pack *p, void *mem, size_t bytes, tr_task **out)
{
    if (!tr_pack_ok(p) || !mem || !out || (uintptr_t)mem % TR_ARENA_ALIGN)
        return TR_E_ARG;
    if (p->served.tasks.n_tasks == 0)
        return TR_E_UNSUPPORTED;
    uint32_t m = p->served.info.n_models;
    if (bytes < tr_task_size(m))
        return TR_E_ARENA_TOO_SMALL;
    tr_arena a = {mem, bytes, 0};
    tr_task *t = tr_arena_take(&a, sizeof *t);
    if (!t) /* cannot happen after the size check; says so to the compiler */
        return TR_E_ARENA_TOO_SMALL;
    memset(t, 0, sizeof *t);
    t->magic = TR_TASK_MAGIC;
    memcpy(t->pack_hash, p->served.info.pack_hash, 32);
    if (p->has_delta)
        memcpy(t->delta_hash, p->delta.delta_hash, 32);
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

static tr_status check_task(const tr_pack *p, const tr_task *t)
{
    if (!tr_pack_ok(p) || !t || t->magic != TR_TASK_MAGIC)
        return TR_E_ARG;
    /* Another pack or delta has other models and references. */
    static const uint8_t none[32];
    return memcmp(t->pack_hash, p->served.info.pack_hash, 32) == 0 &&
                   memcmp(t->delta_hash, p->has_delta ? p->delta.delta_hash : none, 32) == 0
               ? TR_OK
               : TR_E_ARG;
}

tr_status tr_task_add(const tr_pack *p, tr_ctx *c, tr_task *t, const tr_query *q,
                      const tr_route_opts *o, int *used)
{
    tr_status st = tr_ctx_check(p, c);
    if (st == TR_OK)
        st = check_task(p, t);
    if (st != TR_OK)
        return st;
    uint32_t k;
    float lambda;
    if ((st = tr_check_query(p, q)) != TR_OK ||
        (st = tr_resolve_opts(&p->served, o, &k, &lambda)) != TR_OK)
        return st;
    int prior_only;
    if ((st = tr_load_query(p, &c->s, q, &prior_only)) != TR_OK)
        return st;
    if (used)
        *used = !prior_only;
    /* A prompt of no known word says nothing about the task. */
    if (prior_only)
        return TR_OK;
    /* The route's kNN path, searching as far as the distance term needs
     * (k_dist) and predicting from the first k. */
    const tr_scratch *s = &c->s;
    uint32_t kd = p->served.tasks.k_dist;
    float inv_qnorm;
    uint32_t found = tr_knn_query(p, s, k > kd ? k : kd, k, o, &inv_qnorm);
    uint32_t nd = found < kd ? found : kd;
    float u = 0.0f;
    for (uint32_t j = 0; j < nd; j++)
        u += 1.0f - s->nb[j].sim * inv_qnorm;
    tr_task_sums_add(&t->sums, s->predicted, nd ? u / (float)nd : 1.0f);
    return TR_OK;
}

tr_status tr_task_choose(const tr_pack *p, tr_ctx *c, const tr_task *t, const tr_route_opts *o,
                         tr_task_result *res, const tr_task_scores *scores)
{
    tr_status st = tr_ctx_check(p, c);
    if (st == TR_OK)
        st = check_task(p, t);
    if (st != TR_OK)
        return st;
    if (!res)
        return TR_E_ARG;
    uint32_t k;
    float lambda;
    if ((st = tr_resolve_opts(&p->served, o, &k, &lambda)) != TR_OK)
        return st;
    const tr_pack_view *pk = &p->served;
    const tr_task_sums *s = &t->sums;
    const uint32_t n_models = pk->info.n_models;
    if (scores && (scores->s1 || scores->s2 || scores->s3 || scores->p) &&
        scores->cap < n_models)
        return TR_E_OUTPUT_TOO_SMALL;
    if (s->n == 0)
        return TR_E_EMPTY_INPUT;
    /* The context's scratch holds the score vectors; they reach the
     * caller's arrays only once a choice is made. */
    float *v = c->s.predicted, *p3 = c->s.aux; /* S3 needs S2 and p at once */
    tr_task_result r;
    memset(&r, 0, sizeof r);
    r.n_prompts = s->n;
    r.mean_distance = (float)(s->u / s->n);
    for (uint32_t m = 0; m < n_models; m++)
        v[m] = s->g[m] / (float)s->n;
    int b1 = tr_best_model(pk, o, lambda, v, NULL);
    for (uint32_t m = 0; m < n_models; m++)
        v[m] = s->above[m] / (float)s->n;
    int b2 = tr_best_model(pk, o, lambda, v, NULL);
    tr_task_p(&pk->tasks, r.mean_distance, p3);
    /* The table knows only the base's models. The predictor's accuracy on
     * this task for a model added later: its mean over the known ones. */
    if (n_models > pk->n_base_models) {
        float mean = 0.0f;
        for (uint32_t m = 0; m < pk->n_base_models; m++)
            mean += p3[m];
        mean /= (float)pk->n_base_models;
        for (uint32_t m = pk->n_base_models; m < n_models; m++)
            p3[m] = mean;
    }
    for (uint32_t m = 0; m < n_models; m++)
        v[m] = p3[m] * v[m] + (1.0f - p3[m]) * (1.0f - v[m]);
    int b3 = tr_best_model(pk, o, lambda, v, NULL);
    int bma = tr_best_model(pk, o, 0.0f, NULL, NULL);
    if (b1 < 0 || b2 < 0 || b3 < 0 || bma < 0)
        return TR_E_NO_MODEL_AVAILABLE;
    r.by_s1 = (uint32_t)b1;
    r.by_s2 = (uint32_t)b2;
    r.by_s3 = (uint32_t)b3;
    r.bma = (uint32_t)bma;
    r.p_beats_bma = b3 == bma ? 1.0f : tr_task_p_beats(s, (uint32_t)b3, (uint32_t)bma);
    r.kept_bma = r.p_beats_bma < pk->tasks.gate;
    r.chosen = r.kept_bma ? (uint32_t)bma : (uint32_t)b3;
    if (scores) {
        /* S1 and S2 are cheap to recompute from the sums; S3 is in v. */
        for (uint32_t m = 0; scores->s1 && m < n_models; m++)
            scores->s1[m] = s->g[m] / (float)s->n;
        for (uint32_t m = 0; scores->s2 && m < n_models; m++)
            scores->s2[m] = s->above[m] / (float)s->n;
        if (scores->s3)
            memcpy(scores->s3, v, sizeof(float) * n_models);
        if (scores->p)
            memcpy(scores->p, p3, sizeof(float) * n_models);
    }
    *res = r;
    return TR_OK;
}
