/* The tensor userdata: lifetime, constructors, introspection, printing. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/nn.h"
#include "bind.h"

/* ---- lifetime ---- */

/* __gc and __close: one idempotent release that never raises. */
static int t_release(lua_State *L) {
  rb_tensor *u = rb_to_tensor(L, 1);
  if (u && u->t) {
    rc_tensor *t = u->t;
    u->t = NULL;
    rc_release(t);
  }
  return 0;
}

static int t_is_closed(lua_State *L) {
  rb_tensor *u = rb_to_tensor(L, 1);
  if (!u)
    return rb_error(L, "%s: argument #1 must be a tensor, got %s", rb_fname(L),
                    luaL_typename(L, 1));
  lua_pushboolean(L, u->t == NULL);
  return 1;
}

/* ---- constructors ---- */

static int new_filled(lua_State *L, int idx, int kind, float v) {
  int64_t size[RC_MAX_DIM];
  int n = rb_check_shape(L, idx, size);
  rc_ctx *c = rb_ctx(L);
  if (rc_check_shape(c, rb_fname(L), n, size)) return rb_raise(L);
  if (kind == 0) return rb_push(L, rc_empty(c, n, size));
  if (kind == 1) return rb_push(L, rc_zeros(c, n, size));
  return rb_push(L, rc_full(c, n, size, v));
}

static int f_empty(lua_State *L) {
  return new_filled(L, 1, 0, 0);
}
static int f_zeros(lua_State *L) {
  return new_filled(L, 1, 1, 0);
}
static int f_ones(lua_State *L) {
  return new_filled(L, 1, 2, 1.0f);
}

static int f_full(lua_State *L) {
  int64_t size[RC_MAX_DIM];
  if (lua_type(L, 1) != LUA_TTABLE)
    return rb_error(L, "full: argument #1 must be a shape table, got %s", luaL_typename(L, 1));
  int n = rb_check_shape(L, 1, size);
  float v = (float)rb_check_number(L, 2);
  if (rc_check_shape(rb_ctx(L), "full", n, size)) return rb_raise(L);
  return rb_push(L, rc_full(rb_ctx(L), n, size, v));
}

static int like(lua_State *L, float v, int zero) {
  rc_tensor *t = rb_check(L, 1);
  rc_tensor *r = zero ? rc_zeros_like(t) : rc_full(t->ctx, t->ndim, t->size, v);
  return rb_push(L, r);
}
static int f_zeros_like(lua_State *L) {
  return like(L, 0, 1);
}
static int f_ones_like(lua_State *L) {
  return like(L, 1.0f, 0);
}
static int f_full_like(lua_State *L) {
  return like(L, (float)rb_check_number(L, 2), 0);
}

/* arange(n) = 1..n? No: like PyTorch's values, arange(stop) gives 0..stop-1 and
 * arange(start, stop[, step]) gives start, start+step, ... < stop. Values, not indices. */
static int f_arange(lua_State *L) {
  double start = 0, stop, step = 1;
  if (lua_gettop(L) == 1) {
    stop = rb_check_number(L, 1);
  } else {
    start = rb_check_number(L, 1);
    stop = rb_check_number(L, 2);
    step = (lua_isnoneornil(L, 3) ? 1 : rb_check_number(L, 3));
  }
  if (step == 0 || isnan(step) || isnan(start) || isnan(stop) || isinf(start) || isinf(stop))
    return rb_error(L, "arange: step must be non-zero and bounds finite (got %g, %g, %g)", start,
                    stop, step);
  double cnt = ceil((stop - start) / step);
  if (cnt < 0) cnt = 0;
  if (cnt > (double)RC_MAX_NUMEL) return rb_error(L, "arange: %g elements is too many", cnt);
  int64_t n = (int64_t)cnt;
  rc_tensor *t = rc_empty(rb_ctx(L), 1, &n);
  if (!t) return rb_raise(L);
  float *d = rc_data(t);
  for (int64_t i = 0; i < n; i++) d[i] = (float)(start + (double)i * step);
  return rb_push(L, t);
}

static int f_eye(lua_State *L) {
  int64_t n = rb_check_int(L, 1);
  int64_t m = lua_isnoneornil(L, 2) ? n : rb_check_int(L, 2);
  int64_t size[2] = {n, m};
  rc_tensor *t = rc_zeros(rb_ctx(L), 2, size);
  if (!t) return rb_raise(L);
  float *d = rc_data(t);
  for (int64_t i = 0; i < n && i < m; i++) d[i * m + i] = 1.0f;
  return rb_push(L, t);
}

