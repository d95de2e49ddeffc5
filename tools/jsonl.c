#include "jsonl.h"

#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int trh_jsonl_open(trh_jsonl *j, const char *path)
{
    memset(j, 0, sizeof *j);
    j->path = path;
    if (!strcmp(path, "-")) { /* standard input, named so in messages */
        j->f = stdin;
        j->path = "stdin";
        return 0;
    }
    if (!(j->f = fopen(path, "rb")))
        return trh_err("%s: cannot open: %s", path, strerror(errno));
    return 0;
}

int trh_jsonl_next(trh_jsonl *j)
{
    cJSON_Delete(j->obj);
    j->obj = NULL;
    long long got;
    while ((got = trh_getline_max(&j->line, &j->cap, j->f, TRH_LINE_MAX)) != -1) {
        j->ln++;
        if (got == -2)
            return -trh_err_at(j->path, j->ln, "line longer than %zu bytes (TRH_LINE_MAX, "
                              "tools/DATASET.md); not reading the rest of it", TRH_LINE_MAX);
        char *s = j->line;
        size_t len = (size_t)got;
        if (j->ln == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
            s += 3, len -= 3;
        if (strspn(s, " \t\r\n") == len)
            continue;
        if (memchr(s, 0, len))
            return -trh_err_at(j->path, j->ln, "NUL byte");
        if (trh_json_nul_escape(s, len))
            return -trh_err_at(j->path, j->ln, "a \\u0000 (NUL) escape: the text would be cut "
                              "there; remove it");
        j->obj = cJSON_ParseWithLengthOpts(s, len + 1, NULL, 1);
        if (cJSON_IsObject(j->obj))
            return 1;
        int parsed = j->obj != NULL;
        cJSON_Delete(j->obj);
        j->obj = NULL;
        return -trh_err_at(j->path, j->ln, parsed ? "expected a JSON object" : "malformed JSON");
    }
    return ferror(j->f) ? -trh_err("%s: read error", j->path) : 0;
}

void trh_jsonl_close(trh_jsonl *j)
{
    cJSON_Delete(j->obj);
    if (j->f && j->f != stdin)
        fclose(j->f);
    free(j->line);
    memset(j, 0, sizeof *j);
}
