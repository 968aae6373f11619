-- A character model on short independent sequences: the task of R2RT's "Non-Zero Initial
-- States for Recurrent Neural Networks" as the reference (section 6) proposes it, with the
-- state reset at the start of every sequence, so that the initial state matters at every
-- sequence.
--
--   local CS = require "models.charseq"
--   local set = CS.cut(ids, 30)              -- ids [n] -> {x = [N, 30], y = [N, 30], n = N}
--   local x, y = CS.batch(set, {3, 17, ...}) -- sequences by number -> x, y [30, B] (time first)
--   local model = CS.model{vocab = 65, embed = 100, hidden = 100, layers = 1, cell = "gru",
--                          init_state = "trained_noisy", init_std = 0.3}
--   local per_pos = CS.position_loss(model, set, {batch = 500})  -- {T mean losses, nats}
--
-- The model is models/charrnn.lua (embedding, fused cells, linear readout, a bound
-- recur.rnn.initial_state strategy) with its values drawn again as the posts' TensorFlow code
-- draws them (tf_init): Glorot-uniform weights (tf.get_variable's default), zero biases but
-- the GRU's r and u gates' 1.0 (GRUCell's _linear(..., 1.0)), and the trained initial state
-- Glorot-uniform over its [H] (make_variable_state_initializer's default: get_variable with no
-- initializer; fans H and H).
local recur = require("recur")
local CharRNN = require("models.charrnn")
local nn = recur.nn

local M = {}

-- Cuts a stream of ids into N = (n - 1) // T sequences of T inputs and T targets (the next
-- ids): sequence k reads ids[(k-1)T + 1 .. kT] and predicts ids[(k-1)T + 2 .. kT + 1], so
-- every id but the first is a target exactly once.
function M.cut(ids, T)
  if not recur.is_tensor(ids) or ids:dim() ~= 1 then
    error("charseq.cut: ids must be a 1-D tensor", 2)
  end
  if math.type(T) ~= "integer" or T < 1 then
    error("charseq.cut: T must be an integer >= 1, got " .. tostring(T), 2)
  end
  local N = (ids:numel() - 1) // T
  if N < 1 then
    error(string.format("charseq.cut: %d ids make no sequence of %d steps", ids:numel(), T), 2)
  end
  return { x = ids:narrow(1, 1, N * T):contiguous():view(N, T),
    y = ids:narrow(1, 2, N * T):contiguous():view(N, T), n = N, T = T }
end

-- The sequences numbered idx (a list or a 1-D tensor of 1-based numbers) as x, y [T, B].
function M.batch(set, idx)
  if not recur.is_tensor(idx) then idx = recur.tensor(idx) end
  return set.x:index_select(1, idx):t():contiguous(), set.y:index_select(1, idx):t():contiguous()
end

local function glorot(t, limit)
  t:copy_(recur.uniform(t:size(), -limit, limit))
end

-- Draws the model's values again as the posts' TensorFlow code does (see the top comment).
-- The order of the draws does not depend on the strategy, and the trained vectors come last,
-- so one seed gives the four strategies the same weights.
function M.tf_init(model)
  recur.no_grad(function()
    local V, E = model.embed.weight:size(1), model.embed.weight:size(2)
    glorot(model.embed.weight, math.sqrt(6 / (V + E)))
    local H = model.H
    glorot(model.out.weight, math.sqrt(6 / (H + V)))
    model.out.bias:zero_()
    for _, cell in ipairs(model.rnn.cells) do
      local p = {}
      for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
      local I = cell.input
      if cell.kind == "gru" and not cell.reset_after then
        -- GRUCell: Gates/Linear [I + H, 2H] (r, u), Candidate/Linear [I + H, H]
        local g, c = math.sqrt(6 / (I + H + 2 * H)), math.sqrt(6 / (I + H + H))
        for _, w in ipairs { p.W_x, p.W_h } do
          glorot(w:narrow(2, 1, 2 * H), g)
          glorot(w:narrow(2, 2 * H + 1, H), c)
        end
        p.b:narrow(1, 1, 2 * H):fill_(1)
        p.b:narrow(1, 2 * H + 1, H):zero_()
      elseif cell.kind == "rnn" then
        -- BasicRNNCell: Linear [I + H, H]
        local a = math.sqrt(6 / (I + H + H))
        glorot(p.W_x, a)
        glorot(p.W_h, a)
        p.b:zero_()
      elseif cell.kind == "lstm" then
        -- BasicLSTMCell: Linear [I + H, 4H], forget_bias 1.0 added in the cell (recur keeps
        -- it in b's f block)
        local a = math.sqrt(6 / (I + H + 4 * H))
        glorot(p.W_x, a)
        glorot(p.W_h, a)
        p.b:zero_()
        p.b:narrow(1, H + 1, H):fill_(1)
      else
        error("charseq.tf_init: no TensorFlow initialisation for cell " .. tostring(cell.kind), 2)
      end
    end
    for _, np in ipairs(model.init_state:named_parameters()) do
      local t = np[2]
      glorot(t, math.sqrt(6 / (t:size(1) + t:size(1))))
    end
  end)
  return model
end

-- models/charrnn.lua's model with the posts' initial values (tf_init)
function M.model(o)
  return M.tf_init(CharRNN.new(o))
end

-- The mean loss (nats) at each of the T positions over every sequence of the set, the model in
-- evaluation mode (no dropout, no state noise), in batches of opts.batch (default 512);
-- opts.limit caps the number of sequences (the first ones). Returns {T means}, the overall
-- mean, and the number of sequences.
function M.position_loss(model, set, opts)
  opts = opts or {}
  local B = opts.batch or 512
  local N = math.min(set.n, opts.limit or set.n)
  local T = set.T
  local sums = recur.zeros(T)
  local was = model.training
  model:eval()
  recur.no_grad(function()
    for s = 1, N, B do
      local b = math.min(B, N - s + 1)
      local x = set.x:narrow(1, s, b):t():contiguous()
      local y = set.y:narrow(1, s, b):t():contiguous()
      local logits = model:forward(x)
      local l = nn.cross_entropy(logits, y:reshape(T * b), { reduction = "none" })
      sums:add_(l:view(T, b):sum(2):view(T))
    end
  end)
  if was then model:train() end
  local out, total = {}, 0
  for t = 1, T do
    out[t] = sums:get(t) / N
    total = total + out[t]
  end
  return out, total / T, N
end

return M