/* recur.tensor(nested table or number): the shape is read from the first element of each
 * level; every row must agree. */
static void nested_shape(lua_State *L, int idx, int depth, int64_t *size, int *ndim) {
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (depth >= RC_MAX_DIM) rb_error(L, "tensor: nesting deeper than %d levels", RC_MAX_DIM);
  size[depth] = (int64_t)luaL_len(L, idx);
  *ndim = depth + 1;
  if (size[depth] > 0) {
    lua_geti(L, idx, 1);
    nested_shape(L, lua_gettop(L), depth + 1, size, ndim);
    lua_pop(L, 1);
  }
}

static void nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *size, float *out,
                        int64_t *pos) {
  if (depth == ndim) {
    int isnum = 0;
    lua_Number v = lua_tonumberx(L, idx, &isnum);
    if (!isnum) {
      if (lua_isboolean(L, idx)) {
        v = lua_toboolean(L, idx);
      } else {
        rb_error(L, "tensor: element %lld is %s, not a number", (long long)(*pos + 1),
                 luaL_typename(L, idx));
      }
    }
    out[(*pos)++] = (float)v;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE || (int64_t)luaL_len(L, idx) != size[depth])
    rb_error(L, "tensor: ragged nested table (level %d should have %lld entries)", depth + 1,
             (long long)size[depth]);
  for (int64_t i = 1; i <= size[depth]; i++) {
    lua_geti(L, idx, i);
    nested_fill(L, lua_gettop(L), depth + 1, ndim, size, out, pos);
    lua_pop(L, 1);
  }
}

static int f_tensor(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER)
    return rb_push(L, rc_scalar(rb_ctx(L), (float)lua_tonumber(L, 1)));
  if (rb_is_tensor(L, 1)) return rb_push(L, rc_copy_contiguous(rb_check(L, 1)));
  if (lua_type(L, 1) != LUA_TTABLE)
    return rb_error(L, "tensor: argument #1 must be a (nested) table of numbers, got %s",
                    luaL_typename(L, 1));
  int64_t size[RC_MAX_DIM] = {0};
  int ndim = 0;
  nested_shape(L, 1, 0, size, &ndim);
  if (rc_check_shape(rb_ctx(L), "tensor", ndim, size)) return rb_raise(L);
  /* Fill a Lua-owned buffer first so that a ragged-table error leaks nothing. */
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  /* a table can be converted again and again: the budget sees each number read */
  if (rc_charge_elems(rb_ctx(L), "tensor", n * 16)) return rb_raise(L);
  float *buf = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(float), 0);
  int64_t pos = 0;
  nested_fill(L, 1, 0, ndim, size, buf, &pos);
  rc_tensor *t = rc_from_data(rb_ctx(L), ndim, size, buf);
  lua_pop(L, 1);
  return rb_push(L, t);
}

/* ---- introspection ---- */

static int m_size(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    int d = rb_check_dim(L, 2, t->ndim);
    lua_pushinteger(L, t->ndim ? t->size[d] : 1);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->size[i]);
    lua_rawseti(L, -2, i + 1);
  }
  luaL_setmetatable(L, "recur.Size"); /* a plain list that prints as [2, 3] */
  return 1;
}

static int size_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '[');
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) luaL_addstring(&b, ", ");
    lua_geti(L, 1, i);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, ']');
  luaL_pushresult(&b);
  return 1;
}

static int m_stride(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    int d = rb_check_dim(L, 2, t->ndim);
    lua_pushinteger(L, t->ndim ? t->stride[d] : 1);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->stride[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, rb_check(L, 1)->ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, rc_numel(rb_check(L, 1)));
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  lua_pushboolean(L, rc_is_contiguous(rb_check(L, 1)));
  return 1;
}

/* recur._mpi_buffer(t, write) -> data pointer (light userdata), element count: what
 * lib/recur/mpi.lua hands to build/recur_mpi.so, which never sees a tensor. The tensor must be
 * live and contiguous; write bumps its version first (MPI writes into it, as an optimizer
 * step does). The caller keeps t referenced for the duration of the MPI call. */
static int f_mpi_buffer(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (!rc_is_contiguous(t))
    return rb_error(L, "%s: argument #1 is not contiguous (use t:contiguous())", rb_fname(L));
  if (lua_toboolean(L, 2)) rc_bump_version(t);
  lua_pushlightuserdata(L, rc_data(t));
  lua_pushinteger(L, rc_numel(t));
  return 2;
}

