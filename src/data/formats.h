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

#endif
