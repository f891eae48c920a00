/* SVHN (.mat via matio) and GTSRB (PPM tree + CSVs) loaders: small files generated in the
 * official formats, exact pixels and labels, resampling, ROI cropping, and broken inputs
 * (each must fail with a message naming the file). */
#define _GNU_SOURCE
#include "nnlock.h"
#include "core/core.h"
#include "data/formats.h"
#include "testutil.h"

#include <matio.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_path[4096];

/* A path under the test's temporary directory (one static buffer: copy to keep it). */
static const char *tmp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *tmp(const char *fmt, ...) {
    char name[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(g_path, sizeof g_path, "%s/%s", nnl_test_tmpdir(), name);
    return g_path;
}


/* ------------------------------------------------------------------ SVHN */

/* Pixel (row r, column c, channel ch) of image i: different along rows and columns. */
static uint8_t svhn_px(int i, int ch, int r, int c) { return (uint8_t)(i * 31 + ch * 70 + r * 3 + c * 5 + (r * c) % 7); }

/* X in MATLAB column-major order: X(r, c, ch, i) at r + 32c + 1024ch + 3072i. */
static uint8_t *svhn_x(int n) {
    uint8_t *x = malloc((size_t)n * 3072);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int c = 0; c < 32; c++)
                for (int r = 0; r < 32; r++) x[r + 32 * c + 1024 * ch + 3072 * i] = svhn_px(i, ch, r, c);
    return x;
}

static void mat_put(mat_t *m, const char *name, enum matio_classes cls, enum matio_types t, int rank,
                    size_t *dims, void *data, int comp) {
    matvar_t *v = Mat_VarCreate(name, cls, t, rank, dims, data, 0);
    if (!v || Mat_VarWrite(m, v, comp ? MAT_COMPRESSION_ZLIB : MAT_COMPRESSION_NONE) != 0) {
        fprintf(stderr, "cannot write %s\n", name);
        exit(2);
    }
    Mat_VarFree(v);
}

/* A file in the official layout: X uint8 32x32x3xn, y n x 1 double (labels as given). */
static void write_svhn(const char *path, int n, const double *labels, int comp) {
    mat_t *m = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
    if (!m) { fprintf(stderr, "cannot create %s\n", path); exit(2); }
    uint8_t *x = svhn_x(n);
    size_t dx[4] = {32, 32, 3, (size_t)n}, dy[2] = {(size_t)n, 1};
    mat_put(m, "X", MAT_C_UINT8, MAT_T_UINT8, 4, dx, x, comp);
    mat_put(m, "y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dy, (void *)labels, comp);
    Mat_Close(m);
    free(x);
}

static void check_svhn(const nnl_dataset *ds, int n, const int *want) {
    CHECK(ds->n == n && ds->c == 3 && ds->h == 32 && ds->w == 32 && ds->nclass == 10);
    CHECK(strcmp(ds->source, "svhn") == 0);
    CHECK(ds->class_names && strcmp(ds->class_names[0], "0") == 0 && strcmp(ds->class_names[9], "9") == 0);
    int ok = ds->pixels && ds->labels;
    for (int i = 0; ok && i < n; i++) {
        if (ds->labels[i] != want[i]) ok = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int r = 0; r < 32; r++)
                for (int c = 0; c < 32; c++)
                    if (ds->pixels[(size_t)i * 3072 + ch * 1024 + r * 32 + c] != svhn_px(i, ch, r, c)) ok = 0;
    }
    CHECK_MSG(ok, "SVHN pixels or labels differ");
}

static void test_svhn_good(void) {
    const double y[4] = {10, 1, 5, 9};
    const int want[4] = {0, 1, 5, 9};
    nnl_dataset ds;
    nnl_test_mkdirs(tmp("svhn"));
    for (int comp = 0; comp < 2; comp++) {
        char p[4096];
        snprintf(p, sizeof p, "%s", tmp("svhn/good%d.mat", comp));
        write_svhn(p, 4, y, comp);
        CHECK_MSG(nnl_svhn_load(&ds, p) == NNL_OK, "%s", nnl_errmsg());
        check_svhn(&ds, 4, want);
        nnl_dataset_free(&ds);
    }
    /* y as uint8 (what the official files hold), and a single image stored as 32x32x3, the
     * way MATLAB drops a trailing singleton dimension */
    {
        char p[4096];
        snprintf(p, sizeof p, "%s", tmp("svhn/u8.mat"));
        mat_t *m = Mat_CreateVer(p, NULL, MAT_FT_MAT5);
        uint8_t *x = svhn_x(1), yl[1] = {10};
        size_t dx[3] = {32, 32, 3}, dy[2] = {1, 1};
        mat_put(m, "X", MAT_C_UINT8, MAT_T_UINT8, 3, dx, x, 1);
        mat_put(m, "y", MAT_C_UINT8, MAT_T_UINT8, 2, dy, yl, 1);
        Mat_Close(m);
        free(x);
        CHECK_MSG(nnl_svhn_load(&ds, p) == NNL_OK, "%s", nnl_errmsg());
        const int w1[1] = {0};
        check_svhn(&ds, 1, w1);
        nnl_dataset_free(&ds);
    }
    /* as a data-set directory */
    nnl_test_mkdirs(tmp("svhn/set"));
    write_svhn(tmp("svhn/set/train_32x32.mat"), 4, y, 1);
    write_svhn(tmp("svhn/set/test_32x32.mat"), 2, y + 2, 0);
    CHECK_MSG(nnl_dataset_load(&ds, tmp("svhn/set"), NNL_SPLIT_TRAIN) == NNL_OK, "%s", nnl_errmsg());
    check_svhn(&ds, 4, want);
    nnl_dataset_free(&ds);
    CHECK_MSG(nnl_dataset_load(&ds, tmp("svhn/set"), NNL_SPLIT_TEST) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 2 && ds.labels && ds.labels[0] == 5 && ds.labels[1] == 9);
    nnl_dataset_free(&ds);
    nnl_test_mkdirs(tmp("svhn/half"));
    write_svhn(tmp("svhn/half/train_32x32.mat"), 4, y, 1);
    EXPECT_FAIL(nnl_dataset_load(&ds, tmp("svhn/half"), NNL_SPLIT_TEST), "test_32x32.mat");
    CHECK(ds.pixels == NULL && ds.n == 0);
}

