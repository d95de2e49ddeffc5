#include "packfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_format.h"
#include "util.h"

/* Why a private copy and not a mapping: the library verifies the pack once,
 * at load, and then reads it in place for as long as it serves it. A
 * MAP_PRIVATE mapping of a writable file is not private on Linux until a
 * page is written through the mapping: another process's write(2) to the
 * file shows through it (unsigned model names served, corrupted embedder
 * tables read out of bounds), and truncating the file turns reads into
 * SIGBUS. A sealed memfd (F_SEAL_WRITE|F_SEAL_SHRINK) would also be safe,
 * but it is Linux-only and still needs the file copied into it; a heap copy
 * costs the same copy, works on every host, and frees like any buffer. The
 * size is the file's own (fstat), never a header field. */
int trh_pack_read_file(const char *path, uint8_t **bytes, size_t *len)
{
    *bytes = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return trh_err("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return trh_err("cannot stat %s: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return trh_err("%s: %s", path, S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    }
    if (sb.st_size == 0) {
        close(fd);
        return trh_err("%s: empty file", path);
    }
    if ((uintmax_t)sb.st_size > SIZE_MAX - 64) {
        close(fd);
        return trh_err("%s: too large to read into memory", path);
    }
    size_t n = (size_t)sb.st_size;
    /* 64: sections are 64-aligned inside the pack, so rows stay cache-line
     * aligned (the library needs 8). */
    void *buf;
    if (posix_memalign(&buf, 64, n) != 0) {
        close(fd);
        return trh_err("%s: cannot allocate %zu bytes to read it", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (uint8_t *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return trh_err("cannot read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break; /* shorter than fstat said: cut while being read */
        got += (size_t)r;
    }
    /* A writer that truncates or appends during the read leaves a file that
     * is neither the old nor the new pack; refuse it rather than verify a
     * mix (one that only rewrote bytes in place fails the signature). */
    uint8_t extra;
    ssize_t more;
    do
        more = read(fd, &extra, 1);
    while (more < 0 && errno == EINTR);
    struct stat after;
    int changed = got != n || more != 0 || fstat(fd, &after) != 0 || after.st_size != sb.st_size;
    close(fd);
    if (changed) {
        free(buf);
        return trh_err("%s: the file changed size while it was read; try again", path);
    }
    *bytes = buf;
    *len = n;
    return 0;
}

int trh_packfile_read(const char *path, trh_packfile *pf)
{
    memset(pf, 0, sizeof *pf);
    uint8_t *b;
    size_t n;
    if (trh_pack_read_file(path, &b, &n) != 0)
        return 1;
    pf->bytes = b;
    pf->len = n;
    return 0;
}

size_t trh_packfile_ctx_bytes(const uint8_t *pack, size_t len, const uint8_t *delta,
                             size_t delta_len)
{
    const size_t least = tr_ctx_size(1, 1, 0);
    tr_pack_info h;
    if (!pack || tr_pack_peek(pack, len, &h) != TR_OK)
        return least;
    /* A verified pack holds D int8 values per reference row and M model
     * records of TR_MODEL_REC_BYTES, all inside the file. */
    if (h.dim == 0 || h.dim > TR_DIM_MAX || h.dim > len || h.n_models == 0 ||
        h.n_models > TR_MODELS_MAX || h.n_models > len / TR_MODEL_REC_BYTES ||
        h.prefilter_candidates > TR_PREFILTER_MAX)
        return least;
    uint32_t added = 0;
    tr_delta_info d;
    /* A delta header beyond its limits only loses the delta its models:
     * tr_pack_apply_delta then names what is wrong with it, and the base
     * still opens with an exact context. */
    if (delta && tr_delta_peek(delta, delta_len, &d) == TR_OK && d.n_added <= TR_DELTA_MAX_ADDED &&
        d.n_added <= delta_len / TR_MODEL_REC_BYTES && d.n_added <= TR_MODELS_MAX - h.n_models)
        added = d.n_added;
    return tr_ctx_size(h.dim, h.n_models + added, h.prefilter_candidates);
}

int trh_packfile_open(const char *path, const char *delta_path, const tr_trust *trust_in,
                     trh_packfile *pf)
{
    if (trh_packfile_read(path, pf) != 0)
        return -1;
    if (delta_path) {
        uint8_t *d;
        if (trh_pack_read_file(delta_path, &d, &pf->delta_len) != 0) {
            trh_packfile_close(pf);
            return -1;
        }
        pf->delta = d;
    }
    size_t need = trh_packfile_ctx_bytes(pf->bytes, pf->len, pf->delta, pf->delta_len);
    if (posix_memalign(&pf->ctx_mem, 64, need) != 0 ||
        posix_memalign(&pf->base_mem, 64, tr_pack_size()) != 0 ||
        posix_memalign(&pf->view_mem, 64, tr_pack_size()) != 0) {
        trh_packfile_close(pf);
        return trh_err("cannot allocate a %zu-byte context", need), -1;
    }
    pf->ctx_bytes = need;
    tr_trust trust = *trust_in;
    trust.now_unix = (uint64_t)time(NULL);
    const tr_pack *base = NULL;
    tr_status st = tr_pack_open(pf->base_mem, tr_pack_size(), pf->bytes, pf->len, &trust, &base);
    pf->view = base;
    const char *failed = path;
    if (st == TR_OK && pf->delta) {
        failed = delta_path;
        st = tr_pack_apply_delta(base, pf->delta, pf->delta_len, &trust, pf->view_mem,
                                 tr_pack_size(), &pf->view);
        if (st == TR_OK)
            st = tr_pack_get_delta(pf->view, &pf->delta_info);
    }
    if (st == TR_OK)
        st = tr_pack_get_info(pf->view, &pf->info);
    if (st == TR_OK)
        st = tr_ctx_init(pf->ctx_mem, need, pf->info.dim, pf->info.n_models,
                         pf->info.prefilter_candidates, &pf->ctx);
    if (st != TR_OK) {
        trh_err("%s: %s: %s", failed, tr_status_name(st), tr_strerror(st));
        trh_packfile_close(pf);
        return st;
    }
    return 0;
}

void trh_packfile_close(trh_packfile *pf)
{
    free((void *)pf->bytes);
    free((void *)pf->delta);
    free(pf->base_mem);
    free(pf->view_mem);
    free(pf->ctx_mem);
    memset(pf, 0, sizeof *pf);
}
