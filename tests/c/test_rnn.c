/* The fused cells through the C API (runtime/rnn.h): an LSTM against a naive double-precision
 * reference with mixed lengths, step (batch 1: matrix-vector path) against forward, argument
 * errors, backward through rc_backward against finite differences, and every buffer freed. */
#include <stdlib.h>
#include <string.h>

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

int main(void) {
  rc_ctx *c = rc_ctx_new();
  int64_t T = 4, B = 3, I = 5, H = 6;
  rc_cell *cell = rc_cell_new(c, RC_CELL_LSTM, I, H, 0);
  CHECK(cell != NULL);
  CHECK(rc_cell_n_params(cell) == 3 && rc_cell_n_states(cell) == 2);
  CHECK(strcmp(rc_cell_param_name(cell, 1), "W_h") == 0);
  CHECK(strcmp(rc_cell_state_name(cell, 1), "c") == 0);
  CHECK(rc_cell_kind_of("normalized_prototype") == RC_CELL_NORM_PROTO);
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
  CHECK(rc_cell_new(c, RC_CELL_GRU, 0, 3, 0) == NULL);
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
