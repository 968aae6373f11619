-- Training glue for the scripts: cross-entropy, optimizers with gradient clipping, and
-- checkpoints. With recur's nn library present (recur.nn, recur.optim, recur.save /
-- recur.load: C kernels, safetensors checkpoints) it uses them; without it (or with
-- RECUR_GLUE=lua), plain Lua versions built from tensor ops with the same formulas (PyTorch's)
-- and a Lua-source checkpoint format. G.backend says which ("nn" or "lua"). The model itself
-- (models/charrnn.lua) is made of recur.nn modules either way.
--
--   G.cross_entropy(logits [N, C], target [N] (1-based ids)) -> mean loss (scalar)
--   local opt = G.optimizer("adam", model, {lr = 2e-3, clip = 5})  -- a module (clipping then
--                               -- runs on its flat gradient) or a list of tensors
--   opt:zero_grad(); ...backward...; local norm = opt:step()   -- clips first, returns the norm
--   G.save(path, {model = m, optimizer = opt, tensors = {name = t}, meta = table})   (atomic)
--   local ck = G.load(path)     -- ck.model (name -> tensor, the model's state_dict),
--                               -- ck.tensors (the others), ck.meta, ck.rng_state
--   G.restore(opt, ck, path)    -- the optimizer state and the random generator
local recur = require("recur")

local G = {}

local function has_nn()
  local ok, nn = pcall(function() return recur.nn end)
  if not ok or type(nn) ~= "table" or type(nn.cross_entropy) ~= "function" then return false end
  local ok2, optim = pcall(function() return recur.optim end)
  local ok3, save = pcall(function() return recur.save end)
  return ok2 and type(optim) == "table" and type(optim.Adam) ~= "nil" and ok3 and save ~= nil
end

local getenv = os and os.getenv or function() return nil end -- absent in a sandbox
G.backend = (getenv("RECUR_GLUE") ~= "lua" and has_nn()) and "nn" or "lua"

G.optimizers = { "adam", "sgd", "adagrad", "rmsprop" }

-- ---------------------------------------------------------------------------------------
-- the loss

if G.backend == "nn" then
  function G.cross_entropy(logits, target) return recur.nn.cross_entropy(logits, target) end
else
  function G.cross_entropy(logits, target)
    local n = logits:size(1)
    return -(logits:log_softmax(2):gather(2, target:reshape(n, 1))):mean()
  end
end

-- ---------------------------------------------------------------------------------------
-- optimizers

local function check_name(name)
  name = type(name) == "string" and name:lower() or name
  for _, n in ipairs(G.optimizers) do
    if n == name then return name end
  end
  error(string.format("optimizer: unknown optimizer %s (one of %s)", tostring(name),
    table.concat(G.optimizers, ", ")), 3)
end

local NN_NAMES = { adam = "Adam", sgd = "SGD", adagrad = "Adagrad", rmsprop = "RMSProp" }

-- Lua optimizer: the formulas of runtime/optim.h (PyTorch's defaults)
local LuaOpt = {}
LuaOpt.__index = LuaOpt

local function global_norm(params)
  local s = 0
  for _, p in ipairs(params) do
    local g = p.grad
    if g then s = s + (g * g):sum():item() end
  end
  return math.sqrt(s)
end

function LuaOpt:zero_grad()
  for _, p in ipairs(self.params) do
    if p.grad then p.grad:zero_() end
  end
end

function LuaOpt:step()
  local norm = global_norm(self.params)
  local scale = 1
  if self.clip > 0 and norm > self.clip then scale = self.clip / (norm + 1e-6) end
  self.t = self.t + 1
  local lr, name = self.lr, self.name
  recur.no_grad(function()
    for i, p in ipairs(self.params) do
      local g = p.grad
      if g then
        if scale ~= 1 then g:mul_(scale) end
        local s = self.state[i]
        if name == "sgd" then
          p:add_(g, -lr)
        elseif name == "adagrad" then
          s.sum:add_(g * g)
          p:add_(g / (s.sum:sqrt() + 1e-10), -lr)
        elseif name == "rmsprop" then
          s.square_avg:mul_(0.99):add_(g * g, 0.01)
          p:add_(g / (s.square_avg:sqrt() + 1e-8), -lr)
        else
          local b1, b2 = 0.9, 0.999
          s.exp_avg:mul_(b1):add_(g, 1 - b1)
          s.exp_avg_sq:mul_(b2):add_(g * g, 1 - b2)
          local bc1, bc2 = 1 - b1 ^ self.t, 1 - b2 ^ self.t
          p:add_(s.exp_avg / (s.exp_avg_sq:sqrt() / math.sqrt(bc2) + 1e-8), -lr / bc1)
        end
      end
    end
  end)
  return norm
end

local SLOTS = { adam = { "exp_avg", "exp_avg_sq" }, sgd = {}, adagrad = { "sum" },
  rmsprop = { "square_avg" } }

function LuaOpt:state_tensors()
  local out = {}
  for i, s in ipairs(self.state) do
    for _, k in ipairs(SLOTS[self.name]) do out["optim." .. i .. "." .. k] = s[k] end
  end
  return out
end

-- opt = G.optimizer(name, params, {lr =, clip = 0})
function G.optimizer(name, params, o)
  name = check_name(name)
  o = o or {}
  if type(o.lr) ~= "number" or not (o.lr > 0) then
    error("optimizer: lr must be a number > 0, got " .. tostring(o.lr), 2)
  end
  local clip = o.clip or 0
  if type(clip) ~= "number" or clip < 0 then
    error("optimizer: clip must be a number >= 0 (0 = off), got " .. tostring(o.clip), 2)
  end
  -- a module: its parameters, and its flat gradient for clipping (one pass over one buffer)
  local flat_grad
  if type(params) == "table" and rawget(params, "_is_module") then
    flat_grad = select(2, params:flat_parameters())
    params = params:parameters()
  end
  if G.backend == "nn" then
    local opts = { lr = o.lr }
    if clip > 0 and not flat_grad then opts.clip_norm = clip end
    local opt = recur.optim[NN_NAMES[name]](params, opts)
    local nn = recur.nn
    return setmetatable({ impl = opt, name = name, params = params, backend = "nn" }, {
      __index = {
        zero_grad = function(self) self.impl:zero_grad() end,
        step = function(self)
          local n
          if flat_grad then
            n = clip > 0 and nn.clip_grad_norm(flat_grad, clip) or nn.grad_norm(flat_grad)
          end
          local sn = self.impl:step()
          return n or sn or self.impl:grad_norm()
        end,
      },
    })
  end
  local self = setmetatable({ name = name, params = params, lr = o.lr, clip = clip, t = 0,
    state = {}, backend = "lua" }, LuaOpt)
  for i, p in ipairs(params) do
    local s = {}
    for _, k in ipairs(SLOTS[name]) do s[k] = recur.zeros(p:size()) end
    self.state[i] = s
  end
  return self
end

-- ---------------------------------------------------------------------------------------
-- checkpoints

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end

-- writes text to path atomically (temporary file in the same directory, then rename)
local function write_atomic(path, text)
  local tmp = path .. ".tmp." .. tostring(os.time()) .. "." .. tostring(math.random(1e9))
  local f, err = io.open(tmp, "wb")
  if not f then error("save: cannot write " .. path .. ": " .. tostring(err), 3) end
  local ok, werr = f:write(text)
  f:flush()
  f:close()
  if not ok then
    os.remove(tmp)
    error("save: writing " .. path .. " failed: " .. tostring(werr), 3)
  end
  -- fsync is not reachable from Lua; the rename is still atomic
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error("save: cannot rename into " .. path .. ": " .. tostring(rerr), 3)
  end
end

local function serialize(v, out)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    else out[#out + 1] = string.format("%.17g", v) end
  elseif t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      out[#out + 1] = "["
      serialize(k, out)
      out[#out + 1] = "]="
      serialize(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  else
    error("save: cannot store a " .. t .. " in the metadata", 4)
  end
end

local function tensor_bytes(t)
  local flat = t:contiguous():reshape(t:numel()):totable()
  local parts = {}
  for i = 1, #flat, 256 do
    parts[#parts + 1] = string.pack("<" .. string.rep("f", math.min(256, #flat - i + 1)),
      table.unpack(flat, i, math.min(i + 255, #flat)))
  end
  return table.concat(parts)
end

local function bytes_tensor(s, shape)
  local n = #s // 4
  local vals = {}
  for i = 1, n, 256 do
    local k = math.min(256, n - i + 1)
    local got = { string.unpack("<" .. string.rep("f", k), s, (i - 1) * 4 + 1) }
    table.move(got, 1, k, i, vals)
  end
  local t = recur.tensor(#vals > 0 and vals or { 0 })
  if #vals == 0 then t = recur.zeros(0) end
  return t:reshape(shape)
end

-- G.save(path, {model =, optimizer =, tensors = {name = t}, meta = table}); also stores the
-- RNG state. The model's state is stored as "model.<name>" (recur.save's names).
function G.save(path, spec)
  if G.backend == "nn" then
    recur.save(path, { model = spec.model, optimizer = spec.optimizer and spec.optimizer.impl,
      tensors = spec.tensors, meta = spec.meta, rng = true })
    return
  end
  local tensors = {}
  for k, v in pairs(spec.tensors or {}) do tensors[k] = v end
  if spec.model then
    for _, nt in ipairs(spec.model:named_state()) do tensors["model." .. nt[1]] = nt[2] end
  end
  local ostate
  if spec.optimizer then
    for k, v in pairs(spec.optimizer:state_tensors()) do tensors[k] = v end
    ostate = { name = spec.optimizer.name, t = spec.optimizer.t }
  end
  local out = { "return {format=\"recur-lua-checkpoint-1\",meta=" }
  serialize(spec.meta or {}, out)
  out[#out + 1] = ",optimizer="
  serialize(ostate or false, out)
  out[#out + 1] = ",rng=" .. string.format("%q", hex(recur.rng_state()))
  out[#out + 1] = ",tensors={"
  local names = {}
  for k in pairs(tensors) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local t = tensors[k]
    out[#out + 1] = string.format("[%q]={shape={%s},data=%q},", k, table.concat(t:size(), ","),
      tensor_bytes(t))
  end
  out[#out + 1] = "}}\n"
  write_atomic(path, table.concat(out))
end

function G.load(path)
  local f = io.open(path, "rb")
  if not f then error("load: cannot open " .. path, 2) end
  local head = f:read(8) or ""
  f:close()
  if head == "return {" then
    local chunk, err = loadfile(path, "t", {})
    if not chunk then error("load: " .. path .. " is damaged: " .. tostring(err), 2) end
    local ok, ck = pcall(chunk)
    if not ok or type(ck) ~= "table" or ck.format ~= "recur-lua-checkpoint-1" then
      error("load: " .. path .. " is not a recur checkpoint", 2)
    end
    local tensors, model = {}, {}
    for k, v in pairs(ck.tensors) do
      local m = k:match("^model%.(.+)$")
      if m then model[m] = bytes_tensor(v.data, v.shape) else tensors[k] = bytes_tensor(v.data, v.shape) end
    end
    return { model = model, tensors = tensors, meta = ck.meta, rng_state = unhex(ck.rng),
      lua_optimizer = ck.optimizer, backend = "lua" }
  end
  if not has_nn() then
    error("load: " .. path .. " was written by recur's nn library (safetensors), which this "
      .. "build lacks", 2)
  end
  local ck = recur.load(path)
  return { model = ck.model, tensors = ck.tensors, meta = ck.meta, rng_state = ck.rng_state,
    nn = ck, backend = "nn" }
end

-- restores the optimizer state and the random generator from a loaded checkpoint
function G.restore(opt, ck, path)
  if opt.backend ~= ck.backend then
    error(string.format("load: %s was written with the %s backend, this run uses %s", path,
      ck.backend, opt.backend), 2)
  end
  if ck.backend == "nn" then
    recur.load(path, { optimizer = opt.impl })
    return
  end
  local os_ = ck.lua_optimizer
  if not os_ or os_.name ~= opt.name then
    error(string.format("load: %s holds %s optimizer state, this run uses %s", path,
      os_ and os_.name or "no", opt.name), 2)
  end
  recur.no_grad(function()
    for i, s in ipairs(opt.state) do
      for _, k in ipairs(SLOTS[opt.name]) do
        local t = ck.tensors["optim." .. i .. "." .. k]
        if not t then error("load: " .. path .. " lacks optim." .. i .. "." .. k, 3) end
        s[k]:copy_(t)
      end
    end
  end)
  opt.t = os_.t
  recur.set_rng_state(ck.rng_state)
end

return G
