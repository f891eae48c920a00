/* Minimal test helpers: every check failure is counted and main returns non-zero. */
#ifndef NNL_TESTUTIL_H
#define NNL_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>

extern int nnl_test_failures;
#define CHECK(cond) do { if (!(cond)) { nnl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) { nnl_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
/* Prints the summary line and returns the exit status for main. */
int nnl_test_finish(const char *name);
/* A fresh temporary directory for this test (created once, path stable). */
const char *nnl_test_tmpdir(void);
/* mkdir -p. */
void nnl_test_mkdirs(const char *path);
/* Writes a whole file; exits the test (status 2) if it cannot. */
void nnl_test_write(const char *path, const void *data, size_t n);
#endif
