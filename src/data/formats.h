/*
 * In-memory parsers behind the data-set loaders. The public loaders only read files and
 * call these, so the fuzzers (tests/fuzz/) can reach every parser without touching disk.
 * Every parser zeroes *ds first and leaves it zeroed (safe to free) on failure; names are
 * used only in error messages.
 */
#ifndef NNL_DATA_FORMATS_H
#define NNL_DATA_FORMATS_H

#include "nnlock.h"
#include <stddef.h>
#include <stdint.h>

/* Largest file the loaders will read (after gunzip): bounds memory on hostile input. */
#define NNL_DATA_MAX_FILE ((size_t)1 << 33)
#define NNL_IMAGE_MAX_FILE ((size_t)1 << 28)
/* Default decoded-size bound for one image (pixels, i.e. width x height). */
#define NNL_IMAGE_MAX_PIXELS ((size_t)1 << 26)

/* IDX: images (idx3 ubyte, N x H x W) and labels (idx1 ubyte, N). */
int nnl_idx_parse(nnl_dataset *ds, const uint8_t *img, size_t img_size, const char *img_name,
                  const uint8_t *lbl, size_t lbl_size, const char *lbl_name);

/* The mode argument of nnl_cifar_load / nnl_cifar_parse. */
enum { NNL_CIFAR10 = 0, NNL_CIFAR100_FINE = 1, NNL_CIFAR100_COARSE = 2 };

/* CIFAR binary records from nbuf buffers, concatenated in order. Sets the CIFAR-10 class
 * names; CIFAR-100 names come from files and are left NULL here. */
int nnl_cifar_parse(nnl_dataset *ds, const uint8_t *const *bufs, const size_t *sizes,
                    const char *const *names, int nbuf, int mode);

/* Decodes a PNG, JPEG or binary PPM/PGM held in memory into planar CHW bytes (malloc'd):
 * c = 1 for gray (alpha dropped), 3 for colour (alpha dropped). Images with more than
 * max_pixels pixels are rejected before decoding. */
int nnl_image_decode(const uint8_t *buf, size_t size, const char *name, size_t max_pixels,
                     uint8_t **pixels, int *c, int *h, int *w);

/* Reads class names, one per non-empty line, into a malloc'd array of n strings. Returns
 * NNL_OK with *names = NULL when the file does not exist. */
int nnl_read_class_names(const char *path, int n, char ***names);
/* Frees an array of n strings (either may be NULL). */
void nnl_free_names(char **names, int n);
/* The same for a file whose length says how many classes there are (n <= 0: 2 to
 * NNL_MAX_CLASSES names; *count receives it; the array has room for NNL_MAX_CLASSES). */
int nnl_read_class_names_n(const char *path, int n, char ***names, int *count);

/* ---- SVHN and GTSRB (src/data/svhn.c, src/data/gtsrb.c) ---- */

/* SVHN cropped digits: one MATLAB v5 file (train_32x32.mat or test_32x32.mat) holding X
 * (uint8 32x32x3xN, column-major) and y (N labels 1..10, 10 = the digit 0), read with
 * matio after a structural check of the file. Gives 3x32x32 images, labels 0..9. */
int nnl_svhn_load(nnl_dataset *ds, const char *mat_path);

#define NNL_GTSRB_CLASSES 43
#define NNL_GTSRB_MAX_LINE 1024
#define NNL_GTSRB_MAX_SIZE 1024

/* One image row of a GTSRB annotation CSV (Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;
 * Roi.Y2;ClassId). The ROI spans columns x1..x2-1 and rows y1..y2-1. */
typedef struct nnl_gtsrb_row {
    size_t file;   /* offset of the NUL-terminated file name in nnl_gtsrb_csv.names */
    int64_t line;  /* 1-based line of the CSV */
    int32_t width, height, x1, y1, x2, y2, class_id;
} nnl_gtsrb_row;

typedef struct nnl_gtsrb_csv {
    int64_t n;
    nnl_gtsrb_row *rows;
    char *names;
} nnl_gtsrb_csv;

/* Parses a GTSRB CSV held in memory (strict: the exact header, 8 fields per line, plain
 * file names, numeric fields range-checked, ClassId 0..42). Zeroes *csv first; on failure
 * it is left zeroed. */
int nnl_gtsrb_csv_parse(nnl_gtsrb_csv *csv, const uint8_t *buf, size_t size, const char *name);
void nnl_gtsrb_csv_free(nnl_gtsrb_csv *csv);

/* Resamples the region x0..x0+rw-1, y0..y0+rh-1 of a planar c x h x w image into c x oh x ow
 * (dst): per axis, area averaging when shrinking, bilinear (pixel centres) when enlarging. */
int nnl_image_resize(const uint8_t *src, int c, int h, int w, int x0, int y0, int rw, int rh,
                     uint8_t *dst, int oh, int ow);

/* Everything done to one decoded image (c = 1 or 3, h x w) of CSV row r: scales the ROI to
 * the image when the image is not the size the row gives (a copy resized after the CSVs were
 * written: bit 2 of *clamped), clamps the ROI to the image (bit 1 when it had to), crops to
 * it when crop_roi (an empty ROI is an error), and resizes into out (3 x size x size). name
 * (the image) and csv_name are used in messages. */
int nnl_gtsrb_prepare(const nnl_gtsrb_row *r, const char *name, const char *csv_name,
                      const uint8_t *px, int c, int h, int w, int size, int crop_roi,
                      uint8_t *out, int *clamped);

#endif
