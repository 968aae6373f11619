-- R2RT's "Preliminary Note on the Complexity of a Neural Network" (r2rt-reference.md, section 8)
-- is a discussion with no numbers: network structure, training methodology and regularisers are
-- different in concept but all contribute to a network's effective complexity. This script makes
-- that measurable (recur's design, not the post's): on the first 1,000 MNIST training images,
-- the train - validation accuracy gap as a function of (a) width and depth at equal training,
-- (b) training length, (c) regularisers (dropout, L2 weight decay, binary stochastic hidden units),
-- over seeds, with each architecture's parameter count and multiply-adds from summary(). Data and
-- initial values: models/r2rt_mnist.lua; the network: models/mlp.lua, or for the binary net the
-- same layers with nn.BinaryStochastic in place of tanh (docs/nn.md, "Binary stochastic neurons").
-- section: 8
local recur = require "recur"
local nn = recur.nn
local experiment = require "recur.experiment"
local stats = experiment.stats
local mn = require "models.r2rt_mnist"
local MLP = require "models.mlp"

local args = experiment.cli(arg, {
  prog = "complexity",
  name = "recur scripts/posts/complexity.lua",
  about = "The complexity of a network, measured: the train - validation accuracy gap of tanh MLPs trained\n"
    .. "on the first 1,000 MNIST training images (validation: the 5,000 images of the 55k split's\n"
    .. "validation set), as width and depth, training length and regularisers (dropout, L2 weight\n"
    .. "decay, binary stochastic hidden units) change. SGD 0.01 on the batch-summed cross-entropy,\n"
    .. "batches of 50 reshuffled each pass, truncated normal 0.1 / biases 0.1 (the First Convergence\n"
    .. "Bias setup). The binary net is the base net with nn.BinaryStochastic in place of tanh:\n"
    .. "sigmoid-adjusted straight-through, slope 1 (no annealing), stochastic in training,\n"
    .. "deterministic in evaluation (the Binary Stochastic Neurons post's Experiment 5 style).\n"
    .. "--quick (default): 5 seeds; --full: 10 seeds; --smoke: 1 seed, short runs.",
})

