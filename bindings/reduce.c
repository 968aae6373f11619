/* Lua bindings: reduce ops (placeholder until implemented). */
#include "bind.h"

void rb_open_reduce(lua_State *L, int methods, int module) {
  (void)L;
  (void)methods;
  (void)module;
}
