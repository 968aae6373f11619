-- The fused lstm, rnn and gru (reset_after) cells in recur.rnn.RNN layers against golden
-- values from PyTorch (tests/fixtures/gen_rnn_golden.py): outputs, final states, the loss
-- and the gradients of the input, the initial states and every weight, within 1e-4
-- relative. The weight layout mapping is rnn.from_torch's (docs/rnn.md).
local recur = require("recur")
local rnn = require("recur.rnn")
local U = require("tests.rnn_util")
local golden = dofile("tests/fixtures/rnn_golden.lua")

local function check_case(name)
  local g = golden[name]
  local layer = rnn.RNN { cell = g.kind, input = g.I, hidden = g.H, layers = g.layers,
    reset_after = g.kind == "gru" }
  rnn.from_torch(layer, g.weights)
  local x = recur.tensor(g.x):requires_grad(true)
  local h0 = recur.tensor(g.h0):requires_grad(true)
  local c0 = g.c0 and recur.tensor(g.c0):requires_grad(true)
  local state = {}
  for l = 1, g.layers do state[l] = { h0:select(1, l), c0 and c0:select(1, l) } end
  local out, fin = layer:forward(x, { state = state, lengths = g.lengths })
  U.close(out, g.out, 1e-4, name .. " outputs")
  local hs, cs = {}, {}
  for l = 1, g.layers do
    hs[l] = fin[l][1]
    cs[l] = fin[l][2]
  end
  local hn = recur.stack(hs, 1)
  U.close(hn, g.h_n, 1e-4, name .. " final h")
  local loss = (out * recur.tensor(g.w_out)):sum() + (hn * recur.tensor(g.w_h)):sum()
  if c0 then
    local cn = recur.stack(cs, 1)
    U.close(cn, g.c_n, 1e-4, name .. " final c")
    loss = loss + (cn * recur.tensor(g.w_c)):sum()
  end
  U.close(loss, { g.loss }, 1e-4, name .. " loss")
  loss:backward()
  U.close(x.grad, g.grad_x, 1e-4, name .. " grad x")
  U.close(h0.grad, g.grad_h0, 1e-4, name .. " grad h0")
  if c0 then U.close(c0.grad, g.grad_c0, 1e-4, name .. " grad c0") end
  local H = g.H
  for l = 1, g.layers do
    local p = U.params(layer.cells[l])
    local sfx = "_l" .. (l - 1)
    U.close(p.W_x.grad:t(), g.grads["weight_ih" .. sfx], 1e-4, name .. " grad weight_ih" .. sfx)
    U.close(p.W_h.grad:t(), g.grads["weight_hh" .. sfx], 1e-4, name .. " grad weight_hh" .. sfx)
    U.close(p.b.grad, g.grads["bias_ih" .. sfx], 1e-4, name .. " grad bias_ih" .. sfx)
    local bh = p.b.grad
    if g.kind == "gru" then bh = recur.cat({ p.b.grad:narrow(1, 1, 2 * H), p.b_hn.grad }, 1) end
    U.close(bh, g.grads["bias_hh" .. sfx], 1e-4, name .. " grad bias_hh" .. sfx)
  end
end

-- A fused cell against the same cell written from its equations with PyTorch tensors.
local function check_cell(name)
  local g = golden.cells[name]
  local kind = name == "gru_after" and "gru" or name
  local x = recur.tensor(g.x):requires_grad(true)
  local cell = rnn.Cell { cell = kind, input = x:size(3), hidden = #g.state0[1][1],
    reset_after = name == "gru_after" }
  local p = U.params(cell)
  recur.no_grad(function()
    for k, v in pairs(g.params) do p[k]:copy_(recur.tensor(v)) end
  end)
  local st0 = {}
  for k, v in ipairs(g.state0) do st0[k] = recur.tensor(v):requires_grad(true) end
  local out, st = cell:forward(x, { state = st0, lengths = g.lengths })
  U.close(out, g.out, 1e-4, name .. " outputs")
  local loss = (out * recur.tensor(g.w_out)):sum()
  for k = 1, #st0 do
    U.close(st[k], g.state[k], 1e-4, name .. " final state " .. k)
    loss = loss + (st[k] * recur.tensor(g.w_state[k])):sum()
  end
  U.close(loss, { g.loss }, 1e-4, name .. " loss")
  loss:backward()
  U.close(x.grad, g.grad_x, 1e-4, name .. " grad x")
  for k = 1, #st0 do U.close(st0[k].grad, g.grad_state0[k], 1e-4, name .. " grad state " .. k) end
  local n = 0
  for k, v in pairs(g.grads) do
    U.close(p[k].grad, v, 1e-4, name .. " grad " .. k)
    n = n + 1
  end
  assert.are.equal(#cell:parameters(), n)
end

describe("every fused cell against its equations in PyTorch (lengths 5, 2, 4)", function()
  for _, name in ipairs { "rnn", "gru", "gru_after", "lstm", "lstm_peephole", "pseudo_lstm",
    "normalized_prototype", "ln_lstm" } do
    it(name, function() check_cell(name) end)
  end
end)

describe("recurrent cells against PyTorch", function()
  it("torch.nn.LSTM, 2 layers, initial states", function() check_case("lstm") end)
  it("torch.nn.RNN (tanh), 2 layers", function() check_case("rnn") end)
  it("torch.nn.GRU (reset_after form), 2 layers", function() check_case("gru") end)
  it("torch.nn.LSTM on a packed batch of lengths 5, 2, 4", function()
    check_case("lstm_lengths")
  end)
  it("torch.nn.GRU on a packed batch of lengths 3, 5, 1", function()
    check_case("gru_lengths")
  end)
  it("from_torch refuses a GRU without reset_after and a wrong shape", function()
    local layer = rnn.RNN { cell = "gru", input = 4, hidden = 5 }
    assert.has_error(function() rnn.from_torch(layer, golden.gru.weights) end,
      "rnn.from_torch: PyTorch's GRU is the reset_after form; build the layer with "
      .. "reset_after = true")
    local lstm = rnn.RNN { cell = "lstm", input = 3, hidden = 5, layers = 2 }
    local ok, err = pcall(rnn.from_torch, lstm, golden.lstm.weights)
    assert.is_false(ok)
    assert.matches("weight_ih_l0 has shape %[20, 4%], expected %[20, 3%]", err)
  end)
end)
