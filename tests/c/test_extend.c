/* The recipes of docs/architecture.md, followed in a test build: a toy fused cell and a toy
 * optimizer are added the way the recipes say (the code a new file would hold, plus one row
 * in each table), and work from Lua like the shipped ones.
 *
 * The tables rn_cells and rc_optims live alone in their object files (runtime/rnn_cells.c,
 * runtime/optim_table.c); this binary defines both itself, from the same lists
 * (runtime/rnn_cells.h, runtime/optim_table.h) plus its toy rows, so the linker takes these
 * and never pulls those members out of librecur.a (were it to, the link would fail with a
 * duplicate definition). Nothing here is shipped. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <string.h>

#include "../../runtime/optim.h"
#include "../../runtime/rnn_impl.h"
#include "test.h"

int luaopen_recur(lua_State *L);

/* ---- the toy cell (what runtime/rnn_toy_linear.c would hold) ----
 * A linear recurrence h' = x W_x + h W_h + b: the vanilla cell without its tanh. */

static void toy_fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H;
  const float *Wh = rc_data(s->cell->param[1]);
  for (int64_t t = 0; t < T; t++) {
    float *pre = s->pre + t * B * H, *y = s->y + t * B * H;
    const float *hp = s->st[0] + t * B * H;
    float *hn = s->st[0] + (t + 1) * B * H;
    rn_gemm(s->cell->ctx, B, H, H, hp, H, 0, Wh, H, 0, pre, H, 1.0f, 1.0f);
    for (int64_t b = 0; b < B; b++) {
      size_t row = (size_t)H * sizeof(float);
      if (rn_active(s, t, b)) {
        memcpy(hn + b * H, pre + b * H, row);
        memcpy(y + b * H, pre + b * H, row);
      } else {
        memcpy(hn + b * H, hp + b * H, row);
        memset(y + b * H, 0, row);
      }
    }
  }
}

static void toy_bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H;
  const float *Wh = rc_data(s->w[1]);
  float *dh = w->d[0], *tmp = w->ws;
  for (int64_t t = T - 1; t >= 0; t--) {
    const float *dy = w->dy + t * B * H;
    float *dG = w->dG + t * B * H;
    for (int64_t b = 0; b < B; b++) {
      float *g = dG + b * H;
      if (!rn_active(s, t, b)) {
        memset(g, 0, (size_t)H * sizeof(float));
        continue;
      }
      for (int64_t j = 0; j < H; j++) g[j] = dh[b * H + j] + dy[b * H + j];
    }
    rn_gemm(s->cell->ctx, B, H, H, dG, H, 0, Wh, H, 1, tmp, H, 1.0f, 0.0f); /* dG W_h^T */
    for (int64_t b = 0; b < B; b++)
      if (rn_active(s, t, b)) memcpy(dh + b * H, tmp + b * H, (size_t)H * sizeof(float));
  }
  if (w->dp[1])
    rn_gemm(s->cell->ctx, H, H, T * B, s->st[0], H, 1, w->dG, H, 0, w->dp[1], H, 1.0f, 0.0f);
}

static int64_t toy_bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return rn_r16(B * H);
}

const rn_ops rn_ops_toy_linear = {
    .name = "toy_linear",
    .bw_name = "ToyLinearBackward",
    .gates = 1,
    .n_states = 1,
    .has_bias = 1,
    .state_names = {"h"},
    .n_params = 3,
    .param_names = {"W_x", "W_h", "b"},
    .bws_floats = toy_bws,
    .forward = toy_fwd,
    .backward = toy_bwd,
};

/* ---- the toy optimizer (what its kernel and row in runtime/optim.c would be) ----
 * Sign momentum: b = momentum b + g; p -= lr sign(b). */

static void sign_update(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                        float *const *slot, int64_t n) {
  (void)t;
  float *b = slot[0], m = (float)o->momentum, lr = (float)o->lr;
  for (int64_t i = 0; i < n; i++) {
    b[i] = m * b[i] + g[i];
    p[i] -= lr * (float)((b[i] > 0.0f) - (b[i] < 0.0f));
  }
}

static void sign_defaults(rc_optim_opts *o) {
  o->momentum = 0.5;
}

const rc_optim_desc rc_optim_toy_sign = {
    .name = "ToySign",
    .slots = {"momentum_buffer"},
    .options = {"momentum"},
    .defaults = sign_defaults,
    .update = sign_update,
};

/* ---- the tables: the shipped rows plus one toy row each ---- */

#define RN_CELL(ops) extern const rn_ops ops;
#include "../../runtime/rnn_cells.h"
#undef RN_CELL
#define RN_CELL(ops) &ops,
const rn_ops *const rn_cells[] = {
#include "../../runtime/rnn_cells.h"
    &rn_ops_toy_linear, NULL};
#undef RN_CELL

