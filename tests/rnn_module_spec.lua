-- Recurrent layers as recur.nn modules: recur.nn.RNN (= recur.rnn.RNN) composed with
-- Embedding and Linear keeps every parameter in the model's one flat buffer (values and
-- gradients), clipping through the flat gradient reaches every parameter, an optimizer over
-- model:parameters() trains it, state_dict / recur.save round-trip, summary counts the
-- layers, and Lua cells and trained initial states join the buffer too.
local recur = require("recur")
local nn = recur.nn
local rnn = require("recur.rnn")
local U = require("tests.rnn_util")
local H = require("tests.helpers")

-- Embedding + 2-layer LSTM + Linear readout, composed by the user
local LM = nn.Module:extend("LM")
function LM:init(V, E, Hn, o)
  o = o or {}
  self.batch_dim = 2
  self.embed = nn.Embedding(V, E)
  self.rnn = nn.RNN { cell = o.cell or "lstm", input = E, hidden = Hn, layers = 2,
    dropout = o.dropout }
  self.head = nn.Linear(Hn, V)
end
function LM:forward(x)
  local out = self.rnn(self.embed(x))
  return self.head(out)
end

local function total_numel(m)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p:numel() end
  return n
end

-- the flat buffer's slice of parameter i (in parameter order)
local function slices(m, flat)
  local out, off = {}, 0
  for i, p in ipairs(m:parameters()) do
    out[i] = flat:narrow(1, off + 1, p:numel()):view(p:size())
    off = off + p:numel()
  end
  return out
end

local function loss_of(m, x, y)
  local logits = m(x)
  return nn.cross_entropy(logits:reshape(logits:size(1) * logits:size(2), logits:size(3)),
    y:reshape(y:numel()))
end

