/* Keys and signatures on the host (mbedTLS pk): PEM files in, raw P-256
 * points and DER signatures out, compatible with openssl. */
#ifndef TRH_TOOLS_KEYS_H
#define TRH_TOOLS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "tinyroute.h"

/* Public key from a PEM file: a public key, or the public half of a private
 * key. 0 on success; a message on stderr otherwise. */
int trh_key_load_public(const char *path, tr_pubkey *out);

/* ECDSA P-256 signature (DER) of a SHA-256 digest with a PEM private key;
 * also gives the signer's public point. sig holds TR_SIG_MAX_BYTES. */
int trh_key_sign(const char *path, const uint8_t hash[32], uint8_t *sig,
                size_t *sig_len, tr_pubkey *pub);

/* Key id = SHA-256 of the 65-byte point. */
void trh_key_id(const tr_pubkey *key, uint8_t id[32]);

/* Parse a key id (64 hex digits) and append it to a list. 0 on success. */
int trh_keyid_add(const char *hex, uint8_t (**ids)[32], size_t *n);

/* Load several public keys from "a.pem,b.pem" or repeated flags. */
int trh_keys_add(const char *path, tr_pubkey **keys, size_t *n);

#endif
