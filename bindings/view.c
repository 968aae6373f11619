/* Lua bindings: views and shape ops (view, reshape, transpose, permute, narrow, select,
 * expand, squeeze, unsqueeze, flatten, contiguous, clone). Dimensions and indices are
 * 1-based here (negative counts from the end) and converted to the runtime's 0-based ones. */
#include "../runtime/ops.h"
#include "bind.h"

/* A shape given as integer varargs from idx on, or as one table at idx; -1 entries are kept
 * (the runtime infers or keeps them and validates every size). Returns ndim. */
static int check_shape_arg(lua_State *L, int idx, int64_t *size, const char *fn) {
  int n = 0;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, idx);
    if (len > RC_MAX_DIM)
      return rb_error(L, "%s: %lld dimensions requested, at most %d are supported", fn,
                      (long long)len, RC_MAX_DIM);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      int isnum = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      if (!isnum)
        return rb_error(L, "%s: shape entry %d must be an integer, got %s", fn, (int)i,
                        lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1)
                                                       : luaL_typename(L, -1));
      lua_pop(L, 1);
      size[n++] = (int64_t)v;
    }
    if (lua_gettop(L) > idx)
      return rb_error(L, "%s: give the shape either as one table or as integers, not both", fn);
    return n;
  }
  int top = lua_gettop(L);
  if (top - idx + 1 > RC_MAX_DIM)
    return rb_error(L, "%s: %d dimensions requested, at most %d are supported", fn, top - idx + 1,
                    RC_MAX_DIM);
  for (int i = idx; i <= top; i++) size[n++] = rb_check_int(L, i);
  return n;
}

/* A 1-based (or negative) dimension number d converted to 0-based for ndim dims. */
static int dim_to0(lua_State *L, int64_t d, int ndim, const char *fn) {
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    return rb_error(L,
                    "%s: dimension %lld is out of range for a tensor with %d dimensions "
                    "(dimensions are 1-based; -1 is the last)",
                    fn, (long long)d, ndim);
  return (int)(d > 0 ? d - 1 : d + n);
}

/* 1-based (negative: from the end) position i among n converted to 0-based; -1 for 0. */
static int64_t pos_to0(int64_t i, int64_t n) {
  return i > 0 ? i - 1 : i < 0 ? i + n : -1;
}

typedef rc_tensor *(*shape_fn)(rc_tensor *a, int ndim, const int64_t *size);

/* t:view(shape), t:reshape(shape), t:expand(shape) */
static int shape_op(lua_State *L, const char *fn, shape_fn op) {
  rc_tensor *t = rb_check(L, 1);
  int64_t size[RC_MAX_DIM];
  int n = check_shape_arg(L, 2, size, fn);
  return rb_push(L, op(t, n, size));
}

/* t:view_as(other), t:expand_as(other): other's shape */
static int shape_as_op(lua_State *L, shape_fn op) {
  rc_tensor *t = rb_check(L, 1);
  rc_tensor *o = rb_check(L, 2);
  return rb_push(L, op(t, o->ndim, o->size));
}

static int m_view(lua_State *L) {
  return shape_op(L, "view", rc_view);
}
static int m_reshape(lua_State *L) {
  return shape_op(L, "reshape", rc_reshape);
}
static int m_view_as(lua_State *L) {
  return shape_as_op(L, rc_view);
}

/* t(): transpose of a 2-D tensor; 0-D and 1-D tensors are returned as they are. */
static int m_t(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (t->ndim > 2)
    return rb_error(L,
                    "t: expects a tensor with at most 2 dimensions, got %d; use "
                    "transpose(d1, d2) or permute",
                    t->ndim);
  if (t->ndim < 2) {
    lua_settop(L, 1);
    return 1;
  }
  return rb_push(L, rc_transpose(t, 0, 1));
}

static int m_transpose(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int d0 = rb_check_dim(L, 2, t->ndim);
  int d1 = rb_check_dim(L, 3, t->ndim);
  return rb_push(L, rc_transpose(t, d0, d1));
}

static int m_permute(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int perm[RC_MAX_DIM];
  int n = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, 2);
    if (len != t->ndim)
      return rb_error(L, "permute: %lld dimensions given for a tensor with %d dimensions",
                      (long long)len, t->ndim);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, 2, i);
      int isnum = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      if (!isnum)
        return rb_error(L, "permute: entry %d of the dimension list must be an integer, got %s",
                        (int)i, luaL_typename(L, -1));
      lua_pop(L, 1);
      perm[n++] = dim_to0(L, (int64_t)v, t->ndim, "permute");
    }
  } else {
    int given = lua_gettop(L) - 1;
    if (given != t->ndim)
      return rb_error(L, "permute: %d dimensions given for a tensor with %d dimensions", given,
                      t->ndim);
    for (int i = 0; i < given; i++)
      perm[n++] = dim_to0(L, rb_check_int(L, i + 2), t->ndim, "permute");
  }
  return rb_push(L, rc_permute(t, perm));
}

