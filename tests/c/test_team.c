/* The runtime context's helper thread (runtime/team.c): a split job runs both shares, one on
 * the helper; a split asked for from inside a job runs whole; and with other processes' busy
 * threads on the CPUs the two threads need, rc_team_usable refuses jobs (the load over the
 * last 200 ms), then shares again once they are gone; this process's own threads are not
 * load. Nothing is timed: the test waits for the readings, and only where the busy processes
 * can make the cores scarce (at most 8 CPUs) on a machine quiet to begin with. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../runtime/team.h"
#include "test.h"

static rc_team *g_team;
static int64_t g_mark[1000];

static void mark(void *arg, int64_t lo, int64_t hi) {
  (void)arg;
  for (int64_t i = lo; i < hi; i++) g_mark[i]++;
}

/* marks of a nested split: which thread ran each index */
typedef struct {
  pthread_t by[10];
  int count[10];
} nest_marks;
static nest_marks g_nest[2];

static void mark_nested(void *arg, int64_t lo, int64_t hi) {
  nest_marks *m = arg;
  for (int64_t i = lo; i < hi; i++) {
    m->by[i] = pthread_self();
    m->count[i]++;
  }
}

/* a share that asks for a split of its own: it must run whole, on this share's thread */
static void nested(void *arg, int64_t lo, int64_t hi) {
  (void)arg, (void)hi;
  rc_team_split(g_team, mark_nested, &g_nest[lo], 10, 5);
  for (int i = 0; i < 10; i++)
    if (!pthread_equal(g_nest[lo].by[i], pthread_self())) g_nest[lo].count[i] = -1;
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* a thread of this process that keeps falling asleep and waking up, as the helper does
 * between a model's sequences: spins ~0.15 ms, sleeps ~0.05 ms */
static atomic_int g_stop;
static void *toggler(void *arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t1);
    while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 150000L);
    struct timespec ts = {0, 50000L};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* a job whose units cost 2 us on the calling thread and 4 us on the helper: a helper at half
 * the caller's speed */
static pthread_t g_caller;
static void spin_us(double us) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do clock_gettime(CLOCK_MONOTONIC, &t1);
  while ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) * 1e-3 < us);
}
static void even_helper(void *arg, int64_t lo, int64_t hi) {
  (void)arg;
  for (int64_t i = lo; i < hi; i++) g_mark[i]++;
  spin_us((double)(hi - lo) * 2.0);
}

static void slow_helper(void *arg, int64_t lo, int64_t hi) {
  (void)arg;
  for (int64_t i = lo; i < hi; i++) g_mark[i]++;
  spin_us((double)(hi - lo) * (pthread_equal(pthread_self(), g_caller) ? 2.0 : 4.0));
}

/* whether rc_team_usable keeps saying yes for `ms` (a quiet machine: the part of the test that
 * adds load needs one) */
static int stays_usable(int ms) {
  for (int waited = 0; waited <= ms; waited += 10) {
    if (!rc_team_usable(g_team)) return 0;
    sleep_ms(10);
  }
  return 1;
}

/* calls rc_team_usable every 10 ms until it gives `want` or `ms` have passed */
static int usable_within(int want, int ms) {
  for (int waited = 0; waited <= ms; waited += 10) {
    if (rc_team_usable(g_team) == want) return 1;
    sleep_ms(10);
  }
  return 0;
}

