/* Lua bindings of the optimizers (runtime/optim.h): the recur.Optimizer userdata.
 *
 *   recur._optim.new(kind, params, opts) -- used by recur.optim.SGD/Adagrad/RMSProp/Adam/AdamW
 *   recur._optim.names()   a new list of the optimizers' names (runtime/optim_table.h)
 *   opt:step()            schedule -> lr, clipping (when configured; returns the norm before it),
 *                         one update of every parameter that has a gradient
 *   opt:zero_grad()       zeros the parameters' gradients in place (flat buffers stay intact)
 *   opt:lr(), opt:set_lr(v), opt:get(name), opt:set(name, v), opt:hyper()
 *   opt:state(), opt:load_state(s)   inspect / restore steps, epoch and the moment tensors
 *   opt:params(), opt:steps(), opt:epoch(), opt:set_epoch(e), opt:next_epoch()
 *   opt:clip_grad_norm(max), opt:clip_grad_value(v), opt:grad_norm()
 * The learning-rate schedule (a function or callable of (step, epoch)) is the userdata's user
 * value; step numbers are 1-based (the step about to be taken), epochs start at 0. */
#include <math.h>
#include <string.h>

#include "../runtime/nn.h"
#include "../runtime/optim.h"
#include "bind.h"

#define OPTIM_MT "recur.Optimizer"

typedef struct {
  rc_optim *o;
  int64_t epoch;
  double clip_norm, clip_value; /* 0: off */
} rb_optim;

