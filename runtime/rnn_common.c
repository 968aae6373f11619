/* Fused recurrent cells: the cell object, parameters, workspaces, and the sequence driver
 * shared by every cell (input projection, autograd node, weight gradients of W_x and b).
 * The per-cell recurrences live in one file per cell (rnn_vanilla.c, rnn_gru.c, rnn_lstm.c,
 * ...), listed in rnn_cells.h. */
#include <limits.h>
#include <stdlib.h>

#include "nn.h"
#include "ops.h"
#include "gemm.h"
#include "rnn_impl.h"

int rc_cell_kind_count(void) {
  int n = 0;
  while (rn_cells[n]) n++;
  return n;
}

int rc_cell_kind_of(const char *name) {
  for (int k = 0; rn_cells[k]; k++)
    if (strcmp(name, rn_cells[k]->name) == 0) return k;
  return -1;
}

const char *rc_cell_kind_name(int k) {
  return k >= 0 && k < rc_cell_kind_count() ? rn_cells[k]->name : NULL;
}

/* ---- kernels ---- */

RN_CLONES void rn_colsum_add(const float *a, int64_t rows, int64_t cols, int64_t ld, float *out) {
  float *restrict o = out;
  for (int64_t i = 0; i < rows; i++) {
    const float *restrict r = a + i * ld;
    for (int64_t j = 0; j < cols; j++) o[j] += r[j];
  }
}

/* ---- the cell object ---- */

static int param_shape(const rc_cell *cell, int k, int64_t *size) {
  const rn_ops *o = cell->ops;
  int64_t P = (int64_t)o->gates * cell->hidden;
  if (k == 0) {
    size[0] = cell->input;
    size[1] = P;
    return 2;
  }
  if (k == 1) {
    size[0] = cell->hidden;
    size[1] = P;
    return 2;
  }
  if (k == 2 && o->has_bias) {
    size[0] = P;
    return 1;
  }
  return o->param_shape(k, cell->hidden, size);
}

rc_cell *rc_cell_new(rc_ctx *c, const char *kind_name, int64_t input, int64_t hidden,
                     int reset_after) {
  int kind = rc_cell_kind_of(kind_name);
  if (kind < 0) return rc_error_null(c, "rnn cell: unknown cell type '%s'", kind_name);
  const rn_ops *o = rn_cells[kind];
  if (reset_after && o->reset_after) o = o->reset_after;
  if (input < 1 || hidden < 1)
    return rc_error_null(c,
                         "rnn cell: input and hidden must be >= 1, got input = %lld, "
                         "hidden = %lld",
                         (long long)input, (long long)hidden);
  if (input > INT_MAX / 8 || hidden > INT_MAX / 8 / o->gates)
    return rc_error_null(c, "rnn cell: input = %lld, hidden = %lld is too large", (long long)input,
                         (long long)hidden);
  rc_cell *cell = rc_mem_calloc(c, 1, sizeof *cell);
  if (!cell) return NULL;
  cell->refcount = 1;
  cell->ctx = c;
  rc_ctx_retain(c);
  cell->kind = kind;
  cell->reset_after = o != rn_cells[kind];
  cell->input = input;
  cell->hidden = hidden;
  cell->ops = o;
  float k = 1.0f / sqrtf((float)hidden);
  for (int p = 0; p < o->n_params; p++) {
    int64_t size[2];
    int nd = param_shape(cell, p, size);
    /* movable parameter tensors (rc_param_from): Module packing re-points them into a
     * model's flat buffer; every kernel reads them through cell->param at each call */
    cell->param[p] = rc_param_from(rc_rand(c, nd, size, -k, k));
    if (!cell->param[p]) {
      rc_cell_release(cell);
      return NULL;
    }
  }
  if (o->has_bias) memset(rc_data(cell->param[2]), 0, (size_t)rc_numel(cell->param[2]) * 4);
  if (o->init) o->init(cell);
  return cell;
}

void rc_cell_retain(rc_cell *cell) {
  if (cell) cell->refcount++;
}

void rc_cell_release(rc_cell *cell) {
  if (!cell || --cell->refcount > 0) return;
  for (int p = 0; p < RC_CELL_MAX_PARAMS; p++) rc_release(cell->param[p]);
  for (int w = 0; w < 3 + 2 * RN_PACK_SLOTS; w++) rc_release(cell->ws[w]);
  rc_ctx *c = cell->ctx; /* cell->team is the context's */
  rc_mem_free(c, cell);
  rc_ctx_release(c);
}

