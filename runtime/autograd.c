#include "autograd.h"
#include "profile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rc_needs_grad(rc_ctx *c, rc_tensor *const *inputs, int n) {
  if (!c->grad_enabled) return 0;
  for (int i = 0; i < n; i++)
    if (inputs[i] && rc_tensor_needs_grad(inputs[i])) return 1;
  return 0;
}

static int accumulate_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin);

/* A node and its arrays are one block of the context's counted memory (rc_mem_alloc), so the
 * memory limit sees the graph grow; the node holds a reference to its context. */
static size_t node_bytes(int n_in, int n_out) {
  size_t ni = (size_t)(n_in ? n_in : 1), no = (size_t)(n_out ? n_out : 1);
  return sizeof(rc_node) + ni * sizeof(rc_edge) + (ni + no) * sizeof(rc_shape);
}

static rc_node *node_alloc(rc_ctx *c, int n_in, int n_out) {
  size_t ni = (size_t)(n_in ? n_in : 1);
  char *b = rc_mem_calloc(c, 1, node_bytes(n_in, n_out));
  if (!b) return NULL;
  rc_node *n = (rc_node *)b;
  n->head.release = rc_node_release;
  n->refcount = 1;
  n->ctx = c;
  rc_ctx_retain(c);
  n->n_in = n_in;
  n->n_out = n_out;
  n->next = (rc_edge *)(b + sizeof(rc_node));
  n->in_shape = (rc_shape *)(b + sizeof(rc_node) + ni * sizeof(rc_edge));
  n->out_shape = n->in_shape + ni;
  return n;
}

/* The edge to whatever produced t: its grad_fn, or a leaf's AccumulateGrad node. */
static int edge_of(rc_tensor *t, rc_edge *e) {
  e->fn = NULL;
  e->nr = 0;
  if (!t) return 0;
  if (t->grad_fn) {
    e->fn = t->grad_fn;
    e->nr = t->output_nr;
  } else if (t->requires_grad) {
    if (!t->accum) {
      rc_node *a = node_alloc(t->ctx, 0, 1);
      if (!a) return -1;
      a->name = "AccumulateGrad";
      a->backward = accumulate_backward;
      a->out_shape[0] = rc_shape_of(t);
      a->head.leaf = t;
      t->accum = a;
    }
    e->fn = t->accum;
  } else {
    return 0;
  }
  rc_node_retain(e->fn);
  return 0;
}

rc_node *rc_node_new(rc_ctx *c, const char *name, rc_backward_fn bw, rc_tensor *const *inputs,
                     int n_in, int n_out) {
  /* The limit must also leave room for the leaves' AccumulateGrad nodes and the aliases the op
   * saves next (rc_node_save), so that saving cannot fail on the limit once the node exists. */
  size_t reserve = node_bytes(n_in, n_out) + (size_t)n_in * (node_bytes(0, 1) + 64) +
                   RC_NODE_SAVED * sizeof(rc_tensor) + 64;
  if (rc_check_limit(c, reserve)) return NULL;
  rc_node *n = node_alloc(c, n_in, n_out);
  if (!n) return NULL;
  n->name = name;
  n->backward = bw;
  for (int i = 0; i < n_in; i++) {
    if (!inputs[i]) continue;
    n->in_shape[i] = rc_shape_of(inputs[i]);
    if (edge_of(inputs[i], &n->next[i])) {
      rc_node_release(n);
      return NULL;
    }
  }
  return n;
}

void rc_node_retain(rc_node *n) {
  if (n) n->refcount++;
}

static void node_free_saved(rc_node *n) {
  for (int k = 0; k < RC_NODE_SAVED; k++) {
    rc_release(n->saved[k]);
    n->saved[k] = NULL;
  }
  if (n->ext_free && n->ext) n->ext_free(n->ext);
  n->ext = NULL;
}

/* Releasing a long chain (an RNN unrolled over thousands of steps) must not recurse
 * once per node: nodes whose count drops to zero go on an explicit worklist. */
