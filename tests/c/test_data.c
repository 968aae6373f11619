/* The data runtime at the C level: IDX parsing from memory (values, every error path, no leak
 * on failure: the context's live bytes return to zero), UTF-8 decoding and encoding over every
 * code point, text encode/decode and padded batches. */
#include <string.h>

#include "../../runtime/data.h"
#include "test.h"

static size_t put_hdr(unsigned char *b, int type, int ndim, const uint32_t *dims) {
  b[0] = 0, b[1] = 0, b[2] = (unsigned char)type, b[3] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++) {
    b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
    b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
    b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
    b[7 + 4 * i] = (unsigned char)dims[i];
  }
  return 4 + 4 * (size_t)ndim;
}

static int has(const rc_ctx *c, const char *s) {
  return strstr(c->err, s) != NULL;
}

static void test_idx(void) {
  rc_ctx *c = rc_ctx_new();
  unsigned char b[64];
  uint32_t dims[3] = {2, 1, 2};
  size_t h = put_hdr(b, 0x08, 3, dims);
  b[h] = 0, b[h + 1] = 255, b[h + 2] = 51, b[h + 3] = 3;
  rc_tensor *t = rc_parse_idx(c, "idx", "m", b, h + 4, RC_IDX_SCALE_AUTO);
  CHECK(t && t->ndim == 3 && t->size[0] == 2 && t->size[1] == 1 && t->size[2] == 2);
  if (t) {
    CHECK(rc_data(t)[0] == 0.0f && rc_data(t)[1] == 1.0f && rc_data(t)[2] == 51.0f / 255.0f);
    rc_release(t);
  }
  t = rc_parse_idx(c, "idx", "m", b, h + 4, RC_IDX_SCALE_NONE);
  CHECK(t && rc_data(t)[3] == 3.0f);
  rc_release(t);
  /* int16 big-endian -2 and 258 */
  uint32_t d1[1] = {2};
  h = put_hdr(b, 0x0B, 1, d1);
  b[h] = 0xFF, b[h + 1] = 0xFE, b[h + 2] = 0x01, b[h + 3] = 0x02;
  t = rc_parse_idx(c, "idx", "m", b, h + 4, RC_IDX_SCALE_AUTO);
  CHECK(t && rc_data(t)[0] == -2.0f && rc_data(t)[1] == 258.0f);
  rc_release(t);
  /* errors, each leaving no tensor memory behind */
  CHECK(!rc_parse_idx(c, "idx", "m", b, 0, RC_IDX_SCALE_AUTO) && has(c, "is empty"));
  CHECK(!rc_parse_idx(c, "idx", "m", b, h + 3, RC_IDX_SCALE_AUTO) && has(c, "truncated"));
  CHECK(!rc_parse_idx(c, "idx", "m", b, h + 5, RC_IDX_SCALE_AUTO) && has(c, "1 bytes past"));
  b[2] = 0x0A;
  CHECK(!rc_parse_idx(c, "idx", "m", b, h + 4, RC_IDX_SCALE_AUTO) &&
        has(c, "unknown IDX data type"));
  b[0] = 1;
  CHECK(!rc_parse_idx(c, "idx", "m", b, h + 4, RC_IDX_SCALE_AUTO) && has(c, "not an IDX file"));
  uint32_t big[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  h = put_hdr(b, 0x0E, 3, big);
  CHECK(!rc_parse_idx(c, "idx", "m", b, h, RC_IDX_SCALE_AUTO) && has(c, "too large"));
  CHECK(!rc_load_idx(c, "idx", "/nonexistent/file", RC_IDX_SCALE_AUTO) && has(c, "cannot open"));
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
}

static void test_utf8(void) {
  unsigned char buf[4];
  int bad = 0;
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    int n = rc_utf8_encode(cp, buf);
    uint32_t back = 0;
    const char *why = NULL;
    if (rc_utf8_decode(buf, (size_t)n, 0, &back, &why) != n || back != cp) bad++;
  }
  CHECK(bad == 0);
  const char *why = NULL;
  uint32_t cp;
  const unsigned char sur[] = {0xED, 0xA0, 0x80}, over[] = {0xE0, 0x80, 0xAF};
  CHECK(rc_utf8_decode(sur, 3, 0, &cp, &why) == 0 && strstr(why, "surrogate"));
  CHECK(rc_utf8_decode(over, 3, 0, &cp, &why) == 0 && strstr(why, "overlong"));
  CHECK(rc_utf8_decode(over, 2, 0, &cp, &why) == 0 && strstr(why, "cut short"));
}