const char *rc_cell_kind(const rc_cell *cell) {
  return rn_cells[cell->kind]->name;
}
int64_t rc_cell_input(const rc_cell *cell) {
  return cell->input;
}
int64_t rc_cell_hidden(const rc_cell *cell) {
  return cell->hidden;
}
int rc_cell_reset_after(const rc_cell *cell) {
  return cell->reset_after;
}
int rc_cell_n_states(const rc_cell *cell) {
  return cell->ops->n_states;
}
const char *rc_cell_state_name(const rc_cell *cell, int k) {
  return k >= 0 && k < cell->ops->n_states ? cell->ops->state_names[k] : NULL;
}
int rc_cell_n_params(const rc_cell *cell) {
  return cell->ops->n_params;
}
const char *rc_cell_param_name(const rc_cell *cell, int k) {
  return k >= 0 && k < cell->ops->n_params ? cell->ops->param_names[k] : NULL;
}
rc_tensor *rc_cell_param(const rc_cell *cell, int k) {
  return k >= 0 && k < cell->ops->n_params ? cell->param[k] : NULL;
}

/* Workspace w with room for n floats (grown, never shrunk); NULL on failure. */
float *rn_workspace(rc_cell *cell, int w, int64_t n) {
  if (n < 1) n = 1;
  if (!cell->ws[w] || cell->ws[w]->storage->n < n) {
    rc_release(cell->ws[w]);
    cell->ws[w] = NULL;
    int64_t size[1] = {n};
    cell->ws[w] = rc_empty(cell->ctx, 1, size);
    if (!cell->ws[w]) return NULL;
  }
  return rc_data(cell->ws[w]);
}

_Thread_local int rn_pack_bank;

void rn_prepare(rc_cell *cell, int slot, rn_pmat *m, const float *W, int64_t ldw, int trans,
                int64_t K, int64_t N, int64_t M, int64_t uses) {
  float *dst = NULL;
  if (rn_pack_wanted(M, uses))
    dst = rn_workspace(cell, 3 + slot + rn_pack_bank * RN_PACK_SLOTS, rn_pack_floats(K, N));
  rn_pack(m, dst, W, ldw, trans, K, N);
  m->ctx = cell->ctx;
  if (m->p && cell->ctx->gemm_tracing) rc_gemm_trace_pack(cell->ctx, K, N, trans, m->kind);
  /* with more BLAS threads, products of at least 2^20 multiply-adds are shared with a helper
   * thread (smaller ones cost less than the hand-over) */
  if (m->p && M * K * N >= (1 << 20) && openblas_get_num_threads() > 1 &&
      !cell->ctx->no_rnn_helper && !cell->in_wave) {
    if (!cell->team) cell->team = rc_ctx_team(cell->ctx);
    if (slot == 0 || slot == 2) cell->team_on = rc_team_usable(cell->team); /* per sequence */
    m->team = cell->team_on ? cell->team : NULL;
  }
}

int rn_reserve_packing(rc_cell *cell, int banks) {
  int64_t H = cell->hidden, P = (int64_t)cell->ops->gates * H;
  int64_t n = rn_pack_floats(H, P), nt = rn_pack_floats(P, H);
  if (nt > n) n = nt;
  for (int bank = 0; bank < banks; bank++)
    for (int slot = 0; slot < RN_PACK_SLOTS; slot++)
      if ((cell->ops->pack_slots >> slot & 1) &&
          !rn_workspace(cell, 3 + bank * RN_PACK_SLOTS + slot, n))
        return -1;
  return 0;
}

/* ---- sequences ---- */

#define round16 rn_r16

static int64_t buf_floats(const rn_size *z, int64_t T, int64_t B, int64_t H) {
  return round16((T + z->extra_steps) * B * (z->h_mult * H + z->plus));
}

