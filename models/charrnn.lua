-- The character model of R2RT's "Recurrent Neural Networks in Tensorflow II": an embedding,
-- a stack of fused recurrent cells (recur.rnn.RNN) and a linear readout to the vocabulary,
-- composed as an nn.Module.
--
--   local CharRNN = require "models.charrnn"
--   local m = CharRNN.new { vocab = 65, embed = 64, hidden = 128, layers = 2, cell = "lstm",
--                           dropout = 0, init_state = "zero", init_std = 0.3,
--                           cell_opts = nil, connection = nil }  -- or CharRNN{...}
--   (cell_opts: a Lua cell's options; connection: "residual" or "highway" between the
--   stacked layers, recur.rnn.RNN's)
--   local logits, state = m:forward(x, state)      -- x [T, B] ids -> logits [T*B, V]; also m(x)
--   local loss, state = m:loss(x, y, state)        -- mean cross-entropy in nats
--   local logits, state = m:step(ids, state)       -- one step for sampling (ids [B])
--   m:parameters(), m:named_parameters(), m:flat_parameters(), m:state_dict(), m:summary(x),
--   recur.save(path, {model = m, ...}) ...          -- as any nn.Module
--   m:config()      -> the table new() takes (stored in checkpoints)
--
-- Children and parameter names (one flat buffer, in this order):
--   embed       nn.Embedding(V, E)     embed.weight [V, E] (N(0, 1) rows, PyTorch's nn.Embedding)
--   rnn         recur.rnn.RNN          rnn.layer1.W_x, rnn.layer1.W_h, rnn.layer1.b, ...
--                                      (the cells' own, docs/rnn.md)
--   out         nn.Linear(H, V)        out.weight [V, H], out.bias [V] (uniform in +-1/sqrt(H),
--                                      PyTorch's nn.Linear)
--   init_state  the initial-state strategy (recur.rnn.initial_state): init_state.layer1.h, ...
--               for the trained strategies, nothing for zero and noisy
--
-- Checkpoints are recur.save's (safetensors); CharRNN.load_checkpoint(path, targets) reads one
-- (recur.load) and names the Lua-source format of older versions, which is no longer read.
local recur = require("recur")
local nn = recur.nn
local options = require "models.options"
local IS = recur.rnn.initial_state

local CharRNN = nn.Module:extend("CharRNN")

local function int_opt(o, k, default, min) return options.int("CharRNN", o, k, default, min) end

-- CharRNN.new{...} and CharRNN{...} both build a model (Module:new, then init)
function CharRNN.new(a, b)
  if type(a) == "table" and rawget(a, "_class_name") then return nn.Module.new(a, b) end
  return nn.Module.new(CharRNN, a)
end

function CharRNN:init(o)
  if type(o) ~= "table" then error("CharRNN.new: expected an options table", 3) end
  self.V = int_opt(o, "vocab", nil, 1)
  self.E = int_opt(o, "embed", 64, 1)
  self.H = int_opt(o, "hidden", 128, 1)
  self.L = int_opt(o, "layers", 2, 1)
  self.cell = o.cell or "lstm"
  self.dropout = o.dropout or 0
  self.init_state_name = o.init_state or "zero"
  self.init_std = o.init_std or 0.3
  self.cell_opts = o.cell_opts
  self.connection = o.connection
  self.batch_dim = 2 -- x is [T, B]: Module:summary counts per sequence
  self.embed = nn.Embedding(self.V, self.E, { init = nn.init.normal { std = 1 } })
  self.rnn = recur.rnn.RNN { cell = self.cell, input = self.E, hidden = self.H,
    layers = self.L, dropout = self.dropout, cell_opts = self.cell_opts,
    connection = self.connection }
  local k = 1 / math.sqrt(self.H)
  self.out = nn.Linear(self.H, self.V, { weight_init = nn.init.uniform(-k, k),
    bias_init = nn.init.uniform(-k, k) })
  self.init_state = IS.by_name(self.init_state_name, { std = self.init_std }):bind(self.rnn)
  self:parameters()
end

function CharRNN:extra_repr()
  return string.format("CharRNN(vocab %d, embed %d, %s %d x %d, init %s)", self.V, self.E,
    type(self.cell) == "string" and self.cell or "custom", self.L, self.H, self.init_state_name)
end

function CharRNN:config()
  return { vocab = self.V, embed = self.E, hidden = self.H, layers = self.L, cell = self.cell,
    dropout = self.dropout, init_state = self.init_state_name, init_std = self.init_std,
    cell_opts = self.cell_opts, connection = self.connection }
end

-- the initial state for a batch of B (noise only in training)
function CharRNN:initial_state(B)
  return self.init_state(B, { training = self.training })
end

-- x [T, B] ids -> logits [T*B, V], final state
function CharRNN:forward(x, state)
  local T, B = x:size(1), x:size(2)
  local out, fin = self.rnn(self.embed(x), { state = state or self:initial_state(B) })
  return self.out(out:reshape(T * B, self.H)), fin
end

-- mean cross-entropy (nats per character) of predicting y [T, B] from x [T, B]
function CharRNN:loss(x, y, state)
  local logits, fin = self:forward(x, state)
  return nn.cross_entropy(logits, y:reshape(y:numel())), fin
end

-- one step: ids [B] (tensor or list) -> logits [B, V], new state; no graph is recorded
-- when called inside recur.no_grad (batch 1 then runs matrix-vector kernels)
function CharRNN:step(ids, state)
  if not recur.is_tensor(ids) then ids = recur.tensor(ids) end
  local B = ids:numel()
  local e = self.embed.weight:index_select(1, ids:reshape(B))
  local out, fin = self.rnn:step(e, state or self:initial_state(B))
  return self.out(out), fin
end

-- Picks the next id from logits [1, V]: divided by the temperature, restricted to the top_k
-- largest (0 = all), softmax, one draw from recur's generator (temperature 0: the argmax);
-- recur.sample_logits does it in C (runtime/sample.c).
function CharRNN.pick(logits, temperature, top_k)
  return recur.sample_logits(logits:view(logits:numel()), temperature, top_k or 0)
end

-- Generates `length` ids at batch 1 after feeding `prime` (a list of ids; empty or nil: the
-- first id is drawn uniformly). Returns the list of generated ids (the prime excluded).
-- on_id(id) is called after each one (for streaming output). Runs in evaluation mode
-- without recording a graph. When every cell is a fused one the whole loop runs in C
-- (recur._rnn_generate: embedding row, cells, readout, draw; nothing allocated per step),
-- in chunks of 256 ids; o.path = "lua" forces the step-by-step Lua loop (same numbers up to
-- float rounding in the readout, same draws).
function CharRNN:sample(o)
  o = o or {}
  local length = o.length or 200
  local temperature = o.temperature or 1
  local top_k = o.top_k or 0
  local prime = o.prime or {}
  local was = self.training
  self:eval()
  local out = {}
  -- the C loop knows the cells only: layer connections take the Lua loop
  local fused = o.path ~= "lua" and self.connection == nil
  for _, c in ipairs(self.rnn.cells) do
    if type(c) ~= "userdata" then fused = false end
  end
  recur.no_grad(function()
    local state = self:initial_state(1)
    if #prime == 0 and length > 0 then
      local first = math.min(self.V, 1 + math.floor(recur.rand(1):item() * self.V))
      out[1] = first
      if o.on_id then o.on_id(first) end
      length = length - 1
      prime = { first }
    end
    if length <= 0 then return end
    if fused then
      local pr = prime
      while length > 0 do
        local n = math.min(length, 256)
        local ids
        ids, state = recur._rnn_generate(self.rnn.cells, self.embed.weight, self.out.weight,
          self.out.bias, state, pr, n, temperature, top_k)
        for _, id in ipairs(ids) do
          out[#out + 1] = id
          if o.on_id then o.on_id(id) end
        end
        pr = { ids[#ids] }
        length = length - n
      end
      return
    end
    for i = 1, #prime - 1 do
      local _
      _, state = self:step({ prime[i] }, state)
    end
    local last = prime[#prime]
    local ids = recur.tensor { last }
    for _ = 1, length do
      local logits
      ids:set(last, 1)
      logits, state = self:step(ids, state)
      last = CharRNN.pick(logits, temperature, top_k)
      out[#out + 1] = last
      if o.on_id then o.on_id(last) end
    end
  end)
  if was then self:train() end
  return out
end

-- Reads a checkpoint written by scripts/train_charrnn.lua: recur.load(path, targets). A file
-- in the Lua-source format older versions could write ("recur-lua-checkpoint-1", a Lua chunk)
-- gets an error that names the format instead of a safetensors parse error.
local LUA_SOURCE_FORMAT = "recur-lua-checkpoint-1"

function CharRNN.load_checkpoint(path, targets)
  if type(path) ~= "string" then error("load: argument #1 must be a path, got " .. type(path), 2) end
  local f, err = io.open(path, "rb")
  if not f then error("load: cannot open " .. tostring(err), 2) end
  local head = f:read(64) or ""
  f:close()
  if head:find("^return {") then
    error(string.format("load: %s is a Lua-source checkpoint (format %s), which recur no "
      .. "longer reads; train again to write a safetensors checkpoint (recur.save)", path,
      head:match('format="([^"]*)"') or LUA_SOURCE_FORMAT), 2)
  end
  local r = table.pack(pcall(recur.load, path, targets))
  if not r[1] then error(r[2], 2) end
  return table.unpack(r, 2, r.n)
end

-- state as named tensors (checkpoints) and back
function CharRNN.state_tensors(state, prefix, out)
  out = out or {}
  for l, layer in ipairs(state) do
    for k, t in ipairs(layer) do out[prefix .. l .. "." .. k] = t:detach():contiguous() end
  end
  return out
end

function CharRNN.state_from(tensors, prefix, layers, n)
  local st = {}
  for l = 1, layers do
    st[l] = {}
    for k = 1, n do
      local t = tensors[prefix .. l .. "." .. k]
      if not t then return nil end
      st[l][k] = t
    end
  end
  return st
end

return CharRNN
