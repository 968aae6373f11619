/* R2RT's normalized prototype LSTM ("Written Memories"): the prototype LSTM with its state
 * renormalised every step, per example across units.
 * Gate blocks in W_x, W_h and b: i, f, o, g.
 *   i, f, o = s(x W_x + s W_h + b)
 *   g       = tanh(x W_xg + (o s) W_hg + b_g)
 *   u       = f s + i g
 *   s'      = u / sqrt(var(u) + 1)   (var: population variance over the H units of one
 *                                     example; the mean is not subtracted)
 *   output s'
 * Saved: gate values (pre), the s history (state 0), o s per step (aux 0) and
 * 1 / sqrt(var(u) + 1) per step and example (aux 1). */
#include "rnn_impl.h"

static void fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pa, pb; /* W_h[:, i f o] and W_h[:, g] */
  rn_prepare(s->cell, 0, &pa, Wh, P, 0, H, 3 * H, B, T);
  rn_prepare(s->cell, 1, &pb, Wh + 3 * H, P, 0, H, H, B, T);
  for (int64_t t = 0; t < T; t++) {
    rn_wave_fwd_in(s, t);
    float *pre = s->pre + t * B * P, *y = s->y + t * B * H, *os = s->aux[0] + t * B * H;
    float *rs = s->aux[1] + t * B;
    const float *sp = s->st[0] + t * B * H;
    float *sn = s->st[0] + (t + 1) * B * H;
    rn_rec_pgemm(s, &pa, sp, pre, P, 1.0f);
    for (int64_t b = 0; b < B; b++) {
      float *g4 = pre + b * P, *o = g4 + 2 * H;
      rc_k_sigmoid(g4, g4, 3 * H);
      for (int64_t j = 0; j < H; j++) os[b * H + j] = o[j] * sp[b * H + j];
    }
    rn_pgemm(&pb, B, os, H, pre + 3 * H, P, 1.0f);
    for (int64_t b = 0; b < B; b++) {
      float *g4 = pre + b * P, *i = g4, *f = g4 + H, *g = g4 + 3 * H;
      const float *spb = sp + b * H;
      float *snb = sn + b * H, *yb = y + b * H;
      rc_k_tanh(g, g, H);
      if (!rn_active(s, t, b)) {
        memcpy(snb, spb, (size_t)H * sizeof(float));
        memset(yb, 0, (size_t)H * sizeof(float));
        rs[b] = 1.0f;
        continue;
      }
      double sum = 0.0, sq = 0.0;
      for (int64_t j = 0; j < H; j++) {
        float u = f[j] * spb[j] + i[j] * g[j];
        snb[j] = u;
        sum += u;
      }
      double mean = sum / (double)H;
      for (int64_t j = 0; j < H; j++) {
        double d = snb[j] - mean;
        sq += d * d;
      }
      float r = (float)(1.0 / sqrt(sq / (double)H + 1.0));
      rs[b] = r;
      for (int64_t j = 0; j < H; j++) yb[j] = snb[j] = snb[j] * r;
    }
    rn_wave_fwd_out(s, t);
  }
}

static void bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]);
  rn_pmat pg, pifo; /* W_h[:, g]^T and W_h[:, i f o]^T */
  rn_prepare(s->cell, 2, &pg, Wh + 3 * H, P, 1, H, H, B, T);
  rn_prepare(s->cell, 3, &pifo, Wh, P, 1, 3 * H, H, B, T);
  float *ds = w->d[0], *tmp = w->ws;
  for (int64_t t = T - 1; t >= 0; t--) {
    rn_wave_bwd_in(s, t);
    const float *g4all = s->pre + t * B * P, *dy = w->dy + t * B * H, *rs = s->aux[1] + t * B;
    const float *sp = s->st[0] + t * B * H, *sn = s->st[0] + (t + 1) * B * H;
    float *dG = w->dG + t * B * P;
    for (int64_t b = 0; b < B; b++) {
      float *d4 = dG + b * P;
      if (!rn_active(s, t, b)) {
        memset(d4, 0, (size_t)P * sizeof(float));
        continue;
      }
      const float *g4 = g4all + b * P, *i = g4, *f = g4 + H, *g = g4 + 3 * H;
      const float *spb = sp + b * H, *snb = sn + b * H, *dyb = dy + b * H;
      float *dsb = ds + b * H;
      double msum = 0.0, k = 0.0;
      for (int64_t j = 0; j < H; j++) {
        dsb[j] += dyb[j];
        msum += snb[j];
        k += (double)dsb[j] * snb[j];
      }
      float mean = (float)(msum / (double)H), kk = (float)(k / (double)H), r = rs[b];
      for (int64_t j = 0; j < H; j++) {
        float du = r * (dsb[j] - (snb[j] - mean) * kk);
        d4[j] = du * g[j] * i[j] * (1.0f - i[j]);
        d4[H + j] = du * spb[j] * f[j] * (1.0f - f[j]);
        d4[3 * H + j] = du * i[j] * (1.0f - g[j] * g[j]);
        dsb[j] = du * f[j];
      }
    }
    /* d(o s) = dg_pre W_hg^T */
    rn_pgemm(&pg, B, dG + 3 * H, P, tmp, H, 0.0f);
    for (int64_t b = 0; b < B; b++) {
      if (!rn_active(s, t, b)) continue;
      const float *o = g4all + b * P + 2 * H, *spb = sp + b * H, *db = tmp + b * H;
      float *d4 = dG + b * P, *dsb = ds + b * H;
      for (int64_t j = 0; j < H; j++) {
        d4[2 * H + j] = db[j] * spb[j] * o[j] * (1.0f - o[j]);
        dsb[j] += db[j] * o[j];
      }
    }
    rn_pgemm(&pifo, B, dG, P, ds, H, 1.0f);
    rn_wave_bwd_out(s, t);
  }
}

/* dW_h over every step (after the recurrence; the layer wavefront runs it after both threads) */
static void wgrad(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  (void)T, (void)B, (void)H, (void)P;
  if (w->dp[1]) {
    rn_gemm(s->cell->ctx, H, 3 * H, T * B, s->st[0], H, 1, w->dG, P, 0, w->dp[1], P, 1.0f, 0.0f);
    rn_gemm(s->cell->ctx, H, H, T * B, s->aux[0], H, 1, w->dG + 3 * H, P, 0, w->dp[1] + 3 * H, P,
            1.0f, 0.0f);
  }
}

static int64_t bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return rn_r16(B * H);
}

const rn_ops rn_ops_proto = {
    .name = "normalized_prototype",
    .bw_name = "NormalizedPrototypeBackward",
    .gates = 4,
    .n_states = 1,
    .has_bias = 1,
    .state_names = {"s"},
    .n_params = 3,
    .param_names = {"W_x", "W_h", "b"},
    .n_aux = 2,
    .aux = {{0, 1, 0}, {0, 0, 1}},
    .bws_floats = bws,
    .init = rn_init_forget_bias,
    .forward = fwd,
    .backward = bwd,
    .wgrad = wgrad,
    .pack_slots = 0xF,
    .rec_gates = 3,
};
