/* The guards of a runtime's scripts (host_runtime.h): the instruction budget (a count hook
 * plus the runtime's work counter), the sandbox (no io, os but clock and time, debug, C
 * loaders, binary chunks or string.dump; no __gc from scripts; require searches preload and the
 * host's path; the standard functions that loop in C charge the budget), pcall, xpcall,
 * coroutines and print as every runtime has them, and the private environment of the host's
 * checkpoint loader. The host API itself is bindings/embed.c. */
#include <cblas.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_runtime.h"

/* bindings/sandbox_str.c: string.find/match/gmatch/gsub that charge the work budget. */
void rb_sandbox_strings(lua_State *L, int string_table);
/* bindings/sandbox_lib.c: the rest of the standard library, charging what it touches. */
void rb_sandbox_lib(lua_State *L);
/* bindings/module.c: pushes the compiled chunk of an embedded Lua module. */
int rb_load_embedded(lua_State *L, const char *name);

/* ---- instruction budget ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Count hook (inherited by coroutines): adds the instructions since the last check to the
 * work counter that tensor ops charge too, and checks the call's deadline. Once the budget or
 * the time is spent it fires at every instruction, so a script that catches the error with
 * pcall cannot run on. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  recur_runtime *rt = runtime_of(L);
  rc_ctx *c = rt->ctx;
  int count = lua_gethookcount(L);
  c->work_used += (uint64_t)count;
  if (!rt->budget_hit && rt->deadline && now_ms() >= rt->deadline) rt->time_hit = 1;
  if (rt->time_hit || (c->work_limit && c->work_used > c->work_limit)) {
    rt->budget_hit = 1;
    rt->hook_raised_in = L;
    if (count != 1) lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    /* preallocated: cannot fail */
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->time_hit ? rt->timemsg : rt->budgetmsg);
    lua_error(L);
  }
  if (count != rt->hook_count) lua_sethook(L, budget_hook, LUA_MASKCOUNT, rt->hook_count);
}

void rb_budget_start(recur_runtime *rt) {
  rt->budget_hit = 0;
  rt->time_hit = 0;
  rt->hook_raised_in = NULL;
  rt->output_used = 0;
  rt->deadline = rt->time_limit ? now_ms() + rt->time_limit : 0;
  rt->limit_hit = 0;
  rt->ctx->work_used = 0;
  rt->ctx->work_limit = rt->budget;
  /* Installed even without a budget: coroutines copy the hook when they are made, so one made
   * now must still count if the host sets a budget later. */
  lua_sethook(rt->L, budget_hook, LUA_MASKCOUNT, rt->hook_count);
}

/* The budget sees the bytes Lua allocates (one unit per 32, a growing block's whole new size,
 * which it copies): a string made by concatenation or string.rep, a table filled by
 * table.pack, a chunk's code. The allocator cannot raise; once the budget is spent it makes
 * the main thread's count hook fire at its next instruction, and the C functions of the
 * sandbox check on their own (a coroutine's hook fires within HOOK_COUNT instructions). */
void rb_budget_charge_alloc(recur_runtime *rt, size_t bytes) {
  rc_ctx *c = rt->ctx;
  c->work_used += bytes / 32 + 1;
  if (c->work_limit && c->work_used > c->work_limit && !rt->budget_hit)
    lua_sethook(rt->L, budget_hook, LUA_MASKCOUNT, 1);
}

/* ---- the sandbox ---- */

/* load(chunk [, chunkname [, mode [, env]]]) with mode forced to text. */
static int sb_load(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (n >= 2)
    lua_pushvalue(L, 2);
  else
    lua_pushnil(L);
  lua_pushliteral(L, "t");
  int na = 3;
  if (n >= 4) {
    lua_pushvalue(L, 4);
    na = 4;
  }
  lua_call(L, na, LUA_MULTRET);
  return lua_gettop(L) - n;
}

/* setmetatable refusing finalizers: they run with hooks off, outside the budget. */
static int sb_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the sandbox");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  static const char *const ok[] = {"collect", "count", "step", "isrunning", NULL};
  for (int i = 0; ok[i]; i++) {
    if (strcmp(opt, ok[i]) == 0) {
      lua_pushvalue(L, lua_upvalueindex(1));
      lua_insert(L, 1);
      lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
      return lua_gettop(L);
    }
  }
  return luaL_error(L, "collectgarbage: option '%s' is not available in the sandbox", opt);
}

