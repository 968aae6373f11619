-- recur.rnn.initial_state (lib/recur/rnn/initial_state.lua): zero, trained, noisy, trained_noisy initial states (R2RT's
-- Non-Zero Initial States): nested structure, broadcast trainable leaves and their summed
-- gradient, noise statistics and the training switch, training a state, custom strategies.
local recur = require("recur")
local rnn = require("recur.rnn")
local IS = rnn.initial_state
local U = require("tests.rnn_util")
local H = require("tests.helpers")

describe("recur.rnn.initial_state", function()
  it("is part of the library: loaded on first use, the same table require gives", function()
    assert.are.equal(require("recur.rnn.initial_state"), recur.rnn.initial_state)
    for _, name in ipairs { "zero", "trained", "noisy", "trained_noisy", "by_name", "strategy" } do
      assert.is_function(IS[name], name)
    end
    assert.are.same({ "zero", "trained", "noisy", "trained_noisy" }, IS.names)
    assert.is_nil(recur.rnn.no_such_submodule)
  end)
end)

local function shape(t) return table.concat(t:size(), ",") end

describe("initial_state structure", function()
  it("follows the layer: layers x {h, c} for an LSTM, {h} for a GRU", function()
    local lstm = rnn.RNN { cell = "lstm", input = 3, hidden = 4, layers = 2 }
    local s = IS.zero():bind(lstm):state(5)
    assert.are.equal(2, #s)
    for l = 1, 2 do
      assert.are.equal(2, #s[l])
      for k = 1, 2 do
        assert.are.equal("5,4", shape(s[l][k]))
        assert.are.equal(0, s[l][k]:abs():sum():item())
      end
    end
    local gru = rnn.RNN { cell = "gru", input = 3, hidden = 6, layers = 3 }
    local g = IS.zero():bind(gru):state(2)
    assert.are.equal(3, #g)
    assert.are.equal(1, #g[3])
    assert.are.equal("2,6", shape(g[3][1]))
    -- the layer takes it as is
    local out, fin = lstm:forward(recur.randn(2, 5, 3), { state = s })
    assert.are.equal("2,5,4", shape(out))
    assert.are.equal(2, #fin)
  end)

  it("a cell gives a flat list; an explicit structure is accepted", function()
    local cell = rnn.Cell { cell = "lstm", input = 2, hidden = 3 }
    local b = IS.trained():bind(cell)
    local s = b:state(4)
    assert.are.equal(2, #s)
    assert.is_true(recur.is_tensor(s[1]))
    assert.are.same({ "layer1.h", "layer1.c" }, { b:named_parameters()[1][1], b:named_parameters()[2][1] })
    local y = cell:forward(recur.randn(3, 4, 2), { state = s })
    assert.are.equal("3,4,3", shape(y))
    local e = IS.trained():bind { { { "h", 2 } }, { { "h", 5 }, { "c", 5 } } }
    local names = {}
    for i, np in ipairs(e:named_parameters()) do names[i] = np[1] .. ":" .. shape(np[2]) end
    assert.are.same({ "layer1.h:2", "layer2.h:5", "layer2.c:5" }, names)
    assert.are.equal("3,5", shape(e:state(3)[2][2]))
  end)
end)

describe("trained initial state", function()
  it("starts at init, is broadcast over the batch, and gets the summed gradient", function()
    recur.seed(3)
    local layer = rnn.RNN { cell = "lstm", input = 2, hidden = 3, layers = 2 }
    local b = IS.trained { init = 0.5 }:bind(layer)
    local ps = b:named_parameters()
    assert.are.equal(4, #ps)
    for _, np in ipairs(ps) do
      assert.is_true(np[2]:requires_grad())
      assert.are.same({ 0.5, 0.5, 0.5 }, np[2]:totable())
    end
    local x = recur.randn(4, 5, 2)
    local st = b:state(5)
    local out, fin = layer:forward(x, { state = st })
    local loss = (out * out):sum() + fin[2][2]:sum()
    loss:backward()
    -- the same state as contiguous per-example leaves: their gradients, summed over the
    -- batch, are the trained vectors' gradients
    local leaves = {}
    for l = 1, 2 do
      leaves[l] = {}
      for k = 1, 2 do
        leaves[l][k] = recur.full({ 5, 3 }, 0.5):requires_grad(true)
      end
    end
    local out2, fin2 = layer:forward(x, { state = leaves })
    local loss2 = (out2 * out2):sum() + fin2[2][2]:sum()
    loss2:backward()
    local i = 0
    for l = 1, 2 do
      for k = 1, 2 do
        i = i + 1
        assert.is_true(ps[i][2].grad:abs():sum():item() > 0)
        U.close(ps[i][2].grad, leaves[l][k].grad:sum(1), 1e-5, ps[i][1])
      end
    end
  end)

  it("changes when trained and lowers the loss on the steps after a reset", function()
    recur.seed(4)
    -- the target of every sequence's first output is fixed, whatever the input: only the
    -- initial state can learn it (the layer's weights are frozen)
    local layer = rnn.RNN { cell = "gru", input = 2, hidden = 4 }
    local b = IS.trained():bind(layer)
    local p = b:named_parameters()[1][2]
    local target = recur.tensor { 0.5, -0.5, 0.3, 0.0 }
    local function loss_of()
      local x = recur.randn(1, 8, 2) * 0.1
      local out = layer:forward(x, { state = b:state(8) })
      local d = out:select(1, 1) - target
      return (d * d):mean()
    end
    local first = loss_of():item()
    for _ = 1, 150 do
      p:zero_grad()
      local l = loss_of()
      l:backward()
      recur.no_grad(function() p:add_(p.grad, -2.0) end)
    end
    local last = loss_of():item()
    assert.is_true(p:abs():sum():item() > 0.1, "the trained state moved from 0")
    assert.is_true(last < first / 3, string.format("loss %.4f -> %.4f", first, last))
  end)
end)

describe("noisy initial states", function()
  it("noisy: N(0, std^2), fresh per element and per call, only in training", function()
    recur.seed(5)
    local layer = rnn.RNN { cell = "lstm", input = 2, hidden = 8, layers = 2 }
    local b = IS.noisy { std = 0.3 }:bind(layer)
    assert.are.equal(0, #b:named_parameters())
    local s = b:state(4000)
    local v = s[2][2]
    assert.is_true(math.abs(v:mean():item()) < 0.01)
    assert.is_true(math.abs(v:std():item() - 0.3) < 0.01, tostring(v:std():item()))
    assert.is_true((v:select(1, 1) - v:select(1, 2)):abs():sum():item() > 0)
    local s2 = b:state(4000)
    assert.is_true((s2[2][2] - v):abs():sum():item() > 0)
    layer:eval()
    assert.are.equal(0, b:state(10)[1][1]:abs():sum():item())
    assert.is_true(b:state(10, { training = true })[1][1]:abs():sum():item() > 0)
    layer:train()
    assert.are.equal(0, b:state(10, { training = false })[1][2]:abs():sum():item())
  end)

  it("trained_noisy: the trained vector plus noise in training, the vector alone in eval",
    function()
      recur.seed(6)
      local layer = rnn.RNN { cell = "gru", input = 2, hidden = 5 }
      local b = IS.trained_noisy { std = 0.2, init = 1 }:bind(layer)
      local p = b:named_parameters()[1][2]
      local s = b:state(5000)[1][1]
      local noise = s - p:detach()
      assert.is_true(math.abs(noise:mean():item()) < 0.01)
      assert.is_true(math.abs(noise:std():item() - 0.2) < 0.01)
      s:sum():backward()
      assert.are.same({ 5000, 5000, 5000, 5000, 5000 }, p.grad:totable())
      layer:eval()
      assert.are.same({ { 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1 } }, b:state(2)[1][1]:totable())
      -- std = 0 is the plain trained state
      local z = IS.trained_noisy { std = 0 }:bind(layer)
      layer:train()
      assert.are.equal(0, z:state(3)[1][1]:abs():sum():item())
    end)
end)

describe("custom strategies and names", function()
  it("a new strategy is a few lines", function()
    recur.seed(7)
    local function uniform_noise(opts)
      return IS.strategy {
        name = "uniform_noise",
        leaf = function(_, B, Hn, training)
          if not training then return recur.zeros(B, Hn) end
          return recur.uniform({ B, Hn }, -opts.a, opts.a)
        end,
      }
    end
    local layer = rnn.RNN { cell = "lstm", input = 2, hidden = 3 }
    local s = uniform_noise { a = 0.1 }:bind(layer):state(100)
    assert.is_true(s[1][2]:abs():max():item() <= 0.1)
    assert.is_true(s[1][2]:abs():max():item() > 0.05)
    -- with a trainable leaf
    local scaled = IS.strategy {
      name = "scaled",
      params = function(Hn) return recur.ones(Hn) end,
      leaf = function(p, B, Hn) return (p * 2):view(1, Hn):expand(B, Hn) end,
    }
    local b = scaled:bind(layer)
    assert.are.equal(2, #b:named_parameters())
    assert.are.same({ 2, 2, 2 }, b:state(2)[1][1]:select(1, 2):totable())
  end)

  it("by_name gives the four strategies; errors are clear", function()
    for _, n in ipairs { "zero", "trained", "noisy", "trained_noisy" } do
      assert.are.equal(n, IS.by_name(n).name)
    end
    assert.matches("unknown strategy warm %(one of zero, trained, noisy, trained_noisy%)",
      H.err_of(IS.by_name, "warm"))
    assert.matches("std must be a number >= 0, got %-1", H.err_of(IS.noisy, { std = -1 }))
    assert.matches("init must be a number or a function",
      H.err_of(IS.trained, { init = "x" }))
    assert.matches("expected a recur.rnn.RNN layer, a cell, or a list",
      H.err_of(function() IS.zero():bind(42) end))
    assert.matches("structure%[1%]%[1%] must be {name, size > 0}",
      H.err_of(function() IS.zero():bind { { { "h", 0 } } } end))
    local b = IS.zero():bind(rnn.RNN { cell = "rnn", input = 1, hidden = 1 })
    assert.matches("batch size must be an integer >= 0, got 1.5",
      H.err_of(function() b:state(1.5) end))
    assert.matches("the definition needs a leaf function", H.err_of(IS.strategy, {}))
  end)
end)
