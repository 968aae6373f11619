-- recur.nn's losses: loss(input, target, {reduction = "mean" | "sum" | "none", mask = tensor})
-- "none" gives the per-element (per-example) losses, the mask zeroes positions and "mean"
-- then divides by the mask's sum (how many positions count). Each is also in nn.functional.
local recur = require "recur"
local C = recur._nn
local U = require "recur.nn.util"
local fail, check_opts = U.fail, U.check_opts

local M = {}

local loss_opts = { reduction = true, mask = true }

local function reduce(el, o, who)
  local mask = o.mask
  if mask ~= nil then
    if not recur.is_tensor(mask) then fail(who .. ": mask must be a tensor, got " .. type(mask), 3) end
    el = el * mask
  end
  local r = o.reduction or "mean"
  if r == "none" then return el end
  if r == "sum" then return el:sum() end
  if r ~= "mean" then fail(who .. ': reduction must be "mean", "sum" or "none", got ' .. tostring(r), 3) end
  if mask ~= nil then
    -- each mask element stands for numel(el) / numel(mask) loss elements (broadcasting)
    local denom = mask:sum():item() * (el:numel() / math.max(1, mask:numel()))
    return el:sum() / denom
  end
  return el:mean()
end

local function check_pair(input, target, who)
  if not recur.is_tensor(input) then fail(who .. ": input must be a tensor, got " .. type(input), 3) end
  if not recur.is_tensor(target) then fail(who .. ": target must be a tensor, got " .. type(target), 3) end
end

-- The fused cross-entropy op as loss `who` (log_probs: the input holds log-probabilities).
local function fused_loss(who, log_probs)
  return function(input, target, o)
    o = check_opts(o, who, loss_opts)
    return C.cross_entropy(input, target, o.mask, o.reduction, log_probs)
  end
end

-- Loss `who` whose per-element losses are elements(input, target), then masked and reduced.
local function elementwise_loss(who, elements)
  return function(input, target, o)
    o = check_opts(o, who, loss_opts)
    check_pair(input, target, who)
    return reduce(elements(input, target), o, who)
  end
end

-- Cross-entropy from logits [..., C] (classes on the last dimension) against 1-based class
-- indices [...] or probabilities [..., C]; numerically stable (log-sum-exp), one fused op.
M.cross_entropy = fused_loss("cross_entropy", false)

-- Negative log-likelihood of log-probabilities [..., C] (e.g. log_softmax output).
M.nll = fused_loss("nll", true)

-- Cross-entropy of the logits x W^T + b (W [classes, in], Linear's layout; b may be nil)
-- against 1-based class indices [...], without making the logits [..., classes]: for a large
-- vocabulary (the word model's readout), nn.linear_cross_entropy(h, out.weight, out.bias, y)
-- equals nn.cross_entropy(out(h), y) within float rounding. reduction and mask as above.
function M.linear_cross_entropy(input, weight, bias, target, o)
  o = check_opts(o, "linear_cross_entropy", loss_opts)
  return C.linear_cross_entropy(input, weight, bias, target, o.mask, o.reduction)
end

M.mse = elementwise_loss("mse", function(input, target)
  local d = input - target
  return d * d
end)

M.l1 = elementwise_loss("l1", function(input, target) return (input - target):abs() end)

-- -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) = relu(x) - x y + log(1 + exp(-|x|))
M.binary_cross_entropy_with_logits = elementwise_loss("binary_cross_entropy_with_logits",
  function(input, target) return input:relu() - input * target + (-input:abs()):softplus() end)

M.functional = {}
for _, k in ipairs { "cross_entropy", "linear_cross_entropy", "nll", "mse", "l1", "binary_cross_entropy_with_logits" } do M.functional[k] = M[k] end

return M
