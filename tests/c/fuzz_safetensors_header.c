/* An AFL-style fuzzer of the safetensors reader (runtime/safetensors.c, its JSON by jansson):
 * valid files (rc_st_write's, with checksums, and other writers' without, in several dtypes
 * and layouts) are mutated by a deterministic havoc mutator (bit flips, interesting and random
 * bytes, inserted and overwritten JSON tokens, deleted and cloned ranges, splices of two
 * files, numbers replaced, header length fields changed, data cut or extended; 1 to 16 of them
 * stacked) and each is read with rc_st_read. `make fuzz` runs 10^5 inputs under ASan+UBSan,
 * which report any crash, overflow, leak or undefined behaviour; the suite runs 10^4.
 *
 * The checks: every refusal names the file ("load: <path>"); every file accepted has a tensor
 * per name of the shape its dtype and offsets imply, and survives a round trip through
 * rc_st_write (same names, metadata and bits; a name the writer refuses, such as "", is
 * refused with a "save: " message); no tensor memory is left when done.
 *
 * Usage: fuzz_safetensors_header [N [SEED]] (10000 inputs, seed 1 by default). */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../runtime/safetensors.h"
#include "test.h"

/* ---- deterministic randomness (splitmix64) ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static size_t below(size_t n) {
  return n ? (size_t)(rnd() % n) : 0;
}

/* ---- byte buffers ---- */

typedef struct {
  unsigned char *p;
  size_t n, cap;
} buf;

static void reserve(buf *b, size_t n) {
  if (n <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < n) cap *= 2;
  unsigned char *p = realloc(b->p, cap);
  if (!p) {
    fprintf(stderr, "fuzz: out of memory\n");
    exit(2);
  }
  b->p = p;
  b->cap = cap;
}

static void insert(buf *b, size_t at, const void *s, size_t n) {
  reserve(b, b->n + n);
  memmove(b->p + at + n, b->p + at, b->n - at);
  memcpy(b->p + at, s, n);
  b->n += n;
}

static void erase(buf *b, size_t at, size_t n) {
  memmove(b->p + at, b->p + at + n, b->n - at - n);
  b->n -= n;
}

static uint64_t get_len(const buf *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0 && b->n >= 8; i--) v = (v << 8) | b->p[i];
  return v;
}

static void set_len(buf *b, uint64_t v) {
  for (int i = 0; i < 8 && i < (int)b->n; i++) b->p[i] = (unsigned char)(v >> (8 * i));
}

/* the header's end in the file (clamped to the file) */
static size_t header_end(const buf *b) {
  uint64_t h = get_len(b);
  return b->n < 8 ? b->n : h > b->n - 8 ? b->n : (size_t)(8 + h);
}

static int write_file(const char *path, const buf *b) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  size_t done = 0;
  while (done < b->n) {
    ssize_t w = write(fd, b->p + done, b->n - done);
    if (w <= 0) break;
    done += (size_t)w;
  }
  close(fd);
  return done == b->n ? 0 : -1;
}

static int read_file(const char *path, buf *b) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return -1;
  b->n = 0;
  unsigned char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) insert(b, b->n, chunk, got);
  fclose(fp);
  return 0;
}

/* ---- the seeds: valid files ---- */

#define MAX_SEEDS 16
static buf seeds[MAX_SEEDS];
static int n_seeds;

/* another writer's file: header text, then data bytes of the given length (a ramp) */
static void seed_raw(const char *header, size_t data_len) {
  buf *b = &seeds[n_seeds++];
  size_t hl = strlen(header);
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  insert(b, 0, len, 8);
  insert(b, 8, header, hl);
  for (size_t i = 0; i < data_len; i++) {
    unsigned char v = (unsigned char)(i * 37 + 11);
    insert(b, b->n, &v, 1);
  }
}

/* rc_st_write's file of the given tensors and metadata */
static void seed_written(rc_ctx *c, const char *path, int n, const char *const *names,
                         rc_tensor *const *ts, int n_meta, const char *const *k,
                         const char *const *v) {
  CHECK(rc_st_write(c, path, n, names, ts, n_meta, k, v) == 0);
  CHECK(read_file(path, &seeds[n_seeds]) == 0);
  n_seeds++;
}

