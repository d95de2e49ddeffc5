/* tinyroute's dataset layout: a directory holding prompts.jsonl,
 * correctness.csv and models.csv (tools/DATASET.md describes it). */
#ifndef TRH_TOOLS_DATASET_H
#define TRH_TOOLS_DATASET_H

#include <stddef.h>
#include <stdio.h>

#include "jsonl.h"
#include "util.h"

#define TRH_SPLIT_ANY (-1)
#define TRH_SPLIT_TRAIN 0
#define TRH_SPLIT_TEST 1

/* Model names are stored in the pack as char[64] with a NUL. */
#define TRH_DS_NAME_MAX 64

typedef struct trh_ds_prompt { char *id; char *text; char *task; int split; } trh_ds_prompt; /* split: TR_SPLIT_* */
typedef struct trh_ds_model { char *name; double cost; int where; } trh_ds_model;     /* where: 0 device, 1 cloud */
typedef struct trh_dataset {
    size_t n_prompts, n_models;
    trh_ds_prompt *prompts;   /* in prompts.jsonl order */
    trh_ds_model *models;     /* in models.csv order */
    float *scores;           /* n_prompts x n_models, row-major by prompt; NAN = unknown */
    /* prompts.jsonl as it was read (device, inode, size, mtime): a reader
     * that streams it again refuses a file that changed since. */
    unsigned long long prompts_stamp[4];
} trh_dataset;

int  trh_dataset_load(const char *dir, trh_dataset *ds);   /* 0 ok */
/* TRH_DS_NO_TEXT: every prompt is checked as by trh_dataset_load, but its
 * text is not kept (text NULL): tinyroute build streams it again with
 * trh_prompt_reader instead of holding ~100-200 bytes a prompt. */
#define TRH_DS_NO_TEXT 1u
int  trh_dataset_load_flags(const char *dir, trh_dataset *ds, unsigned flags);

/* The prompts' text, streamed from DIR/prompts.jsonl in trh_dataset_load's
 * order (the same lines skipped, the same parse). next: the text of the
 * next prompt, valid until the next call; NULL (a message printed) at the
 * end of the file or when a line no longer parses as a prompt. */
typedef struct trh_prompt_reader {
    char *path;
    trh_jsonl j;
} trh_prompt_reader;
/* 0 ok; 1 (a message printed) when the file cannot be opened or is not the
 * one ds was loaded from (replaced, resized or modified since). */
int trh_prompt_reader_open(trh_prompt_reader *r, const char *dir, const trh_dataset *ds);
const char *trh_prompt_reader_next(trh_prompt_reader *r);
void trh_prompt_reader_close(trh_prompt_reader *r);
void trh_dataset_free(trh_dataset *ds);
/* Write a dataset in the same layout (used by the importers). Refuses to
 * overwrite existing files unless force. Creates dir (and parents). */
int  trh_dataset_write(const char *dir, const trh_dataset *ds, int force);

/* ---- Helpers shared with the importers ---- */

/* Streaming RFC 4180 CSV reader (quoted fields, "" escapes, CRLF, a leading
 * UTF-8 BOM; blank lines are skipped). */
typedef struct trh_csv {
    FILE *f;
    const char *path;
    long line;      /* line the current record starts on (1-based) */
    long next_line;
    char **fields;  /* valid until the next call */
    size_t n;
    size_t cap;
    size_t *offs;
    trh_buf buf;
} trh_csv;
int trh_csv_open(trh_csv *c, const char *path);  /* 0 ok; message on failure */
int trh_csv_next(trh_csv *c);  /* 1 record, 0 end of file, -1 error (printed) */
void trh_csv_close(trh_csv *c);
int trh_csv_header(trh_csv *c); /* reads the header row; duplicate names are an error. 0 ok */
long trh_csv_col(const trh_csv *c, const char *name); /* its column in the header, or -1 */

/* String -> index hash map. Keys are not copied: they must outlive it. */
typedef struct trh_strmap {
    size_t cap, n;
    const char **keys;
    size_t *vals;
} trh_strmap;
/* 0: added; 1: key already present (its value in *prev if prev != NULL). */
int trh_strmap_add(trh_strmap *m, const char *key, size_t val, size_t *prev);
int trh_strmap_get(const trh_strmap *m, const char *key, size_t *val); /* 1 found */
void trh_strmap_free(trh_strmap *m);

/* Non-zero when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF). */
int trh_utf8_valid(const char *s, size_t n);

/* Prompts, one JSON object with a non-empty "text" string per line (blank
 * lines skipped): n malloc'd strings. NULL and a message naming the line on
 * failure, or when there is none. */
char **trh_read_prompts(const char *path, size_t *n);

#endif
