/* Data-set loaders: small generated files in every format, broken files, and the real sets
 * when they are at hand (NNL_MNIST_DIR, /usr/share/datasets/fashion-mnist). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "nnlock.h"
#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <zlib.h>

#include <stb/stb_image_write.h>

static char g_path[4096];

/* A path under the test's temporary directory (one static buffer: copy to keep it). */
static const char *tmp(const char *fmt, const char *a) {
    char name[1024];
    snprintf(name, sizeof name, fmt, a);
    snprintf(g_path, sizeof g_path, "%s/%s", nnl_test_tmpdir(), name);
    return g_path;
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g || gzwrite(g, data, (unsigned)n) != (int)n) { perror(path); exit(2); }
    gzclose(g);
}


/* ------------------------------------------------------------------ IDX */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* n images of h x w with pixel (i, j) = 7*i + j, labels lab. Returns the malloc'd bytes. */
static uint8_t *make_idx_images(uint32_t n, uint32_t h, uint32_t w, size_t *size) {
    *size = 16 + (size_t)n * h * w;
    uint8_t *b = malloc(*size);
    put_be32(b, 0x803); put_be32(b + 4, n); put_be32(b + 8, h); put_be32(b + 12, w);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < (size_t)h * w; j++) b[16 + i * h * w + j] = (uint8_t)(7 * i + j);
    return b;
}

static uint8_t *make_idx_labels(uint32_t n, const uint8_t *lab, size_t *size) {
    *size = 8 + n;
    uint8_t *b = malloc(*size);
    put_be32(b, 0x801); put_be32(b + 4, n);
    memcpy(b + 8, lab, n);
    return b;
}

static void check_idx_set(const nnl_dataset *ds, uint32_t n, int h, int w, const uint8_t *lab) {
    CHECK(ds->n == n && ds->c == 1 && ds->h == h && ds->w == w);
    CHECK(strcmp(ds->source, "idx") == 0);
    int ok = 1;
    for (size_t i = 0; i < n && ds->pixels && ds->labels; i++) {
        if (ds->labels[i] != lab[i]) ok = 0;
        for (size_t j = 0; j < (size_t)h * w; j++)
            if (ds->pixels[i * h * w + j] != (uint8_t)(7 * i + j)) ok = 0;
    }
    CHECK(ok);
}

