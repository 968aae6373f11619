/* Lua bindings: reductions (sum mean prod max min argmax argmin var std logsumexp norm),
 * softmax, log_softmax and cumsum. Dimensions are 1-based (negative from the end) and
 * returned indices are 1-based; the runtime is 0-based. Reductions accept their optional
 * arguments positionally or as one options table: t:var{dim = 2, keepdim = true}. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/ops.h"
#include "bind.h"

/* luaL_error with the C library's formatting (%lld, %g). Never returns. */
static int rerr(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rerr(lua_State *L, const char *fmt, ...) {
  char buf[RC_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return luaL_error(L, "%s", buf);
}

/* A 1-based (or negative) dimension at stack index idx, checked against ndim; 0-based. */
static int get_dim(lua_State *L, int idx, int ndim, const char *fn, const char *what) {
  int isnum = 0;
  lua_Integer d = lua_tointegerx(L, idx, &isnum);
  if (!isnum) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      rerr(L, "%s: %s must be an integer, got %g", fn, what, (double)lua_tonumber(L, idx));
    rerr(L, "%s: %s must be an integer, got %s", fn, what, luaL_typename(L, idx));
  }
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    rerr(L,
         "%s: dimension %lld is out of range for a tensor with %d dimensions (dimensions are "
         "1-based; -1 is the last)",
         fn, (long long)d, ndim);
  return (int)(d > 0 ? d - 1 : d + n);
}

static int get_bool(lua_State *L, int idx, int def, const char *fn, const char *what) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx))
    rerr(L, "%s: %s must be a boolean, got %s", fn, what, luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

typedef struct {
  int dim; /* 0-based, or RC_ALL */
  int keepdim;
  int unbiased;
} rargs;

/* Optional (dim, keepdim[, unbiased]) starting at stack index first, or an options table
 * there with the same field names. */
static void parse_args(lua_State *L, int first, const rc_tensor *t, const char *fn,
                       int with_unbiased, rargs *r) {
  r->dim = RC_ALL;
  r->keepdim = 0;
  r->unbiased = 1;
  if (lua_type(L, first) == LUA_TTABLE) {
    lua_getfield(L, first, "dim");
    if (!lua_isnil(L, -1)) r->dim = get_dim(L, lua_gettop(L), t->ndim, fn, "option 'dim'");
    lua_getfield(L, first, "keepdim");
    r->keepdim = get_bool(L, lua_gettop(L), 0, fn, "option 'keepdim'");
    lua_pop(L, 2);
    if (with_unbiased) {
      lua_getfield(L, first, "unbiased");
      r->unbiased = get_bool(L, lua_gettop(L), 1, fn, "option 'unbiased'");
      lua_pop(L, 1);
    }
    return;
  }
  char what[48];
  if (!lua_isnoneornil(L, first)) {
    snprintf(what, sizeof what, "argument #%d (dim)", first);
    r->dim = get_dim(L, first, t->ndim, fn, what);
  }
  snprintf(what, sizeof what, "argument #%d (keepdim)", first + 1);
  r->keepdim = get_bool(L, first + 1, 0, fn, what);
  if (with_unbiased) {
    snprintf(what, sizeof what, "argument #%d (unbiased)", first + 2);
    r->unbiased = get_bool(L, first + 2, 1, fn, what);
  }
}

/* Indices from the runtime (0-based values) as 1-based ones: a new tensor (out of place,
 * because autograd may have saved the 0-based one). Takes over ix. */
static rc_tensor *one_based(rc_tensor *ix) {
  if (!ix) return NULL;
  rc_tensor *r = rc_binary_scalar(RC_ADD, ix, 1.0f, 0);
  rc_release(ix);
  return r;
}

static int reduce(lua_State *L, rc_redop op, const char *fn) {
  rc_tensor *t = rb_check(L, 1);
  rargs a;
  parse_args(L, 2, t, fn, 0, &a);
  return rb_push(L, rc_reduce(op, t, a.dim, a.keepdim));
}

static int l_sum(lua_State *L) {
  return reduce(L, RC_SUM, "sum");
}
static int l_mean(lua_State *L) {
  return reduce(L, RC_MEAN, "mean");
}
static int l_prod(lua_State *L) {
  return reduce(L, RC_PROD, "prod");
}

/* t:max() (0-d), t:max(dim[, keepdim]) (values, 1-based indices), t:max(other) */
static int minmax(lua_State *L, int is_min) {
  const char *fn = is_min ? "min" : "max";
  rc_tensor *t = rb_check(L, 1);
  if (rb_is_tensor(L, 2))
    return rb_push(L, rc_binary(is_min ? RC_MINIMUM : RC_MAXIMUM, t, rb_check(L, 2)));
  rargs a;
  parse_args(L, 2, t, fn, 0, &a);
  if (a.dim == RC_ALL) return rb_push(L, rc_reduce(is_min ? RC_MIN : RC_MAX, t, RC_ALL, a.keepdim));
  rc_tensor *vals, *ix;
  if (rc_max_dim(t, a.dim, a.keepdim, is_min, &vals, &ix)) return rb_raise(L);
  ix = one_based(ix);
  if (!ix) {
    rc_release(vals);
    return rb_raise(L);
  }
  rc_tensor *both[2] = {vals, ix};
  return rb_push_n(L, both, 2, 0, 0); /* leaks neither if Lua runs out of memory */
}

static int l_max(lua_State *L) {
  return minmax(L, 0);
}
static int l_min(lua_State *L) {
  return minmax(L, 1);
}

static int argminmax(lua_State *L, int is_min) {
  const char *fn = is_min ? "argmin" : "argmax";
  rc_tensor *t = rb_check(L, 1);
  rargs a;
  parse_args(L, 2, t, fn, 0, &a);
  return rb_push(L, one_based(rc_argmax(t, a.dim, a.keepdim, is_min)));
}

static int l_argmax(lua_State *L) {
  return argminmax(L, 0);
}
static int l_argmin(lua_State *L) {
  return argminmax(L, 1);
}

static int l_var(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  rargs a;
  parse_args(L, 2, t, "var", 1, &a);
  return rb_push(L, rc_var(t, a.dim, a.keepdim, a.unbiased));
}

static int l_std(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  rargs a;
  parse_args(L, 2, t, "std", 1, &a);
  return rb_push(L, rc_std(t, a.dim, a.keepdim, a.unbiased));
}

static int l_logsumexp(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  rargs a;
  parse_args(L, 2, t, "logsumexp", 0, &a);
  return rb_push(L, rc_logsumexp(t, a.dim, a.keepdim));
}

/* p: a number (math.huge for the max norm), "fro" (= 2) or nil (= 2) */
static float get_p(lua_State *L, int idx, const char *what) {
  if (lua_isnoneornil(L, idx)) return 2.0f;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number p = lua_tonumber(L, idx);
    if (isnan(p)) rerr(L, "norm: %s must not be NaN", what);
    return (float)p;
  }
  if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "fro") == 0) return 2.0f;
  return (float)rerr(L, "norm: %s must be a number or \"fro\", got %s", what,
                     lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx)
                                                     : luaL_typename(L, idx));
}

