#define _GNU_SOURCE /* strcasestr */
/* Format detection for nnl_dataset_load, and the helpers every format shares. */
#include "core/core.h"
#include "data/formats.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_CAP 4096

void nnl_free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

void nnl_dataset_free(nnl_dataset *ds) {
    if (!ds) return;
    nnl_free(ds->pixels);
    nnl_free(ds->labels);
    nnl_free_names(ds->class_names, ds->nclass);
    memset(ds, 0, sizeof *ds);
}

void nnl_dataset_truncate(nnl_dataset *ds, int64_t n) {
    if (n < 0) n = 0;
    if (n < ds->n) ds->n = n;
}

/* Selection sampling (Knuth's algorithm S): each image is kept with probability
 * (still needed) / (still unseen), so exactly n are kept, in their original order, and the
 * kept ones can be moved down in place. A class-sorted set (image folders, GTSRB) gives a
 * subset with every class in proportion, as the first n images would not. */
void nnl_dataset_sample(nnl_dataset *ds, int64_t n, uint64_t seed) {
    if (n < 0) n = 0;
    if (n >= ds->n) return;
    size_t img = (size_t)ds->c * ds->h * ds->w;
    nnl_rng r = nnl_rng_derive(seed, 0x5a3b1e00ULL);
    int64_t kept = 0;
    for (int64_t i = 0; i < ds->n && kept < n; i++) {
        if ((int64_t)nnl_rng_below(&r, (uint64_t)(ds->n - i)) >= n - kept) continue;
        if (kept != i) {
            memmove(ds->pixels + (size_t)kept * img, ds->pixels + (size_t)i * img, img);
            ds->labels[kept] = ds->labels[i];
        }
        kept++;
    }
    ds->n = kept;
}

int nnl_dataset_split(const nnl_dataset *ds, int64_t n, uint64_t seed, nnl_dataset *a, nnl_dataset *b) {
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    if (n < 1 || n >= ds->n) return nnl_fail(NNL_ERR_ARG, "cannot split %lld images into %lld and the rest", (long long)ds->n, (long long)n);
    size_t isz = (size_t)ds->c * ds->h * ds->w;
    nnl_dataset *parts[2] = {a, b};
    int64_t *perm = malloc((size_t)ds->n * sizeof *perm);
    int st = perm ? NNL_OK : nnl_fail(NNL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < 2; i++) {
        *parts[i] = *ds;
        parts[i]->class_names = NULL; /* the names stay with ds; the parts are numbered alike */
        parts[i]->n = i == 0 ? n : ds->n - n;
        parts[i]->pixels = nnl_alloc((size_t)parts[i]->n * isz);
        parts[i]->labels = nnl_alloc((size_t)parts[i]->n * sizeof(int32_t));
        if (!parts[i]->pixels || !parts[i]->labels) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        /* A seeded permutation: the first n of it are a, the rest b. */
        nnl_rng r = nnl_rng_derive(seed, 0x4e3a9ULL);
        for (int64_t i = 0; i < ds->n; i++) perm[i] = i;
        for (int64_t i = ds->n - 1; i > 0; i--) {
            int64_t j = (int64_t)nnl_rng_below(&r, (uint64_t)i + 1), t = perm[i];
            perm[i] = perm[j]; perm[j] = t;
        }
        for (int64_t i = 0; i < ds->n; i++) {
            nnl_dataset *d = parts[i < n ? 0 : 1];
            int64_t at = i < n ? i : i - n;
            memcpy(d->pixels + (size_t)at * isz, ds->pixels + (size_t)perm[i] * isz, isz);
            d->labels[at] = ds->labels[perm[i]];
        }
    }
    free(perm);
    if (st) { nnl_dataset_free(a); nnl_dataset_free(b); }
    return st;
}

