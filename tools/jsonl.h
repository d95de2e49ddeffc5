/* JSON Lines input: the one reader every tool uses for prompts.jsonl,
 * questions.jsonl, items.jsonl and --prompts files (tools/DATASET.md).
 *
 * A leading UTF-8 BOM and blank lines are skipped; a line longer than
 * TRH_LINE_MAX is refused without reading the rest of it (a 1 GB line must
 * not cost 1 GB); a NUL byte or a \u0000 escape is refused (the text would
 * be cut there); every other line must be one JSON object. Errors are
 * printed as "path:line: why". */
#ifndef TRH_TOOLS_JSONL_H
#define TRH_TOOLS_JSONL_H

#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct trh_jsonl {
    FILE *f;
    const char *path; /* as given to open; not copied */
    char *line;
    size_t cap;
    long ln;   /* 1-based line of the current object */
    cJSON *obj; /* the current line's object, owned by the reader */
} trh_jsonl;

/* 0 ok; 1 after a message. "-" reads standard input (named "stdin" in messages). */
int trh_jsonl_open(trh_jsonl *j, const char *path);
/* 1: the next object is in j->obj (valid until the next call); 0: end of
 * file; -1: an error, printed. */
int trh_jsonl_next(trh_jsonl *j);
void trh_jsonl_close(trh_jsonl *j);

#endif
