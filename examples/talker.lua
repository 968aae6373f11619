-- The talker's brain: a character-level LSTM written from recur's primitive ops, one character
-- per call. examples/talker.c calls talker.next_char() inside its frame budget and reloads this
-- file whenever it changes (edit it while the example runs: the voice changes, the line being
-- spoken carries on).
--
-- There is no trained checkpoint yet, so the weights are scripted: the cell copies the last
-- character into its state (input gate open, forget gate shut) and the output layer holds the
-- log-probabilities of character pairs counted in LINES below, so the LSTM speaks like a bigram
-- model of them. A trained char-RNN plugs in at load_weights(): the host loads the file with
-- recur_load_checkpoint("char_rnn.safetensors") and passes the tensors to talker.set_weights
-- (names Wx [V, 4H], Wh [H, 4H], b [4H], Wy [H, V], by [V]; gate order i, f, g, o), or a
-- trusted (non-sandboxed) script calls recur.load itself.
local recur = require "recur"

talker = talker or {}
local T = talker
T.voice = "shopkeeper"
T.temperature = 0.8

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
local function bigram_logits()
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
  return recur.tensor(counts) -- [V, V]
end

-- Weights of the scripted LSTM. Gates are laid out [i | f | g | o] along the 4H columns.
local function scripted_weights()
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
  local Wy = bigram_logits() / hot
  return {Wx = Wx, Wh = Wh, b = b, Wy = Wy, by = recur.zeros(V)}
end

local W

-- Where a trained checkpoint plugs in (see the top of the file).
function T.set_weights(w)
  for _, k in ipairs {"Wx", "Wh", "b", "Wy", "by"} do
    assert(recur.is_tensor(w[k]), "set_weights: missing tensor " .. k)
  end
  W, H = w, w.Wh:size(1)
  T.reset()
end

local function load_weights()
  W = scripted_weights()
end

-- One LSTM step on character index c (1-based): returns the logits of the next character.
local function step(c)
  local s = T.state
  local g = W.Wx:narrow(1, c, 1) + recur.matmul(s.h, W.Wh) + W.b -- [1, 4H]
  local i = g:narrow(2, 1, H):sigmoid()
  local f = g:narrow(2, H + 1, H):sigmoid()
  local gg = g:narrow(2, 2 * H + 1, H):tanh()
  local o = g:narrow(2, 3 * H + 1, H):sigmoid()
  s.c = f * s.c + i * gg
  s.h = o * s.c:tanh()
  return recur.matmul(s.h, W.Wy) + W.by -- [1, V]
end

function T.reset()
  T.state = {h = recur.zeros(1, H), c = recur.zeros(1, H), last = index["\n"], len = 0}
end

-- The next character of the line being spoken ("\n" when the line is over).
function T.next_char()
  local s = T.state
  local logits = step(s.last)
  local probs = (logits / T.temperature):softmax(2)
  local c = math.tointeger(probs:multinomial(1):item())
  s.len = s.len + 1
  if s.len > 70 then c = index["\n"] end -- keep lines short enough for the bubble
  s.last = c
  if chars[c] == "\n" then s.len = 0 end
  return chars[c]
end

load_weights()
if not T.state or T.state.h:size(2) ~= H then T.reset() end
return T
