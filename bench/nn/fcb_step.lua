-- One training step of the First Convergence Bias network (784-100-100-100-10 tanh, batch 50,
-- batch-summed cross-entropy, plain SGD lr 0.01): zero_grad, forward, loss, backward, step.
-- Prints "recur fcb step: X ms" (the best of 5 timings of N steps, after a warm-up), then the
-- same for the step's GEMM calls replayed alone (the floor a faster framework cannot go below
-- with the same BLAS).
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
-- The step's eleven products alone (same shapes, same threads, recur.matmul): the forward's
-- four, the weight gradients of the four layers and the input gradients of the upper three.
local W1, W2, W4 = recur.randn(100, 784), recur.randn(100, 100), recur.randn(10, 100)
local h, g, g4 = recur.randn(50, 100), recur.randn(50, 100), recur.randn(50, 10)
local mm = recur.matmul
local function gemms()
  mm(x, W1:t()); mm(h, W2:t()); mm(h, W2:t()); mm(h, W4:t())
  mm(g4:t(), h); mm(g4, W4)
  mm(g:t(), h); mm(g, W2); mm(g:t(), h); mm(g, W2)
  mm(g:t(), x)
end
local function time(f)
  for _ = 1, 300 do f() end
  local best, ms = math.huge, {}
  for k = 1, 5 do
    local t = recur.now()
    for _ = 1, n do f() end
    ms[k] = (recur.now() - t) / n * 1e3
    best = math.min(best, ms[k])
  end
  return best, ms
end
local best, ms = time(step)
local fbest, fms = time(gemms)
print(string.format("recur fcb step: %.4f ms (%d thread%s)", best, threads, threads > 1 and "s" or ""))
print(string.format("recur fcb GEMM floor: %.4f ms (the step's 11 products alone; step / floor %.2f)",
  fbest, best / fbest))
local rows = require("bench.lib.rows")
rows.emit { bench = "nn", name = string.format("fcb step %dT", threads),
  value = best, unit = "ms", better = "lower", samples = ms }
rows.emit { bench = "nn", name = string.format("fcb GEMM floor %dT", threads),
  value = fbest, unit = "ms", better = "lower", samples = fms }