/* Floats of the arena for [T, B] and the carving of it into s's buffers (when base). */
int64_t rn_carve(rc_seq *s, float *base) {
  const rn_ops *o = s->cell->ops;
  int64_t off = 0;
  if (base) s->pre = base + off;
  off += round16(s->T * s->B * s->P);
  for (int k = 0; k < o->n_states; k++) {
    if (base) s->st[k] = base + off;
    off += round16((s->T + 1) * s->B * s->H);
  }
  for (int a = 0; a < o->n_aux; a++) {
    if (base) s->aux[a] = base + off;
    off += buf_floats(&o->aux[a], s->T, s->B, s->H);
  }
  return off;
}

void rn_seq_free(rc_seq *s) {
  if (!s) return;
  rc_release(s->arena);
  rc_release(s->xsave);
  for (int k = 0; k < RC_CELL_MAX_PARAMS; k++) rc_release(s->w[k]);
  rc_cell *cell = s->cell; /* holds the context the record's memory came from */
  rc_mem_free(cell->ctx, s->len);
  rc_mem_free(cell->ctx, s);
  rc_cell_release(cell);
}

static void seq_free_ext(void *p) {
  rn_seq_free(p);
}

/* Checks shapes and lengths; fills T and B. */
int rn_check_args(rc_cell *cell, const char *fn, rc_tensor *x, int xdim, rc_tensor *const *state0,
                  const int64_t *lengths, int64_t *T, int64_t *B) {
  rc_ctx *c = cell->ctx;
  char s1[128];
  const rn_ops *o = cell->ops;
  if (x->ndim != xdim || x->size[xdim - 1] != cell->input)
    return rc_error(c, "%s: x must have shape [%s%s, %lld], got %s", fn, xdim == 3 ? "T, " : "",
                    "B", (long long)cell->input, rc_shape_str(x, s1, sizeof s1));
  *T = xdim == 3 ? x->size[0] : 1;
  *B = x->size[xdim - 2];
  if (*T > INT_MAX / 2 || *B > INT_MAX / 2 || *T * *B > INT_MAX / 2 ||
      (*T + 1) * *B * (int64_t)o->gates * cell->hidden > RC_MAX_NUMEL)
    return rc_error(c, "%s: x of shape %s is too large", fn, rc_shape_str(x, s1, sizeof s1));
  for (int k = 0; k < o->n_states; k++) {
    rc_tensor *h = state0 ? state0[k] : NULL;
    if (h && (h->ndim != 2 || h->size[0] != *B || h->size[1] != cell->hidden))
      return rc_error(c, "%s: initial state %d (%s) must have shape [%lld, %lld], got %s", fn,
                      k + 1, o->state_names[k], (long long)*B, (long long)cell->hidden,
                      rc_shape_str(h, s1, sizeof s1));
  }
  if (lengths)
    for (int64_t b = 0; b < *B; b++)
      if (lengths[b] < 0 || lengths[b] > *T)
        return rc_error(c, "%s: lengths[%lld] = %lld is outside [0, %lld] (T = %lld)", fn,
                        (long long)b + 1, (long long)lengths[b], (long long)*T, (long long)*T);
  return 0;
}

/* pre = x W_x + b over all T*B rows: one GEMM. */
void rn_input_projection(rc_seq *s) {
  rn_input_projection_rows(s, 0, s->T * s->B);
}

/* Bytes of pre the layer-by-layer forward projects at a time, ahead of the steps that read
 * them, when the whole sequence's would not stay in L2 (1 MB here), and the fewest rows a
 * product then has (recur's kernel packs W_x for each: it pays from about this many): the
 * step then adds its recurrent product to rows still in L2 rather than fetched from L3 or
 * memory. A 1-thread 2-layer LSTM H = 128 (T = 50, B = 32: pre 3.3 MB a layer) forward took
 * 5.6-5.9 ms in chunks of 4-12 steps against 6.0-6.5 in one product. */
#define RN_PROJ_BYTES ((int64_t)512 * 1024)
#define RN_PROJ_MIN_ROWS 128

/* the rows a time of pre a sequence run layer by layer projects ahead of its steps, or 0: all
 * before the first */
static int64_t rn_project_rows(const rc_seq *s) {
  int64_t n = s->T * s->B, row = s->P * (int64_t)sizeof(float);
  /* (an empty batch or sequence projects nothing either way) */
  int64_t rows = n > 0 && row > 0 ? RN_PROJ_BYTES / row / s->B * s->B : 0;
  int ahead = !s->cell->ctx->rnn_proj_whole && n * row > RN_PROJ_BYTES &&
              rows >= RN_PROJ_MIN_ROWS && rows < n;
  return ahead ? rows : 0;
}

