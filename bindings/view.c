/* Lua bindings: view ops (placeholder until implemented). */
#include "bind.h"

void rb_open_view(lua_State *L, int methods, int module) {
  (void)L;
  (void)methods;
  (void)module;
}
