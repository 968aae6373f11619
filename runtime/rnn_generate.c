/* Generation at batch 1 with a stack of fused cells (see rnn_generate.h).
 *
 * At batch 1 every product is one row times a weight, and a step is a chain: layer 1, layer
 * 2, ..., the readout, a draw, whose id is the next step's input. What does not wait on the
 * chain is each layer's recurrent product for the next step, h_l W_h, which can start as
 * soon as layer l has finished this step. With a helper thread those products run on it
 * while the caller goes on with the layers above, the readout and the draw: the caller's
 * step is left with the input products (layer 1's is a row of a table, b + E W_x, computed
 * once per call), the cells' elementwise passes, the readout and the draw.
 *
 * A recurrent product is a job of a few chunks of columns that either thread may claim (one
 * atomic counter per layer): the helper claims them as their inputs appear, and the caller
 * claims whatever is left when it needs the product, so a late helper (descheduled, backed
 * off, or none) costs nothing but its share. Every product is rn_vecmat's, whichever thread
 * runs it, and the cells add it as rn_pgemm would (rn_rec_pgemm): 1 and 2 threads, and the
 * batch-1 step the Lua loop takes (rc_cell_step), give the same bits. */
#include "rnn_generate.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "profile.h"
#include "rnn_impl.h"
#include "sample.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define GEN_MAX_LAYERS 64
/* Whether the helper pays (helper_pays) is judged from a step's work in multiply-adds: the
 * recurrent products the helper can take, and the caller's own (the other products, the
 * elementwise passes at GEN_PER_UNIT a gate unit, the draw at GEN_PER_CLASS a class plus
 * GEN_STEP_FIXED). With chunks to claim, two threads take about max(all / 2, the caller's
 * own) plus the hand-overs, GEN_SYNC: about 1.5 us of a 2-vCPU EPYC whose cross-core round
 * trip takes 470 ns, at the 27G multiply-adds a second of a product from L2. The helper is
 * used when that saves GEN_GAIN of the step. On that machine (cross-core round trip 470-490
 * ns), 2 threads against 1 alternated in one process, helper taken: 2-layer LSTM of 128 units
 * 1.4-1.6x, of 96 1.2x; 2-layer GRU of 128 1.15x; 2-layer vanilla RNN of 192 1.1x, of 256
 * 1.1-1.5x; 1-layer LSTM of 181 1.25x; 1-layer RNN of 362 1.3x. Not taken (the helper's
 * figure): 2-layer LSTM of 64 (1.06x), RNN of 128 (0.93x), GRU of 96 (1.13x); 1-layer LSTM
 * of 96 (0.94x), of 128 (1.0-1.1x), RNN of 256 (0.92x). */
#define GEN_SYNC 40000.0
#define GEN_PER_UNIT 8.0
#define GEN_PER_CLASS 8.0
#define GEN_STEP_FIXED 10000.0
#define GEN_GAIN 0.10
/* OpenBLAS 0.3.21 threads a matrix-vector product from this many elements on; below it the
 * setting is left alone (setting and restoring it cost a 1-layer RNN of 32 units 5%) */
#define GEN_GEMV_THREADED 9216
/* Without the helper the readout, h W_out (V H multiply-adds), is the one product left to
 * OpenBLAS (the cells' go through rn_vecmat, on this thread), and OpenBLAS keeps its threads
 * for it from this size on. 2 threads against 1 alternated in one process, 1-layer word
 * models, cross-core round trip 475-490 ns: V H = 128K 0.90x, 240K 0.94-1.17x (two runs),
 * 256K 1.26x, 280K 1.17-1.37x, 320K 1.22-1.30x, 640K 1.47x, 1M 1.5x (10,000 words, RNN of
 * 100; it was left at one thread below 1M multiply-adds a step while the draw took a third
 * of the step) */
#define GEN_READOUT_THREADED ((int64_t)1 << 18)
/* the embedding table pays when the call has at least as many steps as the vocabulary has ids
 * (each step saves one row of E W_x); its size is capped */
#define GEN_TABLE_MAX_FLOATS ((int64_t)4 << 20)

int64_t rc_rnn_state_floats(rc_cell *const *cells, int n) {
  int64_t total = 0;
  for (int l = 0; l < n; l++)
    total += (int64_t)rc_cell_n_states(cells[l]) * rc_cell_hidden(cells[l]);
  return total;
}

