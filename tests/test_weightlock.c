/* Deep-Lock crypto core: AES tables and key schedule against FIPS-197, lock/unlock,
 * our own known-answer vectors (so the format cannot drift), keys and key files. */
#include "lock/weightlock.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static uint8_t gmul(uint8_t a, uint8_t b) {
    uint8_t r = 0;
    while (b) {
        if (b & 1) r ^= a;
        a = (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1b : 0));
        b >>= 1;
    }
    return r;
}

/* The S-box from its definition (FIPS-197 5.1.1): multiplicative inverse, then the affine map. */
static uint8_t sbox_from_definition(uint8_t x) {
    uint8_t inv = 0;
    for (int b = 1; b < 256 && x; b++)
        if (gmul(x, (uint8_t)b) == 1) { inv = (uint8_t)b; break; }
    uint8_t r = 0;
    for (int i = 0; i < 8; i++) {
        int bit = ((inv >> i) ^ (inv >> ((i + 4) % 8)) ^ (inv >> ((i + 5) % 8)) ^
                   (inv >> ((i + 6) % 8)) ^ (inv >> ((i + 7) % 8)) ^ (0x63 >> i)) & 1;
        r |= (uint8_t)(bit << i);
    }
    return r;
}

/* Byte-level reference of the lock, written from the spec, independent of the library's paths. */
static void ref_lock(uint8_t *b, size_t n, const uint32_t *w) {
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 4; j++)
            b[4 * i + j] = nnl_aes_sbox[b[4 * i + j] ^ (uint8_t)(w[i] >> (24 - 8 * j))];
}

static void from_bits(float *f, const uint32_t *bits, size_t n) { memcpy(f, bits, n * 4); }

static void hex_of(const void *p, size_t n, char *out) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* Random float bit patterns, salted with NaN, Inf, zeros, denormals and extremes. */
static void fill_random(float *f, size_t n, uint64_t seed) {
    static const uint32_t special[] = {
        0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fbfffffu, 0x7f800000u, 0xff800000u,
        0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0xff7fffffu};
    nnl_rng r = {seed};
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)nnl_rng_next(&r);
        if (i % 7 == 3) u = special[(i / 7) % (sizeof special / sizeof *special)];
        memcpy(f + i, &u, 4);
    }
}

