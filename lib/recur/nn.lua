-- recur.nn: modules, initializers, losses and their functional forms.
--
-- The parts (lib/recur/nn/), gathered into one table here as recur.data's are:
--   module.lua        Module (nn.Module:extend, parameters, the flat buffer, state dicts, summary),
--                     is_module, to_parameter, is_parameter, clip_grad_norm, clip_grad_value,
--                     grad_norm
--   initializers.lua  nn.init
--   layers.lua        the layers and their functional forms
--   losses.lua        the losses (also in nn.functional)
--   binary_stochastic.lua  BinaryStochastic (binary stochastic neurons: straight-through and
--                     REINFORCE estimators, slope annealing), nn.reinforce, nn.anneal_slope
-- How modules, parameters and the flat buffers work: the top of module.lua.
--
-- Layers: Linear, Embedding, Dropout, LayerNorm, Sequential, Tanh, Sigmoid, ReLU, Softmax,
-- LogSoftmax, Identity, BinaryStochastic, RNN (recur.rnn.RNN: stacked fused or Lua cells, docs/rnn.md), RNNCell;
-- functional forms in nn.functional (also nn.F).
-- Initializers: nn.init.glorot_uniform (the default for weights, as TensorFlow's
-- get_variable), glorot_normal, truncated_normal{std=, mean=}, normal{std=, mean=},
-- uniform{lo, hi}, constant(v), zeros, ones, orthogonal{gain=}. Biases start at zero.
-- Losses: nn.cross_entropy, nll, mse, l1, binary_cross_entropy_with_logits.
local nn = {}

local I = require "recur.nn.initializers"
nn.init, nn._as_init = I.init, I._as_init
local F = {}
nn.functional = F
nn.F = F
for _, part in ipairs { "recur.nn.module", "recur.nn.layers", "recur.nn.losses", "recur.nn.binary_stochastic" } do
  for k, v in pairs(require(part)) do
    if k == "functional" then
      for fk, fv in pairs(v) do F[fk] = fv end
    else
      nn[k] = v
    end
  end
end

-- The recurrent layer (fused cells, stacks, dropout, lengths) lives in recur.rnn (docs/rnn.md):
-- recur.nn.RNN is recur.rnn.RNN, a Module class (recur.nn.RNN{cell = "lstm", input = I,
-- hidden = H, layers = L, dropout = p}); recur.nn.RNNCell is recur.rnn.CellModule. Looked up
-- on first use (recur.rnn requires this file).
setmetatable(nn, { __index = function(t, k)
  local alias = ({ RNN = "RNN", RNNCell = "CellModule" })[k]
  if not alias then return nil end
  local v = require("recur.rnn")[alias]
  rawset(t, k, v)
  return v
end })

return nn
