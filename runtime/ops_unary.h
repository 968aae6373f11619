/* The unary tensor ops, one row each (an X-macro, as Lua's lopcodes.h). From this list come
 * the enum rc_unop and rc_unop_name (ops.h), the forward, the contiguous loop, the backward,
 * the budget weight and the node name (ops_elementwise.c), and the Lua functions and methods
 * x:<name>(), x:<name>_() and recur.<name>(x) (bindings/elementwise.c). Adding an op is a row
 * here, a spec and a docs line (docs/architecture.md, "Recipes").
 *
 * X(NAME, name, Node, forward, derivative, saves, weight, loop), a row on two lines:
 *   NAME        the enum is RC_<NAME>
 *   name        the Lua name and the name errors give
 *   Node        the autograd node is "<Node>Backward"
 *   forward     f(x), a float expression in x
 *   derivative  f'(x), a float expression in x (the input) and y (the output)
 *   saves       what the derivative reads, so what backward keeps: SAVES_X, SAVES_Y or
 *               SAVES_NONE (then x and y are 0)
 *   weight      work units per 16 elements (runtime/context.h): 1 for a cheap op, 8 for libm's
 *               transcendentals (5 to 20 ns an element)
 *   loop        the kernel floor's vectorized loop over contiguous floats (runtime/kernels.h),
 *               which gives the same bits as forward; NO_LOOP: forward in a plain loop
 *
 * Columns other than NAME and name are read in ops_elementwise.c only, where rc_expf,
 * rc_tanhf and rc_sigmoidf (kernels_math.h) and libm are in scope. */
#ifndef RECUR_OPS_UNARY_H
#define RECUR_OPS_UNARY_H

/* clang-format off */
#define RC_UNARY_OPS(X)                                                                            \
  X(NEG,        neg,        Neg,        -x,                                                        \
                                        -1.0f,                       SAVES_NONE, 1, NO_LOOP)       \
  X(EXP,        exp,        Exp,        rc_expf(x),                                                \
                                        y,                           SAVES_Y,    8, rc_k_exp)      \
  X(LOG,        log,        Log,        logf(x),                                                   \
                                        1.0f / x,                    SAVES_X,    8, NO_LOOP)       \
  X(SQRT,       sqrt,       Sqrt,       sqrtf(x),                                                  \
                                        0.5f / y,                    SAVES_Y,    8, NO_LOOP)       \
  X(ABS,        abs,        Abs,        fabsf(x),                                                  \
                                        (float)((x > 0) - (x < 0)),  SAVES_X,    1, NO_LOOP)       \
  X(TANH,       tanh,       Tanh,       rc_tanhf(x),                                               \
                                        1.0f - y * y,                SAVES_Y,    8, rc_k_tanh)     \
  X(SIGMOID,    sigmoid,    Sigmoid,    rc_sigmoidf(x),                                            \
                                        y * (1.0f - y),              SAVES_Y,    8, rc_k_sigmoid)  \
  X(RELU,       relu,       Relu,       x > 0 ? x : 0.0f,                                          \
                                        x > 0 ? 1.0f : 0.0f,         SAVES_X,    1, NO_LOOP)       \
  /* sign, floor, round (half to even, as PyTorch), ceil: f' is 0 almost everywhere */             \
  X(SIGN,       sign,       Sign,       (float)((x > 0) - (x < 0)),                                \
                                        0.0f,                        SAVES_NONE, 1, NO_LOOP)       \
  X(FLOOR,      floor,      Floor,      floorf(x),                                                 \
                                        0.0f,                        SAVES_NONE, 1, NO_LOOP)       \
  X(ROUND,      round,      Round,      nearbyintf(x),                                             \
                                        0.0f,                        SAVES_NONE, 1, NO_LOOP)       \
  X(CEIL,       ceil,       Ceil,       ceilf(x),                                                  \
                                        0.0f,                        SAVES_NONE, 1, NO_LOOP)       \
  X(SIN,        sin,        Sin,        sinf(x),                                                   \
                                        cosf(x),                     SAVES_X,    8, NO_LOOP)       \
  X(COS,        cos,        Cos,        cosf(x),                                                   \
                                        -sinf(x),                    SAVES_X,    8, NO_LOOP)       \
  X(RSQRT,      rsqrt,      Rsqrt,      1.0f / sqrtf(x),                                           \
                                        -0.5f * y * y * y,           SAVES_Y,    8, NO_LOOP)       \
  X(RECIPROCAL, reciprocal, Reciprocal, 1.0f / x,                                                  \
                                        -y * y,                      SAVES_Y,    1, NO_LOOP)       \
  X(SQUARE,     square,     Square,     x * x,                                                     \
                                        2.0f * x,                    SAVES_X,    1, NO_LOOP)       \
  X(LOG1P,      log1p,      Log1p,      log1pf(x),                                                 \
                                        1.0f / (1.0f + x),           SAVES_X,    8, NO_LOOP)       \
  X(EXPM1,      expm1,      Expm1,      expm1f(x),                                                 \
                                        y + 1.0f,                    SAVES_Y,    8, NO_LOOP)       \
  X(SOFTPLUS,   softplus,   Softplus,   x > 20.0f ? x : log1pf(rc_expf(x)),                        \
                                        rc_sigmoidf(x),              SAVES_X,    8, NO_LOOP)
/* clang-format on */

#endif
