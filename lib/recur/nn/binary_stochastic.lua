-- recur.nn.BinaryStochastic: binary stochastic neurons and their gradient estimators (R2RT,
-- "Binary Stochastic Neurons in Tensorflow"; docs/nn.md, "Binary stochastic neurons").
--
-- Forward, on pre-activations a [..., H]: p = sigm(m a) with the slope m, then
--   stochastic     b = 1[z < p], z ~ U[0, 1) (one draw per element from the runtime generator)
--   deterministic  b = round(p) = 1[p > 1/2]
-- Backward (g = dL/db arriving from above):
--   "pass_through"      dL/da = g                      (the whole a -> sigm -> sample chain as identity)
--   "sigmoid_adjusted"  dL/da = g m sigm'(m a)         (identity through the sampling step only)
--   "reinforce"         dL/da = m (b - p) (L - Lbar)   (g is ignored; L is the per-example loss)
-- with Lbar, per neuron, either 0 (variance_adjusted = false) or the variance-adjusted baseline
--   num <- decay num + (1 - decay) mean_batch((b - p)^2 L)     (num starts at 0)
--   den <- decay den + (1 - decay) mean_batch((b - p)^2)       (den starts at 1)
--   Lbar = num / (den + eps)                                    (decay 0.95, eps 1e-4)
-- updated once per backward, before Lbar is read (as the post's code). A deterministic forward
-- under "reinforce" differentiates as "pass_through" (REINFORCE needs a sample).
--
-- REINFORCE needs the per-example loss, which exists only after the forward: the model hands
-- it over between the loss and backward with nn.reinforce(model, losses) (every REINFORCE
-- BinaryStochastic in the model) or bsn:reinforce(losses). losses has the shape of the
-- neurons' output without its last dimension ([B] for [B, H]), or a suffix of it ([B] for a
-- [T, B, H] output: one loss per sequence), and is used as values (detached).
local recur = require "recur"
local U = require "recur.nn.util"
local NM = require "recur.nn.module"
local fail, check_opts, shape_str = U.fail, U.check_opts, U.shape_str
local Module, is_module = NM.Module, NM.is_module

local M = {}

local ESTIMATORS = { pass_through = true, sigmoid_adjusted = true, reinforce = true }
local MODES = { stochastic = true, deterministic = true }

local function sample(p, stochastic)
  if stochastic then return p:bernoulli() end
  return p:gt(0.5)
end

