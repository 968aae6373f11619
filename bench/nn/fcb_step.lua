-- One training step of the First Convergence Bias network (784-100-100-100-10 tanh, batch 50,
-- batch-summed cross-entropy, plain SGD lr 0.01): zero_grad, forward, loss, backward, step.
-- Prints "recur fcb step: X ms" (the best of 5 timings of N steps, after a warm-up).
-- usage: recur bench/nn/fcb_step.lua [threads] [steps]
if arg and (arg[1] == "--help" or arg[1] == "-h") then
  print("usage: recur bench/nn/fcb_step.lua [threads] [steps]   (defaults 1, 2000; run by bench/nn.sh)")
  print("Times one SGD step of the First Convergence Bias network (784-100-100-100-10 tanh, batch 50).")
  return
end
local recur = require "recur"
local nn = recur.nn
local threads = tonumber(arg and arg[1]) or 1
local n = tonumber(arg and arg[2]) or 2000
recur.threads(threads)
recur.seed(1)
local m = nn.Sequential { nn.Linear(784, 100), nn.Tanh(), nn.Linear(100, 100), nn.Tanh(),
  nn.Linear(100, 100), nn.Tanh(), nn.Linear(100, 10) }
local opt = recur.optim.SGD(m, { lr = 0.01 })
local x = recur.rand(50, 784)
local y = recur.randint(1, 10, 50)
local function step()
  opt:zero_grad()
  nn.cross_entropy(m(x), y, { reduction = "sum" }):backward()
  opt:step()
end
for _ = 1, 300 do step() end
local best, ms = math.huge, {}
for k = 1, 5 do
  local t = recur.now()
  for _ = 1, n do step() end
  ms[k] = (recur.now() - t) / n * 1e3
  best = math.min(best, ms[k] / 1e3)
end
print(string.format("recur fcb step: %.4f ms (%d thread%s)", best * 1e3, threads, threads > 1 and "s" or ""))
require("bench.lib.rows").emit { bench = "nn", name = string.format("fcb step %dT", threads),
  value = best * 1e3, unit = "ms", better = "lower", samples = ms }
