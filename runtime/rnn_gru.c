/* GRU. Gate blocks in W_x, W_h and b: r, z, n (PyTorch's order).
 *   TF / R2RT form:   r = s(.), z = s(.), n = tanh(x W_n + (r h) W_hn + b_n)
 *   reset_after form: n = tanh(x W_n + b_n + r (h W_hn + b_hn))      (PyTorch, cuDNN)
 *   both:             h' = z h + (1 - z) n
 * The TF form needs r before its candidate's recurrent product, so each step has two GEMMs
 * (h W_h[:, r z] and (r h) W_h[:, n]); the reset_after form has one. */
#include "rnn_impl.h"

/* The row passes of one step over rows b0 .. b1 - 1 (each after a recurrent product). */
typedef struct {
  rc_seq *s;
  rc_bw *w;
  int64_t t;
  const float *bhn;
} step;

/* h' = z h + (1 - z) n on one row (also the row's output) */
RN_CLONES static void blend_row(int64_t H, const float *restrict z, const float *restrict n,
                                const float *restrict hp, float *restrict hn, float *restrict y) {
  for (int64_t j = 0; j < H; j++) hn[j] = y[j] = z[j] * hp[j] + (1.0f - z[j]) * n[j];
}

/* forward, after h W_h[:, r z]: r, z and r h */
static void fwd_rows_rz(void *arg, int64_t b0, int64_t b1) {
  const step *st = arg;
  rc_seq *s = st->s;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  float *pre = s->pre + t * B * P, *rh = s->aux[0] + t * B * H;
  const float *hp = s->st[0] + t * B * H;
  for (int64_t b = b0; b < b1; b++) {
    float *r = pre + b * P;
    rc_k_sigmoid(r, r, 2 * H);
    for (int64_t j = 0; j < H; j++) rh[b * H + j] = r[j] * hp[b * H + j];
  }
}

/* forward, after (r h) W_h[:, n]: n and h' */
static void fwd_rows_n(void *arg, int64_t b0, int64_t b1) {
  const step *st = arg;
  rc_seq *s = st->s;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  float *pre = s->pre + t * B * P, *y = s->y + t * B * H;
  const float *hp = s->st[0] + t * B * H;
  float *hn = s->st[0] + (t + 1) * B * H;
  for (int64_t b = b0; b < b1; b++) {
    float *z = pre + b * P + H, *n = pre + b * P + 2 * H;
    const float *hpb = hp + b * H;
    float *hnb = hn + b * H, *yb = y + b * H;
    rc_k_tanh(n, n, H);
    if (rn_active(s, t, b)) {
      blend_row(H, z, n, hpb, hnb, yb);
    } else {
      memcpy(hnb, hpb, (size_t)H * sizeof(float));
      memset(yb, 0, (size_t)H * sizeof(float));
    }
  }
}

static void fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pa, pb; /* W_h[:, r z] and W_h[:, n] */
  rn_prepare(s->cell, 0, &pa, Wh, P, 0, H, 2 * H, B, T);
  rn_prepare(s->cell, 1, &pb, Wh + 2 * H, P, 0, H, H, B, T);
  rc_team *rows = rn_rows_team(&pa, B, H);
  step st = {s, NULL, 0, NULL};
  for (int64_t t = 0; t < T; t++) {
    float *pre = s->pre + t * B * P, *rh = s->aux[0] + t * B * H;
    const float *hp = s->st[0] + t * B * H;
    st.t = t;
    rn_wave_fwd_in(s, t);
    rn_rec_pgemm(s, &pa, hp, pre, P, 1.0f);
    rc_team_split(rows, fwd_rows_rz, &st, B, B / 2);
    rn_pgemm(&pb, B, rh, H, pre + 2 * H, P, 1.0f);
    rc_team_split(rows, fwd_rows_n, &st, B, B / 2);
    rn_wave_fwd_out(s, t);
  }
}

