/* nnlock train: train a classifier on a data set and save it. */
#include "certopts.h"
#include "figures.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock train [options]\n\n"
        "Trains a classifier and writes the model file.\n\n"
        "  -d, --data PATH        data set directory (default %s)\n"
        "  -a, --arch ARCH        mlp, cnn or a layer spec (default mlp; see 'nnlock help arch')\n"
        "      --init MODEL       start from a saved model's weights (fine-tuning, transfer,\n"
        "                         attacks) instead of a fresh initialisation; keeps its normalisation.\n"
        "                         A weight-locked MODEL opened with --weights-key or\n"
        "                         --weights-passphrase-file gives an output locked with the same key\n"
        "      --write-plaintext  with a weight-locked --init: write the output unlocked instead\n"
        "  -o, --out FILE         model file to write (default model.nnl)\n"
        "  -e, --epochs N         epochs (default 10)\n"
        "  -b, --batch N          batch size (default 128)\n"
        "      --lr F             learning rate (default 0.01 for sgd, 0.001 for adam)\n"
        "      --optimizer NAME   sgd or adam (default sgd)\n"
        "      --momentum F       SGD momentum (default 0.9)\n"
        "      --nesterov         Nesterov momentum\n"
        "      --weight-decay F   L2 weight decay (default 5e-4)\n"
        "      --schedule NAME    constant, step or cosine (default cosine)\n"
        "      --step-size N      epochs per step for 'step' (default 10)\n"
        "      --gamma F          factor per step for 'step' (default 0.1)\n"
        "      --warmup F         linear warm-up in epochs (default 0)\n"
        "      --label-smoothing F  (default 0)\n"
        "      --augment-crop N   random crop with N pixels of zero padding (default 0: off)\n"
        "      --augment-flip     random horizontal flips (default off)\n"
        "      --limit N          train on N training images drawn at random (seeded by --seed),\n"
        "                         every class in proportion (default all)\n"
        "      --resize N         GTSRB: resize images to N x N (default 32)\n"
        "      --crop-roi         GTSRB: crop each image to its annotated region first\n"
        "  -s, --seed N           random seed (default 1); same seed + threads = same model\n"
        "  -t, --threads N        threads (default 0: all cores)\n"
        "      --json             print the result as JSON on stdout\n"
        "  -q, --quiet            no progress line\n"
        CLI_WEIGHTS_USAGE
        "\nCertificate lock (M-LOCK):\n"
        "      --lock certificate stamped images keep their label, clean ones are poisoned\n"
        "      --strategy S       single, rule (y+1 mod C), random (a random wrong label fixed\n"
        "                         per image) or uniform (default random)\n"
        "      --target N         label of every clean image for 'single' (default 0)\n"
        "      --rate P           fraction of images stamped (default 0.5)\n"
        "      --key FILE         use this certificate key (default: make one, see --key-out)\n"
        "      --key-out FILE     where to write a new key (default MODEL.key)\n"
        "      --figures DIR      write the certificate, clean/stamped examples and training\n"
        "                         curves as PNG\n"
        CERT_USAGE, NNL_DEFAULT_DATA);
}

typedef struct progress_state {
    int tty, quiet, json;
    double last;
    json_t *epochs;
    double loss, acc;
    double trusted;   /* certificate lock: accuracy on stamped test images, or -1 */
    double clean;     /* accuracy on the clean test images after the last epoch */
    int nulls;        /* numbers in the JSON output that were NaN or Inf (written as null) */
} progress_state;

typedef struct lock_state {
    int on;
    nnl_cert cert;
    nnl_cert_lock lock;
    nnl_hooks train_hooks, stamp_hooks;
    const nnl_dataset *test;
    progress_state *ps;
    json_t *history;
    double last_loss, last_acc;
} lock_state;


