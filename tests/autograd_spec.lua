-- The tape: accumulation, zero_grad, detach, no_grad, retain_graph, Lua-defined ops.
local recur = require "recur"
local T = recur.tensor

local err_of = require("tests.helpers").err_of

describe("backward", function()
  it("computes the gradient of a scalar", function()
    local x = T(3):requires_grad(true)
    local y = x * x * 2 + x   -- dy/dx = 4x + 1 = 13
    y:backward()
    assert.equal(13, x.grad:item())
  end)
  it("accumulates until zero_grad", function()
    local x = T{1, 2}:requires_grad(true)
    ;(x * 3):backward(recur.ones(2))
    ;(x * 3):backward(recur.ones(2))
    assert.same({6, 6}, x.grad:totable())
    x:zero_grad()
    assert.is_nil(x.grad)
    ;(x * 5):backward(recur.ones(2))
    assert.same({5, 5}, x.grad:totable())
  end)
  it("sums gradients over every path (diamond)", function()
    local x = T(2):requires_grad(true)
    local a, b = x * 3, x * x
    ;(a * b):backward()       -- d(3x^3)/dx = 9x^2 = 36
    assert.equal(36, x.grad:item())
  end)
  -- a node's incoming gradients are summed in a buffer: in place once the buffer holds the
  -- only reference to its sum, never into a tensor someone else holds (add hands its own
  -- gradient to both inputs; the root's gradient is the caller's)
  it("sums fan-out gradients without writing into a shared one", function()
    local x = recur.randn(3, 4):requires_grad(true)
    local y = x * 1
    local s = y + y
    local t = (s + y) + y:exp() + y * 2
    t:sum():backward()
    local want = (x:detach():exp() + 5):totable()
    local got = x.grad:totable()
    for i = 1, 3 do
      for j = 1, 4 do assert.is_true(math.abs(got[i][j] - want[i][j]) < 1e-5) end
    end
    local a = recur.randn(2, 3):requires_grad(true)
    local b = a * 1
    local g = recur.ones(2, 3)
    local h = g:view(2, 3) -- a view of the caller's gradient too
    local r = b + b + b
    r:backward(g)
    assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, g:totable())
    assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, h:totable())
    assert.are.same({ { 3, 3, 3 }, { 3, 3, 3 } }, a.grad:totable())
  end)

  it("needs an explicit gradient for a non-scalar root", function()
    local x = recur.ones(2, 2):requires_grad(true)
    local e = err_of(function() (x * 2):backward() end)
    assert.truthy(e:find("backward: the root has shape %[2, 2%]; a gradient of that shape must be given"), e)
    e = err_of(function() (x * 2):backward(recur.ones(3)) end)
    assert.truthy(e:find("gradient shape %[3%] does not match the root's shape %[2, 2%]"), e)
    e = err_of(function() (x * 2):backward("x") end)
    assert.truthy(e:find("backward: argument #2"), e)
  end)
  it("refuses a root without history", function()
    assert.truthy(err_of(function() recur.ones(1):backward() end):find("does not require grad"))
  end)
  it("frees the tape after backward unless retain_graph", function()
    local x = T(2):requires_grad(true)
    local y = x:exp()
    y:backward({retain_graph = true})
    y:backward()
    assert.is_near(2 * math.exp(2), x.grad:item(), 1e-4)
    local e = err_of(function() y:backward() end)
    assert.truthy(e:find("retain_graph"), e)
  end)
  it("handles long chains without recursion", function()
    local x = T(1):requires_grad(true)
    local y = x
    for _ = 1, 20000 do y = y * 1 end
    y:backward()
    assert.equal(1, x.grad:item())
  end)
  it("backward of several roots at once", function()
    local x = T{1, 2}:requires_grad(true)
    recur.backward({x * 2, x * 3}, {recur.ones(2), recur.ones(2)})
    assert.same({5, 5}, x.grad:totable())
  end)
end)

