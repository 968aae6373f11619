/* Internals shared by the fused cells (runtime/rnn_*.c). Not a public header. */
#ifndef RECUR_RNN_IMPL_H
#define RECUR_RNN_IMPL_H

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "rnn.h"

/* OpenBLAS's cblas.h pulls in <complex.h>, whose I macro we do not want. */
#ifdef I
#undef I
#endif

#define RN_MAX_AUX 5
#define RN_PACK_SLOTS 4
/* rows * units from which an elementwise pass is shared with the helper thread (at batch 32:
 * H = 256 gains about 10% with 2 threads, H = 128 nothing) */
#define RN_ROWS_MIN 8192

#include "team.h"               /* the context's helper thread */
typedef struct rn_wave rn_wave; /* a layer wavefront over a stack (runtime/rnn_stack.c) */

/* One forward call: its sizes, the saved buffers (all float arrays carved from one arena),
 * and aliases of the tensors backward reads, with their versions. */
typedef struct rc_seq {
  rc_cell *cell;
  int64_t T, B, I, H, P; /* P = gates * H */
  int64_t *len;          /* NULL or B lengths */
  rc_tensor *arena;      /* owned (NULL in step mode: the cell's step workspace) */
  rc_tensor *xsave;      /* owned: contiguous x as [T*B, I] (an alias when x was contiguous) */
  uint32_t xver;
  rc_tensor *w[RC_CELL_MAX_PARAMS]; /* owned aliases of the parameters */
  uint32_t wver[RC_CELL_MAX_PARAMS];
  const float *x;                /* [T*B, I] */
  float *pre;                    /* [T*B, P]: x W_x + b, then the cell's saved gate values */
  float *st[RC_CELL_MAX_STATES]; /* [(T+1)*B, H]: state histories, row 0 = initial state */
  float *aux[RN_MAX_AUX];        /* cell-specific, sizes from the ops table */
  float *fws;                    /* forward scratch (cell workspace): fws_floats(B) floats */
  float *y;                      /* [T*B, H] outputs (forward only) */
  rn_wave *wave;                 /* NULL, or the stack this sequence is layer `layer` of */
  int layer;
  /* 0: pre = x W_x + b was computed for every step before the first; else it is computed
   * proj_rows rows at a time as the steps reach it (rn_project_ahead), proj_done so far */
  int64_t proj_rows, proj_done;
  /* NULL, or (a batch-1 step of generation, runtime/rnn_generate.c) the step's first recurrent
   * product h W_h[:, 0 .. rec_gates * H), computed ahead by rn_vecmat: rn_rec_pgemm uses it */
  const float *rec;
} rc_seq;

/* What backward hands to a cell. Running state gradients d[k] ([B, H]) hold the gradient of
 * the final state on entry and must hold the initial state's gradient on exit. */
typedef struct {
  const float *dy;               /* [T*B, H] */
  float *d[RC_CELL_MAX_STATES];  /* [B, H] running state gradients */
  float *dG;                     /* [T*B, P]: the gradient of x W_x + b (cell fills it all) */
  float *dp[RC_CELL_MAX_PARAMS]; /* parameter gradients or NULL when not needed: W_x's and
                                    W_h's uninitialised (the cell overwrites W_h's with
                                    beta-0 GEMMs), the others zeroed; the cell fills every
                                    one except W_x and b */
  float *ws;                     /* scratch: bws_floats(T, B) floats */
} rc_bw;

/* Buffer sizes: (T + extra_steps) * B * (h_mult * H + plus) floats. */
typedef struct {
  int extra_steps;
  int h_mult;
  int plus;
} rn_size;

/* A fused cell: everything the shared driver (rnn_common.c) needs to know about it. A cell's
 * file defines one (const rn_ops rn_ops_<cell>) and runtime/rnn_cells.h lists it. */
