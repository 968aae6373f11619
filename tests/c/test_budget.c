/* The work budget charges what a script's calls touch (elements, bytes, comparisons), not
 * only the Lua instructions that start them: each row is a loop of a few instructions that
 * make the runtime or Lua's C library do much work per instruction.
 *
 * For each row, in a fresh sandboxed runtime: the setup runs without a budget; the loop runs
 * once without a budget (it must succeed, and the units it was charged, recur_get_stats'
 * last_work, must be at least `min_units`: the elements or bytes it touches over 64, a quarter
 * of the nominal one unit per 16, or for work that costs more an element (random draws,
 * reading a table, decoding text) a quarter or half of its nominal units, so work is charged
 * in proportion to what is touched); then it
 * runs again with an eighth of what it was charged as its budget and must end with
 * RECUR_ERR_BUDGET having been charged at most a quarter: the overshoot past the budget is
 * at most one operation, and each row's loop is 20 or more operations (or one operation that
 * charges as it goes). Nothing here measures time; alarm() is only a safety net against a
 * hang. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../include/recur.h"
#include "test.h"

typedef struct {
  const char *name;
  const char *setup; /* globals for the loop, run without a budget */
  const char *loop;
  double min_units; /* touched / 64 */
} row;

#define E 65536.0  /* elements of the tensors, entries of the tables below */
#define S 786432.0 /* bytes of the long string s */

#define TENSORS "a = recur.ones(65536) b = recur.ones(65536) "
#define OPTIM(KIND, OPTS)                                                                          \
  "w = recur.zeros(65536):requires_grad_(true); (w * 1):sum():backward() "                         \
  "opt = recur.optim." KIND "({w}, " OPTS ") "
#define LONG_S "s = ('abc'):rep(262144) "

