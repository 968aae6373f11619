/* Text vocabularies (bytes or UTF-8 code points) and padded batches of ragged sets. */
#include "data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rc_utf8_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp, const char **why) {
  unsigned char b = s[i];
  if (b < 0x80) {
    *cp = b;
    return 1;
  }
  int len;
  uint32_t v, min;
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2, v = b & 0x1F, min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3, v = b & 0x0F, min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4, v = b & 0x07, min = 0x10000;
  } else {
    *why = b >= 0x80 && b <= 0xBF   ? "a continuation byte with no lead byte"
           : b == 0xC0 || b == 0xC1 ? "an overlong lead byte"
                                    : "a byte that never occurs in UTF-8";
    return 0;
  }
  if (n - i < (size_t)len) {
    *why = "a sequence cut short by the end of the text";
    return 0;
  }
  for (int k = 1; k < len; k++) {
    unsigned char cb = s[i + k];
    if ((cb & 0xC0) != 0x80) {
      *why = "a sequence cut short (a lead byte not followed by enough continuation bytes)";
      return 0;
    }
    v = v << 6 | (cb & 0x3F);
  }
  if (v < min) {
    *why = "an overlong encoding";
    return 0;
  }
  if (v >= 0xD800 && v <= 0xDFFF) {
    *why = "an encoded surrogate (U+D800..U+DFFF)";
    return 0;
  }
  if (v > 0x10FFFF) {
    *why = "a code point past U+10FFFF";
    return 0;
  }
  *cp = v;
  return len;
}

int rc_utf8_encode(uint32_t cp, unsigned char *out) {
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xC0 | cp >> 6);
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (unsigned char)(0xE0 | cp >> 12);
    out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | cp >> 18);
  out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

static void *invalid_utf8(rc_ctx *c, const char *fn, const unsigned char *s, size_t n, size_t i,
                          const char *why) {
  char bytes[32];
  size_t k = 0;
  for (size_t j = i; j < n && j < i + 4; j++)
    k += (size_t)snprintf(bytes + k, sizeof bytes - k, j > i ? " %02x" : "%02x", s[j]);
  return rc_error_null(c,
                       "%s: invalid UTF-8 at byte offset %zu (0-based; string position %zu): "
                       "%s (bytes %s)",
                       fn, i, i + 1, why, bytes);
}

#define NCODES 0x110000

rc_tensor *rc_text_symbols(rc_ctx *c, const char *fn, const unsigned char *s, size_t n, int mode) {
  /* a pass over the text that allocates nothing in proportion: the budget sees its bytes */
  if (rc_charge(c, fn, n / 4 + 1)) return NULL;
  size_t range = mode == RC_TEXT_UTF8 ? NCODES : 256;
  unsigned char *seen = calloc(range, 1);
  if (!seen) return rc_error_null(c, "%s: out of memory", fn);
  if (mode == RC_TEXT_UTF8) {
    size_t i = 0;
    while (i < n) {
      if (s[i] < 0x80) {
        seen[s[i++]] = 1;
        continue;
      }
      uint32_t cp;
      const char *why = NULL;
      int len = rc_utf8_decode(s, n, i, &cp, &why);
      if (!len) {
        free(seen);
        return invalid_utf8(c, fn, s, n, i, why);
      }
      seen[cp] = 1;
      i += (size_t)len;
    }
  } else {
    for (size_t i = 0; i < n; i++) seen[s[i]] = 1;
  }
  int64_t count = 0;
  for (size_t k = 0; k < range; k++) count += seen[k];
  rc_tensor *out = rc_empty(c, 1, &count);
  if (out) {
    float *d = rc_data(out);
    for (size_t k = 0, j = 0; k < range; k++)
      if (seen[k]) d[j++] = (float)k;
  }
  free(seen);
  return out;
}

/* The vocabulary as a sorted uint32 array after checking codes is 1-D, integral, in range
 * and strictly increasing. */
