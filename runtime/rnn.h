/* Fused recurrent cells: each runs a whole sequence x [T, B, I] as one autograd node with a
 * hand-written backward.
 *
 * Performance plan (Appleyard et al. 2016): one GEMM for the input projection of all steps
 * (x [T*B, I] @ W_x [I, G*H]), one GEMM per step for the recurrence (two for the cells whose
 * candidate reads a gated state: gru, pseudo_lstm, normalized_prototype), one fused pass per
 * step over the gates and the state update, and in backward one GEMM per weight gradient over
 * all steps (dW_x = X^T dG, dW_h = H_prev^T dG, dx = dG W_x^T). Everything one call saves for
 * backward lives in one arena allocated per call; backward's scratch lives in workspaces owned
 * by the cell and reused across calls; nothing is allocated per step. At batch 1 the GEMMs are
 * matrix-vector products (cblas_sgemv).
 *
 * Weight layout (every cell): W_x [I, G*H] (x @ W_x), W_h [H, G*H] (h @ W_h), gate blocks of
 * H columns in the order the cell documents (see rc_cell_param_names and docs/rnn.md).
 *
 * Variable lengths: with lengths[b] = L_b, steps t >= L_b leave sequence b's state unchanged
 * and write zero outputs; the final state is the state after step L_b. */
#ifndef RECUR_RNN_H
#define RECUR_RNN_H

#include "autograd.h"
#include "tensor.h"

#define RC_CELL_MAX_PARAMS 6
#define RC_CELL_MAX_STATES 2

typedef struct rc_cell rc_cell;

/* The cell kinds, numbered 0 .. rc_cell_kind_count() - 1 in the order of the table
 * runtime/rnn_cells.h (one row per cell): "rnn" (h' = tanh(x W_x + h W_h + b)), "gru" (r, z,
 * n: TF/R2RT form; reset_after: PyTorch/cuDNN form), "lstm" (i, f, g, o), "lstm_peephole",
 * "pseudo_lstm" (i, f, o, g; state s, output tanh(s)), "normalized_prototype" (i, f, o, g;
 * state s renormalised s / sqrt(var(s) + 1)), "ln_lstm" (i, f, g(j), o; layer norm on each
 * gate and on c). rc_cell_kind_of is -1 for an unknown name, rc_cell_kind_name NULL for an
 * index out of range. */
int rc_cell_kind_count(void);
const char *rc_cell_kind_name(int k);
int rc_cell_kind_of(const char *name);

/* A new cell with freshly initialised parameters (drawn from c->rng): every weight uniform in
 * [-1/sqrt(H), 1/sqrt(H)] (PyTorch's default), biases 0 except the forget-gate bias (lstm,
 * lstm_peephole, pseudo_lstm, normalized_prototype) and the r and z biases (gru), which start
 * at 1.0; peepholes 0; layer-norm scales 1 and shifts 0. Parameters are leaf tensors with
 * requires_grad set. reset_after only applies to the cells that have a reset_after variant
 * (gru). -1 with a message for an unknown kind. */
rc_cell *rc_cell_new(rc_ctx *c, const char *kind, int64_t input, int64_t hidden, int reset_after);
void rc_cell_retain(rc_cell *cell);
void rc_cell_release(rc_cell *cell);

const char *rc_cell_kind(const rc_cell *cell); /* its kind's name */
int64_t rc_cell_input(const rc_cell *cell);
int64_t rc_cell_hidden(const rc_cell *cell);
int rc_cell_reset_after(const rc_cell *cell);
int rc_cell_n_states(const rc_cell *cell);
const char *rc_cell_state_name(const rc_cell *cell, int k);
int rc_cell_n_params(const rc_cell *cell);
const char *rc_cell_param_name(const rc_cell *cell, int k);
rc_tensor *rc_cell_param(const rc_cell *cell, int k); /* borrowed */

/* Runs x [T, B, I] (any strides) from state0[k] ([B, H] each, any strides; NULL = zeros)
 * with lengths (B integers in [0, T]; NULL = all T). On success *y is [T, B, H] and
 * state_out[k] ([B, H]) the final states, new references; an autograd node is recorded when
 * grad is enabled and x, a state or a parameter needs grad. -1 with a message otherwise. */
int rc_cell_forward(rc_cell *cell, rc_tensor *x, rc_tensor *const *state0, const int64_t *lengths,
                    rc_tensor **y, rc_tensor **state_out);

/* A stack of L fused cells (layer l's input is layer l-1's output) run as a layer
 * wavefront (Appleyard et al. 2016): layer l at step t runs on one thread beside layer l+1 at
 * step t-1 on another, in forward and (reversed) in backward, with one autograd node for the
 * whole stack. Same arguments as rc_cell_forward, per layer: state0[l * RC_CELL_MAX_STATES +
 * k] (state0 NULL or entries NULL = zeros), state_out likewise; *y is the top layer's
 * output. Returns 1, doing nothing, when the stack does not apply (cells of different kinds,
 * a kind without the wavefront hooks, fewer than 2 layers or steps or sequences, a cell
 * used twice) or does not pay (ctx->rnn_wave 0 and one BLAS thread, or the helper thread
 * found busy): the caller then runs the layers one by one. 0 on success, -1 with a message.
 * Gives the layer-by-layer results within float rounding (the input projections of layers
 * 2.. run per step on the packed kernel instead of one BLAS product: same terms, another
 * order of the sums). */
int rc_cell_stack_forward(rc_cell *const *cells, int L, rc_tensor *x, rc_tensor *const *state0,
                          const int64_t *lengths, rc_tensor **y, rc_tensor **state_out);

/* One step: x [B, I], state[k] [B, H] (NULL = zeros) -> *y [B, H], state_out[k]. Without
 * grad it reuses the cell's workspace (no allocation besides the results) and uses
 * matrix-vector kernels at B = 1; when grad is needed it records a node like a forward of
 * length 1. Gives the same numbers as rc_cell_forward. */
int rc_cell_step(rc_cell *cell, rc_tensor *x, rc_tensor *const *state, rc_tensor **y,
                 rc_tensor **state_out);

/* FLOPs of one forward + backward over [T, B] (GEMMs only: 2 per multiply-add), for benches. */
double rc_cell_flops(const rc_cell *cell, int64_t T, int64_t B);

#endif