static const row rows[] = {
    /* in-place tensor ops: 400 ops on 65536 elements */
    {"add_", TENSORS, "for i = 1, 100 do a:add_(b) end", 100 * E / 64},
    {"add_ with alpha", TENSORS, "for i = 1, 100 do a:add_(b, 0.5) end", 100 * E / 64},
    {"sub_ scalar", TENSORS, "for i = 1, 100 do a:sub_(1) end", 100 * E / 64},
    {"mul_ broadcast", TENSORS "c = recur.ones(1)", "for i = 1, 100 do a:mul_(c) end",
     100 * E / 64},
    {"div_", TENSORS, "for i = 1, 100 do a:div_(b) end", 100 * E / 64},
    {"pow_", TENSORS, "for i = 1, 100 do a:pow_(1) end", 100 * E / 64},
    {"exp_", TENSORS, "for i = 1, 100 do a:exp_() end", 100 * E / 64},
    {"tanh_", TENSORS, "for i = 1, 100 do a:tanh_() end", 100 * E / 64},
    {"sigmoid_ on a strided view", TENSORS "v = a:view(256, 256):t()",
     "for i = 1, 100 do v:sigmoid_() end", 100 * E / 64},
    {"clamp_", TENSORS, "for i = 1, 100 do a:clamp_(0, 1) end", 100 * E / 64},
    {"fill_", TENSORS, "for i = 1, 100 do a:fill_(2) end", 100 * E / 64},
    {"zero_", TENSORS, "for i = 1, 100 do a:zero_() end", 100 * E / 64},
    {"copy_", TENSORS, "for i = 1, 100 do a:copy_(b) end", 100 * E / 64},
    {"copy_ broadcast", TENSORS "c = recur.ones(1)", "for i = 1, 100 do a:copy_(c) end",
     100 * E / 64},
    {"_nn.zero_", TENSORS, "for i = 1, 100 do recur._nn.zero_(a) end", 100 * E / 64},
    /* optimizers and clipping */
    {"Adam step", OPTIM("Adam", "{lr = 1e-3}"), "for i = 1, 100 do opt:step() end", 100 * E / 64},
    {"SGD step with momentum", OPTIM("SGD", "{lr = 1e-3, momentum = 0.9}"),
     "for i = 1, 100 do opt:step() end", 100 * E / 64},
    {"step with clip_norm", OPTIM("SGD", "{lr = 1e-3, clip_norm = 1e-9}"),
     "for i = 1, 100 do opt:step() end", 100 * E / 64},
    {"zero_grad", OPTIM("SGD", "{lr = 1e-3}"), "for i = 1, 100 do opt:zero_grad() end",
     100 * E / 64},
    {"opt:clip_grad_norm", OPTIM("SGD", "{lr = 1e-3}"),
     "for i = 1, 100 do opt:clip_grad_norm(1e9) end", 100 * E / 64},
    {"opt:clip_grad_value", OPTIM("SGD", "{lr = 1e-3}"),
     "for i = 1, 100 do opt:clip_grad_value(1e9) end", 100 * E / 64},
    {"opt:grad_norm", OPTIM("SGD", "{lr = 1e-3}"), "for i = 1, 100 do opt:grad_norm() end",
     100 * E / 64},
    {"nn.grad_norm", OPTIM("SGD", "{lr = 1e-3}"), "for i = 1, 100 do recur.nn.grad_norm({w}) end",
     100 * E / 64},
    {"nn.clip_grad_norm", OPTIM("SGD", "{lr = 1e-3}"),
     "for i = 1, 100 do recur.nn.clip_grad_norm({w}, 1e9) end", 100 * E / 64},
    {"setting a packed parameter's grad",
     "m = recur.nn.Linear(256, 256) opt = recur.optim.SGD(m, {lr = 1}) w = m.weight "
     "g = recur.ones(256, 256)",
     "for i = 1, 100 do w.grad = g end", 100 * E / 64},
    /* other runtime functions */
    {"multinomial with replacement", "p = recur.ones(65536)",
     "for i = 1, 100 do recur.multinomial(p, 1, true) end", 100 * E / 64},
    {"multinomial without replacement", "p = recur.ones(16384)",
     "for i = 1, 20 do recur.multinomial(p, 1, false) end", 20 * E / 4 * 14 / 64},
    {"randn", "", "for i = 1, 40 do recur.randn(65536) end", 40 * E},
    {"rand", "", "for i = 1, 40 do recur.rand(65536) end", 40 * E / 4},
    {"truncated_normal", "", "for i = 1, 40 do recur.truncated_normal(65536) end", 40 * E},
    {"randperm", "", "for i = 1, 40 do recur.randperm(65536) end", 40 * E / 4},
    {"randint", "", "for i = 1, 40 do recur.randint(1, 6, 65536) end", 40 * E / 2},
    {"bernoulli", TENSORS, "for i = 1, 40 do recur.bernoulli(a:mul_(0.5)) end", 40 * E / 4},
    {"sample_logits", TENSORS, "for i = 1, 100 do recur.sample_logits(a) end", 100 * E / 64},
    {"tostring", TENSORS, "for i = 1, 100 do tostring(a) end", 100 * E / 64},
    {"tensor from a table", "t = {} for i = 1, 65536 do t[i] = i end",
     "for i = 1, 40 do recur.tensor(t) end", 40 * E / 4},
    {"totable", TENSORS, "for i = 1, 40 do a:totable() end", 40 * E / 64},
    {"Vocab.build", LONG_S, "for i = 1, 40 do recur.data.Vocab.build(s) end", 40 * S / 64},
    {"Vocab:encode", LONG_S "V = recur.data.Vocab.build(s)", "for i = 1, 40 do V:encode(s) end",
     40 * S / 8},
    {"Vocab:decode", LONG_S "V = recur.data.Vocab.build(s) ids = V:encode(s)",
     "for i = 1, 40 do V:decode(ids) end", 40 * S / 64},
    /* the Lua library */
    {"collectgarbage()", "junk = {} for i = 1, 100000 do junk[i] = {i} end",
     "for i = 1, 20 do collectgarbage() end", 20 * 8e6 / 64},
    {"collectgarbage('step')", "junk = {} for i = 1, 100000 do junk[i] = {i} end",
     "for i = 1, 20 do collectgarbage('step', 1e9) end", 20 * 8e6 / 64},
    /* a refused allocation makes Lua run a full collection before it gives up */
    {"allocations the memory limit refuses",
     "junk = {} for i = 1, 100000 do junk[i] = {i} end big = ('x'):rep(100 * 2^20) "
     "function cat() return big .. big end",
     "for i = 1, 20 do pcall(cat) end", 20 * 8e6 / 64},
    {"load of a big chunk", "src = ('x = 1 '):rep(32768)", "for i = 1, 20 do load(src) end",
     20 * S / 4 / 64},
    {"load from a reader",
     "src = ('x = 1 '):rep(32768) "
     "function reader() local n = 0 return function() n = n + 1 if n <= 20 then return src end "
     "end end",
     "load(reader())", 20 * S / 4 / 64},
    {"table.sort", "t = {} for i = 1, 16384 do t[i] = (i * 7919) % 16384 end",
     "for i = 1, 20 do table.sort(t) end", 20 * E / 4 * 14 / 4},
    {"table.sort of long strings",
     "t = {} local p = ('x'):rep(4096) for i = 1, 2048 do t[i] = p .. ((i * 7919) % 2048) end",
     "for i = 1, 10 do table.sort(t) end", 10 * 2048 * 11 * 4096 / 64},
    {"table.concat", "t = {} for i = 1, 65536 do t[i] = 'abcdefghij' end",
     "for i = 1, 40 do table.concat(t) end", 40 * E * 10 / 64},
    {"table.concat of empty strings", "t = {} for i = 1, 262144 do t[i] = '' end",
     "for i = 1, 40 do table.concat(t) end", 40 * 262144 / 64},
    {"table.unpack", "t = {} for i = 1, 65536 do t[i] = i end",
     "for i = 1, 100 do select('#', table.unpack(t)) end", 100 * E / 64},
    {"string.upper", LONG_S, "for i = 1, 40 do s:upper() end", 40 * S / 64},
    {"string.lower", LONG_S, "for i = 1, 40 do s:lower() end", 40 * S / 64},
    {"string.reverse", LONG_S, "for i = 1, 40 do s:reverse() end", 40 * S / 64},
    {"string.format('%q')", LONG_S, "for i = 1, 40 do string.format('%q', s) end", 40 * S / 64},
    {"string.format('%s')", LONG_S, "for i = 1, 40 do string.format('%s', s) end", 40 * S / 64},
    {"string.rep", LONG_S, "for i = 1, 40 do s:rep(2) end", 40 * 2 * S / 64},
    {"string.sub", LONG_S, "for i = 1, 40 do s:sub(2) end", 40 * S / 64},
    {"string.byte", LONG_S, "for i = 1, 100 do select('#', s:byte(1, 65536)) end", 100 * E / 64},
    {"string.char", "t = {} for i = 1, 65536 do t[i] = 65 end",
     "for i = 1, 100 do string.char(table.unpack(t)) end", 100 * E / 64},
    {"concatenation", LONG_S, "for i = 1, 40 do local n = #(s .. s) end", 40 * 2 * S / 64},
    {"string.packsize", "f = ('i1'):rep(65536)", "for i = 1, 100 do string.packsize(f) end",
     100 * 2 * E / 64},
    {"string.unpack", "f = ('i1'):rep(65536) d = ('x'):rep(65536)",
     "for i = 1, 100 do select('#', string.unpack(f, d)) end", 100 * 2 * E / 64},
    {"string.pack", "f = ('i1'):rep(65536) t = {} for i = 1, 65536 do t[i] = 1 end",
     "for i = 1, 100 do string.pack(f, table.unpack(t)) end", 100 * 2 * E / 64},
    {"tonumber of a long string", "d = ('1'):rep(786432)", "for i = 1, 40 do tonumber(d) end",
     40 * S / 64},
    {"arithmetic on a long numeric string", "d = ('1'):rep(786432)",
     "for i = 1, 40 do local x = d + 0 end", 40 * S / 64},
    {"tonumber with a base", "d = ('1'):rep(786432)", "for i = 1, 40 do tonumber(d, 16) end",
     40 * S / 64},
    {"rawequal of long strings", LONG_S "x = s:sub(1) y = s:sub(1)",
     "for i = 1, 100 do rawequal(x, y) end", 100 * S / 64},
    {"utf8.len", "u = ('\\u{e9}'):rep(393216)", "for i = 1, 40 do utf8.len(u) end", 40 * S / 64},
    {"utf8.offset", "u = ('\\u{e9}'):rep(393216)", "for i = 1, 40 do utf8.offset(u, 393216) end",
     40 * S / 64},
    {"utf8.codes skipping continuation bytes", "u = 'a' .. ('\\x80'):rep(786432)",
     "for i = 1, 40 do for p, c in utf8.codes(u) do end end", 40 * S / 64},
    {"utf8.codepoint", "u = ('\\u{e9}'):rep(393216)",
     "for i = 1, 100 do select('#', utf8.codepoint(u, 1, 131072)) end", 100 * E / 64},
    {"utf8.char", "t = {} for i = 1, 65536 do t[i] = 233 end",
     "for i = 1, 40 do utf8.char(table.unpack(t)) end", 40 * E / 64},
    {"pattern bracket class", "subj = ('0'):rep(1024) cls = '[' .. ('a-z'):rep(20000) .. ']'",
     "subj:find(cls)", 1024 * 60000.0 / 64},
};

