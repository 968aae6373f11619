/* The embedding API (include/recur.h): values in and out, lent arrays, references, errors,
 * memory limit, instruction budget, two runtimes in one process and in two threads. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../include/recur.h"
#include "test.h"

static const char *last(recur_runtime *rt) {
  const char *m = "";
  recur_last_error(rt, &m);
  return m;
}

#define CHECK_OK(expr)                                                                             \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_ != RECUR_OK) fprintf(stderr, "%s -> %d: %s\n", #expr, rc_, last(rt));                  \
    CHECK(rc_ == RECUR_OK);                                                                        \
  } while (0)

#define CHECK_ERR(expr, code, text)                                                                \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_ != (code) || !strstr(last(rt), (text)))                                                \
      fprintf(stderr, "%s -> %d (want %d), message: %s\n", #expr, rc_, (code), last(rt));          \
    CHECK(rc_ == (code));                                                                          \
    CHECK(strstr(last(rt), (text)) != NULL);                                                       \
  } while (0)

static double result_num(recur_runtime *rt, int i) {
  double v = -12345;
  CHECK_OK(recur_result_number(rt, i, &v));
  return v;
}

static void test_values(void) {
  recur_runtime *rt = NULL;
  CHECK(recur_new(NULL, &rt) == RECUR_OK && rt);
  CHECK_OK(recur_run_string(rt,
                            "function add(a, b) return a + b end\n"
                            "function greet(s) return 'hello ' .. s, #s end\n"
                            "function kinds(...) local t = {} for i = 1, select('#', ...) do "
                            "t[i] = math.type((select(i, ...))) or type((select(i, ...))) end "
                            "return table.concat(t, ',') end\n"
                            "function many() return 1, 2.5, true, 'x', nil, {} end\n"
                            "return 42",
                            "=setup"));
  int n = 0;
  CHECK_OK(recur_result_count(rt, &n));
  CHECK(n == 1);
  int64_t iv = 0;
  CHECK_OK(recur_result_integer(rt, 1, &iv));
  CHECK(iv == 42);

  recur_value args[] = {RECUR_NUM(1.5), RECUR_INT(2)};
  CHECK_OK(recur_call(rt, "add", 2, args, &n));
  CHECK(n == 1);
  CHECK_NEAR(result_num(rt, 1), 3.5, 1e-12);

  recur_value s[] = {RECUR_STR("world")};
  CHECK_OK(recur_call(rt, "greet", 1, s, &n));
  const char *str = NULL;
  size_t len = 0;
  CHECK_OK(recur_result_string(rt, 1, &str, &len));
  CHECK(len == 11 && memcmp(str, "hello world", 11) == 0);
  CHECK_OK(recur_result_integer(rt, 2, &iv));
  CHECK(iv == 5);
  /* a string with an embedded zero */
  recur_value z = {.type = RECUR_STRING, .as.string = {"a\0b", 3}};
  CHECK_OK(recur_call(rt, "greet", 1, &z, &n));
  CHECK_OK(recur_result_string(rt, 1, &str, &len));
  CHECK(len == 9 && memcmp(str, "hello a\0b", 9) == 0);

  recur_value k[] = {RECUR_NUM(1), RECUR_INT(1), RECUR_BOOL(1), RECUR_NILV, RECUR_STR("")};
  CHECK_OK(recur_call(rt, "kinds", 5, k, &n));
  CHECK_OK(recur_result_string(rt, 1, &str, &len));
  CHECK(strcmp(str, "float,integer,boolean,nil,string") == 0);

  CHECK_OK(recur_call(rt, "many", 0, NULL, &n));
  CHECK(n == 6);
  int ty = -1, b = 0;
  CHECK_OK(recur_result_type(rt, 1, &ty));
  CHECK(ty == RECUR_INTEGER);
  CHECK_OK(recur_result_type(rt, 2, &ty));
  CHECK(ty == RECUR_NUMBER);
  CHECK_OK(recur_result_type(rt, 3, &ty));
  CHECK(ty == RECUR_BOOLEAN);
  CHECK_OK(recur_result_boolean(rt, 3, &b));
  CHECK(b == 1);
  CHECK_OK(recur_result_type(rt, 5, &ty));
  CHECK(ty == RECUR_NIL);
  CHECK_OK(recur_result_type(rt, 6, &ty));
  CHECK(ty == RECUR_OTHER);
  CHECK_ERR(recur_result_string(rt, 1, &str, &len), RECUR_ERR_TYPE, "result 1 is a number");
  CHECK_ERR(recur_result_integer(rt, 2, &iv), RECUR_ERR_TYPE, "not an integer");
  CHECK_ERR(recur_result_number(rt, 7, &(double){0}), RECUR_ERR_NOT_FOUND,
            "result 7 does not exist (6 results)");
  CHECK_ERR(recur_result_number(rt, 0, &(double){0}), RECUR_ERR_NOT_FOUND, "result 0");

  /* globals, modules */
  recur_value g = RECUR_NUM(7);
  CHECK_OK(recur_set_global(rt, "SEVEN", &g));
  CHECK_OK(recur_run_string(rt, "cfg = {} return SEVEN * 2", NULL));
  CHECK_NEAR(result_num(rt, 1), 14, 0);
  CHECK_OK(recur_set_global(rt, "cfg.depth", &g));
  CHECK_OK(recur_run_string(rt, "return cfg.depth", NULL));
  CHECK_NEAR(result_num(rt, 1), 7, 0);
  CHECK_ERR(recur_set_global(rt, "nothere.x", &g), RECUR_ERR_NOT_FOUND, "'nothere' not found");
  const char *mod = "local M = {} function M.twice(x) return 2 * x end return M";
  CHECK_OK(recur_add_module(rt, "mymod", mod, strlen(mod)));
  CHECK_OK(recur_run_string(rt, "return require('mymod').twice(21)", NULL));
  CHECK_NEAR(result_num(rt, 1), 42, 0);
  CHECK_ERR(recur_add_module(rt, "bad", "return +", 8), RECUR_ERR_SYNTAX, "unexpected symbol");

  const char *name = NULL;
  CHECK(recur_status_string(RECUR_ERR_BUDGET, &name) == RECUR_OK);
  CHECK(strcmp(name, "RECUR_ERR_BUDGET") == 0);
  CHECK(recur_status_string(99, &name) == RECUR_ERR_ARGUMENT);
  CHECK(recur_free(rt) == RECUR_OK);
  CHECK(recur_free(NULL) == RECUR_OK);
}