/* A broken file from a writer callback; loading must fail naming the file and the problem. */
static void svhn_broken(const char *name, void (*fill)(mat_t *), const char *needle) {
    char p[4096];
    snprintf(p, sizeof p, "%s", tmp("svhn/%s.mat", name));
    mat_t *m = Mat_CreateVer(p, NULL, MAT_FT_MAT5);
    fill(m);
    Mat_Close(m);
    nnl_dataset ds;
    EXPECT_FAIL(nnl_svhn_load(&ds, p), needle);
    CHECK(strstr(nnl_errmsg(), name) != NULL);
    CHECK(ds.pixels == NULL && ds.labels == NULL && ds.n == 0);
}

static void put_x(mat_t *m, size_t h, size_t w, size_t c, size_t n) {
    uint8_t *x = calloc(h * w * c * n + 1, 1);
    size_t d[4] = {h, w, c, n};
    mat_put(m, "X", MAT_C_UINT8, MAT_T_UINT8, 4, d, x, 1);
    free(x);
}

static void put_y(mat_t *m, size_t n, double v) {
    double *y = malloc((n + 1) * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = 1 + (double)(i % 10);
    if (n) y[n - 1] = v;
    size_t d[2] = {n, 1};
    mat_put(m, "y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, d, y, 0);
    free(y);
}

static void f_dims_channels(mat_t *m) { put_x(m, 32, 32, 1, 3); put_y(m, 3, 1); }
static void f_dims_side(mat_t *m) { put_x(m, 28, 28, 3, 3); put_y(m, 3, 1); }
static void f_count(mat_t *m) { put_x(m, 32, 32, 3, 100); put_y(m, 99, 1); }
static void f_label11(mat_t *m) { put_x(m, 32, 32, 3, 3); put_y(m, 3, 11); }
static void f_label0(mat_t *m) { put_x(m, 32, 32, 3, 3); put_y(m, 3, 0); }
static void f_label_frac(mat_t *m) { put_x(m, 32, 32, 3, 3); put_y(m, 3, 2.5); }
static void f_no_y(mat_t *m) { put_x(m, 32, 32, 3, 3); }
static void f_no_x(mat_t *m) { put_y(m, 3, 1); }
static void f_x_double(mat_t *m) {
    double *x = calloc(3072 * 2, sizeof *x);
    size_t d[4] = {32, 32, 3, 2};
    mat_put(m, "X", MAT_C_DOUBLE, MAT_T_DOUBLE, 4, d, x, 0);
    free(x);
    put_y(m, 2, 1);
}
static void f_y_matrix(mat_t *m) {
    double y[4] = {1, 2, 3, 4};
    size_t d[2] = {2, 2};
    put_x(m, 32, 32, 3, 4);
    mat_put(m, "y", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, d, y, 0);
}
static void f_y_char(mat_t *m) {
    char y[3] = {'1', '2', '3'};
    size_t d[2] = {3, 1};
    put_x(m, 32, 32, 3, 3);
    mat_put(m, "y", MAT_C_CHAR, MAT_T_UINT8, 2, d, y, 0);
}

static void test_svhn_broken(void) {
    svhn_broken("dims_channels", f_dims_channels, "variable X is 32x32x1x3");
    svhn_broken("dims_side", f_dims_side, "variable X is 28x28x3x3");
    svhn_broken("count", f_count, "variable X is 32x32x3x100 but y has 99 labels");
    svhn_broken("label11", f_label11, "y(3) = 11: label out of range");
    svhn_broken("label0", f_label0, "y(3) = 0: label out of range");
    svhn_broken("label_frac", f_label_frac, "y(3) = 2.5");
    svhn_broken("no_y", f_no_y, "no variable y");
    svhn_broken("no_x", f_no_x, "no variable X");
    svhn_broken("x_double", f_x_double, "variable X is double, expected uint8");
    svhn_broken("y_matrix", f_y_matrix, "variable y is 2x2");
    svhn_broken("y_char", f_y_char, "variable y is char");

    nnl_dataset ds;
    EXPECT_FAIL(nnl_svhn_load(&ds, tmp("svhn/absent.mat")), "absent.mat: cannot open");
    nnl_test_write(tmp("svhn/empty.mat"), "", 0);
    EXPECT_FAIL(nnl_svhn_load(&ds, tmp("svhn/empty.mat")), "empty.mat");
    char text[300];
    memset(text, 'a', sizeof text);
    nnl_test_write(tmp("svhn/text.mat"), text, sizeof text);
    EXPECT_FAIL(nnl_svhn_load(&ds, tmp("svhn/text.mat")), "text.mat: not a MATLAB v5 MAT-file");

    /* Every truncation of a valid file, compressed and not, must fail cleanly. */
    const double y[3] = {1, 2, 10};
    int quiet = 0;
    for (int comp = 0; comp < 2; comp++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s", tmp("svhn/whole%d.mat", comp));
        snprintf(dst, sizeof dst, "%s", tmp("svhn/cut%d.mat", comp));
        write_svhn(src, 3, y, comp);
        size_t n;
        uint8_t *b = nnl_test_read(src, &n);
        if (!b) { perror(src); exit(2); }
        int failures = 0, cases = 0;
        for (size_t len = 0; len < n; len += len < 300 || len + 40 > n ? 1 : 23) {
            nnl_test_write(dst, b, len);
            int st = nnl_svhn_load(&ds, dst);
            cases++;
            if (st == NNL_OK || !strstr(nnl_errmsg(), "cut")) {
                failures++;
                fprintf(stderr, "  truncated to %zu of %zu bytes: status %d, '%s'\n", len, n, st, nnl_errmsg());
                nnl_dataset_free(&ds);
            } else if (len == n / 2 || (len == 64 && !quiet++)) {
                fprintf(stderr, "  expected failure: %s\n", nnl_errmsg());
            }
        }
        CHECK_MSG(failures == 0, "%d of %d truncations of a %s file loaded", failures, cases,
                  comp ? "compressed" : "plain");
        free(b);
    }
}

/* Random byte changes in the headers of valid files: any outcome but a crash, a silent
 * failure or a data set of the wrong shape. */
static void test_svhn_mutations(void) {
    const double y[3] = {1, 2, 10};
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    int loaded = 0, failed = 0;
    for (int comp = 0; comp < 2; comp++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s", tmp("svhn/mut_src%d.mat", comp));
        snprintf(dst, sizeof dst, "%s", tmp("svhn/mut%d.mat", comp));
        write_svhn(src, 3, y, comp);
        size_t n;
        uint8_t *b = nnl_test_read(src, &n), *m = malloc(n);
        if (!b || !m) { perror(src); exit(2); }
        for (int it = 0; it < 150; it++) {
            memcpy(m, b, n);
            int flips = 1 + it % 3;
            for (int k = 0; k < flips; k++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                size_t at = 116 + (size_t)(s >> 33) % (comp ? n - 116 : 200);
                m[at] ^= (uint8_t)(1u << ((s >> 20) & 7));
            }
            nnl_test_write(dst, m, n);
            nnl_dataset ds;
            nnl_clear_error();
            if (nnl_svhn_load(&ds, dst) == NNL_OK) {
                loaded++;
                CHECK(ds.n >= 1 && ds.n <= 3 && ds.c == 3 && ds.h == 32 && ds.w == 32);
                for (int64_t i = 0; i < ds.n; i++) CHECK(ds.labels[i] >= 0 && ds.labels[i] <= 9);
                nnl_dataset_free(&ds);
            } else {
                failed++;
                CHECK(nnl_errmsg()[0] != 0);
            }
        }
        free(b);
        free(m);
    }
    fprintf(stderr, "  mutated SVHN files: %d loaded, %d failed cleanly\n", loaded, failed);
}

/* ------------------------------------------------------------------ GTSRB */

typedef struct row {
    const char *file;
    int w, h, x1, y1, x2, y2, cls;
} row;

static const char HDR[] = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId";

static void write_csv(const char *path, const row *rows, int n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fprintf(f, "%s\r\n", HDR); /* the official files end lines with CR LF */
    for (int i = 0; i < n; i++)
        fprintf(f, "%s;%d;%d;%d;%d;%d;%d;%d\r\n", rows[i].file, rows[i].w, rows[i].h, rows[i].x1, rows[i].y1,
                rows[i].x2, rows[i].y2, rows[i].cls);
    fclose(f);
}

static void write_text(const char *path, const char *text) { nnl_test_write(path, text, strlen(text)); }

/* A binary P6 PPM from planar CHW pixels. */
static void write_ppm(const char *path, const uint8_t *chw, int w, int h) {
    size_t plane = (size_t)w * h, hl;
    char hdr[64];
    hl = (size_t)snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    uint8_t *b = malloc(hl + 3 * plane);
    memcpy(b, hdr, hl);
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < 3; ch++) b[hl + 3 * i + ch] = chw[ch * plane + i];
    nnl_test_write(path, b, hl + 3 * plane);
    free(b);
}

static uint8_t *uniform(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
    size_t plane = (size_t)w * h;
    uint8_t *p = malloc(3 * plane);
    memset(p, r, plane);
    memset(p + plane, g, plane);
    memset(p + 2 * plane, b, plane);
    return p;
}

/* The 32x32 reference pattern. */
static uint8_t pat(int ch, int r, int c) { return (uint8_t)(10 + ch * 30 + r * 3 + c * 2 + (r ^ c) % 3); }

/* Each pattern pixel as a 2x2 block whose four values average to it exactly (+-2, +-1). */
static uint8_t *pattern_2x(void) {
    uint8_t *p = malloc(3 * 64 * 64);
    for (int ch = 0; ch < 3; ch++)
        for (int r = 0; r < 64; r++)
            for (int c = 0; c < 64; c++) {
                int d = (r % 2 ? 2 : -2) + (c % 2 ? 1 : -1) * (r % 2 ? 1 : -1);
                p[ch * 4096 + r * 64 + c] = (uint8_t)(pat(ch, r / 2, c / 2) + d);
            }
    return p;
}

/* 50x40 noise with the reference pattern at columns 10..41, rows 5..36. */
static uint8_t *pattern_in_noise(void) {
    uint8_t *p = malloc(3 * 50 * 40);
    for (int ch = 0; ch < 3; ch++)
        for (int r = 0; r < 40; r++)
            for (int c = 0; c < 50; c++)
                p[ch * 2000 + r * 50 + c] = r >= 5 && r < 37 && c >= 10 && c < 42 ? pat(ch, r - 5, c - 10)
                                                                                   : (uint8_t)(r * 131 + c * 71 + ch * 17);
    return p;
}

static int is_uniform(const uint8_t *img, int size, uint8_t r, uint8_t g, uint8_t b) {
    size_t plane = (size_t)size * size;
    for (size_t i = 0; i < plane; i++)
        if (img[i] != r || img[plane + i] != g || img[2 * plane + i] != b) return 0;
    return 1;
}

static int is_pattern(const uint8_t *img) {
    for (int ch = 0; ch < 3; ch++)
        for (int r = 0; r < 32; r++)
            for (int c = 0; c < 32; c++)
                if (img[ch * 1024 + r * 32 + c] != pat(ch, r, c)) return 0;
    return 1;
}

/* The good tree: 3 class folders (the third's CSV says ClassId 7: the CSV is trusted). */
static void make_gtsrb(const char *root) {
    char d[4096], p[4200];
    uint8_t *u1 = uniform(40, 35, 200, 100, 50), *u2 = uniform(20, 17, 10, 20, 30);
    uint8_t *p2 = pattern_2x(), *pn = pattern_in_noise();
    snprintf(d, sizeof d, "%s/Final_Training/Images/00000", root);
    nnl_test_mkdirs(d);
    snprintf(p, sizeof p, "%s/00000_00000.ppm", d); write_ppm(p, u1, 40, 35);
    snprintf(p, sizeof p, "%s/00000_00001.ppm", d); write_ppm(p, p2, 64, 64);
    const row r0[] = {{"00000_00000.ppm", 40, 35, 5, 5, 35, 30, 0}, {"00000_00001.ppm", 64, 64, 0, 0, 64, 64, 0}};
    snprintf(p, sizeof p, "%s/GT-00000.csv", d); write_csv(p, r0, 2);
    snprintf(d, sizeof d, "%s/Final_Training/Images/00001", root);
    nnl_test_mkdirs(d);
    snprintf(p, sizeof p, "%s/00001_00000.ppm", d); write_ppm(p, pn, 50, 40);
    snprintf(p, sizeof p, "%s/00001_00001.ppm", d); write_ppm(p, u2, 20, 17);
    const row r1[] = {{"00001_00000.ppm", 50, 40, 10, 5, 42, 37, 1}, {"00001_00001.ppm", 20, 17, 5, 5, 15, 12, 1}};
    snprintf(p, sizeof p, "%s/GT-00001.csv", d); write_csv(p, r1, 2);
    snprintf(d, sizeof d, "%s/Final_Training/Images/00002", root);
    nnl_test_mkdirs(d);
    snprintf(p, sizeof p, "%s/00002_00000.ppm", d); write_ppm(p, u2, 20, 17);
    const row r2[] = {{"00002_00000.ppm", 20, 17, 0, 0, 20, 17, 7}};
    snprintf(p, sizeof p, "%s/GT-00002.csv", d); write_csv(p, r2, 1);
    /* test split: the annotated CSV inside Final_Test/Images, plus the unlabelled one */
    snprintf(d, sizeof d, "%s/Final_Test/Images", root);
    nnl_test_mkdirs(d);
    snprintf(p, sizeof p, "%s/00000.ppm", d); write_ppm(p, pn, 50, 40);
    snprintf(p, sizeof p, "%s/00001.ppm", d); write_ppm(p, u1, 40, 35);
    const row rt[] = {{"00000.ppm", 50, 40, 10, 5, 42, 37, 42}, {"00001.ppm", 40, 35, 1, 1, 39, 34, 13}};
    snprintf(p, sizeof p, "%s/GT-final_test.csv", d); write_csv(p, rt, 2);
    snprintf(p, sizeof p, "%s/GT-final_test.test.csv", d);
    write_text(p, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2\r\n00000.ppm;50;40;10;5;42;37\r\n");
    free(u1); free(u2); free(p2); free(pn);
}

static const uint8_t *img(const nnl_dataset *ds, int i) { return ds->pixels + (size_t)i * ds->c * ds->h * ds->w; }

static void test_gtsrb_good(void) {
    char root[4096];
    snprintf(root, sizeof root, "%s", tmp("gtsrb/good"));
    make_gtsrb(root);
    nnl_dataset ds;
    int64_t clamped = -1;

    /* whole images, 32x32 */
    CHECK_MSG(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 32, 0, &clamped) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 5 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.nclass == 43 && clamped == 0);
    CHECK(strcmp(ds.source, "gtsrb") == 0 && ds.class_names && strcmp(ds.class_names[42], "42") == 0);
    if (ds.n == 5) {
        const int want[5] = {0, 0, 1, 1, 7};
        for (int i = 0; i < 5; i++) CHECK(ds.labels[i] == want[i]);
        CHECK_MSG(is_uniform(img(&ds, 0), 32, 200, 100, 50), "uniform 40x35 not uniform at 32x32");
        CHECK_MSG(is_pattern(img(&ds, 1)), "2x pattern does not average back to the pattern");
        CHECK_MSG(is_uniform(img(&ds, 3), 32, 10, 20, 30), "uniform 20x17 not uniform when enlarged");
        CHECK(is_uniform(img(&ds, 4), 32, 10, 20, 30));
    }
    nnl_dataset_free(&ds);

    /* cropped to the ROIs: the pattern in noise comes out exactly */
    CHECK_MSG(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 32, 1, &clamped) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 5 && clamped == 0);
    if (ds.n == 5) {
        CHECK(is_uniform(img(&ds, 0), 32, 200, 100, 50));
        CHECK(is_pattern(img(&ds, 1)));
        CHECK_MSG(is_pattern(img(&ds, 2)), "ROI crop of the pattern in noise differs");
        CHECK(is_uniform(img(&ds, 3), 32, 10, 20, 30));
    }
    nnl_dataset_free(&ds);

    /* the test split, another size */
    CHECK_MSG(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TEST, 16, 0, NULL) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 2 && ds.h == 16 && ds.w == 16 && ds.labels && ds.labels[0] == 42 && ds.labels[1] == 13);
    if (ds.n == 2) CHECK(is_uniform(img(&ds, 1), 16, 200, 100, 50));
    nnl_dataset_free(&ds);

    /* detection, defaults, and the GTSRB/ folder of the official archives */
    CHECK_MSG(nnl_dataset_load(&ds, root, NNL_SPLIT_TRAIN) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 5 && ds.h == 32 && strcmp(ds.source, "gtsrb") == 0);
    nnl_dataset_free(&ds);
    CHECK(nnl_gtsrb_set_defaults(16, 1) == NNL_OK);
    CHECK_MSG(nnl_dataset_load(&ds, root, NNL_SPLIT_TRAIN) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 5 && ds.h == 16 && ds.w == 16);
    nnl_dataset_free(&ds);
    CHECK(nnl_gtsrb_set_defaults(0, 0) != NNL_OK);
    CHECK(nnl_gtsrb_set_defaults(32, 0) == NNL_OK);
    char outer[4096];
    snprintf(outer, sizeof outer, "%s", tmp("gtsrb/outer"));
    nnl_test_mkdirs(outer);
    char link[4200];
    snprintf(link, sizeof link, "%s/GTSRB", outer);
    CHECK(symlink(root, link) == 0);
    CHECK_MSG(nnl_dataset_load(&ds, outer, NNL_SPLIT_TEST) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 2 && ds.h == 32);
    nnl_dataset_free(&ds);
    EXPECT_FAIL(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 5000, 0, NULL), "5000");

    /* the test CSV beside Final_Test/Images instead of inside it */
    char r2[4096], from[4200], to[4200];
    snprintf(r2, sizeof r2, "%s", tmp("gtsrb/beside"));
    make_gtsrb(r2);
    snprintf(from, sizeof from, "%s/Final_Test/Images/GT-final_test.csv", r2);
    snprintf(to, sizeof to, "%s/Final_Test/GT-final_test.csv", r2);
    CHECK(rename(from, to) == 0);
    CHECK_MSG(nnl_dataset_load(&ds, r2, NNL_SPLIT_TEST) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 2 && ds.labels && ds.labels[0] == 42);
    nnl_dataset_free(&ds);
    /* only the unlabelled test CSV: a clear error */
    CHECK(unlink(to) == 0);
    EXPECT_FAIL(nnl_dataset_load(&ds, r2, NNL_SPLIT_TEST), "GT-final_test.test.csv has no ClassId column");
    CHECK(ds.pixels == NULL && ds.n == 0);
}