static void test_idx(void) {
    const uint8_t lab[5] = {3, 1, 4, 1, 5};
    size_t ni, nl;
    uint8_t *img = make_idx_images(5, 3, 4, &ni), *lbl = make_idx_labels(5, lab, &nl);
    char ip[4096], lp[4096];
    nnl_dataset ds;

    /* raw, and as a data-set directory (train raw, test gzip) */
    nnl_test_mkdirs(tmp("idx", NULL));
    snprintf(ip, sizeof ip, "%s", tmp("idx/train-images-idx3-ubyte", NULL));
    snprintf(lp, sizeof lp, "%s", tmp("idx/train-labels-idx1-ubyte", NULL));
    nnl_test_write(ip, img, ni);
    nnl_test_write(lp, lbl, nl);
    write_gz(tmp("idx/t10k-images-idx3-ubyte.gz", NULL), img, ni);
    write_gz(tmp("idx/t10k-labels-idx1-ubyte.gz", NULL), lbl, nl);
    CHECK(nnl_idx_load(&ds, ip, lp) == NNL_OK);
    check_idx_set(&ds, 5, 3, 4, lab);
    CHECK(ds.nclass == 10 && ds.class_names == NULL);
    nnl_dataset_free(&ds);
    CHECK(ds.pixels == NULL && ds.n == 0);
    CHECK(nnl_dataset_load(&ds, tmp("idx", NULL), NNL_SPLIT_TRAIN) == NNL_OK);
    check_idx_set(&ds, 5, 3, 4, lab);
    nnl_dataset_free(&ds);
    CHECK(nnl_dataset_load(&ds, tmp("idx", NULL), NNL_SPLIT_TEST) == NNL_OK);
    check_idx_set(&ds, 5, 3, 4, lab);
    nnl_dataset_free(&ds);

    remove(tmp("idx/t10k-labels-idx1-ubyte.gz", NULL));
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("idx", NULL), NNL_SPLIT_TEST), "without t10k-labels-idx1-ubyte");
    /* the "train-images.idx3-ubyte" spelling some mirrors use */
    nnl_test_mkdirs(tmp("idx2", NULL));
    write_gz(tmp("idx2/t10k-images.idx3-ubyte.gz", NULL), img, ni);
    nnl_test_write(tmp("idx2/t10k-labels.idx1-ubyte", NULL), lbl, nl);
    CHECK(nnl_dataset_load(&ds, tmp("idx2", NULL), NNL_SPLIT_TEST) == NNL_OK);
    check_idx_set(&ds, 5, 3, 4, lab);
    nnl_dataset_free(&ds);
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("idx2", NULL), NNL_SPLIT_TRAIN), "without train-images-idx3-ubyte");

    /* nclass follows the largest label above 9 */
    const uint8_t lab2[5] = {0, 12, 4, 1, 5};
    uint8_t *lbl2 = make_idx_labels(5, lab2, &nl);
    nnl_test_write(tmp("idx/big-labels", NULL), lbl2, nl);
    CHECK(nnl_idx_load(&ds, ip, tmp("idx/big-labels", NULL)) == NNL_OK);
    CHECK(ds.nclass == 13);
    nnl_dataset_free(&ds);
    free(lbl2);

    /* broken files */
    const char *bad = tmp("idx/bad", NULL);
    char badp[4096];
    snprintf(badp, sizeof badp, "%s", bad);
    nnl_test_write(badp, img, ni - 1);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "truncated");
    CHECK(ds.pixels == NULL && ds.n == 0);
    uint8_t *big = malloc(ni + 1);
    memcpy(big, img, ni);
    big[ni] = 0;
    nnl_test_write(badp, big, ni + 1);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "trailing");
    memcpy(big, img, ni);
    put_be32(big, 0x0803 + 0x100); /* idx3 of signed bytes */
    nnl_test_write(badp, big, ni);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "magic");
    EXPECT_FAIL(nnl_idx_load(&ds, lp, ip), "magic"); /* swapped */
    memcpy(big, img, ni);
    put_be32(big + 8, 100000);
    put_be32(big + 12, 100000);
    nnl_test_write(badp, big, ni);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "image size");
    memcpy(big, img, ni);
    put_be32(big + 4, 4000000000u);
    nnl_test_write(badp, big, ni);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "image count");
    nnl_test_write(badp, img, 10);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "header");
    nnl_test_write(badp, img, 0);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), "too short");
    uint8_t *lbl4 = make_idx_labels(4, lab, &nl);
    nnl_test_write(badp, lbl4, nl);
    EXPECT_FAIL(nnl_idx_load(&ds, ip, badp), "4 labels but");
    free(lbl4);
    nnl_test_write(badp, lbl, nl - 1);
    EXPECT_FAIL(nnl_idx_load(&ds, ip, badp), "truncated");
    EXPECT_FAIL(nnl_idx_load(&ds, tmp("idx/missing", NULL), lp), "missing");

    /* a gzip stream cut short must not pass for a short file */
    size_t big_n;
    uint8_t *bigimg = make_idx_images(50, 28, 28, &big_n);
    write_gz(badp, bigimg, big_n);
    uint8_t *gz = NULL;
    FILE *f = fopen(badp, "rb");
    fseek(f, 0, SEEK_END);
    long gzn = ftell(f);
    rewind(f);
    gz = malloc((size_t)gzn);
    CHECK(fread(gz, 1, (size_t)gzn, f) == (size_t)gzn);
    fclose(f);
    nnl_test_write(badp, gz, (size_t)gzn / 2);
    EXPECT_FAIL(nnl_idx_load(&ds, badp, lp), badp);
    free(gz);
    free(bigimg);
    free(big);
    free(img);
    free(lbl);
}

/* ------------------------------------------------------------------ CIFAR */

/* n records; record r has label(s) from lab (CIFAR-100: coarse = lab/5, fine = lab) and
 * pixel j of plane k = r + 3k + j. */
