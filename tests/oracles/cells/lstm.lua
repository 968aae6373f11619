-- Twin of the fused "lstm" cell, from tensor ops. Gate blocks i, f, g, o.
--   c' = s(f) c + s(i) tanh(g),  h' = s(o) tanh(c')
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "lstm", state_names = { "h", "c" }, param_names = { "W_x", "W_h", "b" } }

function cell.new_params(input, hidden)
  local p = common.linear_params(input, hidden, 4)
  common.set_block(p.b, 2, hidden, 1.0) -- forget-gate bias
  return p
end

function cell.step(p, x, state)
  local h, c = state[1], state[2]
  local H = h:size(2)
  local B = common.block
  local z = recur.matmul(x, p.W_x) + recur.matmul(h, p.W_h) + p.b
  local i, f = B(z, 1, H):sigmoid(), B(z, 2, H):sigmoid()
  local g, o = B(z, 3, H):tanh(), B(z, 4, H):sigmoid()
  local c2 = f * c + i * g
  local h2 = o * c2:tanh()
  return h2, { h2, c2 }
end

return cell
