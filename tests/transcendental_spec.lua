-- The runtime's one exp, tanh and sigmoid (runtime/kernels_math.h, swept for accuracy in
-- tests/c/test_kernels_math.c): x:tanh(), nn.Tanh and a fused cell's gates give the same bits,
-- contiguous or strided, and the fused LSTM equals its Lua twin (tests/oracles/cells) exactly
-- when the products are exact and only the gate functions can differ.
local recur = require("recur")
local nn = require("recur.nn")
local rnn = require("recur.rnn")
local U = require("tests.rnn_util")

local function same_bits(a, b, what)
  assert.are.same(a:size(), b:size(), what)
  local ta, tb = a:contiguous():view(-1):totable(), b:contiguous():view(-1):totable()
  for k = 1, #ta do
    local x, y = ta[k], tb[k]
    local ok = (x ~= x and y ~= y) or (x == y and (x ~= 0 or 1 / x == 1 / y))
    assert(ok, string.format("%s: element %d: %.9g ~= %.9g", what, k, x, y))
  end
end

-- random values over many scales, the edges and the specials
local function inputs()
  recur.seed(3)
  local x = recur.randn(64, 50) * (recur.uniform({ 64, 50 }, -3, 2) * math.log(10)):exp()
  local flat = x:view(-1)
  local edge = { 0, -0.0, 0.625, -0.625, 9.0, -9.0, 88.7, -87.6, -103, 89, 1 / 0, -1 / 0, 0 / 0 }
  for k, v in ipairs(edge) do flat[k] = v end
  return x
end

describe("exp, tanh, sigmoid: one implementation", function()
  it("x:tanh() == nn.Tanh == tanh_ and x:sigmoid() == nn.Sigmoid, strided too", function()
    local x = inputs()
    same_bits(x:tanh(), nn.Tanh():forward(x), "tanh vs nn.Tanh")
    same_bits(x:sigmoid(), nn.Sigmoid():forward(x), "sigmoid vs nn.Sigmoid")
    local xt = x:t() -- strided: the scalar path of the elementwise ops
    same_bits(xt:tanh(), x:tanh():t(), "strided tanh")
    same_bits(xt:sigmoid(), x:sigmoid():t(), "strided sigmoid")
    same_bits(xt:exp(), x:exp():t(), "strided exp")
    same_bits(x:clone():tanh_(), x:tanh(), "tanh_")
  end)

  it("the fused LSTM equals its tensor-op twin bit for bit when the products are exact", function()
    -- W_x = identity, W_h = 0, b = 0: the pre-activations are the input itself, exactly, so
    -- only sigmoid and tanh (and the same c' = f c + i g, h' = o tanh(c')) remain
    local H, T, B = 7, 5, 3
    local cell = rnn.Cell { cell = "lstm", input = 4 * H, hidden = H }
    local p = U.params(cell)
    recur.no_grad(function()
      p.W_x:copy_(recur.eye(4 * H))
      p.W_h:zero_()
      p.b:zero_()
    end)
    local twin = rnn.LuaCell(require("tests.oracles.cells.lstm"),
      { input = 4 * H, hidden = H, params = p })
    recur.seed(5)
    local x = recur.randn(T, B, 4 * H) * 4
    local ya, sa = cell:forward(x)
    local yb, sb = twin:forward(x)
    same_bits(ya, yb, "lstm output")
    same_bits(sa[2], sb[2], "lstm cell state")
  end)
end)
