-- A cell written entirely in Lua (examples/cells/mixture_gru.lua, RNN II's mixture-of-weights
-- GRU): it is a GRU when K = 1, its gradients check, and it trains inside recur.rnn.RNN
-- without recompiling anything.
local recur = require("recur")
local rnn = require("recur.rnn")
local U = require("tests.rnn_util")
local mixture = require("examples.cells.mixture_gru")

describe("mixture-of-weights GRU (Lua cell)", function()
  it("with K = 1 equals the fused TF-form GRU", function()
    recur.seed(4)
    local m = rnn.LuaCell(mixture, { input = 3, hidden = 4, K = 1 })
    local gru = rnn.Cell { cell = "gru", input = 3, hidden = 4 }
    local p, q = m.p, U.params(gru)
    recur.no_grad(function()
      q.W_x:copy_(recur.cat({ p.W_gx, p.W_mix }, 2))
      q.W_h:copy_(recur.cat({ p.W_gh, p.U_c }, 2))
      q.b:copy_(recur.cat({ p.b_g, p.b_c }, 1))
    end)
    local x = recur.randn(5, 2, 3)
    local h0 = recur.randn(2, 4)
    local a, sa = m:forward(x, { state = { h0 }, lengths = { 5, 3 } })
    local b, sb = gru:forward(x, { state = { h0 }, lengths = { 5, 3 } })
    U.close(a, b, 1e-5)
    U.close(sa[1], sb[1], 1e-5)
  end)

  it("mixes K = 5 matrices and passes gradcheck", function()
    recur.seed(6)
    local m = rnn.LuaCell(mixture, { input = 2, hidden = 3 })
    assert.are.same({ 2, 15 }, m.p.W_mix:size())
    assert.are.equal(9, #m:parameters())
    local inputs = { recur.randn(2, 2, 2):requires_grad(true), recur.randn(2, 3):requires_grad(true) }
    for _, np in ipairs(m:parameters()) do inputs[#inputs + 1] = np[2] end
    assert.is_true(recur.gradcheck(function(x, h)
      local y, st = m:forward(x, { state = { h } })
      return { y, st[1] }
    end, inputs))
  end)

  it("trains in a 2-layer recur.rnn.RNN: learns to recall the input from 2 steps back", function()
    recur.seed(12)
    local T, B, I, H = 8, 16, 2, 12
    local layer = rnn.RNN { cell = mixture, input = I, hidden = H, layers = 1,
      cell_opts = { K = 5 } }
    local W_o = (recur.randn(H, 1) * 0.1):requires_grad(true)
    local params = { W_o }
    for _, np in ipairs(layer:named_parameters()) do params[#params + 1] = np[2] end
    -- Adam, written here from tensor ops
    local m, v, lr, b1, b2 = {}, {}, 0.03, 0.9, 0.999
    for i, p in ipairs(params) do
      m[i] = recur.zeros(p:size())
      v[i] = recur.zeros(p:size())
    end
    local function batch()
      local x = recur.randn(T, B, I)
      local shifted = recur.cat({ recur.zeros(2, B, 1), x:narrow(1, 1, T - 2):narrow(3, 1, 1) }, 1)
      return x, shifted
    end
    local function loss_of(x, y)
      local out = layer:forward(x)
      local pred = recur.matmul(out:view(T * B, H), W_o):view(T, B, 1)
      local d = pred - y
      return (d * d):mean()
    end
    local first, last
    for step = 1, 150 do
      local x, y = batch()
      local loss = loss_of(x, y)
      if step == 1 then first = loss:item() end
      last = loss:item()
      for _, p in ipairs(params) do p:zero_grad() end
      loss:backward()
      recur.no_grad(function()
        for i, p in ipairs(params) do
          local g = p.grad
          m[i]:mul_(b1):add_(g, 1 - b1)
          v[i]:mul_(b2):add_(g * g, 1 - b2)
          local mh = m[i] / (1 - b1 ^ step)
          local vh = v[i] / (1 - b2 ^ step)
          p:add_(mh / (vh:sqrt() + 1e-8), -lr)
        end
      end)
    end
    -- the target's variance is about (T - 2) / T = 0.75; predicting 0 gives that loss
    assert.is_true(first > 0.5, "initial loss " .. first)
    assert.is_true(last < 0.15, string.format("loss %.3f -> %.3f", first, last))
  end)
end)
