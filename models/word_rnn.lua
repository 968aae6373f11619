-- The word model of R2RT's "Styles of Truncated Backpropagation" (reference section 3), its
-- training in the post's two styles, and the post's gradient-decay probe.
--
--   local WordRNN = require "models.word_rnn"
--   local m = WordRNN.new { vocab = 10000, embed = 50, hidden = 100, keep = 0.8,
--                           carry_dropped = true }
--   local r = m:grad_step(x, y, state, { style = "true", n = 5 })   -- x, y [T, B] ids
--   -- r.loss, r.state (the state to carry to the next batch); the gradients are in .grad
--   local v = m:evaluate(ids, { batch = 32, steps = 20 })           -- mean nats per word
--   local run = WordRNN.fit { model = m, train = ids, val = ids, style = "tf", n = 5, ... }
--   local c = m:decay_probe(x, y, { n = 20 })   -- L1 norm per backprop distance (the post's)
--
-- The model (the post's graph): ids -> embedding [V, E] -> dropout (keep) -> vanilla tanh RNN
-- h' = tanh(x W_x + h W_h + b) -> dropout (keep) -> linear [H -> V] -> softmax. The post's cell
-- is the concat form tanh([x, h] W + b) with W [E + H, H]; recur's fused cell holds the same
-- W as its two blocks W_x = W[1..E] and W_h = W[E+1..E+H].
--
-- Initial values are the post's TensorFlow ones (tf.get_variable's Glorot-uniform, biases 0):
--   embedding U(+-sqrt(6 / (V + E))), W as ONE [E + H, H] matrix U(+-sqrt(6 / (E + 2H))),
--   softmax weight U(+-sqrt(6 / (H + V))). recur's defaults differ for the cell only
--   (recur.rnn: every weight U(+-1/sqrt(H)), W_x and W_h each on their own); recur.nn's
--   Embedding and Linear already default to Glorot-uniform with zero biases.
--
-- Gradients as the post computes them:
--   TF style (n = T, one window per batch): the gradient of the mean loss over T * B words.
--   True BPTT(n) on sequences of T: every step's error goes back n steps (recur.tbptt); the
--   post divides the embedding's and the cell's gradient by B * n (tf.add_n(...) /
--   (batch_size * bptt_steps)) and gives the softmax layer the gradient of the mean loss, so
--   here the mean-loss gradients of the embedding and the cell are scaled by T / n.
-- Dropout: the input masks are drawn once per batch, before the unroll, and the output masks
-- once per step's output, so the true-BPTT windows share them as the post's single graph does.
-- The carried state is the post's final_state = rnn_outputs[-1] AFTER the output dropout
-- (in training the next batch starts from the dropped-out last output; keep = 1 in
-- evaluation makes it the plain state); carry_dropped = false carries the plain state.
--
-- Adam as TensorFlow's: tf.train.AdamOptimizer's epsilon (1e-8) sits beside the uncorrected
-- sqrt(v) ("epsilon hat"); recur's Adam puts eps beside the bias-corrected one, so
-- WordRNN.adam sets eps = 1e-8 / sqrt(1 - beta2^t) before step t, which gives TF's update.
local recur = require("recur")
local nn = recur.nn
local options = require "models.options"
local tbptt = recur.tbptt

local WordRNN = nn.Module:extend("WordRNN")

local function int_opt(o, k, default, min) return options.int("WordRNN", o, k, default, min) end

function WordRNN.new(a, b)
  if type(a) == "table" and rawget(a, "_class_name") then return nn.Module.new(a, b) end
  return nn.Module.new(WordRNN, a)
end

function WordRNN:init(o)
  if type(o) ~= "table" then error("WordRNN.new: expected an options table", 3) end
  self.V = int_opt(o, "vocab", nil, 1)
  self.E = int_opt(o, "embed", 50, 1)
  self.H = int_opt(o, "hidden", 100, 1)
  local keep = o.keep == nil and 0.8 or o.keep
  if type(keep) ~= "number" or not (keep > 0 and keep <= 1) then
    error("WordRNN: keep (the dropout keep probability) must be in (0, 1], got " .. tostring(keep), 3)
  end
  self.keep = keep
  self.carry_dropped = o.carry_dropped ~= false
  self.batch_dim = 2
  self.embed = nn.Embedding(self.V, self.E, { init = nn.init.glorot_uniform() })
  self.rnn = recur.rnn.RNN { cell = "rnn", input = self.E, hidden = self.H }
  self.out = nn.Linear(self.H, self.V, { weight_init = nn.init.glorot_uniform(),
    bias_init = nn.init.zeros })
  self:parameters()
  self:tf_init_cell()
end

-- the cell's W [E + H, H] drawn as one Glorot-uniform matrix (the post's concat form), b = 0
function WordRNN:tf_init_cell()
  local E, H = self.E, self.H
  local a = math.sqrt(6 / (E + H + H))
  local W = recur.uniform({ E + H, H }, -a, a)
  local p = self:cell_params()
  recur.no_grad(function()
    p.W_x:copy_(W:narrow(1, 1, E))
    p.W_h:copy_(W:narrow(1, E + 1, H))
    p.b:zero_()
  end)