int main(void) {
  g_team = rc_team_new();
  CHECK(g_team != NULL);
  if (!g_team) return TEST_SUMMARY();

  /* every index once, whatever the cut; cuts outside 1 .. n - 1 run whole */
  int64_t cuts[] = {1, 500, 999, 0, 1000};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    for (int i = 0; i < 1000; i++) g_mark[i] = 0;
    rc_team_split(g_team, mark, NULL, 1000, cuts[c]);
    int once = 1;
    for (int i = 0; i < 1000; i++) once &= g_mark[i] == 1;
    CHECK(once);
  }
  rc_team_split(NULL, mark, NULL, 10, 5); /* no helper: the caller runs it all */
  CHECK(g_mark[0] == 2 && g_mark[9] == 2);
  rc_team_split(g_team, nested, NULL, 2, 1);
  int whole = 1;
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < 10; i++) whole &= g_nest[s].count[i] == 1;
  CHECK(whole);

  /* weighted splits: the caller's part starts at half, rounded to the unit, within
   * [unit, n - 1]; a helper at half the caller's speed draws it towards two thirds (at most
   * three quarters), and every index still runs once */
  CHECK(rc_team_cut(NULL, 1, 100, 1) == 50 && rc_team_cut(NULL, 1, 100, 16) == 48);
  CHECK(rc_team_cut(NULL, 1, 17, 16) == 16 && rc_team_cut(NULL, 1, 2, 1) == 1);
  CHECK(rc_team_cut(g_team, 1, 100, 1) == 50);
  g_caller = pthread_self();
  int once_each = 1;
  for (int k = 0; k < 40; k++) {
    for (int i = 0; i < 100; i++) g_mark[i] = 0;
    rc_team_split_learn(g_team, 1, slow_helper, NULL, 100, rc_team_cut(g_team, 1, 100, 1));
    for (int i = 0; i < 100; i++) once_each &= g_mark[i] == 1;
  }
  CHECK(once_each);
  int64_t learned = rc_team_cut(g_team, 1, 100, 1);
  printf("caller's part of 100 beside a helper at half its speed: %lld\n", (long long)learned);
  CHECK(learned >= 58 && learned <= 75);
  /* kinds of job are learned apart: beside the slow kind, one whose halves take as long on
   * either thread goes back to half (from the last share learned, where a new kind starts) */
  for (int k = 0; k < 40; k++) {
    rc_team_split_learn(g_team, 1, slow_helper, NULL, 100, rc_team_cut(g_team, 1, 100, 1));
    rc_team_split_learn(g_team, 2, even_helper, NULL, 100, rc_team_cut(g_team, 2, 100, 1));
  }
  int64_t slow = rc_team_cut(g_team, 1, 100, 1), even = rc_team_cut(g_team, 2, 100, 1);
  printf("caller's part of 100, learned apart: slow helper %lld, even helper %lld\n",
         (long long)slow, (long long)even);
  CHECK(slow >= 58 && slow <= 75 && even >= 43 && even <= 57);

  /* the load: busy processes on all CPUs but one leave no room for a second thread */
  cpu_set_t cpus;
  CHECK(sched_getaffinity(0, sizeof cpus, &cpus) == 0);
  int ncpu = CPU_COUNT(&cpus);
  int quiet = stays_usable(300);

  /* this process's own threads are not load, even one that keeps falling asleep and waking
   * up (the helper between sequences); a busy process is: readings 200 ms apart */
  rc_load_reading r0 = rc_load_read();
  if (ncpu >= 2 && ncpu <= 8 && r0.ok && quiet) {
    CHECK(r0.ncpu == ncpu);
    pthread_t th;
    atomic_store(&g_stop, 0);
    CHECK(pthread_create(&th, NULL, toggler, NULL) == 0);
    sleep_ms(200);
    rc_load_reading r1 = rc_load_read();
    atomic_store(&g_stop, 1);
    pthread_join(th, NULL);
    double mine = rc_load_others(&r0, &r1);
    printf("others' CPUs beside a thread of this process asleep now and then: %.2f\n", mine);
    CHECK(mine < 0.5);
    pid_t kid = fork();
    if (kid == 0)
      for (volatile unsigned long x = 0;; x++) {
      }
    CHECK(kid > 0);
    rc_load_reading r2 = rc_load_read();
    sleep_ms(200);
    rc_load_reading r3 = rc_load_read();
    if (kid > 0) {
      kill(kid, SIGKILL);
      waitpid(kid, NULL, 0);
    }
    double busy = rc_load_others(&r2, &r3);
    printf("others' CPUs beside one busy process: %.2f\n", busy);
    CHECK(busy > 0.7);
  }
  rc_load_reading bad = r0;
  bad.ok = 0;
  CHECK(rc_load_others(&bad, &r0) == 0.0 && rc_load_others(&r0, &r0) == 0.0);

  if (ncpu >= 2 && ncpu <= 8 && r0.ok && quiet) {
    pid_t kids[8];
    int nk = 0;
    for (int i = 0; i < ncpu - 1; i++) {
      pid_t p = fork();
      if (p == 0) {
        for (volatile unsigned long x = 0;; x++) {
        }
      }
      if (p > 0) kids[nk++] = p;
    }
    CHECK(nk == ncpu - 1);
    CHECK(usable_within(0, 2000)); /* once the last 200 ms show the load, refused */
    for (int i = 0; i < nk; i++) kill(kids[i], SIGKILL);
    for (int i = 0; i < nk; i++) waitpid(kids[i], NULL, 0);
    CHECK(usable_within(1, 5000)); /* the back-off ends (at most 3.2 s) and the load is gone */
  } else {
    printf("%d CPUs, no /proc/stat or a machine already loaded: the load check is not "
           "exercised\n",
           ncpu);
  }
  rc_team_free(g_team);
  return TEST_SUMMARY();
}
