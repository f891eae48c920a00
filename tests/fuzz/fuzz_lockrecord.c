/*
 * libFuzzer target for the weight-lock record (lock.weights.* metadata, src/lock/weights.c):
 * whatever the record says, unlocking must never crash, a refusal must leave a message and
 * the model untouched, and a success must be a genuine unlock (the original weights, bit
 * for bit, and no record left) or at the very least leave finite weights.
 *
 * Input: byte 0 picks one of four tiny in-memory models, built once: '0' locked with a
 * fixed AES-256 key, '1' with a fixed AES-128 key, '2' with a passphrase (Argon2id with
 * the smallest limits, so that a run stays fast), '3' not locked. The rest are lines that
 * edit its record: "NAME=VALUE" sets lock.weights.NAME (a NAME that already starts with
 * lock.weights. is taken as it is), a line "NAME" without '=' removes every entry whose
 * key starts with lock.weights.NAME. Each input gets a fresh copy of the model.
 * tests/fuzz/make_seeds.sh writes the seeds.
 */
#include "lock/weightlock.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SPEC "conv2k3p1,bn,relu,maxpool2,flatten,dense"
#define IN_C 1
#define IN_H 4
#define IN_W 4
#define NCLASS 3
#define PASSPHRASE "fuzz passphrase"
#define MAX_BYTES 4096 /* the model's tensors, all together */
#define KDF_OPS_CAP 4ull
#define KDF_MEM_CAP (256ull << 10) /* larger Argon2id limits are not tried: too slow */

static const uint8_t key256[32] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
static const uint8_t key128[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                   0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
static const uint8_t wrong256[32] = {1};
static const uint8_t salt[NNL_WL_SALT_BYTES] = {0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

typedef struct base {
    uint8_t bytes[MAX_BYTES]; /* every tensor, in order (locked bytes for a locked model) */
    int nmeta;
    char *keys[16], *vals[16];
} base;

static int ready;
static size_t nbytes;
static uint8_t plain[MAX_BYTES];
static uint8_t pass_key[NNL_WL_KEY_MAX];
static base bases[4];

static void die(void) { __builtin_trap(); }

static size_t get_bytes(nnl_model *m, uint8_t *out) {
    size_t pos = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        const float *p = nnl_model_tensor(m, t, NULL, &c);
        if (pos + c * sizeof(float) > MAX_BYTES) die();
        memcpy(out + pos, p, c * sizeof(float));
        pos += c * sizeof(float);
    }
    return pos;
}

static void put_bytes(nnl_model *m, const uint8_t *in) {
    size_t pos = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        float *p = nnl_model_tensor(m, t, NULL, &c);
        memcpy(p, in + pos, c * sizeof(float));
        pos += c * sizeof(float);
    }
}

static void keep(base *b, nnl_model *m) {
    get_bytes(m, b->bytes);
    b->nmeta = nnl_model_meta_count(m);
    if (b->nmeta > 16) die();
    for (int i = 0; i < b->nmeta; i++) {
        const char *k = nnl_model_meta_key(m, i);
        b->keys[i] = strdup(k);
        b->vals[i] = strdup(nnl_model_meta_get(m, k));
        if (!b->keys[i] || !b->vals[i]) die();
    }
}

static nnl_model *fresh(void) {
    nnl_model *m = NULL;
    if (nnl_model_create(&m, SPEC, IN_C, IN_H, IN_W, NCLASS) != NNL_OK) die();
    return m;
}

