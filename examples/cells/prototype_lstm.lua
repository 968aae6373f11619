-- Written Memories' prototype LSTM, written in Lua from tensor ops: the fused
-- "normalized_prototype" cell without its renormalisation, so its state is not bounded.
--   i, f, o = s(x W_x + s W_h + b)                  (gate blocks i, f, o, g, as the fused cell)
--   g = tanh(x W_xg + (o s) W_hg + b_g)
--   s' = f s + i g                                  (output s')
-- Same parameters (W_x [I, 4H], W_h [H, 4H], b [4H], forget bias 1.0) and layout as the
-- fused cell, so one set of weights drives both (scripts/posts/written_memories.lua).
local recur = require("recur")

local cell = { name = "prototype_lstm", state_names = { "s" }, param_names = { "W_x", "W_h", "b" } }

function cell.new_params(input, hidden)
  local k = 1 / math.sqrt(hidden)
  local b = recur.zeros(4 * hidden)
  b:narrow(1, hidden + 1, hidden):fill_(1.0)
  return {
    W_x = recur.uniform({ input, 4 * hidden }, -k, k):requires_grad(true),
    W_h = recur.uniform({ hidden, 4 * hidden }, -k, k):requires_grad(true),
    b = b:requires_grad(true),
  }
end

function cell.step(p, x, state)
  local s = state[1]
  local H = s:size(2)
  local xz = recur.matmul(x, p.W_x) + p.b
  local gates = (xz:narrow(2, 1, 3 * H) + recur.matmul(s, p.W_h:narrow(2, 1, 3 * H))):sigmoid()
  local i, f, o = gates:narrow(2, 1, H), gates:narrow(2, H + 1, H), gates:narrow(2, 2 * H + 1, H)
  local g = (xz:narrow(2, 3 * H + 1, H) + recur.matmul(o * s, p.W_h:narrow(2, 3 * H + 1, H))):tanh()
  local s2 = f * s + i * g
  return s2, { s2 }
end

return cell