static void test_text(void) {
  rc_ctx *c = rc_ctx_new();
  const char *s = "b\xc3\xa9"
                  "ab";
  rc_tensor *codes = rc_text_symbols(c, "sym", (const unsigned char *)s, strlen(s), RC_TEXT_UTF8);
  CHECK(codes && codes->size[0] == 3);
  if (codes) {
    CHECK(rc_data(codes)[0] == 'a' && rc_data(codes)[1] == 'b' && rc_data(codes)[2] == 0xE9);
    rc_tensor *ids = rc_text_encode(c, "enc", (const unsigned char *)s, strlen(s), RC_TEXT_UTF8,
                                    codes, RC_UNKNOWN_ERROR, 0, 1);
    CHECK(ids && ids->size[0] == 4);
    if (ids) {
      CHECK(rc_data(ids)[0] == 2 && rc_data(ids)[1] == 3 && rc_data(ids)[2] == 1);
      size_t len = 0;
      CHECK(rc_text_decode_len(c, "dec", ids, RC_TEXT_UTF8, codes, 1, &len) == 0 && len == 5);
      char out[8] = {0};
      CHECK(rc_text_decode_into(c, "dec", ids, RC_TEXT_UTF8, codes, 1, out) == 0);
      CHECK(memcmp(out, s, 5) == 0);
      rc_release(ids);
    }
    CHECK(!rc_text_encode(c, "enc", (const unsigned char *)"abz", 3, RC_TEXT_UTF8, codes,
                          RC_UNKNOWN_ERROR, 0, 1) &&
          has(c, "'z'") && has(c, "byte offset 2"));
    rc_tensor *sk = rc_text_encode(c, "enc", (const unsigned char *)"zaz", 3, RC_TEXT_UTF8, codes,
                                   RC_UNKNOWN_SKIP, 0, 1);
    CHECK(sk && sk->size[0] == 1 && rc_data(sk)[0] == 1);
    rc_release(sk);
    rc_release(codes);
  }
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
}

static void test_pad(void) {
  rc_ctx *c = rc_ctx_new();
  const float tok[] = {5, 6, 7, 8, 9, 10}, st[] = {1, 2, 5}, ln[] = {1, 3, 2}, ix[] = {3, 2};
  int64_t n6 = 6, n3 = 3, n2 = 2;
  rc_tensor *tokens = rc_from_data(c, 1, &n6, tok), *starts = rc_from_data(c, 1, &n3, st),
            *lengths = rc_from_data(c, 1, &n3, ln), *index = rc_from_data(c, 1, &n2, ix);
  int64_t padding = -1;
  rc_tensor *x = rc_pad_batch(c, "pad", tokens, starts, lengths, index, -1.0f, 0, 1, &padding);
  CHECK(x && x->size[0] == 3 && x->size[1] == 2 && padding == 1);
  if (x) {
    const float want[] = {9, 6, 10, 7, -1, 8};
    CHECK(memcmp(rc_data(x), want, sizeof want) == 0);
    rc_release(x);
  }
  rc_release(tokens);
  rc_release(starts);
  rc_release(lengths);
  rc_release(index);
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
}

int main(void) {
  test_idx();
  test_utf8();
  test_text();
  test_pad();
  return TEST_SUMMARY();
}
