/* RNN II's layer-normalised LSTM (from TF's BasicLSTMCell): no bias on the joint projection,
 * layer norm (eps 1e-5, own scale and shift) on each gate pre-activation and on c' before
 * its tanh. Gate blocks in W_x and W_h: i, f, g, o (g is the post's j); ln_scale and ln_shift
 * are [5, H] with rows i, f, g, o, c.
 *   LN_k(z) = (z - mean z) / sqrt(var z + 1e-5) * scale_k + shift_k   (per example, over H)
 *   i = s(LN_i), f = s(LN_f + 1), g = tanh(LN_g), o = s(LN_o)
 *   c' = c f + i g,   h' = tanh(LN_c(c')) o
 * Saved: gate values (pre), h and c histories, the normalised values before scale/shift for
 * the four gates (aux 0, [T, B, 4H]) and for c' (aux 2), 1 / sqrt(var + eps) for the five
 * (aux 1, [T, B, 5]) and tanh(LN_c(c')) (aux 3). */
#include "rnn_impl.h"

#define LN_EPS 1e-5

/* xh = (z - mean) * r, returns r. */
static float ln_norm(const float *z, float *xh, int64_t H) {
  double sum = 0.0, sq = 0.0;
  for (int64_t j = 0; j < H; j++) sum += z[j];
  double mean = sum / (double)H;
  for (int64_t j = 0; j < H; j++) {
    double d = z[j] - mean;
    sq += d * d;
  }
  float r = (float)(1.0 / sqrt(sq / (double)H + LN_EPS));
  float m = (float)mean;
  for (int64_t j = 0; j < H; j++) xh[j] = (z[j] - m) * r;
  return r;
}

/* Gradient through LN given dy (of the LN output), xh, scale and r: dz (may alias dy), and
 * dscale, dshift accumulated when not NULL. */
static void ln_back(const float *dy, const float *xh, const float *scale, float r, int64_t H,
                    float *dz, float *dscale, float *dshift) {
  double m1 = 0.0, m2 = 0.0;
  for (int64_t j = 0; j < H; j++) {
    float dxh = dy[j] * scale[j];
    m1 += dxh;
    m2 += (double)dxh * xh[j];
    if (dscale) dscale[j] += dy[j] * xh[j];
    if (dshift) dshift[j] += dy[j];
  }
  float a = (float)(m1 / (double)H), c = (float)(m2 / (double)H);
  for (int64_t j = 0; j < H; j++) dz[j] = r * (dy[j] * scale[j] - a - xh[j] * c);
}

static void fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pw;
  rn_prepare(s->cell, 0, &pw, Wh, P, 0, H, P, B, T);
  const float *scale = rc_data(s->cell->param[2]), *shift = rc_data(s->cell->param[3]);
  for (int64_t t = 0; t < T; t++) {
    float *pre = s->pre + t * B * P, *y = s->y + t * B * H;
    float *xh = s->aux[0] + t * B * P, *rs = s->aux[1] + t * B * 5;
    float *ch = s->aux[2] + t * B * H, *tl = s->aux[3] + t * B * H;
    const float *hp = s->st[0] + t * B * H, *cp = s->st[1] + t * B * H;
    float *hn = s->st[0] + (t + 1) * B * H, *cn = s->st[1] + (t + 1) * B * H;
    rn_pgemm(&pw, B, hp, H, pre, P, 1.0f);
    for (int64_t b = 0; b < B; b++) {
      float *g4 = pre + b * P, *xb = xh + b * P, *rb = rs + b * 5;
      for (int k = 0; k < 4; k++) {
        float *z = g4 + k * H, *x = xb + k * H;
        const float *sc = scale + k * H, *sh = shift + k * H;
        rb[k] = ln_norm(z, x, H);
        float add = k == 1 ? 1.0f : 0.0f; /* sig(f + 1) */
        for (int64_t j = 0; j < H; j++) z[j] = x[j] * sc[j] + sh[j] + add;
      }
      float *ig = g4, *fg = g4 + H, *gg = g4 + 2 * H, *og = g4 + 3 * H;
      rc_k_sigmoid(ig, ig, 2 * H);
      rc_k_tanh(gg, gg, H);
      rc_k_sigmoid(og, og, H);
      const float *cpb = cp + b * H, *hpb = hp + b * H;
      float *cnb = cn + b * H, *hnb = hn + b * H, *yb = y + b * H;
      float *chb = ch + b * H, *tlb = tl + b * H;
      for (int64_t j = 0; j < H; j++) cnb[j] = cpb[j] * fg[j] + ig[j] * gg[j];
      rb[4] = ln_norm(cnb, chb, H);
      const float *sc = scale + 4 * H, *sh = shift + 4 * H;
      for (int64_t j = 0; j < H; j++) tlb[j] = chb[j] * sc[j] + sh[j];
      rc_k_tanh(tlb, tlb, H);
      if (rn_active(s, t, b)) {
        for (int64_t j = 0; j < H; j++) hnb[j] = yb[j] = tlb[j] * og[j];
      } else {
        memcpy(cnb, cpb, (size_t)H * sizeof(float));
        memcpy(hnb, hpb, (size_t)H * sizeof(float));
        memset(yb, 0, (size_t)H * sizeof(float));
      }
    }
  }
}