describe("graph control", function()
  it("detach cuts history but shares data", function()
    local x = T{1, 2}:requires_grad(true)
    local d = (x * 2):detach()
    assert.is_false(d:requires_grad())
    assert.is_true(d.is_leaf)
    local y = (x * 2)
    local z = y:detach()
    z:set(100, 1)
    assert.equal(100, y:get(1))
  end)
  it("no_grad records nothing and returns the function's results", function()
    local x = T{1, 2}:requires_grad(true)
    local y, k = recur.no_grad(function() return x * 2, 7 end)
    assert.is_false(y:requires_grad())
    assert.equal(7, k)
    assert.is_true(recur.is_grad_enabled())
    assert.truthy(err_of(recur.no_grad, function() error("boom") end):find("boom"))
    assert.is_true(recur.is_grad_enabled()) -- restored after an error
  end)
  it("requires_grad(false) on a computed tensor is an error", function()
    local x = T{1}:requires_grad(true)
    assert.truthy(err_of(function() (x * 2):requires_grad(false) end):find("use detach"))
  end)
  it("grad can be set and cleared", function()
    local x = T{1, 2}:requires_grad(true)
    x.grad = T{3, 4}
    assert.same({3, 4}, x.grad:totable())
    x.grad = nil
    assert.is_nil(x.grad)
    assert.truthy(err_of(function() x.grad = T{1} end):find("grad: shape %[1%] does not match"))
  end)
end)

describe("recur.Function", function()
  local STE = recur.Function{
    forward = function(ctx, x) return x:round() end,
    backward = function(ctx, g) return g end,
  }
  it("mixes with C ops on one tape", function()
    local x = T{0.2, 0.7, 1.6}:requires_grad(true)
    local y = STE(x * 2) * T{1, 2, 3}
    assert.same({0, 2, 9}, y:totable())
    y:backward(recur.ones(3))
    assert.same({2, 4, 6}, x.grad:totable())
  end)
  it("saves tensors for backward and sees needs_input_grad", function()
    local seen
    local Square = recur.Function{
      forward = function(ctx, x, k)
        ctx:save_for_backward(x)
        ctx.k = k
        seen = seen or ctx.needs_input_grad
        return x * x * k
      end,
      backward = function(ctx, g)
        local x = ctx.saved_tensors[1]
        return g * x * 2 * ctx.k, nil
      end,
    }
    local x = T{1, 2, 3}:requires_grad(true)
    assert.is_true(recur.gradcheck(function(v) return Square.apply(v, 3) end, {x}))
    assert.same({true, false}, seen)
  end)
  it("supports several outputs", function()
    local Split = recur.Function{
      forward = function(ctx, x) return x * 2, x * 3 end,
      backward = function(ctx, g1, g2) return g1 * 2 + g2 * 3 end,
    }
    local x = T{1, 2}:requires_grad(true)
    local a, b = Split(x)
    ;(a + b * 10):backward(recur.ones(2))
    assert.same({32, 32}, x.grad:totable())
  end)
  it("reports errors from Lua backward as backward errors", function()
    local Bad = recur.Function{
      forward = function(ctx, x) return x * 1 end,
      backward = function(ctx, g) error("my backward failed") end,
    }
    local x = T{1}:requires_grad(true)
    assert.truthy(err_of(function() Bad(x):backward() end):find("my backward failed"))
    local Wrong = recur.Function{
      forward = function(ctx, x) return x * 1 end,
      backward = function(ctx, g) return recur.ones(5) end,
    }
    assert.truthy(err_of(function() Wrong(x):backward() end):find("produced a gradient of shape %[5%]"))
    assert.truthy(err_of(recur.Function, {forward = print}):find("needs forward and backward"))
    local NoT = recur.Function{ forward = function() return 1 end, backward = function() end }
    assert.truthy(err_of(NoT, x):find("forward result 1 must be a tensor"))
  end)
  it("trains through a straight-through estimator", function()
    -- fit w so that round(w * x) matches targets; plain round would give zero gradient
    local x = T{1, 2, 3, 4}
    local target = T{2, 4, 6, 8}
    local w = T{0.3}:requires_grad(true)
    local first, last
    for step = 1, 60 do
      local pred = STE(w * x)
      local diff = pred - target
      local loss = (diff * diff):backward(recur.ones(4)) or nil
      local l = 0
      for _, v in ipairs(diff:totable()) do l = l + v * v end
      if step == 1 then first = l end
      last = l
      recur.no_grad(function() w:add_(w.grad, -0.01) end)
      w:zero_grad()
    end
    assert.truthy(first > 50)
    assert.equal(0, last)
    assert.is_near(2, w:item(), 0.2)
  end)
end)

describe("check_numerics", function()
  it("makes a NaN or Inf loss an error in backward", function()
    local x = recur.tensor{1, -1}:requires_grad(true)
    local loss = x:log():sum()   -- log(-1) = NaN
    recur.check_numerics(true)
    local ok, e = pcall(function() loss:backward({retain_graph = true}) end)
    recur.check_numerics(false)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("backward: the root holds NaN at element 1 %(check_numerics is on%)"), e)
    loss:backward() -- off again: runs
  end)
end)