static uint8_t *make_cifar(int n, int hundred, const uint8_t *lab, size_t *size) {
    size_t rec = 3072 + (hundred ? 2 : 1);
    *size = rec * (size_t)n;
    uint8_t *b = malloc(*size);
    for (int r = 0; r < n; r++) {
        uint8_t *p = b + rec * (size_t)r;
        if (hundred) { p[0] = lab[r] / 5; p[1] = lab[r]; } else p[0] = lab[r];
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < 1024; j++) p[rec - 3072 + (size_t)k * 1024 + j] = (uint8_t)(r + 3 * k + j);
    }
    return b;
}

static int cifar_pixels_ok(const nnl_dataset *ds, int first_r, int64_t from, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < 1024; j++)
                if (ds->pixels[(from + i) * 3072 + k * 1024 + j] != (uint8_t)(first_r + i + 3 * k + j)) return 0;
    return 1;
}

static void test_cifar(void) {
    const uint8_t lab[4] = {9, 0, 3, 7};
    nnl_dataset ds;
    size_t n1, n2;
    uint8_t *b1 = make_cifar(3, 0, lab, &n1), *b2 = make_cifar(1, 0, lab + 3, &n2);
    char f1[4096], f2[4096];
    nnl_test_mkdirs(tmp("c10/cifar-10-batches-bin", NULL));
    snprintf(f1, sizeof f1, "%s", tmp("c10/a.bin", NULL));
    snprintf(f2, sizeof f2, "%s", tmp("c10/b.bin", NULL));
    nnl_test_write(f1, b1, n1);
    nnl_test_write(f2, b2, n2);
    const char *files[2] = {f1, f2};
    CHECK(nnl_cifar_load(&ds, files, 2, 0) == NNL_OK);
    CHECK(ds.n == 4 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.nclass == 10);
    CHECK(strcmp(ds.source, "cifar10") == 0);
    CHECK(ds.class_names && strcmp(ds.class_names[0], "airplane") == 0 && strcmp(ds.class_names[9], "truck") == 0);
    CHECK(ds.labels[0] == 9 && ds.labels[1] == 0 && ds.labels[2] == 3 && ds.labels[3] == 7);
    CHECK(cifar_pixels_ok(&ds, 0, 0, 3) && cifar_pixels_ok(&ds, 0, 3, 1));
    nnl_dataset_free(&ds);

    /* the official layout inside cifar-10-batches-bin/ */
    for (int i = 1; i <= 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "c10/cifar-10-batches-bin/data_batch_%d.bin", i);
        nnl_test_write(tmp("%s", name), b1, n1);
    }
    nnl_test_write(tmp("c10/cifar-10-batches-bin/test_batch.bin", NULL), b2, n2);
    CHECK(nnl_dataset_load(&ds, tmp("c10", NULL), NNL_SPLIT_TRAIN) == NNL_OK);
    CHECK(ds.n == 15 && cifar_pixels_ok(&ds, 0, 12, 3) && ds.labels[14] == 3);
    nnl_dataset_free(&ds);
    CHECK(nnl_dataset_load(&ds, tmp("c10", NULL), NNL_SPLIT_TEST) == NNL_OK);
    CHECK(ds.n == 1 && ds.labels[0] == 7 && strcmp(ds.source, "cifar10") == 0);
    nnl_dataset_free(&ds);
    remove(tmp("c10/cifar-10-batches-bin/data_batch_4.bin", NULL));
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("c10", NULL), NNL_SPLIT_TRAIN), "data_batch_4.bin");

    /* broken CIFAR-10 */
    nnl_test_write(f2, b1, n1 - 1);
    EXPECT_FAIL(nnl_cifar_load(&ds, files, 2, 0), "whole number");
    b2[0] = 10;
    nnl_test_write(f2, b2, n2);
    EXPECT_FAIL(nnl_cifar_load(&ds, files, 2, 0), "label 10");
    EXPECT_FAIL(nnl_cifar_load(&ds, files, 2, 7), "mode");
    free(b1);
    free(b2);

    /* CIFAR-100, fine and coarse labels, names beside the file */
    const uint8_t lab100[3] = {99, 0, 42};
    b1 = make_cifar(3, 1, lab100, &n1);
    nnl_test_mkdirs(tmp("c100/cifar-100-binary", NULL));
    snprintf(f1, sizeof f1, "%s", tmp("c100/cifar-100-binary/train.bin", NULL));
    nnl_test_write(f1, b1, n1);
    nnl_test_write(tmp("c100/cifar-100-binary/test.bin", NULL), b1, n1);
    char names[2000] = "";
    for (int k = 0; k < 100; k++) {
        char line[32];
        snprintf(line, sizeof line, "fine%d\r\n", k);
        strcat(names, line);
    }
    strcat(names, "\n");
    nnl_test_write(tmp("c100/cifar-100-binary/fine_label_names.txt", NULL), names, strlen(names));
    files[0] = f1;
    CHECK(nnl_cifar_load(&ds, files, 1, 1) == NNL_OK);
    CHECK(ds.n == 3 && ds.nclass == 100 && strcmp(ds.source, "cifar100") == 0);
    CHECK(ds.labels[0] == 99 && ds.labels[1] == 0 && ds.labels[2] == 42 && cifar_pixels_ok(&ds, 0, 0, 3));
    CHECK(ds.class_names && strcmp(ds.class_names[42], "fine42") == 0);
    nnl_dataset_free(&ds);
    CHECK(nnl_cifar_load(&ds, files, 1, 2) == NNL_OK);
    CHECK(ds.nclass == 20 && ds.labels[0] == 19 && ds.labels[2] == 8 && ds.class_names == NULL);
    nnl_dataset_free(&ds);
    CHECK(nnl_dataset_load(&ds, tmp("c100", NULL), NNL_SPLIT_TEST) == NNL_OK);
    CHECK(ds.n == 3 && ds.nclass == 100 && ds.labels[2] == 42);
    nnl_dataset_free(&ds);

    /* CIFAR-100 straight in the given directory, without a names file */
    nnl_test_mkdirs(tmp("c100b", NULL));
    nnl_test_write(tmp("c100b/train.bin", NULL), b1, n1);
    CHECK(nnl_dataset_load(&ds, tmp("c100b", NULL), NNL_SPLIT_TRAIN) == NNL_OK);
    CHECK(ds.n == 3 && ds.nclass == 100 && ds.labels[0] == 99 && ds.class_names == NULL);
    nnl_dataset_free(&ds);
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("c100b", NULL), NNL_SPLIT_TEST), "without test.bin");

    nnl_test_write(tmp("c100/cifar-100-binary/coarse_label_names.txt", NULL), "a\nb\n", 4);
    EXPECT_FAIL(nnl_cifar_load(&ds, files, 1, 2), "coarse_label_names.txt");
    EXPECT_FAIL(nnl_cifar_load(&ds, files, 1, 0), "whole number"); /* 3074-byte records as CIFAR-10 */
    b1[3074 + 1] = 100;
    nnl_test_write(f1, b1, n1);
    EXPECT_FAIL(nnl_cifar_load(&ds, files, 1, 1), "record 1 has fine label 100");
    free(b1);
}

