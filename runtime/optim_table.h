/* The optimizers, one row each: RC_OPTIM(desc), desc being the rc_optim_desc that defines it
 * (its name, state slots, options, defaults and update kernel; runtime/optim.c). recur.optim's
 * constructors, the options each one accepts, its state in opt:state() and in checkpoints all
 * come from this list. An X-macro list (as Lua's lopcodes.h): included by
 * runtime/optim_table.c, and by the test that adds a toy optimizer (tests/c/test_extend.c).
 * No include guard on purpose. */
RC_OPTIM(rc_optim_sgd)
RC_OPTIM(rc_optim_adagrad)
RC_OPTIM(rc_optim_rmsprop)
RC_OPTIM(rc_optim_adam)
RC_OPTIM(rc_optim_adamw)
