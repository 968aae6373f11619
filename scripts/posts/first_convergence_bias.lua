-- Reproduces R2RT's "First Convergence Bias" (r2rt-reference.md, section 9): a 784-100-100-100
-- tanh net with a softmax head on each hidden layer, trained on the first 1,000 MNIST training
-- images in fixed order, either all at once (1,000 steps on head 3) or layer-wise (200 steps on
-- head 1, 200 on head 2, then the same 1,000 steps); head 3's test accuracy over many fresh
-- initialisations per arm, the two distributions compared. Data and initial values:
-- models/r2rt_mnist.lua.
-- section: 9
local recur = require "recur"
local nn = recur.nn
local experiment = require "recur.experiment"
local stats = experiment.stats
local mn = require "models.r2rt_mnist"

local args = experiment.cli(arg, {
  prog = "first_convergence_bias",
  name = "recur scripts/posts/first_convergence_bias.lua",
  about = "First Convergence Bias: does supervised layer-wise pre-training (200 steps on head 1, 200 on\n"
    .. "head 2) before the 1,000 steps of full training give better minima than full training alone?\n"
    .. "784-100-100-100 tanh, a softmax head per hidden layer, truncated normal 0.1 / biases 0.1, the\n"
    .. "first 1,000 training images of the 55k split in fixed order, batches of 50, batch-summed\n"
    .. "cross-entropy, SGD 0.01 then 0.003 from step 750; head 3's accuracy on the 10,000 test images.\n"
    .. "--quick (default): 50 runs per arm; --full: 400 per arm (the notebook's count); --smoke: 2 runs\n"
    .. "per arm with fewer steps (synthetic digits when MNIST is not installed).",
})

local function pick(by) return experiment.pick(args, by) end
local P = {
  runs = #experiment.seeds(args, { smoke = 2, quick = 50, full = 400 }),
  steps = pick { smoke = 100, quick = 1000, full = 1000 },
  drop_at = pick { smoke = 75, quick = 750, full = 750 }, -- lr 0.01 for steps < 750 (0-based), then 0.003
  pre_steps = pick { smoke = 20, quick = 200, full = 200 },
  train_images = 1000, batch = 50,
}

local rep = experiment.report {
  post = "first_convergence_bias", title = "First Convergence Bias", section = 9,
  profile = args.profile, out = args.out, figures = args.figures, resume = args.resume,
}

local d = mn.load { smoke = args.profile == "smoke" }
-- the notebook's mnist.train.images[start:end]: the first 1,000 of the 55,000 training images,
-- start = (50 i) % 1000: twenty fixed batches, views of one storage
local batches = {}
for k = 1, P.train_images // P.batch do
  local s = (k - 1) * P.batch + 1
  batches[k] = { x = d.train.x:narrow(1, s, P.batch):contiguous(), y = d.train.y:narrow(1, s, P.batch):contiguous() }
end
local test_x, test_y = d.test.x:contiguous(), d.test.y:contiguous()

-- The notebook's graph: l_k = tanh(l_{k-1} W_k + b_k), y_k = softmax(l_k V_k + c_k)
local Net = nn.Module:extend("FCBNet")
function Net:init()
  self.l1, self.h1 = mn.linear(784, 100), mn.linear(100, 10)
  self.l2, self.h2 = mn.linear(100, 100), mn.linear(100, 10)
  self.l3, self.h3 = mn.linear(100, 100), mn.linear(100, 10)
end
-- the logits of head k (1, 2 or 3)
function Net:forward(x, k)
  k = k or 3
  local h = self.l1(x):tanh()
  if k == 1 then return self.h1(h) end
  h = self.l2(h):tanh()
  if k == 2 then return self.h2(h) end
  return self.h3(self.l3(h):tanh())
end

