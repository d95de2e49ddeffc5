/* Open a pack file for the CLI: map it read-only, size an arena, verify and
 * load it into a router, the way an integrator would. */
#ifndef TR_TOOLS_PACKFILE_H
#define TR_TOOLS_PACKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute.h"

typedef struct tr_packfile {
    const uint8_t *bytes;
    size_t len;
    void *arena;
    tr_router *router;
    tr_pack_info info;
    const uint8_t *delta;   /* NULL: no delta */
    size_t delta_len;
    tr_delta_info delta_info;
} tr_packfile;

/* Map path read-only. 0 on success; a message on stderr otherwise. */
int tr_packfile_map(const char *path, tr_packfile *pf);

/* Map, verify under trust (its now_unix is set to the current time) and
 * load; then the same for the delta, if delta_path is not NULL. On failure
 * prints "tinyroute: PATH: TR_E_X: message" and returns the tr_status
 * (non-zero). */
int tr_packfile_open(const char *path, const char *delta_path, const tr_trust *trust,
                     tr_packfile *pf);

void tr_packfile_close(tr_packfile *pf);

#endif
