-- recur.threads, recur.config, recur.memory, recur.reset_peak_memory, recur.check_numerics
local recur = require("recur")

local err_of = require("tests.helpers").err_of

local function settle()
  collectgarbage("collect")
  collectgarbage("collect")
end

describe("recur.threads", function()
  local saved
  before_each(function() saved = recur.threads() end)
  after_each(function() recur.threads(saved) end)

  it("returns the current count as an integer", function()
    local n = recur.threads()
    assert.equal("integer", math.type(n))
    assert.is_true(n >= 1)
  end)

  it("sets the count, which every query then reports", function()
    assert.equal(1, recur.threads(1))
    assert.equal(1, recur.threads())
    assert.equal(1, recur.config().blas.threads)
    assert.equal(2, recur.threads(2))
    assert.equal(2, recur.threads())
    assert.equal(2, recur.config().blas.threads)
    assert.equal(2, recur.threads(2.0)) -- an integral float is an integer
  end)

  it("rejects counts outside 1..256 and non-integers", function()
    assert.has_error(function() recur.threads(0) end)
    assert.truthy(err_of(function() recur.threads(0) end):find("threads: argument #1 must be between 1 and 256, got 0", 1, true))
    assert.truthy(err_of(function() recur.threads(-3) end):find("threads:", 1, true))
    assert.truthy(err_of(function() recur.threads(257) end):find("got 257", 1, true))
    assert.truthy(err_of(function() recur.threads(1.5) end):find("threads: argument #1 must be an integer, got 1.5", 1, true))
    assert.truthy(err_of(function() recur.threads("2") end):find("threads: argument #1 must be an integer, got string", 1, true))
    assert.truthy(err_of(function() recur.threads({}) end):find("got table", 1, true))
    -- a failed call leaves the count alone
    recur.threads(1)
    pcall(recur.threads, 0)
    assert.equal(1, recur.threads())
  end)
end)

