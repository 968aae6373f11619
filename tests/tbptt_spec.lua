-- Truncated BPTT (recur.tbptt): TF style and true BPTT(n) against gradients computed term by
-- term on a vanilla RNN in plain Lua numbers, the two styles agreeing at n = T, windows and
-- carried states, errors.
local recur = require("recur")
local rnn = require("recur.rnn")
local tbptt = require("recur.tbptt")
local U = require("tests.rnn_util")
local H = require("tests.helpers")

local function params(cell)
  local p = {}
  for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
  return p
end

local function zero_grads(list)
  for _, t in ipairs(list) do t:zero_grad() end
end

-- Reference: the gradient of sum_{t,b,k} coef[t][b][k] * h_t[b][k] for a tanh RNN
-- h_t = tanh(x_t W_x + h_{t-1} W_h + b), where the error of step i goes back to step
-- first(i) only, one term per (i, k) pair: the chain rule written out in plain Lua numbers.
local function reference(P, x, h0, coef, first)
  local T, B, I, Hn = #x, #x[1], #x[1][1], #h0[1]
  local h = { [0] = h0 }
  for t = 1, T do
    h[t] = {}
    for b = 1, B do
      h[t][b] = {}
      for k = 1, Hn do
        local a = P.b[k]
        for i = 1, I do a = a + x[t][b][i] * P.W_x[i][k] end
        for j = 1, Hn do a = a + h[t - 1][b][j] * P.W_h[j][k] end
        h[t][b][k] = math.tanh(a)
      end
    end
  end
  local function zeros(r, c)
    local m = {}
    for i = 1, r do
      m[i] = {}
      for j = 1, c do m[i][j] = 0 end
    end
    return m
  end
  local g = { W_x = zeros(I, Hn), W_h = zeros(Hn, Hn), b = zeros(1, Hn)[1], h0 = zeros(B, Hn) }
  for i = 1, T do
    local j0 = first(i)
    for b = 1, B do
      local delta = {}
      for k = 1, Hn do delta[k] = coef[i][b][k] end
      for s = i, j0, -1 do -- one term: the error of step i at step s
        local da = {}
        for k = 1, Hn do da[k] = delta[k] * (1 - h[s][b][k] ^ 2) end
        for k = 1, Hn do
          g.b[k] = g.b[k] + da[k]
          for q = 1, I do g.W_x[q][k] = g.W_x[q][k] + x[s][b][q] * da[k] end
          for q = 1, Hn do g.W_h[q][k] = g.W_h[q][k] + h[s - 1][b][q] * da[k] end
        end
        local nd = {}
        for q = 1, Hn do
          local v = 0
          for k = 1, Hn do v = v + da[k] * P.W_h[q][k] end
          nd[q] = v
        end
        delta = nd
      end
      if j0 == 1 then
        for k = 1, Hn do g.h0[b][k] = g.h0[b][k] + delta[k] end
      end
    end
  end
  return g
end

local function setup(seed, T, B, I, Hn)
  recur.seed(seed)
  local cell = rnn.Cell { cell = "rnn", input = I, hidden = Hn }
  local x = recur.randn(T, B, I)
  local h0 = recur.randn(B, Hn):requires_grad(true)
  local coef = recur.randn(T, B, Hn)
  local p = params(cell)
  local P = { W_x = p.W_x:totable(), W_h = p.W_h:totable(), b = p.b:totable() }
  return cell, x, h0, coef, p, P
end

local function check_against(g, p, h0, tol)
  U.close(p.W_x.grad, g.W_x, tol, "W_x")
  U.close(p.W_h.grad, g.W_h, tol, "W_h")
  U.close(p.b.grad, g.b, tol, "b")
  U.close(h0.grad, g.h0, tol, "h0")
end

