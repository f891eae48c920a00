/*
 * GTSRB (German Traffic Sign Recognition Benchmark) in its official layout:
 *   train: Final_Training/Images/000NN/<image>.ppm with GT-000NN.csv in each class folder
 *   test:  Final_Test/Images/<image>.ppm with GT-final_test.csv (the annotated test CSV, found in
 *          Final_Test/Images/, Final_Test/ or the data-set folder)
 * CSV: ';'-separated, header Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId.
 * Images come in many sizes: each is optionally cropped to its ROI (columns X1..X2-1, rows
 * Y1..Y2-1: X2/Y2 are the first pixel past the sign, which gives the documented border of
 * at least 5 pixels on every side) and resized to size x size.
 */
#include "core/core.h"
#include "data/formats.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_FIELDS 8
#define CSV_MAX_ROWS 100000000
#define CSV_MAX_FILE ((size_t)1 << 26)
#define NAME_MAX_LEN 255
#define COORD_MAX 65535
#define MAX_CLASS_DIRS 1000
#define DIR_MAX_LEN 3072

static const char HEADER[] = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId";
static const char HEADER_NO_CLASS[] = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2";
static const char *const FIELD[CSV_FIELDS] = {"Filename", "Width", "Height", "Roi.X1",
                                              "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"};

/* ------------------------------------------------------------------ CSV */

void nnl_gtsrb_csv_free(nnl_gtsrb_csv *csv) {
    if (!csv) return;
    free(csv->rows);
    free(csv->names);
    memset(csv, 0, sizeof *csv);
}

/* A plain file name: printable ASCII, no path separators, not "." or "..". */
static int check_name(const uint8_t *s, size_t n, const char *csv, int64_t line) {
    if (n == 0) return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: empty Filename", csv, (long long)line);
    if (n > NAME_MAX_LEN)
        return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: Filename longer than %d bytes", csv, (long long)line, NAME_MAX_LEN);
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '/' || s[i] == '\\')
            return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: Filename '%.*s' is not a plain file name (byte 0x%02x)", csv,
                            (long long)line, (int)n, (const char *)s, s[i]);
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: Filename '%.*s' is not a file name", csv, (long long)line, (int)n,
                        (const char *)s);
    return NNL_OK;
}

/* A decimal field in lo..hi: digits only (no sign, no spaces). */
static int parse_num(const uint8_t *s, size_t n, int f, int32_t lo, int32_t hi, const char *csv, int64_t line,
                     int32_t *out) {
    int64_t v = 0;
    int ok = n > 0 && n <= 9;
    for (size_t i = 0; ok && i < n; i++) {
        if (s[i] < '0' || s[i] > '9') ok = 0;
        else v = v * 10 + (s[i] - '0');
    }
    if (!ok)
        return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: %s '%.*s' is not a whole number", csv, (long long)line, FIELD[f],
                        (int)(n < 32 ? n : 32), (const char *)s);
    if (v < lo || v > hi)
        return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: %s %lld outside %d..%d", csv, (long long)line, FIELD[f],
                        (long long)v, (int)lo, (int)hi);
    *out = (int32_t)v;
    return NNL_OK;
}

static int parse_row(nnl_gtsrb_csv *csv, const uint8_t *s, size_t n, const char *name, int64_t line, size_t *pool) {
    size_t start[CSV_FIELDS], len[CSV_FIELDS];
    int nf = 0;
    size_t a = 0;
    for (size_t i = 0; i <= n; i++)
        if (i == n || s[i] == ';') {
            if (nf < CSV_FIELDS) { start[nf] = a; len[nf] = i - a; }
            nf++;
            a = i + 1;
        }
    if (nf != CSV_FIELDS)
        return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: %d fields, expected %d (%s)", name, (long long)line, nf,
                        CSV_FIELDS, HEADER);
    int st = check_name(s + start[0], len[0], name, line);
    if (st) return st;
    nnl_gtsrb_row r;
    memset(&r, 0, sizeof r);
    int32_t *num[7] = {&r.width, &r.height, &r.x1, &r.y1, &r.x2, &r.y2, &r.class_id};
    for (int f = 1; f < CSV_FIELDS && !st; f++) {
        int32_t lo = f <= 2 ? 1 : 0, hi = f == 7 ? NNL_GTSRB_CLASSES - 1 : COORD_MAX;
        st = parse_num(s + start[f], len[f], f, lo, hi, name, line, num[f - 1]);
    }
    if (st) return st;
    if (csv->n >= CSV_MAX_ROWS) return nnl_fail(NNL_ERR_FORMAT, "%s: more than %d rows", name, CSV_MAX_ROWS);
    r.line = line;
    r.file = *pool;
    memcpy(csv->names + *pool, s + start[0], len[0]);
    csv->names[*pool + len[0]] = 0;
    *pool += len[0] + 1;
    csv->rows[csv->n++] = r;
    return NNL_OK;
}

