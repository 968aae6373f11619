-- One full MNIST epoch (55,000 images, shuffled, batch 100) of the 784-256-256-10 ReLU MLP with
-- Adam (lr 1e-3): batching, forward, loss, backward, step. Prints "recur mnist epoch: X s".
-- usage: recur bench/nn/mnist_epoch.lua [threads] [data dir]
if arg and (arg[1] == "--help" or arg[1] == "-h") then
  print("usage: recur bench/nn/mnist_epoch.lua [threads] [data dir]   (defaults 1, data/mnist; run by bench/nn.sh)")
  print("Times one MNIST epoch (55,000 images, batch 100) of a 784-256-256-10 ReLU MLP with Adam.")
  print("Needs the dataset: data/fetch mnist.")
  return
end
local recur = require "recur"
local nn = recur.nn
local threads = tonumber(arg and arg[1]) or 1
local dir = arg and arg[2] or "data/mnist"
recur.threads(threads)
recur.seed(1)

-- the 55,000 training images as a float tensor in [0, 1] and 1-based labels
local function load()
  local s = recur.data.mnist { dir = dir, split = "55k" }
  return s.train.x, s.train.y
end

local X, Y = load()
local m = nn.Sequential { nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10) }
local opt = recur.optim.Adam(m, { lr = 1e-3 })
local function epoch(limit)
  local perm = recur.randperm(X:size(1))
  local steps = 0
  for i = 1, X:size(1), 100 do
    local idx = perm:narrow(1, i, math.min(100, X:size(1) - i + 1))
    opt:zero_grad()
    nn.cross_entropy(m(X:index_select(1, idx)), Y:index_select(1, idx)):backward()
    opt:step()
    steps = steps + 1
    if limit and steps >= limit then return end
  end
end
epoch(50) -- warm-up
local best, s = math.huge, {}
for k = 1, 2 do
  local t = recur.now()
  epoch()
  s[k] = recur.now() - t
  best = math.min(best, s[k])
end
print(string.format("recur mnist epoch: %.3f s (%d thread%s)", best, threads, threads > 1 and "s" or ""))
require("bench.lib.rows").emit { bench = "nn", name = string.format("mnist epoch %dT", threads),
  value = best, unit = "s", better = "lower", samples = s }