static rb_optim *check_opt(lua_State *L, int idx) {
  rb_optim *u = luaL_testudata(L, idx, OPTIM_MT);
  if (!u)
    rb_error(L, "%s: argument #%d must be an optimizer, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
  if (!u->o) rb_error(L, "%s: argument #%d is a closed optimizer", rb_fname(L), idx);
  return u;
}

static int o_gc(lua_State *L) {
  rb_optim *u = luaL_testudata(L, 1, OPTIM_MT);
  if (u && u->o) { /* closed before the release, as liolib's aux_close */
    rc_optim *o = u->o;
    u->o = NULL;
    rc_optim_free(o);
  }
  return 0;
}

/* ---- options ---- */

typedef rc_optim_option opt_field;

/* The option called name, when optimizer d has it (lr is handled apart). */
static const opt_field *find_field(const rc_optim_desc *d, const char *name) {
  if (!rc_optim_has_option(d, name)) return NULL;
  for (const opt_field *f = rc_optim_options; f->name; f++)
    if (strcmp(f->name, name) == 0) return f;
  return NULL;
}

static void set_field(rc_optim_opts *o, const opt_field *f, lua_State *L, int idx, const char *fn) {
  char *base = (char *)o;
  if (f->is_bool) {
    if (lua_type(L, idx) != LUA_TBOOLEAN)
      rb_error(L, "%s: option %s must be a boolean, got %s", fn, f->name, luaL_typename(L, idx));
    *(int *)(base + f->off) = lua_toboolean(L, idx);
  } else {
    if (lua_type(L, idx) != LUA_TNUMBER)
      rb_error(L, "%s: option %s must be a number, got %s", fn, f->name, luaL_typename(L, idx));
    *(double *)(base + f->off) = lua_tonumber(L, idx);
  }
}

static void push_field(lua_State *L, const rc_optim_opts *o, const opt_field *f) {
  const char *base = (const char *)o;
  if (f->is_bool)
    lua_pushboolean(L, *(const int *)(base + f->off));
  else
    lua_pushnumber(L, *(const double *)(base + f->off));
}

/* Calls the schedule (user value) for the step about to be taken; sets lr. */
static void run_schedule(lua_State *L, int idx, rb_optim *u, const char *fn) {
  if (lua_getiuservalue(L, idx, 1) == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pushinteger(L, (lua_Integer)(u->o->step + 1));
  lua_pushinteger(L, (lua_Integer)u->epoch);
  lua_call(L, 2, 1);
  int isnum = lua_type(L, -1) == LUA_TNUMBER;
  double lr = lua_tonumber(L, -1);
  if (!isnum || !(lr >= 0) || isinf(lr))
    rb_error(L,
             "%s: the learning-rate schedule returned %s for step %lld; it must return a "
             "finite number >= 0",
             fn, isnum ? lua_tostring(L, -1) : luaL_typename(L, -1), (long long)(u->o->step + 1));
  lua_pop(L, 1);
  u->o->o.lr = lr;
}

static void check_clip(lua_State *L, double v, const char *fn, const char *what) {
  if (!(v >= 0) || isinf(v))
    rb_error(L, "%s: %s must be a finite number >= 0, got %g", fn, what, v);
}

/* new(kind, params, opts) */
static int f_new(lua_State *L) {
  const char *kname = rb_check_string(L, 1);
  const rc_optim_desc *d = rc_optim_find(kname);
  if (!d) return rb_error(L, "optim: unknown optimizer '%s'", kname);
  const char *fn = d->name;
  int n;
  rc_tensor **p = rb_tensor_list(L, 2, &n, fn, "params (argument #1)");
  int list_idx = lua_gettop(L);
  if (lua_type(L, 3) != LUA_TTABLE)
    return rb_error(L, "%s: argument #2 must be an options table with lr, got %s", fn,
                    luaL_typename(L, 3));
  rc_optim_opts o;
  rc_optim_defaults(d, &o);
  double clip_norm = 0, clip_value = 0;
  int has_schedule = 0;
  /* every key must be known: a typo is an error, not a silent default */
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return rb_error(L, "%s: option names must be strings, got %s", fn, luaL_typename(L, -2));
    const char *k = lua_tostring(L, -2);
    const opt_field *f = find_field(d, k);
    if (strcmp(k, "lr") == 0) {
      int t = lua_type(L, -1);
      if (t == LUA_TNUMBER) {
        o.lr = lua_tonumber(L, -1);
      } else if (t == LUA_TFUNCTION) {
        has_schedule = 1;
      } else if (t == LUA_TTABLE && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
        has_schedule = 1;
      } else {
        return rb_error(L, "%s: lr must be a number or a schedule (a function of the step), got %s",
                        fn, luaL_typename(L, -1));
      }
    } else if (strcmp(k, "clip_norm") == 0 || strcmp(k, "clip_value") == 0) {
      if (lua_type(L, -1) != LUA_TNUMBER)
        return rb_error(L, "%s: option %s must be a number, got %s", fn, k, luaL_typename(L, -1));
      double v = lua_tonumber(L, -1);
      check_clip(L, v, fn, k);
      if (k[5] == 'n')
        clip_norm = v;
      else
        clip_value = v;
    } else if (f) {
      set_field(&o, f, L, lua_gettop(L), fn);
    } else {
      return rb_error(L, "%s: unknown option '%s'", fn, k);
    }
    lua_settop(L, list_idx + 1); /* keep the key */
  }
  if (has_schedule)
    o.lr = 0; /* set before every step */
  else if (isnan(o.lr))
    return rb_error(L, "%s: option lr is required", fn);
  rb_optim *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->o = NULL;
  u->epoch = 0;
  u->clip_norm = clip_norm;
  u->clip_value = clip_value;
  luaL_setmetatable(L, OPTIM_MT);
  int ud = lua_gettop(L);
  if (has_schedule) {
    lua_getfield(L, 3, "lr");
    lua_setiuservalue(L, ud, 1);
  }
  u->o = rc_optim_new(rb_ctx(L), d, &o, p, n);
  if (!u->o) return rb_raise(L);
  if (has_schedule) run_schedule(L, ud, u, fn); /* validates the schedule once */
  return 1;
}

static int m_step(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  const char *fn = u->o->desc->name;
  run_schedule(L, 1, u, fn);
  double norm = -1;
  if (u->clip_norm > 0) {
    if (rc_clip_grad_norm(u->o->params, u->o->n, u->clip_norm, &norm)) return rb_raise(L);
  }
  if (u->clip_value > 0) {
    double nv;
    if (rc_clip_grad_value(u->o->params, u->o->n, u->clip_value, &nv)) return rb_raise(L);
    if (norm < 0) norm = nv;
  }
  if (rc_optim_step(u->o)) return rb_raise(L);
  if (norm < 0) return 0;
  lua_pushnumber(L, norm);
  return 1;
}

static int m_zero_grad(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  for (int i = 0; i < u->o->n; i++)
    if (u->o->params[i]->grad && rc_zero_fill(u->o->params[i]->grad)) return rb_raise(L);
  return 0;
}

static int m_lr(lua_State *L) {
  lua_pushnumber(L, check_opt(L, 1)->o->o.lr);
  return 1;
}

static int m_set_lr(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  if (lua_type(L, 2) != LUA_TNUMBER)
    return rb_error(L, "set_lr: the learning rate must be a number, got %s", luaL_typename(L, 2));
  double v = lua_tonumber(L, 2);
  if (!(v >= 0) || isinf(v))
    return rb_error(L, "set_lr: the learning rate must be a finite number >= 0, got %g", v);
  u->o->o.lr = v;
  lua_pushnil(L);
  lua_setiuservalue(L, 1, 1); /* an explicit rate replaces the schedule */
  return 0;
}

static int m_get(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  const char *k = rb_check_string(L, 2);
  if (strcmp(k, "lr") == 0) return m_lr(L);
  if (strcmp(k, "clip_norm") == 0 || strcmp(k, "clip_value") == 0) {
    lua_pushnumber(L, k[5] == 'n' ? u->clip_norm : u->clip_value);
    return 1;
  }
  const opt_field *f = find_field(u->o->desc, k);
  if (!f) return rb_error(L, "get: %s has no option '%s'", u->o->desc->name, k);
  push_field(L, &u->o->o, f);
  return 1;
}

static int m_set(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  const char *k = rb_check_string(L, 2);
  const char *fn = u->o->desc->name;
  if (strcmp(k, "lr") == 0) {
    lua_remove(L, 2);
    return m_set_lr(L);
  }
  if (strcmp(k, "clip_norm") == 0 || strcmp(k, "clip_value") == 0) {
    if (lua_type(L, 3) != LUA_TNUMBER)
      return rb_error(L, "set: option %s must be a number, got %s", k, luaL_typename(L, 3));
    double v = lua_tonumber(L, 3);
    check_clip(L, v, "set", k);
    if (k[5] == 'n')
      u->clip_norm = v;
    else
      u->clip_value = v;
    return 0;
  }
  const opt_field *f = find_field(u->o->desc, k);
  if (!f) return rb_error(L, "set: %s has no option '%s'", fn, k);
  rc_optim_opts o = u->o->o;
  set_field(&o, f, L, 3, "set");
  if (rc_optim_check(rb_ctx(L), "set", u->o->desc, &o)) return rb_raise(L);
  /* options that decide which state exists cannot change after construction */
  for (int s = 0; s < RC_OPTIM_SLOTS; s++)
    if (rc_optim_slot_used(u->o->desc, &o, s) != (u->o->slot[s] != NULL))
      return rb_error(L, "set: %s cannot be switched on or off after the optimizer is built", k);
  u->o->o = o;
  return 0;
}

/* hyper(): every option of this kind, plus name, lr, clip_norm and clip_value */
static int m_hyper(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  lua_newtable(L);
  lua_pushstring(L, u->o->desc->name);
  lua_setfield(L, -2, "name");
  lua_pushnumber(L, u->o->o.lr);
  lua_setfield(L, -2, "lr");
  for (const opt_field *f = rc_optim_options; f->name; f++) {
    if (!rc_optim_has_option(u->o->desc, f->name)) continue;
    push_field(L, &u->o->o, f);
    lua_setfield(L, -2, f->name);
  }
  lua_pushnumber(L, u->clip_norm);
  lua_setfield(L, -2, "clip_norm");
  lua_pushnumber(L, u->clip_value);
  lua_setfield(L, -2, "clip_value");
  return 1;
}

static int push_ref(lua_State *L, rc_tensor *t) {
  rc_retain(t);
  return rb_push(L, t);
}

/* state(): {step =, epoch =, params = {{step =, <slot> = tensor (shared), ...}, ...}} */
static int m_state(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  rc_optim *o = u->o;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)o->step);
  lua_setfield(L, -2, "step");
  lua_pushinteger(L, (lua_Integer)u->epoch);
  lua_setfield(L, -2, "epoch");
  lua_createtable(L, o->n, 0);
  for (int i = 0; i < o->n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)o->steps[i]);
    lua_setfield(L, -2, "step");
    for (int k = 0; k < RC_OPTIM_SLOTS; k++) {
      const char *name = rc_optim_slot_name(o, k);
      if (!name) continue;
      push_ref(L, o->slot[k][i]);
      lua_setfield(L, -2, name);
    }
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "params");
  return 1;
}

