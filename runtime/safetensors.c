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
#include <jansson.h>
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

/* ---- the JSON header ----
 *
 * jansson reads and writes the JSON: RFC 8259 strictly (UTF-8 checked, \u0000 and lone
 * surrogates refused, integers kept apart from reals, duplicate keys refused with
 * JSON_REJECT_DUPLICATES), objects in file order. Its tree has no byte offsets, so two things
 * are found in the raw text by raw_scan: where the header checksum's digits are (they are read
 * as zeros), and which object a duplicate key jansson refused belongs to (for the message). */

typedef struct {
  char *name;
  int dtype; /* index into DTYPES, or -1 when unknown */
  char *dtype_name;
  int ndim;
  int64_t size[RC_MAX_DIM];
  uint64_t begin, end;
  int has_dtype, has_shape, has_offsets;
  int has_crc;
  uint32_t crc; /* CRC_PREFIX <name> in the metadata */
} entry;

typedef struct {
  entry *e;
  int n;
  char **mk, **mv;
  int nm;
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

/* The string tokens of JSON text that jansson accepted (up to where it stopped), in order:
 * each token's bytes [begin, end) with its quotes, the depth of the objects and arrays around
 * it, whether a ':' follows (a key), and the last key at depth 1 (the tensor's name or
 * "__metadata__" whose object a deeper token is in). */
typedef struct {
  const unsigned char *s;
  size_t n, i;
  int depth, is_key;
  size_t begin, end, top_begin, top_end;
} raw_scan;

static int raw_next_string(raw_scan *r) {
  while (r->i < r->n) {
    unsigned char ch = r->s[r->i++];
    if (ch == '{' || ch == '[') {
      r->depth++;
    } else if (ch == '}' || ch == ']') {
      r->depth--;
    } else if (ch == '"') {
      r->begin = r->i - 1;
      while (r->i < r->n && r->s[r->i] != '"') r->i += r->s[r->i] == '\\' ? 2 : 1;
      r->end = r->i = r->i < r->n ? r->i + 1 : r->n;
      size_t k = r->end;
      while (k < r->n && (r->s[k] == ' ' || r->s[k] == '\t' || r->s[k] == '\n' || r->s[k] == '\r'))
        k++;
      r->is_key = k < r->n && r->s[k] == ':';
      if (r->is_key && r->depth == 1) r->top_begin = r->begin, r->top_end = r->end;
      return 1;
    }
  }
  return 0;
}

/* The decoded text of the raw string token s[begin, end), malloc'ed; NULL when out of memory. */
static char *raw_string(const unsigned char *s, size_t begin, size_t end) {
  json_t *v = json_loadb((const char *)s + begin, end - begin, JSON_DECODE_ANY, NULL);
  char *out = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
  json_decref(v);
  return out;
}

/* Where the value of HEADER_CRC_KEY starts in a header that was read (after its opening quote)
 * and its raw length (*len), or 0 when the key is not written plainly in "__metadata__" (the
 * only object at depth 2 that may hold it once the header is validated). */
static size_t header_crc_at(const unsigned char *s, size_t n, int *len) {
  raw_scan r = {.s = s, .n = n};
  const char *key = "\"" HEADER_CRC_KEY "\"";
  size_t kl = strlen(key);
  while (raw_next_string(&r))
    if (r.is_key && r.depth == 2 && r.end - r.begin == kl && memcmp(s + r.begin, key, kl) == 0) {
      if (!raw_next_string(&r)) break;
      *len = (int)(r.end - r.begin - 2);
      return r.begin + 1;
    }
  *len = 0;
  return 0;
}

/* The message for JSON that jansson refused; a duplicate key is named with its place. */
static int json_fail(rc_ctx *c, const char *path, const unsigned char *s, size_t n,
                     const json_error_t *err) {
  if (json_error_code(err) == json_error_out_of_memory)
    return rc_error(c, "load: out of memory reading %s", path);
  enum json_error_code code = json_error_code(err);
  if (code == json_error_null_character || code == json_error_null_byte_in_key)
    return rc_error(c, "load: %s: invalid header JSON at byte %d: \\u0000 in a string", path,
                    err->position);
  if (code != json_error_duplicate_key)
    return rc_error(c, "load: %s: invalid header JSON at byte %d: %s", path, err->position,
                    err->text);
  /* the duplicate key's token ends where jansson stopped */
  raw_scan r = {.s = s, .n = n};
  while (raw_next_string(&r) && r.end < (size_t)err->position) {
  }
  char *key = raw_string(s, r.begin, r.end);
  char *top = r.depth == 2 ? raw_string(s, r.top_begin, r.top_end) : NULL;
  if (!key || (r.depth == 2 && !top)) {
    rc_error(c, "load: %s: invalid header JSON at byte %d: %s", path, err->position, err->text);
  } else if (r.depth == 1) {
    rc_error(c, "load: %s: invalid header JSON at byte %d: duplicate %s\"%.100s\"", path,
             err->position, strcmp(key, "__metadata__") ? "tensor name " : "", key);
  } else if (r.depth == 2 && strcmp(top, "__metadata__") == 0) {
    rc_error(c, "load: %s: invalid header JSON at byte %d: duplicate metadata key \"%.100s\"", path,
             err->position, key);
  } else if (r.depth == 2) {
    rc_error(c,
             "load: %s: invalid header JSON at byte %d: duplicate field \"%.100s\" in the entry "
             "of \"%.60s\"",
             path, err->position, key, top);
  } else {
    rc_error(c, "load: %s: invalid header JSON at byte %d: duplicate key \"%.100s\"", path,
             err->position, key);
  }
  free(key);
  free(top);
  return -1;
}

/* A non-negative integer up to 2^53 (exact in a double, as other readers need): NULL, or
 * what is wrong. */
static const char *json_uint(const json_t *v, uint64_t *out) {
  if (json_is_real(v)) return "expected an integer, got a fraction or exponent";
  if (!json_is_integer(v) || json_integer_value(v) < 0) return "expected a non-negative integer";
  if (json_integer_value(v) > (json_int_t)1 << 53) return "integer too large";
  *out = (uint64_t)json_integer_value(v);
  return NULL;
}

static int entry_error(rc_ctx *c, const char *path, const entry *e, const char *field,
                       const char *what) {
  return rc_error(c, "load: %s: invalid header: the %s of tensor \"%.100s\": %s", path, field,
                  e->name, what);
}

/* One tensor's entry: {"dtype": string, "shape": [n, ...], "data_offsets": [begin, end]}. */
static int read_entry(rc_ctx *c, const char *path, const json_t *v, entry *e) {
  if (!json_is_object(v))
    return rc_error(c, "load: %s: invalid header: the entry of tensor \"%.100s\" is not an object",
                    path, e->name);
  const char *k, *why;
  const json_t *f;
  json_object_foreach((json_t *)v, k, f) {
    if (strcmp(k, "dtype") == 0) {
      if (!json_is_string(f)) return entry_error(c, path, e, "dtype", "expected a string");
      e->has_dtype = 1;
      if (!(e->dtype_name = strdup(json_string_value(f))))
        return rc_error(c, "load: out of memory reading %s", path);
      e->dtype = dtype_index(e->dtype_name);
    } else if (strcmp(k, "shape") == 0) {
      if (!json_is_array(f)) return entry_error(c, path, e, "shape", "expected an array");
      if (json_array_size(f) > RC_MAX_DIM)
        return rc_error(c,
                        "load: %s: invalid header: the shape of tensor \"%.100s\" has more than "
                        "8 dimensions",
                        path, e->name);
      e->has_shape = 1;
      e->ndim = (int)json_array_size(f);
      for (int d = 0; d < e->ndim; d++) {
        uint64_t s;
        if ((why = json_uint(json_array_get(f, (size_t)d), &s)))
          return entry_error(c, path, e, "shape", why);
        e->size[d] = (int64_t)s;
      }
    } else if (strcmp(k, "data_offsets") == 0) {
      if (!json_is_array(f) || json_array_size(f) != 2)
        return entry_error(c, path, e, "data_offsets", "expected [begin, end]");
      e->has_offsets = 1;
      if ((why = json_uint(json_array_get(f, 0), &e->begin)) ||
          (why = json_uint(json_array_get(f, 1), &e->end)))
        return entry_error(c, path, e, "data_offsets", why);
    } else {
      return rc_error(c,
                      "load: %s: invalid header: unexpected field \"%.100s\" in the entry of "
                      "\"%.60s\"",
                      path, k, e->name);
    }
  }
  if (!e->has_dtype || !e->has_shape || !e->has_offsets)
    return rc_error(c, "load: %s: the entry of tensor \"%.100s\" lacks %s", path, e->name,
                    !e->has_dtype   ? "\"dtype\""
                    : !e->has_shape ? "\"shape\""
                                    : "\"data_offsets\"");
  return 0;
}

/* "__metadata__": an object of strings, kept in file order. */
static int read_metadata(rc_ctx *c, const char *path, const json_t *v, header *h) {
  if (!json_is_object(v))
    return rc_error(c, "load: %s: invalid header: \"__metadata__\" is not an object", path);
  size_t m = json_object_size(v) ? json_object_size(v) : 1;
  if (!(h->mk = calloc(m, sizeof *h->mk)) || !(h->mv = calloc(m, sizeof *h->mv)))
    return rc_error(c, "load: out of memory reading %s", path);
  const char *k;
  const json_t *s;
  json_object_foreach((json_t *)v, k, s) {
    if (!json_is_string(s))
      return rc_error(c,
                      "load: %s: invalid header: the value of metadata key \"%.100s\" is not a "
                      "string",
                      path, k);
    h->mk[h->nm] = strdup(k);
    h->mv[h->nm++] = strdup(json_string_value(s));
    if (!h->mk[h->nm - 1] || !h->mv[h->nm - 1])
      return rc_error(c, "load: out of memory reading %s", path);
  }
  return 0;
}

/* The header s[0..n): parsed by jansson, then checked against the format into *h. */
static int parse_header(rc_ctx *c, const char *path, const unsigned char *s, size_t n, header *h) {
  if (!utf8_valid(s, n)) return rc_error(c, "load: %s: the header is not valid UTF-8", path);
  json_error_t err;
  json_t *root = json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, &err);
  if (!root) return json_fail(c, path, s, n, &err);
  int rc = 0;
  if (!json_is_object(root)) {
    rc = rc_error(c, "load: %s: invalid header: the header is an array, not an object", path);
    goto out;
  }
  if (!(h->e = calloc(json_object_size(root) + 1, sizeof *h->e))) {
    rc = rc_error(c, "load: out of memory reading %s", path);
    goto out;
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "__metadata__") == 0) {
      if ((rc = read_metadata(c, path, v, h))) goto out;
      continue;
    }
    entry *e = &h->e[h->n++];
    e->dtype = -1;
    if (!(e->name = strdup(k))) {
      rc = rc_error(c, "load: out of memory reading %s", path);
      goto out;
    }
    if ((rc = read_entry(c, path, v, e))) goto out;
  }
  h->hcrc_pos = header_crc_at(s, n, &h->hcrc_raw_len);
