-- Reproduces R2RT's "Inverting a Neural Net" (r2rt-reference.md, section 10): a 784-100-100-10
-- sigmoid classifier, then learned inverse matrices w2_inv and w1_inv that map the last hidden
-- layer back to the image (through logit and the post's squash), trained on confident samples;
-- the inverse projections of the first 36 test digits, nine generated digits (a hidden layer
-- optimised for each class 1-9, then inverted) and the inverse projection of each hidden
-- feature. Data and initial values: models/r2rt_mnist.lua.
-- section: 10
local recur = require "recur"
local nn = recur.nn
local experiment = require "recur.experiment"
local stats = experiment.stats
local mn = require "models.r2rt_mnist"

local args = experiment.cli(arg, {
  prog = "inverting",
  name = "recur scripts/posts/inverting.lua",
  about = "Inverting a Neural Net: x -> sigm(x W1 + b1) -> sigm(l1 W2 + b2) -> softmax, truncated normal 0.1\n"
    .. "/ biases 0.1, Adagrad 0.01 (TF form), 2,000 steps of 1,000; then w2_inv and w1_inv trained\n"
    .. "(Adagrad 0.01, 1,000 steps of 1,000, samples with confidence > 0.8) to minimise the L1\n"
    .. "reconstruction loss plus the two range penalties. Prints the test accuracy beside 0.9521 and\n"
    .. "the nine generated digits' confidences beside the post's; draws the three image grids of the\n"
    .. "post (from the first seed). --quick (default): the post's step counts, 2 seeds; --full: 5 seeds;\n"
    .. "--smoke: 40 + 20 steps of 100 (synthetic digits when MNIST is not installed).",
})

local function pick(by) return experiment.pick(args, by) end
local P = {
  seeds = #experiment.seeds(args, { smoke = 1, quick = 2, full = 5 }),
  steps = pick { smoke = 40, quick = 2000, full = 2000 },
  inv_steps = pick { smoke = 20, quick = 1000, full = 1000 },
  batch = pick { smoke = 100, quick = 1000, full = 1000 },
  gen_steps = pick { smoke = 50, quick = 1000, full = 1000 },
  confidence = 0.8, lr = 0.01, gen_lr = 1.0,
}

local rep = experiment.report {
  post = "inverting", title = "Inverting a Neural Net", section = 10,
  profile = args.profile, out = args.out, figures = args.figures, resume = args.resume,
}

local d = mn.load { smoke = args.profile == "smoke" }
local test_x, test_y = d.test.x:contiguous(), d.test.y:contiguous()

local Net = nn.Module:extend("InvNet")
function Net:init()
  self.l1, self.l2, self.out = mn.linear(784, 100), mn.linear(100, 100), mn.linear(100, 10)
end
-- the logits and the last hidden layer
function Net:forward(x)
  local l2 = self.l2(self.l1(x):sigmoid()):sigmoid()
  return self.out(l2), l2
end

-- the post's logit(p) = log(p / (1 - p)), literally (a saturated p gives +-inf, as in TF)
local function logit(p) return (p / (1 - p)):log() end
-- the post's squash(p, 1): per row, shift to min 0, divide by the max, then into [0.005, 0.995]
local function squash(p)
  local q = p - p:min(2, true)
  return (q / q:max(2, true) - 0.5) * 0.99 + 0.5
end
local function tf_adagrad(params, lr)
  -- tf.train.AdagradOptimizer: accumulator starting at 0.1, no epsilon
  return recur.optim.Adagrad(params, { lr = lr, initial_accumulator = 0.1, eps = 0 })
end
local function frozen(t) return recur.no_grad(function() return t:clone() end) end
local function rows_to_list(t) -- [n, 784] -> [n, 28, 28]: n images for recur.plot
  return t:contiguous():view(t:size(1), 28, 28)
end
-- matplotlib's imshow scales each image to its own min..max: the figures do the same
local function autoscale(t)
  local lo, hi = t:min(2, true), t:max(2, true)
  return (t - lo) / (hi - lo + 1e-12)
end
local function count_nonfinite(t) return t:isfinite():eq(0):sum():item() end

local function one_run(seed, keep_images)
  local t0 = recur.now()
  local model = Net()
  local opt = tf_adagrad(model, P.lr)
  local nb = mn.NextBatch(d.train, P.batch)
  for _ = 1, P.steps do
    local x, y = nb:next()
    opt:zero_grad()
    nn.cross_entropy(model(x), y, { reduction = "sum" }):backward()
    opt:step()
  end
  local accuracy = recur.no_grad(function() return mn.accuracy(model(test_x), test_y) end)

  -- the inverse: only w2_inv and w1_inv are trained (the post's weight_variable for both)
  local w2_inv = nn.to_parameter(recur.truncated_normal({ 100, 100 }, { std = 0.1 }))
  local w1_inv = nn.to_parameter(recur.truncated_normal({ 100, 784 }, { std = 0.1 }))
  local b1, b2 = frozen(model.l1.bias), frozen(model.l2.bias)
  local function invert_pre(z2) -- z2 = logit(l2), the last hidden layer before its sigmoid
    local l1_inv = recur.matmul(z2 - b2, w2_inv)
    return recur.matmul(logit(squash(l1_inv)) - b1, w1_inv), l1_inv
  end
  local inv_opt = tf_adagrad({ w2_inv, w1_inv }, P.lr)
  local used, nonfinite_losses, last_loss = 0, 0, 0 / 0
  for _ = 1, P.inv_steps do
    local x = nb:next()
    local keep, l2 = recur.no_grad(function()
      local logits, l2 = model(x)
      local conf = logits:softmax(-1):max(2):totable()
      local keep = {}
      for i, c in ipairs(conf) do if c > P.confidence then keep[#keep + 1] = i end end
      return keep, l2
    end)
    if #keep > 0 then
      local idx = recur.tensor(keep)
      local xs, l2s = x:index_select(1, idx), l2:index_select(1, idx)
      local x_inv, l1_inv = invert_pre(logit(l2s))
      local excess = 0.5 * l1_inv:min():square() + 0.5 * (l1_inv - 1):max():square()
      local loss = (xs - x_inv):abs():sum() + excess
      inv_opt:zero_grad()
      loss:backward()
      inv_opt:step()
      used = used + #keep
      last_loss = loss:item() / #keep
      if last_loss ~= last_loss or math.abs(last_loss) == math.huge then
        nonfinite_losses = nonfinite_losses + 1
        if os.getenv("INV_DEBUG") then
          print("nonfinite", count_nonfinite(logit(l2s)), count_nonfinite(l1_inv), count_nonfinite(x_inv))
        end
      end
    end
  end

  local r = { accuracy = accuracy, used_fraction = used / (P.inv_steps * P.batch),
    inv_loss_per_image = (last_loss == last_loss and math.abs(last_loss) < math.huge) and last_loss or nil,
    nonfinite_losses = nonfinite_losses }
  recur.no_grad(function()
    -- the first 36 test digits and their inverse projections, and what the classifier says of both
    local all_logits, all_l2 = model(test_x)
    local x_inv = invert_pre(logit(all_l2))
    r.nonfinite_inverse_pixels = count_nonfinite(x_inv)
    local pred = all_logits:argmax(-1)
    local inv_pred = model(x_inv):argmax(-1)
    r.inverse_keeps_prediction = inv_pred:eq(pred):mean():item()
    r.inverse_matches_label = inv_pred:eq(test_y):mean():item()
    r.inv_l1_per_image = (test_x - x_inv):abs():sum():item() / test_x:size(1)
    local n36 = math.min(36, test_x:size(1))
    r.first36_label = (test_y:narrow(1, 1, n36) - 1):totable()
    r.first36_pred = (pred:narrow(1, 1, n36) - 1):totable()
    r.first36_inverse_pred = (inv_pred:narrow(1, 1, n36) - 1):totable()
    if keep_images then
      r.first36 = test_x:narrow(1, 1, n36):totable()
      r.first36_inverse = autoscale(x_inv:narrow(1, 1, n36)):totable()
    end
  end)

  -- generation: fake_l2 (pre-sigmoid, zeros) for digits 1..9 by plain GD lr 1.0 on
  -- sum |onehot - softmax(sigm(fake_l2) W + b)|, the classifier frozen
  local W, b = frozen(model.out.weight), frozen(model.out.bias)
  local fake = nn.to_parameter(recur.zeros(9, 100))
  local gen_opt = recur.optim.SGD({ fake }, { lr = P.gen_lr })
  local onehot = recur.one_hot(recur.arange(2, 11), 10)
  local function fake_y() return nn.F.linear(fake:sigmoid(), W, b):softmax(-1) end
  for _ = 1, P.gen_steps do
    gen_opt:zero_grad()
    local diff = (onehot - fake_y()):abs():sum()
    diff:backward()
    gen_opt:step()
  end
  recur.no_grad(function()
    local fy = fake_y()
    r.generated_confidence = fy:max(2):totable()
    r.generated_argmax = (fy:argmax(-1) - 1):totable()
    local genned = invert_pre(fake)
    -- not in the post: what the classifier says of the generated images themselves
    local gl = model(genned):softmax(-1)
    r.generated_image_pred = (gl:argmax(-1) - 1):totable()
    r.generated_image_conf = gl:max(2):totable()
    if keep_images then r.generated = autoscale(genned):totable() end
    -- the features: fake_l2 = I * 1e8, inverted, rounded to one decimal
    local feats = invert_pre(recur.eye(100) * 1e8)
    r.feature_nonfinite = count_nonfinite(feats)
    if keep_images then r.features = autoscale((feats * 10):round() / 10):totable() end
  end)
  r.seconds = recur.now() - t0
  return r
end

local seeds = experiment.seeds(args, P.seeds)
local sweep = rep:sweep {
  name = "runs", configs = { {} }, seeds = seeds,
  meta = { profile = args.profile, steps = P.steps, inv_steps = P.inv_steps, batch = P.batch, data = d.source,
    result_version = 1 },
  run = function(_, seed, run)
    local r = one_run(seed, seed == seeds[1])
    run:progress(1, 1)
    run:log("test accuracy %.4f, confidences %s (%.0f s)", r.accuracy,
      table.concat((function()
        local s = {}
        for i, c in ipairs(r.generated_confidence) do s[i] = string.format("%.5f", c) end
        return s
      end)(), " "), r.seconds)
    return r
  end,
}
local records = sweep:run()
local first = records[1].result
local function values(field) return sweep:values(records, field) end
local synthetic = d.synthetic and "synthetic digits, not MNIST" or nil

rep:table {
  title = string.format("The classifier (%d steps of %d, Adagrad 0.01), %d seed%s", P.steps, P.batch, #seeds,
    #seeds == 1 and "" or "s"),
  rows = {
    { what = "test accuracy", recur = values("accuracy"), post = 0.9521, tag = "V-mirror",
      target = { near = 0.9521, tol = 0.005 }, note = synthetic },
  },
}

local post_conf = { 0.99675035, 0.99740452, 0.99649602, 0.99652439, 0.99734575, 0.99607605, 0.99735802,
  0.99755549, 0.99680138 }
local conf_rows = {}
for k = 1, 9 do
  local v = {}
  for i, rec in ipairs(records) do v[i] = rec.result.generated_confidence[k] end
  conf_rows[k] = { what = string.format("digit %d: max softmax of the optimised hidden layer", k), recur = v,
    post = post_conf[k], tag = "V-mirror", target = { min = 0.99 }, digits = 5 }
end
local img_conf, img_right = {}, {}
for _, rec in ipairs(records) do
  for k = 1, 9 do
    img_conf[#img_conf + 1] = rec.result.generated_image_conf[k]
    img_right[#img_right + 1] = rec.result.generated_image_pred[k] == k and 1 or 0
  end
end
conf_rows[10] = { what = "generated images: the classifier's digit is the intended one", recur = stats.mean(img_right),
  n = #img_right, digits = 3, note = "not in the post: the inverted images fed back to the classifier" }
conf_rows[11] = { what = "generated images: the classifier's top probability", recur = img_conf, digits = 4,
  note = "not in the post" }
rep:table { title = string.format("Generated digits 1-9 (%d steps of GD lr 1.0 on the hidden layer)", P.gen_steps),
  rows = conf_rows }

rep:table {
  title = string.format("The inverse (%d steps of %d, only samples with confidence > %.1f)", P.inv_steps, P.batch,
    P.confidence),
  rows = {
    { what = "fraction of training samples used (confidence > 0.8)", recur = values("used_fraction"), digits = 4 },
    { what = "L1 reconstruction error per test image (sum over 784 pixels)", recur = values("inv_l1_per_image"), digits = 4 },
    { what = "test images whose inverse the classifier puts in the same class", recur = values("inverse_keeps_prediction"),
      digits = 4, note = "not in the post: the 'idealised' projections keep the class" },
    { what = "test images whose inverse is classified as the label", recur = values("inverse_matches_label"), digits = 4 },
    { what = "non-finite values: losses, test inverse pixels, feature pixels",
      recur = string.format("%d, %d, %d", first.nonfinite_losses, first.nonfinite_inverse_pixels, first.feature_nonfinite),
      note = "first seed; logit of a saturated sigmoid is infinite (as in TF)" },
  },
}

local mis, wrong = {}, {}
for i = 1, #first.first36_label do
  if first.first36_pred[i] ~= first.first36_label[i] then
    wrong[#wrong + 1] = i
    mis[#mis + 1] = string.format("sample %d (a %d, predicted %d, its inverse classified %d)", i,
      first.first36_label[i], first.first36_pred[i], first.first36_inverse_pred[i])
  end
end
local same_as_post = table.concat(wrong, ",") == "9,34"
rep:note(string.format("First seed: of the first 36 test digits the classifier gets %s wrong%s. The post's "
  .. "classifier got samples 9 and 34 (the 9th and the 3rd to last) wrong and both inverse projections "
  .. "look like 6s%s", #mis == 0 and "none" or tostring(#mis), #mis == 0 and "" or (": " .. table.concat(mis, "; ")),
  same_as_post and ": the same two samples; the figure shows whether their inverses look like the predicted class."
    or "; each classifier makes its own mistakes, and this one's differ."))

if first.first36 then
  rep:figure { name = "test-digits", kind = "images", cols = 6, images = rows_to_list(recur.tensor(first.first36)),
    title = "The first 36 test digits" }
  rep:figure { name = "test-inverse", kind = "images", cols = 6, images = rows_to_list(recur.tensor(first.first36_inverse)),
    title = "Their inverse projections (each scaled to its own min..max)" }
  rep:figure { name = "generated", kind = "images", cols = 3, images = rows_to_list(recur.tensor(first.generated)),
    title = "Generated digits 1-9 (optimised hidden layer, inverted)" }
  rep:figure { name = "features", kind = "images", cols = 10, images = rows_to_list(recur.tensor(first.features)),
    title = "Each hidden feature on (1e8), inverted, rounded to 0.1" }
end

rep:note("Settings as the post's notebook: truncated normal 0.1 weights (w2_inv and w1_inv too) and 0.1 "
  .. "biases; TF's Adagrad (accumulator 0.1, no epsilon) for the classifier and, separately, for the "
  .. "inverse; the inverse reads the batches that follow the classifier's in the same next_batch stream "
  .. "(first epoch in file order, then reshuffled per epoch, as TF 0.x's DataSet); the range penalties "
  .. "l2_loss(min(l1_inv)) + l2_loss(max(l1_inv - 1)) over the whole batch; logit(p) = log(p/(1-p)) "
  .. "written literally. The figures scale each image to its own range, as matplotlib's imshow does, "
  .. "drawn black on white (the post's Greys_r draws white on black). The generated digits' confidence is "
  .. "the post's np.max(fakes): the softmax of the optimised hidden layer, not of the inverted image; "
  .. "recur also feeds the inverted images back to the classifier.")
rep:set("profile_settings", P)
-- the images are in the figures; the runs keep the numbers
local slim = {}
for i, rec in ipairs(records) do
  local res = {}
  for k, v in pairs(rec.result) do
    if k ~= "first36" and k ~= "first36_inverse" and k ~= "generated" and k ~= "features" then res[k] = v end
  end
  slim[i] = { config = rec.config, seed = rec.seed, result = res }
end
rep:set("runs", slim)
rep:save()