static void make_seeds(rc_ctx *c, const char *path) {
  int64_t s23[2] = {2, 3}, s0[1] = {0}, s4[1] = {4};
  float d[6] = {1, -2.5f, 3e-3f, 4e30f, -0.0f, 6};
  rc_tensor *a = rc_from_data(c, 2, s23, d), *e = rc_scalar(c, 3.25f), *z = rc_empty(c, 1, s0),
            *f = rc_from_data(c, 1, s4, d);
  const char *names[4] = {"model.weight", "model.bias", "empty \"q\" \\ f\xc3\xbcr/x", "step"};
  rc_tensor *ts[4] = {a, f, z, e};
  const char *k[3] = {"format", "recur.meta", "note"};
  const char *v[3] = {"recur-checkpoint-1", "{\"v\":1,\"a\":[1,2]}", "tab\t nl\n \xe2\x82\xac"};
  seed_written(c, path, 4, names, ts, 3, k, v);
  seed_written(c, path, 1, names, ts, 0, k, v);
  seed_written(c, path, 0, names, ts, 0, k, v);
  rc_release(a);
  rc_release(e);
  rc_release(z);
  rc_release(f);
  seed_raw("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
           "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":"
           "[8,12]}}    ",
           12);
  seed_raw("{\n  \"d\": {\"dtype\": \"F64\", \"shape\": [], \"data_offsets\": [0, 8]},\n"
           "  \"l\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [8, 16]},\n"
           "  \"h\": {\"dtype\": \"BF16\", \"shape\": [2, 1], \"data_offsets\": [16, 20]},\n"
           "  \"u\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [20, 23]},\n"
           "  \"s\": {\"dtype\": \"I8\", \"shape\": [1], \"data_offsets\": [23, 24]},\n"
           "  \"o\": {\"dtype\": \"BOOL\", \"shape\": [2], \"data_offsets\": [24, 26]},\n"
           "  \"w\": {\"dtype\": \"I16\", \"shape\": [1], \"data_offsets\": [26, 28]},\n"
           "  \"i\": {\"dtype\": \"I32\", \"shape\": [1, 1, 1], \"data_offsets\": [28, 32]}\n}",
           32);
  seed_raw(
      "{\"z\":{\"data_offsets\":[0,0],\"shape\":[0,5],\"dtype\":\"F32\"},\"\\u00e9\\ud83d\\ude00\":"
      "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"__metadata__\":{\"k\\\"\":"
      "\"\\u0041\\n\"}}",
      4);
  seed_raw("{\"__metadata__\":{}}", 0);
}

/* ---- the mutator ---- */

static const char *const TOKENS[] = {"{",
                                     "}",
                                     "[",
                                     "]",
                                     ",",
                                     ":",
                                     "\"",
                                     "\\",
                                     "\\u",
                                     "\\\"",
                                     "\\ud800",
                                     "\\udc00",
                                     "\\u0000",
                                     "\\uffff",
                                     "null",
                                     "true",
                                     "-",
                                     "0",
                                     "-0",
                                     "1e3",
                                     "1.5",
                                     "01",
                                     "9007199254740993",
                                     "-1",
                                     "1e400",
                                     "99999999999999999999",
                                     "18446744073709551616",
                                     "__metadata__",
                                     "dtype",
                                     "shape",
                                     "data_offsets",
                                     "\"F32\"",
                                     "\"BF16\"",
                                     "\"BOOL\"",
                                     "\"F8\"",
                                     "[]",
                                     "{}",
                                     "[0,0]",
                                     "[[[[[[[[",
                                     "\xc3",
                                     "\xed\xa0\x80",
                                     "\xf4\x90\x80\x80",
                                     "\xc0\x80",
                                     "\x00",
                                     "\x01",
                                     "\x7f",
                                     " ",
                                     "\n",
                                     "\t",
                                     "recur.crc32.",
                                     "recur.header_crc32",
                                     "\"00000000\"",
                                     "\"ffffffff\""};
#define N_TOKENS (sizeof TOKENS / sizeof TOKENS[0])

static const unsigned char INTERESTING[] = {0,   1,   0x7f, 0x80, 0xff, '"', '\\', '{',
                                            '}', '[', ']',  ',',  ':',  '-', '0',  '9',
                                            'e', '.', 'u',  ' ',  0xc3, 0xed};

static size_t token_len(size_t t) {
  return TOKENS[t][0] ? strlen(TOKENS[t]) : 1; /* "\x00": one NUL byte */
}

/* a position in the header (most mutations aim there), or anywhere in the file */
static size_t pos_in(const buf *b) {
  size_t he = header_end(b);
  if (he > 8 && below(8)) return 8 + below(he - 8);
  return below(b->n);
}

