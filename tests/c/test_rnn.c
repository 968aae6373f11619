/* The fused cells through the C API (runtime/rnn.h): an LSTM against a naive double-precision
 * reference with mixed lengths, step (batch 1: matrix-vector path) against forward, argument
 * errors, backward through rc_backward against finite differences, parameters moved into a
 * flat buffer (rc_params_pack) computing the same, and every buffer freed. */
#include <stdlib.h>
#include <string.h>

#include "../../runtime/nn.h"
#include "../../runtime/ops.h"
#include "../../runtime/rnn.h"
#include "test.h"

static double sig(double x) {
  return 1.0 / (1.0 + exp(-x));
}

/* Naive LSTM (gate blocks i, f, g, o) over x [T, B, I] with lengths; y [T, B, H], h, c [B, H]. */
static void ref_lstm(const float *Wx, const float *Wh, const float *b, const float *x, int64_t T,
                     int64_t B, int64_t I, int64_t H, const int64_t *len, double *y, double *h,
                     double *c) {
  int64_t P = 4 * H;
  double *z = malloc(sizeof(double) * (size_t)P);
  for (int64_t k = 0; k < B * H; k++) h[k] = c[k] = 0.0;
  for (int64_t t = 0; t < T; t++)
    for (int64_t bb = 0; bb < B; bb++) {
      for (int64_t p = 0; p < P; p++) {
        double s = b[p];
        for (int64_t i = 0; i < I; i++) s += (double)x[(t * B + bb) * I + i] * Wx[i * P + p];
        for (int64_t j = 0; j < H; j++) s += h[bb * H + j] * Wh[j * P + p];
        z[p] = s;
      }
      int active = t < len[bb];
      for (int64_t j = 0; j < H; j++) {
        double ig = sig(z[j]), fg = sig(z[H + j]), gg = tanh(z[2 * H + j]), og = sig(z[3 * H + j]);
        double cn = fg * c[bb * H + j] + ig * gg, hn = og * tanh(cn);
        y[(t * B + bb) * H + j] = active ? hn : 0.0;
        if (active) { /* staged in z: this row's h is still read by the units after j */
          z[j] = hn;
          z[H + j] = cn;
        }
      }
      if (active)
        for (int64_t j = 0; j < H; j++) {
          h[bb * H + j] = z[j];
          c[bb * H + j] = z[H + j];
        }
    }
  free(z);
}

static void fill(rc_tensor *t, int seed, float scale) {
  float *d = rc_data(t);
  for (int64_t k = 0; k < rc_numel(t); k++)
    d[k] = scale * (float)(((k * 7 + seed * 13) % 17) - 8) / 8.0f;
}

/* Max |a - b| over n floats. */
static double maxdiff(const float *a, const float *b, int64_t n) {
  double d = 0;
  for (int64_t k = 0; k < n; k++) d = fmax(d, fabs((double)a[k] - (double)b[k]));
  return d;
}

/* The cell's parameters are movable parameter tensors: packed into one flat buffer behind
 * another parameter (so at an offset), the cell computes the same forward, step and backward
 * (every kernel reads the parameters through the tensors at each call); packing between a
 * forward and its backward is fine too; the gradients land in the flat gradient buffer. */
