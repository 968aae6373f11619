/* Cost of calling into a runtime from C (include/recur.h) against the work of the call: one
 * LSTM step (batch 1, input and hidden 128) written in Lua from recur's ops. The host lends
 * its input array (no copy), calls step by reference and copies h back into its own buffer;
 * the same step called from Lua in a loop is the baseline. Target: overhead under 10%.
 * usage: embed_call [steps]   (best of 7 runs; run by bench/run.sh) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recur.h"
#include "bench_rows.h"

static const char *script = "local H, I = 128, 128\n"
                            "recur.seed(1)\n"
                            "local Wx = recur.randn(I, 4 * H) * 0.05\n"
                            "local Wh = recur.randn(H, 4 * H) * 0.05\n"
                            "local b = recur.zeros(1, 4 * H)\n"
                            "local h, c = recur.zeros(1, H), recur.zeros(1, H)\n"
                            "function step(x)\n"
                            "  local g = recur.matmul(x, Wx) + recur.matmul(h, Wh) + b\n"
                            "  local i = g:narrow(2, 1, H):sigmoid()\n"
                            "  local f = g:narrow(2, H + 1, H):sigmoid()\n"
                            "  local j = g:narrow(2, 2 * H + 1, H):tanh()\n"
                            "  local o = g:narrow(2, 3 * H + 1, H):sigmoid()\n"
                            "  c = f * c + i * j\n"
                            "  h = o * c:tanh()\n"
                            "  return h\n"
                            "end\n"
                            "function noop(x) return x end\n"
                            "function lua_loop(n)\n" /* the step alone, called from Lua */
                            "  local x = recur.randn(1, I)\n"
                            "  local t0 = os.clock()\n"
                            "  for _ = 1, n do step(x) end\n"
                            "  return (os.clock() - t0) / n\n"
                            "end\n";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(recur_runtime *rt, const char *what) {
  const char *m = "";
  recur_last_error(rt, &m);
  fprintf(stderr, "embed_call: %s: %s\n", what, m);
  exit(1);
}

/* Seconds per call of fn(x) from C, reading the [1, 128] result back. */
static double c_loop(recur_runtime *rt, recur_ref fn, float *x, float *h, int n) {
  recur_value arg = RECUR_ARRAY(x, 2, 1, 128);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    int nres = 0;
    if (recur_call_ref(rt, fn, 1, &arg, &nres) != RECUR_OK) die(rt, "call");
    if (recur_result_tensor(rt, 1, h, 128, NULL, NULL) != RECUR_OK) die(rt, "result");
  }
  return (now() - t0) / n;
}

static void bench(int sandboxed, int n) {
  recur_options o;
  recur_options_init(&o);
  o.sandbox = sandboxed;
  if (sandboxed) {
    o.memory_limit = 64u << 20;
    o.instruction_budget = 10000000;
  }
  o.threads = 1;
  recur_runtime *rt = NULL;
  if (recur_new(&o, &rt) != RECUR_OK) die(rt, "recur_new");
  if (recur_run_string(rt, script, "=bench") != RECUR_OK) die(rt, "script");
  recur_ref step, noop, loop;
  if (recur_ref_global(rt, "step", &step) || recur_ref_global(rt, "noop", &noop) ||
      recur_ref_global(rt, "lua_loop", &loop))
    die(rt, "ref");
  float x[128], h[128];
  for (int i = 0; i < 128; i++) x[i] = (float)(i % 7) / 7.0f - 0.4f;
  double best_lua = 1e9, best_c = 1e9, best_noop = 1e9, all_c[7];
  for (int rep = 0; rep < 7; rep++) {
    recur_value nv = RECUR_INT(n);
    int nres;
    recur_set_budget(rt, 0); /* n steps in one call: no per-call budget for the baseline */
    if (recur_call_ref(rt, loop, 1, &nv, &nres) != RECUR_OK) die(rt, "lua loop");
    recur_set_budget(rt, o.instruction_budget);
    double t = 0;
    recur_result_number(rt, 1, &t);
    if (t < best_lua) best_lua = t;
    t = c_loop(rt, step, x, h, n);
    all_c[rep] = t * 1e6;
    if (t < best_c) best_c = t;
    t = c_loop(rt, noop, x, h, n);
    if (t < best_noop) best_noop = t;
  }
  printf("embed call, LSTM step (batch 1, hidden 128, %s): step from Lua %.2f us, from C %.2f us "
         "(lent input, result copied out): overhead %.1f%% (target < 10%%); "
         "empty call from C %.2f us\n",
         sandboxed ? "sandbox, 64 MB limit, budget" : "no sandbox", best_lua * 1e6, best_c * 1e6,
         (best_c - best_lua) / best_lua * 100, best_noop * 1e6);
  double lo, med, hi;
  bench_spread(all_c, 7, &lo, &med, &hi);
  bench_row("embed_call", sandboxed ? "LSTM step from C, sandbox" : "LSTM step from C",
            best_c * 1e6, "us", "lower", best_lua * 1e6, "the step from Lua", lo, med, hi);
  recur_free(rt);
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: embed_call [steps]\nTimes one LSTM step (batch 1, hidden 128) called from C "
           "through recur.h against the same step called from Lua (best of 7 runs of `steps`, "
           "default 10000).\n");
    return 0;
  }
  int n = argc > 1 ? atoi(argv[1]) : 10000;
  if (n < 1) {
    fprintf(stderr, "usage: embed_call [steps]\n");
    return 2;
  }
  bench(1, n);
  bench(0, n);
  return 0;
}
