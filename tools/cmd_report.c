/* tinyroute report: the results document of `eval --json` as an HTML page. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "report.h"
#include "util.h"

static const char report_usage[] =
    "usage: tinyroute report --json RESULTS.json [--json ...] --out REPORT.html [--force]\n"
    "Writes the evaluation results (tools/EVAL_JSON.md) as one self-contained\n"
    "HTML page: provenance, deferral-curve plots and metrics per data set.\n"
    "  --force   replace REPORT.html if it exists\n";

/* 1-based line and column of byte off in text, for the parse error. */
static void where(const char *text, size_t off, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n')
            ++*line, *col = 1;
        else if (((unsigned char)text[i] & 0xC0) != 0x80)
            ++*col;
    }
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", required_argument, 0, 'j'}, {"out", required_argument, 0, 'o'},
        {"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *jsons[argc > 0 ? argc : 1], *out = NULL; /* each --json takes an argument */
    int n_json = 0, force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            jsons[n_json++] = optarg;
            break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'h': fputs(report_usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (!n_json || !out || optind != argc) {
        trh_err("report needs --json and --out, and no other arguments");
        fputs(report_usage, stderr);
        return 2;
    }
    if (trh_out_not_input("--out", out, jsons, (size_t)n_json)) /* not even with --force */
        return 2;
    if (!force && access(out, F_OK) == 0)
        return trh_err("%s exists; not overwriting it (use --force)", out), 2;
    /* Several documents (e.g. the fixed-pool and the new-models runs) make
     * one page: the first gives the provenance, the others their data sets,
     * named apart by their model split when a name repeats. */
    cJSON *doc = NULL;
    for (int i = 0; i < n_json; i++) {
        const char *json = jsons[i];
        size_t len;
        char *text = (char *)trh_read_file(json, &len);
        if (!text)
            return cJSON_Delete(doc), 1;
        const char *end = NULL;
        cJSON *d = cJSON_ParseWithLengthOpts(text, len, &end, 0);
        if (!d) {
            int line, col;
            where(text, end && end >= text ? (size_t)(end - text) : 0, &line, &col);
            free(text);
            cJSON_Delete(doc);
            return trh_err("%s:%d:%d: not valid JSON", json, line, col);
        }
        free(text);
        char why[160];
        if (trh_report_check(d, why, sizeof why)) {
            cJSON_Delete(d);
            cJSON_Delete(doc);
            return trh_err("%s: not an evaluation results document: %s (see tools/EVAL_JSON.md)",
                          json, why);
        }
        if (!doc) {
            doc = d;
            continue;
        }
        cJSON *all = cJSON_GetObjectItemCaseSensitive(doc, "datasets"),
              *more = cJSON_DetachItemFromObjectCaseSensitive(d, "datasets"), *ds;
        while ((ds = cJSON_DetachItemFromArray(more, 0)) != NULL) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(ds, "name"), *o,
                        *split = cJSON_GetObjectItemCaseSensitive(ds, "model_split");
            int taken = 0;
            cJSON_ArrayForEach(o, all)
            taken |= cJSON_IsString(name) &&
                     !strcmp(cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring,
                             name->valuestring);
            if (taken && cJSON_IsString(split)) {
                char nn[512];
                snprintf(nn, sizeof nn, "%s (%s)", name->valuestring, split->valuestring);
                cJSON_ReplaceItemInObjectCaseSensitive(ds, "name", cJSON_CreateString(nn));
            }
            cJSON_AddItemToArray(all, ds);
        }
        cJSON_Delete(more);
        cJSON_Delete(d);
    }
    /* Rendered in memory first: a failure leaves no half-written page. */
    char *html = NULL;
    size_t html_len = 0;
    FILE *mem = open_memstream(&html, &html_len);
    if (!mem) {
        cJSON_Delete(doc);
        return trh_err("out of memory");
    }
    int r = trh_report_html(doc, mem);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "datasets"));
    cJSON_Delete(doc);
    if (fclose(mem) || r) {
        free(html);
        return 1;
    }
    r = trh_write_file_atomic(out, html, html_len);
    free(html);
    if (r)
        return 1;
    printf("%s: %d data set%s, %zu bytes\n", out, n, n == 1 ? "" : "s", html_len);
    return 0;
}
