/* IDX files (the MNIST format), plain or gzip-compressed, read into float tensors.
 * The header is validated (magic, type, dimensions) and so is the file's length against the
 * header, before the tensor is allocated for plain files and memory buffers. A gzip file's
 * decompressed length is only known at its end, so there the tensor is allocated first (after
 * a bound on the size the header claims) and released if the stream ends early or runs on. */
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define CHUNK (1u << 20)
/* deflate cannot compress better than about 1032:1; a header that claims more data than
 * that is corrupt (checked before allocating). */
#define GZ_MAX_RATIO 1040

typedef struct {
  FILE *f;
  gzFile gz;
  const unsigned char *mem;
  size_t mem_n, mem_pos;
} src_t;

/* Reads up to n bytes; returns the count (short only at the end), or -1 on a read error
 * (message in *why). */
static long long src_read(src_t *s, unsigned char *buf, size_t n, const char **why) {
  if (s->mem) {
    size_t k = s->mem_n - s->mem_pos < n ? s->mem_n - s->mem_pos : n;
    memcpy(buf, s->mem + s->mem_pos, k);
    s->mem_pos += k;
    return (long long)k;
  }
  if (s->gz) {
    size_t got = 0;
    while (got < n) {
      unsigned ask = n - got > CHUNK ? CHUNK : (unsigned)(n - got);
      int r = gzread(s->gz, buf + got, ask);
      if (r < 0) {
        int code;
        *why = gzerror(s->gz, &code);
        return -1;
      }
      if (r == 0) {
        int code;
        const char *m = gzerror(s->gz, &code);
        if (code != Z_OK) {
          *why = m;
          return -1;
        }
        break;
      }
      got += (size_t)r;
    }
    return (long long)got;
  }
  size_t k = fread(buf, 1, n, s->f);
  if (k < n && ferror(s->f)) {
    *why = strerror(errno);
    return -1;
  }
  return (long long)k;
}

typedef struct {
  unsigned char code;
  const char *name;
  int size;
} idx_type;

static const idx_type TYPES[] = {{0x08, "ubyte", 1}, {0x09, "int8", 1},    {0x0B, "int16", 2},
                                 {0x0C, "int32", 4}, {0x0D, "float32", 4}, {0x0E, "float64", 8}};

static const idx_type *find_type(unsigned char code) {
  for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
    if (TYPES[i].code == code) return &TYPES[i];
  return NULL;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* "60000 x 28 x 28" */
static void dims_str(char *buf, size_t len, int ndim, const int64_t *dims) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < ndim && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, i ? " x %lld" : "%lld", (long long)dims[i]);
}

/* Converts k elements of type t from big-endian bytes into floats. */
static void convert(const idx_type *t, const unsigned char *in, size_t k, float *out,
                    const float *lut, float mul) {
  switch (t->code) {
  case 0x08:
    for (size_t i = 0; i < k; i++) out[i] = lut[in[i]];
    break;
  case 0x09:
    for (size_t i = 0; i < k; i++) out[i] = (float)(int8_t)in[i] * mul;
    break;
  case 0x0B:
    for (size_t i = 0; i < k; i++)
      out[i] = (float)(int16_t)(uint16_t)(in[2 * i] << 8 | in[2 * i + 1]) * mul;
    break;
  case 0x0C:
    for (size_t i = 0; i < k; i++) out[i] = (float)(int32_t)be32(in + 4 * i) * mul;
    break;
  case 0x0D:
    for (size_t i = 0; i < k; i++) {
      uint32_t u = be32(in + 4 * i);
      float f;
      memcpy(&f, &u, 4);
      out[i] = f * mul;
    }
    break;
  default: /* 0x0E */
    for (size_t i = 0; i < k; i++) {
      uint64_t u = (uint64_t)be32(in + 8 * i) << 32 | be32(in + 8 * i + 4);
      double d;
      memcpy(&d, &u, 8);
      out[i] = (float)(d * mul);
    }
    break;
  }
}

/* total: the source's full length in bytes when known (plain files, memory), else -1 (gzip:
 * then comp_size is the compressed length, for the sanity bound). */
