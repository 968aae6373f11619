-- The models of R2RT's "Recurrent Neural Networks in Tensorflow III - Variable Length
-- Sequences": an embedding, a GRU run with the batch's lengths, dropout on its outputs and a
-- softmax readout, as an nn.Module.
--
--   local VarLen = require "models.r2rt_varlen"
--   local m = VarLen.new { vocab = 10000, classes = 15, embed = 64, hidden = 64, keep = 0.6,
--                          mode = "last" | "seq2seq", init_state = "trained" | "zero" }
--   local loss, stats = m:loss(x, lengths, y)   -- x [T, B] ids, lengths [B] (1..T), y [B] classes
--   -- stats = {correct = (the accuracy's numerator), count = (its denominator)}; seq2seq
--   -- also gives last_correct: how many sequences the guess at their last step gets right
--
-- mode "last" (the post's classifier): the output at each sequence's last real step (the
-- post's gather at i * max_len + seqlen_i - 1), softmax over the classes, mean cross-entropy;
-- accuracy = correct / B.
-- mode "seq2seq" (the post's variant): the label tiled over time, a guess at every step; the
-- mask is 1 on each sequence's first seqlen steps (the post's rows seqlen - 1 of tril(ones));
-- loss = sum(mask * CE) / sum(mask); accuracy = sum(correct * mask) / sum(seqlen).
--
-- Initialisation is the post's TensorFlow code, not recur's defaults:
--   embed.weight [V, E]     Glorot-uniform (tf.get_variable without an initializer)
--   rnn (gru, TF form)      GRUCell's two matrices, each Glorot-uniform over its own fans:
--                           gates [I + H, 2H] (fans I + H, 2H), candidate [I + H, H]
--                           (fans I + H, H); gate biases 1.0 (GRUCell's bias_start), the
--                           candidate's 0. recur keeps them as W_x [I, 3H] and W_h [H, 3H]
--                           (blocks r, z, n), filled from the same bounds.
--   init_state.layer1.h     trained, constant 0 (mode "last"); none for "zero"
--   out.weight / out.bias   Glorot-uniform / 0 (the post's softmax W and b)
local recur = require("recur")
local nn = recur.nn
local IS = recur.rnn.initial_state

local VarLen = nn.Module:extend("VarLenGRU")

function VarLen.new(a, b)
  if type(a) == "table" and rawget(a, "_class_name") then return nn.Module.new(a, b) end
  return nn.Module.new(VarLen, a)
end

local function int_opt(o, k, default)
  local v = o[k]
  if v == nil then v = default end
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("VarLenGRU: %s must be a positive integer, got %s", k, tostring(v)), 4)
  end
  return v
end

-- Fills the GRU cell's parameters as TensorFlow's GRUCell initialises its two matrices.
local function tf_gru_init(cell)
  local I, H = cell.input, cell.hidden
  local p = {}
  for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
  local gates = math.sqrt(6 / ((I + H) + 2 * H))
  local cand = math.sqrt(6 / ((I + H) + H))
  recur.no_grad(function()
    for _, W in ipairs { p.W_x, p.W_h } do
      W:narrow(2, 1, 2 * H):copy_(recur.uniform({ W:size(1), 2 * H }, -gates, gates))
      W:narrow(2, 2 * H + 1, H):copy_(recur.uniform({ W:size(1), H }, -cand, cand))
    end
    p.b:narrow(1, 1, 2 * H):fill_(1)
    p.b:narrow(1, 2 * H + 1, H):fill_(0)
  end)
end

function VarLen:init(o)
  if type(o) ~= "table" then error("VarLenGRU.new: expected an options table", 3) end
  self.V = int_opt(o, "vocab")
  self.C = int_opt(o, "classes")
  self.E = int_opt(o, "embed", 64)
  self.H = int_opt(o, "hidden", 64)
  self.keep = o.keep or 0.6
  if type(self.keep) ~= "number" or self.keep <= 0 or self.keep > 1 then
    error("VarLenGRU: keep must be a probability in (0, 1], got " .. tostring(o.keep), 3)
  end
  self.mode = o.mode or "last"
  if self.mode ~= "last" and self.mode ~= "seq2seq" then
    error('VarLenGRU: mode must be "last" or "seq2seq", got ' .. tostring(o.mode), 3)
  end
  self.init_state_name = o.init_state or (self.mode == "last" and "trained" or "zero")
  self.batch_dim = 2 -- x is [T, B]
  self.embed = nn.Embedding(self.V, self.E, { init = nn.init.glorot_uniform() })
  self.rnn = recur.rnn.RNN { cell = "gru", input = self.E, hidden = self.H }
  tf_gru_init(self.rnn.cells[1])
  self.out = nn.Linear(self.H, self.C, { weight_init = nn.init.glorot_uniform(),
    bias_init = nn.init.zeros })
  self.init_state = IS.by_name(self.init_state_name, {}):bind(self.rnn)
  self:parameters()
end

function VarLen:extra_repr()
  return string.format("VarLenGRU(vocab %d, embed %d, gru %d, %d classes, %s, init %s, keep %g)",
    self.V, self.E, self.H, self.C, self.mode, self.init_state_name, self.keep)
end

-- x [T, B] ids, lengths [B] -> logits: [B, C] (mode "last") or [T * B, C] (seq2seq, time-major)
function VarLen:forward(x, lengths)
  local T, B = x:size(1), x:size(2)
  local state = self.init_state(B, { training = self.training })
  local out = self.rnn(self.embed(x), { state = state, lengths = lengths })
  out = nn.F.dropout(out, 1 - self.keep, self.training) -- the post: on every output
  if self.mode == "last" then
    return self.out(recur.rnn.last(out, lengths))
  end
  return self.out(out:reshape(T * B, self.H))
end

-- The post's loss and the two terms of its accuracy (see the header).
function VarLen:loss(x, lengths, y)
  local T, B = x:size(1), x:size(2)
  local logits = self:forward(x, lengths)
  if self.mode == "last" then
    local loss = nn.cross_entropy(logits, y)
    local correct = recur.no_grad(function() return logits:argmax(2):eq(y):sum():item() end)
    return loss, { correct = correct, count = B }
  end
  local lens = recur.is_tensor(lengths) and lengths or recur.tensor(lengths)
  local steps = recur.arange(1, T + 1):view(T, 1):expand(T, B)
  local mask = steps:le(lens:view(1, B):expand(T, B)):reshape(T * B)
  local targets = y:view(1, B):expand(T, B):reshape(T * B)
  local loss = nn.cross_entropy(logits, targets, { mask = mask })
  local correct, last = recur.no_grad(function()
    local hit = logits:argmax(2):eq(targets)
    return (hit * mask):sum():item(), hit:view(T, B):gather(1, lens:view(1, B)):sum():item()
  end)
  return loss, { correct = correct, count = lens:sum():item(), last_correct = last }
end

return VarLen
