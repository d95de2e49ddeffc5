/* trh_dataset_load / trh_dataset_write on small hand-written directories.
 * Links against tools/dataset.c and tools/util.c only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define M_OK "name,cost,where\nsmall,1,device\nlarge,10,cloud\n"
#define P_OK "{\"id\":\"a\",\"text\":\"one\",\"task\":\"t\"}\n{\"id\":\"b\",\"text\":\"two\"}\n"
#define S_OK "id,small,large\na,1,0\nb,0,1\n"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* A fresh directory with the given files; NULL leaves a file out. */
static char *make_ds(const char *models, const char *prompts, const char *scores)
{
    char *dir = strdup("/tmp/tr_test_ds_XXXXXX");
    assert_non_null(mkdtemp(dir));
    if (models)
        put_file(dir, "models.csv", models);
    if (prompts)
        put_file(dir, "prompts.jsonl", prompts);
    if (scores)
        put_file(dir, "correctness.csv", scores);
    return dir;
}

/* stderr into a temporary file between capture_begin and capture_end. */
static FILE *cap_file;
static int cap_saved = -1;

static void capture_begin(void)
{
    cap_file = tmpfile();
    assert_non_null(cap_file);
    fflush(stderr);
    cap_saved = dup(STDERR_FILENO);
    assert_true(cap_saved >= 0);
    assert_true(dup2(fileno(cap_file), STDERR_FILENO) >= 0);
}

static void capture_end(char *err, size_t cap)
{
    fflush(stderr);
    assert_true(dup2(cap_saved, STDERR_FILENO) >= 0);
    close(cap_saved);
    rewind(cap_file);
    size_t n = fread(err, 1, cap - 1, cap_file);
    err[n] = 0;
    fclose(cap_file);
}

static int load_capture(const char *dir, trh_dataset *ds, char *err, size_t cap)
{
    capture_begin();
    int rc = trh_dataset_load(dir, ds);
    capture_end(err, cap);
    return rc;
}

