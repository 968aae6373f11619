-- Trains a character-level language model (R2RT's RNN II model: embedding, stacked recurrent
-- cells, linear readout) on a text file, with TF-style truncated backpropagation: the text is
-- cut into --batch contiguous rows, read in windows of --seq characters, and the state is
-- carried (detached) from one window to the next within an epoch.
--
--   build/recur scripts/train_charrnn.lua --data FILE [options]     (--help for all)
--
-- Prints a progress line (loss, characters per second, ETA), the validation loss after every
-- epoch, and writes a checkpoint (vocabulary, configuration, weights, optimizer state, random
-- generator state, carried state and position) that --resume continues exactly.
--
-- Training is recur's own: the model's loss (recur.nn.cross_entropy), recur.optim, gradient
-- clipping on the model's flat gradient (recur.nn.clip_grad_norm) and recur.save / recur.load
-- (safetensors). Run it from the project root, where `require "models.charrnn"` finds the
-- model (docs/architecture.md, "Scripts and the module path").
--
-- Under `mpirun -np N` it trains data-parallel (recur.data_parallel, docs/distributed.md): each
-- rank takes its share of the --batch rows of every window (--batch is the global batch), the
-- gradients are summed over the ranks once per step, rank 0 prints and writes checkpoints.
local recur = require("recur")
local Args = require("scripts.args")
local CharRNN = require("models.charrnn")
local nn = recur.nn
local IS = recur.rnn.initial_state
local DataParallel = require("recur.data_parallel")
local data = recur.data

