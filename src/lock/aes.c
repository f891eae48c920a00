/*
 * AES S-box tables and the AES-128 / AES-256 key expansion (FIPS-197 section 5.2),
 * continued indefinitely to give Deep-Lock one round-key word per model parameter.
 */
#include "weightlock.h"

#include <string.h>

/* FIPS-197 figure 7; tests/test_weightlock.c recomputes every entry from GF(2^8). */
const uint8_t nnl_aes_sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};
const uint8_t nnl_aes_inv_sbox[256] = {
    0x52, 0x09, 0x6a, 0xd5, 0x30, 0x36, 0xa5, 0x38, 0xbf, 0x40, 0xa3, 0x9e, 0x81, 0xf3, 0xd7, 0xfb,
    0x7c, 0xe3, 0x39, 0x82, 0x9b, 0x2f, 0xff, 0x87, 0x34, 0x8e, 0x43, 0x44, 0xc4, 0xde, 0xe9, 0xcb,
    0x54, 0x7b, 0x94, 0x32, 0xa6, 0xc2, 0x23, 0x3d, 0xee, 0x4c, 0x95, 0x0b, 0x42, 0xfa, 0xc3, 0x4e,
    0x08, 0x2e, 0xa1, 0x66, 0x28, 0xd9, 0x24, 0xb2, 0x76, 0x5b, 0xa2, 0x49, 0x6d, 0x8b, 0xd1, 0x25,
    0x72, 0xf8, 0xf6, 0x64, 0x86, 0x68, 0x98, 0x16, 0xd4, 0xa4, 0x5c, 0xcc, 0x5d, 0x65, 0xb6, 0x92,
    0x6c, 0x70, 0x48, 0x50, 0xfd, 0xed, 0xb9, 0xda, 0x5e, 0x15, 0x46, 0x57, 0xa7, 0x8d, 0x9d, 0x84,
    0x90, 0xd8, 0xab, 0x00, 0x8c, 0xbc, 0xd3, 0x0a, 0xf7, 0xe4, 0x58, 0x05, 0xb8, 0xb3, 0x45, 0x06,
    0xd0, 0x2c, 0x1e, 0x8f, 0xca, 0x3f, 0x0f, 0x02, 0xc1, 0xaf, 0xbd, 0x03, 0x01, 0x13, 0x8a, 0x6b,
    0x3a, 0x91, 0x11, 0x41, 0x4f, 0x67, 0xdc, 0xea, 0x97, 0xf2, 0xcf, 0xce, 0xf0, 0xb4, 0xe6, 0x73,
    0x96, 0xac, 0x74, 0x22, 0xe7, 0xad, 0x35, 0x85, 0xe2, 0xf9, 0x37, 0xe8, 0x1c, 0x75, 0xdf, 0x6e,
    0x47, 0xf1, 0x1a, 0x71, 0x1d, 0x29, 0xc5, 0x89, 0x6f, 0xb7, 0x62, 0x0e, 0xaa, 0x18, 0xbe, 0x1b,
    0xfc, 0x56, 0x3e, 0x4b, 0xc6, 0xd2, 0x79, 0x20, 0x9a, 0xdb, 0xc0, 0xfe, 0x78, 0xcd, 0x5a, 0xf4,
    0x1f, 0xdd, 0xa8, 0x33, 0x88, 0x07, 0xc7, 0x31, 0xb1, 0x12, 0x10, 0x59, 0x27, 0x80, 0xec, 0x5f,
    0x60, 0x51, 0x7f, 0xa9, 0x19, 0xb5, 0x4a, 0x0d, 0x2d, 0xe5, 0x7a, 0x9f, 0x93, 0xc9, 0x9c, 0xef,
    0xa0, 0xe0, 0x3b, 0x4d, 0xae, 0x2a, 0xf5, 0xb0, 0xc8, 0xeb, 0xbb, 0x3c, 0x83, 0x53, 0x99, 0x61,
    0x17, 0x2b, 0x04, 0x7e, 0xba, 0x77, 0xd6, 0x26, 0xe1, 0x69, 0x14, 0x63, 0x55, 0x21, 0x0c, 0x7d,
};

static inline uint32_t sub_word(uint32_t x) {
    return (uint32_t)nnl_aes_sbox[x >> 24] << 24 | (uint32_t)nnl_aes_sbox[(x >> 16) & 255] << 16 |
           (uint32_t)nnl_aes_sbox[(x >> 8) & 255] << 8 | (uint32_t)nnl_aes_sbox[x & 255];
}

static inline uint32_t rot_word(uint32_t x) { return x << 8 | x >> 24; }

