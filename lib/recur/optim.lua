-- recur.optim: optimizers (C kernels, runtime/optim.c; the userdata is bindings/optim.c) and
-- learning-rate schedules.
--
--   local opt = recur.optim.Adam(model, {lr = 2e-3})          -- a module or a list of tensors
--   local opt = recur.optim.SGD(params, {lr = sched, momentum = 0.9, nesterov = true,
--                                        weight_decay = 1e-4, clip_norm = 5})
--   opt:zero_grad(); loss:backward(); opt:step()
--
-- Options (PyTorch's names and defaults; the formulas are in runtime/optim.h):
--   all       lr (required: a number or a schedule), weight_decay (0; AdamW 1e-2),
--             clip_norm / clip_value (0 = off: step() clips the gradients first and returns
--             the global norm before clipping)
--   SGD       momentum (0), dampening (0), nesterov (false)
--   Adagrad   lr_decay (0), initial_accumulator (0), eps (1e-10), eps_in_sqrt (false)
--   RMSProp   alpha (0.99), eps (1e-8), momentum (0), centered (false), eps_in_sqrt (false),
--             initial_square_avg (0)
--   Adam(W)   beta1 (0.9), beta2 (0.999) or betas = {b1, b2}, eps (1e-8)
-- TensorFlow's conventions (the R2RT posts' code): tf.train.AdagradOptimizer(lr) is
--   Adagrad{lr = lr, initial_accumulator = 0.1, eps = 0}; tf.train.RMSPropOptimizer(lr) is
--   RMSProp{lr = lr, alpha = 0.9, eps = 1e-10, eps_in_sqrt = true, initial_square_avg = 1}.
--
-- Schedules are functions of (step, epoch) -> lr; step is the 1-based number of the step
-- about to be taken, epoch the optimizer's epoch counter (opt:next_epoch()).
--   schedules.constant(lr)
--   schedules.steps{0.01, {750, 0.003}}        0.01 for steps 1..750, then 0.003 (the pairs are
--                                              {steps taken, lr from then on}, increasing)
--   schedules.exponential{lr = 0.1, decay = 0.9, steps_per_epoch = nil}
--                                              lr * decay^epoch, the epoch being the counter, or
--                                              (step - 1) // steps_per_epoch when given
--   any Lua function(step, epoch)
local recur = require "recur"
local C = recur._optim

local optim = {}

local function params_of(p, who)
  if type(p) == "table" and rawget(p, "_is_module") then return p:parameters() end
  if type(p) ~= "table" then
    error(who .. ": argument #1 must be a module or a list of parameters, got " .. type(p), 3)
  end
  return p
end

-- one constructor per row of the C table of optimizers (runtime/optim_table.h)
for _, name in ipairs(C.names()) do
  optim[name] = function(params, opts)
    params = params_of(params, name)
    if opts ~= nil and type(opts) ~= "table" then
      error(name .. ": argument #2 must be an options table, got " .. type(opts), 2)
    end
    opts = opts or {}
    if opts.betas ~= nil then
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      if type(o.betas) ~= "table" or #o.betas ~= 2 then
        error(name .. ": betas must be a pair {beta1, beta2}", 2)
      end
      o.beta1, o.beta2, o.betas = o.betas[1], o.betas[2], nil
      opts = o
    end
    return C.new(name, params, opts)
  end
end
optim.RMSprop = optim.RMSProp
optim.is_optimizer = C.is_optimizer

local schedules = {}
optim.schedules = schedules

local function num(v, who, what)
  if type(v) ~= "number" or v ~= v then error(who .. ": " .. what .. " must be a number, got " .. tostring(v), 3) end
  return v
end

function schedules.constant(lr)
  num(lr, "schedules.constant", "lr")
  return function() return lr end
end

function schedules.steps(spec)
  if type(spec) ~= "table" then error("schedules.steps: expects {lr0, {steps, lr}, ...}", 2) end
  local lr0 = num(spec[1], "schedules.steps", "the first entry (the initial lr)")
  local marks = {}
  for i = 2, #spec do
    local p = spec[i]
    if type(p) ~= "table" or math.type(p[1]) ~= "integer" or type(p[2]) ~= "number" then
      error("schedules.steps: entry " .. i .. " must be a pair {steps (an integer), lr}", 2)
    end
    if #marks > 0 and p[1] <= marks[#marks][1] then
      error("schedules.steps: the step counts must increase (entry " .. i .. ")", 2)
    end
    marks[#marks + 1] = { p[1], p[2] }
  end
  return function(step)
    local lr = lr0
    for _, m in ipairs(marks) do
      if step > m[1] then lr = m[2] else break end
    end
    return lr
  end
end

function schedules.exponential(o)
  if type(o) ~= "table" then error("schedules.exponential: expects {lr =, decay =}", 2) end
  local lr = num(o.lr, "schedules.exponential", "lr")
  local decay = num(o.decay, "schedules.exponential", "decay")
  local spe = o.steps_per_epoch
  if spe ~= nil and (math.type(spe) ~= "integer" or spe < 1) then
    error("schedules.exponential: steps_per_epoch must be an integer >= 1", 2)
  end
  return function(step, epoch)
    local e = spe and (step - 1) // spe or epoch
    return lr * decay ^ e
  end
end

return optim
