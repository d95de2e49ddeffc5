/* pubkey_check: the `tinyroute pubkey --format c --name trusted_key` output,
 * compiled in (tests/test_cli.sh writes it to key.inc in its scratch dir),
 * verifies a pack. So the printed initializer is checked the way an
 * integrator uses it: as C source, not as text.
 *
 *   pubkey_check PACK.trp   prints the tr_router_load status name
 *   exit 0: TR_OK; 1: any other status or an unreadable pack
 */
#include <stdio.h>
#include <stdlib.h>

#include "tinyroute.h"

#include "key.inc"

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0)
        return 1;
    long size = ftell(f);
    /* malloc's alignment covers the pack's 8-byte rule. */
    void *pack = size > 0 ? malloc((size_t)size) : NULL;
    if (!pack || fseek(f, 0, SEEK_SET) != 0 || fread(pack, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    tr_pack_info info;
    tr_status st = tr_pack_peek(pack, (size_t)size, &info);
    size_t need = tr_arena_size(info.dim, info.n_models, info.prefilter_candidates);
    void *arena = st == TR_OK ? aligned_alloc(16, (need + 15) / 16 * 16) : NULL;
    tr_router *r;
    if (st == TR_OK && (!arena || (st = tr_router_init(arena, need, &r)) == TR_OK)) {
        tr_trust trust = {.keys = &trusted_key, .n_keys = 1};
        st = tr_router_load(r, pack, (size_t)size, &trust);
    }
    printf("%s\n", tr_status_name(st));
    free(arena);
    free(pack);
    return st == TR_OK ? 0 : 1;
}
