/* libFuzzer target for single-image decoding (PNG, JPEG via stb_image; PPM/PGM). The pixel
 * bound is kept small so that headers claiming huge images cannot stall the fuzzer. */
#include "core/core.h"
#include "data/formats.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *px = NULL;
    nnl_clear_error();
    int c, h, w;
    if (nnl_image_decode(data, size, "fuzz", (size_t)1 << 20, &px, &c, &h, &w) == NNL_OK) {
        if (c != 1 && c != 3) __builtin_trap();
        volatile unsigned sum = 0;
        for (size_t i = 0; i < (size_t)c * (size_t)h * (size_t)w; i++) sum += px[i]; /* touch every byte */
        (void)sum;
    } else if (!nnl_errmsg()[0] || px) {
        __builtin_trap();
    }
    free(px);
    return 0;
}
