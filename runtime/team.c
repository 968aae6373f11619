/* A runtime context's helper thread (rc_team): with more than one BLAS thread (recur.threads),
 * the context keeps one, created on first use, and everything that splits work in two hands
 * the second half to it: a large matrix product (runtime/gemm.c, by columns or rows), each
 * per-step product of a fused cell and the elementwise passes between them
 * (runtime/rnn_gemm.c), the layer wavefront's second thread (runtime/rnn_stack.c). One
 * thread per context, so those never compete with each other for the second core, and no
 * thread is started per product (20-50 us each). A split asked for while the helper is busy
 * (from inside a job) runs whole on the caller. While another process keeps a core busy, jobs
 * run whole too (rc_team_usable). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "team.h"

#ifdef __linux__
#include <unistd.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TEAM_X86 1
#endif

#define TEAM_LOAD_EVERY_S 0.05
#define TEAM_KINDS 64    /* kinds of split job whose shares are learned apart */
#define TEAM_LOAD_RING 5 /* the load is judged over the last four intervals: 200 ms */

/* ---- the helper ----
 * The helper spins (with pause, yielding now and then) for a short while after each job, then
 * sleeps on a condition variable, so it does not compete with OpenBLAS's own threads. */
struct rc_team {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int posted, finished, sleeping, quit;
  /* the job: fn(arg, lo, hi) on the helper's share; the CPU the caller posted it from */
  rc_range_fn fn;
  void *arg;
  int64_t lo, hi;
  int cpu;
  /* adaptivity (the posting thread only): jobs shared since the last decision, how many found
   * the helper late */
  int jobs, late;
  double off_until; /* jobs run alone until then (now_s), after late helpers */
  double off_s;     /* the last back-off's length: doubles while trials keep failing */
  int streak;       /* layer wavefront runs found late in a row */
  /* the machine's load, read every TEAM_LOAD_EVERY_S: the last TEAM_LOAD_RING readings */
  rc_load_reading load[TEAM_LOAD_RING];
  long load_n; /* readings taken */
  int busy;    /* a job is running: set by the thread that posts it (a split asked for from
                * inside the job, on either thread, then runs whole) */
  /* weighted splits (rc_team_cut): the caller's share of each kind of job (its key), learned
   * from both threads' time per unit of work, in a small table indexed by the key (a kind
   * that lands on a slot held by another starts again from `share`, the last share learned of
   * any kind); when the last job was posted (caller), how long after it the helper began and
   * how long its part took (helper, before `finished`) */
  struct {
    uint64_t key;
    double share; /* 0: the slot is free */
  } kind[TEAM_KINDS];
  double share;
  double post_at, helper_wait_s, helper_s;
};

#define TEAM_SPINS 4000

static inline void cpu_relax(void) {
#ifdef TEAM_X86
  _mm_pause();
#endif
}

/* Moves the calling thread off `cpu` when another CPU is allowed, then allows `cpu` again
 * (the thread stays where it was moved). A helper woken up from its sleep is often placed
 * on the CPU of the thread that woke it when the other CPUs look busy, for instance with
 * OpenBLAS's idle threads, which spin (yielding) for a while after each call; the two
 * halves of every product then take turns on one core for the whole sequence, and the
 * scheduler does not separate them (moving one of three busy threads does not balance the
 * load better). */
static void move_off(int cpu) {
#ifdef __linux__
  cpu_set_t all, other;
  if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof all, &all)) return;
  other = all;
  CPU_CLR(cpu, &other);
  if (CPU_COUNT(&other) == 0) return;
  if (sched_setaffinity(0, sizeof other, &other) == 0) sched_setaffinity(0, sizeof all, &all);
#else
  (void)cpu;
#endif
}

static int this_cpu(void) {
#ifdef __linux__
  return sched_getcpu();
#else
  return -1;
#endif
}

static double now_s(void);

static void *team_main(void *arg) {
  rc_team *t = arg;
  int seen = 0;
  for (;;) {
    int spins = 0;
    while (atomic_load_explicit(&t->posted, memory_order_acquire) == seen) {
      if (++spins < TEAM_SPINS) {
        /* yield now and then: OpenBLAS's own threads may need this core */
        if (spins % 32 == 0)
          sched_yield();
        else
          cpu_relax();
        continue;
      }
      pthread_mutex_lock(&t->mu);
      atomic_store(&t->sleeping, 1);
      while (atomic_load(&t->posted) == seen) pthread_cond_wait(&t->cv, &t->mu);
      atomic_store(&t->sleeping, 0);
      pthread_mutex_unlock(&t->mu);
      spins = 0;
    }
    seen = atomic_load_explicit(&t->posted, memory_order_acquire);
    if (atomic_load(&t->quit)) break;
    if (t->cpu >= 0 && this_cpu() == t->cpu) move_off(t->cpu);
    double began = now_s();
    t->helper_wait_s = began - t->post_at;
    t->fn(t->arg, t->lo, t->hi);
    t->helper_s = now_s() - began;
    atomic_store_explicit(&t->finished, seen, memory_order_release);
  }
  return NULL;
}

