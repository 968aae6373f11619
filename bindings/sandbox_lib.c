/* The Lua standard library in the embedding sandbox: wrappers that charge the work budget for
 * what a call touches before (or, where only the result tells, after) the original runs.
 *
 * The count hook sees one instruction for a call into C however long the call loops, and the
 * embedding's allocator charges the bytes a call allocates (bindings/embed.c), so what needs a
 * wrapper is a C function whose work is not in proportion to what it allocates: it reads long
 * strings or many table entries, pushes many values on a stack that is already grown, or
 * compares strings. Units are the runtime's (runtime/context.h), a few ns each: one or two
 * per Lua value handled or per table comparison, one per byte parsed by load, string.pack's
 * formats; one per 2 to 4 bytes decoded one at a time (numbers, UTF-8, string.format), one
 * per 8 bytes changed (upper, lower, reverse), one per 16 compared, one per 64 bytes of heap
 * a full collection walks (the allocator charges one per 32 bytes allocated). Functions not
 * wrapped here do constant work, or work in proportion to the memory they allocate
 * (string.rep/sub, table.pack, concatenation), or are the pattern functions of
 * sandbox_str.c. See docs/embedding.md, "Instruction budget". */
#include <lualib.h>
#include <string.h>

#include "bind.h"

/* Charges units; once the budget is spent, raises, and sets this thread's count hook to fire
 * at the next instruction (the runtime's hook then raises again, so a pcall around the call
 * does not let the script go on). */
#define MAX_UNITS ((uint64_t)1 << 60) /* larger charges saturate (no wrap-around) */

static void charge(lua_State *L, const char *fn, uint64_t units) {
  rc_ctx *c = rb_ctx(L);
  if (!rc_charge(c, fn, units < MAX_UNITS ? units : MAX_UNITS)) return;
  lua_Hook h = lua_gethook(L);
  if (h) lua_sethook(L, h, lua_gethookmask(L) | LUA_MASKCOUNT, 1);
  luaL_error(L, "%s", c->err);
}

static uint64_t count_between(lua_Integer i, lua_Integer j) {
  if (j < i) return 0;
  uint64_t n = (uint64_t)j - (uint64_t)i;
  return n < MAX_UNITS ? n + 1 : MAX_UNITS;
}

/* Runs the original (upvalue 1) on the arguments in place; returns all its results. A C
 * function without upvalues (the library's own) is called directly in this frame, so that
 * its argument errors name the function the script called ("bad argument #2 to 'len'");
 * others (the sandbox's wrappers of load and collectgarbage) through lua_call. */
static int call_original(lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
  if (f && lua_getupvalue(L, lua_upvalueindex(1), 1) == NULL) return f(L);
  if (f) lua_pop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* Lua's own rule for a relative string position (lstrlib.c, posrelatI). */
static size_t posrel(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0) return 1;
  if (pos < -(lua_Integer)len) return 1;
  return len + (size_t)pos + 1;
}

/* ---- base ---- */

/* load(chunk, ...): parsing costs about 15 ns a byte, one unit a byte here (the allocator
 * sees only the code it makes); a reader function's pieces are charged as they come, since one
 * string can be returned again and again. */
static int charged_reader(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 0, 1);
  if (lua_type(L, -1) == LUA_TSTRING) charge(L, "load", lua_rawlen(L, -1) + 1);
  return 1;
}

static int sb_load(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    charge(L, "load", lua_rawlen(L, 1) + 1);
  } else if (lua_type(L, 1) == LUA_TFUNCTION) {
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, charged_reader, 1);
    lua_replace(L, 1);
  }
  return call_original(L);
}

/* collectgarbage("collect"/"step"): a full collection walks the whole heap, and one step can
 * finish a cycle; both are charged as a walk of the Lua heap, one unit per 64 bytes (about
 * 0.2 ns a byte of small tables; tensor data is not walked). */
static int sb_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "collect") == 0 || strcmp(opt, "step") == 0) {
    size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    charge(L, "collectgarbage", heap / 64 + 1);
  }
  return call_original(L);
}

/* tonumber(s [, base]) reads all of s. */
static int sb_tonumber(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) charge(L, "tonumber", lua_rawlen(L, 1) / 4 + 1);
  return call_original(L);
}

/* The string metatable's arithmetic (s + 0 converts s by these C metamethods): the strings
 * are parsed. */
static int sb_strarith(lua_State *L) {
  uint64_t bytes = 0;
  for (int i = 1; i <= 2; i++)
    if (lua_type(L, i) == LUA_TSTRING) bytes += lua_rawlen(L, i);
  charge(L, "string arithmetic", bytes / 4 + 1);
  return call_original(L);
}

