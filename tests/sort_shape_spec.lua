-- sort, argsort, topk, any, all, isnan/isinf/isfinite, flip, roll, tril, triu, diag, trace,
-- tile, repeat_interleave, cumprod, linspace, logspace: values (reference numbers from
-- PyTorch 1.13, Debian's python3-torch, or worked by hand), NaN and ties, gradients (by hand
-- and recur.gradcheck on random shapes), empty and 0-d tensors, errors.
local recur = require "recur"

local H = require "tests.helpers"
local near, fails_with = H.near, H.fails_with

local NAN = 0 / 0
local A = {{3, 1, 2, 1}, {0, 5, 5, -1}, {2, 2, -3, 7}}
local B = {{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}} -- torch.arange(1., 13).reshape(2, 2, 3)

-- the gradient of (f(x) * w):sum() for the leaf x made from tbl
local function grad_of(tbl, f, w)
  local x = recur.tensor(tbl):requires_grad(true)
  local y = f(x)
  ;(w and (y * w) or y):sum():backward()
  return x.grad
end

describe("sort and argsort", function()
  it("sort the last dim by default; NaN sorts last ascending and first descending", function()
    local v, i = recur.tensor{1, NAN, 0, 1, -2}:sort()
    near({-2, 0, 1, 1, NAN}, v)
    assert.same({5, 3, 1, 4, 2}, i:totable())
    v, i = recur.tensor{1, NAN, 0, 1, -2}:sort(1, true)
    near({NAN, 1, 1, 0, -2}, v)
    assert.same({2, 1, 4, 3, 5}, i:totable())
  end)
  it("are stable and work along any dim (torch.sort(stable=True))", function()
    local v, i = recur.tensor(A):sort(1)
    assert.same({{0, 1, -3, -1}, {2, 2, 2, 1}, {3, 5, 5, 7}}, v:totable())
    assert.same({{2, 1, 3, 2}, {3, 3, 1, 1}, {1, 2, 2, 3}}, i:totable())
    v, i = recur.sort(recur.tensor(A), -1, true)
    assert.same({{3, 2, 1, 1}, {5, 5, 0, -1}, {7, 2, 2, -3}}, v:totable())
    assert.same({{1, 3, 2, 4}, {2, 3, 1, 4}, {4, 1, 2, 3}}, i:totable())
    assert.same({{1, 3, 2, 4}, {2, 3, 1, 4}, {4, 1, 2, 3}}, recur.tensor(A):argsort(2, true):totable())
    assert.same({{2, 1, 3, 2}, {3, 3, 1, 1}, {1, 2, 2, 3}}, recur.tensor(A):argsort(1):totable())
    -- a transposed (non-contiguous) input
    v = recur.tensor(A):t():sort(2)
    assert.same({{0, 2, 3}, {1, 2, 5}, {-3, 2, 5}, {-1, 1, 7}}, v:totable())
  end)
  it("indices gather the values back", function()
    recur.seed(3)
    local x = recur.randn(4, 5, 3)
    local v, i = x:sort(2)
    assert.same(v:totable(), x:gather(2, i):totable())
  end)
  it("handle empty and 0-d tensors", function()
    local v, i = recur.zeros(0, 3):sort(1)
    assert.same({0, 3}, v:size())
    assert.same({0, 3}, i:size())
    v, i = recur.tensor(4):sort()
    assert.equal(4, v:item())
    assert.equal(1, i:item())
  end)
  it("send each value's gradient back to where it came from", function()
    local g = grad_of({{3, 1, 2}, {0, 5, -1}}, function(x) return (x:sort(2, true)) end,
      recur.tensor{{1, 2, 3}, {4, 5, 6}})
    assert.same({{1, 3, 2}, {5, 4, 6}}, g:totable())
  end)
  it("reject bad dims and flags", function()
    fails_with(function() return recur.tensor(A):sort(3) end, "sort: dimension 3 is out of range")
    fails_with(function() return recur.tensor(A):sort(1, 1) end,
      "sort: argument #3 (descending) must be a boolean, got number")
    fails_with(function() return recur.tensor(A):argsort(0) end, "argsort: dimension 0")
  end)
  it("refuse slices longer than 2^24, whose indices float32 cannot hold exactly", function()
    local long = recur.zeros(1, 1):expand(2, 2 ^ 24 + 1) -- a view: nothing is allocated
    fails_with(function() return long:sort() end,
      "sort: dimension 2 of shape [2, 16777217] has 16777217 elements, more than 2^24")
    fails_with(function() return long:argsort(2, true) end, "argsort: dimension 2 of shape")
    fails_with(function() return long:topk(1) end, "topk: dimension 2 of shape")
  end)
end)