int nnl_gtsrb_csv_parse(nnl_gtsrb_csv *csv, const uint8_t *buf, size_t size, const char *name) {
    memset(csv, 0, sizeof *csv);
    if (!name) name = "GTSRB CSV";
    if (!buf && size) return nnl_fail(NNL_ERR_ARG, "%s: NULL buffer", name);
    /* Every row is at least 16 bytes ("a;1;1;0;0;0;0;0\n" less the newline of the last),
     * and its name plus a NUL fits in its own bytes: both arrays are bounded by size. */
    size_t cap = size / 15 + 1;
    csv->rows = malloc(cap * sizeof *csv->rows);
    csv->names = malloc(size + 1);
    if (!csv->rows || !csv->names) {
        nnl_gtsrb_csv_free(csv);
        return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", name);
    }
    size_t i = 0, pool = 0;
    if (size >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf) i = 3; /* UTF-8 BOM */
    int64_t line = 0, blank = 0;
    int header = 0, st = NNL_OK;
    while (!st && i < size) {
        line++;
        size_t room = size - i, look = room < NNL_GTSRB_MAX_LINE + 2 ? room : NNL_GTSRB_MAX_LINE + 2;
        const uint8_t *nl = memchr(buf + i, '\n', look);
        size_t end = nl ? (size_t)(nl - buf) : (look == room ? size : i + look), next = nl ? end + 1 : end;
        size_t e = end;
        if (e > i && buf[e - 1] == '\r') e--;
        if (e - i > NNL_GTSRB_MAX_LINE) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s line %lld: longer than %d bytes", name, (long long)line, NNL_GTSRB_MAX_LINE);
            break;
        }
        const uint8_t *s = buf + i;
        size_t n = e - i;
        i = next;
        for (size_t k = 0; k < n; k++)
            if (s[k] < 0x20 && s[k] != '\t') {
                st = nnl_fail(NNL_ERR_FORMAT, "%s line %lld: control byte 0x%02x (not a text CSV)", name, (long long)line, s[k]);
                break;
            }
        if (st) break;
        if (!header) {
            if (n == sizeof HEADER - 1 && memcmp(s, HEADER, n) == 0) header = 1;
            else if (n == sizeof HEADER_NO_CLASS - 1 && memcmp(s, HEADER_NO_CLASS, n) == 0)
                st = nnl_fail(NNL_ERR_FORMAT,
                              "%s: no ClassId column (this is the unlabelled test CSV, like GT-final_test.test.csv; use "
                              "GT-final_test.csv from GTSRB_Final_Test_GT.zip)", name);
            else
                st = nnl_fail(NNL_ERR_FORMAT, "%s line %lld: '%.*s' is not the GTSRB header '%s'", name, (long long)line,
                              (int)(n < 80 ? n : 80), (const char *)s, HEADER);
            continue;
        }
        if (n == 0) {
            if (!blank) blank = line;
            continue;
        }
        if (blank) {
            st = nnl_fail(NNL_ERR_FORMAT, "%s line %lld: a row after the blank line %lld", name, (long long)line,
                          (long long)blank);
            break;
        }
        st = parse_row(csv, s, n, name, line, &pool);
    }
    if (!st && !header) st = nnl_fail(NNL_ERR_FORMAT, "%s: empty file (expected the header '%s')", name, HEADER);
    if (!st && csv->n == 0) st = nnl_fail(NNL_ERR_FORMAT, "%s: no image rows after the header", name);
    if (st) nnl_gtsrb_csv_free(csv);
    return st;
}

