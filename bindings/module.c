/* luaopen_recur: builds the module table from every bindings file, then runs the Lua
 * half of the library (lib/recur/init.lua, compiled into the binary). */
#include <stdio.h>
#include <string.h>

#include "bind.h"

typedef struct {
  const char *name;
  const unsigned char *src;
  size_t len;
} rb_embedded;
extern const rb_embedded rb_embedded_lua[];

static const rb_embedded *find_embedded(const char *name) {
  for (const rb_embedded *e = rb_embedded_lua; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

const unsigned char *rb_embedded_source(const char *name, size_t *len) {
  const rb_embedded *e = find_embedded(name);
  if (!e) return NULL;
  *len = e->len;
  return e->src;
}

/* Chunk names point at the source file: "recur.data.sets" -> lib/recur/data/sets.lua
 * (and "recur" -> lib/recur/init.lua), so error positions name a real file. */
static int load_embedded(lua_State *L, const rb_embedded *e) {
  char chunk[256];
  static const char dir[] = "@lib/";
  int k = snprintf(chunk, sizeof chunk, "%s%s", dir, e->name);
  if (k < 0 || (size_t)k >= sizeof chunk - 12) k = (int)strlen(chunk);
  for (char *p = chunk + sizeof dir - 1; *p; p++)
    if (*p == '.') *p = '/';
  snprintf(chunk + k, sizeof chunk - (size_t)k, "%s",
           strcmp(e->name, "recur") == 0 ? "/init.lua" : ".lua");
  return luaL_loadbufferx(L, (const char *)e->src, e->len, chunk, "t");
}

/* Pushes the compiled chunk of an embedded module, or returns the load status with the message
 * pushed. The embedding API loads private copies of the checkpoint loader with it. */
int rb_load_embedded(lua_State *L, const char *name) {
  const rb_embedded *e = find_embedded(name);
  if (!e) {
    lua_pushfstring(L, "recur: embedded module %s is missing", name);
    return LUA_ERRFILE;
  }
  return load_embedded(L, e);
}

/* package.preload loader for an embedded module (upvalue 1: its name). */
static int preload_loader(lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(1));
  const rb_embedded *e = find_embedded(name);
  if (!e) return luaL_error(L, "recur: embedded module %s is missing", name);
  if (load_embedded(L, e) != LUA_OK) return lua_error(L);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  return 1;
}

static void install_preloads(lua_State *L) {
  if (lua_getglobal(L, "package") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  if (lua_getfield(L, -1, "preload") != LUA_TTABLE) {
    lua_pop(L, 2);
    return;
  }
  for (const rb_embedded *e = rb_embedded_lua; e->name; e++) {
    if (strcmp(e->name, "recur") == 0) continue;
    lua_pushstring(L, e->name);
    lua_pushcclosure(L, preload_loader, 1);
    lua_setfield(L, -2, e->name);
  }
  lua_pop(L, 2);
}

int luaopen_recur(lua_State *L) {
  luaL_newmetatable(L, RECUR_TENSOR_MT);
  lua_pop(L, 1);
  lua_newtable(L); /* methods */
  int methods = lua_gettop(L);
  lua_newtable(L); /* module */
  int module = lua_gettop(L);
  rb_set_tables(L, methods, module);
  rb_open_tensor(L, methods, module);
  rb_open_elementwise(L, methods, module);
  rb_open_view(L, methods, module);
  rb_open_reduce(L, methods, module);
  rb_open_linalg(L, methods, module);
  rb_open_index(L, methods, module);
  rb_open_autograd(L, methods, module);
  rb_open_random(L, methods, module);
  rb_open_system(L, methods, module);
  rb_open_data(L, methods, module);
  rb_open_rnn(L, methods, module);
  rb_open_sample(L, methods, module);
  rb_open_generate(L, methods, module);
  rb_open_nn(L, methods, module);
  rb_open_optim(L, methods, module);
  rb_open_checkpoint(L, methods, module);
  rb_open_sort(L, methods, module);
  rb_open_shape(L, methods, module);
  rb_open_gemm_trace(L, methods, module);
  rb_open_profile(L, methods, module);
  lua_pushvalue(L, methods);
  lua_setfield(L, module, "Tensor"); /* methods table: add Lua methods here */
  install_preloads(L);
  /* Make `require "recur"` inside the Lua half return this same table. */
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    lua_getfield(L, -1, "loaded");
    if (lua_istable(L, -1)) {
      lua_pushvalue(L, module);
      lua_setfield(L, -2, "recur");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  const rb_embedded *init = find_embedded("recur");
  if (init) {
    if (load_embedded(L, init) != LUA_OK) return lua_error(L);
    lua_pushvalue(L, module);
    lua_call(L, 1, 0);
  }
  lua_pushvalue(L, module);
  return 1;
}

/* Entry points for a stock lua5.4 that runs `require "recur.experiment"` before (or without)
 * `require "recur"`: its all-in-one C searcher finds recur.so and calls luaopen_recur_<name>,
 * which loads recur first (installing the preloads), then the embedded module. */
static int open_submodule(lua_State *L, const char *name) {
  luaL_requiref(L, "recur", luaopen_recur, 0);
  lua_pop(L, 1);
  const rb_embedded *e = find_embedded(name);
  if (!e) return luaL_error(L, "recur: embedded module %s is missing", name);
  if (load_embedded(L, e) != LUA_OK) return lua_error(L);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  return 1;
}

int luaopen_recur_mpi(lua_State *L);
int luaopen_recur_mpi(lua_State *L) {
  return open_submodule(L, "recur.mpi");
}

int luaopen_recur_experiment(lua_State *L);
int luaopen_recur_experiment(lua_State *L) {
  return open_submodule(L, "recur.experiment");
}
int luaopen_recur_plot(lua_State *L);
int luaopen_recur_plot(lua_State *L) {
  return open_submodule(L, "recur.plot");
}