/* the projection of a sequence about to run layer by layer: all of it now, or set to run
 * ahead of the steps */
void rn_projection_start(rc_seq *s) {
  s->proj_rows = rn_project_rows(s);
  s->proj_done = 0;
  if (!s->proj_rows) rn_input_projection(s);
}

void rn_project_ahead(rc_seq *s) {
  int64_t n = s->T * s->B, r1 = s->proj_done + s->proj_rows < n ? s->proj_done + s->proj_rows : n;
  rn_input_projection_rows(s, s->proj_done, r1);
  s->proj_done = r1;
}

void rn_input_projection_rows(rc_seq *s, int64_t r0, int64_t r1) {
  const rn_ops *o = s->cell->ops;
  if (r1 <= r0) return;
  const float *Wx = rc_data(s->cell->param[0]);
  float *pre = s->pre + r0 * s->P;
  if (r1 - r0 == 1) { /* a batch-1 step: the same kernel as generation's (rn_vecmat) */
    rn_vecmat(rn_vecmat_kind(), s->I, s->x + r0 * s->I, Wx, s->P,
              o->has_bias ? rc_data(s->cell->param[2]) : NULL, pre, 0, s->P);
    return;
  }
  if (o->has_bias)
    rc_sgemm_bias(s->cell->ctx, 0, 0, r1 - r0, s->P, s->I, s->x + r0 * s->I, s->I, Wx, s->P,
                  rc_data(s->cell->param[2]), pre, s->P);
  else
    rn_gemm(s->cell->ctx, r1 - r0, s->P, s->I, s->x + r0 * s->I, s->I, 0, Wx, s->P, 0, pre, s->P,
            1.0f, 0.0f);
}

/* Copies state k's initial value (zeros for NULL) into its history row 0. */
void rn_load_state(rc_seq *s, int k, rc_tensor *h) {
  float *dst = s->st[k];
  if (!h) {
    memset(dst, 0, (size_t)(s->B * s->H) * sizeof(float));
    return;
  }
  rc_read_floats(h, dst);
}

static int seq_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin);

int rc_cell_forward(rc_cell *cell, rc_tensor *x, rc_tensor *const *state0, const int64_t *lengths,
                    rc_tensor **y, rc_tensor **state_out) {
  rc_ctx *c = cell->ctx;
  const rn_ops *o = cell->ops;
  int64_t T, B;
  *y = NULL;
  for (int k = 0; k < RC_CELL_MAX_STATES; k++) state_out[k] = NULL;
  if (rn_check_args(cell, "rnn forward", x, 3, state0, lengths, &T, &B)) return -1;
  /* the budget sees the sequence's products (one rc_cell_forward can run for minutes) */
  if (rc_charge(c, "rnn forward", rc_mac_units(rc_cell_flops(cell, T, B) / 6.0))) return -1;
  rc_tensor *ins[1 + RC_CELL_MAX_STATES + RC_CELL_MAX_PARAMS] = {0};
  int n_in = 1 + RC_CELL_MAX_STATES + o->n_params;
  ins[0] = x;
  for (int k = 0; k < o->n_states; k++) ins[1 + k] = state0 ? state0[k] : NULL;
  for (int p = 0; p < o->n_params; p++) ins[1 + RC_CELL_MAX_STATES + p] = cell->param[p];
  int record = rc_needs_grad(c, ins, n_in);

  rc_seq *s = rc_mem_calloc(c, 1, sizeof *s);
  if (!s) return -1;
  s->cell = cell;
  rc_cell_retain(cell);
  s->T = T;
  s->B = B;
  s->I = cell->input;
  s->H = cell->hidden;
  s->P = (int64_t)o->gates * cell->hidden;
  if (lengths) {
    s->len = rc_mem_alloc(c, (size_t)(B ? B : 1) * sizeof(int64_t));
    if (!s->len) goto fail;
    memcpy(s->len, lengths, (size_t)B * sizeof(int64_t));
  }
  int64_t size[3] = {rn_carve(s, NULL)};
  s->arena = rc_empty(c, 1, size);
  if (!s->arena) goto fail;
  rn_carve(s, rc_data(s->arena));
  if (o->fws_floats) {
    s->fws = rn_workspace(cell, 0, o->fws_floats(B, s->H));
    if (!s->fws) goto fail;
  }
  s->xsave = rc_raw_contiguous(x);
  if (!s->xsave) goto fail;
  s->xver = s->xsave->storage->version;
  s->x = rc_data(s->xsave);
  for (int p = 0; p < o->n_params; p++) {
    s->w[p] = rc_detach(cell->param[p]);
    if (!s->w[p]) goto fail;
    s->wver[p] = cell->param[p]->storage->version;
  }
  size[0] = T;
  size[1] = B;
  size[2] = s->H;
  *y = rc_empty(c, 3, size);
  if (!*y) goto fail;
  for (int k = 0; k < o->n_states; k++) {
    state_out[k] = rc_empty(c, 2, size + 1);
    if (!state_out[k]) goto fail;
  }
  for (int k = 0; k < o->n_states; k++) rn_load_state(s, k, state0 ? state0[k] : NULL);
  rn_projection_start(s);
  s->y = rc_data(*y);
  o->forward(s);
  s->proj_rows = 0;
  s->y = NULL;
  s->fws = NULL;
  for (int k = 0; k < o->n_states; k++)
    memcpy(rc_data(state_out[k]), s->st[k] + T * B * s->H, (size_t)(B * s->H) * sizeof(float));
  if (!record) {
    rn_seq_free(s);
    return 0;
  }
  rc_node *n = rc_node_new(c, "RNNBackward", seq_backward, ins, n_in, 1 + o->n_states);
  if (!n) goto fail;
  n->name = o->bw_name;
  n->ext = s;
  n->ext_free = seq_free_ext;
  rc_node_set_output(n, 0, *y);
  for (int k = 0; k < o->n_states; k++) rc_node_set_output(n, 1 + k, state_out[k]);
  rc_node_release(n);
  return 0;

fail:
  rn_seq_free(s);
  rc_release(*y);
  *y = NULL;
  for (int k = 0; k < RC_CELL_MAX_STATES; k++) {
    rc_release(state_out[k]);
    state_out[k] = NULL;
  }
  return -1;
}

