-- R2RT, "Non-Zero Initial States for Recurrent Neural Networks" (reference section 6): the four
-- initial states (zero, trained, noisy zero, noisy trained; noise N(0, 0.3^2) in training
-- only) on a task with a reset at every sequence, and the validation loss at each position
-- after the reset.
--
--   build/recur scripts/posts/initial_states.lua [--quick | --full | --smoke] [--text FILE]
--
-- The task: tiny-shakespeare cut into sequences of --seq characters (models/charseq.lua), the
-- state reset to the strategy's initial state at every sequence, sequences drawn in a random
-- order; the last 10% of the text (contiguous) is the validation set. Every strategy runs with
-- the same seeds; one seed gives the four strategies the same initial weights and the same
-- batches (the training order is drawn before anything else), so they differ only in the
-- initial state and its noise.
--
-- The post's own data, model and budget were not recovered (the reference tags its experiment
-- [MEM?]): the settings are the series' character model (RNN II / RNN III: GRU, state 100,
-- embedding 100, batch 32, Adam, the posts' TensorFlow initial values) on the reference's
-- proposed task. The results file is results/initial_states.json, the figures
-- results/img/initial_states-*.png.
-- section: 6
local recur = require("recur")
local experiment = require("recur.experiment")
local CS = require("models.charseq")
local IS = recur.rnn.initial_state

local DEFAULT_TEXT = "/work/shared/data/tinyshakespeare.txt"
local STRATEGIES = IS.names -- zero, trained, noisy, trained_noisy
local LABEL = { zero = "zero", trained = "trained", noisy = "noisy zero",
  trained_noisy = "noisy trained" }

-- the budget of each profile: training steps (or epochs) per run and seeds. Measured for
-- --quick: 4.3 ms of CPU per step (GRU 100, batch 32, 30 steps, 1 thread) and 0.7 s per
-- evaluation of the whole validation set, so 12 runs of 3000 steps take about 3 minutes.
local PROFILE = {
  smoke = { steps = 20, seeds = 2, hidden = 16, embed = 16, val = 256, eval_every = 10 },
  quick = { steps = 3000, seeds = 3, hidden = 100, embed = 100, val = nil, eval_every = 250 },
  full = { epochs = 20, seeds = 5, hidden = 100, embed = 100, val = nil, eval_every = 1000 },
}

local spec = {
  name = "recur scripts/posts/initial_states.lua",
  prog = "initial_states",
  about = "Reproduces R2RT's \"Non-Zero Initial States for Recurrent Neural Networks\": a character\n"
    .. "model trained on short sequences with the state reset at each one, with a zero, trained,\n"
    .. "noisy zero and noisy trained initial state; prints the validation loss at each position\n"
    .. "after the reset and the post's claim (trained states lower the first positions' loss and\n"
    .. "do no harm later) with the spread over seeds and Welch's t-test.",
  epilog = "Profiles (steps per run x seeds, each for all four strategies): --smoke 20 x 2 (hidden 16,\n"
    .. "on a generated text when neither --text nor " .. DEFAULT_TEXT .. " is there),\n"
    .. "--quick 3000 x 3 (2.9 epochs of tiny-shakespeare; ~3 minutes on an idle 2-core machine),\n"
    .. "--full 20 epochs (20,900 steps, RNN II's 20 epochs) x 5. --steps and --seeds override.",
  { "text", "file", nil, "the text (default " .. DEFAULT_TEXT .. " when present)" },
  { "cell", { "gru", "lstm", "rnn" }, "gru", "recurrent cell" },
  { "layers", "int", 1, "stacked recurrent layers" },
  { "hidden", "int", nil, "state size (default: the profile's, 100)" },
  { "embed", "int", nil, "embedding size (default: the profile's, 100)" },
  { "seq", "int", 30, "characters per sequence (the reset comes before each)" },
  { "batch", "int", 32, "sequences per step" },
  { "lr", "number", 1e-3, "Adam's learning rate (TensorFlow's default; RNN II/III: 1e-4)" },
  { "std", "number", 0.3, "the noise's standard deviation (noisy strategies, training only)" },
  { "steps", "int", nil, "training steps per run (default: the profile's)" },
  { "eval-every", "int", nil, "steps between the evaluations of the training curve" },
  { "val-limit", "int", nil, "validation sequences used (default: all; smoke 256)" },
  { "threads", "int", 1, "BLAS threads" },
}