out:
  json_decref(root);
  return rc;
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
                    "load: %s: the header checksum \"%.40s\" is not written as 8 hexadecimal "
                    "digits: the file is corrupted",
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
  if (parse_header(c, path, hbuf, (size_t)hlen, &h)) goto done;
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
    if (rc_check_shape(c, "load", e->ndim, e->size)) { /* its message, with file and tensor */
      char why[RC_ERR_MAX];
      snprintf(why, sizeof why, "%s", c->err + strlen("load: "));
      rc_error(c, "load: %s: tensor \"%.100s\": %s", path, e->name, why);
      goto done;
    }
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
  json_t *root = NULL;
  char *hdr = NULL; /* the header's JSON text, padded */
  size_t hn = 0;
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
  /* header: the metadata with the checksums, then the tensors (jansson keeps this order) */
  root = json_object();
  json_t *meta = json_object();
  if (!root || !meta || json_object_set_new(root, "__metadata__", meta)) goto oom;
  for (int i = 0; i < n_meta; i++)
    if (json_object_set_new(meta, keys[i], json_string(values[i]))) goto oom;
  for (int i = 0; i < n; i++) {
    char hex[9], *key = malloc(strlen(CRC_PREFIX) + strlen(names[i]) + 1);
    if (!key) goto oom;
    strcat(strcpy(key, CRC_PREFIX), names[i]);
    snprintf(hex, sizeof hex, "%08x", (unsigned)crcs[i]);
    int bad = json_object_set_new(meta, key, json_string(hex));
    free(key);
    if (bad) goto oom;
  }
  if (json_object_set_new(meta, HEADER_CRC_KEY, json_string("00000000"))) goto oom;
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    json_t *shape = json_array();
    for (int d = 0; shape && d < ts[i]->ndim; d++)
      if (json_array_append_new(shape, json_integer(ts[i]->size[d]))) {
        json_decref(shape);
        goto oom;
      }
    uint64_t bytes = (uint64_t)rc_numel(ts[i]) * 4;
    json_t *e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets",
                          (json_int_t)off, (json_int_t)(off + bytes));
    if (!e || json_object_set_new(root, names[i], e)) goto oom;
    off += bytes;
  }
  char *text = json_dumps(root, JSON_COMPACT);
  if (!text) goto oom;
  hn = strlen(text);
  hdr = realloc(text, hn + 8);
  if (!hdr) {
    free(text);
    goto oom;
  }
  while (hn % 8 != 0) hdr[hn++] = ' ';
  if (hn > RC_ST_MAX_HEADER) {
    rc_error(c, "save: the header would be %zu bytes, more than the format allows", hn);
    goto out;
  }
  {
    int len;
    size_t pos = header_crc_at((const unsigned char *)hdr, hn, &len);
    char hex[9];
    if (!pos || len != 8) { /* jansson writes a plain key and 8 digits: cannot happen */
      rc_error(c, "save: %s: cannot find the header checksum in the header written", path);
      goto out;
    }
    snprintf(hex, sizeof hex, "%08x", (unsigned)crc_add(0, hdr, hn));
    memcpy(hdr + pos, hex, 8);
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
  for (int k = 0; k < 8; k++) lenb[k] = (unsigned char)(((uint64_t)hn >> (8 * k)) & 0xFF);
  if (write_all(fd, lenb, 8) || write_all(fd, hdr, hn)) goto io_fail;
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
  free(hdr);
  json_decref(root);
  return rc;
}
