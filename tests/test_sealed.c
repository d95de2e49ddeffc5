/* Sealed pack memory (issue 18): a pack loaded through the host's safe path
 * (tools/packfile.c: a private copy) keeps serving the bytes that were
 * verified while the file on disk is rewritten or truncated; and no
 * unverified header sizes the context. usage: test_sealed PACK */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "packfile.h"
#include "tr_format.h"

static const char *pack_path;
static uint8_t *orig;
static size_t orig_len;

static const char *prompts[] = {"What is the derivative of x squared?", "What is a tort in law?",
                                "Which organelle makes ATP?", "Explain supply and demand.",
                                "What is the capital of France?"};
#define NP (sizeof prompts / sizeof *prompts)

typedef struct answer {
    uint32_t model;
    char name[TR_MODEL_NAME_MAX];
    float utility;
} answer;

static void route_all(trh_packfile *pf, answer *out)
{
    for (size_t i = 0; i < NP; i++) {
        tr_result r;
        const tr_query q = tr_query_text(prompts[i], strlen(prompts[i]));
        assert_int_equal(tr_route(pf->view, pf->ctx, &q, NULL, &r, NULL), TR_OK);
        out[i].model = r.model;
        snprintf(out[i].name, sizeof out[i].name, "%s", r.model_name);
        out[i].utility = r.utility;
    }
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void find_section(const uint8_t *b, uint32_t type, uint64_t *off, uint64_t *len)
{
    uint32_t ns = tr_ld32(b + TR_H_N_SECTIONS);
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = b + TR_HEADER_BYTES + i * TR_SECTION_ENTRY_BYTES;
        if (tr_ld32(e + TR_S_TYPE) == type) {
            *off = tr_ld64(e + TR_S_OFFSET);
            *len = tr_ld64(e + TR_S_LENGTH);
            return;
        }
    }
    fail_msg("section %u not found", type);
}

static void test_file_attacks_change_nothing(void **state)
{
    (void)state;
    char path[] = "/tmp/tr_sealed_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, orig, orig_len);
    tr_pubkey key;
    assert_int_equal(trh_key_load_public("fixtures/keys/test-signing.pub", &key), 0);
    tr_trust trust = {.keys = &key, .n_keys = 1};
    trh_packfile pf;
    assert_int_equal(trh_packfile_open(path, NULL, &trust, &pf), 0);
    answer before[NP], after[NP];
    route_all(&pf, before);

    /* In place (same inode, as a writer racing the router would): every
     * model name becomes EVIL-MODEL..., the embedder's bucket table 0x7F. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    uint64_t off, len;
    find_section(orig, TR_SEC_MODELS, &off, &len);
    for (uint64_t r = off; r < off + len; r += TR_MODEL_REC_BYTES) {
        size_t n = strlen((const char *)orig + r);
        char evil[TR_MODEL_NAME_MAX];
        for (size_t i = 0; i < n; i++)
            evil[i] = "EVIL-MODEL"[i % 10];
        assert_int_equal(fseek(f, (long)r, SEEK_SET), 0);
        assert_int_equal(fwrite(evil, 1, n, f), n);
    }
    find_section(orig, TR_SEC_EMBEDDER, &off, &len);
    uint32_t nb = tr_ld32(orig + off + TR_E_N_BUCKETS), boff = tr_ld32(orig + off + TR_E_OFF_BUCKETS);
    assert_true(nb > 0);
    uint8_t *sev = malloc(4ull * nb);
    memset(sev, 0x7F, 4ull * nb);
    assert_int_equal(fseek(f, (long)(off + boff), SEEK_SET), 0);
    assert_int_equal(fwrite(sev, 1, 4ull * nb, f), 4ull * nb);
    free(sev);
    assert_int_equal(fclose(f), 0);
    route_all(&pf, after);
    for (size_t i = 0; i < NP; i++) {
        assert_int_equal(after[i].model, before[i].model);
        assert_string_equal(after[i].name, before[i].name);
        assert_memory_equal(&after[i].utility, &before[i].utility, sizeof(float));
        assert_null(strstr(after[i].name, "EVIL"));
    }
    /* The attack is real: the file on disk no longer verifies. */
    trh_packfile again;
    assert_int_equal(trh_packfile_open(path, NULL, &trust, &again), TR_E_SIGNATURE);

    /* Truncated under the router: no SIGBUS, same answers. */
    assert_int_equal(truncate(path, 100), 0);
    route_all(&pf, after);
    for (size_t i = 0; i < NP; i++) {
        assert_int_equal(after[i].model, before[i].model);
        assert_string_equal(after[i].name, before[i].name);
    }
    assert_int_equal(truncate(path, 0), 0);
    route_all(&pf, after);
    assert_int_equal(after[0].model, before[0].model);
    trh_packfile_close(&pf);
    unlink(path);
}