/* Rcon past the tenth value keeps doubling in GF(2^8): 0x36 -> 0x6c -> 0xd8 -> 0xab ... */
static inline uint8_t xtime(uint8_t x) { return (uint8_t)((x << 1) ^ ((x & 0x80) ? 0x1b : 0)); }

static inline uint32_t load_be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/*
 * The textbook loop, kept deliberately separate from the grouped generator below so the
 * test can hold one against the other.
 */
int nnl_aes_expand_key(const uint8_t *key, size_t key_len, uint32_t *w, size_t nwords) {
    if (key_len != 16 && key_len != 32)
        return nnl_fail(NNL_ERR_KEY, "AES key expansion: key must be 16 or 32 bytes, got %zu", key_len);
    size_t nk = key_len / 4;
    uint8_t rcon = 0x01;
    for (size_t i = 0; i < nwords; i++) {
        if (i < nk) { w[i] = load_be32(key + 4 * i); continue; }
        uint32_t t = w[i - 1];
        if (i % nk == 0) {
            t = sub_word(rot_word(t)) ^ (uint32_t)rcon << 24;
            rcon = xtime(rcon);
        } else if (nk > 6 && i % nk == 4) {
            t = sub_word(t);
        }
        w[i] = w[i - nk] ^ t;
    }
    return NNL_OK;
}

/*
 * One group of nk words from the previous group. Each word is written as the previous
 * group's prefix XOR (computed off the critical path) XOR the SubWord result, so the
 * serial dependency per group is one SubWord and one XOR instead of nk chained XORs.
 */
static inline void step4(uint32_t g[4], uint8_t *rcon) {
    uint32_t t = sub_word(rot_word(g[3])) ^ (uint32_t)*rcon << 24;
    uint32_t p1 = g[0] ^ g[1], p2 = p1 ^ g[2], p3 = p2 ^ g[3];
    g[0] ^= t; g[1] = p1 ^ t; g[2] = p2 ^ t; g[3] = p3 ^ t;
    *rcon = xtime(*rcon);
}

static inline void step8(uint32_t g[8], uint8_t *rcon) {
    uint32_t t = sub_word(rot_word(g[7])) ^ (uint32_t)*rcon << 24;
    uint32_t p1 = g[0] ^ g[1], p2 = p1 ^ g[2], p3 = p2 ^ g[3];
    g[0] ^= t; g[1] = p1 ^ t; g[2] = p2 ^ t; g[3] = p3 ^ t;
    uint32_t u = sub_word(g[3]);
    uint32_t q1 = g[4] ^ g[5], q2 = q1 ^ g[6], q3 = q2 ^ g[7];
    g[4] ^= u; g[5] = q1 ^ u; g[6] = q2 ^ u; g[7] = q3 ^ u;
    *rcon = xtime(*rcon);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NNL_AES_HAVE_NI 1

/*
 * The same steps with AES-NI, which is what bounds the streaming lock: the schedule is
 * one serial chain, and AESENCLAST does a whole SubWord in one instruction. The group
 * lives in XMM registers as key bytes (k0 k1 k2 k3 per word). With RotWord(w3) (or w3)
 * broadcast to all four columns, ShiftRows is the identity, so AESENCLAST gives
 * SubWord(..) XOR round key in every column; the round key carries Rcon in byte k0.
 */
__attribute__((target("aes,ssse3"))) static void run_groups_ni(nnl_wl_sched *s, uint32_t *out, uint64_t ngroups) {
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    const __m128i rot3 = _mm_set_epi8(12, 15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13);
    const __m128i bcast3 = _mm_set_epi8(15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13, 12, 15, 14, 13, 12);
    const __m128i zero = _mm_setzero_si128();
    uint8_t rcon = s->rcon;
    __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)s->group), bswap);
    __m128i b = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(s->group + 4)), bswap);
#define NNL_PREFIX(x) (x = _mm_xor_si128(x, _mm_slli_si128(x, 4)), x = _mm_xor_si128(x, _mm_slli_si128(x, 8)))
    if (s->nk == 4) {
        for (uint64_t k = 0; k < ngroups; k++) {
            __m128i t = _mm_aesenclast_si128(_mm_shuffle_epi8(a, rot3), _mm_set1_epi32(rcon));
            NNL_PREFIX(a);
            a = _mm_xor_si128(a, t);
            rcon = xtime(rcon);
            if (out) { _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(a, bswap)); out += 4; }
        }
    } else {
        for (uint64_t k = 0; k < ngroups; k++) {
            __m128i t = _mm_aesenclast_si128(_mm_shuffle_epi8(b, rot3), _mm_set1_epi32(rcon));
            NNL_PREFIX(a);
            a = _mm_xor_si128(a, t);
            __m128i u = _mm_aesenclast_si128(_mm_shuffle_epi8(a, bcast3), zero);
            NNL_PREFIX(b);
            b = _mm_xor_si128(b, u);
            rcon = xtime(rcon);
            if (out) {
                _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(a, bswap));
                _mm_storeu_si128((__m128i *)(out + 4), _mm_shuffle_epi8(b, bswap));
                out += 8;
            }
        }
    }