void nnl_dataset_stats(const nnl_dataset *ds, float *mean, float *std) {
    int c = ds->c;
    if (c < 1 || c > NNL_MAX_CHANNELS) return;
    for (int k = 0; k < c; k++) { mean[k] = 0.0f; std[k] = 1.0f; }
    if (!ds->pixels || ds->n <= 0 || ds->h <= 0 || ds->w <= 0) return;
    /* A histogram keeps the sums exact and lets the variance be taken about the true mean
     * (no E[x^2] - E[x]^2 cancellation), whatever the order threads finish in. */
    uint64_t hist[NNL_MAX_CHANNELS][256];
    memset(hist, 0, sizeof hist);
    size_t plane = (size_t)ds->h * (size_t)ds->w;
#pragma omp parallel num_threads(nnl_get_threads())
    {
        uint64_t local[NNL_MAX_CHANNELS][256];
        memset(local, 0, sizeof local);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < ds->n; i++)
            for (int k = 0; k < c; k++) {
                const uint8_t *p = ds->pixels + ((size_t)i * (size_t)c + (size_t)k) * plane;
                for (size_t j = 0; j < plane; j++) local[k][p[j]]++;
            }
#pragma omp critical(nnl_dataset_stats)
        for (int k = 0; k < c; k++)
            for (int v = 0; v < 256; v++) hist[k][v] += local[k][v];
    }
    double count = (double)ds->n * (double)plane;
    for (int k = 0; k < c; k++) {
        double sum = 0.0, var = 0.0;
        for (int v = 0; v < 256; v++) sum += (double)hist[k][v] * v;
        double mu = sum / count / 255.0;
        for (int v = 0; v < 256; v++) {
            double d = v / 255.0 - mu;
            var += (double)hist[k][v] * d * d;
        }
        double sd = sqrt(var / count);
        mean[k] = (float)mu;
        /* A constant channel has no scale to divide out; 1 keeps normalisation finite. */
        std[k] = sd > 0.0 ? (float)sd : 1.0f;
    }
}

int nnl_read_class_names(const char *path, int n, char ***names) {
    return nnl_read_class_names_n(path, n, names, NULL);
}

int nnl_read_class_names_n(const char *path, int n, char ***names, int *count) {
    *names = NULL;
    if (count) *count = 0;
    int any = n <= 0;
    if (any) n = NNL_MAX_CLASSES;
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) return NNL_OK;
    uint8_t *buf = NULL;
    size_t size = 0;
    int st = nnl_read_file(path, &buf, &size, (size_t)1 << 20, 0);
    if (st) return st;
    char **out = calloc((size_t)n, sizeof *out);
    if (!out) { free(buf); return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path); }
    int got = 0;
    for (size_t i = 0; i < size && !st;) {
        size_t j = i;
        while (j < size && buf[j] != '\n') j++;
        size_t e = j;
        while (e > i && (buf[e - 1] == '\r' || buf[e - 1] == ' ' || buf[e - 1] == '\t')) e--;
        if (e > i) {
            if (got >= n && any) st = nnl_fail(NNL_ERR_FORMAT, "%s: more than %d class names", path, n);
            else if (got >= n) st = nnl_fail(NNL_ERR_FORMAT, "%s: more than the %d class names expected", path, n);
            else if (!(out[got++] = strndup((const char *)buf + i, e - i)))
                st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", path);
        }
        i = j + 1;
    }
    free(buf);
    if (!st && any && got < 2) st = nnl_fail(NNL_ERR_FORMAT, "%s: %d class name%s, at least 2 needed", path, got, got == 1 ? "" : "s");
    if (!st && !any && got != n) st = nnl_fail(NNL_ERR_FORMAT, "%s: %d class names, expected %d", path, got, n);
    if (st) { nnl_free_names(out, n); return st; }
    *names = out;
    if (count) *count = got;
    return NNL_OK;
}

/* ------------------------------------------------------------------ detection */



/* out = dir/name. nnl_dataset_load bounds the length of dir, so the fixed names used here
 * always fit. */
static void __attribute__((format(printf, 3, 4))) mkpath(char *out, const char *dir, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(out, PATH_CAP, "%s/%s", dir, name);
}

/* The first existing spelling of an IDX file: the official "train-images-idx3-ubyte" or
 * the common "train-images.idx3-ubyte", each raw or gzipped. */
static int find_idx(char *out, const char *dir, const char *prefix, const char *kind, const char *idx) {
    static const char *const forms[] = {"%s-%s-%s-ubyte", "%s-%s-%s-ubyte.gz", "%s-%s.%s-ubyte", "%s-%s.%s-ubyte.gz"};
    for (int f = 0; f < 4; f++) {
        mkpath(out, dir, forms[f], prefix, kind, idx);
        if (nnl_is_file(out)) return 1;
    }
    return 0;
}

