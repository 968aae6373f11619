/* Sampling the next token from logits: temperature, top-k, one draw from the context's
 * generator. Used by the character model's generation (scripts/sample.lua). */
#ifndef RECUR_SAMPLE_H
#define RECUR_SAMPLE_H

#include "tensor.h"

/* For each row of logits ([V], or [N, V]; any strides) draws an index from
 * softmax(row / temperature) restricted to the top_k largest entries (top_k <= 0 or >= V: all
 * of them; entries equal to the k-th largest are all kept). temperature <= 0 takes the
 * argmax (the first maximum) and draws nothing. out receives N 0-based indices. Exactly one
 * uniform number per row is drawn from the generator otherwise. The probabilities are floats
 * (recur's exp, within 1 ulp), their sums doubles; a -inf logit is never drawn. Errors (-1): a
 * dimension other than 1 or 2, V = 0, NaN logits or an infinite maximum. */
int rc_sample_logits(rc_tensor *logits, double temperature, int64_t top_k, int64_t *out);

/* The same for one row of V contiguous floats, drawing from c's generator; *out 0-based. */
int rc_sample_row(rc_ctx *c, const float *z, int64_t V, double temperature, int64_t top_k,
                  int64_t *out);

#endif
