/* A stack of fused cells on two threads by splitting the batch: the batch's rows are
 * independent, so each thread runs every layer, forward and backward, on a share of the rows,
 * in buffers of its own, as one thread would run a smaller batch (the layer-by-layer path:
 * each layer's input projection ahead of its steps, then its recurrence, then in backward its
 * whole-sequence products; each thread gathers its rows of the input and puts back its rows
 * of the output and the gradients). The threads meet only at the end of each pass, after
 * which backward adds share 1's parameter gradients to share 0's.
 *
 * Why beside the layer wavefront (rnn_stack.c): one layer has no wavefront, and its products
 * split by columns with the helper meet it twice a step; split by rows, nothing crosses from
 * one core to the other within a sequence (the wavefront hands every step over, on a VM whose
 * two vCPUs sit on different L3s a cross-core transfer each: bench/xcore.c), and the
 * products after the recurrences read what the same core just wrote. The shares live in
 * buffers of their own, not as rows of the batch's buffers: shared out in place, a 2-layer
 * RNN H = 128 forward took 0.67 ms against 0.58 apart (likely each core's prefetches running
 * into the other's rows).
 *
 * Results: a row's forward and its gradients through the recurrence are the same arithmetic
 * as on one thread (the same kernels on fewer rows), so outputs, states and the input's
 * gradient match one thread bit for bit where the products take recur's kernel; a parameter's
 * gradient is the sum of the two shares' (share 0's plus share 1's), within rounding of one
 * thread's. The split is fixed (share_rows), and without the helper the caller runs both
 * shares the same way, so results do not depend on the machine's load. */
#include <stdlib.h>

#include "nn.h"
#include "ops.h"
#include "profile.h"
#include "rnn_impl.h"

struct rn_split {
  rc_ctx *ctx;
  int L;
  int64_t T, B, n0;  /* share 0 takes rows [0, n0) of the batch, share 1 [n0, B) */
  rc_seq **s[2];     /* each share's L sequences (layer l's x is layer l - 1's output) */
  rc_tensor *buf[2]; /* each share's input [T * n * I] and layer outputs [L][T * n * H] */
  rc_tensor *x;      /* the batch's input (its version is checked in backward) */
  uint32_t xver;
};

/* the rows of the batch share 0 takes: whole 8-row blocks of the per-step kernel */
static int64_t share_rows(int64_t B) {
  return B >= 16 ? (B / 2 + 4) / 8 * 8 : B / 2;
}

/* Taken by itself for one layer, which has no wavefront (its products split by columns each
 * step otherwise), while its W_h takes at most RN_SPLIT_MAX_WH bytes: 2 threads against 1 on
 * a layer of T = 50, B = 32, forward and backward, H = 128: LSTM 1.99 against 1.35, GRU 1.85
 * against 1.11, vanilla 1.57 against 1.02; LSTM H = 64 1.85 against 1.10, H = 256 (W_h 1 MB)
 * 1.70 against 1.60; GRU H = 256 1.82 against 1.43; vanilla H = 512 (1 MB) 1.63 against
 * 1.51. At 3-4 MB the two were even (LSTM H = 512 1.80 against 1.78, GRU 1.87 against 1.84)
 * and the split's peak RSS higher (an LSTM H = 512 layer's training loop 104 MB against 82).
 * Two layers or more run as the wavefront unless the split is forced: on the bench's char-RNN
 * (H = 128, 2 layers, 2 threads, the two alternated in one process) the split's step took
 * 2-4% less while the two vCPUs ran at one speed and 1-2% more while one ran 17% slower (a
 * fixed split waits for the slower share; the wavefront moves rows to the faster thread), and
 * at H = 512 the two were within 2% (LSTM 105.7 ms against 103.7, GRU 71.5 against 72.1). */
#define RN_SPLIT_MAX_WH ((int64_t)2 << 20)

