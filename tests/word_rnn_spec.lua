-- models/word_rnn.lua: the word model of "Styles of Truncated Backpropagation": the post's
-- gradient-decay probe (its per-distance contributions add up to the full and to the true
-- BPTT(n) gradient), the two styles' gradients as the post normalises them, the post's
-- initialisation, and Adam with TensorFlow's epsilon.
local recur = require("recur")
local tbptt = require("recur.tbptt")
local WordRNN = require("models.word_rnn")

local function maxdiff(a, b)
  return (a - b):abs():max():item()
end

local function scale_of(t)
  return t:abs():max():item()
end

local function setup(seed, o)
  recur.seed(seed)
  o = o or {}
  local V, T, B = o.V or 40, o.T or 8, o.B or 3
  local m = WordRNN.new { vocab = V, embed = o.E or 6, hidden = o.H or 5, keep = o.keep or 0.8 }
  local x = recur.randint(1, V, T, B)
  local y = recur.randint(1, V, T, B)
  return m, x, y
end

-- the gradient of the summed per-step losses, with each error cut to n steps (n = T: full)
local function summed_grad(m, x, y, n)
  m:eval()
  m:zero_grad()
  local e = m.embed.weight:detach():index_select(1, x:reshape(x:numel()))
      :view(x:size(1), x:size(2), m.E)
  tbptt.true_bptt { forward = m.rnn, x = e, y = y, n = n, state = m:zero_state(x:size(2)),
    loss = function(out, yy) return m:readout_loss(out, yy, "sum") end }
  local p = m:cell_params()
  return p.W_x.grad:clone(), p.W_h.grad:clone()
end

local function sum_list(list)
  local s = list[1]:clone()
  for k = 2, #list do s = s + list[k] end
  return s
end