static void test_refs(void) {
  recur_runtime *rt = NULL;
  CHECK(recur_new(NULL, &rt) == RECUR_OK);
  CHECK_OK(recur_run_string(rt,
                            "local M = {n = 0}\n"
                            "function M.bump(k) M.n = M.n + k return M.n end\n"
                            "function M.get() return M end\n"
                            "model = M return M",
                            "=refs"));
  recur_ref m = {0}, bump = {0};
  CHECK_OK(recur_result_ref(rt, 1, &m));
  CHECK(m.id > 0);
  CHECK_OK(recur_ref_global(rt, "model.bump", &bump));
  recur_value one = RECUR_INT(1);
  int n = 0;
  for (int i = 0; i < 5; i++) CHECK_OK(recur_call_ref(rt, bump, 1, &one, &n));
  CHECK_NEAR(result_num(rt, 1), 5, 0);
  /* a reference passed back in: the same table */
  recur_value mv = RECUR_REFV(m);
  CHECK_OK(recur_run_string(rt, "function same(x) return x == model end", NULL));
  CHECK_OK(recur_call(rt, "same", 1, &mv, &n));
  int b = 0;
  CHECK_OK(recur_result_boolean(rt, 1, &b));
  CHECK(b == 1);
  /* calling a table (not callable) by reference */
  CHECK_ERR(recur_call_ref(rt, m, 0, NULL, &n), RECUR_ERR_TYPE, "is a table, not a function");
  CHECK_OK(recur_ref_free(rt, m));
  CHECK_ERR(recur_call_ref(rt, m, 0, NULL, &n), RECUR_ERR_ARGUMENT, "invalid or freed reference");
  recur_ref bad = {12345};
  CHECK_ERR(recur_call_ref(rt, bad, 0, NULL, &n), RECUR_ERR_ARGUMENT, "invalid or freed");
  CHECK_ERR(recur_ref_global(rt, "model.nothing", &bad), RECUR_ERR_NOT_FOUND, "not found");
  CHECK_OK(recur_ref_free(rt, bump));
  CHECK_OK(recur_run_string(rt, "return 5, nil, 'text'", NULL));
  CHECK_ERR(recur_result_ref(rt, 1, &bad), RECUR_ERR_TYPE, "needs an object, not a number");
  CHECK_ERR(recur_result_ref(rt, 2, &bad), RECUR_ERR_TYPE, "not a nil");
  recur_ref text = {0};
  CHECK_OK(recur_result_ref(rt, 3, &text));
  recur_value tv = RECUR_REFV(text);
  CHECK_OK(recur_run_string(rt, "function len(s) return #s end", NULL));
  CHECK_OK(recur_call(rt, "len", 1, &tv, &n));
  CHECK_NEAR(result_num(rt, 1), 4, 0);
  CHECK_OK(recur_ref_free(rt, text));
  CHECK_ERR(recur_ref_global(rt, "math.pi", &bad), RECUR_ERR_TYPE, "not a number");
  recur_free(rt);
}

static void test_errors(void) {
  recur_runtime *rt = NULL;
  CHECK(recur_new(NULL, &rt) == RECUR_OK);
  CHECK_ERR(recur_run_string(rt, "x = = 1", "=bad"), RECUR_ERR_SYNTAX, "bad:1:");
  CHECK_ERR(recur_run_string(rt,
                             "local function inner() error('boom') end\n"
                             "function outer() inner() end",
                             "@script.lua"),
            RECUR_OK, "");
  int n = 0;
  CHECK_ERR(recur_call(rt, "outer", 0, NULL, &n), RECUR_ERR_SCRIPT, "script.lua:1: boom");
  CHECK(strstr(last(rt), "stack traceback:") != NULL);
  CHECK(strstr(last(rt), "in function 'outer'") != NULL);
  CHECK(n == 0);
  CHECK_ERR(recur_call(rt, "nothing", 0, NULL, &n), RECUR_ERR_NOT_FOUND, "'nothing' not found");
  CHECK_ERR(recur_call(rt, "math.nothing", 0, NULL, &n), RECUR_ERR_NOT_FOUND,
            "'math.nothing' not found");
  CHECK_ERR(recur_call(rt, "math.pi.x", 0, NULL, &n), RECUR_ERR_NOT_FOUND, "is number");
  CHECK_ERR(recur_call(rt, "math..x", 0, NULL, &n), RECUR_ERR_ARGUMENT, "bad name");
  CHECK_ERR(recur_call(rt, "math.pi", 0, NULL, &n), RECUR_ERR_TYPE, "is a number, not a function");
  CHECK_ERR(recur_run_file(rt, "/nonexistent/file.lua"), RECUR_ERR_FILE, "cannot open");
  /* error objects that are not strings */
  CHECK_ERR(recur_run_string(rt, "error({code = 1})", NULL), RECUR_ERR_SCRIPT,
            "(error object is a table value)");
  CHECK_ERR(recur_run_string(
                rt, "error(setmetatable({}, {__tostring = function() return 'mine' end}))", NULL),
            RECUR_ERR_SCRIPT, "mine");
  /* bad host arguments */
  float x[4] = {0};
  recur_value t9 = {.type = RECUR_TENSOR, .as.tensor = {.data = x, .ndim = 9}};
  CHECK_OK(recur_run_string(rt, "function id(...) return ... end", NULL));
  CHECK_ERR(recur_call(rt, "id", 1, &t9, &n), RECUR_ERR_ARGUMENT, "ndim 9 is out of range");
  recur_value neg = RECUR_ARRAY(x, 1, -1);
  CHECK_ERR(recur_call(rt, "id", 1, &neg, &n), RECUR_ERR_ARGUMENT, "is negative");
  recur_value nul = RECUR_ARRAY(NULL, 1, 4);
  CHECK_ERR(recur_call(rt, "id", 1, &nul, &n), RECUR_ERR_ARGUMENT, "tensor data is NULL");
  recur_value odd = {.type = 77};
  CHECK_ERR(recur_call(rt, "id", 1, &odd, &n), RECUR_ERR_ARGUMENT, "unknown type 77");
  CHECK_ERR(recur_call(rt, "id", RECUR_MAX_ARGS + 1, &odd, &n), RECUR_ERR_ARGUMENT, "out of range");
  CHECK_ERR(recur_call(rt, "id", 1, NULL, &n), RECUR_ERR_ARGUMENT, "args is NULL");
  CHECK(recur_call(NULL, "id", 0, NULL, &n) == RECUR_ERR_ARGUMENT);
  CHECK_ERR(recur_call(rt, NULL, 0, NULL, &n), RECUR_ERR_ARGUMENT, "name is NULL");
  /* the runtime is still fine */
  recur_value v = RECUR_INT(3);
  CHECK_OK(recur_call(rt, "id", 1, &v, &n));
  CHECK(n == 1);
  /* no checkpoint loader in this build, or a clear error from it */
  int rc = recur_load_checkpoint(rt, "/nonexistent.safetensors", &n);
  CHECK(rc == RECUR_ERR_UNSUPPORTED || rc == RECUR_ERR_SCRIPT || rc == RECUR_ERR_FILE);
  CHECK(strlen(last(rt)) > 0);
  recur_free(rt);
}