/* backward pass 1 on one row: dh <- dh + dy (the total gradient of h'), dz and dn.
 * Branch-free, on restrict pointers, so that it vectorizes (as rnn_lstm.c's row pass). */
RN_CLONES static void zn_row(int64_t H, const float *restrict z, const float *restrict n,
                             const float *restrict hp, const float *restrict dy, float *restrict dh,
                             float *restrict dz, float *restrict dn) {
  for (int64_t j = 0; j < H; j++) {
    float gh = dh[j] + dy[j];
    dh[j] = gh;
    dz[j] = gh * (hp[j] - n[j]) * z[j] * (1.0f - z[j]);
    dn[j] = gh * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
  }
}

/* backward pass 2 on one row, after d(r h): dr and dh's direct part */
RN_CLONES static void r_row(int64_t H, const float *restrict r, const float *restrict z,
                            const float *restrict hp, const float *restrict drh, float *restrict dh,
                            float *restrict dr) {
  for (int64_t j = 0; j < H; j++) {
    dr[j] = drh[j] * hp[j] * r[j] * (1.0f - r[j]);
    dh[j] = dh[j] * z[j] + drh[j] * r[j];
  }
}

static void bwd_rows_zn(void *arg, int64_t b0, int64_t b1) {
  const step *st = arg;
  rc_seq *s = st->s;
  rc_bw *w = st->w;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  const float *g3 = s->pre + t * B * P, *dy = w->dy + t * B * H, *hp = s->st[0] + t * B * H;
  float *dG = w->dG + t * B * P, *dh = w->d[0];
  for (int64_t b = b0; b < b1; b++) {
    float *d3 = dG + b * P;
    if (!rn_active(s, t, b)) {
      memset(d3, 0, (size_t)P * sizeof(float));
      continue;
    }
    const float *g = g3 + b * P;
    zn_row(H, g + H, g + 2 * H, hp + b * H, dy + b * H, dh + b * H, d3 + H, d3 + 2 * H);
  }
}

/* backward pass 2, after d(r h) = dn_pre W_hn^T (in w->ws): dr and dh's direct part */
static void bwd_rows_r(void *arg, int64_t b0, int64_t b1) {
  const step *st = arg;
  rc_seq *s = st->s;
  rc_bw *w = st->w;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  const float *g3 = s->pre + t * B * P, *hp = s->st[0] + t * B * H, *drh = w->ws;
  float *dG = w->dG + t * B * P, *dh = w->d[0];
  for (int64_t b = b0; b < b1; b++) {
    if (!rn_active(s, t, b)) continue;
    const float *g = g3 + b * P;
    r_row(H, g, g + H, hp + b * H, drh + b * H, dh + b * H, dG + b * P);
  }
}

static void bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]);
  float *dh = w->d[0], *drh = w->ws;
  rn_pmat pn, prz; /* W_h[:, n]^T and W_h[:, r z]^T */
  rn_prepare(s->cell, 2, &pn, Wh + 2 * H, P, 1, H, H, B, T);
  rn_prepare(s->cell, 3, &prz, Wh, P, 1, 2 * H, H, B, T);
  rc_team *rows = rn_rows_team(&prz, B, H);
  step st = {s, w, 0, NULL};
  for (int64_t t = T - 1; t >= 0; t--) {
    float *dG = w->dG + t * B * P;
    st.t = t;
    rn_wave_bwd_in(s, t);
    rc_team_split(rows, bwd_rows_zn, &st, B, B / 2);
    rn_pgemm(&pn, B, dG + 2 * H, P, drh, H, 0.0f);
    rc_team_split(rows, bwd_rows_r, &st, B, B / 2);
    rn_pgemm(&prz, B, dG, P, dh, H, 1.0f);
    rn_wave_bwd_out(s, t);
  }
}

