/* Lua binding of the batch-1 generation loop (runtime/rnn_generate.h).
 *
 *   recur._rnn_generate(cells, embed, W_out, b_out, state, prime, length, temperature, top_k)
 *     cells   list of fused cell userdata (a recur.rnn.RNN layer's .cells)
 *     embed   [V, E]; W_out [V, H] (PyTorch's layout); b_out [V] or nil
 *     state   nil (zeros) or one list per cell of its state tensors ([H] or [1, H])
 *     prime   list of 1-based ids (at least one); length >= 0 ids to generate
 *   -> list of `length` 1-based ids, the new state (one list of [1, H] tensors per cell)
 * Nothing is recorded; the draws come from recur's generator (as recur.sample_logits). */
#include <math.h>
#include <string.h>

#include "../runtime/rnn_generate.h"
#include "../runtime/tensor.h"
#include "bind.h"

#define MAX_CELLS 64

static int f_generate(lua_State *L) {
  rb_check_table(L, 1);
  int n = (int)luaL_len(L, 1);
  if (n < 1 || n > MAX_CELLS)
    return rb_error(L, "generate: cells must be a list of 1 to %d rnn cells, got %d", MAX_CELLS, n);
  rc_cell *cells[MAX_CELLS];
  for (int l = 0; l < n; l++) {
    lua_rawgeti(L, 1, l + 1);
    cells[l] = rb_check_cell(L, lua_gettop(L));
    lua_pop(L, 1);
  }
  rc_tensor *embed = rb_check(L, 2), *W = rb_check(L, 3);
  rc_tensor *b = lua_isnoneornil(L, 4) ? NULL : rb_check(L, 4);
  rb_check_table(L, 6);
  int64_t n_prime = (int64_t)luaL_len(L, 6);
  int64_t length = rb_check_int(L, 7);
  double temperature = (lua_isnoneornil(L, 8) ? 1.0 : rb_check_number(L, 8));
  int64_t top_k = lua_isnoneornil(L, 9) ? 0 : rb_check_int(L, 9);
  if (length < 0) return rb_error(L, "generate: length must be >= 0, got %lld", (long long)length);
  /* bounded: 8 * length bytes are allocated below, and a size_t product that wraps (2^61 ids
   * -> 0 bytes) was a heap overflow */
  if (length > RC_MAX_NUMEL)
    return rb_error(L, "generate: length must be at most 2^40, got %lld", (long long)length);
  if (!(temperature >= 0) || isinf(temperature))
    return rb_error(L, "generate: temperature must be a finite number >= 0, got %g", temperature);
  if (top_k < 0) return rb_error(L, "generate: top_k must be >= 0, got %lld", (long long)top_k);
  if (n_prime < 1) return rb_error(L, "generate: the prime needs at least one id");
  /* buffers owned by Lua (no leak if anything raises) */
  int64_t sf = rc_rnn_state_floats(cells, n);
  float *state = lua_newuserdatauv(L, sizeof(float) * (size_t)(sf > 0 ? sf : 1), 0);
  int64_t *prime = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)n_prime, 0);
  int64_t *out = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(length > 0 ? length : 1), 0);
  for (int64_t i = 0; i < n_prime; i++) {
    lua_rawgeti(L, 6, (lua_Integer)i + 1);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint)
      return rb_error(L, "generate: prime[%lld] must be an integer id, got %s", (long long)i + 1,
                      luaL_typename(L, -1));
    if (v < 1) /* the runtime checks the upper end against the vocabulary */
      return rb_error(L, "generate: prime[%lld] = %lld is not an id (ids start at 1)",
                      (long long)i + 1, (long long)v);
    prime[i] = (int64_t)v - 1;
    lua_pop(L, 1);
  }
  /* the state: nil = zeros */
  float *sp = state;
  for (int l = 0; l < n; l++) {
    int ns = rc_cell_n_states(cells[l]);
    int64_t h = rc_cell_hidden(cells[l]);
    int have = 0;
    if (!lua_isnoneornil(L, 5)) {
      rb_check_table(L, 5);
      have = lua_rawgeti(L, 5, l + 1) != LUA_TNIL;
      if (have && !lua_istable(L, -1))
        return rb_error(L, "generate: state[%d] must be a list of tensors", l + 1);
    } else {
      lua_pushnil(L);
    }
    for (int k = 0; k < ns; k++) {
      rc_tensor *t = NULL;
      if (have) {
        lua_rawgeti(L, -1, k + 1);
        if (!lua_isnil(L, -1)) t = rb_check(L, lua_gettop(L));
        lua_pop(L, 1);
      }
      if (t) {
        if (rc_numel(t) != h)
          return rb_error(L, "generate: state[%d][%d] must hold %lld values, got %lld", l + 1,
                          k + 1, (long long)h, (long long)rc_numel(t));
        rc_read_floats(t, sp);
      } else {
        memset(sp, 0, sizeof(float) * (size_t)h);
      }
      sp += h;
    }
    lua_pop(L, 1);
  }
  if (rc_rnn_generate(cells, n, embed, W, b, state, prime, n_prime, length, temperature, top_k,
                      out))
    return rb_raise(L);
  lua_createtable(L, (int)length, 0);
  for (int64_t i = 0; i < length; i++) {
    lua_pushinteger(L, (lua_Integer)(out[i] + 1));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, n, 0);
  sp = state;
  for (int l = 0; l < n; l++) {
    int ns = rc_cell_n_states(cells[l]);
    int64_t h = rc_cell_hidden(cells[l]);
    lua_createtable(L, ns, 0);
    for (int k = 0; k < ns; k++) {
      int64_t size[2] = {1, h};
      rc_tensor *t = rc_empty(rb_ctx(L), 2, size);
      if (!t) return rb_raise(L);
      memcpy(rc_data(t), sp, sizeof(float) * (size_t)h);
      rb_push(L, t);
      lua_rawseti(L, -2, k + 1);
      sp += h;
    }
    lua_rawseti(L, -2, l + 1);
  }
  return 2;
}

void rb_open_generate(lua_State *L, int methods, int module) {
  static const luaL_Reg functions[] = {{"_rnn_generate", f_generate}, {NULL, NULL}};
  rb_register(L, methods, module, NULL, functions);
}
