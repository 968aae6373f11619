/* Generation with a stack of fused cells at batch 1, without tensors or autograd: the loop of
 * a character model (embedding row -> cells -> linear readout -> sample) run entirely in C,
 * for scripts/sample.lua and for hosts. */
#ifndef RECUR_RNN_GENERATE_H
#define RECUR_RNN_GENERATE_H

#include "rnn.h"

/* Runs cells[0..n-1] (each one's input = the previous one's hidden; cells[0]'s input = E)
 * from `state` (for each cell, each of its states: hidden floats, concatenated; updated in
 * place). The prime ids (0-based, n_prime >= 1) are read first; then `length` ids are
 * generated: logits = W_out [V, H] y + b_out [V] (b_out may be NULL), one draw from
 * softmax(logits / temperature) over the top_k largest (see rc_sample_logits), fed back.
 * Ids go to out[0..length-1] (0-based). Validates every shape and id first. */
int rc_rnn_generate(rc_cell *const *cells, int n, rc_tensor *embed, rc_tensor *W_out,
                    rc_tensor *b_out, float *state, const int64_t *prime, int64_t n_prime,
                    int64_t length, double temperature, int64_t top_k, int64_t *out);

/* Floats of the state buffer rc_rnn_generate takes for these cells. */
int64_t rc_rnn_state_floats(rc_cell *const *cells, int n);

#endif
