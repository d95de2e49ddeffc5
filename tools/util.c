#include "util.h"

#include "tinyroute.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* trh_err_capture: this thread's messages go to a caller's buffer (the host
 * library's C ABI hands them to Python) instead of stderr. */
static _Thread_local char *cap_buf;
static _Thread_local size_t cap_len;

void trh_err_capture(char *buf, size_t cap)
{
    cap_buf = cap ? buf : NULL;
    cap_len = cap;
    if (cap_buf)
        cap_buf[0] = 0;
}

/* The subcommand running, for the one error style "tinyroute CMD: ...". */
static const char *command;

void trh_set_command(const char *name) { command = name; }

/* The one error printer: "tinyroute CMD: [PATH:LINE: ]message" on stderr,
 * or only the message into the capture buffer (its first message: the one
 * that says why). Returns 1. */
static int verr(const char *path, long line, const char *fmt, va_list ap)
{
    if (cap_buf) {
        if (!cap_buf[0]) {
            int n = path ? snprintf(cap_buf, cap_len, "%s:%ld: ", path, line) : 0;
            if (n >= 0 && (size_t)n < cap_len)
                vsnprintf(cap_buf + n, cap_len - (size_t)n, fmt, ap);
        }
        return 1;
    }
    fprintf(stderr, command ? "tinyroute %s: " : "tinyroute: ", command);
    if (path)
        fprintf(stderr, "%s:%ld: ", path, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return 1;
}

int trh_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(NULL, 0, fmt, ap);
    va_end(ap);
    return 1;
}

int trh_err_at(const char *path, long line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(path, line, fmt, ap);
    va_end(ap);
    return 1;
}

int trh_bad_option(char **argv)
{
    /* With opterr = 0, glibc's getopt_long leaves: optopt 0 for an unknown
     * (or ambiguous) long option, the option's value for a known long one
     * whose argument is wrong (missing, or given to a flag), the letter for
     * an unknown short one; argv[optind - 1] is the long option's word. */
    const char *cmd = argv[0];
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    if (arg && !strncmp(arg, "--", 2)) {
        const char *eq = strchr(arg, '=');
        int n = eq ? (int)(eq - arg) : (int)strlen(arg);
        if (optopt == 0)
            fprintf(stderr, "tinyroute %s: unknown option '%.*s'\n", cmd, n, arg);
        else if (eq)
            fprintf(stderr, "tinyroute %s: option '%.*s' takes no value\n", cmd, n, arg);
        else
            fprintf(stderr, "tinyroute %s: option '%s' needs a value\n", cmd, arg);
    } else if (optopt > ' ' && optopt < 127) {
        fprintf(stderr, "tinyroute %s: unknown option '-%c'\n", cmd, optopt);
    } else {
        fprintf(stderr, "tinyroute %s: unknown option '%s'\n", cmd, arg ? arg : "?");
    }
    fprintf(stderr, "see 'tinyroute %s --help'\n", cmd);
    return 2;
}

void *trh_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        trh_err("out of memory (%zu bytes)", n);
        exit(70);
    }
    return p;
}

void *trh_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        trh_err("out of memory (%zu x %zu bytes)", n, size);
        exit(70);
    }
    return p;
}

void *trh_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        trh_err("out of memory (%zu bytes)", n);
        exit(70);
    }
    return q;
}

char *trh_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = trh_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