/* One layer's recurrent product between the two threads: each counter on a cache line of its
 * own (the caller writes `published`, both threads the other two). */
typedef struct {
  _Alignas(64) atomic_llong published; /* steps this layer has finished: its state h is the
                                        * input of step `published`'s recurrent product */
  _Alignas(64) atomic_llong claimed;   /* chunks claimed, all steps: chunk c of step s is
                                        * s * chunks + c */
  _Alignas(64) atomic_llong done;      /* chunks finished */
} gen_flags;

typedef struct {
  rc_cell *const *cells;
  int n;
  int64_t steps, chunks;
  int kind;                        /* rn_vecmat's kernel */
  const float *h[GEN_MAX_LAYERS];  /* each layer's state 0 (in the caller's state buffer) */
  const float *Wh[GEN_MAX_LAYERS]; /* W_h [H, P] */
  int64_t N[GEN_MAX_LAYERS];       /* its first product's columns, or 0: the cell's own */
  float *R[GEN_MAX_LAYERS];        /* the product for the next step */
  gen_flags *f;                    /* n */
  atomic_int stop;
  /* the caller's loop (gen_caller) */
  float *state, *ya, *yb, *pre, *logits, *table;
  const float *E0, *W, *b;
  int64_t V, E, Hout;
  const int64_t *prime;
  int64_t n_prime;
  double temperature;
  int64_t top_k;
  int64_t *out;
  rc_ctx *ctx;
  int err;
  long chunks_done[2]; /* each thread's (caller, helper), written when its loop ends */
  double caller_end;   /* when the caller's loop ended (gen_now) */
} gen;

static double gen_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void relax(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  _mm_pause();
#endif
}

/* n floats from p on their way into this core's cache, every line at once (data the other
 * core wrote: read in order, each line would wait for its own cross-core transfer) */
static inline void prefetch(const float *p, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  for (int64_t j = 0; j < n; j += 16) _mm_prefetch((const char *)(p + j), _MM_HINT_T0);
#else
  (void)p, (void)n;
#endif
}

/* chunk c of layer l's product (columns rounded to 16-float vectors) */
static void run_chunk(gen *g, int l, int64_t c) {
  int64_t N = g->N[l], per = (N / g->chunks + 15) & ~(int64_t)15;
  int64_t j0 = c * per, j1 = c + 1 == g->chunks || j0 + per > N ? N : j0 + per;
  int64_t H = rc_cell_hidden(g->cells[l]), P = (int64_t)g->cells[l]->ops->gates * H;
  prefetch(g->h[l], H);
  rn_vecmat(g->kind, H, g->h[l], g->Wh[l], P, NULL, g->R[l], j0 < N ? j0 : N, j1);
}

/* Claims and runs chunks of layer l's products while they belong to steps up to `s`; how
 * many it ran. */
static long claim_through(gen *g, int l, int64_t s) {
  long ran = 0;
  gen_flags *f = &g->f[l];
  long long end = (long long)(s + 1) * g->chunks;
  long long c = atomic_load_explicit(&f->claimed, memory_order_relaxed);
  while (c < end) {
    if (atomic_compare_exchange_weak_explicit(&f->claimed, &c, c + 1, memory_order_acq_rel,
                                              memory_order_relaxed)) {
      run_chunk(g, l, c % g->chunks);
      atomic_fetch_add_explicit(&f->done, 1, memory_order_release);
      ran++;
      c++;
    }
  }
  return ran;
}

/* Spins until *a >= v or the caller stops the run; yields now and then (the other thread
 * may share this core). 0, or -1 when stopped. */
static int wait_at_least(gen *g, atomic_llong *a, long long v) {
  unsigned spins = 0;
  while (atomic_load_explicit(a, memory_order_acquire) < v) {
    if (atomic_load_explicit(&g->stop, memory_order_relaxed)) return -1;
    if (++spins % 1024 == 0)
      sched_yield();
    else
      relax();
  }
  return 0;
}

/* Layer l's product for step s, when the helper has finished it, on its way into this core's
 * cache while the caller computes something else (it was written on the other core: reading
 * it line by line when the cell adds it costs a cross-core transfer per line). */