/* Steps and epochs are counted up by one (step + 1, ++epoch): a value near maxinteger from a
 * script or a checkpoint would overflow there. 2^53: as many as a JSON number holds exactly. */
#define MAX_COUNT ((lua_Integer)1 << 53)

static int64_t int_field(lua_State *L, int idx, const char *k, const char *where) {
  lua_getfield(L, idx, k);
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < 0 || v > MAX_COUNT)
    rb_error(L, "load_state: %s.%s must be an integer in 0..2^53, got %s", where, k,
             lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_pop(L, 1);
  return (int64_t)v;
}

/* load_state(s): the table state() returns (or one read from a checkpoint). Everything is
 * validated before anything changes. */
static int m_load_state(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  rc_optim *o = u->o;
  rb_check_table(L, 2);
  int64_t step = int_field(L, 2, "step", "state");
  int64_t epoch = int_field(L, 2, "epoch", "state");
  if (lua_getfield(L, 2, "params") != LUA_TTABLE)
    return rb_error(L, "load_state: state.params must be a table, got %s", luaL_typename(L, -1));
  int ps = lua_gettop(L);
  if (luaL_len(L, ps) != o->n)
    return rb_error(L, "load_state: the state has %d parameters, the optimizer %d",
                    (int)luaL_len(L, ps), o->n);
  char s1[160], s2[160], where[64];
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < o->n; i++) {
      snprintf(where, sizeof where, "params[%d]", i + 1);
      if (lua_geti(L, ps, i + 1) != LUA_TTABLE)
        return rb_error(L, "load_state: %s must be a table, got %s", where, luaL_typename(L, -1));
      int e = lua_gettop(L);
      int64_t st = int_field(L, e, "step", where);
      if (pass) o->steps[i] = st;
      for (int k = 0; k < RC_OPTIM_SLOTS; k++) {
        const char *name = rc_optim_slot_name(o, k);
        if (!name) continue;
        lua_getfield(L, e, name);
        rc_tensor *t = rb_test(L, -1);
        if (!t)
          return rb_error(L, "load_state: %s.%s must be a tensor, got %s", where, name,
                          luaL_typename(L, -1));
        if (!rc_same_shape(t, o->slot[k][i]))
          return rb_error(L, "load_state: %s.%s has shape %s, the optimizer's is %s", where, name,
                          rc_shape_str(t, s1, sizeof s1),
                          rc_shape_str(o->slot[k][i], s2, sizeof s2));
        if (pass && t != o->slot[k][i] && rc_copy_into(o->slot[k][i], t) == 0)
          rc_bump_version(o->slot[k][i]);
        lua_pop(L, 1);
      }
      lua_settop(L, ps);
    }
  }
  o->step = step;
  u->epoch = epoch;
  return 0;
}

