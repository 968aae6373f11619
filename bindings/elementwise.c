/* Lua bindings: elementwise math, operators, comparisons, where, in-place forms. */
#include <math.h>

#include "../runtime/ops.h"
#include "bind.h"

/* t:add(b, alpha) = t + alpha * b, like torch.add */
static int add_scaled(lua_State *L) {
  rc_tensor *a = rb_check(L, 1);
  float alpha = (float)rb_check_number(L, 3);
  rc_tensor *owned;
  rc_tensor *b = rb_check_tensor_or_number(L, 2, &owned);
  rc_tensor *sb = rc_binary_scalar(RC_MUL, b, alpha, 0);
  rc_release(owned);
  if (!sb) return rb_raise(L);
  rc_tensor *r = rc_binary(RC_ADD, a, sb);
  rc_release(sb);
  return rb_push(L, r);
}

/* a op b where either side may be a number; at least one is a tensor. */
static int binary(lua_State *L, rc_binop op) {
  if (op == RC_ADD && !lua_isnoneornil(L, 3)) return add_scaled(L);
  rc_tensor *a = rb_test(L, 1), *b = rb_test(L, 2);
  if (a && b) return rb_push(L, rc_binary(op, a, b)); /* the hot path: one check per operand */
  int ta = rb_is_tensor(L, 1), tb = rb_is_tensor(L, 2);
  if (ta && tb) return rb_push(L, rc_binary(op, rb_check(L, 1), rb_check(L, 2))); /* closed */
  if (ta && lua_type(L, 2) == LUA_TNUMBER)
    return rb_push(L, rc_binary_scalar(op, rb_check(L, 1), (float)lua_tonumber(L, 2), 0));
  if (tb && lua_type(L, 1) == LUA_TNUMBER)
    return rb_push(L, rc_binary_scalar(op, rb_check(L, 2), (float)lua_tonumber(L, 1), 1));
  return rb_error(L, "%s: operands must be tensors or numbers, got %s and %s", rc_binop_name[op],
                  luaL_typename(L, 1), luaL_typename(L, 2));
}

