/* The C benchmarks' rows for bench/run.sh's results file (see bench/lib/rows.lua): when
 * RECUR_BENCH_ROWS names a file, bench_row appends one JSON line to it. */
#ifndef RECUR_BENCH_ROWS_H
#define RECUR_BENCH_ROWS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bench_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* min, median and max of t[0..n-1] (t is sorted in place) */
static void bench_spread(double *t, int n, double *mn, double *med, double *mx) {
  qsort(t, (size_t)n, sizeof *t, bench_cmp);
  *mn = t[0];
  *mx = t[n - 1];
  *med = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* One row: value with its spread (min, median, max of the same unit); ref < 0: none. Names and
 * units are the benchmarks' own constants (no escaping needed). */
static void bench_row(const char *bench, const char *name, double value, const char *unit,
                      const char *better, double ref, const char *ref_name, double mn, double med,
                      double mx) {
  const char *path = getenv("RECUR_BENCH_ROWS");
  if (!path || !*path) return;
  FILE *f = fopen(path, "a");
  if (!f) {
    fprintf(stderr, "%s: cannot append to %s\n", bench, path);
    return;
  }
  fprintf(f,
          "{\"bench\": \"%s\", \"name\": \"%s\", \"value\": %.17g, \"unit\": \"%s\", "
          "\"better\": \"%s\", ",
          bench, name, value, unit, better);
  if (ref >= 0)
    fprintf(f, "\"ref\": %.17g, \"ref_name\": \"%s\", \"ratio\": %.17g, ", ref, ref_name,
            value / ref);
  fprintf(f, "\"spread\": {\"min\": %.17g, \"median\": %.17g, \"max\": %.17g}}\n", mn, med, mx);
  fclose(f);
}

#endif