typedef struct rn_ops {
  const char *name;    /* the kind's name, "lstm" */
  const char *bw_name; /* the autograd node's name, "LSTMBackward" */
  int gates, n_states, has_bias;
  const char *state_names[RC_CELL_MAX_STATES];
  int n_params;
  const char *param_names[RC_CELL_MAX_PARAMS];
  int n_aux;
  rn_size aux[RN_MAX_AUX];
  int64_t (*fws_floats)(int64_t B, int64_t H);            /* forward scratch */
  int64_t (*bws_floats)(int64_t T, int64_t B, int64_t H); /* backward scratch */
  /* shapes of parameters 2.. (0 = W_x [I, P], 1 = W_h [H, P]); returns ndim */
  int (*param_shape)(int k, int64_t H, int64_t *size);
  void (*init)(rc_cell *cell);           /* after the generic uniform init: biases, scales */
  void (*forward)(rc_seq *s);            /* pre = x W_x + b and st[k][0] set; fills the rest */
  void (*backward)(rc_seq *s, rc_bw *b); /* the recurrence, backward over t */
  void (*wgrad)(rc_seq *s, rc_bw *b);    /* then W_h's gradient (whole-sequence products) */
  /* the packing workspaces its recurrences use (bit k: slot k), or 0; a cell with them and
   * the wavefront hooks in its loops (rn_wave_fwd_*, rn_wave_bwd_*) can run in a stack */
  int pack_slots;
  /* nothing in its recurrence sums over the batch's rows (a peephole's or b_hn's gradient
   * does): a stack of it may split the batch between two threads (rnn_split.c) with the same
   * arithmetic for each row */
  int rows_apart;
  /* its forward's first recurrent product is h W_h[:, 0 .. rec_gates * H), h = state 0 before
   * the step, made by rn_rec_pgemm (generation computes it ahead, on the helper thread), or 0 */
  int rec_gates;
  const struct rn_ops *reset_after; /* the variant reset_after = true selects, or NULL */
} rn_ops;

/* Every cell (the rows of runtime/rnn_cells.h), NULL-terminated; in runtime/rnn_cells.c, alone
 * in its object file so that a test binary can link its own table in its place. */
extern const rn_ops *const rn_cells[];

struct rc_cell {
  int refcount;
  rc_ctx *ctx;
  int kind; /* the index of its row in rn_cells */
  int reset_after;
  int64_t input, hidden;
  const rn_ops *ops;
  rc_tensor *param[RC_CELL_MAX_PARAMS];
  rc_team *team; /* the helper thread (more than one BLAS thread), or NULL */
  int team_on;   /* whether the current sequence shares its products with it */
  int in_wave;   /* set while a wavefront runs it beside another layer: no helper thread */
  /* a wavefront whose bottom layer it is (rnn_stack.c): the rows of each handed-over step
   * that the caller's thread computes, forward [0] and backward [1], carried from one
   * sequence to the next, the batch they are for, and each direction's last imbalance */
  int64_t wave_rows[2], wave_rows_B;
  double wave_skew[2];
  rc_tensor *ws[3 + 2 * RN_PACK_SLOTS]; /* workspaces: forward scratch, backward scratch, step
                                          arena, packed weights (two banks: the second for a
                                          share of the batch on the helper thread) */
};

/* n rounded up to a multiple of 16 floats (64 bytes). */
static inline int64_t rn_r16(int64_t n) {
  return (n + 15) & ~(int64_t)15;
}

/* Is sequence b still running at step t? */
static inline int rn_active(const rc_seq *s, int64_t t, int64_t b) {
  return !s->len || t < s->len[b];
}

/* C [M, N] (row stride ldc) = alpha op(A) op(B) + beta C, where op(A) is [M, K] (A stored
 * [M, K] with row stride lda, or [K, M] when ta) and op(B) is [K, N] (B stored [K, N], or
 * [N, K] when tb). beta = 0 overwrites C (even NaN). rc_sgemm (runtime/gemm.h) with the
 * cells' argument order; in runtime/rnn_gemm.c, beside the packed products. */
void rn_gemm(rc_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
             const float *B, int64_t ldb, int tb, float *C, int64_t ldc, float alpha, float beta);

/* The LSTM family's init: forget-gate bias (the second block of b = param[2]) at 1.0. */
void rn_init_forget_bias(rc_cell *cell);

/* A weight op(W) [K, N] prepared for many products with small left operands (the per-step
 * recurrences): packed into column panels when that pays (runtime/rnn_gemm.c), else the plain
 * matrix (W [K, N] with row stride ldw, or W [N, K] when trans). */
typedef struct {
  const float *w;
  int64_t ldw;
  int trans;
  int64_t K, N;
  const float *p; /* the panels, or NULL */
  int kind;
  rc_team *team; /* splits each product with a helper thread, or NULL */
  rc_ctx *ctx;   /* whose trace of products records them (runtime/gemm.h), or NULL */
} rn_pmat;

/* The helper to share a step's elementwise pass over n rows of H units with: m's, when m
 * shares its products and the pass is large enough to pay for the hand-over; else NULL. */
static inline rc_team *rn_rows_team(const rn_pmat *m, int64_t n, int64_t H) {
  return n >= 2 && n * H >= RN_ROWS_MIN ? m->team : NULL;
}

/* c[j] = a W[:, j] (+ add[j] when add) for the columns j0 <= j < j1 of W [K, N] (row stride
 * ldw) with kernel `kind` (rn_vecmat_kind): one row's product, each column summed over k in order
 * from zero (a fused multiply-add per term where the packed kernels run, the same arithmetic as
 * theirs for each row), then the add; the result does not depend on j0 and j1 (runtime/rnn_gemm.c).
 * rn_pgemm, rn_pgemm_bias and the input projection take it for a single row of an unpacked,
 * untransposed weight, so that a batch-1 step and generation give the same bits. */