int rn_split_wanted(const rc_cell *c0, int L, int64_t B) {
  const rc_ctx *c = c0->ctx;
  if (!c0->ops->rows_apart || B < 2 || c->gemm_tracing || c->rnn_split < 0) return 0;
  if (c->rnn_split > 0) return 1;
  int64_t wh = c0->hidden * c0->ops->gates * c0->hidden * (int64_t)sizeof(float);
  return c->rnn_wave <= 0 && L == 1 && wh <= RN_SPLIT_MAX_WH;
}

static int64_t share_n(const rn_split *sp, int k) {
  return k ? sp->B - sp->n0 : sp->n0;
}

/* rows [b0, b0 + n) of each of T steps of B rows of w floats, from src to dst ([T][n][w]), or
 * back (put) */
static void rows_copy(float *dst, const float *src, int64_t T, int64_t B, int64_t b0, int64_t n,
                      int64_t w, int put) {
  size_t bytes = (size_t)(n * w) * sizeof(float);
  for (int64_t t = 0; t < T; t++)
    if (put)
      memcpy(dst + (t * B + b0) * w, src + t * n * w, bytes);
    else
      memcpy(dst + t * n * w, src + (t * B + b0) * w, bytes);
}

rc_cell *rn_split_cell(const rn_split *sp) {
  return sp->s[0][0]->cell;
}

void rn_split_free(rn_split *sp) {
  if (!sp) return;
  rc_ctx *c = sp->ctx;
  for (int k = 0; k < 2; k++) {
    if (sp->s[k])
      for (int l = 0; l < sp->L; l++) rn_seq_free(sp->s[k][l]);
    rc_mem_free(c, sp->s[k]);
    rc_release(sp->buf[k]);
  }
  rc_release(sp->x);
  rc_mem_free(c, sp);
  rc_ctx_release(c);
}

/* ---- forward ---- */

typedef struct {
  rn_split *sp;
  const float *x; /* the batch's input [T, B, I] */
  float *y;       /* the batch's output [T, B, H] */
} fwd_arg;

static void fwd_share(void *arg, int64_t lo, int64_t hi) {
  const fwd_arg *a = arg;
  rn_split *sp = a->sp;
  for (int64_t k = lo; k < hi; k++) {
    rn_pack_bank = (int)k;
    int64_t b0 = k ? sp->n0 : 0, n = share_n(sp, (int)k);
    rc_seq **s = sp->s[k];
    rows_copy((float *)s[0]->x, a->x, sp->T, sp->B, b0, n, s[0]->I, 0);
    for (int l = 0; l < sp->L; l++) {
      rn_projection_start(s[l]);
      s[l]->cell->ops->forward(s[l]);
      s[l]->proj_rows = 0;
    }
    rc_seq *top = s[sp->L - 1];
    rows_copy(a->y, top->y, sp->T, sp->B, b0, n, top->H, 1);
  }
  rn_pack_bank = 0;
}

/* Runs the shares on two threads (the helper t) or one after the other on the caller (t
 * NULL); every product at one BLAS thread, no cell sharing its steps with the helper. */
static void run_shares(rc_cell *const *cells, int L, rc_range_fn fn, void *arg, rc_team *t) {
  for (int l = 0; l < L; l++) cells[l]->in_wave = 1;
  int threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (t)
    rc_team_split(t, fn, arg, 2, 1);
  else
    fn(arg, 0, 2);
  openblas_set_num_threads(threads);
  for (int l = 0; l < L; l++) cells[l]->in_wave = 0;
}

