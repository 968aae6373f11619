/* Integer arguments at the edges of int64 (math.maxinteger, math.mininteger, +-2^62, 2^31,
 * 2^32...) in every integer argument of every function a script reaches: the sweep is
 * tests/overflow_sweep.lua, run here in a runtime with a memory limit so that a size that is
 * merely large (2^31 floats) fails on the limit instead of allocating 8 GB. Under `make asan`
 * UBSan aborts on any signed overflow, which is what this test is for; in any build the sweep
 * checks that each call works or raises an error naming its function. */
#include <stdio.h>
#include <string.h>

#include "../../include/recur.h"
#include "test.h"

int main(void) {
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = (size_t)256 << 20;
  o.sandbox = 0; /* the sweep is trusted; it needs require and the file system no more */
  o.threads = 1;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (!rt) return TEST_SUMMARY();
  int rc = recur_run_file(rt, "tests/overflow_sweep.lua");
  const char *msg = "";
  recur_last_error(rt, &msg);
  if (rc != RECUR_OK) fprintf(stderr, "overflow_sweep.lua: %d: %s\n", rc, msg);
  CHECK(rc == RECUR_OK);
  const char *report = NULL;
  size_t len = 0;
  double calls = 0;
  if (rc == RECUR_OK) {
    CHECK(recur_result_string(rt, 1, &report, &len) == RECUR_OK);
    CHECK(recur_result_number(rt, 2, &calls) == RECUR_OK);
  }
  if (report && len) fprintf(stderr, "%s\n", report);
  CHECK(report && len == 0); /* no call failed without naming its function */
  CHECK(calls > 50000);      /* the sweep ran (and so can fail) */
  printf("overflow sweep: %.0f calls\n", calls);
  recur_free(rt);
  return TEST_SUMMARY();
}
