/* Lua bindings: flip, roll, tril, triu, diag, trace, tile, repeat_interleave, cumprod,
 * linspace, logspace. Dimensions are 1-based (negative from the end); the runtime is 0-based.
 * (PyTorch's t:repeat is t:tile here: `repeat` is a Lua keyword.) */
#include <math.h>
#include <stdio.h>

#include "../runtime/ops.h"
#include "bind.h"

/* The integer at stack index idx, described as `what` in messages. */
static int64_t int_at(lua_State *L, int idx, const char *what) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      rb_error(L, "%s: %s must be an integer, got %s", rb_fname(L), what, lua_tostring(L, idx));
    rb_error(L, "%s: %s must be an integer, got %s", rb_fname(L), what, luaL_typename(L, idx));
  }
  return (int64_t)v;
}

/* Integers given as one table at idx or as the arguments from idx on (at least `min`, at most
 * RC_MAX_DIM): the count. */
static int int_list(lua_State *L, int idx, int64_t *out, int min, const char *what) {
  char w[64];
  int n = 0;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, idx);
    if (len > RC_MAX_DIM)
      rb_error(L, "%s: %lld %s given, at most %d are supported", rb_fname(L), (long long)len, what,
               RC_MAX_DIM);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      snprintf(w, sizeof w, "entry %d of argument #%d", (int)i, idx);
      out[n++] = int_at(L, -1, w);
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    if (top - idx + 1 > RC_MAX_DIM)
      rb_error(L, "%s: %d %s given, at most %d are supported", rb_fname(L), top - idx + 1, what,
               RC_MAX_DIM);
    for (int i = idx; i <= top; i++) {
      snprintf(w, sizeof w, "argument #%d", i);
      out[n++] = int_at(L, i, w);
    }
  }
  if (n < min) rb_error(L, "%s: at least %d %s required, got %d", rb_fname(L), min, what, n);
  return n;
}

/* t:flip(d1, d2, ...) or t:flip{d1, d2, ...} */
static int l_flip(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int64_t v[RC_MAX_DIM];
  int n = int_list(L, 2, v, 1, "dimensions");
  int dims[RC_MAX_DIM];
  for (int i = 0; i < n; i++) dims[i] = rb_dim_value(L, v[i], t->ndim);
  return rb_push(L, rc_flip(t, n, dims));
}

/* t:roll(shift[, dim]) or t:roll({shifts}, {dims}); without dims: over the flattened tensor */
static int l_roll(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  lua_settop(L, 3);
  int64_t sh[RC_MAX_DIM], dv[RC_MAX_DIM];
  int dims[RC_MAX_DIM];
  int ns = lua_istable(L, 2) ? int_list(L, 2, sh, 1, "shifts")
                             : (sh[0] = int_at(L, 2, "argument #2 (shifts)"), 1);
  if (lua_isnil(L, 3)) {
    if (ns != 1) rb_error(L, "roll: %d shifts need a list of %d dimensions (argument #3)", ns, ns);
    return rb_push(L, rc_roll(t, 0, sh, NULL));
  }
  int nd = lua_istable(L, 3) ? int_list(L, 3, dv, 1, "dimensions")
                             : (dv[0] = int_at(L, 3, "argument #3 (dims)"), 1);
  if (nd != ns) rb_error(L, "roll: %d shifts but %d dimensions", ns, nd);
  for (int i = 0; i < nd; i++) dims[i] = rb_dim_value(L, dv[i], t->ndim);
  return rb_push(L, rc_roll(t, nd, sh, dims));
}

static int64_t opt_k(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? 0 : int_at(L, idx, "argument #2 (diagonal)");
}

/* t:tril(k = 0), t:triu(k = 0): on the last two dimensions */
static int l_tril(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  return rb_push(L, rc_tri(t, opt_k(L, 2), 0));
}
static int l_triu(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  return rb_push(L, rc_tri(t, opt_k(L, 2), 1));
}

/* t:diag(k = 0): 1-D -> 2-D, 2-D -> 1-D */
static int l_diag(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  return rb_push(L, rc_diag(t, opt_k(L, 2)));
}

static int l_trace(lua_State *L) {
  return rb_push(L, rc_trace(rb_check(L, 1)));
}

