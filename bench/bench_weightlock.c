/*
 * Deep-Lock lock/unlock throughput on one thread, against memcpy of the same buffer in
 * the same run (the target: at least 1 GB/s of parameters).
 *
 *   bench_weightlock [MiB]    (default 64)
 */
#include "lock/weightlock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 7

typedef enum { LOCK_STREAM, UNLOCK_STREAM, LOCK_WORDS, UNLOCK_WORDS, SCHEDULE, MEMCPY } op_t;

static float *buf, *dst;
static uint32_t *words;
static size_t n;
static uint8_t key[32];

static double time_once(op_t op) {
    nnl_wl_sched s;
    nnl_wl_sched_init(&s, key, 32);
    double t0 = nnl_now();
    switch (op) {
    case LOCK_STREAM: nnl_wl_lock_stream(&s, buf, n); break;
    case UNLOCK_STREAM: nnl_wl_unlock_stream(&s, buf, n); break;
    case LOCK_WORDS: nnl_wl_lock(buf, n, words); break;
    case UNLOCK_WORDS: nnl_wl_unlock(buf, n, words); break;
    case SCHEDULE: nnl_wl_sched_words(&s, words, n); break;
    case MEMCPY: memcpy(dst, buf, n * sizeof *buf); break;
    }
    double t = nnl_now() - t0;
    nnl_wl_sched_wipe(&s);
    return t;
}

/* Best of RUNS for the case and for memcpy, interleaved so both see the same machine state. */
static void run_case(const char *name, op_t op, op_t undo) {
    double best = 1e30, best_cpy = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t = time_once(op);
        if (t < best) best = t;
        if (undo != op) time_once(undo); /* keep the parameters plaintext between runs */
        t = time_once(MEMCPY);
        if (t < best_cpy) best_cpy = t;
    }
    double bytes = (double)n * sizeof(float);
    double gbs = bytes / best / 1e9, cpy = bytes / best_cpy / 1e9;
    printf("weightlock %s: %.2f GB/s, memcpy %.2f GB/s, ratio %.2f  [%s]\n", name, gbs, cpy, gbs / cpy,
           gbs >= 1.0 ? "meets >= 1 GB/s" : "BELOW the 1 GB/s target");
    fflush(stdout);
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 64;
    if (mib == 0) mib = 64;
    n = mib * (1u << 20) / sizeof(float);
    buf = nnl_alloc(n * sizeof *buf);
    dst = nnl_alloc(n * sizeof *dst);
    float *orig = nnl_alloc(n * sizeof *orig);
    words = nnl_alloc(n * sizeof *words);
    if (!buf || !dst || !orig || !words) { fprintf(stderr, "out of memory\n"); return 1; }
    /* First touch costs page faults here; fault everything in before timing. */
    nnl_rng r = {42};
    for (size_t i = 0; i < n; i++) buf[i] = nnl_rng_normal(&r) * 0.05f;
    memcpy(orig, buf, n * sizeof *buf);
    memset(dst, 0, n * sizeof *dst);
    for (size_t i = 0; i < 32; i++) key[i] = (uint8_t)(i * 37 + 11);
    nnl_aes_expand_key(key, 32, words, n);

    printf("bench_weightlock: %zu MiB of float32 (%zu parameters), AES-256 key schedule, 1 thread, best of %d\n",
           mib, n, RUNS);
    printf("lock path: %s\n", nnl_wl_impl());
    run_case("lock", LOCK_STREAM, UNLOCK_STREAM);
    run_case("unlock", UNLOCK_STREAM, LOCK_STREAM);
    run_case("lock (precomputed words)", LOCK_WORDS, UNLOCK_WORDS);
    run_case("unlock (precomputed words)", UNLOCK_WORDS, LOCK_WORDS);
    run_case("key schedule alone", SCHEDULE, SCHEDULE);
    int ok = memcmp(buf, orig, n * sizeof *buf) == 0;
    if (strcmp(nnl_wl_impl(), "scalar lock, scalar schedule") != 0) {
        nnl_wl_force_scalar(1);
        printf("portable path: %s\n", nnl_wl_impl());
        run_case("lock (scalar)", LOCK_STREAM, UNLOCK_STREAM);
        run_case("unlock (scalar)", UNLOCK_STREAM, LOCK_STREAM);
        run_case("key schedule alone (scalar)", SCHEDULE, SCHEDULE);
        nnl_wl_force_scalar(0);
        ok = ok && memcmp(buf, orig, n * sizeof *buf) == 0;
    }
    printf("round trip after all runs: %s\n", ok ? "identical" : "MISMATCH");
    nnl_free(buf); nnl_free(dst); nnl_free(orig); nnl_free(words);
    return ok ? 0 : 1;
}
