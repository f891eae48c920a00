/* nnlock attack NAME: the adversary's tools. An attacker holds the locked model file and a
 * small fraction of labelled images, never the key. */
#include "attack_cmds.h"
#include "attack/attack.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock attack key-search MODEL [--data PATH] [--fraction F] [--budget N] [options]\n\n"
        "key-search: the key-estimation attack of the key-transform authors. With a fraction F\n"
        "of the labelled test images (the rest is kept for measuring), it tries (a) N random keys\n"
        "guessed from the model's public record and keeps the best, and (b) climbs from a random\n"
        "key by N one-step moves (a swap, a flipped bit) kept when they do not lower the accuracy\n"
        "on its images; it reports what each found key gives on the images it never saw.\n\n"
        "  -d, --data PATH    data set (default: the model's own if still there, else %s); its\n"
        "                     test split is split\n"
        "      --fraction F   the attacker's share of the test images (default 0.01)\n"
        "      --budget N     keys tried by each search (default 200)\n"
        "      --lock NAME    the lock to attack (default: the model's input lock)\n"
        "      --key FILE     the right key, only to print what it gives on the same images\n"
        "  -s, --seed N       the split and the searches (default 1)\n"
        "  -t, --threads N    threads (default 0: all cores)\n"
        "      --json         JSON output\n"
        CLI_WEIGHTS_USAGE,
        NNL_DEFAULT_DATA);
    fputc('\n', out);
    cli_attack_prune_usage(out);
}