/* t:tile(r1, r2, ...) or t:tile{...} (PyTorch's t.repeat / torch.tile) */
static int l_tile(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int64_t reps[RC_MAX_DIM];
  int n = int_list(L, 2, reps, 1, "repetitions");
  return rb_push(L, rc_tile(t, n, reps));
}

/* t:repeat_interleave(n | counts[, dim]): counts a 1-D tensor or a list of integers (one
 * per slice along dim); dim omitted: over the flattened tensor, as PyTorch */
static int l_repeat_interleave(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  lua_settop(L, 3);
  int dim = lua_isnil(L, 3) ? RC_ALL : rb_dim_value(L, int_at(L, 3, "argument #3 (dim)"), t->ndim);
  int64_t one, *counts = &one;
  int n = 1;
  if (lua_isnumber(L, 2)) {
    one = int_at(L, 2, "argument #2 (repeats)");
  } else if (lua_istable(L, 2) || rb_is_tensor(L, 2)) {
    rc_tensor *ct = lua_istable(L, 2) ? NULL : rb_check(L, 2);
    lua_Integer len = ct ? (ct->ndim == 1 ? ct->size[0] : -1) : luaL_len(L, 2);
    if (len < 0)
      rb_error(L,
               "repeat_interleave: argument #2 (repeats) must be a number, a list or a 1-D "
               "tensor, got a %d-D tensor",
               ct->ndim);
    if (len < 1 || len > (1 << 24))
      rb_error(L, "repeat_interleave: argument #2 (repeats) has %lld counts, must be 1..2^24",
               (long long)len);
    counts = lua_newuserdatauv(L, (size_t)len * sizeof *counts, 0);
    for (lua_Integer i = 0; i < len; i++) {
      double v;
      if (ct) {
        int64_t at = i;
        v = *rc_ptr(ct, &at);
      } else {
        lua_geti(L, 2, i + 1);
        int isnum = 0;
        v = lua_tonumberx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum) v = NAN;
      }
      if (!(v == floor(v) && fabs(v) <= 9e15))
        rb_error(L, "repeat_interleave: repeat count %d must be an integer, got %g", (int)i + 1, v);
      counts[i] = (int64_t)v;
    }
    n = (int)len;
  } else {
    rb_error(L,
             "repeat_interleave: argument #2 (repeats) must be a number, a list or a 1-D tensor, "
             "got %s",
             luaL_typename(L, 2));
  }
  return rb_push(L, rc_repeat_interleave(t, n, counts, dim));
}

/* t:cumprod(dim) */
static int l_cumprod(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (lua_isnoneornil(L, 2))
    rb_error(L, "cumprod: argument #2 (dim) is required (1-based; -1 is the last)");
  return rb_push(L, rc_cumprod(t, rb_check_dim(L, 2, t->ndim)));
}

/* recur.linspace(start, stop, n), recur.logspace(start, stop, n, base = 10) */
static int l_linspace(lua_State *L) {
  double a = rb_check_number(L, 1), b = rb_check_number(L, 2);
  return rb_push(L, rc_linspace(rb_ctx(L), a, b, rb_check_int(L, 3)));
}

static int l_logspace(lua_State *L) {
  double a = rb_check_number(L, 1), b = rb_check_number(L, 2);
  int64_t n = rb_check_int(L, 3);
  double base = lua_isnoneornil(L, 4) ? 10.0 : rb_check_number(L, 4);
  return rb_push(L, rc_logspace(rb_ctx(L), a, b, n, base));
}

static const luaL_Reg methods[] = {
    {"flip", l_flip},       {"roll", l_roll},
    {"tril", l_tril},       {"triu", l_triu},
    {"diag", l_diag},       {"trace", l_trace},
    {"tile", l_tile},       {"repeat_interleave", l_repeat_interleave},
    {"cumprod", l_cumprod}, {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"flip", l_flip},         {"roll", l_roll},
    {"tril", l_tril},         {"triu", l_triu},
    {"diag", l_diag},         {"trace", l_trace},
    {"tile", l_tile},         {"repeat_interleave", l_repeat_interleave},
    {"cumprod", l_cumprod},   {"linspace", l_linspace},
    {"logspace", l_logspace}, {NULL, NULL}};

void rb_open_shape(lua_State *L, int methods_idx, int module_idx) {
  rb_register(L, methods_idx, module_idx, methods, functions);
}
