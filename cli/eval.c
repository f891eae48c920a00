/* nnlock eval: accuracy, per-class accuracy and confusion matrix of a model; with the keys
 * of a locked model, its table: authorized and unauthorized accuracy, remapping, wrong keys,
 * and for a model with several locks one row per set of keys held. */
#include "figures.h"
#include "locks.h"
#include "weights_report.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock eval MODEL [options]\n"
        "       nnlock eval --key KEY [--key KEY...] [--baseline BASE] LOCKED [LOCKED...] [options]\n\n"
        "Evaluates a model on the test split of a data set: accuracy, per-class accuracy and\n"
        "the confusion matrix. With the key of a locked model (any lock: the key file says which;\n"
        "--lock NAME before a --key makes sure): the accuracy an authorized user gets (the key\n"
        "applied), an unauthorized one (plain images), the remapped unauthorized accuracy (an\n"
        "attacker relabels the outputs with a mapping learnt from 1%% of the labelled test images),\n"
        "and the accuracy of random wrong keys and of keys one step from the right one. Several\n"
        "LOCKED models (e.g. one per seed) give mean +/- std. A model with several locks (e.g.\n"
        "weights and transform) and their keys gets one row per set of keys held: none, each\n"
        "alone, all.\n\n"
        "  -d, --data PATH     data set directory (default: the one the model was trained on, if it\n"
        "                      is still there, else %s)\n"
        "      --split NAME    test or train (default test)\n"
        "      --lock NAME     the lock of the --key after it (%s)\n"
        "  -k, --key FILE      a key of the locked model (repeat for a model with several locks)\n"
        "      --baseline FILE the unlocked model trained with the same settings, for comparison\n"
        "      --remap F       fraction of test images the remapping attacker knows (default 0.01)\n"
        "      --tta L         test-time augmentation of every accuracy (a locked model's table too:\n"
        "                      each view made of the plain image, then keyed): 0 none, 1 mirror,\n"
        "                      2 mirror and translate (default 0)\n"
        "      --trials N      random wrong keys, and keys one step away, to try (default 10 each;\n"
        "                      0: none)\n"
        "      --out DIR       write figures: plain and keyed examples, the certificate, curves\n"
        "  -b, --batch N       batch size (default 500; less for large networks, to keep\n"
        "                      activations near 512 MB)\n"
        "  -t, --threads N     threads (default 0: all cores)\n"
        "      --json          print the result as JSON on stdout (with at least 'authorized' and\n"
        "                      'unauthorized', accuracies in [0, 1], for a locked model)\n"
        CLI_WEIGHTS_USAGE
        "      --wrong-keys    for a weight-locked model and its key: accuracy with the right key,\n"
        "                      100 random wrong keys and one-bit-off keys, NaN/Inf fraction\n",
        NNL_DEFAULT_DATA, nnl_lock_names());
}

static void print_report(nnl_model *m, const nnl_eval *ev) {
    int k = ev->nclass;
    printf("accuracy %.2f%% (%lld/%lld), loss %.4f\n\nper class:\n", 100.0 * nnl_eval_accuracy(ev),
           (long long)ev->correct, (long long)ev->n, ev->loss);
    if (ev->invalid)
        printf("%lld images got NaN or Inf outputs (counted as wrong)\n", (long long)ev->invalid);
    for (int i = 0; i < k; i++) {
        printf("  %3d %-16s %6.2f%%\n", i, cli_safe(nnl_model_class_name(m, i)), 100.0 * nnl_eval_class_accuracy(ev, i));
    }
    if (k > 20) return;
    printf("\nconfusion matrix (rows: true class, columns: predicted):\n     ");
    for (int j = 0; j < k; j++) printf("%6d", j);
    printf("\n");
    for (int i = 0; i < k; i++) {
        printf("  %3d", i);
        for (int j = 0; j < k; j++) printf("%6lld", (long long)ev->confusion[(size_t)i * k + j]);
        printf("\n");
    }
}

