/* LSTM and LSTM with diagonal peepholes. Gate blocks in W_x, W_h and b: i, f, g, o
 * (PyTorch's order; g is the candidate, TF's j).
 *   lstm:      i = s(.), f = s(.), g = tanh(.), o = s(.), c' = f c + i g, h' = o tanh(c')
 *   peephole:  i = s(. + p_i c), f = s(. + p_f c), o = s(. + p_o c') (Gers & Schmidhuber)
 * Saved per step: the gate values (in pre), c and h histories, tanh(c') (aux 0). */
#include "rnn_impl.h"

/* One step's gate pass over rows b0 .. b1 - 1 (after the recurrent product). */
typedef struct {
  rc_seq *s;
  int64_t t;
  const float *pi, *pf, *po; /* peepholes or NULL */
} fwd_step;

static inline void fwd_rows_k(const fwd_step *st, int64_t b0, int64_t b1, int peep) {
  rc_seq *s = st->s;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  const float *pi = st->pi, *pf = st->pf, *po = st->po;
  float *pre = s->pre + t * B * P, *y = s->y + t * B * H, *tcs = s->aux[0] + t * B * H;
  const float *hp = s->st[0] + t * B * H, *cp = s->st[1] + t * B * H;
  float *hn = s->st[0] + (t + 1) * B * H, *cn = s->st[1] + (t + 1) * B * H;
  for (int64_t b = b0; b < b1; b++) {
    float *g4 = pre + b * P, *ig = g4, *fg = g4 + H, *gg = g4 + 2 * H, *og = g4 + 3 * H;
    const float *cpb = cp + b * H, *hpb = hp + b * H;
    float *tc = tcs + b * H, *cnb = cn + b * H, *hnb = hn + b * H, *yb = y + b * H;
    if (peep)
      for (int64_t j = 0; j < H; j++) {
        ig[j] += pi[j] * cpb[j];
        fg[j] += pf[j] * cpb[j];
      }
    rc_k_sigmoid(ig, ig, 2 * H);
    rc_k_tanh(gg, gg, H);
    /* c' into cn (fixed below for a finished sequence) */
    for (int64_t j = 0; j < H; j++) cnb[j] = fg[j] * cpb[j] + ig[j] * gg[j];
    if (peep)
      for (int64_t j = 0; j < H; j++) og[j] += po[j] * cnb[j];
    rc_k_sigmoid(og, og, H);
    memcpy(tc, cnb, (size_t)H * sizeof(float));
    rc_k_tanh(tc, tc, H);
    if (rn_active(s, t, b)) {
      for (int64_t j = 0; j < H; j++) hnb[j] = yb[j] = og[j] * tc[j];
    } else {
      memcpy(cnb, cpb, (size_t)H * sizeof(float));
      memcpy(hnb, hpb, (size_t)H * sizeof(float));
      memset(yb, 0, (size_t)H * sizeof(float));
    }
  }
}

static void fwd_rows(void *arg, int64_t b0, int64_t b1) {
  fwd_rows_k(arg, b0, b1, 0);
}
static void fwd_rows_peep(void *arg, int64_t b0, int64_t b1) {
  fwd_rows_k(arg, b0, b1, 1);
}

static void fwd_common(rc_seq *s, int peep) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  fwd_step st = {s, 0, NULL, NULL, NULL};
  if (peep) {
    st.pi = rc_data(s->cell->param[3]);
    st.pf = rc_data(s->cell->param[4]);
    st.po = rc_data(s->cell->param[5]);
  }
  rn_pmat pw;
  rn_prepare(s->cell, 0, &pw, Wh, P, 0, H, P, B, T);
  /* the rows of the gate pass are shared with the helper thread too */
  rc_team *rows = rn_rows_team(&pw, B, H);
  for (int64_t t = 0; t < T; t++) {
    const float *hp = s->st[0] + t * B * H;
    rn_wave_fwd_in(s, t);
    rn_rec_pgemm(s, &pw, hp, s->pre + t * B * P, P, 1.0f);
    st.t = t;
    rc_team_split(rows, peep ? fwd_rows_peep : fwd_rows, &st, B, B / 2);
    rn_wave_fwd_out(s, t);
  }
}