end

function WordRNN:cell_params()
  local p = {}
  for _, np in ipairs(self.rnn.cells[1]:parameters()) do p[np[1]] = np[2] end
  return p
end

-- the parameters whose true-BPTT gradient the post normalises by B * n
function WordRNN:recurrent_params()
  local p = self:cell_params()
  return { self.embed.weight, p.W_x, p.W_h, p.b }
end

function WordRNN:extra_repr()
  return string.format("WordRNN(vocab %d, embed %d, tanh %d, keep %g)", self.V, self.E, self.H,
    self.keep)
end

function WordRNN:zero_state(B)
  return { { recur.zeros(B, self.H) } }
end

local function dropping(self) return self.training and self.keep < 1 end

-- ids [T, B] -> the cell's inputs [T, B, E] (embedding, then the input dropout)
function WordRNN:inputs(x)
  local e = self.embed(x)
  if dropping(self) then e = nn.functional.dropout(e, 1 - self.keep) end
  return e
end

-- a dropout mask [T, B, H] (0 or 1 / keep) for the outputs, nil when not dropping
function WordRNN:output_mask(T, B)
  if not dropping(self) then return nil end
  return nn.functional.dropout(recur.ones(T, B, self.H), 1 - self.keep)
end

-- outputs [T, B, H] (already masked) and targets [T, B] -> the loss (reduction: "mean"):
-- cross_entropy(self.out(h)) through the fused nn.linear_cross_entropy, which never holds
-- the [T B, V] logits (the same numbers within float rounding; tests/linear_cross_entropy_spec)
function WordRNN:readout_loss(out, y, reduction)
  local T, B = out:size(1), out:size(2)
  return nn.linear_cross_entropy(out:reshape(T * B, self.H), self.out.weight, self.out.bias,
    y:reshape(T * B), { reduction = reduction or "mean" })
end

local function check_ids(x, y, who)
  if not recur.is_tensor(x) or x:dim() ~= 2 then
    error(who .. ": x must be a tensor of ids [T, B]", 3)
  end
  if not recur.is_tensor(y) or y:dim() ~= 2 or y:size(1) ~= x:size(1) or y:size(2) ~= x:size(2) then
    error(who .. ": y must be a tensor of ids with x's shape [T, B]", 3)
  end
end