describe("recur.nn.RNN as a module", function()
  it("is recur.rnn.RNN, an nn.Module with named parameters layer<l>.<name>", function()
    assert.are.equal(rnn.RNN, nn.RNN)
    assert.are.equal(rnn.CellModule, nn.RNNCell)
    local layer = nn.RNN { cell = "lstm", input = 3, hidden = 4, layers = 2 }
    assert.is_true(nn.is_module(layer))
    local names = {}
    for i, np in ipairs(layer:named_parameters()) do names[i] = np[1] end
    assert.are.same({ "layer1.W_x", "layer1.W_h", "layer1.b", "layer2.W_x", "layer2.W_h",
      "layer2.b" }, names)
    -- the same tensors as the cells' own (no copies)
    assert.are.equal(layer.cells[2]:parameters()[2][2], layer:named_parameters()[5][2])
    assert.are.equal(3 * 16 + 4 * 16 + 16 + 4 * 16 + 4 * 16 + 16, layer:num_parameters())
    local flat = layer:flat_parameters()
    assert.are.equal(layer:num_parameters(), flat:numel())
  end)

  it("Embedding + LSTM x2 + Linear: one flat buffer of values and of gradients", function()
    recur.seed(11)
    local V, E, Hn, T, B = 7, 5, 6, 4, 3
    local m = LM(V, E, Hn)
    local named = m:named_parameters()
    local want = { "embed.weight", "rnn.layer1.W_x", "rnn.layer1.W_h", "rnn.layer1.b",
      "rnn.layer2.W_x", "rnn.layer2.W_h", "rnn.layer2.b", "head.weight", "head.bias" }
    for i, n in ipairs(want) do assert.are.equal(n, named[i][1]) end
    assert.are.equal(#want, #named)
    local flat, grad = m:flat_parameters()
    local n = V * E + (E * 4 * Hn + Hn * 4 * Hn + 4 * Hn) + (Hn * 4 * Hn + Hn * 4 * Hn + 4 * Hn)
      + V * Hn + V
    assert.are.equal(n, total_numel(m))
    assert.are.equal(n, flat:numel())
    assert.are.equal(n, grad:numel())
    -- the parameters are the flat buffer: a write through it is what the cells compute with
    local x = recur.randint(1, V, { T, B })
    local y = recur.randint(1, V, { T, B })
    local before = m(x)
    local sl = slices(m, flat)
    for i, p in ipairs(m:parameters()) do U.close(p, sl[i], 0, named[i][1]) end
    recur.no_grad(function() m.rnn.cells[2]:parameters()[2][2]:mul_(0) end)
    assert.are.equal(0, sl[6]:abs():max():item())
    assert.is_true((m(x) - before):abs():max():item() > 1e-4)
    -- backward accumulates into the flat gradient buffer: every parameter's slice, nonzero
    m:zero_grad()
    loss_of(m, x, y):backward()
    local gs = slices(m, grad)
    for i, p in ipairs(m:parameters()) do
      U.close(p.grad, gs[i], 0, named[i][1])
      assert.is_true(gs[i]:abs():sum():item() > 0, named[i][1] .. " has a gradient")
    end
    -- zero_grad clears the flat buffer (the gradients stay attached to it)
    m:zero_grad()
    assert.are.equal(0, grad:abs():max():item())
    loss_of(m, x, y):backward()
    assert.is_true(grad:abs():max():item() > 0)
  end)

  it("clipping through the flat gradient scales every parameter's gradient", function()
    recur.seed(12)
    local m = LM(6, 4, 5)
    local _, grad = m:flat_parameters()
    local x, y = recur.randint(1, 6, { 5, 2 }), recur.randint(1, 6, { 5, 2 })
    m:zero_grad()
    local big = loss_of(m, x, y) * 50
    big:backward()
    local before = {}
    for i, p in ipairs(m:parameters()) do before[i] = p.grad:clone() end
    local ss = 0
    for _, g in ipairs(before) do ss = ss + (g * g):sum():item() end
    local norm = math.sqrt(ss)
    assert.is_true(norm > 1, "a large gradient: " .. norm)
    local got = nn.clip_grad_norm(grad, 0.5)
    assert.is_true(math.abs(got - norm) < 1e-4 * norm, got .. " vs " .. norm)
    local coef = 0.5 / (norm + 1e-6)
    for i, p in ipairs(m:parameters()) do
      assert.is_true(before[i]:abs():max():item() > 0)
      U.close(p.grad, before[i] * coef, 1e-5, m:named_parameters()[i][1])
    end
    assert.is_true(math.abs(nn.grad_norm(grad) - 0.5) < 1e-4)
    assert.is_true(math.abs(nn.grad_norm(m) - 0.5) < 1e-4)
    -- below the limit nothing changes
    local keep = grad:clone()
    nn.clip_grad_norm(grad, 10)
    U.close(grad, keep, 0)
    assert.matches("max_norm must be > 0", H.err_of(nn.clip_grad_norm, grad, 0))
  end)

  it("an optimizer over model:parameters() trains it (next symbol of a cycle)", function()
    recur.seed(13)
    local V = 5
    local m = LM(V, 8, 16)
    local opt = recur.optim.Adam(m:parameters(), { lr = 0.02 })
    local _, grad = m:flat_parameters()
    -- sequences 1 2 3 4 5 1 2 ... from random phases; the target is the next symbol
    local function batch()
      local T, B = 8, 6
      local xs, ys = {}, {}
      for t = 1, T do
        xs[t], ys[t] = {}, {}
        for b = 1, B do
          local s = (b * 3 + t) % V
          xs[t][b], ys[t][b] = s + 1, (s + 1) % V + 1
        end
      end
      return recur.tensor(xs), recur.tensor(ys)
    end
    local x, y = batch()
    local first, last
    for step = 1, 60 do
      opt:zero_grad()
      local loss = loss_of(m, x, y)
      loss:backward()
      nn.clip_grad_norm(grad, 5)
      opt:step()
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(first > 1.2, "starts near log 5: " .. first)
    assert.is_true(last < 0.1, string.format("loss %.3f -> %.3f", first, last))
  end)

  it("state_dict and recur.save / recur.load round-trip into a fresh model", function()
    recur.seed(14)
    local a = LM(6, 4, 5, { cell = "gru" })
    recur.seed(99)
    local b = LM(6, 4, 5, { cell = "gru" })
    local x = recur.randint(1, 6, { 3, 2 })
    assert.is_true((a(x) - b(x)):abs():max():item() > 1e-4)
    local sd = a:state_dict()
    assert.is_true(recur.is_tensor(sd["rnn.layer2.W_h"]))
    b:load_state_dict(sd)
    U.close(b(x), a(x), 0)
    -- the loaded values went into b's own flat buffer
    U.close(select(1, b:flat_parameters()), select(1, a:flat_parameters()), 0)
    -- a file, with an optimizer
    local dir = H.tmpdir()
    local opt = recur.optim.Adam(a, { lr = 0.01 })
    a:zero_grad()
    loss_of(a, x, x):backward()
    opt:step()
    local path = dir .. "/lm.ckpt"
    recur.save(path, { model = a, optimizer = opt })
    recur.seed(7)
    local c = LM(6, 4, 5, { cell = "gru" })
    local opt2 = recur.optim.Adam(c, { lr = 0.01 })
    recur.load(path, { model = c, optimizer = opt2 })
    U.close(c(x), a(x), 0)
    assert.are.equal(1, opt2:state().step)
    -- a wrong shape is refused before anything changes
    local d = LM(6, 4, 7, { cell = "gru" })
    local keep = select(1, d:flat_parameters()):clone()
    assert.matches("has shape", H.err_of(function() recur.load(path, { model = d }) end))
    U.close(select(1, d:flat_parameters()), keep, 0)
    H.rm_rf(dir)
  end)

  it("composes in nn.Sequential; train / eval reach its dropout", function()
    recur.seed(15)
    local layer = nn.RNN { cell = "rnn", input = 3, hidden = 4, layers = 2, dropout = 0.5 }
    local seq = nn.Sequential { layer, nn.Linear(4, 2) }
    assert.are.equal(total_numel(seq), select(1, seq:flat_parameters()):numel())
    assert.are.equal("1.layer2.W_h", seq:named_parameters()[5][1])
    local x = recur.randn(5, 2, 3)
    seq:eval()
    assert.is_false(layer.training)
    local a, b = seq(x), seq(x)
    assert.are.same({ 5, 2, 2 }, a:size())
    U.close(a, b, 0)
    seq:train()
    assert.is_true(layer.training and layer.layer1.training)
    assert.is_true((seq(x) - seq(x)):abs():max():item() > 1e-4)
  end)

  it("summary: output shapes, parameter counts and multiply-adds per sequence", function()
    recur.seed(16)
    local V, E, Hn, T, B = 7, 5, 6, 4, 3
    local m = LM(V, E, Hn)
    local text = m:summary(recur.ones(T, B), { print = false })
    local P = 4 * Hn
    -- layer 1: T steps of x W_x and h W_h per sequence; its parameters W_x, W_h, b
    local l1 = text:match("\n%s*rnn%.layer1 lstm cell %(5 %-> 6%)[^\n]*")
    assert.is_not_nil(l1, text)
    assert.matches("%[4, 3, 6%] %(%+1%)", l1)
    local function n(s) return tonumber((s:gsub(",", ""))) end
    local nums = {}
    for v in l1:gmatch("([%d,]+)%s*") do nums[#nums + 1] = v end
    assert.are.equal(E * P + Hn * P + P, n(nums[#nums - 1]))
    assert.are.equal(T * (E * P + Hn * P), n(nums[#nums]))
    assert.matches("rnn RNN%(lstm, 5 %-> 6, 2 layers%)%s+%[4, 3, 6%] %(%+1%)", text)
    assert.matches("total parameters: " .. tostring(total_numel(m)):gsub("(%d)(%d%d%d)$", "%1,%2")
      .. " in 9 tensors", text)
    -- embedding lookups count nothing; layers 1 and 2 and the readout
    local macs = T * (E * P + Hn * P) + T * (Hn * P + Hn * P) + T * Hn * V
    assert.matches("multiply%-adds per example: " .. tostring(macs):gsub("(%d)(%d%d%d)$", "%1,%2"),
      text)
  end)

  it("a Lua cell's parameters join the flat buffer and equal the fused twin's numbers", function()
    recur.seed(17)
    local def = require("tests.oracles.cells.gru")
    local layer = nn.RNN { cell = def, input = 3, hidden = 4, layers = 2 }
    local cell = layer.cells[1]
    -- the cell's own table holds the parameter tensors that were registered
    for _, np in ipairs(layer.layer1:named_parameters()) do
      assert.are.equal(cell.p[np[1]], np[2])
      assert.is_true(nn.is_parameter(np[2]))
    end
    local holder = nn.Sequential { layer, nn.Linear(4, 1) }
    local flat, grad = holder:flat_parameters()
    assert.are.equal(total_numel(holder), flat:numel())
    local x = recur.randn(5, 2, 3)
    holder:zero_grad()
    holder(x):sum():backward()
    for i, p in ipairs(holder:parameters()) do
      U.close(p.grad, slices(holder, grad)[i], 0)
      assert.is_true(p.grad:abs():sum():item() > 0, holder:named_parameters()[i][1])
    end
    -- a fused layer inside a bigger model and a Lua twin sharing its (moved) tensors
    local fused = nn.RNN { cell = "gru", input = 3, hidden = 4 }
    local big = nn.Sequential { nn.Linear(2, 3), fused }
    big:flat_parameters()
    local twin = rnn.LuaCell(def, { input = 3, hidden = 4, params = U.params(fused.cells[1]) })
    local x2 = recur.randn(4, 2, 3)
    U.close(twin:forward(x2, { lengths = { 4, 2 } }), fused(x2, { lengths = { 4, 2 } }), 1e-5)
  end)

  it("a plain tensor shared by two Lua cells stays shared once they are modules", function()
    recur.seed(19)
    local def = require("tests.oracles.cells.gru")
    local p = def.new_params(3, 4, {}) -- plain tensors (requires_grad), not parameter tensors
    local p2 = {}
    for k, v in pairs(p) do p2[k] = v end -- another table, the same tensors
    local a = rnn.LuaCell(def, { input = 3, hidden = 4, params = p })
    local b = rnn.LuaCell(def, { input = 3, hidden = 4, params = p2 })
    local m = nn.Sequential { rnn.CellModule(a), rnn.CellModule(b) }
    for _, name in ipairs(def.param_names) do
      assert.is_true(nn.is_parameter(a.p[name]), name)
      assert.are.equal(a.p[name], b.p[name], name)
    end
    assert.are.equal(#def.param_names, #m:parameters())
    -- one tensor: a write through one cell's is the other's
    recur.no_grad(function() a.p.W_x:fill_(0.5) end)
    assert.are.equal(0.5, b.p.W_x:min():item())
  end)

  it("a trained initial state inside a model joins the flat buffer", function()
    recur.seed(18)
    local IS = recur.rnn.initial_state
    local M = nn.Module:extend("WithInit")
    function M:init()
      self.rnn = nn.RNN { cell = "lstm", input = 2, hidden = 3 }
      self.init_state = IS.trained { init = 0.5 }:bind(self.rnn)
    end
    function M:forward(x) return self.rnn(x, { state = self.init_state(x:size(2)) }) end
    local m = M()
    local named = m:named_parameters()
    assert.are.equal("init_state.layer1.h", named[4][1])
    assert.are.equal("init_state.layer1.c", named[5][1])
    local flat, grad = m:flat_parameters()
    assert.are.equal(total_numel(m), flat:numel())
    assert.are.equal(0.5, named[5][2]:max():item())
    m(recur.randn(3, 2, 2)):sum():backward()
    U.close(named[5][2].grad, grad:narrow(1, flat:numel() - 2, 3), 0)
    assert.is_true(named[5][2].grad:abs():sum():item() > 0)
  end)

  it("constructor errors are raised at the caller's line and say a/an right", function()
    local THIS = debug.getinfo(1, "S").short_src
    local line = debug.getinfo(1, "l").currentline + 1
    local e = H.err_of(function() local _ = nn.RNN { input = 1 / 0, hidden = 2 } end)
    assert.equal(THIS .. ":" .. line .. ": rnn.RNN: input must be an integer, got inf", e)
    line = debug.getinfo(1, "l").currentline + 1
    e = H.err_of(function() local _ = nn.RNN { input = 2, hidden = 2.5 } end)
    assert.equal(THIS .. ":" .. line .. ": rnn.RNN: hidden must be an integer, got 2.5", e)
    line = debug.getinfo(1, "l").currentline + 1
    e = H.err_of(function() local _ = nn.RNN { cell = "foo", input = 2, hidden = 2 } end)
    assert.equal(THIS .. ":" .. line .. ": rnn.RNN: cell must be a cell type (rnn, gru, lstm, "
      .. "lstm_peephole, pseudo_lstm, normalized_prototype, ln_lstm), a Lua cell definition or "
      .. "a constructor function, got foo", e)
    line = debug.getinfo(1, "l").currentline + 1
    e = H.err_of(function() local _ = nn.RNN { cell = "lstm", input = 2, hidden = 2, reset_after = true } end)
    assert.equal(THIS .. ":" .. line .. ": rnn.RNN: reset_after applies to gru cells only, got lstm", e)
    local layer = nn.RNN { input = 2, hidden = 2 }
    assert.matches("RNN:step: called with nil as self, not an RNN ", H.err_of(function() layer.step() end))
    assert.matches("Linear:forward: called with nil as self, not a Linear ",
      H.err_of(function() nn.Linear(1, 1).forward() end))
  end)

  it("register_parameter takes parameter tensors only; to_parameter copies the others", function()
    local m = nn.Module()
    local plain = recur.ones(2, 2)
    assert.matches("is not a parameter tensor", H.err_of(function() m:register_parameter("w", plain) end))
    assert.matches("is not a parameter tensor",
      H.err_of(function() m:register_parameter("w", nn.to_parameter(plain):narrow(1, 1, 1)) end))
    local p = nn.to_parameter(plain)
    assert.are_not.equal(plain, p)
    assert.are.equal(p, nn.to_parameter(p))
    U.close(p, plain, 0)
    m:register_parameter("w", p)
    assert.matches("already taken", H.err_of(function() m:register_parameter("w", p) end))
    assert.are.equal(p, m:parameters()[1])
    local c = rnn.Cell { cell = "rnn", input = 2, hidden = 2 }
    m:register_parameter("W_h", c:parameters()[2][2])
    assert.are.equal(4 + 4, select(1, m:flat_parameters()):numel())
  end)
end)
