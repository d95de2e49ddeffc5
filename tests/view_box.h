/* What an integrator keeps, for the white-box tests that swap packs: the
 * served view (r, NULL before the first open), two view buffers (a new view
 * goes into the one not served, then the pointer flips: the swap), one
 * context for base + delta, and the in-process rollback memory (a counter
 * store in RAM). Include after <cmocka.h> and "tinyroute.h". */
#ifndef TR_TEST_VIEW_BOX_H
#define TR_TEST_VIEW_BOX_H

#include <stdlib.h>

typedef struct view_box {
    void *mem[2];
    int cur;
    const tr_pack *r;
    void *ctx_mem;
    tr_ctx *c;
    tr_counter_slot slots[2];
    tr_counter_store ram;
} view_box;

static inline view_box new_box(uint32_t dim, uint32_t n_models, uint32_t cand)
{
    view_box b = {0};
    size_t bytes = tr_ctx_size(dim, n_models, cand);
    for (int i = 0; i < 2; i++)
        assert_int_equal(posix_memalign(&b.mem[i], 64, tr_pack_size()), 0);
    assert_int_equal(posix_memalign(&b.ctx_mem, 64, bytes), 0);
    assert_int_equal(tr_ctx_init(b.ctx_mem, bytes, dim, n_models, cand, &b.c), TR_OK);
    return b;
}

static inline void free_box(view_box *b)
{
    free(b->mem[0]);
    free(b->mem[1]);
    free(b->ctx_mem);
}

/* The swap: only a view that opened is served. */
static inline tr_status serve(view_box *b, tr_status st, const tr_pack *v)
{
    if (st == TR_OK) {
        b->cur ^= 1;
        b->r = v;
    }
    return st;
}

static inline tr_status open_into(view_box *b, const uint8_t *p, size_t len, const tr_trust *t)
{
    const tr_pack *v = NULL;
    tr_status st = tr_pack_open(b->mem[b->cur ^ 1], tr_pack_size(), p, len, t, &v);
    return serve(b, st, v); /* v read after the call: argument order is unspecified */
}

#endif
