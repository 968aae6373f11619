/* Escape and denial-of-service attempts against a sandboxed runtime (memory limit 32 MB,
 * budget 5M). Each must be blocked with a status the host can read; afterwards the same
 * runtime still answers, every tensor byte is returned and Lua's heap is back near where it
 * was. Run under ASan/LSan by `make asan`, which also checks that nothing leaks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../include/recur.h"
#include "test.h"

typedef struct {
  const char *name;
  const char *code;
  int want;         /* status */
  int want2;        /* another acceptable status (-1: none) */
  const char *text; /* expected in the message (NULL: any) */
} attack;

#define ANY -1
#define OK RECUR_OK
#define SCRIPT RECUR_ERR_SCRIPT
#define MEMORY RECUR_ERR_MEMORY
#define BUDGET RECUR_ERR_BUDGET

static const attack attacks[] = {
    /* reading and writing files */
    {"io.open", "return io.open('/etc/passwd'):read('a')", SCRIPT, ANY, "global 'io'"},
    {"io via require", "return require('io').open('/etc/passwd')", SCRIPT, ANY,
     "module 'io' not found"},
    {"dofile", "return dofile('/etc/passwd')", SCRIPT, ANY, "global 'dofile'"},
    {"loadfile", "return loadfile('/etc/passwd')", SCRIPT, ANY, "global 'loadfile'"},
    {"Lua searcher with package.path", "package.path = '/etc/?' return require('passwd')", SCRIPT,
     ANY, "module 'passwd' not found"},
    {"module name climbing out", "return require('..etc.passwd')", SCRIPT, ANY, "not allowed"},
    {"module path with a slash", "return require('../../../etc/passwd')", SCRIPT, ANY,
     "not allowed"},
    /* require itself cuts the name at the zero: the search stays in the module directory */
    {"module name with a zero byte", "return require('zz\\0/../../etc/passwd')", SCRIPT, ANY,
     "module 'zz' not found"},
    {"recur.load on a path", "return recur.load('/etc/passwd')", SCRIPT, ANY,
     "file access is disabled"},
    {"recur.save", "return recur.save({}, '/tmp/x')", SCRIPT, ANY, "file access is disabled"},
    /* spawning processes, leaving the process */
    {"os.execute", "return os.execute('touch /tmp/recur_pwned')", SCRIPT, ANY, "field 'execute'"},
    {"io.popen", "return io.popen('id')", SCRIPT, ANY, "global 'io'"},
    {"os.exit", "os.exit(3)", SCRIPT, ANY, "field 'exit'"},
    {"os.getenv", "return os.getenv('HOME')", SCRIPT, ANY, "field 'getenv'"},
    {"os.remove", "return os.remove('/tmp/x')", SCRIPT, ANY, "field 'remove'"},
    {"os via package.loaded", "return package.loaded.os.execute('id')", SCRIPT, ANY,
     "field 'execute'"},
    /* loading C code */
    {"package.loadlib", "return package.loadlib('libc.so.6', 'system')", SCRIPT, ANY,
     "field 'loadlib'"},
    {"C module via require", "return require('lfs')", SCRIPT, ANY, "module 'lfs' not found"},
    {"C module via cpath",
     "package.cpath = '/usr/lib/x86_64-linux-gnu/lua/5.4/?.so' "
     "return require('lfs')",
     SCRIPT, ANY, "module 'lfs' not found"},
    {"C searcher put back", "package.searchers[3] = package.searchers[2] return require('lpeg')",
     SCRIPT, ANY, "module 'lpeg' not found"},
    /* bytecode */
    {"string.dump", "return load(string.dump(function() return 1 end))()", SCRIPT, ANY,
     "field 'dump'"},
    {"binary chunk", "return assert(load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10', 'x', 'b'))()",
     SCRIPT, ANY, "attempt to load a binary chunk (mode is 't')"},
    {"binary chunk from a reader",
     "local done return assert(load(function() if done then return nil end done = true "
     "return '\\27Lua' end, 'x', 'bt'))()",
     SCRIPT, ANY, "binary chunk"},
    /* introspection */
    {"debug.getregistry", "return debug.getregistry()", SCRIPT, ANY, "global 'debug'"},
    {"debug.sethook", "debug.sethook() while true do end", SCRIPT, ANY, "global 'debug'"},
    /* metatable tricks on recur's userdata */
    {"tensor metatable", "getmetatable(recur.zeros(1)).__gc = nil", SCRIPT, ANY,
     "attempt to index a string value"},
    {"setmetatable on a tensor", "setmetatable(recur.zeros(1), {})", SCRIPT, ANY,
     "table expected, got recur.Tensor"},
    {"field on a tensor", "local t = recur.zeros(1) t.__gc = print", SCRIPT, ANY,
     "tensors have no user fields"},
    {"use after free", "local t = recur.ones(3) t:free() t:free() return t:sum()", SCRIPT, ANY,
     "closed tensor"},
    {"forged self", "return recur.Tensor.sum(setmetatable({}, {__index = recur.Tensor}))", SCRIPT,
     ANY, "must be a tensor"},
    {"finalizer loop",
     "setmetatable({}, {__gc = function() while true do end end}) "
     "collectgarbage()",
     SCRIPT, ANY, "__gc metamethods are not allowed"},
    {"finalizer through recur.Function",
     "local saved = recur._function_ctx_mt\n"
     "recur._function_ctx_mt = {__gc = function() while true do end end}\n"
     "local ok, e = pcall(function()\n"
     "  local F = recur.Function{forward = function(ctx, x) return x * 2 end,\n"
     "                           backward = function(ctx, g) return g * 2 end}\n"
     "  F(recur.ones(2)) collectgarbage() end)\n"
     "recur._function_ctx_mt = saved\n"
     "error(e, 0)",
     SCRIPT, ANY, "must not have __gc"},
    /* a registry metatable a script could reach: a __gc added there would make later objects
     * finalizable, and finalizers run with hooks off */
    {"finalizer through recur.Size's metatable",
     "local mt = getmetatable(recur.zeros(2):size())\n"
     "pcall(function() mt.__gc = function() while true do end end end)\n"
     "local s = recur.zeros(2):size() s = nil collectgarbage() collectgarbage()\n"
     "return tostring(recur.zeros(2, 3):size())",
     OK, ANY, NULL},
    {"collectgarbage stop", "collectgarbage('stop')", SCRIPT, ANY, "not available"},
    {"BLAS threads", "recur.threads(256)", SCRIPT, ANY, "host sets the thread count"},
    /* huge allocations */
    {"huge tensor", "return recur.zeros(100000, 100000)", MEMORY, ANY, "memory limit exceeded"},
    /* autograd bookkeeping counts: in-place ops on a tensor with history make no new tensor,
     * only nodes (about 0.7 KB each), so the graph alone must reach the limit */
    {"autograd graph of in-place ops",
     "local x = recur.ones(1):requires_grad(true) local y = x * 1 "
     "for i = 1, 1e7 do y:add_(1) end",
     MEMORY, ANY, "memory limit exceeded"},
    /* Lua reports a failed allocation in a coroutine as "not enough memory" */
    {"coroutine.resume past the limit",
     "local co = coroutine.create(function() local t = {} "
     "for i = 1, 1e4 do t[i] = ('x'):rep(1e5) .. i end end) "
     "local ok, e = coroutine.resume(co) assert(not ok) "
     "assert(e == 'memory limit exceeded', e) error(e, 0)",
     MEMORY, ANY, "memory limit exceeded"},
    {"coroutine.wrap past the limit",
     "local f = coroutine.wrap(function() local t = {} "
     "for i = 1, 1e4 do t[i] = ('x'):rep(1e5) .. i end end) "
     "local ok, e = pcall(f) assert(not ok) "
     "assert(e == 'memory limit exceeded', e) error(e, 0)",
     MEMORY, ANY, "memory limit exceeded"},
    {"coroutine.wrap, uncaught",
     "coroutine.wrap(function() local t = {} "
     "for i = 1, 1e4 do t[i] = ('x'):rep(1e5) .. i end end)()",
     MEMORY, ANY, "memory limit exceeded"},
    {"long autograd chain caught by pcall",
     "local x = recur.ones(1):requires_grad(true) local y = x "
     "local ok, e = pcall(function() for i = 1, 1e7 do y = y * 1 end end) "
     "assert(not ok) y = nil collectgarbage() error(e, 0)",
     MEMORY, ANY, "memory limit exceeded"},
    /* sort's work buffer (pairs of value and index: 8 times the slice) counts too */
    {"sort of a large slice", "return recur.zeros(2^20):sort()", MEMORY, ANY,
     "memory limit exceeded"},
    {"2^40 elements", "return recur.empty(2^40)", MEMORY, ANY, "memory limit exceeded"},
    {"many tensors kept", "local t = {} for i = 1, 1e6 do t[i] = recur.zeros(10000) end", MEMORY,
     ANY, "memory limit exceeded"},
    {"expanded view", "return recur.zeros(1):expand(2^20, 2^20):sum()", MEMORY, ANY,
     "memory limit exceeded"},
    {"broadcast blow-up", "return recur.zeros(1e5, 1) + recur.zeros(1, 1e5)", MEMORY, ANY,
     "memory limit exceeded"},
    /* string bombs */
    {"doubling string", "local s = 'x' for i = 1, 40 do s = s .. s end", MEMORY, ANY,
     "memory limit exceeded"},
    {"string.rep", "return ('x'):rep(2^40)", MEMORY, SCRIPT, NULL},
    /* the budget charges the bytes allocated too: whichever limit comes first */
    {"table of strings", "local t = {} for i = 1, 1e7 do t[i] = tostring(i) end", MEMORY, BUDGET,
     "exceeded"},
    {"concat bomb", "local t = {} for i = 1, 4e6 do t[i] = 'abcdefgh' end return table.concat(t)",
     MEMORY, ANY, "memory limit exceeded"},
    /* endless work in C loops the count hook cannot see */
    {"string.rep of nothing", "return #string.rep('', math.maxinteger)", OK, ANY, NULL},
    {"table.move", "table.move({}, 1, math.maxinteger, 2)", BUDGET, ANY, "budget exceeded"},
    {"table.insert with a huge border",
     "local s = {} for k = 0, 50 do s[#s + 1] = '[' .. (1 << k) .. '] = 1' end\n"
     "local t = load('return {' .. table.concat(s, ',') .. '}')()\n" /* #t is 2^50 */
     "table.insert(t, 1, 0)",
     BUDGET, ANY, "budget exceeded"},
    {"pattern backtracking", "return ('a'):rep(5000):find(('a-'):rep(20) .. 'b')", BUDGET, ANY,
     "budget exceeded"},
    {"plain find", "return ('a'):rep(1e6):find(('a'):rep(1e5) .. 'b', 1, true)", BUDGET, ANY,
     "budget exceeded"},
    {"gsub backtracking", "return (('x'):rep(3000)):gsub('x-x-x-x-x-y', '')", BUDGET, ANY,
     "budget exceeded"},
    {"big matmul", "local a = recur.ones(1500, 1500) return recur.matmul(a, a)", BUDGET, ANY,
     "budget exceeded"},
    {"big orthogonal init", "recur.nn.init.orthogonal()(recur.empty(1024, 1024))", BUDGET, ANY,
     "budget exceeded"},
    {"long fused-cell sequence",
     "local c = recur.rnn.Cell{cell = 'lstm', input = 64, hidden = 256}\n"
     "recur.no_grad(function() return c:forward(recur.zeros(150, 16, 64)) end)",
     BUDGET, ANY, "budget exceeded"},
    {"long generation in one C call",
     "local c = recur.rnn.Cell{cell = 'lstm', input = 8, hidden = 256}\n"
     "return recur._rnn_generate({c}, recur.zeros(5, 8), recur.zeros(5, 256), nil, nil, {1},"
     " 100000, 1, 0)",
     BUDGET, ANY, "budget exceeded"},
    /* endless loops, recursion, coroutines */
    {"endless loop", "while true do end", BUDGET, ANY, "instruction budget exceeded"},
    {"loop that catches the error", "while true do pcall(function() while true do end end) end",
     BUDGET, ANY, "instruction budget exceeded"},
    {"xpcall with a looping handler",
     "while true do xpcall(function() while true do end end, function() while true do end end) "
     "end",
     BUDGET, ANY, NULL},
    {"endless coroutine",
     "local co = coroutine.wrap(function() while true do coroutine.yield() end end) "
     "while true do co() end",
     BUDGET, ANY, "instruction budget exceeded"},
    {"loop inside a coroutine", "coroutine.wrap(function() while true do end end)()", BUDGET, ANY,
     "instruction budget exceeded"},
    {"coroutine bomb", "local t = {} for i = 1, 1e7 do t[i] = coroutine.create(print) end", MEMORY,
     BUDGET, NULL},
    {"loop of small tensor ops", "local a = recur.ones(4) while true do a = a + 1 end", BUDGET, ANY,
     "budget exceeded"},
    {"loop in no_grad", "recur.no_grad(function() while true do end end)", BUDGET, ANY,
     "budget exceeded"},
    {"loop in a Lua-defined backward",
     "local F = recur.Function{forward = function(ctx, x) return x * 2 end,\n"
     "  backward = function(ctx, g) while true do end end}\n"
     "F(recur.ones(3):requires_grad(true)):sum():backward()",
     BUDGET, ANY, "budget exceeded"},
    {"looping __tostring on the error object",
     "error(setmetatable({}, {__tostring = function() while true do end end}))", BUDGET, ANY, NULL},
    /* __close handlers of a coroutine the budget hook killed: Lua leaves its hooks off, so
     * they would run unbudgeted (and forever) when wrap or close closes it */
    {"looping __close in a wrapped coroutine",
     "coroutine.wrap(function()\n"
     "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "  while true do end\n"
     "end)()",
     BUDGET, ANY, "budget exceeded"},
    {"looping __close, wrap caught by pcall",
     "local f = coroutine.wrap(function()\n"
     "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "  while true do end\n"
     "end)\n"
     "pcall(f) pcall(f) return 1",
     BUDGET, ANY, "budget exceeded"},
    {"looping __close, coroutine.close",
     "local co = coroutine.create(function()\n"
     "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "  while true do end\n"
     "end)\n"
     "coroutine.resume(co) return coroutine.close(co)",
     BUDGET, ANY, "budget exceeded"},
    {"looping __close, closed through coroutine.running",
     "local co\n"
     "local f = coroutine.wrap(function() co = coroutine.running()\n"
     "  local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "  while true do end\n"
     "end)\n"
     "pcall(f) return coroutine.close(co)",
     BUDGET, ANY, "budget exceeded"},
    {"looping __close in nested coroutines",
     "coroutine.wrap(function()\n"
     "  local a <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "  coroutine.wrap(function()\n"
     "    local b <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "    while true do end\n"
     "  end)()\n"
     "end)()",
     BUDGET, ANY, "budget exceeded"},
    {"looping __close in the main chunk",
     "local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "while true do end",
     BUDGET, ANY, "budget exceeded"},
    {"pcall and xpcall inside __close",
     "local h = function() while true do end end\n"
     "coroutine.wrap(function()\n"
     "  local x <close> = setmetatable({}, {__close = function()\n"
     "    while true do pcall(h) xpcall(h, h) end end})\n"
     "  while true do end\n"
     "end)()",
     BUDGET, ANY, "budget exceeded"},
    {"__close raising an error object with looping metamethods",
     "local h = function() while true do end end\n"
     "coroutine.wrap(function()\n"
     "  local x <close> = setmetatable({}, {__close = function()\n"
     "    error(setmetatable({}, {__tostring = h, __index = h, __concat = h})) end})\n"
     "  while true do end\n"
     "end)()",
     BUDGET, ANY, NULL},
    {"__close making a coroutine",
     "coroutine.wrap(function()\n"
     "  local x <close> = setmetatable({}, {__close = function()\n"
     "    coroutine.wrap(function() while true do end end)() while true do end end})\n"
     "  while true do end\n"
     "end)()",
     BUDGET, ANY, "budget exceeded"},
    {"looping __close in a coroutine that caught the budget error",
     "local h = function() while true do end end\n"
     "coroutine.wrap(function()\n"
     "  local x <close> = setmetatable({}, {__close = h})\n"
     "  pcall(h) h()\n"
     "end)()",
     BUDGET, ANY, "budget exceeded"},
    {"deep recursion", "local function f(n) return 1 + f(n + 1) end return f(1)", SCRIPT, MEMORY,
     NULL},
    {"C stack recursion",
     "local t = setmetatable({}, {__index = function(t, k) return t[k] end}) "
     "return t.x",
     SCRIPT, ANY, "stack overflow"},
    {"pattern recursion", "return ('a'):rep(1000):find(('(a'):rep(40))", SCRIPT, ANY,
     "too many captures"},
    {"deep nesting in load", "return load('return ' .. ('('):rep(1e5) .. '1' .. (')'):rep(1e5))",
     OK, SCRIPT, NULL},
    /* the GEMM replay's scratch is not tensor memory and its loops charge no budget */
    {"GEMM replay outside the limits",
     "return recur._gemm_replay({{op = 'gemm', m = 16384, n = 16384, k = 16384, ta = false,"
     " tb = false, threads = 1, kernel = 0}}, 1000)",
     SCRIPT, ANY, "not available with a memory limit"},
};

#define N_ATTACKS ((int)(sizeof attacks / sizeof attacks[0]))

/* A coroutine killed by the budget in one call, closed in the next (with a fresh budget): its
 * handlers must still not run. */
static void test_close_next_call(recur_runtime *rt) {
  CHECK(recur_run_string(rt,
                         "CO = coroutine.create(function()\n"
                         "  local x <close> = setmetatable({}, {__close = function()\n"
                         "    while true do end end})\n"
                         "  while true do end\n"
                         "end)\n"
                         "coroutine.resume(CO)",
                         "=kill") == RECUR_ERR_BUDGET);
  int n = 0, b = 1;
  const char *msg = NULL;
  CHECK(recur_run_string(rt, "return coroutine.close(CO)", "=close") == RECUR_OK);
  CHECK(recur_result_count(rt, &n) == RECUR_OK && n == 2);
  CHECK(recur_result_boolean(rt, 1, &b) == RECUR_OK && b == 0);
  CHECK(recur_result_string(rt, 2, &msg, NULL) == RECUR_OK && msg &&
        strstr(msg, "budget exceeded"));
  CHECK(recur_run_string(rt, "CO = nil", NULL) == RECUR_OK);
}

/* The Lua half's modules that reach files or processes on the host (plots, results files, the
 * notebook kernel, MPI) are reachable by require; using them must fail with a Lua error and
 * touch nothing. Each runs in a fresh runtime: a loaded module stays in package.loaded, which
 * the main loop's heap check would count against the next attack. */
static const attack library_attacks[] = {
    {"recur.plot writes a PNG",
     "return require('recur.plot').lines{file = '/tmp/recur_pwned', "
     "series = {{name = 'a', x = {1, 2}, y = {1, 2}}}}",
     SCRIPT, ANY, "field 'execute'"},
    {"recur.plot available", "return require('recur.plot').available()", SCRIPT, ANY,
     "field 'execute'"},
    {"recur.experiment writes a results file",
     "local e = require('recur.experiment')\n"
     "local s = e.sweep{name = 'x', out = '/tmp/recur_pwned', quiet = true, seeds = {1},\n"
     "  configs = {{}}, run = function() return {loss = 1} end}\n"
     "return s:run()",
     SCRIPT, ANY, "field 'getenv'"},
    {"recur.experiment machine facts", "return require('recur.experiment.report').machine()",
     SCRIPT, ANY, "global 'io'"},
    {"recur.kernel installs a kernelspec",
     "return require('recur.kernel').install({'--prefix', '/tmp/recur_pwned'}, '/bin/sh')", SCRIPT,
     ANY, "field 'execute'"},
    {"recur.kernel runs", "return require('recur.kernel').run('/tmp/recur_pwned')", SCRIPT, ANY,
     NULL},
    {"recur.kernel_io", "return require('recur.kernel_io')", SCRIPT, ANY,
     "module 'recur.kernel_io' not found"},
    {"recur.mpi", "return require('recur.mpi').init()", SCRIPT, ANY, "field 'getenv'"},
    {"recur_mpi C module", "return require('recur_mpi')", SCRIPT, ANY,
     "module 'recur_mpi' not found"},
};

static void test_library_modules(const recur_options *o) {
  int n = (int)(sizeof library_attacks / sizeof library_attacks[0]);
  for (int i = 0; i < n; i++) {
    const attack *a = &library_attacks[i];
    recur_runtime *rt = NULL;
    CHECK(recur_new(o, &rt) == RECUR_OK);
    if (!rt) return;
    int rc = recur_run_string(rt, a->code, "=attack");
    const char *msg = "";
    recur_last_error(rt, &msg);
    int ok = rc == a->want && (!a->text || strstr(msg, a->text) != NULL);
    if (!ok)
      fprintf(stderr, "library attack '%s': status %d (want %d), message: %.300s\n", a->name, rc,
              a->want, msg);
    if (getenv("RECUR_VERBOSE")) fprintf(stderr, "library attack '%s': %.200s\n", a->name, msg);
    CHECK(ok);
    CHECK(recur_run_string(rt, "return recur.ones(2):sum():item()", "=after") == RECUR_OK);
    recur_free(rt);
    FILE *f = fopen("/tmp/recur_pwned", "r");
    if (f) fprintf(stderr, "library attack '%s' wrote /tmp/recur_pwned\n", a->name);
    CHECK(f == NULL);
    if (f) fclose(f);
  }
  printf("%d library modules' attacks checked\n", n);
}

int main(void) {
  /* a net against hangs only; no attack's time is asserted (the machine may be busy) */
  alarm(120);
  /* a directory of host-allowed modules */
  char dir[] = "/tmp/recur_sandbox_XXXXXX", file[256], path[300];
  if (!mkdtemp(dir)) return 1;
  snprintf(file, sizeof file, "%s/ok.lua", dir);
  FILE *mf = fopen(file, "w");
  if (!mf) return 1;
  fputs("return {value = 5}\n", mf);
  fclose(mf);
  snprintf(path, sizeof path, "%s/?.lua", dir);
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = 32u << 20;
  o.instruction_budget = 10000000;
  o.module_path = path;
  recur_runtime *rt = NULL;
  CHECK(recur_new(&o, &rt) == RECUR_OK);
  if (!rt) return TEST_SUMMARY();
  /* allowed: the whole of recur, os.clock and os.time, coroutines, pure Lua */
  CHECK(recur_run_string(rt,
                         "local t = recur.tensor{{1, 2}, {3, 4}}\n"
                         "assert(recur.matmul(t, t):sum():item() == 54)\n"
                         "assert(type(os.clock()) == 'number' and type(os.time()) == 'number')\n"
                         "assert(require('recur') == recur)\n"
                         "assert(require('ok').value == 5)\n"
                         "assert(('a,b,,c'):gsub(',', ';') == 'a;b;;c')\n"
                         "assert(select(2, pcall(error, 'x', 0)) == 'x')\n"
                         /* checked methods need no debug library (recur._methods) */
                         "local ok, e = pcall(recur.nn.Linear(2, 1).parameters)\n"
                         "assert(not ok and e:find('Module:parameters: called with nil as "
                         "self', 1, true), e)\n"
                         "return #string.rep('ab', 3, '-')",
                         "=allowed") == RECUR_OK);
  CHECK(recur_collect(rt) == RECUR_OK);
  recur_stats base;
  recur_get_stats(rt, &base);
  int blocked = 0;
  for (int i = 0; i < N_ATTACKS; i++) {
    const attack *a = &attacks[i];
    if (getenv("RECUR_VERBOSE")) fprintf(stderr, "attack %d: %s\n", i + 1, a->name);
    int rc = recur_run_string(rt, a->code, "=attack");
    const char *msg = "";
    recur_last_error(rt, &msg);
    int ok = (rc == a->want || (a->want2 != ANY && rc == a->want2)) &&
             (!a->text || strstr(msg, a->text) != NULL);
    if (!ok)
      fprintf(stderr, "attack '%s': status %d (want %d), message: %.300s\n", a->name, rc, a->want,
              msg);
    CHECK(ok);
    /* the host is alive and the runtime answers */
    int n = 0;
    double v = 0;
    CHECK(recur_run_string(rt, "return 1 + recur.ones(2):sum():item()", "=after") == RECUR_OK);
    CHECK(recur_result_count(rt, &n) == RECUR_OK && n == 1);
    CHECK(recur_result_number(rt, 1, &v) == RECUR_OK && v == 3);
    /* memory is returned (each full collection halves an oversized string table) */
    for (int k = 0; k < 8; k++) CHECK(recur_collect(rt) == RECUR_OK);
    recur_stats st;
    recur_get_stats(rt, &st);
    if (st.tensor_bytes != base.tensor_bytes || st.lua_bytes > base.lua_bytes + 256 * 1024)
      fprintf(stderr, "attack '%s': tensors %zu (was %zu), Lua %zu (was %zu)\n", a->name,
              st.tensor_bytes, base.tensor_bytes, st.lua_bytes, base.lua_bytes);
    CHECK(st.tensor_bytes == base.tensor_bytes);
    CHECK(st.lua_bytes <= base.lua_bytes + 256 * 1024);
    if (ok) blocked++;
  }
  test_close_next_call(rt);
  test_library_modules(&o);
  printf("%d of %d attacks blocked\n", blocked, N_ATTACKS);
  CHECK(blocked == N_ATTACKS);
  CHECK(N_ATTACKS >= 20);
  FILE *f = fopen("/tmp/recur_pwned", "r");
  CHECK(f == NULL);
  if (f) fclose(f);
  recur_free(rt);
  remove(file);
  rmdir(dir);
  return TEST_SUMMARY();
}
