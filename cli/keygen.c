/* nnlock keygen: a fresh key of any lock (a certificate by default). */
#include "locks.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock keygen [--lock NAME] [lock options] [--shape CxHxW] -o KEY\n"
        "       nnlock keygen --weights -o KEY\n\n"
        "Makes a random key for a lock: a certificate (M-LOCK, the default), a key-driven input\n"
        "transform, or a 256-bit Deep-Lock master key. The key file is written with mode 0600.\n\n"
        "  -o, --out FILE         key file to write (default cert.key; never overwritten\n"
        "                         unless --force)\n"
        "      --lock NAME        %s (default certificate)\n"
        "      --shape CxHxW      image shape the key is for (default 1x28x28)\n"
        "      --weights          the same as --lock weights\n"
        "      --force            replace an existing key file (atomically)\n",
        nnl_lock_names());
    cli_locks_usage(out, NNL_LOCKOPT_NEW_KEY);
}

static int run(int argc, char **argv) {
    static const struct option base[] = {{"out", 1, 0, 'o'}, {"shape", 1, 0, 1}, {"weights", 0, 0, 2},
                                         {"force", 0, 0, 3}, {0, 0, 0, 0}};
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, NNL_LOCKOPT_NEW_KEY);
    if (!lo) return cli_fail("keygen", "out of memory");
    const char *cmd = "keygen", *out = "cert.key";
    int c, r, force = 0, sc = 1, sh = 28, sw = 28, rc = 2;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 1: {
            char extra;
            if (sscanf(optarg, "%dx%dx%d%c", &sc, &sh, &sw, &extra) != 3 || sc < 1 || sc > NNL_MAX_CHANNELS || sh < 1 ||
                sw < 1 || sh > 4096 || sw > 4096) {
                cli_fail(cmd, "--shape expects CxHxW (C 1-%d, H and W 1-4096), e.g. 3x32x32, got '%s'", NNL_MAX_CHANNELS, optarg);
                goto done;
            }
            break;
        }
        case 2: {
            char *arg = optarg;
            optarg = (char *)"weights";
            r = cli_locks_option(&L, cmd, L.code);
            optarg = arg;
            if (r != 1) goto done;
            break;
        }
        case 3: force = 1; break;
        default:
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r != 2) rc = cli_bad_option(cmd, argc, argv);
            goto done;
        }
    }
    if (optind < argc) { cli_fail(cmd, "unexpected argument '%s'", argv[optind]); goto done; }
    if (L.n == 0) {
        char *arg = optarg;
        optarg = (char *)"certificate";
        cli_locks_option(&L, cmd, L.code);
        optarg = arg;
    }
    if (L.n != 1 || L.l[0].key_path || L.l[0].key_out) { cli_fail(cmd, "keygen makes one key: give one --lock and -o"); goto done; }
    rc = 1;
    /* Checked first for the clearer message; the exclusive creation in the save is what
     * makes two keygens racing for one name end with one key and one failure. */
    if (nnl_check_writable(out, NNL_WRITE_SECRET | (force ? 0 : NNL_WRITE_NEW))) {
        cli_fail(cmd, "%s%s", nnl_errmsg(), !force && access(out, F_OK) == 0 ? " (use --force, or choose another name)" : "");
        goto done;
    }
    if ((r = cli_locks_keys(&L, cmd, 1, sc, sh, sw))) { rc = r; goto done; }
    cli_lock *l = &L.l[0];
    int st = l->ops->save(l->key.key, out, force);
    if (st) { cli_lib_fail(cmd, st); goto done; }
    char what[512];
    l->ops->describe_key(l->key.key, what, sizeof what);
    printf("wrote a %s key to %s (keep it secret): %s\n", l->ops->name, out, what);
    rc = 0;
done:
    cli_locks_free(&L);
    free(lo);
    return rc;
}

const nnl_command nnl_cmd_keygen = {"keygen", "make a key for a lock (certificate, transform, weights)", run, usage};
