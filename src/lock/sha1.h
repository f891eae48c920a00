/* SHA-1 (FIPS 180-4) and HMAC-SHA1 (RFC 2104): the round function of the FFX construction of
 * pyffx, which the key-transform lock's `ffx` method reproduces. Not for anything new: SHA-1
 * is there because the published scheme uses it. A leaf. */
#ifndef NNL_SHA1_H
#define NNL_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define NNL_SHA1_BYTES 20

void nnl_sha1(const uint8_t *data, size_t n, uint8_t out[NNL_SHA1_BYTES]);
/* HMAC-SHA1 of the concatenation of msg1 and msg2 (either may be empty). */
void nnl_hmac_sha1(const uint8_t *key, size_t keylen, const uint8_t *msg1, size_t n1, const uint8_t *msg2,
                   size_t n2, uint8_t out[NNL_SHA1_BYTES]);

#endif