static const uint8_t KEY128[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                   0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
static const uint8_t KEY256[32] = {0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
                                   0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
                                   0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};

/* FIPS-197 Appendix A.1: expansion of the AES-128 cipher key, w[0..43]. */
static const uint32_t FIPS_A1[44] = {
    0x2b7e1516, 0x28aed2a6, 0xabf71588, 0x09cf4f3c, 0xa0fafe17, 0x88542cb1, 0x23a33939, 0x2a6c7605,
    0xf2c295f2, 0x7a96b943, 0x5935807a, 0x7359f67f, 0x3d80477d, 0x4716fe3e, 0x1e237e44, 0x6d7a883b,
    0xef44a541, 0xa8525b7f, 0xb671253b, 0xdb0bad00, 0xd4d1c6f8, 0x7c839d87, 0xcaf2b8bc, 0x11f915bc,
    0x6d88a37a, 0x110b3efd, 0xdbf98641, 0xca0093fd, 0x4e54f70e, 0x5f5fc9f3, 0x84a64fb2, 0x4ea6dc4f,
    0xead27321, 0xb58dbad2, 0x312bf560, 0x7f8d292f, 0xac7766f3, 0x19fadc21, 0x28d12941, 0x575c006e,
    0xd014f9a8, 0xc9ee2589, 0xe13f0cc8, 0xb6630ca6};

/* FIPS-197 Appendix A.3: expansion of the AES-256 cipher key, w[0..59]. */
static const uint32_t FIPS_A3[60] = {
    0x603deb10, 0x15ca71be, 0x2b73aef0, 0x857d7781, 0x1f352c07, 0x3b6108d7, 0x2d9810a3, 0x0914dff4,
    0x9ba35411, 0x8e6925af, 0xa51a8b5f, 0x2067fcde, 0xa8b09c1a, 0x93d194cd, 0xbe49846e, 0xb75d5b9a,
    0xd59aecb8, 0x5bf3c917, 0xfee94248, 0xde8ebe96, 0xb5a9328a, 0x2678a647, 0x98312229, 0x2f6c79b3,
    0x812c81ad, 0xdadf48ba, 0x24360af2, 0xfab8b464, 0x98c5bfc9, 0xbebd198e, 0x268c3ba7, 0x09e04214,
    0x68007bac, 0xb2df3316, 0x96e939e4, 0x6c518d80, 0xc814e204, 0x76a9fb8a, 0x5025c02d, 0x59c58239,
    0xde136967, 0x6ccc5a71, 0xfa256395, 0x9674ee15, 0x5886ca5d, 0x2e2f31d7, 0x7e0af1fa, 0x27cf73c3,
    0x749c47ab, 0x18501dda, 0xe2757e4f, 0x7401905a, 0xcafaaae3, 0xe4d59b34, 0x9adf6ace, 0xbd10190d,
    0xfe4890d1, 0xe6188d0b, 0x046df344, 0x706c631e};

/* ---------------------------------------------------------------- AES */

static void test_sbox(void) {
    int bad = 0, bad_def = 0;
    for (int x = 0; x < 256; x++) {
        if (nnl_aes_inv_sbox[nnl_aes_sbox[x]] != x || nnl_aes_sbox[nnl_aes_inv_sbox[x]] != x) bad++;
        if (nnl_aes_sbox[x] != sbox_from_definition((uint8_t)x)) bad_def++;
    }
    CHECK_MSG(bad == 0, "%d entries where InvSbox(Sbox(x)) != x", bad);
    CHECK_MSG(bad_def == 0, "%d S-box entries differ from GF(2^8) inverse + affine map", bad_def);
    /* FIPS-197 figure 7 and the worked example S-box(53) = ed. */
    CHECK(nnl_aes_sbox[0x00] == 0x63);
    CHECK(nnl_aes_sbox[0x01] == 0x7c);
    CHECK(nnl_aes_sbox[0x10] == 0xca);
    CHECK(nnl_aes_sbox[0x53] == 0xed);
    CHECK(nnl_aes_sbox[0x9a] == 0xb8);
    CHECK(nnl_aes_sbox[0xff] == 0x16);
    CHECK(nnl_aes_inv_sbox[0x00] == 0x52);
    CHECK(nnl_aes_inv_sbox[0xed] == 0x53);
}

static void check_fips(const uint8_t *key, size_t len, const uint32_t *want, size_t n, const char *name) {
    uint32_t w[64];
    CHECK(nnl_aes_expand_key(key, len, w, n) == NNL_OK);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(w[i] == want[i], "%s: expand_key w[%zu] = %08x, FIPS-197 says %08x", name, i, w[i], want[i]);
    /* The streaming generator, one word at a time and in uneven pieces. */
    nnl_wl_sched s;
    CHECK(nnl_wl_sched_init(&s, key, len) == NNL_OK);
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        nnl_wl_sched_words(&s, &x, 1);
        CHECK_MSG(x == want[i], "%s: generator w[%zu] = %08x, FIPS-197 says %08x", name, i, x, want[i]);
    }
    nnl_wl_sched_init(&s, key, len);
    memset(w, 0, sizeof w);
    size_t at = 0, step = 1;
    while (at < n) {
        size_t c = step < n - at ? step : n - at;
        nnl_wl_sched_words(&s, w + at, c);
        at += c; step = step * 2 + 1;
    }
    CHECK_MSG(memcmp(w, want, n * 4) == 0, "%s: generator in pieces differs from FIPS-197", name);
    nnl_wl_sched_wipe(&s);
}

