-- Trains an MLP (models/mlp.lua) on MNIST and reports the test accuracy, the time, and a
-- learning-curve PNG. Run from the project root (docs/architecture.md, "Scripts and the
-- module path"):
--
--   build/recur scripts/train_mnist.lua [options]        (or lua5.4 with LUA_CPATH=build/?.so)
--
-- The data comes from recur.data.mnist (install it with `data/fetch mnist`).
--
-- Under `mpirun -np N` it trains data-parallel (recur.data_parallel, docs/distributed.md): every
-- rank draws the same shuffle, takes its share of the rows of each --batch (the global batch),
-- the gradients are summed over the ranks once per step, and rank 0 prints, writes the
-- checkpoints and draws the curve.
--
-- The learning curve is drawn by gnuplot with the pngcairo terminal (Debian: gnuplot-nox): it
-- is what Torch's optim.Logger used, it needs no display, its cairo output is antialiased,
-- and it is one apt package away; a C plotting library would have to be vendored and
-- maintained for one figure. Without gnuplot the script still trains and says how to get it.
local recur = require "recur"
local Args = require "scripts.args"
local MLP = require "models.mlp"
local DataParallel = require "recur.data_parallel"
local nn = recur.nn

local function die(msg, code)
  io.stderr:write("train_mnist: ", msg, "\n")
  os.exit(code or 1)
end

-- ---- options ----
local OPTIMIZERS = { "sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw" }
local spec = {
  name = "recur scripts/train_mnist.lua",
  prog = "train_mnist",
  about = "Trains a multi-layer perceptron on MNIST, prints a progress line while it trains, then the\n"
    .. "test accuracy and the time, and writes a learning curve (train and validation) as a PNG.",
  epilog = "--lr defaults: sgd 0.1, momentum 0.05, adagrad 0.05, rmsprop 0.001, adam 0.001, adamw 0.001.\n"
    .. "--optim momentum is SGD with momentum 0.9 (Nesterov). --split 55k holds out 5,000 training\n"
    .. "images for validation (as the R2RT posts); 60k trains on all 60,000 and validates on the\n"
    .. "test set. --checkpoint saves the model, optimizer, RNG and history after every epoch\n"
    .. "(atomically); --resume continues from one.",
  { "epochs", "int", 10, "epochs to train" },
  { "lr", "number", nil, "learning rate (default: per optimizer, below)" },
  { "optim", OPTIMIZERS, "adam", "optimizer" },
  { "batch", "int", 100, "minibatch size" },
  { "hidden", "list", "256,256", "hidden layer sizes, comma separated" },
  { "activation", { "relu", "tanh", "sigmoid", "identity" }, "relu", "activation" },
  { "dropout", "number", 0, "dropout after each hidden layer" },
  { "seed", "int", 1, "random seed: initialization, shuffling, dropout" },
  { "threads", "int", 1, "BLAS threads" },
  { "split", { "55k", "60k" }, "55k", "55,000 train / 5,000 validation, or 60,000 train" },
  { "data", "dir", "data/mnist", "MNIST directory" },
  { "checkpoint", "file", nil, "save model, optimizer, RNG and history after every epoch" },
  { "resume", "file", nil, "continue from a checkpoint written with --checkpoint" },
  -- inside build/ (ignored by git) when there is one
  { "plot", "file", os.execute("test -d build") == true and "build/mnist_curve.png" or "mnist_curve.png",
    "learning-curve PNG (\"none\" to skip)" },
  { "quiet", "flag", false, "no progress line" },
}
local opts = Args.parse(arg or {}, spec)

local defaults_lr = { sgd = 0.1, momentum = 0.05, adagrad = 0.05, rmsprop = 0.001, adam = 0.001, adamw = 0.001 }
opts.lr = opts.lr or defaults_lr[opts.optim]
if not (opts.lr > 0) then die("--lr must be > 0", 2) end
if opts.epochs < 0 then die("--epochs must be >= 0", 2) end
if opts.batch < 1 then die("--batch must be >= 1", 2) end
if opts.threads < 1 or opts.threads > 256 then die("--threads must be between 1 and 256", 2) end
if not (opts.dropout >= 0 and opts.dropout < 1) then die("--dropout must be in [0, 1)", 2) end
local hidden = {}
for h in tostring(opts.hidden):gmatch("[^,]+") do
  local n = math.tointeger(tonumber(h))
  if not n or n < 1 then die("--hidden must list positive integers, e.g. 256,256; got '" .. opts.hidden .. "'", 2) end
  hidden[#hidden + 1] = n
end

recur.seed(opts.seed)
recur.threads(opts.threads)

-- ---- data ----
local data_mod = recur.data
local t_load = recur.now()
local ok_data, data = pcall(data_mod.mnist, { dir = opts.data, split = opts.split })
if not ok_data then die((tostring(data):gsub("^[^:]+:%d+: ", ""))) end
local val = data.val or data.test
local val_name = data.val and "validation" or "test"
local n_train = data.train.x:size(1)
t_load = recur.now() - t_load

-- ---- model and optimizer ----
local model = MLP { input = 784, hidden = hidden, classes = 10, activation = opts.activation, dropout = opts.dropout }
local O = recur.optim
local opt
if opts.optim == "sgd" then opt = O.SGD(model, { lr = opts.lr })
elseif opts.optim == "momentum" then opt = O.SGD(model, { lr = opts.lr, momentum = 0.9, nesterov = true })
elseif opts.optim == "adagrad" then opt = O.Adagrad(model, { lr = opts.lr })
elseif opts.optim == "rmsprop" then opt = O.RMSProp(model, { lr = opts.lr })
elseif opts.optim == "adam" then opt = O.Adam(model, { lr = opts.lr })
else opt = O.AdamW(model, { lr = opts.lr }) end
-- one rank outside mpirun: every dp call below is the identity
local dp = DataParallel.new(model, { seed = opts.seed })
if opts.batch < dp.size then die(string.format("--batch %d is smaller than the %d ranks", opts.batch, dp.size), 2) end
local print = function(...) dp:print(...) end
if not dp.root then opts.quiet, opts.plot = true, "none" end

local history, start_epoch = {}, 0
if opts.resume then
  local ok, ck = pcall(recur.load, opts.resume, { model = model, optimizer = opt })
  if not ok then die("cannot resume: " .. tostring(ck)) end
  if type(ck.meta) ~= "table" or math.type(ck.meta.epoch) ~= "integer" then
    die("cannot resume: " .. opts.resume .. " was not written by train_mnist.lua --checkpoint")
  end
  start_epoch, history = ck.meta.epoch, ck.meta.history or {}
  print(string.format("resumed from %s after epoch %d", opts.resume, start_epoch))
end

print(string.format("MNIST: %d train, %s%d test images (loaded in %.2f s); %s, lr %g, batch %d, seed %d, %d thread%s",
  n_train, data.val and string.format("%d validation, ", data.val.x:size(1)) or "", data.test.x:size(1), t_load,
  opts.optim, opts.lr, opts.batch, opts.seed, opts.threads, opts.threads > 1 and "s" or ""))
if dp.root then model:summary({ 784 }) end
dp:start()

-- ---- evaluation ----
local function evaluate(set)
  model:eval()
  local loss, correct, n = 0, 0, 0
  recur.no_grad(function()
    for x, y in data_mod.batches(set, { batch = math.min(1000, set.x:size(1)), shuffle = false }) do
      local logits = model(x)
      loss = loss + nn.cross_entropy(logits, y, { reduction = "sum" }):item()
      correct = correct + logits:argmax(2):eq(y):sum():item()
      n = n + x:size(1)
    end
  end)
  model:train()
  return loss / n, correct / n, correct, n
end

-- ---- progress ----
local tty = not opts.quiet and os.execute("test -t 1") == true
local function clock(s)
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%d:%02d", s // 60, s % 60)
end

-- ---- training ----
local steps_per_epoch = (n_train + opts.batch - 1) // opts.batch
local t_start = recur.now()
local trained = 0 -- examples in this run (for the rate)
for epoch = start_epoch + 1, opts.epochs do
  local t0 = recur.now()
  local seen, mine, loss_sum, correct, step = 0, 0, 0, 0, 0
  local last_print = t0
  -- the shuffle is drawn from the stream every rank shares: all ranks see the same batches
  local batches = data_mod.batches(data.train, { batch = opts.batch, shuffle = true })
  for x_all, y_all in function() return dp:shared(batches) end do
    opt:zero_grad()
    local x, w = dp:shard(x_all, 1)
    local y = dp:shard(y_all, 1)
    local logits = model(x)
    local loss = nn.cross_entropy(logits, y)
    local lv = loss:item()
    -- stop before a NaN reaches the weights (and the checkpoint)
    if lv ~= lv or lv == math.huge then
      die(string.format("the loss became %s at epoch %d, step %d; try a lower --lr", tostring(lv),
        epoch, step + 1))
    end
    dp:scale(loss, w):backward()
    dp:reduce_gradients()
    opt:step()
    step = step + 1
    local b = x:size(1) -- this rank's rows (all of the batch on one rank)
    seen, mine, trained = seen + x_all:size(1), mine + b, trained + x_all:size(1)
    loss_sum = loss_sum + lv * b
    correct = correct + logits:argmax(2):eq(y):sum():item()
    local now = recur.now()
    if not opts.quiet and (now - last_print > (tty and 0.25 or 10) or step == steps_per_epoch) then
      last_print = now
      local rate = trained / (now - t_start)
      local left = (opts.epochs - epoch) * n_train + (n_train - seen)
      local line = string.format("epoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%  %.0f ex/s  ETA %s",
        epoch, opts.epochs, step, steps_per_epoch, loss_sum / mine, 100 * correct / mine, rate, clock(left / rate))
      if tty then io.write("\r", line, "\27[K") io.flush() else print(line) end
    end
  end
  opt:next_epoch()
  -- every rank's counts of the epoch (progress lines above showed rank 0's rows)
  if dp.distributed then loss_sum, correct = table.unpack(dp:sum({ loss_sum, correct })) end
  local secs = recur.now() - t0
  local vl, va = evaluate(val)
  history[#history + 1] = { epoch = epoch, train_loss = loss_sum / seen, train_acc = correct / seen,
    val_loss = vl, val_acc = va, seconds = secs }
  if tty then io.write("\r\27[K") end
  print(string.format("epoch %d/%d  train loss %.4f acc %.2f%%  %s loss %.4f acc %.2f%%  %.1f s (%.0f ex/s)",
    epoch, opts.epochs, loss_sum / seen, 100 * correct / seen, val_name, vl, 100 * va, secs, seen / secs))
  if opts.checkpoint and dp.root then
    local ok, e = pcall(recur.save, opts.checkpoint, { model = model, optimizer = opt,
      meta = { epoch = epoch, history = history, config = model.config, optim = opts.optim, lr = opts.lr,
        batch = opts.batch, seed = opts.seed } })
    if not ok then die("cannot write the checkpoint: " .. tostring(e)) end
  end
end
local total = recur.now() - t_start

-- ---- results ----
local tl, ta, tc, tn = evaluate(data.test)
local run_epochs = opts.epochs - start_epoch
print(string.format("test accuracy %.2f%% (%d/%d), test loss %.4f", 100 * ta, tc, tn, tl))
if run_epochs > 0 then
  print(string.format("training time %.1f s for %d epoch%s (%.2f s per epoch, %.0f examples/s)", total, run_epochs,
    run_epochs > 1 and "s" or "", total / run_epochs, trained / total))
end

-- ---- learning curve ----
if opts.plot ~= "none" and #history > 0 then
  local have = os.execute("command -v gnuplot >/dev/null 2>&1")
  if not have then
    io.stderr:write("train_mnist: gnuplot not found, no learning curve (Debian: apt-get install gnuplot-nox)\n")
  else
    local dat = os.tmpname()
    local f = assert(io.open(dat, "w"))
    for _, h in ipairs(history) do
      f:write(string.format("%d %.6f %.6f %.4f %.4f\n", h.epoch, h.train_loss, h.val_loss, 100 * h.train_acc, 100 * h.val_acc))
    end
    f:close()
    local title = string.format("MNIST MLP 784-%s-10 %s, %s lr %g, batch %d", table.concat(hidden, "-"),
      opts.activation, opts.optim, opts.lr, opts.batch)
    local out = opts.plot:gsub("'", "")
    local gp = io.popen("gnuplot 2>&1", "w")
    gp:write(string.format([[
set terminal pngcairo size 1100,450 font "sans,10"
set output '%s'
set multiplot layout 1,2 title "%s"
set grid
set xlabel "epoch"
set xrange [%g:%g]
set xtics 1
set title "loss"
set ylabel "cross-entropy"
set key top right
plot '%s' using 1:2 with linespoints title 'train', '' using 1:3 with linespoints title '%s'
set title "accuracy"
set ylabel "accuracy (%%)"
set key bottom right
plot '%s' using 1:4 with linespoints title 'train', '' using 1:5 with linespoints title '%s'
unset multiplot
]], out, title, history[1].epoch - 0.5, history[#history].epoch + 0.5, dat, val_name, dat, val_name))
    local ok = gp:close()
    os.remove(dat)
    if ok then print("learning curve: " .. out) else io.stderr:write("train_mnist: gnuplot failed\n") end
  end
end
