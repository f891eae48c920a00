/* libFuzzer target for the GTSRB CSV parser, and for what is done to each image of a parsed
 * row (size check, ROI clamping, cropping, resampling). Byte 0 holds flags (bit 0: crop to
 * the ROI, bit 1: gray image, bit 2: image one pixel wider than the row says, bit 3:
 * uniform image), byte 1 the output size; the rest is the CSV. */
#include "core/core.h"
#include "data/formats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int flags = data[0], out_size = 1 + data[1] % 48;
    data += 2;
    size -= 2;
    nnl_gtsrb_csv csv;
    nnl_clear_error();
    if (nnl_gtsrb_csv_parse(&csv, data, size, "fuzz.csv") != NNL_OK) {
        if (!nnl_errmsg()[0] || csv.rows || csv.names || csv.n) __builtin_trap();
        return 0;
    }
    if (csv.n < 1) __builtin_trap();
    for (int64_t i = 0; i < csv.n; i++) {
        const nnl_gtsrb_row *r = &csv.rows[i];
        /* the name pool holds at most size + 1 bytes */
        if (r->file > size || !memchr(csv.names + r->file, 0, size + 1 - r->file) || !csv.names[r->file])
            __builtin_trap();
        if (r->width < 1 || r->height < 1 || r->width > 65535 || r->height > 65535 || r->x1 < 0 || r->y1 < 0 ||
            r->x2 < 0 || r->y2 < 0 || r->x1 > 65535 || r->x2 > 65535 || r->class_id < 0 ||
            r->class_id >= NNL_GTSRB_CLASSES || r->line < 2)
            __builtin_trap();
    }
    int c = flags & 2 ? 1 : 3;
    for (int64_t i = 0; i < csv.n && i < 4; i++) {
        const nnl_gtsrb_row *r = &csv.rows[i];
        int w = r->width + (flags & 4 ? 1 : 0), h = r->height;
        if ((int64_t)w * h > 4096) continue;
        size_t n = (size_t)c * (size_t)w * (size_t)h;
        uint8_t *img = malloc(n), *out = malloc(3 * (size_t)out_size * (size_t)out_size);
        if (!img || !out) { free(img); free(out); break; }
        uint8_t v = (uint8_t)(r->class_id * 5 + 1);
        for (size_t k = 0; k < n; k++) img[k] = flags & 8 ? v : (uint8_t)(k * 131 + (k >> 5));
        int clamped = -1;
        nnl_clear_error();
        int st = nnl_gtsrb_prepare(r, "fuzz.ppm", "fuzz.csv", img, c, h, w, out_size, flags & 1, out, &clamped);
        if (st != NNL_OK && !nnl_errmsg()[0]) __builtin_trap();
        if (clamped != 0 && clamped != 1) __builtin_trap();
        if (st == NNL_OK && (flags & 4)) __builtin_trap(); /* the size check must catch it */
        if (st == NNL_OK && (flags & 8))                   /* a uniform image stays uniform */
            for (size_t k = 0; k < 3 * (size_t)out_size * (size_t)out_size; k++)
                if (out[k] != v) __builtin_trap();
        free(img);
        free(out);
    }
    nnl_gtsrb_csv_free(&csv);
    return 0;
}
