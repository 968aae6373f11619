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
#include "kernels_math.h"
#include "rnn_impl.h"

#define LN_EPS 1e-5
#define LANES 16 /* partial sums per reduction, so that it vectorizes without reassociation */

/* sum of z [H] over LANES float partial sums (each of H / LANES terms), added up in double */
RN_CLONES static double lane_sum(const float *restrict z, int64_t H) {
  float s[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= H; j += LANES)
    for (int l = 0; l < LANES; l++) s[l] += z[j + l];
  double S = 0.0;
  for (int l = 0; l < LANES; l++) S += s[l];
  for (; j < H; j++) S += z[j];
  return S;
}

/* sum of (z - m)^2, the same way */
RN_CLONES static double lane_sq(const float *restrict z, float m, int64_t H) {
  float s[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= H; j += LANES)
    for (int l = 0; l < LANES; l++) {
      float d = z[j + l] - m;
      s[l] += d * d;
    }
  double S = 0.0;
  for (int l = 0; l < LANES; l++) S += s[l];
  for (; j < H; j++) {
    double d = z[j] - m;
    S += d * d;
  }
  return S;
}

/* The mean of z [H] and r = 1 / sqrt(var z + eps). */
static void ln_stats(const float *z, int64_t H, float *mean, float *r) {
  float m = (float)(lane_sum(z, H) / (double)H);
  *mean = m;
  *r = (float)(1.0 / sqrt(lane_sq(z, m, H) / (double)H + LN_EPS));
}

/* One gate block's normalisation, scale and shift: xh = (z - m) r, z = xh sc + sh + add. */
RN_CLONES static void ln_block(int64_t H, float *restrict z, float *restrict xh, float m, float r,
                               const float *restrict sc, const float *restrict sh, float add) {
  for (int64_t j = 0; j < H; j++) {
    float x = (z[j] - m) * r;
    xh[j] = x;
    z[j] = x * sc[j] + sh[j] + add;
  }
}

/* c' = c f + i g */
RN_CLONES static void ln_cell(int64_t H, const float *restrict ig, const float *restrict fg,
                              const float *restrict gg, const float *restrict cp,
                              float *restrict cn) {
  for (int64_t j = 0; j < H; j++) cn[j] = cp[j] * fg[j] + ig[j] * gg[j];
}

/* The gate pass of one row, normalisation included: z (the four pre-activation blocks)
 * becomes the gate values in place, xh the normalised values, rb[k] 1 / std of block k,
 * cn = c f + i g. Every loop runs over the row while it is in L1. */
static void ln_gates(int64_t H, float *z, float *xh, const float *sc, const float *sh, float *rb,
                     const float *cp, float *cn) {
  for (int k = 0; k < 4; k++) {
    float m;
    ln_stats(z + k * H, H, &m, &rb[k]);
    ln_block(H, z + k * H, xh + k * H, m, rb[k], sc + k * H, sh + k * H,
             k == 1 ? 1.0f : 0.0f); /* sig(f + 1) */
  }
  rc_k_sigmoid(z, z, 2 * H);
  rc_k_tanh(z + 2 * H, z + 2 * H, H);
  rc_k_sigmoid(z + 3 * H, z + 3 * H, H);
  ln_cell(H, z, z + H, z + 2 * H, cp, cn);
}

/* h' = tanh(LN_c(c')) o, saving LN_c's normalised values (ch) and the tanh (tl). */
RN_CLONES static void ln_out(int64_t H, const float *restrict cn, float m, float r,
                             const float *restrict sc, const float *restrict sh,
                             const float *restrict og, float *restrict ch, float *restrict tl,
                             float *restrict hn, float *restrict y) {
  for (int64_t j = 0; j < H; j++) {
    float x = (cn[j] - m) * r;
    ch[j] = x;
    float t = rc_tanhf(x * sc[j] + sh[j]);
    tl[j] = t;
    float h = t * og[j];
    hn[j] = h;
    y[j] = h;
  }
}

