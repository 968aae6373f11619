-- The overflow sweep (run by tests/c/test_overflow.c in a runtime with a 256 MB memory limit,
-- under `make asan` with UBSan aborting on signed overflow): every integer argument of every
-- function a script reaches gets the edges of int64 and of int32 -- as integers, as floats
-- with an integer value, inside shape tables -- with small sane values in the other
-- arguments. Each call must work or raise an error that names its function. Returns the
-- failures (one per line, empty when none) and the number of calls.
local recur = require "recur"

local EDGES = {
  math.maxinteger, math.mininteger, 1 << 62, -(1 << 62), 1 << 31, -(1 << 31), 1 << 32,
  math.mininteger + 1, 2.0 ^ 63,
}
local TABLED = { math.maxinteger, math.mininteger, 1 << 62, -(1 << 62), 1 << 31, 1 << 32 }
local FILL = { 1, -1, 2, 0 }

local calls, failures, seen = 0, {}, {}

-- "name: ..." after any "file:line: " position, or Lua's "bad argument #i to 'name'"
local function names_fn(msg, name)
  msg = tostring(msg)
  local short = name:match("[%w_]+$")
  if msg:lower():find(short:lower(), 1, true) then return true end
  if msg:find("memory limit exceeded", 1, true) then return true end -- the runtime's limit
  msg = msg:gsub("^[^:\n]*:%d+: ", "")
  if msg:find("attempt to ", 1, true) then return false end
  -- "name: ", "rnn forward: " (the op a method forwards to)
  return msg:match("^[%a_][%w_%.]*: ") ~= nil or msg:match("^[%a_][%w_%.]* [%w_%.]+: ") ~= nil
    or msg:find("bad argument #%d+ to '[^?']") ~= nil
end