/* One mutation: 1 when it changed the header's size (an insertion or a deletion in it). */
static int mutate_once(buf *b) {
  if (b->n < 9) { /* too short to aim: grow it back from a seed */
    const buf *s = &seeds[below((size_t)n_seeds)];
    b->n = 0;
    insert(b, 0, s->p, s->n);
    return 0;
  }
  size_t at = pos_in(b), he = header_end(b);
  int resized = 0;
  switch (below(12)) {
  case 0:
    b->p[at] ^= (unsigned char)(1u << below(8));
    break;
  case 1:
    b->p[at] = INTERESTING[below(sizeof INTERESTING)];
    break;
  case 2:
    b->p[at] = (unsigned char)rnd();
    break;
  case 3: {
    size_t t = below(N_TOKENS);
    insert(b, at, TOKENS[t], token_len(t));
    resized = at < he;
    break;
  }
  case 4: {
    size_t t = below(N_TOKENS), n = token_len(t);
    if (at + n <= b->n) memcpy(b->p + at, TOKENS[t], n);
    break;
  }
  case 5: {
    size_t n = 1 + below(below(4) ? 4 : 32);
    if (at >= 8 && at + n <= b->n) {
      erase(b, at, n);
      resized = at < he;
    }
    break;
  }
  case 6: { /* clone a range of the header elsewhere in it */
    size_t from = pos_in(b), n = 1 + below(24);
    if (from + n <= b->n && at >= 8) {
      unsigned char tmp[24];
      memcpy(tmp, b->p + from, n);
      insert(b, at, tmp, n);
      resized = at < he;
    }
    break;
  }
  case 7: { /* splice: this header's start with another file's header end and data */
    const buf *s = &seeds[below((size_t)n_seeds)];
    size_t she = header_end(s);
    if (she <= 8 || at < 8 || at > he) break;
    size_t cut = 8 + below(she - 8);
    b->n = at;
    insert(b, b->n, s->p + cut, s->n - cut);
    set_len(b, (uint64_t)(at + (she - cut) - 8));
    break;
  }
  case 8: { /* a number replaced */
    size_t i = at;
    while (i < he && !(b->p[i] >= '0' && b->p[i] <= '9')) i++;
    if (i >= he) break;
    size_t j = i;
    while (j < he && b->p[j] >= '0' && b->p[j] <= '9') j++;
    static const char *const NUMS[] = {"0",          "1",
                                       "4",          "7",
                                       "8",          "-1",
                                       "4294967296", "1.0",
                                       "2e2",        "9007199254740992",
                                       "",           "123456789",
                                       "-0",         "1152921504606846976"};
    const char *nv = NUMS[below(sizeof NUMS / sizeof NUMS[0])];
    erase(b, i, j - i);
    insert(b, i, nv, strlen(nv));
    resized = 1;
    break;
  }
  case 9: { /* the length field */
    uint64_t h = get_len(b);
    switch (below(6)) {
    case 0:
      set_len(b, h + 1 + below(16));
      break;
    case 1:
      set_len(b, h - 1 - below(h < 16 ? h + 1 : 16));
      break;
    case 2:
      set_len(b, 0);
      break;
    case 3:
      set_len(b, rnd());
      break;
    case 4:
      set_len(b, (uint64_t)b->n - 8 + below(3));
      break;
    default:
      b->p[below(8)] ^= (unsigned char)(1u << below(8));
      break;
    }
    break;
  }
  case 10: /* the data cut or extended */
    if (below(2) && b->n > he)
      b->n -= 1 + below(b->n - he);
    else {
      unsigned char z[8] = {0};
      insert(b, b->n, z, 1 + below(8));
    }
    break;
  default: /* a byte of the header deleted (the smallest change of its size) */
    if (at >= 8 && at < he) {
      erase(b, at, 1);
      resized = 1;
    }
    break;
  }
  return resized;
}

/* 1 to 16 stacked mutations of a seed; insertions and deletions in the header keep the length
 * field right three times in four */
static void mutate(buf *b) {
  const buf *s = &seeds[below((size_t)n_seeds)];
  b->n = 0;
  insert(b, 0, s->p, s->n);
  int k = 1 << below(5);
  for (int i = 0; i < k; i++) {
    size_t before = b->n;
    uint64_t h = get_len(b);
    if (mutate_once(b) && below(4)) {
      if (b->n > before)
        set_len(b, h + (b->n - before));
      else if (h >= before - b->n)
        set_len(b, h - (before - b->n));
    }
  }
}

/* ---- the checks ---- */

/* messages by their kind (the words after the path, without numbers and quoted names), to see
 * which checks the inputs reach */
#define MAX_KINDS 128
static char kinds[MAX_KINDS][64];
static long kind_count[MAX_KINDS];
static int n_kinds;

static void count_kind(const char *err, const char *path) {
  const char *p = strstr(err, path);
  p = p ? p + strlen(path) : err;
  while (*p == ':' || *p == ' ') p++;
  char k[64];
  size_t n = 0;
  while (*p && n < sizeof k - 1) {
    if (*p == '"' || *p == '\'') { /* a name, or jansson's context */
      const char *q = strchr(p + 1, *p);
      if (!q) break;
      p = q + 1;
    } else if (*p == '(') { /* the rest: values */
      break;
    } else if (*p >= '0' && *p <= '9') {
      p++;
    } else {
      k[n++] = *p++;
    }
  }
  k[n] = 0;
  for (int i = 0; i < n_kinds; i++)
    if (strcmp(kinds[i], k) == 0) {
      kind_count[i]++;
      return;
    }
  if (n_kinds < MAX_KINDS) {
    strcpy(kinds[n_kinds], k);
    kind_count[n_kinds++] = 1;
  }
}