-- One recorded forward: ctx holds what backward needs, never the output itself.
local BinaryStochasticFn = recur.Function {
  forward = function(ctx, a, self, stochastic)
    local m = self.slope:item()
    local p = (a * m):sigmoid()
    local b = sample(p, stochastic)
    if ctx.needs_input_grad[1] then
      local est = self.estimator
      if est == "reinforce" and not stochastic then est = "pass_through" end
      ctx.estimator, ctx.m, ctx.module = est, m, self
      if est == "sigmoid_adjusted" then
        ctx.dsig = p * (1 - p) * m -- m sigm'(m a)
      elseif est == "reinforce" then
        ctx.diff = b - p
        ctx.lead = a:size()
        ctx.lead[#ctx.lead] = nil
        self._pending[ctx] = true
      end
    end
    return b
  end,
  backward = function(ctx, g)
    local est = ctx.estimator
    if est == "pass_through" then return g end
    if est == "sigmoid_adjusted" then return g * ctx.dsig end
    local L = ctx.loss
    if not L then
      fail("BinaryStochastic: a REINFORCE backward without the per-example loss: call "
        .. "nn.reinforce(model, losses) (or bsn:reinforce(losses)), losses of shape "
        .. shape_str(ctx.lead) .. ", between the forward and backward", 1)
    end
    local self, diff = ctx.module, ctx.diff
    L = L:unsqueeze(-1) -- [..., 1]: one loss per example, broadcast over the neurons
    local adv
    if self.variance_adjusted then
      local sq = diff * diff
      local flat = sq:numel() // sq:size(sq:dim())
      local H = sq:size(sq:dim())
      -- means over every leading position (the batch, and time in a sequence)
      local den_b = sq:reshape(flat, H):mean(1)
      local num_b = (sq * L):reshape(flat, H):mean(1)
      local d = self.baseline_decay
      self.baseline_num:mul_(d):add_(num_b, 1 - d)
      self.baseline_den:mul_(d):add_(den_b, 1 - d)
      local lbar = self.baseline_num / (self.baseline_den + self.baseline_eps)
      adv = L - lbar
    else
      adv = L
    end
    local r = diff * adv
    if ctx.m ~= 1 then r = r * ctx.m end
    return r
  end,
}

-- BinaryStochastic{estimator = "sigmoid_adjusted", slope = 1, train = "stochastic",
--   eval = "deterministic", variance_adjusted = true, size = H, baseline_decay = 0.95,
--   baseline_eps = 1e-4}
local BinaryStochastic = Module:extend("BinaryStochastic")
M.BinaryStochastic = BinaryStochastic
function BinaryStochastic:init(o)
  o = check_opts(o, "BinaryStochastic", {
    estimator = true, slope = true, train = true, eval = true, variance_adjusted = true, size = true,
    baseline_decay = true, baseline_eps = true,
  })
  local est = o.estimator or "sigmoid_adjusted"
  if not ESTIMATORS[est] then
    fail('BinaryStochastic: estimator must be "pass_through", "sigmoid_adjusted" or "reinforce", got '
      .. tostring(est), 3)
  end
  self.estimator = est
  for _, k in ipairs { "train", "eval" } do
    local v = o[k] or (k == "train" and "stochastic" or "deterministic")
    if not MODES[v] then
      fail("BinaryStochastic: " .. k .. ' must be "stochastic" or "deterministic", got ' .. tostring(v), 3)
    end
    self[k .. "_mode"] = v
  end
  local slope = o.slope or 1
  if type(slope) ~= "number" or not (slope > 0) or slope == math.huge then
    fail("BinaryStochastic: slope must be a finite number > 0, got " .. tostring(slope), 3)
  end
  -- a buffer, so that a checkpoint keeps the annealed slope
  self:buffer("slope", recur.tensor { slope })
  rawset(self, "_pending", setmetatable({}, { __mode = "k" })) -- REINFORCE ctxs awaiting their loss
  if est == "reinforce" then
    self.variance_adjusted = o.variance_adjusted ~= false
    if self.variance_adjusted then
      local size = o.size
      if math.type(size) ~= "integer" or size < 1 then
        fail("BinaryStochastic: the variance-adjusted REINFORCE baseline is per neuron: give size = "
          .. "the number of neurons (the last dimension), got " .. tostring(size), 3)
      end
      self.size = size
      local decay, eps = o.baseline_decay or 0.95, o.baseline_eps or 1e-4
      if type(decay) ~= "number" or not (decay >= 0 and decay < 1) then
        fail("BinaryStochastic: baseline_decay must be in [0, 1), got " .. tostring(decay), 3)
      end
      if type(eps) ~= "number" or not (eps >= 0) then
        fail("BinaryStochastic: baseline_eps must be a number >= 0, got " .. tostring(eps), 3)
      end
      self.baseline_decay, self.baseline_eps = decay, eps
      self:buffer("baseline_num", recur.zeros(size))
      self:buffer("baseline_den", recur.ones(size))
    end
  else
    for _, k in ipairs { "variance_adjusted", "size", "baseline_decay", "baseline_eps" } do
      if o[k] ~= nil then fail("BinaryStochastic: " .. k .. ' is an option of estimator = "reinforce" only', 3) end
    end
  end
end

function BinaryStochastic:forward(a)
  if not recur.is_tensor(a) then fail("BinaryStochastic: the input must be a tensor, got " .. type(a), 2) end
  if a:dim() < 1 then fail("BinaryStochastic: the input must have at least one dimension (the neurons)", 2) end
  if self.estimator == "reinforce" and self.variance_adjusted and a:size(a:dim()) ~= self.size then
    fail("BinaryStochastic: the input " .. shape_str(a:size()) .. " does not end with the " .. self.size
      .. " neurons of the baseline (size = " .. self.size .. ")", 2)
  end
  local stochastic = (self.training and self.train_mode or self.eval_mode) == "stochastic"
  return BinaryStochasticFn(a, self, stochastic)
end

-- The slope m of sigm(m a): bsn:get_slope(), bsn:set_slope(m), bsn:anneal(rate) (m *= rate).
function BinaryStochastic:get_slope() return self.slope:item() end
function BinaryStochastic:set_slope(m)
  if type(m) ~= "number" or not (m > 0) or m == math.huge then
    fail("BinaryStochastic:set_slope: the slope must be a finite number > 0, got " .. tostring(m), 2)
  end
  self.slope:fill_(m)
  return self
end
function BinaryStochastic:anneal(rate)
  if type(rate) ~= "number" or not (rate > 0) then
    fail("BinaryStochastic:anneal: the rate must be a number > 0, got " .. tostring(rate), 2)
  end
  return self:set_slope(self:get_slope() * rate)
end

-- Hands the per-example loss to every forward recorded since the last hand-over whose shape
-- it fits. A forward whose graph was dropped stays pending until the collector takes it (the
-- set is weak), so one that does not fit is skipped, not an error, unless none fits: a live
-- one that did not get its loss fails in backward, naming the shape it needed.
function BinaryStochastic:reinforce(losses)
  if not recur.is_tensor(losses) then
    fail("BinaryStochastic:reinforce: losses must be a tensor (the per-example loss), got " .. type(losses), 2)
  end
  local L, ls = losses:detach(), losses:size()
  local fitted, other = 0, nil
  for ctx in pairs(self._pending) do
    local lead = ctx.lead
    local ok = #ls <= #lead
    for i = 1, #ls do
      ok = ok and ls[#ls - i + 1] == lead[#lead - i + 1]
    end
    if ok then
      ctx.loss = L
      self._pending[ctx] = nil
      fitted = fitted + 1
    else
      other = lead
    end
  end
  if fitted == 0 and other then
    fail("BinaryStochastic:reinforce: losses of shape " .. shape_str(ls) .. " do not match the output's "
      .. "leading dimensions " .. shape_str(other) .. " (one loss per example: " .. shape_str(other)
      .. ", or a suffix of it)", 2)
  end
  return self
end

local function each(model, who)
  if not is_module(model) then fail("nn." .. who .. ": argument #1 must be a module, got " .. type(model), 3) end
  local out = {}
  for _, pm in ipairs(model:named_modules()) do
    if getmetatable(pm[2]) == BinaryStochastic then out[#out + 1] = pm[2] end
  end
  return out
end

-- nn.reinforce(model, losses): bsn:reinforce(losses) on every REINFORCE BinaryStochastic of
-- the model; returns how many took it.
function M.reinforce(model, losses)
  local n = 0
  for _, m in ipairs(each(model, "reinforce")) do
    if m.estimator == "reinforce" then
      m:reinforce(losses)
      n = n + 1
    end
  end
  return n
end

-- nn.anneal_slope(model, rate): multiplies the slope of every BinaryStochastic of the model by
-- rate (the slope-annealing trick: once per epoch); returns the new slope of the first one.
function M.anneal_slope(model, rate)
  local first
  for _, m in ipairs(each(model, "anneal_slope")) do
    m:anneal(rate)
    first = first or m:get_slope()
  end
  return first
end

function BinaryStochastic:extra_repr()
  return string.format("BinaryStochastic(%s, slope = %g, train %s, eval %s%s)", self.estimator,
    self:get_slope(), self.train_mode, self.eval_mode,
    self.estimator == "reinforce" and (self.variance_adjusted and ", variance-adjusted baseline" or ", no baseline") or "")
end

return M
