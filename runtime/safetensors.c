/* safetensors reader and writer (format and guarantees in safetensors.h). */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* the checksum metadata (safetensors.h) */
#define CRC_PREFIX "recur.crc32."
#define HEADER_CRC_KEY "recur.header_crc32"

static int is_crc_key(const char *k) {
  return strncmp(k, CRC_PREFIX, strlen(CRC_PREFIX)) == 0 || strcmp(k, HEADER_CRC_KEY) == 0;
}

/* zlib's CRC-32 of n bytes, continuing crc (0 to start) */
static uint32_t crc_add(uint32_t crc, const void *p, size_t n) {
  return (uint32_t)crc32_z(crc, p, n);
}

/* 8 lowercase hexadecimal digits into *out: 0, or -1 when s is not that */
static int parse_crc(const char *s, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 8; i++) {
    char ch = s[i];
    if (ch >= '0' && ch <= '9')
      v = v * 16 + (uint32_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      v = v * 16 + (uint32_t)(ch - 'a' + 10);
    else
      return -1;
  }
  if (s[8]) return -1;
  *out = v;
  return 0;
}

/* path's directory ("." when it has none) and file name, malloc'ed; -1 when out of memory */
static int split_path(const char *path, char **dir, char **base) {
  size_t n = strlen(path);
  *dir = malloc(n + 2);
  *base = malloc(n + 1);
  if (!*dir || !*base) {
    free(*dir);
    free(*base);
    *dir = *base = NULL;
    return -1;
  }
  memcpy(*dir, path, n + 1);
  char *slash = strrchr(*dir, '/');
  strcpy(*base, slash ? slash + 1 : path);
  if (slash == *dir)
    (*dir)[1] = 0;
  else if (slash)
    *slash = 0;
  else
    strcpy(*dir, ".");
  return 0;
}

/* ---- temporary files ----
 *
 * A writer makes "<path>.tmp-XXXXXX" (mkstemp) and holds an exclusive flock on it from the
 * moment it has created it until it has renamed it over path (or removed it after an error).
 * The kernel drops the lock when the process dies, however it dies, so a temporary that can be
 * locked has no writer left: a killed writer's. Unlike a pid in the name, the lock cannot be
 * fooled by a reused pid, by a writer in another pid namespace or, on NFS (where flock is a
 * lock of the server's), on another machine. A file system that refuses flock leaves nothing
 * to remove: the cleaner only removes what it could lock.
 *
 * Between mkstemp and flock a live writer's file is unlocked for an instant; the cleaner
 * removes it only while it holds the lock, so the writer, once it has the lock, checks that
 * its file is still the one named tmp and otherwise makes another. */

/* 1 when name is "<base>.tmp-" and six mkstemp characters */
static int is_temp_of(const char *name, const char *base) {
  size_t bl = strlen(base);
  if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".tmp-", 5) != 0) return 0;
  const char *x = name + bl + 5;
  for (int i = 0; i < 6; i++) {
    char ch = x[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
      return 0;
  }
  return x[6] == 0;
}

/* Removes the temporaries of path whose writers are gone (best effort: errors are ignored; a
 * regular file only, never through a symbolic link). */
static void remove_stale_temps(const char *path) {
  char *dir, *base;
  if (split_path(path, &dir, &base)) return;
  DIR *d = base[0] ? opendir(dir) : NULL;
  size_t dl = strlen(dir);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (!is_temp_of(de->d_name, base)) continue;
    char *full = malloc(dl + strlen(de->d_name) + 2);
    if (!full) break;
    sprintf(full, "%s/%s", dir, de->d_name);
    struct stat ls, fs;
    int fd = -1;
    if (lstat(full, &ls) == 0 && S_ISREG(ls.st_mode))
      fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    /* locked, still linked and still the file named full: no writer has it or will use it */
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &fs) == 0 && fs.st_nlink > 0 &&
        fs.st_dev == ls.st_dev && fs.st_ino == ls.st_ino)
      (void)unlink(full);
    if (fd >= 0) close(fd);
    free(full);
  }
  if (d) closedir(d);
  free(dir);
  free(base);
}

/* Locks a new temporary file (fd, named tmp) for its writer: 1 when it is locked (or the file
 * system has no locks) and still named tmp, 0 when a cleaner removed it before the lock. */
static int lock_new_temp(int fd, const char *tmp) {
  int r;
  while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (r != 0) return 1; /* no locks here: no cleaner can lock it either */
  struct stat a, b;
  return fstat(fd, &a) == 0 && a.st_nlink > 0 && lstat(tmp, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

/* ---- small growable string ---- */

typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

static void sb_json_string(sbuf *b, const char *s) {
  sb_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"')
      sb_add(b, "\\\"", 2);
    else if (*p == '\\')
      sb_add(b, "\\\\", 2);
    else if (*p == '\n')
      sb_add(b, "\\n", 2);
    else if (*p == '\t')
      sb_add(b, "\\t", 2);
    else if (*p == '\r')
      sb_add(b, "\\r", 2);
    else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      sb_add(b, esc, 6);
    } else {
      sb_add(b, (const char *)p, 1);
    }
  }
  sb_add(b, "\"", 1);
}

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned cp;
    if ((c & 0xE0) == 0xC0)
      len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
      len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
      len = 4, cp = c & 0x07;
    else
      return 0;
    if (i + (size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += (size_t)len;
  }
  return 1;
}