static void team_post(rc_team *t) {
  atomic_fetch_add(&t->posted, 1);
  if (atomic_load(&t->sleeping)) {
    pthread_mutex_lock(&t->mu);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define TEAM_BACK_OFF_S 0.1
#define TEAM_BACK_OFF_MAX_S 3.2
/* Jobs run alone for TEAM_BACK_OFF_S, then twice as long each time the trial after it fails too
 * (a late trial beside a busy process can take tens of milliseconds), up to
 * TEAM_BACK_OFF_MAX_S. */
static void back_off(rc_team *t) {
  t->off_s = t->off_s > 0.0 ? t->off_s * 2.0 : TEAM_BACK_OFF_S;
  if (t->off_s > TEAM_BACK_OFF_MAX_S) t->off_s = TEAM_BACK_OFF_MAX_S;
  t->off_until = now_s() + t->off_s;
  t->jobs = t->late = t->streak = 0;
}

/* ---- the machine's load ----
 * Whether other processes keep the CPUs this context's two threads use busy: the CPU time
 * those CPUs spent busy (Linux's /proc/stat) less this process's own, over the last 200 ms.
 * A time over a window, not a count of runnable threads at one instant (/proc/loadavg): on
 * the bench's VM a kernel thread now and then, or the helper falling asleep between the
 * reads, made 0.3-14% of instantaneous readings say "busy" with nothing else running, and two
 * in a row 50 ms apart sent a vanilla RNN H = 128 trained on 2 threads down the one-thread
 * path for 43-73 of 400 steps; a busy process is busy in every window. */
rc_load_reading rc_load_read(void) {
  rc_load_reading r = {0};
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  r.at = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#ifdef __linux__
  cpu_set_t mask;
  long hz = sysconf(_SC_CLK_TCK);
  if (sched_getaffinity(0, sizeof mask, &mask) || hz <= 0) return r;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)) return r;
  r.own = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return r;
  char line[256];
  unsigned long long ticks = 0;
  int seen = 0, in_cpus = 0;
  while (fgets(line, sizeof line, f)) {
    int cpu_line = strncmp(line, "cpu", 3) == 0;
    if (!cpu_line && in_cpus) break; /* the per-CPU lines come first, together */
    if (!cpu_line || line[3] < '0' || line[3] > '9') continue;
    in_cpus = 1;
    char *end;
    long cpu = strtol(line + 3, &end, 10);
    unsigned long long user, nice, sys, idle, iowait, irq, softirq;
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask) ||
        sscanf(end, "%llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq,
               &softirq) != 7)
      continue;
    ticks += user + nice + sys + irq + softirq; /* idle, iowait and steal are not busy */
    seen++;
  }
  fclose(f);
  if (seen == 0) return r;
  r.busy = (double)ticks / (double)hz;
  r.ncpu = seen;
  r.ok = 1;
#endif
  return r;
}

double rc_load_others(const rc_load_reading *a, const rc_load_reading *b) {
  if (!a->ok || !b->ok || a->ncpu != b->ncpu || b->at - a->at <= 0.0) return 0.0;
  double others = (b->busy - a->busy) - (b->own - a->own);
  return others > 0.0 ? others / (b->at - a->at) : 0.0;
}

/* Decides whether the next job (a cell's sequence, a product) is shared. When another process
 * keeps the second core busy the helper is often descheduled, and waiting for it costs more
 * than doing its half: if more than a quarter of the last (at least 16) shared jobs found the
 * helper later than the time of the caller's own half, or the wavefront found it late twice
 * in a row, jobs run on the calling thread alone for a while (back_off), then sharing
 * is tried again. A time, not a count of jobs: products, sequences and steps ask at very different
 * rates (a count of 16 refusals, spent by a step's products in a millisecond, left an LSTM
 * H = 128 step at 80 ms against 19.5 on one thread beside a busy loop). */
int rc_team_usable(rc_team *t) {
  if (!t) return 0;
  double now = now_s();
  if (t->off_until > 0.0) {
    if (now < t->off_until) return 0;
    t->off_until = 0.0;
  }
  /* every 50 ms, the machine's load over the last 200 ms: with other processes keeping more
   * than half a CPU busy beyond all but two, a shared job would wait for a helper that takes
   * turns on its core; back off before paying for late jobs, and a trial after a back-off is
   * refused as soon as the load is still there (beside one busy process, 45 vanilla RNN
   * H = 128 steps took 5.7 ms each on two threads against 4.1 on one before this check) */
  rc_load_reading *last = t->load_n ? &t->load[(t->load_n - 1) % TEAM_LOAD_RING] : NULL;
  if (!last || now - last->at >= TEAM_LOAD_EVERY_S) {
    rc_load_reading *r = &t->load[t->load_n % TEAM_LOAD_RING];
    *r = rc_load_read();
    t->load_n++;
    const rc_load_reading *first = &t->load[t->load_n % TEAM_LOAD_RING];
    if (t->load_n >= TEAM_LOAD_RING && r->at - first->at >= 3 * TEAM_LOAD_EVERY_S &&
        rc_load_others(first, r) > r->ncpu - 2 + 0.5) {
      back_off(t);
      return 0;
    }
  }
  if (t->jobs >= 16) {
    int late = 4 * t->late > t->jobs;
    t->jobs = t->late = 0;
    if (late) {
      back_off(t);
      return 0;
    }
    t->off_s = 0.0; /* a window on time: the next back-off starts short again */
  }
  return 1;
}