/* ------------------------------------------------------------------ resampling */

/* For each of the out output samples, taps k (source index idx[j*taps+k], weight
 * wt[j*taps+k]; unused taps have weight 0) over a source axis of n samples. */
static void axis_weights(int n, int out, int taps, int *idx, double *wt) {
    for (size_t t = 0; t < (size_t)out * (size_t)taps; t++) { idx[t] = 0; wt[t] = 0.0; }
    if (n >= out) { /* area averaging: output j covers source [j s, (j+1) s) */
        double s = (double)n / out;
        for (int j = 0; j < out; j++) {
            double lo = j * s, hi = (j + 1) * s;
            if (hi > n) hi = n;
            int k0 = (int)floor(lo), k = 0;
            for (int q = k0; q < n && q < hi && k < taps; q++, k++) {
                double a = q > lo ? q : lo, b = q + 1 < hi ? q + 1 : hi;
                idx[j * taps + k] = q;
                wt[j * taps + k] = (b - a) / s;
            }
        }
    } else { /* bilinear between pixel centres, edges held */
        double s = (double)n / out;
        for (int j = 0; j < out; j++) {
            double x = (j + 0.5) * s - 0.5;
            if (x < 0) x = 0;
            if (x > n - 1) x = n - 1;
            int k0 = (int)floor(x), k1 = k0 + 1 < n ? k0 + 1 : k0;
            double f = x - k0;
            idx[j * taps] = k0;
            wt[j * taps] = 1.0 - f;
            idx[j * taps + 1] = k1;
            wt[j * taps + 1] = f;
        }
    }
}

static int axis_taps(int n, int out) { return n >= out ? (n + out - 1) / out + 1 : 2; }

int nnl_image_resize(const uint8_t *src, int c, int h, int w, int x0, int y0, int rw, int rh,
                     uint8_t *dst, int oh, int ow) {
    if (!src || !dst || c < 1 || h < 1 || w < 1 || rw < 1 || rh < 1 || x0 < 0 || y0 < 0 || x0 > w - rw ||
        y0 > h - rh || oh < 1 || ow < 1 || oh > NNL_GTSRB_MAX_SIZE || ow > NNL_GTSRB_MAX_SIZE)
        return nnl_fail(NNL_ERR_ARG, "nnl_image_resize: bad region %dx%d+%d+%d of a %dx%d image to %dx%d", rw, rh, x0,
                        y0, w, h, ow, oh);
    int tx = axis_taps(rw, ow), ty = axis_taps(rh, oh);
    int *ix = malloc((size_t)ow * tx * sizeof *ix), *iy = malloc((size_t)oh * ty * sizeof *iy);
    double *wx = malloc((size_t)ow * tx * sizeof *wx), *wy = malloc((size_t)oh * ty * sizeof *wy);
    double *acc = malloc((size_t)ow * sizeof *acc);
    int st = NNL_OK;
    if (!ix || !iy || !wx || !wy || !acc) st = nnl_fail(NNL_ERR_NOMEM, "nnl_image_resize: out of memory");
    else {
        axis_weights(rw, ow, tx, ix, wx);
        axis_weights(rh, oh, ty, iy, wy);
        size_t plane = (size_t)h * (size_t)w;
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < oh; i++) {
                for (int j = 0; j < ow; j++) acc[j] = 0.0;
                for (int a = 0; a < ty; a++) {
                    double vy = wy[i * ty + a];
                    if (vy == 0.0) continue;
                    const uint8_t *row = src + ch * plane + (size_t)(y0 + iy[i * ty + a]) * (size_t)w + (size_t)x0;
                    for (int j = 0; j < ow; j++) {
                        double v = 0.0;
                        for (int b = 0; b < tx; b++) v += wx[j * tx + b] * row[ix[j * tx + b]];
                        acc[j] += vy * v;
                    }
                }
                uint8_t *out = dst + ((size_t)ch * oh + (size_t)i) * (size_t)ow;
                for (int j = 0; j < ow; j++) {
                    double v = acc[j] + 0.5;
                    out[j] = v <= 0.0 ? 0 : v >= 255.0 ? 255 : (uint8_t)v;
                }
            }
    }
    free(ix);
    free(iy);
    free(wx);
    free(wy);
    free(acc);
    return st;
}

