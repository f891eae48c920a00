/*
 * Format-preserving encryption of short digit strings, for the `ffx` method of the
 * key-transform lock: each turns a 3-digit decimal number into another (a permutation of
 * 000..999), from which the lock takes a 256-entry lookup table for 8-bit pixel values.
 *
 *  - pyffx (ffx.c): the construction of the Python package pyffx that the authors of the
 *    scheme use (Maung Maung & Kiya; fugokidi/block_transform): an unbalanced Feistel
 *    network, HMAC-SHA1 round function, 10 rounds. docs/key-transform.md defines it exactly.
 *  - FF1 (ff1.c): NIST SP 800-38G FF1 with AES-128 (or AES-256).
 *
 * Numerals are 0..radix-1, one per byte, most significant first.
 */
#ifndef NNL_FPE_H
#define NNL_FPE_H

#include <stddef.h>
#include <stdint.h>

/* pyffx: out = encryption of in (n numerals of radix 2..36, 1 <= n <= 64), rounds rounds. */
int nnl_pyffx_encrypt(const uint8_t *key, size_t keylen, int rounds, int radix, const uint8_t *in, int n, uint8_t *out);
int nnl_pyffx_decrypt(const uint8_t *key, size_t keylen, int rounds, int radix, const uint8_t *in, int n, uint8_t *out);

/* FF1: radix 2..36, 2 <= n, radix^ceil(n/2) < 2^56 (enough for the NIST samples and far more
 * than 3 digits); tweak of tlen bytes (may be empty). NNL_ERR_ARG outside those limits. */
int nnl_ff1_encrypt(const uint8_t *key, size_t keylen, const uint8_t *tweak, size_t tlen, int radix, const uint8_t *in,
                    int n, uint8_t *out);
int nnl_ff1_decrypt(const uint8_t *key, size_t keylen, const uint8_t *tweak, size_t tlen, int radix, const uint8_t *in,
                    int n, uint8_t *out);

#endif