static void test_key_expansion(void) {
    check_fips(KEY128, 16, FIPS_A1, 44, "AES-128 (A.1)");
    check_fips(KEY256, 32, FIPS_A3, 60, "AES-256 (A.3)");
    CHECK(FIPS_A1[43] == 0xb6630ca6 && FIPS_A3[59] == 0x706c631e);

    uint32_t w[4];
    CHECK(nnl_aes_expand_key(KEY128, 24, w, 4) == NNL_ERR_KEY);
    nnl_wl_sched s;
    CHECK(nnl_wl_sched_init(&s, KEY128, 15) == NNL_ERR_KEY);
    fprintf(stderr, "  refused 15-byte key: %s\n", nnl_errmsg());
    /* A schedule whose init failed must refuse to lock, not lock with no key. */
    float f[3] = {1, 2, 3}, g[3] = {1, 2, 3};
    CHECK(nnl_wl_lock_stream(&s, f, 3) == NNL_ERR_ARG && memcmp(f, g, sizeof f) == 0);
    CHECK(nnl_wl_sched_seek(&s, 5) == NNL_ERR_ARG && nnl_wl_sched_words(&s, w, 1) == NNL_ERR_ARG);

    /*
     * Past the standard rounds: words from an independent Python implementation (S-box
     * computed from GF(2^8), Rcon doubled by xtime) pin the continuation.
     */
    static const uint8_t K0_31[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    struct { const uint8_t *key; size_t len; uint32_t w44[8], w60[4], w1000, w65535, w199999; } ext[] = {
        {KEY128, 16,
         {0x47eadde6u, 0x8e04f86fu, 0x6f3bf4a7u, 0xd958f801u, 0xf5aba1d3u, 0x7baf59bcu, 0x1494ad1bu, 0xcdcc551au},
         {0xe96f1368u, 0x3ffa2c7du, 0x9303e4a1u, 0x885a8eaeu}, 0x85a14de0u, 0xecd5d40fu, 0x818fca33u},
        {K0_31, 32,
         {0xf01afafeu, 0xe7a82979u, 0xd7a5644au, 0xb3afe640u, 0x2541fe71u, 0x9bf50025u, 0x8813bbd5u, 0x5a721c0au},
         {0x721f7b9cu, 0xdbed347cu, 0xa5ba1fd6u, 0x6842d23cu}, 0xb6e79020u, 0xed64d8c9u, 0xdb76bd5au},
    };
    const size_t N = 200000;
    uint32_t *a = malloc(N * 4), *b = malloc(N * 4);
    for (int e = 0; e < 2; e++) {
        CHECK(nnl_aes_expand_key(ext[e].key, ext[e].len, a, N) == NNL_OK);
        CHECK(memcmp(a + 44, ext[e].w44, sizeof ext[e].w44) == 0);
        CHECK(memcmp(a + 60, ext[e].w60, sizeof ext[e].w60) == 0);
        CHECK_MSG(a[1000] == ext[e].w1000, "key %d: w[1000] = %08x", e, a[1000]);
        CHECK_MSG(a[65535] == ext[e].w65535, "key %d: w[65535] = %08x", e, a[65535]);
        CHECK_MSG(a[199999] == ext[e].w199999, "key %d: w[199999] = %08x", e, a[199999]);
        /* The grouped generator agrees with the textbook loop everywhere, in any chunking. */
        nnl_wl_sched_init(&s, ext[e].key, ext[e].len);
        nnl_rng r = {77 + (uint64_t)e};
        size_t at = 0;
        while (at < N) {
            size_t c = 1 + nnl_rng_below(&r, 3000);
            if (c > N - at) c = N - at;
            nnl_wl_sched_words(&s, b + at, c);
            at += c;
        }
        CHECK_MSG(memcmp(a, b, N * 4) == 0, "key %d: generator differs from nnl_aes_expand_key", e);
        /* Seeking forward, backward and to group boundaries. */
        static const uint64_t idx[] = {0, 1, 3, 4, 5, 7, 8, 9, 123457, 17, 16, 199998, 44, 43, 60, 59, 100000};
        int bad = 0;
        for (size_t t = 0; t < sizeof idx / sizeof *idx; t++) {
            uint32_t got[2];
            nnl_wl_sched_seek(&s, idx[t]);
            CHECK(s.next == idx[t]);
            nnl_wl_sched_words(&s, got, 2);
            if (got[0] != a[idx[t]] || got[1] != a[idx[t] + 1]) bad++;
        }
        CHECK_MSG(bad == 0, "key %d: %d seeks landed on the wrong word", e, bad);
        nnl_wl_sched_wipe(&s);
    }
    free(a); free(b);
}

/* ---------------------------------------------------------------- locking */

/* Our own known-answer vectors: a change of key schedule, mapping or byte order breaks them. */
static void test_known_answer(void) {
    static const uint32_t plain[8] = {0x00000000u, 0x3f800000u /* 1 */, 0xc0200000u /* -2.5 */,
                                      0x3dcccccdu /* 0.1f */, 0x40490fdbu /* pi */, 0xba83126fu /* -1e-3 */,
                                      0x477fe000u /* 65504 */, 0x000116c2u /* 1e-40, denormal */};
    static const uint32_t special[8] = {0x7fc00000u, 0xff800000u, 0x7f800001u, 0x00000001u,
                                        0x80000000u, 0x7f7fffffu, 0x3f800000u, 0xdeadbeefu};
    static const uint8_t K0_31[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    struct { const uint8_t *key; size_t len; const char *at0, *at1000; } v[] = {
        {K0_31, 32, "637c777bf26b44073001e51f787825231f7239ed21c52a95ad994d4a1d2bc0c0",
         "4e9453cf4bbe8d571ad0bd1abac625e297ff5b0a9a1f291c280fd6a21ebcc85b"},
        {KEY128, 16, "f1f3594734e400ee626896521c7bec7c21e6a95b945a792b261a5af39bdaf56b",
         "97325ddbe5a0ee7eba7e5cf3bf122c8b955db444bc96e0fe5a09bce34ac6f0aa"},
    };
    for (int scalar = 0; scalar < 2; scalar++) {
        nnl_wl_force_scalar(scalar);
        for (int e = 0; e < 2; e++) {
            float f[8];
            char hex[65];
            nnl_wl_sched s;
            nnl_wl_sched_init(&s, v[e].key, v[e].len);
            from_bits(f, plain, 8);
            nnl_wl_lock_stream(&s, f, 8);
            hex_of(f, 32, hex);
            CHECK_MSG(strcmp(hex, v[e].at0) == 0, "%s key %d at 0: %s", nnl_wl_impl(), e, hex);
            nnl_wl_sched_seek(&s, 0);
            nnl_wl_unlock_stream(&s, f, 8);
            CHECK(memcmp(f, plain, 32) == 0);

            nnl_wl_sched_seek(&s, 1000);
            from_bits(f, special, 8);
            nnl_wl_lock_stream(&s, f, 8);
            hex_of(f, 32, hex);
            CHECK_MSG(strcmp(hex, v[e].at1000) == 0, "%s key %d at 1000: %s", nnl_wl_impl(), e, hex);
            nnl_wl_sched_wipe(&s);
        }
    }
    nnl_wl_force_scalar(0);
}

static void test_roundtrip(void) {
    static const size_t sizes[] = {0, 1, 3, 15, 16, 17, 31, 33, 255, 1000, 4097, 100003};
    const size_t maxn = 100003 + 3;
    float *orig = malloc(maxn * 4), *buf = malloc(maxn * 4);
    uint8_t *ref = malloc(maxn * 4);
    uint32_t *w = malloc(maxn * 4);
    const uint8_t *keys[2] = {KEY128, KEY256};
    int fails = 0, ref_fails = 0, unchanged = 0;
    for (int scalar = 0; scalar < 2; scalar++) {
        nnl_wl_force_scalar(scalar);
        for (int k = 0; k < 2; k++) {
            nnl_aes_expand_key(keys[k], k ? 32 : 16, w, maxn);
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                for (size_t off = 0; off < 3; off += 2) { /* also an unaligned start */
                    size_t n = sizes[si];
                    float *p = buf + off;
                    fill_random(orig, n, 1000 * si + 10 * (uint64_t)k + off);
                    memcpy(p, orig, n * 4);
                    memcpy(ref, orig, n * 4);
                    ref_lock(ref, n, w + off);
                    nnl_wl_lock(p, n, w + off);
                    if (memcmp(p, ref, n * 4) != 0) ref_fails++;
                    size_t same = 0;
                    for (size_t i = 0; i < n; i++) same += memcmp(p + i, orig + i, 4) == 0;
                    if (n >= 100 && same > n / 100) unchanged++;
                    nnl_wl_unlock(p, n, w + off);
                    if (memcmp(p, orig, n * 4) != 0) fails++;
                }
            }
        }
    }
    nnl_wl_force_scalar(0);
    CHECK_MSG(ref_fails == 0, "%d lock results differ from the byte-level reference", ref_fails);
    CHECK_MSG(fails == 0, "%d lock -> unlock round trips changed bytes", fails);
    CHECK_MSG(unchanged == 0, "%d buffers kept too many parameters unchanged", unchanged);
    fprintf(stderr, "  paths on this CPU: %s\n", nnl_wl_impl());
    free(orig); free(buf); free(ref); free(w);
}

/* Locking tensors one after another with one generator = one pass over the concatenation. */
static void test_streaming(void) {
    const size_t na = 1237, nb = 4099, n = na + nb;
    float *whole = malloc(n * 4), *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(n * 4);
    uint32_t *w = malloc(n * 4);
    fill_random(whole, n, 5);
    memcpy(a, whole, na * 4);
    memcpy(b, whole + na, nb * 4);
    memcpy(c, whole, n * 4);
    nnl_wl_sched s;
    nnl_wl_sched_init(&s, KEY256, 32);
    nnl_wl_lock_stream(&s, whole, n);
    nnl_wl_sched_seek(&s, 0);
    nnl_wl_lock_stream(&s, a, na);
    nnl_wl_lock_stream(&s, b, nb);
    CHECK(s.next == n);
    CHECK(memcmp(a, whole, na * 4) == 0 && memcmp(b, whole + na, nb * 4) == 0);
    /* Explicit words with a start index give the same. */
    nnl_aes_expand_key(KEY256, 32, w, n);
    nnl_wl_lock(c, na, w);
    nnl_wl_lock(c + na, nb, w + na);
    CHECK(memcmp(c, whole, n * 4) == 0);
    /* Unlocking the second tensor alone, by seeking to its first parameter. */
    nnl_wl_sched_seek(&s, na);
    nnl_wl_unlock_stream(&s, b, nb);
    nnl_wl_unlock(c, n, w);
    CHECK(memcmp(b, c + na, nb * 4) == 0);
    nnl_wl_sched_wipe(&s);
    free(whole); free(a); free(b); free(c); free(w);
}

/* ---------------------------------------------------------------- keys */

static void test_wrong_key(void) {
    const size_t n = 10000;
    float *orig = malloc(n * 4), *p = malloc(n * 4);
    for (size_t i = 0; i < n; i++) orig[i] = (float)sin((double)i) * 0.1f;
    for (int len = 16; len <= 32; len += 16) {
        uint8_t key[32], bad[32];
        memcpy(key, len == 16 ? KEY128 : KEY256, (size_t)len);
        char right_cv[NNL_WL_CHECK_HEX], wrong_cv[NNL_WL_CHECK_HEX];
        CHECK(nnl_wl_key_check(key, (size_t)len, right_cv) == NNL_OK);
        CHECK(strlen(right_cv) == 16);
        CHECK(nnl_wl_key_verify(key, (size_t)len, right_cv) == NNL_OK);
        for (int bit = 0; bit < len * 8; bit += 37) {
            memcpy(bad, key, (size_t)len);
            bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            nnl_wl_sched s;
            memcpy(p, orig, n * 4);
            nnl_wl_sched_init(&s, key, (size_t)len);
            nnl_wl_lock_stream(&s, p, n);
            nnl_wl_sched_init(&s, bad, (size_t)len);
            nnl_wl_unlock_stream(&s, p, n);
            nnl_wl_sched_wipe(&s);
            size_t same = 0;
            for (size_t i = 0; i < n; i++) same += memcmp(p + i, orig + i, 4) == 0;
            /* A one-bit change reaches every later round-key word through the schedule; only the
             * first words (before the first SubWord) can match by construction. */
            CHECK_MSG(same < n / 100, "AES-%d bit %d: %zu of %zu parameters decoded right", len * 8, bit, same, n);
            CHECK(nnl_wl_key_check(bad, (size_t)len, wrong_cv) == NNL_OK);
            CHECK_MSG(strcmp(right_cv, wrong_cv) != 0, "bit %d: check value unchanged", bit);
            CHECK(nnl_wl_key_verify(bad, (size_t)len, right_cv) == NNL_ERR_KEY);
        }
        fprintf(stderr, "  AES-%d one-bit-off key: %s\n", len * 8, nnl_errmsg());
    }
    /* Known check values, from Python's hashlib.blake2b(context, key=key, digest_size=32)[:8]. */
    static const uint8_t K0_31[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                      16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    char cv[NNL_WL_CHECK_HEX];
    CHECK(nnl_wl_key_check(K0_31, 32, cv) == NNL_OK && strcmp(cv, "5f8976d73d7fff42") == 0);
    CHECK(nnl_wl_key_check(KEY128, 16, cv) == NNL_OK && strcmp(cv, "0c76d03e9736fb2d") == 0);
    CHECK(nnl_wl_key_verify(K0_31, 32, "5F8976D73D7FFF42") == NNL_OK);
    CHECK(nnl_wl_key_verify(K0_31, 32, "5f8976d73d7fff4") == NNL_ERR_FORMAT);
    fprintf(stderr, "  short check value: %s\n", nnl_errmsg());
    CHECK(nnl_wl_key_verify(K0_31, 32, "5f8976d73d7fff4g") == NNL_ERR_FORMAT);
    fprintf(stderr, "  non-hex check value: %s\n", nnl_errmsg());
    CHECK(nnl_wl_key_check(K0_31, 20, cv) == NNL_ERR_KEY);
    free(orig); free(p);
}

static void write_text(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fwrite(text, 1, len, f);
    fclose(f);
}

static void test_key_files(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/weights.key", nnl_test_tmpdir());
    uint8_t key[32], back[32];
    size_t len = 0;

    /* Generated key -> file -> key, mode 0600. */
    CHECK(nnl_wl_key_generate(key) == NNL_OK);
    uint8_t zero[32] = {0};
    CHECK(memcmp(key, zero, 32) != 0);
    CHECK(nnl_wl_key_write(path, key, 32) == NNL_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(st.st_size == 65);
    CHECK(nnl_wl_key_read(path, back, &len) == NNL_OK && len == 32 && memcmp(key, back, 32) == 0);
    CHECK(nnl_wl_key_write(path, KEY128, 16) == NNL_OK);
    CHECK(nnl_wl_key_read(path, back, &len) == NNL_OK && len == 16 && memcmp(KEY128, back, 16) == 0);
    CHECK(nnl_wl_key_write(path, KEY128, 15) == NNL_ERR_KEY);
    uint8_t key2[32];
    CHECK(nnl_wl_key_generate(key2) == NNL_OK && memcmp(key, key2, 32) != 0);

    /* Good files. */
    struct { const char *text; size_t len; } good[] = {
        {"2b7e151628aed2a6abf7158809cf4f3c\n", 16},
        {"2B7E151628AED2A6ABF7158809CF4F3C", 16},
        {"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4\n", 32},
        {"603DEB1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914DFF4", 32},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        write_text(path, good[i].text, strlen(good[i].text));
        int s = nnl_wl_key_read(path, back, &len);
        CHECK_MSG(s == NNL_OK && len == good[i].len, "good key file %zu refused: %s", i, nnl_errmsg());
        CHECK(memcmp(back, good[i].len == 16 ? KEY128 : KEY256, good[i].len) == 0);
    }

    /* Bad files: each refused with NNL_ERR_KEY and a message that says why. */
    struct { const char *what, *text, *must; } badf[] = {
        {"63 digits", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff\n", "found 63"},
        {"65 digits", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff44", "found 65"},
        {"33 digits", "2b7e151628aed2a6abf7158809cf4f3c0\n", "found 33"},
        {"non-hex", "2b7e151628aed2a6abf7158809cf4g3c\n", "column 30"},
        {"0x prefix", "0x2b7e151628aed2a6abf7158809cf4f3c\n", "column 2"},
        {"spaces", "2b7e1516 28aed2a6 abf71588 09cf4f3c\n", "column 9"},
        {"CRLF", "2b7e151628aed2a6abf7158809cf4f3c\r\n", "carriage return"},
        {"empty", "", "empty"},
        {"only newline", "\n", "empty"},
        {"extra line", "2b7e151628aed2a6abf7158809cf4f3c\n2b7e151628aed2a6abf7158809cf4f3c\n", "after the first line"},
        {"blank second line", "2b7e151628aed2a6abf7158809cf4f3c\n\n", "after the first line"},
    };
    for (size_t i = 0; i < sizeof badf / sizeof *badf; i++) {
        write_text(path, badf[i].text, strlen(badf[i].text));
        int s = nnl_wl_key_read(path, back, &len);
        CHECK_MSG(s == NNL_ERR_KEY, "%s: status %d", badf[i].what, s);
        CHECK_MSG(strstr(nnl_errmsg(), badf[i].must) != NULL, "%s: message lacks \"%s\": %s",
                  badf[i].what, badf[i].must, nnl_errmsg());
        CHECK(strstr(nnl_errmsg(), path) != NULL);
        CHECK(len == 0);
        fprintf(stderr, "  %-17s -> %s\n", badf[i].what, nnl_errmsg());
    }
    /* A NUL byte and a huge file. */
    write_text(path, "2b7e1516\0" "8aed2a6abf7158809cf4f3c\n", 33);
    CHECK(nnl_wl_key_read(path, back, &len) == NNL_ERR_KEY && strstr(nnl_errmsg(), "0x00"));
    fprintf(stderr, "  %-17s -> %s\n", "NUL byte", nnl_errmsg());
    char *big = malloc(NNL_WL_KEYFILE_MAX + 100);
    memset(big, 'a', NNL_WL_KEYFILE_MAX + 100);
    write_text(path, big, NNL_WL_KEYFILE_MAX + 100);
    free(big);
    CHECK(nnl_wl_key_read(path, back, &len) == NNL_ERR_KEY);
    fprintf(stderr, "  %-17s -> %s\n", "huge file", nnl_errmsg());
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such.key", nnl_test_tmpdir());
    CHECK(nnl_wl_key_read(missing, back, &len) == NNL_ERR_IO);
    fprintf(stderr, "  %-17s -> %s\n", "missing file", nnl_errmsg());
    remove(path);
    rmdir(nnl_test_tmpdir());
}

static void test_passphrase(void) {
    uint8_t salt[NNL_WL_SALT_BYTES], salt2[NNL_WL_SALT_BYTES], k1[32], k2[32], k3[32];
    for (int i = 0; i < NNL_WL_SALT_BYTES; i++) salt[i] = (uint8_t)(0xa0 + i);
    const char *pw = "correct horse battery staple";
    CHECK(nnl_wl_key_from_passphrase(pw, strlen(pw), salt, NNL_WL_PWHASH_OPSLIMIT, NNL_WL_PWHASH_MEMLIMIT, k1) == NNL_OK);
    CHECK(nnl_wl_key_from_passphrase(pw, strlen(pw), salt, NNL_WL_PWHASH_OPSLIMIT, NNL_WL_PWHASH_MEMLIMIT, k2) == NNL_OK);
    CHECK(memcmp(k1, k2, 32) == 0);
    /* Our own known answer (libsodium 1.0.18's Argon2id), so the stretching cannot drift. */
    char hex[65];
    hex_of(k1, 32, hex);
    CHECK_MSG(strcmp(hex, "26995e5466d39be7d873e16782c02b073c718664e4dab83edaa7ef6d93fbc61b") == 0, "passphrase key %s", hex);
    CHECK(nnl_wl_salt_generate(salt2) == NNL_OK && memcmp(salt, salt2, sizeof salt) != 0);
    CHECK(nnl_wl_key_from_passphrase(pw, strlen(pw), salt2, NNL_WL_PWHASH_OPSLIMIT, NNL_WL_PWHASH_MEMLIMIT, k3) == NNL_OK);
    CHECK(memcmp(k1, k3, 32) != 0);
    CHECK(nnl_wl_key_from_passphrase("correct horse battery stapla", strlen(pw), salt, NNL_WL_PWHASH_OPSLIMIT,
                                     NNL_WL_PWHASH_MEMLIMIT, k3) == NNL_OK);
    CHECK(memcmp(k1, k3, 32) != 0);
    CHECK(nnl_wl_key_from_passphrase("", 0, salt, NNL_WL_PWHASH_OPSLIMIT, NNL_WL_PWHASH_MEMLIMIT, k3) == NNL_ERR_ARG);
    CHECK(nnl_wl_key_from_passphrase(pw, strlen(pw), salt, 99, NNL_WL_PWHASH_MEMLIMIT, k3) == NNL_ERR_FORMAT);
    fprintf(stderr, "  hostile opslimit: %s\n", nnl_errmsg());
    CHECK(nnl_wl_key_from_passphrase(pw, strlen(pw), salt, 2, (size_t)1 << 40, k3) == NNL_ERR_FORMAT);
    fprintf(stderr, "  hostile memlimit: %s\n", nnl_errmsg());
}

int main(void) {
    test_sbox();
    for (int scalar = 0; scalar < 2; scalar++) { /* both key-schedule generators */
        nnl_wl_force_scalar(scalar);
        fprintf(stderr, "  key expansion with %s\n", nnl_wl_impl());
        test_key_expansion();
    }
    nnl_wl_force_scalar(0);
    test_known_answer();
    test_roundtrip();
    test_streaming();
    test_wrong_key();
    test_key_files();
    test_passphrase();
    return nnl_test_finish("test_weightlock");
}
