-- nn.BinaryStochastic: each estimator's gradient against the post's formula, written out by
-- hand in plain Lua (double precision) from the module's own samples; sampling, modes, slope
-- annealing, the REINFORCE hand-over and a recurrent use.
local recur = require "recur"
local nn = recur.nn
local T = recur.tensor

local err_of = require("tests.helpers").err_of

local function sigm(x) return 1 / (1 + math.exp(-x)) end

-- a [B, H] of pre-activations, w [B, H] of upstream weights: loss = sum(b * w), so g = w
local A = { { -1.5, -0.2, 0.3 }, { 0.05, 0.9, -0.7 }, { 2.0, -2.5, 0.6 }, { -0.4, 0.1, 1.2 } }
local W = { { 0.5, -1.0, 2.0 }, { 1.5, 0.25, -0.75 }, { -2.0, 1.0, 0.5 }, { 0.3, -0.6, 0.9 } }
local B, H = #A, #A[1]

local function near(want, got, tol, what)
  for i = 1, #want do
    for j = 1, #want[i] do
      local d = math.abs(want[i][j] - got[i][j])
      if not (d <= tol) then
        error(string.format("%s [%d][%d]: want %.7g, got %.7g", what or "", i, j, want[i][j], got[i][j]), 2)
      end
    end
  end
  return true
end

-- runs bsn on A, backward with g = W (and, for REINFORCE, per-example losses), returns b, a.grad
local function run(bsn, losses)
  local a = T(A):requires_grad(true)
  local b = bsn(a)
  if losses then nn.reinforce(bsn, T(losses)) end
  b:backward(T(W))
  return b:totable(), a.grad:totable()
end

describe("nn.BinaryStochastic forward", function()
  it("samples b = 1[z < sigm(m a)] in training and rounds in evaluation", function()
    recur.seed(3)
    local m = 0.7
    local bsn = nn.BinaryStochastic { slope = m }
    local a = T { -2, -0.5, 0, 0.4, 1.5 }
    local n, sums = 4000, recur.zeros(5)
    for _ = 1, n do sums = sums + bsn(a:reshape(1, 5)):reshape(5) end
    local freq = (sums / n):totable()
    for i, v in ipairs(a:totable()) do
      local p = sigm(m * v)
      -- 4 standard deviations of a binomial frequency
      assert.is_true(math.abs(freq[i] - p) <= 4 * math.sqrt(p * (1 - p) / n), "neuron " .. i)
    end
    bsn:eval()
    assert.same({ { 0, 0, 0, 1, 1 } }, bsn(a:reshape(1, 5)):totable())
    local every = bsn(recur.randn(50, 20)):reshape(1000):totable()
    for _, v in ipairs(every) do assert.is_true(v == 0 or v == 1) end
  end)
  it("chooses stochastic or deterministic separately for training and evaluation", function()
    local a = recur.randn(200, 10) * 0.1 -- p near 1/2: a sample differs from the step often
    local step = a:gt(0)
    local det_train = nn.BinaryStochastic { train = "deterministic" }
    assert.same(step:totable(), det_train(a):totable())
    local sto_eval = nn.BinaryStochastic { eval = "stochastic" }:eval()
    assert.are_not.same(step:totable(), sto_eval(a):totable())
    local default_eval = nn.BinaryStochastic {}:eval()
    assert.same(step:totable(), default_eval(a):totable())
  end)
end)

