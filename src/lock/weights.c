/*
 * Deep-Lock on a whole model: the public nnl_weights_* functions. The crypto core
 * (weightlock.c, aes.c) locks float arrays; this file decides which floats (every stored
 * tensor, in file order, numbered consecutively), and records the lock in the model's
 * metadata so that a later load can tell a wrong key from a damaged file.
 * docs/deep-lock.md specifies the metadata.
 */
#include "lock.h"
#include "weightlock.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(NNL_WEIGHTS_KEY_MAX == NNL_WL_KEY_MAX, "public and core key sizes must agree");

#define MAC_CONTEXT "nnlock deep-lock weights mac v1"

/* What the lock.weights.* metadata of a locked model says, after validation. */
typedef struct lock_info {
    int key_bits;
    uint64_t params;
    const char *kcv, *mac;
    int has_kdf;
    uint8_t salt[NNL_WL_SALT_BYTES];
    unsigned long long opslimit;
    size_t memlimit;
} lock_info;

int nnl_weights_locked(const nnl_model *m) {
    size_t n = strlen(NNL_WL_META_PREFIX);
    /* Any lock.weights.* key counts, not only the scheme: a file that lost some of its
     * lock metadata must be refused as damaged, never run as if it were plain. */
    for (int i = 0; i < nnl_model_meta_count(m); i++)
        if (!strncmp(nnl_model_meta_key(m, i), NNL_WL_META_PREFIX, n)) return 1;
    return 0;
}

static uint64_t total_params(nnl_model *m) {
    uint64_t n = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        nnl_model_tensor(m, t, NULL, &c);
        n += c;
    }
    return n;
}

/* One schedule runs across all tensors, so parameter i of the model uses word w[i]. */
static int apply_model(nnl_model *m, const uint8_t *key, size_t len, int unlock) {
    nnl_wl_sched s;
    int st = nnl_wl_sched_init(&s, key, len);
    for (int t = 0; !st && t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        float *p = nnl_model_tensor(m, t, NULL, &c);
        st = unlock ? nnl_wl_unlock_stream(&s, p, c) : nnl_wl_lock_stream(&s, p, c);
    }
    nnl_wl_sched_wipe(&s);
    return st;
}

/*
 * Integrity tag over the locked bytes (encrypt-then-MAC), so a damaged or edited weight
 * is refused before anything is decrypted. SipHash-2-4 with 128-bit output, a PRF, so one
 * key may tag any number of models; chosen over BLAKE2b because it keeps a whole-model
 * unlock above 1 GB/s (BLAKE2b alone ran at 0.25-1 GB/s here). libsodium has no streaming
 * SipHash, and the tensors are separate arrays: each tensor gets a tag, and the tag of
 * the tags, in tensor order, is the MAC. The MAC key is derived from the master key with
 * a context of its own, distinct from the key check value's.
 */
static int weights_mac(nnl_model *m, const uint8_t *key, size_t len, char hex[NNL_WL_MAC_HEX]) {
    if (sodium_init() < 0) return nnl_fail(NNL_ERR_UNSUPPORTED, "libsodium failed to initialise");
    _Static_assert(crypto_shorthash_siphashx24_BYTES == NNL_WL_MAC_BYTES, "the MAC is one SipHash-128 output");
    int nt = nnl_model_tensor_count(m);
    uint8_t mk[crypto_shorthash_siphashx24_KEYBYTES], tag[NNL_WL_MAC_BYTES];
    uint8_t *tags = malloc((size_t)(nt > 0 ? nt : 1) * NNL_WL_MAC_BYTES);
    if (!tags) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    static const char ctx[] = MAC_CONTEXT;
    crypto_generichash(mk, sizeof mk, (const unsigned char *)ctx, sizeof ctx - 1, key, len);
    for (int t = 0; t < nt; t++) {
        size_t c = 0;
        const float *p = nnl_model_tensor(m, t, NULL, &c);
        crypto_shorthash_siphashx24(tags + (size_t)t * NNL_WL_MAC_BYTES, (const unsigned char *)p, c * sizeof(float), mk);
    }
    crypto_shorthash_siphashx24(tag, tags, (size_t)nt * NNL_WL_MAC_BYTES, mk);
    sodium_bin2hex(hex, NNL_WL_MAC_HEX, tag, sizeof tag);
    nnl_wl_wipe(mk, sizeof mk);
    free(tags);
    return NNL_OK;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || strlen(s) > 19) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

