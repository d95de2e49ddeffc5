/* The only file that talks to mbedTLS. */
#include <mbedtls/asn1.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "tr_internal.h"

tr_status tr_sha256(const void *data, size_t len, uint8_t out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_sha256(data, len, out, 0) == 0 ? TR_OK : TR_E_CRYPTO;
#else
    return mbedtls_sha256_ret(data, len, out, 0) == 0 ? TR_OK : TR_E_CRYPTO;
#endif
}

tr_status tr_ecdsa_p256_verify(const uint8_t point[65], const uint8_t hash[32],
                               const uint8_t *sig, size_t sig_len)
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    tr_status st = TR_E_CRYPTO;
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) != 0)
        goto out;
    /* A trusted key that is not a curve point is a caller error, but it
     * still must not verify anything. */
    st = TR_E_SIGNATURE;
    if (mbedtls_ecp_point_read_binary(&grp, &q, point, 65) != 0 ||
        mbedtls_ecp_check_pubkey(&grp, &q) != 0)
        goto out;
    /* Strict DER: SEQUENCE { INTEGER r, INTEGER s } and nothing after. */
    unsigned char *p = (unsigned char *)sig, *end = p + sig_len;
    size_t seq_len;
    if (mbedtls_asn1_get_tag(&p, end, &seq_len,
                             MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0 ||
        p + seq_len != end || mbedtls_asn1_get_mpi(&p, end, &r) != 0 ||
        mbedtls_asn1_get_mpi(&p, end, &s) != 0 || p != end)
        goto out;
    if (mbedtls_ecdsa_verify(&grp, hash, 32, &q, &r, &s) == 0)
        st = TR_OK;
out:
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return st;
}