/* rawequal of two strings of one length compares their bytes. */
static int sb_rawequal(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING &&
      lua_rawlen(L, 1) == lua_rawlen(L, 2))
    charge(L, "rawequal", lua_rawlen(L, 1) / 16 + 1);
  return call_original(L);
}

/* ---- table ---- */

/* The default order of table.sort for strings, charged per comparison: a unit, and the
 * bytes strcoll may read. */
static int sort_less(lua_State *L) {
  uint64_t units = 1;
  if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING) {
    size_t a = lua_rawlen(L, 1), b = lua_rawlen(L, 2);
    units += (a < b ? a : b) / 16;
  }
  charge(L, "table.sort", units);
  lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
  return 1;
}

/* table.sort(t [, comp]): the comparisons and moves (about 2 n log2 n units). Comparing
 * strings reads their bytes: with the default order and a string (or a metatable, whose
 * __index could hand out strings) in t, each comparison goes through sort_less. A comparison
 * function given runs under the count hook (or is one of the library's C functions, charged). */
static int sb_sort(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n > 1) {
    uint64_t lg = 1;
    while (lg < 62 && ((uint64_t)1 << lg) < (uint64_t)n) lg++;
    charge(L, "table.sort", n < ((lua_Integer)1 << 50) ? (uint64_t)n * lg * 2 + 1 : MAX_UNITS);
  }
  if (lua_isnoneornil(L, 2)) {
    int strings = lua_getmetatable(L, 1);
    for (lua_Integer i = 1; i <= n && !strings; i++) {
      strings = lua_rawgeti(L, 1, i) == LUA_TSTRING;
      lua_pop(L, 1);
    }
    lua_settop(L, 1);
    if (strings) lua_pushcfunction(L, sort_less);
  }
  return call_original(L);
}

/* table.concat(t [, sep [, i [, j]]]) and table.unpack(t [, i [, j]]): two units and one a
 * value (the bytes of the result are charged by the allocator). */
static int sb_concat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  lua_Integer j = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
  charge(L, "table.concat", count_between(i, j) * 2 + 1);
  return call_original(L);
}

static int sb_unpack(lua_State *L) {
  lua_Integer i = luaL_optinteger(L, 2, 1);
  lua_Integer j = lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
  charge(L, "table.unpack", count_between(i, j) + 1);
  return call_original(L);
}

/* ---- string and utf8 ---- */

/* string.byte(s, i, j) and utf8.codepoint(s, i, j): up to one value per byte of s[i..j]. */
static int charge_slice(lua_State *L, const char *fn) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer i = luaL_optinteger(L, 2, 1);
  size_t lo = posrel(i, len), hi = posrel(luaL_optinteger(L, 3, i), len);
  if (hi > len) hi = len;
  charge(L, fn, hi >= lo ? (uint64_t)(hi - lo + 1) : 1);
  return call_original(L);
}

static int sb_byte(lua_State *L) {
  return charge_slice(L, "string.byte");
}

static int sb_codepoint(lua_State *L) {
  return charge_slice(L, "utf8.codepoint");
}

/* string.char(...): one unit a value; utf8.char(...): four (it formats each). */
static int sb_char(lua_State *L) {
  charge(L, "string.char", (uint64_t)lua_gettop(L) + 1);
  return call_original(L);
}

static int sb_utf8char(lua_State *L) {
  charge(L, "utf8.char", (uint64_t)lua_gettop(L) * 4 + 1);
  return call_original(L);
}

/* string.upper/lower/reverse: one pass over s a byte at a time (its copy is charged by the
 * allocator). */
static int sb_bytewise(lua_State *L) {
  size_t n;
  luaL_checklstring(L, 1, &n);
  charge(L, "string.upper", n / 8 + 1);
  return call_original(L);
}

/* string.pack/packsize/unpack read their format one byte at a time (and unpack may return a
 * value for every two bytes of it). */
static int sb_packfmt(lua_State *L) {
  size_t n;
  luaL_checklstring(L, 1, &n);
  charge(L, "string.pack", n + 1);
  return call_original(L);
}

/* utf8.len(s [, i [, j]]) decodes s[i..j]. */
static int sb_utf8len(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  size_t lo = posrel(luaL_optinteger(L, 2, 1), len);
  size_t hi = posrel(luaL_optinteger(L, 3, -1), len);
  if (hi > len) hi = len;
  charge(L, "utf8.len", hi >= lo ? (uint64_t)(hi - lo + 1) / 2 + 1 : 1);
  return call_original(L);
}

