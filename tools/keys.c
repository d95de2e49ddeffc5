#include <cjson/cJSON.h>
#include "keys.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include <getopt.h>

#include "cmds.h"
#include "tr_format.h"
#include "util.h"

static int mbed_err(const char *what, const char *path, int rc)
{
    char buf[160];
    mbedtls_strerror(rc, buf, sizeof buf);
    return trh_err("%s %s: %s", what, path, buf);
}

static int point_of(const mbedtls_pk_context *pk, const char *path, tr_pubkey *out)
{
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_pk_ec(*pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
        return trh_err("%s: not an ECDSA P-256 (prime256v1) key", path);
    const mbedtls_ecp_keypair *kp = mbedtls_pk_ec(*pk);
    size_t olen;
    if (mbedtls_ecp_point_write_binary(&kp->grp, &kp->Q, MBEDTLS_ECP_PF_UNCOMPRESSED,
                                       &olen, out->point, sizeof out->point) != 0 ||
        olen != 65)
        return trh_err("%s: cannot encode the public point", path);
    return 0;
}

/* mbedTLS reads a key file by fseek/ftell: on a directory or a device that
 * turns into "Memory allocation failed". Say what the path is instead. */
static int key_file_ok(const char *path, const char *what)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return trh_err("cannot read %s %s: %s", what, path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return trh_err("cannot read %s %s: is a directory", what, path);
    if (!S_ISREG(sb.st_mode))
        return trh_err("cannot read %s %s: not a regular file", what, path);
    return 0;
}

int trh_key_load_public(const char *path, tr_pubkey *out)
{
    if (key_file_ok(path, "public key"))
        return 1;
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    int rc = mbedtls_pk_parse_public_keyfile(&pk, path);
    if (rc != 0) {
        mbedtls_pk_free(&pk);
        mbedtls_pk_init(&pk);
        int rc2 = mbedtls_pk_parse_keyfile(&pk, path, NULL);
        if (rc2 != 0) {
            mbedtls_pk_free(&pk);
            return mbed_err("cannot read public key", path, rc);
        }
    }
    int r = point_of(&pk, path, out);
    mbedtls_pk_free(&pk);
    return r;
}

void trh_key_id(const tr_pubkey *key, uint8_t id[32])
{
    mbedtls_sha256_ret(key->point, sizeof key->point, id, 0);
}

int trh_keys_add(const char *path, tr_pubkey **keys, size_t *n)
{
    tr_pubkey k;
    if (trh_key_load_public(path, &k) != 0)
        return 1;
    *keys = trh_xrealloc(*keys, (*n + 1) * sizeof **keys);
    (*keys)[(*n)++] = k;
    return 0;
}

int trh_keyid_add(const char *hex, uint8_t (**ids)[32], size_t *n)
{
    uint8_t id[32];
    if (strlen(hex) != 64)
        return trh_err("a key id is 64 hex digits, not '%s'", hex);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
            !isxdigit((unsigned char)hex[2 * i + 1]))
            return trh_err("a key id is 64 hex digits, not '%s'", hex);
        id[i] = (uint8_t)v;
    }
    *ids = trh_xrealloc(*ids, (*n + 1) * sizeof **ids);
    memcpy((*ids)[(*n)++], id, 32);
    return 0;
}

static int seed_rng(mbedtls_entropy_context *ent, mbedtls_ctr_drbg_context *drbg)
{
    mbedtls_entropy_init(ent);
    mbedtls_ctr_drbg_init(drbg);
    static const char pers[] = "tinyroute";
    return mbedtls_ctr_drbg_seed(drbg, mbedtls_entropy_func, ent,
                                 (const unsigned char *)pers, sizeof pers - 1);
}

/* A DER INTEGER of a positive value of at most 32 bytes, minimal. */
static size_t der_int(uint8_t *out, const uint8_t v[32])
{
    size_t i = 0;
    while (i < 31 && v[i] == 0)
        i++;
    size_t pad = v[i] >> 7, n = 32 - i;
    out[0] = 0x02;
    out[1] = (uint8_t)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, v + i, n);
    return 2 + pad + n;
}

/* Sign, then make s low (s > n/2: s = n - s, which verifies as well) and
 * write strict DER: the only encoding a device accepts (PACK_FORMAT.md,
 * trailer). */