local function pick(by) return experiment.pick(args, by) end
local P = {
  seeds = #experiment.seeds(args, { smoke = 1, quick = 5, full = 10 }),
  steps = pick { smoke = 40, quick = 1000, full = 1000 }, -- "equal training" for (a) and (c)
  long = pick { smoke = 80, quick = 4000, full = 8000 },  -- the base config's run, for (b)
  train_images = 1000, batch = 50, lr = 0.01,
  base = { width = 100, depth = 2 },
}
-- the checkpoints of (b): steps at which the base run is evaluated
P.checkpoints = {}
for _, s in ipairs { 25, 50, 100, 200, 500, 1000, 2000, 4000, 8000 } do
  if s <= P.long then P.checkpoints[#P.checkpoints + 1] = s end
end
if P.checkpoints[#P.checkpoints] ~= P.long then P.checkpoints[#P.checkpoints + 1] = P.long end
if args.profile == "smoke" then P.checkpoints = { 20, 40, 80 } end

local rep = experiment.report {
  post = "complexity", title = "Preliminary Note on the Complexity of a Neural Network", section = 8,
  profile = args.profile, out = args.out, figures = args.figures, resume = args.resume,
}

local d = mn.load { smoke = args.profile == "smoke" }
local train = { x = d.train.x:narrow(1, 1, P.train_images):contiguous(), y = d.train.y:narrow(1, 1, P.train_images):contiguous() }
local val = { x = d.val.x:contiguous(), y = d.val.y:contiguous() }

local function hidden_of(width, depth)
  local h = {}
  for i = 1, depth do h[i] = width end
  return h
end
-- The binary net: the MLP's layers (same sizes and initial values) with each tanh replaced by a
-- binary stochastic unit, sigmoid-adjusted straight-through at slope 1, sampled in train() and
-- rounded in eval().
local function build_binary(cfg)
  local layers, n_in = {}, 784
  for _, h in ipairs(hidden_of(cfg.width, cfg.depth)) do
    layers[#layers + 1] = mn.linear(n_in, h)
    layers[#layers + 1] = nn.BinaryStochastic { estimator = "sigmoid_adjusted", slope = 1,
      train = "stochastic", eval = "deterministic" }
    n_in = h
  end
  layers[#layers + 1] = mn.linear(n_in, 10)
  return nn.Sequential(layers)
end
local function build(cfg)
  if cfg.binary then return build_binary(cfg) end
  return MLP { input = 784, hidden = hidden_of(cfg.width, cfg.depth), classes = 10, activation = "tanh",
    dropout = cfg.dropout, weight_init = mn.weight_init, bias_init = mn.bias_init }
end

local configs = {}
local function add(c)
  c.dropout, c.l2 = c.dropout or 0, c.l2 or 0
  c.steps = c.steps or P.steps
  configs[#configs + 1] = c
end
-- the base run, trained long: (b), and the reference point of (a) and (c) at P.steps
add { width = P.base.width, depth = P.base.depth, steps = P.long }
for _, depth in ipairs { 1, 3 } do add { width = P.base.width, depth = depth } end        -- (a) depth
for _, width in ipairs { 25, 400 } do add { width = width, depth = P.base.depth } end     -- (a) width
for _, p in ipairs { 0.25, 0.5 } do add { width = P.base.width, depth = P.base.depth, dropout = p } end -- (c)
local L2S = { 0.01, 0.1, 1 }
for _, l2 in ipairs(L2S) do add { width = P.base.width, depth = P.base.depth, l2 = l2 } end       -- (c)
local BINARY = { width = P.base.width, depth = P.base.depth, binary = true }
add { width = BINARY.width, depth = BINARY.depth, binary = true }                                   -- (c)

local function evaluate(model, set)
  model:eval()
  local acc, ce = recur.no_grad(function()
    local logits = model(set.x)
    return mn.accuracy(logits, set.y), nn.cross_entropy(logits, set.y):item()
  end)
  model:train()
  return acc, ce
end

local sweep = rep:sweep {
  name = "runs", configs = configs, seeds = experiment.seeds(args, P.seeds),
  meta = { profile = args.profile, data = d.source, lr = P.lr, checkpoints = P.checkpoints, result_version = 1 },
  run = function(cfg, seed, run)
    local model = build(cfg)
    local opt = recur.optim.SGD(model, { lr = P.lr, weight_decay = cfg.l2 })
    local evals, at, k = {}, {}, 1
    for _, s in ipairs(P.checkpoints) do at[s] = true end
    at[P.steps], at[cfg.steps] = true, true
    local step = 0
    for x, y in recur.data.batches(train, { batch = P.batch, shuffle = true, steps = cfg.steps }) do
      step = step + 1
      opt:zero_grad()
      nn.cross_entropy(model(x), y, { reduction = "sum" }):backward()
      opt:step()
      if at[step] then
        local ta, tl = evaluate(model, train)
        local va, vl = evaluate(model, val)
        evals[k] = { step = step, train_acc = ta, val_acc = va, train_ce = tl, val_ce = vl, gap = ta - va }
        k = k + 1
      end
      if step % 200 == 0 then run:progress(step, cfg.steps) end
    end
    local at_equal
    for _, e in ipairs(evals) do if e.step == P.steps then at_equal = e end end
    return { evals = evals, gap = at_equal.gap, train_acc = at_equal.train_acc, val_acc = at_equal.val_acc,
      val_ce = at_equal.val_ce, train_ce = at_equal.train_ce }
  end,
}
sweep:run()

local function same(c, o)
  return c.width == o.width and c.depth == o.depth and c.dropout == (o.dropout or 0) and c.l2 == (o.l2 or 0)
    and (c.binary or false) == (o.binary or false)
end
local function values(o, field)
  return sweep:values(sweep:select(function(c) return same(c, o) end), field)
end
local synthetic = d.synthetic and "synthetic digits, not MNIST" or nil
-- the cross-entropy gap (validation minus train, nats per example), per seed: where every net
-- reaches 100% training accuracy the accuracy gap is 1 - validation accuracy, the loss still moves
local function ce_gap(o)
  local v, t, g = values(o, "val_ce"), values(o, "train_ce"), {}
  for i = 1, #v do g[i] = v[i] - t[i] end
  return g
end

-- (a) width and depth
local arch = {
  { width = 100, depth = 1 }, { width = 100, depth = 2 }, { width = 100, depth = 3 },
  { width = 25, depth = 2 }, { width = 400, depth = 2 },
}
local rows, sizes = {}, {}
for _, a in ipairs(arch) do
  local params, macs = mn.size_of(build { width = a.width, depth = a.depth, dropout = 0 }, { 784 })
  sizes[a.width .. "x" .. a.depth] = { params = params, macs = macs }
  rows[#rows + 1] = { what = string.format("%s: %s parameters, %s mult-adds per example",
    table.concat(hidden_of(a.width, a.depth), "-"), params, macs), recur = values(a, "gap"), digits = 4,
    note = synthetic }
end
for _, a in ipairs(arch) do
  rows[#rows + 1] = { what = string.format("%s: cross-entropy gap (validation - train, nats)", table.concat(hidden_of(a.width, a.depth), "-")),
    recur = ce_gap(a), digits = 4 }
end
for _, a in ipairs(arch) do
  rows[#rows + 1] = { what = string.format("%s: train / validation accuracy", table.concat(hidden_of(a.width, a.depth), "-")),
    recur = string.format("%.4f / %.4f", stats.mean(values(a, "train_acc")), stats.mean(values(a, "val_acc"))) }
end
rep:table { title = string.format("(a) Width and depth: train - validation accuracy gap after %d steps (tanh, no regulariser)",
  P.steps), rows = rows }

-- (b) training length: the base config's checkpoints
local base_runs = sweep:select(function(c) return same(c, P.base) end)
local by_step = {}
for _, r in ipairs(base_runs) do
  for _, e in ipairs(r.result.evals) do
    by_step[e.step] = by_step[e.step] or { gap = {}, train = {}, val = {}, val_ce = {}, ce_gap = {} }
    local b = by_step[e.step]
    b.gap[#b.gap + 1], b.train[#b.train + 1], b.val[#b.val + 1], b.val_ce[#b.val_ce + 1] = e.gap, e.train_acc, e.val_acc, e.val_ce
    b.ce_gap[#b.ce_gap + 1] = e.val_ce - e.train_ce
  end
end
local steps_sorted = {}
for s in pairs(by_step) do steps_sorted[#steps_sorted + 1] = s end
table.sort(steps_sorted)
rows = {}
for _, s in ipairs(steps_sorted) do
  local b = by_step[s]
  rows[#rows + 1] = { what = string.format("%d steps (%.1f passes): gap; train / val accuracy %.4f / %.4f; val CE %.3f, CE gap %.3f",
    s, s * P.batch / P.train_images, stats.mean(b.train), stats.mean(b.val), stats.mean(b.val_ce), stats.mean(b.ce_gap)),
    recur = b.gap, digits = 4 }
end
rep:table { title = string.format("(b) Training length: the %d-%d net's gap during training", P.base.width, P.base.width),
  rows = rows }

-- (c) regularisers
rows = { { what = "none", recur = values(P.base, "gap"), digits = 4 } }
for _, p in ipairs { 0.25, 0.5 } do
  local o = { width = P.base.width, depth = P.base.depth, dropout = p }
  rows[#rows + 1] = { what = string.format("dropout p = %.2f (val accuracy %.4f)", p, stats.mean(values(o, "val_acc"))),
    recur = values(o, "gap"), digits = 4 }
end
for _, l2 in ipairs(L2S) do
  local o = { width = P.base.width, depth = P.base.depth, l2 = l2 }
  rows[#rows + 1] = { what = string.format("L2 weight decay %g (val accuracy %.4f)", l2, stats.mean(values(o, "val_acc"))),
    recur = values(o, "gap"), digits = 4 }
end
rows[#rows + 1] = { what = string.format("binary stochastic hidden units, sigmoid-adjusted ST, slope 1 (val accuracy %.4f; train %.4f)",
  stats.mean(values(BINARY, "val_acc")), stats.mean(values(BINARY, "train_acc"))), recur = values(BINARY, "gap"), digits = 4,
  note = "stochastic in training, deterministic (round(sigm(a))) in evaluation, where both accuracies are measured" }
rows[#rows + 1] = { what = "none: cross-entropy gap (validation - train, nats)", recur = ce_gap(P.base), digits = 4 }
for _, p in ipairs { 0.25, 0.5 } do
  rows[#rows + 1] = { what = string.format("dropout p = %.2f: cross-entropy gap", p),
    recur = ce_gap { width = P.base.width, depth = P.base.depth, dropout = p }, digits = 4 }
end
for _, l2 in ipairs(L2S) do
  rows[#rows + 1] = { what = string.format("L2 weight decay %g: cross-entropy gap", l2),
    recur = ce_gap { width = P.base.width, depth = P.base.depth, l2 = l2 }, digits = 4 }
end
rows[#rows + 1] = { what = "binary stochastic hidden units: cross-entropy gap", recur = ce_gap(BINARY), digits = 4 }
rep:table { title = string.format("(c) Regularisers on the %d-%d net: gap after %d steps", P.base.width, P.base.width, P.steps),
  rows = rows }

-- the three figures
local function mean_of(o, field) return stats.mean(values(o, field)) end
local sx, sy, dx, dy = {}, {}, {}, {}
for _, w in ipairs { 25, 100, 400 } do
  sx[#sx + 1], sy[#sy + 1] = sizes[w .. "x2"].params, mean_of({ width = w, depth = 2 }, "gap")
end
for _, dd in ipairs { 1, 2, 3 } do
  dx[#dx + 1], dy[#dy + 1] = sizes["100x" .. dd].params, mean_of({ width = 100, depth = dd }, "gap")
end
rep:figure { name = "architecture", kind = "lines", logx = true,
  title = string.format("(a) Gap after %d steps vs parameters (mean of %d seeds)", P.steps, P.seeds),
  xlabel = "parameters", ylabel = "train - validation accuracy",
  series = { { name = "depth 2, width 25 / 100 / 400", x = sx, y = sy },
    { name = "width 100, depth 1 / 2 / 3", x = dx, y = dy } } }
local bx, bg, bt, bv, bc = {}, {}, {}, {}, {}
for i, s in ipairs(steps_sorted) do
  bx[i], bg[i], bt[i], bv[i] = s, stats.mean(by_step[s].gap), stats.mean(by_step[s].train), stats.mean(by_step[s].val)
  bc[i] = stats.mean(by_step[s].ce_gap)
end
rep:figure { name = "length", kind = "lines", logx = true,
  title = string.format("(b) The %d-%d net during training (mean of %d seeds)", P.base.width, P.base.width, P.seeds),
  xlabel = "SGD steps of 50 (20 = one pass)", ylabel = "accuracy; nats",
  series = { { name = "train - validation gap", x = bx, y = bg }, { name = "train accuracy", x = bx, y = bt },
    { name = "validation accuracy", x = bx, y = bv },
    { name = "CE gap (val - train, nats)", x = bx, y = bc } } }
local base_gap = mean_of(P.base, "gap")
local dpx, dpy = { 0 }, { base_gap }
for _, p in ipairs { 0.25, 0.5 } do
  dpx[#dpx + 1], dpy[#dpy + 1] = p, mean_of({ width = P.base.width, depth = P.base.depth, dropout = p }, "gap")
end
local lx, ly = { 0 }, { base_gap }
for i, l2 in ipairs(L2S) do
  lx[#lx + 1], ly[#ly + 1] = i * 0.25, mean_of({ width = P.base.width, depth = P.base.depth, l2 = l2 }, "gap")
end
-- binary units have no strength: the series joins the tanh base net (0) to the binary net (1)
local bnx, bny = { 0, 1 }, { base_gap, mean_of(BINARY, "gap") }
rep:figure { name = "regularisers", kind = "lines",
  title = string.format("(c) Gap after %d steps vs regulariser strength (mean of %d seeds)", P.steps, P.seeds),
  xlabel = "dropout p; L2 0.01 / 0.1 / 1 at 0.25 / 0.5 / 0.75; binary at 1",
  ylabel = "train - validation accuracy",
  series = { { name = "dropout p", x = dpx, y = dpy }, { name = "L2 decay 0.01, 0.1, 1", x = lx, y = ly },
    { name = "binary ST units (at 1)", x = bnx, y = bny } } }

-- which knob moves the gap how much: from the means
local function ms(o) return string.format("%.4f", mean_of(o, "gap")) end
local first_b, last_b = steps_sorted[1], steps_sorted[#steps_sorted]
rep:note(string.format("What moves the gap (means over %d seeds; gaps in accuracy, train minus validation, the "
  .. "validation set being the 5,000 held-out images). (a) Width at depth 2: 25 / 100 / 400 units give %s / %s / "
  .. "%s; depth at width 100: 1 / 2 / 3 layers give %s / %s / %s. (b) Training length (the %d-%d net): %s after %d "
  .. "steps, %s after %d, %s after %d. (c) Dropout 0.25 / 0.5: %s / %s against %s without; L2 weight decay "
  .. "0.01 / 0.1 / 1: %s / %s / %s; binary stochastic hidden units: %s (train / validation accuracy %.4f / "
  .. "%.4f against %.4f / %.4f). The decay is SGD's weight_decay on the batch-summed loss (so 0.1 is 0.002 "
  .. "per example of a mean loss), applied to the biases too. The binary net is the base net with each tanh "
  .. "replaced by nn.BinaryStochastic (sigmoid-adjusted straight-through, slope 1, no annealing; sampled in "
  .. "training, rounded in evaluation, where both its accuracies are measured), trained with the same SGD "
  .. "0.01 for the same steps, nothing tuned. The post itself has no numbers; these are recur's own "
  .. "measurements of its argument.",
  P.seeds, ms { width = 25, depth = 2 }, ms { width = 100, depth = 2 }, ms { width = 400, depth = 2 },
  ms { width = 100, depth = 1 }, ms { width = 100, depth = 2 }, ms { width = 100, depth = 3 },
  P.base.width, P.base.width, string.format("%.4f", bg[1]), first_b, string.format("%.4f", base_gap), P.steps,
  string.format("%.4f", bg[#bg]), last_b,
  ms { width = 100, depth = 2, dropout = 0.25 }, ms { width = 100, depth = 2, dropout = 0.5 }, ms(P.base),
  ms { width = 100, depth = 2, l2 = 0.01 }, ms { width = 100, depth = 2, l2 = 0.1 }, ms { width = 100, depth = 2, l2 = 1 },
  ms(BINARY), mean_of(BINARY, "train_acc"), mean_of(BINARY, "val_acc"), mean_of(P.base, "train_acc"),
  mean_of(P.base, "val_acc")))
-- the verdict: each knob's move of the two gaps from the base net, largest first
local base_ce = stats.mean(ce_gap(P.base))
local moves = {}
local function move(name, o)
  moves[#moves + 1] = { name = name, acc = mean_of(o, "gap") - base_gap, ce = stats.mean(ce_gap(o)) - base_ce }
end
move("width 25", { width = 25, depth = 2 })
move("width 400", { width = 400, depth = 2 })
move("depth 1", { width = 100, depth = 1 })
move("depth 3", { width = 100, depth = 3 })
for _, p in ipairs { 0.25, 0.5 } do move("dropout " .. p, { width = 100, depth = 2, dropout = p }) end
for _, l2 in ipairs(L2S) do move("L2 " .. l2, { width = 100, depth = 2, l2 = l2 }) end
move("binary stochastic units", BINARY)
local bfirst, bbase = by_step[first_b], by_step[P.steps]
moves[#moves + 1] = { name = string.format("%d steps instead of %d", first_b, P.steps),
  acc = stats.mean(bfirst.gap) - base_gap, ce = stats.mean(bfirst.ce_gap) - stats.mean(bbase.ce_gap) }
moves[#moves + 1] = { name = string.format("%d steps instead of %d", last_b, P.steps),
  acc = stats.mean(by_step[last_b].gap) - base_gap, ce = stats.mean(by_step[last_b].ce_gap) - stats.mean(bbase.ce_gap) }
table.sort(moves, function(a, b) return math.abs(a.acc) > math.abs(b.acc) end)
-- how well the unregularised nets fit the training images, and when the base net first fits them all
local min_train = math.huge
for _, a in ipairs(arch) do min_train = math.min(min_train, stats.mean(values(a, "train_acc"))) end
local fit_at
for _, st in ipairs(steps_sorted) do
  if not fit_at and stats.mean(by_step[st].train) == 1 then fit_at = st end
end
local parts = {}
for _, m in ipairs(moves) do parts[#parts + 1] = string.format("%s %+.4f (CE gap %+.3f)", m.name, m.acc, m.ce) end
rep:note(string.format("Each knob's move of the %d-%d net's gaps after %d steps (accuracy gap %.4f, cross-entropy "
  .. "gap %.3f nats), largest accuracy move first: %s. The unregularised nets' lowest mean train accuracy after "
  .. "%d steps is %.4f; the base net first fits all %d images (mean over seeds) at %s, after which its accuracy "
  .. "gap is one minus its validation accuracy and only the cross-entropy gap still shows training length.",
  P.base.width, P.base.width, P.steps, base_gap, base_ce, table.concat(parts, "; "), P.steps, min_train,
  P.train_images, fit_at and (fit_at .. " steps") or "no checkpoint"))
rep:set("profile_settings", P)
rep:set("sizes", sizes)
rep:save()
