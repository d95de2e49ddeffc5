/* route_prompt: a small integrator program, built against an installed
 * tinyroute through pkg-config (see mk/install.mk, make test-install). It
 * uses only the public header, so it is also the shortest complete example
 * of the C API.
 *
 *   route_prompt PACK.trp KEY.point PROMPT...
 *
 * KEY.point is the signer's public key as the raw 65-byte SEC1 point; from a
 * PEM key: tinyroute pubkey KEY.pub --format raw > KEY.point, or
 * openssl ec -pubin -in KEY.pub -outform DER | tail -c 65
 * (the point ends the DER SubjectPublicKeyInfo). Parsing PEM would pull a
 * second crypto API into an example of this one.
 *
 * Prints "MODEL<TAB>device|cloud" per prompt. Exit 0: all routed; 1: a
 * failure (the status is printed); 2: bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tinyroute.h>

/* The whole file in a buffer malloc aligns for any type, which covers the
 * pack's 8-byte alignment rule. */
static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size)) != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = size > 0 ? (size_t)size : 0;
    return buf;
}

static int fail(const char *what, tr_status st)
{
    fprintf(stderr, "route_prompt: %s: %s (%s)\n", what, tr_strerror(st), tr_status_name(st));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PACK.trp KEY.point PROMPT...\n", argv[0]);
        return 2;
    }
    size_t pack_len, key_len;
    void *pack = read_file(argv[1], &pack_len);
    uint8_t *point = read_file(argv[2], &key_len);
    if (!pack || !point || key_len != sizeof(tr_pubkey) || point[0] != 0x04) {
        fprintf(stderr, "route_prompt: cannot read the pack %s or a 65-byte key point %s\n",
                argv[1], argv[2]);
        return 1;
    }
    tr_pubkey key;
    memcpy(key.point, point, sizeof key.point);
    free(point);

    /* Two pieces of caller memory: the verified view of the pack (any
     * number of threads may route through it) and one context per routing
     * thread. Both 16-byte aligned; aligned_alloc wants a multiple of 16. */
    void *view_mem = aligned_alloc(16, (tr_pack_size() + 15) / 16 * 16);
    const tr_pack *view;
    if (!view_mem)
        return fail("view", TR_E_ARENA_TOO_SMALL);
    tr_trust trust = {.keys = &key, .n_keys = 1, .now_unix = (uint64_t)time(NULL)};
    tr_status st = tr_pack_open(view_mem, tr_pack_size(), pack, pack_len, &trust, &view);
    if (st != TR_OK)
        return fail(argv[1], st);
    /* The verified view sizes the context. */
    size_t need = tr_ctx_size_for(view);
    void *ctx_mem = aligned_alloc(16, (need + 15) / 16 * 16);
    tr_pack_info info;
    tr_ctx *ctx;
    if (!ctx_mem)
        return fail("context", TR_E_ARENA_TOO_SMALL);
    if ((st = tr_pack_get_info(view, &info)) != TR_OK ||
        (st = tr_ctx_init(ctx_mem, need, info.dim, info.n_models, info.prefilter_candidates,
                          &ctx)) != TR_OK)
        return fail("context", st);

    for (int i = 3; i < argc; i++) {
        tr_result res;
        const tr_query q = tr_query_text(argv[i], strlen(argv[i]));
        st = tr_route(view, ctx, &q, NULL, &res, NULL);
        if (st != TR_OK)
            return fail(argv[i], st);
        printf("%s\t%s\n", res.model_name, res.where == TR_DEVICE ? "device" : "cloud");
    }
    free(ctx_mem);
    free(view_mem);
    free(pack);
    return 0;
}