static void test_tensors(void) {
  recur_runtime *rt = NULL;
  CHECK(recur_new(NULL, &rt) == RECUR_OK);
  CHECK_OK(recur_run_string(rt,
                            "function scale(x, k) return x * k end\n"
                            "function fill(out, v) out:fill_(v) return out:sum():item() end\n"
                            "function keep(x) KEPT = x VIEW = x:view(-1) return x end\n"
                            "function use_kept() return VIEW:sum():item() end\n"
                            "function use_closed() return KEPT:sum() end\n"
                            "function shape(x) return x:dim(), x:numel() end",
                            "=tensors"));
  float x[6] = {1, 2, 3, 4, 5, 6};
  recur_value args[] = {RECUR_ARRAY(x, 2, 2, 3), RECUR_NUM(10)};
  int n = 0;
  CHECK_OK(recur_call(rt, "scale", 2, args, &n));
  int ndim = 0;
  int64_t shape[RECUR_MAX_DIM] = {0};
  CHECK_OK(recur_result_shape(rt, 1, &ndim, shape));
  CHECK(ndim == 2 && shape[0] == 2 && shape[1] == 3);
  float out[6] = {0};
  CHECK_OK(recur_result_tensor(rt, 1, out, 6, NULL, NULL));
  for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], 10 * (i + 1), 0);
  CHECK_ERR(recur_result_tensor(rt, 1, out, 5, NULL, NULL), RECUR_ERR_ARGUMENT,
            "result tensor has 6 elements, the buffer holds 5");
  CHECK_ERR(recur_result_tensor(rt, 2, out, 6, NULL, NULL), RECUR_ERR_NOT_FOUND, "result 2");
  int ty = 0;
  CHECK_OK(recur_result_type(rt, 1, &ty));
  CHECK(ty == RECUR_TENSOR);

  /* lent memory is the host's: a write in the script lands in it (an output buffer) */
  float buf[4] = {0};
  recur_value o[] = {RECUR_ARRAY(buf, 1, 4), RECUR_NUM(2.5)};
  CHECK_OK(recur_call(rt, "fill", 2, o, &n));
  CHECK_NEAR(result_num(rt, 1), 10, 0);
  for (int i = 0; i < 4; i++) CHECK_NEAR(buf[i], 2.5, 0);
  /* with RECUR_COPY it is not */
  o[0].as.tensor.flags = RECUR_COPY;
  o[1] = RECUR_NUM(9);
  CHECK_OK(recur_call(rt, "fill", 2, o, &n));
  CHECK_NEAR(result_num(rt, 1), 36, 0);
  for (int i = 0; i < 4; i++) CHECK_NEAR(buf[i], 2.5, 0);

  /* a script that keeps the lent tensor: the tensor is closed, a view keeps a copy, and the
   * returned tensor is the runtime's own */
  float h[3] = {1, 2, 3};
  recur_value hv = RECUR_ARRAY(h, 1, 3);
  CHECK_OK(recur_call(rt, "keep", 1, &hv, &n));
  h[0] = 100, h[1] = 200, h[2] = 300; /* the host reuses its memory */
  float back[3] = {0};
  CHECK_OK(recur_result_tensor(rt, 1, back, 3, NULL, NULL));
  CHECK(back[0] == 1 && back[1] == 2 && back[2] == 3);
  CHECK_OK(recur_call(rt, "use_kept", 0, NULL, &n));
  CHECK_NEAR(result_num(rt, 1), 6, 0);
  CHECK_ERR(recur_call(rt, "use_closed", 0, NULL, &n), RECUR_ERR_SCRIPT, "closed tensor");

  /* 0-d and empty tensors */
  float sc = 4;
  recur_value s0 = RECUR_ARRAY(&sc, 0, 0);
  CHECK_OK(recur_call(rt, "shape", 1, &s0, &n));
  CHECK_NEAR(result_num(rt, 1), 0, 0);
  CHECK_NEAR(result_num(rt, 2), 1, 0);
  recur_value e0 = RECUR_ARRAY(NULL, 2, 0, 5);
  CHECK_OK(recur_call(rt, "shape", 1, &e0, &n));
  CHECK_NEAR(result_num(rt, 2), 0, 0);

  /* a strided (transposed) result is read back row-major */
  CHECK_OK(recur_run_string(rt, "return recur.tensor{{1, 2, 3}, {4, 5, 6}}:t()", NULL));
  float tr[6];
  int64_t ts[RECUR_MAX_DIM];
  CHECK_OK(recur_result_tensor(rt, 1, tr, 6, &ndim, ts));
  CHECK(ndim == 2 && ts[0] == 3 && ts[1] == 2);
  float want[6] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; i++) CHECK(tr[i] == want[i]);
  CHECK_ERR(recur_run_string(rt, "return 1", NULL), RECUR_OK, "");
  CHECK_ERR(recur_result_tensor(rt, 1, tr, 6, NULL, NULL), RECUR_ERR_TYPE,
            "result is a number, not a tensor");
  recur_free(rt);
}

static void test_memory_limit(void) {
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = 8u << 20;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  recur_stats st0;
  CHECK_OK(recur_collect(rt));
  CHECK_OK(recur_get_stats(rt, &st0));
  CHECK(st0.memory_limit == 8u << 20);
  CHECK(st0.lua_bytes > 0 && st0.lua_bytes < 1u << 20);
  /* tensors and Lua's heap count together */
  CHECK_ERR(recur_run_string(rt, "big = recur.zeros(3 * 1024 * 1024)", NULL), RECUR_ERR_MEMORY,
            "memory limit exceeded");
  CHECK_ERR(recur_run_string(rt, "local s = 'x' for i = 1, 30 do s = s .. s end", NULL),
            RECUR_ERR_MEMORY, "memory limit exceeded");
  CHECK_ERR(recur_run_string(rt,
                             "a = recur.zeros(1024 * 1024)\n" /* 4 MB of tensor */
                             "local t = {} for i = 1, 1e6 do t[i] = i end",
                             NULL),
            RECUR_ERR_MEMORY, "memory limit exceeded");
  CHECK_OK(recur_run_string(rt, "a = nil", NULL));
  /* a script sees the error and may carry on */
  CHECK_OK(recur_run_string(rt,
                            "local ok, e = pcall(function() local s = ('x'):rep(1e8) end)\n"
                            "local ok2, e2 = pcall(recur.zeros, 1e8)\n"
                            "return ok, e, ok2, e2",
                            NULL));
  int b = 1;
  const char *s = NULL;
  size_t len;
  CHECK_OK(recur_result_boolean(rt, 1, &b));
  CHECK(b == 0);
  CHECK_OK(recur_result_string(rt, 2, &s, &len));
  CHECK(strcmp(s, "memory limit exceeded") == 0);
  CHECK_OK(recur_result_string(rt, 4, &s, &len));
  CHECK(strstr(s, "memory limit exceeded") != NULL);
  /* garbage tensors are collected before the limit is reached */
  CHECK_OK(recur_run_string(rt, "for i = 1, 200 do local t = recur.zeros(256 * 1024) end", NULL));
  /* and everything is returned */
  recur_stats st1;
  CHECK_OK(recur_run_string(rt, "return 1", NULL));
  CHECK_OK(recur_collect(rt));
  CHECK_OK(recur_get_stats(rt, &st1));
  CHECK(st1.tensor_bytes == st0.tensor_bytes);
  CHECK(st1.lua_bytes < st0.lua_bytes + 64 * 1024);
  recur_free(rt);
  /* a limit too small for the runtime itself */
  o.memory_limit = 10000;
  CHECK(recur_new(&o, &rt) == RECUR_ERR_MEMORY);
  CHECK(rt == NULL);
}

