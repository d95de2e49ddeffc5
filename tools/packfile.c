#include "packfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_format.h"
#include "util.h"

int tr_packfile_map(const char *path, tr_packfile *pf)
{
    memset(pf, 0, sizeof *pf);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return tr_err("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tr_err("%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return tr_err("%s: empty file", path);
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return tr_err("cannot map %s: %s", path, strerror(errno));
    pf->bytes = p;
    pf->len = (size_t)sb.st_size;
    return 0;
}

int tr_packfile_open(const char *path, const char *delta_path, const tr_trust *trust_in,
                     tr_packfile *pf)
{
    if (tr_packfile_map(path, pf) != 0)
        return TR_E_ARG;
    if (delta_path) {
        tr_packfile d;
        if (tr_packfile_map(delta_path, &d) != 0) {
            tr_packfile_close(pf);
            return TR_E_ARG;
        }
        pf->delta = d.bytes;
        pf->delta_len = d.len;
    }
    /* Size from the unverified headers; load verifies before use. */
    tr_status st = tr_pack_peek(pf->bytes, pf->len, &pf->info);
    tr_delta_info di = {0};
    if (pf->delta && tr_delta_peek(pf->delta, pf->delta_len, &di) != TR_OK)
        di.n_added = 0; /* apply_delta names the problem */
    size_t need = st == TR_OK && pf->info.dim <= 65536 && pf->info.n_models <= 65536 &&
                          di.n_added <= TR_DELTA_MAX_ADDED
                      ? tr_arena_size(pf->info.dim, pf->info.n_models + di.n_added,
                                      pf->info.prefilter_candidates)
                      : tr_arena_size(1, 1, 0);
    if (posix_memalign(&pf->arena, 64, need) != 0) {
        tr_packfile_close(pf);
        return tr_err("out of memory"), TR_E_ARG;
    }
    tr_trust trust = *trust_in;
    trust.now_unix = (uint64_t)time(NULL);
    st = tr_router_init(pf->arena, need, &pf->router);
    if (st == TR_OK)
        st = tr_router_load(pf->router, pf->bytes, pf->len, &trust);
    const char *failed = path;
    if (st == TR_OK && pf->delta) {
        failed = delta_path;
        st = tr_router_apply_delta(pf->router, pf->delta, pf->delta_len, &trust);
        if (st == TR_OK)
            st = tr_router_delta_info(pf->router, &pf->delta_info);
    }
    if (st == TR_OK)
        st = tr_router_pack_info(pf->router, &pf->info);
    if (st != TR_OK) {
        tr_err("%s: %s: %s", failed, tr_status_name(st), tr_strerror(st));
        tr_packfile_close(pf);
        return st;
    }
    return 0;
}

void tr_packfile_close(tr_packfile *pf)
{
    if (pf->bytes)
        munmap((void *)pf->bytes, pf->len);
    if (pf->delta)
        munmap((void *)pf->delta, pf->delta_len);
    free(pf->arena);
    memset(pf, 0, sizeof *pf);
}
