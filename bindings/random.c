/* Lua bindings: random tensors and the generator's seed and state.
 *
 * Every Lua state has its own generator (in its runtime context), seeded with a fixed default
 * seed; recur.seed(n) reseeds it, and the same seed gives the same numbers on every run and
 * every machine.
 *
 * recur.rng_state() returns the generator's state as an opaque Lua string of exactly 48 bytes
 * (binary: a "rng1" header, the four xoshiro256** words and the pending Box-Muller normal,
 * little-endian, so it is portable between machines). Store it as a byte string in a
 * checkpoint; recur.set_rng_state(s) validates it (length, header, flag, padding, non-zero
 * words) and then restores it, so the next draws repeat exactly.
 *
 *   recur.seed(n)                        n an integer (negative ones too)
 *   recur.rand(shape...)                 uniform [0, 1); shape as varargs or one table
 *   recur.randn(shape...)                standard normal
 *   recur.uniform(shape, lo=0, hi=1)     uniform [lo, hi); shape a table or an integer
 *   recur.normal(shape, mean=0, std=1)
 *   recur.truncated_normal(shape, {mean=0, std=1}) or (shape, mean, std): draws more than
 *                                        2 std from the mean are re-drawn (TensorFlow)
 *   recur.bernoulli(p) / p:bernoulli()   p a tensor of probabilities; 0/1 of p's shape
 *   recur.bernoulli(shape, p)            p a number
 *   recur.multinomial(probs, n[, replacement=false]) / probs:multinomial(n[, replacement])
 *                                        probs 1-D or 2-D (one distribution per row, weights
 *                                        need not sum to 1); 1-based indices, [n] or [rows, n]
 *   recur.randperm(n)                    a permutation of 1..n
 *   recur.randint(lo, hi, shape...)      integers in [lo, hi], both included
 * None of these results requires grad. */
#include <string.h>

#include "../runtime/ops.h"
#include "bind.h"

/* A shape given as varargs of integers from idx on, or as one table at idx; nothing else may
 * follow it. */
static int shape_args(lua_State *L, int idx, int64_t *size, const char *fn) {
  int n = rb_check_shape(L, idx, size);
  int used = lua_type(L, idx) == LUA_TTABLE ? 1 : n;
  int top = lua_gettop(L);
  if (top >= idx + used)
    rb_error(L, "%s: argument #%d must be an integer (a size), got %s", fn, idx + used,
             luaL_typename(L, idx + used));
  return n;
}

/* A shape given as one argument: a table of sizes, or an integer for a 1-D shape. */
static int shape_param(lua_State *L, int idx, int64_t *size, const char *fn) {
  if (lua_type(L, idx) == LUA_TTABLE) return rb_check_shape(L, idx, size);
  if (lua_type(L, idx) == LUA_TNUMBER) {
    size[0] = rb_check_int(L, idx);
    if (size[0] < 0)
      rb_error(L, "%s: size %lld of dimension 1 is negative", fn, (long long)size[0]);
    return 1;
  }
  return rb_error(L, "%s: argument #%d must be a shape (a table of sizes or an integer), got %s",
                  fn, idx, luaL_typename(L, idx));
}

static float opt_float(lua_State *L, int idx, float def, const char *fn, const char *what) {
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER)
    rb_error(L, "%s: argument #%d (%s) must be a number, got %s", fn, idx, what,
             luaL_typename(L, idx));
  return (float)lua_tonumber(L, idx);
}

static int f_seed(lua_State *L) {
  int64_t s = rb_check_int(L, 1);
  rc_rng_seed(&rb_ctx(L)->rng, (uint64_t)s);
  return 0;
}

static int f_rng_state(lua_State *L) {
  unsigned char buf[RC_RNG_STATE_BYTES];
  rc_rng_state_get(rb_ctx(L), buf);
  lua_pushlstring(L, (const char *)buf, sizeof buf);
  return 1;
}

static int f_set_rng_state(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return rb_error(L,
                    "set_rng_state: argument #1 must be a string from recur.rng_state(), "
                    "got %s",
                    luaL_typename(L, 1));
  size_t len;
  const char *s = lua_tolstring(L, 1, &len);
  if (rc_rng_state_set(rb_ctx(L), (const unsigned char *)s, len)) return rb_raise(L);
  return 0;
}

/* rc_rand (lo, hi) or rc_randn (mean, std) */
typedef rc_tensor *(*draw_fn)(rc_ctx *c, int ndim, const int64_t *size, float a, float b);

/* rand(shape...) and randn(shape...): the shape as varargs or one table, the standard range */
static int draw_std(lua_State *L, const char *fn, draw_fn draw) {
  int64_t size[RC_MAX_DIM];
  int n = shape_args(L, 1, size, fn);
  return rb_push(L, draw(rb_ctx(L), n, size, 0.0f, 1.0f));
}

/* uniform(shape, lo = 0, hi = 1) and normal(shape, mean = 0, std = 1): a, b name the two */
static int draw_param(lua_State *L, const char *fn, draw_fn draw, const char *a, const char *b) {
  int64_t size[RC_MAX_DIM];
  int n = shape_param(L, 1, size, fn);
  float va = opt_float(L, 2, 0.0f, fn, a);
  float vb = opt_float(L, 3, 1.0f, fn, b);
  return rb_push(L, draw(rb_ctx(L), n, size, va, vb));
}

