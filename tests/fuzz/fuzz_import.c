/* libFuzzer target: the dataset loader (tools/dataset.c, tools/DATASET.md).
 * The input holds the three files, models.csv, prompts.jsonl and
 * correctness.csv in that order, separated by a line holding one ASCII
 * record separator ("\n\x1e\n"); they are written to a directory under
 * /dev/shm (memory, so the loader's stdio path is fuzzed at full speed) and
 * loaded. A dataset that loads is written back and loaded again: it must
 * come back the same. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"

static const char sep[] = "\n\x1e\n";
static char dir[64], dir2[64];
static const char *const names[3] = {"models.csv", "prompts.jsonl", "correctness.csv"};

static void cleanup(void)
{
    char p[128];
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", dir2, names[k]);
        unlink(p);
    }
    rmdir(dir2);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/tr-fuzz-import-%ld", base, (long)getpid());
    snprintf(dir2, sizeof dir2, "%s/again", dir);
    if (mkdir(dir, 0700) != 0)
        abort();
    atexit(cleanup);
    /* The loader reports each rejected file on stderr; at thousands of
     * inputs a second that is all the log would hold. Only the stdio stream
     * is silenced: libFuzzer took its own copy of it at start-up and the
     * sanitizers write to fd 2 directly, so crash reports still show. */
    if (!getenv("TR_FUZZ_VERBOSE")) {
        FILE *null = fopen("/dev/null", "w");
        if (null)
            stderr = null;
    }
    return 0;
}

static void put(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const trh_dataset *a, const trh_dataset *b)
{
    if (a->n_prompts != b->n_prompts || a->n_models != b->n_models)
        abort();
    for (size_t i = 0; i < a->n_models; i++)
        if (strcmp(a->models[i].name, b->models[i].name) != 0 ||
            a->models[i].cost != b->models[i].cost || a->models[i].where != b->models[i].where)
            abort();
    for (size_t i = 0; i < a->n_prompts; i++) {
        const trh_ds_prompt *p = &a->prompts[i], *q = &b->prompts[i];
        /* A missing task is written as "": the same meaning. */
        if (strcmp(p->id, q->id) != 0 || strcmp(p->text, q->text) != 0 ||
            !same_str(p->task && *p->task ? p->task : NULL, q->task && *q->task ? q->task : NULL) ||
            p->split != q->split)
            abort();
    }
    for (size_t i = 0; i < a->n_prompts * a->n_models; i++) {
        float x = a->scores[i], y = b->scores[i];
        if (isnan(x) != isnan(y) || (!isnan(x) && x != y))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3], *end = data + size;
    size_t len[3];
    const uint8_t *p = data;
    for (int k = 0; k < 3; k++) {
        const uint8_t *s = k < 2 ? memmem(p, (size_t)(end - p), sep, sizeof sep - 1) : NULL;
        part[k] = p;
        len[k] = (size_t)((s ? s : end) - p);
        p = s ? s + sizeof sep - 1 : end;
    }
    for (int k = 0; k < 3; k++)
        put(names[k], part[k], len[k]);
    trh_dataset ds, again;
    if (trh_dataset_load(dir, &ds) != 0) {
        /* A refused dataset is freed by the loader: nothing may be left. */
        if (ds.n_prompts || ds.n_models || ds.prompts || ds.models || ds.scores)
            abort();
        return 0;
    }
    if (trh_dataset_write(dir2, &ds, 1) != 0 || trh_dataset_load(dir2, &again) != 0) {
        dprintf(2, "fuzz: a loaded dataset did not round-trip\n");
        abort();
    }
    check_same(&ds, &again);
    trh_dataset_free(&again);
    trh_dataset_free(&ds);
    return 0;
}