/* ---- dtypes ---- */

typedef struct {
  const char *name;
  int size;
} dtype_info;

static const dtype_info DTYPES[] = {{"F32", 4}, {"F64", 8},  {"F16", 2}, {"BF16", 2},
                                    {"I64", 8}, {"I32", 4},  {"I16", 2}, {"I8", 1},
                                    {"U8", 1},  {"BOOL", 1}, {NULL, 0}};

static int dtype_index(const char *s) {
  for (int i = 0; DTYPES[i].name; i++)
    if (strcmp(DTYPES[i].name, s) == 0) return i;
  return -1;
}

static uint64_t le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static float half_to_float(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  float v;
  if (e == 0)
    v = ldexpf((float)m, -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = ldexpf((float)(m | 0x400), e - 25);
  return s ? -v : v;
}

enum { D_F32, D_F64, D_F16, D_BF16, D_I64, D_I32, D_I16, D_I8, D_U8, D_BOOL };

/* converts n elements of dtype d (index into DTYPES) from raw little-endian bytes */
static void convert(int d, const unsigned char *src, float *out, int64_t n) {
  int sz = DTYPES[d].size;
  for (int64_t i = 0; i < n; i++) {
    uint64_t u = le(src + i * sz, sz);
    float v;
    switch (d) {
    case D_F32: {
      uint32_t w = (uint32_t)u;
      memcpy(&v, &w, 4);
      break;
    }
    case D_F64: {
      double x;
      memcpy(&x, &u, 8);
      v = (float)x;
      break;
    }
    case D_F16:
      v = half_to_float((uint16_t)u);
      break;
    case D_BF16: {
      uint32_t w = (uint32_t)u << 16;
      memcpy(&v, &w, 4);
      break;
    }
    case D_I64:
      v = (float)(int64_t)u;
      break;
    case D_I32:
      v = (float)(int32_t)(uint32_t)u;
      break;
    case D_I16:
      v = (float)(int16_t)(uint16_t)u;
      break;
    case D_I8:
      v = (float)(int8_t)(uint8_t)u;
      break;
    case D_BOOL:
      v = u ? 1.0f : 0.0f;
      break;
    default:
      v = (float)u;
      break; /* U8 */
    }
    out[i] = v;
  }
}

static int is_little_endian(void) {
  uint32_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* ---- the JSON header ---- */

typedef struct {
  char *name;
  int dtype; /* index into DTYPES, or -1 before it is read */
  char *dtype_name;
  int ndim;
  int64_t size[RC_MAX_DIM];
  uint64_t begin, end;
  int has_dtype, has_shape, has_offsets;
  int has_crc;
  uint32_t crc; /* CRC_PREFIX <name> in the metadata */
} entry;

typedef struct {
  const unsigned char *s;
  size_t n, i;
  rc_ctx *c;
  const char *path;
  int failed;
} parser;

static int perr(parser *p, const char *what) {
  if (!p->failed)
    rc_error(p->c, "load: %s: invalid header JSON at byte %zu: %s", p->path, p->i, what);
  p->failed = 1;
  return -1;
}

static void ws(parser *p) {
  while (p->i < p->n &&
         (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static int expect(parser *p, char ch) {
  ws(p);
  if (p->i >= p->n || p->s[p->i] != (unsigned char)ch) {
    char msg[32];
    snprintf(msg, sizeof msg, "expected '%c'", ch);
    return perr(p, msg);
  }
  p->i++;
  return 0;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static int read_u4(parser *p, unsigned *out) {
  if (p->i + 4 > p->n) return perr(p, "truncated \\u escape");
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[p->i + k]);
    if (h < 0) return perr(p, "bad \\u escape");
    v = v * 16 + (unsigned)h;
  }
  p->i += 4;
  *out = v;
  return 0;
}

static void put_utf8(sbuf *b, unsigned cp) {
  char u[4];
  if (cp < 0x80) {
    u[0] = (char)cp;
    sb_add(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    sb_add(b, u, 2);
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    sb_add(b, u, 3);
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    sb_add(b, u, 4);
  }
}

/* A JSON string into a new malloc'ed C string (NUL characters refused). */
static char *parse_string(parser *p) {
  ws(p);
  if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "expected a string"), NULL;
  p->i++;
  sbuf b = {0};
  sb_add(&b, "", 0);
  for (;;) {
    if (p->i >= p->n) {
      perr(p, "unterminated string");
      break;
    }
    unsigned char ch = p->s[p->i];
    if (ch == '"') {
      p->i++;
      if (b.oom) {
        free(b.p);
        rc_error(p->c, "load: out of memory");
        p->failed = 1;
        return NULL;
      }
      return b.p;
    }
    if (ch < 0x20) {
      perr(p, "control character in a string");
      break;
    }
    if (ch != '\\') {
      size_t start = p->i;
      while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && p->s[p->i] >= 0x20) p->i++;
      sb_add(&b, (const char *)p->s + start, p->i - start);
      continue;
    }
    p->i++;
    if (p->i >= p->n) {
      perr(p, "unterminated escape");
      break;
    }
    ch = p->s[p->i++];
    const char *map = NULL;
    switch (ch) {
    case '"':
      map = "\"";
      break;
    case '\\':
      map = "\\";
      break;
    case '/':
      map = "/";
      break;
    case 'b':
      map = "\b";
      break;
    case 'f':
      map = "\f";
      break;
    case 'n':
      map = "\n";
      break;
    case 'r':
      map = "\r";
      break;
    case 't':
      map = "\t";
      break;
    case 'u': {
      unsigned cp;
      if (read_u4(p, &cp)) goto fail;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (p->i + 2 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
          perr(p, "unpaired surrogate in \\u escape");
          goto fail;
        }
        p->i += 2;
        if (read_u4(p, &lo)) goto fail;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          perr(p, "unpaired surrogate in \\u escape");
          goto fail;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        perr(p, "unpaired surrogate in \\u escape");
        goto fail;
      } else if (cp == 0) {
        perr(p, "\\u0000 in a string");
        goto fail;
      }
      put_utf8(&b, cp);
      break;
    }
    default:
      perr(p, "bad escape");
      goto fail;
    }
    if (map) sb_add(&b, map, 1);
  }
fail:
  free(b.p);
  return NULL;
}

/* A non-negative integer (no sign, fraction or exponent) up to 2^53. */
static int parse_uint(parser *p, uint64_t *out) {
  ws(p);
  size_t start = p->i;
  uint64_t v = 0;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    v = v * 10 + (uint64_t)(p->s[p->i] - '0');
    if (v > ((uint64_t)1 << 53)) return perr(p, "integer too large");
    p->i++;
  }
  if (p->i == start) return perr(p, "expected a non-negative integer");
  if (p->i - start > 1 && p->s[start] == '0') return perr(p, "integer with a leading zero");
  if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E'))
    return perr(p, "expected an integer, got a fraction or exponent");
  *out = v;
  return 0;
}

static int peek(parser *p, char ch) {
  ws(p);
  return p->i < p->n && p->s[p->i] == (unsigned char)ch;
}

/* A JSON array or object: open, then items separated by ',' (each read by item()), close. */
static int parse_seq(parser *p, char open, char close, int (*item)(parser *p, void *arg),
                     void *arg) {
  if (expect(p, open)) return -1;
  if (peek(p, close)) {
    p->i++;
    return 0;
  }
  for (;;) {
    if (item(p, arg)) return -1;
    if (peek(p, ',')) {
      p->i++;
      continue;
    }
    return expect(p, close);
  }
}

typedef struct {
  int (*member)(parser *p, char *key, void *arg);
  void *arg;
} object_reader;

static int object_item(parser *p, void *arg) {
  object_reader *o = arg;
  char *k = parse_string(p);
  return k ? o->member(p, k, o->arg) : -1;
}

/* A JSON object: each member's key is handed (a new string) to member(), which reads the ':'
 * and the value and frees or keeps the key. */
static int parse_object(parser *p, int (*member)(parser *p, char *key, void *arg), void *arg) {
  object_reader o = {member, arg};
  return parse_seq(p, '{', '}', object_item, &o);
}

/* The ':' after key k: 0, or -1 after freeing k. */
static int colon(parser *p, char *k) {
  if (!expect(p, ':')) return 0;
  free(k);
  return -1;
}

/* One size of a "shape" array, appended to the entry. */
static int shape_item(parser *p, void *arg) {
  entry *e = arg;
  uint64_t v;
  if (parse_uint(p, &v)) return -1;
  if (e->ndim == RC_MAX_DIM) return perr(p, "shape has more than 8 dimensions");
  e->size[e->ndim++] = (int64_t)v;
  return 0;
}

/* One field of a tensor's entry. */
static int entry_member(parser *p, char *k, void *arg) {
  entry *e = arg;
  if (colon(p, k)) return -1;
  int rc = 0;
  if (strcmp(k, "dtype") == 0 && !e->has_dtype) {
    e->has_dtype = 1;
    e->dtype_name = parse_string(p);
    if (!e->dtype_name)
      rc = -1;
    else
      e->dtype = dtype_index(e->dtype_name);
  } else if (strcmp(k, "shape") == 0 && !e->has_shape) {
    e->has_shape = 1;
    rc = parse_seq(p, '[', ']', shape_item, e);
  } else if (strcmp(k, "data_offsets") == 0 && !e->has_offsets) {
    e->has_offsets = 1;
    rc = expect(p, '[') || parse_uint(p, &e->begin) || expect(p, ',') || parse_uint(p, &e->end) ||
                 expect(p, ']')
             ? -1
             : 0;
  } else {
    char msg[200];
    int dup = strcmp(k, "dtype") == 0 || strcmp(k, "shape") == 0 || strcmp(k, "data_offsets") == 0;
    snprintf(msg, sizeof msg, "%s field \"%.100s\" in the entry of \"%.60s\"",
             dup ? "duplicate" : "unexpected", k, e->name);
    rc = perr(p, msg);
  }
  free(k);
  return rc;
}

static int parse_entry(parser *p, entry *e) {
  if (parse_object(p, entry_member, e)) return -1;
  if (!e->has_dtype || !e->has_shape || !e->has_offsets) {
    rc_error(p->c, "load: %s: the entry of tensor \"%.100s\" lacks %s", p->path, e->name,
             !e->has_dtype   ? "\"dtype\""
             : !e->has_shape ? "\"shape\""
                             : "\"data_offsets\"");
    p->failed = 1;
    return -1;
  }
  return 0;
}

typedef struct {
  entry *e;
  int n, cap;
  char **mk, **mv;
  int nm, capm;
  /* where the value of HEADER_CRC_KEY starts (after its quote), 0 when absent; the value
   * must be written as exactly 8 characters for its digits to be read as zeros */
  size_t hcrc_pos;
  int hcrc_raw_len;
} header;

/* Frees n malloc'ed key and value strings and their two arrays. */
static void free_pairs(char **keys, char **values, int n) {
  for (int i = 0; i < n; i++) {
    free(keys[i]);
    free(values[i]);
  }
  free(keys);
  free(values);
}

static void header_free(header *h) {
  for (int i = 0; i < h->n; i++) {
    free(h->e[i].name);
    free(h->e[i].dtype_name);
  }
  free(h->e);
  free_pairs(h->mk, h->mv, h->nm);
}

static int oom(parser *p) {
  rc_error(p->c, "load: out of memory reading %s", p->path);
  p->failed = 1;
  return -1;
}

/* One key of "__metadata__": a string value. */
static int metadata_member(parser *p, char *k, void *arg) {
  header *h = arg;
  for (int i = 0; i < h->nm; i++)
    if (strcmp(h->mk[i], k) == 0) {
      char msg[160];
      snprintf(msg, sizeof msg, "duplicate metadata key \"%.100s\"", k);
      free(k);
      return perr(p, msg);
    }
  char *v = NULL;
  size_t vpos = 0;
  if (expect(p, ':') || !(peek(p, '"') && (vpos = p->i, v = parse_string(p)))) {
    if (!p->failed) {
      char msg[160];
      snprintf(msg, sizeof msg, "the value of metadata key \"%.100s\" is not a string", k);
      perr(p, msg);
    }
    free(k);
    return -1;
  }
  if (h->nm == h->capm) {
    int cap = h->capm ? h->capm * 2 : 8;
    char **a = realloc(h->mk, (size_t)cap * sizeof *a);
    if (a) h->mk = a;
    char **b = a ? realloc(h->mv, (size_t)cap * sizeof *b) : NULL;
    if (b) h->mv = b;
    if (!a || !b) {
      free(k);
      free(v);
      return oom(p);
    }
    h->capm = cap;
  }
  if (strcmp(k, HEADER_CRC_KEY) == 0) {
    h->hcrc_pos = vpos + 1;
    h->hcrc_raw_len = (int)(p->i - vpos - 2);
  }
  h->mk[h->nm] = k;
  h->mv[h->nm++] = v;
  return 0;
}

typedef struct {
  header *h;
  int seen_meta;
} header_state;

/* One member of the header: "__metadata__" or a tensor's entry. */
static int header_member(parser *p, char *k, void *arg) {
  header_state *st = arg;
  header *h = st->h;
  if (colon(p, k)) return -1;
  if (strcmp(k, "__metadata__") == 0) {
    free(k);
    if (st->seen_meta) return perr(p, "duplicate \"__metadata__\"");
    st->seen_meta = 1;
    return parse_object(p, metadata_member, h);
  }
  for (int i = 0; i < h->n; i++)
    if (strcmp(h->e[i].name, k) == 0) {
      char msg[160];
      snprintf(msg, sizeof msg, "duplicate tensor name \"%.100s\"", k);
      free(k);
      return perr(p, msg);
    }
  if (h->n == h->cap) {
    int cap = h->cap ? h->cap * 2 : 16;
    entry *ne = realloc(h->e, (size_t)cap * sizeof *ne);
    if (!ne) {
      free(k);
      return oom(p);
    }
    h->e = ne;
    h->cap = cap;
  }
  entry *e = &h->e[h->n++];
  memset(e, 0, sizeof *e);
  e->name = k;
  e->dtype = -1;
  return parse_entry(p, e);
}

static int parse_header(parser *p, header *h) {
  if (!utf8_valid(p->s, p->n)) {
    rc_error(p->c, "load: %s: the header is not valid UTF-8", p->path);
    p->failed = 1;
    return -1;
  }
  header_state st = {h, 0};
  if (parse_object(p, header_member, &st)) return -1;
  ws(p);
  if (p->i != p->n) return perr(p, "unexpected data after the header object");
  return 0;
}

/* ---- reading ---- */

/* The checksums of a file that has them (safetensors.h): the header's is verified here, each
 * tensor's is kept in its entry for the data. *has: 1 when the file has checksums. */
static int check_checksums(rc_ctx *c, const char *path, const unsigned char *hbuf, size_t hlen,
                           header *h, int *has) {
  *has = 0;
  const char *hval = NULL;
  int n_crc = 0;
  for (int i = 0; i < h->nm; i++) {
    if (strcmp(h->mk[i], HEADER_CRC_KEY) == 0)
      hval = h->mv[i];
    else if (is_crc_key(h->mk[i]))
      n_crc++;
  }
  if (!hval && !n_crc) return 0; /* an older file, or another writer's */
  if (!hval)
    return rc_error(c,
                    "load: %s: tensor checksums without a header checksum (" HEADER_CRC_KEY
                    "): the file is corrupted",
                    path);
  uint32_t want;
  if (h->hcrc_raw_len != 8 || parse_crc(hval, &want))
    return rc_error(c,
                    "load: %s: the header checksum \"%.40s\" is not 8 hexadecimal digits: the "
                    "file is corrupted",
                    path, hval);
  size_t pos = h->hcrc_pos; /* its digits count as zeros */
  uint32_t got = crc_add(crc_add(0, hbuf, pos), "00000000", 8);
  got = crc_add(got, hbuf + pos + 8, hlen - pos - 8);
  if (got != want)
    return rc_error(c,
                    "load: %s: the header does not match its checksum (CRC-32 %08x in the file, "
                    "%08x computed): the file is corrupted",
                    path, (unsigned)want, (unsigned)got);
  size_t pl = strlen(CRC_PREFIX);
  for (int i = 0; i < h->nm; i++) {
    if (strncmp(h->mk[i], CRC_PREFIX, pl) != 0) continue;
    const char *name = h->mk[i] + pl;
    entry *e = NULL;
    for (int k = 0; k < h->n && !e; k++)
      if (strcmp(h->e[k].name, name) == 0) e = &h->e[k];
    if (!e)
      return rc_error(c, "load: %s: the checksum " CRC_PREFIX "%.100s names no tensor of the file",
                      path, name);
    if (parse_crc(h->mv[i], &e->crc))
      return rc_error(c, "load: %s: the checksum of tensor \"%.100s\" is not 8 hexadecimal digits",
                      path, name);
    e->has_crc = 1;
  }
  for (int k = 0; k < h->n; k++)
    if (!h->e[k].has_crc)
      return rc_error(c, "load: %s: tensor \"%.100s\" has no checksum, the others have", path,
                      h->e[k].name);
  *has = 1;
  return 0;
}

static int cmp_entry(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

void rc_st_free(rc_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) {
    if (f->names) free(f->names[i]);
    if (f->dtypes) free(f->dtypes[i]);
    if (f->tensors) rc_release(f->tensors[i]);
  }
  free_pairs(f->meta_keys, f->meta_values, f->n_meta);
  free(f->names);
  free(f->dtypes);
  free(f->tensors);
  free(f);
}

rc_st_file *rc_st_read(rc_ctx *c, const char *path) {
  return rc_st_read_skip(c, path, NULL, 0);
}

static int skipped(const char *name, const char *const *skip, int n_skip) {
  for (int k = 0; k < n_skip; k++)
    if (strncmp(name, skip[k], strlen(skip[k])) == 0) return 1;
  return 0;
}

rc_st_file *rc_st_read_skip(rc_ctx *c, const char *path, const char *const *skip, int n_skip) {
  if (rc_check_file_access(c, "load", path)) return NULL;
  if (!c->files_denied) remove_stale_temps(path); /* not where only this file may be read */
  FILE *fp = fopen(path, "rb");
  if (!fp) return rc_error_null(c, "load: cannot open %s: %s", path, strerror(errno));
  rc_st_file *out = NULL;
  unsigned char *hbuf = NULL, *raw = NULL;
  entry **order = NULL;
  header h = {0};
  struct stat st;
  if (fstat(fileno(fp), &st) != 0) {
    rc_error(c, "load: cannot stat %s: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc_error(c, "load: %s is not a regular file", path);
    goto done;
  }
  uint64_t fsize = (uint64_t)st.st_size;
  unsigned char lenb[8];
  if (fsize < 8 || fread(lenb, 1, 8, fp) != 8) {
    rc_error(c,
             "load: %s is truncated: %llu bytes, but a safetensors file starts with an 8-byte "
             "header length",
             path, (unsigned long long)fsize);
    goto done;
  }
  uint64_t hlen = le(lenb, 8);
  if (hlen == 0 || hlen > RC_ST_MAX_HEADER) {
    rc_error(c, "load: %s: bad header length %llu (must be between 1 and %d)", path,
             (unsigned long long)hlen, RC_ST_MAX_HEADER);
    goto done;
  }
  if (hlen > fsize - 8) {
    rc_error(c, "load: %s is truncated: the header length is %llu bytes but only %llu follow", path,
             (unsigned long long)hlen, (unsigned long long)(fsize - 8));
    goto done;
  }
  hbuf = malloc((size_t)hlen);
  if (!hbuf) goto oom;
  if (fread(hbuf, 1, (size_t)hlen, fp) != (size_t)hlen) {
    rc_error(c, "load: %s: read error in the header", path);
    goto done;
  }
  parser p = {hbuf, (size_t)hlen, 0, c, path, 0};
  if (parse_header(&p, &h)) goto done;
  int checksums;
  if (check_checksums(c, path, hbuf, (size_t)hlen, &h, &checksums)) goto done;
  uint64_t dsize = fsize - 8 - hlen;
  /* entries: dtype known, shape sane, byte span right, offsets in range */
  for (int i = 0; i < h.n; i++) {
    entry *e = &h.e[i];
    if (e->dtype < 0) {
      rc_error(
          c,
          "load: %s: tensor \"%.100s\" has unknown dtype \"%.40s\" (recur reads F32, F64, F16, "
          "BF16, I64, I32, I16, I8, U8 and BOOL)",
          path, e->name, e->dtype_name);
      goto done;
    }
    if (rc_check_shape(c, "load", e->ndim, e->size)) goto done;
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= e->size[d];
    uint64_t bytes = (uint64_t)numel * (uint64_t)DTYPES[e->dtype].size;
    if (e->begin > e->end) {
      rc_error(c, "load: %s: data_offsets [%llu, %llu] of tensor \"%.100s\" are reversed", path,
               (unsigned long long)e->begin, (unsigned long long)e->end, e->name);
      goto done;
    }
    if (e->end > dsize) {
      rc_error(c,
               "load: %s: data_offsets [%llu, %llu] of tensor \"%.100s\" are out of range: the "
               "data section has %llu bytes (a truncated file?)",
               path, (unsigned long long)e->begin, (unsigned long long)e->end, e->name,
               (unsigned long long)dsize);
      goto done;
    }
    if (e->end - e->begin != bytes) {
      rc_error(c,
               "load: %s: tensor \"%.100s\" of dtype %s and %lld elements needs %llu bytes but "
               "its data_offsets [%llu, %llu] span %llu",
               path, e->name, DTYPES[e->dtype].name, (long long)numel, (unsigned long long)bytes,
               (unsigned long long)e->begin, (unsigned long long)e->end,
               (unsigned long long)(e->end - e->begin));
      goto done;
    }
  }
  /* the data must be covered exactly: no overlap, no hole, nothing after the last tensor */
  order = malloc((size_t)(h.n > 0 ? h.n : 1) * sizeof *order);
  if (!order) goto oom;
  for (int i = 0; i < h.n; i++) order[i] = &h.e[i];
  qsort(order, (size_t)h.n, sizeof *order, cmp_entry);
  uint64_t pos = 0;
  for (int i = 0; i < h.n; i++) {
    entry *e = order[i];
    if (e->begin < pos) {
      rc_error(c, "load: %s: tensors \"%.100s\" and \"%.100s\" overlap (bytes %llu to %llu)", path,
               order[i - 1]->name, e->name, (unsigned long long)e->begin, (unsigned long long)pos);
      goto done;
    }
    if (e->begin > pos) {
      rc_error(c, "load: %s: %llu bytes before tensor \"%.100s\" belong to no tensor", path,
               (unsigned long long)(e->begin - pos), e->name);
      goto done;
    }
    pos = e->end;
  }
  if (pos != dsize) {
    rc_error(c, "load: %s: %llu bytes after the last tensor belong to no tensor", path,
             (unsigned long long)(dsize - pos));
    goto done;
  }
  /* allocate everything, then read the data in file order */
  out = calloc(1, sizeof *out);
  if (!out) goto oom;
  size_t cnt = (size_t)(h.n > 0 ? h.n : 1);
  out->names = calloc(cnt, sizeof *out->names);
  out->dtypes = calloc(cnt, sizeof *out->dtypes);
  out->tensors = calloc(cnt, sizeof *out->tensors);
  size_t mcnt = (size_t)(h.nm > 0 ? h.nm : 1);
  out->meta_keys = calloc(mcnt, sizeof *out->meta_keys);
  out->meta_values = calloc(mcnt, sizeof *out->meta_values);
  if (!out->names || !out->dtypes || !out->tensors || !out->meta_keys || !out->meta_values)
    goto oom;
  out->n = h.n;
  for (int i = 0; i < h.n; i++) {
    entry *e = order[i];
    if (!skipped(e->name, skip, n_skip)) {
      out->tensors[i] = rc_empty(c, e->ndim, e->size);
      if (!out->tensors[i]) goto fail;
    }
    out->names[i] = e->name;
    e->name = NULL;
    out->dtypes[i] = e->dtype_name;
    e->dtype_name = NULL;
  }
  for (int i = 0; i < h.nm; i++) { /* the checksums were checked and are left out */
    if (is_crc_key(h.mk[i])) continue;
    out->meta_keys[out->n_meta] = h.mk[i];
    out->meta_values[out->n_meta++] = h.mv[i];
    h.mk[i] = h.mv[i] = NULL;
  }
  size_t chunk = 1 << 20;
  raw = malloc(chunk);
  if (!raw) goto oom;
  for (int i = 0; i < h.n; i++) {
    entry *e = order[i];
    uint32_t crc = 0;
    int bad = 0;
    if (!out->tensors[i] && checksums) { /* skipped: its data is checked, not kept */
      for (uint64_t k = e->begin; k < e->end && !bad; k += chunk) {
        size_t m = e->end - k < chunk ? (size_t)(e->end - k) : chunk;
        bad = fread(raw, 1, m, fp) != m;
        if (!bad) crc = crc_add(crc, raw, m);
      }
    } else if (!out->tensors[i]) { /* skipped: its data is not read */
      if (e->end > e->begin && fseeko(fp, (off_t)(e->end - e->begin), SEEK_CUR) != 0) {
        rc_error(c, "load: %s: cannot seek past tensor \"%.100s\": %s", path, out->names[i],
                 strerror(errno));
        goto fail;
      }
      continue;
    } else {
      int sz = DTYPES[e->dtype].size;
      int64_t numel = rc_numel(out->tensors[i]);
      float *dst = rc_data(out->tensors[i]);
      int64_t per = (int64_t)(chunk / (size_t)sz);
      if (e->dtype == D_F32 && is_little_endian()) {
        bad = numel && fread(dst, 4, (size_t)numel, fp) != (size_t)numel;
        if (!bad && checksums) crc = crc_add(0, dst, (size_t)numel * 4);
      } else {
        for (int64_t k = 0; k < numel && !bad; k += per) {
          int64_t m = numel - k < per ? numel - k : per;
          bad = fread(raw, (size_t)sz, (size_t)m, fp) != (size_t)m;
          if (!bad && checksums) crc = crc_add(crc, raw, (size_t)m * (size_t)sz);
          if (!bad) convert(e->dtype, raw, dst + k, m);
        }
      }
    }
    if (bad) {
      rc_error(c, "load: %s: read error in the data of tensor \"%.100s\" (the file changed?)", path,
               out->names[i]);
      goto fail;
    }
    if (checksums && crc != e->crc) {
      rc_error(c,
               "load: %s: tensor \"%.100s\" does not match its checksum (CRC-32 %08x in the "
               "metadata, %08x computed from its data): the file is corrupted",
               path, out->names[i], (unsigned)e->crc, (unsigned)crc);
      goto fail;
    }
  }
  goto done;
oom:
  rc_error(c, "load: out of memory reading %s", path);
fail: /* out may be NULL: before it is made, fail is done */
  rc_st_free(out);
  out = NULL;
done:
  free(raw);
  free(order);
  free(hbuf);
  header_free(&h);
  fclose(fp);
  return out;
}

/* ---- writing ---- */

static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Feeds the little-endian bytes of n floats to *crc (when crc) and writes them to fd (when
 * fd >= 0); conv: a 1 MB buffer for a big-endian machine. 0, or -1 after a write error. */
static int put_floats(int fd, const float *x, int64_t n, uint32_t *crc, unsigned char *conv) {
  if (is_little_endian()) {
    if (crc) *crc = crc_add(*crc, x, (size_t)n * 4);
    return fd >= 0 && n && write_all(fd, x, (size_t)n * 4) ? -1 : 0;
  }
  int64_t per = (1 << 20) / 4;
  for (int64_t k = 0; k < n; k += per) {
    int64_t m = n - k < per ? n - k : per;
    for (int64_t j = 0; j < m; j++) {
      uint32_t w;
      memcpy(&w, x + k + j, 4);
      for (int s = 0; s < 4; s++) conv[4 * j + s] = (unsigned char)((w >> (8 * s)) & 0xFF);
    }
    if (crc) *crc = crc_add(*crc, conv, (size_t)m * 4);
    if (fd >= 0 && write_all(fd, conv, (size_t)m * 4)) return -1;
  }
  return 0;
}

int rc_st_write(rc_ctx *c, const char *path, int n, const char *const *names, rc_tensor *const *ts,
                int n_meta, const char *const *keys, const char *const *values) {
  if (rc_check_file_write(c, "save", path)) return -1;
  if (n < 0 || n_meta < 0) return rc_error(c, "save: negative count");
  for (int i = 0; i < n; i++) {
    if (!names[i] || !names[i][0]) return rc_error(c, "save: tensor %d has an empty name", i + 1);
    if (strcmp(names[i], "__metadata__") == 0)
      return rc_error(c, "save: \"__metadata__\" is reserved and cannot name a tensor");
    if (!utf8_valid((const unsigned char *)names[i], strlen(names[i])))
      return rc_error(c, "save: the name of tensor %d is not valid UTF-8", i + 1);
    for (int k = 0; k < i; k++)
      if (strcmp(names[k], names[i]) == 0)
        return rc_error(c, "save: two tensors are named \"%.100s\"", names[i]);
  }
  for (int i = 0; i < n_meta; i++) {
    if (!utf8_valid((const unsigned char *)keys[i], strlen(keys[i])) ||
        !utf8_valid((const unsigned char *)values[i], strlen(values[i])))
      return rc_error(c, "save: metadata \"%.100s\" is not valid UTF-8", keys[i]);
    if (is_crc_key(keys[i]))
      return rc_error(c, "save: metadata key \"%.100s\" is reserved (the checksums)", keys[i]);
    for (int k = 0; k < i; k++)
      if (strcmp(keys[k], keys[i]) == 0)
        return rc_error(c, "save: metadata key \"%.100s\" appears twice", keys[i]);
  }
  int rc = -1, fd = -1;
  sbuf b = {0};
  char *tmp = NULL, *dir = NULL, *base = NULL;
  unsigned char *conv = malloc((size_t)1 << 20);
  /* the tensors' data, contiguous (copies of the others, released at the end) */
  rc_tensor **src = calloc((size_t)(n > 0 ? n : 1), sizeof *src);
  uint32_t *crcs = calloc((size_t)(n > 0 ? n : 1), sizeof *crcs);
  if (!conv || !src || !crcs) goto oom;
  for (int i = 0; i < n; i++) {
    if (rc_is_contiguous(ts[i])) {
      src[i] = ts[i];
      rc_retain(ts[i]);
    } else if (!(src[i] = rc_raw_contiguous(ts[i]))) {
      goto out;
    }
    put_floats(-1, rc_data(src[i]), rc_numel(src[i]), &crcs[i], conv);
  }
  /* header: the metadata with the checksums, then the tensors */
  sb_str(&b, "{\"__metadata__\":{");
  for (int i = 0; i < n_meta; i++) {
    sb_json_string(&b, keys[i]);
    sb_str(&b, ":");
    sb_json_string(&b, values[i]);
    sb_str(&b, ",");
  }
  for (int i = 0; i < n; i++) {
    char hex[16], *key = malloc(strlen(CRC_PREFIX) + strlen(names[i]) + 1);
    if (!key) goto oom;
    strcat(strcpy(key, CRC_PREFIX), names[i]);
    sb_json_string(&b, key);
    free(key);
    snprintf(hex, sizeof hex, ":\"%08x\",", (unsigned)crcs[i]);
    sb_str(&b, hex);
  }
  sb_str(&b, "\"" HEADER_CRC_KEY "\":\"");
  size_t hcrc_pos = b.n;
  sb_str(&b, "00000000\"}");
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    char num[64];
    sb_str(&b, ",");
    sb_json_string(&b, names[i]);
    sb_str(&b, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < ts[i]->ndim; d++) {
      snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)ts[i]->size[d]);
      sb_str(&b, num);
    }
    uint64_t bytes = (uint64_t)rc_numel(ts[i]) * 4;
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
             (unsigned long long)(off + bytes));
    sb_str(&b, num);
    off += bytes;
  }
  sb_str(&b, "}");
  while (!b.oom && b.n % 8 != 0) sb_str(&b, " ");
  if (b.oom) goto oom;
  if (b.n > RC_ST_MAX_HEADER) {
    rc_error(c, "save: the header would be %zu bytes, more than the format allows", b.n);
    goto out;
  }
  {
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", (unsigned)crc_add(0, b.p, b.n));
    memcpy(b.p + hcrc_pos, hex, 8);
  }
  /* a locked temporary file in the target's directory (the lock: see remove_stale_temps) */
  size_t plen = strlen(path);
  tmp = malloc(plen + 16);
  if (!tmp || split_path(path, &dir, &base)) goto oom;
  remove_stale_temps(path);
  for (int attempt = 0;; attempt++) {
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
      rc_error(c, "save: cannot create a temporary file next to %s: %s", path, strerror(errno));
      goto out;
    }
    if (lock_new_temp(fd, tmp)) break;
    close(fd); /* a cleaner removed it before we locked it */
    fd = -1;
    if (attempt == 10) {
      rc_error(c, "save: the temporary files next to %s keep disappearing", path);
      goto out;
    }
  }
  (void)fchmod(fd, 0644);
  unsigned char lenb[8];
  for (int k = 0; k < 8; k++) lenb[k] = (unsigned char)(((uint64_t)b.n >> (8 * k)) & 0xFF);
  if (write_all(fd, lenb, 8) || write_all(fd, b.p, b.n)) goto io_fail;
  for (int i = 0; i < n; i++)
    if (put_floats(fd, rc_data(src[i]), rc_numel(src[i]), NULL, conv)) goto io_fail;
  if (fsync(fd) != 0) goto io_fail;
  /* renamed while still locked, so no cleaner takes it for a killed writer's; the data is on
   * disk (fsync), so close has nothing left to report */
  if (rename(tmp, path) != 0) {
    rc_error(c, "save: cannot rename %s to %s: %s", tmp, path, strerror(errno));
    goto unlink_out;
  }
  close(fd);
  fd = -1;
  {
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
      (void)fsync(dfd); /* best effort: some file systems refuse fsync on a directory */
      close(dfd);
    }
  }
  rc = 0;
  goto out;
oom:
  rc_error(c, "save: out of memory");
  goto out;
io_fail:
  rc_error(c, "save: writing %s failed: %s", tmp, strerror(errno));
unlink_out:
  unlink(tmp); /* before close: still ours */
out:
  if (fd >= 0) close(fd);
  for (int i = 0; i < n && src; i++) rc_release(src[i]);
  free(src);
  free(crcs);
  free(tmp);
  free(dir);
  free(base);
  free(conv);
  free(b.p);
  return rc;
}