void rc_node_release(rc_node *n) {
  rc_node *work = NULL; /* singly linked through gbuf (unused outside backward) */
  if (!n || --n->refcount > 0) return;
  n->gbuf = NULL;
  work = n;
  while (work) {
    rc_node *cur = work;
    work = (rc_node *)cur->gbuf;
    node_free_saved(cur);
    for (int i = 0; i < cur->n_in; i++) {
      rc_node *p = cur->next[i].fn;
      if (p && --p->refcount == 0) {
        p->gbuf = (rc_tensor **)work;
        work = p;
      }
    }
    if (cur->head.leaf) cur->head.leaf->accum = NULL;
    rc_ctx *c = cur->ctx;
    rc_mem_free(c, cur);
    rc_ctx_release(c);
  }
}

/* Saved tensors are plain aliases of the data (no history), so saving an op's own
 * output does not make a reference cycle through grad_fn. */
int rc_node_save(rc_node *n, int k, rc_tensor *t) {
  rc_tensor *alias = rc_raw_view(t, t->ndim, t->size, t->stride, t->offset);
  if (alias)
    alias->is_view = 0;
  else
    n->save_failed = 1;
  rc_release(n->saved[k]);
  n->saved[k] = alias;
  n->saved_version[k] = t->storage->version;
  if (k >= n->n_saved) n->n_saved = k + 1;
  return alias ? 0 : -1;
}

rc_tensor *rc_node_saved(rc_node *n, int k) {
  if (!n->saved[k] && n->save_failed && !n->released)
    return rc_error_null(n->ctx,
                         "backward: %s could not keep a tensor it needs (out of memory "
                         "when the forward ran)",
                         n->name);
  if (n->released || !n->saved[k])
    return rc_error_null(n->ctx,
                         "backward: %s was already run and its saved tensors freed; "
                         "call backward with retain_graph = true to run it twice",
                         n->name);
  if (n->saved[k]->storage->version != n->saved_version[k])
    return rc_error_null(n->ctx,
                         "backward: a tensor that %s needs was modified by an in-place "
                         "operation after it was used; clone() it before modifying",
                         n->name);
  return n->saved[k];
}

void rc_node_set_output(rc_node *n, int nr, rc_tensor *out) {
  n->out_shape[nr] = rc_shape_of(out);
  if (out->grad_fn) rc_node_release(out->grad_fn);
  rc_node_retain(n);
  out->grad_fn = n;
  out->output_nr = nr;
}

int rc_record(rc_ctx *c, const char *name, rc_backward_fn bw, rc_tensor *const *inputs, int n_in,
              rc_tensor **out, rc_node **node) {
  *node = NULL;
  if (!rc_needs_grad(c, inputs, n_in)) return 0;
  rc_node *n = rc_node_new(c, name, bw, inputs, n_in, 1);
  if (!n) {
    rc_release(*out);
    *out = NULL;
    return -1;
  }
  rc_node_set_output(n, 0, *out);
  rc_node_release(n); /* *out owns it now */
  *node = n;
  return 0;
}

static int accumulate_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  (void)gin;
  rc_tensor *leaf = n->head.leaf;
  if (!leaf) return 0;
  /* a packed parameter accumulates into its slot of the arena's gradient buffer */
  if (!leaf->grad && leaf->packed && rc_grad_slot_attach(leaf)) return -1;
  if (!leaf->grad) {
    leaf->grad = rc_copy_contiguous(gout[0]);
    if (!leaf->grad) return -1;
  } else {
    rc_add_into(leaf->grad, gout[0]);
    rc_bump_version(leaf->grad);
  }
  return 0;
}

rc_tensor *rc_sum_to_shape(rc_tensor *g, const rc_shape *s) {
  rc_shape gs = rc_shape_of(g);
  if (rc_shape_eq(&gs, s)) {
    rc_retain(g);
    return g;
  }
  rc_tensor *r = rc_zeros(g->ctx, s->ndim, s->size);
  if (!r) return NULL;
  rc_sum_into(r, g);
  return r;
}

int rc_set_requires_grad(rc_tensor *t, int flag) {
  if (t->grad_fn && !flag)
    return rc_error(t->ctx, "requires_grad: a tensor computed from others always requires grad; "
                            "use detach() to cut it from the graph");
  if (!t->grad_fn) t->requires_grad = flag ? 1 : 0;
  return 0;
}

