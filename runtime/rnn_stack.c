/* A stack of fused cells run as a layer wavefront (Appleyard et al. 2016, "Optimizing
 * performance of recurrent neural networks on GPUs"): layer l's step t needs only layer l-1's
 * step t, so with two threads layer l runs its steps on one while layer l-1 runs a step ahead
 * on the other (layers alternate between the two threads: 0, 2, 4 ... on the caller, 1, 3 ...
 * on the helper). Backward runs the same pipeline top down.
 *
 * Each layer is an ordinary rc_seq run by its cell's own forward and backward; the cells call
 * the hooks below around each step. What the layer-by-layer path does in one BLAS product
 * over all steps, the input projection of layers 2.. (pre = b + x W_x) and the gradient it
 * hands down (dx = dG W_x^T), runs per step here on the packed kernel, split by rows: the
 * layer that produced the step computes rows [0, n) right after it, the layer that consumes
 * it rows [n, B) right before, so that both threads carry the same work: n starts at B/2 and
 * follows the threads' speeds from one sequence to the next (rebalance). Each row is the same
 * arithmetic whichever thread computes it, so the split never changes a result. The threads
 * hand steps over through counters (spin with pause, then yield: no sleep within a
 * sequence). Nothing here allocates while the threads run. */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "nn.h"
#include "ops.h"
#include "profile.h"
#include "rnn_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

/* Multiply-adds of one layer's recurrent products over the sequence (T B H P) below which
 * the wavefront is not used unless forced: waking the helper and handing every step over
 * costs more than the second core saves (2 layers, 2 threads, forward + backward: H = 16,
 * B = 4, T = 20 took 1.3-1.8x the layer-by-layer time; rnn H = 32, B = 8, T = 50, 409,600,
 * broke even; lstm there, 1.6M, gained 1.4x). */
#define RN_WAVE_MIN (1 << 19)

/* One layer's progress: steps done (forward: from the start; backward: from the end), and
 * steps whose producer rows of its input (forward: pre; backward: dy) are done. Each counter
 * on its own cache line (they are written by different threads). */
typedef struct {
  _Alignas(64) atomic_llong done;
  _Alignas(64) atomic_llong half;
  _Alignas(64) atomic_int finished; /* the cell's forward or backward has returned */
} wave_flags;

/* One thread's time in a run: its waits in the hooks (and the first of them: the pipeline's
 * fill), when its recurrences were done and (backward) when its products after them were.
 * Each written by its own thread only; 64 bytes each, so that the two threads' fields never
 * share a cache line (padded rather than aligned: the wave is allocated with the context's
 * allocator, 16-byte aligned). */
typedef struct {
  long long wait_ns, first_ns, end_ns, post_ns;
  char pad[64 - 4 * sizeof(long long)];
} part_time;

struct rn_wave {
  part_time pt[2];
  int L;
  int64_t T, B;
  int64_t r0;           /* the rows of each handed-over step that part 0 (the caller) computes */
  rc_seq **s;           /* the layers */
  rn_pmat *wx;          /* layer l >= 1's W_x (forward) or W_x^T (backward), packed */
  float **dy, **dG;     /* backward: each layer's output and pre-activation gradients */
  wave_flags *f;        /* L, 64-byte aligned */
  atomic_llong late_ns; /* time spent in waits that outlasted the spin */
  /* forward on two threads: layer 1's input projection is computed by both threads at the
   * start, steps 0 .. proj_t - 1 by the caller (which then runs layer 1 at once), the rest by
   * the helper, which sets proj_done; layer 1 waits for it at step proj_t. 0: projected
   * before the wave. */
  int64_t proj_t;
  atomic_llong proj_done;
  atomic_llong helper_in; /* when the helper began its part (now_ns) */
};

