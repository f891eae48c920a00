/* SHA-1 (FIPS 180-4 section 6.1) and HMAC (RFC 2104), written from the standards. */
#include "sha1.h"

#include <string.h>

typedef struct sha1 {
    uint32_t h[5];
    uint64_t len;      /* bytes hashed so far */
    uint8_t buf[64];
    size_t fill;
} sha1;

static uint32_t rol(uint32_t x, int k) { return x << k | x >> (32 - k); }

static void block(sha1 *s, const uint8_t *p) {
    uint32_t w[80];
    for (int t = 0; t < 16; t++) w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 80; t++) w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) { f = (b & c) | (~b & d); k = 0x5a827999u; }
        else if (t < 40) { f = b ^ c ^ d; k = 0x6ed9eba1u; }
        else if (t < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdcu; }
        else { f = b ^ c ^ d; k = 0xca62c1d6u; }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d; d = c; c = rol(b, 30); b = a; a = tmp;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}

static void init(sha1 *s) {
    static const uint32_t h0[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->fill = 0;
}

static void update(sha1 *s, const uint8_t *p, size_t n) {
    s->len += n;
    while (n > 0) {
        size_t take = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take; p += take; n -= take;
        if (s->fill == 64) { block(s, s->buf); s->fill = 0; }
    }
}

static void final(sha1 *s, uint8_t out[NNL_SHA1_BYTES]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    update(s, &pad, 1);
    while (s->fill != 56) update(s, &zero, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    update(s, lenb, 8);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void nnl_sha1(const uint8_t *data, size_t n, uint8_t out[NNL_SHA1_BYTES]) {
    sha1 s;
    init(&s);
    update(&s, data, n);
    final(&s, out);
}

void nnl_hmac_sha1(const uint8_t *key, size_t keylen, const uint8_t *msg1, size_t n1, const uint8_t *msg2,
                   size_t n2, uint8_t out[NNL_SHA1_BYTES]) {
    uint8_t k[64] = {0}, pad[64], inner[NNL_SHA1_BYTES];
    if (keylen > 64) nnl_sha1(key, keylen, k);
    else if (keylen) memcpy(k, key, keylen);
    sha1 s;
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    init(&s);
    update(&s, pad, 64);
    if (n1) update(&s, msg1, n1);
    if (n2) update(&s, msg2, n2);
    final(&s, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    init(&s);
    update(&s, pad, 64);
    update(&s, inner, sizeof inner);
    final(&s, out);
}