/* See rnn_impl.h. A model's parameters usually live in one flat buffer, one storage whose
 * version any in-place write to any of them moves: the message then cannot name the one. */
int rn_check_params(rc_ctx *c, rc_seq *const *s, int L, const char *name) {
  for (int l = 0; l < L; l++) {
    const rn_ops *o = s[l]->cell->ops;
    for (int p = 0; p < o->n_params; p++) {
      const rc_storage *st = s[l]->w[p]->storage;
      if (st->version == s[l]->wver[p]) continue;
      int shared = 0;
      for (int m = 0; m < L && !shared; m++)
        for (int q = 0; q < s[m]->cell->ops->n_params && !shared; q++)
          shared = (m != l || q != p) && s[m]->w[q]->storage == st;
      char where[48] = "";
      if (L > 1) snprintf(where, sizeof where, "layer %d of ", l + 1);
      if (shared)
        return rc_error(c,
                        "backward: a parameter of %s was modified in place after the forward "
                        "(%s of %s%s shares its storage with other parameters, as in a model's "
                        "flat parameter buffer, so which one cannot be told; an optimizer step "
                        "between forward and backward?)",
                        name, o->param_names[p], where, name);
      return rc_error(c,
                      "backward: parameter %s of %s%s was modified in place after the forward "
                      "(an optimizer step between forward and backward?)",
                      o->param_names[p], where, name);
    }
  }
  return 0;
}

/* One node for the whole sequence: the cell's recurrence backward fills dG (the gradient of
 * x W_x + b) and the gradients of W_h and its own parameters; the rest is three GEMMs. */
