/* Lua bindings: matmul, mm, bmm, mv, dot, outer. */
#include "../runtime/ops.h"
#include "bind.h"

/* A live tensor argument; the message names `fn` itself (rb_check takes the name from the
 * call site, which is "?" when the function is called through pcall). */
static rc_tensor *arg(lua_State *L, int idx, const char *fn) {
  rb_tensor *u = luaL_testudata(L, idx, RECUR_TENSOR_MT);
  if (!u)
    return (rc_tensor *)(luaL_error(L, "%s: argument #%d must be a tensor, got %s", fn, idx,
                                    luaL_typename(L, idx)),
                         NULL);
  if (!u->t)
    return (rc_tensor *)(luaL_error(L, "%s: argument #%d is a closed tensor", fn, idx), NULL);
  return u->t;
}

#define BIN(NAME, CALL)                                                                            \
  static int f_##NAME(lua_State *L) {                                                              \
    rc_tensor *a = arg(L, 1, #NAME), *b = arg(L, 2, #NAME);                                        \
    return rb_push(L, CALL(a, b));                                                                 \
  }
BIN(matmul, rc_matmul)
BIN(mm, rc_mm)
BIN(bmm, rc_bmm)
BIN(mv, rc_mv)
BIN(dot, rc_dot)
BIN(outer, rc_outer)

static const luaL_Reg fns[] = {{"matmul", f_matmul}, {"mm", f_mm},   {"bmm", f_bmm},
                               {"mv", f_mv},         {"dot", f_dot}, {"outer", f_outer},
                               {NULL, NULL}};

void rb_open_linalg(lua_State *L, int methods, int module) {
  rb_register(L, methods, module, fns, fns);
}