/* ------------------------------------------------------------------ images */

typedef struct { uint8_t *d; size_t n; } mem;
static void mem_write(void *ctx, void *data, int size) {
    mem *m = ctx;
    m->d = realloc(m->d, m->n + (size_t)size);
    memcpy(m->d + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

/* Planar test pattern: pixel j of channel k = seed + 11k + 3j. */
static void pattern(uint8_t *px, int c, int h, int w, int seed) {
    for (int k = 0; k < c; k++)
        for (int j = 0; j < h * w; j++) px[k * h * w + j] = (uint8_t)(seed + 11 * k + 3 * j);
}

static void write_pnm(const char *path, const uint8_t *planar, int c, int h, int w) {
    char hdr[64];
    int hn = snprintf(hdr, sizeof hdr, "P%c\n# comment\n%d %d\n255\n", c == 3 ? '6' : '5', w, h);
    size_t n = (size_t)hn + (size_t)c * h * w;
    uint8_t *b = malloc(n);
    memcpy(b, hdr, (size_t)hn);
    for (int j = 0; j < h * w; j++)
        for (int k = 0; k < c; k++) b[hn + j * c + k] = planar[k * h * w + j];
    nnl_test_write(path, b, n);
    free(b);
}

static void test_images(void) {
    uint8_t px[3 * 5 * 7], *got = NULL;
    int c, h, w;
    nnl_test_mkdirs(tmp("img", NULL));
    for (int ch = 1; ch <= 3; ch += 2) {
        pattern(px, ch, 5, 7, ch);
        char p[4096];
        snprintf(p, sizeof p, "%s", tmp("img/a.png", NULL));
        CHECK(nnl_image_save_png(p, px, ch, 5, 7, 0) == NNL_OK);
        CHECK(nnl_image_load(p, &got, &c, &h, &w) == NNL_OK);
        CHECK(c == ch && h == 5 && w == 7 && got && memcmp(got, px, (size_t)ch * 35) == 0);
        free(got);
        snprintf(p, sizeof p, "%s", tmp("img/a.ppm", NULL));
        write_pnm(p, px, ch, 5, 7);
        CHECK(nnl_image_load(p, &got, &c, &h, &w) == NNL_OK);
        CHECK(c == ch && h == 5 && w == 7 && got && memcmp(got, px, (size_t)ch * 35) == 0);
        free(got);
    }

    /* RGBA drops alpha; JPEG round-trips a flat colour closely */
    uint8_t rgba[2 * 3 * 4], flat[16 * 16 * 3];
    for (int j = 0; j < 6; j++) { rgba[4 * j] = (uint8_t)j; rgba[4 * j + 1] = 100; rgba[4 * j + 2] = 200; rgba[4 * j + 3] = 7; }
    mem m = {0};
    CHECK(stbi_write_png_to_func(mem_write, &m, 3, 2, 4, rgba, 12));
    nnl_test_write(tmp("img/rgba.png", NULL), m.d, m.n);
    free(m.d);
    CHECK(nnl_image_load(tmp("img/rgba.png", NULL), &got, &c, &h, &w) == NNL_OK);
    CHECK(c == 3 && h == 2 && w == 3 && got && got[5] == 5 && got[6] == 100 && got[17] == 200);
    free(got);
    for (int j = 0; j < 256; j++) { flat[3 * j] = 200; flat[3 * j + 1] = 40; flat[3 * j + 2] = 90; }
    m.d = NULL; m.n = 0;
    CHECK(stbi_write_jpg_to_func(mem_write, &m, 16, 16, 3, flat, 95));
    nnl_test_write(tmp("img/a.jpg", NULL), m.d, m.n);
    free(m.d);
    CHECK(nnl_image_load(tmp("img/a.jpg", NULL), &got, &c, &h, &w) == NNL_OK);
    CHECK(c == 3 && h == 16 && w == 16 && got);
    int close = 1;
    for (int j = 0; got && j < 256; j++)
        if (abs(got[j] - 200) > 4 || abs(got[256 + j] - 40) > 4 || abs(got[512 + j] - 90) > 4) close = 0;
    CHECK(close);
    free(got);

    /* 16-bit and small-maxval PGM samples are rescaled to 0..255 */
    nnl_test_write(tmp("img/wide.pgm", NULL), "P5 3 1 65535 \xff\xff\x80\x00\x00\x00", 19);
    CHECK(nnl_image_load(tmp("img/wide.pgm", NULL), &got, &c, &h, &w) == NNL_OK);
    CHECK(c == 1 && h == 1 && w == 3 && got && got[0] == 255 && got[1] == 128 && got[2] == 0);
    free(got);
    nnl_test_write(tmp("img/small.pgm", NULL), "P5 2 1 15 \x0f\x05", 12);
    CHECK(nnl_image_load(tmp("img/small.pgm", NULL), &got, &c, &h, &w) == NNL_OK);
    CHECK(c == 1 && w == 2 && got && got[0] == 255 && got[1] == 85);
    free(got);
    nnl_test_write(tmp("img/over.pgm", NULL), "P5 2 1 15 \x0f\x10", 12);
    EXPECT_FAIL(nnl_image_load(tmp("img/over.pgm", NULL), &got, &c, &h, &w), "above the maximum");

    /* a PNG cut short */
    pattern(px, 3, 5, 7, 9);
    CHECK(nnl_image_save_png(tmp("img/cut.png", NULL), px, 3, 5, 7, 0) == NNL_OK);
    FILE *f = fopen(tmp("img/cut.png", NULL), "rb");
    uint8_t whole[4096];
    size_t wn = f ? fread(whole, 1, sizeof whole, f) : 0;
    if (f) fclose(f);
    nnl_test_write(tmp("img/cut.png", NULL), whole, wn / 2);
    EXPECT_FAIL(nnl_image_load(tmp("img/cut.png", NULL), &got, &c, &h, &w), "cut.png");

    nnl_test_write(tmp("img/bad.png", NULL), "\x89PNG\r\n\x1a\nrubbish", 15);
    EXPECT_FAIL(nnl_image_load(tmp("img/bad.png", NULL), &got, &c, &h, &w), "bad.png");
    CHECK(got == NULL);
    nnl_test_write(tmp("img/bad.bin", NULL), "hello world", 11);
    EXPECT_FAIL(nnl_image_load(tmp("img/bad.bin", NULL), &got, &c, &h, &w), "not a PNG");
    nnl_test_write(tmp("img/ascii.ppm", NULL), "P3\n1 1\n255\n1 2 3\n", 17);
    EXPECT_FAIL(nnl_image_load(tmp("img/ascii.ppm", NULL), &got, &c, &h, &w), "P3");
    nnl_test_write(tmp("img/short.ppm", NULL), "P6\n4 4\n255\nabc", 14);
    EXPECT_FAIL(nnl_image_load(tmp("img/short.ppm", NULL), &got, &c, &h, &w), "short.ppm");
    EXPECT_FAIL(nnl_image_save_png(tmp("img/x.png", NULL), px, 5, 5, 7, 0), "x.png");
    EXPECT_FAIL(nnl_image_save_png(tmp("nodir/x.png", NULL), px, 1, 5, 7, 0), "x.png");
}

/* ------------------------------------------------------------------ image folder */

static void folder_image(const char *rel, int c, int h, int w, int seed, int png) {
    uint8_t px[3 * 8 * 8];
    pattern(px, c, h, w, seed);
    if (png) CHECK(nnl_image_save_png(tmp("%s", rel), px, c, h, w, 0) == NNL_OK);
    else write_pnm(tmp("%s", rel), px, c, h, w);
}

static void test_folder(void) {
    nnl_dataset ds;
    nnl_test_mkdirs(tmp("fold/train/dog", NULL));
    nnl_test_mkdirs(tmp("fold/train/cat", NULL));
    nnl_test_mkdirs(tmp("fold/train/.git", NULL));
    nnl_test_mkdirs(tmp("fold/test/cat", NULL));
    folder_image("fold/train/dog/b.png", 3, 6, 8, 1, 1);
    folder_image("fold/train/dog/a.ppm", 3, 6, 8, 2, 0);
    folder_image("fold/train/cat/z.png", 3, 6, 8, 3, 1);
    folder_image("fold/train/.git/x.png", 1, 2, 2, 3, 1);
    nnl_test_write(tmp("fold/train/cat/.DS_Store", NULL), "junk", 4);
    nnl_test_write(tmp("fold/train/README", NULL), "junk", 4);
    CHECK(nnl_dataset_load(&ds, tmp("fold", NULL), NNL_SPLIT_TRAIN) == NNL_OK);
    CHECK(ds.n == 3 && ds.c == 3 && ds.h == 6 && ds.w == 8 && ds.nclass == 2);
    CHECK(strcmp(ds.source, "imagefolder") == 0);
    CHECK(ds.class_names && strcmp(ds.class_names[0], "cat") == 0 && strcmp(ds.class_names[1], "dog") == 0);
    CHECK(ds.labels && ds.labels[0] == 0 && ds.labels[1] == 1 && ds.labels[2] == 1);
    uint8_t want[3 * 6 * 8];
    int seeds[3] = {3, 2, 1};
    for (int i = 0; i < 3 && ds.pixels; i++) {
        pattern(want, 3, 6, 8, seeds[i]);
        CHECK_MSG(memcmp(ds.pixels + i * 144, want, 144) == 0, "image %d", i);
    }
    nnl_dataset_free(&ds);
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("fold", NULL), NNL_SPLIT_TEST), "no images");
    rmdir(tmp("fold/test/cat", NULL));
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("fold", NULL), NNL_SPLIT_TEST), "no class");

    /* Many images, gray PGM, decoded in parallel: errors name the lowest bad file every time. */
    nnl_test_mkdirs(tmp("many/c0", NULL));
    nnl_test_mkdirs(tmp("many/c1", NULL));
    for (int i = 0; i < 300; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "many/c%d/%03d.pgm", i % 2, i);
        folder_image(rel, 1, 4, 4, i, 0);
    }
    CHECK(nnl_imagefolder_load(&ds, tmp("many", NULL)) == NNL_OK);
    CHECK(ds.n == 300 && ds.c == 1 && ds.h == 4 && ds.w == 4);
    int ok = 1;
    for (int i = 0; i < 300 && ds.pixels; i++) {
        int orig = i < 150 ? 2 * i : 2 * (i - 150) + 1; /* c0 holds the even ones */
        pattern(want, 1, 4, 4, orig);
        if (memcmp(ds.pixels + i * 16, want, 16) || ds.labels[i] != (i >= 150)) ok = 0;
    }
    CHECK(ok);
    nnl_dataset_free(&ds);
    nnl_test_write(tmp("many/c1/201.pgm", NULL), "P5\n4 4\n255\nxx", 13);
    folder_image("many/c0/100.pgm", 1, 4, 5, 0, 0);
    nnl_test_write(tmp("many/c1/299.pgm", NULL), "garbage", 7);
    for (int rep = 0; rep < 5; rep++)
        EXPECT_FAIL(nnl_imagefolder_load(&ds, tmp("many", NULL)), "100.pgm: image is 5x4");
    folder_image("many/c0/100.pgm", 1, 4, 4, 0, 0);
    for (int rep = 0; rep < 3; rep++) EXPECT_FAIL(nnl_imagefolder_load(&ds, tmp("many", NULL)), "201.pgm");
    folder_image("many/c0/000.pgm", 3, 4, 4, 0, 0);
    EXPECT_FAIL(nnl_imagefolder_load(&ds, tmp("many", NULL)), "with 3");
    EXPECT_FAIL(nnl_imagefolder_load(&ds, tmp("nothere", NULL)), "nothere");
}

