/* Lua bindings: linalg ops (placeholder until implemented). */
#include "bind.h"

void rb_open_linalg(lua_State *L, int methods, int module) {
  (void)L;
  (void)methods;
  (void)module;
}