static int load_idx(nnl_dataset *ds, const char *path, int split, int *found) {
    const char *prefix = split == NNL_SPLIT_TRAIN ? "train" : "t10k";
    char img[PATH_CAP], lbl[PATH_CAP], other[PATH_CAP];
    int hi = find_idx(img, path, prefix, "images", "idx3"), hl = find_idx(lbl, path, prefix, "labels", "idx1");
    int ho = find_idx(other, path, split == NNL_SPLIT_TRAIN ? "t10k" : "train", "images", "idx3");
    *found = hi || hl || ho;
    if (!*found) return NNL_OK;
    if (!hi || !hl)
        return nnl_fail(NNL_ERR_IO, "%s: IDX data set without %s-%s-ubyte[.gz]", path, prefix,
                        !hi ? "images-idx3" : "labels-idx1");
    int st = nnl_idx_load(ds, img, lbl);
    if (st) return st;
    /* IDX files carry no class names: take them from classes.txt beside the files, or
     * recognise the two data sets everyone uses by their directory name. */
    char names_path[PATH_CAP];
    mkpath(names_path, path, "classes.txt");
    if (nnl_is_file(names_path)) {
        /* The names say how many classes there are; a label past them is named, not
         * silently made into a class of its own. */
        char **names = NULL;
        int n = 0;
        if ((st = nnl_read_class_names_n(names_path, 0, &names, &n))) return st;
        if ((st = nnl_dataset_check_labels(ds, n, split == NNL_SPLIT_TRAIN ? "training" : "test", names_path))) { nnl_free_names(names, NNL_MAX_CLASSES); return st; }
        ds->nclass = n;
        ds->class_names = names;
        return NNL_OK;
    }
    static const char *const fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    static const char *const digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    const char *const *known = strcasestr(path, "fashion") ? fashion : strcasestr(path, "mnist") ? digits : NULL;
    if (known && ds->nclass == 10) {
        ds->class_names = calloc(10, sizeof(char *));
        if (!ds->class_names) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
        for (int i = 0; i < 10; i++)
            if (!(ds->class_names[i] = strdup(known[i]))) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    }
    return NNL_OK;
}

/* Where a CIFAR set lives: path itself or the folder the official archive unpacks to. */
static int cifar_base(char *base, const char *path, const char *sub, const char *train, const char *test) {
    char probe[PATH_CAP];
    for (int s = 0; s < 2; s++) {
        if (s == 0) snprintf(base, PATH_CAP, "%s", path);
        else mkpath(base, path, "%s", sub);
        mkpath(probe, base, "%s", train);
        if (nnl_is_file(probe)) return 1;
        mkpath(probe, base, "%s", test);
        if (nnl_is_file(probe)) return 1;
    }
    return 0;
}

static int load_cifar10(nnl_dataset *ds, const char *path, int split, int *found) {
    char base[PATH_CAP], files[5][PATH_CAP];
    const char *list[5];
    if (!(*found = cifar_base(base, path, "cifar-10-batches-bin", "data_batch_1.bin", "test_batch.bin")))
        return NNL_OK;
    int nf = split == NNL_SPLIT_TRAIN ? 5 : 1;
    for (int i = 0; i < nf; i++) {
        if (split == NNL_SPLIT_TRAIN) mkpath(files[i], base, "data_batch_%d.bin", i + 1);
        else mkpath(files[i], base, "test_batch.bin");
        if (!nnl_is_file(files[i]))
            return nnl_fail(NNL_ERR_IO, "%s: CIFAR-10 data set without %s", base, strrchr(files[i], '/') + 1);
        list[i] = files[i];
    }
    return nnl_cifar_load(ds, list, nf, NNL_CIFAR10);
}

static int load_cifar100(nnl_dataset *ds, const char *path, int split, int *found) {
    char base[PATH_CAP], file[PATH_CAP];
    if (!(*found = cifar_base(base, path, "cifar-100-binary", "train.bin", "test.bin"))) return NNL_OK;
    const char *name = split == NNL_SPLIT_TRAIN ? "train.bin" : "test.bin";
    mkpath(file, base, "%s", name);
    if (!nnl_is_file(file)) return nnl_fail(NNL_ERR_IO, "%s: CIFAR-100 data set without %s", base, name);
    const char *list[1] = {file};
    return nnl_cifar_load(ds, list, 1, NNL_CIFAR100_FINE);
}

