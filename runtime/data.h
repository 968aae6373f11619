/* Data loading: IDX files (plain or gzip), text vocabularies (bytes or UTF-8 code points)
 * and padded batches of variable-length sequences. Pure C: the Lua half lives in
 * lib/recur/data.lua. Every function returns NULL (or -1) with a message in ctx->err
 * that starts with `fn` (the caller's name for the operation) and never leaks on failure. */
#ifndef RECUR_DATA_H
#define RECUR_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

/* ---- IDX (data_idx.c) ----
 * Format: 2 zero bytes, a type byte (0x08 ubyte, 0x09 int8, 0x0B int16, 0x0C int32,
 * 0x0D float32, 0x0E float64), the number of dimensions, one big-endian uint32 per
 * dimension, then the data, big-endian, row-major. The file's length must be exactly what
 * the header describes. A gzip file (magic 1f 8b) is decompressed on the fly through zlib.
 * scale: RC_IDX_SCALE_AUTO divides ubyte data with two or more dimensions (images) by 255 and
 * keeps everything else raw (labels); RC_IDX_SCALE_NONE keeps raw values; RC_IDX_SCALE_255
 * divides by 255 whatever the type. */
enum { RC_IDX_SCALE_AUTO = -1, RC_IDX_SCALE_NONE = 0, RC_IDX_SCALE_255 = 1 };
rc_tensor *rc_load_idx(rc_ctx *c, const char *fn, const char *path, int scale);
/* The same from bytes in memory (name is used in messages). */
rc_tensor *rc_parse_idx(rc_ctx *c, const char *fn, const char *name, const unsigned char *buf,
                        size_t n, int scale);

/* ---- text (data_text.c) ---- */
enum { RC_TEXT_BYTE = 0, RC_TEXT_UTF8 = 1 };
enum { RC_UNKNOWN_ERROR = 0, RC_UNKNOWN_SKIP = 1, RC_UNKNOWN_REPLACE = 2 };

/* Decodes the code point at s[i] (strict UTF-8: no overlong forms, no surrogates, nothing
 * past U+10FFFF). Returns its length in bytes (1..4), or 0 with *why set when invalid. */
int rc_utf8_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp, const char **why);
/* Writes the UTF-8 form of cp into out (4 bytes room); returns its length. */
int rc_utf8_encode(uint32_t cp, unsigned char *out);

/* The distinct symbols of s (bytes, or code points in UTF-8 mode) sorted ascending, as a 1-D
 * tensor of integer values. Invalid UTF-8 is an error naming the byte offset. */
rc_tensor *rc_text_symbols(rc_ctx *c, const char *fn, const unsigned char *s, size_t n, int mode);
/* Encodes s with the vocabulary `codes` (1-D, strictly increasing symbol values): id of a
 * symbol = its position in codes + base. Unknown symbols: an error naming the symbol and its
 * byte offset, skipped, or replaced by id replace_id (already base-based). */
rc_tensor *rc_text_encode(rc_ctx *c, const char *fn, const unsigned char *s, size_t n, int mode,
                          rc_tensor *codes, int unknown, int64_t replace_id, int64_t base);
/* Decoding in two steps so the caller can own the output buffer: the length in bytes (every
 * id validated), then the bytes. */
int rc_text_decode_len(rc_ctx *c, const char *fn, rc_tensor *ids, int mode, rc_tensor *codes,
                       int64_t base, size_t *len);
int rc_text_decode_into(rc_ctx *c, const char *fn, rc_tensor *ids, int mode, rc_tensor *codes,
                        int64_t base, char *out);

/* ---- ragged sets (data_text.c) ----
 * A set of variable-length sequences stored flat: sequence k is tokens[starts[k] ..
 * starts[k] + lengths[k] - 1] (starts base-based). Returns the rows `index` (base-based) as a
 * [T, B] tensor (or [B, T] with batch_first) where T is the longest selected length, padded
 * with `pad`; *padding receives the number of padding positions. */
rc_tensor *rc_pad_batch(rc_ctx *c, const char *fn, rc_tensor *tokens, rc_tensor *starts,
                        rc_tensor *lengths, rc_tensor *index, float pad, int batch_first,
                        int64_t base, int64_t *padding);

#endif
