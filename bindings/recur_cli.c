/* The `recur` program: Lua 5.4 with recur preloaded (placeholder: runs a script). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

int luaopen_recur(lua_State *L);

int main(int argc, char **argv) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "recur", luaopen_recur, 0);
  lua_pop(L, 1);
  int rc = 0;
  if (argc > 1 && luaL_dofile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "recur: %s\n", lua_tostring(L, -1));
    rc = 1;
  }
  lua_close(L);
  return rc;
}
