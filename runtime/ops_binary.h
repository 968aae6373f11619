/* The binary tensor ops, one row each (an X-macro, as runtime/ops_unary.h). From these lists
 * come the enum rc_binop and rc_binop_name (ops.h), the forward loops, the backward, the budget
 * weight and the node name (ops_elementwise.c), and the Lua functions, methods and operators
 * recur.<name>(a, b), a:<name>(b), a:<name>_(b) and a <op> b (bindings/elementwise.c). Adding
 * an op is a row here, a spec and a docs line (docs/architecture.md, "Recipes").
 *
 * X(NAME, name, Node, forward, grad_x, grad_y, saves, weight, forms), a row on three lines:
 *   NAME        the enum is RC_<NAME>
 *   name        the Lua name and the name errors give
 *   Node        the autograd node is "<Node>Backward"
 *   forward     f(x, y), a float expression in x and y
 *   grad_x      the gradient x receives, a float expression in g (the output's gradient), x,
 *   grad_y      y and z (the output); computed over the output's shape, then summed over the
 *               dims where the input was broadcast
 *   saves       what the gradients read, so what backward keeps: SAVES_NONE (g only: x, y and z
 *               are then 0), SAVES_XY or SAVES_XYZ
 *   weight      work units per 16 elements (runtime/context.h): 1 for a cheap op, 8 for libm's
 *               transcendentals (5 to 20 ns an element)
 *   forms       OPERATOR: also a:<name>_(b) and Lua's operator __<name>; FUNCTION: the
 *               function and the method only
 * A gradient that is g itself is passed on without a copy.
 *
 * The comparisons have no gradient and record no node; their results are 0 or 1:
 * C(NAME, name, forward).
 *
 * The expressions are read in ops_elementwise.c only, where libm is in scope; forms in
 * bindings/elementwise.c. */
#ifndef RECUR_OPS_BINARY_H
#define RECUR_OPS_BINARY_H

/* clang-format off */
#define RC_BINARY_OPS(X)                                                                           \
  X(ADD,     add,     Add,     x + y,                                                              \
             g,                              g,                                                    \
             SAVES_NONE, 1, OPERATOR)                                                              \
  X(SUB,     sub,     Sub,     x - y,                                                              \
             g,                              -g,                                                   \
             SAVES_NONE, 1, OPERATOR)                                                              \
  X(MUL,     mul,     Mul,     x * y,                                                              \
             g * y,                          g * x,                                                \
             SAVES_XY,   1, OPERATOR)                                                              \
  X(DIV,     div,     Div,     x / y,                                                              \
             g / y,                          -(g * x / (y * y)),                                   \
             SAVES_XY,   1, OPERATOR)                                                              \
  X(POW,     pow,     Pow,     powf(x, y),                                                         \
             g * (powf(x, y - 1.0f) * y),    g * (z * logf(x)),                                    \
             SAVES_XYZ,  8, OPERATOR)                                                              \
  /* a NaN x wins; at a tie the whole gradient goes to x */                                       \
  X(MAXIMUM, maximum, Maximum, (x >= y || isnan(x)) ? x : y,                                       \
             g * (float)(x >= y),            g * (1.0f - (float)(x >= y)),                         \
             SAVES_XY,   1, FUNCTION)                                                              \
  X(MINIMUM, minimum, Minimum, (x <= y || isnan(x)) ? x : y,                                       \
             g * (float)(x <= y),            g * (1.0f - (float)(x <= y)),                         \
             SAVES_XY,   1, FUNCTION)

#define RC_COMPARISON_OPS(C)                                                                       \
  C(EQ, eq, x == y)                                                                                \
  C(NE, ne, x != y)                                                                                \
  C(LT, lt, x < y)                                                                                 \
  C(LE, le, x <= y)                                                                                \
  C(GT, gt, x > y)                                                                                 \
  C(GE, ge, x >= y)
/* clang-format on */

#endif
