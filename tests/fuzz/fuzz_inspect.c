/* libFuzzer target: the input is a file handed to `tinyroute inspect`, the
 * command for looking at an untrusted pack (it checks no signature), and
 * goes through trh_inspect (tools/cmd_verify.c), what the command runs once
 * the file is mapped: as text to /dev/null, and as JSON into memory, where
 * the report must parse and agree with the bytes (their length, the section
 * count in the header, a key id that is "none" or 64 hex digits). Seeds:
 * the pack seeds, the delta seeds and packs with header fields at their
 * extremes (tests/fuzz/seeds.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmds.h"
#include "tr_format.h"
#include "tr_internal.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    /* A refused file is reported on stderr; see fuzz_import.c. */
    if (!getenv("TR_FUZZ_VERBOSE"))
        stderr = devnull;
    return 0;
}

static void fail(const char *why)
{
    dprintf(2, "fuzz_inspect: %s\n", why);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: a read past the file's end hits ASan's redzone,
     * as a read past a mapping's end would fault. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        abort();
    memcpy(p, data, size);
    int text = trh_inspect("fuzz", p, size, 0, devnull);

    char *out = NULL;
    size_t out_len = 0;
    FILE *ms = open_memstream(&out, &out_len);
    if (!ms)
        abort();
    int json = trh_inspect("fuzz", p, size, 1, ms);
    fclose(ms);
    if (json != text)
        fail("text and JSON disagree on refusing");
    if (json == 0) {
        cJSON *o = cJSON_Parse(out);
        if (!o)
            fail("no JSON");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bytes"),
                    *s = cJSON_GetObjectItemCaseSensitive(o, "sections"),
                    *k = cJSON_GetObjectItemCaseSensitive(o, "key_id");
        if (!cJSON_IsNumber(b) || b->valuedouble != (double)size)
            fail("bytes is not the input's length");
        /* A section table that does not fit is a listed problem, not followed. */
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "problems"), *e;
        int table_refused = 0;
        cJSON_ArrayForEach(e, pr)
            table_refused |= strncmp(cJSON_GetStringValue(e), "section table", 13) == 0;
        if (!cJSON_IsArray(s) || (uint32_t)cJSON_GetArraySize(s) !=
                                     (table_refused ? 0 : tr_ld32(p + TR_H_N_SECTIONS)))
            fail("section count is not the header's");
        const char *id = cJSON_GetStringValue(k);
        if (!id || (strcmp(id, "none") && (strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)))
            fail("key id is neither none nor 64 hex digits");
        cJSON_Delete(o);
    } else if (out_len) {
        fail("a refused file printed a report");
    }
    free(out);
    free(p);
    return 0;
}