describe("nn.BinaryStochastic gradients (the post's formulas by hand)", function()
  it("pass-through straight-through: dL/da = dL/db", function()
    recur.seed(1)
    local _, grad = run(nn.BinaryStochastic { estimator = "pass_through", slope = 3 })
    assert.is_true(near(W, grad, 1e-7, "pass_through"))
  end)
  it("sigmoid-adjusted straight-through: dL/da = dL/db m sigm'(m a)", function()
    for _, m in ipairs { 1, 2.5 } do
      for _, mode in ipairs { "stochastic", "deterministic" } do
        recur.seed(2)
        local _, grad = run(nn.BinaryStochastic { estimator = "sigmoid_adjusted", slope = m, train = mode })
        local want = {}
        for i = 1, B do
          want[i] = {}
          for j = 1, H do
            local s = sigm(m * A[i][j])
            want[i][j] = W[i][j] * m * s * (1 - s)
          end
        end
        assert.is_true(near(want, grad, 1e-6, "sigmoid_adjusted m=" .. m .. " " .. mode))
      end
    end
  end)
  it("REINFORCE without a baseline: dL/da = m (b - sigm(m a)) L, dL/db ignored", function()
    local L = { 0.8, 2.0, 0.1, 1.3 }
    for _, m in ipairs { 1, 1.7 } do
      recur.seed(4)
      local b, grad = run(nn.BinaryStochastic { estimator = "reinforce", variance_adjusted = false, slope = m }, L)
      local want = {}
      for i = 1, B do
        want[i] = {}
        for j = 1, H do want[i][j] = m * (b[i][j] - sigm(m * A[i][j])) * L[i] end
      end
      assert.is_true(near(want, grad, 1e-6, "reinforce m=" .. m))
    end
  end)
  it("REINFORCE with the variance-adjusted baseline: EMA 0.95 from num 0, den 1, eps 1e-4", function()
    recur.seed(5)
    local bsn = nn.BinaryStochastic { estimator = "reinforce", size = H }
    local num, den = { 0, 0, 0 }, { 1, 1, 1 }
    local losses = { { 0.8, 2.0, 0.1, 1.3 }, { 1.1, 0.2, 0.9, 3.0 }, { 0.5, 0.5, 2.5, 0.7 } }
    for step, L in ipairs(losses) do
      local b, grad = run(bsn, L)
      local want = {}
      for j = 1, H do
        local sq, sqL = 0, 0
        for i = 1, B do
          local d = b[i][j] - sigm(A[i][j])
          sq, sqL = sq + d * d / B, sqL + d * d * L[i] / B
        end
        num[j] = 0.95 * num[j] + 0.05 * sqL -- updated before the baseline is read
        den[j] = 0.95 * den[j] + 0.05 * sq
      end
      for i = 1, B do
        want[i] = {}
        for j = 1, H do
          local lbar = num[j] / (den[j] + 1e-4)
          want[i][j] = (b[i][j] - sigm(A[i][j])) * (L[i] - lbar)
        end
      end
      assert.is_true(near(want, grad, 1e-6, "adjusted REINFORCE step " .. step))
      assert.is_true(near({ num, den }, { bsn.baseline_num:totable(), bsn.baseline_den:totable() }, 1e-6, "EMAs"))
    end
  end)
  it("a deterministic REINFORCE forward differentiates as pass-through", function()
    local bsn = nn.BinaryStochastic { estimator = "reinforce", size = H, train = "deterministic" }
    local b, grad = run(bsn)
    assert.is_true(near(W, grad, 1e-7, "deterministic reinforce"))
    for i = 1, B do
      for j = 1, H do assert.equal(A[i][j] > 0 and 1 or 0, b[i][j]) end
    end
    assert.same({ 0, 0, 0 }, bsn.baseline_num:totable())
  end)
  it("sigmoid-adjusted ST gives the layer in front a sigmoid's gradient", function()
    -- identity through the sample only: the weights below get what nn.Sigmoid would give them
    recur.seed(6)
    local lin = nn.Linear(5, 4)
    local x = recur.randn(3, 5)
    local g = recur.randn(3, 4)
    local bsn = nn.BinaryStochastic { slope = 1 }
    bsn(lin(x)):backward(g)
    local via_bsn = lin.weight.grad:clone()
    lin:zero_grad()
    recur.nn.functional.sigmoid(lin(x)):backward(g)
    assert.is_true(near(lin.weight.grad:totable(), via_bsn:totable(), 1e-6, "weight gradient"))
  end)
end)

describe("nn.BinaryStochastic slope annealing", function()
  it("multiplies the slope by the rate; the forward uses it; the state dict keeps it", function()
    local net = nn.Sequential { nn.Linear(4, 3), nn.BinaryStochastic {}, nn.Linear(3, 3), nn.BinaryStochastic { estimator = "pass_through" } }
    for _ = 1, 3 do nn.anneal_slope(net, 1.1) end
    assert.is_near(1.331, net[2]:get_slope(), 1e-5)
    assert.is_near(1.331, net[4]:get_slope(), 1e-5)
    assert.is_near(1.331, net:state_dict()["2.slope"]:item(), 1e-5)
    recur.seed(7)
    local m = net[2]:get_slope()
    local _, grad = run(net[2]:set_slope(m))
    local want = {}
    for i = 1, B do
      want[i] = {}
      for j = 1, H do
        local s = sigm(m * A[i][j])
        want[i][j] = W[i][j] * m * s * (1 - s)
      end
    end
    assert.is_true(near(want, grad, 1e-6, "annealed slope"))
  end)
end)

