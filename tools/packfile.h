/* Open a pack file for the CLI: read it into private memory, verify it into
 * a pack view (and a delta view over it), and size one context, the way an
 * integrator would. */
#ifndef TRH_TOOLS_PACKFILE_H
#define TRH_TOOLS_PACKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute.h"

typedef struct trh_packfile {
    const uint8_t *bytes; /* private copy (trh_packfile_read), 64-byte aligned */
    size_t len;
    void *base_mem, *view_mem; /* tr_pack_size() each: the base's view, base + delta's */
    const tr_pack *view;       /* what is served: the delta's view, else the base's */
    void *ctx_mem;
    size_t ctx_bytes;
    tr_ctx *ctx;               /* one thread's context (the CLI routes on one) */
    tr_pack_info info;
    const uint8_t *delta;   /* NULL: no delta; a private copy too */
    size_t delta_len;
    tr_delta_info delta_info;
} trh_packfile;

/* The safe way to hand a pack file to the library on a host: read the whole
 * file into private, 64-byte aligned heap memory (free() it). Later writes
 * to, or truncation of, the file cannot reach the copy, so the bytes the
 * library verifies are the bytes it serves. Refuses what is not a regular
 * file, an empty file, and a file whose size changed while it was read.
 * 0 on success; a message on stderr otherwise. */
int trh_pack_read_file(const char *path, uint8_t **bytes, size_t *len);

/* trh_pack_read_file into pf->bytes / pf->len (the rest of pf zeroed). */
int trh_packfile_read(const char *path, trh_packfile *pf);

/* Context bytes for serving the pack (and delta; NULL: none) before either
 * is verified. Every header field that sizes the context is first checked
 * against the library's limits and against what the file can hold; a
 * header beyond them belongs to a pack that tr_pack_open refuses anyway,
 * so it gets the smallest context and the open names the real error,
 * instead of an unverified header asking for gigabytes. */
size_t trh_packfile_ctx_bytes(const uint8_t *pack, size_t len, const uint8_t *delta,
                             size_t delta_len);

/* Read, verify under trust (its now_unix is set to the current time) and
 * load; then the same for the delta, if delta_path is not NULL. On failure
 * prints "tinyroute: PATH: TR_E_X: message" and returns the tr_status
 * (non-zero), or -1 when a file could not be read at all (or memory for it
 * could not be had): a message printed. */
int trh_packfile_open(const char *path, const char *delta_path, const tr_trust *trust,
                     trh_packfile *pf);

void trh_packfile_close(trh_packfile *pf);

#endif
