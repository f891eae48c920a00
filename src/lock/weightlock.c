/*
 * Deep-Lock weight encryption: per-parameter S-box locking, key files, passphrase
 * stretching and the key check value. The scheme is specified in docs/deep-lock.md.
 */
#include "weightlock.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NNL_WL_HAVE_VBMI 1
#endif

_Static_assert(NNL_WL_PWHASH_OPSLIMIT == crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
               "default opslimit must stay libsodium's INTERACTIVE");
_Static_assert(NNL_WL_PWHASH_MEMLIMIT == crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE,
               "default memlimit must stay libsodium's INTERACTIVE");
_Static_assert(sizeof(float) == 4, "one 32-bit word per float32 parameter");

void nnl_wl_wipe(void *p, size_t n) { sodium_memzero(p, n); }

/* ---------------------------------------------------------------- locking */

/*
 * Scalar reference path. Parameters are accessed as bytes: the locked values are
 * arbitrary bit patterns and must never pass through float registers or float-typed loads.
 */
static void lock_scalar(uint8_t *b, size_t n, const uint32_t *w) {
    const uint8_t *S = nnl_aes_sbox;
    for (size_t i = 0; i < n; i++, b += 4) {
        uint32_t k = w[i];
        b[0] = S[b[0] ^ (uint8_t)(k >> 24)];
        b[1] = S[b[1] ^ (uint8_t)(k >> 16)];
        b[2] = S[b[2] ^ (uint8_t)(k >> 8)];
        b[3] = S[b[3] ^ (uint8_t)k];
    }
}

static void unlock_scalar(uint8_t *b, size_t n, const uint32_t *w) {
    const uint8_t *I = nnl_aes_inv_sbox;
    for (size_t i = 0; i < n; i++, b += 4) {
        uint32_t k = w[i];
        b[0] = I[b[0]] ^ (uint8_t)(k >> 24);
        b[1] = I[b[1]] ^ (uint8_t)(k >> 16);
        b[2] = I[b[2]] ^ (uint8_t)(k >> 8);
        b[3] = I[b[3]] ^ (uint8_t)k;
    }
}

#ifdef NNL_WL_HAVE_VBMI
#define NNL_WL_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi")))

/*
 * A 256-entry byte table as four 64-byte registers: VPERMI2B looks up 128 entries by the
 * low 7 bits, the top bit picks which half. 64 lookups for about 4 instructions, so the
 * loop runs at memory speed instead of one load per byte.
 */
NNL_WL_TARGET static inline __m512i lut256(__m512i x, __m512i t0, __m512i t1, __m512i t2, __m512i t3) {
    __m512i lo = _mm512_permutex2var_epi8(t0, x, t1);
    __m512i hi = _mm512_permutex2var_epi8(t2, x, t3);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), lo, hi);
}

/* Words are FIPS big-endian but the float bytes are little-endian in memory: byte-swap
 * each word so its byte k0 lines up with the float's byte b0. */
NNL_WL_TARGET static inline __m512i bswap32x16(__m512i k) {
    const __m512i ctl = _mm512_broadcast_i32x4(_mm_set_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203));
    return _mm512_shuffle_epi8(k, ctl);
}

