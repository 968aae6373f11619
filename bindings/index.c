/* Lua bindings: cat, stack, split, chunk, gather, index_select, scatter_add, masked_fill,
 * one_hot. Index tensors from Lua hold 1-based values: they are converted (checked, into a
 * new 0-based copy; the user's tensor is never modified) by rc_index_rebase. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "../runtime/ops.h"
#include "bind.h"

/* A 1-based (or negative) dim argument checked against ndim, returned 0-based. Same
 * contract as rb_check_dim, but the caller names the function (these ops share helpers, so
 * the name cannot come from the call site). */
static int check_dim(lua_State *L, int idx, int ndim, const char *fn) {
  int64_t d = rb_check_int(L, idx);
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    luaL_error(L,
               "%s: dimension %I is out of range for a tensor with %d dimensions "
               "(dimensions are 1-based; -1 is the last)",
               fn, (lua_Integer)d, ndim);
  return (int)(d > 0 ? d - 1 : d + n);
}

static int opt_dim(lua_State *L, int idx, int ndim, const char *fn) {
  return lua_isnoneornil(L, idx) ? 0 : check_dim(L, idx, ndim, fn);
}

/* Reads the list of tensors at idx into a Lua-owned array (no leak if anything raises). */
static rc_tensor **check_tensor_list(lua_State *L, int idx, const char *fn, int *n) {
  if (lua_type(L, idx) != LUA_TTABLE)
    return (rc_tensor **)(luaL_error(L, "%s: argument #%d must be a list of tensors, got %s", fn,
                                     idx, luaL_typename(L, idx)),
                          NULL);
  lua_Integer len = luaL_len(L, idx);
  if (len < 1) return (rc_tensor **)(luaL_error(L, "%s: the list of tensors is empty", fn), NULL);
  if (len > 1 << 20)
    return (rc_tensor **)(luaL_error(L, "%s: %I tensors is too many", fn, (lua_Integer)len), NULL);
  rc_tensor **ts = lua_newuserdatauv(L, (size_t)len * sizeof *ts, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, idx, i);
    rb_tensor *u = luaL_testudata(L, -1, RECUR_TENSOR_MT);
    if (!u)
      luaL_error(L, "%s: element %d of the list must be a tensor, got %s", fn, (int)i,
                 luaL_typename(L, -1));
    if (!u->t) luaL_error(L, "%s: element %d of the list is a closed tensor", fn, (int)i);
    ts[i - 1] = u->t;
    lua_pop(L, 1);
  }
  *n = (int)len;
  return ts; /* the userdata stays on the stack until the function returns */
}

/* recur.cat({tensors}, dim = 1) */
static int f_cat(lua_State *L) {
  lua_settop(L, 2); /* the list's buffer goes above the arguments */
  int n;
  rc_tensor **ts = check_tensor_list(L, 1, "cat", &n);
  int dim = opt_dim(L, 2, ts[0]->ndim, "cat");
  return rb_push(L, rc_cat(ts, n, dim));
}

/* recur.stack({tensors}, dim = 1): dim may be 1..ndim+1 (-1: a new last dim) */
static int f_stack(lua_State *L) {
  lua_settop(L, 2);
  int n;
  rc_tensor **ts = check_tensor_list(L, 1, "stack", &n);
  int dim = opt_dim(L, 2, ts[0]->ndim + 1, "stack");
  return rb_push(L, rc_stack(ts, n, dim));
}

/* Pushes the pieces as a Lua list and frees the array. */
static int push_pieces(lua_State *L, int rc, rc_tensor **ps, int n) {
  if (rc) return rb_raise(L);
  return rb_push_n(L, ps, n, 1, 1); /* leaks nothing if Lua runs out of memory */
}

/* t:split(size, dim = 1) -> list of views */
static int m_split(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int64_t size = rb_check_int(L, 2);
  if (size < 1)
    return luaL_error(L, "split: argument #2 (size) must be positive, got %I", (lua_Integer)size);
  int dim = opt_dim(L, 3, t->ndim, "split");
  rc_tensor **ps;
  int n;
  int rc = rc_split(t, size, dim, &ps, &n);
  return push_pieces(L, rc, ps, n);
}

/* t:chunk(n, dim = 1) -> list of at most n views */
static int m_chunk(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int64_t chunks = rb_check_int(L, 2);
  if (chunks < 1 || chunks > INT_MAX)
    return luaL_error(L, "chunk: argument #2 (number of chunks) must be between 1 and %d, got %I",
                      INT_MAX, (lua_Integer)chunks);
  int dim = opt_dim(L, 3, t->ndim, "chunk");
  rc_tensor **ps;
  int n;
  int rc = rc_chunk(t, (int)chunks, dim, &ps, &n);
  return push_pieces(L, rc, ps, n);
}

/* The index argument at idx (a tensor, or a flat list of numbers), checked to hold
 * integers in 1..n (n < 0: no upper bound) and converted to a new 0-based tensor. Raises
 * on bad input; the caller owns the result. */