void rn_vecmat(int kind, int64_t K, const float *a, const float *W, int64_t ldw, const float *add,
               float *c, int64_t j0, int64_t j1);
/* the kernel rn_vecmat runs (the CPU's widest, or RECUR_GEMM_KERNEL's): read once per loop of
 * products, since it reads the environment (no global may cache it) */
int rn_vecmat_kind(void);

/* Floats a packed copy of a [K, N] weight needs (with room for alignment). */
int64_t rn_pack_floats(int64_t K, int64_t N);
/* Is packing worth it for `uses` products with M rows each (and does this CPU have a kernel)? */
int rn_pack_wanted(int64_t M, int64_t uses);
/* Prepares m for op(W); dst (rn_pack_floats(K, N) floats) NULL = no packing. */
void rn_pack(rn_pmat *m, float *dst, const float *W, int64_t ldw, int trans, int64_t K, int64_t N);
/* C [M, N] (row stride ldc) = A [M, K] (row stride lda) op(W) + beta C, beta 0 or 1 (0
 * overwrites C). */
void rn_pgemm(const rn_pmat *m, int64_t M, const float *A, int64_t lda, float *C, int64_t ldc,
              float beta);
/* C = A op(W) + bias, the row bias [N] added to every row (same bits as C filled with it and
 * rn_pgemm with beta 1). */
void rn_pgemm_bias(const rn_pmat *m, int64_t M, const float *A, int64_t lda, const float *bias,
                   float *C, int64_t ldc);
/* Prepares m, packed into the cell's packing workspace `slot` (0 .. RN_PACK_SLOTS - 1) when
 * packing pays for `uses` products of M rows (plain when the workspace cannot be grown). */
void rn_prepare(rc_cell *cell, int slot, rn_pmat *m, const float *W, int64_t ldw, int trans,
                int64_t K, int64_t N, int64_t M, int64_t uses);

/* A forward's first recurrent product at a step, C [B, N] (row stride ldc) = h op(W) (+ C
 * when beta is 1), h = s's state 0 before the step: the product generation handed in (s->rec,
 * batch 1: the same bits as rn_pgemm's, since both add one finished product to C) or rn_pgemm. */
static inline void rn_rec_pgemm(const rc_seq *s, const rn_pmat *m, const float *h, float *C,
                                int64_t ldc, float beta) {
  if (!s->rec) {
    rn_pgemm(m, s->B, h, s->H, C, ldc, beta);
    return;
  }
  if (beta != 0.0f)
    for (int64_t j = 0; j < m->N; j++) C[j] = C[j] + s->rec[j];
  else
    memcpy(C, s->rec, (size_t)m->N * sizeof(float));
}

/* Several builds of a hot elementwise function (AVX-512, AVX2, baseline), chosen at load
 * time; every operation is correctly rounded IEEE (no FMA contraction under -std=c11), so all
 * give identical bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(RECUR_NO_CLONES)
#define RN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RN_CLONES
#endif

/* The wavefront's hooks (runtime/rnn_stack.c), called by a cell's loops around step t: in
 * forward, _in before the step reads pre[t] (it waits for the layer below and finishes
 * pre[t] = b + x[t] W_x), _out after y[t] is written; in backward, _in before dy[t] is read,
 * _out after dG[t] is final. Outside a wavefront, the forward's _in computes the next rows of
 * pre when the sequence projects them ahead (proj_rows), and the others do nothing. */
void rn_wave_fwd_in_(rc_seq *s, int64_t t);
void rn_wave_fwd_out_(rc_seq *s, int64_t t);
void rn_wave_bwd_in_(rc_seq *s, int64_t t);
void rn_wave_bwd_out_(rc_seq *s, int64_t t);
/* the next proj_rows rows of pre (runtime/rnn_common.c) */
void rn_project_ahead(rc_seq *s);
/* a sequence about to run layer by layer: its whole projection now, or set to run ahead of
 * its steps (runtime/rnn_common.c) */
void rn_projection_start(rc_seq *s);
/* pre's rows through step t, when the sequence projects them ahead and has not yet */
static inline void rn_project_through(rc_seq *s, int64_t t) {
  if (s->proj_rows && s->proj_done < (t + 1) * s->B) rn_project_ahead(s);
}
static inline void rn_wave_fwd_in(rc_seq *s, int64_t t) {
  if (s->wave)
    rn_wave_fwd_in_(s, t);
  else
    rn_project_through(s, t);
}
static inline void rn_wave_fwd_out(rc_seq *s, int64_t t) {
  if (s->wave) rn_wave_fwd_out_(s, t);
}
static inline void rn_wave_bwd_in(rc_seq *s, int64_t t) {
  if (s->wave) rn_wave_bwd_in_(s, t);
}
static inline void rn_wave_bwd_out(rc_seq *s, int64_t t) {
  if (s->wave) rn_wave_bwd_out_(s, t);
}