static void bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]), *scale = rc_data(s->w[2]);
  rn_pmat pw; /* W_h^T */
  rn_prepare(s->cell, 2, &pw, Wh, P, 1, P, H, B, T);
  float *dscale = w->dp[2], *dshift = w->dp[3];
  float *dh = w->d[0], *dc = w->d[1], *tmp = w->ws, *row = w->ws + rn_r16(B * H);
  for (int64_t t = T - 1; t >= 0; t--) {
    const float *g4all = s->pre + t * B * P, *dy = w->dy + t * B * H;
    const float *xh = s->aux[0] + t * B * P, *rs = s->aux[1] + t * B * 5;
    const float *ch = s->aux[2] + t * B * H, *tl = s->aux[3] + t * B * H;
    const float *cp = s->st[1] + t * B * H;
    float *dG = w->dG + t * B * P;
    for (int64_t b = 0; b < B; b++) {
      float *d4 = dG + b * P;
      if (!rn_active(s, t, b)) {
        memset(d4, 0, (size_t)P * sizeof(float));
        continue;
      }
      const float *g4 = g4all + b * P, *ig = g4, *fg = g4 + H, *gg = g4 + 2 * H, *og = g4 + 3 * H;
      const float *tlb = tl + b * H, *cpb = cp + b * H, *dyb = dy + b * H, *rb = rs + b * 5;
      float *dhb = dh + b * H, *dcb = dc + b * H;
      /* through h' = tanh(LN_c(c')) o: the LN_c output's gradient into row */
      for (int64_t j = 0; j < H; j++) {
        float gh = dhb[j] + dyb[j];
        d4[3 * H + j] = gh * tlb[j] * og[j] * (1.0f - og[j]); /* of o's LN output */
        row[j] = gh * og[j] * (1.0f - tlb[j] * tlb[j]);
      }
      ln_back(row, ch + b * H, scale + 4 * H, rb[4], H, row, dscale ? dscale + 4 * H : NULL,
              dshift ? dshift + 4 * H : NULL);
      for (int64_t j = 0; j < H; j++) {
        float dct = dcb[j] + row[j];
        d4[j] = dct * gg[j] * ig[j] * (1.0f - ig[j]);
        d4[H + j] = dct * cpb[j] * fg[j] * (1.0f - fg[j]);
        d4[2 * H + j] = dct * ig[j] * (1.0f - gg[j] * gg[j]);
        dcb[j] = dct * fg[j];
      }
      /* through each gate's LN to its pre-activation */
      for (int k = 0; k < 4; k++)
        ln_back(d4 + k * H, xh + b * P + k * H, scale + k * H, rb[k], H, d4 + k * H,
                dscale ? dscale + k * H : NULL, dshift ? dshift + k * H : NULL);
    }
    rn_pgemm(&pw, B, dG, P, tmp, H, 0.0f);
    for (int64_t b = 0; b < B; b++)
      if (rn_active(s, t, b)) memcpy(dh + b * H, tmp + b * H, (size_t)H * sizeof(float));
  }
  if (w->dp[1]) rn_gemm(H, P, T * B, s->st[0], H, 1, w->dG, P, 0, w->dp[1], P, 1.0f, 0.0f);
}

static int64_t bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return rn_r16(B * H) + rn_r16(H);
}

static int ln_shape(int k, int64_t H, int64_t *size) {
  (void)k;
  size[0] = 5;
  size[1] = H;
  return 2;
}

static void init(rc_cell *cell) { /* scales 1, shifts 0 */
  int64_t n = 5 * cell->hidden;
  float *sc = rc_data(cell->param[2]), *sh = rc_data(cell->param[3]);
  for (int64_t j = 0; j < n; j++) {
    sc[j] = 1.0f;
    sh[j] = 0.0f;
  }
}

const rn_ops rn_ops_ln_lstm = {
    .name = "ln_lstm",
    .bw_name = "LNLSTMBackward",
    .gates = 4,
    .n_states = 2,
    .has_bias = 0,
    .state_names = {"h", "c"},
    .n_params = 4,
    .param_names = {"W_x", "W_h", "ln_scale", "ln_shift"},
    .n_aux = 4,
    .aux = {{0, 4, 0}, {0, 0, 5}, {0, 1, 0}, {0, 1, 0}},
    .bws_floats = bws,
    .param_shape = ln_shape,
    .init = init,
    .forward = fwd,
    .backward = bwd,
};