#define RC_OPTIM(desc) extern const rc_optim_desc desc;
#include "../../runtime/optim_table.h"
#undef RC_OPTIM
#define RC_OPTIM(desc) &desc,
const rc_optim_desc *const rc_optims[] = {
#include "../../runtime/optim_table.h"
    &rc_optim_toy_sign, NULL};
#undef RC_OPTIM

/* ---- from Lua ---- */

static int run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) == LUA_OK) return 1;
  fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

/* The toy cell is a kind like the others: listed, named in the error's list of kinds, and its
 * forward and backward agree with the same recurrence written with tensor ops. */
static const char *CELL_CODE =
    "local recur = require 'recur'\n"
    "local rnn = recur.rnn\n"
    "assert(rnn.cell_types[#rnn.cell_types] == 'toy_linear', 'cell_types')\n"
    "assert(rnn.cell_types[1] == 'rnn' and #rnn.cell_types == 8)\n"
    "local ok, e = pcall(recur._rnn_cell, 'nope', 1, 1)\n"
    "assert(not ok and e:find('ln_lstm, toy_linear)', 1, true), e)\n"
    "recur.seed(3)\n"
    "local cell = rnn.Cell { cell = 'toy_linear', input = 2, hidden = 3 }\n"
    "assert(cell.kind == 'toy_linear' and cell.n_states == 1)\n"
    "local P = {}\n"
    "for _, np in ipairs(cell:parameters()) do P[np[1]] = np[2] end\n"
    "local x = recur.randn(4, 2, 2)\n"
    "local y, st = cell:forward(x)\n"
    "local w = recur.randn(4, 2, 3)\n"
    "local loss = (y * w):sum()\n"
    "loss:backward()\n"
    "local g = { W_x = P.W_x.grad:clone(), W_h = P.W_h.grad:clone(), b = P.b.grad:clone() }\n"
    "for _, t in pairs(P) do t:zero_grad() end\n"
    "local h, ref = recur.zeros(2, 3), 0\n"
    "for t = 1, 4 do\n"
    "  h = recur.matmul(x:select(1, t), P.W_x) + recur.matmul(h, P.W_h) + P.b\n"
    "  ref = ref + (h * w:select(1, t)):sum()\n"
    "end\n"
    "assert((h - st[1]):abs():max():item() < 1e-5, 'final state')\n"
    "ref:backward()\n"
    "for k, v in pairs(g) do\n"
    "  assert((v - P[k].grad):abs():max():item() < 1e-4, 'gradient of ' .. k)\n"
    "end\n"
    "assert(math.abs(loss:item() - ref:item()) < 1e-4, 'loss')\n";

/* The toy optimizer is an optimizer like the others: recur.optim.ToySign, its option and
 * default, its state, and a checkpoint round trip of that state. */
static const char *OPTIM_CODE =
    "local recur = require 'recur'\n"
    "local optim = recur.optim\n"
    "assert(type(optim.ToySign) == 'function')\n"
    "local p = recur.tensor { 1, -2, 3 }:requires_grad(true)\n"
    "local opt = optim.ToySign({ p }, { lr = 0.1 })\n"
    "assert(opt:get('momentum') == 0.5 and opt:hyper().beta1 == nil)\n"
    "local ok, e = pcall(optim.ToySign, { p }, { lr = 0.1, beta1 = 0.9 })\n"
    "assert(not ok and e:find(\"ToySign: unknown option 'beta1'\", 1, true), e)\n"
    "p.grad = recur.tensor { 0.5, -1, 0 }\n"
    "opt:step()\n"
    "p.grad = recur.tensor { -2, 0.25, 0 }\n"
    "opt:step()\n"
    "-- b = {0.5, -1, 0} then {-1.75, -0.25, 0}: p moves by -0.1 sign(b) each step\n"
    "local v = p:totable()\n"
    "assert(math.abs(v[1] - 1) < 1e-6 and math.abs(v[2] + 1.8) < 1e-6 and v[3] == 3, 'p')\n"
    "local b = opt:state().params[1].momentum_buffer:totable()\n"
    "assert(b[1] == -1.75 and b[2] == -0.25 and b[3] == 0, 'state')\n"
    "local path = os.tmpname()\n"
    "recur.save(path, { optimizer = opt })\n"
    "local q = recur.tensor { 0, 0, 0 }:requires_grad(true)\n"
    "local opt2 = optim.ToySign({ q }, { lr = 0.1 })\n"
    "recur.load(path, { optimizer = opt2 })\n"
    "os.remove(path)\n"
    "local b2 = opt2:state().params[1].momentum_buffer:totable()\n"
    "assert(b2[1] == -1.75 and b2[2] == -0.25 and opt2:state().step == 2, 'loaded state')\n";

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "recur", luaopen_recur, 1);
  lua_pop(L, 1);
  CHECK(rc_cell_kind_of("toy_linear") == 7);
  CHECK(rc_optim_find("ToySign") == &rc_optim_toy_sign);
  CHECK(run(L, CELL_CODE));
  CHECK(run(L, OPTIM_CODE));
  lua_close(L);
  return TEST_SUMMARY();
}