describe("true BPTT(n)", function()
  for _, case in ipairs { { T = 6, n = 3 }, { T = 7, n = 2 }, { T = 5, n = 1 }, { T = 4, n = 4 } } do
    it(string.format("T = %d, n = %d: equals the gradient summed term by term", case.T, case.n),
      function()
        local cell, x, h0, coef, p, P = setup(11 + case.T, case.T, 2, 2, 3)
        local r = tbptt.true_bptt {
          forward = cell, x = x, y = coef, n = case.n, state = { h0 },
          loss = function(out, y) return (out * y):sum() end,
        }
        local g = reference(P, x:totable(), h0:totable(), coef:totable(),
          function(i) return math.max(1, i - case.n + 1) end)
        check_against(g, p, h0, 1e-5)
        -- the loss is the full forward's and the final state the full forward's final state
        local y, fin = recur.no_grad(function() return cell:forward(x, { state = { h0 } }) end)
        assert.is_true(math.abs(r.loss - (y * coef):sum():item()) < 1e-4)
        U.close(r.state[1], fin[1], 1e-6)
        assert.is_false(r.state[1]:requires_grad())
      end)
  end

  it("truncation matters: n = 2 differs from full BPTT on the recurrent weights", function()
    local cell, x, h0, coef, p = setup(5, 6, 2, 2, 3)
    local loss = function(out, y) return (out * y):sum() end
    tbptt.true_bptt { forward = cell, x = x, y = coef, n = 2, state = { h0 }, loss = loss }
    local g2 = p.W_h.grad:clone()
    zero_grads { p.W_x, p.W_h, p.b, h0 }
    tbptt.true_bptt { forward = cell, x = x, y = coef, n = 6, state = { h0 }, loss = loss }
    assert.is_true(U.relerr(g2, p.W_h.grad) > 1e-3)
  end)

  it("the Lua twin gives the same gradients as the fused cell", function()
    local cell, x, h0, coef, p = setup(12, 6, 2, 2, 3)
    local twin = rnn.LuaCell(require("tests.oracles.cells.rnn"), { input = 2, hidden = 3,
      params = U.params(cell) })
    local loss = function(out, y) return (out * y):sum() end
    tbptt.true_bptt { forward = cell, x = x, y = coef, n = 3, state = { h0 }, loss = loss }
    local gf = { p.W_x.grad:clone(), p.W_h.grad:clone(), h0.grad:clone() }
    zero_grads { p.W_x, p.W_h, p.b, h0 }
    tbptt.true_bptt { forward = twin, x = x, y = coef, n = 3, state = { h0 }, loss = loss }
    U.close(p.W_x.grad, gf[1], 1e-5)
    U.close(p.W_h.grad, gf[2], 1e-5)
    U.close(h0.grad, gf[3], 1e-5)
  end)
end)