static json_t *report_json(nnl_model *m, const nnl_eval *ev, int *nulls) {
    int k = ev->nclass;
    json_t *pc = json_array(), *cm = json_array();
    for (int i = 0; i < k; i++) {
        json_array_append_new(pc, json_pack("{s:i, s:o, s:o}", "class", i, "name", cli_jstr(nnl_model_class_name(m, i)),
                                            "accuracy", cli_jnum(nnl_eval_class_accuracy(ev, i), nulls)));
        json_t *row = json_array();
        for (int j = 0; j < k; j++) json_array_append_new(row, json_integer(ev->confusion[(size_t)i * k + j]));
        json_array_append_new(cm, row);
    }
    return json_pack("{s:o, s:I, s:I, s:I, s:o, s:o, s:o}", "accuracy", cli_jnum(nnl_eval_accuracy(ev), nulls), "correct",
                     (json_int_t)ev->correct, "n", (json_int_t)ev->n, "invalid", (json_int_t)ev->invalid, "loss",
                     cli_jnum(ev->loss, nulls), "per_class", pc, "confusion", cm);
}

/* The test-time augmentation level of every accuracy a lock table reports (--tta). */
static int g_tta;

static int accuracy(const char *cmd, nnl_model *m, const nnl_dataset *ds, const nnl_hooks *h, int batch, double *acc) {
    nnl_eval ev;
    int st = nnl_evaluate_tta(m, ds, h, batch, g_tta, &ev);
    if (st) return cli_lib_fail(cmd, st);
    *acc = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    return 0;
}

static void mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0.0, q = 0.0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    static char buf[256];
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, sizeof buf, "%.*s", (int)(n - b), path + b);
    return buf;
}

/* The mean and max accuracy of `trials` other keys from the lock: random ones (neighbour 0) or
 * ones a step from the right key (neighbour 1). */
static int other_keys(const char *cmd, nnl_model *m, const nnl_dataset *ds, const cli_lock *l, int neighbour, int trials,
                      int batch, double *mean, double *max) {
    *mean = 0.0;
    *max = 0.0;
    for (int t = 0; t < trials; t++) {
        void *k = NULL;
        uint64_t seed = 0x6b6579ULL + 1000003ULL * (uint64_t)t; /* reproducible: the same keys every run */
        int st = neighbour ? l->ops->neighbour_key(&k, l->key.key, seed) : l->ops->random_key(&k, l->key.key, seed);
        if (st) return cli_lib_fail(cmd, st);
        nnl_hooks h;
        l->ops->authorized(k, &h);
        double acc = 0.0;
        int fail = accuracy(cmd, m, ds, &h, batch, &acc);
        l->ops->free_key(k);
        if (fail) return 1;
        *mean += acc / trials;
        if (acc > *max) *max = acc;
    }
    return 0;
}

/* Every lock a key was given for must be one the model carries. */
static int model_has(const char *cmd, const nnl_model *m, const char *path, cli_locks *L) {
    for (int i = 0; i < L->n; i++)
        if (!L->l[i].ops->locks(m))
            return cli_fail(cmd, "%s is not %s-locked (its metadata has no record of that lock), but %s is a %s key", path,
                            L->l[i].ops->name, L->l[i].key.name, L->l[i].ops->name);
    return 0;
}

/* One input lock: its table, mean +/- std over the given locked models. `first` is models[0]
 * already loaded (weights opened); lock_table takes it over. */
