-- recur.rnn.RNN's connection option (Written Memories' extensions between stacked layers):
-- residual y = h(x) + x and highway y = T(x) h(x) + (1 - T(x)) x around layers 2..L, checked
-- against the same stack run layer by layer by hand, step against forward, gradients, the
-- parameters they add and the errors.
local recur = require("recur")
local rnn = require("recur.rnn")
local U = require("tests.rnn_util")

-- the layer's outputs computed from its cells one by one, with the connection by hand
local function by_hand(layer, x, conn)
  local out = x
  for l, cell in ipairs(layer.cells) do
    local y = cell:forward(out)
    if l > 1 and conn == "residual" then
      y = y + out
    elseif l > 1 and conn == "highway" then
      local g = layer["gate" .. l]
      local t = (recur.matmul(out, g.weight:t()) + g.bias):sigmoid()
      y = t * y + (1 - t) * out
    end
    out = y
  end
  return out
end

describe("rnn.RNN connection", function()
  for _, conn in ipairs { "residual", "highway" } do
    it(conn .. " equals the stack computed by hand, and step equals forward", function()
      recur.seed(3)
      local layer = rnn.RNN { cell = "gru", input = 3, hidden = 4, layers = 3, connection = conn }
      local x = recur.randn(5, 2, 3)
      local y = layer:forward(x)
      U.close(y, by_hand(layer, x, conn), 1e-5)
      -- a connection changes the outputs: the same cells without it differ
      local plain = by_hand(layer, x, nil)
      assert.is_true((y - plain):abs():max():item() > 1e-3)
      local st, ys = nil, {}
      for t = 1, 5 do
        ys[t], st = layer:step(x:select(1, t), st)
      end
      U.close(recur.stack(ys, 1), y, 1e-5)
    end)

    it(conn .. " passes gradcheck (input and every parameter)", function()
      recur.seed(5)
      local layer = rnn.RNN { cell = "lstm", input = 2, hidden = 3, layers = 2, connection = conn }
      local x = recur.randn(3, 2, 2):requires_grad(true)
      local inputs = { x }
      for _, p in ipairs(layer:parameters()) do inputs[#inputs + 1] = p end
      assert.is_true(recur.gradcheck(function(xx) return (layer:forward(xx)) end, inputs))
    end)
  end

  it("highway adds gate2 .. gateL with a bias of -1 (highway_bias), residual adds nothing", function()
    local plain = rnn.RNN { cell = "lstm", input = 4, hidden = 4, layers = 3 }
    local res = rnn.RNN { cell = "lstm", input = 4, hidden = 4, layers = 3, connection = "residual" }
    local hw = rnn.RNN { cell = "lstm", input = 4, hidden = 4, layers = 3, connection = "highway" }
    assert.equal(#plain:parameters(), #res:parameters())
    local names = {}
    for _, np in ipairs(hw:named_parameters()) do names[np[1]] = np[2] end
    assert.is_nil(names["gate1.weight"])
    for _, l in ipairs { 2, 3 } do
      assert.same({ 4, 4 }, names["gate" .. l .. ".weight"]:size())
      U.close(names["gate" .. l .. ".bias"], recur.full({ 4 }, -1), 0)
    end
    local hw2 = rnn.RNN { cell = "gru", input = 4, hidden = 4, layers = 2, connection = "highway",
      highway_bias = -2 }
    U.close(hw2.gate2.bias, recur.full({ 4 }, -2), 0)
    assert.matches("highway", tostring(hw))
  end)

  it("keeps zero outputs past each sequence's length", function()
    recur.seed(8)
    local layer = rnn.RNN { cell = "gru", input = 4, hidden = 4, layers = 2, connection = "highway" }
    local y = layer:forward(recur.randn(4, 2, 4), { lengths = { 4, 2 } })
    assert.equal(0, y:narrow(1, 3, 2):select(2, 2):abs():max():item())
  end)

  it("names a wrong connection", function()
    assert.has_error(function()
      rnn.RNN { cell = "lstm", input = 2, hidden = 2, layers = 2, connection = "skip" }
    end, 'rnn.RNN: connection must be nil, "residual" or "highway", got skip')
    assert.has_error(function()
      rnn.RNN { cell = "lstm", input = 2, hidden = 2, layers = 2, connection = "highway",
        highway_bias = "x" }
    end, "rnn.RNN: highway_bias must be a number, got string")
  end)
end)
