-- R2RT, "Written Memories: Understanding, Deriving and Extending the LSTM" (r2rt-reference.md
-- section 4): the un-normalised prototype LSTM's state growth (a cell written in Lua) beside
-- the normalized prototype, GRU and pseudo LSTM; vanishing sensitivity of a vanilla RNN
-- (Jacobians through autograd) against the bound ||gamma W||^k; the post's announced "basic
-- LSTM vs pseudo LSTM" comparison extended to every cell recur has, on RNN II's part C setup;
-- and highway / residual connections between the stacked layers.
-- section: 4
local recur = require "recur"
local experiment = require "recur.experiment"
local lm = require "models.r2rt_charlm"
local prototype = require "examples.cells.prototype_lstm"
local rnn = recur.rnn
local stats = experiment.stats

local args = experiment.cli(arg, {
  name = "recur scripts/posts/written_memories.lua",
  about = "Reproduces R2RT's Written Memories: the prototype LSTM's unbounded state, vanishing "
    .. "sensitivity against ||gamma W||^k, the cell comparison (LSTM, peephole, pseudo LSTM, "
    .. "normalized prototype, GRU, LN-LSTM) on RNN II's part C setup, and highway / residual "
    .. "layers. --quick (the default) trains fewer epochs on the text's first characters and "
    .. "says so; --full is RNN II's 20 epochs on the whole text (hours; runs resume from "
    .. "results/written_memories.*.full.runs.json).",
  { "text", "file", nil, "the text (default " .. lm.DEFAULT_TEXT .. " when present)" },
  { "threads", "int", 1, "BLAS threads (and the cells' helper thread)" },
  { "estimate", "flag", false, "print the estimated wall time of the runs left, then exit" },
  { "epochs", "int", nil, "epochs of the cell comparison and the layer runs (default: the "
    .. "profile's: quick 2, full 20)" },
})
recur.threads(args.threads)

local rep = experiment.report {
  post = "written_memories", section = 4,
  title = "Written Memories: Understanding, Deriving and Extending the LSTM",
  profile = args.profile, out = args.out, figures = args.figures, resume = args.resume,
}

local P = experiment.pick(args, {
  full = { slice = nil, hidden = 100, layers = 3, batch = 32, lr = 1e-4, steps = 80, epochs = 20,
    grow_hidden = 100, grow_steps = 200, k = 30, probe = 3 },
  quick = { slice = 200000, hidden = 100, layers = 3, batch = 32, lr = 1e-4, steps = 80,
    epochs = 2, grow_hidden = 100, grow_steps = 200, k = 30, probe = 2 },
  smoke = { slice = nil, hidden = 16, layers = 3, batch = 4, lr = 1e-3, steps = 20, epochs = 1,
    grow_hidden = 16, grow_steps = 30, k = 8, probe = 1 },
})
if args.epochs then P.epochs = args.epochs end
local SEEDS3 = experiment.seeds(args, { quick = 3, full = 5, smoke = 1 })
local SEEDS2 = experiment.seeds(args, { quick = 2, full = 2, smoke = 1 })

-- ---------------------------------------------------------------------------------------
-- 1. The prototype's state: the largest |state| per step, untrained cells with TF's init,
-- batch 32 of inputs N(0, 1) drawn at every step ("random") or drawn once and held
-- ("constant": a sustained input). The prototype shares the normalized prototype's weights.

local GROW_CELLS = { "prototype_lstm", "normalized_prototype", "gru", "pseudo_lstm" }

local growth = rep:sweep {
  name = "growth", configs = { { input = "constant" }, { input = "random" } }, seeds = SEEDS3,
  meta = { profile = args.profile, hidden = P.grow_hidden, steps = P.grow_steps },
  run = function(cfg)
    local H, T, B = P.grow_hidden, P.grow_steps, 32
    local x = cfg.input == "random" and recur.randn(T, B, H)
      or recur.randn(1, B, H):expand(T, B, H):contiguous()
    local cells = {}
    for _, kind in ipairs { "normalized_prototype", "gru", "pseudo_lstm" } do
      cells[kind] = rnn.Cell { cell = kind, input = H, hidden = H }
      lm.tf_init_cell(cells[kind])
    end
    local p = {}
    for _, np in ipairs(cells.normalized_prototype:parameters()) do p[np[1]] = np[2] end
    cells.prototype_lstm = rnn.LuaCell(prototype, { input = H, hidden = H, params = p })
    local out = {}
    recur.no_grad(function()
      for _, kind in ipairs(GROW_CELLS) do
        local c, s, curve = cells[kind], nil, {}
        s = c:zero_state(B)
        for t = 1, T do
          local _
          _, s = c:step(x:select(1, t), s)
          curve[t] = s[1]:abs():max():item()
        end
        out[kind] = curve
      end
    end)
    return out
  end,
}

