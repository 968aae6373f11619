-- The rest of the Lua surface fed bad arguments (bad_input_spec.lua covers recur.* and the
-- tensor methods): every function of recur.nn, recur.optim, recur.rnn, recur.tbptt,
-- recur.checkpoint, recur.data, recur.json and the internal C tables, every class
-- constructor, and every method of every object they make (modules, optimizers, fused and
-- Lua cells, RNN layers, vocabularies, iterators), enumerated from the tables and
-- metatables so that new ones are swept too. Methods are also called with the wrong kind of
-- self (another userdata, a tensor, a table...), and userdata are used after close, closed
-- twice and have their __gc called by hand. Each call must work or raise an error that
-- names its function; the process must live on.
local recur = require "recur"
local nn, optim, rnn, data = recur.nn, recur.optim, recur.rnn, recur.data

local TMP = os.tmpname() -- an existing file: the file-writing functions write here

local function closed(make)
  local o = make()
  do local _ <close> = o end
  return o
end

local function params() return { recur.ones(2, 3):requires_grad(true), recur.zeros(3):requires_grad(true) } end

-- one object of every kind a script can make, fresh on each call (methods change them)
local function objects()
  return {
    tensor = recur.ones(2, 3),
    optimizer = optim.SGD(params(), { lr = 0.1 }),
    cell = rnn.Cell { cell = "lstm", input = 3, hidden = 2 },
    module = nn.Linear(3, 2),
    vocab = data.Vocab.build("abcab"),
    iterator = data.lm_batches(recur.arange(1, 41), { batch = 2, steps = 3 }),
  }
end

-- argument values to combine: wrong types, odd numbers, every kind of object, closed ones
local function values()
  local o = objects()
  local v = {
    nil, true, "x", {}, { 1, "a" }, function() end, 0, -1, 1.5, 0 / 0, math.huge,
    2 ^ 62, math.mininteger, 3, recur.ones(2, 3), recur.zeros(0), recur.tensor(1),
    recur.ones(3, 2):t(), closed(function() return recur.ones(2) end),
    recur.full({ 2, 3 }, 0 / 0), coroutine.create(function() end), io.stdout,
    o.optimizer, o.cell, o.module, o.vocab, o.iterator, { o.module },
    closed(function() return optim.Adam(params(), { lr = 1 }) end),
    closed(function() return rnn.Cell { cell = "gru", input = 3, hidden = 2 } end),
    { x = recur.ones(3, 2, 3), n = 2, lr = 0.1, cell = "rnn", input = 3, hidden = 2, batch = 2 },
  }
  return v, 31
end