NNL_WL_TARGET static void apply_vbmi(uint8_t *b, size_t n, const uint32_t *w, int unlock) {
    const uint8_t *tab = unlock ? nnl_aes_inv_sbox : nnl_aes_sbox;
    const __m512i t0 = _mm512_loadu_si512(tab), t1 = _mm512_loadu_si512(tab + 64);
    const __m512i t2 = _mm512_loadu_si512(tab + 128), t3 = _mm512_loadu_si512(tab + 192);
    size_t i = 0;
    if (!unlock) {
        for (; i + 16 <= n; i += 16) {
            __m512i x = _mm512_loadu_si512(b + 4 * i);
            __m512i k = bswap32x16(_mm512_loadu_si512(w + i));
            _mm512_storeu_si512(b + 4 * i, lut256(_mm512_xor_si512(x, k), t0, t1, t2, t3));
        }
    } else {
        for (; i + 16 <= n; i += 16) {
            __m512i x = _mm512_loadu_si512(b + 4 * i);
            __m512i k = bswap32x16(_mm512_loadu_si512(w + i));
            _mm512_storeu_si512(b + 4 * i, _mm512_xor_si512(lut256(x, t0, t1, t2, t3), k));
        }
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512i x = _mm512_maskz_loadu_epi32(m, b + 4 * i);
        __m512i k = bswap32x16(_mm512_maskz_loadu_epi32(m, w + i));
        __m512i y = unlock ? _mm512_xor_si512(lut256(x, t0, t1, t2, t3), k)
                           : lut256(_mm512_xor_si512(x, k), t0, t1, t2, t3);
        _mm512_mask_storeu_epi32(b + 4 * i, m, y);
    }
}
#endif

static int force_scalar;

void nnl_wl_force_scalar(int on) { __atomic_store_n(&force_scalar, on ? 1 : 0, __ATOMIC_RELAXED); }
int nnl_wl_scalar_forced(void) { return __atomic_load_n(&force_scalar, __ATOMIC_RELAXED); }

static int use_vbmi(void) {
#ifdef NNL_WL_HAVE_VBMI
    if (nnl_wl_scalar_forced()) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
}

const char *nnl_wl_impl(void) {
    int v = use_vbmi(), a = nnl_aes_ni_usable();
    return v ? (a ? "avx512vbmi lock, aes-ni schedule" : "avx512vbmi lock, scalar schedule")
             : (a ? "scalar lock, aes-ni schedule" : "scalar lock, scalar schedule");
}

static void apply(float *p, size_t n, const uint32_t *words, int unlock) {
    uint8_t *b = (uint8_t *)p;
#ifdef NNL_WL_HAVE_VBMI
    if (use_vbmi()) { apply_vbmi(b, n, words, unlock); return; }
#endif
    if (unlock) unlock_scalar(b, n, words);
    else lock_scalar(b, n, words);
}

void nnl_wl_lock(float *p, size_t n, const uint32_t *words) { apply(p, n, words, 0); }
void nnl_wl_unlock(float *p, size_t n, const uint32_t *words) { apply(p, n, words, 1); }

/* Words are made in L1-sized chunks and consumed at once: no model-sized word array. */
#define NNL_WL_CHUNK 2048

static int apply_stream(nnl_wl_sched *s, float *p, size_t n, int unlock) {
    uint32_t w[NNL_WL_CHUNK] __attribute__((aligned(64)));
    int st = NNL_OK;
    while (n > 0 && st == NNL_OK) {
        size_t c = n < NNL_WL_CHUNK ? n : NNL_WL_CHUNK;
        st = nnl_wl_sched_words(s, w, c);
        if (st == NNL_OK) apply(p, c, w, unlock);
        p += c; n -= c;
    }
    nnl_wl_wipe(w, sizeof w);
    return st;
}

int nnl_wl_lock_stream(nnl_wl_sched *s, float *p, size_t n) { return apply_stream(s, p, n, 0); }
int nnl_wl_unlock_stream(nnl_wl_sched *s, float *p, size_t n) { return apply_stream(s, p, n, 1); }

/* ---------------------------------------------------------------- keys */

static int sodium_ready(void) {
    if (sodium_init() < 0) return nnl_fail(NNL_ERR_UNSUPPORTED, "libsodium failed to initialise");
    return NNL_OK;
}

int nnl_wl_key_generate(uint8_t key[NNL_WL_KEY_MAX]) {
    int st = sodium_ready();
    if (st) return st;
    randombytes_buf(key, NNL_WL_KEY_MAX);
    return NNL_OK;
}