static int m_item(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (rc_numel(t) != 1) {
    char s[128];
    return rb_error(L, "item: tensor of shape %s has %lld elements, not one",
                    rc_shape_str(t, s, sizeof s), (long long)rc_numel(t));
  }
  int64_t idx[RC_MAX_DIM] = {0};
  lua_pushnumber(L, *rc_ptr(t, idx));
  return 1;
}

static void push_nested(lua_State *L, rc_tensor *t, int depth, int64_t off) {
  if (depth == t->ndim) {
    lua_pushnumber(L, t->storage->data[off]);
    return;
  }
  lua_createtable(L, t->size[depth] > INT_MAX ? 0 : (int)t->size[depth], 0); /* a size hint */
  for (int64_t i = 0; i < t->size[depth]; i++) {
    push_nested(L, t, depth + 1, off + i * t->stride[depth]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_totable(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  luaL_checkstack(L, t->ndim + 4, "totable");
  push_nested(L, t, 0, t->offset);
  return 1;
}

/* Reads 1-based indices at stack positions from..from+ndim-1 into a storage offset. */
static int64_t check_index(lua_State *L, rc_tensor *t, int from, const char *fn) {
  int given = lua_gettop(L) - from + 1;
  if (given != t->ndim)
    rb_error(L, "%s: a tensor with %d dimensions needs %d indices, got %d", fn, t->ndim, t->ndim,
             given < 0 ? 0 : given);
  int64_t off = t->offset;
  for (int i = 0; i < t->ndim; i++) {
    int64_t k = rb_check_int(L, from + i);
    if (k < 0) k += t->size[i] + 1;
    if (k < 1 || k > t->size[i])
      rb_error(L, "%s: index %lld is out of range for dimension %d of size %lld (1-based)", fn,
               (long long)rb_check_int(L, from + i), i + 1, (long long)t->size[i]);
    off += (k - 1) * t->stride[i];
  }
  return off;
}

static int m_get(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  lua_pushnumber(L, t->storage->data[check_index(L, t, 2, "get")]);
  return 1;
}

static int m_set(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  float v = (float)rb_check_number(L, 2);
  int64_t off = check_index(L, t, 3, "set");
  if (rc_check_inplace(t, "set")) return rb_raise(L);
  if (t->grad_fn && t->ctx->grad_enabled)
    return rb_error(L, "set: in-place write to a tensor with autograd history; "
                       "use recur.no_grad or clone() first");
  t->storage->data[off] = v;
  rc_bump_version(t);
  lua_settop(L, 1);
  return 1;
}

/* ---- printing (PyTorch style: all values when small, corners when big) ---- */

typedef struct {
  luaL_Buffer *b;
  int prec;
  int width;
  int sci;
} fmt_t;

static void fmt_num(fmt_t *f, float v, char *out, size_t n) {
  if (isnan(v))
    snprintf(out, n, "nan");
  else if (isinf(v))
    snprintf(out, n, v > 0 ? "inf" : "-inf");
  else if (f->sci)
    snprintf(out, n, "%.4e", (double)v);
  else
    snprintf(out, n, "%.*f", f->prec, (double)v);
}

#define EDGE 3
#define SUMMARIZE 1000

static void print_rec(fmt_t *f, rc_tensor *t, int depth, int64_t off, int summarize, int indent) {
  luaL_Buffer *b = f->b;
  if (depth == t->ndim) {
    char s[64];
    fmt_num(f, t->storage->data[off], s, sizeof s);
    char pad[80];
    snprintf(pad, sizeof pad, "%*s", f->width, s);
    luaL_addstring(b, pad);
    return;
  }
  luaL_addchar(b, '[');
  int64_t n = t->size[depth];
  for (int64_t i = 0; i < n; i++) {
    if (summarize && n > 2 * EDGE && i == EDGE) {
      luaL_addstring(b, depth == t->ndim - 1 ? " ...," : "\n");
      if (depth != t->ndim - 1) {
        for (int k = 0; k < indent + 1; k++) luaL_addchar(b, ' ');
        luaL_addstring(b, "...,\n");
        for (int k = 0; k < indent + 1; k++) luaL_addchar(b, ' ');
      }
      i = n - EDGE;
    }
    print_rec(f, t, depth + 1, off + i * t->stride[depth], summarize, indent + 1);
    if (i < n - 1) {
      luaL_addchar(b, ',');
      if (depth == t->ndim - 1) {
        luaL_addchar(b, ' ');
      } else {
        for (int k = 0; k < t->ndim - depth - 1; k++) luaL_addchar(b, '\n');
        for (int k = 0; k < indent + 1; k++) luaL_addchar(b, ' ');
      }
    }
  }
  luaL_addchar(b, ']');
}

static int m_tostring(lua_State *L) {
  rb_tensor *u = rb_to_tensor(L, 1);
  if (!u) return rb_error(L, "tostring: argument #1 must be a tensor, got %s", luaL_typename(L, 1));
  if (!u->t) {
    lua_pushstring(L, "tensor(closed)");
    return 1;
  }
  rc_tensor *t = u->t;
  int64_t numel = rc_numel(t);
  int summarize = numel > SUMMARIZE;
  /* the scan below reads up to 100,000 values (strided): the budget sees them */
  if (rc_charge_elems(t->ctx, "tostring", (numel < 100002 ? numel : 100002) * 4))
    return rb_raise(L);
  /* pick a format from the values that will be shown */
  double amax = 0, amin = INFINITY;
  int all_int = 1;
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t k = 0; k < numel; k++) {
    float v = *rc_ptr(t, idx);
    if (isfinite(v)) {
      double a = fabs(v);
      if (a > amax) amax = a;
      if (a > 0 && a < amin) amin = a;
      if (v != floorf(v)) all_int = 0;
    }
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->size[d]) break;
      idx[d] = 0;
    }
    if (k > 100000) break; /* enough to choose a format */
  }
  fmt_t f;
  f.prec = all_int ? 0 : 4;
  f.sci = !all_int && (amax >= 1e8 || (amin < 1e-4 && amin > 0) ||
                       (amax > 0 && amax / (amin > 0 ? amin : 1) > 1e6 && amax >= 1e3));
  if (all_int && amax >= 1e8) f.sci = 1;
  char s[64];
  f.width = 0;
  fmt_num(&f, (float)amax, s, sizeof s);
  f.width = (int)strlen(s) + 1;
  if (all_int && !f.sci) {
    f.width = (int)strlen(s) + 1;
    f.prec = 0;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  f.b = &b;
  luaL_addstring(&b, "tensor(");
  if (t->ndim == 0) {
    f.width = 0;
    print_rec(&f, t, 0, t->offset, 0, 7);
  } else {
    print_rec(&f, t, 0, t->offset, summarize, 7);
  }
  char shape[160];
  snprintf(shape, sizeof shape, ", size=%s", rc_shape_str(t, s, sizeof s));
  luaL_addstring(&b, shape);
  if (t->grad_fn) {
    luaL_addstring(&b, ", grad_fn=");
    luaL_addstring(&b, t->grad_fn->name);
  } else if (t->requires_grad) {
    luaL_addstring(&b, ", requires_grad=true");
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

/* t[i] (Torch7's indexing): the 1-based (negative: from the end) integer key at 2 as a
 * 0-based index into dimension 1. */
static int64_t row_index(lua_State *L, rc_tensor *t) {
  if (t->ndim == 0) rb_error(L, "tensor[i]: a 0-d tensor has no rows (use item())");
  int isint = 0;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  if (!isint) rb_error(L, "tensor[i]: the index must be an integer, got %s", lua_tostring(L, 2));
  int64_t n = t->size[0], k = i < 0 ? (int64_t)i + n : (int64_t)i - 1;
  if (i == 0 || k < 0 || k >= n)
    rb_error(L,
             "tensor[i]: index %lld is out of range for dimension 1 of size %lld (indices are "
             "1-based; -1 is the last)",
             (long long)i, (long long)n);
  return k;
}

/* t.grad and other properties come through __index after the method table; t[i] is the
 * i-th row (a view, as select(1, i)) or, for a 1-D tensor, the i-th number. */
static int m_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    rc_tensor *t = rb_check(L, 1);
    int64_t k = row_index(L, t);
    if (t->ndim == 1) {
      lua_pushnumber(L, t->storage->data[t->offset + k * t->stride[0]]);
      return 1;
    }
    return rb_push(L, rc_select(t, 0, k));
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  if (!lua_isnil(L, -1)) return 1;
  const char *k = lua_tostring(L, 2);
  if (k && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "grad") == 0) {
      rc_tensor *t = rb_check(L, 1);
      if (!t->grad) {
        lua_pushnil(L);
        return 1;
      }
      rc_retain(t->grad);
      return rb_push(L, t->grad);
    }
    if (strcmp(k, "shape") == 0) {
      lua_settop(L, 1);
      return m_size(L);
    }
    if (strcmp(k, "is_leaf") == 0) {
      lua_pushboolean(L, rb_check(L, 1)->grad_fn == NULL);
      return 1;
    }
    if (strcmp(k, "grad_fn") == 0) {
      rc_tensor *t = rb_check(L, 1);
      if (t->grad_fn)
        lua_pushstring(L, t->grad_fn->name);
      else
        lua_pushnil(L);
      return 1;
    }
  }
  return 1; /* nil */
}