/* A lent array the script keeps is copied when the call ends: the copy must fit in the limit
 * (it was made past it, by about the array's size, with no error). */
static void test_lent_kept_limit(void) {
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = 4u << 20;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (!rt) return;
  CHECK_OK(
      recur_run_string(rt,
                       "function keep(x)\n"
                       "  KEPT = x:narrow(1, 1, x:size(1))\n" /* a view: the runtime copies it */
                       "  FILL = {}\n" /* then fill the memory up to the limit */
                       "  pcall(function() while true do FILL[#FILL + 1] = recur.zeros(1024) "
                       "end end)\n"
                       "end",
                       NULL));
  enum { N = 256 * 1024 }; /* 1 MB */
  float *x = malloc(N * sizeof *x);
  CHECK(x != NULL);
  if (!x) return;
  for (int i = 0; i < N; i++) x[i] = (float)(i % 7);
  recur_value arg = RECUR_ARRAY(x, 1, N);
  int n = 0;
  int rc = recur_call(rt, "keep", 1, &arg, &n);
  recur_stats st;
  CHECK_OK(recur_get_stats(rt, &st));
  if (st.lua_bytes + st.tensor_bytes > st.memory_limit)
    fprintf(stderr, "lent array kept: %zu bytes in use, limit %zu (status %d)\n",
            st.lua_bytes + st.tensor_bytes, st.memory_limit, rc);
  CHECK(st.lua_bytes + st.tensor_bytes <= st.memory_limit);
  CHECK(rc == RECUR_OK || rc == RECUR_ERR_MEMORY);
  /* the kept copy is intact and the host's array is free again */
  for (int i = 0; i < N; i++) x[i] = -1;
  CHECK_OK(recur_run_string(rt, "FILL = nil return KEPT:sum():item(), KEPT:size(1)", NULL));
  double sum = 0;
  for (int i = 0; i < N; i++) sum += i % 7;
  CHECK(result_num(rt, 1) == sum && result_num(rt, 2) == N);
  CHECK_OK(recur_run_string(rt, "KEPT = nil", NULL));
  /* an array larger than the limit cannot be lent */
  free(x);
  enum { M = 2 * 1024 * 1024 }; /* 8 MB */
  x = calloc(M, sizeof *x);
  CHECK(x != NULL);
  if (!x) return;
  CHECK_OK(recur_run_string(rt, "function size(t) return t:size(1) end", NULL));
  recur_value big = RECUR_ARRAY(x, 1, M);
  CHECK_ERR(recur_call(rt, "size", 1, &big, &n), RECUR_ERR_MEMORY, "lent array");
  big.as.tensor.ndim = 1;
  big.as.tensor.shape[0] = N; /* a part of it fits */
  CHECK_OK(recur_call(rt, "size", 1, &big, &n));
  CHECK(result_num(rt, 1) == N);
  CHECK_OK(recur_collect(rt));
  CHECK_OK(recur_get_stats(rt, &st));
  CHECK(st.lua_bytes + st.tensor_bytes < 1u << 20);
  free(x);
  recur_free(rt);
}

/* rb_push under memory pressure: the tensor is made, then the userdata allocation fails (a
 * 0-element tensor passes the limit check for its data, its header then fills the last bytes).
 * The heap is filled a little at a time so that some attempts land in that window; every
 * tensor must still be released (tensor bytes back to the start; LSan in `make asan`). */
/* a runtime with a 3 MiB memory limit, collected, or NULL */
static recur_runtime *limited_runtime(void) {
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = 3u << 20;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (rt) CHECK_OK(recur_collect(rt));
  return rt;
}

static void test_oom_push(void) {
  recur_runtime *rt = limited_runtime();
  if (!rt) return;
  recur_stats st0;
  recur_get_stats(rt, &st0);
  CHECK_OK(recur_run_string(
      rt,
      "local x = recur.ones(4)\n"
      "local keep = {} for i = 1, 60000 do keep[i] = false end\n"
      "local function grow(i) keep[i] = {} end\n"
      "local zeros, split, max = recur.zeros, x.split, x.max\n"
      "local window, other, full = 0, 0, 0\n"
      "for i = 1, 60000 do\n" /* nothing here allocates outside pcall */
      "  local ok, e = pcall(zeros, 0)\n"
      "  if not ok then if e == 'memory limit exceeded' then window = window + 1\n"
      "                 else other = other + 1 end end\n"
      "  pcall(split, x, 1)\n"
      "  pcall(max, x, 1)\n"
      "  if not pcall(grow, i) then full = full + 1 if full > 50 then break end end\n"
      "end\n"
      "keep = nil\n"
      "return window, other",
      "=oom"));
  double window = result_num(rt, 1), other = result_num(rt, 2);
  if (window < 1 || getenv("RECUR_VERBOSE"))
    fprintf(stderr, "oom_push: window %g, other %g\n", window, other);
  CHECK(window >= 1); /* the rb_push window was hit */
  CHECK_OK(recur_run_string(rt, "return recur.ones(3):sum():item()", NULL));
  CHECK_NEAR(result_num(rt, 1), 3, 0);
  for (int k = 0; k < 4; k++) CHECK_OK(recur_collect(rt));
  recur_stats st1;
  recur_get_stats(rt, &st1);
  CHECK(st1.tensor_bytes == st0.tensor_bytes);
  recur_free(rt);
}

/* Finalizers at the memory limit: Lua calls a tensor's __gc under a protected call that can
 * need a new call frame; refused by the limit, the finalizer never ran ("error in __gc", a
 * warning) and its tensor leaked for good (bindings/embed.c keeps a reserve while a finalizer
 * is called). Garbage tensors, the heap filled to the limit, then a full collection: without
 * the reserve one tensor of each run leaked, at every call depth. */