/* The gradient pass of one row of a plain LSTM (no peepholes): branch-free and on restrict
 * pointers so that it vectorizes (this file is built with -O3; see the Makefile). */
RN_CLONES static void lstm_bwd_row(int64_t H, const float *restrict ig, const float *restrict fg,
                                   const float *restrict gg, const float *restrict og,
                                   const float *restrict tc, const float *restrict cpb,
                                   const float *restrict dyb, const float *restrict dhb,
                                   float *restrict dcb, float *restrict di, float *restrict df,
                                   float *restrict dg, float *restrict dO) {
  for (int64_t j = 0; j < H; j++) {
    float gh = dhb[j] + dyb[j];
    float o = og[j], i = ig[j], f = fg[j], g = gg[j], tcj = tc[j];
    float dpo_ = gh * tcj * o * (1.0f - o);
    float dct = dcb[j] + gh * o * (1.0f - tcj * tcj);
    di[j] = dct * g * i * (1.0f - i);
    df[j] = dct * cpb[j] * f * (1.0f - f);
    dg[j] = dct * i * (1.0f - g * g);
    dO[j] = dpo_;
    dcb[j] = dct * f;
  }
}

/* One step of backward (no peepholes) over rows b0 .. b1 - 1: dG rows and dc. */
typedef struct {
  rc_seq *s;
  rc_bw *w;
  int64_t t;
} bwd_step;

static void bwd_rows(void *arg, int64_t b0, int64_t b1) {
  const bwd_step *st = arg;
  rc_seq *s = st->s;
  rc_bw *w = st->w;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  const float *g4all = s->pre + t * B * P, *dy = w->dy + t * B * H;
  const float *tcs = s->aux[0] + t * B * H, *cp = s->st[1] + t * B * H;
  float *dG = w->dG + t * B * P, *dh = w->d[0], *dc = w->d[1];
  for (int64_t b = b0; b < b1; b++) {
    float *d4 = dG + b * P;
    if (!rn_active(s, t, b)) {
      memset(d4, 0, (size_t)P * sizeof(float));
      continue;
    }
    const float *g4 = g4all + b * P;
    lstm_bwd_row(H, g4, g4 + H, g4 + 2 * H, g4 + 3 * H, tcs + b * H, cp + b * H, dy + b * H,
                 dh + b * H, dc + b * H, d4, d4 + H, d4 + 2 * H, d4 + 3 * H);
  }
}

/* the peephole rows accumulate the peepholes' gradients over the batch: one thread, in order */
static void bwd_peep_rows(rc_seq *s, rc_bw *w, int64_t t) {
  int64_t B = s->B, H = s->H, P = s->P;
  const float *pi = rc_data(s->w[3]), *pf = rc_data(s->w[4]), *po = rc_data(s->w[5]);
  float *dpi = w->dp[3], *dpf = w->dp[4], *dpo = w->dp[5];
  float *dh = w->d[0], *dc = w->d[1];
  const float *g4all = s->pre + t * B * P, *dy = w->dy + t * B * H;
  const float *tcs = s->aux[0] + t * B * H, *cp = s->st[1] + t * B * H;
  const float *cn = s->st[1] + (t + 1) * B * H;
  float *dG = w->dG + t * B * P;
  for (int64_t b = 0; b < B; b++) {
    float *d4 = dG + b * P;
    if (!rn_active(s, t, b)) {
      memset(d4, 0, (size_t)P * sizeof(float));
      continue;
    }
    const float *g4 = g4all + b * P, *ig = g4, *fg = g4 + H, *gg = g4 + 2 * H, *og = g4 + 3 * H;
    const float *tc = tcs + b * H, *cpb = cp + b * H, *cnb = cn + b * H, *dyb = dy + b * H;
    float *dhb = dh + b * H, *dcb = dc + b * H;
    float *di = d4, *df = d4 + H, *dg = d4 + 2 * H, *dO = d4 + 3 * H;
    for (int64_t j = 0; j < H; j++) {
      float gh = dhb[j] + dyb[j];
      float o = og[j], i = ig[j], f = fg[j], g = gg[j], tcj = tc[j];
      float dpo_ = gh * tcj * o * (1.0f - o);
      float dct = dcb[j] + gh * o * (1.0f - tcj * tcj);
      dct += dpo_ * po[j];
      float dpi_ = dct * g * i * (1.0f - i);
      float dpf_ = dct * cpb[j] * f * (1.0f - f);
      di[j] = dpi_;
      df[j] = dpf_;
      dg[j] = dct * i * (1.0f - g * g);
      dO[j] = dpo_;
      float dcp = dct * f;
      dcp += dpi_ * pi[j] + dpf_ * pf[j];
      if (dpi) dpi[j] += dpi_ * cpb[j];
      if (dpf) dpf[j] += dpf_ * cpb[j];
      if (dpo) dpo[j] += dpo_ * cnb[j];
      dcb[j] = dcp;
    }
  }
}