static uint32_t *read_codes(rc_ctx *c, const char *fn, rc_tensor *codes, int mode, size_t *nc) {
  if (codes->ndim != 1)
    return rc_error_null(c, "%s: the vocabulary's codes must be a 1-D tensor, got %d dimensions",
                         fn, codes->ndim);
  size_t m = (size_t)codes->size[0];
  float *tmp = malloc((m ? m : 1) * sizeof(float));
  uint32_t *out = malloc((m ? m : 1) * sizeof(uint32_t));
  if (!tmp || !out) {
    free(tmp);
    free(out);
    return rc_error_null(c, "%s: out of memory", fn);
  }
  rc_read_floats(codes, tmp);
  double hi = mode == RC_TEXT_UTF8 ? 0x10FFFF : 255;
  for (size_t k = 0; k < m; k++) {
    double v = tmp[k];
    if (!(v >= 0 && v <= hi && v == floor(v)) || (k && v <= out[k - 1])) {
      free(tmp);
      free(out);
      return rc_error_null(c, "%s: the vocabulary's code %zu (%g) is not a %s in increasing order",
                           fn, k + 1, v, mode == RC_TEXT_UTF8 ? "code point" : "byte");
    }
    out[k] = (uint32_t)v;
  }
  free(tmp);
  *nc = m;
  return out;
}

