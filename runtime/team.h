/* A runtime context's helper thread: half of a split job runs on it (runtime/team.c). */
#ifndef RC_TEAM_H
#define RC_TEAM_H

#include <stdint.h>

typedef struct rc_team rc_team;

/* A helper thread (NULL when it cannot start). */
rc_team *rc_team_new(void);
void rc_team_free(rc_team *t);
/* Whether the next job (a sequence of a cell, a product) should be shared with the helper (it
 * backs off for a while when the helper keeps arriving late, or when other processes kept the
 * CPUs busy over the last 200 ms, read from Linux's /proc every 50 ms). */
int rc_team_usable(rc_team *t);

/* A reading of the machine's load, as rc_team_usable takes one every 50 ms: when
 * (CLOCK_MONOTONIC seconds), the CPU time the CPUs this thread may run on have spent busy
 * since boot (Linux's /proc/stat; idle, iowait and steal excluded), and this process's own
 * CPU time. ok is 0 when it cannot tell (no /proc/stat). */
typedef struct {
  double at, busy, own;
  int ncpu, ok;
} rc_load_reading;
rc_load_reading rc_load_read(void);
/* How many CPUs other processes kept busy on average from reading a to reading b (0 when
 * either could not tell). */
double rc_load_others(const rc_load_reading *a, const rc_load_reading *b);
/* The verdict on the last run of a layer wavefront or a generation (a job that keeps both
 * threads for its whole length): two late runs in a row back t off (jobs run alone for 0.1 s,
 * twice as long after each failed trial, up to 3.2 s). */
void rc_team_verdict(rc_team *t, int late);
/* Backs t off now, as two late runs would (tests). */
void rc_team_back_off(rc_team *t);
/* fn(arg, lo, hi) over [0, n): with a helper t, [cut, n) runs on it while the caller runs
 * [0, cut) and waits; without one (or with cut outside 1 .. n - 1, or while t already runs a
 * job) the caller runs it all. The parts must touch disjoint memory, so that the result does
 * not depend on the split. */
typedef void (*rc_range_fn)(void *arg, int64_t lo, int64_t hi);
void rc_team_split(rc_team *t, rc_range_fn fn, void *arg, int64_t n, int64_t cut);
/* A split weighted by the two threads' speeds, for work whose cost is even over [0, n): the
 * caller's part, a multiple of unit in [unit, n - 1] (n / 2 rounded until the team has
 * learned otherwise, or without t); then rc_team_split_learn runs it as rc_team_split does
 * and learns from both parts' times. key names the kind of job (the operation and its
 * shape): each kind's share is learned apart, since the same two cores split different jobs
 * at different ratios (who wrote the operands last matters as much as the cores' speeds). On
 * cores of unequal speed (a VM's vCPUs 15-25% apart) an even split ends at the slower core's
 * pace. */
int64_t rc_team_cut(const rc_team *t, uint64_t key, int64_t n, int64_t unit);
void rc_team_split_learn(rc_team *t, uint64_t key, rc_range_fn fn, void *arg, int64_t n,
                         int64_t cut);

#endif
