/*
 * nnlock lock-weights / unlock-weights (Deep-Lock weight encryption), and the way every
 * command that loads a model gets past a weight lock: cli_load_model.
 *
 * Plaintext weights of a locked model exist only in memory: loading commands decrypt
 * after reading and never write the result (train --init locks its output again); only
 * unlock-weights, and train with --write-plaintext, write plaintext, to the file the user
 * names.
 */
#include "cli.h"
#include "weights_report.h"
#include "lock/weightlock.h"

#include <stdlib.h>
#include <string.h>

#define PASSPHRASE_FILE_MAX (64u << 10)

/*
 * A passphrase file holds the passphrase's bytes; one trailing "\n" (or "\r\n") is not part
 * of it, since `echo secret > file` adds one. Everything else counts, spaces included.
 * Returns a malloc'd NUL-terminated string (wipe and free it) or NULL after printing.
 */
static char *read_passphrase(const char *cmd, const char *path) {
    uint8_t *data = NULL;
    size_t size = 0;
    int st = nnl_read_file(path, &data, &size, PASSPHRASE_FILE_MAX, 0);
    if (st) { cli_fail(cmd, "passphrase file %s", nnl_errmsg()); return NULL; }
    if (size > 0 && data[size - 1] == '\n') size--;
    if (size > 0 && data[size - 1] == '\r') size--;
    const char *why = size == 0 ? "is empty" : memchr(data, 0, size) ? "holds a NUL byte" : NULL;
    char *pass = why ? NULL : malloc(size + 1);
    if (pass) { memcpy(pass, data, size); pass[size] = 0; }
    nnl_wl_wipe(data, size);
    free(data);
    if (why) cli_fail(cmd, "passphrase file %s %s", path, why);
    else if (!pass) cli_fail(cmd, "out of memory");
    return pass;
}

static void free_passphrase(char *p) {
    if (!p) return;
    nnl_wl_wipe(p, strlen(p));
    free(p);
}

int cli_weights_key(const char *cmd, const char *model_path, nnl_model *m, const cli_weights_opts *w,
                    uint8_t key[NNL_WEIGHTS_KEY_MAX], size_t *keylen) {
    *keylen = 0;
    if (w->key_file && w->passphrase_file)
        return cli_fail(cmd, "give --weights-key or --weights-passphrase-file, not both");
    if (w->key_file) {
        int st = nnl_weights_key_read(w->key_file, key, keylen);
        return st ? cli_lib_fail(cmd, st) : 0;
    }
    if (!w->passphrase_file) return cli_fail(cmd, "no key given (--weights-key FILE or --weights-passphrase-file FILE)");
    char *pass = read_passphrase(cmd, w->passphrase_file);
    if (!pass) return 1;
    int st = nnl_weights_passphrase_key(m, pass, key);
    free_passphrase(pass);
    if (st) return cli_fail(cmd, "%s: %s", model_path, nnl_errmsg());
    *keylen = NNL_WEIGHTS_KEY_MAX;
    return 0;
}

/* Unlocks m in place with w's key file or passphrase; a wrong one is one line naming the
 * model. Prints its own errors; returns 0 or 1. */
static int unlock_with(const char *cmd, const char *path, nnl_model *m, const cli_weights_opts *w) {
    int st;
    /* A key file for a passphrase-locked model (or the other way round) would only be
     * reported as a wrong key; say what the model was locked with. */
    int by_pass = nnl_model_meta_get(m, NNL_WL_META_PREFIX "kdf") != NULL;
    if (by_pass && w->key_file && !w->passphrase_file)
        return cli_fail(cmd, "%s was locked with a passphrase: give --weights-passphrase-file FILE, not a key file", path);
    if (!by_pass && w->passphrase_file && !w->key_file)
        return cli_fail(cmd, "%s was locked with a key file, not a passphrase: give --weights-key FILE", path);
    if (w->passphrase_file && !w->key_file) {
        char *pass = read_passphrase(cmd, w->passphrase_file);
        if (!pass) return 1;
        st = nnl_weights_unlock_passphrase(m, pass);
        free_passphrase(pass);
    } else {
        uint8_t key[NNL_WEIGHTS_KEY_MAX];
        size_t len = 0;
        if (cli_weights_key(cmd, path, m, w, key, &len)) return 1;
        st = nnl_weights_unlock(m, key, len);
        nnl_wl_wipe(key, sizeof key);
    }
    return st ? cli_fail(cmd, "%s: %s", path, nnl_errmsg()) : 0;
}