static int sign_low_s(mbedtls_ecdsa_context *ec, const uint8_t hash[32], uint8_t *sig,
                      size_t *sig_len, mbedtls_ctr_drbg_context *drbg)
{
    mbedtls_mpi r, s, half;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    mbedtls_mpi_init(&half);
    uint8_t rb[32], sb[32], body[2 * 35];
    int rc = mbedtls_ecdsa_sign(&ec->grp, &r, &s, &ec->d, hash, 32, mbedtls_ctr_drbg_random, drbg);
    if (rc == 0)
        rc = mbedtls_mpi_copy(&half, &ec->grp.N);
    if (rc == 0)
        rc = mbedtls_mpi_shift_r(&half, 1);
    if (rc == 0 && mbedtls_mpi_cmp_mpi(&s, &half) > 0)
        rc = mbedtls_mpi_sub_mpi(&s, &ec->grp.N, &s);
    if (rc == 0)
        rc = mbedtls_mpi_write_binary(&r, rb, 32);
    if (rc == 0)
        rc = mbedtls_mpi_write_binary(&s, sb, 32);
    if (rc == 0) {
        size_t n = der_int(body, rb);
        n += der_int(body + n, sb);
        sig[0] = 0x30;
        sig[1] = (uint8_t)n; /* <= 70: short form */
        memcpy(sig + 2, body, n);
        *sig_len = n + 2;
    }
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&half);
    return rc;
}

int trh_key_sign(const char *path, const uint8_t hash[32], uint8_t *sig,
                size_t *sig_len, tr_pubkey *pub)
{
    mbedtls_pk_context pk;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ecdsa_context ec;
    mbedtls_pk_init(&pk);
    mbedtls_ecdsa_init(&ec);
    int r = 1, rc = seed_rng(&ent, &drbg);
    if (rc != 0) {
        mbed_err("cannot seed the random generator for", path, rc);
        goto out;
    }
    if (key_file_ok(path, "private key"))
        goto out;
    rc = mbedtls_pk_parse_keyfile(&pk, path, NULL);
    if (rc != 0) {
        mbed_err("cannot read private key", path, rc);
        goto out;
    }
    if (point_of(&pk, path, pub) != 0)
        goto out;
    rc = mbedtls_ecdsa_from_keypair(&ec, mbedtls_pk_ec(pk));
    if (rc == 0)
        rc = sign_low_s(&ec, hash, sig, sig_len, &drbg);
    if (rc != 0 || *sig_len > TR_SIG_MAX_BYTES) {
        mbed_err("cannot sign with", path, rc);
        goto out;
    }
    r = 0;
out:
    mbedtls_ecdsa_free(&ec);
    mbedtls_pk_free(&pk);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return r;
}

/* Write path with mode (the caller checked --force). */
static int write_key(const char *path, const char *data, unsigned mode)
{
    return trh_write_file_mode(path, data, strlen(data), mode) != 0;
}

