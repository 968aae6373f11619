-- A multi-layer perceptron: input -> hidden layers (activation, optional dropout) -> classes
-- (logits; pair it with recur.nn.cross_entropy).
--
--   local MLP = require "models.mlp"       (from the project root; or dofile("models/mlp.lua"))
--   local m = MLP{input = 784, hidden = {256, 256}, classes = 10, activation = "relu",
--                 dropout = 0, weight_init = nil, bias_init = nil}
--
-- activation: "relu", "tanh", "sigmoid" or "identity". weight_init / bias_init: recur.nn.init
-- initializers (glorot_uniform and zeros by default). m.config keeps the options (for
-- checkpoint metadata). Its children are numbered as in any Sequential: 1 Linear, 2 ReLU, ...
local recur = require "recur"
local nn = recur.nn

local MLP = nn.Sequential:extend("MLP")

local activations = { relu = nn.ReLU, tanh = nn.Tanh, sigmoid = nn.Sigmoid, identity = nn.Identity }

function MLP:init(o)
  o = o or {}
  local input, classes = o.input or 784, o.classes or 10
  local hidden = o.hidden or { 256, 256 }
  local act = o.activation or "relu"
  local dropout = o.dropout or 0
  if not activations[act] then
    error("MLP: unknown activation '" .. tostring(act) .. "' (relu, tanh, sigmoid, identity)", 3)
  end
  if type(hidden) ~= "table" then error("MLP: hidden must be a list of layer sizes", 3) end
  local layers, prev = {}, input
  local lin = { weight_init = o.weight_init, bias_init = o.bias_init }
  for _, h in ipairs(hidden) do
    layers[#layers + 1] = nn.Linear(prev, h, lin)
    layers[#layers + 1] = activations[act]()
    if dropout > 0 then layers[#layers + 1] = nn.Dropout(dropout) end
    prev = h
  end
  layers[#layers + 1] = nn.Linear(prev, classes, lin)
  nn.Sequential.init(self, layers)
  self.config = { input = input, hidden = hidden, classes = classes, activation = act, dropout = dropout }
end

function MLP:extra_repr()
  local c = self.config
  return string.format("MLP(%d-%s-%d, %s%s)", c.input, table.concat(c.hidden, "-"), c.classes,
    c.activation, c.dropout > 0 and string.format(", dropout %g", c.dropout) or "")
end

return MLP