describe("TF-style truncated BPTT", function()
  it("windows of n with detached carried state equal the windowed term-by-term gradient",
    function()
      local cell, x, h0, coef, p, P = setup(21, 7, 2, 2, 3)
      local seen = {}
      local r = tbptt.tf {
        forward = cell, x = x, y = coef, n = 3, state = { h0 },
        loss = function(out, y) return (out * y):sum() end,
        on_window = function(info)
          seen[#seen + 1] = { info.start, info.length }
          assert.is_false(info.state[1]:requires_grad())
        end,
      }
      assert.are.same({ { 1, 3 }, { 4, 3 }, { 7, 1 } }, seen)
      assert.are.equal(3, r.windows)
      local g = reference(P, x:totable(), h0:totable(), coef:totable(),
        function(i) return ((i - 1) // 3) * 3 + 1 end)
      check_against(g, p, h0, 1e-5)
      -- only the first window reaches the initial state; the final state is the full one's
      local _, fin = recur.no_grad(function() return cell:forward(x, { state = { h0 } }) end)
      U.close(r.state[1], fin[1], 1e-6)
    end)

  it("on_window can step an optimizer: the next window runs with the new weights", function()
    local cell, x, _, coef, p = setup(22, 4, 2, 2, 3)
    local before = p.W_h:clone()
    local steps = 0
    tbptt.tf {
      forward = cell, x = x, y = coef, n = 2,
      loss = function(out, y) return (out * y):sum() end,
      on_window = function()
        recur.no_grad(function()
          for _, t in ipairs { p.W_x, p.W_h, p.b } do
            t:add_(t.grad, -0.1)
            t:zero_grad()
          end
        end)
        steps = steps + 1
      end,
    }
    assert.are.equal(2, steps)
    assert.is_true(U.relerr(p.W_h, before) > 1e-3)
  end)
end)

describe("the two styles at n = T", function()
  for _, kind in ipairs { "lstm", "gru", "rnn" } do
    it(kind .. ": 2-layer stack, embedded inputs and a trained initial state: same gradient",
      function()
        recur.seed(31)
        local T, B, V, E, Hn = 6, 3, 5, 4, 5
        local layer = rnn.RNN { cell = kind, input = E, hidden = Hn, layers = 2 }
        local emb = recur.randn(V, E):requires_grad(true)
        local Wo = recur.randn(Hn, V):requires_grad(true)
        local init = rnn.initial_state.trained { init = 0.1 }:bind(layer)
        local ids = recur.randint(1, V, { T + 1, B })
        local xi, yi = ids:narrow(1, 1, T), ids:narrow(1, 2, T)
        local all = { emb, Wo }
        for _, np in ipairs(layer:named_parameters()) do all[#all + 1] = np[2] end
        for _, np in ipairs(init:named_parameters()) do all[#all + 1] = np[2] end
        local function fwd(x, state, lengths)
          local e = emb:index_select(1, x:reshape(x:numel())):view(x:size(1), x:size(2), E)
          return layer:forward(e, { state = state, lengths = lengths })
        end
        local function loss(out, y)
          local logits = recur.matmul(out:reshape(T * B, Hn), Wo)
          local lp = logits:log_softmax(2)
          return -lp:gather(2, y:reshape(T * B, 1)):mean()
        end
        local function run(f)
          for _, t in ipairs(all) do t:zero_grad() end
          local r = f { forward = fwd, loss = loss, x = xi, y = yi, n = T, state = init:state(B) }
          local g = {}
          for i, t in ipairs(all) do g[i] = t.grad:clone() end
          return r, g
        end
        local ra, ga = run(tbptt.tf)
        local rb, gb = run(tbptt.true_bptt)
        assert.is_true(math.abs(ra.loss - rb.loss) < 1e-5)
        for i = 1, #all do U.close(gb[i], ga[i], 1e-5, "parameter " .. i) end
        -- n > T means n = T
        local rc, gc = run(function(o)
          o.n = T + 5
          return tbptt.true_bptt(o)
        end)
        assert.is_true(math.abs(rc.loss - ra.loss) < 1e-5)
        for i = 1, #all do U.close(gc[i], ga[i], 1e-5) end
      end)
  end
end)

describe("tbptt state forms", function()
  it("true_bptt takes a layer's one-state entries as {h} as well as {{h}}", function()
    recur.seed(5)
    local layer = rnn.RNN { cell = "rnn", input = 2, hidden = 3, layers = 1 }
    local x, y = recur.randn(5, 2, 2), recur.randn(5, 2, 3)
    local h0 = recur.randn(2, 3)
    local function loss(out, yy) return ((out - yy) ^ 2):mean() end
    local function run(state)
      layer:zero_grad()
      local r = tbptt.true_bptt { forward = layer, x = x, y = y, n = 2, state = state, loss = loss }
      return r.loss, layer:named_parameters()[1][2].grad:clone()
    end
    local l1, g1 = run({ { h0 } })
    local l2, g2 = run({ h0 })
    assert.is_true(math.abs(l1 - l2) < 1e-7)
    U.close(g2, g1, 1e-7, "W_x's gradient")
  end)
end)

describe("tbptt errors", function()
  local cell = rnn.Cell { cell = "rnn", input = 2, hidden = 3 }
  local x = recur.randn(4, 2, 2)
  local loss = function(out) return out:sum() end
  it("names the bad argument", function()
    assert.matches("n %(the truncation length%) must be an integer >= 1, got 0",
      H.err_of(tbptt.tf, { forward = cell, loss = loss, x = x, n = 0 }))
    assert.matches("loss must be a function",
      H.err_of(tbptt.true_bptt, { forward = cell, x = x, n = 2 }))
    assert.matches("x must be a tensor %[T, B, ...%]",
      H.err_of(tbptt.tf, { forward = cell, loss = loss, x = recur.randn(3), n = 2 }))
    assert.matches("forward must be a function",
      H.err_of(tbptt.tf, { forward = 3, loss = loss, x = x, n = 2 }))
    assert.matches("y has 3 time steps, x has 4",
      H.err_of(tbptt.tf, { forward = cell, loss = loss, x = x, y = recur.randn(3, 2), n = 2 }))
    assert.matches("loss must return a scalar tensor",
      H.err_of(tbptt.tf, { forward = cell, loss = function(o) return o end, x = x, n = 2 }))
    assert.matches("expected an options table", H.err_of(tbptt.true_bptt, 3))
  end)
  it("recur.rnn.tbptt_tf and tbptt_true are the same functions", function()
    local r1 = rnn.tbptt_tf { forward = cell, loss = loss, x = x, n = 2, backward = false }
    local r2 = rnn.tbptt_true { forward = cell, loss = loss, x = x, n = 4, backward = false }
    -- tf: the length-weighted mean of the two window sums; true: the sum over all steps
    assert.is_true(math.abs(r1.loss * 2 - r2.loss) < 1e-4)
    assert.are.equal(2, r1.windows)
  end)
end)