static const char keygen_usage[] =
    "usage: tinyroute keygen --out PREFIX [--force] [--json]\n"
    "Writes an ECDSA P-256 key pair as PEM: PREFIX.key (private, mode 0600)\n"
    "and PREFIX.pub (public). Keys from `openssl ecparam -name prime256v1\n"
    "-genkey -noout` work the same way. --json: {\"key\", \"pub\", \"key_id\"}\n"
    "on stdout.\n";

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"force", no_argument, 0, 'f'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *prefix = NULL;
    int force = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': prefix = optarg; break;
        case 'f': force = 1; break;
        case 'j': json = 1; break;
        case 'h': fputs(keygen_usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (!prefix || optind != argc) {
        fputs(keygen_usage, stderr);
        return 2;
    }
    char *kpath = trh_xprintf("%s.key", prefix), *ppath = trh_xprintf("%s.pub", prefix);
    /* Both before either is written: a new .key beside an old .pub would be
     * a pair that does not match. */
    for (int i = 0; i < 2 && !force; i++)
        if (access(i ? ppath : kpath, F_OK) == 0) {
            trh_err("%s exists; not overwriting it (use --force)", i ? ppath : kpath);
            free(kpath);
            free(ppath);
            return 2;
        }
    mbedtls_pk_context pk;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_init(&pk);
    int r = 1, rc = seed_rng(&ent, &drbg);
    unsigned char priv[1024], pub[512];
    if (rc == 0)
        rc = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0)
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk),
                                 mbedtls_ctr_drbg_random, &drbg);
    if (rc == 0)
        rc = mbedtls_pk_write_key_pem(&pk, priv, sizeof priv);
    if (rc == 0)
        rc = mbedtls_pk_write_pubkey_pem(&pk, pub, sizeof pub);
    if (rc != 0) {
        mbed_err("cannot generate a key for", prefix, rc);
        goto out;
    }
    if (write_key(kpath, (char *)priv, 0600) == 0 && write_key(ppath, (char *)pub, 0644) == 0) {
        tr_pubkey pk65;
        uint8_t id[32];
        point_of(&pk, kpath, &pk65);
        trh_key_id(&pk65, id);
        if (json) {
            char hex[65];
            for (int i = 0; i < 32; i++)
                sprintf(hex + 2 * i, "%02x", id[i]);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "key", kpath);
            cJSON_AddStringToObject(o, "pub", ppath);
            cJSON_AddStringToObject(o, "key_id", hex);
            char *txt = cJSON_PrintUnformatted(o);
            printf("%s\n", txt);
            free(txt);
            cJSON_Delete(o);
            r = 0;
            goto out;
        }
        printf("wrote %s and %s, key id ", kpath, ppath);
        for (int i = 0; i < 32; i++)
            printf("%02x", id[i]);
        printf("\n");
        /* The device takes the point, not the PEM: say how to get it. */
        printf("for the device: tinyroute pubkey %s > %s.inc (the tr_pubkey initializer)\n",
               ppath, prefix);
        r = 0;
    }
out:
    free(kpath);
    free(ppath);
    mbedtls_platform_zeroize(priv, sizeof priv);
    mbedtls_pk_free(&pk);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return r;
}

static const char pubkey_usage[] =
    "usage: tinyroute pubkey KEY.pub [--format c|hex|der|raw|json] [--name NAME] [--json]\n"
    "Prints a public key (PEM or DER, e.g. from keygen) as the device takes it:\n"
    "  c    the tr_pubkey initializer {{0x04, X, Y}} with its key id in a comment\n"
    "       (default); with --name a whole `static const tr_pubkey NAME = ...;`\n"
    "  hex  the 65-byte SEC1 point 04||X||Y as 130 hex digits\n"
    "  der  the DER SubjectPublicKeyInfo (as `openssl ec -pubin -outform DER`)\n"
    "  raw  the 65-byte point itself (what tr_pubkey.point holds)\n"
    "  json {\"file\", \"point\" (hex), \"key_id\"} (also: --json)\n"
    "der and raw are binary: redirect them, they are not written to a terminal.\n"
    "A private key is refused: the device only ever needs the public half.\n";

/* pubkey's messages in the CLI style the issue asks for ("tinyroute CMD:
 * message"). Returns 1. */
static int pubkey_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int pubkey_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tinyroute pubkey: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* Loads a public key only: a private key given here is most likely the
 * wrong file of the pair, and printing its public half would hide that the
 * private one is about to be copied somewhere (a build tree, a device). */
