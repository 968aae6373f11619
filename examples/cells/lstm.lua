-- The LSTM written in Lua from tensor ops: the fused "lstm" cell's equations and parameter
-- names (W_x [I, 4H], W_h [H, 4H], b [4H]; blocks i, f, g, o), so that weights load across,
-- stepped one step at a time by rnn.unroll:
--   z = x W_x + h W_h + b,  c' = s(f) c + s(i) tanh(g),  h' = s(o) tanh(c')
-- RNN II's static unroll (scripts/posts/rnn2.lua) and bench/lua_cell.lua run it. Parameters
-- start at zero: load the fused cell's (or pass params = ... to rnn.LuaCell).
--   local cell = rnn.LuaCell(require "examples.cells.lstm", { input = I, hidden = H })
local recur = require("recur")

local cell = {
  name = "lua_lstm", state_names = { "h", "c" }, param_names = { "W_x", "W_h", "b" },
}

function cell.new_params(input, hidden)
  return { W_x = recur.zeros(input, 4 * hidden):requires_grad(true),
    W_h = recur.zeros(hidden, 4 * hidden):requires_grad(true),
    b = recur.zeros(4 * hidden):requires_grad(true) }
end

function cell.step(p, x, state)
  local h, c = state[1], state[2]
  local H = h:size(2)
  local z = recur.matmul(x, p.W_x) + recur.matmul(h, p.W_h) + p.b
  local i, f = z:narrow(2, 1, H):sigmoid(), z:narrow(2, H + 1, H):sigmoid()
  local g, o = z:narrow(2, 2 * H + 1, H):tanh(), z:narrow(2, 3 * H + 1, H):sigmoid()
  local c2 = f * c + i * g
  local h2 = o * c2:tanh()
  return h2, { h2, c2 }
end

return cell
