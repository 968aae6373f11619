-- RNN II's custom cell, written entirely in Lua from tensor ops: a GRU whose candidate mixes
-- K input matrices with weights chosen per example by a softmax over [x, h].
--   r, u = s([x, h] W_g + b_g)              (gate bias starts at 1.0)
--   lambda = softmax([x, h] W_l + b_l)      (K mixing weights per example)
--   c = tanh(sum_k lambda_k (x W_k) + (r h) U_c + b_c)
--   h' = u h + (1 - u) c
-- Options: K (number of candidate input matrices, default 5, the post's num_weights).
-- Parameters: W_gx [I, 2H], W_gh [H, 2H], b_g [2H]; W_mix [I, K*H] (W_1 ... W_K side by
-- side); W_lx [I, K], W_lh [H, K], b_l [K]; U_c [H, H], b_c [H].
-- With K = 1 it is the TF-form GRU (fused "gru" with W_x = [W_gx, W_mix], W_h = [W_gh, U_c],
-- b = [b_g, b_c]).
--
-- An example of a new cell without recompiling (docs/custom-cells.md): one self-contained
-- file, used as require "examples.cells.mixture_gru" from the project root.
local recur = require("recur")

-- a leaf parameter: uniform in [-k, k] (k = 1/sqrt(hidden), PyTorch's default) or a constant
local function uniform(k, ...) return recur.uniform({ ... }, -k, k):requires_grad(true) end
local function const(v, ...) return recur.full({ ... }, v):requires_grad(true) end

local cell = {
  name = "mixture_gru",
  state_names = { "h" },
  param_names = { "W_gx", "W_gh", "b_g", "W_mix", "W_lx", "W_lh", "b_l", "U_c", "b_c" },
}

function cell.new_params(input, hidden, opts)
  local K = opts and opts.K or 5
  assert(math.type(K) == "integer" and K >= 1, "mixture_gru: K must be an integer >= 1")
  local k = 1 / math.sqrt(hidden)
  return {
    W_gx = uniform(k, input, 2 * hidden),
    W_gh = uniform(k, hidden, 2 * hidden),
    b_g = const(1.0, 2 * hidden),
    W_mix = uniform(k, input, K * hidden),
    W_lx = uniform(k, input, K),
    W_lh = uniform(k, hidden, K),
    b_l = const(0, K),
    U_c = uniform(k, hidden, hidden),
    b_c = const(0, hidden),
  }
end

function cell.step(p, x, state)
  local h = state[1]
  local B, H, K = h:size(1), h:size(2), p.b_l:size(1)
  local g = (recur.matmul(x, p.W_gx) + recur.matmul(h, p.W_gh) + p.b_g):sigmoid()
  local r, u = g:narrow(2, 1, H), g:narrow(2, H + 1, H)
  local lambda = (recur.matmul(x, p.W_lx) + recur.matmul(h, p.W_lh) + p.b_l):softmax(2)
  local xw = recur.matmul(x, p.W_mix):view(B, K, H)
  local mixed = (xw * lambda:unsqueeze(3)):sum(2)
  local c = (mixed + recur.matmul(r * h, p.U_c) + p.b_c):tanh()
  local h2 = u * h + (1 - u) * c
  return h2, { h2 }
end

return cell