describe("sort against a reference", function()
  -- Lua's table.sort on (value, position), NaN greatest, ties by position: the stable order
  local function ref(vals, down)
    local p = {}
    for i, v in ipairs(vals) do p[i] = { v = v, i = i } end
    table.sort(p, function(a, b)
      local an, bn = a.v ~= a.v, b.v ~= b.v
      if an ~= bn then if down then return an else return bn end end
      if not an and a.v ~= b.v then if down then return a.v > b.v else return a.v < b.v end end
      return a.i < b.i
    end)
    return p
  end
  it("gives the stable order on random slices with ties and NaN (every length to 70, some long)", function()
    recur.seed(7)
    for trial = 1, 80 do
      local n = trial <= 70 and trial or 500 + 97 * (trial - 70)
      local u = recur.rand(n):totable()
      local vals = {}
      for i = 1, n do
        vals[i] = u[i] < 0.05 and NAN or (u[i] < 0.5 and math.floor(u[i] * 10) or u[i] * 10 - 5)
      end
      local t = recur.tensor(vals)
      for _, down in ipairs { false, true } do
        local _, ix = t:sort(1, down)
        local want, got = ref(vals, down), ix:totable()
        for k = 1, n do
          if got[k] ~= want[k].i then
            error(("n = %d, descending = %s: position %d holds index %d, want %d"):format(
              n, tostring(down), k, got[k], want[k].i))
          end
        end
      end
    end
  end)
end)

describe("topk", function()
  it("picks the k largest (NaN counts as largest) or smallest, sorted", function()
    local v, i = recur.tensor{1, NAN, 0, 1, -2}:topk(2)
    near({NAN, 1}, v)
    assert.same({2, 1}, i:totable()) -- PyTorch's tie order is unspecified (it gave 2, 4)
    v, i = recur.tensor{1, NAN, 0, 1, -2}:topk(2, 1, false)
    assert.same({-2, 0}, v:totable())
    assert.same({5, 3}, i:totable())
    v, i = recur.tensor(A):topk(2, 1)
    assert.same({{3, 5, 5, 7}, {2, 2, 2, 1}}, v:totable())
    assert.same({{1, 2, 2, 3}, {3, 3, 1, 1}}, i:totable())
    v = recur.tensor(A):topk(0)
    assert.same({3, 0}, v:size())
  end)
  it("has a gradient on the picked elements only", function()
    local g = grad_of({4, -1, 7, 2}, function(x) return (x:topk(2)) end, recur.tensor{10, 20})
    assert.same({20, 0, 10, 0}, g:totable())
  end)
  it("rejects k out of range, naming the shape", function()
    fails_with(function() return recur.tensor(A):topk(5) end,
      "topk: k = 5 is out of range for dimension 2 of shape [3, 4] (size 4)")
    fails_with(function() return recur.tensor(A):topk(-1, 1) end,
      "topk: k = -1 is out of range for dimension 1 of shape [3, 4] (size 3)")
    fails_with(function() return recur.tensor(A):topk(1.5) end,
      "topk: argument #2 must be an integer, got 1.5")
    fails_with(function() return recur.tensor(A):topk(1, -3) end, "topk: dimension -3")
  end)
end)

describe("any, all, isnan, isinf, isfinite", function()
  local a = recur.tensor(A)
  it("reduce to 0/1 tensors, along a dim or over everything", function()
    assert.same({0, 0, 1, 1}, a:lt(0):any(1):totable())
    assert.same({1, 1, 0}, a:gt(-2):all(2):totable())
    assert.same({{1}, {1}, {0}}, a:gt(-2):all(2, true):totable())
    assert.equal(1, a:any():item())
    assert.equal(0, a:all():item())
    assert.same({}, a:all():size())
    -- NaN is nonzero (true), as in PyTorch
    assert.same({1, 0}, recur.tensor{{0, NAN}, {0, 0}}:any(2):totable())
    -- empty: any is false, all is true
    assert.equal(0, recur.zeros(0):any():item())
    assert.equal(1, recur.zeros(0):all():item())
    assert.same({1, 1, 1}, recur.zeros(0, 3):all(1):totable())
  end)
  it("classify floats", function()
    local x = recur.tensor{1, math.huge, -math.huge, NAN}
    assert.same({0, 0, 0, 1}, x:isnan():totable())
    assert.same({0, 1, 1, 0}, x:isinf():totable())
    assert.same({1, 0, 0, 0}, recur.isfinite(x):totable())
  end)
  it("reject bad arguments", function()
    fails_with(function() return a:any(3) end, "any: dimension 3 is out of range")
    fails_with(function() return a:all(1, "yes") end,
      "all: argument #3 (keepdim) must be a boolean, got string")
  end)
end)

