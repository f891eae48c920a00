/* nnlock stamp: apply a certificate to image files or to a whole data set. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nnlock stamp --key KEY IN.png OUT.png\n"
        "       nnlock stamp --key KEY --data PATH --out DIR [--split test|train] [--limit N]\n\n"
        "Stamps the certificate onto an image (PNG, JPEG, PPM/PGM in; PNG out), or onto\n"
        "every image of a data set, written as DIR/<split>/<class>/<index>.png: an image\n"
        "folder data set that --data DIR reads back with the same labels (class folders\n"
        "whose names would not sort in label order get the label as a zero-padded prefix,\n"
        "e.g. 0_T-shirt_top). Stamp both splits into one DIR to train on stamped images.\n\n"
        "  -k, --key FILE     certificate key (from keygen or train --lock certificate)\n"
        "  -d, --data PATH    data set to stamp\n"
        "  -o, --out DIR      output directory for --data\n"
        "      --split NAME   test or train (default test)\n"
        "      --limit N      only the first N images (default all)\n"
        "      --seed N       picks the location of a random-placement certificate (default 0)\n");
}

static int stamp_files(const char *cmd, const nnl_cert *k, const char *in, const char *out, uint64_t seed) {
    uint8_t *px;
    int c, h, w, st;
    if ((st = nnl_image_load(in, &px, &c, &h, &w))) return cli_lib_fail(cmd, st);
    if ((st = nnl_cert_stamp(k, px, c, h, w, seed))) {
        free(px);
        return cli_fail(cmd, "%s: %s", in, nnl_errmsg());
    }
    st = nnl_image_save_png(out, px, c, h, w, NNL_WRITE_SECRET);
    free(px);
    return st ? cli_lib_fail(cmd, st) : 0;
}

/* An image folder's labels are its class folders in strcmp order (src/data/imagefolder.c),
 * so the folders must sort in label order or the stamped set would come back relabelled
 * (Fashion-MNIST's names do not; GTSRB's "10" sorts before "2"). A '/' in a name (Fashion-
 * MNIST's "T-shirt/top") would make a subfolder, and a leading '.' a hidden folder. */
static void class_dirs(const nnl_dataset *ds, char (*names)[128]) {
    int sorted = ds->class_names != NULL, width = snprintf(NULL, 0, "%d", ds->nclass - 1);
    for (int j = 0; j < ds->nclass; j++) {
        const char *n = ds->class_names ? ds->class_names[j] : "";
        snprintf(names[j], sizeof names[j], "%s", n);
        for (char *p = names[j]; *p; p++)
            if (*p == '/' || (p == names[j] && *p == '.')) *p = '_';
        if (!names[j][0] || (j > 0 && strcmp(names[j - 1], names[j]) >= 0)) sorted = 0;
    }
    if (sorted) return;
    for (int j = 0; j < ds->nclass; j++) {
        char clean[128];
        snprintf(clean, sizeof clean, "%s", names[j]);
        char idx[16];
        snprintf(idx, sizeof idx, "%d", j);
        /* names that are just the label ("0".."42") become the padded label alone */
        if (!clean[0] || !strcmp(clean, idx)) snprintf(names[j], sizeof names[j], "%0*d", width, j);
        else snprintf(names[j], sizeof names[j], "%0*d_%.100s", width, j, clean);
    }
}