static void test_valid(void **state)
{
    (void)state;
    /* Quoted name with a comma, an ignored extra column, CRLF, columns in
     * another order than models.csv, rows in another order than prompts. */
    char *dir = make_ds("name,cost,where,note\r\n\"tiny, model\",0.5,device,x\r\nbig,10,cloud,\"a \"\"q\"\" note\"\r\n",
                        "{\"id\":1,\"text\":\"hello\",\"task\":\"t1\",\"split\":\"train\"}\n"
                        "\n"
                        "{\"id\":\"b\",\"text\":\"h\xc3\xa9llo\",\"split\":\"test\"}\r\n"
                        "{\"id\":\"c\",\"text\":\"x\",\"task\":\"t2\"}\n",
                        "id,big,\"tiny, model\"\r\n1,1,0.25\r\nc,,1\r\nb,0,0\r\n");
    trh_dataset ds;
    char err[1024];
    assert_int_equal(load_capture(dir, &ds, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(ds.n_models, 2);
    assert_int_equal(ds.n_prompts, 3);
    assert_string_equal(ds.models[0].name, "tiny, model");
    assert_true(ds.models[0].cost == 0.5 && ds.models[0].where == 0);
    assert_string_equal(ds.models[1].name, "big");
    assert_true(ds.models[1].cost == 10 && ds.models[1].where == 1);
    assert_string_equal(ds.prompts[0].id, "1");
    assert_string_equal(ds.prompts[0].text, "hello");
    assert_string_equal(ds.prompts[0].task, "t1");
    assert_int_equal(ds.prompts[0].split, TRH_SPLIT_TRAIN);
    assert_string_equal(ds.prompts[1].id, "b");
    assert_string_equal(ds.prompts[1].text, "h\xc3\xa9llo");
    assert_string_equal(ds.prompts[1].task, "");
    assert_int_equal(ds.prompts[1].split, TRH_SPLIT_TEST);
    assert_int_equal(ds.prompts[2].split, TRH_SPLIT_ANY);
    /* row-major by prompt, columns in models.csv order */
    assert_true(ds.scores[0] == 0.25f && ds.scores[1] == 1.0f);
    assert_true(ds.scores[2] == 0.0f && ds.scores[3] == 0.0f);
    assert_true(ds.scores[4] == 1.0f && isnan(ds.scores[5]));
    trh_dataset_free(&ds);
    rm_tree(dir);
    free(dir);
}

/* The build streams the text again: the reader gives what the loader read
 * (blank lines and a BOM skipped), and refuses a file changed since. */
static void test_prompt_reader(void **state)
{
    (void)state;
    char *dir = make_ds("name,cost,where\nsmall,1,device\nbig,2,cloud\n",
                        "\xEF\xBB\xBF{\"id\":\"a\",\"text\":\"first\"}\n\n"
                        "{\"id\":\"b\",\"text\":\"second \\u00e9\"}\r\n",
                        "id,small,big\na,1,0\nb,0,1\n");
    trh_dataset ds;
    char err[1024];
    capture_begin();
    assert_int_equal(trh_dataset_load_flags(dir, &ds, TRH_DS_NO_TEXT), 0);
    capture_end(err, sizeof err);
    assert_int_equal(ds.n_prompts, 2);
    assert_null(ds.prompts[0].text);
    trh_prompt_reader rd;
    assert_int_equal(trh_prompt_reader_open(&rd, dir, &ds), 0);
    assert_string_equal(trh_prompt_reader_next(&rd), "first");
    assert_string_equal(trh_prompt_reader_next(&rd), "second \xc3\xa9");
    capture_begin();
    assert_null(trh_prompt_reader_next(&rd)); /* fewer prompts than loaded */
    capture_end(err, sizeof err);
    assert_non_null(strstr(err, "fewer prompts"));
    trh_prompt_reader_close(&rd);
    /* Same length, other text, written after the load: refused. */
    put_file(dir, "prompts.jsonl", "\xEF\xBB\xBF{\"id\":\"a\",\"text\":\"FIRST\"}\n\n"
                                   "{\"id\":\"b\",\"text\":\"second \\u00e9\"}\r\n");
    struct timespec later[2] = {{0, UTIME_OMIT}, {2000000000, 0}};
    char path[512];
    snprintf(path, sizeof path, "%s/prompts.jsonl", dir);
    assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0); /* a clock that did not tick */
    capture_begin();
    assert_int_equal(trh_prompt_reader_open(&rd, dir, &ds), 1);
    capture_end(err, sizeof err);
    assert_non_null(strstr(err, "changed since the dataset was loaded"));
    trh_dataset_free(&ds);
    rm_tree(dir);
    free(dir);
}

/* trh_read_prompts (--prompts files) goes through the same JSONL reader as
 * prompts.jsonl: a BOM and blank lines skipped, a line that is not one JSON
 * object (trailing text included) refused with its line number. */
static void test_read_prompts_same_rules(void **state)
{
    (void)state;
    char *dir = make_ds(NULL, NULL, NULL), path[512], err[1024];
    snprintf(path, sizeof path, "%s/p.jsonl", dir);
    put_file(dir, "p.jsonl", "\xEF\xBB\xBF{\"text\":\"one\"}\n \n{\"text\":\"two\",\"x\":1}\r\n");
    size_t n = 99;
    char **t = trh_read_prompts(path, &n);
    assert_non_null(t);
    assert_int_equal(n, 2);
    assert_string_equal(t[0], "one");
    assert_string_equal(t[1], "two");
    free(t[0]), free(t[1]), free(t);
    static const struct { const char *text, *want; } bad[] = {
        {"{\"text\":\"a\"}\n{\"text\":\"b\"} trailing\n", "p.jsonl:2: malformed JSON"},
        {"{\"text\":\"a\"}\n\n[1]\n", "p.jsonl:3: expected a JSON object"},
        {"{\"text\":\"a\\u0000b\"}\n", "p.jsonl:1: a \\u0000 (NUL) escape"},
        {"{\"text\":\"\"}\n", "p.jsonl:1: expected a JSON object with a non-empty \"text\""},
        {"\n\n", "p.jsonl: no prompts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        put_file(dir, "p.jsonl", bad[i].text);
        capture_begin();
        t = trh_read_prompts(path, &n);
        capture_end(err, sizeof err);
        assert_null(t);
        assert_int_equal(n, 0);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, bad[i].want, err);
    }
    rm_tree(dir);
    free(dir);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    char *src = make_ds("name,cost,where\n\"a,b\",0.1,device\nc,70,cloud\n",
                        "{\"id\":\"x\\n\\\"y\",\"text\":\"line1\\nline2 \\u00e9\",\"task\":\"k\",\"split\":\"test\"}\n"
                        "{\"id\":7,\"text\":\"t\"}\n",
                        "id,c,\"a,b\"\n\"x\n\"\"y\",0.1,\n7,1,0\n");
    trh_dataset a, b;
    char err[1024];
    assert_int_equal(load_capture(src, &a, err, sizeof err), 0);
    char dst[600];
    snprintf(dst, sizeof dst, "%s/out/nested", src);
    assert_int_equal(trh_dataset_write(dst, &a, 0), 0);
    capture_begin();
    int again = trh_dataset_write(dst, &a, 0);
    capture_end(err, sizeof err);
    assert_int_not_equal(again, 0);
    assert_non_null(strstr(err, "models.csv already exists"));
    assert_int_equal(trh_dataset_write(dst, &a, 1), 0);
    assert_int_equal(load_capture(dst, &b, err, sizeof err), 0);
    char path[700];
    size_t len;
    snprintf(path, sizeof path, "%s/models.csv", dst);
    uint8_t *text = trh_read_file(path, &len); /* shortest numbers, no "7e+01" */
    assert_non_null(text);
    assert_string_equal((char *)text, "name,cost,where\n\"a,b\",0.1,device\nc,70,cloud\n");
    free(text);
    assert_int_equal(b.n_prompts, a.n_prompts);
    assert_int_equal(b.n_models, a.n_models);
    for (size_t m = 0; m < a.n_models; m++) {
        assert_string_equal(a.models[m].name, b.models[m].name);
        assert_true(a.models[m].cost == b.models[m].cost && a.models[m].where == b.models[m].where);
    }
    for (size_t i = 0; i < a.n_prompts; i++) {
        assert_string_equal(a.prompts[i].id, b.prompts[i].id);
        assert_string_equal(a.prompts[i].text, b.prompts[i].text);
        assert_string_equal(a.prompts[i].task, b.prompts[i].task);
        assert_int_equal(a.prompts[i].split, b.prompts[i].split);
    }
    for (size_t k = 0; k < a.n_prompts * a.n_models; k++)
        assert_true(a.scores[k] == b.scores[k] || (isnan(a.scores[k]) && isnan(b.scores[k])));
    assert_true(isnan(a.scores[0]) && a.scores[1] == 0.1f && a.scores[2] == 0.0f && a.scores[3] == 1.0f);
    trh_dataset_free(&a);
    trh_dataset_free(&b);
    rm_tree(src);
    free(src);
}

/* A 63-byte model name is the longest allowed. */
static void test_name_63(void **state)
{
    (void)state;
    char m[256], s[256], name[64];
    memset(name, 'n', 63);
    name[63] = 0;
    snprintf(m, sizeof m, "name,cost,where\nsmall,1,device\n%s,10,cloud\n", name);
    snprintf(s, sizeof s, "id,small,%s\na,1,0\nb,0,1\n", name);
    char *dir = make_ds(m, P_OK, s);
    trh_dataset ds;
    char err[1024];
    assert_int_equal(load_capture(dir, &ds, err, sizeof err), 0);
    assert_int_equal(strlen(ds.models[1].name), 63);
    trh_dataset_free(&ds);
    rm_tree(dir);
    free(dir);
}

/* ---- rejected inputs ---- */

typedef struct bad_case {
    const char *name, *models, *prompts, *scores;
    const char *expect; /* substring of stderr: "/file:line:" */
} bad_case;

#define NAME64 "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"

static const bad_case bad_cases[] = {
    {"missing models.csv", NULL, P_OK, S_OK, "/models.csv: cannot open"},
    {"missing prompts.jsonl", M_OK, NULL, S_OK, "/prompts.jsonl: cannot open"},
    {"missing correctness.csv", M_OK, P_OK, NULL, "/correctness.csv: cannot open"},
    {"missing column where", "name,cost\nsmall,1\n", P_OK, S_OK, "/models.csv:1: missing column \"where\""},
    {"missing column id", M_OK, P_OK, "key,small,large\na,1,0\nb,0,1\n", "/correctness.csv:1: missing column \"id\""},
    {"duplicate column", "name,cost,where,cost\nsmall,1,device,1\n", P_OK, S_OK, "/models.csv:1: duplicate column"},
    {"duplicate model column", M_OK, P_OK, "id,small,large,small\na,1,0,1\nb,0,1,0\n",
     "/correctness.csv:1: duplicate column \"small\""},
    {"duplicate prompt id", M_OK, P_OK "{\"id\":\"a\",\"text\":\"three\"}\n", S_OK,
     "/prompts.jsonl:3: duplicate prompt id \"a\" (first on line 1)"},
    {"duplicate prompt id int/string", M_OK, "{\"id\":5,\"text\":\"x\"}\n{\"id\":\"5\",\"text\":\"y\"}\n",
     "id,small,large\n5,1,1\n", "/prompts.jsonl:2: duplicate prompt id"},
    {"empty text", M_OK, "{\"id\":\"a\",\"text\":\"one\"}\n{\"id\":\"b\",\"text\":\"\"}\n", S_OK,
     "/prompts.jsonl:2: empty text"},
    {"missing text", M_OK, "{\"id\":\"a\",\"text\":\"one\"}\n{\"id\":\"b\"}\n", S_OK, "/prompts.jsonl:2: missing \"text\""},
    {"malformed JSON", M_OK, "{\"id\":\"a\",\"text\":\"one\"}\n{\"id\":\"b\",\"text\":\"two\"\n", S_OK,
     "/prompts.jsonl:2: malformed JSON"},
    {"trailing garbage", M_OK, "{\"id\":\"a\",\"text\":\"one\"} x\n{\"id\":\"b\",\"text\":\"two\"}\n", S_OK,
     "/prompts.jsonl:1: malformed JSON"},
    {"JSON not an object", M_OK, "[1,2]\n", S_OK, "/prompts.jsonl:1: expected a JSON object"},
    {"fractional id", M_OK, "{\"id\":1.5,\"text\":\"one\"}\n", S_OK, "/prompts.jsonl:1: missing or invalid \"id\""},
    {"bad split", M_OK, "{\"id\":\"a\",\"text\":\"one\",\"split\":\"dev\"}\n", S_OK, "/prompts.jsonl:1: \"split\""},
    {"no prompts", M_OK, "\n", "id,small,large\n", "/prompts.jsonl:1: no prompts"},
    {"non-numeric score", M_OK, P_OK, "id,small,large\na,1,0\nb,yes,1\n", "/correctness.csv:3: column 2 (small)"},
    {"score above 1", M_OK, P_OK, "id,small,large\na,1.5,0\nb,0,1\n", "/correctness.csv:2:"},
    {"negative score", M_OK, P_OK, "id,small,large\na,1,-0.1\nb,0,1\n", "/correctness.csv:2:"},
    {"nan score", M_OK, P_OK, "id,small,large\na,1,nan\nb,0,1\n", "/correctness.csv:2:"},
    {"too few cells", M_OK, P_OK, "id,small,large\na,1,0\nb,0\n", "/correctness.csv:3: wrong number of cells"},
    {"too many cells", M_OK, P_OK, "id,small,large\na,1,0,1\nb,0,1\n", "/correctness.csv:2: wrong number of cells"},
    {"unknown model column", M_OK, P_OK, "id,small,large,huge\na,1,0,1\nb,0,1,1\n",
     "/correctness.csv:1: column 4: unknown model \"huge\""},
    {"model without column", M_OK, P_OK, "id,small\na,1\nb,0\n",
     "/correctness.csv:1: no column for model \"large\" (models.csv line 3)"},
    {"row for unknown prompt", M_OK, P_OK, "id,small,large\na,1,0\nb,0,1\nzz,1,1\n",
     "/correctness.csv:4: prompt id \"zz\" is not in prompts.jsonl"},
    {"second row for a prompt", M_OK, P_OK, "id,small,large\na,1,0\nb,0,1\na,1,1\n", "/correctness.csv:4: second row"},
    {"prompt without row", M_OK, P_OK, "id,small,large\nb,0,1\n",
     "/prompts.jsonl:1: prompt id \"a\" has no row in correctness.csv"},
    {"no device model", "name,cost,where\nsmall,1,cloud\nlarge,10,cloud\n", P_OK, S_OK,
     "/models.csv:1: no device model"},
    {"no models", "name,cost,where\n", P_OK, "id\na\nb\n", "/models.csv:1: no models"},
    {"duplicate model name", "name,cost,where\nsmall,1,device\nsmall,10,cloud\n", P_OK, S_OK,
     "/models.csv:3: duplicate model name \"small\" (first on line 2)"},
    {"model name of 64 bytes", "name,cost,where\nsmall,1,device\n" NAME64 ",10,cloud\n", P_OK, S_OK,
     "/models.csv:3: model name must be 1 to 63 bytes"},
    {"empty model name", "name,cost,where\nsmall,1,device\n,10,cloud\n", P_OK, S_OK, "/models.csv:3: model name"},
    {"negative cost", "name,cost,where\nsmall,-1,device\n", P_OK, S_OK, "/models.csv:2: cost"},
    {"non-numeric cost", "name,cost,where\nsmall,cheap,device\n", P_OK, S_OK, "/models.csv:2: cost"},
    {"bad where", "name,cost,where\nsmall,1,edge\n", P_OK, S_OK, "/models.csv:2: where is \"edge\""},
    {"invalid UTF-8 in text", M_OK, "{\"id\":\"a\",\"text\":\"one\"}\n{\"id\":\"b\",\"text\":\"t\xff\xfe\"}\n", S_OK,
     "/prompts.jsonl:2: invalid UTF-8 in text"},
    {"overlong UTF-8 in text", M_OK, "{\"id\":\"a\",\"text\":\"\xc0\xaf\"}\n", S_OK,
     "/prompts.jsonl:1: invalid UTF-8 in text"},
    {"surrogate in text", M_OK, "{\"id\":\"a\",\"text\":\"\xed\xa0\x80\"}\n", S_OK,
     "/prompts.jsonl:1: invalid UTF-8 in text"},
    {"unterminated quote", "name,cost,where\n\"small,1,device\n", P_OK, S_OK, "/models.csv:2: unterminated quoted field"},
    {"quote in unquoted field", "name,cost,where\nsm\"all,1,device\n", P_OK, S_OK, "/models.csv:2: quote inside"},
    {"text after closing quote", "name,cost,where\n\"small\"x,1,device\n", P_OK, S_OK,
     "/models.csv:2: unexpected character after a closing quote"},
    {"empty correctness.csv", M_OK, P_OK, "", "/correctness.csv:1: empty file"},
};

static void test_bad(void **state)
{
    const bad_case *c = *state;
    char *dir = make_ds(c->models, c->prompts, c->scores);
    trh_dataset ds;
    char err[2048];
    int rc = load_capture(dir, &ds, err, sizeof err);
    if (rc == 0 || !strstr(err, c->expect) || !strstr(err, dir))
        print_error("case \"%s\": rc %d, stderr: %s(expected \"%s\")\n", c->name, rc, err, c->expect);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, c->expect));
    assert_non_null(strstr(err, dir)); /* the path names the directory too */
    /* a failed load leaves nothing to free */
    assert_true(ds.n_prompts == 0 && ds.n_models == 0 && !ds.prompts && !ds.models && !ds.scores);
    rm_tree(dir);
    free(dir);
}

static void test_missing_dir(void **state)
{
    (void)state;
    trh_dataset ds;
    char err[1024];
    assert_int_not_equal(load_capture("/nonexistent/tr_ds", &ds, err, sizeof err), 0);
    assert_non_null(strstr(err, "/nonexistent/tr_ds/models.csv: cannot open"));
}

int main(void)
{
    enum { N_BAD = sizeof bad_cases / sizeof *bad_cases };
    struct CMUnitTest tests[N_BAD + 4] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_prompt_reader),
        cmocka_unit_test(test_read_prompts_same_rules),
        cmocka_unit_test(test_name_63),
        cmocka_unit_test(test_missing_dir),
    };
    for (size_t i = 0; i < N_BAD; i++)
        tests[4 + i] = (struct CMUnitTest){bad_cases[i].name, test_bad, NULL, NULL, (void *)&bad_cases[i]};
    return cmocka_run_group_tests_name("dataset", tests, NULL, NULL);
}
