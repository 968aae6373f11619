-- Gradient checks on random shapes, including broadcasting, for every family of ops.
-- Shapes and values come from the runtime RNG with fixed seeds, so a failure reproduces.
local recur = require "recur"

local function randint(lo, hi) return recur.randint(lo, hi, {1}):item() end

-- a random shape of 1-3 dims with sizes 1-4, and a shape that broadcasts against it
local function shapes()
  local nd = randint(1, 3)
  local a, b = {}, {}
  for i = 1, nd do a[i] = randint(1, 4) end
  local drop = randint(0, nd - 1) -- b may have fewer leading dims
  for i = drop + 1, nd do
    b[#b + 1] = (randint(0, 2) == 0) and 1 or a[i]
  end
  if randint(0, 1) == 1 then a, b = b, a end
  return a, b
end

local function input(shape, lo, hi)
  return recur.uniform(shape, lo or -1, hi or 1):requires_grad(true)
end

local check = recur.gradcheck

describe("gradcheck on random shapes", function()
  for seed = 1, 6 do
    it("binary ops with broadcasting (seed " .. seed .. ")", function()
      recur.seed(seed)
      local sa, sb = shapes()
      local a, b = input(sa), input(sb)
      local pb = input(sb, 0.5, 1.5)
      assert.is_true(check(function(x, y) return x + y end, {a, b}))
      assert.is_true(check(function(x, y) return x - y end, {a, b}))
      assert.is_true(check(function(x, y) return x * y end, {a, b}))
      assert.is_true(check(function(x, y) return x / y end, {a, pb}))
      assert.is_true(check(function(x, y) return (x * y):tanh():sum() end, {a, b}))
      assert.is_true(check(function(x, y) return recur.where(x:gt(0), x, y) end, {a, b}))
    end)
    it("unary ops and reductions (seed " .. seed .. ")", function()
      recur.seed(100 + seed)
      local sa = shapes()
      local a = input(sa)
      local d = randint(1, #sa)
      assert.is_true(check(function(x) return x:sigmoid() * x:exp() end, {a}))
      assert.is_true(check(function(x) return x:sum(d) end, {a}))
      assert.is_true(check(function(x) return x:mean(d, true) end, {a}))
      assert.is_true(check(function(x) return x:softmax(d) end, {a}))
      assert.is_true(check(function(x) return x:log_softmax(d) end, {a}))
      assert.is_true(check(function(x) return x:logsumexp(d) end, {a}))
      assert.is_true(check(function(x) return x:norm() end, {a}))
    end)
    it("matmul and views (seed " .. seed .. ")", function()
      recur.seed(200 + seed)
      local m, k, n, bt = randint(1, 4), randint(1, 4), randint(1, 4), randint(1, 3)
      local a, b = input({bt, m, k}), input({k, n})
      assert.is_true(check(function(x, y) return recur.matmul(x, y) end, {a, b}))
      local c = input({m, k})
      assert.is_true(check(function(x, y) return recur.matmul(x:t():t(), y) end, {c, b}))
      assert.is_true(check(function(x) return x:transpose(1, 3):reshape(-1) end, {a}))
      assert.is_true(check(function(x) return x:narrow(2, 1, m):expand(2, bt, m, k) end, {a}))
    end)
  end
end)
