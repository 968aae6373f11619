-- What R2RT's MNIST posts share (r2rt-reference.md, sections 8, 9, 10): the TF tutorial split,
-- synthetic digits for smoke runs without the dataset, the posts' initialisation (weights
-- truncated normal 0.1, biases 0.1), TF 0.x's next_batch, and accuracy.
--
--   local M = require "models.r2rt_mnist"
--   local d = M.load{synthetic = false}   -- d.train / d.val / d.test = {x [N, 784], y [N] 1..10},
--                                         -- d.source ("mnist 55k split" or "synthetic ...")
--   local l = M.linear(784, 100)           -- nn.Linear with the posts' initial values
--   local nb = M.NextBatch(d.train, 1000)  -- nb:next() -> x, y (TF 0.x's mnist.train.next_batch)
--   M.accuracy(logits, y)                  -- a number in [0, 1]
local recur = require "recur"
local nn = recur.nn

local M = {}

-- The TF tutorial split (55,000 / 5,000 / 10,000; the first 5,000 training images are the
-- validation set), from $RECUR_DATA/mnist.
function M.mnist()
  local d = recur.data.mnist { split = "55k" }
  d.source = "MNIST, TF split 55,000 / 5,000 / 10,000"
  return d
end

function M.mnist_present()
  local f = io.open(recur.data.root() .. "/mnist/train-images-idx3-ubyte", "rb")
  if f then f:close() end
  return f ~= nil
end

-- Synthetic "digits" for smoke runs: ten fixed 28x28 prototypes (a few strokes each, drawn
-- with a private generator so that recur's generator is untouched), each example its class's
-- prototype plus Gaussian noise (std 0.3), clamped to [0, 1]. Learnable, not MNIST.
function M.synthetic(sizes)
  sizes = sizes or {}
  local state = 12345
  local function rnd() -- a tiny LCG: the prototypes are the same whatever recur's seed
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  end
  local protos = {}
  for c = 1, 10 do
    local img = {}
    for i = 1, 784 do img[i] = 0 end
    for _ = 1, 3 do -- three strokes from one random point to another
      local r0, c0, r1, c1 = 5 + rnd() * 18, 5 + rnd() * 18, 5 + rnd() * 18, 5 + rnd() * 18
      for s = 0, 30 do
        local r, cc = math.floor(r0 + (r1 - r0) * s / 30), math.floor(c0 + (c1 - c0) * s / 30)
        for dr = 0, 1 do
          for dc = 0, 1 do img[(r + dr) * 28 + cc + dc + 1] = 1 end
        end
      end
    end
    protos[c] = img
  end
  local P = recur.tensor(protos):view(10, 28, 28)
  local function make(n)
    local y = recur.randint(1, 10, n)
    local x = P:index_select(1, y)
    x = (x + recur.normal({ n, 28, 28 }, 0, 0.3)):clamp(0, 1):contiguous():view(n, 784)
    return { x = x, y = y }
  end
  return {
    train = make(sizes.train or 1200), val = make(sizes.val or 200), test = make(sizes.test or 500),
    classes = 10, synthetic = true, source = "synthetic digits (MNIST absent): smoke data, not MNIST",
  }
end

-- MNIST when it is installed; for a smoke run without it, synthetic digits; else the loader's
-- error (it names data/fetch mnist).
function M.load(o)
  o = o or {}
  if o.smoke and not M.mnist_present() then return M.synthetic(o.sizes) end
  return M.mnist()
end

-- The posts' weight_variable / bias_variable: truncated normal (std 0.1, re-drawn beyond 2 std)
-- and the constant 0.1. TF's [in, out] weight and recur's [out, in] hold the same draws'
-- distribution.
M.weight_init = nn.init.truncated_normal { std = 0.1 }
M.bias_init = nn.init.constant(0.1)
function M.linear(input, output)
  return nn.Linear(input, output, { weight_init = M.weight_init, bias_init = M.bias_init })
end

-- TF 0.x's DataSet.next_batch: the first epoch in the file's order, then a fresh permutation
-- at each epoch boundary (recur's generator); a batch never crosses an epoch (55,000 / 1,000
-- divides exactly; otherwise the tail of an epoch is skipped, as TF 0.x's does when the next
-- batch would run past the end).
local NextBatch = {}
NextBatch.__index = NextBatch
function M.NextBatch(set, batch)
  local n = set.x:size(1)
  if batch > n then error(string.format("NextBatch: batch %d is larger than the set (%d)", batch, n), 2) end
  return setmetatable({ set = set, batch = batch, n = n, pos = 0, order = nil, epoch = 1 }, NextBatch)
end
function NextBatch:next()
  if self.pos + self.batch > self.n then
    self.order, self.pos, self.epoch = recur.randperm(self.n), 0, self.epoch + 1
  end
  local x, y
  if self.order then
    local idx = self.order:narrow(1, self.pos + 1, self.batch)
    x, y = self.set.x:index_select(1, idx), self.set.y:index_select(1, idx)
  else
    x, y = self.set.x:narrow(1, self.pos + 1, self.batch), self.set.y:narrow(1, self.pos + 1, self.batch)
  end
  self.pos = self.pos + self.batch
  return x, y
end

-- The fraction of rows whose largest logit (or probability) is at the label (1..10).
function M.accuracy(scores, y)
  return scores:argmax(-1):eq(y):mean():item()
end

-- Parameter count and multiply-adds per example of a model, from its summary().
function M.size_of(model, input)
  local text = model:summary(input, { print = false })
  local p = text:match("total parameters: ([%d,]+)")
  local m = text:match("multiply%-adds per example: ([%d,]+)")
  return tonumber((p:gsub(",", ""))), m and tonumber((m:gsub(",", ""))) or nil
end

return M
