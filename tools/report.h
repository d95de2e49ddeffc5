/* The evaluation report: the results document of `tinyroute eval --json`
 * (tools/EVAL_JSON.md) as one self-contained HTML page. Host only. */
#ifndef TRH_TOOLS_REPORT_H
#define TRH_TOOLS_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

/* The fields the report cannot do without: a "datasets" array of objects,
 * each with a string "name" and a "methods" array. Everything else is
 * optional and shown as missing when absent. Returns 0, or 1 with a one-line
 * reason in err (cap bytes, may be 0). */
int trh_report_check(const cJSON *results, char *err, size_t cap);

/* Writes the page to out: provenance, and per data set the deferral-curve
 * plot, the metrics table and, when present, the task and fidelity tables.
 * No network at view time: CSS, SVG and a little JS are inline, and every
 * string from the document is HTML-escaped. Returns 0; 1 (with a message on
 * stderr) when results fails trh_report_check or out reports a write error. */
int trh_report_html(const cJSON *results, FILE *out);

#endif