static int seq_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_seq *s = n->ext;
  rc_ctx *c = n->ctx;
  if (!s)
    return rc_error(c,
                    "backward: %s was already run and its saved tensors freed; call "
                    "backward with retain_graph = true to run it twice",
                    n->name);
  rc_cell *cell = s->cell;
  const rn_ops *o = cell->ops;
  if (s->xsave->storage->version != s->xver)
    return rc_error(c,
                    "backward: the input of %s was modified by an in-place operation after "
                    "the forward; clone() it before modifying",
                    n->name);
  if (rn_check_params(c, &s, 1, n->name)) return -1;
  int64_t T = s->T, B = s->B, H = s->H, P = s->P, I = s->I, TB = T * B;
  int need_x = n->next[0].fn != NULL;
  int need_st[RC_CELL_MAX_STATES] = {0}, need_p[RC_CELL_MAX_PARAMS] = {0};
  for (int k = 0; k < o->n_states; k++) need_st[k] = n->next[1 + k].fn != NULL;
  for (int p = 0; p < o->n_params; p++) need_p[p] = n->next[1 + RC_CELL_MAX_STATES + p].fn != NULL;

  int rc = -1;
  rc_tensor *dy = NULL, *dst[RC_CELL_MAX_STATES] = {0};
  dy = rc_raw_contiguous(gout[0]);
  if (!dy) goto done;
  for (int k = 0; k < o->n_states; k++)
    if (!(dst[k] = rc_raw_contiguous(gout[1 + k]))) goto done;
  if (need_x && !(gin[0] = rc_empty(c, n->in_shape[0].ndim, n->in_shape[0].size))) goto done;
  for (int k = 0; k < o->n_states; k++)
    if (need_st[k] && !(gin[1 + k] = rc_empty(c, n->in_shape[1 + k].ndim, n->in_shape[1 + k].size)))
      goto done;
  rc_bw b;
  memset(&b, 0, sizeof b);
  for (int p = 0; p < o->n_params; p++) {
    int q = 1 + RC_CELL_MAX_STATES + p;
    if (!need_p[p]) continue;
    /* W_x and W_h are overwritten by their gradient GEMMs (beta 0); the rest accumulate */
    gin[q] = p <= 1 ? rc_empty(c, n->in_shape[q].ndim, n->in_shape[q].size)
                    : rc_zeros(c, n->in_shape[q].ndim, n->in_shape[q].size);
    if (!gin[q]) goto done;
    b.dp[p] = rc_data(gin[q]);
  }
  int64_t off_run = round16(TB * P), run = round16(B * H);
  int64_t extra = o->bws_floats ? o->bws_floats(T, B, H) : 0;
  float *ws = rn_workspace(cell, 1, off_run + RC_CELL_MAX_STATES * run + extra);
  if (!ws) goto done;
  b.dy = rc_data(dy);
  b.dG = ws;
  for (int k = 0; k < o->n_states; k++) {
    b.d[k] = ws + off_run + k * run;
    memcpy(b.d[k], rc_data(dst[k]), (size_t)(B * H) * sizeof(float));
  }
  b.ws = ws + off_run + RC_CELL_MAX_STATES * run;
  o->backward(s, &b);
  if (o->wgrad) o->wgrad(s, &b);
  for (int k = 0; k < o->n_states; k++)
    if (need_st[k]) memcpy(rc_data(gin[1 + k]), b.d[k], (size_t)(B * H) * sizeof(float));
  if (need_p[0]) /* dW_x = X^T dG */
    rn_gemm(s->cell->ctx, I, P, TB, s->x, I, 1, b.dG, P, 0, b.dp[0], P, 1.0f, 0.0f);
  if (o->has_bias && need_p[2]) rn_colsum_add(b.dG, TB, P, P, b.dp[2]);
  if (need_x) /* dx = dG W_x^T */
    rn_gemm(s->cell->ctx, TB, I, P, b.dG, P, 0, rc_data(s->w[0]), P, 1, rc_data(gin[0]), I, 1.0f,
            0.0f);
  rc = 0;
done:
  rc_release(dy);
  for (int k = 0; k < RC_CELL_MAX_STATES; k++) rc_release(dst[k]);
  if (rc)
    for (int k = 0; k < n->n_in; k++) {
      rc_release(gin[k]);
      gin[k] = NULL;
    }
  return rc;
}

/* A one-step sequence of batch B on the cell's step workspaces (no allocation once they
 * are grown): 0, or -1 with a message. */
static int step_seq(rc_cell *cell, int64_t B, rc_seq *s) {
  const rn_ops *o = cell->ops;
  memset(s, 0, sizeof *s);
  s->cell = cell;
  s->T = 1;
  s->B = B;
  s->I = cell->input;
  s->H = cell->hidden;
  s->P = (int64_t)o->gates * cell->hidden;
  float *arena = rn_workspace(cell, 2, rn_carve(s, NULL));
  if (!arena) return -1;
  rn_carve(s, arena);
  if (o->fws_floats && !(s->fws = rn_workspace(cell, 0, o->fws_floats(B, s->H)))) return -1;
  return 0;
}