static void test_oom_finalizers(void) {
  for (int depth = 0; depth < 3; depth += 2) {
    recur_runtime *rt = limited_runtime();
    if (!rt) return;
    recur_stats st0, st1;
    recur_get_stats(rt, &st0);
    char src[1024];
    snprintf(src, sizeof src,
             "local zeros = recur.zeros\n"
             "local function at_depth(n, f) if n > 0 then return (at_depth(n - 1, f)) end\n"
             "  return f() end\n"
             "local keep, n = {}, 0\n"
             "for k = 1, 100000 do keep[k] = false end\n"
             "local function add() n = n + 1 keep[n] = {} end\n"
             "local function trash() for i = 1, 50 do zeros(1) end end\n"
             "local function round()\n"
             "  pcall(trash)\n"            /* garbage whose finalizers are due */
             "  while pcall(add) do end\n" /* the heap full */
             "  pcall(collectgarbage)\n"
             "  for k = 1, 200 do keep[n] = false n = n - 1 end\n"
             "end\n"
             "at_depth(%d, function() for r = 1, 20 do round() end end)\n"
             "keep = nil\n",
             depth);
    CHECK_OK(recur_run_string(rt, src, "=oom_finalizers"));
    for (int k = 0; k < 4; k++) CHECK_OK(recur_collect(rt));
    recur_get_stats(rt, &st1);
    if (st1.tensor_bytes != st0.tensor_bytes || getenv("RECUR_VERBOSE"))
      fprintf(stderr, "oom_finalizers depth %d: tensor bytes %zu -> %zu\n", depth, st0.tensor_bytes,
              st1.tensor_bytes);
    CHECK(st1.tensor_bytes == st0.tensor_bytes);
    recur_free(rt);
  }
}

static void test_budget(void) {
  recur_options o;
  recur_options_init(&o);
  o.instruction_budget = 200000;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  CHECK_OK(
      recur_run_string(rt,
                       "function spin() while true do end end\n"
                       "function count(n) local s = 0 for i = 1, n do s = s + i end return s end",
                       NULL));
  int n = 0;
  CHECK_ERR(recur_call(rt, "spin", 0, NULL, &n), RECUR_ERR_BUDGET, "instruction budget exceeded");
  recur_stats st;
  CHECK_OK(recur_get_stats(rt, &st));
  CHECK(st.last_work > 200000 && st.last_work < 200000 + 2000);
  recur_value v = RECUR_INT(1000);
  CHECK_OK(recur_call(rt, "count", 1, &v, &n)); /* the next call starts afresh */
  CHECK_NEAR(result_num(rt, 1), 500500, 0);
  CHECK_OK(recur_get_stats(rt, &st));
  CHECK(st.last_work >= 1000 && st.last_work < 20000);
  v = RECUR_INT(1000000);
  CHECK_ERR(recur_call(rt, "count", 1, &v, &n), RECUR_ERR_BUDGET, "instruction budget exceeded");
  CHECK_OK(recur_set_budget(rt, 0));
  CHECK_OK(recur_call(rt, "count", 1, &v, &n));
  CHECK_NEAR(result_num(rt, 1), 500000500000.0, 0);
  /* a coroutine made while there is no budget still counts once there is one */
  CHECK_OK(recur_run_string(
      rt, "co = coroutine.wrap(function() coroutine.yield() while true do end end) co()", NULL));
  CHECK_OK(recur_set_budget(rt, 100000));
  CHECK_ERR(recur_run_string(rt, "co()", NULL), RECUR_ERR_BUDGET, "instruction budget exceeded");
  CHECK_OK(recur_set_budget(rt, 0));
  /* tensor work counts: one matmul of 512^3 multiply-adds is 2M units */
  CHECK_OK(recur_set_budget(rt, 1000000));
  CHECK_ERR(recur_run_string(rt, "local a = recur.ones(512, 512) return recur.matmul(a, a)", NULL),
            RECUR_ERR_BUDGET, "matmul: instruction budget exceeded");
  CHECK_OK(recur_run_string(rt, "local a = recur.ones(64, 64) return recur.matmul(a, a)", NULL));
  recur_free(rt);
}

/* The time limit: a second line behind the budget, checked by the same hook. No time is
 * asserted: each script below runs forever unless the limit stops it. */
static void test_time_limit(void) {
  recur_options o;
  recur_options_init(&o);
  CHECK(o.time_limit_ms == 0);
  o.time_limit_ms = 50; /* and no instruction budget */
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (!rt) return;
  CHECK_ERR(recur_run_string(rt, "while true do end", NULL), RECUR_ERR_BUDGET,
            "time limit exceeded (50 ms per call)");
  CHECK_OK(recur_run_string(rt, "return 1", NULL)); /* the next call has its own time */
  CHECK_ERR(recur_run_string(rt, "while true do pcall(function() while true do end end) end", NULL),
            RECUR_ERR_BUDGET, "time limit exceeded");
  CHECK_ERR(recur_run_string(rt,
                             "coroutine.wrap(function()\n"
                             "  local x <close> = setmetatable({}, {__close = function()\n"
                             "    while true do end end})\n"
                             "  while true do end\n"
                             "end)()",
                             NULL),
            RECUR_ERR_BUDGET, "time limit exceeded");
  CHECK_OK(recur_run_string(rt, "function spin() while true do end end", NULL));
  int n = 0;
  CHECK_ERR(recur_call(rt, "spin", 0, NULL, &n), RECUR_ERR_BUDGET, "time limit exceeded");
  recur_free(rt);
}

/* print goes to the host's callback, charged to the budget and capped per call. */
typedef struct {
  size_t bytes, calls;
  char head[256], tail[256];
} output_log;

static void log_output(void *ud, const char *text, size_t len) {
  output_log *g = ud;
  if (g->bytes < sizeof g->head - 1) {
    size_t k = len < sizeof g->head - 1 - g->bytes ? len : sizeof g->head - 1 - g->bytes;
    memcpy(g->head + g->bytes, text, k);
  }
  size_t k = len < sizeof g->tail - 1 ? len : sizeof g->tail - 1;
  memcpy(g->tail, text + len - k, k);
  g->tail[k] = 0;
  g->bytes += len;
  g->calls++;
}

static void test_output(void) {
  output_log log = {0};
  recur_options o;
  recur_options_init(&o);
  CHECK(o.output == NULL && o.output_limit == 65536);
  o.output = log_output;
  o.output_ud = &log;
  o.output_limit = 0; /* the budget alone */
  o.instruction_budget = 10000;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (!rt) return;
  CHECK_OK(recur_run_string(rt, "print('a', 1, nil, true)", NULL));
  CHECK(log.bytes == 13 && strcmp(log.head, "a\t1\tnil\ttrue\n") == 0);
  log = (output_log){0};
  /* the attack wrote 1.5 GB with 10,000 units: now one unit per 16 bytes (a short line:
   * making a long string is charged too, and would spend the budget before any print) */
  CHECK_ERR(recur_run_string(rt, "local s = ('x'):rep(1000) while true do print(s) end", NULL),
            RECUR_ERR_BUDGET, "budget exceeded");
  if (log.bytes > 16 * 10000) fprintf(stderr, "print wrote %zu bytes\n", log.bytes);
  CHECK(log.bytes > 0 && log.bytes <= 16 * 10000);
  log = (output_log){0};
  CHECK_ERR(recur_run_string(rt, "while true do print('') end", NULL), RECUR_ERR_BUDGET,
            "budget exceeded");
  CHECK(log.bytes > 0 && log.bytes <= 10000);
  recur_free(rt);
  /* the cap: the rest of the call's output is dropped after one note */
  log = (output_log){0};
  o.instruction_budget = 0;
  o.output_limit = 1000;
  rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (!rt) return;
  CHECK_OK(recur_run_string(rt, "for i = 1, 1000 do print(('y'):rep(99)) end", NULL));
  CHECK(log.bytes > 1000 && log.bytes < 1100);
  CHECK(strstr(log.tail, "print output past 1000 bytes in one call is dropped") != NULL);
  log = (output_log){0};
  CHECK_OK(recur_run_string(rt, "print('next call')", NULL)); /* a new call, a new allowance */
  CHECK(strcmp(log.head, "next call\n") == 0);
  /* __tostring runs under the budget */
  CHECK_OK(recur_set_budget(rt, 100000));
  CHECK_ERR(
      recur_run_string(
          rt, "print(setmetatable({}, {__tostring = function() while true do end end}))", NULL),
      RECUR_ERR_BUDGET, "budget exceeded");
  recur_free(rt);
}

