-- Helpers shared by the Lua twins of the fused cells (tests/oracles/cells/).
local recur = require("recur")

local common = {}

-- A leaf parameter: uniform in [-k, k] (k = 1/sqrt(hidden), PyTorch's default) or a constant.
function common.uniform(k, ...)
  return recur.uniform({ ... }, -k, k):requires_grad(true)
end

function common.const(v, ...)
  return recur.full({ ... }, v):requires_grad(true)
end

-- Gate block j (1-based) of H columns of z [B, G*H].
function common.block(z, j, H)
  return z:narrow(2, (j - 1) * H + 1, H)
end

-- Layer norm over the last dim of z [B, H]: (z - mean) / sqrt(var + eps) * scale + shift.
function common.layer_norm(z, scale, shift, eps)
  local d = z - z:mean(2, true)
  local var = (d * d):mean(2, true)
  return d / (var + (eps or 1e-5)):sqrt() * scale + shift
end

-- Weights W_x [I, G*H], W_h [H, G*H] (and b [G*H] = 0 unless no_bias), uniform init.
function common.linear_params(input, hidden, gates, no_bias)
  local k = 1 / math.sqrt(hidden)
  local p = {
    W_x = common.uniform(k, input, gates * hidden),
    W_h = common.uniform(k, hidden, gates * hidden),
  }
  if not no_bias then p.b = common.const(0, gates * hidden) end
  return p
end

-- Sets block j of a bias to v (under no_grad: the bias is a leaf that requires grad).
function common.set_block(b, j, H, v)
  recur.no_grad(function() b:narrow(1, (j - 1) * H + 1, H):fill_(v) end)
end

return common
