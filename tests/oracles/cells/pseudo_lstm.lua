-- Twin of the fused "pseudo_lstm" cell (R2RT, Written Memories): the state is squashed
-- whenever it is read. Gate blocks i, f, o, g.
--   i, f, o = s(x W_x + tanh(s) W_h + b)
--   g = tanh(x W_xg + (o tanh(s)) W_hg + b_g),  s' = f s + i g,  output tanh(s')
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "pseudo_lstm", state_names = { "s" }, param_names = { "W_x", "W_h", "b" } }

function cell.new_params(input, hidden)
  local p = common.linear_params(input, hidden, 4)
  common.set_block(p.b, 2, hidden, 1.0)
  return p
end

function cell.step(p, x, state)
  local s = state[1]
  local H = s:size(2)
  local B = common.block
  local ts = s:tanh()
  local xz = recur.matmul(x, p.W_x) + p.b
  local gates = (xz:narrow(2, 1, 3 * H) + recur.matmul(ts, p.W_h:narrow(2, 1, 3 * H))):sigmoid()
  local i, f, o = B(gates, 1, H), B(gates, 2, H), B(gates, 3, H)
  local g = (B(xz, 4, H) + recur.matmul(o * ts, p.W_h:narrow(2, 3 * H + 1, H))):tanh()
  local s2 = f * s + i * g
  return s2:tanh(), { s2 }
end

return cell