static int load_public_only(const char *path, mbedtls_pk_context *pk)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return pubkey_err("cannot read %s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return pubkey_err("cannot read %s: %s", path,
                          S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    int rc = mbedtls_pk_parse_public_keyfile(pk, path);
    if (rc == 0) {
        if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY ||
            mbedtls_pk_ec(*pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
            return pubkey_err("%s: not an ECDSA P-256 (prime256v1) key", path);
        return 0;
    }
    mbedtls_pk_context priv;
    mbedtls_pk_init(&priv);
    int rc2 = mbedtls_pk_parse_keyfile(&priv, path, NULL);
    mbedtls_pk_free(&priv);
    if (rc2 == 0 || rc2 == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
        return pubkey_err("%s is a private key; give its public half (the .pub of keygen, "
                          "or `openssl ec -in %s -pubout`) and keep the private key off the device",
                          path, path);
    char buf[160];
    mbedtls_strerror(rc, buf, sizeof buf);
    return pubkey_err("%s is not a public key (PEM or DER): %s", path, buf);
}

int cmd_pubkey(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, 0, 'f'}, {"name", required_argument, 0, 'n'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *format = "c", *name = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'n': name = optarg; break;
        case 'j': format = "json"; break;
        case 'h': fputs(pubkey_usage, stdout); return 0;
        default: return trh_bad_option(argv);
        }
    }
    if (optind + 1 != argc) {
        fputs(pubkey_usage, stderr);
        return 2;
    }
    int fc = !strcmp(format, "c"), fhex = !strcmp(format, "hex"), fder = !strcmp(format, "der"),
        fraw = !strcmp(format, "raw"), fjson = !strcmp(format, "json");
    if (!fc && !fhex && !fder && !fraw && !fjson) {
        fprintf(stderr, "tinyroute pubkey: --format must be c, hex, der, raw or json, not '%s'\n", format);
        return 2;
    }
    if (name && !fc) {
        fputs("tinyroute pubkey: --name goes with --format c\n", stderr);
        return 2;
    }
    if (name) {
        int ident = (isalpha((unsigned char)name[0]) || name[0] == '_');
        for (const char *q = name; *q && ident; q++)
            ident = isalnum((unsigned char)*q) || *q == '_';
        if (!ident) {
            fprintf(stderr, "tinyroute pubkey: --name must be a C identifier, not '%s'\n", name);
            return 2;
        }
    }
    if ((fder || fraw) && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "tinyroute pubkey: not writing binary %s to a terminal; redirect stdout "
                "(> key.%s) or use --format hex\n", format, format);
        return 2;
    }
    const char *path = argv[optind];
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    tr_pubkey key;
    int r = 1;
    if (load_public_only(path, &pk) != 0 || point_of(&pk, path, &key) != 0)
        goto out;
    if (fc) {
        uint8_t id[32];
        trh_key_id(&key, id);
        /* The path goes into a C comment: one that could end it or span
         * lines is left out, so the output always compiles. */
        int plain = !strstr(path, "*/") && !strpbrk(path, "\n\r");
        printf("/* tinyroute pubkey %s\n * key id ", plain ? path : "KEY.pub");
        for (int i = 0; i < 32; i++)
            printf("%02x", id[i]);
        printf(" (SHA-256 of the point) */\n");
        if (name)
            printf("static const tr_pubkey %s = ", name);
        printf("{{");
        for (int i = 0; i < 65; i++)
            printf("%s0x%02x%s", i % 12 == 0 ? "\n    " : " ", key.point[i], i < 64 ? "," : "");
        printf("\n}}%s\n", name ? ";" : "");
    } else if (fhex) {
        for (int i = 0; i < 65; i++)
            printf("%02x", key.point[i]);
        printf("\n");
    } else if (fjson) {
        uint8_t id[32];
        char pt[131], kid[65];
        trh_key_id(&key, id);
        for (int i = 0; i < 65; i++)
            sprintf(pt + 2 * i, "%02x", key.point[i]);
        for (int i = 0; i < 32; i++)
            sprintf(kid + 2 * i, "%02x", id[i]);
        printf("{\"file\":");
        cJSON *s = cJSON_CreateString(path); /* the path, JSON-escaped */
        char *txt = cJSON_PrintUnformatted(s);
        printf("%s,\"point\":\"%s\",\"key_id\":\"%s\"}\n", txt, pt, kid);
        free(txt);
        cJSON_Delete(s);
    } else if (fraw) {
        fwrite(key.point, 1, sizeof key.point, stdout);
    } else {
        unsigned char der[160];
        int n = mbedtls_pk_write_pubkey_der(&pk, der, sizeof der);
        if (n <= 0) {
            pubkey_err("%s: cannot encode the key as DER", path);
            goto out;
        }
        /* mbedTLS writes DER at the end of the buffer. */
        fwrite(der + sizeof der - (size_t)n, 1, (size_t)n, stdout);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        pubkey_err("cannot write the key to stdout: %s", strerror(errno));
        goto out;
    }
    r = 0;
out:
    mbedtls_pk_free(&pk);
    return r;
}
