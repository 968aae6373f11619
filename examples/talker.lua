-- The talker's brain: a character-level recurrent network that says one character per call.
-- examples/talker.c calls talker.next_char() inside its frame budget and reloads this file
-- whenever it changes (edit it while the example runs: the voice changes, the line being
-- spoken carries on).
--
-- Two voices:
--  * a trained char-RNN checkpoint (scripts/train_charrnn.lua writes one; `make demo` leaves
--    build/demo/charrnn.ckpt). The host loads the file with recur_load_checkpoint (the sandbox
--    lets the loader read exactly that file) and hands the loaded table to
--    talker.use_checkpoint(ck), again after every reload, so the weights survive reloads.
--    The script builds the model with models/charrnn.lua (found through the host's module
--    path) from ck.meta.config, loads ck.model (its state_dict) into it and decodes ids with
--    the vocabulary in ck.meta.vocab. Each call runs one batch-1 step: by default through
--    recur._rnn_generate (the char model's C generation loop, one id per call, no graph, no
--    allocation inside the step); talker.path = "lua" uses CharRNN:step under recur.no_grad.
--  * without a checkpoint, a scripted LSTM written from recur's primitive ops: its cell copies
--    the last character into its state and its output layer holds the log-probabilities of
--    the character pairs in LINES below, so it speaks like a bigram model of them.
--
-- The host's contract: talker.next_char() returns the next piece of the line ("\n" when the
-- line is over, possibly "" for a character that shows nothing); talker.use_checkpoint(ck)
-- and talker.describe() return a one-line description of the voice.
local recur = require "recur"

talker = talker or {}
local T = talker
T.temperature = 0.8 -- softmax temperature of the draws (0: always the most likely)
T.top_k = 0         -- checkpoint voice: draw among the k most likely characters (0: all)
T.path = "c"        -- checkpoint voice: "c" (recur._rnn_generate) or "lua" (CharRNN:step)
T.wrap = 56         -- a line ends at the first space after this many characters...
T.max_line = 72     -- ...or after this many, so that it fits the speech bubble

-- A brain: { kind, about, chars = {id -> text}, newline = id of "\n" (or nil),
--            reset = fn(), step = fn(last id) -> next id, last = id, len = characters said }

-- ---------------------------------------------------------------------------------------
-- the scripted voice

local LINES = {
  "welcome, traveller! have a look at my wares.",
  "the sword is sharp and the shield is strong.",
  "you will need a lantern for the caves to the north.",
  "no refunds. the dragon took the last customer who asked.",
  "a fine day for an adventure, is it not?",
  "i have potions, scrolls and a very old map.",
  "the road to the castle is long and the night is cold.",
  "come back when you have more gold.",
}

