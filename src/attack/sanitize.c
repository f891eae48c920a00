/* The weight repair an attacker tries first on a weight-locked model. */
#include "../core/core.h"

#include <string.h>

size_t nnl_attack_sanitize(nnl_model *m, size_t *total) {
    size_t zeroed = 0, all = 0;
    for (int t = 0; t < nnl_model_tensor_count(m); t++) {
        size_t c = 0;
        /* Bit patterns, not float compares: a locked word may be any NaN. */
        uint8_t *b = (uint8_t *)nnl_model_tensor(m, t, NULL, &c);
        for (size_t i = 0; i < c; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            /* |w| > 1 or NaN/Inf: exponent field above 127 (or equal with a mantissa). */
            if ((u & 0x7fffffffu) > 0x3f800000u) { memset(b + 4 * i, 0, 4); zeroed++; }
        }
        all += c;
    }
    if (total) *total = all;
    return zeroed;
}