static int lock_table(const char *cmd, nnl_model *first, char **models, int nmodels, cli_locks *L, const char *baseline,
                      const char *data, nnl_dataset *ds, const cli_weights_opts *wo, double remap, int trials, int batch,
                      const char *outdir, int json) {
    cli_lock *l = &L->l[0];
    nnl_hooks keyed;
    l->ops->authorized(l->key.key, &keyed);
    double *v = calloc((size_t)nmodels * 3, sizeof *v), base = -1.0, orig_rec = -1.0, wrong = -1, wrong_max = -1, near = -1, near_max = -1;
    double *trusted = v, *clean = v + nmodels, *remapped = v + 2 * nmodels;
    char label[64] = "?";
    int rc = 1, other = trials > 0 && l->ops->random_key;
    if (!v) { cli_fail(cmd, "out of memory"); goto done; }
    for (int i = 0; i < nmodels; i++) {
        nnl_model *m = first;
        first = NULL;
        if (!m && cli_load_model(cmd, models[i], wo, &m)) goto done;
        if (model_has(cmd, m, models[i], L) || cli_locks_fit(L, cmd, m) || cli_match_classes(cmd, m, ds, "test")) {
            nnl_model_free(m);
            goto done;
        }
        l->ops->label(m, label, sizeof label);
        /* A lock made from a trained model records that model's test accuracy. */
        char key[96];
        snprintf(key, sizeof key, "lock.%s.original_accuracy", l->ops->name);
        const char *orec = nnl_model_meta_get(m, key);
        if (i == 0 && orec) orig_rec = atof(orec);
        int st;
        if (accuracy(cmd, m, ds, &keyed, batch, &trusted[i]) || accuracy(cmd, m, ds, NULL, batch, &clean[i])) {
            nnl_model_free(m);
            goto done;
        }
        if ((st = nnl_eval_remapped(m, ds, NULL, remap, 1, &remapped[i]))) { cli_lib_fail(cmd, st); nnl_model_free(m); goto done; }
        /* Wrong keys on the first model: they say what a guessed key is worth, not a seed's luck. */
        if (i == 0 && other &&
            (other_keys(cmd, m, ds, l, 0, trials, batch, &wrong, &wrong_max) ||
             other_keys(cmd, m, ds, l, 1, trials, batch, &near, &near_max))) {
            nnl_model_free(m);
            goto done;
        }
        if (i == 0 && outdir && cli_figures(cmd, outdir, m, ds, L)) { nnl_model_free(m); goto done; }
        nnl_model_free(m);
    }
    if (baseline) {
        nnl_model *b;
        if (cli_load_model(cmd, baseline, wo, &b)) goto done;
        int fail = cli_match_classes(cmd, b, ds, "test") || accuracy(cmd, b, ds, NULL, batch, &base);
        nnl_model_free(b);
        if (fail) goto done;
    } else if (orig_rec >= 0) {
        base = orig_rec;  /* the model the lock was made from, measured when it was locked */
    }
    double tm, ts, cm, cs, rm, rs;
    mean_std(trusted, nmodels, &tm, &ts);
    mean_std(clean, nmodels, &cm, &cs);
    mean_std(remapped, nmodels, &rm, &rs);
    if (json) {
        int nulls = 0;
        json_t *r = json_pack("{s:o, s:o, s:o, s:i, s:o, s:o}", "lock", cli_jstr(l->ops->name), "label", cli_jstr(label),
                              "data", cli_jstr(base_name(data)), "models", nmodels, "authorized", cli_jnum(tm, &nulls),
                              "unauthorized", cli_jnum(cm, &nulls));
        if (r) {
            const char *names[] = {"authorized_mean", "authorized_std", "unauthorized_mean", "unauthorized_std",
                                   "remapped_mean", "remapped_std", "remap_fraction",
                                   /* the names the certificate table has always had */
                                   "trusted_mean", "trusted_std", "unverified_mean", "unverified_std"};
            const double vals[] = {tm, ts, cm, cs, rm, rs, remap, tm, ts, cm, cs};
            for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) json_object_set_new(r, names[k], cli_jnum(vals[k], &nulls));
            if (l->ops == &nnl_lock_certificate) json_object_set_new(r, "strategy", cli_jstr(label));
            json_object_set_new(r, "tta", json_integer(g_tta));
            if (other) {
                json_object_set_new(r, "wrong_key_mean", cli_jnum(wrong, &nulls));
                json_object_set_new(r, "wrong_key_max", cli_jnum(wrong_max, &nulls));
                /* the gate lock's names for the same (AuthNet calls wrong keys random keys) */
                json_object_set_new(r, "random_key_mean", cli_jnum(wrong, &nulls));
                json_object_set_new(r, "random_key_max", cli_jnum(wrong_max, &nulls));
                json_object_set_new(r, "neighbour_key_mean", cli_jnum(near, &nulls));
                json_object_set_new(r, "neighbour_key_max", cli_jnum(near_max, &nulls));
                json_object_set_new(r, "neighbour", cli_jstr(l->ops->neighbour));
                json_object_set_new(r, "trials", json_integer(trials));
            }
            if (base >= 0) {
                json_object_set_new(r, "baseline", cli_jnum(base, &nulls));
                json_object_set_new(r, "original", cli_jnum(base, &nulls));
            }
        }
        if (cli_json_emit(cmd, r, nulls, NULL)) goto done;
    } else {
        printf("| Lock | Data set | Baseline clean | Authorized (key) | Unauthorized (plain) | Unauthorized remapped |%s\n",
               other ? " Wrong keys (mean / max) | One step off (mean / max) |" : "");
        printf("|---|---|---|---|---|---|%s\n", other ? "---|---|" : "");
        char bs[32] = "-";
        if (base >= 0) snprintf(bs, sizeof bs, "%.2f", 100.0 * base);
        char cell[3][48];
        const double mv[3] = {tm, cm, rm}, sv[3] = {ts, cs, rs};
        for (int i = 0; i < 3; i++) {
            if (nmodels > 1) snprintf(cell[i], sizeof cell[i], "%.2f +/- %.2f", 100.0 * mv[i], 100.0 * sv[i]);
            else snprintf(cell[i], sizeof cell[i], "%.2f", 100.0 * mv[i]);
        }
        printf("| %s %s | %s | %s | %s | %s | %s |", l->ops->name, cli_safe(label), cli_safe(base_name(data)), bs, cell[0],
               cell[1], cell[2]);
        if (other) printf(" %.2f / %.2f | %.2f / %.2f |", 100 * wrong, 100 * wrong_max, 100 * near, 100 * near_max);
        printf("\n\n%d locked model(s); authorized = the key applied to every test image, unauthorized = plain "
               "test images, remapped = unauthorized accuracy after relabelling the outputs with a mapping learnt from "
               "%.0f%% of the labelled test images.", nmodels, 100.0 * remap);
        if (other) printf(" Wrong keys: %d random keys of the same kind; one step off: %d keys %s from the right one.",
                          trials, trials, l->ops->neighbour);
        printf("\n");
        if (outdir) printf("figures written to %s/\n", outdir);
    }
    rc = 0;