/* Charges n units to the budget from a Lua library function, raising when it is spent. */
static void sb_charge(lua_State *L, const char *fn, lua_Integer n) {
  rc_ctx *c = runtime_of(L)->ctx;
  if (n > 0 && rc_charge(c, fn, (uint64_t)n / 16 + 1)) luaL_error(L, "%s", c->err);
}

/* string.rep(s, n [, sep]): the result of an empty s and sep is "" without looping n times. */
static int sb_rep(lua_State *L) {
  size_t l, lsep;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (l + lsep == 0 || n <= 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* table.move/insert/remove loop in C over ranges a script chooses (t[2^40] = 1 makes #t
 * 2^40): they charge the elements they move to the budget first. */
static int sb_move(lua_State *L) {
  lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  if (e >= f) sb_charge(L, "table.move", e - f < LUA_MAXINTEGER ? e - f + 1 : e - f);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_shift(lua_State *L, const char *fn) {
  if (lua_gettop(L) >= (strcmp(fn, "table.insert") == 0 ? 3 : 2)) {
    lua_Integer n = luaL_len(L, 1);
    lua_Integer pos = luaL_checkinteger(L, 2);
    if (n > pos) sb_charge(L, fn, n - pos);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}
static int sb_insert(lua_State *L) {
  return sb_shift(L, "table.insert");
}
static int sb_remove(lua_State *L) {
  return sb_shift(L, "table.remove");
}

/* ---- print ----
 * A script's print goes to the host's output callback (stderr by default), charged to the
 * budget by bytes and capped per call, so that a loop of prints cannot flood the host. */

static void put_output(recur_runtime *rt, const char *s, size_t len) {
  if (rt->output)
    rt->output(rt->output_ud, s, len);
  else
    fwrite(s, 1, len, stderr);
}

static int rt_print(lua_State *L) {
  recur_runtime *rt = runtime_of(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    size_t len;
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, &len); /* __tostring and __name run under the budget */
    sb_charge(L, "print", (lua_Integer)len);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  size_t room = len;
  if (rt->output_limit) {
    room = rt->output_used < rt->output_limit ? rt->output_limit - rt->output_used : 0;
    if (room > len) room = len;
  }
  if (room > 0) put_output(rt, s, room);
  if (room < len && (!rt->output_limit || rt->output_used <= rt->output_limit)) {
    char note[128];
    int k = snprintf(note, sizeof note,
                     "%s[recur: print output past %zu bytes in one call is dropped]\n",
                     room > 0 && s[room - 1] != '\n' ? "\n" : "", rt->output_limit);
    put_output(rt, note, (size_t)k);
    rt->output_used = rt->output_limit + 1; /* the note is written once */
  } else {
    rt->output_used += room;
  }
  return 0;
}

/* recur.threads: read-only in the sandbox (the host sets the thread count). */
static int sb_threads(lua_State *L) {
  if (!lua_isnoneornil(L, 1))
    return luaL_error(L, "threads: the host sets the thread count (sandbox)");
  lua_pushinteger(L, openblas_get_num_threads());
  return 1;
}

static int sb_denied(lua_State *L) {
  return luaL_error(L, "%s: file access is disabled in the sandbox%s",
                    lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, lua_upvalueindex(2)));
}

/* package.searchers[1]: package.preload (the registry's table, which a script cannot swap). */
static int searcher_preload(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  if (lua_getfield(L, -1, name) == LUA_TNIL) {
    lua_pushfstring(L, "\n\tno field package.preload['%s']", name);
    return 1;
  }
  lua_pushliteral(L, ":preload:");
  return 2;
}

/* package.searchers[2]: Lua source files on the host's module path (upvalue 1), names
 * restricted so that they cannot climb out of it. */
static int searcher_host(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  const char *path = lua_tostring(L, lua_upvalueindex(1));
  if (n == 0 || n > 200 || strlen(name) != n || name[0] == '.' || name[0] == '-') goto badname;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-' || (ch == '.' && name[i + 1] != '.' && name[i + 1] != 0)))
      goto badname;
  }
  if (!path || !*path) {
    lua_pushliteral(L, "\n\tno module path (the host allows none)");
    return 1;
  }
  luaL_Buffer tried;
  luaL_buffinit(L, &tried);
  const char *p = path;
  while (*p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char file[1024];
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < sizeof file; i++) {
      if (p[i] == '?') {
        for (size_t m = 0; m < n && k + 1 < sizeof file; m++)
          file[k++] = name[m] == '.' ? '/' : name[m];
      } else {
        file[k++] = p[i];
      }
    }
    file[k] = 0;
    p += len + (end ? 1 : 0);
    if (k == 0) continue;
    int st = luaL_loadfilex(L, file, "t");
    if (st == LUA_OK) {
      lua_pushstring(L, file);
      return 2;
    }
    if (st != LUA_ERRFILE)
      return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                        lua_tostring(L, -1));
    lua_pop(L, 1);
    luaL_addstring(&tried, "\n\tno file '");
    luaL_addstring(&tried, file);
    luaL_addstring(&tried, "'");
  }
  luaL_pushresult(&tried);
  return 1;
badname:
  lua_pushfstring(L, "\n\tmodule name '%s' is not allowed in the sandbox", name);
  return 1;
}