static void setup(void) {
    nnl_model *m = fresh();
    if (nnl_model_init(m, 7) != NNL_OK) die();
    /* Batch-norm statistics are locked too: make them other than 0 and 1. */
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        float *p = nnl_model_tensor(m, t, NULL, &c);
        for (size_t i = 0; i < c; i++) p[i] += 0.01f * (float)(i % 7) + 0.001f * (float)t;
    }
    if (nnl_model_meta_set(m, "train.seed", "7") != NNL_OK) die();
    if (nnl_model_meta_set(m, "lock.kind", "certificate") != NNL_OK) die(); /* another lock's record */
    nbytes = get_bytes(m, plain);
    keep(&bases[3], m);
    if (nnl_weights_lock(m, key256, sizeof key256) != NNL_OK) die();
    keep(&bases[0], m);
    put_bytes(m, plain);
    nnl_model_meta_remove_prefix(m, NNL_WL_META_PREFIX);
    if (nnl_weights_lock(m, key128, sizeof key128) != NNL_OK) die();
    keep(&bases[1], m);
    put_bytes(m, plain);
    nnl_model_meta_remove_prefix(m, NNL_WL_META_PREFIX);
    /* nnl_weights_lock_passphrase would use the default 64 MiB: lock with the key of the
     * smallest limits instead and write the kdf entries it would have written. */
    if (nnl_wl_key_from_passphrase(PASSPHRASE, strlen(PASSPHRASE), salt, 1, 8192, pass_key) != NNL_OK) die();
    if (nnl_weights_lock(m, pass_key, sizeof pass_key) != NNL_OK) die();
    char hex[2 * NNL_WL_SALT_BYTES + 1];
    for (int i = 0; i < NNL_WL_SALT_BYTES; i++) {
        hex[2 * i] = "0123456789abcdef"[salt[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[salt[i] & 15];
    }
    hex[2 * NNL_WL_SALT_BYTES] = 0;
    if (nnl_model_meta_set(m, NNL_WL_META_PREFIX "kdf", NNL_WL_PWHASH_ALG) ||
        nnl_model_meta_set(m, NNL_WL_META_PREFIX "kdf_salt", hex) ||
        nnl_model_meta_set(m, NNL_WL_META_PREFIX "kdf_opslimit", "1") ||
        nnl_model_meta_set(m, NNL_WL_META_PREFIX "kdf_memlimit", "8192"))
        die();
    keep(&bases[2], m);
    nnl_model_free(m);
    /* The genuine records must open, or the fuzzer tests nothing. */
    for (int mode = 0; mode < 3; mode++) {
        m = fresh();
        put_bytes(m, bases[mode].bytes);
        for (int i = 0; i < bases[mode].nmeta; i++) nnl_model_meta_set(m, bases[mode].keys[i], bases[mode].vals[i]);
        int st = mode == 2 ? nnl_weights_unlock_passphrase(m, PASSPHRASE)
                           : nnl_weights_unlock(m, mode ? key128 : key256, mode ? sizeof key128 : sizeof key256);
        uint8_t now[MAX_BYTES];
        if (st != NNL_OK || get_bytes(m, now) != nbytes || memcmp(now, plain, nbytes)) die();
        nnl_model_free(m);
    }
    ready = 1;
}

/* Strict decimal of at most 19 digits, as the record's reader takes it (1 if it is one). */
static int number(const char *s, unsigned long long *v) {
    if (!s || !*s || strlen(s) > 19) return 0;
    *v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        *v = *v * 10 + (unsigned long long)(*s - '0');
    }
    return 1;
}

static void check_refused(nnl_model *m, int st, const uint8_t *before, int nmeta) {
    uint8_t now[MAX_BYTES];
    if (st == NNL_OK) return;
    if (!nnl_errmsg()[0]) die();                                           /* a refusal explains itself */
    if (get_bytes(m, now) != nbytes || memcmp(now, before, nbytes)) die(); /* ... and changes nothing */
    if (nnl_model_meta_count(m) != nmeta) die();
}

/* After a successful unlock: the record is gone, the other metadata stay, and the weights
 * are the originals (genuine) or, where the record was forged, at least finite. */
static void check_unlocked(nnl_model *m, int genuine_expected) {
    uint8_t now[MAX_BYTES];
    if (nnl_weights_locked(m)) die();
    if (!nnl_model_meta_get(m, "train.seed") || !nnl_model_meta_get(m, "lock.kind")) die();
    if (get_bytes(m, now) != nbytes) die();
    if (!memcmp(now, plain, nbytes)) return;
    if (genuine_expected) die();
    for (size_t i = 0; i + sizeof(float) <= nbytes; i += sizeof(float)) {
        float f;
        memcpy(&f, now + i, sizeof f);
        if (!isfinite(f)) die();
    }
}