-- One gradient evaluation on a batch x, y [T, B] from state (nil: zeros), accumulated into
-- the parameters' .grad. o.style "tf": one window of all T steps (TF style with
-- num_steps = T); "true": true BPTT(o.n) over the T steps, with the post's normalisation.
-- o.backward = false only computes the loss. Returns {loss = number, state = the state to
-- carry (the post's: after the output dropout), final = the plain final state}.
function WordRNN:grad_step(x, y, state, o)
  check_ids(x, y, "WordRNN:grad_step")
  o = o or {}
  local T, B = x:size(1), x:size(2)
  local style = o.style or "tf"
  local n = o.n or T
  if style ~= "tf" and style ~= "true" then
    error("WordRNN:grad_step: style must be \"tf\" or \"true\", got " .. tostring(style), 2)
  end
  state = state or self:zero_state(B)
  local e = self:inputs(x)
  local last_mask
  local function loss(out, yy)
    local t = out:size(1)
    local m = self:output_mask(t, B)
    if m then
      out = out * m
      last_mask = m:select(1, t)
    end
    return self:readout_loss(out, yy)
  end
  local r
  if style == "tf" then
    r = tbptt.tf { forward = self.rnn, loss = loss, x = e, y = y, n = T, state = state,
      backward = o.backward }
  else
    r = tbptt.true_bptt { forward = self.rnn, loss = loss, x = e, y = y, n = n, state = state,
      backward = o.backward }
    local scale = T / math.min(n, T)
    if o.backward ~= false and scale ~= 1 then
      recur.no_grad(function()
        for _, p in ipairs(self:recurrent_params()) do
          if p.grad then p.grad:mul_(scale) end
        end
      end)
    end
  end
  local fin = r.state
  if last_mask and self.carry_dropped then fin = { { (fin[1][1] * last_mask):detach() } } end
  return { loss = r.loss, state = fin, final = r.state }
end

-- Mean cross-entropy (nats per word) of a token stream, read as the post's reader does
-- (o.batch rows, windows of o.steps, the state carried across windows), without dropout,
-- from a zero state (the post's) or from o.state.
function WordRNN:evaluate(ids, o)
  local was = self.training
  self:eval()
  local total, count = 0, 0
  recur.no_grad(function()
    local state = o.state or self:zero_state(o.batch)
    for x, y in recur.data.lm_batches(ids, { batch = o.batch, steps = o.steps, epochs = 1 }) do
      local out, fin = self.rnn:forward(self.embed(x), { state = state })
      total = total + self:readout_loss(out, y, "sum"):item()
      count = count + y:numel()
      state = fin
    end
  end)
  self:train(was)
  return total / count
end

-- Adam with TensorFlow's epsilon placement (see the header): opt:step() as usual.
function WordRNN.adam(params, lr)
  local opt = recur.optim.Adam(params, { lr = lr, betas = { 0.9, 0.999 }, eps = 1e-8 })
  local t = 0
  return {
    opt = opt,
    step = function()
      t = t + 1
      opt:set("eps", 1e-8 / math.sqrt(1 - 0.999 ^ t))
      opt:step()
    end,
    zero_grad = function() opt:zero_grad() end,
  }
end

-- Trains o.model on o.train and returns the validation loss after each epoch:
--   o.style "tf" | "true", o.seq (the sequence length: num_steps), o.n (true BPTT's n; tf:
--   n = seq), o.lr, o.batch (32), o.epochs (20), o.patience (stop after this many epochs
--   without a better validation loss; nil: never), o.on_epoch(epoch, val, train_loss),
--   o.on_step(step, steps_per_epoch), o.val_carried (also evaluate from the training's final
--   state: val_carried, a diagnostic that is not the post's metric).
-- Returns {val = {per epoch}, train = {mean training loss per epoch}, min_val, best_epoch,
--   epochs (run), stopped_early, steps_per_epoch, val_carried = {per epoch} (when asked)}.
function WordRNN.fit(o)
  local m = o.model
  local B, seq = o.batch or 32, o.seq
  local style = o.style
  local n = style == "tf" and seq or o.n
  local adam = WordRNN.adam(m:parameters(), o.lr)
  local res = { val = {}, train = {}, min_val = math.huge, best_epoch = 0, stopped_early = false,
    val_carried = o.val_carried and {} or nil }
  local since = 0
  for epoch = 1, o.epochs or 20 do
    m:train()
    local state, final, sum, k = nil, nil, 0, 0
    local it = recur.data.lm_batches(o.train, { batch = B, steps = seq, epochs = 1 })
    res.steps_per_epoch = it.steps_per_epoch
    for x, y in it do
      adam.zero_grad()
      local r = m:grad_step(x, y, state, { style = style, n = n })
      adam.step()
      state, final = r.state, r.final
      sum, k = sum + r.loss, k + 1
      if o.on_step then o.on_step(k, it.steps_per_epoch) end
    end
    local v = m:evaluate(o.val, { batch = B, steps = seq })
    res.val[epoch], res.train[epoch] = v, sum / math.max(k, 1)
    if o.val_carried then
      res.val_carried[epoch] = m:evaluate(o.val, { batch = B, steps = seq, state = final })
    end
    res.epochs = epoch
    if o.on_epoch then o.on_epoch(epoch, v, res.train[epoch]) end
    if v < res.min_val then
      res.min_val, res.best_epoch, since = v, epoch, 0
    else
      since = since + 1
      if o.patience and since >= o.patience then
        res.stopped_early = epoch < (o.epochs or 20)
        break
      end
    end
  end
  return res
end

-- The post's gradient-decay probe ("Keeping track of vanishing gradients for my own
-- curiosity"): on a batch x, y [T, B] without dropout, every step i >= o.first (default
-- n + 1, the post's `if i >= bptt_steps`, 0-based) backpropagates its loss (summed over the
-- batch, as tf.gradients of the per-example losses) to per-step copies of the cell's weight
-- W = [W_x; W_h] at steps i - n + 1 .. i. The gradients at each distance are summed over i,
-- and the L1 norm of each sum is returned: c[k], k = 1 (the step's own copy) .. n (n - 1
-- steps earlier). The post prints them farthest first (c[n] .. c[1]). o.state: the initial
-- state (zeros). o.raw = true also returns the summed gradients {W_x = {..}, W_h = {..}}.
function WordRNN:decay_probe(x, y, o)
  check_ids(x, y, "WordRNN:decay_probe")
  o = o or {}
  local T, B = x:size(1), x:size(2)
  local n = math.min(o.n or T, T)
  local first = o.first or (n + 1)
  local p = self:cell_params()
  local was = self.training
  self:eval()
  local Wx, Wh, b = p.W_x:detach(), p.W_h:detach(), p.b:detach()
  local emb = self.embed.weight:detach()
  local ow, ob = self.out.weight:detach(), self.out.bias:detach()
  local e = emb:index_select(1, x:reshape(T * B)):view(T, B, self.E)
  local cx, ch = {}, {}
  for s = 1, T do
    cx[s] = Wx:clone():requires_grad(true)
    ch[s] = Wh:clone():requires_grad(true)
  end
  local hs = {}
  local h = o.state or recur.zeros(B, self.H)
  for s = 1, T do
    h = (recur.matmul(e:select(1, s), cx[s]) + recur.matmul(h, ch[s]) + b):tanh()
    hs[s] = h
  end
  local sum_x, sum_h = {}, {}
  for k = 1, n do
    sum_x[k] = recur.zeros(self.E, self.H)
    sum_h[k] = recur.zeros(self.H, self.H)
  end
  for i = first, T do
    local logits = nn.functional.linear(hs[i], ow, ob)
    local l = nn.cross_entropy(logits, y:select(1, i), { reduction = "sum" })
    l:backward { retain_graph = i < T }
    recur.no_grad(function()
      for s = math.max(1, i - n + 1), i do
        local k = i - s + 1
        sum_x[k]:add_(cx[s].grad)
        sum_h[k]:add_(ch[s].grad)
      end
      for s = 1, i do
        cx[s]:zero_grad()
        ch[s]:zero_grad()
      end
    end)
  end
  local c = {}
  for k = 1, n do c[k] = sum_x[k]:abs():sum():item() + sum_h[k]:abs():sum():item() end
  self:train(was)
  if o.raw then return c, { W_x = sum_x, W_h = sum_h } end
  return c
end

return WordRNN