static int m_params(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  lua_createtable(L, u->o->n, 0);
  for (int i = 0; i < u->o->n; i++) {
    push_ref(L, u->o->params[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_steps(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_opt(L, 1)->o->step);
  return 1;
}

static int m_epoch(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_opt(L, 1)->epoch);
  return 1;
}

static int m_set_epoch(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  int isint = 0;
  lua_Integer e = lua_tointegerx(L, 2, &isint);
  if (!isint || e < 0 || e > MAX_COUNT)
    return rb_error(L, "set_epoch: the epoch must be an integer in 0..2^53, got %s",
                    lua_type(L, 2) == LUA_TNUMBER ? lua_tostring(L, 2) : luaL_typename(L, 2));
  u->epoch = e;
  return 0;
}

static int m_next_epoch(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  lua_pushinteger(L, (lua_Integer)++u->epoch);
  return 1;
}

static int m_clip_grad_norm(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  double max = rb_check_number(L, 2), norm;
  if (rc_clip_grad_norm(u->o->params, u->o->n, max, &norm)) return rb_raise(L);
  lua_pushnumber(L, norm);
  return 1;
}

static int m_clip_grad_value(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  double v = rb_check_number(L, 2), norm;
  if (rc_clip_grad_value(u->o->params, u->o->n, v, &norm)) return rb_raise(L);
  lua_pushnumber(L, norm);
  return 1;
}

static int m_grad_norm(lua_State *L) {
  rb_optim *u = check_opt(L, 1);
  double norm;
  if (rc_grad_norm(u->o->params, u->o->n, &norm)) return rb_raise(L);
  lua_pushnumber(L, norm);
  return 1;
}

static int m_tostring(lua_State *L) {
  rb_optim *u = luaL_testudata(L, 1, OPTIM_MT);
  if (!u)
    return rb_error(L, "tostring: argument #1 must be an optimizer, got %s", luaL_typename(L, 1));
  if (!u->o) {
    lua_pushliteral(L, "recur.optim (closed)");
    return 1;
  }
  char buf[256];
  snprintf(buf, sizeof buf, "recur.optim.%s(%d parameters, lr = %g, step %lld)", u->o->desc->name,
           u->o->n, u->o->o.lr, (long long)u->o->step);
  lua_pushstring(L, buf);
  return 1;
}

static int f_names(lua_State *L) {
  lua_newtable(L);
  for (int k = 0; rc_optims[k]; k++) {
    lua_pushstring(L, rc_optims[k]->name);
    lua_rawseti(L, -2, k + 1);
  }
  return 1;
}

static int f_is_optimizer(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, OPTIM_MT) != NULL);
  return 1;
}