int cli_weights_relock(const char *cmd, const char *init_path, nnl_model *m, const cli_weights_opts *w) {
    int st;
    if (w->key_file) {
        uint8_t key[NNL_WEIGHTS_KEY_MAX];
        size_t len = 0;
        if ((st = nnl_weights_key_read(w->key_file, key, &len))) return cli_lib_fail(cmd, st);
        st = nnl_weights_lock(m, key, len);
        nnl_wl_wipe(key, sizeof key);
    } else {
        char *pass = read_passphrase(cmd, w->passphrase_file);
        if (!pass) return 1;
        st = nnl_weights_lock_passphrase(m, pass);
        free_passphrase(pass);
    }
    return st ? cli_fail(cmd, "cannot lock the result again with the key of %s: %s", init_path, nnl_errmsg()) : 0;
}

int cli_weights_option(int c, int base, cli_weights_opts *w) {
    if (c == base) { w->key_file = optarg; return 1; }
    if (c == base + 1) { w->passphrase_file = optarg; return 1; }
    if (c == base + 2) { w->allow_locked = 1; return 1; }
    return 0;
}

/* Which option opens this model: passphrase-locked models record their Argon2id salt. */
static const char *key_option(const nnl_model *m) {
    return nnl_model_meta_get(m, NNL_WL_META_PREFIX "kdf") ? "--weights-passphrase-file FILE" : "--weights-key FILE";
}

int cli_load_model(const char *cmd, const char *path, const cli_weights_opts *w, nnl_model **out) {
    static const cli_weights_opts none = {0};
    if (!w) w = &none;
    *out = NULL;
    if (w->key_file && w->passphrase_file)
        return cli_fail(cmd, "give --weights-key or --weights-passphrase-file, not both");
    nnl_model *m;
    int st = nnl_model_load(&m, path);
    if (st) return cli_lib_fail(cmd, st);
    int have_key = w->key_file || w->passphrase_file;
    if (!nnl_weights_locked(m)) {
        if (have_key) {
            nnl_model_free(m);
            return cli_fail(cmd, "%s is not weight-locked: %s is only for weight-locked models", path,
                            w->key_file ? "--weights-key" : "--weights-passphrase-file");
        }
        *out = m;
        return 0;
    }
    if (!have_key) {
        if (w->allow_locked) { *out = m; return 0; }
        cli_fail(cmd, "%s is weight-locked: give %s (or --allow-locked to run it locked)", path, key_option(m));
        nnl_model_free(m);
        return 1;
    }
    if (unlock_with(cmd, path, m, w)) { nnl_model_free(m); return 1; }
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- the two commands */

static void usage_lock(FILE *out) {
    fprintf(out,
        "usage: nnlock lock-weights (--key-file K | --passphrase-file F) MODEL OUT\n\n"
        "Encrypts every stored parameter of MODEL (weights, biases, batch-norm parameters and\n"
        "statistics) with Deep-Lock: the AES S-box and per-parameter words of the AES key\n"
        "schedule of a master key (docs/deep-lock.md). OUT has the same architecture and size\n"
        "and is useless (NaN outputs) until the right key unlocks it; its metadata records the\n"
        "scheme, the key size, a key check value and an integrity tag, never the key.\n"
        "Deep-Lock keeps a copied file from running; it is not strong encryption: the key can\n"
        "be recovered from a locked file (docs/deep-lock.md, 'Limits of the scheme').\n\n"
        "  -k, --key-file K          master key file: 32 or 64 hex digits (AES-128 / AES-256);\n"
        "                            'nnlock keygen --weights -o K' writes a random 256-bit one\n"
        "      --passphrase-file F   derive a 256-bit key from the passphrase in F (Argon2id,\n"
        "                            random salt stored in OUT); one trailing newline is ignored\n\n"
        "OUT is written atomically (temporary file + rename) and may be MODEL itself.\n"
        "--weights-key and --weights-passphrase-file are accepted as synonyms.\n");
}

static void usage_unlock(FILE *out) {
    fprintf(out,
        "usage: nnlock unlock-weights (--key-file K | --passphrase-file F) MODEL OUT\n\n"
        "Decrypts a weight-locked model and writes the plain model to OUT: byte for byte the\n"
        "file that was locked. A wrong key is refused (key check value) and nothing is written.\n"
        "Other commands take --weights-key K and decrypt in memory only.\n\n"
        "  -k, --key-file K          the master key file\n"
        "      --passphrase-file F   the passphrase the model was locked with\n\n"
        "OUT is written atomically (temporary file + rename) and may be MODEL itself.\n");
}

/* Every stored float, batch-norm statistics included: what the lock covers. */
static size_t stored_floats(nnl_model *m) {
    size_t n = 0, c;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) { c = 0; nnl_model_tensor(m, t, NULL, &c); n += c; }
    return n;
}

