/* libFuzzer target for certificate key files (JSON): a key the parser accepts must stamp
 * an image of its shape inside the image, idempotently, and be refused for another shape;
 * a refusal leaves a message and no allocation. Keys for large images are parsed but not
 * stamped, so that a short input cannot make each run allocate megabytes. */
#include "core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nnl_cert k;
    nnl_clear_error();
    if (nnl_cert_parse(&k, data, size, "key") != NNL_OK) {
        if (!nnl_errmsg()[0] || k.pixels || k.mask) __builtin_trap();
        return 0;
    }
    if (k.c < 1 || k.c > NNL_MAX_CHANNELS || k.mh < 1 || k.mw < 1 || k.mh > k.h || k.mw > k.w || !k.pixels || !k.mask)
        __builtin_trap();
    size_t n = (size_t)k.c * (size_t)k.h * (size_t)k.w;
    if (n <= 16384) {
        /* Exactly sized, so AddressSanitizer sees a stamp outside the image. */
        uint8_t *a = malloc(n), *b = malloc(n);
        if (a && b) {
            for (size_t i = 0; i < n; i++) a[i] = (uint8_t)(i * 37 + 11);
            for (uint64_t seed = 0; seed < 3; seed++) {
                if (nnl_cert_stamp(&k, a, k.c, k.h, k.w, seed * 0x9e3779b97f4a7c15ULL) != NNL_OK) __builtin_trap();
                memcpy(b, a, n);
                nnl_cert_stamp(&k, b, k.c, k.h, k.w, seed * 0x9e3779b97f4a7c15ULL);
                if (memcmp(a, b, n)) __builtin_trap(); /* stamping is idempotent */
                int x, y;
                nnl_cert_position(&k, seed, &x, &y);
                if (x < 0 || y < 0 || x + k.mw > k.w || y + k.mh > k.h) __builtin_trap();
            }
            nnl_clear_error();
            if (nnl_cert_stamp(&k, a, k.c, k.h + 1, k.w, 0) == NNL_OK || !nnl_errmsg()[0]) __builtin_trap();
        }
        free(a);
        free(b);
    }
    nnl_cert_free(&k);
    if (k.pixels || k.mask) __builtin_trap();
    return 0;
}