/* One step's forward over rows b0 .. b1 - 1 (after the recurrent product). */
typedef struct {
  rc_seq *s;
  int64_t t;
} fwd_step;

static void fwd_rows(void *arg, int64_t b0, int64_t b1) {
  const fwd_step *st = arg;
  rc_seq *s = st->s;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  const float *scale = rc_data(s->cell->param[2]), *shift = rc_data(s->cell->param[3]);
  float *pre = s->pre + t * B * P, *y = s->y + t * B * H;
  float *xh = s->aux[0] + t * B * P, *rs = s->aux[1] + t * B * 5;
  float *ch = s->aux[2] + t * B * H, *tl = s->aux[3] + t * B * H;
  const float *hp = s->st[0] + t * B * H, *cp = s->st[1] + t * B * H;
  float *hn = s->st[0] + (t + 1) * B * H, *cn = s->st[1] + (t + 1) * B * H;
  for (int64_t b = b0; b < b1; b++) {
    float *g4 = pre + b * P, *rb = rs + b * 5, mc;
    float *cnb = cn + b * H, *hnb = hn + b * H, *yb = y + b * H;
    ln_gates(H, g4, xh + b * P, scale, shift, rb, cp + b * H, cnb);
    ln_stats(cnb, H, &mc, &rb[4]);
    ln_out(H, cnb, mc, rb[4], scale + 4 * H, shift + 4 * H, g4 + 3 * H, ch + b * H, tl + b * H, hnb,
           yb);
    if (!rn_active(s, t, b)) {
      memcpy(cnb, cp + b * H, (size_t)H * sizeof(float));
      memcpy(hnb, hp + b * H, (size_t)H * sizeof(float));
      memset(yb, 0, (size_t)H * sizeof(float));
    }
  }
}

static void fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pw;
  rn_prepare(s->cell, 0, &pw, Wh, P, 0, H, P, B, T);
  rc_team *rows = rn_rows_team(&pw, B, H);
  fwd_step st = {s, 0};
  for (int64_t t = 0; t < T; t++) {
    rn_wave_fwd_in(s, t);
    rn_rec_pgemm(s, &pw, s->st[0] + t * B * H, s->pre + t * B * P, P, 1.0f);
    st.t = t;
    rc_team_split(rows, fwd_rows, &st, B, B / 2);
    rn_wave_fwd_out(s, t);
  }
}

/* Gradient through LN, given dy (of the LN output) in dz, xh, scale and r: dz becomes the
 * gradient of LN's input; dscale and dshift are accumulated when not NULL. */
RN_CLONES static void ln_back(float *restrict dz, const float *restrict xh,
                              const float *restrict scale, float r, int64_t H,
                              float *restrict dscale, float *restrict dshift) {
  float s1[LANES] = {0}, s2[LANES] = {0};
  int64_t j = 0;
  /* the parameters' gradients in the same pass as the sums (each element's sum over the
   * batch keeps its order: the same bits as separate passes) */
  if (dscale && dshift) {
    for (; j + LANES <= H; j += LANES)
      for (int l = 0; l < LANES; l++) {
        float d = dz[j + l], x = xh[j + l], dxh = d * scale[j + l];
        s1[l] += dxh;
        s2[l] += dxh * x;
        dscale[j + l] += d * x;
        dshift[j + l] += d;
      }
  } else {
    for (; j + LANES <= H; j += LANES)
      for (int l = 0; l < LANES; l++) {
        float dxh = dz[j + l] * scale[j + l];
        s1[l] += dxh;
        s2[l] += dxh * xh[j + l];
      }
  }
  int64_t tail = j;
  double m1 = 0.0, m2 = 0.0;
  for (int l = 0; l < LANES; l++) {
    m1 += s1[l];
    m2 += s2[l];
  }
  for (; j < H; j++) {
    float dxh = dz[j] * scale[j];
    m1 += dxh;
    m2 += (double)dxh * xh[j];
  }
  int64_t from = dscale && dshift ? tail : 0; /* what the first pass did not take */
  if (dscale)
    for (j = from; j < H; j++) dscale[j] += dz[j] * xh[j];
  if (dshift)
    for (j = from; j < H; j++) dshift[j] += dz[j];
  float a = (float)(m1 / (double)H), c = (float)(m2 / (double)H);
  for (j = 0; j < H; j++) dz[j] = r * (dz[j] * scale[j] - a - xh[j] * c);
}