static int run_common(int argc, char **argv, int unlock) {
    static const struct option lo[] = {{"key-file", 1, 0, 'k'}, {"weights-key", 1, 0, 'k'},
                                       {"passphrase-file", 1, 0, 1}, {"weights-passphrase-file", 1, 0, 1},
                                       {0, 0, 0, 0}};
    const char *cmd = unlock ? "unlock-weights" : "lock-weights";
    cli_weights_opts wo = {0};
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:", lo, NULL)) != -1) {
        switch (c) {
        case 'k': wo.key_file = optarg; break;
        case 1: wo.passphrase_file = optarg; break;
        default: return cli_bad_option(cmd, argc, argv);
        }
    }
    if (argc - optind != 2)
        return cli_fail(cmd, "expected MODEL and OUT (usage: nnlock %s --key-file K MODEL OUT)", cmd) + 1;
    if (!wo.key_file && !wo.passphrase_file)
        return cli_fail(cmd, "no key: give --key-file K or --passphrase-file F") + 1;
    if (wo.key_file && wo.passphrase_file)
        return cli_fail(cmd, "give --key-file or --passphrase-file, not both") + 1;
    const char *in = argv[optind], *out = argv[optind + 1];

    nnl_model *m;
    int st = nnl_model_load(&m, in);
    if (st) return cli_lib_fail(cmd, st);
    uint8_t key[NNL_WEIGHTS_KEY_MAX];
    size_t len = 0;
    char *pass = NULL;
    int rc = 1;
    if (unlock) {
        if (!nnl_weights_locked(m)) { cli_fail(cmd, "%s is not weight-locked: nothing to unlock", in); goto done; }
        if (unlock_with(cmd, in, m, &wo)) goto done;
    } else {
        if (nnl_weights_locked(m)) { cli_fail(cmd, "%s is already weight-locked", in); goto done; }
        if (wo.key_file) {
            if ((st = nnl_weights_key_read(wo.key_file, key, &len))) { cli_lib_fail(cmd, st); goto done; }
            st = nnl_weights_lock(m, key, len);
        } else {
            if (!(pass = read_passphrase(cmd, wo.passphrase_file))) goto done;
            st = nnl_weights_lock_passphrase(m, pass);
            len = NNL_WEIGHTS_KEY_MAX;
        }
        if (st) { cli_fail(cmd, "%s: %s", in, nnl_errmsg()); goto done; }
    }
    if ((st = nnl_model_save(m, out))) { cli_lib_fail(cmd, st); goto done; }
    if (unlock)
        printf("unlocked %zu parameters of %s; plain model written to %s\n", stored_floats(m), in, out);
    else
        printf("locked %zu parameters of %s with a %zu-bit %s (key check %s); written to %s\n",
               stored_floats(m), in, 8 * len, pass ? "passphrase key" : "key",
               nnl_model_meta_get(m, NNL_WL_META_PREFIX "kcv"), out);
    rc = 0;
done:
    nnl_wl_wipe(key, sizeof key);
    free_passphrase(pass);
    nnl_model_free(m);
    return rc;
}

static int run_lock(int argc, char **argv) { return run_common(argc, argv, 0); }
static int run_unlock(int argc, char **argv) { return run_common(argc, argv, 1); }

const nnl_command nnl_cmd_lock_weights = {"lock-weights", "encrypt a model's weights with a master key (Deep-Lock)",
                                          run_lock, usage_lock};
const nnl_command nnl_cmd_unlock_weights = {"unlock-weights", "decrypt a weight-locked model", run_unlock,
                                            usage_unlock};