char *trh_xvprintf(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *s = trh_xmalloc((size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(s, (size_t)(n < 0 ? 0 : n) + 1, fmt, again);
    va_end(again);
    return s;
}

char *trh_xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = trh_xvprintf(fmt, ap);
    va_end(ap);
    return s;
}

char *trh_path_join(const char *dir, const char *name)
{
    return trh_xprintf("%s/%s", dir, name);
}

uint8_t *trh_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        trh_err("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = trh_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = trh_xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        trh_err("cannot read %s", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int trh_write_file_atomic(const char *path, const void *data, size_t len)
{
    return trh_write_file_mode(path, data, len, 0644);
}

int trh_write_file_mode(const char *path, const void *data, size_t len, unsigned mode)
{
    size_t pl = strlen(path);
    char *tmp = trh_xmalloc(pl + 16);
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        trh_err("cannot create a temporary file beside %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            trh_err("cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || fchmod(fd, (mode_t)mode) != 0 || close(fd) != 0) {
        trh_err("cannot finish %s: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        trh_err("cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

void trh_buf_reserve(trh_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    b->data = trh_xrealloc(b->data, cap);
    b->cap = cap;
}

void trh_buf_put(trh_buf *b, const void *p, size_t n)
{
    trh_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void trh_buf_zeros(trh_buf *b, size_t n)
{
    trh_buf_reserve(b, n);
    memset(b->data + b->len, 0, n);
    b->len += n;
}

void trh_buf_align(trh_buf *b, size_t a)
{
    size_t pad = (a - b->len % a) % a;
    trh_buf_zeros(b, pad);
}

void trh_buf_free(trh_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int trh_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int trh_parse_f64(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static double tr_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

void trh_progress_start(trh_progress *p, const char *cmd, const char *phase, uint64_t total)
{
    const char *env = getenv("TR_PROGRESS");
    p->cmd = cmd;
    p->phase = phase;
    p->total = total;
    p->tty = isatty(STDERR_FILENO);
    p->on = p->tty || (env && !strcmp(env, "1"));
    p->t0 = p->last = tr_now();
}

void trh_progress_update(trh_progress *p, uint64_t done)
{
    if (!p->on)
        return;
    double now = tr_now();
    /* A terminal line is rewritten in place, so 4 Hz reads smoothly; a log
     * keeps every line, so fewer of them. */
    if (now - p->last < (p->tty ? 0.25 : 2.0))
        return;
    p->last = now;
    double el = now - p->t0;
    if (p->total && done > 0 && done <= p->total)
        fprintf(stderr, "%s: %-18s %llu/%llu %5.1f%%  %.1f s, ETA %.0f s%s", p->cmd, p->phase,
                (unsigned long long)done, (unsigned long long)p->total, 100.0 * done / p->total,
                el, el * (double)(p->total - done) / done, p->tty ? "\033[K\r" : "\n");
    else
        fprintf(stderr, "%s: %-18s %llu  %.1f s%s", p->cmd, p->phase, (unsigned long long)done, el,
                p->tty ? "\033[K\r" : "\n");
}

void trh_progress_end(trh_progress *p)
{
    if (!p->on)
        return;
    fprintf(stderr, "%s: %-18s done in %.2f s%s", p->cmd, p->phase, tr_now() - p->t0,
            p->tty ? "\033[K\n" : "\n");
}

/* trh_write_file_atomic's first step, done and undone: a temporary file
 * beside out. 0 when it can be created. */
static int out_writable(const char *opt, const char *out)
{
    char *tmp = trh_xprintf("%s.tmp.XXXXXX", out);
    int fd = mkstemp(tmp);
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    } else
        trh_err("%s %s: cannot create a file there: %s", opt, out, strerror(errno));
    free(tmp);
    return fd < 0;
}

int trh_out_not_input(const char *opt, const char *out, const char *const *inputs, size_t n)
{
    struct stat so, si;
    if (!out || !strcmp(out, "-"))
        return 0;
    if (stat(out, &so) != 0)
        return out_writable(opt, out); /* a file that does not exist yet is no input */
    for (size_t i = 0; i < n; i++)
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return trh_err("%s %s is also the input %s; refusing to overwrite an input", opt, out,
                          inputs[i]);
    return out_writable(opt, out);
}

int trh_out_not_input_ds(const char *opt, const char *out, const char *const *inputs, size_t n,
                        const char *const *dirs, size_t nd, const char *extra)
{
    static const char *const ds_files[] = {"prompts.jsonl", "correctness.csv", "models.csv",
                                           "cost_unit.txt"};
    const size_t per = sizeof ds_files / sizeof *ds_files + 1;
    char **all = trh_xcalloc(n + nd * per + 1, sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        all[k++] = inputs[i] ? trh_xstrdup(inputs[i]) : NULL;
    for (size_t d = 0; d < nd; d++) {
        if (!dirs[d])
            continue;
        size_t len = strlen(dirs[d]) + 2 + (extra ? strlen(extra) : 0) + 16;
        for (size_t f = 0; f < per; f++) {
            const char *name = f < per - 1 ? ds_files[f] : extra;
            if (!name)
                continue;
            all[k] = trh_xmalloc(len);
            snprintf(all[k++], len, "%s/%s", dirs[d], name);
        }
    }
    int clash = trh_out_not_input(opt, out, (const char *const *)all, k);
    for (size_t i = 0; i < k; i++)
        free(all[i]);
    free(all);
    return clash;
}

/* Whether the directory with identity (dev, ino) is path itself or one of
 * its ancestors: path, path/.., path/../.., up to the root (whose ".." is
 * itself). Walking ".." by identity follows what the kernel resolves, so
 * symlinked spellings cannot hide an ancestor. */
static int is_ancestor_or_self(dev_t dev, ino_t ino, const char *path)
{
    size_t pl = strlen(path);
    trh_buf p = {0};
    trh_buf_put(&p, path, pl);
    struct stat s, prev = {0};
    int found = 0;
    for (int depth = 0; depth < 4096; depth++) {
        trh_buf_put(&p, "", 1);
        p.len--;
        if (stat((char *)p.data, &s) != 0)
            break;
        if (s.st_dev == dev && s.st_ino == ino) {
            found = 1;
            break;
        }
        if (depth && s.st_dev == prev.st_dev && s.st_ino == prev.st_ino)
            break; /* the root */
        prev = s;
        trh_buf_put(&p, "/..", 3);
    }
    trh_buf_free(&p);
    return found;
}

int trh_dir_apart(const char *out_dir, const char *in_dir)
{
    struct stat si, so;
    if (stat(in_dir, &si) != 0)
        return 0; /* the reader reports a missing input */
    /* The deepest part of out_dir that exists; the rest will be created
     * under it, so out_dir overlaps in_dir exactly when that part does (or,
     * when all of out_dir exists, when it also contains in_dir). */
    char *e = trh_xstrdup(out_dir);
    int whole = 1;
    while (stat(e, &so) != 0) {
        char *slash = strrchr(e, '/');
        while (slash && slash > e && slash[1] == 0) { /* trailing slashes */
            *slash = 0;
            slash = strrchr(e, '/');
        }
        const char *last = slash ? slash + 1 : e;
        if (!strcmp(last, "..")) {
            /* "new/../src" resolves through a directory about to be made:
             * the walk by identity cannot see where it lands. */
            free(e);
            return trh_err("output directory %s: a \"..\" after a part that does not exist yet; "
                          "give a path without it", out_dir);
        }
        whole = 0;
        if (!slash) {
            strcpy(e, ".");
        } else if (slash == e) {
            e[1] = 0; /* "/" */
        } else {
            *slash = 0;
        }
    }
    int bad = is_ancestor_or_self(si.st_dev, si.st_ino, e) ||
              (whole && is_ancestor_or_self(so.st_dev, so.st_ino, in_dir));
    free(e);
    if (bad)
        return trh_err("output directory %s overlaps the input directory %s (it is, is inside or "
                      "contains it); refusing: writing there could overwrite the input",
                      out_dir, in_dir);
    return 0;
}

long long trh_getline_max(char **line, size_t *cap, FILE *f, size_t max)
{
    size_t n = 0;
    int ch;
    if (!*line || *cap < 2) {
        *cap = 256;
        *line = trh_xrealloc(*line, *cap);
    }
    while ((ch = getc_unlocked(f)) != EOF) {
        if (n >= max)
            return -2; /* max bytes held and more to come: no more is stored */
        if (n + 2 > *cap) {
            size_t c = *cap * 2;
            if (c > max + 1)
                c = max + 1;
            *line = trh_xrealloc(*line, c);
            *cap = c;
        }
        (*line)[n++] = (char)ch;
        if (ch == '\n')
            break;
    }
    (*line)[n] = 0;
    return n ? (long long)n : -1;
}

const char *trh_json_nul_escape(const char *s, size_t n)
{
    /* A backslash is an escape's start only outside another escape; JSON
     * has backslashes in strings only, so a left-to-right scan that skips
     * each escaped character sees every \u0000 and nothing else. */
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
            return s + i;
        i++; /* the escaped character */
    }
    return NULL;
}

float trh_opts_lambda(double lambda)
{
    float f = (float)lambda;
    return f > 0.0f ? f : TR_LAMBDA_ZERO;
}

const char *trh_default_embedder(void)
{
    /* Kept in a static pointer: looked up once, reachable until exit. */
    static char *found;
    if (found)
        return found;
    char *exe = realpath("/proc/self/exe", NULL);
    if (!exe)
        return NULL;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    static const char rel[] = "/../share/tinyroute/embedder.bin";
    char *path = trh_xmalloc(strlen(exe) + sizeof rel);
    strcpy(path, exe);
    strcat(path, rel);
    free(exe);
    if (access(path, R_OK) != 0) {
        free(path);
        return NULL;
    }
    return found = path;
}
