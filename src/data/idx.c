/* IDX files (MNIST, Fashion-MNIST): big-endian header, then raw unsigned bytes. */
#include "core/core.h"
#include "data/formats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_MAX_SIDE 4096u
#define IDX_MAX_COUNT 10000000u
/* Per-file bounds (after gunzip): 2 GiB of images is 2.7 million 28x28 ones, beyond which
 * an image folder serves better; a label file holds one byte per image. */
#define IDX_MAX_IMAGES_FILE ((size_t)2 << 30)
#define IDX_MAX_LABELS_FILE ((size_t)(8 + IDX_MAX_COUNT))

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the magic and reads ndim big-endian dimensions after it. */
static int idx_header(const uint8_t *buf, size_t size, const char *name, uint32_t magic,
                      const char *what, uint32_t *dims, int ndim) {
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (size < 4)
        return nnl_fail(NNL_ERR_FORMAT, "%s: %zu-byte file is too short for an IDX header", name, size);
    uint32_t m = be32(buf);
    if (m != magic)
        return nnl_fail(NNL_ERR_FORMAT, "%s: bad IDX magic 0x%08x, expected 0x%08x (%s)", name, m,
                        magic, what);
    if (size < hdr)
        return nnl_fail(NNL_ERR_FORMAT, "%s: truncated IDX header (%zu of %zu bytes)", name, size, hdr);
    for (int i = 0; i < ndim; i++) dims[i] = be32(buf + 4 + 4 * i);
    return NNL_OK;
}

int nnl_idx_parse(nnl_dataset *ds, const uint8_t *img, size_t img_size, const char *img_name,
                  const uint8_t *lbl, size_t lbl_size, const char *lbl_name) {
    memset(ds, 0, sizeof *ds);
    uint32_t d[3] = {0}, nl = 0;
    int st = idx_header(img, img_size, img_name, IDX_IMAGES_MAGIC, "idx3 unsigned-byte images", d, 3);
    if (st) return st;
    if (d[0] == 0 || d[0] > IDX_MAX_COUNT)
        return nnl_fail(NNL_ERR_FORMAT, "%s: image count %u outside 1..%u", img_name, d[0], IDX_MAX_COUNT);
    if (d[1] == 0 || d[2] == 0 || d[1] > IDX_MAX_SIDE || d[2] > IDX_MAX_SIDE)
        return nnl_fail(NNL_ERR_FORMAT, "%s: image size %ux%u outside 1..%u", img_name, d[1], d[2],
                        IDX_MAX_SIDE);
    /* Bounded above: at most 1e7 * 4096 * 4096 < 2^64, so no overflow. */
    uint64_t plane = (uint64_t)d[1] * d[2], want = 16 + (uint64_t)d[0] * plane;
    if ((uint64_t)img_size != want)
        return nnl_fail(NNL_ERR_FORMAT, "%s: %s: header says %u images of %ux%u (%llu bytes) but the file has %zu bytes",
                        img_name, img_size < want ? "truncated" : "trailing data", d[0], d[1],
                        d[2], (unsigned long long)want, img_size);

    st = idx_header(lbl, lbl_size, lbl_name, IDX_LABELS_MAGIC, "idx1 unsigned-byte labels", &nl, 1);
    if (st) return st;
    if (nl != d[0])
        return nnl_fail(NNL_ERR_FORMAT, "%s: %u labels but %s has %u images", lbl_name, nl, img_name, d[0]);
    if ((uint64_t)lbl_size != 8 + (uint64_t)nl)
        return nnl_fail(NNL_ERR_FORMAT, "%s: %s: header says %u labels (%llu bytes) but the file has %zu bytes",
                        lbl_name, lbl_size < 8 + (uint64_t)nl ? "truncated" : "trailing data", nl,
                        (unsigned long long)(8 + (uint64_t)nl), lbl_size);

    size_t npix = (size_t)want - 16;
    uint8_t *px = nnl_alloc(npix);
    int32_t *labels = nnl_alloc((size_t)nl * sizeof *labels);
    if (!px || !labels) {
        nnl_free(px);
        nnl_free(labels);
        return nnl_fail(NNL_ERR_NOMEM, "%s: out of memory for %zu bytes of pixels", img_name, npix);
    }
    memcpy(px, img + 16, npix);
    /* Labels are single bytes, so every label is < 256 <= NNL_MAX_CLASSES; MNIST-like sets
     * may lack the top classes in a small subset, hence the floor of 10. */
    int maxl = 0;
    for (uint32_t i = 0; i < nl; i++) {
        labels[i] = lbl[8 + i];
        if (labels[i] > maxl) maxl = labels[i];
    }
    ds->n = d[0];
    ds->c = 1;
    ds->h = (int)d[1];
    ds->w = (int)d[2];
    ds->nclass = maxl + 1 < 10 ? 10 : maxl + 1;
    ds->pixels = px;
    ds->labels = labels;
    snprintf(ds->source, sizeof ds->source, "idx");
    return NNL_OK;
}

int nnl_idx_load(nnl_dataset *ds, const char *images_path, const char *labels_path) {
    memset(ds, 0, sizeof *ds);
    if (!images_path || !labels_path) return nnl_fail(NNL_ERR_ARG, "nnl_idx_load: NULL path");
    uint8_t *img = NULL, *lbl = NULL;
    size_t ni = 0, nl = 0;
    int st = nnl_read_file(images_path, &img, &ni, IDX_MAX_IMAGES_FILE, NNL_READ_GZIP);
    if (!st) st = nnl_read_file(labels_path, &lbl, &nl, IDX_MAX_LABELS_FILE, NNL_READ_GZIP);
    if (!st) st = nnl_idx_parse(ds, img, ni, images_path, lbl, nl, labels_path);
    free(img);
    free(lbl);
    return st;
}
