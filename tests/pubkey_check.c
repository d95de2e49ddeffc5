/* pubkey_check: the `tinyroute pubkey --format c --name trusted_key` output,
 * compiled in (tests/test_cli.sh writes it to key.inc in its scratch dir),
 * verifies a pack. So the printed initializer is checked the way an
 * integrator uses it: as C source, not as text.
 *
 *   pubkey_check PACK.trp   prints the tr_pack_open status name
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
    void *view_mem = aligned_alloc(16, (tr_pack_size() + 15) / 16 * 16);
    const tr_pack *view;
    tr_trust trust = {.keys = &trusted_key, .n_keys = 1};
    tr_status st = view_mem ? tr_pack_open(view_mem, tr_pack_size(), pack, (size_t)size, &trust, &view)
                            : TR_E_ARENA_TOO_SMALL;
    printf("%s\n", tr_status_name(st));
    free(view_mem);
    free(pack);
    return st == TR_OK ? 0 : 1;
}