describe("flip and roll", function()
  local x = recur.tensor{{1, 2, 3}, {4, 5, 6}}
  it("match PyTorch", function()
    assert.same({{6, 5, 4}, {3, 2, 1}}, x:flip(1, 2):totable())
    assert.same({{3, 2, 1}, {6, 5, 4}}, x:flip{-1}:totable())
    assert.same({{6, 1, 2}, {3, 4, 5}}, x:roll(1):totable())
    assert.same({{5, 6, 4}, {2, 3, 1}}, x:roll({1, -1}, {1, 2}):totable())
    assert.same({{{5, 6, 7}, {8, 9, 10}}, {{11, 12, 1}, {2, 3, 4}}}, recur.tensor(B):roll(-4):totable())
    assert.same({{{8, 9, 7}, {11, 12, 10}}, {{2, 3, 1}, {5, 6, 4}}},
      recur.tensor(B):roll({1, 5}, {1, 3}):totable())
    assert.same({{4, 5, 6}, {1, 2, 3}}, x:roll(-3, 1):totable())
  end)
  it("route gradients back through the permutation", function()
    local w = recur.tensor{{1, 2, 3}, {4, 5, 6}}
    assert.same({{6, 5, 4}, {3, 2, 1}}, grad_of(x:totable(), function(t) return t:flip(1, 2) end, w):totable())
    assert.same({{2, 3, 4}, {5, 6, 1}}, grad_of(x:totable(), function(t) return t:roll(1) end, w):totable())
  end)
  it("reject bad dims", function()
    fails_with(function() return x:flip() end, "flip: at least 1 dimensions required, got 0")
    fails_with(function() return x:flip(1, -2) end, "flip: dimension 1 appears more than once")
    fails_with(function() return x:flip(3) end, "flip: dimension 3 is out of range")
    fails_with(function() return x:roll({1, 2}, {1}) end, "roll: 2 shifts but 1 dimensions")
    fails_with(function() return x:roll({1, 2}) end, "roll: 2 shifts need a list of 2 dimensions")
    fails_with(function() return x:roll(0.5) end, "roll: argument #2 (shifts) must be an integer")
  end)
end)

describe("tril, triu, diag, trace", function()
  local a = recur.tensor(A)
  it("match PyTorch", function()
    assert.same({{3, 0, 0, 0}, {0, 5, 0, 0}, {2, 2, -3, 0}}, a:tril():totable())
    assert.same({{3, 1, 2, 1}, {0, 5, 5, -1}, {0, 2, -3, 7}}, a:triu(-1):totable())
    assert.same(B, recur.tensor(B):triu(-1):totable()) -- batched over the leading dims
    assert.same({{{1, 2, 0}, {4, 5, 6}}, {{7, 8, 0}, {10, 11, 12}}}, recur.tensor(B):tril(1):totable())
    assert.same({3, 5, -3}, a:diag():totable())
    assert.same({0, 2}, a:diag(-1):totable())
    assert.same({2, -1}, a:diag(2):totable())
    assert.same({0}, a:diag(4):size())
    assert.same({0}, a:diag(-2 ^ 53):size())
    assert.same({{0, 0, 0}, {1, 0, 0}, {0, 2, 0}}, recur.tensor{1, 2}:diag(-1):totable())
    assert.same({{0, 7}, {0, 0}}, recur.tensor{7}:diag(1):totable())
    assert.equal(5, a:trace():item())
    assert.same({}, a:trace():size())
  end)
  it("have gradients that mask, place and pick", function()
    local w = recur.tensor{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}}
    assert.same({{0, 2, 3, 4}, {0, 0, 7, 8}, {0, 0, 0, 12}},
      grad_of(A, function(x) return x:triu(1) end, w):totable())
    assert.same({{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}, grad_of(A, function(x) return x:trace() end):totable())
    assert.same({{0, 0, 7, 0}, {0, 0, 0, 8}, {0, 0, 0, 0}},
      grad_of(A, function(x) return x:diag(2) end, recur.tensor{7, 8}):totable())
    assert.same({5, 10}, grad_of({1, 2}, function(x) return x:diag(-1) end,
      recur.tensor{{1, 2, 3}, {5, 6, 7}, {9, 10, 11}}):totable())
  end)
  it("reject tensors of the wrong rank and huge diagonals", function()
    fails_with(function() return recur.ones(3):tril() end,
      "tril: the tensor must have at least 2 dimensions, got shape [3]")
    fails_with(function() return recur.ones(2, 2, 2):diag() end,
      "diag: the tensor must have 1 or 2 dimensions, got shape [2, 2, 2]")
    fails_with(function() return recur.ones(3):trace() end,
      "trace: the tensor must have 2 dimensions, got shape [3]")
    fails_with(function() return recur.ones(3):diag(2 ^ 30) end, "diag: a 1073741827 x 1073741827 result is too large")
    fails_with(function() return a:triu("x") end, "triu: argument #2 (diagonal) must be an integer")
  end)
end)