describe("recur.config", function()
  it("describes recur, Lua and the BLAS", function()
    local c = recur.config()
    assert.equal("recur 0.1.0", c.version)
    assert.equal(recur._VERSION, c.version)
    assert.equal("string", type(c.lua))
    assert.truthy(c.lua:match("^Lua 5%.4%.%d+$"))
    assert.equal(_VERSION, c.lua:match("^(Lua %d+%.%d+)"))
    local b = c.blas
    assert.equal("OpenBLAS", b.vendor)
    assert.truthy(b.version:match("^%d+%.%d+%.%d+$"))
    assert.equal("string", type(b.config))
    assert.truthy(b.config:find("OpenBLAS " .. b.version, 1, true))
    assert.equal("string", type(b.core))
    assert.is_true(#b.core > 0)
    assert.equal("integer", math.type(b.threads))
    assert.equal(recur.threads(), b.threads)
  end)

  it("reports the module's _VERSION at call time", function()
    local saved = recur._VERSION
    recur._VERSION = "recur 9.9.9-test"
    local v = recur.config().version
    recur._VERSION = saved
    assert.equal("recur 9.9.9-test", v)
    recur._VERSION = nil
    v = recur.config().version
    recur._VERSION = saved
    assert.equal("recur 0.1.0", v)
  end)

  it("returns a fresh table each call", function()
    local a, b = recur.config(), recur.config()
    assert.are_not.equal(a, b)
    a.blas.vendor = "changed"
    assert.equal("OpenBLAS", recur.config().blas.vendor)
  end)
end)

describe("recur.memory", function()
  it("has integer live, peak and allocations", function()
    local m = recur.memory()
    assert.equal("integer", math.type(m.live))
    assert.equal("integer", math.type(m.peak))
    assert.equal("integer", math.type(m.allocations))
    assert.is_true(m.peak >= m.live)
  end)

  it("counts exactly 4 bytes per float and returns them on close", function()
    settle()
    local m0 = recur.memory()
    local t = recur.zeros(1000)
    local m1 = recur.memory()
    assert.equal(m0.live + 4000, m1.live)
    assert.equal(m0.allocations + 1, m1.allocations)
    assert.is_true(m1.peak >= m0.live + 4000)
    local u = recur.ones(3, 5)
    local m2 = recur.memory()
    assert.equal(m0.live + 4000 + 60, m2.live)
    assert.equal(m0.allocations + 2, m2.allocations)
    t:close()
    assert.equal(m0.live + 60, recur.memory().live)
    u:close()
    local m3 = recur.memory()
    assert.equal(m0.live, m3.live)
    assert.equal(m0.allocations + 2, m3.allocations) -- a count of allocations ever made
    assert.is_true(m3.peak >= m0.live + 4060)
  end)

  it("reset_peak_memory restarts the peak from what is live", function()
    settle()
    local base = recur.memory().live
    local big = recur.zeros(5000) -- 20000 bytes
    big:close()
    assert.is_true(recur.memory().peak >= base + 20000)
    assert.is_nil(recur.reset_peak_memory())
    local m = recur.memory()
    assert.equal(base, m.live)
    assert.equal(base, m.peak)
    local t = recur.zeros(250) -- 1000 bytes
    local s = recur.zeros(10) -- 40 bytes
    t:close()
    s:close()
    m = recur.memory()
    assert.equal(base, m.live)
    assert.equal(base + 1040, m.peak)
  end)

  it("releases memory of collected tensors", function()
    settle()
    local base = recur.memory().live
    do
      local t = recur.zeros(100)
      assert.equal(base + 400, recur.memory().live)
      t = nil -- luacheck: ignore
    end
    settle()
    assert.equal(base, recur.memory().live)
  end)
end)

describe("recur.memory's headers and runtime bytes", function()
  it("counts autograd nodes in runtime, linearly, and returns them with the graph", function()
    settle()
    local m0 = recur.memory()
    assert.equal("integer", math.type(m0.headers))
    assert.equal("integer", math.type(m0.runtime))
    local x = recur.ones(1):requires_grad(true)
    local y = x * 1
    local function grow(n)
      local before = recur.memory()
      for _ = 1, n do y:add_(1) end -- in place: a node per op, no new tensor
      local after = recur.memory()
      assert.equal(before.live, after.live)
      assert.equal(before.headers, after.headers)
      return after.runtime - before.runtime
    end
    local d1 = grow(100)
    local d2 = grow(200)
    assert.is_true(d1 >= 100 * 256, "a node is at least 256 bytes, got " .. d1 / 100)
    assert.equal(2 * d1, d2)
    y:sum():backward()
    assert.equal(1, x.grad:item())
    y = nil -- luacheck: ignore
    x = nil -- luacheck: ignore
    settle()
    local m1 = recur.memory()
    assert.equal(m0.runtime, m1.runtime)
    assert.equal(m0.headers, m1.headers)
    assert.equal(m0.live, m1.live)
  end)
end)

describe("recur.check_numerics", function()
  after_each(function() recur.check_numerics(false) end)

  it("is off by default and returns the previous setting", function()
    assert.is_false(recur.check_numerics())
    assert.is_false(recur.check_numerics(true))
    assert.is_true(recur.check_numerics())
    assert.is_true(recur.check_numerics(true))
    assert.is_true(recur.check_numerics(false))
    assert.is_false(recur.check_numerics())
  end)

  it("requires a boolean", function()
    assert.has_error(function() recur.check_numerics(1) end)
    assert.truthy(err_of(function() recur.check_numerics(1) end):find("check_numerics: argument #1 must be a boolean (got number)", 1, true))
    assert.truthy(err_of(function() recur.check_numerics(nil) end):find("got nil", 1, true))
    assert.truthy(err_of(function() recur.check_numerics("yes") end):find("check_numerics:", 1, true))
    assert.is_false(recur.check_numerics())
  end)
end)
