/* A tiny C test harness: CHECK records a failure and goes on; main ends with
 * TEST_SUMMARY(), which prints "N passed, N failed" and returns the exit code. */
#ifndef RECUR_TEST_H
#define RECUR_TEST_H
#include <math.h>
#include <stdio.h>

static int test_passed, test_failed;
#define CHECK(cond)                                                                           \
  do {                                                                                        \
    if (cond) test_passed++;                                                                  \
    else {                                                                                    \
      test_failed++;                                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
    }                                                                                         \
  } while (0)
#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol))
#define TEST_SUMMARY()                                                                        \
  (printf("%d passed, %d failed\n", test_passed, test_failed), test_failed ? 1 : 0)
#endif