describe("tile and repeat_interleave", function()
  local x = recur.tensor{{1, 2, 3}, {4, 5, 6}}
  it("match PyTorch", function()
    assert.same({{1, 2, 3, 1, 2, 3}, {4, 5, 6, 4, 5, 6}}, x:tile(2):totable())
    assert.same({{{1, 2, 1, 2}}, {{1, 2, 1, 2}}}, recur.tensor{1, 2}:tile{2, 1, 2}:totable())
    assert.same({0, 3}, x:tile(0, 1):size())
    assert.same({{1, 2, 2}, {4, 5, 5}}, x:repeat_interleave({1, 2, 0}, 2):totable())
    assert.same({{3, 1, 2, 1}, {3, 1, 2, 1}, {2, 2, -3, 7}},
      recur.tensor(A):repeat_interleave(recur.tensor{2, 0, 1}, 1):totable())
    assert.same({1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6}, x:repeat_interleave(2):totable())
    assert.same({{1, 2, 3}, {1, 2, 3}, {4, 5, 6}, {4, 5, 6}}, x:repeat_interleave(2, 1):totable())
  end)
  it("sum the gradient of every copy", function()
    local w = recur.tensor{{1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12}}
    assert.same({{5, 7, 9}, {17, 19, 21}}, grad_of(x:totable(), function(t) return t:tile(1, 2) end, w):totable())
    assert.same({{3, 0, 6}, {7, 0, 11}},
      grad_of(x:totable(), function(t) return t:repeat_interleave({2, 0, 1}, 2) end,
        recur.tensor{{1, 2, 6}, {3, 4, 11}}):totable())
  end)
  it("reject bad counts", function()
    fails_with(function() return x:tile(-1) end, "tile: repetition 1 is negative (-1)")
    fails_with(function() return x:tile() end, "tile: at least 1 repetitions required, got 0")
    fails_with(function() return x:tile(2 ^ 30, 2 ^ 30) end, "tile: shape is too large (more than 2^40 elements)")
    fails_with(function() return x:repeat_interleave({1, 2}, 2) end,
      "repeat_interleave: 2 repeat counts for dimension 2 of shape [2, 3] (size 3)")
    fails_with(function() return x:repeat_interleave(-1) end, "repeat_interleave: repeat count 1 is -1")
    fails_with(function() return x:repeat_interleave({1, 0.5, 1}, 2) end,
      "repeat_interleave: repeat count 2 must be an integer, got 0.5")
    fails_with(function() return x:repeat_interleave(recur.ones(3, 1), 2) end, "got a 2-D tensor")
    fails_with(function() return x:repeat_interleave(2 ^ 39, 1) end, "repeat_interleave: the result is too large")
  end)
end)