/* Position of cp in the sorted codes, or -1. */
static int64_t find_code(const uint32_t *codes, size_t m, uint32_t cp) {
  size_t lo = 0, hi = m;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (codes[mid] < cp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < m && codes[lo] == cp ? (int64_t)lo : -1;
}

static void *unknown_symbol(rc_ctx *c, const char *fn, int mode, uint32_t cp, size_t i, size_t m) {
  char sym[48];
  if (mode == RC_TEXT_UTF8) {
    if (cp >= 0x20 && cp < 0x7F)
      snprintf(sym, sizeof sym, "character '%c' (U+%04X)", (char)cp, (unsigned)cp);
    else if (cp >= 0xA0) {
      unsigned char u[5] = {0};
      rc_utf8_encode(cp, u);
      snprintf(sym, sizeof sym, "character '%s' (U+%04X)", (const char *)u, (unsigned)cp);
    } else
      snprintf(sym, sizeof sym, "character U+%04X", (unsigned)cp);
  } else if (cp >= 0x20 && cp < 0x7F) {
    snprintf(sym, sizeof sym, "byte '%c' (0x%02X)", (char)cp, (unsigned)cp);
  } else {
    snprintf(sym, sizeof sym, "byte 0x%02X", (unsigned)cp);
  }
  return rc_error_null(c,
                       "%s: %s at byte offset %zu (0-based; string position %zu) is not in the "
                       "vocabulary (%zu symbols); pass {unknown = \"skip\"} or {unknown = "
                       "\"replace\", replacement = SYMBOL}",
                       fn, sym, i, i + 1, m);
}

rc_tensor *rc_text_encode(rc_ctx *c, const char *fn, const unsigned char *s, size_t n, int mode,
                          rc_tensor *codes, int unknown, int64_t replace_id, int64_t base) {
  if (rc_charge(c, fn, n / 4 + 1)) return NULL; /* decoding and looking up each character */
  size_t m;
  uint32_t *cv = read_codes(c, fn, codes, mode, &m);
  if (!cv) return NULL;
  if (unknown == RC_UNKNOWN_REPLACE && (replace_id < base || replace_id >= base + (int64_t)m)) {
    free(cv);
    return rc_error_null(c, "%s: the replacement id %lld is outside the vocabulary (%lld..%lld)",
                         fn, (long long)replace_id, (long long)base,
                         (long long)(base + (int64_t)m - 1));
  }
  /* Direct table for bytes / ASCII: -1 = unknown. */
  float lut[256];
  int known[256];
  for (int k = 0; k < 256; k++) {
    int64_t p = (mode == RC_TEXT_UTF8 && k >= 0x80) ? -1 : find_code(cv, m, (uint32_t)k);
    known[k] = p >= 0;
    lut[k] = (float)(p + base);
  }
  float *ids = malloc((n ? n : 1) * sizeof(float));
  if (!ids) {
    free(cv);
    return rc_error_null(c, "%s: out of memory", fn);
  }
  size_t j = 0;
  float rep = (float)replace_id;
  size_t i = 0;
  while (i < n) {
    unsigned char b = s[i];
    if (mode != RC_TEXT_UTF8 || b < 0x80) {
      if (known[b]) {
        ids[j++] = lut[b];
      } else if (unknown == RC_UNKNOWN_REPLACE) {
        ids[j++] = rep;
      } else if (unknown != RC_UNKNOWN_SKIP) {
        free(ids);
        free(cv);
        return unknown_symbol(c, fn, mode, b, i, m);
      }
      i++;
      continue;
    }
    uint32_t cp;
    const char *why = NULL;
    int len = rc_utf8_decode(s, n, i, &cp, &why);
    if (!len) {
      free(ids);
      free(cv);
      return invalid_utf8(c, fn, s, n, i, why);
    }
    int64_t p = find_code(cv, m, cp);
    if (p >= 0) {
      ids[j++] = (float)(p + base);
    } else if (unknown == RC_UNKNOWN_REPLACE) {
      ids[j++] = rep;
    } else if (unknown != RC_UNKNOWN_SKIP) {
      free(ids);
      free(cv);
      return unknown_symbol(c, fn, mode, cp, i, m);
    }
    i += (size_t)len;
  }
  free(cv);
  int64_t len = (int64_t)j;
  rc_tensor *out = rc_empty(c, 1, &len);
  if (out && j) memcpy(rc_data(out), ids, j * sizeof(float));
  free(ids);
  return out;
}

/* ids as a flat contiguous float copy (malloc'ed), or NULL with a message. */
static float *read_ids(rc_ctx *c, const char *fn, rc_tensor *ids, size_t *k) {
  size_t n = (size_t)rc_numel(ids);
  float *v = malloc((n ? n : 1) * sizeof(float));
  if (!v) return rc_error_null(c, "%s: out of memory", fn);
  rc_read_floats(ids, v);
  *k = n;
  return v;
}

int rc_text_decode_len(rc_ctx *c, const char *fn, rc_tensor *ids, int mode, rc_tensor *codes,
                       int64_t base, size_t *len) {
  /* the length pass and the writing pass over ids (a view can hold many) */
  if (rc_charge_elems(c, fn, rc_numel(ids) * 8)) return -1;
  size_t m = 0, n = 0;
  uint32_t *cv = read_codes(c, fn, codes, mode, &m);
  if (!cv) return -1;
  float *v = read_ids(c, fn, ids, &n);
  if (!v) {
    free(cv);
    return -1;
  }
  size_t total = 0;
  for (size_t k = 0; k < n; k++) {
    double x = v[k];
    if (!(x >= (double)base && x < (double)base + (double)m && x == floor(x))) {
      free(v);
      free(cv);
      return rc_error(c, "%s: id %g at position %zu is not a vocabulary id (%lld..%lld)", fn, x,
                      k + 1, (long long)base, (long long)(base + (int64_t)m - 1));
    }
    uint32_t cp = cv[(size_t)(x - (double)base)];
    total += mode == RC_TEXT_UTF8 ? (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4) : 1;
  }
  free(v);
  free(cv);
  *len = total;
  return 0;
}

int rc_text_decode_into(rc_ctx *c, const char *fn, rc_tensor *ids, int mode, rc_tensor *codes,
                        int64_t base, char *out) {
  size_t m = (size_t)codes->size[0], n = (size_t)rc_numel(ids);
  float *cf = malloc((m ? m : 1) * sizeof(float));
  float *v = malloc((n ? n : 1) * sizeof(float));
  int rc = cf && v ? 0 : rc_error(c, "%s: out of memory", fn);
  if (!rc) { /* rc_text_decode_len validated everything; allocation is all that can fail */
    rc_read_floats(codes, cf);
    rc_read_floats(ids, v);
    unsigned char *o = (unsigned char *)out;
    for (size_t k = 0; k < n; k++) {
      uint32_t cp = (uint32_t)cf[(size_t)(v[k] - (float)base)];
      if (mode == RC_TEXT_UTF8)
        o += rc_utf8_encode(cp, o);
      else
        *o++ = (unsigned char)cp;
    }
  }
  free(cf);
  free(v);
  return rc;
}

/* Checks that t is a 1-D tensor; NULL-safe message helper. */
static int check_1d(rc_ctx *c, const char *fn, const char *what, rc_tensor *t) {
  if (t->ndim != 1)
    return rc_error(c, "%s: %s must be a 1-D tensor, got %d dimensions", fn, what, t->ndim);
  return 0;
}

rc_tensor *rc_pad_batch(rc_ctx *c, const char *fn, rc_tensor *tokens, rc_tensor *starts,
                        rc_tensor *lengths, rc_tensor *index, float pad, int batch_first,
                        int64_t base, int64_t *padding) {
  if (check_1d(c, fn, "tokens", tokens) || check_1d(c, fn, "starts", starts) ||
      check_1d(c, fn, "lengths", lengths) || check_1d(c, fn, "index", index))
    return NULL;
  if (starts->size[0] != lengths->size[0])
    return rc_error_null(c, "%s: starts has %lld entries but lengths has %lld", fn,
                         (long long)starts->size[0], (long long)lengths->size[0]);
  int64_t nseq = starts->size[0], ntok = tokens->size[0], b = index->size[0];
  rc_tensor *tk = rc_raw_contiguous(tokens);
  if (!tk) return NULL;
  size_t nb = (size_t)(b ? b : 1);
  int64_t *st = malloc(nb * sizeof(int64_t)), *ln = malloc(nb * sizeof(int64_t));
  float *idx = malloc(nb * sizeof(float));
  rc_tensor *out = NULL;
  if (!st || !ln || !idx) {
    rc_error(c, "%s: out of memory", fn);
    goto done;
  }
  rc_read_floats(index, idx);
  int64_t T = 0;
  for (int64_t k = 0; k < b; k++) {
    double x = idx[k];
    if (!(x >= (double)base && x < (double)(base + nseq) && x == floor(x))) {
      rc_error(c, "%s: index %g at position %lld is not a sequence of the set (%lld..%lld)", fn, x,
               (long long)(k + 1), (long long)base, (long long)(base + nseq - 1));
      goto done;
    }
    int64_t r = (int64_t)x - base;
    double s0 = *rc_ptr(starts, &r), l0 = *rc_ptr(lengths, &r);
    if (!(l0 >= 0 && l0 == floor(l0) && s0 == floor(s0) && s0 >= (double)base &&
          s0 - (double)base + l0 <= (double)ntok)) {
      rc_error(c,
               "%s: sequence %lld (start %g, length %g) does not lie inside the %lld tokens "
               "of the set",
               fn, (long long)(r + base), s0, l0, (long long)ntok);
      goto done;
    }
    st[k] = (int64_t)s0 - base;
    ln[k] = (int64_t)l0;
    if (ln[k] > T) T = ln[k];
  }
  int64_t size[2] = {batch_first ? b : T, batch_first ? T : b};
  out = rc_empty(c, 2, size);
  if (!out) goto done;
  float *o = rc_data(out);
  const float *src = rc_data(tk);
  int64_t padn = 0;
  for (int64_t k = 0; k < b; k++) {
    padn += T - ln[k];
    for (int64_t t = 0; t < T; t++) {
      float v = t < ln[k] ? src[st[k] + t] : pad;
      if (batch_first)
        o[k * T + t] = v;
      else
        o[t * b + k] = v;
    }
  }
  *padding = padn;
done:
  free(st);
  free(ln);
  free(idx);
  rc_release(tk);
  return out;
}