static rc_tensor *check_index(lua_State *L, int idx, int64_t n, const char *fn, const char *what) {
  rc_tensor *src = NULL, *owned = NULL;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, idx);
    if (len < 0 || len > RC_MAX_NUMEL) luaL_error(L, "%s: argument #%d has a bad length", fn, idx);
    float *buf = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof(float), 0);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      int isnum = 0;
      lua_Number v = lua_tonumberx(L, -1, &isnum);
      if (!isnum)
        luaL_error(L, "%s: entry %d of the index list (argument #%d) must be a number, got %s", fn,
                   (int)i, idx, luaL_typename(L, -1));
      buf[i - 1] = (float)v;
      lua_pop(L, 1);
    }
    int64_t size = len;
    owned = rc_from_data(rb_ctx(L), 1, &size, buf);
    lua_pop(L, 1);
    if (!owned) rb_raise(L);
    src = owned;
  } else if (rb_is_tensor(L, idx)) {
    src = rb_check(L, idx);
  } else {
    luaL_error(L, "%s: argument #%d (index) must be a tensor or a list of integers, got %s", fn,
               idx, luaL_typename(L, idx));
  }
  rc_tensor *r = rc_index_rebase(src, 1, n, fn, what);
  rc_release(owned);
  if (!r) rb_raise(L);
  return r;
}

static const char *dim_what(char *buf, size_t len, rc_tensor *t, int dim) {
  snprintf(buf, len, "dimension %d of size %lld", dim + 1, (long long)(t->ndim ? t->size[dim] : 1));
  return buf;
}

enum { GATHER, INDEX_SELECT, SCATTER_ADD };

/* t:gather(dim, index), t:index_select(dim, index) and t:scatter_add(dim, index, src): src is
 * checked before the index is converted (a new 0-based copy, released here). */
static int dim_index_op(lua_State *L, const char *fn, int op) {
  rc_tensor *t = rb_check(L, 1);
  int dim = check_dim(L, 2, t->ndim, fn);
  rc_tensor *src = op == SCATTER_ADD ? rb_check(L, 4) : NULL;
  char w[96];
  rc_tensor *index =
      check_index(L, 3, t->ndim ? t->size[dim] : 1, fn, dim_what(w, sizeof w, t, dim));
  rc_tensor *r = op == GATHER         ? rc_gather(t, dim, index)
                 : op == INDEX_SELECT ? rc_index_select(t, dim, index)
                                      : rc_scatter_add(t, dim, index, src);
  rc_release(index);
  return rb_push(L, r);
}

static int m_gather(lua_State *L) {
  return dim_index_op(L, "gather", GATHER);
}

/* index: a 1-D tensor or a list of integers */
static int m_index_select(lua_State *L) {
  return dim_index_op(L, "index_select", INDEX_SELECT);
}

/* -> t + src scattered along dim (out of place) */
static int m_scatter_add(lua_State *L) {
  return dim_index_op(L, "scatter_add", SCATTER_ADD);
}

/* t:masked_fill(mask, value): value where mask != 0 (mask broadcast to t) */
static int m_masked_fill(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  rc_tensor *mask = rb_check(L, 2);
  float v = (float)rb_check_number(L, 3);
  return rb_push(L, rc_masked_fill(t, mask, v));
}

/* recur.one_hot(index, classes) / index:one_hot(classes): 1-based class ids in 1..classes;
 * classes omitted: the largest id. */
static int f_one_hot(lua_State *L) {
  int64_t classes = -1;
  if (!lua_isnoneornil(L, 2)) {
    classes = rb_check_int(L, 2);
    if (classes < 1)
      return luaL_error(L, "one_hot: argument #2 (classes) must be positive, got %I",
                        (lua_Integer)classes);
  }
  char w[64];
  snprintf(w, sizeof w, "%lld classes", (long long)classes);
  rc_tensor *index = check_index(L, 1, classes, "one_hot", w);
  rc_tensor *r = rc_one_hot(index, classes);
  rc_release(index);
  return rb_push(L, r);
}

static const luaL_Reg methods[] = {{"split", m_split},
                                   {"chunk", m_chunk},
                                   {"gather", m_gather},
                                   {"index_select", m_index_select},
                                   {"scatter_add", m_scatter_add},
                                   {"masked_fill", m_masked_fill},
                                   {"one_hot", f_one_hot},
                                   {NULL, NULL}};

static const luaL_Reg functions[] = {{"cat", f_cat},
                                     {"stack", f_stack},
                                     {"split", m_split},
                                     {"chunk", m_chunk},
                                     {"gather", m_gather},
                                     {"index_select", m_index_select},
                                     {"scatter_add", m_scatter_add},
                                     {"masked_fill", m_masked_fill},
                                     {"one_hot", f_one_hot},
                                     {NULL, NULL}};

void rb_open_index(lua_State *L, int methods_idx, int module_idx) {
  rb_register(L, methods_idx, module_idx, methods, functions);
}
