/* The vanilla tanh RNN: h' = tanh(x W_x + h W_h + b). One gate block (G = 1). */
#include "rnn_impl.h"

static void fwd(rc_seq *s) {
  int64_t T = s->T, B = s->B, H = s->H;
  const float *Wh = rc_data(s->cell->param[1]);
  rn_pmat pw;
  rn_prepare(s->cell, 0, &pw, Wh, H, 0, H, H, B, T);
  for (int64_t t = 0; t < T; t++) {
    float *pre = s->pre + t * B * H, *y = s->y + t * B * H;
    const float *hp = s->st[0] + t * B * H;
    float *hn = s->st[0] + (t + 1) * B * H;
    rn_wave_fwd_in(s, t);
    rn_rec_pgemm(s, &pw, hp, pre, H, 1.0f);
    if (!s->len) { /* every row active: h' straight into the history (backward reads it
                    * there), one block copy for the output */
      rc_k_tanh(pre, hn, B * H);
      memcpy(y, hn, (size_t)(B * H) * sizeof(float));
    } else {
      rc_k_tanh(pre, pre, B * H);
      for (int64_t b = 0; b < B; b++) {
        size_t row = (size_t)H * sizeof(float);
        if (rn_active(s, t, b)) {
          memcpy(hn + b * H, pre + b * H, row);
          memcpy(y + b * H, pre + b * H, row);
        } else {
          memcpy(hn + b * H, hp + b * H, row);
          memset(y + b * H, 0, row);
        }
      }
    }
    rn_wave_fwd_out(s, t);
  }
}

/* g = (dh + dy) (1 - a^2) on one row, on restrict pointers so that it vectorizes */
RN_CLONES static void grad_row(int64_t H, const float *restrict a, const float *restrict dy,
                               const float *restrict dh, float *restrict g) {
  for (int64_t j = 0; j < H; j++) g[j] = (dh[j] + dy[j]) * (1.0f - a[j] * a[j]);
}

static void bwd(rc_seq *s, rc_bw *w) {
  int64_t T = s->T, B = s->B, H = s->H;
  const float *Wh = rc_data(s->w[1]);
  float *dh = w->d[0], *tmp = w->ws;
  rn_pmat pw; /* W_h^T */
  rn_prepare(s->cell, 2, &pw, Wh, H, 1, H, H, B, T);
  for (int64_t t = T - 1; t >= 0; t--) {
    /* h' = tanh(pre): in pre with lengths, else in the history (see fwd) */
    const float *a = s->len ? s->pre + t * B * H : s->st[0] + (t + 1) * B * H;
    const float *dy = w->dy + t * B * H;
    float *dG = w->dG + t * B * H;
    rn_wave_bwd_in(s, t);
    for (int64_t b = 0; b < B; b++) {
      float *g = dG + b * H;
      if (!rn_active(s, t, b)) {
        memset(g, 0, (size_t)H * sizeof(float));
        continue;
      }
      grad_row(H, a + b * H, dy + b * H, dh + b * H, g);
    }
    rn_step_dh(s, t, &pw, dG, H, tmp, dh);
    rn_wave_bwd_out(s, t);
  }
}

/* dW_h = h_prev^T dG over every step */
static void wgrad(rc_seq *s, rc_bw *w) {
  int64_t H = s->H;
  if (w->dp[1])
    rn_gemm(s->cell->ctx, H, H, s->T * s->B, s->st[0], H, 1, w->dG, H, 0, w->dp[1], H, 1.0f, 0.0f);
}

static int64_t bws(int64_t T, int64_t B, int64_t H) {
  (void)T;
  return rn_r16(B * H);
}

const rn_ops rn_ops_rnn = {
    .name = "rnn",
    .bw_name = "RNNBackward",
    .gates = 1,
    .n_states = 1,
    .has_bias = 1,
    .state_names = {"h"},
    .n_params = 3,
    .param_names = {"W_x", "W_h", "b"},
    .bws_floats = bws,
    .forward = fwd,
    .backward = bwd,
    .wgrad = wgrad,
    .pack_slots = 1 << 0 | 1 << 2,
    .rec_gates = 1,
    .rows_apart = 1,
};