void rc_zero_grad(rc_tensor *t) {
  /* a packed parameter's slot of the arena's gradient buffer reads as zeros once dropped (the
   * next backward attaches the same slot again) */
  if (t->grad && rc_grad_is_slot(t, t->grad)) rc_grad_slot_zero(t->grad);
  rc_release(t->grad);
  t->grad = NULL;
}

/* ---- parameter gradient slots ---- */

rc_tensor *rc_grad_slot_at(rc_tensor *twin, const rc_tensor *p, int64_t off) {
  int64_t st[RC_MAX_DIM], s = 1;
  for (int d = p->ndim - 1; d >= 0; d--) {
    st[d] = s;
    s *= p->size[d];
  }
  rc_tensor *g = rc_raw_view(twin, p->ndim, p->size, st, off);
  if (g) g->is_view = 0; /* not a view: a gradient is a leaf of its own */
  return g;
}

int rc_grad_is_slot(const rc_tensor *p, const rc_tensor *g) {
  const rc_tensor *tw = p->packed ? p->storage->grad_twin : NULL;
  return tw && g && g->storage == tw->storage && g->offset == p->offset && rc_same_shape(g, p) &&
         rc_is_contiguous(g);
}

void rc_grad_slot_zero(rc_tensor *g) {
  int64_t k = rc_numel(g);
  if (k) memset(rc_data(g), 0, (size_t)k * sizeof(float));
  rc_bump_version(g);
}

int rc_grad_slot_attach(rc_tensor *p) {
  if (p->grad || !p->packed) return 0;
  rc_storage *s = p->storage;
  rc_tensor *tw = s->grad_twin, *made = NULL;
  if (!tw && !(tw = made = rc_zeros(p->ctx, 1, &s->n))) return -1;
  rc_tensor *g = rc_grad_slot_at(tw, p, p->offset);
  if (!g) {
    rc_release(made);
    return -1;
  }
  if (made)
    s->grad_twin = made;
  else
    rc_grad_slot_zero(g); /* a gradient replaced by another tensor left its old values there */
  p->grad = g;
  return 0;
}

int rc_set_grad(rc_tensor *p, rc_tensor *g) {
  if (!p->packed) { /* a tensor of its own: kept as given */
    rc_retain(g);
    rc_release(p->grad);
    p->grad = g;
    return 0;
  }
  if (g == p->grad) return 0;
  if (p->grad && !rc_grad_is_slot(p, p->grad)) rc_zero_grad(p); /* not the slot: drop */
  if (rc_grad_slot_attach(p)) return -1; /* the slot, the buffer made if missing */
  if (rc_charge_elems(p->ctx, "grad", rc_numel(p->grad))) return -1; /* the copy below */
  rc_tensor *src = g, *tmp = NULL;
  /* g may overlap the slot (a view of the same gradient buffer): a strided copy goes through
   * a temporary (the contiguous one is a memmove) */
  if (g->storage == p->grad->storage && !(rc_is_contiguous(g) && rc_is_contiguous(p->grad))) {
    if (!(tmp = rc_copy_contiguous(g))) return -1;
    src = tmp;
  }
  rc_copy_into(p->grad, src);
  rc_bump_version(p->grad);
  rc_release(tmp);
  return 0;
}

rc_tensor *rc_detach(rc_tensor *t) {
  rc_tensor *d = rc_raw_view(t, t->ndim, t->size, t->stride, t->offset);
  if (d) d->is_view = 0;
  return d;
}

int rc_check_inplace(rc_tensor *t, const char *fn) {
  if (!t->ctx->grad_enabled) return 0;
  if (t->requires_grad && !t->grad_fn)
    return rc_error(t->ctx,
                    "%s: in-place operation on a leaf tensor that requires grad; "
                    "wrap it in recur.no_grad or use the out-of-place form",
                    fn);
  return 0;
}

/* ---- the engine ---- */

typedef struct {
  rc_node **v;
  size_t n, cap;
} node_vec;

static int vec_push(rc_ctx *c, node_vec *s, rc_node *n) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    rc_node **v = rc_mem_realloc(c, s->v, cap * sizeof *v);
    if (!v) return -1;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = n;
  return 0;
}