describe("nn.BinaryStochastic in a recurrent net", function()
  it("REINFORCE on every step of a hand-unrolled RNN with one loss per sequence", function()
    recur.seed(8)
    local Hn, Bn, Tn = 4, 3, 5
    local wx, wh = nn.Linear(2, Hn), nn.Linear(Hn, Hn, { bias = false })
    local bsn = nn.BinaryStochastic { estimator = "reinforce", variance_adjusted = false }
    local xs = recur.randn(Tn, Bn, 2)
    local h = recur.zeros(Bn, Hn)
    local pre, outs = {}, {}
    for t = 1, Tn do
      -- REINFORCE ignores dL/db, so nothing flows back through h: a leaf per step holds the
      -- step's gradient without changing it
      pre[t] = (wx(xs:select(1, t)) + wh(h)):detach():requires_grad(true)
      h = bsn(pre[t])
      outs[t] = h
    end
    local L = T { 0.5, 1.5, 2.5 }
    assert.equal(1, nn.reinforce(nn.Sequential { wx, wh, bsn }, L))
    recur.stack(outs, 1):sum():backward()
    local Lt = L:totable()
    for t = 1, Tn do
      local a, b, g = pre[t]:totable(), outs[t]:totable(), pre[t].grad:totable()
      local want = {}
      for i = 1, Bn do
        want[i] = {}
        for j = 1, Hn do want[i][j] = (b[i][j] - sigm(a[i][j])) * Lt[i] end
      end
      assert.is_true(near(want, g, 1e-6, "step " .. t))
    end
  end)
  it("straight-through on the [T, B, H] output of nn.RNN, and REINFORCE with a [B] loss", function()
    recur.seed(9)
    local rnn = nn.RNN { cell = "gru", input = 3, hidden = 4 }
    local x = recur.randn(6, 2, 3)
    local st = nn.BinaryStochastic {}
    local out = rnn(x)
    st(out):sum():backward()
    assert.is_true(rnn:parameters()[1].grad:abs():sum():item() > 0)
    local rf = nn.BinaryStochastic { estimator = "reinforce", size = 4 }
    local y = rf(rnn(x))
    assert.truthy(err_of(nn.reinforce, rf, T { 1, 2, 3 }):find("do not match the output's leading dimensions %[6, 2%]"))
    nn.reinforce(rf, T { 1, 2 })
    rnn:zero_grad()
    y:sum():backward()
    assert.is_true(rnn:parameters()[1].grad:abs():sum():item() > 0)
  end)
end)

describe("nn.BinaryStochastic hand-over", function()
  it("skips a dropped forward of another shape that the collector has not taken yet", function()
    local rf = nn.BinaryStochastic { estimator = "reinforce", variance_adjusted = false }
    do local _ = rf(recur.randn(7, 3):requires_grad(true)) end -- a graph nobody holds
    local a = recur.randn(2, 3):requires_grad(true)
    local y = rf(a)
    rf:reinforce(T { 1, 2 })
    y:sum():backward()
    assert.is_true(a.grad:abs():sum():item() > 0)
  end)
end)

describe("nn.BinaryStochastic errors", function()
  it("names the option, the shapes and the missing hand-over", function()
    assert.truthy(err_of(nn.BinaryStochastic, { estimator = "st" }):find('estimator must be "pass_through"'))
    assert.truthy(err_of(nn.BinaryStochastic, { train = "sample" }):find('train must be "stochastic" or "deterministic"'))
    assert.truthy(err_of(nn.BinaryStochastic, { slope = 0 }):find("slope must be a finite number > 0"))
    assert.truthy(err_of(nn.BinaryStochastic, { estimator = "reinforce" }):find("give size ="))
    assert.truthy(err_of(nn.BinaryStochastic, { size = 3 }):find('size is an option of estimator = "reinforce" only'))
    assert.truthy(err_of(nn.BinaryStochastic, { colour = 1 }):find("unknown option 'colour'"))
    local rf = nn.BinaryStochastic { estimator = "reinforce", size = 3 }
    assert.truthy(err_of(rf, recur.randn(2, 4)):find("does not end with the 3 neurons"))
    local a = recur.randn(2, 3):requires_grad(true)
    local y = rf(a)
    assert.truthy(err_of(function() y:sum():backward() end)
      :find("REINFORCE backward without the per%-example loss: call nn.reinforce%(model, losses%).-shape %[2%]"))
    assert.truthy(err_of(nn.reinforce, 5, T { 1 }):find("nn.reinforce: argument #1 must be a module"))
    assert.truthy(err_of(function() rf:anneal(-1) end):find("the rate must be a number > 0"))
  end)
end)