/* ROIs outside the image: clamped and counted, or an error when nothing is left. */
static void test_gtsrb_roi(void) {
    char root[4096], d[4200], p[4300];
    snprintf(root, sizeof root, "%s", tmp("gtsrb/roi"));
    snprintf(d, sizeof d, "%s/Final_Training/Images/00003", root);
    nnl_test_mkdirs(d);
    uint8_t *u = uniform(30, 30, 9, 99, 199);
    snprintf(p, sizeof p, "%s/a.ppm", d); write_ppm(p, u, 30, 30);
    snprintf(p, sizeof p, "%s/b.ppm", d); write_ppm(p, u, 30, 30);
    free(u);
    const row rows[] = {{"a.ppm", 30, 30, 5, 5, 40, 25, 3}, {"b.ppm", 30, 30, 2, 2, 20, 31, 3}};
    snprintf(p, sizeof p, "%s/GT-00003.csv", d);
    write_csv(p, rows, 2);
    nnl_dataset ds;
    int64_t clamped = -1;
    CHECK_MSG(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 8, 1, &clamped) == NNL_OK, "%s", nnl_errmsg());
    CHECK(ds.n == 2 && clamped == 2 && nnl_gtsrb_last_roi_clamped() == 2);
    if (ds.n == 2) CHECK(is_uniform(img(&ds, 0), 8, 9, 99, 199));
    nnl_dataset_free(&ds);
    CHECK_MSG(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 8, 0, &clamped) == NNL_OK, "%s", nnl_errmsg());
    CHECK(clamped == 2);
    nnl_dataset_free(&ds);
    /* entirely outside: empty once clamped */
    const row out[] = {{"a.ppm", 30, 30, 31, 5, 40, 25, 3}};
    write_csv(p, out, 1);
    EXPECT_FAIL(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 8, 1, &clamped), "a.ppm is empty once clamped");
    CHECK(ds.pixels == NULL && clamped == 0);
    CHECK_MSG(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 8, 0, &clamped) == NNL_OK, "%s", nnl_errmsg());
    CHECK(clamped == 1);
    nnl_dataset_free(&ds);
    /* inverted */
    const row inv[] = {{"a.ppm", 30, 30, 20, 5, 10, 25, 3}};
    write_csv(p, inv, 1);
    EXPECT_FAIL(nnl_gtsrb_load(&ds, root, NNL_SPLIT_TRAIN, 8, 1, NULL), "GT-00003.csv line 2: ROI (20,5)-(10,25)");
}

