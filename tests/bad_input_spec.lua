-- Every public function fed wrong types, wrong shapes, negative or huge sizes, out-of-range
-- dims and indices, NaN and closed tensors: each call must either work or raise a Lua error
-- that names the function, and the process must live on.
local recur = require "recur"

local function closed()
  local t = recur.ones(2, 3)
  t:close()
  return t
end

-- argument values to combine
local function values()
  return {
    nil, true, "x", {}, { 1, "a" }, function() end, 0, -1, 1.5, 0 / 0, math.huge, -math.huge,
    2 ^ 62, math.mininteger, 3, recur.ones(2, 3), recur.zeros(0), recur.tensor(1),
    recur.ones(4), recur.ones(3, 2):t(), closed(), recur.full({ 2, 3 }, 0 / 0),
    recur.ones(1, 1, 1, 1, 1, 1, 1, 1), coroutine.create(function() end), io.stdout,
  }
end

-- functions that legitimately run arbitrary code or never fail in an interesting way
local skip = {
  no_grad = false, enable_grad = false, Function = false, gradcheck = true,
  _function_call = true, threads = true, seed = false,
  save = true, -- writes files; its argument errors are covered by checkpoint_spec
}

-- The message must name the function (or the op it forwards to, as view_as -> view): it
-- starts with "name: " after any "file:line: " position, or is Lua's "bad argument #i to 'name'".
local function names_fn(msg, name)
  msg = tostring(msg)
  if msg:find(name, 1, true) then return true end
  msg = msg:gsub("^[^:]*:%d+: ", "")
  return msg:match("^[%a_][%w_%.]*: ") ~= nil or msg:find("bad argument #%d+ to '[^?']") ~= nil
end

local function try_all(name, f, self)
  local vals = values()
  local nv = 25
  local calls, errors, unnamed = 0, 0, {}
  local function call(...)
    calls = calls + 1
    local ok, err = pcall(f, ...)
    if not ok then
      errors = errors + 1
      if type(err) ~= "string" or not names_fn(err, name) then
        unnamed[#unnamed + 1] = tostring(err)
      end
    end
  end
  -- one argument, two arguments and three arguments from the value list
  for i = 1, nv do
    if self then call(self, vals[i]) else call(vals[i]) end
  end
  for i = 1, nv, 2 do
    for j = 1, nv, 3 do
      if self then call(self, vals[i], vals[j]) else call(vals[i], vals[j]) end
      if self then call(self, vals[j], vals[i], vals[i]) else call(vals[i], vals[j], vals[j]) end
    end
  end
  return calls, errors, unnamed
end

-- The sorted names of the functions in t whose names do not start with "_" (and, with skip,
-- are not in it).
local function function_names(t, skip_)
  local names = {}
  for k, v in pairs(t) do
    if type(v) == "function" and k:sub(1, 1) ~= "_" and not (skip_ and skip_[k]) then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  return names
end

-- try_all on t[name] for every name, as a plain function or, with selves (a function making a
-- fresh list, as a method may change its tensor), as a method of each of them: the number of
-- calls and the distinct "name: message" of the errors that do not name their function.
local function try_names(t, names, selves)
  local total, bad, seen = 0, {}, {}
  for _, name in ipairs(names) do
    for _, self in ipairs(selves and selves() or { false }) do
      local calls, _, unnamed = try_all(name, t[name], self or nil)
      total = total + calls
      for _, m in ipairs(unnamed) do
        m = name .. ": " .. m
        if not seen[m] then
          seen[m] = true
          bad[#bad + 1] = m
        end
      end
    end
  end
  return total, bad
end

describe("bad input", function()
  it("module functions raise errors that name them and never crash", function()
    local total, bad = try_names(recur, function_names(recur, skip))
    assert.truthy(total > 1000)
    assert.same({}, bad)
  end)
  it("tensor methods raise errors that name them and never crash", function()
    local total, bad = try_names(recur.Tensor, function_names(recur.Tensor), function()
      return { recur.ones(2, 3), recur.tensor(2), closed(), recur.zeros(0, 3) }
    end)
    assert.truthy(total > 1000)
    assert.same({}, bad)
  end)
  it("tensor methods called with something else as self raise errors that name them", function()
    -- t.is_closed(5) dereferenced NULL until the sweep above was widened to other selves
    local others = { 5, "x", {}, true, io.stdout,
      recur.optim.SGD({ recur.ones(2):requires_grad(true) }, { lr = 1 }),
      recur.rnn.Cell { cell = "rnn", input = 2, hidden = 2 } }
    local calls, bad = 0, {}
    for _, name in ipairs(function_names(recur.Tensor)) do
      local f = recur.Tensor[name]
      if debug.getinfo(f, "S").what == "C" then
        for _, s in ipairs(others) do
          for _, args in ipairs { {}, { 1 }, { recur.ones(2) } } do
            calls = calls + 1
            local ok, e = pcall(f, s, table.unpack(args))
            if not ok and (type(e) ~= "string" or not e:find(name, 1, true)) then
              bad[#bad + 1] = name .. " (self " .. type(s) .. "): " .. tostring(e)
            end
          end
        end
      end
    end
    assert.truthy(calls > 500)
    assert.same({}, bad)
    local ok, e = pcall(recur.Tensor.is_closed, 5)
    assert.is_false(ok)
    assert.equal("is_closed: argument #1 must be a tensor, got number", e)
  end)
  it("operators on wrong operands raise errors", function()
    local t = recur.ones(2)
    for _, v in ipairs{ "x", {}, true, recur.ones(3) } do
      for _, f in ipairs{
        function() return t + v end, function() return v - t end, function() return t * v end,
        function() return t / v end, function() return t ^ v end } do
        local ok, e = pcall(f)
        assert.is_false(ok)
        assert.is_string(e)
      end
    end
    local ok, e = pcall(function() return -closed() end)
    assert.is_false(ok)
    assert.truthy(e:find("closed tensor"))
  end)
  it("non-scalar backward without a gradient is an error, not a crash", function()
    local x = recur.ones(3):requires_grad(true)
    local ok, e = pcall(function() (x * 2):backward() end)
    assert.is_false(ok)
    assert.truthy(e:find("backward"))
  end)
end)