-- The message must name the function: after any "file:line: " position it starts with
-- "name: " (a word, dots allowed: "rnn.Cell: ", "tbptt.tf: "), or it is Lua's
-- "bad argument #i to 'name'" for a real name. Errors Lua raises itself inside the library
-- ("attempt to index a nil value", "bad argument #1 to 'for iterator'") do not.
local function names_fn(msg, name)
  msg = tostring(msg):gsub("^[^:\n]*:%d+: ", "")
  if msg:find("attempt to ", 1, true) or msg:find("'for iterator'", 1, true) then return false end
  -- m[nil] = v and m[0/0] = v on a module say what they say on any table
  if name:match(":__newindex$") and (msg == "table index is nil" or msg == "table index is NaN") then
    return true
  end
  if msg:sub(1, #name + 1) == name .. ":" then return true end
  return msg:match("^[%a_][%w_%.:]*[%w_]: ") ~= nil or msg:match("^[%a_][%w_%.]* [%a_][%w_]*: ") ~= nil
    or msg:match("^[%a_][%w_]*:[%a_][%w_]* ") ~= nil -- "Module:forward is not implemented"
    or msg:find("^bad argument #%d+ to '[%a_][%w_:%.]*'") ~= nil
end

local calls_total = 0

-- Calls f with one, two and three arguments from the value list (after the fixed `pre`
-- arguments: self); returns the distinct bad messages.
local function try_all(name, f, pre, bad, seen)
  local vals, nv = values()
  local function call(...)
    calls_total = calls_total + 1
    local ok, err = pcall(f, ...)
    if not ok and (type(err) ~= "string" or not names_fn(err, name)) then
      local m = name .. ": " .. tostring(err)
      if not seen[m] then
        seen[m] = true
        bad[#bad + 1] = m
      end
    end
  end
  local n = pre and 1 or 0
  local function with(...)
    if n == 1 then call(pre, ...) else call(...) end
  end
  with()
  for i = 1, nv do with(vals[i]) end
  for i = 1, nv, 2 do
    for j = 1, nv, 3 do
      with(vals[i], vals[j])
      with(vals[j], vals[i], vals[i])
    end
  end
end

-- file writers get a real temporary path instead of "x" (they must not litter the tree)
local function writer(f)
  return function(p, ...)
    if p == "x" then p = TMP end
    local r = table.pack(pcall(f, p, ...)) -- through pcall, as the other calls: no call-site name
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end
end
-- dataset loaders look in a directory that does not exist (never the real data root)
local function loader(f)
  return function(o, ...)
    if o == nil then o = {} end
    if type(o) == "table" and getmetatable(o) == nil and o.dir == nil and o.path == nil then
      local c = { dir = "/nonexistent/recur-data" }
      for k, v in pairs(o) do c[k] = v end
      o = c
    end
    return f(o, ...)
  end
end
local LOADERS = { mnist = true, fashion_mnist = true, moby_dick = true, shakespeare = true,
  tiny_shakespeare = true, brown_words = true, brown_genres = true, names = true, char_corpus = true }

-- a Lua function whose first parameter is self (a method: swept through an object)
local function is_method(f)
  return debug.getinfo(f, "S").what == "Lua" and debug.getlocal(f, 1) == "self"
end

-- every function in t and its plain sub-tables, as "prefix.key" -> function; in a class
-- table (t.__index == t, e.g. data.Vocab) only the functions that are not methods
local function functions_of(t, prefix, out, seen)
  out, seen = out or {}, seen or {}
  if seen[t] then return out end
  seen[t] = true
  local class = rawget(t, "__index") == t
  for k, v in pairs(t) do
    local name = prefix .. "." .. tostring(k)
    if type(v) == "function" and not (class and (is_method(v) or tostring(k):match("^__"))) then
      out[name] = v
    elseif type(v) == "table" and getmetatable(v) == nil and type(k) == "string" then
      functions_of(v, name, out, seen)
    end
  end
  return out
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

-- the methods of an object: every function reachable through its metatable's __index chain
local function methods_of(o)
  local out, seen = {}, {}
  local mt = getmetatable(o)
  while type(mt) == "table" and not seen[mt] do
    seen[mt] = true
    local idx = rawget(mt, "__index")
    if type(idx) ~= "table" then break end
    for k, v in pairs(idx) do
      if type(v) == "function" and type(k) == "string" and out[k] == nil then out[k] = v end
    end
    mt = getmetatable(idx)
  end
  if type(o) == "table" then
    for k, v in pairs(o) do
      if type(v) == "function" and type(k) == "string" and out[k] == nil then out[k] = v end
    end
  end
  return out
end

-- The nn classes: every callable table of recur.nn, with a valid instance made from the
-- first argument list that works (a new class needs no change here unless none does).
local CTOR_ARGS = { {}, { 3 }, { 3, 2 }, { 0.5 }, { { nn.Linear(3, 2), nn.Tanh() } } }
local function nn_classes()
  local out = {}
  for _, k in ipairs(sorted_keys(nn)) do
    local v = nn[k]
    local mt = type(v) == "table" and getmetatable(v)
    if mt and rawget(mt, "__call") then out[k] = v end
  end
  return out
end
local function instance_of(cls)
  for _, a in ipairs(CTOR_ARGS) do
    local ok, m = pcall(cls, table.unpack(a))
    if ok then return m end
  end
end

-- A Lua cell definition (docs/custom-cells.md) for rnn.LuaCell.
local lua_cell_def = {
  name = "tanh_rnn", state_names = { "h" }, param_names = { "W", "U" },
  new_params = function(i, h) return { W = recur.ones(i, h), U = recur.ones(h, h) } end,
  step = function(p, x, s) local h = (x:matmul(p.W) + s[1]:matmul(p.U)):tanh() return h, { h } end,
}

-- The class chain of a module: its class, the parent class, ... up to nn.Module.
local function class_chain(v)
  local out, c = {}, getmetatable(v)
  while type(c) == "table" do
    out[#out + 1] = c
    local mt = getmetatable(c)
    c = mt and rawget(mt, "__index")
  end
  return out
end

-- Whether v may be self for method m of proto's kind. A module's method takes instances of
-- the class that defines it (and its subclasses): Module's own methods any module,
-- Linear.forward a Linear. A method stored in an object itself (an iterator's next) takes
-- that object only; a class's method (Vocab.encode) any object of that class.
local function is_self_of(proto, m, v)
  if nn.is_module(proto) then
    if not nn.is_module(v) then return false end
    local def
    for _, c in ipairs(class_chain(proto)) do
      if rawget(c, m) ~= nil then def = c break end
    end
    for _, c in ipairs(class_chain(v)) do
      if c == def then return true end
    end
    return false
  end
  if type(proto) == "table" and rawget(proto, m) ~= nil then return rawequal(v, proto) end
  return getmetatable(v) ~= nil and getmetatable(v) == getmetatable(proto)
end

-- a checked Lua method's message for a wrong self: "<Class>:<method>: called with ... as self"
local function names_self(msg, method)
  msg = msg:gsub("^[^:\n]*:%d+: ", "")
  return msg:match("^[%a_][%w_%.]*:([%w_]+): called with .* as self, not ") == method
end

-- every kind of object with a constructor making a fresh valid one
local function object_makers()
  local makers = {
    optimizer_SGD = function() return optim.SGD(params(), { lr = 0.1, momentum = 0.9 }) end,
    optimizer_Adagrad = function() return optim.Adagrad(params(), { lr = 0.1 }) end,
    optimizer_RMSProp = function() return optim.RMSProp(params(), { lr = 0.1, centered = true }) end,
    optimizer_Adam = function() return optim.Adam(params(), { lr = 0.1 }) end,
    optimizer_AdamW = function() return optim.AdamW(params(), { lr = optim.schedules.constant(0.1) }) end,
    fused_cell = function() return rnn.Cell { cell = "lstm", input = 3, hidden = 2 } end,
    fused_gru = function() return rnn.Cell { cell = "gru", input = 3, hidden = 2, reset_after = true } end,
    lua_cell = function() return rnn.LuaCell(lua_cell_def, { input = 3, hidden = 2 }) end,
    rnn_layer = function() return rnn.RNN { cell = "gru", input = 3, hidden = 2, layers = 2 } end,
    vocab_chars = function() return data.Vocab.build("hello world") end,
    vocab_words = function() return data.Vocab.build({ "a b", "b c" }, { mode = "word" }) end,
    iter_batches = function()
      return data.batches({ x = recur.ones(5, 2), y = recur.arange(1, 6) }, { batch = 2 })
    end,
    iter_lm = function() return data.lm_batches(recur.arange(1, 41), { batch = 2, steps = 3 }) end,
    iter_padded = function()
      return data.padded_batches(data.ragged({ { 1, 2 }, { 3 }, { 4, 5, 6 } }, { 1, 2, 1 }), { batch = 2 })
    end,
    iter_bucketed = function()
      return data.bucketed_batches(data.ragged({ { 1, 2 }, { 3 }, { 4, 5, 6 } }), { batch = 2, num_buckets = 1 })
    end,
  }
  for k, cls in pairs(nn_classes()) do
    makers["nn_" .. k] = function() return instance_of(cls) end
  end
  return makers
end

-- file writers and loaders wrapped
local function wrap(name, f)
  local last = name:match("[^%.]+$")
  if last == "save" or last == "write" then return writer(f) end
  if LOADERS[last] and name:match("^data%.") then return loader(f) end
  return f
end

describe("bad input beyond tensors", function()
  local print_ = print
  setup(function() _G.print = function() end end) -- module:summary() prints
  teardown(function() _G.print = print_ end)
  teardown(function() os.remove(TMP) end)

  it("every library function raises errors that name it and never crashes", function()
    local fns = {}
    for mod, t in pairs { nn = nn, optim = optim, rnn = rnn, tbptt = recur.tbptt,
      checkpoint = recur.checkpoint, data = data, json = recur.json, repl = recur.repl, _nn = recur._nn,
      _data = recur._data, _optim = recur._optim, _safetensors = recur._safetensors } do
      functions_of(t, mod, fns)
    end
    fns["recur.gradcheck"] = recur.gradcheck
    fns["recur.save"] = recur.save
    fns["recur.load"] = recur.load
    fns["recur.Function"] = recur.Function
    fns["recur._rnn_cell"] = recur._rnn_cell
    for k, cls in pairs(nn_classes()) do fns["nn." .. k .. "()"] = function(...) return cls(...) end end
    local bad, seen, before = {}, {}, calls_total
    local n = 0
    for _, name in ipairs(sorted_keys(fns)) do
      -- the Lua half's private helpers (nn._as_init...) are not API; the C tables are swept
      if not name:match("%._[^_][^%.]*$") then
        n = n + 1
        try_all(name, wrap(name, fns[name]), nil, bad, seen)
      end
    end
    print_(string.format("\n%d functions, %d calls", n, calls_total - before))
    if os.getenv("BADIN_DUMP") then print_(table.concat(bad, "\n")) end
    assert.same({}, bad)
  end)

  it("userdata metatables are out of reach; close twice, use after close", function()
    for _, o in ipairs { optim.Adam(params(), { lr = 1 }), rnn.Cell { cell = "rnn", input = 2, hidden = 2 } } do
      local mt = getmetatable(o)
      assert.is_table(mt)
      assert.is_nil(rawget(mt, "__gc"))
      assert.is_nil(rawget(mt, "__close"))
      assert.is_table(mt.__index) -- the methods stay visible
      -- __name is the namespaced type name, the key of the real metatable in the registry
      assert.equal(optim.is_optimizer(o) and "recur.Optimizer" or "recur.RNNCell", mt.__name)
      do local _ <close> = o end
      do local _ <close> = o end -- a second close does nothing
      assert.truthy(tostring(o):find("%(closed%)$"), tostring(o))
      for name, f in pairs(mt.__index) do
        if debug.getinfo(f, "S").what == "C" then
          local ok, e = pcall(f, o, 1)
          assert.is_false(ok, name)
          assert.truthy(e:find("^" .. name .. ": "), e)
          assert.truthy(e:find("argument #1 is a closed "), e)
        end
      end
      -- a method of one kind with an object of the other kind as self
      local other = recur.is_tensor(o) and o or (optim.is_optimizer(o) and rnn.Cell { cell = "rnn", input = 2, hidden = 2 } or optim.SGD(params(), { lr = 1 }))
      for name, f in pairs(mt.__index) do
        if debug.getinfo(f, "S").what == "C" then
          local ok, e = pcall(f, other)
          assert.is_false(ok, name)
          assert.truthy(e:find("^" .. name .. ": argument #1 must be an "), e)
        end
      end
    end
  end)

  it("every method of every object raises errors that name it and never crashes", function()
    local makers = object_makers()
    local bad, seen, before = {}, {}, calls_total
    local n = 0
    for _, kind in ipairs(sorted_keys(makers)) do
      local proto = makers[kind]()
      assert(proto ~= nil, "cannot make a " .. kind)
      local ms = methods_of(proto)
      for _, m in ipairs(sorted_keys(ms)) do
        n = n + 1
        -- a fresh object for each method, as methods change their object
        try_all(kind .. ":" .. m, ms[m], makers[kind](), bad, seen)
        -- the wrong kind of self, alone and with a few arguments. A C method's error must
        -- name a function; a Lua method (not a metamethod: Lua gives those the right self)
        -- called with a self that is not an object of its kind must fail saying so and
        -- naming itself ("Module:parameters: called with a number as self, ...").
        local vals, nv = values()
        local is_c = debug.getinfo(ms[m], "S").what == "C"
        local checked = not is_c and is_method(ms[m]) and not m:match("^__")
        for i = 1, nv do
          local valid = is_self_of(proto, m, vals[i])
          for _, a in ipairs { 1, 3, 15, 25 } do
            local name = kind .. ":" .. m
            calls_total = calls_total + 2
            for _, ok_err in ipairs { table.pack(pcall(ms[m], vals[i])), table.pack(pcall(ms[m], vals[i], vals[a])) } do
              local why
              if checked and not valid then
                if ok_err[1] then
                  why = "worked"
                elseif type(ok_err[2]) ~= "string" or not names_self(ok_err[2], m) then
                  why = tostring(ok_err[2])
                end
              elseif not ok_err[1] and (is_c or checked)
                  and (type(ok_err[2]) ~= "string" or not names_fn(ok_err[2], name)) then
                why = tostring(ok_err[2])
              end
              if why then
                local msg = name .. " (self " .. type(vals[i]) .. "): " .. why
                if not seen[msg] then seen[msg] = true bad[#bad + 1] = msg end
              end
            end
          end
        end
      end
    end
    print_(string.format("\n%d methods, %d calls", n, calls_total - before))
    if os.getenv("BADIN_DUMP") then print_(table.concat(bad, "\n")) end
    assert.same({}, bad)
  end)
end)
