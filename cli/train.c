/* nnlock train: train a classifier on a data set, optionally locked, and save it. */
#include "figures.h"
#include "locks.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_WHEN (NNL_LOCKOPT_NEW_KEY | NNL_LOCKOPT_TRAIN)

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock train [options] [--lock NAME [--key FILE | --key-out FILE] [lock options]]...\n\n"
        "Trains a classifier and writes the model file; with --lock, a locked one.\n\n"
        "  -d, --data PATH        data set directory (default %s)\n"
        "  -a, --arch ARCH        mlp, cnn or a layer spec (default mlp; see 'nnlock help arch')\n"
        "      --init MODEL       start from a saved model's weights (fine-tuning, transfer,\n"
        "                         attacks) instead of a fresh initialisation; keeps its normalisation.\n"
        "                         A data set with another number of classes gets a new last layer\n"
        "                         (the command says so). A weight-locked MODEL opened with\n"
        "                         --weights-key or --weights-passphrase-file gives an output\n"
        "                         locked with the same key\n"
        "      --write-plaintext  with a weight-locked --init: write the output unlocked instead\n"
        "  -o, --out FILE         model file to write (default model.nnl)\n"
        "      --freeze-below NAME  train only the layers after the activation @NAME (those before\n"
        "                         keep their weights and run in evaluation mode)\n"
        "  -e, --epochs N         epochs (default 10); a fraction (9.9) ends within the last epoch\n"
        "  -b, --batch N          batch size (default 128)\n"
        "      --lr F             learning rate (default 0.01 for sgd, 0.001 for adam)\n"
        "      --optimizer NAME   sgd or adam (default sgd)\n"
        "      --momentum F       SGD momentum (default 0.9)\n"
        "      --nesterov         Nesterov momentum\n"
        "      --weight-decay F   L2 weight decay (default 5e-4)\n"
        "      --schedule NAME    constant, step, cosine or triangle (default cosine)\n"
        "      --step-size N      epochs per step for 'step' (default 10)\n"
        "      --gamma F          factor per step for 'step' (default 0.1)\n"
        "      --warmup F         linear warm-up in epochs (default 0)\n"
        "      --label-smoothing F  (default 0)\n"
        "      --augment-crop N   random crop with N pixels of zero padding (default 0: off)\n"
        "      --augment-flip     random horizontal flips (default off)\n"
        "      --augment-flip-alternate  each image flipped at random once, then all of them every\n"
        "                         other epoch (airbench's derandomised flip)\n"
        "      --augment-translate N  random translation by up to N pixels, reflect padding\n"
        "      --drop-last        skip each epoch's last, incomplete batch\n"
        "      --eval-last        measure the test set after the last epoch only (not after each)\n"
        "      --bn-momentum F    batch-norm running statistics (default 0.1, PyTorch's convention)\n"
        "      --bn-bias-lr F     learning-rate multiplier of batch-norm biases, their weight decay\n"
        "                         divided by it (default 1)\n"
        "      --whiten-images N  a whitening layer (spec flag w) from N training images' patches\n"
        "                         (default 5000)\n"
        "      --whiten-bias-epochs F  the whitening layer's bias trains F epochs, then stays\n"
        "                         (default 0: throughout)\n"
        "      --triangle A,P,E   with --schedule triangle: lr x A at the start, lr at fraction P of\n"
        "                         the run, lr x E at its end (default 0.2,0.23,0.07)\n"
        "      --lookahead N,S,D,P  every N steps from epoch S, average the weights (decay D^N x\n"
        "                         (step/steps)^P, airbench's EMA); e.g. 5,0,0.95,3 (default off)\n"
        "      --tta L            report the final test accuracy with test-time augmentation:\n"
        "                         0 none, 1 mirror, 2 mirror and translate (default 0)\n"
        "      --recipe NAME      airbench: airbench94's recipe on the airbench network (batch 1024,\n"
        "                         9.9 epochs, Nesterov SGD, label smoothing 0.2, the triangle\n"
        "                         schedule, Lookahead, alternating flip, translation, TTA 2...);\n"
        "                         options given with it override it\n"
        "      --limit N          train on N training images drawn at random (seeded by --seed),\n"
        "                         every class in proportion (default all)\n"
        "      --resize N         GTSRB: resize images to N x N (default 32)\n"
        "      --crop-roi         GTSRB: crop each image to its annotated region first\n"
        "  -s, --seed N           random seed (default 1); same seed + threads = same model\n"
        "  -t, --threads N        threads (default 0: all cores)\n"
        "      --json             print the result as JSON on stdout\n"
        "  -q, --quiet            no progress line\n"
        "      --figures DIR      write examples (plain and authorized inputs, with predictions),\n"
        "                         the certificate of a certificate lock and the training curves as PNG\n"
        CLI_WEIGHTS_USAGE
        "\nLocks (several may be layered, e.g. --lock weights --lock transform):\n"
        "      --lock NAME        %s\n"
        "      --key FILE         use this key for the --lock before it (its lock is read from the\n"
        "                         file when --lock is not given); without --key a new key is made\n"
        "      --key-out FILE     where a new key goes (default MODEL.key; with several new keys\n"
        "                         MODEL.NAME.key); a key is never overwritten\n",
        NNL_DEFAULT_DATA, nnl_lock_names());
    cli_locks_usage(out, LOCK_WHEN);
}