static void test_moved(rc_ctx *c, const char *kind, int reset_after, rc_tensor *x,
                       const int64_t *len) {
  int64_t I = x->size[2], H = 7;
  rc_cell *g = rc_cell_new(c, kind, I, H, reset_after);
  CHECK(g != NULL);
  int np = rc_cell_n_params(g);
  rc_tensor *ps[1 + RC_CELL_MAX_PARAMS];
  int64_t three = 3;
  ps[0] = rc_param_new(c, 1, &three);
  for (int p = 0; p < np; p++) {
    ps[1 + p] = rc_cell_param(g, p);
    CHECK(rc_is_param(ps[1 + p]));
  }
  int64_t total = 0;
  for (int p = 0; p < np; p++) total += rc_numel(ps[1 + p]);
  float *g0 = malloc(sizeof(float) * (size_t)total);
  /* 1: forward and backward in place */
  rc_tensor *ya = NULL, *sa[2] = {NULL, NULL};
  CHECK(rc_cell_forward(g, x, NULL, len, &ya, sa) == 0);
  rc_tensor *la = rc_reduce(RC_SUM, ya, RC_ALL, 0);
  CHECK(rc_backward(c, &la, (rc_tensor *[]){NULL}, 1, 0) == 0);
  for (int p = 0, off = 0; p < np; p++) {
    memcpy(g0 + off, rc_data(ps[1 + p]->grad), sizeof(float) * (size_t)rc_numel(ps[1 + p]));
    off += (int)rc_numel(ps[1 + p]);
  }
  /* 2: a forward recorded, then the parameters move, then its backward */
  rc_tensor *yb = NULL, *sb[2] = {NULL, NULL};
  CHECK(rc_cell_forward(g, x, NULL, len, &yb, sb) == 0);
  rc_tensor *lb = rc_reduce(RC_SUM, yb, RC_ALL, 0);
  const float *old = rc_data(ps[1]);
  rc_tensor *flat = NULL, *fgrad = NULL;
  CHECK(rc_params_pack(c, ps, 1 + np, 1, &flat, &fgrad) == 0);
  CHECK(flat && fgrad && rc_numel(flat) == 3 + total);
  CHECK(rc_data(ps[1]) != old && rc_data(ps[1]) == rc_data(flat) + 3);
  CHECK(rc_data(ps[1 + np - 1]) + rc_numel(ps[np]) == rc_data(flat) + 3 + total);
  memset(rc_data(fgrad), 0, sizeof(float) * (size_t)(3 + total));
  CHECK(rc_backward(c, &lb, (rc_tensor *[]){NULL}, 1, 0) == 0);
  for (int p = 0; p < np; p++) CHECK(ps[1 + p]->grad->storage == fgrad->storage);
  CHECK(maxdiff(rc_data(fgrad) + 3, g0, total) < 1e-6);
  /* 3: forward and backward after the move: the same numbers */
  memset(rc_data(fgrad), 0, sizeof(float) * (size_t)(3 + total));
  rc_tensor *yc = NULL, *sc[2] = {NULL, NULL};
  CHECK(rc_cell_forward(g, x, NULL, len, &yc, sc) == 0);
  CHECK(maxdiff(rc_data(ya), rc_data(yc), rc_numel(ya)) < 1e-6);
  rc_tensor *lc = rc_reduce(RC_SUM, yc, RC_ALL, 0);
  CHECK(rc_backward(c, &lc, (rc_tensor *[]){NULL}, 1, 0) == 0);
  CHECK(maxdiff(rc_data(fgrad) + 3, g0, total) < 1e-6);
  /* a change through the flat buffer is what the cell computes with */
  c->grad_enabled = 0;
  rc_tensor *x0 = rc_select(x, 0, 0), *y0 = NULL, *s0[2] = {NULL, NULL};
  CHECK(rc_cell_step(g, x0, NULL, &y0, s0) == 0);
  CHECK(maxdiff(rc_data(y0), rc_data(ya), rc_numel(y0)) < 1e-6); /* step 1 = forward row 1 */
  for (int64_t k = 3; k < 3 + total; k++) rc_data(flat)[k] = 0.0f;
  rc_tensor *y1 = NULL, *s1[2] = {NULL, NULL};
  CHECK(rc_cell_step(g, x0, NULL, &y1, s1) == 0);
  float zero[64] = {0};
  CHECK(rc_numel(y1) <= 64 && maxdiff(rc_data(y1), zero, rc_numel(y1)) == 0.0);
  c->grad_enabled = 1;

  rc_tensor *rel[] = {ya, sa[0], sa[1], la,    yb,    sb[0], sb[1], lb,    yc,   sc[0], sc[1],
                      lc, x0,    y0,    s0[0], s0[1], y1,    s1[0], s1[1], flat, fgrad, ps[0]};
  for (size_t k = 0; k < sizeof rel / sizeof rel[0]; k++) rc_release(rel[k]);
  free(g0);
  rc_cell_release(g);
}