static inline void relax(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  _mm_pause();
#endif
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Thread `part` waits until *a >= v: spins, then yields now and then (the other thread may
 * share this core, or another process holds the other core); the time past the spin counts
 * as late. */
static void wait_for(rn_wave *w, int part, atomic_llong *a, long long v) {
  if (atomic_load_explicit(a, memory_order_acquire) >= v) return;
  unsigned spins = 0;
  long long t0 = 0, in = now_ns();
  while (atomic_load_explicit(a, memory_order_acquire) < v) {
    if (++spins < 4096) {
      relax();
      continue;
    }
    if (spins == 4096) t0 = now_ns();
    if (spins % 16 == 0)
      sched_yield();
    else
      relax();
  }
  long long out = now_ns();
  if (t0) atomic_fetch_add_explicit(&w->late_ns, out - t0, memory_order_relaxed);
  if (!w->pt[part].wait_ns) w->pt[part].first_ns = out - in;
  w->pt[part].wait_ns += out - in;
}

/* n: the rows [0, n) of a step that the layer producing it computes (the consuming layer
 * computes [n, B)), part 0's share where the producer runs on part 0 (layers alternate) */
static inline int64_t producer_rows(const rn_wave *w, int producer) {
  return producer % 2 == 0 ? w->r0 : w->B - w->r0;
}

/* pre rows r0 .. r1 - 1 of layer s's step t = b + x[t] W_x */
static void proj_rows(rn_wave *w, rc_seq *s, int64_t t, int64_t r0, int64_t r1) {
  if (r1 <= r0) return;
  int64_t P = s->P, row = t * s->B + r0;
  float *pre = s->pre + row * P;
  if (s->cell->ops->has_bias)
    rn_pgemm_bias(&w->wx[s->layer], r1 - r0, s->x + row * s->I, s->I, rc_data(s->w[2]), pre, P);
  else
    rn_pgemm(&w->wx[s->layer], r1 - r0, s->x + row * s->I, s->I, pre, P, 0.0f);
}

/* dy rows r0 .. r1 - 1 of layer l's step t = dG[t] of layer l + 1 times its W_x^T */
static void dy_rows(rn_wave *w, int l, int64_t t, int64_t r0, int64_t r1) {
  if (r1 <= r0) return;
  rc_seq *up = w->s[l + 1];
  int64_t row = t * w->B + r0;
  rn_pgemm(&w->wx[l + 1], r1 - r0, w->dG[l + 1] + row * up->P, up->P, w->dy[l] + row * up->I, up->I,
           0.0f);
}

/* Asks for the lines of p[0 .. floats) in this core's cache, for writing, before a product
 * that adds to them (the recurrent product adds h W_h to the pre rows the producer wrote):
 * the product's loads would fetch each line from the other core for reading and its stores
 * then ask the other core again to own it, one line after the other. On this bench's VM,
 * when its two vCPUs sit on different L3s (a cross-core round trip of 420-550 ns against
 * 100-150), overwriting 16 KB that the other core had just read took 3.0-3.2 us against
 * 0.6-0.8 (bench/xcore.c); the prefetches ask for all the lines at once. Skipped where the
 * CPU lacks PREFETCHW (a prefetch for reading would only add the upgrade). */
#if defined(__x86_64__) && defined(__GNUC__)
static void own_rows(const float *p, int64_t floats) {
  if (!__builtin_cpu_supports("prfchw")) return;
  for (int64_t i = 0; i < floats; i += 16) __asm__ volatile("prefetchw %0" : : "m"(p[i]));
}
#else
static void own_rows(const float *p, int64_t floats) {
  (void)p;
  (void)floats;
}
#endif

void rn_wave_fwd_in_(rc_seq *s, int64_t t) {
  rn_wave *w = s->wave;
  int l = s->layer;
  if (l == 0) { /* layer 1's projection ran before, runs ahead of its steps on this thread,
                 * or runs on both threads at the start */
    if (t == w->proj_t && t > 0) wait_for(w, 0, &w->proj_done, 1);
    rn_project_through(s, t);
    return;
  }
  wait_for(w, l % 2, &w->f[l - 1].done, t + 1);
  proj_rows(w, s, t, producer_rows(w, l - 1), w->B);
  wait_for(w, l % 2, &w->f[l].half, t + 1);
  own_rows(s->pre + t * w->B * s->P, producer_rows(w, l - 1) * s->P);
}

void rn_wave_fwd_out_(rc_seq *s, int64_t t) {
  rn_wave *w = s->wave;
  int l = s->layer;
  atomic_store_explicit(&w->f[l].done, t + 1, memory_order_release);
  if (l + 1 < w->L) {
    proj_rows(w, w->s[l + 1], t, 0, producer_rows(w, l));
    atomic_store_explicit(&w->f[l + 1].half, t + 1, memory_order_release);
  }
}

void rn_wave_bwd_in_(rc_seq *s, int64_t t) {
  rn_wave *w = s->wave;
  int l = s->layer;
  if (l == w->L - 1) return; /* the top layer's dy is the output's gradient */
  wait_for(w, l % 2, &w->f[l + 1].done, w->T - t);
  dy_rows(w, l, t, producer_rows(w, l + 1), w->B);
  wait_for(w, l % 2, &w->f[l].half, w->T - t);
}

void rn_wave_bwd_out_(rc_seq *s, int64_t t) {
  rn_wave *w = s->wave;
  int l = s->layer;
  atomic_store_explicit(&w->f[l].done, w->T - t, memory_order_release);
  if (l > 0) {
    dy_rows(w, l - 1, t, 0, producer_rows(w, l));
    atomic_store_explicit(&w->f[l - 1].half, w->T - t, memory_order_release);
  }
}

/* ---- after the recurrences: each layer's whole-sequence products ----
 * What rnn_common.c's seq_backward does after a layer's recurrence, as tasks (four per
 * layer): W_h's gradient (the cell's wgrad), W_x's and the bias's, and for layer 1 the
 * gradient of the stack's input (the other layers handed theirs down per step) as two tasks,
 * its first half of rows and its second: the last task to start, it then ends the phase on
 * both threads (whole, it kept the caller about 0.12 ms past the helper in a timed run of a
 * 2-layer RNN H = 128; recur's kernel computes a row alike in either half). With two
 * threads, each takes its own layers' tasks as soon as its recurrences are done, then helps
 * with the other's, so that the
 * top layer's products run beside the bottom layer's last steps, and no product is split:
 * each runs whole on one thread, the same arithmetic as on one thread (same bits), without
 * the per-product thread and the duplicated packing of a split (on a 2-layer LSTM H = 128
 * step these products took 6.1 ms split, against 2.8 ms of recurrences). */
enum { POST_WH, POST_WX, POST_DX, POST_DX2, POST_KINDS };

/* Multiply-adds of a layer's largest whole-sequence product (max(H, I) P T B) from which the
 * products run after the wave instead, each split over both threads: one whole product per
 * thread leaves one thread idle for most of a product of the bottom layer when the top
 * layer's are larger (2 x 1.68G and 1.68 + 2 x 0.2G multiply-adds for an LSTM H = 512 with
 * an embedding of 64), and a split costs little next to products this large. */
#define POST_WHOLE_MAX ((int64_t)1 << 27)

typedef struct {
  rc_bw *bw;
  float *dx;                       /* the stack input's gradient, or NULL */
  _Alignas(64) atomic_int next[2]; /* the next task among part 0's layers, part 1's */
} post_list;

static void post_task(rn_wave *w, post_list *p, int l, int kind) {
  rc_seq *s = w->s[l];
  rc_bw *b = &p->bw[l];
  const rn_ops *o = s->cell->ops;
  rc_ctx *c = s->cell->ctx;
  int64_t TB = s->T * s->B, I = s->I, P = s->P;
  switch (kind) {
  case POST_WH:
    o->wgrad(s, b);
    break;
  case POST_WX:
    if (b->dp[0]) /* dW_x = X^T dG */
      rn_gemm(c, I, P, TB, s->x, I, 1, b->dG, P, 0, b->dp[0], P, 1.0f, 0.0f);
    if (o->has_bias && b->dp[2]) rn_colsum_add(b->dG, TB, P, P, b->dp[2]);
    break;
  default:
    if (l == 0 && p->dx) { /* dx = dG W_x^T, its first half of rows or its second */
      int64_t r0 = kind == POST_DX ? 0 : TB / 2, r1 = kind == POST_DX ? TB / 2 : TB;
      rn_gemm(c, r1 - r0, I, P, b->dG + r0 * P, P, 0, rc_data(s->w[0]), P, 1, p->dx + r0 * I, I,
              1.0f, 0.0f);
    }
  }
}

/* takes tasks until none is left: first those of its own layers (part 0: layers 1, 3, ...,
 * part 1: 2, 4, ..., top down), whose operands its own recurrences just left in its cache,
 * then the other part's (on a 2-layer RNN H = 128 a thread that took the other layer's
 * products took 13% longer over them); a task of the other part's waits for its layer's
 * backward to have returned (not counted as late: the other thread is working, not
 * descheduled) */
static void post_take(rn_wave *w, post_list *p, int part) {
  for (int k = 0; k < 2; k++) {
    int q = part ^ k, top = w->L - 1 - (w->L - 1 - q) % 2, n = (top / 2 + 1) * POST_KINDS;
    for (int j; (j = atomic_fetch_add(&p->next[q], 1)) < n;) {
      int l = top - 2 * (j / POST_KINDS);
      atomic_int *fin = &w->f[l].finished;
      for (unsigned spins = 0; !atomic_load_explicit(fin, memory_order_acquire);)
        if (++spins % 64 == 0)
          sched_yield();
        else
          relax();
      post_task(w, p, l, j % POST_KINDS);
    }
  }
}

/* ---- running the layers ---- */

typedef struct {
  rn_wave *w;
  rc_bw *bw;       /* NULL in forward */
  post_list *post; /* backward: the products after the recurrences */
} run_arg;

/* thread `part` (0 the caller, 1 the helper) runs the layers of its parity, in the order the
 * pipeline fills: bottom up in forward, top down in backward, then takes the products after
 * the recurrences */
static void run_part(void *arg, int64_t lo, int64_t hi) {
  const run_arg *a = arg;
  rn_wave *w = a->w;
  if (lo > 0) atomic_store_explicit(&w->helper_in, now_ns(), memory_order_relaxed);
  const rn_ops *o = w->s[0]->cell->ops;
  for (int64_t part = lo; part < hi; part++) {
    if (!a->bw) {
      if (w->proj_t > 0) { /* layer 1's input projection: each thread its share of the steps */
        rc_seq *s0 = w->s[0];
        if (part == 0) {
          rn_input_projection_rows(s0, 0, w->proj_t * w->B);
        } else {
          rn_input_projection_rows(s0, w->proj_t * w->B, w->T * w->B);
          atomic_store_explicit(&w->proj_done, 1, memory_order_release);
        }
      }
      for (int l = (int)part; l < w->L; l += 2) o->forward(w->s[l]);
    } else {
      for (int l = w->L - 1; l >= 0; l--)
        if (l % 2 == part) {
          o->backward(w->s[l], &a->bw[l]);
          atomic_store_explicit(&w->f[l].finished, 1, memory_order_release);
        }
    }
  }
  w->pt[lo].end_ns = now_ns();
  if (a->post) post_take(w, a->post, (int)lo);
  w->pt[lo].post_ns = now_ns();
}

/* Moves rows of each hand-over to the thread that waited from the one that kept it waiting,
 * when two runs in a row found one thread idle for more than RN_WAVE_SKEW of the run: cores
 * of unequal speed (a VM's vCPUs 15-20% apart, a busy sibling hyperthread) or a helper that
 * starts late leave one thread idle every step with an even split. Idle: in forward, the
 * waits in the hooks and the time from the end of a thread's layers to the end of the
 * other's (on equal cores about a step on each side: the pipeline's fill and drain); in
 * backward the waits but the first (the fill), since a thread done early takes the products
 * after the recurrences (post_take), so its end is not idle. With the helper slowed by 15%
 * (a spin after each stretch of its work; 2-layer models, blocks of steps alternated in one
 * process) a vanilla RNN H = 128 step took 2.38 ms against 2.45 with the even split, a GRU
 * 6.93 against 7.22; the caller slowed: 2.46 against 2.49, 7.07 against 7.41; neither: 2.34
 * against 2.33, 6.22 against 6.40. A run whose helper woke late (more than 5% of it) tells
 * nothing of the threads' speeds and is left out. */
#define RN_WAVE_SKEW 0.02
static void rebalance(rn_wave *w, int dir, long long t0, long long wake) {
  rc_cell *c0 = w->s[0]->cell;
  long long e0 = w->pt[0].end_ns, e1 = w->pt[1].end_ns, end = e0 > e1 ? e0 : e1;
  if (c0->ctx->rnn_wave_rows || end <= t0 || 20 * wake > end - t0) return;
  double idle = (double)(w->pt[0].wait_ns - w->pt[1].wait_ns);
  if (dir)
    idle -= (double)(w->pt[0].first_ns - w->pt[1].first_ns);
  else
    idle += (double)(e1 - e0);
  double e = idle / (double)(end - t0), *last = &c0->wave_skew[dir];
  int64_t g = w->B >= 16 ? w->B / 16 : 1, *r0 = &c0->wave_rows[dir];
  int move = e > RN_WAVE_SKEW && *last > RN_WAVE_SKEW     ? 1
             : e < -RN_WAVE_SKEW && *last < -RN_WAVE_SKEW ? -1
                                                          : 0;
  if (move && *r0 + move * g >= 0 && *r0 + move * g <= w->B) {
    *r0 += move * g;
    *last = 0.0;
  } else {
    *last = e;
  }
}

/* adds a two-thread run that began at t0 to the context's profile */
static void profile_run(rc_profile *p, const rn_wave *w, int dir, long long t0, int late) {
  rc_profile_wave *r = &p->wave[dir];
  r->runs++;
  r->late_runs += late;
  r->seconds += 1e-9 * (double)(now_ns() - t0);
  for (int k = 0; k < 2; k++) {
    r->wait[k] += 1e-9 * (double)w->pt[k].wait_ns;
    r->done[k] += 1e-9 * (double)(w->pt[k].end_ns - t0);
    if (dir) r->products[k] += 1e-9 * (double)(w->pt[k].post_ns - t0);
  }
}

/* Runs every layer through the hooks: on two threads with the helper t, else one layer after
 * the other on the caller (the hooks' waits are then already met); in backward, then the
 * products after the recurrences. */
static void run_layers(rn_wave *w, rc_bw *bw, post_list *post, rc_team *t) {
  const rn_ops *o = w->s[0]->cell->ops;
  for (int l = 0; l < w->L; l++) {
    atomic_store(&w->f[l].done, 0);
    atomic_store(&w->f[l].half, 0);
    atomic_store(&w->f[l].finished, 0);
    w->s[l]->wave = w;
    w->s[l]->layer = l;
    w->s[l]->cell->in_wave = 1;
  }
  run_arg a = {w, bw, post};
  rc_cell *c0 = w->s[0]->cell;
  if (c0->wave_rows_B != w->B) {
    c0->wave_rows_B = w->B;
    c0->wave_rows[0] = c0->wave_rows[1] = w->B / 2;
    c0->wave_skew[0] = c0->wave_skew[1] = 0.0;
  }
  int fixed = c0->ctx->rnn_wave_rows;
  w->r0 = fixed ? (fixed - 1 < w->B ? fixed - 1 : w->B) : c0->wave_rows[bw != NULL];
  for (int p = 0; p < 2; p++)
    w->pt[p].wait_ns = w->pt[p].first_ns = w->pt[p].end_ns = w->pt[p].post_ns = 0;
  atomic_store(&w->late_ns, 0);
  atomic_store(&w->helper_in, 0);
  /* every product in here runs on the thread that calls it, one BLAS thread, with the
   * helper or without: with it both threads are busy (a split would start a third thread,
   * and OpenBLAS's own would spin on the cores), and without it (the helper backed off:
   * another process holds a core) the same calls give the same bits (OpenBLAS's 2-thread
   * result for the stack input's gradient, [1280 x 256] x [256 x 24], is 4.6e-5 from its
   * 1-thread one) */
  int threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (t) {
    long long t0 = now_ns();
    rc_team_split(t, run_part, &a, 2, 1);
    /* a run in which a thread kept waiting past the spin for more than a tenth of it is
     * late (another process holds a core: every hand-over risks a time slice); after two
     * late runs in a row the next sequences run alone (the context's helper backs off for
     * every cell and product).
     * One late run is not enough: on the bench's VM a run now and then waits 0.1-0.3 ms
     * with nothing else running, and backing off for it (then for 16 sequences) cost a vanilla RNN
     * H = 128 a third of its 2-thread step. The helper's wake-up does not count (35-90 us
     * there, after it fell asleep since the last sequence). */
    long long wake = atomic_load(&w->helper_in) - t0;
    int late = 10 * (atomic_load(&w->late_ns) - (wake > 0 ? wake : 0)) > now_ns() - t0;
    rc_team_verdict(t, late);
    if (!late) rebalance(w, bw != NULL, t0, wake);
    if (c0->ctx->profile) profile_run(c0->ctx->profile, w, bw != NULL, t0, late);
  } else if (!bw) {
    for (int l = 0; l < w->L; l++) o->forward(w->s[l]);
  } else {
    for (int l = w->L - 1; l >= 0; l--) {
      o->backward(w->s[l], &bw[l]);
      atomic_store(&w->f[l].finished, 1);
    }
    if (post) post_take(w, post, 0);
  }
  openblas_set_num_threads(threads);
  for (int l = 0; l < w->L; l++) {
    w->s[l]->wave = NULL;
    w->s[l]->cell->in_wave = 0;
  }
}

/* The helper thread to run the second half of the layers on, or NULL for one thread. */
static rc_team *wave_team(rc_cell *cell) {
  if (cell->ctx->rnn_wave <= 0 && (openblas_get_num_threads() < 2 || cell->ctx->no_rnn_helper))
    return NULL;
  if (!cell->team) cell->team = rc_ctx_team(cell->ctx);
  if (cell->ctx->rnn_wave > 0) return cell->team;
  return rc_team_usable(cell->team) ? cell->team : NULL;
}

/* The rows of layer 1's input projection that the caller computes at a time, ahead of the
 * steps that read them, in a stack run as a wavefront (on two threads, or the same pieces
 * on the caller alone): two steps (at least 64 rows), so that the helper, which waits for
 * the first piece, starts soon, and the caller, rather than the helper, writes the rows its
 * recurrence then adds to (a row the other core wrote costs two cross-core transfers; see
 * own_rows). 0: fewer than 4 pieces, or the projection ahead turned off
 * (recur._rnn_project_ahead "off"): both threads compute a share of it at the start.
 * Vanilla RNN H = 128, 2 layers, T = 50, B = 32, its forward wave with the vCPUs on
 * different L3s: 0.73-0.75 ms split at the start, 0.70-0.71 in pieces of 8 or 4 steps,
 * 0.69-0.70 in pieces of 2. */
static int64_t wave_project_rows(const rc_seq *s) {
  int64_t n = s->T * s->B, rows = (s->B >= 32 ? 2 : (64 + s->B - 1) / s->B) * s->B;
  return !s->cell->ctx->rnn_proj_whole && n > 0 && 4 * rows <= n ? rows : 0;
}

/* a new wave over L layers with room for the packed W_x (in *packs, K x N each); NULL with a
 * message */
static rn_wave *wave_new(rc_ctx *c, rc_seq **s, int L, rc_tensor **packs, int64_t K, int64_t N) {
  rn_wave *w = rc_mem_calloc(c, 1, sizeof *w);
  if (!w) return NULL;
  w->L = L;
  w->s = s;
  w->T = s[0]->T;
  w->B = s[0]->B;
  w->r0 = w->B / 2;
  w->wx = rc_mem_calloc(c, (size_t)L, sizeof *w->wx);
  w->dy = rc_mem_calloc(c, (size_t)L, sizeof *w->dy);
  w->dG = rc_mem_calloc(c, (size_t)L, sizeof *w->dG);
  w->f = aligned_alloc(64, (size_t)L * sizeof *w->f);
  int64_t one = rn_pack_floats(K, N), size[1] = {one * (L - 1)};
  *packs = w->wx && w->dy && w->dG && w->f ? rc_empty(c, 1, size) : NULL;
  if (!*packs) {
    if (!w->f) rc_error(c, "rnn stack: out of memory");
    rc_mem_free(c, w->wx);
    rc_mem_free(c, w->dy);
    rc_mem_free(c, w->dG);
    free(w->f);
    rc_mem_free(c, w);
    return NULL;
  }
  return w;
}

static void wave_free(rc_ctx *c, rn_wave *w) {
  if (!w) return;
  rc_mem_free(c, w->wx);
  rc_mem_free(c, w->dy);
  rc_mem_free(c, w->dG);
  free(w->f);
  rc_mem_free(c, w);
}

/* ---- the stack as one autograd node ---- */

/* What forward keeps for backward: every layer's sequence; layer l >= 1 reads layer l-1's
 * output (mid[l - 1]) as its x. */
typedef struct {
  rc_ctx *ctx;
  int L;
  rc_seq **s;
  rc_tensor **mid;
  rn_split *split; /* or, the batch split between two threads: its record (s, mid unused) */
} stack_rec;

static void rec_free(stack_rec *r) {
  if (!r) return;
  rc_ctx *c = r->ctx;
  for (int l = 0; l < r->L; l++) {
    if (r->s) rn_seq_free(r->s[l]);
    if (r->mid && l < r->L - 1) rc_release(r->mid[l]);
  }
  rn_split_free(r->split);
  rc_mem_free(c, r->s);
  rc_mem_free(c, r->mid);
  rc_mem_free(c, r);
  rc_ctx_release(c);
}

static void rec_free_ext(void *p) {
  rec_free(p);
}

/* the node's inputs: x, then per layer its states and its parameters */
static int in_state(const rn_ops *o, int l, int k) {
  return 1 + l * (o->n_states + o->n_params) + k;
}
static int in_param(const rn_ops *o, int l, int p) {
  return 1 + l * (o->n_states + o->n_params) + o->n_states + p;
}

/* Whether the stack applies to these cells and sizes at all. */
static int stack_fits(rc_cell *const *cells, int L, int64_t T, int64_t B) {
  if (L < 1 || T < 2 || B < 2 || !rn_pack_wanted(2, 2)) return 0;
  const rn_ops *o = cells[0]->ops;
  if (!o->pack_slots || !o->wgrad) return 0;
  for (int l = 0; l < L; l++) {
    if (!cells[l] || cells[l]->ops != o || cells[l]->hidden != cells[0]->hidden) return 0;
    if (l > 0 && cells[l]->input != cells[0]->hidden) return 0;
    for (int m = 0; m < l; m++)
      if (cells[m] == cells[l]) return 0; /* one cell's workspaces cannot serve two layers */
  }
  return 1;
}

static int stack_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin);
static int split_backward(rc_node *n, rn_split *sp, rc_tensor **gout, rc_tensor **gin);