/* pcall and xpcall (installed in every runtime) that report a refused allocation as "memory
 * limit exceeded" (Lua's own message for any failed allocation is "not enough memory"). */
static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    recur_runtime *rt = runtime_of(L);
    if (status == LUA_ERRMEM && rt->limit_hit)
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->memmsg);
    else
      lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int sb_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
  return finish_pcall(L, status, 0);
}

/* xpcall's message handler, guarded: an error raised by the budget hook reaches the handler
 * while hooks are off (Lua runs the handler inside the hook call), so a handler that loops
 * could not be stopped. After the budget is spent the handler is skipped. */
static int guarded_handler(lua_State *L) {
  if (runtime_of(L)->budget_hit) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, guarded_handler, 1);
  lua_replace(L, 2);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
  return finish_pcall(L, status, 2);
}

/* Replaces t[name] (t at idx) by a closure of f over the old value. */
static void wrap(lua_State *L, int idx, const char *name, lua_CFunction f) {
  lua_getfield(L, idx, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, idx, name);
}

/* coroutine.resume (installed in every runtime), which reports an allocation the limit refused
 * inside the coroutine as "memory limit exceeded" too: Lua's own resume returns its
 * preallocated "not enough memory" for any failed allocation, without the status. Lua interns
 * that string, so a script's own error("not enough memory") is the same value: it is translated
 * as well once the limit has refused an allocation during the call. (coroutine.wrap needs
 * nothing: it re-raises that string, which lua_error turns back into LUA_ERRMEM, and pcall or
 * the host translate it.) */
static void translate_memerr(lua_State *L, int idx) {
  recur_runtime *rt = runtime_of(L);
  if (rt->limit_hit && lua_type(L, idx) == LUA_TSTRING &&
      strcmp(lua_tostring(L, idx), "not enough memory") == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->memmsg);
    lua_replace(L, idx);
  }
}

/* ---- coroutines killed by the hook ----
 *
 * When the budget hook raises its error inside a coroutine that does not catch it, Lua leaves
 * that coroutine's hooks off (they are off while a hook runs, and the error leaves the hook by
 * longjmp). Its pending __close handlers would then run unbudgeted, and endlessly if they loop,
 * when coroutine.wrap or coroutine.close closes it. So resume, wrap and close note the
 * coroutines the hook killed (a weak set, kept across calls) and never run their handlers:
 * wrap re-raises the error, close returns false and "instruction budget exceeded". */

static int mark_dead(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_rawset(L, 1);
  return 0;
}

/* If the coroutine at idx was killed by the hook, adds it to the set. */
static void note_killed(lua_State *L, int idx) {
  recur_runtime *rt = runtime_of(L);
  if (!rt->budget_hit || rt->hook_raised_in != lua_tothread(L, idx)) return;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 4)) {
    rt->broken = 1; /* cannot keep the note: the runtime must not go on */
    return;
  }
  size_t limit = rt->limit;
  rt->limit = 0; /* a few bytes: must not fail on the limit */
  lua_pushcfunction(L, mark_dead);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->dead);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    rt->broken = 1;
  }
  rt->limit = limit;
}