-- minimize(ce_k) trains every variable upstream of head k: one SGD per head over that subset
local function params(mods)
  local ps = {}
  for _, m in ipairs(mods) do
    for _, p in ipairs(m:parameters()) do ps[#ps + 1] = p end
  end
  return ps
end

local function train(model, head, opt, steps, lr_of)
  for i = 0, steps - 1 do
    local b = batches[i % #batches + 1]
    opt:set_lr(lr_of(i))
    model:zero_grad()
    nn.cross_entropy(model(b.x, head), b.y, { reduction = "sum" }):backward()
    opt:step()
  end
end

local function one_run(arm, seed)
  -- a fresh initialisation per run and per arm: arm 2's run s draws from seed 1000000 + s, so
  -- the two arms' networks are independent, as the notebook's two loops
  if arm == 2 then recur.seed(1000000 + seed) end
  local t0 = recur.now()
  local model = Net()
  local opts = {}
  for k, group in ipairs { { model.l1, model.h1 }, { model.l1, model.l2, model.h2 },
    { model.l1, model.l2, model.l3, model.h3 } } do
    opts[k] = recur.optim.SGD(params(group), { lr = 0.01 })
  end
  local const = function() return 0.01 end
  if arm == 2 then
    train(model, 1, opts[1], P.pre_steps, const)
    train(model, 2, opts[2], P.pre_steps, const)
  end
  train(model, 3, opts[3], P.steps, function(i) return i < P.drop_at and 0.01 or 0.003 end)
  local acc, acc1 = recur.no_grad(function()
    return mn.accuracy(model(test_x, 3), test_y), mn.accuracy(model(batches[1].x, 3), batches[1].y)
  end)
  return { accuracy = acc, first_batch_accuracy = acc1, seconds = recur.now() - t0 }
end

local seeds = experiment.seeds(args, P.runs)
local sweep = rep:sweep {
  name = "runs",
  configs = { { arm = 1 }, { arm = 2 } },
  seeds = seeds,
  meta = { profile = args.profile, steps = P.steps, pre_steps = P.pre_steps, data = d.source, result_version = 1 },
  run = function(cfg, seed, run)
    local r = one_run(cfg.arm, seed)
    run:progress(1, 1)
    if seed % 50 == 0 or args.profile == "smoke" then
      run:log("test accuracy %.4f (%.2f s)", r.accuracy, r.seconds)
    end
    return r
  end,
}
local records = sweep:run()
local function arm_values(arm, field)
  return sweep:values(sweep:select(function(c) return c.arm == arm end), field)
end
local all, layer = arm_values(1, "accuracy"), arm_values(2, "accuracy")

-- np.std is the population std (ddof 0), what the notebook printed
local function pop_std(xs)
  if #xs < 2 then return 0 end
  return stats.std(xs) * math.sqrt((#xs - 1) / #xs)
end
local diff = stats.mean(all) - stats.mean(layer)
local w = (#all > 1 and #layer > 1) and stats.welch(all, layer) or { t = 0 / 0, df = 0 / 0, p = 0 / 0 }
local synthetic = d.synthetic and "synthetic digits, not MNIST" or nil
rep:table {
  title = string.format("Head 3's test accuracy over %d fresh initialisations per arm", #seeds),
  rows = {
    { what = "all layers: mean", recur = stats.mean(all), n = #all, post = 0.87867, tag = "V-mirror",
      target = { near = 0.87867, tol = 0.003 }, note = synthetic },
    { what = "all layers: std (np.std, ddof 0)", recur = pop_std(all), n = #all, post = 0.00274, tag = "V-mirror",
      target = { range = { 0.0015, 0.004 } } },
    { what = "layer-wise: mean", recur = stats.mean(layer), n = #layer, post = 0.876439, tag = "V-mirror",
      target = { near = 0.876439, tol = 0.003 }, note = synthetic },
    { what = "layer-wise: std (np.std, ddof 0)", recur = pop_std(layer), n = #layer, post = 0.00234, tag = "V-mirror",
      target = { range = { 0.0015, 0.004 } } },
    { what = "all layers minus layer-wise", recur = diff, post = 0.87867 - 0.876439, tag = "V-mirror",
      target = { min = 0 }, note = "the post's sign: all layers at once is better" },
    { what = "Welch's t", recur = w.t, digits = 4 },
    { what = "Welch's p (two-sided)", recur = w.p, digits = 3, target = { max = 0.01 },
      note = string.format("df %.1f", w.df) },
  },
}

local range = function(xs)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(xs) do lo, hi = math.min(lo, v), math.max(hi, v) end
  return lo, hi
end
local lo1, hi1 = range(all)
local lo2, hi2 = range(layer)
local secs = {}
for _, r in ipairs(records) do secs[#secs + 1] = r.result.seconds end
rep:table {
  title = "Spread and cost",
  rows = {
    { what = "all layers: min .. max", recur = string.format("%.4f .. %.4f", lo1, hi1), note = "post: individual runs fall in 86% .. 89% [V-mirror]" },
    { what = "layer-wise: min .. max", recur = string.format("%.4f .. %.4f", lo2, hi2), note = "post: individual runs fall in 86% .. 89% [V-mirror]" },
    { what = "all layers: accuracy on its first training batch", recur = arm_values(1, "first_batch_accuracy") },
    { what = "seconds per run (training + test), wall", recur = secs,
      note = "wall time on a shared 2-core machine: an upper bound of the CPU time" },
  },
}

rep:figure {
  name = "accuracy", kind = "histograms", density = true, kde = true, bins = pick { smoke = 5, quick = 15, full = 30 },
  title = string.format("Head 3 test accuracy, %d runs per arm (histogram and Gaussian KDE)", #seeds),
  xlabel = "test accuracy", series = {
    { name = "train all layers", values = all },
    { name = "train layer-by-layer", values = layer },
  },
}

rep:note(string.format("Settings as the notebook's: plain SGD over the variables upstream of each head (one "
  .. "optimizer per head, as TF's minimize(ce_k)), the batch-summed cross-entropy computed from the logits "
  .. "(the notebook takes log of the softmax; the same value without its underflow), batches start = "
  .. "(50 i) %% 1000 with i counted from 0 in each phase, truncated normal 0.1 weights and 0.1 biases. The "
  .. "notebook ran 400 networks per arm (the text says 500) and printed np.std, the population std; the "
  .. "std rows do the same. Each run is a fresh initialisation from its own seed (arm 2's seeds offset by "
  .. "1,000,000, so the arms do not share initial values). Over %d runs per arm recur finds %.5f (all "
  .. "layers) and %.5f (layer-wise): a difference of %.5f with Welch's p = %.3g.",
  #seeds, stats.mean(all), stats.mean(layer), diff, w.p))
rep:set("profile_settings", P)
rep:set("runs", records)
rep:save()
