-- Twin of the fused "rnn" cell, from tensor ops: h' = tanh(x W_x + h W_h + b).
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "rnn", state_names = { "h" }, param_names = { "W_x", "W_h", "b" } }

function cell.new_params(input, hidden)
  return common.linear_params(input, hidden, 1)
end

function cell.step(p, x, state)
  local h = (recur.matmul(x, p.W_x) + recur.matmul(state[1], p.W_h) + p.b):tanh()
  return h, { h }
end

return cell