/* 1 if the coroutine at idx died by the hook's error (its handlers must not run). */
static int killed(lua_State *L, int idx) {
  recur_runtime *rt = runtime_of(L);
  lua_State *co = lua_tothread(L, idx);
  int st = co ? lua_status(co) : LUA_OK;
  if (st == LUA_OK || st == LUA_YIELD) return 0;
  if (rt->budget_hit && rt->hook_raised_in == co) return 1;
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->dead);
  lua_pushvalue(L, idx);
  int dead = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return dead;
}

/* After a resume: once the budget is spent, the resuming thread stops at its next instruction
 * too (the hook only made the coroutine it fired in check at every instruction). */
static void stop_if_spent(lua_State *L) {
  if (runtime_of(L)->budget_hit) lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
}

/* coroutine.resume (upvalue 1: Lua's) */
static int rt_resume(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, 1); /* keep the coroutine below the results */
  lua_insert(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 2);
  lua_call(L, n, LUA_MULTRET);
  if (!lua_toboolean(L, 2) && lua_gettop(L) >= 3) {
    translate_memerr(L, 3);
    note_killed(L, 1);
  }
  stop_if_spent(L);
  return lua_gettop(L) - 1;
}

/* coroutine.close (upvalue 1: Lua's) */
static int rt_close(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  if (killed(L, 1)) {
    lua_pushboolean(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, runtime_of(L)->budgetmsg);
    return 2;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* The function coroutine.wrap returns (upvalue 1: the coroutine): Lua's, except that it does
 * not close a coroutine the hook killed. */
static int rt_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int narg = lua_gettop(L);
  if (!lua_checkstack(co, narg)) return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, narg);
  int nres = 0;
  int st = lua_resume(co, L, narg, &nres);
  stop_if_spent(L);
  if (st == LUA_OK || st == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      return luaL_error(L, "too many results to resume");
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1); /* the error */
  st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) { /* the coroutine died */
    lua_pushvalue(L, lua_upvalueindex(1));
    if (killed(L, -1)) {
      note_killed(L, -1);
      lua_pop(L, 1);
    } else {
      lua_pop(L, 1);
#if LUA_VERSION_RELEASE_NUM >= 50406
      st = lua_closethread(co, L); /* close its to-be-closed variables */
#else
      st = lua_resetthread(co);
#endif
      lua_xmove(co, L, 1);
    }
  }
  if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* coroutine.wrap */
static int rt_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, rt_wrapped, 1);
  return 1;
}

static void guard_coroutines(lua_State *L, recur_runtime *rt) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  rt->dead = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getglobal(L, LUA_COLIBNAME);
  if (lua_istable(L, -1)) {
    int co = lua_gettop(L);
    wrap(L, co, "resume", rt_resume);
    wrap(L, co, "close", rt_close);
    lua_pushcfunction(L, rt_wrap);
    lua_setfield(L, co, "wrap");
  }
  lua_pop(L, 1);
}

static void nil_field(lua_State *L, int idx, const char *name) {
  lua_pushnil(L);
  lua_setfield(L, idx, name);
}

