/* Neural-network layer of the runtime: fused ops for the common layers (linear, fast
 * activations, dropout, layer norm, cross-entropy), parameter arenas (one flat buffer per
 * model), initializers that need more than a random draw (orthogonal) and gradient clipping.
 *
 * Conventions as in ops.h: 0-based dims, functions return a new reference or NULL (or -1)
 * with a message in ctx->err that names the function, the argument and the shapes, and
 * everything is validated before anything is allocated or modified. */
#ifndef RECUR_NN_H
#define RECUR_NN_H

#include "ops.h"

/* ---- layers (nn_ops.c) ---- */

/* y = x w^T + b, one tape node. x: [..., in], w: [out, in] (PyTorch's layout), b: [out] or
 * NULL. y: [..., out]. Backward: one GEMM each for dx, dw and a column sum for db. */
rc_tensor *rc_linear(rc_tensor *x, rc_tensor *w, rc_tensor *b);

typedef enum { RC_ACT_IDENTITY, RC_ACT_TANH, RC_ACT_SIGMOID, RC_ACT_RELU, RC_ACT_COUNT } rc_act;
extern const char *const rc_act_name[RC_ACT_COUNT];
/* Elementwise activation with the kernel floor's vectorized tanh and sigmoid (rc_k_tanh,
 * rc_k_sigmoid: within 1.5 ulp, the same bits as x:tanh() and the fused cells); the backward
 * reads the saved output. */
rc_tensor *rc_activation(rc_tensor *x, rc_act act);

/* Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p),
 * else zeroed; one uniform draw per element from ctx->rng, in row-major order. p = 0 returns
 * x itself (a new reference); p = 1 gives zeros. */
rc_tensor *rc_dropout(rc_tensor *x, float p);

/* Layer normalization over the last dimension: (x - mean) / sqrt(var + eps) * gamma + beta
 * (biased variance). gamma and beta: [D] or NULL (no scale / no shift). */
rc_tensor *rc_layer_norm(rc_tensor *x, rc_tensor *gamma, rc_tensor *beta, float eps);

typedef enum { RC_REDUCE_NONE, RC_REDUCE_MEAN, RC_REDUCE_SUM } rc_reduction;

/* Cross-entropy with the classes on the last dimension of input [..., C].
 *   log_probs = 0: input holds logits (a stable log-softmax is applied; cross_entropy);
 *   log_probs = 1: input already holds log-probabilities (nll).
 * target: class indices of shape [...] holding integers in [base, base + C) (base 1 from
 * Lua), or probabilities of the same shape as input (soft targets; no gradient flows to
 * them). mask: NULL or weights of shape [...]; a weight 0 removes the position (its target
 * is not even checked). reduction NONE gives the per-position losses [...] (weighted),
 * SUM their sum, MEAN the sum divided by the sum of the weights (by the count without a
 * mask). */
rc_tensor *rc_cross_entropy(rc_tensor *input, rc_tensor *target, int64_t base, rc_tensor *mask,
                            rc_reduction reduction, int log_probs);

/* cross_entropy(x w^T + b, target) without the logits: x [..., D], w [V, D] (Linear's
 * layout), b [V] or NULL, target class indices [...] in [base, base + V), mask and reduction
 * as in rc_cross_entropy. Logits exist only as one block of rows at a time (at most 16 MB), in
 * forward and again in backward, which recomputes them (one more product of x and w) instead
 * of keeping [rows, V]. */
rc_tensor *rc_linear_cross_entropy(rc_tensor *x, rc_tensor *w, rc_tensor *b, rc_tensor *target,
                                   int64_t base, rc_tensor *mask, rc_reduction reduction);

/* ---- parameters (nn_params.c) ---- */

/* A zero-filled leaf that requires grad and can later be moved into an arena (its header is
 * not embedded in its storage block). */
rc_tensor *rc_param_new(rc_ctx *c, int ndim, const int64_t *size);

/* The same for an existing tensor: a movable parameter header over base's storage (same
 * values, shape and strides), which takes over base's reference (base is released, also on
 * failure; NULL in gives NULL). The fused cells make their parameters this way. */
rc_tensor *rc_param_from(rc_tensor *base);

/* Can t be packed into a flat buffer: a leaf whose header is its own (rc_param_new /
 * rc_param_from), not a view? */
int rc_is_param(const rc_tensor *t);

/* Packs parameters p[0..n) into one flat arena of values, in this order: afterwards p[i] is a
 * contiguous span of flat at offset sum(numel(p[<i])) and is marked packed. The tensors keep
 * their identity (every reference held elsewhere, optimizers included, stays valid): values
 * are copied, the storage pointer changes, and each old storage is freed as soon as its last
 * parameter has left it. Nothing moves when the layout already holds (so a sub-module's
 * parameters that sit consecutively in its parent's arena stay there and its flat buffer is
 * a slice of the parent's). When the parameters already share one storage without being
 * consecutive (a module whose parameter is tied to another module's) nothing moves either
 * and *flat = *flat_grad = NULL. Duplicates in p are an error (the caller dedupes). n = 0
 * gives empty flats.
 *
 * Gradients: an arena has one gradient buffer, its storage's grad_twin, made (zero-filled)
 * when first needed; a packed parameter's gradient is always the span of it at the same
 * offset as its values (its slot: autograd.h). With want_grad, or when some p[i] already has a
 * gradient, the buffer is made or kept up: every p[i]->grad becomes its slot (a gradient kept
 * elsewhere -- the old arena's, one autograd made before packing, one set by hand -- is copied in,
 * none reads as zeros) and *flat_grad is the 1-D span over them; otherwise nothing is allocated for
 * gradients and *flat_grad = NULL. */
int rc_params_pack(rc_ctx *c, rc_tensor **p, int n, int want_grad, rc_tensor **flat,
                   rc_tensor **flat_grad);

/* Fills t (at least 2-D; trailing dims are flattened into columns) with a (semi-)orthogonal
 * matrix times gain, from the QR decomposition of a standard-normal draw with the signs of
 * R's diagonal folded in (Saxe et al.; what TensorFlow and PyTorch do). No autograd. */
int rc_orthogonal_(rc_tensor *t, float gain);

/* Fills t with zeros in place (a memset when contiguous), bumping its version; for gradients
 * (refuses a tensor that requires grad while recording, like any in-place write). */
int rc_zero_fill(rc_tensor *t);

/* Global L2 norm over the gradients of p[0..n) (params without a gradient count as zero),
 * accumulated in double, into *norm; -1 when the work budget is spent. */
int rc_grad_norm(rc_tensor **p, int n, double *norm);
/* Scales every gradient by max_norm / (norm + 1e-6) when the global norm exceeds max_norm
 * (PyTorch's clip_grad_norm_). *norm gets the norm before clipping. */
int rc_clip_grad_norm(rc_tensor **p, int n, double max_norm, double *norm);
/* Clamps every gradient element to [-clip, clip]; *norm gets the global norm before. */
int rc_clip_grad_value(rc_tensor **p, int n, double clip, double *norm);

/* The same on one tensor: g itself is the gradient (a model's flat gradient buffer, one pass
 * over it): its L2 norm (in double), and g scaled in place so that its norm is at most
 * max_norm (> 0), the same coefficient as rc_clip_grad_norm; *norm = the norm before. */
int rc_norm2(rc_tensor *g, double *norm);
int rc_clip_norm_(rc_tensor *g, double max_norm, double *norm);

#endif