int nnl_gtsrb_prepare(const nnl_gtsrb_row *r, const char *name, const char *csv_name,
                      const uint8_t *px, int c, int h, int w, int size, int crop_roi,
                      uint8_t *out, int *clamped) {
    *clamped = 0;
    int resized = 0;
    if (!name) name = "image";
    if (!csv_name) csv_name = "CSV";
    if (size < 1 || size > NNL_GTSRB_MAX_SIZE)
        return nnl_fail(NNL_ERR_ARG, "GTSRB image size %d outside 1..%d", size, NNL_GTSRB_MAX_SIZE);
    if (c != 1 && c != 3) return nnl_fail(NNL_ERR_FORMAT, "%s: %d channels, expected 3 (RGB) or 1", name, c);
    /* Copies of GTSRB resized after the CSVs were written are common. The CSV's size only
     * matters for the ROI, which is then scaled to the image's real size (and reported). */
    int rx1 = r->x1, rx2 = r->x2, ry1 = r->y1, ry2 = r->y2;
    if (w != r->width || h != r->height) {
        resized = 1;
        if (r->width < 1 || r->height < 1)
            return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: the CSV gives %s a size of %dx%d", csv_name,
                            (long long)r->line, name, (int)r->width, (int)r->height);
        rx1 = (int)(((int64_t)r->x1 * w + r->width / 2) / r->width);
        rx2 = (int)(((int64_t)r->x2 * w + r->width / 2) / r->width);
        ry1 = (int)(((int64_t)r->y1 * h + r->height / 2) / r->height);
        ry2 = (int)(((int64_t)r->y2 * h + r->height / 2) / r->height);
    }
    int x1 = rx1 < w ? rx1 : w, x2 = rx2 < w ? rx2 : w;
    int y1 = ry1 < h ? ry1 : h, y2 = ry2 < h ? ry2 : h;
    *clamped = (x1 != rx1 || x2 != rx2 || y1 != ry1 || y2 != ry2) | resized << 1;
    int x0 = 0, y0 = 0, rw = w, rh = h;
    if (crop_roi) {
        if (x2 <= x1 || y2 <= y1)
            return nnl_fail(NNL_ERR_FORMAT, "%s line %lld: ROI (%d,%d)-(%d,%d) of %s is empty%s", csv_name,
                            (long long)r->line, (int)r->x1, (int)r->y1, (int)r->x2, (int)r->y2, name,
                            resized ? " once scaled to the image's size" : (*clamped & 1) ? " once clamped to the image" : "");
        x0 = x1;
        y0 = y1;
        rw = x2 - x1;
        rh = y2 - y1;
    }
    int st = nnl_image_resize(px, c, h, w, x0, y0, rw, rh, out, size, size);
    if (!st && c == 1) {
        size_t plane = (size_t)size * (size_t)size;
        memcpy(out + plane, out, plane);
        memcpy(out + 2 * plane, out, plane);
    }
    return st;
}

/* ------------------------------------------------------------------ the layout */

static int g_size = 32, g_crop = 0;
static _Thread_local int64_t g_last_clamped = 0, g_last_resized = 0;

int nnl_gtsrb_set_defaults(int size, int crop_roi) {
    if (size < 1 || size > NNL_GTSRB_MAX_SIZE)
        return nnl_fail(NNL_ERR_ARG, "GTSRB image size %d outside 1..%d", size, NNL_GTSRB_MAX_SIZE);
    g_size = size;
    g_crop = crop_roi != 0;
    return NNL_OK;
}