/* The sequence driver's pieces that the stack driver shares (runtime/rnn_common.c). */
/* 0, or -1 with a message when a parameter of the layers s[0 .. L-1] was changed in place
 * since their forward (named, unless it shares its storage with another of them) */
int rn_check_params(rc_ctx *c, rc_seq *const *s, int L, const char *name);
float *rn_workspace(rc_cell *cell, int w, int64_t n);
int64_t rn_carve(rc_seq *s, float *base);
void rn_seq_free(rc_seq *s);
void rn_load_state(rc_seq *s, int k, rc_tensor *h);
void rn_input_projection(rc_seq *s);
/* ... of rows r0 .. r1 - 1 (steps times batch) only */
void rn_input_projection_rows(rc_seq *s, int64_t r0, int64_t r1);
int rn_check_args(rc_cell *cell, const char *fn, rc_tensor *x, int xdim, rc_tensor *const *state0,
                  const int64_t *lengths, int64_t *T, int64_t *B);
/* Grows the packing workspaces that cell's recurrences use, in `banks` banks (1, or 2 for a
 * batch split between two threads), so that nothing is allocated while they run on another
 * thread: 0, or -1 with a message. */
int rn_reserve_packing(rc_cell *cell, int banks);
/* The bank of packing workspaces rn_prepare packs into on this thread (0; 1 on the helper
 * while it runs its share of a batch split). */
extern _Thread_local int rn_pack_bank;

/* One batch-1 step of cell for generation (runtime/rnn_generate.c): pre = b + x W_x (P
 * floats) and rec (its first recurrent product, or NULL: the cell computes it) handed in;
 * state[k] (H floats each) read and overwritten; y [H]. 0, or -1 with a message. */
int rn_step_given(rc_cell *cell, const float *pre, const float *rec, float *const *state, float *y);

/* A stack run with its batch split between two threads (runtime/rnn_split.c). */
typedef struct rn_split rn_split;
/* whether a stack of L layers of c0's kind with a batch of B splits it */
int rn_split_wanted(const rc_cell *c0, int L, int64_t B);
/* Runs the stack's L layers over x [T, B, I] (arguments checked by the caller) into y
 * [T, B, H] and the final states (state_out: L * RC_CELL_MAX_STATES, [B, H] each, allocated),
 * on two threads with the helper t (else on the caller); the record for backward, or NULL
 * with a message. */
rn_split *rn_split_forward(rc_cell *const *cells, int L, rc_tensor *x, rc_tensor *const *state0,
                           const int64_t *lengths, float *y, rc_tensor **state_out, rc_team *t);
/* an error naming the node when x or a parameter changed in place since the forward */
int rn_split_check(const rn_split *sp, const char *name);
/* Backward from dy [T, B, H] and the final states' gradients (dfin, L * RC_CELL_MAX_STATES,
 * NULL entries for none): the input's gradient (dx or NULL), the initial states' (dstate:
 * entries NULL where not needed) and the parameters' (dp: L * RC_CELL_MAX_PARAMS, NULL where
 * not needed; W_x's and W_h's overwritten, the others zeroed by the caller). 0, or -1. */
int rn_split_backward(rn_split *sp, const float *dy, float *const *dfin, float *dx,
                      float *const *dstate, float *const *dp, rc_team *t);
void rn_split_free(rn_split *sp);
/* its bottom layer's cell */
rc_cell *rn_split_cell(const rn_split *sp);

/* Column sums of a [rows, cols] row-major matrix (row stride ld) added into out. */
void rn_colsum_add(const float *a, int64_t rows, int64_t cols, int64_t ld, float *out);

/* dh = dG op(W_h) for step t's active rows (dG [B, ldg]; tmp: B H floats of scratch): without
 * lengths every row is active and the product goes straight into dh (which the step's row
 * pass has already read), else through tmp, copying the active rows. */
static inline void rn_step_dh(const rc_seq *s, int64_t t, const rn_pmat *pw, const float *dG,
                              int64_t ldg, float *tmp, float *dh) {
  int64_t B = s->B, H = s->H;
  if (!s->len) {
    rn_pgemm(pw, B, dG, ldg, dh, H, 0.0f);
    return;
  }
  rn_pgemm(pw, B, dG, ldg, tmp, H, 0.0f);
  for (int64_t b = 0; b < B; b++)
    if (rn_active(s, t, b)) memcpy(dh + b * H, tmp + b * H, (size_t)H * sizeof(float));
}

#endif
