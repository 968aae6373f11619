-- recur.nn's layers (Linear, Embedding, Dropout, LayerNorm, Sequential, the activations,
-- Softmax, LogSoftmax) and their functional forms (nn.functional).
local recur = require "recur"
local C = recur._nn
local U = require "recur.nn.util"
local I = require "recur.nn.initializers"
local NM = require "recur.nn.module"
local fail, check_int, check_opts = U.fail, U.check_int, U.check_opts
local init, as_init = I.init, I._as_init
local Module, is_module = NM.Module, NM.is_module

local M = {}

-- Linear(in, out, {bias = true, weight_init = glorot_uniform, bias_init = zeros})
-- y = x W^T + b, W: [out, in] (PyTorch's layout), x: [..., in]
local Linear = Module:extend("Linear")
M.Linear = Linear
function Linear:init(n_in, n_out, o)
  o = check_opts(o, "Linear", { bias = true, weight_init = true, bias_init = true })
  self.in_features = check_int(n_in, "Linear", "in")
  self.out_features = check_int(n_out, "Linear", "out")
  self:parameter("weight", { self.out_features, self.in_features }, as_init(o.weight_init, init.glorot_uniform(), "Linear"))
  if o.bias ~= false then self:parameter("bias", { self.out_features }, as_init(o.bias_init, init.zeros, "Linear")) end
end
function Linear:forward(x) return C.linear(x, self.weight, rawget(self, "bias")) end
function Linear:extra_repr()
  return string.format("Linear(%d -> %d%s)", self.in_features, self.out_features, rawget(self, "bias") and "" or ", no bias")
end
function Linear:macs(ins)
  local x = type(ins) == "table" and ins[1]
  return recur.is_tensor(x) and (x:numel() // math.max(1, self.in_features)) * self.in_features * self.out_features or 0
end

-- Embedding(n, dim, {init = glorot_uniform}): rows of a [n, dim] table by 1-based index;
-- indices of any shape S give [S..., dim].
local Embedding = Module:extend("Embedding")
M.Embedding = Embedding
function Embedding:init(n, dim, o)
  o = check_opts(o, "Embedding", { init = true })
  self.num_embeddings = check_int(n, "Embedding", "the number of embeddings")
  self.embedding_dim = check_int(dim, "Embedding", "the dimension")
  -- TensorFlow's fans for an embedding matrix [n, dim]
  self:parameter("weight", { self.num_embeddings, self.embedding_dim }, as_init(o.init, init.glorot_uniform(), "Embedding"),
    { fan_in = self.num_embeddings, fan_out = self.embedding_dim })
end
local function embedding(idx, weight)
  if not recur.is_tensor(idx) then fail("embedding: the indices must be a tensor, got " .. type(idx), 3) end
  if not recur.is_tensor(weight) then fail("embedding: the weight must be a tensor, got " .. type(weight), 3) end
  local shp = idx:size()
  local flat = idx:dim() == 1 and idx or idx:reshape(idx:numel())
  local rows = weight:index_select(1, flat)
  shp[#shp + 1] = weight:size(2)
  return rows:reshape(shp)
end
function Embedding:forward(idx) return embedding(idx, self.weight) end
function Embedding:extra_repr() return string.format("Embedding(%d, %d)", self.num_embeddings, self.embedding_dim) end

-- Dropout(p): inverted dropout (kept values scaled by 1 / (1 - p)), only in training mode.
local Dropout = Module:extend("Dropout")
M.Dropout = Dropout
function Dropout:init(p)
  p = p or 0.5
  if type(p) ~= "number" or not (p >= 0 and p <= 1) then fail("Dropout: p must be in [0, 1], got " .. tostring(p), 3) end
  self.p = p
end
function Dropout:forward(x)
  if self.training and self.p > 0 then return C.dropout(x, self.p) end
  return x
end
function Dropout:extra_repr() return string.format("Dropout(p = %g)", self.p) end

-- LayerNorm(dim, {eps = 1e-5, affine = true, weight_init = ones, bias_init = zeros}): over the
-- last dimension, learnable scale ("weight") and shift ("bias").
local LayerNorm = Module:extend("LayerNorm")
M.LayerNorm = LayerNorm
function LayerNorm:init(dim, o)
  o = check_opts(o, "LayerNorm", { eps = true, affine = true, weight_init = true, bias_init = true })
  self.dim = check_int(dim, "LayerNorm", "the dimension")
  self.eps = o.eps or 1e-5
  if type(self.eps) ~= "number" or not (self.eps >= 0) then fail("LayerNorm: eps must be a number >= 0", 3) end
  if o.affine ~= false then
    self:parameter("weight", { self.dim }, as_init(o.weight_init, init.ones, "LayerNorm"))
    self:parameter("bias", { self.dim }, as_init(o.bias_init, init.zeros, "LayerNorm"))
  end
end
function LayerNorm:forward(x) return C.layer_norm(x, rawget(self, "weight"), rawget(self, "bias"), self.eps) end
function LayerNorm:extra_repr() return string.format("LayerNorm(%d, eps = %g)", self.dim, self.eps) end

-- Sequential{m1, m2, ...}: children named 1, 2, ...; forward chains them.
local Sequential = Module:extend("Sequential")
M.Sequential = Sequential
function Sequential:init(list)
  list = list or {}
  if type(list) ~= "table" or is_module(list) then fail("Sequential: expects a list of modules, e.g. Sequential{m1, m2}", 3) end
  for i, m in ipairs(list) do
    if not is_module(m) then fail("Sequential: entry " .. i .. " is not a module (" .. type(m) .. ")", 3) end
    self[i] = m
  end
  self:parameters()
end
function Sequential:add(m)
  if not is_module(m) then fail("Sequential:add: expects a module, got " .. type(m), 2) end
  self[#self._modules + 1] = m
  return self
end
function Sequential:forward(x)
  for _, n in ipairs(self._modules) do x = rawget(self, n)(x) end
  return x
end

local function simple(name, fwd)
  local cls = Module:extend(name)
  cls.forward = function(self, x) return fwd(x) end -- luacheck: ignore self
  M[name] = cls
  return cls
end

local F = {}
M.functional = F

function F.tanh(x) return C.activation(x, "tanh") end
function F.sigmoid(x) return C.activation(x, "sigmoid") end
function F.relu(x) return C.activation(x, "relu") end
function F.identity(x) return x end
function F.softmax(x, dim) return recur.softmax(x, dim or -1) end
function F.log_softmax(x, dim) return recur.log_softmax(x, dim or -1) end
F.linear = C.linear
-- dropout(x, p, training = true)
function F.dropout(x, p, training)
  if training == false or p == 0 then return x end
  return C.dropout(x, p)
end
function F.layer_norm(x, weight, bias, eps) return C.layer_norm(x, weight, bias, eps or 1e-5) end
F.embedding = function(idx, weight) return embedding(idx, weight) end

simple("Tanh", F.tanh)
simple("Sigmoid", F.sigmoid)
simple("ReLU", F.relu)
simple("Identity", F.identity)
local Softmax = Module:extend("Softmax")
M.Softmax = Softmax
function Softmax:init(dim) self.dim = dim or -1 end
function Softmax:forward(x) return recur.softmax(x, self.dim) end
local LogSoftmax = Module:extend("LogSoftmax")
M.LogSoftmax = LogSoftmax
function LogSoftmax:init(dim) self.dim = dim or -1 end
function LogSoftmax:forward(x) return recur.log_softmax(x, self.dim) end

return M
