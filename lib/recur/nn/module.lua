-- recur.nn.Module: the module framework (classes, parameters, the flat buffer, state dicts,
-- summary) and gradient clipping over a module's parameters.
--
-- Modules
--   local Net = nn.Module:extend("Net")
--   function Net:init(hidden)             -- the constructor: Net(hidden) calls it
--     self.fc1 = nn.Linear(784, hidden)   -- assigning a module registers it (in this order)
--     self.fc2 = nn.Linear(hidden, 10)
--     self.scale = self:parameter("scale", {1}, nn.init.constant(1))
--   end
--   function Net:forward(x) return self.fc2(self.fc1(x):tanh()) * self.scale end
--
-- Parameters are ordered: a module's own parameters (in the order they were created), then its
-- children's, depth first (PyTorch's order). Names are dotted paths: "fc1.weight"; children of
-- a Sequential are numbered from 1 ("1.weight").
--
-- One flat buffer. Every parameter is created by Module:parameter as a tensor whose memory
-- can move. The first time a module is asked for its parameters (parameters(),
-- named_parameters(), flat_parameters(), zero_grad(), state_dict(), load_state_dict(), an
-- optimizer built from it, recur.save) all of its parameters are packed, in order, into one
-- flat value buffer (runtime/nn_params.c): each is copied in and its old memory freed as it
-- moves, so packing costs about one parameter's size on top. The tensors keep their
-- identity: references held anywhere (an optimizer, a list) stay valid, only the memory they
-- point to moves. Composition keeps the property: when a packed module becomes part of a
-- bigger one and the bigger one is asked, everything is packed again into the bigger
-- module's buffer, and the smaller module's flat buffer is then a slice of the bigger one's
-- (nothing moves again while the order holds).
--
-- The flat gradient buffer is lazy, so that a model used only for inference (built, loaded,
-- run under no_grad) holds no gradient memory. It is the value buffer's twin: one buffer of
-- the same size per value buffer, made (zero-filled) when first needed, and a packed
-- parameter's .grad, whenever it has one, is always the span of it at the same offset as the
-- parameter's values. It is made by whichever comes first: flat_parameters() (its second
-- result), zero_grad(), an optimizer built over the parameters (recur.optim: it attaches
-- every parameter's slot), or the first backward that reaches a packed parameter (autograd
-- accumulates a packed leaf into its slot, never into a tensor of its own; parameters that
-- backward has not reached have .grad nil until then, and their span reads as zeros). So
-- backward() accumulates straight into the flat gradient buffer, from the first backward on,
-- and `local p, g = model:flat_parameters()` gives two 1-D tensors over every value and
-- every gradient: one call clips, averages or all-reduces them all. zero_grad() fills it with
-- zeros (it never drops the gradients, which would detach them from the buffer); dropping
-- one by hand (p.grad = nil, p:zero_grad()) zeroes its span and the next backward attaches
-- the same span again. Assigning a tensor (p.grad = t) to a packed parameter copies t's
-- values into its span (runtime: rc_set_grad; the buffer made if missing): .grad
-- stays the span, t is not kept. Gradients made before packing (a backward on a module nobody asked for its
-- parameters yet) are copied into the buffer when it is packed. parameters(), state_dict(),
-- load_state_dict() and summary() pack the values only: they never make the gradient buffer.
-- Why the buffer belongs to the value buffer (runtime: rc_storage.grad_twin, found from the
-- parameter's own storage and offset) rather than to the module: autograd, not the module,
-- knows when a gradient is first needed -- a parameter can be used outside its module's
-- forward, or the model called in grad mode without training -- so there is no hook on
-- module calls and no per-module flag that composition could leave stale.
--
-- Views of a parameter taken before it is packed keep pointing at the old memory: build the
-- model (or call model:parameters()) before taking views of its parameters. Parameters tied
-- between two modules (the same tensor in both) are kept once, in the first position; the
-- second module then has no contiguous flat buffer of its own (flat_parameters() returns nil).
--
local recur = require "recur"
local C = recur._nn
local methods = require "recur._methods"
local U = require "recur.nn.util"
local I = require "recur.nn.initializers"
local fail, shape_str, init, as_init = U.fail, U.shape_str, I.init, I._as_init

local M = {}

local function is_module(v)
  return type(v) == "table" and rawget(v, "_is_module") == true
end
M.is_module = is_module


local Module = { _class_name = "Module" }
Module.__index = Module
M.Module = Module

local function is_class(v)
  return type(v) == "table" and rawget(v, "__index") == v and rawget(v, "_class_name") ~= nil
end

-- Checked methods (recur._methods): every method (a function whose first parameter is
-- self) assigned to a module class checks its self, so that m.forward(x) or
-- m.parameters() says so at the caller's line. extend and new are called on a class; every
-- other method on a module instance. Metamethods (__call, __tostring...) are left alone:
-- Lua gives them the right self.
local CLASS_METHODS = { extend = true, new = true }

-- The self test of the methods of class cls: a module (Module's own methods), or an instance
-- of cls or of a subclass (a subclass's methods: Linear.forward(m, x) needs a Linear).
local function instance_test(cls)
  if cls == Module then return is_module end
  return function(v)
    if not is_module(v) then return false end
    local c = getmetatable(v)
    while c ~= nil do
      if c == cls then return true end
      local mt = getmetatable(c)
      c = mt and rawget(mt, "__index")
    end
    return false
  end
end

-- "a Linear", "an InitialState", "an RNN" (a capital F, H, L, M, N, R, S or X before another
-- capital or a digit is read as a letter name: "an LSTM", "an MLP")
local function with_article(name)
  local an = name:find("^[AEIOUaeiou]") or name:find("^[FHLMNRSX][%u%d]") or name:find("^[FHLMNRSX]$")
  return (an and "an " or "a ") .. name
end

local function class_newindex(cls, k, v)
  if type(k) == "string" and type(v) == "function" and not k:match("^__") then
    local name = rawget(cls, "_class_name")
    if CLASS_METHODS[k] then
      v = methods.method(v, name, k, is_class, "a module class", "Class")
    else
      local test = rawget(cls, "_self_test")
      if not test then
        test = instance_test(cls)
        rawset(cls, "_self_test", test)
      end
      v = methods.method(v, name, k, test, cls == Module and "a module" or with_article(name), "m", cls)
    end
  end
  rawset(cls, k, v)
end
local function class_call(c, ...) return c:new(...) end
setmetatable(Module, { __call = class_call, __newindex = class_newindex })

local instance_meta = { "__call", "__tostring", "__newindex", "__len" }

-- Creates a subclass; its instances are built by calling it: Class(...) runs Class.init.
function Module:extend(name)
  if type(name) ~= "string" then fail("Module:extend: the class needs a name (a string)", 2) end
  local cls = { _class_name = name }
  cls.__index = cls
  for _, k in ipairs(instance_meta) do cls[k] = self[k] end
  return setmetatable(cls, { __index = self, __call = class_call, __newindex = class_newindex })
end

function Module:new(...)
  if type(self) ~= "table" or rawget(self, "__index") ~= self then
    fail("Module:new: call it on a class (nn.Linear:new(...) or nn.Linear(...)), got "
      .. (is_module(self) and "a module instance" or type(self)), 2)
  end
  local obj = {
    _is_module = true,
    _modules = {},    -- child names in order
    _params = {},     -- own parameter names in order
    _buffers = {},    -- own buffer names in order
    training = true,
  }
  setmetatable(obj, self)
  obj:init(...)
  return obj
end

function Module:init() end

function Module:forward()
  fail(self._class_name .. ":forward is not implemented", 2)
end

-- calling a module runs forward (and the summary hook, when one is set)
local unchecked = methods.unchecked
Module.__call = function(self, ...)
  local forward = self.forward
  forward = unchecked[forward] or forward -- self is right here: skip the check
  local hook = rawget(self, "_hook")
  if not hook then return forward(self, ...) end
  local out = table.pack(forward(self, ...))
  hook(self, table.pack(...), out)
  return table.unpack(out, 1, out.n)
end

-- assigning a module to a new field registers it as a child
Module.__newindex = function(self, k, v)
  if is_module(v) then
    if type(k) ~= "string" and math.type(k) ~= "integer" then
      fail("Module: a child module needs a string or integer name", 2)
    end
    local mods = rawget(self, "_modules")
    mods[#mods + 1] = k
  end
  rawset(self, k, v)
end

Module.__len = function(self) return #rawget(self, "_modules") end

function Module:__tostring()
  local lines = {}
  local function walk(m, name, depth)
    local pad = string.rep("  ", depth)
    lines[#lines + 1] = pad .. (name and (tostring(name) .. ": ") or "") .. m:extra_repr()
    for _, n in ipairs(m._modules) do
      local c = rawget(m, n)
      if is_module(c) then walk(c, n, depth + 1) end
    end
  end
  walk(self, nil, 0)
  return table.concat(lines, "\n")
end

-- one line describing this module (layers override it)
function Module:extra_repr() return self._class_name end

-- Registers a child explicitly (what assignment does), returns it.
function Module:add_module(name, m)
  if not is_module(m) then fail("add_module: argument #2 must be a module, got " .. type(m), 2) end
  if rawget(self, name) ~= nil then fail("add_module: '" .. tostring(name) .. "' is already taken", 2) end
  self[name] = m
  return m
end

-- Creates, initializes and registers a parameter. shape: a table of sizes (or a tensor whose
-- values are copied in). initializer: see as_init; default glorot_uniform for 2-D and more,
-- zeros for 1-D. opts.fan_in / opts.fan_out override the fans the initializer sees.
function Module:parameter(name, shape, initializer, opts)
  if type(name) ~= "string" or name == "" or name:find("%.") then
    fail("parameter: the name must be a non-empty string without dots, got " .. tostring(name), 2)
  end
  if rawget(self, name) ~= nil then fail("parameter: '" .. name .. "' is already taken", 2) end
  local src
  if recur.is_tensor(shape) then
    src = shape
    shape = src:size()
  elseif type(shape) ~= "table" then
    fail("parameter: the shape of '" .. name .. "' must be a table of sizes or a tensor, got " .. type(shape), 2)
  end
  local p = C.param(shape)
  local fi, fo = init.fans(shape)
  if opts then fi, fo = opts.fan_in or fi, opts.fan_out or fo end
  local fn
  if not src then fn = as_init(initializer, #shape >= 2 and init.glorot_uniform() or init.zeros, "parameter") end
  recur.no_grad(function()
    if src then
      p:copy_(src)
    else
      local v = fn(p, fi, fo)
      if recur.is_tensor(v) then p:copy_(v) end
    end
  end)
  local ps = rawget(self, "_params")
  ps[#ps + 1] = name
  rawset(self, name, p)
  return p
end

-- Registers an existing parameter tensor t (one whose memory can move: made by
-- Module:parameter, nn.to_parameter, or a fused recurrent cell) under name, as it is (no
-- copy: whoever else holds t keeps sharing it). A plain tensor (recur.tensor, zeros, an op's
-- result, a view) cannot move into a flat buffer: pass it through nn.to_parameter (a copy)
-- or use Module:parameter(name, t).
function Module:register_parameter(name, t)
  if type(name) ~= "string" or name == "" or name:find("%.") then
    fail("register_parameter: the name must be a non-empty string without dots, got " .. tostring(name), 2)
  end
  if rawget(self, name) ~= nil then fail("register_parameter: '" .. name .. "' is already taken", 2) end
  if not recur.is_tensor(t) then fail("register_parameter: argument #2 must be a tensor, got " .. type(t), 2) end
  if not C.is_param(t) then
    fail("register_parameter: '" .. name .. "' (shape " .. shape_str(t:size()) .. ") is not a parameter "
      .. "tensor (a view, an op's result or a tensor made by recur.tensor/zeros/...); its memory cannot "
      .. "move into a flat buffer: pass it through nn.to_parameter (a copy) or use Module:parameter", 2)
  end
  local ps = rawget(self, "_params")
  ps[#ps + 1] = name
  rawset(self, name, t)
  return t
end

-- t itself when it is a parameter tensor (its memory can move into a flat buffer), else a new
-- parameter tensor (requires grad) holding a copy of t's values.
function M.to_parameter(t)
  if not recur.is_tensor(t) then fail("to_parameter: expected a tensor, got " .. type(t), 2) end
  if C.is_param(t) then return t end
  local p = C.param(t:size())
  recur.no_grad(function() p:copy_(t) end)
  return p
end
M.is_parameter = function(t) return recur.is_tensor(t) and C.is_param(t) end

-- Registers a tensor that is state but not trained (saved by state_dict).
function Module:buffer(name, t)
  if type(name) ~= "string" or name:find("%.") then fail("buffer: the name must be a string without dots", 2) end
  if not recur.is_tensor(t) then fail("buffer: argument #2 must be a tensor, got " .. type(t), 2) end
  local bs = rawget(self, "_buffers")
  if rawget(self, name) == nil then bs[#bs + 1] = name end
  rawset(self, name, t)
  return t
end

-- children in order: list of {name, module}
function Module:children()
  local out = {}
  for _, n in ipairs(self._modules) do
    local c = rawget(self, n)
    if is_module(c) then out[#out + 1] = { n, c } end
  end
  return out
end

-- every module depth first, this one included: list of {path, module}
function Module:named_modules(prefix, out, seen)
  if prefix ~= nil and type(prefix) ~= "string" then
    fail("named_modules: the prefix must be a string, got " .. type(prefix), 2)
  end
  if (out ~= nil and type(out) ~= "table") or (seen ~= nil and type(seen) ~= "table") then
    fail("named_modules: out and seen must be tables (or nil)", 2)
  end
  out, seen = out or {}, seen or {}
  if seen[self] then return out end
  seen[self] = true
  out[#out + 1] = { prefix or "", self }
  for _, nc in ipairs(self:children()) do
    local p = prefix and prefix ~= "" and (prefix .. "." .. tostring(nc[1])) or tostring(nc[1])
    nc[2]:named_modules(p, out, seen)
  end
  return out
end

-- list of {name, tensor}, without packing; duplicates (tied parameters: a module used twice,
-- or one tensor registered in two places) kept once, at their first position
local function collect(self, what)
  local out, seen = {}, {}
  for _, pm in ipairs(self:named_modules()) do
    local prefix, m = pm[1], pm[2]
    for _, n in ipairs(rawget(m, what)) do
      local t = rawget(m, n)
      if t ~= nil and not seen[t] then
        out[#out + 1] = { prefix == "" and n or (prefix .. "." .. n), t }
        seen[t] = true
      end
    end
  end
  return out
end

-- Packs the parameters into one flat buffer (see the top of this file); returns flat values
-- and flat gradients, the gradient buffer made if it did not exist yet (nil, nil when tied
-- parameters prevent a contiguous slice).
function Module:flat_parameters()
  local list = {}
  for i, np in ipairs(collect(self, "_params")) do list[i] = np[2] end
  return C.pack(list, true)
end
Module.flatten = Module.flat_parameters

function Module:named_parameters()
  local named = collect(self, "_params")
  local list = {}
  for i, np in ipairs(named) do list[i] = np[2] end
  C.pack(list, false) -- the values only: no gradient buffer (see the top of this file)
  return named
end

function Module:parameters()
  local out = {}
  for i, np in ipairs(self:named_parameters()) do out[i] = np[2] end
  return out
end

function Module:named_buffers() return collect(self, "_buffers") end

function Module:num_parameters()
  local n = 0
  for _, np in ipairs(collect(self, "_params")) do n = n + np[2]:numel() end
  return n
end

function Module:train(mode)
  if mode == nil then mode = true end
  for _, pm in ipairs(self:named_modules()) do rawset(pm[2], "training", mode and true or false) end
  return self
end

function Module:eval() return self:train(false) end

-- Zeros every gradient in place (in the flat gradient buffer, made if missing: gradients are
-- never dropped).
function Module:zero_grad()
  local flat, grad = self:flat_parameters()
  if grad then
    C.zero_(grad)
  else
    C.zero_grads(self:parameters())
  end
  return self
end

-- Parameters and buffers: list of {name, tensor} in order.
function Module:named_state()
  local out = self:named_parameters()
  for _, nb in ipairs(self:named_buffers()) do out[#out + 1] = nb end
  return out
end

-- name -> tensor (sharing memory with the module)
function Module:state_dict()
  local d = {}
  for _, nt in ipairs(self:named_state()) do d[nt[1]] = nt[2] end
  return d
end

-- Checks sd against the module: nil when it fits, else a message. strict: every name of the
-- module must be in sd and nothing else.
function Module:check_state_dict(sd, strict)
  if type(sd) ~= "table" then return "load_state_dict: expected a table of tensors, got " .. type(sd) end
  if strict == nil then strict = true end
  local mine = {}
  for _, nt in ipairs(self:named_state()) do
    local name, t = nt[1], nt[2]
    mine[name] = true
    local v = sd[name]
    if v == nil then
      if strict then return "load_state_dict: missing '" .. name .. "' (shape " .. shape_str(t:size()) .. ")" end
    elseif not recur.is_tensor(v) then
      return "load_state_dict: '" .. name .. "' must be a tensor, got " .. type(v)
    elseif shape_str(v:size()) ~= shape_str(t:size()) then
      return "load_state_dict: '" .. name .. "' has shape " .. shape_str(v:size()) ..
        " in the state but " .. shape_str(t:size()) .. " in the model"
    end
  end
  if strict then
    local extra = {}
    for k in pairs(sd) do
      if not mine[k] then extra[#extra + 1] = tostring(k) end
    end
    if #extra > 0 then
      table.sort(extra)
      return "load_state_dict: unexpected '" .. table.concat(extra, "', '") .. "'"
    end
  end
  return nil
end

-- Copies the values in (validated first: on any error nothing changes).
function Module:load_state_dict(sd, opts)
  if opts ~= nil and type(opts) ~= "table" then
    fail("load_state_dict: the options must be a table {strict =}, got " .. type(opts), 2)
  end
  local strict = not (opts and opts.strict == false)
  local err = self:check_state_dict(sd, strict)
  if err then fail(err, 2) end
  recur.no_grad(function()
    for _, nt in ipairs(self:named_state()) do
      local v = sd[nt[1]]
      if v ~= nil and v ~= nt[2] then nt[2]:copy_(v) end
    end
  end)
  return self
end

-- multiply-adds of one call (layers override); inputs/outputs as packed tables
function Module:macs() return 0 end

local function commas(n)
  local s = string.format("%d", n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function shape_of(v)
  if recur.is_tensor(v) then return shape_str(v:size()) end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = shape_of(x) end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return type(v)
end

-- The tensors of a nested list (false when it holds anything else, or is empty).
local function tensor_leaves(v, out)
  out = out or {}
  if recur.is_tensor(v) then
    out[#out + 1] = v
    return out
  end
  if type(v) ~= "table" or #v == 0 then return false end
  for _, x in ipairs(v) do
    if not tensor_leaves(x, out) then return false end
  end
  return out
end

-- A summary cell for a result: its shape; a nested list of tensors of one shape (an RNN's
-- state {{h, c}, {h, c}}) as "4 x [32, 128]"; any other table in full ({[3], {[2, 4]}}),
-- which the table cuts with "..." when it is too wide.
local function shape_cell(v)
  if type(v) == "table" then
    local ls = tensor_leaves(v)
    if ls and #ls > 1 then
      local first = shape_str(ls[1]:size())
      local same = true
      for i = 2, #ls do
        if shape_str(ls[i]:size()) ~= first then same = false break end
      end
      if same then return #ls .. " x " .. first end
    end
  end
  return shape_of(v)
end

-- s cut to at most w characters: a list after its last entry that fits, closed
-- ("{[1, 2], [1, 3], ...}"); anything else with "..." at the end
local function fit(s, w)
  if #s <= w then return s end
  for p = w, 2, -1 do
    if s:sub(p, p + 1) == ", " and s:sub(p + 2, p + 2):match("[%[{]") then
      local head = s:sub(1, p - 1)
      local _, open = head:gsub("{", "")
      local _, close = head:gsub("}", "")
      local cut = head .. ", ..." .. string.rep("}", open - close)
      if #cut <= w then return cut end
    end
  end
  return s:sub(1, w - 3) .. "..."
end

-- Prints (and returns) every module with its output shape, its own parameter count and its
-- multiply-adds per example, then the totals. input: a shape without the batch dimension
-- ({784}), a tensor (its first dimension is the batch), or nil (no forward: shapes and
-- multiply-adds are not shown). opts.print = false only returns the text. The batch is the
-- first dimension unless opts.batch_dim or the model's batch_dim field says otherwise
-- (time-first recurrent models: 2, so {T, I} runs [T, 1, I] and an example is a sequence).
function Module:summary(input, opts)
  if opts ~= nil and type(opts) ~= "table" then
    fail("summary: the options must be a table {print =}, got " .. type(opts), 2)
  end
  opts = opts or {}
  local bd = opts.batch_dim or self.batch_dim or 1
  if math.type(bd) ~= "integer" or bd < 1 then fail("summary: batch_dim must be an integer >= 1, got " .. tostring(bd), 2) end
  local rows, order = {}, {}
  local mods = self:named_modules()
  for _, pm in ipairs(mods) do
    local m = pm[2]
    local own = 0
    for _, n in ipairs(m._params) do
      local t = rawget(m, n)
      if t then own = own + t:numel() end
    end
    rows[m] = { name = pm[1] == "" and "(model)" or pm[1], kind = m:extra_repr(), params = own, macs = nil, shape = nil, depth = select(2, pm[1]:gsub("%.", "")) + (pm[1] == "" and 0 or 1) }
    order[#order + 1] = m
  end
  local batch = 1
  if input ~= nil then
    local x
    if recur.is_tensor(input) then
      x = input
      batch = input:dim() >= bd and input:size(bd) or 1
    elseif type(input) == "table" then
      local shp = {}
      for _, s in ipairs(input) do shp[#shp + 1] = s end
      if bd > #shp + 1 then fail("summary: batch_dim " .. bd .. " is beyond the input's " .. #shp + 1 .. " dimensions", 2) end
      table.insert(shp, bd, 1)
      x = recur.zeros(shp)
    else
      fail("summary: input must be a shape table (without the batch dimension) or a tensor", 2)
    end
    for _, m in ipairs(order) do
      rawset(m, "_hook", function(mod, ins, outs)
        local r = rows[mod]
        -- the first result's shape (a recurrent layer's output; "(+1)": one more result,
        -- its final state)
        r.shape = shape_cell(outs[1])
        r.more = outs.n > 1 and string.format(" (+%d)", outs.n - 1) or ""
        r.macs = (r.macs or 0) + mod:macs(ins, outs)
      end)
    end
    local was = self.training
    self:eval()
    local ok, err = pcall(recur.no_grad, function() return self(x) end)
    self:train(was)
    for _, m in ipairs(order) do rawset(m, "_hook", nil) end
    if not ok then fail("summary: the forward pass failed: " .. tostring(err), 2) end
  end
  -- Columns: the layer column is as wide as its longest entry; the shape column too, up
  -- to SHAPE_MAX characters (longer shapes are cut with "..."); the numbers right-aligned.
  local SHAPE_MAX = 40
  local cells = {}
  local tp, tm = 0, 0
  for i, m in ipairs(order) do
    local r = rows[m]
    tp = tp + r.params
    local macs = r.macs and math.floor(r.macs / batch + 0.5)
    -- containers show the sum of their children; count only leaves in the total
    if macs and #m._modules == 0 then tm = tm + macs end
    local shape = r.shape and (fit(r.shape, SHAPE_MAX - #r.more) .. r.more) or (input and "-" or "?")
    cells[i] = { string.rep("  ", r.depth) .. r.name .. " " .. r.kind, shape, commas(r.params),
      #m._modules > 0 and "" or (macs and commas(macs) or (input and "-" or "?")) }
  end
  local head = { "layer", "output shape", "params", "mult-adds" }
  local w = { 28, 18, 12, 14 }
  for _, c in ipairs(cells) do
    for k = 1, 4 do w[k] = math.max(w[k], #c[k]) end
  end
  local fmt = "%-" .. w[1] .. "s  %-" .. w[2] .. "s %" .. w[3] .. "s %" .. w[4] .. "s"
  local width = w[1] + w[2] + w[3] + w[4] + 4
  local lines = {}
  lines[#lines + 1] = (string.format(fmt, table.unpack(head)))
  lines[#lines + 1] = string.rep("-", width)
  for _, c in ipairs(cells) do
    lines[#lines + 1] = (string.format(fmt, table.unpack(c)):gsub("%s+$", ""))
  end
  lines[#lines + 1] = string.rep("-", width)
  -- the total counts each tensor once (a row counts its module's own, shared or not)
  local named = self:named_parameters()
  local pl = {}
  tp = 0
  for i, np in ipairs(named) do
    pl[i] = np[2]
    tp = tp + np[2]:numel()
  end
  lines[#lines + 1] = string.format("total parameters: %s in %d tensors (%s bytes of float32%s)",
    commas(tp), #named, commas(tp * 4),
    select(1, C.pack(pl, false)) and ", one flat buffer" or "")
  if input ~= nil then
    lines[#lines + 1] = "multiply-adds per example: " .. commas(tm) ..
      " (matrix products; elementwise work not counted)"
  end
  local text = table.concat(lines, "\n")
  if opts.print ~= false then print(text) end
  return text
end

-- gradient clipping over a module or a list of parameters; both return the global L2 norm
-- of the gradients before clipping

local function params_of(x, who)
  if is_module(x) then return x:parameters() end
  if type(x) == "table" then return x end
  fail(who .. ": expects a module or a list of parameters, got " .. type(x), 3)
end

-- x may also be a gradient tensor itself, typically a model's flat gradient
-- (select(2, model:flat_parameters())): one pass over one buffer.
function M.clip_grad_norm(x, max_norm)
  if recur.is_tensor(x) then return C.clip_norm_(x, max_norm) end
  return C.clip_grad_norm(params_of(x, "clip_grad_norm"), max_norm)
end
function M.clip_grad_value(x, clip) return C.clip_grad_value(params_of(x, "clip_grad_value"), clip) end
function M.grad_norm(x)
  if recur.is_tensor(x) then return C.clip_norm_(x) end
  return C.grad_norm(params_of(x, "grad_norm"))
end
M._params_of = params_of

return M
