-- R2RT, "Styles of Truncated Backpropagation" (reference section 3): true truncated BPTT(n)
-- against TensorFlow-style windows on the post's word model, on the Brown corpus (the PTB
-- stand-in), with the post's gradient check, gradient-decay probe and timing.
-- section: 3
--
--   build/recur scripts/posts/tbptt_styles.lua            # --quick: lr 0.001, n = 5 and 10, a slice
--   build/recur scripts/posts/tbptt_styles.lua --full     # the post's whole table (hours)
--   build/recur scripts/posts/tbptt_styles.lua --smoke    # seconds, a synthetic corpus
--
-- The model, its initialisation, the two styles' gradients and the probe are models/word_rnn.lua.
local recur = require "recur"
local experiment = require "recur.experiment"
local WordRNN = require "models.word_rnn"
local stats = experiment.stats

local args = experiment.cli(arg, {
  name = "recur scripts/posts/tbptt_styles.lua",
  about = "Reproduces R2RT's \"Styles of Truncated Backpropagation\": minimum validation loss of\n"
    .. "true BPTT(n) vs TF-style n-step windows (Adam, 20 epochs), the two styles' gradients at\n"
    .. "n = T, the decay of each backprop distance's gradient contribution, and the time of one\n"
    .. "gradient evaluation. Brown words (10k vocabulary) stand in for PTB.\n"
    .. "--quick: lr 0.001, n = 5 and 10, 2 seeds, on a slice of the corpus;\n"
    .. "--full: the post's 7 rows x 3 learning rates on all of Brown (tens of hours on 2 cores).",
  { "data", "dir", nil, "Brown corpus directory (default $RECUR_DATA/brown, else data/brown; "
    .. "--smoke without it makes a synthetic corpus)" },
  { "slice", "int", nil, "training tokens used (default: quick 12000, full all)" },
  { "val-slice", "int", nil, "validation tokens used (default: quick 3000, full all)" },
  { "epochs", "int", 20, "epochs per run (the post: 20)" },
  { "patience", "int", 3, "stop a run after this many epochs without a better validation loss (0: never)" },
  { "reps", "int", nil, "timing repetitions per style (default: quick 3, full 11, smoke 2)" },
  { "probe-seeds", "int", nil, "initialisations the decay probe is run on (default 3; smoke 1)" },
})
local P = args.profile

local rep = experiment.report {
  post = "tbptt_styles", title = "Styles of Truncated Backpropagation", section = 3,
  profile = P, out = args.out, figures = args.figures, resume = args.resume,
}

-- ---------------------------------------------------------------------------------------
-- The corpus: Brown, or (smoke without --data) a small synthetic one in Brown's format