#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

/* The sandbox's charging wrappers keep the library's behaviour (results, iteration, errors
 * that name the function). */
static const char *const semantics =
    "assert(utf8.offset('h\\u{e4}ll', 3) == 4)\n"
    "assert(utf8.offset('h\\u{e4}ll', -1) == 5)\n"
    "local ps = {} for p, c in utf8.codes('h\\u{e4}l') do ps[#ps+1] = p .. ':' .. c end\n"
    "assert(table.concat(ps, ',') == '1:104,2:228,4:108', table.concat(ps, ','))\n"
    "assert(select('#', utf8.codepoint('h\\u{e4}l', 1, -1)) == 3)\n"
    "assert(utf8.len('h\\u{e4}l') == 3 and utf8.len('\\xff') == nil)\n"
    "assert(('abc'):byte(2) == 98 and select('#', ('abc'):byte(1, -1)) == 3)\n"
    "assert(string.char(72, 105) == 'Hi' and ('Hi'):upper() == 'HI' and ('Hi'):reverse() == 'iH')\n"
    "assert(select('#', table.unpack({1, 2, 3})) == 3 and select('#', table.unpack({1, 2, 3}, 2)) "
    "== 2)\n"
    "assert(table.concat({1, 2, 3}, '-', 2, 3) == '2-3')\n"
    "local t = {'b', 'c', 'a'} table.sort(t) assert(table.concat(t) == 'abc')\n"
    "local t = {3, 1, 2} table.sort(t, function(a, b) return a > b end) assert(table.concat(t) == "
    "'321')\n"
    "local p = setmetatable({}, {__index = {'z', 'y'}, __len = function() return 2 end})\n"
    "table.sort(p) assert(rawget(p, 1) == 'y' and rawget(p, 2) == 'z')\n"
    "assert(('5') + 1 == 6 and ('2') * ('3') == 6 and -('5') == -5 and ('7') // 2 == 3)\n"
    "assert(tonumber('ff', 16) == 255 and tonumber('1e2') == 100 and tonumber('x') == nil)\n"
    "assert(rawequal('a', 'a') and not rawequal('a', 'b'))\n"
    "assert(string.format('%s|%q|%d', 'x', 'y', 3) == 'x|\"y\"|3')\n"
    "assert(string.unpack('i2', string.pack('i2', 7)) == 7 and string.packsize('i4') == 4)\n"
    "assert(load('return 1 + 1')() == 2)\n"
    "local n = 0 assert(load(function() n = n + 1 if n == 1 then return 'return 3' end end)() == "
    "3)\n"
    "assert(collectgarbage('count') > 0) collectgarbage() collectgarbage('step')\n"
    "local ok, e = pcall(utf8.len, 'abc', 10) assert(not ok and e:find(\"len'\"), e)\n"
    "local ok, e = pcall(string.rep) assert(not ok)\n"
    "return 'ok'";