static int load_folder(nnl_dataset *ds, const char *path, int split, int *found) {
    char dir[PATH_CAP], other[PATH_CAP];
    const char *name = split == NNL_SPLIT_TRAIN ? "train" : "test";
    mkpath(dir, path, "%s", name);
    mkpath(other, path, "%s", split == NNL_SPLIT_TRAIN ? "test" : "train");
    if (!(*found = nnl_is_dir(dir) || nnl_is_dir(other))) return NNL_OK;
    if (!nnl_is_dir(dir)) return nnl_fail(NNL_ERR_IO, "%s: image-folder data set without a %s/ directory", path, name);
    return nnl_imagefolder_load(ds, dir);
}

/* ---- SVHN and GTSRB (src/data/svhn.c, src/data/gtsrb.c) ---- */

/* SVHN cropped digits: train_32x32.mat / test_32x32.mat (extra_32x32.mat is not used). */
static int load_svhn(nnl_dataset *ds, const char *path, int split, int *found) {
    char want[PATH_CAP], other[PATH_CAP];
    const char *name = split == NNL_SPLIT_TRAIN ? "train_32x32.mat" : "test_32x32.mat";
    mkpath(want, path, "%s", name);
    mkpath(other, path, "%s", split == NNL_SPLIT_TRAIN ? "test_32x32.mat" : "train_32x32.mat");
    if (!(*found = nnl_is_file(want) || nnl_is_file(other))) return NNL_OK;
    if (!nnl_is_file(want)) return nnl_fail(NNL_ERR_IO, "%s: SVHN data set without %s", path, name);
    return nnl_svhn_load(ds, want);
}

/* GTSRB: Final_Training/ and Final_Test/, in path or in the GTSRB/ folder the official
 * archives unpack to; size and cropping from nnl_gtsrb_set_defaults. */
static int load_gtsrb(nnl_dataset *ds, const char *path, int split, int *found) {
    char probe[PATH_CAP];
    *found = 0;
    static const char *const probes[] = {"Final_Training", "Final_Test", "GTSRB/Final_Training", "GTSRB/Final_Test"};
    for (int i = 0; i < 4 && !*found; i++) {
        mkpath(probe, path, "%s", probes[i]);
        *found = nnl_is_dir(probe);
    }
    if (!*found) return NNL_OK;
    return nnl_gtsrb_load(ds, path, split, 0, -1, NULL);
}
/* ---- end SVHN and GTSRB ---- */

int nnl_dataset_load(nnl_dataset *ds, const char *path, int split) {
    memset(ds, 0, sizeof *ds);
    if (!path) return nnl_fail(NNL_ERR_ARG, "nnl_dataset_load: NULL path");
    if (split != NNL_SPLIT_TRAIN && split != NNL_SPLIT_TEST)
        return nnl_fail(NNL_ERR_ARG, "%s: unknown split %d (0 = train, 1 = test)", path, split);
    struct stat sb;
    if (stat(path, &sb) != 0) return nnl_fail(NNL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return nnl_fail(NNL_ERR_IO, "%s: not a directory (a data set is a directory)", path);
    if (strlen(path) > PATH_CAP - 256) return nnl_fail(NNL_ERR_ARG, "%s: path too long", path);
    int (*const loaders[])(nnl_dataset *, const char *, int, int *) = {load_idx, load_cifar10, load_cifar100,
                                                                        load_svhn, load_gtsrb, load_folder};
    for (size_t i = 0; i < sizeof loaders / sizeof loaders[0]; i++) {
        int found = 0, st = loaders[i](ds, path, split, &found);
        if (found || st) return st;
    }
    const char *sp = split == NNL_SPLIT_TRAIN ? "train" : "test";
    return nnl_fail(NNL_ERR_FORMAT,
                    "%s: no IDX, CIFAR or image-folder data set found (expected %s-images-idx3-ubyte[.gz], "
                    "%s, %s.bin, %s_32x32.mat (SVHN), %s/ (GTSRB), or %s/<class>/<image>)",
                    path, split == NNL_SPLIT_TRAIN ? "train" : "t10k",
                    split == NNL_SPLIT_TRAIN ? "data_batch_1.bin" : "test_batch.bin", sp, sp,
                    split == NNL_SPLIT_TRAIN ? "Final_Training" : "Final_Test", sp);
}
