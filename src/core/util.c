#include "core.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Buffers of 2 MiB and more (weights, gradients, optimizer state, activations) are
 * aligned to 2 MiB and asked for transparent huge pages: streaming through tens of MB
 * with 4 KiB pages costs a TLB walk every page, and on this kind of VM the first touch of
 * a 4 KiB page costs about 11 us (a huge page much less per byte). */
void *nnl_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n < bytes) return NULL;
    if (n >= huge) {
        size_t hn = (n + huge - 1) & ~(huge - 1);
        if (hn < n) return NULL;
        void *p = aligned_alloc(huge, hn);
        if (!p) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(p, hn, MADV_HUGEPAGE);  /* advice only: without THP the pages stay small */
#endif
        memset(p, 0, n);
        return p;
    }
    void *p = aligned_alloc(64, n ? n : 64);
    if (p) memset(p, 0, n ? n : 64);
    return p;
}

void nnl_free(void *p) { free(p); }

void nnl_wipe_free(void *p, size_t n) {
    if (!p) return;
    sodium_memzero(p, n);
    free(p);
}

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