/* One unlock attempt; returns 1 if it unlocked. */
static int attempt(nnl_model *m, int how, int genuine_expected) {
    uint8_t before[MAX_BYTES];
    get_bytes(m, before);
    int nmeta = nnl_model_meta_count(m), was_locked = nnl_weights_locked(m);
    nnl_clear_error();
    int st;
    switch (how) {
    case 0: st = nnl_weights_unlock(m, key256, sizeof key256); break;
    case 1: st = nnl_weights_unlock(m, key128, sizeof key128); break;
    case 2: st = nnl_weights_unlock_passphrase(m, PASSPHRASE); break;
    case 3: st = nnl_weights_unlock(m, wrong256, sizeof wrong256); break;
    case 4: st = nnl_weights_unlock(m, key256, 20); break; /* no such key size */
    default: st = nnl_weights_unlock_passphrase(m, PASSPHRASE " "); break;
    }
    if (st != NNL_OK) {
        check_refused(m, st, before, nmeta);
        return 0;
    }
    if (!was_locked || how >= 3) die(); /* nothing to unlock, or a key that must never open it */
    check_unlocked(m, genuine_expected);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) setup();
    if (size < 1) return 0;
    int mode = data[0] % 4;
    const base *b = &bases[mode];
    nnl_model *m = fresh();
    put_bytes(m, b->bytes);
    for (int i = 0; i < b->nmeta; i++)
        if (nnl_model_meta_set(m, b->keys[i], b->vals[i]) != NNL_OK) die();

    /* Apply the edits. */
    char line[512], key[600];
    const uint8_t *p = data + 1, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n >= sizeof line) n = sizeof line - 1;
        memcpy(line, p, n);
        line[n] = 0; /* a NUL inside the line ends it, as it would in the file's JSON */
        p = nl ? nl + 1 : end;
        if (!line[0]) continue;
        char *eq = strchr(line, '=');
        if (eq) *eq = 0;
        const char *pre = strncmp(line, NNL_WL_META_PREFIX, strlen(NNL_WL_META_PREFIX)) ? NNL_WL_META_PREFIX : "";
        snprintf(key, sizeof key, "%s%s", pre, line);
        if (!eq) {
            nnl_model_meta_remove_prefix(m, key);
            continue;
        }
        nnl_clear_error();
        if (nnl_model_meta_set(m, key, eq + 1) != NNL_OK && !nnl_errmsg()[0]) die();
    }

    /* Any lock.weights.* entry makes the model count as locked. */
    int any = 0;
    for (int i = 0; i < nnl_model_meta_count(m); i++)
        any |= !strncmp(nnl_model_meta_key(m, i), NNL_WL_META_PREFIX, strlen(NNL_WL_META_PREFIX));
    if (nnl_weights_locked(m) != any) die();

    /* Argon2id runs only with small limits (the reader refuses what is not a number). */
    unsigned long long ops, mem;
    int kdf_ok = (!number(nnl_model_meta_get(m, NNL_WL_META_PREFIX "kdf_opslimit"), &ops) || ops <= KDF_OPS_CAP) &&
                 (!number(nnl_model_meta_get(m, NNL_WL_META_PREFIX "kdf_memlimit"), &mem) || mem <= KDF_MEM_CAP);

    /* Keys that must never open it, then the right one (genuine in modes 0-2). */
    int done = attempt(m, 3, 0) || attempt(m, 4, 0) || (kdf_ok && attempt(m, 5, 0));
    if (!done) {
        int right = mode == 1 ? 1 : mode == 2 ? 2 : 0;
        if (right == 2 && !kdf_ok) right = 0;
        done = attempt(m, right, mode != 3);
        if (!done && mode != 0) done = attempt(m, 0, 0);
        if (!done && kdf_ok && mode != 2) done = attempt(m, 2, 0);
    }
    /* A model that still counts as locked cannot be locked again. */
    if (nnl_weights_locked(m)) {
        uint8_t before[MAX_BYTES];
        get_bytes(m, before);
        nnl_clear_error();
        int st = nnl_weights_lock(m, key256, sizeof key256);
        if (st != NNL_ERR_LOCKED) die();
        check_refused(m, st, before, nnl_model_meta_count(m));
    }
    nnl_model_free(m);
    return 0;
}