static rc_tensor *read_idx(rc_ctx *c, const char *fn, const char *name, src_t *s, long long total,
                           long long comp_size, int scale) {
  unsigned char hdr[4 + 4 * 255];
  const char *why = NULL;
  const char *what = s->gz ? "corrupt or truncated gzip data" : "read error";
  long long got = src_read(s, hdr, 4, &why);
  if (got < 0) return rc_error_null(c, "%s: '%s': %s: %s", fn, name, what, why);
  if (got == 0) return rc_error_null(c, "%s: '%s' is empty (0 bytes): not an IDX file", fn, name);
  if (got < 4)
    return rc_error_null(c, "%s: '%s' is truncated: %lld bytes, shorter than the 4-byte IDX magic",
                         fn, name, got);
  if (hdr[0] != 0 || hdr[1] != 0)
    return rc_error_null(c,
                         "%s: '%s' is not an IDX file: it starts with bytes %02x %02x %02x %02x "
                         "(an IDX file starts with 00 00, a type byte and the number of "
                         "dimensions, e.g. 00 00 08 03 for images)",
                         fn, name, hdr[0], hdr[1], hdr[2], hdr[3]);
  const idx_type *t = find_type(hdr[2]);
  if (!t)
    return rc_error_null(c,
                         "%s: '%s' has an unknown IDX data type 0x%02x (magic %02x %02x %02x "
                         "%02x; types are 08 ubyte, 09 int8, 0B int16, 0C int32, 0D float32, "
                         "0E float64)",
                         fn, name, hdr[2], hdr[0], hdr[1], hdr[2], hdr[3]);
  int ndim = hdr[3];
  if (ndim < 1 || ndim > RC_MAX_DIM)
    return rc_error_null(c,
                         "%s: '%s' declares %d dimensions (magic %02x %02x %02x %02x); "
                         "1 to %d are supported",
                         fn, name, ndim, hdr[0], hdr[1], hdr[2], hdr[3], RC_MAX_DIM);
  long long hbytes = 4 + 4LL * ndim;
  got = src_read(s, hdr + 4, (size_t)(4 * ndim), &why);
  if (got < 0) return rc_error_null(c, "%s: '%s': %s: %s", fn, name, what, why);
  if (got < 4 * ndim)
    return rc_error_null(c,
                         "%s: '%s' is truncated inside the header: %lld bytes, a %d-dimension "
                         "IDX header has %lld",
                         fn, name, 4 + got, ndim, hbytes);
  int64_t dims[RC_MAX_DIM];
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    dims[i] = be32(hdr + 4 + 4 * i);
    if (dims[i] > 0 && numel > RC_MAX_NUMEL / dims[i])
      return rc_error_null(c, "%s: '%s': the header's dimensions are too large", fn, name);
    numel *= dims[i];
  }
  char ds[160];
  dims_str(ds, sizeof ds, ndim, dims);
  long long dbytes = (long long)numel * t->size;
  if (total >= 0 && total != hbytes + dbytes) {
    if (total < hbytes + dbytes)
      return rc_error_null(c,
                           "%s: '%s' is truncated: the header says %s %s = %lld bytes of data "
                           "after a %lld-byte header (%lld bytes in all), but the file has "
                           "%lld bytes",
                           fn, name, ds, t->name, dbytes, hbytes, hbytes + dbytes, total);
    return rc_error_null(c,
                         "%s: '%s' has %lld bytes past the end of the data its header describes "
                         "(%s %s = %lld bytes after a %lld-byte header): the file is corrupt",
                         fn, name, total - hbytes - dbytes, ds, t->name, dbytes, hbytes);
  }
  if (total < 0 && dbytes / GZ_MAX_RATIO > comp_size)
    return rc_error_null(c,
                         "%s: '%s': the header says %s %s = %lld bytes of data, more than a "
                         "%lld-byte gzip file can hold: the file is corrupt",
                         fn, name, ds, t->name, dbytes, comp_size);
  int do_scale =
      scale == RC_IDX_SCALE_255 || (scale == RC_IDX_SCALE_AUTO && t->code == 0x08 && ndim >= 2);
  float mul = do_scale ? 1.0f / 255.0f : 1.0f;
  float lut[256];
  for (int i = 0; i < 256; i++) lut[i] = do_scale ? (float)i / 255.0f : (float)i;
  rc_tensor *out = rc_empty(c, ndim, dims);
  if (!out) return NULL;
  float *dst = rc_data(out);
  if (s->mem) { /* no copy: convert straight from the buffer */
    convert(t, s->mem + s->mem_pos, (size_t)numel, dst, lut, mul);
    return out;
  }
  unsigned char *buf = malloc(CHUNK);
  if (!buf) {
    rc_release(out);
    return rc_error_null(c, "%s: out of memory", fn);
  }
  long long done = 0;
  while (done < dbytes) {
    size_t ask = dbytes - done > CHUNK ? CHUNK : (size_t)(dbytes - done);
    got = src_read(s, buf, ask, &why);
    if (got < 0) {
      free(buf);
      rc_release(out);
      return rc_error_null(c, "%s: '%s': %s after %lld of %lld data bytes: %s", fn, name,
                           s->gz ? "corrupt or truncated gzip data" : "read error", done, dbytes,
                           why);
    }
    size_t whole = (size_t)got / (size_t)t->size;
    convert(t, buf, whole, dst + done / t->size, lut, mul);
    done += got;
    if ((size_t)got < ask) break;
  }
  long long extra = 0;
  if (done == dbytes) { /* anything after the data? */
    got = src_read(s, buf, CHUNK, &why);
    while (got > 0) {
      extra += got;
      got = src_read(s, buf, CHUNK, &why);
    }
    if (got < 0 && !extra) {
      free(buf);
      rc_release(out);
      return rc_error_null(c,
                           "%s: '%s': corrupt or truncated gzip data after the %lld data "
                           "bytes: %s",
                           fn, name, dbytes, why);
    }
  }
  free(buf);
  if (done < dbytes) {
    rc_release(out);
    return rc_error_null(c,
                         "%s: '%s' is truncated: the header says %s %s = %lld bytes of data, "
                         "but the %s ends after %lld",
                         fn, name, ds, t->name, dbytes, s->gz ? "decompressed stream" : "file",
                         done);
  }
  if (extra) {
    rc_release(out);
    return rc_error_null(c,
                         "%s: '%s' has %lld bytes past the end of the data its header describes "
                         "(%s %s = %lld bytes): the file is corrupt",
                         fn, name, extra, ds, t->name, dbytes);
  }
  return out;
}