/* t:norm([p[, dim[, keepdim]]]) or t:norm{p =, dim =, keepdim =} */
static int l_norm(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  float p;
  rargs a;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "p");
    p = get_p(L, lua_gettop(L), "option 'p'");
    lua_pop(L, 1);
    parse_args(L, 2, t, "norm", 0, &a);
  } else {
    p = get_p(L, 2, "argument #2 (p)");
    parse_args(L, 3, t, "norm", 0, &a);
  }
  return rb_push(L, rc_norm(t, p, a.dim, a.keepdim));
}

/* a required dimension at argument 2 */
static int required_dim(lua_State *L, rc_tensor *t, const char *fn) {
  if (lua_isnoneornil(L, 2))
    rerr(L, "%s: argument #2 (dim) is required (1-based; -1 is the last)", fn);
  return get_dim(L, 2, t->ndim, fn, "argument #2 (dim)");
}

static int l_softmax(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  return rb_push(L, rc_softmax(t, required_dim(L, t, "softmax")));
}

static int l_log_softmax(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  return rb_push(L, rc_log_softmax(t, required_dim(L, t, "log_softmax")));
}

static int l_cumsum(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  return rb_push(L, rc_cumsum(t, required_dim(L, t, "cumsum")));
}

static const luaL_Reg funcs[] = {{"sum", l_sum},
                                 {"mean", l_mean},
                                 {"prod", l_prod},
                                 {"max", l_max},
                                 {"min", l_min},
                                 {"argmax", l_argmax},
                                 {"argmin", l_argmin},
                                 {"var", l_var},
                                 {"std", l_std},
                                 {"logsumexp", l_logsumexp},
                                 {"norm", l_norm},
                                 {"softmax", l_softmax},
                                 {"log_softmax", l_log_softmax},
                                 {"cumsum", l_cumsum},
                                 {NULL, NULL}};

void rb_open_reduce(lua_State *L, int methods, int module) {
  rb_register(L, methods, module, funcs, funcs);
}
