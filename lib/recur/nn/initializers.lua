-- recur.nn.init: initializers, functions (t, fan_in, fan_out) that fill t in place (or return a tensor of
-- t's shape, which is copied in). They run under no_grad.

local recur = require "recur"
local C = recur._nn
local fail = require("recur.nn.util").fail

local init = {}

-- fans of a weight in recur's layout ([out, in, ...] as PyTorch; 1-D: the size twice)
function init.fans(shape)
  if recur.is_tensor(shape) then shape = shape:size() end
  if type(shape) ~= "table" then fail("fans: the shape must be a list of sizes or a tensor, got " .. type(shape), 2) end
  for i = 1, #shape do
    if math.type(shape[i]) ~= "integer" then
      fail("fans: shape[" .. i .. "] must be an integer, got " .. tostring(shape[i]), 2)
    end
  end
  if #shape == 0 then return 1, 1 end
  if #shape == 1 then return shape[1], shape[1] end
  local rf = 1
  for i = 3, #shape do rf = rf * shape[i] end
  return shape[2] * rf, shape[1] * rf
end

-- the options table of an initializer constructor (nil: every default)
local function opts_of(o, who)
  if o == nil then return {} end
  if type(o) ~= "table" then fail(who .. ": the options must be a table, got " .. type(o), 3) end
  return o
end

local function opt_number(o, k, default, who)
  local v = o[k]
  if v == nil then return default end
  if type(v) ~= "number" then fail(who .. ": " .. k .. " must be a number, got " .. type(v), 3) end
  return v
end

function init.glorot_uniform(o)
  o = opts_of(o, "glorot_uniform")
  local gain = opt_number(o, "gain", 1, "glorot_uniform")
  return function(t, fan_in, fan_out)
    local a = gain * math.sqrt(6 / (fan_in + fan_out))
    return recur.uniform(t:size(), -a, a)
  end
end
init.xavier_uniform = init.glorot_uniform

function init.glorot_normal(o)
  o = opts_of(o, "glorot_normal")
  local gain = opt_number(o, "gain", 1, "glorot_normal")
  return function(t, fan_in, fan_out)
    return recur.normal(t:size(), 0, gain * math.sqrt(2 / (fan_in + fan_out)))
  end
end

-- The constructor of init.<name>{std = o[1] or 1, mean = 0}, drawing with recur[name].
local function normal_init(name)
  return function(o)
    o = opts_of(o, name)
    local std = opt_number(o, "std", o[1] or 1, name)
    local mean = opt_number(o, "mean", 0, name)
    return function(t) return recur[name](t:size(), mean, std) end
  end
end

-- TensorFlow's truncated normal: draws beyond 2 std are re-drawn
init.truncated_normal = normal_init("truncated_normal")
init.normal = normal_init("normal")

function init.uniform(o, hi)
  local lo
  if type(o) == "number" then
    lo = o
  else
    o = opts_of(o, "uniform")
    lo = opt_number(o, "lo", o[1] or -0.05, "uniform")
    hi = opt_number(o, "hi", o[2] or 0.05, "uniform")
  end
  if type(lo) ~= "number" or type(hi) ~= "number" or not (lo <= hi) then
    fail("uniform: needs lo <= hi, got " .. tostring(lo) .. " and " .. tostring(hi), 2)
  end
  return function(t) return recur.uniform(t:size(), lo, hi) end
end

function init.constant(v)
  if type(v) == "table" then v = v.value or v[1] end
  if type(v) ~= "number" then fail("constant: the value must be a number, got " .. type(v), 2) end
  return function(t)
    if not recur.is_tensor(t) then fail("constant: the initializer fills a tensor, got " .. type(t), 2) end
    t:fill_(v)
  end
end

init.zeros = init.constant(0)
init.ones = init.constant(1)

function init.orthogonal(o)
  o = opts_of(o, "orthogonal")
  local gain = opt_number(o, "gain", 1, "orthogonal")
  return function(t) C.orthogonal_(t, gain) end
end

-- An initializer argument: nil (default), a number (constant), a function, or a table from
-- one of the constructors above.
local function as_init(v, default, who)
  if v == nil then return default end
  if type(v) == "number" then return init.constant(v) end
  if type(v) == "function" then return v end
  fail(who .. ": an initializer must be a function (nn.init.*), a number or nil, got " .. type(v), 3)
end

-- nn.init, and nn._as_init for the layers (and recur.rnn)
return { init = init, _as_init = as_init }