rc_tensor *rc_parse_idx(rc_ctx *c, const char *fn, const char *name, const unsigned char *buf,
                        size_t n, int scale) {
  src_t s = {0};
  s.mem = buf ? buf : (const unsigned char *)"";
  s.mem_n = n;
  return read_idx(c, fn, name, &s, (long long)n, -1, scale);
}

rc_tensor *rc_load_idx(rc_ctx *c, const char *fn, const char *path, int scale) {
  if (rc_check_file_access(c, fn, path)) return NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return rc_error_null(c, "%s: cannot open '%s': %s", fn, path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    int e = errno;
    fclose(f);
    return rc_error_null(c, "%s: cannot read '%s': %s", fn, path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    fclose(f);
    return rc_error_null(c, "%s: '%s' is a directory, not an IDX file", fn, path);
  }
  unsigned char m[2];
  size_t k = fread(m, 1, 2, f);
  src_t s = {0};
  rc_tensor *out;
  if (k == 2 && m[0] == 0x1f && m[1] == 0x8b) {
    fclose(f);
    s.gz = gzopen(path, "rb");
    if (!s.gz) return rc_error_null(c, "%s: cannot open '%s': %s", fn, path, strerror(errno));
    gzbuffer(s.gz, CHUNK);
    out = read_idx(c, fn, path, &s, -1, (long long)st.st_size, scale);
    gzclose(s.gz);
    return out;
  }
  rewind(f);
  s.f = f;
  out = read_idx(c, fn, path, &s, (long long)st.st_size, -1, scale);
  fclose(f);
  return out;
}
