-- models/r2rt_toy.lua, RNN I's toy problem: the generator's rule and its wrap at the start,
-- the batching, the analytic entropies (the post's printed values), the Glorot initial values,
-- and the post's concat cell in Lua against the fused "rnn" cell.
local recur = require("recur")
local toy = require("models.r2rt_toy")

local function list(t)
  local out = {}
  for i = 1, t:numel() do out[i] = t:get(i) end
  return out
end

describe("r2rt_toy: the data", function()
  it("gives Y = 1 with the post's threshold for each (X_{t-3}, X_{t-8})", function()
    recur.seed(11)
    local x, y = toy.gen_data(400000)
    assert.are.same({ 400000 }, x:size())
    local xs, ys = list(x), list(y)
    local ones, count = {}, {}
    for t = 9, #xs do
      local k = xs[t - 3] * 2 + xs[t - 8]
      count[k] = (count[k] or 0) + 1
      ones[k] = (ones[k] or 0) + ys[t]
    end
    -- about 100,000 positions per case: the frequency's sd is below 0.0016
    for k, p in pairs({ [0] = 0.5, [1] = 0.25, [2] = 1.0, [3] = 0.75 }) do
      assert.is_true(math.abs(ones[k] / count[k] - p) < 0.01,
        string.format("case %d: %.4f vs %.2f", k, ones[k] / count[k], p))
    end
    assert.are.equal(count[2], ones[2])  -- p = 1: every draw is <= 1
    assert.is_true(math.abs(x:mean():item() - 0.5) < 0.01)
  end)

  it("wraps X[t-3] and X[t-8] to the end of the series for t < 3, t < 8 (Python's X[i-3])", function()
    local N = 20
    local x = recur.zeros(N)
    x:set(1, N)                                   -- only the last X is 1 (set(value, index))
    -- u = 0.9: Y = 1 only where p = 1 (X_{t-3} = 1, X_{t-8} = 0): 1-based t = 3 reads x[N]
    local y = list(toy.labels(x, recur.full({ N }, 0.9)))
    for t = 1, N do assert.are.equal(t == 3 and 1 or 0, y[t], "t = " .. t) end
    -- u = 0.4: Y = 0 only where p = 0.25 (X_{t-8} = 1 alone): t = 8 reads x[N]
    y = list(toy.labels(x, recur.full({ N }, 0.4)))
    for t = 1, N do assert.are.equal(t == 8 and 0 or 1, y[t], "t = " .. t) end
  end)

  it("cuts the series into batch_size contiguous rows, time first, the tail dropped", function()
    local m = toy.batch_matrix(recur.arange(1, 1006), 10)  -- 1005 values: 100 per row
    assert.are.same({ 100, 10 }, m:size())
    assert.are.equal(1, m:get(1, 1))
    assert.are.equal(100, m:get(100, 1))
    assert.are.equal(101, m:get(1, 2))
    assert.are.equal(1000, m:get(100, 10))
    assert.has_error(function() toy.batch_matrix(recur.zeros(5), 10) end)
  end)

  it("takes size // batch_size // num_steps windows per epoch", function()
    recur.seed(3)
    local r = toy.train { num_steps = 7, state = 3, size = 2000, batch_size = 20, log_every = 5 }
    assert.are.equal(100 // 7, r.steps_per_epoch)
    assert.are.equal(14, #r.losses)
    assert.are.equal(2, #r.curve)
    assert.are.equal(10, r.curve[2].step)
    local mean = 0
    for i = 6, 10 do mean = mean + r.losses[i] / 5 end
    assert.is_true(math.abs(r.curve[2].loss - mean) < 1e-12)
  end)
end)

describe("r2rt_toy: the analytic cross-entropies", function()
  it("are the post's to 6 decimals", function()
    local H = toy.entropies()
    assert.are.equal("0.661563", string.format("%.6f", H.neither))
    assert.are.equal("0.519167", string.format("%.6f", H.t3))
    assert.are.equal("0.454454", string.format("%.6f", H.both))
    assert.are.equal("0.627741", string.format("%.6f", H.t8))
  end)
end)

describe("r2rt_toy: the model", function()
  it("draws Glorot-uniform weights and zero biases", function()
    recur.seed(5)
    local p = toy.init_params(16)
    local a, u = math.sqrt(6 / (2 + 32)), math.sqrt(6 / 18)
    assert.are.same({ 18, 16 }, p.W:size())
    assert.are.same({ 16, 2 }, p.U:size())
    local wmax, umax = p.W:abs():max():item(), p.U:abs():max():item()
    assert.is_true(wmax <= a and wmax > 0.9 * a)
    assert.is_true(umax <= u and umax > 0.8 * u)
    assert.are.equal(0, p.b:abs():sum():item() + p.bp:abs():sum():item())
  end)

  it("gives the same window loss and gradients with the fused cell and the Lua concat cell", function()
    recur.seed(9)
    local init = toy.init_params(4)
    local fused = toy.Model { state = 4, cell = "fused", params = init }
    local lua = toy.Model { state = 4, cell = "lua", params = init }
    local x, y = recur.rand(6, 3):lt(0.5), recur.rand(6, 3):lt(0.5)
    local h = recur.randn(3, 4):tanh()
    local lf, hf = fused:loss(x, y, h)
    local ll, hl = lua:loss(x, y, h)
    assert.is_true(math.abs(lf:item() - ll:item()) < 1e-6)
    assert.is_true((hf - hl):abs():max():item() < 1e-6)
    lf:backward()
    ll:backward()
    local gW = recur.cat({ fused.params[1].grad, fused.params[2].grad }, 1)
    assert.is_true((gW - lua.params[1].grad):abs():max():item() < 1e-6)
    for k = 3, 5 do
      assert.is_true((fused.params[k].grad - lua.params[k - 1].grad):abs():max():item() < 1e-6)
    end
  end)

  it("trains to the same losses with either cell, the state carried and detached", function()
    local runs = {}
    for _, cell in ipairs({ "fused", "lua" }) do
      recur.seed(21)
      runs[cell] = toy.train { num_steps = 5, state = 4, size = 40000, batch_size = 20, cell = cell,
        log_every = 50 }
    end
    assert.are.equal(400, #runs.fused.losses)
    local d = 0
    for i, l in ipairs(runs.fused.losses) do d = math.max(d, math.abs(l - runs.lua.losses[i])) end
    assert.is_true(d < 1e-5, "max difference " .. d)
    -- it learns: the last 100 steps beat the loss of knowing nothing
    local last = 0
    for i = 301, 400 do last = last + runs.fused.losses[i] / 100 end
    assert.is_true(last < toy.entropies().neither, "last 100 steps: " .. last)
  end)

  it("refuses an unknown cell", function()
    assert.has_error(function() toy.Model { cell = "lstm" } end)
  end)
end)

describe("r2rt_toy: the evaluation probe", function()
  it("scores a trained model better with each row's own state than with another row's", function()
    recur.seed(2)
    local r = toy.train { num_steps = 5, state = 4, size = 40000, batch_size = 20, log_every = 50 }
    local own = toy.evaluate(r.model, { num_steps = 5, size = 40000, batch_size = 20 })
    local other = toy.evaluate(r.model, { num_steps = 5, size = 40000, batch_size = 20, other_row = true })
    assert.is_true(own < toy.entropies().neither, "own state: " .. own)
    assert.is_true(own < other, string.format("own %.4f, other row %.4f", own, other))
  end)
end)
