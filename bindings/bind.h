/* The binding toolkit (bindings/bind.c), shared by every bindings file: the tensor userdata's
 * layout, the per-state runtime context, argument checks, errors, registration; and every
 * bindings file's entry point. Bindings never do math: they check arguments, convert (1-based Lua
 * indices to the runtime's 0-based ones), call runtime/, and push results. */
#ifndef RECUR_BIND_H
#define RECUR_BIND_H

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/autograd.h"
#include "../runtime/tensor.h"

#define RECUR_TENSOR_MT "recur.Tensor"

/* The userdata: one reference to a runtime tensor; NULL once closed. */
typedef struct {
  rc_tensor *t;
} rb_tensor;

/* Per-Lua-state data (stored in the registry): the runtime context. */
rc_ctx *rb_ctx(lua_State *L);
/* Pushes the per-state data, to give a closure as upvalue 1 as rb_setfuncs does. */
void rb_push_state(lua_State *L);

/* Pushes t as a new userdata; takes over the caller's reference. If t is NULL, raises the
 * runtime's error message (so `return rb_push(L, rc_op(...))` is the usual idiom). */
int rb_push(lua_State *L, rc_tensor *t);
/* Pushes n tensors (taking over the caller's references) as n values, or as one list when
 * as_list; the userdata are made first, under lua_pcall, so that a failed allocation leaks
 * nothing. With free_ts the (malloc'ed) array ts is freed on every path. Returns the number
 * of values pushed. */
int rb_push_n(lua_State *L, rc_tensor **ts, int n, int as_list, int free_ts);
/* Releases tensors that rb_push could not hand to Lua because the userdata allocation failed
 * (they are otherwise released by a later rb_push or with the state). Only call it when no
 * rb_push is in progress, e.g. from a host between calls. */
void rb_release_pending(lua_State *L);
/* Like luaL_error but formatted with the C library's vsnprintf (so %lld, %zu, %g work;
 * lua_pushfstring does not support them). Never returns. */
int rb_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raises ctx->err as a Lua error. */
int rb_raise(lua_State *L);

/* Argument checks; each raises "fn: argument #i ..." on failure. */
rc_tensor *rb_check(lua_State *L, int idx); /* a live tensor */
rc_tensor *rb_test(lua_State *L, int idx);  /* tensor or NULL (no error) */
/* The userdata at idx if it is a tensor, closed (t == NULL) or not; else NULL. */
rb_tensor *rb_to_tensor(lua_State *L, int idx);
int rb_is_tensor(lua_State *L, int idx);
/* Tensor argument, or a number turned into a 0-d tensor (new ref in *owned). */
rc_tensor *rb_check_tensor_or_number(lua_State *L, int idx, rc_tensor **owned);
/* A Lua dimension (1-based, or negative from the end) checked against ndim; returns 0-based. */
int rb_check_dim(lua_State *L, int idx, int ndim);
/* The same check for a dimension d already read (from a list, say): 0-based. */
int rb_dim_value(lua_State *L, int64_t d, int ndim);
int rb_opt_dim(lua_State *L, int idx, int ndim, int def);
/* A size/index argument that must be an integer (floats with integral values allowed). */
int64_t rb_check_int(lua_State *L, int idx);
/* Reads a shape given either as varargs of integers starting at idx or as one table at idx.
 * Returns ndim. */
int rb_check_shape(lua_State *L, int idx, int64_t *size);
/* A string (or number), a number (or numeric string) and a table argument, like
 * luaL_checkstring / luaL_checknumber / luaL_checktype but with messages that name the
 * function even when it is called through pcall ("fn: argument #i must be a ..."). */
const char *rb_check_string(lua_State *L, int idx);
double rb_check_number(lua_State *L, int idx);
void rb_check_table(lua_State *L, int idx);
void rb_check_function(lua_State *L, int idx);
/* Name of the running C function, for messages ("add", "matmul"). */
const char *rb_fname(lua_State *L);

/* Optional boolean field of a table at idx (or default). */
int rb_opt_bool_field(lua_State *L, int idx, const char *k, int def);

/* luaL_setfuncs into the table at the top, each function carrying the per-state data as
 * upvalue 1 and the tensor metatable as upvalue 2 (so finding the runtime context and
 * checking a tensor cost no registry lookup). */
void rb_setfuncs(lua_State *L, const luaL_Reg *l);
/* Registration: each bindings file exposes its methods (tensor:method) and functions
 * (recur.fn); module.c installs every list. A name may appear in both. */
void rb_register(lua_State *L, int methods_idx, int module_idx, const luaL_Reg *methods,
                 const luaL_Reg *functions);

/* Remembers the method and module tables (to name functions in error messages). */
void rb_set_tables(lua_State *L, int methods, int module);
/* Creates the per-state runtime context (idempotent). */
void rb_state_init(lua_State *L);

/* A Lua list of tensors at idx as a C array in Lua-owned memory (pushed on the stack: an
 * error later leaks nothing); messages name fn and what the list is (bindings/nn.c). */
rc_tensor **rb_tensor_list(lua_State *L, int idx, int *n, const char *fn, const char *what);

/* Every bindings file's entry point. */
void rb_open_tensor(lua_State *L, int methods, int module);
void rb_open_elementwise(lua_State *L, int methods, int module);
void rb_open_view(lua_State *L, int methods, int module);
void rb_open_reduce(lua_State *L, int methods, int module);
void rb_open_linalg(lua_State *L, int methods, int module);
void rb_open_index(lua_State *L, int methods, int module);
void rb_open_autograd(lua_State *L, int methods, int module);
void rb_open_random(lua_State *L, int methods, int module);
void rb_open_system(lua_State *L, int methods, int module);
void rb_open_data(lua_State *L, int methods, int module);
void rb_open_rnn(lua_State *L, int methods, int module);
void rb_open_sample(lua_State *L, int methods, int module);
void rb_open_generate(lua_State *L, int methods, int module);
/* The fused cell of an rnn cell userdata at idx (bindings/rnn.c); raises otherwise. */
struct rc_cell *rb_check_cell(lua_State *L, int idx);
void rb_open_nn(lua_State *L, int methods, int module);
void rb_open_optim(lua_State *L, int methods, int module);
void rb_open_checkpoint(lua_State *L, int methods, int module);
void rb_open_sort(lua_State *L, int methods, int module);
void rb_open_shape(lua_State *L, int methods, int module);
void rb_open_gemm_trace(lua_State *L, int methods, int module);
void rb_open_profile(lua_State *L, int methods, int module);

/* The source text of an embedded module of the Lua half ("recur.plot") and its length, or
 * NULL (bindings/module.c; the table is generated by tools/embed_lua.sh). */
const unsigned char *rb_embedded_source(const char *name, size_t *len);

#endif