/* ------------------------------------------------------------------ the rest */

static void test_misc(void) {
    nnl_dataset ds;
    memset(&ds, 0, sizeof ds);
    nnl_dataset_free(&ds);
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("nothere", NULL), NNL_SPLIT_TRAIN), "nothere");
    nnl_test_mkdirs(tmp("empty", NULL));
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("empty", NULL), NNL_SPLIT_TRAIN), "no IDX, CIFAR or image-folder");
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("empty", NULL), 5), "split");
    nnl_test_write(tmp("afile", NULL), "x", 1);
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("afile", NULL), NNL_SPLIT_TRAIN), "not a directory");

    /* stats: channel 0 is 0/255 in half the pixels and 255 in the rest, channel 1 constant */
    uint8_t px[2 * 2 * 2 * 2];
    int32_t labels[2] = {0, 1};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) { px[i * 8 + j] = j < 2 ? 0 : 255; px[i * 8 + 4 + j] = 51; }
    nnl_dataset s = {.n = 2, .c = 2, .h = 2, .w = 2, .nclass = 2, .pixels = px, .labels = labels};
    float mean[2], sd[2];
    nnl_dataset_stats(&s, mean, sd);
    CHECK(fabsf(mean[0] - 0.5f) < 1e-6f && fabsf(sd[0] - 0.5f) < 1e-6f);
    CHECK(fabsf(mean[1] - 0.2f) < 1e-6f && sd[1] == 1.0f);
    nnl_dataset_truncate(&s, 1);
    CHECK(s.n == 1);
    nnl_dataset_truncate(&s, 5);
    CHECK(s.n == 1);
}