/* ---- two runtimes ---- */

static const char *lstm_script =
    "recur.seed(SEED)\n"
    "local H = 16\n"
    "local W = recur.randn(H, 4 * H) * 0.1\n"
    "local U = recur.randn(H, 4 * H) * 0.1\n"
    "local h, c = recur.zeros(1, H), recur.zeros(1, H)\n"
    "function step(x)\n"
    "  local g = recur.matmul(x, W) + recur.matmul(h, U)\n"
    "  local i, f, o, j = g:narrow(2, 1, H):sigmoid(), g:narrow(2, H + 1, H):sigmoid(),\n"
    "                     g:narrow(2, 2 * H + 1, H):sigmoid(), g:narrow(2, 3 * H + 1, H):tanh()\n"
    "  c = c * f + i * j\n"
    "  h = o * c:tanh()\n"
    "  return h\n"
    "end\n";

typedef struct {
  int seed;
  int steps;
  double sum;
  int ok;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  recur_runtime *rt = NULL;
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = 32u << 20;
  o.instruction_budget = 50000000;
  a->ok = 0;
  if (recur_new(&o, &rt) != RECUR_OK) return NULL;
  recur_value seed = RECUR_INT(a->seed);
  if (recur_set_global(rt, "SEED", &seed) || recur_run_string(rt, lstm_script, "=lstm")) {
    recur_free(rt);
    return NULL;
  }
  float x[16];
  float h[16];
  a->sum = 0;
  a->ok = 1;
  for (int t = 0; t < a->steps; t++) {
    for (int k = 0; k < 16; k++) x[k] = (float)((t * 7 + k * 3) % 11) / 11.0f - 0.5f;
    recur_value arg = RECUR_ARRAY(x, 2, 1, 16);
    int n;
    if (recur_call(rt, "step", 1, &arg, &n) || recur_result_tensor(rt, 1, h, 16, NULL, NULL)) {
      a->ok = 0;
      break;
    }
    for (int k = 0; k < 16; k++) a->sum += h[k] * (k + 1);
  }
  recur_free(rt);
  return NULL;
}

static void test_two_runtimes(void) {
  /* one process: state is separate */
  recur_runtime *a = NULL, *b = NULL;
  CHECK(recur_new(NULL, &a) == RECUR_OK && recur_new(NULL, &b) == RECUR_OK);
  recur_runtime *rt = a;
  CHECK_OK(recur_run_string(a, "x = 1 recur.seed(7) r = recur.rand(3):sum():item()", NULL));
  rt = b;
  CHECK_OK(recur_run_string(b, "return x", NULL));
  int ty = -1;
  CHECK_OK(recur_result_type(b, 1, &ty));
  CHECK(ty == RECUR_NIL);
  CHECK_OK(
      recur_run_string(b, "recur.rand(100) recur.seed(7) return recur.rand(3):sum():item()", NULL));
  double rb = result_num(b, 1);
  rt = a;
  CHECK_OK(recur_run_string(a, "return r", NULL));
  CHECK_NEAR(result_num(a, 1), rb, 0);
  /* no-grad mode in one does not leak into the other */
  CHECK_OK(recur_run_string(a, "recur.set_grad_enabled(false)", NULL));
  rt = b;
  CHECK_OK(recur_run_string(b, "return recur.is_grad_enabled()", NULL));
  int en = 0;
  CHECK_OK(recur_result_boolean(b, 1, &en));
  CHECK(en == 1);
  recur_free(a);
  recur_free(b);

  /* two threads, each with its own runtime, give the numbers of a lone run */
  worker_arg solo[2] = {{1, 200, 0, 0}, {2, 200, 0, 0}};
  worker(&solo[0]);
  worker(&solo[1]);
  CHECK(solo[0].ok && solo[1].ok);
  CHECK(solo[0].sum != solo[1].sum);
  worker_arg par[2] = {{1, 200, 0, 0}, {2, 200, 0, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, worker, &par[i]) == 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    CHECK(par[i].ok);
    CHECK(par[i].sum == solo[i].sum);
  }
}

static void test_no_sandbox(void) {
  recur_options o;
  recur_options_init(&o);
  o.sandbox = 0;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  CHECK_OK(recur_run_string(
      rt, "return type(io), type(os.getenv), type(debug), type(recur.threads)", NULL));
  const char *s;
  size_t len;
  CHECK_OK(recur_result_string(rt, 1, &s, &len));
  CHECK(strcmp(s, "table") == 0);
  CHECK_OK(recur_result_string(rt, 2, &s, &len));
  CHECK(strcmp(s, "function") == 0);
  recur_free(rt);
}

static void test_module_path(void) {
  char dir[] = "/tmp/recur_embed_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0);
    return;
  }
  char file[256];
  snprintf(file, sizeof file, "%s/helper.lua", dir);
  FILE *f = fopen(file, "w");
  fputs("return {answer = 42}\n", f);
  fclose(f);
  char path[300];
  snprintf(path, sizeof path, "%s/?.lua", dir);
  recur_options o;
  recur_options_init(&o);
  o.module_path = path;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  CHECK_OK(recur_run_string(rt, "return require('helper').answer", NULL));
  CHECK_NEAR(result_num(rt, 1), 42, 0);
  CHECK_ERR(recur_run_string(rt, "return require('missing')", NULL), RECUR_ERR_SCRIPT,
            "module 'missing' not found");
  CHECK(strstr(last(rt), "missing.lua") != NULL);
  /* the recur program's file: run_file is the host's own */
  CHECK_OK(recur_run_file(rt, file));
  recur_free(rt);
  remove(file);
  rmdir(dir);
}

/* The sandbox's string.find/match/gmatch/gsub (bindings/sandbox_str.c) against Lua's own: the
 * same script in a sandboxed and an unsandboxed runtime must print the same thing, errors
 * included. */