/* A copy of the good tree with one file replaced (or removed when text is NULL). */
static const char *variant(const char *name, const char *rel, const char *text) {
    static char root[4096];
    char p[4300];
    snprintf(root, sizeof root, "%s", tmp("gtsrb/%s", name));
    make_gtsrb(root);
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (text) write_text(p, text);
    else CHECK(unlink(p) == 0);
    return root;
}

#define CSV0 "Final_Training/Images/00000/GT-00000.csv"
#define GOOD_ROW "00000_00000.ppm;40;35;5;5;35;30;0\r\n"

static void gtsrb_broken(const char *name, const char *rel, const char *text, int split, const char *needle) {
    const char *root = variant(name, rel, text);
    nnl_dataset ds;
    EXPECT_FAIL(nnl_gtsrb_load(&ds, root, split, 32, 1, NULL), needle);
    CHECK(ds.pixels == NULL && ds.labels == NULL && ds.class_names == NULL && ds.n == 0);
}

/* A copy whose images were resized after the CSVs were written: the image is 40x35, its row
 * says 80x70 with the ROI doubled. It loads, is counted, and (cropped) gives exactly the
 * pixels of the row with the image's own size and ROI. */
static void test_gtsrb_resized(void) {
    const char *head = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n";
    char good[256], big[256];
    snprintf(good, sizeof good, "%s%s", head, GOOD_ROW);
    snprintf(big, sizeof big, "%s00000_00000.ppm;80;70;10;10;70;60;0\r\n", head);
    nnl_dataset a, b;
    const char *ra = variant("resized_ref", CSV0, good);
    CHECK_MSG(nnl_gtsrb_load(&a, ra, NNL_SPLIT_TRAIN, 32, 1, NULL) == NNL_OK, "%s", nnl_errmsg());
    CHECK(nnl_gtsrb_last_resized() == 0);
    const char *rb = variant("resized", CSV0, big);
    CHECK_MSG(nnl_gtsrb_load(&b, rb, NNL_SPLIT_TRAIN, 32, 1, NULL) == NNL_OK, "%s", nnl_errmsg());
    CHECK(nnl_gtsrb_last_resized() == 1);
    CHECK(a.n == b.n && a.n > 0 && memcmp(a.pixels, b.pixels, (size_t)a.n * 3 * 32 * 32) == 0);
    nnl_dataset_free(&a);
    nnl_dataset_free(&b);
    /* Without cropping the CSV's size is not used at all. */
    CHECK_MSG(nnl_gtsrb_load(&b, rb, NNL_SPLIT_TRAIN, 32, 0, NULL) == NNL_OK, "%s", nnl_errmsg());
    CHECK(nnl_gtsrb_last_resized() == 1);
    nnl_dataset_free(&b);
}

