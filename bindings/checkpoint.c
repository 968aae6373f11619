/* Lua bindings of the safetensors reader and writer (runtime/safetensors.h), in the internal
 * table recur._safetensors; recur.save / recur.load (lib/recur/checkpoint.lua) build
 * checkpoints on them.
 *
 *   write(path, names, tensors, meta)  names and tensors: parallel lists; meta: string -> string
 *                                      (written with sorted keys, so files are reproducible)
 *   read(path [, skip]) -> names (in data order), tensors (name -> tensor), meta, dtypes (name ->
 *                        dtype); skip: a list of name prefixes whose tensors are listed in names
 *                        and dtypes but not read (absent from tensors) */
#include <stdlib.h>
#include <string.h>

#include "../runtime/safetensors.h"
#include "bind.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int f_write(lua_State *L) {
  const char *path = rb_check_string(L, 1);
  rb_check_table(L, 2);
  int n;
  rc_tensor **ts = rb_tensor_list(L, 3, &n, "save", "the tensor list");
  if (luaL_len(L, 2) != n)
    return rb_error(L, "save: %d names for %d tensors", (int)luaL_len(L, 2), n);
  const char **names = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *names, 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 2, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return rb_error(L, "save: name %d must be a string, got %s", i + 1, luaL_typename(L, -1));
    names[i] = lua_tostring(L, -1); /* the names table keeps it alive */
    lua_pop(L, 1);
  }
  int nm = 0;
  if (!lua_isnoneornil(L, 4)) {
    rb_check_table(L, 4);
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return rb_error(L, "save: metadata keys and values must be strings, got %s = %s",
                        luaL_typename(L, -2), luaL_typename(L, -1));
      nm++;
      lua_pop(L, 1);
    }
  }
  const char **keys = lua_newuserdatauv(L, (size_t)(nm > 0 ? nm : 1) * sizeof *keys, 0);
  const char **vals = lua_newuserdatauv(L, (size_t)(nm > 0 ? nm : 1) * sizeof *vals, 0);
  if (nm > 0) {
    int k = 0;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      keys[k++] = lua_tostring(L, -2);
      lua_pop(L, 1);
    }
    qsort(keys, (size_t)nm, sizeof *keys, cmp_str);
    for (int i = 0; i < nm; i++) {
      lua_getfield(L, 4, keys[i]);
      vals[i] = lua_tostring(L, -1);
      lua_pop(L, 1); /* still referenced by the metadata table */
    }
  }
  if (rc_st_write(rb_ctx(L), path, n, names, ts, nm, keys, vals)) return rb_raise(L);
  return 0;
}

#define HOLDER_MT "recur.safetensors_file"

/* The parsed file lives in a userdata until every tensor is in Lua's hands, so an error
 * (out of memory) on the way frees it. */
static int holder_gc(lua_State *L) {
  rc_st_file **h = lua_touserdata(L, 1);
  if (h && *h) {
    rc_st_file *f = *h;
    *h = NULL;
    rc_st_free(f);
  }
  return 0;
}

static int f_read(lua_State *L) {
  const char *path = rb_check_string(L, 1);
  rc_ctx *c = rb_ctx(L);
  int n_skip = 0;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2))
      return rb_error(L, "load: the skip list must be a table of name prefixes, got %s",
                      luaL_typename(L, 2));
    lua_Integer len = luaL_len(L, 2);
    if (len < 0 || len > 64)
      return rb_error(L, "load: %d name prefixes to skip (at most 64)", (int)len);
    n_skip = (int)len;
  }
  const char *skip[64];
  for (int k = 0; k < n_skip; k++) {
    lua_geti(L, 2, k + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return rb_error(L, "load: skip prefix %d must be a string, got %s", k + 1,
                      luaL_typename(L, -1));
    skip[k] = lua_tostring(L, -1); /* the skip table keeps it alive */
    lua_pop(L, 1);
  }
  rc_st_file **h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = NULL;
  luaL_setmetatable(L, HOLDER_MT);
  rc_st_file *f = rc_st_read_skip(c, path, skip, n_skip);
  if (!f) return rb_raise(L);
  *h = f;
  lua_createtable(L, f->n, 0); /* names */
  lua_createtable(L, 0, f->n); /* tensors */
  lua_createtable(L, 0, f->n_meta);
  lua_createtable(L, 0, f->n); /* dtypes */
  int names = lua_gettop(L) - 3;
  for (int i = 0; i < f->n; i++) {
    lua_pushstring(L, f->names[i]);
    lua_rawseti(L, names, i + 1);
    if (f->tensors[i]) {
      rb_push(L, f->tensors[i]);
      f->tensors[i] = NULL; /* Lua owns it now */
      lua_setfield(L, names + 1, f->names[i]);
    }
    lua_pushstring(L, f->dtypes[i]);
    lua_setfield(L, names + 3, f->names[i]);
  }
  for (int i = 0; i < f->n_meta; i++) {
    lua_pushstring(L, f->meta_values[i]);
    lua_setfield(L, names + 2, f->meta_keys[i]);
  }
  *h = NULL;
  rc_st_free(f);
  return 4;
}

void rb_open_checkpoint(lua_State *L, int methods, int module) {
  (void)methods;
  static const luaL_Reg fns[] = {{"write", f_write}, {"read", f_read}, {NULL, NULL}};
  luaL_newmetatable(L, HOLDER_MT);
  lua_pushcfunction(L, holder_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  rb_setfuncs(L, fns);
  lua_setfield(L, module, "_safetensors");
}
