/* Internal helpers shared by every part of libnnlock: errors, RNG, allocation. */
#ifndef NNL_CORE_H
#define NNL_CORE_H

#include "nnlock.h"
#include <stddef.h>
#include <stdint.h>

/* Records a detailed message for nnl_errmsg() and returns status (printf-style). */
int nnl_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nnl_clear_error(void);

/* 64-byte aligned, zeroed allocation (NULL on failure; size 0 gives a valid pointer). */
void *nnl_alloc(size_t bytes);
void nnl_free(void *p);
/* Wipes n bytes (a secret) and frees them (malloc'd). */
void nnl_wipe_free(void *p, size_t n);

/* splitmix64: a seeded, splittable stream. */
typedef struct nnl_rng { uint64_t s; } nnl_rng;
static inline uint64_t nnl_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline uint64_t nnl_rng_next(nnl_rng *r) {
    r->s += 0x9e3779b97f4a7c15ULL;
    return nnl_mix64(r->s);
}
/* A child stream that depends only on (seed, stream id), never on call order. */
static inline nnl_rng nnl_rng_derive(uint64_t seed, uint64_t stream) {
    nnl_rng r = { nnl_mix64(seed ^ nnl_mix64(stream + 0x632be59bd9b4e019ULL)) };
    return r;
}
/* Uniform in [0, 1) with 24 random bits. */
static inline float nnl_rng_uniform(nnl_rng *r) {
    return (float)(nnl_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}
/* Uniform integer in [0, n). */
static inline uint64_t nnl_rng_below(nnl_rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)nnl_rng_next(r) * n) >> 64);
}
float nnl_rng_normal(nnl_rng *r);

/* Stateless hash -> [0,1): used where the result must not depend on thread order. */
static inline float nnl_hash_uniform(uint64_t seed, uint64_t a, uint64_t b) {
    return (float)(nnl_mix64(seed ^ nnl_mix64(a ^ nnl_mix64(b))) >> 40) * (1.0f / 16777216.0f);
}

/* The library's thread count, for OpenMP num_threads clauses. */
int nnl_threads(void);

/* Wall clock in seconds. */
double nnl_now(void);

/* Reads a whole file into memory, refusing devices and anything larger than max_bytes
 * before allocating for it. With NNL_READ_GZIP a gzip file is inflated, the bound then
 * applying to the inflated size (only for formats documented as gzip: IDX). */
enum { NNL_READ_GZIP = 1 };
int nnl_read_file(const char *path, uint8_t **data, size_t *size, size_t max_bytes, int flags);
/* "dir/name", malloc'd (NULL when out of memory). */
char *nnl_path_join(const char *dir, const char *name);
/* 1 if path names a regular file (a directory), following links; 0 otherwise. */
int nnl_is_file(const char *path);
int nnl_is_dir(const char *path);
/* Writes data atomically with the mode of NNL_WRITE_* flags (see nnlock.h): a temporary
 * file in the same directory (unnamed where the file system allows), fsync, rename (or
 * link, for NNL_WRITE_NEW). */
int nnl_write_file(const char *path, const void *data, size_t size, int flags);
/* Creates a directory unless it exists (0700 with NNL_WRITE_SECRET, else 0777 less the umask). */
int nnl_make_dir(const char *path, int flags);
/* Tests: 1 makes every write take the named temporary file that file systems without
 * O_TMPFILE get (the path nnl_discard_partial_files cleans up after). */
void nnl_file_force_named_temp(int on);
/* Removes a file; a missing one is not an error. */
int nnl_remove_file(const char *path);

/* The failure with the lowest index in a parallel loop, so the error reported is the same
 * whatever the thread timing. Workers call nnl_first_error_skip to drop work that can no
 * longer matter and nnl_first_error_record when they fail (it captures nnl_errmsg()). */
typedef struct nnl_first_error {
    int64_t index;  /* n while nothing failed */
    int status;
    char msg[512];
} nnl_first_error;
void nnl_first_error_init(nnl_first_error *e, int64_t n);
int nnl_first_error_skip(nnl_first_error *e, int64_t i);
void nnl_first_error_record(nnl_first_error *e, int64_t i, int status);
/* NNL_OK, or the recorded failure re-raised on the calling thread. */
int nnl_first_error_status(const nnl_first_error *e);

/* Like nnl_image_load but keeps an alpha channel: c = 2 (gray + alpha) or 4 (RGBA). */
int nnl_image_load_rgba(const char *path, uint8_t **pixels, int *c, int *h, int *w);

#endif