static const char *const DTYPE_NAMES[] = {"F32", "F64", "F16", "BF16", "I64",
                                          "I32", "I16", "I8",  "U8",   "BOOL"};

/* an accepted file: consistent, and the same after rc_st_write and rc_st_read */
static void check_accepted(rc_ctx *c, rc_st_file *f, const char *path2) {
  int ok = f->n >= 0 && f->n_meta >= 0;
  for (int i = 0; ok && i < f->n; i++) {
    int d = 0;
    while (d < 10 && strcmp(DTYPE_NAMES[d], f->dtypes[i])) d++;
    ok = f->names[i] && f->tensors[i] && d < 10 && rc_numel(f->tensors[i]) >= 0;
  }
  CHECK(ok);
  if (!ok) return;
  if (rc_st_write(c, path2, f->n, (const char *const *)f->names, f->tensors, f->n_meta,
                  (const char *const *)f->meta_keys, (const char *const *)f->meta_values)) {
    CHECK(strncmp(c->err, "save: ", 6) == 0);
    return;
  }
  rc_st_file *g = rc_st_read(c, path2);
  CHECK(g != NULL);
  if (!g) {
    fprintf(stderr, "round trip: %s\n", c->err);
    return;
  }
  int same = g->n == f->n && g->n_meta == f->n_meta;
  for (int i = 0; same && i < f->n; i++) {
    int64_t m = rc_numel(f->tensors[i]);
    same = strcmp(g->names[i], f->names[i]) == 0 && rc_numel(g->tensors[i]) == m &&
           g->tensors[i]->ndim == f->tensors[i]->ndim &&
           memcmp(rc_data(g->tensors[i]), rc_data(f->tensors[i]), (size_t)m * 4) == 0;
  }
  for (int i = 0; same && i < f->n_meta; i++)
    same = strcmp(g->meta_keys[i], f->meta_keys[i]) == 0 &&
           strcmp(g->meta_values[i], f->meta_values[i]) == 0;
  CHECK(same);
  rc_st_free(g);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000;
  rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
  /* in memory where there is a tmpfs: the round trips fsync */
  char dir[] = "/dev/shm/recur_fuzz_XXXXXX";
  if (!mkdtemp(dir) && !mkdtemp(strcpy(dir, "/tmp/recur_fuzz_XXXXXX"))) {
    perror("mkdtemp");
    return 2;
  }
  char path[64], path2[64];
  snprintf(path, sizeof path, "%s/f.safetensors", dir);
  snprintf(path2, sizeof path2, "%s/g.safetensors", dir);
  rc_ctx *c = rc_ctx_new();
  make_seeds(c, path);
  /* every seed is read back whole */
  for (int i = 0; i < n_seeds; i++) {
    CHECK(write_file(path, &seeds[i]) == 0);
    rc_st_file *f = rc_st_read(c, path);
    CHECK(f != NULL);
    if (!f) fprintf(stderr, "seed %d: %s\n", i, c->err);
    rc_st_free(f);
  }
  buf b = {0};
  long accepted = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    mutate(&b);
    CHECK(write_file(path, &b) == 0);
    rc_st_file *f = rc_st_read(c, path);
    if (f) {
      accepted++;
      check_accepted(c, f, path2);
      rc_st_free(f);
      continue;
    }
    int named = strncmp(c->err, "load: ", 6) == 0 && strstr(c->err, path) != NULL;
    CHECK(named);
    if (!named) fprintf(stderr, "input %ld: %s\n", i, c->err);
    count_kind(c->err, path);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(c->live_bytes == 0);
  printf("%ld inputs (seed %llu) from %d valid files in %.1f s: %ld accepted, %ld refused\n", n,
         argc > 2 ? strtoull(argv[2], NULL, 10) : 1ull, n_seeds,
         (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), accepted,
         n - accepted);
  /* the most frequent kinds of refusal */
  for (int shown = 0; shown < 40; shown++) {
    int best = -1;
    for (int i = 0; i < n_kinds; i++)
      if (kind_count[i] > 0 && (best < 0 || kind_count[i] > kind_count[best])) best = i;
    if (best < 0) break;
    printf("  %7ld  %s\n", kind_count[best], kinds[best]);
    kind_count[best] = -kind_count[best];
  }
  printf("  (%d kinds of refusal)\n", n_kinds);
  for (int i = 0; i < n_seeds; i++) free(seeds[i].p);
  free(b.p);
  unlink(path);
  unlink(path2);
  rmdir(dir);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