static const char *pattern_script =
    "local out = {}\n"
    "local function put(...) local t = table.pack(...) for i = 1, t.n do\n"
    "  out[#out + 1] = tostring(t[i]) end out[#out + 1] = '|' end\n"
    "local function try(f, ...) local r = table.pack(pcall(f, ...))\n"
    "  if r[1] then put(table.unpack(r, 2, r.n)) else put('ERR', (r[2]:gsub('^[^:]*:%d+: ', ''))) "
    "end end\n"
    "local subjects = {'', 'hello world', 'THE (quick) fox', 'a,b,,c', '  x = 10, y = 20  ',\n"
    "  'f(a(b)c)d', 'aaa', '\\0a\\0b', 'THE END', 'key=val; k2=v2', 'caf\\xc3\\xa9'}\n"
    "local patterns = {'', '.', 'o', 'l+', 'l*', 'l-', 'lo?', '^h', 'd$', '^$', '%a+', '%A+',\n"
    "  '%d+', '%s', '%S+', '%w+', '%W', '%p', '%u+', '%l+', '%x+', '%c', '%g+', '[aeiou]',\n"
    "  '[^aeiou ]+', '[a-f]+', '[%a_][%w_]*', '(%w+)=(%w+)', '(%w+)%s*=%s*(%d+)', '()o()',\n"
    "  '%b()', '%f[%a]%a+', '%f[%A]', '(a)(a)', '(a*(.))%2', '(.)%1', '[]]', '[^]]', '[a-]',\n"
    "  '%.', 'x*$', '.-b', '(h)(e)(l)(l)(o)', '\\0', '%z', '[%]]', '%', '[a', '(()', '%b', '%f',\n"
    "  '(%1)', ')', '%g', 'a?a?a?aaa', '.-$', '^(.-)%s*$'}\n"
    "for _, s in ipairs(subjects) do for _, p in ipairs(patterns) do\n"
    "  try(string.find, s, p) try(string.find, s, p, 3) try(string.find, s, p, -2)\n"
    "  try(string.find, s, p, 1, true) try(string.match, s, p) try(string.match, s, p, 2)\n"
    "  try(function() local r = {} for a, b in s:gmatch(p) do r[#r + 1] = tostring(a) ..\n"
    "    '/' .. tostring(b) if #r > 50 then break end end return table.concat(r, ',') end)\n"
    "  try(string.gsub, s, p, '<%0>') try(string.gsub, s, p, '%1', 2)\n"
    "  try(string.gsub, s, p, {hello = 'HI', o = 0, l = false})\n"
    "  try(string.gsub, s, p, function(a, b) if a == 'l' then return nil end return '[' .. "
    "tostring(a) .. ']' end)\n"
    "end end\n"
    "try(string.gsub, 'abc', '%w', '%2') try(string.gsub, 'abc', '%w', '%x')\n"
    "try(string.gsub, 'abc', '%w', '%') try(string.gsub, 'abc', '(b)', {b = {}})\n"
    "try(string.gsub, 'abc', 'b', true) try(string.gmatch('abc', 'b', 10))\n"
    "try(function() local r = {} for k, v in ('a=1, b=2'):gmatch('(%w+)=(%w+)', 3) do r[#r+1] = k "
    ".. v end return table.concat(r) end)\n"
    "try(string.find, ('a'):rep(300), ('a?'):rep(300) .. ('a'):rep(300))\n"
    "try(string.rep, 'ab', 3, ', ') try(string.rep, '', 5) try(string.rep, 'x', 0)\n"
    "return table.concat(out, ' ')";

static void test_patterns(void) {
  recur_runtime *a = NULL, *b = NULL, *rt;
  recur_options o;
  recur_options_init(&o);
  o.sandbox = 0;
  CHECK(recur_new(&o, &a) == RECUR_OK);
  o.sandbox = 1;
  CHECK(recur_new(&o, &b) == RECUR_OK);
  rt = a;
  CHECK_OK(recur_run_string(a, pattern_script, "=patterns"));
  rt = b;
  CHECK_OK(recur_run_string(b, pattern_script, "=patterns"));
  const char *sa = "", *sb = "";
  size_t la = 0, lb = 0;
  recur_result_string(a, 1, &sa, &la);
  recur_result_string(b, 1, &sb, &lb);
  CHECK(la > 50000);
  CHECK(la == lb && memcmp(sa, sb, la) == 0);
  if (la != lb || memcmp(sa, sb, la) != 0) {
    size_t i = 0;
    while (i < la && i < lb && sa[i] == sb[i]) i++;
    size_t from = i > 200 ? i - 200 : 0;
    fprintf(stderr, "patterns differ at %zu:\n lua:     %.300s\n sandbox: %.300s\n", i, sa + from,
            sb + from);
  }
  recur_free(a);
  recur_free(b);
}

/* A host loads a checkpoint for a sandboxed script: the loader may read exactly that file,
 * the script still cannot read or write any file, during or after the load. */
static void test_checkpoint(void) {
  char path[] = "/tmp/recur_embed_ckXXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  recur_options o;
  recur_options_init(&o);
  o.sandbox = 0;
  recur_runtime *rt = NULL;
  CHECK_OK(recur_new(&o, &rt));
  recur_value p = RECUR_STR(path);
  CHECK_OK(recur_set_global(rt, "PATH", &p));
  CHECK_OK(recur_run_string(rt,
                            "recur.save(PATH, {tensors = {w = recur.tensor{{1, 2, 3}, {4, 5, 6}}}, "
                            "meta = {who = 'host'}})",
                            NULL));
  recur_free(rt);
  rt = NULL;
  o.sandbox = 1;
  CHECK_OK(recur_new(&o, &rt));
  int n = 0;
  CHECK_OK(recur_load_checkpoint(rt, path, &n));
  CHECK(n == 1);
  recur_ref ck = {0};
  CHECK_OK(recur_result_ref(rt, 1, &ck));
  CHECK_OK(recur_run_string(rt, "function weights(ck) return ck.tensors.w, ck.meta.who end", NULL));
  recur_value arg = {.type = RECUR_REF, .as.ref = ck};
  CHECK_OK(recur_call(rt, "weights", 1, &arg, &n));
  float buf[6] = {0};
  int ndim = 0;
  int64_t shape[RECUR_MAX_DIM];
  CHECK_OK(recur_result_tensor(rt, 1, buf, 6, &ndim, shape));
  CHECK(ndim == 2 && shape[0] == 2 && shape[1] == 3 && buf[0] == 1 && buf[5] == 6);
  const char *who = NULL;
  size_t len = 0;
  CHECK_OK(recur_result_string(rt, 2, &who, &len));
  CHECK(who && strcmp(who, "host") == 0);
  /* the script cannot reach the file (or any other) itself */
  CHECK_OK(recur_set_global(rt, "PATH", &p));
  CHECK_ERR(recur_run_string(rt, "return recur.load(PATH)", NULL), RECUR_ERR_SCRIPT, "sandbox");
  CHECK_ERR(recur_run_string(rt, "return recur._safetensors.read(PATH)", NULL), RECUR_ERR_SCRIPT,
            "");
  CHECK_ERR(recur_run_string(rt, "return recur._data.load_idx('/etc/passwd')", NULL),
            RECUR_ERR_SCRIPT, "file access is disabled");
  /* a missing file is a clear error, and the runtime goes on */
  CHECK(recur_load_checkpoint(rt, "/nonexistent/x.safetensors", &n) != RECUR_OK);
  CHECK(strstr(last(rt), "nonexistent") != NULL);
  CHECK_OK(recur_run_string(rt, "return 1", NULL));
  recur_ref_free(rt, ck);
  recur_free(rt);
  remove(path);
}

