/* A tiny C test harness: CHECK records a failure and goes on; main ends with
 * TEST_SUMMARY(), which prints "N passed, N failed" and returns the exit code.
 * A CHECK counts once however often it runs (a check inside a loop over 6,000 shapes is one
 * test): it passes when every run passed and fails once, at its first failing run. Every
 * failing run is still printed. Not thread-safe: call CHECK from the main thread only. */
#ifndef RECUR_TEST_H
#define RECUR_TEST_H
#include <math.h>
#include <stdio.h>

static int test_passed, test_failed;
#define CHECK(cond)                                                                                \
  do {                                                                                             \
    static int site_; /* 0 not run yet, 1 passed so far, 2 failed */                               \
    if (cond) {                                                                                    \
      if (site_ == 0) {                                                                            \
        site_ = 1;                                                                                 \
        test_passed++;                                                                             \
      }                                                                                            \
    } else {                                                                                       \
      if (site_ != 2) {                                                                            \
        if (site_ == 1) test_passed--;                                                             \
        site_ = 2;                                                                                 \
        test_failed++;                                                                             \
      }                                                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                    \
    }                                                                                              \
  } while (0)
#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol))
#define TEST_SUMMARY()                                                                             \
  (printf("%d passed, %d failed\n", test_passed, test_failed), test_failed ? 1 : 0)
#endif