describe("WordRNN decay probe", function()
  it("with every step and n = T, the contributions add up to the full gradient", function()
    local m, x, y = setup(1)
    local T = x:size(1)
    local c, raw = m:decay_probe(x, y, { n = T, first = 1, raw = true })
    assert.are.equal(T, #c)
    local gx, gh = summed_grad(m, x, y, T)
    local sx, sh = sum_list(raw.W_x), sum_list(raw.W_h)
    assert.is_true(maxdiff(sx, gx) <= 1e-5 * math.max(1, scale_of(gx)))
    assert.is_true(maxdiff(sh, gh) <= 1e-5 * math.max(1, scale_of(gh)))
    -- every distance contributes something, and c is the L1 norm of each
    for k = 1, T do
      assert.is_true(c[k] > 0)
      local l1 = raw.W_x[k]:abs():sum():item() + raw.W_h[k]:abs():sum():item()
      assert.is_true(math.abs(c[k] - l1) <= 1e-6 * l1)
    end
  end)

  it("with n < T, they add up to the true BPTT(n) gradient, and only n distances exist", function()
    local m, x, y = setup(2, { T = 9 })
    local c, raw = m:decay_probe(x, y, { n = 3, first = 1, raw = true })
    assert.are.equal(3, #c)
    local gx, gh = summed_grad(m, x, y, 3)
    assert.is_true(maxdiff(sum_list(raw.W_x), gx) <= 1e-5 * math.max(1, scale_of(gx)))
    assert.is_true(maxdiff(sum_list(raw.W_h), gh) <= 1e-5 * math.max(1, scale_of(gh)))
    -- and not to the full gradient (the truncation matters on this model)
    local fx = summed_grad(m, x, y, 9)
    assert.is_true(maxdiff(sum_list(raw.W_x), fx) > 1e-4 * scale_of(fx))
  end)

  it("by default starts at step n + 1 as the post (i >= bptt_steps, 0-based)", function()
    local m, x, y = setup(3, { T = 7 })
    local a = m:decay_probe(x, y, { n = 3 })
    local b = m:decay_probe(x, y, { n = 3, first = 4 })
    local c = m:decay_probe(x, y, { n = 3, first = 1 })
    for k = 1, 3 do assert.are.equal(a[k], b[k]) end
    assert.is_true(c[1] > a[1])
  end)
end)

describe("WordRNN gradients", function()
  local function grads(m)
    local out = {}
    for _, np in ipairs(m:named_parameters()) do out[np[1]] = np[2].grad:clone() end
    return out
  end

  it("TF style and true BPTT give the same gradients at n = T (no dropout)", function()
    local m, x, y = setup(4, { T = 7 })
    m:eval()
    m:zero_grad()
    local a = m:grad_step(x, y, nil, { style = "tf" })
    local ga = grads(m)
    m:zero_grad()
    local b = m:grad_step(x, y, nil, { style = "true", n = 7 })
    local gb = grads(m)
    assert.is_true(math.abs(a.loss - b.loss) < 1e-5)
    for k, g in pairs(ga) do
      assert.is_true(maxdiff(g, gb[k]) < 1e-5, k)
    end
  end)

  it("true BPTT(n): the softmax layer gets the mean-loss gradient, the rest is scaled by T / n",
    function()
      local m, x, y = setup(5, { T = 8 })
      m:eval()
      m:zero_grad()
      m:grad_step(x, y, nil, { style = "tf" })
      local full = grads(m)
      m:zero_grad()
      m:grad_step(x, y, nil, { style = "true", n = 2 })
      local tr = grads(m)
      assert.is_true(maxdiff(full["out.weight"], tr["out.weight"]) < 1e-6)
      assert.is_true(maxdiff(full["out.bias"], tr["out.bias"]) < 1e-6)
      -- the cell's gradient is the mean-loss BPTT(2) gradient times T / n = 4
      local gx = summed_grad(m, x, y, 2)
      local want = gx * (4 / (8 * x:size(2)))
      assert.is_true(maxdiff(tr["rnn.layer1.W_x"], want) <= 1e-5 * math.max(1, scale_of(want)))
    end)

  it("the carried state is the last output after the output dropout (the post's final_state)",
    function()
      local m, x, y = setup(6, { keep = 0.5, H = 16 })
      m:train()
      local r = m:grad_step(x, y, nil, { style = "tf", backward = false })
      local h = r.state[1][1]:totable()
      local zeros, doubled = 0, 0
      for _, row in ipairs(h) do
        for _, v in ipairs(row) do
          if v == 0 then zeros = zeros + 1 elseif math.abs(v) > 1 then doubled = doubled + 1 end
        end
      end
      assert.is_true(zeros > 0)   -- dropped units
      assert.is_true(doubled > 0) -- kept units scaled by 1 / keep (|tanh| < 1 before)
    end)
end)

describe("WordRNN initialisation and optimizer", function()
  it("the cell's W = [W_x; W_h] is one Glorot-uniform [E + H, H] matrix, b = 0", function()
    recur.seed(7)
    local m = WordRNN.new { vocab = 30, embed = 50, hidden = 100 }
    local p = m:cell_params()
    local a = math.sqrt(6 / (50 + 200))
    for _, w in ipairs { p.W_x, p.W_h } do
      local mx = w:abs():max():item()
      assert.is_true(mx <= a and mx > 0.95 * a)
    end
    assert.are.equal(0, p.b:abs():max():item())
    -- recur's default for the cell would be U(+-1/sqrt(H)) = U(+-0.1)
    assert.is_true(p.W_h:abs():max():item() > 0.12)
  end)

  it("Adam's step is TensorFlow's (epsilon beside the uncorrected sqrt(v))", function()
    local p = recur.tensor({ 1.0, -2.0, 0.5 }):requires_grad(true)
    local adam = WordRNN.adam({ p }, 0.01)
    local g = { 3e-8, -1e-7, 2.0 }
    local m, v, want = { 0, 0, 0 }, { 0, 0, 0 }, { 1.0, -2.0, 0.5 }
    for t = 1, 3 do
      adam.zero_grad()
      local l = (p * recur.tensor(g)):sum()
      l:backward()
      adam.step()
      local lr_t = 0.01 * math.sqrt(1 - 0.999 ^ t) / (1 - 0.9 ^ t)
      for i = 1, 3 do
        m[i] = 0.9 * m[i] + 0.1 * g[i]
        v[i] = 0.999 * v[i] + 0.001 * g[i] ^ 2
        want[i] = want[i] - lr_t * m[i] / (math.sqrt(v[i]) + 1e-8)
      end
    end
    local got = p:detach():totable()
    for i = 1, 3 do assert.is_true(math.abs(got[i] - want[i]) < 1e-6, i) end
  end)
end)
