/* Minimal test helpers: every check failure is counted and main returns non-zero. */
#ifndef NNL_TESTUTIL_H
#define NNL_TESTUTIL_H
#include "nnlock.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int nnl_test_failures;
#define CHECK(cond) do { if (!(cond)) { nnl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) { nnl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
/* Any failure must come with a message naming the problem (needle); printed to show it. */
#define EXPECT_FAIL(expr, needle) do { \
    int st_ = (expr); \
    CHECK_MSG(st_ != NNL_OK, "%s succeeded", #expr); \
    CHECK_MSG(nnl_errmsg()[0] != 0, "%s: empty message", #expr); \
    CHECK_MSG(strstr(nnl_errmsg(), needle) != NULL, "'%s' lacks '%s'", nnl_errmsg(), needle); \
    fprintf(stderr, "  expected failure: %s\n", nnl_errmsg()); \
} while (0)
/* Prints the summary line and returns the exit status for main. */
int nnl_test_finish(const char *name);
/* A fresh temporary directory for this test (created once, path stable). */
const char *nnl_test_tmpdir(void);
/* mkdir -p. */
void nnl_test_mkdirs(const char *path);
/* Reads a whole file (NUL-terminated, malloc'd); NULL if it cannot. */
uint8_t *nnl_test_read(const char *path, size_t *size);
/* Writes a whole file; exits the test (status 2) if it cannot. */
void nnl_test_write(const char *path, const void *data, size_t n);
#endif
