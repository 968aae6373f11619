-- recur.nn: modules (order, names, the flat parameter buffer under composition, train/eval,
-- state dicts, summary), layers (values worked by hand), initializers (statistics), losses
-- (values by hand), a gradient check of every module and loss, errors and bad input.
local recur = require "recur"
local nn = recur.nn
local F = nn.functional
local T = recur.tensor

local H = require "tests.helpers"
local flat, near, err_of, has = H.flat, H.near_flat, H.err_of, H.has

local function names_of(m)
  local out = {}
  for i, np in ipairs(m:named_parameters()) do out[i] = np[1] end
  return out
end

-- recur.nn is one table gathered from lib/recur/nn/ (module, initializers, layers, losses):
-- every name it exported as one file is still there, whatever file now defines it.
describe("recur.nn's names", function()
  local function missing(t, names)
    local out = {}
    for name in names:gmatch("%S+") do
      if t[name] == nil then out[#out + 1] = name end
    end
    return out
  end
  it("exports the modules, layers, losses, helpers, initializers and functional forms", function()
    assert.same({}, missing(nn, [[Module is_module to_parameter is_parameter clip_grad_norm
      clip_grad_value grad_norm Linear Embedding Dropout LayerNorm Sequential Tanh Sigmoid ReLU
      Identity Softmax LogSoftmax RNN RNNCell cross_entropy nll mse l1
      binary_cross_entropy_with_logits init functional F _as_init _params_of]]))
    assert.same({}, missing(nn.init, [[fans glorot_uniform xavier_uniform glorot_normal
      truncated_normal normal uniform constant zeros ones orthogonal]]))
    assert.same({}, missing(F, [[tanh sigmoid relu identity softmax log_softmax linear dropout
      layer_norm embedding cross_entropy nll mse l1 binary_cross_entropy_with_logits]]))
    assert.equal(F, nn.F)
    assert.equal(recur.rnn.RNN, nn.RNN)
    assert.equal(recur.rnn.CellModule, nn.RNNCell)
    for _, k in ipairs { "cross_entropy", "nll", "mse", "l1", "binary_cross_entropy_with_logits" } do
      assert.equal(nn[k], F[k])
    end
  end)
end)

describe("Module", function()
  it("orders and names parameters: own first, then children depth first", function()
    local Net = nn.Module:extend("Net")
    function Net:init()
      self:parameter("scale", { 1 }, 2)
      self.body = nn.Sequential { nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, { bias = false }) }
      self.head = nn.Linear(2, 1)
    end
    function Net:forward(x) return self.head(self.body(x)) * self.scale end
    local m = Net()
    assert.same({ "scale", "body.1.weight", "body.1.bias", "body.3.weight", "head.weight", "head.bias" }, names_of(m))
    assert.equal(1 + 12 + 4 + 8 + 2 + 1, m:num_parameters())
    assert.equal(2, m.scale:item())
    assert.same({ 5, 1 }, m(recur.ones(5, 3)):size())
    assert.equal(#m:parameters(), 6)
    assert.equal(2, #m) -- children: body and head
    assert.truthy(tostring(m):find("body: Sequential\n    1: Linear%(3 %-> 4%)"))
  end)

  it("train() and eval() reach every module", function()
    local m = nn.Sequential { nn.Dropout(0.5), nn.Sequential { nn.Dropout(0.1) } }
    m:eval()
    for _, pm in ipairs(m:named_modules()) do assert.is_false(pm[2].training) end
    m:train()
    for _, pm in ipairs(m:named_modules()) do assert.is_true(pm[2].training) end
  end)

  it("keeps every parameter in one flat buffer, gradients in another", function()
    recur.seed(3)
    local m = nn.Sequential { nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2) }
    local p, g = m:flat_parameters()
    assert.equal(m:num_parameters(), p:numel())
    assert.equal(26, g:numel())
    -- the parameters are views of p: writing p changes them
    recur.no_grad(function() p:fill_(0.5) end)
    assert.equal(0.5, m[3].bias:get(2))
    -- backward accumulates straight into g
    local x = recur.randn(5, 3)
    nn.cross_entropy(m(x), T { 1, 2, 2, 1, 1 }):backward()
    local norm = math.sqrt(flat(g:pow(2):sum():totable())[1])
    assert.is_true(norm > 0)
    assert.is_true(math.abs(nn.grad_norm(m) - norm) < 1e-6 * norm)
    near(g:narrow(1, 1, 12):totable(), m[1].weight.grad:reshape(12))
    near(g:narrow(1, 25, 2):totable(), m[3].bias.grad)
    -- zero_grad keeps the views (the next backward lands in g again)
    m:zero_grad()
    assert.equal(0, g:abs():sum():item())
    nn.cross_entropy(m(x), T { 1, 2, 2, 1, 1 }):backward()
    assert.is_true(g:abs():sum():item() > 0)
  end)

  it("keeps the flat buffer under composition, with tensors keeping their identity", function()
    local a, b = nn.Linear(2, 3), nn.Linear(3, 1)
    local pa = a:flat_parameters()
    local wa = a.weight
    local w11 = a.weight:get(1, 1)
    local opt = recur.optim.SGD(a, { lr = 1 }) -- built before composition
    local m = nn.Sequential { a, b }
    local p, g = m:flat_parameters()
    assert.equal(9 + 4, p:numel())
    assert.is_true(rawequal(wa, a.weight)) -- same tensor object
    -- the child's flat buffer is now a slice of the parent's
    local pa2 = a:flat_parameters()
    recur.no_grad(function() pa2:fill_(2) end)
    assert.equal(2, p:get(1))
    assert.equal(2, p:get(9))
    assert.is_true(p:get(10) ~= 2 or p:get(13) ~= 2)
    -- the optimizer built before still updates the (moved) parameter
    nn.mse(m(recur.ones(1, 2)), recur.zeros(1, 1)):backward()
    local before = a.weight:get(1, 1)
    opt:step()
    assert.is_true(a.weight:get(1, 1) ~= before)
    assert.equal(a.weight:get(1, 1), p:get(1))
    -- a flat buffer taken before the composition is the old memory: it no longer follows
    assert.equal(w11, pa:get(1))
    assert.is_true(w11 ~= a.weight:get(1, 1))
    -- a gradient dropped by hand goes back to its slot
    a.weight:zero_grad()
    m:zero_grad()
    nn.mse(m(recur.ones(1, 2)), recur.zeros(1, 1)):backward()
    near(g:narrow(1, 1, 6):totable(), a.weight.grad:reshape(6))
  end)

  it("keeps tied parameters once", function()
    local shared = nn.Linear(2, 2)
    local m = nn.Sequential { shared, nn.Tanh(), shared }
    assert.same({ "1.weight", "1.bias" }, names_of(m))
    assert.equal(6, m:num_parameters())
    local p, g = m:flat_parameters()
    assert.equal(6, p:numel())
    nn.mse(m(recur.ones(1, 2)), recur.zeros(1, 2)):backward()
    assert.is_true(g:abs():sum():item() > 0)
  end)

  it("state_dict and load_state_dict round trip and validate before copying", function()
    recur.seed(1)
    local a = nn.Sequential { nn.Linear(2, 3), nn.LayerNorm(3) }
    local b = nn.Sequential { nn.Linear(2, 3), nn.LayerNorm(3) }
    local sd = a:state_dict()
    assert.same({ 3, 2 }, sd["1.weight"]:size())
    b:load_state_dict(sd)
    near(a[1].weight:totable(), b[1].weight)
    local keep = b[1].bias:clone()
    local bad = { ["1.weight"] = recur.ones(3, 2), ["1.bias"] = recur.ones(3), ["2.weight"] = recur.ones(4), ["2.bias"] = recur.ones(3) }
    local e = err_of(function() b:load_state_dict(bad) end)
    has(e, "load_state_dict: '2.weight' has shape [4] in the state but [3] in the model")
    near(keep:totable(), b[1].bias) -- nothing changed
    e = err_of(function() b:load_state_dict { ["1.weight"] = recur.ones(3, 2) } end)
    has(e, "load_state_dict: missing '1.bias'")
    sd = b:state_dict()
    sd.extra = recur.ones(1)
    e = err_of(function() b:load_state_dict(sd) end)
    has(e, "load_state_dict: unexpected 'extra'")
    b:load_state_dict({ ["1.bias"] = recur.full({ 3 }, 7) }, { strict = false })
    assert.equal(7, b[1].bias:get(3))
  end)

  it("summary prints shapes, parameter counts and multiply-adds per example", function()
    local m = nn.Sequential { nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10) }
    local s = m:summary({ 784 }, { print = false })
    has(s, "1 Linear(784 -> 256)")
    has(s, "[1, 256]")
    has(s, "200,960") -- 784*256 + 256
    has(s, "200,704") -- 784*256 multiply-adds
    has(s, "total parameters: 269,322 in 6 tensors") -- 200960 + 65792 + 2570
    has(s, "multiply-adds per example: 268,800") -- 200704 + 65536 + 2560
    -- a batch of 4: still per example
    s = m:summary(recur.zeros(4, 784), { print = false })
    has(s, "multiply-adds per example: 268,800")
    has(s, "[4, 10]")
    -- without an input: counts only
    s = m:summary(nil, { print = false })
    has(s, "total parameters: 269,322")
  end)

  it("summary counts a tensor shared by two modules once in the total", function()
    -- c registers a's weight as its own "w2": the rows show each module's own tensors, the
    -- total the model's distinct ones (a.weight 4 + a.bias 2 + c.weight 4 + c.bias 2 = 12)
    local Tied = nn.Module:extend("Tied")
    function Tied:init()
      self.a = nn.Linear(2, 2)
      self.c = nn.Linear(2, 2)
      self.c:register_parameter("w2", self.a.weight)
    end
    function Tied:forward(x) return self.c(self.a(x)) end
    local m = Tied()
    assert.equal(12, m:num_parameters())
    local s = m:summary({ 2 }, { print = false })
    has(s, "total parameters: 12 in 4 tensors (48 bytes of float32")
    s = m:summary(nil, { print = false })
    has(s, "total parameters: 12 in 4 tensors")
  end)

  it("summary keeps its columns aligned: nested results compact, long names widen, long shapes cut", function()
    local Pair = nn.Module:extend("Pair") -- an RNN-like nested state: {{h, c}, {h, c}}
    function Pair:forward(h) return { { h, h }, { h, h } } end
    local Wide = nn.Module:extend("Wide") -- eight results of three shapes, then one more
    function Wide:forward(x)
      local out = {}
      for i = 1, 8 do out[i] = x:narrow(2, 1, i % 3 + 1) end
      return out, x
    end
    local Net = nn.Module:extend("Net")
    function Net:init()
      self.fc = nn.Linear(3, 2)
      self.pair = Pair()
      self.wide = Wide()
      self.a_rather_long_name_for_the_layer_column = nn.Tanh()
    end
    function Net:forward(x)
      local h = self.fc(x)
      self.pair(h)
      self.wide(x)
      return self.a_rather_long_name_for_the_layer_column(h)
    end
    -- the layer column fits the longest name (46), the shape column the longest shape (34:
    -- Wide's list cut after its third entry to stay within 40 with " (+1)"), numbers
    -- right-aligned in 12 and 14; Linear(3 -> 2): 3 * 2 + 2 parameters, 3 * 2 mult-adds
    local rule = string.rep("-", 46 + 2 + 34 + 1 + 12 + 1 + 14)
    assert.equal(table.concat({
      "layer                                           output shape                             params      mult-adds",
      rule,
      "(model) Net                                     [1, 2]                                        0",
      "  fc Linear(3 -> 2)                             [1, 2]                                        8              6",
      "  pair Pair                                     4 x [1, 2]                                    0              0",
      "  wide Wide                                     {[1, 2], [1, 3], [1, 1], ...} (+1)            0              0",
      "  a_rather_long_name_for_the_layer_column Tanh  [1, 2]                                        0              0",
      rule,
      "total parameters: 8 in 2 tensors (32 bytes of float32, one flat buffer)",
      "multiply-adds per example: 6 (matrix products; elementwise work not counted)",
    }, "\n"), Net():summary({ 3 }, { print = false }))
    -- a list of one shape but several results, nested: still one cell, aligned
    local State = nn.Module:extend("State")
    function State:forward(x) return { { x, x }, { x, x }, { x, x } } end
    local lines = {}
    for l in State():summary(recur.zeros(32, 128), { print = false }):gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("(model) State                 6 x [32, 128]                 0              0", lines[3])
    assert.equal(#lines[1], #lines[3])
  end)

  it("custom modules need forward; options are checked", function()
    local M = nn.Module:extend("M")
    has(err_of(function() M()(1) end), "M:forward is not implemented")
    has(err_of(function() nn.Linear(2, 3, { bais = false }) end), "Linear: unknown option 'bais'")
    has(err_of(function() nn.Linear(2, -3) end), "Linear: out must be an integer >= 0, got -3")
    has(err_of(function() nn.Dropout(1.5) end), "Dropout: p must be in [0, 1], got 1.5")
    has(err_of(function() nn.Sequential { nn.Tanh(), 3 } end), "Sequential: entry 2 is not a module")
    local m = M()
    has(err_of(function() m:parameter("a.b", { 2 }) end), "parameter: the name must be a non-empty string without dots")
    m:parameter("w", { 2 })
    has(err_of(function() m:parameter("w", { 2 }) end), "parameter: 'w' is already taken")
    has(err_of(function() m:parameter("v", { 2 }, "glorot") end), "an initializer must be a function")
  end)
end)

describe("layers", function()
  it("Linear computes x W^T + b, for any leading dimensions", function()
    local l = nn.Linear(2, 3)
    l:load_state_dict { weight = T { { 1, 2 }, { 3, 4 }, { 5, 6 } }, bias = T { 0.5, -0.5, 0 } }
    near({ { 1 * 1 + 2 * 2 + 0.5, 3 + 8 - 0.5, 5 + 12 } }, l(T { { 1, 2 } }))
    local y = l(recur.ones(4, 5, 2))
    assert.same({ 4, 5, 3 }, y:size())
    near({ 3.5, 6.5, 11 }, y:select(1, 2):select(1, 3))
    local nb = nn.Linear(2, 3, { bias = false })
    assert.is_nil(rawget(nb, "bias"))
    assert.same({ "weight" }, names_of(nb))
    has(err_of(function() l(recur.ones(2, 3)) end), "linear: input shape [2, 3] does not match weight shape [3, 2] (3 vs 2 input features)")
  end)

  it("Embedding looks rows up by 1-based index, any index shape", function()
    local e = nn.Embedding(4, 2)
    e:load_state_dict { weight = T { { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 } } }
    near({ { { 7, 8 }, { 1, 2 } }, { { 3, 4 }, { 3, 4 } } }, e(T { { 4, 1 }, { 2, 2 } }))
    assert.same({ 3, 2 }, e(T { 1, 2, 3 }):size())
    has(err_of(function() e(T { 5 }) end), "index_select")
  end)

  it("Dropout is inverted and only active in training", function()
    recur.seed(11)
    local d = nn.Dropout(0.25)
    local y = d(recur.ones(100, 100))
    local kept, sum = 0, 0
    for _, v in ipairs(flat(y:totable())) do
      assert.is_true(v == 0 or math.abs(v - 1 / 0.75) < 1e-6)
      if v ~= 0 then kept = kept + 1 end
      sum = sum + v
    end
    assert.is_true(math.abs(kept / 10000 - 0.75) < 0.02, "kept fraction " .. kept / 10000)
    assert.is_true(math.abs(sum / 10000 - 1) < 0.03) -- expectation preserved
    d:eval()
    local x = recur.randn(3, 3)
    assert.is_true(rawequal(d(x), x))
    near(flat(recur.zeros(2, 2):totable()), F.dropout(recur.ones(2, 2), 1))
    assert.is_true(rawequal(F.dropout(x, 0), x))
    -- the mask comes from the runtime's generator: same seed, same mask
    recur.seed(5)
    local a = F.dropout(recur.ones(8), 0.5):totable()
    recur.seed(5)
    assert.same(a, F.dropout(recur.ones(8), 0.5):totable())
    -- element i is kept when the i-th uniform draw of recur.rand is >= p (one stream)
    recur.seed(6)
    local mask = F.dropout(recur.ones(500), 0.4):totable()
    recur.seed(6)
    local u = recur.rand(500):totable()
    for i = 1, 500 do assert.equal(u[i] >= 0.4, mask[i] ~= 0) end
    assert.same(recur.rand(3):totable(), (function() recur.seed(6) F.dropout(recur.ones(500), 0.4) return recur.rand(3):totable() end)())
  end)

  it("LayerNorm normalizes the last dimension with eps 1e-5, scale and shift", function()
    local ln = nn.LayerNorm(4)
    assert.same({ "weight", "bias" }, names_of(ln))
    local y = ln(T { { 1, 2, 3, 4 }, { -2, 0, 0, 2 } })
    -- row 1: mean 2.5, var 1.25
    local s = 1 / math.sqrt(1.25 + 1e-5)
    near({ -1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s }, y:select(1, 1))
    local s2 = 1 / math.sqrt(2 + 1e-5)
    near({ -2 * s2, 0, 0, 2 * s2 }, y:select(1, 2))
    ln:load_state_dict { weight = T { 1, 2, 3, 4 }, bias = T { 1, 1, 1, 1 } }
    near({ 1 - 1.5 * s, 1 - 2 * 0.5 * s, 1 + 3 * 0.5 * s, 1 + 4 * 1.5 * s }, ln(T { { 1, 2, 3, 4 } }))
    -- constant rows: var 0, eps keeps it finite
    near({ 0, 0 }, F.layer_norm(T { { 3, 3 } }))
    local ln2 = nn.LayerNorm(2, { weight_init = 2, bias_init = nn.init.constant(-1), eps = 0.5 })
    near({ -1 - 2 / math.sqrt(1.5), -1 + 2 / math.sqrt(1.5) }, ln2(T { { 0, 2 } }))
    assert.same({}, names_of(nn.LayerNorm(3, { affine = false })))
    has(err_of(function() ln(recur.ones(2, 3)) end), "layer_norm: weight shape [4] does not match input shape [2, 3]")
  end)

  it("activations, softmax, identity, Sequential", function()
    local x = T { -2, -0.5, 0, 0.3, 4 }
    local th, sg, re = {}, {}, {}
    for i, v in ipairs(x:totable()) do
      th[i] = math.tanh and math.tanh(v) or (math.exp(2 * v) - 1) / (math.exp(2 * v) + 1)
      sg[i] = 1 / (1 + math.exp(-v))
      re[i] = math.max(v, 0)
    end
    near(th, nn.Tanh()(x), 1e-6)
    near(sg, nn.Sigmoid()(x), 1e-6)
    near(re, nn.ReLU()(x))
    assert.is_true(rawequal(nn.Identity()(x), x))
    local sm = nn.Softmax()(T { { 1, 2, 3 } })
    local z = math.exp(1) + math.exp(2) + math.exp(3)
    near({ { math.exp(1) / z, math.exp(2) / z, math.exp(3) / z } }, sm)
    near({ { 1 - math.log(z), 2 - math.log(z), 3 - math.log(z) } }, nn.LogSoftmax()(T { { 1, 2, 3 } }))
    near({ { 0.5, 0.5 }, { 0.5, 0.5 } }, nn.Softmax(1)(T { { 1, 2 }, { 1, 2 } }))
    local seq = nn.Sequential():add(nn.Tanh()):add(nn.ReLU())
    near({ 0, 0, 0, math.tanh and math.tanh(0.3) or th[4], th[5] }, seq(x), 1e-6)
  end)
end)

describe("initializers", function()
  local function stats(t)
    local v = flat(t:totable())
    local s, s2, mn, mx = 0, 0, math.huge, -math.huge
    for _, x in ipairs(v) do
      s, s2 = s + x, s2 + x * x
      mn, mx = math.min(mn, x), math.max(mx, x)
    end
    local mean = s / #v
    return mean, math.sqrt(s2 / #v - mean * mean), mn, mx
  end

  it("glorot_uniform is the default for weights, zeros for biases", function()
    recur.seed(2)
    local l = nn.Linear(300, 200)
    local a = math.sqrt(6 / 500)
    local mean, std, mn, mx = stats(l.weight)
    assert.is_true(mn >= -a and mx <= a)
    assert.is_true(mx > 0.95 * a and mn < -0.95 * a)
    assert.is_true(math.abs(std - a / math.sqrt(3)) < 0.01 * a)
    assert.is_true(math.abs(mean) < 0.01 * a)
    assert.equal(0, l.bias:abs():sum():item())
  end)

  it("truncated_normal, normal, uniform, constant per parameter", function()
    recur.seed(4)
    local l = nn.Linear(200, 100, { weight_init = nn.init.truncated_normal { std = 0.1 }, bias_init = nn.init.constant(0.1) })
    local mean, std, mn, mx = stats(l.weight)
    assert.is_true(mn >= -0.2 and mx <= 0.2)
    -- a normal truncated at 2 sigma has std 0.8796 sigma
    assert.is_true(math.abs(std - 0.08796) < 0.003, "std " .. std)
    assert.is_true(math.abs(mean) < 0.003)
    near(flat(recur.full({ 100 }, 0.1):totable()), l.bias)
    local m = nn.Module()
    local n = m:parameter("n", { 100, 100 }, nn.init.normal { mean = 1, std = 2 })
    mean, std = stats(n)
    assert.is_true(math.abs(mean - 1) < 0.06 and math.abs(std - 2) < 0.05)
    local u = m:parameter("u", { 50, 50 }, nn.init.uniform { -0.5, 0.25 })
    mean, std, mn, mx = stats(u)
    assert.is_true(mn >= -0.5 and mx < 0.25 and mn < -0.49 and mx > 0.24)
    local c = m:parameter("c", { 3 }, 4)
    near({ 4, 4, 4 }, c)
    local f = m:parameter("f", { 2 }, function(t, fi, fo) return recur.full(t:size(), fi + fo) end)
    near({ 4, 4 }, f) -- a 1-D parameter's fans are its size
    local z = m:parameter("z", { 2, 2 }, nn.init.zeros)
    near({ 0, 0, 0, 0 }, z)
    has(err_of(function() nn.init.uniform { 1, 0 } end), "uniform: needs lo <= hi")
  end)

  it("orthogonal gives orthonormal rows or columns, times the gain", function()
    recur.seed(8)
    local m = nn.Module()
    local tall = m:parameter("tall", { 6, 3 }, nn.init.orthogonal())
    near(recur.eye(3):totable(), recur.matmul(tall:t(), tall), 1e-5)
    local wide = m:parameter("wide", { 3, 7 }, nn.init.orthogonal { gain = 2 })
    near((recur.eye(3) * 4):totable(), recur.matmul(wide, wide:t()), 1e-5)
    local sq = m:parameter("sq", { 4, 2, 2 }, nn.init.orthogonal()) -- trailing dims flattened
    local q = sq:reshape(4, 4)
    near(recur.eye(4):totable(), recur.matmul(q, q:t()), 1e-5)
    has(err_of(function() m:parameter("v", { 3 }, nn.init.orthogonal()) end), "orthogonal: the tensor must have at least 2 dimensions")
  end)
end)

describe("losses", function()
  local logits = T { { 1, 2, 0.5 }, { -1, 0, 3 } }
  local function lse(r) local s = 0 for _, v in ipairs(r) do s = s + math.exp(v) end return math.log(s) end
  local l1 = lse { 1, 2, 0.5 } - 2
  local l2 = lse { -1, 0, 3 } - (-1)

  it("cross_entropy from logits: mean, sum, none, mask, soft targets, 1-based", function()
    local y = T { 2, 1 }
    near({ (l1 + l2) / 2 }, nn.cross_entropy(logits, y):reshape(1))
    near({ l1 + l2 }, nn.cross_entropy(logits, y, { reduction = "sum" }):reshape(1))
    near({ l1, l2 }, nn.cross_entropy(logits, y, { reduction = "none" }))
    near({ l1 }, nn.cross_entropy(logits, y, { mask = T { 1, 0 } }):reshape(1))
    near({ l1, 0 }, nn.cross_entropy(logits, y, { mask = T { 1, 0 }, reduction = "none" }))
    -- a masked position's target is not even checked (padding)
    near({ l1 }, nn.cross_entropy(logits, T { 2, 0 }, { mask = T { 1, 0 } }):reshape(1))
    -- one-hot probabilities give the same as indices; soft ones mix
    near({ (l1 + l2) / 2 }, nn.cross_entropy(logits, T { { 0, 1, 0 }, { 1, 0, 0 } }):reshape(1))
    local soft = 0.5 * (lse { 1, 2, 0.5 } - 1) + 0.5 * (lse { 1, 2, 0.5 } - 2)
    near({ soft }, nn.cross_entropy(logits:narrow(1, 1, 1), T { { 0.5, 0.5, 0 } }):reshape(1))
    -- [T, B, C] with a [T, B] mask: per-step losses for variable lengths
    local x3 = recur.stack({ logits, logits }, 1)
    near({ { l1, l2 }, { 0, 0 } }, nn.cross_entropy(x3, T { { 2, 1 }, { 2, 1 } }, { reduction = "none", mask = T { { 1, 1 }, { 0, 0 } } }))
    -- stable for huge logits
    near({ 0 }, nn.cross_entropy(T { { 1000, -1000 } }, T { 1 }):reshape(1))
    near({ 2000 }, nn.cross_entropy(T { { 1000, -1000 } }, T { 2 }):reshape(1))
  end)

  it("cross_entropy gives the same bits on 1 and 2 threads (rows shared with the helper)", function()
    local before = recur.threads()
    recur.seed(3)
    -- 600 x 70 and 150 x 300 (columns past one 256-wide block) are above the split's size
    for _, shape in ipairs { { 600, 70 }, { 150, 300 }, { 9, 7 } } do
      local x = (recur.randn(shape[1], shape[2]) * 4):requires_grad(true)
      local y = recur.randint(1, shape[2], { shape[1] })
      local got = {}
      for th = 1, 2 do
        recur.threads(th)
        x.grad = nil
        local per_row = nn.cross_entropy(x:detach(), y, { reduction = "none" })
        nn.cross_entropy(x, y):backward()
        got[th] = { per_row, x.grad:clone() }
      end
      recur.threads(before)
      assert.are.same(got[1][1]:totable(), got[2][1]:totable())
      assert.are.same(got[1][2]:totable(), got[2][2]:totable())
    end
    -- the gradient's other row kinds: soft targets, masked rows, log-probabilities (nll)
    local x = (recur.randn(600, 70) * 4):requires_grad(true)
    local soft = recur.softmax(recur.randn(600, 70), 2)
    local y = recur.randint(1, 70, { 600 })
    local mask = (recur.rand(600) - 0.3):sign():clamp(0, 1)
    local grads = {}
    for th = 1, 2 do
      recur.threads(th)
      local g = {}
      for _, f in ipairs {
        function() return nn.cross_entropy(x, soft) end,
        function() return nn.cross_entropy(x, y, { mask = mask }) end,
        function() return nn.nll(x, y) end,
      } do
        x.grad = nil
        f():backward()
        g[#g + 1] = x.grad:clone():totable()
      end
      grads[th] = g
    end
    recur.threads(before)
    assert.are.same(grads[1], grads[2])
  end)

  it("nll of log-probabilities", function()
    local lp = logits:log_softmax(2)
    near({ (l1 + l2) / 2 }, nn.nll(lp, T { 2, 1 }):reshape(1))
    near({ l1, l2 }, nn.nll(lp, T { 2, 1 }, { reduction = "none" }))
  end)

  it("mse, l1 and binary_cross_entropy_with_logits", function()
    local a, b = T { 1, 2, 3 }, T { 0, 4, 3 }
    near({ (1 + 4 + 0) / 3 }, nn.mse(a, b):reshape(1))
    near({ 1, 4, 0 }, nn.mse(a, b, { reduction = "none" }))
    near({ 3 }, nn.l1(a, b, { reduction = "sum" }):reshape(1))
    near({ 2 / 2 }, nn.l1(a, b, { mask = T { 0, 1, 1 } }):reshape(1))
    -- mask broadcast over a trailing dimension: mean over the counted elements
    near({ (1 + 4) / 2 }, nn.mse(T { { 1, 2 }, { 5, 5 } }, T { { 0, 0 }, { 0, 0 } }, { mask = T { { 1 }, { 0 } } }):reshape(1))
    local x, y = T { -2, 0, 3, 800, -800 }, T { 1, 0.5, 0, 1, 0 }
    local want = {}
    for i, v in ipairs { -2, 0, 3 } do
      local t = y:get(i)
      local p = 1 / (1 + math.exp(-v))
      want[i] = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    end
    want[4], want[5] = 0, 0 -- stable at huge logits
    near(want, nn.binary_cross_entropy_with_logits(x, y, { reduction = "none" }))
  end)

  it("errors name the loss, the argument and the shapes", function()
    has(err_of(function() nn.cross_entropy(logits, T { 4, 1 }) end),
      "cross_entropy: target 4 at position 1 is not a class index in [1, 3] (the input has 3 classes)")
    has(err_of(function() nn.cross_entropy(logits, T { 0, 1 }) end), "target 0 at position 1")
    has(err_of(function() nn.cross_entropy(logits, T { 1.5, 1 }) end), "target 1.5 at position 1")
    has(err_of(function() nn.cross_entropy(logits, T { 1, 2, 3 }) end),
      "cross_entropy: target shape [3] does not match input shape [2, 3] (expected [2] of class indices, or [2, 3] of probabilities)")
    has(err_of(function() nn.cross_entropy(logits, T { 1, 2 }, { mask = T { 1, 1, 1 } }) end),
      "cross_entropy: mask shape [3] does not match the target positions [2]")
    has(err_of(function() nn.cross_entropy(logits, T { 1, 2 }, { reduction = "avg" }) end),
      'cross_entropy: reduction must be "mean", "sum" or "none", got avg')
    has(err_of(function() nn.nll(logits, "x") end), "nll: target (argument #2) must be a tensor, got string")
    has(err_of(function() nn.mse(logits, T { 1 }, { reduction = "max" }) end), 'mse: reduction must be')
    has(err_of(function() nn.l1(logits, T { 1 }, { weights = 1 }) end), "l1: unknown option 'weights'")
  end)
end)

describe("gradients (finite differences)", function()
  local gc = recur.gradcheck
  local function leaf(t) return t:requires_grad(true) end

  it("Linear, with and without bias, 2-D and 3-D input", function()
    recur.seed(21)
    local x, w, b = leaf(recur.randn(3, 4)), leaf(recur.randn(2, 4)), leaf(recur.randn(2))
    assert.is_true(gc(F.linear, { x, w, b }))
    assert.is_true(gc(function(a, c) return F.linear(a, c) end, { x, w }))
    assert.is_true(gc(F.linear, { leaf(recur.randn(2, 3, 4)), w, b }))
    assert.is_true(gc(F.linear, { leaf(recur.randn(2, 4):t():t()), leaf(recur.randn(4, 2):t()), b }))
  end)

  it("tanh, sigmoid, relu, softmax, log_softmax", function()
    recur.seed(22)
    local x = leaf(recur.randn(3, 5))
    assert.is_true(gc(F.tanh, { x }))
    assert.is_true(gc(F.sigmoid, { x }))
    assert.is_true(gc(F.relu, { leaf(T { { 0.5, -0.7, 1.2 }, { -1.1, 0.3, 2 } }) }))
    assert.is_true(gc(F.softmax, { x }))
    assert.is_true(gc(F.log_softmax, { x }))
    assert.is_true(gc(function(a) return nn.Softmax(1)(a) end, { x }))
    assert.is_true(gc(function(a) return nn.Identity()(a) * 1 end, { x }))
    assert.is_true(gc(function(a) return nn.LogSoftmax(1)(nn.Tanh()(a)) end, { x }))
  end)

  it("Dropout (same mask each call), Embedding, LayerNorm", function()
    recur.seed(23)
    local x = leaf(recur.randn(4, 6))
    assert.is_true(gc(function(a) recur.seed(9) return F.dropout(a, 0.3) end, { x }))
    local w = leaf(recur.randn(5, 3))
    assert.is_true(gc(function(ww) return F.embedding(T { { 1, 5 }, { 2, 1 } }, ww) end, { w }))
    local g, b = leaf(recur.randn(6)), leaf(recur.randn(6))
    assert.is_true(gc(F.layer_norm, { x, g, b }, { atol = 2e-2 }))
    assert.is_true(gc(function(a) return F.layer_norm(a) end, { leaf(recur.randn(2, 3, 4)) }, { atol = 2e-2 }))
  end)

  it("every loss, every reduction, with and without a mask", function()
    recur.seed(24)
    local x = leaf(recur.randn(4, 3))
    local y = T { 3, 1, 2, 2 }
    local mask = T { 1, 0, 1, 1 }
    for _, red in ipairs { "mean", "sum", "none" } do
      for _, m in ipairs { false, true } do
        local o = { reduction = red, mask = m and mask or nil }
        assert.is_true(gc(function(a) return nn.cross_entropy(a, y, o) end, { x }))
        assert.is_true(gc(function(a) return nn.nll(a:log_softmax(2), y, o) end, { x }))
        assert.is_true(gc(function(a) return nn.nll(a, y, o) end, { x }))
        local t = recur.randn(4, 3)
        local m2 = m and T { { 1 }, { 0 }, { 1 }, { 1 } } or nil
        local o2 = { reduction = red, mask = m2 }
        assert.is_true(gc(function(a) return nn.mse(a, t, o2) end, { x }))
        assert.is_true(gc(function(a) return nn.l1(a, t, o2) end, { x }))
        local pt = recur.rand(4, 3)
        assert.is_true(gc(function(a) return nn.binary_cross_entropy_with_logits(a, pt, o2) end, { x }))
      end
    end
    -- soft targets
    local p = T { { 0.2, 0.3, 0.5 }, { 1, 0, 0 }, { 0, 0.5, 0.5 }, { 0.1, 0.1, 0.8 } }
    assert.is_true(gc(function(a) return nn.cross_entropy(a, p) end, { x }))
    assert.is_true(gc(function(a) return nn.nll(a, p, { reduction = "none" }) end, { x }))
    -- [T, B, C] logits
    assert.is_true(gc(function(a) return nn.cross_entropy(a, T { { 1, 2 }, { 3, 1 } }, { mask = T { { 1, 1 }, { 1, 0 } } }) end,
      { leaf(recur.randn(2, 2, 3)) }))
  end)

  it("a whole model: parameters through the flat buffer", function()
    recur.seed(25)
    local m = nn.Sequential { nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2), nn.Sigmoid() }
    local ps = m:parameters()
    local x = recur.randn(2, 3)
    assert.is_true(gc(function() return m(x) end, ps, { atol = 2e-2 }))
  end)
end)

describe("bad input", function()
  -- every internal entry point fed wrong values: a Lua error naming the function, never a crash
  local function values()
    local c = recur.ones(2)
    c:close()
    return { nil, true, "x", {}, { 1, "a" }, function() end, 0, -1, 1.5, 0 / 0, math.huge, 2 ^ 62,
      3, recur.ones(2, 3), recur.zeros(0), recur.tensor(1), recur.ones(4), recur.ones(3, 2):t(), c,
      { recur.ones(2) }, { c } }
  end
  it("recur._nn, nn.functional and the optimizer constructor", function()
    local fns = {}
    for k, f in pairs(recur._nn) do fns["_nn." .. k] = f end
    for k, f in pairs(F) do fns["F." .. k] = f end
    fns["optim.new"] = recur._optim.new
    fns["read"] = recur._safetensors.read
    local calls = 0
    for name, f in pairs(fns) do
      local vals = values()
      for i = 1, #vals + 1 do
        for j = 1, #vals + 1, 4 do
          calls = calls + 1
          local ok, e = pcall(f, vals[i], vals[j], vals[(i + j) % #vals + 1])
          if not ok then
            assert(type(e) == "string" and (e:find("^[^\n]*: ") or e:find("bad argument")),
              name .. " raised an unhelpful error: " .. tostring(e))
          end
        end
      end
    end
    assert.is_true(calls > 1000)
  end)

  it("optimizer methods", function()
    local p = recur.ones(3):requires_grad(true)
    local calls = 0
    for _, kind in ipairs { "SGD", "Adagrad", "RMSProp", "Adam", "AdamW" } do
      local opt = recur.optim[kind]({ p }, { lr = 0.1 })
      local methods = getmetatable(opt).__index
      for name, f in pairs(methods) do
        local vals = values()
        for i = 1, #vals + 1 do
          for j = 1, #vals + 1, 5 do
            calls = calls + 1
            local ok, e = pcall(f, opt, vals[i], vals[j])
            if not ok then
              assert(type(e) == "string" and (e:find("^[^\n]*: ") or e:find("bad argument")),
                kind .. ":" .. name .. " raised an unhelpful error: " .. tostring(e))
            end
          end
        end
        -- and called on something that is not an optimizer
        local ok, e = pcall(f, "x")
        assert.is_false(ok)
        assert.truthy(tostring(e):find("must be an optimizer", 1, true) or tostring(e):find("bad argument"), e)
      end
    end
    assert.is_true(calls > 1000)
  end)
end)
