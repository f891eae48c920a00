/*
 * The FFX construction of pyffx (docs/key-transform.md, "ffx"), from its definition: the n
 * numerals split into a = the first floor(n/2) and b = the rest; each of the rounds sets
 * (a, b) = (b, a + F(i, b)), digit by digit mod radix, with as many digits of F as a has.
 * F(i, s) hashes the round number and the numerals of s, each a 4-byte little-endian
 * integer, followed by a 4-byte little-endian counter j, with HMAC-SHA1 under the key; the
 * 20-byte digest, read as one big-endian integer, gives floor(20 log_radix 256) digits,
 * least significant first. When more are needed the next message is the digest itself
 * followed by the counter j + 1.
 */
#include "fpe.h"
#include "sha1.h"
#include "../core/core.h"

#include <math.h>
#include <string.h>

#define MAXN 64

/* Digits of F(round, s) into f[0..want). */
static void round_digits(const uint8_t *key, size_t keylen, int radix, int round, const uint8_t *s, int ns, uint8_t *f,
                         int want) {
    uint8_t msg[4 * (MAXN + 1)];
    size_t mlen = 0;
    uint32_t vals[MAXN + 1];
    vals[0] = (uint32_t)round;
    for (int i = 0; i < ns; i++) vals[i + 1] = s[i];
    for (int i = 0; i <= ns; i++)
        for (int b = 0; b < 4; b++) msg[mlen++] = (uint8_t)(vals[i] >> (8 * b));
    int per_hash = (int)(NNL_SHA1_BYTES * (log(256.0) / log((double)radix)));
    uint8_t digest[NNL_SHA1_BYTES];
    int got = 0;
    for (uint32_t j = 0; got < want; j++) {
        uint8_t ctr[4] = {(uint8_t)j, (uint8_t)(j >> 8), (uint8_t)(j >> 16), (uint8_t)(j >> 24)};
        nnl_hmac_sha1(key, keylen, msg, mlen, ctr, 4, digest);
        /* Digits of the big-endian integer, least significant first: repeated division. */
        uint8_t d[NNL_SHA1_BYTES];
        memcpy(d, digest, sizeof d);
        for (int k = 0; k < per_hash && got < want; k++) {
            unsigned rem = 0;
            for (int b = 0; b < NNL_SHA1_BYTES; b++) {
                unsigned cur = rem << 8 | d[b];
                d[b] = (uint8_t)(cur / (unsigned)radix);
                rem = cur % (unsigned)radix;
            }
            f[got++] = (uint8_t)rem;
        }
        memcpy(msg, digest, sizeof digest);
        mlen = sizeof digest;
    }
}

static int check(int radix, int n, const uint8_t *in) {
    if (radix < 2 || radix > 36) return nnl_fail(NNL_ERR_ARG, "FFX: radix %d outside 2..36", radix);
    if (n < 1 || n > MAXN) return nnl_fail(NNL_ERR_ARG, "FFX: %d numerals outside 1..%d", n, MAXN);
    for (int i = 0; i < n; i++)
        if (in[i] >= radix) return nnl_fail(NNL_ERR_ARG, "FFX: numeral %d is not below the radix %d", in[i], radix);
    return NNL_OK;
}

int nnl_pyffx_encrypt(const uint8_t *key, size_t keylen, int rounds, int radix, const uint8_t *in, int n, uint8_t *out) {
    int st = check(radix, n, in);
    if (st) return st;
    uint8_t a[MAXN], b[MAXN], c[MAXN], f[MAXN];
    int na = n / 2, nb = n - na;
    memcpy(a, in, (size_t)na);
    memcpy(b, in + na, (size_t)nb);
    for (int i = 0; i < rounds; i++) {
        round_digits(key, keylen, radix, i, b, nb, f, na);
        for (int k = 0; k < na; k++) c[k] = (uint8_t)((a[k] + f[k]) % radix);
        memcpy(a, b, (size_t)nb);
        memcpy(b, c, (size_t)na);
        int t = na; na = nb; nb = t;
    }
    memcpy(out, a, (size_t)na);
    memcpy(out + na, b, (size_t)nb);
    return NNL_OK;
}

int nnl_pyffx_decrypt(const uint8_t *key, size_t keylen, int rounds, int radix, const uint8_t *in, int n, uint8_t *out) {
    int st = check(radix, n, in);
    if (st) return st;
    /* After an even number of rounds the halves have their first lengths again; after an
     * odd number they are swapped. */
    uint8_t a[MAXN], b[MAXN], c[MAXN], f[MAXN];
    int na = n / 2, nb = n - na;
    if (rounds % 2) { int t = na; na = nb; nb = t; }
    memcpy(a, in, (size_t)na);
    memcpy(b, in + na, (size_t)nb);
    for (int i = rounds - 1; i >= 0; i--) {
        /* forward: (a, b) -> (b, c) with c = a + F(i, b); so now b holds c, a holds the old b */
        round_digits(key, keylen, radix, i, a, na, f, nb);
        for (int k = 0; k < nb; k++) c[k] = (uint8_t)((b[k] + radix - f[k]) % radix);
        memcpy(b, a, (size_t)na);
        memcpy(a, c, (size_t)nb);
        int t = na; na = nb; nb = t;
    }
    memcpy(out, a, (size_t)na);
    memcpy(out + na, b, (size_t)nb);
    return NNL_OK;
}