local function scripted_brain()
  -- the vocabulary: every character of the lines, plus "\n" to end a line
  local chars, index = {}, {}
  for _, line in ipairs(LINES) do
    for ch in (line .. "\n"):gmatch(".") do
      if not index[ch] then
        chars[#chars + 1] = ch
        index[ch] = #chars
      end
    end
  end
  local V = #chars
  local H = V -- the scripted weights need one state unit per character

  -- bigram log-probabilities with add-one smoothing: P(next | prev), "\n" also starts a line
  local counts = {}
  for p = 1, V do
    counts[p] = {}
    for n = 1, V do counts[p][n] = 0.02 end
  end
  for _, line in ipairs(LINES) do
    local prev = index["\n"]
    for ch in (line .. "\n"):gmatch(".") do
      counts[prev][index[ch]] = counts[prev][index[ch]] + 1
      prev = index[ch]
    end
  end
  for p = 1, V do
    local total = 0
    for n = 1, V do total = total + counts[p][n] end
    for n = 1, V do counts[p][n] = math.log(counts[p][n] / total) end
  end

  -- weights, gates laid out [i | f | g | o] along the 4H columns
  recur.seed(7)
  local Wx = recur.zeros(V, 4 * H)
  local b = recur.zeros(4 * H)
  recur.no_grad(function()
    b:narrow(1, 1, H):fill_(6)            -- input gate open
    b:narrow(1, H + 1, H):fill_(-6)       -- forget gate shut: the state is the last character
    b:narrow(1, 3 * H + 1, H):fill_(6)    -- output gate open
    Wx:narrow(2, 2 * H + 1, H):copy_(recur.eye(V) * 3) -- g = tanh(3) on the character's unit
  end)
  local Wh = recur.randn(H, 4 * H) * 0.01 -- a little recurrence, for variety
  local hot = math.tanh(math.tanh(3))    -- h on the active unit
  local Wy = recur.tensor(counts) / hot  -- [V, V]

  local brain = { kind = "scripted", chars = chars, newline = index["\n"],
    about = string.format("scripted bigram LSTM, vocabulary %d", V) }
  function brain.reset()
    brain.h, brain.c = recur.zeros(1, H), recur.zeros(1, H)
    brain.last, brain.len = brain.newline, 0
  end
  -- one LSTM step on character c, then one draw
  function brain.step(c)
    local g = Wx:narrow(1, c, 1) + recur.matmul(brain.h, Wh) + b -- [1, 4H]
    local i = g:narrow(2, 1, H):sigmoid()
    local f = g:narrow(2, H + 1, H):sigmoid()
    local gg = g:narrow(2, 2 * H + 1, H):tanh()
    local o = g:narrow(2, 3 * H + 1, H):sigmoid()
    brain.c = f * brain.c + i * gg
    brain.h = o * brain.c:tanh()
    return recur.sample_logits(recur.matmul(brain.h, Wy):view(V), T.temperature, 0)
  end
  brain.reset()
  return brain
end

-- ---------------------------------------------------------------------------------------
-- the checkpoint voice

-- models/charrnn.lua, through the host's module path.
local function require_charrnn()
  local ok, mod = pcall(require, "models.charrnn")
  if not ok then
    error("use_checkpoint: cannot load the char model (models/charrnn.lua; the host's module "
      .. "path must reach it):\n" .. tostring(mod), 0)
  end
  return mod
end

local function checkpoint_brain(ck)
  local meta = type(ck) == "table" and ck.meta
  if type(meta) ~= "table" or meta.kind ~= "charrnn" or type(meta.config) ~= "table"
      or type(ck.model) ~= "table" then
    error("use_checkpoint: not a char-RNN checkpoint (scripts/train_charrnn.lua writes them)", 0)
  end
  local CharRNN = require_charrnn()
  local vocab = recur.data.Vocab.from_table(meta.vocab)
  local model = CharRNN.new(meta.config)
  if vocab:size() ~= model.V then
    error(string.format("use_checkpoint: the vocabulary has %d symbols, the model %d",
      vocab:size(), model.V), 0)
  end
  local ok, err = pcall(model.load_state_dict, model, ck.model)
  if not ok then
    error("use_checkpoint: the checkpoint does not fit its model: "
      .. tostring(err):gsub("^[^\n]-%.lua:%d+: ", ""), 0)
  end
  model:eval()

  local chars, newline = {}, nil
  for id = 1, vocab:size() do
    local s = vocab:symbol(id)
    if s == "\n" then newline = id end
    chars[id] = s == "\r" and "" or s == "\t" and " " or s
  end
  local fused = true
  for _, cell in ipairs(model.rnn.cells) do
    if type(cell) ~= "userdata" then fused = false end
  end
  local c = meta.config
  local brain = { kind = "checkpoint", ck = ck, chars = chars, newline = newline,
    about = string.format("char-RNN %s %dx%d, vocabulary %d (%s), %s path", c.cell, c.layers,
      c.hidden, vocab:size(), vocab.mode, (fused and T.path ~= "lua") and "C" or "Lua") }
  function brain.reset()
    brain.state = recur.no_grad(function() return model:initial_state(1) end)
    -- a line starts after a newline (else after the first symbol)
    brain.last, brain.len = newline or 1, 0
  end
  if fused and T.path ~= "lua" then
    local cells, embed, W, b = model.rnn.cells, model.embed.weight, model.out.weight,
      model.out.bias
    local prime = { 0 }
    function brain.step(last)
      prime[1] = last
      local ids
      ids, brain.state = recur._rnn_generate(cells, embed, W, b, brain.state, prime, 1,
        T.temperature, T.top_k)
      return ids[1]
    end
  else
    local ids = recur.tensor { 1 }
    function brain.step(last)
      return recur.no_grad(function()
        ids:set(last, 1)
        local logits
        logits, brain.state = model:step(ids, brain.state)
        return CharRNN.pick(logits, T.temperature, T.top_k)
      end)
    end
  end
  brain.reset()
  return brain
end

-- Switches to the checkpoint's voice. The host calls it after every (re)load of this file;
-- for the checkpoint already in use the model is rebuilt with this file's code and the line
-- being spoken carries on.
function T.use_checkpoint(ck)
  local old = T.brain
  local brain = checkpoint_brain(ck)
  if old and old.ck == ck then
    brain.state, brain.last, brain.len, brain.cut = old.state, old.last, old.len, old.cut
  end
  T.brain = brain
  return brain.about
end

function T.describe()
  return T.brain and T.brain.about or "no voice"
end

function T.reset()
  T.brain.reset()
end

-- The next piece of the line being spoken: a character, "\n" when the line is over, or ""
-- (a blank line, a carriage return).
function T.next_char()
  local b = T.brain
  if b.cut then -- the previous call reached the end of the bubble
    b.cut, b.len = false, 0
    return "\n"
  end
  local id = b.step(b.last)
  b.last = id
  local ch = b.chars[id]
  if id == b.newline then
    if b.len == 0 then return "" end -- no empty lines
    b.len = 0
    return "\n"
  end
  b.len = b.len + 1
  if ch == " " and b.len > T.wrap then -- the model goes on from the space, on a new line
    b.len = 0
    return "\n"
  end
  if b.len >= T.max_line then b.cut = true end
  return ch
end

-- Running this file keeps a checkpoint voice (the host passes the checkpoint again right
-- after) and rebuilds the scripted one, keeping its line.
if not T.brain or T.brain.kind == "scripted" then
  local old = T.brain
  T.brain = scripted_brain()
  if old and #old.chars == #T.brain.chars then
    T.brain.h, T.brain.c, T.brain.last, T.brain.len = old.h, old.c, old.last, old.len
  end
end
return T
