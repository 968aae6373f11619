-- The toy problem of R2RT's "Recurrent Neural Networks in Tensorflow I" (r2rt-reference.md,
-- section 1): the post's data generator and batching, the analytic cross-entropies, its
-- vanilla RNN (the fused "rnn" cell, or the post's concat cell written in Lua) and its
-- training loop (TF-style truncated backprop, Adagrad 0.1).
--
--   local toy = require "models.r2rt_toy"
--   local x, y = toy.gen_data(1000000)                 -- 1-D tensors of 0/1
--   local xb = toy.batch_matrix(x, 200)                -- [5000, 200]: column b = the post's row b
--   local H = toy.entropies()                          -- {neither =, t3 =, t8 =, both =} (nats)
--   local r = toy.train{num_steps = 5, state = 4, epochs = 1, on_log = function(step, mean) end}
--   -- r.curve = { {step =, epoch =, loss =}, ... } (mean of each 100 steps), r.losses (every step)
--   local m = toy.Model{state = 4, cell = "lua", params = toy.init_params(4)}  -- or cell = "fused"
--   toy.evaluate(r.model, {num_steps = 1, other_row = true})   -- a trained model on fresh data
local recur = require "recur"
local nn = recur.nn

local toy = {}

-- P(Y_t = 1) from X_{t-3} and X_{t-8} (numbers or 0/1 tensors): the post's threshold
-- (p in {0.5, 1.0, 0.25, 0.75}). The generator and the entropies both use it.
function toy.threshold(x3, x8)
  return 0.5 + 0.5 * x3 - 0.25 * x8
end

-- The post's gen_data: X_t ~ Bernoulli(0.5) i.i.d., Y_t = 0 if rand() > threshold else 1.
-- roll(k) gives out[t] = X[t - k] cyclically: Python's X[i-3] and X[i-8] for i < 3, i < 8
-- read the end of the array, and so does this.
function toy.gen_data(size)
  size = size or 1000000
  if math.type(size) ~= "integer" or size < 9 then
    error("r2rt_toy.gen_data: size must be an integer >= 9, got " .. tostring(size), 2)
  end
  local x = recur.rand(size):lt(0.5)
  return x, toy.labels(x, recur.rand(size))
end

-- Y from X and one uniform draw u per step (1-D tensors of one length): 1 where u <= threshold.
function toy.labels(x, u)
  return u:le(toy.threshold(x:roll(3, 1), x:roll(8, 1)))
end

-- The post's gen_batch layout: the series cut into batch_size contiguous rows of
-- len // batch_size (the tail dropped), returned time-major, [len // batch_size, batch_size],
-- so that a window of num_steps is a contiguous narrow along dimension 1.
function toy.batch_matrix(x, batch_size)
  local L = x:size(1) // batch_size
  if L < 1 then
    error(string.format("r2rt_toy.batch_matrix: %d values cannot make %d rows", x:size(1), batch_size), 2)
  end
  return x:narrow(1, 1, L * batch_size):view(batch_size, L):t():contiguous()
end

local function bernoulli_entropy(p)
  local h = 0
  if p > 0 then h = h - p * math.log(p) end
  if p < 1 then h = h - (1 - p) * math.log(1 - p) end
  return h
end

-- The expected cross-entropy (nats) of the best predictor that knows X_{t-3} (k3), X_{t-8}
-- (k8), both or neither: average the threshold over what it does not know (each X is 1 with
-- probability 1/2), then average the entropy of that Bernoulli over what it knows.
function toy.entropy(k3, k8)
  local total = 0
  for a = 0, 1 do
    for b = 0, 1 do
      local p, n = 0, 0
      for a2 = 0, 1 do
        for b2 = 0, 1 do
          if (not k3 or a2 == a) and (not k8 or b2 == b) then
            p, n = p + toy.threshold(a2, b2), n + 1
          end
        end
      end
      total = total + 0.25 * bernoulli_entropy(p / n)
    end
  end
  return total
end

function toy.entropies()
  return { neither = toy.entropy(false, false), t3 = toy.entropy(true, false),
    t8 = toy.entropy(false, true), both = toy.entropy(true, true) }
end

-- The post's cell written in Lua (its static unroll): S_t = tanh([X_t ; S_{t-1}] W + b),
-- W [classes + state, state]. Its gradients come from autograd.
toy.concat_cell = {
  name = "r2rt_concat",
  state_names = { "h" },
  param_names = { "W", "b" },
}

function toy.concat_cell.new_params(input, hidden)
  local a = math.sqrt(6 / (input + 2 * hidden))
  return { W = recur.uniform({ input + hidden, hidden }, -a, a):requires_grad(true),
    b = recur.zeros(hidden):requires_grad(true) }
end

function toy.concat_cell.step(p, x, state)
  local h = (recur.matmul(recur.cat({ x, state[1] }, 2), p.W) + p.b):tanh()
  return h, { h }
end

-- The post's initial values: tf.get_variable's Glorot-uniform for W [classes + state, state]
-- and the softmax's W [state, classes], zero biases. (recur's fused cells draw every weight
-- from U(-1/sqrt(H), 1/sqrt(H)), PyTorch's default; nn.Linear is Glorot-uniform already.)
function toy.init_params(state, classes)
  classes = classes or 2
  local a = math.sqrt(6 / (classes + 2 * state))
  local u = math.sqrt(6 / (state + classes))
  return { W = recur.uniform({ classes + state, state }, -a, a), b = recur.zeros(state),
    U = recur.uniform({ state, classes }, -u, u), bp = recur.zeros(classes) }
end

-- The model: cell = "fused" (recur.rnn.Cell "rnn": W_x and W_h are the two row blocks of the
-- post's W) or "lua" (toy.concat_cell); values from init_params (drawn when not given).
-- model:loss(x, y, h) for a window x, y [n, B] of 0/1 and the carried state h [B, H] returns
-- the mean cross-entropy over the window's n * B positions and the final state.
function toy.Model(o)
  o = o or {}
  local H, C = o.state or 4, o.classes or 2
  local init = o.params or toy.init_params(H, C)
  local m = { state = H, classes = C, kind = o.cell or "fused" }
  local U = init.U:clone():requires_grad(true)
  local bp = init.bp:clone():requires_grad(true)
  if m.kind == "fused" then
    -- the cell draws its own initial values; they are replaced below, and the draws undone so
    -- that both kinds of cell leave the generator where init_params left it
    local rng = recur.rng_state()
    local cell = recur.rnn.Cell { cell = "rnn", input = C, hidden = H }
    recur.set_rng_state(rng)
    local p = {}
    for _, np in ipairs(cell:parameters()) do p[np[1]] = np[2] end
    recur.no_grad(function()
      p.W_x:copy_(init.W:narrow(1, 1, C))
      p.W_h:copy_(init.W:narrow(1, C + 1, H))
      p.b:copy_(init.b)
    end)
    m.cell = cell
    m.params = { p.W_x, p.W_h, p.b, U, bp }
  elseif m.kind == "lua" then
    m.cell = recur.rnn.LuaCell(toy.concat_cell, { input = C, hidden = H,
      params = { W = init.W:clone():requires_grad(true), b = init.b:clone():requires_grad(true) } })
    m.params = { m.cell.p.W, m.cell.p.b, U, bp }
  else
    error("r2rt_toy.Model: cell must be \"fused\" or \"lua\", got " .. tostring(m.kind), 2)
  end
  function m.loss(_, x, y, h)
    local n, B = x:size(1), x:size(2)
    local xo = recur.one_hot((x + 1):reshape(n * B), C):view(n, B, C)
    local out, final = m.cell:forward(xo, { state = { h } })
    local logits = recur.matmul(out:reshape(n * B, H), U) + bp
    return nn.cross_entropy(logits, (y + 1):reshape(n * B)), final[1]
  end
  return m
end

-- Trains as the post's train_network: each epoch a fresh gen_data(size), cut into batch_size
-- rows and windows of num_steps; the state starts at zero each epoch and is carried from
-- window to window, detached; one Adagrad step per window (TensorFlow's form: accumulator
-- starting at 0.1, no epsilon). Options: num_steps (5), state (4), epochs (1), batch_size
-- (200), size (1e6), lr (0.1), cell ("fused"), params (initial values), log_every (100),
-- max_steps (stop early), on_log(step, mean, epoch_progress), on_step(done, total).
-- Returns {curve = {{step, epoch, loss}, ...}, losses = {every step's loss}, steps_per_epoch,
-- steps (taken), model}.
function toy.train(o)
  local n, epochs = o.num_steps or 5, o.epochs or 1
  local B, size, every = o.batch_size or 200, o.size or 1000000, o.log_every or 100
  local model = toy.Model { state = o.state or 4, cell = o.cell, params = o.params }
  local opt <close> = recur.optim.Adagrad(model.params,
    { lr = o.lr or 0.1, initial_accumulator = 0.1, eps = 0 })
  local per_epoch = (size // B) // n
  if per_epoch < 1 then error("r2rt_toy.train: num_steps is longer than a row", 2) end
  local total = per_epoch * epochs
  if o.max_steps then total = math.min(total, o.max_steps) end
  local curve, losses, sum, done = {}, {}, 0, 0
  for _ = 1, epochs do
    if done >= total then break end
    local x, y = toy.gen_data(size)
    local xb, yb = toy.batch_matrix(x, B), toy.batch_matrix(y, B)
    local h = recur.zeros(B, model.state)
    for k = 1, per_epoch do
      if done >= total then break end
      local first = (k - 1) * n + 1
      opt:zero_grad()
      local loss, final = model:loss(xb:narrow(1, first, n), yb:narrow(1, first, n), h)
      loss:backward()
      opt:step()
      h = final:detach()
      local l = loss:item()
      done = done + 1
      losses[done], sum = l, sum + l
      if done % every == 0 then
        local point = { step = done, epoch = done / per_epoch, loss = sum / every }
        curve[#curve + 1], sum = point, 0
        if o.on_log then o.on_log(point.step, point.loss, point.epoch) end
      end
      if o.on_step then o.on_step(done, total) end
    end
  end
  return { curve = curve, losses = losses, steps_per_epoch = per_epoch, steps = done, model = model }
end

-- The mean loss of a trained model on a fresh gen_data(size) (no gradient, no update), windows
-- of num_steps, each row's state carried from window to window. With other_row = true each
-- window starts instead from the carried state of the previous row (cyclic): a state from the
-- same distribution that knows nothing of this row's past (a probe of what the carried state
-- tells the model). Options: num_steps (5), batch_size (200), size (1e6), other_row (false).
function toy.evaluate(model, o)
  o = o or {}
  local n, B, size = o.num_steps or 5, o.batch_size or 200, o.size or 1000000
  return recur.no_grad(function()
    local x, y = toy.gen_data(size)
    local xb, yb = toy.batch_matrix(x, B), toy.batch_matrix(y, B)
    local windows, sum = xb:size(1) // n, 0
    local h = recur.zeros(B, model.state)
    for k = 1, windows do
      local first = (k - 1) * n + 1
      local xw, yw = xb:narrow(1, first, n), yb:narrow(1, first, n)
      local loss, final = model:loss(xw, yw, h)
      if o.other_row then loss = model:loss(xw, yw, h:roll(1, 1)) end
      sum, h = sum + loss:item(), final
    end
    return sum / windows
  end)
end

return toy