local function synthetic_brown()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"), "tbptt_styles: cannot make " .. dir)
  -- a Markov chain over 120 words: each word is followed by one of 4 successors
  local gen = 7
  local function rnd(k) gen = (gen * 1103515245 + 12345) % 2147483648; return gen % k end
  local succ = {}
  for w = 1, 120 do succ[w] = { rnd(120) + 1, rnd(120) + 1, rnd(120) + 1, rnd(120) + 1 } end
  local cats, files = {}, {}
  for f = 1, 10 do
    local name = string.format("sy%02d", f)
    local lines, w = {}, 1
    for _ = 1, 130 do
      local toks = {}
      for _ = 1, 8 + rnd(8) do
        w = succ[w][rnd(4) + 1]
        toks[#toks + 1] = "w" .. w .. "/nn"
      end
      toks[#toks + 1] = "./."
      lines[#lines + 1] = "\t" .. table.concat(toks, " ")
    end
    local fh = assert(io.open(dir .. "/" .. name, "w"))
    fh:write(table.concat(lines, "\n\n"), "\n")
    fh:close()
    cats[#cats + 1] = name .. " synthetic"
    files[#files + 1] = dir .. "/" .. name
  end
  local fh = assert(io.open(dir .. "/cats.txt", "w"))
  fh:write(table.concat(cats, "\n"), "\n")
  fh:close()
  files[#files + 1] = dir .. "/cats.txt"
  return dir, function()
    for _, f in ipairs(files) do os.remove(f) end
    os.remove(dir)
  end
end

local data_dir, cleanup = args.data, nil
local corpus_name = "Brown (10k vocabulary)"
if P == "smoke" and not data_dir then
  data_dir, cleanup = synthetic_brown()
  corpus_name = "a synthetic Markov-chain corpus (smoke)"
end
local corpus = recur.data.brown_words { dir = data_dir }
if cleanup then cleanup() end
local V = corpus.vocab:size()

local function slice(ids, n)
  if not n or n >= ids:numel() then return ids end -- false: all
  return ids:narrow(1, 1, n)
end
local train_slice = experiment.pick(args, { quick = 12000, full = false, smoke = false })
local val_slice = experiment.pick(args, { quick = 3000, full = false, smoke = false })
if args.given.slice then train_slice = args.slice end
if args.given.val_slice then val_slice = args.val_slice end
local train_ids, val_ids = slice(corpus.train, train_slice), slice(corpus.val, val_slice)
local split_note = string.format(
  "%s: training stream %d tokens, validation %d (the loader's split by file: within each genre "
  .. "the 9th, 19th, ... file is validation, the 10th, 20th, ... test, the rest training; each "
  .. "sentence ends with <eos>); %s", corpus_name, corpus.train:numel(), corpus.val:numel(),
  (train_ids:numel() < corpus.train:numel() or val_ids:numel() < corpus.val:numel())
  and string.format("the training runs use the first %d training and the first %d validation tokens",
    train_ids:numel(), val_ids:numel())
  or "the training runs use all of it")
io.stderr:write("[tbptt_styles] " .. split_note .. "\n")

local function first_window(ids, batch, steps)
  for x, y in recur.data.lm_batches(ids, { batch = batch, steps = steps, epochs = 1 }) do
    return x, y
  end
end

-- ---------------------------------------------------------------------------------------
-- 1. The post's check: with num_steps = bptt_steps = 7 the two styles' gradients agree

local check
do
  recur.seed(1)
  local m = WordRNN.new { vocab = V }
  m:eval()
  local x, y = first_window(corpus.train, 32, 7)
  local function grads(style)
    m:zero_grad()
    m:grad_step(x, y, nil, { style = style, n = 7 })
    local g = {}
    for _, np in ipairs(m:named_parameters()) do g[np[1]] = np[2].grad:clone() end
    return g
  end
  local gt, gf = grads("true"), grads("tf")
  local worst, scale = 0, 0
  for k, g in pairs(gt) do
    worst = math.max(worst, (g - gf[k]):abs():max():item())
    scale = math.max(scale, gf[k]:abs():max():item())
  end
  check = { max_abs = worst, max_grad = scale }
end

-- ---------------------------------------------------------------------------------------
-- 2. The decay probe, at the post's setup: an untrained model (embed 50, state 4), the first
--    batch of the training stream (batch 200, num_steps 40), bptt 20, no dropout

local POST_DECAY = { -- the post's printed array, farthest (20 steps back) first
  5.28676978e-08, 1.51207473e-07, 4.04591049e-07, 1.55859300e-06, 5.00411124e-06,
  1.32292716e-05, 3.94736344e-05, 1.17605050e-04, 3.37805774e-04, 1.01710076e-03,
  2.74375151e-03, 8.92040879e-03, 2.23708227e-02, 7.23497868e-02, 2.45202959e-01,
  7.39126682e-01, 2.19093657e+00, 6.16793633e+00, 2.27248211e+01, 9.78200531e+01 }
local function ratios(v) -- v farthest first; the post prints v[i + 1] / v[i]
  local r = {}
  for i = 1, #v - 1 do r[i] = v[i + 1] / v[i] end
  return r
end
local POST_RATIOS = ratios(POST_DECAY)

local probe_seeds = experiment.seeds(args, { quick = 3, full = 3, smoke = 1 })
if args.given.probe_seeds then probe_seeds = experiment.seeds({ seeds = args.probe_seeds }, 1) end
local probe = {}
do
  local x, y = first_window(corpus.train, 200, 40)
  for i, seed in ipairs(probe_seeds) do
    recur.seed(seed)
    local m = WordRNN.new { vocab = V, embed = 50, hidden = 4 }
    local c = m:decay_probe(x, y, { n = 20 })
    local far_first = {}
    for k = 1, 20 do far_first[k] = c[21 - k] end
    probe[i] = { seed = seed, by_distance = c, far_first = far_first, ratios = ratios(far_first) }
  end
end

-- ---------------------------------------------------------------------------------------
-- 3. Timing at the same setup: one gradient evaluation, true BPTT(20) vs TF style (40 steps),
--    interleaved repetitions, medians (wall clock: a ratio within one run)

local timing
do
  recur.seed(1)
  local m = WordRNN.new { vocab = V, embed = 50, hidden = 4 }
  m:eval()
  local x, y = first_window(corpus.train, 200, 40)
  local reps = args.reps or experiment.pick(args, { quick = 3, full = 11, smoke = 2 })
  local function once(style)
    m:zero_grad()
    local t0 = recur.now()
    m:grad_step(x, y, nil, { style = style, n = 20 })
    return recur.now() - t0
  end
  once("true"); once("tf") -- warm up
  local tt, tf, pair = {}, {}, {}
  for i = 1, reps do
    if i % 2 == 1 then
      tt[i] = once("true"); tf[i] = once("tf")
    else
      tf[i] = once("tf"); tt[i] = once("true")
    end
    pair[i] = tt[i] / tf[i]
  end
  timing = { reps = reps, true_ms = 1000 * stats.median(tt), tf_ms = 1000 * stats.median(tf),
    pair_ratios = pair }
  timing.ratio = timing.true_ms / timing.tf_ms
end

-- ---------------------------------------------------------------------------------------
-- 4. Training: minimum validation loss in (up to) 20 epochs, each arm of the post's table

local POST_TABLE = { -- {label, style, seq, n, {lr 0.003, 0.001, 0.0003}}
  { "5-step, true (20-seq)", "true", 20, 5, { 5.12, 5.01, 5.09 } },
  { "5-step, TF style", "tf", 5, 5, { 5.21, 5.04, 5.04 } },
  { "10-step, true (30-seq)", "true", 30, 10, { 5.07, 5.00, 5.12 } },
  { "10-step, TF style", "tf", 10, 10, { 5.15, 5.03, 5.05 } },
  { "20-step, true (40-seq)", "true", 40, 20, { 5.05, 5.00, 5.15 } },
  { "20-step, TF style", "tf", 20, 20, { 5.11, 4.99, 5.08 } },
  { "40-step, TF style", "tf", 40, 40, { 5.05, 4.99, 5.15 } },
}
local LRS = { 0.003, 0.001, 0.0003 }

local arms, lrs
if P == "full" then
  arms, lrs = { 1, 2, 3, 4, 5, 6, 7 }, { 1, 2, 3 }
elseif P == "quick" then
  arms, lrs = { 1, 2, 3, 4 }, { 2 }
else
  arms, lrs = { 1, 2 }, { 2 }
end
local epochs = P == "smoke" and math.min(args.epochs, 2) or args.epochs
local patience = args.patience > 0 and args.patience or nil

local configs = {}
for _, li in ipairs(lrs) do
  for _, a in ipairs(arms) do
    local row = POST_TABLE[a]
    configs[#configs + 1] = { arm = a, style = row[2], seq = row[3], n = row[4], lr = LRS[li] }
  end
end

local sweep = rep:sweep {
  name = "runs",
  configs = configs,
  seeds = experiment.seeds(args, { quick = 2, full = 2, smoke = 1 }),
  meta = { corpus = corpus_name, train_tokens = train_ids:numel(), val_tokens = val_ids:numel(),
    vocab = V, epochs = epochs, patience = patience or 0 },
  run = function(cfg, seed, run)
    local m = WordRNN.new { vocab = V, embed = 50, hidden = 100, keep = 0.8 }
    local total, done_epochs = nil, 0
    local r = WordRNN.fit {
      model = m, train = train_ids, val = val_ids, style = cfg.style, seq = cfg.seq, n = cfg.n,
      lr = cfg.lr, batch = 32, epochs = epochs, patience = patience, val_carried = true,
      on_step = function(k, spe)
        total = total or epochs * spe
        run:progress(math.min(total, done_epochs * spe + k), total)
      end,
      on_epoch = function(e, v, tl)
        done_epochs = e
        run:log("epoch %d: train %.4f, validation %.4f", e, tl, v)
      end,
    }
    return { min_val = r.min_val, best_epoch = r.best_epoch, epochs = r.epochs,
      stopped_early = r.stopped_early, val = r.val, train = r.train,
      val_carried = r.val_carried, steps_per_epoch = r.steps_per_epoch }
  end,
}
local records = sweep:run()

-- ---------------------------------------------------------------------------------------
-- Tables

local function fmt_list(xs, f)
  local s = {}
  for i, v in ipairs(xs) do s[i] = string.format(f or "%d", v) end
  return table.concat(s, ", ")
end

local slice_note = (train_ids:numel() < corpus.train:numel())
  and string.format("first %dk training tokens", math.floor(train_ids:numel() / 1000 + 0.5))
  or "all training tokens"
local by_arm = {}
local rows = {}
for _, li in ipairs(lrs) do
  for _, a in ipairs(arms) do
    local row = POST_TABLE[a]
    local recs = sweep:select(function(c) return c.arm == a and c.lr == LRS[li] end)
    local mins, best, ran, carried = {}, {}, {}, {}
    for i, r in ipairs(recs) do
      mins[i], best[i], ran[i] = r.result.min_val, r.result.best_epoch, r.result.epochs
      local mc = math.huge
      for _, v in ipairs(r.result.val_carried or {}) do mc = math.min(mc, v) end
      carried[i] = mc
    end
    by_arm[a .. "@" .. li] = { mins = mins, carried = carried }
    rows[#rows + 1] = {
      what = string.format("%s, lr %g", row[1], LRS[li]), recur = mins, post = row[5][li],
      tag = "V-code",
      note = string.format("recur: %s, %s; post: PTB. Best epoch %s of %s run%s", corpus_name,
        slice_note, fmt_list(best), fmt_list(ran),
        patience and string.format(" (stop after %d without a better one)", patience) or ""),
    }
  end
end
rep:table { title = "Minimum validation loss in " .. epochs .. " epochs (nats/word)", rows = rows }

local target_rows = {}
for _, pair in ipairs { { 1, 2, 5 }, { 3, 4, 10 } } do
  local t, f = by_arm[pair[1] .. "@2"], by_arm[pair[2] .. "@2"]
  if t and f then
    local d = stats.mean(t.mins) - stats.mean(f.mins)
    local w = (#t.mins > 1 and #f.mins > 1) and stats.welch(t.mins, f.mins) or nil
    local st, sf = stats.summary(t.mins), stats.summary(f.mins)
    target_rows[#target_rows + 1] = {
      what = string.format("n = %d, lr 0.001: true minus TF style (min validation loss)", pair[3]),
      recur = d, post = POST_TABLE[pair[1]][5][2] - POST_TABLE[pair[2]][5][2], tag = "V-code",
      target = { max = 0 }, digits = 3,
      note = string.format("true %.3f ± %.3f vs TF %.3f ± %.3f (mean ± sd, %d seeds)%s; %s",
        st.mean, st.std or 0, sf.mean, sf.std or 0, st.n,
        w and string.format(", Welch p = %.2g", w.p) or "", corpus_name),
    }
    target_rows[#target_rows + 1] = {
      what = string.format("n = %d: the same from the training's final state (diagnostic)", pair[3]),
      recur = stats.mean(t.carried) - stats.mean(f.carried), digits = 3,
      note = string.format("validation started from the last training state, not zeros: true %.3f vs TF %.3f",
        stats.mean(t.carried), stats.mean(f.carried)),
    }
  end
end
if #target_rows > 0 then
  rep:table { title = "True BPTT against TF style at equal n", rows = target_rows }
end

local post_mean_ratio = stats.mean(POST_RATIOS)
local ratio_rows = {}
for i = 1, 19 do
  local per = {}
  for s, p in ipairs(probe) do per[s] = p.ratios[i] end
  ratio_rows[i] = { what = string.format("%d / %d steps back", 20 - i, 21 - i), recur = per,
    post = POST_RATIOS[i], tag = "V-copy", digits = 3 }
end
local means, mins, maxs, near, far = {}, {}, {}, {}, {}
for s, p in ipairs(probe) do
  local sm = stats.summary(p.ratios)
  means[s], mins[s], maxs[s] = sm.mean, sm.min, sm.max
  near[s], far[s] = p.by_distance[1], p.by_distance[20]
end
local probe_note = string.format("recur: %s, %d initialisation%s; post: PTB, one", corpus_name,
  #probe, #probe > 1 and "s" or "")
ratio_rows[#ratio_rows + 1] = { what = "mean of the 19 ratios", recur = means, post = post_mean_ratio,
  tag = "V-copy", target = { range = { 2, 5 } }, digits = 3, note = probe_note }
ratio_rows[#ratio_rows + 1] = { what = "smallest ratio", recur = mins, post = 2.51, tag = "V-code",
  digits = 3 }
ratio_rows[#ratio_rows + 1] = { what = "largest ratio", recur = maxs, post = 4.30, tag = "V-code",
  digits = 3 }
ratio_rows[#ratio_rows + 1] = { what = "L1 contribution, 1 step back (nearest)", recur = near,
  post = 97.8, tag = "V-code", digits = 3, note = "sums over 20 losses x 200 examples" }
ratio_rows[#ratio_rows + 1] = { what = "L1 contribution, 20 steps back (farthest)", recur = far,
  post = 5.29e-8, tag = "V-code", digits = 3 }
rep:table { title = "Gradient decay: the ratio of consecutive distances' L1 contributions", rows = ratio_rows }

rep:table {
  title = "Checks and timing",
  rows = {
    { what = "max |true - TF style| gradient, num_steps = bptt_steps = 7", recur = check.max_abs,
      post = 1e-4, tag = "V-code", target = { max = 1e-4 }, digits = 3,
      note = string.format("all parameters, no dropout, batch 32 (largest gradient entry %.3g); post: agrees within 1e-4",
        check.max_grad) },
    { what = "time of one gradient evaluation, true / TF style", recur = timing.ratio,
      post = 173 / 80.2, tag = "V-code", digits = 3,
      note = string.format("num_steps 40, bptt 20, batch 200, state 4; medians of %d interleaved reps "
        .. "(true %.1f ms, TF %.1f ms wall on a shared machine; per-pair ratio sd %.2f); the post's "
        .. "true BPTT added gradient ops per step (redundant work), recur's runs the windows as one batch",
        timing.reps, timing.true_ms, timing.tf_ms,
        #timing.pair_ratios > 1 and stats.std(timing.pair_ratios) or 0) },
  },
}

-- ---------------------------------------------------------------------------------------
-- Figures

local series = {}
local ks = {}
for k = 1, 20 do ks[k] = k end
for _, p in ipairs(probe) do
  series[#series + 1] = { name = "recur, seed " .. p.seed, x = ks, y = p.by_distance }
end
local post_near_first = {}
for k = 1, 20 do post_near_first[k] = POST_DECAY[21 - k] end
series[#series + 1] = { name = "post (PTB)", x = ks, y = post_near_first }
rep:figure { name = "decay", kind = "lines", logy = true,
  title = "L1 norm of each backprop distance's contribution to the cell's gradient",
  xlabel = "steps back (1 = the step's own weights)", ylabel = "L1 norm", series = series }

local curves = {}
for _, r in ipairs(records) do
  local xs = {}
  for e = 1, #r.result.val do xs[e] = e end
  local row = POST_TABLE[r.config.arm]
  curves[#curves + 1] = { name = string.format("%s lr %g seed %d", row[1], r.config.lr, r.seed),
    x = xs, y = r.result.val }
end
rep:figure { name = "curves", kind = "lines", title = "Validation loss after each epoch",
  xlabel = "epoch", ylabel = "validation loss (nats/word)", series = curves }

-- ---------------------------------------------------------------------------------------
-- Notes and data

rep:note(split_note .. ". The post's numbers are PTB's (a different corpus, 10k vocabulary too); "
  .. "recur's are Brown's, so only the comparisons within a column carry over.")
if P == "quick" then
  rep:note(string.format("--quick runs the lr 0.001 column for n = 5 and 10 on the first %d training "
    .. "and %d validation tokens (the full vocabulary), %d seeds: a few hundred optimizer steps, "
    .. "far from the post's 20 epochs of PTB; --full runs the post's table on all of Brown.",
    train_ids:numel(), val_ids:numel(), #experiment.seeds(args, { quick = 2, full = 2, smoke = 1 })))
end
if P == "full" and (train_ids:numel() < corpus.train:numel() or val_ids:numel() < corpus.val:numel()) then
  rep:note(string.format("This --full run is REDUCED: the post's whole table (7 rows x 3 learning "
    .. "rates, %d epochs) but on the first %d training and %d validation tokens of %s (of %d and "
    .. "%d), %d seed%s per cell; all of Brown is about %d times the training tokens and did not fit "
    .. "the time at hand. Read it for the comparisons within a column, not for the level.",
    epochs, train_ids:numel(), val_ids:numel(), corpus_name, corpus.train:numel(),
    corpus.val:numel(), #sweep.seeds, #sweep.seeds == 1 and "" or "s",
    math.floor(corpus.train:numel() / train_ids:numel() + 0.5)))
end
rep:note("Model and training as the post's code: embedding 50, dropout keep 0.8 on the inputs and "
  .. "the outputs, vanilla tanh RNN 100 (concat form), softmax over the vocabulary, batch 32, Adam, "
  .. "the state carried across batches and reset at each epoch, validation from a zero state "
  .. "with keep 1. Initialisation as tf.get_variable's: Glorot-uniform (the cell's W as one "
  .. "[150, 100] matrix), zero biases; recur.rnn's own default differs (each of W_x, W_h uniform "
  .. "in +-1/sqrt(H)). Adam's epsilon as TensorFlow's (1e-8 beside the uncorrected sqrt(v); "
  .. "recur's Adam is given eps = 1e-8 / sqrt(1 - 0.999^t)). True BPTT's embedding and cell "
  .. "gradients are divided by batch * n as in the post; the softmax layer gets the mean-loss "
  .. "gradient. The carried training state is the post's final_state, the last output after "
  .. "its dropout. " .. (patience and string.format("Runs stop after %d epochs without a better "
  .. "validation loss (allowed by the issue; each row says where its runs stopped).", patience)
  or "No early stopping."))
rep:note("Decay probe as the post's: an untrained model (embedding 50, state 4), the first batch "
  .. "of the training stream (batch 200, num_steps 40), no dropout; for each of the losses at "
  .. "steps 21..40, the gradient with respect to per-step copies of the cell's W = [W_x; W_h] "
  .. "at its own step and the 19 before, summed over the losses per distance, then the L1 norm.")
rep:set("runs", records)
rep:set("probe", probe)
rep:set("timing", timing)
rep:set("gradient_check", check)
rep:save()