rn_split *rn_split_forward(rc_cell *const *cells, int L, rc_tensor *x, rc_tensor *const *state0,
                           const int64_t *lengths, float *y, rc_tensor **state_out, rc_team *t) {
  rc_cell *c0 = cells[0];
  rc_ctx *c = c0->ctx;
  const rn_ops *o = c0->ops;
  int ns = o->n_states;
  int64_t T = x->size[0], B = x->size[1], H = c0->hidden;
  rn_split *sp = rc_mem_calloc(c, 1, sizeof *sp);
  if (!sp) return NULL;
  sp->ctx = c;
  rc_ctx_retain(c);
  sp->L = L;
  sp->T = T;
  sp->B = B;
  sp->n0 = share_rows(B);
  rc_tensor *xc = rc_raw_contiguous(x);
  if (!xc) goto fail;
  sp->x = x;
  rc_retain(x);
  sp->xver = x->storage->version;
  for (int k = 0; k < 2; k++) {
    int64_t n = share_n(sp, k), b0 = k ? sp->n0 : 0;
    /* each layer's output, and layer 1's input in front */
    int64_t size[1] = {rn_r16(T * n * c0->input) + L * rn_r16(T * n * H)};
    sp->s[k] = rc_mem_calloc(c, (size_t)L, sizeof *sp->s[k]);
    if (!sp->s[k] || !(sp->buf[k] = rc_empty(c, 1, size))) goto fail_x;
    float *xin = rc_data(sp->buf[k]), *outs = xin + rn_r16(T * n * c0->input);
    for (int l = 0; l < L; l++) {
      rc_cell *cell = cells[l];
      rc_seq *s = rc_mem_calloc(c, 1, sizeof *s);
      if (!s) goto fail_x;
      sp->s[k][l] = s;
      s->cell = cell;
      rc_cell_retain(cell);
      s->T = T;
      s->B = n;
      s->I = cell->input;
      s->H = H;
      s->P = (int64_t)o->gates * H;
      if (lengths) {
        s->len = rc_mem_alloc(c, (size_t)n * sizeof(int64_t));
        if (!s->len) goto fail_x;
        memcpy(s->len, lengths + b0, (size_t)n * sizeof(int64_t));
      }
      int64_t asize[1] = {rn_carve(s, NULL)};
      if (!(s->arena = rc_empty(c, 1, asize))) goto fail_x;
      rn_carve(s, rc_data(s->arena));
      if (rn_reserve_packing(cell, 2)) goto fail_x;
      for (int p = 0; p < o->n_params; p++) {
        if (!(s->w[p] = rc_detach(cell->param[p]))) goto fail_x;
        s->wver[p] = cell->param[p]->storage->version;
      }
      s->x = l == 0 ? xin : outs + (l - 1) * rn_r16(T * n * H);
      s->y = outs + l * rn_r16(T * n * H);
      for (int j = 0; j < ns; j++) { /* rows [b0, b0 + n) of the initial state */
        rc_tensor *h = state0 ? state0[l * RC_CELL_MAX_STATES + j] : NULL;
        rc_tensor *hc = h ? rc_raw_contiguous(h) : NULL;
        if (h && !hc) goto fail_x;
        if (hc)
          memcpy(s->st[j], (float *)rc_data(hc) + b0 * H, (size_t)(n * H) * sizeof(float));
        else
          memset(s->st[j], 0, (size_t)(n * H) * sizeof(float));
        rc_release(hc);
      }
    }
  }
  fwd_arg a = {sp, rc_data(xc), y};
  run_shares(cells, L, fwd_share, &a, t);
  if (c->profile) c->profile->split_runs[0]++;
  rc_release(xc);
  for (int k = 0; k < 2; k++) {
    int64_t n = share_n(sp, k), b0 = k ? sp->n0 : 0;
    for (int l = 0; l < L; l++) {
      rc_seq *s = sp->s[k][l];
      s->y = NULL;
      for (int j = 0; j < ns; j++)
        memcpy((float *)rc_data(state_out[l * RC_CELL_MAX_STATES + j]) + b0 * H,
               s->st[j] + T * n * H, (size_t)(n * H) * sizeof(float));
    }
  }
  return sp;
fail_x:
  rc_release(xc);
fail:
  rn_split_free(sp);
  return NULL;
}

/* ---- backward ---- */