/* Scripts that replace what recur.load's Lua code uses, so as to run inside the host's next
 * checkpoint load (which may read the file): each tries to write a file from there. The host's
 * load must run none of it and still return the checkpoint. */
static const char *const hijacks[] = {
    "local ck = require 'recur.checkpoint' local l = ck.load\n"
    "ck.load = function(p, ...) HIT = true pcall(ck.save, OWN, {tensors = {x = recur.ones(1)}})\n"
    "  return l(p, ...) end",
    "local p = pcall pcall = function(f, ...) HIT = true p(WRITE) return p(f, ...) end",
    "local p = table.pack table.pack = function(...) HIT = true pcall(WRITE) return p(...) end",
    "local u = table.unpack table.unpack = function(...) HIT = true pcall(WRITE) return u(...) end",
    "local j = require 'recur.json' local d = j.decode\n"
    "j.decode = function(...) HIT = true pcall(WRITE) return d(...) end",
    "local r = require require = function(...) HIT = true pcall(WRITE) return r(...) end",
    "getmetatable('').__index = function(s, k) HIT = true pcall(WRITE) return string[k] end",
    "for _, k in ipairs{'match', 'gsub', 'find', 'sub', 'format', 'byte'} do\n"
    "  local f = string[k] string[k] = function(...) HIT = true pcall(WRITE) return f(...) end\n"
    "end",
    "local ST = recur._safetensors local r = ST.read\n"
    "ST.read = function(...) HIT = true pcall(WRITE) return r(...) end",
    "for k, f in pairs(recur.Tensor) do\n"
    "  recur.Tensor[k] = function(...) HIT = true pcall(WRITE) return f(...) end\n"
    "end",
    "for _, k in ipairs{'tostring', 'error', 'type', 'pairs', 'ipairs', 'tonumber', 'select'} do\n"
    "  local f = _G[k] _G[k] = function(...) HIT = true pcall(WRITE) return f(...) end\n"
    "end",
    "local m = math.type math.type = function(...) HIT = true pcall(WRITE) return m(...) end\n"
    "local l = utf8.len utf8.len = function(...) HIT = true pcall(WRITE) return l(...) end",
    "recur.is_tensor = function() HIT = true pcall(WRITE) return true end",
    "local null = require('recur.json').null\n"
    "assert(not pcall(setmetatable, null, {__eq = function() HIT = true pcall(WRITE) end}))",
    "package.loaded['recur.checkpoint'] = {load = function() HIT = true pcall(WRITE) return {} "
    "end}\n"
    "package.loaded['recur.json'] = {decode = function() HIT = true pcall(WRITE) return {} end}\n"
    "package.preload['recur.checkpoint'] = function() HIT = true pcall(WRITE) return {} end",
};

static void test_checkpoint_hijack(void) {
  char path[] = "/tmp/recur_embed_hjXXXXXX", own[64];
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  snprintf(own, sizeof own, "%s.owned", path);
  recur_options o;
  recur_options_init(&o);
  o.sandbox = 0;
  recur_runtime *rt = NULL;
  CHECK_OK(recur_new(&o, &rt));
  recur_value p = RECUR_STR(path), w = RECUR_STR(own);
  CHECK_OK(recur_set_global(rt, "PATH", &p));
  CHECK_OK(recur_run_string(rt,
                            "recur.save(PATH, {tensors = {w = recur.tensor{1, 2, 3}}, "
                            "meta = {who = 'host', list = {1, require('recur.json').null, 3}}})",
                            NULL));
  recur_free(rt);
  o.sandbox = 1;
  for (size_t i = 0; i < sizeof hijacks / sizeof hijacks[0]; i++) {
    rt = NULL;
    CHECK_OK(recur_new(&o, &rt));
    if (!rt) continue;
    CHECK_OK(recur_set_global(rt, "OWN", &w));
    CHECK_OK(recur_run_string(
        rt,
        "local write, ones = recur._safetensors.write, recur.ones\n"
        "function WRITE() write(OWN, {'x'}, {ones(1)}, {}) end\n"
        "local null = require('recur.json').null\n"
        "function check(ck) local clean = HIT == nil\n"
        "  return ck.tensors.w:sum():item(), ck.meta.who, ck.meta.list[2] == null, clean end",
        "=setup"));
    int n = 0;
    /* the loader is compiled on the first load: before the script's changes, or after them */
    if (i % 2) CHECK_OK(recur_load_checkpoint(rt, path, &n));
    CHECK_OK(recur_run_string(rt, hijacks[i], "=hijack"));
    int rc = recur_load_checkpoint(rt, path, &n);
    if (rc != RECUR_OK) fprintf(stderr, "hijack %zu: %s\n", i + 1, last(rt));
    CHECK(rc == RECUR_OK && n == 1);
    FILE *f = fopen(own, "r");
    if (f) fprintf(stderr, "hijack %zu wrote %s\n", i + 1, own);
    CHECK(f == NULL);
    if (f) fclose(f);
    remove(own);
    recur_ref ck = {0};
    if (rc == RECUR_OK) CHECK_OK(recur_result_ref(rt, 1, &ck));
    recur_value arg = RECUR_REFV(ck);
    /* the script's own functions are back in place: check() may run them */
    CHECK_OK(recur_call(rt, "check", 1, &arg, &n));
    int b1 = 0, b2 = 0;
    const char *who = NULL;
    if (n == 4) {
      recur_result_string(rt, 2, &who, NULL);
      recur_result_boolean(rt, 3, &b1);
      recur_result_boolean(rt, 4, &b2);
    }
    if (!(n == 4 && result_num(rt, 1) == 6 && who && strcmp(who, "host") == 0 && b1 && b2))
      fprintf(stderr, "hijack %zu: wrong result or script code ran in the load\n", i + 1);
    CHECK(n == 4 && result_num(rt, 1) == 6 && who && strcmp(who, "host") == 0 && b1 && b2);
    if (ck.id) recur_ref_free(rt, ck);
    /* the script still cannot write itself */
    CHECK_ERR(recur_run_string(rt, "WRITE()", NULL), RECUR_ERR_SCRIPT, "file access is disabled");
    recur_free(rt);
  }
  remove(path);
}

int main(void) {
  alarm(120); /* a net against hangs only */
  test_checkpoint();
  test_checkpoint_hijack();
  test_values();
  test_refs();
  test_errors();
  test_tensors();
  test_memory_limit();
  test_oom_push();
  test_oom_finalizers();
  test_lent_kept_limit();
  test_budget();
  test_time_limit();
  test_output();
  test_two_runtimes();
  test_no_sandbox();
  test_module_path();
  test_patterns();
  return TEST_SUMMARY();
}