/* The context is sized from header fields only once they are within the
 * library's limits and what the file can hold; otherwise the smallest
 * context, and the open names the error. */
static void test_ctx_from_checked_header(void **state)
{
    (void)state;
    tr_pack_info h;
    assert_int_equal(tr_pack_peek(orig, orig_len, &h), TR_OK);
    const size_t least = tr_ctx_size(1, 1, 0);
    size_t exact = tr_ctx_size(h.dim, h.n_models, h.prefilter_candidates);
    assert_true(exact > least);
    assert_int_equal(trh_packfile_ctx_bytes(orig, orig_len, NULL, 0), exact);
    uint8_t *b = malloc(orig_len);
    static const struct {
        uint32_t at, value;
    } lies[] = {{TR_H_PREFILTER_C, 0xFFFFFFFFu}, {TR_H_PREFILTER_C, TR_PREFILTER_MAX + 1},
                {TR_H_DIM, 0xFFFFFFFFu},         {TR_H_DIM, TR_DIM_MAX + 1},
                {TR_H_N_MODELS, 0xFFFFFFFFu},    {TR_H_DIM, 0}};
    for (size_t i = 0; i < sizeof lies / sizeof *lies; i++) {
        memcpy(b, orig, orig_len);
        tr_st32(b + lies[i].at, lies[i].value);
        assert_int_equal(trh_packfile_ctx_bytes(b, orig_len, NULL, 0), least);
    }
    /* More models than the file could hold records for. */
    memcpy(b, orig, orig_len);
    tr_st32(b + TR_H_N_MODELS, (uint32_t)(orig_len / TR_MODEL_REC_BYTES + 1));
    assert_int_equal(trh_packfile_ctx_bytes(b, orig_len, NULL, 0), least);
    /* A delta header asking for more than TR_DELTA_MAX_ADDED models costs
     * the base nothing: its context stays exact (apply_delta names the error). */
    uint8_t d[4096] = {0};
    memcpy(d, TR_DELTA_MAGIC, 8);
    tr_st32(d + TR_DH_VERSION, 1);
    tr_st32(d + TR_DH_HEADER_BYTES, TR_HEADER_BYTES);
    tr_st32(d + TR_DH_N_ADDED, 0xFFFFFFFFu);
    assert_int_equal(trh_packfile_ctx_bytes(orig, orig_len, d, sizeof d), exact);
    tr_st32(d + TR_DH_N_ADDED, 3);
    tr_delta_info di;
    assert_int_equal(tr_delta_peek(d, sizeof d, &di), TR_OK);
    assert_int_equal(trh_packfile_ctx_bytes(orig, orig_len, d, sizeof d),
                         tr_ctx_size(h.dim, h.n_models + 3, h.prefilter_candidates));
    free(b);
}

static void test_read_refuses_non_files(void **state)
{
    (void)state;
    uint8_t *b;
    size_t n;
    assert_int_not_equal(trh_pack_read_file("/tmp", &b, &n), 0);
    assert_null(b);
    assert_int_not_equal(trh_pack_read_file("/dev/null", &b, &n), 0);
    assert_int_not_equal(trh_pack_read_file("/nonexistent/pack", &b, &n), 0);
    assert_int_equal(trh_pack_read_file(pack_path, &b, &n), 0);
    assert_int_equal(n, orig_len);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_memory_equal(b, orig, n);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_sealed PACK\n");
        return 2;
    }
    pack_path = argv[1];
    if (trh_pack_read_file(pack_path, &orig, &orig_len) != 0)
        return 2;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_attacks_change_nothing),
        cmocka_unit_test(test_ctx_from_checked_header),
        cmocka_unit_test(test_read_refuses_non_files),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    free(orig);
    return r;
}
