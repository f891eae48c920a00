#include "core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *nnl_alloc(size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n < bytes) return NULL;
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}

void nnl_free(void *p) { free(p); }

float nnl_rng_normal(nnl_rng *r) {
    /* Box-Muller; the second value is dropped to keep the stream position simple. */
    float u1 = nnl_rng_uniform(r), u2 = nnl_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

double nnl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
