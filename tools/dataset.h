/* tinyroute's dataset layout: a directory holding prompts.jsonl,
 * correctness.csv and models.csv (tools/DATASET.md describes it). */
#ifndef TR_TOOLS_DATASET_H
#define TR_TOOLS_DATASET_H

#include <stddef.h>
#include <stdio.h>

#include "jsonl.h"
#include "util.h"

#define TR_SPLIT_ANY (-1)
#define TR_SPLIT_TRAIN 0
#define TR_SPLIT_TEST 1

/* Model names are stored in the pack as char[64] with a NUL. */
#define TR_DS_NAME_MAX 64

typedef struct tr_ds_prompt { char *id; char *text; char *task; int split; } tr_ds_prompt; /* split: TR_SPLIT_* */
typedef struct tr_ds_model { char *name; double cost; int where; } tr_ds_model;     /* where: 0 device, 1 cloud */
typedef struct tr_dataset {
    size_t n_prompts, n_models;
    tr_ds_prompt *prompts;   /* in prompts.jsonl order */
    tr_ds_model *models;     /* in models.csv order */
    float *scores;           /* n_prompts x n_models, row-major by prompt; NAN = unknown */
    /* prompts.jsonl as it was read (device, inode, size, mtime): a reader
     * that streams it again refuses a file that changed since. */
    unsigned long long prompts_stamp[4];
} tr_dataset;

int  tr_dataset_load(const char *dir, tr_dataset *ds);   /* 0 ok */
/* TR_DS_NO_TEXT: every prompt is checked as by tr_dataset_load, but its
 * text is not kept (text NULL): tinyroute build streams it again with
 * tr_prompt_reader instead of holding ~100-200 bytes a prompt. */
#define TR_DS_NO_TEXT 1u
int  tr_dataset_load_flags(const char *dir, tr_dataset *ds, unsigned flags);

/* The prompts' text, streamed from DIR/prompts.jsonl in tr_dataset_load's
 * order (the same lines skipped, the same parse). next: the text of the
 * next prompt, valid until the next call; NULL (a message printed) at the
 * end of the file or when a line no longer parses as a prompt. */
typedef struct tr_prompt_reader {
    char *path;
    tr_jsonl j;
} tr_prompt_reader;
/* 0 ok; 1 (a message printed) when the file cannot be opened or is not the
 * one ds was loaded from (replaced, resized or modified since). */
int tr_prompt_reader_open(tr_prompt_reader *r, const char *dir, const tr_dataset *ds);
const char *tr_prompt_reader_next(tr_prompt_reader *r);
void tr_prompt_reader_close(tr_prompt_reader *r);
void tr_dataset_free(tr_dataset *ds);
/* Write a dataset in the same layout (used by the importers). Refuses to
 * overwrite existing files unless force. Creates dir (and parents). */
int  tr_dataset_write(const char *dir, const tr_dataset *ds, int force);

/* ---- Helpers shared with the importers ---- */

/* Streaming RFC 4180 CSV reader (quoted fields, "" escapes, CRLF, a leading
 * UTF-8 BOM; blank lines are skipped). */
typedef struct tr_csv {
    FILE *f;
    const char *path;
    long line;      /* line the current record starts on (1-based) */
    long next_line;
    char **fields;  /* valid until the next call */
    size_t n;
    size_t cap;
    size_t *offs;
    tr_buf buf;
} tr_csv;
int tr_csv_open(tr_csv *c, const char *path);  /* 0 ok; message on failure */
int tr_csv_next(tr_csv *c);  /* 1 record, 0 end of file, -1 error (printed) */
void tr_csv_close(tr_csv *c);
int tr_csv_header(tr_csv *c); /* reads the header row; duplicate names are an error. 0 ok */
long tr_csv_col(const tr_csv *c, const char *name); /* its column in the header, or -1 */

/* String -> index hash map. Keys are not copied: they must outlive it. */
typedef struct tr_strmap {
    size_t cap, n;
    const char **keys;
    size_t *vals;
} tr_strmap;
/* 0: added; 1: key already present (its value in *prev if prev != NULL). */
int tr_strmap_add(tr_strmap *m, const char *key, size_t val, size_t *prev);
int tr_strmap_get(const tr_strmap *m, const char *key, size_t *val); /* 1 found */
void tr_strmap_free(tr_strmap *m);

/* Non-zero when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF). */
int tr_utf8_valid(const char *s, size_t n);

/* Prompts, one JSON object with a non-empty "text" string per line (blank
 * lines skipped): n malloc'd strings. NULL and a message naming the line on
 * failure, or when there is none. */
char **tr_read_prompts(const char *path, size_t *n);

#endif