/* dW_h: [W_hr W_hz] from h_prev, W_hn from r h */
static void wgrad(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  if (w->dp[1]) {
    rn_gemm(s->cell->ctx, H, 2 * H, T * B, s->st[0], H, 1, w->dG, P, 0, w->dp[1], P, 1.0f, 0.0f);
    rn_gemm(s->cell->ctx, H, H, T * B, s->aux[0], H, 1, w->dG + 2 * H, P, 0, w->dp[1] + 2 * H, P,
            1.0f, 0.0f);
  }
}

/* reset_after, after h W_h (in the forward scratch): r, z, n and h' */
static void fwd_after_rows(void *arg, int64_t b0, int64_t b1) {
  const step *st = arg;
  rc_seq *s = st->s;
  int64_t t = st->t, B = s->B, H = s->H, P = s->P;
  const float *bhn = st->bhn;
  float *pre = s->pre + t * B * P, *y = s->y + t * B * H, *hns = s->aux[0] + t * B * H;
  const float *hp = s->st[0] + t * B * H;
  float *hn = s->st[0] + (t + 1) * B * H, *hu = s->fws;
  for (int64_t b = b0; b < b1; b++) {
    float *r = pre + b * P, *z = r + H, *n = r + 2 * H, *u = hu + b * P, *hnsb = hns + b * H;
    const float *hpb = hp + b * H;
    float *hnb = hn + b * H, *yb = y + b * H;
    for (int64_t j = 0; j < 2 * H; j++) r[j] += u[j];
    rc_k_sigmoid(r, r, 2 * H);
    for (int64_t j = 0; j < H; j++) {
      hnsb[j] = u[2 * H + j] + bhn[j];
      n[j] += r[j] * hnsb[j];
    }
    rc_k_tanh(n, n, H);
    if (rn_active(s, t, b)) {
      blend_row(H, z, n, hpb, hnb, yb);
    } else {
      memcpy(hnb, hpb, (size_t)H * sizeof(float));
      memset(yb, 0, (size_t)H * sizeof(float));
    }
  }
}

/* reset_after: aux 0 holds h W_hn + b_hn per step; forward scratch holds h W_h. */
static void fwd_after(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pw;
  rn_prepare(s->cell, 0, &pw, Wh, P, 0, H, P, B, T);
  rc_team *rows = rn_rows_team(&pw, B, H);
  step st = {s, NULL, 0, rc_data(s->cell->param[3])};
  for (int64_t t = 0; t < T; t++) {
    rn_wave_fwd_in(s, t);
    rn_rec_pgemm(s, &pw, s->st[0] + t * B * H, s->fws, P, 0.0f);
    st.t = t;
    rc_team_split(rows, fwd_after_rows, &st, B, B / 2);
    rn_wave_fwd_out(s, t);
  }
}

/* reset_after, one row: d3 = [dr, dz, dn] (the x side), u3 = [dr, dz, dn r] (the h W_h
 * side), dh <- the part of h's gradient that does not go through W_h */
RN_CLONES static void after_bwd_row(int64_t H, const float *restrict r, const float *restrict z,
                                    const float *restrict n, const float *restrict hp,
                                    const float *restrict hn, const float *restrict dy,
                                    float *restrict dh, float *restrict d3, float *restrict u3) {
  for (int64_t j = 0; j < H; j++) {
    float gh = dh[j] + dy[j];
    float dn = gh * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
    float dz = gh * (hp[j] - n[j]) * z[j] * (1.0f - z[j]);
    float dr = dn * hn[j] * r[j] * (1.0f - r[j]);
    d3[j] = u3[j] = dr;
    d3[H + j] = u3[H + j] = dz;
    d3[2 * H + j] = dn;
    u3[2 * H + j] = dn * r[j];
    dh[j] = gh * z[j];
  }
}

