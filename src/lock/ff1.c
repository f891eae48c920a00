/*
 * FF1 (NIST SP 800-38G, section 5.1, Algorithms 7 and 8) with AES as CIPH, from the
 * standard. Numbers of up to 56 bits (radix^ceil(n/2) < 2^56), which covers the standard's
 * samples and the 3-digit tables of the key-transform lock; SP 800-38G Rev. 1 asks for a
 * domain of at least a million values, which 3 decimal digits (1000) are not: the lock uses
 * FF1 as the published scheme uses FFX, as a keyed permutation of 1000 values.
 */
#include "fpe.h"
#include "aes.h"
#include "../core/core.h"

#include <sodium.h>
#include <string.h>

#define MAXN 64

/* radix^m, or 0 when it is 2^56 or more. */
static uint64_t power(int radix, int m) {
    uint64_t p = 1;
    for (int i = 0; i < m; i++) {
        if (p > ((uint64_t)1 << 56) / (uint64_t)radix) return 0;
        p *= (uint64_t)radix;
    }
    return p < ((uint64_t)1 << 56) ? p : 0;
}

static uint64_t num(const uint8_t *x, int n, int radix) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v * (uint64_t)radix + x[i];
    return v;
}

static void str(uint64_t v, int radix, int m, uint8_t *out) {
    for (int i = m - 1; i >= 0; i--) { out[i] = (uint8_t)(v % (uint64_t)radix); v /= (uint64_t)radix; }
}

/* bits needed for radix^v - 1 = ceil(v log2 radix), exactly. */
static int bits_for(uint64_t radix_pow_v) {
    int b = 0;
    for (uint64_t x = radix_pow_v - 1; x; x >>= 1) b++;
    return b;
}

static int ff1(const uint8_t *key, size_t keylen, const uint8_t *T, size_t t, int radix, const uint8_t *in, int n,
               uint8_t *out, int decrypt) {
    if (radix < 2 || radix > 36) return nnl_fail(NNL_ERR_ARG, "FF1: radix %d outside 2..36", radix);
    if (n < 2 || n > MAXN) return nnl_fail(NNL_ERR_ARG, "FF1: %d numerals outside 2..%d", n, MAXN);
    if (t > 1024) return nnl_fail(NNL_ERR_ARG, "FF1: tweak of %zu bytes (at most 1024 here)", t);
    for (int i = 0; i < n; i++)
        if (in[i] >= radix) return nnl_fail(NNL_ERR_ARG, "FF1: numeral %d is not below the radix %d", in[i], radix);
    int u = n / 2, v = n - u;
    uint64_t pu = power(radix, u), pv = power(radix, v);
    if (!pu || !pv) return nnl_fail(NNL_ERR_ARG, "FF1: %d numerals of radix %d are more than this implementation takes", n, radix);
    nnl_aes aes;
    int st = nnl_aes_init(&aes, key, keylen);
    if (st) return st;
    int b = (bits_for(pv) + 7) / 8;        /* step 3 */
    int d = 4 * ((b + 3) / 4) + 4;         /* step 4 */
    uint8_t P[16] = {1, 2, 1, (uint8_t)(radix >> 16), (uint8_t)(radix >> 8), (uint8_t)radix, 10, (uint8_t)(u % 256),
                     (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n,
                     (uint8_t)(t >> 24), (uint8_t)(t >> 16), (uint8_t)(t >> 8), (uint8_t)t};
    uint8_t A[MAXN], B[MAXN], C[MAXN];
    memcpy(A, in, (size_t)u);
    memcpy(B, in + u, (size_t)v);
    int la = u, lb = v;
    uint64_t pa = pu, pb = pv;
    int pad = (int)((16 - ((t + (size_t)b + 1) % 16)) % 16);
    size_t qlen = t + (size_t)pad + 1 + (size_t)b;
    uint8_t Q[1024 + 32 + 16];
    for (int r = 0; r < 10; r++) {
        int i = decrypt ? 9 - r : r;
        /* Encryption feeds B and changes A; decryption feeds A and changes B (Algorithm 8). */
        const uint8_t *feed = decrypt ? A : B;
        int nfeed = decrypt ? la : lb;
        if (t) memcpy(Q, T, t); /* an empty tweak may be NULL */
        memset(Q + t, 0, (size_t)pad);
        Q[t + (size_t)pad] = (uint8_t)i;
        uint64_t x = num(feed, nfeed, radix);
        for (int k = 0; k < b; k++) Q[qlen - 1 - (size_t)k] = k < 8 ? (uint8_t)(x >> (8 * k)) : 0;
        /* R = PRF(P || Q): CBC-MAC with a zero IV. */
        uint8_t R[16];
        nnl_aes_encrypt(&aes, P, R);
        for (size_t off = 0; off < qlen; off += 16) {
            for (int k = 0; k < 16; k++) R[k] ^= Q[off + (size_t)k];
            nnl_aes_encrypt(&aes, R, R);
        }
        /* S: the first d bytes of R || CIPH(R xor [1]) || CIPH(R xor [2]) ... */
        uint8_t S[32 + 16];
        memcpy(S, R, 16);
        for (int j = 1; 16 * j < d; j++) {
            uint8_t blk[16];
            memcpy(blk, R, 16);
            for (int k = 0; k < 4; k++) blk[15 - k] ^= (uint8_t)((unsigned)j >> (8 * k));
            nnl_aes_encrypt(&aes, blk, S + 16 * j);
        }
        /* The halves alternate in length: encryption changes A, of length m = u in even
         * rounds and v in odd ones; decryption changes B likewise. la and lb follow them. */
        int m = decrypt ? lb : la;
        uint64_t mod = decrypt ? pb : pa;
        /* y mod radix^m, byte by byte (y itself has d bytes, up to 20). */
        unsigned __int128 y = 0;
        for (int k = 0; k < d; k++) y = (y * 256 + S[k]) % mod;
        uint64_t c;
        if (!decrypt) {
            c = (uint64_t)((num(A, la, radix) + (unsigned __int128)y) % mod);
            str(c, radix, m, C);
            memcpy(A, B, (size_t)lb);
            memcpy(B, C, (size_t)m);
        } else {
            c = (uint64_t)((num(B, lb, radix) + (unsigned __int128)mod - y) % mod);
            str(c, radix, m, C);
            memcpy(B, A, (size_t)la);
            memcpy(A, C, (size_t)m);
        }
        int tl = la; la = lb; lb = tl;
        uint64_t tp = pa; pa = pb; pb = tp;
        sodium_memzero(R, sizeof R);
        sodium_memzero(S, sizeof S);
    }
    memcpy(out, A, (size_t)la);
    memcpy(out + la, B, (size_t)lb);
    nnl_aes_wipe(&aes);
    return NNL_OK;
}

int nnl_ff1_encrypt(const uint8_t *key, size_t keylen, const uint8_t *tweak, size_t tlen, int radix, const uint8_t *in,
                    int n, uint8_t *out) {
    return ff1(key, keylen, tweak, tlen, radix, in, n, out, 0);
}

int nnl_ff1_decrypt(const uint8_t *key, size_t keylen, const uint8_t *tweak, size_t tlen, int radix, const uint8_t *in,
                    int n, uint8_t *out) {
    return ff1(key, keylen, tweak, tlen, radix, in, n, out, 1);
}