static void prefetch_ready(gen *g, int l, int64_t s) {
  if (g->N[l] &&
      atomic_load_explicit(&g->f[l].done, memory_order_relaxed) >= (long long)(s + 1) * g->chunks)
    prefetch(g->R[l], g->N[l]);
}

/* the helper: every layer's recurrent product of every step, as soon as its input is there */
static void gen_helper(gen *g) {
  long ran = 0;
  for (int64_t s = 0; s < g->steps; s++)
    for (int l = 0; l < g->n; l++) {
      if (!g->N[l]) continue;
      if (wait_at_least(g, &g->f[l].published, s)) goto out;
      ran += claim_through(g, l, s);
    }
out:
  g->chunks_done[1] = ran;
}

/* the caller: the steps */
static void gen_caller(gen *g) {
  long ran = 0; /* chunks (counted here: a field of g the helper reads would bounce) */
  int64_t last = g->prime[0];
  float *st[RC_CELL_MAX_STATES];
  for (int64_t i = 0; i < g->steps; i++) {
    const float *x = g->E0 + last * g->E;
    float *y = g->ya, *sp = g->state;
    for (int l = 0; l < g->n; l++) {
      rc_cell *cell = g->cells[l];
      const rn_ops *o = cell->ops;
      int64_t h = rc_cell_hidden(cell);
      int64_t P = o->gates * h;
      for (int k = 0; k < o->n_states; k++) st[k] = sp + k * h;
      /* pre = b + x W_x: layer 1's a row of the table when there is one */
      const float *pre = g->pre;
      if (l > 0) prefetch_ready(g, l, i);
      if (l == 0 && g->table)
        pre = g->table + last * P;
      else
        rn_vecmat(g->kind, rc_cell_input(cell), x, rc_data(cell->param[0]), P,
                  o->has_bias ? rc_data(cell->param[2]) : NULL, g->pre, 0, P);
      if (g->N[l]) { /* the recurrent product: what the helper has not claimed, then its part */
        long long need = (long long)(i + 1) * g->chunks;
        if (atomic_load_explicit(&g->f[l].done, memory_order_acquire) < need)
          ran += claim_through(g, l, i);
        unsigned spins = 0;
        while (atomic_load_explicit(&g->f[l].done, memory_order_acquire) < need)
          if (++spins % 1024 == 0)
            sched_yield();
          else
            relax();
        if (spins) prefetch(g->R[l], g->N[l]); /* finished just now, on the other core */
      }
      if (rn_step_given(cell, pre, g->N[l] ? g->R[l] : NULL, st, y)) goto fail;
      /* h is in place: the next step's recurrent product may start */
      atomic_store_explicit(&g->f[l].published, i + 1, memory_order_release);
      sp += o->n_states * h;
      x = y;
      y = y == g->ya ? g->yb : g->ya;
    }
    if (i + 1 < g->n_prime) {
      last = g->prime[i + 1];
      continue;
    }
    int64_t k = i + 1 - g->n_prime; /* index of the id being generated */
    if (i + 1 < g->steps) prefetch_ready(g, 0, i + 1);
    if (g->b) memcpy(g->logits, g->b, sizeof(float) * (size_t)g->V);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)g->V, (blasint)g->Hout, 1.0f, g->W,
                (blasint)g->Hout, x, 1, g->b ? 1.0f : 0.0f, g->logits, 1);
    if (rc_sample_row(g->ctx, g->logits, g->V, g->temperature, g->top_k, &last)) goto fail;
    g->out[k] = last;
  }
  atomic_store_explicit(&g->stop, 1, memory_order_relaxed);
  g->chunks_done[0] = ran;
  return;
fail:
  g->err = 1;
  atomic_store_explicit(&g->stop, 1, memory_order_relaxed);
  g->chunks_done[0] = ran;
}

