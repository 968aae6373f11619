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
#include <dirent.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TEAM_X86 1
#endif

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
  double load_at;   /* when the machine's load was last read (now_s) */
  int load_busy;    /* what that reading said: another thread wanted a core */
  int busy;         /* a job is running: set by the thread that posts it (a split asked for from
                     * inside the job, on either thread, then runs whole) */
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
    t->fn(t->arg, t->lo, t->hi);
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

/* Whether other processes' threads want the cores this context's two threads use: Linux's
 * count of runnable threads (/proc/loadavg) less this process's own (their states in
 * /proc/self/task), against the CPUs this thread may run on. 0 when it cannot tell (no /proc,
 * or a process of more than 16 threads, such as a host program that embeds recur, where the
 * reading would cost too much). A kernel thread now and then makes one reading say yes:
 * rc_team_usable wants two in a row. */
#define TEAM_LOAD_EVERY_S 0.05
#ifdef __linux__
#define TEAM_LOAD_MAX_TASKS 16 /* beyond, reading every thread's state costs too much: unknown */
static int own_running(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0, tasks = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    if (++tasks > TEAM_LOAD_MAX_TASKS) {
      n = -1;
      break;
    }
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    const char *p = strrchr(buf, ')'); /* "tid (comm) S ...": the state after the name */
    if (p && p[1] == ' ' && p[2] == 'R') n++;
  }
  closedir(d);
  return n;
}
#endif

static int contended(void) {
#ifdef __linux__
  FILE *f = fopen("/proc/loadavg", "r");
  if (!f) return 0;
  double l1, l5, l15;
  int running = 0, total = 0;
  int ok = fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &running, &total) == 5;
  fclose(f);
  cpu_set_t cpus;
  int own = ok ? own_running() : -1;
  if (own < 0 || sched_getaffinity(0, sizeof cpus, &cpus)) return 0;
  return running - own > CPU_COUNT(&cpus) - 2;
#else
  return 0;
#endif
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
  /* every 50 ms, the machine's load: with another thread wanting a core (two readings in a
   * row), a shared job would wait for a helper that takes turns on its core; back off before
   * paying for late jobs, and a trial after a back-off is refused as soon as the load is still
   * there (beside one busy process, 45 vanilla RNN H = 128 steps took 5.7 ms each on two
   * threads against 4.1 on one before this check) */
  if (now - t->load_at >= TEAM_LOAD_EVERY_S) {
    int busy = contended(), before = t->load_busy;
    t->load_at = now;
    t->load_busy = busy;
    if (busy && before) {
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

void rc_team_wave_verdict(rc_team *t, int late) {
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

void rc_team_split(rc_team *t, rc_range_fn fn, void *arg, int64_t n, int64_t cut) {
  if (!t || cut <= 0 || cut >= n || t->busy) {
    fn(arg, 0, n);
    return;
  }
  t->busy = 1;
  t->fn = fn;
  t->arg = arg;
  t->lo = cut;
  t->hi = n;
  t->cpu = this_cpu();
  int job = atomic_load(&t->posted) + 1;
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
}