/* A random subset: exactly n images, each kept with its own label, in order, reproducible,
 * and from every class of a class-sorted set. */
static void test_sample(void) {
    enum { N = 1000, K = 10 };
    nnl_dataset a = {.n = N, .c = 1, .h = 1, .w = 2, .nclass = K}, b;
    a.pixels = malloc(2 * N); a.labels = malloc(N * sizeof(int32_t));
    for (int i = 0; i < N; i++) { a.pixels[2 * i] = (uint8_t)(i & 255); a.pixels[2 * i + 1] = (uint8_t)(i >> 8); a.labels[i] = i / (N / K); }
    b = a;
    b.pixels = malloc(2 * N); b.labels = malloc(N * sizeof(int32_t));
    memcpy(b.pixels, a.pixels, 2 * N); memcpy(b.labels, a.labels, N * sizeof(int32_t));
    nnl_dataset_sample(&a, 100, 7);
    nnl_dataset_sample(&b, 100, 7);
    CHECK(a.n == 100 && b.n == 100);
    CHECK(memcmp(a.pixels, b.pixels, 200) == 0 && memcmp(a.labels, b.labels, 400) == 0);
    int per[K] = {0}, prev = -1, ok = 1;
    for (int i = 0; i < 100; i++) {
        int id = a.pixels[2 * i] | a.pixels[2 * i + 1] << 8;
        ok &= id > prev && a.labels[i] == id / (N / K);
        prev = id;
        per[a.labels[i]]++;
    }
    CHECK_MSG(ok, "sampled images out of order or with the wrong label");
    for (int k = 0; k < K; k++) CHECK_MSG(per[k] >= 2 && per[k] <= 25, "class %d got %d of 100", k, per[k]);
    memcpy(b.pixels, a.pixels, 200);
    b.n = 100;
    nnl_dataset_sample(&b, 100, 3);   /* n >= size: unchanged */
    CHECK(b.n == 100 && memcmp(a.pixels, b.pixels, 200) == 0);
    free(a.pixels); free(a.labels); free(b.pixels); free(b.labels);
}

