-- The batch-1 generation loop in C (recur._rnn_generate, runtime/rnn_generate.c): every fused
-- cell kind gives the ids and, bitwise, the states of the step-by-step loop over cell:step
-- (both take rn_vecmat for every product of one row, and the cells add a recurrent product
-- handed in exactly as they add their own); with 2 threads (the recurrent products claimed by
-- a helper thread, in column chunks) the same bits as with 1. Temperature 0 (the argmax) keeps
-- the draws out of it; the readout is OpenBLAS's in both loops.
local recur = require("recur")
local rnn = require("recur.rnn")

local KINDS = { { "lstm" }, { "lstm_peephole" }, { "gru" }, { "gru", true }, { "rnn" },
  { "pseudo_lstm" }, { "normalized_prototype" }, { "ln_lstm" } }

-- a 2-layer model with weights large enough that the states move far from zero
local function model(kind, reset_after, V, E, H, seed)
  recur.seed(seed or 1)
  local m = { V = V, E = E, H = H }
  m.cells = { rnn.Cell { cell = kind, input = E, hidden = H, reset_after = reset_after },
    rnn.Cell { cell = kind, input = H, hidden = H, reset_after = reset_after } }
  recur.no_grad(function()
    for _, c in ipairs(m.cells) do
      for _, p in ipairs(c:parameters()) do p[2]:mul_(2) end
    end
  end)
  m.embed = recur.randn(V, E)
  m.W = recur.randn(V, H) * 0.5
  m.b = recur.randn(V) * 0.1
  return m
end

-- the C loop: ids (1-based) and the final states, flattened
local function generate(m, prime, n)
  local ids, st = recur._rnn_generate(m.cells, m.embed, m.W, m.b, nil, prime, n, 0, 0)
  local flat = {}
  for _, layer in ipairs(st) do
    for _, t in ipairs(layer) do flat[#flat + 1] = t:reshape(t:numel()) end
  end
  return ids, flat
end

-- the same loop over cell:step in Lua
local function step_loop(m, prime, n)
  local st = {}
  for l, c in ipairs(m.cells) do st[l] = c:zero_state(1) end
  local ids = {}
  local function step(id)
    local x = m.embed:narrow(1, id, 1)
    for l, c in ipairs(m.cells) do x, st[l] = c:step(x, st[l]) end
    return x
  end
  recur.no_grad(function()
    for i = 1, #prime - 1 do step(prime[i]) end
    local last = prime[#prime]
    for _ = 1, n do
      local y = step(last)
      local logits = recur.matmul(y, m.W:t()) + m.b
      last = recur.sample_logits(logits:reshape(m.V), 0, 0)
      ids[#ids + 1] = last
    end
  end)
  local flat = {}
  for l = 1, #m.cells do
    for _, t in ipairs(st[l]) do flat[#flat + 1] = t:reshape(t:numel()) end
  end
  return ids, flat
end

local function same_bits(a, b, what)
  assert.are.equal(#a, #b, what .. ": number of states")
  for i = 1, #a do
    assert.are.equal(0, (a[i] - b[i]):abs():max():item(), what .. ": state " .. i)
  end
end

describe("generation loop in C against the cells' steps", function()
  local before
  setup(function() before = recur.threads() end)
  teardown(function() recur.threads(before) end)
  for _, k in ipairs(KINDS) do
    local name = k[1] .. (k[2] and " (reset_after)" or "")
    it(name .. ": the same ids and, bitwise, the same states", function()
      recur.threads(1)
      -- H = 37: products whose columns end mid-vector; 30 steps against a vocabulary of 11
      -- (layer 1's input products from the table) and of 50 (one by one)
      for _, V in ipairs { 11, 50 } do
        local m = model(k[1], k[2], V, 6, 37)
        local a_ids, a_st = generate(m, { 2, 5, 1 }, 28)
        local b_ids, b_st = step_loop(m, { 2, 5, 1 }, 28)
        assert.are.same(b_ids, a_ids)
        same_bits(a_st, b_st, name .. " V=" .. V)
      end
    end)
  end
end)

describe("generation with 2 threads", function()
  local before
  setup(function() before = recur.threads() end)
  teardown(function() recur.threads(before) end)
  -- sizes where the helper takes the recurrent products (runtime/rnn_generate.c, helper_pays),
  -- with column counts that do and do not fill whole vectors; the pseudo LSTM's products all
  -- stay in the cell
  for _, case in ipairs { { "lstm", 120 }, { "gru", 136 }, { "gru", 136, true }, { "rnn", 250 },
    { "lstm_peephole", 112 }, { "pseudo_lstm", 64 } } do
    local kind, H, ra = case[1], case[2], case[3]
    it(string.format("%s%s H=%d: the same ids and states as 1 thread, run after run", kind,
      ra and " (reset_after)" or "", H), function()
      local m = model(kind, ra, 30, 8, H, 4)
      recur.threads(1)
      local ids1, st1 = generate(m, { 3 }, 400)
      for _ = 1, 3 do
        recur.threads(2)
        local ids2, st2 = generate(m, { 3 }, 400)
        assert.are.same(ids1, ids2)
        same_bits(st1, st2, kind .. " 2 threads")
        assert.are.equal(2, recur.threads())
      end
    end)
  end

  it("recur._profile counts the calls, the steps and who computed the recurrent products", function()
    local m = model("lstm", false, 30, 8, 120, 6)
    for _, th in ipairs { 1, 2 } do
      recur.threads(th)
      recur._profile(true)
      generate(m, { 3, 4 }, 100)
      local p = recur._profile(false).generate
      assert.are.equal(1, p.calls)
      assert.are.equal(101, p.steps)
      -- two layers' products a step, in two chunks each when the helper was there
      local chunks = p.helper_calls == 1 and 2 or 1
      assert.are.equal(101 * 2 * chunks, p.chunks[1] + p.chunks[2])
      if th == 1 then
        assert.are.equal(0, p.helper_calls)
        assert.are.equal(0, p.chunks[2])
      end
    end
  end)

  it("a generation of no steps, and one of one step, with 2 threads", function()
    local m = model("lstm", false, 9, 4, 120, 5)
    recur.threads(2)
    local ids, st = generate(m, { 4 }, 0)
    assert.are.same({}, ids)
    assert.are.equal(0, st[1]:abs():max():item())
    recur.threads(1)
    local one = { generate(m, { 4 }, 1) }
    recur.threads(2)
    local two = { generate(m, { 4 }, 1) }
    assert.are.same(one[1], two[1])
    same_bits(one[2], two[2], "one step")
  end)
end)