/* Does a helper thread pay for these cells (see GEN_SYNC)? */
static int helper_pays(rc_cell *const *cells, int n, int64_t V, int table) {
  double rec = 0.0, own = (double)V * (double)rc_cell_hidden(cells[n - 1]) +
                          GEN_PER_CLASS * (double)V + GEN_STEP_FIXED;
  for (int l = 0; l < n; l++) {
    double H = (double)rc_cell_hidden(cells[l]), P = (double)cells[l]->ops->gates * H;
    double r = (double)cells[l]->ops->rec_gates * H * H;
    rec += r;
    own += (l == 0 && table ? 0.0 : (double)rc_cell_input(cells[l]) * P) + P * H - r +
           GEN_PER_UNIT * P;
  }
  double all = rec + own, two = (all / 2 > own ? all / 2 : own) + GEN_SYNC;
  return all - two >= GEN_GAIN * all;
}

/* rc_team_split's job: part 0 the caller's loop, part 1 the helper's (a split that runs whole
 * on the caller, [0, 2), is the caller's loop alone: it claims every product itself) */
static void gen_part(void *arg, int64_t lo, int64_t hi) {
  (void)hi;
  gen *g = arg;
  if (lo == 0) {
    gen_caller(g);
    g->caller_end = gen_now();
  } else {
    gen_helper(g);
  }
}

/* The helper thread for a generation, or NULL: one thread */
static rc_team *gen_team(rc_cell *cell) {
  if (cell->ctx->no_rnn_helper) return NULL;
  if (!cell->team) cell->team = rc_ctx_team(cell->ctx);
  return cell->team && rc_team_usable(cell->team) ? cell->team : NULL;
}