/* The node's gradients for the inputs that need one (gin): W_x's and W_h's are overwritten by
 * their gradient products (beta 0), x's and the states' by copies, the other parameters'
 * accumulate from zero. 0, or -1 (the caller releases what gin holds). */
static int node_grads(const rc_node *n, const rn_ops *o, rc_tensor **gin) {
  int ns = o->n_states, np = o->n_params;
  for (int q = 0; q < n->n_in; q++) {
    if (!n->next[q].fn) continue;
    int p = q == 0 ? -1 : (q - 1) % (ns + np) - ns;
    gin[q] = p < 0 || p <= 1 ? rc_empty(n->ctx, n->in_shape[q].ndim, n->in_shape[q].size)
                             : rc_zeros(n->ctx, n->in_shape[q].ndim, n->in_shape[q].size);
    if (!gin[q]) return -1;
  }
  return 0;
}

int rc_cell_stack_forward(rc_cell *const *cells, int L, rc_tensor *x, rc_tensor *const *state0,
                          const int64_t *lengths, rc_tensor **y, rc_tensor **state_out) {
  *y = NULL;
  for (int i = 0; i < L * RC_CELL_MAX_STATES; i++) state_out[i] = NULL;
  if (L < 1 || !cells[0] || cells[0]->ctx->rnn_wave < 0) return 1;
  rc_cell *c0 = cells[0];
  rc_ctx *c = c0->ctx;
  const rn_ops *o = c0->ops;
  int64_t T, B, H = c0->hidden, P = (int64_t)o->gates * H;
  if (x->ndim != 3 || !stack_fits(cells, L, x->size[0], x->size[1])) return 1;
  int split = rn_split_wanted(c0, L, x->size[1]);
  if (L < 2 && !split) return 1; /* no wavefront for one layer */
  int forced = (c->rnn_wave > 0 && L > 1) || (c->rnn_split > 0 && o->rows_apart);
  if (!forced && (openblas_get_num_threads() < 2 || c->no_rnn_helper ||
                  x->size[0] * x->size[1] * H * P < RN_WAVE_MIN))
    return 1;
  /* the helper, or none: a helper that keeps arriving late (another process holds the
   * second core) leaves the layers to the caller alone, through the same hooks and the same
   * products, so that the numbers do not depend on the machine's load (down the
   * layer-by-layer path instead, a 2-thread LSTM's loss after 60 steps came out 3.01782107 or
   * 3.015342 beside a busy process, 3.01704407 without; one thread through the hooks took
   * 1.5-4% longer than layer by layer at H = 128) */
  rc_team *team = wave_team(c0);
  int ns = o->n_states, np = o->n_params;
  if (rn_check_args(c0, "rnn stack forward", x, 3, state0, lengths, &T, &B)) return -1;
  for (int l = 1; l < L && state0; l++)
    for (int k = 0; k < ns; k++) {
      rc_tensor *h = state0[l * RC_CELL_MAX_STATES + k];
      char s1[128];
      if (h && (h->ndim != 2 || h->size[0] != B || h->size[1] != H))
        return rc_error(c,
                        "rnn stack forward: initial state %d (%s) of layer %d must have shape "
                        "[%lld, %lld], got %s",
                        k + 1, o->state_names[k], l + 1, (long long)B, (long long)H,
                        rc_shape_str(h, s1, sizeof s1));
    }
  double flops = 0;
  for (int l = 0; l < L; l++) flops += rc_cell_flops(cells[l], T, B);
  if (rc_charge(c, "rnn stack forward", rc_mac_units(flops / 6.0))) return -1;

  int n_in = 1 + L * (ns + np), n_out = 1 + L * ns;
  rc_tensor **ins = rc_mem_calloc(c, (size_t)n_in, sizeof *ins);
  stack_rec *r = rc_mem_calloc(c, 1, sizeof *r);
  if (r) {
    r->ctx = c;
    rc_ctx_retain(c);
    r->L = L;
    r->s = rc_mem_calloc(c, (size_t)L, sizeof *r->s);
    r->mid = rc_mem_calloc(c, (size_t)L, sizeof *r->mid);
  }
  rn_wave *w = NULL;
  rc_tensor *packs = NULL;
  if (!ins || !r || !r->s || !r->mid) goto fail;
  ins[0] = x;
  for (int l = 0; l < L; l++) {
    for (int k = 0; k < ns; k++)
      ins[in_state(o, l, k)] = state0 ? state0[l * RC_CELL_MAX_STATES + k] : NULL;
    for (int p = 0; p < np; p++) ins[in_param(o, l, p)] = cells[l]->param[p];
  }
  int record = rc_needs_grad(c, ins, n_in);

  int64_t size[3] = {T, B, H};
  if (split) { /* the batch split between two threads (rnn_split.c) */
    if (!(*y = rc_empty(c, 3, size))) goto fail;
    for (int l = 0; l < L; l++)
      for (int k = 0; k < ns; k++)
        if (!(state_out[l * RC_CELL_MAX_STATES + k] = rc_empty(c, 2, size + 1))) goto fail;
    r->split = rn_split_forward(cells, L, x, state0, lengths, rc_data(*y), state_out, team);
    if (!r->split) goto fail;
    goto recorded;
  }
  for (int l = 0; l < L; l++) {
    rc_cell *cell = cells[l];
    rc_seq *s = rc_mem_calloc(c, 1, sizeof *s);
    if (!s) goto fail;
    r->s[l] = s;
    s->cell = cell;
    rc_cell_retain(cell);
    s->T = T;
    s->B = B;
    s->I = cell->input;
    s->H = H;
    s->P = P;
    if (lengths) {
      s->len = rc_mem_alloc(c, (size_t)B * sizeof(int64_t));
      if (!s->len) goto fail;
      memcpy(s->len, lengths, (size_t)B * sizeof(int64_t));
    }
    int64_t asize[1] = {rn_carve(s, NULL)};
    s->arena = rc_empty(c, 1, asize);
    if (!s->arena) goto fail;
    rn_carve(s, rc_data(s->arena));
    if (o->fws_floats && !(s->fws = rn_workspace(cell, 0, o->fws_floats(B, H)))) goto fail;
    if (rn_reserve_packing(cell, 1)) goto fail;
    if (l == 0) {
      s->xsave = rc_raw_contiguous(x);
    } else {
      s->xsave = r->mid[l - 1];
      rc_retain(s->xsave);
    }
    if (!s->xsave) goto fail;
    s->xver = s->xsave->storage->version;
    s->x = rc_data(s->xsave);
    for (int p = 0; p < np; p++) {
      s->w[p] = rc_detach(cell->param[p]);
      if (!s->w[p]) goto fail;
      s->wver[p] = cell->param[p]->storage->version;
    }
    rc_tensor *out = rc_empty(c, 3, size);
    if (!out) goto fail;
    if (l < L - 1)
      r->mid[l] = out;
    else
      *y = out;
    s->y = rc_data(out);
    for (int k = 0; k < ns; k++) {
      state_out[l * RC_CELL_MAX_STATES + k] = rc_empty(c, 2, size + 1);
      if (!state_out[l * RC_CELL_MAX_STATES + k]) goto fail;
      rn_load_state(s, k, state0 ? state0[l * RC_CELL_MAX_STATES + k] : NULL);
    }
  }
  w = wave_new(c, r->s, L, &packs, H, P);
  if (!w) goto fail;
  for (int l = 1; l < L; l++) {
    rn_pack(&w->wx[l], rc_data(packs) + (l - 1) * rn_pack_floats(H, P), rc_data(r->s[l]->w[0]), P,
            0, H, P);
    w->wx[l].ctx = c; /* the GEMM trace sees these products too */
  }
  /* layer 1's input projection runs ahead of its steps on the caller, in pieces of two
   * steps (wave_project_rows), when there are at least 4 pieces; else the two threads
   * compute a share of it each at the start of the wave (split before it, the product
   * started a thread of its own, which could meet the helper still spinning from the last
   * sequence on the other core: 0.65-0.8 ms for a product that takes 0.33 ms alone), or the
   * caller both shares when it runs alone */
  int64_t ahead = wave_project_rows(r->s[0]);
  if (ahead) {
    r->s[0]->proj_rows = ahead;
    r->s[0]->proj_done = 0;
    w->proj_t = 0;
  } else if (team) {
    w->proj_t = T / 2;
    atomic_store(&w->proj_done, 0);
  } else { /* alone: the two threads' shares one after the other, at one BLAS thread */
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    rn_input_projection_rows(r->s[0], 0, T / 2 * B);
    rn_input_projection_rows(r->s[0], T / 2 * B, T * B);
    openblas_set_num_threads(threads);
    w->proj_t = 0;
  }
  run_layers(w, NULL, NULL, team);
  r->s[0]->proj_rows = 0;
  wave_free(c, w);
  w = NULL;
  rc_release(packs);
  packs = NULL;
  for (int l = 0; l < L; l++) {
    rc_seq *s = r->s[l];
    s->y = NULL;
    s->fws = NULL;
    for (int k = 0; k < ns; k++)
      memcpy(rc_data(state_out[l * RC_CELL_MAX_STATES + k]), s->st[k] + T * B * H,
             (size_t)(B * H) * sizeof(float));
  }
recorded:
  if (!record) {
    rec_free(r);
    rc_mem_free(c, ins);
    return 0;
  }
  rc_node *n = rc_node_new(c, "RNNStackBackward", stack_backward, ins, n_in, n_out);
  if (!n) goto fail;
  n->ext = r;
  n->ext_free = rec_free_ext;
  rc_node_set_output(n, 0, *y);
  for (int l = 0; l < L; l++)
    for (int k = 0; k < ns; k++)
      rc_node_set_output(n, 1 + l * ns + k, state_out[l * RC_CELL_MAX_STATES + k]);
  rc_node_release(n);
  rc_mem_free(c, ins);
  return 0;

fail:
  wave_free(c, w);
  rc_release(packs);
  rec_free(r);
  rc_mem_free(c, ins);
  rc_release(*y);
  *y = NULL;
  for (int i = 0; i < L * RC_CELL_MAX_STATES; i++) {
    rc_release(state_out[i]);
    state_out[i] = NULL;
  }
  return -1;
}

