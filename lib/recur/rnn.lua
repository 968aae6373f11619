-- recur.rnn: recurrent cells and layers (docs/rnn.md).
--
--   recur.rnn.Cell{cell = "lstm", input = I, hidden = H, reset_after = false}
--       a fused cell (C): cell:forward(x, {state =, lengths =}), cell:step(x_t, state),
--       cell:parameters(), cell:zero_state(B)
--   recur.rnn.LuaCell(def, {input = I, hidden = H, params = ...})
--       a cell written in Lua from tensor ops (docs/custom-cells.md), same methods
--   recur.rnn.RNN{cell = "lstm", input = I, hidden = H, layers = L, dropout = p,
--                 batch_first = false, reset_after = false, connection = nil}
--       a stack of cells with dropout on the non-recurrent connections, and optionally
--       "residual" (y = h(x) + x) or "highway" (y = T(x) h(x) + (1 - T(x)) x) connections
--       around layers 2..L: an nn.Module
--       (recur.nn.RNN is the same class) whose parameters, named "layer<l>.<name>"
--       ("layer1.W_x", ...), join the model's flat buffer
--   recur.rnn.CellModule(cell)  any cell as an nn.Module (recur.nn.RNNCell)
--   recur.rnn.unroll(cell, x, {state =, lengths =})   runs any cell's :step over x
--   recur.rnn.last(outputs, lengths, {batch_first =}) each sequence's last relevant output
--   recur.rnn.initial_state   zero / trained / noisy / trained_noisy initial states
--                             (recur/rnn/initial_state.lua, docs/initial-states.md)
--
-- Shapes: x [T, B, I] (time first; batch_first layers take [B, T, I]); a cell's state is a
-- list of [B, H] tensors ({h}, {h, c} or {s}); outputs [T, B, H]. lengths is a list of B
-- integers (or a 1-D tensor) in 0..T: past its length a sequence's state stays as it was
-- and its outputs are zero.
local recur = require("recur")

local rnn = {}

-- the fused cells' kinds, from their table in C (runtime/rnn_cells.h)
rnn.cell_types = recur._rnn_cell_types()
local is_fused_type = {}
for _, k in ipairs(rnn.cell_types) do is_fused_type[k] = true end

-- lvl: the error level seen from the caller's caller (3: the caller of the function that
-- checks; 4 from a Module's init, whose caller is Module.new)
local function check_int(v, what, fn, min, lvl)
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    error(string.format("%s: %s must be an integer, got %s", fn, what,
      type(v) == "number" and tostring(v) or type(v)), lvl or 3)
  end
  local i = math.tointeger(v)
  if i == nil then -- an infinity
    error(string.format("%s: %s must be an integer, got %s", fn, what, tostring(v)), lvl or 3)
  end
  v = i
  if min and v < min then
    error(string.format("%s: %s must be >= %d, got %d", fn, what, min, v), lvl or 3)
  end
  return v
end

local function check_opts(opts, fn, lvl)
  if type(opts) ~= "table" then
    error(string.format("%s: expected an options table, got %s", fn, type(opts)), lvl or 3)
  end
end

-- lengths (nil, list or tensor) as a Lua list, checked against T and B
local function lengths_list(lengths, T, B, fn)
  if lengths == nil then return nil end
  local list
  if recur.is_tensor(lengths) then
    if lengths:dim() ~= 1 then
      error(string.format("%s: lengths must be a 1-D tensor, got %d dimensions", fn,
        lengths:dim()), 3)
    end
    list = lengths:totable()
  elseif type(lengths) == "table" then
    list = lengths
  else
    error(string.format("%s: lengths must be a list of integers or a tensor, got %s", fn,
      type(lengths)), 3)
  end
  if #list ~= B then
    error(string.format("%s: lengths has %d entries, expected %d (one per sequence)", fn,
      #list, B), 3)
  end
  local out = {}
  for b = 1, B do
    local v = list[b]
    if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)
        and math.tointeger(v)) then
      error(string.format("%s: lengths[%d] must be an integer, got %s", fn, b,
        type(v) == "number" and tostring(v) or type(v)), 3)
    end
    if v < 0 or v > T then
      error(string.format("%s: lengths[%d] = %d is outside [0, %d] (T = %d)", fn, b,
        math.tointeger(v), T, T), 3)
    end
    out[b] = math.tointeger(v)
  end
  return out
