/* Bump allocator over the caller's arena. Sizes are rounded to TR_ARENA_ALIGN
 * so that measuring (base == NULL) and carving give the same byte counts:
 * tr_ctx_size() is exact. */
#ifndef TR_ARENA_H
#define TR_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define TR_ARENA_ALIGN 16u

typedef struct tr_arena {
    uint8_t *base; /* NULL: measure only */
    size_t size;
    size_t used;
} tr_arena;

static inline size_t tr_arena_round(size_t n)
{
    return (n + TR_ARENA_ALIGN - 1) & ~(size_t)(TR_ARENA_ALIGN - 1);
}

/* NULL when it does not fit (or when measuring). */
static inline void *tr_arena_take(tr_arena *a, size_t n)
{
    size_t need = tr_arena_round(n);
    if (need > a->size - a->used && a->base)
        return NULL;
    void *p = a->base ? a->base + a->used : NULL;
    a->used += need;
    return p;
}

#endif