/* t.grad = x (or nil); t[i] = v fills row i with the number v or copies the tensor v into
 * it (broadcast), as an in-place op (autograd rules of fill_ and copy_). */
static int m_newindex(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    int64_t k = row_index(L, t);
    rc_tensor *src = NULL;
    float v = 0;
    if (lua_type(L, 3) == LUA_TNUMBER)
      v = (float)lua_tonumber(L, 3);
    else if (!(src = rb_test(L, 3)))
      return rb_error(L, "tensor[i]: the value must be a number or a tensor, got %s",
                      luaL_typename(L, 3));
    rc_tensor *row = rc_select(t, 0, k);
    if (!row) return rb_raise(L);
    int rc = src ? rc_copy_(row, src) : rc_fill_(row, v);
    rc_release(row);
    if (rc) return rb_raise(L);
    return 0;
  }
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "grad") == 0) {
    if (lua_isnil(L, 3)) {
      rc_zero_grad(t);
      return 0;
    }
    rc_tensor *g = rb_check(L, 3);
    if (!rc_same_shape(g, t)) {
      char s1[128], s2[128];
      return rb_error(L, "grad: shape %s does not match the tensor's shape %s",
                      rc_shape_str(g, s1, sizeof s1), rc_shape_str(t, s2, sizeof s2));
    }
    /* a packed parameter's gradient stays its span of the flat gradient buffer: copied in */
    if (rc_set_grad(t, g)) return rb_raise(L);
    return 0;
  }
  return rb_error(L, "tensor: cannot set field '%s' (tensors have no user fields)",
                  k ? k : luaL_typename(L, 2));
}