/* Through h' = tanh(LN_c(c')) o: o's LN output gradient into dO, LN_c's output gradient into
 * row. */
RN_CLONES static void bwd_out(int64_t H, const float *restrict dh, const float *restrict dy,
                              const float *restrict tl, const float *restrict og,
                              float *restrict dO, float *restrict row) {
  for (int64_t j = 0; j < H; j++) {
    float gh = dh[j] + dy[j], o = og[j], t = tl[j];
    dO[j] = gh * t * o * (1.0f - o);
    row[j] = gh * o * (1.0f - t * t);
  }
}

/* Through c' = c f + i g: the i, f, g LN outputs' gradients and dc (in place) for c. */
RN_CLONES static void bwd_cell(int64_t H, const float *restrict row, const float *restrict ig,
                               const float *restrict fg, const float *restrict gg,
                               const float *restrict cp, float *restrict dc, float *restrict di,
                               float *restrict df, float *restrict dg) {
  for (int64_t j = 0; j < H; j++) {
    float dct = dc[j] + row[j], i = ig[j], f = fg[j], g = gg[j];
    di[j] = dct * g * i * (1.0f - i);
    df[j] = dct * cp[j] * f * (1.0f - f);
    dg[j] = dct * i * (1.0f - g * g);
    dc[j] = dct * f;
  }
}

/* Rows run on the calling thread, in order: they sum ln_scale's and ln_shift's gradients over
 * the batch. */
static void bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]), *scale = rc_data(s->w[2]);
  rn_pmat pw; /* W_h^T */
  rn_prepare(s->cell, 2, &pw, Wh, P, 1, P, H, B, T);
  float *dscale = w->dp[2], *dshift = w->dp[3];
  float *dh = w->d[0], *dc = w->d[1], *tmp = w->ws, *row = w->ws + rn_r16(B * H);
  for (int64_t t = T - 1; t >= 0; t--) {
    rn_wave_bwd_in(s, t);
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
      const float *g4 = g4all + b * P, *rb = rs + b * 5;
      bwd_out(H, dh + b * H, dy + b * H, tl + b * H, g4 + 3 * H, d4 + 3 * H, row);
      ln_back(row, ch + b * H, scale + 4 * H, rb[4], H, dscale ? dscale + 4 * H : NULL,
              dshift ? dshift + 4 * H : NULL);
      bwd_cell(H, row, g4, g4 + H, g4 + 2 * H, cp + b * H, dc + b * H, d4, d4 + H, d4 + 2 * H);
      /* through each gate's LN to its pre-activation */
      for (int k = 0; k < 4; k++)
        ln_back(d4 + k * H, xh + b * P + k * H, scale + k * H, rb[k], H,
                dscale ? dscale + k * H : NULL, dshift ? dshift + k * H : NULL);
    }
    rn_step_dh(s, t, &pw, dG, P, tmp, dh);
    rn_wave_bwd_out(s, t);
  }
}

/* dW_h over every step (after the recurrence; the layer wavefront runs it after both threads) */
static void wgrad(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  (void)T, (void)B, (void)H, (void)P;
  if (w->dp[1])
    rn_gemm(s->cell->ctx, H, P, T * B, s->st[0], H, 1, w->dG, P, 0, w->dp[1], P, 1.0f, 0.0f);
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
    .wgrad = wgrad,
    .pack_slots = 1 << 0 | 1 << 2,
    .rec_gates = 4,
};