int64_t nnl_gtsrb_last_roi_clamped(void) { return g_last_clamped; }
int64_t nnl_gtsrb_last_resized(void) { return g_last_resized; }
int nnl_gtsrb_crop_roi(void) { return g_crop; }




static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Non-hidden subdirectories of dir, sorted. */
static int list_subdirs(const char *dir, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return nnl_fail(NNL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char **list = NULL;
    int cnt = 0, cap = 0, st = NNL_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *full = nnl_path_join(dir, e->d_name);
        if (!full) { st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", dir); break; }
        int keep = nnl_is_dir(full);
        free(full);
        if (!keep) continue;
        if (cnt >= MAX_CLASS_DIRS) { st = nnl_fail(NNL_ERR_FORMAT, "%s: more than %d class folders", dir, MAX_CLASS_DIRS); break; }
        if (cnt == cap) {
            int nc = cap ? 2 * cap : 64;
            char **nl = realloc(list, (size_t)nc * sizeof *nl);
            if (!nl) { st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", dir); break; }
            list = nl;
            cap = nc;
        }
        if (!(list[cnt] = strdup(e->d_name))) st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", dir);
        else cnt++;
    }
    closedir(d);
    if (st) { nnl_free_names(list, cnt); return st; }
    if (cnt > 1) qsort(list, (size_t)cnt, sizeof *list, cmp_str);
    *out = list;
    *n = cnt;
    return NNL_OK;
}

/* One CSV and the folder its file names are relative to. */
typedef struct group {
    char *imgdir, *csv_path;
    nnl_gtsrb_csv csv;
} group;

typedef struct item {
    int32_t g;
    int64_t r;
} item;

static int add_group(group **gs, int *ng, const char *imgdir, const char *csv_path) {
    group *n = realloc(*gs, (size_t)(*ng + 1) * sizeof *n);
    if (!n) return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", csv_path);
    *gs = n;
    group *g = &n[*ng];
    memset(g, 0, sizeof *g);
    g->imgdir = strdup(imgdir);
    g->csv_path = strdup(csv_path);
    (*ng)++;
    if (!g->imgdir || !g->csv_path) return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory", csv_path);
    uint8_t *buf = NULL;
    size_t size = 0;
    int st = nnl_read_file(csv_path, &buf, &size, CSV_MAX_FILE, 0);
    if (!st) st = nnl_gtsrb_csv_parse(&g->csv, buf, size, csv_path);
    free(buf);
    return st;
}

static void free_groups(group *gs, int ng) {
    for (int i = 0; i < ng; i++) {
        free(gs[i].imgdir);
        free(gs[i].csv_path);
        nnl_gtsrb_csv_free(&gs[i].csv);
    }
    free(gs);
}

static int collect_train(const char *base, group **gs, int *ng) {
    char *imgdir = NULL, *top = nnl_path_join(base, "Final_Training");
    if (top) imgdir = nnl_path_join(top, "Images");
    free(top);
    if (!imgdir) return nnl_fail(NNL_ERR_NOMEM, "out of memory");
    if (!nnl_is_dir(imgdir)) {
        int st = nnl_fail(NNL_ERR_IO, "%s: missing (GTSRB training images live in Final_Training/Images/<class>/)", imgdir);
        free(imgdir);
        return st;
    }
    char **classes = NULL;
    int nc = 0, st = list_subdirs(imgdir, &classes, &nc);
    if (!st && nc == 0) st = nnl_fail(NNL_ERR_FORMAT, "%s: no class folders (expected 00000 .. 00042)", imgdir);
    for (int k = 0; !st && k < nc; k++) {
        char csvname[300], *cdir = nnl_path_join(imgdir, classes[k]), *csv = NULL;
        snprintf(csvname, sizeof csvname, "GT-%s.csv", classes[k]);
        if (cdir) csv = nnl_path_join(cdir, csvname);
        if (!csv) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
        else if (!nnl_is_file(csv))
            st = nnl_fail(NNL_ERR_IO, "%s: missing (every class folder of Final_Training/Images holds GT-<folder>.csv)", csv);
        else st = add_group(gs, ng, cdir, csv);
        free(cdir);
        free(csv);
    }
    nnl_free_names(classes, nc);
    free(imgdir);
    return st;
}

static int collect_test(const char *base, group **gs, int *ng) {
    char *top = nnl_path_join(base, "Final_Test"), *imgdir = top ? nnl_path_join(top, "Images") : NULL;
    char *cand[3] = {NULL, NULL, NULL}, *unlabelled = NULL;
    int st = NNL_OK;
    if (imgdir) {
        cand[0] = nnl_path_join(imgdir, "GT-final_test.csv");
        cand[1] = nnl_path_join(top, "GT-final_test.csv");
        cand[2] = nnl_path_join(base, "GT-final_test.csv");
        unlabelled = nnl_path_join(imgdir, "GT-final_test.test.csv");
    }
    if (!imgdir || !cand[0] || !cand[1] || !cand[2] || !unlabelled) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
    else if (!nnl_is_dir(imgdir))
        st = nnl_fail(NNL_ERR_IO, "%s: missing (GTSRB test images live in Final_Test/Images/)", imgdir);
    else {
        int found = -1;
        for (int i = 0; i < 3 && found < 0; i++)
            if (nnl_is_file(cand[i])) found = i;
        if (found >= 0) st = add_group(gs, ng, imgdir, cand[found]);
        else if (nnl_is_file(unlabelled))
            st = nnl_fail(NNL_ERR_FORMAT,
                          "%s has no ClassId column, so the test set cannot be scored: put GT-final_test.csv (from "
                          "GTSRB_Final_Test_GT.zip) in %s",
                          unlabelled, imgdir);
        else st = nnl_fail(NNL_ERR_IO, "%s: missing (the annotated test CSV, also looked for in Final_Test/ and %s)", cand[0], base);
    }
    for (int i = 0; i < 3; i++) free(cand[i]);
    free(unlabelled);
    free(imgdir);
    free(top);
    return st;
}

/* Decodes and prepares every image into its slot. Workers may fail in any order, so the
 * failure kept is the one with the lowest index: the same message on every run. */
static int decode_all(const group *gs, const item *items, int64_t n, int size, int crop, uint8_t *pixels,
                      int64_t *nclamped, int64_t *nresized) {
    int64_t clamped = 0, resized = 0;
    nnl_first_error fe;
    nnl_first_error_init(&fe, n);
    size_t per = 3 * (size_t)size * (size_t)size;
#pragma omp parallel for schedule(dynamic, 16) num_threads(nnl_get_threads()) reduction(+ : clamped, resized)
    for (int64_t i = 0; i < n; i++) {
        if (nnl_first_error_skip(&fe, i)) continue; /* a lower image already failed */
        const group *g = &gs[items[i].g];
        const nnl_gtsrb_row *r = &g->csv.rows[items[i].r];
        char *path = nnl_path_join(g->imgdir, g->csv.names + r->file);
        uint8_t *px = NULL;
        int c = 0, h = 0, w = 0, cl = 0, st;
        if (!path) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
        else if ((st = nnl_image_load(path, &px, &c, &h, &w))) {
            char inner[512];
            snprintf(inner, sizeof inner, "%s", nnl_errmsg());
            st = nnl_fail(st, "%s line %lld: %s", g->csv_path, (long long)r->line, inner);
        } else st = nnl_gtsrb_prepare(r, path, g->csv_path, px, c, h, w, size, crop, pixels + (size_t)i * per, &cl);
        clamped += cl & 1;
        resized += cl >> 1 & 1;
        free(px);
        free(path);
        if (st) nnl_first_error_record(&fe, i, st);
    }
    *nclamped = clamped;
    *nresized = resized;
    return nnl_first_error_status(&fe);
}

int nnl_gtsrb_load(nnl_dataset *ds, const char *dir, int split, int size, int crop_roi, int64_t *roi_clamped) {
    memset(ds, 0, sizeof *ds);
    g_last_clamped = g_last_resized = 0;
    if (roi_clamped) *roi_clamped = 0;
    if (!dir) return nnl_fail(NNL_ERR_ARG, "nnl_gtsrb_load: NULL directory");
    if (split != NNL_SPLIT_TRAIN && split != NNL_SPLIT_TEST)
        return nnl_fail(NNL_ERR_ARG, "%s: unknown split %d (0 = train, 1 = test)", dir, split);
    if (size == 0) size = g_size;
    if (crop_roi < 0) crop_roi = g_crop;
    if (size < 1 || size > NNL_GTSRB_MAX_SIZE)
        return nnl_fail(NNL_ERR_ARG, "%s: GTSRB image size %d outside 1..%d", dir, size, NNL_GTSRB_MAX_SIZE);
    if (strlen(dir) > DIR_MAX_LEN) return nnl_fail(NNL_ERR_ARG, "%s: path too long", dir);

    /* The data-set folder itself, or the GTSRB/ folder the official archives unpack to. */
    char base[DIR_MAX_LEN + 64], probe[DIR_MAX_LEN + 128];
    int ok = 0;
    for (int s = 0; s < 2 && !ok; s++) {
        snprintf(base, sizeof base, s ? "%s/GTSRB" : "%s", dir);
        snprintf(probe, sizeof probe, "%s/Final_Training", base);
        ok = nnl_is_dir(probe);
        snprintf(probe, sizeof probe, "%s/Final_Test", base);
        ok = ok || nnl_is_dir(probe);
    }
    if (!ok) return nnl_fail(NNL_ERR_FORMAT, "%s: no GTSRB Final_Training/ or Final_Test/ folder", dir);

    group *gs = NULL;
    int ng = 0;
    item *items = NULL;
    int64_t n = 0, clamped = 0, resized = 0;
    int st = split == NNL_SPLIT_TRAIN ? collect_train(base, &gs, &ng) : collect_test(base, &gs, &ng);
    for (int g = 0; !st && g < ng; g++) n += gs[g].csv.n;
    if (!st && n > CSV_MAX_ROWS) st = nnl_fail(NNL_ERR_FORMAT, "%s: more than %d images", base, CSV_MAX_ROWS);
    if (!st) {
        size_t per = 3 * (size_t)size * (size_t)size;
        items = malloc((size_t)n * sizeof *items);
        ds->pixels = nnl_alloc((size_t)n * per);
        ds->labels = nnl_alloc((size_t)n * sizeof *ds->labels);
        ds->class_names = calloc(NNL_GTSRB_CLASSES, sizeof *ds->class_names);
        ds->nclass = NNL_GTSRB_CLASSES; /* so that nnl_dataset_free frees the names */
        if (!items || !ds->pixels || !ds->labels || !ds->class_names)
            st = nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for %lld images", base, (long long)n);
        for (int k = 0; !st && k < NNL_GTSRB_CLASSES; k++) {
            char b[8];
            snprintf(b, sizeof b, "%d", k);
            if (!(ds->class_names[k] = strdup(b))) st = nnl_fail(NNL_ERR_NOMEM, "out of memory");
        }
    }
    if (!st) {
        int64_t i = 0;
        for (int g = 0; g < ng; g++)
            for (int64_t r = 0; r < gs[g].csv.n; r++, i++) {
                items[i].g = g;
                items[i].r = r;
                ds->labels[i] = gs[g].csv.rows[r].class_id;
            }
        st = decode_all(gs, items, n, size, crop_roi, ds->pixels, &clamped, &resized);
    }
    free(items);
    free_groups(gs, ng);
    if (st) {
        nnl_dataset_free(ds);
        return st;
    }
    ds->n = n;
    ds->c = 3;
    ds->h = ds->w = size;
    snprintf(ds->source, sizeof ds->source, "gtsrb");
    g_last_clamped = clamped;
    g_last_resized = resized;
    if (roi_clamped) *roi_clamped = clamped;
    return NNL_OK;
}
