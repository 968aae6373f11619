-- Twin of the fused "gru" cell, from tensor ops. Gate blocks r, z, n.
--   TF / R2RT form:    n = tanh(x W_xn + (r h) W_hn + b_n)
--   reset_after form:  n = tanh(x W_xn + b_n + r (h W_hn + b_hn))   (opts.reset_after)
--   h' = z h + (1 - z) n
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "gru", state_names = { "h" }, param_names = { "W_x", "W_h", "b" } }

-- The reset_after form has one more parameter; LuaCell reads param_names from the def, so
-- it is a separate definition sharing the step.
local after = { name = "gru", state_names = { "h" },
  param_names = { "W_x", "W_h", "b", "b_hn" } }

function cell.new_params(input, hidden)
  local p = common.linear_params(input, hidden, 3)
  common.set_block(p.b, 1, hidden, 1.0)
  common.set_block(p.b, 2, hidden, 1.0)
  return p
end

function after.new_params(input, hidden)
  local p = cell.new_params(input, hidden)
  p.b_hn = common.const(0, hidden)
  return p
end

function cell.step(p, x, state)
  local h = state[1]
  local H = h:size(2)
  local B = common.block
  local xz = recur.matmul(x, p.W_x) + p.b
  local hz = recur.matmul(h, p.W_h:narrow(2, 1, 2 * H))
  local r = (B(xz, 1, H) + B(hz, 1, H)):sigmoid()
  local z = (B(xz, 2, H) + B(hz, 2, H)):sigmoid()
  local n = (B(xz, 3, H) + recur.matmul(r * h, p.W_h:narrow(2, 2 * H + 1, H))):tanh()
  local h2 = z * h + (1 - z) * n
  return h2, { h2 }
end

function after.step(p, x, state)
  local h = state[1]
  local H = h:size(2)
  local B = common.block
  local xz = recur.matmul(x, p.W_x) + p.b
  local hz = recur.matmul(h, p.W_h)
  local r = (B(xz, 1, H) + B(hz, 1, H)):sigmoid()
  local z = (B(xz, 2, H) + B(hz, 2, H)):sigmoid()
  local n = (B(xz, 3, H) + r * (B(hz, 3, H) + p.b_hn)):tanh()
  local h2 = z * h + (1 - z) * n
  return h2, { h2 }
end

cell.reset_after = after
return cell
