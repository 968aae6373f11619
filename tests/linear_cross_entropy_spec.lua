-- nn.linear_cross_entropy: the fused readout loss against cross_entropy(linear(h)) and central
-- differences, over several blocks of rows, with a mask, every reduction and without a bias.
local recur = require "recur"
local nn = require "recur.nn"
local F = nn.functional

local function relerr(a, b)
  local d = (a - b):abs():max():item()
  return d / math.max(b:abs():max():item(), 1e-6)
end

local function leaf(t) return t:requires_grad(true) end

-- loss and gradients of fn(h, w, b) (b may be nil)
local function run(fn, h, w, b)
  for _, p in ipairs { h, w, b } do p.grad = nil end
  local l = fn(h, w, b)
  local s = l:numel() > 1 and (l * recur.arange(1, l:numel() + 1):view(l:size())):sum() or l
  s:backward()
  return l:detach(), h.grad:clone(), w.grad:clone(), b and b.grad:clone()
end

local function targets(n, V)
  local t = {}
  for i = 1, n do t[i] = (i * 7919) % V + 1 end
  return recur.tensor(t)
end

describe("nn.linear_cross_entropy", function()
  it("equals cross_entropy(linear(h)) in value and gradients, over several blocks of rows", function()
    recur.seed(5)
    -- V = 3000 gives blocks of 1398 rows: 3000 rows make three, the last short
    local R, D, V = 3000, 6, 3000
    local h, w, b = leaf(recur.randn(R, D)), leaf(recur.randn(V, D) * 0.5), leaf(recur.randn(V))
    local y = targets(R, V)
    local mask = recur.tensor((function()
      local m = {}
      for i = 1, R do m[i] = i % 5 == 0 and 0 or (i % 3) * 0.5 + 0.5 end
      return m
    end)())
    for _, o in ipairs { {}, { reduction = "sum" }, { reduction = "none" }, { mask = mask },
      { mask = mask, reduction = "none" } } do
      local fused = { run(function(a, c, d) return nn.linear_cross_entropy(a, c, d, y, o) end, h, w, b) }
      local ref = { run(function(a, c, d) return nn.cross_entropy(F.linear(a, c, d), y, o) end, h, w, b) }
      for k, what in ipairs { "loss", "grad h", "grad W", "grad b" } do
        local e = relerr(fused[k], ref[k])
        assert(e < 1e-5, string.format("%s (%s): relative error %.3g", what,
          o.reduction or "mean", e))
      end
    end
  end)

  it("works without a bias and on [T, B, D] input", function()
    recur.seed(6)
    local h, w = leaf(recur.randn(4, 3, 5)), leaf(recur.randn(11, 5))
    local y = targets(12, 11):view(4, 3)
    local f = { run(function(a, c) return nn.linear_cross_entropy(a, c, nil, y) end, h, w) }
    local r = { run(function(a, c) return nn.cross_entropy(F.linear(a, c), y) end, h, w) }
    for k = 1, 3 do assert.is_true(relerr(f[k], r[k]) < 1e-5) end
    assert.are.same({ 4, 3, 5 }, h.grad:size())
  end)

  it("scales its gradients by the upstream one, twice with retain_graph, and needs no grad to run", function()
    recur.seed(8)
    local h, w, b = leaf(recur.randn(6, 4)), leaf(recur.randn(9, 4)), leaf(recur.randn(9))
    local y = targets(6, 9)
    local _, gh = run(function(a, c, d) return nn.cross_entropy(F.linear(a, c, d), y) end, h, w, b)
    h.grad = nil
    local l = nn.linear_cross_entropy(h, w, b, y, { reduction = "sum" }) * 3
    l:backward { retain_graph = true }
    l:backward()
    -- sum = 6 x mean; two backward calls add up
    assert.is_true(relerr(h.grad, gh * 36) < 1e-5)
    local v = recur.no_grad(function() return nn.linear_cross_entropy(h, w, b, y) end)
    assert.is_nil(v.grad_fn)
    assert.is_true(math.abs(v:item() - nn.cross_entropy(F.linear(h, w, b), y):item()) < 1e-5)
  end)

  it("passes a finite-difference gradient check", function()
    recur.seed(7)
    local h, w, b = leaf(recur.randn(5, 4)), leaf(recur.randn(9, 4)), leaf(recur.randn(9))
    local y = targets(5, 9)
    assert.is_true(recur.gradcheck(function(a, c, d)
      return nn.linear_cross_entropy(a, c, d, y, { reduction = "none" })
    end, { h, w, b }))
    assert.is_true(recur.gradcheck(function(a, c, d)
      return F.linear_cross_entropy(a, c, d, y, { mask = recur.tensor { 1, 0, 2, 1, 0.5 } })
    end, { h, w, b }))
  end)

  it("gives zero weight and bias gradients for no rows (the products write the first block)", function()
    local w, b = leaf(recur.randn(7, 4)), leaf(recur.randn(7))
    for _, red in ipairs { "sum", "none" } do
      local h = leaf(recur.zeros(0, 4))
      w.grad, b.grad = nil, nil
      local l = nn.linear_cross_entropy(h, w, b, recur.zeros(0), { reduction = red })
      l:sum():backward()
      assert.equal(0, w.grad:abs():sum():item(), red)
      assert.equal(0, b.grad:abs():sum():item(), red)
      assert.are.same({ 0, 4 }, h.grad:size())
    end
  end)

  it("keeps its saved gradients when backward runs twice with upstream gradients of 1", function()
    -- the engine is handed the gradients made in forward as they are (no copy): a second
    -- backward must see them unchanged
    recur.seed(9)
    local h, w, b = leaf(recur.randn(6, 4)), leaf(recur.randn(9, 4)), leaf(recur.randn(9))
    local l = nn.linear_cross_entropy(h, w, b, targets(6, 9))
    l:backward { retain_graph = true }
    local gw, gh = w.grad:clone(), h.grad:clone()
    l:backward()
    assert.is_true(relerr(w.grad, gw * 2) < 1e-6)
    assert.is_true(relerr(h.grad, gh * 2) < 1e-6)
  end)

  it("names itself and the shapes on bad input", function()
    local h, w = recur.randn(3, 4), recur.randn(7, 4)
    local function err(f)
      local ok, e = pcall(f)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("linear_cross_entropy: target 8 at position 2 is not a class index in %[1, 7%]",
      err(function() nn.linear_cross_entropy(h, w, nil, recur.tensor { 1, 8, 2 }) end))
    assert.matches("linear_cross_entropy: mask shape %[2%] does not match the target positions %[3%]",
      err(function() nn.linear_cross_entropy(h, w, nil, recur.tensor { 1, 2, 3 },
        { mask = recur.tensor { 1, 1 } }) end))
    assert.matches("linear_cross_entropy: input shape %[3, 4%] does not match weight shape %[7, 5%]",
      err(function() nn.linear_cross_entropy(h, recur.randn(7, 5), nil, recur.tensor { 1, 2, 3 }) end))
    assert.matches("linear_cross_entropy: target shape %[2%] does not match input shape",
      err(function() nn.linear_cross_entropy(h, w, nil, recur.tensor { 1, 2 }) end))
    assert.matches("linear_cross_entropy: bias shape %[6%]",
      err(function() nn.linear_cross_entropy(h, w, recur.randn(6), recur.tensor { 1, 2, 3 }) end))
  end)
end)