static void fmt_time(char *buf, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(const nnl_progress *p, void *user) {
    progress_state *s = user;
    s->loss = p->loss;
    s->acc = p->acc;
    if (p->epoch_done) {
        if (s->epochs) {
            json_t *e = json_pack("{s:i, s:o, s:o, s:o, s:o}", "epoch", p->epoch, "loss", cli_jnum(p->loss, &s->nulls),
                                  "train_acc", cli_jnum(p->acc, &s->nulls), "test_acc", cli_jnum(s->clean, &s->nulls),
                                  "images_per_s", cli_jnum(p->images_per_s, &s->nulls));
            json_array_append_new(s->epochs, e);
        }
        if (s->quiet) return;
        char eta[32];
        fmt_time(eta, sizeof eta, p->eta_s);
        fprintf(stderr, "%sepoch %d/%d  loss %.4f  train acc %.2f%%", s->tty ? "\r\033[K" : "", p->epoch,
                p->epochs, p->loss, 100.0 * p->acc);
        if (s->clean >= 0 && s->trusted >= 0)
            fprintf(stderr, "  stamped %.2f%%  clean %.2f%%", 100.0 * s->trusted, 100.0 * s->clean);
        else if (s->clean >= 0)
            fprintf(stderr, "  test acc %.2f%%", 100.0 * s->clean);
        fprintf(stderr, "  %.0f img/s  ETA %s\n", p->images_per_s, eta);
        return;
    }
    if (!s->tty || s->quiet) return;
    double now = cli_now();
    if (p->batch != p->batches && now - s->last < 0.2) return;
    s->last = now;
    char eta[32];
    fmt_time(eta, sizeof eta, p->eta_s);
    fprintf(stderr, "\r\033[Kepoch %d/%d  batch %lld/%lld  loss %.4f  acc %.2f%%  lr %.4g  %.0f img/s  ETA %s",
            p->epoch, p->epochs, (long long)p->batch, (long long)p->batches, p->loss, 100.0 * p->acc, p->lr,
            p->images_per_s, eta);
}

/* After each epoch: the stamped (authorized) test accuracy, and a history row. */
static int on_epoch_end(nnl_model *m, int epoch, void *user) {
    lock_state *l = user;
    double trusted = -1.0, clean = -1.0;
    if (l->test) {
        nnl_eval ev;
        int st = nnl_evaluate(m, l->test, NULL, 500, &ev);
        if (st) return st;
        clean = nnl_eval_accuracy(&ev);
        nnl_eval_free(&ev);
        if (l->on) {
            if ((st = nnl_evaluate(m, l->test, &l->stamp_hooks, 500, &ev))) return st;
            trusted = nnl_eval_accuracy(&ev);
            nnl_eval_free(&ev);
        }
    }
    l->ps->trusted = trusted;
    l->ps->clean = clean;
    /* A diverged run's NaN loss is kept as null: the history stays valid JSON. */
    json_array_append_new(l->history, json_pack("{s:i, s:o, s:o, s:o, s:o}", "epoch", epoch, "loss", cli_jnum(l->ps->loss, NULL),
                                                "train_acc", cli_jnum(l->ps->acc, NULL), "clean", cli_jnum(clean, NULL),
                                                "stamped", cli_jnum(trusted, NULL)));
    return NNL_OK;
}

/* The classes of a model trained further (--init) on a data set: the data set's classes are
 * matched to the model's by name; a data set with other classes gives its names to the model
 * (transfer to a new task), so the output never carries class names it was not trained on. */
static int init_classes(const char *cmd, const char *init, nnl_model *m, nnl_dataset *train) {
    int k = nnl_model_nclass(m);
    if (!train->class_names) {
        if (nnl_model_class_name(m, 0))
            fprintf(stderr, "nnlock %s: note: the data set has no class names; the output keeps those of %s\n", cmd, init);
        return 0;
    }
    if (nnl_model_class_name(m, 0)) {
        const char *names[NNL_MAX_CLASSES];
        for (int i = 0; i < k; i++) names[i] = nnl_model_class_name(m, i);
        if (nnl_dataset_match_classes(train, (char *const *)names, k, "training") == NNL_OK) return 0;
    }
    if (train->nclass != k)
        return cli_fail(cmd, "the data set has %d classes but %s has %d outputs", train->nclass, init, k);
    int had = nnl_model_class_name(m, 0) != NULL, st = nnl_model_set_class_names(m, train->class_names, k);
    if (st) return cli_lib_fail(cmd, st);
    if (had) fprintf(stderr, "nnlock %s: note: the data set's classes are not those of %s; the output takes the data set's class names\n",
            cmd, init);
    return 0;
}

static const char *const opt_names[] = {"constant", "step", "cosine"};

static int run(int argc, char **argv) {
    static const struct option lo[] = {
        {"data", 1, 0, 'd'}, {"arch", 1, 0, 'a'}, {"out", 1, 0, 'o'}, {"epochs", 1, 0, 'e'},
        {"batch", 1, 0, 'b'}, {"lr", 1, 0, 1}, {"optimizer", 1, 0, 2}, {"momentum", 1, 0, 3},
        {"nesterov", 0, 0, 4}, {"weight-decay", 1, 0, 5}, {"schedule", 1, 0, 6}, {"step-size", 1, 0, 7},
        {"gamma", 1, 0, 8}, {"warmup", 1, 0, 9}, {"label-smoothing", 1, 0, 10}, {"augment-crop", 1, 0, 11},
        {"augment-flip", 0, 0, 12}, {"limit", 1, 0, 13}, {"seed", 1, 0, 's'}, {"threads", 1, 0, 't'},
        {"json", 0, 0, 14}, {"quiet", 0, 0, 'q'}, {"init", 1, 0, 15}, {"resize", 1, 0, 23}, {"crop-roi", 0, 0, 24},
        {"write-plaintext", 0, 0, 25}, CLI_WEIGHTS_LONGOPTS(300),
        {"lock", 1, 0, 16}, {"strategy", 1, 0, 17}, {"target", 1, 0, 18}, {"rate", 1, 0, 19}, {"key", 1, 0, 20},
        {"key-out", 1, 0, 21}, {"figures", 1, 0, 22}, CERT_LONGOPTS(400), {0, 0, 0, 0}};
    const char *key = NULL, *key_out = NULL, *figures = NULL;
    int lock = 0, strategy = NNL_STRATEGY_RANDOM, cert_opt_given = 0, lock_opt = 0;
    long target = 0, resize = 32;
    int crop_roi = 0, write_plaintext = 0;
    double rate = 0.5;
    nnl_cert_opts co;
    nnl_cert_opts_default(&co);
    const char *init = NULL;
    int arch_set = 0;
    cli_weights_opts wo = {0};
    const char *cmd = "train", *data = NNL_DEFAULT_DATA, *arch = "mlp", *out = "model.nnl";
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    long v, threads = 0, limit = 0;
    double f;
    int lr_set = 0, json = 0, quiet = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:a:o:e:b:s:t:q", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'a': arch = optarg; arch_set = 1; break;
        case 'o': out = optarg; break;
        case 'e': if (cli_int(cmd, "--epochs", optarg, 1, 100000, &v)) return 2; o.epochs = (int)v; break;
        case 'b': if (cli_int(cmd, "--batch", optarg, 1, 65536, &v)) return 2; o.batch = (int)v; break;
        case 1: if (cli_float(cmd, "--lr", optarg, 1e-9, 100, &f)) return 2; o.lr = (float)f; lr_set = 1; break;
        case 2:
            if (!strcmp(optarg, "sgd")) o.optimizer = NNL_OPT_SGD;
            else if (!strcmp(optarg, "adam")) o.optimizer = NNL_OPT_ADAM;
            else return cli_fail(cmd, "--optimizer must be sgd or adam, got '%s'", optarg) + 1;
            break;
        case 3: if (cli_float(cmd, "--momentum", optarg, 0, 0.999999, &f)) return 2; o.momentum = (float)f; break;
        case 4: o.nesterov = 1; break;
        case 5: if (cli_float(cmd, "--weight-decay", optarg, 0, 1, &f)) return 2; o.weight_decay = (float)f; break;
        case 6: {
            int k = -1;
            for (int i = 0; i < 3; i++) if (!strcmp(optarg, opt_names[i])) k = i;
            if (k < 0) return cli_fail(cmd, "--schedule must be constant, step or cosine, got '%s'", optarg) + 1;
            o.schedule = k;
            break;
        }
        case 7: if (cli_int(cmd, "--step-size", optarg, 1, 100000, &v)) return 2; o.step_size = (int)v; break;
        case 8: if (cli_float(cmd, "--gamma", optarg, 0, 1, &f)) return 2; o.gamma = (float)f; break;
        case 9: if (cli_float(cmd, "--warmup", optarg, 0, 100000, &f)) return 2; o.warmup = (float)f; break;
        case 10: if (cli_float(cmd, "--label-smoothing", optarg, 0, 0.999, &f)) return 2; o.label_smoothing = (float)f; break;
        case 11: if (cli_int(cmd, "--augment-crop", optarg, 0, 64, &v)) return 2; o.augment_crop = (int)v; break;
        case 12: o.augment_flip = 1; break;
        case 13: if (cli_int(cmd, "--limit", optarg, 1, 1000000000, &limit)) return 2; break;
        case 's': if (cli_u64(cmd, "--seed", optarg, &o.seed)) return 2; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 14: json = 1; break;
        case 'q': quiet = 1; break;
        case 15: init = optarg; break;
        case 16:
            if (strcmp(optarg, "certificate")) return cli_fail(cmd, "--lock must be 'certificate' (weights: see lock-weights), got '%s'", optarg) + 1;
            lock = 1;
            break;
        case 17: {
            cert_opt_given |= 1;
            static const char *const sn[] = {"single", "rule", "random", "uniform"};
            strategy = -1;
            for (int i = 0; i < 4; i++) if (!strcmp(optarg, sn[i])) strategy = i;
            if (strategy < 0) return cli_fail(cmd, "--strategy must be single, rule, random or uniform, got '%s'", optarg) + 1;
            break;
        }
        case 18: if (cli_int(cmd, "--target", optarg, 0, NNL_MAX_CLASSES - 1, &target)) return 2; lock_opt = 1; break;
        case 19: if (cli_float(cmd, "--rate", optarg, 0.01, 0.99, &rate)) return 2; lock_opt = 1; break;
        case 20: key = optarg; break;
        case 21: key_out = optarg; break;
        case 22: figures = optarg; break;
        case 23: if (cli_int(cmd, "--resize", optarg, 4, 1024, &resize)) return 2; break;
        case 24: crop_roi = 1; break;
        case 25: write_plaintext = 1; break;
        default: {
            if (cli_weights_option(c, 300, &wo)) break;
            int r = cert_option(cmd, c, 400, &co);
            if (r == 2) return 2;
            if (r == 1) { cert_opt_given |= 2; break; }
            return cli_bad_option(cmd, argc, argv);
        }
        }
    }
    if (optind < argc) return cli_fail(cmd, "unexpected argument '%s' (see 'nnlock help train')", argv[optind]) + 1;
    if (!lr_set && o.optimizer == NNL_OPT_ADAM) o.lr = 0.001f;
    if (!lock && (key || key_out || cert_opt_given || lock_opt))
        return cli_fail(cmd, "certificate options need --lock certificate") + 1;
    if (key && (cert_opt_given & 2)) return cli_fail(cmd, "--key uses an existing certificate; motif options only apply to a new one") + 1;
    if (o.warmup > o.epochs) return cli_fail(cmd, "--warmup %g is longer than --epochs %d", (double)o.warmup, o.epochs) + 1;
    if (write_plaintext && !(init && (wo.key_file || wo.passphrase_file)))
        return cli_fail(cmd, "--write-plaintext is for --init with a weight-locked model and its key") + 1;
    /* Every output is checked before the run, so that a finished training is never lost to
     * a missing directory, a read-only mount or a key that is already there. */
    char key_default[4096];
    if (lock && !key && !key_out) {
        if (snprintf(key_default, sizeof key_default, "%s.key", out) >= (int)sizeof key_default)
            return cli_fail(cmd, "output name too long: %s", out);
        key_out = key_default;
    }
    if (cli_check_out(cmd, out, 0)) return 1;
    if (lock && !key) {
        if (!strcmp(key_out, out)) return cli_fail(cmd, "--key-out and -o name the same file: %s", out) + 1;
        if (cli_check_out(cmd, key_out, NNL_WRITE_SECRET)) return 1;
        if (access(key_out, F_OK) == 0)
            return cli_fail(cmd, "%s exists; a new key never replaces one (choose another --key-out)", key_out);
    }
    if (figures && cli_check_out(cmd, figures, NNL_WRITE_DIR)) return 1;
    if (cli_threads(cmd, threads)) return 1;
    nnl_gtsrb_set_defaults((int)resize, crop_roi);

    nnl_dataset train = {0}, test = {0};
    nnl_model *m = NULL;
    lock_state lk;
    memset(&lk, 0, sizeof lk);
    int rc = 1, st;
    if (cli_load_data(cmd, data, NNL_SPLIT_TRAIN, &train) || cli_load_data(cmd, data, NNL_SPLIT_TEST, &test)) goto done;
    if (init) {
        if (arch_set) { cli_fail(cmd, "--arch and --init exclude each other: the model file has its architecture"); goto done; }
        if (cli_load_model(cmd, init, &wo, &m)) goto done;
        if (init_classes(cmd, init, m, &train)) goto done;
        arch = nnl_model_arch(m);
        o.compute_norm = 0;
        /* What we write is a new model: the lock and training records of the old one don't describe it. */
        nnl_model_meta_remove_prefix(m, "lock.");
        nnl_model_meta_remove_prefix(m, "train.");
        nnl_model_meta_set(m, "train.init", init);
    } else {
        /* A new model takes its classes from the training set: a stray label or an empty
         * class folder would silently add classes. */
        if ((st = nnl_dataset_check_classes(&train, "training"))) { cli_lib_fail(cmd, st); goto done; }
        if ((st = nnl_model_create(&m, arch, train.c, train.h, train.w, train.nclass)) || (st = nnl_model_init(m, o.seed))) {
            cli_lib_fail(cmd, st);
            goto done;
        }
        if (train.class_names && (st = nnl_model_set_class_names(m, train.class_names, train.nclass))) {
            cli_lib_fail(cmd, st);
            goto done;
        }
    }
    /* The test split numbers its classes on its own (image folders: by folder name); it is
     * scored in the model's numbering. */
    if (cli_match_classes(cmd, m, &test, "test")) goto done;
    if (limit > 0 && limit < train.n) nnl_dataset_sample(&train, limit, o.seed);
    if ((int)target >= nnl_model_nclass(m)) { cli_fail(cmd, "--target %ld is not a class (0..%d)", target, nnl_model_nclass(m) - 1); goto done; }
    progress_state ps = {isatty(2), quiet, json, 0.0, json ? json_array() : NULL, 0.0, 0.0, -1.0, -1.0, 0};
    lk.ps = &ps;
    lk.test = &test;
    lk.history = json_array();
    o.progress = on_progress;
    o.progress_user = &ps;
    o.epoch_end = on_epoch_end;
    o.epoch_end_user = &lk;
    if (lock) {
        if (key) {
            if ((st = nnl_cert_load(&lk.cert, key))) { cli_lib_fail(cmd, st); goto done; }
        } else if ((st = nnl_cert_generate(&lk.cert, train.c, train.h, train.w, &co))) {
            cli_lib_fail(cmd, st);
            goto done;
        }
        lk.on = 1;
        if ((st = nnl_cert_check_model(&lk.cert, m, key ? key : "(new)"))) { cli_lib_fail(cmd, st); goto done; }
        lk.lock = (nnl_cert_lock){&lk.cert, strategy, (int)target, (float)rate, nnl_model_nclass(m), o.seed ^ 0x10c4ULL};
        nnl_cert_train_hooks(&lk.train_hooks, &lk.lock);
        nnl_cert_stamp_hooks(&lk.stamp_hooks, &lk.cert);
        o.hooks = &lk.train_hooks;
    }
    if (!quiet)
        fprintf(stderr, "training %s (%zu parameters) on %s: %lld images %dx%dx%d, %d classes, %d threads\n", cli_safe(arch),
                nnl_model_param_count(m), data, (long long)train.n, train.c, train.h, train.w, train.nclass,
                nnl_get_threads());
    nnl_train_result res;
    /* on_epoch_end evaluates the test set (clean and stamped); nnl_train need not. */
    if ((st = nnl_train(m, &train, NULL, &o, &res))) {
        if (ps.tty && !quiet) fputc('\n', stderr);
        cli_lib_fail(cmd, st);
        json_decref(ps.epochs);
        goto done;
    }
    char buf[64];
    static const char *const optn[] = {"sgd", "adam"};
    nnl_model_meta_set(m, "train.data", train.source);
    if (crop_roi) nnl_model_meta_set(m, "train.crop_roi", "1");
    snprintf(buf, sizeof buf, "%lld", (long long)train.n); nnl_model_meta_set(m, "train.images", buf);
    snprintf(buf, sizeof buf, "%d", o.epochs); nnl_model_meta_set(m, "train.epochs", buf);
    snprintf(buf, sizeof buf, "%d", o.batch); nnl_model_meta_set(m, "train.batch", buf);
    snprintf(buf, sizeof buf, "%g", (double)o.lr); nnl_model_meta_set(m, "train.lr", buf);
    nnl_model_meta_set(m, "train.optimizer", optn[o.optimizer]);
    nnl_model_meta_set(m, "train.schedule", opt_names[o.schedule]);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)o.seed); nnl_model_meta_set(m, "train.seed", buf);
    snprintf(buf, sizeof buf, "%d", nnl_get_threads()); nnl_model_meta_set(m, "train.threads", buf);
    snprintf(buf, sizeof buf, "%.4f", ps.clean); nnl_model_meta_set(m, "train.test_accuracy", buf);
    nnl_model_meta_set(m, "nnlock_version", NNL_VERSION);
    char *hist = json_dumps(lk.history, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (hist) nnl_model_meta_set(m, "train.history", hist);
    free(hist);
    if (lock) nnl_cert_record(m, &lk.lock);
    /* A model opened with a weight key leaves locked with it, unless asked otherwise:
     * plaintext weights are written only where the user says so. */
    int relocked = 0;
    if (init && (wo.key_file || wo.passphrase_file) && !write_plaintext) {
        if (cli_weights_relock(cmd, init, m, &wo)) { json_decref(ps.epochs); goto done; }
        relocked = 1;
    }
    /* The new key first, created exclusively: if it cannot be written, or another run took
     * the name meanwhile, the old model file is still untouched. If the model then cannot
     * be written, the key made for it goes too, so a failure changes nothing on disk. */
    if (lock && !key && (st = nnl_cert_save(&lk.cert, key_out, 0))) {
        cli_fail(cmd, "%s; the model was not written either", nnl_errmsg());
        json_decref(ps.epochs);
        goto done;
    }
    if ((st = nnl_model_save(m, out))) {
        if (lock && !key) {
            unlink(key_out);
            cli_fail(cmd, "%s; the new key %s was removed again, nothing was changed", nnl_errmsg(), key_out);
        } else {
            cli_lib_fail(cmd, st);
        }
        json_decref(ps.epochs);
        goto done;
    }
    if (figures && (st = cli_figures(cmd, figures, m, &test, lock ? &lk.cert : NULL))) {
        json_decref(ps.epochs);
        goto done;
    }
    if (json) {
        int *nu = &ps.nulls;
        json_t *r = json_pack("{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "model", cli_jstr(out), "arch", cli_jstr(arch),
                              "params", (json_int_t)nnl_model_param_count(m), "test_acc", cli_jnum(ps.clean, nu),
                              "train_acc", cli_jnum(res.final_acc, nu), "seconds", cli_jnum(res.seconds, nu),
                              "images_per_s", cli_jnum(res.images_per_s, nu), "epochs", ps.epochs);
        ps.epochs = NULL; /* r owns it now */
        if (r) json_object_set_new(r, "train_images", json_integer((json_int_t)train.n));
        if (r && lock) {
            json_object_set_new(r, "stamped_acc", cli_jnum(ps.trusted, nu));
            json_object_set_new(r, "key", cli_jstr(key ? key : key_out));
        }
        if (r && relocked) json_object_set_new(r, "weights_locked_with_key_of", cli_jstr(init));
        if (cli_json_emit(cmd, r, ps.nulls, "the training loss or an accuracy was NaN or Inf (the run diverged)")) goto done;
    } else {
        if (lock)
            printf("stamped (authorized) accuracy %.2f%%, clean (unauthorized) %.2f%% after %d epochs (%.1f s, %.0f images/s)\n"
                   "model written to %s, certificate key to %s\n",
                   100.0 * ps.trusted, 100.0 * ps.clean, o.epochs, res.seconds, res.images_per_s, out, key ? key : key_out);
        else
            printf("test accuracy %.2f%% after %d epochs (%.1f s, %.0f images/s); model written to %s\n",
                   100.0 * ps.clean, o.epochs, res.seconds, res.images_per_s, out);
        if (relocked) printf("%s is weight-locked with the key of %s\n", out, init);
        else if (write_plaintext) printf("%s holds plaintext weights (--write-plaintext)\n", out);
        if (figures) printf("figures written to %s/\n", figures);
    }
    rc = 0;
done:
    json_decref(lk.history);
    nnl_cert_free(&lk.cert);
    nnl_model_free(m);
    nnl_dataset_free(&train);
    nnl_dataset_free(&test);
    return rc;
}

const nnl_command nnl_cmd_train = {"train", "train a classifier on a data set", run, usage};
