-- Random tensors: determinism (seed, rng_state), pinned values, statistics on large
-- samples, shapes and errors. Pinned values come from an independent Python implementation
-- of splitmix64 + xoshiro256** and the documented draw rules.
local recur = require "recur"
local T = recur.tensor

local H = require "tests.helpers"
local err_of, fails_with, flat = H.err_of, H.fails_with, H.flat

local function mean_std(v)
  local s = 0
  for i = 1, #v do s = s + v[i] end
  local m = s / #v
  local q = 0
  for i = 1, #v do q = q + (v[i] - m) ^ 2 end
  return m, math.sqrt(q / (#v - 1))
end

local function counts(v, k)
  local c = {}
  for i = 1, k do c[i] = 0 end
  for i = 1, #v do
    local x = v[i]
    assert(x == math.floor(x) and x >= 1 and x <= k, "index out of range: " .. x)
    c[x] = c[x] + 1
  end
  return c
end

local near = H.near_abs

describe("seeding", function()
  it("gives pinned first values for fixed seeds", function()
    recur.seed(42)
    assert.same({ 0.08386296033859253, 0.37898021936416626, 0.6800433993339539,
      0.9246929287910461 }, recur.rand(4):totable())
    recur.seed(42)
    near({ -1.6132237911224365, 1.5344873666763306, 0.7816920280456543, -0.4001934826374054,
      0.01587129384279251 }, recur.randn(5):totable(), 1e-6)
    recur.seed(42)
    assert.same({ -1.5806851387023926, -0.1050989031791687, 1.400217056274414 },
      recur.uniform(3, -2, 3):totable())
    recur.seed(-1)
    assert.same({ 0.5598926544189453, 0.7674350738525391, 0.507296621799469 },
      recur.rand(3):totable())
    recur.seed(7)
    assert.same({ 4, 6, 2, 3, 5, 1 }, recur.randperm(6):totable())
    recur.seed(3)
    assert.same({ -2, 4, -1, 0, 0, 1, 4, 4 }, recur.randint(-2, 5, 8):totable())
  end)

  it("repeats every kind of draw for the same seed", function()
    local function draws()
      return {
        recur.rand(3, 4):totable(), recur.randn(7):totable(),
        recur.truncated_normal({ 5 }):totable(), recur.bernoulli({ 9 }, 0.5):totable(),
        recur.multinomial(T { 1, 2, 3 }, 6, true):totable(),
        recur.multinomial(T { { 1, 2, 3, 4 } }, 3):totable(),
        recur.randperm(8):totable(), recur.randint(0, 9, { 6 }):totable(),
      }
    end
    recur.seed(1234)
    local a = draws()
    recur.seed(1234)
    local b = draws()
    assert.same(a, b)
    recur.seed(1235)
    local c = draws()
    for i = 1, 3 do assert.are_not.same(a[i], c[i]) end
    recur.seed(1234.0) -- integral floats are integers
    assert.same(a, draws())
  end)

  it("rejects non-integer seeds", function()
    fails_with(function() recur.seed(1.5) end, "seed: argument #1 must be an integer")
    fails_with(function() recur.seed("x") end, "seed: argument #1")
    fails_with(function() recur.seed() end, "seed: argument #1")
  end)
end)

describe("rng_state", function()
  it("is a fixed-length string and reading it does not advance the generator", function()
    recur.seed(5)
    local s = recur.rng_state()
    assert.equal("string", type(s))
    assert.equal(48, #s)
    assert.equal(s, recur.rng_state())
    local a = recur.rand(3):totable()
    recur.seed(5)
    assert.same(a, recur.rand(3):totable())
  end)

  it("restores the next draws, including a pending Box-Muller normal", function()
    recur.seed(11)
    recur.randn(3) -- odd count: one normal of the last pair is pending
    local s = recur.rng_state()
    local a = { recur.randn(5):totable(), recur.rand(2):totable(), recur.randperm(5):totable(),
      recur.multinomial(T { 1, 1, 1, 1 }, 4):totable() }
    recur.seed(999) -- move far away, and leave no pending normal
    recur.rand(10)
    recur.set_rng_state(s)
    local b = { recur.randn(5):totable(), recur.rand(2):totable(), recur.randperm(5):totable(),
      recur.multinomial(T { 1, 1, 1, 1 }, 4):totable() }
    assert.same(a, b)
  end)

  it("records the pending normal in the state", function()
    recur.seed(3)
    recur.randn(1) -- leaves the pair's second value pending
    local s1 = recur.rng_state()
    local z = recur.randn(1):item() -- the pending value: the words do not move
    local s2 = recur.rng_state()
    assert.are_not.equal(s1, s2)
    assert.equal(s1:sub(1, 36), s2:sub(1, 36))
    recur.set_rng_state(s1)
    assert.equal(z, recur.randn(1):item())
    recur.set_rng_state(s2)
    assert.are_not.equal(z, recur.randn(1):item())
  end)

  it("rejects bad states and keeps the generator as it was", function()
    recur.seed(8)
    local s = recur.rng_state()
    fails_with(function() recur.set_rng_state(42) end, "set_rng_state: argument #1 must be a string")
    fails_with(function() recur.set_rng_state({}) end, "set_rng_state: argument #1")
    fails_with(function() recur.set_rng_state("abc") end, "set_rng_state", "3 bytes", "48")
    fails_with(function() recur.set_rng_state(s .. "x") end, "set_rng_state", "49 bytes")
    fails_with(function() recur.set_rng_state("x" .. s:sub(2)) end, "set_rng_state", "header")
    fails_with(function() recur.set_rng_state(s:sub(1, 4) .. string.rep("\0", 44)) end,
      "set_rng_state", "all zero")
    fails_with(function() recur.set_rng_state(s:sub(1, 44) .. "\2\0\0\0") end,
      "set_rng_state", "corrupt")
    fails_with(function() recur.set_rng_state(s:sub(1, 36) .. string.rep("\255", 8) .. "\1\0\0\0") end,
      "set_rng_state", "spare")
    assert.equal(s, recur.rng_state())
  end)
end)

describe("statistics", function()
  it("rand is uniform on [0, 1)", function()
    recur.seed(100)
    local v = flat(recur.rand(100000))
    local lo, hi = math.huge, -math.huge
    for i = 1, #v do
      lo = math.min(lo, v[i]); hi = math.max(hi, v[i])
    end
    assert.is_true(lo >= 0 and lo < 0.001)
    assert.is_true(hi < 1 and hi > 0.999)
    local m, sd = mean_std(v)
    assert.is_true(math.abs(m - 0.5) < 0.005, "mean " .. m)
    assert.is_true(math.abs(sd * sd - 1 / 12) < 0.002, "var " .. sd * sd)
  end)

  it("uniform(shape, lo, hi) covers [lo, hi)", function()
    recur.seed(101)
    local v = flat(recur.uniform({ 200, 250 }, -2, 3))
    for i = 1, #v do assert(v[i] >= -2 and v[i] < 3) end
    local m, sd = mean_std(v)
    assert.is_true(math.abs(m - 0.5) < 0.03, "mean " .. m)
    assert.is_true(math.abs(sd - 5 / math.sqrt(12)) < 0.03, "std " .. sd)
    assert.same({ 2.5, 2.5 }, recur.uniform(2, 2.5, 2.5):totable())
  end)

  it("randn has mean 0 and std 1; normal shifts and scales", function()
    recur.seed(102)
    local m, sd = mean_std(flat(recur.randn(100000)))
    assert.is_true(math.abs(m) < 0.01, "mean " .. m)
    assert.is_true(math.abs(sd - 1) < 0.01, "std " .. sd)
    m, sd = mean_std(flat(recur.normal({ 50000 }, 3, 2)))
    assert.is_true(math.abs(m - 3) < 0.04, "mean " .. m)
    assert.is_true(math.abs(sd - 2) < 0.03, "std " .. sd)
    assert.same({ 7, 7 }, recur.normal(2, 7, 0):totable())
  end)

  it("truncated_normal stays within 2 std with std 0.88 std", function()
    recur.seed(103)
    local v = flat(recur.truncated_normal({ 100000 }, { mean = 1, std = 2 }))
    local far = 0
    for i = 1, #v do
      assert(math.abs(v[i] - 1) <= 4 + 1e-5, "outside 2 std: " .. v[i])
      if math.abs(v[i] - 1) > 3 then far = far + 1 end
    end
    -- P(1.5 < |z| <= 2 | |z| <= 2) = 0.0874: the tails are there, only cut at 2 std
    assert.is_true(math.abs(far / #v - 0.0874) < 0.005, "tail share " .. far / #v)
    local m, sd = mean_std(v)
    assert.is_true(math.abs(m - 1) < 0.02, "mean " .. m)
    assert.is_true(math.abs(sd - 2 * 0.8796) < 0.02, "std " .. sd)
    -- positional form is the same draw
    recur.seed(7)
    local a = recur.truncated_normal(5, 1, 2):totable()
    recur.seed(7)
    assert.same(a, recur.truncated_normal({ 5 }, { std = 2, mean = 1 }):totable())
    recur.seed(7)
    local d = recur.truncated_normal({ 5 }):totable()
    recur.seed(7)
    assert.same(d, recur.truncated_normal({ 5 }, {}):totable())
  end)

  it("bernoulli(0.3) has mean 0.3 and gives only 0 and 1", function()
    recur.seed(104)
    local v = flat(recur.bernoulli({ 100000 }, 0.3))
    for i = 1, #v do assert(v[i] == 0 or v[i] == 1) end
    local m = mean_std(v)
    assert.is_true(math.abs(m - 0.3) < 0.01, "mean " .. m)
  end)

  it("bernoulli(p) follows each element's p; p = 0 and 1 are exact", function()
    recur.seed(105)
    local n = 20000
    local p = recur.ones(n, 3) * T { 0, 1, 0.8 }
    local r = p:bernoulli():totable()
    local s3 = 0
    for i = 1, n do
      assert(r[i][1] == 0 and r[i][2] == 1)
      s3 = s3 + r[i][3]
    end
    assert.is_true(math.abs(s3 / n - 0.8) < 0.015, "mean " .. s3 / n)
    assert.same(recur.bernoulli(T { 1, 0 }):totable(), { 1, 0 })
  end)

  it("multinomial with replacement has frequencies near probs", function()
    recur.seed(106)
    local v = flat(recur.multinomial(T { 1, 2, 3, 4 }, 40000, true))
    local c = counts(v, 4)
    near({ 0.1, 0.2, 0.3, 0.4 }, { c[1] / #v, c[2] / #v, c[3] / #v, c[4] / #v }, 0.015)
    -- rows are separate distributions; zero weights are never drawn
    local r = recur.multinomial(T { { 0, 1, 0, 3 }, { 5, 0, 0, 0 } }, 20000, true):totable()
    local c1, c2 = counts(r[1], 4), counts(r[2], 4)
    assert.equal(0, c1[1] + c1[3])
    assert.is_true(math.abs(c1[2] / 20000 - 0.25) < 0.015)
    assert.same({ 20000, 0, 0, 0 }, c2)
  end)

  it("multinomial without replacement draws distinct indices in the sequential law", function()
    recur.seed(107)
    local rows = 20000
    local r = recur.multinomial(recur.ones(rows, 4) * T { 1, 2, 3, 4 }, 2):totable()
    local first, second = {}, {}
    for i = 1, rows do
      assert(r[i][1] ~= r[i][2], "repeated index in a row")
      first[i], second[i] = r[i][1], r[i][2]
    end
    local c1, c2 = counts(first, 4), counts(second, 4)
    near({ 0.1, 0.2, 0.3, 0.4 }, { c1[1] / rows, c1[2] / rows, c1[3] / rows, c1[4] / rows }, 0.015)
    -- P(second = j) = sum_{i ~= j} p_i p_j / (1 - p_i)
    near({ 0.134524, 0.241270, 0.308333, 0.315873 },
      { c2[1] / rows, c2[2] / rows, c2[3] / rows, c2[4] / rows }, 0.015)
    -- all categories: each row is a permutation
    for _, row in ipairs(recur.multinomial(recur.rand(5, 10) + 0.01, 10):totable()) do
      table.sort(row)
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, row)
    end
    -- exactly the non-zero categories
    local z = recur.multinomial(T { 0, 2, 0, 1, 1 }, 3):totable()
    table.sort(z)
    assert.same({ 2, 4, 5 }, z)
  end)

  it("randperm is a permutation of 1..n", function()
    recur.seed(108)
    local p = recur.randperm(1000):totable()
    local fixed = 0
    for i = 1, #p do if p[i] == i then fixed = fixed + 1 end end
    assert.is_true(fixed < 10, "too many fixed points: " .. fixed)
    table.sort(p)
    for i = 1, 1000 do assert.equal(i, p[i]) end
    assert.same({}, recur.randperm(0):totable())
    assert.same({ 1 }, recur.randperm(1):totable())
  end)

  it("randint covers [lo, hi] uniformly", function()
    recur.seed(109)
    local v = flat(recur.randint(1, 6, 60000))
    local c = counts(v, 6)
    for k = 1, 6 do assert.is_true(math.abs(c[k] / #v - 1 / 6) < 0.01, "face " .. k) end
    assert.same({ 5, 5, 5 }, recur.randint(5, 5, 3):totable())
    local w = flat(recur.randint(-3, -1, { 2, 500 }))
    local seen = {}
    for i = 1, #w do
      assert(w[i] >= -3 and w[i] <= -1 and w[i] == math.floor(w[i]))
      seen[w[i]] = true
    end
    assert.is_true(seen[-3] and seen[-2] and seen[-1])
  end)
end)

describe("shapes", function()
  it("takes shapes as varargs, tables or one integer", function()
    assert.same({ 2, 3 }, recur.rand(2, 3):size())
    assert.same({ 2, 3 }, recur.rand({ 2, 3 }):size())
    assert.same({}, recur.rand():size())
    assert.same({ 4, 0, 2 }, recur.randn(4, 0, 2):size())
    assert.same({ 5 }, recur.uniform(5):size())
    assert.same({ 2, 2 }, recur.normal({ 2, 2 }, 1, 3):size())
    assert.same({ 3 }, recur.truncated_normal(3):size())
    assert.same({ 2, 3 }, recur.bernoulli({ 2, 3 }, 0.5):size())
    assert.same({ 2, 1, 3 }, recur.bernoulli(recur.full({ 2, 1, 3 }, 0.5)):size())
    assert.same({}, recur.bernoulli(T(0.5)):size())
    assert.same({ 7 }, recur.multinomial(T { 1, 2 }, 7, true):size())
    assert.same({ 3, 2 }, recur.multinomial(recur.ones(3, 4), 2):size())
    assert.same({ 0 }, recur.multinomial(T { 1, 2 }, 0):size())
    assert.same({ 0, 2 }, recur.multinomial(recur.ones(0, 4), 2):size())
    assert.same({ 9 }, recur.randperm(9):size())
    assert.same({ 2, 3 }, recur.randint(0, 1, 2, 3):size())
    assert.same({ 2, 3 }, recur.randint(0, 1, { 2, 3 }):size())
  end)

  it("makes tensors that need no gradient", function()
    local p = recur.full({ 3 }, 0.5):requires_grad_(true)
    assert.is_true(p:requires_grad())
    local b = p:bernoulli()
    assert.is_false(b:requires_grad())
    assert.is_true(b.is_leaf)
    assert.is_nil(b.grad_fn)
    local m = recur.multinomial(p, 2)
    assert.is_nil(m.grad_fn)
    assert.is_false(m:requires_grad())
    assert.is_true(recur.rand(2).is_leaf)
  end)
end)

describe("errors", function()
  it("rejects negative and malformed sizes", function()
    fails_with(function() recur.rand(-1) end, "rand: size -1 of dimension 1 is negative")
    fails_with(function() recur.randn(2, -3) end, "randn: size -3 of dimension 2 is negative")
    fails_with(function() recur.uniform({ -1 }) end, "uniform: size -1")
    fails_with(function() recur.uniform(-2) end, "uniform: size -2")
    fails_with(function() recur.normal({ 2, -1 }) end, "normal: size -1")
    fails_with(function() recur.truncated_normal({ -2 }) end, "truncated_normal: size -2")
    fails_with(function() recur.bernoulli({ -1 }, 0.5) end, "bernoulli: size -1")
    fails_with(function() recur.randperm(-1) end, "randperm: n must be >= 0, got -1")
    fails_with(function() recur.randint(1, 2, -1) end, "randint: size -1")
    fails_with(function() recur.multinomial(T { 1 }, -1, true) end, "multinomial", ">= 0, got -1")
    fails_with(function() recur.rand(2, "x") end, "rand: argument #2 must be an integer")
    fails_with(function() recur.rand({ 2 }, 3) end, "rand: argument #2")
    fails_with(function() recur.rand(1.5) end, "rand: argument #1 must be an integer")
    fails_with(function() recur.uniform("x") end, "uniform: argument #1 must be a shape")
    fails_with(function() recur.rand(2 ^ 30, 2 ^ 30) end, "rand", "too large")
    fails_with(function() recur.randperm(2 ^ 24 + 1) end, "randperm", "2^24")
  end)

  it("rejects bad distribution parameters", function()
    fails_with(function() recur.uniform(2, 3, 1) end, "uniform: bounds", "lo = 3, hi = 1")
    fails_with(function() recur.uniform(2, 0 / 0, 1) end, "uniform: bounds")
    fails_with(function() recur.uniform(2, 0, math.huge) end, "uniform: bounds")
    fails_with(function() recur.uniform(2, "a") end, "uniform: argument #2 (lo) must be a number")
    fails_with(function() recur.normal(2, 0, -1) end, "normal:", "std = -1")
    fails_with(function() recur.normal(2, 0 / 0) end, "normal:")
    fails_with(function() recur.truncated_normal(2, { std = -1 }) end, "truncated_normal:", "std = -1")
    fails_with(function() recur.truncated_normal(2, { sd = 1 }) end, "truncated_normal: unknown option sd")
    fails_with(function() recur.truncated_normal(2, { std = "1" }) end, "truncated_normal: option std")
    fails_with(function() recur.truncated_normal(2, {}, 1) end, "truncated_normal:")
    fails_with(function() recur.randint(3, 1, 2) end, "randint:", "lo = 3, hi = 1")
    fails_with(function() recur.randint(0, 2 ^ 25, 2) end, "randint:", "2^24")
    fails_with(function() recur.randint(0.5, 2, 2) end, "randint: argument #1 must be an integer")
  end)

  it("rejects probabilities outside [0, 1] and NaN in bernoulli", function()
    fails_with(function() recur.bernoulli(T { 0.5, 1.5 }) end, "bernoulli: p must hold probabilities in [0, 1]", "1.5")
    fails_with(function() T { { 0.1 }, { -0.1 } }:bernoulli() end, "bernoulli: p", "-0.1", "[2, 1]")
    fails_with(function() recur.bernoulli(T { 0 / 0 }) end, "bernoulli: p", "nan")
    fails_with(function() recur.bernoulli({ 2 }, 2) end, "bernoulli: p")
    fails_with(function() recur.bernoulli({ 2 }) end, "bernoulli: argument #2 (p) must be a number")
    fails_with(function() recur.bernoulli(T { 0.5 }, 0.5) end, "bernoulli: with a tensor")
    fails_with(function() recur.bernoulli("x") end, "bernoulli: argument #1")
  end)

  it("rejects bad probs in multinomial", function()
    fails_with(function() recur.multinomial(T { 1, 0 / 0 }, 1) end, "multinomial: probs must be finite and >= 0", "nan")
    fails_with(function() recur.multinomial(T { 1, -1 }, 1) end, "multinomial: probs", "-1")
    fails_with(function() recur.multinomial(T { 1, math.huge }, 1) end, "multinomial: probs", "inf")
    fails_with(function() recur.multinomial(T { { 1, 2 }, { 0, 0 } }, 1, true) end, "multinomial: a row of probs", "all zeros")
    fails_with(function() recur.multinomial(T { 1, 0, 2 }, 3) end, "multinomial: cannot draw 3 samples without replacement", "only 2 non-zero")
    assert.same({ 3 }, recur.multinomial(T { 1, 0, 2 }, 3, true):size())
    fails_with(function() recur.multinomial(recur.ones(2, 2, 2), 1) end, "multinomial: probs must be 1-D or 2-D", "[2, 2, 2]")
    fails_with(function() recur.multinomial(T(1), 1) end, "multinomial: probs must be 1-D or 2-D")
    fails_with(function() recur.multinomial(recur.ones(2, 0), 1) end, "multinomial", "no categories")
    fails_with(function() recur.multinomial(T { 1, 2 }, 1, "yes") end, "multinomial: argument #3 (replacement) must be a boolean")
    fails_with(function() recur.multinomial({ 1, 2 }, 1) end, "multinomial: argument #1 must be a tensor")
    fails_with(function() recur.multinomial(T { 1, 2 }) end, "multinomial: argument #2")
  end)

  it("rejects closed tensors", function()
    local t = recur.full({ 2 }, 0.5)
    t:close()
    fails_with(function() recur.bernoulli(t) end, "bernoulli: argument #1 is a closed tensor")
    fails_with(function() t:bernoulli() end, "bernoulli", "closed")
    fails_with(function() recur.multinomial(t, 1) end, "multinomial: argument #1 is a closed tensor")
    fails_with(function() t:multinomial(1) end, "multinomial", "closed")
  end)
end)
