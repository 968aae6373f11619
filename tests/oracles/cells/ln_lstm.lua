-- Twin of the fused "ln_lstm" cell (R2RT, RNN II): no bias on the joint projection; layer norm
-- (eps 1e-5, own scale and shift) on each gate and on c' before its tanh. Gate blocks
-- i, f, g, o (g is the post's j); ln_scale, ln_shift [5, H] rows i, f, g, o, c.
--   c' = c s(LN_f + 1) + s(LN_i) tanh(LN_g),  h' = tanh(LN_c(c')) s(LN_o)
local recur = require("recur")
local common = require("tests.oracles.cells.common")

local cell = { name = "ln_lstm", state_names = { "h", "c" },
  param_names = { "W_x", "W_h", "ln_scale", "ln_shift" } }

function cell.new_params(input, hidden)
  local p = common.linear_params(input, hidden, 4, true)
  p.ln_scale = common.const(1, 5, hidden)
  p.ln_shift = common.const(0, 5, hidden)
  return p
end

function cell.step(p, x, state)
  local h, c = state[1], state[2]
  local H = h:size(2)
  local z = recur.matmul(x, p.W_x) + recur.matmul(h, p.W_h)
  local function ln(k, v)
    return common.layer_norm(v, p.ln_scale:select(1, k), p.ln_shift:select(1, k), 1e-5)
  end
  local B = common.block
  local i = ln(1, B(z, 1, H)):sigmoid()
  local f = (ln(2, B(z, 2, H)) + 1):sigmoid()
  local g = ln(3, B(z, 3, H)):tanh()
  local o = ln(4, B(z, 4, H)):sigmoid()
  local c2 = c * f + i * g
  local h2 = ln(5, c2):tanh() * o
  return h2, { h2, c2 }
end

return cell