void rc_team_back_off(rc_team *t) {
  if (t) back_off(t);
}

void rc_team_verdict(rc_team *t, int late) {
  if (!t) return;
  t->streak = late ? t->streak + 1 : 0;
  if (!late) t->off_s = 0.0;
  if (t->streak >= 2) back_off(t);
}

rc_team *rc_team_new(void) {
  rc_team *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  atomic_init(&t->posted, 0);
  atomic_init(&t->finished, 0);
  atomic_init(&t->sleeping, 0);
  atomic_init(&t->quit, 0);
  if (pthread_mutex_init(&t->mu, NULL)) {
    free(t);
    return NULL;
  }
  if (pthread_cond_init(&t->cv, NULL)) {
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NULL;
  }
  if (pthread_create(&t->th, NULL, team_main, t)) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NULL;
  }
  return t;
}

void rc_team_free(rc_team *t) {
  if (!t) return;
  atomic_store(&t->quit, 1);
  team_post(t);
  pthread_join(t->th, NULL);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Runs [0, cut) on the caller and [cut, n) on the helper; returns the caller's time for its
 * part. */
static double run_split(rc_team *t, rc_range_fn fn, void *arg, int64_t n, int64_t cut) {
  t->busy = 1;
  t->fn = fn;
  t->arg = arg;
  t->lo = cut;
  t->hi = n;
  t->cpu = this_cpu();
  int job = atomic_load(&t->posted) + 1;
  t->post_at = now_s();
  team_post(t);
  double t0 = now_s();
  fn(arg, 0, cut);
  double t1 = now_s();
  int spins = 0;
  while (atomic_load_explicit(&t->finished, memory_order_acquire) != job) {
    if (++spins < TEAM_SPINS)
      cpu_relax();
    else
      sched_yield();
  }
  t->busy = 0;
  t->jobs++;
  if (spins > 64 && now_s() - t1 > t1 - t0) t->late++;
  return t1 - t0;
}

void rc_team_split(rc_team *t, rc_range_fn fn, void *arg, int64_t n, int64_t cut) {
  if (!t || cut <= 0 || cut >= n || t->busy) {
    fn(arg, 0, n);
    return;
  }
  run_split(t, fn, arg, n, cut);
}

/* the slot of kind `key` in t's table */
static unsigned kind_slot(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return (unsigned)(key % TEAM_KINDS);
}

/* the caller's learned share of jobs of kind `key`: 0.5 until the team has learned one */
static double kind_share(const rc_team *t, uint64_t key) {
  if (!t) return 0.5;
  unsigned i = kind_slot(key);
  if (t->kind[i].share > 0.0 && t->kind[i].key == key) return t->kind[i].share;
  return t->share > 0.0 ? t->share : 0.5;
}

int64_t rc_team_cut(const rc_team *t, uint64_t key, int64_t n, int64_t unit) {
  if (unit < 1) unit = 1;
  double share = kind_share(t, key);
  int64_t cut = (int64_t)(share * (double)n / (double)unit + 0.5) * unit;
  if (cut > n - 1) cut = (n - 1) / unit * unit;
  return cut < unit ? unit : cut;
}

/* The caller's share moves a fifth of the way to what would have made both parts end together
 * (each thread's units per second in this job), within [0.25, 0.75]; a job whose helper began
 * late (asleep, or descheduled) or whose parts took under 5 us is left out. Kinds are learned
 * apart: the same two cores split a product whose operands one of them wrote last and a pass
 * over rows that each wrote itself at different ratios. */
void rc_team_split_learn(rc_team *t, uint64_t key, rc_range_fn fn, void *arg, int64_t n,
                         int64_t cut) {
  if (!t || cut <= 0 || cut >= n || t->busy) {
    fn(arg, 0, n);
    return;
  }
  double mine = run_split(t, fn, arg, n, cut), theirs = t->helper_s;
  if (mine < 5e-6 || theirs < 5e-6 || t->helper_wait_s > 0.25 * mine) return;
  double rate0 = (double)cut / mine, rate1 = (double)(n - cut) / theirs;
  double share = kind_share(t, key);
  share += 0.2 * (rate0 / (rate0 + rate1) - share);
  share = share < 0.25 ? 0.25 : share > 0.75 ? 0.75 : share;
  unsigned i = kind_slot(key);
  t->kind[i].key = key;
  t->kind[i].share = share;
  t->share = share;
}