/* The layers' recurrences backward through the wavefront, then each layer's whole-sequence
 * products (post_task). */
static int stack_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  stack_rec *r = n->ext;
  rc_ctx *c = n->ctx;
  if (!r)
    return rc_error(c,
                    "backward: %s was already run and its saved tensors freed; call "
                    "backward with retain_graph = true to run it twice",
                    n->name);
  if (r->split) return split_backward(n, r->split, gout, gin);
  int L = r->L;
  rc_seq **s = r->s;
  const rn_ops *o = s[0]->cell->ops;
  int ns = o->n_states, np = o->n_params;
  int64_t T = s[0]->T, B = s[0]->B, H = s[0]->H, P = s[0]->P, TB = T * B;
  if (s[0]->xsave->storage->version != s[0]->xver)
    return rc_error(c,
                    "backward: the input of %s was modified by an in-place operation after "
                    "the forward; clone() it before modifying",
                    n->name);
  if (rn_check_params(c, s, L, n->name)) return -1;
  int rc = -1;
  rc_tensor *dy = NULL, *dyl = NULL, *packs = NULL;
  rc_tensor **dst = rc_mem_calloc(c, (size_t)(L * ns), sizeof *dst);
  rc_bw *bw = rc_mem_calloc(c, (size_t)L, sizeof *bw);
  rn_wave *w = NULL;
  if (!dst || !bw) goto done;
  if (!(dy = rc_raw_contiguous(gout[0]))) goto done;
  for (int i = 0; i < L * ns; i++)
    if (!(dst[i] = rc_raw_contiguous(gout[1 + i]))) goto done;
  if (node_grads(n, o, gin)) goto done;
  int64_t dysize[1] = {rn_r16(TB * H) * (L - 1)};
  if (!(dyl = rc_empty(c, 1, dysize))) goto done;
  int64_t off_run = rn_r16(TB * P), run = rn_r16(B * H);
  for (int l = 0; l < L; l++) {
    rc_cell *cell = s[l]->cell;
    int64_t extra = o->bws_floats ? o->bws_floats(T, B, H) : 0;
    float *ws = rn_workspace(cell, 1, off_run + RC_CELL_MAX_STATES * run + extra);
    if (!ws || rn_reserve_packing(cell, 1)) goto done;
    rc_bw *b = &bw[l];
    for (int p = 0; p < np; p++)
      b->dp[p] = gin[in_param(o, l, p)] ? rc_data(gin[in_param(o, l, p)]) : NULL;
    b->dy = l == L - 1 ? rc_data(dy) : rc_data(dyl) + l * rn_r16(TB * H);
    b->dG = ws;
    for (int k = 0; k < ns; k++) {
      b->d[k] = ws + off_run + k * run;
      memcpy(b->d[k], rc_data(dst[l * ns + k]), (size_t)(B * H) * sizeof(float));
    }
    b->ws = ws + off_run + RC_CELL_MAX_STATES * run;
  }
  if (!(w = wave_new(c, s, L, &packs, P, H))) goto done;
  for (int l = 0; l < L; l++) {
    w->dy[l] = (float *)bw[l].dy;
    w->dG[l] = bw[l].dG;
    if (l > 0) { /* op = W_x^T [P, H] */
      rn_pack(&w->wx[l], rc_data(packs) + (l - 1) * rn_pack_floats(P, H), rc_data(s[l]->w[0]), P, 1,
              P, H);
      w->wx[l].ctx = c;
    }
  }
  post_list post = {bw, gin[0] ? rc_data(gin[0]) : NULL, {0, 0}};
  int whole = (H > s[0]->I ? H : s[0]->I) * P * TB < POST_WHOLE_MAX;
  run_layers(w, bw, whole ? &post : NULL, wave_team(s[0]->cell));
  if (!whole) post_take(w, &post, 0);
  for (int l = 0; l < L; l++)
    for (int k = 0; k < ns; k++)
      if (gin[in_state(o, l, k)])
        memcpy(rc_data(gin[in_state(o, l, k)]), bw[l].d[k], (size_t)(B * H) * sizeof(float));
  rc = 0;