static int stamp_data(const char *cmd, const nnl_cert *k, const char *data, int split, const char *dir,
                      long limit, uint64_t seed) {
    nnl_dataset ds = {0};
    if (cli_load_data(cmd, data, split, &ds)) return 1;
    int rc = 1;
    char path[4096 + 256], (*names)[128] = NULL; /* root (< 3936) + class + file name */
    if (ds.c != k->c || ds.h != k->h || ds.w != k->w) {
        cli_fail(cmd, "the key is for %dx%dx%d images but %s has %dx%dx%d", k->c, k->h, k->w, data, ds.c, ds.h, ds.w);
        goto done;
    }
    /* DIR/<split>/ is the layout the image-folder loader reads (src/data/dataset.c) */
    char root[4096];
    if (snprintf(root, sizeof root, "%s/%s", dir, split == NNL_SPLIT_TRAIN ? "train" : "test") >= (int)sizeof root - 160) {
        cli_fail(cmd, "output directory name too long: %s", dir);
        goto done;
    }
    if (cli_mkdir(cmd, dir)) goto done;
    if (cli_mkdir(cmd, root)) goto done;
    if (!(names = malloc((size_t)ds.nclass * sizeof *names))) { cli_fail(cmd, "out of memory"); goto done; }
    class_dirs(&ds, names);
    for (int j = 0; j < ds.nclass; j++) {
        snprintf(path, sizeof path, "%s/%s", root, names[j]);
        if (cli_mkdir(cmd, path)) goto done;
    }
    int64_t n = limit > 0 && limit < ds.n ? limit : ds.n;
    size_t isz = (size_t)ds.c * ds.h * ds.w;
    for (int64_t i = 0; i < n; i++) {
        uint8_t *img = ds.pixels + (size_t)i * isz;
        nnl_cert_stamp(k, img, ds.c, ds.h, ds.w, seed ^ (uint64_t)i);
        int y = ds.labels[i];
        snprintf(path, sizeof path, "%s/%s/%06lld.png", root, names[y], (long long)i);
        int st = nnl_image_save_png(path, img, ds.c, ds.h, ds.w, NNL_WRITE_SECRET);
        if (st) { cli_lib_fail(cmd, st); goto done; }
    }
    printf("stamped %lld images into %s (read back with --data %s)\n", (long long)n, root, dir);
    rc = 0;
done:
    free(names);
    nnl_dataset_free(&ds);
    return rc;
}

static int run(int argc, char **argv) {
    static const struct option lo[] = {{"key", 1, 0, 'k'}, {"data", 1, 0, 'd'}, {"out", 1, 0, 'o'},
                                       {"split", 1, 0, 1}, {"limit", 1, 0, 2}, {"seed", 1, 0, 3}, {0, 0, 0, 0}};
    const char *cmd = "stamp", *key = NULL, *data = NULL, *out = NULL;
    long limit = 0;
    int split = NNL_SPLIT_TEST, c;
    uint64_t seed = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:d:o:", lo, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 'd': data = optarg; break;
        case 'o': out = optarg; break;
        case 1:
            if (!strcmp(optarg, "test")) split = NNL_SPLIT_TEST;
            else if (!strcmp(optarg, "train")) split = NNL_SPLIT_TRAIN;
            else return cli_fail(cmd, "--split must be test or train, got '%s'", optarg) + 1;
            break;
        case 2: if (cli_int(cmd, "--limit", optarg, 1, 1000000000, &limit)) return 2; break;
        case 3: if (cli_u64(cmd, "--seed", optarg, &seed)) return 2; break;
        default: return cli_bad_option(cmd, argc, argv);
        }
    }
    if (!key) return cli_fail(cmd, "no key given (--key FILE)") + 1;
    nnl_cert k;
    int st = nnl_cert_load(&k, key);
    if (st) return cli_lib_fail(cmd, st);
    int rc;
    if (data) {
        if (!out) rc = cli_fail(cmd, "--data needs --out DIR") + 1;
        else if (optind < argc) rc = cli_fail(cmd, "give either image files or --data, not both") + 1;
        else rc = stamp_data(cmd, &k, data, split, out, limit, seed);
    } else if (argc - optind != 2) {
        rc = cli_fail(cmd, "expected IN.png OUT.png (or --data PATH --out DIR)") + 1;
    } else {
        rc = stamp_files(cmd, &k, argv[optind], argv[optind + 1], seed);
    }
    nnl_cert_free(&k);
    return rc;
}

const nnl_command nnl_cmd_stamp = {"stamp", "stamp a certificate onto images or a data set", run, usage};
