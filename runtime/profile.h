/* Where a step's time goes, from inside the runtime (recur._profile, bindings/profile.c): while
 * a context profiles, every node backward runs adds its time under its name, and every run of
 * the layer wavefront (runtime/rnn_stack.c) adds how long it took and how each of its two
 * threads spent it, every run of the batch split (runtime/rnn_split.c) counts, and so does
 * every generation and who computed its recurrent products (runtime/rnn_generate.c). Off
 * (ctx->profile NULL) each of those places costs one branch. */
#ifndef RECUR_PROFILE_H
#define RECUR_PROFILE_H

#include "context.h"

#define RC_PROFILE_NODES 64    /* distinct node names kept; later ones count in `lost` */
#define RC_PROFILE_NAME_MAX 48 /* a node's name, truncated */

typedef struct {
  char name[RC_PROFILE_NAME_MAX];
  double seconds; /* the node's backward function, summed over its calls */
  long calls;
} rc_profile_node;

/* The wavefront's runs in one direction (forward or backward), times summed over the runs;
 * thread 0 is the caller, 1 the helper. */
typedef struct {
  long runs, late_runs; /* late: a thread waited past the spin for over a tenth of the run */
  double seconds;       /* from the start of the run to both threads' return */
  double wait[2];       /* each thread's waits for the other in the hand-overs */
  double done[2];       /* each thread's recurrences done (from the run's start) */
  double products[2];   /* backward: each thread's products after the recurrences done */
} rc_profile_wave;

typedef struct rc_profile {
  rc_profile_node node[RC_PROFILE_NODES];
  int n_nodes;
  long lost;               /* calls of nodes whose name found no room */
  rc_profile_wave wave[2]; /* forward, backward */
  long split_runs[2];      /* the batch split's runs (runtime/rnn_split.c), forward, backward */
  /* batch-1 generation (runtime/rnn_generate.c): calls, steps, calls that had the helper, and
   * the recurrent products' column chunks each thread computed (caller, helper) */
  long gen_calls, gen_steps, gen_helper_calls, gen_chunks[2];
} rc_profile;

/* Starts a profile (dropping one in progress): 0, or -1 with a message. */
int rc_profile_start(rc_ctx *c);
/* Stops the profile and hands it over (rc_profile_free), or NULL when none was running. */
rc_profile *rc_profile_stop(rc_ctx *c);
void rc_profile_free(rc_ctx *c, rc_profile *p);
/* Adds one call of the node `name` that took `seconds` (profiling only). */
void rc_profile_node_add(rc_profile *p, const char *name, double seconds);
/* A monotonic clock in seconds, for the timings above. */
double rc_profile_now(void);

#endif
