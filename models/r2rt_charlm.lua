-- The character-level setup of R2RT's "Recurrent Neural Networks in Tensorflow II", shared by
-- the post scripts scripts/posts/rnn2.lua and scripts/posts/written_memories.lua:
--
--   local lm = require "models.r2rt_charlm"
--   local corpus = lm.load_text(args)            -- --text FILE, the default tiny-shakespeare,
--                                                -- or (smoke only) a generated tiny text
--   local m = lm.model{vocab = V, cell = "gru", hidden = 100, layers = 3}  -- TF's init
--   local r = lm.train(m, ids, {steps = 80, batch = 32, epochs = 20, lr = 1e-4, run = run})
--   -- r.losses[e] = mean training loss of epoch e, r.seconds[e] its wall time
--   lm.generate(m, corpus.vocab, {prompt = "A", length = 750, top_k = 5})
--
-- The post's model: an embedding of size state_size in place of one-hot inputs, a stack of
-- cells, a softmax readout; Adam; no gradient clipping; the state carried across the windows
-- of an epoch (PTB's iterator) and zero at each epoch's start; the metric the mean training
-- loss of each epoch. Initialised as the post's TF 0.x code: every weight Glorot-uniform over
-- the matrix TF builds (tf.get_variable's default), biases 0, TF's forget bias 1.0 (recur's
-- lstm cells start that bias at 1.0 instead of adding a constant 1.0: the same model, shifted
-- by a constant), GRU gate biases 1.0 (TF GRUCell's bias_start).
local recur = require "recur"
local data = require "recur.data"
local CharRNN = require "models.charrnn"
local function now() return recur.now() end

local M = {}

M.DEFAULT_TEXT = "/work/shared/data/tinyshakespeare.txt"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- A small deterministic text for --smoke (no dataset needed): verse-like lines from a fixed
-- word list, drawn with a linear congruential generator of its own.
function M.tiny_text(n)
  local words = { "the", "king", "shall", "come", "to", "rome", "and", "my", "lord", "is", "not",
    "here", "what", "say", "you", "sir", "good", "night", "love", "death" }
  local out, len, s = { "ALL:\n" }, 5, 12345
  while len < n do
    local line = {}
    for k = 1, 6 do
      s = (s * 1103515245 + 12345) % 2147483648
      line[k] = words[1 + s % #words]
    end
    local l = table.concat(line, " ") .. ".\n"
    out[#out + 1] = l
    len = len + #l
  end
  return table.concat(out):sub(1, n)
end

-- The corpus: args.text, else in the smoke profile a generated tiny text (seconds, no
-- dataset), else the default tiny-shakespeare when present; without any, an error that says
-- how to pass a text. Returns char_corpus's table plus `source` (what was read) and `slice` (the number
-- of leading characters kept, nil = all).
function M.load_text(args, slice)
  local path = args.text
  if path == "" then path = nil end
  if not path and args.profile ~= "smoke" and exists(M.DEFAULT_TEXT) then path = M.DEFAULT_TEXT end
  if path and not exists(path) then
    error(string.format("cannot read the text %s; pass another with --text FILE (any plain "
      .. "text; the post used tiny-shakespeare, 1,115,394 characters)", path), 0)
  end
  local text, source
  if path then
    local f = assert(io.open(path, "rb"))
    text = f:read("a")
    f:close()
    source = path
  elseif args.profile == "smoke" then
    text, source = M.tiny_text(6000), "a generated tiny text (smoke)"
  else
    error(string.format("no text: %s is absent. Pass a text with --text FILE (the post used "
      .. "tiny-shakespeare, karpathy/char-rnn's input.txt, 1,115,394 characters)",
      M.DEFAULT_TEXT), 0)
  end
  local full_len = #text
  -- the vocabulary is the whole text's (the post's 65 characters), a slice or not
  local vocab = data.Vocab.build(text, { mode = "byte" })
  if slice and slice < #text then text = text:sub(1, slice) end
  local c = data.char_corpus { text = text, mode = "byte", split = { 1, 0, 0 }, vocab = vocab }
  c.source, c.full_length = source, full_len
  c.slice = (slice and slice < full_len) and slice or nil
  return c
end

local function glorot(t, fan_in, fan_out)
  local a = math.sqrt(6 / (fan_in + fan_out))
  t:copy_(recur.uniform(t:size(), -a, a))
end

-- TF's initialisation of one cell's parameters (see the top comment). For the fused cells
-- W_x and W_h are the two halves of the one matrix TF's _linear([x, h]) makes: Glorot over
-- [I + H, G H] (the GRU: [I + H, 2H] for the gates and [I + H, H] for the candidate). The
-- mixture GRU follows the post's code: gates _linear([x, h], 2H, bias 1.0), the K input
-- matrices one [K, I, H] variable (Glorot fans K I and K H), lambda _linear([x, h], K),
-- candidate _linear(r h, H).
function M.tf_init_cell(cell)
  local p = {}
  for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
  local I, H = cell.input, cell.hidden
  recur.no_grad(function()
    if cell.kind == "gru" then
      glorot(p.W_x:narrow(2, 1, 2 * H), I + H, 2 * H)
      glorot(p.W_h:narrow(2, 1, 2 * H), I + H, 2 * H)
      glorot(p.W_x:narrow(2, 2 * H + 1, H), I + H, H)
      glorot(p.W_h:narrow(2, 2 * H + 1, H), I + H, H)
    elseif cell.kind == "mixture_gru" then
      local K = p.b_l:size(1)
      glorot(p.W_gx, I + H, 2 * H)
      glorot(p.W_gh, I + H, 2 * H)
      glorot(p.W_mix, K * I, K * H)
      glorot(p.W_lx, I + H, K)
      glorot(p.W_lh, I + H, K)
      glorot(p.U_c, H, H)
    elseif p.W_x and p.W_h then
      local GH = p.W_x:size(2)
      glorot(p.W_x, I + H, GH)
      glorot(p.W_h, I + H, GH)
      -- peepholes (TF LSTMCell's w_*_diag, 1-D: fans H and H)
      for _, k in ipairs { "p_i", "p_f", "p_o" } do
        if p[k] then glorot(p[k], H, H) end
      end
    else
      error("r2rt_charlm.tf_init_cell: no TF initialisation for a " .. tostring(cell.kind)
        .. " cell", 2)
    end
  end)
end

-- The post's model: embedding [V, H], `layers` cells of `hidden`, softmax readout, TF's init.
-- o: vocab, cell (a kind or a Lua cell definition), hidden, layers, dropout, cell_opts,
-- connection (recur.rnn.RNN's).
function M.model(o)
  local m = CharRNN.new { vocab = o.vocab, embed = o.hidden, hidden = o.hidden, layers = o.layers,
    cell = o.cell, dropout = o.dropout or 0, cell_opts = o.cell_opts, connection = o.connection }
  local V, H = o.vocab, o.hidden
  recur.no_grad(function()
    glorot(m.embed.weight, V, H)
    glorot(m.out.weight, H, V)
    m.out.bias:fill_(0)
  end)
  for _, cell in ipairs(m.rnn.cells) do M.tf_init_cell(cell) end
  return m
end

local function detach_state(st)
  local out = {}
  for l, layer in ipairs(st) do
    out[l] = {}
    for k, t in ipairs(layer) do out[l][k] = t:detach() end
  end
  return out
end

-- Trains m on ids (a 1-D tensor) as the post's train_network: Adam(lr), batch x steps windows
-- of PTB's iterator, the state carried within an epoch and reset at each epoch's start, no
-- clipping. o: steps, batch, epochs, lr, run (a sweep run: progress and log lines),
-- max_steps (stop after that many windows: the timing probes), val_ids (then each epoch's
-- validation loss, evaluation mode, state carried, is measured too), checkpoint and tag (a
-- path: after every epoch the model, Adam's state, the random generator and the history are
-- saved there with recur.save, atomically; a call that finds a checkpoint written with the
-- same tag starts at the epoch after it, and gives the uninterrupted run's numbers; the file
-- is removed when every epoch is done).
-- Returns {losses = {per epoch}, seconds = {per epoch}, val = {per epoch} or nil,
-- steps_per_epoch, ms_per_step, ms_per_step_warm (the first step left out), resumed_epochs}.
function M.train(m, ids, o)
  local opt = recur.optim.Adam(m, { lr = o.lr })
  local r = { losses = {}, seconds = {}, val = o.val_ids and {} or nil, resumed_epochs = 0 }
  if o.checkpoint and exists(o.checkpoint) then
    local ok, ck = pcall(recur.load, o.checkpoint, { optimizer = false })
    local meta = ok and ck.meta
    if type(meta) == "table" and meta.tag == o.tag and type(meta.losses) == "table" then
      recur.load(o.checkpoint, { model = m, optimizer = opt })
      r.losses, r.seconds, r.val = meta.losses, meta.seconds, o.val_ids and meta.val or nil
      r.resumed_epochs = #meta.losses
      if o.run then o.run:log("resuming after epoch %d from %s", #meta.losses, o.checkpoint) end
    end
  end
  local first = #r.losses + 1
  local it = data.lm_batches(ids, { batch = o.batch, steps = o.steps, epochs = o.epochs,
    start = { epoch = first, step = 1 } })
  local per = it.steps_per_epoch
  r.steps_per_epoch = per
  local total = per * o.epochs
  if o.max_steps then total = math.min(total, o.max_steps) end
  m:train()
  local state, sum, n, t0, done, here = nil, 0, 0, now(), (first - 1) * per, 0
  local t_all, t_first = now(), nil
  while done < total do
    local x, y, info = it()
    if not x then break end
    if info.epoch_start then state, sum, n, t0 = nil, 0, 0, now() end
    opt:zero_grad()
    local loss, fin = m:loss(x, y, state)
    loss:backward()
    opt:step()
    state = detach_state(fin)
    sum, n, done, here = sum + loss:item(), n + 1, done + 1, here + 1
    if here == 1 then t_first = now() end
    if o.run then o.run:progress(done, total) end
    if info.epoch_end then
      local e = #r.losses + 1
      r.losses[e], r.seconds[e] = sum / n, now() - t0
      if o.val_ids then r.val[e] = M.evaluate(m, o.val_ids, o) end
      if o.run then
        o.run:log("epoch %d/%d: mean training loss %.4f%s (%.1f s)", e, o.epochs, r.losses[e],
          r.val and string.format(", validation %.4f", r.val[e]) or "", r.seconds[e])
      end
      if o.checkpoint and e < o.epochs then
        recur.save(o.checkpoint, { model = m, optimizer = opt, rng = true,
          meta = { tag = o.tag, losses = r.losses, seconds = r.seconds, val = r.val } })
      end
    end
  end
  if #r.losses == 0 and n > 0 then r.partial_loss = sum / n end
  local t_end = now()
  r.ms_per_step = (t_end - t_all) * 1000 / math.max(here, 1)
  -- without the first step (which grows the workspaces): what the timing probes use
  r.ms_per_step_warm = here > 1 and (t_end - t_first) * 1000 / (here - 1) or r.ms_per_step
  if o.checkpoint and #r.losses >= o.epochs then os.remove(o.checkpoint) end
  return r
end

-- The checkpoint path of a sweep's run: beside the results file `out`, named after the post,
-- the sweep, the profile and the run's key.
function M.checkpoint_path(out, post, sweep, profile, key)
  local dir = out:match("^(.*)/[^/]*$") or "."
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  return string.format("%s/%s.%s.%s.%s.ckpt", dir, post, sweep, profile,
    (key:gsub("[^%w%-_.=]", "_")))
end

-- Mean cross-entropy over ids in evaluation mode, the state carried (batch capped so that the
-- text gives at least one window).
function M.evaluate(m, ids, o)
  local batch = math.min(o.batch, (ids:numel() - 1) // (o.steps + 1))
  if batch < 1 then return nil end
  local was = m.training
  m:eval()
  local total, n = 0, 0
  recur.no_grad(function()
    local st
    for x, y in data.lm_batches(ids, { batch = batch, steps = o.steps }) do
      local l
      l, st = m:loss(x, y, st)
      total, n = total + l:item(), n + 1
    end
  end)
  if was then m:train() end
  return total / n
end

-- The post's generate_characters: the prompt fed at batch 1, then `length` characters, each
-- drawn from the top_k renormalised probabilities (temperature 1), the state carried.
-- Returns the prompt followed by the generated text (characters of the prompt the text lacks
-- are left out of it).
function M.generate(m, vocab, o)
  local ids = vocab:encode(o.prompt, { unknown = "skip" })
  local prime = ids:numel() > 0 and ids:totable() or {}
  local out = m:sample { prime = prime, length = o.length, temperature = 1, top_k = o.top_k }
  return (#prime > 0 and vocab:decode(prime) or "") .. vocab:decode(out)
end

-- A rough wall time: `ms` per step times the steps, formatted.
function M.duration(seconds)
  if seconds < 90 then return string.format("%.0f s", seconds) end
  if seconds < 5400 then return string.format("%.1f min", seconds / 60) end
  return string.format("%.1f h", seconds / 3600)
end

return M