#undef NNL_PREFIX
    _mm_storeu_si128((__m128i *)s->group, _mm_shuffle_epi8(a, bswap));
    _mm_storeu_si128((__m128i *)(s->group + 4), _mm_shuffle_epi8(b, bswap));
    s->rcon = rcon;
}
#endif

int nnl_aes_ni_usable(void) {
#ifdef NNL_AES_HAVE_NI
    if (nnl_wl_scalar_forced()) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("ssse3");
#else
    return 0;
#endif
}

/* Advances the group ngroups times, writing every new group to out when out != NULL. */
static void run_groups(nnl_wl_sched *s, uint32_t *out, uint64_t ngroups) {
#ifdef NNL_AES_HAVE_NI
    if (nnl_aes_ni_usable()) { run_groups_ni(s, out, ngroups); return; }
#endif
    uint32_t g[8];
    uint8_t rcon = s->rcon;
    memcpy(g, s->group, sizeof g);
    if (s->nk == 4) {
        for (uint64_t k = 0; k < ngroups; k++) {
            step4(g, &rcon);
            if (out) { memcpy(out, g, 4 * sizeof *g); out += 4; }
        }
    } else {
        for (uint64_t k = 0; k < ngroups; k++) {
            step8(g, &rcon);
            if (out) { memcpy(out, g, 8 * sizeof *g); out += 8; }
        }
    }
    memcpy(s->group, g, sizeof g);
    s->rcon = rcon;
    nnl_wl_wipe(g, sizeof g);
}

int nnl_wl_sched_init(nnl_wl_sched *s, const uint8_t *key, size_t key_len) {
    memset(s, 0, sizeof *s);
    if (key_len != 16 && key_len != 32)
        return nnl_fail(NNL_ERR_KEY, "weight-lock key must be 16 or 32 bytes (AES-128 or AES-256), got %zu", key_len);
    memcpy(s->key, key, key_len);
    s->nk = (int)(key_len / 4);
    for (int i = 0; i < s->nk; i++) s->group[i] = load_be32(key + 4 * i);
    s->rcon = 0x01;
    s->pos = 0;
    s->next = 0;
    return NNL_OK;
}

static int sched_ready(const nnl_wl_sched *s) {
    if (s->nk != 4 && s->nk != 8)
        return nnl_fail(NNL_ERR_ARG, "weight-lock key schedule used without a valid key");
    return NNL_OK;
}

int nnl_wl_sched_words(nnl_wl_sched *s, uint32_t *out, size_t n) {
    int st = sched_ready(s);
    if (st) return st;
    size_t nk = (size_t)s->nk;
    while (n > 0) {
        if ((size_t)s->pos == nk) {
            if (n >= nk) {
                /* Whole groups go straight to the caller's buffer. */
                size_t ng = n / nk;
                run_groups(s, out, ng);
                out += ng * nk; n -= ng * nk; s->next += ng * nk;
                continue;
            }
            run_groups(s, NULL, 1);
            s->pos = 0;
        }
        size_t take = nk - (size_t)s->pos;
        if (take > n) take = n;
        memcpy(out, s->group + s->pos, take * sizeof *out);
        s->pos += (int)take; out += take; n -= take; s->next += take;
    }
    return NNL_OK;
}

int nnl_wl_sched_seek(nnl_wl_sched *s, uint64_t index) {
    int st = sched_ready(s);
    if (st) return st;
    if (index < s->next) {
        uint8_t key[32];
        size_t len = (size_t)s->nk * 4;
        memcpy(key, s->key, len);
        st = nnl_wl_sched_init(s, key, len);
        nnl_wl_wipe(key, sizeof key);
        if (st) return st;
    }
    uint64_t nk = (uint64_t)s->nk;
    uint64_t d = index - s->next;
    uint64_t rest = nk - (uint64_t)s->pos;
    if (d <= rest) { s->pos += (int)d; s->next = index; return NNL_OK; }
    d -= rest;
    /* The group holding word `index` becomes the current one, with pos words used. */
    uint64_t ng = (d + nk - 1) / nk;
    run_groups(s, NULL, ng);
    s->pos = (int)(nk - (ng * nk - d));
    s->next = index;
    return NNL_OK;
}

void nnl_wl_sched_wipe(nnl_wl_sched *s) { nnl_wl_wipe(s, sizeof *s); }
