/* JSON Lines input: the one reader every tool uses for prompts.jsonl,
 * questions.jsonl, items.jsonl and --prompts files (tools/DATASET.md).
 *
 * A leading UTF-8 BOM and blank lines are skipped; a line longer than
 * TR_LINE_MAX is refused without reading the rest of it (a 1 GB line must
 * not cost 1 GB); a NUL byte or a \u0000 escape is refused (the text would
 * be cut there); every other line must be one JSON object. Errors are
 * printed as "path:line: why". */
#ifndef TR_TOOLS_JSONL_H
#define TR_TOOLS_JSONL_H

#include <cjson/cJSON.h>
#include <stdio.h>

typedef struct tr_jsonl {
    FILE *f;
    const char *path; /* as given to open; not copied */
    char *line;
    size_t cap;
    long ln;   /* 1-based line of the current object */
    cJSON *obj; /* the current line's object, owned by the reader */
} tr_jsonl;

/* 0 ok; 1 after a message. "-" reads standard input (named "stdin" in messages). */
int tr_jsonl_open(tr_jsonl *j, const char *path);
/* 1: the next object is in j->obj (valid until the next call); 0: end of
 * file; -1: an error, printed. */
int tr_jsonl_next(tr_jsonl *j);
void tr_jsonl_close(tr_jsonl *j);

#endif