-- ---------------------------------------------------------------------------------------
-- 2. Vanishing sensitivity: s_t = phi(s_{t-1} W + x_t U), W = scale * an orthogonal matrix
-- (so ||W|| = scale), H = 32, x_t N(0, 1) of 8, U N(0, 1/8); after 20 steps from zero, the
-- Jacobian J_k = d s_{t+k} / d s_t through autograd (H copies of the state in one batch, each
-- row's gradient a row of J_k), and its spectral norm (power iteration): the largest
-- |ds_{t+k}| / |ds_t| over perturbations, against the bound (gamma ||W||)^k.

local GAMMA = { sigmoid = 0.25, tanh = 1 }
local SCALES = { sigmoid = { 1, 2, 4, 8, 16 }, tanh = { 0.25, 0.5, 1, 2, 4 } }
-- the figures show three: below, at and above the threshold
local FIG_SCALES = { sigmoid = { [2] = true, [4] = true, [8] = true },
  tanh = { [0.5] = true, [1] = true, [2] = true } }

-- (J is scaled to a largest entry of 1 first: its entries reach 1e-20, and J^T J would
-- underflow float32)
local function spectral_norm(J)
  local n = J:size(1)
  local scale = J:abs():max():item()
  if scale == 0 then return 0 end
  J = J / scale
  local v = recur.ones(n, 1) / math.sqrt(n)
  local JtJ = recur.matmul(J:t(), J)
  local lam = 0
  for _ = 1, 200 do
    local w = recur.matmul(JtJ, v)
    lam = w:norm():item()
    if lam == 0 then return 0 end
    v = w / lam
  end
  return math.sqrt(lam) * scale
end

local vconfigs = {}
for _, phi in ipairs { "sigmoid", "tanh" } do
  for _, sc in ipairs(SCALES[phi]) do vconfigs[#vconfigs + 1] = { phi = phi, norm_W = sc } end
end

local vanish = rep:sweep {
  name = "vanishing", configs = vconfigs, seeds = SEEDS3,
  meta = { profile = args.profile, k = P.k, norm = "spectral, scaled" },
  run = function(cfg)
    local H, I, burn, K = 32, 8, 20, P.k
    local W = recur.zeros(H, H)
    recur.nn.init.orthogonal()(W)
    W = W * cfg.norm_W
    local U = recur.randn(I, H) / math.sqrt(I)
    local xs = recur.randn(burn + K, 1, I)
    local function f(z) return cfg.phi == "sigmoid" and z:sigmoid() or z:tanh() end
    local s = recur.zeros(1, H)
    for t = 1, burn do s = f(recur.matmul(s, W) + recur.matmul(xs:select(1, t), U)) end
    local eye = recur.eye(H)
    local norms = {}
    for k = 1, K do
      local s0 = s:expand(H, H):contiguous():requires_grad(true)
      local st = s0
      for j = 1, k do
        st = f(recur.matmul(st, W) + recur.matmul(xs:select(1, burn + j), U))
      end
      ;(st * eye):sum():backward()
      norms[k] = spectral_norm(s0.grad)
    end
    return { norms = norms }
  end,
}

-- ---------------------------------------------------------------------------------------
-- 3 and 4. The character model of RNN II part C with every cell, and the LSTM with highway
-- and residual connections between its layers.

local COMPARE = { "lstm", "lstm_peephole", "pseudo_lstm", "normalized_prototype", "gru", "ln_lstm" }
local corpus, ids, V
local function need_text()
  if corpus then return end
  local ok, c = pcall(lm.load_text, args, P.slice)
  if not ok then
    io.stderr:write("written_memories: ", tostring(c), "\n")
    os.exit(2)
  end
  corpus, ids, V = c, c.ids, c.vocab:size()
end
need_text()
print(string.format("text: %s, %d characters%s, vocabulary %d", corpus.source, corpus.full_length,
  corpus.slice and string.format(" (%s profile: the first %d)", args.profile, ids:numel()) or "", V))
print(string.format("model (RNN II part C): embedding %d, %d layers of %d, batch %d, num_steps %d, "
  .. "Adam %g, %d epochs; TF's initialisation; %d thread%s", P.hidden, P.layers, P.hidden, P.batch,
  P.steps, P.lr, P.epochs, args.threads, args.threads == 1 and "" or "s"))

-- each run saves a checkpoint after every epoch, so that an interrupted --full run resumes at
-- its last finished epoch (the runs file resumes whole runs)
local function train_run(cfg, _, run)
  local m = lm.model { vocab = V, cell = cfg.cell, hidden = P.hidden, layers = P.layers,
    connection = cfg.connection }
  local r = lm.train(m, ids, { steps = P.steps, batch = P.batch, epochs = P.epochs, lr = P.lr,
    run = run, tag = string.format("%s|%d", run.key, ids:numel()),
    checkpoint = lm.checkpoint_path(rep.out, "written_memories", cfg.connection and "layers"
      or "compare", args.profile, run.key) })
  return { losses = r.losses, seconds = r.seconds, ms_per_step = r.ms_per_step }
end

local cconfigs = {}
for _, c in ipairs(COMPARE) do cconfigs[#cconfigs + 1] = { cell = c } end
local compare = rep:sweep {
  name = "compare", configs = cconfigs, seeds = SEEDS2,
  meta = { profile = args.profile, chars = ids:numel(), epochs = P.epochs },
  run = train_run,
}
local layers = rep:sweep {
  name = "layers",
  configs = { { cell = "lstm", connection = "highway" }, { cell = "lstm", connection = "residual" } },
  seeds = { 1 }, meta = { profile = args.profile, chars = ids:numel(), epochs = P.epochs },
  run = train_run,
}

-- the wall time of what is left, from a few timed steps of each cell
do
  local per = (ids:numel() // P.batch - 1) // P.steps
  local total, probes = 0, {}
  for _, sw in ipairs { compare, layers } do
    for _, spec in ipairs(sw:pending()) do
      local key = spec.config.cell .. "/" .. tostring(spec.config.connection)
      if not probes[key] then
        -- the process's first training steps run slow (pages, threads): one untimed probe first
        if not next(probes) then
          recur.seed(99)
          lm.train(lm.model { vocab = V, cell = "gru", hidden = P.hidden, layers = P.layers }, ids,
            { steps = P.steps, batch = P.batch, epochs = 1, lr = P.lr, max_steps = P.probe + 1 })
        end
        recur.seed(99)
        local m = lm.model { vocab = V, cell = spec.config.cell, hidden = P.hidden,
          layers = P.layers, connection = spec.config.connection }
        probes[key] = lm.train(m, ids, { steps = P.steps, batch = P.batch, epochs = 1, lr = P.lr,
          max_steps = P.probe + 1 }).ms_per_step_warm
      end
      local s = probes[key] * per * P.epochs / 1000
      total = total + s
      io.stderr:write(string.format("estimate: %s %s: %.0f ms/step x %d steps x %d epochs = %s\n",
        sw.name, spec.key, probes[key], per, P.epochs, lm.duration(s)))
    end
  end
  print(string.format("estimated wall time of the training runs left: %s (from %d timed steps of "
    .. "each kind, on this machine now)", lm.duration(total), P.probe))
end

if args.estimate then os.exit(0) end

local grec = growth:run()
local vrec = vanish:run()
local crec = compare:run()
local lrec = layers:run()

local function budget()
  if args.profile == "full" and P.epochs == 20 then return nil end
  return string.format("%s: %d epoch%s on %d characters (RNN II part C: 20 on all)", args.profile,
    P.epochs, P.epochs == 1 and "" or "s", ids:numel())
end

-- 1. growth: table and figure
do
  local rows = {}
  for _, input in ipairs { "constant", "random" } do
    local rs = growth:select(function(c) return c.input == input end)
    for _, kind in ipairs(GROW_CELLS) do
      local at_end, at_ten = {}, {}
      for _, r in ipairs(rs) do
        at_end[#at_end + 1] = r.result[kind][P.grow_steps]
        at_ten[#at_ten + 1] = r.result[kind][math.min(10, P.grow_steps)]
      end
      local target
      if kind == "gru" then target = { max = 1 } end
      rows[#rows + 1] = { what = string.format("%s input: %s, max |state| at step %d", input, kind,
        P.grow_steps), recur = at_end, target = target,
        note = string.format("at step %d: %.3g", math.min(10, P.grow_steps), stats.mean(at_ten))
          .. (kind == "gru" and "; |h| < 1 always (a convex mix of tanh values)" or "") }
    end
  end
  -- still growing (about 2 for linear growth) or levelled off (about 1): step 200 over 100
  local half = P.grow_steps // 2
  local rs = growth:select(function(c) return c.input == "constant" end)
  for _, kind in ipairs(GROW_CELLS) do
    local ratio = {}
    for _, r in ipairs(rs) do ratio[#ratio + 1] = r.result[kind][P.grow_steps] / r.result[kind][half] end
    rows[#rows + 1] = { what = string.format("constant input: %s, max |state| step %d / step %d",
      kind, P.grow_steps, half), recur = ratio, digits = 4,
      target = kind == "prototype_lstm" and { min = 1.5 } or { max = 1.1 },
      note = kind == "prototype_lstm" and "the post: unbounded (about 2 for linear growth)"
        or "the post: bounded (1 once levelled off)" }
  end
  rep:table { title = string.format("The prototype's state: the largest |state| over a batch of 32, "
    .. "%d units, untrained (TF's init)", P.grow_hidden), rows = rows }
  for _, input in ipairs { "constant", "random" } do
    local r = growth:select(function(c) return c.input == input end)[1].result
    local series = {}
    for _, kind in ipairs(GROW_CELLS) do
      local x = {}
      for t = 1, #r[kind] do x[t] = t end
      series[#series + 1] = { name = kind, x = x, y = r[kind] }
    end
    rep:figure { name = "growth-" .. input, kind = "lines", logy = true,
      title = string.format("Largest |state| per step, %s input (seed 1)", input),
      xlabel = "step", ylabel = "max |state|", series = series }
  end
end

-- 2. vanishing: table and figures
do
  local rows = {}
  for _, phi in ipairs { "sigmoid", "tanh" } do
    local series = {}
    for _, sc in ipairs(SCALES[phi]) do
      local rs = vanish:select(function(c) return c.phi == phi and c.norm_W == sc end)
      local K = P.k
      local rate, mean_curve = {}, {}
      for k = 1, K do mean_curve[k] = 0 end
      for _, r in ipairs(rs) do
        local n = r.result.norms
        rate[#rate + 1] = n[K] > 0 and n[K] ^ (1 / K) or 0
        for k = 1, K do mean_curve[k] = mean_curve[k] + math.log(math.max(n[k], 1e-300)) / #rs end
      end
      local g = GAMMA[phi] * sc
      local x, bound = {}, {}
      for k = 1, K do
        x[k] = k
        mean_curve[k] = math.exp(mean_curve[k])
        bound[k] = g ^ k
      end
      rows[#rows + 1] = { what = string.format("%s, ||W|| = %g: per-step rate ||J_%d||^(1/%d)", phi,
        sc, K, K), recur = rate, post = g, tag = "V-copy", target = { max = g }, digits = 4,
        note = string.format("bound gamma ||W|| = %g: %s; measured: %s", g,
          g < 1 and "predicts vanishing" or "no prediction (a bound only)",
          mean_curve[K] < 1 and string.format("vanishes (||J_%d|| = %.2g)", K, mean_curve[K])
            or string.format("does not vanish (||J_%d|| = %.2g)", K, mean_curve[K])) }
      if FIG_SCALES[phi][sc] then
        series[#series + 1] = { name = string.format("measured, ||W|| = %g", sc), x = x, y = mean_curve }
        series[#series + 1] = { name = string.format("bound (%g)^k", g), x = x, y = bound }
      end
    end
    rep:figure { name = "vanishing-" .. phi, kind = "lines", logy = true,
      title = string.format("%s RNN: ||d s_(t+k) / d s_t|| (geometric mean of seeds) vs (gamma ||W||)^k",
        phi),
      xlabel = "k (steps)", ylabel = "sensitivity", series = series }
  end
  rep:table { title = "Vanishing sensitivity: the bound (gamma ||W||)^k against the Jacobians "
    .. "(vanishing predicted for ||W|| < 4 with sigmoid, < 1 with tanh)", rows = rows }
end

-- 3. the comparison
local lstm_seed1
do
  local rows = {}
  local note = budget()
  local finals = {}
  for _, cell in ipairs(COMPARE) do
    local rs = compare:select(function(c) return c.cell == cell end)
    local v, t = {}, {}
    for _, r in ipairs(rs) do
      v[#v + 1] = r.result.losses[#r.result.losses]
      t[#t + 1] = stats.mean(r.result.seconds)
      if cell == "lstm" and r.seed == 1 then lstm_seed1 = v[#v] end
    end
    finals[cell] = v
    rows[#rows + 1] = { what = cell .. ": final epoch mean training loss", recur = v, note = note }
    rows[#rows + 1] = { what = cell .. ": seconds per epoch", recur = t, digits = 4,
      note = "this machine, " .. args.threads .. " thread(s)" }
  end
  local pl, l = stats.mean(finals.pseudo_lstm), stats.mean(finals.lstm)
  local w = (#finals.lstm > 1 and #finals.pseudo_lstm > 1) and stats.welch(finals.pseudo_lstm, finals.lstm) or nil
  rows[#rows + 1] = { what = "pseudo LSTM at least as good as LSTM (final loss)",
    recur = pl <= l and "yes" or "no", tag = "MEM?",
    note = string.format("post (recalled): yes; recur: %.4f vs %.4f%s", pl, l,
      w and string.format(", Welch p = %.3g", w.p) or "") }
  rep:table { title = "Every cell on RNN II's part C setup (num_steps 80)", rows = rows }
end

-- 4. highway and residual
do
  local rows = {}
  rows[#rows + 1] = { what = "LSTM, plain (seed 1): final loss", recur = lstm_seed1, note = budget() }
  for _, conn in ipairs { "highway", "residual" } do
    local r = layers:select(function(c) return c.connection == conn end)[1].result
    rows[#rows + 1] = { what = string.format("LSTM, %s layers 2-3 (seed 1): final loss", conn),
      recur = r.losses[#r.losses], note = budget() }
    rows[#rows + 1] = { what = string.format("LSTM, %s: seconds per epoch", conn),
      recur = stats.mean(r.seconds), digits = 4 }
  end
  rep:table { title = "Highway (y = T(x) h(x) + (1 - T(x)) x) and residual (y = h(x) + x) "
    .. "connections between the stacked layers", rows = rows }
end

rep:note("The prototype LSTM is examples/cells/prototype_lstm.lua, a cell written in Lua (the "
  .. "fused normalized_prototype without its renormalisation), run on the normalized "
  .. "prototype's own weights. Its state is bounded by nothing: with a sustained input (one "
  .. "N(0, 1) draw held for every step) the gates saturate (f, i near 1) and |s| grows by "
  .. "about 1 per step, while the normalized prototype (the recalled form s / sqrt(var(s) + "
  .. "1), MEM?) and the GRU (a convex mix of tanh values) stay bounded and the pseudo LSTM "
  .. "levels off (its gates read tanh(s), so f stays below 1; its state settles at 8 to 15, "
  .. "above the others). With inputs drawn afresh at every step the candidates' signs change "
  .. "and all four stay small at this initialisation: the prototype's growth needs a "
  .. "persistent input, which text (a held context) provides and i.i.d. noise does not.")
rep:note("The post's comparison of the basic and the pseudo LSTM has no recovered numbers "
  .. "(MEM?); the claim recalled is that the pseudo LSTM did slightly better. The table "
  .. "reports what recur measures, on RNN II's part C setup with TF's initialisation. "
  .. "Highway gates: nn.Linear(H, H) on the layer's input, bias -1 (recur.rnn.RNN "
  .. "connection = \"highway\"); the layers' input is the embedding (size H) for layer 1, "
  .. "which has no connection.")
if budget() then
  local whole = not P.slice
  rep:note(string.format("This is the %s profile with %d epoch%s %s (RNN II's part C trains 20 on "
    .. "the whole text)%s. The losses are above their 20-epoch values (the cells are still "
    .. "learning: see RNN II's part C curves), and cells whose losses lie within a few hundredths "
    .. "of each other may change places by epoch 20; the larger gaps are what this table can "
    .. "tell.", args.profile, P.epochs, P.epochs == 1 and "" or "s",
    whole and "on the whole text" or string.format("on the first %d characters", ids:numel()),
    args.given.epochs and string.format(", set with `--epochs %d` to fit the time at hand",
      P.epochs) or ""))
end
rep:set("runs", { growth = grec, vanishing = vrec, compare = crec, layers = lrec })
rep:set("profile_settings", P)
rep:save()
