-- recur.repl.complete: the candidates of the REPL's Tab completion (bindings/recur_cli.c
-- hands readline's word to it; tests/cli_spec.lua drives one completion through a terminal).
local recur = require "recur"
local repl = require "recur.repl"
local complete = repl.complete

-- matches and kinds as two lists (kinds checked only when given)
local function check(text, env, matches, kinds)
  local m, k = complete(text, env)
  assert.same(matches, m)
  if kinds then assert.same(kinds, k) end
end

-- The sorted string keys of the tables, dropping "_" names and non-names (an independent
-- listing to compare whole candidate lists with).
local function names(prefix, filter, ...)
  local set, out = {}, {}
  for _, t in ipairs({ ... }) do
    for k, v in pairs(t) do
      if type(k) == "string" and k:find("^[%a][%w_]*$") and (not filter or filter(v)) then
        set[k] = true
      end
    end
  end
  for k in pairs(set) do out[#out + 1] = prefix .. k end
  table.sort(out)
  return out
end
local function is_function(v) return type(v) == "function" end

describe("recur.repl.complete", function()
  it("completes global names and keywords, _names only when asked", function()
    local f = function() end
    local env = { alpha = 1, alpine = f, beta = "b", _hidden = 3, whilst = true }
    check("al", env, { "alpha", "alpine" }, { "number", "function" })
    check("wh", env, { "while", "whilst" }, { "keyword", "boolean" })
    check("fu", env, { "function" }, { "keyword" })
    check("_", env, { "_hidden" }, { "number" })
    check("zz", env, {}, {})
    local all = complete("", env)
    local expect = { "alpha", "alpine", "beta", "whilst", "and", "break", "do", "else", "elseif",
      "end", "false", "for", "function", "goto", "if", "in", "local", "nil", "not", "or",
      "repeat", "return", "then", "true", "until", "while" }
    table.sort(expect)
    assert.same(expect, all)
    -- the default environment is _G
    assert.same({ "print" }, (complete("prin")))
  end)

  it("follows the global table's __index tables (a sandboxed env)", function()
    local env = setmetatable({ own = 1 }, { __index = { inherited = 2, own_too = 3 } })
    check("ow", env, { "own", "own_too" }, { "number", "number" })
    check("inh", env, { "inherited" }, { "number" })
  end)

  it("completes fields after . through nested tables", function()
    local env = { recur = recur }
    check("recur.mat", env, { "recur.matmul" }, { "function" })
    check("recur.nn.Li", env, { "recur.nn.Linear" }, { "table" })
    check("recur.optim.", env, names("recur.optim.", nil, recur.optim))
    check("recur.nn.init.", env, names("recur.nn.init.", nil, recur.nn.init))
    -- keys that are not names (keywords, numbers, odd strings) are never offered
    env.t = { ["end"] = 1, en = 2, [1] = 3, ["a b"] = 4, [true] = 5 }
    check("t.", env, { "t.en" }, { "number" })
    check("t.e", env, { "t.en" })
  end)

  it("offers recur's submodules before they are loaded, and hides its _internals", function()
    local env = { recur = recur }
    local m = complete("recur.", env)
    local set = {}
    for _, s in ipairs(m) do set[s] = true end
    for name in pairs(package.preload) do
      local sub = name:match("^recur%.([%w_]+)$")
      if sub and sub:sub(1, 1) ~= "_" then assert.is_true(set["recur." .. sub], sub) end
    end
    assert.is_true(set["recur.repl"] and set["recur.nn"] and set["recur.matmul"])
    for _, s in ipairs(m) do assert.falsy(s:find("^recur%._"), s) end
    local internal, expect = complete("recur._rnn", env), {}
    for k in pairs(recur) do
      if k:sub(1, 4) == "_rnn" then expect[#expect + 1] = "recur." .. k end
    end
    table.sort(expect)
    assert.truthy(#expect >= 2) -- _rnn_cell, _rnn_cell_methods, ...
    assert.same(expect, internal)
  end)

  it("completes a tensor's methods after : and its properties after .", function()
    local env = { t = recur.zeros(2, 3) }
    check("t:resh", env, { "t:reshape" }, { "function" })
    check("t:requires", env, { "t:requires_grad", "t:requires_grad_" })
    check("t:", env, names("t:", is_function, recur.Tensor))
    check("t.gr", env, { "t.grad", "t.grad_fn" }, { "field", "field" })
    check("t.sh", env, { "t.shape" }, { "field" })
    check("t:sh", env, {}) -- properties are not methods
    -- each property offered is one the tensor's __index serves
    local x = recur.ones(2):requires_grad(true)
    local y = (x * 3):sum()
    y:backward()
    local props = {}
    for _, s in ipairs(complete("x.", { x = x })) do
      local k = s:sub(3)
      if recur.Tensor[k] == nil then props[#props + 1] = k end
    end
    assert.same({ "grad", "grad_fn", "is_leaf", "shape" }, props)
    for _, k in ipairs(props) do
      assert.is_true(x[k] ~= nil or y[k] ~= nil, k)
    end
  end)

  it("completes an nn module's methods through its class chain, and its fields", function()
    local m = recur.nn.Linear(3, 2)
    local env = { m = m }
    check("m:for", env, { "m:forward" }, { "function" })
    check("m:zero", env, { "m:zero_grad" })
    check("m:parameters", env, { "m:parameters" })
    check("m.wei", env, { "m.weight" }, { "userdata" })
    check("m.in_", env, { "m.in_features" }, { "number" })
    check("m:in_", env, {}) -- a number is not a method
    -- a user class two levels below Module
    local Base = recur.nn.Module:extend("Base")
    function Base:hello() return 1 end
    local Child = Base:extend("Child")
    function Child:hi() return 2 end
    env.c = Child()
    check("c:h", env, { "c:hello", "c:hi" })
    check("c:named_p", env, { "c:named_parameters" }) -- from Module
    check("c:__t", env, { "c:__tostring" }) -- metamethods only when asked for
    check("c:", env, names("c:", is_function, env.c, Child, Base, recur.nn.Module))
  end)

  it("completes optimizer, rnn cell and file methods from their metatables", function()
    local p = recur.zeros(2):requires_grad(true)
    local env = {
      o = recur.optim.SGD({ p }, { lr = 0.1 }),
      cell = recur.rnn.Cell({ cell = "lstm", input = 2, hidden = 3 }),
      f = io.stdout,
    }
    check("o:st", env, { "o:state", "o:step", "o:steps" })
    check("o:zero", env, { "o:zero_grad" })
    check("cell:par", env, { "cell:parameters" }, { "function" })
    check("cell:zero", env, { "cell:zero_state" })
    check("f:wr", env, { "f:write" }, { "function" })
  end)

  it("never calls an __index or __pairs function", function()
    local calls = 0
    local function count() calls = calls + 1 return {} end
    local proxy = setmetatable({ real = 1 }, { __index = count, __pairs = count, __call = count })
    local env = { p = proxy }
    check("p.", env, { "p.real" })
    check("p.x.", env, {})
    check("p:", env, {})
    check("p.real.", env, {})
    -- a global table whose __index is a function
    check("unknown.x", setmetatable({}, { __index = count }), {})
    assert.equal(0, calls)
    -- a hidden metatable (__metatable) is looked into raw
    local locked = setmetatable({}, { __index = { m1 = function() end }, __metatable = "locked" })
    check("l:m", { l = locked }, { "l:m1" })
    -- recur.nn's lazy RNN alias (a function __index) is not run by completion
    local nn_rnn = rawget(recur.nn, "RNN")
    local m = complete("recur.nn.RN", { recur = recur })
    if nn_rnn == nil then assert.same({}, m) else assert.same({ "recur.nn.RNN" }, m) end
  end)

  it("gives nothing for unknown names and odd values, without failing", function()
    local deep = {}
    deep.a = deep
    local env = { n = 5, s = "abc", b = true, f = print, deep = deep, recur = recur }
    local empty = { "zzz", "nosuch.x", "nosuch:x", "recur.nosuch.x", "n.", "n:", "b.", "b:",
      "f.", "f:", "nil.", "true:", "3.1", "3", "a:b:c", "s:up.x", ":x", ".x", "a..b", "n.x.",
      "recur.matmul.", "recur.matmul:", "recur.nn.Linear.nosuch.", "end.", "x y", "s:sub(" }
    for _, text in ipairs(empty) do
      local m, k = complete(text, env)
      assert.same({}, m, text)
      assert.same({}, k, text)
    end
    -- only the arguments can be wrong
    local ok, err = pcall(complete, nil, env)
    assert.is_false(ok)
    assert.truthy(err:find("repl.complete: text must be a string, got nil", 1, true), err)
    ok, err = pcall(complete, "x", 5)
    assert.is_false(ok)
    assert.truthy(err:find("repl.complete: env must be a table or nil, got number", 1, true), err)
    -- strings complete with their methods
    check("s:up", env, { "s:upper" }, { "function" })
    check("s:re", env, { "s:rep", "s:reverse" })
    -- a cycle of tables and a long path through it
    local long = "deep" .. (".a"):rep(300)
    check(long .. ".", env, { long .. ".a" }, { "table" })
    -- cyclic and very long __index chains end
    local x, y = {}, {}
    setmetatable(x, { __index = y })
    setmetatable(y, { __index = x })
    x.xa, y.ya = 1, 2
    check("x.", { x = x }, { "x.xa", "x.ya" })
    local chain = { c0 = 0 }
    for i = 1, 100 do chain = setmetatable({ ["c" .. i] = i }, { __index = chain }) end
    local m = complete("chain.c", { chain = chain })
    assert.truthy(#m >= 10 and #m <= 100)
    assert.equal("chain.c100", m[1]) -- the nearest tables come first in the chain
  end)
end)
