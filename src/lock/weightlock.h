/*
 * Deep-Lock weight encryption (issue 4): the crypto core. docs/deep-lock.md is the
 * normative description of the scheme; this header is the C interface to it.
 *
 * In one paragraph: the master key (16 or 32 bytes) is expanded with the AES-128 or
 * AES-256 key schedule, continued for as many 32-bit words w[0], w[1], ... as the model
 * has float32 parameters. Parameter i (counting from 0 over every stored tensor in the
 * model's tensor order) uses word w[i]. With b0..b3 the float's bytes in memory
 * (little-endian) and k0..k3 the word's bytes most significant first (as FIPS-197 writes
 * them): locked b_j = Sbox(b_j ^ k_j), unlocked b_j = InvSbox(locked b_j) ^ k_j.
 *
 * Locked buffers hold arbitrary bit patterns (signalling NaNs included): move them as
 * bytes (memcpy), never through float arithmetic.
 */
#ifndef NNL_WEIGHTLOCK_H
#define NNL_WEIGHTLOCK_H

#include "../core/core.h"

#include <stddef.h>
#include <stdint.h>

#include "aes.h"

/* ---------------------------------------------------------------- the key schedule (keysched.c) */

/*
 * Streaming generator of the words of nnl_aes_expand_key, so a 10M-parameter model needs no 40 MB word
 * array. Holds a copy of the key: clear it with nnl_wl_sched_wipe when done.
 */
typedef struct nnl_wl_sched {
    uint8_t key[32];
    int nk;            /* 4 or 8 words of key */
    uint8_t rcon;      /* Rcon of the group after `group` */
    uint32_t group[8]; /* the last generated group of nk words ... */
    int pos;           /* ... of which the first pos have been handed out */
    uint64_t next;     /* index of the next word to hand out */
} nnl_wl_sched;

int nnl_wl_sched_init(nnl_wl_sched *s, const uint8_t *key, size_t key_len);
/* Writes words w[next .. next+n) into out and advances. NNL_ERR_ARG if s was never
 * successfully initialised (a failed init leaves it unusable, never keyless). */
int nnl_wl_sched_words(nnl_wl_sched *s, uint32_t *out, size_t n);
/* Positions the generator at word index (forward by generating, backward by restarting). */
int nnl_wl_sched_seek(nnl_wl_sched *s, uint64_t index);
void nnl_wl_sched_wipe(nnl_wl_sched *s);

/* ---------------------------------------------------------------- locking (weightlock.c) */

/* Locks / unlocks n parameters in place; parameter p[t] uses words[t]. */
void nnl_wl_lock(float *p, size_t n, const uint32_t *words);
void nnl_wl_unlock(float *p, size_t n, const uint32_t *words);
/*
 * The same, taking the words from the generator, which advances by n: calling it on each
 * tensor in turn with one generator locks the concatenation of the tensors. To start at
 * parameter index i, nnl_wl_sched_seek(s, i) first.
 */
int nnl_wl_lock_stream(nnl_wl_sched *s, float *p, size_t n);
int nnl_wl_unlock_stream(nnl_wl_sched *s, float *p, size_t n);

/* The code paths taken on this CPU, e.g. "avx512vbmi lock, aes-ni schedule" or
 * "scalar lock, scalar schedule". */
const char *nnl_wl_impl(void);
/* Forces the portable scalar paths (1) or returns to automatic choice (0); for tests and
 * benchmarks only, not thread-safe against concurrent locking. */
void nnl_wl_force_scalar(int on);
int nnl_wl_scalar_forced(void);
int nnl_aes_ni_usable(void); /* 1 when the key schedule uses AES-NI */

/* ---------------------------------------------------------------- keys (weightlock.c) */

#define NNL_WL_KEY_MAX 32          /* bytes of the largest master key (AES-256) */
#define NNL_WL_SALT_BYTES 16       /* Argon2id salt */
#define NNL_WL_CHECK_BYTES 8       /* key check value, before hex encoding */
#define NNL_WL_CHECK_HEX (2 * NNL_WL_CHECK_BYTES + 1) /* hex + NUL */
#define NNL_WL_CHECK_CONTEXT "nnlock deep-lock key check v1"
#define NNL_WL_KEYFILE_MAX 4096    /* a key file longer than this is not a key file */