-- --optim names -> recur.optim classes (PyTorch's formulas and defaults)
local OPTIMIZERS = { "adam", "sgd", "adagrad", "rmsprop" }
local OPTIM_CLASS = { adam = "Adam", sgd = "SGD", adagrad = "Adagrad", rmsprop = "RMSProp" }

local spec = {
  name = "recur scripts/train_charrnn.lua",
  about = "Trains a character-level language model on FILE and writes a checkpoint that\n"
    .. "scripts/sample.lua generates text from.",
  epilog = "Checkpoints are written atomically after every epoch, every --save-every steps and\n"
    .. "at the end; --resume FILE continues a run exactly where it stopped (same weights,\n"
    .. "optimizer state, random numbers, carried state and position in the data). When\n"
    .. "resuming, the model, data and training options come from the checkpoint; --epochs,\n"
    .. "--checkpoint and --data may be given again to change them, and --time-limit,\n"
    .. "--max-steps, --save-every, --print-every, --val-batches and --threads apply to this\n"
    .. "run only (default: none).",
  { "data", "file", nil, "the text to train on (UTF-8, or any bytes with --mode byte)" },
  { "mode", { "utf8", "byte" }, "utf8", "what a character is: a UTF-8 code point or a byte" },
  { "cell", recur.rnn.cell_types, "lstm", "recurrent cell" },
  { "layers", "int", 2, "stacked recurrent layers" },
  { "hidden", "int", 128, "units per layer" },
  { "embed", "int", 64, "embedding size" },
  { "seq", "int", 50, "characters per window (the truncated BPTT length)" },
  { "batch", "int", 32, "rows read in parallel" },
  { "epochs", "int", 10, "passes over the training text" },
  { "lr", "number", 2e-3, "learning rate" },
  { "optim", OPTIMIZERS, "adam", "optimizer" },
  { "dropout", "number", 0, "dropout on non-recurrent connections (0 = off)" },
  { "clip", "number", 5, "clip the global gradient norm to this (0 = off)" },
  { "init-state", IS.names, "zero", "initial state at the start of every epoch" },
  { "init-std", "number", 0.3, "noise std of the noisy initial states" },
  { "val-frac", "number", 0.1, "fraction of the text held out for validation (its end)" },
  { "checkpoint", "file", "charrnn.ckpt", "where to write the checkpoint" },
  { "resume", "file", nil, "continue from this checkpoint" },
  { "seed", "int", 1234, "random seed" },
  { "threads", "int", 1, "BLAS threads" },
  { "time-limit", "number", 0, "stop after this many seconds (0 = none), then save" },
  { "max-steps", "int", 0, "stop after this many steps in total (0 = none), then save" },
  { "save-every", "int", 0, "also save every N steps (0 = only per epoch and at the end)" },
  { "print-every", "int", 20, "steps between progress lines" },
  { "val-batches", "int", 0, "cap on validation windows per evaluation (0 = all)" },
}

local a = Args.parse(arg, spec)
local die = Args.die

local function check_pos(name, v, min)
  if v < min then die(string.format("--%s must be >= %s, got %s", name, tostring(min), tostring(v))) end
end

local ck
if a.resume then
  local ok, res = pcall(CharRNN.load_checkpoint, a.resume)
  if not ok then die("cannot resume: " .. tostring(res)) end
  ck = res
  local m = ck.meta
  if type(m) ~= "table" or m.kind ~= "charrnn" then
    die("cannot resume: " .. a.resume .. " is not a char-RNN checkpoint")
  end
  -- the run's options come from the checkpoint, except: options of this invocation only
  -- (limits, printing, threads: the command line or their defaults) and a few that may be
  -- changed when given (epochs, checkpoint, data)
  local this_run = { time_limit = true, max_steps = true, save_every = true, threads = true,
    print_every = true, val_batches = true, resume = true }
  local changeable = { epochs = true, checkpoint = true, data = true }
  for k, v in pairs(m.args) do
    if not this_run[k] and not (changeable[k] and a.given[k]) then a[k] = v end
  end
  for k in pairs(a.given) do
    if not this_run[k] and not changeable[k] then
      io.stderr:write(string.format("note: --%s is taken from the checkpoint (%s) when resuming\n",
        k:gsub("_", "-"), tostring(m.args[k])))
    end
  end
end

if not a.data then die("--data FILE is required (the text to train on); try --help") end
check_pos("layers", a.layers, 1)
check_pos("hidden", a.hidden, 1)
check_pos("embed", a.embed, 1)
check_pos("seq", a.seq, 1)
check_pos("batch", a.batch, 1)
check_pos("epochs", a.epochs, 1)
check_pos("threads", a.threads, 1)
check_pos("print-every", a.print_every, 1)
if not (a.lr > 0) then die("--lr must be > 0, got " .. a.lr) end
if not (a.dropout >= 0 and a.dropout < 1) then die("--dropout must be in [0, 1), got " .. a.dropout) end
if not (a.clip >= 0) then die("--clip must be >= 0, got " .. a.clip) end
if not (a.val_frac >= 0 and a.val_frac < 1) then die("--val-frac must be in [0, 1), got " .. a.val_frac) end

recur.threads(a.threads)
recur.seed(a.seed)

-- data
local vocab = ck and data.Vocab.from_table(ck.meta.vocab) or nil
local ok, corpus = pcall(data.char_corpus, { path = a.data, mode = a.mode,
  split = { 1 - a.val_frac, a.val_frac, 0 }, vocab = vocab })
if not ok then
  local msg = tostring(corpus)
  if msg:find("invalid UTF%-8") then msg = msg .. "\n(use --mode byte for text that is not UTF-8)" end
  die("cannot read the training text: " .. msg)
end
local train_ids, val_ids = corpus.train, corpus.val
local V = corpus.vocab:size()
-- a resumed run starts after the checkpoint's last window (epoch, step)
local start = ck and { epoch = ck.meta.epoch, step = ck.meta.step + 1 } or nil
local ok2, it = pcall(data.lm_batches, train_ids, { batch = a.batch, steps = a.seq, epochs = a.epochs, start = start })
if not ok2 then die("training text: " .. tostring(it)) end
local val_batch
if val_ids and a.val_frac > 0 then
  val_batch = math.min(a.batch, (val_ids:numel() - 1) // a.seq)
  if val_batch < 1 then
    io.stderr:write(string.format("note: the validation text (%d characters) is shorter than one "
      .. "window of %d; no validation\n", val_ids:numel(), a.seq + 1))
    val_batch = nil
  end
end

-- model and optimizer
local model = CharRNN.new { vocab = V, embed = a.embed, hidden = a.hidden, layers = a.layers,
  cell = a.cell, dropout = a.dropout, init_state = a.init_state, init_std = a.init_std }
-- the optimizer over the model's parameters; gradient clipping runs on its flat gradient
-- (one pass over one buffer). Packing (model:flat_parameters(), done when the model was built)
-- gives every parameter its slot in the flat gradient buffer from the start (zeros), so every
-- parameter, the trained initial state included, holds a gradient at every step: a resumed
-- run updates exactly the parameters the uninterrupted one does.
local opt = recur.optim[OPTIM_CLASS[a.optim]](model:parameters(), { lr = a.lr })
local flat_grad = select(2, model:flat_parameters())
-- one rank outside mpirun: every dp call below is the identity
local dp = DataParallel.new(model, { seed = a.seed })
if a.batch < dp.size then die(string.format("--batch %d is smaller than the %d ranks", a.batch, dp.size)) end
local print = function(...) dp:print(...) end

local done_steps, state, history = 0, nil, {}
if ck then
  local okl, err = pcall(model.load_state_dict, model, ck.model or {})
  if not okl then die("cannot resume: the checkpoint does not fit the model: " .. tostring(err)) end
  -- the optimizer's state and the random generator's
  local okr, err2 = pcall(recur.load, a.resume, { optimizer = opt })
  if not okr then die("cannot resume: " .. tostring(err2)) end
  local m = ck.meta
  done_steps = m.total_steps
  history = m.history or {}
  state = CharRNN.state_from(ck.tensors, "state.", a.layers, model.rnn.n_states)
  -- the checkpoint holds every row's state: keep this rank's rows
  if state and dp.distributed then
    for _, layer in ipairs(state) do
      for k, t in ipairs(layer) do layer[k] = dp:shard(t, 1, a.batch):contiguous() end
    end
  end
end
dp:start()

local n_params = model:num_parameters()
local total_steps = it.steps_per_epoch * a.epochs
if a.max_steps > 0 then total_steps = math.min(total_steps, a.max_steps) end
print(string.format("data: %s, %d characters (%d train, %d validation), vocabulary %d (%s)",
  a.data, corpus.ids:numel(), train_ids:numel(), val_ids and val_ids:numel() or 0, V, a.mode))
print(string.format("model: %s, %d x %d, embedding %d, %d parameters; %s lr %g, clip %g, "
  .. "dropout %g, init state %s; %d steps per epoch of %d x %d; %d thread%s",
  a.cell, a.layers, a.hidden, a.embed, n_params, a.optim, a.lr, a.clip, a.dropout,
  a.init_state, it.steps_per_epoch, a.batch, a.seq, a.threads,
  a.threads == 1 and "" or "s"))
if ck then
  print(string.format("resumed from %s at epoch %d, step %d/%d (%d steps done)", a.resume,
    it.epoch, it.step, it.steps_per_epoch, done_steps))
end

local function evaluate()
  if not val_batch then return nil end
  local was = model.training
  model:eval()
  local total, n = 0, 0
  recur.no_grad(function()
    local vit = data.lm_batches(val_ids, { batch = val_batch, steps = a.seq })
    local st
    for x, y in vit do
      local l
      l, st = model:loss(x, y, st)
      total = total + l:item()
      n = n + 1
      if a.val_batches > 0 and n >= a.val_batches then break end
    end
  end)
  if was then model:train() end
  return total / n
end

local function save(epoch, step, reason)
  local tensors = {}
  -- every rank's rows of the carried state, gathered (on every rank: it is a collective)
  local full = state
  if state and dp.distributed then
    full = {}
    for l, layer in ipairs(state) do
      full[l] = {}
      for k, t in ipairs(layer) do full[l][k] = dp:gather_rows(t, 1, a.batch) end
    end
  end
  if not dp.root then return end
  if full then CharRNN.state_tensors(full, "state.", tensors) end
  local args_out = {}
  for _, o in ipairs(spec) do
    local k = o[1]:gsub("-", "_")
    if a[k] ~= nil then args_out[k] = a[k] end
  end
  args_out.resume = nil
  local meta = { kind = "charrnn", config = model:config(), vocab = corpus.vocab:to_table(),
    args = args_out, epoch = epoch, step = step, total_steps = done_steps, history = history,
    mode = a.mode }
  local okk, err = pcall(recur.save, a.checkpoint, { model = model, optimizer = opt,
    tensors = tensors, meta = meta, rng = true })
  if not okk then die("cannot write the checkpoint: " .. tostring(err)) end
  print(string.format("checkpoint: %s (%s; epoch %d, step %d)", a.checkpoint, reason, epoch, step))
end

-- training
model:train()
local t_start = recur.now()
local steps_this_run, loss_sum, loss_n, chars = 0, 0, 0, 0
local t_last = t_start
local stop_reason
local epoch, step = it.epoch, it.step
if done_steps >= total_steps then stop_reason = "nothing left to do" end
while not stop_reason do
  local x, y, info = it()
  if not x then break end
  epoch, step = info.epoch, info.step
  if info.epoch_start then state = nil end
  opt:zero_grad()
  local xs, w = dp:shard(x, 2)
  local loss, fin = model:loss(xs, (dp:shard(y, 2)), state)
  dp:scale(loss, w):backward()
  dp:reduce_gradients()
  if a.clip > 0 then nn.clip_grad_norm(flat_grad, a.clip) end
  opt:step()
  state = {}
  for l, layer in ipairs(fin) do
    state[l] = {}
    for k, t in ipairs(layer) do state[l][k] = t:detach() end
  end
  local lv = loss:item()
  if lv ~= lv then die(string.format("the loss became NaN at epoch %d, step %d; try a lower --lr", epoch, step)) end
  done_steps = done_steps + 1
  steps_this_run = steps_this_run + 1
  -- this rank's share of the global batch's loss (w = 1 on one rank)
  loss_sum, loss_n = loss_sum + lv * w, loss_n + 1
  chars = chars + a.batch * a.seq
  local now = recur.now()
  if steps_this_run % a.print_every == 0 or info.epoch_end then
    -- the global batch's numbers: every rank's shares summed (all ranks print at the same steps)
    local lsum = loss_sum
    if dp.distributed then lv, lsum = table.unpack(dp:sum({ lv * w, loss_sum })) end
    local rate = chars / (now - t_start)
    local per_step = (now - t_start) / steps_this_run
    local eta = (total_steps - done_steps) * per_step
    if a.time_limit > 0 then eta = math.min(eta, math.max(0, a.time_limit - (now - t_start))) end
    print(string.format("epoch %d/%d  step %d/%d  loss %.4f (avg %.4f)  %.0f chars/s  "
      .. "%.1f ms/step  ETA %s", epoch, a.epochs, step, it.steps_per_epoch, lv, lsum / loss_n,
      rate, per_step * 1e3, Args.duration(eta)))
    io.stdout:flush()
    t_last = now
  end
  if info.epoch_end then
    local vl = evaluate()
    local train_avg = loss_n > 0 and dp:sum({ loss_sum })[1] / loss_n or lv
    history[#history + 1] = { epoch = epoch, train = train_avg, val = vl, steps = done_steps,
      seconds = now - t_start }
    print(string.format("epoch %d done: train loss %.4f, validation loss %s (%.1f s)", epoch,
      train_avg, vl and string.format("%.4f", vl) or "-", now - t_start))
    loss_sum, loss_n = 0, 0
    save(epoch, step, "end of epoch")
  elseif a.save_every > 0 and done_steps % a.save_every == 0 then
    save(epoch, step, "every " .. a.save_every .. " steps")
  end
  if done_steps >= total_steps then
    stop_reason = a.max_steps > 0 and done_steps >= a.max_steps and "max steps" or "done"
  elseif a.time_limit > 0 and recur.now() - t_start >= a.time_limit then
    stop_reason = "time limit"
  end
  -- rank 0's clock decides for every rank (a rank that stopped alone would leave the others
  -- waiting in the next allreduce)
  if dp.distributed and a.time_limit > 0 then stop_reason = dp.mpi.broadcast_value(stop_reason or false, 0) or nil end
end
stop_reason = stop_reason or "done"
local last_saved = history[#history] and history[#history].steps == done_steps
if not last_saved and steps_this_run > 0 then
  if stop_reason ~= "done" then
    local vl = evaluate()
    if vl then
      history[#history + 1] = { epoch = epoch, step = step, val = vl, steps = done_steps,
        seconds = recur.now() - t_start, partial = true }
      print(string.format("stopped (%s) at epoch %d, step %d: validation loss %.4f", stop_reason,
        epoch, step, vl))
    end
  end
  save(epoch, step, stop_reason)
end
local elapsed = recur.now() - t_start
print(string.format("trained %d steps in %s (%.0f chars/s)", steps_this_run, Args.duration(elapsed),
  steps_this_run > 0 and chars / elapsed or 0))
