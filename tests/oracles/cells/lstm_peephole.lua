-- Twin of the fused "lstm_peephole" cell: diagonal peepholes (Gers and Schmidhuber 2000).
--   i = s(. + p_i c), f = s(. + p_f c), g = tanh(.), c' = f c + i g,
--   o = s(. + p_o c'), h' = o tanh(c')
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "lstm_peephole", state_names = { "h", "c" },
  param_names = { "W_x", "W_h", "b", "p_i", "p_f", "p_o" } }

function cell.new_params(input, hidden)
  local p = common.linear_params(input, hidden, 4)
  common.set_block(p.b, 2, hidden, 1.0)
  local k = 1 / math.sqrt(hidden)
  p.p_i, p.p_f, p.p_o = common.uniform(k, hidden), common.uniform(k, hidden),
      common.uniform(k, hidden)
  return p
end

function cell.step(p, x, state)
  local h, c = state[1], state[2]
  local H = h:size(2)
  local B = common.block
  local z = recur.matmul(x, p.W_x) + recur.matmul(h, p.W_h) + p.b
  local i = (B(z, 1, H) + p.p_i * c):sigmoid()
  local f = (B(z, 2, H) + p.p_f * c):sigmoid()
  local g = B(z, 3, H):tanh()
  local c2 = f * c + i * g
  local o = (B(z, 4, H) + p.p_o * c2):sigmoid()
  local h2 = o * c2:tanh()
  return h2, { h2, c2 }
end

return cell
