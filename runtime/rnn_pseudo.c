/* R2RT's pseudo LSTM ("Written Memories"): the state s is squashed whenever it is read.
 * Gate blocks in W_x, W_h and b: i, f, o, g.
 *   i, f, o = s(x W_x + tanh(s) W_h + b)
 *   g       = tanh(x W_xg + (o tanh(s)) W_hg + b_g)
 *   s'      = f s + i g,      output tanh(s')
 * Saved: gate values (pre), the s history (state 0), tanh(s) history (aux 0, T+1 rows) and
 * o tanh(s) per step (aux 1). Two GEMMs per step (o is needed before the candidate's). */
#include "rnn_impl.h"

static void fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pa, pb; /* W_h[:, i f o] and W_h[:, g] */
  rn_prepare(s->cell, 0, &pa, Wh, P, 0, H, 3 * H, B, T);
  rn_prepare(s->cell, 1, &pb, Wh + 3 * H, P, 0, H, H, B, T);
  memcpy(s->aux[0], s->st[0], (size_t)(B * H) * sizeof(float));
  rc_k_tanh(s->aux[0], s->aux[0], B * H);
  for (int64_t t = 0; t < T; t++) {
    rn_wave_fwd_in(s, t);
    float *pre = s->pre + t * B * P, *y = s->y + t * B * H, *ots = s->aux[1] + t * B * H;
    const float *sp = s->st[0] + t * B * H, *tsp = s->aux[0] + t * B * H;
    float *sn = s->st[0] + (t + 1) * B * H, *tsn = s->aux[0] + (t + 1) * B * H;
    rn_pgemm(&pa, B, tsp, H, pre, P, 1.0f);
    for (int64_t b = 0; b < B; b++) {
      float *g4 = pre + b * P, *o = g4 + 2 * H;
      rc_k_sigmoid(g4, g4, 3 * H);
      for (int64_t j = 0; j < H; j++) ots[b * H + j] = o[j] * tsp[b * H + j];
    }
    rn_pgemm(&pb, B, ots, H, pre + 3 * H, P, 1.0f);
    for (int64_t b = 0; b < B; b++) {
      float *g4 = pre + b * P, *i = g4, *f = g4 + H, *g = g4 + 3 * H;
      const float *spb = sp + b * H, *tspb = tsp + b * H;
      float *snb = sn + b * H, *tsnb = tsn + b * H, *yb = y + b * H;
      rc_k_tanh(g, g, H);
      if (rn_active(s, t, b)) {
        for (int64_t j = 0; j < H; j++) snb[j] = tsnb[j] = f[j] * spb[j] + i[j] * g[j];
        rc_k_tanh(tsnb, tsnb, H);
        memcpy(yb, tsnb, (size_t)H * sizeof(float));
      } else {
        memcpy(snb, spb, (size_t)H * sizeof(float));
        memcpy(tsnb, tspb, (size_t)H * sizeof(float));
        memset(yb, 0, (size_t)H * sizeof(float));
      }
    }
    rn_wave_fwd_out(s, t);
  }
}

/* Two running gradients: ds (of s, direct: the f s path and the final state) and dphi (of
 * tanh(s): outputs and the next step's reads). */
static void bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]);
  rn_pmat pg, pifo; /* W_h[:, g]^T and W_h[:, i f o]^T */
  rn_prepare(s->cell, 2, &pg, Wh + 3 * H, P, 1, H, H, B, T);
  rn_prepare(s->cell, 3, &pifo, Wh, P, 1, 3 * H, H, B, T);
  float *ds = w->d[0], *dphi = w->ws, *tmp = w->ws + rn_r16(B * H);
  memset(dphi, 0, (size_t)(B * H) * sizeof(float));
  for (int64_t t = T - 1; t >= 0; t--) {
    rn_wave_bwd_in(s, t);
    const float *g4all = s->pre + t * B * P, *dy = w->dy + t * B * H;
    const float *sp = s->st[0] + t * B * H, *tsp = s->aux[0] + t * B * H;
    const float *tsn = s->aux[0] + (t + 1) * B * H;
    float *dG = w->dG + t * B * P;
    for (int64_t b = 0; b < B; b++) {
      float *d4 = dG + b * P;
      if (!rn_active(s, t, b)) {
        memset(d4, 0, (size_t)P * sizeof(float));
        continue;
      }
      const float *g4 = g4all + b * P, *i = g4, *f = g4 + H, *g = g4 + 3 * H;
      const float *spb = sp + b * H, *tsnb = tsn + b * H, *dyb = dy + b * H;
      float *dsb = ds + b * H, *dpb = dphi + b * H;
      for (int64_t j = 0; j < H; j++) {
        float dst = dsb[j] + (dpb[j] + dyb[j]) * (1.0f - tsnb[j] * tsnb[j]);
        d4[j] = dst * g[j] * i[j] * (1.0f - i[j]);
        d4[H + j] = dst * spb[j] * f[j] * (1.0f - f[j]);
        d4[3 * H + j] = dst * i[j] * (1.0f - g[j] * g[j]);
        dsb[j] = dst * f[j];
      }
    }
    /* d(o tanh(s)) = dg_pre W_hg^T */
    rn_pgemm(&pg, B, dG + 3 * H, P, tmp, H, 0.0f);
    for (int64_t b = 0; b < B; b++) {
      if (!rn_active(s, t, b)) continue;
      const float *o = g4all + b * P + 2 * H, *tspb = tsp + b * H, *db = tmp + b * H;
      float *d4 = dG + b * P, *dpb = dphi + b * H;
      for (int64_t j = 0; j < H; j++) {
        d4[2 * H + j] = db[j] * tspb[j] * o[j] * (1.0f - o[j]);
        dpb[j] = db[j] * o[j];
      }
    }
    rn_pgemm(&pifo, B, dG, P, dphi, H, 1.0f);
    rn_wave_bwd_out(s, t);
  }
  const float *ts0 = s->aux[0];
  for (int64_t k = 0; k < B * H; k++) ds[k] += dphi[k] * (1.0f - ts0[k] * ts0[k]);
}

/* dW_h over every step (after the recurrence; the layer wavefront runs it after both threads) */
static void wgrad(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  (void)T, (void)B, (void)H, (void)P;
  if (w->dp[1]) {
    rn_gemm(s->cell->ctx, H, 3 * H, T * B, s->aux[0], H, 1, w->dG, P, 0, w->dp[1], P, 1.0f, 0.0f);
    rn_gemm(s->cell->ctx, H, H, T * B, s->aux[1], H, 1, w->dG + 3 * H, P, 0, w->dp[1] + 3 * H, P,
            1.0f, 0.0f);
  }
}

static int64_t bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return 2 * rn_r16(B * H);
}

const rn_ops rn_ops_pseudo = {
    .name = "pseudo_lstm",
    .bw_name = "PseudoLSTMBackward",
    .gates = 4,
    .n_states = 1,
    .has_bias = 1,
    .state_names = {"s"},
    .n_params = 3,
    .param_names = {"W_x", "W_h", "b"},
    .n_aux = 2,
    .aux = {{1, 1, 0}, {0, 1, 0}},
    .bws_floats = bws,
    .init = rn_init_forget_bias,
    .forward = fwd,
    .backward = bwd,
    .wgrad = wgrad,
    .pack_slots = 0xF,
};