static void test_real(const char *dir, const char *name, int first_test_label) {
    nnl_dataset tr, te;
    double t0 = (double)clock();
    int st = nnl_dataset_load(&tr, dir, NNL_SPLIT_TRAIN);
    CHECK_MSG(st == NNL_OK, "%s train: %s", name, nnl_errmsg());
    st = nnl_dataset_load(&te, dir, NNL_SPLIT_TEST);
    CHECK_MSG(st == NNL_OK, "%s test: %s", name, nnl_errmsg());
    CHECK(tr.n == 60000 && te.n == 10000 && tr.c == 1 && tr.h == 28 && tr.w == 28 && te.h == 28);
    CHECK(tr.nclass == 10 && te.nclass == 10);
    int ok = 1;
    for (int64_t i = 0; i < tr.n; i++) if (tr.labels[i] < 0 || tr.labels[i] > 9) ok = 0;
    for (int64_t i = 0; i < te.n; i++) if (te.labels[i] < 0 || te.labels[i] > 9) ok = 0;
    CHECK(ok);
    if (first_test_label >= 0) CHECK(te.n > 0 && te.labels[0] == first_test_label);
    float mean[1], sd[1];
    nnl_dataset_stats(&tr, mean, sd);
    fprintf(stderr, "  %s: %lld train, %lld test, mean %.4f std %.4f (%.2f s CPU)\n", name, (long long)tr.n,
            (long long)te.n, mean[0], sd[0], ((double)clock() - t0) / CLOCKS_PER_SEC);
    nnl_dataset_free(&tr);
    nnl_dataset_free(&te);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

int main(void) {
    test_sample();
    test_idx();
    test_cifar();
    test_images();
    test_folder();
    test_misc();
    const char *mnist = getenv("NNL_MNIST_DIR");
    if (mnist && *mnist) test_real(mnist, "MNIST", 7);
    else fprintf(stderr, "  NNL_MNIST_DIR unset: real MNIST not checked\n");
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) == 0) test_real("/usr/share/datasets/fashion-mnist", "Fashion-MNIST", -1);
    if (!nnl_test_failures) nftw(nnl_test_tmpdir(), rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* kept on failure */
    return nnl_test_finish("test_data");
}