/* narrow(dim, start, length): start is 1-based (negative from the end). */
static int m_narrow(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (t->ndim == 0) return rb_error(L, "narrow: cannot narrow a 0-d tensor");
  int d = rb_check_dim(L, 2, t->ndim);
  int64_t start = rb_check_int(L, 3), len = rb_check_int(L, 4);
  int64_t n = t->size[d];
  int64_t s0 = pos_to0(start, n);
  if (s0 < 0 || s0 > n || len < 0 || len > n - s0)
    return rb_error(L,
                    "narrow: start %lld and length %lld are out of range for dimension %d of "
                    "size %lld (start is 1-based; -1 is the last)",
                    (long long)start, (long long)len, d + 1, (long long)n);
  return rb_push(L, rc_narrow(t, d, s0, len));
}

/* select(dim, index): index is 1-based (negative from the end); removes the dimension. */
static int m_select(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (t->ndim == 0) return rb_error(L, "select: cannot select from a 0-d tensor");
  int d = rb_check_dim(L, 2, t->ndim);
  int64_t index = rb_check_int(L, 3);
  int64_t n = t->size[d];
  int64_t k = pos_to0(index, n);
  if (k < 0 || k >= n)
    return rb_error(L,
                    "select: index %lld is out of range for dimension %d of size %lld "
                    "(indices are 1-based; -1 is the last)",
                    (long long)index, d + 1, (long long)n);
  return rb_push(L, rc_select(t, d, k));
}

static int m_expand(lua_State *L) {
  return shape_op(L, "expand", rc_expand);
}
static int m_expand_as(lua_State *L) {
  return shape_as_op(L, rc_expand);
}

static int m_squeeze(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int d = lua_isnoneornil(L, 2) ? -100 : rb_check_dim(L, 2, t->ndim);
  return rb_push(L, rc_squeeze(t, d));
}

/* unsqueeze(dim): the new dimension's position, 1..ndim+1 (or -1 = append at the end). */
static int m_unsqueeze(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int64_t d = rb_check_int(L, 2);
  int nd = t->ndim;
  if (d == 0 || d > nd + 1 || d < -(nd + 1))
    return rb_error(L,
                    "unsqueeze: dimension %lld is out of range for a tensor with %d dimensions "
                    "(expected 1..%d, or -%d..-1 from the end)",
                    (long long)d, nd, nd + 1, nd + 1);
  return rb_push(L, rc_unsqueeze(t, (int)(d > 0 ? d - 1 : d + nd + 1)));
}

static int m_flatten(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int s = rb_opt_dim(L, 2, t->ndim, 0);
  int e = rb_opt_dim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0);
  return rb_push(L, rc_flatten(t, s, e));
}

static int m_contiguous(lua_State *L) {
  return rb_push(L, rc_contiguous(rb_check(L, 1)));
}
static int m_clone(lua_State *L) {
  return rb_push(L, rc_clone(rb_check(L, 1)));
}

static const luaL_Reg methods[] = {{"view", m_view},           {"reshape", m_reshape},
                                   {"view_as", m_view_as},     {"t", m_t},
                                   {"transpose", m_transpose}, {"permute", m_permute},
                                   {"narrow", m_narrow},       {"select", m_select},
                                   {"expand", m_expand},       {"expand_as", m_expand_as},
                                   {"squeeze", m_squeeze},     {"unsqueeze", m_unsqueeze},
                                   {"flatten", m_flatten},     {"contiguous", m_contiguous},
                                   {"clone", m_clone},         {NULL, NULL}};

static const luaL_Reg functions[] = {{"reshape", m_reshape},
                                     {"t", m_t},
                                     {"transpose", m_transpose},
                                     {"permute", m_permute},
                                     {"narrow", m_narrow},
                                     {"select", m_select},
                                     {"squeeze", m_squeeze},
                                     {"unsqueeze", m_unsqueeze},
                                     {"flatten", m_flatten},
                                     {"clone", m_clone},
                                     {NULL, NULL}};

void rb_open_view(lua_State *L, int methods_idx, int module_idx) {
  rb_register(L, methods_idx, module_idx, methods, functions);
}