static recur_runtime *fresh(void) {
  recur_options o;
  recur_options_init(&o);
  o.memory_limit = 256u << 20;
  recur_runtime *rt = NULL;
  if (recur_new(&o, &rt) != RECUR_OK) return NULL;
  return rt;
}

static uint64_t last_work(recur_runtime *rt) {
  recur_stats st;
  recur_get_stats(rt, &st);
  return st.last_work;
}

int main(int argc, char **argv) {
  alarm(300); /* a hang is a failure, not a stuck suite (the table takes seconds) */
  const char *only = argc > 1 ? argv[1] : NULL;
  int failed_rows = 0, ran = 0;
  recur_runtime *srt = fresh();
  CHECK(srt != NULL);
  if (srt) {
    const char *msg = "";
    int rc = recur_run_string(srt, semantics, "=semantics");
    if (rc != RECUR_OK) recur_last_error(srt, &msg);
    if (rc != RECUR_OK) fprintf(stderr, "semantics: %s\n", msg);
    CHECK(rc == RECUR_OK);
    recur_free(srt);
  }
  for (int i = 0; i < N_ROWS; i++) {
    const row *r = &rows[i];
    if (only && !strstr(r->name, only)) continue;
    ran++;
    recur_runtime *rt = fresh();
    CHECK(rt != NULL);
    if (!rt) return TEST_SUMMARY();
    const char *msg = "";
    int rc = recur_run_string(rt, r->setup, "=setup");
    if (rc != RECUR_OK) recur_last_error(rt, &msg);
    if (rc != RECUR_OK) fprintf(stderr, "row '%s': setup failed: %s\n", r->name, msg);
    CHECK(rc == RECUR_OK);
    /* unbudgeted: succeeds and is charged in proportion to what it touches */
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    rc = recur_run_string(rt, r->loop, "=loop");
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    uint64_t full = last_work(rt);
    if (getenv("RECUR_VERBOSE")) /* for calibrating the units; not checked */
      fprintf(stderr, "%-32s %12llu units %8.1f ms %6.2f ns/unit\n", r->name,
              (unsigned long long)full,
              ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6),
              ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                  (double)(full ? full : 1));
    if (rc != RECUR_OK) recur_last_error(rt, &msg);
    int ok1 = rc == RECUR_OK && (double)full >= r->min_units;
    if (!ok1)
      fprintf(stderr, "row '%s': unbudgeted status %d, charged %llu units, want >= %.0f%s%s\n",
              r->name, rc, (unsigned long long)full, r->min_units, rc ? ": " : "", rc ? msg : "");
    CHECK(ok1);
    /* budgeted: stopped by the budget, overshooting by at most one operation */
    uint64_t budget = full / 8 > 1000 ? full / 8 : 1000;
    CHECK(recur_set_budget(rt, budget) == RECUR_OK);
    rc = recur_run_string(rt, r->loop, "=loop");
    uint64_t used = last_work(rt);
    recur_last_error(rt, &msg);
    int ok2 = rc == RECUR_ERR_BUDGET && used <= 2 * budget;
    if (!ok2)
      fprintf(stderr, "row '%s': budget %llu: status %d (want %d), charged %llu: %.200s\n", r->name,
              (unsigned long long)budget, rc, RECUR_ERR_BUDGET, (unsigned long long)used,
              rc ? msg : "");
    CHECK(ok2);
    /* the runtime still answers */
    CHECK(recur_run_string(rt, "return 1", "=after") == RECUR_OK);
    if (!ok1 || !ok2) failed_rows++;
    recur_free(rt);
  }
  printf("%d of %d budget rows failed\n", failed_rows, ran);
  CHECK(failed_rows == 0);
  return TEST_SUMMARY();
}
