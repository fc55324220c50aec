/*
 * check.h: the assertion header of tiergate's C tests.
 *
 * A test file is a main() that calls CHECK*-macros; each failure prints file:line and the values,
 * the test keeps going, and check_done() returns the exit code (0 if nothing failed). Meson reads
 * the exit code. Keep assertions on values: a test that cannot fail is not a test.
 *
 *   int main(void) {
 *     CHECK_EQ_INT(add(2, 2), 4);
 *     CHECK_STR(name(), "tiergate");
 *     return check_done();
 *   }
 */
#ifndef TIERGATE_TESTS_CHECK_H
#define TIERGATE_TESTS_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures_;
static int check_count_;

#define CHECK_FAIL_(...)                                   \
  do {                                                     \
    check_failures_++;                                     \
    fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);  \
    fprintf(stderr, __VA_ARGS__);                          \
    fputc('\n', stderr);                                   \
  } while (0)

#define CHECK(cond)                                               \
  do {                                                            \
    check_count_++;                                               \
    if (!(cond)) CHECK_FAIL_("%s", #cond);                        \
  } while (0)

#define CHECK_MSG(cond, ...)                                      \
  do {                                                            \
    check_count_++;                                               \
    if (!(cond)) CHECK_FAIL_(__VA_ARGS__);                        \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                          \
  do {                                                                              \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);                 \
    check_count_++;                                                                 \
    if (check_a_ != check_b_)                                                       \
      CHECK_FAIL_("%s == %s: %lld != %lld", #a, #b, check_a_, check_b_);            \
  } while (0)

#define CHECK_EQ_U64(a, b)                                                          \
  do {                                                                              \
    uint64_t check_a_ = (uint64_t)(a), check_b_ = (uint64_t)(b);                    \
    check_count_++;                                                                 \
    if (check_a_ != check_b_)                                                       \
      CHECK_FAIL_("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, check_a_, check_b_); \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                       \
  do {                                                                              \
    double check_a_ = (double)(a), check_b_ = (double)(b);                          \
    check_count_++;                                                                 \
    if (!(fabs(check_a_ - check_b_) <= (tol)))                                      \
      CHECK_FAIL_("%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, check_a_, check_b_,     \
                  (double)(tol));                                                   \
  } while (0)

#define CHECK_STR(a, b)                                                             \
  do {                                                                              \
    const char *check_a_ = (a), *check_b_ = (b);                                    \
    check_count_++;                                                                 \
    if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0)                  \
      CHECK_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b,                             \
                  check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");  \
  } while (0)

/* Path of a file under ../shared (meson passes TIERGATE_SHARED_DIR to every test). */
static inline const char *check_shared_path(const char *rel) {
  static char buf[4][4096];
  static int k;
  const char *dir = getenv("TIERGATE_SHARED_DIR");
  char *out = buf[k++ & 3];
  snprintf(out, sizeof buf[0], "%s/%s", dir ? dir : "../shared", rel);
  return out;
}

static inline int check_done(void) {
  if (check_failures_) {
    fprintf(stderr, "%d of %d checks failed\n", check_failures_, check_count_);
    return 1;
  }
  printf("%d checks passed\n", check_count_);
  return 0;
}

/* The whole file at PATH, NUL-terminated (not counted in *LEN; LEN may be NULL); NULL if it cannot
 * be read. The caller frees it. */
static inline char *check_read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  size_t sz = n > 0 ? (size_t)n : 0;
  char *b = malloc(sz + 1);
  if (b && fread(b, 1, sz, fp) != sz) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  if (b) {
    b[sz] = 0;
    if (len) *len = sz;
  }
  return b;
}

#endif
