-- models/r2rt_charlm.lua, the character setup of the R2RT post scripts: TF's initialisation,
-- training with the state reset at each epoch, and the per-epoch checkpoint that lets an
-- interrupted run resume with the uninterrupted run's numbers.
local recur = require("recur")
local lm = require("models.r2rt_charlm")
local H = require("tests.helpers")

local function corpus()
  return lm.load_text({ profile = "smoke" })
end

describe("r2rt_charlm", function()
  it("initialises as TF: Glorot limits per matrix, zero biases, gate biases 1", function()
    recur.seed(1)
    local c = corpus()
    local V = c.vocab:size()
    local m = lm.model { vocab = V, cell = "gru", hidden = 8, layers = 2 }
    assert.is_true(m.embed.weight:abs():max():item() <= math.sqrt(6 / (V + 8)))
    assert.equal(0, m.out.bias:abs():max():item())
    local p = {}
    for _, np in ipairs(m.rnn.cells[1]:parameters()) do p[np[1]] = np[2] end
    local gates = math.sqrt(6 / (8 + 8 + 16))
    local cand = math.sqrt(6 / (8 + 8 + 8))
    local wg = p.W_h:narrow(2, 1, 16):abs():max():item()
    assert.is_true(wg <= gates and wg > 0.8 * gates)
    local wc = p.W_x:narrow(2, 17, 8):abs():max():item()
    assert.is_true(wc <= cand and wc > gates)
    assert.equal(1, p.b:narrow(1, 1, 16):min():item())
    assert.equal(0, p.b:narrow(1, 17, 8):abs():max():item())
  end)

  it("smoke text: generated, with the prompt's 'A'", function()
    local c = corpus()
    assert.equal(6000, c.ids:numel())
    assert.truthy(c.vocab:id("A"))
    assert.has_error(function() lm.load_text({ profile = "quick", text = "/nonexistent/x.txt" }) end)
  end)

  it("an interrupted run resumes from its checkpoint with the same numbers", function()
    local c = corpus()
    local V = c.vocab:size()
    local dir = H.tmpdir("recur_r2rt_")
    local path = dir .. "/run.ckpt"
    local o = { steps = 20, batch = 4, epochs = 3, lr = 1e-3 }
    local function fresh()
      recur.seed(7)
      return lm.model { vocab = V, cell = "lstm", hidden = 8, layers = 2, dropout = 0.1 }
    end
    local m1 = fresh()
    local r1 = lm.train(m1, c.ids, o)
    -- the same run stopped after epoch 2 and a step of epoch 3, then started again
    local m2 = fresh()
    local o2 = { steps = 20, batch = 4, epochs = 3, lr = 1e-3, checkpoint = path, tag = "t",
      max_steps = 2 * r1.steps_per_epoch + 1 }
    lm.train(m2, c.ids, o2)
    assert.truthy(io.open(path))
    o2.max_steps = nil
    local m3 = fresh()
    local r3 = lm.train(m3, c.ids, o2)
    assert.equal(2, r3.resumed_epochs)
    assert.same(r1.losses, r3.losses)
    local a, b = m1:flat_parameters(), m3:flat_parameters()
    assert.equal(0, (a - b):abs():max():item())
    assert.is_nil(io.open(path))
    -- another tag is not resumed
    local m4 = fresh()
    local o4 = { steps = 20, batch = 4, epochs = 3, lr = 1e-3, checkpoint = path, tag = "t",
      max_steps = r1.steps_per_epoch + 1 }
    lm.train(m4, c.ids, o4)
    o4.tag, o4.max_steps = "other", nil
    local r5 = lm.train(fresh(), c.ids, o4)
    assert.equal(0, r5.resumed_epochs)
    assert.same(r1.losses, r5.losses)
    H.rm_rf(dir)
  end)
end)