static void bwd_common(rc_seq *s, rc_bw *w, int peep) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]);
  float *dh = w->d[0], *tmp = w->ws;
  rn_pmat pw; /* op = W_h^T [P, H] */
  rn_prepare(s->cell, 2, &pw, Wh, P, 1, P, H, B, T);
  rc_team *rows = rn_rows_team(&pw, B, H);
  bwd_step st = {s, w, 0};
  for (int64_t t = T - 1; t >= 0; t--) {
    rn_wave_bwd_in(s, t);
    if (peep) {
      bwd_peep_rows(s, w, t);
    } else {
      st.t = t;
      rc_team_split(rows, bwd_rows, &st, B, B / 2);
    }
    rn_step_dh(s, t, &pw, w->dG + t * B * P, P, tmp, dh);
    rn_wave_bwd_out(s, t);
  }
}

/* dW_h = h_prev^T dG over every step */
static void wgrad(rc_seq *s, rc_bw *w) {
  if (w->dp[1])
    rn_gemm(s->cell->ctx, s->H, s->P, s->T * s->B, s->st[0], s->H, 1, w->dG, s->P, 0, w->dp[1],
            s->P, 1.0f, 0.0f);
}

static void fwd_lstm(rc_seq *s) {
  fwd_common(s, 0);
}
static void bwd_lstm(rc_seq *s, rc_bw *w) {
  bwd_common(s, w, 0);
}
static void fwd_peep(rc_seq *s) {
  fwd_common(s, 1);
}
static void bwd_peep(rc_seq *s, rc_bw *w) {
  bwd_common(s, w, 1);
}

static int64_t bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return rn_r16(B * H);
}

static int peep_shape(int k, int64_t H, int64_t *size) {
  (void)k;
  size[0] = H;
  return 1;
}

const rn_ops rn_ops_lstm = {
    .name = "lstm",
    .bw_name = "LSTMBackward",
    .gates = 4,
    .n_states = 2,
    .has_bias = 1,
    .state_names = {"h", "c"},
    .n_params = 3,
    .param_names = {"W_x", "W_h", "b"},
    .n_aux = 1,
    .aux = {{0, 1, 0}},
    .bws_floats = bws,
    .init = rn_init_forget_bias,
    .forward = fwd_lstm,
    .backward = bwd_lstm,
    .wgrad = wgrad,
    .pack_slots = 1 << 0 | 1 << 2,
    .rec_gates = 4,
    .rows_apart = 1,
};

const rn_ops rn_ops_peephole = {
    .name = "lstm_peephole",
    .bw_name = "LSTMPeepholeBackward",
    .gates = 4,
    .n_states = 2,
    .has_bias = 1,
    .state_names = {"h", "c"},
    .n_params = 6,
    .param_names = {"W_x", "W_h", "b", "p_i", "p_f", "p_o"},
    .n_aux = 1,
    .aux = {{0, 1, 0}},
    .bws_floats = bws,
    .param_shape = peep_shape,
    .init = rn_init_forget_bias,
    .forward = fwd_peep,
    .backward = bwd_peep,
    .wgrad = wgrad,
    .pack_slots = 1 << 0 | 1 << 2,
    .rec_gates = 4,
};