static void test_gtsrb_broken(void) {
    gtsrb_broken("no_csv", CSV0, NULL, NNL_SPLIT_TRAIN, "00000/GT-00000.csv: missing");
    gtsrb_broken("missing_img", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n" GOOD_ROW
                 "nothere.ppm;40;35;5;5;35;30;0\r\n", NNL_SPLIT_TRAIN, "nothere.ppm");
    gtsrb_broken("columns", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n" GOOD_ROW
                 "00000_00001.ppm;64;64;0;0;64;64\r\n", NNL_SPLIT_TRAIN, "GT-00000.csv line 3: 7 fields, expected 8");
    gtsrb_broken("columns9", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "00000_00001.ppm;64;64;0;0;64;64;0;\r\n", NNL_SPLIT_TRAIN, "GT-00000.csv line 2: 9 fields");
    gtsrb_broken("nonnumeric", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "00000_00000.ppm;40;35;5;five;35;30;0\r\n", NNL_SPLIT_TRAIN, "GT-00000.csv line 2: Roi.Y1 'five' is not a whole number");
    gtsrb_broken("negative", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "00000_00000.ppm;40;35;-5;5;35;30;0\r\n", NNL_SPLIT_TRAIN, "GT-00000.csv line 2: Roi.X1 '-5'");
    gtsrb_broken("class43", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "00000_00000.ppm;40;35;5;5;35;30;43\r\n", NNL_SPLIT_TRAIN, "GT-00000.csv line 2: ClassId 43 outside 0..42");
    gtsrb_broken("bad_size", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "00000_00000.ppm;0;35;5;5;35;30;0\r\n", NNL_SPLIT_TRAIN, "Width 0 outside");
    gtsrb_broken("header", CSV0, "Filename,Width,Height,Roi.X1,Roi.Y1,Roi.X2,Roi.Y2,ClassId\r\n" GOOD_ROW,
                 NNL_SPLIT_TRAIN, "GT-00000.csv line 1: 'Filename,Width");
    gtsrb_broken("no_header", CSV0, GOOD_ROW, NNL_SPLIT_TRAIN, "GT-00000.csv line 1");
    gtsrb_broken("empty_csv", CSV0, "", NNL_SPLIT_TRAIN, "GT-00000.csv: empty file");
    gtsrb_broken("header_only", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n", NNL_SPLIT_TRAIN,
                 "GT-00000.csv: no image rows");
    gtsrb_broken("blank", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n\r\n" GOOD_ROW,
                 NNL_SPLIT_TRAIN, "GT-00000.csv line 3: a row after the blank line 2");
    gtsrb_broken("path", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "../00001/00001_00000.ppm;50;40;10;5;42;37;1\r\n", NNL_SPLIT_TRAIN, "GT-00000.csv line 2: Filename '../00001");
    gtsrb_broken("dotdot", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n..;50;40;10;5;42;37;1\r\n",
                 NNL_SPLIT_TRAIN, "GT-00000.csv line 2: Filename '..'");
    gtsrb_broken("nul", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n00000_00000.ppm;40;35;5;5;35;30;0\001\r\n",
                 NNL_SPLIT_TRAIN, "GT-00000.csv line 2: control byte");
    {
        char longline[3000];
        int k = snprintf(longline, sizeof longline, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n");
        memset(longline + k, 'a', 1500);
        snprintf(longline + k + 1500, sizeof longline - (size_t)k - 1500, ".ppm;1;1;0;0;1;1;0\r\n");
        gtsrb_broken("long", CSV0, longline, NNL_SPLIT_TRAIN, "GT-00000.csv line 2: longer than 1024 bytes");
    }
    gtsrb_broken("truncated_ppm", "Final_Training/Images/00001/00001_00000.ppm", "P6\n50 40\n255\nabcdef",
                 NNL_SPLIT_TRAIN, "00001_00000.ppm: truncated");
    gtsrb_broken("not_image", "Final_Training/Images/00001/00001_00000.ppm", "hello", NNL_SPLIT_TRAIN,
                 "00001_00000.ppm");
    gtsrb_broken("no_test_csv", "Final_Test/Images/GT-final_test.csv", NULL, NNL_SPLIT_TEST,
                 "GT-final_test.test.csv has no ClassId column");
    gtsrb_broken("test_without_class", "Final_Test/Images/GT-final_test.csv",
                 "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2\r\n00000.ppm;50;40;10;5;42;37\r\n", NNL_SPLIT_TEST,
                 "GT-final_test.csv: no ClassId column");
    /* several bad rows: the first one is reported, whatever the thread order */
    gtsrb_broken("first_error", CSV0, "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n"
                 "gone1.ppm;40;35;5;5;35;30;0\r\ngone2.ppm;40;35;5;5;35;30;0\r\n", NNL_SPLIT_TRAIN, "gone1.ppm");
    {
        const char *root = variant("no_test_dir", "Final_Test/Images/GT-final_test.csv", NULL);
        char p[4300];
        nnl_dataset ds;
        snprintf(p, sizeof p, "%s/Final_Training", root);
        EXPECT_FAIL(nnl_gtsrb_load(&ds, p, NNL_SPLIT_TRAIN, 32, 0, NULL), "no GTSRB Final_Training/ or Final_Test/");
        nnl_test_mkdirs(tmp("gtsrb/only_train/Final_Training/Images"));
        EXPECT_FAIL(nnl_dataset_load(&ds, tmp("gtsrb/only_train"), NNL_SPLIT_TEST), "Final_Test/Images: missing");
        EXPECT_FAIL(nnl_dataset_load(&ds, tmp("gtsrb/only_train"), NNL_SPLIT_TRAIN), "Images: no class folders");
    }
}

/* The CSV parser from memory, and the resampler on its own. */
static void test_csv_and_resize(void) {
    nnl_gtsrb_csv csv;
    const char *ok = "\xef\xbb\xbf" "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
                     "a.ppm;29;30;5;6;24;25;0\r\nb b.ppm;1;2;0;0;1;2;42\n\n\r\n";
    CHECK_MSG(nnl_gtsrb_csv_parse(&csv, (const uint8_t *)ok, strlen(ok), "mem.csv") == NNL_OK, "%s", nnl_errmsg());
    CHECK(csv.n == 2);
    if (csv.n == 2) {
        CHECK(strcmp(csv.names + csv.rows[0].file, "a.ppm") == 0 && strcmp(csv.names + csv.rows[1].file, "b b.ppm") == 0);
        CHECK(csv.rows[0].width == 29 && csv.rows[0].height == 30 && csv.rows[0].x1 == 5 && csv.rows[0].y1 == 6 &&
              csv.rows[0].x2 == 24 && csv.rows[0].y2 == 25 && csv.rows[0].class_id == 0 && csv.rows[0].line == 2);
        CHECK(csv.rows[1].class_id == 42 && csv.rows[1].line == 3);
    }
    nnl_gtsrb_csv_free(&csv);
    const char *bad = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\na.ppm;0;30;5;6;24;25;0\n";
    EXPECT_FAIL(nnl_gtsrb_csv_parse(&csv, (const uint8_t *)bad, strlen(bad), "mem.csv"), "mem.csv line 2: Width 0 outside 1..65535");
    CHECK(csv.rows == NULL && csv.names == NULL && csv.n == 0);
    const char *big = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\na.ppm;1;1;0;0;1;1;1234567890\n";
    EXPECT_FAIL(nnl_gtsrb_csv_parse(&csv, (const uint8_t *)big, strlen(big), "mem.csv"), "ClassId '1234567890'");

    /* bilinear enlargement of 1x2 to 1x4: centres at -0.25 (held), 0.25, 0.75, 1.25 (held) */
    const uint8_t two[2] = {0, 255};
    uint8_t four[4];
    CHECK(nnl_image_resize(two, 1, 1, 2, 0, 0, 2, 1, four, 1, 4) == NNL_OK);
    CHECK(four[0] == 0 && four[1] == 64 && four[2] == 191 && four[3] == 255);
    /* area averaging by 1.5: (30 + 60/2) / 1.5 = 40, (60/2 + 90) / 1.5 = 80 */
    const uint8_t three[3] = {30, 60, 90};
    uint8_t out2[2];
    CHECK(nnl_image_resize(three, 1, 1, 3, 0, 0, 3, 1, out2, 1, 2) == NNL_OK);
    CHECK(out2[0] == 40 && out2[1] == 80);
    /* a region, and bad arguments */
    const uint8_t grid[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint8_t one;
    CHECK(nnl_image_resize(grid, 1, 3, 3, 1, 1, 2, 2, &one, 1, 1) == NNL_OK && one == 7); /* (5+6+8+9)/4 */
    CHECK(nnl_image_resize(grid, 1, 3, 3, 2, 2, 2, 2, &one, 1, 1) == NNL_ERR_ARG);
    /* a gray image becomes three equal planes */
    nnl_gtsrb_row r = {0, 2, 2, 2, 0, 0, 2, 2, 0};
    uint8_t gray[4] = {10, 20, 30, 40}, o3[3];
    int cl = -1;
    CHECK(nnl_gtsrb_prepare(&r, "g.pgm", "mem.csv", gray, 1, 2, 2, 1, 0, o3, &cl) == NNL_OK);
    CHECK(o3[0] == 25 && o3[1] == 25 && o3[2] == 25 && cl == 0);
}

int main(void) {
    test_svhn_good();
    test_svhn_broken();
    test_svhn_mutations();
    test_gtsrb_good();
    test_gtsrb_roi();
    test_gtsrb_resized();
    test_gtsrb_broken();
    test_csv_and_resize();
    return nnl_test_finish("test_data_svhn_gtsrb");
}
