/* Lua bindings for the data loaders (runtime/data.h). They live in the table recur._data and
 * are wrapped by the Lua half (lib/recur/data.lua), which is what users call:
 *
 *   _data.load_idx(path[, scale])            scale nil: auto (ubyte images / 255), true, false
 *   _data.parse_idx(bytes[, name[, scale]])  the same from a string
 *   _data.text_symbols(str, mode)            sorted distinct bytes / code points (a tensor)
 *   _data.text_encode(str, mode, codes, unknown, replace_id)   1-based ids
 *   _data.text_decode(ids, mode, codes)      a string
 *   _data.pad_batch(tokens, starts, lengths, index, pad, batch_first)  -> batch, padding
 * mode is "byte" or "utf8"; unknown is "error", "skip" or "replace"; starts, index and ids
 * are 1-based. */
#include <string.h>

#include "../runtime/data.h"
#include "bind.h"

static int check_mode(lua_State *L, int idx, const char *fn) {
  const char *m = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
  if (m && strcmp(m, "byte") == 0) return RC_TEXT_BYTE;
  if (m && strcmp(m, "utf8") == 0) return RC_TEXT_UTF8;
  return rb_error(L, "%s: argument #%d (mode) must be \"byte\" or \"utf8\", got %s", fn, idx,
                  m ? m : luaL_typename(L, idx));
}

static const char *check_str(lua_State *L, int idx, const char *fn, const char *what, size_t *len) {
  if (lua_type(L, idx) != LUA_TSTRING)
    rb_error(L, "%s: argument #%d (%s) must be a string, got %s", fn, idx, what,
             luaL_typename(L, idx));
  return lua_tolstring(L, idx, len);
}

static int opt_scale(lua_State *L, int idx, const char *fn) {
  if (lua_isnoneornil(L, idx)) return RC_IDX_SCALE_AUTO;
  if (!lua_isboolean(L, idx))
    return rb_error(L, "%s: argument #%d (scale) must be a boolean or nil, got %s", fn, idx,
                    luaL_typename(L, idx));
  return lua_toboolean(L, idx) ? RC_IDX_SCALE_255 : RC_IDX_SCALE_NONE;
}

static int f_load_idx(lua_State *L) {
  const char *path = check_str(L, 1, "load_idx", "path", NULL);
  int scale = opt_scale(L, 2, "load_idx");
  return rb_push(L, rc_load_idx(rb_ctx(L), "load_idx", path, scale));
}

static int f_parse_idx(lua_State *L) {
  size_t n;
  const char *s = check_str(L, 1, "parse_idx", "bytes", &n);
  const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "(string)";
  int scale = opt_scale(L, 3, "parse_idx");
  return rb_push(L, rc_parse_idx(rb_ctx(L), "parse_idx", name, (const unsigned char *)s, n, scale));
}

static int f_text_symbols(lua_State *L) {
  size_t n;
  const char *s = check_str(L, 1, "Vocab.build", "text", &n);
  int mode = check_mode(L, 2, "Vocab.build");
  return rb_push(L, rc_text_symbols(rb_ctx(L), "Vocab.build", (const unsigned char *)s, n, mode));
}

static int f_text_encode(lua_State *L) {
  const char *fn = "encode";
  size_t n;
  const char *s = check_str(L, 1, fn, "text", &n);
  int mode = check_mode(L, 2, fn);
  rc_tensor *codes = rb_check(L, 3);
  const char *u = lua_type(L, 4) == LUA_TSTRING ? lua_tostring(L, 4) : "";
  int unknown = strcmp(u, "error") == 0     ? RC_UNKNOWN_ERROR
                : strcmp(u, "skip") == 0    ? RC_UNKNOWN_SKIP
                : strcmp(u, "replace") == 0 ? RC_UNKNOWN_REPLACE
                                            : -1;
  if (unknown < 0)
    return rb_error(L, "%s: unknown must be \"error\", \"skip\" or \"replace\", got %s", fn,
                    lua_type(L, 4) == LUA_TSTRING ? u : luaL_typename(L, 4));
  int64_t rep = unknown == RC_UNKNOWN_REPLACE ? rb_check_int(L, 5) : 0;
  return rb_push(
      L, rc_text_encode(rb_ctx(L), fn, (const unsigned char *)s, n, mode, codes, unknown, rep, 1));
}

static int f_text_decode(lua_State *L) {
  const char *fn = "decode";
  rc_tensor *ids = rb_check(L, 1);
  int mode = check_mode(L, 2, fn);
  rc_tensor *codes = rb_check(L, 3);
  size_t len;
  if (rc_text_decode_len(rb_ctx(L), fn, ids, mode, codes, 1, &len)) return rb_raise(L);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, len ? len : 1);
  if (rc_text_decode_into(rb_ctx(L), fn, ids, mode, codes, 1, p)) return rb_raise(L);
  luaL_pushresultsize(&b, len);
  return 1;
}

static int f_pad_batch(lua_State *L) {
  const char *fn = "pad_batch";
  rc_tensor *tokens = rb_check(L, 1), *starts = rb_check(L, 2), *lengths = rb_check(L, 3),
            *index = rb_check(L, 4);
  if (lua_type(L, 5) != LUA_TNUMBER)
    return rb_error(L, "%s: argument #5 (pad) must be a number, got %s", fn, luaL_typename(L, 5));
  float pad = (float)lua_tonumber(L, 5);
  int batch_first = lua_toboolean(L, 6);
  int64_t padding = 0;
  rb_push(L, rc_pad_batch(rb_ctx(L), fn, tokens, starts, lengths, index, pad, batch_first, 1,
                          &padding));
  lua_pushinteger(L, (lua_Integer)padding);
  return 2;
}

static const luaL_Reg data_funcs[] = {{"load_idx", f_load_idx},
                                      {"parse_idx", f_parse_idx},
                                      {"text_symbols", f_text_symbols},
                                      {"text_encode", f_text_encode},
                                      {"text_decode", f_text_decode},
                                      {"pad_batch", f_pad_batch},
                                      {NULL, NULL}};

void rb_open_data(lua_State *L, int methods, int module) {
  (void)methods;
  lua_newtable(L);
  rb_setfuncs(L, data_funcs);
  lua_setfield(L, module, "_data");
}