local function try(name, f, ...)
  calls = calls + 1
  if calls % 500 == 0 then collectgarbage() end -- errors leave garbage; the limit is 256 MB
  local ok, err = pcall(f, ...)
  if not ok and (type(err) ~= "string" or not names_fn(err, name)) then
    local m = name .. ": " .. tostring(err)
    if not seen[m] then
      seen[m] = true
      failures[#failures + 1] = m
    end
  end
end

-- f(self?, a1..an) for n = 1..3: one edge value in one position, sane values elsewhere; every
-- position the same edge; an edge inside a shape table
local function sweep(name, f, self)
  local function call(...)
    if self ~= nil then try(name, f, self, ...) else try(name, f, ...) end
  end
  for n = 1, 3 do
    for p = 1, n do
      for _, v in ipairs(EDGES) do
        for _, fill in ipairs(FILL) do
          local a = { fill, fill, fill }
          a[p] = v
          call(table.unpack(a, 1, n))
        end
      end
    end
  end
  for _, v in ipairs(EDGES) do call(v, v, v) end
  for _, v in ipairs(TABLED) do
    call({ v })
    call({ 2, v })
    call({ v, 2 }, 1)
    call(1, { v })
    call(recur.tensor { 1, 0 }, v)
  end
end

local skip = {
  threads = true, seed = true, save = true, load = true, gradcheck = true, _function_call = true,
  no_grad = true, enable_grad = true, set_grad_enabled = true, Function = true, close = true,
  free = true, config = true, memory = true, reset_peak_memory = true, now = true,
}

local function names(t)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "function" and not skip[k] and k:sub(1, 1) ~= "_" then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

-- recur.*: without a tensor first, with an index tensor first, with a float tensor first
for _, n in ipairs(names(recur)) do
  sweep("recur." .. n, recur[n])
  sweep("recur." .. n, recur[n], recur.tensor { 0, 1 })
  sweep("recur." .. n, recur[n], recur.ones(2, 3))
end
-- tensor methods on a few shapes (fresh ones: in-place methods change them)
for _, n in ipairs(names(recur.Tensor)) do
  for _, make in ipairs {
    function() return recur.ones(2, 3) end, function() return recur.arange(1, 6) end,
    function() return recur.zeros(0, 2) end, function() return recur.ones(2, 1, 2) end,
    function() return recur.tensor(3) end,
  } do
    sweep("Tensor." .. n, recur.Tensor[n], make())
  end
end
-- nn: constructors and functions that take sizes
local nn = recur.nn
for _, n in ipairs { "Linear", "Embedding", "LayerNorm", "Dropout", "Softmax", "LogSoftmax" } do
  sweep("nn." .. n, nn[n])
end
for _, n in ipairs(names(nn.F)) do sweep("nn.F." .. n, nn.F[n], recur.ones(2, 3)) end

-- the Lua-level functions of recur.rnn, recur.tbptt and recur.data (not the data set loaders,
-- which read files), positionally, without and with a tensor first
local loaders = {
  mnist = true, fashion_mnist = true, shakespeare = true, tiny_shakespeare = true,
  moby_dick = true, brown_words = true, brown_genres = true, names = true, root = true,
  load_idx = true, read_text = true, char_corpus = true,
}
for _, ns in ipairs { "rnn", "tbptt", "data" } do
  for _, n in ipairs(names(recur[ns])) do
    if not loaders[n] then
      sweep(ns .. "." .. n, recur[ns][n])
      sweep(ns .. "." .. n, recur[ns][n], recur.arange(1, 13))
    end
  end
end

-- functions that take an options table: each integer option gets each edge
local function options(name, f, base, before)
  for k, v0 in pairs(base) do
    if math.type(v0) == "integer" then
      for _, v in ipairs(EDGES) do
        local o = {}
        for kk, vv in pairs(base) do o[kk] = vv end
        o[k] = v
        if before then try(name, f, before(), o) else try(name, f, o) end
      end
    end
  end
end
local rnn, data = recur.rnn, recur.data
for _, cell in ipairs(rnn.cell_types) do
  options("rnn.Cell", rnn.Cell, { cell = cell, input = 2, hidden = 3 })
  options("rnn.RNN", rnn.RNN, { cell = cell, input = 2, hidden = 3 })
end
local corpus = function() return recur.arange(1, 41) end
options("data.lm_batches", data.lm_batches, { batch = 2, steps = 3 }, corpus)
options("data.batches", data.batches, { batch = 2 }, function() return { recur.ones(5, 2) } end)
options("data.batches", data.batches, { batch = 2 }, function() return recur.ones(5, 2) end)
local seqs = function() return { recur.tensor { 1, 2, 3 }, recur.tensor { 4, 5 } } end
options("data.padded_batches", data.padded_batches, { batch = 2 }, seqs)
options("data.bucketed_batches", data.bucketed_batches, { batch = 2, buckets = 2 }, seqs)
for _, n in ipairs { "tf", "true_bptt" } do
  local cell = rnn.Cell { cell = "rnn", input = 2, hidden = 2 }
  for _, v in ipairs(EDGES) do
    try("tbptt." .. n, recur.tbptt[n], {
      n = v, x = recur.ones(4, 1, 2), y = recur.ones(4, 1, 2), model = cell,
      loss = function(out, y) return (out - y):square():mean() end,
    })
  end
end

-- the methods of every kind of object a script makes (a fresh object for each method)
local function methods_of(o)
  local out, visited = {}, {}
  local mt = getmetatable(o)
  local idx = mt and mt.__index
  while type(idx) == "table" and not visited[idx] do
    visited[idx] = true
    for k, v in pairs(idx) do
      if type(k) == "string" and type(v) == "function" and not skip[k] then out[k] = true end
    end
    local m2 = getmetatable(idx)
    idx = m2 and m2.__index
  end
  if type(o) == "table" then
    for k, v in pairs(o) do
      if type(k) == "string" and type(v) == "function" and not skip[k] then out[k] = true end
    end
  end
  local list = {}
  for k in pairs(out) do list[#list + 1] = k end
  table.sort(list)
  return list
end
local params = function() return { recur.ones(2, 3):requires_grad(true) } end
local kinds = {
  cell = function() return rnn.Cell { cell = "lstm", input = 2, hidden = 3 } end,
  layer = function() return rnn.RNN { cell = "gru", input = 2, hidden = 3 } end,
  linear = function() return nn.Linear(2, 3) end,
  sgd = function() return recur.optim.SGD(params(), { lr = 0.1 }) end,
  adam = function() return recur.optim.Adam(params(), { lr = 0.1 }) end,
  vocab = function() return data.Vocab.build("abcab") end,
  iterator = function() return data.lm_batches(recur.arange(1, 41), { batch = 2, steps = 3 }) end,
}
for _, kind in ipairs { "cell", "layer", "linear", "sgd", "adam", "vocab", "iterator" } do
  for _, m in ipairs(methods_of(kinds[kind]())) do
    local o = kinds[kind]()
    sweep(kind .. ":" .. m, o[m], o)
  end
end
-- the generation loop (models/charrnn.lua's sampler): length, top_k, the prime's ids
do
  local layer = rnn.RNN { cell = "lstm", input = 3, hidden = 4 }
  local embed, W = recur.randn(5, 3), recur.randn(5, 4)
  for _, v in ipairs(EDGES) do
    try("generate", recur._rnn_generate, layer.cells, embed, W, nil, nil, { 1 }, v)
    try("generate", recur._rnn_generate, layer.cells, embed, W, nil, nil, { 1 }, 3, 1, v)
    try("generate", recur._rnn_generate, layer.cells, embed, W, nil, nil, { v }, 3)
  end
end

return table.concat(failures, "\n"), calls