local args = experiment.cli(arg, spec)
local P = PROFILE[args.profile]
local function die(msg) require("scripts.args").die("initial_states: " .. msg) end
local function opt(name, default)
  if args[name] ~= nil then return args[name] end
  return default
end
local cfg_base = {
  cell = args.cell, layers = args.layers, hidden = opt("hidden", P.hidden),
  embed = opt("embed", P.embed), seq = args.seq, batch = args.batch, lr = args.lr,
  std = args.std, steps = opt("steps", P.steps),
}
local eval_every = opt("eval_every", P.eval_every)
local val_limit = opt("val_limit", P.val)
for _, k in ipairs { "layers", "hidden", "embed", "seq", "batch", "steps" } do
  if cfg_base[k] and cfg_base[k] < 1 then die("--" .. k .. " must be >= 1") end
end
if not (args.lr > 0) then die("--lr must be > 0") end
if not (args.std >= 0) then die("--std must be >= 0") end
if eval_every < 1 then die("--eval-every must be >= 1") end
if val_limit and val_limit < 1 then die("--val-limit must be >= 1") end
recur.threads(args.threads)

-- ---- the text ----
-- A generated text for --smoke without data: words from a small list, in lines, from a fixed
-- generator (Lua's own, so recur's is untouched).
local function generated_text(n)
  local words = { "the", "king", "shall", "not", "speak", "of", "what", "is", "done", "my",
    "lord", "and", "her", "grace", "to", "thee", "whose", "heart", "fair", "night" }
  local state = 12345
  local function rand(k)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % k + 1
  end
  local out, len = {}, 0
  while len < n do
    local line = {}
    for i = 1, rand(6) + 2 do line[i] = words[rand(#words)] end
    local s = table.concat(line, " ") .. (rand(3) == 1 and ".\n" or ",\n")
    out[#out + 1] = s
    len = len + #s
  end
  return table.concat(out)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local text_path = args.text
if not text_path and exists(DEFAULT_TEXT) then text_path = DEFAULT_TEXT end
if not text_path and args.profile ~= "smoke" then
  die("no text: pass --text FILE (tiny-shakespeare; " .. DEFAULT_TEXT .. " is absent)")
end
local ok, corpus = pcall(recur.data.char_corpus, text_path and { path = text_path, split = { 0.9, 0.1, 0 } }
  or { text = generated_text(20000), split = { 0.9, 0.1, 0 } })
if not ok then die("cannot read the text: " .. tostring(corpus)) end
local V = corpus.vocab:size()
local function cut(ids, what)
  local ok2, set = pcall(CS.cut, ids, cfg_base.seq)
  if not ok2 or not ids then
    die(string.format("the %s part of the text (%d characters) holds no sequence of %d",
      what, ids and ids:numel() or 0, cfg_base.seq))
  end
  return set
end
local train, val = cut(corpus.train, "training"), cut(corpus.val, "validation (last 10%)")
if train.n < cfg_base.batch then
  die(string.format("%d training sequences, fewer than a batch of %d", train.n, cfg_base.batch))
end
local val_n = math.min(val.n, val_limit or val.n)
local sub_n = math.min(val_n, 512) -- the training curve's validation subset
local steps_per_epoch = train.n // cfg_base.batch
cfg_base.steps = cfg_base.steps or P.epochs * steps_per_epoch
local text_name = text_path or "generated text (smoke, no data)"
print(string.format("text: %s, %d characters, vocabulary %d; %d training sequences of %d (%d "
  .. "steps per epoch of %d), %d validation sequences", text_name, corpus.ids:numel(), V, train.n,
  cfg_base.seq, steps_per_epoch, cfg_base.batch, val_n))
print(string.format("model: %s, %d layer%s x %d, embedding %d; Adam lr %g; budget %d steps per "
  .. "run (%.2f epochs) x %d strategies x %d seeds (%s profile)", cfg_base.cell, cfg_base.layers,
  cfg_base.layers == 1 and "" or "s", cfg_base.hidden, cfg_base.embed, cfg_base.lr,
  cfg_base.steps, cfg_base.steps / steps_per_epoch, #STRATEGIES,
  args.seeds or P.seeds, args.profile))

-- ---- one run: one strategy, one seed (recur.seed(seed) already done) ----
local function run_one(cfg, _, run)
  local T, B = cfg.seq, cfg.batch
  -- the training order first, so that it is the same for every strategy of a seed
  local epochs = (cfg.steps + steps_per_epoch - 1) // steps_per_epoch
  local perms = {}
  for e = 1, epochs do perms[e] = recur.randperm(train.n) end
  -- then the weights (the same for every strategy), then the trained vectors
  local model = CS.model { vocab = V, embed = cfg.embed, hidden = cfg.hidden, layers = cfg.layers,
    cell = cfg.cell, init_state = cfg.strategy, init_std = cfg.std }
  model:train()
  local opt_ = recur.optim.Adam(model:parameters(), { lr = cfg.lr })
  local curve = { step = {}, first = {}, mean = {}, train = {} }
  local train_sum, train_n = 0, 0
  for step = 1, cfg.steps do
    local e = (step - 1) // steps_per_epoch + 1
    local k = (step - 1) % steps_per_epoch
    local idx = perms[e]:narrow(1, k * B + 1, B)
    local x, y = CS.batch(train, idx)
    opt_:zero_grad()
    local loss = model:loss(x, y)
    loss:backward()
    opt_:step()
    train_sum, train_n = train_sum + loss:item(), train_n + 1
    if step % eval_every == 0 or step == cfg.steps then
      local per, mean = CS.position_loss(model, val, { limit = sub_n })
      local c = #curve.step + 1
      curve.step[c], curve.first[c], curve.mean[c] = step, per[1], mean
      curve.train[c] = train_sum / train_n
      train_sum, train_n = 0, 0
    end
    run:progress(step, cfg.steps)
  end
  local per, mean, n = CS.position_loss(model, val, { limit = val_n })
  run:log("validation loss %.4f (position 1: %.4f, position %d: %.4f)", mean, per[1], T, per[T])
  return { positions = per, mean = mean, val_sequences = n, curve = curve }
end

-- ---- the sweep ----
local configs = {}
for i, s in ipairs(STRATEGIES) do
  local c = { strategy = s }
  for k, v in pairs(cfg_base) do c[k] = v end
  c.text = text_path and text_path:match("[^/]*$") or "generated"
  configs[i] = c
end
local seeds = experiment.seeds(args, P.seeds)
local rep = experiment.report { post = "initial_states",
  title = "Non-Zero Initial States for Recurrent Neural Networks", section = 6,
  profile = args.profile, out = args.out, figures = args.figures, resume = args.resume }
-- finished runs are kept in results/initial_states.strategies.<profile>.runs.json (resumable)
local sweep = rep:sweep { name = "strategies", configs = configs, seeds = seeds, run = run_one,
  meta = { profile = args.profile, val_sequences = val_n, eval_every = eval_every } }
local records = sweep:run()

-- ---- results ----
local stats = experiment.stats
local T = cfg_base.seq
local by = {} -- strategy -> list of records (seed order)
for _, r in ipairs(records) do
  by[r.config.strategy] = by[r.config.strategy] or {}
  table.insert(by[r.config.strategy], r)
end

-- per-seed values of f(result) for one strategy
local function values(s, f)
  local v = {}
  for i, r in ipairs(by[s]) do v[i] = f(r.result) end
  return v
end
local function at(t) return function(res) return res.positions[t] end end
local function span(a, b)
  return function(res)
    local sum = 0
    for t = a, b do sum = sum + res.positions[t] end
    return sum / (b - a + 1)
  end
end

local function row(what, xs, extra)
  local s = stats.summary(xs)
  local r = { what = what, recur = s.mean, sd = s.n > 1 and s.std or nil, n = s.n }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

-- the loss at a few positions, each strategy
local shown = {}
for _, t in ipairs { 1, 2, 3, 5, 10, 20, 30 } do
  if t <= T then shown[#shown + 1] = t end
end
if shown[#shown] ~= T then shown[#shown + 1] = T end
local rows = {}
for _, t in ipairs(shown) do
  for _, s in ipairs(STRATEGIES) do
    rows[#rows + 1] = row(string.format("position %d, %s", t, LABEL[s]), values(s, at(t)))
  end
end
for _, s in ipairs(STRATEGIES) do
  rows[#rows + 1] = row(string.format("positions 1-%d (mean), %s", T, LABEL[s]),
    values(s, function(res) return res.mean end))
end
rep:table { title = string.format("Validation loss (nats per character) at each position after "
  .. "the reset, mean +- sd over %d seeds", #seeds), rows = rows }

-- the post's claim: each strategy against zero, paired by seed (same weights and batches),
-- with Welch's t-test on the two groups of seeds
local early_end = math.min(3, T)
local late_start = math.min(10, T)
local claims = {}
local function diff_rows(s, label, f, target, claim)
  local xs, zs = values(s, f), values("zero", f)
  local d = {}
  for i = 1, #xs do d[i] = xs[i] - zs[i] end
  local w = #xs > 1 and stats.welch(xs, zs) or nil
  claims[#claims + 1] = row(string.format("%s - zero, %s", LABEL[s], label), d, {
    tag = claim and "MEM?" or nil, target = target,
    note = w and string.format("Welch t %.2f, df %.1f, p %.3g", w.t, w.df, w.p) or nil,
  })
  return w
end
for _, s in ipairs { "trained", "trained_noisy", "noisy" } do
  local lower = s ~= "noisy" and { max = 0 } or nil
  diff_rows(s, "position 1", at(1), lower, s ~= "noisy")
  local w = diff_rows(s, string.format("positions 1-%d", early_end), span(1, early_end), lower,
    s ~= "noisy")
  if w and s ~= "noisy" then
    claims[#claims + 1] = { what = string.format("Welch p, %s vs zero, positions 1-%d", LABEL[s],
      early_end), recur = w.p, tag = "MEM?", target = { max = 0.05 },
      note = "lower with p < 0.05" }
  end
  if late_start < T then
    diff_rows(s, string.format("positions %d-%d", late_start, T), span(late_start, T),
      s ~= "noisy" and { max = 0.01 } or nil, s ~= "noisy")
  end
end
rep:table { title = "The post's claim (recalled, [MEM?]): trained states lower the loss just "
  .. "after a reset and do no harm later (differences from zero, nats; paired by seed)",
  rows = claims }

-- figures: the loss at each position, and each strategy's difference from zero
local xs = {}
for t = 1, T do xs[t] = t end
local function mean_curve(s, minus)
  local y = {}
  for t = 1, T do
    y[t] = stats.mean(values(s, at(t))) - (minus and stats.mean(values(minus, at(t))) or 0)
  end
  return y
end
local series, dseries = {}, {}
for _, s in ipairs(STRATEGIES) do
  series[#series + 1] = { name = LABEL[s], x = xs, y = mean_curve(s) }
  if s ~= "zero" then dseries[#dseries + 1] = { name = LABEL[s] .. " - zero", x = xs, y = mean_curve(s, "zero") } end
end
rep:figure { name = "positions", kind = "lines", title = string.format(
  "Validation loss after a reset (%s %d, %d steps, mean of %d seeds)", cfg_base.cell,
  cfg_base.hidden, cfg_base.steps, #seeds), xlabel = "position after the reset",
  ylabel = "loss (nats/char)", series = series }
rep:figure { name = "vs-zero", kind = "lines", title = "Difference from the zero state (mean of "
  .. #seeds .. " seeds)", xlabel = "position after the reset", ylabel = "loss - zero's (nats/char)",
  series = dseries }
local tseries = {}
for _, s in ipairs(STRATEGIES) do
  local c1 = by[s][1].result.curve
  local y = {}
  for i = 1, #c1.step do
    local v = {}
    for j, r in ipairs(by[s]) do v[j] = r.result.curve.first[i] end
    y[i] = stats.mean(v)
  end
  tseries[#tseries + 1] = { name = LABEL[s] .. ", position 1", x = c1.step, y = y }
end
rep:figure { name = "training", kind = "lines", title = string.format(
  "Validation loss at position 1 during training (first %d validation sequences)", sub_n),
  xlabel = "step", ylabel = "loss (nats/char)", series = tseries }

rep:note(string.format("Setup: %s (%d training and %d validation sequences of %d characters, "
  .. "the last 10%% of the text held out); %s, %d layer(s) x %d, embedding %d, batch %d, Adam "
  .. "lr %g (TensorFlow's default, eps 1e-8), no clipping, no dropout; noise std %g in training "
  .. "only; %d steps per run (%.2f epochs), seeds %s, the same for every strategy.", text_name,
  train.n, val_n, T, cfg_base.cell, cfg_base.layers, cfg_base.hidden, cfg_base.embed,
  cfg_base.batch, cfg_base.lr, cfg_base.std, cfg_base.steps, cfg_base.steps / steps_per_epoch,
  table.concat(seeds, ","), T))
rep:note("The post's own experiment (data, model, budget, numbers) was not recovered: the "
  .. "reference (section 6) tags it [MEM?] and proposes this task. The model follows the "
  .. "series' character model (RNN II/III: GRU, state 100, embedding 100, batch 32, Adam) with "
  .. "the posts' TensorFlow initial values: Glorot-uniform weights and embedding, zero biases "
  .. "but the GRU gates' 1.0, and the trained state Glorot-uniform over [H] (the helper's "
  .. "get_variable default; recur's library default is 0). One departure: Adam's learning rate "
  .. "is 1e-3 (TensorFlow's default), not RNN II/III's 1e-4, which trained for 20 epochs; the "
  .. "quick budget is about 3 (--lr 1e-4 runs the series' rate). It was chosen before any run, "
  .. "for the budget, not for the outcome.")

-- what the numbers say, from the numbers (paired by seed)
do
  local function paired(s, f)
    local d = {}
    for i, r in ipairs(by[s]) do d[i] = f(r.result) - f(by.zero[i].result) end
    local m = stats.summary(d)
    return m.mean, m.n > 1 and m.std or 0
  end
  local function first_at(i) return function(res) return res.curve.first[i] end end
  local steps = by.zero[1].result.curve.step
  local m1, s1 = paired("trained", at(1))
  local me, se = paired("trained", span(1, early_end))
  local mn, sn = paired("trained_noisy", at(1))
  rep:note(string.format("Measured (%d seeds, mean +- sd of the paired differences): trained - "
    .. "zero is %+.4f +- %.4f nats at position 1 and %+.4f +- %.4f over positions 1-%d; noisy "
    .. "trained - zero %+.4f +- %.4f at position 1 (the noise is off at evaluation, so the noisy "
    .. "strategies are evaluated at a state they were trained only near). During training "
    .. "(position 1 on the first %d validation sequences), trained - zero is %+.3f nats at step "
    .. "%d and %+.3f at step %d.", #seeds, m1, s1, me, se, early_end, mn, sn, sub_n,
    (paired("trained", first_at(1))), steps[1], (paired("trained", first_at(#steps))),
    steps[#steps]))
end

-- the full curves, per strategy and seed, for the report
local curves = {}
for _, s in ipairs(STRATEGIES) do
  local c = { mean = {}, sd = {}, seeds = {} }
  for t = 1, T do
    local v = values(s, at(t))
    c.mean[t] = stats.mean(v)
    c.sd[t] = #v > 1 and stats.std(v) or 0
  end
  for i, r in ipairs(by[s]) do c.seeds[i] = { seed = r.seed, positions = r.result.positions } end
  curves[s] = c
end
rep:set("curves", curves)
rep:set("settings", { text = text_name, train_sequences = train.n, val_sequences = val_n,
  steps_per_epoch = steps_per_epoch, config = cfg_base, seeds = seeds, eval_every = eval_every })
rep:set("runs", records)
rep:save()