done:
    nnl_model_free(first);
    free(v);
    return rc;
}

/* A model with several locks: one row per set of keys held, from none to all. A weight lock
 * whose key is not held runs as it is stored (encrypted: its outputs are NaN). */
static int layered_table(const char *cmd, const char *path, cli_locks *L, const char *data, nnl_dataset *ds, int batch,
                         int json) {
    cli_weights_opts raw = {0};
    raw.allow_locked = 1;
    nnl_model *locked = NULL, *open = NULL;
    int rc = 1, st, wl = cli_locks_weights(L);
    if (cli_load_model(cmd, path, &raw, &locked)) return 1;
    if (model_has(cmd, locked, path, L) || cli_locks_fit(L, cmd, locked) || cli_match_classes(cmd, locked, ds, "test")) goto done;
    const nnl_lock_ops *const *all = nnl_lock_all();
    for (int i = 0; all[i]; i++) {
        int held = 0;
        for (int j = 0; j < L->n; j++) held |= L->l[j].ops == all[i];
        if (all[i]->locks(locked) && !held)
            fprintf(stderr, "nnlock %s: note: %s is also %s-locked; no key given for it, so no row holds it\n", cmd, path,
                    all[i]->name);
    }
    if (wl >= 0) {
        if (cli_load_model(cmd, path, &raw, &open)) goto done;
        if ((st = L->l[wl].ops->open(L->l[wl].key.key, open))) { cli_fail(cmd, "%s: %s", path, nnl_errmsg()); goto done; }
    }
    unsigned all_keys = (1u << L->n) - 1;
    json_t *rows = json ? json_array() : NULL;
    int nulls = 0;
    double authorized = 0, unauthorized = 0;
    if (!json) {
        printf("| Keys held | Data set | Accuracy |\n|---|---|---|\n");
    }
    for (unsigned s = 0; s <= all_keys; s++) {
        nnl_hooks h;
        if (cli_locks_hooks(L, cmd, s, &h)) goto done;
        int has_input = 0;
        for (int i = 0; i < L->n; i++) has_input |= (s >> i & 1) && L->l[i].ops->seam == NNL_SEAM_INPUT;
        nnl_model *m = wl >= 0 && (s >> wl & 1) ? open : locked;
        nnl_eval ev;
        if ((st = nnl_evaluate(m, ds, has_input ? &h : NULL, batch, &ev))) { cli_lib_fail(cmd, st); goto done; }
        double acc = nnl_eval_accuracy(&ev);
        nnl_eval_free(&ev);
        if (s == 0) unauthorized = acc;
        if (s == all_keys) authorized = acc;
        char held[256] = "";
        for (int i = 0; i < L->n; i++)
            if (s >> i & 1) snprintf(held + strlen(held), sizeof held - strlen(held), "%s%s", *held ? " + " : "", L->l[i].ops->name);
        if (json) {
            json_t *names = json_array();
            for (int i = 0; i < L->n; i++)
                if (s >> i & 1) json_array_append_new(names, cli_jstr(L->l[i].ops->name));
            json_array_append_new(rows, json_pack("{s:o, s:o}", "keys", names, "accuracy", cli_jnum(acc, &nulls)));
        } else {
            printf("| %s | %s | %.2f |\n", *held ? held : "none", cli_safe(base_name(data)), 100.0 * acc);
        }
    }
    if (json) {
        json_t *r = json_pack("{s:o, s:o, s:o, s:o}", "data", cli_jstr(base_name(data)), "authorized",
                              cli_jnum(authorized, &nulls), "unauthorized", cli_jnum(unauthorized, &nulls), "rows", rows);
        if (cli_json_emit(cmd, r, nulls, NULL)) goto done;
    } else {
        printf("\nEach row: the test accuracy with those keys held; a weight lock without its key runs encrypted, an "
               "input lock without its key gets plain images.\n");
    }
    rc = 0;
done:
    nnl_model_free(locked);
    nnl_model_free(open);
    return rc;
}