/* dG: gradient of the x side [dr, dz, dn]; dHU (scratch, all steps): of h W_h [dr, dz, dn r]. */
static void bwd_after(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H, P = s->P;
  const float *Wh = rc_data(s->w[1]);
  float *dh = w->d[0], *dHU = w->ws, *dbhn = w->dp[3];
  rn_pmat pw; /* W_h^T */
  rn_prepare(s->cell, 2, &pw, Wh, P, 1, P, H, B, T);
  for (int64_t t = T - 1; t >= 0; t--) {
    const float *g3 = s->pre + t * B * P, *dy = w->dy + t * B * H, *hp = s->st[0] + t * B * H;
    const float *hns = s->aux[0] + t * B * H;
    float *dG = w->dG + t * B * P, *dU = dHU + t * B * P;
    rn_wave_bwd_in(s, t);
    for (int64_t b = 0; b < B; b++) {
      float *d3 = dG + b * P, *u3 = dU + b * P;
      if (!rn_active(s, t, b)) {
        memset(d3, 0, (size_t)P * sizeof(float));
        memset(u3, 0, (size_t)P * sizeof(float));
        continue;
      }
      const float *r = g3 + b * P;
      after_bwd_row(H, r, r + H, r + 2 * H, hp + b * H, hns + b * H, dy + b * H, dh + b * H, d3,
                    u3);
      if (dbhn)
        for (int64_t j = 0; j < H; j++) dbhn[j] += u3[2 * H + j];
    }
    rn_pgemm(&pw, B, dU, P, dh, H, 1.0f);
    rn_wave_bwd_out(s, t);
  }
}

/* dW_h = h_prev^T dHU over every step */
static void wgrad_after(rc_seq *s, rc_bw *w) {
  int64_t H = s->H, P = s->P;
  if (w->dp[1])
    rn_gemm(s->cell->ctx, H, P, s->T * s->B, s->st[0], H, 1, w->ws, P, 0, w->dp[1], P, 1.0f, 0.0f);
}

static int64_t bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return rn_r16(B * H);
}
static int64_t bws_after(int64_t T, int64_t B, int64_t H) {
  return rn_r16(T * B * 3 * H);
}
static int64_t fws_after(int64_t B, int64_t H) {
  return rn_r16(B * 3 * H);
}

static void init(rc_cell *cell) { /* r and z biases 1.0 */
  float *b = rc_data(cell->param[2]);
  for (int64_t j = 0; j < 2 * cell->hidden; j++) b[j] = 1.0f;
  if (cell->reset_after) memset(rc_data(cell->param[3]), 0, (size_t)cell->hidden * sizeof(float));
}

static int bhn_shape(int k, int64_t H, int64_t *size) {
  (void)k;
  size[0] = H;
  return 1;
}

/* reset_after: the PyTorch/cuDNN form, selected through rn_ops_gru.reset_after */
static const rn_ops rn_ops_gru_after = {
    .name = "gru",
    .bw_name = "GRUBackward",
    .gates = 3,
    .n_states = 1,
    .has_bias = 1,
    .state_names = {"h"},
    .n_params = 4,
    .param_names = {"W_x", "W_h", "b", "b_hn"},
    .n_aux = 1,
    .aux = {{0, 1, 0}},
    .fws_floats = fws_after,
    .bws_floats = bws_after,
    .param_shape = bhn_shape,
    .init = init,
    .forward = fwd_after,
    .backward = bwd_after,
    .wgrad = wgrad_after,
    .pack_slots = 1 << 0 | 1 << 2,
    .rec_gates = 3,
};

const rn_ops rn_ops_gru = {
    .name = "gru",
    .bw_name = "GRUBackward",
    .gates = 3,
    .n_states = 1,
    .has_bias = 1,
    .state_names = {"h"},
    .n_params = 3,
    .param_names = {"W_x", "W_h", "b"},
    .n_aux = 1,
    .aux = {{0, 1, 0}},
    .bws_floats = bws,
    .init = init,
    .forward = fwd,
    .backward = bwd,
    .wgrad = wgrad,
    .pack_slots = 0xF,
    .rec_gates = 2,
    .rows_apart = 1,
    .reset_after = &rn_ops_gru_after,
};
