/* safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON header, then the raw little-endian tensor data.
 *
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 *
 * Offsets are relative to the start of the data. recur writes float32 ("F32") tensors, the
 * metadata first and the tensors in the order given, and pads the header with spaces to a
 * multiple of 8 bytes (as the reference implementation does). Writes are atomic: a
 * temporary file "<path>.tmp-XXXXXX" in the same directory, flushed and fsync'ed, renamed over
 * the target, and the directory fsync'ed; a crash at any point leaves the old file whole. The
 * writer holds an flock on its temporary file until the rename, and every write and read of a
 * path removes that path's temporaries that no live process holds (those of killed writers).
 *
 * Checksums (safetensors itself has none): the writer adds to the metadata, after the caller's
 * pairs, "recur.crc32.<name>" for each tensor, the CRC-32 (zlib's, as Python's zlib.crc32) of
 * its data bytes, and last "recur.header_crc32", the CRC-32 of the whole header (the JSON
 * bytes after the length, padding included) read with its own 8 digits as "00000000"; each
 * value is 8 lowercase hexadecimal digits. The reader verifies them when the file has them
 * (files without them, older or from other writers, load as before): the header's first,
 * then each tensor's as its data is read (the data of skipped tensors too), and fails naming
 * the file and the tensor. It leaves them out of the metadata it returns; the caller cannot
 * write metadata under those keys.
 *
 * The JSON is read and written by jansson (strict: UTF-8, no \u0000, no lone surrogates, no
 * duplicate keys, integers apart from reals). The reader validates everything before it
 * returns anything and fails with a message that names the file and the problem: a file
 * shorter than its header says, a header length of 0, beyond the file or above 100 MB, JSON
 * that is not valid (jansson's message and the byte), duplicate keys, an entry that is not
 * {dtype, shape, data_offsets}, an unknown dtype, a shape whose byte size is not its offsets'
 * span, offsets out of range, overlapping or leaving holes (the data must be covered exactly,
 * as the reference reader requires), checksums that do not match. F32, F64,
 * F16, BF16, I64, I32, I16, I8, U8 and BOOL are read and converted to float32 (recur.load
 * refuses all but F32 in a recur checkpoint: lib/recur/checkpoint.lua). */
#ifndef RECUR_SAFETENSORS_H
#define RECUR_SAFETENSORS_H

#include "tensor.h"

#define RC_ST_MAX_HEADER 100000000

typedef struct {
  int n;
  char **names;        /* in the order of their data offsets */
  char **dtypes;       /* as written in the file */
  rc_tensor **tensors; /* float32 */
  int n_meta;
  char **meta_keys; /* in file order */
  char **meta_values;
} rc_st_file;

rc_st_file *rc_st_read(rc_ctx *c, const char *path);
/* The same, but the tensors whose names start with one of skip[0..n_skip) are validated and
 * listed and their data is not read: their tensors[i] are NULL. */
rc_st_file *rc_st_read_skip(rc_ctx *c, const char *path, const char *const *skip, int n_skip);
void rc_st_free(rc_st_file *f);

/* Writes tensors ts[0..n) under names[0..n) and the string metadata pairs. */
int rc_st_write(rc_ctx *c, const char *path, int n, const char *const *names, rc_tensor *const *ts,
                int n_meta, const char *const *keys, const char *const *values);

#endif
