/* Define-by-run automatic differentiation.
 *
 * Every differentiable op that runs with grad enabled and at least one input that needs
 * grad records an rc_node. A node knows, for each input, the edge to the node that
 * produced it (or the AccumulateGrad node of a leaf), the shapes of its inputs and
 * outputs, and the tensors its backward needs (with their storage versions, so an
 * in-place write between forward and backward is caught). rc_backward walks the graph
 * once in reverse topological order; by default it then frees every saved tensor. */
#ifndef RECUR_AUTOGRAD_H
#define RECUR_AUTOGRAD_H

#include "tensor.h"

#define RC_NODE_SAVED 6
#define RC_NODE_PARAMS 24

typedef struct rc_edge {
  rc_node *fn; /* NULL: this input needs no gradient */
  int nr;      /* which output of fn */
} rc_edge;

/* gout[n_out]: gradient of each output (zeros where nothing flowed back).
 * gin[n_in]: to fill, as new references, for every input whose edge has a fn
 * (others may be left NULL). Shapes must equal in_shape[i]. Returns 0 or -1. */
typedef int (*rc_backward_fn)(rc_node *n, rc_tensor **gout, rc_tensor **gin);

struct rc_node {
  rc_node_head head; /* first: what a tensor sees of its nodes (tensor.h) */
  int refcount;
  const char *name; /* "MulBackward" */
  rc_ctx *ctx;
  rc_backward_fn backward;
  int n_in, n_out;
  rc_edge *next;       /* n_in */
  rc_shape *in_shape;  /* n_in */
  rc_shape *out_shape; /* n_out */
  rc_tensor *saved[RC_NODE_SAVED];
  uint32_t saved_version[RC_NODE_SAVED];
  int n_saved;
  int released;    /* saved tensors freed by an earlier backward */
  int save_failed; /* rc_node_save could not make an alias (out of memory) */
  double d[4];     /* op parameters */
  int64_t i[RC_NODE_PARAMS];
  /* For Lua-defined ops and other hosts: opaque state with a destructor. */
  void *ext;
  void (*ext_free)(void *ext);
  /* scratch for the engine */
  rc_tensor **gbuf;
  int deps;
  int visited;
};

/* 1 when an op with these inputs must record a node. */
int rc_needs_grad(rc_ctx *c, rc_tensor *const *inputs, int n);
static inline int rc_tensor_needs_grad(const rc_tensor *t) {
  return t->requires_grad || t->grad_fn != NULL;
}

/* Creates a node for inputs[0..n_in) producing n_out outputs (shapes filled later by
 * rc_node_set_output). Returns NULL on allocation failure (message in ctx). */
rc_node *rc_node_new(rc_ctx *c, const char *name, rc_backward_fn bw, rc_tensor *const *inputs,
                     int n_in, int n_out);
void rc_node_retain(rc_node *n);
void rc_node_release(rc_node *n);
/* Saves t (an alias of it, without history) in slot k with its current storage version.
 * -1 when the alias cannot be allocated; rc_node_saved then reports it. rc_node_new leaves room
 * under the memory limit for RC_NODE_SAVED aliases, so only a failing malloc gets here. */
int rc_node_save(rc_node *n, int k, rc_tensor *t);
/* Saved tensor k, or NULL with an error if it was freed or modified in place. */
rc_tensor *rc_node_saved(rc_node *n, int k);
/* Makes out the output nr of n (out takes a reference to n) and records its shape. */
void rc_node_set_output(rc_node *n, int nr, rc_tensor *out);

/* The common one-output case, for an op that has made *out: if grad is needed, creates the
 * node and makes *out its output 0. Returns 0 with *node the node (borrowed: *out owns it), or
 * NULL when no gradient is needed; or -1 after releasing *out and setting it to NULL (message
 * in c->err), so that the op can `return NULL` at once. */
int rc_record(rc_ctx *c, const char *name, rc_backward_fn bw, rc_tensor *const *inputs, int n_in,
              rc_tensor **out, rc_node **node);

/* Runs backward from roots[k] with gradients grads[k] (NULL allowed only for a
 * one-element root: gradient 1). retain: keep saved tensors for another backward. */
int rc_backward(rc_ctx *c, rc_tensor **roots, rc_tensor **grads, int n_roots, int retain);

/* Leaf helpers. */
int rc_set_requires_grad(rc_tensor *t, int flag);
void rc_zero_grad(rc_tensor *t); /* drops t->grad */
/* A new tensor sharing storage with t but cut from its history. */
rc_tensor *rc_detach(rc_tensor *t);

/* Parameter gradient slots. A packed parameter (rc_params_pack, nn.h) lives in an arena, one
 * flat storage of values; the arena's gradient buffer is its storage's grad_twin, made
 * zero-filled when first needed, and a packed parameter's gradient is always its slot: the span
 * of that buffer at the parameter's own offset. Autograd accumulates into it, optimizers read
 * it, packing moves it. */

/* Makes sure p has a gradient when p is packed: its slot (the buffer made if missing; a slot
 * re-attached after its gradient was replaced is zeroed). No-op when p has a gradient or is not
 * packed. Autograd calls it before the first accumulation into a leaf, optimizers when they are
 * built. */
int rc_grad_slot_attach(rc_tensor *p);
/* p.grad = g (g of p's shape: the caller checks). A packed parameter's gradient stays its
 * slot (the buffer made if missing): g's values are copied into it and g itself is not kept.
 * Any other tensor keeps a reference to g. */
int rc_set_grad(rc_tensor *p, rc_tensor *g);
/* Is g the packed parameter p's slot of its arena's gradient buffer? */
int rc_grad_is_slot(const rc_tensor *p, const rc_tensor *g);
/* A header over twin's storage shaped like p, contiguous from element off: the slot of a
 * parameter shaped like p at that offset (a leaf, not a view). NULL when out of memory. */
rc_tensor *rc_grad_slot_at(rc_tensor *twin, const rc_tensor *p, int64_t off);
/* Fills slot g with zeros and bumps its version. */
void rc_grad_slot_zero(rc_tensor *g);

/* Sums g over broadcast dimensions so that it has shape s (used by every binary op).
 * Returns a new reference (g itself retained when the shapes already match). */
rc_tensor *rc_sum_to_shape(rc_tensor *g, const rc_shape *s);

/* Checks that an in-place write to t is allowed under autograd; -1 with message if not. */
int rc_check_inplace(rc_tensor *t, const char *fn);
/* After an in-place op on t computed its new value, records the node that makes t's
 * history continue (t becomes output 0 of a node whose inputs are old-t and others).
 * Not used by ops that forbid in-place under grad. */

#endif