int rc_rnn_generate(rc_cell *const *cells, int n, rc_tensor *embed, rc_tensor *W_out,
                    rc_tensor *b_out, float *state, const int64_t *prime, int64_t n_prime,
                    int64_t length, double temperature, int64_t top_k, int64_t *out) {
  rc_ctx *c = embed->ctx;
  char s1[128], s2[128];
  if (n < 1) return rc_error(c, "generate: no cells");
  if (n > GEN_MAX_LAYERS)
    return rc_error(c, "generate: at most %d cells, got %d", GEN_MAX_LAYERS, n);
  if (embed->ndim != 2)
    return rc_error(c, "generate: the embedding must be [V, E], got %s",
                    rc_shape_str(embed, s1, sizeof s1));
  int64_t V = embed->size[0], E = embed->size[1];
  if (rc_cell_input(cells[0]) != E)
    return rc_error(c, "generate: the embedding has %lld columns but the first cell takes %lld",
                    (long long)E, (long long)rc_cell_input(cells[0]));
  int64_t Hmax = 0, Pmax = 0;
  for (int l = 0; l < n; l++) {
    int64_t P = (int64_t)cells[l]->ops->gates * rc_cell_hidden(cells[l]);
    if (P > Pmax) Pmax = P;
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
  int64_t steps = n_prime - 1 + length;
  int64_t P0 = (int64_t)cells[0]->ops->gates * rc_cell_hidden(cells[0]);
  int table = steps >= V && V * P0 <= GEN_TABLE_MAX_FLOATS;
  /* the budget sees every step's products (and the table's) before the loop: a long
   * generation is one call */
  double per_step = (double)V * (double)H;
  for (int l = 0; l < n; l++) per_step += rc_cell_flops(cells[l], 1, 1) / 6.0;
  double macs = per_step * (double)steps + (table ? (double)V * (double)E * (double)P0 : 0.0);
  if (rc_charge(c, "generate", rc_mac_units(macs))) return -1;
  if (steps == 0) return 0;

  rc_tensor *ec = rc_raw_contiguous(embed), *wc = NULL, *bc = NULL;
  rc_tensor *work = NULL;
  float *buf = NULL;
  gen_flags *flags = NULL;
  int rc = -1;
  /* one BLAS thread throughout (a process-wide setting, restored below) where the readout,
   * the only product left to OpenBLAS, would use more: when the helper runs (the second core
   * is its), or the readout is below GEN_READOUT_THREADED, or the team's load check finds the
   * other core busy (OpenBLAS has no back-off: beside another process's busy loop a word
   * model's sampling on its 2 threads ran at 0.15x of 1) */
  int threads = openblas_get_num_threads();
  int helper = threads > 1 && helper_pays(cells, n, V, table);
  int blas_two = threads > 1 && !helper && V * H >= GEN_READOUT_THREADED &&
                 (c->no_rnn_helper || gen_team(cells[0])); /* helper off: no load check */
  int one = threads > 1 && (helper || (V * H >= GEN_GEMV_THREADED && !blas_two));
  if (one) openblas_set_num_threads(1);
  if (!ec) goto done;
  if (!(wc = rc_raw_contiguous(W_out))) goto done;
  if (b_out && !(bc = rc_raw_contiguous(b_out))) goto done;
  gen g;
  memset(&g, 0, sizeof g);
  g.cells = cells;
  g.n = n;
  g.steps = steps;
  g.kind = rn_vecmat_kind();
  int64_t rfloats = 0;
  for (int l = 0; l < n; l++) {
    const rn_ops *o = cells[l]->ops;
    g.N[l] = (int64_t)o->rec_gates * rc_cell_hidden(cells[l]);
    rfloats += rn_r16(g.N[l]);
  }
  int64_t nbuf = 2 * rn_r16(Hmax) + rn_r16(Pmax) + rn_r16(V) + rfloats + (table ? V * P0 : 0);
  /* a tensor's storage: the context's memory limit and count see it (the table can be MBs) */
  if (!(work = rc_empty(c, 1, &nbuf))) goto done;
  buf = rc_data(work);
  if (!(flags = aligned_alloc(64, sizeof(gen_flags) * (size_t)n))) {
    rc_error(c, "generate: out of memory");
    goto done;
  }
  g.ya = buf;
  g.yb = g.ya + rn_r16(Hmax);
  g.pre = g.yb + rn_r16(Hmax);
  g.logits = g.pre + rn_r16(Pmax);
  float *r = g.logits + rn_r16(V);
  int64_t hoff = 0;
  for (int l = 0; l < n; l++) {
    g.R[l] = r;
    r += rn_r16(g.N[l]);
    g.h[l] = state + hoff;
    hoff += (int64_t)cells[l]->ops->n_states * rc_cell_hidden(cells[l]);
    g.Wh[l] = rc_data(cells[l]->param[1]);
    atomic_init(&flags[l].published, 0);
    atomic_init(&flags[l].claimed, 0);
    atomic_init(&flags[l].done, 0);
  }
  g.f = flags;
  g.state = state;
  g.E0 = rc_data(ec);
  g.W = rc_data(wc);
  g.b = bc ? rc_data(bc) : NULL;
  g.V = V;
  g.E = E;
  g.Hout = H;
  g.prime = prime;
  g.n_prime = n_prime;
  g.temperature = temperature;
  g.top_k = top_k;
  g.out = out;
  g.ctx = c;
  atomic_init(&g.stop, 0);
  if (table) { /* row v = b + E[v] W_x: the same call the step would make */
    g.table = r;
    rc_cell *c0 = cells[0];
    const float *b0 = c0->ops->has_bias ? rc_data(c0->param[2]) : NULL;
    for (int64_t v = 0; v < V; v++)
      rn_vecmat(g.kind, E, g.E0 + v * E, rc_data(c0->param[0]), P0, b0, g.table + v * P0, 0, P0);
  }
  rc_team *t = helper ? gen_team(cells[0]) : NULL;
  /* two chunks per product: the caller takes the second half of one the helper has not
   * finished when it needs it */
  g.chunks = t ? 2 : 1;
  double t0 = gen_now();
  rc_team_split(t, gen_part, &g, 2, 1);
  rc = g.err ? -1 : 0;
  if (t) {
    /* late: the caller waited at the end for over a tenth of the call (the helper's core was
     * taken), or the helper took no product of a call of some length; two late calls in a row
     * back the context's helper off, as for the layer wavefront (runtime/team.c) */
    double end = gen_now();
    int late = 10 * (end - g.caller_end) > end - t0 || (steps >= 16 && g.chunks_done[1] == 0);
    rc_team_verdict(t, late);
  }
  if (c->profile) {
    rc_profile *p = c->profile;
    p->gen_calls++;
    p->gen_steps += (long)steps;
    p->gen_helper_calls += t != NULL;
    p->gen_chunks[0] += g.chunks_done[0];
    p->gen_chunks[1] += g.chunks_done[1];
  }
done:
  if (one) openblas_set_num_threads(threads);
  rc_release(work);
  free(flags);
  rc_release(ec);
  rc_release(wc);
  rc_release(bc);
  return rc;
}
