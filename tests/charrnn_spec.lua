-- The character model (models/charrnn.lua), recur.sample_logits, and the scripts
-- train_charrnn.lua and sample.lua run as programs on a small UTF-8 fixture: progress and
-- validation lines, exact resume, reproducible sampling, prime handling and errors; a
-- checkpoint written by an earlier version (tests/fixtures/charrnn_gru_part.ckpt) still loads,
-- samples and resumes exactly.
local recur = require("recur")
local CharRNN = require("models.charrnn")
local U = require("tests.rnn_util")
local H = require("tests.helpers")

local BIN = os.getenv("RECUR_BIN") or "build/recur"
local q, sh = H.q, H.sh

local dir
local function path(name) return dir .. "/" .. name end

-- a small UTF-8 text: ASCII plus a few multi-byte characters
local function fixture_text()
  local words = { "the ", "cat ", "sat ", "on ", "a ", "mat ", "café ", "naïve ", "→ ", "λ\n" }
  local out = {}
  local s = 7
  for _ = 1, 3000 do
    s = (s * 1103515245 + 12345) % 2147483648
    out[#out + 1] = words[1 + (s >> 16) % #words]
  end
  return table.concat(out)
end

local function run_script(script, args)
  return sh(q(BIN) .. " scripts/" .. script .. " " .. args .. " </dev/null")
end

setup(function()
  dir = H.tmpdir()
  H.write_file(path("text.txt"), fixture_text())
end)

teardown(function() H.rm_rf(dir) end)

describe("CharRNN", function()
  it("forward shapes, loss near log V at the start, step equals forward", function()
    recur.seed(1)
    local m = CharRNN.new { vocab = 7, embed = 5, hidden = 6, layers = 2, cell = "lstm" }
    local x = recur.randint(1, 7, { 4, 3 })
    local y = recur.randint(1, 7, { 4, 3 })
    local logits, fin = m:forward(x)
    assert.are.same({ 12, 7 }, logits:size())
    assert.are.equal(2, #fin)
    local loss = m:loss(x, y)
    assert.is_true(math.abs(loss:item() - math.log(7)) < 0.5, tostring(loss:item()))
    m:eval()
    recur.no_grad(function()
      local st
      for t = 1, 4 do
        local l
        l, st = m:step(x:select(1, t), st)
        U.close(l, logits:narrow(1, (t - 1) * 3 + 1, 3), 1e-5, "step " .. t)
      end
    end)
  end)

  it("every parameter gets its gradient (gradcheck of the loss on a tiny GRU model)", function()
    recur.seed(2)
    local m = CharRNN.new { vocab = 4, embed = 3, hidden = 3, layers = 1, cell = "gru",
      init_state = "trained" }
    local x = recur.tensor { { 1, 2 }, { 3, 4 }, { 2, 2 } }
    local y = recur.tensor { { 2, 3 }, { 4, 1 }, { 1, 2 } }
    local named = m:named_parameters()
    -- every parameter, including the trained initial state, is reached
    m:loss(x, y):backward()
    for _, np in ipairs(named) do
      assert.is_true(np[2].grad ~= nil and np[2].grad:abs():sum():item() > 0, np[1])
    end
    assert.are.equal("init_state.layer1.h", named[#named][1])
    local ok = recur.gradcheck(function(...)
      local vals = { ... }
      -- the model's tensors are replaced by the checked inputs for this call
      local saved = { m.embed.weight, m.out.weight, m.out.bias }
      rawset(m.embed, "weight", vals[1])
      rawset(m.out, "weight", vals[2])
      rawset(m.out, "bias", vals[3])
      local l = m:loss(x, y)
      rawset(m.embed, "weight", saved[1])
      rawset(m.out, "weight", saved[2])
      rawset(m.out, "bias", saved[3])
      return l
    end, { m.embed.weight:detach():clone():requires_grad(true),
      m.out.weight:detach():clone():requires_grad(true),
      m.out.bias:detach():clone():requires_grad(true) }, { eps = 1e-2, atol = 2e-3, rtol = 2e-2 })
    assert.is_true(ok)
  end)

  it("sample: reproducible with a seed, greedy at temperature 0, prime is read first", function()
    recur.seed(3)
    local m = CharRNN.new { vocab = 5, embed = 4, hidden = 8, layers = 1 }
    recur.seed(10)
    local a = m:sample { length = 30, prime = { 1, 2 } }
    recur.seed(10)
    local b = m:sample { length = 30, prime = { 1, 2 } }
    assert.are.same(a, b)
    assert.are.equal(30, #a)
    for _, id in ipairs(a) do assert.is_true(id >= 1 and id <= 5) end
    -- temperature 0: each id is the argmax of the model's prediction
    local g = m:sample { length = 5, temperature = 0, prime = { 3 } }
    assert.is_true(m.training, "sample restores training mode")
    recur.no_grad(function()
      m:eval()
      local st
      local last = 3
      for i = 1, 5 do
        local l
        l, st = m:step({ last }, st)
        assert.are.equal(l:view(5):argmax():item(), g[i])
        last = g[i]
      end
    end)
  end)
end)

describe("generation loop in C (recur._rnn_generate)", function()
  for _, cell in ipairs { "lstm", "gru", "rnn" } do
    it(cell .. ": the same ids as the step-by-step Lua loop, any temperature and top-k", function()
      recur.seed(3)
      local m = CharRNN.new { vocab = 12, embed = 6, hidden = 16, layers = 2, cell = cell,
        init_state = "trained", init_std = 0 }
      recur.no_grad(function()
        for _, p in ipairs(m:parameters()) do p:mul_(3) end
      end)
      for _, case in ipairs { { 0, 0 }, { 0.7, 4 }, { 1, 0 } } do
        recur.seed(5)
        local a = m:sample { length = 300, prime = { 1, 2, 3 }, temperature = case[1], top_k = case[2] }
        recur.seed(5)
        local b = m:sample { length = 300, prime = { 1, 2, 3 }, temperature = case[1],
          top_k = case[2], path = "lua" }
        assert.are.same(b, a)
      end
      -- chunks carry the state: 600 ids in one call equal 256 + 256 + 88 in the C loop
      recur.seed(6)
      local long = m:sample { length = 600, prime = { 4 } }
      recur.seed(6)
      local ids, st = recur._rnn_generate(m.rnn.cells, m.embed.weight, m.out.weight, m.out.bias,
        m:initial_state(1), { 4 }, 600, 1, 0)
      assert.are.same(long, ids)
      assert.are.equal(2, #st)
    end)
  end

  it("a model with a Lua cell samples through the Lua loop", function()
    recur.seed(7)
    local m = CharRNN.new { vocab = 5, embed = 3, hidden = 4, layers = 1,
      cell = require("tests.oracles.cells.gru") }
    local ids = m:sample { length = 20, prime = { 2 } }
    assert.are.equal(20, #ids)
  end)

  it("checks its arguments", function()
    local m = CharRNN.new { vocab = 5, embed = 3, hidden = 4, layers = 2 }
    local cells = m.rnn.cells
    local E, W = m.embed.weight, m.out.weight
    assert.matches("prime id 6 is outside 1..5",
      H.err_of(recur._rnn_generate, cells, E, W, m.out.bias, nil, { 6 }, 3))
    assert.matches("the prime needs at least one id",
      H.err_of(recur._rnn_generate, cells, E, W, m.out.bias, nil, {}, 3))
    assert.matches("the readout weight must be %[V, 4%], got %[5, 3%]",
      H.err_of(recur._rnn_generate, cells, E, E, nil, nil, { 1 }, 3))
    assert.matches("the embedding has 4 columns but the first cell takes 3",
      H.err_of(recur._rnn_generate, cells, recur.zeros(5, 4), W, nil, nil, { 1 }, 3))
    assert.matches("cell 2 takes 3 inputs but cell 1 gives 4",
      H.err_of(recur._rnn_generate, { cells[1], recur.rnn.Cell { cell = "rnn", input = 3, hidden = 4 } },
        E, W, nil, nil, { 1 }, 1))
    assert.matches("state%[1%]%[2%] must hold 4 values, got 3",
      H.err_of(recur._rnn_generate, cells, E, W, nil,
        { { recur.zeros(4), recur.zeros(3) } }, { 1 }, 2))
    assert.matches("length must be >= 0", H.err_of(recur._rnn_generate, cells, E, W,
      nil, nil, { 1 }, -1))
    assert.matches("must be an rnn cell", H.err_of(recur._rnn_generate, { 3 }, E, W,
      nil, nil, { 1 }, 1))
  end)
end)

describe("recur.sample_logits", function()
  it("draws from softmax(logits / T) restricted to the top k", function()
    recur.seed(4)
    local logits = recur.tensor { 1.0, 2.0, 0.5, -1.0 }
    local n = 20000
    local function freq(T, k)
      local c = { 0, 0, 0, 0 }
      for _ = 1, n do
        local i = recur.sample_logits(logits, T, k)
        c[i] = c[i] + 1
      end
      for i = 1, 4 do c[i] = c[i] / n end
      return c
    end
    local function softmax(v, T)
      local e, s = {}, 0
      for i, z in ipairs(v) do
        e[i] = math.exp(z / T)
        s = s + e[i]
      end
      for i = 1, #e do e[i] = e[i] / s end
      return e
    end
    local f = freq(1, 0)
    local p = softmax({ 1.0, 2.0, 0.5, -1.0 }, 1)
    for i = 1, 4 do assert.is_true(math.abs(f[i] - p[i]) < 0.015, i .. ": " .. f[i] .. " vs " .. p[i]) end
    f = freq(0.5, 2)
    p = softmax({ 1.0, 2.0 }, 0.5)
    assert.is_true(math.abs(f[1] - p[1]) < 0.015 and math.abs(f[2] - p[2]) < 0.015)
    assert.are.equal(0, f[3] + f[4])
    assert.are.equal(2, recur.sample_logits(logits, 0))
    assert.are.equal(2, recur.sample_logits(logits, 1, 1))
  end)

  it("one draw per row for [N, V]; reproducible; errors", function()
    recur.seed(5)
    local l = recur.randn(6, 9)
    local a = recur.sample_logits(l, 1.0)
    recur.seed(5)
    recur.randn(6, 9)
    local b = recur.sample_logits(l, 1.0)
    assert.are.same(a:totable(), b:totable())
    assert.are.same({ 6 }, a:size())
    assert.are.same(l:argmax(2):totable(), recur.sample_logits(l, 0):totable())
    assert.matches("temperature must be a finite number >= 0, got %-1",
      H.err_of(recur.sample_logits, l, -1))
    assert.matches("top_k must be >= 0", H.err_of(recur.sample_logits, l, 1, -2))
    assert.matches("has a NaN logit %(at 2", H.err_of(recur.sample_logits, recur.tensor { 1, 0 / 0 }))
    assert.matches("infinite largest logit",
      H.err_of(recur.sample_logits, recur.tensor { 1, math.huge }))
    assert.matches("must be %[V%] or %[N, V%], got 3 dimensions",
      H.err_of(recur.sample_logits, recur.zeros(1, 2, 3)))
    assert.matches("no entries", H.err_of(recur.sample_logits, recur.zeros(0)))
  end)
  -- rows longer than the stack scratch (1,024) and than a block of the draw (256), with a
  -- length no multiple of 16: the vectorized passes' tails and the block search
  it("long rows: the draw across blocks, top-k, -inf masks, ties, tiny temperatures", function()
    recur.seed(6)
    local V = 3001
    local v = {}
    for i = 1, V do v[i] = -60 end
    v[7], v[1500], v[V] = 1.0, 2.0, 0.5 -- first block, a middle one, the short last one
    local logits = recur.tensor(v)
    local n = 20000
    local function freq(T, k)
      local c = {}
      for _ = 1, n do
        local i = recur.sample_logits(logits, T, k)
        c[i] = (c[i] or 0) + 1
      end
      return c
    end
    local e = { math.exp(1.0), math.exp(2.0), math.exp(0.5) }
    local z = e[1] + e[2] + e[3]
    local c = freq(1, 0)
    for j, i in ipairs { 7, 1500, V } do
      assert.is_true(math.abs((c[i] or 0) / n - e[j] / z) < 0.015, i .. ": " .. tostring(c[i]))
    end
    assert.are.equal(n, (c[7] or 0) + (c[1500] or 0) + (c[V] or 0))
    c = freq(1, 2)
    assert.are.equal(n, (c[7] or 0) + (c[1500] or 0))
    assert.is_true(math.abs((c[7] or 0) / n - e[1] / (e[1] + e[2])) < 0.015)
    -- -inf entries (masks) are never drawn, even when a high temperature flattens the rest
    for i = 1, V do v[i] = i % 3 == 0 and -math.huge or 0.0 end
    logits = recur.tensor(v)
    c = freq(50, 0)
    local seen = 0
    for i, k in pairs(c) do
      assert.are_not.equal(0, i % 3, "a -inf logit was drawn at " .. i)
      seen = seen + 1
      assert.is_true(k > 0)
    end
    assert.is_true(seen > 1500) -- about 2,000 of the 2,001 finite entries
    -- the first maximum, past the first blocks; -0 and +0 are equal
    for i = 1, V do v[i] = 0.0 end
    v[2900], v[3000] = 3.0, 3.0
    logits = recur.tensor(v)
    assert.are.equal(2900, recur.sample_logits(logits, 0))
    assert.are.equal(2900, recur.sample_logits(logits, 1e-320)) -- 1 / T overflows: the argmax
    local zeros = recur.zeros(V)
    zeros[1] = -0.0
    assert.are.equal(1, recur.sample_logits(zeros, 0))
    v[2500] = 0 / 0
    assert.matches("has a NaN logit %(at 2500", H.err_of(recur.sample_logits, recur.tensor(v)))
    v[2500] = math.huge
    assert.matches("infinite largest logit", H.err_of(recur.sample_logits, recur.tensor(v)))
  end)
end)

describe("scripts/train_charrnn.lua and scripts/sample.lua", function()
  local common = " --hidden 16 --embed 8 --layers 2 --batch 4 --seq 16 --epochs 2 --print-every 50"
    .. " --val-frac 0.1"

  it("trains: progress lines with loss, chars/s and ETA, validation per epoch, a checkpoint",
    function()
      local out, code = run_script("train_charrnn.lua", "--data " .. q(path("text.txt")) .. common
        .. " --checkpoint " .. q(path("a.ckpt")))
      assert.are.equal(0, code, out)
      assert.matches("vocabulary 17 %(utf8%)", out)
      assert.matches("epoch 1/2  step 50/%d+  loss %d%.%d+ %(avg %d%.%d+%)  %d+ chars/s  [%d.]+ ms/step  ETA %d", out)
      local v1 = tonumber(out:match("epoch 1 done: train loss [%d.]+, validation loss ([%d.]+)"))
      local v2 = tonumber(out:match("epoch 2 done: train loss [%d.]+, validation loss ([%d.]+)"))
      assert.is_true(v1 and v2 and v2 < v1 and v2 < math.log(17), out)
      assert.matches("checkpoint: .-a%.ckpt %(end of epoch; epoch 2", out)
      local ck = CharRNN.load_checkpoint(path("a.ckpt"))
      assert.are.equal("charrnn", ck.meta.kind)
      assert.are.equal(17, #ck.meta.vocab.codes)
      assert.are.equal("utf8", ck.meta.vocab.mode)
    end)

  it("resumes exactly: stop after 200 steps (in epoch 2), resume, equal to the uninterrupted run",
    function()
      local function train(o) return sh(q(BIN) .. " scripts/train_charrnn.lua " .. o .. " </dev/null") end
      local o = "--data " .. q(path("text.txt")) .. common
        .. " --dropout 0.1 --init-state trained_noisy --cell gru"
      local full, part = path("full.ckpt"), path("part.ckpt")
      local out, code = train(o .. " --checkpoint " .. q(full))
      assert.are.equal(0, code, out)
      out, code = train(o .. " --max-steps 200 --checkpoint " .. q(part))
      assert.are.equal(0, code, out)
      assert.matches("stopped %(max steps%) at epoch 2, step 48: validation loss", out)
      out, code = train("--resume " .. q(part) .. " --checkpoint " .. q(part))
      assert.are.equal(0, code, out)
      assert.matches("resumed from .- at epoch 2, step 48/152 %(200 steps done%)", out)
      local a, b = recur.load(full), recur.load(part)
      local n = 0
      for _, what in ipairs { "model", "tensors" } do
        for k, t in pairs(a[what]) do
          assert.is_not_nil(b[what][k], k)
          assert.are.equal(0, (t - b[what][k]):abs():max():item(), k)
          n = n + 1
        end
      end
      -- the model's state_dict under its module names, the carried state, the optimizer's
      assert.is_not_nil(a.model["rnn.layer2.W_h"])
      assert.is_not_nil(a.model["init_state.layer1.h"])
      assert.is_true(n > 10)
      for i, ps in ipairs(a.optimizer.params) do
        for k, t in pairs(ps) do
          if recur.is_tensor(t) then
            assert.are.equal(0, (t - b.optimizer.params[i][k]):abs():max():item(), i .. "." .. k)
          end
        end
      end
      assert.are.equal(a.optimizer.step, b.optimizer.step)
      assert.are.equal(a.rng_state, b.rng_state)
      assert.are.equal(a.meta.total_steps, b.meta.total_steps)
    end)

  it("samples: the requested number of characters, reproducible with --seed, UTF-8 prime",
    function()
      local args = "--checkpoint " .. q(path("a.ckpt")) .. " --length 120 --seed 7 --prime 'café '"
      local out1, c1 = run_script("sample.lua", args)
      local out2 = run_script("sample.lua", args)
      assert.are.equal(0, c1, out1)
      assert.are.equal(out1, out2)
      assert.is_true(utf8.len(out1) ~= nil, "valid UTF-8")
      assert.are.equal(5 + 120 + 1, utf8.len(out1)) -- prime, generated, newline
      assert.are.equal("café ", out1:sub(1, #"café "))
      local out3 = run_script("sample.lua", args:gsub("seed 7", "seed 8"))
      assert.are_not.equal(out1, out3)
      local g = run_script("sample.lua", "--checkpoint " .. q(path("a.ckpt")) .. " --length 40 --temperature 0 --top-k 3 --seed 1")
      local g2 = run_script("sample.lua", "--checkpoint " .. q(path("a.ckpt")) .. " --length 40 --temperature 0 --top-k 3 --seed 2")
      -- greedy: the seed only picks the first character
      assert.are.equal(utf8.len(g), utf8.len(g2))
    end)

  it("clear messages: unknown prime character, missing options, bad values, no file", function()
    local out, code = run_script("sample.lua", "--checkpoint " .. q(path("a.ckpt")) .. " --prime 'Zoë'")
    assert.are.equal(2, code)
    assert.matches("%-%-prime: character 'Z' %(U%+005A%) at byte offset 0 .- is not in the vocabulary", out)
    assert.matches("the model knows these characters:", out)
    assert.is_nil(out:find("stack traceback"))
    out, code = run_script("sample.lua", "")
    assert.are.equal(2, code)
    assert.matches("%-%-checkpoint FILE is required", out)
    out, code = run_script("sample.lua", "--checkpoint " .. q(path("missing.ckpt")))
    assert.are.equal(2, code)
    assert.matches("cannot load the checkpoint: load: cannot open", out)
    out, code = run_script("train_charrnn.lua", "--epochs 2")
    assert.are.equal(2, code)
    assert.matches("%-%-data FILE is required", out)
    out, code = run_script("train_charrnn.lua", "--data x --cell nope")
    assert.matches("argument for option '%-%-cell' must be one of 'rnn', 'gru', 'lstm'", out)
    out = run_script("train_charrnn.lua", "--data x --lr abc")
    assert.matches("%-%-lr must be a number, got 'abc'", out)
    out = run_script("train_charrnn.lua", "--data " .. q(path("nothing.txt")))
    assert.matches("cannot read the training text", out)
    out = run_script("train_charrnn.lua", "--data " .. q(path("text.txt")) .. " --batch 100000")
    assert.matches("too short for batch 100000", out)
    out, code = run_script("train_charrnn.lua", "--help")
    assert.are.equal(0, code)
    for _, flag in ipairs { "--data", "--cell", "--layers", "--hidden", "--embed", "--seq",
      "--batch", "--epochs", "--lr", "--optim", "--dropout", "--clip", "--init-state",
      "--val-frac", "--checkpoint", "--resume", "--seed", "--threads", "--help" } do
      assert.is_truthy(out:find(flag, 1, true), flag)
    end
  end)
end)

-- tests/fixtures/charrnn_gru_part.ckpt was written by scripts/train_charrnn.lua at commit
-- fe52890 (the training path of models/glue.lua, since removed) from the project root with
-- FIXTURE_OPTS .. " --max-steps 40": it stopped at epoch 2, step 9/31.
describe("a checkpoint written by an earlier version (tests/fixtures/charrnn_gru_part.ckpt)", function()
  local FIXTURE = "tests/fixtures/charrnn_gru_part.ckpt"
  local FIXTURE_OPTS = "--data tests/fixtures/charrnn_text.txt --hidden 4 --embed 3 --layers 2"
    .. " --batch 2 --seq 8 --epochs 2 --cell gru --dropout 0.1 --init-state trained_noisy"
    .. " --lr 0.01 --print-every 1 --val-frac 0.1"
  -- the losses of epoch 2, steps 10..31, that version printed for the uninterrupted run
  local THEN = { 2.4209, 2.6272, 2.3589, 2.4979, 2.3725, 2.4651, 2.2935, 2.4144, 2.5838, 2.5100,
    2.3927, 2.6226, 2.7672, 2.2736, 2.4748, 2.4803, 2.5674, 2.2892, 2.3886, 2.6635, 2.6549,
    2.5673 }
  local function train(o) return sh(q(BIN) .. " scripts/train_charrnn.lua " .. o .. " </dev/null") end
  local function losses(out)
    local l = {}
    for step, v in out:gmatch("epoch 2/2  step (%d+)/31  loss ([%d.]+)") do
      if tonumber(step) >= 10 then l[#l + 1] = v end
    end
    return l
  end

  it("loads into the model it describes, and samples", function()
    local ck = CharRNN.load_checkpoint(FIXTURE, { optimizer = false })
    assert.are.equal("charrnn", ck.meta.kind)
    local m = CharRNN.new(ck.meta.config)
    m:load_state_dict(ck.model)
    assert.are.equal(0, (m.out.bias - ck.model["out.bias"]):abs():max():item())
    recur.seed(1)
    local ids = m:sample { length = 50, prime = { 1, 2 } }
    assert.are.equal(50, #ids)
    for _, id in ipairs(ids) do assert.is_true(id >= 1 and id <= ck.meta.config.vocab) end
    local out, code = run_script("sample.lua", "--checkpoint " .. FIXTURE .. " --length 40 --seed 1 --prime 'the '")
    assert.are.equal(0, code, out)
    assert.are.equal(4 + 40 + 1, utf8.len(out), out)
  end)

  it("resumes exactly: the same losses and final state as an uninterrupted run", function()
    local full, resumed = path("fixture-full.ckpt"), path("fixture-resumed.ckpt")
    local out_full, code = train(FIXTURE_OPTS .. " --checkpoint " .. q(full))
    assert.are.equal(0, code, out_full)
    local out_res
    out_res, code = train("--resume " .. FIXTURE .. " --print-every 1 --checkpoint " .. q(resumed))
    assert.are.equal(0, code, out_res)
    assert.matches("resumed from .- at epoch 2, step 9/31 %(40 steps done%)", out_res)
    local lf, lr = losses(out_full), losses(out_res)
    assert.are.equal(22, #lr, out_res)
    -- the fixture's first 40 steps were computed on the machine that wrote it; here the full run
    -- recomputes them, on whatever OpenBLAS kernel this machine runs: the same within a tolerance
    for i, v in ipairs(lr) do
      assert.is_true(math.abs(tonumber(v) - tonumber(lf[i])) <= 1.5e-4, "step " .. (i + 9) .. ": " .. v .. " vs " .. lf[i])
    end
    -- and the losses the earlier version printed (4 decimals; a BLAS kernel may move the last)
    for i, v in ipairs(lr) do
      assert.is_true(math.abs(tonumber(v) - THEN[i]) <= 1.5e-4, "step " .. (i + 9) .. ": " .. v)
    end
    -- The final state: the fixture's first 40 steps were computed by the OpenBLAS kernel of the
    -- machine that wrote it (Haswell), so a machine that runs another kernel follows a slightly
    -- different path (within 1e-6 of each tensor's largest value, measured under Prescott,
    -- Nehalem, Sandybridge and SkylakeX): the same within 1e-4, on any kernel. (Resuming is
    -- bit for bit when one machine writes and resumes: the tests above.)
    local core = recur.config().blas.core
    local tol = 1e-4
    local function same(t, u, name)
      assert.is_not_nil(u, name)
      local d = (t - u):abs():max():item()
      assert.is_true(d <= tol * t:abs():max():item(), name .. ": differs by " .. d .. " (" .. core .. ")")
    end
    local a, b = recur.load(full), recur.load(resumed)
    for _, what in ipairs { "model", "tensors" } do
      for k, t in pairs(a[what]) do same(t, b[what][k], k) end
    end
    for i, ps in ipairs(a.optimizer.params) do
      for k, t in pairs(ps) do
        if recur.is_tensor(t) then same(t, b.optimizer.params[i][k], "optimizer." .. i .. "." .. k) end
      end
    end
    assert.are.equal(a.optimizer.step, b.optimizer.step)
    assert.are.equal(a.rng_state, b.rng_state)
    assert.are.equal(62, b.meta.total_steps)
  end)

  it("the Lua-source format of older versions gets an error that names it", function()
    local old = path("old-lua.ckpt")
    H.write_file(old, 'return {format="recur-lua-checkpoint-1",meta={["kind"]="charrnn",},'
      .. 'optimizer=false,rng="00",tensors={}}\n')
    local err = H.err_of(CharRNN.load_checkpoint, old)
    assert.matches("is a Lua%-source checkpoint %(format recur%-lua%-checkpoint%-1%), which recur "
      .. "no longer reads", err)
    local out, code = run_script("sample.lua", "--checkpoint " .. q(old))
    assert.are.equal(2, code, out)
    assert.matches("cannot load the checkpoint: load: .-old%-lua%.ckpt is a Lua%-source checkpoint "
      .. "%(format recur%-lua%-checkpoint%-1%)", out)
    out, code = run_script("train_charrnn.lua", "--resume " .. q(old))
    assert.are.equal(2, code, out)
    assert.matches("cannot resume: load: .- is a Lua%-source checkpoint", out)
    assert.is_nil(out:find("stack traceback"))
  end)
end)