static int f_rand(lua_State *L) {
  return draw_std(L, "rand", rc_rand);
}
static int f_randn(lua_State *L) {
  return draw_std(L, "randn", rc_randn);
}
static int f_uniform(lua_State *L) {
  return draw_param(L, "uniform", rc_rand, "lo", "hi");
}
static int f_normal(lua_State *L) {
  return draw_param(L, "normal", rc_randn, "mean", "std");
}

/* truncated_normal(shape, {mean=, std=}) or truncated_normal(shape, mean, std) */
static int f_truncated_normal(lua_State *L) {
  const char *fn = "truncated_normal";
  if (lua_type(L, 2) != LUA_TTABLE) return draw_param(L, fn, rc_truncated_normal, "mean", "std");
  int64_t size[RC_MAX_DIM];
  int n = shape_param(L, 1, size, fn);
  float mean = 0.0f, std = 1.0f;
  if (!lua_isnoneornil(L, 3))
    return rb_error(L,
                    "%s: give mean and std either in an options table or as numbers, "
                    "not both",
                    fn);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (!k || (strcmp(k, "mean") != 0 && strcmp(k, "std") != 0))
      return rb_error(L, "%s: unknown option %s (options are mean and std)", fn,
                      k ? k : luaL_typename(L, -2));
    if (lua_type(L, -1) != LUA_TNUMBER)
      return rb_error(L, "%s: option %s must be a number, got %s", fn, k, luaL_typename(L, -1));
    if (k[0] == 'm')
      mean = (float)lua_tonumber(L, -1);
    else
      std = (float)lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  return rb_push(L, rc_truncated_normal(rb_ctx(L), n, size, mean, std));
}

/* bernoulli(p_tensor) / p:bernoulli() / bernoulli(shape, p_number) */
static int f_bernoulli(lua_State *L) {
  if (rb_is_tensor(L, 1)) {
    rc_tensor *p = rb_check(L, 1);
    if (!lua_isnoneornil(L, 2))
      return rb_error(L,
                      "bernoulli: with a tensor of probabilities no second argument is "
                      "taken, got %s",
                      luaL_typename(L, 2));
    return rb_push(L, rc_bernoulli(p));
  }
  if (lua_type(L, 1) != LUA_TTABLE && lua_type(L, 1) != LUA_TNUMBER)
    return rb_error(L,
                    "bernoulli: argument #1 must be a tensor of probabilities or a shape, "
                    "got %s",
                    luaL_typename(L, 1));
  int64_t size[RC_MAX_DIM];
  int n = shape_param(L, 1, size, "bernoulli");
  if (lua_type(L, 2) != LUA_TNUMBER)
    return rb_error(L, "bernoulli: argument #2 (p) must be a number, got %s", luaL_typename(L, 2));
  rc_ctx *c = rb_ctx(L);
  if (rc_check_shape(c, "bernoulli", n, size)) return rb_raise(L);
  rc_tensor *p = rc_full(c, n, size, (float)lua_tonumber(L, 2));
  if (!p) return rb_raise(L);
  rc_tensor *r = rc_bernoulli(p);
  rc_release(p);
  return rb_push(L, r);
}

/* Turns a runtime result of 0-based indices into Lua's 1-based ones. */
static int push_indices(lua_State *L, rc_tensor *r) {
  if (!r) return rb_raise(L);
  if (rc_binary_scalar_(RC_ADD, r, 1.0f)) {
    rc_release(r);
    return rb_raise(L);
  }
  return rb_push(L, r);
}

static int f_multinomial(lua_State *L) {
  rc_tensor *probs = rb_check(L, 1);
  int64_t n = rb_check_int(L, 2);
  int replacement = 0;
  if (!lua_isnoneornil(L, 3)) {
    if (!lua_isboolean(L, 3))
      return rb_error(L, "multinomial: argument #3 (replacement) must be a boolean, got %s",
                      luaL_typename(L, 3));
    replacement = lua_toboolean(L, 3);
  }
  return push_indices(L, rc_multinomial(probs, n, replacement));
}

static int f_randperm(lua_State *L) {
  int64_t n = rb_check_int(L, 1);
  return push_indices(L, rc_randperm(rb_ctx(L), n));
}

static int f_randint(lua_State *L) {
  int64_t lo = rb_check_int(L, 1);
  int64_t hi = rb_check_int(L, 2);
  int64_t size[RC_MAX_DIM];
  int n = shape_args(L, 3, size, "randint");
  return rb_push(L, rc_randint(rb_ctx(L), n, size, lo, hi));
}

static const luaL_Reg methods[] = {
    {"bernoulli", f_bernoulli}, {"multinomial", f_multinomial}, {NULL, NULL}};

static const luaL_Reg functions[] = {{"seed", f_seed},
                                     {"rng_state", f_rng_state},
                                     {"set_rng_state", f_set_rng_state},
                                     {"rand", f_rand},
                                     {"randn", f_randn},
                                     {"uniform", f_uniform},
                                     {"normal", f_normal},
                                     {"truncated_normal", f_truncated_normal},
                                     {"bernoulli", f_bernoulli},
                                     {"multinomial", f_multinomial},
                                     {"randperm", f_randperm},
                                     {"randint", f_randint},
                                     {NULL, NULL}};

void rb_open_random(lua_State *L, int methods_idx, int module_idx) {
  rb_register(L, methods_idx, module_idx, methods, functions);
}