typedef struct {
  rn_split *sp;
  const float *dy;      /* the batch's output gradient [T, B, H] */
  float *const *dfin;   /* L * RC_CELL_MAX_STATES: the final states' gradients [B, H], or NULL */
  float *dx;            /* the input's gradient [T, B, I], or NULL */
  float *const *dstate; /* L * RC_CELL_MAX_STATES: the initial states' gradients, or NULL */
  float *const *dp[2];  /* L * RC_CELL_MAX_PARAMS per share: its parameter gradients, or NULL */
  float *ws[2];         /* each share's scratch (carved below) */
} bwd_arg;

/* Floats of a share's backward scratch: a layer's output gradient [T n H] (the layer below's
 * replaces it once the recurrence has read it), the running state gradients, the cell's
 * scratch (by rows) and the input's gradient [T n I]. Its dG goes to the layer's cell's
 * backward workspace (share 1's after share 0's). Nothing the forward saved is written: a
 * backward with retain_graph runs again on it. */
static int64_t bwd_floats(const rn_split *sp, int k) {
  const rc_seq *s = sp->s[k][0];
  const rn_ops *o = s->cell->ops;
  int64_t TN = sp->T * s->B;
  return rn_r16(TN * s->H) + RC_CELL_MAX_STATES * rn_r16(s->B * s->H) +
         (o->bws_floats ? rn_r16(o->bws_floats(sp->T, s->B, s->H)) : 0) + rn_r16(TN * s->I);
}

static void bwd_share(void *arg, int64_t lo, int64_t hi) {
  const bwd_arg *a = arg;
  rn_split *sp = a->sp;
  for (int64_t k = lo; k < hi; k++) {
    rn_pack_bank = (int)k;
    rc_seq **s = sp->s[k];
    const rn_ops *o = s[0]->cell->ops;
    int64_t T = sp->T, B = sp->B, b0 = k ? sp->n0 : 0, n = share_n(sp, (int)k);
    int64_t H = s[0]->H, P = s[0]->P, TN = T * n;
    float *dy = a->ws[k], *run = dy + rn_r16(TN * H);
    float *cws = run + RC_CELL_MAX_STATES * rn_r16(n * H);
    float *dx = cws + (o->bws_floats ? rn_r16(o->bws_floats(T, n, H)) : 0);
    rows_copy(dy, a->dy, T, B, b0, n, H, 0);
    for (int l = sp->L - 1; l >= 0; l--) {
      rc_seq *q = s[l];
      float *dG = rc_data(q->cell->ws[1]) + (k ? rn_r16(T * sp->n0 * P) : 0);
      rc_bw b;
      memset(&b, 0, sizeof b);
      b.dy = dy;
      b.dG = dG;
      b.ws = cws;
      for (int j = 0; j < o->n_states; j++) {
        b.d[j] = run + j * rn_r16(n * H);
        float *f = a->dfin ? a->dfin[l * RC_CELL_MAX_STATES + j] : NULL;
        if (f)
          memcpy(b.d[j], f + b0 * H, (size_t)(n * H) * sizeof(float));
        else
          memset(b.d[j], 0, (size_t)(n * H) * sizeof(float));
      }
      float *const *dp = a->dp[k] + l * RC_CELL_MAX_PARAMS;
      for (int p = 0; p < o->n_params; p++) b.dp[p] = dp[p];
      o->backward(q, &b);
      if (o->wgrad) o->wgrad(q, &b);
      if (b.dp[0]) /* dW_x = X^T dG */
        rn_gemm(q->cell->ctx, q->I, P, TN, q->x, q->I, 1, dG, P, 0, b.dp[0], P, 1.0f, 0.0f);
      if (o->has_bias && b.dp[2]) rn_colsum_add(dG, TN, P, P, b.dp[2]);
      /* the layer below's output gradient (over this one's, which the recurrence has read),
       * or the input's: dG W_x^T */
      float *dst = l > 0 ? dy : (a->dx ? dx : NULL);
      if (dst)
        rn_gemm(q->cell->ctx, TN, q->I, P, dG, P, 0, rc_data(q->w[0]), P, 1, dst, q->I, 1.0f, 0.0f);
      if (a->dstate)
        for (int j = 0; j < o->n_states; j++) {
          float *d = a->dstate[l * RC_CELL_MAX_STATES + j];
          if (d) memcpy(d + b0 * H, b.d[j], (size_t)(n * H) * sizeof(float));
        }
    }
    if (a->dx) rows_copy(a->dx, dx, T, B, b0, n, s[0]->I, 1);
  }
  rn_pack_bank = 0;
}

