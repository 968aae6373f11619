-- Fused recurrent cells (runtime/rnn_*.c) and recur.rnn: parameters and their initial values,
-- hand-worked values, fused == Lua twin (tests/oracles/cells) in outputs and every gradient,
-- gradcheck of both, variable lengths, step-by-step use, layers, rnn.last and errors.
local recur = require("recur")
local rnn = require("recur.rnn")
local U = require("tests.rnn_util")

local VARIANTS = { "rnn", "gru", "gru_after", "lstm", "lstm_peephole", "pseudo_lstm",
  "normalized_prototype", "ln_lstm" }

local function make(name, I, H)
  local kind = name == "gru_after" and "gru" or name
  return rnn.Cell { cell = kind, input = I, hidden = H, reset_after = name == "gru_after" }
end

local function twin_of(name, cell)
  local def = require("tests.oracles.cells." .. (name == "gru_after" and "gru" or name))
  if name == "gru_after" then def = def.reset_after end
  return rnn.LuaCell(def, { input = cell.input, hidden = cell.hidden, params = U.params(cell) })
end

local function shape(t) return table.concat(t:size(), ",") end

describe("rnn.Cell parameters", function()
  local expect = {
    rnn = { "W_x:3,4", "W_h:4,4", "b:4" },
    gru = { "W_x:3,12", "W_h:4,12", "b:12" },
    gru_after = { "W_x:3,12", "W_h:4,12", "b:12", "b_hn:4" },
    lstm = { "W_x:3,16", "W_h:4,16", "b:16" },
    lstm_peephole = { "W_x:3,16", "W_h:4,16", "b:16", "p_i:4", "p_f:4", "p_o:4" },
    pseudo_lstm = { "W_x:3,16", "W_h:4,16", "b:16" },
    normalized_prototype = { "W_x:3,16", "W_h:4,16", "b:16" },
    ln_lstm = { "W_x:3,16", "W_h:4,16", "ln_scale:5,4", "ln_shift:5,4" },
  }
  for _, name in ipairs(VARIANTS) do
    it(name .. ": names, shapes, leaves that require grad, stable identity", function()
      local cell = make(name, 3, 4)
      local got = {}
      for i, np in ipairs(cell:parameters()) do
        got[i] = np[1] .. ":" .. shape(np[2])
        assert.is_true(np[2]:requires_grad())
        assert.is_true(np[2].is_leaf)
      end
      assert.are.same(expect[name], got)
      assert.are.equal(cell:parameters()[1][2], cell:parameters()[1][2])
    end)
  end

  it("initial values: uniform weights, forget and gate biases 1, LN scale 1 and shift 0", function()
    recur.seed(7)
    local H = 4
    local k = 1 / math.sqrt(H)
    local function biases(name) return U.params(make(name, 3, H)).b:totable() end
    assert.are.same({ 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, biases("lstm"))
    assert.are.same({ 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, biases("lstm_peephole"))
    -- pseudo_lstm and normalized_prototype: blocks i, f, o, g
    assert.are.same({ 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, biases("pseudo_lstm"))
    assert.are.same({ 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 }, biases("gru"))
    assert.are.same({ 0, 0, 0, 0 }, biases("rnn"))
    local ga = U.params(make("gru_after", 3, H))
    assert.are.same({ 0, 0, 0, 0 }, ga.b_hn:totable())
    local ln = U.params(make("ln_lstm", 3, H))
    assert.are.equal(20, ln.ln_scale:sum():item())
    assert.are.equal(0, ln.ln_shift:abs():sum():item())
    local W = U.params(make("lstm", 30, 40)).W_h
    k = 1 / math.sqrt(40)
    assert.is_true(W:max():item() <= k and W:min():item() >= -k)
    assert.is_true(W:max():item() > 0.9 * k and W:min():item() < -0.9 * k)
  end)

  it("fields describe the cell", function()
    local c = make("lstm", 3, 4)
    assert.are.equal("lstm", c.kind)
    assert.are.equal(3, c.input)
    assert.are.equal(4, c.hidden)
    assert.are.equal(2, c.n_states)
    assert.are.same({ "h", "c" }, c.state_names)
    assert.is_true(c.fused)
    assert.is_false(c.reset_after)
    assert.is_true(make("gru_after", 3, 4).reset_after)
    assert.are.same({ "s" }, make("pseudo_lstm", 3, 4).state_names)
    assert.matches("rnn cell lstm %(input 3, hidden 4%)", tostring(c))
    assert.are.equal(6 * 10 * 2 * (3 + 4) * 16, c:flops(10, 2))
  end)
end)

describe("hand-worked values", function()
  it("vanilla RNN, one unit, two steps", function()
    local cell = rnn.Cell { cell = "rnn", input = 1, hidden = 1 }
    local p = U.params(cell)
    recur.no_grad(function()
      p.W_x:fill_(0.5)
      p.W_h:fill_(-1)
      p.b:fill_(0.1)
    end)
    local x = recur.tensor { { { 1 } }, { { 2 } } }
    local y, st = cell:forward(x, { state = { recur.tensor { { 0.3 } } } })
    -- h1 = tanh(0.5 - 0.3 + 0.1) = tanh(0.3); h2 = tanh(1.0 - h1 + 0.1)
    U.close(y, { 0.2913126051425934, 0.6688655614852905 }, 1e-6)
    U.close(st[1], { 0.6688655614852905 }, 1e-6)
    st[1]:sum():backward()
    -- dh2/db = (1 - h2^2) (1 - (1 - h1^2)), and so on (PyTorch agrees)
    U.close(p.W_x.grad, { 0.5995157361030579 }, 1e-5)
    U.close(p.W_h.grad, { 0.009268239140510559 }, 1e-4)
    U.close(p.b.grad, { 0.04689687490463257 }, 1e-5)
  end)

  it("normalized prototype: s' = u / sqrt(var(u) + 1) per example", function()
    -- zero weights: every gate is s(b); with b = 0: i = f = o = 0.5, g = tanh(0) = 0
    local cell = rnn.Cell { cell = "normalized_prototype", input = 1, hidden = 3 }
    local p = U.params(cell)
    recur.no_grad(function()
      p.W_x:zero_()
      p.W_h:zero_()
      p.b:zero_()
    end)
    local s0 = recur.tensor { { 1, 2, 6 } }
    local y = cell:forward(recur.zeros(1, 1, 1), { state = { s0 } })
    -- u = 0.5 s0 = {0.5, 1, 3}; mean 1.5; var = (1 + 0.25 + 2.25) / 3 = 7/6
    local r = 1 / math.sqrt(7 / 6 + 1)
    U.close(y, { 0.5 * r, 1 * r, 3 * r }, 1e-6)
  end)
end)

-- loss = sum(y * wy) + sum_k sum(state_k * ws_k), with a mixed-length batch
local function run_loss(c, x, st0, lens, wy, ws)
  local y, st = c:forward(x, { state = st0, lengths = lens })
  local loss = (y * wy):sum()
  for k = 1, #st0 do loss = loss + (st[k] * ws[k]):sum() end
  return y, st, loss
end

describe("fused cells equal their Lua twins (tests/oracles/cells)", function()
  for _, name in ipairs(VARIANTS) do
    it(name .. ": outputs and gradients of x, initial states and parameters", function()
      recur.seed(11)
      local cell = make(name, 3, 5)
      local twin = twin_of(name, cell)
      local T, B = 6, 3
      local x = recur.randn(T, B, 3):requires_grad(true)
      local st0 = {}
      for k = 1, cell.n_states do st0[k] = (recur.randn(B, 5) * 0.5):requires_grad(true) end
      local wy, ws = recur.randn(T, B, 5), { recur.randn(B, 5), recur.randn(B, 5) }
      local lens = { 6, 2, 4 }
      local function grads(c)
        x:zero_grad()
        for _, s in ipairs(st0) do s:zero_grad() end
        for _, np in ipairs(cell:parameters()) do np[2]:zero_grad() end
        local y, st, loss = run_loss(c, x, st0, lens, wy, ws)
        loss:backward()
        local g = { y = y, x = x.grad }
        for k = 1, #st0 do
          g["state" .. k] = st[k]
          g["grad_state" .. k] = st0[k].grad
        end
        for _, np in ipairs(cell:parameters()) do g[np[1]] = np[2].grad end
        return g
      end
      local a, b = grads(cell), grads(twin)
      local n = 0
      for k, v in pairs(b) do
        U.close(a[k], v, 1e-4, name .. " " .. k)
        n = n + 1
      end
      assert.are.equal(2 + 2 * cell.n_states + #cell:parameters(), n)
    end)
  end
end)

describe("gradcheck", function()
  for _, name in ipairs(VARIANTS) do
    it(name .. ": fused and twin", function()
      recur.seed(21)
      local cell = make(name, 2, 3)
      local twin = twin_of(name, cell)
      local x = recur.randn(3, 2, 2):requires_grad(true)
      local inputs = { x }
      for k = 1, cell.n_states do inputs[1 + k] = (recur.randn(2, 3) * 0.5):requires_grad(true) end
      local ns = cell.n_states
      for _, np in ipairs(cell:parameters()) do inputs[#inputs + 1] = np[2] end
      for _, c in ipairs { cell, twin } do
        assert.is_true(recur.gradcheck(function(xx, ...)
          local st = { ... }
          for k = ns + 1, #st do st[k] = nil end
          local y, fin = c:forward(xx, { state = st, lengths = { 3, 2 } })
          local outs = { y }
          for k = 1, ns do outs[1 + k] = fin[k] end
          return outs
        end, inputs))
      end
    end)
  end
end)

describe("variable lengths", function()
  it("past its length a sequence's state is frozen and its outputs are zero", function()
    recur.seed(3)
    local cell = make("lstm", 2, 3)
    local x = recur.randn(4, 3, 2)
    local y, st = cell:forward(x, { lengths = { 4, 1, 0 } })
    local full = cell:forward(x)
    assert.are.equal(0, y:narrow(1, 2, 3):select(2, 2):abs():sum():item())
    assert.are.equal(0, y:select(2, 3):abs():sum():item())
    U.close(y:select(2, 1), full:select(2, 1), 1e-6)
    U.close(y:select(1, 1):select(1, 2), full:select(1, 1):select(1, 2), 1e-6)
    -- final h of sequence 2 is its output at step 1; sequence 3 keeps the zero initial state
    U.close(st[1]:select(1, 2), full:select(1, 1):select(1, 2), 1e-6)
    assert.are.equal(0, st[1]:select(1, 3):abs():sum():item())
    assert.are.equal(0, st[2]:select(1, 3):abs():sum():item())
  end)

  it("lengths as a tensor equal lengths as a list", function()
    local cell = make("gru", 2, 3)
    local x = recur.randn(3, 2, 2)
    local a = cell:forward(x, { lengths = { 3, 1 } })
    local b = cell:forward(x, { lengths = recur.tensor { 3, 1 } })
    U.close(a, b, 0)
  end)

  for _, kind in ipairs { "lstm", "gru" } do
    it(kind .. ": a mixed-length batch equals each sequence alone (2 layers)", function()
      recur.seed(5)
      local layer = rnn.RNN { cell = kind, input = 3, hidden = 4, layers = 2 }
      local T, lens = 5, { 5, 2, 4 }
      local x = recur.randn(T, 3, 3)
      local h0 = recur.randn(2, 3, 4)
      local function state_of(b)
        local s = {}
        for l = 1, 2 do
          local h = b and h0:select(1, l):narrow(1, b, 1) or h0:select(1, l)
          s[l] = layer.n_states == 2 and { h, h * 0.5 } or { h }
        end
        return s
      end
      local function zero() for _, np in ipairs(layer:named_parameters()) do np[2]:zero_grad() end end
      local function snapshot()
        local g = {}
        for i, np in ipairs(layer:named_parameters()) do g[i] = np[2].grad:clone() end
        return g
      end
      -- the batch, with loss = sum of outputs and final states
      zero()
      local xb = x:clone():requires_grad(true)
      local y, fin = layer:forward(xb, { state = state_of(nil), lengths = lens })
      local loss = y:sum()
      for l = 1, 2 do for k = 1, layer.n_states do loss = loss + fin[l][k]:sum() end end
      loss:backward()
      local gb = snapshot()
      -- each sequence alone, gradients summed
      local sum = nil
      for b = 1, 3 do
        zero()
        local xs = x:narrow(2, b, 1):narrow(1, 1, lens[b]):clone():requires_grad(true)
        local ys, fs = layer:forward(xs, { state = state_of(b) })
        U.close(y:narrow(2, b, 1):narrow(1, 1, lens[b]), ys, 1e-5, "outputs " .. b)
        if lens[b] < T then
          assert.are.equal(0, y:narrow(2, b, 1):narrow(1, lens[b] + 1, T - lens[b]):abs():sum()
            :item())
        end
        local l2 = ys:sum()
        for l = 1, 2 do
          for k = 1, layer.n_states do
            U.close(fin[l][k]:narrow(1, b, 1), fs[l][k], 1e-5, "final state " .. b)
            l2 = l2 + fs[l][k]:sum()
          end
        end
        l2:backward()
        U.close(xb.grad:narrow(2, b, 1):narrow(1, 1, lens[b]), xs.grad, 1e-5, "grad x " .. b)
        local g = snapshot()
        if sum then for i = 1, #g do sum[i] = sum[i] + g[i] end else sum = g end
      end
      for i = 1, #gb do U.close(gb[i], sum[i], 1e-5, layer:named_parameters()[i][1]) end
    end)
  end
end)

describe("initial states", function()
  it("a trained state broadcast over the batch gets the summed gradient", function()
    recur.seed(8)
    local cell = make("lstm", 2, 3)
    local x = recur.randn(4, 5, 2)
    local ph = recur.randn(3):requires_grad(true)
    local pc = recur.randn(3):requires_grad(true)
    local y, st = cell:forward(x, { state = { ph:view(1, 3):expand(5, 3),
      pc:view(1, 3):expand(5, 3) }, lengths = { 4, 3, 0, 1, 2 } })
    local loss = y:sum() + (st[2] * st[2]):sum()
    loss:backward()
    local h0 = ph:detach():view(1, 3):expand(5, 3):contiguous():requires_grad(true)
    local c0 = pc:detach():view(1, 3):expand(5, 3):contiguous():requires_grad(true)
    local y2, st2 = cell:forward(x, { state = { h0, c0 }, lengths = { 4, 3, 0, 1, 2 } })
    local loss2 = y2:sum() + (st2[2] * st2[2]):sum()
    loss2:backward()
    U.close(ph.grad, h0.grad:sum(1), 1e-6)
    U.close(pc.grad, c0.grad:sum(1), 1e-6)
    -- the sequence of length 0 passes its initial c straight to the final state
    U.close(c0.grad:select(1, 3), st2[2]:select(1, 3) * 2, 1e-6)
  end)
end)

describe("step", function()
  for _, name in ipairs(VARIANTS) do
    it(name .. ": steps equal the sequence forward at batch 1 and 3", function()
      recur.seed(9)
      local cell = make(name, 3, 4)
      for _, B in ipairs { 1, 3 } do
        local x = recur.randn(4, B, 3)
        local st0 = {}
        for k = 1, cell.n_states do st0[k] = recur.randn(B, 4) end
        local y, fin = cell:forward(x, { state = st0 })
        local st = st0
        for t = 1, 4 do
          local o
          o, st = cell:step(x:select(1, t), st)
          U.close(o, y:select(1, t), 1e-6, "step " .. t)
        end
        for k = 1, cell.n_states do U.close(st[k], fin[k], 1e-6) end
      end
    end)
  end

  it("a step records autograd when an input needs grad", function()
    local cell = make("lstm", 2, 3)
    local x = recur.randn(2, 2):requires_grad(true)
    local y, st = cell:step(x)
    assert.is_true(y:requires_grad())
    assert.are.same({ 2, 3 }, y:size())
    local l1 = y:sum() + st[2]:sum()
    l1:backward()
    local g1 = x.grad:clone()
    x:zero_grad()
    local y2, st2 = cell:forward(x:view(1, 2, 2))
    local l2 = y2:sum() + st2[2]:sum()
    l2:backward()
    U.close(g1, x.grad, 1e-6)
  end)

  it("a step without grad returns tensors without history", function()
    local cell = make("gru", 2, 3)
    local y = recur.no_grad(function() return cell:step(recur.randn(1, 2)) end)
    assert.is_false(y:requires_grad())
  end)
end)

describe("rnn.RNN", function()
  it("stacks layers with ordered parameter names", function()
    local layer = rnn.RNN { cell = "gru", input = 3, hidden = 4, layers = 2, reset_after = true }
    local names = {}
    for i, np in ipairs(layer:named_parameters()) do names[i] = np[1] end
    assert.are.same({ "layer1.W_x", "layer1.W_h", "layer1.b", "layer1.b_hn", "layer2.W_x",
      "layer2.W_h", "layer2.b", "layer2.b_hn" }, names)
    assert.are.same({ 4, 12 }, layer:named_parameters()[5][2]:size())
    local y, st = layer:forward(recur.randn(5, 2, 3))
    assert.are.same({ 5, 2, 4 }, y:size())
    assert.are.equal(2, #st)
    assert.are.same({ 2, 4 }, st[2][1]:size())
  end)

  it("dropout acts on non-recurrent connections in training only", function()
    recur.seed(1)
    local layer = rnn.RNN { cell = "lstm", input = 3, hidden = 6, layers = 2, dropout = 0.5 }
    local plain = rnn.RNN { cell = "lstm", input = 3, hidden = 6, layers = 2 }
    recur.no_grad(function()
      for i, np in ipairs(layer:named_parameters()) do plain:named_parameters()[i][2]:copy_(np[2]) end
    end)
    local x = recur.randn(4, 2, 3)
    assert.is_true(layer.training)
    layer:eval()
    assert.is_false(layer.training)
    U.close(layer:forward(x), plain:forward(x), 0)
    layer:train()
    local a = layer:forward(x)
    local b = layer:forward(x)
    assert.is_true((a - b):abs():max():item() > 1e-3)
    -- the output dropout zeroes about half of the outputs, scaled by 1 / keep otherwise
    local zeros = a:eq(0):sum():item()
    assert.is_true(zeros > 0.25 * a:numel() and zeros < 0.75 * a:numel())
    -- and the state carries no dropout on its recurrent path: with dropout only on x, the
    -- final state of a 1-layer net equals running the cell on the dropped input
    local one = rnn.RNN { cell = "gru", input = 3, hidden = 4, dropout = 0.5 }
    recur.seed(2)
    local _, st = one:forward(x)
    recur.seed(2)
    local mask = recur.bernoulli(x:size(), 0.5) / 0.5
    local _, st2 = one.cells[1]:forward(x * mask)
    U.close(st[1][1], st2[1], 1e-6)
  end)

  it("batch_first takes and returns [B, T, .]", function()
    local a = rnn.RNN { cell = "rnn", input = 2, hidden = 3 }
    local b = rnn.RNN { cell = "rnn", input = 2, hidden = 3, batch_first = true }
    recur.no_grad(function()
      for i, np in ipairs(a:named_parameters()) do b:named_parameters()[i][2]:copy_(np[2]) end
    end)
    local x = recur.randn(4, 2, 2)
    local ya = a:forward(x, { lengths = { 4, 2 } })
    local yb = b:forward(x:transpose(1, 2), { lengths = { 4, 2 } })
    assert.are.same({ 2, 4, 3 }, yb:size())
    U.close(yb:transpose(1, 2), ya, 0)
  end)

  it("step equals forward, layer by layer", function()
    local layer = rnn.RNN { cell = "lstm", input = 3, hidden = 4, layers = 3 }
    local x = recur.randn(5, 1, 3)
    local y, fin = layer:forward(x)
    local st = nil
    for t = 1, 5 do
      local o
      o, st = layer:step(x:select(1, t), st)
      U.close(o, y:select(1, t), 1e-6)
    end
    for l = 1, 3 do U.close(st[l][2], fin[l][2], 1e-6) end
    assert.are.same({ { 1, 4 }, { 1, 4 } }, { layer:zero_state(1)[3][1]:size(),
      layer:zero_state(1)[3][2]:size() })
  end)

  it("accepts a Lua cell definition", function()
    local layer = rnn.RNN { cell = require("tests.oracles.cells.lstm"), input = 2, hidden = 3,
      layers = 2 }
    assert.are.equal("layer2.W_h", layer:named_parameters()[5][1])
    local y, st = layer:forward(recur.randn(3, 2, 2), { lengths = { 3, 1 } })
    assert.are.same({ 3, 2, 3 }, y:size())
    assert.are.same({ 2, 3 }, st[2][2]:size())
  end)
end)

describe("rnn.last", function()
  it("gathers each sequence's last relevant output, with gradient", function()
    local out = recur.arange(1, 25):view(4, 2, 3):requires_grad(true)
    local last = rnn.last(out, { 4, 2 })
    assert.are.same({ { 19, 20, 21 }, { 10, 11, 12 } }, last:totable())
    last:sum():backward()
    assert.are.equal(6, out.grad:sum():item())
    assert.are.same({ 1, 1, 1 }, out.grad:select(1, 4):select(1, 1):totable())
    assert.are.same({ 1, 1, 1 }, out.grad:select(1, 2):select(1, 2):totable())
    local bf = rnn.last(out:detach():transpose(1, 2), recur.tensor { 1, 3 },
      { batch_first = true })
    assert.are.same({ { 1, 2, 3 }, { 16, 17, 18 } }, bf:totable())
  end)

  it("refuses a zero length and a wrong count", function()
    local out = recur.zeros(3, 2, 1)
    assert.has_error(function() rnn.last(out, { 0, 1 }) end,
      "rnn.last: lengths[1] is 0: that sequence has no output")
    assert.has_error(function() rnn.last(out, { 1 }) end,
      "rnn.last: lengths has 1 entries, expected 2 (one per sequence)")
  end)
end)

describe("edge cases", function()
  it("T = 0 returns the initial state and an empty output", function()
    local cell = make("lstm", 2, 3)
    local h0 = recur.randn(2, 3):requires_grad(true)
    local y, st = cell:forward(recur.zeros(0, 2, 2), { state = { h0 } })
    assert.are.same({ 0, 2, 3 }, y:size())
    U.close(st[1], h0, 0)
    st[1]:sum():backward()
    assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, h0.grad:totable())
  end)

  it("B = 0 works", function()
    local y, st = make("gru", 2, 3):forward(recur.zeros(4, 0, 2))
    assert.are.same({ 4, 0, 3 }, y:size())
    assert.are.same({ 0, 3 }, st[1]:size())
  end)

  it("a strided input (transposed view) gives the same result", function()
    local cell = make("rnn", 3, 2)
    local x = recur.randn(2, 4, 3)
    U.close(cell:forward(x:transpose(1, 2):contiguous():transpose(1, 2)), cell:forward(x), 0)
  end)

  it("repeated training steps do not grow memory", function()
    local cell = make("lstm", 8, 16)
    local x = recur.randn(10, 4, 8)
    local function once()
      local y = cell:forward(x)
      y:sum():backward()
      for _, np in ipairs(cell:parameters()) do np[2]:zero_grad() end
    end
    once()
    collectgarbage()
    collectgarbage()
    local base = recur.memory().live
    for _ = 1, 20 do once() end
    collectgarbage()
    collectgarbage()
    assert.are.equal(base, recur.memory().live)
  end)
end)

describe("errors", function()
  local cell = make("lstm", 3, 4)
  local function err(f, msg)
    local ok, e = pcall(f)
    assert.is_false(ok)
    assert.matches(msg, e, 1, true)
  end
  it("name the function, the argument and the shapes", function()
    err(function() cell:forward(recur.zeros(2, 3, 5)) end,
      "rnn forward: x must have shape [T, B, 3], got [2, 3, 5]")
    err(function() cell:forward(recur.zeros(3, 5)) end,
      "rnn forward: x must have shape [T, B, 3], got [3, 5]")
    err(function() cell:forward(recur.zeros(2, 3, 3), { state = { recur.zeros(2, 4) } }) end,
      "rnn forward: initial state 1 (h) must have shape [3, 4], got [2, 4]")
    err(function() cell:forward(recur.zeros(2, 3, 3), { lengths = { 1, 2 } }) end,
      "lengths has 2 entries, expected 3 (one per sequence)")
    err(function() cell:forward(recur.zeros(2, 3, 3), { lengths = { 1, 3, 2 } }) end,
      "rnn forward: lengths[2] = 3 is outside [0, 2] (T = 2)")
    err(function() cell:forward(recur.zeros(2, 3, 3), { lengths = { 1, 1.5, 2 } }) end,
      "lengths[2] must be an integer, got 1.5")
    err(function() cell:forward(recur.zeros(2, 1, 3), { lengths = recur.zeros(2) }) end,
      "rnn forward: lengths has 2 entries, expected 1 (one per sequence)")
    err(function() cell:forward(recur.zeros(2, 1, 3), { lengths = "x" }) end,
      "lengths must be a list of integers or a tensor, got string")
    err(function() cell:step(recur.zeros(2, 4)) end,
      "rnn step: x must have shape [B, 3], got [2, 4]")
    -- a single tensor is accepted as the state of a one-state cell
    local _, st = make("gru", 3, 4):forward(recur.zeros(1, 1, 3), { state = recur.ones(1, 4) })
    assert.are.same({ 1, 4 }, st[1]:size())
    err(function() cell:forward(recur.zeros(1, 1, 3), { state = recur.zeros(1, 4) }) end,
      "rnn forward: state must be a list {h, c} (a lstm cell's state), got a single tensor")
    err(function() make("gru", 3, 4):_forward(recur.zeros(1, 1, 3), nil, recur.zeros(1, 4)) end,
      "rnn forward: a gru cell has one state, but a second one was given")
    err(function() rnn.Cell { cell = "lsmt", input = 1, hidden = 1 } end,
      "rnn.Cell: cell must be one of rnn, gru, lstm, lstm_peephole, pseudo_lstm, "
      .. "normalized_prototype, ln_lstm, got lsmt")
    err(function() rnn.Cell { cell = "lstm", input = 0, hidden = 1 } end,
      "rnn.Cell: input must be >= 1, got 0")
    err(function() rnn.Cell { cell = "lstm", input = 2, hidden = 1, reset_after = true } end,
      "rnn.Cell: reset_after applies to gru cells only")
    err(function() recur._rnn_cell("nope", 1, 1) end, "unknown cell type 'nope' (rnn, gru, lstm, "
      .. "lstm_peephole, pseudo_lstm, normalized_prototype, ln_lstm)")
    -- the list comes from the C table of cells (runtime/rnn_cells.h), a fresh copy each call
    assert.are.same({ "rnn", "gru", "lstm", "lstm_peephole", "pseudo_lstm",
      "normalized_prototype", "ln_lstm" }, rnn.cell_types)
    assert.are_not.equal(recur._rnn_cell_types(), recur._rnn_cell_types())
    err(function() rnn.RNN { cell = "lstm", input = 2, hidden = 2, dropout = 1 } end,
      "rnn.RNN: dropout must be a number in [0, 1), got 1")
    err(function() rnn.RNN { cell = 5, input = 2, hidden = 2 } end,
      "rnn.RNN: cell must be a cell type")
    err(function() cell.kind = "x" end, "rnn cell: cannot set field 'kind'")
    err(function() cell._forward(5) end, "_forward: argument #1 must be an rnn cell, got number")
    local closed = make("rnn", 1, 1)
    do local _ <close> = closed end
    err(function() closed:forward(recur.zeros(1, 1, 1)) end, "argument #1 is a closed rnn cell")
  end)

  it("bad lengths, states and inputs are reported as forward/step of what was called, at the caller's line", function()
    local H = require("tests.helpers")
    local THIS = debug.getinfo(1, "S").short_src
    -- each case: a function whose call is on one line, and the message expected from that line
    local function at(f, msg)
      local line = debug.getinfo(f, "S").linedefined
      assert.equal(THIS .. ":" .. line .. ": " .. msg, H.err_of(f))
    end
    local x = recur.zeros(4, 2, 2)
    local xt = recur.zeros(2, 2)
    local cell = make("lstm", 2, 3)
    local gru = make("gru", 2, 3)
    at(function() local _ = cell:forward(x, { lengths = { 1 } }) end,
      "rnn forward: lengths has 1 entries, expected 2 (one per sequence)")
    at(function() local _ = cell:forward(x, { lengths = recur.tensor({ 1.5, 2 }) }) end,
      "rnn forward: lengths[1] must be an integer, got 1.5")
    at(function() local _ = cell:forward(x, { lengths = "x" }) end,
      "rnn forward: lengths must be a list of integers or a tensor, got string")
    at(function() local _ = cell:forward(x, { state = { 1, 2 } }) end,
      "rnn forward: state[1] (h) must be a tensor, got number")
    at(function() local _ = cell:forward(x, { state = { h = xt } }) end,
      "rnn forward: state must be a list {h, c} (a lstm cell's state), got a key h")
    at(function() local _ = gru:forward(x, { state = { xt, xt } }) end,
      "rnn forward: state must be a list {h} (a gru cell's state), got a key 2")
    at(function() local _ = cell:forward("x") end,
      "rnn forward: x must have shape [T, B, 2], got string")
    at(function() local _ = cell:step(xt, { 1, 2 }) end,
      "rnn step: state[1] (h) must be a tensor, got number")
    at(function() local _ = cell:step("x") end, "rnn step: x must be a tensor [B, 2], got string")
    local layer = rnn.RNN { cell = "lstm", input = 2, hidden = 3, layers = 2 }
    local glayer = rnn.RNN { cell = "gru", input = 2, hidden = 3 }
    at(function() local _ = layer(x, { lengths = { 1 } }) end,
      "RNN forward: lengths has 1 entries, expected 2 (one per sequence)")
    at(function() local _ = layer:forward(x, { lengths = recur.tensor({ 1.5, 2 }) }) end,
      "RNN forward: lengths[1] must be an integer, got 1.5")
    at(function() local _ = layer(x, { lengths = { 1, 5 } }) end,
      "RNN forward: lengths[2] = 5 is outside [0, 4] (T = 4)")
    at(function() local _ = layer(x, { state = { nil, { 1, 2 } } }) end,
      "RNN forward: state[2][1] (h) must be a tensor, got number")
    at(function() local _ = layer(x, { state = { { recur.zeros(2, 5), xt } } }) end,
      "RNN forward: state[1][1] (h) must have shape [2, 3], got [2, 5]")
    at(function() local _ = glayer(x, { state = { { recur.zeros(2, 3), recur.zeros(2, 3) } } }) end,
      "RNN forward: state[1] must be a list {h} (a gru cell's state), got a key 2")
    at(function() local _ = layer(x, { state = { recur.zeros(2, 3) } }) end,
      "RNN forward: state[1] must be a list {h, c} (a lstm cell's state), got a single tensor")
    at(function() local _ = layer:step(xt, { { 1, 2 } }) end,
      "RNN step: state[1][1] (h) must be a tensor, got number")
    at(function() local _ = layer:step(xt, { { recur.zeros(1, 3) } }) end,
      "RNN step: state[1][1] (h) must have shape [2, 3], got [1, 3]")
    at(function() local _ = layer:step("x") end, "RNN step: x must be a tensor [B, 2], got string")
    -- the right states still work, a one-state layer also taking a single tensor per layer
    local y = glayer(x, { state = { recur.ones(2, 3) }, lengths = { 0, 4 } })
    assert.are.same({ 0, 0, 0 }, y[1][1]:totable())
  end)

  it("backward refuses parameters modified in place after the forward", function()
    local c = make("lstm", 2, 3)
    local y = c:forward(recur.randn(2, 1, 2):requires_grad(true))
    recur.no_grad(function() U.params(c).W_h:add_(1) end)
    err(function() y:sum():backward() end,
      "backward: parameter W_h of LSTMBackward was modified in place after the forward")
  end)

  -- a module's parameters move into one flat buffer when first fetched (layer:parameters()):
  -- an in-place write to any of them then moves the version of all, and the message says it
  -- cannot tell which; fetched only after the forward, the move gave them new storage, the
  -- forward kept the old, and backward runs on the values the forward used
  it("parameters in a flat buffer: modified in place after the forward", function()
    local x = recur.randn(4, 2, 3)
    recur.seed(7)
    local layer = rnn.RNN { cell = "gru", input = 3, hidden = 4 }
    local ps = layer:parameters()
    local y = layer(x)
    recur.no_grad(function() ps[3]:add_(1) end)
    err(function() y:sum():backward() end, "a parameter of GRUBackward was modified in place "
      .. "after the forward (W_x of GRUBackward shares its storage with other parameters")
    recur.seed(7)
    local ref = rnn.RNN { cell = "gru", input = 3, hidden = 4 }
    ref(x):sum():backward()
    recur.seed(7)
    local late = rnn.RNN { cell = "gru", input = 3, hidden = 4 }
    y = late(x)
    ps = late:parameters()
    recur.no_grad(function() ps[2]:mul_(2) end)
    y:sum():backward()
    local rp = ref:parameters()
    for i = 1, #ps do
      assert.are.equal(0, (ps[i].grad - rp[i].grad):abs():max():item(), "parameter " .. i)
    end
  end)

  it("backward twice needs retain_graph", function()
    local c = make("gru", 2, 3)
    local y = c:forward(recur.randn(2, 1, 2))
    local s = y:sum()
    s:backward({ retain_graph = true })
    local g = U.params(c).W_x.grad:clone()
    s:backward()
    U.close(U.params(c).W_x.grad, g * 2, 1e-6)
    err(function() s:backward() end, "was already run")
  end)
end)

describe("ln_lstm against its equations", function()
  -- the cell composed of tensor ops (layer norm over H per example, eps 1e-5), with autograd
  local function reference(p, x, H, lens)
    local T, B = x:size(1), x:size(2)
    local function ln(z, k)
      local m = z:mean(2, true)
      local d = z - m
      local v = (d * d):mean(2, true)
      return d / (v + 1e-5):sqrt() * p.ln_scale:select(1, k) + p.ln_shift:select(1, k)
    end
    local h, c = recur.zeros(B, H), recur.zeros(B, H)
    local ys = {}
    for t = 1, T do
      local z = recur.mm(x:select(1, t), p.W_x) + recur.mm(h, p.W_h)
      local i = ln(z:narrow(2, 1, H), 1):sigmoid()
      local f = (ln(z:narrow(2, H + 1, H), 2) + 1):sigmoid()
      local g = ln(z:narrow(2, 2 * H + 1, H), 3):tanh()
      local o = ln(z:narrow(2, 3 * H + 1, H), 4):sigmoid()
      local cn = c * f + i * g
      local hn = ln(cn, 5):tanh() * o
      -- rows past their length keep their state and output zeros
      local mask = recur.tensor((function()
        local m = {}
        for b = 1, B do m[b] = { t <= lens[b] and 1 or 0 } end
        return m
      end)())
      c = cn * mask + c * (1 - mask)
      h = hn * mask + h * (1 - mask)
      ys[t] = (hn * mask):unsqueeze(1)
    end
    return recur.cat(ys, 1)
  end

  for _, H in ipairs { 37, 64 } do
    it("matches the composition of tensor ops at H = " .. H .. ", with lengths", function()
      recur.seed(11)
      local T, B, I = 4, 3, 5
      local cell = make("ln_lstm", I, H)
      local p = U.params(cell)
      recur.no_grad(function()
        p.ln_scale:copy_(recur.rand(5, H) + 0.5)
        p.ln_shift:copy_(recur.randn(5, H) * 0.1)
      end)
      local x = recur.randn(T, B, I)
      local wy = recur.randn(T, B, H)
      local lens = { 4, 2, 3 }
      local y = cell:forward(x, { lengths = lens })
      local r = reference(p, x, H, lens)
      U.close(y, r, 1e-5, "output")
      local grads = {}
      ;(y * wy):sum():backward()
      for _, n in ipairs { "W_x", "W_h", "ln_scale", "ln_shift" } do
        grads[n] = p[n].grad:clone()
        p[n].grad = nil
      end
      ;(r * wy):sum():backward()
      for n, g in pairs(grads) do U.close(g, p[n].grad, 1e-4, n) end
    end)
  end
end)