/* a == b compares identity of the underlying tensor (use eq for values). */
static int m_eqmeta(lua_State *L) {
  rb_tensor *a = rb_to_tensor(L, 1);
  rb_tensor *b = rb_to_tensor(L, 2);
  lua_pushboolean(L, a && b && a->t == b->t);
  return 1;
}

static int m_len(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  lua_pushinteger(L, t->ndim ? t->size[0] : 0);
  return 1;
}

static int f_is_tensor(lua_State *L) {
  lua_pushboolean(L, rb_is_tensor(L, 1));
  return 1;
}

static const luaL_Reg methods[] = {
    {"size", m_size},      {"stride", m_stride}, {"dim", m_dim},
    {"numel", m_numel},    {"item", m_item},     {"totable", m_totable},
    {"get", m_get},        {"set", m_set},       {"is_contiguous", m_is_contiguous},
    {"free", t_release},   {"close", t_release}, {"is_closed", t_is_closed},
    {"nelement", m_numel}, {NULL, NULL}};

static const luaL_Reg functions[] = {{"tensor", f_tensor},
                                     {"empty", f_empty},
                                     {"zeros", f_zeros},
                                     {"ones", f_ones},
                                     {"full", f_full},
                                     {"arange", f_arange},
                                     {"eye", f_eye},
                                     {"zeros_like", f_zeros_like},
                                     {"ones_like", f_ones_like},
                                     {"full_like", f_full_like},
                                     {"is_tensor", f_is_tensor},
                                     {"_mpi_buffer", f_mpi_buffer},
                                     {NULL, NULL}};

void rb_open_tensor(lua_State *L, int methods_idx, int module_idx) {
  rb_state_init(L);
  luaL_newmetatable(L, "recur.Size");
  lua_pushcfunction(L, size_tostring);
  lua_setfield(L, -2, "__tostring");
  /* getmetatable(size) shows its name, not the metatable: a __gc added to it would make every
   * later Size finalizable (finalizers run without hooks, outside an embedding's budget) */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "recur.Size");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  rb_register(L, methods_idx, module_idx, methods, functions);
  /* metatable: __gc/__close present before any userdata gets it */
  luaL_getmetatable(L, RECUR_TENSOR_MT);
  static const luaL_Reg meta[] = {{"__gc", t_release},
                                  {"__close", t_release},
                                  {"__tostring", m_tostring},
                                  {"__newindex", m_newindex},
                                  {"__eq", m_eqmeta},
                                  {"__len", m_len},
                                  {NULL, NULL}};
  rb_setfuncs(L, meta);
  rb_push_state(L);
  lua_pushvalue(L, methods_idx);
  lua_pushcclosure(L, m_index, 2);
  lua_setfield(L, -2, "__index");
  /* scripts cannot reach the metatable (and its __gc) through getmetatable */
  lua_pushliteral(L, RECUR_TENSOR_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