int nnl_wl_salt_generate(uint8_t salt[NNL_WL_SALT_BYTES]) {
    int st = sodium_ready();
    if (st) return st;
    randombytes_buf(salt, NNL_WL_SALT_BYTES);
    return NNL_OK;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Names a byte readably in an error message. */
static void describe_char(unsigned char c, char *out, size_t size) {
    if (c == '\r') snprintf(out, size, "'\\r' (carriage return: Windows line ending?)");
    else if (c == ' ') snprintf(out, size, "' ' (space)");
    else if (c == '\t') snprintf(out, size, "'\\t' (tab)");
    else if (c >= 0x21 && c < 0x7f) snprintf(out, size, "'%c'", c);
    else snprintf(out, size, "byte 0x%02x", c);
}

int nnl_wl_key_parse(const char *name, const char *text, size_t len,
                     uint8_t key[NNL_WL_KEY_MAX], size_t *key_len) {
    *key_len = 0;
    size_t i = 0;
    for (; i < len && text[i] != '\n'; i++) {
        if (hexval((unsigned char)text[i]) < 0) {
            char what[64];
            describe_char((unsigned char)text[i], what, sizeof what);
            return nnl_fail(NNL_ERR_KEY, "key file %s: non-hex character %s at column %zu "
                            "(expected one line of 32 or 64 hex digits)", name, what, i + 1);
        }
    }
    size_t digits = i;
    if (i < len && i + 1 < len)
        return nnl_fail(NNL_ERR_KEY, "key file %s: unexpected text after the first line "
                        "(a key file holds one line of 32 or 64 hex digits and nothing else)", name);
    if (digits == 0)
        return nnl_fail(NNL_ERR_KEY, "key file %s: empty, expected 32 or 64 hex digits", name);
    if (digits != 32 && digits != 64)
        return nnl_fail(NNL_ERR_KEY, "key file %s: expected 32 or 64 hex digits, found %zu", name, digits);
    for (size_t j = 0; j < digits / 2; j++)
        key[j] = (uint8_t)(hexval((unsigned char)text[2 * j]) << 4 | hexval((unsigned char)text[2 * j + 1]));
    *key_len = digits / 2;
    return NNL_OK;
}

int nnl_wl_key_read(const char *path, uint8_t key[NNL_WL_KEY_MAX], size_t *key_len) {
    uint8_t *data = NULL;
    size_t size = 0;
    *key_len = 0;
    int st = nnl_read_file(path, &data, &size, NNL_WL_KEYFILE_MAX, 0);
    if (st) {
        if (st != NNL_ERR_FORMAT) return st;
        /* Too large or corrupt gzip: whatever it is, it is not a key. */
        char why[256];
        snprintf(why, sizeof why, "%s", nnl_errmsg());
        return nnl_fail(NNL_ERR_KEY, "key file %s: not a key file (%s)", path, why);
    }
    st = nnl_wl_key_parse(path, (const char *)data, size, key, key_len);
    nnl_wl_wipe(data, size);
    free(data);
    return st;
}

static int key_write(const char *path, const uint8_t *key, size_t key_len, int exclusive) {
    if (key_len != 16 && key_len != 32)
        return nnl_fail(NNL_ERR_KEY, "%s: a weight-lock key is 16 or 32 bytes, got %zu", path, key_len);
    char text[2 * NNL_WL_KEY_MAX + 2];
    sodium_bin2hex(text, sizeof text, key, key_len);
    size_t tl = 2 * key_len;
    text[tl++] = '\n';

    /* 0600 from the first byte; a new key is created exclusively, so a second keygen
     * racing for the same name fails instead of replacing the first one's key. */
    int st = nnl_write_file(path, text, tl, NNL_WRITE_SECRET | (exclusive ? NNL_WRITE_NEW : 0));
    nnl_wl_wipe(text, sizeof text);
    return st;
}

int nnl_wl_key_write(const char *path, const uint8_t *key, size_t key_len) {
    return key_write(path, key, key_len, 0);
}

int nnl_wl_key_write_new(const char *path, const uint8_t *key, size_t key_len) {
    return key_write(path, key, key_len, 1);
}

int nnl_wl_key_from_passphrase(const char *pass, size_t pass_len,
                               const uint8_t salt[NNL_WL_SALT_BYTES],
                               unsigned long long opslimit, size_t memlimit,
                               uint8_t key[NNL_WL_KEY_MAX]) {
    int st = sodium_ready();
    if (st) return st;
    if (pass_len == 0) return nnl_fail(NNL_ERR_ARG, "empty passphrase");
    if (pass_len > crypto_pwhash_argon2id_PASSWD_MAX)
        return nnl_fail(NNL_ERR_ARG, "passphrase too long");
    if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN || opslimit > crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE)
        return nnl_fail(NNL_ERR_FORMAT, "Argon2id opslimit %llu outside the accepted range %u..%u",
                        opslimit, (unsigned)crypto_pwhash_argon2id_OPSLIMIT_MIN,
                        (unsigned)crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE);
    if (memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN || memlimit > crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE)
        return nnl_fail(NNL_ERR_FORMAT, "Argon2id memlimit %zu bytes outside the accepted range %u..%u",
                        memlimit, (unsigned)crypto_pwhash_argon2id_MEMLIMIT_MIN,
                        (unsigned)crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE);
    if (crypto_pwhash(key, NNL_WL_KEY_MAX, pass, pass_len, salt, opslimit, memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return nnl_fail(NNL_ERR_NOMEM, "Argon2id key derivation failed (could not allocate %zu MiB)",
                        memlimit >> 20);
    return NNL_OK;
}

static int check_bytes(const uint8_t *key, size_t key_len, uint8_t out[NNL_WL_CHECK_BYTES]) {
    if (key_len != 16 && key_len != 32)
        return nnl_fail(NNL_ERR_KEY, "weight-lock key must be 16 or 32 bytes, got %zu", key_len);
    int st = sodium_ready();
    if (st) return st;
    /* The output length is a BLAKE2b parameter, so the full 32 bytes are computed and
     * truncated: crypto_generichash refuses outputs shorter than 16 bytes. */
    uint8_t h[crypto_generichash_BYTES];
    static const char ctx[] = NNL_WL_CHECK_CONTEXT;
    crypto_generichash(h, sizeof h, (const unsigned char *)ctx, sizeof ctx - 1, key, key_len);
    memcpy(out, h, NNL_WL_CHECK_BYTES);
    nnl_wl_wipe(h, sizeof h);
    return NNL_OK;
}

int nnl_wl_key_check(const uint8_t *key, size_t key_len, char hex[NNL_WL_CHECK_HEX]) {
    uint8_t c[NNL_WL_CHECK_BYTES];
    hex[0] = 0;
    int st = check_bytes(key, key_len, c);
    if (st) return st;
    sodium_bin2hex(hex, NNL_WL_CHECK_HEX, c, sizeof c);
    return NNL_OK;
}

int nnl_wl_key_verify(const uint8_t *key, size_t key_len, const char *stored_hex) {
    uint8_t want[NNL_WL_CHECK_BYTES], got[NNL_WL_CHECK_BYTES];
    size_t n = stored_hex ? strlen(stored_hex) : 0;
    if (n != 2 * NNL_WL_CHECK_BYTES)
        return nnl_fail(NNL_ERR_FORMAT, "weight-lock key check value must be %d hex digits, found %zu",
                        2 * NNL_WL_CHECK_BYTES, n);
    for (size_t j = 0; j < NNL_WL_CHECK_BYTES; j++) {
        int hi = hexval((unsigned char)stored_hex[2 * j]), lo = hexval((unsigned char)stored_hex[2 * j + 1]);
        if (hi < 0 || lo < 0)
            return nnl_fail(NNL_ERR_FORMAT, "weight-lock key check value \"%s\" is not hex", stored_hex);
        want[j] = (uint8_t)(hi << 4 | lo);
    }
    int st = check_bytes(key, key_len, got);
    if (st) return st;
    if (sodium_memcmp(want, got, NNL_WL_CHECK_BYTES) != 0)
        return nnl_fail(NNL_ERR_KEY, "wrong weight-lock key (its check value does not match the model's)");
    return NNL_OK;
}