int main(void) {
  rc_ctx *c = rc_ctx_new();
  int64_t T = 4, B = 3, I = 5, H = 6;
  rc_cell *cell = rc_cell_new(c, "lstm", I, H, 0);
  CHECK(cell != NULL);
  CHECK(rc_cell_n_params(cell) == 3 && rc_cell_n_states(cell) == 2);
  CHECK(strcmp(rc_cell_param_name(cell, 1), "W_h") == 0);
  CHECK(strcmp(rc_cell_state_name(cell, 1), "c") == 0);
  CHECK(strcmp(rc_cell_kind_name(rc_cell_kind_of("normalized_prototype")),
               "normalized_prototype") == 0);
  CHECK(rc_cell_kind_count() == 7 && rc_cell_kind_name(7) == NULL);
  CHECK(strcmp(rc_cell_kind(cell), "lstm") == 0);
  CHECK(rc_cell_new(c, "nope", I, H, 0) == NULL);
  CHECK(rc_cell_kind_of("nope") == -1);
  /* forget-gate bias starts at 1 */
  CHECK(rc_data(rc_cell_param(cell, 2))[H] == 1.0f && rc_data(rc_cell_param(cell, 2))[0] == 0.0f);
  int64_t xs[3] = {T, B, I};
  rc_tensor *x = rc_empty(c, 3, xs);
  fill(x, 1, 1.0f);
  int64_t len[3] = {4, 1, 3};
  rc_tensor *y = NULL, *st[2] = {NULL, NULL};
  CHECK(rc_cell_forward(cell, x, NULL, len, &y, st) == 0);
  double *ry = malloc(sizeof(double) * (size_t)(T * B * H)), rh[18], rc_[18];
  ref_lstm(rc_data(rc_cell_param(cell, 0)), rc_data(rc_cell_param(cell, 1)),
           rc_data(rc_cell_param(cell, 2)), rc_data(x), T, B, I, H, len, ry, rh, rc_);
  double err = 0;
  for (int64_t k = 0; k < T * B * H; k++) err = fmax(err, fabs(rc_data(y)[k] - ry[k]));
  for (int64_t k = 0; k < B * H; k++) {
    err = fmax(err, fabs(rc_data(st[0])[k] - rh[k]));
    err = fmax(err, fabs(rc_data(st[1])[k] - rc_[k]));
  }
  CHECK(err < 1e-5);
  /* no gradient was needed for x (parameters need grad, so a node exists) */
  CHECK(y->grad_fn != NULL && strcmp(y->grad_fn->name, "LSTMBackward") == 0);

  /* step at batch 1 (matrix-vector path) equals the sequence forward */
  rc_tensor *x1 = rc_narrow(x, 1, 0, 1), *y1 = NULL, *s1[2] = {NULL, NULL};
  c->grad_enabled = 0;
  CHECK(rc_cell_forward(cell, x1, NULL, NULL, &y1, s1) == 0);
  rc_tensor *s[2] = {NULL, NULL};
  double serr = 0;
  for (int64_t t = 0; t < T; t++) {
    rc_tensor *xt = rc_select(x1, 0, t), *yt = NULL, *ns[2] = {NULL, NULL};
    CHECK(rc_cell_step(cell, xt, s, &yt, ns) == 0);
    for (int64_t j = 0; j < H; j++)
      serr = fmax(serr, fabs(rc_data(yt)[j] - rc_data(y1)[t * H + j]));
    CHECK(yt->grad_fn == NULL);
    rc_release(xt);
    rc_release(yt);
    for (int k = 0; k < 2; k++) {
      rc_release(s[k]);
      s[k] = ns[k];
    }
  }
  CHECK(serr < 1e-6);
  for (int k = 0; k < 2; k++) CHECK(fabs(rc_data(s[k])[0] - rc_data(s1[k])[0]) < 1e-6);
  c->grad_enabled = 1;

  /* errors name the function and the shapes, and leave the outputs NULL */
  rc_tensor *bad = NULL, *bs[2] = {NULL, NULL};
  int64_t xb[3] = {T, B, I + 1};
  rc_tensor *xbad = rc_zeros(c, 3, xb);
  CHECK(rc_cell_forward(cell, xbad, NULL, NULL, &bad, bs) == -1);
  CHECK(strstr(c->err, "rnn forward: x must have shape [T, B, 5], got [4, 3, 6]") != NULL);
  CHECK(bad == NULL && bs[0] == NULL);
  int64_t badlen[3] = {4, 5, 0};
  CHECK(rc_cell_forward(cell, x, NULL, badlen, &bad, bs) == -1);
  CHECK(strstr(c->err, "lengths[2] = 5 is outside [0, 4]") != NULL);
  int64_t hs[2] = {B + 1, H};
  rc_tensor *hbad = rc_zeros(c, 2, hs);
  rc_tensor *sbad[2] = {hbad, NULL};
  CHECK(rc_cell_forward(cell, x, sbad, NULL, &bad, bs) == -1);
  CHECK(strstr(c->err, "initial state 1 (h) must have shape [3, 6], got [4, 6]") != NULL);
  CHECK(rc_cell_new(c, "gru", 0, 3, 0) == NULL);
  CHECK(strstr(c->err, "input and hidden must be >= 1") != NULL);

  /* backward: d(sum y + sum c_T)/d W_h[k] against central differences (double sums) */
  rc_tensor *ys = rc_reduce(RC_SUM, y, RC_ALL, 0), *cs = rc_reduce(RC_SUM, st[1], RC_ALL, 0);
  rc_tensor *loss = rc_binary(RC_ADD, ys, cs);
  CHECK(rc_backward(c, &loss, (rc_tensor *[]){NULL}, 1, 0) == 0);
  rc_tensor *Wh = rc_cell_param(cell, 1);
  CHECK(Wh->grad != NULL);
  c->grad_enabled = 0;
  double gerr = 0;
  for (int64_t k = 0; k < rc_numel(Wh); k += 7) {
    float keep = rc_data(Wh)[k];
    double f[2];
    for (int side = 0; side < 2; side++) {
      rc_data(Wh)[k] = keep + (side ? -1e-2f : 1e-2f);
      rc_tensor *yy = NULL, *ss[2] = {NULL, NULL};
      rc_cell_forward(cell, x, NULL, len, &yy, ss);
      double sum = 0;
      for (int64_t q = 0; q < rc_numel(yy); q++) sum += rc_data(yy)[q];
      for (int64_t q = 0; q < rc_numel(ss[1]); q++) sum += rc_data(ss[1])[q];
      f[side] = sum;
      rc_release(yy);
      rc_release(ss[0]);
      rc_release(ss[1]);
    }
    rc_data(Wh)[k] = keep;
    gerr = fmax(gerr, fabs((f[0] - f[1]) / 2e-2 - rc_data(Wh->grad)[k]));
  }
  CHECK(gerr < 2e-3);
  c->grad_enabled = 1;

  test_moved(c, "lstm", 0, x, len);
  test_moved(c, "gru", 1, x, len);
  test_moved(c, "lstm_peephole", 0, x, len);
  test_moved(c, "ln_lstm", 0, x, len);

  rc_release(loss);
  rc_release(ys);
  rc_release(cs);
  rc_release(hbad);
  rc_release(xbad);
  rc_release(x1);
  rc_release(y1);
  for (int k = 0; k < 2; k++) {
    rc_release(s1[k]);
    rc_release(s[k]);
    rc_release(st[k]);
  }
  rc_release(y);
  rc_release(x);
  free(ry);
  rc_cell_release(cell);
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
