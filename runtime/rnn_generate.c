/* Generation at batch 1 with a stack of fused cells (see rnn_generate.h). */
#include "rnn_generate.h"

#include <stdlib.h>
#include <string.h>

#include "rnn_impl.h"
#include "sample.h"

/* Below this many multiply-adds per step (cells and readout), generation runs OpenBLAS on one
 * thread. At batch 1 every product is a matrix-vector one (sgemv), which OpenBLAS 0.3.21
 * splits over its threads from 9,216 matrix elements on; handing half of a product of a few
 * microseconds to another thread costs more than it saves: 2 threads ran at 0.35x the speed
 * of 1 for a 2-layer LSTM at H = 128 (0.24M per step), 0.72x at 512 (3.3M), 0.94x at 768
 * (7.3M), 1.02x at 1024 (12.9M), within noise above (bench/README.md, "Sampling threads").
 * RECUR_GENERATE_THREADED_MIN overrides it (comparisons; 0: OpenBLAS decides every product). */
#define RN_GENERATE_THREADED_MIN (1 << 20)

static double threaded_min(void) {
  const char *e = getenv("RECUR_GENERATE_THREADED_MIN");
  char *end = NULL;
  double d = e ? strtod(e, &end) : 0;
  return e && end != e && d >= 0 ? d : (double)RN_GENERATE_THREADED_MIN;
}

int64_t rc_rnn_state_floats(rc_cell *const *cells, int n) {
  int64_t total = 0;
  for (int l = 0; l < n; l++)
    total += (int64_t)rc_cell_n_states(cells[l]) * rc_cell_hidden(cells[l]);
  return total;
}

int rc_rnn_generate(rc_cell *const *cells, int n, rc_tensor *embed, rc_tensor *W_out,
                    rc_tensor *b_out, float *state, const int64_t *prime, int64_t n_prime,
                    int64_t length, double temperature, int64_t top_k, int64_t *out) {
  rc_ctx *c = embed->ctx;
  char s1[128], s2[128];
  if (n < 1) return rc_error(c, "generate: no cells");
  if (embed->ndim != 2)
    return rc_error(c, "generate: the embedding must be [V, E], got %s",
                    rc_shape_str(embed, s1, sizeof s1));
  int64_t V = embed->size[0], E = embed->size[1];
  if (rc_cell_input(cells[0]) != E)
    return rc_error(c, "generate: the embedding has %lld columns but the first cell takes %lld",
                    (long long)E, (long long)rc_cell_input(cells[0]));
  int64_t Hmax = 0;
  for (int l = 0; l < n; l++) {
    if (l > 0 && rc_cell_input(cells[l]) != rc_cell_hidden(cells[l - 1]))
      return rc_error(c, "generate: cell %d takes %lld inputs but cell %d gives %lld", l + 1,
                      (long long)rc_cell_input(cells[l]), l,
                      (long long)rc_cell_hidden(cells[l - 1]));
    if (rc_cell_hidden(cells[l]) > Hmax) Hmax = rc_cell_hidden(cells[l]);
  }
  int64_t H = rc_cell_hidden(cells[n - 1]);
  if (W_out->ndim != 2 || W_out->size[1] != H)
    return rc_error(c, "generate: the readout weight must be [V, %lld], got %s", (long long)H,
                    rc_shape_str(W_out, s1, sizeof s1));
  int64_t Vo = W_out->size[0];
  if (b_out && (b_out->ndim != 1 || b_out->size[0] != Vo))
    return rc_error(c, "generate: the readout bias must be [%lld], got %s", (long long)Vo,
                    rc_shape_str(b_out, s2, sizeof s2));
  if (Vo != V)
    return rc_error(c, "generate: the readout gives %lld classes but the embedding has %lld rows",
                    (long long)Vo, (long long)V);
  if (n_prime < 1) return rc_error(c, "generate: the prime needs at least one id");
  if (length < 0) return rc_error(c, "generate: length must be >= 0, got %lld", (long long)length);
  for (int64_t i = 0; i < n_prime; i++)
    if (prime[i] < 0 || prime[i] >= V)
      return rc_error(c, "generate: prime id %lld is outside 1..%lld", (long long)prime[i] + 1,
                      (long long)V);
  /* the budget sees every step's products before the loop (a long generation is one call) */
  double per_step = (double)V * (double)H;
  for (int l = 0; l < n; l++) per_step += rc_cell_flops(cells[l], 1, 1) / 6.0;
  if (rc_charge(c, "generate", rc_mac_units(per_step * (double)(n_prime - 1 + length)))) return -1;
  rc_tensor *ec = rc_raw_contiguous(embed), *wc = NULL, *bc = NULL;
  float *buf = NULL;
  int rc = -1;
  /* a process-wide setting, restored below (as recur_call does for an embedded runtime) */
  int threads = openblas_get_num_threads();
  int single = threads > 1 && per_step < threaded_min();
  if (single) openblas_set_num_threads(1);
  if (!ec) goto done;
  if (!(wc = rc_raw_contiguous(W_out))) goto done;
  if (b_out && !(bc = rc_raw_contiguous(b_out))) goto done;
  buf = malloc(sizeof(float) * (size_t)(2 * Hmax + V));
  if (!buf) {
    rc_error(c, "generate: out of memory");
    goto done;
  }
  {
    float *ya = buf, *yb = buf + Hmax, *logits = buf + 2 * Hmax;
    const float *E0 = rc_data(ec), *W = rc_data(wc), *b = bc ? rc_data(bc) : NULL;
    float *st[RC_CELL_MAX_STATES];
    int64_t last = prime[0];
    for (int64_t i = 0; i < n_prime - 1 + length; i++) {
      /* one step on `last` */
      const float *x = E0 + last * E;
      float *y = ya;
      float *sp = state;
      for (int l = 0; l < n; l++) {
        int ns = rc_cell_n_states(cells[l]);
        int64_t h = rc_cell_hidden(cells[l]);
        for (int k = 0; k < ns; k++) st[k] = sp + k * h;
        if (rc_cell_step_raw(cells[l], 1, x, st, y)) goto done;
        sp += ns * h;
        x = y;
        y = y == ya ? yb : ya;
      }
      if (i + 1 < n_prime) {
        last = prime[i + 1];
        continue;
      }
      int64_t k = i + 1 - n_prime; /* index of the id being generated */
      if (b) memcpy(logits, b, sizeof(float) * (size_t)V);
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)V, (blasint)H, 1.0f, W, (blasint)H, x, 1,
                  b ? 1.0f : 0.0f, logits, 1);
      if (rc_sample_row(c, logits, V, temperature, top_k, &last)) goto done;
      out[k] = last;
    }
  }
  rc = 0;
done:
  if (single) openblas_set_num_threads(threads);
  free(buf);
  rc_release(ec);
  rc_release(wc);
  rc_release(bc);
  return rc;
}
