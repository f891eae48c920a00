/*
 * Deep-Lock's round-key words: the AES key expansion of the master key continued
 * indefinitely, one word per model parameter, generated as a stream (with AES-NI where the
 * CPU has it), so that a 10M-parameter model needs no 40 MB word array.
 */
#include "weightlock.h"

#include <string.h>

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
