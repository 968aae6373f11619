/* How far apart the machine's first two CPUs are, for reading the 2-thread figures of a run:
 * the round trip of a cache line between a thread pinned to CPU 0 and one pinned to CPU 1,
 * and the time the first takes to overwrite 16 KB that the second has just read (what a
 * layer wavefront's hand-over pays each step). On this bench's VM the two vCPUs sometimes
 * share an L3 (round trip ~130 ns, 16 KB overwritten in ~0.6 us) and sometimes not (450-550
 * ns, 2.2-2.6 us), for minutes at a time, and a 2-thread step reads 15-20% slower in the
 * second state while a 1-thread step does not change (bench/README.md, issue 15's eighth
 * pass). Prints one line; medians of 7 blocks.
 * usage: xcore [label]   (run by bench/charrnn.lua; needs 2 CPUs) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench_rows.h"

enum { TRIPS = 20000, BLOCKS = 7, FLOATS = 4096, COPIES = 2000 };

static _Alignas(64) atomic_long flag; /* odd: the first thread's turn handed over */
static _Alignas(64) atomic_int ready; /* the second thread: 1 pinned, -1 not */
static atomic_int reading;            /* the second thread reads buf on each exchange */
static _Alignas(64) float buf[FLOATS];
static volatile float sink;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

/* the second thread: answers each value v handed over with v + 1 (after reading the buffer
 * in the copy phase, so that its lines are shared when the first thread overwrites them);
 * a negative value ends it */
static void *answer(void *arg) {
  (void)arg;
  if (pin(1)) {
    atomic_store(&ready, -1);
    return NULL;
  }
  atomic_store(&ready, 1);
  long seen = 0;
  for (;;) {
    long got;
    while ((got = atomic_load_explicit(&flag, memory_order_acquire)) == seen) {
    }
    if (got < 0) return NULL;
    if (atomic_load_explicit(&reading, memory_order_relaxed)) {
      float s = 0;
      for (int i = 0; i < FLOATS; i++) s += buf[i];
      sink = s;
    }
    seen = got + 1;
    atomic_store_explicit(&flag, seen, memory_order_release);
  }
}

/* one exchange: hand v (odd) over, wait for v + 1 */
static void exchange(long v) {
  atomic_store_explicit(&flag, v, memory_order_release);
  while (atomic_load_explicit(&flag, memory_order_acquire) != v + 1) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    puts("usage: xcore [label]\nPrints the cache-line round trip between CPU 0 and CPU 1 and the "
         "time "
         "CPU 0 takes to overwrite 16 KB CPU 1 has just read (medians of 7 blocks); label ends the "
         "names of its rows in the results file.");
    return 0;
  }
  /* the results rows' names are the benchmarks' own constants (bench_row escapes nothing) */
  const char *label = argc > 1 && strlen(argv[1]) < 64 && !strpbrk(argv[1], "\"\\") ? argv[1] : "";
  if (pin(0)) {
    puts("cross-core: cannot pin a thread to CPU 0");
    return 0;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, answer, NULL)) {
    puts("cross-core: cannot start a thread");
    return 0;
  }
  while (!atomic_load(&ready)) {
  }
  if (atomic_load(&ready) < 0) {
    pthread_join(t, NULL);
    puts("cross-core: cannot pin a thread to CPU 1");
    return 0;
  }
  double trip[BLOCKS], write[BLOCKS];
  long v = 1;
  for (int b = 0; b < BLOCKS; b++) {
    atomic_store(&reading, 0);
    double t0 = now();
    for (int i = 0; i < TRIPS; i++, v += 2) exchange(v);
    trip[b] = (now() - t0) / TRIPS * 1e9;
    atomic_store(&reading, 1);
    double spent = 0;
    for (int i = 0; i < COPIES; i++, v += 2) {
      exchange(v); /* the other core reads the buffer */
      double w0 = now();
      for (int k = 0; k < FLOATS; k++) buf[k] = (float)(i + k);
      atomic_thread_fence(memory_order_seq_cst);
      spent += now() - w0;
    }
    write[b] = spent / COPIES * 1e6;
  }
  atomic_store(&flag, -1);
  pthread_join(t, NULL);
  double mn, trip_med, mx, wmn, write_med, wmx;
  bench_spread(trip, BLOCKS, &mn, &trip_med, &mx);
  bench_spread(write, BLOCKS, &wmn, &write_med, &wmx);
  printf("cross-core (cpu0 <-> cpu1): round trip %.0f ns (%.0f-%.0f), 16 KB the other core read "
         "overwritten in %.2f us (%.2f-%.2f)\n",
         trip_med, mn, mx, write_med, wmn, wmx);
  char name[160];
  snprintf(name, sizeof name, "cache-line round trip cpu0-cpu1%s", label);
  bench_row("xcore", name, trip_med, "ns", "lower", -1, "", mn, trip_med, mx);
  snprintf(name, sizeof name, "overwrite 16 KB read by the other core%s", label);
  bench_row("xcore", name, write_med, "us", "lower", -1, "", wmn, write_med, wmx);
  return 0;
}