static void cleanup(node_vec *all) {
  for (size_t i = 0; i < all->n; i++) {
    rc_node *n = all->v[i];
    if (n->gbuf) {
      for (int k = 0; k < n->n_out; k++) rc_release(n->gbuf[k]);
      rc_mem_free(n->ctx, n->gbuf);
      n->gbuf = NULL;
    }
    n->deps = 0;
    n->visited = 0;
  }
}

/* Adds g into node n's buffer for output nr (out of place: buffers may be shared). */
static int buffer_add(rc_node *n, int nr, rc_tensor *g) {
  rc_tensor *cur = n->gbuf[nr];
  if (!cur) {
    rc_retain(g);
    n->gbuf[nr] = g;
    return 0;
  }
  /* a sum this buffer alone holds (no other reference to it or its storage: one made here
   * before, or a gradient its producer has let go of) takes the next gradient in place */
  if (cur->refcount == 1 && cur->storage->refcount == 1 && rc_is_contiguous(cur)) {
    rc_add_into(cur, g);
    return 0;
  }
  rc_tensor *sum = rc_copy_contiguous(cur);
  if (!sum) return -1;
  rc_add_into(sum, g);
  rc_release(cur);
  n->gbuf[nr] = sum;
  return 0;
}

int rc_backward(rc_ctx *c, rc_tensor **roots, rc_tensor **grads, int n_roots, int retain) {
  char sa[128], sb[128];
  for (int r = 0; r < n_roots; r++) {
    rc_tensor *t = roots[r];
    if (!rc_tensor_needs_grad(t))
      return rc_error(c,
                      "backward: tensor %d does not require grad and has no history "
                      "(call requires_grad(true) on the inputs first)",
                      r + 1);
    if (!grads[r] && rc_numel(t) != 1)
      return rc_error(c,
                      "backward: the root has shape %s; a gradient of that shape must be "
                      "given for a non-scalar",
                      rc_shape_str(t, sa, sizeof sa));
    if (grads[r] && !rc_same_shape(grads[r], t))
      return rc_error(c, "backward: gradient shape %s does not match the root's shape %s",
                      rc_shape_str(grads[r], sa, sizeof sa), rc_shape_str(t, sb, sizeof sb));
    if (c->check_numerics && rc_numel(t) > 0) {
      rc_tensor *v = rc_raw_contiguous(t);
      if (!v) return -1;
      const float *d = rc_data(v);
      int64_t bad = -1;
      for (int64_t k = 0, n = rc_numel(v); k < n && bad < 0; k++)
        if (!isfinite(d[k])) bad = k;
      float val = bad >= 0 ? d[bad] : 0.0f;
      rc_release(v);
      if (bad >= 0)
        return rc_error(c, "backward: the root holds %s at element %lld (check_numerics is on)",
                        isnan(val) ? "NaN" : "Inf", (long long)bad + 1);
    }
  }
  node_vec all = {0}, stack = {0}, ready = {0};
  int rc = -1;
  int saved_grad_mode = c->grad_enabled;
  c->grad_enabled = 0;
  rc_tensor *one = NULL;
  /* discover the graph and count, for each node, the edges that point at it */
  for (int r = 0; r < n_roots; r++) {
    rc_edge e;
    if (edge_of(roots[r], &e)) goto done;
    rc_node_release(e.fn); /* the tensor still holds it */
    if (!e.fn->visited) {
      e.fn->visited = 1;
      if (vec_push(c, &all, e.fn) || vec_push(c, &stack, e.fn)) goto oom;
    }
  }
  while (stack.n) {
    rc_node *n = stack.v[--stack.n];
    for (int i = 0; i < n->n_in; i++) {
      rc_node *p = n->next[i].fn;
      if (!p) continue;
      p->deps++;
      if (!p->visited) {
        p->visited = 1;
        if (vec_push(c, &all, p) || vec_push(c, &stack, p)) goto oom;
      }
    }
  }
  for (size_t i = 0; i < all.n; i++) {
    rc_node *n = all.v[i];
    n->gbuf = rc_mem_calloc(c, (size_t)n->n_out, sizeof(rc_tensor *));
    if (!n->gbuf) goto oom;
  }
  for (int r = 0; r < n_roots; r++) {
    rc_node *fn = roots[r]->grad_fn ? roots[r]->grad_fn : roots[r]->accum;
    int nr = roots[r]->grad_fn ? roots[r]->output_nr : 0;
    rc_tensor *g = grads[r];
    if (!g) {
      one = rc_full(c, roots[r]->ndim, roots[r]->size, 1.0f);
      if (!one) goto done;
      g = one;
    }
    if (buffer_add(fn, nr, g)) goto oom;
    rc_release(one);
    one = NULL;
  }
  for (size_t i = 0; i < all.n; i++)
    if (all.v[i]->deps == 0 && vec_push(c, &ready, all.v[i])) goto oom;

  while (ready.n) {
    rc_node *n = ready.v[--ready.n];
    rc_tensor *gout_stack[4], *gin_stack[4];
    rc_tensor **gout =
        n->n_out <= 4 ? gout_stack : rc_mem_calloc(c, (size_t)n->n_out, sizeof *gout);
    rc_tensor **gin = n->n_in <= 4 ? gin_stack : rc_mem_calloc(c, (size_t)n->n_in, sizeof *gin);
    if (!gout || !gin) {
      if (gout != gout_stack) rc_mem_free(c, gout);
      if (gin != gin_stack) rc_mem_free(c, gin);
      goto oom;
    }
    int fail = 0;
    for (int k = 0; k < n->n_out; k++) {
      gout[k] = n->gbuf[k];
      n->gbuf[k] = NULL;
      if (!gout[k]) {
        gout[k] = rc_zeros(c, n->out_shape[k].ndim, n->out_shape[k].size);
        if (!gout[k]) fail = 1;
      }
    }
    for (int k = 0; k < n->n_in; k++) gin[k] = NULL;
    if (!fail && n->released && n->backward != accumulate_backward) {
      rc_error(c,
               "backward: %s was already run and its saved tensors freed; call backward "
               "with retain_graph = true to run it twice",
               n->name);
      fail = 1;
    }
    double began = c->profile ? rc_profile_now() : 0.0;
    if (!fail && n->backward(n, gout, gin)) fail = 1;
    if (c->profile) rc_profile_node_add(c->profile, n->name, rc_profile_now() - began);
    for (int k = 0; k < n->n_in && !fail; k++) {
      rc_node *p = n->next[k].fn;
      if (!p) continue;
      if (gin[k]) {
        rc_shape gs = rc_shape_of(gin[k]);
        if (!rc_shape_eq(&gs, &n->in_shape[k])) {
          rc_error(c, "backward: %s produced a gradient of shape %s for input %d of shape %s",
                   n->name, rc_shape_str2(&gs, sa, sizeof sa), k + 1,
                   rc_shape_str2(&n->in_shape[k], sb, sizeof sb));
          fail = 1;
          break;
        }
        if (buffer_add(p, n->next[k].nr, gin[k])) {
          fail = 1;
          break;
        }
      }
    }
    if (!fail) {
      for (int k = 0; k < n->n_in; k++) {
        rc_node *p = n->next[k].fn;
        if (p && --p->deps == 0 && vec_push(c, &ready, p)) fail = 1;
      }
    }
    for (int k = 0; k < n->n_out; k++) rc_release(gout[k]);
    for (int k = 0; k < n->n_in; k++) rc_release(gin[k]);
    if (gout != gout_stack) rc_mem_free(c, gout);
    if (gin != gin_stack) rc_mem_free(c, gin);
    if (fail) goto done;
  }
  if (!retain)
    for (size_t i = 0; i < all.n; i++) {
      rc_node *n = all.v[i];
      if (n->backward == accumulate_backward) continue;
      node_free_saved(n);
      n->released = 1;
    }
  rc = 0;
  goto done;
oom: /* the allocator's message: "memory limit exceeded (...)" or "out of memory" */
  rc_error_prefix(c, "backward");
done:
  rc_release(one);
  cleanup(&all);
  rc_mem_free(c, all.v);
  rc_mem_free(c, stack.v);
  rc_mem_free(c, ready.v);
  c->grad_enabled = saved_grad_mode;
  return rc;
}
