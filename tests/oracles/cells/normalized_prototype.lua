-- Twin of the fused "normalized_prototype" cell (R2RT, Written Memories): the prototype LSTM
-- with its state renormalised every step, per example across units. Gate blocks i, f, o, g.
--   i, f, o = s(x W_x + s W_h + b)
--   g = tanh(x W_xg + (o s) W_hg + b_g),  u = f s + i g
--   s' = u / sqrt(var(u) + 1)   (population variance over the units; output s')
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "normalized_prototype", state_names = { "s" },
  param_names = { "W_x", "W_h", "b" } }

function cell.new_params(input, hidden)
  local p = common.linear_params(input, hidden, 4)
  common.set_block(p.b, 2, hidden, 1.0)
  return p
end

function cell.step(p, x, state)
  local s = state[1]
  local H = s:size(2)
  local B = common.block
  local xz = recur.matmul(x, p.W_x) + p.b
  local gates = (xz:narrow(2, 1, 3 * H) + recur.matmul(s, p.W_h:narrow(2, 1, 3 * H))):sigmoid()
  local i, f, o = B(gates, 1, H), B(gates, 2, H), B(gates, 3, H)
  local g = (B(xz, 4, H) + recur.matmul(o * s, p.W_h:narrow(2, 3 * H + 1, H))):tanh()
  local u = f * s + i * g
  local d = u - u:mean(2, true)
  local var = (d * d):mean(2, true)
  local s2 = u / (var + 1):sqrt()
  return s2, { s2 }
end

return cell
