-- recur.rnn.initial_state: initial states for recurrent networks, as R2RT's "Non-Zero Initial States for Recurrent
-- Neural Networks" defines them (docs/initial-states.md):
--
--   zero            zeros [B, H] for every state tensor
--   trained         one trainable vector [H] per state tensor, broadcast over the batch
--                   (an expanded view: the gradients of the B rows sum into it)
--   noisy{std}      zeros + N(0, std^2) noise, fresh per batch element and per call, only in
--                   training (evaluation gets exact zeros)
--   trained_noisy{std}  the trained vector + the same noise, noise only in training
--
-- Usage:
--   local IS = recur.rnn.initial_state     (loaded on first use; or require "recur.rnn.initial_state")
--   local init = IS.trained_noisy { std = 0.3 }:bind(layer)  -- layer: recur.rnn.RNN or a cell
--   -- init is an nn.Module: init:named_parameters() -> { {"layer1.h", t}, {"layer1.c", t}, ... }
--   -- (assign it to a field of the model, e.g. self.init_state = init, and they join the
--   -- model's flat buffer and state_dict)
--   local out, state = layer:forward(x, { state = init:state(B) })   -- or init(B)
--
-- The state is nested as the layer's own: one entry per layer, each a list of the cell's
-- state tensors (h; h and c; s). bind() also takes a cell (a flat list {h, c}) or an explicit
-- structure: a list of layers, each a list of {name, size} pairs, e.g.
-- { { {"h", 128}, {"c", 128} }, { {"h", 128}, {"c", 128} } }.
--
-- init:state(B, {training = bool}) builds the state for a batch of B; training defaults to the
-- bound layer's `training` field (true when there is none). IS.by_name(name, opts) gives a
-- strategy by its name (the scripts' --init-state flag).
--
-- A new strategy is a table with a leaf function (and, when it trains something, a params
-- function) handed to IS.strategy:
--
--   IS.uniform_noise = function(opts)
--     return IS.strategy { name = "uniform_noise",
--       leaf = function(p, B, H, training)        -- p: this leaf's parameter (or nil)
--         if not training then return recur.zeros(B, H) end
--         return recur.uniform({ B, H }, -opts.a, opts.a)
--       end }
--   end
local recur = require("recur")

local nn = recur.nn

local IS = {}

local Strategy = {}
Strategy.__index = Strategy

-- A strategy bound to a layer: an nn.Module (so its trainable vectors join the model's flat
-- buffer when it is part of a model); children layer1 .. layerL hold the parameters, named
-- after the state tensors ("layer1.h", "layer1.c", ...); called (or :state) it builds a state.
local Bound = nn.Module:extend("InitialState")
IS.Bound = Bound
local Leaves = nn.Module:extend("InitialStateLayer")

-- def: { name =, leaf = function(p, B, H, training, info) -> [B, H] tensor,
--        params = function(H, info) -> initial value [H] (optional: trainable leaves) }
-- info = { layer = l, index = k, name = "h" } says which leaf is being built.
function IS.strategy(def)
  if type(def) ~= "table" or type(def.leaf) ~= "function" then
    error("initial_state.strategy: the definition needs a leaf function", 2)
  end
  if def.params ~= nil and type(def.params) ~= "function" then
    error("initial_state.strategy: params must be a function (H, info) -> tensor", 2)
  end
  return setmetatable({ name = def.name or "custom", leaf = def.leaf, params = def.params },
    Strategy)
end

local function check_std(opts, who)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(string.format("initial_state.%s: expected an options table, got %s", who, type(opts)),
      3)
  end
  local std = opts.std == nil and 0.3 or opts.std
  if type(std) ~= "number" or std < 0 or std ~= std then
    error(string.format("initial_state.%s: std must be a number >= 0, got %s", who,
      tostring(opts.std)), 3)
  end
  return opts, std
end

-- value of a trainable leaf: opts.init is a number (constant; default 0, as RNN III) or a
-- function (H, info) -> tensor [H]
local function param_init(opts, who)
  local v = opts.init == nil and 0 or opts.init
  if type(v) == "number" then
    return function(H) return recur.full({ H }, v) end
  elseif type(v) == "function" then
    return v
  end
  error(string.format("initial_state.%s: init must be a number or a function, got %s", who,
    type(v)), 3)
end

local function broadcast(p, B, H)
  return p:view(1, H):expand(B, H)
end

function IS.zero()
  return IS.strategy {
    name = "zero",
    leaf = function(_, B, H) return recur.zeros(B, H) end,
  }
end

function IS.trained(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("initial_state.trained: expected an options table", 2) end
  return IS.strategy {
    name = "trained",
    params = param_init(opts, "trained"),
    leaf = function(p, B, H) return broadcast(p, B, H) end,
  }
end

function IS.noisy(opts)
  local _, std = check_std(opts, "noisy")
  return IS.strategy {
    name = "noisy",
    leaf = function(_, B, H, training)
      if not training or std == 0 then return recur.zeros(B, H) end
      return recur.normal({ B, H }, 0, std)
    end,
  }
end

function IS.trained_noisy(opts)
  local o, std = check_std(opts, "trained_noisy")
  return IS.strategy {
    name = "trained_noisy",
    params = param_init(o, "trained_noisy"),
    leaf = function(p, B, H, training)
      local s = broadcast(p, B, H)
      if not training or std == 0 then return s end
      return s + recur.normal({ B, H }, 0, std)
    end,
  }
end

IS.names = { "zero", "trained", "noisy", "trained_noisy" }

-- a strategy by name: "zero", "trained", "noisy", "trained_noisy"
function IS.by_name(name, opts)
  local f = IS[name]
  if type(name) ~= "string" or type(f) ~= "function" or name == "strategy"
      or name == "by_name" then
    error(string.format("initial_state: unknown strategy %s (one of %s)", tostring(name),
      table.concat(IS.names, ", ")), 2)
  end
  return f(opts)
end

-- structure of a layer (recur.rnn.RNN), a cell, or an explicit list
local function structure_of(target)
  if nn.is_module(target) and rawget(target, "cell") then target = target.cell end
  if type(target) == "table" and target.cells and target.layers then
    local s = {}
    for l, cell in ipairs(target.cells) do
      s[l] = {}
      for k, name in ipairs(cell.state_names) do s[l][k] = { name, cell.hidden } end
    end
    return s, true
  end
  local ok, names = pcall(function() return target.state_names end)
  if ok and type(names) == "table" and target.hidden then
    local s = {}
    for k, name in ipairs(names) do s[k] = { name, target.hidden } end
    return { s }, false
  end
  if type(target) == "table" and type(target[1]) == "table" then
    for l, layer in ipairs(target) do
      if type(layer) ~= "table" or #layer == 0 then
        error(string.format("initial_state bind: layer %d of the structure must be a list of "
          .. "{name, size} pairs", l), 3)
      end
      for k, leaf in ipairs(layer) do
        if type(leaf) ~= "table" or type(leaf[1]) ~= "string" or math.type(leaf[2]) ~= "integer"
            or leaf[2] < 1 then
          error(string.format("initial_state bind: structure[%d][%d] must be {name, size > 0}",
            l, k), 3)
        end
      end
    end
    return target, true
  end
  error("initial_state bind: expected a recur.rnn.RNN layer, a cell, or a list of layers of "
    .. "{name, size} pairs, got " .. type(target), 3)
end

-- Binds the strategy to a layer (or cell, or structure): creates the trainable leaves.
function Strategy:bind(target)
  local st, nested = structure_of(target)
  if self.params then
    for l, layer in ipairs(st) do
      for k, leaf in ipairs(layer) do
        if leaf[1] == "" or leaf[1]:find("%.") or Leaves[leaf[1]] ~= nil or leaf[1] == "training" then
          error(string.format("initial_state bind: state name '%s' (layer %d, %d) cannot name a "
            .. "parameter", leaf[1], l, k), 2)
        end
      end
    end
  end
  return Bound(self, target, st, nested)
end

function Bound:init(strategy, target, st, nested)
  rawset(self, "strategy", strategy)
  rawset(self, "structure", st)
  rawset(self, "nested", nested)
  rawset(self, "params", {})
  -- the bound layer is not a child: it belongs to the model that holds both
  rawset(self, "target", target)
  for l, layer in ipairs(st) do
    self.params[l] = {}
    if strategy.params then
      local holder = Leaves()
      for k, leaf in ipairs(layer) do
        local info = { layer = l, index = k, name = leaf[1] }
        local v = strategy.params(leaf[2], info)
        if not recur.is_tensor(v) or v:dim() ~= 1 or v:size(1) ~= leaf[2] then
          error(string.format("initial_state %s: params must return a tensor [%d]", strategy.name,
            leaf[2]), 3)
        end
        self.params[l][k] = holder:parameter(leaf[1], v:detach())
      end
      self["layer" .. l] = holder
    end
  end
  -- not packed here: the model it joins packs everything once (packing it first would
  -- hold its values twice while the model's buffer fills); see recur.nn's top comment
end

function Bound:extra_repr()
  return "InitialState(" .. self.strategy.name .. ")"
end

function Bound:state(B, opts)
  if math.type(B) ~= "integer" or B < 0 then
    error("initial_state: the batch size must be an integer >= 0, got " .. tostring(B), 2)
  end
  local training
  if opts and opts.training ~= nil then
    training = opts.training and true or false
  elseif type(self.target) == "table" and rawget(self.target, "training") ~= nil then
    training = self.target.training and true or false
  else
    training = true
  end
  local out = {}
  for l, layer in ipairs(self.structure) do
    out[l] = {}
    for k, leaf in ipairs(layer) do
      out[l][k] = self.strategy.leaf(self.params[l][k], B, leaf[2], training,
        { layer = l, index = k, name = leaf[1] })
    end
  end
  if not self.nested then return out[1] end
  return out
end
Bound.forward = Bound.state

return IS