done:
  wave_free(c, w);
  rc_release(packs);
  rc_release(dy);
  rc_release(dyl);
  if (dst)
    for (int i = 0; i < L * ns; i++) rc_release(dst[i]);
  rc_mem_free(c, dst);
  rc_mem_free(c, bw);
  if (rc)
    for (int k = 0; k < n->n_in; k++) {
      rc_release(gin[k]);
      gin[k] = NULL;
    }
  return rc;
}

/* The batch split's backward (rnn_split.c): the node's gradients as stack_backward makes them,
 * filled by both shares. */
static int split_backward(rc_node *n, rn_split *sp, rc_tensor **gout, rc_tensor **gin) {
  rc_ctx *c = n->ctx;
  stack_rec *r = n->ext;
  int L = r->L;
  if (rn_split_check(sp, n->name)) return -1;
  const rn_ops *o = rn_split_cell(sp)->ops;
  int ns = o->n_states, np = o->n_params, nst = L * RC_CELL_MAX_STATES;
  int rc = -1;
  rc_tensor *dy = NULL;
  rc_tensor **dst = rc_mem_calloc(c, (size_t)nst, sizeof *dst);
  float **dfin = rc_mem_calloc(c, (size_t)nst, sizeof *dfin);
  float **dstate = rc_mem_calloc(c, (size_t)nst, sizeof *dstate);
  float **dp = rc_mem_calloc(c, (size_t)(L * RC_CELL_MAX_PARAMS), sizeof *dp);
  if (!dst || !dfin || !dstate || !dp) goto done;
  if (!(dy = rc_raw_contiguous(gout[0]))) goto done;
  for (int l = 0; l < L; l++)
    for (int k = 0; k < ns; k++) {
      int i = l * RC_CELL_MAX_STATES + k;
      if (!(dst[i] = rc_raw_contiguous(gout[1 + l * ns + k]))) goto done;
      dfin[i] = rc_data(dst[i]);
    }
  if (node_grads(n, o, gin)) goto done;
  for (int l = 0; l < L; l++) {
    for (int k = 0; k < ns; k++)
      if (gin[in_state(o, l, k)])
        dstate[l * RC_CELL_MAX_STATES + k] = rc_data(gin[in_state(o, l, k)]);
    for (int p = 0; p < np; p++)
      if (gin[in_param(o, l, p)]) dp[l * RC_CELL_MAX_PARAMS + p] = rc_data(gin[in_param(o, l, p)]);
  }
  rc = rn_split_backward(sp, rc_data(dy), dfin, gin[0] ? rc_data(gin[0]) : NULL, dstate, dp,
                         wave_team(rn_split_cell(sp)));
done:
  rc_release(dy);
  if (dst)
    for (int i = 0; i < nst; i++) rc_release(dst[i]);
  rc_mem_free(c, dst);
  rc_mem_free(c, dfin);
  rc_mem_free(c, dstate);
  rc_mem_free(c, dp);
  if (rc)
    for (int k = 0; k < n->n_in; k++) {
      rc_release(gin[k]);
      gin[k] = NULL;
    }
  return rc;
}