/* Fills key with 32 random bytes (libsodium randombytes_buf). */
int nnl_wl_key_generate(uint8_t key[NNL_WL_KEY_MAX]);
/* Fills salt with random bytes. */
int nnl_wl_salt_generate(uint8_t salt[NNL_WL_SALT_BYTES]);

/*
 * Parses the text of a key file: exactly 32 or 64 hex digits (either case) on one line,
 * optionally followed by one "\n". name appears in error messages. Errors: NNL_ERR_KEY.
 */
int nnl_wl_key_parse(const char *name, const char *text, size_t len,
                     uint8_t key[NNL_WL_KEY_MAX], size_t *key_len);
/* Reads and parses a key file. */
int nnl_wl_key_read(const char *path, uint8_t key[NNL_WL_KEY_MAX], size_t *key_len);
/* Writes a key file (lowercase hex + "\n") atomically with mode 0600, replacing path. */
int nnl_wl_key_write(const char *path, const uint8_t *key, size_t key_len);
/* The same, but never replaces an existing file (NNL_ERR_IO "PATH exists; not overwriting
 * a key"), even against a concurrent writer: the file is linked into place, not renamed. */
int nnl_wl_key_write_new(const char *path, const uint8_t *key, size_t key_len);

/*
 * Passphrase -> 32-byte key with Argon2id (crypto_pwhash, ALG_ARGON2ID13). New models use
 * the defaults below; a model records opslimit, memlimit and the salt so the key can be
 * re-derived. Limits outside [MIN, SENSITIVE] are refused (NNL_ERR_FORMAT), so a hostile
 * file cannot ask for unbounded time or memory.
 */
#define NNL_WL_PWHASH_ALG "argon2id13"
#define NNL_WL_PWHASH_OPSLIMIT 2ull          /* crypto_pwhash_OPSLIMIT_INTERACTIVE */
#define NNL_WL_PWHASH_MEMLIMIT (64ull << 20) /* crypto_pwhash_MEMLIMIT_INTERACTIVE */
int nnl_wl_key_from_passphrase(const char *pass, size_t pass_len,
                               const uint8_t salt[NNL_WL_SALT_BYTES],
                               unsigned long long opslimit, size_t memlimit,
                               uint8_t key[NNL_WL_KEY_MAX]);

/*
 * Key check value: the first 8 bytes of BLAKE2b-256 keyed with the master key over
 * NNL_WL_CHECK_CONTEXT (without NUL), as 16 lowercase hex digits. Reveals nothing useful
 * about the key, but tells "wrong key" from "corrupt file".
 */
int nnl_wl_key_check(const uint8_t *key, size_t key_len, char hex[NNL_WL_CHECK_HEX]);
/* NNL_OK if key matches the stored check value (constant-time), NNL_ERR_KEY if not,
 * NNL_ERR_FORMAT if stored_hex is not 16 hex digits. */
int nnl_wl_key_verify(const uint8_t *key, size_t key_len, const char *stored_hex);

/* ---------------------------------------------------------------- whole models (weights.c) */

/* A locked model's metadata: every entry is NNL_WL_META_PREFIX + name, never a secret.
 * scheme (NNL_WL_SCHEME), key_bits, params, kcv, mac; with a passphrase also kdf,
 * kdf_salt, kdf_opslimit, kdf_memlimit. docs/deep-lock.md describes each. */
#define NNL_WL_META_PREFIX "lock.weights."
#define NNL_WL_SCHEME "deep-lock-aes-sbox-v1"
#define NNL_WL_MAC_BYTES 16                       /* integrity tag over the locked bytes */
#define NNL_WL_MAC_HEX (2 * NNL_WL_MAC_BYTES + 1)

/* The master key of a passphrase-locked model (Argon2id with the salt and limits its
 * metadata records), for tools that need the key itself, e.g. to make keys one bit off. */
int nnl_weights_passphrase_key(nnl_model *m, const char *passphrase, uint8_t key[NNL_WL_KEY_MAX]);

/* Overwrites secret memory in a way the compiler cannot drop (sodium_memzero). */
void nnl_wl_wipe(void *p, size_t n);

#endif