static void apply_sandbox(lua_State *L, recur_runtime *rt, int recur_idx) {
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  nil_field(L, g, "dofile");
  nil_field(L, g, "loadfile");
  wrap(L, g, "load", sb_load);
  wrap(L, g, "setmetatable", sb_setmetatable);
  wrap(L, g, "collectgarbage", sb_collectgarbage);
  /* string */
  lua_getglobal(L, LUA_STRLIBNAME);
  int s = lua_gettop(L);
  nil_field(L, s, "dump");
  wrap(L, s, "rep", sb_rep);
  rb_sandbox_strings(L, s);
  lua_pop(L, 1);
  /* table */
  lua_getglobal(L, LUA_TABLIBNAME);
  int t = lua_gettop(L);
  wrap(L, t, "move", sb_move);
  wrap(L, t, "insert", sb_insert);
  wrap(L, t, "remove", sb_remove);
  lua_pop(L, 1);
  /* os: clock and time only */
  lua_pushcfunction(L, luaopen_os);
  lua_call(L, 0, 1);
  lua_createtable(L, 0, 2);
  lua_getfield(L, -2, "clock");
  lua_setfield(L, -2, "clock");
  lua_getfield(L, -2, "time");
  lua_setfield(L, -2, "time");
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setglobal(L, LUA_OSLIBNAME);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, LUA_OSLIBNAME);
  lua_pop(L, 1);
  /* package: no C loaders, no file probing; require searches preload and the host's path */
  lua_getglobal(L, LUA_LOADLIBNAME);
  int pk = lua_gettop(L);
  nil_field(L, pk, "loadlib");
  nil_field(L, pk, "searchpath");
  nil_field(L, pk, "cpath");
  lua_pushstring(L, rt->module_path ? rt->module_path : "");
  lua_setfield(L, pk, "path");
  lua_createtable(L, 2, 0);
  lua_pushcfunction(L, searcher_preload);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, rt->module_path ? rt->module_path : "");
  lua_pushcclosure(L, searcher_host, 1);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, pk, "searchers");
  lua_pop(L, 1);
  /* recur: the thread count belongs to the host; file functions are stubs */
  lua_pushcfunction(L, sb_threads);
  lua_setfield(L, recur_idx, "threads");
  static const char *const denied[] = {"load", "save", NULL};
  for (int i = 0; denied[i]; i++) {
    lua_pushfstring(L, "recur.%s", denied[i]);
    lua_pushstring(L, strcmp(denied[i], "load") == 0
                          ? "; the host loads checkpoints with recur_load_checkpoint()"
                          : "");
    lua_pushcclosure(L, sb_denied, 2);
    lua_setfield(L, recur_idx, denied[i]);
  }
  rt->ctx->files_denied = 1;
  lua_pop(L, 1); /* globals */
  rb_sandbox_lib(L);
}

/* ---- the host's checkpoint loader ----
 *
 * recur_load_checkpoint runs the Lua half of recur.load (checkpoint.lua, json.lua) with the
 * one file the host names readable. None of what it runs may be reachable by a script: a
 * script that replaced require, pcall, table.pack, recur.json.decode, string.match or the
 * checkpoint module's load would otherwise run inside the host's load, with its file access,
 * and could hand the host a result of its choosing. So when the runtime is made, before any
 * script runs, it keeps a private environment: copies of the standard functions and tables and
 * of recur's table, and a require that finds only private modules. The host's first load
 * compiles private copies of the two modules in it (from the library's own text), and while
 * a host load runs, strings' metatable is a private one too (a string's methods are the
 * string table's, which scripts share). */

/* Pushes a shallow copy of the table at idx. */
static void copy_table(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* require in the private environment (upvalue 1: the private modules, 2: the environment):
 * recur's own Lua modules only, compiled in the environment from the library's text. */
static int private_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (lua_getfield(L, lua_upvalueindex(1), name) != LUA_TNIL) return 1;
  if (rb_load_embedded(L, name) != LUA_OK)
    return luaL_error(L, "module '%s' is not available to the host's checkpoint loader", name);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setupvalue(L, -2, 1); /* a main chunk's only upvalue is _ENV */
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, lua_upvalueindex(1), name);
  return 1;
}

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "json.null");
  return 1;
}

/* package.preload["recur.json"] for scripts: the module with the runtime's json.null
 * (upvalue 2), so that the nulls of a checkpoint the host loaded compare equal to it. */
static int json_preload(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_setfield(L, -2, "null");
  }
  return 1;
}

