-- models/r2rt_varlen.lua, the models of R2RT's RNN III: the classifier's last relevant output
-- equals running each sentence alone; the seq2seq loss and accuracy are the post's formulas
-- (masked mean of the cross-entropy, correct * mask over sum(seqlen)); TensorFlow's
-- initialisation; the trained initial state learns; dropout only in training.
local recur = require("recur")
local nn = recur.nn
local VarLen = require("models.r2rt_varlen")
local H = require("tests.helpers")

local function lens_tensor(l) return recur.tensor(l) end

describe("models.r2rt_varlen", function()
  it("classifier: each sentence's logits are those of the sentence run alone (padding ignored)", function()
    recur.seed(3)
    local m = VarLen.new { vocab = 20, classes = 4, embed = 5, hidden = 6 }
    m:eval()
    local lens = { 6, 2, 4 }
    local x = recur.randint(1, 20, 6, 3)
    local y = recur.tensor { 1, 2, 3 }
    local logits = recur.no_grad(function() return m:forward(x, lens_tensor(lens)) end)
    assert.are.same({ 3, 4 }, logits:size())
    for b = 1, 3 do
      local xb = x:narrow(2, b, 1):narrow(1, 1, lens[b]):contiguous()
      local alone = recur.no_grad(function() return m:forward(xb, { lens[b] }) end)
      local d = (alone:view(4) - logits:select(1, b)):abs():max():item()
      assert.is_true(d < 1e-5, "sentence " .. b .. " differs by " .. d)
    end
    -- padding ids do not matter
    local x2 = x:clone()
    x2:narrow(1, 3, 4):narrow(2, 2, 1):fill_(7)
    local l2 = recur.no_grad(function() return m:forward(x2, lens_tensor(lens)) end)
    assert.are.equal(0, (l2 - logits):abs():max():item())
    local loss, st = recur.no_grad(function() return m:loss(x, lens_tensor(lens), y) end)
    assert.are.equal(3, st.count)
    local manual = 0
    local pred = logits:argmax(2):totable()
    for b = 1, 3 do
      if pred[b] == y:get(b) then manual = manual + 1 end
    end
    assert.are.equal(manual, st.correct)
    assert.is_true(math.abs(loss:item() - nn.cross_entropy(logits, y):item()) < 1e-6)
  end)

  it("seq2seq: loss = sum(mask * CE) / sum(mask), accuracy terms = correct * mask and sum(seqlen)", function()
    recur.seed(4)
    local m = VarLen.new { vocab = 15, classes = 3, embed = 4, hidden = 5, mode = "seq2seq" }
    assert.are.equal("zero", m.init_state_name)
    m:eval()
    local T, B = 5, 4
    local lens = { 5, 1, 3, 2 }
    local x = recur.randint(1, 15, T, B)
    local y = recur.tensor { 3, 1, 2, 2 }
    local logits = recur.no_grad(function() return m:forward(x, lens_tensor(lens)) end)
    assert.are.same({ T * B, 3 }, logits:size())
    local ce = nn.cross_entropy(logits, y:view(1, B):expand(T, B):reshape(T * B), { reduction = "none" }):totable()
    local pred = logits:argmax(2):totable()
    local num, den, correct, last = 0, 0, 0, 0
    for t = 1, T do
      for b = 1, B do
        local k = (t - 1) * B + b
        if t <= lens[b] then
          num, den = num + ce[k], den + 1
          if pred[k] == y:get(b) then correct = correct + 1 end
          if t == lens[b] and pred[k] == y:get(b) then last = last + 1 end
        end
      end
    end
    local loss, st = recur.no_grad(function() return m:loss(x, lens_tensor(lens), y) end)
    assert.is_true(math.abs(loss:item() - num / den) < 1e-5, loss:item() .. " vs " .. num / den)
    assert.are.equal(11, st.count) -- sum(seqlen)
    assert.are.equal(correct, st.correct)
    assert.are.equal(last, st.last_correct)
  end)

  it("initialises as TensorFlow: Glorot-uniform bounds per GRUCell matrix, gate biases 1, zeros elsewhere", function()
    recur.seed(5)
    local I, Hd, V, C = 64, 64, 300, 6
    local m = VarLen.new { vocab = V, classes = C, embed = I, hidden = Hd }
    local p = {}
    for _, np in ipairs(m:named_parameters()) do p[np[1]] = np[2] end
    local function bound_ok(t, a)
      local mx = t:abs():max():item()
      assert.is_true(mx <= a and mx > 0.95 * a, string.format("max |w| %g, bound %g", mx, a))
    end
    local gates, cand = math.sqrt(6 / (I + Hd + 2 * Hd)), math.sqrt(6 / (I + Hd + Hd))
    for _, name in ipairs { "rnn.layer1.W_x", "rnn.layer1.W_h" } do
      bound_ok(p[name]:narrow(2, 1, 2 * Hd), gates)
      bound_ok(p[name]:narrow(2, 2 * Hd + 1, Hd), cand)
    end
    bound_ok(p["embed.weight"], math.sqrt(6 / (V + I)))
    bound_ok(p["out.weight"], math.sqrt(6 / (Hd + C)))
    assert.are.equal(2 * Hd, p["rnn.layer1.b"]:narrow(1, 1, 2 * Hd):sum():item())
    assert.are.equal(0, p["rnn.layer1.b"]:narrow(1, 2 * Hd + 1, Hd):abs():sum():item())
    assert.are.equal(0, p["out.bias"]:abs():sum():item())
    assert.are.equal(0, p["init_state.layer1.h"]:abs():sum():item())
  end)

  it("trains its initial state; dropout acts only in training", function()
    recur.seed(6)
    local m = VarLen.new { vocab = 10, classes = 2, embed = 3, hidden = 4, keep = 0.5 }
    local x, lens, y = recur.randint(1, 10, 4, 8), recur.tensor { 4, 3, 2, 1, 4, 3, 2, 1 }, recur.randint(1, 2, 8)
    m:train()
    local loss = m:loss(x, lens, y)
    loss:backward()
    local g = m.init_state:parameters()[1].grad
    assert.is_true(g ~= nil and g:abs():sum():item() > 0)
    local a = recur.no_grad(function() return m:forward(x, lens) end)
    local b = recur.no_grad(function() return m:forward(x, lens) end)
    assert.is_true((a - b):abs():max():item() > 0)
    m:eval()
    a = recur.no_grad(function() return m:forward(x, lens) end)
    b = recur.no_grad(function() return m:forward(x, lens) end)
    assert.are.equal(0, (a - b):abs():max():item())
  end)

  it("rejects bad options by name", function()
    H.fails_with(function() VarLen.new { classes = 2 } end, "VarLenGRU", "vocab")
    H.fails_with(function() VarLen.new { vocab = 5, classes = 2, mode = "tree" } end, "mode", "tree")
    H.fails_with(function() VarLen.new { vocab = 5, classes = 2, keep = 0 } end, "keep")
  end)
end)