void rb_open_optim(lua_State *L, int methods, int module) {
  (void)methods;
  static const luaL_Reg meths[] = {{"step", m_step},
                                   {"zero_grad", m_zero_grad},
                                   {"lr", m_lr},
                                   {"set_lr", m_set_lr},
                                   {"get", m_get},
                                   {"set", m_set},
                                   {"hyper", m_hyper},
                                   {"state", m_state},
                                   {"load_state", m_load_state},
                                   {"params", m_params},
                                   {"steps", m_steps},
                                   {"epoch", m_epoch},
                                   {"set_epoch", m_set_epoch},
                                   {"next_epoch", m_next_epoch},
                                   {"clip_grad_norm", m_clip_grad_norm},
                                   {"clip_grad_value", m_clip_grad_value},
                                   {"grad_norm", m_grad_norm},
                                   {NULL, NULL}};
  luaL_newmetatable(L, OPTIM_MT);
  lua_newtable(L);
  rb_setfuncs(L, meths);
  /* getmetatable(opt) shows the methods but not the metatable (nor its __gc) */
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, OPTIM_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -3, "__metatable");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, o_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, o_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, m_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
      {"new", f_new}, {"names", f_names}, {"is_optimizer", f_is_optimizer}, {NULL, NULL}};
  lua_newtable(L);
  rb_setfuncs(L, fns);
  lua_setfield(L, module, "_optim");
}