/* Sets rt->loader_env and rt->strmeta: run when the runtime is made, before any script. */
static void keep_loader_env(lua_State *L, recur_runtime *rt, int recur_idx) {
  int top = lua_gettop(L);
  lua_newtable(L);
  int env = lua_gettop(L);
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, env + 1)) { /* the base functions as they are now */
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, env);
    } else {
      lua_pop(L, 1);
    }
  }
  static const char *const libs[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                     LUA_UTF8LIBNAME, NULL};
  for (int i = 0; libs[i]; i++) {
    if (lua_getfield(L, env + 1, libs[i]) == LUA_TTABLE) {
      copy_table(L, -1);
      lua_setfield(L, env, libs[i]);
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
  lua_newtable(L); /* the private modules */
  int mods = lua_gettop(L);
  copy_table(L, recur_idx);
  if (lua_getfield(L, recur_idx, "_safetensors") == LUA_TTABLE) {
    copy_table(L, -1);
    lua_setfield(L, -3, "_safetensors");
  }
  lua_pop(L, 1);
  lua_setfield(L, mods, "recur");
  lua_pushvalue(L, mods);
  lua_pushvalue(L, env);
  lua_pushcclosure(L, private_require, 2);
  lua_setfield(L, env, "require");
  /* json.null, shared by the private json and the scripts' (preload wrapped); its metatable is
   * locked so that no script can give it an __eq or __index the loader would run */
  lua_newtable(L);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  if (lua_getfield(L, -1, "recur.json") == LUA_TFUNCTION) {
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, json_preload, 2);
    lua_setfield(L, -2, "recur.json");
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_setfield(L, env, "json.null"); /* not a name: no module can see it */
  lua_pushvalue(L, env);
  rt->loader_env = luaL_ref(L, LUA_REGISTRYINDEX);
  /* strings' metatable for the load: the current one with the private string table */
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1))
    copy_table(L, -1);
  else
    lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->loader_env);
  lua_getfield(L, -1, LUA_STRLIBNAME);
  lua_setfield(L, -3, "__index");
  lua_pop(L, 1);
  rt->strmeta = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
}

/* Pushes the private module name (compiled on first use). */
static void require_private(lua_State *L, int env, const char *name) {
  lua_getfield(L, env, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

/* recur.load's wrapper (init.lua), over the private functions it is given. */
static const char load_wrapper[] =
    "local load, pcall, pack, unpack, tostring, error, gsub = ...\n"
    "return function(...)\n"
    "  local r = pack(pcall(load, ...))\n"
    "  if not r[1] then error((gsub(tostring(r[2]), '^[^\\n]-%.lua:%d+: ', '')), 2) end\n"
    "  return unpack(r, 2, r.n)\n"
    "end\n";

int rb_checkpoint_loader(lua_State *L, recur_runtime *rt) {
  if (rt->loader != LUA_NOREF) return 1;
  if (rt->loader_env == LUA_NOREF) return 0;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->loader_env);
  int env = lua_gettop(L);
  if (rb_load_embedded(L, "recur.checkpoint") != LUA_OK) { /* a build without it */
    lua_settop(L, top);
    return 0;
  }
  lua_pop(L, 1);
  require_private(L, env, "recur.json");
  lua_getfield(L, env, "json.null");
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
  require_private(L, env, "recur.checkpoint");
  if (luaL_loadbufferx(L, load_wrapper, sizeof load_wrapper - 1, "=recur_load_checkpoint", "t"))
    lua_error(L);
  lua_getfield(L, -2, "load");
  lua_getfield(L, env, "pcall");
  lua_getfield(L, env, LUA_TABLIBNAME);
  lua_getfield(L, -1, "pack");
  lua_getfield(L, -2, "unpack");
  lua_remove(L, -3);
  lua_getfield(L, env, "tostring");
  lua_getfield(L, env, "error");
  lua_getfield(L, env, LUA_STRLIBNAME);
  lua_getfield(L, -1, "gsub");
  lua_remove(L, -2);
  lua_call(L, 7, 1);
  rt->loader = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
  return 1;
}

/* ---- a new runtime ---- */

void rb_guard_open(lua_State *L, recur_runtime *rt, int recur_idx) {
  if (rt->sandbox) apply_sandbox(L, rt, recur_idx);
  lua_pushcfunction(L, sb_pcall);
  lua_setglobal(L, "pcall");
  lua_pushcfunction(L, sb_xpcall);
  lua_setglobal(L, "xpcall");
  guard_coroutines(L, rt);
  if (rt->sandbox || rt->output) {
    lua_pushcfunction(L, rt_print);
    lua_setglobal(L, "print");
  }
  keep_loader_env(L, rt, recur_idx);
}