end
rnn._lengths_list = lengths_list

local function zeros_state(n, B, H)
  local s = {}
  for k = 1, n do s[k] = recur.zeros(B, H) end
  return s
end

-- ---------------------------------------------------------------------------------------
-- Fused cells

local fused = recur._rnn_cell_methods

function rnn.Cell(opts)
  check_opts(opts, "rnn.Cell")
  local kind = opts.cell or opts.type
  if type(kind) ~= "string" or not is_fused_type[kind] then
    error(string.format("rnn.Cell: cell must be one of %s, got %s",
      table.concat(rnn.cell_types, ", "), tostring(kind)), 2)
  end
  local input = check_int(opts.input, "input", "rnn.Cell", 1)
  local hidden = check_int(opts.hidden, "hidden", "rnn.Cell", 1)
  if opts.reset_after and kind ~= "gru" then
    error("rnn.Cell: reset_after applies to gru cells only", 2)
  end
  return recur._rnn_cell(kind, input, hidden, opts.reset_after and true or false)
end

-- Checks one cell's state st (what: "state" or "state[l]"): nil, a single tensor (one-state
-- cells) or a list of up to n tensors in state_names order (nil entries mean zeros), each of
-- shape [B, H] when B is given. Errors at level lvl.
local function check_state(st, cell, what, B, fn, lvl)
  if st == nil then return nil end
  local n, names = cell.n_states, cell.state_names
  if type(n) ~= "number" or type(names) ~= "table" then return st end -- a foreign cell
  local function fail(msg, ...) error(string.format("%s: %s " .. msg, fn, what, ...), lvl + 1) end
  local list_s = "{" .. table.concat(names, ", ") .. "}"
  if recur.is_tensor(st) then
    if n ~= 1 then
      fail("must be a list %s (a %s cell's state), got a single tensor", list_s,
        tostring(cell.kind))
    end
    st = { st }
  elseif type(st) ~= "table" then
    fail("must be a list of tensors %s, got %s", list_s, type(st))
  end
  for k in pairs(st) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      fail("must be a list %s (a %s cell's state), got a key %s", list_s, tostring(cell.kind),
        tostring(k))
    end
  end
  for k = 1, n do
    local t = st[k]
    if t ~= nil then
      if not recur.is_tensor(t) then
        error(string.format("%s: %s[%d] (%s) must be a tensor, got %s", fn, what, k,
          tostring(names[k]), type(t)), lvl)
      end
      if B and (t:dim() ~= 2 or t:size(1) ~= B or t:size(2) ~= cell.hidden) then
        error(string.format("%s: %s[%d] (%s) must have shape [%d, %d], got [%s]", fn, what, k,
          tostring(names[k]), B, cell.hidden, table.concat(t:size(), ", ")), lvl)
      end
    end
  end
  return st
end

local function shape_of(x)
  return recur.is_tensor(x) and ("[" .. table.concat(x:size(), ", ") .. "]") or type(x)
end