/* t:<name>_(b): t op= b, b broadcast to t; t:add_(b, alpha) is t += alpha * b */
static int binary_(lua_State *L, rc_binop op) {
  rc_tensor *a = rb_check(L, 1);
  int rc;
  if (op == RC_ADD && !lua_isnoneornil(L, 3)) {
    rc_tensor *b = rb_check(L, 2);
    rc = rc_axpy_(a, (float)rb_check_number(L, 3), b);
  } else if (lua_type(L, 2) == LUA_TNUMBER) {
    rc = rc_binary_scalar_(op, a, (float)lua_tonumber(L, 2));
  } else {
    rc = rc_binary_(op, a, rb_check(L, 2));
  }
  if (rc) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

/* b_<name> for each row of runtime/ops_binary.h, and b_<name>_ for its OPERATOR rows */
#define BIN_INPLACE_OPERATOR(NAME, name)                                                           \
  static int b_##name##_(lua_State *L) {                                                           \
    return binary_(L, RC_##NAME);                                                                  \
  }
#define BIN_INPLACE_FUNCTION(NAME, name)
#define BIN(NAME, name, Node, forward, grad_x, grad_y, saves, weight, forms)                       \
  static int b_##name(lua_State *L) {                                                              \
    return binary(L, RC_##NAME);                                                                   \
  }                                                                                                \
  BIN_INPLACE_##forms(NAME, name)
#define CMP(NAME, name, forward)                                                                   \
  static int b_##name(lua_State *L) {                                                              \
    return binary(L, RC_##NAME);                                                                   \
  }
RC_BINARY_OPS(BIN)
RC_COMPARISON_OPS(CMP)
#undef BIN
#undef CMP
#undef BIN_INPLACE_OPERATOR
#undef BIN_INPLACE_FUNCTION

static int u_unm(lua_State *L) {
  return rb_push(L, rc_unary(RC_NEG, rb_check(L, 1)));
}

static int unary(lua_State *L, rc_unop op) {
  if (!rb_is_tensor(L, 1))
    return rb_error(L, "%s: argument #1 must be a tensor, got %s", rc_unop_name[op],
                    luaL_typename(L, 1));
  return rb_push(L, rc_unary(op, rb_check(L, 1)));
}
static int unary_(lua_State *L, rc_unop op) {
  if (rc_unary_(op, rb_check(L, 1))) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

/* u_<name> and u_<name>_ for each row of runtime/ops_unary.h */
#define UN(NAME, name, ...)                                                                        \
  static int u_##name(lua_State *L) {                                                              \
    return unary(L, RC_##NAME);                                                                    \
  }                                                                                                \
  static int u_##name##_(lua_State *L) {                                                           \
    return unary_(L, RC_##NAME);                                                                   \
  }
RC_UNARY_OPS(UN)
#undef UN

/* clamp(t, min, max): either bound may be nil; also {min=, max=} */
static void clamp_bounds(lua_State *L, float *lo, float *hi) {
  *lo = NAN;
  *hi = NAN;
  if (lua_istable(L, 2)) {
    const char *keys[2] = {"min", "max"};
    float *dst[2] = {lo, hi};
    for (int k = 0; k < 2; k++) {
      lua_getfield(L, 2, keys[k]);
      if (!lua_isnil(L, -1)) {
        int isnum = 0;
        *dst[k] = (float)lua_tonumberx(L, -1, &isnum);
        if (!isnum)
          rb_error(L, "%s: option %s must be a number, got %s", rb_fname(L), keys[k],
                   luaL_typename(L, -1));
      }
      lua_pop(L, 1);
    }
    return;
  }
  if (!lua_isnoneornil(L, 2)) *lo = (float)rb_check_number(L, 2);
  if (!lua_isnoneornil(L, 3)) *hi = (float)rb_check_number(L, 3);
  if (isnan(*lo) && isnan(*hi) && (lua_type(L, 2) == LUA_TNUMBER || lua_type(L, 3) == LUA_TNUMBER))
    rb_error(L, "clamp: bounds must not be NaN");
}

static int m_clamp(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  float lo, hi;
  clamp_bounds(L, &lo, &hi);
  return rb_push(L, rc_clamp(t, lo, hi));
}

static int m_clamp_(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  float lo, hi;
  clamp_bounds(L, &lo, &hi);
  if (rc_clamp_(t, lo, hi)) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

/* recur.where(cond, a, b): a and b may be numbers */
static int f_where(lua_State *L) {
  rc_tensor *cond = rb_check(L, 1);
  rc_tensor *oa, *ob;
  rc_tensor *a = rb_check_tensor_or_number(L, 2, &oa);
  rc_tensor *b = rb_check_tensor_or_number(L, 3, &ob);
  rc_tensor *r = rc_where(cond, a, b);
  rc_release(oa);
  rc_release(ob);
  return rb_push(L, r);
}

static int m_fill_(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (rc_fill_(t, (float)rb_check_number(L, 2))) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

static int m_zero_(lua_State *L) {
  if (rc_fill_(rb_check(L, 1), 0.0f)) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

static int m_copy_(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  rc_tensor *owned;
  rc_tensor *s = rb_check_tensor_or_number(L, 2, &owned);
  int rc = rc_copy_(t, s);
  rc_release(owned);
  if (rc) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

/* The tables read better in columns. */
/* clang-format off */
#define BIN_METHODS(NAME, name, Node, forward, grad_x, grad_y, saves, weight, forms)               \
  {#name, b_##name}, BIN_METHOD_##forms(name)
#define BIN_METHOD_OPERATOR(name) {#name "_", b_##name##_},
#define BIN_METHOD_FUNCTION(name)
#define BIN_META(NAME, name, Node, forward, grad_x, grad_y, saves, weight, forms)                  \
  BIN_META_##forms(name)
#define BIN_META_OPERATOR(name) {"__" #name, b_##name},
#define BIN_META_FUNCTION(name)
#define BIN_FUNCTIONS(NAME, name, ...) {#name, b_##name},
#define UN_METHODS(NAME, name, ...) {#name, u_##name}, {#name "_", u_##name##_},
#define UN_FUNCTIONS(NAME, name, ...) {#name, u_##name},
static const luaL_Reg methods[] = {
    RC_BINARY_OPS(BIN_METHODS) RC_COMPARISON_OPS(BIN_FUNCTIONS) RC_UNARY_OPS(UN_METHODS)
    {"clamp", m_clamp},    {"clamp_", m_clamp_},   {"fill_", m_fill_},
    {"zero_", m_zero_},    {"copy_", m_copy_},     {NULL, NULL}};

static const luaL_Reg functions[] = {
    RC_BINARY_OPS(BIN_FUNCTIONS) RC_COMPARISON_OPS(BIN_FUNCTIONS) RC_UNARY_OPS(UN_FUNCTIONS)
    {"clamp", m_clamp},    {"where", f_where},     {NULL, NULL}};

/* Lua's operators: a + b, a - b, a * b, a / b, a ^ b from the OPERATOR rows, and -a */
static const luaL_Reg meta[] = {RC_BINARY_OPS(BIN_META) {"__unm", u_unm}, {NULL, NULL}};
/* clang-format on */
#undef BIN_METHODS
#undef BIN_METHOD_OPERATOR
#undef BIN_METHOD_FUNCTION
#undef BIN_META
#undef BIN_META_OPERATOR
#undef BIN_META_FUNCTION
#undef BIN_FUNCTIONS
#undef UN_METHODS
#undef UN_FUNCTIONS

void rb_open_elementwise(lua_State *L, int methods_idx, int module_idx) {
  rb_register(L, methods_idx, module_idx, methods, functions);
  luaL_getmetatable(L, RECUR_TENSOR_MT);
  rb_setfuncs(L, meta);
  lua_pop(L, 1);
}
