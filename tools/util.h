/* Host-side helpers shared by the CLI's subcommands (host only: may allocate). */
#ifndef TRH_TOOLS_UTIL_H
#define TRH_TOOLS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Print "tinyroute CMD: <msg>\n" to stderr (CMD: the subcommand main set
 * with trh_set_command; "tinyroute: " before one is known). Returns 1 (a CLI
 * exit code). */
int trh_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void trh_set_command(const char *name);
/* From now on this thread's trh_err messages go into buf (the first one
 * only, cut to cap), not to stderr; cap 0 restores stderr. */
void trh_err_capture(char *buf, size_t cap);
/* Error "path:line: message" through trh_err(); returns 1. */
int trh_err_at(const char *path, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The one report of a bad option, for every subcommand's getopt_long '?'
 * (tinyroute.c sets opterr = 0 so getopt prints nothing of its own):
 * "tinyroute CMD: unknown option '--x'" (or "option '--x' needs a value",
 * "option '--x' takes no value") and "see 'tinyroute CMD --help'" on
 * stderr. argv is the subcommand's (argv[0] = CMD). Returns 2 (usage). */
int trh_bad_option(char **argv);

/* Whole file into a malloc'd buffer (NUL-terminated, *len excludes it).
 * NULL and a message on stderr on failure. */
uint8_t *trh_read_file(const char *path, size_t *len);

/* Write to path atomically: a temporary file beside it, fsync, rename.
 * A failure leaves no half-written file. Returns 0 on success. The file
 * gets mode 0644; trh_write_file_mode gives another (a private key's 0600 is
 * never widened, not even for the moment before a chmod). */
int trh_write_file_atomic(const char *path, const void *data, size_t len);
int trh_write_file_mode(const char *path, const void *data, size_t len, unsigned mode);

/* Growable byte buffer. */
typedef struct trh_buf {
    uint8_t *data;
    size_t len, cap;
} trh_buf;
void trh_buf_reserve(trh_buf *b, size_t extra);
void trh_buf_put(trh_buf *b, const void *p, size_t n);
void trh_buf_zeros(trh_buf *b, size_t n);
void trh_buf_align(trh_buf *b, size_t a); /* pad with zeros to a multiple */
void trh_buf_free(trh_buf *b);

/* Little-endian loads and stores: tr_ld32, tr_st32, ... */
#include "tr_format.h"

/* Die-free allocation: abort with a message when out of memory. */
void *trh_xmalloc(size_t n);
void *trh_xcalloc(size_t n, size_t size);
void *trh_xrealloc(void *p, size_t n);
char *trh_xstrdup(const char *s);
char *trh_path_join(const char *dir, const char *name); /* "dir/name", malloc'd */
char *trh_xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* malloc'd, any length */
char *trh_xvprintf(const char *fmt, va_list ap);

/* Strict number parsing: the whole string must be a number in range.
 * Return 0 on success. */
int trh_parse_u64(const char *s, uint64_t *out);
int trh_parse_f64(const char *s, double *out);

/* Progress of a long phase on stderr: "CMD: PHASE  done/total  pct
 * elapsed, ETA". Silent unless stderr is a terminal or TR_PROGRESS=1, so tests
 * and logs stay byte-identical; never touches stdout. total 0 = unknown (no
 * ETA). Updates print at most 4 times a second on a terminal ("\r", one
 * line rewritten) and every 2 s otherwise (one line each, for logs);
 * trh_progress_end prints the phase's elapsed time once. */
typedef struct trh_progress {
    const char *cmd, *phase;
    uint64_t total;
    double t0, last;
    int on, tty;
} trh_progress;
void trh_progress_start(trh_progress *p, const char *cmd, const char *phase, uint64_t total);
void trh_progress_update(trh_progress *p, uint64_t done);
void trh_progress_end(trh_progress *p);

/* ---- Outputs never overwrite inputs (issue #18: `import SRC SRC --force`
 * replaced the source's own files). Identity is st_dev + st_ino, so links,
 * "./x" and "../d/x" spellings of one file are caught. ---- */

/* 0 when the file out is none of the n existing files inputs[] (NULL
 * entries and inputs that do not exist are skipped) and can be written (a
 * temporary file beside it is created and removed: commands call this
 * before their long work, so a bad --out fails in a second, not at the end);
 * else 1 and a message, e.g. "OPT OUT is also the input INPUT; refusing to
 * overwrite an input". out NULL or "-" (standard output): 0. */
int trh_out_not_input(const char *opt, const char *out, const char *const *inputs, size_t n);

/* The same against the n files inputs[] and the files a reader takes from
 * each of the nd dataset directories dirs[] (tools/DATASET.md:
 * prompts.jsonl, correctness.csv, models.csv, cost_unit.txt, and also
 * extra, a file name inside each, when not NULL). NULL entries skipped. */
int trh_out_not_input_ds(const char *opt, const char *out, const char *const *inputs, size_t n,
                        const char *const *dirs, size_t nd, const char *extra);

/* 0 when the output directory out_dir (which need not exist yet) and the
 * input directory in_dir are apart: out_dir is not in_dir, not inside it and
 * does not contain it (walked by identity through "..", so symlinks and
 * spellings do not hide an overlap). Else 1 and a message. */
int trh_dir_apart(const char *out_dir, const char *in_dir);

/* ---- Bounded line reading: a line costs at most TRH_LINE_MAX bytes of
 * memory, however long it is in the file (issue #18: one 1 GB line took
 * 3.9 GB RSS in import). ---- */
#define TRH_LINE_MAX ((size_t)16 << 20) /* 16 MiB, documented in tools/DATASET.md */

/* Like getline (the line with its '\n', NUL-terminated, NULs inside kept):
 * its length; -1 at the end of the file or on a read error (ferror tells);
 * -2 when the line has more than max bytes: reading stops there, nothing
 * past max + 1 bytes is stored, and the caller reports "line too long". */
long long trh_getline_max(char **line, size_t *cap, FILE *f, size_t max);

/* The first \u0000 escape in the JSON text s[0..n), NULL if none: cJSON decodes
 * it into a NUL inside the string, which would silently cut the text at
 * that point (issue #18); the readers refuse such a line instead. */
const char *trh_json_nul_escape(const char *s, size_t n);

/* A lambda the user typed (>= 0) as tr_route_opts.lambda: there 0 means the
 * pack's lambda, so a typed 0 (or one that rounds to 0 in float) is asked
 * for by name. */
float trh_opts_lambda(double lambda);

/* The default embedder table `make install` puts beside the CLI:
 * BINDIR/../share/tinyroute/embedder.bin, found from /proc/self/exe so an
 * installed (or relocated) prefix works from any directory. Its path if
 * that file exists, else NULL. */
const char *trh_default_embedder(void);

#endif
