-- recur._profile (runtime/profile.c, bindings/profile.c): while it runs, backward's nodes add
-- their time under their names and the layer wavefront its two-thread runs; stopping returns
-- what was added (nil when nothing ran). Only counts and orderings are checked, never a time.
local recur = require("recur")
local rnn = require("recur.rnn")
local H = require("tests.helpers")
local BIN = os.getenv("RECUR_BIN") or "build/recur"

local function by_name(p)
  local out = {}
  for _, n in ipairs(p.backward) do out[n.name] = n end
  return out
end

describe("recur._profile", function()
  after_each(function() recur._profile(false) end)

  it("returns nil when no profile runs", function()
    assert.is_nil(recur._profile(false))
  end)

  it("counts every node backward runs, by name, slowest first", function()
    recur._profile(true)
    for _ = 1, 3 do
      local a = recur.randn(8, 8):requires_grad_()
      local b = recur.randn(8, 8):requires_grad_()
      local loss = a:matmul(b):tanh():sum()
      loss:backward()
    end
    local p = recur._profile(false)
    local n = by_name(p)
    assert.are.equal(3, n.MatmulBackward.calls)
    assert.are.equal(3, n.TanhBackward.calls)
    assert.are.equal(3, n.SumBackward.calls)
    assert.are.equal(6, n.AccumulateGrad.calls) -- a and b, three times
    for i, e in ipairs(p.backward) do
      assert.is_true(e.seconds >= 0)
      if i > 1 then assert.is_true(e.seconds <= p.backward[i - 1].seconds) end
    end
    assert.are.equal(0, p.lost)
    assert.are.equal(0, p.wave.forward.runs)
    assert.are.equal(0, p.wave.backward.runs)
    assert.is_nil(recur._profile(false)) -- stopped
  end)

  it("adds nothing while stopped, and a start drops the profile in progress", function()
    local a = recur.randn(4):requires_grad_()
    local la = (a * a):sum()
    la:backward() -- not profiled
    recur._profile(true)
    local b = recur.randn(4):requires_grad_()
    local lb = (b * b):sum()
    lb:backward()
    recur._profile(true) -- starts again: the MulBackward above is dropped
    local c = recur.randn(4):requires_grad_()
    c:sum():backward()
    local n = by_name(recur._profile(false))
    assert.is_nil(n.MulBackward)
    assert.are.equal(1, n.SumBackward.calls)
  end)

  it("times the layer wavefront's two-thread runs, forward and backward", function()
    local before = recur._rnn_wave("on") -- two threads even with one BLAS thread
    recur.seed(3)
    local m = rnn.RNN { cell = "lstm", input = 6, hidden = 16, layers = 3 }
    local x = recur.randn(12, 4, 6):requires_grad_()
    recur._profile(true)
    local y = m(x)
    y:sum():backward()
    local p = recur._profile(false)
    recur._rnn_wave(before)
    assert.are.equal(1, by_name(p).RNNStackBackward.calls)
    local f, b = p.wave.forward, p.wave.backward
    assert.are.equal(1, f.runs)
    assert.are.equal(1, b.runs)
    for _, w in ipairs { f, b } do
      assert.is_true(w.seconds > 0)
      for k = 1, 2 do
        assert.is_true(w.wait[k] >= 0 and w.wait[k] <= w.seconds)
        assert.is_true(w.done[k] > 0 and w.done[k] <= w.seconds)
      end
    end
    assert.is_nil(f.products)
    for k = 1, 2 do assert.is_true(b.products[k] >= b.done[k] and b.products[k] <= b.seconds) end
  end)

  it("names the function and the argument when the argument is not a boolean", function()
    assert.has_error(function() recur._profile("yes") end,
      "_profile: argument #1 must be a boolean (got string)")
    assert.has_error(function() recur._profile() end,
      "_profile: argument #1 must be a boolean (got no value)")
  end)

  it("is what tools/profile_step.lua prints, with its parts and nodes", function()
    local out, code = H.sh(H.q(BIN) .. " tools/profile_step.lua --hidden 16 --steps 3 --threads 2")
    assert.are.equal(0, code, out)
    for _, want in ipairs { "parts %(median ms a step%)", "backward's nodes", "LinearBackward",
      "CrossEntropyBackward", "IndexSelectBackward" } do
      assert.is_truthy(out:find(want), want .. " missing:\n" .. out)
    end
    out, code = H.sh(H.q(BIN) .. " tools/profile_step.lua --steps 0")
    assert.are.equal(2, code, out)
    assert.is_truthy(out:find("must be at least 1", 1, true), out)
  end)
end)