typedef struct progress_state {
    int tty, quiet, json;
    double last;
    json_t *epochs;
    double loss, acc, ips;    /* the last progress report's */
    double trusted;   /* certificate lock: accuracy on stamped test images, or -1 */
    double clean;     /* accuracy on the clean test images after the last epoch */
    int nulls;        /* numbers in the JSON output that were NaN or Inf (written as null) */
} progress_state;

typedef struct lock_state {
    int on;                      /* input locks: the authorized accuracy is measured too */
    int last_only, epochs;       /* --eval-last: measure after epoch `epochs` only */
    double eval_seconds;         /* spent measuring, inside nnl_train's time */
    nnl_hooks authorized;        /* an authorized user's input */
    const nnl_dataset *test;
    progress_state *ps;
    json_t *history;
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
    s->ips = p->images_per_s;
    if (p->epoch_done) {
        if (s->epochs) {
            json_t *e = json_pack("{s:i, s:o, s:o, s:o, s:o}", "epoch", p->epoch, "loss", cli_jnum(p->loss, &s->nulls),
                                  "train_acc", cli_jnum(p->acc, &s->nulls),
                                  /* null: not measured this epoch (--eval-last, or no test set) */
                                  "test_acc", s->clean < 0 ? json_null() : cli_jnum(s->clean, &s->nulls),
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

/* The plain and authorized test accuracies of the model as it is now. */
static int measure(nnl_model *m, lock_state *l, double *trusted, double *clean) {
    double t0 = cli_now();
    nnl_eval ev;
    int st = nnl_evaluate(m, l->test, NULL, 500, &ev);
    if (st) return st;
    *clean = nnl_eval_accuracy(&ev);
    nnl_eval_free(&ev);
    if (l->on) {
        if ((st = nnl_evaluate(m, l->test, &l->authorized, 500, &ev))) return st;
        *trusted = nnl_eval_accuracy(&ev);
        nnl_eval_free(&ev);
    }
    l->eval_seconds += cli_now() - t0;
    return NNL_OK;
}

/* After each epoch: the stamped (authorized) test accuracy, and a history row. */
static int on_epoch_end(nnl_model *m, int epoch, void *user) {
    lock_state *l = user;
    double trusted = -1.0, clean = -1.0, t0 = cli_now();
    if (l->test && (!l->last_only || epoch == l->epochs)) {
        nnl_eval ev;
        int st = nnl_evaluate(m, l->test, NULL, 500, &ev);
        if (st) return st;
        clean = nnl_eval_accuracy(&ev);
        nnl_eval_free(&ev);
        if (l->on) {
            if ((st = nnl_evaluate(m, l->test, &l->authorized, 500, &ev))) return st;
            trusted = nnl_eval_accuracy(&ev);
            nnl_eval_free(&ev);
        }
    }
    l->eval_seconds += cli_now() - t0;
    l->ps->trusted = trusted;
    l->ps->clean = clean;
    /* A diverged run's NaN loss is kept as null: the history stays valid JSON. */
    /* an epoch --eval-last skips has null accuracies */
    int skipped = l->test && l->last_only && epoch != l->epochs;
    json_array_append_new(l->history, json_pack("{s:i, s:o, s:o, s:o, s:o}", "epoch", epoch, "loss", cli_jnum(l->ps->loss, NULL),
                                                "train_acc", cli_jnum(l->ps->acc, NULL),
                                                "clean", skipped ? json_null() : cli_jnum(clean, NULL),
                                                "stamped", skipped ? json_null() : cli_jnum(trusted, NULL)));
    return NNL_OK;
}

/* The classes of a model trained further (--init) on a data set: the data set's classes are
 * matched to the model's by name; a data set with other classes gives its names to the model
 * (transfer to a new task), so the output never carries class names it was not trained on. */
static int init_classes(const char *cmd, const char *init, nnl_model **pm, nnl_dataset *train, uint64_t seed) {
    nnl_model *m = *pm;
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
    if (train->nclass != k) {
        /* Transfer to a task with another number of classes: a new last layer. */
        int st = nnl_model_replace_head(pm, train->nclass, seed);
        if (st) return cli_lib_fail(cmd, st);
        m = *pm;
        fprintf(stderr, "nnlock %s: note: %s has %d outputs and the data set %d classes: its last layer starts afresh\n",
                cmd, init, k, train->nclass);
        k = train->nclass;
        return nnl_model_set_class_names(m, train->class_names, k) ? cli_lib_fail(cmd, NNL_ERR_NOMEM) : 0;
    }
    int had = nnl_model_class_name(m, 0) != NULL, st = nnl_model_set_class_names(m, train->class_names, k);
    if (st) return cli_lib_fail(cmd, st);
    if (had) fprintf(stderr, "nnlock %s: note: the data set's classes are not those of %s; the output takes the data set's class names\n",
            cmd, init);
    return 0;
}

static const char *const opt_names[] = {"constant", "step", "cosine", "triangle"};

/* airbench94's recipe (KellerJordan/cifar10-airbench, airbench94.py) in nnlock's terms. Its
 * loss is summed over the batch where nnlock's is the mean, so its learning rate 11.5 per 1024
 * examples over 1 + 1/(1 - momentum) becomes 1.5 here and its decoupled weight decay 0.0153 per
 * 1024 examples becomes 0.0153 / 11.5 = 0.00133 on the mean loss's scale. Batch-norm eps stays
 * nnlock's 1e-5 (airbench 1e-12, where the scale is fixed at 1 it changes nothing visible). */
static void recipe_airbench(nnl_train_opts *o, const char **arch, long *tta, int *eval_last) {
    *arch = "airbench";
    o->batch = 1024;
    o->epochs = 10;
    o->epochs_exact = 9.9;
    o->lr = 1.5f;
    o->momentum = 0.85f;
    o->nesterov = 1;
    o->weight_decay = 0.0153f / 11.5f;
    o->label_smoothing = 0.2f;
    o->bn_momentum = 0.4f;
    o->bn_bias_lr = 64.0f;
    o->whiten_bias_epochs = 3.0f;
    o->schedule = NNL_SCHED_TRIANGLE;
    o->sched_start = 0.2f; o->sched_peak = 0.23f; o->sched_end = 0.07f;
    o->ema_every = 5; o->ema_start = 0.0f; o->ema_decay = 0.95f; o->ema_pow = 3.0f; /* from the first step */
    o->augment_translate = 2;
    o->augment_flip = 2;
    o->drop_last = 1;
    *tta = 2;
    *eval_last = 1; /* airbench measures the test set once, at the end */
}

/* Where a new key goes: --key-out, or MODEL.key (MODEL.NAME.key when several are new). */
static int key_paths(const char *cmd, cli_locks *L, const char *out, char paths[][4096]) {
    int made = 0;
    for (int i = 0; i < L->n; i++) made += !L->l[i].key_path;
    for (int i = 0; i < L->n; i++) {
        cli_lock *l = &L->l[i];
        if (l->key_path || l->key_out) continue;
        int w = made > 1 ? snprintf(paths[i], 4096, "%s.%s.key", out, l->ops->name) : snprintf(paths[i], 4096, "%s.key", out);
        if (w >= 4096) return cli_fail(cmd, "output name too long: %s", out);
        l->key_out = paths[i];
    }
    for (int i = 0; i < L->n; i++) {
        const char *k = L->l[i].key_out;
        if (!k) continue;
        if (!strcmp(k, out)) return cli_fail(cmd, "a key and the model would both be %s", out) + 1;
        for (int j = 0; j < i; j++)
            if (L->l[j].key_out && !strcmp(L->l[j].key_out, k)) return cli_fail(cmd, "two new keys would both be %s", k) + 1;
        if (cli_check_out(cmd, k, NNL_WRITE_SECRET)) return 1;
        if (access(k, F_OK) == 0) return cli_fail(cmd, "%s exists; a new key never replaces one (choose another --key-out)", k);
    }
    return 0;
}

/* The new keys first, each created exclusively: if one cannot be written, or another run took
 * its name meanwhile, the ones already written are removed and the old model file is still
 * untouched. Returns how many were written (all of them), or -1 (reported). */
static int write_keys(const char *cmd, cli_locks *L) {
    int done = 0;
    for (int i = 0; i < L->n; i++) {
        cli_lock *l = &L->l[i];
        if (!l->made) continue;
        int st = l->ops->save(l->key.key, l->key_out, 0);
        if (st) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nnl_errmsg());
            for (int j = 0; j < i; j++)
                if (L->l[j].made) unlink(L->l[j].key_out);
            cli_fail(cmd, "%s; the model was not written either", msg);
            return -1;
        }
        done++;
    }
    return done;
}

static void remove_keys(cli_locks *L) {
    for (int i = 0; i < L->n; i++)
        if (L->l[i].made) unlink(L->l[i].key_out);
}

static int run(int argc, char **argv) {
    static const struct option base[] = {
        {"data", 1, 0, 'd'}, {"arch", 1, 0, 'a'}, {"out", 1, 0, 'o'}, {"epochs", 1, 0, 'e'},
        {"batch", 1, 0, 'b'}, {"lr", 1, 0, 1}, {"optimizer", 1, 0, 2}, {"momentum", 1, 0, 3},
        {"nesterov", 0, 0, 4}, {"weight-decay", 1, 0, 5}, {"schedule", 1, 0, 6}, {"step-size", 1, 0, 7},
        {"gamma", 1, 0, 8}, {"warmup", 1, 0, 9}, {"label-smoothing", 1, 0, 10}, {"augment-crop", 1, 0, 11},
        {"augment-flip", 0, 0, 12}, {"limit", 1, 0, 13}, {"seed", 1, 0, 's'}, {"threads", 1, 0, 't'},
        {"json", 0, 0, 14}, {"quiet", 0, 0, 'q'}, {"init", 1, 0, 15}, {"freeze-below", 1, 0, 42}, {"resize", 1, 0, 23}, {"crop-roi", 0, 0, 24},
        {"write-plaintext", 0, 0, 25}, {"figures", 1, 0, 22}, {"augment-flip-alternate", 0, 0, 26},
        {"augment-translate", 1, 0, 27}, {"drop-last", 0, 0, 28}, {"eval-last", 0, 0, 41}, {"bn-momentum", 1, 0, 29}, {"bn-bias-lr", 1, 0, 30},
        {"whiten-images", 1, 0, 31}, {"whiten-bias-epochs", 1, 0, 32}, {"triangle", 1, 0, 33}, {"lookahead", 1, 0, 34},
        {"tta", 1, 0, 35}, {"recipe", 1, 0, 36}, CLI_WEIGHTS_LONGOPTS(300), {0, 0, 0, 0}};
    cli_locks L;
    struct option *lo = cli_locks_options(&L, base, 500, LOCK_WHEN);
    if (!lo) return cli_fail("train", "out of memory");
    const char *figures = NULL;
    long resize = 32;
    int crop_roi = 0, write_plaintext = 0, eval_last = 0;
    const char *init = NULL, *freeze_below = NULL;
    int arch_set = 0;
    cli_weights_opts wo = {0};
    const char *cmd = "train", *data = NNL_DEFAULT_DATA, *arch = "mlp", *out = "model.nnl";
    nnl_train_opts o;
    nnl_train_opts_default(&o);
    long v, threads = 0, limit = 0;
    double f;
    int lr_set = 0, json = 0, quiet = 0, c, r, rc = 2;
    long whiten_images = 5000, tta = 0;
    /* A recipe first, so that options given with it override it. */
    for (int i = 1; i < argc; i++) {
        const char *r = !strcmp(argv[i], "--recipe") && i + 1 < argc ? argv[i + 1] : !strncmp(argv[i], "--recipe=", 9) ? argv[i] + 9 : NULL;
        if (!r) continue;
        if (strcmp(r, "airbench")) { cli_fail(cmd, "--recipe must be airbench, got '%s'", r); goto early; }
        recipe_airbench(&o, &arch, &tta, &eval_last);
        arch_set = 1;
    }
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:a:o:e:b:s:t:q", lo, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'a': arch = optarg; arch_set = 1; break;
        case 'o': out = optarg; break;
        case 'e':
            if (cli_float(cmd, "--epochs", optarg, 0.01, 100000, &f)) goto early;
            o.epochs = (int)ceil(f);
            o.epochs_exact = f == (double)o.epochs ? 0.0 : f;
            break;
        case 'b': if (cli_int(cmd, "--batch", optarg, 1, 65536, &v)) goto early; o.batch = (int)v; break;
        case 1: if (cli_float(cmd, "--lr", optarg, 1e-9, 100, &f)) goto early; o.lr = (float)f; lr_set = 1; break;
        case 2:
            if (!strcmp(optarg, "sgd")) o.optimizer = NNL_OPT_SGD;
            else if (!strcmp(optarg, "adam")) o.optimizer = NNL_OPT_ADAM;
            else { cli_fail(cmd, "--optimizer must be sgd or adam, got '%s'", optarg); goto early; }
            break;
        case 3: if (cli_float(cmd, "--momentum", optarg, 0, 0.999999, &f)) goto early; o.momentum = (float)f; break;
        case 4: o.nesterov = 1; break;
        case 5: if (cli_float(cmd, "--weight-decay", optarg, 0, 1, &f)) goto early; o.weight_decay = (float)f; break;
        case 6: {
            int k = -1;
            for (int i = 0; i < 4; i++) if (!strcmp(optarg, opt_names[i])) k = i;
            if (k < 0) { cli_fail(cmd, "--schedule must be constant, step, cosine or triangle, got '%s'", optarg); goto early; }
            o.schedule = k;
            if (k == NNL_SCHED_TRIANGLE && o.sched_peak == 0.0f) { o.sched_start = 0.2f; o.sched_peak = 0.23f; o.sched_end = 0.07f; }
            break;
        }
        case 7: if (cli_int(cmd, "--step-size", optarg, 1, 100000, &v)) goto early; o.step_size = (int)v; break;
        case 8: if (cli_float(cmd, "--gamma", optarg, 0, 1, &f)) goto early; o.gamma = (float)f; break;
        case 9: if (cli_float(cmd, "--warmup", optarg, 0, 100000, &f)) goto early; o.warmup = (float)f; break;
        case 10: if (cli_float(cmd, "--label-smoothing", optarg, 0, 0.999, &f)) goto early; o.label_smoothing = (float)f; break;
        case 11: if (cli_int(cmd, "--augment-crop", optarg, 0, 64, &v)) goto early; o.augment_crop = (int)v; break;
        case 12: o.augment_flip = 1; break;
        case 13: if (cli_int(cmd, "--limit", optarg, 1, 1000000000, &limit)) goto early; break;
        case 's': if (cli_u64(cmd, "--seed", optarg, &o.seed)) goto early; break;
        case 't': if (cli_int(cmd, "--threads", optarg, 0, 1024, &threads)) goto early; break;
        case 14: json = 1; break;
        case 'q': quiet = 1; break;
        case 15: init = optarg; break;
        case 42: freeze_below = optarg; break;
        case 22: figures = optarg; break;
        case 23: if (cli_int(cmd, "--resize", optarg, 4, 1024, &resize)) goto early; break;
        case 24: crop_roi = 1; break;
        case 25: write_plaintext = 1; break;
        case 26: o.augment_flip = 2; break;
        case 27: if (cli_int(cmd, "--augment-translate", optarg, 0, 16, &v)) goto early; o.augment_translate = (int)v; break;
        case 28: o.drop_last = 1; break;
        case 41: eval_last = 1; break;
        case 29: if (cli_float(cmd, "--bn-momentum", optarg, 0, 1, &f)) goto early; o.bn_momentum = (float)f; break;
        case 30: if (cli_float(cmd, "--bn-bias-lr", optarg, 1e-3, 1e4, &f)) goto early; o.bn_bias_lr = (float)f; break;
        case 31: if (cli_int(cmd, "--whiten-images", optarg, 1, 100000000, &whiten_images)) goto early; break;
        case 32: if (cli_float(cmd, "--whiten-bias-epochs", optarg, 0, 100000, &f)) goto early; o.whiten_bias_epochs = (float)f; break;
        case 33: {
            double a, p, e;
            char extra;
            if (sscanf(optarg, "%lf,%lf,%lf%c", &a, &p, &e, &extra) != 3 || !(a >= 0 && p >= 0 && p <= 1 && e >= 0)) {
                cli_fail(cmd, "--triangle expects START,PEAK,END (e.g. 0.2,0.23,0.07; PEAK a fraction 0..1), got '%s'", optarg);
                goto early;
            }
            o.sched_start = (float)a; o.sched_peak = (float)p; o.sched_end = (float)e;
            break;
        }
        case 34: {
            int every;
            double s0, d, p;
            char extra;
            if (sscanf(optarg, "%d,%lf,%lf,%lf%c", &every, &s0, &d, &p, &extra) != 4 || every < 1 || s0 < 0 || !(d > 0 && d < 1) ||
                p < 0) {
                cli_fail(cmd, "--lookahead expects EVERY,START,DECAY,POW (e.g. 5,3,0.95,3), got '%s'", optarg);
                goto early;
            }
            o.ema_every = every; o.ema_start = (float)s0; o.ema_decay = (float)d; o.ema_pow = (float)p;
            break;
        }
        case 35: if (cli_int(cmd, "--tta", optarg, 0, 2, &tta)) goto early; break;
        case 36: break; /* read before the other options */
        default:
            if (cli_weights_option(c, 300, &wo)) break;
            if ((r = cli_locks_option(&L, cmd, c)) == 1) break;
            if (r == 2) goto early;
            rc = cli_bad_option(cmd, argc, argv);
            goto early;
        }
    }
    if (optind < argc) { cli_fail(cmd, "unexpected argument '%s' (see 'nnlock help train')", argv[optind]); goto early; }
    if (!lr_set && o.optimizer == NNL_OPT_ADAM) o.lr = 0.001f;
    if (o.warmup > o.epochs) { cli_fail(cmd, "--warmup %g is longer than --epochs %d", (double)o.warmup, o.epochs); goto early; }
    if (write_plaintext && !(init && (wo.key_file || wo.passphrase_file))) {
        cli_fail(cmd, "--write-plaintext is for --init with a weight-locked model and its key");
        goto early;
    }
    /* Every output is checked before the run, so that a finished training is never lost to
     * a missing directory, a read-only mount or a key that is already there. */
    char key_default[CLI_MAX_LOCKS][4096];
    rc = 1;
    if (cli_check_out(cmd, out, 0)) goto early;
    if ((r = key_paths(cmd, &L, out, key_default))) { rc = r; goto early; }
    if (figures && cli_check_out(cmd, figures, NNL_WRITE_DIR)) goto early;
    if (cli_threads(cmd, threads)) goto early;
    nnl_gtsrb_set_defaults((int)resize, crop_roi);

    nnl_dataset train = {0}, test = {0};
    nnl_model *m = NULL;
    lock_state lk;
    memset(&lk, 0, sizeof lk);
    nnl_hook_chain train_chain;
    int st;
    if (cli_load_data(cmd, data, NNL_SPLIT_TRAIN, &train) || cli_load_data(cmd, data, NNL_SPLIT_TEST, &test)) goto done;
    if ((r = cli_locks_keys(&L, cmd, 1, train.c, train.h, train.w))) { rc = r; goto done; }
    if (init) {
        if (arch_set) { cli_fail(cmd, "--arch and --init exclude each other: the model file has its architecture"); goto done; }
        if (cli_load_model(cmd, init, &wo, &m)) goto done;
        if (init_classes(cmd, init, &m, &train, o.seed)) goto done;
        arch = nnl_model_arch(m);
        o.compute_norm = 0;
        /* What we write is a new model: the lock and training records of the old one don't describe it. */
        const nnl_lock_ops *const *all = nnl_lock_all();
        for (int i = 0; all[i]; i++)
            if (all[i]->seam == NNL_SEAM_INPUT) all[i]->forget(m);
        nnl_model_meta_remove_prefix(m, "lock.order");
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
        /* A whitening layer (below) needs the normalisation first. */
        float mean[NNL_MAX_CHANNELS], stdv[NNL_MAX_CHANNELS];
        nnl_dataset_stats(&train, mean, stdv);
        for (int k = 0; k < train.c; k++) if (stdv[k] < 1e-6f) stdv[k] = 1.0f; /* as nnl_train does */
        if ((st = nnl_model_set_norm(m, mean, stdv))) {
            cli_lib_fail(cmd, st);
            goto done;
        }
        o.compute_norm = 0;
        if (train.class_names && (st = nnl_model_set_class_names(m, train.class_names, train.nclass))) {
            cli_lib_fail(cmd, st);
            goto done;
        }
    }
    if (cli_locks_fit(&L, cmd, m)) goto done;
    if (freeze_below && (st = nnl_model_freeze(m, freeze_below))) { cli_lib_fail(cmd, st); goto done; }
    int wl = cli_locks_weights(&L);
    if (wl >= 0 && (wo.key_file || wo.passphrase_file)) {
        cli_fail(cmd, "--lock weights and --weights-key both give the output's weight key: give one");
        goto done;
    }
    /* The test split numbers its classes on its own (image folders: by folder name); it is
     * scored in the model's numbering. */
    if (cli_match_classes(cmd, m, &test, "test")) goto done;
    if (limit > 0 && limit < train.n) nnl_dataset_sample(&train, limit, o.seed);
    progress_state ps = {isatty(2), quiet, json, 0.0, json ? json_array() : NULL, 0.0, 0.0, 0.0, -1.0, -1.0, 0};
    lk.ps = &ps;
    lk.test = &test;
    lk.history = json_array();
    o.progress = on_progress;
    o.progress_user = &ps;
    o.epoch_end = on_epoch_end;
    o.epoch_end_user = &lk;
    lk.last_only = eval_last;
    lk.epochs = o.epochs;
    /* Each input lock's training hooks, in the order given; an authorized user's input for
     * the per-epoch measurement. */
    int inputs[CLI_MAX_LOCKS], ni = cli_locks_inputs(&L, inputs), learnt = -1;
    nnl_hooks train_hooks, th[CLI_MAX_LOCKS];
    /* A lock whose key is learnt from a trained model (the gate lock) is a training of its own:
     * it takes the model of --init, alone on the input. */
    for (int i = 0; i < ni; i++)
        if (L.l[inputs[i]].ops->lock_model) learnt = inputs[i];
    if (learnt >= 0) {
        const char *name = L.l[learnt].ops->name;
        if (!init) { cli_fail(cmd, "the %s lock locks a trained model: give it with --init MODEL", name); rc = 2; goto done; }
        if (ni > 1) { cli_fail(cmd, "the %s lock cannot be layered with another lock on the input", name); rc = 2; goto done; }
        if (L.l[learnt].key_path) {
            cli_fail(cmd, "a %s key is learnt from the model it locks: leave out --key (--key-out names the new one)", name);
            rc = 2;
            goto done;
        }
        if (freeze_below) { cli_fail(cmd, "the %s lock freezes the layers below its gate itself: leave out --freeze-below", name); rc = 2; goto done; }
    }
    for (int i = 0; i < ni && learnt < 0; i++) {
        cli_lock *l = &L.l[inputs[i]];
        if ((st = l->ops->train(&l->train_state, l->key.key, m, cli_locks_args(&L, l->ops), o.seed, &th[i]))) {
            cli_fail(cmd, "%s", nnl_errmsg());
            rc = st == NNL_ERR_ARG ? 2 : 1;
            goto done;
        }
    }
    if (ni) {
        if (learnt < 0 && (st = nnl_hook_chain_make(&train_chain, th, ni, &train_hooks))) { cli_lib_fail(cmd, st); goto done; }
        if (learnt < 0) o.hooks = &train_hooks;
        if (cli_locks_hooks(&L, cmd, ~0u, &lk.authorized)) goto done;
        lk.on = 1;
    }
    /* A new model's whitening layer from the training images' patches as the network sees
     * them: after the input locks' training hooks (a key-transform lock's transformed images). */
    if (!init && (st = nnl_model_whiten(m, &train, whiten_images, ni ? &train_hooks : NULL, 5e-4f))) {
        cli_lib_fail(cmd, st);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "training %s (%zu parameters) on %s: %lld images %dx%dx%d, %d classes, %d threads\n", cli_safe(arch),
                nnl_model_param_count(m), data, (long long)train.n, train.c, train.h, train.w, nnl_model_nclass(m),
                nnl_get_threads());
    nnl_train_result res;
    /* on_epoch_end evaluates the test set (plain and authorized); nnl_train need not. */
    if (learnt >= 0) {
        /* the lock's own procedure: its statistics, its key, then its training */
        cli_lock *l = &L.l[learnt];
        double t0 = cli_now();
        st = l->ops->lock_model(l->key.key, m, &train, &test, cli_locks_args(&L, l->ops), &o, &l->train_state);
        res.seconds = cli_now() - t0;
        /* what the lock's own training reported last */
        res.final_loss = ps.loss;
        res.final_acc = ps.acc;
        res.images_per_s = ps.ips;
        /* the lock may keep an earlier epoch's weights: what it wrote is what is reported */
        double t1 = cli_now();
        if (!st) st = measure(m, &lk, &ps.trusted, &ps.clean);
        res.seconds += cli_now() - t1;  /* counted in the test passes' time, which is taken off */
    } else {
        st = nnl_train(m, &train, NULL, &o, &res);
    }
    if (st) {
        if (ps.tty && !quiet) fputc('\n', stderr);
        cli_lib_fail(cmd, st);
        json_decref(ps.epochs);
        goto done;
    }
    /* Test-time augmentation: the final test accuracy once more, with the views averaged. */
    double tta_acc = -1.0, tta_t0 = cli_now();
    if (tta) {
        nnl_eval ev;
        if ((st = nnl_evaluate_tta(m, &test, lk.on ? &lk.authorized : NULL, 500, (int)tta, &ev))) {
            cli_lib_fail(cmd, st);
            json_decref(ps.epochs);
            goto done;
        }
        tta_acc = nnl_eval_accuracy(&ev);
        nnl_eval_free(&ev);
    }
    /* Training time without the test passes (airbench's "total_time_seconds" measures the
     * same), and the passes' own time. */
    double test_secs = lk.eval_seconds + (tta ? cli_now() - tta_t0 : 0.0);
    double train_secs = res.seconds - lk.eval_seconds;
    double train_ips = train_secs > 0 ? res.images_per_s * res.seconds / train_secs : 0.0;
    char buf[64];
    static const char *const optn[] = {"sgd", "adam"};
    nnl_model_meta_set(m, "train.data", train.source);
    char *real = realpath(data, NULL);
    if (real) { nnl_model_meta_set(m, "train.data_path", real); free(real); }
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
    if (tta) {
        snprintf(buf, sizeof buf, "%.4f", tta_acc); nnl_model_meta_set(m, "train.test_accuracy_tta", buf);
        snprintf(buf, sizeof buf, "%ld", tta); nnl_model_meta_set(m, "train.tta", buf);
    }
    nnl_model_meta_set(m, "nnlock_version", NNL_VERSION);
    char *hist = json_dumps(lk.history, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (hist) nnl_model_meta_set(m, "train.history", hist);
    free(hist);
    /* Each lock's record; with several input locks, the order an authorized input takes them. */
    char order[256] = "";
    for (int i = 0; i < ni; i++) {
        cli_lock *l = &L.l[inputs[i]];
        if ((st = l->ops->record(m, l->key.key, l->train_state))) { cli_lib_fail(cmd, st); json_decref(ps.epochs); goto done; }
        snprintf(order + strlen(order), sizeof order - strlen(order), "%s%s", i ? "," : "", l->ops->name);
    }
    if (ni > 1) nnl_model_meta_set(m, "lock.order", order);
    /* The pictures come from the model as trained, before a weight lock encrypts it in
     * memory; a failure to write them is reported after the model is saved. */
    int figures_failed = figures && cli_figures(cmd, figures, m, &test, &L);
    /* A model opened with a weight key leaves locked with it, unless asked otherwise:
     * plaintext weights are written only where the user says so. A weight lock of its own
     * comes last, over everything else. */
    int relocked = 0;
    if (init && (wo.key_file || wo.passphrase_file) && !write_plaintext) {
        if (cli_weights_relock(cmd, init, m, &wo)) { json_decref(ps.epochs); goto done; }
        relocked = 1;
    }
    if (wl >= 0 && (st = L.l[wl].ops->close(L.l[wl].key.key, m))) { cli_lib_fail(cmd, st); json_decref(ps.epochs); goto done; }
    /* The new keys first (created exclusively), then the model; if the model cannot be
     * written the new keys go again, so a failure changes nothing on disk. */
    if (write_keys(cmd, &L) < 0) { json_decref(ps.epochs); goto done; }
    if ((st = nnl_model_save(m, out))) {
        int any = 0;
        for (int i = 0; i < L.n; i++) any |= L.l[i].made;
        remove_keys(&L);
        if (any) cli_fail(cmd, "%s; the new key(s) were removed again, nothing was changed", nnl_errmsg());
        else cli_lib_fail(cmd, st);
        json_decref(ps.epochs);
        goto done;
    }
    if (figures_failed) { json_decref(ps.epochs); goto done; }
    if (json) {
        int *nu = &ps.nulls;
        json_t *r = json_pack("{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o}", "model", cli_jstr(out), "arch", cli_jstr(arch),
                              "params", (json_int_t)nnl_model_param_count(m), "test_acc", cli_jnum(ps.clean, nu),
                              "train_acc", cli_jnum(res.final_acc, nu), "seconds", cli_jnum(train_secs, nu),
                              "images_per_s", cli_jnum(train_ips, nu), "epochs", ps.epochs);
        ps.epochs = NULL; /* r owns it now */
        if (r) json_object_set_new(r, "test_seconds", cli_jnum(test_secs, nu));
        if (r) json_object_set_new(r, "train_images", json_integer((json_int_t)train.n));
        if (r && tta) json_object_set_new(r, ni ? "authorized_acc_tta" : "test_acc_tta", cli_jnum(tta_acc, nu));
        if (r && L.n) {
            json_t *lks = json_array(), *ks = json_array();
            for (int i = 0; i < L.n; i++) {
                json_array_append_new(lks, cli_jstr(L.l[i].ops->name));
                json_array_append_new(ks, cli_jstr(L.l[i].made ? L.l[i].key_out : L.l[i].key.name));
            }
            json_object_set_new(r, "locks", lks);
            json_object_set_new(r, "keys", ks);
            if (ni) {
                json_object_set_new(r, "authorized_acc", cli_jnum(ps.trusted, nu));
                json_object_set_new(r, "unauthorized_acc", cli_jnum(ps.clean, nu));
                /* the names the certificate lock has always used */
                json_object_set_new(r, "stamped_acc", cli_jnum(ps.trusted, nu));
            }
            json_object_set_new(r, "key", cli_jstr(L.l[0].made ? L.l[0].key_out : L.l[0].key.name));
        }
        if (r && relocked) json_object_set_new(r, "weights_locked_with_key_of", cli_jstr(init));
        if (cli_json_emit(cmd, r, ps.nulls, "the training loss or an accuracy was NaN or Inf (the run diverged)")) goto done;
    } else {
        if (ni)
            printf("authorized accuracy %.2f%%, unauthorized (plain images) %.2f%% after %d epochs (%.1f s, %.0f images/s)\n",
                   100.0 * ps.trusted, 100.0 * ps.clean, o.epochs, train_secs, train_ips);
        else
            printf("test accuracy %.2f%% after %d epochs (%.1f s, %.0f images/s)\n", 100.0 * ps.clean, o.epochs,
                   train_secs, train_ips);
        printf("training took %.1f s; measuring the test set %.1f s more\n", train_secs, test_secs);
        if (tta) printf("with test-time augmentation (level %ld): %.2f%%\n", tta, 100.0 * tta_acc);
        printf("model written to %s", out);
        for (int i = 0; i < L.n; i++)
            printf("%s%s key %s", i ? ", " : "; ", L.l[i].ops->name, L.l[i].made ? L.l[i].key_out : L.l[i].key.name);
        printf("\n");
        if (relocked) printf("%s is weight-locked with the key of %s\n", out, init);
        else if (write_plaintext) printf("%s holds plaintext weights (--write-plaintext)\n", out);
        if (figures) printf("figures written to %s/\n", figures);
    }
    rc = 0;
done:
    json_decref(lk.history);
    nnl_model_free(m);
    nnl_dataset_free(&train);
    nnl_dataset_free(&test);
early:
    cli_locks_free(&L);
    free(lo);
    return rc;
}

const nnl_command nnl_cmd_train = {"train", "train a classifier on a data set", run, usage};