static int run(int argc, char **argv) {
    static const struct option base[] = {{"data", 1, 0, 'd'}, {"split", 1, 0, 1}, {"batch", 1, 0, 'b'},
                                         {"threads", 1, 0, 't'}, {"json", 0, 0, 2}, {"baseline", 1, 0, 3},
                                         {"remap", 1, 0, 4}, {"out", 1, 0, 5}, {"wrong-keys", 0, 0, 6}, {"trials", 1, 0, 7},
                                         {"tta", 1, 0, 8},
                                         CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, 0);
    if (!lo) return cli_fail("eval", "out of memory");
    const char *cmd = "eval", *data = NULL, *baseline = NULL, *outdir = NULL;
    cli_weights_opts wo = {0};
    long batch = 500, threads = 0, trials = 10, tta = 0;
    double remap = 0.01;
    int split = NNL_SPLIT_TEST, json = 0, wrong_keys = 0, c, r, rc = 2;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:b:t:k:", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 1:
            if (!strcmp(optarg, "test")) split = NNL_SPLIT_TEST;
            else if (!strcmp(optarg, "train")) split = NNL_SPLIT_TRAIN;
            else { cli_fail(cmd, "--split must be test or train, got '%s'", optarg); goto out; }
            break;
        case 'b': if (cli_int(cmd, "--batch", optarg, 1, 65536, &batch)) goto out; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) goto out; break;
        case 2: json = 1; break;
        case 'k': cli_locks_option(&L, cmd, L.code + 1); break; /* -k is --key */
        case 3: baseline = optarg; break;
        case 4: if (cli_float(cmd, "--remap", optarg, 1e-4, 0.5, &remap)) goto out; break;
        case 5: outdir = optarg; break;
        case 6: wrong_keys = 1; break;
        case 7: if (cli_int(cmd, "--trials", optarg, 0, 100000, &trials)) goto out; break;
        case 8: if (cli_int(cmd, "--tta", optarg, 0, 2, &tta)) goto out; break;
        default:
            if (cli_weights_option(c, 300, &wo)) break;
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r != 2) rc = cli_bad_option(cmd, argc, argv);
            goto out;
        }
    }
    if (optind >= argc) { cli_fail(cmd, "no model file given (usage: nnlock eval MODEL [options])"); goto out; }
    if (!L.n && optind + 1 < argc) { cli_fail(cmd, "several models need --key (they are compared as locked models)"); goto out; }
    if (!L.n && baseline) { cli_fail(cmd, "--baseline needs --key (it compares a locked model with its baseline)"); goto out; }
    rc = 1;
    if (outdir && cli_check_out(cmd, outdir, NNL_WRITE_DIR)) goto out;
    if (cli_threads(cmd, threads)) goto out;
    if ((r = cli_locks_keys(&L, cmd, 0, 0, 0, 0))) { rc = r; goto out; }
    int inputs[CLI_MAX_LOCKS], ni = cli_locks_inputs(&L, inputs), wl = cli_locks_weights(&L);
    if (wl >= 0 && (wo.key_file || wo.passphrase_file)) { cli_fail(cmd, "give the weight key once: --key or --weights-key"); goto out; }
    /* A model with several locks, or a weight key given with --key: the rows of keys held. */
    int layered = L.n > 1 || wl >= 0;
    if (layered && optind + 1 < argc) { cli_fail(cmd, "several locks' table is for one model at a time"); goto out; }
    if (layered && baseline) { cli_fail(cmd, "--baseline is for a model with one input lock"); goto out; }
    /* Loaded before the data: data sets resized on loading (GTSRB) follow the model. */
    nnl_model *m = NULL;
    if (layered) {
        cli_weights_opts raw = {0};
        raw.allow_locked = 1;
        if (cli_load_model(cmd, argv[optind], &raw, &m)) goto out;
    } else if (cli_load_model(cmd, argv[optind], &wo, &m)) {
        goto out;
    }
    cli_data_for_model(m);
    data = cli_model_data(cmd, m, data);
    nnl_dataset ds = {0};
    if (cli_load_data(cmd, data, split, &ds) || cli_match_classes(cmd, m, &ds, split == NNL_SPLIT_TRAIN ? "training" : "test")) {
        nnl_model_free(m);
        nnl_dataset_free(&ds);
        goto out;
    }
    if (wrong_keys) {
        nnl_model_free(m); /* the report reads the locked file itself */
        if (L.n) rc = cli_fail(cmd, "--wrong-keys takes the weight key as --weights-key FILE");
        else if (!wo.key_file && !wo.passphrase_file) rc = cli_fail(cmd, "--wrong-keys needs the right key (--weights-key FILE)");
        else rc = cli_weights_report(cmd, argv[optind], &wo, &ds, json);
        nnl_dataset_free(&ds);
        goto out;
    }
    if (layered) {
        nnl_model_free(m);
        rc = layered_table(cmd, argv[optind], &L, data, &ds, (int)batch, json);
        nnl_dataset_free(&ds);
        goto out;
    }
    if (ni) {
        g_tta = (int)tta;
        rc = lock_table(cmd, m, argv + optind, argc - optind, &L, baseline, data, &ds, &wo, remap, (int)trials, (int)batch,
                        outdir, json);
        nnl_dataset_free(&ds);
        goto out;
    }
    nnl_eval ev = {0};
    int st;
    const nnl_lock_ops *const *all = nnl_lock_all();
    for (int i = 0; all[i] && !json; i++)
        if (all[i]->seam == NNL_SEAM_INPUT && all[i]->locks(m))
            fprintf(stderr, "nnlock eval: note: %s is %s-locked; without --key this is what unauthorized users get\n",
                    argv[optind], all[i]->name);
    if ((st = nnl_evaluate_tta(m, &ds, NULL, (int)batch, (int)tta, &ev))) { cli_lib_fail(cmd, st); goto done; }
    if (json) {
        int nulls = 0;
        char why[256];
        snprintf(why, sizeof why, "%lld of %lld images got NaN or Inf outputs (counted as wrong), so the loss is not a "
                 "number%s", (long long)ev.invalid, (long long)ev.n,
                 nnl_weights_locked(m) ? ": the model is weight-locked and ran without its key" : "");
        json_t *jr = report_json(m, &ev, &nulls);
        if (cli_json_emit(cmd, jr, nulls, why)) goto done;
    } else {
        print_report(m, &ev);
    }
    if (outdir && cli_figures(cmd, outdir, m, &ds, NULL)) goto done;
    rc = 0;
done:
    nnl_eval_free(&ev);
    nnl_dataset_free(&ds);
    nnl_model_free(m);
out:
    cli_locks_free(&L);
    free(lo);
    return rc;
}

const nnl_command nnl_cmd_eval = {"eval", "accuracy, confusion matrix; a locked model's authorized/unauthorized table", run, usage};
