-- models/charseq.lua: the short-sequence character task of scripts/posts/initial_states.lua
-- (the cut, the batches, the posts' TensorFlow initial values, the per-position loss).
local recur = require("recur")
local CS = require("models.charseq")
local H = require("tests.helpers")

local function ids_of(list) return recur.tensor(list) end

describe("charseq.cut and batch", function()
  it("cuts n ids into (n - 1) // T sequences whose targets are the next ids", function()
    local ids = ids_of { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 } -- 11 ids, T = 3: 3 sequences
    local set = CS.cut(ids, 3)
    assert.are.equal(3, set.n)
    assert.are.same({ { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }, set.x:totable())
    assert.are.same({ { 2, 3, 4 }, { 5, 6, 7 }, { 8, 9, 10 } }, set.y:totable())
    local x, y = CS.batch(set, { 3, 1 })
    assert.are.same({ { 7, 1 }, { 8, 2 }, { 9, 3 } }, x:totable()) -- time first: [T, B]
    assert.are.same({ { 8, 2 }, { 9, 3 }, { 10, 4 } }, y:totable())
  end)

  it("names the function and the sizes in its errors", function()
    H.fails_with(function() CS.cut(ids_of { 1, 2, 3 }, 3) end, "charseq.cut", "3 ids", "3 steps")
    H.fails_with(function() CS.cut(ids_of { 1, 2, 3 }, 0) end, "charseq.cut", "T must be")
    H.fails_with(function() CS.cut({ 1, 2 }, 1) end, "charseq.cut", "1-D tensor")
  end)
end)

describe("charseq.model", function()
  local function weights(strategy)
    recur.seed(7)
    local m = CS.model { vocab = 11, embed = 5, hidden = 6, layers = 2, cell = "gru",
      init_state = strategy }
    local w = {}
    for _, np in ipairs(m:named_parameters()) do w[np[1]] = np[2]:clone() end
    return m, w
  end

  it("draws the same weights for every strategy of a seed, as TensorFlow's code does", function()
    local _, zero = weights("zero")
    local m, trained = weights("trained_noisy")
    for name, t in pairs(zero) do
      assert.are.equal(0, (t - trained[name]):abs():max():item(), name)
    end
    -- GRUCell: Glorot-uniform [I + H, 2H] gates and [I + H, H] candidate, gate biases 1.0
    local cell = m.rnn.cells[1]
    local p = {}
    for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
    local g, c = math.sqrt(6 / (5 + 6 + 12)), math.sqrt(6 / (5 + 6 + 6))
    assert.is_true(p.W_x:narrow(2, 1, 12):abs():max():item() <= g)
    assert.is_true(p.W_x:narrow(2, 13, 6):abs():max():item() <= c)
    assert.is_true(p.W_x:narrow(2, 13, 6):abs():max():item() > g) -- the wider candidate range
    assert.are.same({ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0 }, p.b:totable())
    assert.are.equal(0, m.out.bias:abs():sum():item())
    -- the trained vectors: Glorot-uniform over [H], not zero
    local v = trained["init_state.layer1.h"]
    assert.is_true(v:abs():max():item() <= math.sqrt(6 / 12))
    assert.is_true(v:abs():sum():item() > 0)
  end)

  it("gives per-position losses whose mean is the model's mean loss, without noise", function()
    recur.seed(3)
    local ids = (recur.rand(200) * 11):floor() + 1
    local set = CS.cut(ids, 9)
    local m = CS.model { vocab = 11, embed = 4, hidden = 5, layers = 1, cell = "gru",
      init_state = "trained_noisy", init_std = 0.3 }
    m:train()
    local per, mean, n = CS.position_loss(m, set, { batch = 5 }) -- batches of 5, 5, 5, 5, 2
    assert.are.equal(22, n)
    assert.are.equal(9, #per)
    assert.is_true(m.training) -- restored
    local sum = 0
    for t = 1, 9 do sum = sum + per[t] end
    assert.is_true(math.abs(sum / 9 - mean) < 1e-6)
    m:eval()
    local x, y = set.x:t():contiguous(), set.y:t():contiguous()
    local whole = m:loss(x, y):item()
    assert.is_true(math.abs(whole - mean) < 1e-5, whole .. " vs " .. mean)
    -- evaluation twice gives the same numbers (no noise outside training)
    local again = CS.position_loss(m, set, { batch = 22 })
    for t = 1, 9 do assert.is_true(math.abs(again[t] - per[t]) < 1e-5) end
    -- limit: the first sequences only
    local _, _, n3 = CS.position_loss(m, set, { limit = 3 })
    assert.are.equal(3, n3)
  end)
end)