describe("cumprod", function()
  it("matches PyTorch, zeros included", function()
    assert.same({2, 0, 0, 0}, recur.tensor{2, 0, 3, 4}:cumprod(1):totable())
    assert.same({{3, 3, 6, 6}, {0, 0, 0, 0}, {2, 4, -12, -84}}, recur.tensor(A):cumprod(2):totable())
    assert.same({{3, 1, 2, 1}, {0, 5, 10, -1}, {0, 10, -30, -7}}, recur.tensor(A):cumprod(-2):totable())
  end)
  it("has an exact gradient through zeros (PyTorch's numbers)", function()
    assert.same({1, 32, 0, 0}, grad_of({2, 0, 3, 4}, function(x) return x:cumprod(1) end):totable())
    near({{-21, 5.5, -3}, {4, -1.5, 0}},
      grad_of({{0.5, -2, 3}, {1.5, 0, -1}}, function(x) return x:cumprod(2) end,
        recur.tensor{{1, 2, 3}, {4, 5, 6}}))
  end)
  it("requires a dim", function()
    fails_with(function() return recur.ones(2):cumprod() end, "cumprod: argument #2 (dim) is required")
    fails_with(function() return recur.ones(2):cumprod(2) end, "cumprod: dimension 2 is out of range")
  end)
end)

describe("linspace and logspace", function()
  it("match PyTorch", function()
    near({0, 0.2, 0.4, 0.6, 0.8, 1}, recur.linspace(0, 1, 6))
    near({5, 1.6666667461395264, -1.6666667461395264, -5}, recur.linspace(5, -5, 4))
    assert.same({-1, -0.5, 0, 0.5, 1, 1.5, 2}, recur.linspace(-1, 2, 7):totable())
    assert.same({0}, recur.linspace(0, 1, 1):totable())
    assert.same({0}, recur.linspace(0, 1, 0):size())
    near({1, 3.1622776985168457, 10, 31.62277603149414, 100}, recur.logspace(0, 2, 5))
    assert.same({1, 2, 4, 8}, recur.logspace(0, 3, 4, 2):totable())
  end)
  it("reject a bad count", function()
    fails_with(function() return recur.linspace(0, 1, -1) end,
      "linspace: the number of points must be between 0 and 2^40, got -1")
    fails_with(function() return recur.linspace(0, 1, 2.5) end, "linspace: argument #3 must be an integer")
    fails_with(function() return recur.logspace(0, 1, 3, "e") end, "logspace: argument #4 must be a number")
  end)
end)

describe("gradcheck on random shapes", function()
  local check = recur.gradcheck
  local function randint(lo, hi) return recur.randint(lo, hi, {1}):item() end
  -- a random shape of nd dims (sizes 1-4) and a leaf of distinct values 0.5 apart (no ties, so
  -- the finite differences of sort never reorder)
  local function input(nd)
    local shape, n = {}, 1
    for i = 1, nd do shape[i] = randint(1, 4); n = n * shape[i] end
    local v = (recur.randperm(n) * 0.5 + recur.uniform({n}, -0.1, 0.1)):view(shape)
    return v:requires_grad(true), shape
  end
  for seed = 1, 4 do
    it("sort, topk, flip, roll, cumprod, tile, repeat_interleave (seed " .. seed .. ")", function()
      recur.seed(300 + seed)
      local a, shape = input(randint(1, 3))
      local nd = #shape
      local d = randint(1, nd)
      local k, shift, reps = randint(0, shape[d]), randint(-5, 5), randint(0, 2)
      assert.is_true(check(function(x) return (x:sort(d, seed % 2 == 0)) end, {a}))
      assert.is_true(check(function(x) return (x:topk(k, d, seed % 2 == 1)) end, {a}))
      assert.is_true(check(function(x) return x:flip(d) end, {a}))
      assert.is_true(check(function(x) return x:roll(shift, d) end, {a}))
      assert.is_true(check(function(x) return x:roll(2) end, {a}))
      assert.is_true(check(function(x) return (x * 0.5):cumprod(d) end, {a}))
      assert.is_true(check(function(x) return x:tile(2, 1, 3) end, {a}))
      assert.is_true(check(function(x) return x:repeat_interleave(reps, d) end, {a}))
      local counts = {}
      for i = 1, shape[d] do counts[i] = randint(0, 3) end
      assert.is_true(check(function(x) return x:repeat_interleave(counts, d) end, {a}))
    end)
    it("tril, triu, diag, trace (seed " .. seed .. ")", function()
      recur.seed(400 + seed)
      local a = input(2)
      local b = input(3)
      local v = input(1)
      local k = randint(-2, 2)
      assert.is_true(check(function(x) return x:tril(k) end, {a}))
      assert.is_true(check(function(x) return x:triu(k) end, {b}))
      assert.is_true(check(function(x) return x:diag(k) end, {a}))
      assert.is_true(check(function(x) return x:diag(k) end, {v}))
      assert.is_true(check(function(x) return x:trace() end, {a}))
    end)
  end
end)