/* string.format(fmt, ...): the format and the strings it copies (%q escapes one a byte). */
static int sb_format(lua_State *L) {
  uint64_t bytes = 0;
  for (int i = 1, n = lua_gettop(L); i <= n; i++)
    if (lua_type(L, i) == LUA_TSTRING) bytes += lua_rawlen(L, i);
  charge(L, "string.format", bytes / 4 + 1);
  return call_original(L);
}

/* utf8.offset(s, n [, i]) walks from i until it has counted n characters: charged after the
 * call by the distance walked (the whole string when it found none). */
static int sb_utf8offset(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer n = luaL_checkinteger(L, 2);
  size_t from = posrel(luaL_optinteger(L, 3, n >= 0 ? 1 : (lua_Integer)len + 1), len);
  int nres = call_original(L);
  size_t walked = len;
  int first = lua_gettop(L) - nres + 1; /* the results are the top nres values */
  if (nres > 0 && lua_isinteger(L, first)) {
    lua_Integer at = lua_tointeger(L, first);
    size_t to = at > 0 ? (size_t)at : 0;
    walked = to > from ? to - from : from - to;
  }
  charge(L, "utf8.offset", walked / 4 + 1);
  return nres;
}

/* utf8.codes(s): each step of the iterator skips continuation bytes, all of them in one step
 * on a string such as "a" .. ("\x80"):rep(1e6); its steps are charged by the bytes they pass. */
static int codes_step(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer from = luaL_optinteger(L, 2, 0);
  lua_settop(L, 2);
  int nres = call_original(L);
  int first = lua_gettop(L) - nres + 1; /* the results are the top nres values */
  lua_Integer to = nres > 0 && lua_isinteger(L, first) ? lua_tointeger(L, first) : (lua_Integer)len;
  charge(L, "utf8.codes", to > from ? (uint64_t)(to - from) / 4 + 1 : 1);
  return nres;
}

static int sb_codes(lua_State *L) {
  int n = call_original(L);
  int first = lua_gettop(L) - n + 1; /* the results are the top n values */
  if (n >= 1 && lua_isfunction(L, first)) {
    lua_pushvalue(L, first);
    lua_pushcclosure(L, codes_step, 1);
    lua_replace(L, first);
  }
  return n;
}

/* Replaces t[name] (t at idx) by a closure of f over the old value. */
static void wrap(lua_State *L, int idx, const char *name, lua_CFunction f) {
  lua_getfield(L, idx, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, idx, name);
}

/* Installs the wrappers over the globals and the string, table and utf8 tables as they are
 * now (call it after the sandbox's other wrappers, which these then call). */
void rb_sandbox_lib(lua_State *L) {
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  wrap(L, g, "load", sb_load);
  wrap(L, g, "collectgarbage", sb_collectgarbage);
  wrap(L, g, "tonumber", sb_tonumber);
  wrap(L, g, "rawequal", sb_rawequal);
  lua_getfield(L, g, LUA_TABLIBNAME);
  int t = lua_gettop(L);
  wrap(L, t, "sort", sb_sort);
  wrap(L, t, "concat", sb_concat);
  wrap(L, t, "unpack", sb_unpack);
  lua_getfield(L, g, LUA_STRLIBNAME);
  int s = lua_gettop(L);
  wrap(L, s, "byte", sb_byte);
  wrap(L, s, "char", sb_char);
  wrap(L, s, "format", sb_format);
  wrap(L, s, "upper", sb_bytewise);
  wrap(L, s, "lower", sb_bytewise);
  wrap(L, s, "reverse", sb_bytewise);
  wrap(L, s, "pack", sb_packfmt);
  wrap(L, s, "packsize", sb_packfmt);
  wrap(L, s, "unpack", sb_packfmt);
  lua_getfield(L, g, LUA_UTF8LIBNAME);
  int u = lua_gettop(L);
  wrap(L, u, "len", sb_utf8len);
  wrap(L, u, "offset", sb_utf8offset);
  wrap(L, u, "codepoint", sb_codepoint);
  wrap(L, u, "char", sb_utf8char);
  wrap(L, u, "codes", sb_codes);
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1)) {
    int mt = lua_gettop(L);
    static const char *const arith[] = {"__add", "__sub", "__mul",  "__div", "__mod",
                                        "__pow", "__unm", "__idiv", NULL};
    for (int i = 0; arith[i]; i++) {
      if (lua_getfield(L, mt, arith[i]) == LUA_TFUNCTION) {
        lua_pushcclosure(L, sb_strarith, 1);
        lua_setfield(L, mt, arith[i]);
      } else {
        lua_pop(L, 1);
      }
    }
  }
  lua_settop(L, g - 1);
}
