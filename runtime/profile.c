/* The runtime's profile (profile.h). */
#include "profile.h"

#include <string.h>
#include <time.h>

int rc_profile_start(rc_ctx *c) {
  rc_profile *p = rc_mem_calloc(c, 1, sizeof *p); /* counted by the context's memory limit */
  if (!p) return rc_error_prefix(c, "_profile");
  rc_profile_free(c, c->profile);
  c->profile = p;
  return 0;
}

void rc_profile_free(rc_ctx *c, rc_profile *p) {
  rc_mem_free(c, p);
}

rc_profile *rc_profile_stop(rc_ctx *c) {
  rc_profile *p = c->profile;
  c->profile = NULL;
  return p;
}

void rc_profile_node_add(rc_profile *p, const char *name, double seconds) {
  if (!name) name = "?";
  int i = 0;
  while (i < p->n_nodes && strncmp(p->node[i].name, name, RC_PROFILE_NAME_MAX - 1) != 0) i++;
  if (i == p->n_nodes) {
    if (i == RC_PROFILE_NODES) {
      p->lost++;
      return;
    }
    strncpy(p->node[i].name, name, RC_PROFILE_NAME_MAX - 1);
    p->n_nodes++;
  }
  p->node[i].seconds += seconds;
  p->node[i].calls++;
}

double rc_profile_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