static int is_hex(const char *s, size_t n) {
    if (!s || strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static const char *meta(const nnl_model *m, const char *name) {
    char key[96];
    snprintf(key, sizeof key, NNL_WL_META_PREFIX "%s", name);
    return nnl_model_meta_get(m, key);
}

#define BAD(...) nnl_fail(NNL_ERR_FORMAT, "weight-locked model: " __VA_ARGS__)

/* Validates every lock.weights.* entry: a locked file whose lock record is damaged is
 * refused here, with the entry named, before any key is tried. */
static int read_info(nnl_model *m, lock_info *li) {
    static const char *const known[] = {"scheme", "key_bits", "params", "kcv", "mac",
                                        "kdf", "kdf_salt", "kdf_opslimit", "kdf_memlimit"};
    memset(li, 0, sizeof *li);
    size_t plen = strlen(NNL_WL_META_PREFIX);
    for (int i = 0; i < nnl_model_meta_count(m); i++) {
        const char *k = nnl_model_meta_key(m, i);
        if (strncmp(k, NNL_WL_META_PREFIX, plen)) continue;
        int ok = 0;
        for (size_t j = 0; j < sizeof known / sizeof *known; j++) ok |= !strcmp(k + plen, known[j]);
        if (!ok) return BAD("unknown metadata entry '%s' (written by a newer nnlock?)", k);
    }
    const char *scheme = meta(m, "scheme");
    if (!scheme) return BAD("metadata '" NNL_WL_META_PREFIX "scheme' is missing (damaged lock record)");
    if (strcmp(scheme, NNL_WL_SCHEME))
        return nnl_fail(NNL_ERR_UNSUPPORTED, "weight-locked model: scheme '%s' is not supported (this nnlock knows '%s')",
                        scheme, NNL_WL_SCHEME);
    const char *kb = meta(m, "key_bits");
    if (!kb || (strcmp(kb, "128") && strcmp(kb, "256")))
        return BAD("metadata '" NNL_WL_META_PREFIX "key_bits' must be 128 or 256, found '%s'", kb ? kb : "(missing)");
    li->key_bits = atoi(kb);
    const char *pc = meta(m, "params");
    if (parse_u64(pc, &li->params))
        return BAD("metadata '" NNL_WL_META_PREFIX "params' must be a parameter count, found '%s'", pc ? pc : "(missing)");
    uint64_t have = total_params(m);
    if (li->params != have)
        return BAD("the lock record covers %llu parameters but the model has %llu (damaged file)",
                   (unsigned long long)li->params, (unsigned long long)have);
    li->kcv = meta(m, "kcv");
    if (!is_hex(li->kcv, 2 * NNL_WL_CHECK_BYTES))
        return BAD("metadata '" NNL_WL_META_PREFIX "kcv' must be %d lowercase hex digits, found '%s' (damaged file)",
                   2 * NNL_WL_CHECK_BYTES, li->kcv ? li->kcv : "(missing)");
    li->mac = meta(m, "mac");
    if (!is_hex(li->mac, 2 * NNL_WL_MAC_BYTES))
        return BAD("metadata '" NNL_WL_META_PREFIX "mac' must be %d lowercase hex digits, found '%s' (damaged file)",
                   2 * NNL_WL_MAC_BYTES, li->mac ? li->mac : "(missing)");
    const char *kdf = meta(m, "kdf"), *salt = meta(m, "kdf_salt"), *ops = meta(m, "kdf_opslimit"),
               *mem = meta(m, "kdf_memlimit");
    if (!kdf && !salt && !ops && !mem) return NNL_OK;
    if (!kdf || strcmp(kdf, NNL_WL_PWHASH_ALG))
        return BAD("metadata '" NNL_WL_META_PREFIX "kdf' must be '%s', found '%s'", NNL_WL_PWHASH_ALG, kdf ? kdf : "(missing)");
    if (!is_hex(salt, 2 * NNL_WL_SALT_BYTES))
        return BAD("metadata '" NNL_WL_META_PREFIX "kdf_salt' must be %d lowercase hex digits, found '%s'",
                   2 * NNL_WL_SALT_BYTES, salt ? salt : "(missing)");
    uint64_t o, mm;
    if (parse_u64(ops, &o) || parse_u64(mem, &mm))
        return BAD("metadata '" NNL_WL_META_PREFIX "kdf_opslimit' / 'kdf_memlimit' must be integers");
    if (li->key_bits != 256) return BAD("a passphrase lock must use a 256-bit key, the record says %d", li->key_bits);
    sodium_hex2bin(li->salt, sizeof li->salt, salt, strlen(salt), NULL, NULL, NULL);
    li->has_kdf = 1;
    li->opslimit = o;
    li->memlimit = (size_t)mm;
    return NNL_OK;
}

typedef struct kdf_params {
    const uint8_t *salt;
    unsigned long long opslimit;
    size_t memlimit;
} kdf_params;

static int set_meta(nnl_model *m, const char *name, const char *value) {
    char key[96];
    snprintf(key, sizeof key, NNL_WL_META_PREFIX "%s", name);
    return nnl_model_meta_set(m, key, value);
}

static int lock_impl(nnl_model *m, const uint8_t *key, size_t len, const kdf_params *kdf) {
    if (nnl_weights_locked(m))
        return nnl_fail(NNL_ERR_LOCKED, "the model's weights are already locked (unlock them first)");
    if (len != 16 && len != 32)
        return nnl_fail(NNL_ERR_KEY, "a weight-lock key is 16 or 32 bytes (AES-128 or AES-256), got %zu", len);
    char kcv[NNL_WL_CHECK_HEX], mac[NNL_WL_MAC_HEX], num[32];
    int st = nnl_wl_key_check(key, len, kcv);
    if (st) return st;
    if ((st = apply_model(m, key, len, 0))) return st;
    if ((st = weights_mac(m, key, len, mac))) goto undo;
    if ((st = set_meta(m, "scheme", NNL_WL_SCHEME))) goto undo;
    snprintf(num, sizeof num, "%zu", 8 * len);
    if ((st = set_meta(m, "key_bits", num))) goto undo;
    snprintf(num, sizeof num, "%llu", (unsigned long long)total_params(m));
    if ((st = set_meta(m, "params", num))) goto undo;
    if ((st = set_meta(m, "kcv", kcv))) goto undo;
    if ((st = set_meta(m, "mac", mac))) goto undo;
    if (kdf) {
        char salt[2 * NNL_WL_SALT_BYTES + 1];
        sodium_bin2hex(salt, sizeof salt, kdf->salt, NNL_WL_SALT_BYTES);
        if ((st = set_meta(m, "kdf", NNL_WL_PWHASH_ALG)) || (st = set_meta(m, "kdf_salt", salt))) goto undo;
        snprintf(num, sizeof num, "%llu", kdf->opslimit);
        if ((st = set_meta(m, "kdf_opslimit", num))) goto undo;
        snprintf(num, sizeof num, "%zu", kdf->memlimit);
        if ((st = set_meta(m, "kdf_memlimit", num))) goto undo;
    }
    return NNL_OK;
undo:
    /* A failed lock leaves the model as it was: plaintext weights, no lock record. */
    nnl_model_meta_remove_prefix(m, NNL_WL_META_PREFIX);
    apply_model(m, key, len, 1);
    return st;
}

int nnl_weights_lock(nnl_model *m, const uint8_t *key, size_t keylen) {
    if (!m || !key) return nnl_fail(NNL_ERR_ARG, "nnl_weights_lock: no model or no key");
    return lock_impl(m, key, keylen, NULL);
}

int nnl_weights_lock_passphrase(nnl_model *m, const char *passphrase) {
    if (!m || !passphrase) return nnl_fail(NNL_ERR_ARG, "nnl_weights_lock_passphrase: no model or no passphrase");
    /* Before the Argon2id run, which takes a noticeable fraction of a second. */
    if (nnl_weights_locked(m))
        return nnl_fail(NNL_ERR_LOCKED, "the model's weights are already locked (unlock them first)");
    uint8_t salt[NNL_WL_SALT_BYTES], key[NNL_WL_KEY_MAX];
    int st = nnl_wl_salt_generate(salt);
    if (!st) st = nnl_wl_key_from_passphrase(passphrase, strlen(passphrase), salt, NNL_WL_PWHASH_OPSLIMIT,
                                             NNL_WL_PWHASH_MEMLIMIT, key);
    kdf_params kdf = {salt, NNL_WL_PWHASH_OPSLIMIT, NNL_WL_PWHASH_MEMLIMIT};
    if (!st) st = lock_impl(m, key, sizeof key, &kdf);
    nnl_wl_wipe(key, sizeof key);
    return st;
}

static int not_locked(void) {
    return nnl_fail(NNL_ERR_ARG, "the model's weights are not locked (no " NNL_WL_META_PREFIX "* metadata)");
}

/* what: "key" or "passphrase", for the message a user sees. */
static int unlock_checked(nnl_model *m, const uint8_t *key, size_t keylen, const char *what) {
    if (!nnl_weights_locked(m)) return not_locked();
    lock_info li;
    int st = read_info(m, &li);
    if (st) return st;
    if (keylen != 16 && keylen != 32)
        return nnl_fail(NNL_ERR_KEY, "a weight-lock key is 16 or 32 bytes (AES-128 or AES-256), got %zu", keylen);
    if (8 * keylen != (size_t)li.key_bits)
        return nnl_fail(NNL_ERR_KEY, "wrong key: the model was locked with a %d-bit key, this one has %zu bits",
                        li.key_bits, 8 * keylen);
    st = nnl_wl_key_verify(key, keylen, li.kcv);
    if (st == NNL_ERR_KEY) return nnl_fail(NNL_ERR_KEY, "wrong %s: the key check value does not match", what);
    if (st) return st;
    char mac[NNL_WL_MAC_HEX];
    if ((st = weights_mac(m, key, keylen, mac))) return st;
    if (sodium_memcmp(mac, li.mac, 2 * NNL_WL_MAC_BYTES) != 0)
        return nnl_fail(NNL_ERR_FORMAT, "weight-locked model: the locked weights fail their integrity check "
                        "(the %s is right, but the weights were modified or damaged after locking)", what);
    if ((st = apply_model(m, key, keylen, 1))) return st;
    nnl_model_meta_remove_prefix(m, NNL_WL_META_PREFIX);
    return NNL_OK;
}

int nnl_weights_unlock(nnl_model *m, const uint8_t *key, size_t keylen) {
    if (!m || !key) return nnl_fail(NNL_ERR_ARG, "nnl_weights_unlock: no model or no key");
    return unlock_checked(m, key, keylen, "key");
}

int nnl_weights_passphrase_key(nnl_model *m, const char *passphrase, uint8_t key[NNL_WL_KEY_MAX]) {
    if (!m || !passphrase) return nnl_fail(NNL_ERR_ARG, "no model or no passphrase");
    if (!nnl_weights_locked(m)) return not_locked();
    lock_info li;
    int st = read_info(m, &li);
    if (st) return st;
    if (!li.has_kdf)
        return nnl_fail(NNL_ERR_KEY, "the model was locked with a key file, not a passphrase: give its key");
    return nnl_wl_key_from_passphrase(passphrase, strlen(passphrase), li.salt, li.opslimit, li.memlimit, key);
}

int nnl_weights_unlock_passphrase(nnl_model *m, const char *passphrase) {
    uint8_t key[NNL_WL_KEY_MAX];
    int st = nnl_weights_passphrase_key(m, passphrase, key);
    if (!st) st = unlock_checked(m, key, sizeof key, "passphrase");
    nnl_wl_wipe(key, sizeof key);
    return st;
}

int nnl_weights_unlock_unchecked(nnl_model *m, const uint8_t *key, size_t keylen) {
    if (!m || !key) return nnl_fail(NNL_ERR_ARG, "nnl_weights_unlock_unchecked: no model or no key");
    if (!nnl_weights_locked(m)) return not_locked();
    /* No look at the lock record at all: experiments run this on tampered files too. */
    int st = apply_model(m, key, keylen, 1);
    if (st) return st;
    nnl_model_meta_remove_prefix(m, NNL_WL_META_PREFIX);
    return NNL_OK;
}

int nnl_weights_key_read(const char *path, uint8_t *key, size_t *keylen) {
    if (!path || !key || !keylen) return nnl_fail(NNL_ERR_ARG, "nnl_weights_key_read: missing argument");
    return nnl_wl_key_read(path, key, keylen);
}

int nnl_weights_key_generate(const char *path, int overwrite) {
    if (!path || !*path) return nnl_fail(NNL_ERR_ARG, "nnl_weights_key_generate: no path");
    uint8_t key[NNL_WL_KEY_MAX];
    int st = nnl_wl_key_generate(key);
    if (!st) st = overwrite ? nnl_wl_key_write(path, key, sizeof key) : nnl_wl_key_write_new(path, key, sizeof key);
    nnl_wl_wipe(key, sizeof key);
    return st;
}

/* ---------------------------------------------------------------- the lock interface (lock.h) */

typedef struct wkey {
    uint8_t key[NNL_WL_KEY_MAX];
    size_t len;
} wkey;

static const nnl_lock_opt weight_opts[] = {
    {"key-bits", 1, NNL_LOCKOPT_NEW_KEY, "--key-bits N       128 or 256: the size of a new master key (default 256)"},
    {NULL, 0, 0, NULL}};

static int w_parse_into(wkey *k, const uint8_t *data, size_t n, const char *name) {
    return nnl_wl_key_parse(name, (const char *)data, n, k->key, &k->len);
}

static int w_probe(const uint8_t *data, size_t n) {
    wkey k;
    if (n > NNL_WL_KEYFILE_MAX) return 0;
    int ok = w_parse_into(&k, data, n, "key") == NNL_OK;
    nnl_wl_wipe(&k, sizeof k);
    nnl_clear_error();
    return ok;
}

static int w_parse(void **key, const uint8_t *data, size_t n, const char *name) {
    wkey *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    int st = w_parse_into(k, data, n, name);
    if (st) { free(k); return st; }
    *key = k;
    return NNL_OK;
}

static void w_free_key(void *key) { nnl_wipe_free(key, sizeof(wkey)); }

static int w_generate(void **key, int c, int h, int w, const nnl_lock_args *a) {
    (void)c; (void)h; (void)w;
    long bits;
    int st = nnl_lock_arg_int(a, "key-bits", 128, 256, 256, &bits);
    if (st) return st;
    if (bits != 128 && bits != 256) return nnl_fail(NNL_ERR_ARG, "--key-bits must be 128 or 256, got %ld", bits);
    wkey *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    if ((st = nnl_wl_key_generate(k->key))) { free(k); return st; }
    k->len = (size_t)bits / 8;
    *key = k;
    return NNL_OK;
}

static int w_save(const void *key, const char *path, int overwrite) {
    const wkey *k = key;
    return overwrite ? nnl_wl_key_write(path, k->key, k->len) : nnl_wl_key_write_new(path, k->key, k->len);
}

static int w_fits(const void *key, int c, int h, int w, const char *name) {
    (void)key; (void)c; (void)h; (void)w; (void)name;
    return NNL_OK; /* any model's weights can be locked with any master key */
}

static void w_describe_key(const void *key, char *buf, size_t n) {
    const wkey *k = key;
    snprintf(buf, n, "Deep-Lock master key: AES-%zu, 2^%zu keys", 8 * k->len, 8 * k->len);
}

static int w_locks(const nnl_model *m) { return nnl_weights_locked(m); }

static void w_describe(const nnl_model *m, char *buf, size_t n) {
    const char *s = nnl_model_meta_get(m, NNL_WL_META_PREFIX "scheme"), *b = nnl_model_meta_get(m, NNL_WL_META_PREFIX "key_bits");
    snprintf(buf, n, "weight lock (Deep-Lock): %s, %s-bit %s", s ? s : "?", b ? b : "?",
             nnl_model_meta_get(m, NNL_WL_META_PREFIX "kdf") ? "key from a passphrase" : "master key");
}

static void w_label(const nnl_model *m, char *buf, size_t n) {
    const char *b = nnl_model_meta_get(m, NNL_WL_META_PREFIX "key_bits");
    snprintf(buf, n, "weights AES-%s", b ? b : "?");
}

static void w_forget(nnl_model *m) { nnl_model_meta_remove_prefix(m, NNL_WL_META_PREFIX); }

static int w_open(const void *key, nnl_model *m) {
    const wkey *k = key;
    return nnl_weights_unlock(m, k->key, k->len);
}

static int w_close(const void *key, nnl_model *m) {
    const wkey *k = key;
    return nnl_weights_lock(m, k->key, k->len);
}

static int w_random(void **out, const void *like, uint64_t seed);

static int w_guess(void **out, const nnl_model *m, uint64_t seed) {
    const char *b = nnl_model_meta_get(m, NNL_WL_META_PREFIX "key_bits");
    wkey like = {{0}, b && !strcmp(b, "128") ? 16 : 32};
    return w_random(out, &like, seed);
}

static int w_random(void **out, const void *like, uint64_t seed) {
    const wkey *l = like;
    wkey *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    nnl_rng r = nnl_rng_derive(seed, 0x3e1c4eULL);
    for (size_t i = 0; i < l->len; i++) k->key[i] = (uint8_t)(nnl_rng_next(&r) >> 56);
    k->len = l->len;
    *out = k;
    return NNL_OK;
}

static int w_neighbour(void **out, const void *from, uint64_t seed) {
    const wkey *f = from;
    wkey *k = calloc(1, sizeof *k);
    if (!k) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    *k = *f;
    nnl_rng r = nnl_rng_derive(seed, 0xb17f1bULL);
    uint64_t bit = nnl_rng_below(&r, 8 * f->len);
    k->key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    *out = k;
    return NNL_OK;
}

const nnl_lock_ops nnl_lock_weights = {
    .name = "weights",
    .summary = "Deep-Lock (Alam et al.): every stored parameter encrypted with a master key",
    .seam = NNL_SEAM_WEIGHTS,
    .opts = weight_opts,
    .probe = w_probe,
    .parse = w_parse,
    .generate = w_generate,
    .save = w_save,
    .free_key = w_free_key,
    .fits = w_fits,
    .describe_key = w_describe_key,
    .locks = w_locks,
    .describe = w_describe,
    .label = w_label,
    .forget = w_forget,
    .open = w_open,
    .close = w_close,
    .guess_key = w_guess,
    .random_key = w_random,
    .neighbour_key = w_neighbour,
    .neighbour = "one bit",
};