-- cell:forward(x [T, B, I], {state = {h, c}, lengths = lens}) -> y [T, B, H], {h, c}
-- (the arguments are checked here, so that errors name forward and the caller's line)
function fused:forward(x, opts)
  opts = opts or {}
  check_opts(opts, "rnn forward")
  if not recur.is_tensor(x) or x:dim() ~= 3 then
    error(string.format("rnn forward: x must have shape [T, B, %d], got %s", self.input,
      shape_of(x)), 2)
  end
  local st = check_state(opts.state, self, "state", nil, "rnn forward", 3) or {}
  local lens = lengths_list(opts.lengths, x:size(1), x:size(2), "rnn forward")
  local y, a, b = self:_forward(x, st[1], st[2], lens)
  return y, { a, b }
end

-- cell:step(x_t [B, I], state) -> y_t [B, H], new state
function fused:step(x, state)
  if not recur.is_tensor(x) then
    error(string.format("rnn step: x must be a tensor [B, %d], got %s", self.input, type(x)), 2)
  end
  local st = check_state(state, self, "state", nil, "rnn step", 3) or {}
  local y, a, b = self:_step(x, st[1], st[2])
  return y, { a, b }
end

function fused:zero_state(B)
  return zeros_state(self.n_states, check_int(B, "B", "zero_state", 0), self.hidden)
end

-- ---------------------------------------------------------------------------------------
-- Cells written in Lua

local LuaCell = {}
LuaCell.__index = LuaCell

-- def: { name =, state_names = {...}, param_names = {...},
--        new_params = function(input, hidden, opts) -> {name = tensor},  (optional if
--                     opts.params is given)
--        step = function(p, x_t, state, opts) -> out, new_state }
-- opts: input, hidden, params (name -> tensor, to share tensors), and the def's own options.
function rnn.LuaCell(def, opts)
  check_opts(opts, "rnn.LuaCell")
  if type(def) ~= "table" or type(def.step) ~= "function" or type(def.state_names) ~= "table"
      or type(def.param_names) ~= "table" then
    error("rnn.LuaCell: the definition needs step, state_names and param_names", 2)
  end
  local self = setmetatable({}, LuaCell)
  self.def = def
  self.kind = def.name or "lua"
  self.input = check_int(opts.input, "input", "rnn.LuaCell", 1)
  self.hidden = check_int(opts.hidden, "hidden", "rnn.LuaCell", 1)
  self.state_names = def.state_names
  self.n_states = #def.state_names
  self.fused = false
  self.opts = opts
  if opts.params then
    self.p = opts.params
  elseif def.new_params then
    self.p = def.new_params(self.input, self.hidden, opts)
  else
    error("rnn.LuaCell: give params or a definition with new_params", 2)
  end
  for _, name in ipairs(def.param_names) do
    if not recur.is_tensor(self.p[name]) then
      error(string.format("rnn.LuaCell: parameter %s is missing", name), 2)
    end
  end
  return self
end

function LuaCell:parameters()
  local out = {}
  for i, name in ipairs(self.def.param_names) do out[i] = { name, self.p[name] } end
  return out
end

function LuaCell:zero_state(B)
  return zeros_state(self.n_states, check_int(B, "B", "zero_state", 0), self.hidden)
end

function LuaCell:step(x, state)
  if not recur.is_tensor(x) then
    error(string.format("rnn step: x must be a tensor [B, %d], got %s", self.input, type(x)), 2)
  end
  if x:dim() ~= 2 or x:size(2) ~= self.input then
    error(string.format("rnn step: x must have shape [B, %d], got [%s]", self.input,
      table.concat(x:size(), ", ")), 2)
  end
  if state == nil then state = self:zero_state(x:size(1)) end
  if recur.is_tensor(state) then state = { state } end
  if type(state) ~= "table" then
    error(string.format("rnn step: state must be a list of tensors {%s}, got %s",
      table.concat(self.state_names, ", "), type(state)), 2)
  end
  for k = 1, self.n_states do
    if not recur.is_tensor(state[k]) then
      error(string.format("rnn step: state[%d] (%s) must be a tensor, got %s", k,
        tostring(self.state_names[k]), type(state[k])), 2)
    end
  end
  return self.def.step(self.p, x, state, self.opts)
end

function LuaCell:forward(x, opts)
  return rnn.unroll(self, x, opts)
end

-- Runs cell:step over x [T, B, I], masking finished sequences (differentiable).
function rnn.unroll(cell, x, opts)
  opts = opts or {}
  check_opts(opts, "rnn.unroll")
  if not recur.is_tensor(x) or x:dim() ~= 3 then
    error("rnn.unroll: x must be a [T, B, I] tensor", 2)
  end
  local T, B = x:size(1), x:size(2)
  local lens = lengths_list(opts.lengths, T, B, "rnn.unroll")
  local state = opts.state
  if recur.is_tensor(state) then state = { state } end
  if state == nil then state = {} end
  local full = {}
  for k = 1, cell.n_states do full[k] = state[k] or recur.zeros(B, cell.hidden) end
  state = full
  local ys = {}
  for t = 1, T do
    local out, new = cell:step(x:select(1, t), state)
    if lens then
      local m = {}
      for b = 1, B do m[b] = { lens[b] >= t and 1 or 0 } end
      local mask = recur.tensor(m)
      local kept = {}
      for k = 1, cell.n_states do kept[k] = recur.where(mask, new[k], state[k]) end
      new = kept
      out = out * mask
    end
    state = new
    ys[t] = out
  end
  local y
  if T == 0 then y = recur.zeros(0, B, cell.hidden) else y = recur.stack(ys, 1) end
  return y, state
end

-- Checked methods (recur._methods): cell.forward(x) or LuaCell.step(x) say so at the
-- caller's line. The fused cells' Lua methods live in their userdata's method table.
local methods = require "recur._methods"
methods.wrap_all(fused, "rnn.Cell", function(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__index") == fused
end, "an rnn cell", "cell")
methods.wrap_all(LuaCell, "rnn.LuaCell", function(v) return getmetatable(v) == LuaCell end,
  "an rnn.LuaCell", "cell", LuaCell)

-- ---------------------------------------------------------------------------------------
-- Modules: a cell as a module, and the layer (both recur.nn modules: their parameters join
-- the model's one flat buffer)

local nn = recur.nn

local function cell_name(cell) return cell.kind or "lua" end

-- CellModule(cell): any cell (fused, LuaCell, or an object with the same methods) as an
-- nn.Module. Its parameters are the cell's own tensors, registered under the cell's names
-- (W_x, W_h, b, ...; cell:parameters() order): the fused cells' are parameter tensors already;
-- a LuaCell's tensor that is not one (recur.uniform(...):requires_grad(true) in new_params,
-- or a plain tensor given through params) is replaced by a parameter tensor holding the same
-- values (nn.to_parameter), in the cell's table too (cell.p[name]), so that it can move into
-- the flat buffer; cells that shared a plain tensor share its replacement.
-- forward(x, {state =, lengths =}), step(x_t, state) and zero_state(B) are the cell's; the
-- cell itself is module.cell.
local CellModule = nn.Module:extend("RNNCell")
rnn.CellModule = CellModule

-- plain tensor -> the parameter tensor that replaced it in a LuaCell, so that cells sharing
-- a plain tensor (through params) go on sharing one parameter tensor
local replaced = setmetatable({}, { __mode = "k" })

function CellModule:init(cell)
  local ok = (type(cell) == "userdata" or type(cell) == "table") and not nn.is_module(cell)
  if ok then
    local okp, ps = pcall(function() return cell.parameters end)
    ok = okp and type(ps) == "function"
  end
  if not ok then
    error("rnn.CellModule: expected a cell (rnn.Cell, rnn.LuaCell or an object with "
      .. "parameters, forward, step and zero_state), got " .. type(cell), 3)
  end
  rawset(self, "cell", cell)
  for _, np in ipairs(cell:parameters()) do
    local name, t = np[1], np[2]
    if type(name) ~= "string" or name == "" or name:find("%.") or CellModule[name] ~= nil
        or rawget(self, name) ~= nil then
      error(string.format("rnn.CellModule: the cell's parameter name %s cannot be a module "
        .. "field (empty, dotted, or taken by a method or field)", tostring(name)), 3)
    end
    if not nn.is_parameter(t) then
      if getmetatable(cell) ~= LuaCell then
        error(string.format("rnn.CellModule: parameter %s of the %s cell is not a parameter "
          .. "tensor (make it with recur.nn.to_parameter so that it can join a flat buffer)",
          name, cell_name(cell)), 3)
      end
      local plain = t
      t = replaced[plain] or nn.to_parameter(plain)
      replaced[plain] = t
      cell.p[name] = t
    end
    self:register_parameter(name, t)
  end
end

function CellModule:forward(x, opts) return self.cell:forward(x, opts) end
function CellModule:step(x, state) return self.cell:step(x, state) end
function CellModule:zero_state(B) return self.cell:zero_state(B) end

function CellModule:extra_repr()
  local c = self.cell
  return string.format("%s cell%s (%d -> %d)", cell_name(c),
    type(c) == "userdata" and "" or ", Lua", c.input, c.hidden)
end

-- multiply-adds of a call: one per element of each 2-D parameter (x W_x, h W_h, ...) per
-- step and sequence (the gate nonlinearities and elementwise work are not counted)
function CellModule:macs(ins)
  local x = ins[1]
  if not recur.is_tensor(x) or x:dim() < 2 then return 0 end
  local rows = x:numel() // math.max(1, x:size(x:dim()))
  local per = 0
  for _, n in ipairs(self._params) do
    local t = rawget(self, n)
    if t:dim() == 2 then per = per + t:numel() end
  end
  return rows * per
end

-- errors at level 4: make_cell, RNN:init, Module.new, the caller of rnn.RNN{...}
local function make_cell(spec, input, hidden, opts)
  if type(spec) == "string" and is_fused_type[spec] then
    if opts.reset_after and spec ~= "gru" then
      error("rnn.RNN: reset_after applies to gru cells only, got " .. spec, 4)
    end
    return rnn.Cell { cell = spec, input = input, hidden = hidden, reset_after = opts.reset_after }
  elseif type(spec) == "table" and spec.step then
    local o = {}
    for k, v in pairs(opts.cell_opts or {}) do o[k] = v end
    o.input, o.hidden = input, hidden
    return rnn.LuaCell(spec, o)
  elseif type(spec) == "function" then
    return spec(input, hidden, opts)
  end
  error(string.format("rnn.RNN: cell must be a cell type (%s), a Lua cell definition or a "
    .. "constructor function, got %s", table.concat(rnn.cell_types, ", "),
    type(spec) == "string" and spec or type(spec)), 4)
end

-- RNN{cell =, input =, hidden =, layers = 1, dropout = 0, batch_first = false,
--     reset_after = false, cell_opts = {}, connection = nil, highway_bias = -1}: a stack of
-- cells, an nn.Module (recur.nn.RNN is the same class). Children layer1 .. layerL
-- (CellModule); parameters "layer<l>.<name>" ("layer1.W_x", "layer1.W_h", "layer1.b",
-- "layer2.W_x", ...); self.cells[l] is layer l's cell.
-- connection (Written Memories' extensions) wraps every layer l >= 2, whose input x is the
-- previous layer's output (after dropout) and whose cell output is h(x):
--   "residual": y = h(x) + x
--   "highway":  y = T(x) h(x) + (1 - T(x)) x, T(x) = s(x W_T^T + b_T), per step; children
--               gate2 .. gateL (nn.Linear(H, H), parameters "gate<l>.weight", "gate<l>.bias":
--               Glorot-uniform weight, bias highway_bias, -1 by default, so that a layer
--               starts by carrying its input, as Srivastava et al. advise)
-- Only the outputs change; each cell's state is its own. Layer 1 (input size I) has none.
local CONNECTIONS = { residual = true, highway = true }
local RNN = nn.Module:extend("RNN")
rnn.RNN = RNN

function RNN:init(opts)
  check_opts(opts, "rnn.RNN", 4)
  self.cell_type = opts.cell or "lstm"
  self.input = check_int(opts.input, "input", "rnn.RNN", 1, 4)
  self.hidden = check_int(opts.hidden, "hidden", "rnn.RNN", 1, 4)
  self.layers = check_int(opts.layers or 1, "layers", "rnn.RNN", 1, 4)
  local p = opts.dropout or 0
  if type(p) ~= "number" or not (p >= 0 and p < 1) then
    error(string.format("rnn.RNN: dropout must be a number in [0, 1), got %s", tostring(p)), 3)
  end
  self.dropout = p
  local conn = opts.connection
  if conn ~= nil and not CONNECTIONS[conn] then
    error(string.format('rnn.RNN: connection must be nil, "residual" or "highway", got %s',
      tostring(conn)), 4)
  end
  self.connection = conn
  local hb = opts.highway_bias or -1
  if type(hb) ~= "number" then
    error("rnn.RNN: highway_bias must be a number, got " .. type(hb), 4)
  end
  self.batch_first = opts.batch_first and true or false
  -- the batch dimension of x (Module:summary counts multiply-adds per sequence)
  self.batch_dim = self.batch_first and 1 or 2
  self.cells = {}
  local mods = {}
  for l = 1, self.layers do
    local cell = make_cell(self.cell_type, l == 1 and self.input or self.hidden, self.hidden,
      opts)
    self.cells[l] = cell
    mods[l] = CellModule(cell)
    self["layer" .. l] = mods[l]
  end
  rawset(self, "_layer_modules", mods)
  if conn == "highway" then
    for l = 2, self.layers do
      self["gate" .. l] = nn.Linear(self.hidden, self.hidden, { bias_init = nn.init.constant(hb) })
    end
  end
  self.n_states = self.cells[1].n_states
  self.state_names = self.cells[1].state_names
  -- not packed here: the model it joins packs everything once (packing it first would
  -- hold its values twice while the model's buffer fills); see recur.nn's top comment
end

function RNN:extra_repr()
  local ct = self.cell_type
  local name = type(ct) == "string" and ct or cell_name(self.cells[1])
  return string.format("RNN(%s, %d -> %d, %d layer%s%s%s%s)", name, self.input, self.hidden,
    self.layers, self.layers == 1 and "" or "s",
    self.dropout > 0 and string.format(", dropout %g", self.dropout) or "",
    self.connection and (", " .. self.connection) or "",
    self.batch_first and ", batch_first" or "")
end

function RNN:zero_state(B)
  local s = {}
  for l, cell in ipairs(self.cells) do s[l] = cell:zero_state(B) end
  return s
end

-- inverted dropout on a non-recurrent connection (training only)
function RNN:_drop(x)
  if not self.training or self.dropout == 0 then return x end
  local keep = 1 - self.dropout
  return x * (recur.bernoulli(x:size(), keep) / keep)
end

-- layer l's output from its input x and its cell's output y (same shapes: [..., H])
function RNN:_connect(l, x, y)
  local conn = self.connection
  if conn == nil or l == 1 then return y end
  if conn == "residual" then return y + x end
  local t = self["gate" .. l](x):sigmoid()
  return t * y + (1 - t) * x
end

-- state: nil or a list with one cell state per layer, each checked against [B, hidden]
local function check_layer_state(self, state, B, fn)
  if state == nil then return end
  if type(state) ~= "table" then
    error(string.format("%s: state must be a list with one entry per layer, got %s", fn,
      type(state)), 3)
  end
  for k in pairs(state) do
    if math.type(k) ~= "integer" or k < 1 or k > self.layers then
      error(string.format("%s: state must be a list with one entry per layer (%d), got a key %s",
        fn, self.layers, tostring(k)), 3)
    end
  end
  for l = 1, self.layers do check_state(state[l], self.cells[l], "state[" .. l .. "]", B, fn, 4) end
end

-- The whole stack on two threads when it applies: fused cells of one kind, no connection, no
-- dropout at work, no summary hook on a layer. The C side runs two or more layers as a
-- wavefront (runtime/rnn_stack.c: layer l's step t beside layer l+1's step t-1), and one
-- vanilla, LSTM or GRU layer with its batch split between the threads (runtime/rnn_split.c).
-- nil when it does not apply (the C side also declines when it would not pay: one BLAS
-- thread, short sequences); the layers then run one by one.
local function stack_forward(self, x, state, lens)
  if type(self.cell_type) ~= "string" or not is_fused_type[self.cell_type]
      or self.connection ~= nil or (self.training and self.dropout > 0) then
    return nil
  end
  for _, m in ipairs(self._layer_modules) do
    if rawget(m, "_hook") then return nil end
  end
  local st
  if state then
    st = {}
    for l = 1, self.layers do
      local s = state[l]
      if recur.is_tensor(s) then s = { s } end
      st[l] = s
    end
  end
  local y, fin = recur._rnn_stack_forward(self.cells, x, st, lens)
  if not y then return nil end
  return y, fin
end

-- layer:forward(x, {state = {{h, c}, ...}, lengths = lens}) -> outputs, {{h, c}, ...}
-- (also layer(x, opts)); each layer runs through its CellModule (Module:summary sees them)
function RNN:forward(x, opts)
  opts = opts or {}
  check_opts(opts, "RNN forward")
  if not recur.is_tensor(x) or x:dim() ~= 3 then
    error(string.format("RNN forward: x must be a 3-D tensor ([%s, %d]), got %s",
      self.batch_first and "B, T" or "T, B", self.input,
      recur.is_tensor(x) and ("[" .. table.concat(x:size(), ", ") .. "]") or type(x)), 2)
  end
  if self.batch_first then x = x:transpose(1, 2) end
  check_layer_state(self, opts.state, x:size(2), "RNN forward")
  local lens = lengths_list(opts.lengths, x:size(1), x:size(2), "RNN forward")
  local y, fin = stack_forward(self, x, opts.state, lens)
  if y then
    if self.batch_first then y = y:transpose(1, 2) end
    return y, fin
  end
  local out, finals = x, {}
  for l, m in ipairs(self._layer_modules) do
    out = self:_drop(out)
    local y, st = m(out, { state = opts.state and opts.state[l], lengths = lens })
    out, finals[l] = self:_connect(l, out, y), st
  end
  out = self:_drop(out)
  if self.batch_first then out = out:transpose(1, 2) end
  return out, finals
end

-- layer:step(x_t [B, I], state) -> out [B, H], new state (same numbers as forward)
function RNN:step(x, state)
  if not recur.is_tensor(x) then
    error(string.format("RNN step: x must be a tensor [B, %d], got %s", self.input, type(x)), 2)
  end
  check_layer_state(self, state, x:dim() == 2 and x:size(1) or nil, "RNN step")
  local out, finals = x, {}
  for l, cell in ipairs(self.cells) do
    out = self:_drop(out)
    local y, st = cell:step(out, state and state[l])
    out, finals[l] = self:_connect(l, out, y), st
  end
  return self:_drop(out), finals
end

-- Loads PyTorch weights (torch.nn.LSTM, RNN with tanh, GRU) into a layer of the same cell
-- type and shape. sd maps PyTorch's names (weight_ih_l0, weight_hh_l0, bias_ih_l0,
-- bias_hh_l0, ...) to tensors (or nested lists) in PyTorch's layout:
--   W_x = weight_ih^T, W_h = weight_hh^T (same gate order: i f g o for LSTM, r z n for GRU)
--   lstm, rnn: b = bias_ih + bias_hh
--   gru (reset_after = true): b = bias_ih + [bias_hh_r, bias_hh_z, 0], b_hn = bias_hh_n
function rnn.from_torch(layer, sd)
  if type(layer) ~= "table" then
    error("rnn.from_torch: argument #1 must be an rnn.RNN layer, got " .. type(layer), 2)
  end
  local kind = layer.cell_type
  if kind ~= "lstm" and kind ~= "rnn" and kind ~= "gru" then
    error("rnn.from_torch: only lstm, rnn and gru layers have PyTorch twins, got "
      .. tostring(kind), 2)
  end
  if kind == "gru" and not layer.cells[1].reset_after then
    error("rnn.from_torch: PyTorch's GRU is the reset_after form; build the layer with "
      .. "reset_after = true", 2)
  end
  local function get(name, shape)
    local v = sd[name]
    if v == nil then error("rnn.from_torch: " .. name .. " is missing", 3) end
    if not recur.is_tensor(v) then v = recur.tensor(v) end
    local got = v:size()
    local ok = #got == #shape
    for k = 1, #shape do ok = ok and got[k] == shape[k] end
    if not ok then
      error(string.format("rnn.from_torch: %s has shape [%s], expected [%s]", name,
        table.concat(got, ", "), table.concat(shape, ", ")), 3)
    end
    return v
  end
  local H = layer.hidden
  local G = kind == "lstm" and 4 or kind == "gru" and 3 or 1
  recur.no_grad(function()
    for l, cell in ipairs(layer.cells) do
      local sfx = "_l" .. (l - 1)
      local p = {}
      for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
      p.W_x:copy_(get("weight_ih" .. sfx, { G * H, cell.input }):t())
      p.W_h:copy_(get("weight_hh" .. sfx, { G * H, H }):t())
      local bi, bh = get("bias_ih" .. sfx, { G * H }), get("bias_hh" .. sfx, { G * H })
      if kind == "gru" then
        p.b:copy_(bi + recur.cat({ bh:narrow(1, 1, 2 * H), recur.zeros(H) }, 1))
        p.b_hn:copy_(bh:narrow(1, 2 * H + 1, H))
      else
        p.b:copy_(bi + bh)
      end
    end
  end)
  return layer
end

-- Each sequence's output at its last step: outputs [T, B, H] (or [B, T, H] with
-- batch_first) -> [B, H]. Every length must be at least 1.
function rnn.last(outputs, lengths, opts)
  opts = opts or {}
  if not recur.is_tensor(outputs) or outputs:dim() ~= 3 then
    error("rnn.last: outputs must be a 3-D tensor", 2)
  end
  if opts.batch_first then outputs = outputs:transpose(1, 2) end
  local T, B, H = outputs:size(1), outputs:size(2), outputs:size(3)
  local lens = lengths_list(lengths, T, B, "rnn.last")
  if not lens then error("rnn.last: lengths are required", 2) end
  for b = 1, B do
    if lens[b] < 1 then
      error(string.format("rnn.last: lengths[%d] is 0: that sequence has no output", b), 2)
    end
  end
  if B == 0 then return recur.zeros(0, H) end
  local idx = recur.tensor(lens):view(1, B, 1):expand(1, B, H)
  return outputs:gather(1, idx):squeeze(1)
end

-- Truncated BPTT in both styles (recur.tbptt, docs/tbptt.md).
function rnn.tbptt_tf(opts) return require("recur.tbptt").tf(opts) end
function rnn.tbptt_true(opts) return require("recur.tbptt").true_bptt(opts) end

-- Submodules under recur/rnn/ load on first use: recur.rnn.initial_state (the initial-state
-- strategies, docs/initial-states.md).
local submodules = { initial_state = "recur.rnn.initial_state" }
setmetatable(rnn, {
  __index = function(t, k)
    local name = submodules[k]
    if not name then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})

return rnn