int rc_cell_step(rc_cell *cell, rc_tensor *x, rc_tensor *const *state, rc_tensor **y,
                 rc_tensor **state_out) {
  rc_ctx *c = cell->ctx;
  const rn_ops *o = cell->ops;
  int64_t T, B;
  *y = NULL;
  for (int k = 0; k < RC_CELL_MAX_STATES; k++) state_out[k] = NULL;
  if (rn_check_args(cell, "rnn step", x, 2, state, NULL, &T, &B)) return -1;
  if (rc_charge(c, "rnn step", rc_mac_units(rc_cell_flops(cell, 1, B) / 6.0))) return -1;
  rc_tensor *ins[1 + RC_CELL_MAX_STATES + RC_CELL_MAX_PARAMS] = {0};
  int n_in = 1 + RC_CELL_MAX_STATES + o->n_params;
  ins[0] = x;
  for (int k = 0; k < o->n_states; k++) ins[1 + k] = state ? state[k] : NULL;
  for (int p = 0; p < o->n_params; p++) ins[1 + RC_CELL_MAX_STATES + p] = cell->param[p];
  if (rc_needs_grad(c, ins, n_in)) { /* a recorded forward of length 1 */
    rc_tensor *x1 = rc_unsqueeze(x, 0), *y1 = NULL;
    if (!x1) return -1;
    int rc = rc_cell_forward(cell, x1, state, NULL, &y1, state_out);
    rc_release(x1);
    if (rc) return -1;
    *y = rc_select(y1, 0, 0);
    rc_release(y1);
    if (*y) return 0;
    for (int k = 0; k < RC_CELL_MAX_STATES; k++) {
      rc_release(state_out[k]);
      state_out[k] = NULL;
    }
    return -1;
  }
  rc_seq s;
  if (step_seq(cell, B, &s)) return -1;
  int64_t size[2] = {B, s.H};
  rc_tensor *xc = rc_raw_contiguous(x);
  if (!xc) return -1;
  s.x = rc_data(xc);
  *y = rc_empty(c, 2, size);
  int ok = *y != NULL;
  for (int k = 0; k < o->n_states && ok; k++) ok = (state_out[k] = rc_empty(c, 2, size)) != NULL;
  if (!ok) {
    rc_release(xc);
    rc_release(*y);
    *y = NULL;
    for (int k = 0; k < RC_CELL_MAX_STATES; k++) {
      rc_release(state_out[k]);
      state_out[k] = NULL;
    }
    return -1;
  }
  for (int k = 0; k < o->n_states; k++) rn_load_state(&s, k, state ? state[k] : NULL);
  rn_input_projection(&s);
  s.y = rc_data(*y);
  o->forward(&s);
  for (int k = 0; k < o->n_states; k++)
    memcpy(rc_data(state_out[k]), s.st[k] + B * s.H, (size_t)(B * s.H) * sizeof(float));
  rc_release(xc);
  return 0;
}

int rn_step_given(rc_cell *cell, const float *pre, const float *rec, float *const *state,
                  float *y) {
  const rn_ops *o = cell->ops;
  rc_seq s;
  if (step_seq(cell, 1, &s)) return -1;
  size_t bytes = (size_t)s.H * sizeof(float);
  for (int k = 0; k < o->n_states; k++) memcpy(s.st[k], state[k], bytes);
  memcpy(s.pre, pre, (size_t)s.P * sizeof(float));
  s.rec = rec;
  s.y = y;
  o->forward(&s);
  for (int k = 0; k < o->n_states; k++) memcpy(state[k], s.st[k] + s.H, bytes);
  return 0;
}

double rc_cell_flops(const rc_cell *cell, int64_t T, int64_t B) {
  double P = (double)cell->ops->gates * (double)cell->hidden;
  return 6.0 * (double)T * (double)B * ((double)cell->input + (double)cell->hidden) * P;
}

void rn_init_forget_bias(rc_cell *cell) {
  float *b = rc_data(cell->param[2]);
  for (int64_t j = 0; j < cell->hidden; j++) b[cell->hidden + j] = 1.0f;
}
