/* Lua bindings: sampling the next token from logits.
 *
 *   recur.sample_logits(logits, temperature = 1, top_k = 0)
 *       logits [V]: returns one 1-based index (a Lua integer);
 *       logits [N, V]: returns a tensor [N] of 1-based indices (one draw per row).
 *       softmax(logits / temperature) restricted to the top_k largest (0 = all);
 *       temperature 0 takes the argmax. Draws from recur's generator (recur.seed). */
#include <math.h>
#include <stdlib.h>

#include "../runtime/ops.h"
#include "../runtime/sample.h"
#include "bind.h"

static int f_sample_logits(lua_State *L) {
  rc_tensor *logits = rb_check(L, 1);
  double temperature = 1.0;
  int64_t top_k = 0;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TNUMBER)
      return rb_error(L, "sample_logits: argument #2 (temperature) must be a number, got %s",
                      luaL_typename(L, 2));
    temperature = lua_tonumber(L, 2);
    if (!(temperature >= 0) || isinf(temperature))
      return rb_error(L, "sample_logits: temperature must be a finite number >= 0, got %g",
                      temperature);
  }
  if (!lua_isnoneornil(L, 3)) {
    top_k = rb_check_int(L, 3);
    if (top_k < 0)
      return rb_error(L, "sample_logits: top_k must be >= 0, got %lld", (long long)top_k);
  }
  if (logits->ndim == 1) {
    int64_t id;
    if (rc_sample_logits(logits, temperature, top_k, &id)) return rb_raise(L);
    lua_pushinteger(L, (lua_Integer)(id + 1));
    return 1;
  }
  if (logits->ndim != 2)
    return rb_error(L, "sample_logits: logits must be [V] or [N, V], got %d dimensions",
                    logits->ndim);
  int64_t size[1] = {logits->size[0]};
  rc_tensor *r = rc_zeros(rb_ctx(L), 1, size);
  if (!r) return rb_raise(L);
  rb_push(L, r); /* Lua owns it from here: no leak if anything below raises */
  int64_t *ids = malloc(sizeof(int64_t) * (size_t)(size[0] ? size[0] : 1));
  if (!ids) return rb_error(L, "sample_logits: out of memory");
  if (rc_sample_logits(logits, temperature, top_k, ids)) {
    free(ids);
    return rb_raise(L);
  }
  float *d = rc_data(r);
  for (int64_t i = 0; i < size[0]; i++) d[i] = (float)(ids[i] + 1);
  free(ids);
  return 1;
}

void rb_open_sample(lua_State *L, int methods, int module) {
  static const luaL_Reg functions[] = {{"sample_logits", f_sample_logits}, {NULL, NULL}};
  rb_register(L, methods, module, NULL, functions);
}