static int run(int argc, char **argv) {
    static const struct option base[] = {{"data", 1, 0, 'd'}, {"fraction", 1, 0, 1}, {"budget", 1, 0, 2},
                                         {"seed", 1, 0, 's'}, {"threads", 1, 0, 't'}, {"json", 0, 0, 3},
                                         CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    const char *cmd = "attack";
    if (argc < 2 || argv[1][0] == '-') return cli_fail(cmd, "which attack? (usage: nnlock attack key-search|prune MODEL ...)") + 1;
    if (!strcmp(argv[1], "prune")) return cli_attack_prune(argc - 1, argv + 1);
    if (strcmp(argv[1], "key-search")) return cli_fail(cmd, "unknown attack '%s' (there are: key-search, prune)", argv[1]) + 1;
    argc--; argv++;
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, 0);
    if (!lo) return cli_fail(cmd, "out of memory");
    const char *data = NULL;
    cli_weights_opts wo = {0};
    double fraction = 0.01;
    long budget = 200, threads = 0;
    uint64_t seed = 1;
    int json = 0, c, r, rc = 2;
    nnl_model *m = NULL;
    nnl_dataset ds = {0}, known = {0}, rest = {0};
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:s:t:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 1: if (cli_float(cmd, "--fraction", optarg, 1e-4, 0.5, &fraction)) goto done; break;
        case 2: if (cli_int(cmd, "--budget", optarg, 1, 10000000, &budget)) goto done; break;
        case 's': if (cli_u64(cmd, "--seed", optarg, &seed)) goto done; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) goto done; break;
        case 3: json = 1; break;
        default:
            if (cli_weights_option(c, 300, &wo)) break;
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r != 2) rc = cli_bad_option(cmd, argc, argv);
            goto done;
        }
    }
    if (optind != argc - 1) { cli_fail(cmd, "expected one MODEL (usage: nnlock attack key-search MODEL ...)"); goto done; }
    const char *path = argv[optind];
    rc = 1;
    if (cli_threads(cmd, threads)) goto done;
    /* Which lock: --lock (or a --key's), else the model's one input lock with keys to try. */
    const nnl_lock_ops *ops = L.n ? L.l[0].ops : NULL;
    if ((r = cli_locks_keys(&L, cmd, 0, 0, 0, 0))) {
        /* --lock NAME without a key is allowed here: the attacker has none. */
        if (!(L.n == 1 && !L.l[0].key_path)) { rc = r; goto done; }
        nnl_clear_error();
    }
    if (L.n && L.l[0].key.key) ops = L.l[0].ops;
    if (cli_load_model(cmd, path, &wo, &m)) goto done;
    if (!ops) {
        const nnl_lock_ops *const *all = nnl_lock_all();
        for (int i = 0; all[i] && !ops; i++)
            if (all[i]->seam == NNL_SEAM_INPUT && all[i]->guess_key && all[i]->locks(m)) ops = all[i];
        if (!ops) { cli_fail(cmd, "%s carries no input lock whose key can be searched for (give --lock NAME)", path); goto done; }
    }
    if (!ops->locks(m)) { cli_fail(cmd, "%s is not %s-locked", path, ops->name); goto done; }
    if (!ops->guess_key) { cli_fail(cmd, "the %s lock's record does not say enough to guess keys", ops->name); goto done; }
    if (L.n && L.l[0].key.key && cli_locks_fit(&L, cmd, m)) goto done;
    cli_data_for_model(m);
    data = cli_model_data(cmd, m, data);
    if (cli_load_data(cmd, data, NNL_SPLIT_TEST, &ds) || cli_match_classes(cmd, m, &ds, "test")) goto done;
    int64_t n = (int64_t)(fraction * (double)ds.n + 0.5);
    int st;
    if ((st = nnl_dataset_split(&ds, n < 1 ? 1 : n, seed, &known, &rest))) { cli_lib_fail(cmd, st); goto done; }
    nnl_key_search o = {(int)budget, seed};
    nnl_key_search_result res;
    double t0 = cli_now();
    if ((st = nnl_key_search_run(m, ops, &known, &rest, L.n ? L.l[0].key.key : NULL, &o, &res))) { cli_lib_fail(cmd, st); goto done; }
    double secs = cli_now() - t0;
    char label[64];
    ops->label(m, label, sizeof label);
    if (json) {
        int nulls = 0;
        json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:I, s:i, s:o, s:o, s:o, s:o, s:i, s:o}", "attack", "key-search", "lock",
                              cli_jstr(ops->name), "label", cli_jstr(label), "known_images", (json_int_t)known.n,
                              "measured_images", (json_int_t)rest.n, "budget", (int)budget, "random_best_known",
                              cli_jnum(res.random_known, &nulls), "random_best", cli_jnum(res.random_rest, &nulls),
                              "climb_known", cli_jnum(res.climb_known, &nulls), "climb", cli_jnum(res.climb_rest, &nulls),
                              "evaluations", res.evaluations, "seconds", cli_jnum(secs, &nulls));
        if (j && res.right_rest >= 0) json_object_set_new(j, "right_key", cli_jnum(res.right_rest, &nulls));
        if (cli_json_emit(cmd, j, nulls, NULL)) goto done;
    } else {
        printf("key search on %s (%s %s): %lld labelled images known, %lld measured, %d keys per search (%.0f s)\n",
               cli_safe(path), ops->name, cli_safe(label), (long long)known.n, (long long)rest.n, (int)budget, secs);
        printf("  best of %d random keys   %6.2f%% on the known images, %6.2f%% on the others\n", (int)budget,
               100 * res.random_known, 100 * res.random_rest);
        printf("  hill climbing (%s)  %6.2f%% on the known images, %6.2f%% on the others\n", ops->neighbour,
               100 * res.climb_known, 100 * res.climb_rest);
        if (res.right_rest >= 0) printf("  the right key                                  %6.2f%% on the others\n", 100 * res.right_rest);
    }
    rc = 0;
done:
    nnl_dataset_free(&known);
    nnl_dataset_free(&rest);
    nnl_dataset_free(&ds);
    nnl_model_free(m);
    cli_locks_free(&L);
    free(lo);
    return rc;
}

const nnl_command nnl_cmd_attack = {"attack", "the adversary's tools: key-search, prune", run, usage};