int rn_split_backward(rn_split *sp, const float *dy, float *const *dfin, float *dx,
                      float *const *dstate, float *const *dp, rc_team *t) {
  rc_ctx *c = sp->ctx;
  int L = sp->L, np = L * RC_CELL_MAX_PARAMS;
  const rn_ops *o = sp->s[0][0]->cell->ops;
  rc_cell **cells = rc_mem_calloc(c, (size_t)L, sizeof *cells);
  float **dp1 = rc_mem_calloc(c, (size_t)np, sizeof *dp1);
  int64_t *psize = rc_mem_calloc(c, (size_t)np, sizeof *psize);
  rc_tensor *ws = NULL;
  int rc = -1;
  if (!cells || !dp1 || !psize) goto done;
  /* share 1's parameter gradients go to scratch, added to share 0's after */
  int64_t pfl = 0;
  for (int l = 0; l < L; l++) {
    cells[l] = sp->s[0][l]->cell;
    for (int p = 0; p < o->n_params; p++) {
      int i = l * RC_CELL_MAX_PARAMS + p;
      psize[i] = dp[i] ? rc_numel(cells[l]->param[p]) : 0;
      pfl += rn_r16(psize[i]);
    }
  }
  /* each layer's dG (both shares') in its cell's backward workspace, grown before the threads
   * start */
  for (int l = 0; l < L; l++) {
    const rc_seq *q = sp->s[0][l];
    if (!rn_workspace(cells[l], 1,
                      rn_r16(sp->T * sp->n0 * q->P) + rn_r16(sp->T * (sp->B - sp->n0) * q->P)))
      goto done;
  }
  int64_t w0 = rn_r16(bwd_floats(sp, 0)), w1 = rn_r16(bwd_floats(sp, 1));
  int64_t size[1] = {w0 + w1 + pfl};
  if (!(ws = rc_empty(c, 1, size))) goto done;
  float *base = rc_data(ws), *pb = base + w0 + w1;
  for (int i = 0; i < np; i++) {
    if (!psize[i]) continue;
    dp1[i] = pb;
    /* accumulated (all but W_x and W_h): from zero, as the caller's */
    if (i % RC_CELL_MAX_PARAMS > 1) memset(pb, 0, (size_t)psize[i] * sizeof(float));
    pb += rn_r16(psize[i]);
  }
  bwd_arg a = {sp, dy, dfin, dx, dstate, {dp, dp1}, {base, base + w0}};
  run_shares(cells, L, bwd_share, &a, t);
  if (c->profile) c->profile->split_runs[1]++;
  for (int i = 0; i < np; i++)
    if (psize[i]) rc_k_add(dp[i], dp1[i], psize[i]);
  rc = 0;
done:
  rc_release(ws);
  rc_mem_free(c, cells);
  rc_mem_free(c, dp1);
  rc_mem_free(c, psize);
  return rc;
}

int rn_split_check(const rn_split *sp, const char *name) {
  rc_ctx *c = sp->ctx;
  if (sp->x->storage->version != sp->xver)
    return rc_error(c,
                    "backward: the input of %s was modified by an in-place operation after "
                    "the forward; clone() it before modifying",
                    name);
  return rn_check_params(c, sp->s[0], sp->L, name);
}
